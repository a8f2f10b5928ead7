//! The step function: checkpoint + observation → next checkpoint + effects.
//!
//! Outcome → status entry (`experimentPod`, `status`, `verdict`), written in `Verdict`:
//!
//! | how the attempt ended | pod | status | verdict |
//! |---|---|---|---|
//! | ChaosExperiment missing | `N/A` | `ChaosExperiment Not Found` | `Fail` |
//! | dependencies invalid | `N/A` | `Skipped` | `Fail` |
//! | Job create refused | `N/A` | `Skipped` | `Fail` |
//! | ChaosResult with a final verdict (Pass/Fail/Stopped/Error), whatever the pod did | pod | `Completed` | result verdict |
//! | pod Succeeded, result Awaited / unknown verdict / missing | pod | `Completed` | `Error` |
//! | pod Failed, Pending past timeout or deadline passed, and no final verdict | pod or `N/A` | `Skipped` | `Error` |
//! | abort (any phase before `Verdict`) | pod or `N/A` | `Forcefully Aborted` | `Stopped` |
//!
//! While running: entering `LaunchJob` writes `{N/A, Waiting for Job Creation, Awaited}`; the
//! first `PodRunning` writes `{pod, Running, Awaited}`.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, Observed};
use crate::effect::{Effect, Entry, EntryStatus, EntryVerdict, Event, NO_POD};
use crate::input::{Input, InputKind};
use crate::phase::{CleanupAction, FinalVerdict, Outcome, Phase, PhaseKind, PodEnd, SkipReason};
use crate::table::{self, Guard};

/// `spec.jobCleanUpPolicy` of the ChaosEngine.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    Delete,
    #[default]
    Retain,
}

impl CleanupPolicy {
    /// Contract: only the exact string `delete` deletes; empty, absent or anything else retains.
    pub fn from_spec(value: Option<&str>) -> CleanupPolicy {
        match value {
            Some("delete") => CleanupPolicy::Delete,
            _ => CleanupPolicy::Retain,
        }
    }
}

/// What the caller supplies besides the checkpoint and the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepContext {
    pub cleanup: CleanupPolicy,
    /// The current time as the caller wants it recorded (RFC 3339).
    pub now: String,
}

/// One recorded transition, for the audit trail. The driver persists it with the checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub from: PhaseKind,
    pub to: PhaseKind,
    pub on: InputKind,
    /// The event reason of the row.
    pub reason: String,
    pub at: String,
}

/// The answer to one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The checkpoint after the input (unchanged when `transition` is `None`).
    pub checkpoint: Checkpoint,
    /// The transition taken; `None` when the input was accepted but changes nothing.
    pub transition: Option<AuditRecord>,
    /// What to do, in order; empty when `transition` is `None`.
    pub effects: Vec<Effect>,
}

/// An input the current phase does not take (not in the table, or no guard matches). The driver
/// logs it and carries on; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("input {input} is not accepted in phase {phase}")]
pub struct Rejected {
    pub phase: PhaseKind,
    pub input: InputKind,
}

/// A transition chosen by `decide`, before the table confirms it.
struct Move {
    guard: Guard,
    to: Phase,
    message: String,
    observed: Observed,
}

enum Decision {
    Ignore,
    Move(Box<Move>),
}

/// Cleanup after an abort: the Job is deleted whatever the policy.
fn aborting_cleanup(job: &str, reason: &str) -> Phase {
    Phase::Cleanup {
        job: job.to_owned(),
        outcome: Outcome::Aborted {
            reason: reason.to_owned(),
        },
        action: CleanupAction::Delete,
    }
}

/// Applies one observation. Pure: the same arguments always give the same answer.
pub fn step(cp: &Checkpoint, input: &Input, ctx: &StepContext) -> Result<Step, Rejected> {
    let rejected = Rejected {
        phase: cp.phase.kind(),
        input: input.kind(),
    };
    let (guard, to, message, observed) = match decide(cp, input, ctx) {
        None => return Err(rejected),
        Some(Decision::Ignore) => {
            return Ok(Step {
                checkpoint: cp.clone(),
                transition: None,
                effects: Vec::new(),
            });
        }
        Some(Decision::Move(chosen)) => {
            let Move {
                guard,
                to,
                message,
                observed,
            } = *chosen;
            (guard, to, message, observed)
        }
    };
    // The table is the authority: a decision without its row is refused, never improvised.
    let row = match table::find(rejected.phase, rejected.input, guard) {
        Some(row) if row.to == to.kind() => row,
        _ => return Err(rejected),
    };
    // A self-transition (Monitor seeing its pod run) stays in the phase it entered: clocks
    // that count from the phase's entry must not restart.
    let entered_at = if to.kind() == cp.phase.kind() {
        cp.entered_at.clone()
    } else {
        ctx.now.clone()
    };
    let next = Checkpoint {
        phase: to,
        entered_at,
        observed,
        ..cp.clone()
    };
    let mut effects = vec![
        Effect::Checkpoint,
        Effect::Emit(Event {
            kind: row.event.0,
            reason: row.event.1,
            message,
        }),
    ];
    effects.extend(
        resume_effects(&next)
            .into_iter()
            .filter(|effect| row.effects.contains(&effect.kind())),
    );
    Ok(Step {
        transition: Some(AuditRecord {
            from: row.from,
            to: row.to,
            on: row.on,
            reason: row.event.1.to_owned(),
            at: ctx.now.clone(),
        }),
        checkpoint: next,
        effects,
    })
}

/// What to (re)do on entering the checkpoint's phase: the idempotent entry write and the
/// command. Used after every transition and after a restart.
pub fn resume_effects(cp: &Checkpoint) -> Vec<Effect> {
    let mut effects = Vec::new();
    if !matches!(cp.phase, Phase::Verdict { .. })
        && let Some(entry) = entry_for(cp)
    {
        effects.push(Effect::WriteEntry(entry));
    }
    match &cp.phase {
        Phase::Init => effects.push(Effect::FetchExperiment),
        Phase::ValidateDeps => effects.push(Effect::CheckDependencies),
        Phase::LaunchJob { job } => effects.push(Effect::CreateJob { job: job.clone() }),
        Phase::Monitor { job, .. } => effects.push(Effect::WatchPod { job: job.clone() }),
        Phase::AwaitResult { .. } => effects.push(Effect::ReadResult),
        Phase::Cleanup { job, action, .. } => effects.push(match action {
            CleanupAction::Delete => Effect::DeleteJob { job: job.clone() },
            CleanupAction::Retain => Effect::RetainJob { job: job.clone() },
        }),
        Phase::Verdict { outcome } => {
            effects.push(Effect::WriteVerdict(outcome_entry(outcome, &cp.observed)))
        }
        Phase::Completed { .. } | Phase::Skipped { .. } | Phase::Aborted { .. } => {}
    }
    effects
}

/// The status entry this phase shows, if it writes one (see the module table).
pub fn entry_for(cp: &Checkpoint) -> Option<Entry> {
    match &cp.phase {
        Phase::LaunchJob { .. } => Some(Entry {
            pod: NO_POD.to_owned(),
            status: EntryStatus::WaitingForJobCreation,
            verdict: EntryVerdict::Awaited,
        }),
        Phase::Monitor { pod: Some(pod), .. } => Some(Entry {
            pod: pod.clone(),
            status: EntryStatus::Running,
            verdict: EntryVerdict::Awaited,
        }),
        Phase::Verdict { outcome } => Some(outcome_entry(outcome, &cp.observed)),
        _ => None,
    }
}

fn outcome_entry(outcome: &Outcome, observed: &Observed) -> Entry {
    let pod = || observed.pod.clone().unwrap_or_else(|| NO_POD.to_owned());
    match outcome {
        Outcome::Ran {
            verdict,
            result_final,
            pod_end,
            ..
        } => Entry {
            pod: pod(),
            status: if *result_final || *pod_end == PodEnd::Succeeded {
                EntryStatus::Completed
            } else {
                EntryStatus::Skipped
            },
            verdict: (*verdict).into(),
        },
        Outcome::Skipped { reason } => Entry {
            pod: NO_POD.to_owned(),
            status: match reason {
                SkipReason::ExperimentNotFound => EntryStatus::ChaosExperimentNotFound,
                SkipReason::DependenciesInvalid { .. } | SkipReason::JobCreateFailed { .. } => {
                    EntryStatus::Skipped
                }
            },
            verdict: EntryVerdict::Fail,
        },
        Outcome::Aborted { .. } => Entry {
            pod: pod(),
            status: EntryStatus::ForcefullyAborted,
            verdict: EntryVerdict::Stopped,
        },
    }
}

fn skip_message(experiment: &str, detail: &str) -> String {
    format!("Experiment Job creation failed, skipping Chaos Experiment: {experiment} ({detail})")
}

fn aborted_message(experiment: &str, reason: &str) -> String {
    format!("Chaos Experiment {experiment} aborted: {reason}")
}

fn cleanup_action(policy: CleanupPolicy) -> CleanupAction {
    match policy {
        CleanupPolicy::Delete => CleanupAction::Delete,
        CleanupPolicy::Retain => CleanupAction::Retain,
    }
}

/// The phase-specific decision; `None` means the pair is not accepted.
fn decide(cp: &Checkpoint, input: &Input, ctx: &StepContext) -> Option<Decision> {
    let exp = cp.experiment.as_str();
    let observed = cp.observed.clone();
    let mv = |guard: Guard, to: Phase, message: String, observed: Observed| {
        Some(Decision::Move(Box::new(Move {
            guard,
            to,
            message,
            observed,
        })))
    };
    match (&cp.phase, input) {
        (Phase::Init, Input::ExperimentFound) => mv(
            Guard::Always,
            Phase::ValidateDeps,
            format!("ChaosExperiment {exp} found, validating its resources"),
            observed,
        ),
        (Phase::Init, Input::ExperimentMissing) => mv(
            Guard::Always,
            Phase::Verdict {
                outcome: Outcome::Skipped {
                    reason: SkipReason::ExperimentNotFound,
                },
            },
            format!("ChaosExperiment {exp} not found, skipping it"),
            observed,
        ),
        (Phase::Init | Phase::ValidateDeps, Input::AbortRequested { reason }) => mv(
            Guard::Always,
            Phase::Verdict {
                outcome: Outcome::Aborted {
                    reason: reason.clone(),
                },
            },
            aborted_message(exp, reason),
            observed,
        ),
        (Phase::ValidateDeps, Input::DependenciesValid { job }) => mv(
            Guard::Always,
            Phase::LaunchJob { job: job.clone() },
            format!("Experiment resources validated for Chaos Experiment: {exp}"),
            observed,
        ),
        (Phase::ValidateDeps, Input::DependenciesInvalid { reasons }) => mv(
            Guard::Always,
            Phase::Verdict {
                outcome: Outcome::Skipped {
                    reason: SkipReason::DependenciesInvalid {
                        reasons: reasons.clone(),
                    },
                },
            },
            skip_message(exp, &reasons.join("; ")),
            observed,
        ),
        (Phase::LaunchJob { job }, Input::JobCreated) => mv(
            Guard::Always,
            Phase::Monitor {
                job: job.clone(),
                pod: None,
            },
            format!("Experiment Job {job} for Chaos Experiment: {exp}"),
            observed,
        ),
        (Phase::LaunchJob { job }, Input::JobAlreadyExists) => mv(
            Guard::Always,
            Phase::Monitor {
                job: job.clone(),
                pod: None,
            },
            format!("Adopted existing Experiment Job {job} for Chaos Experiment: {exp}"),
            observed,
        ),
        (Phase::LaunchJob { .. }, Input::JobCreateFailed { reason }) => mv(
            Guard::Always,
            Phase::Verdict {
                outcome: Outcome::Skipped {
                    reason: SkipReason::JobCreateFailed {
                        reason: reason.clone(),
                    },
                },
            },
            skip_message(exp, reason),
            observed,
        ),
        (
            Phase::LaunchJob { job } | Phase::Monitor { job, .. } | Phase::AwaitResult { job, .. },
            Input::AbortRequested { reason },
        ) => mv(
            Guard::Always,
            aborting_cleanup(job, reason),
            aborted_message(exp, reason),
            observed,
        ),
        (Phase::Monitor { pod: Some(_), .. }, Input::PodRunning { .. })
        | (Phase::Monitor { .. }, Input::PodPending) => Some(Decision::Ignore),
        (Phase::Monitor { job, pod: None }, Input::PodRunning { pod }) => mv(
            Guard::PodNotRecorded,
            Phase::Monitor {
                job: job.clone(),
                pod: Some(pod.clone()),
            },
            format!("Experiment pod {pod} of Job {job} is running"),
            Observed {
                pod: Some(pod.clone()),
                pod_phase: Some("Running".to_owned()),
                ..observed
            },
        ),
        (Phase::Monitor { job, .. }, Input::PodSucceeded { pod }) => mv(
            Guard::Always,
            Phase::AwaitResult {
                job: job.clone(),
                pod: Some(pod.clone()),
                end: PodEnd::Succeeded,
            },
            format!("Experiment pod {pod} of Job {job} completed, reading the ChaosResult"),
            Observed {
                pod: Some(pod.clone()),
                pod_phase: Some("Succeeded".to_owned()),
                ..observed
            },
        ),
        (Phase::Monitor { job, .. }, Input::PodFailed { pod, reason }) => mv(
            Guard::Always,
            Phase::AwaitResult {
                job: job.clone(),
                pod: Some(pod.clone()),
                end: PodEnd::Failed {
                    reason: reason.clone(),
                },
            },
            format!("Experiment pod {pod} of Job {job} failed ({reason}), reading the ChaosResult"),
            Observed {
                pod: Some(pod.clone()),
                pod_phase: Some("Failed".to_owned()),
                ..observed
            },
        ),
        (Phase::Monitor { job, pod }, Input::PendingTimeout) => mv(
            Guard::Always,
            Phase::AwaitResult {
                job: job.clone(),
                pod: pod.clone(),
                end: PodEnd::PendingTimeout,
            },
            format!(
                "Experiment pod of Job {job} stayed Pending past the status-check timeout, \
                 reading the ChaosResult"
            ),
            Observed {
                pod_phase: Some("Pending".to_owned()),
                ..observed
            },
        ),
        (Phase::Monitor { job, pod }, Input::DeadlinePassed { what }) => mv(
            Guard::Always,
            Phase::AwaitResult {
                job: job.clone(),
                pod: pod.clone(),
                end: PodEnd::DeadlinePassed { what: what.clone() },
            },
            format!("{what} passed while monitoring Experiment Job {job}, reading the ChaosResult"),
            observed,
        ),
        (
            Phase::AwaitResult { job, end, .. },
            Input::ResultSeen {
                verdict,
                phase,
                fail_reason,
            },
        ) => {
            let observed = Observed {
                result_verdict: Some(verdict.clone()),
                result_phase: Some(phase.clone()),
                ..observed
            };
            let action = cleanup_action(ctx.cleanup);
            let (guard, outcome, message) = match FinalVerdict::from_result(verdict) {
                Some(final_verdict) => (
                    match action {
                        CleanupAction::Delete => Guard::FinalVerdictPolicyDelete,
                        CleanupAction::Retain => Guard::FinalVerdictPolicyRetain,
                    },
                    Outcome::Ran {
                        verdict: final_verdict,
                        result_final: true,
                        pod_end: end.clone(),
                        detail: fail_reason.clone(),
                    },
                    format!(
                        "ChaosResult of Chaos Experiment {exp}: verdict {verdict}, phase {phase}"
                    ),
                ),
                None => {
                    let detail = if verdict == "Awaited" {
                        format!(
                            "ChaosResult verdict still Awaited (phase {phase}) after {}",
                            end.describe()
                        )
                    } else {
                        format!("unknown ChaosResult verdict {verdict:?} (phase {phase})")
                    };
                    (
                        match action {
                            CleanupAction::Delete => Guard::NoFinalVerdictPolicyDelete,
                            CleanupAction::Retain => Guard::NoFinalVerdictPolicyRetain,
                        },
                        Outcome::Ran {
                            verdict: FinalVerdict::Error,
                            result_final: false,
                            pod_end: end.clone(),
                            detail: Some(detail.clone()),
                        },
                        format!("Chaos Experiment {exp} recorded as Error: {detail}"),
                    )
                }
            };
            mv(
                guard,
                Phase::Cleanup {
                    job: job.clone(),
                    outcome,
                    action,
                },
                message,
                observed,
            )
        }
        (Phase::AwaitResult { job, end, .. }, Input::ResultMissing) => {
            let action = cleanup_action(ctx.cleanup);
            let detail = format!("no ChaosResult found after {}", end.describe());
            mv(
                match action {
                    CleanupAction::Delete => Guard::PolicyDelete,
                    CleanupAction::Retain => Guard::PolicyRetain,
                },
                Phase::Cleanup {
                    job: job.clone(),
                    outcome: Outcome::Ran {
                        verdict: FinalVerdict::Error,
                        result_final: false,
                        pod_end: end.clone(),
                        detail: Some(detail.clone()),
                    },
                    action,
                },
                format!("Chaos Experiment {exp} recorded as Error: {detail}"),
                observed,
            )
        }
        (
            Phase::Cleanup {
                job,
                outcome,
                action: CleanupAction::Delete,
            },
            Input::JobDeleted,
        ) => mv(
            Guard::ActionDelete,
            Phase::Verdict {
                outcome: outcome.clone(),
            },
            format!("Experiment Job: {job} will be deleted"),
            observed,
        ),
        (
            Phase::Cleanup {
                job,
                outcome,
                action: CleanupAction::Retain,
            },
            Input::JobRetained,
        ) => mv(
            Guard::ActionRetain,
            Phase::Verdict {
                outcome: outcome.clone(),
            },
            format!("Experiment Job {job} will be retained"),
            observed,
        ),
        (
            Phase::Cleanup {
                outcome: Outcome::Aborted { .. },
                ..
            }
            | Phase::Verdict { .. },
            Input::AbortRequested { .. },
        ) => Some(Decision::Ignore),
        (Phase::Cleanup { job, .. }, Input::AbortRequested { reason }) => mv(
            Guard::NotAborting,
            aborting_cleanup(job, reason),
            aborted_message(exp, reason),
            observed,
        ),
        (Phase::Verdict { outcome }, Input::StatusWritten) => {
            let (guard, to, summary) = match outcome {
                Outcome::Ran {
                    verdict, detail, ..
                } => (
                    Guard::OutcomeRan,
                    Phase::Completed {
                        verdict: *verdict,
                        detail: detail.clone(),
                    },
                    format!(
                        "completed with verdict {}",
                        EntryVerdict::from(*verdict).as_str()
                    ),
                ),
                Outcome::Skipped { reason } => (
                    Guard::OutcomeSkipped,
                    Phase::Skipped {
                        reason: reason.clone(),
                    },
                    format!("skipped: {}", reason.describe()),
                ),
                Outcome::Aborted { reason } => (
                    Guard::OutcomeAborted,
                    Phase::Aborted {
                        reason: reason.clone(),
                    },
                    format!("aborted: {reason}"),
                ),
            };
            mv(
                guard,
                to,
                format!("Chaos Experiment {exp} {summary}"),
                observed,
            )
        }
        _ => None,
    }
}
