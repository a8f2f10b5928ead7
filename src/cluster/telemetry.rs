//! OpenTelemetry traces: the runner's spans exported over OTLP, joined to the operator's trace
//! through `TRACE_PARENT`, and a per-attempt trace parent handed on to each experiment pod.
//!
//! Nothing here runs unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set: [`Telemetry::from_env`]
//! returns `None` and the subscriber gets no OpenTelemetry layer, so a span's OTel context is
//! empty and [`experiment_trace_parent`] passes the runner's own `TRACE_PARENT` on unchanged.
//!
//! The wire. The Litmus runner and the experiments (litmus-go) export OTLP over **gRPC without
//! TLS** to `OTEL_EXPORTER_OTLP_ENDPOINT` written as `host:port`, and the operator hands the same
//! value to the runner and, through it, to the experiments. So gRPC is the default here too
//! (`OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` selects OTLP/HTTP), an endpoint without a scheme
//! means plain `http://`, and `https://` uses TLS. Both wires carry the same protobuf
//! `ExportTraceServiceRequest`: `opentelemetry-otlp` encodes it and hands it to [`Transport`], our
//! `HttpClient`, which posts it as is (OTLP/HTTP) or framed as a unary gRPC call over HTTP/2.
//! The transport is hyper 1 (already in the tree through kube) on its own thread and
//! current-thread runtime: the SDK's batch processor exports from a plain thread, and the
//! runner's own runtime must never wait on an export.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use thiserror::Error;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::contract::config::{ENV_OTEL_ENDPOINT, TraceCarrier, TraceParentError};

/// Selects the OTLP wire: `grpc` (default) or `http/protobuf`.
pub const ENV_OTEL_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// The traces-only form of [`ENV_OTEL_PROTOCOL`]; wins over it.
pub const ENV_OTEL_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// Overrides the resource's `service.name`.
pub const ENV_OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `service.name` of the runner's spans unless [`ENV_OTEL_SERVICE_NAME`] says otherwise.
pub const SERVICE_NAME: &str = "chaos-runner";
/// The gRPC method of OTLP trace export.
pub const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// One export (one request, retries included) gives up after this long: spans are worth less
/// than a runner that exits inside its pod's grace period.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound on the final flush at exit.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses larger than this are refused (an OTLP answer is a few bytes).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Targets whose spans are exported: the runner's own, not the libraries' (kube, hyper).
const EXPORTED_TARGET: &str = "chaos_runner";

/// How spans travel to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// OTLP/gRPC: the protobuf request in a gRPC frame, HTTP/2 (h2c for `http://`).
    Grpc,
    /// OTLP/HTTP with a binary protobuf body, HTTP/1.1.
    HttpProtobuf,
}

/// Where and how spans are sent, resolved from the env.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportTarget {
    pub wire: Wire,
    /// The full URL of the export request.
    pub url: Uri,
}

/// Why the exporter was not set up. Not fatal: the runner logs it and runs without traces.
#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error("{variable}={value:?} is not a supported OTLP protocol (use grpc or http/protobuf)")]
    Protocol {
        variable: &'static str,
        value: String,
    },
    #[error("{ENV_OTEL_ENDPOINT}={value:?} is not a usable endpoint: {reason}")]
    Endpoint { value: String, reason: String },
    #[error("cannot load the system's CA certificates for {url}: {source}")]
    Roots {
        url: Uri,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the OTLP export thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot build the OTLP exporter for {url}: {source}")]
    Exporter {
        url: Uri,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("flushing the spans at exit: {0}")]
    Shutdown(#[source] opentelemetry_sdk::error::OTelSdkError),
}

/// `TRACE_PARENT` parsed as JSON but holds no valid W3C `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "TRACE_PARENT has no valid W3C traceparent (got {traceparent:?}); the runner's spans start a new trace"
)]
pub struct InvalidTraceParent {
    pub traceparent: Option<String>,
}

/// Resolves the export target from the runner's env; `None` when no endpoint is set.
pub fn export_target(
    env: &BTreeMap<String, String>,
) -> Result<Option<ExportTarget>, TelemetryError> {
    let value = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let Some(endpoint) = value(ENV_OTEL_ENDPOINT) else {
        return Ok(None);
    };
    let (variable, protocol) = match value(ENV_OTEL_TRACES_PROTOCOL) {
        Some(protocol) => (ENV_OTEL_TRACES_PROTOCOL, Some(protocol)),
        None => (ENV_OTEL_PROTOCOL, value(ENV_OTEL_PROTOCOL)),
    };
    let wire = match protocol {
        None | Some("grpc") => Wire::Grpc,
        Some("http/protobuf") => Wire::HttpProtobuf,
        Some(other) => {
            return Err(TelemetryError::Protocol {
                variable,
                value: other.to_owned(),
            });
        }
    };
    let bad = |reason: String| TelemetryError::Endpoint {
        value: endpoint.to_owned(),
        reason,
    };
    // Litmus writes `host:port` (Go's otlptracegrpc.WithEndpoint + WithInsecure): plain HTTP.
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let base: Uri = with_scheme.parse().map_err(|e| bad(format!("{e}")))?;
    match base.scheme_str() {
        Some("http" | "https") => {}
        other => return Err(bad(format!("scheme {other:?} is not http or https"))),
    }
    let Some(authority) = base.authority() else {
        return Err(bad("no host".into()));
    };
    let url = match wire {
        // A gRPC endpoint names a server; the method path is fixed.
        Wire::Grpc => format!(
            "{}://{authority}{GRPC_EXPORT_PATH}",
            base.scheme_str().unwrap_or("http")
        ),
        // OTLP/HTTP: the signal path goes under the base URL's path.
        Wire::HttpProtobuf => format!("{}/v1/traces", with_scheme.trim_end_matches('/')),
    };
    let url = url.parse().map_err(|e| bad(format!("{e}")))?;
    Ok(Some(ExportTarget { wire, url }))
}

/// The running exporter. Keep it until the process ends and call [`Telemetry::shutdown`]
/// (dropping it shuts down too) so that the last batch of spans is sent.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    target: ExportTarget,
    shut_down: AtomicBool,
}

impl Telemetry {
    /// Sets up the exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; `Ok(None)` otherwise.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Option<Telemetry>, TelemetryError> {
        match export_target(env)? {
            None => Ok(None),
            Some(target) => {
                let service = env
                    .get(ENV_OTEL_SERVICE_NAME)
                    .filter(|name| !name.is_empty())
                    .map_or(SERVICE_NAME, String::as_str);
                Telemetry::start(target, service).map(Some)
            }
        }
    }

    /// Starts the exporter for `target`.
    pub fn start(target: ExportTarget, service_name: &str) -> Result<Telemetry, TelemetryError> {
        let transport = Transport::start(&target)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(transport)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(target.url.to_string())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|source| TelemetryError::Exporter {
                url: target.url.clone(),
                source,
            })?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(service_name.to_owned())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build();
        Ok(Telemetry {
            provider,
            target,
            shut_down: AtomicBool::new(false),
        })
    }

    pub fn target(&self) -> &ExportTarget {
        &self.target
    }

    /// The tracing layer that turns the runner's spans (target `chaos_runner`, INFO and up)
    /// into OpenTelemetry spans, whatever `RUST_LOG` says about the log lines.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        use tracing_subscriber::Layer as _;
        let tracer = self.provider.tracer("chaos-runner");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(EXPORTED_TARGET, tracing::Level::INFO),
            )
    }

    /// Sends the spans still queued and stops the exporter (at most [`SHUTDOWN_TIMEOUT`]).
    pub fn shutdown(&self) -> Result<(), TelemetryError> {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.provider
            .shutdown_with_timeout(SHUTDOWN_TIMEOUT)
            .map_err(TelemetryError::Shutdown)
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::warn!(%error, "spans may be lost");
        }
    }
}

/// A carrier map for the propagator (`TRACE_PARENT`'s JSON object).
struct CarrierMap<'a>(&'a mut BTreeMap<String, String>);

impl Injector for CarrierMap<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes `tracestate` even when there is none; an empty value says
        // nothing, so the carrier stays `{"traceparent": ...}` like the operator's.
        if !value.is_empty() {
            self.0.insert(key.to_owned(), value);
        }
    }
}

struct CarrierRef<'a>(&'a BTreeMap<String, String>);

impl Extractor for CarrierRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The remote parent named by a `TRACE_PARENT` carrier (W3C TraceContext).
pub fn remote_parent(
    fields: &BTreeMap<String, String>,
) -> Result<opentelemetry::Context, InvalidTraceParent> {
    let context = TraceContextPropagator::new().extract(&CarrierRef(fields));
    if context.span().span_context().is_valid() {
        Ok(context)
    } else {
        Err(InvalidTraceParent {
            traceparent: fields.get("traceparent").cloned(),
        })
    }
}

/// The span of the whole run, child of the operator's span when `TRACE_PARENT` names one. A
/// `TRACE_PARENT` without a valid traceparent is logged and the run starts a new trace; one that
/// is not even JSON was already reported with the configuration.
pub fn run_span(
    engine: &str,
    namespace: &str,
    trace_parent: Option<&Result<TraceCarrier, TraceParentError>>,
) -> tracing::Span {
    let span = tracing::info_span!("run", engine = %engine, namespace = %namespace);
    if let Some(Ok(carrier)) = trace_parent {
        match remote_parent(&carrier.fields) {
            // Err only when no OpenTelemetry layer is installed: then there is nothing to join.
            Ok(parent) => {
                let _ = span.set_parent(parent);
            }
            Err(error) => tracing::warn!(%error, "ignoring TRACE_PARENT"),
        }
    }
    span
}

/// The `TRACE_PARENT` for an experiment started under `span` (the attempt): the span's own
/// context as a JSON carrier, so the experiment's spans become its children. Without a live
/// OpenTelemetry span (no exporter) it is `inherited`, the runner's own `TRACE_PARENT`.
pub fn experiment_trace_parent(span: &tracing::Span, inherited: Option<&str>) -> Option<String> {
    trace_carrier(span).or_else(|| inherited.map(str::to_owned))
}

/// `span`'s OpenTelemetry context as a `TRACE_PARENT` JSON carrier; `None` when it has none.
pub fn trace_carrier(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut fields = BTreeMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut CarrierMap(&mut fields));
    if fields.is_empty() {
        return None;
    }
    serde_json::to_string(&fields).ok()
}

/// One export request on its way to the transport thread.
struct Exchange {
    request: Request<Bytes>,
    reply: tokio::sync::oneshot::Sender<Result<Response<Bytes>, HttpError>>,
}

/// The OTLP exporter's HTTP client: hyper on a thread of its own.
#[derive(Debug)]
pub struct Transport {
    wire: Wire,
    requests: tokio::sync::mpsc::UnboundedSender<Exchange>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("uri", self.request.uri())
            .finish()
    }
}

impl Transport {
    /// Starts the transport thread for `target`. It ends when the transport is dropped.
    pub fn start(target: &ExportTarget) -> Result<Transport, TelemetryError> {
        let https = target.url.scheme_str() == Some("https");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = if https {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(|source| TelemetryError::Roots {
                    url: target.url.clone(),
                    source,
                })?
        } else {
            // Plain http: TLS is never negotiated, so no roots are needed.
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TelemetryError::Roots {
                    url: target.url.clone(),
                    source: std::io::Error::other(e),
                })?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        };
        let connector = match target.wire {
            Wire::Grpc => tls.https_or_http().enable_http2().build(),
            Wire::HttpProtobuf => tls.https_or_http().enable_http1().build(),
        };
        let (requests, mut incoming) = tokio::sync::mpsc::unbounded_channel::<Exchange>();
        let wire = target.wire;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TelemetryError::Thread)?;
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                        .http2_only(wire == Wire::Grpc)
                        .build(connector);
                    let failing = AtomicBool::new(false);
                    while let Some(exchange) = incoming.recv().await {
                        let uri = exchange.request.uri().clone();
                        let outcome = tokio::time::timeout(
                            EXPORT_TIMEOUT,
                            send(&client, wire, exchange.request),
                        )
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!("no answer within {EXPORT_TIMEOUT:?}").into())
                        });
                        report(&failing, &uri, &outcome);
                        let _ = exchange.reply.send(outcome);
                    }
                });
            })
            .map_err(TelemetryError::Thread)?;
        Ok(Transport { wire, requests })
    }

    pub fn wire(&self) -> Wire {
        self.wire
    }
}

/// Logs the first failure of a series and the recovery, not every retry.
fn report(failing: &AtomicBool, uri: &Uri, outcome: &Result<Response<Bytes>, HttpError>) {
    let failure = match outcome {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("status {}", response.status())),
        Err(error) => Some(error.to_string()),
    };
    match failure {
        Some(error) => {
            if !failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(%uri, %error, "OTLP span export failed; spans may be lost");
            }
        }
        None => {
            if failing.swap(false, Ordering::Relaxed) {
                tracing::info!(%uri, "OTLP span export works again");
            }
        }
    }
}

type HyperClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

async fn send(
    client: &HyperClient,
    wire: Wire,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, HttpError> {
    let (mut parts, body) = request.into_parts();
    let body = match wire {
        Wire::HttpProtobuf => body,
        Wire::Grpc => {
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            parts
                .headers
                .insert(http::header::TE, HeaderValue::from_static("trailers"));
            grpc_frame(&body)?
        }
    };
    let response = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    let collected = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await?;
    let trailers = collected.trailers().cloned();
    let body = collected.to_bytes();
    match wire {
        Wire::HttpProtobuf => Ok(Response::from_parts(parts, body)),
        Wire::Grpc => grpc_response(parts, trailers.as_ref(), body),
    }
}

/// A gRPC length-prefixed message: no compression, 4-byte big-endian length, the message.
pub fn grpc_frame(message: &[u8]) -> Result<Bytes, HttpError> {
    let length = u32::try_from(message.len())
        .map_err(|_| format!("span batch of {} bytes is too large", message.len()))?;
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(length);
    frame.put_slice(message);
    Ok(frame.freeze())
}

/// Turns a gRPC answer into the HTTP answer the OTLP exporter understands: 200 with the
/// response message, or an error status that it retries (unavailable, exhausted) or not.
fn grpc_response(
    parts: http::response::Parts,
    trailers: Option<&http::HeaderMap>,
    mut body: Bytes,
) -> Result<Response<Bytes>, HttpError> {
    if !parts.status.is_success() {
        return Ok(Response::from_parts(parts, body));
    }
    // grpc-status is a trailer, or a header in a trailers-only answer.
    let code = trailers
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| parts.headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or("gRPC answer without grpc-status")?;
    let status = match code {
        0 => StatusCode::OK,
        // RESOURCE_EXHAUSTED, UNAVAILABLE: the exporter may retry.
        8 => StatusCode::TOO_MANY_REQUESTS,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = if body.len() >= 5 {
        body.advance(5);
        body
    } else {
        Bytes::new()
    };
    let mut response = Response::new(message);
    *response.status_mut() = status;
    Ok(response)
}

#[async_trait::async_trait]
impl HttpClient for Transport {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.requests
            .send(Exchange { request, reply })
            .map_err(|_| "the OTLP export thread has stopped")?;
        answer
            .await
            .map_err(|_| "the OTLP export thread dropped the request")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn carrier(traceparent: &str) -> Result<TraceCarrier, TraceParentError> {
        crate::contract::config::parse_trace_parent(&format!(
            r#"{{"traceparent":"{traceparent}"}}"#
        ))
    }

    #[test]
    fn no_endpoint_means_no_exporter() {
        assert_eq!(export_target(&env(&[])).unwrap(), None);
        assert_eq!(
            export_target(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])).unwrap(),
            None
        );
        assert!(Telemetry::from_env(&env(&[])).unwrap().is_none());
    }

    #[test]
    fn litmus_host_port_is_insecure_grpc() {
        let target = export_target(&env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "otel-collector.observability:4317",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(target.wire, Wire::Grpc);
        assert_eq!(
            target.url.to_string(),
            "http://otel-collector.observability:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        let tls = export_target(&env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector:4317/ignored",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(
            tls.url.to_string(),
            "https://collector:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
    }

    #[test]
    fn http_protobuf_appends_the_signal_path() {
        for (endpoint, url) in [
            ("http://c:4318", "http://c:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            ("http://c:4318/otlp", "http://c:4318/otlp/v1/traces"),
        ] {
            let target = export_target(&env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ]))
            .unwrap()
            .unwrap();
            assert_eq!(target.wire, Wire::HttpProtobuf);
            assert_eq!(target.url.to_string(), url, "{endpoint}");
        }
        // The traces-only variable wins.
        let target = export_target(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(target.wire, Wire::Grpc);
    }

    #[test]
    fn bad_protocol_or_endpoint_is_a_named_error() {
        let error = export_target(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("http/json"), "{error}");
        let error =
            export_target(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://c:21")])).unwrap_err();
        assert!(error.to_string().contains("ftp"), "{error}");
        let error = export_target(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://")])).unwrap_err();
        assert!(matches!(error, TelemetryError::Endpoint { .. }), "{error}");
    }

    #[test]
    fn remote_parent_needs_a_valid_traceparent() {
        let good = carrier(PARENT).unwrap();
        let context = remote_parent(&good.fields).unwrap();
        assert_eq!(
            context.span().span_context().trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "not-a-traceparent",
            "",
        ] {
            let error = remote_parent(&carrier(bad).unwrap().fields).unwrap_err();
            assert_eq!(error.traceparent.as_deref(), Some(bad));
        }
        let empty = crate::contract::config::parse_trace_parent("{}").unwrap();
        assert_eq!(remote_parent(&empty.fields).unwrap_err().traceparent, None);
    }

    /// A provider with no exporter: spans get real ids, nothing leaves the process.
    fn offline_telemetry() -> (SdkTracerProvider, impl tracing::Subscriber + Send + Sync) {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        (provider, subscriber)
    }

    fn parse_carrier(json: &str) -> (String, String, String) {
        let fields: BTreeMap<String, String> = serde_json::from_str(json).unwrap();
        let traceparent = fields.get("traceparent").unwrap().clone();
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        (parts[1].into(), parts[2].into(), parts[3].into())
    }

    #[test]
    fn the_experiment_becomes_a_child_of_the_attempt_in_the_operators_trace() {
        let (_provider, subscriber) = offline_telemetry();
        tracing::subscriber::with_default(subscriber, || {
            let parent = carrier(PARENT);
            let run = run_span("engine", "ns", Some(&parent));
            let attempt = tracing::info_span!(parent: &run, "attempt");
            let json = experiment_trace_parent(&attempt, Some("{\"inherited\":\"x\"}")).unwrap();
            let fields: BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
            assert_eq!(
                fields.keys().collect::<Vec<_>>(),
                ["traceparent"],
                "no empty tracestate: {json}"
            );
            let (trace_id, span_id, flags) = parse_carrier(&json);
            assert_eq!(trace_id, "0af7651916cd43dd8448eb211c80319c");
            assert_eq!(flags, "01");
            // The attempt's own span, not the operator's nor the run's.
            assert_ne!(span_id, "b7ad6b7169203331");
            assert_eq!(
                span_id,
                attempt
                    .context()
                    .span()
                    .span_context()
                    .span_id()
                    .to_string()
            );
            assert_ne!(
                span_id,
                run.context().span().span_context().span_id().to_string()
            );
            // Two attempts, two parents.
            let other = tracing::info_span!(parent: &run, "attempt");
            let (other_trace, other_span, _) =
                parse_carrier(&experiment_trace_parent(&other, None).unwrap());
            assert_eq!(other_trace, trace_id);
            assert_ne!(other_span, span_id);
        });
    }

    #[test]
    fn a_bad_traceparent_starts_a_new_trace() {
        let (_provider, subscriber) = offline_telemetry();
        tracing::subscriber::with_default(subscriber, || {
            let parent = carrier("00-zz-yy-01");
            let run = run_span("engine", "ns", Some(&parent));
            let (trace_id, _, _) = parse_carrier(&trace_carrier(&run).unwrap());
            assert_ne!(trace_id, "0af7651916cd43dd8448eb211c80319c");
            assert_ne!(trace_id, "0".repeat(32));
        });
    }

    #[test]
    fn without_an_exporter_the_runners_trace_parent_is_passed_on() {
        // No OpenTelemetry layer: the span has no context.
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("attempt");
            assert_eq!(trace_carrier(&span), None);
            assert_eq!(
                experiment_trace_parent(&span, Some("{\"traceparent\":\"t\"}")).as_deref(),
                Some("{\"traceparent\":\"t\"}")
            );
            assert_eq!(experiment_trace_parent(&span, None), None);
        });
    }

    #[test]
    fn grpc_framing_round_trips() {
        let frame = grpc_frame(b"abc").unwrap();
        assert_eq!(&frame[..], &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let (parts, _) = Response::new(()).into_parts();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let response = grpc_response(parts, Some(&trailers), frame).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(&response.body()[..], b"abc");

        for (code, status) in [
            ("14", StatusCode::SERVICE_UNAVAILABLE),
            ("8", StatusCode::TOO_MANY_REQUESTS),
            ("3", StatusCode::BAD_REQUEST),
        ] {
            let mut parts = Response::new(()).into_parts().0;
            parts
                .headers
                .insert("grpc-status", HeaderValue::from_static(code));
            let response = grpc_response(parts, None, Bytes::new()).unwrap();
            assert_eq!(response.status(), status, "grpc-status {code}");
        }
        let (parts, _) = Response::new(()).into_parts();
        assert!(grpc_response(parts, None, Bytes::new()).is_err());
    }
}
