//! The runner under upstream's chaos-operator, end to end on the local control plane: the real
//! operator (`tests/cluster/operator build`, started by [`OperatorProcess`] under its own
//! ServiceAccount) creates `<engine>-runner`, the [`Node`] runs that pod's container as this
//! project's `chaos-runner` binary and reports its status as a kubelet would, and the pod
//! simulator plays the experiment pods. Nothing here starts a runner by hand: every runner is
//! the one the operator asked for, with the env the operator gave it.
//!
//! Each test has its own namespace with `deploy/rbac.yaml`, `fixtures/e2e/experiments.yaml`, the
//! operator's RBAC (`fixtures/operator/rbac.yaml`) and an operator that watches only that
//! namespace. Needs `--features e2e`, a plane (`eval "$(tests/cluster/plane env)"`) and the
//! operator built (`bash tests/cluster/operator build`; `bash tests/test.sh` does both).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use common::node::{Node, NodeConfig, NodeEvent, NodeEventKind, RUNNER_CONTAINER};
use common::operator::{ENGINE_FINALIZER, OperatorOptions, OperatorProcess, RUNNER_IMAGE};
use common::run::{Suite, World, entry};
use common::{wait_for_deletion, wait_until};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams};
use podsim::SimEventKind;
use serde_json::{Value, json};

/// The engine of every test (each test has its own namespace).
const ENGINE: &str = "e2e";
/// The pod the operator creates for it, and `source.component` of the runner's Events.
const RUNNER_POD: &str = "e2e-runner";
/// deploy/rbac.yaml's ServiceAccount: the engine's `chaosServiceAccount`, so both the runner
/// pod and the experiment pods run as it.
const SA: &str = "chaos-runner";
/// A whole run under the operator (it adds its reconciles and, on a drain, a second pod).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// The operator creating (or re-creating) the runner pod.
const POD_TIMEOUT: Duration = Duration::from_secs(30);
/// A runner asked to stop by its pod's deletion (SIGTERM): well within the pod's 30 s grace.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Exit code of a runner suspended by SIGTERM with the engine active.
const EXIT_SUSPENDED: i32 = 143;

static SUITE: Suite = Suite {
    engine: ENGINE,
    component: RUNNER_POD,
    chaos_service_account: SA,
    fixtures: &["deploy/rbac.yaml", "fixtures/e2e/experiments.yaml"],
};

/// An engine experiment entry whose env overrides the experiment's (PODSIM_* among them).
fn experiment(name: &str, env: &[(&str, &str)]) -> Value {
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    json!({"name": name, "spec": {"components": {"env": env}}})
}

/// The ChaosEngine of a test: active, policy delete, no appinfo (TARGETS absent), no runner
/// image (the operator's CHAOS_RUNNER_IMAGE applies).
fn engine(experiments: Vec<Value>) -> Value {
    json!({
        "apiVersion": "litmuschaos.io/v1alpha1",
        "kind": "ChaosEngine",
        "metadata": {"name": ENGINE},
        "spec": {
            "engineState": "active",
            "chaosServiceAccount": SA,
            "jobCleanUpPolicy": "delete",
            "experiments": experiments,
        }
    })
}

/// `e2e-pass` passes, `e2e-fail` fails, each pod running `seconds`.
fn pass_and_fail(seconds: &str) -> Value {
    engine(vec![
        experiment("e2e-pass", &[("PODSIM_SECONDS", seconds)]),
        experiment("e2e-fail", &[("PODSIM_SECONDS", seconds)]),
    ])
}

/// One test's cluster: the operator, the node and the world (namespace, engine, podsim, Jobs
/// watch). Dropped in this order: the operator stops (and its finalizer leaves the engine), the
/// node kills its processes, then the namespace goes.
struct Cluster {
    operator: OperatorProcess,
    node: Node,
    world: World,
    started: Instant,
}

impl Cluster {
    async fn new(prefix: &str, engine: Value) -> anyhow::Result<Cluster> {
        let started = Instant::now();
        let world = World::new(&SUITE, prefix, SA, engine).await?;
        let node = Node::start(world.ns.client(), world.ns.name(), NodeConfig::default());
        let operator = OperatorProcess::start(&world.ns, OperatorOptions::default()).await?;
        eprintln!(
            "{}: operator pid {} ready {:?} after the start",
            world.ns.name(),
            operator.pid(),
            started.elapsed()
        );
        Ok(Cluster {
            operator,
            node,
            world,
            started,
        })
    }

    fn pods(&self) -> Api<Pod> {
        self.world.ns.api::<Pod>()
    }

    /// What to show when something is not as expected: the engine's status, the node's events
    /// and runner logs, the operator's log.
    async fn diagnostics(&self) -> String {
        let status = match self.world.engine().await {
            Ok(Some(engine)) => {
                let mut shown = json!({
                    "spec.engineState": engine.data["spec"]["engineState"],
                    "status.engineStatus": engine.data["status"]["engineStatus"],
                    "status.experiments": engine.data["status"]["experiments"],
                    "finalizers": engine.finalizers(),
                });
                let attempts = &engine.data["status"]["chaosRunner"]["attempts"];
                if !attempts.is_null() {
                    shown["status.chaosRunner.attempts"] = attempts.clone();
                }
                format!("{shown:#}")
            }
            Ok(None) => "absent".to_owned(),
            Err(err) => format!("<{err:#}>"),
        };
        let simulated: Vec<String> = self
            .world
            .sim
            .events()
            .iter()
            .map(ToString::to_string)
            .collect();
        format!(
            "engine: {status}\npodsim:\n  {}\n{}\noperator log tail:\n{}",
            simulated.join("\n  "),
            self.node.report(25),
            operator_log_tail(&self.operator.output(), 25)
        )
    }

    /// [`wait_until`] whose error carries [`Cluster::diagnostics`].
    async fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        probe: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        match wait_until(timeout, what, probe).await {
            Ok(value) => Ok(value),
            Err(err) => Err(err.context(self.diagnostics().await)),
        }
    }

    /// `outcome`, its error with the diagnostics added.
    async fn explained<T>(&self, outcome: anyhow::Result<T>) -> anyhow::Result<T> {
        match outcome {
            Ok(value) => Ok(value),
            Err(err) => Err(err.context(self.diagnostics().await)),
        }
    }

    /// Nothing left once the run is over: the runner pod gone (the operator deletes it after a
    /// completed run, the node lets it go), the Jobs and experiment pods too.
    async fn expect_all_gone(&self) -> anyhow::Result<()> {
        self.explained(wait_for_deletion(&self.pods(), RUNNER_POD, POD_TIMEOUT).await)
            .await?;
        self.explained(self.world.wait_no_jobs_or_pods(POD_TIMEOUT).await)
            .await
    }

    /// Fails with the diagnostics unless `condition` holds.
    async fn ensure(
        &self,
        condition: bool,
        message: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        if condition {
            return Ok(());
        }
        Err(anyhow!("{}\n{}", message(), self.diagnostics().await))
    }

    /// The runner pod once it exists with a uid other than every one in `not`.
    async fn runner_pod(&self, not: &[String]) -> anyhow::Result<Pod> {
        let pods = self.pods();
        self.wait(POD_TIMEOUT, "the operator's runner pod", async || {
            Ok(pods
                .get_opt(RUNNER_POD)
                .await?
                .filter(|p| !not.contains(&p.uid().unwrap_or_default())))
        })
        .await
    }

    /// The node's first event for pod `uid` that `select` picks.
    async fn node_event<T>(
        &self,
        timeout: Duration,
        what: &str,
        uid: &str,
        select: impl Fn(&NodeEventKind) -> Option<T>,
    ) -> anyhow::Result<T> {
        let found = self
            .node
            .wait_for_event(timeout, |e| e.uid == uid && select(&e.kind).is_some())
            .await;
        match found.and_then(|e| select(&e.kind)) {
            Some(value) => Ok(value),
            None => Err(anyhow!(
                "timed out after {timeout:?} waiting for the node: {what}\n{}",
                self.diagnostics().await
            )),
        }
    }

    /// Waits until the operator has written `status.engineStatus: <wanted>`; the status.
    async fn engine_status_becomes(&self, wanted: &str) -> anyhow::Result<Value> {
        self.wait(
            RUN_TIMEOUT,
            &format!("status.engineStatus {wanted}"),
            async || {
                let status = self.world.status().await?;
                Ok((status["engineStatus"] == wanted).then_some(status))
            },
        )
        .await
    }

    /// The engine's `spec.engineState`.
    async fn engine_state(&self) -> anyhow::Result<Value> {
        let engine = self
            .world
            .engine()
            .await?
            .ok_or_else(|| anyhow!("the engine is gone"))?;
        Ok(engine.data["spec"]["engineState"].clone())
    }

    /// The operator's Events on the engine (source `chaos-operator`).
    async fn operator_events(&self) -> anyhow::Result<Vec<Event>> {
        let list = self
            .world
            .ns
            .api::<Event>()
            .list(&ListParams::default().fields(&format!(
                "involvedObject.kind=ChaosEngine,involvedObject.name={ENGINE}"
            )))
            .await?;
        Ok(list
            .items
            .into_iter()
            .filter(|e| {
                e.source
                    .as_ref()
                    .and_then(|s| s.component.as_deref())
                    .is_some_and(|c| c == "chaos-operator")
            })
            .collect())
    }

    /// The operator emitted an Event with `reason`.
    async fn expect_operator_event(&self, reason: &str) -> anyhow::Result<()> {
        let events = self.operator_events().await?;
        let reasons: Vec<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
        self.ensure(reasons.contains(&reason), || {
            format!("no {reason} Event from the operator; its Events: {reasons:?}")
        })
        .await
    }

    /// The pods podsim played for experiment `exp` (Job `<exp>-xxxxxx`).
    fn played(&self, exp: &str) -> BTreeSet<String> {
        let prefix = format!("{exp}-");
        self.world
            .sim
            .events()
            .into_iter()
            .filter(|e| e.pod.starts_with(&prefix) && matches!(e.kind, SimEventKind::Running))
            .map(|e| e.pod)
            .collect()
    }

    /// Each of `experiments` had exactly one pod played (its chaos ran once); entry of each
    /// `Completed` with `verdict` and that pod.
    async fn expect_completed(
        &self,
        status: &Value,
        expected: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut rows = Vec::new();
        for (name, verdict) in expected {
            let played = self.played(name);
            self.ensure(played.len() == 1, || {
                format!("{name}: podsim played {played:?}, expected exactly one pod")
            })
            .await?;
            rows.push((
                *name,
                played.into_iter().next().unwrap_or_default(),
                *verdict,
            ));
        }
        let rows: Vec<(&str, &str, &str, &str)> = rows
            .iter()
            .map(|(name, pod, verdict)| (*name, pod.as_str(), "Completed", *verdict))
            .collect();
        match self.world.check_entries(status, &rows) {
            Ok(()) => Ok(()),
            Err(err) => Err(err.context(self.diagnostics().await)),
        }
    }

    /// Processes the node started for pod `uid`.
    fn starts_of(&self, uid: &str) -> Vec<NodeEvent> {
        self.node
            .events_of_uid(uid)
            .into_iter()
            .filter(|e| matches!(e.kind, NodeEventKind::Started { .. }))
            .collect()
    }

    /// The output of the processes of pod `uid`, concatenated.
    fn output_of(&self, uid: &str) -> String {
        self.starts_of(uid)
            .into_iter()
            .filter_map(|e| match e.kind {
                NodeEventKind::Started { log, .. } => std::fs::read_to_string(log).ok(),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }

    /// Things every test ends with: the operator ran under its RBAC without a refusal, podsim
    /// never touched the runner pod, no runner panicked.
    async fn expect_clean_logs(&self) -> anyhow::Result<()> {
        let forbidden = self.operator.forbidden();
        self.ensure(forbidden.is_empty(), || {
            format!("the operator was refused requests (its RBAC misses a rule):\n{forbidden:#?}")
        })
        .await?;
        let touched = self.world.sim.events_for(RUNNER_POD);
        self.ensure(touched.is_empty(), || {
            format!("podsim played the runner pod: {touched:?}")
        })
        .await?;
        for index in 0..self.node.logs().len() {
            let output = self.node.output(index).unwrap_or_default();
            self.ensure(!output.contains("panicked"), || {
                format!("runner process {index} panicked")
            })
            .await?;
        }
        Ok(())
    }
}

/// The last `lines` lines of the operator's log, without the lines every reconcile repeats.
fn operator_log_tail(log: &str, lines: usize) -> String {
    const ROUTINE: [&str; 4] = [
        "Reconciling ChaosEngine",
        "Skip reconcile",
        "derived from",
        "Starting EventSource",
    ];
    let kept: Vec<&str> = log
        .lines()
        .filter(|l| !ROUTINE.iter().any(|r| l.contains(r)))
        .collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

/// The runner pod as the operator builds it (contract §1), for the node to run.
async fn check_runner_pod(cluster: &Cluster, pod: &Pod) -> anyhow::Result<()> {
    let labels = pod.labels();
    let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("no spec"))?;
    let container = spec
        .containers
        .iter()
        .find(|c| c.name == RUNNER_CONTAINER)
        .ok_or_else(|| anyhow!("no container {RUNNER_CONTAINER}: {:?}", spec.containers))?;
    let env: Vec<(String, String)> = container
        .env
        .iter()
        .flatten()
        .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
        .collect();
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.kind == "ChaosEngine")
        .cloned();
    let namespace = cluster.world.ns.name();
    let checks = [
        (
            labels.get("app").map(String::as_str) == Some(ENGINE),
            "label app",
        ),
        (
            labels.get("chaosUID") == Some(&cluster.world.uid),
            "label chaosUID",
        ),
        (
            labels
                .get("app.kubernetes.io/component")
                .map(String::as_str)
                == Some("chaos-runner"),
            "label app.kubernetes.io/component",
        ),
        (
            owner.as_ref().is_some_and(|o| {
                o.uid == cluster.world.uid && o.controller == Some(true) && o.name == ENGINE
            }),
            "controller ownerReference to the engine",
        ),
        (spec.containers.len() == 1, "one container"),
        (
            container.image.as_deref() == Some(RUNNER_IMAGE),
            "image = CHAOS_RUNNER_IMAGE",
        ),
        (
            container.command.is_none() && container.args.is_none(),
            "no command, no args",
        ),
        (
            spec.service_account_name.as_deref() == Some(SA),
            "serviceAccountName",
        ),
        (
            spec.restart_policy.as_deref() == Some("OnFailure"),
            "restartPolicy OnFailure",
        ),
        (
            env == [
                ("CHAOSENGINE".to_owned(), ENGINE.to_owned()),
                ("EXPERIMENT_LIST".to_owned(), "e2e-pass,e2e-fail".to_owned()),
                ("CHAOS_SVC_ACC".to_owned(), SA.to_owned()),
                ("CHAOS_NAMESPACE".to_owned(), namespace.to_owned()),
            ],
            "env (empty TARGETS, AUXILIARY_APPINFO, CLIENT_UUID omitted)",
        ),
    ];
    for (ok, what) in checks {
        cluster
            .ensure(ok, || {
                format!(
                    "runner pod: {what} is not as the operator's contract says: {}",
                    serde_json::to_string(pod).unwrap_or_default()
                )
            })
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// a. The operator launches the run and reads its completion
// ---------------------------------------------------------------------------------------------

/// The operator initialises the engine and creates `<engine>-runner`; the node runs it; the
/// runner runs both experiments and exits 0; the node reports `terminated/Completed`; the
/// operator reads that as the run's end, marks the engine completed and stopped, and (policy
/// delete) removes the runner pod.
#[tokio::test]
async fn the_operator_launches_the_runner_and_marks_the_engine_completed() -> anyhow::Result<()> {
    let cluster = Cluster::new("op-run", pass_and_fail("1")).await?;
    let pod = cluster.runner_pod(&[]).await?;
    let uid = pod.uid().unwrap_or_default();
    eprintln!(
        "runner pod created {:?} after the start",
        cluster.started.elapsed()
    );
    check_runner_pod(&cluster, &pod).await?;

    let code = cluster
        .node_event(RUN_TIMEOUT, "the runner's exit", &uid, |k| match k {
            NodeEventKind::Exited { code, .. } => Some(*code),
            _ => None,
        })
        .await?;
    cluster
        .ensure(code == 0, || {
            format!("the runner exited {code}, expected 0")
        })
        .await?;
    let status = cluster.engine_status_becomes("completed").await?;
    eprintln!(
        "engine completed {:?} after the start",
        cluster.started.elapsed()
    );
    cluster
        .expect_completed(&status, &[("e2e-pass", "Pass"), ("e2e-fail", "Fail")])
        .await?;
    let state = cluster.engine_state().await?;
    cluster
        .ensure(state == "stop", || {
            format!("spec.engineState is {state}, expected stop")
        })
        .await?;
    cluster
        .expect_operator_event("ChaosEngineInitialized")
        .await?;
    cluster
        .expect_operator_event("ChaosEngineCompleted")
        .await?;

    // One runner process, never restarted; one Job per experiment; then nothing left: the
    // runner deleted its Jobs (policy delete) and the operator the runner pod.
    let starts = cluster.starts_of(&uid);
    cluster
        .ensure(starts.len() == 1, || {
            format!("the runner pod's container started {} times", starts.len())
        })
        .await?;
    cluster
        .explained(cluster.world.expect_one_job_per_attempt(2))
        .await?;
    cluster.expect_all_gone().await?;
    let engine = cluster
        .world
        .engine()
        .await?
        .ok_or_else(|| anyhow!("the engine is gone"))?;
    ensure!(
        engine.finalizers().iter().any(|f| f == ENGINE_FINALIZER),
        "the operator's finalizer is not on the engine: {:?}",
        engine.finalizers()
    );
    cluster.expect_clean_logs().await?;
    eprintln!("op-run: done in {:?}", cluster.started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// b. A drain: the runner pod deleted mid-run
// ---------------------------------------------------------------------------------------------

/// `kubectl delete pod <engine>-runner` (or a drain's eviction) while the first experiment's
/// pod runs: the node sends SIGTERM, the runner writes its checkpoint, leaves the Job running
/// and exits 143 (not `Completed`: the operator must not read the run as over); the pod goes;
/// the operator creates a new `<engine>-runner`; its runner resumes from the checkpoint and
/// adopts the running Job: each experiment's chaos runs once, one Job each, right verdicts.
#[tokio::test]
async fn a_deleted_runner_pod_is_recreated_by_the_operator_and_the_run_resumes()
-> anyhow::Result<()> {
    let cluster = Cluster::new("op-drain", pass_and_fail("6")).await?;
    let first = cluster.runner_pod(&[]).await?;
    let first_uid = first.uid().unwrap_or_default();
    cluster
        .wait(
            RUN_TIMEOUT,
            "e2e-pass#1 checkpointed in Monitor with its pod",
            async || {
                let status = cluster.world.status().await?;
                let cp = &status["chaosRunner"]["attempts"]["e2e-pass#1"];
                Ok((cp["phase"] == "Monitor" && cp["pod"].is_string()).then_some(()))
            },
        )
        .await?;
    let deleted_at = Instant::now();
    cluster
        .pods()
        .delete(RUNNER_POD, &DeleteParams::default())
        .await
        .context("deleting the runner pod")?;

    let code = cluster
        .node_event(
            EXIT_TIMEOUT,
            "the first runner's exit",
            &first_uid,
            |k| match k {
                NodeEventKind::Exited { code, .. } => Some(*code),
                _ => None,
            },
        )
        .await?;
    eprintln!(
        "first runner exited {code} {:?} after the delete",
        deleted_at.elapsed()
    );
    cluster
        .ensure(code == EXIT_SUSPENDED, || {
            format!("the first runner exited {code}, expected {EXIT_SUSPENDED}")
        })
        .await?;
    let first_output = cluster.output_of(&first_uid);
    cluster
        .ensure(first_output.contains("suspending the run"), || {
            "the first runner does not say it suspends the run".to_owned()
        })
        .await?;
    let first_events = cluster.node.events_of_uid(&first_uid);
    cluster
        .ensure(
            !first_events.iter().any(|e| e.kind == NodeEventKind::Killed),
            || "the first runner outlived the grace period (SIGKILL)".to_owned(),
        )
        .await?;

    // Its final status written, then deleted with grace 0: only then can the operator's
    // new pod of the same name be created.
    cluster
        .node_event(POD_TIMEOUT, "the first pod's removal", &first_uid, |k| {
            (*k == NodeEventKind::Removed).then_some(())
        })
        .await?;
    let second = cluster.runner_pod(std::slice::from_ref(&first_uid)).await?;
    let second_uid = second.uid().unwrap_or_default();
    eprintln!("new runner pod {:?} after the delete", deleted_at.elapsed());
    let status = cluster.engine_status_becomes("completed").await?;
    eprintln!(
        "op-drain: engine completed {:?} after the start",
        cluster.started.elapsed()
    );
    let second_output = cluster.output_of(&second_uid);
    cluster
        .ensure(
            second_output.contains("resuming from the checkpoint"),
            || "the second runner does not say it resumes from the checkpoint".to_owned(),
        )
        .await?;
    cluster
        .expect_completed(&status, &[("e2e-pass", "Pass"), ("e2e-fail", "Fail")])
        .await?;
    for name in ["e2e-pass", "e2e-fail"] {
        let entry = entry(&status, name)?;
        ensure!(
            entry["status"] != "Forcefully Aborted" && entry["verdict"] != "Stopped",
            "the drain read as an abort: {entry}"
        );
    }
    cluster
        .explained(cluster.world.expect_one_job_per_attempt(2))
        .await?;
    // Exactly two runner pods, one process each: the drained one and the operator's new one.
    let started: BTreeSet<String> = cluster
        .node
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, NodeEventKind::Started { .. }))
        .map(|e| e.uid)
        .collect();
    cluster
        .ensure(
            started == BTreeSet::from([first_uid.clone(), second_uid.clone()])
                && cluster.starts_of(&second_uid).len() == 1,
            || "expected two runner pods with one process each".to_owned(),
        )
        .await?;
    cluster.expect_all_gone().await?;
    cluster.expect_clean_logs().await?;
    eprintln!("op-drain: done in {:?}", cluster.started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// c. An abort: engineState stop mid-run
// ---------------------------------------------------------------------------------------------

/// `spec.engineState: stop` while the first experiment's pod hangs and the second has not
/// started: the operator deletes the chaos pods and Jobs (the runner pod too), the runner
/// aborts and exits before its grace period ends, the operator marks the engine stopped and
/// every entry reads `Forcefully Aborted`/`Stopped`; no new runner pod is created.
#[tokio::test]
async fn engine_state_stop_mid_run_aborts_every_experiment() -> anyhow::Result<()> {
    let cluster = Cluster::new(
        "op-abort",
        engine(vec![
            experiment("e2e-pass", &[("PODSIM_BEHAVIOUR", "hang")]),
            experiment("e2e-fail", &[("PODSIM_SECONDS", "1")]),
        ]),
    )
    .await?;
    let pod = cluster.runner_pod(&[]).await?;
    let uid = pod.uid().unwrap_or_default();
    cluster
        .wait(
            RUN_TIMEOUT,
            "e2e-pass#1 checkpointed in Monitor with its pod",
            async || {
                let status = cluster.world.status().await?;
                let cp = &status["chaosRunner"]["attempts"]["e2e-pass#1"];
                Ok((cp["phase"] == "Monitor" && cp["pod"].is_string()).then_some(()))
            },
        )
        .await?;
    let stopped_at = Instant::now();
    cluster
        .world
        .patch_engine(json!({"spec": {"engineState": "stop"}}))
        .await?;

    let code = cluster
        .node_event(EXIT_TIMEOUT, "the runner's exit", &uid, |k| match k {
            NodeEventKind::Exited { code, .. } => Some(*code),
            _ => None,
        })
        .await?;
    eprintln!(
        "runner exited {code} {:?} after the stop",
        stopped_at.elapsed()
    );
    let events = cluster.node.events_of_uid(&uid);
    cluster
        .ensure(
            !events.iter().any(|e| e.kind == NodeEventKind::Killed),
            || "the runner outlived its grace period (SIGKILL)".to_owned(),
        )
        .await?;
    cluster
        .ensure(code == 0, || {
            format!("the aborted runner exited {code}, expected 0 (an abort is the run's end)")
        })
        .await?;
    let status = cluster.engine_status_becomes("stopped").await?;
    eprintln!("engine stopped {:?} after the stop", stopped_at.elapsed());
    for name in ["e2e-pass", "e2e-fail"] {
        let entry = entry(&status, name)?.clone();
        cluster
            .ensure(
                entry["status"] == "Forcefully Aborted" && entry["verdict"] == "Stopped",
                || format!("{name}: {entry}, expected Forcefully Aborted / Stopped"),
            )
            .await?;
    }
    let count = status["experiments"].as_array().map_or(0, Vec::len);
    ensure!(count == 2, "{count} entries: {status:#}");
    cluster
        .explained(cluster.world.wait_no_jobs_or_pods(POD_TIMEOUT).await)
        .await?;
    cluster.expect_operator_event("ChaosEngineStopped").await?;
    // The second experiment never ran; the operator does not start another runner.
    ensure!(
        cluster.played("e2e-fail").is_empty(),
        "e2e-fail was played: {:?}",
        cluster.played("e2e-fail")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runner = cluster.pods().get_opt(RUNNER_POD).await?;
    cluster
        .ensure(runner.is_none(), || {
            format!("a runner pod exists after the abort: {runner:?}")
        })
        .await?;
    let starts = cluster
        .node
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, NodeEventKind::Started { .. }))
        .count();
    cluster
        .ensure(starts == 1, || format!("{starts} runner processes started"))
        .await?;
    cluster.expect_clean_logs().await?;
    eprintln!("op-abort: done in {:?}", cluster.started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// d. A crash: the runner container dies, the same pod restarts it
// ---------------------------------------------------------------------------------------------

/// The runner process is killed (SIGKILL: an OOM kill, a crash) while the first experiment's pod
/// runs: exit 137 is not `Completed`, so the operator does nothing; the node restarts the
/// container in the same pod (`restartPolicy: OnFailure`: `restartCount` 1,
/// `lastState.terminated` 137 `Error`), the restarted runner resumes from the checkpoint, and
/// the run ends as if nothing happened: one pod played and one Job per experiment.
#[tokio::test]
async fn a_crashed_runner_container_restarts_in_the_same_pod_and_resumes() -> anyhow::Result<()> {
    let cluster = Cluster::new("op-crash", pass_and_fail("4")).await?;
    let pod = cluster.runner_pod(&[]).await?;
    let uid = pod.uid().unwrap_or_default();
    let pid = cluster
        .node_event(POD_TIMEOUT, "the runner's start", &uid, |k| match k {
            NodeEventKind::Started { pid, .. } => Some(*pid),
            _ => None,
        })
        .await?;
    cluster
        .wait(
            RUN_TIMEOUT,
            "e2e-pass#1 checkpointed in Monitor with its pod",
            async || {
                let status = cluster.world.status().await?;
                let cp = &status["chaosRunner"]["attempts"]["e2e-pass#1"];
                Ok((cp["phase"] == "Monitor" && cp["pod"].is_string()).then_some(()))
            },
        )
        .await?;
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", &pid.to_string()])
        .status()?;
    ensure!(killed.success(), "kill -s KILL {pid} failed");

    let code = cluster
        .node_event(EXIT_TIMEOUT, "the runner's exit", &uid, |k| match k {
            NodeEventKind::Exited { code, .. } => Some(*code),
            _ => None,
        })
        .await?;
    cluster
        .ensure(code == 137, || {
            format!("the killed runner exited {code}, expected 137")
        })
        .await?;
    cluster
        .node_event(EXIT_TIMEOUT, "the container's restart", &uid, |k| match k {
            NodeEventKind::Started { restart_count, .. } => (*restart_count == 1).then_some(()),
            _ => None,
        })
        .await?;
    // As a kubelet reports it: the same pod, restartCount 1, the crash in lastState.
    let pods = cluster.pods();
    let container = cluster
        .wait(
            POD_TIMEOUT,
            "restartCount 1 in the pod's status",
            async || {
                let pod = pods.get(RUNNER_POD).await?;
                ensure!(
                    pod.uid().as_deref() == Some(uid.as_str()),
                    "the runner pod was replaced"
                );
                let statuses = pod
                    .status
                    .and_then(|s| s.container_statuses)
                    .unwrap_or_default();
                Ok(statuses
                    .into_iter()
                    .find(|c| c.name == RUNNER_CONTAINER && c.restart_count == 1))
            },
        )
        .await?;
    let last = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    cluster
        .ensure(
            last.is_some_and(|t| t.exit_code == 137 && t.reason.as_deref() == Some("Error")),
            || {
                format!(
                    "lastState of the restarted container: {:?}",
                    container.last_state
                )
            },
        )
        .await?;

    let status = cluster.engine_status_becomes("completed").await?;
    eprintln!(
        "op-crash: engine completed {:?} after the start",
        cluster.started.elapsed()
    );
    let output = cluster.output_of(&uid);
    cluster
        .ensure(output.contains("resuming from the checkpoint"), || {
            "the restarted runner does not say it resumes from the checkpoint".to_owned()
        })
        .await?;
    cluster
        .expect_completed(&status, &[("e2e-pass", "Pass"), ("e2e-fail", "Fail")])
        .await?;
    cluster
        .explained(cluster.world.expect_one_job_per_attempt(2))
        .await?;
    let starts = cluster.starts_of(&uid).len();
    let pods_started: BTreeSet<String> = cluster
        .node
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, NodeEventKind::Started { .. }))
        .map(|e| e.uid)
        .collect();
    cluster
        .ensure(starts == 2 && pods_started.len() == 1, || {
            "expected one runner pod with two processes".to_owned()
        })
        .await?;
    cluster.expect_all_gone().await?;
    cluster.expect_clean_logs().await?;
    eprintln!("op-crash: done in {:?}", cluster.started.elapsed());
    Ok(())
}
