//! Idle HTTP/1.1 connections, per `scheme://host:port`, kept as botocore's urllib3 pool keeps
//! them: up to `max_pool_connections` idle ones per host, with more opened when all are busy
//! (urllib3 `block=False`) and dropped instead of kept when the pool is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// The idle connections of one transport.
pub(crate) struct Pool {
    max_idle: usize,
    idle: Mutex<HashMap<Arc<str>, Vec<Sender>>>,
}

impl Pool {
    pub(crate) fn new(max_idle: usize) -> Self {
        Self {
            max_idle,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// The most recently used idle connection to `key` that is still open.
    pub(crate) fn checkout(&self, key: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let senders = idle.get_mut(key)?;
        while let Some(sender) = senders.pop() {
            if sender.is_ready() && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Keep `sender` for the next request to `key`, unless the pool for it is full.
    pub(crate) fn checkin(&self, key: Arc<str>, sender: Sender) {
        if self.max_idle == 0 || sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let senders = idle.entry(key).or_default();
        senders.retain(|s| !s.is_closed());
        if senders.len() < self.max_idle {
            senders.push(sender);
        }
    }

    /// Idle connections kept now, over all hosts (for tests and metrics).
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.values()
            .map(|v| v.iter().filter(|s| !s.is_closed()).count())
            .sum()
    }

    /// Close every idle connection.
    pub(crate) fn clear(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
