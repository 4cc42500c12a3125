//! `BodyStream`: payload parts over an iterable of body reads, for a response botocore sent
//! and urllib3 reads (the path of clients whose botocore machinery the request path does not
//! reproduce). The reads are already free of HTTP framing; the event stream is decoded here,
//! with the stream's deadline applied to each read through the socket's timeout.

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator};

use crate::py_parts::PyStreamStats;
use crate::py_stream::PayloadCore;
use crate::runtime::monotonic;
use crate::stream::Metrics;
use crate::transport::TransportError;

pyo3::import_exception!(sagestream.exceptions, ConnectionLostError);

/// Payload parts over body reads; see the module documentation.
#[pyclass(name = "BodyStream", module = "sagestream._core")]
pub struct PyBodyStream {
    source: Option<Py<PyIterator>>,
    core: PayloadCore,
    on_end: Option<Py<PyAny>>,
    deadline: Option<(Instant, f64)>,
    settimeout: Option<Py<PyAny>>,
    read_timeout: Option<f64>,
    exhausted: bool,
    metrics: Metrics,
}

impl PyBodyStream {
    fn deadline_error(seconds: f64) -> PyErr {
        crate::py_failure::transport_error(&TransportError::Deadline { seconds })
    }

    /// Set the socket's timeout to what is left of the deadline (bounded by the read
    /// timeout); false, with the deadline error held, when nothing is left.
    fn arm_deadline(&mut self, py: Python<'_>) -> bool {
        let Some((at, seconds)) = self.deadline else {
            return true;
        };
        let now = Instant::now();
        if now >= at {
            self.core.fail(Self::deadline_error(seconds));
            return false;
        }
        if let Some(settimeout) = &self.settimeout {
            let left = (at - now).as_secs_f64();
            let timeout = self.read_timeout.map_or(left, |t| t.min(left));
            if let Err(err) = settimeout.bind(py).call1((timeout,)) {
                self.core.fail(err);
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
            self.exhausted = true;
            return;
        };
        let mut source = source.bind(py).clone();
        match source.next() {
            Some(Ok(chunk)) => match chunk.cast_into::<PyBytes>() {
                Ok(chunk) => self.core.feed(py, chunk.as_bytes()),
                Err(e) => self
                    .core
                    .fail(pyo3::exceptions::PyTypeError::new_err(format!(
                        "body reads must be bytes, got {}",
                        e.into_inner().get_type()
                    ))),
            },
            Some(Err(err)) => {
                let timed_out = err.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py);
                let expired = self
                    .deadline
                    .filter(|(at, _)| timed_out && Instant::now() >= *at);
                if let Some((_, seconds)) = expired {
                    let mapped = Self::deadline_error(seconds);
                    mapped.set_cause(py, Some(err));
                    self.core.fail(mapped);
                } else if err.is_instance_of::<ConnectionLostError>(py) && self.core.buffered() > 0
                {
                    // Cut inside a frame: a truncated stream, caused by the lost connection.
                    self.core.finish();
                    self.core.fail(err);
                } else {
                    self.core.fail(err);
                }
            }
            None => self.exhausted = true,
        }
    }

    fn end(&mut self, py: Python<'_>, clean: bool) -> PyResult<()> {
        if self.metrics.ended_at.is_none() {
            self.metrics.ended_at = Some(monotonic());
        }
        self.source = None;
        self.settimeout = None;
        if let Some(on_end) = self.on_end.take() {
            on_end.bind(py).call1((clean,))?;
        }
        Ok(())
    }

    fn record(&mut self, part: &Bound<'_, PyBytes>) {
        let now = monotonic();
        let m = &mut self.metrics;
        match m.last_part_at {
            None => m.first_part_at = Some(now),
            Some(last) => m.max_gap = m.max_gap.max(now - last),
        }
        m.last_part_at = Some(now);
        m.parts += 1;
        m.bytes += part.as_bytes().len() as u64;
    }
}

#[pymethods]
impl PyBodyStream {
    /// `source`: an iterable of body reads (`bytes`). `on_end(clean)`: called once when the
    /// body ends or is closed (`clean`: read to its end without error). `deadline`: seconds from now for the
    /// whole stream, applied through `settimeout` (the socket's); `read_timeout`: the idle
    /// timeout already set on the socket.
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
            core: PayloadCore::default(),
            on_end,
            deadline,
            settimeout,
            read_timeout,
            exhausted: false,
            metrics: Metrics::default(),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        loop {
            match self.core.pop() {
                Ok(Some(part)) => {
                    self.record(part.bind(py));
                    return Ok(Some(part));
                }
                Err(err) => {
                    self.end(py, false)?;
                    return Err(err);
                }
                Ok(None) => {}
            }
            if self.core.is_finished() {
                return Ok(None);
            }
            if self.exhausted {
                self.core.finish();
                if self.core.has_error() {
                    continue;
                }
                self.core.stop();
                self.end(py, true)?;
                return Ok(None);
            }
            py.check_signals()?;
            self.read_more(py);
        }
    }

    /// Stop: drop queued payloads and the source; `on_end(False)` closes the connection unless
    /// the body ended already. Idempotent.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        self.core.stop();
        self.end(py, false)
    }

    /// True once the stream ended (cleanly, by an error, or closed).
    #[getter]
    fn finished(&self) -> bool {
        self.core.is_finished()
    }

    /// Counters and times.
    fn stats(&self) -> PyStreamStats {
        self.metrics.into()
    }
}
