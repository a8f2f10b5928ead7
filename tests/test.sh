#!/usr/bin/env bash
# The test command: `bash tests/test.sh` from a fresh clone.
# Checks formatting and lints, brings up the local Kubernetes control plane (or reuses a running
# one), builds upstream's chaos-operator (once; cached like the plane's binaries), then runs the
# whole suite (unit, property and end-to-end) against it. A plane this script
# started is stopped again at the end, also on failure or Ctrl-C; one it found running is left.
# Exit code: the first failing step's, else the tests'.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly PLANE="$REPO_ROOT/tests/cluster/plane"
readonly OPERATOR="$REPO_ROOT/tests/cluster/operator"
cd "$REPO_ROOT"

say() { printf '\n==> %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
format_ms() { printf '%d.%01ds' $(($1 / 1000)) $((($1 % 1000) / 100)); }

step_names=()
step_times=()
step_results=()
run_started="$(now_ms)"
plane_started_here=0
test_log="$(mktemp)"

print_timings() {
  local index total=$(($(now_ms) - run_started))
  printf '\n==> timings\n' >&2
  for index in "${!step_names[@]}"; do
    printf '  %-36s %10s  %s\n' "${step_names[index]}" "$(format_ms "${step_times[index]}")" "${step_results[index]}" >&2
  done
  printf '  %-36s %10s\n' "total" "$(format_ms "$total")" >&2
}

finish() {
  local status=$?
  trap - EXIT INT TERM
  if [[ "$plane_started_here" == 1 ]]; then
    say "stopping the plane this run started"
    local started
    started="$(now_ms)"
    if "$PLANE" down; then
      step_names+=("plane down")
      step_results+=(ok)
    else
      step_names+=("plane down")
      step_results+=(FAILED)
    fi
    step_times+=($(($(now_ms) - started)))
  fi
  print_timings
  if [[ "$status" == 0 ]]; then
    say "all checks passed"
  else
    say "FAILED (exit code $status)"
  fi
  # Last line: the sum over every test binary's "test result:" line, if tests ran.
  if [[ -s "$test_log" ]]; then
    awk '/^test result: / {
           for (i = 1; i <= NF; i++) {
             if ($(i + 1) ~ /^passed/) passed += $i
             if ($(i + 1) ~ /^failed/) failed += $i
           }
         }
         END { printf "tests: %d passed, %d failed\n", passed, failed }' "$test_log"
  fi
  rm -f "$test_log"
  exit "$status"
}
# The running step, in its own process group so that a signal stops all of it (cargo does not
# pass signals on to the test binaries and the processes they start).
current_step_pid=""
current_step_name=""
current_step_started=0
on_signal() {
  local code="$1"
  if [[ -n "$current_step_pid" ]]; then
    echo "interrupted: stopping the running step (process group $current_step_pid)" >&2
    kill -TERM -- "-$current_step_pid" 2>/dev/null || true
    wait "$current_step_pid" 2>/dev/null || true
    step_names+=("$current_step_name")
    step_times+=($(($(now_ms) - current_step_started)))
    step_results+=(interrupted)
  fi
  exit "$code"
}
trap finish EXIT
# Ctrl-C / a CI cancel: leave through `finish`, which stops a plane we started.
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# Runs one named step, records its time and result; a failing step ends the run.
step() {
  local name="$1"
  shift
  say "$name: $*"
  local started status=0
  started="$(now_ms)"
  # Background + wait: `wait` returns at once on a signal, so the trap runs without delay.
  current_step_name="$name"
  current_step_started="$started"
  setsid "$@" </dev/null &
  current_step_pid=$!
  wait "$current_step_pid" || status=$?
  current_step_pid=""
  step_names+=("$name")
  step_times+=($(($(now_ms) - started)))
  if [[ "$status" == 0 ]]; then
    step_results+=(ok)
  else
    step_results+=("FAILED ($status)")
    exit "$status"
  fi
}

say "chaos-runner test command (repo $REPO_ROOT${CI:+, CI=$CI})"
step "cargo fmt --check" cargo fmt --all --check
if "$PLANE" status >/dev/null 2>&1; then
  say "a healthy plane is already running: reusing it (and leaving it running afterwards)"
else
  say "starting the local control plane (the first run builds it from the Go module proxy: ~5-6 min on 2 cores)"
  plane_started_here=1
fi
step "plane up" "$PLANE" up
# Upstream's chaos-operator for tests/operator_e2e.rs: built once from the Go module proxy
# (~2 min cold), then reused from the same cache as the plane's binaries.
step "operator build" "$OPERATOR" build

plane_env="$("$PLANE" env)"
eval "$plane_env"
export KUBECONFIG CHAOS_PLANE_AUDIT_LOG CHAOS_PLANE_DIR CHAOS_PLANE_KUBECTL
export CHAOS_PLANE_REPO="$REPO_ROOT"
echo "export CHAOS_PLANE_REPO=$REPO_ROOT" >&2

step "cargo clippy" cargo clippy --workspace --all-targets --features e2e -- -D warnings
step "cargo deny (bans, licenses, sources)" bash tests/deny.sh
# The output is kept so the run ends on one line with the counts of every test binary (cargo's
# own last line is a doc-test binary's, often "0 passed").
# shellcheck disable=SC2016 # $0 is expanded by the inner bash, on purpose
# The simulation's schedules run in the release step below (1,000 take ~10 s there, ~6 min in
# a debug build); here only its regression seeds.
step "cargo test (unit, property, e2e)" \
  bash -o pipefail -c 'SIM_SCHEDULES=0 cargo test --workspace --features e2e 2>&1 | tee "$0"' "$test_log"
# The deterministic simulation of the driver (tests/simulation.rs): 1,000 seeded schedules of
# faults, crashes and aborts. The soak: `SIM_SCHEDULES=100000 cargo test --release --test simulation`.
step "simulation (1,000 schedules)" cargo test --release --test simulation
# The short fuzz run (fuzz/stable.rs): the CRD, env, plan and record parsers, the merge, the Job
# builder and the scheduler on mutated fixtures for 25 s; a panic fails the run and leaves the
# input in target/fuzz-crashes/. The soak: the same with `-- --fuzz-execs 1000000`.
step "fuzz (25 s)" cargo test --features e2e --test fuzz -- --fuzz-seconds 25
