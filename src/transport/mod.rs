//! The request path, pyo3-free: an HTTP/1.1 connection pool (and HTTP/2 connections for the
//! bidirectional operation, [`Transport::open_h2`]) on hyper over tokio, TLS on rustls,
//! proxies by HTTP `CONNECT` (hyper-util's tunnel) or by forwarding, with botocore's connect and
//! read timeouts applied where botocore applies them.
//!
//! The pool is this crate's own rather than hyper-util's `legacy::Client`: that client runs the
//! connect inside its response future (and finishes it in the background when a pooled
//! connection frees up first), so a caller cannot tell the connect phase from the wait for the
//! response, and botocore bounds the two by different timeouts (`connect_timeout`,
//! `read_timeout`). Everything else is hyper's: the HTTP/1.1 codec, keep-alive, and the
//! connection's own readiness, which the pool only asks.

mod body;
mod connect;
mod error;
mod h2;
mod pool;
mod request;
mod tls;

pub use body::{ResponseBody, MAX_BODY, MAX_ERROR_BODY};
pub use connect::Proxy;
pub use error::{ConnectKind, TransportError};
pub use h2::{PendingResponse, StreamBody, StreamSlot, STREAMS_PER_CONNECTION};
pub use pool::Pool;
pub use request::{Deadline, Request, Response, Transport, TransportConfig};
pub use tls::Verify;
