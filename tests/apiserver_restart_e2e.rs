//! kube-apiserver restarts under a running runner (issue 10, item 4): the apiserver is stopped
//! and started again (`tests/cluster/plane restart-apiserver`, as a rolling update or a
//! crash-looping static pod does) while an attempt is in Monitor, and again while the runner is
//! in Cleanup. The run rides both out in one process and converges: exit 0, one Job per attempt,
//! the right verdicts, every transition in the trail once with its Event once, no Job left.
//!
//! Its own test binary, so no other test's requests meet the restarts (cargo runs test binaries
//! one after another). `tests/cluster/plane restart-apiserver` restarts kube-controller-manager
//! after the apiserver, as a cluster's kubelet does when leader election makes it exit, so the
//! next binary finds working controllers.

mod common;

use std::time::Duration;

use anyhow::{Context as _, anyhow, ensure};
use common::run::{
    RUN_TIMEOUT, Suite, World, chaos_engine, check_trail, engine_experiment, expect_exit_within,
};
use common::{RunnerProcess, Signal};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const ENGINE: &str = "e2e";
const SERVICE_ACCOUNT: &str = "chaos-runner";

static SUITE: Suite = Suite {
    engine: ENGINE,
    component: "e2e-runner",
    chaos_service_account: SERVICE_ACCOUNT,
    fixtures: &["deploy/rbac.yaml", "fixtures/e2e/experiments.yaml"],
};

/// `e2e-pass` passes and `e2e-fail` fails, each pod running `seconds`; Jobs deleted.
fn engine(seconds: &str) -> Value {
    let experiment = |name: &str| engine_experiment(name, &[("PODSIM_SECONDS", seconds)]);
    chaos_engine(
        ENGINE,
        SERVICE_ACCOUNT,
        "delete",
        &[],
        vec![experiment("e2e-pass"), experiment("e2e-fail")],
    )
}

/// `tests/cluster/plane restart-apiserver <down_seconds>`, started; its log is on stderr.
fn restart_apiserver(down_seconds: u32) -> anyhow::Result<tokio::process::Child> {
    let repo = std::env::var("CHAOS_PLANE_REPO").unwrap_or_else(|_| ".".into());
    tokio::process::Command::new("bash")
        .arg(format!("{repo}/tests/cluster/plane"))
        .arg("restart-apiserver")
        .arg(down_seconds.to_string())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting tests/cluster/plane restart-apiserver")
}

/// Waits until the restart has stopped the apiserver (its log says so); returns the rest of
/// the restart to wait for.
async fn until_stopped(
    restart: &mut tokio::process::Child,
) -> anyhow::Result<tokio::task::JoinHandle<Vec<String>>> {
    let stderr = restart.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let mut lines = BufReader::new(stderr).lines();
    let mut log = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("the apiserver did not stop within 60 s")??
            .ok_or_else(|| anyhow!("the restart ended before stopping the apiserver: {log:?}"))?;
        let stopped = line.contains("stopped in");
        log.push(line);
        if stopped {
            break;
        }
    }
    Ok(tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push(line);
        }
        log
    }))
}

async fn restarted(
    mut restart: tokio::process::Child,
    log: tokio::task::JoinHandle<Vec<String>>,
) -> anyhow::Result<()> {
    let status = tokio::time::timeout(Duration::from_secs(120), restart.wait())
        .await
        .context("the apiserver restart did not finish within 120 s")??;
    let log = log.await?;
    ensure!(
        status.success(),
        "the apiserver restart failed ({status}): {log:#?}"
    );
    eprintln!("{}", log.join("\n"));
    Ok(())
}

#[tokio::test]
async fn a_run_rides_out_apiserver_restarts_in_monitor_and_in_cleanup() -> anyhow::Result<()> {
    let world = World::new(&SUITE, "apiserver-restart", SERVICE_ACCOUNT, engine("8")).await?;
    let mut runner: RunnerProcess = world.spawn(&["e2e-pass", "e2e-fail"], &[])?;

    // Monitor: the first attempt's pod runs when the apiserver goes away for 3 s.
    world.monitoring_its_pod("e2e-pass#1").await?;
    let mut restart = restart_apiserver(3)?;
    let log = until_stopped(&mut restart).await?;
    restarted(restart, log).await?;

    // Cleanup: the runner is frozen there; the apiserver is stopped; the runner goes on while
    // it is down, then it comes back.
    let (attempt, _) = world.freeze_in_phase(&mut runner, "Cleanup").await?;
    let mut restart = restart_apiserver(3)?;
    let log = until_stopped(&mut restart).await;
    runner.kill(Signal::Cont)?;
    restarted(restart, log?).await?;
    eprintln!("{attempt} was in Cleanup when the apiserver went away");

    // One process rode out both: no kubelet restart needed.
    expect_exit_within(&mut runner, 0, RUN_TIMEOUT * 2).await?;
    let output = runner.output();
    ensure!(
        output.contains("retrying"),
        "the runner never retried a request: did it see the restarts?\n{}",
        runner.log_tail(30)
    );

    world.expect_one_job_per_attempt(2)?;
    let status = world.status().await?;
    let (passed, failed) = (world.played_pod("e2e-pass")?, world.played_pod("e2e-fail")?);
    world.check_entries(
        &status,
        &[
            ("e2e-pass", passed.as_str(), "Completed", "Pass"),
            ("e2e-fail", failed.as_str(), "Completed", "Fail"),
        ],
    )?;
    let trail = world.trail().await?;
    check_trail(&trail, &["Init"])?;
    let events = world.events().await?;
    for transition in &trail {
        let sent = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some(transition.reason.as_str()))
            .count();
        ensure!(sent >= 1, "no Event for {transition:?}");
    }
    for event in &events {
        ensure!(
            event.count.unwrap_or(1) == 1,
            "Event counted twice: {event:?}"
        );
    }
    world.wait_no_jobs_or_pods(Duration::from_secs(10)).await
}
