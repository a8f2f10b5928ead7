//! What the runner keeps about a run in the ChaosEngine: the checkpoint of every experiment
//! attempt (in `status.chaosRunner`) and the audit trail (there and in an annotation).
//!
//! Why two places: during the run the operator does not write the engine, so `status` is the
//! natural home; but after the runner exits the operator does a typed full-object update that
//! drops status fields its Go structs do not know, `status.chaosRunner` included. Annotations
//! are part of `ObjectMeta`, which the operator keeps whole, and they go away with the engine:
//! the annotation [`AUDIT_ANNOTATION`] is the copy of the trail that survives the run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The status key under which the runner keeps its record.
pub const STATUS_KEY: &str = "chaosRunner";
/// The annotation that keeps the run id and the audit trail after the run.
pub const AUDIT_ANNOTATION: &str = "chaos-runner.io/audit";
/// Version of [`RunRecord`]'s shape; a newer one is refused rather than misread.
pub const RECORD_SCHEMA: u32 = 1;
/// The audit trail keeps the newest entries up to this many (annotations are limited to
/// 256 KiB in all; an entry is about 120 bytes).
pub const HISTORY_LIMIT: usize = 1000;

/// One transition of one experiment attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// `<experiment>[/<instance>]#<attempt>`.
    pub attempt: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub at: String,
}

/// The runner's record of one run, `status.chaosRunner`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub schema_version: u32,
    /// Chosen when a run starts; part of every Job name so that a re-run of the same engine
    /// never adopts a Job retained from an earlier run.
    pub run_id: String,
    pub started_at: String,
    /// The resolved run plan (stages, order, seed, iterations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Value>,
    /// Checkpoint of each attempt, by attempt key.
    #[serde(default)]
    pub attempts: BTreeMap<String, Value>,
    #[serde(default)]
    pub history: Vec<AuditEntry>,
    /// Why the run could not start (invalid env or plan): nothing was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Which runner process writes the record: a runner that finds a newer one here has been
    /// replaced (the operator started another after a force-deleted pod) and stops writing.
    #[serde(default, skip_serializing_if = "Incarnation::is_unset")]
    pub incarnation: Incarnation,
}

/// A runner process's place in the line of runners of one run: a counter one above the one it
/// found, and an id that tells two runners apart that found the same counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incarnation {
    #[serde(default)]
    pub counter: u64,
    #[serde(default)]
    pub id: String,
}

impl Incarnation {
    pub fn is_unset(&self) -> bool {
        self.counter == 0 && self.id.is_empty()
    }

    /// The next runner after `found`.
    pub fn after(found: &Incarnation, id: String) -> Incarnation {
        Incarnation {
            counter: found.counter + 1,
            id,
        }
    }

    /// True when `stored` (read back from the engine) says another runner has taken over from
    /// this one: a higher counter, or the same counter with another id (two runners that
    /// started from the same record: the one that reads the other's write yields).
    pub fn is_replaced_by(&self, stored: &Incarnation) -> bool {
        stored.counter > self.counter || (stored.counter == self.counter && stored.id != self.id)
    }
}

/// The part of the record kept in [`AUDIT_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditTrail {
    pub run_id: String,
    #[serde(default)]
    pub history: Vec<AuditEntry>,
}

/// A record that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "status.{STATUS_KEY} has schema version {found}; this runner knows up to {RECORD_SCHEMA}"
    )]
    NewerSchema { found: u32 },
    #[error("status.{STATUS_KEY} is malformed: {0}")]
    Malformed(#[source] serde_json::Error),
}

impl RunRecord {
    pub fn new(run_id: String, started_at: String) -> RunRecord {
        RunRecord {
            schema_version: RECORD_SCHEMA,
            run_id,
            started_at,
            plan: None,
            attempts: BTreeMap::new(),
            history: Vec::new(),
            failure: None,
            incarnation: Incarnation::default(),
        }
    }

    /// Reads the record from an engine's `status`, if there is one.
    pub fn from_status(status: Option<&Value>) -> Result<Option<RunRecord>, RecordError> {
        let Some(raw) = status.and_then(|s| s.get(STATUS_KEY)) else {
            return Ok(None);
        };
        if raw.is_null() {
            return Ok(None);
        }
        let found = raw
            .get("schemaVersion")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if found > u64::from(RECORD_SCHEMA) {
            return Err(RecordError::NewerSchema {
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        serde_json::from_value(raw.clone())
            .map(Some)
            .map_err(RecordError::Malformed)
    }

    /// Appends transitions not already in the trail; phases only move forward, so
    /// (attempt, from, to) names a transition once. Keeps the newest [`HISTORY_LIMIT`].
    pub fn record(&mut self, entries: impl IntoIterator<Item = AuditEntry>) {
        for entry in entries {
            let seen = self
                .history
                .iter()
                .any(|e| e.attempt == entry.attempt && e.from == entry.from && e.to == entry.to);
            if !seen {
                self.history.push(entry);
            }
        }
        if self.history.len() > HISTORY_LIMIT {
            let excess = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..excess);
        }
    }

    pub fn trail(&self) -> AuditTrail {
        AuditTrail {
            run_id: self.run_id.clone(),
            history: self.history.clone(),
        }
    }
}

impl AuditTrail {
    /// Reads the trail from the engine's annotations; a malformed one is ignored (it is a
    /// copy, never the only source of a decision).
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Option<AuditTrail> {
        let raw = annotations?.get(AUDIT_ANNOTATION)?;
        serde_json::from_str(raw).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(attempt: &str, from: &str, to: &str) -> AuditEntry {
        AuditEntry {
            attempt: attempt.into(),
            from: from.into(),
            to: to.into(),
            reason: "r".into(),
            at: "2026-11-25T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_transition_is_recorded_once() {
        let mut record = RunRecord::new("r1".into(), "t".into());
        record.record([entry("a#1", "Init", "ValidateDeps")]);
        record.record([
            entry("a#1", "Init", "ValidateDeps"),
            entry("a#2", "Init", "ValidateDeps"),
        ]);
        assert_eq!(record.history.len(), 2);
    }

    #[test]
    fn history_is_bounded_keeping_the_newest() {
        let mut record = RunRecord::new("r1".into(), "t".into());
        record.record((0..HISTORY_LIMIT + 5).map(|i| entry(&format!("e#{i}"), "Init", "Verdict")));
        assert_eq!(record.history.len(), HISTORY_LIMIT);
        assert_eq!(record.history[0].attempt, "e#5");
    }

    #[test]
    fn record_round_trips_through_status() {
        let mut record = RunRecord::new("r1".into(), "t".into());
        record
            .attempts
            .insert("a#1".into(), json!({"phase": "Init"}));
        let status = json!({"experiments": [], STATUS_KEY: record});
        assert_eq!(RunRecord::from_status(Some(&status)).unwrap(), Some(record));
        assert_eq!(RunRecord::from_status(Some(&json!({}))).unwrap(), None);
        assert_eq!(RunRecord::from_status(None).unwrap(), None);
    }

    #[test]
    fn a_runner_is_replaced_by_a_later_one_or_a_twin() {
        let first = Incarnation::after(&Incarnation::default(), "a".into());
        let second = Incarnation::after(&first, "b".into());
        assert!(first.is_replaced_by(&second));
        assert!(!second.is_replaced_by(&first));
        assert!(!second.is_replaced_by(&second.clone()));
        let twin = Incarnation::after(&first, "c".into());
        assert!(second.is_replaced_by(&twin) && twin.is_replaced_by(&second));
        // A record written before incarnations existed replaces nobody.
        assert!(!first.is_replaced_by(&Incarnation::default()));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let status = json!({STATUS_KEY: {"schemaVersion": 9, "runId": "x", "startedAt": "t"}});
        assert!(matches!(
            RunRecord::from_status(Some(&status)),
            Err(RecordError::NewerSchema { found: 9 })
        ));
    }
}
