# One deployed environment of the babybook-edge Worker: everything wrangler.toml's
# [env.<environment>] binds, and what runs around it (DNS, Logpush, tokens, health checks).
# The root configurations (../../staging, ../../production) pass every name as a literal, so
# ops/tests/infra.rs can hold them to wrangler.toml without evaluating Terraform.

variable "account_id" {
  description = "The Cloudflare account (32 hex digits)."
  type        = string
}

variable "zone_id" {
  description = "The babybook.com zone (both environments' hosts are in it)."
  type        = string
}

variable "environment" {
  description = "staging or production: wrangler.toml's [env.<environment>]."
  type        = string
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment is staging or production."
  }
}

variable "worker_name" {
  description = "The Worker's script name in this environment (wrangler.toml [env.X] name)."
  type        = string
}

variable "queues" {
  description = "Queue per producer binding (wrangler.toml [[env.X.queues.producers]]): binding => queue name."
  type        = map(string)
}

variable "r2_buckets" {
  description = "R2 bucket per binding (wrangler.toml [[env.X.r2_buckets]]): binding => { name, expire_days }. expire_days null: no expiry rule."
  type        = map(object({
    name        = string
    expire_days = number
  }))
}

variable "kv_namespaces" {
  description = "KV namespace per binding (wrangler.toml [[env.X.kv_namespaces]]): binding => title."
  type        = map(string)
}

variable "hyperdrive" {
  description = "Hyperdrive config per binding (wrangler.toml [[env.X.hyperdrive]]): binding => config name."
  type        = map(string)
}

variable "database" {
  description = "Where Hyperdrive connects: the app_rw role (migrations/README.md) of this environment's database."
  type        = object({
    host     = string
    port     = number
    database = string
    user     = string
  })
}

variable "database_password" {
  description = "The app_rw role's password (from the platform team's secret store; never committed)."
  type        = string
  sensitive   = true
}

variable "logs_bucket" {
  description = "The Logpush archive of scripts/logpush (babybook-logs-<env>)."
  type        = string
}

variable "logs_retention_days" {
  description = "Days each Logpush job's objects are kept: job => days (scripts/logpush: all 30, errors 90)."
  type        = map(number)
}

variable "share_host" {
  description = "The share host (wrangler.toml SHARE_HOSTS; a route of [env.X])."
  type        = string
}

variable "api_host" {
  description = "The API host (wrangler.toml API_HOSTS; a route of [env.X])."
  type        = string
}

variable "probe_share_path" {
  description = "A share page the synthetic probe fetches (seed §5.6: GET /s/:token_publico): a link created for the probe on a probe account, never a user's."
  type        = string
}

variable "probe_regions" {
  description = "Regions the health checks run from (seed §5.6: from 3 regions)."
  type        = list(string)
}

variable "probe_interval_seconds" {
  description = "Seconds between probes from each region (seed §5.6: every 5 minutes)."
  type        = number
}

variable "runbook_base_url" {
  description = "Prefix that turns an alert's runbook path into a link (wrangler.toml RUNBOOK_BASE_URL), e.g. https://github.com/<org>/babybook-edge/blob/main/."
  type        = string
}
