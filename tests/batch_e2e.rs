//! End-to-end tests of run plans on the local control plane (issue 6, "Done when"): a diamond of
//! dependencies with its middle stage in parallel, `max-parallel` as a bound, a failed
//! dependency (skip and run policies), iterations with a minimum interval, SIGKILL in the
//! parallel stage and during an interval wait, abort in the parallel stage, the monitoring
//! exporter, and plans rejected before anything runs.
//!
//! Each test gets its own namespace with `deploy/rbac.yaml`, the four interchangeable
//! experiments of `fixtures/batch/experiments.yaml`, an engine whose plan annotations the test
//! sets, and the pod simulator. The runner runs as a child process exactly as the operator
//! starts it (env only), as the ServiceAccount `chaos-runner`. Order and overlap are read from
//! two independent clocks: the runner's audit trail (`status.chaosRunner.history`) and the
//! simulator's record of when each pod ran and completed.
//! Needs `--features e2e` and a plane: `eval "$(tests/cluster/plane env)"`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow, ensure};
use common::run::{
    RUN_TIMEOUT, Suite, Transition, World, chaos_engine, check_trail, describe_events,
    engine_experiment, entry, expect_exit, find_events, message,
};
use common::{RunnerProcess, Signal, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use podsim::SimEventKind;
use serde_json::{Value, json};

/// The engine of every test (each test has its own namespace).
const ENGINE: &str = "batch";
/// `source.component` of the runner's Events and `runner` of its entries.
const COMPONENT: &str = "batch-runner";
/// deploy/rbac.yaml: the project's Role (with watch and the exporter's create).
const SERVICE_ACCOUNT: &str = "chaos-runner";
/// The experiments of fixtures/batch/experiments.yaml.
const A: &str = "batch-a";
const B: &str = "batch-b";
const C: &str = "batch-c";
const D: &str = "batch-d";

const MAX_PARALLEL: &str = "chaos-runner.io/max-parallel";
const AFTER: &str = "chaos-runner.io/after";
const ITERATIONS: &str = "chaos-runner.io/iterations";
const MIN_INTERVAL: &str = "chaos-runner.io/min-interval";
const ON_DEPENDENCY_FAILURE: &str = "chaos-runner.io/on-dependency-failure";
const MONITORING: &str = "chaos-runner.io/monitoring";
const EXPORTER_IMAGE: &str = "chaos-runner.io/exporter-image";

// ---------------------------------------------------------------------------------------------
// Scaffolding
// ---------------------------------------------------------------------------------------------

/// An engine experiment entry: the simulator plays its pod with `behaviour` for `seconds`.
fn experiment(name: &str, behaviour: &str, seconds: &str) -> Value {
    engine_experiment(
        name,
        &[("PODSIM_BEHAVIOUR", behaviour), ("PODSIM_SECONDS", seconds)],
    )
}

/// The ChaosEngine: plan `annotations`, no appinfo, Jobs deleted after each attempt.
fn engine(annotations: &[(&str, &str)], experiments: Vec<Value>) -> Value {
    chaos_engine(ENGINE, SERVICE_ACCOUNT, "delete", annotations, experiments)
}

/// The diamond: a; b and c after a; d after b and c; two at once.
const DIAMOND_AFTER: &str = "batch-b: batch-a\nbatch-c: batch-a\nbatch-d: batch-b, batch-c\n";

/// The diamond engine, each experiment played as given: `(behaviour, seconds)` for a, b, c, d.
fn diamond(extra: &[(&str, &str)], plays: [(&str, &str); 4]) -> Value {
    let mut annotations = vec![(MAX_PARALLEL, "2"), (AFTER, DIAMOND_AFTER)];
    annotations.extend_from_slice(extra);
    let experiments = [A, B, C, D]
        .iter()
        .zip(plays)
        .map(|(name, (behaviour, seconds))| experiment(name, behaviour, seconds))
        .collect();
    engine(&annotations, experiments)
}

static SUITE: Suite = Suite {
    engine: ENGINE,
    component: COMPONENT,
    chaos_service_account: SERVICE_ACCOUNT,
    fixtures: &["deploy/rbac.yaml", "fixtures/batch/experiments.yaml"],
};

/// An attempt's chain starts at Init, or at Planned for one that never started.
const FIRST_PHASES: &[&str] = &["Init", "Planned"];

/// One test's world, the runner authenticated as `chaos-runner`.
async fn new_world(prefix: &str, engine: Value) -> anyhow::Result<World> {
    World::new(&SUITE, prefix, SERVICE_ACCOUNT, engine).await
}

/// What only the batch suite reads of a world: when its pods ran.
impl World {
    /// The pods the simulator played for experiment `exp` (Job `<exp>-xxxxxx`), in the order
    /// they started running, with when they ran and when they completed.
    fn plays_of(&self, exp: &str) -> Vec<Play> {
        let prefix = format!("{exp}-");
        let mut plays: BTreeMap<String, Play> = BTreeMap::new();
        for event in self.sim.events() {
            if !event.pod.starts_with(&prefix) {
                continue;
            }
            let play = plays.entry(event.pod.clone()).or_insert_with(|| Play {
                pod: event.pod.clone(),
                running: None,
                completed: None,
            });
            match event.kind {
                SimEventKind::Running => play.running = Some(ms_of_system_time(event.at)),
                SimEventKind::Completed { .. } => {
                    play.completed = Some(ms_of_system_time(event.at))
                }
                _ => {}
            }
        }
        let mut plays: Vec<Play> = plays.into_values().collect();
        plays.sort_by_key(|p| p.running.unwrap_or(i64::MAX));
        plays
    }

    /// The one pod played for `exp`, which ran and completed.
    fn single_play(&self, exp: &str) -> anyhow::Result<(String, i64, i64)> {
        let plays = self.plays_of(exp);
        ensure!(
            plays.len() == 1,
            "{exp}: expected one pod, the simulator played {plays:?}"
        );
        plays[0].span()
    }
}

/// One pod the simulator played: when it ran and when it completed (ms since the epoch).
#[derive(Debug, Clone)]
struct Play {
    pod: String,
    running: Option<i64>,
    completed: Option<i64>,
}

impl Play {
    fn span(&self) -> anyhow::Result<(String, i64, i64)> {
        match (self.running, self.completed) {
            (Some(running), Some(completed)) => Ok((self.pod.clone(), running, completed)),
            _ => Err(anyhow!(
                "pod {} did not run and complete: {self:?}",
                self.pod
            )),
        }
    }
}

fn ms_of_system_time(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// When attempt `key` started and ended according to the trail (first and last transition).
fn span(trail: &[Transition], key: &str) -> anyhow::Result<(i64, i64)> {
    let chain: Vec<&Transition> = trail.iter().filter(|t| t.attempt == key).collect();
    match (chain.first(), chain.last()) {
        (Some(first), Some(last)) => Ok((first.at_ms, last.at_ms)),
        _ => Err(anyhow!("attempt {key} is not in the trail: {trail:#?}")),
    }
}

/// The transitions of attempt `key`, as `(from, to, reason)`.
fn chain_of(trail: &[Transition], key: &str) -> Vec<(String, String, String)> {
    trail
        .iter()
        .filter(|t| t.attempt == key)
        .map(|t| (t.from.clone(), t.to.clone(), t.reason.clone()))
        .collect()
}

/// `a` ended no later than `b` started (ms).
fn ensure_before(what: &str, ended: i64, started: i64) -> anyhow::Result<()> {
    ensure!(
        ended <= started,
        "{what}: ended at {ended} ms, but the next started at {started} ms ({} ms earlier)",
        ended - started
    );
    Ok(())
}

/// Phase and pod of every attempt's checkpoint (`status.chaosRunner.attempts`).
fn stored_attempts(status: &Value) -> BTreeMap<String, (String, Option<String>)> {
    status["chaosRunner"]["attempts"]
        .as_object()
        .map(|attempts| {
            attempts
                .iter()
                .map(|(key, cp)| {
                    (
                        key.clone(),
                        (
                            cp["phase"].as_str().unwrap_or("").to_owned(),
                            cp["pod"].as_str().map(str::to_owned),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until every attempt in `keys` is stored in Monitor with its pod recorded: the
/// parallel stage in full flight.
async fn wait_all_in_monitor(
    world: &World,
    runner: &mut RunnerProcess,
    keys: &[&str],
) -> anyhow::Result<BTreeMap<String, (String, Option<String>)>> {
    let mut last = BTreeMap::new();
    let outcome = wait_until(
        RUN_TIMEOUT,
        "every parallel attempt in Monitor",
        async || {
            if let Some(exit) = runner.wait_timeout(Duration::ZERO).await? {
                return Err(anyhow!(
                    "the runner exited ({exit}) before the parallel stage; log tail:\n{}",
                    runner.log_tail(30)
                ));
            }
            let attempts = stored_attempts(&world.status().await?);
            let all = keys.iter().all(|key| {
                attempts
                    .get(*key)
                    .is_some_and(|(phase, pod)| phase == "Monitor" && pod.is_some())
            });
            last = attempts.clone();
            Ok(all.then_some(attempts))
        },
    )
    .await;
    outcome.with_context(|| format!("checkpoints last seen: {last:?}"))
}

// ---------------------------------------------------------------------------------------------
// 1. The diamond: order, overlap, verdicts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_diamond_runs_in_order_with_its_middle_stage_in_parallel() -> anyhow::Result<()> {
    let world = new_world("diamond", diamond(&[], [("pass", "2"); 4])).await?;
    let mut runner = world.spawn(&[A, B, C, D], &[])?;
    expect_exit(&mut runner, 0).await?;

    let status = world.status().await?;
    let (pod_a, run_a, done_a) = world.single_play(A)?;
    let (pod_b, run_b, done_b) = world.single_play(B)?;
    let (pod_c, run_c, done_c) = world.single_play(C)?;
    let (pod_d, run_d, _) = world.single_play(D)?;
    world.check_entries(
        &status,
        &[
            (A, &pod_a, "Completed", "Pass"),
            (B, &pod_b, "Completed", "Pass"),
            (C, &pod_c, "Completed", "Pass"),
            (D, &pod_d, "Completed", "Pass"),
        ],
    )?;

    // The plan's inputs are recorded with the run (two at once, d after both b and c), with
    // the digest of the plan they resolve to.
    let engine = world
        .engine()
        .await?
        .ok_or_else(|| anyhow!("engine gone"))?;
    let annotations = engine.metadata.annotations.unwrap_or_default();
    let raw = annotations.get("chaos-runner.io/run").map(String::as_str);
    let run: Value = serde_json::from_str(raw.unwrap_or("{}"))?;
    let inputs = &run["plan"];
    ensure!(
        inputs["annotations"][MAX_PARALLEL] == "2"
            && inputs["annotations"][AFTER] == DIAMOND_AFTER
            && inputs["experiments"] == json!([A, B, C, D])
            && inputs["digest"].as_str().is_some_and(|d| d.len() == 16),
        "recorded plan inputs: {run:#}"
    );

    // Order by the runner's own trail: each attempt starts after what it depends on ended.
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    let (_, end_a) = span(&trail, "batch-a#1")?;
    let (start_b, end_b) = span(&trail, "batch-b#1")?;
    let (start_c, end_c) = span(&trail, "batch-c#1")?;
    let (start_d, _) = span(&trail, "batch-d#1")?;
    ensure_before("trail: a before b", end_a, start_b)?;
    ensure_before("trail: a before c", end_a, start_c)?;
    ensure_before("trail: b before d", end_b, start_d)?;
    ensure_before("trail: c before d", end_c, start_d)?;
    // b and c were in flight together (their attempts overlap in the trail).
    ensure!(
        start_b < end_c && start_c < end_b,
        "trail: b [{start_b}, {end_b}] and c [{start_c}, {end_c}] do not overlap"
    );

    // The same by the simulator's clock: pods, not bookkeeping.
    ensure_before("pods: a before b", done_a, run_b)?;
    ensure_before("pods: a before c", done_a, run_c)?;
    ensure_before("pods: b before d", done_b, run_d)?;
    ensure_before("pods: c before d", done_c, run_d)?;
    ensure!(
        run_b < done_c && run_c < done_b,
        "pods: b ran [{run_b}, {done_b}] and c ran [{run_c}, {done_c}]: no overlap"
    );
    let overlap = done_b.min(done_c) - run_b.max(run_c);
    eprintln!("diamond: b and c pods overlapped for {overlap} ms, a ran {run_a}..{done_a}");

    world.expect_one_job_per_attempt(4)?;
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await?;
    // Monitoring is off by default: no exporter.
    ensure!(
        world
            .ns
            .api::<Deployment>()
            .get_opt("chaos-exporter")
            .await?
            .is_none(),
        "a chaos-exporter Deployment exists although monitoring is off"
    );
    Ok(())
}

#[tokio::test]
async fn max_parallel_bounds_how_many_run_at_once() -> anyhow::Result<()> {
    // Three experiments without dependencies, two at once: the third waits for a free slot.
    let world = new_world(
        "max-parallel",
        engine(
            &[(MAX_PARALLEL, "2")],
            vec![
                experiment(A, "pass", "2"),
                experiment(B, "pass", "2"),
                experiment(C, "pass", "2"),
            ],
        ),
    )
    .await?;
    let mut runner = world.spawn(&[A, B, C], &[])?;
    expect_exit(&mut runner, 0).await?;
    let mut intervals = Vec::new();
    for exp in [A, B, C] {
        let (_, running, completed) = world.single_play(exp)?;
        intervals.push((exp, running, completed));
    }
    // At every pod start, count the pods running then (itself included).
    let most = intervals
        .iter()
        .map(|(_, start, _)| {
            intervals
                .iter()
                .filter(|(_, s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0);
    ensure!(most == 2, "at most {most} pods ran at once: {intervals:?}");
    let status = world.status().await?;
    for exp in [A, B, C] {
        let e = entry(&status, exp)?;
        ensure!(e["verdict"] == "Pass", "{exp}: {e}");
    }
    world.expect_one_job_per_attempt(3)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. A failed dependency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_failed_dependency_skips_its_dependents_naming_it() -> anyhow::Result<()> {
    let world = new_world(
        "dep-skip",
        diamond(
            &[],
            [("fail", "1"), ("pass", "1"), ("pass", "1"), ("pass", "1")],
        ),
    )
    .await?;
    let mut runner = world.spawn(&[A, B, C, D], &[])?;
    expect_exit(&mut runner, 0).await?;

    let status = world.status().await?;
    let (pod_a, _, _) = world.single_play(A)?;
    world.check_entries(
        &status,
        &[
            (A, &pod_a, "Completed", "Fail"),
            (B, "N/A", "Skipped", "N/A"),
            (C, "N/A", "Skipped", "N/A"),
            (D, "N/A", "Skipped", "N/A"),
        ],
    )?;

    // Each dependent's trail is one transition Planned -> Skipped whose reason names the
    // dependency that did not pass (b, c: a; d: b or c, which were skipped).
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    for (key, dependencies) in [
        ("batch-b#1", &["batch-a#1"][..]),
        ("batch-c#1", &["batch-a#1"][..]),
        ("batch-d#1", &["batch-b#1", "batch-c#1"][..]),
    ] {
        let chain = chain_of(&trail, key);
        ensure!(
            chain.len() == 1 && chain[0].0 == "Planned" && chain[0].1 == "Skipped",
            "{key}: {chain:?}"
        );
        ensure!(
            dependencies.iter().any(|d| chain[0].2.contains(d)),
            "{key}: the reason {:?} names none of {dependencies:?}",
            chain[0].2
        );
    }

    // A Warning ExperimentSkipped per dependent, naming it and its dependency.
    world
        .expect_warning("ExperimentSkipped", &["batch-b", "batch-a#1"])
        .await?;
    world
        .expect_warning("ExperimentSkipped", &["batch-c", "batch-a#1"])
        .await?;
    let skipped_d = world
        .expect_warning("ExperimentSkipped", &["batch-d"])
        .await?;
    ensure!(
        ["batch-b#1", "batch-c#1"]
            .iter()
            .any(|d| message(&skipped_d).contains(d)),
        "the skip of d names no dependency: {}",
        message(&skipped_d)
    );

    // Only a ran: one Job, no pod for the others.
    let jobs = world.expect_one_job_per_attempt(1)?;
    ensure!(
        jobs.iter().all(|j| j.starts_with("batch-a-")),
        "Jobs: {jobs:?}"
    );
    for exp in [B, C, D] {
        ensure!(world.plays_of(exp).is_empty(), "{exp} ran");
    }
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

#[tokio::test]
async fn with_on_dependency_failure_run_dependents_run_anyway() -> anyhow::Result<()> {
    let world = new_world(
        "dep-run",
        diamond(
            &[(ON_DEPENDENCY_FAILURE, "run")],
            [("fail", "1"), ("pass", "1"), ("pass", "1"), ("pass", "1")],
        ),
    )
    .await?;
    let mut runner = world.spawn(&[A, B, C, D], &[])?;
    expect_exit(&mut runner, 0).await?;

    let status = world.status().await?;
    let (pod_a, _, done_a) = world.single_play(A)?;
    let (pod_b, run_b, done_b) = world.single_play(B)?;
    let (pod_c, run_c, done_c) = world.single_play(C)?;
    let (pod_d, run_d, _) = world.single_play(D)?;
    world.check_entries(
        &status,
        &[
            (A, &pod_a, "Completed", "Fail"),
            (B, &pod_b, "Completed", "Pass"),
            (C, &pod_c, "Completed", "Pass"),
            (D, &pod_d, "Completed", "Pass"),
        ],
    )?;
    // Running anyway still means after: the order holds.
    ensure_before("pods: a before b", done_a, run_b)?;
    ensure_before("pods: a before c", done_a, run_c)?;
    ensure_before("pods: b before d", done_b, run_d)?;
    ensure_before("pods: c before d", done_c, run_d)?;
    check_trail(&world.trail().await?, FIRST_PHASES)?;
    let events = world.events().await?;
    ensure!(
        find_events(&events, "ExperimentSkipped").is_empty(),
        "skip events under `run`: {:#?}",
        describe_events(&events)
    );
    world.expect_one_job_per_attempt(4)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. Iterations with a minimum interval
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn three_iterations_run_three_attempts_at_least_the_interval_apart() -> anyhow::Result<()> {
    const INTERVAL_MS: i64 = 3000;
    let world = new_world(
        "iterations",
        engine(
            &[(ITERATIONS, "3"), (MIN_INTERVAL, "3s")],
            vec![experiment(A, "pass", "1")],
        ),
    )
    .await?;
    let mut runner = world.spawn(&[A], &[])?;
    expect_exit(&mut runner, 0).await?;
    let status = world.status().await?;

    // Three attempts, three distinct Jobs, each created once. Ended attempts keep no
    // checkpoint, only their progress token (verdict and end), all three Pass.
    world.expect_one_job_per_attempt(3)?;
    let attempts = &status["chaosRunner"]["attempts"];
    ensure!(
        attempts.as_object().is_some_and(|a| a.is_empty()),
        "checkpoints left after the run: {attempts:#}"
    );
    let engine = world
        .engine()
        .await?
        .ok_or_else(|| anyhow!("engine gone"))?;
    let annotations = engine.metadata.annotations.unwrap_or_default();
    let progress = annotations
        .get("chaos-runner.io/progress-0")
        .map(String::as_str)
        .unwrap_or("");
    let marks: Vec<char> = progress
        .split(' ')
        .filter_map(|t| t.chars().next())
        .collect();
    ensure!(marks == ['P', 'P', 'P'], "progress {progress:?}");

    // The plan's inputs are recorded with the run: the interval among them.
    let run: Value = serde_json::from_str(
        annotations
            .get("chaos-runner.io/run")
            .map(String::as_str)
            .unwrap_or("{}"),
    )?;
    ensure!(
        run["plan"]["annotations"][MIN_INTERVAL] == "3s",
        "recorded plan inputs: {run:#}"
    );

    // Each start at least the interval after the previous end, by both clocks.
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    let plays = world.plays_of(A);
    ensure!(plays.len() == 3, "pods played: {plays:?}");
    for i in 1..3 {
        let (_, end) = span(&trail, &format!("batch-a#{i}"))?;
        let (start, _) = span(&trail, &format!("batch-a#{}", i + 1))?;
        ensure!(
            start - end >= INTERVAL_MS,
            "trail: iteration {} started {} ms after iteration {i} ended",
            i + 1,
            start - end
        );
        let (_, _, completed) = plays[i - 1].span()?;
        let (_, running, _) = plays[i].span()?;
        ensure!(
            running - completed >= INTERVAL_MS,
            "pods: iteration {} ran {} ms after iteration {i} completed",
            i + 1,
            running - completed
        );
        eprintln!(
            "iteration {i} -> {}: {} ms between attempts",
            i + 1,
            start - end
        );
    }

    // The entry ends on the last iteration, with its pod.
    let (last_pod, _, _) = plays[2].span()?;
    let a = entry(&status, A)?;
    ensure!(
        a["iteration"] == 3
            && a["iterations"] == 3
            && a["status"] == "Completed"
            && a["verdict"] == "Pass"
            && a["experimentPod"] == last_pod.as_str(),
        "entry: {a}, last pod {last_pod}"
    );
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

// ---------------------------------------------------------------------------------------------
// 4. SIGKILL and restart
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sigkill_in_the_parallel_stage_then_restart_finishes_without_duplicates()
-> anyhow::Result<()> {
    sigkill_in_the_parallel_stage(false).await
}

#[tokio::test]
async fn sigkill_in_the_parallel_stage_with_the_checkpoint_erased_finishes_without_duplicates()
-> anyhow::Result<()> {
    // Only the audit annotation and the entries are left: the plan and both in-flight attempts
    // are rebuilt from them and the cluster.
    sigkill_in_the_parallel_stage(true).await
}

async fn sigkill_in_the_parallel_stage(erase_checkpoint: bool) -> anyhow::Result<()> {
    // c fails and d runs anyway: a Fail verdict and a stage after the restart are both at stake.
    let world = new_world(
        if erase_checkpoint {
            "kill-parallel-erased"
        } else {
            "kill-parallel"
        },
        diamond(
            &[(ON_DEPENDENCY_FAILURE, "run")],
            [("pass", "1"), ("pass", "3"), ("fail", "3"), ("pass", "1")],
        ),
    )
    .await?;
    let mut first = world.spawn(&[A, B, C, D], &[])?;
    let at_kill = wait_all_in_monitor(&world, &mut first, &["batch-b#1", "batch-c#1"]).await?;
    first.kill(Signal::Kill)?;
    first.wait(Duration::from_secs(10)).await?;
    eprintln!("killed with {at_kill:?} stored");
    if erase_checkpoint {
        world
            .patch_engine(json!({"status": {"chaosRunner": null}}))
            .await?;
        ensure!(
            world.status().await?["chaosRunner"].is_null(),
            "checkpoint not erased"
        );
    }

    let mut second = world.spawn(&[A, B, C, D], &[])?;
    expect_exit(&mut second, 0).await?;
    let resumed = if erase_checkpoint {
        "resuming from the recorded progress"
    } else {
        "resuming from the checkpoint"
    };
    ensure!(
        second.output().contains(resumed),
        "the second runner did not log {resumed:?}:\n{}",
        second.log_tail(30)
    );

    let status = world.status().await?;
    let (pod_a, _, _) = world.single_play(A)?;
    let (pod_b, _, done_b) = world.single_play(B)?;
    let (pod_c, _, done_c) = world.single_play(C)?;
    let (pod_d, run_d, _) = world.single_play(D)?;
    world.check_entries(
        &status,
        &[
            (A, &pod_a, "Completed", "Pass"),
            (B, &pod_b, "Completed", "Pass"),
            (C, &pod_c, "Completed", "Fail"),
            (D, &pod_d, "Completed", "Pass"),
        ],
    )?;
    // The resumed runner kept the plan: d only after both b and c.
    ensure_before("pods: b before d", done_b, run_d)?;
    ensure_before("pods: c before d", done_c, run_d)?;
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    world.expect_one_job_per_attempt(4)?;
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

#[tokio::test]
async fn sigkill_during_a_min_interval_wait_neither_restarts_nor_skips_the_wait()
-> anyhow::Result<()> {
    sigkill_during_a_min_interval_wait(false).await
}

#[tokio::test]
async fn sigkill_during_a_min_interval_wait_with_the_checkpoint_erased_keeps_the_wait()
-> anyhow::Result<()> {
    // The end of iteration 1 is then known only from the audit trail.
    sigkill_during_a_min_interval_wait(true).await
}

async fn sigkill_during_a_min_interval_wait(erase_checkpoint: bool) -> anyhow::Result<()> {
    const INTERVAL_MS: i64 = 5000;
    let world = new_world(
        if erase_checkpoint {
            "kill-interval-erased"
        } else {
            "kill-interval"
        },
        engine(
            &[(ITERATIONS, "2"), (MIN_INTERVAL, "5s")],
            vec![experiment(A, "pass", "1")],
        ),
    )
    .await?;
    let mut first = world.spawn(&[A], &[])?;
    // Iteration 1 ended and stored, iteration 2 not started: the runner is waiting.
    let mut last = Vec::new();
    // A started iteration 2 ends the wait at once (as an error, after the loop): retrying it
    // would only hide that the interval was not honoured.
    let seen_end = wait_until(RUN_TIMEOUT, "iteration 1 recorded Completed", async || {
        let attempts = stored_attempts(&world.status().await?);
        let trail = world.trail().await?;
        last = trail.clone();
        if attempts.contains_key("batch-a#2") || trail.iter().any(|t| t.attempt == "batch-a#2") {
            return Ok(Some(Err(format!(
                "iteration 2 started before the test saw iteration 1 end: {attempts:?}"
            ))));
        }
        let ended = trail
            .iter()
            .find(|t| t.attempt == "batch-a#1" && t.to == "Completed");
        Ok(ended.map(|t| Ok(t.at_ms)))
    })
    .await
    .with_context(|| format!("trail last seen: {last:#?}"))?;
    let end_1 = seen_end.map_err(|message| anyhow!(message))?;

    // Kill 2 s into the 5 s wait.
    let kill_at = end_1 + 2000;
    let now = Timestamp::now().as_millisecond();
    if kill_at > now {
        tokio::time::sleep(Duration::from_millis((kill_at - now) as u64)).await;
    }
    let attempts = stored_attempts(&world.status().await?);
    ensure!(
        !attempts.contains_key("batch-a#2"),
        "iteration 2 started within the interval: {attempts:?}"
    );
    first.kill(Signal::Kill)?;
    first.wait(Duration::from_secs(10)).await?;
    if erase_checkpoint {
        world
            .patch_engine(json!({"status": {"chaosRunner": null}}))
            .await?;
    }
    let restarted_at = Timestamp::now().as_millisecond();
    let mut second = world.spawn(&[A], &[])?;
    expect_exit(&mut second, 0).await?;

    let status = world.status().await?;
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    let (_, end) = span(&trail, "batch-a#1")?;
    let (start, _) = span(&trail, "batch-a#2")?;
    ensure!(
        end == end_1,
        "iteration 1 ended at {end_1}, the trail says {end}"
    );
    // Not skipped: the full interval after the end of iteration 1.
    ensure!(
        start - end >= INTERVAL_MS,
        "iteration 2 started {} ms after iteration 1 ended: the wait was cut short",
        start - end
    );
    // Not restarted from zero: before the interval could have elapsed again since the restart.
    ensure!(
        start < restarted_at + INTERVAL_MS,
        "iteration 2 started {} ms after the restart: the wait began again from zero",
        start - restarted_at
    );
    eprintln!(
        "interval wait across a restart: killed {} ms after iteration 1 ended, restarted at +{} ms, \
         iteration 2 started at +{} ms",
        kill_at - end,
        restarted_at - end,
        start - end
    );
    let plays = world.plays_of(A);
    ensure!(plays.len() == 2, "pods played: {plays:?}");
    let (_, _, completed_1) = plays[0].span()?;
    let (last_pod, running_2, _) = plays[1].span()?;
    ensure!(
        running_2 - completed_1 >= INTERVAL_MS,
        "pods: iteration 2 ran {} ms after iteration 1 completed",
        running_2 - completed_1
    );
    let a = entry(&status, A)?;
    ensure!(
        a["iteration"] == 2 && a["iterations"] == 2 && a["experimentPod"] == last_pod.as_str(),
        "entry: {a}"
    );
    world.expect_one_job_per_attempt(2)?;
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

// ---------------------------------------------------------------------------------------------
// 5. Abort in the parallel stage
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn abort_in_the_parallel_stage_cleans_every_job() -> anyhow::Result<()> {
    // b and c run until someone stops them; d never gets to start.
    let world = new_world(
        "abort-parallel",
        diamond(
            &[],
            [("pass", "0.5"), ("hang", "1"), ("hang", "1"), ("pass", "1")],
        ),
    )
    .await?;
    let mut runner = world.spawn(&[A, B, C, D], &[])?;
    let in_flight = wait_all_in_monitor(&world, &mut runner, &["batch-b#1", "batch-c#1"]).await?;
    let pod_of = |key: &str| {
        in_flight
            .get(key)
            .and_then(|(_, pod)| pod.clone())
            .unwrap_or_default()
    };
    let (pod_b, pod_c) = (pod_of("batch-b#1"), pod_of("batch-c#1"));

    let started = Instant::now();
    world
        .patch_engine(json!({"spec": {"engineState": "stop"}}))
        .await?;
    let (exited_after, cleaned_after) = world.expect_clean_abort(&mut runner, started).await?;
    eprintln!("abort: exit after {exited_after:?}, Jobs and pods gone after {cleaned_after:?}");

    let status = world.status().await?;
    let (pod_a, _, _) = world.single_play(A)?;
    world.check_entries(
        &status,
        &[
            (A, &pod_a, "Completed", "Pass"),
            (B, &pod_b, "Forcefully Aborted", "Stopped"),
            (C, &pod_c, "Forcefully Aborted", "Stopped"),
            (D, "N/A", "Forcefully Aborted", "Stopped"),
        ],
    )?;
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    for key in ["batch-b#1", "batch-c#1"] {
        let chain = chain_of(&trail, key);
        ensure!(
            chain.iter().any(|t| t.2 == "ExperimentAborted")
                && chain.last().is_some_and(|t| t.1 == "Aborted"),
            "{key}: {chain:?}"
        );
    }
    let d = chain_of(&trail, "batch-d#1");
    ensure!(
        d.len() == 1 && d[0].0 == "Planned" && d[0].1 == "Aborted",
        "d: {d:?}"
    );
    let events = world.events().await?;
    for exp in [B, C, D] {
        ensure!(
            find_events(&events, "ExperimentAborted")
                .iter()
                .any(|e| message(e).contains(exp)),
            "no ExperimentAborted event for {exp}: {:#?}",
            describe_events(&events)
        );
    }
    world.expect_one_job_per_attempt(3)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 6. Monitoring
// ---------------------------------------------------------------------------------------------

/// The ownerReference a chaos-exporter object must carry.
fn expect_owned_by_engine(
    what: &str,
    owners: Option<&Vec<OwnerReference>>,
    uid: &str,
) -> anyhow::Result<()> {
    let owners = owners.cloned().unwrap_or_default();
    ensure!(
        owners.len() == 1
            && owners[0].uid == uid
            && owners[0].kind == "ChaosEngine"
            && owners[0].name == ENGINE
            && owners[0].api_version == "litmuschaos.io/v1alpha1"
            && owners[0].controller == Some(true)
            && owners[0].block_owner_deletion == Some(true),
        "{what}: ownerReferences {owners:?}, want the ChaosEngine {ENGINE} uid {uid} as controller"
    );
    Ok(())
}

/// The exporter's Deployment and Service, checked; their uids.
async fn expect_exporter(world: &World, image: &str) -> anyhow::Result<(String, String)> {
    let deployment = world
        .ns
        .api::<Deployment>()
        .get_opt("chaos-exporter")
        .await?
        .ok_or_else(|| anyhow!("no Deployment chaos-exporter"))?;
    expect_owned_by_engine(
        "Deployment chaos-exporter",
        deployment.metadata.owner_references.as_ref(),
        &world.uid,
    )?;
    let images: Vec<String> = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        images == [image],
        "exporter images {images:?}, want {image}"
    );
    let service = world
        .ns
        .api::<Service>()
        .get_opt("chaos-exporter")
        .await?
        .ok_or_else(|| anyhow!("no Service chaos-exporter"))?;
    expect_owned_by_engine(
        "Service chaos-exporter",
        service.metadata.owner_references.as_ref(),
        &world.uid,
    )?;
    Ok((
        deployment.metadata.uid.unwrap_or_default(),
        service.metadata.uid.unwrap_or_default(),
    ))
}

/// How many times ChaosExporterReady was reported (counts of aggregated Events summed), and
/// that no ChaosExporterFailed was.
async fn exporter_ready_count(world: &World) -> anyhow::Result<i32> {
    let events = world.events().await?;
    ensure!(
        find_events(&events, "ChaosExporterFailed").is_empty(),
        "{:#?}",
        describe_events(&events)
    );
    let ready = find_events(&events, "ChaosExporterReady");
    ensure!(
        ready.iter().all(|e| e.type_.as_deref() == Some("Normal")),
        "ChaosExporterReady not Normal: {:#?}",
        describe_events(&events)
    );
    Ok(ready.iter().map(|e| e.count.unwrap_or(1)).sum())
}

#[tokio::test]
async fn monitoring_on_creates_the_exporter_owned_by_the_engine_and_a_rerun_adopts_it()
-> anyhow::Result<()> {
    const IMAGE: &str = "registry.example/chaos-exporter:e2e";
    let world = new_world(
        "monitoring",
        engine(
            &[(MONITORING, "true"), (EXPORTER_IMAGE, IMAGE)],
            vec![experiment(A, "pass", "0.5")],
        ),
    )
    .await?;
    let mut runner = world.spawn(&[A], &[])?;
    expect_exit(&mut runner, 0).await?;
    let (deployment_uid, service_uid) = expect_exporter(&world, IMAGE).await?;
    ensure!(
        exporter_ready_count(&world).await? == 1,
        "ChaosExporterReady after the first run"
    );
    ensure!(
        entry(&world.status().await?, A)?["verdict"] == "Pass",
        "first run's verdict"
    );

    // A second run, as the operator starts one: status cleared (its typed update drops the
    // runner's checkpoint, and a re-run clears the entries).
    world
        .patch_engine(json!({"status": {"experiments": null, "chaosRunner": null}}))
        .await?;
    let mut second = world.spawn(&[A], &[])?;
    expect_exit(&mut second, 0).await?;
    ensure!(
        second.output().contains("starting a new run"),
        "the second runner did not start a new run:\n{}",
        second.log_tail(30)
    );
    let (deployment_again, service_again) = expect_exporter(&world, IMAGE).await?;
    ensure!(
        deployment_again == deployment_uid && service_again == service_uid,
        "the exporter was replaced, not adopted: Deployment {deployment_uid} -> \
         {deployment_again}, Service {service_uid} -> {service_again}"
    );
    ensure!(
        exporter_ready_count(&world).await? == 2,
        "ChaosExporterReady is not reported again by the second run"
    );
    let events = world.events().await?;
    ensure!(
        find_events(&events, "ChaosExporterReady")
            .iter()
            .any(|e| message(e).contains("Adopted")),
        "no ChaosExporterReady event says the exporter was adopted: {:#?}",
        describe_events(&events)
    );
    ensure!(
        entry(&world.status().await?, A)?["verdict"] == "Pass",
        "second run's verdict"
    );
    // The second run's attempt reports its own Events too: the dependency check happened twice.
    let checks: i32 = find_events(&events, "ExperimentDependencyCheck")
        .iter()
        .filter(|e| message(e).contains(A))
        .map(|e| e.count.unwrap_or(1))
        .sum();
    ensure!(
        checks == 2,
        "ExperimentDependencyCheck for {A} reported {checks} times over two runs: {:#?}",
        describe_events(&events)
    );
    world.expect_one_job_per_attempt(2)?;
    Ok(())
}

/// A `chaos-exporter` that is not this engine's (Litmus installs its own) is left alone: a
/// Warning says so and the run goes on; it is not reported as adopted.
#[tokio::test]
async fn an_exporter_of_someone_else_is_not_adopted() -> anyhow::Result<()> {
    let world = new_world(
        "monitoring-foreign",
        engine(&[(MONITORING, "true")], vec![experiment(A, "pass", "0.5")]),
    )
    .await?;
    world
        .ns
        .apply_yaml(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: chaos-exporter\n\
             spec:\n  replicas: 0\n  selector:\n    matchLabels: {app: litmus-exporter}\n\
             \n  template:\n    metadata:\n      labels: {app: litmus-exporter}\n\
             \n    spec:\n      containers:\n      - {name: exporter, image: litmus/exporter}\n",
        )
        .await?;
    let mut runner = world.spawn(&[A], &[])?;
    expect_exit(&mut runner, 0).await?;
    world
        .expect_warning(
            "ChaosExporterFailed",
            &["chaos-exporter", "not this engine's"],
        )
        .await?;
    let events = world.events().await?;
    ensure!(
        find_events(&events, "ChaosExporterReady").is_empty(),
        "someone else's exporter was reported ready: {:#?}",
        describe_events(&events)
    );
    ensure!(
        entry(&world.status().await?, A)?["verdict"] == "Pass",
        "the run did not go on"
    );
    Ok(())
}

#[tokio::test]
async fn spec_monitoring_true_creates_the_exporter_with_the_default_image() -> anyhow::Result<()> {
    let mut engine = engine(&[], vec![experiment(A, "pass", "0.5")]);
    engine["spec"]["monitoring"] = json!(true);
    let world = new_world("monitoring-spec", engine).await?;
    let mut runner = world.spawn(&[A], &[])?;
    expect_exit(&mut runner, 0).await?;
    expect_exporter(&world, "litmuschaos/chaos-exporter:3.18.0").await?;
    ensure!(
        exporter_ready_count(&world).await? == 1,
        "ChaosExporterReady"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 7. Plans rejected before anything runs
// ---------------------------------------------------------------------------------------------

/// An engine whose plan cannot run: Warning PlanInvalid naming the problem, the failure in
/// `status.chaosRunner.failure`, every experiment Skipped, no Job ever created, exit 0.
async fn rejected_plan(
    prefix: &str,
    annotations: &[(&str, &str)],
    parts: &[&str],
) -> anyhow::Result<()> {
    let world = new_world(
        prefix,
        engine(
            annotations,
            vec![experiment(A, "pass", "0.5"), experiment(B, "pass", "0.5")],
        ),
    )
    .await?;
    let mut runner = world.spawn(&[A, B], &[])?;
    expect_exit(&mut runner, 0).await?;
    world.expect_warning("PlanInvalid", parts).await?;
    let status = world.status().await?;
    let failure = status["chaosRunner"]["failure"].as_str().unwrap_or("");
    ensure!(
        parts.iter().all(|p| failure.contains(p)),
        "status.chaosRunner.failure = {failure:?}, want it to name {parts:?}"
    );
    world.check_entries(
        &status,
        &[(A, "N/A", "Skipped", "Fail"), (B, "N/A", "Skipped", "Fail")],
    )?;
    world.expect_no_job_created()?;
    ensure!(
        world.sim.events().is_empty(),
        "pods were played: {:?}",
        world.sim.events()
    );
    Ok(())
}

#[tokio::test]
async fn a_dependency_cycle_is_rejected_before_anything_runs() -> anyhow::Result<()> {
    rejected_plan(
        "plan-cycle",
        &[(AFTER, "batch-a: batch-b\nbatch-b: batch-a\n")],
        &["dependency cycle", "batch-a", "batch-b"],
    )
    .await
}

#[tokio::test]
async fn an_unknown_experiment_name_is_rejected_before_anything_runs() -> anyhow::Result<()> {
    rejected_plan(
        "plan-unknown",
        &[(AFTER, "batch-b: batch-z\n")],
        &["batch-z", "not in the experiment list"],
    )
    .await
}

#[tokio::test]
async fn zero_iterations_are_rejected_before_anything_runs() -> anyhow::Result<()> {
    rejected_plan(
        "plan-zero",
        &[(ITERATIONS, "0")],
        &[ITERATIONS, "must be at least 1"],
    )
    .await
}
