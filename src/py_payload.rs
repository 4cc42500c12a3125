//! The SageMaker payload stream: frames in, payload `bytes` out, typed errors after every
//! payload that came before them. `PayloadDecoder` is fed reads; `PayloadIterator` pulls them
//! from a Python iterable.

use std::convert::Infallible;
use std::sync::Arc;

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::PyTraverseError;

use crate::errors::Error;
use crate::frame::FrameSplitter;
use crate::py_message::{frame_to_message, GilDetach, HeaderBlock, PyMessage};
use crate::py_queue::{
    decoder_methods, Decoded, Decoder, Format, HeldError, PyQueue, SourceIter, Visit,
};
use crate::sagemaker::{classify, Event};

/// One item of a payload stream.
pub(crate) enum Part {
    /// The bytes of a `PayloadPart` event.
    Payload(Py<PyBytes>),
    /// Any other frame, whole, when the stream was asked for them (`other_frames=True`).
    Frame(Py<PyMessage>),
}

impl Part {
    /// The payload's length; 0 for a frame.
    pub(crate) fn payload_len(&self, py: Python<'_>) -> usize {
        match self {
            Self::Payload(bytes) => bytes.bind(py).as_bytes().len(),
            Self::Frame(_) => 0,
        }
    }
}

impl<'py> IntoPyObject<'py> for Part {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(match self {
            Self::Payload(bytes) => bytes.into_bound(py).into_any(),
            Self::Frame(message) => message.into_bound(py).into_any(),
        })
    }
}

impl Visit for Part {
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Self::Payload(bytes) => visit.call(bytes),
            Self::Frame(message) => visit.call(message),
        }
    }
}

/// Frames → payloads: the format behind `PayloadDecoder`, `PayloadIterator` and the body
/// stream.
pub(crate) struct PayloadFrames {
    splitter: FrameSplitter,
    /// Hand out every frame that is not a `PayloadPart` event as a `Message` (error frames
    /// included) instead of skipping it or raising its error: for a caller that interprets them
    /// itself, as the botocore drop-in does with botocore's own parser.
    other_frames: bool,
    /// The headers of the last such frame, shared with the next one when they are the same.
    last_headers: Option<Arc<HeaderBlock>>,
}

impl Decoder<PayloadFrames> {
    /// The input ended because a read failed with `cause`: a partial frame becomes a
    /// `TruncatedStreamError` whose `__cause__` is `cause`; without one, `cause` ends the stream.
    pub(crate) fn finish_caused_by(&mut self, py: Python<'_>, cause: PyErr) {
        if !self.queue.is_open() {
            return;
        }
        let err = match self.format.splitter.finish() {
            Ok(()) => cause,
            Err(truncated) => {
                let err = PyErr::from(truncated);
                err.set_cause(py, Some(cause));
                err
            }
        };
        self.queue.fail(HeldError::from_py(py, err));
    }
}

impl PayloadFrames {
    /// Payloads (and, with `other_frames`, the other frames as messages).
    pub(crate) fn new(other_frames: bool) -> Self {
        Self {
            splitter: FrameSplitter::new(),
            other_frames,
            last_headers: None,
        }
    }

    /// One frame, classified: its item, or the error that ends the stream.
    fn frame_item(
        &mut self,
        py: Python<'_>,
        frame: crate::frame::Frame<'_>,
    ) -> Result<Option<Part>, HeldError> {
        let event = classify(frame)?;
        if let Event::Payload(payload) = event {
            return Ok(Some(Part::Payload(PyBytes::new(py, payload).unbind())));
        }
        if self.other_frames {
            let message = frame_to_message(py, frame, &mut self.last_headers)?;
            let message = Py::new(py, message).map_err(|e| HeldError::from_py(py, e))?;
            return Ok(Some(Part::Frame(message)));
        }
        match event.service_error() {
            Some(err) => Err(Error::from(err).into()),
            None => Ok(None),
        }
    }
}

impl Format for PayloadFrames {
    type Item = Part;

    fn decode(&mut self, py: Python<'_>, data: &[u8], queue: &mut PyQueue<Part>) -> Decoded {
        let mut splitter = std::mem::take(&mut self.splitter);
        let result = splitter.feed_with(data, &GilDetach(py), |frame| {
            if let Some(part) = self.frame_item(py, frame)? {
                queue.push(part);
            }
            Ok(())
        });
        self.splitter = splitter;
        result
    }

    fn end(&mut self, _py: Python<'_>, _queue: &mut PyQueue<Part>) -> Decoded {
        self.splitter.finish().map_err(HeldError::from)
    }
}

/// Incremental SageMaker payload decoder: `feed(data) -> list[bytes]`.
#[pyclass(name = "PayloadDecoder", module = "sagestream._core")]
pub struct PyPayloadDecoder {
    core: Decoder<PayloadFrames>,
}

decoder_methods! {
    PyPayloadDecoder, ends with "close";
    feed {
        /// Feed one read; returns the payloads it completes. If the read also holds an error
        /// frame or bad bytes, the payloads before it are returned and the error is raised by the
        /// next call to `feed` or `close`, and by every call after that.
    }
    close {
        /// End of stream: raises a pending error, or `TruncatedStreamError` for a partial frame.
    }
    {
        #[new]
        #[pyo3(signature = (*, other_frames = false))]
        fn new(other_frames: bool) -> Self {
            Self {
                core: Decoder::new(PayloadFrames::new(other_frames)),
            }
        }
    }
}

/// Iterator of payloads over an iterable of raw body reads (`bytes`).
///
/// Reads the source only when no decoded payload is waiting, so each payload is yielded as soon
/// as the read that completes its frame returns. Exceptions from the source pass through and
/// end the iteration.
#[pyclass(name = "PayloadIterator", module = "sagestream._core")]
pub struct PyPayloadIterator {
    iter: SourceIter<PayloadFrames>,
}

#[pymethods]
impl PyPayloadIterator {
    #[new]
    #[pyo3(signature = (source, *, other_frames = false))]
    fn new(source: &Bound<'_, PyAny>, other_frames: bool) -> PyResult<Self> {
        Ok(Self {
            iter: SourceIter::new(source, PayloadFrames::new(other_frames), "body reads")?,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Part>> {
        self.iter.next(py)
    }

    /// Stop iterating and drop the source (the caller closes the connection).
    fn close(&mut self) {
        self.iter.close();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.iter.visit(&visit)
    }

    fn __clear__(&mut self) {
        self.iter.close();
    }
}
