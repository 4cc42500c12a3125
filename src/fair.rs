//! A fair share of the event loop for async readers, pyo3-free.
//!
//! An asyncio task that reads a stream whose parts are already queued is handed them without
//! suspending: the iterator completes synchronously (no trip through the loop per part, the
//! reason async reading is cheap). Unbounded, that lets one stream read back to back hold the
//! loop for its whole length, and every other task, callback and socket of the loop wait.
//! A [`Slice`] (one per loop, on its hub) bounds such a run, by time and by items, whichever
//! comes first; each reader keeps a [`Burst`] and, once it is spent, suspends until the loop's
//! next turn before it hands out the next item.
//!
//! A reader that waits for its next item suspends anyway, and that ends its run: a paced
//! stream (a token every few milliseconds) never spends its slice, so it costs nothing more
//! than before, and still gets the tokens of many streams in one wake-up of the loop.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// How long a reader may go on handing out items without suspending: at most `time_ns`
/// (from the first look after it was resumed) and at most `items` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    time_ns: u64,
    items: u32,
}

impl Slice {
    /// `seconds` (at most 1; None: no bound on time) and `items` (at least 1; None: no bound
    /// on items).
    ///
    /// # Errors
    /// A message naming the argument out of range.
    pub fn new(seconds: Option<f64>, items: Option<u32>) -> Result<Self, &'static str> {
        let time_ns = match seconds {
            None => u64::MAX,
            Some(s) if s.is_finite() && (0.0..=1.0).contains(&s) => {
                // 0 ..= 1e9: the cast neither truncates a whole part nor wraps.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let ns = (s * 1e9) as u64;
                ns
            }
            Some(_) => return Err("slice_seconds must be between 0 and 1, or None"),
        };
        let items = match items {
            None => u32::MAX,
            Some(0) => return Err("slice_items must be at least 1, or None"),
            Some(n) => n,
        };
        Ok(Self { time_ns, items })
    }
}

/// Nanoseconds on a process-wide monotonic clock; never 0 (0 marks "no run" in [`Burst`]).
fn clock_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let elapsed = EPOCH.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// One reader's run on the loop since its task last suspended in it.
///
/// Before handing out an item it has at hand, the reader asks [`Burst::spent`]; when spent,
/// it suspends until the loop's next turn and calls [`Burst::yielded`]; when it waits for an
/// item, [`Burst::suspended`].
/// The run is timed from the first look after a suspension, not from the suspension: time the
/// loop spent on other tasks is not this reader's, so a reader resumed by a busy loop still
/// gets its whole slice (and costs no extra yield).
#[derive(Debug, Default)]
pub struct Burst {
    /// When the run began ([`clock_ns`]); 0: suspended, or never ran.
    began: AtomicU64,
    /// Items handed out in this run.
    items: AtomicU32,
    /// Runs that ended spent (see [`Burst::yielded`]).
    yields: AtomicU64,
}

impl Burst {
    /// Whether the reader must yield before it hands out one more item. The first call after
    /// a suspension starts a new run, and is never spent.
    pub fn spent(&self, slice: Slice) -> bool {
        // One reader at a time (a stream refuses a second waiter): relaxed order will do.
        let began = self.began.load(Ordering::Relaxed);
        if began == 0 {
            self.began.store(clock_ns(), Ordering::Relaxed);
            self.items.store(0, Ordering::Relaxed);
            return false;
        }
        self.items.load(Ordering::Relaxed) >= slice.items
            || clock_ns().saturating_sub(began) >= slice.time_ns
    }

    /// An item was handed out without suspending.
    pub fn delivered(&self) {
        self.items.fetch_add(1, Ordering::Relaxed);
    }

    /// The reader suspends (it waits for its next item): the run is over.
    pub fn suspended(&self) {
        self.began.store(0, Ordering::Relaxed);
    }

    /// The reader suspends with items at hand, its run spent: the run is over.
    pub fn yielded(&self) {
        self.yields.fetch_add(1, Ordering::Relaxed);
        self.suspended();
    }

    /// How many runs ended spent.
    pub fn yields(&self) -> u64 {
        self.yields.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Items handed out before `burst` asks for a yield.
    fn run(burst: &Burst, slice: Slice, limit: u32) -> u32 {
        let mut n = 0;
        while n < limit && !burst.spent(slice) {
            burst.delivered();
            n += 1;
        }
        n
    }

    #[test]
    fn a_run_ends_after_its_items() {
        let burst = Burst::default();
        let slice = Slice::new(None, Some(5)).unwrap();
        assert_eq!(run(&burst, slice, 100), 5);
        assert!(burst.spent(slice), "still spent until it suspends");
        burst.yielded();
        assert_eq!(run(&burst, slice, 100), 5, "a new run after the suspension");
        assert_eq!(burst.yields(), 1);
    }

    /// A fresh burst and a 2 ms slice of it, after `step` and then a 3 ms pause.
    fn paused_after(step: fn(&Burst)) -> (Burst, Slice) {
        let burst = Burst::default();
        let slice = Slice::new(Some(0.002), None).unwrap();
        assert!(!burst.spent(slice));
        step(&burst);
        std::thread::sleep(Duration::from_millis(3));
        (burst, slice)
    }

    #[test]
    fn a_run_ends_after_its_time() {
        let (burst, slice) = paused_after(Burst::delivered);
        assert!(burst.spent(slice));
    }

    #[test]
    fn time_spent_suspended_is_not_counted() {
        let (burst, slice) = paused_after(Burst::suspended);
        assert!(
            !burst.spent(slice),
            "the run starts at the first look after resuming"
        );
        burst.delivered();
        assert!(!burst.spent(slice));
    }

    #[test]
    fn a_suspension_before_the_slice_is_spent_starts_afresh() {
        let burst = Burst::default();
        let slice = Slice::new(None, Some(3)).unwrap();
        assert_eq!(run(&burst, slice, 2), 2);
        burst.suspended();
        assert_eq!(run(&burst, slice, 100), 3);
    }

    #[test]
    fn unbounded_never_spends() {
        let burst = Burst::default();
        assert_eq!(run(&burst, Slice::new(None, None).unwrap(), 10_000), 10_000);
    }

    #[test]
    fn arguments_out_of_range_are_refused() {
        assert!(Slice::new(Some(-0.1), None).is_err());
        assert!(Slice::new(Some(1.5), None).is_err());
        assert!(Slice::new(Some(f64::NAN), None).is_err());
        assert!(Slice::new(None, Some(0)).is_err());
        assert!(Slice::new(Some(0.0), Some(1)).is_ok());
    }
}
