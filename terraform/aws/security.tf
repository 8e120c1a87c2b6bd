# Least-privilege security groups. Only GitLab is reachable from the internet
# (80/443 for users and Let's Encrypt HTTP-01, 22 from admin_cidrs); the AI
# gateway and Ollama accept traffic from the VM in front of them only, and SSH
# from the GitLab VM (the SSH jump host).

locals {
  anywhere = "0.0.0.0/0"

  # key => where the rule applies, what it lets in, and from where (a CIDR or a role's group).
  ingress_rules = merge(
    {
      gitlab_http  = { role = "gitlab", port = 80, cidr = local.anywhere, from_role = null, description = "HTTP from anywhere: Let's Encrypt HTTP-01 and redirect to HTTPS" }
      gitlab_https = { role = "gitlab", port = 443, cidr = local.anywhere, from_role = null, description = "HTTPS from anywhere: GitLab users" }
    },
    { for cidr in var.admin_cidrs : "gitlab_ssh_${cidr}" => { role = "gitlab", port = 22, cidr = cidr, from_role = null, description = "SSH from an administrator network" } },
    {
      gateway_http = { role = "ai_gateway", port = var.gateway_port, cidr = null, from_role = "gitlab", description = "AI gateway HTTP API from GitLab" }
      gateway_grpc = { role = "ai_gateway", port = var.gateway_grpc_port, cidr = null, from_role = "gitlab", description = "AI gateway agent platform gRPC from GitLab" }
      gateway_ssh  = { role = "ai_gateway", port = 22, cidr = null, from_role = "gitlab", description = "SSH through the GitLab VM (jump host)" }
      ollama_api   = { role = "ollama", port = local.model_port, cidr = null, from_role = "ai_gateway", description = "Ollama API from the AI gateway" }
      ollama_ssh   = { role = "ollama", port = 22, cidr = null, from_role = "gitlab", description = "SSH through the GitLab VM (jump host)" }
      # GitLab's bundled Prometheus scrapes the private VMs.
      gateway_node_exporter = { role = "ai_gateway", port = var.metrics_ports.node_exporter, cidr = null, from_role = "gitlab", description = "Node exporter, scraped by GitLab's Prometheus" }
      gateway_metrics       = { role = "ai_gateway", port = var.metrics_ports.gateway, cidr = null, from_role = "gitlab", description = "AI gateway metrics, scraped by GitLab's Prometheus" }
      ollama_node_exporter  = { role = "ollama", port = var.metrics_ports.node_exporter, cidr = null, from_role = "gitlab", description = "Node exporter, scraped by GitLab's Prometheus" }
      ollama_metrics        = { role = "ollama", port = local.model_port, cidr = null, from_role = "gitlab", description = "The model server (metrics or probe), scraped by GitLab's Prometheus" }
    },
  )

  # One rule per group, port and source: AWS refuses a duplicate (a metrics port equal to a
  # service port would make one).
  ingress_signatures = [for r in values(local.ingress_rules) : "${r.role}:${r.port}:${coalesce(r.cidr, r.from_role)}"]

  # The mirror image of the group-to-group rules, plus the internet ports every VM needs.
  egress_rules = merge(
    { for key, rule in local.ingress_rules : "${rule.from_role}_to_${key}" => {
      role = rule.from_role, port = rule.port, cidr = null, to_role = rule.role, description = "To ${rule.role}: ${rule.description}"
    } if rule.from_role != null },
    { for pair in setproduct(local.roles, var.egress_ports) : "${pair[0]}_internet_${pair[1]}" => {
      role = pair[0], port = pair[1], cidr = local.anywhere, to_role = null, description = "TCP ${pair[1]} to the internet: packages, images, models, certificates"
    } },
  )
}

resource "aws_security_group" "vm" {
  #checkov:skip=CKV2_AWS_5:Each group is attached to its VM through local.vms (aws_instance.vm); checkov's graph does not follow for_each through locals.
  for_each = toset(local.roles)

  name        = "${var.prefix}-${replace(each.key, "_", "-")}"
  description = "${var.prefix} ${each.key} VM"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${var.prefix}-${replace(each.key, "_", "-")}", duo_role = each.key }
}

resource "aws_vpc_security_group_ingress_rule" "vm" {
  #checkov:skip=CKV_AWS_260:Port 80 must be open to the internet for Let's Encrypt HTTP-01 validation; GitLab redirects it to HTTPS.
  for_each = local.ingress_rules

  security_group_id            = aws_security_group.vm[each.value.role].id
  description                  = each.value.description
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.from_role == null ? null : aws_security_group.vm[each.value.from_role].id

  tags = { Name = "${var.prefix}-${replace(each.key, "_", "-")}", duo_role = each.value.role }

  lifecycle {
    precondition {
      condition     = length(distinct(local.ingress_signatures)) == length(local.ingress_signatures)
      error_message = "Two ingress rules open the same port of the same VM to the same source: make metrics_ports differ from each other and from gateway_port, gateway_grpc_port and the model server's port."
    }
  }
}

resource "aws_vpc_security_group_egress_rule" "vm" {
  for_each = local.egress_rules

  security_group_id            = aws_security_group.vm[each.value.role].id
  description                  = each.value.description
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.to_role == null ? null : aws_security_group.vm[each.value.to_role].id

  tags = { Name = "${var.prefix}-${replace(each.key, "_", "-")}", duo_role = each.value.role }
}
