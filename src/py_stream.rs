//! The raw HTTP response body → payloads: `BodyStream`, on the payload decoder of
//! [`crate::py_payload`].

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator};

use std::time::{Duration, Instant};

use crate::chunked::{ChunkedDecoder, FeedError};
use crate::py_payload::{Part, PayloadCore};
use crate::py_queue::{Feed, HeldError};
use crate::sticky::Next;

pyo3::import_exception!(sagestream.exceptions, ConnectionLostError);
pyo3::import_exception!(sagestream.exceptions, ReadTimeoutError);
pyo3::import_exception!(sagestream.exceptions, DeadlineExceededError);
pyo3::import_exception!(sagestream.exceptions, InvalidFrameError);

/// How the end of the HTTP body is known.
enum Framing {
    /// `Transfer-Encoding: chunked`, decoded here.
    Chunked(ChunkedDecoder),
    /// `Content-Length`: this many body bytes left.
    Length(u64),
    /// No length: the body ends when the server closes the connection.
    UntilClose,
    /// Already de-framed reads from a Python iterable (the fallback path).
    Source(Py<PyIterator>),
}

/// Iterator of payloads read straight from a response body.
///
/// Given the socket's buffered reader (`read1`), it removes the HTTP/1.1 chunk framing and the
/// event stream framing in one pass and yields each payload as soon as the read completing its
/// frame returns (a `read1` returns whatever has arrived; there is no read-ahead). Given an
/// iterable of body reads instead, it decodes those. Read failures become `ReadTimeoutError`,
/// `DeadlineExceededError` or `ConnectionLostError`; a body cut inside a frame becomes
/// `TruncatedStreamError`; every payload before a failure is yielded first. When the body ends,
/// `on_end(reusable)` is called once: `True` when the whole body was consumed and nothing
/// followed it, so the connection can serve another request.
#[pyclass(name = "BodyStream", module = "sagestream._core")]
pub struct PyBodyStream {
    read1: Option<Py<PyAny>>,
    framing: Framing,
    core: PayloadCore,
    read_size: usize,
    on_end: Option<Py<PyAny>>,
    body_done: bool,
    reusable: bool,
    deadline: Option<Instant>,
    deadline_seconds: f64,
    settimeout: Option<Py<PyAny>>,
    read_timeout: Option<f64>,
    origin: Instant,
    first_part: Option<Duration>,
    last_part: Option<Instant>,
    max_gap: Duration,
    parts: u64,
    bytes: u64,
    ended: Option<Duration>,
}

fn is_instance_of<T: pyo3::type_object::PyTypeInfo>(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<T>(py)
}

impl PyBodyStream {
    fn deadline_error(&self) -> PyErr {
        DeadlineExceededError::new_err(format!(
            "the stream did not finish within its {} s deadline",
            self.deadline_seconds
        ))
    }

    /// Translate an exception raised by a read into the transport error it means.
    fn map_read_error(&self, py: Python<'_>, err: PyErr) -> PyErr {
        if is_instance_of::<ConnectionLostError>(py, &err)
            || is_instance_of::<DeadlineExceededError>(py, &err)
        {
            return err;
        }
        let mapped = if is_instance_of::<pyo3::exceptions::PyTimeoutError>(py, &err) {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.deadline_error()
            } else if is_instance_of::<ReadTimeoutError>(py, &err) {
                return err;
            } else {
                let after = self
                    .read_timeout
                    .map_or_else(String::new, |t| format!(" within {t} s"));
                ReadTimeoutError::new_err(format!("no data arrived{after}: {err}"))
            }
        } else if is_instance_of::<pyo3::exceptions::PyOSError>(py, &err)
            || is_instance_of::<pyo3::exceptions::PyValueError>(py, &err)
        {
            ConnectionLostError::new_err(format!("connection lost while reading the stream: {err}"))
        } else {
            return err;
        };
        mapped.set_cause(py, Some(err));
        mapped
    }

    /// The body ended before its framing said it would.
    fn premature_end(&mut self, py: Python<'_>, what: &str) {
        if self.core.buffered() > 0 {
            self.core.finish(py);
        } else {
            self.fail(
                py,
                ConnectionLostError::new_err(format!(
                    "the connection closed before the end of the response body ({what})"
                )),
            );
        }
    }

    /// End the stream with `err` once the queued payloads are out.
    fn fail(&mut self, py: Python<'_>, err: PyErr) {
        self.core.fail(HeldError::from_py(py, err));
    }

    /// Read once and decode; sets `core.error` or `body_done` as it goes.
    fn read_more(&mut self, py: Python<'_>) {
        if !self.arm_deadline(py) {
            return;
        }
        if let Framing::Source(source) = &self.framing {
            let source = source.bind(py).clone();
            self.read_source(py, source);
            return;
        }
        let Some(data) = self.read_socket(py) else {
            return;
        };
        let data = data.as_bytes();
        if data.is_empty() {
            self.end_of_input(py);
        } else {
            self.feed_framed(py, data);
        }
    }

    /// Before a read: the deadline error if it has passed, else the socket timeout set to what
    /// is left of it (bounded by the read timeout). False when the read must not happen.
    fn arm_deadline(&mut self, py: Python<'_>) -> bool {
        let Some(deadline) = self.deadline else {
            return true;
        };
        let now = Instant::now();
        if now >= deadline {
            self.fail(py, self.deadline_error());
            return false;
        }
        if let Some(settimeout) = &self.settimeout {
            let left = (deadline - now).as_secs_f64();
            let timeout = self.read_timeout.map_or(left, |t| t.min(left));
            if let Err(err) = settimeout.bind(py).call1((timeout,)) {
                let err = self.map_read_error(py, err);
                self.fail(py, err);
                return false;
            }
        }
        true
    }

    /// One item of a Python iterator of body reads (already de-chunked).
    fn read_source(&mut self, py: Python<'_>, mut source: Bound<'_, PyIterator>) {
        match source.next() {
            Some(Ok(chunk)) => match chunk.cast_into::<PyBytes>() {
                Ok(chunk) => self.core.feed(py, chunk.as_bytes()),
                Err(e) => {
                    let err = pyo3::exceptions::PyTypeError::new_err(format!(
                        "body reads must be bytes, got {}",
                        e.into_inner().get_type()
                    ));
                    self.fail(py, err);
                }
            },
            Some(Err(err)) => {
                let err = self.map_read_error(py, err);
                if is_instance_of::<ConnectionLostError>(py, &err) && self.core.buffered() > 0 {
                    self.core.finish_caused_by(py, err);
                } else {
                    self.fail(py, err);
                }
            }
            None => self.body_done = true,
        }
    }

    /// One `read1` from the socket's buffered reader: the bytes (empty at end of input), or
    /// `None` with `core.error` set.
    fn read_socket<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let Some(read1) = &self.read1 else {
            self.fail(py, ConnectionLostError::new_err("the stream was closed"));
            return None;
        };
        let want = match &self.framing {
            Framing::Length(left) => {
                usize::try_from(*left).map_or(self.read_size, |l| l.min(self.read_size))
            }
            _ => self.read_size,
        };
        let data = match read1.bind(py).call1((want,)) {
            Ok(data) => data,
            Err(err) => {
                let err = self.map_read_error(py, err);
                if is_instance_of::<ConnectionLostError>(py, &err) {
                    // A reset in the middle of a frame is a truncated stream.
                    self.core.finish_caused_by(py, err);
                } else {
                    self.fail(py, err);
                }
                return None;
            }
        };
        match data.cast_into::<PyBytes>() {
            Ok(data) => Some(data),
            Err(e) => {
                let err = pyo3::exceptions::PyTypeError::new_err(format!(
                    "read1() must return bytes, got {}",
                    e.into_inner().get_type()
                ));
                self.fail(py, err);
                None
            }
        }
    }

    /// The socket reached end of input: the body's end, or a premature one.
    fn end_of_input(&mut self, py: Python<'_>) {
        match &self.framing {
            Framing::UntilClose => self.body_done = true,
            Framing::Length(left) => {
                let what = format!("{left} bytes missing");
                self.premature_end(py, &what);
            }
            Framing::Chunked(dec) => {
                let what = if dec.at_chunk_boundary() {
                    "the last chunk never came"
                } else {
                    "cut inside a chunk"
                };
                self.premature_end(py, what);
            }
            Framing::Source(_) => {}
        }
    }

    /// Remove the HTTP framing of one socket read and decode what it carries.
    fn feed_framed(&mut self, py: Python<'_>, data: &[u8]) {
        let core = &mut self.core;
        match &mut self.framing {
            Framing::Chunked(dec) => {
                let fed = dec.feed(data, |piece| -> Result<(), ()> {
                    core.feed(py, piece);
                    if core.queue_ref().is_open() {
                        Ok(())
                    } else {
                        Err(())
                    }
                });
                match fed {
                    Ok(used) => {
                        if dec.is_done() {
                            self.body_done = true;
                            if used < data.len() {
                                self.reusable = false;
                            }
                        }
                    }
                    Err(FeedError::Sink(())) => {}
                    Err(FeedError::Chunked(err)) => {
                        core.fail(HeldError::from_py(
                            py,
                            InvalidFrameError::new_err(err.to_string()),
                        ));
                    }
                }
            }
            Framing::Length(left) => {
                let take = usize::try_from(*left).map_or(data.len(), |l| l.min(data.len()));
                core.feed(py, &data[..take]);
                *left -= take as u64;
                if *left == 0 {
                    self.body_done = true;
                    if take < data.len() {
                        self.reusable = false;
                    }
                }
            }
            Framing::UntilClose | Framing::Source(_) => core.feed(py, data),
        }
    }

    fn end(&mut self, py: Python<'_>, clean: bool) -> PyResult<()> {
        if self.ended.is_none() {
            self.ended = Some(self.origin.elapsed());
        }
        self.read1 = None;
        self.settimeout = None;
        if let Framing::Source(_) = self.framing {
            self.framing = Framing::UntilClose;
        }
        if let Some(on_end) = self.on_end.take() {
            on_end.bind(py).call1((clean && self.reusable,))?;
        }
        Ok(())
    }
}

#[pymethods]
impl PyBodyStream {
    /// `reader`: an object with `read1(n)` (the socket's buffered reader), or with
    /// `framing="iter"` an iterable of body reads. `framing`: `"chunked"`, `"length"` (with
    /// `content_length`), `"close"` or `"iter"`. `deadline`: seconds from now for the whole
    /// stream (needs `settimeout`, the socket's, to bound each read). `read_timeout`: the idle
    /// timeout already set on the socket, reused in messages and with the deadline.
    #[new]
    #[pyo3(signature = (reader, framing, *, content_length=None, read_size=65536, on_end=None, deadline=None, settimeout=None, read_timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        reader: &Bound<'_, PyAny>,
        framing: &str,
        content_length: Option<u64>,
        read_size: usize,
        on_end: Option<Py<PyAny>>,
        deadline: Option<f64>,
        settimeout: Option<Py<PyAny>>,
        read_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let mut read1 = None;
        let framing = match framing {
            "chunked" => Framing::Chunked(ChunkedDecoder::new()),
            "length" => Framing::Length(content_length.ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err("framing='length' needs content_length")
            })?),
            "close" => Framing::UntilClose,
            "iter" => Framing::Source(reader.try_iter()?.unbind()),
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown framing {other:?}"
                )))
            }
        };
        if !matches!(framing, Framing::Source(_)) {
            read1 = Some(reader.getattr("read1")?.unbind());
        }
        // A body delimited by the connection closing leaves nothing to reuse.
        let reusable = !matches!(framing, Framing::UntilClose);
        let origin = Instant::now();
        let deadline_at = match deadline {
            Some(s) if s.is_finite() && s >= 0.0 => {
                Some(origin + Duration::from_secs_f64(s.min(1e9)))
            }
            Some(_) => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "deadline must be a non-negative number of seconds",
                ))
            }
            None => None,
        };
        Ok(Self {
            read1,
            framing,
            core: PayloadCore::new(false),
            read_size: read_size.clamp(1, 16 * 1024 * 1024),
            on_end,
            body_done: false,
            reusable,
            deadline: deadline_at,
            deadline_seconds: deadline.unwrap_or(0.0),
            settimeout,
            read_timeout,
            origin,
            first_part: None,
            last_part: None,
            max_gap: Duration::ZERO,
            parts: 0,
            bytes: 0,
            ended: None,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Part>> {
        loop {
            match self.core.queue().pop() {
                Ok(Next::Item(p)) => {
                    let now = Instant::now();
                    match self.last_part {
                        None => self.first_part = Some(now - self.origin),
                        Some(last) => self.max_gap = self.max_gap.max(now - last),
                    }
                    self.last_part = Some(now);
                    self.parts += 1;
                    self.bytes += p.payload_len(py) as u64;
                    return Ok(Some(p));
                }
                Err(err) => {
                    // Raised once: the body stream then simply ends.
                    let err = err.to_py_err(py);
                    self.core.queue().close();
                    self.end(py, false)?;
                    return Err(err);
                }
                Ok(Next::End) => return Ok(None),
                Ok(Next::NeedsInput) => {}
            }
            if self.body_done {
                self.core.finish(py);
                if self.core.queue_ref().error().is_some() {
                    continue;
                }
                self.end(py, true)?;
                return Ok(None);
            }
            py.check_signals()?;
            self.read_more(py);
        }
    }

    /// Stop: drop queued payloads and the reader; `on_end` is not called (the caller closes
    /// the connection).
    fn close(&mut self) {
        self.read1 = None;
        self.settimeout = None;
        self.on_end = None;
        self.framing = Framing::UntilClose;
        self.core.queue().close();
        if self.ended.is_none() {
            self.ended = Some(self.origin.elapsed());
        }
    }

    /// True once the stream ended (cleanly, by an error, or closed).
    #[getter]
    fn finished(&self) -> bool {
        let queue = self.core.queue_ref();
        !queue.is_open() && queue.is_empty() && queue.error().is_none()
    }

    /// `(parts, bytes, first_part, max_gap, last_part, ended)`, times in seconds since this
    /// object was created (`None` when not reached yet).
    fn stats(&self) -> (u64, u64, Option<f64>, f64, Option<f64>, Option<f64>) {
        (
            self.parts,
            self.bytes,
            self.first_part.map(|d| d.as_secs_f64()),
            self.max_gap.as_secs_f64(),
            self.last_part.map(|t| (t - self.origin).as_secs_f64()),
            self.ended.map(|d| d.as_secs_f64()),
        )
    }
}
