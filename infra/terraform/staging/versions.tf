# The staging workspace: its own root configuration and its own state (one workspace per
# environment). State lives in an R2 bucket created by hand once (docs/operations.md, "A first
# deploy"); the endpoint and its credentials come at init:
#   terraform init -backend-config="endpoints={s3=\"https://$CLOUDFLARE_ACCOUNT_ID.r2.cloudflarestorage.com\"}"
# with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY set to an R2 token's S3 credentials.
terraform {
  required_version = ">= 1.6"
  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = "~> 5.8"
    }
  }
  backend "s3" {
    bucket                      = "babybook-terraform-state"
    key                         = "babybook-edge/staging.tfstate"
    region                      = "auto"
    use_path_style              = true
    skip_credentials_validation = true
    skip_region_validation      = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_s3_checksum            = true
  }
}

# CLOUDFLARE_API_TOKEN from the environment: a token that may edit what this configuration
# declares (Account: Workers R2 Storage, Workers KV Storage, Queues, Hyperdrive, Logs, API Tokens;
# Zone: DNS, Health Checks, Zone Settings, Bot Management, Zone WAF).
provider "cloudflare" {}
