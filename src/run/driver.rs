//! The async driver: performs the phase engine's effects against the API server.
//!
//! One task per experiment attempt runs the loop "perform the phase's command → feed the answer
//! to the engine → write the checkpoint → emit the events"; the run-level loop here starts
//! attempts as the plan's scheduler allows and ends when every attempt is terminal.
//! Everything the engine decides is in `chaos-runner-states`; this module only does I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::access::{self, Access};
use crate::api::{ApiError, call_opt};
use crate::attempt::{AttemptEnd, AttemptKey, AttemptRunner};
use crate::config::RunnerConfig;
use crate::crd::ChaosEngine;
use crate::engine_writer::{EngineWriter, ExperimentEntry, StatusChange, WriteError};
use crate::events::{EngineRef, EventReport, EventSink, EventType, fnv1a64};
use crate::merge::RunnerEnv;
use crate::observe::{self, EngineSignal, PodMap};
use crate::plan::{self, Plan};
use crate::record::{AuditTrail, RecordError, RunRecord};
use crate::schedule::{self, ItemState};

/// Why a run stopped before every experiment reached an outcome; each is worth a restart.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("{0}")]
    Write(#[from] WriteError),
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("ChaosEngine {name}: cannot read it: {message}")]
    Engine { name: String, message: String },
}

/// How a run ended, for the exit code and the final log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every attempt reached an outcome (verdicts, skips and aborts included).
    Finished { outcomes: Vec<(String, String)> },
    /// The engine does not exist (or went away): nothing to report to.
    EngineGone,
    /// The plan annotations are invalid: reported, nothing was created.
    PlanRejected(String),
    /// The engine (spec or stored record) cannot be read: reported, nothing was touched.
    Unrunnable(String),
    /// The runner was terminated (SIGTERM) while the engine is active: every attempt's
    /// checkpoint is written and its Job left running for the next runner to resume.
    Suspended,
}

/// Everything an attempt needs that is shared by the run.
pub struct RunContext {
    pub client: kube::Client,
    pub config: RunnerConfig,
    pub runner_env: RunnerEnv,
    /// The engine as read at start (spec and metadata do not change during a run).
    pub engine: ChaosEngine,
    pub engine_uid: String,
    pub run_id: String,
    pub access: Access,
    pub writer: EngineWriter,
    pub events: crate::events::EventQueue,
    pub pods: watch::Receiver<PodMap>,
    /// How many attempts are in Monitor: the pod poller only polls while it is above 0.
    pub monitoring: watch::Sender<crate::observe::Monitored>,
    /// Set once the run must abort, with the reason.
    pub abort: watch::Receiver<Option<String>>,
    /// Set once the runner is being terminated without an abort: attempts checkpoint and stop.
    pub suspend: watch::Receiver<bool>,
    /// Overrides the Monitor deadline derived from the experiment.
    pub monitor_timeout: Option<Duration>,
    /// `status.chaosRunner.attempts` as found at start, by attempt key.
    pub checkpoints: BTreeMap<String, serde_json::Value>,
    /// Attempt keys that reached a terminal phase according to the audit trail.
    pub finished_in_trail: Vec<String>,
    /// `status.experiments[].verdict` by experiment name, as found at start.
    pub verdicts_at_start: BTreeMap<String, String>,
    /// `status.experiments[].experimentPod` by experiment name, as found at start.
    pub pods_at_start: BTreeMap<String, String>,
    /// The audit trail as found at start, for attempts whose checkpoint is gone.
    pub history_at_start: Vec<crate::record::AuditEntry>,
    pub cleanup: chaos_runner_states::CleanupPolicy,
}

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub monitor_timeout: Option<Duration>,
}

pub fn engine_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("litmuschaos.io", "v1alpha1", "ChaosEngine"),
        "chaosengines",
    )
}

pub fn now() -> String {
    Timestamp::now().to_string()
}

/// Runs the engine named by `config` to the end.
pub async fn run(
    client: kube::Client,
    config: RunnerConfig,
    options: RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<RunEnd, RunError> {
    let namespace = config.namespace.clone();
    let engines: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &namespace, &engine_resource());
    let access = access::probe(&client, &namespace).await;
    tracing::info!(
        mode = if access.watches() { "watch" } else { "poll" },
        "{}",
        access.describe()
    );

    let what = format!("get ChaosEngine {}", config.engine_name);
    let Some(raw_engine) = call_opt(&what, || engines.get(&config.engine_name)).await? else {
        tracing::error!(engine = %config.engine_name, namespace = %namespace, "ChaosEngine not found: nothing to run");
        return Ok(RunEnd::EngineGone);
    };
    let engine_uid = raw_engine.metadata.uid.clone().unwrap_or_default();
    let events = EventSink::new(
        client.clone(),
        EngineRef {
            name: config.engine_name.clone(),
            namespace: namespace.clone(),
            uid: engine_uid.clone(),
        },
        access.patch_events,
    );
    // An engine this runner cannot read will not read better after a restart: report it where
    // users look and end (exit 0) rather than crash-loop.
    let engine: ChaosEngine = match serde_json::to_value(&raw_engine)
        .and_then(serde_json::from_value)
    {
        Ok(engine) => engine,
        Err(error) => {
            let message = format!("the ChaosEngine spec cannot be read: {error}");
            return report_unrunnable(&events, &engines, &config, "EngineInvalid", message).await;
        }
    };

    // The run's record: resume it, or start a new one.
    let status = raw_engine.data.get("status");
    let found = match RunRecord::from_status(status) {
        Ok(found) => found,
        Err(error) => {
            // Left as it is: a newer runner's record must not be overwritten by an older one.
            let message = error.to_string();
            return report_unrunnable(&events, &engines, &config, "CheckpointUnreadable", message)
                .await;
        }
    };
    let trail = AuditTrail::from_annotations(raw_engine.metadata.annotations.as_ref());
    let has_entries = status
        .and_then(|s| s.get("experiments"))
        .and_then(|e| e.as_array())
        .is_some_and(|e| !e.is_empty());
    let started = now();
    let resumed = found.is_some() || (trail.is_some() && has_entries);
    let record = match (found, trail) {
        (Some(record), _) => {
            tracing::info!(run = %record.run_id, "resuming from the checkpoint in the engine status");
            record
        }
        // The checkpoint is gone but the run's entries are there: resume from the audit trail
        // and the cluster (a re-run after the operator cleared the status has no entries).
        (None, Some(trail)) if has_entries => {
            tracing::info!(run = %trail.run_id, "no checkpoint: resuming from the audit trail and the cluster");
            let mut record = RunRecord::new(trail.run_id, started.clone());
            record.record(trail.history);
            record
        }
        _ => {
            let run_id = format!(
                "{:08x}",
                fnv1a64(&[&engine_uid, &started, &std::process::id().to_string()]) as u32
            );
            tracing::info!(run = %run_id, "starting a new run");
            RunRecord::new(run_id, started.clone())
        }
    };
    let run_id = record.run_id.clone();

    // The plan, decided before anything runs; recorded with the first write.
    let annotations = raw_engine.metadata.annotations.clone().unwrap_or_default();
    let plan: Plan = match record
        .plan
        .clone()
        .and_then(|p| serde_json::from_value(p).ok())
    {
        Some(plan) => plan,
        None => {
            let seed = fnv1a64(&[&run_id, &engine_uid]);
            match plan::resolve(&config.experiments, &annotations, seed) {
                Ok(plan) => plan,
                Err(error) => {
                    return reject_plan(
                        &events,
                        &engines,
                        raw_engine,
                        record,
                        &config,
                        &error.to_string(),
                    )
                    .await;
                }
            }
        }
    };

    // The plan goes out with the first checkpoint: if the runner stops before that, it is
    // derived again, identically, from the annotations and the run id.
    let mut record = record;
    record.plan = serde_json::to_value(&plan).ok();
    let checkpoints = record.attempts.clone();
    let entry_field = |field: &str| -> BTreeMap<String, String> {
        status
            .and_then(|s| s.get("experiments"))
            .and_then(|e| e.as_array())
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| {
                        Some((
                            e.get("name")?.as_str()?.to_string(),
                            e.get(field)?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let verdicts_at_start = entry_field("verdict");
    let pods_at_start = entry_field("experimentPod");
    let history_at_start = record.history.clone();
    let cleanup = if engine
        .spec
        .job_clean_up_policy
        .as_ref()
        .is_some_and(|p| p.deletes())
    {
        chaos_runner_states::CleanupPolicy::Delete
    } else {
        chaos_runner_states::CleanupPolicy::Retain
    };
    // A policy outside the enum keeps the Jobs (the contract: only the exact `delete`
    // deletes); say so where users look, rather than retaining silently.
    if let Some(crate::crd::JobCleanUpPolicy::Other(value)) = &engine.spec.job_clean_up_policy {
        let report = EventReport {
            kind: EventType::Warning,
            reason: "JobCleanUpPolicyUnknown".into(),
            message: format!(
                "spec.jobCleanUpPolicy {value:?} is neither \"delete\" nor \"retain\": experiment Jobs will be retained"
            ),
            key: format!("{}/policy/{value}", record.run_id),
        };
        tracing::warn!(policy = %value, "{}", report.message);
        if let Err(error) = events.emit(&report).await {
            tracing::warn!(%error, "could not emit the policy warning");
        }
    }
    if !config.repeated_experiments.is_empty() {
        let names = config.repeated_experiments.join(", ");
        let report = EventReport {
            kind: EventType::Warning,
            reason: "EnvParseError".into(),
            message: format!(
                "EXPERIMENT_LIST names {names} more than once: each runs once (an experiment has one status entry)"
            ),
            key: format!("{}/repeated/{names}", record.run_id),
        };
        tracing::warn!(%names, "{}", report.message);
        if let Err(error) = events.emit(&report).await {
            tracing::warn!(%error, "could not emit the repeated-experiment warning");
        }
    }
    let finished_in_trail = crate::attempt::finished_attempts(&record.history);
    // Every experiment of the plan is listed from the run's first write, as the Go runner
    // does: the operator's abort rewrites the entries it finds (`Waiting for Job Creation`,
    // `Running`) and replaces the whole array, so an experiment not listed yet would be lost.
    let none_yet = BTreeMap::new();
    let waiting = waiting_entries(
        &plan,
        &config.engine_name,
        if resumed {
            &verdicts_at_start
        } else {
            &none_yet
        },
    );
    let (writer, engine_copies, _stats) =
        EngineWriter::spawn(engines.clone(), raw_engine.clone(), record, waiting);

    // Observers: the engine (stop / deletion) and the experiment pods.
    let (engine_tx, engine_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut background = JoinSet::new();
    if access.watch_engine {
        background.spawn(observe::watch_engine(
            engines.clone(),
            config.engine_name.clone(),
            raw_engine
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default(),
            engine_tx.clone(),
        ));
    } else {
        background.spawn(observe::poll_engine(
            engines.clone(),
            config.engine_name.clone(),
            engine_tx.clone(),
            observe::POD_POLL_INTERVAL * observe::ENGINE_POLL_EVERY,
        ));
    }
    {
        // The writer's answers are fresh copies of the engine too.
        let mut copies = engine_copies.clone();
        let tx = engine_tx.clone();
        background.spawn(async move {
            while copies.changed().await.is_ok() {
                let copy = copies.borrow_and_update().clone();
                if tx.send(copy).is_err() {
                    return;
                }
            }
        });
    }
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let (pods_tx, pods_rx) = watch::channel(PodMap::default());
    let (monitoring, monitoring_rx) = watch::channel(crate::observe::Monitored::new());
    if access.watch_pods {
        background.spawn(observe::watch_pods(pod_api, engine_uid.clone(), pods_tx));
    } else {
        background.spawn(observe::poll_pods(
            pod_api,
            engine_uid.clone(),
            pods_tx,
            monitoring_rx,
        ));
    }

    // Abort: engineState stop, engine deletion. SIGTERM alone is a drain, an eviction or a
    // deleted pod: the run is suspended (checkpoint, Jobs left running, non-zero exit) and the
    // operator's next runner pod resumes it.
    let (abort_tx, abort_rx) = watch::channel(None::<String>);
    let (suspend_tx, suspend_rx) = watch::channel(false);
    let grace = termination_grace(&engine);
    background.spawn(watch_for_stop(
        StopWatch {
            engines: engines.clone(),
            engine_name: config.engine_name.clone(),
            grace,
            abort: abort_tx,
            suspend: suspend_tx,
        },
        EngineSignal::of(Some(&raw_engine)),
        engine_rx,
        shutdown,
    ));

    // Monitoring exporter, when asked for.
    if let Some(settings) =
        crate::exporter::requested(raw_engine.data.get("spec"), &annotations, &namespace)
    {
        ensure_exporter(
            &client,
            &events,
            &engine,
            &settings,
            &run_id,
            access.block_owner_deletion,
        )
        .await;
    }

    let context = Arc::new(RunContext {
        client,
        runner_env: RunnerEnv::from_config(&config),
        config,
        engine,
        engine_uid,
        run_id,
        access,
        writer: writer.clone(),
        events: crate::events::EventQueue::spawn(Arc::new(events)),
        pods: pods_rx,
        monitoring,
        abort: abort_rx,
        suspend: suspend_rx,
        monitor_timeout: options
            .monitor_timeout
            .or_else(|| monitor_timeout_annotation(&annotations)),
        checkpoints,
        finished_in_trail,
        verdicts_at_start,
        pods_at_start,
        history_at_start,
        cleanup,
    });
    let outcome = execute_plan(&context, &plan).await;
    // Every event queued so far goes out before the runner exits.
    context.events.drain().await;
    background.abort_all();
    outcome
}

/// The Go runner's entry for an experiment not launched yet, for every experiment of the plan
/// that has no entry (`existing`: the entries of a resumed run).
fn waiting_entries(
    plan: &Plan,
    engine_name: &str,
    existing: &BTreeMap<String, String>,
) -> Vec<ExperimentEntry> {
    let at = now();
    let mut names: Vec<&str> = plan.items.iter().map(|i| i.experiment.as_str()).collect();
    names.dedup();
    names
        .into_iter()
        .filter(|name| !existing.contains_key(*name))
        .map(|name| ExperimentEntry {
            name: name.to_string(),
            runner: format!("{engine_name}-runner"),
            experiment_pod: "Yet to be launched".into(),
            status: "Waiting for Job Creation".into(),
            verdict: "N/A".into(),
            last_update_time: at.clone(),
            iteration: None,
            iterations: None,
        })
        .collect()
}

/// A pod's grace period when neither the pod nor the engine sets one.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The runner pod's grace period: the operator creates it without one (30 s), and on an abort
/// deletes it with the engine's `terminationGracePeriodSeconds` when that is set (not 0).
fn termination_grace(engine: &ChaosEngine) -> Duration {
    engine
        .spec
        .termination_grace_period_seconds
        .filter(|seconds| *seconds > 0)
        .map_or(DEFAULT_GRACE, |seconds| Duration::from_secs(seconds as u64))
}

/// The part of the grace period the runner's calls may use: the rest is kept for the last
/// write in flight and for the process to exit before the kubelet's SIGKILL.
fn call_budget(grace: Duration) -> Duration {
    grace.saturating_sub((grace / 5).max(Duration::from_secs(2)))
}

/// What the stop watcher needs: where to look, and where to say what it saw.
struct StopWatch {
    engines: Api<DynamicObject>,
    engine_name: String,
    grace: Duration,
    abort: watch::Sender<Option<String>>,
    suspend: watch::Sender<bool>,
}

/// Decides abort or suspension from every engine copy (in order, so a stale copy arriving late
/// cannot hide a stop) and from SIGTERM. A SIGTERM is an abort only when the engine says so:
/// it is read once more then, since the operator's stop and its SIGTERM race each other.
async fn watch_for_stop(
    stop: StopWatch,
    mut signal: EngineSignal,
    mut engine_copies: tokio::sync::mpsc::UnboundedReceiver<Option<DynamicObject>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut suspended = false;
    loop {
        let reason = match signal {
            EngineSignal::Stop => Some("engineState set to stop"),
            EngineSignal::Deleted => Some("the ChaosEngine was deleted"),
            EngineSignal::Active => None,
        };
        if let Some(reason) = reason {
            tracing::warn!(reason, "aborting the run");
            // The operator deletes the runner pod right after: the abort runs in its grace.
            crate::api::finish_calls_by(tokio::time::Instant::now() + call_budget(stop.grace));
            stop.abort.send_replace(Some(reason.to_string()));
            return;
        }
        if !suspended && *shutdown.borrow_and_update() {
            crate::api::finish_calls_by(tokio::time::Instant::now() + call_budget(stop.grace));
            let what = format!("get ChaosEngine {}", stop.engine_name);
            let fresh = tokio::time::timeout(
                SIGTERM_ENGINE_READ,
                call_opt(&what, || stop.engines.get(&stop.engine_name)),
            )
            .await;
            match fresh {
                Ok(Ok(copy)) if EngineSignal::of(copy.as_ref()) != EngineSignal::Active => {
                    signal = EngineSignal::of(copy.as_ref());
                    continue;
                }
                _ => {
                    tracing::warn!(
                        "SIGTERM with the engine active: suspending the run (checkpoint written, experiment Jobs left running for the next runner)"
                    );
                    suspended = true;
                    stop.suspend.send_replace(true);
                }
            }
        }
        tokio::select! {
            copy = engine_copies.recv() => match copy {
                Some(copy) => signal = EngineSignal::of(copy.as_ref()),
                None => return,
            },
            changed = shutdown.changed(), if !suspended => if changed.is_err() { return },
        }
    }
}

/// How long a SIGTERM waits for a fresh copy of the engine before it suspends.
const SIGTERM_ENGINE_READ: Duration = Duration::from_secs(3);

/// Reports an engine this runner cannot run: a Warning Event and `status.chaosRunner.failure`
/// (a merge patch of that one field: the rest of the status stays as it is).
async fn report_unrunnable(
    events: &EventSink,
    engines: &Api<DynamicObject>,
    config: &RunnerConfig,
    reason: &str,
    message: String,
) -> Result<RunEnd, RunError> {
    tracing::error!(%reason, %message, "the run cannot start");
    let report = EventReport {
        kind: EventType::Warning,
        reason: reason.into(),
        message: format!("chaos-runner cannot run this engine: {message}"),
        key: format!("unrunnable/{reason}/{message}"),
    };
    if let Err(error) = events.emit(&report).await {
        tracing::warn!(%error, "could not emit the event");
    }
    let patch = serde_json::json!({"status": {crate::record::STATUS_KEY: {"failure": message}}});
    let what = format!("patch ChaosEngine {}", config.engine_name);
    let params = kube::api::PatchParams::default();
    let patch = kube::api::Patch::Merge(&patch);
    call_opt(&what, || {
        engines.patch(&config.engine_name, &params, &patch)
    })
    .await?;
    Ok(RunEnd::Unrunnable(message))
}

async fn reject_plan(
    events: &EventSink,
    engines: &Api<DynamicObject>,
    raw_engine: DynamicObject,
    mut record: RunRecord,
    config: &RunnerConfig,
    message: &str,
) -> Result<RunEnd, RunError> {
    tracing::error!(%message, "the run plan is invalid; nothing is created");
    let report = EventReport {
        kind: EventType::Warning,
        reason: "PlanInvalid".into(),
        message: format!("Invalid run plan, no experiment runs: {message}"),
        // Keyed by run: a later run of the same engine reports again instead of finding the
        // earlier run's Event (same name) and staying silent.
        key: format!("{}/plan-invalid/{message}", record.run_id),
    };
    record.failure = Some(format!("invalid run plan: {message}"));
    refuse(
        events,
        engines,
        raw_engine,
        record,
        &config.engine_name,
        &config.experiments,
        &report,
    )
    .await?;
    Ok(RunEnd::PlanRejected(message.to_string()))
}

/// Reports a run that cannot start: the event, `status.chaosRunner.failure`, and a Skipped
/// entry for every named experiment, so nothing is silently lost.
async fn refuse(
    events: &EventSink,
    engines: &Api<DynamicObject>,
    raw_engine: DynamicObject,
    record: RunRecord,
    engine_name: &str,
    experiments: &[String],
    report: &EventReport,
) -> Result<(), RunError> {
    let (writer, _, _) = EngineWriter::spawn(engines.clone(), raw_engine, record, Vec::new());
    let at = now();
    let entries = experiments
        .iter()
        .map(|name| ExperimentEntry {
            name: name.clone(),
            runner: format!("{engine_name}-runner"),
            experiment_pod: "N/A".into(),
            status: "Skipped".into(),
            verdict: "Fail".into(),
            last_update_time: at.clone(),
            iteration: None,
            iterations: None,
        })
        .collect();
    writer
        .commit(StatusChange {
            entries,
            ..Default::default()
        })
        .await?;
    if let Err(error) = events.emit(report).await {
        tracing::warn!(%error, reason = %report.reason, "could not emit the event");
    }
    Ok(())
}

/// Reports an env that names an engine but cannot be run (empty or duplicate
/// `EXPERIMENT_LIST` entries) to that engine, then exits 0: a restart would not change it.
pub async fn report_bad_env(
    client: &kube::Client,
    env: &BTreeMap<String, String>,
    error: &crate::config::ConfigError,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (Some(name), Some(namespace)) = (env.get("CHAOSENGINE"), env.get("CHAOS_NAMESPACE")) else {
        return ExitCode::from(crate::cli::EXIT_BAD_INPUT);
    };
    let engines: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &engine_resource());
    let what = format!("get ChaosEngine {name}");
    let raw_engine = match call_opt(&what, || engines.get(name)).await {
        Ok(Some(engine)) => engine,
        Ok(None) => {
            tracing::error!(engine = %name, "ChaosEngine not found: the env error cannot be reported to it");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the ChaosEngine");
            return ExitCode::from(crate::cli::EXIT_RETRY);
        }
    };
    let events = EventSink::new(
        client.clone(),
        EngineRef {
            name: name.clone(),
            namespace: namespace.clone(),
            uid: raw_engine.metadata.uid.clone().unwrap_or_default(),
        },
        true,
    );
    let report = EventReport {
        kind: EventType::Warning,
        reason: "EnvParseError".into(),
        message: format!("The runner's environment is invalid, no experiment runs: {error}"),
        key: format!("env/{error}"),
    };
    let mut record = RunRecord::new("none".into(), now());
    record.failure = Some(error.to_string());
    let mut experiments: Vec<String> = Vec::new();
    for item in env
        .get("EXPERIMENT_LIST")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        if !item.is_empty() && !experiments.iter().any(|e| e == item) {
            experiments.push(item.to_string());
        }
    }
    match refuse(
        &events,
        &engines,
        raw_engine,
        record,
        name,
        &experiments,
        &report,
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "could not report the env error");
            ExitCode::from(crate::cli::EXIT_RETRY)
        }
    }
}

/// A flag that turns true on SIGTERM or SIGINT: the run aborts cleanly (checkpoint, delete its
/// Jobs, final status) and exits 0 within the pod's grace period.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => tracing::warn!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::warn!("SIGINT received"),
        }
        tx.send_replace(true);
        // Keep the sender alive so receivers see `true`, not a closed channel.
        std::future::pending::<()>().await;
    });
    rx
}

impl RunEnd {
    /// The run's last log lines: one per attempt.
    pub fn log(&self) {
        match self {
            RunEnd::Finished { outcomes } => {
                for (attempt, outcome) in outcomes {
                    tracing::info!(%attempt, %outcome, "experiment finished");
                }
                tracing::info!(experiments = outcomes.len(), "run finished");
            }
            RunEnd::EngineGone => tracing::warn!("the ChaosEngine is gone; nothing more to do"),
            RunEnd::PlanRejected(message) => tracing::error!(%message, "run refused: invalid plan"),
            RunEnd::Unrunnable(message) => tracing::error!(%message, "run refused"),
            RunEnd::Suspended => tracing::warn!(
                "run suspended by SIGTERM: checkpoints written, experiment Jobs left running; the next runner resumes"
            ),
        }
    }
}

async fn ensure_exporter(
    client: &kube::Client,
    events: &EventSink,
    engine: &ChaosEngine,
    settings: &crate::exporter::ExporterSettings,
    run_id: &str,
    block_owner_deletion: bool,
) {
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: crate::crd::API_VERSION.to_string(),
        kind: "ChaosEngine".to_string(),
        name: engine.metadata.name.clone().unwrap_or_default(),
        uid: engine.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true).filter(|_| block_owner_deletion),
    };
    let report = match crate::exporter::ensure(client, settings, &owner).await {
        Ok((deployment, service)) => EventReport {
            kind: EventType::Normal,
            reason: "ChaosExporterReady".into(),
            message: format!(
                "chaos-exporter Deployment {deployment:?} and Service {service:?} ({})",
                settings.image
            ),
            // Keyed by run, so the next run's adoption is reported too.
            key: format!("{run_id}/chaos-exporter"),
        },
        Err(error) => EventReport {
            kind: EventType::Warning,
            reason: "ChaosExporterFailed".into(),
            message: format!("Could not create the chaos-exporter: {error}"),
            key: format!("{run_id}/chaos-exporter-failed"),
        },
    };
    tracing::info!(reason = %report.reason, "{}", report.message);
    if let Err(error) = events.emit(&report).await {
        tracing::warn!(%error, "could not emit the exporter event");
    }
}

/// Starts attempts as the scheduler allows until every item of the plan is terminal.
async fn execute_plan(context: &Arc<RunContext>, plan: &Plan) -> Result<RunEnd, RunError> {
    let mut states: BTreeMap<String, ItemState> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, String> = BTreeMap::new();
    let mut running: JoinSet<(String, Result<Option<AttemptEnd>, RunError>)> = JoinSet::new();
    let mut abort = context.abort.clone();
    let mut suspend = context.suspend.clone();
    loop {
        let aborting = abort.borrow_and_update().clone();
        if *suspend.borrow_and_update() && aborting.is_none() {
            // Nothing new starts; the running attempts checkpoint and return.
            while let Some(joined) = running.join_next().await {
                let (key, result) = joined.map_err(|e| RunError::Engine {
                    name: context.config.engine_name.clone(),
                    message: format!("an experiment task failed: {e}"),
                })?;
                if let Some(end) = result? {
                    outcomes.insert(key.clone(), end.summary());
                    states.insert(key, end.item_state());
                }
            }
            if plan.items.iter().any(|i| !outcomes.contains_key(&i.key)) {
                return Ok(RunEnd::Suspended);
            }
            break;
        }
        let now_ms = Timestamp::now().as_millisecond().max(0) as u64;
        let decision = schedule::decide(plan, &states, now_ms);
        let mut to_start = decision.start.clone();
        let mut to_skip = decision.skip.clone();
        if let Some(reason) = &aborting {
            // Nothing new starts; items never started end Aborted.
            for item in &plan.items {
                if matches!(states.get(&item.key), None | Some(ItemState::Waiting)) {
                    to_skip.push((
                        item.key.clone(),
                        format!("aborted before it started: {reason}"),
                    ));
                }
            }
            to_start.clear();
        }
        for key in to_start {
            let Some(item) = plan.items.iter().find(|i| i.key == key) else {
                continue;
            };
            states.insert(key.clone(), ItemState::Running);
            let runner = AttemptRunner::new(context.clone(), AttemptKey::of(item, context));
            running.spawn(async move { (key, runner.run().await) });
        }
        for (key, reason) in to_skip {
            let Some(item) = plan.items.iter().find(|i| i.key == key) else {
                continue;
            };
            let runner = AttemptRunner::new(context.clone(), AttemptKey::of(item, context));
            let end = runner.skip_unstarted(&reason, aborting.is_some()).await?;
            outcomes.insert(key.clone(), end.summary());
            states.insert(key, end.item_state());
        }
        if decision.done && running.is_empty() {
            break;
        }
        if running.is_empty()
            && aborting.is_some()
            && plan
                .items
                .iter()
                .all(|i| states.get(&i.key).is_some_and(ItemState::is_terminal))
        {
            break;
        }
        let wake = decision
            .wake_at_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms)));
        tokio::select! {
            Some(joined) = running.join_next(), if !running.is_empty() => {
                let (key, result) = joined.map_err(|e| RunError::Engine {
                    name: context.config.engine_name.clone(),
                    message: format!("an experiment task failed: {e}"),
                })?;
                // `None`: suspended; the loop's next turn waits for the others.
                if let Some(end) = result? {
                    outcomes.insert(key.clone(), end.summary());
                    states.insert(key, end.item_state());
                }
            }
            _ = sleep_opt(wake) => {}
            changed = abort.changed(), if aborting.is_none() => { let _ = changed; }
            changed = suspend.changed(), if aborting.is_none() => { let _ = changed; }
        }
    }
    Ok(RunEnd::Finished {
        outcomes: outcomes.into_iter().collect(),
    })
}

/// `chaos-runner.io/monitor-timeout: "<seconds>"` on the engine: the Monitor deadline for its
/// experiments (the env `CHAOS_RUNNER_MONITOR_TIMEOUT` wins).
fn monitor_timeout_annotation(annotations: &BTreeMap<String, String>) -> Option<Duration> {
    let raw = annotations.get("chaos-runner.io/monitor-timeout")?;
    match raw.trim().parse::<u64>() {
        Ok(seconds) if seconds > 0 => Some(Duration::from_secs(seconds)),
        _ => {
            tracing::warn!(value = %raw, "ignoring chaos-runner.io/monitor-timeout: not a positive number of seconds");
            None
        }
    }
}

pub async fn sleep_opt(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
