//! The phase engine as a statig hierarchical state machine.
//!
//! [`Phase`] itself is the state type (statig's `custom` state), so a checkpoint's phase goes
//! into the machine as it is stored and comes out as the next checkpoint's phase.
//!
//! ```text
//! attempt                              rejects every input nothing below takes
//! ├── before_job                       abort → Verdict{Aborted}: nothing to clean up
//! │   ├── Init
//! │   └── ValidateDeps
//! ├── job_named {job}                  abort → Cleanup{Delete}, whatever the policy
//! │   ├── LaunchJob {job}
//! │   ├── Monitor {job, pod}
//! │   └── AwaitResult {job, pod, end}
//! ├── Cleanup {job, outcome, action}   own abort rule: a retaining cleanup turns deleting
//! ├── Verdict {outcome}                ignores an abort: the outcome is decided
//! └── Completed, Skipped, Aborted      take nothing
//! ```
//!
//! Handlers choose the transition and record its guard and event message in the
//! [`MachineContext`]; entry actions emit the effects of entering a phase. A step and a resume
//! run the same entry actions: a step through statig's transition, a resume through `init` from
//! the stored phase. `step` (engine.rs) then checks the choice against `TRANSITIONS`.

use statig::Outcome::{Handled, Super, Transition};
use statig::blocking::{InitializedStateMachine, IntoStateMachineExt};
use statig::state_machine;

use crate::checkpoint::{Checkpoint, Observed};
use crate::effect::{Effect, EntryVerdict};
use crate::engine::{CleanupPolicy, outcome_entry, running_entry, waiting_entry};
use crate::input::Input;
use crate::phase::{CleanupAction, FinalVerdict, Outcome, Phase, PodEnd, SkipReason};
use crate::table::Guard;

/// What a handler returns: `Handled`, `Super` (ask the enclosing group) or `Transition`.
type Response = statig::Outcome<Phase>;

/// statig's shared storage. Empty: everything an attempt has is in its checkpoint.
pub(crate) struct PhaseMachine;

/// What the machine made of one input.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Nothing has decided yet; no handler leaves it so (the tests check).
    Undecided,
    /// Not taken: it bubbled up to `attempt`.
    Rejected,
    /// Taken without a transition.
    Ignored,
    /// A transition, with the guard that selected it and the event message.
    Moved { guard: Guard, message: String },
}

/// statig's context: what handlers and entry actions read, and what they record.
pub(crate) struct MachineContext<'a> {
    experiment: &'a str,
    cleanup: CleanupPolicy,
    /// The facts as of the phase being entered (handlers update them first).
    pub(crate) observed: Observed,
    pub(crate) decision: Decision,
    /// The effects of entering the phase, in order.
    pub(crate) entry_effects: Vec<Effect>,
}

impl<'a> MachineContext<'a> {
    fn new(cp: &'a Checkpoint, cleanup: CleanupPolicy) -> MachineContext<'a> {
        MachineContext {
            experiment: &cp.experiment,
            cleanup,
            observed: cp.observed.clone(),
            decision: Decision::Undecided,
            entry_effects: Vec::new(),
        }
    }

    fn move_to(&mut self, guard: Guard, message: String, to: Phase) -> Response {
        self.decision = Decision::Moved { guard, message };
        Transition(to)
    }

    fn ignore(&mut self) -> Response {
        self.decision = Decision::Ignored;
        Handled
    }

    fn emit(&mut self, effect: Effect) {
        self.entry_effects.push(effect);
    }

    /// An abort once the Job has a name: delete it whatever the policy.
    fn abort_into_cleanup(&mut self, guard: Guard, job: &str, reason: &str) -> Response {
        let message = aborted_message(self.experiment, reason);
        let to = Phase::Cleanup {
            job: job.to_owned(),
            outcome: Outcome::Aborted {
                reason: reason.to_owned(),
            },
            action: CleanupAction::Delete,
        };
        self.move_to(guard, message, to)
    }
}

/// The machine's answer to one input, before `step` checks it against the table.
pub(crate) struct Answer {
    pub(crate) decision: Decision,
    /// The phase after the input (the same phase unless `decision` is `Moved`).
    pub(crate) phase: Phase,
    pub(crate) observed: Observed,
    pub(crate) entry_effects: Vec<Effect>,
}

/// Feeds `input` to a machine standing in `cp`'s phase.
pub(crate) fn handle(cp: &Checkpoint, input: &Input, cleanup: CleanupPolicy) -> Answer {
    let mut context = MachineContext::new(cp, cleanup);
    let mut machine = started_in(cp, &mut context);
    // Starting re-entered the current phase; its effects were issued when the attempt entered
    // (or resumed) it, so only the effects of a phase entered now are kept.
    context.entry_effects.clear();
    machine.handle_with_context(input, &mut context);
    Answer {
        decision: context.decision,
        phase: machine.state().clone(),
        observed: context.observed,
        entry_effects: context.entry_effects,
    }
}

/// The effects of entering `cp`'s phase: what a restarted driver (re)does.
pub(crate) fn enter(cp: &Checkpoint) -> Vec<Effect> {
    // No handler runs, so the policy is never read.
    let mut context = MachineContext::new(cp, CleanupPolicy::default());
    started_in(cp, &mut context);
    context.entry_effects
}

/// A machine put into the checkpoint's phase, then started: statig runs the entry actions from
/// the root down into that phase.
fn started_in(
    cp: &Checkpoint,
    context: &mut MachineContext<'_>,
) -> InitializedStateMachine<PhaseMachine> {
    let mut machine = PhaseMachine.uninitialized_state_machine();
    *machine.state_mut() = cp.phase.clone();
    machine.init_with_context(context)
}

#[state_machine(
    initial = "Phase::Init",
    state(custom, name = "Phase"),
    superstate(name = "PhaseGroup"),
    event_identifier = "input",
    visibility = "pub(crate)"
)]
impl PhaseMachine {
    /// The root: an input that no phase takes ends here.
    #[superstate]
    fn attempt(context: &mut MachineContext<'_>) -> Response {
        context.decision = Decision::Rejected;
        Handled
    }

    /// No Job name yet, so no Job: an abort goes straight to the verdict.
    #[superstate(superstate = "attempt")]
    fn before_job(context: &mut MachineContext<'_>, input: &Input) -> Response {
        match input {
            Input::AbortRequested { reason } => {
                let message = aborted_message(context.experiment, reason);
                let outcome = Outcome::Aborted {
                    reason: reason.clone(),
                };
                context.move_to(Guard::Always, message, Phase::Verdict { outcome })
            }
            _ => Super,
        }
    }

    /// The Job has a name and may exist: an abort deletes it.
    #[superstate(superstate = "attempt")]
    fn job_named(context: &mut MachineContext<'_>, job: &str, input: &Input) -> Response {
        match input {
            Input::AbortRequested { reason } => {
                context.abort_into_cleanup(Guard::Always, job, reason)
            }
            _ => Super,
        }
    }

    #[state(superstate = "before_job", entry_action = "enter_init")]
    fn init(context: &mut MachineContext<'_>, input: &Input) -> Response {
        let exp = context.experiment;
        match input {
            Input::ExperimentFound => context.move_to(
                Guard::Always,
                format!("ChaosExperiment {exp} found, validating its resources"),
                Phase::ValidateDeps,
            ),
            Input::ExperimentMissing => context.move_to(
                Guard::Always,
                format!("ChaosExperiment {exp} not found, skipping it"),
                verdict_skipped(SkipReason::ExperimentNotFound),
            ),
            _ => Super,
        }
    }

    #[action]
    fn enter_init(context: &mut MachineContext<'_>) {
        context.emit(Effect::FetchExperiment);
    }

    #[state(superstate = "before_job", entry_action = "enter_validate_deps")]
    fn validate_deps(context: &mut MachineContext<'_>, input: &Input) -> Response {
        let exp = context.experiment;
        match input {
            Input::DependenciesValid { job } => context.move_to(
                Guard::Always,
                format!("Experiment resources validated for Chaos Experiment: {exp}"),
                Phase::LaunchJob { job: job.clone() },
            ),
            Input::DependenciesInvalid { reasons } => context.move_to(
                Guard::Always,
                skip_message(exp, &reasons.join("; ")),
                verdict_skipped(SkipReason::DependenciesInvalid {
                    reasons: reasons.clone(),
                }),
            ),
            _ => Super,
        }
    }

    #[action]
    fn enter_validate_deps(context: &mut MachineContext<'_>) {
        context.emit(Effect::CheckDependencies);
    }

    #[state(superstate = "job_named", entry_action = "enter_launch_job")]
    fn launch_job(context: &mut MachineContext<'_>, job: &str, input: &Input) -> Response {
        let exp = context.experiment;
        let monitor = || Phase::Monitor {
            job: job.to_owned(),
            pod: None,
        };
        match input {
            Input::JobCreated => context.move_to(
                Guard::Always,
                format!("Experiment Job {job} for Chaos Experiment: {exp}"),
                monitor(),
            ),
            Input::JobAlreadyExists => context.move_to(
                Guard::Always,
                format!("Adopted existing Experiment Job {job} for Chaos Experiment: {exp}"),
                monitor(),
            ),
            // The Job definitely does not exist: nothing to clean up.
            Input::JobCreateFailed { reason } => context.move_to(
                Guard::Always,
                skip_message(exp, reason),
                verdict_skipped(SkipReason::JobCreateFailed {
                    reason: reason.clone(),
                }),
            ),
            _ => Super,
        }
    }

    #[action]
    fn enter_launch_job(context: &mut MachineContext<'_>, job: &str) {
        context.emit(Effect::WriteEntry(waiting_entry()));
        context.emit(Effect::CreateJob {
            job: job.to_owned(),
        });
    }

    #[state(superstate = "job_named", entry_action = "enter_monitor")]
    fn monitor(
        context: &mut MachineContext<'_>,
        job: &str,
        pod: &Option<String>,
        input: &Input,
    ) -> Response {
        match input {
            // Still Pending; the status-check timeout arrives as its own input.
            Input::PodPending => context.ignore(),
            // A re-observation (e.g. after a restart): the first pod seen is kept.
            Input::PodRunning { .. } if pod.is_some() => context.ignore(),
            Input::PodRunning { pod: running } => {
                context.observed.pod = Some(running.clone());
                context.observed.pod_phase = Some("Running".to_owned());
                context.move_to(
                    Guard::PodNotRecorded,
                    format!("Experiment pod {running} of Job {job} is running"),
                    Phase::Monitor {
                        job: job.to_owned(),
                        pod: Some(running.clone()),
                    },
                )
            }
            _ => pod_ended(context, job, pod, input),
        }
    }

    #[action]
    fn enter_monitor(context: &mut MachineContext<'_>, job: &str, pod: &Option<String>) {
        if let Some(pod) = pod {
            context.emit(Effect::WriteEntry(running_entry(pod)));
        }
        context.emit(Effect::WatchPod {
            job: job.to_owned(),
        });
    }

    #[state(superstate = "job_named", entry_action = "enter_await_result")]
    #[allow(unused_variables)] // `pod` is part of the phase; the result does not need it
    fn await_result(
        context: &mut MachineContext<'_>,
        job: &str,
        pod: &Option<String>,
        end: &PodEnd,
        input: &Input,
    ) -> Response {
        match input {
            Input::ResultSeen {
                verdict,
                phase,
                fail_reason,
            } => {
                context.observed.result_verdict = Some(verdict.clone());
                context.observed.result_phase = Some(phase.clone());
                result_read(context, job, end, verdict, phase, fail_reason)
            }
            Input::ResultMissing => result_missing(context, job, end),
            _ => Super,
        }
    }

    #[action]
    fn enter_await_result(context: &mut MachineContext<'_>) {
        context.emit(Effect::ReadResult);
    }

    #[state(superstate = "attempt", entry_action = "enter_cleanup")]
    fn cleanup(
        context: &mut MachineContext<'_>,
        job: &str,
        outcome: &Outcome,
        action: &CleanupAction,
        input: &Input,
    ) -> Response {
        let aborting = matches!(outcome, Outcome::Aborted { .. });
        let verdict = || Phase::Verdict {
            outcome: outcome.clone(),
        };
        match (input, action) {
            (Input::JobDeleted, CleanupAction::Delete) => context.move_to(
                Guard::ActionDelete,
                format!("Experiment Job: {job} will be deleted"),
                verdict(),
            ),
            (Input::JobRetained, CleanupAction::Retain) => context.move_to(
                Guard::ActionRetain,
                format!("Experiment Job {job} will be retained"),
                verdict(),
            ),
            // The Job is already being deleted for an abort.
            (Input::AbortRequested { .. }, _) if aborting => context.ignore(),
            (Input::AbortRequested { reason }, _) => {
                context.abort_into_cleanup(Guard::NotAborting, job, reason)
            }
            _ => Super,
        }
    }

    /// The action was fixed on entry, so a resume repeats the same command.
    #[action]
    fn enter_cleanup(context: &mut MachineContext<'_>, job: &str, action: &CleanupAction) {
        let job = job.to_owned();
        context.emit(match action {
            CleanupAction::Delete => Effect::DeleteJob { job },
            CleanupAction::Retain => Effect::RetainJob { job },
        });
    }

    #[state(superstate = "attempt", entry_action = "enter_verdict")]
    fn verdict(context: &mut MachineContext<'_>, outcome: &Outcome, input: &Input) -> Response {
        match input {
            Input::StatusWritten => conclude(context, outcome),
            // The outcome is decided and the Job already handled (deleted, or retained by
            // policy and left to the operator's own abort): reporting "aborted" now would be
            // untrue.
            Input::AbortRequested { .. } => context.ignore(),
            _ => Super,
        }
    }

    #[action]
    fn enter_verdict(context: &mut MachineContext<'_>, outcome: &Outcome) {
        let entry = outcome_entry(outcome, &context.observed);
        context.emit(Effect::WriteVerdict(entry));
    }

    #[state(superstate = "attempt")]
    #[allow(unused_variables)] // terminal: takes nothing
    fn completed(verdict: &FinalVerdict, detail: &Option<String>) -> Response {
        Super
    }

    #[state(superstate = "attempt")]
    #[allow(unused_variables)] // terminal: takes nothing
    fn skipped(reason: &SkipReason) -> Response {
        Super
    }

    #[state(superstate = "attempt")]
    #[allow(unused_variables)] // terminal: takes nothing
    fn aborted(reason: &str) -> Response {
        Super
    }
}

/// Verdict for an attempt that never ran.
fn verdict_skipped(reason: SkipReason) -> Phase {
    Phase::Verdict {
        outcome: Outcome::Skipped { reason },
    }
}

/// Monitor: the pod ended, or will not end in time. Either way the result is read first.
fn pod_ended(
    context: &mut MachineContext<'_>,
    job: &str,
    recorded_pod: &Option<String>,
    input: &Input,
) -> Response {
    let awaiting = |pod: Option<String>, end: PodEnd| Phase::AwaitResult {
        job: job.to_owned(),
        pod,
        end,
    };
    let observed = &mut context.observed;
    let (message, to) = match input {
        Input::PodSucceeded { pod } => {
            observed.pod = Some(pod.clone());
            observed.pod_phase = Some("Succeeded".to_owned());
            let message =
                format!("Experiment pod {pod} of Job {job} completed, reading the ChaosResult");
            (message, awaiting(Some(pod.clone()), PodEnd::Succeeded))
        }
        Input::PodFailed { pod, reason } => {
            observed.pod = Some(pod.clone());
            observed.pod_phase = Some("Failed".to_owned());
            let message = format!(
                "Experiment pod {pod} of Job {job} failed ({reason}), reading the ChaosResult"
            );
            let end = PodEnd::Failed {
                reason: reason.clone(),
            };
            (message, awaiting(Some(pod.clone()), end))
        }
        Input::PendingTimeout => {
            observed.pod_phase = Some("Pending".to_owned());
            let message = format!(
                "Experiment pod of Job {job} stayed Pending past the status-check timeout, \
                 reading the ChaosResult"
            );
            (
                message,
                awaiting(recorded_pod.clone(), PodEnd::PendingTimeout),
            )
        }
        Input::DeadlinePassed { what } => {
            let message = format!(
                "{what} passed while monitoring Experiment Job {job}, reading the ChaosResult"
            );
            let end = PodEnd::DeadlinePassed { what: what.clone() };
            (message, awaiting(recorded_pod.clone(), end))
        }
        _ => return Super,
    };
    context.move_to(Guard::Always, message, to)
}

/// AwaitResult + ResultSeen: a final verdict (Pass/Fail/Stopped/Error) decides whatever the pod
/// did; Awaited or an unknown verdict is recorded as Error.
fn result_read(
    context: &mut MachineContext<'_>,
    job: &str,
    end: &PodEnd,
    verdict: &str,
    phase: &str,
    fail_reason: &Option<String>,
) -> Response {
    let exp = context.experiment;
    let action = cleanup_action(context.cleanup);
    let delete = action == CleanupAction::Delete;
    let (guard, outcome, message) = match FinalVerdict::from_result(verdict) {
        Some(final_verdict) => (
            if delete {
                Guard::FinalVerdictPolicyDelete
            } else {
                Guard::FinalVerdictPolicyRetain
            },
            Outcome::Ran {
                verdict: final_verdict,
                result_final: true,
                pod_end: end.clone(),
                detail: fail_reason.clone(),
            },
            format!("ChaosResult of Chaos Experiment {exp}: verdict {verdict}, phase {phase}"),
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
            let message = format!("Chaos Experiment {exp} recorded as Error: {detail}");
            let guard = if delete {
                Guard::NoFinalVerdictPolicyDelete
            } else {
                Guard::NoFinalVerdictPolicyRetain
            };
            (guard, error_outcome(end, detail), message)
        }
    };
    let to = Phase::Cleanup {
        job: job.to_owned(),
        outcome,
        action,
    };
    context.move_to(guard, message, to)
}

/// AwaitResult + ResultMissing: recorded as Error.
fn result_missing(context: &mut MachineContext<'_>, job: &str, end: &PodEnd) -> Response {
    let action = cleanup_action(context.cleanup);
    let guard = match action {
        CleanupAction::Delete => Guard::PolicyDelete,
        CleanupAction::Retain => Guard::PolicyRetain,
    };
    let detail = format!("no ChaosResult found after {}", end.describe());
    let message = format!(
        "Chaos Experiment {} recorded as Error: {detail}",
        context.experiment
    );
    let to = Phase::Cleanup {
        job: job.to_owned(),
        outcome: error_outcome(end, detail),
        action,
    };
    context.move_to(guard, message, to)
}

fn error_outcome(end: &PodEnd, detail: String) -> Outcome {
    Outcome::Ran {
        verdict: FinalVerdict::Error,
        result_final: false,
        pod_end: end.clone(),
        detail: Some(detail),
    }
}

/// Verdict + StatusWritten: the terminal phase the outcome names.
fn conclude(context: &mut MachineContext<'_>, outcome: &Outcome) -> Response {
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
    let message = format!("Chaos Experiment {} {summary}", context.experiment);
    context.move_to(guard, message, to)
}

fn cleanup_action(policy: CleanupPolicy) -> CleanupAction {
    match policy {
        CleanupPolicy::Delete => CleanupAction::Delete,
        CleanupPolicy::Retain => CleanupAction::Retain,
    }
}

fn skip_message(experiment: &str, detail: &str) -> String {
    format!("Experiment Job creation failed, skipping Chaos Experiment: {experiment} ({detail})")
}

fn aborted_message(experiment: &str, reason: &str) -> String {
    format!("Chaos Experiment {experiment} aborted: {reason}")
}

/// The machine itself against the table, before `step`'s check: `step` refuses a decision
/// without its row, which would hide a handler that decides something the table does not say.
#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::samples::*;
    use crate::{EffectKind, IGNORED, PhaseKind, TRANSITIONS};

    fn checkpoint(phase: Phase) -> Checkpoint {
        let mut cp = Checkpoint::new("pod-delete", None, 1, "2025-01-01T00:00:00Z");
        cp.phase = phase;
        cp
    }

    fn kinds(effects: &[Effect]) -> Vec<EffectKind> {
        effects.iter().map(Effect::kind).collect()
    }

    #[test]
    fn every_handler_decision_is_a_row_of_the_table() {
        let (mut rows_used, mut ignored_used) = (HashSet::new(), HashSet::new());
        for phase in sample_phases() {
            for input in sample_inputs() {
                for policy in [CleanupPolicy::Delete, CleanupPolicy::Retain] {
                    let cp = checkpoint(phase.clone());
                    let (from, on) = (phase.kind(), input.kind());
                    let holds = |guard| guard_holds(guard, &phase, &input, policy);
                    let rows: Vec<usize> = (0..TRANSITIONS.len())
                        .filter(|&i| {
                            let row = &TRANSITIONS[i];
                            row.from == from && row.on == on && holds(row.guard)
                        })
                        .collect();
                    let ignored: Vec<usize> = (0..IGNORED.len())
                        .filter(|&i| {
                            let entry = &IGNORED[i];
                            entry.phase == from && entry.on == on && holds(entry.guard)
                        })
                        .collect();
                    let answer = handle(&cp, &input, policy);
                    let what = format!("{phase:?} + {input:?} ({policy:?})");
                    match (&answer.decision, &rows[..], &ignored[..]) {
                        (Decision::Moved { guard, message }, &[index], []) => {
                            let row = &TRANSITIONS[index];
                            rows_used.insert(index);
                            assert_eq!(*guard, row.guard, "{what}");
                            assert_eq!(answer.phase.kind(), row.to, "{what}");
                            assert!(!message.is_empty(), "{what}");
                            // The row lists exactly what the entry actions emit, in order
                            // (a self-loop lists only what is new).
                            let listed: Vec<_> = kinds(&answer.entry_effects)
                                .into_iter()
                                .filter(|kind| row.effects.contains(kind))
                                .collect();
                            assert_eq!(listed, row.effects[2..], "{what}");
                            // Resuming in the new phase re-issues the same entry effects.
                            let resumed = Checkpoint {
                                phase: answer.phase.clone(),
                                observed: answer.observed.clone(),
                                ..cp.clone()
                            };
                            assert_eq!(enter(&resumed), answer.entry_effects, "{what}");
                        }
                        (Decision::Ignored, [], &[index]) => {
                            ignored_used.insert(index);
                            assert_eq!(answer.phase, phase, "{what}");
                            assert_eq!(answer.observed, cp.observed, "{what}");
                            assert!(answer.entry_effects.is_empty(), "{what}");
                        }
                        (Decision::Rejected, [], []) => {
                            assert_eq!(answer.phase, phase, "{what}");
                            assert!(answer.entry_effects.is_empty(), "{what}");
                        }
                        (decision, rows, ignored) => panic!(
                            "{what}: the machine decides {decision:?}, the table has rows \
                             {rows:?} and ignore entries {ignored:?}"
                        ),
                    }
                }
            }
        }
        let unused: Vec<_> = (0..TRANSITIONS.len())
            .filter(|i| !rows_used.contains(i))
            .map(|i| TRANSITIONS[i])
            .collect();
        assert!(unused.is_empty(), "rows no handler takes: {unused:?}");
        assert_eq!(
            ignored_used.len(),
            IGNORED.len(),
            "ignore entries not taken"
        );
    }

    #[test]
    fn resume_runs_the_entry_actions_of_the_stored_phase_only() {
        for phase in sample_phases() {
            let cp = checkpoint(phase);
            let effects = enter(&cp);
            let expected: &[EffectKind] = match cp.phase.kind() {
                PhaseKind::Init => &[EffectKind::FetchExperiment],
                PhaseKind::ValidateDeps => &[EffectKind::CheckDependencies],
                PhaseKind::LaunchJob => &[EffectKind::WriteEntry, EffectKind::CreateJob],
                PhaseKind::Monitor if matches!(cp.phase, Phase::Monitor { pod: Some(_), .. }) => {
                    &[EffectKind::WriteEntry, EffectKind::WatchPod]
                }
                PhaseKind::Monitor => &[EffectKind::WatchPod],
                PhaseKind::AwaitResult => &[EffectKind::ReadResult],
                PhaseKind::Cleanup => match cp.phase {
                    Phase::Cleanup {
                        action: CleanupAction::Delete,
                        ..
                    } => &[EffectKind::DeleteJob],
                    _ => &[EffectKind::RetainJob],
                },
                PhaseKind::Verdict => &[EffectKind::WriteVerdict],
                PhaseKind::Completed | PhaseKind::Skipped | PhaseKind::Aborted => &[],
            };
            assert_eq!(kinds(&effects), expected, "{:?}", cp.phase);
        }
    }
}
