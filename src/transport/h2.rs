//! HTTP/2 on the same stack, for the one operation that needs it
//! (`InvokeEndpointWithBidirectionalStream`): hyper's `client::conn::http2` over the same
//! connector (TCP, proxy tunnel, rustls), ALPN `h2` for `https://`, prior knowledge for
//! cleartext `http://` (local test endpoints). Sessions to one `scheme://host:port` share its
//! connections, as HTTP/2 multiplexes, [`STREAMS_PER_CONNECTION`] at a time on each (a session
//! lasts as long as a conversation: one waiting for a free stream on a full connection could
//! wait for minutes, so another connection is opened instead); closed ones are dropped.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connect::{authority, connect_error, Connector};
use super::error::{root_cause, ConnectKind, TransportError};
use super::{pool_key, Deadline, TransportConfig};

/// A streamed request body (the signed input events).
pub type StreamBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

type Sender = SendRequest<StreamBody>;

/// The response of a request sent on an HTTP/2 connection, still to come.
pub type PendingResponse =
    Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, TransportError>> + Send>>;

/// How often an idle HTTP/2 connection is pinged, so that a dead peer is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Streams opened at once on one connection: 100, the least RFC 9113 (section 6.5.2) advises a
/// server to allow. (hyper does not tell the peer's own limit.)
pub const STREAMS_PER_CONNECTION: usize = 100;

/// One connection and the streams open on it now.
struct Connection {
    sender: Sender,
    open: Arc<AtomicUsize>,
}

/// A stream's place on its connection, given back when dropped (with the session).
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The HTTP/2 connections of one transport (on the shared runtime).
pub(crate) struct H2Connections {
    connector: Connector,
    /// The runtime generation the connections were made on (they die with a fork), and the
    /// connections per `scheme://host:port`.
    live: Mutex<(u64, HashMap<String, Vec<Connection>>)>,
}

impl H2Connections {
    pub(crate) fn new(config: &TransportConfig) -> Self {
        Self {
            connector: config.connector(&[b"h2"]),
            live: Mutex::new((0, HashMap::new())),
        }
    }

    /// An open connection to `key` with room for one more stream, the stream counted.
    fn cached(&self, key: &str, generation: u64) -> Option<(Sender, StreamSlot)> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live.0 != generation {
            // Made on a runtime that is gone (a forked child): never touch them again.
            let stale = std::mem::take(&mut live.1);
            std::mem::forget(stale);
            live.0 = generation;
        }
        let connections = live.1.get_mut(key)?;
        connections.retain(|c| !c.sender.is_closed());
        let free = connections
            .iter()
            .find(|c| c.open.load(Ordering::Acquire) < STREAMS_PER_CONNECTION)?;
        free.open.fetch_add(1, Ordering::AcqRel);
        Some((free.sender.clone(), StreamSlot(free.open.clone())))
    }

    async fn connect(
        &self,
        uri: &http::Uri,
        key: &str,
    ) -> Result<(Sender, StreamSlot), TransportError> {
        let connection = self.connector.connect(uri).await?;
        if connection.forward_proxy.is_some() {
            return Err(TransportError::InvalidRequest {
                message: format!(
                    "{} is an http:// endpoint and an http:// proxy is configured for it: \
                     HTTP/2 cannot go through a forwarding proxy (use https://)",
                    authority(uri)
                ),
            });
        }
        let (sender, conn) = Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEP_ALIVE)
            .handshake(connection.io)
            .await
            .map_err(|e| {
                connect_error(ConnectKind::Unreachable, &e, |cause| {
                    let uri = authority(uri);
                    format!("HTTP/2 handshake with {uri} failed: {cause} (does it speak HTTP/2?)")
                })
            })?;
        tokio::spawn(async move {
            // Ends when the connection closes; its errors reach the streams on it.
            let _ = conn.await;
        });
        let open = Arc::new(AtomicUsize::new(1));
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .entry(key.to_owned())
            .or_default()
            .push(Connection {
                sender: sender.clone(),
                open: open.clone(),
            });
        Ok((sender, StreamSlot(open)))
    }

    /// Send `request` on a connection to its URI: see `Transport::open_h2`.
    pub(crate) async fn open(
        &self,
        request: http::Request<StreamBody>,
        generation: u64,
        deadline: Option<Deadline>,
    ) -> Result<(PendingResponse, StreamSlot), TransportError> {
        Deadline::bound(deadline, self.open_unbounded(request, generation)).await
    }

    async fn open_unbounded(
        &self,
        request: http::Request<StreamBody>,
        generation: u64,
    ) -> Result<(PendingResponse, StreamSlot), TransportError> {
        let uri = request.uri().clone();
        let key = pool_key(&uri)?;
        let mut pending = Some(request);
        let mut reused = true;
        loop {
            let Some(request) = pending.take() else {
                return Err(TransportError::InvalidRequest {
                    message: "the request was lost before it was sent".to_owned(),
                });
            };
            let (mut sender, slot) = if let Some(cached) = self.cached(&key, generation) {
                cached
            } else {
                reused = false;
                self.connect(&uri, &key).await?
            };
            if sender.ready().await.is_err() {
                if reused {
                    reused = false;
                    pending = Some(request);
                    continue;
                }
                return Err(lost(
                    &uri,
                    "the connection closed before the request was sent",
                ));
            }
            let sent = sender.try_send_request(request);
            let uri_for_error = uri.clone();
            // The request is handed to the connection task at once; what is left is the wait
            // for its response, which the caller awaits while it streams the body.
            let pending: PendingResponse = Box::pin(async move {
                sent.await.map_err(|mut failed| {
                    let _ = failed.take_message();
                    lost(&uri_for_error, &root_cause(failed.error()))
                })
            });
            return Ok((pending, slot));
        }
    }
}

fn lost(uri: &http::Uri, why: &str) -> TransportError {
    TransportError::ConnectionLost {
        message: format!("the HTTP/2 connection to {} failed: {why}", authority(uri)),
    }
}
