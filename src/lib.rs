//! chaos-runner: a crash-resumable, drop-in replacement for LitmusChaos's chaos-runner.
//!
//! The decisions live in the pure `chaos-runner-states` crate; this library is the shell
//! around it: the Litmus custom resources, the engine/experiment merge, the Job builder, the
//! runner's configuration and the command line.

pub mod access;
pub mod api;
pub mod attempt;
pub mod cli;
pub mod config;
pub mod crd;
pub mod driver;
pub mod engine_writer;
pub mod events;
pub mod exporter;
pub mod job;
pub mod merge;
pub mod monitor;
pub mod observe;
pub mod plan;
pub mod record;
pub mod report;
pub mod schedule;
pub mod telemetry;
