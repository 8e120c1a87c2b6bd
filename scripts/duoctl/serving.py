"""Model serving presets: which GitLab-supported model runs on which GPU, with the memory
arithmetic that decides it, and what the deploy needs from each choice.

A *preset* is one model checkpoint at one precision on one GPU shape (type x count), with the
vLLM arguments that make it fit, the VM that carries that GPU on each cloud, the disk, and what
GitLab needs to register it. The deploy wiring calls:

- `preset(name)` / `PRESETS` / `DEFAULT_PRESET`: the table;
- `check_fit(preset)`: raises `ServingError` (bad input, exit code 2) when it does not fit,
  with the arithmetic (needed vs available GiB) and the presets that fit that GPU instead;
- `terraform_variables_for(preset, cloud)`: the GPU VM's Terraform variables;
- `vllm_args(preset)` / `vllm_role_vars(preset)`: the `vllm serve` arguments, and the same as
  Ansible variables for the vllm role;
- `gitlab_model(preset)`: family, identifier (`custom_openai/<served name>`), features;
- `ollama_num_parallel(...)`: OLLAMA_NUM_PARALLEL for the Ollama choice;
- `HOURLY_PRICES_USD`: approximate on-demand prices of the GPU VMs.

The memory arithmetic (all in GiB, per GPU; tensor parallelism splits weights and KV heads):

    weights   = quantized parameters x bytes per parameter at the precision
                (bf16/fp16 2, fp8 1, 4-bit AWQ/GPTQ 0.5 + 2/128 for the fp16 group scales,
                MXFP4 0.53) + the parameters kept in 16 bits (embeddings, lm_head, vision
                tower) x 2
    kv cache  = 2 (K and V) x layers x kv_heads x head_dim x 2 bytes (fp16 cache)
                x max_model_len x max_num_seqs      (sliding-window layers hold the window only)
    needed    = weights / tp + kv cache / tp + runtime overhead (CUDA context, activations of a
                prefill chunk, CUDA graphs: 2 GiB, + 0.5 GiB NCCL buffers with tp > 1)
    available = GPU memory (what nvidia-smi reports) x gpu_memory_utilization

`max_model_len x max_num_seqs` is the worst case (every sequence at full length); vLLM pages
the cache, so more short requests may run at once, but a preset that passes this bound never
preempts a request for lack of cache. The host needs the weights in RAM while loading
(weights + 4 GiB for the OS and vLLM), which is why the 24 GB presets use 8-vCPU VMs.

The default vLLM preset is `mistral-small-24b-w4a16-l4`: Mistral Small 3.2 24B 2506, the
model GitLab lists for code completion, code generation *and* Duo Chat, under Apache 2.0
(Codestral 22B is listed for completion and generation with chat partial only, and its licence
is the Mistral AI Non-Production License). At bf16 it needs about 45 GiB, at FP8 about 24 GiB:
neither fits a 24 GB GPU. At 4 bits (GPTQ W4A16, Marlin kernels on Ampere and Ada) the weights
are about 14 GiB; on one L4 (22.5 GiB x 0.95 = 21.4 GiB) that leaves 5.4 GiB after the 2 GiB
overhead, enough for 2 sequences of 16,384 tokens (160 KiB per token: 5.0 GiB). The L4 is the
one 24 GB GPU both clouds offer as a single-GPU VM: AWS g6.2xlarge and Google Cloud
g2-standard-8 (8 vCPUs, 32 GB RAM: the 16 GB of g6.xlarge cannot hold the weights while they
load), about $1 an hour on either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from duoctl.errors import DuoctlError

Cloud = Literal["aws", "gcp"]
Precision = Literal["bf16", "fp16", "fp8", "awq", "gptq", "mxfp4"]
Feature = Literal["code_completions", "code_generations", "duo_chat"]

GIB = 1024**3
VLLM_PORT = 8000
OLLAMA_PORT = 11434
RUNTIME_OVERHEAD_GIB = 2.0
TENSOR_PARALLEL_OVERHEAD_GIB = 0.5
HOST_RAM_MARGIN_GIB = 4.0
KV_CACHE_BYTES = 2  # fp16/bf16 cache elements
# Disk: the weights twice (download cache and a converted or re-downloaded copy), plus the OS,
# the NVIDIA driver and CUDA libraries, vLLM's container or virtualenv and logs.
DISK_ROOM_GB = 40
MIN_DISK_GB = 50

BYTES_PER_PARAMETER: dict[Precision, float] = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "awq": 0.5 + 2 / 128,  # 4-bit, one fp16 scale per group of 128 (zero points packed)
    "gptq": 0.5 + 2 / 128,
    "mxfp4": 4.25 / 8,  # 4-bit values, one 8-bit scale per 32
}
QUANTIZATION: dict[Precision, str | None] = {
    "bf16": None,
    "fp16": None,
    "fp8": None,  # read from the checkpoint's config (compressed-tensors)
    "awq": "awq_marlin",
    "gptq": "gptq_marlin",
    "mxfp4": None,  # read from the checkpoint's config
}


class ServingError(DuoctlError):
    """A preset that does not exist or does not fit: bad input (exit code 2), with its fix."""


@dataclass(frozen=True)
class Gpu:
    """One GPU type. memory_mib is the total nvidia-smi reports (less than the marketing GB)."""

    name: str
    memory_mib: int
    bf16: bool  # Ampere and later
    fp8_compute: bool  # Ada and Hopper: FP8 W8A8; older GPUs run FP8 weight-only at best
    compute_capability: float

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024


GPUS: dict[str, Gpu] = {
    "T4": Gpu("T4", 15360, bf16=False, fp8_compute=False, compute_capability=7.5),
    "A10G": Gpu("A10G", 23028, bf16=True, fp8_compute=False, compute_capability=8.6),
    "L4": Gpu("L4", 23034, bf16=True, fp8_compute=True, compute_capability=8.9),
    "L40S": Gpu("L40S", 46068, bf16=True, fp8_compute=True, compute_capability=8.9),
    "A100-40GB": Gpu("A100-40GB", 40960, bf16=True, fp8_compute=False, compute_capability=8.0),
    "A100-80GB": Gpu("A100-80GB", 81920, bf16=True, fp8_compute=False, compute_capability=8.0),
    "H100": Gpu("H100", 81559, bf16=True, fp8_compute=True, compute_capability=9.0),
}


@dataclass(frozen=True)
class GpuVm:
    """A VM type with its GPUs: the instance or machine type, and on Google Cloud the
    accelerator type (attached to N1, built into A2 and G2)."""

    cloud: Cloud
    machine_type: str
    gpu: str  # key of GPUS
    gpu_count: int
    vcpus: int
    memory_gib: float
    accelerator: str | None = None  # Google Cloud accelerator type
    hourly_usd: float = 0.0  # approximate on-demand list price, see HOURLY_PRICES_USD


# Approximate on-demand list prices in USD per hour (AWS us-east-1, Google Cloud us-central1,
# Linux, no discounts; for N1 the T4 is included), as listed in 2025. They change: check the
# cloud's pricing page before budgeting.
PRICES_AS_OF = "2025"
GPU_VMS: tuple[GpuVm, ...] = (
    GpuVm("aws", "g4dn.xlarge", "T4", 1, 4, 16, hourly_usd=0.526),
    GpuVm("aws", "g4dn.2xlarge", "T4", 1, 8, 32, hourly_usd=0.752),
    GpuVm("aws", "g5.xlarge", "A10G", 1, 4, 16, hourly_usd=1.006),
    GpuVm("aws", "g5.2xlarge", "A10G", 1, 8, 32, hourly_usd=1.212),
    GpuVm("aws", "g6.xlarge", "L4", 1, 4, 16, hourly_usd=0.805),
    GpuVm("aws", "g6.2xlarge", "L4", 1, 8, 32, hourly_usd=0.978),
    GpuVm("aws", "g6.12xlarge", "L4", 4, 48, 192, hourly_usd=4.602),
    GpuVm("aws", "g6e.xlarge", "L40S", 1, 4, 32, hourly_usd=1.861),
    GpuVm("aws", "g6e.12xlarge", "L40S", 4, 48, 384, hourly_usd=10.493),
    GpuVm("aws", "p4d.24xlarge", "A100-40GB", 8, 96, 1152, hourly_usd=21.96),
    GpuVm("aws", "p5.4xlarge", "H100", 1, 16, 256, hourly_usd=6.88),
    GpuVm("aws", "p5.48xlarge", "H100", 8, 192, 2048, hourly_usd=55.04),
    GpuVm("gcp", "n1-standard-4", "T4", 1, 4, 15, "nvidia-tesla-t4", hourly_usd=0.54),
    GpuVm("gcp", "n1-standard-8", "T4", 1, 8, 30, "nvidia-tesla-t4", hourly_usd=0.73),
    GpuVm("gcp", "g2-standard-4", "L4", 1, 4, 16, "nvidia-l4", hourly_usd=0.71),
    GpuVm("gcp", "g2-standard-8", "L4", 1, 8, 32, "nvidia-l4", hourly_usd=0.85),
    GpuVm("gcp", "g2-standard-24", "L4", 2, 24, 96, "nvidia-l4", hourly_usd=2.00),
    GpuVm("gcp", "g2-standard-48", "L4", 4, 48, 192, "nvidia-l4", hourly_usd=4.00),
    GpuVm("gcp", "a2-highgpu-1g", "A100-40GB", 1, 12, 85, "nvidia-tesla-a100", hourly_usd=3.67),
    GpuVm("gcp", "a2-highgpu-2g", "A100-40GB", 2, 24, 170, "nvidia-tesla-a100", hourly_usd=7.35),
    GpuVm("gcp", "a2-ultragpu-1g", "A100-80GB", 1, 12, 170, "nvidia-a100-80gb", hourly_usd=5.07),
    GpuVm("gcp", "a2-ultragpu-2g", "A100-80GB", 2, 24, 340, "nvidia-a100-80gb", hourly_usd=10.14),
)
HOURLY_PRICES_USD: dict[str, float] = {vm.machine_type: vm.hourly_usd for vm in GPU_VMS}

# AWS: the On-Demand vCPU quota that covers each GPU instance family.
AWS_QUOTAS = {
    "G": ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "P": ("L-417A185B", "Running On-Demand P instances"),
}
# Google Cloud: the regional quota metric of each accelerator type.
GCP_GPU_QUOTAS = {
    "nvidia-tesla-t4": "NVIDIA_T4_GPUS",
    "nvidia-l4": "NVIDIA_L4_GPUS",
    "nvidia-tesla-a100": "NVIDIA_A100_GPUS",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
    "nvidia-h100-80gb": "NVIDIA_H100_GPUS",
    "nvidia-tesla-v100": "NVIDIA_V100_GPUS",
    "nvidia-tesla-p100": "NVIDIA_P100_GPUS",
    "nvidia-tesla-p4": "NVIDIA_P4_GPUS",
}


@dataclass(frozen=True)
class Model:
    """A model's architecture, as far as memory goes, and what GitLab says about it."""

    name: str
    params_b: float  # total parameters, billions
    unquantized_params_b: float  # kept in 16 bits by quantized checkpoints (embeddings, lm_head...)
    layers: int
    kv_heads: int
    head_dim: int
    max_context: int
    gitlab_family: str  # GitLab's model family (AiAcceptedSelfHostedModels value)
    features: tuple[Feature, ...]  # what GitLab lists it as supported for
    tool_call_parser: str
    sliding_window_layers: int = 0  # layers whose cache holds only `sliding_window` tokens
    sliding_window: int = 0
    note: str = ""

    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * KV_CACHE_BYTES


MISTRAL_SMALL = Model(
    "Mistral Small 3.2 24B Instruct 2506",
    params_b=24.0,
    unquantized_params_b=1.78,  # embeddings + lm_head 131072 x 5120 each, Pixtral vision tower
    layers=40,
    kv_heads=8,
    head_dim=128,
    max_context=131072,
    gitlab_family="mistral",
    features=("code_completions", "code_generations", "duo_chat"),
    tool_call_parser="mistral",
    note="Apache 2.0",
)
CODESTRAL = Model(
    "Codestral 22B v0.1",
    params_b=22.2,
    unquantized_params_b=0.4,  # embeddings + lm_head 32768 x 6144 each
    layers=56,
    kv_heads=8,
    head_dim=128,
    max_context=32768,
    gitlab_family="codestral",
    features=("code_completions", "code_generations"),
    tool_call_parser="mistral",
    note="Mistral AI Non-Production License; GitLab lists Duo Chat as partial",
)
LLAMA_31_8B = Model(
    "Llama 3.1 8B Instruct",
    params_b=8.03,
    unquantized_params_b=1.05,  # embeddings + lm_head 128256 x 4096 each
    layers=32,
    kv_heads=8,
    head_dim=128,
    max_context=131072,
    gitlab_family="llama3",
    features=("code_completions", "code_generations"),
    tool_call_parser="llama3_json",
    note="GitLab lists Llama 3 8B as partially supported; Llama 3.1 Community License",
)
LLAMA_33_70B = Model(
    "Llama 3.3 70B Instruct",
    params_b=70.6,
    unquantized_params_b=2.1,  # embeddings + lm_head 128256 x 8192 each
    layers=80,
    kv_heads=8,
    head_dim=128,
    max_context=131072,
    gitlab_family="llama3",
    features=("code_completions", "code_generations", "duo_chat"),
    tool_call_parser="llama3_json",
    note="Llama 3.3 Community License",
)
GPT_OSS_20B = Model(
    "gpt-oss-20b",
    params_b=20.9,
    unquantized_params_b=1.8,  # attention, embeddings and unembedding in bf16; experts MXFP4
    layers=24,
    kv_heads=8,
    head_dim=64,
    max_context=131072,
    gitlab_family="gpt",
    features=("code_completions", "code_generations", "duo_chat"),
    tool_call_parser="openai",
    sliding_window_layers=12,
    sliding_window=128,
    note="Apache 2.0; GitLab lists gpt-oss-120B, the 20B is the same family at lower cost",
)
GPT_OSS_120B = Model(
    "gpt-oss-120b",
    params_b=116.8,
    unquantized_params_b=2.1,
    layers=36,
    kv_heads=8,
    head_dim=64,
    max_context=131072,
    gitlab_family="gpt",
    features=("code_completions", "code_generations", "duo_chat"),
    tool_call_parser="openai",
    sliding_window_layers=18,
    sliding_window=128,
    note="Apache 2.0",
)


@dataclass(frozen=True)
class Preset:
    """One model checkpoint at one precision on one GPU shape, with its vLLM settings."""

    name: str
    model: Model
    hf_model_id: str
    served_model_name: str
    precision: Precision
    gpu: str  # key of GPUS
    gpu_count: int
    max_model_len: int
    max_num_seqs: int
    gpu_memory_utilization: float
    machine_types: dict[Cloud, str] = field(default_factory=dict)  # cloud -> GpuVm.machine_type
    mistral_format: bool = False  # the checkpoint ships Mistral's own params.json/tekken.json

    @property
    def tensor_parallel_size(self) -> int:
        return self.gpu_count

    @property
    def dtype(self) -> str:
        """bfloat16 where the GPU has it, else half (T4); 4-bit kernels run in half."""
        if not GPUS[self.gpu].bf16 or self.precision in ("awq", "fp16"):
            return "half"
        return "bfloat16"

    @property
    def clouds(self) -> tuple[Cloud, ...]:
        return tuple(self.machine_types)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "llama-3.1-8b-awq-t4",
            LLAMA_31_8B,
            "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
            "llama-3.1-8b-instruct",
            "awq",
            "T4",
            1,
            max_model_len=8192,
            max_num_seqs=6,
            gpu_memory_utilization=0.92,
            machine_types={"aws": "g4dn.xlarge", "gcp": "n1-standard-4"},
        ),
        Preset(
            "llama-3.1-8b-fp8-l4",
            LLAMA_31_8B,
            "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8",
            "llama-3.1-8b-instruct",
            "fp8",
            "L4",
            1,
            max_model_len=16384,
            max_num_seqs=4,
            gpu_memory_utilization=0.92,
            machine_types={"aws": "g6.xlarge", "gcp": "g2-standard-4"},
        ),
        Preset(
            "llama-3.1-8b-bf16-a10g",
            LLAMA_31_8B,
            "meta-llama/Llama-3.1-8B-Instruct",
            "llama-3.1-8b-instruct",
            "bf16",
            "A10G",
            1,
            max_model_len=16384,
            max_num_seqs=2,
            gpu_memory_utilization=0.95,
            machine_types={"aws": "g5.2xlarge"},
        ),
        Preset(
            "mistral-small-24b-w4a16-l4",
            MISTRAL_SMALL,
            "gratex/mistral-small-3.2-24b-Instruct-GPTQ-W4A16",
            "mistral-small-3.2-24b-instruct-2506",
            "gptq",
            "L4",
            1,
            max_model_len=16384,
            max_num_seqs=2,
            gpu_memory_utilization=0.95,
            machine_types={"aws": "g6.2xlarge", "gcp": "g2-standard-8"},
        ),
        Preset(
            "mistral-small-24b-w4a16-a10g",
            MISTRAL_SMALL,
            "gratex/mistral-small-3.2-24b-Instruct-GPTQ-W4A16",
            "mistral-small-3.2-24b-instruct-2506",
            "gptq",
            "A10G",
            1,
            max_model_len=16384,
            max_num_seqs=2,
            gpu_memory_utilization=0.95,
            machine_types={"aws": "g5.2xlarge"},
        ),
        Preset(
            "mistral-small-24b-fp8-l40s",
            MISTRAL_SMALL,
            "RedHatAI/Mistral-Small-3.2-24B-Instruct-2506-FP8",
            "mistral-small-3.2-24b-instruct-2506",
            "fp8",
            "L40S",
            1,
            max_model_len=16384,
            max_num_seqs=4,
            gpu_memory_utilization=0.92,
            machine_types={"aws": "g6e.xlarge"},
        ),
        Preset(
            "mistral-small-24b-bf16-a100-80",
            MISTRAL_SMALL,
            "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
            "mistral-small-3.2-24b-instruct-2506",
            "bf16",
            "A100-80GB",
            1,
            max_model_len=32768,
            max_num_seqs=5,
            gpu_memory_utilization=0.92,
            machine_types={"gcp": "a2-ultragpu-1g"},
            mistral_format=True,
        ),
        Preset(
            "codestral-22b-awq-l4",
            CODESTRAL,
            "solidrust/Codestral-22B-v0.1-hf-AWQ",
            "codestral-22b-v0.1",
            "awq",
            "L4",
            1,
            max_model_len=16384,
            max_num_seqs=2,
            gpu_memory_utilization=0.95,
            machine_types={"aws": "g6.2xlarge", "gcp": "g2-standard-8"},
        ),
        Preset(
            "gpt-oss-20b-l4",
            GPT_OSS_20B,
            "openai/gpt-oss-20b",
            "gpt-oss-20b",
            "mxfp4",
            "L4",
            1,
            max_model_len=32768,
            max_num_seqs=4,
            gpu_memory_utilization=0.92,
            machine_types={"aws": "g6.2xlarge", "gcp": "g2-standard-8"},
        ),
        Preset(
            "gpt-oss-120b-h100",
            GPT_OSS_120B,
            "openai/gpt-oss-120b",
            "gpt-oss-120b",
            "mxfp4",
            "H100",
            1,
            max_model_len=32768,
            max_num_seqs=8,
            gpu_memory_utilization=0.95,
            machine_types={"aws": "p5.4xlarge"},
        ),
        Preset(
            "gpt-oss-120b-a100-80",
            GPT_OSS_120B,
            "openai/gpt-oss-120b",
            "gpt-oss-120b",
            "mxfp4",
            "A100-80GB",
            1,
            max_model_len=32768,
            max_num_seqs=8,
            gpu_memory_utilization=0.95,
            machine_types={"gcp": "a2-ultragpu-1g"},
        ),
        Preset(
            "llama-3.3-70b-bf16-a100x8",
            LLAMA_33_70B,
            "meta-llama/Llama-3.3-70B-Instruct",
            "llama-3.3-70b-instruct",
            "bf16",
            "A100-40GB",
            8,
            max_model_len=32768,
            max_num_seqs=12,
            gpu_memory_utilization=0.92,
            machine_types={"aws": "p4d.24xlarge"},
        ),
        Preset(
            "llama-3.3-70b-bf16-a100-80x2",
            LLAMA_33_70B,
            "meta-llama/Llama-3.3-70B-Instruct",
            "llama-3.3-70b-instruct",
            "bf16",
            "A100-80GB",
            2,
            max_model_len=16384,
            max_num_seqs=2,
            gpu_memory_utilization=0.95,
            machine_types={"gcp": "a2-ultragpu-2g"},
        ),
    )
}
DEFAULT_PRESET = "mistral-small-24b-w4a16-l4"


def preset(name: str) -> Preset:
    """The preset called `name`; ServingError naming the others when there is none."""
    if name not in PRESETS:
        raise ServingError(
            f"no serving preset {name!r}",
            f"choose one of: {', '.join(PRESETS)} (default {DEFAULT_PRESET})",
        )
    return PRESETS[name]


def gpu_vm(cloud: str, machine_type: str) -> GpuVm | None:
    """The known GPU VM of that type on that cloud, or None."""
    for vm in GPU_VMS:
        if vm.cloud == cloud and vm.machine_type == machine_type:
            return vm
    return None


def vm_of(p: Preset, cloud: Cloud) -> GpuVm:
    """The VM that carries the preset's GPUs on `cloud`; ServingError when it has none there."""
    machine_type = p.machine_types.get(cloud)
    vm = gpu_vm(cloud, machine_type) if machine_type else None
    if vm is None:
        others = [q.name for q in PRESETS.values() if cloud in q.machine_types]
        raise ServingError(
            f"preset {p.name} has no {cloud} VM ({p.gpu_count} x {p.gpu} is not offered there "
            "as a single VM type)",
            f"on {cloud} choose one of: {', '.join(others)}",
        )
    return vm


# --- the memory arithmetic -------------------------------------------------------------------


def weights_gib(model: Model, precision: Precision) -> float:
    """Bytes of the weights at `precision`, in GiB."""
    if precision in ("bf16", "fp16"):
        size = model.params_b * 1e9 * 2
    else:
        quantized = (model.params_b - model.unquantized_params_b) * 1e9
        size = quantized * BYTES_PER_PARAMETER[precision] + model.unquantized_params_b * 1e9 * 2
    return size / GIB


def kv_cache_gib(model: Model, max_model_len: int, max_num_seqs: int) -> float:
    """The cache for max_num_seqs sequences of max_model_len tokens, in GiB (all GPUs)."""
    per_layer = 2 * model.kv_heads * model.head_dim * KV_CACHE_BYTES
    full_layers = model.layers - model.sliding_window_layers
    tokens = max_model_len * max_num_seqs
    window = min(model.sliding_window, max_model_len) * max_num_seqs
    return (
        per_layer * full_layers * tokens + per_layer * model.sliding_window_layers * window
    ) / GIB


@dataclass(frozen=True)
class Fit:
    """The arithmetic of one preset on its GPU: per GPU, in GiB; `problems` empty when it fits."""

    preset: str
    gpu: str
    gpu_count: int
    weights_gib: float  # per GPU
    kv_cache_gib: float  # per GPU
    overhead_gib: float
    available_gib: float  # per GPU: memory x gpu_memory_utilization
    host_needed_gib: float
    problems: tuple[str, ...]

    @property
    def needed_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.overhead_gib

    @property
    def ok(self) -> bool:
        return not self.problems

    def arithmetic(self) -> str:
        return (
            f"per GPU: weights {self.weights_gib:.1f} + KV cache {self.kv_cache_gib:.1f} + "
            f"overhead {self.overhead_gib:.1f} = {self.needed_gib:.1f} GiB needed, "
            f"{self.available_gib:.1f} GiB available ({self.gpu_count} x {self.gpu})"
        )


def fit(p: Preset, cloud: Cloud | None = None) -> Fit:
    """Does `p` fit its GPU (and, with `cloud`, that cloud's VM's RAM)? Never raises."""
    gpu = GPUS[p.gpu]
    tp = p.tensor_parallel_size
    model = p.model
    weights = weights_gib(model, p.precision)
    kv = kv_cache_gib(model, p.max_model_len, p.max_num_seqs)
    overhead = RUNTIME_OVERHEAD_GIB + (TENSOR_PARALLEL_OVERHEAD_GIB if tp > 1 else 0.0)
    available = gpu.memory_gib * p.gpu_memory_utilization
    result = Fit(
        preset=p.name,
        gpu=p.gpu,
        gpu_count=tp,
        weights_gib=weights / tp,
        kv_cache_gib=kv / min(tp, model.kv_heads),
        overhead_gib=overhead,
        available_gib=available,
        host_needed_gib=weights + HOST_RAM_MARGIN_GIB,
        problems=(),
    )
    problems: list[str] = []
    if result.needed_gib > available:
        problems.append(f"does not fit: {result.arithmetic()}")
    if p.precision == "bf16" and not gpu.bf16:
        problems.append(f"{gpu.name} has no bf16: use a 4-bit AWQ/GPTQ checkpoint (dtype half)")
    if p.precision == "fp8" and not gpu.fp8_compute:
        problems.append(
            f"{gpu.name} has no FP8 compute (weight-only at best): use 4-bit AWQ/GPTQ or bf16"
        )
    if p.precision == "mxfp4" and gpu.compute_capability < 8.0:
        problems.append(f"{gpu.name} cannot run MXFP4 kernels (compute capability 8.0 needed)")
    if p.max_model_len > model.max_context:
        problems.append(f"max_model_len {p.max_model_len} > the model's {model.max_context}")
    if not 0.5 <= p.gpu_memory_utilization <= 0.98:
        problems.append("gpu_memory_utilization must be between 0.5 and 0.98")
    for where, machine_type in p.machine_types.items():
        if cloud is not None and where != cloud:
            continue
        vm = gpu_vm(where, machine_type)
        if vm is None or vm.gpu != p.gpu or vm.gpu_count != p.gpu_count:
            problems.append(f"{machine_type} does not carry {p.gpu_count} x {p.gpu}")
        elif vm.memory_gib < result.host_needed_gib:
            problems.append(
                f"{machine_type} has {vm.memory_gib:g} GiB RAM; loading needs "
                f"{result.host_needed_gib:.1f} GiB (weights + {HOST_RAM_MARGIN_GIB:g})"
            )
    return Fit(**{**result.__dict__, "problems": tuple(problems)})


def presets_that_fit(gpu: str, cloud: Cloud | None = None) -> list[str]:
    """Names of the presets that fit `gpu` (on `cloud`, when given)."""
    return [
        p.name
        for p in PRESETS.values()
        if p.gpu == gpu and (cloud is None or cloud in p.machine_types) and fit(p, cloud).ok
    ]


def check_fit(p: Preset, cloud: Cloud | None = None) -> Fit:
    """The preset's Fit; ServingError with the arithmetic and the presets that fit instead."""
    result = fit(p, cloud)
    if result.ok:
        return result
    alternatives = [n for n in presets_that_fit(p.gpu, cloud) if n != p.name]
    fix = (
        f"presets that fit {p.gpu}: {', '.join(alternatives)}"
        if alternatives
        else f"no preset fits {p.gpu_count} x {p.gpu}; default: {DEFAULT_PRESET}"
    )
    raise ServingError(
        f"serving preset {p.name} ({p.model.name}, {p.precision}) on {p.gpu_count} x {p.gpu}: "
        + "; ".join(result.problems),
        fix + "; or lower max_model_len / max_num_seqs",
    )


def disk_gb(p: Preset) -> int:
    """Data disk of the GPU VM: the weights twice plus room, rounded up to 10 GB."""
    weights_gb = weights_gib(p.model, p.precision) * GIB / 1e9
    return max(MIN_DISK_GB, math.ceil((2 * weights_gb + DISK_ROOM_GB) / 10) * 10)


# --- what the deploy needs ---------------------------------------------------------------------


def terraform_variables_for(p: Preset, cloud: Cloud) -> dict[str, str | int]:
    """The GPU VM's variables of terraform/<cloud> for `p` (after check_fit)."""
    vm = vm_of(p, cloud)
    variables: dict[str, str | int] = {"ollama_disk_gb": disk_gb(p), "model_port": VLLM_PORT}
    if cloud == "aws":
        variables["ollama_instance_type"] = vm.machine_type
    else:
        variables["ollama_machine_type"] = vm.machine_type
        variables["ollama_gpu_type"] = str(vm.accelerator)
        variables["ollama_gpu_count"] = vm.gpu_count
    return variables


def vllm_args(p: Preset) -> list[str]:
    """`vllm serve <hf_model_id> ARGS`: the arguments for this model on this GPU."""
    args = [
        "--served-model-name",
        p.served_model_name,
        "--dtype",
        p.dtype,
        "--max-model-len",
        str(p.max_model_len),
        "--max-num-seqs",
        str(p.max_num_seqs),
        "--gpu-memory-utilization",
        f"{p.gpu_memory_utilization:g}",
        "--tensor-parallel-size",
        str(p.tensor_parallel_size),
    ]
    quantization = QUANTIZATION[p.precision]
    if quantization:
        args += ["--quantization", quantization]
    if p.mistral_format:
        args += ["--tokenizer-mode", "mistral", "--load-format", "mistral"]
        args += ["--config-format", "mistral"]
    args += ["--enable-auto-tool-choice", "--tool-call-parser", p.model.tool_call_parser]
    return args


def vllm_role_vars(p: Preset) -> dict[str, object]:
    """The preset as the vllm role's variables (ansible/roles/vllm/defaults/main.yml); the port
    is the deployment's (the playbooks take it from the inventory's model_endpoint)."""
    mistral = "mistral" if p.mistral_format else ""
    return {
        "vllm_model": p.hf_model_id,
        "vllm_served_model_name": p.served_model_name,
        "vllm_dtype": p.dtype,
        "vllm_quantization": QUANTIZATION[p.precision] or "",
        "vllm_max_model_len": p.max_model_len,
        "vllm_max_num_seqs": p.max_num_seqs,
        "vllm_gpu_memory_utilization": p.gpu_memory_utilization,
        "vllm_tensor_parallel_size": p.tensor_parallel_size,
        "vllm_tokenizer_mode": mistral,
        "vllm_load_format": mistral,
        "vllm_config_format": mistral,
        "vllm_tool_call_parser": p.model.tool_call_parser,
    }


def gitlab_model(p: Preset) -> dict[str, object]:
    """What GitLab registers: model family, identifier (custom_openai/<served name>), features."""
    return {
        "family": p.model.gitlab_family,
        "identifier": f"custom_openai/{p.served_model_name}",
        "port": VLLM_PORT,
        "features": list(p.model.features),
    }


# --- Ollama ------------------------------------------------------------------------------------

# Mistral 7B: 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 128 KiB per token.
MISTRAL_7B_KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2
OLLAMA_OVERHEAD_GB = 1.5  # CUDA context and compute graph
MAX_OLLAMA_PARALLEL = 4
# The guide's model on Ollama: mistral:instruct (Mistral 7B, Q4_0) and the context it is served
# with; the deploy passes both to the ollama role with the concurrency they allow.
OLLAMA_MODEL_GB = 4.1
OLLAMA_CONTEXT = 8192


def ollama_num_parallel(
    gpu_memory_gb: float,
    model_size_gb: float,
    context: int,
    kv_bytes_per_token: int = MISTRAL_7B_KV_BYTES_PER_TOKEN,
) -> int:
    """OLLAMA_NUM_PARALLEL from the free GPU memory instead of a fixed 1.

    Ollama gives each parallel slot its own `context` tokens of cache, so
    slots = (GPU memory - model - 1.5 GB overhead) / (context x cache bytes per token),
    at least 1 (Ollama then offloads layers to the CPU rather than fail) and at most 4 (the
    slots share one GPU's compute: past 4, each request gets slower than the queue it saves).
    mistral:instruct (4.1 GB) on a T4 (15 GB) with an 8,192-token context: 8 GB free, 1 GB per
    slot: 4.
    """
    per_slot_gb = context * kv_bytes_per_token / 1e9
    free_gb = gpu_memory_gb - model_size_gb - OLLAMA_OVERHEAD_GB
    if per_slot_gb <= 0 or free_gb <= per_slot_gb:
        return 1
    return max(1, min(MAX_OLLAMA_PARALLEL, int(free_gb // per_slot_gb)))


def ollama_role_vars(cloud: Cloud, machine_type: str) -> dict[str, int]:
    """The ollama role's context and concurrency on this VM type ({} for an unknown type)."""
    vm = gpu_vm(cloud, machine_type)
    if vm is None:
        return {}
    memory = GPUS[vm.gpu].memory_gib * vm.gpu_count
    return {
        "ollama_context_length": OLLAMA_CONTEXT,
        "ollama_num_parallel": ollama_num_parallel(memory, OLLAMA_MODEL_GB, OLLAMA_CONTEXT),
    }


# --- Google Cloud: the accelerator of a machine type (the table of terraform/gcp/gpu.tf) ------

GCP_BUILTIN_GPUS: dict[str, tuple[str, int]] = {
    **{f"g2-standard-{n}": ("nvidia-l4", 1) for n in (4, 8, 12, 16, 32)},
    "g2-standard-24": ("nvidia-l4", 2),
    "g2-standard-48": ("nvidia-l4", 4),
    "g2-standard-96": ("nvidia-l4", 8),
    **{f"a2-highgpu-{n}g": ("nvidia-tesla-a100", n) for n in (1, 2, 4, 8)},
    "a2-megagpu-16g": ("nvidia-tesla-a100", 16),
    **{f"a2-ultragpu-{n}g": ("nvidia-a100-80gb", n) for n in (1, 2, 4, 8)},
}
GCP_DEFAULT_GPU = ("nvidia-tesla-t4", 1)  # what an N1 machine type gets attached by default


def gcp_accelerator(machine_type: str) -> tuple[str, int]:
    """The accelerator type and count of a Google Cloud GPU VM: built into A2 and G2, one
    nvidia-tesla-t4 attached to N1 (the Terraform default)."""
    return GCP_BUILTIN_GPUS.get(machine_type, GCP_DEFAULT_GPU)
