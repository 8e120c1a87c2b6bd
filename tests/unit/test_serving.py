"""Serving presets: the memory arithmetic, refusals with their fix, and what the deploy gets."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from duoctl import serving
from duoctl.serving import (
    DEFAULT_PRESET,
    GPU_VMS,
    PRESETS,
    ServingError,
    check_fit,
    fit,
    kv_cache_gib,
    ollama_num_parallel,
    preset,
    terraform_variables_for,
    vllm_args,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_fits_its_gpu_and_vms(name: str) -> None:
    result = check_fit(PRESETS[name])
    assert result.needed_gib <= result.available_gib
    for cloud in PRESETS[name].clouds:
        check_fit(PRESETS[name], cloud)


def test_kv_cache_formula_matches_the_reference() -> None:
    # Mistral 7B: 32 layers x 8 KV heads x 128 x 2 bytes x 2 = 128 KiB/token; 8k tokens = 1 GiB.
    mistral_7b = dataclasses.replace(serving.LLAMA_31_8B, layers=32, kv_heads=8, head_dim=128)
    assert kv_cache_gib(mistral_7b, 8192, 1) == pytest.approx(1.0)
    assert mistral_7b.kv_bytes_per_token() == 128 * 1024


def test_weights_at_each_precision() -> None:
    model = serving.MISTRAL_SMALL
    assert serving.weights_gib(model, "bf16") == pytest.approx(24e9 * 2 / 2**30)
    assert serving.weights_gib(model, "fp8") == pytest.approx(24.0, abs=0.5)
    assert 13.0 < serving.weights_gib(model, "gptq") < 15.0


def test_default_is_a_supported_model_on_a_24_gb_gpu_on_both_clouds() -> None:
    default = preset(DEFAULT_PRESET)
    assert default.gpu == "L4" and set(default.clouds) == {"aws", "gcp"}
    assert "duo_chat" in default.model.features
    assert serving.gitlab_model(default)["identifier"] == (
        "custom_openai/mistral-small-3.2-24b-instruct-2506"
    )
    assert terraform_variables_for(default, "aws") == {
        "ollama_instance_type": "g6.2xlarge",
        "ollama_disk_gb": 80,
        "model_port": 8000,
    }
    assert terraform_variables_for(default, "gcp") == {
        "ollama_machine_type": "g2-standard-8",
        "ollama_gpu_type": "nvidia-l4",
        "ollama_gpu_count": 1,
        "ollama_disk_gb": 80,
        "model_port": 8000,
    }


def test_a_preset_too_big_for_its_gpu_is_refused_with_the_arithmetic() -> None:
    on_t4 = dataclasses.replace(preset(DEFAULT_PRESET), name="mistral-on-t4", gpu="T4")
    with pytest.raises(ServingError) as err:
        check_fit(on_t4)
    message = err.value.message
    assert re.search(r"= \d+\.\d GiB needed, 14\.2 GiB available \(1 x T4\)", message)
    assert "llama-3.1-8b-awq-t4" in err.value.fix
    assert err.value.exit_code == 2


def test_t4_has_no_bf16_and_no_fp8() -> None:
    bf16 = dataclasses.replace(PRESETS["llama-3.1-8b-bf16-a10g"], gpu="T4", machine_types={})
    assert any("no bf16" in p for p in fit(bf16).problems)
    fp8 = dataclasses.replace(PRESETS["llama-3.1-8b-fp8-l4"], gpu="T4", machine_types={})
    assert any("no FP8" in p for p in fit(fp8).problems)
    assert PRESETS["llama-3.1-8b-awq-t4"].dtype == "half"


def test_a_vm_without_ram_for_the_weights_is_refused() -> None:
    small = dataclasses.replace(preset(DEFAULT_PRESET), machine_types={"aws": "g6.xlarge"})
    assert any("16 GiB RAM" in p for p in fit(small, "aws").problems)


def test_unknown_preset_and_missing_cloud() -> None:
    with pytest.raises(ServingError, match="no serving preset"):
        preset("mistral-huge")
    with pytest.raises(ServingError) as err:
        terraform_variables_for(PRESETS["gpt-oss-120b-h100"], "gcp")
    assert "gpt-oss-120b-a100-80" in err.value.fix


def test_vllm_arguments() -> None:
    mistral = vllm_args(PRESETS["mistral-small-24b-bf16-a100-80"])
    assert mistral[mistral.index("--tokenizer-mode") + 1] == "mistral"
    assert "--load-format" in mistral and "--config-format" in mistral
    assert mistral[mistral.index("--tool-call-parser") + 1] == "mistral"
    t4 = vllm_args(PRESETS["llama-3.1-8b-awq-t4"])
    assert t4[t4.index("--dtype") + 1] == "half"
    assert t4[t4.index("--quantization") + 1] == "awq_marlin"
    assert t4[t4.index("--tool-call-parser") + 1] == "llama3_json"
    big = serving.vllm_role_vars(PRESETS["llama-3.3-70b-bf16-a100x8"])
    assert big["vllm_tensor_parallel_size"] == 8 and "vllm_port" not in big


def test_disk_is_twice_the_weights_plus_room() -> None:
    for p in PRESETS.values():
        weights_gb = serving.weights_gib(p.model, p.precision) * 2**30 / 1e9
        assert serving.disk_gb(p) >= 2 * weights_gb + serving.DISK_ROOM_GB


def test_every_gpu_vm_has_a_price_and_a_matching_gpu() -> None:
    for vm in GPU_VMS:
        assert vm.hourly_usd > 0 and vm.gpu in serving.GPUS
        assert (vm.accelerator is not None) == (vm.cloud == "gcp")


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_preset_has_its_terraform_test_run(cloud: str) -> None:
    text = (ROOT / "terraform" / cloud / "tests" / "gpu_presets.tftest.hcl").read_text()
    for p in PRESETS.values():
        if cloud not in p.machine_types:
            continue
        run = text.split(f'run "preset_{p.name.replace(".", "_").replace("-", "_")}"')[1]
        run = run.split("\nrun ")[0]
        for value in terraform_variables_for(p, cloud).values():
            assert str(value) in run, (p.name, value)


@pytest.mark.parametrize(
    ("gpu_gb", "model_gb", "context", "expected"),
    [
        (15, 4.1, 8192, 4),  # mistral:instruct on a T4: 4 slots of 1 GB
        (15, 4.1, 32768, 2),  # 4.3 GB per slot
        (15, 12.0, 8192, 1),  # no room: 1, never 0
        (80, 4.1, 2048, 4),  # capped
    ],
)
def test_ollama_num_parallel(gpu_gb: float, model_gb: float, context: int, expected: int) -> None:
    assert ollama_num_parallel(gpu_gb, model_gb, context) == expected


def test_role_vars_are_the_vllm_roles_own_arguments() -> None:
    """The preset reaches the vllm role by the names its argument spec declares."""
    import yaml

    spec = Path(__file__).resolve().parents[2] / "ansible/roles/vllm/meta/argument_specs.yml"
    options = yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"]
    for p in PRESETS.values():
        role_vars = serving.vllm_role_vars(p)
        assert set(role_vars) <= set(options), set(role_vars) - set(options)
        assert role_vars["vllm_tokenizer_mode"] in ("", "mistral")
