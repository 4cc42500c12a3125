//! Sending one request and reading its response, with botocore's timeouts: the connect
//! timeout bounds making a connection, the read timeout every wait for response bytes (the
//! headers, then each body read), and an optional deadline the whole call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, CONTENT_LENGTH, EXPECT, HOST, PROXY_AUTHORIZATION,
};
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::connect::{authority, Connector, Proxy};
use super::error::{io_kind, root_cause, TransportError};
use super::pool::{Idle, Pool, RawSocket, Sender};
use super::tls::Verify;

/// How long a connection that finished its response may take to be ready for the next one
/// before it is dropped instead of pooled.
const READY_GRACE: Duration = Duration::from_secs(1);

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

/// A request, ready to go (signed already if it must be).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
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
        Self {
            at: Instant::now() + Duration::from_secs_f64(seconds.clamp(0.0, 1e9)),
            seconds,
        }
    }

    fn error(self) -> TransportError {
        TransportError::Deadline {
            seconds: self.seconds,
        }
    }
}

/// Status and headers of a response, and its body to read.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ResponseBody,
}

/// Hands the connection back to the pool once its response was read to the end.
struct Lease {
    pool: Arc<Pool>,
    key: Arc<str>,
    sender: Sender,
    fd: Option<RawSocket>,
}

impl Lease {
    async fn release(mut self) {
        if let Ok(Ok(())) = tokio::time::timeout(READY_GRACE, self.sender.ready()).await {
            self.pool.checkin(
                self.key,
                Idle {
                    sender: self.sender,
                    fd: self.fd,
                },
            );
        }
    }
}

/// Whether [`ResponseBody::take`] may wait for a frame hyper does not hold yet.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Until(Option<Deadline>),
}

/// The body of a response. Read to its end, it gives its connection back to the pool;
/// dropped before, it closes the connection (hyper cannot reuse a half-read HTTP/1.1 response).
pub struct ResponseBody {
    incoming: Incoming,
    lease: Option<Lease>,
    read_timeout: Option<Duration>,
    /// `Transfer-Encoding: chunked` (for the message of a framing error).
    chunked: bool,
    done: bool,
    /// When the last bytes arrived, and one timer for the read timeout and one for the deadline,
    /// each armed once and moved on only when it fires: a stream of many small frames does not
    /// touch the timer wheel per frame.
    last_data: Instant,
    idle_timer: Option<Pin<Box<Sleep>>>,
    deadline_timer: Option<Pin<Box<Sleep>>>,
}

impl ResponseBody {
    /// The body of a response on a connection no pool keeps (HTTP/2: the connection carries
    /// other streams and stays open by itself), read without a read timeout.
    #[must_use]
    pub fn detached(incoming: Incoming) -> Self {
        Self {
            incoming,
            lease: None,
            read_timeout: None,
            chunked: false,
            done: false,
            last_data: Instant::now(),
            idle_timer: None,
            deadline_timer: None,
        }
    }

    /// The next piece of the body (`None` at its end), within the read timeout and `deadline`.
    ///
    /// # Errors
    /// `ReadTimeout`, `Deadline`, `ConnectionLost` (closed or reset before the end), or
    /// `InvalidResponse` (malformed chunked framing).
    pub async fn next_chunk(
        &mut self,
        deadline: Option<Deadline>,
    ) -> Result<Option<Bytes>, TransportError> {
        loop {
            if let Some(chunk) = self.take(Wait::Until(deadline)).await {
                return chunk;
            }
        }
    }

    /// The next piece of the body if hyper holds it already (`None`: nothing without waiting).
    /// A stream drains what one socket read brought this way, to hand it over in one batch.
    ///
    /// # Errors
    /// As [`ResponseBody::next_chunk`].
    pub async fn ready_chunk(&mut self) -> Option<Result<Option<Bytes>, TransportError>> {
        self.take(Wait::No).await
    }

    /// One body frame: waiting for it (within the read timeout and the deadline) with
    /// [`Wait::Until`], else only if hyper has it. `None`: nothing yet, or a frame without data.
    async fn take(&mut self, wait: Wait) -> Option<Result<Option<Bytes>, TransportError>> {
        if self.done {
            return Some(Ok(None));
        }
        // Look first without a timer: most frames of a busy stream are buffered already.
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut self.incoming).poll_frame(cx)))
                .await;
        let frame = match (polled, wait) {
            (Poll::Ready(frame), _) => frame,
            (Poll::Pending, Wait::No) => return None,
            (Poll::Pending, Wait::Until(deadline)) => match self.wait_frame(deadline).await {
                Ok(frame) => frame,
                Err(err) => return Some(Err(err)),
            },
        };
        self.last_data = Instant::now();
        match frame {
            None => {
                self.done = true;
                if let Some(lease) = self.lease.take() {
                    lease.release().await;
                }
                Some(Ok(None))
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => Some(Ok(Some(data))),
                _ => None, // trailers, or an empty data frame
            },
            Some(Err(err)) => {
                self.done = true;
                self.lease = None;
                Some(Err(body_error(&err, self.chunked)))
            }
        }
    }

    /// Wait for the next body frame within the read timeout (counted from the last bytes) and
    /// `deadline`.
    async fn wait_frame(
        &mut self,
        deadline: Option<Deadline>,
    ) -> Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, TransportError> {
        let read_timeout = self.read_timeout;
        if let (None, Some(d)) = (&self.deadline_timer, deadline) {
            self.deadline_timer = Some(Box::pin(tokio::time::sleep_until(d.at)));
        }
        if let (None, Some(limit)) = (&self.idle_timer, read_timeout) {
            self.idle_timer = Some(Box::pin(tokio::time::sleep_until(self.last_data + limit)));
        }
        std::future::poll_fn(|cx| {
            if let Poll::Ready(frame) = Pin::new(&mut self.incoming).poll_frame(cx) {
                return Poll::Ready(Ok(frame));
            }
            if let (Some(timer), Some(d)) = (self.deadline_timer.as_mut(), deadline) {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(d.error()));
                }
            }
            if let (Some(timer), Some(limit)) = (self.idle_timer.as_mut(), read_timeout) {
                loop {
                    if timer.as_mut().poll(cx).is_pending() {
                        break;
                    }
                    let due = self.last_data + limit;
                    if Instant::now() >= due {
                        return Poll::Ready(Err(TransportError::ReadTimeout {
                            seconds: limit.as_secs_f64(),
                        }));
                    }
                    // Bytes came since it was set: move it on, and look again.
                    timer.as_mut().reset(due);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// The whole body, at most `limit` bytes.
    ///
    /// # Errors
    /// As [`ResponseBody::next_chunk`], and `BodyTooLarge`.
    pub async fn collect(
        mut self,
        limit: Option<usize>,
        deadline: Option<Deadline>,
    ) -> Result<Bytes, TransportError> {
        let mut first: Option<Bytes> = None;
        let mut rest: Vec<u8> = Vec::new();
        while let Some(chunk) = self.next_chunk(deadline).await? {
            let held = if rest.is_empty() {
                first.as_ref().map_or(0, Bytes::len)
            } else {
                rest.len()
            } + chunk.len();
            if limit.is_some_and(|l| held > l) {
                return Err(TransportError::BodyTooLarge {
                    limit: limit.unwrap_or_default(),
                });
            }
            match &first {
                None => first = Some(chunk),
                Some(earlier) => {
                    if rest.is_empty() {
                        rest.extend_from_slice(earlier);
                    }
                    rest.extend_from_slice(&chunk);
                }
            }
        }
        Ok(if rest.is_empty() {
            first.unwrap_or_default()
        } else {
            Bytes::from(rest)
        })
    }
}

/// `fut` within the read timeout and the deadline, whichever comes first.
async fn bounded<F: std::future::Future>(
    fut: F,
    read_timeout: Option<Duration>,
    deadline: Option<Deadline>,
) -> Result<F::Output, TransportError> {
    let read_at = read_timeout.map(|t| Instant::now() + t);
    let (at, on_expiry) = match (read_at, deadline) {
        (None, None) => return Ok(fut.await),
        (Some(r), Some(d)) if d.at <= r => (d.at, d.error()),
        (Some(r), _) => (
            r,
            TransportError::ReadTimeout {
                seconds: read_timeout.unwrap_or_default().as_secs_f64(),
            },
        ),
        (None, Some(d)) => (d.at, d.error()),
    };
    tokio::time::timeout_at(at, fut)
        .await
        .map_err(|_| on_expiry)
}

fn body_error(err: &hyper::Error, chunked: bool) -> TransportError {
    match io_kind(err) {
        Some(std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput) => {
            let what = if chunked {
                "malformed HTTP chunked encoding"
            } else {
                "malformed HTTP body"
            };
            TransportError::InvalidResponse {
                message: format!("{what}: {}", root_cause(err)),
            }
        }
        _ => TransportError::ConnectionLost {
            message: format!(
                "the connection was lost while reading the response: {}",
                root_cause(err)
            ),
        },
    }
}

/// An HTTP/1.1 client; its idle connections are kept in [`Pool`]s (one per runtime).
pub struct Transport {
    connector: Connector,
    max_idle_per_host: usize,
    read_timeout: Option<Duration>,
    /// HTTP/2 connections (the bidirectional operation).
    pub(super) h2: super::h2::H2Connections,
}

impl Transport {
    /// A transport for `config`.
    ///
    /// # Errors
    /// A message when the TLS configuration cannot be built (an unreadable CA bundle).
    pub fn new(config: &TransportConfig) -> Result<Self, String> {
        Ok(Self {
            connector: Connector::new(
                config.verify.clone(),
                &[b"http/1.1"],
                config.http_proxy.clone(),
                config.https_proxy.clone(),
                config.connect_timeout,
                config.tcp_keepalive,
            ),
            max_idle_per_host: config.max_idle_per_host,
            read_timeout: config.read_timeout,
            h2: super::h2::H2Connections::new(config),
        })
    }

    /// A new, empty pool for this transport's connections on one runtime.
    #[must_use]
    pub fn new_pool(&self) -> Pool {
        Pool::new(self.max_idle_per_host)
    }

    /// The `Host` header of a URI as HTTP clients send it: the port only when it is not the
    /// scheme's default (what botocore signs).
    #[must_use]
    pub fn host_header(uri: &Uri) -> Option<String> {
        let host = uri.host()?;
        let default = match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        Some(match uri.port_u16() {
            Some(port) if port != default => format!("{host}:{port}"),
            _ => host.to_owned(),
        })
    }

    /// Send `request` and wait for the response headers.
    ///
    /// A pooled connection that turns out closed before the request went out is replaced by a
    /// new one, transparently (nothing was sent). Every other failure is returned: the caller
    /// decides about retries.
    ///
    /// # Errors
    /// `Connect`, `ConnectionLost`, `ReadTimeout`, `Deadline`, `InvalidRequest`.
    pub async fn send(
        &self,
        pool: &Arc<Pool>,
        request: Request,
        deadline: Option<Deadline>,
    ) -> Result<Response, TransportError> {
        let work = self.send_unbounded(pool, request);
        match deadline {
            None => work.await,
            Some(d) => tokio::time::timeout_at(d.at, work)
                .await
                .unwrap_or_else(|_| Err(d.error())),
        }
    }

    async fn send_unbounded(
        &self,
        pool: &Arc<Pool>,
        request: Request,
    ) -> Result<Response, TransportError> {
        let key: Arc<str> = pool_key(&request.uri)?.into();
        let mut pending = Some(request);
        loop {
            let Some(request) = pending.take() else {
                return Err(TransportError::InvalidRequest {
                    message: "the request was lost before it was sent".to_owned(),
                });
            };
            let (mut sender, forward_proxy, fd, reused) = if let Some(idle) = pool.checkout(&key) {
                (
                    idle.sender,
                    self.forward_proxy_for(&request.uri),
                    idle.fd,
                    true,
                )
            } else {
                let connection = self.connector.connect(&request.uri).await?;
                let sender = handshake(connection.io, &request.uri).await?;
                (sender, connection.forward_proxy, connection.fd, false)
            };
            let http_request = build(request.clone(), forward_proxy.as_ref())?;
            let sent = bounded(
                sender.try_send_request(http_request),
                self.read_timeout,
                None,
            )
            .await?;
            match sent {
                Ok(response) => {
                    let (parts, incoming) = response.into_parts();
                    let chunked = parts
                        .headers
                        .get_all(http::header::TRANSFER_ENCODING)
                        .iter()
                        .any(|v| {
                            v.to_str()
                                .is_ok_and(|t| t.to_ascii_lowercase().contains("chunked"))
                        });
                    return Ok(Response {
                        status: parts.status,
                        headers: parts.headers,
                        body: ResponseBody {
                            incoming,
                            lease: Some(Lease {
                                pool: pool.clone(),
                                key,
                                sender,
                                fd,
                            }),
                            read_timeout: self.read_timeout,
                            chunked,
                            done: false,
                            last_data: Instant::now(),
                            idle_timer: None,
                            deadline_timer: None,
                        },
                    });
                }
                Err(mut failed) => {
                    if reused && failed.take_message().is_some() {
                        // The pooled connection closed before this request was written.
                        pending = Some(request);
                        continue;
                    }
                    return Err(TransportError::ConnectionLost {
                        message: format!(
                            "the connection to {} closed before a response: {}",
                            authority(&request.uri),
                            root_cause(failed.error())
                        ),
                    });
                }
            }
        }
    }

    fn forward_proxy_for(&self, uri: &Uri) -> Option<Proxy> {
        // Pooled connections were made with the same connector: the same proxy decision.
        if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            None
        } else {
            self.connector.http_proxy()
        }
    }
}

pub(super) fn pool_key(uri: &Uri) -> Result<String, TransportError> {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme @ ("http" | "https")), Some(authority)) => {
            Ok(format!("{scheme}://{authority}"))
        }
        _ => Err(TransportError::InvalidRequest {
            message: format!("not an http:// or https:// URL: {uri}"),
        }),
    }
}

async fn handshake(io: Box<dyn super::connect::Io>, uri: &Uri) -> Result<Sender, TransportError> {
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| TransportError::Connect {
            kind: super::error::ConnectKind::Unreachable,
            message: format!(
                "HTTP handshake with {} failed: {}",
                authority(uri),
                root_cause(&e)
            ),
        })?;
    tokio::spawn(async move {
        // Ends when the connection closes; its errors reach the request or body being read.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The hyper request: origin-form (or absolute-form through a forwarding proxy), `Host` and
/// `Content-Length` set as botocore sets them, no `Expect` (hyper does not wait for a `100`),
/// and, unsigned as botocore's `http.client` adds it, `Accept-Encoding: identity`: without
/// it any coding is acceptable (RFC 9110), and a proxy could compress what is read raw here.
fn build(
    request: Request,
    forward_proxy: Option<&Proxy>,
) -> Result<http::Request<Full<Bytes>>, TransportError> {
    let Request {
        method,
        uri,
        mut headers,
        body,
    } = request;
    if !headers.contains_key(HOST) {
        let host = Transport::host_header(&uri).ok_or_else(|| TransportError::InvalidRequest {
            message: format!("no host in {uri}"),
        })?;
        headers.insert(
            HOST,
            HeaderValue::from_str(&host).map_err(|e| TransportError::InvalidRequest {
                message: format!("invalid host {host:?}: {e}"),
            })?,
        );
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.remove(EXPECT);
    if !headers.contains_key(ACCEPT_ENCODING) {
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    let target: Uri = match forward_proxy {
        Some(proxy) => {
            if let Some(auth) = &proxy.authorization {
                headers.insert(PROXY_AUTHORIZATION, auth.clone());
            }
            uri
        }
        None => uri.path_and_query().map_or_else(
            || Uri::from_static("/"),
            |pq| Uri::try_from(pq.as_str()).unwrap_or_else(|_| Uri::from_static("/")),
        ),
    };
    let mut built = http::Request::new(Full::new(body));
    *built.method_mut() = method;
    *built.uri_mut() = target;
    *built.headers_mut() = headers;
    Ok(built)
}
