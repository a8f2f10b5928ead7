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
use kube::api::{Api, DynamicObject};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cluster::api::{call_opt, call_raw_opt};
use crate::cluster::engine_writer::{
    EngineWriter, ExperimentEntry, StatusChange, WriteError, WriterSeed,
};
use crate::cluster::events::{
    EngineRef, EventQueue, EventReport, EventSink, EventType, PendingEvents,
};
use crate::cluster::observe::{self, EngineSignal, PodMap};
use crate::cluster::{access, exporter};
use crate::contract::config::RunnerConfig;
use crate::contract::crd::ChaosEngine;
use crate::contract::hash::fnv1a64;
use crate::contract::merge::RunnerEnv;
use crate::contract::plan::{Plan, PlanInputs};
use crate::contract::record::{Incarnation, Ledger, RUN_ANNOTATION, RunRecord};
use crate::contract::schedule::{self, ItemState};
use crate::run::attempt::{AttemptEnd, AttemptKey, AttemptRunner};
use crate::run::context::{FoundAtStart, RunContext, RunEnd, RunError, RunOptions, now};

/// Runs the engine named by `config` to the end: read the engine and what it stores, decide the
/// plan, start the observers and the stop watch, then run the plan's attempts. Starts again
/// from the stored state when an older runner, still running, stored progress between this
/// one's read and its first write (nothing has been done by then: every side effect follows a
/// stored write); a few times, then the kubelet's restart does it.
pub async fn run(
    client: kube::Client,
    config: RunnerConfig,
    options: RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<RunEnd, RunError> {
    let mut overtaken = 0;
    loop {
        let end = run_once(client.clone(), config.clone(), &options, shutdown.clone()).await;
        match end {
            Err(RunError::Write(error @ WriteError::Overtaken(_)))
                if overtaken < OVERTAKEN_LIMIT =>
            {
                overtaken += 1;
                tracing::warn!(%error, "opening the run again");
            }
            end => return end,
        }
    }
}

/// How many times a run is opened again after an older runner's progress (see [`run`]).
const OVERTAKEN_LIMIT: u32 = 5;

async fn run_once(
    client: kube::Client,
    config: RunnerConfig,
    options: &RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<RunEnd, RunError> {
    let opened = match open_engine(&client, &config, &options.process()).await? {
        Ok(opened) => opened,
        Err(end) => return Ok(end),
    };
    let OpenedEngine {
        engines,
        access,
        raw_engine,
        engine,
        events,
        record,
        mut ledger,
        resumed,
    } = opened;
    let engine_uid = raw_engine.metadata.uid.clone().unwrap_or_default();
    let annotations = raw_engine.metadata.annotations.clone().unwrap_or_default();
    // The plan's inputs go out with the first write: if the runner stops before that, they
    // are derived again, identically, from the annotations and the run id.
    let plan = match decided_plan(&mut ledger, &config, &annotations, &engine_uid) {
        Ok(plan) => plan,
        Err(message) => {
            let seed = WriterSeed::bare(raw_engine, record, ledger);
            return reject_plan(&events, &engines, seed, &config, &message).await;
        }
    };
    let found = FoundAtStart::read(&record, &ledger, &plan, raw_engine.data.get("status"));
    warn_about_settings(&events, &engine, &config, &record.run_id).await;

    let run_id = record.run_id.clone();
    let waiting = waiting_entries(&plan, &config.engine_name, resumed, &found.verdicts);
    let events = Arc::new(events);
    let event_queue = EventQueue::spawn(events.clone(), PendingEvents::default());
    let seed = WriterSeed {
        engine: raw_engine.clone(),
        record,
        ledger,
        entries: waiting,
        events: Some(event_queue.clone()),
    };
    let (writer, engine_copies, writer_stats) = EngineWriter::spawn(engines.clone(), seed);

    let mut background = JoinSet::new();
    let engine_rx = observe_engine(
        &mut background,
        &engines,
        &config.engine_name,
        &raw_engine,
        access,
        engine_copies,
    );
    let (pods_rx, monitoring) =
        observe_pods(&mut background, &client, &config, &engine_uid, access);
    let stop = StopWatch::new(&engines, &config, &engine);
    let (abort_rx, suspend_rx) = (stop.abort.subscribe(), stop.suspend.subscribe());
    let first_signal = EngineSignal::of(Some(&raw_engine));
    background.spawn(watch_for_stop(stop, first_signal, engine_rx, shutdown));

    let spec = raw_engine.data.get("spec");
    if let Some(settings) = exporter::requested(spec, &annotations, &config.namespace) {
        let block = access.block_owner_deletion;
        ensure_exporter(&client, &events, &engine, &settings, &run_id, block).await;
    }

    let context = Arc::new(RunContext {
        client,
        runner_env: RunnerEnv::from_config(&config),
        config,
        cleanup: cleanup_policy(&engine),
        engine,
        engine_uid,
        run_id,
        access,
        writer,
        events: event_queue,
        pods: pods_rx,
        monitoring,
        abort: abort_rx,
        suspend: suspend_rx,
        monitor_timeout: options
            .monitor_timeout
            .or_else(|| monitor_timeout_annotation(&annotations)),
        found,
        experiments: Default::default(),
        launches: tokio::sync::Semaphore::new(crate::run::context::LAUNCHES_AT_ONCE),
    });
    if resumed {
        resend_lost_events(&context, &events).await;
    }
    let outcome = execute_plan(&context, &plan).await;
    // Staged writes are stored, then every event queued so far goes out, before the exit.
    let stored = context.writer.flush().await;
    context.events.drain().await;
    let stats = *writer_stats.borrow();
    tracing::info!(
        patches = stats.patches,
        conflicts = stats.conflicts,
        bytes = stats.patch_bytes,
        largest = stats.largest_patch,
        "engine writes"
    );
    background.abort_all();
    match stored {
        // A deleted engine is an abort: nothing to store any more.
        Ok(()) | Err(WriteError::EngineGone(_)) => outcome,
        Err(error) => {
            tracing::error!(%error, "could not store the run's last changes");
            outcome.and(Err(error.into()))
        }
    }
}

/// The engine as the run starts from it: read, decoded, with the record it stores.
struct OpenedEngine {
    engines: Api<DynamicObject>,
    access: access::Access,
    raw_engine: DynamicObject,
    engine: ChaosEngine,
    events: EventSink,
    record: RunRecord,
    ledger: Ledger,
    /// True when the record was found (checkpoint or ledger), false for a new run.
    resumed: bool,
}

/// Asks what the runner may do, reads the engine and decodes it with its stored record.
/// `Err(end)`: nothing to run (the engine is gone, or reported as unreadable).
async fn open_engine(
    client: &kube::Client,
    config: &RunnerConfig,
    process: &str,
) -> Result<Result<OpenedEngine, RunEnd>, RunError> {
    let namespace = &config.namespace;
    let engines: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &crate::contract::crd::engine_resource(),
    );
    let access = access::probe(client, namespace).await;
    let mode = if access.watches() { "watch" } else { "poll" };
    tracing::info!(mode, "{}", access.describe());

    let what = format!("get ChaosEngine {}", config.engine_name);
    let raw_engine = match call_opt(&what, || engines.get(&config.engine_name)).await {
        Ok(Some(engine)) => engine,
        Ok(None) => {
            tracing::error!(engine = %config.engine_name, %namespace, "ChaosEngine not found: nothing to run");
            return Ok(Err(RunEnd::EngineGone));
        }
        // It would not decode better after a restart: report it rather than crash-loop,
        // reading the uid raw (even the metadata may not decode: `managedFields` mirror the
        // nesting).
        Err(error) if error.is_undecodable() => {
            let Some(uid) =
                uid_of_undecodable_engine(client, namespace, &config.engine_name).await?
            else {
                return Ok(Err(RunEnd::EngineGone));
            };
            let events =
                EventSink::new(client.clone(), engine_ref(config, uid), access.patch_events);
            let message = format!("the ChaosEngine cannot be decoded: {error}");
            let end = report_unrunnable(client, &events, "EngineInvalid", message);
            return end.await.map(Err);
        }
        Err(error) => return Err(error.into()),
    };
    let engine_uid = raw_engine.metadata.uid.clone().unwrap_or_default();
    let events = EventSink::new(
        client.clone(),
        engine_ref(config, engine_uid.clone()),
        access.patch_events,
    );
    // An engine this runner cannot read will not read better after a restart: report it where
    // users look and end (exit 0) rather than crash-loop.
    let engine: ChaosEngine = match serde_json::to_value(&raw_engine)
        .map_err(|e| e.to_string())
        .and_then(|value| crate::contract::crd::decode(value).map_err(|e| e.to_string()))
    {
        Ok(engine) => engine,
        Err(error) => {
            let message = format!("the ChaosEngine spec cannot be read: {error}");
            let end = report_unrunnable(client, &events, "EngineInvalid", message);
            return end.await.map(Err);
        }
    };
    let found = match RunRecord::from_status(raw_engine.data.get("status")) {
        Ok(found) => found,
        Err(error) => {
            // Left as it is: a newer runner's record must not be overwritten by an older one.
            let message = error.to_string();
            let reason = "CheckpointUnreadable";
            let end = report_unrunnable(client, &events, reason, message);
            return end.await.map(Err);
        }
    };
    let (mut record, ledger, resumed) = open_record(found, &raw_engine, &engine_uid, process);
    // This process's place among the runners of the run (fencing: see the engine writer).
    let id = format!("{:08x}", fnv1a64(&[process, &now(), &engine_uid]) as u32);
    record.incarnation = Incarnation::after(&record.incarnation, id);
    Ok(Ok(OpenedEngine {
        engines,
        access,
        raw_engine,
        engine,
        events,
        record,
        ledger,
        resumed,
    }))
}

/// The run's record and ledger: the stored ones; else, when the checkpoint is gone but the
/// run's entries and ledger are there, a record for the ledger's run (the cluster tells the
/// rest); else a new run (a re-run after the operator cleared the status has no entries).
/// True when resumed.
fn open_record(
    found: Option<RunRecord>,
    raw_engine: &DynamicObject,
    engine_uid: &str,
    process: &str,
) -> (RunRecord, Ledger, bool) {
    let ledger = Ledger::from_annotations(raw_engine.metadata.annotations.as_ref());
    let has_entries = raw_engine
        .data
        .get("status")
        .and_then(|s| s.get("experiments"))
        .and_then(|e| e.as_array())
        .is_some_and(|e| !e.is_empty());
    let fresh_ledger = |record: &RunRecord| Ledger::for_record(record);
    match (found, ledger) {
        (Some(record), ledger) => {
            tracing::info!(run = %record.run_id, "resuming from the checkpoint in the engine status");
            // The ledger of another run (left by an earlier one) is replaced.
            let ledger = ledger
                .filter(|l| l.header.run_id == record.run_id)
                .unwrap_or_else(|| fresh_ledger(&record));
            (record, ledger, true)
        }
        (None, Some(ledger)) if has_entries => {
            tracing::info!(run = %ledger.header.run_id, "no checkpoint: resuming from the recorded progress and the cluster");
            let record = RunRecord::new(
                ledger.header.run_id.clone(),
                ledger.header.started_at.clone(),
            );
            (record, ledger, true)
        }
        _ => {
            let started = now();
            let run_id = format!("{:08x}", fnv1a64(&[engine_uid, &started, process]) as u32);
            tracing::info!(run = %run_id, "starting a new run");
            let record = RunRecord::new(run_id, started);
            let ledger = fresh_ledger(&record);
            (record, ledger, false)
        }
    }
}

/// The plan: the one recorded with the run (resolved again from its recorded inputs), or one
/// resolved from the annotations with a seed from the run id (so a restart before the first
/// write resolves the same one), whose inputs are then recorded.
fn decided_plan(
    ledger: &mut Ledger,
    config: &RunnerConfig,
    annotations: &BTreeMap<String, String>,
    engine_uid: &str,
) -> Result<Plan, String> {
    if let Some(recorded) = &ledger.header.plan {
        // A recorded plan that does not resolve to the same plan here is refused: a plan
        // resolved again from today's annotations could differ from the one that ran.
        return recorded.resolve().map_err(|error| {
            format!("the plan recorded in annotation {RUN_ANNOTATION} cannot be followed: {error}")
        });
    }
    let seed = fnv1a64(&[&ledger.header.run_id, engine_uid]);
    let (inputs, plan) = PlanInputs::resolve_new(&config.experiments, annotations, seed)
        .map_err(|error| error.to_string())?;
    ledger.header.plan = Some(inputs);
    Ok(plan)
}

/// Only the exact `delete` deletes (contract).
fn cleanup_policy(engine: &ChaosEngine) -> chaos_runner_states::CleanupPolicy {
    let policy = engine.spec.job_clean_up_policy.as_ref();
    if policy.is_some_and(|p| p.deletes()) {
        chaos_runner_states::CleanupPolicy::Delete
    } else {
        chaos_runner_states::CleanupPolicy::Retain
    }
}

/// Warnings about settings the run goes on with: a cleanup policy outside the enum (the Jobs
/// are retained, as the contract says) and experiments named more than once (run once).
async fn warn_about_settings(
    events: &EventSink,
    engine: &ChaosEngine,
    config: &RunnerConfig,
    run_id: &str,
) {
    let mut reports = Vec::new();
    if let Some(crate::contract::crd::JobCleanUpPolicy::Other(value)) =
        &engine.spec.job_clean_up_policy
    {
        reports.push(EventReport {
            kind: EventType::Warning,
            reason: "JobCleanUpPolicyUnknown".into(),
            message: format!(
                "spec.jobCleanUpPolicy {value:?} is neither \"delete\" nor \"retain\": experiment Jobs will be retained"
            ),
            key: format!("{run_id}/policy/{value}"),
        });
    }
    if !config.repeated_experiments.is_empty() {
        let names = config.repeated_experiments.join(", ");
        reports.push(EventReport {
            kind: EventType::Warning,
            reason: "EnvParseError".into(),
            message: format!(
                "EXPERIMENT_LIST names {names} more than once: each runs once (an experiment has one status entry)"
            ),
            key: format!("{run_id}/repeated/{names}"),
        });
    }
    for report in reports {
        tracing::warn!(reason = %report.reason, "{}", report.message);
        if let Err(error) = events.emit(&report).await {
            tracing::warn!(%error, reason = %report.reason, "could not emit the warning");
        }
    }
}

/// Follows the engine (for stop and deletion): by watch or by polling, plus every copy the
/// writer's answers bring. Returns the channel of copies, in order.
fn observe_engine(
    background: &mut JoinSet<()>,
    engines: &Api<DynamicObject>,
    engine_name: &str,
    raw_engine: &DynamicObject,
    access: access::Access,
    mut writer_copies: watch::Receiver<EngineSignal>,
) -> tokio::sync::mpsc::UnboundedReceiver<EngineSignal> {
    let (engine_tx, engine_rx) = tokio::sync::mpsc::unbounded_channel();
    let glimpses: Api<observe::EngineGlimpse> = Api::namespaced_with(
        engines.clone().into_client(),
        engines.namespace().unwrap_or_default(),
        &crate::contract::crd::engine_resource(),
    );
    if access.watch_engine {
        let version = raw_engine.metadata.resource_version.clone();
        background.spawn(observe::watch_engine(
            glimpses.clone(),
            engine_name.to_string(),
            version.unwrap_or_default(),
            engine_tx.clone(),
        ));
    } else {
        background.spawn(observe::poll_engine(
            glimpses.clone(),
            engine_name.to_string(),
            engine_tx.clone(),
            observe::POD_POLL_INTERVAL * observe::ENGINE_POLL_EVERY,
        ));
    }
    background.spawn(async move {
        while writer_copies.changed().await.is_ok() {
            let copy = *writer_copies.borrow_and_update();
            if engine_tx.send(copy).is_err() {
                return;
            }
        }
    });
    engine_rx
}

/// Follows the experiment pods: by watch, or by polling while some attempt is in Monitor.
fn observe_pods(
    background: &mut JoinSet<()>,
    client: &kube::Client,
    config: &RunnerConfig,
    engine_uid: &str,
    access: access::Access,
) -> (watch::Receiver<PodMap>, watch::Sender<observe::Monitored>) {
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &config.namespace);
    let (pods_tx, pods_rx) = watch::channel(PodMap::default());
    let (monitoring, monitoring_rx) = watch::channel(observe::Monitored::new());
    let uid = engine_uid.to_string();
    if access.watch_pods {
        background.spawn(observe::watch_pods(pod_api, uid, pods_tx));
    } else {
        background.spawn(observe::poll_pods(pod_api, uid, pods_tx, monitoring_rx));
    }
    (pods_rx, monitoring)
}

/// Events are sent after the checkpoint they describe, so a runner that dies in between loses
/// them; the trail has every transition. A resumed runner sends the Event of every recorded
/// transition that has none (names are derived from the record, so one that exists is not
/// sent again; if the Events cannot be listed, all are sent and existing ones answer 409
/// without a count bump).
async fn resend_lost_events(context: &RunContext, events: &EventSink) {
    let existing = match events.existing_names().await {
        Ok(names) => Some(names),
        Err(error) => {
            tracing::info!(%error, "cannot list the engine's Events; sending every recorded one again");
            None
        }
    };
    let mut resent = 0;
    for entry in &context.found.trail {
        let report = crate::run::attempt::recorded_transition_event(&context.run_id, entry);
        let name = events.event_name(&report.key);
        if existing.as_ref().is_some_and(|names| names.contains(&name)) {
            continue;
        }
        context.events.emit(report);
        resent += 1;
    }
    if resent > 0 {
        tracing::info!(
            resent,
            "sending the Events of recorded transitions that have none"
        );
    }
}

/// The Go runner's entry for an experiment not launched yet, for every experiment of the plan
/// that has no entry yet (`existing`: the entries found at start, kept when `resumed`).
///
/// Every experiment is listed from the run's first write, as the Go runner does: the
/// operator's abort rewrites the entries it finds (`Waiting for Job Creation`, `Running`) and
/// replaces the whole array, so an experiment not listed yet would be lost.
fn waiting_entries(
    plan: &Plan,
    engine_name: &str,
    resumed: bool,
    existing: &BTreeMap<String, String>,
) -> Vec<ExperimentEntry> {
    let at = now();
    let mut names: Vec<&str> = plan.items.iter().map(|i| i.experiment.as_str()).collect();
    names.dedup();
    names
        .into_iter()
        .filter(|name| !resumed || !existing.contains_key(*name))
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

impl StopWatch {
    /// Abort: engineState stop, engine deletion. SIGTERM alone is a drain, an eviction or a
    /// deleted pod: the run is suspended (checkpoint, Jobs left running, non-zero exit) and the
    /// operator's next runner pod resumes it.
    fn new(engines: &Api<DynamicObject>, config: &RunnerConfig, engine: &ChaosEngine) -> StopWatch {
        StopWatch {
            engines: engines.clone(),
            engine_name: config.engine_name.clone(),
            grace: termination_grace(engine),
            abort: watch::channel(None).0,
            suspend: watch::channel(false).0,
        }
    }
}

/// Decides abort or suspension from every engine copy (in order, so a stale copy arriving late
/// cannot hide a stop) and from SIGTERM. A SIGTERM is an abort only when the engine says so:
/// it is read once more then, since the operator's stop and its SIGTERM race each other.
async fn watch_for_stop(
    stop: StopWatch,
    mut signal: EngineSignal,
    mut engine_copies: tokio::sync::mpsc::UnboundedReceiver<EngineSignal>,
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
            crate::cluster::api::finish_calls_by(
                tokio::time::Instant::now() + call_budget(stop.grace),
            );
            stop.abort.send_replace(Some(reason.to_string()));
            return;
        }
        if !suspended && *shutdown.borrow_and_update() {
            crate::cluster::api::finish_calls_by(
                tokio::time::Instant::now() + call_budget(stop.grace),
            );
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
            biased;
            copy = engine_copies.recv() => match copy {
                Some(copy) => signal = copy,
                None => return,
            },
            changed = shutdown.changed(), if !suspended => if changed.is_err() { return },
        }
    }
}

/// How long a SIGTERM waits for a fresh copy of the engine before it suspends.
const SIGTERM_ENGINE_READ: Duration = Duration::from_secs(3);

/// The engine's requests, built by hand where the answer is read raw or not at all.
fn engine_requests(namespace: &str) -> kube::core::Request {
    use kube::Resource as _;
    let resource = crate::contract::crd::engine_resource();
    kube::core::Request::new(DynamicObject::url_path(&resource, Some(namespace)))
}

/// The uid of an engine whose answer kube cannot decode, read raw; `None` when it is gone.
async fn uid_of_undecodable_engine(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, RunError> {
    let what = format!("get ChaosEngine {name} (raw)");
    let requests = engine_requests(namespace);
    let params = kube::api::GetParams::default();
    let get = || requests.get(name, &params);
    let Some(text) = call_raw_opt(client, &what, get).await? else {
        return Ok(None);
    };
    let uid = crate::contract::crd::uid_however_deep(text).unwrap_or_else(|error| {
        tracing::warn!(%error, "the ChaosEngine's uid cannot be read; its Event names none");
        None
    });
    Ok(Some(uid.unwrap_or_default()))
}

fn engine_ref(config: &RunnerConfig, uid: String) -> EngineRef {
    EngineRef {
        name: config.engine_name.clone(),
        namespace: config.namespace.clone(),
        uid,
    }
}

/// Reports an engine this runner cannot run: a Warning Event and `status.chaosRunner.failure`
/// (a merge patch of that one field: the rest of the status stays as it is).
async fn report_unrunnable(
    client: &kube::Client,
    events: &EventSink,
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
    let patch =
        serde_json::json!({"status": {crate::contract::record::STATUS_KEY: {"failure": message}}});
    let engine = events.engine();
    let what = format!("patch ChaosEngine {}", engine.name);
    let params = kube::api::PatchParams::default();
    let patch = kube::api::Patch::Merge(&patch);
    let requests = engine_requests(&engine.namespace);
    // The answer is not read: the engine may not decode.
    call_raw_opt(client, &what, || {
        requests.patch(&engine.name, &params, &patch)
    })
    .await?;
    Ok(RunEnd::Unrunnable(message))
}

async fn reject_plan(
    events: &EventSink,
    engines: &Api<DynamicObject>,
    mut seed: WriterSeed,
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
        key: format!("{}/plan-invalid/{message}", seed.record.run_id),
    };
    seed.record.failure = Some(format!("invalid run plan: {message}"));
    refuse(
        events,
        engines,
        seed,
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
    seed: WriterSeed,
    engine_name: &str,
    experiments: &[String],
    report: &EventReport,
) -> Result<(), RunError> {
    let (writer, _, _) = EngineWriter::spawn(engines.clone(), seed);
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
    error: &crate::contract::config::ConfigError,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (Some(name), Some(namespace)) = (env.get("CHAOSENGINE"), env.get("CHAOS_NAMESPACE")) else {
        return ExitCode::from(crate::run::context::EXIT_BAD_INPUT);
    };
    let engines: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &crate::contract::crd::engine_resource(),
    );
    let what = format!("get ChaosEngine {name}");
    let not_found = || {
        tracing::error!(engine = %name, "ChaosEngine not found: the env error cannot be reported to it");
        ExitCode::SUCCESS
    };
    let raw_engine = match call_opt(&what, || engines.get(name)).await {
        Ok(Some(engine)) => engine,
        Ok(None) => return not_found(),
        // Too deep to decode: the env error is still reported, raw (no status entries).
        Err(undecodable) if undecodable.is_undecodable() => {
            let uid = match uid_of_undecodable_engine(client, namespace, name).await {
                Ok(Some(uid)) => uid,
                Ok(None) => return not_found(),
                Err(error) => {
                    tracing::error!(%error, "cannot read the ChaosEngine");
                    return ExitCode::from(crate::run::context::EXIT_RETRY);
                }
            };
            let engine = EngineRef {
                name: name.clone(),
                namespace: namespace.clone(),
                uid,
            };
            let events = EventSink::new(client.clone(), engine, true);
            let report = report_unrunnable(client, &events, "EnvParseError", error.to_string());
            return match report.await {
                Ok(_) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "could not report the env error");
                    ExitCode::from(crate::run::context::EXIT_RETRY)
                }
            };
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the ChaosEngine");
            return ExitCode::from(crate::run::context::EXIT_RETRY);
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
    let ledger = Ledger::for_record(&record);
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
    let seed = WriterSeed::bare(raw_engine, record, ledger);
    match refuse(&events, &engines, seed, name, &experiments, &report).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "could not report the env error");
            ExitCode::from(crate::run::context::EXIT_RETRY)
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
            biased;
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
    settings: &exporter::ExporterSettings,
    run_id: &str,
    block_owner_deletion: bool,
) {
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: crate::contract::crd::API_VERSION.to_string(),
        kind: "ChaosEngine".to_string(),
        name: engine.metadata.name.clone().unwrap_or_default(),
        uid: engine.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true).filter(|_| block_owner_deletion),
    };
    let report = match exporter::ensure(client, settings, &owner).await {
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
    let mut run = PlanRun::resumed(context, plan);
    let mut abort = context.abort.clone();
    let mut suspend = context.suspend.clone();
    loop {
        let aborting = abort.borrow_and_update().clone();
        if *suspend.borrow_and_update() && aborting.is_none() {
            // Nothing new starts; the running attempts checkpoint and return.
            while let Some(joined) = run.running.join_next().await {
                run.joined(context, joined)?;
            }
            if plan
                .items
                .iter()
                .any(|i| !run.outcomes.contains_key(&i.key))
            {
                return Ok(RunEnd::Suspended);
            }
            break;
        }
        let now_ms = crate::cluster::clock::now_ms();
        let decision = schedule::decide(plan, &run.states, now_ms);
        let (to_start, to_skip) = match &aborting {
            // Nothing new starts; items never started end Aborted. An attempt an earlier
            // runner started is run, so that its abort deletes its Job and checkpoint.
            Some(reason) => (
                run.started_before(context, plan),
                run.unstarted(context, plan, reason),
            ),
            None => (decision.start.clone(), decision.skip.clone()),
        };
        for key in to_start {
            run.start(context, plan, key);
        }
        for (key, reason) in to_skip {
            run.skip(context, plan, key, &reason, aborting.is_some())
                .await?;
        }
        let all_terminal = plan
            .items
            .iter()
            .all(|i| run.states.get(&i.key).is_some_and(ItemState::is_terminal));
        if run.running.is_empty() && (decision.done || (aborting.is_some() && all_terminal)) {
            break;
        }
        let wake = decision
            .wake_at_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms)));
        tokio::select! {
            biased;
            Some(joined) = run.running.join_next(), if !run.running.is_empty() => {
                run.joined(context, joined)?;
            }
            _ = crate::run::context::sleep_opt(wake) => {}
            () = crate::run::context::changed_or_never(&mut abort), if aborting.is_none() => {}
            () = crate::run::context::changed_or_never(&mut suspend), if aborting.is_none() => {}
        }
    }
    Ok(RunEnd::Finished {
        outcomes: run.outcomes.into_iter().collect(),
    })
}

/// Whether an earlier runner started the attempt and did not see it end.
fn was_started(context: &RunContext, key: &str) -> bool {
    let found = &context.found;
    found.checkpoints.contains_key(key)
        || found.progress.get(key).is_some_and(|p| !p.mark.is_final())
}

/// One attempt task's answer: its item key and how it ended (`None`: suspended).
type AttemptTask = (String, Result<Option<AttemptEnd>, RunError>);

/// The plan's items as the run goes: their states for the scheduler, the outcomes for the
/// final log, and the attempts in flight.
#[derive(Default)]
struct PlanRun {
    states: BTreeMap<String, ItemState>,
    outcomes: BTreeMap<String, String>,
    running: JoinSet<AttemptTask>,
}

impl PlanRun {
    /// The attempts the recorded progress shows ended are not started again: their checkpoints
    /// are gone, their marks say how they ended.
    fn resumed(context: &RunContext, plan: &Plan) -> PlanRun {
        let mut run = PlanRun::default();
        let found = &context.found;
        for item in &plan.items {
            let Some(progress) = found.progress.get(&item.key) else {
                continue;
            };
            if progress.mark.is_final() && !found.checkpoints.contains_key(&item.key) {
                let verdict = found.verdicts.get(&item.experiment).map(String::as_str);
                let end = AttemptEnd::recorded(*progress, &found.started_at, verdict);
                run.ended(item.key.clone(), &end);
            }
        }
        run
    }

    fn ended(&mut self, key: String, end: &AttemptEnd) {
        self.outcomes.insert(key.clone(), end.summary());
        self.states.insert(key, end.item_state());
    }

    /// Takes in a finished attempt task; a suspended one leaves its item as it was.
    fn joined(
        &mut self,
        context: &RunContext,
        joined: Result<AttemptTask, tokio::task::JoinError>,
    ) -> Result<(), RunError> {
        let (key, result) = joined.map_err(|e| RunError::Engine {
            name: context.config.engine_name.clone(),
            message: format!("an experiment task failed: {e}"),
        })?;
        if let Some(end) = result? {
            self.ended(key, &end);
        }
        Ok(())
    }

    /// Items not started here but by an earlier runner (a checkpoint, or progress that did not
    /// end), not running yet.
    fn started_before(&self, context: &RunContext, plan: &Plan) -> Vec<String> {
        plan.items
            .iter()
            .filter(|item| self.is_waiting(&item.key) && was_started(context, &item.key))
            .map(|item| item.key.clone())
            .collect()
    }

    fn is_waiting(&self, key: &str) -> bool {
        matches!(self.states.get(key), None | Some(ItemState::Waiting))
    }

    /// The items never started, each with the abort as the reason.
    fn unstarted(&self, context: &RunContext, plan: &Plan, reason: &str) -> Vec<(String, String)> {
        plan.items
            .iter()
            .filter(|item| self.is_waiting(&item.key) && !was_started(context, &item.key))
            .map(|item| {
                (
                    item.key.clone(),
                    format!("aborted before it started: {reason}"),
                )
            })
            .collect()
    }

    fn start(&mut self, context: &Arc<RunContext>, plan: &Plan, key: String) {
        let Some(position) = plan.items.iter().position(|i| i.key == key) else {
            return;
        };
        let item = &plan.items[position];
        self.states.insert(key.clone(), ItemState::Running);
        let attempt = AttemptKey::of(position, item, context);
        let runner = AttemptRunner::new(context.clone(), attempt);
        self.running.spawn(async move { (key, runner.run().await) });
    }

    async fn skip(
        &mut self,
        context: &Arc<RunContext>,
        plan: &Plan,
        key: String,
        reason: &str,
        aborted: bool,
    ) -> Result<(), RunError> {
        let Some(position) = plan.items.iter().position(|i| i.key == key) else {
            return Ok(());
        };
        let attempt = AttemptKey::of(position, &plan.items[position], context);
        let runner = AttemptRunner::new(context.clone(), attempt);
        let end = runner.skip_unstarted(reason, aborted).await?;
        self.ended(key, &end);
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunnerConfig {
        let env: BTreeMap<String, String> = [
            ("CHAOSENGINE", "demo"),
            ("CHAOS_NAMESPACE", "ns"),
            ("EXPERIMENT_LIST", "a,b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        RunnerConfig::from_env(&env).unwrap()
    }

    fn ledger() -> Ledger {
        Ledger::new(crate::contract::record::RunHeader {
            run_id: "r1".into(),
            started_at: now(),
            plan: None,
        })
    }

    #[test]
    fn a_recorded_plan_is_followed_and_one_that_resolves_otherwise_is_refused() {
        let mut ledger = ledger();
        let plan = decided_plan(&mut ledger, &config(), &BTreeMap::new(), "uid").unwrap();
        let recorded = ledger.header.plan.clone().unwrap();
        assert_eq!(recorded.experiments, ["a", "b"]);
        // Today's annotations no longer matter: the recorded inputs decide.
        let changed: BTreeMap<String, String> =
            [("chaos-runner.io/max-parallel".to_string(), "2".to_string())].into();
        assert_eq!(
            decided_plan(&mut ledger, &config(), &changed, "uid").unwrap(),
            plan
        );
        // Inputs that resolve to another plan than the recorded one (another runner
        // version, or a damaged record) are refused, not resolved again from the annotations.
        ledger.header.plan.as_mut().unwrap().digest = "0000000000000000".into();
        let error = decided_plan(&mut ledger, &config(), &changed, "uid").unwrap_err();
        assert!(error.contains(RUN_ANNOTATION), "{error}");
    }

    #[test]
    fn every_experiment_of_the_plan_is_listed_waiting_unless_a_resumed_run_has_its_entry() {
        let plan = decided_plan(&mut ledger(), &config(), &BTreeMap::new(), "uid").unwrap();
        let found: BTreeMap<String, String> = [("a".to_string(), "Pass".to_string())].into();
        let names = |entries: Vec<ExperimentEntry>| -> Vec<String> {
            entries.into_iter().map(|e| e.name).collect()
        };
        assert_eq!(
            names(waiting_entries(&plan, "demo", false, &found)),
            ["a", "b"]
        );
        assert_eq!(names(waiting_entries(&plan, "demo", true, &found)), ["b"]);
        let entry = &waiting_entries(&plan, "demo", false, &found)[0];
        assert_eq!(
            (
                entry.experiment_pod.as_str(),
                entry.status.as_str(),
                entry.verdict.as_str()
            ),
            ("Yet to be launched", "Waiting for Job Creation", "N/A")
        );
    }
}
