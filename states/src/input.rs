//! Observations the driver feeds into the engine.

use serde::{Deserialize, Serialize};

/// One observation of the cluster (or of the runner's own lifecycle).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "input", rename_all_fields = "camelCase")]
pub enum Input {
    /// Answer to `FetchExperiment`: the ChaosExperiment exists.
    ExperimentFound,
    /// Answer to `FetchExperiment`: the ChaosExperiment is missing.
    ExperimentMissing,
    /// Answer to `CheckDependencies`: all present. `job` is the deterministic Job name the
    /// driver will create (the engine never computes names).
    DependenciesValid { job: String },
    /// Answer to `CheckDependencies`: what is missing or malformed, one reason each.
    DependenciesInvalid { reasons: Vec<String> },
    /// Answer to `CreateJob`: created now.
    JobCreated,
    /// Answer to `CreateJob`: a Job with that name and our `chaosUID` exists; adopt it.
    JobAlreadyExists,
    /// Answer to `CreateJob`: the Job definitely does not exist (the API refused it, or a GET
    /// after an indeterminate error found none). Anything uncertain must be resolved by the
    /// driver first: an existing Job is `JobAlreadyExists`.
    JobCreateFailed { reason: String },
    /// From `WatchPod`: the pod exists but has not started.
    PodPending,
    /// From `WatchPod`: the pod runs.
    PodRunning { pod: String },
    /// From `WatchPod`: the pod is done (Succeeded, or Running with every Job container
    /// terminated).
    PodSucceeded { pod: String },
    /// From `WatchPod`: the pod failed.
    PodFailed { pod: String, reason: String },
    /// From `WatchPod`: the pod stayed Pending past the status-check timeout.
    PendingTimeout,
    /// From `WatchPod`: an overall Monitor deadline passed; `what` names it.
    DeadlinePassed { what: String },
    /// Answer to `ReadResult`: the ChaosResult as read.
    ResultSeen {
        verdict: String,
        phase: String,
        fail_reason: Option<String>,
    },
    /// Answer to `ReadResult`: no ChaosResult (after the driver's own bounded wait).
    ResultMissing,
    /// Answer to `DeleteJob`: the delete was accepted, or the Job was already gone.
    JobDeleted,
    /// Answer to `RetainJob`: nothing to do, the Job stays.
    JobRetained,
    /// Answer to `WriteVerdict`: the final status entry is written.
    StatusWritten,
    /// `engineState: stop`, SIGTERM or engine deletion.
    AbortRequested { reason: String },
}

/// Fieldless name of an [`Input`]: the other key of the transition table.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputKind {
    ExperimentFound,
    ExperimentMissing,
    DependenciesValid,
    DependenciesInvalid,
    JobCreated,
    JobAlreadyExists,
    JobCreateFailed,
    PodPending,
    PodRunning,
    PodSucceeded,
    PodFailed,
    PendingTimeout,
    DeadlinePassed,
    ResultSeen,
    ResultMissing,
    JobDeleted,
    JobRetained,
    StatusWritten,
    AbortRequested,
}

impl InputKind {
    /// Every input kind.
    pub const ALL: [InputKind; 19] = [
        InputKind::ExperimentFound,
        InputKind::ExperimentMissing,
        InputKind::DependenciesValid,
        InputKind::DependenciesInvalid,
        InputKind::JobCreated,
        InputKind::JobAlreadyExists,
        InputKind::JobCreateFailed,
        InputKind::PodPending,
        InputKind::PodRunning,
        InputKind::PodSucceeded,
        InputKind::PodFailed,
        InputKind::PendingTimeout,
        InputKind::DeadlinePassed,
        InputKind::ResultSeen,
        InputKind::ResultMissing,
        InputKind::JobDeleted,
        InputKind::JobRetained,
        InputKind::StatusWritten,
        InputKind::AbortRequested,
    ];

    /// The name used in tables, diagrams and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            InputKind::ExperimentFound => "ExperimentFound",
            InputKind::ExperimentMissing => "ExperimentMissing",
            InputKind::DependenciesValid => "DependenciesValid",
            InputKind::DependenciesInvalid => "DependenciesInvalid",
            InputKind::JobCreated => "JobCreated",
            InputKind::JobAlreadyExists => "JobAlreadyExists",
            InputKind::JobCreateFailed => "JobCreateFailed",
            InputKind::PodPending => "PodPending",
            InputKind::PodRunning => "PodRunning",
            InputKind::PodSucceeded => "PodSucceeded",
            InputKind::PodFailed => "PodFailed",
            InputKind::PendingTimeout => "PendingTimeout",
            InputKind::DeadlinePassed => "DeadlinePassed",
            InputKind::ResultSeen => "ResultSeen",
            InputKind::ResultMissing => "ResultMissing",
            InputKind::JobDeleted => "JobDeleted",
            InputKind::JobRetained => "JobRetained",
            InputKind::StatusWritten => "StatusWritten",
            InputKind::AbortRequested => "AbortRequested",
        }
    }
}

impl std::fmt::Display for InputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Input {
    /// The table key of this input.
    pub const fn kind(&self) -> InputKind {
        match self {
            Input::ExperimentFound => InputKind::ExperimentFound,
            Input::ExperimentMissing => InputKind::ExperimentMissing,
            Input::DependenciesValid { .. } => InputKind::DependenciesValid,
            Input::DependenciesInvalid { .. } => InputKind::DependenciesInvalid,
            Input::JobCreated => InputKind::JobCreated,
            Input::JobAlreadyExists => InputKind::JobAlreadyExists,
            Input::JobCreateFailed { .. } => InputKind::JobCreateFailed,
            Input::PodPending => InputKind::PodPending,
            Input::PodRunning { .. } => InputKind::PodRunning,
            Input::PodSucceeded { .. } => InputKind::PodSucceeded,
            Input::PodFailed { .. } => InputKind::PodFailed,
            Input::PendingTimeout => InputKind::PendingTimeout,
            Input::DeadlinePassed { .. } => InputKind::DeadlinePassed,
            Input::ResultSeen { .. } => InputKind::ResultSeen,
            Input::ResultMissing => InputKind::ResultMissing,
            Input::JobDeleted => InputKind::JobDeleted,
            Input::JobRetained => InputKind::JobRetained,
            Input::StatusWritten => InputKind::StatusWritten,
            Input::AbortRequested { .. } => InputKind::AbortRequested,
        }
    }
}
