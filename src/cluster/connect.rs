//! The API client: kube's configuration (kubeconfig or in-cluster), carried over HTTP/2.
//!
//! kube's own client speaks HTTP/1.1 only, so every request in flight has a TCP and TLS
//! connection of its own with its buffers: with 333 attempts in flight that was ~12 MiB of the
//! runner's heap (heaptrack, the bench's 1000 rung) and a TLS handshake per extra connection.
//! Like client-go, this client offers HTTP/2 by ALPN (HTTP/1.1 stays for servers without it), so
//! all requests share one connection, and pings it so that a connection that died silently is
//! noticed and replaced instead of holding every request until its deadline.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt as _;
use tower::ServiceBuilder;

/// client-go's HTTP/2 health check: a ping after 30 s without a frame, 15 s for its answer.
const PING_AFTER_IDLE: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// Why no client could be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TLS configuration: {0}")]
    Tls(#[source] kube::Error),
    #[error("tls-server-name {name:?} is not a valid server name")]
    ServerName { name: String },
    #[error("authentication or headers: {0}")]
    Layers(#[source] kube::Error),
}

/// A client for `config`; kube's own retry layer is not used (every call has its own deadline
/// and retries, `api::call`), nor its per-request tracing span.
pub fn client(config: kube::Config) -> Result<kube::Client, ConnectError> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(config.connect_timeout);

    let tls = config.rustls_client_config().map_err(ConnectError::Tls)?;
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let server_name = name
            .clone()
            .try_into()
            .map_err(|_| ConnectError::ServerName { name: name.clone() })?;
        https = https
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(server_name));
    }
    let connector = https.enable_http1().enable_http2().wrap_connector(tcp);

    let transport = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_AFTER_IDLE)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(ConnectError::Layers)?)
        .layer(config.extra_headers_layer().map_err(ConnectError::Layers)?)
        .map_err(tower::BoxError::from)
        .service(transport);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace).build())
}
