//! What `Transport.send` hands back: the `Response` (status, headers, and the
//! body read whole or as a stream of parts), or, given a hub, the `PendingResponse` awaitable of one.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::HeaderMap;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokio::runtime::{Handle, Runtime};

use crate::py_args::header_dict;
use crate::py_hub::PyHub;
use crate::py_parts::{PyAsyncParts, PyParts};
use crate::py_wait::{Make, Once, PyHubAwaitable};
use crate::request_path::{Failed, Outcome};
use crate::stream::PartStream;

/// The awaitable of one request: awaiting it gives the `Response` (or raises the failure).
/// A response that arrived before the first look is returned without waiting for the loop.
#[pyclass(name = "PendingResponse", module = "sagestream._core", extends = PyHubAwaitable, frozen)]
pub struct PyPending;

impl PyPending {
    /// The awaitable of the response `request`, spawned on `handle`, ends in.
    pub(crate) fn spawn(
        py: Python<'_>,
        hub: Py<PyHub>,
        handle: &Handle,
        request: impl Future<Output = Result<Outcome, Failed>> + Send + 'static,
    ) -> PyResult<Py<Self>> {
        let work = async move {
            let result = request.await;
            let make: Make =
                Box::new(move |py| Ok(Py::new(py, PyResponse::new(result?))?.into_any()));
            make
        };
        PyHubAwaitable::extended(py, hub, Once::spawn(handle, work, "this response"), Self)
    }
}

/// A response: `status`, `headers`, and `body` (read whole) or its parts.
#[pyclass(name = "Response", module = "sagestream._core", frozen)]
pub struct PyResponse {
    status: u16,
    headers: HeaderMap,
    body: Option<Bytes>,
    stream: Mutex<Option<Arc<PartStream>>>,
    runtime: Option<Arc<Runtime>>,
}

impl PyResponse {
    pub(crate) fn new(outcome: Outcome) -> Self {
        Self {
            status: outcome.status,
            headers: outcome.headers,
            body: outcome.body,
            stream: Mutex::new(outcome.stream),
            runtime: outcome.runtime,
        }
    }

    fn take_stream(&self) -> PyResult<Arc<PartStream>> {
        self.stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| {
                PyRuntimeError::new_err("this response has no stream to read (any more)")
            })
    }
}

impl Drop for PyResponse {
    fn drop(&mut self) {
        self.close();
    }
}

#[pymethods]
impl PyResponse {
    #[getter]
    fn status(&self) -> u16 {
        self.status
    }

    /// The headers, names in lower case; repeated headers joined with `", "`; bytes beyond ASCII
    /// read as Latin-1 (what `http.client` does).
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        header_dict(py, &self.headers)
    }

    /// The body, when it was read whole (else None).
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.body.as_ref().map(|b| PyBytes::new(py, b))
    }

    /// The payload parts of a streamed body, for a thread to iterate.
    fn parts(&self) -> PyResult<PyParts> {
        Ok(PyParts::new(
            self.take_stream()?,
            self.runtime.clone(),
            None,
        ))
    }

    /// The payload parts of a streamed body, for `async for` on `hub`'s loop.
    fn aparts(&self, py: Python<'_>, hub: Py<PyHub>) -> PyResult<Py<PyAsyncParts>> {
        PyAsyncParts::new(py, self.take_stream()?, hub, None)
    }

    /// Close a stream nobody took (idempotent).
    fn close(&self) {
        // Not `take_stream`: its error, made for nothing, would cost an allocation on every
        // response dropped after its parts were taken.
        let stream = self
            .stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stream) = stream {
            stream.close();
        }
    }

    fn __repr__(&self) -> String {
        format!("<Response {}>", self.status)
    }
}
