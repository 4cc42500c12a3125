//! Idle HTTP/1.1 connections, per `scheme://host:port`, kept as botocore's urllib3 pool keeps
//! them: up to `max_pool_connections` idle ones per host, with more opened when all are busy
//! (urllib3 `block=False`) and dropped instead of kept when the pool is full.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// An idle connection: hyper's sender, and the socket, to look at before reuse.
pub(crate) struct Idle {
    pub(crate) sender: Sender,
    pub(crate) fd: Option<RawFd>,
}

/// Whether the peer closed an idle connection, or sent on it unasked (either way it cannot
/// carry a request): urllib3's `is_connection_dropped`. An idle connection's task may not have
/// run since (on a per-thread runtime it runs only while its thread waits in a call).
fn dropped(fd: Option<RawFd>) -> bool {
    let Some(fd) = fd else { return false };
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout; `fd` is the idle connection's own socket.
    let ready = unsafe { libc::poll(&raw mut poll, 1, 0) };
    ready != 0
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
