//! Every error of the Rust core, as plain data, and (with the `python` feature) the one function
//! per error type that maps it to its exception class in `sagestream/exceptions.py`.
//!
//! - [`DecodeError`]: the bytes are not a valid event stream.
//! - [`ReassemblyError`]: payload parts cannot be reassembled into lines, events or JSON values.
//! - [`ServiceError`]: an error frame inside the stream (`:message-type` `exception` or `error`).
//! - [`Error`]: any of those three, the error that ends a stream and that
//!   [`crate::sticky::StickyQueue`] holds.
//! - [`EncodeError`]: a message cannot be encoded (a caller's mistake, never a stream's end).
//!
//! The request path's own failures are data of their modules too
//! ([`crate::transport::TransportError`], [`crate::sign::SignError`],
//! [`crate::stream::Failure`]); their Python classes are mapped here, beside the others.
//!
//! None of them holds a Python object. A decoder keeps its error as one of these values and makes
//! a fresh exception each time it raises it, so no raised exception (whose traceback holds the
//! caller's frame, which holds the decoder) is ever kept alive by the decoder.

use std::fmt;

/// Everything that can be wrong with the bytes of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The CRC32 of the 8-byte prelude does not match the prelude's checksum field.
    PreludeChecksum { expected: u32, actual: u32 },
    /// The CRC32 of the whole frame does not match its trailing checksum.
    MessageChecksum { expected: u32, actual: u32 },
    /// `total_length` is below the 16-byte minimum frame.
    FrameTooShort { total_length: u32 },
    /// The headers section is larger than the 128 KiB cap.
    HeadersTooLarge { length: u32 },
    /// The payload is larger than the 24 MiB cap.
    PayloadTooLarge { length: u64 },
    /// `headers_length` does not fit inside `total_length - 16`.
    InvalidHeadersLength {
        headers_length: u32,
        total_length: u32,
    },
    /// A header is malformed: a bad type byte, a length that overruns, invalid UTF-8.
    InvalidHeader { reason: String },
    /// The same header name appears twice in one frame.
    DuplicateHeader { name: String },
    /// The stream ended inside a frame.
    Truncated {
        buffered: usize,
        expected: Option<usize>,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PreludeChecksum { expected, actual } => write!(
                f,
                "prelude checksum mismatch: computed 0x{expected:08x}, frame says 0x{actual:08x}"
            ),
            Self::MessageChecksum { expected, actual } => write!(
                f,
                "message checksum mismatch: computed 0x{expected:08x}, frame says 0x{actual:08x}"
            ),
            Self::FrameTooShort { total_length } => write!(
                f,
                "frame total length {total_length} is below the 16-byte minimum"
            ),
            Self::HeadersTooLarge { length } => write!(
                f,
                "headers length {length} exceeds the {} byte limit",
                crate::frame::MAX_HEADERS_LENGTH
            ),
            Self::PayloadTooLarge { length } => write!(
                f,
                "payload length {length} exceeds the {} byte limit",
                crate::frame::MAX_PAYLOAD_LENGTH
            ),
            Self::InvalidHeadersLength {
                headers_length,
                total_length,
            } => write!(
                f,
                "headers length {headers_length} does not fit in a frame of {total_length} bytes"
            ),
            Self::InvalidHeader { reason } => write!(f, "invalid header: {reason}"),
            Self::DuplicateHeader { name } => write!(f, "duplicate header name {name:?}"),
            Self::Truncated { buffered, expected } => match expected {
                Some(expected) => write!(
                    f,
                    "stream ended mid-frame: {buffered} of {expected} bytes received"
                ),
                None => write!(
                    f,
                    "stream ended mid-frame: {buffered} bytes of a 12-byte prelude received"
                ),
            },
        }
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    pub(crate) fn invalid_header(reason: impl Into<String>) -> Self {
        Self::InvalidHeader {
            reason: reason.into(),
        }
    }
}

/// What can go wrong while reassembling text from payload parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassemblyError {
    /// A line (or the fields of one SSE event) grew past the bound without ending.
    TooLong {
        /// `"line"` or `"event"`.
        what: &'static str,
        /// The configured bound in bytes.
        limit: usize,
        /// Stream offset of the first byte of the line or event.
        offset: u64,
    },
    /// A line is not valid UTF-8 (strict decoding).
    InvalidUtf8 {
        /// Stream offset of the first invalid byte.
        offset: u64,
    },
    /// A JSON line is not valid JSON.
    InvalidJson {
        /// 1-based number of the line in the stream, blank lines included.
        line_number: u64,
        /// Stream offset of the first byte of the line.
        offset: u64,
        /// Why the parser refused it (the text of Python's `json` error).
        reason: String,
        /// The start of the line, quoted, for the message.
        quoted: String,
        /// The fields of Python's `json.JSONDecodeError`, when that is what refused the line:
        /// a fresh one is made as the `__cause__` of each raised exception.
        syntax: Option<JsonSyntax>,
    },
}

/// The fields of a `json.JSONDecodeError`, kept as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonSyntax {
    /// The unformatted message (`JSONDecodeError.msg`).
    pub msg: String,
    /// The text that was parsed (`JSONDecodeError.doc`).
    pub doc: String,
    /// Index in `doc` where parsing failed (`JSONDecodeError.pos`).
    pub pos: usize,
}

impl fmt::Display for ReassemblyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong {
                what,
                limit,
                offset,
            } => write!(
                f,
                "{what} starting at byte {offset} is longer than max_{what}_bytes={limit} \
                 (the bound on bytes held while waiting for its end); raise max_{what}_bytes \
                 if such {what}s are expected"
            ),
            Self::InvalidUtf8 { offset } => {
                write!(f, "invalid UTF-8 at byte offset {offset} of the stream")
            }
            Self::InvalidJson {
                line_number,
                offset,
                reason,
                quoted,
                ..
            } => write!(
                f,
                "invalid JSON on line {line_number} (byte offset {offset}): {reason}: {quoted}"
            ),
        }
    }
}

impl std::error::Error for ReassemblyError {}

/// An error frame of a SageMaker response stream, as data.
///
/// Fields a frame lacks are empty strings, as botocore's parser reads them
/// (`headers.get(':error-code', '')`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    /// `:message-type: exception`: the error named by `:exception-type`, with its JSON payload
    /// (`{"Message": ..., "ErrorCode": ...}`).
    Exception {
        exception_type: String,
        payload: Vec<u8>,
    },
    /// `:message-type: error`: `:error-code` and `:error-message`.
    Error { code: String, message: String },
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exception {
                exception_type,
                payload,
            } => write!(
                f,
                "{exception_type} in the stream: {}",
                String::from_utf8_lossy(payload)
            ),
            Self::Error { code, message } => write!(f, "{code} in the stream: {message}"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// The error that ends a stream: bad bytes, text that cannot be reassembled, or an error frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a valid event stream.
    Decode(DecodeError),
    /// The payload parts cannot be reassembled.
    Reassembly(ReassemblyError),
    /// The service sent an error frame.
    Service(ServiceError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(err) => err.fmt(f),
            Self::Reassembly(err) => err.fmt(f),
            Self::Service(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(err) => Some(err),
            Self::Reassembly(err) => Some(err),
            Self::Service(err) => Some(err),
        }
    }
}

impl From<DecodeError> for Error {
    fn from(err: DecodeError) -> Self {
        Self::Decode(err)
    }
}

impl From<ReassemblyError> for Error {
    fn from(err: ReassemblyError) -> Self {
        Self::Reassembly(err)
    }
}

impl From<ServiceError> for Error {
    fn from(err: ServiceError) -> Self {
        Self::Service(err)
    }
}

/// A message that cannot be encoded: a header name or value too long, a frame too large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// What is wrong, from the encoder.
    pub reason: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode message: {}", self.reason)
    }
}

impl std::error::Error for EncodeError {}

#[cfg(feature = "python")]
mod py {
    use super::{DecodeError, EncodeError, Error, JsonSyntax, ReassemblyError, ServiceError};
    use crate::sign::SignError;
    use crate::stream::Failure;
    use crate::transport::{ConnectKind, TransportError};
    use pyo3::prelude::*;
    use pyo3::sync::PyOnceLock;
    use pyo3::types::{PyBytes, PyDict};

    // These names must match the classes in `python/sagestream/exceptions.py`.
    pyo3::import_exception!(sagestream.exceptions, ChecksumMismatchError);
    pyo3::import_exception!(sagestream.exceptions, FrameTooLargeError);
    pyo3::import_exception!(sagestream.exceptions, TruncatedStreamError);
    pyo3::import_exception!(sagestream.exceptions, InvalidFrameError);
    pyo3::import_exception!(sagestream.exceptions, DuplicateHeaderError);
    mod classes {
        pyo3::import_exception!(sagestream.exceptions, ReassemblyError);
        pyo3::import_exception!(sagestream.exceptions, LineTooLongError);
    }

    /// The one mapping of decode errors to their classes (lazy: no GIL needed).
    fn decode_error(err: &DecodeError) -> PyErr {
        decode_error_with(err, None)
    }

    /// The exception for `err`, its message followed by `hint` (what a response was instead of
    /// an event stream) when there is one.
    pub(crate) fn decode_error_with(err: &DecodeError, hint: Option<&str>) -> PyErr {
        let msg = match hint {
            Some(hint) => format!("{err} ({hint})"),
            None => err.to_string(),
        };
        match err {
            DecodeError::PreludeChecksum { .. } | DecodeError::MessageChecksum { .. } => {
                ChecksumMismatchError::new_err(msg)
            }
            DecodeError::HeadersTooLarge { .. } | DecodeError::PayloadTooLarge { .. } => {
                FrameTooLargeError::new_err(msg)
            }
            DecodeError::Truncated { .. } => TruncatedStreamError::new_err(msg),
            DecodeError::DuplicateHeader { .. } => DuplicateHeaderError::new_err(msg),
            DecodeError::FrameTooShort { .. }
            | DecodeError::InvalidHeadersLength { .. }
            | DecodeError::InvalidHeader { .. } => InvalidFrameError::new_err(msg),
        }
    }

    /// `cls(message, **fields)`, or whatever building it raised.
    fn instantiate<'py>(
        cls: &Bound<'py, pyo3::types::PyType>,
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
        py.import("json")?.getattr("JSONDecodeError")?.call1((
            syntax.msg.as_str(),
            syntax.doc.as_str(),
            syntax.pos,
        ))
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

    static STREAM_EXCEPTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static STREAM_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

    /// `sagestream.exceptions.<name>`, looked up once.
    fn factory<'py>(
        py: Python<'py>,
        cell: &'static PyOnceLock<Py<PyAny>>,
        name: &str,
    ) -> PyResult<&'py Bound<'py, PyAny>> {
        cell.get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("sagestream.exceptions")?.getattr(name)?.unbind())
        })
        .map(|f| f.bind(py))
    }

    /// The one mapping of error frames to their classes, through the factories in
    /// `sagestream/exceptions.py` (`_stream_exception`, `_stream_error`), so that the classes
    /// and their fields are defined in one place.
    fn service_error(py: Python<'_>, err: &ServiceError) -> PyErr {
        let made = match err {
            ServiceError::Exception {
                exception_type,
                payload,
            } => factory(py, &STREAM_EXCEPTION, "_stream_exception")
                .and_then(|f| f.call1((exception_type.as_str(), PyBytes::new(py, payload)))),
            ServiceError::Error { code, message } => factory(py, &STREAM_ERROR, "_stream_error")
                .and_then(|f| f.call1((code.as_str(), message.as_str()))),
        };
        made.map_or_else(|e| e, PyErr::from_value)
    }

    static ANSWER_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

    /// The service error of an error answer, built by `sagestream.exceptions._answer_error`
    /// from its status, headers and body (the rest-json rules live there, in one place).
    fn answer_error(
        py: Python<'_>,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> PyErr {
        let made = (|| {
            let dict = PyDict::new(py);
            for (name, value) in headers {
                dict.set_item(name, value)?;
            }
            factory(py, &ANSWER_ERROR, "_answer_error")?.call1((
                status,
                dict,
                PyBytes::new(py, body),
            ))
        })();
        made.map_or_else(|e| e, PyErr::from_value)
    }

    /// The classes of the request path's failures.
    mod transport_classes {
        pyo3::import_exception!(sagestream.exceptions, ConnectError);
        pyo3::import_exception!(sagestream.exceptions, ConnectTimeoutError);
        pyo3::import_exception!(sagestream.exceptions, ConnectionLostError);
        pyo3::import_exception!(sagestream.exceptions, ReadTimeoutError);
        pyo3::import_exception!(sagestream.exceptions, DeadlineExceededError);
        pyo3::import_exception!(sagestream.exceptions, MalformedResponseError);
        pyo3::import_exception!(sagestream.exceptions, ResponseTooLargeError);
        pyo3::import_exception!(sagestream.exceptions, SigningError);
    }

    /// The one mapping of transport failures to their classes.
    pub(crate) fn transport_error(err: &TransportError) -> PyErr {
        use transport_classes as c;
        let message = err.to_string();
        match err {
            TransportError::Connect {
                kind: ConnectKind::Timeout,
                ..
            } => c::ConnectTimeoutError::new_err((message, ConnectKind::Timeout.as_str())),
            TransportError::Connect { kind, .. } => {
                c::ConnectError::new_err((message, kind.as_str()))
            }
            TransportError::ConnectionLost { .. } => c::ConnectionLostError::new_err(message),
            TransportError::ReadTimeout { .. } => c::ReadTimeoutError::new_err(message),
            TransportError::Deadline { .. } => c::DeadlineExceededError::new_err(message),
            TransportError::InvalidResponse { .. } => InvalidFrameError::new_err(message),
            TransportError::MalformedHead { .. } => c::MalformedResponseError::new_err(message),
            TransportError::InvalidRequest { .. } => {
                pyo3::exceptions::PyValueError::new_err(message)
            }
            TransportError::BodyTooLarge { limit, .. } => {
                c::ResponseTooLargeError::new_err((message, *limit))
            }
        }
    }

    /// The exception for a request that could not be signed.
    pub(crate) fn sign_error(err: &SignError) -> PyErr {
        transport_classes::SigningError::new_err(err.to_string())
    }

    impl Failure {
        /// A new exception for the failure that ended a response stream.
        pub(crate) fn to_py_err(&self, py: Python<'_>) -> PyErr {
            match self {
                Failure::Decode { error, hint } => decode_error_with(error, hint.as_deref()),
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
                Error::Decode(err) => decode_error(err),
                Error::Reassembly(err) => reassembly_error(py, err),
                Error::Service(err) => service_error(py, err),
            }
        }
    }

    impl From<DecodeError> for PyErr {
        fn from(err: DecodeError) -> PyErr {
            decode_error(&err)
        }
    }

    impl From<EncodeError> for PyErr {
        /// Encoding fails on the caller's values: a `ValueError`, as for the other bad arguments
        /// of `encode`.
        fn from(err: EncodeError) -> PyErr {
            pyo3::exceptions::PyValueError::new_err(err.to_string())
        }
    }
}

#[cfg(feature = "python")]
pub(crate) use py::{sign_error, transport_error};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem() {
        let cases = [
            (
                DecodeError::PreludeChecksum {
                    expected: 1,
                    actual: 0xdead_beef,
                },
                "prelude checksum mismatch: computed 0x00000001, frame says 0xdeadbeef",
            ),
            (
                DecodeError::FrameTooShort { total_length: 12 },
                "frame total length 12 is below the 16-byte minimum",
            ),
            (
                DecodeError::PayloadTooLarge { length: 1 << 32 },
                "payload length 4294967296 exceeds the 25165824 byte limit",
            ),
            (
                DecodeError::HeadersTooLarge { length: 131_073 },
                "headers length 131073 exceeds the 131072 byte limit",
            ),
            (
                DecodeError::DuplicateHeader { name: "a".into() },
                "duplicate header name \"a\"",
            ),
            (
                DecodeError::Truncated {
                    buffered: 3,
                    expected: None,
                },
                "stream ended mid-frame: 3 bytes of a 12-byte prelude received",
            ),
            (
                DecodeError::Truncated {
                    buffered: 20,
                    expected: Some(30),
                },
                "stream ended mid-frame: 20 of 30 bytes received",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
            assert_eq!(Error::from(err).to_string(), want);
        }
    }

    #[test]
    fn reassembly_service_and_encode_messages() {
        let json = ReassemblyError::InvalidJson {
            line_number: 2,
            offset: 13,
            reason: "Expecting value: line 1 column 1 (char 0)".into(),
            quoted: "\"x\"".into(),
            syntax: None,
        };
        assert_eq!(
            json.to_string(),
            "invalid JSON on line 2 (byte offset 13): Expecting value: line 1 column 1 (char 0): \"x\""
        );
        assert_eq!(
            ReassemblyError::InvalidUtf8 { offset: 5 }.to_string(),
            "invalid UTF-8 at byte offset 5 of the stream"
        );
        let err = ServiceError::Error {
            code: String::new(),
            message: "m".into(),
        };
        assert_eq!(Error::from(err).to_string(), " in the stream: m");
        assert_eq!(
            EncodeError {
                reason: "too long".into()
            }
            .to_string(),
            "cannot encode message: too long"
        );
    }

    #[test]
    fn the_source_of_an_error_is_its_kind() {
        use std::error::Error as _;
        let err = Error::from(ReassemblyError::InvalidUtf8 { offset: 1 });
        assert_eq!(
            err.source().map(ToString::to_string),
            Some("invalid UTF-8 at byte offset 1 of the stream".to_owned())
        );
    }
}
