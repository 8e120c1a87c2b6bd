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

Backups (the parts the gitlab role's backup script and the README's restore rely on):
- `gitlab-ctl reconfigure` writes /etc/gitlab/gitlab-secrets.json (0600) when it is absent,
  with a new random `db_key_base`, as Omnibus does on a first reconfigure; it creates
  /var/opt/gitlab/backups (git, 0700) and reads gitlab.rb's gitlab_rails['backup_keep_time'],
  ['backup_upload_connection'] and ['backup_upload_remote_directory'] (what Omnibus renders
  into gitlab.yml: a change is seen after the next reconfigure only);
- the "database" is the token table (tokens.json); each token row is "encrypted" with the
  db_key_base it was made under (its fingerprint is stored), so rows restored under another
  gitlab-secrets.json cannot be read, as GitLab's encrypted columns;
- `gitlab-backup create [SKIP=..] [STRATEGY=copy] [CRON=1] [BACKUP=id] [DIRECTORY=d]` (root)
  prints GitLab's progress lines (none with CRON=1, errors aside), writes
  /var/opt/gitlab/backups/<epoch>_<YYYY_MM_DD>_<version>-ee_gitlab_backup.tar (git, 0600; a
  tar with backup_information.yml and db/tokens.json unless db is skipped), never holding
  gitlab-secrets.json, prunes archives older than backup_keep_time, then uploads it unless
  SKIP has remote or tar. Uploads: provider Local copies to <local_root>/<remote_directory>/
  as Fog's Local provider does; AWS and Google (no cloud here) copy to
  /var/opt/gitlab/standin/remote/<aws|google>/<remote_directory>/, and are refused, as the
  deployment never uses them, when the connection holds static keys instead of the VM's
  identity (AWS use_iam_profile, Google google_application_default);
- `gitlab-backup restore BACKUP=<id> [force=yes]` (root) refuses an archive of another GitLab
  version (as GitLab does), asks "Do you want to continue (yes/no)?" on standard input unless
  force=yes, and puts the archive's token table back;
- `gitlab-rake gitlab:doctor:secrets` reports the token rows the current gitlab-secrets.json
  cannot decrypt ("- PersonalAccessToken failures: N"), exit 0 as GitLab's;
- `gitlab-rails runner <file>` whose code creates a file in the backup upload directory (the
  role's files/upload_backup_file.rb) uploads FILE as KEY (its two arguments) to the same place
  as the backup archives, with the same connection, FILE read as the git user; one JSON line.

Monitoring: `gitlab-ctl reconfigure` reads prometheus['scrape_configs'] and
prometheus['rules_files'] (Ruby literals of strings, arrays and hashes; a syntax error fails
the reconfigure) and writes /var/opt/gitlab/prometheus/prometheus.yml (JSON, which is YAML)
with `scrape_configs` and `rule_files`, as Omnibus renders them.

Prometheus (a stand-in for its HTTP API only; no time series are stored): when prometheus.yml
exists, the web front end (gitlab-runsvdir) also listens on 127.0.0.1:9090 (Omnibus' default
listen address, localhost:9090) and answers, in Prometheus' response shapes, exactly:
- `GET /api/v1/targets` (`?state=active`, `any`; `dropped` gives no target): {"status":
  "success", "data": {"activeTargets": [...], "droppedTargets": []}}; each static target of
  each scrape job of prometheus.yml is scraped when asked (HTTP GET of scheme://target +
  metrics_path, 3 s timeout, no proxy): health "up" on a 2xx answer, else "down" with
  lastError worded as Prometheus words it; labels job and instance (and the static labels);
- `GET /api/v1/alerts`: {"status": "success", "data": {"alerts": [...]}}; the alerting rules
  of the rules files (rule_files, glob patterns) are read line by line, not as YAML (`- alert:`
  items, a one-line `expr`, one-line `labels` and `annotations` entries); only a rule whose
  expr is exactly `up{job="X"} == 0` is evaluated: it fires (state "firing", never "pending")
  for each target of job X that is down at that request's scrape, with the target's labels,
  the rule's labels, alertname, and its annotations with {{ $labels.x }} filled in. The `for:`
  duration is not modelled (the alert fires at once, activeAt is the scrape's time); every
  other rule never fires here;
- anything else: 404. prometheus.yml and the rules files are read at each request, so
  `gitlab-ctl hup prometheus` (recorded only) has nothing to do; Omnibus' own exporters and
  rules are not emulated.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import glob
import hashlib
import http.client
import http.server
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

GITLAB_RB = Path("/etc/gitlab/gitlab.rb")
STATE_DIR = Path("/var/opt/gitlab/standin")
WEB_CONFIG = STATE_DIR / "web.json"
TOKENS = STATE_DIR / "tokens.json"
CALLS_LOG = Path("/var/log/gitlab/standin/calls.log")
PROCESSES_LOG = Path("/var/log/gitlab/standin/runner-processes.jsonl")
ENV_DIR = Path("/opt/gitlab/etc/gitlab-rails/env")
WEB_UNIT = "gitlab-runsvdir"
SECRETS_JSON = Path("/etc/gitlab/gitlab-secrets.json")
BACKUP_DIR = Path("/var/opt/gitlab/backups")
BACKUP_CONFIG = STATE_DIR / "backup.json"  # what Omnibus renders into gitlab.yml
REMOTE_DIR = STATE_DIR / "remote"  # the emulated cloud buckets
PROMETHEUS_YML = Path("/var/opt/gitlab/prometheus/prometheus.yml")
BACKUP_SUFFIX = "_gitlab_backup.tar"
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
    rb_text = GITLAB_RB.read_text()
    try:
        backup = parse_backup_settings(rb_text)
        prometheus = parse_prometheus_settings(rb_text)
    except ValueError as error:
        return fail(f"gitlab.rb: {error}")
    ensure_secrets_json()
    BACKUP_DIR.mkdir(parents=True, exist_ok=True)
    shutil.chown(BACKUP_DIR, GIT_USER, GIT_USER)
    BACKUP_DIR.chmod(0o700)
    BACKUP_CONFIG.write_text(json.dumps(backup))
    if prometheus:
        PROMETHEUS_YML.parent.mkdir(parents=True, exist_ok=True)
        PROMETHEUS_YML.write_text(json.dumps(prometheus, indent=2) + "\n")
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
    if command == "hup" and args[1:] and args[1] != "nginx":
        return 0  # only the web front end runs here
    if command in ("restart", "start", "hup") and WEB_CONFIG.exists():
        subprocess.run(["systemctl", "restart", WEB_UNIT], check=True)
        return 0
    if command == "stop":
        subprocess.run(["systemctl", "stop", WEB_UNIT], check=True)
        return 0
    if command == "status":
        # runit's lines, as gitlab-ctl prints them (only the web front end runs here).
        pid = subprocess.run(
            ["systemctl", "show", "--property=MainPID", "--value", WEB_UNIT],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if pid and pid != "0":
            print(f"run: nginx: (pid {pid}) 1s; run: log: (pid {pid}) 1s")
            return 0
        print("down: nginx: 1s, normally up; run: log: (pid 1) 1s")
        return 3
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
        "encrypted_with": secrets_fingerprint(),
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
    if "directory.files.create" in code:
        return upload_file(rest[1:])
    return 0


def gitlab_rake(args: list[str]) -> int:
    record("gitlab-rake", args)
    if args and args[0].startswith("gitlab:license:load"):
        license_file = os.environ.get("GITLAB_LICENSE_FILE", "/etc/gitlab/Gitlab.gitlab-license")
        if not Path(license_file).is_file():
            return fail(f"License file not found: {license_file}")
        print("License Added:")
    if args and args[0] == "gitlab:doctor:secrets":
        return doctor_secrets()
    return 0


# --- Ruby literals of gitlab.rb (strings, numbers, true/false/nil, arrays, hashes) ----------

_RUBY_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>true|false|nil)"
    r"|(?P<arrow>=>)|(?P<punct>[\[\]{},:]))"
)


def parse_ruby_literal(text: str) -> object:
    """The value of a Ruby literal as Omnibus' gitlab.rb settings use them; ValueError else."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _RUBY_TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot read Ruby near {text[pos : pos + 40]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    value, end = _ruby_value(tokens, 0)
    if end != len(tokens):
        raise ValueError("unexpected text after a Ruby value")
    return value


def _ruby_value(tokens: list[tuple[str, str]], i: int) -> tuple[object, int]:
    if i >= len(tokens):
        raise ValueError("a Ruby value is missing")
    kind, text = tokens[i]
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", text[1:-1]), i + 1
    if kind == "num":
        return (float(text) if "." in text else int(text)), i + 1
    if kind == "word":
        return {"true": True, "false": False, "nil": None}[text], i + 1
    if text == "[":
        items: list[object] = []
        i += 1
        while tokens[i][1] != "]":
            item, i = _ruby_value(tokens, i)
            items.append(item)
            if tokens[i][1] == ",":
                i += 1
            elif tokens[i][1] != "]":
                raise ValueError("expected , or ] in a Ruby array")
        return items, i + 1
    if text == "{":
        result: dict[str, object] = {}
        i += 1
        while tokens[i][1] != "}":
            key, i = _ruby_value(tokens, i)
            if tokens[i][0] != "arrow":
                raise ValueError("expected => in a Ruby hash")
            result[str(key)], i = _ruby_value(tokens, i + 1)
            if tokens[i][1] == ",":
                i += 1
            elif tokens[i][1] != "}":
                raise ValueError("expected , or } in a Ruby hash")
        return result, i + 1
    raise ValueError(f"unexpected {text!r} in Ruby")


def rb_assignment(text: str, key: str, section: str = "gitlab_rails") -> object:
    """The value assigned to section['key'] in gitlab.rb (None when absent)."""
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    match = re.search(rf"^\s*{section}\['{re.escape(key)}'\]\s*=\s*", text, re.MULTILINE)
    if not match:
        return None
    rest = text[match.end() :]
    # The value ends where its brackets close, or at the end of the line for a scalar.
    depth, end, quoted = 0, len(rest), False
    for index, char in enumerate(rest):
        if quoted:
            if char == "\\":
                continue
            quoted = char != "'" or rest[index - 1] == "\\"
            continue
        if char == "'":
            quoted = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                end = index + 1
                break
        elif char == "\n" and depth == 0:
            end = index
            break
    return parse_ruby_literal(rest[:end])


def parse_backup_settings(text: str) -> dict[str, object]:
    keep = rb_assignment(text, "backup_keep_time")
    connection = rb_assignment(text, "backup_upload_connection")
    directory = rb_assignment(text, "backup_upload_remote_directory")
    options = rb_assignment(text, "backup_upload_storage_options")
    if connection is not None and not isinstance(connection, dict):
        raise ValueError("backup_upload_connection is not a hash")
    return {
        "keep_time": int(keep) if isinstance(keep, int) else 0,
        "connection": connection,
        "remote_directory": directory,
        "storage_options": options,
    }


def parse_prometheus_settings(text: str) -> dict[str, object]:
    scrape = rb_assignment(text, "scrape_configs", "prometheus")
    rules = rb_assignment(text, "rules_files", "prometheus")
    if scrape is None and rules is None:
        return {}
    if not isinstance(scrape, list) or not all(isinstance(job, dict) for job in scrape):
        raise ValueError("prometheus['scrape_configs'] is not an array of hashes")
    if rules is not None and not isinstance(rules, list):
        raise ValueError("prometheus['rules_files'] is not an array")
    default_rules = ["/var/opt/gitlab/prometheus/rules/*.rules"]
    return {
        "global": {"scrape_interval": "15s"},
        "rule_files": rules if rules is not None else default_rules,
        "scrape_configs": scrape,
    }


# --- secrets, backup and restore --------------------------------------------------------------


def ensure_secrets_json() -> None:
    if SECRETS_JSON.exists():
        return
    content = {"gitlab_rails": {"db_key_base": secrets.token_hex(64)}}
    fd = os.open(SECRETS_JSON, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(content, indent=2) + "\n")


def secrets_fingerprint() -> str:
    """Which db_key_base the "encrypted columns" are written under (sha256 prefix)."""
    try:
        key = json.loads(SECRETS_JSON.read_text())["gitlab_rails"]["db_key_base"]
    except (OSError, ValueError, KeyError, TypeError):
        return "none"
    return hashlib.sha256(str(key).encode()).hexdigest()[:16]


def _installed_version() -> str:
    """19.4.1-ee.0 -> 19.4.1-ee, as GitLab names its backups."""
    out = subprocess.run(
        ["dpkg-query", "--show", "--showformat=${Version}", "gitlab-ee"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return out.rsplit(".", 1)[0] if out.endswith(".0") else out


def _backup_settings() -> dict[str, object]:
    if not BACKUP_CONFIG.exists():
        return {"keep_time": 0, "connection": None, "remote_directory": None}
    settings: dict[str, object] = json.loads(BACKUP_CONFIG.read_text())
    return settings


def remote_directory(settings: dict[str, object]) -> Path:
    """Where an upload lands: Fog Local's folder, or the emulated bucket of AWS or Google."""
    connection = settings["connection"]
    assert isinstance(connection, dict)
    provider = str(connection.get("provider", "")).lower()
    directory = str(settings.get("remote_directory") or "")
    if not directory:
        raise ValueError("backup_upload_remote_directory is not set")
    if provider == "local":
        return Path(str(connection["local_root"])) / directory
    if provider == "aws":
        if "aws_access_key_id" in connection or not connection.get("use_iam_profile"):
            raise ValueError("stand-in: only the instance profile (use_iam_profile) is emulated")
        return REMOTE_DIR / "aws" / directory
    if provider == "google":
        static = (
            "google_json_key_location",
            "google_json_key_string",
            "google_storage_access_key_id",
        )
        if any(key in connection for key in static) or not connection.get(
            "google_application_default"
        ):
            raise ValueError(
                "stand-in: only the VM's service account (google_application_default) is emulated"
            )
        return REMOTE_DIR / "google" / directory
    raise ValueError(f"stand-in: provider {provider!r} is not emulated")


def _upload(settings: dict[str, object], source: Path, key: str) -> Path:
    target = remote_directory(settings) / key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _options(args: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in args if "=" in arg)


def backup_create(args: list[str]) -> int:
    options = _options(args)
    quiet = options.get("CRON") == "1"
    skip = {s for s in options.get("SKIP", "").split(",") if s}

    def progress(message: str) -> None:
        if not quiet:
            stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S UTC")
            print(f"{stamp} -- {message}", flush=True)

    if os.geteuid() != 0:
        return fail("gitlab-backup: run as root (it runs the backup as the git user)")
    settings = _backup_settings()
    now = datetime.datetime.now(datetime.UTC)
    version = _installed_version()
    backup_id = options.get("BACKUP") or f"{int(now.timestamp())}_{now:%Y_%m_%d}_{version}"
    archive = BACKUP_DIR / f"{backup_id}{BACKUP_SUFFIX}"
    BACKUP_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="standin-backup-") as tmp:
        work = Path(tmp)
        if "db" in skip:
            progress("Dumping database ... [SKIPPED]")
        else:
            progress("Dumping database ... ")
            (work / "db").mkdir()
            (work / "db" / "tokens.json").write_text(
                TOKENS.read_text() if TOKENS.exists() else "{}"
            )
            progress("Dumping database ... done")
        for part in (
            "repositories",
            "uploads",
            "builds",
            "artifacts",
            "pages",
            "lfs",
            "terraform_state",
            "registry",
            "packages",
            "ci_secure_files",
            "external_diffs",
        ):
            progress(f"Dumping {part} ... " + ("[SKIPPED]" if part in skip else "done"))
        info = {
            "backup_id": backup_id,
            "gitlab_version": version,
            "backup_created_at": now.isoformat(),
            "skipped": ",".join(sorted(skip)),
            "strategy": options.get("STRATEGY", "stream"),
        }
        (work / "backup_information.yml").write_text(
            "".join(f":{key}: {value}\n" for key, value in info.items())
        )
        if "tar" in skip:
            progress("Creating backup archive ... [SKIPPED]")
            return 0
        progress(f"Creating backup archive: {archive.name} ... ")
        with tarfile.open(archive, "w") as tar:
            for path in sorted(work.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(work)), recursive=False)
    shutil.chown(archive, GIT_USER, GIT_USER)
    archive.chmod(0o600)
    progress(f"Creating backup archive: {archive.name} ... done")
    keep = int(str(settings.get("keep_time") or 0))
    if keep > 0:
        removed = 0
        for old in BACKUP_DIR.glob(f"*{BACKUP_SUFFIX}"):
            if old != archive and old.stat().st_mtime < time.time() - keep:
                old.unlink()
                removed += 1
        progress(f"Deleting old backups ... done. ({removed} removed)")
    else:
        progress("Deleting old backups ... [SKIPPED]")
    directory = settings.get("remote_directory")
    if not settings.get("connection") or "remote" in skip:
        progress(f"Uploading backup archive to remote storage {directory or ''} ... [SKIPPED]")
    else:
        progress(f"Uploading backup archive to remote storage {directory} ... ")
        try:
            key = (
                f"{options['DIRECTORY']}/{archive.name}"
                if options.get("DIRECTORY")
                else archive.name
            )
            _upload(settings, archive, key)
        except (ValueError, OSError) as error:
            return fail(f"Uploading backup to {directory} failed: {error}")
        progress(f"Uploading backup archive to remote storage {directory} ... done")
    progress("Backup " + backup_id + " is done.")
    return 0


def backup_restore(args: list[str]) -> int:
    options = _options(args)
    if os.geteuid() != 0:
        return fail("gitlab-backup: run as root")
    backup_id = options.get("BACKUP", "")
    archives = sorted(BACKUP_DIR.glob(f"*{BACKUP_SUFFIX}"))
    if not backup_id:
        if len(archives) != 1:
            return fail(
                "Found more than one backup: please specify which one you want to restore: "
                "BACKUP=<id>"
            )
        backup_id = archives[0].name.removesuffix(BACKUP_SUFFIX)
    archive = BACKUP_DIR / f"{backup_id}{BACKUP_SUFFIX}"
    if not archive.is_file():
        return fail(f"The backup file {archive.name} does not exist!")
    print("Unpacking backup ... ", flush=True)
    with tempfile.TemporaryDirectory(prefix="standin-restore-") as tmp:
        with tarfile.open(archive) as tar:
            # The "data" filter where Python has it (Debian 12's 3.11.2 has not).
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)  # noqa: S202 - the stand-in's own archive
        info = {}
        for line in (Path(tmp) / "backup_information.yml").read_text().splitlines():
            key, _, value = line.partition(": ")
            info[key.lstrip(":")] = value
        version = _installed_version()
        if info.get("gitlab_version") != version:
            wanted = info.get("gitlab_version")
            return fail(
                f"GitLab version mismatch:\n  Your current GitLab version ({version}) differs "
                f"from the GitLab version in the backup ({wanted}).\n  Please switch to the "
                f"following version and try again:\n  version: {wanted}"
            )
        if options.get("force") != "yes":
            print(
                "This will overwrite the database. Do you want to continue (yes/no)? ",
                end="",
                flush=True,
            )
            if sys.stdin.readline().strip() != "yes":
                return fail("Quitting...")
        dump = Path(tmp) / "db" / "tokens.json"
        if dump.is_file():
            print("Restoring database ... ", flush=True)
            STATE_DIR.mkdir(parents=True, exist_ok=True)
            TOKENS.write_text(dump.read_text())
            print("Restoring database ... done", flush=True)
    print("Restore task is done.")
    print(
        "Warning: Your gitlab.rb and gitlab-secrets.json files contain sensitive data\n"
        "and are not included in this backup. You will need to restore these files manually."
    )
    return 0


def gitlab_backup(args: list[str]) -> int:
    record("gitlab-backup", args)
    command = args[0] if args else ""
    if command == "create":
        return backup_create(args[1:])
    if command == "restore":
        return backup_restore(args[1:])
    return fail("Usage: gitlab-backup create|restore [OPTIONS]")


def doctor_secrets() -> int:
    current = secrets_fingerprint()
    rows = _load_tokens().values()
    failures = sum(1 for row in rows if row.get("encrypted_with") != current)
    print("Checking encrypted values in the database")
    print(f"- PersonalAccessToken failures: {failures}")
    print(f"Total: {failures} row(s) affected")
    print("Done!")
    return 0


def upload_file(args: list[str]) -> int:
    """The role's upload_backup_file.rb: FILE KEY, with the backup upload settings."""
    if len(args) < 2:
        return fail("usage: upload_backup_file.rb FILE KEY")
    source, key = args[-2], args[-1]
    settings = _backup_settings()
    if not settings.get("connection"):
        return fail("gitlab.rb has no backup_upload_connection (RuntimeError)")
    if not _git_can("-r", source):
        return fail(f"Permission denied @ rb_sysopen - {source} (Errno::EACCES)")
    try:
        _upload(settings, Path(source), key)
    except (ValueError, OSError) as error:
        return fail(f"uploading {key} failed: {error}")
    print(json.dumps({"status": "uploaded", "directory": settings["remote_directory"], "key": key}))
    return 0


# --- Prometheus: GitLab's bundled one, as its HTTP API answers two requests ------------------

PROMETHEUS_ADDRESS = ("127.0.0.1", 9090)  # Omnibus' prometheus['listen_address'] localhost:9090
SCRAPE_TIMEOUT = 3.0
_UP_IS_ZERO = re.compile(r'^up\{job="([^"]+)"\}\s*==\s*0$')
_TEMPLATE = re.compile(r"\{\{\s*\$(labels\.(\w+)|value)\s*\}\}")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _rfc3339(moment: float) -> str:
    stamp = datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()
    return stamp.replace("+00:00", "Z")


def _scrape_error(url: str, address: str, error: Exception) -> str:
    """A failed scrape's lastError, worded as Prometheus words it."""
    if isinstance(error, urllib.error.HTTPError):
        return f"server returned HTTP status {error.code} {error.reason}"
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError):
        return f'Get "{url}": context deadline exceeded'
    if isinstance(reason, ConnectionRefusedError):
        return f'Get "{url}": dial tcp {address}: connect: connection refused'
    return f'Get "{url}": {reason}'


def scrape(job: dict[str, object], address: str, labels: dict[str, str]) -> dict[str, object]:
    """One target scraped now: an activeTargets item of GET /api/v1/targets."""
    name = str(job.get("job_name") or "")
    scheme = str(job.get("scheme") or "http")
    path = str(job.get("metrics_path") or "/metrics")
    url = f"{scheme}://{address}{path}"
    started = time.time()
    error = ""
    try:
        with _NO_PROXY.open(url, timeout=SCRAPE_TIMEOUT) as answer:
            answer.read()
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError is an OSError
        error = _scrape_error(url, address, exc)
    discovered = {"__address__": address, "__metrics_path__": path, "__scheme__": scheme}
    return {
        "discoveredLabels": {**discovered, **labels, "job": name},
        "labels": {**labels, "instance": address, "job": name},
        "scrapePool": name,
        "scrapeUrl": url,
        "globalUrl": url,
        "lastError": error,
        "lastScrape": _rfc3339(started),
        "lastScrapeDuration": round(time.time() - started, 6),
        "health": "down" if error else "up",
        "scrapeInterval": str(job.get("scrape_interval") or "15s"),
        "scrapeTimeout": f"{SCRAPE_TIMEOUT:g}s",
    }


def scrape_targets(config: dict[str, object]) -> list[dict[str, object]]:
    """Every static target of every scrape job of prometheus.yml, scraped now, at once."""
    work: list[tuple[dict[str, object], str, dict[str, str]]] = []
    jobs = config.get("scrape_configs") or []
    assert isinstance(jobs, list)
    for job in jobs:
        for group in job.get("static_configs") or []:
            labels = {str(k): str(v) for k, v in (group.get("labels") or {}).items()}
            work += [(job, str(address), labels) for address in group.get("targets") or []]
    if not work:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(work))) as pool:
        return list(pool.map(lambda item: scrape(*item), work))


def _yaml_scalar(text: str) -> str:
    """A one-line YAML scalar: double-quoted (JSON's escapes), single-quoted or plain."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text[1:-1]
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text.split(" #", 1)[0].strip()


def read_alert_rules(patterns: list[str], base: Path) -> list[dict[str, object]]:
    """The alerting rules of the rules files (paths or glob patterns, relative ones to the
    folder of prometheus.yml): each `- alert:` item's name, its `expr` when written on one line
    ("" for a block scalar), and the one-line entries of its `labels` and `annotations`. Read
    line by line, as the gitlab role's duo.rules and Omnibus' rules files are written: the
    stand-in has no YAML parser."""
    rules: list[dict[str, object]] = []
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        for path in sorted(glob.glob(full)):
            rules += _rules_of(Path(path).read_text())
    return rules


def _rules_of(text: str) -> list[dict[str, object]]:
    rules: list[dict[str, object]] = []
    rule: dict[str, object] | None = None
    item_indent, section, section_indent = 0, "", 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        start = re.match(r"-\s+(alert|record):(.*)$", stripped)
        if start:
            rule = None
            if start.group(1) == "alert":
                rule = {"alert": _yaml_scalar(start.group(2)), "expr": "", "labels": {}}
                rule["annotations"] = {}
                rules.append(rule)
            item_indent, section = indent + 2, ""
            continue
        if rule is None or indent < item_indent:
            rule = None
            continue
        key, colon, value = stripped.partition(":")
        if section and indent > section_indent and colon:
            entries = rule[section]
            assert isinstance(entries, dict)
            entries[key.strip()] = _yaml_scalar(value)
            continue
        section = ""
        if indent != item_indent or not colon:
            continue  # a block scalar's lines
        if key in ("labels", "annotations") and not value.strip():
            section, section_indent = key, indent
        elif key == "expr":
            block = value.strip() in (">", ">-", "|", "|-")
            rule["expr"] = "" if block else _yaml_scalar(value)
    return rules


def evaluate_alerts(
    rules: list[dict[str, object]], targets: list[dict[str, object]]
) -> list[dict[str, object]]:
    """The alerts of GET /api/v1/alerts: a rule whose expr is `up{job="X"} == 0` fires for each
    target of job X that is down, at once (its `for:` is not waited); no other rule fires."""
    alerts: list[dict[str, object]] = []
    for rule in rules:
        match = _UP_IS_ZERO.match(str(rule["expr"]).strip())
        if not match:
            continue
        for target in targets:
            series = target["labels"]
            assert isinstance(series, dict)
            if series.get("job") != match.group(1) or target["health"] != "down":
                continue
            rule_labels, notes = rule["labels"], rule["annotations"]
            assert isinstance(rule_labels, dict) and isinstance(notes, dict)
            labels = {**series, **rule_labels, "alertname": str(rule["alert"])}

            def fill(found: re.Match[str], labels: dict[str, str] = labels) -> str:
                return "0" if found.group(1) == "value" else labels.get(found.group(2), "")

            alerts.append(
                {
                    "labels": labels,
                    "annotations": {k: _TEMPLATE.sub(fill, str(v)) for k, v in notes.items()},
                    "state": "firing",
                    "activeAt": target["lastScrape"],
                    "value": "0e+00",
                }
            )
    return alerts


class Answering(http.server.BaseHTTPRequestHandler):
    """A quiet handler that answers with a whole body."""

    def _send(self, code: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


class PrometheusHandler(Answering):
    """GET /api/v1/targets[?state=active|dropped|any] and GET /api/v1/alerts, as Prometheus
    answers them; prometheus.yml and the rules files are read at each request."""

    config_file = PROMETHEUS_YML

    def do_GET(self) -> None:
        parsed = urlparse(self.path)
        if parsed.path not in ("/api/v1/targets", "/api/v1/alerts"):
            self._send(404, "404 page not found\n", "text/plain; charset=utf-8")
            return
        try:
            config = json.loads(self.config_file.read_text())
        except (OSError, ValueError):
            config = {}
        state = parse_qs(parsed.query).get("state", ["any"])[0]
        if parsed.path == "/api/v1/targets":
            active = [] if state == "dropped" else scrape_targets(config)
            data: dict[str, object] = {"activeTargets": active, "droppedTargets": []}
        else:
            rules = read_alert_rules(config.get("rule_files") or [], self.config_file.parent)
            data = {"alerts": evaluate_alerts(rules, scrape_targets(config))}
        self._send(200, json.dumps({"status": "success", "data": data}))


def prometheus_server(
    config_file: Path = PROMETHEUS_YML, address: tuple[str, int] = PROMETHEUS_ADDRESS
) -> http.server.ThreadingHTTPServer:
    """The Prometheus API stand-in, bound (not yet serving) on `address`."""
    handler = type("Handler", (PrometheusHandler,), {"config_file": config_file})
    return http.server.ThreadingHTTPServer(address, handler)


class Handler(Answering):
    server_version = "nginx"
    monitoring = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

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
    if PROMETHEUS_YML.exists():  # GitLab's Prometheus, once reconfigure rendered its config
        try:
            servers.append(prometheus_server())
        except OSError as error:
            print(f"prometheus: cannot listen on {PROMETHEUS_ADDRESS}: {error}", file=sys.stderr)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()
    return 0


COMMANDS = {
    "gitlab-ctl": gitlab_ctl,
    "gitlab-rails": gitlab_rails,
    "gitlab-rake": gitlab_rake,
    "gitlab-backup": gitlab_backup,
}

if __name__ == "__main__":
    if sys.argv[1] == "serve":
        sys.exit(serve())
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
