# shellcheck shell=bash
# Shared by scripts/slo and scripts/canary: the Analytics Engine SQL API and the bbops helper.
#
# CF_ACCOUNT_ID and CF_ANALYTICS_TOKEN (an API token with Account Analytics: Read) come from the
# environment; CF_API_BASE (default https://api.cloudflare.com/client/v4) points elsewhere, such as
# the stand-in (`bbops standin sql-api`). BBOPS is the bbops binary (built when unset).

sql_api_base="${CF_API_BASE:-https://api.cloudflare.com/client/v4}"
sql_api_base="${sql_api_base%/}"

# bbops, built once if BBOPS does not name it.
bbops() {
  if [ -z "${BBOPS:-}" ]; then
    local repo; repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    (cd "$repo" && cargo build -q --locked -p babybook-ops --bin bbops) >&2
    BBOPS="$repo/target/debug/bbops"
  fi
  "$BBOPS" "$@"
}

require_sql_api_credentials() {
  : "${CF_ACCOUNT_ID:?set CF_ACCOUNT_ID (the Cloudflare account of the Worker)}"
  : "${CF_ANALYTICS_TOKEN:?set CF_ANALYTICS_TOKEN (an API token with Account Analytics: Read)}"
}

# sql_query SQL OUTFILE: the answer in OUTFILE; returns 1 (with a message on stderr) when the API
# cannot be reached or answers anything but 200.
sql_query() {
  local status
  if ! status=$(curl -sS -o "$2" -w '%{http_code}' --max-time 30 -X POST \
      -H "authorization: Bearer $CF_ANALYTICS_TOKEN" --data-binary "$1" \
      "$sql_api_base/accounts/$CF_ACCOUNT_ID/analytics_engine/sql" 2>"$2.err"); then
    echo "the Analytics Engine SQL API is unreachable at $sql_api_base: $(head -c 300 "$2.err")" >&2
    return 1
  fi
  if [ "$status" != 200 ]; then
    echo "the Analytics Engine SQL API answered $status: $(head -c 300 "$2")" >&2
    return 1
  fi
}
