# Staging: wrangler.toml [env.staging]. Every name is a literal, the same as wrangler.toml's
# (ops/tests/infra.rs compares them). Zone-wide settings are production's (../production/main.tf).

data "cloudflare_zone" "babybook" {
  filter = { name = "babybook.com", account = { id = var.account_id } }
}

module "edge" {
  source      = "../modules/edge"
  account_id  = var.account_id
  zone_id     = data.cloudflare_zone.babybook.id
  environment = "staging"
  worker_name = "babybook-edge-staging"

  queues = {
    JOBS     = "jobs-staging"
    JOBS_DLQ = "jobs-dlq-staging"
  }
  r2_buckets = {
    DEAD_JOBS = { name = "babybook-dead-jobs-staging", expire_days = 30 }
    JOURNAL   = { name = "babybook-journal-staging", expire_days = 35 }
  }
  kv_namespaces = {
    OPS_STATE = "OPS_STATE_STAGING"
  }
  hyperdrive = {
    HYPERDRIVE = "babybook-staging"
  }
  database          = var.database
  database_password = var.database_password

  logs_bucket         = "babybook-logs-staging"
  logs_retention_days = { all = 30, errors = 90 }

  share_host             = "share.staging.babybook.com"
  api_host               = "api.staging.babybook.com"
  probe_share_path       = "/s/${var.probe_share_token}"
  probe_regions          = ["ENAM", "WEU", "SSAM"]
  probe_interval_seconds = 300
  runbook_base_url       = var.runbook_base_url
}
