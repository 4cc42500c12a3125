//! What `Transport.send` and `send_async` hand back: the `Response` (status, headers, and the
//! body read whole or as a stream of parts) and the `PendingResponse` awaitable of one.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::HeaderMap;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use crate::py_hub::{AsyncWaiter, PyHub};
use crate::py_parts::{PyAsyncParts, PyParts};
use crate::sign::SignError;
use crate::stream::PartStream;
use crate::transport::TransportError;

/// What a request can end in before there is a response.
pub(crate) enum Failed {
    Transport(TransportError),
    Sign(SignError),
}

impl Failed {
    pub(crate) fn into_pyerr(self) -> PyErr {
        match self {
            Self::Transport(err) => err.into(),
            Self::Sign(err) => err.into(),
        }
    }
}

/// A response: status, headers, and its body read whole or as a stream of parts (with the
/// per-thread runtime its reader runs on, for a blocking consumer to drive).
pub(crate) struct Outcome {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    pub(crate) stream: Option<Arc<PartStream>>,
    pub(crate) runtime: Option<Arc<Runtime>>,
}

#[derive(Default)]
struct OpState {
    result: Option<Result<Outcome, Failed>>,
    waiter: Option<AsyncWaiter>,
    delivered: bool,
}

/// The shared state of one request sent with `send_async`.
#[derive(Default)]
pub(crate) struct Op {
    state: Mutex<OpState>,
}

impl Op {
    fn lock(&self) -> std::sync::MutexGuard<'_, OpState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn complete(&self, result: Result<Outcome, Failed>) {
        let waiter = {
            let mut state = self.lock();
            state.result = Some(result);
            state.waiter.take()
        };
        if let Some(AsyncWaiter { hub, future, .. }) = waiter {
            hub.wake(future, true);
        }
    }
}

/// The awaitable of one request: awaiting it gives the `Response` (or raises the failure).
/// A response that arrived before the first look is returned without waiting for the loop.
#[pyclass(name = "PendingResponse", module = "sagestream._core", frozen)]
pub struct PyPending {
    op: Arc<Op>,
    hub: Py<PyHub>,
    task: AbortHandle,
}

impl PyPending {
    pub(crate) fn new(op: Arc<Op>, hub: Py<PyHub>, task: AbortHandle) -> Self {
        Self { op, hub, task }
    }

    fn cancel(&self) {
        self.task.abort();
        let waiter = self.op.lock().waiter.take();
        drop(waiter);
    }
}

impl Drop for PyPending {
    fn drop(&mut self) {
        if !self.op.lock().delivered {
            self.task.abort();
        }
    }
}

#[pymethods]
impl PyPending {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut state = self.op.lock();
        if let Some(result) = state.result.take() {
            state.delivered = true;
            drop(state);
            let response = Py::new(py, PyResponse::new(result.map_err(Failed::into_pyerr)?))?;
            return Err(PyStopIteration::new_err((response,)));
        }
        if state.delivered {
            return Err(PyRuntimeError::new_err("this response was awaited already"));
        }
        let hub = self.hub.get();
        let future = hub.new_future(py)?;
        state.waiter = Some(hub.waiter(&future, true));
        Ok(Some(future.unbind()))
    }

    /// The task resumed with a value (the loop sends `None`): look again.
    #[pyo3(signature = (_value, /))]
    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.__next__(py)
    }

    /// The awaiting task is being cancelled (or thrown into): stop the request.
    #[pyo3(signature = (typ, val=None, _tb=None, /))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.cancel();
        Err(crate::py_parts::thrown(py, typ, val))
    }

    /// The awaiting coroutine was closed: stop the request.
    fn close(&self) {
        self.cancel();
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
        if let Some(stream) = self
            .stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            stream.close();
        }
    }
}

#[pymethods]
impl PyResponse {
    #[getter]
    fn status(&self) -> u16 {
        self.status
    }

    /// The headers, names in lower case; repeated headers joined with `", "`.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for name in self.headers.keys() {
            let mut joined = String::new();
            for (i, value) in self.headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    joined.push_str(", ");
                }
                match value.to_str() {
                    Ok(text) => joined.push_str(text),
                    // What http.client does with bytes that are not ASCII: Latin-1.
                    Err(_) => joined.extend(value.as_bytes().iter().map(|&b| char::from(b))),
                }
            }
            dict.set_item(name.as_str(), joined)?;
        }
        Ok(dict)
    }

    /// The body, when it was read whole (else None).
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.body.as_ref().map(|b| PyBytes::new(py, b))
    }

    /// The payload parts of a streamed body, for a thread to iterate.
    fn parts(&self) -> PyResult<PyParts> {
        Ok(PyParts::new(self.take_stream()?, self.runtime.clone()))
    }

    /// The payload parts of a streamed body, for `async for` on `hub`'s loop.
    fn aparts(&self, hub: Py<PyHub>) -> PyResult<PyAsyncParts> {
        Ok(PyAsyncParts::new(self.take_stream()?, hub))
    }

    /// Close a stream nobody took (idempotent).
    fn close(&self) {
        if let Ok(stream) = self.take_stream() {
            stream.close();
        }
    }

    fn __repr__(&self) -> String {
        format!("<Response {}>", self.status)
    }
}
