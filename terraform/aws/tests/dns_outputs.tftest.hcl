# DNS record only when a Route 53 zone is given, and the outputs' contract.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  gitlab_domain  = "gitlab.example.com"
  admin_cidrs    = ["198.51.100.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample"
}

run "no_zone_means_no_record_and_instructions" {
  command = apply

  assert {
    condition     = length(aws_route53_record.gitlab) == 0
    error_message = "Without route53_zone_id no record may be created."
  }

  assert {
    condition     = output.dns_record_needed == "gitlab.example.com. 300 IN A 203.0.113.10"
    error_message = "dns_record_needed must name the record to create: ${output.dns_record_needed}"
  }

  assert {
    condition = (
      output.cloud == "aws" && output.ssh_user == "ubuntu" &&
      output.gitlab_domain == "gitlab.example.com" && output.gitlab_url == "https://gitlab.example.com" &&
      output.gitlab_public_ip == "203.0.113.10" && output.gateway_private_ip == "10.0.2.10"
    )
    error_message = "Outputs do not follow the contract."
  }
}

run "zone_creates_the_a_record" {
  command = apply

  variables {
    route53_zone_id = "Z0123456789ABCDEFGHIJ"
  }

  assert {
    condition = (
      length(aws_route53_record.gitlab) == 1 &&
      aws_route53_record.gitlab[0].name == "gitlab.example.com" &&
      aws_route53_record.gitlab[0].type == "A" &&
      aws_route53_record.gitlab[0].records == toset(["203.0.113.10"])
    )
    error_message = "With route53_zone_id the A record domain -> Elastic IP must be created."
  }

  assert {
    condition     = output.dns_record_needed == ""
    error_message = "Nothing is left to create by hand when the zone is managed."
  }
}
