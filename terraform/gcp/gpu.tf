# The GPU of the model server VM. N1 machine types take attached GPUs (nvidia-tesla-t4:
# 1, 2 or 4); A2 and G2 have theirs built in, a fixed type and count per machine type.
# The instance always states its accelerator (for A2 and G2 the built-in one, which the
# API accepts and reads back unchanged), so a change of machine family never leaves a
# stale accelerator in the state. Only shapes are checked here; whether a model fits the
# GPU is decided by duoctl (serving presets) before Terraform runs.

locals {
  # Machine type => the accelerator built into it.
  builtin_gpus = merge(
    { for size in [4, 8, 12, 16, 32] : "g2-standard-${size}" => { type = "nvidia-l4", count = 1 } },
    {
      "g2-standard-24" = { type = "nvidia-l4", count = 2 }
      "g2-standard-48" = { type = "nvidia-l4", count = 4 }
      "g2-standard-96" = { type = "nvidia-l4", count = 8 }
    },
    { for n in [1, 2, 4, 8] : "a2-highgpu-${n}g" => { type = "nvidia-tesla-a100", count = n } },
    { "a2-megagpu-16g" = { type = "nvidia-tesla-a100", count = 16 } },
    { for n in [1, 2, 4, 8] : "a2-ultragpu-${n}g" => { type = "nvidia-a100-80gb", count = n } },
  )

  # Accelerator type => the counts an N1 VM may attach.
  n1_gpu_counts = {
    "nvidia-tesla-t4"   = [1, 2, 4]
    "nvidia-tesla-p4"   = [1, 2, 4]
    "nvidia-tesla-p100" = [1, 2, 4]
    "nvidia-tesla-v100" = [1, 2, 4, 8]
  }

  gpu_family  = split("-", var.ollama_machine_type)[0]
  gpu_builtin = lookup(local.builtin_gpus, var.ollama_machine_type, null)

  # Why the machine type and the accelerator do not go together; "" when they do.
  gpu_shape_problem = (
    local.gpu_family == "n1" ? (
      contains(keys(local.n1_gpu_counts), var.ollama_gpu_type)
      ? (contains(lookup(local.n1_gpu_counts, var.ollama_gpu_type, []), var.ollama_gpu_count) ? "" : "${var.ollama_gpu_type} attaches to N1 in counts of ${join(", ", lookup(local.n1_gpu_counts, var.ollama_gpu_type, []))}, not ${var.ollama_gpu_count}.")
      : "${var.ollama_gpu_type} does not attach to N1 machine types: N1 takes ${join(", ", keys(local.n1_gpu_counts))}; for nvidia-l4 use a g2-standard type, for A100 an a2 type."
    )
    : local.gpu_builtin == null ? "${var.ollama_machine_type} is not a GPU machine type this configuration knows: use n1-standard-* with nvidia-tesla-t4, g2-standard-* (nvidia-l4) or a2-highgpu-*/a2-ultragpu-* (A100)."
    : (local.gpu_builtin.type == var.ollama_gpu_type && local.gpu_builtin.count == var.ollama_gpu_count) ? ""
    : "${var.ollama_machine_type} has ${local.gpu_builtin.count} x ${local.gpu_builtin.type} built in: set ollama_gpu_type = \"${local.gpu_builtin.type}\" and ollama_gpu_count = ${local.gpu_builtin.count}."
  )

  gpu = { type = var.ollama_gpu_type, count = var.ollama_gpu_count }
}

output "gpu_vm" {
  description = "The model server VM's shape: machine type, accelerator type and count, disk size (GB)."
  value = {
    machine_type      = var.ollama_machine_type
    accelerator_type  = local.gpu.type
    accelerator_count = local.gpu.count
    disk_gb           = var.ollama_disk_gb
  }

  precondition {
    condition     = local.gpu_shape_problem == ""
    error_message = "ollama_machine_type and ollama_gpu_type do not match: ${local.gpu_shape_problem}"
  }
}

locals {
  # The model server's port: model_port (vLLM) or, when null, ollama_port.
  model_port = coalesce(var.model_port, var.ollama_port)
}
