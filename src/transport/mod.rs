//! The request path, pyo3-free: an HTTP/1.1 connection pool (and HTTP/2 connections for the
//! bidirectional operation, [`Transport::open_h2`]) on hyper over tokio, TLS on rustls,
//! proxies by HTTP `CONNECT` (hyper-util's tunnel) or by forwarding, with botocore's connect and
//! read timeouts applied where botocore applies them.
//!
//! The pool is this crate's own rather than hyper-util's `legacy::Client`: that client runs the
//! connect inside its response future (and finishes it in the background when a pooled
//! connection frees up first), so a caller cannot tell the connect phase from the wait for the
//! response, and botocore bounds the two by different timeouts (`connect_timeout`,
//! `read_timeout`). hyper writes the requests and parses the response heads, and keeps
//! connections alive; the HTTP/1.1 bodies with a length or chunks are read from the socket
//! here (the `gate` module says why), the others by hyper.

mod body;
mod connect;
mod error;
mod gate;
mod h2;
mod pool;
mod request;
mod socket_body;
mod tls;

pub use body::{ResponseBody, MAX_BODY, MAX_ERROR_BODY};
pub use connect::Proxy;
pub use error::{ConnectKind, TransportError};
pub use h2::{PendingResponse, StreamBody, StreamSlot, STREAMS_PER_CONNECTION};
pub use pool::Pool;
pub use request::{Request, Response, Transport};
pub use tls::Verify;

// What the modules above share is defined here, below them all: each of them depends on this
// module (and on the ones it names), never this module on them.

use std::future::Future;
use std::time::Duration;

use http::{HeaderMap, Uri};
use tokio::time::Instant;

/// Everything a transport is built from (botocore's `Config` and `verify`, resolved).
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// `Config.connect_timeout` (None: no bound).
    pub connect_timeout: Option<Duration>,
    /// `Config.read_timeout` (None: no bound).
    pub read_timeout: Option<Duration>,
    /// `Config.max_pool_connections`: idle connections kept per host.
    pub max_idle_per_host: usize,
    /// `Config.tcp_keepalive`.
    pub tcp_keepalive: bool,
    /// The client's `verify`.
    pub verify: Verify,
    /// The proxy for `http://` URLs.
    pub http_proxy: Option<Proxy>,
    /// The proxy for `https://` URLs (by `CONNECT`).
    pub https_proxy: Option<Proxy>,
}

impl TransportConfig {
    /// The connector of this configuration, offering the protocols `alpn` in TLS handshakes.
    fn connector(&self, alpn: &'static [&'static [u8]]) -> connect::Connector {
        connect::Connector::new(
            self.verify.clone(),
            alpn,
            self.http_proxy.clone(),
            self.https_proxy.clone(),
            self.connect_timeout,
            self.tcp_keepalive,
        )
    }
}

/// A deadline and the number of seconds it was set to (for the message).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub seconds: f64,
}

impl Deadline {
    /// `seconds` from now.
    #[must_use]
    pub fn after(seconds: f64) -> Self {
        Self::left_of(seconds, seconds)
    }

    /// `left` seconds from now: what is left of a call's deadline of `seconds` (the number
    /// its error names, as the caller set it).
    #[must_use]
    pub fn left_of(left: f64, seconds: f64) -> Self {
        Self {
            at: Instant::now() + Duration::from_secs_f64(left.clamp(0.0, 1e9)),
            seconds,
        }
    }

    /// The error of a call that ran past this deadline.
    #[must_use]
    pub fn error(self) -> TransportError {
        TransportError::Deadline {
            seconds: self.seconds,
        }
    }

    /// `work`, unless `deadline` passes first: then the deadline's error.
    ///
    /// # Errors
    /// `work`'s, or `Deadline`.
    pub async fn bound<T>(
        deadline: Option<Self>,
        work: impl Future<Output = Result<T, TransportError>>,
    ) -> Result<T, TransportError> {
        match deadline {
            None => work.await,
            Some(d) => tokio::time::timeout_at(d.at, work)
                .await
                .unwrap_or_else(|_| Err(d.error())),
        }
    }
}

/// What connections to `uri` are pooled by: `scheme://host:port`.
fn pool_key(uri: &Uri) -> Result<String, TransportError> {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme @ ("http" | "https")), Some(authority)) => {
            // Pieces pushed rather than `format!`ed: this runs for every request.
            let authority = authority.as_str();
            let mut key = String::with_capacity(scheme.len() + 3 + authority.len());
            key.push_str(scheme);
            key.push_str("://");
            key.push_str(authority);
            Ok(key)
        }
        _ => Err(TransportError::InvalidRequest {
            message: format!("not an http:// or https:// URL: {uri}"),
        }),
    }
}

/// Headers as `(lower-case name, value)` pairs, repeated ones joined with `", "`, bytes beyond
/// ASCII read as Latin-1 (as Python's `http.client` reads them).
#[must_use]
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .keys()
        .map(|name| {
            let values: Vec<String> = headers
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes().iter().map(|&b| char::from(b)).collect())
                .collect();
            (name.as_str().to_owned(), values.join(", "))
        })
        .collect()
}
