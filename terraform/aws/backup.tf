# GitLab's backups: one bucket per deployment that only the GitLab VM may write to, through
# its own instance role (no access key exists: the VM's IMDSv2 hands out short-lived
# credentials, which GitLab's backup upload reads with use_iam_profile).

locals {
  # Unique per account, region and prefix (S3 bucket names are global).
  backup_bucket  = "${var.prefix}-backups-${data.aws_caller_identity.this.account_id}-${var.region}"
  backup_kms_cmk = var.backup_kms_key != null

  # What GitLab's upload (fog-aws, multipart above backup_multipart_chunk_size) and a restore
  # need: list the bucket, put and get objects, abort and list the parts of a multipart
  # upload. Never DeleteObject: the lifecycle rule expires old backups, so a compromised VM
  # cannot erase the history (versioning keeps what it overwrites).
  backup_object_actions = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
  backup_policy = {
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "ListTheBackupBucket"
          Effect   = "Allow"
          Action   = ["s3:ListBucket"]
          Resource = [aws_s3_bucket.backups.arn]
        },
        {
          Sid      = "ReadAndWriteBackups"
          Effect   = "Allow"
          Action   = local.backup_object_actions
          Resource = ["${aws_s3_bucket.backups.arn}/*"]
        },
      ],
      # SSE-KMS: an upload needs a data key, a multipart upload and a download its decryption.
      local.backup_kms_cmk ? [{
        Sid      = "UseTheBackupKey"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource = [var.backup_kms_key]
      }] : [],
    )
  }
}

data "aws_caller_identity" "this" {}

resource "aws_s3_bucket" "backups" {
  #checkov:skip=CKV_AWS_18:Access logs of a bucket only the GitLab VM's role can reach would need a second bucket per deployment; CloudTrail data events record object access when the account enables them.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles the storage bill; the backups are a second copy of the GitLab VM's disk already, versioned and kept for backup_retention_days.
  #checkov:skip=CKV_AWS_145:Objects are always encrypted (SSE-S3); a customer-managed KMS key is used when backup_kms_key is set, which checkov cannot see through the conditional.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket event notifications; duoctl backup reports each upload itself.
  bucket = local.backup_bucket
  # Objects stay when the deployment is destroyed: empty and delete the bucket by hand once the
  # backups are no longer needed (terraform destroy stops at a bucket that holds backups).
  force_destroy = false

  tags = { Name = "${var.prefix}-backups", duo_role = "gitlab" }
}

resource "aws_s3_bucket_ownership_controls" "backups" {
  bucket = aws_s3_bucket.backups.id

  rule {
    # ACLs off: the bucket policy and the role decide alone.
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "backups" {
  bucket = aws_s3_bucket.backups.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "backups" {
  bucket = aws_s3_bucket.backups.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.backup_kms_cmk ? "aws:kms" : "AES256"
      kms_master_key_id = var.backup_kms_key
    }
    # One data key per bucket, not per object: fewer KMS calls (only with SSE-KMS).
    bucket_key_enabled = local.backup_kms_cmk
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id

  rule {
    id     = "expire-backups"
    status = "Enabled"

    filter {}

    expiration {
      days = var.backup_retention_days
    }

    # An overwritten or expired backup stays a few days as a noncurrent version, then goes.
    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    # A multipart upload that died (VM stopped mid-backup) does not keep its parts.
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }

  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"

    filter {}

    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.backups]
}

# TLS only: any request over plain HTTP is denied, whoever makes it.
resource "aws_s3_bucket_policy" "backups" {
  bucket = aws_s3_bucket.backups.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyPlainHttp"
      Effect    = "Deny"
      Principal = { AWS = "*" }
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.backups.arn, "${aws_s3_bucket.backups.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })

  # The public access block first: it would refuse a policy it considers public.
  depends_on = [aws_s3_bucket_public_access_block.backups]
}

resource "aws_iam_role" "gitlab" {
  name        = "${var.prefix}-gitlab"
  description = "${var.prefix} GitLab VM: writes and reads the deployment's backup bucket, nothing else"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ec2.amazonaws.com" }
    }]
  })

  tags = { Name = "${var.prefix}-gitlab", duo_role = "gitlab" }
}

resource "aws_iam_role_policy" "gitlab_backups" {
  name   = "backup-bucket"
  role   = aws_iam_role.gitlab.id
  policy = jsonencode(local.backup_policy)
}

resource "aws_iam_instance_profile" "gitlab" {
  name = "${var.prefix}-gitlab"
  role = aws_iam_role.gitlab.name

  tags = { Name = "${var.prefix}-gitlab", duo_role = "gitlab" }
}

output "backup_bucket" {
  description = "S3 bucket GitLab uploads its backups to (only the GitLab VM's instance role may write to it)."
  value       = aws_s3_bucket.backups.bucket
}

output "backup" {
  description = "Where GitLab's backup upload goes, as the gitlab role takes it: the provider, the bucket and its region (the VM's instance role is the credential)."
  value = {
    provider = "aws"
    bucket   = aws_s3_bucket.backups.bucket
    region   = var.region
  }
}

output "gitlab_instance_role" {
  description = "IAM role of the GitLab VM's instance profile (no access key exists)."
  value       = aws_iam_role.gitlab.name
}
