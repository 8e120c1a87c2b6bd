# Bedrock access of the AI gateway (bedrock.tf), offline with a mocked provider whose
# account is 123456789012: nothing by default; with bedrock_models an instance role that
# may call the two invoke actions on exactly the models' ARNs; the VPC endpoint on request,
# reachable from the gateway's security group only.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  gitlab_domain  = "gitlab.example.com"
  admin_cidrs    = ["198.51.100.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample admin@example"
}

run "nothing_by_default" {
  command = apply

  assert {
    condition = (
      length(aws_iam_role.gateway) + length(aws_iam_role_policy.gateway_bedrock) + length(aws_iam_instance_profile.gateway)
      + length(aws_vpc_endpoint.bedrock_runtime) + length(aws_security_group.bedrock_endpoint)
      + length(aws_vpc_security_group_ingress_rule.bedrock_endpoint) + length(aws_vpc_security_group_egress_rule.gateway_to_bedrock_endpoint)
      + length(data.aws_caller_identity.current) + length(data.aws_partition.current)
    ) == 0
    error_message = "Without bedrock_models no Bedrock resource may exist."
  }

  assert {
    condition     = alltrue([for role in ["ai_gateway", "ollama"] : contains(["", null], aws_instance.vm[role].iam_instance_profile)])
    error_message = "Without bedrock_models only the GitLab VM (its backups) may carry an instance profile."
  }

  assert {
    condition     = alltrue([for vm in aws_instance.vm : vm.metadata_options[0].http_tokens == "required" && vm.metadata_options[0].http_put_response_hop_limit == 1])
    error_message = "Without an instance role every VM keeps IMDSv2 with a hop limit of 1."
  }

  assert {
    condition     = output.bedrock_runtime_endpoint == "" && output.bedrock_region == ""
    error_message = "The Bedrock outputs must be empty without bedrock_models."
  }
}

run "endpoint_alone_creates_nothing" {
  command = apply

  variables {
    bedrock_vpc_endpoint = true
  }

  assert {
    condition     = length(aws_vpc_endpoint.bedrock_runtime) == 0 && length(aws_iam_role.gateway) == 0
    error_message = "bedrock_vpc_endpoint without bedrock_models must create nothing."
  }

  expect_failures = [check.bedrock_endpoint_without_models]
}

run "profile_and_plain_model" {
  command = apply

  variables {
    region         = "us-west-2"
    bedrock_models = ["us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"]
  }

  assert {
    condition     = aws_instance.vm["ai_gateway"].iam_instance_profile == aws_iam_instance_profile.gateway[0].name
    error_message = "The AI gateway VM must carry the Bedrock instance profile."
  }

  assert {
    condition     = contains(["", null], aws_instance.vm["ollama"].iam_instance_profile) && aws_instance.vm["gitlab"].iam_instance_profile == aws_iam_instance_profile.gitlab.name
    error_message = "The GitLab VM keeps its backup profile, the model server has none."
  }

  assert {
    condition     = aws_iam_instance_profile.gateway[0].role == aws_iam_role.gateway[0].name && aws_iam_role_policy.gateway_bedrock[0].role == aws_iam_role.gateway[0].id
    error_message = "The instance profile and the policy must belong to the gateway role."
  }

  assert {
    condition = jsondecode(aws_iam_role.gateway[0].assume_role_policy) == {
      Version   = "2012-10-17"
      Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "ec2.amazonaws.com" } }]
    }
    error_message = "Only EC2 may assume the gateway role."
  }

  assert {
    condition     = aws_instance.vm["ai_gateway"].metadata_options[0].http_tokens == "required" && aws_instance.vm["ai_gateway"].metadata_options[0].http_put_response_hop_limit == 2
    error_message = "The gateway's container must reach IMDSv2 (tokens required, hop limit 2)."
  }

  assert {
    condition     = aws_instance.vm["gitlab"].metadata_options[0].http_put_response_hop_limit == 1 && aws_instance.vm["ollama"].metadata_options[0].http_put_response_hop_limit == 1
    error_message = "GitLab and the model server keep a hop limit of 1."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.gateway_bedrock[0].policy).Statement :
      s.Effect == "Allow" && toset(s.Action) == toset(["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"])
    ])
    error_message = "Every statement must allow exactly bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream."
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.gateway_bedrock[0].policy).Statement : s.Sid => {
        resources = toset(s.Resource)
        condition = try(s.Condition, null)
      }
      } == {
      InvokeFoundationModels = {
        resources = toset(["arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"])
        condition = null
      }
      InvokeInferenceProfiles = {
        resources = toset(["arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"])
        condition = null
      }
      InvokeModelThroughProfile0 = {
        resources = toset(["arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0"])
        condition = { StringEquals = { "bedrock:InferenceProfileArn" = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0" } }
      }
    }
    error_message = "The policy must name exactly the model's ARN, the profile's ARN, and the profile's foundation model through that profile only: ${aws_iam_role_policy.gateway_bedrock[0].policy}"
  }

  assert {
    condition     = length(aws_vpc_endpoint.bedrock_runtime) == 0 && output.bedrock_runtime_endpoint == ""
    error_message = "No VPC endpoint unless bedrock_vpc_endpoint is true."
  }

  assert {
    condition     = output.bedrock_region == "us-west-2"
    error_message = "bedrock_region must be the deployment's region."
  }
}

run "plain_models_only" {
  command = apply

  variables {
    bedrock_models = ["anthropic.claude-3-5-haiku-20241022-v1:0", "mistral.mistral-large-2402-v1:0"]
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.gateway_bedrock[0].policy).Statement == [{
      Sid    = "InvokeFoundationModels"
      Effect = "Allow"
      Action = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
      Resource = [
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/mistral.mistral-large-2402-v1:0",
      ]
    }]
    error_message = "Plain model IDs give one statement naming their foundation-model ARNs in the region: ${aws_iam_role_policy.gateway_bedrock[0].policy}"
  }
}

run "two_profiles_each_fenced_by_its_own" {
  command = apply

  variables {
    region         = "eu-central-1"
    bedrock_models = ["global.anthropic.claude-sonnet-4-5-20250929-v1:0", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0"]
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.gateway_bedrock[0].policy).Statement : s.Sid => [s.Resource, try(s.Condition.StringEquals["bedrock:InferenceProfileArn"], "")]
      } == {
      InvokeInferenceProfiles = [[
        "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
      ], ""]
      InvokeModelThroughProfile0 = [
        ["arn:aws:bedrock:*::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0"],
        "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
      ]
      InvokeModelThroughProfile1 = [
        ["arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"],
        "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
      ]
    }
    error_message = "Each profile's foundation model must be reachable through that profile only: ${aws_iam_role_policy.gateway_bedrock[0].policy}"
  }
}

run "endpoint_on_request" {
  command = apply

  variables {
    bedrock_models       = ["us.anthropic.claude-sonnet-4-20250514-v1:0"]
    bedrock_vpc_endpoint = true
  }

  assert {
    condition = (
      aws_vpc_endpoint.bedrock_runtime[0].service_name == "com.amazonaws.us-east-1.bedrock-runtime"
      && aws_vpc_endpoint.bedrock_runtime[0].vpc_endpoint_type == "Interface"
      && aws_vpc_endpoint.bedrock_runtime[0].private_dns_enabled
      && aws_vpc_endpoint.bedrock_runtime[0].vpc_id == aws_vpc.main.id
      && toset(aws_vpc_endpoint.bedrock_runtime[0].subnet_ids) == toset([aws_subnet.private.id])
      && toset(aws_vpc_endpoint.bedrock_runtime[0].security_group_ids) == toset([aws_security_group.bedrock_endpoint[0].id])
    )
    error_message = "The bedrock-runtime interface endpoint must sit in the private subnet with private DNS and its own security group."
  }

  assert {
    condition = (
      aws_vpc_security_group_ingress_rule.bedrock_endpoint[0].security_group_id == aws_security_group.bedrock_endpoint[0].id
      && aws_vpc_security_group_ingress_rule.bedrock_endpoint[0].referenced_security_group_id == aws_security_group.vm["ai_gateway"].id
      && aws_vpc_security_group_ingress_rule.bedrock_endpoint[0].cidr_ipv4 == null
      && aws_vpc_security_group_ingress_rule.bedrock_endpoint[0].cidr_ipv6 == null
      && aws_vpc_security_group_ingress_rule.bedrock_endpoint[0].ip_protocol == "tcp"
      && aws_vpc_security_group_ingress_rule.bedrock_endpoint[0].from_port == 443
      && aws_vpc_security_group_ingress_rule.bedrock_endpoint[0].to_port == 443
    )
    error_message = "The endpoint must accept HTTPS (443) from the AI gateway's security group and from nothing else."
  }

  assert {
    condition = (
      aws_vpc_security_group_egress_rule.gateway_to_bedrock_endpoint[0].security_group_id == aws_security_group.vm["ai_gateway"].id
      && aws_vpc_security_group_egress_rule.gateway_to_bedrock_endpoint[0].referenced_security_group_id == aws_security_group.bedrock_endpoint[0].id
      && aws_vpc_security_group_egress_rule.gateway_to_bedrock_endpoint[0].from_port == 443
    )
    error_message = "The gateway must be allowed out to the endpoint on 443."
  }

  assert {
    condition = (
      toset(jsondecode(aws_vpc_endpoint.bedrock_runtime[0].policy).Statement[0].Action) == toset(["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"])
      && jsondecode(aws_vpc_endpoint.bedrock_runtime[0].policy).Statement[0].Condition.StringEquals["aws:PrincipalAccount"] == "123456789012"
    )
    error_message = "The endpoint policy must allow only the two invoke actions to this account's principals."
  }

  assert {
    condition     = output.bedrock_runtime_endpoint == "https://vpce-0123456789abcdef0-abcdefgh.bedrock-runtime.us-east-1.vpce.amazonaws.com"
    error_message = "bedrock_runtime_endpoint must be the endpoint's HTTPS URL: ${output.bedrock_runtime_endpoint}"
  }
}

run "bad_model_ids_are_refused" {
  command = plan

  variables {
    bedrock_models = ["bedrock/anthropic.claude-3-5-haiku-20241022-v1:0"]
  }

  expect_failures = [var.bedrock_models]
}

run "model_arn_is_refused" {
  command = plan

  variables {
    bedrock_models = ["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"]
  }

  expect_failures = [var.bedrock_models]
}

run "wildcard_model_is_refused" {
  command = plan

  variables {
    bedrock_models = ["anthropic.*"]
  }

  expect_failures = [var.bedrock_models]
}

run "duplicate_model_is_refused" {
  command = plan

  variables {
    bedrock_models = ["anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"]
  }

  expect_failures = [var.bedrock_models]
}
