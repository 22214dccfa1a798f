# What wrangler.toml and the Worker's secrets need from this environment (the root
# configurations re-export them; scripts/tf-outputs-to-wrangler writes the ids into
# wrangler.toml).

output "queue_ids" {
  description = "Queue id per producer binding (wrangler.toml names queues, not ids)."
  value       = { for binding, queue in cloudflare_queue.queue : binding => queue.queue_id }
}

output "r2_bucket_names" {
  description = "Bucket name per binding."
  value       = { for binding, bucket in cloudflare_r2_bucket.bucket : binding => bucket.name }
}

output "hyperdrive_id" {
  description = "The HYPERDRIVE binding's id (wrangler.toml [[env.X.hyperdrive]] id)."
  value       = cloudflare_hyperdrive_config.hyperdrive["HYPERDRIVE"].id
}

output "ops_state_kv_id" {
  description = "The OPS_STATE binding's id (wrangler.toml [[env.X.kv_namespaces]] id)."
  value       = cloudflare_workers_kv_namespace.kv["OPS_STATE"].id
}

output "logpush_job_ids" {
  description = "The Logpush jobs (all, errors)."
  value       = { for job, j in cloudflare_logpush_job.worker : job => j.id }
}

output "healthcheck_ids" {
  description = "The synthetic probes (health, ready, share)."
  value       = { for probe, h in cloudflare_healthcheck.probe : probe => h.id }
}

output "cache_purge_token" {
  description = "The CACHE_PURGE_TOKEN secret."
  value       = cloudflare_api_token.cache_purge.value
  sensitive   = true
}

output "analytics_token" {
  description = "The CF_ANALYTICS_TOKEN secret (and CI's CF_ANALYTICS_TOKEN)."
  value       = cloudflare_api_token.analytics.value
  sensitive   = true
}
