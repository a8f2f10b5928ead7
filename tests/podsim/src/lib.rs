//! podsim: plays the experiment pods of chaos-runner's tests the way a kubelet and a Litmus
//! experiment would, because no kubelet or scheduler runs on the test machine.
//!
//! [`Simulator::start`] watches the pods with a `job-name` label in one namespace. Each pod's
//! main container (named like the Job, else the first) selects a [`Behaviour`] with
//! `PODSIM_BEHAVIOUR` and a duration with `PODSIM_SECONDS` (else `TOTAL_CHAOS_DURATION`,
//! else 1 s). The simulator writes the pod status through `pods/status`, creates and updates
//! the ChaosResult `<CHAOSENGINE>-<EXPERIMENT_NAME>[-<INSTANCE_ID>]`, binds pods to a fake
//! node and force-deletes pods that are being deleted. It keeps a [`SimEvent`] log and
//! [`SimCounters`] for tests and benchmarks.

mod error;
mod events;
mod result;
mod script;
mod simulator;
mod status;

pub use error::PodsimError;
pub use events::{SimCounters, SimEvent, SimEventKind};
pub use result::{ResultUpdate, ResultWriter, chaos_result_resource};
pub use script::{
    BEHAVIOUR_ENV, Behaviour, ContainerInfo, ERROR_CODE_ENV, JOB_NAME_LABEL, PodScript, REASON_ENV,
    ResultTarget, SECONDS_ENV,
};
pub use simulator::{Simulator, SimulatorConfig, SimulatorHandle};
pub use status::{HOST_IP, NODE_NAME};
