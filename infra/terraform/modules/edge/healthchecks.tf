# The seed's synthetic probes (§5.6): GET /health and GET /ready (the availability SLO) on the
# API host, and a public share page on the share host, every probe_interval_seconds from each of
# probe_regions. Standalone health checks notify through the account's notification policies.
# (The queue probe of §5.6 is the Worker's own cron job, docs/cron.md; the login and upload probes
# belong to the origin API.)

locals {
  probes = {
    health = { host = var.api_host, path = "/health" }
    ready  = { host = var.api_host, path = "/ready" }
    share  = { host = var.share_host, path = var.probe_share_path }
  }
}

resource "cloudflare_healthcheck" "probe" {
  for_each              = local.probes
  zone_id               = var.zone_id
  name                  = "${var.worker_name}-${each.key}"
  description           = "seed §5.6 synthetic probe: GET https://${each.value.host}${each.value.path}"
  address               = each.value.host
  type                  = "HTTPS"
  check_regions         = var.probe_regions
  interval              = var.probe_interval_seconds
  timeout               = 5
  retries               = 1
  consecutive_fails     = 2
  consecutive_successes = 1
  suspended             = false
  http_config           = {
    method           = "GET"
    path             = each.value.path
    port             = 443
    expected_codes   = ["200"]
    follow_redirects = false
    allow_insecure   = false
    header           = { Host = [each.value.host] }
  }
}
