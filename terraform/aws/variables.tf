# Required inputs: no defaults, so a plan cannot start without a deliberate choice.

variable "gitlab_domain" {
  description = "Fully qualified host name GitLab is served on (for example gitlab.example.com). Let's Encrypt issues the certificate for it, so it must resolve to the GitLab Elastic IP."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.gitlab_domain)) && length(var.gitlab_domain) <= 253
    error_message = "gitlab_domain must be a lower-case fully qualified host name such as gitlab.example.com (no scheme, no port, no trailing dot)."
  }
}

variable "admin_cidrs" {
  description = "IPv4 CIDR blocks allowed to reach the GitLab VM on SSH (22), for example [\"198.51.100.7/32\"]. The gateway and Ollama VMs are reached through the GitLab VM (SSH ProxyJump). 0.0.0.0/0 is refused."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0
    error_message = "admin_cidrs must list at least one IPv4 CIDR block (your workstation's public address as x.x.x.x/32)."
  }

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrnetmask(c))])
    error_message = "Every admin_cidrs entry must be an IPv4 CIDR block such as 198.51.100.7/32."
  }

  validation {
    condition     = alltrue([for c in var.admin_cidrs : try(cidrnetmask(c), "invalid") != "0.0.0.0"])
    error_message = "admin_cidrs must not contain 0.0.0.0/0 (or any /0): SSH would be open to the whole internet. Use your own address, for example 198.51.100.7/32."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key (one line) installed for the ubuntu user on the three VMs."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-nistp256@openssh.com) [A-Za-z0-9+/=]+( .*)?$", trimspace(var.ssh_public_key)))
    error_message = "ssh_public_key must be one OpenSSH public key line (ssh-ed25519 AAAA... comment), not a private key or a file path."
  }
}

# Optional inputs.

variable "route53_zone_id" {
  description = "ID of a Route 53 hosted zone that holds gitlab_domain. When set, the A record gitlab_domain -> Elastic IP is created; when null, the output dns_record_needed says which record to create by hand."
  type        = string
  default     = null

  validation {
    condition     = var.route53_zone_id == null || can(regex("^[A-Z0-9]{5,32}$", coalesce(var.route53_zone_id, "Z0000")))
    error_message = "route53_zone_id must be a hosted zone ID such as Z0123456789ABCDEFGHIJ (not the zone's domain name), or null."
  }
}

variable "region" {
  description = "AWS region of the deployment."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "availability_zone" {
  description = "Availability zone of the three VMs. Null picks the first zone (sorted by name) where all three instance types are offered; a zone given here must offer all three."
  type        = string
  default     = null

  validation {
    condition     = var.availability_zone == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", coalesce(var.availability_zone, "us-east-1a")))
    error_message = "availability_zone must be a zone name such as us-east-1a, or null to pick one."
  }
}

variable "prefix" {
  description = "Prefix of every resource name and value of the duo_prefix tag; lets several deployments share an account."
  type        = string
  default     = "duo"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.prefix))
    error_message = "prefix must start with a lower-case letter and hold at most 16 lower-case letters, digits or hyphens."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR block of the VPC."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR block such as 10.0.0.0/16."
  }
}

variable "public_subnet_cidr" {
  description = "IPv4 CIDR block of the public subnet (GitLab VM, NAT gateway); inside vpc_cidr."
  type        = string
  default     = "10.0.1.0/24"

  validation {
    condition     = can(cidrnetmask(var.public_subnet_cidr))
    error_message = "public_subnet_cidr must be an IPv4 CIDR block such as 10.0.1.0/24."
  }
}

variable "private_subnet_cidr" {
  description = "IPv4 CIDR block of the private subnet (AI gateway and Ollama VMs); inside vpc_cidr."
  type        = string
  default     = "10.0.2.0/24"

  validation {
    condition     = can(cidrnetmask(var.private_subnet_cidr))
    error_message = "private_subnet_cidr must be an IPv4 CIDR block such as 10.0.2.0/24."
  }
}

variable "gitlab_instance_type" {
  description = "Instance type of the GitLab VM. The reference sizing names \"c6xlarge\", which does not exist; c6i.xlarge is the nearest real type (compute optimized, 6th generation, 4 vCPU, 8 GiB: GitLab's minimum for up to 20 requests per second). Use m6i.xlarge (16 GiB) to match Google Cloud's c2-standard-4 memory."
  type        = string
  default     = "c6i.xlarge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.gitlab_instance_type))
    error_message = "gitlab_instance_type must be an EC2 instance type such as t3.medium."
  }
}

variable "gateway_instance_type" {
  description = "Instance type of the AI gateway VM (t2.medium class: 2 vCPU, 4 GiB). t3.medium is the current generation of t2.medium, cheaper and EBS optimized."
  type        = string
  default     = "t3.medium"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.gateway_instance_type))
    error_message = "gateway_instance_type must be an EC2 instance type such as t3.medium."
  }
}

variable "ollama_instance_type" {
  description = "Instance type of the model server VM; needs an NVIDIA GPU: g4dn (T4 16 GB, the default g4dn.xlarge), g5 (A10G 24 GB), g6 (L4 24 GB), g6e (L40S 48 GB), p4d (8 x A100 40 GB), p5 (H100 80 GB). Running it needs its vCPUs in the quota \"Running On-Demand G and VT instances\" (L-DB2E81BA) for g types, \"Running On-Demand P instances\" (L-417A185B) for p types."
  type        = string
  default     = "g4dn.xlarge"

  validation {
    condition     = can(regex("^(g4dn|g5|g6|g6e|p4d|p4de|p5|p5e|p5en)\\.[a-z0-9]+$", var.ollama_instance_type))
    error_message = "ollama_instance_type must be an NVIDIA GPU instance type of the g4dn, g5, g6, g6e, p4d or p5 family, such as g4dn.xlarge or g6.2xlarge."
  }
}

variable "gitlab_disk_gb" {
  description = "Root disk size of the GitLab VM in GB (gp3, encrypted)."
  type        = number
  default     = 50

  validation {
    condition     = var.gitlab_disk_gb >= 30 && var.gitlab_disk_gb <= 16384
    error_message = "gitlab_disk_gb must be between 30 and 16384: GitLab alone needs about 20 GB."
  }
}

variable "gateway_disk_gb" {
  description = "Root disk size of the AI gateway VM in GB (gp3, encrypted)."
  type        = number
  default     = 20

  validation {
    condition     = var.gateway_disk_gb >= 10 && var.gateway_disk_gb <= 16384
    error_message = "gateway_disk_gb must be between 10 and 16384: the gateway image alone takes several GB."
  }
}

variable "ollama_disk_gb" {
  description = "Root disk size of the model server VM in GB (gp3, encrypted); holds the NVIDIA driver and the model weights (about twice the weights plus 40 GB: duoctl's serving presets compute it)."
  type        = number
  default     = 50

  validation {
    condition     = var.ollama_disk_gb >= 30 && var.ollama_disk_gb <= 16384
    error_message = "ollama_disk_gb must be between 30 and 16384: driver plus a 7B model need about 15 GB."
  }
}

variable "ebs_kms_key_id" {
  description = "ARN of a KMS key for the root disks; null uses the account's default EBS key (disks are encrypted either way)."
  type        = string
  default     = null

  validation {
    condition     = var.ebs_kms_key_id == null || can(regex("^arn:aws[a-z-]*:kms:", coalesce(var.ebs_kms_key_id, "arn:aws:kms:")))
    error_message = "ebs_kms_key_id must be the ARN of a KMS key (arn:aws:kms:REGION:ACCOUNT:key/ID), or null."
  }
}

variable "gateway_port" {
  description = "HTTP port of the AI gateway, reached from the GitLab VM only."
  type        = number
  default     = 5052

  validation {
    condition     = var.gateway_port >= 1024 && var.gateway_port <= 65535 && floor(var.gateway_port) == var.gateway_port
    error_message = "gateway_port must be an unprivileged TCP port (1024-65535)."
  }
}

variable "gateway_grpc_port" {
  description = "gRPC port of the AI gateway's agent platform (Duo Workflow Service), reached from the GitLab VM only."
  type        = number
  default     = 50052

  validation {
    condition     = var.gateway_grpc_port >= 1024 && var.gateway_grpc_port <= 65535 && floor(var.gateway_grpc_port) == var.gateway_grpc_port
    error_message = "gateway_grpc_port must be an unprivileged TCP port (1024-65535)."
  }
}

variable "ollama_port" {
  description = "HTTP port of the Ollama API, reached from the AI gateway VM only; the model server's port unless model_port is set."
  type        = number
  default     = 11434

  validation {
    condition     = var.ollama_port >= 1024 && var.ollama_port <= 65535 && floor(var.ollama_port) == var.ollama_port
    error_message = "ollama_port must be an unprivileged TCP port (1024-65535)."
  }
}

variable "model_port" {
  description = "HTTP port of the model server on the GPU VM (vLLM: 8000), reached from the AI gateway VM only. Null keeps ollama_port (11434, Ollama). The outputs ollama_port and model_port both give the port in effect."
  type        = number
  default     = null

  validation {
    condition     = var.model_port == null || try(var.model_port >= 1024 && var.model_port <= 65535 && floor(var.model_port) == var.model_port, false)
    error_message = "model_port must be an unprivileged TCP port (1024-65535), or null to use ollama_port."
  }
}

variable "egress_ports" {
  description = "TCP ports the three VMs may open to the internet (through the NAT gateway for the private ones): 80 for Ubuntu's archive, 443 for packages, container images, models and Let's Encrypt."
  type        = list(number)
  default     = [80, 443]

  validation {
    condition     = alltrue([for p in var.egress_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "egress_ports must hold TCP port numbers (1-65535)."
  }
}

variable "extra_tags" {
  description = "Additional tags for every resource (cost center, owner...). The tags Name, duo_prefix and duo_role are always set."
  type        = map(string)
  default     = {}
}

variable "bedrock_models" {
  description = "Amazon Bedrock models the AI gateway may invoke with the gateway VM's instance role: foundation model IDs (anthropic.claude-3-5-haiku-20241022-v1:0) or system-defined cross-region inference profile IDs (us.anthropic.claude-sonnet-4-20250514-v1:0; prefixes us, us-gov, eu, apac, jp, au, ca, global). Empty: no IAM role, no instance profile, no Bedrock access. Register the models in GitLab as bedrock/<ID>."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.bedrock_models : length(m) <= 128 && can(regex("^((us|us-gov|eu|apac|jp|au|ca|global)\\.)?[a-z][a-z0-9-]*\\.[a-z0-9][a-z0-9._-]*(:[0-9]+)?$", m))
    ])
    error_message = "Every bedrock_models entry must be a Bedrock model ID such as anthropic.claude-3-5-haiku-20241022-v1:0 or an inference profile ID such as us.anthropic.claude-sonnet-4-20250514-v1:0: no bedrock/ prefix, no ARN, lower case."
  }

  validation {
    condition     = length(distinct(var.bedrock_models)) == length(var.bedrock_models)
    error_message = "bedrock_models lists a model twice."
  }
}

variable "bedrock_vpc_endpoint" {
  description = "Create an interface VPC endpoint for bedrock-runtime in the private subnet (private DNS on, HTTPS from the AI gateway only), so Bedrock traffic stays off the NAT gateway. Used only when bedrock_models is not empty. The endpoint is billed per hour and per GB."
  type        = bool
  default     = false
}

variable "backup_retention_days" {
  description = "Days GitLab's backups are kept in the backup bucket before the lifecycle rule deletes them."
  type        = number
  default     = 30

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 3650 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be a whole number of days from 1 to 3650."
  }
}

variable "backup_kms_key" {
  description = "ARN of a KMS key for the backup bucket (SSE-KMS with a customer-managed key; the GitLab VM's role may use it for the bucket's objects); null keeps SSE-S3 (objects are encrypted either way)."
  type        = string
  default     = null

  validation {
    condition     = var.backup_kms_key == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", coalesce(var.backup_kms_key, "arn:aws:kms:r:000000000000:key/k")))
    error_message = "backup_kms_key must be the ARN of a KMS key (arn:aws:kms:REGION:ACCOUNT:key/ID), or null."
  }
}

variable "gpu_schedule" {
  description = "Office hours of the GPU VM: cron expressions (minute hour day-of-month month day-of-week) for start and stop, and an IANA time zone, for example { start = \"0 8 * * 1-5\", stop = \"0 19 * * 1-5\", time_zone = \"Europe/Berlin\" }. EventBridge Scheduler runs them (schedule.tf converts them). null: the VM runs all the time."
  type = object({
    start     = string
    stop      = string
    time_zone = string
  })
  default = null

  validation {
    condition     = var.gpu_schedule == null || alltrue([for c in [try(var.gpu_schedule.start, ""), try(var.gpu_schedule.stop, "")] : length(split(" ", trimspace(c))) == 5])
    error_message = "gpu_schedule.start and gpu_schedule.stop must be cron expressions with five fields, for example \"0 8 * * 1-5\"."
  }

  validation {
    condition     = var.gpu_schedule == null || can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", try(var.gpu_schedule.time_zone, "")))
    error_message = "gpu_schedule.time_zone must be an IANA time zone such as Europe/Berlin or UTC."
  }

  # What EventBridge can express: plain values, lists, ranges and */n steps; day-of-week as
  # numbers 0-7 or names, without steps; never both a day-of-month and a day-of-week.
  validation {
    condition = var.gpu_schedule == null || alltrue([
      for c in [try(var.gpu_schedule.start, ""), try(var.gpu_schedule.stop, "")] :
      can(regex("^(\\*|\\*/[0-9]+|[0-9]+(-[0-9]+)?(/[0-9]+)?(,[0-9]+(-[0-9]+)?)*) (\\*|\\*/[0-9]+|[0-9]+(-[0-9]+)?(/[0-9]+)?(,[0-9]+(-[0-9]+)?)*) (\\*|\\*/[0-9]+|[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*) (\\*|\\*/[0-9]+|[0-9A-Za-z]+(-[0-9A-Za-z]+)?(,[0-9A-Za-z]+(-[0-9A-Za-z]+)?)*) (\\*|([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat))(-([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat)))?(,([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat))(-([0-7]|(?i:sun|mon|tue|wed|thu|fri|sat)))?)*)$", join(" ", regexall("\\S+", c))))
    ])
    error_message = "gpu_schedule.start and gpu_schedule.stop must use numbers, lists (1,3), ranges (1-5) and */n steps only; days of the week as 0-7 or sun-sat, without steps. Example: \"0 8 * * 1-5\"."
  }

  validation {
    condition = var.gpu_schedule == null || alltrue([
      for c in [try(var.gpu_schedule.start, ""), try(var.gpu_schedule.stop, "")] :
      try(regexall("\\S+", c)[2] == "*" || regexall("\\S+", c)[4] == "*", true)
    ])
    error_message = "gpu_schedule: give a day of the month or a day of the week, not both (EventBridge Scheduler cannot combine them; leave one of the two at *)."
  }

  validation {
    condition = var.gpu_schedule == null || alltrue([
      for c in [try(var.gpu_schedule.start, ""), try(var.gpu_schedule.stop, "")] :
      alltrue([for r in try(regexall("[0-9A-Za-z]+-[0-9A-Za-z]+", regexall("\\S+", c)[4]), []) : (
        try(tonumber(lookup({ sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 }, lower(split("-", r)[0]), split("-", r)[0])), 0)
        <= try(tonumber(lookup({ sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 }, lower(split("-", r)[1]), split("-", r)[1])), 7)
      )])
    ])
    error_message = "gpu_schedule: a day-of-week range must run forwards, for example 1-5 (Monday to Friday) or 5-7 (Friday to Sunday)."
  }
}

variable "metrics_ports" {
  description = "Ports GitLab's Prometheus scrapes on the private VMs: the node exporter and the AI gateway's metrics. The model server's metrics are on its own port."
  type = object({
    node_exporter = number
    gateway       = number
  })
  default = {
    node_exporter = 9100
    gateway       = 8082
  }

  validation {
    condition     = alltrue([for p in values(var.metrics_ports) : p >= 1024 && p <= 65535])
    error_message = "metrics_ports must be unprivileged ports (1024-65535)."
  }
}
