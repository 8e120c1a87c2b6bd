"""One folder per deployment: `.deploy/<name>/` holds everything the deployment owns.

settings.yml, state.json, deploy.log, secrets/ (0600 files), known_hosts and ssh_config,
inventory.yml, duo.yml, gitlab-version (after an upgrade) and terraform/ (its own Terraform
working directory and, with the local backend, its state). The repository's terraform/<cloud>
stays read-only. One lock per folder: a second concurrent run refuses, naming the first one's
PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from duoctl.errors import DuoctlError

NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# ssh passes the -F file to its ProxyJump command line unquoted: no blanks or quotes there.
UNSAFE_PATH = re.compile(r"[\s'\"\\$`{}%]")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise DuoctlError(
            f"deployment name {name!r} is not valid",
            "use lower-case letters, digits and dashes, starting with a letter "
            "(at most 40 characters), for example --name staging",
        )
    return name


@dataclass(frozen=True)
class DeploymentFolder:
    """The paths of one deployment; `repo` is the checkout holding ansible/ and terraform/."""

    root: Path
    repo: Path
    own_inventory: Path | None = None  # own hosts: the user's inventory instead of ours

    @classmethod
    def of(
        cls, deploy_dir: str | Path, name: str, repo: Path, own_inventory: Path | None = None
    ) -> DeploymentFolder:
        root = Path(deploy_dir).expanduser().absolute() / check_name(name)
        if UNSAFE_PATH.search(str(root)):
            raise DuoctlError(
                f"the deployment folder {root} contains a blank, quote or special character",
                "pass --deploy-dir with a plain path (SSH and Ansible read paths inside it)",
            )
        return cls(root=root, repo=repo, own_inventory=own_inventory)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.yml"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def log_file(self) -> Path:
        return self.root / "deploy.log"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def root_password_file(self) -> Path:
        return self.secrets_dir / "gitlab_root_password"

    @property
    def admin_token_file(self) -> Path:
        return self.secrets_dir / "gitlab_admin_token"

    @property
    def ca_file(self) -> Path:
        """GitLab's private CA certificate, when the gitlab role made or was given one."""
        return self.secrets_dir / "gitlab_ca.crt"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def inventory(self) -> Path:
        return self.own_inventory or self.root / "inventory.yml"

    @property
    def duo_config(self) -> Path:
        return self.root / "duo.yml"

    @property
    def terraform_dir(self) -> Path:
        return self.root / "terraform"

    @property
    def gitlab_version_file(self) -> Path:
        """The GitLab version `duoctl upgrade` reached; every playbook run pins GitLab to it."""
        return self.root / "gitlab-version"

    def recorded_gitlab_version(self) -> str | None:
        try:
            text = self.gitlab_version_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DuoctlError(
                f"cannot read {self.gitlab_version_file}: {exc.strerror}",
                "make it readable: it holds the GitLab version the last upgrade reached",
            ) from None
        if not VERSION.match(text):
            raise DuoctlError(
                f"{self.gitlab_version_file} holds {text[:40]!r}, not a GitLab version X.Y.Z",
                "write the version GitLab runs (Admin > Overview: Dashboard) into it, e.g. 19.5.1",
            )
        return text

    def record_gitlab_version(self, version: str) -> None:
        temporary = self.gitlab_version_file.with_suffix(".tmp")
        temporary.write_text(f"{version}\n", encoding="utf-8")
        temporary.replace(self.gitlab_version_file)

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def create(self) -> None:
        """The folder and its secrets/ (0700); an unwritable place is bad input, named."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_text("", encoding="utf-8")
            probe.unlink()
        except OSError as exc:
            raise DuoctlError(
                f"cannot write the deployment folder {self.root}: {exc.strerror}",
                "make it writable, or pass --deploy-dir with a folder you can write",
            ) from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock for one run; refuse when another run holds it."""
        self.create()
        handle = self.lock_file.open("a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise DuoctlError(
                    f"another duoctl run (PID {holder}) is using the deployment {self.name} "
                    f"({self.root})",
                    "wait for it to finish (its progress goes to "
                    f"{self.log_file}), or stop that process first",
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            handle.close()  # closing releases the lock
