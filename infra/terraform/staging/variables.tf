variable "account_id" {
  description = "The Cloudflare account (32 hex digits): the CF_ACCOUNT_ID var and CLOUDFLARE_ACCOUNT_ID."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.account_id))
    error_message = "account_id is 32 lowercase hex digits."
  }
}

variable "database" {
  description = "This environment's database as Hyperdrive reaches it, connecting as app_rw."
  type        = object({
    host     = string
    port     = number
    database = string
    user     = string
  })
}

variable "database_password" {
  description = "The app_rw role's password (TF_VAR_database_password; never in a file)."
  type        = string
  sensitive   = true
}

variable "probe_share_token" {
  description = "The token of a share link created for the synthetic probe on a probe account (never a user's link: the health check's configuration shows it)."
  type        = string
}

variable "runbook_base_url" {
  description = "Prefix that turns an alert's runbook path into a link: the repository's blob URL, ending in /."
  type        = string
  validation {
    condition     = can(regex("^https://.+/$", var.runbook_base_url))
    error_message = "runbook_base_url is an https:// URL ending in /."
  }
}
