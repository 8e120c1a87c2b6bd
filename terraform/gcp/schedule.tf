# The GPU VM's office hours: Compute Engine's own instance schedule starts and stops it.

locals {
  gpu_scheduled = var.gpu_schedule != null
}

data "google_project" "this" {
  count      = local.gpu_scheduled ? 1 : 0
  project_id = var.project_id
}

resource "google_compute_resource_policy" "gpu_schedule" {
  count = local.gpu_scheduled ? 1 : 0

  name        = "${var.prefix}-gpu-office-hours"
  region      = var.region
  description = "Starts and stops the GPU VM of ${var.prefix} on a schedule"

  instance_schedule_policy {
    time_zone = var.gpu_schedule.time_zone

    vm_start_schedule {
      schedule = var.gpu_schedule.start
    }

    vm_stop_schedule {
      schedule = var.gpu_schedule.stop
    }
  }
}

# The schedule acts as the Compute Engine service agent, which needs start and stop on the VM;
# a custom role grants exactly those two permissions.
resource "google_project_iam_custom_role" "gpu_schedule" {
  count = local.gpu_scheduled ? 1 : 0

  role_id     = "${replace(var.prefix, "-", "_")}_gpu_schedule"
  title       = "${var.prefix} GPU schedule"
  description = "Start and stop VMs: what an instance schedule needs"
  permissions = ["compute.instances.start", "compute.instances.stop"]
}

resource "google_project_iam_member" "gpu_schedule" {
  count = local.gpu_scheduled ? 1 : 0

  project = var.project_id
  role    = google_project_iam_custom_role.gpu_schedule[0].id
  member  = "serviceAccount:service-${data.google_project.this[0].number}@compute-system.iam.gserviceaccount.com"
}
