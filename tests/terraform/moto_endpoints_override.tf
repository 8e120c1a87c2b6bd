# Test-only provider settings: copied (never into terraform/aws itself) into a
# temporary copy of the configuration by moto_deployment.py and
# tooling.aws_config_on_moto, with MOTO_ENDPOINT replaced by the address of the
# moto server on loopback (tests/doubles/aws_moto_server.py). Terraform merges
# this file into the provider "aws" block of versions.tf.

provider "aws" {
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  # The provider makes this the number of attempts, so 1 meant no retry at all:
  # one connection error on a loaded machine (e.g. "use of closed network
  # connection") failed the whole apply or destroy. Five attempts ride out
  # such a hiccup (the backoff between them is a few seconds at most), while
  # an error moto keeps answering (a call it does not implement) still fails
  # within seconds, not after the provider's default of 25 attempts.
  max_retries = 5

  # moto answers S3 on its own address, not on BUCKET.ADDRESS.
  s3_use_path_style = true

  endpoints {
    ec2           = "MOTO_ENDPOINT"
    iam           = "MOTO_ENDPOINT"
    route53       = "MOTO_ENDPOINT"
    s3            = "MOTO_ENDPOINT"
    scheduler     = "MOTO_ENDPOINT"
    servicequotas = "MOTO_ENDPOINT"
    sts           = "MOTO_ENDPOINT"
  }
}
