# Amazon Bedrock for the AI gateway: an instance role that may invoke exactly the models
# in var.bedrock_models, and optionally a private bedrock-runtime endpoint. Nothing here
# exists while bedrock_models is empty.
#
# A system-defined cross-region inference profile (us., eu., apac., global. ...) is
# invoked by its ARN in this account and region, and Bedrock then runs the foundation
# model in one of the regions the profile routes to. IAM checks both ARNs, so the policy
# names the profile and, for its foundation model, every region (the region segment is a
# wildcard; for global profiles it also matches the region-less ARN) but only through that
# profile: the condition key bedrock:InferenceProfileArn (Amazon Bedrock user guide,
# "Prerequisites for inference profiles"). A plain model ID is invoked in this region only.

locals {
  bedrock_enabled  = length(var.bedrock_models) > 0
  bedrock_endpoint = local.bedrock_enabled && var.bedrock_vpc_endpoint

  # InvokeModel also authorizes Converse; the streaming action also ConverseStream.
  bedrock_actions = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]

  bedrock_profile_pattern = "^(us|us-gov|eu|apac|jp|au|ca|global)\\."
  bedrock_partition       = try(data.aws_partition.current[0].partition, "aws")
  bedrock_account         = try(data.aws_caller_identity.current[0].account_id, "")

  # Sorted so the statement numbers do not move when the list is reordered.
  bedrock_profiles = sort([for m in var.bedrock_models : m if can(regex(local.bedrock_profile_pattern, m))])
  bedrock_plain    = sort([for m in var.bedrock_models : m if !can(regex(local.bedrock_profile_pattern, m))])

  bedrock_profile_arns = [
    for p in local.bedrock_profiles : "arn:${local.bedrock_partition}:bedrock:${var.region}:${local.bedrock_account}:inference-profile/${p}"
  ]
  bedrock_plain_arns = [
    for m in local.bedrock_plain : "arn:${local.bedrock_partition}:bedrock:${var.region}::foundation-model/${m}"
  ]
  # The foundation model behind each profile, in any region the profile routes to.
  bedrock_routed_arns = [
    for p in local.bedrock_profiles : "arn:${local.bedrock_partition}:bedrock:*::foundation-model/${replace(p, "/${local.bedrock_profile_pattern}/", "")}"
  ]

  bedrock_policy = {
    Version = "2012-10-17"
    Statement = concat(
      length(local.bedrock_plain_arns) == 0 ? [] : [{
        Sid      = "InvokeFoundationModels"
        Effect   = "Allow"
        Action   = local.bedrock_actions
        Resource = local.bedrock_plain_arns
      }],
      length(local.bedrock_profile_arns) == 0 ? [] : [{
        Sid      = "InvokeInferenceProfiles"
        Effect   = "Allow"
        Action   = local.bedrock_actions
        Resource = local.bedrock_profile_arns
      }],
      [for i, arn in local.bedrock_profile_arns : {
        Sid       = "InvokeModelThroughProfile${i}"
        Effect    = "Allow"
        Action    = local.bedrock_actions
        Resource  = [local.bedrock_routed_arns[i]]
        Condition = { StringEquals = { "bedrock:InferenceProfileArn" = arn } }
      }],
    )
  }
}

data "aws_partition" "current" {
  count = local.bedrock_enabled ? 1 : 0
}

data "aws_caller_identity" "current" {
  count = local.bedrock_enabled ? 1 : 0
}

resource "aws_iam_role" "gateway" {
  count = local.bedrock_enabled ? 1 : 0

  name        = "${var.prefix}-gateway"
  description = "${var.prefix} AI gateway VM: invokes the Bedrock models of bedrock_models"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ec2.amazonaws.com" }
    }]
  })

  tags = { Name = "${var.prefix}-gateway", duo_role = "ai_gateway" }
}

resource "aws_iam_role_policy" "gateway_bedrock" {
  count = local.bedrock_enabled ? 1 : 0

  name   = "bedrock-invoke"
  role   = aws_iam_role.gateway[0].id
  policy = jsonencode(local.bedrock_policy)
}

resource "aws_iam_instance_profile" "gateway" {
  count = local.bedrock_enabled ? 1 : 0

  name = "${var.prefix}-gateway"
  role = aws_iam_role.gateway[0].name

  tags = { Name = "${var.prefix}-gateway", duo_role = "ai_gateway" }
}

# --- the private endpoint ---------------------------------------------------------------

resource "aws_security_group" "bedrock_endpoint" {
  count = local.bedrock_endpoint ? 1 : 0

  name        = "${var.prefix}-bedrock-endpoint"
  description = "${var.prefix} bedrock-runtime VPC endpoint: HTTPS from the AI gateway only"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${var.prefix}-bedrock-endpoint", duo_role = "ai_gateway" }
}

resource "aws_vpc_security_group_ingress_rule" "bedrock_endpoint" {
  count = local.bedrock_endpoint ? 1 : 0

  security_group_id            = aws_security_group.bedrock_endpoint[0].id
  description                  = "HTTPS from the AI gateway"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.vm["ai_gateway"].id

  tags = { Name = "${var.prefix}-bedrock-endpoint-https", duo_role = "ai_gateway" }
}

# The gateway's own way out to the endpoint, whatever egress_ports holds.
resource "aws_vpc_security_group_egress_rule" "gateway_to_bedrock_endpoint" {
  count = local.bedrock_endpoint ? 1 : 0

  security_group_id            = aws_security_group.vm["ai_gateway"].id
  description                  = "HTTPS to the bedrock-runtime VPC endpoint"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.bedrock_endpoint[0].id

  tags = { Name = "${var.prefix}-gateway-to-bedrock-endpoint", duo_role = "ai_gateway" }
}

resource "aws_vpc_endpoint" "bedrock_runtime" {
  count = local.bedrock_endpoint ? 1 : 0

  vpc_id              = aws_vpc.main.id
  service_name        = "com.amazonaws.${var.region}.bedrock-runtime"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = [aws_subnet.private.id]
  security_group_ids  = [aws_security_group.bedrock_endpoint[0].id]
  private_dns_enabled = true

  # Only this account's principals, only the two invoke actions, only the models above.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "InvokeTheDeploymentsModels"
      Effect    = "Allow"
      Principal = { AWS = "*" }
      Action    = local.bedrock_actions
      Resource  = concat(local.bedrock_plain_arns, local.bedrock_profile_arns, local.bedrock_routed_arns)
      Condition = { StringEquals = { "aws:PrincipalAccount" = local.bedrock_account } }
    }]
  })

  tags = { Name = "${var.prefix}-bedrock-runtime", duo_role = "ai_gateway" }
}

check "bedrock_endpoint_without_models" {
  assert {
    condition     = !var.bedrock_vpc_endpoint || local.bedrock_enabled
    error_message = "bedrock_vpc_endpoint is true but bedrock_models is empty: no endpoint is created. List the models the AI gateway may use in bedrock_models."
  }
}

output "bedrock_region" {
  description = "AWS region the AI gateway calls Bedrock in (AWS_REGION of the gateway's container); empty when bedrock_models is empty."
  value       = local.bedrock_enabled ? var.region : ""
}

output "bedrock_runtime_endpoint" {
  description = "HTTPS URL of the bedrock-runtime VPC endpoint (AWS_BEDROCK_RUNTIME_ENDPOINT of the gateway's container); empty without the endpoint."
  value       = local.bedrock_endpoint ? "https://${try(aws_vpc_endpoint.bedrock_runtime[0].dns_entry[0].dns_name, "bedrock-runtime.${var.region}.amazonaws.com")}" : ""
}
