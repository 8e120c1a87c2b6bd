# GitLab's backups: one bucket per deployment that only the GitLab VM may write to, through its
# own service account (no key file exists: the VM's metadata server hands out its tokens).

resource "google_service_account" "gitlab" {
  account_id   = "${var.prefix}-gitlab"
  display_name = "GitLab VM of ${var.prefix}"
  description  = "Attached to the GitLab VM only; may write and read the deployment's backup bucket, nothing else."
}

resource "google_storage_bucket" "backups" {
  #checkov:skip=CKV_GCP_62:Access logs of a bucket only the GitLab VM's service account can reach would go to another bucket of the same project; Cloud Audit Logs record data access when the project enables them.
  name     = "${var.project_id}-${var.prefix}-backups"
  location = var.region
  # Objects stay when the deployment is destroyed: delete the bucket by hand once the backups are no longer needed.
  force_destroy = false

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  dynamic "encryption" {
    for_each = var.backup_kms_key == null ? [] : [var.backup_kms_key]
    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle_rule {
    condition {
      age = var.backup_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  labels = { name = "${var.prefix}-backups" }
}

# objectCreator + objectViewer: GitLab uploads and lists its backups; it never deletes them (the
# lifecycle rule does), so a compromised VM cannot erase the history.
resource "google_storage_bucket_iam_member" "gitlab_backups" {
  for_each = toset(["roles/storage.objectCreator", "roles/storage.objectViewer"])

  bucket = google_storage_bucket.backups.name
  role   = each.value
  member = "serviceAccount:${google_service_account.gitlab.email}"
}
