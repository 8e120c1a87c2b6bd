# One VPC network and subnet; Cloud NAT lets the VMs without a public address
# (AI gateway, Ollama) pull packages, the gateway image and the model.

resource "google_compute_network" "main" {
  name                    = "${var.prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

resource "google_compute_subnetwork" "main" {
  #checkov:skip=CKV_GCP_26:Flow logs are billed per GB and are not needed to run the service; enable them where policy requires an audit trail.
  #checkov:skip=CKV_GCP_76:The subnet is IPv4 only, so there is no IPv6 Private Google Access to turn on.
  name                     = "${var.prefix}-subnet"
  network                  = google_compute_network.main.id
  region                   = var.region
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true
}

resource "google_compute_router" "main" {
  name    = "${var.prefix}-router"
  network = google_compute_network.main.id
  region  = var.region
}

resource "google_compute_router_nat" "main" {
  name                               = "${var.prefix}-nat"
  router                             = google_compute_router.main.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.main.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

resource "google_compute_address" "gitlab" {
  name         = "${var.prefix}-gitlab"
  region       = var.region
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"

  labels = { name = "${var.prefix}-gitlab", duo_role = "gitlab" }
}
