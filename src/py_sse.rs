//! `ServerSentEvent`: one dispatched Server-Sent Event as Python sees it (frozen, hashable,
//! picklable).

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::reassembly::SseEvent;

/// One Server-Sent Event (immutable).
#[pyclass(
    name = "ServerSentEvent",
    module = "sagestream._core",
    frozen,
    eq,
    hash
)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyServerSentEvent {
    /// The event type (`"message"` unless an `event` field set it).
    #[pyo3(get)]
    event: String,
    /// The `data` fields joined with `\n`.
    #[pyo3(get)]
    data: String,
    /// The last event ID, `None` if empty.
    #[pyo3(get)]
    id: Option<String>,
    /// The reconnection time from a `retry` field of this event's block.
    #[pyo3(get)]
    retry: Option<u64>,
}

impl From<SseEvent> for PyServerSentEvent {
    fn from(e: SseEvent) -> Self {
        Self {
            event: e.event,
            data: e.data,
            id: e.id,
            retry: e.retry,
        }
    }
}

#[pymethods]
impl PyServerSentEvent {
    #[new]
    #[pyo3(signature = (data = "", event = "message", id = None, retry = None))]
    fn new(data: &str, event: &str, id: Option<String>, retry: Option<u64>) -> Self {
        Self {
            event: event.to_owned(),
            data: data.to_owned(),
            id,
            retry,
        }
    }

    /// `data` parsed as JSON: the value `json.loads(data)` gives (through the same fast path as
    /// JSON lines), and `json.JSONDecodeError` from `json.loads` when it is not JSON.
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::py_json::loads(py, &self.data)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let repr = |s: &str| -> PyResult<String> { Ok(PyString::new(py, s).repr()?.to_string()) };
        Ok(format!(
            "ServerSentEvent(event={}, data={}, id={}, retry={})",
            repr(&self.event)?,
            repr(&self.data)?,
            match &self.id {
                Some(id) => repr(id)?,
                None => "None".to_owned(),
            },
            match self.retry {
                Some(r) => r.to_string(),
                None => "None".to_owned(),
            },
        ))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        let args =
            (me.data.clone(), me.event.clone(), me.id.clone(), me.retry).into_pyobject(py)?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }
}
