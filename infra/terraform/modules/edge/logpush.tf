# The two Workers Trace Events Logpush jobs of scripts/logpush, into the environment's log
# bucket, with the same fields (no `Event`: the request's URL is a share page's token), the same
# filters and the same retention (lifecycle rules per prefix). ops/tests/infra.rs holds the
# fields, filters and days to scripts/logpush.

locals {
  logpush_jobs = {
    all = {
      prefix = "workers/all"
      filter = { where = { key = "ScriptName", operator = "eq", value = var.worker_name } }
    }
    errors = {
      prefix = "workers/errors"
      filter = {
        where = {
          and = [
            { key = "ScriptName", operator = "eq", value = var.worker_name },
            {
              or = [
                { key = "Outcome", operator = "!eq", value = "ok" },
                { key = "Logs", operator = "contains", value = "ERROR" },
                { key = "Exceptions", operator = "!eq", value = "[]" },
              ]
            },
          ]
        }
      }
    }
  }
  logpush_fields = ["EventTimestampMs", "ScriptName", "ScriptVersion", "Outcome", "Exceptions", "Logs"]
}

resource "cloudflare_r2_bucket" "logs" {
  account_id = var.account_id
  name       = var.logs_bucket
}

resource "cloudflare_r2_bucket_lifecycle" "logs" {
  account_id  = var.account_id
  bucket_name = cloudflare_r2_bucket.logs.name
  rules       = [for job, spec in local.logpush_jobs : {
    id                        = "expire-${replace(spec.prefix, "/", "-")}-${var.logs_retention_days[job]}d"
    conditions                = { prefix = "${spec.prefix}/" }
    enabled                   = true
    delete_objects_transition = {
      condition = { type = "Age", max_age = var.logs_retention_days[job] * 86400 }
    }
  }]
}

resource "cloudflare_logpush_job" "worker" {
  for_each   = local.logpush_jobs
  account_id = var.account_id
  name       = "${var.worker_name}-${each.key}"
  dataset    = "workers_trace_events"
  enabled    = true
  filter     = jsonencode(each.value.filter)
  # R2's S3 credentials of the logpush token (tokens.tf): the access key id is the token's id,
  # the secret its value's SHA-256.
  destination_conf = "r2://${cloudflare_r2_bucket.logs.name}/${each.value.prefix}/{DATE}?account-id=${var.account_id}&access-key-id=${cloudflare_api_token.logpush_r2.id}&secret-access-key=${sha256(cloudflare_api_token.logpush_r2.value)}"
  output_options   = {
    field_names      = local.logpush_fields
    output_type      = "ndjson"
    timestamp_format = "rfc3339"
  }
}
