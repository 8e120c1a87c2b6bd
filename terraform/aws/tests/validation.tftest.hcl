# Bad input is refused at plan time with a message naming the fix.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  gitlab_domain  = "gitlab.example.com"
  admin_cidrs    = ["198.51.100.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample"
}

run "empty_admin_cidrs" {
  command = plan
  variables {
    admin_cidrs = []
  }
  expect_failures = [var.admin_cidrs]
}

run "ssh_open_to_the_world" {
  command = plan
  variables {
    admin_cidrs = ["198.51.100.7/32", "0.0.0.0/0"]
  }
  expect_failures = [var.admin_cidrs]
}

run "admin_cidr_not_a_cidr" {
  command = plan
  variables {
    admin_cidrs = ["my-laptop"]
  }
  expect_failures = [var.admin_cidrs]
}

run "domain_with_scheme" {
  command = plan
  variables {
    gitlab_domain = "https://gitlab.example.com"
  }
  expect_failures = [var.gitlab_domain]
}

run "private_key_instead_of_public" {
  command = plan
  variables {
    ssh_public_key = "-----BEGIN OPENSSH PRIVATE KEY-----"
  }
  expect_failures = [var.ssh_public_key]
}

run "bad_zone_id" {
  command = plan
  variables {
    route53_zone_id = "example.com"
  }
  expect_failures = [var.route53_zone_id]
}

run "bad_prefix" {
  command = plan
  variables {
    prefix = "Duo_Prod"
  }
  expect_failures = [var.prefix]
}

run "disk_too_small" {
  command = plan
  variables {
    ollama_disk_gb = 8
  }
  expect_failures = [var.ollama_disk_gb]
}

run "instance_type_typo" {
  command = plan
  variables {
    gitlab_instance_type = "c6xlarge"
  }
  expect_failures = [var.gitlab_instance_type]
}

run "kms_key_not_an_arn" {
  command = plan
  variables {
    ebs_kms_key_id = "my-key"
  }
  expect_failures = [var.ebs_kms_key_id]
}

run "zone_name_malformed" {
  command = plan
  variables {
    availability_zone = "us-east-1"
  }
  expect_failures = [var.availability_zone]
}
