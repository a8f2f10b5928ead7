//! The transition table: the one source the step function, the tests and the diagrams use.

use crate::effect::{EffectKind, EventKind};
use crate::input::InputKind;
use crate::phase::PhaseKind;

/// Event reasons. Go's where the step is the same, new ones for new transitions.
pub mod reason {
    pub const EXPERIMENT_FOUND: &str = "ExperimentFound";
    pub const EXPERIMENT_NOT_FOUND: &str = "ExperimentNotFound";
    pub const EXPERIMENT_DEPENDENCY_CHECK: &str = "ExperimentDependencyCheck";
    pub const EXPERIMENT_SKIPPED: &str = "ExperimentSkipped";
    pub const EXPERIMENT_JOB_CREATE: &str = "ExperimentJobCreate";
    pub const EXPERIMENT_JOB_ADOPTED: &str = "ExperimentJobAdopted";
    pub const EXPERIMENT_POD_RUNNING: &str = "ExperimentPodRunning";
    pub const EXPERIMENT_POD_COMPLETED: &str = "ExperimentPodCompleted";
    pub const CHAOS_CONTAINER_WATCH_NOT_PERMITTED: &str = "ChaosContainerWatchNotPermitted";
    pub const EXPERIMENT_TIMED_OUT: &str = "ExperimentTimedOut";
    pub const CHAOS_RESULT_READ: &str = "ChaosResultRead";
    pub const CHAOS_RESULT_INCONCLUSIVE: &str = "ChaosResultInconclusive";
    pub const CHAOS_RESULT_NOT_FOUND: &str = "ChaosResultNotFound";
    pub const EXPERIMENT_ABORTED: &str = "ExperimentAborted";
    pub const EXPERIMENT_JOB_CLEAN_UP: &str = "ExperimentJobCleanUp";
    pub const EXPERIMENT_CONCLUDED: &str = "ExperimentConcluded";
}

/// The condition on the phase data, input data or cleanup policy that selects a row when
/// several rows share `(from, on)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guard {
    Always,
    PodNotRecorded,
    PodRecorded,
    FinalVerdictPolicyDelete,
    FinalVerdictPolicyRetain,
    NoFinalVerdictPolicyDelete,
    NoFinalVerdictPolicyRetain,
    PolicyDelete,
    PolicyRetain,
    ActionDelete,
    ActionRetain,
    NotAborting,
    AlreadyAborting,
    OutcomeRan,
    OutcomeSkipped,
    OutcomeAborted,
}

impl Guard {
    /// Human text for tables and diagrams; empty for `Always`.
    pub const fn describe(self) -> &'static str {
        match self {
            Guard::Always => "",
            Guard::PodNotRecorded => "no pod recorded yet",
            Guard::PodRecorded => "a pod is already recorded",
            Guard::FinalVerdictPolicyDelete => "final verdict, policy delete",
            Guard::FinalVerdictPolicyRetain => "final verdict, policy retain",
            Guard::NoFinalVerdictPolicyDelete => "Awaited or unknown verdict, policy delete",
            Guard::NoFinalVerdictPolicyRetain => "Awaited or unknown verdict, policy retain",
            Guard::PolicyDelete => "policy delete",
            Guard::PolicyRetain => "policy retain",
            Guard::ActionDelete => "deleting",
            Guard::ActionRetain => "retaining",
            Guard::NotAborting => "not already aborting",
            Guard::AlreadyAborting => "already aborting",
            Guard::OutcomeRan => "the Job ran",
            Guard::OutcomeSkipped => "never ran",
            Guard::OutcomeAborted => "aborted",
        }
    }
}

/// One row: in phase `from`, input `on` under `guard` moves to `to`, asking for `effects` (in
/// this order) and emitting one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: PhaseKind,
    pub on: InputKind,
    pub guard: Guard,
    pub to: PhaseKind,
    pub effects: &'static [EffectKind],
    pub event: (EventKind, &'static str),
}

/// An observation a phase accepts without any transition (a re-observation or a late signal
/// that changes nothing). Pairs in neither list are rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ignored {
    pub phase: PhaseKind,
    pub on: InputKind,
    pub guard: Guard,
    pub why: &'static str,
}

use EffectKind as E;
use EventKind::{Normal, Warning};
use InputKind as I;
use PhaseKind as P;

const TO_VERDICT: &[EffectKind] = &[E::Checkpoint, E::Emit, E::WriteVerdict];
const TO_CLEANUP_DELETE: &[EffectKind] = &[E::Checkpoint, E::Emit, E::DeleteJob];
const TO_CLEANUP_RETAIN: &[EffectKind] = &[E::Checkpoint, E::Emit, E::RetainJob];
const TO_AWAIT_RESULT: &[EffectKind] = &[E::Checkpoint, E::Emit, E::ReadResult];
const TO_MONITOR: &[EffectKind] = &[E::Checkpoint, E::Emit, E::WatchPod];
const TO_TERMINAL: &[EffectKind] = &[E::Checkpoint, E::Emit];

const fn row(
    from: PhaseKind,
    on: InputKind,
    guard: Guard,
    to: PhaseKind,
    effects: &'static [EffectKind],
    event: (EventKind, &'static str),
) -> Transition {
    Transition {
        from,
        on,
        guard,
        to,
        effects,
        event,
    }
}

/// Every transition of an experiment attempt.
#[rustfmt::skip]
pub static TRANSITIONS: &[Transition] = &[
    // Init
    row(P::Init, I::ExperimentFound, Guard::Always, P::ValidateDeps,
        &[E::Checkpoint, E::Emit, E::CheckDependencies], (Normal, reason::EXPERIMENT_FOUND)),
    row(P::Init, I::ExperimentMissing, Guard::Always, P::Verdict, TO_VERDICT,
        (Warning, reason::EXPERIMENT_NOT_FOUND)),
    row(P::Init, I::AbortRequested, Guard::Always, P::Verdict, TO_VERDICT,
        (Warning, reason::EXPERIMENT_ABORTED)),
    // ValidateDeps
    row(P::ValidateDeps, I::DependenciesValid, Guard::Always, P::LaunchJob,
        &[E::Checkpoint, E::Emit, E::WriteEntry, E::CreateJob],
        (Normal, reason::EXPERIMENT_DEPENDENCY_CHECK)),
    // Go's reason for both skips (a Warning ExperimentDependencyCheck).
    row(P::ValidateDeps, I::DependenciesInvalid, Guard::Always, P::Verdict, TO_VERDICT,
        (Warning, reason::EXPERIMENT_DEPENDENCY_CHECK)),
    row(P::ValidateDeps, I::AbortRequested, Guard::Always, P::Verdict, TO_VERDICT,
        (Warning, reason::EXPERIMENT_ABORTED)),
    // LaunchJob
    row(P::LaunchJob, I::JobCreated, Guard::Always, P::Monitor, TO_MONITOR,
        (Normal, reason::EXPERIMENT_JOB_CREATE)),
    row(P::LaunchJob, I::JobAlreadyExists, Guard::Always, P::Monitor, TO_MONITOR,
        (Normal, reason::EXPERIMENT_JOB_ADOPTED)),
    row(P::LaunchJob, I::JobCreateFailed, Guard::Always, P::Verdict, TO_VERDICT,
        (Warning, reason::EXPERIMENT_DEPENDENCY_CHECK)),
    row(P::LaunchJob, I::AbortRequested, Guard::Always, P::Cleanup, TO_CLEANUP_DELETE,
        (Warning, reason::EXPERIMENT_ABORTED)),
    // Monitor
    row(P::Monitor, I::PodRunning, Guard::PodNotRecorded, P::Monitor,
        &[E::Checkpoint, E::Emit, E::WriteEntry], (Normal, reason::EXPERIMENT_POD_RUNNING)),
    row(P::Monitor, I::PodSucceeded, Guard::Always, P::AwaitResult, TO_AWAIT_RESULT,
        (Normal, reason::EXPERIMENT_POD_COMPLETED)),
    row(P::Monitor, I::PodFailed, Guard::Always, P::AwaitResult, TO_AWAIT_RESULT,
        (Warning, reason::CHAOS_CONTAINER_WATCH_NOT_PERMITTED)),
    row(P::Monitor, I::PendingTimeout, Guard::Always, P::AwaitResult, TO_AWAIT_RESULT,
        (Warning, reason::CHAOS_CONTAINER_WATCH_NOT_PERMITTED)),
    row(P::Monitor, I::DeadlinePassed, Guard::Always, P::AwaitResult, TO_AWAIT_RESULT,
        (Warning, reason::EXPERIMENT_TIMED_OUT)),
    row(P::Monitor, I::AbortRequested, Guard::Always, P::Cleanup, TO_CLEANUP_DELETE,
        (Warning, reason::EXPERIMENT_ABORTED)),
    // AwaitResult
    row(P::AwaitResult, I::ResultSeen, Guard::FinalVerdictPolicyDelete, P::Cleanup,
        TO_CLEANUP_DELETE, (Normal, reason::CHAOS_RESULT_READ)),
    row(P::AwaitResult, I::ResultSeen, Guard::FinalVerdictPolicyRetain, P::Cleanup,
        TO_CLEANUP_RETAIN, (Normal, reason::CHAOS_RESULT_READ)),
    row(P::AwaitResult, I::ResultSeen, Guard::NoFinalVerdictPolicyDelete, P::Cleanup,
        TO_CLEANUP_DELETE, (Warning, reason::CHAOS_RESULT_INCONCLUSIVE)),
    row(P::AwaitResult, I::ResultSeen, Guard::NoFinalVerdictPolicyRetain, P::Cleanup,
        TO_CLEANUP_RETAIN, (Warning, reason::CHAOS_RESULT_INCONCLUSIVE)),
    row(P::AwaitResult, I::ResultMissing, Guard::PolicyDelete, P::Cleanup, TO_CLEANUP_DELETE,
        (Warning, reason::CHAOS_RESULT_NOT_FOUND)),
    row(P::AwaitResult, I::ResultMissing, Guard::PolicyRetain, P::Cleanup, TO_CLEANUP_RETAIN,
        (Warning, reason::CHAOS_RESULT_NOT_FOUND)),
    row(P::AwaitResult, I::AbortRequested, Guard::Always, P::Cleanup, TO_CLEANUP_DELETE,
        (Warning, reason::EXPERIMENT_ABORTED)),
    // Cleanup
    row(P::Cleanup, I::JobDeleted, Guard::ActionDelete, P::Verdict, TO_VERDICT,
        (Normal, reason::EXPERIMENT_JOB_CLEAN_UP)),
    row(P::Cleanup, I::JobRetained, Guard::ActionRetain, P::Verdict, TO_VERDICT,
        (Normal, reason::EXPERIMENT_JOB_CLEAN_UP)),
    row(P::Cleanup, I::AbortRequested, Guard::NotAborting, P::Cleanup, TO_CLEANUP_DELETE,
        (Warning, reason::EXPERIMENT_ABORTED)),
    // Verdict
    row(P::Verdict, I::StatusWritten, Guard::OutcomeRan, P::Completed, TO_TERMINAL,
        (Normal, reason::EXPERIMENT_CONCLUDED)),
    row(P::Verdict, I::StatusWritten, Guard::OutcomeSkipped, P::Skipped, TO_TERMINAL,
        (Warning, reason::EXPERIMENT_CONCLUDED)),
    row(P::Verdict, I::StatusWritten, Guard::OutcomeAborted, P::Aborted, TO_TERMINAL,
        (Warning, reason::EXPERIMENT_CONCLUDED)),
];

/// Observations accepted without a transition.
pub static IGNORED: &[Ignored] = &[
    Ignored {
        phase: P::Monitor,
        on: I::PodPending,
        guard: Guard::Always,
        why: "still Pending; the status-check timeout arrives as PendingTimeout",
    },
    Ignored {
        phase: P::Monitor,
        on: I::PodRunning,
        guard: Guard::PodRecorded,
        why: "re-observation (e.g. after a restart); the first pod seen is kept",
    },
    Ignored {
        phase: P::Cleanup,
        on: I::AbortRequested,
        guard: Guard::AlreadyAborting,
        why: "the Job is already being deleted for an abort",
    },
    Ignored {
        phase: P::Verdict,
        on: I::AbortRequested,
        guard: Guard::Always,
        why: "the outcome is decided and the Job already handled; only the status write is left",
    },
];

/// The row for `(from, on, guard)`, if the table has one.
pub fn find(from: PhaseKind, on: InputKind, guard: Guard) -> Option<&'static Transition> {
    TRANSITIONS
        .iter()
        .find(|row| row.from == from && row.on == on && row.guard == guard)
}

fn effects_list(effects: &[EffectKind]) -> String {
    effects
        .iter()
        .map(|effect| effect.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table as Markdown (transitions, then ignored observations).
pub fn render_markdown() -> String {
    let mut out = String::from(
        "| from | input | guard | to | effects | event |\n|---|---|---|---|---|---|\n",
    );
    for row in TRANSITIONS {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} `{}` |\n",
            row.from,
            row.on,
            row.guard.describe(),
            row.to,
            effects_list(row.effects),
            row.event.0.as_str(),
            row.event.1,
        ));
    }
    out.push_str(
        "\nAccepted without a transition (no effects):\n\n\
         | phase | input | guard | why |\n|---|---|---|---|\n",
    );
    for ignored in IGNORED {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            ignored.phase,
            ignored.on,
            ignored.guard.describe(),
            ignored.why,
        ));
    }
    out.push_str("\nAny other (phase, input) pair is rejected (`Rejected`).\n");
    out
}

/// The table as a Mermaid state diagram; rows sharing `(from, to)` share one edge.
pub fn render_mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n    [*] --> Init\n");
    let mut edges: Vec<(PhaseKind, PhaseKind, Vec<InputKind>)> = Vec::new();
    for row in TRANSITIONS {
        match edges
            .iter_mut()
            .find(|(from, to, _)| *from == row.from && *to == row.to)
        {
            Some((_, _, inputs)) => {
                if !inputs.contains(&row.on) {
                    inputs.push(row.on);
                }
            }
            None => edges.push((row.from, row.to, vec![row.on])),
        }
    }
    for (from, to, inputs) in edges {
        let label = inputs
            .iter()
            .map(|input| input.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("    {from} --> {to}: {label}\n"));
    }
    for terminal in PhaseKind::ALL.iter().filter(|kind| kind.is_terminal()) {
        out.push_str(&format!("    {terminal} --> [*]\n"));
    }
    out
}
