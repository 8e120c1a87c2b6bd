"""Builds the stand-in AI gateway image archive (a gzip'd `docker save` archive), offline.

TEST DOUBLE builder. The real gateway image cannot be pulled here, so the tests load this
archive through the ai_gateway role's air-gapped path (`ai_gateway_image_archive`), exactly as a
site without registry access loads the real image. The image holds a Python interpreter taken
from the Debian 12 test base image (`docker export`, trimmed to the interpreter, its standard
library and shared libraries) and `server.py` beside this file, imported with `docker import`
under the requested name and the self-hosted image's port settings, then `docker save`d.

The archive is rebuilt only when its inputs change (server, builder, name, base image); the
temporary container and the image in the outer Docker engine are removed afterwards.

Usage: python3 tests/doubles/ai_gateway_image/build.py --image NAME:TAG --output FILE.tar.gz
       [--base local/debian12-systemd:latest]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = HERE / "server.py"
SERVER_PATH_IN_IMAGE = "opt/ai-gateway-standin/server.py"
# The environment the self-hosted gateway image sets (docker/self_hosted/Dockerfile).
IMAGE_CHANGES = (
    f'CMD ["/usr/bin/python3", "/{SERVER_PATH_IN_IMAGE}"]',
    "ENV AIGW_FASTAPI__API_PORT=5052",
    "ENV AIGW_CUSTOM_MODELS__ENABLED=true",
    "ENV ENABLE_DUO_WORKFLOW_SERVICE=true",
    "ENV HF_HUB_OFFLINE=true",
    "ENV LANGSMITH_TRACING_V2=false",
    "ENV PYTHONUNBUFFERED=1",
    "EXPOSE 5052 50052",
    "LABEL org.opencontainers.image.title=ai-gateway-standin",
)
KEEP_EXACT = {"bin", "lib", "lib64", "sbin", "usr/bin/python3", "usr/bin/python3.11"}
KEEP_FILES = {"etc/passwd", "etc/group", "etc/nsswitch.conf"}
KEEP_DIRS = ("usr/lib/python3.11/", "usr/lib64/")
DROP_DIRS = tuple(
    f"usr/lib/python3.11/{name}/"
    for name in ("test", "pydoc_data", "idlelib", "tkinter", "ensurepip", "lib2to3", "turtledemo")
)
LIB_DIR = "usr/lib/x86_64-linux-gnu/"
EMPTY_DIRS = (
    "etc",
    "tmp",
    "usr",
    "usr/bin",
    "usr/lib",
    LIB_DIR.rstrip("/"),
    "opt/ai-gateway-standin",
)


def _keep(name: str) -> bool:
    name = name.removeprefix("./").rstrip("/")
    if name in KEEP_EXACT or name in KEEP_FILES:
        return True
    if name.startswith(DROP_DIRS) or (name + "/") in DROP_DIRS:
        return False
    if name.startswith(KEEP_DIRS) or (name + "/") in KEEP_DIRS:
        return True
    # Shared libraries only, not the subfolders (gconv, perl, systemd).
    return name.startswith(LIB_DIR) and "/" not in name[len(LIB_DIR) :] and ".so" in name


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def _inputs_key(image: str, base_id: str) -> str:
    digest = hashlib.sha256()
    for part in (
        SERVER.read_bytes(),
        Path(__file__).read_bytes(),
        image.encode(),
        base_id.encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _filtered_rootfs(export: subprocess.Popen[bytes], sink: subprocess.Popen[bytes]) -> None:
    assert export.stdout is not None and sink.stdin is not None
    with (
        tarfile.open(fileobj=export.stdout, mode="r|") as src,
        tarfile.open(fileobj=sink.stdin, mode="w|") as dst,
    ):
        for name in EMPTY_DIRS:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = (
                tarfile.DIRTYPE,
                0o1777 if name == "tmp" else 0o755,
                int(time.time()),
            )
            dst.addfile(info)
        for member in src:
            if member.name.removeprefix("./").rstrip("/") in EMPTY_DIRS or not _keep(member.name):
                continue
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        info = tarfile.TarInfo(SERVER_PATH_IN_IMAGE)
        info.size, info.mode, info.mtime = SERVER.stat().st_size, 0o644, int(time.time())
        with SERVER.open("rb") as handle:
            dst.addfile(info, handle)


def build(image: str, output: Path, base: str) -> bool:
    """Builds the archive unless an up-to-date one exists; returns True when it built."""
    key = _inputs_key(image, _run("docker", "image", "inspect", "--format", "{{.Id}}", base))
    key_file = output.with_name(output.name + ".key")
    if output.is_file() and key_file.is_file() and key_file.read_text().strip() == key:
        return False
    output.parent.mkdir(parents=True, exist_ok=True)
    container = f"ai-gateway-standin-build-{os.getpid()}"
    _run("docker", "create", "--name", container, base, "/bin/true")
    try:
        changes = [arg for change in IMAGE_CHANGES for arg in ("-c", change)]
        with (
            subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE) as export,
            subprocess.Popen(
                ["docker", "import", *changes, "-", image],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
            ) as sink,
        ):
            _filtered_rootfs(export, sink)
            assert sink.stdin is not None
            sink.stdin.close()
        if export.returncode or sink.returncode:
            raise RuntimeError(
                f"docker export/import failed ({export.returncode}/{sink.returncode})"
            )
        partial = output.with_name(output.name + ".partial")
        with (
            subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save,
            gzip.open(partial, "wb", compresslevel=6) as packed,
        ):
            assert save.stdout is not None
            shutil.copyfileobj(save.stdout, packed)
        if save.returncode:
            raise RuntimeError(f"docker save {image} failed ({save.returncode})")
        partial.replace(output)
        key_file.write_text(key + "\n")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        subprocess.run(["docker", "image", "rm", image], capture_output=True, check=False)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="name:tag the archive holds")
    parser.add_argument("--output", required=True, type=Path, help="archive to write (.tar.gz)")
    parser.add_argument(
        "--base", default=os.environ.get("TEST_IMAGE", "local/debian12-systemd:latest")
    )
    args = parser.parse_args(argv)
    built = build(args.image, args.output, args.base)
    print(f"{'built' if built else 'up to date'}: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
