//! What a user sees of a finished run, with the names and times that differ between two runs
//! of one scenario taken out: the simulation and the plane (`tests/sim_vs_plane.rs`) must see
//! the same for the same scenario, or the fake API does not behave as the real one does.
//! `status.engineStatus` is left out: the operator writes it, not the runner.

use std::collections::BTreeMap;

use chaos_runner::contract::record::Ledger;
use serde_json::Value;

/// One transition of the audit trail: from, to, reason.
pub type Step = (String, String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `status.experiments`: (name, status, verdict), in the stored order.
    pub entries: Vec<(String, String, String)>,
    /// Jobs created, by experiment (a Job is named `<experiment>-<6 hex digits>`).
    pub jobs_created: BTreeMap<String, usize>,
    /// Jobs left at the end, by experiment.
    pub jobs_left: BTreeMap<String, usize>,
    /// The audit trail, by attempt (`<experiment>#<iteration>`), in order.
    pub trail: BTreeMap<String, Vec<Step>>,
    /// The runner's Events on the engine: (type, reason, count) → how many Events.
    pub events: BTreeMap<(String, String, i64), usize>,
}

impl Observed {
    /// From the engine as stored, the Events in its namespace, and the names of the Jobs
    /// created during the run and left after it.
    pub fn of(
        engine: &Value,
        events: &[&Value],
        jobs_created: &[&str],
        jobs_left: &[&str],
    ) -> Self {
        let text = |value: &Value, pointer: &str| {
            value
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let entries = engine
            .pointer("/status/experiments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| (text(e, "/name"), text(e, "/status"), text(e, "/verdict")))
            .collect();
        let annotations: Option<BTreeMap<String, String>> = engine
            .pointer("/metadata/annotations")
            .and_then(|a| serde_json::from_value(a.clone()).ok());
        let mut trail: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for entry in Ledger::from_annotations(annotations.as_ref())
            .map(|ledger| ledger.trail)
            .unwrap_or_default()
        {
            trail
                .entry(entry.attempt)
                .or_default()
                .push((entry.from, entry.to, entry.reason));
        }
        let mut counted = BTreeMap::new();
        for event in events
            .iter()
            .filter(|e| text(e, "/involvedObject/kind") == "ChaosEngine")
        {
            let key = (
                text(event, "/type"),
                text(event, "/reason"),
                event.get("count").and_then(Value::as_i64).unwrap_or(1),
            );
            *counted.entry(key).or_insert(0) += 1;
        }
        Observed {
            entries,
            jobs_created: by_experiment(jobs_created),
            jobs_left: by_experiment(jobs_left),
            trail,
            events: counted,
        }
    }

    /// Each field that differs from `other`'s, both values shown.
    #[allow(dead_code)] // tests/simulation.rs includes this module and does not compare
    pub fn differences(&self, other: &Observed) -> Vec<String> {
        let mut found = Vec::new();
        let mut compare = |what: &str, a: String, b: String| {
            if a != b {
                found.push(format!("{what}:\n    {a}\n  vs\n    {b}"));
            }
        };
        compare(
            "entries",
            format!("{:?}", self.entries),
            format!("{:?}", other.entries),
        );
        compare(
            "Jobs created",
            format!("{:?}", self.jobs_created),
            format!("{:?}", other.jobs_created),
        );
        compare(
            "Jobs left",
            format!("{:?}", self.jobs_left),
            format!("{:?}", other.jobs_left),
        );
        let attempts: std::collections::BTreeSet<&String> =
            self.trail.keys().chain(other.trail.keys()).collect();
        for attempt in attempts {
            compare(
                &format!("trail of {attempt}"),
                format!("{:?}", self.trail.get(attempt)),
                format!("{:?}", other.trail.get(attempt)),
            );
        }
        compare(
            "Events",
            format!("{:?}", self.events),
            format!("{:?}", other.events),
        );
        found
    }
}

fn by_experiment(jobs: &[&str]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for job in jobs {
        // `<experiment>-xxxxxx`: the experiment's name, a dash, six hex digits.
        let experiment = job.get(..job.len().saturating_sub(7)).unwrap_or(job);
        *counts.entry(experiment.to_owned()).or_insert(0) += 1;
    }
    counts
}
