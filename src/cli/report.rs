//! `chaos-runner report`: a readable timeline of a run, from what the cluster keeps — the audit
//! trail (annotation `chaos-runner.io/audit`, which outlives the run), the status entries, the
//! Events on the ChaosEngine and the Jobs still labelled with its `chaosUID`.

use std::fmt::Write as _;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::cluster::api::{ApiError, call, call_opt};
use crate::contract::record::AuditTrail;

/// Everything the report shows, as read from the cluster.
#[derive(Debug, Clone)]
pub struct RunView {
    pub engine: DynamicObject,
    pub events: Vec<Event>,
    pub jobs: Vec<Job>,
}

/// Reads the engine, its Events and its Jobs.
pub async fn fetch(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<RunView>, ApiError> {
    let engines: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &crate::contract::crd::engine_resource(),
    );
    let Some(engine) = call_opt(&format!("get ChaosEngine {name}"), || engines.get(name)).await?
    else {
        return Ok(None);
    };
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let by_engine = ListParams::default().fields(&format!(
        "involvedObject.kind=ChaosEngine,involvedObject.name={name}"
    ));
    let mut events = call("list Events", || events.list(&by_engine)).await?.items;
    events.sort_by_key(|e| e.first_timestamp.as_ref().map(|t| t.0));
    let uid = engine.metadata.uid.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let by_uid = ListParams::default().labels(&format!("chaosUID={uid}"));
    let jobs = call("list Jobs", || jobs.list(&by_uid)).await?.items;
    Ok(Some(RunView {
        engine,
        events,
        jobs,
    }))
}

/// The time of day of an RFC 3339 stamp, to the millisecond when it has them:
/// "2026-11-25T22:06:02.126500Z" → "22:06:02.126", "2026-11-25T22:06:02Z" → "22:06:02".
fn clock(rfc3339: &str) -> String {
    let time = rfc3339.get(11..).unwrap_or(rfc3339).trim_end_matches('Z');
    time.chars().take(12).collect()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The report as plain text.
// Long on purpose: the report's sections in the order they are printed.
pub fn render(view: &RunView) -> String {
    let mut out = String::new();
    let engine = &view.engine;
    let name = engine.metadata.name.as_deref().unwrap_or("");
    let namespace = engine.metadata.namespace.as_deref().unwrap_or("");
    let status = engine.data.get("status").cloned().unwrap_or(Value::Null);
    let record = status.get(crate::contract::record::STATUS_KEY);
    let trail = AuditTrail::from_annotations(engine.metadata.annotations.as_ref());
    let run = trail.as_ref().map(|t| t.run_id.as_str()).unwrap_or("-");
    let _ = writeln!(out, "ChaosEngine {namespace}/{name}  run {run}");
    if let Some(failure) = record
        .and_then(|r| r.get("failure"))
        .and_then(Value::as_str)
    {
        let _ = writeln!(out, "  run refused: {failure}");
    }

    let _ = writeln!(out, "\nTimeline (audit trail: every phase transition)");
    match &trail {
        Some(trail) if !trail.history.is_empty() => {
            let width = trail
                .history
                .iter()
                .map(|e| e.attempt.len())
                .max()
                .unwrap_or(0);
            for entry in &trail.history {
                let _ = writeln!(
                    out,
                    "  {}  {:width$}  {:>12} -> {:<12}  {}",
                    clock(&entry.at),
                    entry.attempt,
                    entry.from,
                    entry.to,
                    entry.reason,
                );
            }
        }
        _ => {
            let _ = writeln!(out, "  (no audit trail on the engine)");
        }
    }

    let _ = writeln!(out, "\nEvents on the ChaosEngine ({})", view.events.len());
    for event in &view.events {
        let at = event
            .first_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        let count = event.count.unwrap_or(1);
        let repeat = if count > 1 {
            format!(" (x{count})")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {}  {:<7}  {:<32}  {}{repeat}",
            clock(&at),
            event.type_.as_deref().unwrap_or(""),
            event.reason.as_deref().unwrap_or(""),
            event.message.as_deref().unwrap_or(""),
        );
    }

    let _ = writeln!(out, "\nVerdicts (status.experiments)");
    let entries = status
        .get("experiments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for entry in &entries {
        let _ = writeln!(
            out,
            "  {:<24}  {:<26}  {:<8}  pod {}",
            text(entry, "name"),
            text(entry, "status"),
            text(entry, "verdict"),
            text(entry, "experimentPod"),
        );
    }

    let _ = writeln!(out, "\nJobs labelled with the engine's chaosUID");
    if view.jobs.is_empty() {
        let _ = writeln!(out, "  none left (cleaned up)");
    }
    for job in &view.jobs {
        let state = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().rfind(|c| c.status == "True"))
            .map(|c| c.type_.clone())
            .unwrap_or_else(|| "Active".into());
        let _ = writeln!(
            out,
            "  {}  {state}",
            job.metadata.name.as_deref().unwrap_or("")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn report_shows_trail_events_verdicts_and_jobs() {
        let trail = json!({"runId": "r1", "history": [
            {"attempt": "pod-delete#1", "from": "Init", "to": "ValidateDeps", "reason": "ExperimentFound", "at": "2026-11-25T22:06:02.126500Z"}
        ]});
        let engine: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
            "metadata": {"name": "demo", "namespace": "ns", "annotations": {"chaos-runner.io/audit": trail.to_string()}},
            "status": {"experiments": [{"name": "pod-delete", "status": "Completed", "verdict": "Pass", "experimentPod": "p-1"}]}
        }))
        .unwrap();
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "e"}, "involvedObject": {}, "type": "Normal",
            "reason": "ExperimentFound", "message": "found", "count": 2,
            "firstTimestamp": "2026-11-25T22:06:02Z"
        }))
        .unwrap();
        let text = render(&RunView {
            engine,
            events: vec![event],
            jobs: vec![],
        });
        assert!(text.contains("ChaosEngine ns/demo  run r1"), "{text}");
        assert!(
            text.contains(
                "22:06:02.126  pod-delete#1          Init -> ValidateDeps  ExperimentFound"
            ),
            "{text}"
        );
        assert!(text.contains("ExperimentFound"), "{text}");
        assert!(text.contains("found (x2)"), "{text}");
        assert!(
            text.contains(
                "pod-delete                Completed                   Pass      pod p-1"
            ),
            "{text}"
        );
        assert!(text.contains("none left (cleaned up)"), "{text}");
    }
}
