"""Checks the ollama role's result inside its test container.

The release there is the stand-in from tests/doubles/ollama_release (its server follows the
Ollama API); mistral:instruct was pulled through the API, smollm2:135m imported from a models
archive; both are served by a real small model (SmolLM2-135M-Instruct's GGUF, run by llama.cpp).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

MODELS = {"mistral:instruct", "smollm2:135m"}


@pytest.fixture(scope="module")
def private_ip(host: Any) -> str:
    route = host.check_output("ip -4 route get 192.0.2.1")
    return str(route.split(" src ")[1].split()[0])


def _api(host: Any, private_ip: str, path: str) -> Any:
    return json.loads(host.check_output(f"curl -sf http://{private_ip}:11434{path}"))


def test_release_installed_from_archive(host: Any) -> None:
    binary = host.file("/opt/ollama/0.20.6/bin/ollama")
    assert binary.is_file
    assert binary.user == "root"
    assert binary.mode == 0o755
    assert host.file("/usr/local/bin/ollama").linked_to == "/opt/ollama/0.20.6/bin/ollama"
    assert host.package("zstd").is_installed
    download = "/var/tmp/ollama-linux-amd64-v0.20.6.tar.zst"  # noqa: S108 - the role's path
    assert not host.file(download).exists


def test_service_runs_as_system_user(host: Any) -> None:
    user = host.user("ollama")
    assert user.uid < 1000
    assert user.home == "/usr/share/ollama"
    service = host.service("ollama")
    assert service.is_running
    assert service.is_enabled
    assert host.check_output("systemctl show -p User --value ollama") == "ollama"
    assert host.check_output("systemctl show -p ProtectSystem --value ollama") == "full"
    assert host.check_output("systemctl show -p NoNewPrivileges --value ollama") == "yes"


def test_environment_drop_in(host: Any, private_ip: str) -> None:
    env = host.check_output("systemctl show -p Environment --value ollama")
    for item in (
        f"OLLAMA_HOST={private_ip}:11434",
        "OLLAMA_KEEP_ALIVE=-1",
        "OLLAMA_CONTEXT_LENGTH=8192",
        "OLLAMA_NUM_PARALLEL=1",
        "OLLAMA_MAX_LOADED_MODELS=2",
        "OLLAMA_MODELS=/var/lib/ollama/models",
    ):
        assert item in env.split()


def test_listens_on_private_address_only(host: Any, private_ip: str) -> None:
    listening = [line.split()[3] for line in host.check_output("ss -Hltn").splitlines()]
    assert f"{private_ip}:11434" in listening
    bound = [addr for addr in listening if addr.endswith(":11434")]
    assert bound == [f"{private_ip}:11434"]


def test_models_listed_and_owned_by_service_user(host: Any, private_ip: str) -> None:
    tags = {model["name"] for model in _api(host, private_ip, "/api/tags")["models"]}
    assert tags >= MODELS
    openai = {model["id"] for model in _api(host, private_ip, "/v1/models")["data"]}
    assert openai >= MODELS
    models_dir = host.file("/var/lib/ollama/models")
    assert (models_dir.user, models_dir.mode) == ("ollama", 0o750)
    manifest = "/var/lib/ollama/models/manifests/registry.ollama.ai/library/smollm2/135m"
    assert host.file(manifest).user == "ollama"  # imported from the archive
    assert host.check_output("find /var/lib/ollama/models ! -user ollama | wc -l") == "0"


def test_models_warmed_up_and_kept_loaded(host: Any, private_ip: str) -> None:
    loaded = {model["name"]: model for model in _api(host, private_ip, "/api/ps")["models"]}
    assert set(loaded) >= MODELS
    expires_at = loaded["mistral:instruct"]["expires_at"].replace("Z", "+00:00")
    expires = datetime.fromisoformat(expires_at)
    assert expires.year > datetime.now(UTC).year + 100  # keep_alive -1: loaded for good


def test_cli_in_login_shell_reaches_bound_address(host: Any) -> None:
    out = host.check_output("bash -lc 'ollama list'")
    assert "mistral:instruct" in out
    assert "smollm2:135m" in out


def test_stand_in_answers_like_ollama(host: Any, private_ip: str) -> None:
    """A few shapes of the Ollama API contract the stand-in release follows."""
    base = f"http://{private_ip}:11434"
    assert host.check_output(f"curl -s {base}/") == "Ollama is running"
    assert _api(host, private_ip, "/api/version") == {"version": "0.20.6"}
    show = json.loads(
        host.check_output(f'curl -sf {base}/api/show -d \'{{"model":"mistral:instruct"}}\'')
    )
    assert show["details"]["family"] == "llama"
    chat = json.loads(
        host.check_output(
            f"curl -sf {base}/v1/chat/completions -d "
            '\'{"model":"mistral:instruct","messages":[{"role":"user","content":"hi"}]}\''
        )
    )
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant"
    failed = host.run(
        f'curl -s -w \' %{{http_code}}\' {base}/api/pull -d \'{{"model":"nope","stream":false}}\''
    )
    assert failed.stdout == '{"error":"pull model manifest: file does not exist"} 500'
    assert host.run(f"curl -s -w ' %{{http_code}}' {base}/nope").stdout == "404 page not found 404"


# The stand-in generates with a real model: SmolLM2-135M-Instruct's GGUF (the weights blob of
# both models) run by llama.cpp, which the archive carries in lib/ollama/python/.
LIB = "/opt/ollama/0.20.6/lib/ollama"


def _post(host: Any, private_ip: str, path: str, request: dict[str, Any]) -> Any:
    out = host.check_output(f"curl -sf http://{private_ip}:11434{path} -d '{json.dumps(request)}'")
    return json.loads(out)


def _weights(host: Any, model: str) -> str:
    name, tag = model.split(":")
    manifest = json.loads(
        host.file(
            f"/var/lib/ollama/models/manifests/registry.ollama.ai/library/{name}/{tag}"
        ).content_string
    )
    layer = next(
        layer
        for layer in manifest["layers"]
        if layer["mediaType"] == "application/vnd.ollama.image.model"
    )
    return "/var/lib/ollama/models/blobs/" + layer["digest"].replace(":", "-")


def _tokenizer_count(host: Any, model: str, text: str) -> int:
    """`text`'s tokens counted by the weights' own tokenizer, outside the server."""
    script = (
        "import sys; from llama_cpp import Llama; "
        "m = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False); "
        "print(len(m.tokenize(sys.argv[2].encode(), add_bos=False, special=True)))"
    )
    out = host.check_output(
        f"PYTHONPATH={LIB}/python python3 -c {script!r} {_weights(host, model)} {text!r} "
        "2>/dev/null"
    )
    return int(out.splitlines()[-1])


def test_weights_are_a_real_gguf(host: Any) -> None:
    for model in MODELS:
        blob = host.file(_weights(host, model))
        assert blob.size > 90_000_000
        assert host.check_output(f"head -c 4 {blob.path}") == "GGUF"
    assert host.file(f"{LIB}/python/llama_cpp/__init__.py").exists


def test_answers_are_generated_by_the_model(host: Any, private_ip: str) -> None:
    answers = []
    for prompt in ("The capital of France is", "def fibonacci(n):"):
        request = {
            "model": "smollm2:135m",
            "prompt": prompt,
            "raw": True,
            "stream": False,
            "options": {"num_predict": 8, "temperature": 0},
        }
        answer = _post(host, private_ip, "/api/generate", request)
        assert answer["prompt_eval_count"] == _tokenizer_count(host, "smollm2:135m", prompt)
        assert 1 <= answer["eval_count"] <= 8
        if answer["done_reason"] == "length":
            assert answer["eval_count"] == 8
        assert answer["eval_duration"] > 0
        answers.append(answer["response"])
    assert answers[0] != answers[1]
    assert all(text.strip() and "canned" not in text for text in answers)


def test_chat_is_generated_on_native_and_openai_routes(host: Any, private_ip: str) -> None:
    messages = [{"role": "user", "content": "Name a color."}]
    native = {
        "model": "mistral:instruct",
        "messages": messages,
        "stream": False,
        "options": {"num_predict": 10, "temperature": 0, "repeat_penalty": 1.0},
    }
    answer = _post(host, private_ip, "/api/chat", native)
    assert answer["message"]["content"].strip()
    assert "canned" not in answer["message"]["content"]
    openai = {"model": "mistral:instruct", "messages": messages, "max_tokens": 10}
    chat = _post(host, private_ip, "/v1/chat/completions", {**openai, "temperature": 0})
    assert chat["choices"][0]["message"]["content"] == answer["message"]["content"]
    assert chat["usage"]["prompt_tokens"] == answer["prompt_eval_count"]
    assert chat["usage"]["completion_tokens"] == answer["eval_count"]
