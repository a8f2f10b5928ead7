//! OpenTelemetry export, end to end on 127.0.0.1 (no cluster): receivers that record what the
//! runner sends, and assertions on the trace ids in the protobuf bodies.
//!
//! - the binary, OTLP/HTTP: the run span joins the operator's trace from `TRACE_PARENT` and is
//!   flushed on the way out of a run that fails (exit 1);
//! - the library, OTLP/gRPC (Litmus' wire, `host:port` endpoint): framing, method path, the
//!   attempt span whose context becomes the experiment's `TRACE_PARENT`;
//! - an endpoint where nothing listens does not hold the exit up.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chaos_runner::cluster::telemetry::{self, GRPC_EXPORT_PATH, Telemetry};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tracing_subscriber::layer::SubscriberExt;

const BIN: &str = env!("CARGO_BIN_EXE_chaos-runner");
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!(r#"{{"traceparent":"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"}}"#)
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// One HTTP/1.1 request as the receiver saw it.
#[derive(Debug)]
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 server: answers every request with `status` and `body`
/// (`Connection: close`) and reports it on the channel.
fn http1_server(
    status: &'static str,
    answer_body: &'static str,
) -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let mut length = 0;
            let mut content_type = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                let value = value.trim();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "content-type" => content_type = value.to_owned(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer_body}",
                answer_body.len(),
            );
            let _ = stream.write_all(answer.as_bytes());
            let _ = tx.send(Received {
                path,
                content_type,
                body,
            });
        }
    });
    (port, rx)
}

fn kubeconfig(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_binary_exports_the_run_span_under_the_operators_trace_and_flushes_on_exit() {
    // An API server that answers 404 to everything: the access reviews fall back to the least
    // access and the engine is not found, so the run ends at once (exit 0, nothing to run);
    // that exit must still flush the spans.
    let (api_port, api_requests) = http1_server(
        "404 Not Found",
        r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
    );
    let (otlp_port, exports) = http1_server("200 OK", "");
    let dir = std::env::temp_dir().join(format!("otel-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let output = std::process::Command::new(BIN)
        .env_clear()
        .env("RUST_LOG", "info")
        .arg("--kubeconfig")
        .arg(kubeconfig(&dir, api_port))
        .env("CHAOSENGINE", "engine-a")
        .env("CHAOS_NAMESPACE", "ns-a")
        .env("EXPERIMENT_LIST", "pod-delete")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp_port}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("TRACE_PARENT", traceparent())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        api_requests.try_recv().is_ok(),
        "the runner reached the API"
    );
    assert!(stderr.contains("exporting spans over OTLP"), "{stderr}");
    // The batch was sent before the process ended: it is already in the channel.
    let export = exports
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_else(|_| panic!("no OTLP export after {:?}: {stderr}", started.elapsed()));
    assert_eq!(export.path, "/v1/traces");
    assert_eq!(export.content_type, "application/x-protobuf");
    assert!(
        contains(&export.body, &hex(TRACE_ID)),
        "the export carries the operator's trace id"
    );
    assert!(
        contains(&export.body, &hex(PARENT_SPAN_ID)),
        "the run span's parent is the operator's span"
    );
    assert!(contains(&export.body, b"chaos-runner"), "service.name");
    assert!(
        contains(&export.body, b"engine-a"),
        "the run span's engine field"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the gRPC receiver saw.
#[derive(Debug)]
struct GrpcCall {
    path: String,
    content_type: String,
    frame: Bytes,
}

/// An OTLP/gRPC receiver: HTTP/2 without TLS, answers grpc-status 0 in the trailers.
fn grpc_server() -> (u16, mpsc::Receiver<GrpcCall>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let content_type = request
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let frame = request.into_body().collect().await.unwrap().to_bytes();
                            let _ = tx.send(GrpcCall {
                                path,
                                content_type,
                                frame,
                            });
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                            // An empty ExportTraceServiceResponse, framed.
                            let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
                                Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
                                Ok(Frame::trailers(trailers)),
                            ];
                            let body = StreamBody::new(futures::stream::iter(frames));
                            let response = hyper::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(body)
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    },
                );
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
    });
    (port, rx)
}

fn env(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[test]
fn grpc_export_carries_the_attempt_span_that_the_experiment_gets_as_parent() {
    let (port, calls) = grpc_server();
    // Litmus' form of the endpoint: host:port, gRPC, no TLS.
    let telemetry = Telemetry::from_env(&env(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("127.0.0.1:{port}"),
    )]))
    .unwrap()
    .expect("an endpoint is set");
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    let carrier = chaos_runner::contract::config::parse_trace_parent(&traceparent());
    let experiment_trace_parent = tracing::subscriber::with_default(subscriber, || {
        let run = telemetry::run_span("engine-b", "ns-b", Some(&carrier));
        let attempt = tracing::info_span!(target: "chaos_runner::run::attempt", parent: &run, "attempt", experiment = "pod-delete");
        let inherited = traceparent();
        telemetry::experiment_trace_parent(&attempt, Some(&inherited)).unwrap()
    });
    telemetry.shutdown().unwrap();
    let call = calls
        .recv_timeout(Duration::from_secs(5))
        .expect("one gRPC export");
    assert_eq!(call.path, GRPC_EXPORT_PATH);
    assert_eq!(call.content_type, "application/grpc");
    // The gRPC frame: uncompressed, its length, then the protobuf request.
    assert_eq!(call.frame[0], 0);
    let length = u32::from_be_bytes([call.frame[1], call.frame[2], call.frame[3], call.frame[4]]);
    assert_eq!(length as usize, call.frame.len() - 5);
    let message = &call.frame[5..];
    assert!(contains(message, &hex(TRACE_ID)), "operator's trace id");
    assert!(
        contains(message, &hex(PARENT_SPAN_ID)),
        "operator's span as parent"
    );
    assert!(contains(message, b"attempt") && contains(message, b"run"));

    // The experiment's TRACE_PARENT names the exported attempt span in the same trace.
    let fields: BTreeMap<String, String> = serde_json::from_str(&experiment_trace_parent).unwrap();
    let parts: Vec<&str> = fields["traceparent"].split('-').collect();
    assert_eq!(parts[1], TRACE_ID);
    assert_ne!(parts[2], PARENT_SPAN_ID);
    assert!(
        contains(message, &hex(parts[2])),
        "the attempt span {} was exported",
        parts[2]
    );
}

#[test]
fn an_unreachable_collector_does_not_hold_the_exit_up() {
    // A port with nothing behind it.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let telemetry = Telemetry::from_env(&env(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("127.0.0.1:{port}"),
    )]))
    .unwrap()
    .unwrap();
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _run = telemetry::run_span("engine-c", "ns-c", None);
    });
    let started = Instant::now();
    let _ = telemetry.shutdown();
    let took = started.elapsed();
    assert!(
        took <= telemetry::SHUTDOWN_TIMEOUT + Duration::from_secs(1),
        "shutdown took {took:?}"
    );
}
