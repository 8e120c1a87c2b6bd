# VPC with one public subnet (GitLab, NAT gateway) and one private subnet
# (AI gateway, Ollama), all in a zone that offers the three instance types.

data "aws_ec2_instance_type_offerings" "zones" {
  for_each = toset([var.gitlab_instance_type, var.gateway_instance_type, var.ollama_instance_type])

  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [each.value]
  }
}

locals {
  # Zones offering every instance type; the GPU type is the one most often missing.
  zones_offering_all = sort(tolist(setintersection([
    for offering in data.aws_ec2_instance_type_offerings.zones : toset(offering.locations)
  ]...)))

  availability_zone = coalesce(var.availability_zone, try(local.zones_offering_all[0], "none"))

  shared_tags = { duo_role = "shared" }
}

resource "aws_vpc" "main" {
  #checkov:skip=CKV2_AWS_11:Flow logs are billed per GB and are not needed to run the service; enable them where policy requires an audit trail.
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.shared_tags, { Name = "${var.prefix}-vpc" })
}

# Take every rule off the default security group so nothing can fall back on it.
resource "aws_default_security_group" "main" {
  vpc_id = aws_vpc.main.id

  tags = merge(local.shared_tags, { Name = "${var.prefix}-default-deny" })
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id

  tags = merge(local.shared_tags, { Name = "${var.prefix}-igw" })
}

resource "aws_subnet" "public" {
  vpc_id            = aws_vpc.main.id
  cidr_block        = var.public_subnet_cidr
  availability_zone = local.availability_zone
  # GitLab gets an Elastic IP; nothing else in this subnet needs a public address.
  map_public_ip_on_launch = false

  tags = merge(local.shared_tags, { Name = "${var.prefix}-public" })

  lifecycle {
    precondition {
      condition     = length(local.zones_offering_all) > 0
      error_message = "No availability zone of ${var.region} offers all of ${var.gitlab_instance_type}, ${var.gateway_instance_type} and ${var.ollama_instance_type}. Choose another region (variable region) or other instance types."
    }
    precondition {
      condition     = length(local.zones_offering_all) == 0 || contains(local.zones_offering_all, local.availability_zone)
      error_message = "availability_zone ${local.availability_zone} does not offer all three instance types; zones that do: ${join(", ", local.zones_offering_all)}. Set availability_zone to one of them, or to null."
    }
  }
}

resource "aws_subnet" "private" {
  vpc_id                  = aws_vpc.main.id
  cidr_block              = var.private_subnet_cidr
  availability_zone       = local.availability_zone
  map_public_ip_on_launch = false

  tags = merge(local.shared_tags, { Name = "${var.prefix}-private" })
}

resource "aws_eip" "nat" {
  domain = "vpc"

  tags = merge(local.shared_tags, { Name = "${var.prefix}-nat" })

  depends_on = [aws_internet_gateway.main]
}

resource "aws_nat_gateway" "main" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public.id

  tags = merge(local.shared_tags, { Name = "${var.prefix}-nat" })

  depends_on = [aws_internet_gateway.main]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  tags = merge(local.shared_tags, { Name = "${var.prefix}-public" })
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.main.id

  tags = merge(local.shared_tags, { Name = "${var.prefix}-private" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.main.id
}

resource "aws_route" "private_internet" {
  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.main.id
}

resource "aws_route_table_association" "public" {
  subnet_id      = aws_subnet.public.id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table_association" "private" {
  subnet_id      = aws_subnet.private.id
  route_table_id = aws_route_table.private.id
}
