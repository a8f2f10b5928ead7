//! chaos-runner: a crash-resumable, drop-in replacement for LitmusChaos's chaos-runner.
//!
//! The decisions live in the pure `chaos-runner-states` crate; this library is the shell around
//! it, in layers that only import downwards:
//!
//! - [`cli`]: the command line (the run, `render`, `plan`, `transitions`, `report`);
//! - [`run`]: one run of an engine: the driver, the attempts, Monitor's clocks;
//! - [`cluster`]: the adapters to the API server and the outside (calls with deadlines, access
//!   review, watches and polls, Events, the engine writer, the exporter, telemetry);
//! - [`contract`]: the Litmus contract as pure data and functions (custom resources, env, the
//!   engine/experiment merge, the Job builder, run plans and their schedule, the stored record).

pub mod cli;
pub mod cluster;
pub mod contract;
pub mod run;
