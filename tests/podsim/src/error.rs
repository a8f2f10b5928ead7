//! Errors of the simulator, each naming the object it concerns.

use std::time::Duration;

/// Everything that can go wrong while the simulator plays a pod or writes a ChaosResult.
#[derive(Debug, thiserror::Error)]
pub enum PodsimError {
    /// A second simulator was started for a namespace that one in this process already plays.
    #[error("a pod simulator already runs for namespace {namespace} in this process")]
    AlreadyRunning { namespace: String },

    /// The pod lacks a field the simulator needs (name, uid, containers).
    #[error("pod {pod}: {what}")]
    MalformedPod { pod: String, what: String },

    /// `PODSIM_BEHAVIOUR` holds a value the simulator does not know.
    #[error(
        "pod {pod}: container {container}: PODSIM_BEHAVIOUR={value:?} is not one of pass, fail, error, hang, crash, pending, imagepull"
    )]
    UnknownBehaviour {
        pod: String,
        container: String,
        value: String,
    },

    /// A duration variable is not a non-negative number of seconds.
    #[error(
        "pod {pod}: container {container}: {variable}={value:?} is not a non-negative number of seconds"
    )]
    BadDuration {
        pod: String,
        container: String,
        variable: &'static str,
        value: String,
    },

    /// An API call failed.
    #[error("{action} {object}: {source}")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },

    /// An API call did not answer within its deadline.
    #[error("{action} {object}: no answer within {deadline:?}")]
    Deadline {
        action: &'static str,
        object: String,
        deadline: Duration,
    },

    /// A ChaosResult write kept conflicting with other writers.
    #[error("ChaosResult {result}: still conflicting after {attempts} attempts")]
    ResultConflict { result: String, attempts: u32 },

    /// A ChaosResult could not be (de)serialised.
    #[error("ChaosResult {result}: {source}")]
    ResultEncoding {
        result: String,
        #[source]
        source: serde_json::Error,
    },
}

impl PodsimError {
    /// The HTTP status code of the API error behind this error, if there is one.
    /// Worth another try: the apiserver did not answer, or answered that it is overloaded or
    /// not ready.
    fn is_transient(&self) -> bool {
        match self {
            PodsimError::Deadline { .. } => true,
            PodsimError::Api { source, .. } => match source {
                kube::Error::Api(status) => status.code == 429 || status.code >= 500,
                kube::Error::HyperError(_) | kube::Error::Service(_) => true,
                _ => false,
            },
            _ => false,
        }
    }

    pub fn api_status(&self) -> Option<u16> {
        match self {
            PodsimError::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}

/// Runs one API call, each try under `deadline`, so a stuck request cannot stall a pod forever;
/// retried while the failure is transient (no connection, 429, 5xx, a try past its deadline)
/// for up to [`RETRY_BUDGET`], as a kubelet keeps retrying its status updates while the
/// apiserver restarts.
pub(crate) async fn with_deadline<T, F>(
    action: &'static str,
    object: &str,
    deadline: Duration,
    mut call: impl FnMut() -> F,
) -> Result<T, PodsimError>
where
    F: std::future::Future<Output = Result<T, kube::Error>>,
{
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        let error = match tokio::time::timeout(deadline, call()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(source)) => PodsimError::Api {
                action,
                object: object.to_owned(),
                source,
            },
            Err(_) => PodsimError::Deadline {
                action,
                object: object.to_owned(),
                deadline,
            },
        };
        if !error.is_transient() || started.elapsed() + wait > RETRY_BUDGET {
            return Err(error);
        }
        tracing::warn!(%error, "retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// How long an API call is retried while its failures are transient.
pub(crate) const RETRY_BUDGET: Duration = Duration::from_secs(60);
