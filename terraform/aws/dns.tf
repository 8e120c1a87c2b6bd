# The A record Let's Encrypt needs before GitLab's first reconfigure. Created
# only when the zone is managed here; otherwise the output dns_record_needed
# tells which record to create.

resource "aws_route53_record" "gitlab" {
  count = var.route53_zone_id == null ? 0 : 1

  zone_id = var.route53_zone_id
  name    = var.gitlab_domain
  type    = "A"
  ttl     = 300
  records = [aws_eip.gitlab.public_ip]
}
