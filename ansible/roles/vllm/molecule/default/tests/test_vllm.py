"""Checks the vllm role's result inside its test container.

The release there is the stand-in wheel from tests/doubles/vllm_server (its `vllm serve`
follows vLLM's OpenAI-compatible server) installed from a wheelhouse archive, serving a
local model folder (real weights: SmolLM2-135M-Instruct's GGUF, run by llama.cpp) under the
name mistral-7b-test.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

NAME = "mistral-7b-test"
VENV = "/opt/vllm/0.18.1"
ENV_FILE = "/etc/vllm/vllm.env"
# The key is read inside the container by the shell: it is never in a logged command line.
KEY = f"$(sed -n 's/^VLLM_API_KEY=//p' {ENV_FILE})"
HF_TOKEN = "hf_StandInTokenNotReal0123456789abcdef"  # noqa: S105 - the fake test token


@pytest.fixture(scope="module")
def private_ip(host: Any) -> str:
    route = host.check_output("ip -4 route get 192.0.2.1")
    return str(route.split(" src ")[1].split()[0])


@pytest.fixture(scope="module")
def base(private_ip: str) -> str:
    return f"http://{private_ip}:8000"


@pytest.fixture(scope="module")
def api_key(host: Any) -> str:
    with host.sudo():
        key = host.check_output(f"sed -n 's/^VLLM_API_KEY=//p' {ENV_FILE}")
    assert len(key) == 48
    return str(key)


def _curl(host: Any, args: str) -> tuple[str, int]:
    out = host.check_output(f"curl -s -w '\\n%{{http_code}}' {args}")
    body, _, code = out.rpartition("\n")
    return body, int(code)


def test_release_installed_in_its_virtualenv(host: Any) -> None:
    assert host.file(f"{VENV}/bin/vllm").is_file
    assert host.file("/usr/local/bin/vllm").linked_to == f"{VENV}/bin/vllm"
    assert host.check_output(f"{VENV}/bin/vllm --version") == "0.18.1"
    assert host.package("python3-venv").is_installed
    assert not host.file("/var/tmp/vllm-wheelhouse-0.18.1").exists  # noqa: S108 - role path


def test_service_active_enabled_as_system_user(host: Any) -> None:
    service = host.service("vllm")
    assert service.is_running
    assert service.is_enabled
    assert host.user("vllm").uid < 1000
    assert host.check_output("systemctl show -p User --value vllm") == "vllm"


def test_unit_is_sandboxed(host: Any) -> None:
    show = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show -p NoNewPrivileges -p PrivateTmp -p ProtectHome -p ProtectSystem "
            "-p ReadWritePaths -p EnvironmentFiles -p RestartPreventExitStatus vllm"
        ).splitlines()
    )
    assert show["NoNewPrivileges"] == "yes"
    assert show["PrivateTmp"] == "yes"
    assert show["ProtectHome"] == "yes"
    assert show["ProtectSystem"] == "strict"
    assert set(show["ReadWritePaths"].split()) == {
        "/var/lib/vllm",
        "/var/lib/vllm/models",
        "/var/lib/vllm/cache",
    }
    assert show["EnvironmentFiles"].startswith(ENV_FILE)


def test_command_line_carries_the_engine_arguments(host: Any, private_ip: str) -> None:
    argv = host.check_output("ps -o args= -C vllm || pgrep -a -f 'bin/vllm serve'")
    expected = (
        f"serve /var/lib/vllm/models/local/{NAME} --host {private_ip} --port 8000 "
        f"--served-model-name {NAME} --dtype half --gpu-memory-utilization 0.9 "
        "--tensor-parallel-size 1 --tokenizer-mode mistral --load-format mistral "
        "--config-format mistral --max-model-len 16384 --max-num-seqs 16 "
        "--no-enable-log-requests --enable-auto-tool-choice --tool-call-parser mistral "
        "--disable-uvicorn-access-log"
    )
    assert expected in argv


def test_listens_on_private_address_only(host: Any, private_ip: str) -> None:
    listening = [line.split()[3] for line in host.check_output("ss -Hltn").splitlines()]
    assert [addr for addr in listening if addr.endswith(":8000")] == [f"{private_ip}:8000"]


def test_health_and_metrics_need_no_key(host: Any, base: str) -> None:
    assert _curl(host, f"{base}/health") == ("", 200)
    metrics, code = _curl(host, f"{base}/metrics")
    assert code == 200
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
    ):
        assert f"# TYPE {name} gauge" in metrics
    assert f'model_name="{NAME}"' in metrics


def test_models_need_the_key(host: Any, base: str) -> None:
    body, code = _curl(host, f"{base}/v1/models")
    assert (json.loads(body), code) == ({"error": "Unauthorized"}, 401)
    body, code = _curl(host, f"-H 'Authorization: Bearer wrong' {base}/v1/models")
    assert code == 401
    body, code = _curl(host, f'-H "Authorization: Bearer {KEY}" {base}/v1/models')
    assert code == 200
    assert [model["id"] for model in json.loads(body)["data"]] == [NAME]


def test_warm_up_was_served(host: Any, base: str) -> None:
    metrics, _ = _curl(host, f"{base}/metrics")
    success = [
        line for line in metrics.splitlines() if line.startswith("vllm:request_success_total")
    ]
    assert any('finished_reason="length"' in line and not line.endswith(" 0.0") for line in success)


def test_chat_tool_call(host: Any, base: str) -> None:
    request = {
        "model": NAME,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
        ],
    }
    body, code = _curl(
        host,
        f"-H \"Authorization: Bearer {KEY}\" -H 'Content-Type: application/json' "
        f"{base}/v1/chat/completions -d '{json.dumps(request)}'",
    )
    assert code == 200
    choice = json.loads(body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert "city" in json.loads(call["function"]["arguments"])


def test_key_file_is_root_only(host: Any) -> None:
    env = host.file(ENV_FILE)
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    with host.sudo():
        assert HF_TOKEN in env.content_string


def test_secrets_not_in_ps_unit_or_journal(host: Any, api_key: str) -> None:
    with host.sudo():
        ps = host.check_output("ps -eo args")
        unit = host.file("/etc/systemd/system/vllm.service").content_string
        journal = host.check_output("journalctl --no-pager -o cat")
        show = host.check_output("systemctl show vllm")
    for secret in (api_key, HF_TOKEN):
        assert secret not in ps
        assert secret not in unit
        assert secret not in journal
        assert secret not in show
    assert "--api-key" not in ps


def test_model_copied_to_the_data_folder(host: Any) -> None:
    model = host.file(f"/var/lib/vllm/models/local/{NAME}")
    assert (model.user, model.mode) == ("vllm", 0o750)
    assert host.file(f"/var/lib/vllm/models/local/{NAME}/config.json").user == "vllm"
    assert host.file("/var/lib/vllm/models/huggingface").is_directory


# The stand-in generates with a real model: SmolLM2-135M-Instruct's GGUF (in the model folder)
# run by llama.cpp, installed into the role's virtualenv from the wheelhouse.
GGUF = f"/var/lib/vllm/models/local/{NAME}/SmolLM2-135M-Instruct.Q4_1.gguf"


def _post(host: Any, base: str, path: str, request: dict[str, Any]) -> dict[str, Any]:
    body, code = _curl(
        host,
        f"-H \"Authorization: Bearer {KEY}\" -H 'Content-Type: application/json' "
        f"{base}{path} -d '{json.dumps(request)}'",
    )
    assert code == 200, body
    return dict(json.loads(body))


def _tokenizer_count(host: Any, text: str) -> int:
    """The prompt's tokens counted by the GGUF's own tokenizer, outside the server."""
    script = (
        "import sys; from llama_cpp import Llama; "
        "m = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False); "
        "print(len(m.tokenize(sys.argv[2].encode(), add_bos=False, special=True)))"
    )
    out = host.check_output(f"{VENV}/bin/python -c {script!r} {GGUF} {text!r} 2>/dev/null")
    return int(out.splitlines()[-1])


def test_engine_and_weights_installed(host: Any) -> None:
    version = "import llama_cpp; print(llama_cpp.__version__)"
    out = host.check_output(f"{VENV}/bin/python -c '{version}'")
    assert out == "0.3.16"
    with host.sudo():
        assert host.file(GGUF).size > 90_000_000
        assert host.check_output(f"head -c 4 {GGUF}") == "GGUF"


def test_completions_are_generated_by_the_model(host: Any, base: str) -> None:
    prompts = ("The capital of France is", "def fibonacci(n):")
    answers = []
    for prompt in prompts:
        request = {"model": NAME, "prompt": prompt, "max_tokens": 8, "temperature": 0}
        answer = _post(host, base, "/v1/completions", request)
        choice, usage = answer["choices"][0], answer["usage"]
        assert usage["prompt_tokens"] == _tokenizer_count(host, prompt)
        tokenized = _post(host, base, "/tokenize", {"model": NAME, "prompt": prompt})
        assert tokenized["count"] == usage["prompt_tokens"]
        if choice["finish_reason"] == "length":
            assert usage["completion_tokens"] == 8
        assert 1 <= usage["completion_tokens"] <= 8
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        answers.append(choice["text"])
    assert answers[0] != answers[1]
    assert all(text.strip() and "canned" not in text for text in answers)


def test_chat_is_generated_and_streamed(host: Any, base: str) -> None:
    messages = [{"role": "user", "content": "Name a color."}]
    request = {"model": NAME, "messages": messages, "max_tokens": 12, "temperature": 0}
    answer = _post(host, base, "/v1/chat/completions", request)
    text = answer["choices"][0]["message"]["content"]
    assert text.strip() and "canned" not in text
    assert 1 <= answer["usage"]["completion_tokens"] <= 12
    # The chat template's prompt: the same count from vLLM's /tokenize of the messages.
    tokenized = _post(host, base, "/tokenize", {"model": NAME, "messages": messages})
    assert answer["usage"]["prompt_tokens"] == tokenized["count"]
    stream = {**request, "stream": True, "stream_options": {"include_usage": True}}
    out = host.check_output(
        f"curl -sN -H \"Authorization: Bearer {KEY}\" -H 'Content-Type: application/json' "
        f"{base}/v1/chat/completions -d '{json.dumps(stream)}'"
    )
    events = [line[6:] for line in out.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    streamed = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
    )
    assert streamed == text  # greedy: the same answer again, streamed token by token
    assert chunks[-1]["usage"]["completion_tokens"] == answer["usage"]["completion_tokens"]
