# The A record Let's Encrypt needs before GitLab's first reconfigure. Created
# only when the zone is managed here; otherwise the output dns_record_needed
# tells which record to create.

resource "google_dns_record_set" "gitlab" {
  count = var.dns_managed_zone == null ? 0 : 1

  managed_zone = var.dns_managed_zone
  name         = "${var.gitlab_domain}."
  type         = "A"
  ttl          = 300
  rrdatas      = [google_compute_address.gitlab.address]
}
