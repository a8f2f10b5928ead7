//! The Litmus contract as pure data and functions: the custom resources, the runner's env,
//! the engine/experiment merge, the Job builder, run plans and their schedule, and the record
//! the runner keeps in the engine. No I/O.

pub mod config;
pub mod crd;
pub mod hash;
pub mod job;
pub mod merge;
pub mod plan;
pub mod record;
pub mod schedule;
