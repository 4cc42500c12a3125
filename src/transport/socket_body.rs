//! An HTTP/1.1 response body read from its connection's socket, once hyper has parsed the head
//! (see [`super::gate`] for why hyper does not read it): `Transfer-Encoding: chunked` decoded
//! with httparse's chunk-size parser, or `Content-Length` bytes. Every read is handed over
//! whole: the data of all the chunks it brought, moved together in the read's own buffer, so a
//! stream of small frames costs a socket read per batch, not a channel hop per chunk. Between
//! reads the body holds no buffer (only the few bytes of a chunk header cut by a read), so an
//! open stream waiting for its next part holds its socket and little else.
//!
//! Read to its end, the body gives its socket back to the pool.

use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Version};

use super::connect::{Io, RawSocket};
use super::error::TransportError;
use super::gate::read_into;
use super::pool::{Idle, Pool, Socket};

/// The first read's size; it doubles while reads fill it, up to [`MAX_READ`] (a large body is
/// read in few system calls, a stream of small frames with a small buffer).
const FIRST_READ: usize = 8 * 1024;
const MAX_READ: usize = 256 * 1024;

/// How a body is delimited, when it is read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Chunked,
    Length(u64),
}

impl Framing {
    /// How the body of the answer to a `method` request with this head is read here; None when
    /// hyper reads it (no body, a body delimited by the connection's close, or not HTTP/1.1):
    /// RFC 9112 section 6.3, as hyper applies it. The head was accepted by hyper, which checked
    /// its `Content-Length` values.
    pub(crate) fn of(
        method: &Method,
        version: Version,
        status: u16,
        headers: &HeaderMap,
    ) -> Option<Self> {
        if method == Method::HEAD
            || method == Method::CONNECT
            || version != Version::HTTP_11
            || status < 200
            || status == 204
            || status == 304
        {
            return None;
        }
        if headers.contains_key(TRANSFER_ENCODING) {
            return chunked(headers).then_some(Self::Chunked);
        }
        let length = headers
            .get(CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (length > 0).then_some(Self::Length(length))
    }
}

/// Whether a head's body is chunked: `Transfer-Encoding` with `chunked` as its final coding
/// (RFC 9112 section 6.3).
pub(crate) fn chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|last| last.to_str().ok())
        .and_then(|codings| codings.rsplit(',').next())
        .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
}

/// Whether a head says its connection closes after this exchange (`Connection: close`).
pub(crate) fn closes(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|tokens| {
            tokens
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    })
}

/// Where a chunked body's decoding is.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data: this many bytes to go.
    Data(u64),
    /// At the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields (this many bytes of them so far), then CRLF.
    Trailers(usize),
}

enum State {
    Chunked(Chunk),
    Length { left: u64 },
    Done,
}

/// Where the socket goes once the body is read to its end.
pub(crate) struct Reuse {
    pub(crate) pool: Arc<Pool>,
    pub(crate) key: Arc<str>,
    pub(crate) fd: Option<RawSocket>,
}

/// A response body read from the socket.
pub(crate) struct SocketBody {
    io: Box<dyn Io>,
    /// Bytes read and not yet decoded: between reads, at most part of a chunk header.
    buf: BytesMut,
    read_size: usize,
    state: State,
    framing: Framing,
    /// None when the connection closes at the end (`Connection: close`, or the request may
    /// not all have been written).
    reuse: Option<Reuse>,
    /// A framing error met after data in the same read: given once that data was taken.
    failed: Option<TransportError>,
}

impl SocketBody {
    /// The body on `socket`, taken back from hyper once it parsed the head.
    pub(crate) fn new(socket: Socket, framing: Framing, reuse: Option<Reuse>) -> Self {
        let state = match framing {
            Framing::Chunked => State::Chunked(Chunk::Size),
            Framing::Length(left) => State::Length { left },
        };
        Self {
            io: socket.io,
            buf: socket.unread,
            read_size: FIRST_READ,
            state,
            framing,
            reuse: reuse.filter(|_| !socket.write_waiting),
            failed: None,
        }
    }

    /// The length the head declared, if it did.
    pub(crate) fn declared(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(length) => Some(length),
            Framing::Chunked => None,
        }
    }

    /// The body's next data: all that the bytes at hand hold, reading the socket once if they
    /// hold none; `None` at the end.
    pub(crate) fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, TransportError>> {
        loop {
            if let Some(err) = self.failed.take() {
                self.reuse = None;
                return Poll::Ready(Err(err));
            }
            if matches!(self.state, State::Done) {
                return Poll::Ready(Ok(None));
            }
            let data = self.decode()?;
            if !data.is_empty() {
                return Poll::Ready(Ok(Some(data)));
            }
            if matches!(self.state, State::Done) {
                return Poll::Ready(Ok(None));
            }
            self.buf.reserve(self.read_size);
            let read = match ready!(read_into(&mut self.io, cx, &mut self.buf)) {
                Ok(read) => read,
                Err(err) => {
                    return Poll::Ready(Err(TransportError::ConnectionLost {
                        message: format!(
                            "the connection was lost while reading the response: {err}"
                        ),
                    }))
                }
            };
            if read == 0 {
                return Poll::Ready(Err(TransportError::ConnectionLost {
                    message: "the connection was lost while reading the response: the server \
                              closed it before the end of the body"
                        .to_owned(),
                }));
            }
            if read == self.read_size {
                self.read_size = (self.read_size * 2).min(MAX_READ);
            }
        }
    }

    /// The data the buffered bytes hold, taken out of the buffer (empty: none yet).
    fn decode(&mut self) -> Result<Bytes, TransportError> {
        let data = match &mut self.state {
            State::Done => return Ok(Bytes::new()),
            State::Length { left } => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len());
                *left -= n as u64;
                if *left == 0 {
                    self.state = State::Done;
                }
                self.buf.split_to(n)
            }
            State::Chunked(chunk) => {
                let (moved, at, next) = dechunk(&mut self.buf, *chunk);
                match next {
                    Ok(next) => self.state = next,
                    // The data before the error first.
                    Err(err) if moved > 0 => self.failed = Some(err),
                    Err(err) => return Err(err),
                }
                // What is left is at most a chunk header cut by the read: copied out, so that
                // the read's buffer goes with its data rather than being held while waiting.
                let rest = BytesMut::from(&self.buf[at..]);
                let mut data = std::mem::replace(&mut self.buf, rest);
                data.truncate(moved);
                data
            }
        };
        if self.buf.is_empty() {
            // An empty view can still hold the read's buffer.
            self.buf = BytesMut::new();
        }
        Ok(data.freeze())
    }

    /// Give the socket back to the pool if the body was read to its end, exactly, and the
    /// connection is kept alive.
    pub(crate) fn release(self) {
        let Some(reuse) = self.reuse else { return };
        if !matches!(self.state, State::Done) || !self.buf.is_empty() {
            return; // cut short, or bytes past the body: nothing more may be read on it
        }
        let idle = Idle {
            io: self.io,
            fd: reuse.fd,
        };
        reuse.pool.checkin(reuse.key, idle);
    }
}

/// A chunked body's framing error.
fn malformed(what: &str) -> TransportError {
    TransportError::InvalidResponse {
        message: format!("malformed HTTP chunked encoding: {what}"),
    }
}

/// The longest chunk-size line (with its extensions) and trailer section accepted: hyper's
/// limits.
const MAX_CHUNK_LINE: usize = 16 * 1024;

/// Decode the chunks in `buf`, `chunk` saying where the first byte is: their data is moved to
/// the front of `buf`, in place. Returns the data's length, where the bytes not decoded yet
/// begin, and where decoding is then (or the framing error it stopped at).
fn dechunk(buf: &mut [u8], mut chunk: Chunk) -> (usize, usize, Result<State, TransportError>) {
    let (mut moved, mut at) = (0, 0);
    let state = loop {
        let rest = &buf[at..];
        match chunk {
            Chunk::Size => match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((used, size))) => {
                    at += used;
                    chunk = if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    };
                }
                Ok(httparse::Status::Partial) if rest.len() <= MAX_CHUNK_LINE => {
                    break Ok(State::Chunked(chunk))
                }
                Ok(httparse::Status::Partial) => {
                    break Err(malformed("a chunk-size line longer than 16 KiB"))
                }
                Err(_) => break Err(malformed("invalid chunk size line")),
            },
            Chunk::Data(_) if rest.is_empty() => break Ok(State::Chunked(chunk)),
            Chunk::Data(left) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                buf.copy_within(at..at + n, moved);
                moved += n;
                at += n;
                chunk = match left - n as u64 {
                    0 => Chunk::DataEnd,
                    left => Chunk::Data(left),
                };
            }
            Chunk::DataEnd => match rest {
                [b'\r', b'\n', ..] => {
                    at += 2;
                    chunk = Chunk::Size;
                }
                [] | [b'\r'] => break Ok(State::Chunked(chunk)),
                _ => break Err(malformed("no CRLF after a chunk's data")),
            },
            Chunk::Trailers(_) if rest.starts_with(b"\r\n") || rest.starts_with(b"\n") => {
                at += if rest[0] == b'\r' { 2 } else { 1 };
                break Ok(State::Done);
            }
            Chunk::Trailers(seen) => match memchr::memchr(b'\n', rest) {
                Some(end) if seen + end < MAX_CHUNK_LINE => {
                    at += end + 1;
                    chunk = Chunk::Trailers(seen + end + 1);
                }
                None if seen + rest.len() <= MAX_CHUNK_LINE => break Ok(State::Chunked(chunk)),
                _ => break Err(malformed("trailer fields longer than 16 KiB")),
            },
        }
    };
    (moved, at, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// `wire` decoded from `chunk` on, the data and what is left, cut into reads at `cuts`.
    fn decode_in_reads(wire: &[u8], cuts: &[usize]) -> (Vec<u8>, Result<usize, String>) {
        let mut data = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = Chunk::Size;
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&wire.len())) {
            pending.extend_from_slice(&wire[from..to]);
            from = to;
            let (moved, at, state) = dechunk(&mut pending, chunk);
            data.extend_from_slice(&pending[..moved]);
            pending.drain(..at);
            match state {
                Ok(State::Chunked(next)) => chunk = next,
                Ok(State::Done) => return (data, Ok(pending.len() + wire.len() - to)),
                Ok(State::Length { .. }) => unreachable!("chunked"),
                Err(err) => return (data, Err(err.to_string())),
            }
        }
        (data, Err("no end".to_owned()))
    }

    const WIRE: &[u8] =
        b"5\r\nhello\r\n1;ext=\"a b\"\r\n \r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";
    const DATA: &[u8] = b"hello 0123456789abcdef";

    #[test]
    fn chunks_decode_the_same_however_the_reads_cut_them() {
        assert_eq!(decode_in_reads(WIRE, &[]), (DATA.to_vec(), Ok(0)));
        for a in 0..WIRE.len() {
            for b in a..WIRE.len() {
                assert_eq!(
                    decode_in_reads(WIRE, &[a, b]),
                    (DATA.to_vec(), Ok(0)),
                    "cut at {a} and {b}"
                );
            }
        }
        let mut more = WIRE.to_vec();
        more.extend_from_slice(b"HTTP/1.1");
        assert_eq!(decode_in_reads(&more, &[]), (DATA.to_vec(), Ok(8)));
    }

    #[test]
    fn bad_framing_is_named_after_the_data_before_it() {
        let cases: [(&[u8], &str); 4] = [
            (b"2\r\nab\r\nzz\r\n", "invalid chunk size line"),
            (
                b"2\r\nab\r\nfffffffffffffffff\r\n",
                "invalid chunk size line",
            ),
            (b"2\r\nabXX", "no CRLF after a chunk's data"),
            (b"2\r\nab\r\n0\r\nX: 1\r\n", "no end"),
        ];
        for (wire, named) in cases {
            let (data, end) = decode_in_reads(wire, &[]);
            assert_eq!(data, b"ab", "{named}");
            let message = end.expect_err(named);
            assert!(message.contains(named), "{message}");
        }
        let long = [b"1".as_slice(), &vec![b' '; MAX_CHUNK_LINE + 1]].concat();
        assert!(decode_in_reads(&long, &[])
            .1
            .expect_err("too long")
            .contains("longer than 16 KiB"));
        let trailers = [
            b"0\r\n".as_slice(),
            &vec![b'x'; MAX_CHUNK_LINE + 1],
            b"\r\n\r\n",
        ]
        .concat();
        assert!(decode_in_reads(&trailers, &[])
            .1
            .expect_err("too long")
            .contains("trailer fields"));
    }

    #[test]
    fn only_bodies_with_chunks_or_a_length_are_read_here() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        };
        let chunked = headers(&[("transfer-encoding", "gzip, chunked")]);
        let length = headers(&[("content-length", "12")]);
        let of = |method: &Method, status: u16, h: &HeaderMap| {
            Framing::of(method, Version::HTTP_11, status, h)
        };
        assert_eq!(of(&Method::POST, 200, &chunked), Some(Framing::Chunked));
        assert_eq!(of(&Method::POST, 500, &length), Some(Framing::Length(12)));
        // No body, or one only the connection's close ends: hyper's.
        assert_eq!(of(&Method::HEAD, 200, &length), None);
        assert_eq!(of(&Method::CONNECT, 200, &length), None);
        assert_eq!(of(&Method::POST, 204, &chunked), None);
        assert_eq!(of(&Method::POST, 304, &length), None);
        assert_eq!(of(&Method::POST, 101, &length), None);
        assert_eq!(
            of(&Method::POST, 200, &headers(&[("content-length", "0")])),
            None
        );
        assert_eq!(of(&Method::POST, 200, &HeaderMap::new()), None);
        let not_last = headers(&[("transfer-encoding", "chunked, gzip")]);
        assert_eq!(of(&Method::POST, 200, &not_last), None);
        assert_eq!(
            Framing::of(&Method::POST, Version::HTTP_10, 200, &length),
            None
        );
        assert!(closes(&headers(&[("connection", "keep-alive, Close")])));
        assert!(!closes(&headers(&[("connection", "keep-alive")])));
    }
}
