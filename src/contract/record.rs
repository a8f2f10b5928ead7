//! What the runner keeps about a run in the ChaosEngine, bounded however long the plan is.
//!
//! - `status.chaosRunner` ([`RunRecord`]): the checkpoints of the attempts that are not finished
//!   (a finished one's is removed), the incarnation that writes, and why a run could not start.
//!   Bounded by the attempts in flight, not by the plan.
//! - Annotations ([`Ledger`]), the part that survives the run: after the runner exits the
//!   operator does a typed full-object update that drops status fields its Go structs do not
//!   know, `status.chaosRunner` included, while annotations are part of `ObjectMeta`, which it
//!   keeps whole (and they go away with the engine):
//!   - [`RUN_ANNOTATION`]: run id, start time and the plan's inputs, written once;
//!   - [`PROGRESS_ANNOTATION_PREFIX`]`<n>`: one short token per attempt of the plan (furthest
//!     phase or verdict, and when), [`PROGRESS_CHUNK`] attempts per annotation — what a runner
//!     needs to resume without the checkpoint, and never to run a finished attempt again;
//!   - [`TRAIL_ANNOTATION_PREFIX`]`<n>`: the newest transitions of the audit trail in segments of
//!     [`TRAIL_SEGMENT`]. Older segments are dropped once every Event they name exists: each
//!     transition has its own Event (deterministic name, [`transition_event_key`]), which keeps
//!     the full trail; a ConfigMap would need a permission Litmus users' Role does not give.
//!
//! Map keys and small strings throughout, so a JSON patch touches only what changed.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::plan::{MAX_PLAN_ITEMS, PlanInputs};

/// The status key under which the runner keeps its checkpoints.
pub const STATUS_KEY: &str = "chaosRunner";
/// The annotation with the run's id, start and plan inputs.
pub const RUN_ANNOTATION: &str = "chaos-runner.io/run";
/// Annotations `<prefix><n>` with the progress of the plan's attempts `n*CHUNK..(n+1)*CHUNK`.
pub const PROGRESS_ANNOTATION_PREFIX: &str = "chaos-runner.io/progress-";
/// Annotations `<prefix><n>` with the audit trail's segment `n`.
pub const TRAIL_ANNOTATION_PREFIX: &str = "chaos-runner.io/trail-";
/// The annotation of runners before schema 2 (`{runId, history}`): still read, removed on write.
pub const LEGACY_AUDIT_ANNOTATION: &str = "chaos-runner.io/audit";
/// Version of the record's shape; a newer one is refused rather than misread.
pub const RECORD_SCHEMA: u32 = 2;
/// Transitions per trail segment.
pub const TRAIL_SEGMENT: usize = 16;
/// Segments kept at least (the newest), so the trail shows the run's latest moves.
pub const TRAIL_SEGMENTS_KEPT: usize = 4;
/// Segments kept at most, even when Events could not be sent (annotations are limited to
/// 256 KiB in all; a segment is about 2 KiB).
pub const TRAIL_SEGMENTS_MAX: usize = 48;
/// Attempts per progress annotation (a token is at most about 9 bytes).
pub const PROGRESS_CHUNK: usize = 256;

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

/// The `from` of an attempt that ended without starting (a plan-level skip or an abort).
pub const PLANNED: &str = "Planned";

/// The key (hence the name) of the Event that reports a recorded transition: derived from the
/// audit record alone, so a restarted runner can tell whether that Event exists and send it if
/// it was lost (a transition happens once per attempt, so the key is unique).
pub fn transition_event_key(run_id: &str, entry: &AuditEntry) -> String {
    if entry.from == PLANNED {
        return unstarted_event_key(run_id, &entry.attempt);
    }
    format!(
        "{run_id}/{}/{}->{}/{}",
        entry.attempt, entry.from, entry.to, entry.reason
    )
}

/// The Event key of an attempt that ended without starting.
pub fn unstarted_event_key(run_id: &str, attempt: &str) -> String {
    format!("{run_id}/{attempt}/unstarted")
}

/// The runner's checkpoints, `status.chaosRunner`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub schema_version: u32,
    /// Chosen when a run starts; part of every Job name so that a re-run of the same engine
    /// never adopts a Job retained from an earlier run.
    pub run_id: String,
    pub started_at: String,
    /// Checkpoint of each attempt in flight, by attempt key.
    #[serde(default)]
    pub attempts: BTreeMap<String, Value>,
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
            attempts: BTreeMap::new(),
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
        let mut record: RunRecord =
            serde_json::from_value(raw.clone()).map_err(RecordError::Malformed)?;
        record.schema_version = RECORD_SCHEMA;
        Ok(Some(record))
    }
}

/// [`RUN_ANNOTATION`]: what identifies the run and its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunHeader {
    pub run_id: String,
    pub started_at: String,
    /// What the plan was resolved from, so a resumed runner follows the same plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanInputs>,
}

/// How far one attempt of the plan got, as the progress annotations keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Its Job is about to be created (the checkpoint before the create).
    LaunchJob,
    /// Its Job was created; its pod is followed.
    Monitor,
    /// Its pod ended: result, cleanup and verdict follow.
    PastMonitor,
    /// Ended with the verdict Pass.
    Passed,
    /// Ended with another verdict (Fail, Error, Awaited...).
    NotPassed,
    /// Ended by an abort.
    Aborted,
    /// Never ran (a dependency did not pass).
    Skipped,
}

impl Mark {
    const CODES: [(Mark, char); 7] = [
        (Mark::LaunchJob, 'L'),
        (Mark::Monitor, 'M'),
        (Mark::PastMonitor, 'R'),
        (Mark::Passed, 'P'),
        (Mark::NotPassed, 'F'),
        (Mark::Aborted, 'A'),
        (Mark::Skipped, 'S'),
    ];

    fn code(self) -> char {
        Self::CODES
            .iter()
            .find(|(mark, _)| *mark == self)
            .map_or('?', |(_, code)| *code)
    }

    fn of_code(code: char) -> Option<Mark> {
        Self::CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(mark, _)| *mark)
    }

    /// Whether the attempt has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Mark::Passed | Mark::NotPassed | Mark::Aborted | Mark::Skipped
        )
    }
}

/// One attempt's progress: how far it got and when (whole seconds after the run's start,
/// rounded up: a deadline or an interval counted from it is never cut short, at worst a
/// second long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub mark: Mark,
    pub at_s: u64,
}

impl Progress {
    /// The progress `mark` reached at `at` (RFC 3339) in a run started at `started_at`.
    pub fn at(mark: Mark, at: &str, started_at: &str) -> Progress {
        let ms = millis(at).saturating_sub(millis(started_at));
        Progress {
            mark,
            at_s: ms.div_ceil(1000),
        }
    }

    /// When it was reached, in milliseconds since the epoch.
    pub fn at_ms(&self, started_at: &str) -> u64 {
        millis(started_at).saturating_add(self.at_s.saturating_mul(1000))
    }

    /// When it was reached, RFC 3339.
    pub fn at_rfc3339(&self, started_at: &str) -> String {
        let ms = i64::try_from(self.at_ms(started_at)).unwrap_or(i64::MAX);
        Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| started_at.to_string())
    }

    fn token(&self) -> String {
        format!("{}{}", self.mark.code(), self.at_s)
    }

    fn of_token(token: &str) -> Option<Progress> {
        let mut chars = token.chars();
        let mark = Mark::of_code(chars.next()?)?;
        let at_s = chars.as_str().parse().ok()?;
        Some(Progress { mark, at_s })
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (0 when it does not parse).
pub fn millis(rfc3339: &str) -> u64 {
    rfc3339
        .parse::<Timestamp>()
        .map(|t| t.as_millisecond().max(0) as u64)
        .unwrap_or(0)
}

/// The part of the record kept in annotations: see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    pub header: RunHeader,
    /// Progress by plan position (`None`: not started, or nothing created yet).
    pub progress: Vec<Option<Progress>>,
    /// The kept part of the audit trail, oldest first; `trail[0]` is transition number
    /// `first_segment * TRAIL_SEGMENT` of the run.
    pub trail: Vec<AuditEntry>,
    pub first_segment: u64,
}

impl Ledger {
    pub fn new(header: RunHeader) -> Ledger {
        Ledger {
            header,
            progress: Vec::new(),
            trail: Vec::new(),
            first_segment: 0,
        }
    }

    /// An empty ledger for `record`'s run, its plan not recorded yet.
    pub fn for_record(record: &RunRecord) -> Ledger {
        Ledger::new(RunHeader {
            run_id: record.run_id.clone(),
            started_at: record.started_at.clone(),
            plan: None,
        })
    }

    /// Whether an annotation is one the ledger owns (and may remove).
    pub fn owns(key: &str) -> bool {
        key == RUN_ANNOTATION
            || key == LEGACY_AUDIT_ANNOTATION
            || key.starts_with(PROGRESS_ANNOTATION_PREFIX)
            || key.starts_with(TRAIL_ANNOTATION_PREFIX)
    }

    /// Transitions recorded before the kept trail (their Events keep them).
    pub fn earlier(&self) -> u64 {
        self.first_segment * TRAIL_SEGMENT as u64
    }

    /// Reads the ledger from the engine's annotations: `None` without a readable run header.
    /// A damaged progress token or trail segment is skipped (its attempt then counts as not
    /// started, and is adopted or redone by name), never a reason to refuse the run.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Option<Ledger> {
        let annotations = annotations?;
        let Some(raw) = annotations.get(RUN_ANNOTATION) else {
            return Self::from_legacy(annotations);
        };
        let header: RunHeader = serde_json::from_str(raw).ok()?;
        let mut ledger = Ledger::new(header);
        let numbered = |prefix: &str| {
            annotations
                .iter()
                .filter_map(|(key, value)| {
                    let n: u64 = key.strip_prefix(prefix)?.parse().ok()?;
                    Some((n, value))
                })
                .collect::<BTreeMap<u64, &String>>()
        };
        // Positions beyond the largest plan are garbage, not a reason to allocate for them.
        let chunks = MAX_PLAN_ITEMS.div_ceil(PROGRESS_CHUNK);
        for (chunk, value) in numbered(PROGRESS_ANNOTATION_PREFIX) {
            let Some(chunk) = usize::try_from(chunk).ok().filter(|c| *c < chunks) else {
                continue;
            };
            for (offset, token) in value.split(' ').take(PROGRESS_CHUNK).enumerate() {
                if let Some(progress) = Progress::of_token(token) {
                    ledger.set_progress(chunk * PROGRESS_CHUNK + offset, progress);
                }
            }
        }
        let segments = numbered(TRAIL_ANNOTATION_PREFIX);
        // Only a contiguous run of segments ending at the newest one is a trail.
        let mut kept: Vec<(u64, Vec<AuditEntry>)> = Vec::new();
        for (n, value) in segments.into_iter().rev() {
            // A damaged or empty segment ends the trail like a missing one.
            let entries: Vec<AuditEntry> = serde_json::from_str(value).unwrap_or_default();
            if entries.is_empty() || kept.last().is_some_and(|(next, _)| *next != n + 1) {
                break;
            }
            kept.push((n, entries));
        }
        if let Some((first, _)) = kept.last() {
            ledger.first_segment = *first;
        }
        ledger.trail = kept.into_iter().rev().flat_map(|(_, e)| e).collect();
        Some(ledger)
    }

    /// A trail from a runner before schema 2 (`{runId, history}` in one annotation).
    fn from_legacy(annotations: &BTreeMap<String, String>) -> Option<Ledger> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Legacy {
            run_id: String,
            #[serde(default)]
            history: Vec<AuditEntry>,
        }
        let legacy: Legacy =
            serde_json::from_str(annotations.get(LEGACY_AUDIT_ANNOTATION)?).ok()?;
        let started_at = legacy
            .history
            .first()
            .map(|e| e.at.clone())
            .unwrap_or_default();
        let mut ledger = Ledger::new(RunHeader {
            run_id: legacy.run_id,
            started_at,
            plan: None,
        });
        ledger.trail = legacy.history;
        Some(ledger)
    }

    /// The annotations the ledger consists of, all of them (the writer sends what differs).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Ok(header) = serde_json::to_string(&self.header) {
            out.insert(RUN_ANNOTATION.to_string(), header);
        }
        for (chunk, slots) in self.progress.chunks(PROGRESS_CHUNK).enumerate() {
            let used = slots.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
            if used == 0 {
                continue;
            }
            let tokens: Vec<String> = slots[..used]
                .iter()
                .map(|slot| slot.map_or_else(|| ".".to_string(), |p| p.token()))
                .collect();
            out.insert(
                format!("{PROGRESS_ANNOTATION_PREFIX}{chunk}"),
                tokens.join(" "),
            );
        }
        for (index, segment) in self.trail.chunks(TRAIL_SEGMENT).enumerate() {
            if let Ok(value) = serde_json::to_string(segment) {
                let n = self.first_segment + index as u64;
                out.insert(format!("{TRAIL_ANNOTATION_PREFIX}{n}"), value);
            }
        }
        out
    }

    pub fn set_progress(&mut self, position: usize, progress: Progress) {
        if self.progress.len() <= position {
            self.progress.resize(position + 1, None);
        }
        self.progress[position] = Some(progress);
    }

    pub fn progress_of(&self, position: usize) -> Option<Progress> {
        self.progress.get(position).copied().flatten()
    }

    /// Appends transitions not already in the kept trail; phases only move forward, so
    /// (attempt, from, to) names a transition once.
    pub fn record(&mut self, entries: impl IntoIterator<Item = AuditEntry>) {
        for entry in entries {
            let seen = self
                .trail
                .iter()
                .any(|e| e.attempt == entry.attempt && e.from == entry.from && e.to == entry.to);
            if !seen {
                self.trail.push(entry);
            }
        }
    }

    /// Drops the oldest full segments beyond [`TRAIL_SEGMENTS_KEPT`] whose transitions all
    /// have their Event (`event_pending` says which do not yet); beyond
    /// [`TRAIL_SEGMENTS_MAX`] the oldest go regardless (Events that cannot be sent at all must
    /// not grow the engine without bound).
    pub fn trim(&mut self, event_pending: impl Fn(&AuditEntry) -> bool) {
        loop {
            let full = self.trail.len() / TRAIL_SEGMENT;
            let segments = self.trail.len().div_ceil(TRAIL_SEGMENT);
            if full == 0 || segments <= TRAIL_SEGMENTS_KEPT {
                return;
            }
            let oldest = &self.trail[..TRAIL_SEGMENT];
            if segments <= TRAIL_SEGMENTS_MAX && oldest.iter().any(&event_pending) {
                return;
            }
            self.trail.drain(..TRAIL_SEGMENT);
            self.first_segment += 1;
        }
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

    fn ledger() -> Ledger {
        Ledger::new(RunHeader {
            run_id: "r1".into(),
            started_at: "2026-11-25T00:00:00Z".into(),
            plan: None,
        })
    }

    #[test]
    fn a_transition_is_recorded_once() {
        let mut ledger = ledger();
        ledger.record([entry("a#1", "Init", "ValidateDeps")]);
        ledger.record([
            entry("a#1", "Init", "ValidateDeps"),
            entry("a#2", "Init", "ValidateDeps"),
        ]);
        assert_eq!(ledger.trail.len(), 2);
    }

    #[test]
    fn the_trail_keeps_its_newest_segments_and_counts_the_rest() {
        let mut ledger = ledger();
        let total = TRAIL_SEGMENT * (TRAIL_SEGMENTS_KEPT + 3) + 5;
        ledger.record((0..total).map(|i| entry(&format!("e#{i}"), "Init", "Verdict")));
        ledger.trim(|_| false);
        // 8 segments (the last one partial): the newest 4 are kept.
        assert_eq!(ledger.first_segment, 4);
        assert_eq!(ledger.earlier(), 4 * TRAIL_SEGMENT as u64);
        assert_eq!(ledger.trail.len(), total - 4 * TRAIL_SEGMENT);
        assert_eq!(ledger.trail[0].attempt, format!("e#{}", 4 * TRAIL_SEGMENT));
        // The annotations round-trip, segment numbers included.
        let back = Ledger::from_annotations(Some(&ledger.annotations())).unwrap();
        assert_eq!(back, ledger);
    }

    #[test]
    fn a_segment_whose_event_is_not_sent_yet_is_kept_up_to_the_hard_cap() {
        let mut ledger = ledger();
        let total = TRAIL_SEGMENT * (TRAIL_SEGMENTS_KEPT + 2);
        ledger.record((0..total).map(|i| entry(&format!("e#{i}"), "Init", "Verdict")));
        ledger.trim(|e| e.attempt == "e#1");
        assert_eq!(ledger.first_segment, 0, "segment 0 names an unsent Event");
        ledger.trim(|e| e.attempt == "e#20");
        assert_eq!(
            ledger.first_segment, 1,
            "segment 0 may go, segment 1 may not"
        );
        let many = TRAIL_SEGMENT * (TRAIL_SEGMENTS_MAX + 2);
        ledger.record((0..many).map(|i| entry(&format!("x#{i}"), "Init", "Verdict")));
        ledger.trim(|_| true);
        assert_eq!(
            ledger.trail.len().div_ceil(TRAIL_SEGMENT),
            TRAIL_SEGMENTS_MAX
        );
    }

    #[test]
    fn progress_is_a_short_token_per_attempt_in_chunks() {
        let mut ledger = ledger();
        let started = ledger.header.started_at.clone();
        ledger.set_progress(
            0,
            Progress::at(Mark::Passed, "2026-11-25T00:00:12.001Z", &started),
        );
        ledger.set_progress(
            2,
            Progress::at(Mark::Monitor, "2026-11-25T00:00:30.900Z", &started),
        );
        ledger.set_progress(
            PROGRESS_CHUNK + 1,
            Progress::at(Mark::Skipped, "2026-11-25T00:01:00Z", &started),
        );
        let annotations = ledger.annotations();
        assert_eq!(annotations["chaos-runner.io/progress-0"], "P13 . M31");
        assert_eq!(annotations["chaos-runner.io/progress-1"], ". S60");
        let back = Ledger::from_annotations(Some(&annotations)).unwrap();
        assert_eq!(back.progress_of(0).unwrap().mark, Mark::Passed);
        assert_eq!(back.progress_of(1), None);
        assert_eq!(
            back.progress_of(2).unwrap().at_rfc3339(&started),
            "2026-11-25T00:00:31Z"
        );
        assert_eq!(back.progress_of(PROGRESS_CHUNK + 1).unwrap().at_s, 60);
        // An end is rounded up: an interval measured from it is never shorter.
        assert_eq!(
            back.progress_of(0).unwrap().at_ms(&started),
            millis(&started) + 13_000
        );
    }

    #[test]
    fn damaged_progress_and_trail_are_skipped_not_fatal() {
        let mut annotations = ledger().annotations();
        annotations.insert(
            "chaos-runner.io/progress-0".into(),
            "P1 Q7 garbage M2".into(),
        );
        annotations.insert("chaos-runner.io/trail-0".into(), "{not json".into());
        annotations.insert("chaos-runner.io/progress-x".into(), "P1".into());
        annotations.insert("chaos-runner.io/progress-99999999".into(), "P1".into());
        let back = Ledger::from_annotations(Some(&annotations)).unwrap();
        assert_eq!(back.progress_of(0).unwrap().mark, Mark::Passed);
        assert_eq!(back.progress_of(1), None);
        assert_eq!(back.progress_of(3).unwrap().mark, Mark::Monitor);
        assert!(back.trail.is_empty());
        assert_eq!(back.progress.len(), 4, "a chunk beyond any plan is ignored");
        annotations.insert(RUN_ANNOTATION.into(), "[]".into());
        assert_eq!(Ledger::from_annotations(Some(&annotations)), None);
    }

    #[test]
    fn a_legacy_trail_is_read() {
        let trail = json!({"runId": "old", "history": [entry("a#1", "Init", "ValidateDeps")]});
        let annotations: BTreeMap<String, String> =
            [(LEGACY_AUDIT_ANNOTATION.to_string(), trail.to_string())].into();
        let ledger = Ledger::from_annotations(Some(&annotations)).unwrap();
        assert_eq!(ledger.header.run_id, "old");
        assert_eq!(ledger.trail.len(), 1);
        assert!(Ledger::owns(LEGACY_AUDIT_ANNOTATION) && !Ledger::owns("chaos-runner.io/seed"));
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
