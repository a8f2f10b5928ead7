//! Times `step` and `resume_effects`: the happy path of one attempt (8 transitions), a few
//! ignored and rejected inputs, and a resume from every stored phase, repeated to 1e6 steps.
//!
//! `cargo run --release -p chaos-runner-states --example step_time` (the release build is also
//! the size figure: `ls -l target/release/examples/step_time`).

use std::hint::black_box;
use std::time::Instant;

use chaos_runner_states::{Checkpoint, CleanupPolicy, Input, StepContext, resume_effects, step};

const STEPS: usize = 1_000_000;
const JOB: &str = "pod-delete-abc123";
const POD: &str = "pod-delete-abc123-xyz";

fn happy_path() -> Vec<Input> {
    vec![
        Input::ExperimentFound,
        Input::DependenciesValid { job: JOB.into() },
        Input::JobCreated,
        Input::PodPending,
        Input::PodRunning { pod: POD.into() },
        Input::PodRunning { pod: POD.into() },
        Input::JobDeleted,
        Input::PodSucceeded { pod: POD.into() },
        Input::ResultSeen {
            verdict: "Pass".into(),
            phase: "Completed".into(),
            fail_reason: None,
        },
        Input::JobDeleted,
        Input::AbortRequested {
            reason: "stop".into(),
        },
        Input::StatusWritten,
    ]
}

fn main() {
    let ctx = StepContext {
        cleanup: CleanupPolicy::Delete,
        now: "2025-01-01T00:05:00Z".to_owned(),
    };
    let inputs = happy_path();
    let fresh = Checkpoint::new("pod-delete", None, 1, "2025-01-01T00:00:00Z");
    // Every checkpoint of one run, for the resume figure.
    let mut stored = vec![fresh.clone()];

    let (mut steps, mut accepted, mut effects) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    while steps < STEPS {
        let mut cp = fresh.clone();
        for input in &inputs {
            steps += 1;
            if let Ok(next) = step(black_box(&cp), black_box(input), &ctx) {
                accepted += 1;
                effects += next.effects.len();
                if next.transition.is_some() {
                    cp = next.checkpoint;
                    if stored.len() < 10 {
                        stored.push(cp.clone());
                    }
                }
            }
        }
        assert!(cp.is_terminal());
    }
    let step_ns = start.elapsed().as_nanos() as f64 / steps as f64;

    let mut resumes = 0usize;
    let start = Instant::now();
    while resumes < STEPS {
        for cp in &stored {
            resumes += 1;
            effects += resume_effects(black_box(cp)).len();
        }
    }
    let resume_ns = start.elapsed().as_nanos() as f64 / resumes as f64;

    println!(
        "step: {steps} calls ({accepted} accepted), {step_ns:.0} ns/step; \
         resume_effects: {resumes} calls, {resume_ns:.0} ns/call ({effects} effects)"
    );
}
