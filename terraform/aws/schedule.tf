# The GPU VM's office hours: two EventBridge Scheduler schedules call EC2's StartInstances and
# StopInstances (universal targets) on the model server VM alone.
#
# gpu_schedule holds standard 5-field cron expressions (minute hour day-of-month month
# day-of-week), the same as on Google Cloud; this file is the one place that turns them into
# EventBridge's 6-field form, cron(minute hour day-of-month month day-of-week year):
#   - EventBridge refuses a day-of-month and a day-of-week together: the one left at * becomes ?
#     (both restricted is refused by the variable's validation: cron would OR them);
#   - EventBridge numbers the days 1-7 from Sunday where cron numbers them 0-7 (0 and 7 are
#     Sunday): the days become names, so "1-5" (Monday to Friday) reads MON-FRI, and a range
#     ending on Sunday (7) ends on SAT plus SUN;
#   - a */n step starts at the field's first value (0/n, or 1/n for day-of-month and month);
#   - the year is *.

locals {
  gpu_scheduled = var.gpu_schedule != null

  cron_day_names   = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
  cron_day_numbers = { sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 }

  gpu_cron_fields = local.gpu_scheduled ? {
    start = regexall("\\S+", var.gpu_schedule.start)
    stop  = regexall("\\S+", var.gpu_schedule.stop)
  } : {}

  # Day-of-week ranges as [first, last] numbers (a single day is [n, n]).
  gpu_cron_days = {
    for key, f in local.gpu_cron_fields : key => [
      for part in split(",", f[4]) : [
        for bound in(length(split("-", part)) == 1 ? [part, part] : split("-", part)) :
        tonumber(lookup(local.cron_day_numbers, lower(bound), bound))
      ]
    ] if f[4] != "*"
  }

  gpu_cron_dow = {
    for key, ranges in local.gpu_cron_days : key => join(",", flatten([
      for r in ranges : compact([
        # The part up to Saturday; a range that ends on 7 also takes Sunday, unless it started
        # on Sunday (0-7 is every day).
        min(r[1], 6) < r[0] ? "" : (r[0] == min(r[1], 6) ? local.cron_day_names[r[0]] : "${local.cron_day_names[r[0]]}-${local.cron_day_names[min(r[1], 6)]}"),
        r[1] == 7 && r[0] > 0 ? "SUN" : "",
      ])
    ]))
  }

  gpu_cron = {
    for key, f in local.gpu_cron_fields : key => format(
      "cron(%s %s %s %s %s *)",
      replace(f[0], "/^\\*//", "0/"),
      replace(f[1], "/^\\*//", "0/"),
      f[2] == "*" && f[4] != "*" ? "?" : replace(f[2], "/^\\*//", "1/"),
      replace(f[3], "/^\\*//", "1/"),
      f[4] == "*" ? "?" : local.gpu_cron_dow[key],
    )
  }

  gpu_instance_actions = { start = "ec2:StartInstances", stop = "ec2:StopInstances" }
}

resource "aws_iam_role" "gpu_schedule" {
  count = local.gpu_scheduled ? 1 : 0

  name        = "${var.prefix}-gpu-schedule"
  description = "${var.prefix} GPU schedule: EventBridge Scheduler starts and stops the GPU VM"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "scheduler.amazonaws.com" }
      # Only this account's schedules may act with the role (the confused deputy guard).
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.this.account_id } }
    }]
  })

  tags = { Name = "${var.prefix}-gpu-schedule", duo_role = "ollama" }
}

resource "aws_iam_role_policy" "gpu_schedule" {
  count = local.gpu_scheduled ? 1 : 0

  name = "start-stop-gpu-vm"
  role = aws_iam_role.gpu_schedule[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "StartAndStopTheGpuVm"
        Effect   = "Allow"
        Action   = values(local.gpu_instance_actions)
        Resource = [aws_instance.vm["ollama"].arn]
      }],
      # A root disk encrypted with a customer-managed key: starting the VM makes EC2 create a
      # grant on the key for the caller (Amazon EBS user guide, "Permissions for users").
      var.ebs_kms_key_id == null ? [] : [{
        Sid       = "LetEc2UseTheDiskKey"
        Effect    = "Allow"
        Action    = ["kms:CreateGrant"]
        Resource  = [var.ebs_kms_key_id]
        Condition = { Bool = { "kms:GrantIsForAWSResource" = "true" } }
      }],
    )
  })
}

resource "aws_scheduler_schedule" "gpu" {
  #checkov:skip=CKV_AWS_297:The schedule holds an instance ID and a cron expression, no data; an AWS-owned key encrypts it, a customer-managed one would add a key to manage per deployment.
  for_each = local.gpu_cron

  name        = "${var.prefix}-gpu-${each.key}"
  description = "${title(each.key)} the GPU VM of ${var.prefix} (gpu_schedule.${each.key} = \"${var.gpu_schedule[each.key]}\")"

  schedule_expression          = each.value
  schedule_expression_timezone = var.gpu_schedule.time_zone
  state                        = "ENABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = "arn:aws:scheduler:::aws-sdk:ec2:${each.key}Instances"
    role_arn = aws_iam_role.gpu_schedule[0].arn
    input    = jsonencode({ InstanceIds = [aws_instance.vm["ollama"].id] })
  }
}

output "gpu_schedule" {
  description = "Office hours of the GPU VM as given (5-field cron start and stop, IANA time zone), with the EventBridge Scheduler expressions made of them; null when it runs all the time."
  value = local.gpu_scheduled ? {
    start            = var.gpu_schedule.start
    stop             = var.gpu_schedule.stop
    time_zone        = var.gpu_schedule.time_zone
    start_expression = local.gpu_cron["start"]
    stop_expression  = local.gpu_cron["stop"]
  } : null
}
