#!/usr/bin/env bash
# cargo deny on the workspace (all members, all features): bans, licenses, sources (deny.toml).
# Usage: bash tests/deny.sh [EXTRA CHECK ARGS...]
#
# cargo-deny is installed from crates.io once per version (`cargo install --locked`), cached
# next to the plane's binaries in $CHAOS_RUNNER_CACHE (default ~/.cache/chaos-runner)/
# cargo-deny-<version>/bin, then reused. `advisories` is not checked: the RustSec advisory
# database (a git clone from github.com) cannot be fetched from this machine.
set -euo pipefail

readonly DENY_VERSION="0.20.2"
readonly CACHE_ROOT="${CHAOS_RUNNER_CACHE:-$HOME/.cache/chaos-runner}"
readonly DENY_HOME="$CACHE_ROOT/cargo-deny-$DENY_VERSION"
readonly DENY_BIN="$DENY_HOME/bin/cargo-deny"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT

log() { printf '[deny] %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
since() {
  local ms=$(($(now_ms) - $1))
  printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100))
}

# A cached binary counts only if it runs and says it is this version.
cached() {
  [[ -x "$DENY_BIN" ]] && [[ "$("$DENY_BIN" --version 2>/dev/null)" == "cargo-deny $DENY_VERSION" ]]
}

install() {
  mkdir -p "$CACHE_ROOT"
  # One installer at a time per cache: parallel runs wait, then find the binary.
  exec 9>"$CACHE_ROOT/.cargo-deny.lock"
  if ! flock -n 9; then
    log "another run holds $CACHE_ROOT/.cargo-deny.lock; waiting for it"
    flock 9
  fi
  cached && return 0
  log "installing cargo-deny $DENY_VERSION from crates.io into $DENY_HOME (once per version; about 4 min on 2 cores)"
  local started staging
  started="$(now_ms)"
  # Into a staging root, moved into place only when complete (an interrupted install leaves no
  # half-made cache entry).
  staging="$(mktemp -d "$CACHE_ROOT/.cargo-deny-$DENY_VERSION.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: the path is fixed
  trap "rm -rf '$staging'" EXIT
  # Its own target dir (removed with the staging root), not the repository's.
  CARGO_TARGET_DIR="$staging/target" cargo install --locked --quiet \
    --root "$staging/root" cargo-deny --version "$DENY_VERSION"
  rm -rf "$DENY_HOME"
  mv "$staging/root" "$DENY_HOME"
  rm -rf "$staging"
  trap - EXIT
  cached || {
    log "error: $DENY_BIN does not report cargo-deny $DENY_VERSION after install"
    exit 1
  }
  log "cargo-deny $DENY_VERSION installed in $(since "$started") -> $DENY_BIN"
}

cached || install
exec 9>&-

cd "$REPO_ROOT"
started="$(now_ms)"
status=0
# --locked: check the committed Cargo.lock as is.
"$DENY_BIN" --manifest-path "$REPO_ROOT/Cargo.toml" --workspace --all-features --locked \
  check bans licenses sources "$@" || status=$?
log "cargo deny check bans licenses sources: exit $status in $(since "$started") (advisories not checked: no access to the RustSec database here)"
exit "$status"
