//! The Python side of [`crate::sticky`]: the error a Python class holds and the fresh exception
//! it raises from it, the `feed`/`finish` methods and the iterator over a Python iterable of
//! reads that every decoder class shares, and the walk that shows the Python objects a class
//! holds to the garbage collector.
//!
//! Why both halves of the leak fix: an error of the core is held as a Rust value, so raising it
//! leaves nothing behind in the class; and a class that holds Python objects (its source, queued
//! items, an exception that came from Python code) reports them in `__traverse__`, so a cycle
//! through it (a source generator whose frame refers to the iterator, say) can be collected.

use pyo3::exceptions::{PyBaseException, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator, PyList};
use pyo3::PyTraverseError;

use crate::errors::{DecodeError, Error, ReassemblyError};
use crate::sticky::{Next, StickyQueue};

/// The error that ends a Python-facing stream, until it is raised.
pub(crate) enum HeldError {
    /// An error of the core: each raise makes a new exception from it.
    Core(Error),
    /// An exception raised by Python code the decoder called (a `MemoryError` while building an
    /// item, a read of the body stream), kept as the exception object and raised as it is.
    Python(Py<PyBaseException>),
}

impl HeldError {
    /// Hold `err`, an exception from Python code.
    pub(crate) fn from_py(py: Python<'_>, err: PyErr) -> Self {
        Self::Python(err.into_value(py))
    }

    /// The exception to raise for this error now.
    pub(crate) fn to_py_err(&self, py: Python<'_>) -> PyErr {
        match self {
            Self::Core(err) => err.to_py_err(py),
            Self::Python(exc) => PyErr::from_value(exc.bind(py).clone().into_any()),
        }
    }
}

impl From<Error> for HeldError {
    fn from(err: Error) -> Self {
        Self::Core(err)
    }
}

impl From<DecodeError> for HeldError {
    fn from(err: DecodeError) -> Self {
        Self::Core(err.into())
    }
}

impl From<ReassemblyError> for HeldError {
    fn from(err: ReassemblyError) -> Self {
        Self::Core(err.into())
    }
}

/// The queue of every Python-facing decoder.
pub(crate) type PyQueue<T> = StickyQueue<T, HeldError>;

/// Something that holds Python objects, for `__traverse__`.
pub(crate) trait Visit {
    /// Call `visit` on every Python object held.
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError>;
}

impl<T> Visit for Py<T> {
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(self)
    }
}

impl Visit for HeldError {
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Self::Core(_) => Ok(()),
            Self::Python(exc) => visit.call(exc),
        }
    }
}

impl<T: Visit> Visit for PyQueue<T> {
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for item in self.items() {
            item.visit(visit)?;
        }
        match self.error() {
            Some(err) => err.visit(visit),
            None => Ok(()),
        }
    }
}

/// What a decoder class decodes: reads in, items out onto a [`PyQueue`].
pub(crate) trait Format {
    /// What it hands out.
    type Item;
    /// Decode one read, putting the items it completes on `queue`.
    fn decode(&mut self, py: Python<'_>, data: &[u8], queue: &mut PyQueue<Self::Item>) -> Decoded;
    /// The input ended: put the items the end completes on `queue` (an error for a partial
    /// frame, say).
    fn end(&mut self, py: Python<'_>, queue: &mut PyQueue<Self::Item>) -> Decoded;
}

/// How a [`Format`] step went: an error ends the stream after the items before it.
pub(crate) type Decoded = Result<(), HeldError>;

/// A [`Format`] and the queue of its items: the core of every decoder class.
pub(crate) struct Decoder<F: Format> {
    /// What it decodes.
    pub(crate) format: F,
    /// Its items, then its end or error.
    pub(crate) queue: PyQueue<F::Item>,
}

impl<F: Format> Decoder<F> {
    pub(crate) fn new(format: F) -> Self {
        Self {
            format,
            queue: PyQueue::new(),
        }
    }

    /// Decode one read into the queue, failing it on an error. Does nothing once the queue is
    /// no longer open.
    pub(crate) fn feed(&mut self, py: Python<'_>, data: &[u8]) {
        if !self.queue.is_open() {
            return;
        }
        if let Err(err) = self.format.decode(py, data, &mut self.queue) {
            self.queue.fail(err);
        }
    }

    /// The input ended: end the queue, or fail it (a partial frame, say). Does nothing once the
    /// queue is no longer open.
    pub(crate) fn finish(&mut self, py: Python<'_>) {
        if !self.queue.is_open() {
            return;
        }
        match self.format.end(py, &mut self.queue) {
            Ok(()) => self.queue.end(),
            Err(err) => self.queue.fail(err),
        }
    }
}

/// The `#[pymethods]` of a decoder class whose field `core` is a [`Decoder`]: `feed` (whose
/// error after the end names `$end`), `finish` (the last items) or `close` (nothing), as the
/// class has them, each with the docs given, then the garbage collector's `__traverse__` and
/// `__clear__`, then the class's own methods.
macro_rules! decoder_methods {
    (
        $class:ident, ends with $end:literal;
        feed { $(#[$feed_doc:meta])* }
        $(finish { $(#[$finish_doc:meta])* })?
        $(close { $(#[$close_doc:meta])* })?
        { $($own:tt)* }
    ) => {
        #[pyo3::pymethods]
        impl $class {
            $(#[$feed_doc])*
            fn feed<'py>(
                &mut self,
                py: pyo3::Python<'py>,
                data: &[u8],
            ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::types::PyList>> {
                $crate::py_queue::feed_list(&mut self.core, py, data, $end)
            }

            $(
                $(#[$finish_doc])*
                fn finish<'py>(
                    &mut self,
                    py: pyo3::Python<'py>,
                ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::types::PyList>> {
                    $crate::py_queue::finish_list(&mut self.core, py)
                }
            )?

            $(
                $(#[$close_doc])*
                fn close(&mut self, py: pyo3::Python<'_>) -> pyo3::PyResult<()> {
                    $crate::py_queue::finish_list(&mut self.core, py).map(drop)
                }
            )?

            fn __traverse__(
                &self,
                visit: pyo3::gc::PyVisit<'_>,
            ) -> Result<(), pyo3::PyTraverseError> {
                $crate::py_queue::Visit::visit(&self.core.queue, &visit)
            }

            fn __clear__(&mut self) {
                self.core.queue.close();
            }

            $($own)*
        }
    };
}
pub(crate) use decoder_methods;

/// The items the queue holds as a list, or the held error when it holds none.
fn drain<'py, T>(py: Python<'py>, queue: &mut PyQueue<T>) -> PyResult<Bound<'py, PyList>>
where
    T: IntoPyObject<'py>,
{
    match queue.drain() {
        Ok(items) => PyList::new(py, items),
        Err(err) => Err(err.to_py_err(py)),
    }
}

/// `feed(data) -> list` of a decoder class: the items `data` completes. When `data` also holds
/// an error, the items come first and the error is raised by the next call (and every later
/// one). Feeding after the end (`end_method`, `finish` or `close`) is a `ValueError`.
pub(crate) fn feed_list<'py, F>(
    core: &mut Decoder<F>,
    py: Python<'py>,
    data: &[u8],
    end_method: &str,
) -> PyResult<Bound<'py, PyList>>
where
    F: Format,
    F::Item: IntoPyObject<'py>,
{
    if core.queue.is_open() {
        core.feed(py, data);
    } else if core.queue.error().is_none() && core.queue.is_empty() {
        return Err(PyValueError::new_err(format!(
            "feed() called after {end_method}()"
        )));
    }
    drain(py, &mut core.queue)
}

/// `finish() -> list` of a decoder class: end of input, the items it completes, or the error.
/// Later calls return nothing (or raise the error again).
pub(crate) fn finish_list<'py, F>(
    core: &mut Decoder<F>,
    py: Python<'py>,
) -> PyResult<Bound<'py, PyList>>
where
    F: Format,
    F::Item: IntoPyObject<'py>,
{
    core.finish(py);
    drain(py, &mut core.queue)
}

/// The next read of `source`: its bytes, or the error to raise (the source's own, or a
/// `TypeError` for a read that is not `bytes`, `what` naming the reads); `None` at its end.
pub(crate) fn next_read<'py>(
    source: &Bound<'py, PyIterator>,
    what: &str,
) -> Option<PyResult<Bound<'py, PyBytes>>> {
    let read = source.clone().next()?;
    Some(read.and_then(|read| {
        read.cast_into::<PyBytes>().map_err(|err| {
            PyTypeError::new_err(format!(
                "{what} must be bytes, got {}",
                err.into_inner().get_type()
            ))
        })
    }))
}

/// An iterator of the items a decoder makes of a Python iterable of `bytes` reads.
///
/// It reads the source only when nothing is queued, so each item is handed out as soon as the
/// read that completes it returns. After the items of a bad read, the error is raised, on that
/// call and every later one. An exception from the source, or a read that is not `bytes`, is
/// raised once and ends the iteration (the source is dropped).
pub(crate) struct SourceIter<F: Format> {
    source: Option<Py<PyIterator>>,
    /// The decoder.
    pub(crate) core: Decoder<F>,
    /// What a read is called in the error for one that is not `bytes`.
    what: &'static str,
}

impl<F: Format> SourceIter<F> {
    /// Iterate over `source`, decoding `format`; `what` names its reads in errors.
    pub(crate) fn new(source: &Bound<'_, PyAny>, format: F, what: &'static str) -> PyResult<Self> {
        Ok(Self {
            source: Some(source.try_iter()?.unbind()),
            core: Decoder::new(format),
            what,
        })
    }

    /// The next item; `None` once the iteration is over.
    pub(crate) fn next(&mut self, py: Python<'_>) -> PyResult<Option<F::Item>> {
        loop {
            match self.core.queue.pop() {
                Ok(Next::Item(item)) => return Ok(Some(item)),
                Ok(Next::End) => return Ok(None),
                Err(err) => return Err(err.to_py_err(py)),
                Ok(Next::NeedsInput) => {}
            }
            let Some(source) = &self.source else {
                self.core.queue.end();
                continue;
            };
            match next_read(source.bind(py), self.what) {
                Some(Ok(read)) => self.core.feed(py, read.as_bytes()),
                Some(Err(err)) => {
                    self.close();
                    return Err(err);
                }
                None => {
                    self.source = None;
                    self.core.finish(py);
                }
            }
        }
    }

    /// Whether the error being raised is the decoder's (not the source's).
    pub(crate) fn failed(&self) -> bool {
        self.core.queue.error().is_some()
    }

    /// Stop: drop the source, queued items and any error.
    pub(crate) fn close(&mut self) {
        self.source = None;
        self.core.queue.close();
    }
}

impl<F: Format> Visit for SourceIter<F>
where
    F::Item: Visit,
{
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.source)?;
        self.core.queue.visit(visit)
    }
}
