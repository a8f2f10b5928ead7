//! The step function against the transition table, pair by pair, plus the table's own shape.

use std::collections::HashSet;

use chaos_runner_states::*;

#[path = "support/samples.rs"]
mod samples;
use samples::*;

const NOW: &str = "2025-01-01T00:00:00Z";
const LATER: &str = "2025-01-01T00:05:00Z";

fn cp(phase: Phase) -> Checkpoint {
    let mut cp = Checkpoint::new("pod-delete", None, 1, NOW);
    cp.phase = phase;
    cp
}

fn ctx(cleanup: CleanupPolicy) -> StepContext {
    StepContext {
        cleanup,
        now: LATER.to_owned(),
    }
}

#[test]
fn every_phase_input_pair_follows_the_table() {
    let mut rows_used = HashSet::new();
    let mut ignored_used = HashSet::new();
    let mut pairs = 0;
    for phase in sample_phases() {
        for input in sample_inputs() {
            for policy in [CleanupPolicy::Delete, CleanupPolicy::Retain] {
                pairs += 1;
                let (from, on) = (phase.kind(), input.kind());
                let rows: Vec<(usize, &Transition)> = TRANSITIONS
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        r.from == from && r.on == on && guard_holds(r.guard, &phase, &input, policy)
                    })
                    .collect();
                let ignored: Vec<(usize, &Ignored)> = IGNORED
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| {
                        i.phase == from
                            && i.on == on
                            && guard_holds(i.guard, &phase, &input, policy)
                    })
                    .collect();
                assert!(
                    rows.len() + ignored.len() <= 1,
                    "ambiguous table for {from}/{on}: {rows:?} {ignored:?}"
                );
                let before = cp(phase.clone());
                let result = step(&before, &input, &ctx(policy));
                match (rows.first(), ignored.first(), result) {
                    (Some((index, row)), None, Ok(step)) => {
                        rows_used.insert(*index);
                        let record = step.transition.expect("a row fires a transition");
                        assert_eq!((record.from, record.to, record.on), (from, row.to, on));
                        assert_eq!(record.reason, row.event.1);
                        assert_eq!(record.at, LATER);
                        assert_eq!(step.checkpoint.phase.kind(), row.to);
                        // A self-transition stays in the phase it entered (its clocks go on).
                        let entered = if row.to == from {
                            &before.entered_at
                        } else {
                            LATER
                        };
                        assert_eq!(step.checkpoint.entered_at, entered);
                        let kinds: Vec<EffectKind> =
                            step.effects.iter().map(Effect::kind).collect();
                        assert_eq!(kinds, row.effects, "effects of {row:?}");
                        match &step.effects[1] {
                            Effect::Emit(event) => {
                                assert_eq!((event.kind, event.reason), row.event);
                                assert!(!event.message.is_empty());
                            }
                            other => panic!("second effect must be the event, got {other:?}"),
                        }
                        for kind in kinds {
                            assert!(
                                allowed_effects(row.to).contains(&kind),
                                "{kind:?} not allowed in {}",
                                row.to
                            );
                        }
                    }
                    (None, Some((index, _)), Ok(step)) => {
                        ignored_used.insert(*index);
                        assert_eq!(step.transition, None);
                        assert!(step.effects.is_empty());
                        assert_eq!(step.checkpoint, before);
                    }
                    (None, None, Err(rejected)) => {
                        assert_eq!(
                            rejected,
                            Rejected {
                                phase: from,
                                input: on
                            }
                        );
                    }
                    (row, ignored, result) => panic!(
                        "{phase:?} + {input:?} ({policy:?}): table says {row:?} / {ignored:?}, \
                         step says {result:?}"
                    ),
                }
            }
        }
    }
    assert!(pairs > 500, "only {pairs} pairs checked");
    let unused: Vec<_> = (0..TRANSITIONS.len())
        .filter(|i| !rows_used.contains(i))
        .map(|i| TRANSITIONS[i])
        .collect();
    assert!(unused.is_empty(), "rows never exercised: {unused:?}");
    assert_eq!(
        ignored_used.len(),
        IGNORED.len(),
        "ignored rows never exercised"
    );
}

#[test]
fn table_shape() {
    let mut keys = HashSet::new();
    for row in TRANSITIONS {
        assert!(
            keys.insert((row.from, row.on, row.guard)),
            "duplicate {row:?}"
        );
        assert!(
            !row.from.is_terminal(),
            "a terminal phase has an exit: {row:?}"
        );
        assert!(row.to.ordinal() >= row.from.ordinal(), "backwards: {row:?}");
        if row.to == row.from {
            assert!(
                matches!(row.from, PhaseKind::Monitor | PhaseKind::Cleanup),
                "unexpected self-loop {row:?}"
            );
        }
        assert_eq!(
            &row.effects[..2],
            &[EffectKind::Checkpoint, EffectKind::Emit]
        );
        for effect in row.effects {
            assert!(allowed_effects(row.to).contains(effect), "{row:?}");
        }
    }
    for ignored in IGNORED {
        assert!(
            find(ignored.phase, ignored.on, ignored.guard).is_none(),
            "{ignored:?} is also a transition"
        );
    }
    // Abort is handled in every non-terminal phase, one way or the other.
    for phase in PhaseKind::ALL.iter().filter(|p| !p.is_terminal()) {
        let handled = TRANSITIONS
            .iter()
            .any(|r| r.from == *phase && r.on == InputKind::AbortRequested)
            || IGNORED
                .iter()
                .any(|i| i.phase == *phase && i.on == InputKind::AbortRequested);
        assert!(handled, "abort not handled in {phase}");
    }
    // Only LaunchJob creates, only Cleanup deletes.
    for phase in PhaseKind::ALL {
        assert_eq!(
            allowed_effects(phase).contains(&EffectKind::CreateJob),
            phase == PhaseKind::LaunchJob
        );
        assert_eq!(
            allowed_effects(phase).contains(&EffectKind::DeleteJob),
            phase == PhaseKind::Cleanup
        );
    }
}

#[test]
fn transitions_issue_the_resume_effects_of_the_new_phase() {
    for phase in sample_phases() {
        let cp = cp(phase);
        let resume = resume_effects(&cp);
        for effect in &resume {
            assert!(
                allowed_effects(cp.phase.kind()).contains(&effect.kind()),
                "{effect:?} in {:?}",
                cp.phase
            );
        }
        // A phase change issues exactly the resume effects after Checkpoint and Emit.
        for row in TRANSITIONS
            .iter()
            .filter(|r| r.to == cp.phase.kind() && r.from != r.to)
        {
            let guard_fits = match (row.guard, &cp.phase) {
                (
                    Guard::FinalVerdictPolicyRetain
                    | Guard::NoFinalVerdictPolicyRetain
                    | Guard::PolicyRetain,
                    Phase::Cleanup { action, .. },
                ) => *action == CleanupAction::Retain,
                (_, Phase::Cleanup { action, .. }) => *action == CleanupAction::Delete,
                (_, Phase::Monitor { pod, .. }) => pod.is_none(),
                _ => true,
            };
            if guard_fits {
                let kinds: Vec<_> = resume.iter().map(Effect::kind).collect();
                assert_eq!(
                    &row.effects[2..],
                    kinds.as_slice(),
                    "{row:?} vs {:?}",
                    cp.phase
                );
            }
        }
    }
    assert!(resume_effects(&cp(Phase::Aborted { reason: "x".into() })).is_empty());
}

fn only_transition(before: &Checkpoint, input: Input, policy: CleanupPolicy) -> Step {
    let step = step(before, &input, &ctx(policy)).expect("accepted");
    assert!(step.transition.is_some(), "{input:?} should move");
    step
}

fn event(step: &Step) -> &Event {
    step.effects
        .iter()
        .find_map(|e| match e {
            Effect::Emit(event) => Some(event),
            _ => None,
        })
        .expect("an event")
}

fn final_entry(step: &Step) -> &Entry {
    step.effects
        .iter()
        .find_map(|e| match e {
            Effect::WriteVerdict(entry) => Some(entry),
            _ => None,
        })
        .expect("a final entry")
}

fn entry(pod: &str, status: EntryStatus, verdict: EntryVerdict) -> Entry {
    Entry {
        pod: pod.to_owned(),
        status,
        verdict,
    }
}

/// Drives a fresh attempt through `inputs` and returns every step.
fn run(inputs: Vec<Input>, policy: CleanupPolicy) -> Vec<Step> {
    let mut current = Checkpoint::new("pod-delete", None, 1, NOW);
    let mut steps = Vec::new();
    for input in inputs {
        let step = only_transition(&current, input, policy);
        current = step.checkpoint.clone();
        steps.push(step);
    }
    steps
}

#[test]
fn happy_path_with_delete_policy() {
    let steps = run(
        vec![
            Input::ExperimentFound,
            Input::DependenciesValid { job: JOB.into() },
            Input::JobCreated,
            Input::PodRunning { pod: POD.into() },
            Input::PodSucceeded { pod: POD.into() },
            Input::ResultSeen {
                verdict: "Pass".into(),
                phase: "Completed".into(),
                fail_reason: None,
            },
            Input::JobDeleted,
            Input::StatusWritten,
        ],
        CleanupPolicy::Delete,
    );
    let reasons: Vec<_> = steps.iter().map(|s| event(s).reason).collect();
    assert_eq!(
        reasons,
        [
            "ExperimentFound",
            "ExperimentDependencyCheck",
            "ExperimentJobCreate",
            "ExperimentPodRunning",
            "ExperimentPodCompleted",
            "ChaosResultRead",
            "ExperimentJobCleanUp",
            "ExperimentConcluded",
        ]
    );
    assert_eq!(
        event(&steps[1]).message,
        "Experiment resources validated for Chaos Experiment: pod-delete"
    );
    assert_eq!(
        event(&steps[2]).message,
        format!("Experiment Job {JOB} for Chaos Experiment: pod-delete")
    );
    assert_eq!(
        event(&steps[6]).message,
        format!("Experiment Job: {JOB} will be deleted")
    );
    assert_eq!(
        steps[1].effects[2],
        Effect::WriteEntry(entry(
            NO_POD,
            EntryStatus::WaitingForJobCreation,
            EntryVerdict::Awaited
        ))
    );
    assert_eq!(steps[1].effects[3], Effect::CreateJob { job: JOB.into() });
    assert_eq!(
        steps[3].effects[2],
        Effect::WriteEntry(entry(POD, EntryStatus::Running, EntryVerdict::Awaited))
    );
    assert_eq!(steps[5].effects[2], Effect::DeleteJob { job: JOB.into() });
    assert_eq!(
        final_entry(&steps[6]),
        &entry(POD, EntryStatus::Completed, EntryVerdict::Pass)
    );
    let last = &steps[7].checkpoint;
    assert!(last.is_terminal());
    assert_eq!(
        last.phase,
        Phase::Completed {
            verdict: FinalVerdict::Pass,
            detail: None
        }
    );
    // Phases along the path only move forward.
    let ordinals: Vec<u8> = steps
        .iter()
        .map(|s| s.checkpoint.phase.kind().ordinal())
        .collect();
    assert!(ordinals.windows(2).all(|w| w[0] <= w[1]), "{ordinals:?}");
}

#[test]
fn retain_policy_retains_and_says_so() {
    let steps = run(
        vec![
            Input::ExperimentFound,
            Input::DependenciesValid { job: JOB.into() },
            Input::JobAlreadyExists,
            Input::PodSucceeded { pod: POD.into() },
            Input::ResultSeen {
                verdict: "Fail".into(),
                phase: "Completed".into(),
                fail_reason: Some("probe failed".into()),
            },
            Input::JobRetained,
        ],
        CleanupPolicy::Retain,
    );
    assert_eq!(event(&steps[2]).reason, "ExperimentJobAdopted");
    assert_eq!(steps[4].effects[2], Effect::RetainJob { job: JOB.into() });
    assert!(
        !steps
            .iter()
            .flat_map(|s| &s.effects)
            .any(|e| e.kind() == EffectKind::DeleteJob)
    );
    assert_eq!(
        event(&steps[5]).message,
        format!("Experiment Job {JOB} will be retained")
    );
    assert_eq!(
        final_entry(&steps[5]),
        &entry(POD, EntryStatus::Completed, EntryVerdict::Fail)
    );
    // A delete answer does not fit a retaining cleanup.
    let err = step(
        &steps[4].checkpoint,
        &Input::JobDeleted,
        &ctx(CleanupPolicy::Delete),
    );
    assert_eq!(
        err,
        Err(Rejected {
            phase: PhaseKind::Cleanup,
            input: InputKind::JobDeleted
        })
    );
}

#[test]
fn missing_experiment_is_not_found_fail() {
    let steps = run(vec![Input::ExperimentMissing], CleanupPolicy::Delete);
    let e = event(&steps[0]);
    assert_eq!(
        (e.kind, e.reason),
        (EventKind::Warning, "ExperimentNotFound")
    );
    assert_eq!(
        final_entry(&steps[0]),
        &entry(
            NO_POD,
            EntryStatus::ChaosExperimentNotFound,
            EntryVerdict::Fail
        )
    );
    let done = only_transition(
        &steps[0].checkpoint,
        Input::StatusWritten,
        CleanupPolicy::Delete,
    );
    assert_eq!(
        done.checkpoint.phase,
        Phase::Skipped {
            reason: SkipReason::ExperimentNotFound
        }
    );
}

#[test]
fn invalid_dependencies_skip_with_reasons() {
    let steps = run(
        vec![
            Input::ExperimentFound,
            Input::DependenciesInvalid {
                reasons: vec![
                    "configmap cm not found".into(),
                    "secret s: forbidden".into(),
                ],
            },
        ],
        CleanupPolicy::Delete,
    );
    let e = event(&steps[1]);
    assert_eq!(
        (e.kind, e.reason),
        (EventKind::Warning, "ExperimentDependencyCheck")
    );
    assert!(
        e.message
            .starts_with("Experiment Job creation failed, skipping Chaos Experiment: pod-delete")
    );
    assert!(
        e.message
            .contains("configmap cm not found; secret s: forbidden"),
        "{}",
        e.message
    );
    assert_eq!(
        final_entry(&steps[1]),
        &entry(NO_POD, EntryStatus::Skipped, EntryVerdict::Fail)
    );
}

#[test]
fn refused_job_skips_without_cleanup() {
    let steps = run(
        vec![
            Input::ExperimentFound,
            Input::DependenciesValid { job: JOB.into() },
            Input::JobCreateFailed {
                reason: "admission webhook denied".into(),
            },
        ],
        CleanupPolicy::Delete,
    );
    assert_eq!(steps[2].checkpoint.phase.kind(), PhaseKind::Verdict);
    assert_eq!(
        final_entry(&steps[2]),
        &entry(NO_POD, EntryStatus::Skipped, EntryVerdict::Fail)
    );
    assert!(
        event(&steps[2])
            .message
            .contains("admission webhook denied")
    );
}

fn monitor(pod: Option<&str>) -> Checkpoint {
    let mut cp = cp(Phase::Monitor {
        job: JOB.into(),
        pod: pod.map(str::to_owned),
    });
    cp.observed.pod = pod.map(str::to_owned);
    cp
}

/// Monitor → AwaitResult on `end`, then the result answer; returns the final entry.
fn outcome_of(end: Input, result: Input) -> (Step, Entry) {
    let awaiting = only_transition(&monitor(Some(POD)), end, CleanupPolicy::Delete);
    assert_eq!(awaiting.effects.last(), Some(&Effect::ReadResult));
    let cleanup = only_transition(&awaiting.checkpoint, result, CleanupPolicy::Delete);
    let verdict = only_transition(
        &cleanup.checkpoint,
        Input::JobDeleted,
        CleanupPolicy::Delete,
    );
    let entry = final_entry(&verdict).clone();
    (cleanup, entry)
}

#[test]
fn failed_pod_with_a_final_verdict_keeps_the_verdict() {
    let (_, e) = outcome_of(
        Input::PodFailed {
            pod: POD.into(),
            reason: "OOMKilled".into(),
        },
        Input::ResultSeen {
            verdict: "Fail".into(),
            phase: "Completed".into(),
            fail_reason: None,
        },
    );
    assert_eq!(e, entry(POD, EntryStatus::Completed, EntryVerdict::Fail));
}

#[test]
fn failed_pod_without_verdict_is_skipped_error() {
    let awaiting = only_transition(
        &monitor(Some(POD)),
        Input::PodFailed {
            pod: POD.into(),
            reason: "OOMKilled".into(),
        },
        CleanupPolicy::Delete,
    );
    let e = event(&awaiting);
    assert_eq!(
        (e.kind, e.reason),
        (EventKind::Warning, "ChaosContainerWatchNotPermitted")
    );
    let (cleanup, e) = outcome_of(
        Input::PodFailed {
            pod: POD.into(),
            reason: "OOMKilled".into(),
        },
        Input::ResultMissing,
    );
    assert_eq!(event(&cleanup).reason, "ChaosResultNotFound");
    assert_eq!(e, entry(POD, EntryStatus::Skipped, EntryVerdict::Error));
}

#[test]
fn pending_timeout_and_deadline_read_the_result_first() {
    let (_, e) = outcome_of(
        Input::PendingTimeout,
        Input::ResultSeen {
            verdict: "Awaited".into(),
            phase: "Running".into(),
            fail_reason: None,
        },
    );
    assert_eq!(e, entry(POD, EntryStatus::Skipped, EntryVerdict::Error));
    let (cleanup, e) = outcome_of(
        Input::DeadlinePassed {
            what: "monitor deadline of 300s".into(),
        },
        Input::ResultSeen {
            verdict: "Pass".into(),
            phase: "Completed".into(),
            fail_reason: None,
        },
    );
    assert_eq!(event(&cleanup).reason, "ChaosResultRead");
    assert_eq!(e, entry(POD, EntryStatus::Completed, EntryVerdict::Pass));
}

#[test]
fn unknown_verdict_is_error_naming_the_value() {
    let (cleanup, e) = outcome_of(
        Input::PodSucceeded { pod: POD.into() },
        Input::ResultSeen {
            verdict: "Maybe".into(),
            phase: "Completed".into(),
            fail_reason: None,
        },
    );
    let ev = event(&cleanup);
    assert_eq!(
        (ev.kind, ev.reason),
        (EventKind::Warning, "ChaosResultInconclusive")
    );
    assert!(ev.message.contains("\"Maybe\""), "{}", ev.message);
    match &cleanup.checkpoint.phase {
        Phase::Cleanup {
            outcome: Outcome::Ran {
                verdict, detail, ..
            },
            ..
        } => {
            assert_eq!(*verdict, FinalVerdict::Error);
            assert!(detail.as_deref().unwrap_or("").contains("Maybe"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e, entry(POD, EntryStatus::Completed, EntryVerdict::Error));
}

#[test]
fn pod_running_is_recorded_once() {
    let first = only_transition(
        &monitor(None),
        Input::PodRunning { pod: POD.into() },
        CleanupPolicy::Delete,
    );
    assert_eq!(first.checkpoint.observed.pod.as_deref(), Some(POD));
    // Restart re-observes the running pod: accepted, nothing happens.
    let again = step(
        &first.checkpoint,
        &Input::PodRunning { pod: POD.into() },
        &ctx(CleanupPolicy::Delete),
    )
    .expect("accepted");
    assert_eq!(again.transition, None);
    assert!(again.effects.is_empty());
    let pending = step(
        &monitor(None),
        &Input::PodPending,
        &ctx(CleanupPolicy::Delete),
    )
    .expect("ok");
    assert_eq!(pending.transition, None);
}

#[test]
fn abort_before_a_job_goes_straight_to_verdict() {
    for before in [cp(Phase::Init), cp(Phase::ValidateDeps)] {
        let aborted = only_transition(
            &before,
            Input::AbortRequested {
                reason: "engineState stop".into(),
            },
            CleanupPolicy::Retain,
        );
        assert_eq!(aborted.checkpoint.phase.kind(), PhaseKind::Verdict);
        assert!(
            !aborted
                .effects
                .iter()
                .any(|e| e.kind() == EffectKind::DeleteJob)
        );
        let e = event(&aborted);
        assert_eq!(
            (e.kind, e.reason),
            (EventKind::Warning, "ExperimentAborted")
        );
        assert_eq!(
            final_entry(&aborted),
            &entry(
                NO_POD,
                EntryStatus::ForcefullyAborted,
                EntryVerdict::Stopped
            )
        );
    }
}

#[test]
fn abort_with_a_job_deletes_it_whatever_the_policy() {
    let retaining = cp(Phase::Cleanup {
        job: JOB.into(),
        outcome: ran(FinalVerdict::Pass, true, PodEnd::Succeeded),
        action: CleanupAction::Retain,
    });
    for before in [
        cp(Phase::LaunchJob { job: JOB.into() }),
        monitor(Some(POD)),
        cp(Phase::AwaitResult {
            job: JOB.into(),
            pod: Some(POD.into()),
            end: PodEnd::Succeeded,
        }),
        retaining,
    ] {
        let aborted = only_transition(
            &before,
            Input::AbortRequested {
                reason: "SIGTERM".into(),
            },
            CleanupPolicy::Retain,
        );
        assert_eq!(
            aborted.effects.last(),
            Some(&Effect::DeleteJob { job: JOB.into() })
        );
        let verdict = only_transition(
            &aborted.checkpoint,
            Input::JobDeleted,
            CleanupPolicy::Retain,
        );
        let pod = before.observed.pod.clone().unwrap_or_else(|| NO_POD.into());
        assert_eq!(
            final_entry(&verdict),
            &entry(&pod, EntryStatus::ForcefullyAborted, EntryVerdict::Stopped)
        );
        let done = only_transition(
            &verdict.checkpoint,
            Input::StatusWritten,
            CleanupPolicy::Retain,
        );
        assert_eq!(
            done.checkpoint.phase,
            Phase::Aborted {
                reason: "SIGTERM".into()
            }
        );
        // A second abort changes nothing.
        let twice = step(
            &aborted.checkpoint,
            &Input::AbortRequested {
                reason: "again".into(),
            },
            &ctx(CleanupPolicy::Retain),
        )
        .expect("ok");
        assert_eq!(twice.transition, None);
    }
}

#[test]
fn terminal_phases_reject_everything() {
    for phase in sample_phases()
        .into_iter()
        .filter(|p| p.kind().is_terminal())
    {
        for input in sample_inputs() {
            assert!(step(&cp(phase.clone()), &input, &ctx(CleanupPolicy::Delete)).is_err());
        }
    }
}

#[test]
fn late_pod_events_in_cleanup_are_rejected() {
    let cleanup = cp(Phase::Cleanup {
        job: JOB.into(),
        outcome: ran(FinalVerdict::Pass, true, PodEnd::Succeeded),
        action: CleanupAction::Delete,
    });
    assert_eq!(
        step(
            &cleanup,
            &Input::PodRunning { pod: POD.into() },
            &ctx(CleanupPolicy::Delete)
        ),
        Err(Rejected {
            phase: PhaseKind::Cleanup,
            input: InputKind::PodRunning
        })
    );
}

#[test]
fn cleanup_policy_from_spec() {
    assert_eq!(
        CleanupPolicy::from_spec(Some("delete")),
        CleanupPolicy::Delete
    );
    for other in [
        None,
        Some(""),
        Some("retain"),
        Some("Delete"),
        Some("DELETE "),
    ] {
        assert_eq!(
            CleanupPolicy::from_spec(other),
            CleanupPolicy::Retain,
            "{other:?}"
        );
    }
}

#[test]
fn renders_contain_every_row() {
    let markdown = render_markdown();
    for row in TRANSITIONS {
        let line = format!(
            "| {} | {} | {} | {} |",
            row.from,
            row.on,
            row.guard.describe(),
            row.to
        );
        assert!(markdown.contains(&line), "missing {line}");
    }
    for ignored in IGNORED {
        assert!(markdown.contains(ignored.why));
    }
    let mermaid = render_mermaid();
    assert!(mermaid.starts_with("stateDiagram-v2\n"));
    for row in TRANSITIONS {
        let edge = format!("    {} --> {}: ", row.from, row.to);
        let line = mermaid
            .lines()
            .find(|l| l.starts_with(&edge))
            .unwrap_or_else(|| panic!("missing edge {edge}"));
        assert!(line.contains(row.on.as_str()), "{line} lacks {}", row.on);
    }
    for terminal in ["Completed", "Skipped", "Aborted"] {
        assert!(mermaid.contains(&format!("    {terminal} --> [*]")));
    }
}
