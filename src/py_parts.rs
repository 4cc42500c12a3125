//! The payload parts of a response stream as Python iterators: [`PyParts`] for threads
//! (waiting without the GIL), [`PyAsyncParts`] for `async for` (a [`PyHubAwaitable`] of the
//! stream's next part: one already there is returned without waiting at all, until the hub's
//! time slice is spent; then the task lets the loop run others once).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::{PyTraverseError, PyVisit};
use tokio::runtime::Runtime;

use crate::py_hub::PyHub;
use crate::py_wait::{block_on, wait_detached, Awaited, Driver, PyHubAwaitable};
use crate::py_watch::Watch;
use crate::sagemaker::{Label, PartMeta};
use crate::stream::{Metrics, Next, PartStream, Wake};

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
    /// Who is told of the parts (see `py_watch`).
    watch: Watch,
}

impl PyParts {
    /// Parts of `stream`, whose reader runs on `runtime` (None: the shared runtime); each made
    /// by `part_class` when there is one (see [`part_object`]).
    pub(crate) fn new(
        stream: Arc<PartStream>,
        runtime: Option<Arc<Runtime>>,
        part_class: Option<Py<PyAny>>,
    ) -> Self {
        Self {
            stream: Held(stream),
            runtime,
            readers: AtomicUsize::new(0),
            part_class,
            watch: Watch::default(),
        }
    }

    /// Wait for the next part without the GIL, driving the stream's runtime when it has one
    /// of its own (else the shared runtime's thread reads it, and this one waits to be told).
    fn wait(&self, py: Python<'_>) -> PyResult<Next> {
        let stream = &self.stream.0;
        match &self.runtime {
            Some(runtime) => block_on(py, Driver::Local(runtime), stream.next()),
            None => wait_detached(py, |bound| {
                Some(stream.wait_next(bound)).filter(|next| *next != Next::Pending)
            }),
        }
    }
}

#[pymethods]
impl PyParts {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let given = self.next_part(py);
        if self.watch.watching() {
            self.watch.gave(py, &self.stream.0, &given);
        }
        given
    }

    /// Stop reading and close the connection (idempotent).
    fn close(&self, py: Python<'_>) {
        py.detach(|| close_on(&self.stream.0, self.runtime.as_deref()));
        self.watch.end(py, &self.stream.0, None, true);
    }

    /// Have `watch` told of the parts: `first_part(at)`, `gaps([seconds, ...])` every `batch`
    /// parts (or `max_delay` seconds), `ended(stats, error, closed)` (see `py_watch`).
    #[pyo3(signature = (watch, batch = 64, max_delay = 1.0))]
    fn observe(&self, watch: Py<PyAny>, batch: usize, max_delay: f64) -> PyResult<()> {
        self.watch.observe(&self.stream.0, watch, batch, max_delay)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.watch.traverse(&visit)
    }

    /// True once the stream ended, failed, or was closed.
    #[getter]
    fn finished(&self) -> bool {
        self.stream.0.finished()
    }

    /// Counters and times.
    fn stats(&self) -> Metrics {
        self.stream.0.metrics()
    }
}

impl PyParts {
    /// The next part, None at the end.
    fn next_part(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
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
}

impl Drop for PyParts {
    fn drop(&mut self) {
        if !self.stream.0.finished() {
            close_on(&self.stream.0, self.runtime.as_deref());
        }
        self.watch.dropped(&self.stream.0);
    }
}

/// The next part of a stream, as a [`PyHubAwaitable`] awaits it.
struct NextPart {
    stream: Held,
    /// The class of parts with headers (see [`part_object`]); None: plain `bytes`.
    part_class: Option<Py<PyAny>>,
    /// Who is told of the parts (see `py_watch`), shared with the iterator.
    watch: Arc<Watch>,
}

impl Awaited for NextPart {
    fn take(&self, py: Python<'_>) -> Option<PyResult<Py<PyAny>>> {
        let stream = &self.stream.0;
        let given = match stream.try_next() {
            Next::Part(part, meta) => {
                part_object(py, self.part_class.as_ref(), &part, &meta).map(Some)
            }
            Next::End => Ok(None),
            Next::Failed(failure) => Err(failure.to_py_err(py)),
            Next::Pending => return None,
        };
        if self.watch.watching() {
            self.watch.gave(py, stream, &given);
        }
        Some(given.and_then(|part| part.ok_or_else(|| PyStopAsyncIteration::new_err(()))))
    }

    fn at_hand(&self) -> bool {
        self.stream.0.has_part()
    }

    fn wait(&self, waiter: Box<dyn Wake>) -> PyResult<Option<Box<dyn Wake>>> {
        self.stream
            .0
            .set_waiter(waiter)
            .map_err(|_| PyRuntimeError::new_err("another task is already reading this stream"))
    }

    fn urgent(&self) -> bool {
        // The first part is what the caller waits on: no coalescing for it.
        self.stream.0.metrics().parts == 0
    }

    fn cancel(&self) {
        self.stream.0.close();
    }

    fn thrown(&self, py: Python<'_>, error: &PyErr) {
        self.cancel();
        self.watch.end(py, &self.stream.0, Some(error), false);
    }

    fn closed(&self, py: Python<'_>) {
        self.cancel();
        self.watch.end(py, &self.stream.0, None, true);
    }
}

impl Drop for NextPart {
    fn drop(&mut self) {
        if self.watch.watching() && !self.stream.0.finished() {
            self.stream.0.close(); // before the watch is told (`Held` would close it after)
        }
        self.watch.dropped(&self.stream.0);
    }
}

/// Payload parts for `async for`. The object is its own awaitable (a [`PyHubAwaitable`] of
/// the next part): `__anext__` returns it.
#[pyclass(name = "AsyncPartIterator", module = "sagestream._core", extends = PyHubAwaitable, frozen)]
pub struct PyAsyncParts {
    stream: Arc<PartStream>,
    watch: Arc<Watch>,
}

impl PyAsyncParts {
    /// Parts of `stream` on `hub`'s loop; each made by `part_class` when there is one (see
    /// [`part_object`]).
    pub(crate) fn new(
        py: Python<'_>,
        stream: Arc<PartStream>,
        hub: Py<PyHub>,
        part_class: Option<Py<PyAny>>,
    ) -> PyResult<Py<Self>> {
        let watch = Arc::new(Watch::default());
        let next = NextPart {
            stream: Held(stream.clone()),
            part_class,
            watch: watch.clone(),
        };
        PyHubAwaitable::extended(py, hub, next, Self { stream, watch })
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

    /// Have `watch` told of the parts: `first_part(at)`, `gaps([seconds, ...])` every `batch`
    /// parts (or `max_delay` seconds), `ended(stats, error, closed)` (see `py_watch`).
    #[pyo3(signature = (watch, batch = 64, max_delay = 1.0))]
    fn observe(&self, watch: Py<PyAny>, batch: usize, max_delay: f64) -> PyResult<()> {
        self.watch.observe(&self.stream, watch, batch, max_delay)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.watch.traverse(&visit)
    }

    /// True once the stream ended, failed, or was closed.
    #[getter]
    fn finished(&self) -> bool {
        self.stream.finished()
    }

    /// Counters and times.
    fn stats(&self) -> Metrics {
        self.stream.metrics()
    }

    /// How many times this iterator let the loop run others with parts at hand (its slice
    /// spent).
    #[getter]
    fn yields(slf: &Bound<'_, Self>) -> u64 {
        slf.as_super().get().yields()
    }
}
