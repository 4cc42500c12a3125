//! The watch of a part iterator: what an instrumentation (`sagestream.otel`) is told of a
//! stream's parts without a Python frame per part.
//!
//! `observe(watch)` on a part iterator makes its stream keep the gap between each two parts
//! (measured where the part is handed out, see [`PartStream::report`]); the iterator then calls
//! `watch.first_part(at)` at the first part, `watch.gaps([seconds, ...])` with every gap, in
//! order, in batches (every `batch` parts, or when the oldest kept one is `max_delay` seconds
//! old), and `watch.ended(stats, error, closed)` once, at the end, the failure, `close()` or
//! when the iterator is dropped unread. An iterator nobody observes pays one atomic load per
//! part. What the watch raises is reported as unraisable: it never breaks the stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3::{PyTraverseError, PyVisit};

use crate::stream::{PartStream, Report};

/// Gaps kept at most before they are reported, whatever the caller asks.
const MAX_BATCH: usize = 4096;

/// The watch of one part iterator (none until `observe()`), told of the end once.
#[derive(Default)]
pub(crate) struct Watch {
    watch: OnceLock<Py<PyAny>>,
    ended: AtomicBool,
}

impl Watch {
    /// Have `watch` told of `stream`'s parts (see the module's documentation).
    pub(crate) fn observe(
        &self,
        stream: &PartStream,
        watch: Py<PyAny>,
        batch: usize,
        max_delay: f64,
    ) -> PyResult<()> {
        if batch == 0 || batch > MAX_BATCH {
            return Err(PyValueError::new_err(format!(
                "batch must be 1 to {MAX_BATCH}, not {batch}"
            )));
        }
        if max_delay.is_nan() || max_delay < 0.0 {
            return Err(PyValueError::new_err(
                "max_delay must be a number of seconds ≥ 0",
            ));
        }
        self.watch
            .set(watch)
            .map_err(|_| PyRuntimeError::new_err("this stream is observed already"))?;
        stream.observe(batch, max_delay);
        Ok(())
    }

    /// Let Python's garbage collector see the watch (it may hold what holds the iterator: a
    /// session whose answer the watch asks for at the end).
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(watch) = self.watch.get() {
            visit.call(watch)?;
        }
        Ok(())
    }

    /// Whether a watch is set (the one look an unobserved iterator pays per part).
    #[inline]
    pub(crate) fn watching(&self) -> bool {
        self.watch.get().is_some()
    }

    /// What the iterator gave: a part (Some), the end (None) or a failure.
    pub(crate) fn gave<T>(&self, py: Python<'_>, stream: &PartStream, given: &PyResult<Option<T>>) {
        match given {
            Ok(Some(_)) => self.part(py, stream),
            Ok(None) => self.end(py, stream, None, false),
            Err(error) => self.end(py, stream, Some(error), false),
        }
    }

    /// A part was handed out: report what is due.
    pub(crate) fn part(&self, py: Python<'_>, stream: &PartStream) {
        if let Some(watch) = self.watch.get() {
            if let Some(report) = stream.report(false) {
                tell(py, watch, report);
            }
        }
    }

    /// The stream ended (`error`: with it; `closed`: its reader closed it first): report the
    /// rest, then the end (once).
    pub(crate) fn end(
        &self,
        py: Python<'_>,
        stream: &PartStream,
        error: Option<&PyErr>,
        closed: bool,
    ) {
        let Some(watch) = self.watch.get() else {
            return;
        };
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(report) = stream.report(true) {
            tell(py, watch, report);
        }
        let error = error.map(|e| e.value(py).clone());
        if let Err(err) = watch.call_method1(py, "ended", (stream.metrics(), error, closed)) {
            err.write_unraisable(py, Some(watch.bind(py)));
        }
    }

    /// The iterator is dropped: a stream not ended yet ends closed.
    pub(crate) fn dropped(&self, stream: &PartStream) {
        if self.watching() && !self.ended.load(Ordering::Acquire) {
            // None: the interpreter is finalizing, nobody is told any more.
            let _ = Python::try_attach(|py| self.end(py, stream, None, true));
        }
    }
}

/// Tell `watch` of `report`.
fn tell(py: Python<'_>, watch: &Py<PyAny>, report: Report) {
    let told = (|| -> PyResult<()> {
        if let Some(at) = report.first_part_at {
            watch.call_method1(py, "first_part", (at,))?;
        }
        if !report.gaps.is_empty() {
            watch.call_method1(py, "gaps", (PyList::new(py, report.gaps)?,))?;
        }
        Ok(())
    })();
    if let Err(err) = told {
        err.write_unraisable(py, Some(watch.bind(py)));
    }
}
