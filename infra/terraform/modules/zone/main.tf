# Seed §2.1 (HTTP/3 at the edge; Brotli for HTML and JSON, gzip as the fallback) and §2.2 (WAF
# managed rules: OWASP Top 10, SQLi, XSS; a light bot fight mode). The managed rulesets need a
# Pro plan or above; their ids are Cloudflare's (WAF → Managed rules, or the List account rulesets
# API).

locals {
  zone_settings = {
    http3                    = "on"
    brotli                   = "on"
    always_use_https         = "on"
    min_tls_version          = "1.2"
    ssl                      = "strict"
    automatic_https_rewrites = "on"
  }
  managed_rulesets = {
    cloudflare = { id = "efb7b8c949ac4650a09736fc376e9aee", description = "Cloudflare Managed Ruleset" }
    owasp      = { id = "4814384a9e5d4991b9815dcfc25d2f1f", description = "Cloudflare OWASP Core Ruleset" }
  }
}

resource "cloudflare_zone_setting" "setting" {
  for_each   = local.zone_settings
  zone_id    = var.zone_id
  setting_id = each.key
  value      = each.value
}

# "Bot fight mode leve" (§2.2): Bot Fight Mode, without the JavaScript detections' extra
# challenge on every page.
resource "cloudflare_bot_management" "zone" {
  zone_id    = var.zone_id
  fight_mode = true
  enable_js  = false
}

# The zone's entry point of the managed-rules phase: one rule per managed ruleset, each run on
# every request with its own default actions.
resource "cloudflare_ruleset" "waf_managed" {
  zone_id     = var.zone_id
  name        = "babybook.com managed WAF rules"
  description = "Seed §2.2: WAF managed rules (OWASP Top 10, SQLi, XSS)"
  kind        = "zone"
  phase       = "http_request_firewall_managed"
  rules       = [for key, ruleset in local.managed_rulesets : {
    ref               = "execute_${key}"
    description       = "Execute the ${ruleset.description}"
    expression        = "true"
    action            = "execute"
    enabled           = true
    action_parameters = { id = ruleset.id }
  }]
}
