//! What can go wrong on the way to a response, as plain data (no Python objects held).

use std::fmt;

/// Why a connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectKind {
    /// The connection was not made within the connect timeout.
    Timeout,
    /// The name did not resolve, or the peer refused or reset the connection.
    Unreachable,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The proxy refused the tunnel or could not be reached.
    Proxy,
}

impl ConnectKind {
    /// The name the Python layer knows this kind by.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::Tls => "tls",
            Self::Proxy => "proxy",
        }
    }
}

/// A failure of one attempt before, or while waiting for, the response headers; or while
/// reading a body that is read whole.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportError {
    /// No connection to the endpoint (or its proxy).
    Connect { kind: ConnectKind, message: String },
    /// The connection closed or failed after the request was (perhaps partly) sent.
    ConnectionLost { message: String },
    /// No response bytes within the read timeout.
    ReadTimeout { seconds: f64 },
    /// The call's overall deadline passed.
    Deadline { seconds: f64 },
    /// The request cannot be sent as given (a bad URL or header).
    InvalidRequest { message: String },
    /// A body read whole was larger than `limit` bytes (`declared`: its Content-Length, when
    /// that said so before it was read); `status`: the answer's.
    BodyTooLarge {
        limit: usize,
        status: u16,
        declared: Option<u64>,
    },
    /// The response's HTTP framing was malformed.
    InvalidResponse { message: String },
    /// The response's status line or headers could not be parsed (hyper's parse error, named
    /// in the message). The server did answer, so it had the request: never sent again.
    MalformedHead { message: String },
}

/// Seconds as people write them: `0.5`, `3`, `2.25` (at most three decimals).
#[must_use]
pub fn seconds(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { message, .. }
            | Self::ConnectionLost { message }
            | Self::InvalidRequest { message }
            | Self::InvalidResponse { message }
            | Self::MalformedHead { message } => f.write_str(message),
            Self::ReadTimeout { seconds: s } => {
                write!(
                    f,
                    "no data arrived within the {} s read timeout",
                    seconds(*s)
                )
            }
            Self::Deadline { seconds: s } => {
                write!(
                    f,
                    "the call did not finish within its {} s deadline",
                    seconds(*s)
                )
            }
            Self::BodyTooLarge {
                limit,
                status,
                declared,
            } => {
                match declared {
                    Some(length) => write!(
                        f,
                        "the HTTP {status} answer declares a body of {length} bytes \
                         (Content-Length)"
                    )?,
                    None => write!(f, "the HTTP {status} answer's body goes on")?,
                }
                write!(
                    f,
                    ", more than the {limit} bytes a body read into memory may hold \
                     (sagestream.ResponseLimits); the connection was closed, and the request \
                     is not sent again"
                )
            }
        }
    }
}

impl std::error::Error for TransportError {}

/// The innermost cause of an error, for messages that say what happened.
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// The `io::ErrorKind` somewhere in an error's chain, if any.
pub(crate) fn io_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_rounded_for_people() {
        assert_eq!(seconds(0.991_787_07), "0.992");
        assert_eq!(seconds(3.0), "3");
        assert_eq!(seconds(2.25), "2.25");
        assert_eq!(seconds(0.0), "0");
    }

    #[test]
    fn messages() {
        assert_eq!(
            TransportError::ReadTimeout { seconds: 60.0 }.to_string(),
            "no data arrived within the 60 s read timeout"
        );
        assert_eq!(
            TransportError::Deadline { seconds: 0.5 }.to_string(),
            "the call did not finish within its 0.5 s deadline"
        );
        assert_eq!(
            TransportError::BodyTooLarge {
                limit: 10,
                status: 500,
                declared: Some(11)
            }
            .to_string(),
            "the HTTP 500 answer declares a body of 11 bytes (Content-Length), more than the 10 \
             bytes a body read into memory may hold (sagestream.ResponseLimits); the connection \
             was closed, and the request is not sent again"
        );
        assert!(TransportError::BodyTooLarge {
            limit: 10,
            status: 200,
            declared: None
        }
        .to_string()
        .starts_with("the HTTP 200 answer's body goes on, more than the 10 bytes"));
    }
}
