output "waf_ruleset_id" {
  description = "The zone's managed-rules entry point."
  value       = cloudflare_ruleset.waf_managed.id
}
