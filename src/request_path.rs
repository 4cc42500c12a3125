//! One client's request path, pyo3-free: its signer, its transport, and the pools of idle
//! connections it keeps per runtime; and one request on it ([`RequestPath::perform`]) — signed,
//! sent, and answered with a body read whole (bounded) or a stream of parts that a reader task
//! on the runtime decodes. `sagestream._core.Transport` only converts the arguments and the
//! results, and waits.

use std::future::Future as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, Method, Uri};
use tokio::runtime::{Handle, Runtime};

use crate::pump::pump;
use crate::sign::{SignError, Signer};
use crate::stream::{PartStream, EVENTSTREAM};
use crate::transport::{Deadline, Pool, Request, Transport, TransportError};

/// What to do with the body of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read it whole.
    Whole,
    /// A 2xx body is an event stream to read part by part; any other is read whole.
    Stream,
}

/// One request, as the caller gave it.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub uri: Uri,
    /// Signed (when `sign`).
    pub headers: HeaderMap,
    /// Added after signing.
    pub after: HeaderMap,
    pub body: Bytes,
    pub sign: bool,
    pub mode: Mode,
    /// Seconds left of the call's deadline.
    pub deadline: Option<f64>,
    /// The call's deadline as it was set (named by the error; default: `deadline`).
    pub call_deadline: Option<f64>,
    /// The most bytes of a 2xx body read whole.
    pub limit: usize,
    /// The most bytes of an error answer's body.
    pub error_limit: usize,
}

/// What a request can end in before there is a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Failed {
    /// It was not sent, or no answer came.
    Transport(TransportError),
    /// It could not be signed.
    Sign(SignError),
}

/// A response: status, headers, and its body read whole or as a stream of parts (with the
/// per-thread runtime its reader runs on, for a blocking consumer to drive).
pub struct Outcome {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    pub stream: Option<Arc<PartStream>>,
    pub runtime: Option<Arc<Runtime>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The signer, the transport, and the pools of idle connections: one for the shared runtime
/// (asyncio calls), one per calling thread (blocking calls, on that thread's runtime).
pub struct RequestPath {
    signer: Signer,
    transport: Arc<Transport>,
    /// The shared runtime's generation (it changes after a fork) and its pool.
    live: Mutex<(u64, Arc<Pool>)>,
    /// Every per-thread pool, to close them all.
    thread_pools: Mutex<Vec<Weak<Pool>>>,
    id: u64,
    alive: Arc<()>,
}

/// The shared runtime and its generation, or why it cannot start.
///
/// # Errors
/// A message when the operating system refuses the runtime.
pub fn shared_runtime() -> Result<(Handle, u64), String> {
    crate::runtime::current().map_err(|e| format!("cannot start the I/O runtime: {e}"))
}

impl RequestPath {
    /// A request path signing with `signer` and sending on `transport`.
    #[must_use]
    pub fn new(signer: Signer, transport: Transport) -> Self {
        let generation = crate::runtime::generation().unwrap_or(0);
        let pool = Arc::new(transport.new_pool());
        Self {
            signer,
            transport: Arc::new(transport),
            live: Mutex::new((generation, pool)),
            thread_pools: Mutex::new(Vec::new()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(()),
        }
    }

    /// The signer (its region and signing name, its credentials).
    #[must_use]
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The transport.
    #[must_use]
    pub fn transport(&self) -> &Arc<Transport> {
        &self.transport
    }

    /// The shared runtime and its pool.
    ///
    /// # Errors
    /// When the runtime cannot start.
    pub fn shared_pool(&self) -> Result<(Handle, Arc<Pool>), String> {
        let (handle, generation) = shared_runtime()?;
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live.0 != generation {
            // A forked child: the parent's connections belong to threads that are gone.
            let stale = std::mem::replace(
                &mut *live,
                (generation, Arc::new(self.transport.new_pool())),
            );
            std::mem::forget(stale);
        }
        Ok((handle, live.1.clone()))
    }

    /// This thread's runtime and pool.
    ///
    /// # Errors
    /// When the runtime cannot start.
    pub fn local_pool(&self) -> Result<(Arc<Runtime>, Arc<Pool>), String> {
        let made = crate::runtime::local(|local| {
            let mut fresh = false;
            let pool = local.slot(self.id, &self.alive, || {
                fresh = true;
                self.transport.new_pool()
            });
            (local.runtime.clone(), pool, fresh)
        })
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
        let (runtime, pool, fresh) = made;
        let pool = pool.ok_or("the connection pool is gone")?;
        if fresh {
            let mut pools = self
                .thread_pools
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pools.retain(|p| p.strong_count() > 0);
            pools.push(Arc::downgrade(&pool));
        }
        Ok((runtime, pool))
    }

    /// Every pool: the shared runtime's and each thread's.
    #[must_use]
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self
            .thread_pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        pools.push(
            self.live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .1
                .clone(),
        );
        pools
    }

    /// Sign `spec` (when it says so), send it on `pool`, and read the answer as `spec.mode`
    /// says. A stream's reader decodes what is at hand at once, and goes on, if it must wait,
    /// as a task on the runtime this runs on; `runtime` is that runtime when it is a calling
    /// thread's own (a blocking consumer drives it).
    ///
    /// # Errors
    /// The request could not be signed, sent or answered, or its body read whole.
    pub async fn perform(
        self: Arc<Self>,
        pool: Arc<Pool>,
        runtime: Option<Arc<Runtime>>,
        spec: RequestSpec,
    ) -> Result<Outcome, Failed> {
        let RequestSpec {
            method,
            uri,
            mut headers,
            after,
            body,
            sign,
            mode,
            deadline,
            call_deadline,
            limit,
            error_limit,
        } = spec;
        let deadline = deadline.map(|left| Deadline::left_of(left, call_deadline.unwrap_or(left)));
        if sign {
            self.signer
                .sign_as_sent(&method, &uri, &mut headers, &body, SystemTime::now())
                .map_err(Failed::Sign)?;
        }
        for (name, value) in &after {
            headers.insert(name.clone(), value.clone());
        }
        let request = Request {
            method,
            uri,
            headers,
            body,
        };
        let response = self
            .transport
            .send(&pool, request, deadline)
            .await
            .map_err(Failed::Transport)?;
        let status = response.status.as_u16();
        if mode == Mode::Stream && response.status.is_success() {
            let stream = Arc::new(PartStream::new(stream_hint(&response.headers)));
            let mut reader = Box::pin(pump(stream.clone(), response.body, deadline));
            // Decode what is at hand before the reader becomes a task: a short answer often
            // came whole with its head, and its stream is then complete here, without the
            // task's allocation and scheduling, nor the wake-up (and, on a calling thread's
            // runtime, the extra look at the I/O driver) that handing each part over costs.
            // A reader that has to wait goes on as a task (which polls it again at once, so
            // its wake-ups go to that task from then on).
            let at_hand = std::future::poll_fn(|cx| Poll::Ready(reader.as_mut().poll(cx)));
            if at_hand.await.is_pending() {
                let reader = tokio::spawn(reader);
                stream.set_reader(reader.abort_handle());
            }
            return Ok(Outcome {
                status,
                headers: response.headers,
                body: None,
                stream: Some(stream),
                runtime,
            });
        }
        let cap = if response.status.is_success() {
            limit
        } else {
            error_limit
        };
        let body = response
            .body
            .collect(cap, status, deadline)
            .await
            .map_err(Failed::Transport)?;
        Ok(Outcome {
            status,
            headers: response.headers,
            body: Some(body),
            stream: None,
            runtime: None,
        })
    }
}

/// Why a 200 answer is not an event stream, when its headers already say so.
fn stream_hint(headers: &HeaderMap) -> Option<String> {
    if let Some(encoding) = headers.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return Some(format!(
                "the response is {encoding}-encoded (Content-Encoding: {encoding})"
            ));
        }
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(EVENTSTREAM) {
        None
    } else if essence.is_empty() {
        Some(format!(
            "the response has no Content-Type, not {EVENTSTREAM}"
        ))
    } else {
        Some(format!(
            "the response's Content-Type is {content_type}, not {EVENTSTREAM}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn a_stream_hint_names_what_the_answer_is_instead() {
        assert_eq!(
            stream_hint(&headers(&[(
                "content-type",
                "application/vnd.amazon.eventstream; charset=x"
            )])),
            None
        );
        assert_eq!(
            stream_hint(&headers(&[("content-type", "application/json")])).as_deref(),
            Some("the response's Content-Type is application/json, not application/vnd.amazon.eventstream")
        );
        assert_eq!(
            stream_hint(&HeaderMap::new()).as_deref(),
            Some("the response has no Content-Type, not application/vnd.amazon.eventstream")
        );
        assert_eq!(
            stream_hint(&headers(&[
                ("content-type", "application/vnd.amazon.eventstream"),
                ("content-encoding", "gzip")
            ]))
            .as_deref(),
            Some("the response is gzip-encoded (Content-Encoding: gzip)")
        );
    }
}
