//! The phases of one experiment attempt, each carrying only the data it has.

use serde::{Deserialize, Serialize};

/// Fieldless name of a [`Phase`]: the key of the transition table.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhaseKind {
    Init,
    ValidateDeps,
    LaunchJob,
    Monitor,
    AwaitResult,
    Cleanup,
    Verdict,
    Completed,
    Skipped,
    Aborted,
}

impl PhaseKind {
    /// Every phase kind, in forward order.
    pub const ALL: [PhaseKind; 10] = [
        PhaseKind::Init,
        PhaseKind::ValidateDeps,
        PhaseKind::LaunchJob,
        PhaseKind::Monitor,
        PhaseKind::AwaitResult,
        PhaseKind::Cleanup,
        PhaseKind::Verdict,
        PhaseKind::Completed,
        PhaseKind::Skipped,
        PhaseKind::Aborted,
    ];

    /// Position on the forward path; a transition never lowers it. The three terminal phases
    /// share the last position.
    pub const fn ordinal(self) -> u8 {
        match self {
            PhaseKind::Init => 0,
            PhaseKind::ValidateDeps => 1,
            PhaseKind::LaunchJob => 2,
            PhaseKind::Monitor => 3,
            PhaseKind::AwaitResult => 4,
            PhaseKind::Cleanup => 5,
            PhaseKind::Verdict => 6,
            PhaseKind::Completed | PhaseKind::Skipped | PhaseKind::Aborted => 7,
        }
    }

    /// True for the outcomes nothing can leave.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            PhaseKind::Completed | PhaseKind::Skipped | PhaseKind::Aborted
        )
    }

    /// The name used in tables, diagrams and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            PhaseKind::Init => "Init",
            PhaseKind::ValidateDeps => "ValidateDeps",
            PhaseKind::LaunchJob => "LaunchJob",
            PhaseKind::Monitor => "Monitor",
            PhaseKind::AwaitResult => "AwaitResult",
            PhaseKind::Cleanup => "Cleanup",
            PhaseKind::Verdict => "Verdict",
            PhaseKind::Completed => "Completed",
            PhaseKind::Skipped => "Skipped",
            PhaseKind::Aborted => "Aborted",
        }
    }
}

impl std::fmt::Display for PhaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an experiment attempt stands. Serialized with the tag `phase` (flattened into the
/// checkpoint), so a Monitor checkpoint reads `{"phase":"Monitor","job":"…","pod":…}`.
///
/// Also the state type of the statig machine (`machine.rs`): each variant's handler takes its
/// fields by name, so a field added here is added to that handler's parameters too.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "phase", rename_all_fields = "camelCase")]
pub enum Phase {
    /// Nothing done yet: fetch the ChaosExperiment.
    Init,
    /// The experiment exists: validate its configmaps, secrets and host files.
    ValidateDeps,
    /// Dependencies are valid and the Job name is fixed: create (or adopt) the Job.
    LaunchJob { job: String },
    /// The Job exists: watch its pod. `pod` is recorded the first time it is seen running.
    Monitor { job: String, pod: Option<String> },
    /// The pod ended (or will never end in time): read the ChaosResult.
    AwaitResult {
        job: String,
        pod: Option<String>,
        end: PodEnd,
    },
    /// The outcome is decided: delete or retain the Job, as recorded in `action`.
    Cleanup {
        job: String,
        outcome: Outcome,
        action: CleanupAction,
    },
    /// Nothing left in the cluster to do: write the final status entry.
    Verdict { outcome: Outcome },
    /// Terminal: the Job ran and a verdict was recorded (Error when none could be read).
    Completed {
        verdict: FinalVerdict,
        detail: Option<String>,
    },
    /// Terminal: the experiment never ran.
    Skipped { reason: SkipReason },
    /// Terminal: aborted; any Job was deleted.
    Aborted { reason: String },
}

impl Phase {
    /// The table key of this phase.
    pub const fn kind(&self) -> PhaseKind {
        match self {
            Phase::Init => PhaseKind::Init,
            Phase::ValidateDeps => PhaseKind::ValidateDeps,
            Phase::LaunchJob { .. } => PhaseKind::LaunchJob,
            Phase::Monitor { .. } => PhaseKind::Monitor,
            Phase::AwaitResult { .. } => PhaseKind::AwaitResult,
            Phase::Cleanup { .. } => PhaseKind::Cleanup,
            Phase::Verdict { .. } => PhaseKind::Verdict,
            Phase::Completed { .. } => PhaseKind::Completed,
            Phase::Skipped { .. } => PhaseKind::Skipped,
            Phase::Aborted { .. } => PhaseKind::Aborted,
        }
    }

    /// The Job name, in the phases that have one.
    pub fn job(&self) -> Option<&str> {
        match self {
            Phase::LaunchJob { job }
            | Phase::Monitor { job, .. }
            | Phase::AwaitResult { job, .. }
            | Phase::Cleanup { job, .. } => Some(job),
            _ => None,
        }
    }
}

/// How the experiment pod's watch ended; decides the entry when the result has no verdict.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum PodEnd {
    Succeeded,
    Failed {
        reason: String,
    },
    /// The pod stayed Pending past the status-check timeout.
    PendingTimeout,
    /// An overall deadline passed; `what` names it.
    DeadlinePassed {
        what: String,
    },
}

impl PodEnd {
    /// Short human description, used in event messages and details.
    pub fn describe(&self) -> String {
        match self {
            PodEnd::Succeeded => "the experiment pod succeeded".to_owned(),
            PodEnd::Failed { reason } => format!("the experiment pod failed: {reason}"),
            PodEnd::PendingTimeout => {
                "the experiment pod stayed Pending past the status-check timeout".to_owned()
            }
            PodEnd::DeadlinePassed { what } => format!("{what} passed"),
        }
    }
}

/// The verdicts an experiment can end with (the ChaosResult's final ones).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FinalVerdict {
    Pass,
    Fail,
    Stopped,
    Error,
}

impl FinalVerdict {
    /// Parses a ChaosResult verdict; `None` for `Awaited` and anything unknown.
    pub fn from_result(verdict: &str) -> Option<FinalVerdict> {
        match verdict {
            "Pass" => Some(FinalVerdict::Pass),
            "Fail" => Some(FinalVerdict::Fail),
            "Stopped" => Some(FinalVerdict::Stopped),
            "Error" => Some(FinalVerdict::Error),
            _ => None,
        }
    }
}

/// Why an experiment never ran.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum SkipReason {
    ExperimentNotFound,
    DependenciesInvalid {
        reasons: Vec<String>,
    },
    /// The API refused the Job: it definitely does not exist, so nothing is cleaned up.
    JobCreateFailed {
        reason: String,
    },
}

impl SkipReason {
    /// Short human description, used in event messages.
    pub fn describe(&self) -> String {
        match self {
            SkipReason::ExperimentNotFound => "ChaosExperiment not found".to_owned(),
            SkipReason::DependenciesInvalid { reasons } => {
                format!("invalid dependencies: {}", reasons.join("; "))
            }
            SkipReason::JobCreateFailed { reason } => format!("Job creation failed: {reason}"),
        }
    }
}

/// The decided result of an attempt, carried from the decision to the final entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum Outcome {
    /// The Job ran. `result_final` says the verdict came from the ChaosResult; otherwise it is
    /// Error and `pod_end` decides the entry status (see `entry_for`).
    Ran {
        verdict: FinalVerdict,
        result_final: bool,
        pod_end: PodEnd,
        detail: Option<String>,
    },
    Skipped {
        reason: SkipReason,
    },
    Aborted {
        reason: String,
    },
}

/// What Cleanup does with the Job, fixed when Cleanup is entered so a resume repeats it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupAction {
    Delete,
    Retain,
}
