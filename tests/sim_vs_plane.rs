//! The fake API earns trust (issue 10): scenarios run both in the simulation (`tests/sim/`,
//! the in-memory API on the paused clock) and on the plane (the release binary against the real
//! kube-apiserver, pods played by podsim), and what a user sees of each finished run must be the
//! same — status entries, Jobs created and left, the audit trail, the runner's Events with their
//! counts (`tests/sim/observed.rs`). A difference means the simulation tests a runner against
//! an API that is not Kubernetes.

mod common;
#[allow(dead_code)] // seeded schedules and their reports belong to tests/simulation.rs
mod sim;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use common::run::{RUN_TIMEOUT, Suite, World, chaos_engine, engine_experiment, expect_exit};
use common::{RunnerProcess, Signal, jobs_by_chaos_uid};
use serde_json::{Value, json};
use sim::api::CrashPoint;
use sim::observed::Observed;
use sim::world::PodTimes;
use sim::{Schedule, run_given};

const ENGINE: &str = "e2e";

static SUITE: Suite = Suite {
    engine: ENGINE,
    component: "e2e-runner",
    chaos_service_account: "chaos-runner",
    fixtures: &[
        "deploy/rbac.yaml",
        "fixtures/rbac/litmus-user-role.yaml",
        "fixtures/e2e/experiments.yaml",
    ],
};

/// What happens to the run from outside, once the first attempt's pod runs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Disturbance {
    None,
    /// The runner is killed (SIGKILL on the plane; dropped at a request in the simulation) and
    /// a new one resumes.
    Killed,
    /// `spec.engineState: stop`.
    Aborted,
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    /// (experiment, verdict its pods write).
    experiments: &'static [(&'static str, &'static str)],
    /// `chaos-runner.io/iterations`, the same for every experiment.
    iterations: Option<u32>,
    policy: &'static str,
    /// The Role Litmus users have (no watch): the runner polls.
    poll: bool,
    disturbance: Disturbance,
    /// How long each pod runs.
    pod_seconds: u64,
}

const PASS_AND_FAIL: &[(&str, &str)] = &[("e2e-pass", "Pass"), ("e2e-fail", "Fail")];

impl Scenario {
    fn annotations(&self) -> Vec<(&'static str, String)> {
        self.iterations
            .map(|n| ("chaos-runner.io/iterations", n.to_string()))
            .into_iter()
            .collect()
    }

    fn schedule(&self, crashes: Vec<CrashPoint>) -> Schedule {
        let iterations = self.iterations.unwrap_or(1);
        Schedule {
            seed: chaos_runner::contract::hash::fnv1a64(&[self.name]),
            experiments: self
                .experiments
                .iter()
                .map(|(name, verdict)| ((*name).to_owned(), *verdict))
                .collect(),
            iterations: self
                .experiments
                .iter()
                .map(|(name, _)| ((*name).to_owned(), iterations))
                .collect(),
            iterations_annotation: self.annotations().into_iter().next().map(|(_, v)| v),
            max_parallel: None,
            cleanup_delete: self.policy == "delete",
            poll_mode: self.poll,
            fault_per_mille: 0,
            latency_max_ms: 0,
            crashes,
            // The first pod runs from 1.5 s on (below).
            abort_after: (self.disturbance == Disturbance::Aborted)
                .then(|| Duration::from_secs(1 + self.pod_seconds / 2)),
            monitor_timeout: None,
            pod_times: Some(PodTimes {
                create: Duration::from_millis(500),
                start: Duration::from_secs(1),
                run: Duration::from_secs(self.pod_seconds),
            }),
            no_sigterm_listener: false,
        }
    }

    /// The scenario in the simulation. A kill is placed where the runner reads the first
    /// ChaosResult in an undisturbed run: the first pod has ended, the runner is in Monitor.
    fn simulate(&self) -> anyhow::Result<Observed> {
        let mut crashes = Vec::new();
        if self.disturbance == Disturbance::Killed {
            let undisturbed = run_given(self.schedule(Vec::new()), false);
            let nth = undisturbed
                .first_requests
                .iter()
                .find(|(_, resource)| resource == "chaosresults")
                .map(|(nth, _)| *nth)
                .context("the undisturbed simulated run read no ChaosResult")?;
            crashes.push(CrashPoint {
                request: nth,
                after_apply: false,
                overlap: false,
            });
        }
        let outcome = run_given(self.schedule(crashes), false);
        ensure!(
            outcome.problems.is_empty(),
            "the simulated run has problems: {:?}",
            outcome.problems
        );
        if self.disturbance == Disturbance::Killed {
            ensure!(
                outcome.incarnations == 2,
                "the simulated runner was not killed once ({} incarnations)",
                outcome.incarnations
            );
        }
        outcome.observed.context("the simulated run did not finish")
    }

    /// The scenario on the plane.
    async fn on_the_plane(&self) -> anyhow::Result<Observed> {
        let seconds = self.pod_seconds.to_string();
        let experiments: Vec<Value> = self
            .experiments
            .iter()
            .map(|(name, _)| engine_experiment(name, &[("PODSIM_SECONDS", &seconds)]))
            .collect();
        let annotations = self.annotations();
        let annotations: Vec<(&str, &str)> =
            annotations.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let engine = chaos_engine(
            ENGINE,
            SUITE.chaos_service_account,
            self.policy,
            &annotations,
            experiments,
        );
        let identity = if self.poll {
            "litmus-user-sa"
        } else {
            "chaos-runner"
        };
        let world = World::new(&SUITE, self.name, identity, engine).await?;
        let names: Vec<&str> = self.experiments.iter().map(|(name, _)| *name).collect();
        let mut runner: RunnerProcess = world.spawn(&names, &[])?;
        let first = format!("{}#1", names[0]);
        match self.disturbance {
            Disturbance::None => {}
            Disturbance::Killed => {
                world.monitoring_its_pod(&first).await?;
                runner.kill(Signal::Kill)?;
                runner.wait(RUN_TIMEOUT).await?;
                runner = world.spawn(&names, &[])?;
            }
            Disturbance::Aborted => {
                world.monitoring_its_pod(&first).await?;
                world
                    .patch_engine(json!({"spec": {"engineState": "stop"}}))
                    .await?;
            }
        }
        expect_exit(&mut runner, 0).await?;
        let engine = world.engine().await?.context("the engine is gone")?;
        let engine = serde_json::to_value(&engine)?;
        let events: Vec<Value> = world
            .events()
            .await?
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        let events: Vec<&Value> = events.iter().collect();
        let created: Vec<String> = world.jobs_seen.by_name().into_keys().collect();
        let created: Vec<&str> = created.iter().map(String::as_str).collect();
        // Left: not being deleted (a Job deleted with propagation lingers until its pod goes).
        let jobs = jobs_by_chaos_uid(&world.ns.client(), world.ns.name(), &world.uid).await?;
        let left: Vec<&str> = jobs
            .iter()
            .filter(|job| job.metadata.deletion_timestamp.is_none())
            .filter_map(|job| job.metadata.name.as_deref())
            .collect();
        Ok(Observed::of(&engine, &events, &created, &left))
    }
}

/// Every scenario, the aborted ones last: an abort sets the process-wide termination budget
/// (`cluster::api::finish_calls_by`), which would bound the calls of a simulation after it.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "same-pass-fail",
        experiments: PASS_AND_FAIL,
        iterations: None,
        policy: "delete",
        poll: false,
        disturbance: Disturbance::None,
        pod_seconds: 1,
    },
    Scenario {
        name: "same-iterations-poll",
        experiments: PASS_AND_FAIL,
        iterations: Some(2),
        policy: "retain",
        poll: true,
        disturbance: Disturbance::None,
        // Longer than a poll's interval (1 s until a pod runs), or a poll may miss it running.
        pod_seconds: 3,
    },
    Scenario {
        name: "same-killed",
        experiments: PASS_AND_FAIL,
        iterations: None,
        policy: "delete",
        poll: false,
        disturbance: Disturbance::Killed,
        pod_seconds: 3,
    },
    Scenario {
        name: "same-aborted",
        experiments: &[("e2e-pass", "Pass")],
        iterations: None,
        policy: "retain",
        poll: false,
        disturbance: Disturbance::Aborted,
        pod_seconds: 20,
    },
];

/// One test, so the simulations run one after another in this process (see [`SCENARIOS`]);
/// the plane runs go on at once, each in its own namespace.
#[tokio::test]
async fn the_simulation_and_the_plane_see_the_same_runs() -> anyhow::Result<()> {
    let simulations = std::thread::spawn(|| {
        SCENARIOS
            .iter()
            .map(Scenario::simulate)
            .collect::<Vec<anyhow::Result<Observed>>>()
    });
    let planes = futures::future::join_all(SCENARIOS.iter().map(Scenario::on_the_plane)).await;
    let simulations = simulations
        .join()
        .map_err(|_| anyhow::anyhow!("the simulations panicked"))?;
    let mut failures = Vec::new();
    for ((scenario, simulated), real) in SCENARIOS.iter().zip(simulations).zip(planes) {
        let compared = simulated.and_then(|simulated| {
            let real = real?;
            let differences = simulated.differences(&real);
            ensure!(
                differences.is_empty(),
                "the simulation (first) and the plane (second) saw different runs:\n  {}",
                differences.join("\n  ")
            );
            eprintln!("{}: the same on both: {real:?}", scenario.name);
            Ok(())
        });
        if let Err(error) = compared {
            failures.push(format!("{}: {error:#}", scenario.name));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}
