//! What hyper's HTTP/1.1 connection reads through: the socket, with a gate that stops at the end
//! of a response head.
//!
//! hyper hands a response body from the connection to its reader through a one-chunk channel:
//! every HTTP chunk (one per event frame) is decoded by hyper's state machine, sent, and woken
//! for, and the connection holds about 24 KiB (its request channel, write buffer and read
//! buffer) for as long as the body is open. A response stream is read for its whole life, so
//! both costs are paid per part and per open stream. hyper has no API to read a body from the
//! socket itself, and `Connection::into_parts` after the head is too late (hyper has read and
//! begun to decode the body by then). So hyper writes the request and parses the head, and
//! reads nothing past it: the gate gives it bytes up to the end of the final response head and
//! then nothing, and the body is read from the socket here ([`super::socket_body`]) once the
//! connection is taken apart. When the body is one hyper should read after all (no framing
//! this crate reads, or a `HEAD` request), the gate is opened and hyper reads on as usual.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf as _, BytesMut};

use super::connect::Io;

/// Give hyper the bytes up to the end of the next final response head, then stop.
const HOLD: u8 = 0;
/// Give hyper nothing: the head was given, and the body is not hyper's to read.
const HELD: u8 = 1;
/// Give hyper everything.
const PASS: u8 = 2;

/// How much is read from the socket at a time while a head is awaited.
const HEAD_READ: usize = 8 * 1024;

/// The gate's position, set from outside while hyper owns the gate. A gate holds at the end of
/// the first final head it meets: a socket gets a new gate and a new hyper connection for each
/// request (see `pool`).
#[derive(Clone)]
pub(crate) struct Switch(Arc<AtomicU8>);

impl Switch {
    /// Let hyper read on (the body is hyper's).
    pub(crate) fn pass(&self) {
        self.0.store(PASS, Ordering::Relaxed);
    }

    /// Whether the gate stopped at the end of a head.
    pub(crate) fn is_held(&self) -> bool {
        self.0.load(Ordering::Relaxed) == HELD
    }
}

/// The end of a response head in the bytes as they come (an empty line: `\n\n` or `\n\r\n`, as
/// hyper's parser, httparse, accepts both), and whether that head was an informational one
/// (`1xx` but `101`), which another head follows.
#[derive(Default)]
struct HeadEnd {
    /// The first bytes of the current head, through its status code (`HTTP/1.1 200`).
    start: [u8; 12],
    seen: usize,
    /// 0: inside a line; 1: just after `\n`; 2: just after `\n\r`.
    line: u8,
}

impl HeadEnd {
    /// How many of `bytes` belong to heads that end in them, up to the end of the final head;
    /// None if it does not end in them.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut at = 0;
        self.note(bytes);
        while at < bytes.len() {
            match (self.line, bytes[at]) {
                (1 | 2, b'\n') => {
                    at += 1;
                    let informational =
                        self.seen >= 12 && self.start[9] == b'1' && self.start[9..12] != *b"101";
                    *self = Self::default();
                    if !informational {
                        return Some(at);
                    }
                    self.note(&bytes[at..]);
                }
                (1, b'\r') => {
                    self.line = 2;
                    at += 1;
                }
                (1 | 2, _) => {
                    self.line = 0;
                    at += 1;
                }
                _ => match memchr::memchr(b'\n', &bytes[at..]) {
                    Some(newline) => {
                        self.line = 1;
                        at += newline + 1;
                    }
                    None => at = bytes.len(),
                },
            }
        }
        None
    }

    /// Keep the first bytes of the current head, which continues with `bytes`.
    fn note(&mut self, bytes: &[u8]) {
        if self.seen < self.start.len() {
            let n = (self.start.len() - self.seen).min(bytes.len());
            self.start[self.seen..self.seen + n].copy_from_slice(&bytes[..n]);
            self.seen += n;
        }
    }
}

/// A connection's socket as hyper's HTTP/1.1 connection reads and writes it.
pub(crate) struct Gate {
    io: Box<dyn Io>,
    switch: Switch,
    /// What was read from the socket and not given to hyper: past a head, the body's first
    /// bytes.
    held: BytesMut,
    head: HeadEnd,
    /// Whether hyper's last write or flush waited for the socket: then part of the request may
    /// not have gone out when the answer came.
    write_waiting: bool,
}

impl Gate {
    /// A gate on `io`, stopping at the end of the first response head, and its switch.
    pub(crate) fn new(io: Box<dyn Io>) -> (Self, Switch) {
        let switch = Switch(Arc::new(AtomicU8::new(HOLD)));
        let gate = Self {
            io,
            switch: switch.clone(),
            held: BytesMut::new(),
            head: HeadEnd::default(),
            write_waiting: false,
        };
        (gate, switch)
    }

    /// The socket, the bytes read from it past the head, and whether the request may not all
    /// have been written.
    pub(crate) fn into_parts(self) -> (Box<dyn Io>, BytesMut, bool) {
        (self.io, self.held, self.write_waiting)
    }

    fn give_held(&mut self, buf: &mut hyper::rt::ReadBufCursor<'_>, scan: bool) {
        let available = self.held.len().min(buf.remaining());
        let given = if scan {
            match self.head.scan(&self.held[..available]) {
                Some(end) => {
                    self.switch.0.store(HELD, Ordering::Relaxed);
                    end
                }
                None => available,
            }
        } else {
            available
        };
        buf.put_slice(&self.held[..given]);
        self.held.advance(given);
        if self.held.is_empty() {
            // Not kept for the connection's life: most of it is idle.
            self.held = BytesMut::new();
        }
    }
}

impl hyper::rt::Read for Gate {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.switch.0.load(Ordering::Relaxed) {
            PASS if this.held.is_empty() => Pin::new(&mut this.io).poll_read(cx, buf),
            PASS => {
                this.give_held(&mut buf, false);
                Poll::Ready(Ok(()))
            }
            // Nothing more for hyper: its connection is taken apart next, or opened (`pass`)
            // and driven again by the one who holds it, so no wake-up is owed.
            HELD => Poll::Pending,
            _ => {
                if this.held.is_empty() {
                    this.held.reserve(HEAD_READ);
                    let filled = read_into(&mut this.io, cx, &mut this.held);
                    if !matches!(filled, Poll::Ready(Ok(n)) if n > 0) {
                        // Nothing came (a pooled connection is looked at this way): the buffer
                        // is not kept while the connection waits.
                        this.held = BytesMut::new();
                    }
                    if ready!(filled)? == 0 {
                        return Poll::Ready(Ok(())); // the end of the stream, for hyper to see
                    }
                }
                this.give_held(&mut buf, true);
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// Read from `io` into the spare capacity of `buf` (reserved by the caller); the bytes read.
pub(crate) fn read_into(
    io: &mut Box<dyn Io>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
    let mut read = hyper::rt::ReadBuf::uninit(spare);
    ready!(hyper::rt::Read::poll_read(
        Pin::new(io),
        cx,
        read.unfilled()
    ))?;
    let n = read.filled().len();
    // SAFETY: the read initialized the first `n` bytes of the spare capacity (`filled`), which
    // start at `buf.len()`.
    unsafe { buf.set_len(buf.len() + n) };
    Poll::Ready(Ok(n))
}

impl hyper::rt::Write for Gate {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.write_waiting = polled.is_pending();
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.write_waiting = polled.is_pending();
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.write_waiting = polled.is_pending();
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(pieces: &[&[u8]]) -> Vec<Option<usize>> {
        let mut head = HeadEnd::default();
        pieces.iter().map(|p| head.scan(p)).collect()
    }

    #[test]
    fn a_head_ends_at_its_empty_line_however_the_bytes_come() {
        let head = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
        assert_eq!(ends(&[head]), vec![Some(head.len() - 4)]);
        for cut in 0..head.len() - 4 {
            let (a, b) = head.split_at(cut);
            let expected_b = head.len() - 4 - cut;
            assert_eq!(ends(&[a, b]), vec![None, Some(expected_b)], "cut at {cut}");
        }
        assert_eq!(ends(&[b"HTTP/1.1 200 OK\n\nx"]), vec![Some(17)]);
        assert_eq!(ends(&[b"HTTP/1.1 200 OK\nA: b\n\r\nx"]), vec![Some(23)]);
        assert_eq!(ends(&[b"HTTP/1.1 200 OK\r\nA: \rb\r\n"]), vec![None]);
    }

    #[test]
    fn an_informational_head_is_passed_over_but_not_a_101() {
        let two = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nbody";
        assert_eq!(ends(&[two]), vec![Some(two.len() - 4)]);
        let (a, b) = two.split_at(30);
        assert_eq!(ends(&[a, b]), vec![None, Some(two.len() - 4 - 30)]);
        let upgrade = b"HTTP/1.1 101 Switching Protocols\r\n\r\nraw";
        assert_eq!(ends(&[upgrade]), vec![Some(upgrade.len() - 3)]);
    }
}
