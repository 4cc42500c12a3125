//! The bridge from the runtime's threads to one asyncio event loop.
//!
//! Written here rather than taken from pyo3-async-runtimes: its `future_into_py` completes each
//! future by taking the GIL on a runtime thread and calling `loop.call_soon_threadsafe`, one
//! GIL hand-over and one self-pipe write per completion — per token, on a stream. Here a
//! runtime thread never takes the GIL: it moves the waiting asyncio future into the hub's ready
//! list and makes a descriptor the loop watches (`loop.add_reader`) readable; the loop's
//! callback resolves every ready future at once. While the loop is busy, wake-ups are spaced at
//! least `coalesce` apart, so tokens of many streams arriving within that window cost one
//! wake-up; an idle loop is woken at once, so a lone stream waits for nothing.
//!
//! The descriptor is an eventfd on Linux, a pipe on other Unix systems and a loopback socket
//! pair on Windows (`crate::wakeup`). A loop that watches no descriptors (Windows' default
//! `ProactorEventLoop`) gets a hub of the `call_soon` kind instead: the wake-up is one
//! `loop.call_soon_threadsafe(dispatch)` per batch, made by a waker thread of the hub's own (never
//! by a runtime thread, which must not wait for the GIL), with the same batching.
//!
//! The hub also carries its loop's [`Slice`]: how long an async reader may hand out parts
//! already at hand before it yields to the loop (see [`crate::fair`]).

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple, PyWeakrefReference};
use tokio::time::Instant;

use crate::fair::Slice;
use crate::stream::Wake;
use crate::wakeup::{Kind, Wakeup};

/// The name of the descriptor-less kind (`SAGESTREAM_HUB_WAKEUP=call_soon`).
const CALL_SOON: &str = "call_soon";

struct State {
    ready: Vec<Py<PyAny>>,
    /// The loop was (or will be, by a timer) woken and has not dispatched yet.
    signalled: bool,
    /// The loop was woken (not just a timer set) and has not dispatched yet.
    written: bool,
    last_dispatch: Instant,
}

/// How the loop is woken.
enum Signal {
    /// A descriptor the loop watches with `add_reader`.
    Descriptor(Wakeup),
    /// `loop.call_soon_threadsafe(dispatch)`, from the hub's waker thread: a message on this
    /// channel asks for one.
    CallSoon(Sender<()>),
}

/// The thread-side of a hub: what runtime threads touch, without the GIL.
pub(crate) struct HubCore {
    signal: Signal,
    coalesce: Duration,
    state: Mutex<State>,
    /// The loop, weakly: a hub kept per loop (in a weak mapping) must not keep it alive.
    event_loop: Py<PyWeakrefReference>,
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

    /// Wake the loop: never blocks, never takes the GIL.
    fn signal(self: &Arc<Self>) {
        match &self.signal {
            Signal::Descriptor(wakeup) => wakeup.signal(),
            Signal::CallSoon(waker) => {
                let _ = waker.send(());
            }
        }
    }

    /// Resolve every ready future (on the loop's thread, from its callback).
    fn dispatch(&self, py: Python<'_>) {
        if let Signal::Descriptor(wakeup) = &self.signal {
            wakeup.drain();
        }
        let ready = {
            let mut state = self.lock();
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

    /// Schedule a dispatch on the loop (the waker thread, for a `call_soon` hub).
    fn call_soon(self: Arc<Self>, py: Python<'_>) -> PyResult<()> {
        let Some(event_loop) = self.event_loop.bind(py).upgrade() else {
            return Ok(()); // the loop is gone, and its futures with it
        };
        let core = self;
        let dispatch = PyCFunction::new_closure(
            py,
            None,
            None,
            move |args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| {
                core.dispatch(args.py());
            },
        )?;
        event_loop.call_method1(intern!(py, "call_soon_threadsafe"), (dispatch,))?;
        Ok(())
    }
}

/// Start the waker thread of a `call_soon` hub: for each message it takes the GIL and calls
/// `loop.call_soon_threadsafe`. It holds the hub weakly and ends with it (the hub holds the
/// channel's sender). One thread per hub, rather than one per process behind a lock: a lock
/// held by another thread when the process forks stays locked in the child for ever.
fn start_waker(hub: Weak<HubCore>, messages: std::sync::mpsc::Receiver<()>) -> PyResult<()> {
    std::thread::Builder::new()
        .name("sagestream-hub-waker".into())
        .spawn(move || {
            for () in messages {
                let Some(core) = hub.upgrade() else { break };
                // None: the interpreter is finalizing, nothing waits any more.
                let _ = Python::try_attach(move |py| {
                    // A closed loop refuses (RuntimeError): its futures are abandoned.
                    let _ = core.call_soon(py);
                });
            }
        })
        .map_err(|err| PyOSError::new_err(format!("cannot start the hub's waker thread: {err}")))?;
    Ok(())
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

/// A descriptor of the kind named `wakeup` (None: this platform's cheapest); `Ok(None)` for
/// `call_soon`.
fn make_wakeup(wakeup: Option<&str>) -> PyResult<Option<Wakeup>> {
    let kind = match wakeup {
        None => Kind::platform_default(),
        Some(CALL_SOON) => return Ok(None),
        Some(name) => Kind::from_name(name).ok_or_else(|| {
            PyValueError::new_err(format!(
                "unknown hub wake-up {name:?}: expected eventfd, pipe, socket or call_soon"
            ))
        })?,
    };
    if !kind.available() {
        return Err(PyValueError::new_err(format!(
            "the hub wake-up {:?} is not available on this platform",
            kind.name()
        )));
    }
    let wakeup = Wakeup::new(kind).map_err(|err| {
        PyOSError::new_err(format!(
            "cannot make the hub's {} wake-up: {err}",
            kind.name()
        ))
    })?;
    Ok(Some(wakeup))
}

/// One event loop's hub: `loop.add_reader(hub.fileno(), hub.dispatch)` once per loop, unless
/// its `wakeup` is `call_soon` (such a hub wakes its loop by itself).
#[pyclass(name = "Hub", module = "sagestream._core", frozen)]
pub struct PyHub {
    pub(crate) core: Arc<HubCore>,
    /// How long a reader of this loop may run on items at hand (see [`crate::fair::Burst`]).
    pub(crate) slice: Slice,
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
        self.core
            .event_loop
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
    /// seconds, between two wake-ups of a busy loop. `wakeup`: `eventfd`, `pipe`, `socket` or
    /// `call_soon` (None: eventfd on Linux, a pipe on other Unix systems, a socket elsewhere).
    /// `slice_seconds` and `slice_items`: how long, and for how many items, an async reader may
    /// run on items already at hand before it yields to the loop (None: no bound; see
    /// [`crate::fair`]).
    #[new]
    #[pyo3(
        signature = (event_loop, *, coalesce = 0.001, wakeup = None, slice_seconds = Some(0.001), slice_items = Some(256)),
        text_signature = "(event_loop, *, coalesce=0.001, wakeup=None, slice_seconds=0.001, slice_items=256)"
    )]
    fn new(
        event_loop: &Bound<'_, PyAny>,
        coalesce: f64,
        wakeup: Option<&str>,
        slice_seconds: Option<f64>,
        slice_items: Option<u32>,
    ) -> PyResult<Self> {
        if !(coalesce.is_finite() && (0.0..=1.0).contains(&coalesce)) {
            return Err(PyValueError::new_err(
                "coalesce must be between 0 and 1 second",
            ));
        }
        let slice = Slice::new(slice_seconds, slice_items).map_err(PyValueError::new_err)?;
        let (signal, messages) = if let Some(wakeup) = make_wakeup(wakeup)? {
            (Signal::Descriptor(wakeup), None)
        } else {
            let (sender, messages) = channel();
            (Signal::CallSoon(sender), Some(messages))
        };
        let core = Arc::new(HubCore {
            signal,
            coalesce: Duration::from_secs_f64(coalesce),
            state: Mutex::new(State {
                ready: Vec::new(),
                signalled: false,
                written: false,
                last_dispatch: Instant::now(),
            }),
            event_loop: PyWeakrefReference::new(event_loop)?.unbind(),
        });
        if let Some(messages) = messages {
            start_waker(Arc::downgrade(&core), messages)?;
        }
        Ok(Self { core, slice })
    }

    /// How this hub wakes its loop: `eventfd`, `pipe`, `socket` or `call_soon`.
    #[getter]
    fn wakeup(&self) -> &'static str {
        match &self.core.signal {
            Signal::Descriptor(wakeup) => wakeup.kind().name(),
            Signal::CallSoon(_) => CALL_SOON,
        }
    }

    /// The descriptor that becomes readable when futures are ready (a socket handle on
    /// Windows). A `call_soon` hub has none: `ValueError`.
    fn fileno(&self) -> PyResult<i64> {
        match &self.core.signal {
            Signal::Descriptor(wakeup) => {
                // A descriptor (i32) on Unix, a SOCKET (u64) on Windows.
                #[allow(clippy::unnecessary_fallible_conversions)]
                let handle = i64::try_from(wakeup.handle())
                    .map_err(|_| PyOSError::new_err("the hub's descriptor does not fit an int"))?;
                Ok(handle)
            }
            Signal::CallSoon(_) => Err(PyValueError::new_err(
                "a call_soon hub has no descriptor: it wakes its loop with call_soon_threadsafe",
            )),
        }
    }

    /// Resolve every ready future (the loop's reader callback).
    fn dispatch(&self, py: Python<'_>) {
        self.core.dispatch(py);
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
