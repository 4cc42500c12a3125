//! Zero-copy reading of an event stream headers section, pyo3-free.
//!
//! Each header is `name_len u8 | name | type u8 | value`. Types 0–9: bool true, bool false,
//! byte, int16, int32, int64, byte array (u16 length), string (u16 length), timestamp (i64 ms),
//! uuid (16 bytes). Names must be UTF-8 and unique within a frame (botocore rejects duplicates).

use crate::errors::DecodeError;

/// Wire type codes.
pub mod wire {
    /// Boolean true (no value bytes).
    pub const BOOL_TRUE: u8 = 0;
    /// Boolean false (no value bytes).
    pub const BOOL_FALSE: u8 = 1;
    /// Signed 8-bit integer.
    pub const BYTE: u8 = 2;
    /// Signed 16-bit integer.
    pub const INT16: u8 = 3;
    /// Signed 32-bit integer.
    pub const INT32: u8 = 4;
    /// Signed 64-bit integer.
    pub const INT64: u8 = 5;
    /// Byte array with a u16 length.
    pub const BYTES: u8 = 6;
    /// UTF-8 string with a u16 length.
    pub const STRING: u8 = 7;
    /// Signed 64-bit milliseconds since the Unix epoch.
    pub const TIMESTAMP: u8 = 8;
    /// 16 raw bytes.
    pub const UUID: u8 = 9;
}

/// A header value borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValueRef<'a> {
    /// Types 0 and 1.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Int16(i16),
    /// Type 4.
    Int32(i32),
    /// Type 5.
    Int64(i64),
    /// Type 6.
    Bytes(&'a [u8]),
    /// Type 7.
    String(&'a str),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9, big-endian.
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

/// The error for a field that runs past the end of the headers section (kept out of line).
#[cold]
#[inline(never)]
fn overrun(what: &str, needed: usize, left: usize) -> DecodeError {
    DecodeError::invalid_header(format!(
        "{what} needs {needed} bytes, {left} left in the headers section"
    ))
}

/// Iterator over the headers of one frame. Yields an error once and then stops.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
    done: bool,
    /// The whole section is ASCII (the usual case: string headers with short lengths), so
    /// every name and string value in it is valid UTF-8 without checking each one.
    ascii: bool,
}

impl<'a> HeaderIter<'a> {
    #[must_use]
    /// Iterate over the headers section `headers`.
    pub fn new(headers: &'a [u8]) -> Self {
        Self {
            rest: headers,
            done: false,
            ascii: headers.is_ascii(),
        }
    }

    /// `raw` as text, or `None` if it is not UTF-8.
    #[inline]
    fn text(&self, raw: &'a [u8]) -> Option<&'a str> {
        if self.ascii {
            // SAFETY: `raw` is a subslice of the headers section, which `new` found to be all
            // ASCII, and ASCII bytes are valid UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(raw) })
        } else {
            std::str::from_utf8(raw).ok()
        }
    }

    #[inline]
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        match self.rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(head)
            }
            None => Err(overrun(what, n, self.rest.len())),
        }
    }

    #[inline]
    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    #[inline]
    fn read_one(&mut self) -> Result<(&'a str, HeaderValueRef<'a>), DecodeError> {
        let name_len = self.take(1, "header name length")?[0] as usize;
        let name_bytes = self.take(name_len, "header name")?;
        let name = self
            .text(name_bytes)
            .ok_or_else(|| DecodeError::invalid_header("header name is not valid UTF-8"))?;
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
                    HeaderValueRef::String(self.text(raw).ok_or_else(|| {
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

    #[inline]
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

/// How many names the duplicate check keeps in a fixed array before it switches to a set.
const INLINE_NAMES: usize = 16;

/// Walk every header of a section in wire order, rejecting malformed ones and duplicate names
/// (as botocore does), without allocating for frames of up to 16 headers. Returns the count.
///
/// `visit` sees each header once it is known not to repeat an earlier name; it may stop the
/// walk with an error of its own.
pub fn visit_headers<'a>(
    headers: &'a [u8],
    mut visit: impl FnMut(&'a str, HeaderValueRef<'a>) -> Result<(), DecodeError>,
) -> Result<usize, DecodeError> {
    let mut inline: [&str; INLINE_NAMES] = [""; INLINE_NAMES];
    let mut count = 0usize;
    let mut set: Option<std::collections::HashSet<&'a str>> = None;
    for item in HeaderIter::new(headers) {
        let (name, value) = item?;
        let duplicate = match &mut set {
            Some(set) => !set.insert(name),
            None if count < INLINE_NAMES => {
                let dup = inline[..count].contains(&name);
                inline[count] = name;
                dup
            }
            None => {
                // A hostile frame can carry ~65k two-byte headers: hash from here on.
                let mut s: std::collections::HashSet<&'a str> = inline.iter().copied().collect();
                let dup = !s.insert(name);
                set = Some(s);
                dup
            }
        };
        if duplicate {
            return Err(DecodeError::DuplicateHeader {
                name: name.to_owned(),
            });
        }
        count += 1;
        visit(name, value)?;
    }
    Ok(count)
}

/// Parse every header into a `Vec`, rejecting malformed ones and duplicate names.
pub fn parse_headers(headers: &[u8]) -> Result<Vec<(&str, HeaderValueRef<'_>)>, DecodeError> {
    let mut out = Vec::with_capacity(4);
    visit_headers(headers, |name, value| {
        out.push((name, value));
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(name: &str, type_byte: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from(name.len()).unwrap()];
        out.extend_from_slice(name.as_bytes());
        out.push(type_byte);
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn every_type_is_read() {
        let mut raw = Vec::new();
        raw.extend(header("t", wire::BOOL_TRUE, &[]));
        raw.extend(header("f", wire::BOOL_FALSE, &[]));
        raw.extend(header("b", wire::BYTE, &[0xff]));
        raw.extend(header("s", wire::INT16, &[0x80, 0x00]));
        raw.extend(header("i", wire::INT32, &[0, 0, 1, 0]));
        raw.extend(header("l", wire::INT64, &[0, 0, 0, 0, 0, 0, 0, 5]));
        raw.extend(header("y", wire::BYTES, &[0, 2, 1, 2]));
        raw.extend(header("str", wire::STRING, b"\x00\x02hi"));
        raw.extend(header("ts", wire::TIMESTAMP, &(-1i64).to_be_bytes()));
        raw.extend(header("u", wire::UUID, &[9u8; 16]));
        let parsed = parse_headers(&raw).unwrap();
        assert_eq!(
            parsed,
            vec![
                ("t", HeaderValueRef::Bool(true)),
                ("f", HeaderValueRef::Bool(false)),
                ("b", HeaderValueRef::Byte(-1)),
                ("s", HeaderValueRef::Int16(i16::MIN)),
                ("i", HeaderValueRef::Int32(256)),
                ("l", HeaderValueRef::Int64(5)),
                ("y", HeaderValueRef::Bytes(&[1, 2])),
                ("str", HeaderValueRef::String("hi")),
                ("ts", HeaderValueRef::Timestamp(-1)),
                ("u", HeaderValueRef::Uuid([9u8; 16])),
            ]
        );
        let names: Vec<&str> = parsed.iter().map(|(_, v)| v.type_name()).collect();
        assert_eq!(
            names,
            [
                "bool_true",
                "bool_false",
                "byte",
                "int16",
                "int32",
                "int64",
                "bytes",
                "string",
                "timestamp",
                "uuid"
            ]
        );
    }

    #[test]
    fn a_255_byte_name_and_empty_values_are_accepted() {
        let name = "n".repeat(255);
        let mut raw = header(&name, wire::STRING, &[0, 0]);
        raw.extend(header("", wire::BYTES, &[0, 0]));
        let parsed = parse_headers(&raw).unwrap();
        assert_eq!(parsed[0], (name.as_str(), HeaderValueRef::String("")));
        assert_eq!(parsed[1], ("", HeaderValueRef::Bytes(&[])));
    }

    #[test]
    fn malformed_headers_are_rejected() {
        let cases: [&[u8]; 8] = [
            b"\x03abc\x0a",
            b"\x03abc\x07\x00\x05ab",
            b"\x03abc\x04\x00\x01",
            b"\x05ab",
            b"\x02\xff\xfe\x00",
            b"\x01a\x07\x00\x02\xc3\x28",
            b"\x01a\x09\x00",
            b"\x01a",
        ];
        for raw in cases {
            assert!(
                matches!(parse_headers(raw), Err(DecodeError::InvalidHeader { .. })),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn duplicates_are_rejected_inline_and_past_sixteen() {
        let dup = [
            header("a", 0, &[]),
            header("b", 0, &[]),
            header("a", 1, &[]),
        ]
        .concat();
        assert_eq!(
            parse_headers(&dup),
            Err(DecodeError::DuplicateHeader { name: "a".into() })
        );
        for (count, repeat) in [(16, 0), (17, 3), (100, 99), (100, 16), (100, 15)] {
            let mut raw: Vec<u8> = (0..count)
                .flat_map(|i| header(&format!("h{i}"), 0, &[]))
                .collect();
            assert_eq!(parse_headers(&raw).unwrap().len(), count);
            raw.extend(header(&format!("h{repeat}"), 0, &[]));
            assert_eq!(
                parse_headers(&raw),
                Err(DecodeError::DuplicateHeader {
                    name: format!("h{repeat}")
                }),
                "{count} {repeat}"
            );
        }
        // 128 KiB of zero bytes: two-byte headers with an empty name, a duplicate at once.
        assert_eq!(
            parse_headers(&vec![0u8; 128 * 1024]),
            Err(DecodeError::DuplicateHeader {
                name: String::new()
            })
        );
    }

    #[test]
    fn the_iterator_stops_after_an_error() {
        let raw = [header("a", 0, &[]), vec![1, b'b', 0x20]].concat();
        let items: Vec<_> = HeaderIter::new(&raw).collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
    }

    #[test]
    fn a_visitor_error_stops_the_walk() {
        let raw = [header("a", 0, &[]), header("b", 0, &[])].concat();
        let mut seen = 0;
        let err = visit_headers(&raw, |_, _| {
            seen += 1;
            Err(DecodeError::invalid_header("stop"))
        });
        assert_eq!(seen, 1);
        assert!(err.is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let walked = visit_headers(&raw, |_, _| Ok(()));
            let parsed = parse_headers(&raw);
            prop_assert_eq!(walked.map_err(|e| e.to_string()), parsed.map(|v| v.len()).map_err(|e| e.to_string()));
        }
    }
}
