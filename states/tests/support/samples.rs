//! Samples shared by `tests/table.rs` and the machine's own test (`src/machine.rs`): one
//! checkpoint phase per interesting shape, one input per kind and data variant, and a reading
//! of each guard written from its description, independent of the engine.
//!
//! Included with `#[path]`; the includer brings the crate's public names into scope.

#![allow(dead_code)] // each includer uses a different part

use super::*;

pub const JOB: &str = "pod-delete-abc123";
pub const POD: &str = "pod-delete-abc123-xyz";

pub fn ran(verdict: FinalVerdict, result_final: bool, pod_end: PodEnd) -> Outcome {
    Outcome::Ran {
        verdict,
        result_final,
        pod_end,
        detail: None,
    }
}

/// One checkpoint per interesting shape of every phase.
pub fn sample_phases() -> Vec<Phase> {
    let job = || JOB.to_owned();
    let outcomes = vec![
        ran(FinalVerdict::Pass, true, PodEnd::Succeeded),
        Outcome::Skipped {
            reason: SkipReason::ExperimentNotFound,
        },
        Outcome::Aborted {
            reason: "stop".to_owned(),
        },
    ];
    let mut phases = vec![
        Phase::Init,
        Phase::ValidateDeps,
        Phase::LaunchJob { job: job() },
        Phase::Monitor {
            job: job(),
            pod: None,
        },
        Phase::Monitor {
            job: job(),
            pod: Some(POD.to_owned()),
        },
        Phase::AwaitResult {
            job: job(),
            pod: Some(POD.to_owned()),
            end: PodEnd::Succeeded,
        },
        Phase::AwaitResult {
            job: job(),
            pod: None,
            end: PodEnd::PendingTimeout,
        },
        Phase::Completed {
            verdict: FinalVerdict::Fail,
            detail: None,
        },
        Phase::Skipped {
            reason: SkipReason::JobCreateFailed {
                reason: "forbidden".to_owned(),
            },
        },
        Phase::Aborted {
            reason: "stop".to_owned(),
        },
    ];
    for outcome in &outcomes {
        for action in [CleanupAction::Delete, CleanupAction::Retain] {
            phases.push(Phase::Cleanup {
                job: job(),
                outcome: outcome.clone(),
                action,
            });
        }
        phases.push(Phase::Verdict {
            outcome: outcome.clone(),
        });
    }
    phases
}

/// At least one input of every kind, with the data variants guards look at.
pub fn sample_inputs() -> Vec<Input> {
    let s = |v: &str| v.to_owned();
    vec![
        Input::ExperimentFound,
        Input::ExperimentMissing,
        Input::DependenciesValid { job: s(JOB) },
        Input::DependenciesInvalid {
            reasons: vec![s("configmap cm not found"), s("secret s has no mountPath")],
        },
        Input::JobCreated,
        Input::JobAlreadyExists,
        Input::JobCreateFailed {
            reason: s("admission denied"),
        },
        Input::PodPending,
        Input::PodRunning { pod: s(POD) },
        Input::PodSucceeded { pod: s(POD) },
        Input::PodFailed {
            pod: s(POD),
            reason: s("Error"),
        },
        Input::PendingTimeout,
        Input::DeadlinePassed {
            what: s("monitor deadline"),
        },
        Input::ResultSeen {
            verdict: s("Pass"),
            phase: s("Completed"),
            fail_reason: None,
        },
        Input::ResultSeen {
            verdict: s("Awaited"),
            phase: s("Running"),
            fail_reason: None,
        },
        Input::ResultSeen {
            verdict: s("Bogus"),
            phase: s("Completed"),
            fail_reason: None,
        },
        Input::ResultMissing,
        Input::JobDeleted,
        Input::JobRetained,
        Input::StatusWritten,
        Input::AbortRequested { reason: s("stop") },
    ]
}

/// A second, independent reading of each guard, straight from its description.
pub fn guard_holds(guard: Guard, phase: &Phase, input: &Input, policy: CleanupPolicy) -> bool {
    let final_verdict = matches!(input, Input::ResultSeen { verdict, .. }
        if ["Pass", "Fail", "Stopped", "Error"].contains(&verdict.as_str()));
    let delete = policy == CleanupPolicy::Delete;
    match guard {
        Guard::Always => true,
        Guard::PodNotRecorded => matches!(phase, Phase::Monitor { pod: None, .. }),
        Guard::PodRecorded => matches!(phase, Phase::Monitor { pod: Some(_), .. }),
        Guard::FinalVerdictPolicyDelete => final_verdict && delete,
        Guard::FinalVerdictPolicyRetain => final_verdict && !delete,
        Guard::NoFinalVerdictPolicyDelete => !final_verdict && delete,
        Guard::NoFinalVerdictPolicyRetain => !final_verdict && !delete,
        Guard::PolicyDelete => delete,
        Guard::PolicyRetain => !delete,
        Guard::ActionDelete => matches!(
            phase,
            Phase::Cleanup {
                action: CleanupAction::Delete,
                ..
            }
        ),
        Guard::ActionRetain => matches!(
            phase,
            Phase::Cleanup {
                action: CleanupAction::Retain,
                ..
            }
        ),
        Guard::NotAborting => matches!(phase, Phase::Cleanup { outcome, .. }
            if !matches!(outcome, Outcome::Aborted { .. })),
        Guard::AlreadyAborting => matches!(
            phase,
            Phase::Cleanup {
                outcome: Outcome::Aborted { .. },
                ..
            }
        ),
        Guard::OutcomeRan => matches!(
            phase,
            Phase::Verdict {
                outcome: Outcome::Ran { .. }
            }
        ),
        Guard::OutcomeSkipped => matches!(
            phase,
            Phase::Verdict {
                outcome: Outcome::Skipped { .. }
            }
        ),
        Guard::OutcomeAborted => matches!(
            phase,
            Phase::Verdict {
                outcome: Outcome::Aborted { .. }
            }
        ),
    }
}
