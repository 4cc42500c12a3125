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
use super::pool::{Open, Pool};
use super::socket_body::SocketBody;
use super::Deadline;

/// The most bytes of a successful answer read whole, unless the caller says otherwise:
/// `InvokeEndpoint`'s largest answer, 25 MB in the SageMaker documentation of real-time inference,
/// as 25 MiB. (`sagestream._caps.BODY_BYTES` must match.)
pub const MAX_BODY: usize = 25 * 1024 * 1024;
/// The most bytes of an error answer's body read, unless the caller says otherwise: the
/// service's error bodies are small JSON documents. (`sagestream._caps.ERROR_BODY_BYTES` must
/// match.)
pub const MAX_ERROR_BODY: usize = 1024 * 1024;

/// The connection a response came on: driven while its body is read, handed back to the pool
/// once the body was read to the end, closed if dropped before.
struct Lease {
    pool: Arc<Pool>,
    key: Arc<str>,
    connection: Open,
}

/// Whether [`ResponseBody::take`] may wait for data not at hand yet.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Until(Option<Deadline>),
}

/// Where a body's bytes come from.
enum Source {
    /// hyper's body: an HTTP/2 stream, or an HTTP/1.1 body hyper reads (one without a length or
    /// chunks, see [`super::socket_body::Framing::of`]), its connection then driven by this body's reader.
    Hyper {
        incoming: Incoming,
        lease: Option<Lease>,
        /// `Transfer-Encoding: chunked` (for the message of a framing error).
        chunked: bool,
        /// An HTTP/2 stream: its end must be an `END_STREAM` (see [`ResponseBody::ended`]).
        h2: bool,
    },
    /// An HTTP/1.1 body read from the socket.
    Socket(SocketBody),
    /// Read to its end, or failed: its connection was given back or closed.
    Spent,
}

/// The body of a response. Read to its end, it gives its connection back to the pool;
/// dropped before, it closes the connection (a half-read HTTP/1.1 response cannot be reused).
pub struct ResponseBody {
    source: Source,
    read_timeout: Option<Duration>,
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
    fn of(source: Source, read_timeout: Option<Duration>) -> Self {
        Self {
            source,
            read_timeout,
            done: false,
            waiting_since: Instant::now(),
            idle_timer: None,
            deadline_timer: None,
        }
    }

    /// The body of a response on a pooled HTTP/1.1 connection that hyper reads (driven by the
    /// reader of the body), given back to `pool` under `key` once read to its end.
    #[must_use]
    pub(super) fn leased(
        incoming: Incoming,
        pool: Arc<Pool>,
        key: Arc<str>,
        connection: Open,
        read_timeout: Option<Duration>,
        chunked: bool,
    ) -> Self {
        let lease = Some(Lease {
            pool,
            key,
            connection,
        });
        Self::of(
            Source::Hyper {
                incoming,
                lease,
                chunked,
                h2: false,
            },
            read_timeout,
        )
    }

    /// The body of an HTTP/1.1 response read from its socket.
    #[must_use]
    pub(super) fn socket(body: SocketBody, read_timeout: Option<Duration>) -> Self {
        Self::of(Source::Socket(body), read_timeout)
    }

    /// The body of a response on a connection no pool keeps (HTTP/2: the connection carries
    /// other streams and stays open by itself), read without a read timeout.
    #[must_use]
    pub fn detached(incoming: Incoming) -> Self {
        let source = Source::Hyper {
            incoming,
            lease: None,
            chunked: false,
            h2: true,
        };
        Self::of(source, None)
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

    /// The next piece of the body if it is at hand (`None`: nothing without waiting). A stream
    /// drains what one socket read brought this way, to hand it over in one batch.
    ///
    /// # Errors
    /// As [`ResponseBody::next_chunk`].
    pub async fn ready_chunk(&mut self) -> Option<Result<Option<Bytes>, TransportError>> {
        self.take(Wait::No).await
    }

    /// Some data: waiting for it (within the read timeout and the deadline) with
    /// [`Wait::Until`], else only if it is at hand. `None`: nothing yet, or a frame without data.
    async fn take(&mut self, wait: Wait) -> Option<Result<Option<Bytes>, TransportError>> {
        if self.done {
            return Some(Ok(None));
        }
        // Look first without a timer: most data of a busy stream is at hand already.
        let polled = std::future::poll_fn(|cx| Poll::Ready(self.poll_data(cx))).await;
        let data = match (polled, wait) {
            (Poll::Ready(data), _) => data,
            (Poll::Pending, Wait::No) => return None,
            (Poll::Pending, Wait::Until(deadline)) => match self.wait_data(deadline).await {
                Ok(data) => data,
                Err(err) => return Some(Err(err)),
            },
        };
        match data {
            None => {
                self.done = true;
                let ended = self.ended();
                match std::mem::replace(&mut self.source, Source::Spent) {
                    Source::Hyper {
                        lease: Some(lease), ..
                    } => lease.pool.give_back(lease.key, lease.connection).await,
                    Source::Socket(body) => body.release(),
                    Source::Hyper { .. } | Source::Spent => {}
                }
                Some(ended)
            }
            Some(Ok(data)) if data.is_empty() => None, // trailers, or an empty data frame
            Some(Ok(data)) => Some(Ok(Some(data))),
            Some(Err(err)) => {
                self.done = true;
                self.source = Source::Spent; // the connection is closed
                Some(Err(err))
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
        if let Source::Hyper {
            incoming, h2: true, ..
        } = &self.source
        {
            if !incoming.is_end_stream() {
                return Err(TransportError::ConnectionLost {
                    message: "the HTTP/2 stream ended without its END_STREAM: the server reset \
                              it or went away (GOAWAY) before the answer was complete"
                        .to_owned(),
                });
            }
        }
        Ok(None)
    }

    /// The body's next data if there is some now (empty: a frame without data; `None`: the
    /// end). From the socket, all a read brought; from hyper, one frame, after letting the
    /// connection (when this body drives it) read what the socket holds.
    fn poll_data(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Bytes, TransportError>>> {
        let (incoming, lease, chunked) = match &mut self.source {
            Source::Socket(body) => return body.poll_data(cx).map(Result::transpose),
            Source::Spent => return Poll::Ready(None),
            Source::Hyper {
                incoming,
                lease,
                chunked,
                ..
            } => (incoming, lease, *chunked),
        };
        let mut polled = Pin::new(&mut *incoming).poll_frame(cx);
        if let (Poll::Pending, Some(lease)) = (&polled, lease.as_mut()) {
            lease.connection.driver.drive(cx);
            polled = Pin::new(incoming).poll_frame(cx);
        }
        polled.map(|frame| {
            frame.map(|frame| match frame {
                Ok(frame) => Ok(frame.into_data().unwrap_or_default()),
                Err(err) => Err(body_error(&err, chunked)),
            })
        })
    }

    /// Wait for the body's next data within the read timeout (counted from now: what was at
    /// hand was just taken) and `deadline`.
    async fn wait_data(
        &mut self,
        deadline: Option<Deadline>,
    ) -> Result<Option<Result<Bytes, TransportError>>, TransportError> {
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
            if let Poll::Ready(data) = self.poll_data(cx) {
                return Poll::Ready(Ok(data));
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
        let declared = match &self.source {
            Source::Hyper { incoming, .. } => incoming.size_hint().exact(),
            Source::Socket(body) => body.declared(),
            Source::Spent => None,
        };
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
