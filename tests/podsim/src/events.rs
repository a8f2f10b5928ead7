//! The simulator's record of what it did: an event log and counters for tests and benchmarks.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

/// One thing the simulator did to a pod or a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEventKind {
    /// Pod bound to the fake node through `pods/binding`.
    Bound { node: String },
    /// Pod status written `Running`, every container running and ready.
    Running,
    /// A simulator (re)started and found this pod already `Running`: it goes on from there.
    Resumed,
    /// ChaosResult created or updated.
    ResultWritten {
        result: String,
        phase: String,
        verdict: String,
    },
    /// Pod status written terminal (`Succeeded` or `Failed`): the pod's completion instant.
    Completed { phase: String, main_exit_code: i32 },
    /// Pod status written `Pending` / `Unschedulable`.
    Unschedulable,
    /// Main container waiting with an image pull error (`ErrImagePull`, `ImagePullBackOff`).
    ImagePullFailing { reason: String },
    /// Pod had a deletionTimestamp and was deleted again with grace 0.
    ForceDeleted,
    /// The pod's env asks for something the simulator cannot do; the pod is left alone.
    Rejected { reason: String },
    /// An API call failed; the pod's play stopped there.
    Failed { reason: String },
}

impl std::fmt::Display for SimEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimEventKind::Bound { node } => write!(f, "bound to node {node}"),
            SimEventKind::Running => f.write_str("running"),
            SimEventKind::Resumed => f.write_str("resumed (already running)"),
            SimEventKind::ResultWritten {
                result,
                phase,
                verdict,
            } => write!(f, "ChaosResult {result}: phase {phase}, verdict {verdict}"),
            SimEventKind::Completed {
                phase,
                main_exit_code,
            } => write!(f, "pod {phase} (main container exit {main_exit_code})"),
            SimEventKind::Unschedulable => f.write_str("pending: unschedulable"),
            SimEventKind::ImagePullFailing { reason } => write!(f, "pending: {reason}"),
            SimEventKind::ForceDeleted => f.write_str("force-deleted (grace 0)"),
            SimEventKind::Rejected { reason } => write!(f, "rejected: {reason}"),
            SimEventKind::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// A [`SimEventKind`] with the pod it concerns and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// Pod name.
    pub pod: String,
    /// What happened.
    pub kind: SimEventKind,
    /// Wall-clock time, right after the API call that did it returned.
    pub at: SystemTime,
    /// Monotonic time of the same moment, for in-process latency measurements.
    pub instant: Instant,
}

impl std::fmt::Display for SimEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = jiff::Timestamp::try_from(self.at)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| "?".into());
        write!(f, "{at} {} {}", self.pod, self.kind)
    }
}

/// Counts of what the simulator did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Pods whose play began (each pod once per simulator).
    pub pods_played: u64,
    /// Pods written terminal (`Succeeded`/`Failed`).
    pub pods_completed: u64,
    /// ChaosResult writes (create or update).
    pub results_written: u64,
    /// Force deletions (grace 0) of pods being deleted.
    pub pods_force_deleted: u64,
    /// Pods rejected or whose play stopped on an API error.
    pub failures: u64,
}

/// Shared between the simulator's tasks and its handle.
#[derive(Debug)]
pub(crate) struct Journal {
    events: Mutex<Vec<SimEvent>>,
    changed: watch::Sender<usize>,
    pub(crate) pods_played: AtomicU64,
    pods_completed: AtomicU64,
    results_written: AtomicU64,
    pods_force_deleted: AtomicU64,
    failures: AtomicU64,
}

impl Journal {
    pub(crate) fn new() -> Self {
        Journal {
            events: Mutex::new(Vec::new()),
            changed: watch::Sender::new(0),
            pods_played: AtomicU64::new(0),
            pods_completed: AtomicU64::new(0),
            results_written: AtomicU64::new(0),
            pods_force_deleted: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Records an event now and bumps its counter.
    pub(crate) fn record(&self, pod: &str, kind: SimEventKind) {
        let counter = match &kind {
            SimEventKind::ResultWritten { .. } => Some(&self.results_written),
            SimEventKind::Completed { .. } => Some(&self.pods_completed),
            SimEventKind::ForceDeleted => Some(&self.pods_force_deleted),
            SimEventKind::Rejected { .. } | SimEventKind::Failed { .. } => Some(&self.failures),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let event = SimEvent {
            pod: pod.to_owned(),
            kind,
            at: SystemTime::now(),
            instant: Instant::now(),
        };
        tracing::info!(pod = %event.pod, event = %event.kind, "podsim");
        let count = {
            // A poisoned log only means a reader panicked mid-clone; the data is still whole.
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            events.push(event);
            events.len()
        };
        self.changed.send_replace(count);
    }

    pub(crate) fn events(&self) -> Vec<SimEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<usize> {
        self.changed.subscribe()
    }

    pub(crate) fn counters(&self) -> SimCounters {
        SimCounters {
            pods_played: self.pods_played.load(Ordering::Relaxed),
            pods_completed: self.pods_completed.load(Ordering::Relaxed),
            results_written: self.results_written.load(Ordering::Relaxed),
            pods_force_deleted: self.pods_force_deleted.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}
