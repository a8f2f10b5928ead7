//! The only writer of the ChaosEngine: one task that turns status changes from every experiment
//! into few compare-and-swap JSON patches that carry only what changed.
//!
//! Changes that arrive while a patch is in flight are coalesced into the next one (group
//! commit), so 100 experiments in flight do not mean 100 patches. The writer keeps what the
//! runner's fields should be (`status.experiments` entries, `status.chaosRunner`, the ledger's
//! annotations) and sends the JSON patch (RFC 6902) from the engine as last seen to that: an
//! entry's changed fields, a checkpoint added or removed, a changed progress annotation or trail
//! segment — never the whole history. The first operation sets `metadata.resourceVersion` to
//! the copy the patch was computed from: the apiserver answers 409 if the engine changed since
//! (the operator's abort rewrites `status.experiments`), then the engine is read again and the
//! patch computed anew. The stock CRD has no status subresource, so status is patched on the
//! main resource.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster::api::{ApiError, call, call_opt};
use crate::cluster::events::{EventQueue, EventReport};
use crate::cluster::observe::EngineSignal;
use crate::contract::record::{
    AuditEntry, Ledger, Progress, RunRecord, STATUS_KEY, transition_event_key,
};

/// How often a patch may meet a conflict before the write fails.
const CONFLICT_LIMIT: usize = 20;

/// One experiment's entry in `status.experiments` (contract §2 strings).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentEntry {
    pub name: String,
    pub runner: String,
    pub experiment_pod: String,
    pub status: String,
    pub verdict: String,
    pub last_update_time: String,
    /// With iterations: which one this entry is about, and how many there are (fields the
    /// runner adds; Litmus tools ignore them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
}

/// Changes to lay over the engine in one write.
#[derive(Debug, Default, Clone)]
pub struct StatusChange {
    /// Upserted by name into `status.experiments`.
    pub entries: Vec<ExperimentEntry>,
    /// Attempt checkpoints by attempt key; `None` removes one (the attempt has finished).
    pub checkpoints: Vec<(String, Option<Value>)>,
    /// Attempts' progress by plan position.
    pub progress: Vec<(usize, Progress)>,
    pub audit: Vec<AuditEntry>,
}

impl StatusChange {
    fn absorb(&mut self, other: StatusChange) {
        self.entries.extend(other.entries);
        self.checkpoints.extend(other.checkpoints);
        self.progress.extend(other.progress);
        self.audit.extend(other.audit);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.checkpoints.is_empty()
            && self.progress.is_empty()
            && self.audit.is_empty()
    }
}

/// Why a write did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("ChaosEngine {0} no longer exists")]
    EngineGone(String),
    #[error("writing ChaosEngine {name}: {message}")]
    Api { name: String, message: String },
    #[error("writing ChaosEngine {0}: still conflicting after {CONFLICT_LIMIT} attempts")]
    Conflicts(String),
    #[error("the ChaosEngine writer has stopped")]
    Stopped,
    #[error("ChaosEngine {name}: another runner (incarnation {by}) has taken over this run")]
    Replaced { name: String, by: String },
    /// Before this runner's first write, an older runner stored progress that this one did
    /// not read: it must start again from the stored state, or it would write back the run
    /// as it was and lose what the older runner did (a Job created, an attempt ended).
    #[error(
        "ChaosEngine {0}: an older runner stored progress after this one read the run; \
         starting again from the stored state"
    )]
    Overtaken(String),
}

enum Request {
    /// Write now (with everything staged) and answer when stored.
    Commit {
        change: StatusChange,
        done: oneshot::Sender<Result<(), WriteError>>,
    },
    /// Write with the next commit, or within [`LINGER`]; `events` are sent once it is stored.
    Stage {
        change: StatusChange,
        events: Vec<EventReport>,
    },
}

/// How long a staged change may wait for a commit to travel with. A change is staged when no
/// side effect depends on it (the checkpoint of a created Job, a pod seen running, an ended
/// attempt): the next attempt's first write, or the pod's, usually comes sooner.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct EngineWriter {
    requests: mpsc::UnboundedSender<Request>,
}

/// Counters for the benchmark and the logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    pub patches: u64,
    pub conflicts: u64,
    pub changes: u64,
    /// Bytes of every patch body sent, and of the largest.
    pub patch_bytes: u64,
    pub largest_patch: u64,
}

/// What the writer starts from.
pub struct WriterSeed {
    /// The engine as last read.
    pub engine: DynamicObject,
    pub record: RunRecord,
    pub ledger: Ledger,
    /// Laid over the engine from the first write on, until replaced by name.
    pub entries: Vec<ExperimentEntry>,
    /// Where the Events of staged changes go once they are stored; its pending keys are the
    /// Events not sent yet, whose transitions the trail keeps.
    pub events: Option<EventQueue>,
}

impl WriterSeed {
    /// A writer for one report before the run starts (a refused plan or env): no entries laid
    /// over the engine, Events sent by the caller.
    pub fn bare(engine: DynamicObject, record: RunRecord, ledger: Ledger) -> WriterSeed {
        WriterSeed {
            engine,
            record,
            ledger,
            entries: Vec::new(),
            events: None,
        }
    }
}

impl EngineWriter {
    /// Starts the writer. The returned receiver always holds the newest copy of the engine the
    /// writer has seen (from its own patch answers and re-reads) — `None` once it is gone.
    pub fn spawn(
        api: Api<DynamicObject>,
        seed: WriterSeed,
    ) -> (
        EngineWriter,
        watch::Receiver<EngineSignal>,
        watch::Receiver<WriterStats>,
    ) {
        let (requests, inbox) = mpsc::unbounded_channel();
        let (engine_tx, engine_rx) = watch::channel(EngineSignal::of(Some(&seed.engine)));
        let (stats_tx, stats_rx) = watch::channel(WriterStats::default());
        let opened = runner_fields(&seed.engine);
        let task = WriterTask {
            api,
            name: seed.engine.metadata.name.clone().unwrap_or_default(),
            engine: DynamicObject {
                metadata: kube::api::ObjectMeta {
                    managed_fields: None,
                    ..seed.engine.metadata
                },
                ..seed.engine
            },
            record: seed.record,
            ledger: seed.ledger,
            entries: seed
                .entries
                .into_iter()
                .map(|e| (e.name.clone(), e))
                .collect(),
            events: seed.events,
            staged_events: Vec::new(),
            linger_until: None,
            engine_tx,
            stats_tx,
            stats: WriterStats::default(),
            replaced: None,
            opened: Some(opened),
        };
        tokio::spawn(task.run(inbox));
        (EngineWriter { requests }, engine_rx, stats_rx)
    }

    /// Writes `change` and returns once it is stored in the engine (or could not be).
    pub async fn commit(&self, change: StatusChange) -> Result<(), WriteError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send(Request::Commit { change, done })
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Hands `change` over to be written with the next commit or within [`LINGER`], and its
    /// `events` to be sent after that. Returns at once: only for changes no side effect waits
    /// for (every create and delete is preceded by a [`commit`](Self::commit), which carries
    /// whatever was staged before it).
    pub fn stage(&self, change: StatusChange, events: Vec<EventReport>) -> Result<(), WriteError> {
        self.requests
            .send(Request::Stage { change, events })
            .map_err(|_| WriteError::Stopped)
    }

    /// Writes whatever is staged and returns once it is stored.
    pub async fn flush(&self) -> Result<(), WriteError> {
        self.commit(StatusChange::default()).await
    }
}

struct WriterTask {
    api: Api<DynamicObject>,
    name: String,
    engine: DynamicObject,
    record: RunRecord,
    ledger: Ledger,
    /// Entries this run has written, by experiment name, laid over every fresh copy.
    entries: BTreeMap<String, ExperimentEntry>,
    events: Option<EventQueue>,
    /// Events of staged changes not stored yet.
    staged_events: Vec<EventReport>,
    /// When staged changes are written at the latest.
    linger_until: Option<tokio::time::Instant>,
    /// What the newest copy of the engine says (stop, deleted), for the stop watcher.
    engine_tx: watch::Sender<EngineSignal>,
    stats_tx: watch::Sender<WriterStats>,
    stats: WriterStats,
    /// Set once another runner has taken over, or had overtaken this one before its first
    /// write: nothing is written any more.
    replaced: Option<WriteError>,
    /// The runner's fields of the engine as the run was opened ([`runner_fields`]), until a
    /// write of this runner's is stored.
    opened: Option<u64>,
}

impl WriterTask {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>) {
        loop {
            let linger = self.linger_until;
            let first = tokio::select! {
                biased;
                request = inbox.recv() => match request {
                    Some(request) => Some(request),
                    None => break,
                },
                () = crate::run::context::sleep_until_opt(linger) => None,
            };
            let lingered = first.is_none();
            let mut change = StatusChange::default();
            let mut waiting = Vec::new();
            // Group commit: everything queued while the previous patch was in flight.
            for request in first
                .into_iter()
                .chain(std::iter::from_fn(|| inbox.try_recv().ok()))
            {
                self.stats.changes += 1;
                match request {
                    Request::Commit { change: next, done } => {
                        change.absorb(next);
                        waiting.push(done);
                    }
                    Request::Stage {
                        change: next,
                        events,
                    } => {
                        change.absorb(next);
                        self.staged_events.extend(events);
                        self.linger_until
                            .get_or_insert_with(|| tokio::time::Instant::now() + LINGER);
                    }
                }
            }
            if waiting.is_empty() && !lingered {
                // Only staged changes: they wait for a commit or the linger.
                self.absorb(change);
                continue;
            }
            let result = self.write(change).await;
            let _ = self.stats_tx.send(self.stats);
            match &result {
                Ok(()) => {
                    self.linger_until = None;
                    for report in std::mem::take(&mut self.staged_events) {
                        if let Some(events) = &self.events {
                            events.emit(report);
                        }
                    }
                }
                Err(error)
                    if self.replaced.is_some() || matches!(error, WriteError::EngineGone(_)) =>
                {
                    self.linger_until = None;
                    self.staged_events.clear();
                }
                Err(error) => {
                    tracing::warn!(%error, "writing staged changes failed; trying again");
                    self.linger_until = Some(tokio::time::Instant::now() + LINGER);
                }
            }
            for done in waiting {
                let _ = done.send(result.clone());
            }
        }
    }

    fn absorb(&mut self, change: StatusChange) {
        for entry in change.entries {
            self.entries.insert(entry.name.clone(), entry);
        }
        for (key, checkpoint) in change.checkpoints {
            match checkpoint {
                Some(checkpoint) => self.record.attempts.insert(key, checkpoint),
                None => self.record.attempts.remove(&key),
            };
        }
        for (position, progress) in change.progress {
            self.ledger.set_progress(position, progress);
        }
        self.ledger.record(change.audit);
        let run_id = self.record.run_id.clone();
        let pending = self.events.as_ref().map(|e| e.pending().clone());
        self.ledger.trim(|entry| {
            pending
                .as_ref()
                .is_some_and(|p| p.contains(&transition_event_key(&run_id, entry)))
        });
    }

    async fn write(&mut self, change: StatusChange) -> Result<(), WriteError> {
        if let Some(replaced) = &self.replaced {
            return Err(replaced.clone());
        }
        self.absorb(change);
        for _ in 0..CONFLICT_LIMIT {
            let desired = Desired {
                entries: &self.entries,
                record: &self.record,
                annotations: self.ledger.annotations(),
            };
            let Some(operations) = patch_operations(&self.engine, &desired) else {
                // The engine already holds all of it.
                return Ok(());
            };
            let body = serde_json::to_vec(&operations).unwrap_or_default();
            let patch: json_patch::Patch =
                serde_json::from_value(operations).map_err(|e| WriteError::Api {
                    name: self.name.clone(),
                    message: format!("encoding the patch: {e}"),
                })?;
            let what = format!("patch ChaosEngine {}", self.name);
            let patch = Patch::<()>::Json(patch);
            let params = PatchParams::default();
            let answer = call(&what, || self.api.patch(&self.name, &params, &patch)).await;
            self.stats.patches += 1;
            self.stats.patch_bytes += body.len() as u64;
            self.stats.largest_patch = self.stats.largest_patch.max(body.len() as u64);
            match answer {
                Ok(engine) => {
                    self.keep(engine);
                    self.opened = None;
                    return Ok(());
                }
                // 409: the engine changed since the copy the patch was computed from. 422: the
                // patch no longer applies to it, as when a retried patch whose answer was lost
                // had been applied after all (a JSON patch is not idempotent). Either way the
                // patch is computed again from a fresh copy.
                Err(error) if error.is_conflict() || error.is_invalid() => {
                    self.stats.conflicts += 1;
                    self.reread().await?;
                    if let Err(replaced) = self
                        .check_not_replaced()
                        .and_then(|()| self.check_not_overtaken())
                    {
                        self.replaced = Some(replaced.clone());
                        return Err(replaced);
                    }
                }
                Err(error) if error.is_not_found() => return Err(self.gone()),
                Err(error) => return Err(self.api_error(&error)),
            }
        }
        Err(WriteError::Conflicts(self.name.clone()))
    }

    /// The engine as the apiserver answered: what the next patch is computed against. Its
    /// managed fields are dropped: the runner never patches them, and they are a large part of
    /// the copy (one field path per annotation and status entry).
    fn keep(&mut self, mut engine: DynamicObject) {
        engine.metadata.managed_fields = None;
        let _ = self.engine_tx.send(EngineSignal::of(Some(&engine)));
        self.engine = engine;
    }

    async fn reread(&mut self) -> Result<(), WriteError> {
        let what = format!("get ChaosEngine {}", self.name);
        match call_opt(&what, || self.api.get(&self.name)).await {
            Ok(Some(engine)) => {
                self.keep(engine);
                Ok(())
            }
            Ok(None) => Err(self.gone()),
            Err(error) => Err(self.api_error(&error)),
        }
    }

    /// Fencing: writes are compare-and-swap, so a newer runner's write makes this one's next
    /// write conflict and re-read; if the copy names a newer incarnation, stop writing here
    /// (and with it, every side effect, which only follows a written checkpoint).
    fn check_not_replaced(&self) -> Result<(), WriteError> {
        let stored = RunRecord::from_status(self.engine.data.get("status"))
            .ok()
            .flatten()
            .filter(|stored| stored.run_id == self.record.run_id);
        match stored {
            Some(stored) if self.record.incarnation.is_replaced_by(&stored.incarnation) => {
                Err(WriteError::Replaced {
                    name: self.name.clone(),
                    by: format!("{}-{}", stored.incarnation.counter, stored.incarnation.id),
                })
            }
            _ => Ok(()),
        }
    }

    /// Before its first stored write, a runner resumes from the copy it opened the run with;
    /// if an older runner (not fenced yet: fencing starts with this one's first write) has
    /// changed the runner's fields since, that copy is stale. A stored copy naming this
    /// runner's incarnation holds its own first write (applied, its answer lost).
    fn check_not_overtaken(&mut self) -> Result<(), WriteError> {
        let Some(opened) = self.opened else {
            return Ok(());
        };
        let stored = RunRecord::from_status(self.engine.data.get("status"))
            .ok()
            .flatten();
        if stored.is_some_and(|stored| stored.incarnation == self.record.incarnation) {
            self.opened = None;
            Ok(())
        } else if runner_fields(&self.engine) != opened {
            Err(WriteError::Overtaken(self.name.clone()))
        } else {
            Ok(())
        }
    }

    fn gone(&self) -> WriteError {
        let _ = self.engine_tx.send(EngineSignal::Deleted);
        WriteError::EngineGone(self.name.clone())
    }

    fn api_error(&self, error: &ApiError) -> WriteError {
        WriteError::Api {
            name: self.name.clone(),
            message: error.to_string(),
        }
    }
}

/// A hash of the runner's fields of `engine`: its record and entries in the status, and the
/// ledger's annotations.
fn runner_fields(engine: &DynamicObject) -> u64 {
    let status = engine.data.get("status");
    let field = |key: &str| {
        status
            .and_then(|s| s.get(key))
            .map(Value::to_string)
            .unwrap_or_default()
    };
    let mut parts = vec![field(STATUS_KEY), field("experiments")];
    for (key, value) in engine.metadata.annotations.iter().flatten() {
        if Ledger::owns(key) {
            parts.extend([key.clone(), value.clone()]);
        }
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    crate::contract::hash::fnv1a64(&parts)
}

/// What the runner's fields of the engine should hold.
struct Desired<'a> {
    entries: &'a BTreeMap<String, ExperimentEntry>,
    record: &'a RunRecord,
    /// Every annotation the ledger consists of; others of the ledger's are removed.
    annotations: BTreeMap<String, String>,
}

/// The JSON patch from `engine` to `desired`, `None` when there is nothing to change. Only the
/// runner's fields are touched; the first operation pins the resourceVersion (409 if stale).
fn patch_operations(engine: &DynamicObject, desired: &Desired<'_>) -> Option<Value> {
    let mut operations = Vec::new();

    let current = engine.metadata.annotations.as_ref();
    match current {
        None if desired.annotations.is_empty() => {}
        None => operations.push(json!({
            "op": "add", "path": "/metadata/annotations", "value": desired.annotations,
        })),
        Some(current) => {
            for (key, value) in &desired.annotations {
                if current.get(key) != Some(value) {
                    let path = format!("/metadata/annotations/{}", escape(key));
                    operations.push(json!({"op": "add", "path": path, "value": value}));
                }
            }
            for key in current.keys() {
                if Ledger::owns(key) && !desired.annotations.contains_key(key) {
                    let path = format!("/metadata/annotations/{}", escape(key));
                    operations.push(json!({"op": "remove", "path": path}));
                }
            }
        }
    }

    let status = engine.data.get("status").filter(|s| s.is_object());
    let current_entries = status.and_then(|s| s.get("experiments"));
    let entries = Value::Array(upsert_entries(current_entries, desired.entries.values()));
    let record = serde_json::to_value(desired.record).unwrap_or(Value::Null);
    match status {
        None => operations.push(json!({
            "op": "add", "path": "/status",
            "value": {"experiments": entries, STATUS_KEY: record},
        })),
        Some(status) => {
            for (key, want) in [("experiments", &entries), (STATUS_KEY, &record)] {
                let path = format!("/status/{key}");
                match status.get(key) {
                    Some(have) if have.is_array() == want.is_array() => {
                        operations.extend(differences(&path, have, want));
                    }
                    _ => operations.push(json!({"op": "add", "path": path, "value": want})),
                }
            }
        }
    }

    if operations.is_empty() {
        return None;
    }
    let pin = json!({
        "op": "replace", "path": "/metadata/resourceVersion",
        "value": engine.metadata.resource_version,
    });
    operations.insert(0, pin);
    Some(Value::Array(operations))
}

/// The operations from `have` to `want` under `prefix` (JSON pointer).
fn differences(prefix: &str, have: &Value, want: &Value) -> Vec<Value> {
    let patch = json_patch::diff(have, want);
    let Ok(Value::Array(operations)) = serde_json::to_value(&patch) else {
        return Vec::new();
    };
    operations
        .into_iter()
        .map(|mut operation| {
            for field in ["path", "from"] {
                if let Some(Value::String(path)) = operation.get_mut(field) {
                    *path = format!("{prefix}{path}");
                }
            }
            operation
        })
        .collect()
}

/// A map key as a JSON pointer token (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `status.experiments` with `ours` upserted by name: others' entries (and unknown fields of
/// entries) are kept in place, a new name is appended, no name appears twice.
pub fn upsert_entries<'a>(
    current: Option<&Value>,
    ours: impl IntoIterator<Item = &'a ExperimentEntry>,
) -> Vec<Value> {
    let mut list: Vec<Value> = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for entry in ours {
        let fields = match serde_json::to_value(entry) {
            Ok(Value::Object(fields)) => fields,
            _ => continue,
        };
        let same_name = |v: &Value| v.get("name").and_then(Value::as_str) == Some(&entry.name);
        match list.iter().position(same_name) {
            Some(index) => {
                let mut merged: Map<String, Value> =
                    list[index].as_object().cloned().unwrap_or_default();
                merged.extend(fields);
                list[index] = Value::Object(merged);
                // Drop later duplicates left by another writer.
                let mut seen = false;
                list.retain(|v| {
                    if same_name(v) {
                        let keep = !seen;
                        seen = true;
                        keep
                    } else {
                        true
                    }
                });
            }
            None => list.push(Value::Object(fields)),
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, status: &str) -> ExperimentEntry {
        ExperimentEntry {
            name: name.into(),
            runner: "demo-runner".into(),
            experiment_pod: "N/A".into(),
            status: status.into(),
            verdict: "Awaited".into(),
            last_update_time: "2026-11-25T00:00:00Z".into(),
            iteration: None,
            iterations: None,
        }
    }

    #[test]
    fn entries_are_upserted_by_name_keeping_others_and_unknown_fields() {
        let current = json!([
            {"name": "other", "status": "Completed", "verdict": "Pass"},
            {"name": "a", "status": "Running", "custom": 1},
        ]);
        let list = upsert_entries(
            Some(&current),
            [&entry("a", "Completed"), &entry("b", "Running")],
        );
        assert_eq!(list.len(), 3);
        assert_eq!(list[0]["name"], "other");
        assert_eq!(list[1]["status"], "Completed");
        assert_eq!(list[1]["custom"], 1);
        assert_eq!(list[1]["experimentPod"], "N/A");
        assert_eq!(list[2]["name"], "b");
    }

    #[test]
    fn duplicate_names_left_by_someone_else_collapse_to_one() {
        let current = json!([{"name": "a"}, {"name": "a"}]);
        let list = upsert_entries(Some(&current), [&entry("a", "Running")]);
        assert_eq!(list.len(), 1);
    }

    fn engine(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    /// Applies `operations` (without the resourceVersion pin) to `engine`.
    fn applied(engine: &DynamicObject, operations: &Value) -> DynamicObject {
        let mut value = serde_json::to_value(engine).unwrap();
        let patch: json_patch::Patch = serde_json::from_value(operations.clone()).unwrap();
        json_patch::patch(&mut value, &patch).unwrap();
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_patch_carries_only_what_changed_and_pins_the_version() {
        let start = engine(json!({
            "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
            "metadata": {"name": "e", "resourceVersion": "7",
                         "annotations": {"chaos-runner.io/max-parallel": "2",
                                         "chaos-runner.io/trail-0": "[]",
                                         "chaos-runner.io/progress-9": "P1"}},
            "spec": {"engineState": "active"},
        }));
        let mut record = RunRecord::new("r1".into(), "2026-11-25T00:00:00Z".into());
        record
            .attempts
            .insert("a#1".into(), json!({"phase": "Init", "n": 1}));
        let mut ledger = Ledger::new(crate::contract::record::RunHeader {
            run_id: "r1".into(),
            started_at: "2026-11-25T00:00:00Z".into(),
            plan: None,
        });
        let entries: BTreeMap<String, ExperimentEntry> =
            [("a".to_string(), entry("a", "Running"))].into();
        let desired = Desired {
            entries: &entries,
            record: &record,
            annotations: ledger.annotations(),
        };
        let first = patch_operations(&start, &desired).unwrap();
        assert_eq!(
            first[0],
            json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "7"})
        );
        let written = applied(&start, &first);
        let annotations = written.metadata.annotations.clone().unwrap();
        // The user's annotation stays; the ledger's stale keys go; the run header comes.
        assert_eq!(annotations["chaos-runner.io/max-parallel"], "2");
        assert!(!annotations.contains_key("chaos-runner.io/progress-9"));
        assert!(!annotations.contains_key("chaos-runner.io/trail-0"));
        assert!(annotations.contains_key("chaos-runner.io/run"));
        assert_eq!(
            written.data["status"]["chaosRunner"]["attempts"]["a#1"]["n"],
            1
        );
        assert_eq!(written.data["spec"]["engineState"], "active");

        // Nothing changed: no patch at all.
        let desired = Desired {
            entries: &entries,
            record: &record,
            annotations: ledger.annotations(),
        };
        assert_eq!(patch_operations(&written, &desired), None);

        // One attempt ends: its checkpoint is removed and its progress token set; nothing else.
        record.attempts.remove("a#1");
        ledger.set_progress(
            0,
            Progress::at(
                crate::contract::record::Mark::Passed,
                "2026-11-25T00:00:05Z",
                "2026-11-25T00:00:00Z",
            ),
        );
        let desired = Desired {
            entries: &entries,
            record: &record,
            annotations: ledger.annotations(),
        };
        let next = patch_operations(&written, &desired).unwrap();
        let paths: Vec<&str> = next.as_array().unwrap()[1..]
            .iter()
            .map(|op| op["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/metadata/annotations/chaos-runner.io~1progress-0",
                "/status/chaosRunner/attempts/a#1"
            ]
        );
        let ended = applied(&written, &next);
        assert_eq!(ended.data["status"]["chaosRunner"]["attempts"], json!({}));
        assert_eq!(
            ended.metadata.annotations.unwrap()["chaos-runner.io/progress-0"],
            "P5"
        );
    }

    #[test]
    fn no_current_list_starts_one() {
        let list = upsert_entries(None, [&entry("a", "Running")]);
        assert_eq!(list.len(), 1);
    }
}
