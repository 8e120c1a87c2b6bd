"""STAND-IN for the GitLab EE Omnibus package's commands (gitlab-ctl, gitlab-rails,
gitlab-rake) and its web front end. It is NOT GitLab: it exists only for offline tests.

Contract followed (the parts the deployment roles rely on):
- every call of gitlab-ctl / gitlab-rails / gitlab-rake is appended to
  /var/log/gitlab/standin/calls.log ("<command> <args...>", secrets never logged);
- `gitlab-ctl reconfigure` reads /etc/gitlab/gitlab.rb like Omnibus does for: external_url,
  letsencrypt['enable'], nginx['ssl_certificate'] / nginx['ssl_certificate_key'] (default
  /etc/gitlab/ssl/<host>.crt|.key), gitlab_rails['env'] (one file per variable under
  /opt/gitlab/etc/gitlab-rails/env/, as Omnibus writes them), then (re)starts the web front
  end; it fails like Omnibus when the URL is missing or the certificate files are absent, and
  it cannot obtain a Let's Encrypt certificate (no ACME here);
- the web front end (systemd unit gitlab-runsvdir) serves HTTPS on 443 with the configured
  certificate and redirects HTTP on 80 to it; `/-/readiness`, `/-/liveness`, `/-/health`
  answer 200 only to the monitoring allowlist (loopback), 404 to others, as GitLab does;
  `/` redirects to `/users/sign_in` (200);
- `gitlab-ctl reconfigure` creates the `git` user, as Omnibus does; `gitlab-rails` runs Rails
  as that user (chpst -u git:git), so `gitlab-rails runner <file>` needs a file that `git` can
  read: one it cannot see is taken for Ruby code, as Rails' runner does, and fails;
- `gitlab-rails runner <script>` for the personal access token script follows the role's
  script (ansible/roles/gitlab/files/admin_token.rb): one JSON document on standard input
  ({"user", "name", "expires_in_days", "min_valid_days", "current": the held token or ""}),
  one JSON line out: {"status": "exists"} when the held token is still valid, else the old
  ones are revoked and {"status": "created", "token": ...} is printed; {"status": "error",
  "message": ...} and exit 1 for bad input (never quoted) or an unknown user;
- for the tests only, each `gitlab-rails runner` call also appends the command line and
  environment of itself and of every parent process to
  /var/log/gitlab/standin/runner-processes.jsonl (root only): what `ps` and /proc show while
  it runs;
- `gitlab-rake gitlab:license:load` needs the license file (GITLAB_LICENSE_FILE or
  /etc/gitlab/Gitlab.gitlab-license).
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import pwd
import re
import secrets
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

GITLAB_RB = Path("/etc/gitlab/gitlab.rb")
STATE_DIR = Path("/var/opt/gitlab/standin")
WEB_CONFIG = STATE_DIR / "web.json"
TOKENS = STATE_DIR / "tokens.json"
CALLS_LOG = Path("/var/log/gitlab/standin/calls.log")
PROCESSES_LOG = Path("/var/log/gitlab/standin/runner-processes.jsonl")
ENV_DIR = Path("/opt/gitlab/etc/gitlab-rails/env")
WEB_UNIT = "gitlab-runsvdir"
GIT_USER = "git"  # Omnibus' user for Rails (gitlab_rails['user'] default)


def record(command: str, args: list[str]) -> None:
    CALLS_LOG.parent.mkdir(parents=True, exist_ok=True)
    with CALLS_LOG.open("a") as log:
        log.write(" ".join([command, *args]) + "\n")


def _proc_strings(pid: int, name: str) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError as error:
        return [f"<unreadable: {error.strerror}>"]
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _parent_pid(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^PPid:\s*(\d+)", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def record_process_tree(args: list[str]) -> None:
    """Test evidence, not GitLab behaviour: the command line and environment of this process
    and of each parent up the process tree (what `ps`, /proc and sudo's log can show while the
    runner runs), one JSON line per call, in a root-only file."""
    processes = []
    pid = os.getpid()
    while pid > 0:
        cmdline, environ = _proc_strings(pid, "cmdline"), _proc_strings(pid, "environ")
        processes.append({"pid": pid, "cmdline": cmdline, "environ": environ})
        pid = _parent_pid(pid)
    PROCESSES_LOG.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(PROCESSES_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as log:
        log.write(json.dumps({"args": args, "processes": processes}) + "\n")


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def rb_setting(text: str, pattern: str) -> str | None:
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1) if match else None


def parse_gitlab_rb(text: str) -> dict[str, object]:
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    url = rb_setting(text, r"^\s*external_url\s+['\"]([^'\"]+)['\"]")
    letsencrypt = rb_setting(text, r"^\s*letsencrypt\['enable'\]\s*=\s*(true|false|nil)")
    cert = rb_setting(text, r"^\s*nginx\['ssl_certificate'\]\s*=\s*['\"]([^'\"]+)['\"]")
    key = rb_setting(text, r"^\s*nginx\['ssl_certificate_key'\]\s*=\s*['\"]([^'\"]+)['\"]")
    env_block = rb_setting(text, r"^\s*gitlab_rails\['env'\]\s*=\s*\{([^}]*)\}") or ""
    env = {
        k: v.strip("'\"")
        for k, v in re.findall(r"['\"](\w+)['\"]\s*=>\s*('[^']*'|\"[^\"]*\"|\w+)", env_block)
    }
    return {"external_url": url, "letsencrypt": letsencrypt, "cert": cert, "key": key, "env": env}


def ensure_git_user() -> None:
    try:
        pwd.getpwnam(GIT_USER)
    except KeyError:
        home = ["--home-dir", "/var/opt/gitlab", "--no-create-home", "--shell", "/bin/sh"]
        subprocess.run(["useradd", "--system", "--user-group", *home, GIT_USER], check=True)


def reconfigure() -> int:
    if not GITLAB_RB.exists():
        return fail(f"{GITLAB_RB} is missing")
    ensure_git_user()
    settings = parse_gitlab_rb(GITLAB_RB.read_text())
    url = settings["external_url"]
    if not isinstance(url, str):
        return fail("external_url is not set in /etc/gitlab/gitlab.rb")
    parsed = urlparse(url)
    host = parsed.hostname or ""
    https = parsed.scheme == "https"
    # Omnibus turns Let's Encrypt on by default for an https external_url.
    letsencrypt = https and settings["letsencrypt"] in (None, "true")
    if letsencrypt:
        return fail(
            "letsencrypt: cannot obtain a certificate for "
            f"{host}: no ACME server is reachable from this stand-in"
        )
    cert = str(settings["cert"] or f"/etc/gitlab/ssl/{host}.crt")
    key = str(settings["key"] or f"/etc/gitlab/ssl/{host}.key")
    if https and not (Path(cert).is_file() and Path(key).is_file()):
        return fail(f"nginx: certificate {cert} or key {key} not found")
    env = settings["env"]
    assert isinstance(env, dict)
    ENV_DIR.mkdir(parents=True, exist_ok=True)
    for old in ENV_DIR.iterdir():
        old.unlink()
    for name, value in env.items():
        (ENV_DIR / name).write_text(str(value))
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    WEB_CONFIG.write_text(
        json.dumps({"url": url, "host": host, "https": https, "cert": cert, "key": key})
    )
    subprocess.run(["systemctl", "restart", WEB_UNIT], check=True)
    print("gitlab Reconfigured!")
    return 0


def gitlab_ctl(args: list[str]) -> int:
    record("gitlab-ctl", args)
    command = args[0] if args else "status"
    if command == "reconfigure":
        return reconfigure()
    if command in ("restart", "start", "hup") and WEB_CONFIG.exists():
        subprocess.run(["systemctl", "restart", WEB_UNIT], check=True)
        return 0
    if command == "stop":
        subprocess.run(["systemctl", "stop", WEB_UNIT], check=True)
        return 0
    if command == "status":
        active = subprocess.run(["systemctl", "is-active", "--quiet", WEB_UNIT], check=False)
        print(f"{'run' if active.returncode == 0 else 'down'}: nginx (stand-in)")
        return active.returncode
    return 0


def _load_tokens() -> dict[str, dict[str, object]]:
    return json.loads(TOKENS.read_text()) if TOKENS.exists() else {}


def _finish(status: str, **fields: object) -> int:
    print(json.dumps({"status": status, **fields}))
    return 1 if status == "error" else 0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def personal_access_token() -> int:
    """The role's token script (files/admin_token.rb) against a small token table: the same
    input on standard input, the same checks, the same output."""
    try:
        request = json.loads(sys.stdin.read())
    except ValueError:  # its message quotes the input, which holds a token
        return _finish("error", message="standard input is not a JSON document")
    if not isinstance(request, dict):
        return _finish("error", message="standard input is not a JSON object")
    required = ("user", "name", "expires_in_days", "min_valid_days")
    missing = [key for key in required if key not in request]
    if missing:
        return _finish("error", message=f"missing input: {', '.join(missing)}")
    days = {}
    for key in ("min_valid_days", "expires_in_days"):
        try:
            days[key] = int(str(request[key]), 10)
        except ValueError:
            return _finish("error", message=f"{key} is not a whole number of days")
    user = str(request["user"])
    name = str(request["name"])
    today = datetime.date.today()
    min_valid = today + datetime.timedelta(days=days["min_valid_days"])
    expires_at = today + datetime.timedelta(days=days["expires_in_days"])
    current = str(request.get("current") or "").strip()
    if user != "root":  # the only user, an administrator
        return _finish("error", message=f"user {user} not found")
    tokens = _load_tokens()
    held = tokens.get(_digest(current)) if current else None
    if (
        held
        and held["user"] == user
        and not held["revoked"]
        and "api" in held["scopes"]
        and str(held["expires_at"]) > min_valid.isoformat()
    ):
        return _finish("exists", expires_at=held["expires_at"])
    for entry in tokens.values():
        if entry["user"] == user and entry["name"] == name:
            entry["revoked"] = True
    token = "glpat-" + secrets.token_urlsafe(15)
    tokens[_digest(token)] = {
        "name": name,
        "user": user,
        "scopes": ["api"],
        "expires_at": expires_at.isoformat(),
        "revoked": False,
    }
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    TOKENS.write_text(json.dumps(tokens, indent=2))
    return _finish("created", token=token, expires_at=expires_at.isoformat())


def _git_can(test: str, path: str) -> bool:
    """`test <test> <path>` as the git user: the file as Rails (chpst -u git:git) sees it."""
    command = ["setpriv", f"--reuid={GIT_USER}", f"--regid={GIT_USER}", "--init-groups"]
    return subprocess.run([*command, "test", test, path], check=False).returncode == 0


def gitlab_rails(args: list[str]) -> int:
    record("gitlab-rails", args)
    if not args or args[0] != "runner":
        return 0
    record_process_tree(args)
    try:
        pwd.getpwnam(GIT_USER)
    except KeyError:
        return fail(f"chpst: fatal: unknown user/group: {GIT_USER}:{GIT_USER}")
    rest = [a for a in args[1:] if a not in ("-e", "production")]
    script = rest[0] if rest else ""
    # Rails' runner loads the argument when it names a file it sees, else evaluates it as code.
    if script and _git_can("-e", script):
        if not _git_can("-r", script):
            return fail(f"cannot load such file -- {script} (LoadError)")
        code = Path(script).read_text()
    elif re.fullmatch(r"/\S+\.rb", script):
        return fail(
            "Please specify a valid ruby command or the path of a script to run.\n"
            "Run 'bin/rails runner -h' for help."
        )
    else:
        code = script
    if "personal_access_tokens" in code:
        return personal_access_token()
    return 0


def gitlab_rake(args: list[str]) -> int:
    record("gitlab-rake", args)
    if args and args[0].startswith("gitlab:license:load"):
        license_file = os.environ.get("GITLAB_LICENSE_FILE", "/etc/gitlab/Gitlab.gitlab-license")
        if not Path(license_file).is_file():
            return fail(f"License file not found: {license_file}")
        print("License Added:")
    return 0


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "nginx"
    monitoring = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

    def _send(self, code: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302 if self.server.server_port == 443 else 301)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        config = json.loads(WEB_CONFIG.read_text())
        if self.server.server_port == 80 and config["https"]:
            self._redirect(f"https://{config['host']}{self.path}")
            return
        path = urlparse(self.path).path
        if path in ("/-/readiness", "/-/liveness", "/-/health"):
            client = ipaddress.ip_address(self.client_address[0])
            if not any(client in net for net in self.monitoring):
                self._send(404, '{"message":"404 Not Found"}')
            elif path == "/-/health":
                self._send(200, "GitLab OK", "text/plain")
            else:
                self._send(200, '{"status":"ok","master_check":[{"status":"ok"}]}')
        elif path == "/":
            self._redirect(f"{config['url']}/users/sign_in")
        elif path == "/users/sign_in":
            self._send(200, "<html><title>Sign in - GitLab</title></html>", "text/html")
        else:
            self._send(404, '{"message":"404 Not Found"}')

    def log_message(self, format: str, *args: object) -> None:
        return


def serve() -> int:
    config = json.loads(WEB_CONFIG.read_text())
    servers = []
    # Like GitLab's bundled nginx: all interfaces (listen_addresses ['*']).
    if config["https"]:
        tls = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Handler)  # noqa: S104
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(config["cert"], config["key"])
        tls.socket = context.wrap_socket(tls.socket, server_side=True)
        servers.append(tls)
    servers.append(http.server.ThreadingHTTPServer(("0.0.0.0", 80), Handler))  # noqa: S104
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()
    return 0


COMMANDS = {"gitlab-ctl": gitlab_ctl, "gitlab-rails": gitlab_rails, "gitlab-rake": gitlab_rake}

if __name__ == "__main__":
    if sys.argv[1] == "serve":
        sys.exit(serve())
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
