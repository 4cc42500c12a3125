//! `sagestream._core.Duplex`: one bidirectional session ([`crate::duplex`]) for Python — input
//! sent blocking (GIL released) or awaited (a [`PyDone`]), output read by the part iterators of
//! [`crate::py_parts`]. Sessions run on the shared runtime, so their I/O goes on while the
//! Python threads do other things.

use std::sync::Arc;

use aws_smithy_types::event_stream::Message;
use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::runtime::Handle;

use crate::duplex::{Duplex, DuplexSpec, InputPart, Queued, SendError, MAX_INPUT_PART};
use crate::py_args::header_dict;
use crate::py_hub::PyHub;
use crate::py_parts::{PyAsyncParts, PyParts};
use crate::py_wait::{block_on, Driver, Make, Once, PyHubAwaitable};
use crate::request_path::shared_runtime;
use crate::sign::ChainSigner;
use crate::stream::Metrics;
use crate::transport::Transport;

/// An awaitable of one duplex operation (opening a session, queueing a part): awaiting it gives
/// the operation's result. One that is already complete returns without a trip through the
/// event loop.
#[pyclass(name = "DuplexAwaitable", module = "sagestream._core", extends = PyHubAwaitable, frozen)]
pub struct PyDone;

impl PyDone {
    fn new(py: Python<'_>, hub: Py<PyHub>, once: Once) -> PyResult<Py<Self>> {
        PyHubAwaitable::extended(py, hub, once, Self)
    }

    /// The awaitable of what `work`, spawned on `handle`, makes.
    fn spawn(
        py: Python<'_>,
        hub: Py<PyHub>,
        handle: &Handle,
        work: impl std::future::Future<Output = Make> + Send + 'static,
    ) -> PyResult<Py<Self>> {
        Self::new(py, hub, Once::spawn(handle, work, "this"))
    }

    /// An awaitable complete already.
    fn ready(py: Python<'_>, hub: Py<PyHub>, make: Make) -> PyResult<Py<Self>> {
        Self::new(py, hub, Once::ready(make, "this"))
    }
}

/// Open a session, blocking this thread until the request is on its way.
pub(crate) fn open(
    py: Python<'_>,
    transport: &Arc<Transport>,
    (spec, chain): (DuplexSpec, ChainSigner),
) -> PyResult<PyDuplex> {
    let (handle, generation) = shared_runtime().map_err(PyRuntimeError::new_err)?;
    let transport = transport.clone();
    let opened = block_on(
        py,
        Driver::Shared(&handle),
        Duplex::open(transport, spec, chain, generation),
    )?;
    Ok(PyDuplex {
        duplex: opened?,
        handle,
    })
}

/// Open a session; an awaitable of it, completed through `hub`.
pub(crate) fn open_async(
    py: Python<'_>,
    transport: &Arc<Transport>,
    hub: Py<PyHub>,
    (spec, chain): (DuplexSpec, ChainSigner),
) -> PyResult<Py<PyDone>> {
    let (handle, generation) = shared_runtime().map_err(PyRuntimeError::new_err)?;
    let transport = transport.clone();
    let session_handle = handle.clone();
    PyDone::spawn(py, hub, &handle, async move {
        let opened = Duplex::open(transport, spec, chain, generation).await;
        let make: Make = Box::new(move |py| {
            let duplex = PyDuplex {
                duplex: opened?,
                handle: session_handle,
            };
            Ok(Py::new(py, duplex)?.into_any())
        });
        make
    })
}

/// One bidirectional session.
#[pyclass(name = "Duplex", module = "sagestream._core", frozen)]
pub struct PyDuplex {
    duplex: Arc<Duplex>,
    handle: Handle,
}

impl PyDuplex {
    /// The message of one input part, and its size.
    fn message(
        data: &[u8],
        data_type: Option<String>,
        completion_state: Option<String>,
    ) -> PyResult<(Message, usize)> {
        if data.len() > MAX_INPUT_PART {
            return Err(PyValueError::new_err(format!(
                "an input part holds at most {MAX_INPUT_PART} bytes, got {}",
                data.len()
            )));
        }
        let part = InputPart {
            data: Bytes::copy_from_slice(data),
            data_type,
            completion_state,
            padding: None,
        };
        Ok((part.message(), data.len()))
    }

    /// The exception for input refused for `why` (see [`Duplex::not_sent`]).
    fn not_sent(duplex: &Duplex, py: Python<'_>, why: &SendError) -> PyErr {
        py.detach(|| duplex.not_sent(why)).to_py_err(py)
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
        let (message, size) = Self::message(data, data_type, completion_state)?;
        let room = match self.duplex.try_queue(message, size) {
            Queued::Sent => return Ok(()),
            Queued::Refused(why) => return Err(Self::not_sent(&self.duplex, py, &why)),
            Queued::Full(room) => room,
        };
        let queued = block_on(py, Driver::Shared(&self.handle), room.queue(&self.duplex))?;
        queued.map_err(|why| Self::not_sent(&self.duplex, py, &why))
    }

    /// Send one part; an awaitable completed through `hub` once the part is queued.
    #[pyo3(signature = (hub, data, data_type=None, completion_state=None))]
    fn send_async(
        &self,
        py: Python<'_>,
        hub: Py<PyHub>,
        data: &[u8],
        data_type: Option<String>,
        completion_state: Option<String>,
    ) -> PyResult<Py<PyDone>> {
        let (message, size) = Self::message(data, data_type, completion_state)?;
        let room = match self.duplex.try_queue(message, size) {
            Queued::Sent => return PyDone::ready(py, hub, Box::new(|py| Ok(py.None()))),
            Queued::Refused(why) => {
                let err = Self::not_sent(&self.duplex, py, &why);
                return PyDone::ready(py, hub, Box::new(move |_| Err(err)));
            }
            Queued::Full(room) => room,
        };
        let duplex = self.duplex.clone();
        PyDone::spawn(py, hub, &self.handle, async move {
            let queued = room.queue(&duplex).await;
            let make: Make = Box::new(move |py| match queued {
                Ok(()) => Ok(py.None()),
                Err(why) => Err(Self::not_sent(&duplex, py, &why)),
            });
            make
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
        PyParts::new(self.duplex.output.clone(), None, Some(part_class))
    }

    /// The output parts for `async for` on `hub`'s loop (see `parts`).
    fn aparts(
        &self,
        py: Python<'_>,
        hub: Py<PyHub>,
        part_class: Py<PyAny>,
    ) -> PyResult<Py<PyAsyncParts>> {
        PyAsyncParts::new(py, self.duplex.output.clone(), hub, Some(part_class))
    }

    /// The answer's status, once it arrived (else None).
    #[getter]
    fn status(&self) -> Option<u16> {
        self.duplex.head().map(|(status, _)| status)
    }

    /// The answer's headers (lower-case names), once they arrived (else None).
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let head = self.duplex.head();
        head.map(|(_, headers)| header_dict(py, &headers))
            .transpose()
    }

    /// Parts and bytes of input queued so far.
    fn sent(&self) -> (u64, u64) {
        self.duplex.sent_counts()
    }

    /// Counters and times of the output.
    fn stats(&self) -> Metrics {
        self.duplex.output.metrics()
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
