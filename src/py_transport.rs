//! `sagestream._core.Transport`: one client's connection pool and signer, and the two ways to
//! send on it — blocking the calling thread (GIL released) or as an awaitable completed
//! through a [`PyHub`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tokio::runtime::{Handle, Runtime};

use crate::py_hub::PyHub;
use crate::py_parts::on_main_thread;
use crate::py_response::{Failed, Op, Outcome, PyPending, PyResponse};
use crate::sign::Signer;
use crate::stream::{pump, PartStream};
use crate::transport::{Deadline, Pool, Proxy, Request, Transport, TransportConfig, Verify};

const EVENTSTREAM: &str = "application/vnd.amazon.eventstream";

/// What to do with the body of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Read it whole.
    Whole,
    /// A 2xx body is an event stream to read part by part; any other is read whole.
    Stream,
}

/// One request as Python gave it.
struct Spec {
    method: Method,
    uri: Uri,
    /// Signed (when `sign`).
    headers: HeaderMap,
    /// Added after signing.
    after: HeaderMap,
    body: Bytes,
    sign: bool,
    mode: Mode,
    deadline: Option<f64>,
    limit: Option<usize>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The configuration, the transport, and the pools of idle connections: one for the shared
/// runtime (asyncio calls), one per calling thread (blocking calls, on that thread's runtime).
struct Shared {
    signer: Signer,
    transport: Arc<Transport>,
    /// The shared runtime's generation (it changes after a fork) and its pool.
    live: Mutex<(u64, Arc<Pool>)>,
    /// Every per-thread pool, to close them all.
    thread_pools: Mutex<Vec<Weak<Pool>>>,
    id: u64,
    alive: Arc<()>,
}

impl Shared {
    /// The shared runtime and its pool.
    fn shared(&self) -> PyResult<(Handle, Arc<Pool>)> {
        let (handle, generation) = crate::runtime::current()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O runtime: {e}")))?;
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live.0 != generation {
            // A forked child: the parent's connections belong to threads that are gone.
            let stale = std::mem::replace(
                &mut *live,
                (generation, Arc::new(self.transport.new_pool())),
            );
            std::mem::forget(stale);
        }
        Ok((handle, live.1.clone()))
    }

    /// This thread's runtime and pool.
    fn local(&self) -> PyResult<(Arc<Runtime>, Arc<Pool>)> {
        let made = crate::runtime::local(|local| {
            let mut fresh = false;
            let pool = local.slot(self.id, &self.alive, || {
                fresh = true;
                self.transport.new_pool()
            });
            (local.runtime.clone(), pool, fresh)
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O runtime: {e}")))?;
        let (runtime, pool, fresh) = made;
        let pool = pool.ok_or_else(|| PyRuntimeError::new_err("the connection pool is gone"))?;
        if fresh {
            let mut pools = self
                .thread_pools
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pools.retain(|p| p.strong_count() > 0);
            pools.push(Arc::downgrade(&pool));
        }
        Ok((runtime, pool))
    }

    fn pools(&self) -> Vec<Arc<Pool>> {
        let mut pools: Vec<Arc<Pool>> = self
            .thread_pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        pools.push(
            self.live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .1
                .clone(),
        );
        pools
    }
}

/// Why a 200 answer is not an event stream, when its headers already say so.
fn stream_hint(headers: &HeaderMap) -> Option<String> {
    if let Some(encoding) = headers.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return Some(format!(
                "the response is {encoding}-encoded (Content-Encoding: {encoding})"
            ));
        }
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(EVENTSTREAM) {
        None
    } else if essence.is_empty() {
        Some(format!(
            "the response has no Content-Type, not {EVENTSTREAM}"
        ))
    } else {
        Some(format!(
            "the response's Content-Type is {content_type}, not {EVENTSTREAM}"
        ))
    }
}

async fn perform(
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    runtime: Option<Arc<Runtime>>,
    spec: Spec,
) -> Result<Outcome, Failed> {
    let Spec {
        method,
        uri,
        mut headers,
        after,
        body,
        sign,
        mode,
        deadline,
        limit,
    } = spec;
    let deadline = deadline.map(Deadline::after);
    if sign {
        shared
            .signer
            .sign_as_sent(&method, &uri, &mut headers, &body, SystemTime::now())
            .map_err(Failed::Sign)?;
    }
    for (name, value) in &after {
        headers.insert(name.clone(), value.clone());
    }
    let response = shared
        .transport
        .send(
            &pool,
            Request {
                method,
                uri,
                headers,
                body,
            },
            deadline,
        )
        .await
        .map_err(Failed::Transport)?;
    let status = response.status.as_u16();
    if mode == Mode::Stream && response.status.is_success() {
        let stream = Arc::new(PartStream::new(stream_hint(&response.headers)));
        let reader = tokio::spawn(pump(stream.clone(), response.body, deadline));
        stream.set_reader(reader.abort_handle());
        return Ok(Outcome {
            status,
            headers: response.headers,
            body: None,
            stream: Some(stream),
            runtime,
        });
    }
    let body = response
        .body
        .collect(limit, deadline)
        .await
        .map_err(Failed::Transport)?;
    Ok(Outcome {
        status,
        headers: response.headers,
        body: Some(body),
        stream: None,
        runtime: None,
    })
}

pub(crate) fn header_map(pairs: Vec<(String, String)>) -> PyResult<HeaderMap> {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| PyValueError::new_err(format!("invalid header name {name:?}: {e}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|e| PyValueError::new_err(format!("invalid value for header {name}: {e}")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn proxy(url: Option<String>, authorization: Option<String>) -> PyResult<Option<Proxy>> {
    let Some(url) = url else { return Ok(None) };
    let uri: Uri = url
        .parse()
        .map_err(|e| PyValueError::new_err(format!("invalid proxy URL {url:?}: {e}")))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(PyValueError::new_err(format!(
            "only http:// proxies are supported, got {url:?}"
        )));
    }
    let authorization = authorization
        .map(|a| {
            HeaderValue::from_str(&a)
                .map_err(|e| PyValueError::new_err(format!("invalid proxy authorization: {e}")))
        })
        .transpose()?;
    Ok(Some(Proxy { uri, authorization }))
}

fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s.min(1e9)))),
        Some(s) => Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds, got {s}"
        ))),
    }
}

/// The HTTP transport and `SigV4` signer of one client.
#[pyclass(name = "Transport", module = "sagestream._core", frozen)]
pub struct PyTransport {
    shared: Arc<Shared>,
}

impl PyTransport {
    /// The transport's signer (its region and signing name), for `py_sign`.
    pub(crate) fn signer(&self) -> &Signer {
        &self.shared.signer
    }

    #[allow(clippy::too_many_arguments)]
    fn spec(
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: &[u8],
        sign: bool,
        after: Vec<(String, String)>,
        mode: &str,
        deadline: Option<f64>,
        limit: Option<usize>,
    ) -> PyResult<Spec> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| PyValueError::new_err(format!("invalid method {method:?}: {e}")))?;
        let uri: Uri = url
            .parse()
            .map_err(|e| PyValueError::new_err(format!("invalid URL {url:?}: {e}")))?;
        let mode = match mode {
            "whole" => Mode::Whole,
            "stream" => Mode::Stream,
            other => return Err(PyValueError::new_err(format!("unknown mode {other:?}"))),
        };
        if let Some(d) = deadline {
            if !(d.is_finite() && d >= 0.0) {
                return Err(PyValueError::new_err(
                    "deadline must be a non-negative number of seconds",
                ));
            }
        }
        Ok(Spec {
            method,
            uri,
            headers: header_map(headers)?,
            after: header_map(after)?,
            body: Bytes::copy_from_slice(body),
            sign,
            mode,
            deadline,
            limit,
        })
    }
}

#[pymethods]
impl PyTransport {
    /// `region` / `service`: what requests are signed for. Timeouts in seconds (None: no
    /// bound). `verify`: a CA bundle path, or False. Proxies: `http://host:port` URLs, with the
    /// `Proxy-Authorization` value to send each.
    #[new]
    #[pyo3(signature = (*, region, service, connect_timeout=None, read_timeout=None, max_pool_connections=10, tcp_keepalive=false, verify, http_proxy=None, http_proxy_authorization=None, https_proxy=None, https_proxy_authorization=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        region: &str,
        service: &str,
        connect_timeout: Option<f64>,
        read_timeout: Option<f64>,
        max_pool_connections: usize,
        tcp_keepalive: bool,
        verify: &Bound<'_, PyAny>,
        http_proxy: Option<String>,
        http_proxy_authorization: Option<String>,
        https_proxy: Option<String>,
        https_proxy_authorization: Option<String>,
    ) -> PyResult<Self> {
        let verify = if let Ok(path) = verify.extract::<std::path::PathBuf>() {
            Verify::Bundle(path)
        } else if matches!(verify.extract::<bool>(), Ok(false)) {
            Verify::Off
        } else {
            return Err(PyValueError::new_err(
                "verify must be a CA bundle path or False",
            ));
        };
        let config = TransportConfig {
            connect_timeout: seconds(connect_timeout, "connect_timeout")?,
            read_timeout: seconds(read_timeout, "read_timeout")?,
            max_idle_per_host: max_pool_connections,
            tcp_keepalive,
            verify,
            http_proxy: proxy(http_proxy, http_proxy_authorization)?,
            https_proxy: proxy(https_proxy, https_proxy_authorization)?,
        };
        let transport = Transport::new(&config).map_err(PyValueError::new_err)?;
        let generation = crate::runtime::generation().unwrap_or(0);
        let pool = Arc::new(transport.new_pool());
        Ok(Self {
            shared: Arc::new(Shared {
                signer: Signer::new(region, service),
                transport: Arc::new(transport),
                live: Mutex::new((generation, pool)),
                thread_pools: Mutex::new(Vec::new()),
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                alive: Arc::new(()),
            }),
        })
    }

    /// Sign from now on with these credentials.
    #[pyo3(signature = (access_key, secret_key, token=None))]
    fn set_credentials(&self, access_key: &str, secret_key: &str, token: Option<&str>) {
        self.shared
            .signer
            .set_credentials(access_key, secret_key, token);
    }

    /// Idle pooled connections, over every pool.
    fn idle_connections(&self) -> usize {
        self.shared.pools().iter().map(|p| p.idle_count()).sum()
    }

    /// Close the idle connections of every pool (open streams keep theirs until they end).
    fn close(&self) {
        for pool in self.shared.pools() {
            pool.clear();
        }
    }

    /// Send a request and wait, without the GIL, for its response (see the stub for the
    /// arguments).
    #[pyo3(signature = (method, url, headers, body, *, sign=true, after=Vec::new(), mode="whole", deadline=None, limit=None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: &[u8],
        sign: bool,
        after: Vec<(String, String)>,
        mode: &str,
        deadline: Option<f64>,
        limit: Option<usize>,
    ) -> PyResult<PyResponse> {
        let spec = Self::spec(
            method, url, headers, body, sign, after, mode, deadline, limit,
        )?;
        let (runtime, pool) = self.shared.local()?;
        let mut work = Box::pin(perform(
            self.shared.clone(),
            pool,
            Some(runtime.clone()),
            spec,
        ));
        let main = on_main_thread(py);
        let outcome = loop {
            // The calling thread does the I/O itself, on its own runtime, without the GIL.
            let waited = py.detach(|| {
                if main {
                    // Wake up now and then to let Ctrl-C through.
                    runtime.block_on(async {
                        tokio::time::timeout(Duration::from_millis(50), &mut work)
                            .await
                            .ok()
                    })
                } else {
                    Some(runtime.block_on(&mut work))
                }
            });
            match waited {
                Some(outcome) => break outcome,
                None => py.check_signals()?,
            }
        };
        Ok(PyResponse::new(outcome.map_err(Failed::into_pyerr)?))
    }

    /// Open an `InvokeEndpointWithBidirectionalStream` session on HTTP/2, blocking (without
    /// the GIL) until its request is on its way; see `sagestream._core.Duplex`.
    #[pyo3(signature = (url, headers, *, after=Vec::new(), deadline=None, queue=16))]
    fn open_duplex(
        &self,
        py: Python<'_>,
        url: &str,
        headers: Vec<(String, String)>,
        after: Vec<(String, String)>,
        deadline: Option<f64>,
        queue: usize,
    ) -> PyResult<crate::py_duplex::PyDuplex> {
        let prepared = crate::py_duplex::prepare(
            &self.shared.signer,
            url,
            header_map(headers)?,
            header_map(after)?,
            deadline,
            queue,
        )?;
        crate::py_duplex::open(py, &self.shared.transport, prepared)
    }

    /// Open a bidirectional session; an awaitable of it, completed through `hub`.
    #[pyo3(signature = (hub, url, headers, *, after=Vec::new(), deadline=None, queue=16))]
    fn open_duplex_async(
        &self,
        hub: Py<PyHub>,
        url: &str,
        headers: Vec<(String, String)>,
        after: Vec<(String, String)>,
        deadline: Option<f64>,
        queue: usize,
    ) -> PyResult<crate::py_duplex::PyDone> {
        let prepared = crate::py_duplex::prepare(
            &self.shared.signer,
            url,
            header_map(headers)?,
            header_map(after)?,
            deadline,
            queue,
        )?;
        crate::py_duplex::open_async(&self.shared.transport, hub, prepared)
    }

    /// Send a request; an awaitable of the response, completed through `hub`.
    #[pyo3(signature = (hub, method, url, headers, body, *, sign=true, after=Vec::new(), mode="whole", deadline=None, limit=None))]
    #[allow(clippy::too_many_arguments)]
    fn send_async(
        &self,
        hub: Py<PyHub>,
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: &[u8],
        sign: bool,
        after: Vec<(String, String)>,
        mode: &str,
        deadline: Option<f64>,
        limit: Option<usize>,
    ) -> PyResult<PyPending> {
        let spec = Self::spec(
            method, url, headers, body, sign, after, mode, deadline, limit,
        )?;
        let (handle, pool) = self.shared.shared()?;
        let op = Arc::new(Op::default());
        let done = op.clone();
        let shared = self.shared.clone();
        let task = handle.spawn(async move {
            let result = perform(shared, pool, None, spec).await;
            done.complete(result);
        });
        Ok(PyPending::new(op, hub, task.abort_handle()))
    }
}
