//! The only writer of the ChaosEngine: one task that turns status changes from every experiment
//! into few compare-and-swap JSON merge patches.
//!
//! Changes that arrive while a patch is in flight are coalesced into the next one (group
//! commit), so 100 experiments in flight do not mean 100 patches. Every patch carries
//! `metadata.resourceVersion`: on 409 the engine is read again, the runner's fields are laid
//! over the fresh copy and the patch is retried. Only the runner's own fields are sent:
//! `status.experiments` (arrays are replaced whole by a merge patch, hence the CAS),
//! `status.chaosRunner` and the audit annotation. The stock CRD has no status subresource, so
//! status is patched on the main resource.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster::api::{ApiError, call, call_opt};
use crate::contract::record::{AUDIT_ANNOTATION, AuditEntry, RunRecord, STATUS_KEY};

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
    /// Attempt checkpoints by attempt key.
    pub checkpoints: Vec<(String, Value)>,
    /// The run plan, once.
    pub plan: Option<Value>,
    pub audit: Vec<AuditEntry>,
}

impl StatusChange {
    fn absorb(&mut self, other: StatusChange) {
        self.entries.extend(other.entries);
        self.checkpoints.extend(other.checkpoints);
        if other.plan.is_some() {
            self.plan = other.plan;
        }
        self.audit.extend(other.audit);
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
}

struct Request {
    change: StatusChange,
    done: oneshot::Sender<Result<(), WriteError>>,
}

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
}

impl EngineWriter {
    /// Starts the writer over `engine` (as last read) and the run's `record`. The returned
    /// receiver always holds the newest copy of the engine the writer has seen (from its own
    /// patch answers and re-reads) — `None` once the engine is gone.
    /// `entries` are laid over the engine from the first write on, until replaced by name.
    pub fn spawn(
        api: Api<DynamicObject>,
        engine: DynamicObject,
        record: RunRecord,
        entries: Vec<ExperimentEntry>,
    ) -> (
        EngineWriter,
        watch::Receiver<Option<DynamicObject>>,
        watch::Receiver<WriterStats>,
    ) {
        let (requests, inbox) = mpsc::unbounded_channel();
        let (engine_tx, engine_rx) = watch::channel(Some(engine.clone()));
        let (stats_tx, stats_rx) = watch::channel(WriterStats::default());
        let task = WriterTask {
            api,
            name: engine.metadata.name.clone().unwrap_or_default(),
            engine,
            record,
            entries: entries.into_iter().map(|e| (e.name.clone(), e)).collect(),
            dirty: Default::default(),
            engine_tx,
            stats_tx,
            stats: WriterStats::default(),
            replaced: None,
        };
        tokio::spawn(task.run(inbox));
        (EngineWriter { requests }, engine_rx, stats_rx)
    }

    /// Writes `change` and returns once it is stored in the engine (or could not be).
    pub async fn commit(&self, change: StatusChange) -> Result<(), WriteError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send(Request { change, done })
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

struct WriterTask {
    api: Api<DynamicObject>,
    name: String,
    engine: DynamicObject,
    record: RunRecord,
    /// Entries this run has written, by experiment name, laid over every fresh copy.
    entries: BTreeMap<String, ExperimentEntry>,
    /// Attempt keys whose checkpoint changed since the last successful patch: a merge patch
    /// merges maps, so only these need to be sent.
    dirty: std::collections::BTreeSet<String>,
    engine_tx: watch::Sender<Option<DynamicObject>>,
    stats_tx: watch::Sender<WriterStats>,
    stats: WriterStats,
    /// Set once another runner has taken over: nothing is written any more.
    replaced: Option<WriteError>,
}

impl WriterTask {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>) {
        while let Some(first) = inbox.recv().await {
            let mut change = first.change;
            let mut waiting = vec![first.done];
            // Group commit: everything queued while the previous patch was in flight.
            while let Ok(next) = inbox.try_recv() {
                change.absorb(next.change);
                waiting.push(next.done);
            }
            self.stats.changes += waiting.len() as u64;
            let result = self.write(change).await;
            let _ = self.stats_tx.send(self.stats);
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
            self.dirty.insert(key.clone());
            self.record.attempts.insert(key, checkpoint);
        }
        if change.plan.is_some() {
            self.record.plan = change.plan;
        }
        self.record.record(change.audit);
    }

    async fn write(&mut self, change: StatusChange) -> Result<(), WriteError> {
        if let Some(replaced) = &self.replaced {
            return Err(replaced.clone());
        }
        self.absorb(change);
        for _ in 0..CONFLICT_LIMIT {
            let body = self.patch_body()?;
            let what = format!("patch ChaosEngine {}", self.name);
            let patch = Patch::Merge(&body);
            let params = PatchParams::default();
            let answer = call(&what, || self.api.patch(&self.name, &params, &patch)).await;
            self.stats.patches += 1;
            match answer {
                Ok(engine) => {
                    self.engine = engine.clone();
                    self.dirty.clear();
                    let _ = self.engine_tx.send(Some(engine));
                    return Ok(());
                }
                Err(error) if error.is_conflict() => {
                    self.stats.conflicts += 1;
                    self.reread().await?;
                    if let Err(replaced) = self.check_not_replaced() {
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

    async fn reread(&mut self) -> Result<(), WriteError> {
        let what = format!("get ChaosEngine {}", self.name);
        match call_opt(&what, || self.api.get(&self.name)).await {
            Ok(Some(engine)) => {
                self.engine = engine.clone();
                let _ = self.engine_tx.send(Some(engine));
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

    fn gone(&self) -> WriteError {
        let _ = self.engine_tx.send(None);
        WriteError::EngineGone(self.name.clone())
    }

    fn api_error(&self, error: &ApiError) -> WriteError {
        WriteError::Api {
            name: self.name.clone(),
            message: error.to_string(),
        }
    }

    /// The merge patch that lays this run's fields over the engine as last seen.
    fn patch_body(&self) -> Result<Value, WriteError> {
        let current = self
            .engine
            .data
            .get("status")
            .and_then(|s| s.get("experiments"));
        let experiments = upsert_entries(current, self.entries.values());
        let trail = serde_json::to_string(&self.record.trail()).map_err(|e| WriteError::Api {
            name: self.name.clone(),
            message: format!("encoding the audit trail: {e}"),
        })?;
        // The record with only the attempts that changed (the others are already stored:
        // a merge patch keeps map keys it is not given). If the engine lost the record (the
        // operator's typed update, or someone erased it), everything is sent again.
        let stored = self
            .engine
            .data
            .get("status")
            .and_then(|s| s.get(STATUS_KEY));
        let mut record = serde_json::to_value(&self.record).map_err(|e| WriteError::Api {
            name: self.name.clone(),
            message: format!("encoding the checkpoint: {e}"),
        })?;
        if let (Some(stored), Some(attempts)) = (
            stored
                .and_then(|s| s.get("attempts"))
                .and_then(Value::as_object),
            record.get_mut("attempts").and_then(Value::as_object_mut),
        ) {
            attempts.retain(|key, _| self.dirty.contains(key) || !stored.contains_key(key));
        }
        Ok(json!({
            "metadata": {
                "resourceVersion": self.engine.metadata.resource_version,
                "annotations": { AUDIT_ANNOTATION: trail },
            },
            "status": {
                "experiments": experiments,
                STATUS_KEY: record,
            },
        }))
    }
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

    #[test]
    fn no_current_list_starts_one() {
        let list = upsert_entries(None, [&entry("a", "Running")]);
        assert_eq!(list.len(), 1);
    }
}
