# The three VMs: Ubuntu 24.04, Shielded VM, only GitLab with an external address.

data "google_compute_image" "ubuntu" {
  family  = "ubuntu-2404-lts-amd64"
  project = "ubuntu-os-cloud"
}

resource "google_compute_instance" "vm" {
  #checkov:skip=CKV_GCP_38:Boot disks use Google-managed encryption by default and a Cloud KMS key when disk_kms_key is set; customer-supplied raw keys would have to live in the Terraform state.
  #checkov:skip=CKV_GCP_40:Only the GitLab VM gets an external address (its static IP), by design; the other two have none.
  for_each = local.vms

  name         = each.value.name
  zone         = var.zone
  machine_type = each.value.machine_type
  tags         = [local.tag[each.key]]

  # Machine type or GPU changes need a stopped VM.
  allow_stopping_for_update = true

  boot_disk {
    kms_key_self_link = var.disk_kms_key

    initialize_params {
      image  = data.google_compute_image.ubuntu.self_link
      size   = each.value.disk_gb
      type   = "pd-balanced"
      labels = { name = "${each.value.name}-boot", duo_role = each.key }
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.main.id

    dynamic "access_config" {
      for_each = each.value.public ? [google_compute_address.gitlab.address] : []
      content {
        nat_ip       = access_config.value
        network_tier = "PREMIUM"
      }
    }
  }

  dynamic "guest_accelerator" {
    for_each = each.value.gpu ? [local.gpu] : []
    content {
      type  = guest_accelerator.value.type
      count = guest_accelerator.value.count
    }
  }

  # Only the GitLab VM has a service account: it writes the backups (backup.tf).
  dynamic "service_account" {
    for_each = each.key == "gitlab" ? [google_service_account.gitlab.email] : []
    content {
      email  = service_account.value
      scopes = ["cloud-platform"]
    }
  }

  # The GPU VM's office hours (schedule.tf), when set.
  resource_policies = each.value.gpu && local.gpu_scheduled ? [google_compute_resource_policy.gpu_schedule[0].id] : null

  scheduling {
    # VMs with a GPU cannot live-migrate: they must stop for host maintenance.
    on_host_maintenance = each.value.gpu ? "TERMINATE" : "MIGRATE"
    automatic_restart   = true
    preemptible         = false
  }

  shielded_instance_config {
    enable_secure_boot          = each.value.secure_boot
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    ssh-keys               = "${var.ssh_user}:${trimspace(var.ssh_public_key)}"
    block-project-ssh-keys = "true"
    serial-port-enable     = "false"
    # The guest environment publishes the SSH host keys (hostkeys/): duoctl pins them.
    enable-guest-attributes = "TRUE"
  }

  labels = { name = each.value.name, duo_role = each.key }

  lifecycle {
    # A newer Ubuntu image must not rebuild a running VM; rebuild on purpose with -replace.
    ignore_changes = [boot_disk[0].initialize_params[0].image]

    precondition {
      condition     = startswith(var.zone, "${var.region}-")
      error_message = "zone ${var.zone} is not in region ${var.region}: the subnet, NAT and static address live in the region. Pick a zone such as ${var.region}-a."
    }
  }
}
