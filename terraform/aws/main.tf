# Shared names and the per-VM table every other file reads from.

locals {
  roles = ["gitlab", "ai_gateway", "ollama"]

  # One entry per VM; duo_role is the Ansible group name of the VM.
  vms = {
    gitlab = {
      name          = "${var.prefix}-gitlab"
      instance_type = var.gitlab_instance_type
      disk_gb       = var.gitlab_disk_gb
      subnet_id     = aws_subnet.public.id
      sg_id         = aws_security_group.vm["gitlab"].id
    }
    ai_gateway = {
      name          = "${var.prefix}-gateway"
      instance_type = var.gateway_instance_type
      disk_gb       = var.gateway_disk_gb
      subnet_id     = aws_subnet.private.id
      sg_id         = aws_security_group.vm["ai_gateway"].id
    }
    ollama = {
      name          = "${var.prefix}-ollama"
      instance_type = var.ollama_instance_type
      disk_gb       = var.ollama_disk_gb
      subnet_id     = aws_subnet.private.id
      sg_id         = aws_security_group.vm["ollama"].id
    }
  }

  # Ubuntu's cloud images log in as this user.
  ssh_user = "ubuntu"
}
