//! `chaos-runner report`: a readable timeline of a run, from what the cluster keeps — the audit
//! trail (annotation `chaos-runner.io/audit`, which outlives the run), the status entries, the
//! Events on the ChaosEngine and the Jobs still labelled with its `chaosUID`.

use std::fmt::Write as _;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::cluster::api::{ApiError, call, call_opt};
use crate::contract::record::Ledger;

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
    sort_events(&mut events);
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

/// When an Event happened, as precisely as it says, and whether that is to the sub-second:
/// `eventTime` (microseconds; set by events.k8s.io writers), else `firstTimestamp`, else
/// `lastTimestamp`, else `metadata.creationTimestamp` (whole seconds). The first occurrence
/// places an Event on the timeline; its repeats are shown as `(xN)` on that line.
fn event_time(event: &Event) -> Option<(Timestamp, bool)> {
    if let Some(time) = &event.event_time {
        return Some((time.0, true));
    }
    event
        .first_timestamp
        .as_ref()
        .or(event.last_timestamp.as_ref())
        .or(event.metadata.creation_timestamp.as_ref())
        .map(|time| (time.0, false))
}

/// The order of the Events: by time, then by creation order.
///
/// - Time: [`event_time`] in nanoseconds. A time in whole seconds (core/v1 `firstTimestamp`,
///   which is all the runner and the operator write) counts as the start of its second.
/// - Creation order, for Events of the same instant (every Event of one second, in practice):
///   `metadata.resourceVersion` read as a number, which is etcd's revision of the Event's last
///   write, so it grows with each new Event (an Event patched for a repeat carries the revision
///   of its last repeat). `creationTimestamp` has only seconds, so it cannot tell them apart,
///   and the list itself comes back by name. The API promises nothing about the
///   resourceVersion's format: one that is not a number sorts after those that are.
/// - Then the name, so the order is total; Events without any time come last.
fn event_order(event: &Event) -> (bool, i128, u64, String) {
    let time = event_time(event).map(|(time, _)| time.as_nanosecond());
    let version = event
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    (
        time.is_none(),
        time.unwrap_or(0),
        version,
        event.metadata.name.clone().unwrap_or_default(),
    )
}

/// Sorts Events into their true order ([`event_order`]).
fn sort_events(events: &mut [Event]) {
    events.sort_by_cached_key(event_order);
}

/// The time of day an Event happened: to the millisecond when it has sub-second precision,
/// else to the second ("" without any time).
fn event_clock(event: &Event) -> String {
    match event_time(event) {
        Some((time, true)) => time.strftime("%H:%M:%S%.3f").to_string(),
        Some((time, false)) => time.strftime("%H:%M:%S").to_string(),
        None => String::new(),
    }
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

/// The report as plain text: no colour codes or other escape sequences, so it reads the same on
/// a terminal, through a pipe and in a file (nothing to gate on `IsTerminal`).
// Long on purpose: the report's sections in the order they are printed.
pub fn render(view: &RunView) -> String {
    let mut out = String::new();
    let engine = &view.engine;
    let name = engine.metadata.name.as_deref().unwrap_or("");
    let namespace = engine.metadata.namespace.as_deref().unwrap_or("");
    let status = engine.data.get("status").cloned().unwrap_or(Value::Null);
    let record = status.get(crate::contract::record::STATUS_KEY);
    let ledger = Ledger::from_annotations(engine.metadata.annotations.as_ref());
    let run = ledger
        .as_ref()
        .map(|l| l.header.run_id.as_str())
        .unwrap_or("-");
    let _ = writeln!(out, "ChaosEngine {namespace}/{name}  run {run}");
    if let Some(failure) = record
        .and_then(|r| r.get("failure"))
        .and_then(Value::as_str)
    {
        let _ = writeln!(out, "  run refused: {failure}");
    }

    let _ = writeln!(out, "\nTimeline (audit trail: every phase transition)");
    match &ledger {
        Some(ledger) if !ledger.trail.is_empty() => {
            if ledger.earlier() > 0 {
                let _ = writeln!(
                    out,
                    "  ({} earlier transitions: each has its Event, listed below while kept)",
                    ledger.earlier()
                );
            }
            let width = ledger
                .trail
                .iter()
                .map(|e| e.attempt.len())
                .max()
                .unwrap_or(0);
            for entry in &ledger.trail {
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
    let mut events = view.events.clone();
    sort_events(&mut events);
    let clocks: Vec<String> = events.iter().map(event_clock).collect();
    let time_width = clocks.iter().map(String::len).max().unwrap_or(0);
    for (event, at) in events.iter().zip(&clocks) {
        let count = event.count.unwrap_or(1);
        let repeat = if count > 1 {
            format!(" (x{count})")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {at:<time_width$}  {:<7}  {:<32}  {}{repeat}",
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
    // A Job with a deletionTimestamp is on its way out (a foreground delete waits for its
    // pods): it is being cleaned up, not left behind.
    let (deleting, left): (Vec<&Job>, Vec<&Job>) = view
        .jobs
        .iter()
        .partition(|job| job.metadata.deletion_timestamp.is_some());
    for job in &left {
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
    for job in &deleting {
        let _ = writeln!(
            out,
            "  {}  deleting",
            job.metadata.name.as_deref().unwrap_or("")
        );
    }
    match (left.is_empty(), deleting.len()) {
        (true, 0) => {
            let _ = writeln!(out, "  none left (cleaned up)");
        }
        (true, being_deleted) => {
            let _ = writeln!(out, "  none left behind ({being_deleted} being deleted)");
        }
        _ => {}
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

    fn engine() -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
            "metadata": {"name": "demo", "namespace": "ns"}
        }))
        .unwrap()
    }

    /// An Event named `name` with `reason`, resourceVersion `version` and `times` (any of
    /// firstTimestamp, lastTimestamp, eventTime, creationTimestamp).
    fn event(name: &str, reason: &str, version: &str, times: Value) -> Event {
        let mut event = json!({
            "metadata": {"name": name, "resourceVersion": version},
            "involvedObject": {}, "type": "Normal", "reason": reason, "message": "m",
        });
        for (key, time) in times.as_object().unwrap() {
            if key == "creationTimestamp" {
                event["metadata"][key] = time.clone();
            } else {
                event[key] = time.clone();
            }
        }
        serde_json::from_value(event).unwrap()
    }

    fn render_events(events: Vec<Event>) -> String {
        render(&RunView {
            engine: engine(),
            events,
            jobs: vec![],
        })
    }

    /// `reasons` appear in `text` in this order.
    fn assert_in_order(text: &str, reasons: &[&str]) {
        let positions: Vec<usize> = reasons
            .iter()
            .map(|r| text.find(r).unwrap_or_else(|| panic!("no {r} in {text}")))
            .collect();
        assert!(positions.is_sorted(), "{reasons:?} out of order in\n{text}");
    }

    #[test]
    fn events_of_one_second_are_in_creation_order_not_name_order() {
        // As the API lists them (by name); whole-second times as the runner writes them.
        let second = |s: &str| json!({"firstTimestamp": format!("2026-11-25T22:15:{s}Z")});
        let events = vec![
            event("demo.0000", "ExperimentJobCreate", "105", second("01")),
            event("demo.1111", "ExperimentPodCompleted", "120", second("03")),
            event(
                "demo.8888",
                "ExperimentDependencyCheck",
                "103",
                second("01"),
            ),
            event("demo.aaaa", "ChaosEngineInitialized", "110", second("00")),
            event("demo.ffff", "ExperimentFound", "101", second("01")),
        ];
        let text = render_events(events);
        assert_in_order(
            &text,
            &[
                "ChaosEngineInitialized",
                "ExperimentFound",
                "ExperimentDependencyCheck",
                "ExperimentJobCreate",
                "ExperimentPodCompleted",
            ],
        );
        assert!(
            text.contains("  22:15:01  Normal   ExperimentFound "),
            "{text}"
        );
    }

    #[test]
    fn sub_second_event_times_order_and_show_to_the_millisecond() {
        let events = vec![
            event(
                "a",
                "LateInTheSecond",
                "10",
                json!({"eventTime": "2026-11-25T22:15:01.900000Z"}),
            ),
            event(
                "b",
                "EarlyInTheSecond",
                "20",
                json!({"eventTime": "2026-11-25T22:15:01.100000Z"}),
            ),
            // Whole seconds count as the start of the second.
            event(
                "c",
                "WholeSecond",
                "30",
                json!({"firstTimestamp": "2026-11-25T22:15:01Z"}),
            ),
            // Only the last occurrence's time: used when there is no other.
            event(
                "d",
                "OnlyLast",
                "5",
                json!({"lastTimestamp": "2026-11-25T22:15:02Z"}),
            ),
            // Only the creation time.
            event(
                "e",
                "OnlyCreated",
                "6",
                json!({"creationTimestamp": "2026-11-25T22:14:59Z"}),
            ),
            event("f", "NoTimeAtAll", "1", json!({})),
        ];
        let text = render_events(events);
        assert_in_order(
            &text,
            &[
                "OnlyCreated",
                "WholeSecond",
                "EarlyInTheSecond",
                "LateInTheSecond",
                "OnlyLast",
                "NoTimeAtAll",
            ],
        );
        assert!(
            text.contains("  22:15:01.100  Normal   EarlyInTheSecond "),
            "{text}"
        );
        // Shorter times are padded so the columns line up.
        assert!(
            text.contains("  22:15:01      Normal   WholeSecond "),
            "{text}"
        );
    }

    #[test]
    fn the_first_occurrence_places_a_repeated_event() {
        let mut repeated = event(
            "r",
            "Repeated",
            "50",
            json!({"firstTimestamp": "2026-11-25T22:15:01Z", "lastTimestamp": "2026-11-25T22:15:09Z"}),
        );
        repeated.count = Some(3);
        let later = event(
            "l",
            "Later",
            "40",
            json!({"firstTimestamp": "2026-11-25T22:15:05Z"}),
        );
        let text = render_events(vec![later, repeated]);
        assert_in_order(&text, &["Repeated", "Later"]);
        assert!(text.contains("22:15:01  Normal   Repeated"), "{text}");
        assert!(text.contains("m (x3)"), "{text}");
    }

    #[test]
    fn resource_versions_that_are_not_numbers_sort_last_within_their_instant() {
        let at = json!({"firstTimestamp": "2026-11-25T22:15:01Z"});
        let mut events = vec![
            event("b", "Opaque", "x9", at.clone()),
            event("a", "Numbered", "7", at.clone()),
            event("c", "AlsoOpaque", "x1", at),
        ];
        sort_events(&mut events);
        let reasons: Vec<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
        assert_eq!(reasons, ["Numbered", "Opaque", "AlsoOpaque"]);
    }

    fn job(name: &str, deleting: bool, condition: Option<&str>) -> Job {
        let mut job = json!({"metadata": {"name": name}});
        if deleting {
            job["metadata"]["deletionTimestamp"] = json!("2026-11-25T22:15:03Z");
        }
        if let Some(kind) = condition {
            job["status"] = json!({"conditions": [{"type": kind, "status": "True"}]});
        }
        serde_json::from_value(job).unwrap()
    }

    fn jobs_section(jobs: Vec<Job>) -> String {
        let text = render(&RunView {
            engine: engine(),
            events: vec![],
            jobs,
        });
        let start = text.find("Jobs labelled").unwrap();
        text[start..].to_owned()
    }

    #[test]
    fn a_job_being_deleted_is_shown_as_deleting_not_left_behind() {
        let text = jobs_section(vec![job("pod-delete-abcdef", true, Some("Complete"))]);
        assert!(text.contains("  pod-delete-abcdef  deleting\n"), "{text}");
        assert!(
            text.contains("  none left behind (1 being deleted)\n"),
            "{text}"
        );
        assert!(!text.contains("Complete"), "{text}");
        assert!(!text.contains("none left (cleaned up)"), "{text}");

        let text = jobs_section(vec![
            job("pod-delete-abcdef", true, None),
            job("container-kill-ghijkl", false, Some("Complete")),
            job("pod-cpu-hog-mnopqr", false, None),
        ]);
        assert!(
            text.contains("  container-kill-ghijkl  Complete\n"),
            "{text}"
        );
        assert!(text.contains("  pod-cpu-hog-mnopqr  Active\n"), "{text}");
        assert!(text.contains("  pod-delete-abcdef  deleting\n"), "{text}");
        assert!(!text.contains("none left"), "{text}");

        let text = jobs_section(vec![]);
        assert!(text.contains("  none left (cleaned up)\n"), "{text}");
    }

    #[test]
    fn the_report_is_plain_text_without_colour_codes() {
        // It goes to terminals, pipes and files alike: no escape sequences anywhere.
        let mut view = RunView {
            engine: engine(),
            events: vec![event(
                "a",
                "ExperimentFound",
                "1",
                json!({"eventTime": "2026-11-25T22:15:01.100000Z"}),
            )],
            jobs: vec![job("x-abcdef", true, None), job("y-abcdef", false, None)],
        };
        view.engine.data = json!({"status": {"experiments": [
            {"name": "x", "status": "Completed", "verdict": "Pass", "experimentPod": "p"}
        ]}});
        let text = render(&view);
        assert!(
            !text
                .chars()
                .any(|c| c == '\u{1b}' || (c.is_control() && c != '\n')),
            "{text:?}"
        );
    }
}
