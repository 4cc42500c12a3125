//! The one error type of the decoder, and (with the `python` feature) its mapping to the
//! exception classes defined in `sagestream/exceptions.py`.

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
    /// A value cannot be encoded (name or value too long, frame too large).
    Encode { reason: String },
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
            Self::Encode { reason } => write!(f, "cannot encode message: {reason}"),
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

#[cfg(feature = "python")]
mod py {
    use super::DecodeError;
    use pyo3::prelude::*;

    // These names must match the classes in `python/sagestream/exceptions.py`.
    pyo3::import_exception!(sagestream.exceptions, ChecksumMismatchError);
    pyo3::import_exception!(sagestream.exceptions, FrameTooLargeError);
    pyo3::import_exception!(sagestream.exceptions, TruncatedStreamError);
    pyo3::import_exception!(sagestream.exceptions, InvalidFrameError);
    pyo3::import_exception!(sagestream.exceptions, DuplicateHeaderError);

    impl From<DecodeError> for PyErr {
        fn from(err: DecodeError) -> PyErr {
            decode_error(&err, None)
        }
    }

    /// The Python exception for `err`, its message followed by `hint` (what the response was
    /// instead of an event stream) when there is one.
    pub(crate) fn decode_error(err: &DecodeError, hint: Option<&str>) -> PyErr {
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
            DecodeError::Encode { .. } => pyo3::exceptions::PyValueError::new_err(msg),
        }
    }
}

#[cfg(feature = "python")]
pub(crate) use py::decode_error;

#[cfg(test)]
mod tests {
    use super::DecodeError;

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
        }
    }
}
