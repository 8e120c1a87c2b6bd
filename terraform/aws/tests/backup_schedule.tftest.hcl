# The backup bucket and the GitLab VM's instance role (backup.tf), the GPU VM's office hours
# on EventBridge Scheduler (schedule.tf) with the cron conversion, and the metrics rules,
# offline with a mocked provider whose account is 123456789012.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  gitlab_domain  = "gitlab.example.com"
  admin_cidrs    = ["198.51.100.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample admin@example"
}

run "backup_bucket_is_private_versioned_and_expires" {
  command = apply

  assert {
    condition     = aws_s3_bucket.backups.bucket == "duo-backups-123456789012-us-east-1" && output.backup_bucket == aws_s3_bucket.backups.bucket
    error_message = "The bucket is named after prefix, account and region: ${aws_s3_bucket.backups.bucket}"
  }

  assert {
    condition     = !aws_s3_bucket.backups.force_destroy
    error_message = "Destroying the deployment must not delete the backups."
  }

  assert {
    condition = (
      aws_s3_bucket_public_access_block.backups.bucket == aws_s3_bucket.backups.id
      && aws_s3_bucket_public_access_block.backups.block_public_acls
      && aws_s3_bucket_public_access_block.backups.block_public_policy
      && aws_s3_bucket_public_access_block.backups.ignore_public_acls
      && aws_s3_bucket_public_access_block.backups.restrict_public_buckets
    )
    error_message = "All four public access blocks must be on."
  }

  assert {
    condition     = one(aws_s3_bucket_ownership_controls.backups.rule).object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be off (bucket owner enforced)."
  }

  assert {
    condition     = one(aws_s3_bucket_versioning.backups.versioning_configuration).status == "Enabled"
    error_message = "The bucket must be versioned."
  }

  assert {
    condition = (
      one(one(aws_s3_bucket_server_side_encryption_configuration.backups.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
      && one(one(aws_s3_bucket_server_side_encryption_configuration.backups.rule).apply_server_side_encryption_by_default).kms_master_key_id == null
    )
    error_message = "Without backup_kms_key the bucket encrypts with SSE-S3."
  }

  assert {
    condition = (
      [for r in aws_s3_bucket_lifecycle_configuration.backups.rule : r.expiration[0].days if r.id == "expire-backups"] == [30]
      && [for r in aws_s3_bucket_lifecycle_configuration.backups.rule : r.noncurrent_version_expiration[0].noncurrent_days if r.id == "expire-backups"] == [7]
      && alltrue([for r in aws_s3_bucket_lifecycle_configuration.backups.rule : r.status == "Enabled"])
    )
    error_message = "Backups expire after backup_retention_days (30), noncurrent versions after 7 days."
  }

  assert {
    condition = jsondecode(aws_s3_bucket_policy.backups.policy) == {
      Version = "2012-10-17"
      Statement = [{
        Sid       = "DenyPlainHttp"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.backups.arn, "${aws_s3_bucket.backups.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }]
    }
    error_message = "The bucket policy must deny every request without TLS: ${aws_s3_bucket_policy.backups.policy}"
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.gitlab_backups.policy).Statement == [
      {
        Sid      = "ListTheBackupBucket"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.backups.arn]
      },
      {
        Sid      = "ReadAndWriteBackups"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
        Resource = ["${aws_s3_bucket.backups.arn}/*"]
      },
    ]
    error_message = "The GitLab role may list the bucket and put, get, abort and list parts of its objects, nothing else: ${aws_iam_role_policy.gitlab_backups.policy}"
  }

  assert {
    condition = alltrue(flatten([
      for p in [aws_iam_role_policy.gitlab_backups.policy] : [
        for s in jsondecode(p).Statement : [for a in s.Action : !strcontains(a, "*")]
      ]
    ]))
    error_message = "No wildcard action."
  }

  assert {
    condition = jsondecode(aws_iam_role.gitlab.assume_role_policy) == {
      Version   = "2012-10-17"
      Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "ec2.amazonaws.com" } }]
    }
    error_message = "Only EC2 may assume the GitLab role."
  }

  assert {
    condition = (
      aws_iam_instance_profile.gitlab.role == aws_iam_role.gitlab.name
      && aws_iam_role_policy.gitlab_backups.role == aws_iam_role.gitlab.id
      && aws_instance.vm["gitlab"].iam_instance_profile == aws_iam_instance_profile.gitlab.name
    )
    error_message = "The GitLab VM must carry the backup role's instance profile."
  }

  assert {
    condition     = contains(["", null], aws_instance.vm["ai_gateway"].iam_instance_profile) && contains(["", null], aws_instance.vm["ollama"].iam_instance_profile)
    error_message = "Only the GitLab VM has the backup profile (the gateway none without bedrock_models)."
  }

  assert {
    condition     = aws_instance.vm["gitlab"].metadata_options[0].http_tokens == "required" && aws_instance.vm["gitlab"].metadata_options[0].http_put_response_hop_limit == 1
    error_message = "GitLab runs on the VM itself, not in a container: IMDSv2 with a hop limit of 1."
  }
}

run "backup_bucket_with_a_kms_key" {
  command = apply

  variables {
    backup_kms_key        = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    backup_retention_days = 90
    bedrock_models        = ["anthropic.claude-3-5-haiku-20241022-v1:0"]
  }

  assert {
    condition = (
      one(one(aws_s3_bucket_server_side_encryption_configuration.backups.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
      && one(one(aws_s3_bucket_server_side_encryption_configuration.backups.rule).apply_server_side_encryption_by_default).kms_master_key_id == "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
      && one(aws_s3_bucket_server_side_encryption_configuration.backups.rule).bucket_key_enabled
    )
    error_message = "With backup_kms_key the bucket encrypts with SSE-KMS and that key."
  }

  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.gitlab_backups.policy).Statement : s if s.Sid == "UseTheBackupKey"] == [{
      Sid      = "UseTheBackupKey"
      Effect   = "Allow"
      Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
      Resource = ["arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"]
    }]
    error_message = "The GitLab role may use exactly the backup key."
  }

  assert {
    condition     = [for r in aws_s3_bucket_lifecycle_configuration.backups.rule : r.expiration[0].days if r.id == "expire-backups"] == [90]
    error_message = "Backups expire after backup_retention_days."
  }

  assert {
    condition = (
      aws_instance.vm["gitlab"].iam_instance_profile == aws_iam_instance_profile.gitlab.name
      && aws_instance.vm["ai_gateway"].iam_instance_profile == aws_iam_instance_profile.gateway[0].name
      && contains(["", null], aws_instance.vm["ollama"].iam_instance_profile)
      && aws_iam_instance_profile.gitlab.name != aws_iam_instance_profile.gateway[0].name
    )
    error_message = "With Bedrock, GitLab keeps its backup profile and the gateway gets its own."
  }
}

run "no_schedule_by_default" {
  command = apply

  assert {
    condition     = length(aws_scheduler_schedule.gpu) + length(aws_iam_role.gpu_schedule) + length(aws_iam_role_policy.gpu_schedule) == 0
    error_message = "Without gpu_schedule nothing starts or stops the GPU VM."
  }

  assert {
    condition     = output.gpu_schedule == null
    error_message = "gpu_schedule is null without a schedule."
  }
}

run "office_hours_on_eventbridge_scheduler" {
  command = apply

  variables {
    gpu_schedule = { start = "0 8 * * 1-5", stop = "0 19 * * 1-5", time_zone = "Europe/Berlin" }
  }

  assert {
    condition = {
      for k, s in aws_scheduler_schedule.gpu : k => [s.schedule_expression, s.schedule_expression_timezone, s.state, s.flexible_time_window[0].mode]
      } == {
      start = ["cron(0 8 ? * MON-FRI *)", "Europe/Berlin", "ENABLED", "OFF"]
      stop  = ["cron(0 19 ? * MON-FRI *)", "Europe/Berlin", "ENABLED", "OFF"]
    }
    error_message = "Two schedules, Monday to Friday at 8:00 and 19:00 Berlin time."
  }

  assert {
    condition = (
      aws_scheduler_schedule.gpu["start"].target[0].arn == "arn:aws:scheduler:::aws-sdk:ec2:startInstances"
      && aws_scheduler_schedule.gpu["stop"].target[0].arn == "arn:aws:scheduler:::aws-sdk:ec2:stopInstances"
      && alltrue([for s in aws_scheduler_schedule.gpu : jsondecode(s.target[0].input) == { InstanceIds = [aws_instance.vm["ollama"].id] }])
      && alltrue([for s in aws_scheduler_schedule.gpu : s.target[0].role_arn == aws_iam_role.gpu_schedule[0].arn])
    )
    error_message = "The schedules call StartInstances and StopInstances on the GPU VM alone, with the schedule role."
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.gpu_schedule[0].policy).Statement == [{
      Sid      = "StartAndStopTheGpuVm"
      Effect   = "Allow"
      Action   = ["ec2:StartInstances", "ec2:StopInstances"]
      Resource = [aws_instance.vm["ollama"].arn]
    }]
    error_message = "The schedule role may start and stop the GPU VM and nothing else: ${aws_iam_role_policy.gpu_schedule[0].policy}"
  }

  assert {
    condition = jsondecode(aws_iam_role.gpu_schedule[0].assume_role_policy).Statement == [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "scheduler.amazonaws.com" }
      Condition = { StringEquals = { "aws:SourceAccount" = "123456789012" } }
    }]
    error_message = "Only EventBridge Scheduler of this account may assume the schedule role."
  }

  assert {
    condition = output.gpu_schedule == {
      start            = "0 8 * * 1-5"
      stop             = "0 19 * * 1-5"
      time_zone        = "Europe/Berlin"
      start_expression = "cron(0 8 ? * MON-FRI *)"
      stop_expression  = "cron(0 19 ? * MON-FRI *)"
    }
    error_message = "The output gives the schedule and its EventBridge expressions."
  }
}

run "disk_key_lets_the_schedule_create_a_grant" {
  command = apply

  variables {
    ebs_kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    gpu_schedule   = { start = "0 8 * * 1-5", stop = "0 19 * * 1-5", time_zone = "UTC" }
  }

  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.gpu_schedule[0].policy).Statement : s if s.Sid == "LetEc2UseTheDiskKey"] == [{
      Sid       = "LetEc2UseTheDiskKey"
      Effect    = "Allow"
      Action    = ["kms:CreateGrant"]
      Resource  = ["arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"]
      Condition = { Bool = { "kms:GrantIsForAWSResource" = "true" } }
    }]
    error_message = "Starting a VM whose disk has a customer-managed key needs kms:CreateGrant for EC2 on that key."
  }
}

run "cron_with_names_and_sunday_seven" {
  command = plan

  variables {
    gpu_schedule = { start = "30 7 * * mon-fri", stop = "0 20 * * 5-7", time_zone = "America/New_York" }
  }

  assert {
    condition     = output.gpu_schedule.start_expression == "cron(30 7 ? * MON-FRI *)" && output.gpu_schedule.stop_expression == "cron(0 20 ? * FRI-SAT,SUN *)"
    error_message = "Names stay names; a range ending on 7 ends on SAT plus SUN: ${jsonencode(output.gpu_schedule)}"
  }
}

run "cron_lists_steps_and_day_of_month" {
  command = plan

  variables {
    gpu_schedule = { start = "*/30 6 1,15 * *", stop = "0 22 * * 0,3,7", time_zone = "UTC" }
  }

  assert {
    condition     = output.gpu_schedule.start_expression == "cron(0/30 6 1,15 * ? *)" && output.gpu_schedule.stop_expression == "cron(0 22 ? * SUN,WED,SUN *)"
    error_message = "A day of the month leaves the day of the week ?; 0 and 7 are Sunday: ${jsonencode(output.gpu_schedule)}"
  }
}

run "cron_every_day" {
  command = plan

  variables {
    gpu_schedule = { start = "0 7 * * *", stop = "0 21 * * 0-7", time_zone = "Asia/Kolkata" }
  }

  assert {
    condition     = output.gpu_schedule.start_expression == "cron(0 7 * * ? *)" && output.gpu_schedule.stop_expression == "cron(0 21 ? * SUN-SAT *)"
    error_message = "Every day: ${jsonencode(output.gpu_schedule)}"
  }
}

run "day_of_month_and_day_of_week_together_are_refused" {
  command = plan

  variables {
    gpu_schedule = { start = "0 8 1 * 1", stop = "0 19 * * 1-5", time_zone = "UTC" }
  }

  expect_failures = [var.gpu_schedule]
}

run "six_fields_are_refused" {
  command = plan

  variables {
    gpu_schedule = { start = "0 8 ? * MON-FRI *", stop = "0 19 * * 1-5", time_zone = "UTC" }
  }

  expect_failures = [var.gpu_schedule]
}

run "day_of_week_steps_are_refused" {
  command = plan

  variables {
    gpu_schedule = { start = "0 8 * * */2", stop = "0 19 * * 1-5", time_zone = "UTC" }
  }

  expect_failures = [var.gpu_schedule]
}

run "backwards_day_range_is_refused" {
  command = plan

  variables {
    gpu_schedule = { start = "0 8 * * 5-1", stop = "0 19 * * 1-5", time_zone = "UTC" }
  }

  expect_failures = [var.gpu_schedule]
}

run "bad_time_zone_is_refused" {
  command = plan

  variables {
    gpu_schedule = { start = "0 8 * * 1-5", stop = "0 19 * * 1-5", time_zone = "Berlin time" }
  }

  expect_failures = [var.gpu_schedule]
}

run "retention_must_be_whole_days" {
  command = plan

  variables {
    backup_retention_days = 0
  }

  expect_failures = [var.backup_retention_days]
}

run "backup_key_must_be_an_arn" {
  command = plan

  variables {
    backup_kms_key = "alias/backups"
  }

  expect_failures = [var.backup_kms_key]
}

run "metrics_ports_follow_the_variable" {
  command = apply

  variables {
    metrics_ports = { node_exporter = 19100, gateway = 18082 }
    model_port    = 8000
  }

  assert {
    condition = {
      for k in ["gateway_node_exporter", "gateway_metrics", "ollama_node_exporter", "ollama_metrics"] : k => [
        aws_vpc_security_group_ingress_rule.vm[k].security_group_id,
        aws_vpc_security_group_ingress_rule.vm[k].from_port,
        aws_vpc_security_group_ingress_rule.vm[k].to_port,
        aws_vpc_security_group_ingress_rule.vm[k].referenced_security_group_id,
      ]
      } == {
      gateway_node_exporter = [aws_security_group.vm["ai_gateway"].id, 19100, 19100, aws_security_group.vm["gitlab"].id]
      gateway_metrics       = [aws_security_group.vm["ai_gateway"].id, 18082, 18082, aws_security_group.vm["gitlab"].id]
      ollama_node_exporter  = [aws_security_group.vm["ollama"].id, 19100, 19100, aws_security_group.vm["gitlab"].id]
      ollama_metrics        = [aws_security_group.vm["ollama"].id, 8000, 8000, aws_security_group.vm["gitlab"].id]
    }
    error_message = "GitLab scrapes the node exporters, the gateway's metrics and the model server's port."
  }

  assert {
    condition = {
      for k in ["gitlab_to_gateway_node_exporter", "gitlab_to_gateway_metrics", "gitlab_to_ollama_node_exporter", "gitlab_to_ollama_metrics"] : k => [
        aws_vpc_security_group_egress_rule.vm[k].security_group_id,
        aws_vpc_security_group_egress_rule.vm[k].from_port,
        aws_vpc_security_group_egress_rule.vm[k].referenced_security_group_id,
      ]
      } == {
      gitlab_to_gateway_node_exporter = [aws_security_group.vm["gitlab"].id, 19100, aws_security_group.vm["ai_gateway"].id]
      gitlab_to_gateway_metrics       = [aws_security_group.vm["gitlab"].id, 18082, aws_security_group.vm["ai_gateway"].id]
      gitlab_to_ollama_node_exporter  = [aws_security_group.vm["gitlab"].id, 19100, aws_security_group.vm["ollama"].id]
      gitlab_to_ollama_metrics        = [aws_security_group.vm["gitlab"].id, 8000, aws_security_group.vm["ollama"].id]
    }
    error_message = "GitLab's way out to the metrics mirrors the ingress rules."
  }
}

run "a_metrics_port_equal_to_a_service_port_is_refused" {
  command = plan

  variables {
    metrics_ports = { node_exporter = 9100, gateway = 5052 }
  }

  expect_failures = [aws_vpc_security_group_ingress_rule.vm]
}
