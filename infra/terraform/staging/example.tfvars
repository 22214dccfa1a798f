# Copy to staging.auto.tfvars (ignored by git) or pass as TF_VAR_… in CI. The password and the
# probe token come from the environment: TF_VAR_database_password, TF_VAR_probe_share_token.
account_id       = "0123456789abcdef0123456789abcdef"
database         = { host = "db.staging.example.com", port = 5432, database = "babybook", user = "app_rw" }
runbook_base_url = "https://github.com/EXAMPLE-ORG/babybook-edge/blob/main/"
