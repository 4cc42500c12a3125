//! Sending one request and reading its response, with botocore's timeouts: the connect
//! timeout bounds making a connection, the read timeout every wait for response bytes (the
//! headers, then each body read), and an optional deadline the whole call.

use std::future::Future as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, CONTENT_LENGTH, EXPECT, HOST, PROXY_AUTHORIZATION,
};
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::ResponseBody;
use super::connect::{authority, connect_error, Connector, Proxy};
use super::error::{root_cause, ConnectKind, TransportError};
use super::gate::Gate;
use super::h2::{H2Connections, PendingResponse, StreamBody, StreamSlot};
use super::pool::{Driver, Idle, Open, Pool, RequestBody, Sender};
use super::socket_body::{self, Framing, Reuse, SocketBody};
use super::{pool_key, Deadline, TransportConfig};

/// A request, ready to go (signed already if it must be).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Status and headers of a response, and its body to read.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ResponseBody,
}

/// What the answer to a request is read with, besides its connection.
struct Exchange<'a> {
    method: &'a Method,
    uri: &'a Uri,
    /// The request said `Connection: close`.
    closing: bool,
    pool: &'a Arc<Pool>,
    key: Arc<str>,
}

/// `fut` within the read timeout and the deadline, whichever comes first.
async fn bounded<F: std::future::Future>(
    fut: F,
    read_timeout: Option<Duration>,
    deadline: Option<Deadline>,
) -> Result<F::Output, TransportError> {
    let read_at = read_timeout.map(|t| Instant::now() + t);
    let (at, on_expiry) = match (read_at, deadline) {
        (None, None) => return Ok(fut.await),
        (Some(r), Some(d)) if d.at <= r => (d.at, d.error()),
        (Some(r), _) => (
            r,
            TransportError::ReadTimeout {
                seconds: read_timeout.unwrap_or_default().as_secs_f64(),
            },
        ),
        (None, Some(d)) => (d.at, d.error()),
    };
    tokio::time::timeout_at(at, fut)
        .await
        .map_err(|_| on_expiry)
}

/// An HTTP/1.1 client; its idle connections are kept in [`Pool`]s (one per runtime).
pub struct Transport {
    connector: Connector,
    max_idle_per_host: usize,
    read_timeout: Option<Duration>,
    /// HTTP/2 connections (the bidirectional operation).
    h2: H2Connections,
}

impl Transport {
    /// A transport for `config`.
    ///
    /// # Errors
    /// A message when the TLS configuration cannot be built (an unreadable CA bundle).
    pub fn new(config: &TransportConfig) -> Result<Self, String> {
        Ok(Self {
            connector: config.connector(&[b"http/1.1"]),
            max_idle_per_host: config.max_idle_per_host,
            read_timeout: config.read_timeout,
            h2: H2Connections::new(config),
        })
    }

    /// A new, empty pool for this transport's connections on one runtime.
    #[must_use]
    pub fn new_pool(&self) -> Pool {
        Pool::new(self.max_idle_per_host)
    }

    /// The `Host` header of a URI as HTTP clients send it: the port only when it is not the
    /// scheme's default (what botocore signs).
    #[must_use]
    pub fn host_header(uri: &Uri) -> Option<String> {
        let host = uri.host()?;
        let default = match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        // Pieces pushed rather than `format!`ed: this runs for every request.
        Some(match uri.port() {
            Some(port) if port.as_u16() != default => {
                let mut value = String::with_capacity(host.len() + 1 + port.as_str().len());
                value.push_str(host);
                value.push(':');
                value.push_str(port.as_str());
                value
            }
            _ => host.to_owned(),
        })
    }

    /// Send `request` and wait for the response headers.
    ///
    /// A pooled connection that turns out closed before the request went out is replaced by a
    /// new one, transparently (nothing was sent). Every other failure is returned: the caller
    /// decides about retries.
    ///
    /// # Errors
    /// `Connect`, `ConnectionLost`, `ReadTimeout`, `Deadline`, `InvalidRequest`.
    pub async fn send(
        &self,
        pool: &Arc<Pool>,
        request: Request,
        deadline: Option<Deadline>,
    ) -> Result<Response, TransportError> {
        Deadline::bound(deadline, self.send_unbounded(pool, request)).await
    }

    async fn send_unbounded(
        &self,
        pool: &Arc<Pool>,
        request: Request,
    ) -> Result<Response, TransportError> {
        let key: Arc<str> = pool_key(&request.uri)?.into();
        let mut pending = Some(request);
        loop {
            let Some(request) = pending.take() else {
                return Err(TransportError::InvalidRequest {
                    message: "the request was lost before it was sent".to_owned(),
                });
            };
            let (connection, forward_proxy, reused) = if let Some(idle) = pool.checkout(&key) {
                let forward_proxy = self.forward_proxy_for(&request.uri);
                (idle, forward_proxy, true)
            } else {
                let connection = self.connector.connect(&request.uri).await?;
                let idle = Idle {
                    io: connection.io,
                    fd: connection.fd,
                };
                (idle, connection.forward_proxy, false)
            };
            let fd = connection.fd;
            let (gate, switch) = Gate::new(connection.io);
            let (mut sender, mut driver) = handshake(gate, &request.uri).await?;
            // What a retry needs that hyper does not give back (it gives back the built
            // request, whose URI may be origin-form): the URI, and the body (a reference
            // count). The headers are not cloned: a retry takes them back from hyper.
            let uri = request.uri.clone();
            let body = request.body.clone();
            let method = request.method.clone();
            let closing = socket_body::closes(&request.headers);
            let http_request = build(request, forward_proxy.as_ref())?;
            // This task drives the connection while the request goes out and the head comes
            // back (and after it, the body: see `Driver`).
            let mut sending = std::pin::pin!(sender.try_send_request(http_request));
            let sent = bounded(
                std::future::poll_fn(|cx| {
                    driver.drive(cx);
                    sending.as_mut().poll(cx)
                }),
                self.read_timeout,
                None,
            )
            .await?;
            match sent {
                Ok(response) => {
                    let connection = Open {
                        sender,
                        driver,
                        fd,
                        switch,
                    };
                    let exchange = Exchange {
                        method: &method,
                        uri: &uri,
                        closing,
                        pool,
                        key,
                    };
                    return self.answer(response, exchange, connection);
                }
                Err(mut failed) => {
                    if reused {
                        if let Some(unsent) = failed.take_message() {
                            // The pooled connection closed before this request was written.
                            // Its headers are as `build` left them, which building them
                            // again leaves as they are.
                            let (parts, _) = unsent.into_parts();
                            pending = Some(Request {
                                method: parts.method,
                                uri,
                                headers: parts.headers,
                                body,
                            });
                            continue;
                        }
                    }
                    if failed.error().is_parse() {
                        // Bytes came back that are not an HTTP response head: the server read
                        // the request (and perhaps ran it), so a retry would run it again.
                        return Err(TransportError::MalformedHead {
                            message: format!(
                                "the answer from {} is not a valid HTTP response ({}); the \
                                 request reached the server, so it is not sent again",
                                authority(&uri),
                                failed.error()
                            ),
                        });
                    }
                    return Err(TransportError::ConnectionLost {
                        message: format!(
                            "the connection to {} closed before a response: {}",
                            authority(&uri),
                            root_cause(failed.error())
                        ),
                    });
                }
            }
        }
    }

    /// The response whose head came on `connection`: its body read from the socket when hyper
    /// stopped at the head (see `gate`), else by hyper.
    fn answer(
        &self,
        response: http::Response<Incoming>,
        exchange: Exchange<'_>,
        connection: Open,
    ) -> Result<Response, TransportError> {
        let (parts, incoming) = response.into_parts();
        let Exchange {
            method,
            uri,
            closing,
            pool,
            key,
        } = exchange;
        let framing = Framing::of(method, parts.version, parts.status.as_u16(), &parts.headers)
            .filter(|_| connection.switch.is_held());
        let body = if let Some(framing) = framing {
            drop(incoming);
            let Open { driver, fd, .. } = connection;
            let Some(socket) = driver.into_socket() else {
                return Err(TransportError::ConnectionLost {
                    message: format!(
                        "the connection to {} closed after the response head",
                        authority(uri)
                    ),
                });
            };
            let reuse = (!closing && !socket_body::closes(&parts.headers)).then(|| Reuse {
                pool: pool.clone(),
                key,
                fd,
            });
            let body = SocketBody::new(socket, framing, reuse);
            ResponseBody::socket(body, self.read_timeout)
        } else {
            connection.switch.pass();
            let chunked = socket_body::chunked(&parts.headers);
            ResponseBody::leased(
                incoming,
                pool.clone(),
                key,
                connection,
                self.read_timeout,
                chunked,
            )
        };
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Send `request` on an HTTP/2 connection to its URI (made if there is none open), and
    /// return once it is on its way: the response comes with the returned future, while the
    /// body is still being streamed. `generation` is the shared runtime's.
    ///
    /// # Errors
    /// `Connect`, `InvalidRequest`, `Deadline`, `ConnectionLost` (the connection closed
    /// before the request could be sent).
    pub async fn open_h2(
        &self,
        request: http::Request<StreamBody>,
        generation: u64,
        deadline: Option<Deadline>,
    ) -> Result<(PendingResponse, StreamSlot), TransportError> {
        self.h2.open(request, generation, deadline).await
    }

    fn forward_proxy_for(&self, uri: &Uri) -> Option<Proxy> {
        // Pooled connections were made with the same connector: the same proxy decision.
        if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            None
        } else {
            self.connector.http_proxy()
        }
    }
}

async fn handshake(io: Gate, uri: &Uri) -> Result<(Sender, Driver), TransportError> {
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| {
            connect_error(ConnectKind::Unreachable, &e, |cause| {
                format!("HTTP handshake with {} failed: {cause}", authority(uri))
            })
        })?;
    Ok((sender, Driver::new(connection)))
}

/// The hyper request: origin-form (or absolute-form through a forwarding proxy), `Host` and
/// `Content-Length` set as botocore sets them, no `Expect` (hyper does not wait for a `100`),
/// and, unsigned as botocore's `http.client` adds it, `Accept-Encoding: identity`: without
/// it any coding is acceptable (RFC 9110), and a proxy could compress what is read raw here.
fn build(
    request: Request,
    forward_proxy: Option<&Proxy>,
) -> Result<http::Request<RequestBody>, TransportError> {
    let Request {
        method,
        uri,
        mut headers,
        body,
    } = request;
    if !headers.contains_key(HOST) {
        let host = Transport::host_header(&uri).ok_or_else(|| TransportError::InvalidRequest {
            message: format!("no host in {uri}"),
        })?;
        headers.insert(
            HOST,
            HeaderValue::from_str(&host).map_err(|e| TransportError::InvalidRequest {
                message: format!("invalid host {host:?}: {e}"),
            })?,
        );
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.remove(EXPECT);
    if !headers.contains_key(ACCEPT_ENCODING) {
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    let target: Uri = match forward_proxy {
        Some(proxy) => {
            if let Some(auth) = &proxy.authorization {
                headers.insert(PROXY_AUTHORIZATION, auth.clone());
            }
            uri
        }
        None => uri.path_and_query().map_or_else(
            || Uri::from_static("/"),
            |pq| Uri::try_from(pq.as_str()).unwrap_or_else(|_| Uri::from_static("/")),
        ),
    };
    let mut built = http::Request::new(Box::new(Full::new(body)));
    *built.method_mut() = method;
    *built.uri_mut() = target;
    *built.headers_mut() = headers;
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::super::tls::Verify;
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    #[test]
    fn the_host_header_names_the_port_only_when_it_is_not_the_schemes() {
        let host = |url: &str| Transport::host_header(&url.parse().expect("uri"));
        assert_eq!(host("https://a.example/x").as_deref(), Some("a.example"));
        assert_eq!(
            host("https://a.example:443/x").as_deref(),
            Some("a.example")
        );
        assert_eq!(host("http://a.example:80/").as_deref(), Some("a.example"));
        assert_eq!(
            host("http://a.example:443/").as_deref(),
            Some("a.example:443")
        );
        assert_eq!(host("https://u@[::1]:8443/").as_deref(), Some("[::1]:8443"));
        assert_eq!(host("/relative"), None);
        assert_eq!(
            pool_key(&"https://u@a.example:8443/x".parse().expect("uri")).as_deref(),
            Ok("https://u@a.example:8443")
        );
    }

    /// A server answering `requests` requests (heads without a body), each with `chunks` chunks
    /// of `b"x"` in one write, on as many connections as the client opens, each kept open until
    /// the client closes it; the number of connections it accepted comes back at the end.
    fn server(chunks: usize, requests: usize) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let thread = std::thread::spawn(move || {
            let mut accepted = 0;
            let mut served = 0;
            while served < requests {
                let (mut socket, _) = listener.accept().expect("accept");
                accepted += 1;
                let mut buf = Vec::new();
                let mut byte = [0u8; 1024];
                while served < requests {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = socket.read(&mut byte).expect("read");
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&byte[..n]);
                    }
                    if buf.is_empty() {
                        break;
                    }
                    buf.clear();
                    let mut answer =
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                    for _ in 0..chunks {
                        answer.extend_from_slice(b"1\r\nx\r\n");
                    }
                    answer.extend_from_slice(b"0\r\n\r\n");
                    socket.write_all(&answer).expect("write");
                    served += 1;
                }
                // Keep the connection open until the client closes it.
                while socket.read(&mut byte).is_ok_and(|n| n > 0) {}
            }
            accepted
        });
        (url, thread)
    }

    fn transport() -> Transport {
        Transport::new(&TransportConfig {
            connect_timeout: None,
            read_timeout: Some(Duration::from_secs(30)),
            max_idle_per_host: 4,
            tcp_keepalive: false,
            verify: Verify::Off,
            http_proxy: None,
            https_proxy: None,
        })
        .expect("transport")
    }

    /// `server(chunks, requests)`, and a transport with a pool to call it on.
    fn serving(
        chunks: usize,
        requests: usize,
    ) -> (String, std::thread::JoinHandle<usize>, Transport, Arc<Pool>) {
        let (url, server) = server(chunks, requests);
        let transport = transport();
        let pool = Arc::new(transport.new_pool());
        (url, server, transport, pool)
    }

    /// The response to a `GET url` sent through `pool`.
    async fn get(transport: &Transport, pool: &Arc<Pool>, url: &str) -> Response {
        let request = Request {
            method: Method::GET,
            uri: url.parse().expect("uri"),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        transport.send(pool, request, None).await.expect("response")
    }

    /// `work` run to its end on a runtime of its own, as the sync client's thread runs a call.
    fn block_on<F: std::future::Future>(work: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work)
    }

    #[test]
    fn the_body_reader_drives_its_connection_and_gives_it_back() {
        let (url, server, transport, pool) = serving(500, 2);
        block_on(async {
            for _ in 0..2 {
                let response = get(&transport, &pool, &url).await;
                let mut body = response.body;
                let mut bytes = 0;
                let mut waits = 0;
                // A wait for the socket, then every chunk hyper holds without waiting.
                while let Some(chunk) = body.next_chunk(None).await.expect("chunk") {
                    waits += 1;
                    bytes += chunk.len();
                    while let Some(more) = body.ready_chunk().await {
                        match more.expect("chunk") {
                            Some(chunk) => bytes += chunk.len(),
                            None => break,
                        }
                    }
                }
                assert_eq!(bytes, 500);
                // One write of 500 chunks takes a few socket reads, not a wait per chunk.
                assert!(waits < 50, "{waits} waits for 500 chunks");
                assert_eq!(pool.idle_count(), 1);
            }
        });
        drop(pool);
        assert_eq!(server.join().expect("server"), 1);
    }

    #[test]
    fn a_body_dropped_before_its_end_closes_its_connection() {
        let (url, server, transport, pool) = serving(100, 2);
        block_on(async {
            let response = get(&transport, &pool, &url).await;
            let mut body = response.body;
            assert!(body.next_chunk(None).await.expect("chunk").is_some());
            drop(body);
            assert_eq!(pool.idle_count(), 0);
            let response = get(&transport, &pool, &url).await;
            let whole = response.body.collect(1024, 200, None).await.expect("body");
            assert_eq!(whole.len(), 100);
        });
        drop(pool);
        assert_eq!(server.join().expect("server"), 2);
    }

    /// A server answering each request with the next of `answers`, after reading the request's
    /// head only (an answer ending in `!` is delimited by closing the connection; after
    /// another, the server waits `linger` before reading on); the number of connections it
    /// accepted comes back at the end.
    fn answering(
        answers: Vec<&'static [u8]>,
        linger: Duration,
    ) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let thread = std::thread::spawn(move || {
            let mut answers = answers.into_iter().peekable();
            let mut accepted = 0;
            let mut byte = vec![0u8; 64 * 1024];
            while answers.peek().is_some() {
                let (mut socket, _) = listener.accept().expect("accept");
                accepted += 1;
                // The last bytes read, enough to see a head's end across reads.
                let mut tail = Vec::new();
                loop {
                    if !tail.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut byte) {
                            Ok(0) | Err(_) => break, // closed by the client
                            Ok(n) => {
                                let keep = tail.len().saturating_sub(3);
                                tail.drain(..keep);
                                tail.extend_from_slice(&byte[..n]);
                            }
                        }
                        continue;
                    }
                    tail.clear(); // the head and what came with it (a body is not read)
                    let Some(answer) = answers.next() else { break };
                    socket.write_all(answer).expect("write");
                    if answer.ends_with(b"!") {
                        break;
                    }
                    std::thread::sleep(linger);
                }
            }
            accepted
        });
        (url, thread)
    }

    /// The status and whole body of the answer to a `method` request with `body`.
    async fn call(pool: &Arc<Pool>, url: &str, method: Method, body: Bytes) -> (u16, Bytes) {
        let transport = transport();
        let request = Request {
            method,
            uri: url.parse().expect("uri"),
            headers: HeaderMap::new(),
            body,
        };
        let response = transport.send(pool, request, None).await.expect("response");
        let status = response.status.as_u16();
        let body = response
            .body
            .collect(1 << 20, status, None)
            .await
            .expect("body");
        (status, body)
    }

    #[test]
    fn every_framing_reads_its_body_and_keeps_the_connection_when_it_may() {
        let (url, server) = answering(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
            b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\n\r\nuntil the close!",
        ], Duration::ZERO);
        let pool = Arc::new(Pool::new(4));
        block_on(async {
            let get = |method| call(&pool, &url, method, Bytes::new());
            assert_eq!(get(Method::POST).await, (200, Bytes::from("hello")));
            assert_eq!(get(Method::POST).await, (200, Bytes::from("hi")));
            assert_eq!(get(Method::POST).await, (204, Bytes::new()));
            // The answer to HEAD has no body, whatever its length says: hyper's to read.
            assert_eq!(get(Method::HEAD).await, (200, Bytes::new()));
            assert_eq!(get(Method::POST).await, (500, Bytes::from("{}")));
            assert_eq!(pool.idle_count(), 1);
            let last = get(Method::POST).await;
            assert_eq!(last, (200, Bytes::from("until the close!")));
            assert_eq!(pool.idle_count(), 0);
        });
        drop(pool);
        assert_eq!(server.join().expect("server"), 1);
    }

    #[test]
    fn an_answer_before_the_request_was_all_sent_does_not_keep_the_connection() {
        // Answered after the head, the 16 MiB body unread: the request cannot all go out.
        let (url, server) = answering(
            vec![
                b"HTTP/1.1 413 Too Large\r\nContent-Length: 2\r\n\r\n{}",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ],
            Duration::from_millis(300),
        );
        let pool = Arc::new(Pool::new(4));
        block_on(async {
            let big = Bytes::from(vec![b'x'; 16 << 20]);
            let answer = call(&pool, &url, Method::POST, big).await;
            assert_eq!(answer, (413, Bytes::from("{}")));
            assert_eq!(pool.idle_count(), 0);
            let answer = call(&pool, &url, Method::POST, Bytes::new()).await;
            assert_eq!(answer, (200, Bytes::from("ok")));
        });
        drop(pool);
        assert_eq!(server.join().expect("server"), 2);
    }
}
