//! The payload parts of a response stream as Python iterators: [`PyParts`] for threads
//! (waiting without the GIL), [`PyAsyncParts`] for `async for` (waiting on an asyncio future
//! its hub resolves; a part that is already there is returned without waiting at all, until
//! the hub's time slice is spent: then the task lets the loop run others once).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyType};
use tokio::runtime::Runtime;

use crate::fair::Burst;
use crate::py_hub::PyHub;
use crate::sagemaker::{Label, PartMeta};
use crate::stream::{Metrics, Next, PartStream};

/// `threading.main_thread().ident`, once known (0: not yet).
static MAIN_THREAD: AtomicU64 = AtomicU64::new(0);

/// Whether this is the interpreter's main thread, the only one signals (Ctrl-C) reach.
pub(crate) fn on_main_thread(py: Python<'_>) -> bool {
    let mut main = MAIN_THREAD.load(Ordering::Relaxed);
    if main == 0 {
        main = py
            .import("threading")
            .and_then(|t| t.call_method0("main_thread"))
            .and_then(|t| t.getattr("ident"))
            .and_then(|i| i.extract::<u64>())
            .unwrap_or(u64::MAX);
        MAIN_THREAD.store(main, Ordering::Relaxed);
    }
    // SAFETY: a plain query of the calling thread's id; no arguments, no state.
    #[allow(clippy::useless_conversion)] // `c_ulong` is 32 bits on some platforms
    let this = u64::from(unsafe { pyo3::ffi::PyThread_get_thread_ident() });
    this == main
}

/// The exception `throw(typ, val)` asks for, as a generator's `throw` builds it.
pub(crate) fn thrown(
    py: Python<'_>,
    typ: &Bound<'_, PyAny>,
    val: Option<&Bound<'_, PyAny>>,
) -> PyErr {
    if let Some(val) = val.filter(|v| !v.is_none()) {
        return PyErr::from_value(val.clone());
    }
    if let Ok(cls) = typ.cast::<PyType>() {
        return match cls.call0() {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        };
    }
    let _ = py;
    PyErr::from_value(typ.clone())
}

/// Counters and times of one stream (seconds on the `time.monotonic()` clock).
#[pyclass(name = "StreamStats", module = "sagestream._core", frozen, get_all)]
pub struct PyStreamStats {
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

impl From<Metrics> for PyStreamStats {
    fn from(m: Metrics) -> Self {
        Self {
            parts: m.parts,
            bytes: m.bytes,
            first_part_at: m.first_part_at,
            last_part_at: m.last_part_at,
            max_gap: m.max_gap,
            ended_at: m.ended_at,
        }
    }
}

/// A part as Python sees it: `bytes`, or, for streams whose parts carry `DataType` /
/// `CompletionState`, `class(data, data_type, completion_state)` (a `bytes` subclass).
fn part_object(
    py: Python<'_>,
    class: Option<&Py<PyAny>>,
    part: &[u8],
    meta: &PartMeta,
) -> PyResult<Py<PyAny>> {
    let data = PyBytes::new(py, part);
    match class {
        None => Ok(data.into_any().unbind()),
        Some(class) => Ok(class
            .bind(py)
            .call1((
                data,
                meta.data_type.as_ref().map(Label::as_str),
                meta.completion_state.as_ref().map(Label::as_str),
            ))?
            .unbind()),
    }
}

/// What both iterators share: the stream, closed when the iterator goes.
struct Held(Arc<PartStream>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Close `stream`; on a per-thread runtime, also let its tasks run a few turns, so that the
/// aborted reader and its connection are dropped now (the socket closed) rather than the next
/// time a thread waits on that runtime.
fn close_on(stream: &PartStream, runtime: Option<&Runtime>) {
    stream.close();
    if let Some(runtime) = runtime {
        runtime.block_on(async {
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        });
    }
}

/// Payload parts for a thread: `next()` waits without the GIL.
#[pyclass(name = "PartIterator", module = "sagestream._core", frozen)]
pub struct PyParts {
    stream: Held,
    /// The per-thread runtime the stream's reader runs on: a waiting thread drives it.
    runtime: Option<Arc<Runtime>>,
    /// Threads inside `next()` now (one at a time may wait).
    readers: AtomicUsize,
    /// The class of parts with headers (see [`part_object`]); None: plain `bytes`.
    part_class: Option<Py<PyAny>>,
}

impl PyParts {
    pub(crate) fn new(stream: Arc<PartStream>, runtime: Option<Arc<Runtime>>) -> Self {
        Self {
            stream: Held(stream),
            runtime,
            readers: AtomicUsize::new(0),
            part_class: None,
        }
    }

    /// Parts made by `part_class` (see [`part_object`]).
    pub(crate) fn with_class(stream: Arc<PartStream>, part_class: Py<PyAny>) -> Self {
        let mut parts = Self::new(stream, None);
        parts.part_class = Some(part_class);
        parts
    }

    /// Wait for the next part without the GIL, driving the stream's runtime.
    fn wait(&self, py: Python<'_>) -> PyResult<Next> {
        let stream = &self.stream.0;
        let main = on_main_thread(py);
        loop {
            let next = py.detach(|| match &self.runtime {
                Some(runtime) if main => runtime.block_on(async {
                    tokio::time::timeout(Duration::from_millis(50), stream.next())
                        .await
                        .unwrap_or(Next::Pending)
                }),
                Some(runtime) => runtime.block_on(stream.next()),
                None if main => stream.wait_next(Some(Duration::from_millis(50))),
                None => stream.wait_next(None),
            });
            if next != Next::Pending {
                return Ok(next);
            }
            // Let Ctrl-C through (only the main thread waits in slices).
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl PyParts {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut next = self.stream.0.try_next();
        if next == Next::Pending {
            if self.readers.fetch_add(1, Ordering::AcqRel) > 0 {
                self.readers.fetch_sub(1, Ordering::AcqRel);
                return Err(PyRuntimeError::new_err(
                    "another thread is already reading this stream",
                ));
            }
            let waited = self.wait(py);
            self.readers.fetch_sub(1, Ordering::AcqRel);
            next = waited?;
        }
        match next {
            Next::Part(part, meta) => {
                part_object(py, self.part_class.as_ref(), &part, &meta).map(Some)
            }
            Next::End | Next::Pending => Ok(None),
            Next::Failed(failure) => Err(failure.to_py_err(py)),
        }
    }

    /// Stop reading and close the connection (idempotent).
    fn close(&self, py: Python<'_>) {
        py.detach(|| close_on(&self.stream.0, self.runtime.as_deref()));
    }

    /// True once the stream ended, failed, or was closed.
    #[getter]
    fn finished(&self) -> bool {
        self.stream.0.finished()
    }

    /// Counters and times.
    fn stats(&self) -> PyStreamStats {
        self.stream.0.metrics().into()
    }
}

impl Drop for PyParts {
    fn drop(&mut self) {
        if !self.stream.0.finished() {
            close_on(&self.stream.0, self.runtime.as_deref());
        }
    }
}

/// Payload parts for `async for`. The object is its own awaitable: `__anext__` returns it,
/// and each step either returns a part at once or yields an asyncio future to its task: one
/// its hub resolves when a part arrives (nothing at hand), or — once the hub's slice of parts
/// handed out without suspending is spent — one the loop resolves on its next turn
/// ([`PyHub::next_turn`]), so that one stream read back to back does not hold the loop.
#[pyclass(name = "AsyncPartIterator", module = "sagestream._core", frozen)]
pub struct PyAsyncParts {
    stream: Held,
    hub: Py<PyHub>,
    /// The class of parts with headers (see [`part_object`]); None: plain `bytes`.
    part_class: Option<Py<PyAny>>,
    /// Parts handed out since the task last suspended.
    burst: Burst,
}

impl PyAsyncParts {
    pub(crate) fn new(stream: Arc<PartStream>, hub: Py<PyHub>) -> Self {
        Self {
            stream: Held(stream),
            hub,
            part_class: None,
            burst: Burst::default(),
        }
    }

    /// Parts made by `part_class` (see [`part_object`]).
    pub(crate) fn with_class(
        stream: Arc<PartStream>,
        hub: Py<PyHub>,
        part_class: Py<PyAny>,
    ) -> Self {
        Self {
            part_class: Some(part_class),
            ..Self::new(stream, hub)
        }
    }
}

#[pymethods]
impl PyAsyncParts {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let stream = &self.stream.0;
        let hub = self.hub.get();
        loop {
            if self.burst.spent(hub.slice) && stream.has_part() {
                // Let the loop run everything else that is ready, then come back for it.
                let future = PyHub::next_turn(self.hub.bind(py))?;
                self.burst.yielded();
                return Ok(Some(future.unbind()));
            }
            match stream.try_next() {
                Next::Part(part, meta) => {
                    self.burst.delivered();
                    let part = part_object(py, self.part_class.as_ref(), &part, &meta)?;
                    return Err(PyStopIteration::new_err((part,)));
                }
                Next::End => return Err(PyStopAsyncIteration::new_err(())),
                Next::Failed(failure) => return Err(failure.to_py_err(py)),
                Next::Pending => {
                    let future = hub.new_future(py)?;
                    // The first part is what the caller waits on: no coalescing for it.
                    let urgent = stream.metrics().parts == 0;
                    match stream.set_waiter(Box::new(hub.waiter(&future, urgent))) {
                        Ok(None) => {
                            self.burst.suspended();
                            return Ok(Some(future.unbind()));
                        }
                        Ok(Some(_ready_now)) => {}
                        Err(_) => {
                            return Err(PyRuntimeError::new_err(
                                "another task is already reading this stream",
                            ))
                        }
                    }
                }
            }
        }
    }

    /// The task resumed with a value (the loop sends `None`): look again.
    #[pyo3(signature = (_value, /))]
    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.__next__(py)
    }

    /// The reading task is being cancelled (or thrown into): close the stream.
    #[pyo3(signature = (typ, val=None, _tb=None, /))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.stream.0.close();
        Err(thrown(py, typ, val))
    }

    /// Stop reading and close the connection (idempotent); also what closing the awaiting
    /// coroutine calls.
    fn close(&self) {
        self.stream.0.close();
    }

    /// True once the stream ended, failed, or was closed.
    #[getter]
    fn finished(&self) -> bool {
        self.stream.0.finished()
    }

    /// Counters and times.
    fn stats(&self) -> PyStreamStats {
        self.stream.0.metrics().into()
    }

    /// How many times this iterator let the loop run others with parts at hand (its slice
    /// spent).
    #[getter]
    fn yields(&self) -> u64 {
        self.burst.yields()
    }
}
