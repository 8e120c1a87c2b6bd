"""Shared test tooling: a Docker engine and the Debian 12 systemd base image, offline.

Every step is idempotent and safe for several callers at once (one flock):

1. installs the apt packages the container tests need when missing
   (docker.io, debootstrap, zstd, ...);
2. starts `dockerd` in the background when `docker info` does not answer
   (log: /var/log/dockerd-tests.log); a daemon that is already running is left alone
   and is never stopped by this tooling;
3. builds the base image when it is missing: debootstrap from Debian's apt mirror
   (bookworm + bookworm-updates + security in its sources) and `docker import`, because no
   registry is reachable.

The base image stands in for an Ubuntu cloud image booted by cloud-init: systemd as PID 1,
OpenSSH's server enabled with password logins off, and a user `ubuntu` with passwordless sudo
(no password, no authorized key: tests/tooling/cloud_init.py installs one). The image holds no
SSH host key: every container makes its own at its first boot (`ssh-keygen -A` before sshd
starts), as a VM does.

The image is named `local/debian12-systemd:<tag>`, the tag being a hash of the build recipe
(SUITE, BASE_PACKAGES and the IMAGE_* values below): a machine holding an image of an older
recipe builds the new one instead of using the old. `local/debian12-systemd:latest` is then
pointed at it; that is the scenarios' default image when TEST_IMAGE is not set (`molecule test`
run by hand after this script). TEST_IMAGE names another image, built from the recipe when
missing and never re-tagged.

Usage:
    python3 tests/tooling/docker_env.py          # ensure all three, print the image name
    export TEST_IMAGE=$(python3 tests/tooling/docker_env.py)
From Python (e.g. a pytest fixture; tests/ is a package):
    from tests.tooling import docker_env
    image = docker_env.ensure_all()

Environment: TEST_IMAGE (image name), DUO_DEBIAN_MIRROR (default http://deb.debian.org/debian),
DUO_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security).
Must run as root (apt, dockerd, debootstrap).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

APT_PACKAGES = (
    "docker.io", "debootstrap", "zstd", "ca-certificates", "iptables", "openssl",
    "openssh-client",
)  # fmt: skip
IMAGE_REPOSITORY = "local/debian12-systemd"
LATEST_IMAGE = f"{IMAGE_REPOSITORY}:latest"
LOCK_FILE = Path("/run/lock/duo-test-tooling.lock")
DOCKERD_LOG = Path("/var/log/dockerd-tests.log")

# The build recipe: everything that goes into the base image. Its hash is the image's tag, so a
# change here makes a new image; build_base_image() only carries it out.
SUITE = "bookworm"
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "python3", "python3-apt", "sudo", "ca-certificates",
    "iproute2", "curl", "gnupg", "openssh-server",
)  # fmt: skip
# path in the image -> (mode, content)
IMAGE_FILES = {
    # A VM makes its host keys at its first boot; so does each container, as the image holds
    # none (`ssh-keygen -A` makes the missing ones, before sshd checks its configuration).
    "etc/systemd/system/ssh.service.d/host-keys.conf": (
        0o644,
        "[Service]\n"
        "ExecStartPre=\n"
        "ExecStartPre=/usr/bin/ssh-keygen -A\n"
        "ExecStartPre=/usr/sbin/sshd -t\n",
    ),
    # What an Ubuntu cloud image sets: key logins only.
    "etc/ssh/sshd_config.d/60-cloudimg-settings.conf": (
        0o644,
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n",
    ),
    # What cloud-init writes for its default user.
    "etc/sudoers.d/90-cloud-init-users": (
        0o440,
        "# User rules for ubuntu\nubuntu ALL=(ALL) NOPASSWD:ALL\n",
    ),
}
# Run in the image's root (chroot), in order: cloud-init's default user (no password).
IMAGE_COMMANDS = (
    (
        "useradd",
        "--create-home",
        "--shell",
        "/bin/bash",
        "--groups",
        "adm,cdrom,dip,sudo",
        "ubuntu",
    ),
    ("systemctl", "enable", "ssh.service"),
    ("visudo", "--check", "--quiet"),
)
# Removed from the image (globs): the host keys that installing openssh-server made.
IMAGE_REMOVE = ("etc/ssh/ssh_host_*",)


def _log(msg: str) -> None:
    print(f"[test-tooling] {msg}", file=sys.stderr, flush=True)


def recipe_tag() -> str:
    """The tag of the base image: a hash of its build recipe."""
    recipe = [SUITE, BASE_PACKAGES, IMAGE_FILES, IMAGE_COMMANDS, IMAGE_REMOVE]
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def default_image() -> str:
    return f"{IMAGE_REPOSITORY}:{recipe_tag()}"


def image_name() -> str:
    return os.environ.get("TEST_IMAGE") or default_image()


@contextmanager
def _exclusive() -> Iterator[None]:
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() == "install ok installed"


def ensure_packages(packages: tuple[str, ...] = APT_PACKAGES) -> None:
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return
    _log(f"installing apt packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )


def docker_answers() -> bool:
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def ensure_dockerd(timeout: float = 90.0) -> None:
    if docker_answers():
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("dockerd is not installed: run ensure_packages() first")
    _log(f"starting dockerd (log: {DOCKERD_LOG})")
    with DOCKERD_LOG.open("ab") as log:
        # A session of its own: the daemon outlives the test run and is shared.
        subprocess.Popen(
            [dockerd], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_answers():
            return
        time.sleep(1)
    raise RuntimeError(f"dockerd did not answer within {timeout:.0f}s; see {DOCKERD_LOG}")


def image_id(name: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def image_exists(name: str) -> bool:
    return image_id(name) is not None


def _write_rootfs_config(rootfs: Path, mirror: str, security: str) -> None:
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {mirror} {SUITE} main\n"
        f"deb {mirror} {SUITE}-updates main\n"
        f"deb {security} {SUITE}-security main\n"
    )
    # systemd makes a machine id per container at boot when the file is empty.
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "etc/hostname").unlink(missing_ok=True)


def _apply_recipe(rootfs: Path) -> None:
    for relative, (mode, content) in IMAGE_FILES.items():
        path = rootfs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
    for command in IMAGE_COMMANDS:
        subprocess.run(["chroot", str(rootfs), *command], check=True, stdout=subprocess.DEVNULL)
    for pattern in IMAGE_REMOVE:
        for path in rootfs.glob(pattern):
            path.unlink()


def build_base_image(name: str) -> None:
    mirror = os.environ.get("DUO_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("DUO_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    _log(f"building {name} with debootstrap from {mirror} (about a minute)")
    with tempfile.TemporaryDirectory(prefix="duo-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        _write_rootfs_config(rootfs, mirror, security)
        _apply_recipe(rootfs)
        subprocess.run(["chroot", str(rootfs), "apt-get", "update", "-qq"], check=True)
        subprocess.run(["chroot", str(rootfs), "apt-get", "clean"], check=True)
        # Lists are kept (plain installs work) but look old, so that
        # `apt: update_cache: true, cache_valid_time: N` refreshes them on first use.
        os.utime(rootfs / "var/lib/apt/lists", (946684800, 946684800))
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [
                "docker",
                "import",
                "-c",
                'CMD ["/lib/systemd/systemd"]',
                "-c",
                "ENV container=docker",
                "-",
                name,
            ],
            stdin=tar.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise RuntimeError("tar of the root file system failed")


def ensure_base_image(name: str | None = None) -> str:
    """The image exists (built when missing); the default one is also tagged `latest`."""
    name = name or image_name()
    if not image_exists(name):
        build_base_image(name)
    if name == default_image() and image_id(LATEST_IMAGE) != image_id(name):
        _log(f"tagging {name} as {LATEST_IMAGE}")
        subprocess.run(["docker", "tag", name, LATEST_IMAGE], check=True, timeout=30)
    return name


def ensure_all() -> str:
    """Packages, daemon and base image; returns the image name."""
    if os.geteuid() != 0:
        raise RuntimeError("the container test tooling needs root (apt, dockerd, debootstrap)")
    with _exclusive():
        ensure_packages()
        ensure_dockerd()
        return ensure_base_image()


if __name__ == "__main__":
    print(ensure_all())
