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
use pyo3::types::PyString;
use pyo3::PyTraverseError;

use crate::py_json::parse_line;
use crate::py_queue::{
    decoder_methods, Decoded, Decoder, Format, HeldError, PyQueue, SourceIter, Visit,
};
use crate::py_sse::PyServerSentEvent;
use crate::reassembly::{
    decode_strict, IncompleteEvent, LineEnding, LineSplitter, SseEvent, SseParser,
};

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

/// The queue of a text decoder.
type Items = PyQueue<Py<PyAny>>;

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

    /// Each line onto `queue`, as a `str`.
    fn emit<'a>(
        py: Python<'a>,
        replace: bool,
        queue: &'a mut Items,
    ) -> impl FnMut(&[u8], u64) -> Decoded + 'a {
        move |line, offset| {
            queue.push(decode_line(py, line, offset, replace)?.unbind());
            Ok(())
        }
    }
}

impl Format for Lines {
    type Item = Py<PyAny>;

    fn decode(&mut self, py: Python<'_>, data: &[u8], queue: &mut Items) -> Decoded {
        self.splitter
            .feed(data, Self::emit(py, self.replace, queue))
    }

    fn end(&mut self, py: Python<'_>, queue: &mut Items) -> Decoded {
        self.splitter.finish(Self::emit(py, self.replace, queue))
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

    /// Each event onto `queue`, as a `ServerSentEvent`.
    fn emit<'a>(py: Python<'a>, queue: &'a mut Items) -> impl FnMut(SseEvent) -> Decoded + 'a {
        move |event| {
            let event = Py::new(py, PyServerSentEvent::from(event))
                .map_err(|e| HeldError::from_py(py, e))?;
            queue.push(event.into_any());
            Ok(())
        }
    }
}

impl Format for Sse {
    type Item = Py<PyAny>;

    fn decode(&mut self, py: Python<'_>, data: &[u8], queue: &mut Items) -> Decoded {
        self.parser.feed(data, Self::emit(py, queue))
    }

    fn end(&mut self, py: Python<'_>, queue: &mut Items) -> Decoded {
        self.parser.finish(Self::emit(py, queue))
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

    /// Each non-blank line onto `queue`, as its value; `lines` counts them all.
    fn emit<'a>(
        py: Python<'a>,
        lines: &'a mut u64,
        queue: &'a mut Items,
    ) -> impl FnMut(&[u8], u64) -> Decoded + 'a {
        move |line, offset| {
            *lines += 1;
            if !is_blank(line) {
                queue.push(parse_line(py, line, offset, *lines)?.unbind());
            }
            Ok(())
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

impl Format for JsonLines {
    type Item = Py<PyAny>;

    fn decode(&mut self, py: Python<'_>, data: &[u8], queue: &mut Items) -> Decoded {
        self.splitter
            .feed(data, Self::emit(py, &mut self.lines, queue))
    }

    fn end(&mut self, py: Python<'_>, queue: &mut Items) -> Decoded {
        self.splitter.finish(Self::emit(py, &mut self.lines, queue))
    }
}

/// Incremental UTF-8 line decoder: `feed(bytes) -> list[str]`, `finish() -> list[str]`.
///
/// `\n` and `\r\n` end a line (also when split between parts); a lone `\r` is part of the line.
#[pyclass(name = "LineDecoder", module = "sagestream._core")]
pub struct PyLineDecoder {
    core: Decoder<Lines>,
}

decoder_methods! {
    PyLineDecoder, ends with "finish";
    feed {
        /// Feed one part; returns the lines it completes, terminators stripped.
    }
    finish {
        /// End of input: returns the last line if it had no line end; the decoder is then done.
    }
    {
        #[new]
        #[pyo3(signature = (*, max_line_bytes = 1_048_576, errors = "strict"))]
        fn new(max_line_bytes: usize, errors: &str) -> PyResult<Self> {
            Ok(Self {
                core: Decoder::new(Lines::new(max_line_bytes, errors)?),
            })
        }

        /// Bytes held for an unterminated line.
        #[getter]
        fn buffered(&self) -> usize {
            self.core.format.splitter.buffered()
        }
    }
}

/// Incremental Server-Sent Events decoder following the WHATWG HTML event stream rules.
#[pyclass(name = "SseDecoder", module = "sagestream._core")]
pub struct PySseDecoder {
    core: Decoder<Sse>,
}

decoder_methods! {
    PySseDecoder, ends with "finish";
    feed {
        /// Feed one part; returns the events it dispatches.
    }
    finish {
        /// End of input: dispatches an event left without its blank line (unless
        /// `discard_incomplete`); the decoder is then done.
    }
    {
        #[new]
        #[pyo3(signature = (*, max_event_bytes = 1_048_576, discard_incomplete = false))]
        fn new(max_event_bytes: usize, discard_incomplete: bool) -> PyResult<Self> {
            Ok(Self {
                core: Decoder::new(Sse::new(max_event_bytes, discard_incomplete)?),
            })
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
    }
}

/// Incremental JSON Lines decoder: every non-blank line is parsed with Python's `json` module.
#[pyclass(name = "JsonLinesDecoder", module = "sagestream._core")]
pub struct PyJsonLinesDecoder {
    core: Decoder<JsonLines>,
}

decoder_methods! {
    PyJsonLinesDecoder, ends with "finish";
    feed {
        /// Feed one part; returns the values of the lines it completes (blank lines skipped).
    }
    finish {
        /// End of input: parses a last line without line end; the decoder is then done.
    }
    {
        #[new]
        #[pyo3(signature = (*, max_line_bytes = 1_048_576))]
        fn new(max_line_bytes: usize) -> PyResult<Self> {
            Ok(Self {
                core: Decoder::new(JsonLines::new(max_line_bytes)?),
            })
        }
    }
}

/// The format behind a [`PyReassemblyIterator`].
enum AnyFormat {
    Lines(Lines),
    Sse(Sse),
    Json(JsonLines),
}

impl Format for AnyFormat {
    type Item = Py<PyAny>;

    fn decode(&mut self, py: Python<'_>, data: &[u8], queue: &mut Items) -> Decoded {
        match self {
            Self::Lines(f) => f.decode(py, data, queue),
            Self::Sse(f) => f.decode(py, data, queue),
            Self::Json(f) => f.decode(py, data, queue),
        }
    }

    fn end(&mut self, py: Python<'_>, queue: &mut Items) -> Decoded {
        match self {
            Self::Lines(f) => f.end(py, queue),
            Self::Sse(f) => f.end(py, queue),
            Self::Json(f) => f.end(py, queue),
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
    iter: SourceIter<AnyFormat>,
    /// The object given as source, if it has a `close()` method (a response stream), until it
    /// is closed.
    closer: Option<Py<PyAny>>,
}

impl PyReassemblyIterator {
    fn build(source: &Bound<'_, PyAny>, format: AnyFormat) -> PyResult<Self> {
        Ok(Self {
            iter: SourceIter::new(source, format, "payload parts")?,
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
