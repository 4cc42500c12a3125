//! The body of a response, read within botocore's read timeout and the call's deadline: part
//! by part (a response stream) or whole, up to a cap ([`ResponseBody::collect`]). Read to its
//! end, an HTTP/1.1 body gives its connection back to the pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::error::{io_kind, root_cause, TransportError};
use super::pool::{Idle, Pool};
use super::Deadline;

/// The most bytes of a successful answer read whole, unless the caller says otherwise:
/// `InvokeEndpoint`'s largest answer, 25 MB in the SageMaker documentation of real-time inference,
/// as 25 MiB. (`sagestream._caps.BODY_BYTES` must match.)
pub const MAX_BODY: usize = 25 * 1024 * 1024;
/// The most bytes of an error answer's body read, unless the caller says otherwise: the
/// service's error bodies are small JSON documents. (`sagestream._caps.ERROR_BODY_BYTES` must
/// match.)
pub const MAX_ERROR_BODY: usize = 1024 * 1024;

/// How long a connection that finished its response may take to be ready for the next one
/// before it is dropped instead of pooled.
const READY_GRACE: Duration = Duration::from_secs(1);

/// The connection a response came on: driven while its body is read, handed back to the pool
/// once the body was read to the end, closed if dropped before.
struct Lease {
    pool: Arc<Pool>,
    key: Arc<str>,
    connection: Idle,
}

impl Lease {
    async fn release(mut self) {
        let connection = &mut self.connection;
        let ready = std::future::poll_fn(|cx| {
            connection.driver.drive(cx);
            connection.sender.poll_ready(cx)
        });
        if let Ok(Ok(())) = tokio::time::timeout(READY_GRACE, ready).await {
            self.pool.checkin(self.key, self.connection);
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
    /// An HTTP/2 stream: its end must be an `END_STREAM` (see [`ResponseBody::ended`]).
    h2: bool,
    done: bool,
    /// When the reader last began to wait for bytes (the read timeout bounds each wait, as
    /// botocore's bounds each socket read), and one timer for the read timeout and one for the
    /// deadline, each armed once and moved on only when it fires: a stream of many small frames
    /// touches neither the timer wheel nor the clock per frame.
    waiting_since: Instant,
    idle_timer: Option<Pin<Box<Sleep>>>,
    deadline_timer: Option<Pin<Box<Sleep>>>,
}

impl ResponseBody {
    /// The body of a response on a pooled HTTP/1.1 connection (driven by the reader of the
    /// body), given back to `pool` under `key` once read to its end.
    #[must_use]
    pub(super) fn leased(
        incoming: Incoming,
        pool: Arc<Pool>,
        key: Arc<str>,
        connection: Idle,
        read_timeout: Option<Duration>,
        chunked: bool,
    ) -> Self {
        Self {
            incoming,
            lease: Some(Lease {
                pool,
                key,
                connection,
            }),
            read_timeout,
            chunked,
            h2: false,
            done: false,
            waiting_since: Instant::now(),
            idle_timer: None,
            deadline_timer: None,
        }
    }

    /// The body of a response on a connection no pool keeps (HTTP/2: the connection carries
    /// other streams and stays open by itself), read without a read timeout.
    #[must_use]
    pub fn detached(incoming: Incoming) -> Self {
        Self {
            incoming,
            lease: None,
            read_timeout: None,
            chunked: false,
            h2: true,
            done: false,
            waiting_since: Instant::now(),
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
        let polled = std::future::poll_fn(|cx| Poll::Ready(self.poll_frame(cx))).await;
        let frame = match (polled, wait) {
            (Poll::Ready(frame), _) => frame,
            (Poll::Pending, Wait::No) => return None,
            (Poll::Pending, Wait::Until(deadline)) => match self.wait_frame(deadline).await {
                Ok(frame) => frame,
                Err(err) => return Some(Err(err)),
            },
        };
        match frame {
            None => {
                self.done = true;
                if let Some(lease) = self.lease.take() {
                    lease.release().await;
                }
                Some(self.ended())
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

    /// The end of the body, as hyper reports it, checked: an HTTP/2 stream has ended only if
    /// its `END_STREAM` arrived. hyper also ends the body, without an error, when the peer
    /// resets the stream with `NO_ERROR` (RFC 9113 section 8.1 lets a server stop a request that
    /// way once its response is complete) or when a GOAWAY with `NO_ERROR` cuts the stream; h2
    /// tells the two apart (`RecvStream::is_end_stream` is true only after `END_STREAM`), and a
    /// stream cut before its end is a lost connection, or a truncation inside a frame.
    fn ended(&self) -> Result<Option<Bytes>, TransportError> {
        if self.h2 && !self.incoming.is_end_stream() {
            return Err(TransportError::ConnectionLost {
                message: "the HTTP/2 stream ended without its END_STREAM: the server reset it \
                          or went away (GOAWAY) before the answer was complete"
                    .to_owned(),
            });
        }
        Ok(None)
    }

    /// The next body frame if there is one now: hyper's, after letting the connection (when
    /// this body drives it) read what the socket holds. hyper's connection hands the body over
    /// one chunk at a time, waiting for each to be taken before it decodes the next: the loop
    /// takes them in turn, so the chunks of one socket read come out in one poll.
    fn poll_frame(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.incoming).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if let Some(lease) = self.lease.as_mut() {
            lease.connection.driver.drive(cx);
            return Pin::new(&mut self.incoming).poll_frame(cx);
        }
        Poll::Pending
    }

    /// Wait for the next body frame within the read timeout (counted from now: what was at hand
    /// was just taken) and `deadline`.
    async fn wait_frame(
        &mut self,
        deadline: Option<Deadline>,
    ) -> Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, TransportError> {
        let read_timeout = self.read_timeout;
        if read_timeout.is_some() {
            self.waiting_since = Instant::now();
        }
        if let (None, Some(d)) = (&self.deadline_timer, deadline) {
            self.deadline_timer = Some(Box::pin(tokio::time::sleep_until(d.at)));
        }
        if let (None, Some(limit)) = (&self.idle_timer, read_timeout) {
            self.idle_timer = Some(Box::pin(tokio::time::sleep_until(
                self.waiting_since + limit,
            )));
        }
        std::future::poll_fn(|cx| {
            if let Poll::Ready(frame) = self.poll_frame(cx) {
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
                    let due = self.waiting_since + limit;
                    if Instant::now() >= due {
                        return Poll::Ready(Err(TransportError::ReadTimeout {
                            seconds: limit.as_secs_f64(),
                        }));
                    }
                    // A later wait began since it was set: move it on, and look again.
                    timer.as_mut().reset(due);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// The whole body, at most `limit` bytes (`status`: the answer's, for the message). A body
    /// that declares more (Content-Length) is refused before any of it is read; one that sends
    /// more is refused as soon as it has; either way the connection is closed with the body.
    ///
    /// # Errors
    /// As [`ResponseBody::next_chunk`], and `BodyTooLarge`.
    pub async fn collect(
        mut self,
        limit: usize,
        status: u16,
        deadline: Option<Deadline>,
    ) -> Result<Bytes, TransportError> {
        let declared = self.incoming.size_hint().exact();
        let too_large = || TransportError::BodyTooLarge {
            limit,
            status,
            declared,
        };
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        // The pieces as hyper read them, copied once into one buffer at the end (a buffer grown
        // as they come would copy them at each doubling, and hold up to twice the cap).
        let mut pieces: Vec<Bytes> = Vec::new();
        let mut held = 0usize;
        while let Some(chunk) = self.next_chunk(deadline).await? {
            held = held.saturating_add(chunk.len());
            if held > limit {
                return Err(too_large());
            }
            pieces.push(chunk);
        }
        if pieces.len() <= 1 {
            return Ok(pieces.pop().unwrap_or_default());
        }
        let mut whole = Vec::with_capacity(held);
        for piece in pieces.drain(..) {
            whole.extend_from_slice(&piece);
        }
        Ok(Bytes::from(whole))
    }
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
