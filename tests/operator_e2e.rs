//! The runner under upstream's chaos-operator, end to end on the local control plane: the real
//! operator (`tests/cluster/operator build`, started by [`OperatorProcess`] under its own
//! ServiceAccount) creates `<engine>-runner`, the [`Node`] runs that pod's container as this
//! project's `chaos-runner` binary and reports its status as a kubelet would, and the pod
//! simulator plays the experiment pods. Nothing here starts a runner by hand: every runner is
//! the one the operator asked for, with the env the operator gave it, and every test proves it
//! from the apiserver's audit log ([`Cluster::expect_operator_drove`]).
//!
//! The engines name the ServiceAccount of the Role Litmus users already have
//! (`fixtures/rbac/litmus-user-role.yaml`: no watch, no secrets, no `update
//! chaosengines/finalizers`), so the runner polls and sets no `blockOwnerDeletion`; one test runs
//! under `deploy/rbac.yaml`'s Role (watch mode, `blockOwnerDeletion` set) for comparison.
//!
//! Each test has its own namespace with both Roles, `fixtures/e2e/experiments.yaml`, the
//! operator's RBAC (`fixtures/operator/rbac.yaml`) and an operator that watches only that
//! namespace. Needs `--features e2e`, a plane (`eval "$(tests/cluster/plane env)"`) and the
//! operator built (`bash tests/cluster/operator build`; `bash tests/test.sh` does both).
//! Lines starting `figure:` on stderr are the timings the README quotes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use common::node::{Node, NodeConfig, NodeEvent, NodeEventKind, RUNNER_CONTAINER};
use common::operator::{
    ENGINE_FINALIZER, OPERATOR_SERVICE_ACCOUNT, OperatorOptions, OperatorProcess, RUNNER_IMAGE,
};
use common::run::{Suite, World, chaos_engine, engine_experiment, entry};
use common::{AuditCursor, LitmusKind, wait_for_deletion, wait_until};
use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use podsim::SimEventKind;
use serde_json::{Value, json};

/// The engine of every test (each test has its own namespace).
const ENGINE: &str = "e2e";
/// The pod the operator creates for it, and `source.component` of the runner's Events.
const RUNNER_POD: &str = "e2e-runner";
/// `fixtures/rbac/litmus-user-role.yaml`'s ServiceAccount, the Role Litmus users have: the
/// engine's `chaosServiceAccount` in most tests, so the runner pod and the experiment pods run
/// as it.
const SA_USER: &str = "litmus-user-sa";
/// `deploy/rbac.yaml`'s ServiceAccount (watch, `update chaosengines/finalizers`).
const SA_DEPLOY: &str = "chaos-runner";
/// `source.component` of the operator's Events.
const OPERATOR_COMPONENT: &str = "chaos-operator";
/// A whole run under the operator (it adds its reconciles and, on a drain, a second pod).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// The operator creating (or re-creating) the runner pod.
const POD_TIMEOUT: Duration = Duration::from_secs(30);
/// A runner asked to stop by its pod's deletion (SIGTERM): well within the pod's 30 s grace.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Events are sent in the background (the operator's recorder) or just before the exit.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Exit code of a runner suspended by SIGTERM with the engine active.
const EXIT_SUSPENDED: i32 = 143;
/// Exit code of a runner killed by SIGKILL.
const EXIT_KILLED: i32 = 137;
/// What the runner emits on the way of every experiment that runs to a verdict.
const RUN_REASONS: &[&str] = &[
    "ExperimentFound",
    "ExperimentDependencyCheck",
    "ExperimentJobCreate",
    "ExperimentPodCompleted",
    "ChaosResultRead",
    "ExperimentJobCleanUp",
    "ExperimentConcluded",
];

static SUITE: Suite = Suite {
    engine: ENGINE,
    component: RUNNER_POD,
    chaos_service_account: SA_USER,
    fixtures: &[
        "deploy/rbac.yaml",
        "fixtures/rbac/litmus-user-role.yaml",
        "fixtures/e2e/experiments.yaml",
    ],
};

/// An engine experiment entry whose env overrides the experiment's (PODSIM_* among them).
fn experiment(name: &str, env: &[(&str, &str)]) -> Value {
    engine_experiment(name, env)
}

/// The ChaosEngine of a test: active, `chaosServiceAccount` `sa`, policy delete, no appinfo
/// (TARGETS absent), no runner image (the operator's CHAOS_RUNNER_IMAGE applies).
fn engine(sa: &str, experiments: Vec<Value>) -> Value {
    chaos_engine(ENGINE, sa, "delete", &[], experiments)
}

/// `e2e-pass` passes, `e2e-fail` fails, each pod running `seconds`.
fn pass_and_fail(sa: &str, seconds: &str) -> Value {
    engine(
        sa,
        vec![
            experiment("e2e-pass", &[("PODSIM_SECONDS", seconds)]),
            experiment("e2e-fail", &[("PODSIM_SECONDS", seconds)]),
        ],
    )
}

/// `e2e-pass` hangs (its pod runs until deleted), `e2e-fail` would run 1 s after it.
fn hang_then_fail(sa: &str) -> Value {
    engine(
        sa,
        vec![
            experiment("e2e-pass", &[("PODSIM_BEHAVIOUR", "hang")]),
            experiment("e2e-fail", &[("PODSIM_SECONDS", "1")]),
        ],
    )
}

/// Prints a timing the README quotes, in seconds.
fn figure(test: &str, what: &str, from: Instant, to: Instant) {
    eprintln!(
        "figure: {test}: {what}: {:.2} s",
        to.saturating_duration_since(from).as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Recording watches: what the engine and the Jobs went through, not only where they ended
// ---------------------------------------------------------------------------------------------

/// One object as a watch delivered it.
#[derive(Debug, Clone)]
struct Seen<K> {
    at: Instant,
    object: K,
    /// The watch's delete event (the object as it was last).
    deleted: bool,
}

/// Every version of the objects a watch delivers, in order, with when each arrived. The watch
/// stops when this is dropped.
struct Recorded<K> {
    seen: Arc<Mutex<Vec<Seen<K>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Drop for Recorded<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> Recorded<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    fn start(api: Api<K>, config: watcher::Config) -> Recorded<K> {
        let seen: Arc<Mutex<Vec<Seen<K>>>> = Arc::default();
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = stream.next().await {
                let (object, deleted) = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                    Ok(watcher::Event::Delete(o)) => (o, true),
                    _ => continue,
                };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
                    at: Instant::now(),
                    object,
                    deleted,
                });
            }
        });
        Recorded { seen, task }
    }

    fn all(&self) -> Vec<Seen<K>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first version of each object (by uid), in the order they appeared.
    fn first_of_each(&self) -> Vec<K> {
        let mut uids = BTreeSet::new();
        self.all()
            .into_iter()
            .filter(|s| uids.insert(s.object.uid().unwrap_or_default()))
            .map(|s| s.object)
            .collect()
    }
}

/// `status.engineStatus` of an engine copy.
fn engine_status_of(engine: &DynamicObject) -> &str {
    engine.data["status"]["engineStatus"].as_str().unwrap_or("")
}

/// The number of `status.experiments` entries of an engine copy.
fn entries_of(engine: &DynamicObject) -> usize {
    engine.data["status"]["experiments"]
        .as_array()
        .map_or(0, Vec::len)
}

/// The run id in the engine's `chaos-runner.io/run` annotation.
fn audit_run_id(engine: &DynamicObject) -> Option<String> {
    let raw = engine.annotations().get("chaos-runner.io/run")?;
    let trail: Value = serde_json::from_str(raw).ok()?;
    trail["runId"].as_str().map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// The cluster of one test
// ---------------------------------------------------------------------------------------------

/// One test's cluster: the operator, the node, watches recording the engine and the Jobs, and
/// the world (namespace, engine, podsim, Jobs watch). Dropped in this order: the operator stops
/// (and its finalizer leaves the engine), the node kills its processes, the watches stop, then
/// the namespace goes.
struct Cluster {
    operator: OperatorProcess,
    node: Node,
    engine_copies: Recorded<DynamicObject>,
    jobs: Recorded<Job>,
    world: World,
    /// The audit log from before the namespace existed.
    audit: Option<AuditCursor>,
    /// The engine's `chaosServiceAccount`: the runner's identity.
    sa: &'static str,
    /// The runner pods checked against the operator's contract ([`check_runner_pod`]).
    checked_pods: Mutex<BTreeSet<String>>,
    started: Instant,
}

impl Cluster {
    async fn new(prefix: &str, sa: &'static str, engine: Value) -> anyhow::Result<Cluster> {
        let started = Instant::now();
        let audit = AuditCursor::now()?;
        let world = World::new(&SUITE, prefix, sa, engine).await?;
        let engine_copies = Recorded::start(
            world.ns.litmus_api(LitmusKind::ChaosEngine),
            watcher::Config::default().fields(&format!("metadata.name={ENGINE}")),
        );
        let jobs = Recorded::start(world.ns.api::<Job>(), watcher::Config::default());
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
            engine_copies,
            jobs,
            world,
            audit,
            sa,
            checked_pods: Mutex::default(),
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

    /// The runner pod once it exists with a uid other than every one in `not`, checked against
    /// the operator's contract ([`check_runner_pod`]).
    async fn runner_pod(&self, not: &[String]) -> anyhow::Result<Pod> {
        let pods = self.pods();
        let pod = self
            .wait(POD_TIMEOUT, "the operator's runner pod", async || {
                Ok(pods
                    .get_opt(RUNNER_POD)
                    .await?
                    .filter(|p| !not.contains(&p.uid().unwrap_or_default())))
            })
            .await?;
        check_runner_pod(self, &pod).await?;
        self.checked_pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pod.uid().unwrap_or_default());
        Ok(pod)
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

    /// The exit code of the process of pod `uid` that ends next (the `nth` exit, 0-based).
    async fn exit_code(&self, uid: &str, nth: usize, timeout: Duration) -> anyhow::Result<i32> {
        let found = self
            .node
            .wait_for_event(timeout, |_| self.exits_of(uid).len() > nth)
            .await;
        match found.and_then(|_| self.exits_of(uid).get(nth).copied()) {
            Some(code) => Ok(code),
            None => Err(anyhow!(
                "timed out after {timeout:?} waiting for the node: exit {nth} of pod {uid}\n{}",
                self.diagnostics().await
            )),
        }
    }

    /// When the node first heard of pod `uid` (it binds a pod as soon as it appears, so this
    /// is within milliseconds of the operator's create).
    fn appeared_at(&self, uid: &str) -> Option<Instant> {
        self.node.events_of_uid(uid).first().map(|e| e.at)
    }

    /// Waits until the operator has written `status.engineStatus: <wanted>`; the status, and
    /// when the engine watch delivered the first copy after `since` whose status became
    /// `wanted` (the copy before it had another: a copy that merely keeps an earlier run's
    /// status does not count).
    async fn engine_status_becomes(
        &self,
        wanted: &str,
        since: Instant,
    ) -> anyhow::Result<(Value, Instant)> {
        let at = self
            .wait(
                RUN_TIMEOUT,
                &format!("status.engineStatus {wanted}"),
                async || {
                    let copies = self.engine_copies.all();
                    Ok(copies.iter().enumerate().find_map(|(i, s)| {
                        let before = i
                            .checked_sub(1)
                            .map(|j| engine_status_of(&copies[j].object));
                        let became = engine_status_of(&s.object) == wanted
                            && before.is_none_or(|b| b != wanted);
                        (s.at >= since && became && !s.deleted).then_some(s.at)
                    }))
                },
            )
            .await?;
        let status = self.world.status().await?;
        self.ensure(status["engineStatus"] == wanted, || {
            format!("status.engineStatus moved on from {wanted}: {status:#}")
        })
        .await?;
        Ok((status, at))
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

    /// The Events on the engine from `component` (the runner pod's name or `chaos-operator`).
    async fn events_from(&self, component: &str) -> anyhow::Result<Vec<Event>> {
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
                    .is_some_and(|c| c == component)
            })
            .collect())
    }

    /// Reason → how often `component` reported it (the sum of the Events' counts).
    async fn reasons_from(&self, component: &str) -> anyhow::Result<BTreeMap<String, i32>> {
        let mut reasons = BTreeMap::new();
        for event in self.events_from(component).await? {
            let reason = event.reason.clone().unwrap_or_default();
            *reasons.entry(reason).or_insert(0) += event.count.unwrap_or(1);
        }
        Ok(reasons)
    }

    /// Waits until `component` has reported each `(reason, at least n times)`; then checks it
    /// reported none of `absent`. The reasons.
    async fn expect_reasons(
        &self,
        component: &str,
        wanted: &[(&str, i32)],
        absent: &[&str],
    ) -> anyhow::Result<BTreeMap<String, i32>> {
        let mut last = BTreeMap::new();
        let outcome = wait_until(
            EVENT_TIMEOUT,
            &format!("Events from {component}: {wanted:?}"),
            async || {
                last = self.reasons_from(component).await?;
                let all = wanted
                    .iter()
                    .all(|(r, n)| last.get(*r).is_some_and(|c| c >= n));
                Ok(all.then(|| last.clone()))
            },
        )
        .await;
        let reasons = match outcome {
            Ok(reasons) => reasons,
            Err(err) => {
                return Err(err.context(format!("{component} reported {last:?}")));
            }
        };
        let unwanted: Vec<&&str> = absent
            .iter()
            .filter(|r| reasons.contains_key(**r))
            .collect();
        self.ensure(unwanted.is_empty(), || {
            format!("{component} reported {unwanted:?}; its reasons: {reasons:?}")
        })
        .await?;
        Ok(reasons)
    }

    /// The runner's `ExperimentJobCreate` Events name every one of `jobs`.
    async fn expect_job_create_events(&self, jobs: &BTreeSet<String>) -> anyhow::Result<()> {
        let events = self.events_from(RUNNER_POD).await?;
        let messages: Vec<&str> = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("ExperimentJobCreate"))
            .filter_map(|e| e.message.as_deref())
            .collect();
        for job in jobs {
            let named = messages.iter().any(|m| m.contains(job.as_str()));
            self.ensure(named, || {
                format!("no ExperimentJobCreate Event names Job {job}: {messages:?}")
            })
            .await?;
        }
        Ok(())
    }

    /// The pods podsim played (it reported them Running), by Job (`<job>-xxxxx`).
    fn played_by_job(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_job: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for event in self.world.sim.events() {
            if !matches!(event.kind, SimEventKind::Running) {
                continue;
            }
            let job = event
                .pod
                .rsplit_once('-')
                .map_or(event.pod.as_str(), |(job, _)| job);
            by_job
                .entry(job.to_owned())
                .or_default()
                .insert(event.pod.clone());
        }
        by_job
    }

    /// The pods podsim played for experiment `exp` (Job `<exp>-xxxxxx`).
    fn played(&self, exp: &str) -> BTreeSet<String> {
        let prefix = format!("{exp}-");
        self.played_by_job()
            .into_iter()
            .filter(|(job, _)| job.starts_with(&prefix))
            .flat_map(|(_, pods)| pods)
            .collect()
    }

    /// Each of `experiments` had exactly one pod played, of one of `jobs` (its chaos ran once
    /// in this run); entry of each `Completed` with `verdict` and that pod.
    async fn expect_completed_in(
        &self,
        status: &Value,
        expected: &[(&str, &str)],
        jobs: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        let by_job = self.played_by_job();
        let mut rows = Vec::new();
        for (name, verdict) in expected {
            let prefix = format!("{name}-");
            let played: Vec<&String> = jobs
                .iter()
                .filter(|j| j.starts_with(&prefix))
                .flat_map(|j| by_job.get(j).into_iter().flatten())
                .collect();
            self.ensure(played.len() == 1, || {
                format!(
                    "{name}: podsim played {played:?} for Jobs {jobs:?}, expected exactly one pod"
                )
            })
            .await?;
            rows.push((*name, played[0].clone(), *verdict));
        }
        let rows: Vec<(&str, &str, &str, &str)> = rows
            .iter()
            .map(|(name, pod, verdict)| (*name, pod.as_str(), "Completed", *verdict))
            .collect();
        let checked = self.world.check_entries(status, &rows);
        self.explained(checked).await
    }

    /// [`Cluster::expect_completed_in`] with every Job of the test.
    async fn expect_completed(
        &self,
        status: &Value,
        expected: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let jobs = self.job_names();
        self.expect_completed_in(status, expected, &jobs).await
    }

    /// The names of every Job created in the namespace so far.
    fn job_names(&self) -> BTreeSet<String> {
        self.jobs
            .first_of_each()
            .iter()
            .map(|j| j.name_any())
            .collect()
    }

    /// Every Job's ownerReference: the engine, as controller; `blockOwnerDeletion` only where
    /// the runner's Role grants `update chaosengines/finalizers` (deploy/'s, not the users').
    async fn expect_job_owners(&self) -> anyhow::Result<()> {
        let blocks = self.sa == SA_DEPLOY;
        let jobs = self.jobs.first_of_each();
        self.ensure(!jobs.is_empty(), || "no Job was created".to_owned())
            .await?;
        for job in jobs {
            let owners = job.owner_references();
            let ok = owners.len() == 1
                && owners[0].kind == "ChaosEngine"
                && owners[0].uid == self.world.uid
                && owners[0].controller == Some(true)
                && owners[0].block_owner_deletion.unwrap_or(false) == blocks;
            self.ensure(ok, || {
                format!(
                    "Job {}: ownerReferences {owners:?}, want the engine as controller with \
                     blockOwnerDeletion {blocks} (ServiceAccount {})",
                    job.name_any(),
                    self.sa
                )
            })
            .await?;
        }
        Ok(())
    }

    /// Processes the node started for pod `uid`.
    fn starts_of(&self, uid: &str) -> Vec<NodeEvent> {
        self.node
            .events_of_uid(uid)
            .into_iter()
            .filter(|e| matches!(e.kind, NodeEventKind::Started { .. }))
            .collect()
    }

    /// The exit codes of the processes of pod `uid`, in order.
    fn exits_of(&self, uid: &str) -> Vec<i32> {
        self.node
            .events_of_uid(uid)
            .into_iter()
            .filter_map(|e| match e.kind {
                NodeEventKind::Exited { code, .. } => Some(code),
                _ => None,
            })
            .collect()
    }

    /// The runner pods the node ran (uids, in start order).
    fn ran(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.node
            .events()
            .into_iter()
            .filter(|e| matches!(e.kind, NodeEventKind::Started { .. }))
            .filter(|e| seen.insert(e.uid.clone()))
            .map(|e| e.uid)
            .collect()
    }

    /// The node ran exactly these runner pods, in this order, their processes exiting with
    /// these codes, none killed at the end of a grace period.
    async fn expect_runner_exits(&self, expected: &[(&str, &[i32])]) -> anyhow::Result<()> {
        let ran = self.ran();
        let got: Vec<(String, Vec<i32>)> = ran
            .iter()
            .map(|uid| (uid.clone(), self.exits_of(uid)))
            .collect();
        let want: Vec<(String, Vec<i32>)> = expected
            .iter()
            .map(|(uid, codes)| ((*uid).to_owned(), codes.to_vec()))
            .collect();
        self.ensure(got == want, || {
            format!("runner pods and exit codes {got:?}, expected {want:?}")
        })
        .await?;
        let killed = self
            .node
            .events()
            .into_iter()
            .any(|e| e.kind == NodeEventKind::Killed);
        self.ensure(!killed, || {
            "a runner outlived its grace period (SIGKILL)".to_owned()
        })
        .await
    }

    /// The operator drove every runner: each pod the node ran was checked against the
    /// operator's contract (labels, ownerReference, env), the audit log shows the operator's
    /// ServiceAccount — and nobody else — creating `<engine>-runner` once per pod the node ran,
    /// and every request of the runner's ServiceAccount came with a token bound to one of those
    /// pods (so no runner was started by the test, or with any other credentials).
    async fn expect_operator_drove(&self) -> anyhow::Result<()> {
        let ran: BTreeSet<String> = self.ran().into_iter().collect();
        let checked = self
            .checked_pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.ensure(!ran.is_empty() && ran.is_subset(&checked), || {
            format!("runner pods run {ran:?}, checked against the contract {checked:?}")
        })
        .await?;
        let Some(audit) = &self.audit else {
            eprintln!("no audit log on this plane: the runners' origin is checked by pod only");
            return Ok(());
        };
        let ns = self.world.ns.name();
        let operator = format!("system:serviceaccount:{ns}:{OPERATOR_SERVICE_ACCOUNT}");
        let runner = format!("system:serviceaccount:{ns}:{}", self.sa);
        let requests = audit.requests()?;
        let creators: Vec<&str> = requests
            .iter()
            .filter(|r| {
                let object = &r["objectRef"];
                r["verb"] == "create"
                    && object["resource"] == "pods"
                    && object["subresource"].is_null()
                    && object["namespace"] == ns
                    && object["name"] == RUNNER_POD
                    && r["responseStatus"]["code"] == 201
            })
            .map(|r| r["user"]["username"].as_str().unwrap_or("?"))
            .collect();
        self.ensure(
            creators.len() == ran.len() && creators.iter().all(|u| *u == operator),
            || {
                format!(
                    "{RUNNER_POD} created by {creators:?}; the node ran {} pods; want each \
                     created by {operator}",
                    ran.len()
                )
            },
        )
        .await?;
        let by_runner: Vec<&Value> = requests
            .iter()
            .filter(|r| r["user"]["username"] == runner)
            .collect();
        self.ensure(!by_runner.is_empty(), || {
            format!("no request by {runner} in the audit log")
        })
        .await?;
        for request in by_runner {
            let extra = &request["user"]["extra"];
            let pod_uid = extra["authentication.kubernetes.io/pod-uid"][0].as_str();
            let pod_name = extra["authentication.kubernetes.io/pod-name"][0].as_str();
            let from_runner_pod =
                pod_name == Some(RUNNER_POD) && pod_uid.is_some_and(|u| ran.contains(u));
            self.ensure(from_runner_pod, || {
                format!(
                    "{} {} by {runner} did not come from a runner pod the operator created \
                     (token bound to {pod_name:?} {pod_uid:?}; pods run: {ran:?})",
                    request["verb"], request["requestURI"]
                )
            })
            .await?;
        }
        Ok(())
    }

    /// The runner said it runs in poll mode (the users' Role) or watch mode (deploy/'s).
    async fn expect_mode(&self, uid: &str) -> anyhow::Result<()> {
        let mode = if self.sa == SA_DEPLOY {
            "watch mode"
        } else {
            "poll mode"
        };
        let output = self.output_of(uid);
        self.ensure(output.contains(mode), || {
            format!("the runner of pod {uid} does not say it runs in {mode}")
        })
        .await
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

    /// Waits until `e2e-pass#1` is checkpointed in Monitor with its pod.
    async fn first_experiment_in_monitor(&self) -> anyhow::Result<()> {
        self.wait(
            RUN_TIMEOUT,
            "e2e-pass#1 checkpointed in Monitor with its pod",
            async || {
                let status = self.world.status().await?;
                let cp = &status["chaosRunner"]["attempts"]["e2e-pass#1"];
                Ok((cp["phase"] == "Monitor" && cp["pod"].is_string()).then_some(()))
            },
        )
        .await
    }

    /// Things every test ends with: the operator ran under its RBAC without a refusal, podsim
    /// never touched the runner pod, no runner panicked, the operator drove every runner.
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
        self.expect_operator_drove().await
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
    let sa = cluster.sa;
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
            labels.get("app.kubernetes.io/part-of").map(String::as_str) == Some("litmus"),
            "label app.kubernetes.io/part-of",
        ),
        (
            owner.as_ref().is_some_and(|o| {
                o.uid == cluster.world.uid
                    && o.controller == Some(true)
                    && o.block_owner_deletion == Some(true)
                    && o.name == ENGINE
            }),
            "controller ownerReference to the engine (blockOwnerDeletion, as controller-runtime sets it)",
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
            spec.service_account_name.as_deref() == Some(sa),
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
                ("CHAOS_SVC_ACC".to_owned(), sa.to_owned()),
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
async fn launch_and_complete(prefix: &str, sa: &'static str) -> anyhow::Result<()> {
    let cluster = Cluster::new(prefix, sa, pass_and_fail(sa, "1")).await?;
    let pod = cluster.runner_pod(&[]).await?;
    let uid = pod.uid().unwrap_or_default();
    eprintln!(
        "runner pod created {:?} after the start",
        cluster.started.elapsed()
    );
    let code = cluster.exit_code(&uid, 0, RUN_TIMEOUT).await?;
    cluster
        .ensure(code == 0, || {
            format!("the runner exited {code}, expected 0")
        })
        .await?;
    let created = cluster.appeared_at(&uid).unwrap_or(cluster.started);
    let (status, completed) = cluster
        .engine_status_becomes("completed", cluster.started)
        .await?;
    figure(
        prefix,
        "operator creates the runner pod -> engine completed (two 1 s experiments)",
        created,
        completed,
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
        .expect_reasons(
            OPERATOR_COMPONENT,
            &[("ChaosEngineInitialized", 1), ("ChaosEngineCompleted", 1)],
            &["ChaosEngineStopped", "ChaosResourcesOperationFailed"],
        )
        .await?;
    let wanted: Vec<(&str, i32)> = RUN_REASONS.iter().map(|r| (*r, 2)).collect();
    cluster
        .expect_reasons(RUNNER_POD, &wanted, &["ExperimentAborted"])
        .await?;
    cluster.expect_mode(&uid).await?;

    // One runner process, never restarted; one Job per experiment, owned by the engine; then
    // nothing left: the runner deleted its Jobs (policy delete) and the operator the runner pod.
    cluster.expect_runner_exits(&[(&uid, &[0])]).await?;
    let jobs = cluster
        .explained(cluster.world.expect_one_job_per_attempt(2))
        .await?;
    cluster.expect_job_create_events(&jobs).await?;
    cluster.expect_job_owners().await?;
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
    eprintln!("{prefix}: done in {:?}", cluster.started.elapsed());
    Ok(())
}

/// Under the Role Litmus users have: poll mode, Jobs without `blockOwnerDeletion`.
#[tokio::test]
async fn the_operator_launches_the_runner_and_marks_the_engine_completed() -> anyhow::Result<()> {
    launch_and_complete("op-run", SA_USER).await
}

/// Under deploy/'s Role: watch mode, Jobs with `blockOwnerDeletion` (the plane enforces
/// `OwnerReferencesPermissionEnforcement`, so this needs `update chaosengines/finalizers`).
#[tokio::test]
async fn under_the_deploy_role_the_operator_launched_runner_watches_and_completes()
-> anyhow::Result<()> {
    launch_and_complete("op-run-watch", SA_DEPLOY).await
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
    let cluster = Cluster::new("op-drain", SA_USER, pass_and_fail(SA_USER, "6")).await?;
    let first = cluster.runner_pod(&[]).await?;
    let first_uid = first.uid().unwrap_or_default();
    cluster.first_experiment_in_monitor().await?;
    let deleted_at = Instant::now();
    cluster
        .pods()
        .delete(RUNNER_POD, &DeleteParams::default())
        .await
        .context("deleting the runner pod")?;

    let code = cluster.exit_code(&first_uid, 0, EXIT_TIMEOUT).await?;
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

    // Its final status written, then deleted with grace 0: only then can the operator's
    // new pod of the same name be created.
    cluster
        .node_event(POD_TIMEOUT, "the first pod's removal", &first_uid, |k| {
            (*k == NodeEventKind::Removed).then_some(())
        })
        .await?;
    let second = cluster.runner_pod(std::slice::from_ref(&first_uid)).await?;
    let second_uid = second.uid().unwrap_or_default();
    figure(
        "op-drain",
        "runner pod deleted (drain) -> the operator's new runner pod",
        deleted_at,
        cluster
            .appeared_at(&second_uid)
            .unwrap_or_else(Instant::now),
    );
    let (status, completed) = cluster
        .engine_status_becomes("completed", deleted_at)
        .await?;
    figure(
        "op-drain",
        "runner pod deleted (drain) -> engine completed (two 6 s experiments, drained while the first one's pod runs)",
        deleted_at,
        completed,
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
        .expect_reasons(
            OPERATOR_COMPONENT,
            &[("ChaosEngineInitialized", 1), ("ChaosEngineCompleted", 1)],
            &["ChaosEngineStopped", "ChaosResourcesOperationFailed"],
        )
        .await?;
    let wanted: Vec<(&str, i32)> = RUN_REASONS.iter().map(|r| (*r, 2)).collect();
    cluster
        .expect_reasons(RUNNER_POD, &wanted, &["ExperimentAborted"])
        .await?;
    cluster.expect_mode(&second_uid).await?;
    let jobs = cluster
        .explained(cluster.world.expect_one_job_per_attempt(2))
        .await?;
    cluster.expect_job_create_events(&jobs).await?;
    cluster.expect_job_owners().await?;
    // Exactly two runner pods, one process each: the drained one and the operator's new one.
    cluster
        .expect_runner_exits(&[(&first_uid, &[EXIT_SUSPENDED]), (&second_uid, &[0])])
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
    let cluster = Cluster::new("op-abort", SA_USER, hang_then_fail(SA_USER)).await?;
    let pod = cluster.runner_pod(&[]).await?;
    let uid = pod.uid().unwrap_or_default();
    cluster.first_experiment_in_monitor().await?;
    let stopped_at = Instant::now();
    cluster
        .world
        .patch_engine(json!({"spec": {"engineState": "stop"}}))
        .await?;

    let code = cluster.exit_code(&uid, 0, EXIT_TIMEOUT).await?;
    figure(
        "op-abort",
        "engineState stop -> runner exited",
        stopped_at,
        Instant::now(),
    );
    cluster
        .ensure(code == 0, || {
            format!("the aborted runner exited {code}, expected 0 (an abort is the run's end)")
        })
        .await?;
    let (status, stopped) = cluster.engine_status_becomes("stopped", stopped_at).await?;
    figure(
        "op-abort",
        "engineState stop -> engine stopped",
        stopped_at,
        stopped,
    );
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
    expect_aborted_by_the_operator(&cluster, &uid, "the abort").await?;
    eprintln!("op-abort: done in {:?}", cluster.started.elapsed());
    Ok(())
}

/// The end of an aborted run (stop or deletion) with one experiment started: the operator's
/// and the runner's Event reasons, the second experiment never played, one Job, no runner pod
/// started again, the runner exited 0 once, and clean logs.
async fn expect_aborted_by_the_operator(
    cluster: &Cluster,
    uid: &str,
    after: &str,
) -> anyhow::Result<()> {
    cluster
        .expect_reasons(
            OPERATOR_COMPONENT,
            &[("ChaosEngineInitialized", 1), ("ChaosEngineStopped", 1)],
            &["ChaosEngineCompleted", "ChaosResourcesOperationFailed"],
        )
        .await?;
    cluster
        .expect_reasons(
            RUNNER_POD,
            &[("ExperimentJobCreate", 1), ("ExperimentAborted", 1)],
            &["ExperimentPodCompleted", "ChaosResultRead"],
        )
        .await?;
    // The second experiment never ran; the operator does not start another runner.
    ensure!(
        cluster.played("e2e-fail").is_empty(),
        "e2e-fail was played: {:?}",
        cluster.played("e2e-fail")
    );
    cluster
        .explained(cluster.world.expect_one_job_per_attempt(1))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runner = cluster.pods().get_opt(RUNNER_POD).await?;
    cluster
        .ensure(runner.is_none(), || {
            format!("a runner pod exists after {after}: {runner:?}")
        })
        .await?;
    cluster.expect_runner_exits(&[(uid, &[0])]).await?;
    cluster.expect_clean_logs().await
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
    let cluster = Cluster::new("op-crash", SA_USER, pass_and_fail(SA_USER, "4")).await?;
    let pod = cluster.runner_pod(&[]).await?;
    let uid = pod.uid().unwrap_or_default();
    let pid = cluster
        .node_event(POD_TIMEOUT, "the runner's start", &uid, |k| match k {
            NodeEventKind::Started { pid, .. } => Some(*pid),
            _ => None,
        })
        .await?;
    cluster.first_experiment_in_monitor().await?;
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", &pid.to_string()])
        .status()?;
    ensure!(killed.success(), "kill -s KILL {pid} failed");

    let code = cluster.exit_code(&uid, 0, EXIT_TIMEOUT).await?;
    cluster
        .ensure(code == EXIT_KILLED, || {
            format!("the killed runner exited {code}, expected {EXIT_KILLED}")
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
            last.is_some_and(|t| {
                t.exit_code == EXIT_KILLED && t.reason.as_deref() == Some("Error")
            }),
            || {
                format!(
                    "lastState of the restarted container: {:?}",
                    container.last_state
                )
            },
        )
        .await?;

    let (status, _) = cluster
        .engine_status_becomes("completed", cluster.started)
        .await?;
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
        .expect_reasons(
            OPERATOR_COMPONENT,
            &[("ChaosEngineInitialized", 1), ("ChaosEngineCompleted", 1)],
            &["ChaosEngineStopped", "ChaosResourcesOperationFailed"],
        )
        .await?;
    let wanted: Vec<(&str, i32)> = RUN_REASONS.iter().map(|r| (*r, 2)).collect();
    cluster
        .expect_reasons(RUNNER_POD, &wanted, &["ExperimentAborted"])
        .await?;
    let jobs = cluster
        .explained(cluster.world.expect_one_job_per_attempt(2))
        .await?;
    cluster.expect_job_create_events(&jobs).await?;
    // One runner pod with two processes: the killed one and its restart.
    cluster
        .expect_runner_exits(&[(&uid, &[EXIT_KILLED, 0])])
        .await?;
    cluster.expect_all_gone().await?;
    cluster.expect_clean_logs().await?;
    eprintln!("op-crash: done in {:?}", cluster.started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// e. The engine deleted mid-run: the operator's finalizer path
// ---------------------------------------------------------------------------------------------

/// `kubectl delete chaosengine` while the first experiment's pod hangs and the second has not
/// started. The operator's finalizer holds the engine (deletionTimestamp set) while the
/// operator deletes every pod and Job labelled with its chaosUID — the runner pod among them:
/// the runner, on SIGTERM, reads the engine, sees it being deleted, aborts (its Job deleted,
/// entries `Forcefully Aborted`/`Stopped`) and exits 0 within a second or two. Once no chaos pod
/// is left the operator removes its finalizer and the engine goes; no Job or pod with the
/// chaosUID is left, and no new runner pod is created.
#[tokio::test]
async fn deleting_the_engine_mid_run_ends_the_run_and_the_operator_cleans_up() -> anyhow::Result<()>
{
    let cluster = Cluster::new("op-delete", SA_USER, hang_then_fail(SA_USER)).await?;
    let pod = cluster.runner_pod(&[]).await?;
    let uid = pod.uid().unwrap_or_default();
    cluster.first_experiment_in_monitor().await?;
    let engine = cluster
        .world
        .engine()
        .await?
        .ok_or_else(|| anyhow!("the engine is gone"))?;
    cluster
        .ensure(
            engine.finalizers().iter().any(|f| f == ENGINE_FINALIZER),
            || {
                format!(
                    "no operator finalizer before the delete: {:?}",
                    engine.finalizers()
                )
            },
        )
        .await?;
    let deleted_at = Instant::now();
    cluster
        .world
        .ns
        .litmus_api(LitmusKind::ChaosEngine)
        .delete(ENGINE, &DeleteParams::background())
        .await
        .context("deleting the engine")?;

    let code = cluster.exit_code(&uid, 0, EXIT_TIMEOUT).await?;
    let exited = Instant::now();
    figure(
        "op-delete",
        "engine deleted -> runner exited",
        deleted_at,
        exited,
    );
    cluster
        .ensure(code == 0, || {
            format!("the runner exited {code} after the engine's deletion, expected 0")
        })
        .await?;
    let output = cluster.output_of(&uid);
    cluster
        .ensure(
            output.contains("aborting the run") && output.contains("the ChaosEngine was deleted"),
            || "the runner does not say it aborts because the engine was deleted".to_owned(),
        )
        .await?;
    cluster
        .explained(
            wait_for_deletion(
                &cluster.world.ns.litmus_api(LitmusKind::ChaosEngine),
                ENGINE,
                POD_TIMEOUT,
            )
            .await,
        )
        .await?;
    let gone = cluster
        .engine_copies
        .all()
        .into_iter()
        .find(|s| s.deleted)
        .map_or_else(Instant::now, |s| s.at);
    figure(
        "op-delete",
        "engine deleted -> engine gone (finalizer removed)",
        deleted_at,
        gone,
    );
    cluster
        .explained(cluster.world.wait_no_jobs_or_pods(POD_TIMEOUT).await)
        .await?;

    // The engine's last copy before it went (the watch's delete event carries the copy before
    // the write that removed the finalizer): being deleted, the operator's finalizer still on,
    // both entries aborted by the runner (the unstarted one too).
    let copies = cluster.engine_copies.all();
    ensure!(
        copies.last().is_some_and(|s| s.deleted),
        "the engine watch saw no deletion"
    );
    let last = copies
        .iter()
        .rev()
        .find(|s| !s.deleted)
        .map(|s| s.object.clone())
        .ok_or_else(|| anyhow!("the engine watch saw no copy"))?;
    cluster
        .ensure(
            last.metadata.deletion_timestamp.is_some()
                && last.finalizers().iter().any(|f| f == ENGINE_FINALIZER),
            || {
                format!(
                    "the engine's last copy: deletionTimestamp {:?}, finalizers {:?}",
                    last.metadata.deletion_timestamp,
                    last.finalizers(),
                )
            },
        )
        .await?;
    let status = last.data["status"].clone();
    for name in ["e2e-pass", "e2e-fail"] {
        let entry = entry(&status, name)?.clone();
        cluster
            .ensure(
                entry["status"] == "Forcefully Aborted" && entry["verdict"] == "Stopped",
                || format!("{name}: {entry}, expected Forcefully Aborted / Stopped"),
            )
            .await?;
    }
    // The operator deleted the chaos Jobs and pods and made the engine's last write: the one
    // that took its finalizer off, so the engine went.
    if let Some(audit) = &cluster.audit {
        let ns = cluster.world.ns.name();
        let operator = format!("system:serviceaccount:{ns}:{OPERATOR_SERVICE_ACCOUNT}");
        let requests = audit.requests()?;
        let in_ns = |r: &&Value| r["objectRef"]["namespace"] == ns;
        for resource in ["jobs", "pods"] {
            let found = requests.iter().filter(in_ns).any(|r| {
                r["user"]["username"] == operator.as_str()
                    && r["verb"] == "deletecollection"
                    && r["objectRef"]["resource"] == resource
                    && r["responseStatus"]["code"] == 200
            });
            cluster
                .ensure(found, || {
                    format!("the operator did not delete the chaos {resource} (audit log)")
                })
                .await?;
        }
        let last_write = requests
            .iter()
            .filter(in_ns)
            .filter(|r| {
                r["objectRef"]["resource"] == "chaosengines"
                    && r["objectRef"]["name"] == ENGINE
                    && matches!(r["verb"].as_str(), Some("patch" | "update"))
                    && r["responseStatus"]["code"] == 200
            })
            .max_by_key(|r| r["stageTimestamp"].as_str().unwrap_or("").to_owned())
            .map(|r| r["user"]["username"].as_str().unwrap_or("?").to_owned());
        cluster
            .ensure(last_write.as_deref() == Some(operator.as_str()), || {
                format!("the engine's last write was by {last_write:?}, not the operator")
            })
            .await?;
    }
    expect_aborted_by_the_operator(&cluster, &uid, "the engine's deletion").await?;
    eprintln!("op-delete: done in {:?}", cluster.started.elapsed());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// f. A completed engine run again
// ---------------------------------------------------------------------------------------------

/// After a completed run (`engineStatus: completed`, `engineState: stop`, the runner pod
/// removed), the user sets `engineState: active` again. The operator clears
/// `status.experiments` (status `initialized`), puts its finalizer back and creates a new runner
/// pod; the new runner finds no entries, starts a new run id, creates new Jobs (other names than
/// the first run's: the run id is part of them) and ends completed with the right verdicts.
#[tokio::test]
async fn a_completed_engine_set_active_again_runs_again_with_new_jobs() -> anyhow::Result<()> {
    let cluster = Cluster::new("op-rerun", SA_USER, pass_and_fail(SA_USER, "1")).await?;
    let first = cluster.runner_pod(&[]).await?;
    let first_uid = first.uid().unwrap_or_default();
    let (status, _) = cluster
        .engine_status_becomes("completed", cluster.started)
        .await?;
    cluster
        .expect_completed(&status, &[("e2e-pass", "Pass"), ("e2e-fail", "Fail")])
        .await?;
    let state = cluster.engine_state().await?;
    cluster
        .ensure(state == "stop", || {
            format!("spec.engineState is {state}, expected stop")
        })
        .await?;
    // The user looks again once the runner pod is gone (policy delete).
    cluster.expect_all_gone().await?;
    let first_jobs = cluster
        .explained(cluster.world.expect_one_job_per_attempt(2))
        .await?;
    let engine = cluster
        .world
        .engine()
        .await?
        .ok_or_else(|| anyhow!("the engine is gone"))?;
    let first_run = audit_run_id(&engine)
        .ok_or_else(|| anyhow!("no run id in the audit annotation after the first run"))?;

    let reactivated_at = Instant::now();
    let patched = cluster
        .world
        .ns
        .litmus_api(LitmusKind::ChaosEngine)
        .patch(
            ENGINE,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"engineState": "active"}})),
        )
        .await
        .context("setting engineState active again")?;
    let patched_version = patched.resource_version().unwrap_or_default();

    let second = cluster.runner_pod(std::slice::from_ref(&first_uid)).await?;
    let second_uid = second.uid().unwrap_or_default();
    let code = cluster.exit_code(&second_uid, 0, RUN_TIMEOUT).await?;
    cluster
        .ensure(code == 0, || {
            format!("the second runner exited {code}, expected 0")
        })
        .await?;
    let (status, completed) = cluster
        .engine_status_becomes("completed", reactivated_at)
        .await?;
    figure(
        "op-rerun",
        "engineState active again -> engine completed (two 1 s experiments)",
        reactivated_at,
        completed,
    );

    // What the engine went through after the patch: the operator's reset (initialized, no
    // entries) before the new runner's first entries.
    // From the patched copy on (or, should the watch have relisted past it, from the first
    // copy delivered after the patch was sent).
    let copies = cluster.engine_copies.all();
    let from = copies
        .iter()
        .position(|s| s.object.resource_version().as_deref() == Some(patched_version.as_str()))
        .or_else(|| copies.iter().position(|s| s.at >= reactivated_at))
        .unwrap_or(copies.len());
    let after: Vec<&DynamicObject> = copies[from..].iter().map(|s| &s.object).collect();
    let trace: Vec<(String, usize)> = after
        .iter()
        .map(|o| (engine_status_of(o).to_owned(), entries_of(o)))
        .collect();
    let reset = trace
        .iter()
        .position(|(status, entries)| status == "initialized" && *entries == 0);
    let refilled = reset.is_some_and(|r| {
        trace[r..]
            .iter()
            .any(|(status, entries)| status == "completed" && *entries == 2)
    });
    cluster
        .ensure(refilled, || {
            format!(
                "the engine after engineState active (engineStatus, entries): {trace:?}; \
                 expected the operator's reset (initialized, 0 entries), then the new run's \
                 entries and completed"
            )
        })
        .await?;

    let second_output = cluster.output_of(&second_uid);
    let engine = cluster
        .world
        .engine()
        .await?
        .ok_or_else(|| anyhow!("the engine is gone"))?;
    let second_run = audit_run_id(&engine).unwrap_or_default();
    cluster
        .ensure(
            second_output.contains("starting a new run")
                && second_output.contains(&second_run)
                && !second_output.contains("resuming")
                && second_run != first_run,
            || {
                format!(
                    "the second runner does not start a new run: run ids {first_run} then \
                     {second_run}"
                )
            },
        )
        .await?;
    let all_jobs = cluster
        .explained(cluster.world.expect_one_job_per_attempt(4))
        .await?;
    let second_jobs: BTreeSet<String> = all_jobs.difference(&first_jobs).cloned().collect();
    cluster
        .ensure(second_jobs.len() == 2, || {
            format!("Jobs of the first run {first_jobs:?}, of both {all_jobs:?}")
        })
        .await?;
    cluster
        .expect_completed_in(
            &status,
            &[("e2e-pass", "Pass"), ("e2e-fail", "Fail")],
            &second_jobs,
        )
        .await?;
    cluster
        .expect_reasons(
            OPERATOR_COMPONENT,
            &[("ChaosEngineInitialized", 2), ("ChaosEngineCompleted", 2)],
            &["ChaosEngineStopped", "ChaosResourcesOperationFailed"],
        )
        .await?;
    let wanted: Vec<(&str, i32)> = RUN_REASONS.iter().map(|r| (*r, 4)).collect();
    cluster
        .expect_reasons(RUNNER_POD, &wanted, &["ExperimentAborted"])
        .await?;
    cluster.expect_job_create_events(&all_jobs).await?;
    cluster.expect_job_owners().await?;
    cluster
        .expect_runner_exits(&[(&first_uid, &[0]), (&second_uid, &[0])])
        .await?;
    cluster.expect_all_gone().await?;
    cluster.expect_clean_logs().await?;
    eprintln!("op-rerun: done in {:?}", cluster.started.elapsed());
    Ok(())
}
