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
use crate::machine::{self, Decision};
use crate::phase::{Outcome, Phase, PhaseKind, PodEnd, SkipReason};
use crate::table;

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

/// Applies one observation. Pure: the same arguments always give the same answer.
pub fn step(cp: &Checkpoint, input: &Input, ctx: &StepContext) -> Result<Step, Rejected> {
    let rejected = Rejected {
        phase: cp.phase.kind(),
        input: input.kind(),
    };
    let answer = machine::handle(cp, input, ctx.cleanup);
    let (guard, message) = match answer.decision {
        Decision::Moved { guard, message } => (guard, message),
        Decision::Ignored => {
            return Ok(Step {
                checkpoint: cp.clone(),
                transition: None,
                effects: Vec::new(),
            });
        }
        Decision::Rejected | Decision::Undecided => return Err(rejected),
    };
    // The table is the authority: a decision without its row is refused, never improvised.
    let row = match table::find(rejected.phase, rejected.input, guard) {
        Some(row) if row.to == answer.phase.kind() => row,
        _ => return Err(rejected),
    };
    // A self-transition (Monitor seeing its pod run) stays in the phase it entered: clocks
    // that count from the phase's entry must not restart.
    let entered_at = if row.to == row.from {
        cp.entered_at.clone()
    } else {
        ctx.now.clone()
    };
    let mut effects = vec![
        Effect::Checkpoint,
        Effect::Emit(Event {
            kind: row.event.0,
            reason: row.event.1,
            message,
        }),
    ];
    // The new phase's entry effects, as far as the row lists them (a self-transition re-enters
    // Monitor, whose watch is already running).
    effects.extend(
        answer
            .entry_effects
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
        checkpoint: Checkpoint {
            schema_version: cp.schema_version,
            experiment: cp.experiment.clone(),
            instance: cp.instance.clone(),
            attempt: cp.attempt,
            phase: answer.phase,
            entered_at,
            observed: answer.observed,
        },
        effects,
    })
}

/// What to (re)do on entering the checkpoint's phase: the idempotent entry write and the
/// command. The entry actions of the phase, run by starting the machine in it; a transition
/// into the phase runs the same ones.
pub fn resume_effects(cp: &Checkpoint) -> Vec<Effect> {
    machine::enter(cp)
}

/// The status entry this phase shows, if it writes one (see the module table).
pub fn entry_for(cp: &Checkpoint) -> Option<Entry> {
    match &cp.phase {
        Phase::LaunchJob { .. } => Some(waiting_entry()),
        Phase::Monitor { pod: Some(pod), .. } => Some(running_entry(pod)),
        Phase::Verdict { outcome } => Some(outcome_entry(outcome, &cp.observed)),
        _ => None,
    }
}

/// Entering LaunchJob: no pod yet.
pub(crate) fn waiting_entry() -> Entry {
    Entry {
        pod: NO_POD.to_owned(),
        status: EntryStatus::WaitingForJobCreation,
        verdict: EntryVerdict::Awaited,
    }
}

/// Monitor, once the pod runs.
pub(crate) fn running_entry(pod: &str) -> Entry {
    Entry {
        pod: pod.to_owned(),
        status: EntryStatus::Running,
        verdict: EntryVerdict::Awaited,
    }
}

/// The final entry (`WriteVerdict`).
pub(crate) fn outcome_entry(outcome: &Outcome, observed: &Observed) -> Entry {
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
