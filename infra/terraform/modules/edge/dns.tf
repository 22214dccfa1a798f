# The Worker's hosts (its routes in wrangler.toml): proxied records with no origin behind them
# (100::, the documented originless target for Worker routes), so every request reaches the
# Worker through Cloudflare's edge, the WAF and bot protection. A proxied record's TTL is Cloudflare's
# "Automatic" (ttl = 1): resolvers are answered with 300 s, inside the seed's 300–600 s (§2.1),
# and a DNS rollback still takes effect within minutes.

resource "cloudflare_dns_record" "host" {
  for_each = toset([var.share_host, var.api_host])
  zone_id  = var.zone_id
  name     = each.value
  type     = "AAAA"
  content  = "100::"
  proxied  = true
  ttl      = 1
  comment  = "babybook-edge ${var.environment}: the Worker route ${each.value}/*"
}
