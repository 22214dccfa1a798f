# Production: wrangler.toml [env.production]. Every name is a literal, the same as wrangler.toml's
# (ops/tests/infra.rs compares them). Zone-wide settings (WAF, bots, HTTP/3, Brotli) are applied from here only.

data "cloudflare_zone" "babybook" {
  filter = { name = "babybook.com", account = { id = var.account_id } }
}

module "edge" {
  source      = "../modules/edge"
  account_id  = var.account_id
  zone_id     = data.cloudflare_zone.babybook.id
  environment = "production"
  worker_name = "babybook-edge-production"

  queues = {
    JOBS     = "jobs"
    JOBS_DLQ = "jobs-dlq"
  }
  r2_buckets = {
    DEAD_JOBS = { name = "babybook-dead-jobs", expire_days = 30 }
    JOURNAL   = { name = "babybook-journal", expire_days = 35 }
  }
  kv_namespaces = {
    OPS_STATE = "OPS_STATE"
  }
  hyperdrive = {
    HYPERDRIVE = "babybook-production"
  }
  database          = var.database
  database_password = var.database_password

  logs_bucket         = "babybook-logs-production"
  logs_retention_days = { all = 30, errors = 90 }

  share_host             = "share.babybook.com"
  api_host               = "api.babybook.com"
  probe_share_path       = "/s/${var.probe_share_token}"
  probe_regions          = ["ENAM", "WEU", "SSAM"]
  probe_interval_seconds = 300
  runbook_base_url       = var.runbook_base_url
}

# The journal's 35 days: longer than the database's point-in-time window (seed §2.4 and §11:
# 14 days; Neon allows up to 30), so a restore to the oldest point it can reach still finds every
# revoke and session end since then (docs/runbooks/pitr-cutover.md).

module "zone" {
  source  = "../modules/zone"
  zone_id = data.cloudflare_zone.babybook.id
}
