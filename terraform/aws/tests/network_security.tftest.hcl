# Plan-level invariants of the AWS configuration, run offline with a mocked
# provider: `terraform init -backend=false && terraform test`.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  gitlab_domain  = "gitlab.example.com"
  admin_cidrs    = ["198.51.100.7/32", "192.0.2.0/24"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample admin@example"
}

run "only_gitlab_is_public" {
  command = apply

  assert {
    condition     = aws_eip_association.gitlab.instance_id == aws_instance.vm["gitlab"].id
    error_message = "The Elastic IP must be attached to the GitLab VM."
  }

  assert {
    condition     = alltrue([for vm in aws_instance.vm : vm.associate_public_ip_address != true])
    error_message = "No VM may ask for an automatic public IP (GitLab's public address is its Elastic IP)."
  }

  assert {
    condition     = !aws_subnet.public.map_public_ip_on_launch && !aws_subnet.private.map_public_ip_on_launch
    error_message = "Subnets must not hand out public IPs."
  }

  assert {
    condition     = aws_instance.vm["gitlab"].subnet_id == aws_subnet.public.id
    error_message = "GitLab must sit in the public subnet."
  }

  assert {
    condition     = aws_instance.vm["ai_gateway"].subnet_id == aws_subnet.private.id && aws_instance.vm["ollama"].subnet_id == aws_subnet.private.id
    error_message = "The AI gateway and Ollama must sit in the private subnet."
  }

  assert {
    condition     = aws_route.private_internet.route_table_id == aws_route_table.private.id && aws_route.private_internet.nat_gateway_id == aws_nat_gateway.main.id && aws_route.private_internet.gateway_id == null
    error_message = "The private subnet must reach the internet through the NAT gateway only."
  }

  assert {
    condition     = aws_route.public_internet.route_table_id == aws_route_table.public.id && aws_route.public_internet.gateway_id == aws_internet_gateway.main.id
    error_message = "The public subnet must reach the internet through the internet gateway."
  }

  assert {
    condition     = aws_nat_gateway.main.subnet_id == aws_subnet.public.id
    error_message = "The NAT gateway must sit in the public subnet."
  }

  assert {
    condition     = aws_route_table_association.private.subnet_id == aws_subnet.private.id && aws_route_table_association.private.route_table_id == aws_route_table.private.id
    error_message = "The private subnet must use the NAT route table."
  }
}

run "exact_ingress_matrix" {
  command = apply

  assert {
    condition = toset(keys(aws_vpc_security_group_ingress_rule.vm)) == toset([
      "gitlab_http", "gitlab_https", "gitlab_ssh_198.51.100.7/32", "gitlab_ssh_192.0.2.0/24",
      "gateway_http", "gateway_grpc", "gateway_ssh", "ollama_api", "ollama_ssh",
      "gateway_node_exporter", "gateway_metrics", "ollama_node_exporter", "ollama_metrics",
    ])
    error_message = "The set of ingress rules changed: ${jsonencode(keys(aws_vpc_security_group_ingress_rule.vm))}"
  }

  assert {
    condition = toset([
      for k, r in aws_vpc_security_group_ingress_rule.vm : "${r.security_group_id}:${r.ip_protocol}:${r.from_port}-${r.to_port}:${coalesce(r.cidr_ipv4, r.referenced_security_group_id)}"
      ]) == toset([
      "${aws_security_group.vm["gitlab"].id}:tcp:80-80:0.0.0.0/0",
      "${aws_security_group.vm["gitlab"].id}:tcp:443-443:0.0.0.0/0",
      "${aws_security_group.vm["gitlab"].id}:tcp:22-22:198.51.100.7/32",
      "${aws_security_group.vm["gitlab"].id}:tcp:22-22:192.0.2.0/24",
      "${aws_security_group.vm["ai_gateway"].id}:tcp:5052-5052:${aws_security_group.vm["gitlab"].id}",
      "${aws_security_group.vm["ai_gateway"].id}:tcp:50052-50052:${aws_security_group.vm["gitlab"].id}",
      "${aws_security_group.vm["ai_gateway"].id}:tcp:22-22:${aws_security_group.vm["gitlab"].id}",
      "${aws_security_group.vm["ollama"].id}:tcp:11434-11434:${aws_security_group.vm["ai_gateway"].id}",
      "${aws_security_group.vm["ollama"].id}:tcp:22-22:${aws_security_group.vm["gitlab"].id}",
      "${aws_security_group.vm["ai_gateway"].id}:tcp:9100-9100:${aws_security_group.vm["gitlab"].id}",
      "${aws_security_group.vm["ai_gateway"].id}:tcp:8082-8082:${aws_security_group.vm["gitlab"].id}",
      "${aws_security_group.vm["ollama"].id}:tcp:9100-9100:${aws_security_group.vm["gitlab"].id}",
      "${aws_security_group.vm["ollama"].id}:tcp:11434-11434:${aws_security_group.vm["gitlab"].id}",
    ])
    error_message = "The ingress matrix is not least privilege."
  }

  assert {
    condition = alltrue([
      for r in aws_vpc_security_group_ingress_rule.vm :
      r.cidr_ipv4 != "0.0.0.0/0" || (r.security_group_id == aws_security_group.vm["gitlab"].id && contains([80, 443], r.from_port))
    ])
    error_message = "Only GitLab's 80 and 443 may be open to 0.0.0.0/0."
  }

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.vm : r.cidr_ipv6 == null])
    error_message = "No ingress rule may open an IPv6 range."
  }

  assert {
    condition     = length(aws_default_security_group.main.ingress) == 0 && length(aws_default_security_group.main.egress) == 0
    error_message = "The default security group must allow nothing."
  }

  assert {
    condition     = alltrue([for vm in aws_instance.vm : length(vm.vpc_security_group_ids) == 1])
    error_message = "Each VM must carry exactly its own security group."
  }

  assert {
    condition = alltrue([
      for r in aws_vpc_security_group_egress_rule.vm : r.cidr_ipv4 != "0.0.0.0/0" || contains([80, 443], r.from_port)
    ])
    error_message = "Egress to the internet must be limited to egress_ports (80, 443 by default)."
  }
}

run "disks_metadata_and_tags" {
  command = plan

  assert {
    condition     = alltrue([for vm in aws_instance.vm : vm.root_block_device[0].encrypted && vm.root_block_device[0].volume_type == "gp3"])
    error_message = "Every root disk must be encrypted gp3."
  }

  assert {
    condition = (
      aws_instance.vm["gitlab"].root_block_device[0].volume_size == 50 &&
      aws_instance.vm["ai_gateway"].root_block_device[0].volume_size == 20 &&
      aws_instance.vm["ollama"].root_block_device[0].volume_size == 50
    )
    error_message = "Root disks must default to 50/20/50 GB."
  }

  assert {
    condition     = alltrue([for vm in aws_instance.vm : vm.metadata_options[0].http_tokens == "required" && vm.metadata_options[0].http_put_response_hop_limit == 1])
    error_message = "IMDSv2 (http_tokens = required) must be enforced on every VM."
  }

  assert {
    condition = (
      aws_instance.vm["gitlab"].instance_type == "c6i.xlarge" &&
      aws_instance.vm["ai_gateway"].instance_type == "t3.medium" &&
      aws_instance.vm["ollama"].instance_type == "g4dn.xlarge"
    )
    error_message = "Default instance types changed."
  }

  assert {
    condition     = alltrue([for role, vm in aws_instance.vm : vm.tags["duo_role"] == role && vm.tags["Name"] != ""])
    error_message = "Every VM must carry the tags Name and duo_role (its Ansible group)."
  }

  assert {
    condition     = alltrue([for vm in aws_instance.vm : vm.ami == "ami-0123456789abcdef0" && vm.key_name == "duo-admin"])
    error_message = "VMs must boot the looked-up Ubuntu image with the admin key pair."
  }
}

run "gpu_zone_is_one_that_offers_the_gpu_type" {
  command = plan

  override_data {
    target = data.aws_ec2_instance_type_offerings.zones["g4dn.xlarge"]
    values = {
      locations = ["us-east-1c", "us-east-1d"]
    }
  }

  assert {
    condition     = aws_subnet.private.availability_zone == "us-east-1c" && aws_subnet.public.availability_zone == "us-east-1c"
    error_message = "The subnets must sit in the first zone offering the GPU type and the other two types."
  }
}

run "zone_without_the_gpu_type_is_refused" {
  command = plan

  variables {
    availability_zone = "us-east-1a"
  }

  override_data {
    target = data.aws_ec2_instance_type_offerings.zones["g4dn.xlarge"]
    values = {
      locations = ["us-east-1b"]
    }
  }

  expect_failures = [aws_subnet.public]
}

run "region_without_the_gpu_type_is_refused" {
  command = plan

  override_data {
    target = data.aws_ec2_instance_type_offerings.zones["g4dn.xlarge"]
    values = {
      locations = []
    }
  }

  expect_failures = [aws_subnet.public]
}
