//! Idle HTTP/1.1 connections, per `scheme://host:port`, kept as botocore's urllib3 pool keeps
//! them: up to `max_pool_connections` idle ones per host, with more opened when all are busy
//! (urllib3 `block=False`) and dropped instead of kept when the pool is full.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// A connection's socket as the system names it: a descriptor on Unix, a `SOCKET` on Windows.
#[cfg(unix)]
pub(crate) type RawSocket = std::os::fd::RawFd;
/// A connection's socket as the system names it: a descriptor on Unix, a `SOCKET` on Windows.
#[cfg(windows)]
pub(crate) type RawSocket = std::os::windows::io::RawSocket;

/// The socket under a connection, to look at before the connection is reused.
#[cfg(unix)]
pub(crate) fn raw_socket(tcp: &tokio::net::TcpStream) -> Option<RawSocket> {
    use std::os::fd::AsRawFd as _;
    Some(tcp.as_raw_fd()).filter(|fd| *fd >= 0)
}

/// The socket under a connection, to look at before the connection is reused.
#[cfg(windows)]
pub(crate) fn raw_socket(tcp: &tokio::net::TcpStream) -> Option<RawSocket> {
    use std::os::windows::io::AsRawSocket as _;
    // INVALID_SOCKET is !0.
    Some(tcp.as_raw_socket()).filter(|socket| *socket != RawSocket::MAX)
}

/// An idle connection: hyper's sender, and the socket, to look at before reuse.
pub(crate) struct Idle {
    pub(crate) sender: Sender,
    pub(crate) fd: Option<RawSocket>,
}

/// Whether the peer closed an idle connection, or sent on it unasked (either way it cannot
/// carry a request): urllib3's `is_connection_dropped`. An idle connection's task may not have
/// run since (on a per-thread runtime it runs only while its thread waits in a call).
///
/// A one-byte `MSG_PEEK` read, the same call on every platform: bytes or end of stream (or an
/// error) mean dropped; "would block" means quiet. tokio's sockets are non-blocking, so the
/// peek never waits.
fn dropped(fd: Option<RawSocket>) -> bool {
    let Some(raw) = fd else { return false };
    // SAFETY: `raw` is the idle connection's own socket, valid (not -1 / INVALID_SOCKET, see
    // `raw_socket`) and open while its connection task lives, which the caller checked
    // (`is_closed`); it is only borrowed for this call.
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
        let senders = idle.get_mut(key)?;
        while let Some(entry) = senders.pop() {
            if entry.sender.is_ready() && !entry.sender.is_closed() && !dropped(entry.fd) {
                return Some(entry);
            }
        }
        None
    }

    /// Keep `sender` for the next request to `key`, unless the pool for it is full.
    pub(crate) fn checkin(&self, key: Arc<str>, entry: Idle) {
        if self.max_idle == 0 || entry.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let senders = idle.entry(key).or_default();
        senders.retain(|s| !s.sender.is_closed());
        if senders.len() < self.max_idle {
            senders.push(entry);
        }
    }

    /// Idle connections kept now, over all hosts (for tests and metrics).
    #[must_use]
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.values()
            .map(|v| v.iter().filter(|s| !s.sender.is_closed()).count())
            .sum()
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
