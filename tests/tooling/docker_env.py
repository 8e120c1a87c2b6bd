"""Shared test tooling: a Docker engine and the Debian 12 systemd base image, offline.

Every step is idempotent and safe for several callers at once (one flock):

1. installs the apt packages the container tests need when missing
   (docker.io, debootstrap, zstd, ...);
2. starts `dockerd` in the background when `docker info` does not answer
   (log: /var/log/dockerd-tests.log); a daemon that is already running is left alone
   and is never stopped by this tooling;
3. builds the base image `local/debian12-systemd:latest` (override: TEST_IMAGE) when it
   is missing: debootstrap from Debian's apt mirror (bookworm + bookworm-updates +
   security in its sources) and `docker import`, because no registry is reachable.

Usage:
    python3 tests/tooling/docker_env.py          # ensure all three, print the image name
From Python (e.g. a pytest fixture; tests/ is a package):
    from tests.tooling import docker_env
    image = docker_env.ensure_all()

Environment: TEST_IMAGE (image name), DUO_DEBIAN_MIRROR (default http://deb.debian.org/debian),
DUO_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security).
Must run as root (apt, dockerd, debootstrap).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

APT_PACKAGES = ("docker.io", "debootstrap", "zstd", "ca-certificates", "iptables", "openssl")
DEFAULT_IMAGE = "local/debian12-systemd:latest"
LOCK_FILE = Path("/run/lock/duo-test-tooling.lock")
DOCKERD_LOG = Path("/var/log/dockerd-tests.log")
BASE_PACKAGES = "systemd,systemd-sysv,python3,python3-apt,sudo,ca-certificates,iproute2,curl,gnupg"


def _log(msg: str) -> None:
    print(f"[test-tooling] {msg}", file=sys.stderr, flush=True)


def image_name() -> str:
    return os.environ.get("TEST_IMAGE", DEFAULT_IMAGE)


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


def image_exists(name: str) -> bool:
    result = subprocess.run(
        ["docker", "image", "inspect", name], capture_output=True, check=False, timeout=30
    )
    return result.returncode == 0


def _write_rootfs_config(rootfs: Path, mirror: str, security: str) -> None:
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {mirror} bookworm main\n"
        f"deb {mirror} bookworm-updates main\n"
        f"deb {security} bookworm-security main\n"
    )
    # systemd makes a machine id per container at boot when the file is empty.
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "etc/hostname").unlink(missing_ok=True)


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
                f"--include={BASE_PACKAGES}",
                "bookworm",
                str(rootfs),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        _write_rootfs_config(rootfs, mirror, security)
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
    name = name or image_name()
    if not image_exists(name):
        build_base_image(name)
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
