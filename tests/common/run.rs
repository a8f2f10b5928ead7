//! The world of one end-to-end run of the runner binary, shared by `runner_e2e` and
//! `batch_e2e`: a namespace with the suite's fixtures, one ChaosEngine, the pod simulator, the
//! runner's ServiceAccount kubeconfig and a watch of every Job; plus the checks both suites make
//! on what a run leaves behind (exit, status entries, audit trail, Events, Jobs created).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use podsim::SimulatorHandle;
use serde_json::{Value, json};

use super::{
    AuditCursor, LitmusKind, RunnerProcess, RunnerSpec, Signal, TestNamespace, engine_status,
    jobs_by_chaos_uid, pods_by_chaos_uid, wait_until,
};

/// A whole run of the runner, however it ends.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// The brief's bound for an abort: Jobs and pods gone, final status, exit.
pub const ABORT_BOUND: Duration = Duration::from_secs(5);

/// An engine's `spec.experiments` entry whose env overrides the experiment's (the simulator's
/// `PODSIM_*` among them).
pub fn engine_experiment(name: &str, env: &[(&str, &str)]) -> Value {
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    json!({"name": name, "spec": {"components": {"env": env}}})
}

/// A ChaosEngine `name` of the tests: active, experiment pods running as `service_account`,
/// `policy` as its `jobCleanUpPolicy`, plan `annotations`, no appinfo (TARGETS absent), no runner
/// image.
pub fn chaos_engine(
    name: &str,
    service_account: &str,
    policy: &str,
    annotations: &[(&str, &str)],
    experiments: Vec<Value>,
) -> Value {
    let mut metadata = json!({"name": name});
    if !annotations.is_empty() {
        let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        metadata["annotations"] = json!(annotations);
    }
    json!({
        "apiVersion": "litmuschaos.io/v1alpha1",
        "kind": "ChaosEngine",
        "metadata": metadata,
        "spec": {
            "engineState": "active",
            "chaosServiceAccount": service_account,
            "jobCleanUpPolicy": policy,
            "experiments": experiments,
        }
    })
}

/// What a test suite's worlds have in common.
#[derive(Debug)]
pub struct Suite {
    /// `metadata.name` of the engine every test applies (each test has its own namespace).
    pub engine: &'static str,
    /// `source.component` of the runner's Events and `runner` of its entries.
    pub component: &'static str,
    /// `CHAOS_SVC_ACC`: the engine's `chaosServiceAccount`, which experiment pods run as.
    pub chaos_service_account: &'static str,
    /// YAML files applied into the namespace, in order, before the engine.
    pub fixtures: &'static [&'static str],
}

/// Every Job that existed in the namespace while the test ran (uid → name), seen by a watch,
/// so "one Job per attempt" is checked even for Jobs that came and went between two looks.
#[derive(Clone, Default)]
pub struct JobsSeen(Arc<Mutex<BTreeMap<String, String>>>);

impl JobsSeen {
    /// Starts watching `api`; the task runs until aborted.
    pub fn start(api: Api<Job>) -> (JobsSeen, tokio::task::JoinHandle<()>) {
        let seen = JobsSeen::default();
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(event) = stream.next().await {
                let job = match event {
                    Ok(
                        watcher::Event::Apply(job)
                        | watcher::Event::InitApply(job)
                        | watcher::Event::Delete(job),
                    ) => job,
                    _ => continue,
                };
                if let (Some(uid), Some(name)) = (job.metadata.uid, job.metadata.name) {
                    let mut map = sink.0.lock().unwrap_or_else(|e| e.into_inner());
                    map.insert(uid, name);
                }
            }
        });
        (seen, task)
    }

    /// Job name → how many distinct Jobs (uids) had it.
    pub fn by_name(&self) -> BTreeMap<String, usize> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = BTreeMap::new();
        for name in map.values() {
            *counts.entry(name.clone()).or_insert(0) += 1;
        }
        counts
    }
}

/// One test's world: namespace, simulator, the engine's uid, the runner's kubeconfig, the Jobs
/// seen and where the audit log stood before the namespace existed.
pub struct World {
    pub ns: TestNamespace,
    pub sim: SimulatorHandle,
    pub uid: String,
    pub kubeconfig: PathBuf,
    pub jobs_seen: JobsSeen,
    jobs_task: tokio::task::JoinHandle<()>,
    audit: Option<AuditCursor>,
    suite: &'static Suite,
}

impl Drop for World {
    fn drop(&mut self) {
        self.jobs_task.abort();
    }
}

impl World {
    /// A namespace `<prefix>-xxxxxx` with the suite's fixtures and `engine` applied, the Jobs
    /// watch and the simulator started, and a kubeconfig of ServiceAccount `service_account`
    /// (the runner's identity).
    pub async fn new(
        suite: &'static Suite,
        prefix: &str,
        service_account: &str,
        engine: Value,
    ) -> anyhow::Result<World> {
        // Taken before the namespace exists, so no request in it can precede the cursor.
        let audit = AuditCursor::now()?;
        let ns = TestNamespace::create(prefix).await?;
        for fixture in suite.fixtures {
            ns.apply_yaml(fixture).await?;
        }
        let (jobs_seen, jobs_task) = JobsSeen::start(ns.api::<Job>());
        let applied = ns
            .apply_yaml(&serde_json::to_string_pretty(&engine)?)
            .await?;
        let uid = applied
            .first()
            .and_then(|e| e.metadata.uid.clone())
            .ok_or_else(|| anyhow!("the applied engine has no uid"))?;
        let sim = ns.start_simulator()?;
        let kubeconfig = ns.sa_kubeconfig(service_account).await?;
        Ok(World {
            ns,
            sim,
            uid,
            kubeconfig,
            jobs_seen,
            jobs_task,
            audit,
            suite,
        })
    }

    /// How the operator would start the runner on this world's engine, with `env` added.
    pub fn spec(&self, experiments: &[&str], env: &[(&str, &str)]) -> RunnerSpec {
        RunnerSpec {
            engine: self.suite.engine.to_owned(),
            namespace: self.ns.name().to_owned(),
            experiments: experiments.iter().map(|e| (*e).to_owned()).collect(),
            service_account: self.suite.chaos_service_account.to_owned(),
            env_extra: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            kubeconfig: self.kubeconfig.clone(),
        }
    }

    /// Starts the runner as [`World::spec`] says.
    pub fn spawn(
        &self,
        experiments: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<RunnerProcess> {
        RunnerProcess::spawn(&self.spec(experiments, env))
    }

    /// Waits until `attempt`'s stored checkpoint is Monitor with its pod recorded (running).
    pub async fn monitoring_its_pod(&self, attempt: &str) -> anyhow::Result<()> {
        let what = format!("{attempt} in Monitor with its pod running");
        wait_until(RUN_TIMEOUT, &what, async || {
            let status = self.status().await?;
            let cp = &status["chaosRunner"]["attempts"][attempt];
            Ok((cp["phase"] == "Monitor" && cp["pod"].is_string()).then_some(()))
        })
        .await
    }

    /// Watches the engine until some attempt's stored phase is `phase`, then freezes the runner
    /// (SIGSTOP, so it cannot move on while we look) and returns the attempt, with the runner
    /// frozen and `phase` still stored for it: what a crash at that instant leaves behind.
    ///
    /// The LaunchJob and Cleanup windows are a few tens of milliseconds; when the runner moved on
    /// before it froze, it is let go (SIGCONT) and the next attempt gets its chance.
    pub async fn freeze_in_phase(
        &self,
        runner: &mut RunnerProcess,
        phase: &str,
    ) -> anyhow::Result<(String, BTreeMap<String, String>)> {
        let api = self.ns.litmus_api(LitmusKind::ChaosEngine);
        let mut stream = std::pin::pin!(watcher::watch_object(api, self.suite.engine));
        let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
        let mut missed: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next())
                .await
                .map_err(|_| anyhow!("the stored phase never was {phase}"))?;
            let Some(event) = next else {
                bail!("the engine watch ended")
            };
            let Some(engine) = event? else { continue };
            let phases = stored_phases(&engine);
            let candidate = phases
                .iter()
                .find(|(attempt, p)| p.as_str() == phase && !missed.contains_key(*attempt));
            if let Some((attempt, _)) = candidate {
                let attempt = attempt.clone();
                runner.kill(Signal::Stop)?;
                let engine = self.engine().await?.ok_or_else(|| anyhow!("engine gone"))?;
                let at_stop = stored_phases(&engine);
                if at_stop.get(&attempt).map(String::as_str) == Some(phase) {
                    return Ok((attempt, at_stop));
                }
                runner.kill(Signal::Cont)?;
                let moved_on = at_stop.get(&attempt).cloned().unwrap_or_default();
                eprintln!(
                    "missed {phase} of {attempt} (already {moved_on}); trying the next attempt"
                );
                missed.insert(attempt, moved_on);
            }
            if let Some(status) = runner.wait_timeout(Duration::ZERO).await? {
                bail!(
                    "the runner exited ({status}) before it could be frozen in {phase}; \
                     windows missed (attempt → phase already stored): {missed:?}"
                );
            }
        }
    }

    /// The pods the simulator played (saw running) for `experiment` (Job `<experiment>-xxxxxx`).
    pub fn pods_played(&self, experiment: &str) -> BTreeSet<String> {
        let prefix = format!("{experiment}-");
        self.sim
            .events()
            .into_iter()
            .filter(|e| {
                e.pod.starts_with(&prefix) && matches!(e.kind, podsim::SimEventKind::Running)
            })
            .map(|e| e.pod)
            .collect()
    }

    /// The one pod the simulator played for `experiment`.
    pub fn played_pod(&self, experiment: &str) -> anyhow::Result<String> {
        let pods = self.pods_played(experiment);
        match pods.len() {
            1 => Ok(pods.into_iter().next().unwrap_or_default()),
            _ => bail!("{experiment}: the simulator played {pods:?}"),
        }
    }

    /// The engine's `status` (`null` when it has none).
    pub async fn status(&self) -> anyhow::Result<Value> {
        engine_status(&self.ns.client(), self.ns.name(), self.suite.engine).await
    }

    /// The engine; `None` once it is deleted.
    pub async fn engine(&self) -> anyhow::Result<Option<DynamicObject>> {
        Ok(self
            .ns
            .litmus_api(LitmusKind::ChaosEngine)
            .get_opt(self.suite.engine)
            .await?)
    }

    /// Merge-patches the engine (spec or status: the ChaosEngine CRD has no status subresource).
    pub async fn patch_engine(&self, patch: Value) -> anyhow::Result<()> {
        let engine = self.suite.engine;
        self.ns
            .litmus_api(LitmusKind::ChaosEngine)
            .patch(engine, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("patching ChaosEngine {engine} with {patch}"))?;
        Ok(())
    }

    /// The runner's Events on the engine.
    pub async fn events(&self) -> anyhow::Result<Vec<Event>> {
        let list = self
            .ns
            .api::<Event>()
            .list(&ListParams::default().fields(&format!(
                "involvedObject.kind=ChaosEngine,involvedObject.name={}",
                self.suite.engine
            )))
            .await?;
        Ok(list
            .items
            .into_iter()
            .filter(|e| {
                e.source
                    .as_ref()
                    .and_then(|s| s.component.as_deref())
                    .is_some_and(|c| c == self.suite.component)
            })
            .collect())
    }

    /// Waits until no Job and no pod labelled with the engine's chaosUID is left; on timeout
    /// the error names what was left.
    pub async fn wait_no_jobs_or_pods(&self, timeout: Duration) -> anyhow::Result<()> {
        let client = self.ns.client();
        let mut left = String::new();
        wait_until(
            timeout,
            "no Job and no pod with the engine's chaosUID",
            async || {
                let jobs = jobs_by_chaos_uid(&client, self.ns.name(), &self.uid).await?;
                let pods = pods_by_chaos_uid(&client, self.ns.name(), &self.uid).await?;
                left = format!(
                    "Jobs {:?}, pods {:?}",
                    jobs.iter()
                        .map(|j| j.metadata.name.clone())
                        .collect::<Vec<_>>(),
                    pods.iter()
                        .map(|p| p.metadata.name.clone())
                        .collect::<Vec<_>>()
                );
                Ok((jobs.is_empty() && pods.is_empty()).then_some(()))
            },
        )
        .await
        .with_context(|| format!("left: {left}"))
    }

    /// Successful `create jobs` requests in this namespace, by Job name, from the apiserver's
    /// audit log; `None` when the plane exports no audit log.
    pub fn audited_job_creates(&self) -> anyhow::Result<Option<BTreeMap<String, usize>>> {
        let Some(cursor) = &self.audit else {
            return Ok(None);
        };
        let mut creates = BTreeMap::new();
        for request in cursor.requests()? {
            let object = &request["objectRef"];
            if request["verb"] == "create"
                && object["resource"] == "jobs"
                && object["namespace"] == self.ns.name()
                && request["responseStatus"]["code"] == 201
            {
                let name = object["name"].as_str().unwrap_or("?").to_owned();
                *creates.entry(name).or_insert(0) += 1;
            }
        }
        Ok(Some(creates))
    }

    /// Names of Job creates in the namespace answered neither 201 nor 409 (a timeout).
    fn audited_unanswered_job_creates(&self) -> anyhow::Result<BTreeSet<String>> {
        let Some(cursor) = &self.audit else {
            return Ok(BTreeSet::new());
        };
        let mut names = BTreeSet::new();
        for request in cursor.requests()? {
            let object = &request["objectRef"];
            let code = request["responseStatus"]["code"].as_u64();
            if request["verb"] == "create"
                && object["resource"] == "jobs"
                && object["namespace"] == self.ns.name()
                && !matches!(code, Some(201 | 409))
            {
                names.insert(object["name"].as_str().unwrap_or("?").to_owned());
            }
        }
        Ok(names)
    }

    /// Exactly one Job ever per attempt: `attempts` distinct Job names, each with one uid, and
    /// the audit log (when there is one) agreeing with one successful create each. The names.
    pub fn expect_one_job_per_attempt(&self, attempts: usize) -> anyhow::Result<BTreeSet<String>> {
        let seen = self.jobs_seen.by_name();
        ensure!(
            seen.len() == attempts && seen.values().all(|uids| *uids == 1),
            "expected {attempts} Jobs with one uid each, Jobs seen (name → uids): {seen:?}"
        );
        if let Some(creates) = self.audited_job_creates()? {
            // A create whose answer was lost (a 504 after the apiserver stored the Job, seen
            // under load) has no 201: its retry got 409 and adopted the Job. The watch's uids
            // are the witness for those; no name may have two successful creates.
            let missing: Vec<&String> = seen.keys().filter(|n| !creates.contains_key(*n)).collect();
            let unanswered = self.audited_unanswered_job_creates()?;
            ensure!(
                creates.values().all(|n| *n == 1)
                    && creates.keys().all(|name| seen.contains_key(name))
                    && missing.iter().all(|name| unanswered.contains(*name)),
                "audit log: successful Job creates {creates:?}, Jobs seen {seen:?}, \
                 creates without a 201 {unanswered:?}"
            );
        }
        Ok(seen.into_keys().collect())
    }

    /// No Job was ever created in the namespace (watch and audit log).
    pub fn expect_no_job_created(&self) -> anyhow::Result<()> {
        let seen = self.jobs_seen.by_name();
        ensure!(seen.is_empty(), "Jobs created: {seen:?}");
        if let Some(creates) = self.audited_job_creates()? {
            ensure!(creates.is_empty(), "Jobs created (audit log): {creates:?}");
        }
        Ok(())
    }

    /// A Warning event with `reason` whose message contains every one of `parts`.
    pub async fn expect_warning(&self, reason: &str, parts: &[&str]) -> anyhow::Result<Event> {
        let events = self.events().await?;
        let event = find_events(&events, reason)
            .into_iter()
            .find(|e| parts.iter().all(|p| message(e).contains(p)))
            .ok_or_else(|| {
                anyhow!(
                    "no {reason} event containing {parts:?}; events: {:#?}",
                    describe_events(&events)
                )
            })?;
        ensure!(
            event.type_.as_deref() == Some("Warning"),
            "{reason} is not a Warning: {event:?}"
        );
        Ok(event.clone())
    }

    /// Asserts the status has exactly one entry per name in `expected` and nothing else, each
    /// with the contract's fields: `(name, experimentPod, status, verdict)`, this suite's
    /// `runner` and an RFC 3339 `lastUpdateTime`.
    pub fn check_entries(
        &self,
        status: &Value,
        expected: &[(&str, &str, &str, &str)],
    ) -> anyhow::Result<()> {
        let count = status["experiments"].as_array().map_or(0, Vec::len);
        ensure!(
            count == expected.len(),
            "expected {} entries, found {count}: {:#}",
            expected.len(),
            status["experiments"]
        );
        for (name, pod, state, verdict) in expected {
            let entry = entry(status, name)?;
            ensure!(
                entry["runner"] == self.suite.component,
                "{name}: runner in {entry}"
            );
            ensure!(
                entry["experimentPod"] == *pod,
                "{name}: experimentPod in {entry}, want {pod}"
            );
            ensure!(
                entry["status"] == *state,
                "{name}: status in {entry}, want {state}"
            );
            ensure!(
                entry["verdict"] == *verdict,
                "{name}: verdict in {entry}, want {verdict}"
            );
            let time = entry["lastUpdateTime"].as_str().unwrap_or("");
            ensure!(
                time.parse::<Timestamp>().is_ok(),
                "{name}: lastUpdateTime {time:?} is not RFC 3339"
            );
        }
        Ok(())
    }

    /// An abort asked for at `started` was carried out within [`ABORT_BOUND`]: the runner
    /// exited 0 without a panic, and no Job or pod of the engine is left. How long after
    /// `started` the runner exited and the cluster was clean.
    pub async fn expect_clean_abort(
        &self,
        runner: &mut RunnerProcess,
        started: Instant,
    ) -> anyhow::Result<(Duration, Duration)> {
        expect_exit_within(runner, 0, ABORT_BOUND).await?;
        let exited_after = started.elapsed();
        self.wait_no_jobs_or_pods(ABORT_BOUND.saturating_sub(started.elapsed()))
            .await
            .with_context(|| format!("Jobs/pods not gone within {ABORT_BOUND:?} of the abort"))?;
        Ok((exited_after, started.elapsed()))
    }

    /// The audit trail as the engine's annotations keep it (`chaos-runner.io/trail-<n>`
    /// segments, oldest first). The whole trail: a test that calls this expects no segment to
    /// have been dropped yet (the run is small), and says so if one was.
    pub async fn trail(&self) -> anyhow::Result<Vec<Transition>> {
        let engine = self
            .engine()
            .await?
            .ok_or_else(|| anyhow!("engine {} gone", self.suite.engine))?;
        let annotations = engine.metadata.annotations.unwrap_or_default();
        let segments: BTreeMap<u64, &String> = annotations
            .iter()
            .filter_map(|(key, value)| {
                let n = key.strip_prefix("chaos-runner.io/trail-")?.parse().ok()?;
                Some((n, value))
            })
            .collect();
        let numbers: Vec<u64> = segments.keys().copied().collect();
        ensure!(
            numbers.iter().copied().eq(0..numbers.len() as u64),
            "trail segments {numbers:?}: the trail is not whole from the run's start"
        );
        let mut entries = Vec::new();
        for (n, raw) in segments {
            let segment: Vec<Value> = serde_json::from_str(raw)
                .with_context(|| format!("parsing chaos-runner.io/trail-{n}"))?;
            entries.extend(segment);
        }
        trail(&json!({"chaosRunner": {"history": entries}}))
    }
}

/// Waits for the runner's exit and checks the code and that it did not panic.
pub async fn expect_exit(runner: &mut RunnerProcess, code: i32) -> anyhow::Result<ExitStatus> {
    expect_exit_within(runner, code, RUN_TIMEOUT).await
}

/// [`expect_exit`] with the exit due within `timeout`.
pub async fn expect_exit_within(
    runner: &mut RunnerProcess,
    code: i32,
    timeout: Duration,
) -> anyhow::Result<ExitStatus> {
    let status = runner.wait(timeout).await?;
    ensure!(
        status.code() == Some(code),
        "runner exited with {status}, expected code {code}; log tail:\n{}",
        runner.log_tail(40)
    );
    ensure!(
        !runner.output().contains("panicked"),
        "the runner panicked; log tail:\n{}",
        runner.log_tail(40)
    );
    Ok(status)
}

/// The status entry of experiment `name`; exactly one must exist.
pub fn entry<'a>(status: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    let found: Vec<&Value> = status["experiments"]
        .as_array()
        .map(|entries| entries.iter().filter(|e| e["name"] == name).collect())
        .unwrap_or_default();
    ensure!(
        found.len() == 1,
        "entry {name} found {} times in {:#}",
        found.len(),
        status["experiments"]
    );
    Ok(found[0])
}

/// One record of the audit trail in `status.chaosRunner.history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub attempt: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub at_ms: i64,
}

/// The audit trail of `status.chaosRunner.history`; every record must have an RFC 3339 `at`.
pub fn trail(status: &Value) -> anyhow::Result<Vec<Transition>> {
    status["chaosRunner"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            Ok(Transition {
                attempt: s("attempt"),
                from: s("from"),
                to: s("to"),
                reason: s("reason"),
                at_ms: ms_of(&s("at")).with_context(|| format!("history entry {e}"))?,
            })
        })
        .collect()
}

/// Every transition once; per attempt an unbroken chain from one of `first_phases` to a
/// terminal phase.
pub fn check_trail(trail: &[Transition], first_phases: &[&str]) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for t in trail {
        ensure!(
            seen.insert((&t.attempt, &t.from, &t.to)),
            "transition {} {}->{} recorded twice: {trail:#?}",
            t.attempt,
            t.from,
            t.to
        );
    }
    let attempts: BTreeSet<&String> = trail.iter().map(|t| &t.attempt).collect();
    for attempt in attempts {
        let chain: Vec<&Transition> = trail.iter().filter(|t| &t.attempt == attempt).collect();
        ensure!(
            first_phases.contains(&chain[0].from.as_str()),
            "{attempt} does not start at one of {first_phases:?}: {chain:#?}"
        );
        for pair in chain.windows(2) {
            ensure!(
                pair[0].to == pair[1].from,
                "{attempt}: the chain breaks at {pair:#?}"
            );
        }
        let last = &chain[chain.len() - 1].to;
        ensure!(
            matches!(last.as_str(), "Completed" | "Skipped" | "Aborted"),
            "{attempt} ends in {last}: {chain:#?}"
        );
    }
    Ok(())
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn ms_of(rfc3339: &str) -> anyhow::Result<i64> {
    Ok(rfc3339
        .parse::<Timestamp>()
        .with_context(|| format!("{rfc3339:?} is not RFC 3339"))?
        .as_millisecond())
}

/// The events with `reason`.
pub fn find_events<'a>(events: &'a [Event], reason: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// The message of an Event (`""` when it has none).
pub fn message(event: &Event) -> &str {
    event.message.as_deref().unwrap_or("")
}

/// One line per Event, for error messages: type, reason, count and message.
pub fn describe_events(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} x{}: {}",
                e.type_.as_deref().unwrap_or("?"),
                e.reason.as_deref().unwrap_or("?"),
                e.count.unwrap_or(0),
                message(e)
            )
        })
        .collect()
}

/// Each attempt's stored phase in `status.chaosRunner.attempts`.
pub fn stored_phases(engine: &DynamicObject) -> BTreeMap<String, String> {
    engine.data["status"]["chaosRunner"]["attempts"]
        .as_object()
        .map(|attempts| {
            attempts
                .iter()
                .map(|(k, v)| (k.clone(), v["phase"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
