# shellcheck shell=bash
# Shared by scripts/redrive and scripts/switch: the API host an operator command talks to.
#
# edge_url ENV_OR_EMPTY URL_OR_EMPTY: prints the API host of --env (production, staging, local)
# or --url; fails (status 2, with the reason on stderr) when neither or both are given. There is
# no default: a runbook line that forgets the environment fails instead of reaching another one.
edge_url() {
  local env=$1 url=$2
  if [ -n "$env" ] && [ -n "$url" ]; then
    echo "give --env or --url, not both" >&2; return 2
  fi
  case "$env" in
    production) echo "https://api.babybook.com" ;;
    staging) echo "https://api.staging.babybook.com" ;;
    local) echo "http://localhost:8787" ;;
    "")
      if [ -z "$url" ]; then
        echo "say where: --env production|staging|local or --url URL (there is no default)" >&2
        [ -z "${EDGE_URL:-}" ] || echo "(EDGE_URL is no longer read: pass --url \"\$EDGE_URL\")" >&2
        return 2
      fi
      echo "${url%/}" ;;
    *) echo "--env: production, staging or local, not '$env'" >&2; return 2 ;;
  esac
}

# is_local URL: a loopback API host (scripts/dev).
is_local() { [[ "$1" =~ ^http://(localhost|127\.0\.0\.1)(:|/|$) ]]; }
