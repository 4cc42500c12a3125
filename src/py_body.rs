//! `BodyStream`: payload parts over an iterable of body reads, for a response botocore sent
//! and urllib3 reads (the path of clients whose botocore machinery the request path does not
//! reproduce). The reads are already free of HTTP framing; the event stream is decoded by
//! [`PayloadFrames`], with the stream's deadline applied to each read through the socket's
//! timeout.

use std::time::{Duration, Instant};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyIterator;
use pyo3::PyTraverseError;

use crate::py_errors::ConnectionLostError;
use crate::py_payload::{Part, PayloadFrames};
use crate::py_queue::{next_read, Decoder, HeldError, Visit};
use crate::sticky::Next;
use crate::stream::Metrics;
use crate::transport::TransportError;

/// Payload parts over body reads; see the module documentation.
#[pyclass(name = "BodyStream", module = "sagestream._core")]
pub struct PyBodyStream {
    source: Option<Py<PyIterator>>,
    core: Decoder<PayloadFrames>,
    on_end: Option<Py<PyAny>>,
    deadline: Option<(Instant, f64)>,
    settimeout: Option<Py<PyAny>>,
    read_timeout: Option<f64>,
    metrics: Metrics,
}

impl PyBodyStream {
    fn deadline_error(seconds: f64) -> PyErr {
        TransportError::Deadline { seconds }.into()
    }

    /// Set the socket's timeout to what is left of the deadline (bounded by the read
    /// timeout); false, with the deadline error held, when nothing is left.
    fn arm_deadline(&mut self, py: Python<'_>) -> bool {
        let Some((at, seconds)) = self.deadline else {
            return true;
        };
        let now = Instant::now();
        if now >= at {
            self.core
                .queue
                .fail(HeldError::from_py(py, Self::deadline_error(seconds)));
            return false;
        }
        if let Some(settimeout) = &self.settimeout {
            let left = (at - now).as_secs_f64();
            let timeout = self.read_timeout.map_or(left, |t| t.min(left));
            if let Err(err) = settimeout.bind(py).call1((timeout,)) {
                self.core.queue.fail(HeldError::from_py(py, err));
                return false;
            }
        }
        true
    }

    fn read_more(&mut self, py: Python<'_>) {
        if !self.arm_deadline(py) {
            return;
        }
        let Some(source) = &self.source else {
            self.core.finish(py);
            return;
        };
        match next_read(source.bind(py), "body reads") {
            Some(Ok(chunk)) => self.core.feed(py, chunk.as_bytes()),
            Some(Err(err)) => {
                self.source = None;
                let timed_out = err.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py);
                let expired = self
                    .deadline
                    .filter(|(at, _)| timed_out && Instant::now() >= *at);
                if let Some((_, seconds)) = expired {
                    let mapped = Self::deadline_error(seconds);
                    mapped.set_cause(py, Some(err));
                    self.core.queue.fail(HeldError::from_py(py, mapped));
                } else if err.is_instance_of::<ConnectionLostError>(py) {
                    // Cut inside a frame: a truncated stream, caused by the lost connection.
                    self.core.finish_caused_by(py, err);
                } else {
                    self.core.queue.fail(HeldError::from_py(py, err));
                }
            }
            None => {
                self.source = None;
                self.core.finish(py);
            }
        }
    }

    fn end(&mut self, py: Python<'_>, clean: bool) -> PyResult<()> {
        self.metrics.end();
        self.source = None;
        self.settimeout = None;
        if let Some(on_end) = self.on_end.take() {
            on_end.bind(py).call1((clean,))?;
        }
        Ok(())
    }
}

#[pymethods]
impl PyBodyStream {
    /// `source`: an iterable of body reads (`bytes`). `on_end(clean)`: called once when the
    /// body ends or is closed (`clean`: read to its end without error). `deadline`: seconds
    /// from now for the whole stream, applied through `settimeout` (the socket's);
    /// `read_timeout`: the idle timeout already set on the socket.
    #[new]
    #[pyo3(signature = (source, *, on_end=None, deadline=None, settimeout=None, read_timeout=None))]
    fn new(
        source: &Bound<'_, PyAny>,
        on_end: Option<Py<PyAny>>,
        deadline: Option<f64>,
        settimeout: Option<Py<PyAny>>,
        read_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let deadline = match deadline {
            Some(s) if s.is_finite() && s >= 0.0 => {
                Some((Instant::now() + Duration::from_secs_f64(s.min(1e9)), s))
            }
            Some(_) => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "deadline must be a non-negative number of seconds",
                ))
            }
            None => None,
        };
        Ok(Self {
            source: Some(source.try_iter()?.unbind()),
            core: Decoder::new(PayloadFrames::new(false)),
            on_end,
            deadline,
            settimeout,
            read_timeout,
            metrics: Metrics::default(),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Part>> {
        loop {
            match self.core.queue.pop() {
                Ok(Next::Item(part)) => {
                    self.metrics.record(part.payload_len(py));
                    return Ok(Some(part));
                }
                Ok(Next::End) => {
                    self.end(py, true)?;
                    return Ok(None);
                }
                Err(err) => {
                    let err = err.to_py_err(py);
                    self.end(py, false)?;
                    return Err(err);
                }
                Ok(Next::NeedsInput) => {}
            }
            py.check_signals()?;
            self.read_more(py);
        }
    }

    /// Stop: drop queued payloads and the source; `on_end(False)` closes the connection unless
    /// the body ended already. Idempotent.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        self.core.queue.close();
        self.end(py, false)
    }

    /// True once the stream ended (cleanly, by an error, or closed).
    #[getter]
    fn finished(&self) -> bool {
        !self.core.queue.is_open() && self.core.queue.is_empty()
    }

    /// Counters and times.
    fn stats(&self) -> Metrics {
        self.metrics
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.source)?;
        visit.call(&self.on_end)?;
        visit.call(&self.settimeout)?;
        self.core.queue.visit(&visit)
    }

    fn __clear__(&mut self) {
        self.source = None;
        self.on_end = None;
        self.settimeout = None;
        self.core.queue.close();
    }
}
