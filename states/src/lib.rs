//! The phase engine of chaos-runner: a pure state machine for one experiment attempt.
//!
//! The driver owns all I/O. It gives the engine the last [`Checkpoint`], one [`Input`] (an
//! observation) and a [`StepContext`] (cleanup policy, current time), and gets back a [`Step`]:
//! the next checkpoint, the audit record of the transition, and the [`Effect`]s to perform in
//! order. Commands among the effects (`CreateJob`, `WatchPod`, …) are answered by later inputs.
//! After a restart the driver calls [`resume_effects`] on the stored checkpoint: the same
//! effects a transition into that phase would have issued, minus the checkpoint and event.
//!
//! The phases run as a statig state machine (`machine.rs`); every transition it takes must be
//! a row of the [`TRANSITIONS`] table, which documents it and which [`render_markdown`] and
//! [`render_mermaid`] print.

mod checkpoint;
mod effect;
mod engine;
mod input;
mod machine;
mod phase;
mod table;

// The samples the table tests use, for the machine's own test (machine.rs).
#[cfg(test)]
#[path = "../tests/support/samples.rs"]
mod samples;

pub use checkpoint::{CHECKPOINT_SCHEMA, Checkpoint, CheckpointError, Observed};
pub use effect::{
    Effect, EffectKind, Entry, EntryStatus, EntryVerdict, Event, EventKind, NO_POD, allowed_effects,
};
pub use engine::{
    AuditRecord, CleanupPolicy, Rejected, Step, StepContext, entry_for, resume_effects, step,
};
pub use input::{Input, InputKind};
pub use phase::{CleanupAction, FinalVerdict, Outcome, Phase, PhaseKind, PodEnd, SkipReason};
pub use table::{
    Guard, IGNORED, Ignored, TRANSITIONS, Transition, find, reason, render_markdown, render_mermaid,
};
