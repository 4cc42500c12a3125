//! How Python waits for the runtime, written once for responses, parts and duplex sessions.
//!
//! - A thread blocks in [`block_on`] (or [`wait_detached`]) without the GIL. On the main thread,
//!   the only one signals reach, it wakes every [`SIGNAL_CHECK`] to let Ctrl-C through.
//! - An asyncio task awaits a [`PyHubAwaitable`]: an object that is its own awaitable, looks at
//!   what it waits for each time its task steps it ([`Awaited`]), and, with nothing at hand,
//!   hands the task an asyncio future its [`PyHub`] resolves once there is. Something already
//!   at hand is returned without a trip through the loop, until the hub's time slice is spent
//!   ([`crate::fair`]): then the task waits for the loop's next turn ([`PyHub::next_turn`]), so
//!   that one stream read back to back does not hold the loop.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::{PyClass, PyClassInitializer};
use tokio::runtime::{Handle, Runtime};
use tokio::task::AbortHandle;

use crate::fair::Burst;
use crate::py_hub::PyHub;
use crate::stream::Wake;

/// How often a wait on the main thread looks for signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// `threading.main_thread().ident`, once known (0: not yet).
static MAIN_THREAD: AtomicU64 = AtomicU64::new(0);

/// Whether this is the interpreter's main thread, the only one signals (Ctrl-C) reach.
fn on_main_thread(py: Python<'_>) -> bool {
    let mut main = MAIN_THREAD.load(Ordering::Relaxed);
    if main == 0 {
        main = py
            .import("threading")
            .and_then(|t| t.call_method0("main_thread"))
            .and_then(|t| t.getattr("ident"))
            .and_then(|i| i.extract::<u64>())
            .unwrap_or(u64::MAX);
        MAIN_THREAD.store(main, Ordering::Relaxed);
    }
    // SAFETY: a plain query of the calling thread's id; no arguments, no state.
    #[allow(clippy::useless_conversion)] // `c_ulong` is 32 bits on some platforms
    let this = u64::from(unsafe { pyo3::ffi::PyThread_get_thread_ident() });
    this == main
}

/// Wait without the GIL until `wait` gives a value. `wait` is given how long it may block:
/// [`SIGNAL_CHECK`] on the main thread (None after it: the signal handlers run, then it is
/// asked again), no bound elsewhere.
pub(crate) fn wait_detached<T: Send>(
    py: Python<'_>,
    mut wait: impl FnMut(Option<Duration>) -> Option<T> + Send,
) -> PyResult<T> {
    let bound = on_main_thread(py).then_some(SIGNAL_CHECK);
    loop {
        if let Some(value) = py.detach(|| wait(bound)) {
            return Ok(value);
        }
        // Let Ctrl-C through (only the main thread waits in slices).
        py.check_signals()?;
    }
}

/// The runtime a blocking wait drives.
#[derive(Clone, Copy)]
pub(crate) enum Driver<'a> {
    /// A calling thread's own current-thread runtime: the waiting thread does its I/O.
    Local(&'a Runtime),
    /// The shared runtime, whose I/O thread does the work while this one waits.
    Shared(&'a Handle),
}

/// Run `work` to its end on `driver` from this thread, without the GIL.
pub(crate) fn block_on<F>(py: Python<'_>, driver: Driver<'_>, work: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    if Handle::try_current().is_ok() {
        // tokio refuses (panics) to block a thread that drives a runtime.
        return Err(PyRuntimeError::new_err(
            "a blocking call cannot run on the I/O runtime's own threads",
        ));
    }
    let mut work = Box::pin(work);
    wait_detached(py, |bound| {
        let step = async {
            match bound {
                Some(bound) => tokio::time::timeout(bound, &mut work).await.ok(),
                None => Some((&mut work).await),
            }
        };
        match driver {
            Driver::Local(runtime) => runtime.block_on(step),
            Driver::Shared(handle) => handle.block_on(step),
        }
    })
}

/// The exception `throw(typ, val)` asks for, as a generator's `throw` builds it.
fn thrown(typ: &Bound<'_, PyAny>, val: Option<&Bound<'_, PyAny>>) -> PyErr {
    if let Some(val) = val.filter(|v| !v.is_none()) {
        return PyErr::from_value(val.clone());
    }
    if let Ok(cls) = typ.cast::<PyType>() {
        return match cls.call0() {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        };
    }
    PyErr::from_value(typ.clone())
}

/// What a [`PyHubAwaitable`] waits for.
pub(crate) trait Awaited: Send + Sync {
    /// Take what is at hand: the value the `await` gives, or the exception it raises; None
    /// when there is nothing yet.
    fn take(&self, py: Python<'_>) -> Option<PyResult<Py<PyAny>>>;
    /// Whether [`Awaited::take`] would give something now (a look that takes nothing).
    fn at_hand(&self) -> bool;
    /// Wait with `waiter`: None once it waits, or `waiter` given back when something came
    /// meanwhile (look again).
    fn wait(&self, waiter: Box<dyn Wake>) -> PyResult<Option<Box<dyn Wake>>>;
    /// Whether the loop is to be woken at once when it comes (see `HubCore::wake`).
    fn urgent(&self) -> bool;
    /// The awaiting task was cancelled, or its coroutine closed: stop.
    fn cancel(&self);
    /// The awaiting task was thrown `error` (cancelled): stop.
    fn thrown(&self, _py: Python<'_>, _error: &PyErr) {
        self.cancel();
    }
    /// The awaitable was closed: stop.
    fn closed(&self, _py: Python<'_>) {
        self.cancel();
    }
}

/// The value of a [`Completion`], made once the GIL is at hand.
pub(crate) type Make = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

#[derive(Default)]
struct CompletionState {
    made: Option<Make>,
    waiter: Option<Box<dyn Wake>>,
    delivered: bool,
}

/// The shared state of one operation awaited once (a request's response, a session opened, a
/// part queued): the runtime's task completes it, the awaitable takes it.
#[derive(Default)]
struct Completion(Mutex<CompletionState>);

impl Completion {
    fn lock(&self) -> std::sync::MutexGuard<'_, CompletionState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The operation is over: `make` makes its value (or its exception).
    fn complete(&self, make: Make) {
        let waiter = {
            let mut state = self.lock();
            state.made = Some(make);
            state.waiter.take()
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
}

/// A [`Completion`] as awaited: the task that completes it is stopped when the awaiting task
/// is cancelled, or when the awaitable goes before its value was taken.
pub(crate) struct Once {
    completion: Arc<Completion>,
    task: Option<AbortHandle>,
    /// What was awaited, for the error of a second `await` ("this response").
    what: &'static str,
}

impl Once {
    /// An awaitable of `completion`, which `task` (when there is one) completes.
    fn new(completion: Arc<Completion>, task: Option<AbortHandle>, what: &'static str) -> Self {
        Self {
            completion,
            task,
            what,
        }
    }

    /// An awaitable of what `work`, spawned on `handle`, makes.
    pub(crate) fn spawn(
        handle: &Handle,
        work: impl Future<Output = Make> + Send + 'static,
        what: &'static str,
    ) -> Self {
        let completion = Arc::new(Completion::default());
        let done = completion.clone();
        let task = handle.spawn(async move { done.complete(work.await) });
        Self::new(completion, Some(task.abort_handle()), what)
    }

    /// An awaitable complete already.
    pub(crate) fn ready(make: Make, what: &'static str) -> Self {
        let completion = Arc::new(Completion::default());
        completion.complete(make);
        Self::new(completion, None, what)
    }
}

impl Awaited for Once {
    fn take(&self, py: Python<'_>) -> Option<PyResult<Py<PyAny>>> {
        let mut state = self.completion.lock();
        if let Some(make) = state.made.take() {
            state.delivered = true;
            drop(state);
            return Some(make(py));
        }
        if state.delivered {
            let message = format!("{} was awaited already", self.what);
            return Some(Err(PyRuntimeError::new_err(message)));
        }
        None
    }

    fn at_hand(&self) -> bool {
        self.completion.lock().made.is_some()
    }

    fn wait(&self, waiter: Box<dyn Wake>) -> PyResult<Option<Box<dyn Wake>>> {
        let mut state = self.completion.lock();
        if state.made.is_some() {
            return Ok(Some(waiter));
        }
        state.waiter = Some(waiter);
        Ok(None)
    }

    fn urgent(&self) -> bool {
        // A one-off answer (response headers, a session opened, input taken): wake at once.
        true
    }

    fn cancel(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        let waiter = self.completion.lock().waiter.take();
        drop(waiter);
    }
}

impl Drop for Once {
    fn drop(&mut self) {
        if !self.completion.lock().delivered {
            if let Some(task) = &self.task {
                task.abort();
            }
        }
    }
}

/// The awaitable protocol over an [`Awaited`], completed through a hub. Awaiting it gives the
/// value; the classes that extend it say what it is.
#[pyclass(name = "HubAwaitable", module = "sagestream._core", subclass, frozen)]
pub struct PyHubAwaitable {
    hub: Py<PyHub>,
    /// Values handed out since the task last suspended.
    burst: Burst,
    awaited: Box<dyn Awaited>,
}

impl PyHubAwaitable {
    /// `class`, a class that extends this one, awaiting `awaited` on `hub`'s loop.
    pub(crate) fn extended<T: PyClass<BaseType = Self>>(
        py: Python<'_>,
        hub: Py<PyHub>,
        awaited: impl Awaited + 'static,
        class: T,
    ) -> PyResult<Py<T>> {
        let base = Self {
            hub,
            burst: Burst::default(),
            awaited: Box::new(awaited),
        };
        Py::new(py, PyClassInitializer::from(base).add_subclass(class))
    }

    /// How many times the task let the loop run others with values at hand (its slice spent).
    pub(crate) fn yields(&self) -> u64 {
        self.burst.yields()
    }
}

#[pymethods]
impl PyHubAwaitable {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// One step of the awaiting task: the value (as `StopIteration`), or a future to wait on.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let hub = self.hub.get();
        loop {
            if self.burst.spent(hub.slice) && self.awaited.at_hand() {
                // Let the loop run everything else that is ready, then come back for it.
                let future = PyHub::next_turn(self.hub.bind(py))?;
                self.burst.yielded();
                return Ok(Some(future.unbind()));
            }
            if let Some(taken) = self.awaited.take(py) {
                let value = taken?;
                self.burst.delivered();
                return Err(PyStopIteration::new_err((value,)));
            }
            let future = hub.new_future(py)?;
            let waiter = hub.waiter(&future, self.awaited.urgent());
            if self.awaited.wait(Box::new(waiter))?.is_none() {
                self.burst.suspended();
                return Ok(Some(future.unbind()));
            }
        }
    }

    /// The task resumed with a value (the loop sends `None`): look again.
    #[pyo3(signature = (_value, /))]
    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.__next__(py)
    }

    /// The awaiting task is being cancelled (or thrown into): stop.
    #[pyo3(signature = (typ, val=None, _tb=None, /))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let error = thrown(typ, val);
        self.awaited.thrown(py, &error);
        Err(error)
    }

    /// Stop (idempotent); also what closing the awaiting coroutine calls.
    fn close(&self, py: Python<'_>) {
        self.awaited.closed(py);
    }
}
