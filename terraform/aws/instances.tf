# The three VMs: Ubuntu 24.04, encrypted gp3 root disks, IMDSv2 only.

locals {
  # The AI gateway runs in a Docker container, one network hop behind the VM: with an
  # instance role (Bedrock) its IMDSv2 token must survive that hop, so the limit is 2 there.
  # Everywhere else it stays 1, so no container reaches the metadata service.
  imds_hop_limit = { for role in local.roles : role => role == "ai_gateway" && local.bedrock_enabled ? 2 : 1 }
}

data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

resource "aws_key_pair" "admin" {
  key_name   = "${var.prefix}-admin"
  public_key = trimspace(var.ssh_public_key)

  tags = { Name = "${var.prefix}-admin", duo_role = "shared" }
}

resource "aws_instance" "vm" {
  #checkov:skip=CKV_AWS_126:Basic five-minute CloudWatch metrics suffice for three VMs; detailed monitoring is billed per instance.
  #checkov:skip=CKV2_AWS_41:The GitLab VM always has an instance profile (its backup bucket) and the AI gateway one when bedrock_models is set; the model server calls no AWS API, so a role there would only hand out credentials nobody uses.
  for_each = local.vms

  ami                    = data.aws_ami.ubuntu.id
  instance_type          = each.value.instance_type
  subnet_id              = each.value.subnet_id
  vpc_security_group_ids = [each.value.sg_id]
  key_name               = aws_key_pair.admin.key_name
  ebs_optimized          = true
  # GitLab writes its backups (backup.tf); the AI gateway invokes Bedrock when bedrock_models
  # is set (bedrock.tf); the model server calls no AWS API and gets no role.
  iam_instance_profile = lookup({
    gitlab     = aws_iam_instance_profile.gitlab.name
    ai_gateway = local.bedrock_enabled ? aws_iam_instance_profile.gateway[0].name : null
  }, each.key, null)
  # No automatic public IP: the subnets do not map one, and GitLab's public
  # address is its Elastic IP. (Setting associate_public_ip_address = false
  # here would make every plan replace the GitLab VM once the EIP is attached.)

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = local.imds_hop_limit[each.key]
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = each.value.disk_gb
    encrypted             = true
    kms_key_id            = var.ebs_kms_key_id
    delete_on_termination = true

    tags = { Name = "${each.value.name}-root", duo_role = each.key }
  }

  tags = { Name = each.value.name, duo_role = each.key }

  lifecycle {
    # A newer Ubuntu image must not rebuild a running VM; rebuild on purpose with -replace.
    ignore_changes = [ami]

    precondition {
      condition     = data.aws_ami.ubuntu.id != ""
      error_message = "No Ubuntu 24.04 image from Canonical was found in ${var.region}."
    }
  }
}

resource "aws_eip" "gitlab" {
  domain = "vpc"

  tags = { Name = "${var.prefix}-gitlab", duo_role = "gitlab" }

  depends_on = [aws_internet_gateway.main]
}

resource "aws_eip_association" "gitlab" {
  allocation_id = aws_eip.gitlab.id
  instance_id   = aws_instance.vm["gitlab"].id
}

# Warn (without blocking) when the account cannot run the GPU VM: new accounts
# start with a quota of 0 vCPUs for G and P instances.
check "gpu_quota" {
  data "aws_servicequotas_service_quota" "gpu_vcpus" {
    service_code = "ec2"
    quota_code   = local.gpu_quota_code
  }

  assert {
    condition     = data.aws_servicequotas_service_quota.gpu_vcpus.value >= local.gpu_vcpus
    error_message = "The quota \"${local.gpu_quota_name}\" (${local.gpu_quota_code}) in ${var.region} is ${data.aws_servicequotas_service_quota.gpu_vcpus.value} vCPUs; ${var.ollama_instance_type} needs at least ${local.gpu_vcpus}. Request more: aws service-quotas request-service-quota-increase --service-code ec2 --quota-code ${local.gpu_quota_code} --desired-value ${local.gpu_vcpus} --region ${var.region}"
  }
}
