//! Making one connection: TCP (hyper-util's `HttpConnector`: DNS off the runtime threads,
//! happy eyeballs, `TCP_NODELAY` as urllib3 sets it, keep-alive when asked), through a proxy
//! when one is configured, then TLS for `https` destinations.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio_rustls::TlsConnector;
use tower_service::Service;

use super::error::{io_kind, root_cause, ConnectKind, TransportError};
use super::tls::{client_config, Verify};

/// An HTTP proxy: its `http://host:port` URI and the `Proxy-Authorization` value to send it.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Where the proxy listens.
    pub uri: Uri,
    /// `Proxy-Authorization`, from the proxy URL's user info.
    pub authorization: Option<HeaderValue>,
}

/// Anything hyper can run a connection over.
pub(crate) trait Io: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static {}
impl<T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static> Io for T {}

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

/// A new connection, and the proxy it forwards requests to in absolute form, if any.
pub(crate) struct Connection {
    pub io: Box<dyn Io>,
    pub forward_proxy: Option<Proxy>,
    /// The socket, to check an idle connection before it is used again.
    pub fd: Option<RawSocket>,
}

fn fd_of(tcp: &TokioIo<tokio::net::TcpStream>) -> Option<RawSocket> {
    raw_socket(tcp.inner())
}

/// Makes connections for one transport.
pub(crate) struct Connector {
    tcp: HttpConnector,
    verify: Verify,
    alpn: &'static [&'static [u8]],
    /// Built on the first TLS connection (reading the CA bundle takes milliseconds, and a
    /// client of a plain-HTTP endpoint never needs it).
    tls: OnceLock<Result<Arc<ClientConfig>, String>>,
    http_proxy: Option<Proxy>,
    https_proxy: Option<Proxy>,
    connect_timeout: Option<Duration>,
}

impl Connector {
    pub(crate) fn new(
        verify: Verify,
        alpn: &'static [&'static [u8]],
        http_proxy: Option<Proxy>,
        https_proxy: Option<Proxy>,
        connect_timeout: Option<Duration>,
        tcp_keepalive: bool,
    ) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        if tcp_keepalive {
            // botocore's `tcp_keepalive=True` only turns SO_KEEPALIVE on; two hours is the
            // kernel's own default idle time, which it then keeps.
            tcp.set_keepalive(Some(Duration::from_hours(2)));
        }
        Self {
            tcp,
            verify,
            alpn,
            tls: OnceLock::new(),
            http_proxy,
            https_proxy,
            connect_timeout,
        }
    }

    /// The proxy `http://` requests are forwarded to, if any.
    pub(crate) fn http_proxy(&self) -> Option<Proxy> {
        self.http_proxy.clone()
    }

    /// A connection to `dst` (`http://` or `https://` with an authority), within the connect
    /// timeout.
    pub(crate) async fn connect(&self, dst: &Uri) -> Result<Connection, TransportError> {
        let work = self.connect_unbounded(dst);
        match self.connect_timeout {
            None => work.await,
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(TransportError::Connect {
                    kind: ConnectKind::Timeout,
                    message: format!(
                        "no connection to {} within the {} s connect timeout",
                        authority(dst),
                        super::error::seconds(limit.as_secs_f64())
                    ),
                })
            }),
        }
    }

    async fn connect_unbounded(&self, dst: &Uri) -> Result<Connection, TransportError> {
        let https = dst.scheme() == Some(&http::uri::Scheme::HTTPS);
        let proxy = if https {
            self.https_proxy.as_ref()
        } else {
            self.http_proxy.as_ref()
        };
        match (proxy, https) {
            (None, false) => {
                let tcp = self.tcp(dst).await?;
                Ok(Connection {
                    fd: fd_of(&tcp),
                    io: Box::new(tcp),
                    forward_proxy: None,
                })
            }
            (None, true) => {
                let tcp = self.tcp(dst).await?;
                Ok(Connection {
                    fd: fd_of(&tcp),
                    io: Box::new(self.tls(dst, tcp).await?),
                    forward_proxy: None,
                })
            }
            (Some(proxy), false) => {
                let tcp = self.tcp(&proxy.uri).await.map_err(as_proxy_error)?;
                Ok(Connection {
                    fd: fd_of(&tcp),
                    io: Box::new(tcp),
                    forward_proxy: Some(proxy.clone()),
                })
            }
            (Some(proxy), true) => {
                let mut tunnel = Tunnel::new(proxy.uri.clone(), self.tcp.clone());
                if let Some(auth) = &proxy.authorization {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let tcp = tunnel.call(dst.clone()).await.map_err(|e| {
                    connect_error(ConnectKind::Proxy, &e, |cause| {
                        let (proxy, dst) = (authority(&proxy.uri), authority(dst));
                        format!("the proxy {proxy} did not open a tunnel to {dst}: {cause}")
                    })
                })?;
                Ok(Connection {
                    fd: fd_of(&tcp),
                    io: Box::new(self.tls(dst, tcp).await?),
                    forward_proxy: None,
                })
            }
        }
    }

    async fn tcp(&self, dst: &Uri) -> Result<TokioIo<tokio::net::TcpStream>, TransportError> {
        self.tcp.clone().call(dst.clone()).await.map_err(|e| {
            connect_error(ConnectKind::Unreachable, &e, |cause| {
                format!("could not connect to {}: {cause}", authority(dst))
            })
        })
    }

    async fn tls(
        &self,
        dst: &Uri,
        tcp: TokioIo<tokio::net::TcpStream>,
    ) -> Result<TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>, TransportError>
    {
        let host = dst.host().unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| TransportError::Connect {
            kind: ConnectKind::Tls,
            message: format!("{host:?} is not a valid TLS server name: {e}"),
        })?;
        let config = self
            .tls
            .get_or_init(|| client_config(&self.verify, self.alpn))
            .clone()
            .map_err(|message| TransportError::Connect {
                kind: ConnectKind::Tls,
                message,
            })?;
        let stream = TlsConnector::from(config)
            .connect(name, tcp.into_inner())
            .await
            .map_err(|e| {
                let kind = if io_kind(&e) == Some(std::io::ErrorKind::InvalidData) {
                    ConnectKind::Tls
                } else {
                    ConnectKind::Unreachable
                };
                connect_error(kind, &e, |cause| {
                    format!("TLS handshake with {} failed: {cause}", authority(dst))
                })
            })?;
        Ok(TokioIo::new(stream))
    }
}

fn as_proxy_error(err: TransportError) -> TransportError {
    match err {
        TransportError::Connect { message, .. } => TransportError::Connect {
            kind: ConnectKind::Proxy,
            message: format!("proxy: {message}"),
        },
        other => other,
    }
}

/// A [`TransportError::Connect`] of `kind` for `err`: the message `message` makes of the root
/// cause of `err`.
pub(crate) fn connect_error(
    kind: ConnectKind,
    err: &(dyn std::error::Error + 'static),
    message: impl FnOnce(String) -> String,
) -> TransportError {
    TransportError::Connect {
        kind,
        message: message(root_cause(err)),
    }
}

/// `host:port` of a URI, for messages.
pub(crate) fn authority(uri: &Uri) -> String {
    uri.authority()
        .map_or_else(|| uri.to_string(), ToString::to_string)
}
