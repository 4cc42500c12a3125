//! Zero-copy reading of an event stream headers section, pyo3-free.
//!
//! Each header is `name_len u8 | name | type u8 | value`. Types 0–9: bool true, bool false,
//! byte, int16, int32, int64, byte array (u16 length), string (u16 length), timestamp (i64 ms),
//! uuid (16 bytes). Names must be UTF-8 and unique within a frame (botocore rejects duplicates).

use crate::errors::DecodeError;

/// Wire type codes.
pub mod wire {
    pub const BOOL_TRUE: u8 = 0;
    pub const BOOL_FALSE: u8 = 1;
    pub const BYTE: u8 = 2;
    pub const INT16: u8 = 3;
    pub const INT32: u8 = 4;
    pub const INT64: u8 = 5;
    pub const BYTES: u8 = 6;
    pub const STRING: u8 = 7;
    pub const TIMESTAMP: u8 = 8;
    pub const UUID: u8 = 9;
}

/// A header value borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValueRef<'a> {
    Bool(bool),
    Byte(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Bytes(&'a [u8]),
    String(&'a str),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

impl HeaderValueRef<'_> {
    /// The wire type name used in the Python API and the conformance expectations.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Bool(true) => "bool_true",
            Self::Bool(false) => "bool_false",
            Self::Byte(_) => "byte",
            Self::Int16(_) => "int16",
            Self::Int32(_) => "int32",
            Self::Int64(_) => "int64",
            Self::Bytes(_) => "bytes",
            Self::String(_) => "string",
            Self::Timestamp(_) => "timestamp",
            Self::Uuid(_) => "uuid",
        }
    }
}

/// Iterator over the headers of one frame. Yields an error once and then stops.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> HeaderIter<'a> {
    #[must_use]
    pub fn new(headers: &'a [u8]) -> Self {
        Self {
            rest: headers,
            done: false,
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::invalid_header(format!(
                "{what} needs {n} bytes, {} left in the headers section",
                self.rest.len()
            )));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn read_one(&mut self) -> Result<(&'a str, HeaderValueRef<'a>), DecodeError> {
        let name_len = self.take(1, "header name length")?[0] as usize;
        let name_bytes = self.take(name_len, "header name")?;
        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| DecodeError::invalid_header("header name is not valid UTF-8"))?;
        let value_type = self.take(1, "header value type")?[0];
        let value = match value_type {
            wire::BOOL_TRUE => HeaderValueRef::Bool(true),
            wire::BOOL_FALSE => HeaderValueRef::Bool(false),
            wire::BYTE => HeaderValueRef::Byte(i8::from_be_bytes(self.fixed("byte value")?)),
            wire::INT16 => HeaderValueRef::Int16(i16::from_be_bytes(self.fixed("int16 value")?)),
            wire::INT32 => HeaderValueRef::Int32(i32::from_be_bytes(self.fixed("int32 value")?)),
            wire::INT64 => HeaderValueRef::Int64(i64::from_be_bytes(self.fixed("int64 value")?)),
            wire::BYTES | wire::STRING => {
                let len = u16::from_be_bytes(self.fixed("value length")?) as usize;
                let raw = self.take(len, "header value")?;
                if value_type == wire::BYTES {
                    HeaderValueRef::Bytes(raw)
                } else {
                    HeaderValueRef::String(std::str::from_utf8(raw).map_err(|_| {
                        DecodeError::invalid_header(format!(
                            "value of header {name:?} is not valid UTF-8"
                        ))
                    })?)
                }
            }
            wire::TIMESTAMP => {
                HeaderValueRef::Timestamp(i64::from_be_bytes(self.fixed("timestamp value")?))
            }
            wire::UUID => HeaderValueRef::Uuid(self.fixed("uuid value")?),
            other => {
                return Err(DecodeError::invalid_header(format!(
                    "header {name:?} has unknown value type {other}"
                )))
            }
        };
        Ok((name, value))
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<(&'a str, HeaderValueRef<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        let item = self.read_one();
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

/// Parse every header, rejecting malformed ones and duplicate names.
pub fn parse_headers(headers: &[u8]) -> Result<Vec<(&str, HeaderValueRef<'_>)>, DecodeError> {
    let mut out: Vec<(&str, HeaderValueRef<'_>)> = Vec::with_capacity(4);
    let mut seen: Option<std::collections::HashSet<&str>> = None;
    for item in HeaderIter::new(headers) {
        let (name, value) = item?;
        // Linear scan while small; a set once a hostile frame carries many headers.
        let duplicate = match &mut seen {
            Some(set) => !set.insert(name),
            None => {
                let dup = out.iter().any(|(n, _)| *n == name);
                if !dup && out.len() >= 16 {
                    let mut set: std::collections::HashSet<&str> =
                        out.iter().map(|(n, _)| *n).collect();
                    set.insert(name);
                    seen = Some(set);
                }
                dup
            }
        };
        if duplicate {
            return Err(DecodeError::DuplicateHeader {
                name: name.to_owned(),
            });
        }
        out.push((name, value));
    }
    Ok(out)
}
