//! The one tokio runtime of the process, which drives every connection of every client.
//!
//! A runtime's worker threads do not survive `fork()`: a child process (multiprocessing, Ray
//! workers, gunicorn) that touches the transport gets a runtime of its own, and the parent's
//! is leaked there rather than dropped (dropping it would wait for threads that do not exist).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use tokio::runtime::{Builder, Handle, Runtime};

/// Worker threads unless `SAGESTREAM_WORKER_THREADS` says otherwise: one thread reads every
/// socket; the work per read is small (decode, queue, wake), and a second worker mostly adds
/// wake-ups between the two.
const DEFAULT_WORKERS: usize = 1;

/// Which process this is, as far as forks go: a value that changes in a forked child.
///
/// On Unix, the count of forks this process descends through, kept by a `pthread_atfork`
/// child handler: a load per call where `getpid` would be a system call per call (glibc has
/// not cached the pid since 2.25). Elsewhere, or when the handler could not be installed, the
/// process id. The handler is installed before any value is handed out, so a runtime made
/// before a fork always sees it.
#[cfg(unix)]
mod lineage {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Once;

    static FORKS: AtomicU64 = AtomicU64::new(0);
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    static INSTALL: Once = Once::new();

    extern "C" fn forked() {
        // Runs in the child right after fork(): an atomic add is async-signal-safe.
        FORKS.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn current() -> u64 {
        INSTALL.call_once(|| {
            // SAFETY: registers a handler with no prepare/parent hooks; `forked` only touches
            // an atomic and never unwinds.
            let failed = unsafe { libc::pthread_atfork(None, None, Some(forked)) };
            INSTALLED.store(failed == 0, Ordering::Relaxed);
        });
        if INSTALLED.load(Ordering::Relaxed) {
            FORKS.load(Ordering::Relaxed)
        } else {
            u64::from(std::process::id())
        }
    }
}

#[cfg(not(unix))]
mod lineage {
    pub(super) fn current() -> u64 {
        u64::from(std::process::id())
    }
}

struct Owned {
    lineage: u64,
    generation: u64,
    runtime: Arc<Runtime>,
}

static RUNTIME: Mutex<Option<Owned>> = Mutex::new(None);

fn workers() -> usize {
    std::env::var("SAGESTREAM_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(DEFAULT_WORKERS)
}

/// The runtime of this process and its generation (which changes after a fork), creating it
/// on first use.
///
/// # Errors
/// When the operating system refuses the runtime's threads or its I/O driver.
pub fn current() -> std::io::Result<(Handle, u64)> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let lineage = lineage::current();
    if let Some(owned) = slot.as_ref() {
        if owned.lineage == lineage {
            return Ok((owned.runtime.handle().clone(), owned.generation));
        }
    }
    let generation = slot.as_ref().map_or(0, |o| o.generation + 1);
    if let Some(stale) = slot.take() {
        // Inherited from the parent: its threads are gone, so it cannot be shut down.
        std::mem::forget(stale);
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(workers())
        .thread_name("sagestream-io")
        .enable_io()
        .enable_time()
        .build()?;
    let handle = runtime.handle().clone();
    *slot = Some(Owned {
        lineage,
        generation,
        runtime: Arc::new(runtime),
    });
    Ok((handle, generation))
}

/// The per-thread runtime of one calling thread, and what lives on it.
pub struct Local {
    lineage: u64,
    /// A current-thread runtime: the calling thread itself does the I/O of its own blocking
    /// calls (no wake-up of another thread per read). Any thread can drive it while it is
    /// free, so a stream opened on one thread can be read on another.
    pub runtime: Arc<Runtime>,
    /// Per-transport state kept on this thread (its idle connections), by transport id.
    slots: Vec<(
        u64,
        std::sync::Weak<()>,
        Arc<dyn std::any::Any + Send + Sync>,
    )>,
}

thread_local! {
    static LOCAL: std::cell::RefCell<Option<Local>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with this thread's runtime, creating it on first use (and after a fork).
///
/// # Errors
/// When the runtime's I/O driver cannot be created.
pub fn local<R>(f: impl FnOnce(&mut Local) -> R) -> std::io::Result<R> {
    LOCAL.with(|cell| {
        let mut slot = cell.borrow_mut();
        let lineage = lineage::current();
        if slot.as_ref().is_some_and(|l| l.lineage != lineage) {
            // Inherited through fork: its driver's descriptors are the parent's too.
            std::mem::forget(slot.take());
        }
        if slot.is_none() {
            let runtime = Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()?;
            *slot = Some(Local {
                lineage,
                runtime: Arc::new(runtime),
                slots: Vec::new(),
            });
        }
        match slot.as_mut() {
            Some(local) => Ok(f(local)),
            None => Err(std::io::Error::other("no runtime")),
        }
    })
}

impl Local {
    /// This thread's value for the owner `id` (alive while `alive` is), made by `make` once.
    pub fn slot<T: Send + Sync + 'static>(
        &mut self,
        id: u64,
        alive: &Arc<()>,
        make: impl FnOnce() -> T,
    ) -> Option<Arc<T>> {
        self.slots.retain(|(_, owner, _)| owner.strong_count() > 0);
        if let Some((_, _, value)) = self.slots.iter().find(|(i, _, _)| *i == id) {
            return value.clone().downcast::<T>().ok();
        }
        let value: Arc<T> = Arc::new(make());
        self.slots.push((id, Arc::downgrade(alive), value.clone()));
        Some(value)
    }
}

/// The generation of the runtime `current()` would return now, without creating one.
#[must_use]
pub fn generation() -> Option<u64> {
    let slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    slot.as_ref()
        .filter(|o| o.lineage == lineage::current())
        .map(|o| o.generation)
}

/// Where Python's `time.monotonic()` stood at an instant: the anchor of [`monotonic`].
static MONOTONIC_ANCHOR: OnceLock<(Instant, f64)> = OnceLock::new();

/// Anchor [`monotonic`] to Python's clock: `python_now` is `time.monotonic()` read now (at
/// module initialisation). Later calls change nothing.
pub fn anchor_monotonic(python_now: f64) {
    let _ = MONOTONIC_ANCHOR.set((Instant::now(), python_now));
}

/// Seconds on the clock Python's `time.monotonic()` reads, so that times taken here and in
/// Python can be compared and subtracted.
///
/// Counted from the anchor [`anchor_monotonic`] set, on `std::time::Instant`: no platform call
/// of its own, and the same system clock as Python's — `CLOCK_MONOTONIC` on Linux,
/// `mach_absolute_time` on macOS, `QueryPerformanceCounter` on Windows (Python before 3.13
/// reads `GetTickCount64` there: the same rate, a coarser tick). Without an anchor (no
/// interpreter: the pure-Rust tests) the clock starts at 0 on first use.
#[must_use]
pub fn monotonic() -> f64 {
    let (at, base) = MONOTONIC_ANCHOR.get_or_init(|| (Instant::now(), 0.0));
    base + at.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_runtime_per_process() {
        let (a, gen_a) = current().expect("runtime");
        let (b, gen_b) = current().expect("runtime");
        assert_eq!(gen_a, gen_b);
        assert_eq!(generation(), Some(gen_a));
        assert_eq!(a.block_on(async { 1 + 1 }), 2);
        drop(b);
    }

    #[cfg(unix)]
    #[test]
    fn a_forked_child_is_of_another_lineage() {
        let parent = lineage::current();
        // SAFETY: the child only reads an atomic and leaves with `_exit` (no destructors, no
        // locks the parent's other threads might hold).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = i32::from(lineage::current() == parent);
            // SAFETY: ends the child at once, as above.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
        let waited = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        assert_eq!(waited, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(lineage::current(), parent);
    }

    #[test]
    fn monotonic_moves_forward() {
        let a = monotonic();
        let b = monotonic();
        assert!(a >= 0.0 && b >= a);
    }
}
