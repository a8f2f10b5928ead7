//! One run of a ChaosEngine: the driver starts attempts as the plan allows, each attempt drives
//! one experiment through the phase engine, and Monitor's clocks decide on observed state only.

pub mod attempt;
pub mod context;
pub mod driver;
pub mod monitor;
