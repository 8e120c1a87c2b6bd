# Least-privilege firewall by network tag, the same matrix as on AWS. Only
# GitLab is reachable from the internet (80/443 for users and Let's Encrypt
# HTTP-01, 22 from admin_cidrs); the AI gateway and Ollama accept traffic from
# the VM in front of them only, and SSH from the GitLab VM (the jump host).
# Egress is denied except the internet ports and the hops of the matrix.

locals {
  anywhere = "0.0.0.0/0"

  ingress_rules = {
    gitlab_web  = { role = "gitlab", ports = [80, 443], source_ranges = [local.anywhere], source_role = null, description = "HTTP(S) from anywhere: GitLab users and Let's Encrypt HTTP-01" }
    gitlab_ssh  = { role = "gitlab", ports = [22], source_ranges = var.admin_cidrs, source_role = null, description = "SSH from administrator networks" }
    gateway_api = { role = "ai_gateway", ports = [var.gateway_port, var.gateway_grpc_port], source_ranges = null, source_role = "gitlab", description = "AI gateway HTTP API and agent platform gRPC from GitLab" }
    gateway_ssh = { role = "ai_gateway", ports = [22], source_ranges = null, source_role = "gitlab", description = "SSH through the GitLab VM (jump host)" }
    ollama_api  = { role = "ollama", ports = [local.model_port], source_ranges = null, source_role = "ai_gateway", description = "Ollama API from the AI gateway" }
    ollama_ssh  = { role = "ollama", ports = [22], source_ranges = null, source_role = "gitlab", description = "SSH through the GitLab VM (jump host)" }
    # GitLab's bundled Prometheus scrapes the private VMs.
    gateway_metrics = { role = "ai_gateway", ports = [var.metrics_ports.node_exporter, var.metrics_ports.gateway], source_ranges = null, source_role = "gitlab", description = "Node exporter and AI gateway metrics, scraped by GitLab's Prometheus" }
    ollama_metrics  = { role = "ollama", ports = [var.metrics_ports.node_exporter, local.model_port], source_ranges = null, source_role = "gitlab", description = "Node exporter and the model server (metrics or probe), scraped by GitLab's Prometheus" }
  }

  # Egress rules cannot name a destination tag, so the matrix hops go to the subnet.
  egress_rules = {
    internet          = { roles = local.roles, ports = var.egress_ports, destination_ranges = [local.anywhere], description = "Packages, container images, models and certificates" }
    gitlab_to_private = { roles = ["gitlab"], ports = [22, var.gateway_port, var.gateway_grpc_port], destination_ranges = [var.subnet_cidr], description = "GitLab to the AI gateway, and SSH jumps" }
    gitlab_scrapes    = { roles = ["gitlab"], ports = distinct([var.metrics_ports.node_exporter, var.metrics_ports.gateway, local.model_port]), destination_ranges = [var.subnet_cidr], description = "GitLab's Prometheus to the private VMs' metrics" }
    gateway_to_ollama = { roles = ["ai_gateway"], ports = [local.model_port], destination_ranges = [var.subnet_cidr], description = "AI gateway to Ollama" }
  }
}

resource "google_compute_firewall" "ingress" {
  #checkov:skip=CKV_GCP_106:Port 80 must be open to the internet for Let's Encrypt HTTP-01 validation; GitLab redirects it to HTTPS.
  for_each = local.ingress_rules

  name        = "${var.prefix}-allow-${replace(each.key, "_", "-")}"
  network     = google_compute_network.main.id
  description = each.value.description
  direction   = "INGRESS"
  priority    = 1000

  allow {
    protocol = "tcp"
    ports    = [for p in each.value.ports : tostring(p)]
  }

  source_ranges = each.value.source_ranges
  source_tags   = each.value.source_role == null ? null : [local.tag[each.value.source_role]]
  target_tags   = [local.tag[each.value.role]]
}

resource "google_compute_firewall" "egress" {
  for_each = local.egress_rules

  name               = "${var.prefix}-egress-${replace(each.key, "_", "-")}"
  network            = google_compute_network.main.id
  description        = each.value.description
  direction          = "EGRESS"
  priority           = 1000
  destination_ranges = each.value.destination_ranges
  target_tags        = [for role in each.value.roles : local.tag[role]]

  allow {
    protocol = "tcp"
    ports    = [for p in each.value.ports : tostring(p)]
  }
}

resource "google_compute_firewall" "egress_deny_all" {
  name               = "${var.prefix}-egress-deny-all"
  network            = google_compute_network.main.id
  description        = "Deny every other egress from the three VMs"
  direction          = "EGRESS"
  priority           = 65000
  destination_ranges = [local.anywhere]
  target_tags        = values(local.tag)

  deny {
    protocol = "all"
  }
}
