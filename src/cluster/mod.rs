//! Adapters to the API server and the outside world: every call with a deadline and retries,
//! the access review, watches and polls, core/v1 Events, the one engine writer, the exporter,
//! and OpenTelemetry export.

pub mod access;
pub mod api;
pub mod clock;
pub mod connect;
pub mod engine_writer;
pub mod events;
pub mod exporter;
pub mod observe;
pub mod telemetry;
