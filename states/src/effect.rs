//! What the engine asks the driver to do, and the status entry / event values it carries.

use serde::{Deserialize, Serialize};

use crate::input::InputKind;
use crate::phase::{FinalVerdict, PhaseKind};

/// One thing for the driver to do, in list order.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "effect", rename_all_fields = "camelCase")]
pub enum Effect {
    /// Persist `Step::checkpoint` together with `Step::transition` (the audit record). Always
    /// first when the phase changes: intent is recorded before any side effect.
    Checkpoint,
    /// Upsert this experiment's `status.experiments[]` entry (idempotent).
    WriteEntry(Entry),
    /// Emit a core/v1 Event on the ChaosEngine.
    Emit(Event),
    /// Command: GET the ChaosExperiment; answer `ExperimentFound` / `ExperimentMissing`.
    FetchExperiment,
    /// Command: merge and validate dependencies; answer `DependenciesValid{job}` /
    /// `DependenciesInvalid`.
    CheckDependencies,
    /// Command: create the Job (AlreadyExists means adopt); answer `JobCreated` /
    /// `JobAlreadyExists` / `JobCreateFailed`.
    CreateJob { job: String },
    /// Command: watch (or poll) the Job's pod; report `PodPending`, `PodRunning`,
    /// `PodSucceeded`, `PodFailed`, `PendingTimeout`, `DeadlinePassed`.
    WatchPod { job: String },
    /// Command: read the ChaosResult; answer `ResultSeen` / `ResultMissing`.
    ReadResult,
    /// Command: delete the Job (propagation Foreground); answer `JobDeleted` (NotFound too).
    DeleteJob { job: String },
    /// Command: keep the Job per `jobCleanUpPolicy: retain`; answer `JobRetained` at once.
    RetainJob { job: String },
    /// Command: upsert the final status entry; answer `StatusWritten`.
    WriteVerdict(Entry),
}

/// Fieldless name of an [`Effect`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EffectKind {
    Checkpoint,
    WriteEntry,
    Emit,
    FetchExperiment,
    CheckDependencies,
    CreateJob,
    WatchPod,
    ReadResult,
    DeleteJob,
    RetainJob,
    WriteVerdict,
}

impl EffectKind {
    /// Every effect kind.
    pub const ALL: [EffectKind; 11] = [
        EffectKind::Checkpoint,
        EffectKind::WriteEntry,
        EffectKind::Emit,
        EffectKind::FetchExperiment,
        EffectKind::CheckDependencies,
        EffectKind::CreateJob,
        EffectKind::WatchPod,
        EffectKind::ReadResult,
        EffectKind::DeleteJob,
        EffectKind::RetainJob,
        EffectKind::WriteVerdict,
    ];

    /// The name used in tables and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            EffectKind::Checkpoint => "Checkpoint",
            EffectKind::WriteEntry => "WriteEntry",
            EffectKind::Emit => "Emit",
            EffectKind::FetchExperiment => "FetchExperiment",
            EffectKind::CheckDependencies => "CheckDependencies",
            EffectKind::CreateJob => "CreateJob",
            EffectKind::WatchPod => "WatchPod",
            EffectKind::ReadResult => "ReadResult",
            EffectKind::DeleteJob => "DeleteJob",
            EffectKind::RetainJob => "RetainJob",
            EffectKind::WriteVerdict => "WriteVerdict",
        }
    }

    /// The inputs that answer this command; empty for effects that need no answer.
    pub const fn answers(self) -> &'static [InputKind] {
        match self {
            EffectKind::Checkpoint | EffectKind::WriteEntry | EffectKind::Emit => &[],
            EffectKind::FetchExperiment => {
                &[InputKind::ExperimentFound, InputKind::ExperimentMissing]
            }
            EffectKind::CheckDependencies => {
                &[InputKind::DependenciesValid, InputKind::DependenciesInvalid]
            }
            EffectKind::CreateJob => &[
                InputKind::JobCreated,
                InputKind::JobAlreadyExists,
                InputKind::JobCreateFailed,
            ],
            EffectKind::WatchPod => &[
                InputKind::PodPending,
                InputKind::PodRunning,
                InputKind::PodSucceeded,
                InputKind::PodFailed,
                InputKind::PendingTimeout,
                InputKind::DeadlinePassed,
            ],
            EffectKind::ReadResult => &[InputKind::ResultSeen, InputKind::ResultMissing],
            EffectKind::DeleteJob => &[InputKind::JobDeleted],
            EffectKind::RetainJob => &[InputKind::JobRetained],
            EffectKind::WriteVerdict => &[InputKind::StatusWritten],
        }
    }
}

impl Effect {
    /// The fieldless name of this effect.
    pub const fn kind(&self) -> EffectKind {
        match self {
            Effect::Checkpoint => EffectKind::Checkpoint,
            Effect::WriteEntry(_) => EffectKind::WriteEntry,
            Effect::Emit(_) => EffectKind::Emit,
            Effect::FetchExperiment => EffectKind::FetchExperiment,
            Effect::CheckDependencies => EffectKind::CheckDependencies,
            Effect::CreateJob { .. } => EffectKind::CreateJob,
            Effect::WatchPod { .. } => EffectKind::WatchPod,
            Effect::ReadResult => EffectKind::ReadResult,
            Effect::DeleteJob { .. } => EffectKind::DeleteJob,
            Effect::RetainJob { .. } => EffectKind::RetainJob,
            Effect::WriteVerdict(_) => EffectKind::WriteVerdict,
        }
    }
}

/// The effects a step may ask for when it enters (or resumes) a phase of this kind. Creating a
/// Job is only ever allowed in LaunchJob, deleting one only in Cleanup.
pub const fn allowed_effects(phase: PhaseKind) -> &'static [EffectKind] {
    use EffectKind as E;
    match phase {
        PhaseKind::Init => &[E::FetchExperiment],
        PhaseKind::ValidateDeps => &[E::Checkpoint, E::Emit, E::CheckDependencies],
        PhaseKind::LaunchJob => &[E::Checkpoint, E::Emit, E::WriteEntry, E::CreateJob],
        PhaseKind::Monitor => &[E::Checkpoint, E::Emit, E::WriteEntry, E::WatchPod],
        PhaseKind::AwaitResult => &[E::Checkpoint, E::Emit, E::ReadResult],
        PhaseKind::Cleanup => &[E::Checkpoint, E::Emit, E::DeleteJob, E::RetainJob],
        PhaseKind::Verdict => &[E::Checkpoint, E::Emit, E::WriteVerdict],
        PhaseKind::Completed | PhaseKind::Skipped | PhaseKind::Aborted => &[E::Checkpoint, E::Emit],
    }
}

/// This experiment's `status.experiments[]` entry, minus name, runner and time (the driver's).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `experimentPod`: the pod name, or `N/A` while unknown.
    #[serde(rename = "experimentPod")]
    pub pod: String,
    pub status: EntryStatus,
    pub verdict: EntryVerdict,
}

/// The placeholder pod name of the contract.
pub const NO_POD: &str = "N/A";

/// `status.experiments[].status`, contract strings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryStatus {
    #[serde(rename = "Waiting for Job Creation")]
    WaitingForJobCreation,
    Running,
    Completed,
    #[serde(rename = "ChaosExperiment Not Found")]
    ChaosExperimentNotFound,
    Skipped,
    #[serde(rename = "Forcefully Aborted")]
    ForcefullyAborted,
}

impl EntryStatus {
    /// The contract string.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryStatus::WaitingForJobCreation => "Waiting for Job Creation",
            EntryStatus::Running => "Running",
            EntryStatus::Completed => "Completed",
            EntryStatus::ChaosExperimentNotFound => "ChaosExperiment Not Found",
            EntryStatus::Skipped => "Skipped",
            EntryStatus::ForcefullyAborted => "Forcefully Aborted",
        }
    }
}

/// `status.experiments[].verdict`, contract strings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryVerdict {
    #[serde(rename = "N/A")]
    NotApplicable,
    Awaited,
    Pass,
    Fail,
    Stopped,
    Error,
}

impl EntryVerdict {
    /// The contract string.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryVerdict::NotApplicable => "N/A",
            EntryVerdict::Awaited => "Awaited",
            EntryVerdict::Pass => "Pass",
            EntryVerdict::Fail => "Fail",
            EntryVerdict::Stopped => "Stopped",
            EntryVerdict::Error => "Error",
        }
    }
}

impl From<FinalVerdict> for EntryVerdict {
    fn from(verdict: FinalVerdict) -> Self {
        match verdict {
            FinalVerdict::Pass => EntryVerdict::Pass,
            FinalVerdict::Fail => EntryVerdict::Fail,
            FinalVerdict::Stopped => EntryVerdict::Stopped,
            FinalVerdict::Error => EntryVerdict::Error,
        }
    }
}

/// core/v1 Event type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Normal,
    Warning,
}

impl EventKind {
    /// The core/v1 `type` string.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Normal => "Normal",
            EventKind::Warning => "Warning",
        }
    }
}

/// An Event for the driver to emit on the ChaosEngine.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub reason: &'static str,
    pub message: String,
}
