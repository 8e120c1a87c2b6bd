# Shared names and the per-VM table every other file reads from.

locals {
  roles = ["gitlab", "ai_gateway", "ollama"]

  # Network tags carry the firewall matrix (tags allow no underscores).
  tag = { for role in local.roles : role => "${var.prefix}-${replace(role, "_", "-")}" }

  # One entry per VM; duo_role is the Ansible group name of the VM.
  vms = {
    gitlab = {
      name         = "${var.prefix}-gitlab"
      machine_type = var.gitlab_machine_type
      disk_gb      = var.gitlab_disk_gb
      public       = true
      gpu          = false
      secure_boot  = true
    }
    ai_gateway = {
      name         = "${var.prefix}-gateway"
      machine_type = var.gateway_machine_type
      disk_gb      = var.gateway_disk_gb
      public       = false
      gpu          = false
      secure_boot  = true
    }
    ollama = {
      name         = "${var.prefix}-ollama"
      machine_type = var.ollama_machine_type
      disk_gb      = var.ollama_disk_gb
      public       = false
      gpu          = true
      secure_boot  = var.ollama_secure_boot
    }
  }
}
