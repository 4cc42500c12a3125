//! Python classes over [`crate::reassembly`]: `LineDecoder`, `SseDecoder`, `JsonLinesDecoder`,
//! the frozen `ServerSentEvent`, and `ReassemblyIterator` (the same decoding driven from a Rust
//! `__next__` over an iterable of parts, behind `sagestream.reassembly.iter_*`).
//!
//! Every decoder has `feed(bytes) -> list` and `finish() -> list`. When a part holds complete
//! items and then bad bytes, `feed` returns the items and the error is raised by the next call
//! (`feed` or `finish`), so nothing received before a failure is lost. After an error every call
//! raises it again; after `finish` the decoder is done.

use std::collections::VecDeque;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyIterator, PyList, PyString, PyTuple};

use crate::reassembly::{
    decode_strict, IncompleteEvent, LineEnding, LineSplitter, ReassemblyError as CoreError,
    SseEvent, SseParser,
};

// The literal defaults below (1048576) equal `crate::reassembly::DEFAULT_MAX_LINE_BYTES` and
// `DEFAULT_MAX_LINE_BYTES` in `python/sagestream/reassembly.py`; literals keep them visible in
// the signatures Python sees.

// These names must match the classes in `python/sagestream/exceptions.py`.
mod exc {
    pyo3::import_exception!(sagestream.exceptions, ReassemblyError);
    pyo3::import_exception!(sagestream.exceptions, LineTooLongError);
}
use exc::{LineTooLongError, ReassemblyError as PyReassemblyError};

/// Set an attribute on a freshly built exception; failing to is not worth hiding the error.
fn with_attr(py: Python<'_>, err: PyErr, name: &str, value: u64) -> PyErr {
    // Setting an attribute on a new exception instance cannot fail in practice; if it does,
    // the exception is still the right one.
    let _ = err.value(py).setattr(name, value);
    err
}

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> PyErr {
        let msg = err.to_string();
        Python::attach(|py| match err {
            CoreError::TooLong { limit, offset, .. } => {
                let e = with_attr(py, LineTooLongError::new_err(msg), "offset", offset);
                with_attr(py, e, "limit", limit as u64)
            }
            CoreError::InvalidUtf8 { offset } => {
                with_attr(py, PyReassemblyError::new_err(msg), "offset", offset)
            }
        })
    }
}

static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static JSON_SCAN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn json_loads(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    JSON_LOADS
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("json")?.getattr("loads")?.unbind())
        })
        .map(|f| f.bind(py))
}

/// `json._default_decoder.scan_once`: the C scanner behind `json.loads`, without the
/// two Python-level frames and regular expressions `json.loads` adds around it.
fn json_scan_once(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    JSON_SCAN
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("json")?
                    .getattr("_default_decoder")?
                    .getattr("scan_once")?
                    .unbind(),
            )
        })
        .map(|f| f.bind(py))
}

/// The error bookkeeping shared by the decoders.
#[derive(Default)]
struct ErrorState {
    /// Raised by the next call (items before it were returned).
    pending: Option<PyErr>,
    /// Already raised; raised again by every later call.
    failed: Option<PyErr>,
    finished: bool,
}

impl ErrorState {
    /// At the start of a call: raise a pending or earlier error.
    fn check(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(err) = self.pending.take() {
            self.failed = Some(err.clone_ref(py));
            return Err(err);
        }
        if let Some(err) = &self.failed {
            return Err(err.clone_ref(py));
        }
        Ok(())
    }

    fn check_feed(&mut self, py: Python<'_>) -> PyResult<()> {
        self.check(py)?;
        if self.finished {
            return Err(PyValueError::new_err("feed() called after finish()"));
        }
        Ok(())
    }

    /// At the end of a call: return the items, keeping an error for the next call if there are
    /// any, else raise it now.
    fn settle<'py>(
        &mut self,
        py: Python<'py>,
        items: Bound<'py, PyList>,
        result: PyResult<()>,
    ) -> PyResult<Bound<'py, PyList>> {
        match result {
            Ok(()) => Ok(items),
            Err(err) if items.is_empty() => {
                self.failed = Some(err.clone_ref(py));
                Err(err)
            }
            Err(err) => {
                self.pending = Some(err);
                Ok(items)
            }
        }
    }
}

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

fn decode_line<'py>(
    py: Python<'py>,
    line: &[u8],
    offset: u64,
    replace: bool,
) -> PyResult<Bound<'py, PyString>> {
    if replace {
        Ok(PyString::new(py, &String::from_utf8_lossy(line)))
    } else {
        Ok(PyString::new(py, decode_strict(line, offset)?))
    }
}

/// Where a decoder puts each item it completes.
type Sink<'a, 'py> = &'a mut dyn FnMut(Bound<'py, PyAny>) -> PyResult<()>;

/// The decoding shared by the `feed`/`finish` classes and [`PyReassemblyIterator`].
trait Reassemble {
    /// Decode one part, handing every completed item to `sink`.
    fn feed_with<'py>(&mut self, py: Python<'py>, data: &[u8], sink: Sink<'_, 'py>)
        -> PyResult<()>;
    /// End of input.
    fn finish_with<'py>(&mut self, py: Python<'py>, sink: Sink<'_, 'py>) -> PyResult<()>;
}

/// `feed` of the decoder classes: items as a list, an error after items kept for the next call.
fn feed_list<'py>(
    core: &mut impl Reassemble,
    state: &mut ErrorState,
    py: Python<'py>,
    data: &[u8],
) -> PyResult<Bound<'py, PyList>> {
    state.check_feed(py)?;
    let out = PyList::empty(py);
    let result = core.feed_with(py, data, &mut |item| out.append(item));
    state.settle(py, out, result)
}

/// `finish` of the decoder classes.
fn finish_list<'py>(
    core: &mut impl Reassemble,
    state: &mut ErrorState,
    py: Python<'py>,
) -> PyResult<Bound<'py, PyList>> {
    state.check(py)?;
    state.finished = true;
    let out = PyList::empty(py);
    let result = core.finish_with(py, &mut |item| out.append(item));
    state.settle(py, out, result)
}

/// Lines as `str`.
struct LinesCore {
    splitter: LineSplitter,
    replace: bool,
}

impl LinesCore {
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

impl Reassemble for LinesCore {
    fn feed_with<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        sink: Sink<'_, 'py>,
    ) -> PyResult<()> {
        let replace = self.replace;
        self.splitter.feed(data, |line, offset| -> PyResult<()> {
            sink(decode_line(py, line, offset, replace)?.into_any())
        })
    }

    fn finish_with<'py>(&mut self, py: Python<'py>, sink: Sink<'_, 'py>) -> PyResult<()> {
        let replace = self.replace;
        self.splitter.finish(|line, offset| -> PyResult<()> {
            sink(decode_line(py, line, offset, replace)?.into_any())
        })
    }
}

/// Incremental UTF-8 line decoder: `feed(bytes) -> list[str]`, `finish() -> list[str]`.
///
/// `\n` and `\r\n` end a line (also when split between parts); a lone `\r` is part of the line.
#[pyclass(name = "LineDecoder", module = "sagestream._core")]
pub struct PyLineDecoder {
    core: LinesCore,
    state: ErrorState,
}

#[pymethods]
impl PyLineDecoder {
    #[new]
    #[pyo3(signature = (*, max_line_bytes = 1_048_576, errors = "strict"))]
    fn new(max_line_bytes: usize, errors: &str) -> PyResult<Self> {
        Ok(Self {
            core: LinesCore::new(max_line_bytes, errors)?,
            state: ErrorState::default(),
        })
    }

    /// Feed one part; returns the lines it completes, terminators stripped.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        feed_list(&mut self.core, &mut self.state, py, data)
    }

    /// End of input: returns the last line if it had no line end; the decoder is then done.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        finish_list(&mut self.core, &mut self.state, py)
    }

    /// Bytes held for an unterminated line.
    #[getter]
    fn buffered(&self) -> usize {
        self.core.splitter.buffered()
    }
}

/// One Server-Sent Event (immutable).
#[pyclass(
    name = "ServerSentEvent",
    module = "sagestream._core",
    frozen,
    eq,
    hash
)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyServerSentEvent {
    /// The event type (`"message"` unless an `event` field set it).
    #[pyo3(get)]
    event: String,
    /// The `data` fields joined with `\n`.
    #[pyo3(get)]
    data: String,
    /// The last event ID, `None` if empty.
    #[pyo3(get)]
    id: Option<String>,
    /// The reconnection time from a `retry` field of this event's block.
    #[pyo3(get)]
    retry: Option<u64>,
}

impl From<SseEvent> for PyServerSentEvent {
    fn from(e: SseEvent) -> Self {
        Self {
            event: e.event,
            data: e.data,
            id: e.id,
            retry: e.retry,
        }
    }
}

#[pymethods]
impl PyServerSentEvent {
    #[new]
    #[pyo3(signature = (data = "", event = "message", id = None, retry = None))]
    fn new(data: &str, event: &str, id: Option<String>, retry: Option<u64>) -> Self {
        Self {
            event: event.to_owned(),
            data: data.to_owned(),
            id,
            retry,
        }
    }

    /// `data` parsed as JSON: the value `json.loads(data)` gives (through the same fast path as
    /// JSON lines), and `json.JSONDecodeError` from `json.loads` when it is not JSON.
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.data.as_bytes();
        if json_fast::agrees_with_python(text) {
            if let Ok(value) = json_fast::loads(py, text) {
                return Ok(value);
            }
        }
        json_loads(py)?.call1((self.data.as_str(),))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let repr = |s: &str| -> PyResult<String> { Ok(PyString::new(py, s).repr()?.to_string()) };
        Ok(format!(
            "ServerSentEvent(event={}, data={}, id={}, retry={})",
            repr(&self.event)?,
            repr(&self.data)?,
            match &self.id {
                Some(id) => repr(id)?,
                None => "None".to_owned(),
            },
            match self.retry {
                Some(r) => r.to_string(),
                None => "None".to_owned(),
            },
        ))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        let args =
            (me.data.clone(), me.event.clone(), me.id.clone(), me.retry).into_pyobject(py)?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }
}

/// Server-Sent Events as `ServerSentEvent`.
struct SseCore {
    parser: SseParser,
}

impl SseCore {
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

impl Reassemble for SseCore {
    fn feed_with<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        sink: Sink<'_, 'py>,
    ) -> PyResult<()> {
        self.parser.feed(data, |event| -> PyResult<()> {
            sink(Bound::new(py, PyServerSentEvent::from(event))?.into_any())
        })
    }

    fn finish_with<'py>(&mut self, py: Python<'py>, sink: Sink<'_, 'py>) -> PyResult<()> {
        self.parser.finish(|event| -> PyResult<()> {
            sink(Bound::new(py, PyServerSentEvent::from(event))?.into_any())
        })
    }
}

/// Incremental Server-Sent Events decoder following the WHATWG HTML event stream rules.
#[pyclass(name = "SseDecoder", module = "sagestream._core")]
pub struct PySseDecoder {
    core: SseCore,
    state: ErrorState,
}

#[pymethods]
impl PySseDecoder {
    #[new]
    #[pyo3(signature = (*, max_event_bytes = 1_048_576, discard_incomplete = false))]
    fn new(max_event_bytes: usize, discard_incomplete: bool) -> PyResult<Self> {
        Ok(Self {
            core: SseCore::new(max_event_bytes, discard_incomplete)?,
            state: ErrorState::default(),
        })
    }

    /// Feed one part; returns the events it dispatches.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        feed_list(&mut self.core, &mut self.state, py, data)
    }

    /// End of input: dispatches an event left without its blank line (unless
    /// `discard_incomplete`); the decoder is then done.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        finish_list(&mut self.core, &mut self.state, py)
    }

    /// The last event ID seen so far (also from blocks that dispatched nothing), `None` if empty.
    #[getter]
    fn last_event_id(&self) -> Option<String> {
        let id = self.core.parser.last_event_id();
        (!id.is_empty()).then(|| id.to_owned())
    }

    /// The reconnection time last set by a valid `retry` field.
    #[getter]
    fn retry(&self) -> Option<u64> {
        self.core.parser.reconnection_time()
    }
}

/// How at most this many characters of a bad line are quoted in an error message.
const QUOTE_CHARS: usize = 120;

fn quote_line(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}... ({} bytes)", line.len())
    } else {
        format!("{head:?}")
    }
}

/// Parse one line as JSON, with exactly the results of Python's `json.loads`.
///
/// The fast path parses with `serde_json` straight into Python objects (measured ~1.7x faster
/// than the C scanner of Python's `json` module on TGI-style token lines, which is itself ~1.8x
/// faster than calling `json.loads`). Where `serde_json` and Python could disagree, the line goes
/// to the C scanner: integers of 19+ digits (`serde_json` would make them floats), `-0` (an int
/// in Python), and every line `serde_json` refuses (`NaN`, `Infinity`, lone surrogate escapes,
/// out-of-range floats, deep nesting) — so Python's error message is the one reported.
fn parse_json<'py>(
    py: Python<'py>,
    line: &[u8],
    offset: u64,
    number: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let text = decode_strict(line, offset)?;
    if json_fast::agrees_with_python(line) {
        if let Ok(value) = json_fast::loads(py, line) {
            return Ok(value);
        }
    }
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r'));
    let s = PyString::new(py, trimmed);
    if let Ok(found) = json_scan_once(py)?.call1((&s, 0usize)) {
        if let Ok((value, end)) = found.extract::<(Bound<'py, PyAny>, usize)>() {
            if end == s.len()? {
                return Ok(value);
            }
        }
    }
    let err = match json_loads(py)?.call1((&s,)) {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    let reason = err
        .value(py)
        .str()
        .map_or_else(|_| String::new(), |s| s.to_string());
    let new = PyReassemblyError::new_err(format!(
        "invalid JSON on line {number} (byte offset {offset}): {reason}: {}",
        quote_line(line)
    ));
    new.set_cause(py, Some(err));
    let new = with_attr(py, new, "offset", offset);
    Err(with_attr(py, new, "line_number", number))
}

/// `serde_json` → Python objects without an intermediate `serde_json::Value`.
mod json_fast {
    use std::borrow::Cow;
    use std::fmt;

    use pyo3::prelude::*;
    use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
    use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

    /// False when `serde_json`'s value could differ from Python's for this text: a run of 19 or
    /// more digits (a possible integer beyond 64 bits, which `serde_json` turns into a float) or
    /// `-0` not followed by a fraction or exponent (an int 0 in Python, -0.0 in `serde_json`).
    /// Conservative: digits inside strings also count.
    pub(super) fn agrees_with_python(line: &[u8]) -> bool {
        let mut run = 0usize;
        for (i, &b) in line.iter().enumerate() {
            if b.is_ascii_digit() {
                run += 1;
                if run >= 19 {
                    return false;
                }
                let after_minus = i.checked_sub(1).and_then(|j| line.get(j)) == Some(&b'-');
                if b == b'0'
                    && run == 1
                    && after_minus
                    && !matches!(line.get(i + 1), Some(b'.' | b'e' | b'E'))
                {
                    return false;
                }
            } else {
                run = 0;
            }
        }
        true
    }

    /// Parse a whole JSON text (surrounding whitespace allowed).
    pub(super) fn loads<'py>(
        py: Python<'py>,
        text: &[u8],
    ) -> Result<Bound<'py, PyAny>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let value = Seed(py).deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    struct Seed<'py>(Python<'py>);

    impl<'de, 'py> DeserializeSeed<'de> for Seed<'py> {
        type Value = Bound<'py, PyAny>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    fn py_err<E: serde::de::Error>(err: &PyErr) -> E {
        E::custom(err)
    }

    impl<'de, 'py> Visitor<'de> for Seed<'py> {
        type Value = Bound<'py, PyAny>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(PyBool::new(self.0, v).to_owned().into_any())
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(PyInt::new(self.0, v).into_any())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(PyInt::new(self.0, v).into_any())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(PyFloat::new(self.0, v).into_any())
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(PyString::new(self.0, v).into_any())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(self.0.None().into_bound(self.0))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let list = PyList::empty(self.0);
            while let Some(item) = seq.next_element_seed(Seed(self.0))? {
                list.append(item).map_err(|e| py_err::<A::Error>(&e))?;
            }
            Ok(list.into_any())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let dict = PyDict::new(self.0);
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                let value = map.next_value_seed(Seed(self.0))?;
                dict.set_item(key.as_ref(), value)
                    .map_err(A::Error::custom)?;
            }
            Ok(dict.into_any())
        }
    }
}

/// JSON Lines as Python values.
struct JsonCore {
    splitter: LineSplitter,
    /// Lines seen so far, blank ones included (for error messages).
    lines: u64,
}

impl JsonCore {
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

impl Reassemble for JsonCore {
    fn feed_with<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        sink: Sink<'_, 'py>,
    ) -> PyResult<()> {
        let lines = &mut self.lines;
        self.splitter.feed(data, |line, offset| -> PyResult<()> {
            *lines += 1;
            if is_blank(line) {
                return Ok(());
            }
            sink(parse_json(py, line, offset, *lines)?)
        })
    }

    fn finish_with<'py>(&mut self, py: Python<'py>, sink: Sink<'_, 'py>) -> PyResult<()> {
        let lines = &mut self.lines;
        self.splitter.finish(|line, offset| -> PyResult<()> {
            *lines += 1;
            if is_blank(line) {
                return Ok(());
            }
            sink(parse_json(py, line, offset, *lines)?)
        })
    }
}

/// Incremental JSON Lines decoder: every non-blank line is parsed with Python's `json` module.
#[pyclass(name = "JsonLinesDecoder", module = "sagestream._core")]
pub struct PyJsonLinesDecoder {
    core: JsonCore,
    state: ErrorState,
}

#[pymethods]
impl PyJsonLinesDecoder {
    #[new]
    #[pyo3(signature = (*, max_line_bytes = 1_048_576))]
    fn new(max_line_bytes: usize) -> PyResult<Self> {
        Ok(Self {
            core: JsonCore::new(max_line_bytes)?,
            state: ErrorState::default(),
        })
    }

    /// Feed one part; returns the values of the lines it completes (blank lines skipped).
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        feed_list(&mut self.core, &mut self.state, py, data)
    }

    /// End of input: parses a last line without line end; the decoder is then done.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        finish_list(&mut self.core, &mut self.state, py)
    }
}

/// The decoder behind a [`PyReassemblyIterator`].
enum AnyCore {
    Lines(LinesCore),
    Sse(SseCore),
    Json(JsonCore),
}

impl AnyCore {
    fn get(&mut self) -> &mut dyn Reassemble {
        match self {
            Self::Lines(c) => c,
            Self::Sse(c) => c,
            Self::Json(c) => c,
        }
    }
}

/// Iterator of lines, events or JSON values over an iterable of parts (`bytes`).
///
/// Reads the source only when no decoded item is waiting, so every item is yielded as soon as
/// the part that completes it arrives. Items before bad bytes are yielded, then the error is
/// raised; exceptions from the source pass through. When the iterator raises a reassembly
/// error, or `close()` is called, it calls the source's `close()` (if any), so a response stream
/// releases its connection at once. Build it with `lines`, `sse` or `json_lines`.
#[pyclass(name = "ReassemblyIterator", module = "sagestream._core")]
pub struct PyReassemblyIterator {
    source: Option<Py<PyIterator>>,
    /// The object given as source, if it has a `close()` method (a response stream).
    closer: Option<Py<PyAny>>,
    core: AnyCore,
    ready: VecDeque<Py<PyAny>>,
    error: Option<PyErr>,
    done: bool,
}

impl PyReassemblyIterator {
    fn build(source: &Bound<'_, PyAny>, core: AnyCore) -> PyResult<Self> {
        Ok(Self {
            source: Some(source.try_iter()?.unbind()),
            closer: source.hasattr("close")?.then(|| source.clone().unbind()),
            core,
            ready: VecDeque::new(),
            error: None,
            done: false,
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
            AnyCore::Lines(LinesCore::new(max_line_bytes, errors)?),
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
            AnyCore::Sse(SseCore::new(max_event_bytes, discard_incomplete)?),
        )
    }

    /// JSON values of the lines of the parts of `source` (see `JsonLinesDecoder`).
    #[staticmethod]
    #[pyo3(signature = (source, *, max_line_bytes = 1_048_576))]
    fn json_lines(source: &Bound<'_, PyAny>, max_line_bytes: usize) -> PyResult<Self> {
        Self::build(source, AnyCore::Json(JsonCore::new(max_line_bytes)?))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(Some(item));
            }
            if let Some(err) = self.error.take() {
                // The bytes can no longer be reassembled: release the source (its connection)
                // now rather than whenever it is garbage-collected.
                self.done = true;
                self.source = None;
                if let Err(close_err) = self.close_source(py) {
                    err.set_cause(py, Some(close_err));
                }
                return Err(err);
            }
            if self.done {
                return Ok(None);
            }
            let Some(source) = &self.source else {
                return Ok(None);
            };
            let mut source = source.bind(py).clone();
            let ready = &mut self.ready;
            let mut sink = |item: Bound<'_, PyAny>| -> PyResult<()> {
                ready.push_back(item.unbind());
                Ok(())
            };
            match source.next() {
                Some(Ok(chunk)) => {
                    let chunk = chunk.cast_into::<PyBytes>().map_err(|e| {
                        PyTypeError::new_err(format!(
                            "payload parts must be bytes, got {}",
                            e.into_inner().get_type()
                        ))
                    })?;
                    if let Err(err) = self.core.get().feed_with(py, chunk.as_bytes(), &mut sink) {
                        self.error = Some(err);
                    }
                }
                Some(Err(err)) => {
                    self.source = None;
                    self.done = true;
                    return Err(err);
                }
                None => {
                    self.source = None;
                    self.done = true;
                    if let Err(err) = self.core.get().finish_with(py, &mut sink) {
                        self.error = Some(err);
                    }
                }
            }
        }
    }

    /// Stop: drop anything decoded but not yet yielded and close the source (if it has a
    /// `close()` method).
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        self.source = None;
        self.done = true;
        self.ready.clear();
        self.error = None;
        self.close_source(py)
    }
}
