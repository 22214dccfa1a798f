# Scoped API tokens, one per use, so each can be revoked alone (seed §4.2):
#   cache_purge   Zone → Cache Purge → Purge on babybook.com only: the CACHE_PURGE_TOKEN secret
#   analytics     Account → Account Analytics → Read: the CF_ANALYTICS_TOKEN secret (slo_burn
#                 cron) and the canary's guardrails in CI
#   logpush_r2    Object write on this environment's log bucket only: the Logpush jobs' R2
#                 destination (logpush.tf)
# Their values are sensitive outputs; docs/operations.md says how each reaches its secret.

data "cloudflare_api_token_permission_groups_list" "cache_purge" {
  name  = "Cache%20Purge"
  scope = "com.cloudflare.api.account.zone"
}

data "cloudflare_api_token_permission_groups_list" "analytics_read" {
  name  = "Account%20Analytics%20Read"
  scope = "com.cloudflare.api.account"
}

data "cloudflare_api_token_permission_groups_list" "r2_object_write" {
  name = "Workers%20R2%20Storage%20Bucket%20Item%20Write"
}

resource "cloudflare_api_token" "cache_purge" {
  name     = "${var.worker_name}-cache-purge"
  policies = [{
    effect            = "allow"
    permission_groups = [{ id = data.cloudflare_api_token_permission_groups_list.cache_purge.result[0].id }]
    resources         = jsonencode({ "com.cloudflare.api.account.zone.${var.zone_id}" = "*" })
  }]
}

resource "cloudflare_api_token" "analytics" {
  name     = "${var.worker_name}-analytics-read"
  policies = [{
    effect            = "allow"
    permission_groups = [{ id = data.cloudflare_api_token_permission_groups_list.analytics_read.result[0].id }]
    resources         = jsonencode({ "com.cloudflare.api.account.${var.account_id}" = "*" })
  }]
}

resource "cloudflare_api_token" "logpush_r2" {
  name     = "${var.worker_name}-logpush-r2"
  policies = [{
    effect            = "allow"
    permission_groups = [{ id = data.cloudflare_api_token_permission_groups_list.r2_object_write.result[0].id }]
    resources         = jsonencode({ "com.cloudflare.edge.r2.bucket.${var.account_id}_default_${var.logs_bucket}" = "*" })
  }]
}
