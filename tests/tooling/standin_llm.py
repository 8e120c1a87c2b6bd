"""The generation code the stand-in model servers ship: a real GGUF model run by llama.cpp.

Shipped inside the stand-ins' artifacts (TEST DOUBLES, see tests/doubles/ollama_release and
tests/doubles/vllm_server): the vLLM stand-in's wheel carries it as `vllm/standin_llm.py`, the
Ollama stand-in's archive as `lib/ollama/standin_llm.py`. Standard library plus llama_cpp
(llama-cpp-python, built once per machine by tests/tooling/model_engine.py) only.

What is real: llama.cpp's inference, the GGUF's weights, its tokenizer (every token count is
the tokenizer's) and its chat template (`tokenizer.chat_template`, rendered by
llama-cpp-python's Jinja2 formatter, as vLLM and Ollama apply the model's template). What
stands in: one model instance per GGUF serves one request at a time (a lock; a real server
batches), every request evaluates its whole prompt (no prefix cache), and a prompt longer than
the context keeps its last tokens instead of being refused.

Sizing for small machines (environment, read once): STANDIN_LLM_THREADS (default 1: ggml's
thread pool spins at its barriers, and on a busy 2-core machine two threads served four
concurrent requests at ~3 tokens/s where one thread served ~90), STANDIN_LLM_CTX (context
length, default 4096).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"
DEFAULT_CTX = 4096


class EngineUnavailable(RuntimeError):
    """llama_cpp cannot be imported or the weights cannot be loaded."""


def is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def import_engine() -> Any:
    """llama_cpp, or EngineUnavailable saying why (the stand-ins then refuse to start)."""
    try:
        import llama_cpp  # type: ignore[import-not-found,unused-ignore]
    except Exception as exc:  # ImportError, or OSError from a library that does not load
        raise EngineUnavailable(
            f"the inference engine (llama_cpp, from llama-cpp-python) cannot be loaded: {exc}"
        ) from exc
    return llama_cpp


@dataclass
class Result:
    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int
    prompt_seconds: float
    eval_seconds: float
    total_seconds: float
    prompt_ids: list[int] = field(default_factory=list)


class Model:
    """One GGUF loaded once; every call holds the instance's lock (llama.cpp's context is one)."""

    def __init__(self, path: Path) -> None:
        llama_cpp = import_engine()
        if not is_gguf(path):
            raise EngineUnavailable(f"{path} is not a GGUF file")
        threads = int(os.environ.get("STANDIN_LLM_THREADS") or 1)
        self.n_ctx = int(os.environ.get("STANDIN_LLM_CTX") or DEFAULT_CTX)
        self.path = path
        self.lock = threading.Lock()
        started = time.monotonic()
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=self.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=256,
            verbose=False,
        )
        self.load_seconds = time.monotonic() - started
        self._llama_cpp = llama_cpp
        metadata = self.llm.metadata
        self.template = metadata.get("tokenizer.chat_template")
        self.add_bos = metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self.context_length = int(
            next((v for k, v in metadata.items() if k.endswith(".context_length")), self.n_ctx)
        )
        self.architecture = metadata.get("general.architecture", "llama")
        self.parameter_count = int(self.llm._model.n_params())
        self._formatter: Any = None
        if self.template:
            from llama_cpp.llama_chat_format import (  # type: ignore[import-not-found,unused-ignore]
                Jinja2ChatFormatter,
            )

            model = self.llm._model
            eos, bos = self.llm.token_eos(), self.llm.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=self.template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )

    # ----------------------------------------------------------------------------- tokenizer

    def tokenize(self, text: str, add_bos: bool | None = None) -> list[int]:
        bos = self.add_bos if add_bos is None else add_bos
        with self.lock:
            return list(self.llm.tokenize(text.encode(), add_bos=bos, special=True))

    def detokenize(self, ids: list[int]) -> str:
        with self.lock:
            return bytes(self.llm.detokenize(ids)).decode(errors="replace")

    def pieces(self, text: str) -> list[str]:
        """`text` cut at its tokens' boundaries (whole UTF-8 characters): the streamed chunks."""
        with self.lock:
            ids = self.llm.tokenize(text.encode(), add_bos=False, special=False)
            out: list[str] = []
            pending = b""
            for token in ids:
                pending += bytes(self.llm.detokenize([token]))
                try:
                    out.append(pending.decode())
                except UnicodeDecodeError:
                    continue
                pending = b""
        if pending:
            out.append(pending.decode(errors="replace"))
        return [piece for piece in out if piece] or ([text] if text else [])

    # ---------------------------------------------------------------------------- prompts

    def chat_prompt(self, messages: list[dict[str, Any]]) -> tuple[list[int], list[str]]:
        """The model's chat template applied to `messages`: (token ids, stop strings)."""
        clean = [
            {"role": str(m.get("role") or "user"), "content": message_text(m.get("content"))}
            for m in messages
            if isinstance(m, dict)
        ]
        if self._formatter is None:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in clean) + "assistant:"
            return self.tokenize(text), []
        rendered = self._formatter(messages=clean)
        ids = self.tokenize(rendered.prompt, add_bos=not rendered.added_special)
        stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop]
        return ids, [s for s in stop if s]

    # ------------------------------------------------------------------------- generation

    def generate(
        self,
        prompt_ids: list[int],
        max_tokens: int,
        *,
        temperature: float = 0.8,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> Result:
        max_tokens = max(1, min(int(max_tokens), self.n_ctx - 1))
        room = self.n_ctx - max_tokens
        fed = prompt_ids[-room:] if len(prompt_ids) > room else prompt_ids
        with self.lock:
            ctx = self.llm._ctx.ctx
            perf = self._llama_cpp
            reset = getattr(perf, "llama_perf_context_reset", None)
            if reset is not None:
                reset(ctx)
            # A fresh context for every request: llama-cpp-python's prompt-prefix reuse left
            # stale cache entries here (the same greedy request answered differently twice).
            self.llm.reset()
            self.llm._ctx.kv_cache_clear()
            started = time.monotonic()
            out = self.llm.create_completion(
                prompt=fed,
                max_tokens=max_tokens,
                temperature=float(temperature),
                top_p=float(top_p),
                top_k=int(top_k),
                min_p=float(min_p),
                repeat_penalty=float(repeat_penalty),
                seed=seed,
                stop=stop or [],
            )
            total = time.monotonic() - started
            prompt_seconds, eval_seconds = 0.0, total
            reader = getattr(perf, "llama_perf_context", None)
            if reader is not None:
                data = reader(ctx)
                prompt_seconds = data.t_p_eval_ms / 1000
                eval_seconds = max(total - prompt_seconds, 0.0)
        choice, usage = out["choices"][0], out["usage"]
        return Result(
            text=choice["text"],
            finish_reason="length" if choice["finish_reason"] == "length" else "stop",
            prompt_tokens=len(prompt_ids),
            completion_tokens=int(usage["completion_tokens"]),
            prompt_seconds=prompt_seconds,
            eval_seconds=eval_seconds,
            total_seconds=total,
            prompt_ids=list(fed),
        )


def message_text(content: Any) -> str:
    """OpenAI message content: a string, or parts of which the text ones count."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


_MODELS: dict[str, Model] = {}
_MODELS_LOCK = threading.Lock()


def load(path: Path) -> Model:
    """The one Model of a GGUF file (loaded on first use, then shared)."""
    key = str(path.resolve())
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = Model(path)
        return model
