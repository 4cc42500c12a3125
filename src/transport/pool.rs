//! Idle HTTP/1.1 connections, per `scheme://host:port`, kept as botocore's urllib3 pool keeps
//! them: up to `max_pool_connections` idle ones per host, with more opened when all are busy
//! (urllib3 `block=False`) and dropped instead of kept when the pool is full.
//!
//! The pool keeps sockets, not hyper connections: each request on a socket gets a new hyper
//! connection ([`Open`]), made when the socket is taken out, so an idle socket holds little
//! (hyper's request channel and buffers are about 24 KiB). A connection is driven by whoever
//! uses it ([`Driver`]): the request that sends on it, then, when hyper reads the body (one
//! without a length or chunks), the body's reader, in the same task (hyper hands a body from
//! the future that reads the socket to its reader through a one-chunk channel: in a task of its
//! own, every chunk would cost two task wake-ups). A body read from the socket instead takes
//! the connection apart and, read to its end, gives the socket back ([`Pool::checkin`]); one
//! hyper read gives it back once hyper is done with it ([`Pool::give_back`]). An idle socket is
//! read by nobody, as urllib3's are: whether the peer closed it is looked at when it is taken
//! out ([`Pool::checkout`]).

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Context;

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::client::conn::http1::{Connection, SendRequest};

use super::connect::{Io, RawSocket};
use super::gate::{Gate, Switch};

/// A request's body as hyper's HTTP/1.1 connection takes it: boxed, because the connection's
/// request channel allocates a block of 32 slots when the connection is made and keeps it for
/// the connection's life, each slot the size of a whole `http::Request`; a body of one pointer
/// rather than `Full`'s four takes 768 bytes off every connection.
pub(crate) type RequestBody = Box<Full<Bytes>>;

pub(crate) type Sender = SendRequest<RequestBody>;

/// hyper's half of an HTTP/1.1 connection: the future that writes requests to its socket and
/// reads responses from it. Dropped, it closes the socket.
pub(crate) struct Driver(Option<Pin<Box<H1Connection>>>);

type H1Connection = Connection<Gate, RequestBody>;

/// How long a connection that finished its response may take to be ready for the next one
/// before it is dropped instead of pooled.
const READY_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

impl Driver {
    pub(crate) fn new(connection: H1Connection) -> Self {
        Self(Some(Box::pin(connection)))
    }

    /// Let the connection read and write what it can now (its wake-ups come to the task of
    /// `cx`). False once it has ended: closed, failed, or done with a `Connection: close`
    /// response; its errors reach the request or the body being read, as hyper reports them.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(connection) = self.0.as_mut() {
            if connection.as_mut().poll(cx).is_ready() {
                self.0 = None;
            }
        }
        self.0.is_some()
    }

    /// hyper's connection taken apart: its socket, with what was read from it and not parsed.
    /// None if the connection has ended.
    pub(crate) fn into_socket(mut self) -> Option<Socket> {
        let connection = Pin::into_inner(self.0.take()?);
        let parts = connection.into_parts();
        let (io, held, write_waiting) = parts.io.into_parts();
        // hyper's bytes came before the gate's (normally hyper has none: the gate gave it the
        // head only, and it parsed that).
        let unread = if parts.read_buf.is_empty() {
            held
        } else {
            let mut unread = BytesMut::with_capacity(parts.read_buf.len() + held.len());
            unread.extend_from_slice(&parts.read_buf);
            unread.extend_from_slice(&held);
            unread
        };
        Some(Socket {
            io,
            unread,
            write_waiting,
        })
    }
}

/// A socket taken back from hyper.
pub(crate) struct Socket {
    pub(crate) io: Box<dyn Io>,
    /// What was read from it and not parsed: past a response head, the body's first bytes.
    pub(crate) unread: BytesMut,
    /// Whether hyper's last write waited for the socket: part of the request may not have gone
    /// out.
    pub(crate) write_waiting: bool,
}

/// A connection in use: hyper's sender and connection on the socket, the socket's descriptor,
/// and the switch of the gate hyper reads it through.
pub(crate) struct Open {
    pub(crate) sender: Sender,
    pub(crate) driver: Driver,
    pub(crate) fd: Option<RawSocket>,
    pub(crate) switch: Switch,
}

/// An idle connection: the socket alone, and its descriptor, to look at before reuse. hyper's
/// connection (its request channel and buffers, about 24 KiB) is made again when the socket is
/// used: kept idle, a socket holds little.
pub(crate) struct Idle {
    pub(crate) io: Box<dyn Io>,
    pub(crate) fd: Option<RawSocket>,
}

/// Whether the peer closed an idle connection, or sent on it unasked (either way it cannot
/// carry a request): urllib3's `is_connection_dropped`. An idle connection's task may not have
/// run since: nobody drives an idle connection (see the module's note).
///
/// A one-byte `MSG_PEEK` read, the same call on every platform: bytes or end of stream (or an
/// error) mean dropped; "would block" means quiet. tokio's sockets are non-blocking, so the
/// peek never waits.
fn dropped(fd: Option<RawSocket>) -> bool {
    let Some(raw) = fd else { return false };
    // SAFETY: `raw` is the idle connection's own socket, valid (not -1 / INVALID_SOCKET, see
    // `raw_socket`) and open while its `Idle` holds it, which nothing else reads or drops
    // meanwhile (the pool's lock is held); it is only borrowed for this call.
    #[cfg(unix)]
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    // SAFETY: as above.
    #[cfg(windows)]
    let borrowed = unsafe { std::os::windows::io::BorrowedSocket::borrow_raw(raw) };
    let socket = socket2::SockRef::from(&borrowed);
    let mut byte = [MaybeUninit::<u8>::uninit()];
    match socket.peek(&mut byte) {
        Ok(_) => true,
        Err(err) => err.kind() != io::ErrorKind::WouldBlock,
    }
}

/// The idle connections of one transport (on one runtime).
pub struct Pool {
    max_idle: usize,
    idle: Mutex<HashMap<Arc<str>, Vec<Idle>>>,
}

impl Pool {
    /// A pool keeping `max_idle` idle connections per host.
    #[must_use]
    pub fn new(max_idle: usize) -> Self {
        Self {
            max_idle,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// The most recently used idle connection to `key` that is still open.
    pub(crate) fn checkout(&self, key: &str) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let sockets = idle.get_mut(key)?;
        while let Some(entry) = sockets.pop() {
            if !dropped(entry.fd) {
                return Some(entry);
            }
        }
        None
    }

    /// Keep `entry` for the next request to `key`, unless the pool for it is full.
    pub(crate) fn checkin(&self, key: Arc<str>, entry: Idle) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let sockets = idle.entry(key).or_default();
        if sockets.len() < self.max_idle {
            sockets.push(entry);
        }
    }

    /// Keep the socket of `open`, whose response hyper read to its end, once hyper is done with
    /// it (unless that takes longer than a grace period, or hyper ended the connection: then it
    /// is closed).
    pub(crate) async fn give_back(&self, key: Arc<str>, open: Open) {
        let Open {
            mut sender,
            mut driver,
            fd,
            ..
        } = open;
        let ready = std::future::poll_fn(|cx| {
            driver.drive(cx);
            sender.poll_ready(cx)
        });
        if !matches!(tokio::time::timeout(READY_GRACE, ready).await, Ok(Ok(()))) {
            return;
        }
        drop(sender);
        if let Some(Socket { io, unread, .. }) = driver.into_socket() {
            if unread.is_empty() {
                self.checkin(key, Idle { io, fd });
            }
        }
    }

    /// Idle connections kept now, over all hosts (for tests and metrics).
    #[must_use]
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.values().map(Vec::len).sum()
    }

    /// Close every idle connection.
    pub fn clear(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::{TcpListener, TcpStream};

    #[allow(clippy::unnecessary_wraps)] // the shape `dropped` takes
    fn raw(stream: &TcpStream) -> Option<RawSocket> {
        #[cfg(unix)]
        let raw = std::os::fd::AsRawFd::as_raw_fd(stream);
        #[cfg(windows)]
        let raw = std::os::windows::io::AsRawSocket::as_raw_socket(stream);
        Some(raw)
    }

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let ours = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (peer, _) = listener.accept().expect("accept");
        ours.set_nonblocking(true).expect("non-blocking");
        (ours, peer)
    }

    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    #[test]
    fn a_quiet_connection_is_not_dropped() {
        let (ours, _peer) = pair();
        assert!(!dropped(raw(&ours)));
        assert!(!dropped(None));
    }

    #[test]
    fn a_closed_or_talking_peer_drops_the_connection() {
        let (ours, peer) = pair();
        drop(peer);
        settle();
        assert!(dropped(raw(&ours)));

        let (ours, mut peer) = pair();
        peer.write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .expect("write");
        settle();
        assert!(dropped(raw(&ours)));
        // A peek leaves the bytes where they were.
        assert!(dropped(raw(&ours)));
    }
}
