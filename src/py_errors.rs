//! The one mapping of the core's errors to their Python classes, which live in
//! `sagestream/exceptions.py`: every `import_exception!` of the crate, and one function (or
//! `From` impl) per error type. The errors themselves are plain data of their own modules
//! ([`crate::errors`], [`crate::transport`], [`crate::sign`], [`crate::stream`],
//! [`crate::duplex`], [`crate::request_path`]), which know nothing of Python.
//!
//! Each call makes a fresh exception: nothing holds one, so no traceback keeps a decoder or a
//! stream alive.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyType};

use crate::duplex::NotSent;
use crate::errors::{DecodeError, EncodeError, Error, JsonSyntax, ReassemblyError, ServiceError};
use crate::py_json::decode_error_class;
use crate::request_path::Failed;
use crate::sign::SignError;
use crate::stream::Failure;
use crate::transport::{ConnectKind, TransportError};

/// The classes raised from Rust. These names must match the classes in
/// `python/sagestream/exceptions.py`.
mod classes {
    pyo3::import_exception!(sagestream.exceptions, ChecksumMismatchError);
    pyo3::import_exception!(sagestream.exceptions, FrameTooLargeError);
    pyo3::import_exception!(sagestream.exceptions, TruncatedStreamError);
    pyo3::import_exception!(sagestream.exceptions, InvalidFrameError);
    pyo3::import_exception!(sagestream.exceptions, DuplicateHeaderError);
    pyo3::import_exception!(sagestream.exceptions, ReassemblyError);
    pyo3::import_exception!(sagestream.exceptions, LineTooLongError);
    pyo3::import_exception!(sagestream.exceptions, ConnectError);
    pyo3::import_exception!(sagestream.exceptions, ConnectTimeoutError);
    pyo3::import_exception!(sagestream.exceptions, ConnectionLostError);
    pyo3::import_exception!(sagestream.exceptions, ReadTimeoutError);
    pyo3::import_exception!(sagestream.exceptions, DeadlineExceededError);
    pyo3::import_exception!(sagestream.exceptions, MalformedResponseError);
    pyo3::import_exception!(sagestream.exceptions, ResponseTooLargeError);
    pyo3::import_exception!(sagestream.exceptions, SigningError);
    pyo3::import_exception!(sagestream.exceptions, InputClosedError);
}

pub(crate) use classes::ConnectionLostError;

/// The exception for `err`, its message followed by `hint` (what a response was instead of
/// an event stream) when there is one (lazy: no GIL needed).
fn decode_error(err: &DecodeError, hint: Option<&str>) -> PyErr {
    use classes as c;
    let msg = match hint {
        Some(hint) => format!("{err} ({hint})"),
        None => err.to_string(),
    };
    match err {
        DecodeError::PreludeChecksum { .. } | DecodeError::MessageChecksum { .. } => {
            c::ChecksumMismatchError::new_err(msg)
        }
        DecodeError::HeadersTooLarge { .. } | DecodeError::PayloadTooLarge { .. } => {
            c::FrameTooLargeError::new_err(msg)
        }
        DecodeError::Truncated { .. } => c::TruncatedStreamError::new_err(msg),
        DecodeError::DuplicateHeader { .. } => c::DuplicateHeaderError::new_err(msg),
        DecodeError::FrameTooShort { .. }
        | DecodeError::InvalidHeadersLength { .. }
        | DecodeError::InvalidHeader { .. } => c::InvalidFrameError::new_err(msg),
    }
}

/// `cls(message, **fields)`, or whatever building it raised.
fn instantiate<'py>(
    cls: &Bound<'py, PyType>,
    message: String,
    fields: &[(&str, u64)],
) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = PyDict::new(cls.py());
    for (name, value) in fields {
        kwargs.set_item(name, value)?;
    }
    cls.call((message,), Some(&kwargs))
}

/// A fresh `json.JSONDecodeError` with the fields of the one that refused a line.
fn json_decode_error<'py>(py: Python<'py>, syntax: &JsonSyntax) -> PyResult<Bound<'py, PyAny>> {
    decode_error_class(py)?.call1((syntax.msg.as_str(), syntax.doc.as_str(), syntax.pos))
}

/// The one mapping of reassembly errors to their classes, with `offset`, `limit` and
/// `line_number` set by the classes' `__init__`.
fn reassembly_error(py: Python<'_>, err: &ReassemblyError) -> PyErr {
    let msg = err.to_string();
    let made = match err {
        ReassemblyError::TooLong { limit, offset, .. } => instantiate(
            &py.get_type::<classes::LineTooLongError>(),
            msg,
            &[("offset", *offset), ("limit", *limit as u64)],
        ),
        ReassemblyError::InvalidUtf8 { offset } => instantiate(
            &py.get_type::<classes::ReassemblyError>(),
            msg,
            &[("offset", *offset)],
        ),
        ReassemblyError::InvalidJson {
            line_number,
            offset,
            syntax,
            ..
        } => instantiate(
            &py.get_type::<classes::ReassemblyError>(),
            msg,
            &[("offset", *offset), ("line_number", *line_number)],
        )
        .and_then(|exc| {
            if let Some(syntax) = syntax {
                exc.setattr("__cause__", json_decode_error(py, syntax)?)?;
            }
            Ok(exc)
        }),
    };
    made.map_or_else(|e| e, PyErr::from_value)
}

/// The factories of `sagestream/exceptions.py` (`_stream_exception`, ...), looked up once.
static STREAM_EXCEPTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static STREAM_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ANSWER_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
const EXCEPTIONS: &str = "sagestream.exceptions";

/// The one mapping of error frames to their classes, through the factories in
/// `sagestream/exceptions.py` (`_stream_exception`, `_stream_error`), so that the classes
/// and their fields are defined in one place.
fn service_error(py: Python<'_>, err: &ServiceError) -> PyErr {
    let made = match err {
        ServiceError::Exception {
            exception_type,
            payload,
        } => STREAM_EXCEPTION
            .import(py, EXCEPTIONS, "_stream_exception")
            .and_then(|f| f.call1((exception_type.as_str(), PyBytes::new(py, payload)))),
        ServiceError::Error { code, message } => STREAM_ERROR
            .import(py, EXCEPTIONS, "_stream_error")
            .and_then(|f| f.call1((code.as_str(), message.as_str()))),
    };
    made.map_or_else(|e| e, PyErr::from_value)
}

/// The service error of an error answer, built by `sagestream.exceptions._answer_error`
/// from its status, headers and body (the rest-json rules live there, in one place).
fn answer_error(py: Python<'_>, status: u16, headers: &[(String, String)], body: &[u8]) -> PyErr {
    let made = (|| {
        let dict = PyDict::new(py);
        for (name, value) in headers {
            dict.set_item(name, value)?;
        }
        ANSWER_ERROR
            .import(py, EXCEPTIONS, "_answer_error")?
            .call1((status, dict, PyBytes::new(py, body)))
    })();
    made.map_or_else(|e| e, PyErr::from_value)
}

/// The one mapping of transport failures to their classes.
fn transport_error(err: &TransportError) -> PyErr {
    use classes as c;
    let message = err.to_string();
    match err {
        TransportError::Connect {
            kind: ConnectKind::Timeout,
            ..
        } => c::ConnectTimeoutError::new_err((message, ConnectKind::Timeout.as_str())),
        TransportError::Connect { kind, .. } => c::ConnectError::new_err((message, kind.as_str())),
        TransportError::ConnectionLost { .. } => c::ConnectionLostError::new_err(message),
        TransportError::ReadTimeout { .. } => c::ReadTimeoutError::new_err(message),
        TransportError::Deadline { .. } => c::DeadlineExceededError::new_err(message),
        TransportError::InvalidResponse { .. } => c::InvalidFrameError::new_err(message),
        TransportError::MalformedHead { .. } => c::MalformedResponseError::new_err(message),
        TransportError::InvalidRequest { .. } => PyValueError::new_err(message),
        TransportError::BodyTooLarge { limit, .. } => {
            c::ResponseTooLargeError::new_err((message, *limit))
        }
    }
}

impl Failure {
    /// A new exception for the failure that ended a response stream.
    pub(crate) fn to_py_err(&self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Decode { error, hint } => decode_error(error, hint.as_deref()),
            Failure::Service(err) => service_error(py, err),
            Failure::Transport(err) => transport_error(err),
            Failure::Answer {
                status,
                headers,
                body,
            } => answer_error(py, *status, headers, body),
        }
    }
}

impl Error {
    /// A new exception for this error (each call makes a fresh one).
    pub(crate) fn to_py_err(&self, py: Python<'_>) -> PyErr {
        match self {
            Error::Decode(err) => decode_error(err, None),
            Error::Reassembly(err) => reassembly_error(py, err),
            Error::Service(err) => service_error(py, err),
        }
    }
}

impl NotSent {
    /// The exception for input that was not sent.
    pub(crate) fn to_py_err(&self, py: Python<'_>) -> PyErr {
        match self {
            NotSent::InputClosed(message) => classes::InputClosedError::new_err(message.clone()),
            NotSent::Failed(failure) => failure.to_py_err(py),
        }
    }
}

impl From<TransportError> for PyErr {
    fn from(err: TransportError) -> PyErr {
        transport_error(&err)
    }
}

impl From<SignError> for PyErr {
    /// A request that cannot be signed.
    fn from(err: SignError) -> PyErr {
        classes::SigningError::new_err(err.to_string())
    }
}

impl From<Failed> for PyErr {
    fn from(err: Failed) -> PyErr {
        match err {
            Failed::Transport(err) => err.into(),
            Failed::Sign(err) => err.into(),
        }
    }
}

impl From<DecodeError> for PyErr {
    fn from(err: DecodeError) -> PyErr {
        decode_error(&err, None)
    }
}

impl From<EncodeError> for PyErr {
    /// Encoding fails on the caller's values: a `ValueError`, as for the other bad arguments
    /// of `encode`.
    fn from(err: EncodeError) -> PyErr {
        PyValueError::new_err(err.to_string())
    }
}
