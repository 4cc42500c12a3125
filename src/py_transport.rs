//! `sagestream._core.Transport`: one client's connection pool and signer, and the two ways to
//! send on it — blocking the calling thread (GIL released) or as an awaitable completed
//! through a [`PyHub`].

use std::sync::Arc;

use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::duplex::{sign_request, DuplexSpec};
use crate::py_args::{self, header_map, proxy, seconds};
use crate::py_duplex::{PyDone, PyDuplex};
use crate::py_hub::PyHub;
use crate::py_response::{PyPending, PyResponse};
use crate::py_wait::{block_on, Driver};
use crate::request_path::{Mode, RequestPath, RequestSpec};
use crate::sign::Signer;
use crate::transport::{Transport, TransportConfig, Verify, MAX_BODY, MAX_ERROR_BODY};

/// The HTTP transport and `SigV4` signer of one client.
#[pyclass(name = "Transport", module = "sagestream._core", frozen)]
pub struct PyTransport {
    path: Arc<RequestPath>,
}

impl PyTransport {
    /// The transport's signer (its region and signing name), for `py_sign`.
    pub(crate) fn signer(&self) -> &Signer {
        self.path.signer()
    }
}

/// What `send` hands back: the response (waited for), or its awaitable (given a hub).
#[derive(IntoPyObject)]
enum Sent {
    Response(PyResponse),
    Pending(Py<PyPending>),
}

/// What `open_duplex` hands back: the session (waited for), or its awaitable (given a hub).
#[derive(IntoPyObject)]
enum Opened {
    Session(PyDuplex),
    Pending(Py<PyDone>),
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
        let path = RequestPath::new(Signer::new(region, service), transport);
        Ok(Self {
            path: Arc::new(path),
        })
    }

    /// Sign from now on with these credentials.
    #[pyo3(signature = (access_key, secret_key, token=None))]
    fn set_credentials(&self, access_key: &str, secret_key: &str, token: Option<&str>) {
        self.path
            .signer()
            .set_credentials(access_key, secret_key, token);
    }

    /// Idle pooled connections, over every pool.
    fn idle_connections(&self) -> usize {
        self.path.pools().iter().map(|p| p.idle_count()).sum()
    }

    /// Close the idle connections of every pool (open streams keep theirs until they end).
    fn close(&self) {
        for pool in self.path.pools() {
            pool.clear();
        }
    }

    /// Send a request (see the stub for the arguments): without `hub`, wait for its response
    /// without the GIL; with it, an awaitable of the response, completed through `hub`.
    #[pyo3(signature = (method, url, headers, body, *, hub=None, sign=true, after=Vec::new(), mode="whole", deadline=None, call_deadline=None, limit=None, error_limit=None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: &[u8],
        hub: Option<Py<PyHub>>,
        sign: bool,
        after: Vec<(String, String)>,
        mode: &str,
        deadline: Option<f64>,
        call_deadline: Option<f64>,
        limit: Option<usize>,
        error_limit: Option<usize>,
    ) -> PyResult<Sent> {
        let mode = match mode {
            "whole" => Mode::Whole,
            "stream" => Mode::Stream,
            other => return Err(PyValueError::new_err(format!("unknown mode {other:?}"))),
        };
        let spec = RequestSpec {
            method: py_args::method(method)?,
            uri: py_args::uri(url)?,
            headers: header_map(headers)?,
            after: header_map(after)?,
            body: Bytes::copy_from_slice(body),
            sign,
            mode,
            deadline: py_args::deadline(deadline)?,
            call_deadline: py_args::deadline(call_deadline)?,
            limit: limit.unwrap_or(MAX_BODY),
            error_limit: error_limit.unwrap_or(MAX_ERROR_BODY),
        };
        if let Some(hub) = hub {
            let (handle, pool) = self.path.shared_pool().map_err(PyRuntimeError::new_err)?;
            let request = self.path.clone().perform(pool, None, spec);
            return Ok(Sent::Pending(PyPending::spawn(py, hub, &handle, request)?));
        }
        let (runtime, pool) = self.path.local_pool().map_err(PyRuntimeError::new_err)?;
        // The calling thread does the I/O itself, on its own runtime, without the GIL.
        let work = self.path.clone().perform(pool, Some(runtime.clone()), spec);
        let outcome = block_on(py, Driver::Local(&runtime), work)?;
        Ok(Sent::Response(PyResponse::new(outcome?)))
    }

    /// Open an `InvokeEndpointWithBidirectionalStream` session on HTTP/2: without `hub`,
    /// blocking (without the GIL) until its request is on its way; with it, an awaitable of
    /// the session, completed through `hub`. See `sagestream._core.Duplex`.
    #[pyo3(signature = (url, headers, *, hub=None, after=Vec::new(), deadline=None, queue=16, error_limit=None))]
    #[allow(clippy::too_many_arguments)]
    fn open_duplex(
        &self,
        py: Python<'_>,
        url: &str,
        headers: Vec<(String, String)>,
        hub: Option<Py<PyHub>>,
        after: Vec<(String, String)>,
        deadline: Option<f64>,
        queue: usize,
        error_limit: Option<usize>,
    ) -> PyResult<Opened> {
        let mut spec = DuplexSpec {
            uri: py_args::uri(url)?,
            headers: header_map(headers)?,
            after: header_map(after)?,
            deadline: py_args::deadline(deadline)?,
            queue,
            error_limit: error_limit.unwrap_or(MAX_ERROR_BODY),
        };
        let chain = sign_request(self.path.signer(), &mut spec)?;
        let transport = self.path.transport();
        Ok(match hub {
            Some(hub) => Opened::Pending(crate::py_duplex::open_async(
                py,
                transport,
                hub,
                (spec, chain),
            )?),
            None => Opened::Session(crate::py_duplex::open(py, transport, (spec, chain))?),
        })
    }
}
