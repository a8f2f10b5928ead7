//! Kubernetes Events on the ChaosEngine, the runner's audit trail for people.
//!
//! core/v1 Events, not `events.k8s.io/v1` (kube's `Recorder`): the Role Litmus users already
//! have grants only the former (contract §5). Each event has a name derived from the engine and
//! a caller-given key, so
//! - a repeat of the same key in this process is aggregated: the existing Event's `count` and
//!   `lastTimestamp` are patched instead of creating a new one (no flood);
//! - an event re-sent after a restart for a transition already reported finds its Event already
//!   there (409) and is not counted twice.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Mutex;

use crate::cluster::api::{ApiError, call};
use crate::contract::hash::fnv1a64;

/// Normal or Warning, as Kubernetes Events know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event to report; `key` says what makes two reports "the same event".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReport {
    pub kind: EventType,
    pub reason: String,
    pub message: String,
    pub key: String,
}

/// The ChaosEngine that events are about.
#[derive(Debug, Clone)]
pub struct EngineRef {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// Writes core/v1 Events about one ChaosEngine, aggregating repeats.
pub struct EventSink {
    api: Api<Event>,
    engine: EngineRef,
    /// `source.component`, `<engine>-runner` as the Go runner sets it.
    component: String,
    /// Event name → count already written by this process, for the newest [`WRITTEN_KEPT`]
    /// names (a transition's Event repeats only while its attempt runs; an older name that
    /// comes again is created, finds its Event (409) and is not counted).
    written: Mutex<Written>,
    may_patch: bool,
}

/// Events sent at once by an [`EventQueue`].
pub const EVENTS_IN_FLIGHT: usize = 16;

/// How many Event names an [`EventSink`] remembers: bounded memory however long the run.
pub const WRITTEN_KEPT: usize = 4096;

/// Counts of the Events written, newest names kept.
#[derive(Default)]
struct Written {
    counts: HashMap<String, i32>,
    order: std::collections::VecDeque<String>,
}

impl Written {
    fn set(&mut self, name: &str, count: i32) {
        if self.counts.insert(name.to_string(), count).is_none() {
            self.order.push_back(name.to_string());
        }
        while self.order.len() > WRITTEN_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.counts.remove(&oldest);
            }
        }
    }
}

/// Sends events in the background, in batches of up to [`EVENTS_IN_FLIGHT`] at once (repeats of
/// one Event in order), so that no experiment waits for its events between two steps (a verdict
/// is not delayed by the events before it). [`EventQueue::drain`]
/// waits until everything queued has been sent: the runner calls it before it exits.
#[derive(Clone)]
pub struct EventQueue {
    queue: tokio::sync::mpsc::UnboundedSender<Queued>,
    pending: PendingEvents,
}

/// Keys of the Events expected or queued and not sent yet. The engine writer keeps the trail
/// segments that name them: a runner that dies before they go out resends them from the trail.
#[derive(Clone, Default, Debug)]
pub struct PendingEvents(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl PendingEvents {
    /// Marks Events as due before the write that records their transitions.
    pub fn expect<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut pending) = self.0.lock() {
            pending.extend(keys.into_iter().map(str::to_string));
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.lock().is_ok_and(|pending| pending.contains(key))
    }

    fn sent(&self, key: &str) {
        if let Ok(mut pending) = self.0.lock() {
            pending.remove(key);
        }
    }
}

enum Queued {
    Report(EventReport),
    Drained(tokio::sync::oneshot::Sender<()>),
}

impl EventQueue {
    pub fn spawn(sink: std::sync::Arc<EventSink>, pending: PendingEvents) -> EventQueue {
        let (queue, mut inbox) = tokio::sync::mpsc::unbounded_channel();
        let sent = pending.clone();
        tokio::spawn(async move {
            while let Some(first) = inbox.recv().await {
                // Up to EVENTS_IN_FLIGHT at once: one at a time falls behind a large plan's
                // transitions (and the queue, in memory, grows with the run).
                let mut batch = vec![first];
                while batch.len() < EVENTS_IN_FLIGHT {
                    match inbox.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                // Repeats of one Event go in order (a count follows its create).
                let mut groups: Vec<Vec<EventReport>> = Vec::new();
                let mut drained = Vec::new();
                for item in batch {
                    match item {
                        Queued::Report(report) => {
                            match groups.iter_mut().find(|g| g[0].key == report.key) {
                                Some(group) => group.push(report),
                                None => groups.push(vec![report]),
                            }
                        }
                        Queued::Drained(done) => drained.push(done),
                    }
                }
                futures::future::join_all(groups.into_iter().map(|group| {
                    let (sink, sent) = (sink.clone(), sent.clone());
                    async move {
                        for report in group {
                            match sink.emit(&report).await {
                                // A failed one stays pending: its transition stays in the trail.
                                Err(error) => {
                                    tracing::warn!(%error, reason = %report.reason, "could not emit an event");
                                }
                                Ok(()) => sent.sent(&report.key),
                            }
                        }
                    }
                }))
                .await;
                // Everything queued before a drain request was in this batch or an earlier one.
                for done in drained {
                    let _ = done.send(());
                }
            }
        });
        EventQueue { queue, pending }
    }

    /// The Events not sent yet.
    pub fn pending(&self) -> &PendingEvents {
        &self.pending
    }

    /// Queues one event (sent with or after everything queued before it).
    pub fn emit(&self, report: EventReport) {
        self.pending.expect([report.key.as_str()]);
        if self.queue.send(Queued::Report(report)).is_err() {
            tracing::warn!("the event queue has stopped; event dropped");
        }
    }

    /// Waits until every event queued so far has been sent (or failed).
    pub async fn drain(&self) {
        let (done, drained) = tokio::sync::oneshot::channel();
        if self.queue.send(Queued::Drained(done)).is_ok() {
            let _ = drained.await;
        }
    }
}

impl EventSink {
    pub fn new(client: kube::Client, engine: EngineRef, may_patch: bool) -> EventSink {
        EventSink {
            api: Api::namespaced(client, &engine.namespace),
            component: format!("{}-runner", engine.name),
            engine,
            written: Mutex::new(Written::default()),
            may_patch,
        }
    }

    /// The engine its Events are about.
    pub fn engine(&self) -> &EngineRef {
        &self.engine
    }

    /// The Event's name: `<engine>.<16 hex digits>`, stable for one engine uid and key.
    pub fn event_name(&self, key: &str) -> String {
        let hash = fnv1a64(&[&self.engine.uid, key]);
        format!("{}.{hash:016x}", self.engine.name)
    }

    /// Reports one event. Failures are returned for logging; callers never stop a run for them.
    pub async fn emit(&self, report: &EventReport) -> Result<(), ApiError> {
        let name = self.event_name(&report.key);
        let now = Time(crate::cluster::clock::now());
        // The count is taken under the lock, the request is made without it: experiments in
        // parallel must not wait on each other's events.
        let seen = {
            let mut written = self.written.lock().await;
            let seen = written.counts.get(&name).copied();
            written.set(&name, seen.unwrap_or(0) + 1);
            seen
        };
        if let Some(count) = seen {
            if !self.may_patch {
                return Ok(());
            }
            let body = json!({"count": count + 1, "lastTimestamp": now, "message": report.message});
            let patch = Patch::Merge(&body);
            let params = PatchParams::default();
            let what = format!("patch Event {name}");
            call(&what, || self.api.patch(&name, &params, &patch)).await?;
            return Ok(());
        }
        let event = self.build(&name, report, now);
        let what = format!("create Event {name} ({})", report.reason);
        let post = PostParams::default();
        match call(&what, || self.api.create(&post, &event)).await {
            Ok(_) => Ok(()),
            // Written before a restart: the transition it reports was already reported.
            Err(error) if error.is_conflict() => Ok(()),
            Err(error) => {
                // Not written: a repeat must create it, not patch an Event that does not exist.
                self.written.lock().await.counts.remove(&name);
                Err(error)
            }
        }
    }

    /// Names of the Events that exist about this engine (one list call), to tell which
    /// recorded transitions lost theirs.
    pub async fn existing_names(&self) -> Result<std::collections::HashSet<String>, ApiError> {
        let params = kube::api::ListParams::default()
            .fields(&format!("involvedObject.uid={}", self.engine.uid));
        let what = format!("list Events of ChaosEngine {}", self.engine.name);
        let list = call(&what, || self.api.list(&params)).await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|e| e.metadata.name)
            .collect())
    }

    fn build(&self, name: &str, report: &EventReport, now: Time) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(self.engine.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("litmuschaos.io/v1alpha1".into()),
                kind: Some("ChaosEngine".into()),
                name: Some(self.engine.name.clone()),
                namespace: Some(self.engine.namespace.clone()),
                uid: Some(self.engine.uid.clone()),
                ..Default::default()
            },
            reason: Some(report.reason.clone()),
            message: Some(report.message.clone()),
            type_: Some(report.kind.as_str().into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some("chaos-runner".into()),
            reporting_instance: Some(self.component.clone()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            event_time: None::<MicroTime>,
            count: Some(1),
            ..Default::default()
        }
    }
}
