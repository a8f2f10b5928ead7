//! What a run shares with its attempts: the context, the run's errors and outcomes, the
//! exit codes, the clock.
//!
//! Every `tokio::select!` of the runner is `biased`: tokio otherwise starts each poll at a
//! random branch, drawn from an unseeded generator, and a simulated run
//! (`tests/simulation.rs`) would not replay from its seed. Each loop consumes what a branch
//! answers, so no branch is starved.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;

use crate::cluster::access::Access;
use crate::cluster::api::ApiError;
use crate::cluster::engine_writer::{EngineWriter, WriteError};
use crate::cluster::observe::PodMap;
use crate::contract::config::RunnerConfig;
use crate::contract::crd::ChaosEngine;
use crate::contract::merge::RunnerEnv;
use crate::contract::plan::Plan;
use crate::contract::record::{AuditEntry, Ledger, Progress, RecordError, RunRecord};

/// Exit code for an infrastructure failure a restart can cure (the kubelet restarts the
/// container, `restartPolicy: OnFailure`, and the run resumes from its checkpoint).
pub const EXIT_RETRY: u8 = 1;
/// Exit code when the input names nothing to report to (no engine in the env, a bad file).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code of a run suspended by SIGTERM with the engine active (128 + SIGTERM, as a
/// process killed by it): not `Completed`, so the operator does not mark the engine completed;
/// it creates a new runner pod once this one is gone, and that one resumes.
pub const EXIT_SUSPENDED: u8 = 143;

/// Why a run stopped before every experiment reached an outcome; each is worth a restart.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("{0}")]
    Write(#[from] WriteError),
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("ChaosEngine {name}: cannot read it: {message}")]
    Engine { name: String, message: String },
}

/// How a run ended, for the exit code and the final log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every attempt reached an outcome (verdicts, skips and aborts included).
    Finished { outcomes: Vec<(String, String)> },
    /// The engine does not exist (or went away): nothing to report to.
    EngineGone,
    /// The plan annotations are invalid: reported, nothing was created.
    PlanRejected(String),
    /// The engine (spec or stored record) cannot be read: reported, nothing was touched.
    Unrunnable(String),
    /// The runner was terminated (SIGTERM) while the engine is active: every attempt's
    /// checkpoint is written and its Job left running for the next runner to resume.
    Suspended,
}

/// Everything an attempt needs that is shared by the run.
pub struct RunContext {
    pub client: kube::Client,
    pub config: RunnerConfig,
    pub runner_env: RunnerEnv,
    /// The engine as read at start (spec and metadata do not change during a run).
    pub engine: ChaosEngine,
    pub engine_uid: String,
    pub run_id: String,
    pub access: Access,
    pub writer: EngineWriter,
    pub events: crate::cluster::events::EventQueue,
    pub pods: watch::Receiver<PodMap>,
    /// How many attempts are in Monitor: the pod poller only polls while it is above 0.
    pub monitoring: watch::Sender<crate::cluster::observe::Monitored>,
    /// Set once the run must abort, with the reason.
    pub abort: watch::Receiver<Option<String>>,
    /// Set once the runner is being terminated without an abort: attempts checkpoint and stop.
    pub suspend: watch::Receiver<bool>,
    /// Overrides the Monitor deadline derived from the experiment.
    pub monitor_timeout: Option<Duration>,
    /// What the engine held for this run when the runner started.
    pub found: FoundAtStart,
    /// Permits for Job launches in flight ([`LAUNCHES_AT_ONCE`]).
    pub launches: tokio::sync::Semaphore,
    /// ChaosExperiments read so far in this run, by name, or why one could not be decoded.
    pub experiments: std::sync::Mutex<BTreeMap<String, ExperimentRead>>,
    pub cleanup: chaos_runner_states::CleanupPolicy,
}

/// Job launches (merge, build, create) in flight at once. Enough to keep the apiserver busy; few
/// enough that the Jobs and request bodies of a plan starting hundreds of attempts at once are
/// not all in memory together.
pub const LAUNCHES_AT_ONCE: usize = 16;

/// A ChaosExperiment as read once per run: decoded, or why it is malformed.
pub type ExperimentRead = Result<std::sync::Arc<crate::contract::crd::ChaosExperiment>, String>;

/// What the engine held for this run when the runner started: where each attempt resumes.
#[derive(Debug, Default)]
pub struct FoundAtStart {
    /// `status.chaosRunner.attempts`, by attempt key: the attempts in flight.
    pub checkpoints: BTreeMap<String, serde_json::Value>,
    /// The recorded progress of each attempt, by attempt key.
    pub progress: BTreeMap<String, Progress>,
    /// When the run started (progress times count from it).
    pub started_at: String,
    /// `status.experiments[].verdict` by experiment name.
    pub verdicts: BTreeMap<String, String>,
    /// `status.experiments[].experimentPod` by experiment name.
    pub pods: BTreeMap<String, String>,
    /// The kept audit trail: transitions whose Event may have been lost.
    pub trail: Vec<AuditEntry>,
}

impl FoundAtStart {
    /// Reads the record, the ledger (through the plan's positions) and the engine's
    /// `status.experiments`.
    pub fn read(
        record: &RunRecord,
        ledger: &Ledger,
        plan: &Plan,
        status: Option<&serde_json::Value>,
    ) -> FoundAtStart {
        let field = |field: &str| -> BTreeMap<String, String> {
            let entries = status
                .and_then(|s| s.get("experiments"))
                .and_then(|e| e.as_array());
            entries
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    let name = e.get("name")?.as_str()?;
                    Some((name.to_string(), e.get(field)?.as_str()?.to_string()))
                })
                .collect()
        };
        let progress = plan
            .items
            .iter()
            .enumerate()
            .filter_map(|(position, item)| Some((item.key.clone(), ledger.progress_of(position)?)))
            .collect();
        FoundAtStart {
            checkpoints: record.attempts.clone(),
            progress,
            started_at: ledger.header.started_at.clone(),
            verdicts: field("verdict"),
            pods: field("experimentPod"),
            trail: ledger.trail.clone(),
        }
    }
}

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub monitor_timeout: Option<Duration>,
    /// What tells this process from the engine's other runners in new run ids and
    /// incarnations: the process id unless set (the simulation sets one per incarnation, so
    /// a replay draws the same names).
    pub process: Option<String>,
}

impl RunOptions {
    pub fn process(&self) -> String {
        self.process
            .clone()
            .unwrap_or_else(|| std::process::id().to_string())
    }
}

/// The current time as checkpoints, entries and the trail record it (RFC 3339).
pub fn now() -> String {
    crate::cluster::clock::now().to_string()
}

/// Sleeps until `deadline`, or forever without one.
pub async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves when `receiver` sees a new value; never once its sender is gone. A closed channel
/// answers `changed()` at once on every call: in a `select!` loop, a spin that holds the thread.
pub async fn changed_or_never<T>(receiver: &mut watch::Receiver<T>) {
    if receiver.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps for `wait`, or forever when there is nothing to wait for.
pub async fn sleep_opt(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}
