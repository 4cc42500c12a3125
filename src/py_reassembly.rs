//! Python classes over [`crate::reassembly`]: `LineDecoder`, `SseDecoder`, `JsonLinesDecoder`,
//! and `ReassemblyIterator` (the same decoding driven from a Rust `__next__` over an iterable of
//! parts, behind `sagestream.reassembly.iter_*`).
//!
//! Every decoder has `feed(bytes) -> list` and `finish() -> list`, built on
//! [`crate::py_queue`]: when a part holds complete items and then bad bytes, `feed` returns the
//! items and the error is raised by the next call, and by every call after it, so nothing
//! received before a failure is lost; after `finish` the decoder is done.

use pyo3::exceptions::PyValueError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use pyo3::PyTraverseError;

use crate::py_json::parse_line;
use crate::py_queue::{feed_list, finish_list, Feed, HeldError, PyQueue, SourceIter, Visit};
use crate::py_sse::PyServerSentEvent;
use crate::reassembly::{decode_strict, IncompleteEvent, LineEnding, LineSplitter, SseParser};

// The literal defaults below (1048576) equal `crate::reassembly::DEFAULT_MAX_LINE_BYTES` and
// `DEFAULT_MAX_LINE_BYTES` in `python/sagestream/reassembly.py`; literals keep them visible in
// the signatures Python sees.

fn parse_errors(errors: &str) -> PyResult<bool> {
    match errors {
        "strict" => Ok(false),
        "replace" => Ok(true),
        other => Err(PyValueError::new_err(format!(
            "errors must be 'strict' or 'replace', got {other:?}"
        ))),
    }
}

fn check_limit(name: &str, value: usize) -> PyResult<usize> {
    if value == 0 {
        return Err(PyValueError::new_err(format!("{name} must be at least 1")));
    }
    Ok(value)
}

/// Where a format puts each item it completes.
type Sink<'a, 'py> = &'a mut dyn FnMut(Bound<'py, PyAny>);

/// One text format over payload parts.
trait Format {
    /// Decode one part, handing every completed item to `sink`.
    fn feed_with<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        sink: Sink<'_, 'py>,
    ) -> Result<(), HeldError>;
    /// End of input.
    fn finish_with<'py>(&mut self, py: Python<'py>, sink: Sink<'_, 'py>) -> Result<(), HeldError>;
}

/// A format and the queue of its items: the decoder of every class here.
struct Reassembler<F> {
    format: F,
    queue: PyQueue<Py<PyAny>>,
}

impl<F> Reassembler<F> {
    fn new(format: F) -> Self {
        Self {
            format,
            queue: PyQueue::new(),
        }
    }
}

impl<F: Format> Feed for Reassembler<F> {
    type Item = Py<PyAny>;

    fn queue(&mut self) -> &mut PyQueue<Py<PyAny>> {
        &mut self.queue
    }

    fn queue_ref(&self) -> &PyQueue<Py<PyAny>> {
        &self.queue
    }

    fn feed(&mut self, py: Python<'_>, data: &[u8]) {
        if !self.queue_ref().is_open() {
            return;
        }
        let Self { format, queue } = self;
        if let Err(err) = format.feed_with(py, data, &mut |item| queue.push(item.unbind())) {
            queue.fail(err);
        }
    }

    fn finish(&mut self, py: Python<'_>) {
        if !self.queue_ref().is_open() {
            return;
        }
        let Self { format, queue } = self;
        match format.finish_with(py, &mut |item| queue.push(item.unbind())) {
            Ok(()) => queue.end(),
            Err(err) => queue.fail(err),
        }
    }
}

fn decode_line<'py>(
    py: Python<'py>,
    line: &[u8],
    offset: u64,
    replace: bool,
) -> Result<Bound<'py, PyAny>, HeldError> {
    let text = if replace {
        PyString::new(py, &String::from_utf8_lossy(line))
    } else {
        PyString::new(py, decode_strict(line, offset)?)
    };
    Ok(text.into_any())
}

/// Lines as `str`.
struct Lines {
    splitter: LineSplitter,
    replace: bool,
}

impl Lines {
    fn new(max_line_bytes: usize, errors: &str) -> PyResult<Self> {
        Ok(Self {
            splitter: LineSplitter::new(
                check_limit("max_line_bytes", max_line_bytes)?,
                LineEnding::Lf,
            ),
            replace: parse_errors(errors)?,
        })
    }
}

impl Format for Lines {
    fn feed_with<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        sink: Sink<'_, 'py>,
    ) -> Result<(), HeldError> {
        let replace = self.replace;
        self.splitter.feed(data, |line, offset| {
            sink(decode_line(py, line, offset, replace)?);
            Ok(())
        })
    }

    fn finish_with<'py>(&mut self, py: Python<'py>, sink: Sink<'_, 'py>) -> Result<(), HeldError> {
        let replace = self.replace;
        self.splitter.finish(|line, offset| {
            sink(decode_line(py, line, offset, replace)?);
            Ok(())
        })
    }
}

/// Server-Sent Events as `ServerSentEvent`.
struct Sse {
    parser: SseParser,
}

impl Sse {
    fn new(max_event_bytes: usize, discard_incomplete: bool) -> PyResult<Self> {
        let incomplete = if discard_incomplete {
            IncompleteEvent::Discard
        } else {
            IncompleteEvent::Dispatch
        };
        Ok(Self {
            parser: SseParser::new(check_limit("max_event_bytes", max_event_bytes)?, incomplete),
        })
    }
}

impl Format for Sse {
    fn feed_with<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        sink: Sink<'_, 'py>,
    ) -> Result<(), HeldError> {
        self.parser.feed(data, |event| {
            let event = Bound::new(py, PyServerSentEvent::from(event))
                .map_err(|e| HeldError::from_py(py, e))?;
            sink(event.into_any());
            Ok(())
        })
    }

    fn finish_with<'py>(&mut self, py: Python<'py>, sink: Sink<'_, 'py>) -> Result<(), HeldError> {
        self.parser.finish(|event| {
            let event = Bound::new(py, PyServerSentEvent::from(event))
                .map_err(|e| HeldError::from_py(py, e))?;
            sink(event.into_any());
            Ok(())
        })
    }
}

/// JSON Lines as Python values.
struct JsonLines {
    splitter: LineSplitter,
    /// Lines seen so far, blank ones included (for error messages).
    lines: u64,
}

impl JsonLines {
    fn new(max_line_bytes: usize) -> PyResult<Self> {
        Ok(Self {
            splitter: LineSplitter::new(
                check_limit("max_line_bytes", max_line_bytes)?,
                LineEnding::Lf,
            ),
            lines: 0,
        })
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

impl Format for JsonLines {
    fn feed_with<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        sink: Sink<'_, 'py>,
    ) -> Result<(), HeldError> {
        let lines = &mut self.lines;
        self.splitter.feed(data, |line, offset| {
            *lines += 1;
            if !is_blank(line) {
                sink(parse_line(py, line, offset, *lines)?);
            }
            Ok(())
        })
    }

    fn finish_with<'py>(&mut self, py: Python<'py>, sink: Sink<'_, 'py>) -> Result<(), HeldError> {
        let lines = &mut self.lines;
        self.splitter.finish(|line, offset| {
            *lines += 1;
            if !is_blank(line) {
                sink(parse_line(py, line, offset, *lines)?);
            }
            Ok(())
        })
    }
}

/// Incremental UTF-8 line decoder: `feed(bytes) -> list[str]`, `finish() -> list[str]`.
///
/// `\n` and `\r\n` end a line (also when split between parts); a lone `\r` is part of the line.
#[pyclass(name = "LineDecoder", module = "sagestream._core")]
pub struct PyLineDecoder {
    core: Reassembler<Lines>,
}

#[pymethods]
impl PyLineDecoder {
    #[new]
    #[pyo3(signature = (*, max_line_bytes = 1_048_576, errors = "strict"))]
    fn new(max_line_bytes: usize, errors: &str) -> PyResult<Self> {
        Ok(Self {
            core: Reassembler::new(Lines::new(max_line_bytes, errors)?),
        })
    }

    /// Feed one part; returns the lines it completes, terminators stripped.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        feed_list(&mut self.core, py, data, "finish")
    }

    /// End of input: returns the last line if it had no line end; the decoder is then done.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        finish_list(&mut self.core, py)
    }

    /// Bytes held for an unterminated line.
    #[getter]
    fn buffered(&self) -> usize {
        self.core.format.splitter.buffered()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.core.queue.visit(&visit)
    }

    fn __clear__(&mut self) {
        self.core.queue.close();
    }
}

/// Incremental Server-Sent Events decoder following the WHATWG HTML event stream rules.
#[pyclass(name = "SseDecoder", module = "sagestream._core")]
pub struct PySseDecoder {
    core: Reassembler<Sse>,
}

#[pymethods]
impl PySseDecoder {
    #[new]
    #[pyo3(signature = (*, max_event_bytes = 1_048_576, discard_incomplete = false))]
    fn new(max_event_bytes: usize, discard_incomplete: bool) -> PyResult<Self> {
        Ok(Self {
            core: Reassembler::new(Sse::new(max_event_bytes, discard_incomplete)?),
        })
    }

    /// Feed one part; returns the events it dispatches.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        feed_list(&mut self.core, py, data, "finish")
    }

    /// End of input: dispatches an event left without its blank line (unless
    /// `discard_incomplete`); the decoder is then done.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        finish_list(&mut self.core, py)
    }

    /// The last event ID seen so far (also from blocks that dispatched nothing), `None` if empty.
    #[getter]
    fn last_event_id(&self) -> Option<String> {
        let id = self.core.format.parser.last_event_id();
        (!id.is_empty()).then(|| id.to_owned())
    }

    /// The reconnection time last set by a valid `retry` field.
    #[getter]
    fn retry(&self) -> Option<u64> {
        self.core.format.parser.reconnection_time()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.core.queue.visit(&visit)
    }

    fn __clear__(&mut self) {
        self.core.queue.close();
    }
}

/// Incremental JSON Lines decoder: every non-blank line is parsed with Python's `json` module.
#[pyclass(name = "JsonLinesDecoder", module = "sagestream._core")]
pub struct PyJsonLinesDecoder {
    core: Reassembler<JsonLines>,
}

#[pymethods]
impl PyJsonLinesDecoder {
    #[new]
    #[pyo3(signature = (*, max_line_bytes = 1_048_576))]
    fn new(max_line_bytes: usize) -> PyResult<Self> {
        Ok(Self {
            core: Reassembler::new(JsonLines::new(max_line_bytes)?),
        })
    }

    /// Feed one part; returns the values of the lines it completes (blank lines skipped).
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        feed_list(&mut self.core, py, data, "finish")
    }

    /// End of input: parses a last line without line end; the decoder is then done.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        finish_list(&mut self.core, py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.core.queue.visit(&visit)
    }

    fn __clear__(&mut self) {
        self.core.queue.close();
    }
}

/// The format behind a [`PyReassemblyIterator`].
enum AnyFormat {
    Lines(Lines),
    Sse(Sse),
    Json(JsonLines),
}

impl Format for AnyFormat {
    fn feed_with<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        sink: Sink<'_, 'py>,
    ) -> Result<(), HeldError> {
        match self {
            Self::Lines(f) => f.feed_with(py, data, sink),
            Self::Sse(f) => f.feed_with(py, data, sink),
            Self::Json(f) => f.feed_with(py, data, sink),
        }
    }

    fn finish_with<'py>(&mut self, py: Python<'py>, sink: Sink<'_, 'py>) -> Result<(), HeldError> {
        match self {
            Self::Lines(f) => f.finish_with(py, sink),
            Self::Sse(f) => f.finish_with(py, sink),
            Self::Json(f) => f.finish_with(py, sink),
        }
    }
}

/// Iterator of lines, events or JSON values over an iterable of parts (`bytes`).
///
/// Reads the source only when no decoded item is waiting, so every item is yielded as soon as
/// the part that completes it arrives. Items before bad bytes are yielded, then the error is
/// raised (and again by every later call); exceptions from the source pass through and end the
/// iteration. When the iterator raises a reassembly error, or `close()` is called, it calls the
/// source's `close()` (if any), so a response stream releases its connection at once. Build it
/// with `lines`, `sse` or `json_lines`.
#[pyclass(name = "ReassemblyIterator", module = "sagestream._core")]
pub struct PyReassemblyIterator {
    iter: SourceIter<Reassembler<AnyFormat>>,
    /// The object given as source, if it has a `close()` method (a response stream), until it
    /// is closed.
    closer: Option<Py<PyAny>>,
}

impl PyReassemblyIterator {
    fn build(source: &Bound<'_, PyAny>, format: AnyFormat) -> PyResult<Self> {
        Ok(Self {
            iter: SourceIter::new(source, Reassembler::new(format), "payload parts")?,
            closer: source.hasattr("close")?.then(|| source.clone().unbind()),
        })
    }

    /// Call the source's `close()` once.
    fn close_source(&mut self, py: Python<'_>) -> PyResult<()> {
        match self.closer.take() {
            Some(obj) => obj.bind(py).call_method0("close").map(drop),
            None => Ok(()),
        }
    }
}

#[pymethods]
impl PyReassemblyIterator {
    /// Lines of the parts of `source` (see `LineDecoder`).
    #[staticmethod]
    #[pyo3(signature = (source, *, max_line_bytes = 1_048_576, errors = "strict"))]
    fn lines(source: &Bound<'_, PyAny>, max_line_bytes: usize, errors: &str) -> PyResult<Self> {
        Self::build(
            source,
            AnyFormat::Lines(Lines::new(max_line_bytes, errors)?),
        )
    }

    /// Server-Sent Events of the parts of `source` (see `SseDecoder`).
    #[staticmethod]
    #[pyo3(signature = (source, *, max_event_bytes = 1_048_576, discard_incomplete = false))]
    fn sse(
        source: &Bound<'_, PyAny>,
        max_event_bytes: usize,
        discard_incomplete: bool,
    ) -> PyResult<Self> {
        Self::build(
            source,
            AnyFormat::Sse(Sse::new(max_event_bytes, discard_incomplete)?),
        )
    }

    /// JSON values of the lines of the parts of `source` (see `JsonLinesDecoder`).
    #[staticmethod]
    #[pyo3(signature = (source, *, max_line_bytes = 1_048_576))]
    fn json_lines(source: &Bound<'_, PyAny>, max_line_bytes: usize) -> PyResult<Self> {
        Self::build(source, AnyFormat::Json(JsonLines::new(max_line_bytes)?))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.iter.next(py) {
            Err(err) if self.iter.failed() => {
                // The bytes can no longer be reassembled: release the source (its connection)
                // now rather than whenever it is garbage-collected.
                if let Err(close_err) = self.close_source(py) {
                    err.set_cause(py, Some(close_err));
                }
                Err(err)
            }
            other => other,
        }
    }

    /// Stop: drop anything decoded but not yet yielded and close the source (if it has a
    /// `close()` method).
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        self.iter.close();
        self.close_source(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.iter.visit(&visit)?;
        visit.call(&self.closer)
    }

    fn __clear__(&mut self) {
        self.iter.close();
        self.closer = None;
    }
}
