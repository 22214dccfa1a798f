# Each output named after a wrangler.toml placeholder fills it: REPLACE_WITH_<NAME> (with this
# environment's name dropped from <NAME>) takes the output <name>, lower-cased
# (scripts/tf-outputs-to-wrangler; ops/tests/infra.rs checks that every placeholder has one).

output "hyperdrive_id" {
  description = "REPLACE_WITH_<ENV>_HYPERDRIVE_ID: the HYPERDRIVE binding."
  value       = module.edge.hyperdrive_id
}

output "ops_state_kv_id" {
  description = "REPLACE_WITH_<ENV>_OPS_STATE_KV_ID: the OPS_STATE binding."
  value       = module.edge.ops_state_kv_id
}

output "babybook_com_zone_id" {
  description = "REPLACE_WITH_BABYBOOK_COM_ZONE_ID: the CF_ZONE_ID var."
  value       = data.cloudflare_zone.babybook.id
}

output "cloudflare_account_id" {
  description = "REPLACE_WITH_CLOUDFLARE_ACCOUNT_ID: the CF_ACCOUNT_ID var."
  value       = var.account_id
}

output "runbook_base_url" {
  description = "REPLACE_WITH_RUNBOOK_BASE_URL: the RUNBOOK_BASE_URL var."
  value       = var.runbook_base_url
}

output "queue_ids" {
  description = "Queue ids per producer binding (wrangler.toml names queues by name)."
  value       = module.edge.queue_ids
}

output "logpush_job_ids" {
  value = module.edge.logpush_job_ids
}

output "healthcheck_ids" {
  value = module.edge.healthcheck_ids
}

output "cache_purge_token" {
  description = "The CACHE_PURGE_TOKEN secret: terraform output -raw cache_purge_token | npx wrangler secret put CACHE_PURGE_TOKEN --env <env>"
  value       = module.edge.cache_purge_token
  sensitive   = true
}

output "analytics_token" {
  description = "The CF_ANALYTICS_TOKEN secret (and CI's CF_ANALYTICS_TOKEN)."
  value       = module.edge.analytics_token
  sensitive   = true
}
