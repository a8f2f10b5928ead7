//! The checkpoint's stored form.

use chaos_runner_states::*;
use serde_json::json;

fn all_phases() -> Vec<Phase> {
    let job = || "pod-delete-abc123".to_owned();
    let ran = Outcome::Ran {
        verdict: FinalVerdict::Fail,
        result_final: false,
        pod_end: PodEnd::Failed {
            reason: "OOMKilled".into(),
        },
        detail: Some("no ChaosResult".into()),
    };
    vec![
        Phase::Init,
        Phase::ValidateDeps,
        Phase::LaunchJob { job: job() },
        Phase::Monitor {
            job: job(),
            pod: Some("p".into()),
        },
        Phase::AwaitResult {
            job: job(),
            pod: None,
            end: PodEnd::DeadlinePassed {
                what: "deadline".into(),
            },
        },
        Phase::Cleanup {
            job: job(),
            outcome: ran.clone(),
            action: CleanupAction::Retain,
        },
        Phase::Verdict {
            outcome: Outcome::Skipped {
                reason: SkipReason::DependenciesInvalid {
                    reasons: vec!["a".into(), "b".into()],
                },
            },
        },
        Phase::Verdict { outcome: ran },
        Phase::Completed {
            verdict: FinalVerdict::Pass,
            detail: None,
        },
        Phase::Skipped {
            reason: SkipReason::ExperimentNotFound,
        },
        Phase::Aborted {
            reason: "SIGTERM".into(),
        },
    ]
}

#[test]
fn round_trips_every_phase() {
    for phase in all_phases() {
        let mut cp = Checkpoint::new("pod-delete", Some("i1".into()), 2, "2025-01-01T00:00:00Z");
        cp.phase = phase;
        cp.observed.pod = Some("p".into());
        cp.observed.result_verdict = Some("Fail".into());
        let text = serde_json::to_string(&cp).expect("encodes");
        assert_eq!(Checkpoint::from_json(&text).expect("decodes"), cp, "{text}");
    }
}

#[test]
fn stored_shape_is_flat_and_camel_case() {
    let mut cp = Checkpoint::new("pod-delete", None, 1, "2025-01-01T00:00:00Z");
    cp.phase = Phase::Monitor {
        job: "pod-delete-abc123".into(),
        pod: None,
    };
    assert_eq!(
        serde_json::to_value(&cp).expect("encodes"),
        json!({
            "schemaVersion": 1,
            "experiment": "pod-delete",
            "attempt": 1,
            "phase": "Monitor",
            "job": "pod-delete-abc123",
            "pod": null,
            "enteredAt": "2025-01-01T00:00:00Z",
            "observed": {}
        })
    );
}

#[test]
fn unknown_fields_are_tolerated_and_observed_defaults() {
    let cp = Checkpoint::from_json_value(json!({
        "schemaVersion": 1,
        "experiment": "pod-delete",
        "attempt": 3,
        "phase": "LaunchJob",
        "job": "pod-delete-abc123",
        "enteredAt": "2025-01-01T00:00:00Z",
        "addedByALaterPatch": {"x": 1}
    }))
    .expect("decodes");
    assert_eq!(cp.attempt, 3);
    assert_eq!(cp.job(), Some("pod-delete-abc123"));
    assert_eq!(cp.observed, Observed::default());
    assert_eq!(cp.instance, None);
}

#[test]
fn newer_schema_is_a_typed_error_even_with_unknown_phases() {
    let err = Checkpoint::from_json_value(json!({
        "schemaVersion": 2,
        "experiment": "pod-delete",
        "attempt": 1,
        "phase": "SomethingNew",
        "enteredAt": "2025-01-01T00:00:00Z"
    }))
    .expect_err("refused");
    assert!(
        matches!(
            err,
            CheckpointError::NewerSchema {
                found: 2,
                supported: 1
            }
        ),
        "{err:?}"
    );
}

#[test]
fn broken_checkpoints_are_typed_errors() {
    assert!(matches!(
        Checkpoint::from_json_value(json!({"experiment": "x"})),
        Err(CheckpointError::MissingSchemaVersion)
    ));
    let err = Checkpoint::from_json_value(json!({
        "schemaVersion": 1, "experiment": "x", "attempt": 1, "phase": "Monitor",
        "enteredAt": "t"
    }))
    .expect_err("Monitor without job");
    assert!(
        matches!(
            err,
            CheckpointError::Decode {
                schema_version: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(Checkpoint::from_json("not json").is_err());
}

#[test]
fn entry_strings_are_the_contract_strings() {
    let entry = Entry {
        pod: NO_POD.into(),
        status: EntryStatus::ChaosExperimentNotFound,
        verdict: EntryVerdict::NotApplicable,
    };
    assert_eq!(
        serde_json::to_value(&entry).expect("encodes"),
        json!({"experimentPod": "N/A", "status": "ChaosExperiment Not Found", "verdict": "N/A"})
    );
    for (status, text) in [
        (
            EntryStatus::WaitingForJobCreation,
            "Waiting for Job Creation",
        ),
        (EntryStatus::Running, "Running"),
        (EntryStatus::Completed, "Completed"),
        (
            EntryStatus::ChaosExperimentNotFound,
            "ChaosExperiment Not Found",
        ),
        (EntryStatus::Skipped, "Skipped"),
        (EntryStatus::ForcefullyAborted, "Forcefully Aborted"),
    ] {
        assert_eq!(status.as_str(), text);
        assert_eq!(serde_json::to_value(status).expect("encodes"), json!(text));
    }
    for (verdict, text) in [
        (EntryVerdict::NotApplicable, "N/A"),
        (EntryVerdict::Awaited, "Awaited"),
        (EntryVerdict::Pass, "Pass"),
        (EntryVerdict::Fail, "Fail"),
        (EntryVerdict::Stopped, "Stopped"),
        (EntryVerdict::Error, "Error"),
    ] {
        assert_eq!(verdict.as_str(), text);
        assert_eq!(serde_json::to_value(verdict).expect("encodes"), json!(text));
    }
}

#[test]
fn audit_record_round_trips() {
    let record = AuditRecord {
        from: PhaseKind::Monitor,
        to: PhaseKind::AwaitResult,
        on: InputKind::PodSucceeded,
        reason: "ExperimentPodCompleted".into(),
        at: "2025-01-01T00:00:00Z".into(),
    };
    let value = serde_json::to_value(&record).expect("encodes");
    assert_eq!(value["from"], json!("Monitor"));
    assert_eq!(
        serde_json::from_value::<AuditRecord>(value).expect("decodes"),
        record
    );
}
