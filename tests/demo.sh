#!/usr/bin/env bash
# The demo: `bash tests/demo.sh` from a fresh clone.
# Brings up the local control plane (or reuses a running one), applies deploy/'s sample
# ChaosEngine and ChaosExperiments in a new namespace, starts the pod simulator (no kubelet runs
# here: it plays the experiment pods), runs chaos-runner exactly as the chaos-operator would (the
# operator's env, the deploy/ ServiceAccount's token), then prints the run's timeline: every
# phase transition, the Events, the verdicts and the Jobs left. Tidies up after itself: the
# namespace, the simulator, and the plane if this script started it.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly PLANE="$REPO_ROOT/tests/cluster/plane"
cd "$REPO_ROOT"

say() { printf '\n==> %s\n' "$*" >&2; }

plane_started_here=0
namespace="chaos-demo-$$"
work="$(mktemp -d)"
simulator_pid=""

# shellcheck disable=SC2317 # invoked by the EXIT trap
finish() {
  local status=$?
  trap - EXIT INT TERM
  say "tidying up"
  if [[ -n "$simulator_pid" ]]; then
    kill "$simulator_pid" 2>/dev/null || true
    wait "$simulator_pid" 2>/dev/null || true
  fi
  if [[ -n "${CHAOS_PLANE_KUBECTL:-}" ]]; then
    "$CHAOS_PLANE_KUBECTL" delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  fi
  if [[ "$plane_started_here" == 1 ]]; then
    "$PLANE" down || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if "$PLANE" status >/dev/null 2>&1; then
  say "reusing the running local control plane"
else
  say "starting the local control plane (the first run builds it from the Go module proxy: ~5-6 min on 2 cores)"
  plane_started_here=1
fi
"$PLANE" up >/dev/null
eval "$("$PLANE" env)"
export KUBECONFIG CHAOS_PLANE_KUBECTL
kubectl="$CHAOS_PLANE_KUBECTL"

say "building chaos-runner and the pod simulator (release; ~2 min the first time)"
cargo build --release --quiet -p chaos-runner -p podsim --bins

say "namespace $namespace: deploy/ RBAC, the two ChaosExperiments, the ChaosEngine 'demo'"
"$kubectl" create namespace "$namespace" >/dev/null
"$kubectl" apply -n "$namespace" -f deploy/rbac.yaml -f deploy/experiments.yaml
"$kubectl" apply -n "$namespace" -f deploy/engine.yaml

# The runner runs as the deploy/ ServiceAccount, as it would in its pod.
token="$("$kubectl" create token chaos-runner -n "$namespace" --duration=1h)"
cp "$KUBECONFIG" "$work/runner.kubeconfig"
"$kubectl" --kubeconfig "$work/runner.kubeconfig" config set-credentials chaos-runner --token="$token" >/dev/null
"$kubectl" --kubeconfig "$work/runner.kubeconfig" config set-context --current --user=chaos-runner >/dev/null

say "pod simulator: plays the experiment pods (pod-delete passes, container-kill fails)"
target/release/podsim --namespace "$namespace" >"$work/podsim.log" 2>&1 &
simulator_pid=$!

say "chaos-runner, with the env the chaos-operator gives it"
# Plain log lines for people to read; colour codes only on a terminal (the log library
# honours NO_COLOR), so `bash tests/demo.sh > file 2>&1` stays plain text.
no_color="${NO_COLOR:-}"
[[ -t 2 ]] || no_color=1
set +e
env KUBECONFIG="$work/runner.kubeconfig" \
  NO_COLOR="$no_color" \
  CHAOSENGINE=demo \
  CHAOS_NAMESPACE="$namespace" \
  EXPERIMENT_LIST=pod-delete,container-kill \
  CHAOS_SVC_ACC=chaos-runner \
  TARGETS='deployment:default:[app=nginx]' \
  target/release/chaos-runner --log-format plain
runner_exit=$?
set -e
say "chaos-runner exited with $runner_exit"

say "the run, as the cluster keeps it (chaos-runner report -n $namespace --engine demo)"
target/release/chaos-runner report -n "$namespace" --engine demo
exit "$runner_exit"
