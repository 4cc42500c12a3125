//! The bridge from the runtime's threads to one asyncio event loop.
//!
//! Written here rather than taken from pyo3-async-runtimes: its `future_into_py` completes each
//! future by taking the GIL on a runtime thread and calling `loop.call_soon_threadsafe`, one
//! GIL hand-over and one self-pipe write per completion — per token, on a stream. Here a
//! runtime thread never takes the GIL: it moves the waiting asyncio future into the hub's ready
//! list and writes an eventfd the loop watches (`loop.add_reader`); the loop's callback
//! resolves every ready future at once. While the loop is busy, wake-ups are spaced at least
//! `coalesce` apart, so tokens of many streams arriving within that window cost one wake-up;
//! an idle loop is woken at once, so a lone stream waits for nothing.
//!
//! The hub also carries its loop's [`Slice`]: how long an async reader may hand out parts
//! already at hand before it yields to the loop (see [`crate::fair`]).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyWeakrefReference;
use tokio::time::Instant;

use crate::fair::Slice;
use crate::stream::Wake;

struct State {
    ready: Vec<Py<PyAny>>,
    /// The eventfd was (or will be, by a timer) written and not read yet.
    signalled: bool,
    /// The eventfd was written (not just a timer set) and not read yet.
    written: bool,
    last_dispatch: Instant,
}

/// The thread-side of a hub: what runtime threads touch, without the GIL.
pub(crate) struct HubCore {
    fd: OwnedFd,
    coalesce: Duration,
    state: Mutex<State>,
}

impl HubCore {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolve `future` on the loop's next dispatch. An `urgent` one (a response's headers, a
    /// stream's first part: what a caller waits on before anything else) wakes the loop at once;
    /// others may wait up to the coalescing window.
    pub(crate) fn wake(self: &Arc<Self>, future: Py<PyAny>, urgent: bool) {
        let mut state = self.lock();
        state.ready.push(future);
        if state.written {
            return;
        }
        let now = Instant::now();
        let due = state.last_dispatch + self.coalesce;
        if urgent || now >= due {
            state.written = true;
            state.signalled = true;
            drop(state);
            self.signal();
            return;
        }
        if state.signalled {
            return; // a timer will write
        }
        state.signalled = true;
        drop(state);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let core = self.clone();
                handle.spawn(async move {
                    tokio::time::sleep_until(due).await;
                    let mut state = core.lock();
                    if state.signalled && !state.written {
                        state.written = true;
                        drop(state);
                        core.signal();
                    }
                });
            }
            Err(_) => self.signal(),
        }
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to an fd this hub owns; a full counter
        // (EAGAIN) already means "readable", which is all the write is for.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&raw const one).cast::<libc::c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    fn drain_fd(&self) {
        let mut value: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64 from a non-blocking eventfd this hub owns.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&raw mut value).cast::<libc::c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// A waiting asyncio future, woken through its hub.
pub(crate) struct AsyncWaiter {
    pub(crate) hub: Arc<HubCore>,
    pub(crate) future: Py<PyAny>,
    /// Wake the loop at once (see [`HubCore::wake`]).
    pub(crate) urgent: bool,
}

impl Wake for AsyncWaiter {
    fn wake(self: Box<Self>) {
        let Self {
            hub,
            future,
            urgent,
        } = *self;
        hub.wake(future, urgent);
    }
}

/// One event loop's hub: `loop.add_reader(hub.fileno(), hub.dispatch)` once per loop.
#[pyclass(name = "Hub", module = "sagestream._core", frozen)]
pub struct PyHub {
    pub(crate) core: Arc<HubCore>,
    /// How long a reader of this loop may run on items at hand (see [`crate::fair::Burst`]).
    pub(crate) slice: Slice,
    /// The loop, weakly: a hub kept per loop (in a weak mapping) must not keep it alive.
    event_loop: Py<PyWeakrefReference>,
}

impl PyHub {
    /// A new asyncio future of this hub's loop, marked as awaited (what `Future.__await__`
    /// marks before yielding it to the task).
    pub(crate) fn new_future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let event_loop = self.event_loop(py)?;
        let future = event_loop.call_method0(intern!(py, "create_future"))?;
        future.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
        Ok(future)
    }

    fn event_loop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.event_loop
            .bind(py)
            .upgrade()
            .ok_or_else(|| PyRuntimeError::new_err("the event loop of this hub is gone"))
    }

    /// A future (marked as awaited) that the loop resolves on its next turn, after the I/O
    /// callbacks and the timers that turn finds ready: what a reader that spent its slice
    /// waits on. A bare `yield` (`asyncio.sleep(0)`) would be queued ahead of them, so a task
    /// they wake would wait for the reader's next slice too.
    pub(crate) fn next_turn<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let hub = slf.get();
        let future = hub.new_future(py)?;
        // asyncio runs a timer due now after the next turn's I/O callbacks (`_run_once`);
        // uvloop makes it a `call_soon`, whose wake-up then comes a turn later, after the I/O
        // its poll found. Either way what became ready runs first.
        hub.event_loop(py)?.call_method1(
            intern!(py, "call_later"),
            (0.0, slf.getattr(intern!(py, "resume"))?, &future),
        )?;
        Ok(future)
    }

    /// A waiter that resolves `future` through this hub (`urgent`: see [`HubCore::wake`]).
    pub(crate) fn waiter(&self, future: &Bound<'_, PyAny>, urgent: bool) -> AsyncWaiter {
        AsyncWaiter {
            hub: self.core.clone(),
            future: future.clone().unbind(),
            urgent,
        }
    }
}

#[pymethods]
impl PyHub {
    /// `event_loop`: the asyncio loop the futures belong to. `coalesce`: the least time, in
    /// seconds, between two wake-ups of a busy loop. `slice_seconds` and `slice_items`: how
    /// long, and for how many items, an async reader may run on items already at hand before
    /// it yields to the loop (None: no bound; see [`crate::fair`]).
    #[new]
    #[pyo3(
        signature = (event_loop, *, coalesce = 0.001, slice_seconds = Some(0.001), slice_items = Some(256)),
        text_signature = "(event_loop, *, coalesce=0.001, slice_seconds=0.001, slice_items=256)"
    )]
    fn new(
        event_loop: &Bound<'_, PyAny>,
        coalesce: f64,
        slice_seconds: Option<f64>,
        slice_items: Option<u32>,
    ) -> PyResult<Self> {
        if !(coalesce.is_finite() && (0.0..=1.0).contains(&coalesce)) {
            return Err(PyValueError::new_err(
                "coalesce must be between 0 and 1 second",
            ));
        }
        let slice = Slice::new(slice_seconds, slice_items).map_err(PyValueError::new_err)?;
        // SAFETY: eventfd has no memory arguments; the returned descriptor is checked and
        // then owned by `OwnedFd` alone.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(PyOSError::new_err(format!(
                "eventfd failed: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self {
            core: Arc::new(HubCore {
                fd,
                coalesce: Duration::from_secs_f64(coalesce),
                state: Mutex::new(State {
                    ready: Vec::new(),
                    signalled: false,
                    written: false,
                    last_dispatch: Instant::now(),
                }),
            }),
            slice,
            event_loop: PyWeakrefReference::new(event_loop)?.unbind(),
        })
    }

    /// The descriptor that becomes readable when futures are ready.
    fn fileno(&self) -> i32 {
        self.core.fd.as_raw_fd()
    }

    /// Resolve every ready future (the loop's reader callback).
    fn dispatch(&self, py: Python<'_>) {
        self.core.drain_fd();
        let ready = {
            let mut state = self.core.lock();
            state.signalled = false;
            state.written = false;
            state.last_dispatch = Instant::now();
            std::mem::take(&mut state.ready)
        };
        let none = py.None();
        for future in ready {
            // A future cancelled meanwhile refuses a result (InvalidStateError): its task is
            // gone already, nothing to tell it.
            let _ = future
                .bind(py)
                .call_method1(intern!(py, "set_result"), (none.clone_ref(py),));
        }
    }

    /// Resolve `future` with None, unless it is done already (its task was cancelled): the
    /// end of a reader's yield (see `next_turn`).
    #[staticmethod]
    fn resume(future: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = future.py();
        if !future.call_method0(intern!(py, "done"))?.is_truthy()? {
            future.call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
        Ok(())
    }

    /// Futures waiting for the next dispatch (for tests).
    fn pending(&self) -> usize {
        self.core.lock().ready.len()
    }
}
