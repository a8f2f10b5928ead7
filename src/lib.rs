//! chaos-runner: a crash-resumable, drop-in replacement for LitmusChaos's chaos-runner.
//!
//! The decisions live in the pure `chaos-runner-states` crate; this library is the shell
//! around it: the Litmus custom resources, the engine/experiment merge, the Job builder, the
//! runner's configuration and the command line.

pub mod cli;
pub mod config;
pub mod crd;
pub mod job;
pub mod merge;
pub mod plan;
pub mod schedule;
