//! Every API call the runner makes goes through [`call`]: a deadline on each attempt and
//! retries (backon) for the errors a retry can cure. kube's own retry layer is switched off in
//! the client (`cli`) so that these deadlines are the only ones in force.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

/// How long one API request may take before it counts as failed.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// An API call that failed after its retries, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl ApiError {
    /// The HTTP status the API server answered with, if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Kube {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// The answer came but could not be decoded (e.g. JSON nested deeper than serde_json's
    /// 128 levels, which a CRD's `x-kubernetes-preserve-unknown-fields` lets users store).
    pub fn is_undecodable(&self) -> bool {
        matches!(
            self,
            ApiError::Kube {
                source: kube::Error::SerdeError(_),
                ..
            }
        )
    }

    /// 409: a conflict on `resourceVersion` or an object that already exists.
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    /// 422: the request does not apply (e.g. a JSON patch whose paths are gone).
    pub fn is_invalid(&self) -> bool {
        self.code() == Some(422)
    }

    pub fn is_forbidden(&self) -> bool {
        self.code() == Some(403)
    }

    /// Errors a later attempt may not see: timeouts, throttling, server and transport faults.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Timeout { .. } => true,
            ApiError::Kube { source, .. } => is_transient(source),
        }
    }
}

fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// The retry schedule for transient failures: up to [`RETRY_WAIT`] of waits between tries
/// (and at most 15 retries), enough to ride out an apiserver restart in the same process
/// rather than exit and wait for the kubelet's restart back-off.
fn schedule() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(15)
        .with_total_delay(Some(RETRY_WAIT))
        .with_jitter()
}

/// The most a call waits between its tries in all.
pub const RETRY_WAIT: Duration = Duration::from_secs(30);

/// When every API call must have ended: set once the pod is being terminated (SIGTERM, or an
/// abort the operator follows with one), so the run's last writes go out before the kubelet's
/// SIGKILL. Process-wide because the grace period is: every call in flight must respect it.
static FINISH_BY: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// From now on, every call (and its retries) ends by `at`; an earlier bound is kept.
pub fn finish_calls_by(at: Instant) {
    let mut finish_by = FINISH_BY.lock().unwrap_or_else(|e| e.into_inner());
    *finish_by = Some(finish_by.map_or(at, |earlier| earlier.min(at)));
}

/// The bound set by [`finish_calls_by`], if any.
fn finish_by() -> Option<Instant> {
    *FINISH_BY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Time left before [`finish_calls_by`]'s bound; `None` while there is none.
pub fn time_left() -> Option<Duration> {
    finish_by().map(|at| at.saturating_duration_since(Instant::now()))
}

/// Runs `request` with [`CALL_DEADLINE`] per attempt, retrying transient failures, all within
/// the termination budget once there is one. `what` names the call in errors and logs
/// ("create Job pod-delete-x1y2z3").
pub async fn call<T, F, Fut>(what: &str, request: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    call_until(what, request, finish_by()).await
}

/// [`call`] with an explicit end for the call and its retries.
async fn call_until<T, F, Fut>(
    what: &str,
    mut request: F,
    finish_by: Option<Instant>,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let left = move || finish_by.map(|at| at.saturating_duration_since(Instant::now()));
    let attempt = || {
        let deadline = left().map_or(CALL_DEADLINE, |left| left.min(CALL_DEADLINE));
        let fut = request();
        async move {
            match tokio::time::timeout(deadline, fut).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(source)) => Err(ApiError::Kube {
                    what: what.to_string(),
                    source,
                }),
                Err(_) => Err(ApiError::Timeout {
                    what: what.to_string(),
                    after: deadline,
                }),
            }
        }
    };
    // Boxed: on the heap only while the call runs. Inline, the largest request future of each
    // call site (kube's request building, the retry and timeout state) is part of the size of
    // every task that makes the call, for as long as the task lives.
    Box::pin(
        attempt
            .retry(schedule())
            .when(|error| error.is_transient() && left().is_none_or(|left| !left.is_zero()))
            .notify(|error, wait| tracing::warn!(%error, ?wait, "API call failed; retrying")),
    )
    .await
}

/// Like [`call`], but a 404 is an answer (`None`), not an error.
pub async fn call_opt<T, F, Fut>(what: &str, request: F) -> Result<Option<T>, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    match call(what, request).await {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// [`call_opt`] for a request built by hand whose answer is kept as text, not decoded (an
/// object nested deeper than kube's decoder reads, or an answer nobody reads).
pub async fn call_raw_opt<B>(
    client: &kube::Client,
    what: &str,
    build: B,
) -> Result<Option<String>, ApiError>
where
    B: Fn() -> Result<http::Request<Vec<u8>>, kube::core::request::Error>,
{
    call_opt(what, || {
        let request = build();
        async move {
            client
                .request_text(request.map_err(kube::Error::BuildRequest)?)
                .await
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: format!("status {code}"),
            ..Default::default()
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let value = call("get thing", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 2 { Err(api_error(503)) } else { Ok(n) } }
        })
        .await
        .unwrap();
        assert_eq!(value, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    /// An apiserver restarting refuses connections for seconds (the plane's takes 5-15 s):
    /// the call keeps trying for most of RETRY_WAIT before it gives up.
    #[tokio::test(start_paused = true)]
    async fn an_unavailable_apiserver_is_retried_for_most_of_the_retry_wait() {
        let started = Instant::now();
        let error = call("get thing", || async { Err::<(), _>(api_error(503)) })
            .await
            .unwrap_err();
        assert!(error.is_transient());
        let waited = started.elapsed();
        assert!(
            waited >= RETRY_WAIT / 2 && waited <= RETRY_WAIT * 2,
            "gave up after {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let error = call("create thing", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(api_error(403)) }
        })
        .await
        .unwrap_err();
        assert!(error.is_forbidden());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(error.to_string().starts_with("create thing: "));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_call_times_out_and_gives_up() {
        let calls = AtomicU32::new(0);
        let error = call("watch nothing", || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), kube::Error>>()
        })
        .await
        .unwrap_err();
        assert!(matches!(error, ApiError::Timeout { .. }));
        let calls = calls.load(Ordering::SeqCst);
        assert!((8..=16).contains(&calls), "{calls} tries");
    }

    #[tokio::test(start_paused = true)]
    async fn once_terminating_every_call_ends_within_the_budget() {
        // Without a budget a hanging call takes 7 × 10 s plus backoff (about 75 s); a pod's
        // grace period is 30 s by default.
        let started = Instant::now();
        let finish_by = Some(started + Duration::from_secs(12));
        let error = call_until(
            "patch engine",
            std::future::pending::<Result<(), kube::Error>>,
            finish_by,
        )
        .await
        .unwrap_err();
        assert!(matches!(error, ApiError::Timeout { .. }));
        let took = started.elapsed();
        assert!(took <= Duration::from_secs(12), "took {took:?}");
        // Once the budget is spent, a call fails at once instead of hanging.
        let calls = AtomicU32::new(0);
        call_until(
            "get engine",
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<Result<(), kube::Error>>()
            },
            finish_by,
        )
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(started.elapsed(), took);
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_is_an_answer_for_call_opt() {
        let found = call_opt("get gone", || async { Err::<(), _>(api_error(404)) })
            .await
            .unwrap();
        assert!(found.is_none());
    }
}
