//! One response stream, pyo3-free: a reader task on the runtime ([`crate::pump`]) turns the
//! HTTP body into payload parts (frames split and checked, SageMaker events mapped) and queues
//! them; the consumer — a Python thread blocking, or an asyncio task woken through a hub —
//! takes them.
//!
//! The queue is bounded ([`HIGH_WATER`] bytes of payload): a consumer that falls behind stops
//! the reader, and so the socket, rather than growing memory. Every part queued before a
//! failure is handed out before the failure; the failure then comes on every later call.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::AbortHandle;

use crate::errors::{DecodeError, ServiceError};
use crate::runtime::monotonic;
use crate::sagemaker::PartMeta;
use crate::transport::TransportError;

/// The content type of an event stream (a response stream's answer, a bidirectional request's
/// body).
pub const EVENTSTREAM: &str = "application/vnd.amazon.eventstream";

/// Payload bytes queued before the reader waits for the consumer.
pub const HIGH_WATER: usize = 256 * 1024;

/// Wakes a consumer waiting for the stream (an asyncio future, through its hub).
pub trait Wake: Send {
    /// The stream has something for the consumer (a part, its end, or a failure).
    fn wake(self: Box<Self>);
}

/// Why a stream ended early, as data: the Python exception is made from it each time it is
/// raised, so nothing keeps an exception (and its traceback) alive.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Bad event stream bytes; `hint` names a response that was not an event stream at all.
    Decode {
        error: DecodeError,
        hint: Option<String>,
    },
    /// An error frame (`ModelStreamError`, `InternalStreamFailure`, an unmodeled error, ...).
    Service(ServiceError),
    /// The connection failed, timed out, or passed the deadline.
    Transport(TransportError),
    /// The service answered an error status instead of a stream (the bidirectional
    /// operation, whose answer arrives while its input is still being sent).
    Answer {
        status: u16,
        /// Lower-case names; repeated headers joined with `", "`.
        headers: Vec<(String, String)>,
        body: Bytes,
    },
}

/// What the consumer gets from one look at the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The next payload part, and its `DataType` / `CompletionState` (bidirectional streams).
    Part(Bytes, PartMeta),
    /// The stream ended cleanly (or was closed).
    End,
    /// The stream failed; every part before the failure was handed out already.
    Failed(Failure),
    /// Nothing yet.
    Pending,
}

/// A task waiting for the stream.
struct TaskWaker(Waker);

impl Wake for TaskWaker {
    fn wake(self: Box<Self>) {
        self.0.wake();
    }
}

/// Another consumer is already waiting on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Counters and times of one stream, in seconds on the `time.monotonic()` clock (to Python,
/// with the `python` feature: `sagestream._core.StreamStats`, these very fields).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(name = "StreamStats", module = "sagestream._core", frozen, get_all)
)]
pub struct Metrics {
    /// Parts handed out.
    pub parts: u64,
    /// Payload bytes handed out.
    pub bytes: u64,
    /// When the first part was handed out.
    pub first_part_at: Option<f64>,
    /// When the last part was handed out.
    pub last_part_at: Option<f64>,
    /// The longest wait between two parts.
    pub max_gap: f64,
    /// When the end (or the failure) was seen, or the stream closed.
    pub ended_at: Option<f64>,
}

impl Metrics {
    /// A part of `bytes` was handed out now; the time since the previous part (None for the
    /// first).
    pub fn record(&mut self, bytes: usize) -> Option<f64> {
        let now = monotonic();
        let gap = match self.last_part_at {
            None => {
                self.first_part_at = Some(now);
                None
            }
            Some(last) => {
                let gap = now - last;
                self.max_gap = self.max_gap.max(gap);
                Some(gap)
            }
        };
        self.last_part_at = Some(now);
        self.parts += 1;
        self.bytes += bytes as u64;
        gap
    }

    /// The stream ended now, unless it did before.
    pub fn end(&mut self) {
        if self.ended_at.is_none() {
            self.ended_at = Some(monotonic());
        }
    }
}

/// The gaps between parts of an observed stream (see [`PartStream::observe`]), kept until
/// they are reported: each one, in order, at most `batch` of them.
struct Gaps {
    pending: Vec<f64>,
    batch: usize,
    max_delay: f64,
    /// When the oldest pending gap was measured.
    since: f64,
    first_reported: bool,
}

/// What an observed stream has to report (see [`PartStream::report`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// When the first part was handed out, the first time it is reported.
    pub first_part_at: Option<f64>,
    /// The gaps between consecutive parts since the last report, in seconds, in order.
    pub gaps: Vec<f64>,
}

impl Report {
    /// Nothing to report.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.first_part_at.is_none() && self.gaps.is_empty()
    }
}

#[derive(Default)]
struct State {
    parts: VecDeque<(Bytes, PartMeta)>,
    queued: usize,
    /// Set once by the reader (or by `close`).
    end: Option<Result<(), Failure>>,
    waiter: Option<Box<dyn Wake>>,
    sync_waiting: bool,
    /// The reader, waiting for the consumer to make room.
    room: Option<Waker>,
    /// The consumer closed the stream.
    closed: bool,
    metrics: Metrics,
    /// The gaps kept for an observer (None: nobody observes, nothing is kept).
    gaps: Option<Gaps>,
}

/// The shared side of one stream.
#[derive(Default)]
pub struct PartStream {
    state: Mutex<State>,
    ready: Condvar,
    reader: Mutex<Option<AbortHandle>>,
    hint: Option<String>,
    /// Read each part's `DataType` / `CompletionState` headers.
    pub(crate) with_meta: bool,
}

impl PartStream {
    /// A stream whose decode errors carry `hint` (see [`Failure::Decode`]).
    #[must_use]
    pub fn new(hint: Option<String>) -> Self {
        Self {
            hint,
            ..Self::default()
        }
    }

    /// A stream whose parts carry their `DataType` / `CompletionState` headers.
    #[must_use]
    pub fn with_meta(hint: Option<String>) -> Self {
        Self {
            hint,
            with_meta: true,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remember the reader task, so that [`PartStream::close`] can stop it.
    pub fn set_reader(&self, handle: AbortHandle) {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        if self.lock().closed {
            // Closed before the reader started: stop it at once.
            handle.abort();
        }
        *reader = Some(handle);
    }

    // --- the reader's side ------------------------------------------------------------

    fn wake(&self, mut state: MutexGuard<'_, State>) {
        let waiter = state.waiter.take();
        let sync_waiting = state.sync_waiting;
        drop(state);
        if sync_waiting {
            self.ready.notify_all();
        }
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    /// Queue `parts` (one read's worth) and wake the consumer once. False when the consumer
    /// closed the stream.
    pub(crate) fn push(&self, parts: &mut Vec<(Bytes, PartMeta)>) -> bool {
        let mut state = self.lock();
        if state.end.is_some() {
            parts.clear();
            return false;
        }
        for part in parts.drain(..) {
            state.queued += part.0.len();
            state.parts.push_back(part);
        }
        self.wake(state);
        true
    }

    /// The stream is over: cleanly (`Ok`) or with a failure, after what was queued.
    pub(crate) fn finish(&self, result: Result<(), Failure>) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(result);
        }
        self.wake(state);
    }

    /// Wait until the consumer took enough to go below [`HIGH_WATER`] (or closed).
    pub(crate) async fn room(&self) {
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            if state.queued < HIGH_WATER || state.end.is_some() {
                state.room = None;
                std::task::Poll::Ready(())
            } else {
                state.room = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await;
    }

    // --- the consumer's side ----------------------------------------------------------

    fn take(state: &mut State) -> Next {
        if let Some((part, meta)) = state.parts.pop_front() {
            state.queued -= part.len();
            let gap = state.metrics.record(part.len());
            if let (Some(gaps), Some(gap)) = (state.gaps.as_mut(), gap) {
                if gaps.pending.is_empty() {
                    gaps.since = state.metrics.last_part_at.unwrap_or_default();
                }
                gaps.pending.push(gap);
            }
            if state.queued < HIGH_WATER {
                if let Some(room) = state.room.take() {
                    room.wake();
                }
            }
            return Next::Part(part, meta);
        }
        match &state.end {
            None => Next::Pending,
            Some(result) => {
                state.metrics.end();
                match result {
                    Ok(()) => Next::End,
                    Err(failure) => Next::Failed(failure.clone()),
                }
            }
        }
    }

    /// The next part, the end, the failure, or `Pending` — without waiting.
    pub fn try_next(&self) -> Next {
        let mut state = self.lock();
        Self::take(&mut state)
    }

    /// Whether a part is queued (a look that takes nothing).
    pub fn has_part(&self) -> bool {
        !self.lock().parts.is_empty()
    }

    /// Wait (blocking this thread) for the next part, the end or the failure, at most
    /// `timeout` (`Pending` after it).
    pub fn wait_next(&self, timeout: Option<Duration>) -> Next {
        let mut state = self.lock();
        loop {
            let next = Self::take(&mut state);
            if next != Next::Pending {
                return next;
            }
            state.sync_waiting = true;
            state = match timeout {
                None => self
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(limit) => {
                    let (state, result) = self
                        .ready
                        .wait_timeout(state, limit)
                        .unwrap_or_else(PoisonError::into_inner);
                    if result.timed_out() {
                        let mut state = state;
                        state.sync_waiting = false;
                        return Self::take(&mut state);
                    }
                    state
                }
            };
            state.sync_waiting = false;
        }
    }

    /// Wait for the stream with `waiter`; given back when the stream has something now (look
    /// again instead of waiting).
    ///
    /// # Errors
    /// When another consumer is waiting already (two tasks reading one stream).
    pub fn set_waiter(&self, waiter: Box<dyn Wake>) -> Result<Option<Box<dyn Wake>>, Busy> {
        let mut state = self.lock();
        if !state.parts.is_empty() || state.end.is_some() {
            return Ok(Some(waiter));
        }
        if state.waiter.is_some() {
            return Err(Busy);
        }
        state.waiter = Some(waiter);
        Ok(None)
    }

    /// Wait for the stream with `waiter`, replacing the one waiting now (the same consumer,
    /// looking again); given back when the stream has something now.
    fn replace_waiter(&self, waiter: Box<dyn Wake>) -> Option<Box<dyn Wake>> {
        let mut state = self.lock();
        if !state.parts.is_empty() || state.end.is_some() {
            return Some(waiter);
        }
        state.waiter = Some(waiter);
        None
    }

    /// The next part, the end or the failure: a future for a thread that drives the stream's
    /// runtime while it waits (one consumer at a time).
    pub async fn next(&self) -> Next {
        std::future::poll_fn(|cx| loop {
            let next = self.try_next();
            if next != Next::Pending {
                return std::task::Poll::Ready(next);
            }
            if self
                .replace_waiter(Box::new(TaskWaker(cx.waker().clone())))
                .is_none()
            {
                return std::task::Poll::Pending;
            }
        })
        .await
    }

    /// Drop the waiter (its task was cancelled).
    pub fn clear_waiter(&self) -> Option<Box<dyn Wake>> {
        self.lock().waiter.take()
    }

    /// Stop reading: the queued parts are dropped, the connection is closed, later calls see
    /// the end. Idempotent.
    pub fn close(&self) {
        let (waiter, sync_waiting) = {
            let mut state = self.lock();
            state.parts.clear();
            state.queued = 0;
            state.closed = true;
            if state.end.is_none() {
                state.end = Some(Ok(()));
            }
            state.metrics.end();
            if let Some(room) = state.room.take() {
                room.wake();
            }
            (state.waiter.take(), state.sync_waiting)
        };
        if sync_waiting {
            // Only a thread blocked in `wait_next` needs the condition variable: waking it
            // when nobody waits would still cost a system call.
            self.ready.notify_all();
        }
        if let Some(waiter) = waiter {
            // A consumer blocked in another thread (or task) sees the end at once.
            waiter.wake();
        }
        if let Some(reader) = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            reader.abort();
        }
    }

    /// True once the consumer saw the end (or a failure), or closed the stream.
    pub fn finished(&self) -> bool {
        let state = self.lock();
        state.parts.is_empty() && state.end.is_some()
    }

    /// How the stream ended, once it did (whatever parts are still queued).
    pub fn end(&self) -> Option<Result<(), Failure>> {
        self.lock().end.clone()
    }

    /// The stream's counters and times.
    pub fn metrics(&self) -> Metrics {
        self.lock().metrics
    }

    /// Keep the gap between each two parts from now on, for [`PartStream::report`]: at most
    /// `batch` (at least 1) of them are kept. Idempotent (the first call's limits stay).
    pub fn observe(&self, batch: usize, max_delay: f64) {
        let mut state = self.lock();
        if state.gaps.is_none() {
            state.gaps = Some(Gaps {
                pending: Vec::with_capacity(batch.clamp(1, 1024)),
                batch: batch.max(1),
                max_delay,
                since: 0.0,
                first_reported: false,
            });
        }
    }

    /// What an observed stream has to report: the time of its first part (once), and its
    /// gaps once `batch` of them are kept or the oldest was measured `max_delay` seconds
    /// before the last part — or all of them when `all`. None when there is nothing to
    /// report, or nobody observes.
    pub fn report(&self, all: bool) -> Option<Report> {
        let mut state = self.lock();
        let first_part_at = state.metrics.first_part_at;
        let last_part_at = state.metrics.last_part_at.unwrap_or_default();
        let gaps = state.gaps.as_mut()?;
        let mut report = Report::default();
        if !gaps.first_reported && first_part_at.is_some() {
            gaps.first_reported = true;
            report.first_part_at = first_part_at;
        }
        let due = gaps.pending.len() >= gaps.batch
            || (!gaps.pending.is_empty() && last_part_at - gaps.since >= gaps.max_delay);
        if all || due {
            report.gaps = std::mem::take(&mut gaps.pending);
            gaps.pending.reserve(gaps.batch.min(1024));
        }
        (!report.is_empty()).then_some(report)
    }

    /// A decode failure, with this stream's hint.
    pub(crate) fn decode_failure(&self, error: DecodeError) -> Failure {
        Failure::Decode {
            error,
            hint: self.hint.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn parts_before_the_failure_then_the_failure_sticks() {
        let stream = PartStream::new(None);
        let mut parts = vec![
            (Bytes::from_static(b"a"), PartMeta::default()),
            (Bytes::from_static(b"b"), PartMeta::default()),
        ];
        assert!(stream.push(&mut parts));
        let failure = Failure::Transport(TransportError::ConnectionLost {
            message: "gone".into(),
        });
        stream.finish(Err(failure.clone()));
        assert_eq!(
            stream.try_next(),
            Next::Part(Bytes::from_static(b"a"), PartMeta::default())
        );
        assert_eq!(
            stream.try_next(),
            Next::Part(Bytes::from_static(b"b"), PartMeta::default())
        );
        assert_eq!(stream.try_next(), Next::Failed(failure.clone()));
        assert_eq!(stream.try_next(), Next::Failed(failure));
        let m = stream.metrics();
        assert_eq!((m.parts, m.bytes), (2, 2));
        assert!(m.ended_at.is_some());
    }

    #[test]
    fn a_waiter_is_given_back_when_something_is_there() {
        struct Flag(Arc<Mutex<bool>>);
        impl Wake for Flag {
            fn wake(self: Box<Self>) {
                *self.0.lock().unwrap() = true;
            }
        }
        let stream = PartStream::new(None);
        let woken = Arc::new(Mutex::new(false));
        assert!(stream
            .set_waiter(Box::new(Flag(woken.clone())))
            .unwrap()
            .is_none());
        assert_eq!(
            stream.set_waiter(Box::new(Flag(woken.clone()))).err(),
            Some(Busy)
        );
        stream.push(&mut vec![(Bytes::from_static(b"x"), PartMeta::default())]);
        assert!(*woken.lock().unwrap());
        assert!(stream.set_waiter(Box::new(Flag(woken))).unwrap().is_some());
    }

    #[test]
    fn an_observed_stream_reports_its_first_part_then_every_gap_in_batches() {
        let stream = PartStream::new(None);
        let part = || (Bytes::from_static(b"x"), PartMeta::default());
        assert_eq!(
            stream.report(true),
            None,
            "nobody observes: nothing is kept"
        );
        stream.observe(2, f64::INFINITY);
        stream.push(&mut (0..5).map(|_| part()).collect());
        assert!(matches!(stream.try_next(), Next::Part(..)));
        let first = stream.report(false).expect("the first part");
        assert_eq!(first.first_part_at, stream.metrics().first_part_at);
        assert!(first.gaps.is_empty());
        assert!(matches!(stream.try_next(), Next::Part(..)));
        assert_eq!(stream.report(false), None, "one gap: not yet a batch");
        assert!(matches!(stream.try_next(), Next::Part(..)));
        let batch = stream.report(false).expect("two gaps");
        assert_eq!((batch.first_part_at, batch.gaps.len()), (None, 2));
        assert!(batch.gaps.iter().all(|gap| *gap >= 0.0));
        assert!(matches!(stream.try_next(), Next::Part(..)));
        assert_eq!(
            stream.report(true).map(|r| r.gaps.len()),
            Some(1),
            "the rest, at the end"
        );
        assert_eq!(stream.report(true), None);
    }

    #[test]
    fn an_observed_stream_reports_a_gap_once_it_is_max_delay_old() {
        let stream = PartStream::new(None);
        stream.observe(100, 0.0);
        let part = || (Bytes::from_static(b"x"), PartMeta::default());
        stream.push(&mut vec![part(), part()]);
        assert!(matches!(stream.try_next(), Next::Part(..)));
        assert!(matches!(stream.report(false), Some(r) if r.gaps.is_empty()));
        assert!(matches!(stream.try_next(), Next::Part(..)));
        assert_eq!(stream.report(false).map(|r| r.gaps.len()), Some(1));
    }

    #[test]
    fn close_drops_parts_and_ends() {
        let stream = PartStream::new(None);
        stream.push(&mut vec![(Bytes::from_static(b"x"), PartMeta::default())]);
        stream.close();
        assert_eq!(stream.try_next(), Next::End);
        assert!(!stream.push(&mut vec![(Bytes::from_static(b"y"), PartMeta::default())]));
        assert!(stream.finished());
    }

    #[test]
    fn wait_next_times_out_and_wakes() {
        let stream = Arc::new(PartStream::new(None));
        assert_eq!(
            stream.wait_next(Some(Duration::from_millis(5))),
            Next::Pending
        );
        let producer = stream.clone();
        let t = std::thread::spawn(move || {
            producer.push(&mut vec![(Bytes::from_static(b"z"), PartMeta::default())]);
        });
        assert_eq!(
            stream.wait_next(None),
            Next::Part(Bytes::from_static(b"z"), PartMeta::default())
        );
        t.join().unwrap();
    }
}
