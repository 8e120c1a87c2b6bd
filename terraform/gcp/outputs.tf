# Same names on every cloud; `duoctl inventory gcp` turns them into the Ansible inventory.

output "cloud" {
  description = "Cloud of this deployment."
  value       = "gcp"
}

output "gitlab_public_ip" {
  description = "Static external address of the GitLab VM (the only public address)."
  value       = google_compute_address.gitlab.address
}

output "gitlab_private_ip" {
  description = "Private IP of the GitLab VM."
  value       = google_compute_instance.vm["gitlab"].network_interface[0].network_ip
}

output "gateway_private_ip" {
  description = "Private IP of the AI gateway VM."
  value       = google_compute_instance.vm["ai_gateway"].network_interface[0].network_ip
}

output "ollama_private_ip" {
  description = "Private IP of the Ollama VM."
  value       = google_compute_instance.vm["ollama"].network_interface[0].network_ip
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
  value       = var.ssh_user
}

output "dns_record_needed" {
  description = "The DNS record to create by hand before deploying GitLab, as a zone-file line; empty when Cloud DNS manages it (dns_managed_zone set)."
  value       = var.dns_managed_zone == null ? "${var.gitlab_domain}. 300 IN A ${google_compute_address.gitlab.address}" : ""
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
  description = "Instance name per role (gitlab, ai_gateway, ollama): duoctl reads each VM's SSH host keys from its guest attributes (hostkeys/)."
  value       = { for role, vm in google_compute_instance.vm : role => vm.name }
}

output "zone" {
  description = "Zone of the three VMs."
  value       = var.zone
}

output "backup_bucket" {
  description = "Bucket GitLab uploads its backups to (only the GitLab VM's service account may write to it)."
  value       = google_storage_bucket.backups.name
}

output "backup" {
  description = "Where GitLab's backup upload goes, as the gitlab role takes it: the provider, the bucket and its project (the VM's service account is the credential)."
  value = {
    provider = "google"
    bucket   = google_storage_bucket.backups.name
    project  = var.project_id
  }
}

output "gitlab_service_account" {
  description = "Service account of the GitLab VM (no key exists)."
  value       = google_service_account.gitlab.email
}

output "gpu_schedule" {
  description = "Office hours of the GPU VM, or null when it runs all the time."
  value       = var.gpu_schedule
}
