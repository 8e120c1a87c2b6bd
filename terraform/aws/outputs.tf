# Same names on every cloud; `duoctl inventory aws` turns them into the Ansible inventory.

output "cloud" {
  description = "Cloud of this deployment."
  value       = "aws"
}

output "gitlab_public_ip" {
  description = "Elastic IP of the GitLab VM (the only public address)."
  value       = aws_eip.gitlab.public_ip
}

output "gitlab_private_ip" {
  description = "Private IP of the GitLab VM."
  value       = aws_instance.vm["gitlab"].private_ip
}

output "gateway_private_ip" {
  description = "Private IP of the AI gateway VM."
  value       = aws_instance.vm["ai_gateway"].private_ip
}

output "ollama_private_ip" {
  description = "Private IP of the Ollama VM."
  value       = aws_instance.vm["ollama"].private_ip
}

output "gitlab_domain" {
  description = "Host name GitLab is served on."
  value       = var.gitlab_domain
}

output "gitlab_url" {
  description = "External URL of GitLab."
  value       = "https://${var.gitlab_domain}"
}

output "ssh_user" {
  description = "SSH login user on the three VMs."
  value       = local.ssh_user
}

output "dns_record_needed" {
  description = "The DNS record to create by hand before deploying GitLab, as a zone-file line; empty when Route 53 manages it (route53_zone_id set)."
  value       = var.route53_zone_id == null ? "${var.gitlab_domain}. 300 IN A ${aws_eip.gitlab.public_ip}" : ""
}

output "gateway_port" {
  description = "HTTP port of the AI gateway."
  value       = var.gateway_port
}

output "gateway_grpc_port" {
  description = "gRPC port of the AI gateway's agent platform."
  value       = var.gateway_grpc_port
}

output "ollama_port" {
  description = "HTTP port of the model server (Ollama or vLLM); the same as model_port, kept under its first name."
  value       = local.model_port
}

output "model_port" {
  description = "HTTP port of the model server (Ollama: 11434, vLLM: 8000)."
  value       = local.model_port
}

output "instances" {
  description = "Instance ID per role (gitlab, ai_gateway, ollama): duoctl reads each VM's SSH host keys from its console output (ec2:GetConsoleOutput)."
  value       = { for role, vm in aws_instance.vm : role => vm.id }
}
