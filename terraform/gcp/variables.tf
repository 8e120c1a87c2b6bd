# Required inputs: no defaults, so a plan cannot start without a deliberate choice.

variable "project_id" {
  description = "Google Cloud project ID the deployment goes into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lower-case letters, digits or hyphens), not the project name or number."
  }
}

variable "gitlab_domain" {
  description = "Fully qualified host name GitLab is served on (for example gitlab.example.com). Let's Encrypt issues the certificate for it, so it must resolve to the GitLab static address."
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
  description = "OpenSSH public key (one line) installed for ssh_user on the three VMs through instance metadata."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-nistp256@openssh.com) [A-Za-z0-9+/=]+( .*)?$", trimspace(var.ssh_public_key)))
    error_message = "ssh_public_key must be one OpenSSH public key line (ssh-ed25519 AAAA... comment), not a private key or a file path."
  }
}

# Optional inputs.

variable "dns_managed_zone" {
  description = "Name of a Cloud DNS managed zone (in project_id) that holds gitlab_domain. When set, the A record gitlab_domain -> static address is created; when null, the output dns_record_needed says which record to create by hand."
  type        = string
  default     = null

  validation {
    condition     = var.dns_managed_zone == null || can(regex("^[a-z][a-z0-9-]{0,62}$", coalesce(var.dns_managed_zone, "zone")))
    error_message = "dns_managed_zone must be the zone's name (lower-case letters, digits, hyphens; for example example-com), not its DNS name."
  }
}

variable "region" {
  description = "Region of the deployment."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region name such as us-central1."
  }
}

variable "zone" {
  description = "Zone of the three VMs, inside region. It must offer the GPU (nvidia-tesla-t4) and the three machine types: us-central1-a, -b, -c and -f do. If creation fails with ZONE_RESOURCE_POOL_EXHAUSTED, try another such zone."
  type        = string
  default     = "us-central1-a"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]-[a-z]$", var.zone))
    error_message = "zone must be a Google Cloud zone name such as us-central1-a."
  }
}

variable "prefix" {
  description = "Prefix of every resource name and value of the duo_prefix label; lets several deployments share a project."
  type        = string
  default     = "duo"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.prefix))
    error_message = "prefix must start with a lower-case letter and hold at most 16 lower-case letters, digits or hyphens."
  }
}

variable "subnet_cidr" {
  description = "IPv4 CIDR block of the subnet holding the three VMs."
  type        = string
  default     = "10.0.1.0/24"

  validation {
    condition     = can(cidrnetmask(var.subnet_cidr))
    error_message = "subnet_cidr must be an IPv4 CIDR block such as 10.0.1.0/24."
  }
}

variable "gitlab_machine_type" {
  description = "Machine type of the GitLab VM (c2-standard-4: 4 vCPU, 16 GB)."
  type        = string
  default     = "c2-standard-4"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.gitlab_machine_type))
    error_message = "gitlab_machine_type must be a machine type such as e2-medium."
  }
}

variable "gateway_machine_type" {
  description = "Machine type of the AI gateway VM (e2-medium: 2 vCPU, 4 GB)."
  type        = string
  default     = "e2-medium"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.gateway_machine_type))
    error_message = "gateway_machine_type must be a machine type such as e2-medium."
  }
}

variable "ollama_machine_type" {
  description = "Machine type of the model server (GPU) VM: n1-standard-4 (4 vCPU, 15 GB) with an attached nvidia-tesla-t4 by default; g2-standard-* (NVIDIA L4 built in) or a2-highgpu-*/a2-ultragpu-* (A100 40/80 GB built in) for larger models. ollama_gpu_type and ollama_gpu_count must match it (see gpu.tf)."
  type        = string
  default     = "n1-standard-4"

  validation {
    condition     = can(regex("^(n1|g2|a2)-[a-z0-9-]+$", var.ollama_machine_type))
    error_message = "ollama_machine_type must be a GPU machine type: n1-* (with nvidia-tesla-t4 attached), g2-standard-* (L4) or a2-* (A100), for example n1-standard-4 or g2-standard-8."
  }
}

variable "ollama_gpu_type" {
  description = "Accelerator type of the model server VM: attached to N1 (nvidia-tesla-t4), or the one built into A2 and G2 (nvidia-l4, nvidia-tesla-a100, nvidia-a100-80gb). Running it needs the GPUS_ALL_REGIONS (global) and the accelerator's regional quota (NVIDIA_T4_GPUS, NVIDIA_L4_GPUS, NVIDIA_A100_GPUS, NVIDIA_A100_80GB_GPUS) of at least ollama_gpu_count."
  type        = string
  default     = "nvidia-tesla-t4"

  validation {
    condition     = can(regex("^nvidia-[a-z0-9-]+$", var.ollama_gpu_type))
    error_message = "ollama_gpu_type must be an accelerator type such as nvidia-tesla-t4."
  }
}

variable "ollama_gpu_count" {
  description = "Number of GPUs of the model server VM: 1, 2 or 4 T4 on N1; on A2 and G2 the count built into the machine type (g2-standard-8: 1, g2-standard-24: 2, a2-ultragpu-2g: 2...)."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 2, 4, 8, 16], var.ollama_gpu_count)
    error_message = "ollama_gpu_count must be 1, 2, 4, 8 or 16."
  }
}

variable "ollama_secure_boot" {
  description = "Secure Boot on the Ollama VM. Off by default: the NVIDIA kernel module built by DKMS is unsigned and would not load. Turn it on only with a signed driver."
  type        = bool
  default     = false
}

variable "gitlab_disk_gb" {
  description = "Boot disk size of the GitLab VM in GB (pd-balanced)."
  type        = number
  default     = 50

  validation {
    condition     = var.gitlab_disk_gb >= 30 && var.gitlab_disk_gb <= 65536
    error_message = "gitlab_disk_gb must be between 30 and 65536: GitLab alone needs about 20 GB."
  }
}

variable "gateway_disk_gb" {
  description = "Boot disk size of the AI gateway VM in GB (pd-balanced)."
  type        = number
  default     = 20

  validation {
    condition     = var.gateway_disk_gb >= 10 && var.gateway_disk_gb <= 65536
    error_message = "gateway_disk_gb must be between 10 and 65536: the gateway image alone takes several GB."
  }
}

variable "ollama_disk_gb" {
  description = "Boot disk size of the model server VM in GB (pd-balanced); holds the NVIDIA driver and the model weights (about twice the weights plus 40 GB: duoctl's serving presets compute it)."
  type        = number
  default     = 50

  validation {
    condition     = var.ollama_disk_gb >= 30 && var.ollama_disk_gb <= 65536
    error_message = "ollama_disk_gb must be between 30 and 65536: driver plus a 7B model need about 15 GB."
  }
}

variable "disk_kms_key" {
  description = "Self link of a Cloud KMS key for the boot disks (customer-managed encryption); null keeps Google-managed encryption (disks are encrypted either way)."
  type        = string
  default     = null

  validation {
    condition     = var.disk_kms_key == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", coalesce(var.disk_kms_key, "projects/p/locations/l/keyRings/r/cryptoKeys/k")))
    error_message = "disk_kms_key must be a key path projects/P/locations/L/keyRings/R/cryptoKeys/K, or null."
  }
}

variable "ssh_user" {
  description = "Login user the SSH key is installed for."
  type        = string
  default     = "ubuntu"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user must be a Linux user name (lower-case letters, digits, _ or -)."
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
  description = "TCP ports the three VMs may open to the internet (through Cloud NAT for the private ones): 80 for Ubuntu's archive, 443 for packages, container images, models and Let's Encrypt."
  type        = list(number)
  default     = [80, 443]

  validation {
    condition     = length(var.egress_ports) > 0 && alltrue([for p in var.egress_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "egress_ports must hold at least one TCP port number (1-65535)."
  }
}

variable "extra_labels" {
  description = "Additional labels for every resource that takes labels. The labels name, duo_prefix and duo_role are always set."
  type        = map(string)
  default     = {}
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
  description = "Self link of a Cloud KMS key for the backup bucket (customer-managed encryption); null keeps Google-managed encryption (objects are encrypted either way)."
  type        = string
  default     = null

  validation {
    condition     = var.backup_kms_key == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", coalesce(var.backup_kms_key, "projects/p/locations/l/keyRings/r/cryptoKeys/k")))
    error_message = "backup_kms_key must be a key path projects/P/locations/L/keyRings/R/cryptoKeys/K, or null."
  }
}

variable "gpu_schedule" {
  description = "Office hours of the GPU VM: cron expressions (minute hour day-of-month month day-of-week) for start and stop, and an IANA time zone, for example { start = \"0 8 * * 1-5\", stop = \"0 19 * * 1-5\", time_zone = \"Europe/Berlin\" }. null: the VM runs all the time."
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
