//! Every error of the Rust core, as plain data: this module depends on no other of the crate, so
//! every module can return its errors (their Python classes are mapped in `crate::py_errors`).
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
//! [`crate::stream::Failure`]); `crate::py_errors` maps them, beside these.
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
    /// The headers section is larger than its cap (`limit`: 128 KiB, `frame::MAX_HEADERS_LENGTH`).
    HeadersTooLarge { length: u32, limit: u32 },
    /// The payload is larger than its cap (`limit`: 24 MiB, `frame::MAX_PAYLOAD_LENGTH`).
    PayloadTooLarge { length: u64, limit: u64 },
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
            Self::HeadersTooLarge { length, limit } => {
                write!(f, "headers length {length} exceeds the {limit} byte limit")
            }
            Self::PayloadTooLarge { length, limit } => {
                write!(f, "payload length {length} exceeds the {limit} byte limit")
            }
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
                DecodeError::PayloadTooLarge {
                    length: 1 << 32,
                    limit: 25_165_824,
                },
                "payload length 4294967296 exceeds the 25165824 byte limit",
            ),
            (
                DecodeError::HeadersTooLarge {
                    length: 131_073,
                    limit: 131_072,
                },
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
