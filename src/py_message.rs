//! Python classes for the generic event stream API: `Message`, `Decoder`, `decode`, `encode`.
//!
//! Decoding runs on [`crate::frame`] (caps, checksums) and [`crate::headers`] (types, lengths,
//! UTF-8, duplicate names), which are checked against `aws_smithy_eventstream`'s
//! `read_message_from` by the Rust tests and the fuzz target; encoding goes through the crate's
//! `write_message_to`.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::str_bytes::StrBytes;
use aws_smithy_types::DateTime;
use bytes::Bytes;
use pyo3::exceptions::{PyTypeError, PyValueError};
use std::sync::{Arc, OnceLock};

use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};
use pyo3::PyTraverseError;

use crate::errors::{DecodeError, EncodeError};
use crate::frame::{Detach, Frame, FrameSplitter};
use crate::headers::{visit_headers, HeaderIter, HeaderValueRef};
use crate::py_queue::{decoder_methods, finish_list, Decoded, Decoder, Format, HeldError, PyQueue};

static TIMEDELTA: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DATETIME_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static UUID_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)`, made once.
fn epoch(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static EPOCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    EPOCH
        .get_or_try_init(py, || {
            let m = py.import("datetime")?;
            let utc = m.getattr("timezone")?.getattr("utc")?;
            let epoch = m
                .getattr("datetime")?
                .call((1970, 1, 1, 0, 0, 0, 0, utc), None)?;
            Ok::<_, PyErr>(epoch.unbind())
        })
        .map(|e| e.bind(py))
}

/// Milliseconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the range of `datetime`.
const MIN_DATETIME_MILLIS: i64 = -62_135_596_800_000;
const MAX_DATETIME_MILLIS: i64 = 253_402_300_799_999;

/// Reject, while decoding, a header value that has no Python value: a timestamp outside the
/// range of `datetime`. Everything else the header parser accepts converts.
fn check_convertible(name: &str, value: HeaderValueRef<'_>) -> Result<(), DecodeError> {
    match value {
        HeaderValueRef::Timestamp(ms)
            if !(MIN_DATETIME_MILLIS..=MAX_DATETIME_MILLIS).contains(&ms) =>
        {
            Err(DecodeError::invalid_header(format!(
                "timestamp header {name:?} ({ms} ms) is outside the range of datetime"
            )))
        }
        _ => Ok(()),
    }
}

/// `$s` as a Python string: for each of the literals, that literal made once (interned, hash
/// cached) and shared; `$other` for any other string.
macro_rules! interned {
    ($py:expr, $s:expr, [$($text:literal),+ $(,)?], $other:expr) => {
        match $s {
            $($text => intern!($py, $text).clone(),)+
            _ => $other,
        }
    };
}

/// `s` as a Python string, shared for the names and values every AWS event stream frame
/// repeats, new otherwise.
fn common_str<'py>(py: Python<'py>, s: &str) -> Bound<'py, PyString> {
    interned!(
        py,
        s,
        [
            ":event-type",
            ":message-type",
            ":content-type",
            ":exception-type",
            ":error-code",
            ":error-message",
            "event",
            "exception",
            "error",
            "PayloadPart",
            "application/octet-stream",
            "application/json",
        ],
        PyString::new(py, s)
    )
}

/// The wire type name of `value` as a shared Python string.
fn type_name_str<'py>(py: Python<'py>, value: HeaderValueRef<'_>) -> Bound<'py, PyString> {
    match value {
        HeaderValueRef::Bool(true) => intern!(py, "bool_true").clone(),
        HeaderValueRef::Bool(false) => intern!(py, "bool_false").clone(),
        HeaderValueRef::Byte(_) => intern!(py, "byte").clone(),
        HeaderValueRef::Int16(_) => intern!(py, "int16").clone(),
        HeaderValueRef::Int32(_) => intern!(py, "int32").clone(),
        HeaderValueRef::Int64(_) => intern!(py, "int64").clone(),
        HeaderValueRef::Bytes(_) => intern!(py, "bytes").clone(),
        HeaderValueRef::String(_) => intern!(py, "string").clone(),
        HeaderValueRef::Timestamp(_) => intern!(py, "timestamp").clone(),
        HeaderValueRef::Uuid(_) => intern!(py, "uuid").clone(),
    }
}

/// Convert one header value to its Python value.
fn value_to_py<'py>(py: Python<'py>, value: HeaderValueRef<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        HeaderValueRef::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        HeaderValueRef::Byte(v) => v.into_pyobject(py)?.into_any(),
        HeaderValueRef::Int16(v) => v.into_pyobject(py)?.into_any(),
        HeaderValueRef::Int32(v) => v.into_pyobject(py)?.into_any(),
        HeaderValueRef::Int64(v) => v.into_pyobject(py)?.into_any(),
        HeaderValueRef::Bytes(b) => PyBytes::new(py, b).into_any(),
        HeaderValueRef::String(s) => common_str(py, s).into_any(),
        HeaderValueRef::Timestamp(millis) => {
            // In range: checked by `check_convertible` when the frame was decoded.
            let epoch = epoch(py)?;
            let timedelta = TIMEDELTA.import(py, "datetime", "timedelta")?;
            let delta = timedelta.call1((
                millis.div_euclid(86_400_000),
                millis.rem_euclid(86_400_000) / 1000,
                millis.rem_euclid(1000) * 1000,
            ))?;
            epoch.call_method1("__add__", (delta,))?
        }
        HeaderValueRef::Uuid(raw) => {
            let uuid = UUID_TYPE.import(py, "uuid", "UUID")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("int", u128::from_be_bytes(raw))?;
            uuid.call((), Some(&kwargs))?
        }
    })
}

/// One decoded event stream message.
///
/// The headers are validated when the frame is decoded, but their Python values are built on
/// first access: a consumer that reads only the payload pays for one `bytes` object.
#[pyclass(name = "Message", module = "sagestream._core", frozen)]
pub struct PyMessage {
    block: Arc<HeaderBlock>,
    payload: Py<PyBytes>,
    headers: OnceLock<Py<PyDict>>,
    header_list: OnceLock<Py<PyList>>,
}

/// A validated headers section, shared by consecutive messages whose headers are the same bytes
/// (every `PayloadPart` frame of a stream): validated once, its Python values built once. Each
/// message gets its own shallow copy of the dict and list (the values are immutable), so a
/// caller that mutates one message's headers changes no other message.
pub(crate) struct HeaderBlock {
    /// The headers section, as on the wire.
    raw: Box<[u8]>,
    dict: OnceLock<Py<PyDict>>,
    list: OnceLock<Py<PyList>>,
}

impl HeaderBlock {
    /// The block for `raw`: `last` itself when it holds the same bytes (already validated),
    /// else a new block, validated, which becomes `last`.
    fn for_frame(
        raw: &[u8],
        last: &mut Option<Arc<HeaderBlock>>,
    ) -> Result<Arc<Self>, DecodeError> {
        if let Some(block) = last {
            if *block.raw == *raw {
                return Ok(Arc::clone(block));
            }
        }
        visit_headers(raw, check_convertible)?;
        let block = Arc::new(HeaderBlock {
            raw: raw.into(),
            dict: OnceLock::new(),
            list: OnceLock::new(),
        });
        *last = Some(Arc::clone(&block));
        Ok(block)
    }

    /// `[(name, type_name, value), ...]`, built once per block.
    fn list(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        cached_value(py, &self.list, || {
            let list = PyList::empty(py);
            for item in HeaderIter::new(&self.raw) {
                let (name, value) = item?;
                list.append(PyTuple::new(
                    py,
                    [
                        common_str(py, name).into_any(),
                        type_name_str(py, value).into_any(),
                        value_to_py(py, value)?,
                    ],
                )?)?;
            }
            Ok(list.unbind())
        })
    }

    /// Name → value, built once per block.
    fn dict(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        cached_value(py, &self.dict, || {
            let dict = PyDict::new(py);
            for item in HeaderIter::new(&self.raw) {
                let (name, value) = item?;
                dict.set_item(common_str(py, name), value_to_py(py, value)?)?;
            }
            Ok(dict.unbind())
        })
    }
}

/// The value cached in `cell`, built by `build` on first use. No Python code runs while any
/// lock is held: two threads racing on a fresh message may both build it, and the first value
/// stored wins (they are equal), so this can neither deadlock with the GIL nor block.
fn cached_value<T>(
    py: Python<'_>,
    cell: &OnceLock<Py<T>>,
    build: impl FnOnce() -> PyResult<Py<T>>,
) -> PyResult<Py<T>> {
    if let Some(value) = cell.get() {
        return Ok(value.clone_ref(py));
    }
    let fresh = build()?;
    let stored = cell.get_or_init(|| fresh.clone_ref(py));
    Ok(stored.clone_ref(py))
}

#[pymethods]
impl PyMessage {
    /// Header name → Python value.
    #[getter]
    fn headers(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        cached_value(py, &self.headers, || {
            self.block.dict(py)?.bind(py).copy().map(Bound::unbind)
        })
    }

    /// `[(name, type_name, value), ...]` in wire order, with the wire type of each value.
    #[getter]
    fn header_list(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        cached_value(py, &self.header_list, || {
            Ok(PyList::new(py, self.block.list(py)?.bind(py).iter())?.unbind())
        })
    }

    /// The payload bytes.
    #[getter]
    fn payload(&self, py: Python<'_>) -> Py<PyBytes> {
        self.payload.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Message(headers={}, payload={})",
            self.headers(py)?.bind(py).repr()?,
            self.payload.bind(py).repr()?
        ))
    }

    /// A caller may store anything in a message's `headers` dict or `header_list` (the message
    /// itself, say): the collector must see them. Frozen, so no `__clear__`: the dict and list
    /// clear themselves. The block's templates are shared by several messages (one reference
    /// for all of them) and never handed out, so they are not visited.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.payload)?;
        visit.call(self.headers.get())?;
        visit.call(self.header_list.get())
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> bool {
        let Ok(other) = other.cast::<PyMessage>() else {
            return false;
        };
        let other = other.get();
        // The wire encoding of a header list is canonical, so equal bytes mean equal headers.
        self.block.raw == other.block.raw
            && self.payload.bind(py).as_bytes() == other.payload.bind(py).as_bytes()
    }
}

/// Releases the GIL around the pure-Rust verification of large frames.
pub(crate) struct GilDetach<'py>(pub(crate) Python<'py>);

impl Detach for GilDetach<'_> {
    fn run(&self, work: &mut (dyn FnMut() + Send)) {
        self.0.detach(work);
    }
}

/// Turn a verified frame into a Python `Message`: headers validated (types, lengths, UTF-8,
/// duplicates, timestamp range) without building Python objects, or shared with the previous
/// message `last` when they are the same bytes; payload copied once.
pub(crate) fn frame_to_message(
    py: Python<'_>,
    frame: Frame<'_>,
    last: &mut Option<Arc<HeaderBlock>>,
) -> Result<PyMessage, DecodeError> {
    Ok(PyMessage {
        block: HeaderBlock::for_frame(frame.headers, last)?,
        payload: PyBytes::new(py, frame.payload).unbind(),
        headers: OnceLock::new(),
        header_list: OnceLock::new(),
    })
}

/// Frames → messages: the format behind `Decoder` and `decode`.
#[derive(Default)]
struct MessageFrames {
    splitter: FrameSplitter,
    /// The headers of the last message, for the next one to share when they are the same.
    last_headers: Option<Arc<HeaderBlock>>,
}

impl Format for MessageFrames {
    type Item = Py<PyMessage>;

    fn decode(&mut self, py: Python<'_>, data: &[u8], queue: &mut Messages) -> Decoded {
        let Self {
            splitter,
            last_headers,
        } = self;
        splitter.feed_with(data, &GilDetach(py), |frame| {
            let message = frame_to_message(py, frame, last_headers)?;
            queue.push(Py::new(py, message).map_err(|e| HeldError::from_py(py, e))?);
            Ok(())
        })
    }

    fn end(&mut self, _py: Python<'_>, _queue: &mut Messages) -> Decoded {
        self.splitter.finish().map_err(HeldError::from)
    }
}

/// The queue of a message decoder.
type Messages = PyQueue<Py<PyMessage>>;

/// Incremental decoder of generic event stream messages.
#[pyclass(name = "Decoder", module = "sagestream._core")]
pub struct PyDecoder {
    core: Decoder<MessageFrames>,
}

decoder_methods! {
    PyDecoder, ends with "close";
    feed {
        /// Feed one read; returns every message it completes. When the read also holds a bad
        /// frame, the messages before it are returned and the error is raised by the next call, and
        /// by every call after that.
    }
    close {
        /// End of stream: raises the error of a bad frame if any, `TruncatedStreamError` if a
        /// partial frame is buffered.
    }
    {
        #[new]
        fn new() -> Self {
            Self {
                core: Decoder::new(MessageFrames::default()),
            }
        }

        /// Bytes buffered for an incomplete frame.
        #[getter]
        fn buffered(&self) -> usize {
            self.core.format.splitter.buffered()
        }
    }
}

/// Decode a whole buffer of complete frames.
#[pyfunction]
pub fn decode<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let mut core = Decoder::new(MessageFrames::default());
    core.feed(py, data);
    if core.queue.is_open() {
        core.finish(py);
    }
    if let Some(err) = core.queue.error() {
        return Err(err.to_py_err(py));
    }
    finish_list(&mut core, py)
}

fn int_header(value: &Bound<'_, PyAny>, type_name: &str) -> PyResult<HeaderValue> {
    Ok(match type_name {
        "byte" => HeaderValue::Byte(value.extract()?),
        "int16" => HeaderValue::Int16(value.extract()?),
        "int32" => HeaderValue::Int32(value.extract()?),
        "int64" => HeaderValue::Int64(value.extract()?),
        _ => {
            return Err(PyValueError::new_err(format!(
                "not an int type: {type_name}"
            )))
        }
    })
}

fn py_to_value(value: &Bound<'_, PyAny>, type_name: Option<&str>) -> PyResult<HeaderValue> {
    let py = value.py();
    if let Some(t) = type_name {
        return Ok(match t {
            "bool" | "bool_true" | "bool_false" => HeaderValue::Bool(value.extract()?),
            "byte" | "int16" | "int32" | "int64" => int_header(value, t)?,
            "bytes" => HeaderValue::ByteArray(Bytes::copy_from_slice(value.extract::<&[u8]>()?)),
            "string" => HeaderValue::String(StrBytes::from(value.extract::<String>()?)),
            "timestamp" => {
                if value.is_instance_of::<PyInt>() {
                    HeaderValue::Timestamp(DateTime::from_millis(value.extract()?))
                } else {
                    timestamp_from_datetime(py, value)?
                }
            }
            "uuid" => {
                if value.is_instance_of::<PyInt>() {
                    HeaderValue::Uuid(value.extract()?)
                } else {
                    HeaderValue::Uuid(value.getattr("int")?.extract()?)
                }
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown header type {other:?}: expected one of bool, byte, int16, int32, \
                     int64, bytes, string, timestamp, uuid"
                )))
            }
        });
    }
    if value.is_instance_of::<PyBool>() {
        Ok(HeaderValue::Bool(value.extract()?))
    } else if value.is_instance_of::<PyInt>() {
        match value.extract::<i32>() {
            Ok(v) => Ok(HeaderValue::Int32(v)),
            Err(_) => Ok(HeaderValue::Int64(value.extract()?)),
        }
    } else if let Ok(b) = value.cast::<PyBytes>() {
        Ok(HeaderValue::ByteArray(Bytes::copy_from_slice(b.as_bytes())))
    } else if let Ok(s) = value.cast::<PyString>() {
        Ok(HeaderValue::String(StrBytes::from(s.to_str()?.to_owned())))
    } else if value.is_instance(DATETIME_TYPE.import(py, "datetime", "datetime")?)? {
        timestamp_from_datetime(py, value)
    } else if value.is_instance(UUID_TYPE.import(py, "uuid", "UUID")?)? {
        Ok(HeaderValue::Uuid(value.getattr("int")?.extract()?))
    } else {
        Err(PyTypeError::new_err(format!(
            "cannot encode a header value of type {}",
            value.get_type().name()?
        )))
    }
}

fn timestamp_from_datetime(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<HeaderValue> {
    let epoch = epoch(py)?;
    let value = if value.getattr("tzinfo")?.is_none() {
        // A naive datetime is taken as UTC.
        let utc = py.import("datetime")?.getattr("timezone")?.getattr("utc")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("tzinfo", utc)?;
        value.call_method("replace", (), Some(&kwargs))?
    } else {
        value.clone()
    };
    let delta = value.call_method1("__sub__", (epoch,))?;
    let days: i64 = delta.getattr("days")?.extract()?;
    let seconds: i64 = delta.getattr("seconds")?.extract()?;
    let micros: i64 = delta.getattr("microseconds")?.extract()?;
    let millis = days
        .checked_mul(86_400_000)
        .and_then(|d| d.checked_add(seconds * 1000 + micros / 1000))
        .ok_or_else(|| PyValueError::new_err("timestamp out of range"))?;
    Ok(HeaderValue::Timestamp(DateTime::from_millis(millis)))
}

/// Encode one message. `headers` is a mapping name → value, or a sequence of `(name, value)`
/// or `(name, value, type_name)` tuples (type names as in `Message.header_list`).
#[pyfunction]
#[pyo3(signature = (headers, payload))]
pub fn encode<'py>(
    py: Python<'py>,
    headers: &Bound<'py, PyAny>,
    payload: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let mut out_headers = Vec::new();
    let items: Vec<Bound<'py, PyAny>> = if let Ok(d) = headers.cast::<PyDict>() {
        d.items().iter().collect()
    } else {
        headers.try_iter()?.collect::<PyResult<_>>()?
    };
    for item in items {
        let tuple = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err("each header must be a (name, value) or (name, value, type) tuple")
        })?;
        let name: String = tuple.get_item(0)?.extract()?;
        if name.len() > 255 {
            return Err(PyValueError::new_err(format!(
                "header name {name:?} is longer than 255 bytes"
            )));
        }
        let value = tuple.get_item(1)?;
        let type_name: Option<String> = if tuple.len() > 2 {
            Some(tuple.get_item(2)?.extract()?)
        } else {
            None
        };
        out_headers.push(Header::new(
            name,
            py_to_value(&value, type_name.as_deref())?,
        ));
    }
    let message = Message::new_from_parts(out_headers, Bytes::copy_from_slice(payload));
    let mut buf: Vec<u8> = Vec::with_capacity(payload.len() + 256);
    write_message_to(&message, &mut buf).map_err(|e| EncodeError {
        reason: e.to_string(),
    })?;
    Ok(PyBytes::new(py, &buf))
}
