# Test-only provider settings: copied (never into terraform/aws itself) into a
# temporary copy of the configuration by test_aws_moto_apply.py, with
# MOTO_ENDPOINT replaced by the address of the moto server on loopback
# (tests/doubles/aws_moto_server.py). Terraform merges this file into the
# provider "aws" block of versions.tf.

provider "aws" {
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  # Fail fast instead of retrying what moto does not implement.
  max_retries = 1

  endpoints {
    ec2           = "MOTO_ENDPOINT"
    iam           = "MOTO_ENDPOINT"
    route53       = "MOTO_ENDPOINT"
    servicequotas = "MOTO_ENDPOINT"
    sts           = "MOTO_ENDPOINT"
  }
}
