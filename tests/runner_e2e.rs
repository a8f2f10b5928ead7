//! End-to-end tests of the runner binary on the local control plane (issue 5, "Done when"):
//! a normal run in watch and in poll mode, SIGKILL in each phase that the checkpoint shows,
//! abort by `engineState: stop`, SIGTERM and engine deletion, and bad input.
//!
//! Each test gets its own namespace with `deploy/rbac.yaml`, the Litmus users' Role
//! (`fixtures/rbac/litmus-user-role.yaml`), the experiments of `fixtures/e2e/experiments.yaml`,
//! an engine built by [`engine`] and the pod simulator. The runner runs as a child process
//! exactly as the operator would start it (env only), authenticated as a ServiceAccount.
//! Needs `--features e2e` and a plane: `eval "$(tests/cluster/plane env)"`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use common::run::{
    ABORT_BOUND, RUN_TIMEOUT, Suite, World, chaos_engine, check_trail, engine_experiment, entry,
    expect_exit, expect_exit_within, find_events, message,
};
use common::{LitmusKind, RunnerProcess, Signal, jobs_by_chaos_uid, wait_until};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};

/// The engine of every test (each test has its own namespace).
const ENGINE: &str = "e2e";
/// `source.component` of the runner's Events.
const COMPONENT: &str = "e2e-runner";
/// deploy/rbac.yaml: the project's Role, with watch.
const SA_DEPLOY: &str = "chaos-runner";
/// fixtures/rbac/litmus-user-role.yaml: the Role Litmus users have (no watch, no secrets).
const SA_LITMUS_USER: &str = "litmus-user-sa";

// ---------------------------------------------------------------------------------------------
// Scaffolding
// ---------------------------------------------------------------------------------------------

/// An engine experiment entry whose env overrides the experiment's (PODSIM_* among them).
fn experiment(name: &str, env: &[(&str, &str)]) -> Value {
    engine_experiment(name, env)
}

/// The ChaosEngine of a test: no appinfo (accepted, TARGETS absent), experiment pods run as
/// `chaos-runner`.
fn engine(policy: &str, experiments: Vec<Value>) -> Value {
    chaos_engine(ENGINE, SA_DEPLOY, policy, &[], experiments)
}

/// The usual pair: `e2e-pass` passes, `e2e-fail` fails, each pod running `seconds`.
fn pass_and_fail(policy: &str, seconds: &str) -> Value {
    engine(
        policy,
        vec![
            experiment("e2e-pass", &[("PODSIM_SECONDS", seconds)]),
            experiment("e2e-fail", &[("PODSIM_SECONDS", seconds)]),
        ],
    )
}

static SUITE: Suite = Suite {
    engine: ENGINE,
    component: COMPONENT,
    chaos_service_account: SA_DEPLOY,
    fixtures: &[
        "deploy/rbac.yaml",
        "fixtures/rbac/litmus-user-role.yaml",
        "fixtures/e2e/experiments.yaml",
    ],
};

/// Every attempt's chain in the trail starts at Init (no plan: nothing is ever Planned).
const FIRST_PHASES: &[&str] = &["Init"];

/// One test's world, the runner authenticated as `service_account`.
async fn new_world(prefix: &str, service_account: &str, engine: Value) -> anyhow::Result<World> {
    World::new(&SUITE, prefix, service_account, engine).await
}

/// Names of the pods the simulator played for experiment `exp` (Job `<exp>-xxxxxx`).
fn pods_of(world: &World, exp: &str) -> BTreeSet<String> {
    world.pods_played(exp)
}

/// [`World::check_entries`], where an `experimentPod` of `None` means "the one pod the
/// simulator played for it".
fn check_entries(
    world: &World,
    status: &Value,
    expected: &[(&str, Option<&str>, &str, &str)],
) -> anyhow::Result<()> {
    let mut resolved = Vec::new();
    for (name, pod, state, verdict) in expected {
        let pod = match pod {
            Some(pod) => (*pod).to_owned(),
            None => {
                let played = pods_of(world, name);
                ensure!(played.len() == 1, "{name}: the simulator played {played:?}");
                played.into_iter().next().unwrap_or_default()
            }
        };
        resolved.push((*name, pod, *state, *verdict));
    }
    let expected: Vec<(&str, &str, &str, &str)> = resolved
        .iter()
        .map(|(name, pod, state, verdict)| (*name, pod.as_str(), *state, *verdict))
        .collect();
    world.check_entries(status, &expected)
}

fn reasons_of(events: &[Event]) -> Vec<String> {
    let mut reasons: Vec<String> = events
        .iter()
        .map(|e| e.reason.clone().unwrap_or_default())
        .collect();
    reasons.sort();
    reasons
}

// ---------------------------------------------------------------------------------------------
// 1. A normal run: one Pass, one Fail
// ---------------------------------------------------------------------------------------------

/// The run of two experiments, checked all the way: exit 0, entries, trail, one Event per
/// transition, one Job per experiment, Jobs per policy.
async fn two_experiments(prefix: &str, service_account: &str, policy: &str) -> anyhow::Result<()> {
    let world = new_world(prefix, service_account, pass_and_fail(policy, "0.5")).await?;
    let mut runner = world.spawn(&["e2e-pass", "e2e-fail"], &[])?;
    expect_exit(&mut runner, 0).await?;

    let log = runner.output();
    let mode = if service_account == SA_LITMUS_USER {
        "poll mode"
    } else {
        "watch mode"
    };
    ensure!(
        log.contains(mode),
        "the log does not say {mode}:\n{}",
        runner.log_tail(40)
    );

    let status = world.status().await?;
    check_entries(
        &world,
        &status,
        &[
            ("e2e-pass", None, "Completed", "Pass"),
            ("e2e-fail", None, "Completed", "Fail"),
        ],
    )?;

    // The trail: the same in the status and the annotation, every transition once.
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    let attempts: BTreeSet<&str> = trail.iter().map(|t| t.attempt.as_str()).collect();
    ensure!(
        attempts == BTreeSet::from(["e2e-pass#1", "e2e-fail#1"]),
        "attempts in the trail: {attempts:?}"
    );

    // One Event per transition, with the transition's reason, written once (count 1).
    let events = world.events().await?;
    let mut trail_reasons: Vec<String> = trail.iter().map(|t| t.reason.clone()).collect();
    trail_reasons.sort();
    ensure!(
        reasons_of(&events) == trail_reasons,
        "Event reasons {:?} != trail reasons {trail_reasons:?}",
        reasons_of(&events)
    );
    for event in &events {
        ensure!(
            event.count == Some(1),
            "event counted {:?}: {event:?}",
            event.count
        );
        ensure!(
            event.type_.as_deref() == Some("Normal"),
            "not Normal: {event:?}"
        );
    }

    // One Job per experiment, named <exp>-<6 chars>; the contract's messages name them.
    let seen = world.expect_one_job_per_attempt(2)?;
    for job in &seen {
        let exp = job
            .rsplit_once('-')
            .map(|(exp, suffix)| {
                ensure!(
                    suffix.len() == 6
                        && suffix
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                    "Job name {job} is not <exp>-<6 chars>"
                );
                Ok(exp.to_owned())
            })
            .ok_or_else(|| anyhow!("Job name {job}"))??;
        let created = format!("Experiment Job {job} for Chaos Experiment: {exp}");
        ensure!(
            find_events(&events, "ExperimentJobCreate")
                .iter()
                .any(|e| message(e) == created),
            "no ExperimentJobCreate event {created:?}"
        );
        let checked = format!("Experiment resources validated for Chaos Experiment: {exp}");
        ensure!(
            find_events(&events, "ExperimentDependencyCheck")
                .iter()
                .any(|e| message(e) == checked),
            "no ExperimentDependencyCheck event {checked:?}"
        );
        let cleanup = if policy == "delete" {
            format!("Experiment Job: {job} will be deleted")
        } else {
            format!("Experiment Job {job} will be retained")
        };
        ensure!(
            find_events(&events, "ExperimentJobCleanUp")
                .iter()
                .any(|e| message(e) == cleanup),
            "no ExperimentJobCleanUp event {cleanup:?}"
        );
    }

    // Jobs per policy.
    let client = world.ns.client();
    if policy == "delete" {
        world.wait_no_jobs_or_pods(Duration::from_secs(10)).await?;
    } else {
        let kept: BTreeSet<String> = jobs_by_chaos_uid(&client, world.ns.name(), &world.uid)
            .await?
            .into_iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .filter_map(|j| j.metadata.name)
            .collect();
        ensure!(kept == seen, "retained Jobs {kept:?}, expected {seen:?}");
    }
    Ok(())
}

#[tokio::test]
async fn two_experiments_in_watch_mode_pass_and_fail_then_jobs_are_deleted() -> anyhow::Result<()> {
    two_experiments("run-watch", SA_DEPLOY, "delete").await
}

#[tokio::test]
async fn two_experiments_under_the_litmus_users_role_run_in_poll_mode() -> anyhow::Result<()> {
    two_experiments("run-poll", SA_LITMUS_USER, "delete").await
}

#[tokio::test]
async fn two_experiments_with_policy_retain_keep_their_jobs() -> anyhow::Result<()> {
    two_experiments("run-retain", SA_DEPLOY, "retain").await
}

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL in each phase the checkpoint shows, then a restart
// ---------------------------------------------------------------------------------------------

/// Phase of each attempt in `status.chaosRunner.attempts`.
/// The pass-and-fail run converged: one Job per attempt, the two verdicts, each experiment's
/// pod played exactly once (its chaos ran once), a well-formed trail, which is returned.
async fn expect_pass_and_fail_converged(
    world: &World,
) -> anyhow::Result<Vec<common::run::Transition>> {
    world.expect_one_job_per_attempt(2)?;
    let status = world.status().await?;
    check_entries(
        world,
        &status,
        &[
            ("e2e-pass", None, "Completed", "Pass"),
            ("e2e-fail", None, "Completed", "Fail"),
        ],
    )?;
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    Ok(trail)
}

/// Kills the runner once with the checkpoint showing `phase`, optionally erases the checkpoint,
/// starts it again and checks the run converged: exit 0, one Job per attempt ever created,
/// one entry per experiment with the right verdict, each transition once in the trail.
async fn sigkill_in(phase: &str, erase_checkpoint: bool) -> anyhow::Result<()> {
    sigkill_in_then(phase, erase_checkpoint, false).await
}

/// [`sigkill_in`], and with `delete_job` the test also deletes the attempt's Job before the
/// restart: the cluster as a runner leaves it when it dies in Cleanup right after its delete
/// call went out, before the next checkpoint (a window too short to hit by timing).
async fn sigkill_in_then(
    phase: &str,
    erase_checkpoint: bool,
    delete_job: bool,
) -> anyhow::Result<()> {
    let prefix = format!(
        "kill-{}{}{}",
        phase.to_lowercase(),
        if erase_checkpoint { "-erased" } else { "" },
        if delete_job { "-deleted" } else { "" }
    );
    // Pods slow enough that Monitor is caught without hurry.
    let world = new_world(&prefix, SA_DEPLOY, pass_and_fail("delete", "3")).await?;
    let experiments = ["e2e-pass", "e2e-fail"];
    let mut first = world.spawn(&experiments, &[])?;
    let (_, at_kill) = world.freeze_in_phase(&mut first, phase).await?;
    first.kill(Signal::Kill)?;
    first.wait(Duration::from_secs(10)).await?;
    eprintln!("{prefix}: killed with {at_kill:?} stored");

    if delete_job {
        let jobs = world.ns.api::<Job>();
        for job in world.jobs_seen.by_name().keys() {
            let params = DeleteParams::foreground();
            match jobs.delete(job, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error).context(format!("deleting Job {job}")),
            }
        }
        world.wait_no_jobs_or_pods(Duration::from_secs(10)).await?;
    }

    if erase_checkpoint {
        world
            .patch_engine(json!({"status": {"chaosRunner": null}}))
            .await
            .context("erasing status.chaosRunner")?;
        ensure!(
            world.status().await?["chaosRunner"].is_null(),
            "checkpoint not erased"
        );
    }

    let mut second = world.spawn(&experiments, &[])?;
    expect_exit(&mut second, 0).await?;
    let resumed = if erase_checkpoint {
        "recorded progress"
    } else {
        "checkpoint"
    };
    ensure!(
        second
            .output()
            .contains(&format!("resuming from the {resumed}")),
        "the second runner did not resume from the {resumed}:\n{}",
        second.log_tail(30)
    );

    expect_pass_and_fail_converged(&world).await?;

    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await?;
    Ok(())
}

/// Every transition of the trail has its Event, none counted twice.
async fn expect_an_event_per_transition(
    world: &World,
    trail: &[common::run::Transition],
) -> anyhow::Result<()> {
    let events = world.events().await?;
    let mut wanted: BTreeMap<&str, usize> = BTreeMap::new();
    for transition in trail {
        *wanted.entry(transition.reason.as_str()).or_default() += 1;
    }
    for (reason, transitions) in wanted {
        let found = find_events(&events, reason);
        ensure!(
            found.len() >= transitions,
            "{transitions} transitions with reason {reason}, {} Events",
            found.len()
        );
    }
    for event in &events {
        ensure!(
            event.count.unwrap_or(1) == 1,
            "Event counted twice: {event:?}"
        );
    }
    Ok(())
}

/// A runner that dies between a checkpoint and its Event loses that Event (they go out after
/// the write they describe). Here every Event is lost (deleted while no runner runs): the next
/// runner finds the transitions in the record and sends each missing Event once.
#[tokio::test]
async fn events_lost_in_a_crash_are_sent_by_the_next_runner() -> anyhow::Result<()> {
    let world = new_world("lost-events", SA_DEPLOY, pass_and_fail("delete", "3")).await?;
    let experiments = ["e2e-pass", "e2e-fail"];
    let mut first = world.spawn(&experiments, &[])?;
    world.freeze_in_phase(&mut first, "Monitor").await?;
    first.kill(Signal::Kill)?;
    first.wait(Duration::from_secs(10)).await?;
    let api = world.ns.api::<Event>();
    for event in world.events().await? {
        let name = event.metadata.name.clone().unwrap_or_default();
        api.delete(&name, &DeleteParams::default()).await?;
    }
    ensure!(world.events().await?.is_empty(), "Events not deleted");

    let mut second = world.spawn(&experiments, &[])?;
    expect_exit(&mut second, 0).await?;
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    expect_an_event_per_transition(&world, &trail).await?;
    ensure!(
        second
            .output()
            .contains("sending the Events of recorded transitions"),
        "{}",
        second.log_tail(20)
    );
    Ok(())
}

/// Two runners on one engine: the operator starts a new runner after a force delete while the
/// old process still runs (here frozen with SIGSTOP, then continued). The old one must notice
/// the newer one at its next write, stop writing and exit (143) without touching its Jobs; the
/// new one finishes the run.
#[tokio::test]
async fn an_overlapping_older_runner_is_fenced() -> anyhow::Result<()> {
    let world = new_world("fenced", SA_DEPLOY, pass_and_fail("delete", "4")).await?;
    let experiments = ["e2e-pass", "e2e-fail"];
    let mut old = world.spawn(&experiments, &[])?;
    let (_, _) = world.freeze_in_phase(&mut old, "Monitor").await?;
    let before = world.status().await?["chaosRunner"]["incarnation"].clone();
    let mut new = world.spawn(&experiments, &[])?;
    wait_until(RUN_TIMEOUT, "the new runner's first write", async || {
        let now = world.status().await?["chaosRunner"]["incarnation"].clone();
        Ok((now != before).then_some(()))
    })
    .await?;
    old.kill(Signal::Cont)?;
    expect_exit_within(&mut old, EXIT_SUSPENDED, RUN_TIMEOUT).await?;
    ensure!(
        old.output().contains("has been replaced"),
        "{}",
        old.log_tail(20)
    );
    expect_exit(&mut new, 0).await?;
    expect_pass_and_fail_converged(&world).await?;
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

/// The API server seen through a faulty network (a proxy that refuses, stalls and cuts
/// connections, seeded): the run converges, restarted as the kubelet would (`OnFailure`) when a
/// fault outlasts the runner's retries. The seed is printed; `FAULT_SEED` replays one.
#[tokio::test]
async fn the_run_converges_through_a_faulty_connection_to_the_api_server() -> anyhow::Result<()> {
    use common::proxy::{FaultProxy, Faults, apiserver_addr, kubeconfig_through};
    let seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id().into());
    eprintln!("fault proxy seed {seed} (FAULT_SEED={seed} replays it)");
    let world = new_world("faulty-net", SA_DEPLOY, pass_and_fail("delete", "2")).await?;
    let upstream = apiserver_addr(&common::plane()?.server)?;
    let faults = Faults {
        refuse_one_in: 3,
        stall_one_in: 3,
        cut_one_in: 2,
        lifetime_kib: 128,
    };
    let proxy = FaultProxy::start(upstream, seed, faults).await?;
    let mut spec = world.spec(&["e2e-pass", "e2e-fail"], &[]);
    spec.kubeconfig = kubeconfig_through(&world.kubeconfig, proxy.addr)?;
    let mut restarts = 0;
    loop {
        let mut runner = RunnerProcess::spawn(&spec)?;
        let status = runner.wait(RUN_TIMEOUT).await?;
        ensure!(
            !runner.output().contains("panicked"),
            "the runner panicked:\n{}",
            runner.log_tail(40)
        );
        match status.code() {
            Some(0) => break,
            Some(1) if restarts < 10 => restarts += 1,
            other => bail!(
                "runner exited {other:?} after {restarts} restarts ({}):\n{}",
                proxy.stats.summary(),
                runner.log_tail(40)
            ),
        }
    }
    eprintln!(
        "converged after {restarts} restarts; {}",
        proxy.stats.summary()
    );
    ensure!(
        proxy
            .stats
            .refused
            .load(std::sync::atomic::Ordering::SeqCst)
            + proxy.stats.cut.load(std::sync::atomic::Ordering::SeqCst)
            + proxy
                .stats
                .stalled
                .load(std::sync::atomic::Ordering::SeqCst)
            > 0,
        "no fault was injected: {}",
        proxy.stats.summary()
    );
    expect_pass_and_fail_converged(&world).await?;
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

// ValidateDeps, AwaitResult and Verdict cannot be caught by watching the checkpoint: the runner
// stores a phase only before a side effect or a long wait, so these three (which only read, or
// whose verdict goes out with the terminal checkpoint) are never the stored phase on their own:
// Init→ValidateDeps→LaunchJob reach the engine in one write, as do AwaitResult→Cleanup and
// Verdict→Completed. A crash "in" them is a crash in the stored phase before them.

#[tokio::test]
async fn sigkill_in_launch_job_then_restart_converges() -> anyhow::Result<()> {
    sigkill_in("LaunchJob", false).await
}

#[tokio::test]
async fn sigkill_in_monitor_then_restart_converges() -> anyhow::Result<()> {
    sigkill_in("Monitor", false).await
}

#[tokio::test]
async fn sigkill_in_cleanup_then_restart_converges() -> anyhow::Result<()> {
    sigkill_in("Cleanup", false).await
}

#[tokio::test]
async fn sigkill_in_launch_job_with_checkpoint_erased_converges() -> anyhow::Result<()> {
    sigkill_in("LaunchJob", true).await
}

#[tokio::test]
async fn sigkill_in_monitor_with_checkpoint_erased_converges() -> anyhow::Result<()> {
    sigkill_in("Monitor", true).await
}

#[tokio::test]
async fn sigkill_in_cleanup_with_checkpoint_erased_converges() -> anyhow::Result<()> {
    sigkill_in("Cleanup", true).await
}

#[tokio::test]
async fn sigkill_in_cleanup_after_the_job_was_deleted_converges() -> anyhow::Result<()> {
    sigkill_in_then("Cleanup", false, true).await
}

#[tokio::test]
async fn sigkill_in_cleanup_after_the_job_was_deleted_with_checkpoint_erased_converges()
-> anyhow::Result<()> {
    sigkill_in_then("Cleanup", true, true).await
}

// ---------------------------------------------------------------------------------------------
// 3. Abort in Monitor
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    Stop,
    DeleteEngine,
}

async fn abort_in_monitor(how: Abort) -> anyhow::Result<()> {
    abort_in_monitor_as(how, SA_DEPLOY).await
}

async fn abort_in_monitor_as(how: Abort, service_account: &str) -> anyhow::Result<()> {
    let mode = if service_account == SA_DEPLOY {
        ""
    } else {
        "-poll"
    };
    let prefix = format!("abort-{how:?}{mode}").to_lowercase();
    // The pod runs until someone stops it.
    let world = new_world(
        &prefix,
        service_account,
        engine(
            "delete",
            vec![experiment("e2e-pass", &[("PODSIM_BEHAVIOUR", "hang")])],
        ),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    // In Monitor with the pod running and recorded.
    world.monitoring_its_pod("e2e-pass#1").await?;

    let started = Instant::now();
    match how {
        Abort::Stop => {
            world
                .patch_engine(json!({"spec": {"engineState": "stop"}}))
                .await?;
        }
        Abort::DeleteEngine => {
            world
                .ns
                .litmus_api(LitmusKind::ChaosEngine)
                .delete(ENGINE, &DeleteParams::background())
                .await?;
        }
    }
    let (exited_after, cleaned_after) = world
        .expect_clean_abort(&mut runner, started)
        .await
        .with_context(|| format!("abort by {how:?}"))?;

    if how != Abort::DeleteEngine {
        let status = world.status().await?;
        check_entries(
            &world,
            &status,
            &[("e2e-pass", None, "Forcefully Aborted", "Stopped")],
        )?;
        let trail = world.trail().await?;
        check_trail(&trail, FIRST_PHASES)?;
        ensure!(
            trail
                .iter()
                .any(|t| t.to == "Cleanup" && t.reason == "ExperimentAborted"),
            "no abort transition in {trail:#?}"
        );
        ensure!(
            !find_events(&world.events().await?, "ExperimentAborted").is_empty(),
            "no ExperimentAborted event"
        );
    } else {
        ensure!(world.engine().await?.is_none(), "the engine still exists");
    }
    eprintln!("{prefix}: exit after {exited_after:?}, Jobs and pods gone after {cleaned_after:?}");
    Ok(())
}

#[tokio::test]
async fn abort_by_engine_state_stop_in_monitor() -> anyhow::Result<()> {
    abort_in_monitor(Abort::Stop).await
}

#[tokio::test]
async fn abort_by_engine_state_stop_in_monitor_in_poll_mode() -> anyhow::Result<()> {
    // Without watch the engine is polled: the stop must still be seen and handled within 5 s.
    abort_in_monitor_as(Abort::Stop, SA_LITMUS_USER).await
}

#[tokio::test]
async fn abort_by_deleting_the_engine_in_monitor() -> anyhow::Result<()> {
    abort_in_monitor(Abort::DeleteEngine).await
}

// ---------------------------------------------------------------------------------------------
// 3b. A real cluster's everyday life: drains, late restarts, long experiments, the operator
// ---------------------------------------------------------------------------------------------

/// Exit code of a runner suspended by SIGTERM (not `Completed`: the operator starts another).
const EXIT_SUSPENDED: i32 = 143;

/// An experiment entry with the engine's `statusCheckTimeouts`.
fn experiment_with_timeouts(name: &str, env: &[(&str, &str)], timeout: u32) -> Value {
    let mut exp = experiment(name, env);
    exp["spec"]["components"]["statusCheckTimeouts"] = json!({"delay": 1, "timeout": timeout});
    exp
}

/// The entries, trail and Events hold no trace of an abort.
async fn expect_not_aborted(world: &World) -> anyhow::Result<()> {
    let status = world.status().await?;
    for entry in status["experiments"].as_array().into_iter().flatten() {
        ensure!(
            entry["status"] != "Forcefully Aborted" && entry["verdict"] != "Stopped",
            "an entry reads aborted: {entry}"
        );
    }
    let trail = world.trail().await?;
    ensure!(
        trail.iter().all(|t| t.reason != "ExperimentAborted"),
        "an abort in the trail: {trail:#?}"
    );
    ensure!(
        find_events(&world.events().await?, "ExperimentAborted").is_empty(),
        "an ExperimentAborted event"
    );
    Ok(())
}

/// A drain (or eviction, or `kubectl delete pod`) of the runner pod while the engine is active:
/// SIGTERM with the checkpoint showing `phase`. The runner must not abort: it writes its
/// checkpoint, leaves the Jobs running and exits non-zero; the operator's next runner resumes,
/// adopts the running Job, and each experiment's chaos runs exactly once.
async fn drain_in(phase: &str) -> anyhow::Result<()> {
    let prefix = format!("drain-{}", phase.to_lowercase());
    let world = new_world(&prefix, SA_DEPLOY, pass_and_fail("delete", "3")).await?;
    let experiments = ["e2e-pass", "e2e-fail"];
    let mut first = world.spawn(&experiments, &[])?;
    let (attempt, at_term) = world.freeze_in_phase(&mut first, phase).await?;
    // The kubelet's SIGTERM; the process sees it as soon as it runs again.
    first.kill(Signal::Term)?;
    first.kill(Signal::Cont)?;
    expect_exit_within(&mut first, EXIT_SUSPENDED, Duration::from_secs(10)).await?;
    ensure!(
        first.output().contains("suspending the run"),
        "{}",
        first.log_tail(20)
    );
    eprintln!("{prefix}: SIGTERM with {at_term:?} stored ({attempt})");
    expect_not_aborted(&world).await?;
    if phase == "Monitor" {
        // The experiment goes on while no runner runs.
        let jobs = jobs_by_chaos_uid(&world.ns.client(), world.ns.name(), &world.uid).await?;
        ensure!(!jobs.is_empty(), "the drained runner deleted its Job");
    }

    // The operator's new `<engine>-runner` pod.
    let mut second = world.spawn(&experiments, &[])?;
    expect_exit(&mut second, 0).await?;
    ensure!(
        second.output().contains("resuming from the checkpoint"),
        "{}",
        second.log_tail(30)
    );
    expect_pass_and_fail_converged(&world).await?;
    expect_not_aborted(&world).await?;
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

#[tokio::test]
async fn a_drain_in_launch_job_suspends_and_the_next_runner_finishes() -> anyhow::Result<()> {
    drain_in("LaunchJob").await
}

#[tokio::test]
async fn a_drain_in_monitor_suspends_and_the_next_runner_finishes() -> anyhow::Result<()> {
    drain_in("Monitor").await
}

#[tokio::test]
async fn a_drain_in_cleanup_suspends_and_the_next_runner_finishes() -> anyhow::Result<()> {
    drain_in("Cleanup").await
}

/// A runner restarted (crash, OOM, node restart) several status-check timeouts into a running
/// experiment must not declare it Pending too long before it has seen the pod: same verdict,
/// Job not deleted early.
async fn late_restart(service_account: &str) -> anyhow::Result<()> {
    let mode = if service_account == SA_DEPLOY {
        "watch"
    } else {
        "poll"
    };
    let timeout = 4;
    let world = new_world(
        &format!("late-restart-{mode}"),
        service_account,
        engine(
            "delete",
            vec![experiment_with_timeouts(
                "e2e-pass",
                &[("PODSIM_SECONDS", "22")],
                timeout,
            )],
        ),
    )
    .await?;
    let mut first = world.spawn(&["e2e-pass"], &[])?;
    world.monitoring_its_pod("e2e-pass#1").await?;
    first.kill(Signal::Kill)?;
    first.wait(Duration::from_secs(10)).await?;
    // Down for three and a half status-check timeouts.
    tokio::time::sleep(Duration::from_millis(3_500 * u64::from(timeout))).await;

    let mut second = world.spawn(&["e2e-pass"], &[])?;
    expect_exit(&mut second, 0).await?;
    let status = world.status().await?;
    check_entries(&world, &status, &[("e2e-pass", None, "Completed", "Pass")])?;
    let trail = world.trail().await?;
    ensure!(
        trail
            .iter()
            .any(|t| t.to == "AwaitResult" && t.reason == "ExperimentPodCompleted"),
        "the attempt did not end on its pod's completion: {trail:#?}"
    );
    world.expect_one_job_per_attempt(1)?;
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

#[tokio::test]
async fn a_late_restart_in_watch_mode_keeps_a_running_experiment() -> anyhow::Result<()> {
    late_restart(SA_DEPLOY).await
}

#[tokio::test]
async fn a_late_restart_in_poll_mode_keeps_a_running_experiment() -> anyhow::Result<()> {
    late_restart(SA_LITMUS_USER).await
}

/// An experiment that runs past `TOTAL_CHAOS_DURATION + 2 × status-check timeout + 60 s` (the
/// old hard deadline; 65 s here) is reported overdue once and waited for: its verdict counts.
#[tokio::test]
async fn a_long_experiment_is_reported_overdue_and_waited_for() -> anyhow::Result<()> {
    let world = new_world(
        "overdue",
        SA_DEPLOY,
        engine(
            "delete",
            vec![experiment_with_timeouts(
                "e2e-pass",
                &[("TOTAL_CHAOS_DURATION", "1"), ("PODSIM_SECONDS", "72")],
                2,
            )],
        ),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    expect_exit_within(&mut runner, 0, Duration::from_secs(120)).await?;
    let status = world.status().await?;
    check_entries(&world, &status, &[("e2e-pass", None, "Completed", "Pass")])?;
    let overdue = world
        .expect_warning("ExperimentOverdue", &["e2e-pass", "past its expected end"])
        .await?;
    ensure!(
        overdue.count.unwrap_or(1) == 1,
        "overdue reported more than once: {overdue:?}"
    );
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

/// The user's deadline (`chaos-runner.io/monitor-timeout`) counts from the attempt's real
/// Monitor entry, also when the runner restarts without its checkpoint.
#[tokio::test]
async fn a_user_deadline_counts_from_the_monitor_entry_across_a_restart() -> anyhow::Result<()> {
    let deadline_s = 8;
    let mut spec = engine(
        "delete",
        vec![experiment("e2e-pass", &[("PODSIM_BEHAVIOUR", "hang")])],
    );
    spec["metadata"]["annotations"] =
        json!({"chaos-runner.io/monitor-timeout": deadline_s.to_string()});
    let world = new_world("user-deadline", SA_DEPLOY, spec).await?;
    let mut first = world.spawn(&["e2e-pass"], &[])?;
    world.monitoring_its_pod("e2e-pass#1").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.kill(Signal::Kill)?;
    first.wait(Duration::from_secs(10)).await?;
    world
        .patch_engine(json!({"status": {"chaosRunner": null}}))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarted = Instant::now();
    let mut second = world.spawn(&["e2e-pass"], &[])?;
    expect_exit(&mut second, 0).await?;
    let trail = world.trail().await?;
    let entered = trail
        .iter()
        .find(|t| t.to == "Monitor")
        .ok_or_else(|| anyhow!("no Monitor entry in {trail:#?}"))?;
    let passed = trail
        .iter()
        .find(|t| t.to == "AwaitResult")
        .ok_or_else(|| anyhow!("no AwaitResult in {trail:#?}"))?;
    let after_ms = passed.at_ms - entered.at_ms;
    eprintln!(
        "deadline {deadline_s}s: ended {after_ms} ms after the Monitor entry, {:?} after the restart",
        restarted.elapsed()
    );
    ensure!(
        (deadline_s * 1000..deadline_s * 1000 + 2_500).contains(&after_ms),
        "the deadline ended the attempt {after_ms} ms after its Monitor entry, not {deadline_s} s"
    );
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

/// The operator's abort: it reconciles from a copy of the engine, waits for the chaos pods to
/// go, then replaces `status.experiments` with that copy's entries, `Running` and `Waiting for
/// Job Creation` rewritten to `Forcefully Aborted`/`Stopped` (contract §4). Every experiment of
/// the run must be in that copy from the runner's first write, or it is lost.
#[tokio::test]
async fn an_operator_abort_lists_every_experiment_forcefully_aborted() -> anyhow::Result<()> {
    let world = new_world(
        "operator-abort",
        SA_DEPLOY,
        engine(
            "delete",
            vec![
                experiment("e2e-pass", &[("PODSIM_BEHAVIOUR", "hang")]),
                experiment("e2e-fail", &[]),
            ],
        ),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-pass", "e2e-fail"], &[])?;
    world.monitoring_its_pod("e2e-pass#1").await?;
    // The operator's copy, read as it reconciles the stop.
    let copy = world.status().await?["experiments"].clone();
    let waiting = entry(&json!({"experiments": copy.clone()}), "e2e-fail")?.clone();
    ensure!(
        waiting["status"] == "Waiting for Job Creation"
            && waiting["experimentPod"] == "Yet to be launched"
            && waiting["verdict"] == "N/A",
        "the unstarted experiment is not listed as the Go runner lists it: {waiting}"
    );
    world
        .patch_engine(json!({"spec": {"engineState": "stop"}}))
        .await?;
    expect_exit_within(&mut runner, 0, ABORT_BOUND).await?;
    world.wait_no_jobs_or_pods(ABORT_BOUND).await?;
    let rewritten: Vec<Value> = copy
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut e = e.clone();
            if e["status"] == "Running" || e["status"] == "Waiting for Job Creation" {
                e["status"] = json!("Forcefully Aborted");
                e["verdict"] = json!("Stopped");
            }
            e
        })
        .collect();
    world
        .patch_engine(json!({"status": {"experiments": rewritten, "engineStatus": "stopped"}}))
        .await?;
    let status = world.status().await?;
    for name in ["e2e-pass", "e2e-fail"] {
        let entry = entry(&status, name)?;
        ensure!(
            entry["status"] == "Forcefully Aborted" && entry["verdict"] == "Stopped",
            "{name}: {entry}"
        );
    }
    Ok(())
}

/// With `OwnerReferencesPermissionEnforcement` (on in the test plane, default on OpenShift),
/// `blockOwnerDeletion` needs `update` on `chaosengines/finalizers`, which the users' Role
/// lacks: the runner leaves it unset (the reference still lets the engine's deletion collect
/// the Job); under deploy/'s Role, which grants it, it is set.
async fn owner_reference_under(service_account: &str, blocks: bool) -> anyhow::Result<()> {
    let world = new_world(
        &format!("owner-{}", if blocks { "block" } else { "noblock" }),
        service_account,
        engine("retain", vec![experiment("e2e-pass", &[])]),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    expect_exit(&mut runner, 0).await?;
    let status = world.status().await?;
    check_entries(&world, &status, &[("e2e-pass", None, "Completed", "Pass")])?;
    let jobs = jobs_by_chaos_uid(&world.ns.client(), world.ns.name(), &world.uid).await?;
    ensure!(jobs.len() == 1, "{} Jobs retained", jobs.len());
    let owners = jobs[0]
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    ensure!(
        owners.len() == 1 && owners[0].kind == "ChaosEngine" && owners[0].controller == Some(true),
        "ownerReferences: {owners:?}"
    );
    ensure!(
        owners[0].block_owner_deletion.unwrap_or(false) == blocks,
        "blockOwnerDeletion {:?}, want {blocks}",
        owners[0].block_owner_deletion
    );
    Ok(())
}

#[tokio::test]
async fn under_the_users_role_jobs_are_owned_without_block_owner_deletion() -> anyhow::Result<()> {
    owner_reference_under(SA_LITMUS_USER, false).await
}

#[tokio::test]
async fn under_the_deploy_role_jobs_block_owner_deletion() -> anyhow::Result<()> {
    owner_reference_under(SA_DEPLOY, true).await
}

// ---------------------------------------------------------------------------------------------
// 4. Bad input
// ---------------------------------------------------------------------------------------------

/// The common end of every bad-input case: no Job left (policy delete) or never created.
async fn no_orphans(world: &World) -> anyhow::Result<()> {
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}

#[tokio::test]
async fn a_missing_chaos_experiment_is_reported_and_the_run_goes_on() -> anyhow::Result<()> {
    let world = new_world(
        "bad-noexp",
        SA_DEPLOY,
        engine(
            "delete",
            vec![experiment("e2e-absent", &[]), experiment("e2e-pass", &[])],
        ),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-absent", "e2e-pass"], &[])?;
    expect_exit(&mut runner, 0).await?;
    let status = world.status().await?;
    check_entries(
        &world,
        &status,
        &[
            (
                "e2e-absent",
                Some("N/A"),
                "ChaosExperiment Not Found",
                "Fail",
            ),
            ("e2e-pass", None, "Completed", "Pass"),
        ],
    )?;
    world
        .expect_warning("ExperimentNotFound", &["e2e-absent"])
        .await?;
    ensure!(
        world
            .jobs_seen
            .by_name()
            .keys()
            .all(|j| !j.starts_with("e2e-absent")),
        "a Job was created for the missing experiment: {:?}",
        world.jobs_seen.by_name()
    );
    no_orphans(&world).await
}

/// An engine override naming a ConfigMap or Secret (`kind`: "configMaps" / "secrets").
fn engine_with_volume(kind: &str, name: &str) -> Value {
    let mut exp = experiment("e2e-pass", &[]);
    exp["spec"]["components"][kind] = json!([{"name": name, "mountPath": "/mnt/e2e"}]);
    engine("delete", vec![exp])
}

/// The dependency check fails: entry Skipped/Fail, Warning ExperimentDependencyCheck (Go's
/// reason) naming the object
/// and the engine field, no Job ever created.
async fn dependency_skipped(
    world: &World,
    runner: &mut RunnerProcess,
    parts: &[&str],
) -> anyhow::Result<()> {
    expect_exit(runner, 0).await?;
    let status = world.status().await?;
    check_entries(
        world,
        &status,
        &[("e2e-pass", Some("N/A"), "Skipped", "Fail")],
    )?;
    world
        .expect_warning("ExperimentDependencyCheck", parts)
        .await?;
    world.expect_no_job_created()?;
    no_orphans(world).await
}

#[tokio::test]
async fn a_missing_configmap_skips_the_experiment_naming_it() -> anyhow::Result<()> {
    let world = new_world(
        "bad-cm",
        SA_DEPLOY,
        engine_with_volume("configMaps", "e2e-absent-cm"),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    dependency_skipped(
        &world,
        &mut runner,
        &[
            "ConfigMap e2e-absent-cm",
            "spec.experiments[0].spec.components.configMaps[0]",
            "not found",
        ],
    )
    .await
}

/// `sidecar/enabled` without a sidecar: the Go runner skips the experiment with a Warning
/// `SideCarPatchError`; so does this one, and creates nothing.
#[tokio::test]
async fn sidecars_enabled_without_a_sidecar_skip_the_experiment() -> anyhow::Result<()> {
    let mut spec = engine("delete", vec![experiment("e2e-pass", &[])]);
    spec["metadata"]["annotations"] = json!({"sidecar/enabled": "true"});
    let world = new_world("bad-sidecar", SA_DEPLOY, spec).await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    dependency_skipped(&world, &mut runner, &["sidecar/enabled", "defines none"]).await?;
    world
        .expect_warning("SideCarPatchError", &["e2e-pass", "sidecar"])
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_secret_skips_the_experiment_naming_it() -> anyhow::Result<()> {
    let world = new_world(
        "bad-secret",
        SA_DEPLOY,
        engine_with_volume("secrets", "e2e-absent-secret"),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    dependency_skipped(
        &world,
        &mut runner,
        &[
            "Secret e2e-absent-secret",
            "spec.experiments[0].spec.components.secrets[0]",
            "not found",
        ],
    )
    .await
}

#[tokio::test]
async fn a_secret_the_litmus_users_role_cannot_read_is_a_named_failure() -> anyhow::Result<()> {
    let world = new_world(
        "bad-secret-role",
        SA_LITMUS_USER,
        engine_with_volume("secrets", "e2e-secret"),
    )
    .await?;
    // The secret exists: the failure is about permission, not absence.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "e2e-secret"}, "stringData": {"key": "value"}
    }))?;
    world
        .ns
        .api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    dependency_skipped(
        &world,
        &mut runner,
        &[
            "Secret e2e-secret",
            "spec.experiments[0].spec.components.secrets[0]",
            "cannot be checked",
        ],
    )
    .await
}

#[tokio::test]
async fn an_existing_configmap_passes_the_dependency_check() -> anyhow::Result<()> {
    // The counterpart of the missing-ConfigMap case, so that one cannot pass by skipping always.
    let world = new_world(
        "ok-cm",
        SA_LITMUS_USER,
        engine_with_volume("configMaps", "e2e-cm"),
    )
    .await?;
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "e2e-cm"}, "data": {"k": "v"}}))?;
    world
        .ns
        .api::<ConfigMap>()
        .create(&PostParams::default(), &config_map)
        .await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    expect_exit(&mut runner, 0).await?;
    let status = world.status().await?;
    check_entries(&world, &status, &[("e2e-pass", None, "Completed", "Pass")])?;
    no_orphans(&world).await
}

#[tokio::test]
async fn a_crashing_pod_is_skipped_with_error_and_cleaned_up() -> anyhow::Result<()> {
    let world = new_world(
        "bad-crash",
        SA_DEPLOY,
        engine(
            "delete",
            vec![experiment("e2e-pass", &[("PODSIM_BEHAVIOUR", "crash")])],
        ),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    expect_exit(&mut runner, 0).await?;
    let status = world.status().await?;
    check_entries(&world, &status, &[("e2e-pass", None, "Skipped", "Error")])?;
    let pod = pods_of(&world, "e2e-pass")
        .into_iter()
        .next()
        .unwrap_or_default();
    world
        .expect_warning("ChaosContainerWatchNotPermitted", &[&pod])
        .await?;
    no_orphans(&world).await
}

#[tokio::test]
async fn a_result_that_never_comes_times_out_and_is_cleaned_up() -> anyhow::Result<()> {
    let world = new_world(
        "bad-hang",
        SA_DEPLOY,
        engine(
            "delete",
            vec![experiment("e2e-pass", &[("PODSIM_BEHAVIOUR", "hang")])],
        ),
    )
    .await?;
    let started = Instant::now();
    let mut runner = world.spawn(&["e2e-pass"], &[("CHAOS_RUNNER_MONITOR_TIMEOUT", "2")])?;
    expect_exit(&mut runner, 0).await?;
    let took = started.elapsed();
    ensure!(
        took < Duration::from_secs(20),
        "the 2 s Monitor deadline took {took:?}"
    );
    let status = world.status().await?;
    check_entries(&world, &status, &[("e2e-pass", None, "Skipped", "Error")])?;
    world.expect_warning("ExperimentTimedOut", &[]).await?;
    let trail = world.trail().await?;
    check_trail(&trail, FIRST_PHASES)?;
    ensure!(
        trail.iter().any(|t| t.from == "Monitor"
            && t.to == "AwaitResult"
            && t.reason == "ExperimentTimedOut"),
        "no deadline transition: {trail:#?}"
    );
    no_orphans(&world).await
}

/// An EXPERIMENT_LIST the runner cannot run: Warning EnvParseError, the failure recorded in
/// `status.chaosRunner.failure`, exit 0, nothing created.
async fn env_parse_error(prefix: &str, list: &[&str]) -> anyhow::Result<()> {
    let world = new_world(prefix, SA_DEPLOY, pass_and_fail("delete", "0.5")).await?;
    let mut runner = world.spawn(list, &[])?;
    expect_exit(&mut runner, 0).await?;
    world
        .expect_warning("EnvParseError", &["EXPERIMENT_LIST"])
        .await?;
    let status = world.status().await?;
    let failure = status["chaosRunner"]["failure"].as_str().unwrap_or("");
    ensure!(
        failure.contains("EXPERIMENT_LIST"),
        "status.chaosRunner.failure = {failure:?}"
    );
    world.expect_no_job_created()?;
    no_orphans(&world).await
}

/// The Go runner runs a repeated name again; each experiment has one status entry, so here
/// it runs once, with a Warning saying so (the run is not refused).
#[tokio::test]
async fn a_repeated_experiment_runs_once_with_a_warning() -> anyhow::Result<()> {
    let world = new_world("dup-list", SA_DEPLOY, pass_and_fail("delete", "0.5")).await?;
    let mut runner = world.spawn(&["e2e-pass", "e2e-fail", "e2e-pass"], &[])?;
    expect_exit(&mut runner, 0).await?;
    world
        .expect_warning(
            "EnvParseError",
            &["EXPERIMENT_LIST", "e2e-pass", "runs once"],
        )
        .await?;
    let status = world.status().await?;
    check_entries(
        &world,
        &status,
        &[
            ("e2e-pass", None, "Completed", "Pass"),
            ("e2e-fail", None, "Completed", "Fail"),
        ],
    )?;
    world.expect_one_job_per_attempt(2)?;
    no_orphans(&world).await
}

#[tokio::test]
async fn an_experiment_list_with_an_empty_entry_is_an_env_parse_error() -> anyhow::Result<()> {
    env_parse_error("bad-empty-item", &["e2e-pass", ""]).await
}

#[tokio::test]
async fn an_empty_experiment_list_is_an_env_parse_error() -> anyhow::Result<()> {
    // The operator omits empty env values: EXPERIMENT_LIST is simply absent.
    env_parse_error("bad-empty-list", &[]).await
}

/// A record written by a newer runner (a newer schema) is not a restart-curable problem: it is
/// reported (Warning, `status.chaosRunner.failure`) and left as it is, and the runner exits 0
/// instead of crash-looping; nothing is created.
#[tokio::test]
async fn a_record_of_a_newer_schema_is_reported_and_left_alone() -> anyhow::Result<()> {
    let world = new_world("newer-record", SA_DEPLOY, pass_and_fail("delete", "0.5")).await?;
    world
        .patch_engine(json!({"status": {"chaosRunner": {
            "schemaVersion": 99, "runId": "future", "startedAt": "2030-01-01T00:00:00Z",
            "attempts": {"e2e-pass#1": {"phase": "Hyperspace"}}
        }}}))
        .await?;
    let mut runner = world.spawn(&["e2e-pass", "e2e-fail"], &[])?;
    expect_exit(&mut runner, 0).await?;
    world
        .expect_warning("CheckpointUnreadable", &["schema version 99"])
        .await?;
    let record = &world.status().await?["chaosRunner"];
    ensure!(
        record["failure"]
            .as_str()
            .is_some_and(|f| f.contains("schema version 99")),
        "status.chaosRunner.failure: {record}"
    );
    ensure!(
        record["schemaVersion"] == 99 && record["attempts"]["e2e-pass#1"]["phase"] == "Hyperspace",
        "the newer record was changed: {record}"
    );
    world.expect_no_job_created()?;
    no_orphans(&world).await
}

/// `{"x": {"x": …}}`, `levels` deep: deeper than serde_json reads (128 levels), which the
/// upstream CRDs let users store wherever they keep unknown fields.
fn nested(levels: usize) -> Value {
    let mut deep = json!({});
    for _ in 0..levels {
        deep = json!({ "x": deep });
    }
    deep
}

/// A raw request on a Litmus object `plural`/`name` (a POST when `name` is empty) in the
/// world's namespace; the answer is not decoded (the test's client cannot decode deep objects
/// either).
async fn raw_litmus_request(
    world: &World,
    method: http::Method,
    plural: &str,
    name: &str,
    body: Option<Value>,
) -> anyhow::Result<String> {
    let path = format!(
        "/apis/litmuschaos.io/v1alpha1/namespaces/{}/{plural}/{name}",
        world.ns.name()
    );
    let content_type = if method == http::Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let body = body.map(|b| serde_json::to_vec(&b)).transpose()?;
    let request = http::Request::builder()
        .method(method)
        .uri(path.trim_end_matches('/'))
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body.unwrap_or_default())?;
    Ok(world.ns.client().request_text(request).await?)
}

/// An engine nested too deep is reported, not crash-looped on: the upstream CRD keeps unknown
/// fields under `spec.components.runner`, where the API server stores 150 levels. The runner
/// reads the uid raw (even the metadata does not decode: `managedFields` mirror the nesting),
/// reports (Warning on the engine, `status.chaosRunner.failure`), exits 0, creates nothing.
#[tokio::test]
async fn an_engine_nested_too_deep_is_reported_not_crash_looped() -> anyhow::Result<()> {
    let world = world_with_an_engine_nested_too_deep("bad-deep").await?;
    let mut runner = world.spawn(&["e2e-pass", "e2e-fail"], &[])?;
    expect_exit(&mut runner, 0).await?;
    let warning = world
        .expect_warning("EngineInvalid", &["cannot be decoded", "recursion limit"])
        .await?;
    ensure!(
        warning.involved_object.uid.as_deref() == Some(world.uid.as_str()),
        "the Event names another object than the engine (uid {}): {:?}",
        world.uid,
        warning.involved_object
    );
    let status = stored_status_text(&world).await?;
    ensure!(
        status.contains(r#""failure":"the ChaosEngine cannot be decoded"#),
        "no failure in the stored engine's status: {status}"
    );
    world.expect_no_job_created()?;
    no_orphans(&world).await
}

/// A world whose engine carries 150 levels under `spec.components.runner` (kept by the
/// upstream CRD), deeper than serde_json reads.
async fn world_with_an_engine_nested_too_deep(prefix: &str) -> anyhow::Result<World> {
    let world = new_world(prefix, SA_DEPLOY, pass_and_fail("delete", "0.5")).await?;
    let patch = json!({"spec": {"components": {"runner": {"deep": nested(150)}}}});
    raw_litmus_request(
        &world,
        http::Method::PATCH,
        "chaosengines",
        ENGINE,
        Some(patch),
    )
    .await?;
    Ok(world)
}

/// The stored engine's text from its `"status"` on, read raw (it does not decode).
async fn stored_status_text(world: &World) -> anyhow::Result<String> {
    let stored = raw_litmus_request(world, http::Method::GET, "chaosengines", ENGINE, None).await?;
    let at = stored.find("\"status\"").unwrap_or(0);
    Ok(stored[at..].to_string())
}

/// An env error on an engine nested too deep still reaches the engine (Event, status failure,
/// exit 0); before, reading the engine to report it failed and the runner crash-looped.
#[tokio::test]
async fn a_bad_env_for_an_engine_nested_too_deep_is_reported() -> anyhow::Result<()> {
    let world = world_with_an_engine_nested_too_deep("bad-deep-env").await?;
    let mut runner = world.spawn(&["e2e-pass", ""], &[])?;
    expect_exit(&mut runner, 0).await?;
    world
        .expect_warning("EnvParseError", &["EXPERIMENT_LIST"])
        .await?;
    let stored =
        raw_litmus_request(&world, http::Method::GET, "chaosengines", ENGINE, None).await?;
    let status = stored
        .get(stored.find("\"status\"").unwrap_or(0)..)
        .unwrap_or("");
    ensure!(
        status.contains(r#""failure":""#) && status.contains("EXPERIMENT_LIST"),
        "no env failure in the stored engine's status: {status}"
    );
    world.expect_no_job_created()?;
    no_orphans(&world).await
}

/// A ChaosExperiment nested too deep (its CRD keeps unknown fields in `spec.definition`) is
/// malformed like one of a wrong type: the dependency check names it, the experiment is skipped,
/// the run goes on and exits 0; before, the runner crash-looped on it.
#[tokio::test]
async fn an_experiment_nested_too_deep_is_skipped_with_a_reason() -> anyhow::Result<()> {
    let world = new_world(
        "bad-deep-exp",
        SA_DEPLOY,
        engine("delete", vec![experiment("e2e-deep", &[])]),
    )
    .await?;
    let experiment = json!({
        "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosExperiment",
        "metadata": {"name": "e2e-deep", "labels": {"name": "e2e-deep"}},
        "spec": {"definition": {
            "scope": "Namespaced", "image": "litmuschaos/go-runner:3.18.0",
            "command": ["/bin/bash"], "args": ["-c", "./experiments -name pod-delete"],
            "deep": nested(150),
        }}
    });
    raw_litmus_request(
        &world,
        http::Method::POST,
        "chaosexperiments",
        "",
        Some(experiment),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-deep"], &[])?;
    expect_exit(&mut runner, 0).await?;
    world
        .expect_warning(
            "ExperimentDependencyCheck",
            &[
                "ChaosExperiment e2e-deep cannot be decoded",
                "recursion limit",
            ],
        )
        .await?;
    check_entries(
        &world,
        &world.status().await?,
        &[("e2e-deep", Some("N/A"), "Skipped", "Fail")],
    )?;
    world.expect_no_job_created()?;
    no_orphans(&world).await
}

/// A ChaosResult nested too deep (its CRD keeps unknown fields in `status`) still gives its
/// verdict: the runner, frozen in Monitor while the experiment writes its verdict and someone
/// adds 150 levels to the result's status, reads it raw without the limit and records Pass.
#[tokio::test]
async fn a_result_nested_too_deep_still_gives_its_verdict() -> anyhow::Result<()> {
    let world = new_world(
        "bad-deep-result",
        SA_DEPLOY,
        engine(
            "delete",
            vec![experiment("e2e-pass", &[("PODSIM_SECONDS", "1")])],
        ),
    )
    .await?;
    let mut runner = world.spawn(&["e2e-pass"], &[])?;
    world.monitoring_its_pod("e2e-pass#1").await?;
    runner.kill(Signal::Stop)?;
    let result = format!("{ENGINE}-e2e-pass");
    wait_until(
        RUN_TIMEOUT,
        "the experiment wrote verdict Pass",
        async || {
            let text = raw_litmus_request(&world, http::Method::GET, "chaosresults", &result, None)
                .await
                .unwrap_or_default();
            Ok(text.contains(r#""verdict":"Pass""#).then_some(()))
        },
    )
    .await?;
    let patch = json!({"status": {"deep": nested(150)}});
    raw_litmus_request(
        &world,
        http::Method::PATCH,
        "chaosresults",
        &result,
        Some(patch),
    )
    .await?;
    runner.kill(Signal::Cont)?;
    expect_exit(&mut runner, 0).await?;
    check_entries(
        &world,
        &world.status().await?,
        &[("e2e-pass", None, "Completed", "Pass")],
    )?;
    no_orphans(&world).await
}

#[tokio::test]
async fn a_missing_engine_exits_0_with_a_clear_log() -> anyhow::Result<()> {
    let world = new_world("bad-noengine", SA_DEPLOY, pass_and_fail("delete", "0.5")).await?;
    let mut spec = world.spec(&["e2e-pass"], &[]);
    spec.engine = "e2e-absent-engine".to_owned();
    let mut runner = RunnerProcess::spawn(&spec)?;
    expect_exit(&mut runner, 0).await?;
    let log = runner.output();
    ensure!(
        log.contains("ChaosEngine not found") && log.contains("e2e-absent-engine"),
        "the log does not say which engine is missing:\n{log}"
    );
    world.expect_no_job_created()?;
    Ok(())
}

#[tokio::test]
async fn an_env_without_an_engine_exits_2() -> anyhow::Result<()> {
    let world = new_world("bad-noenv", SA_DEPLOY, pass_and_fail("delete", "0.5")).await?;
    let mut spec = world.spec(&["e2e-pass"], &[]);
    spec.engine = String::new(); // omitted, as the operator omits empty values
    let mut runner = RunnerProcess::spawn(&spec)?;
    expect_exit(&mut runner, 2).await?;
    ensure!(
        runner.output().contains("CHAOSENGINE"),
        "the log does not name CHAOSENGINE"
    );
    ensure!(
        world.status().await?.is_null(),
        "the engine's status was written"
    );
    Ok(())
}
