//! HTTP/1.1 chunked transfer decoding (RFC 9112 section 7.1), pyo3-free.
//!
//! The streaming client reads the raw response body in large blocks straight from the socket
//! and removes the chunk framing here, handing the chunk data to the event stream decoder
//! without copying it. Parsing is strict: hexadecimal sizes (extensions allowed and ignored),
//! CRLF line ends, the last chunk and trailer fields. Every buffered line is bounded.

use std::fmt;

/// Longest chunk-size line accepted, extensions included.
pub const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section accepted.
pub const MAX_TRAILERS: usize = 64 * 1024;
/// Most hexadecimal digits in a chunk size (leading zeros not counted): 2^60 - 1 at most.
const MAX_SIZE_DIGITS: usize = 15;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedError {
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid HTTP/1.1 chunked body: {}", self.reason)
    }
}

impl std::error::Error for ChunkedError {}

fn bad(reason: impl Into<String>) -> ChunkedError {
    ChunkedError {
        reason: reason.into(),
    }
}

/// An error from [`ChunkedDecoder::feed`]: the framing, or the sink's own error.
#[derive(Debug)]
pub enum FeedError<E> {
    /// The chunk framing is malformed.
    Chunked(ChunkedError),
    /// The sink returned an error; decoding stopped there.
    Sink(E),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line into `line`.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// Reading trailer lines (after the last chunk) into `line`.
    Trailer,
    /// The body is complete.
    Done,
}

/// Incremental chunked-body decoder.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
    trailer_bytes: usize,
    failed: Option<ChunkedError>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: State::Size,
            line: Vec::new(),
            trailer_bytes: 0,
            failed: None,
        }
    }

    /// True once the last chunk and the trailers (ended by an empty line) were read.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// True when the body stopped exactly between chunks (no partial size line or data).
    #[must_use]
    pub fn at_chunk_boundary(&self) -> bool {
        self.state == State::Size && self.line.is_empty()
    }

    /// Decode one read, handing each piece of chunk data to `sink` in order.
    ///
    /// Returns how many bytes of `input` belong to the body: fewer than `input.len()` only
    /// once the body is complete (the rest follows the body on the connection).
    pub fn feed<E>(
        &mut self,
        input: &[u8],
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<usize, FeedError<E>> {
        if let Some(err) = &self.failed {
            return Err(FeedError::Chunked(err.clone()));
        }
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Done => return Ok(pos),
                State::Data(left) => {
                    let avail = input.len() - pos;
                    let take = usize::try_from(left).map_or(avail, |l| l.min(avail));
                    let data = &input[pos..pos + take];
                    pos += take;
                    // `take` ≤ `left` by construction.
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    sink(data).map_err(FeedError::Sink)?;
                }
                State::DataCr => {
                    if input[pos] != b'\r' {
                        return Err(self.fail("chunk data not followed by CRLF"));
                    }
                    pos += 1;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if input[pos] != b'\n' {
                        return Err(self.fail("chunk data not followed by CRLF"));
                    }
                    pos += 1;
                    self.state = State::Size;
                }
                State::Size | State::Trailer => {
                    let rest = &input[pos..];
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        self.push_line(rest)?;
                        pos = input.len();
                        continue;
                    };
                    self.push_line(&rest[..=nl])?;
                    pos += nl + 1;
                    let line = std::mem::take(&mut self.line);
                    let result = if self.state == State::Size {
                        self.on_size_line(&line)
                    } else {
                        self.on_trailer_line(&line)
                    };
                    self.line = line;
                    self.line.clear();
                    result?;
                }
            }
        }
        Ok(pos)
    }

    fn push_line<E>(&mut self, bytes: &[u8]) -> Result<(), FeedError<E>> {
        let limit = if self.state == State::Size {
            MAX_SIZE_LINE
        } else {
            MAX_TRAILERS.saturating_sub(self.trailer_bytes)
        };
        if self.line.len() + bytes.len() > limit {
            let what = if self.state == State::Size {
                "chunk-size line longer than 4096 bytes"
            } else {
                "trailer section larger than 64 KiB"
            };
            return Err(self.fail(what));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn on_size_line<E>(&mut self, line: &[u8]) -> Result<(), FeedError<E>> {
        let Some(content) = line.strip_suffix(b"\r\n") else {
            return Err(self.fail("chunk-size line not ended by CRLF"));
        };
        let digits_end = content
            .iter()
            .position(|b| !b.is_ascii_hexdigit())
            .unwrap_or(content.len());
        if digits_end == 0 {
            return Err(self.fail(format!(
                "chunk size is not hexadecimal: {:?}",
                String::from_utf8_lossy(&content[..content.len().min(40)])
            )));
        }
        let digits = &content[..digits_end];
        let significant = digits
            .iter()
            .position(|&b| b != b'0')
            .map_or(0, |first| digits.len() - first);
        if significant > MAX_SIZE_DIGITS {
            return Err(self.fail(format!(
                "chunk size has {significant} hexadecimal digits, at most {MAX_SIZE_DIGITS} accepted"
            )));
        }
        let mut size: u64 = 0;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                _ => d - b'A' + 10,
            };
            size = (size << 4) | u64::from(v);
        }
        // After the size: optional whitespace then `;` extensions, which are ignored.
        let rest = &content[digits_end..];
        let trimmed_start = rest
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(rest.len());
        let rest = &rest[trimmed_start..];
        if !rest.is_empty() {
            if rest[0] != b';' {
                return Err(self.fail("unexpected characters after the chunk size"));
            }
            if rest.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
                return Err(self.fail("control character in a chunk extension"));
            }
        }
        self.state = if size == 0 {
            State::Trailer
        } else {
            State::Data(size)
        };
        Ok(())
    }

    fn on_trailer_line<E>(&mut self, line: &[u8]) -> Result<(), FeedError<E>> {
        let Some(content) = line.strip_suffix(b"\r\n") else {
            return Err(self.fail("trailer line not ended by CRLF"));
        };
        if content.is_empty() {
            self.state = State::Done;
            return Ok(());
        }
        self.trailer_bytes += line.len();
        let Some(colon) = content.iter().position(|&b| b == b':') else {
            return Err(self.fail("trailer line without a colon"));
        };
        if colon == 0
            || content[..colon]
                .iter()
                .any(|&b| b <= b' ' || b >= 0x7f || b == b':')
        {
            return Err(self.fail("invalid trailer field name"));
        }
        Ok(())
    }

    fn fail<E>(&mut self, reason: impl Into<String>) -> FeedError<E> {
        let err = bad(reason);
        self.failed = Some(err.clone());
        self.line = Vec::new();
        FeedError::Chunked(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(input: &[u8], step: usize) -> Result<(Vec<u8>, bool, usize), ChunkedError> {
        let mut dec = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut consumed = 0;
        for piece in input.chunks(step.max(1)) {
            let n = dec
                .feed(piece, |d| -> Result<(), ()> {
                    out.extend_from_slice(d);
                    Ok(())
                })
                .map_err(|e| match e {
                    FeedError::Chunked(c) => c,
                    FeedError::Sink(()) => bad("sink"),
                })?;
            consumed += n;
            if dec.is_done() {
                break;
            }
        }
        Ok((out, dec.is_done(), consumed))
    }

    #[test]
    fn decodes_across_every_split() {
        let body = b"5\r\nhello\r\n6;name=value\r\n world\r\n00\r\nX-Trailer: 1\r\n\r\n";
        for step in 1..=11 {
            let (out, done, consumed) = decode_split(body, step).unwrap();
            assert_eq!(out, b"hello world", "step {step}");
            assert!(done);
            assert_eq!(consumed, body.len());
        }
    }

    #[test]
    fn uppercase_hex_and_whitespace_before_extension() {
        let body = b"A \t;ext\r\n0123456789\r\n0\r\n\r\n";
        let (out, done, _) = decode_split(body, 64).unwrap();
        assert_eq!(out, b"0123456789");
        assert!(done);
    }

    #[test]
    fn stops_at_end_of_body() {
        let body = b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK";
        let mut dec = ChunkedDecoder::new();
        let n = dec.feed(body, |_| -> Result<(), ()> { Ok(()) }).unwrap();
        assert_eq!(n, body.len() - "HTTP/1.1 200 OK".len());
        assert!(dec.is_done());
    }

    #[test]
    fn incomplete_body_is_not_done() {
        for body in [
            &b"5\r\nhel"[..],
            b"5\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\n",
            b"5",
        ] {
            let (_, done, _) = decode_split(body, 3).unwrap();
            assert!(!done);
        }
        let mut dec = ChunkedDecoder::new();
        dec.feed(b"3\r\nabc\r\n", |_| -> Result<(), ()> { Ok(()) })
            .unwrap();
        assert!(dec.at_chunk_boundary());
        dec.feed(b"3\r\nab", |_| -> Result<(), ()> { Ok(()) })
            .unwrap();
        assert!(!dec.at_chunk_boundary());
    }

    #[test]
    fn rejects_malformed_framing() {
        let cases: &[&[u8]] = &[
            b"x\r\n",
            b"\r\n",
            b"-1\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"5\r\nhello\rX",
            b"5 x\r\n",
            b"1000000000000000\r\n",
            b"5;a\x01b\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: empty name\r\n\r\n",
            b"0\r\ntrailer: ok\n",
        ];
        for case in cases {
            for step in [1, 2, 64] {
                assert!(decode_split(case, step).is_err(), "{case:?} step {step}");
            }
        }
    }

    #[test]
    fn error_is_sticky() {
        let mut dec = ChunkedDecoder::new();
        assert!(dec
            .feed(b"zz\r\n", |_| -> Result<(), ()> { Ok(()) })
            .is_err());
        assert!(dec
            .feed(b"1\r\na\r\n", |_| -> Result<(), ()> { Ok(()) })
            .is_err());
    }

    #[test]
    fn bounds_lines() {
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE));
        assert!(decode_split(&long, 1000).is_err());
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"X-Some-Trailer: 0123456789012345678901234567890123\r\n");
        }
        assert!(decode_split(&trailers, 4096).is_err());
    }

    #[test]
    fn huge_size_streams_without_buffering() {
        let mut dec = ChunkedDecoder::new();
        let mut seen = 0usize;
        dec.feed(b"fffffffffffffff\r\n", |_| -> Result<(), ()> { Ok(()) })
            .unwrap();
        for _ in 0..10 {
            dec.feed(&[0u8; 1000], |d| -> Result<(), ()> {
                seen += d.len();
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(seen, 10_000);
        assert!(!dec.is_done());
    }

    #[test]
    fn sink_error_stops_decoding() {
        let mut dec = ChunkedDecoder::new();
        let r = dec.feed(b"1\r\na\r\n1\r\nb\r\n", |_| Err("stop"));
        assert!(matches!(r, Err(FeedError::Sink("stop"))));
    }
}
