# The GPU of the model server VM: its vCPU quota, and the model server's port. Only shapes
# are checked here; whether a model fits the GPU is decided by duoctl (serving presets)
# before Terraform runs.

locals {
  # The model server's port: model_port (vLLM) or, when null, ollama_port.
  model_port = coalesce(var.model_port, var.ollama_port)

  # On-Demand vCPU quotas per instance family: g4dn, g5, g6, g6e count against the G and VT
  # quota, p4d and p5 against the P quota.
  gpu_family     = split(".", var.ollama_instance_type)[0]
  gpu_quota_code = startswith(local.gpu_family, "p") ? "L-417A185B" : "L-DB2E81BA"
  gpu_quota_name = startswith(local.gpu_family, "p") ? "Running On-Demand P instances" : "Running On-Demand G and VT instances"

  # vCPUs of the GPU instance types the serving presets use (the quota counts vCPUs).
  gpu_vcpus = lookup({
    "g4dn.xlarge"   = 4, "g4dn.2xlarge" = 8, "g5.xlarge" = 4, "g5.2xlarge" = 8,
    "g6.xlarge"     = 4, "g6.2xlarge" = 8, "g6.12xlarge" = 48, "g6e.xlarge" = 4,
    "g6e.12xlarge"  = 48, "p4d.24xlarge" = 96, "p5.4xlarge" = 16, "p5.48xlarge" = 192,
    "p4de.24xlarge" = 96,
  }, var.ollama_instance_type, 4)
}

output "gpu_vm" {
  description = "The model server VM's shape: instance type, the vCPU quota it counts against, its vCPUs, root disk size (GB)."
  value = {
    machine_type = var.ollama_instance_type
    quota_code   = local.gpu_quota_code
    vcpus        = local.gpu_vcpus
    disk_gb      = var.ollama_disk_gb
  }
}
