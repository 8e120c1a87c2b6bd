# Values the mocked aws provider returns; shared by every test file.

mock_data "aws_ami" {
  defaults = {
    id = "ami-0123456789abcdef0"
  }
}

mock_data "aws_ec2_instance_type_offerings" {
  defaults = {
    locations = ["us-east-1a", "us-east-1b", "us-east-1c"]
  }
}

mock_data "aws_servicequotas_service_quota" {
  defaults = {
    # vCPUs: enough for every serving preset's instance type (p4d.24xlarge needs 96).
    value = 256
  }
}

mock_resource "aws_eip" {
  defaults = {
    public_ip = "203.0.113.10"
  }
}

mock_resource "aws_instance" {
  defaults = {
    private_ip = "10.0.2.10"
    # Computed when not set, as on AWS: a VM without an instance profile has none.
    iam_instance_profile = ""
  }
}

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
  }
}

mock_data "aws_partition" {
  defaults = {
    partition  = "aws"
    dns_suffix = "amazonaws.com"
  }
}

mock_resource "aws_vpc_endpoint" {
  defaults = {
    dns_entry = [{
      dns_name       = "vpce-0123456789abcdef0-abcdefgh.bedrock-runtime.us-east-1.vpce.amazonaws.com"
      hosted_zone_id = "Z7HUB22UULQXV"
    }]
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    # EventBridge Scheduler's target checks that role_arn is an ARN.
    arn = "arn:aws:iam::123456789012:role/mocked-role"
  }
}
