# The bindings of one environment: queues, R2 buckets (with their lifecycle rules), the KV
# namespace and Hyperdrive. Workers Analytics Engine datasets (QUEUE_METRICS, EDGE_METRICS) have
# no resource: a dataset is created by its first write. Rate-limit namespaces are numbers chosen
# in wrangler.toml, not resources.

resource "cloudflare_queue" "queue" {
  for_each   = var.queues
  account_id = var.account_id
  queue_name = each.value
}

resource "cloudflare_r2_bucket" "bucket" {
  for_each   = var.r2_buckets
  account_id = var.account_id
  name       = each.value.name
}

# One lifecycle configuration per bucket with an expiry (dead jobs: 30 days; the revocation
# journal: longer than the database's point-in-time window, see ../../production/main.tf). R2
# deletes an object within about a day of its expiry.
resource "cloudflare_r2_bucket_lifecycle" "bucket" {
  for_each    = { for binding, bucket in var.r2_buckets : binding => bucket if bucket.expire_days != null }
  account_id  = var.account_id
  bucket_name = cloudflare_r2_bucket.bucket[each.key].name
  rules       = [{
    id                        = "expire-${each.value.expire_days}d"
    conditions                = { prefix = "" }
    enabled                   = true
    delete_objects_transition = {
      condition = { type = "Age", max_age = each.value.expire_days * 86400 }
    }
    abort_multipart_uploads_transition = {
      condition = { type = "Age", max_age = 7 * 86400 }
    }
  }]
}

resource "cloudflare_workers_kv_namespace" "kv" {
  for_each   = var.kv_namespaces
  account_id = var.account_id
  title      = each.value
}

# Caching disabled: a revoked share link must stop being served on the next request, and a
# cached read of share_link would serve it for up to 60 s (docs/configuration.md, Bindings).
resource "cloudflare_hyperdrive_config" "hyperdrive" {
  for_each   = var.hyperdrive
  account_id = var.account_id
  name       = each.value
  origin     = {
    scheme   = "postgres"
    host     = var.database.host
    port     = var.database.port
    database = var.database.database
    user     = var.database.user
    password = var.database_password
  }
  caching = {
    disabled = true
  }
}
