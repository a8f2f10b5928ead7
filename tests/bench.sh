#!/usr/bin/env bash
# The benchmark: `bash tests/bench.sh` from the repository (any working directory).
# Brings up the local control plane (or reuses a healthy running one), builds the runner and the
# bench in the release profile, runs the bench against target/release/chaos-runner, and prints
# the markdown table (also written to target/bench-report.md). A plane this script started is
# stopped again at the end, also on failure or Ctrl-C; one it found running is left alone.
# Settings: BENCH_REPEATS (standard runs per mode, default 3; 0 skips them), BENCH_LADDER (the
# scale ladder's plan sizes in attempts, default "10,100,1000,10000"; empty skips it; each rung
# has its own timeout, BENCH_RUNG_TIMEOUT seconds for all of them if set; a failed rung is
# reported, not fatal). Progress goes to stderr, the tables to stdout.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly PLANE="$REPO_ROOT/tests/cluster/plane"
cd "$REPO_ROOT"

say() { printf '==> %s\n' "$*" >&2; }

plane_started_here=0
bench_pid=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
finish() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$bench_pid" ]]; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  if [[ "$plane_started_here" == 1 ]]; then
    say "stopping the plane this run started"
    "$PLANE" down || status=1
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if "$PLANE" status >/dev/null 2>&1; then
  say "a healthy plane is already running: reusing it (and leaving it running)"
else
  say "starting the local control plane (a first run builds it: ~5-6 min on 2 cores)"
  plane_started_here=1
  "$PLANE" up >&2
fi
eval "$("$PLANE" env)"
export KUBECONFIG CHAOS_PLANE_AUDIT_LOG CHAOS_PLANE_DIR CHAOS_PLANE_KUBECTL

# One build of both in the release profile: the bench's CARGO_BIN_EXE_chaos-runner is then
# target/release/chaos-runner, the file that is measured. (The e2e feature only enables test
# targets; it changes nothing in the runner's code.)
say "cargo build --release (runner and bench)"
build_log="$(mktemp)"
if ! cargo build --release --features e2e --bin chaos-runner --bench runner \
  --message-format=json-render-diagnostics >"$build_log"; then
  rm -f "$build_log"
  say "build failed"
  exit 1
fi
bench_binary="$(grep '"kind":\["bench"\]' "$build_log" | grep '"name":"runner"' |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)"
rm -f "$build_log"
if [[ -z "$bench_binary" || ! -x "$bench_binary" ]]; then
  say "could not find the bench executable in cargo's output"
  exit 1
fi

say "running $bench_binary --bench (standard runs about 2-3 min; ladder rungs 10 and 100 under a minute, 1000 about 4-5 min, 10000 about 40 min)"
"$bench_binary" --bench &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
exit "$status"
