//! `sagestream._core.Duplex`: one bidirectional session for Python — input sent blocking (GIL
//! released) or awaited through a [`PyHub`], output read by the part iterators of
//! [`crate::py_parts`]. Sessions run on the shared runtime, so their I/O goes on while the
//! Python threads do other things.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_types::event_stream::Message;
use bytes::Bytes;
use http::{HeaderMap, Uri};
use pyo3::exceptions::{PyRuntimeError, PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::AbortHandle;

use crate::duplex::{sign_request, Duplex, DuplexSpec, InputPart, MAX_INPUT_PART};
use crate::py_errors::InputClosedError;
use crate::py_hub::{AsyncWaiter, PyHub};
use crate::py_parts::{on_main_thread, thrown, PyAsyncParts, PyParts, PyStreamStats};
use crate::sign::{ChainSigner, Signer};
use crate::stream::Failure;
use crate::transport::{header_pairs, Transport, TransportError, MAX_ERROR_BODY};

type Make = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

#[derive(Default)]
struct DoneState {
    result: Option<Make>,
    waiter: Option<AsyncWaiter>,
    delivered: bool,
}

/// The shared state of one awaited operation (opening a session, sending a part).
#[derive(Default)]
struct Op(Mutex<DoneState>);

impl Op {
    fn lock(&self) -> std::sync::MutexGuard<'_, DoneState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn complete(&self, make: Make) {
        let waiter = {
            let mut state = self.lock();
            state.result = Some(make);
            state.waiter.take()
        };
        if let Some(AsyncWaiter {
            hub,
            future,
            urgent,
        }) = waiter
        {
            hub.wake(future, urgent);
        }
    }
}

/// An awaitable completed through a hub: awaiting it gives the operation's result. One that
/// is already complete returns without a trip through the event loop.
#[pyclass(name = "DuplexAwaitable", module = "sagestream._core", frozen)]
pub struct PyDone {
    op: Arc<Op>,
    hub: Py<PyHub>,
    task: Option<AbortHandle>,
}

impl PyDone {
    fn ready(hub: Py<PyHub>, make: Make) -> Self {
        let op = Arc::new(Op::default());
        op.complete(make);
        Self {
            op,
            hub,
            task: None,
        }
    }

    fn cancel(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        drop(self.op.lock().waiter.take());
    }
}

impl Drop for PyDone {
    fn drop(&mut self) {
        if !self.op.lock().delivered {
            if let Some(task) = &self.task {
                task.abort();
            }
        }
    }
}

#[pymethods]
impl PyDone {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut state = self.op.lock();
        if let Some(make) = state.result.take() {
            state.delivered = true;
            drop(state);
            return Err(PyStopIteration::new_err((make(py)?,)));
        }
        if state.delivered {
            return Err(PyRuntimeError::new_err("this was awaited already"));
        }
        let hub = self.hub.get();
        let future = hub.new_future(py)?;
        // A one-off answer (a session opened, input taken): the loop is woken at once.
        state.waiter = Some(hub.waiter(&future, true));
        Ok(Some(future.unbind()))
    }

    /// The task resumed with a value (the loop sends `None`): look again.
    #[pyo3(signature = (_value, /))]
    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.__next__(py)
    }

    /// The awaiting task is being cancelled: stop the operation.
    #[pyo3(signature = (typ, val=None, _tb=None, /))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.cancel();
        Err(thrown(py, typ, val))
    }

    /// The awaiting coroutine was closed: stop the operation.
    fn close(&self) {
        self.cancel();
    }
}

fn runtime() -> PyResult<(Handle, u64)> {
    crate::runtime::current()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O runtime: {e}")))
}

/// Run `work` on the shared runtime from this thread, without the GIL (Ctrl-C gets through
/// on the main thread).
fn block_on<F>(py: Python<'_>, handle: &Handle, work: F) -> PyResult<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if Handle::try_current().is_ok() {
        return Err(PyRuntimeError::new_err(
            "a blocking duplex call cannot run on the I/O runtime's own threads",
        ));
    }
    let mut work = Box::pin(work);
    let main = on_main_thread(py);
    loop {
        let waited = py.detach(|| {
            if main {
                handle.block_on(async {
                    tokio::time::timeout(Duration::from_millis(50), &mut work)
                        .await
                        .ok()
                })
            } else {
                Some(handle.block_on(&mut work))
            }
        });
        match waited {
            Some(output) => return Ok(output),
            None => py.check_signals()?,
        }
    }
}

/// Everything `open` needs, checked and signed: the spec and its chain signer.
pub(crate) fn prepare(
    signer: &Signer,
    url: &str,
    headers: HeaderMap,
    after: HeaderMap,
    deadline: Option<f64>,
    queue: usize,
    error_limit: Option<usize>,
) -> PyResult<(DuplexSpec, ChainSigner)> {
    let uri: Uri = url
        .parse()
        .map_err(|e| PyValueError::new_err(format!("invalid URL {url:?}: {e}")))?;
    if let Some(d) = deadline {
        if !(d.is_finite() && d >= 0.0) {
            return Err(PyValueError::new_err(
                "deadline must be a non-negative number of seconds",
            ));
        }
    }
    let mut spec = DuplexSpec {
        uri,
        headers,
        after,
        deadline,
        queue,
        error_limit: error_limit.unwrap_or(MAX_ERROR_BODY),
    };
    let chain = sign_request(signer, &mut spec)?;
    Ok((spec, chain))
}

/// Open a session, blocking this thread until the request is on its way.
pub(crate) fn open(
    py: Python<'_>,
    transport: &Arc<Transport>,
    (spec, chain): (DuplexSpec, ChainSigner),
) -> PyResult<PyDuplex> {
    let (handle, generation) = runtime()?;
    let transport = transport.clone();
    let opened = block_on(py, &handle, async move {
        Duplex::open(transport, spec, chain, generation).await
    })?;
    Ok(PyDuplex {
        duplex: opened?,
        handle,
    })
}

/// Open a session; an awaitable of it, completed through `hub`.
pub(crate) fn open_async(
    transport: &Arc<Transport>,
    hub: Py<PyHub>,
    (spec, chain): (DuplexSpec, ChainSigner),
) -> PyResult<PyDone> {
    let (handle, generation) = runtime()?;
    let transport = transport.clone();
    let op = Arc::new(Op::default());
    let done = op.clone();
    let task_handle = handle.clone();
    let task = handle.spawn(async move {
        let opened = Duplex::open(transport, spec, chain, generation).await;
        done.complete(Box::new(move |py: Python<'_>| match opened {
            Ok(duplex) => Ok(Py::new(
                py,
                PyDuplex {
                    duplex,
                    handle: task_handle,
                },
            )?
            .into_any()),
            Err(err) => Err(err.into()),
        }));
    });
    Ok(PyDone {
        op,
        hub,
        task: Some(task.abort_handle()),
    })
}

/// One bidirectional session.
#[pyclass(name = "Duplex", module = "sagestream._core", frozen)]
pub struct PyDuplex {
    duplex: Arc<Duplex>,
    handle: Handle,
}

impl PyDuplex {
    fn message(
        data: &[u8],
        data_type: Option<String>,
        completion_state: Option<String>,
    ) -> PyResult<Message> {
        if data.len() > MAX_INPUT_PART {
            return Err(PyValueError::new_err(format!(
                "an input part holds at most {MAX_INPUT_PART} bytes, got {}",
                data.len()
            )));
        }
        Ok(InputPart {
            data: Bytes::copy_from_slice(data),
            data_type,
            completion_state,
            padding: None,
        }
        .message())
    }

    /// The exception for input that cannot be sent: the stream's own failure when it has one
    /// (an error answer, a lost connection), else a plain "input is closed".
    fn not_sent(&self, py: Python<'_>, closed_by_user: bool) -> PyErr {
        if closed_by_user {
            return InputClosedError::new_err("close_input() was called already");
        }
        if let Some(why) = self.duplex.input_failure() {
            return InputClosedError::new_err(format!(
                "the input could not be signed or encoded: {why}"
            ));
        }
        // The stream stopped taking input; its answer (an error, most likely) may still be
        // on its way to the reader: wait a little for it.
        for _ in 0..200 {
            match self.duplex.output.end() {
                Some(Err(failure)) => return failure.to_py_err(py),
                Some(Ok(())) => break,
                None => py.detach(|| std::thread::sleep(Duration::from_millis(5))),
            }
        }
        let failure = Failure::Transport(TransportError::ConnectionLost {
            message: "the endpoint no longer reads this session's input".to_owned(),
        });
        failure.to_py_err(py)
    }
}

#[pymethods]
impl PyDuplex {
    /// Send one part, waiting (without the GIL) while the input queue is full.
    #[pyo3(signature = (data, data_type=None, completion_state=None))]
    fn send(
        &self,
        py: Python<'_>,
        data: &[u8],
        data_type: Option<String>,
        completion_state: Option<String>,
    ) -> PyResult<()> {
        let size = data.len();
        let message = Self::message(data, data_type, completion_state)?;
        let Ok(sender) = self.duplex.sender() else {
            return Err(self.not_sent(py, true));
        };
        let message = match sender.try_send(message) {
            Ok(()) => {
                self.duplex.sent(size);
                return Ok(());
            }
            Err(TrySendError::Closed(_)) => return Err(self.not_sent(py, false)),
            Err(TrySendError::Full(message)) => message,
        };
        let sent = block_on(py, &self.handle, async move { sender.send(message).await })?;
        match sent {
            Ok(()) => {
                self.duplex.sent(size);
                Ok(())
            }
            Err(_) => Err(self.not_sent(py, false)),
        }
    }

    /// Send one part; an awaitable completed through `hub` once the part is queued.
    #[pyo3(signature = (hub, data, data_type=None, completion_state=None))]
    fn send_async(
        slf: &Bound<'_, Self>,
        hub: Py<PyHub>,
        data: &[u8],
        data_type: Option<String>,
        completion_state: Option<String>,
    ) -> PyResult<PyDone> {
        let this = slf.get();
        let py = slf.py();
        let size = data.len();
        let message = Self::message(data, data_type, completion_state)?;
        let Ok(sender) = this.duplex.sender() else {
            let err = this.not_sent(py, true);
            return Ok(PyDone::ready(hub, Box::new(move |_| Err(err))));
        };
        let message = match sender.try_send(message) {
            Ok(()) => {
                this.duplex.sent(size);
                return Ok(PyDone::ready(hub, Box::new(|py| Ok(py.None()))));
            }
            Err(TrySendError::Closed(_)) => {
                let err = this.not_sent(py, false);
                return Ok(PyDone::ready(hub, Box::new(move |_| Err(err))));
            }
            Err(TrySendError::Full(message)) => message,
        };
        let op = Arc::new(Op::default());
        let done = op.clone();
        let owner = slf.clone().unbind();
        let duplex = this.duplex.clone();
        let task = this.handle.spawn(async move {
            let sent = sender.send(message).await.is_ok();
            if sent {
                duplex.sent(size);
            }
            done.complete(Box::new(move |py: Python<'_>| {
                if sent {
                    Ok(py.None())
                } else {
                    Err(owner.get().not_sent(py, false))
                }
            }));
        });
        Ok(PyDone {
            op,
            hub,
            task: Some(task.abort_handle()),
        })
    }

    /// End the input (the signed end message follows the queued parts); idempotent.
    fn close_input(&self) {
        self.duplex.close_input();
    }

    /// Whether `close_input` was called.
    #[getter]
    fn input_closed(&self) -> bool {
        self.duplex.input_closed()
    }

    /// Abandon the session: reset the stream, drop unread output (idempotent).
    fn close(&self) {
        self.duplex.close();
    }

    /// The output parts for a thread; each made by `part_class(data, data_type,
    /// completion_state)`. Once per session.
    fn parts(&self, part_class: Py<PyAny>) -> PyParts {
        PyParts::with_class(self.duplex.output.clone(), part_class)
    }

    /// The output parts for `async for` on `hub`'s loop (see `parts`).
    fn aparts(&self, hub: Py<PyHub>, part_class: Py<PyAny>) -> PyAsyncParts {
        PyAsyncParts::with_class(self.duplex.output.clone(), hub, part_class)
    }

    /// The answer's status, once it arrived (else None).
    #[getter]
    fn status(&self) -> Option<u16> {
        self.duplex.head().map(|(status, _)| status)
    }

    /// The answer's headers (lower-case names), once they arrived (else None).
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some((_, headers)) = self.duplex.head() else {
            return Ok(None);
        };
        let dict = PyDict::new(py);
        for (name, value) in header_pairs(&headers) {
            dict.set_item(name, value)?;
        }
        Ok(Some(dict))
    }

    /// Parts and bytes of input queued so far.
    fn sent(&self) -> (u64, u64) {
        self.duplex.sent_counts()
    }

    /// Counters and times of the output.
    fn stats(&self) -> PyStreamStats {
        self.duplex.output.metrics().into()
    }

    /// True once the output ended, failed, or the session was closed.
    #[getter]
    fn finished(&self) -> bool {
        self.duplex.output.finished()
    }
}

impl Drop for PyDuplex {
    fn drop(&mut self) {
        self.duplex.close();
    }
}
