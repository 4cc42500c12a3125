//! The SageMaker payload stream: frames in, payload `bytes` out, typed errors after every
//! payload that came before them.

use std::collections::VecDeque;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyIterator};

use crate::frame::FrameSplitter;
use crate::sagemaker::{classify, Event};

static STREAM_EXCEPTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static STREAM_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Build the exception for an in-stream error through the factories in
/// `sagestream/exceptions.py` (`_stream_exception`, `_stream_error`), so the classes and their
/// fields are defined in one place.
pub(crate) fn stream_exception(py: Python<'_>, exception_type: &str, payload: &[u8]) -> PyErr {
    let made = STREAM_EXCEPTION
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("sagestream.exceptions")?
                    .getattr("_stream_exception")?
                    .unbind(),
            )
        })
        .and_then(|f| {
            f.bind(py)
                .call1((exception_type, PyBytes::new(py, payload)))
        });
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

pub(crate) fn stream_error(py: Python<'_>, code: &str, message: &str) -> PyErr {
    let made = STREAM_ERROR
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("sagestream.exceptions")?
                    .getattr("_stream_error")?
                    .unbind(),
            )
        })
        .and_then(|f| f.bind(py).call1((code, message)));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// Frames → payloads, shared by the decoder and the iterator.
#[derive(Default)]
pub(crate) struct PayloadCore {
    splitter: FrameSplitter,
    ready: VecDeque<Py<PyBytes>>,
    /// The error that ends the stream, raised once `ready` is drained.
    error: Option<PyErr>,
    /// Set once the error was raised or the stream ended: the iterator is fused.
    finished: bool,
}

impl PayloadCore {
    /// Decode `data`, queueing payloads; an error is kept until the queue is drained.
    pub(crate) fn feed(&mut self, py: Python<'_>, data: &[u8]) {
        if self.error.is_some() || self.finished {
            return;
        }
        let ready = &mut self.ready;
        let result = self.splitter.feed_with(
            data,
            &crate::py_message::GilDetach(py),
            |frame| -> PyResult<()> {
                match classify(frame)? {
                    Event::Payload(payload) => {
                        ready.push_back(PyBytes::new(py, payload).unbind());
                        Ok(())
                    }
                    Event::Exception {
                        exception_type,
                        payload,
                    } => Err(stream_exception(py, exception_type, payload)),
                    Event::Error { code, message } => Err(stream_error(py, code, message)),
                    Event::Skip { .. } => Ok(()),
                }
            },
        );
        if let Err(err) = result {
            self.error = Some(err);
        }
    }

    /// End of input: a partial frame becomes `TruncatedStreamError`.
    pub(crate) fn finish(&mut self) {
        if self.error.is_none() {
            if let Err(err) = self.splitter.finish() {
                self.error = Some(err.into());
            }
        }
    }

    /// Next payload, or the pending error once the queue is empty, or `None`.
    pub(crate) fn pop(&mut self) -> PyResult<Option<Py<PyBytes>>> {
        if let Some(p) = self.ready.pop_front() {
            return Ok(Some(p));
        }
        if let Some(err) = self.error.take() {
            self.finished = true;
            return Err(err);
        }
        Ok(None)
    }

    pub(crate) fn has_error(&self) -> bool {
        self.error.is_some()
    }

    /// End the stream with `err` (after the payloads already queued).
    pub(crate) fn fail(&mut self, err: PyErr) {
        if self.error.is_none() {
            self.error = Some(err);
        }
    }

    /// Stop: nothing more is decoded or handed out.
    pub(crate) fn stop(&mut self) {
        self.finished = true;
        self.ready.clear();
    }

    /// Whether the stream is over (ended, failed and raised, or stopped).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Bytes of a frame that is not complete yet.
    pub(crate) fn buffered(&self) -> usize {
        self.splitter.buffered()
    }
}

/// Incremental SageMaker payload decoder: `feed(data) -> list[bytes]`.
#[pyclass(name = "PayloadDecoder", module = "sagestream._core")]
pub struct PyPayloadDecoder {
    core: PayloadCore,
}

#[pymethods]
impl PyPayloadDecoder {
    #[new]
    fn new() -> Self {
        Self {
            core: PayloadCore::default(),
        }
    }

    /// Feed one read; returns the payloads it completes. If the read also holds an error
    /// frame or bad bytes, the payloads before it are returned and the error is raised by the
    /// next call to `feed` or `close`.
    fn feed(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<Vec<Py<PyBytes>>> {
        let had_error = self.core.has_error();
        if !had_error {
            self.core.feed(py, data);
        }
        let mut out = Vec::with_capacity(self.core.ready.len());
        out.extend(self.core.ready.drain(..));
        if out.is_empty() || had_error {
            if let Some(err) = self.core.error.take() {
                self.core.finished = true;
                return Err(err);
            }
        }
        Ok(out)
    }

    /// End of stream: raises a pending error, or `TruncatedStreamError` for a partial frame.
    fn close(&mut self) -> PyResult<()> {
        self.core.finish();
        match self.core.error.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// Iterator of payloads over an iterable of raw body reads (`bytes`).
///
/// Reads the source only when no decoded payload is waiting, so each payload is yielded as soon
/// as the read that completes its frame returns. Exceptions from the source pass through.
#[pyclass(name = "PayloadIterator", module = "sagestream._core")]
pub struct PyPayloadIterator {
    source: Option<Py<PyIterator>>,
    core: PayloadCore,
}

#[pymethods]
impl PyPayloadIterator {
    #[new]
    fn new(source: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            source: Some(source.try_iter()?.unbind()),
            core: PayloadCore::default(),
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        loop {
            if let Some(p) = self.core.pop()? {
                return Ok(Some(p));
            }
            if self.core.finished {
                return Ok(None);
            }
            let Some(source) = &self.source else {
                return Ok(None);
            };
            let mut source = source.bind(py).clone();
            match source.next() {
                Some(Ok(chunk)) => {
                    let chunk = chunk.cast_into::<PyBytes>().map_err(|e| {
                        pyo3::exceptions::PyTypeError::new_err(format!(
                            "body reads must be bytes, got {}",
                            e.into_inner().get_type()
                        ))
                    })?;
                    self.core.feed(py, chunk.as_bytes());
                }
                Some(Err(err)) => {
                    self.source = None;
                    self.core.finished = true;
                    return Err(err);
                }
                None => {
                    self.source = None;
                    self.core.finish();
                    if !self.core.has_error() {
                        self.core.finished = true;
                    }
                }
            }
        }
    }

    /// Stop iterating and drop the source (the caller closes the connection).
    fn close(&mut self) {
        self.source = None;
        self.core.finished = true;
        self.core.ready.clear();
    }
}
