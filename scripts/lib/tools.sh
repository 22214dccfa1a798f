# shellcheck shell=bash
# Shared by scripts/*: installs and locates the toolchain, idempotently and offline-safe.
# Sourced, not run. Every install step is skipped when the right version is already there.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORKER_BUILD_VERSION="0.8.7"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# The script's header comment (after the #! line, up to the first line that is not a comment):
# its usage.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

# `-h`/`--help` anywhere: the usage on stdout, exit 0, before anything is installed, built or
# started. Any other argument not in the script's list ($1, space-separated; "*" takes any):
# the usage on stderr, exit 2.
answer_help() {
  local allowed=$1 arg; shift
  for arg in "$@"; do
    case "$arg" in -h|--help) usage; exit 0 ;; esac
  done
  [ "$allowed" = "*" ] && return 0
  for arg in "$@"; do
    case " $allowed " in
      *" ${arg%%=*} "*) ;;
      *) printf 'unknown argument: %s\n\n' "$arg" >&2; usage >&2; exit 2 ;;
    esac
  done
}

# The wasm-bindgen version pinned in Cargo.lock: the CLI must match it exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$REPO/Cargo.lock"
}

# rust-toolchain.toml pins the toolchain. When that version is not installed under its own name
# but is the installed stable (these machines cannot download toolchains), it is linked to
# stable's directory; otherwise rustup is asked to install it.
ensure_pinned_toolchain() {
  local pinned home host stable
  pinned="$(sed -n 's/^channel *= *"\([^"]*\)".*/\1/p' "$REPO/rust-toolchain.toml")"
  [ -n "$pinned" ] || die "no channel in rust-toolchain.toml"
  RUSTUP_TOOLCHAIN="$pinned" rustc --version >/dev/null 2>&1 && return 0
  stable="$(RUSTUP_TOOLCHAIN=stable rustc --version 2>/dev/null | awk '{print $2}')"
  host="$(RUSTUP_TOOLCHAIN=stable rustc -vV 2>/dev/null | sed -n 's/^host: //p')"
  home="${RUSTUP_HOME:-$HOME/.rustup}"
  if [ "$stable" = "$pinned" ] && [ -d "$home/toolchains/stable-$host" ]; then
    say "Rust $pinned (rust-toolchain.toml) is the installed stable: linking it under its own name"
    ln -sfn "$home/toolchains/stable-$host" "$home/toolchains/$pinned-$host"
  else
    say "rustup toolchain install $pinned (rust-toolchain.toml; the installed stable is ${stable:-none})"
    rustup toolchain install "$pinned" --profile minimal --component clippy,rustfmt \
      --target wasm32-unknown-unknown ||
      die "Rust $pinned is pinned in rust-toolchain.toml and could not be installed"
  fi
  RUSTUP_TOOLCHAIN="$pinned" rustc --version >/dev/null || die "Rust $pinned is still not usable"
}

ensure_rust_tools() {
  command -v rustup >/dev/null || die "rustup not found: install Rust with rustup (https://rustup.rs)"
  ensure_pinned_toolchain
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
    say "cargo install worker-build $WORKER_BUILD_VERSION"
    cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
  fi
  [ -f "$REPO/Cargo.lock" ] || (cd "$REPO" && cargo generate-lockfile)
  local want; want="$(wasm_bindgen_version)"
  [ -n "$want" ] || die "no wasm-bindgen in Cargo.lock"
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$want" ]; then
    say "cargo install wasm-bindgen-cli $want (matches Cargo.lock)"
    # Not --locked: the CLI's own lockfile can pin crates this toolchain cannot build.
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

ensure_node_tools() {
  command -v npm >/dev/null || die "npm not found: install Node.js 20+ and npm"
  local stamp="$REPO/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$REPO/package-lock.json" -nt "$stamp" ]; then
    say "npm ci"
    (cd "$REPO" && npm ci --no-audit --no-fund)
  fi
}

# worker-build downloads wasm-bindgen, esbuild and wasm-opt unless told where they are.
export_build_tools() {
  WASM_BINDGEN_BIN="$(command -v wasm-bindgen || true)"
  export WASM_BINDGEN_BIN
  export ESBUILD_BIN="$REPO/node_modules/.bin/esbuild"
  export WASM_OPT_BIN="$REPO/node_modules/.bin/wasm-opt"
  export PATH="$REPO/node_modules/.bin:$PATH"
}

# Postgres server binaries: the newest /usr/lib/postgresql/*/bin, installing the package if root.
pg_bindir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    if [ "$(id -u)" = 0 ]; then
      say "apt-get install postgresql" ; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
      dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    else
      die "PostgreSQL server binaries not found: sudo apt-get install postgresql"
    fi
  fi
  echo "$dir"
}

ensure_pgbouncer() {
  command -v pgbouncer >/dev/null && return
  if [ "$(id -u)" = 0 ]; then
    say "apt-get install pgbouncer"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
    # The package may start a system-wide pgbouncer; ours run privately.
    (service pgbouncer stop || true) >/dev/null 2>&1
  else
    die "pgbouncer not found: sudo apt-get install pgbouncer"
  fi
}

# Debian's Chromium, for the share page's CSP test (driven by npm's playwright-core).
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return
  if [ "$(id -u)" = 0 ]; then
    say "apt-get install chromium"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    die "chromium not found: sudo apt-get install chromium"
  fi
}

# wrk, the HTTP load generator of scripts/bench (and of its smoke run in scripts/test).
ensure_wrk() {
  command -v wrk >/dev/null && return
  if [ "$(id -u)" = 0 ]; then
    say "apt-get install wrk"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    die "wrk not found: sudo apt-get install wrk"
  fi
}

# schemathesis (PyPI) in a private virtualenv, for the OpenAPI contract test
# (edge-tests/tests/edge/contract.rs). The version is pinned in edge-tests/requirements.txt.
ensure_schemathesis() {
  local venv="$REPO/target/tools/schemathesis" wanted
  wanted=$(sed -n 's/^schemathesis==//p' "$REPO/edge-tests/requirements.txt")
  if [ -x "$venv/bin/schemathesis" ] && "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "version $wanted"; then
    return
  fi
  if ! python3 -m venv --help >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      say "apt-get install python3-venv"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
      die "python3 with venv not found: sudo apt-get install python3-venv"
    fi
  fi
  say "pip install schemathesis==$wanted"
  rm -rf "$venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check -r "$REPO/edge-tests/requirements.txt" ||
    die "could not install schemathesis"
}
