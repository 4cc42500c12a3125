//! The sticky-error queue every decoder and stream is built on, pyo3-free.
//!
//! A decoder turns reads into items and may meet an error part-way through a read: a bad frame
//! after two good ones, an error frame after the last payload, a line too long after complete
//! lines. Everywhere in sagestream the caller then sees the same thing: every item completed
//! before the error, then the error, then the same error again on every later call, and never
//! another item. [`StickyQueue`] is that rule, written once.
//!
//! ```
//! use _core::sticky::{Next, StickyQueue};
//!
//! let mut queue: StickyQueue<&str, String> = StickyQueue::new();
//! queue.push("a");
//! queue.push("b");
//! queue.fail("bad frame".to_owned());
//! queue.push("never"); // nothing follows an error
//! assert_eq!(queue.pop(), Ok(Next::Item("a")));
//! assert_eq!(queue.drain().map(Iterator::collect::<Vec<_>>), Ok(vec!["b"]));
//! assert_eq!(queue.pop(), Err(&"bad frame".to_owned()));
//! assert_eq!(queue.pop(), Err(&"bad frame".to_owned())); // sticky
//! ```
//!
//! The queue does not decode anything itself: the owner feeds its decoder while
//! [`StickyQueue::is_open`], pushing items and calling [`StickyQueue::fail`] or
//! [`StickyQueue::end`], and hands out what [`StickyQueue::pop`] or [`StickyQueue::drain`]
//! return. The error is handed out by reference, so that a binding can build a new exception
//! from it at each call instead of keeping a raised one alive.

use std::collections::vec_deque::{Drain, Iter};
use std::collections::VecDeque;

/// What [`StickyQueue::pop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next<T> {
    /// The oldest queued item.
    Item(T),
    /// Nothing is queued and the input has not ended: feed more.
    NeedsInput,
    /// Nothing is queued and the input ended cleanly: the stream is over.
    End,
}

/// Items queued in order, then at most one error that ends the stream for good.
#[derive(Debug, Clone)]
pub struct StickyQueue<T, E> {
    items: VecDeque<T>,
    error: Option<E>,
    /// No more input will be accepted: set by [`StickyQueue::end`], [`StickyQueue::fail`] and
    /// [`StickyQueue::close`].
    ended: bool,
}

impl<T, E> Default for StickyQueue<T, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, E> StickyQueue<T, E> {
    /// An empty, open queue.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            items: VecDeque::new(),
            error: None,
            ended: false,
        }
    }

    /// Whether more input may be fed: neither an error nor the end has been recorded.
    #[must_use]
    pub fn is_open(&self) -> bool {
        !self.ended
    }

    /// The error that ended the stream, if one did.
    #[must_use]
    pub fn error(&self) -> Option<&E> {
        self.error.as_ref()
    }

    /// How many items are queued.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The queued items, oldest first (for a binding that must show them to a garbage collector).
    pub fn items(&self) -> Iter<'_, T> {
        self.items.iter()
    }

    /// Queue an item. Once the stream failed or ended nothing may follow, and `item` is dropped.
    pub fn push(&mut self, item: T) {
        if !self.ended {
            self.items.push_back(item);
        }
    }

    /// End the stream with `error`, to be handed out once the queued items are. Only the first
    /// error counts, and none after [`StickyQueue::end`]: the stream was already over.
    pub fn fail(&mut self, error: E) {
        if !self.ended {
            self.error = Some(error);
            self.ended = true;
        }
    }

    /// The input ended cleanly: once the queued items are out, [`StickyQueue::pop`] says
    /// [`Next::End`].
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Stop early: drop the queued items and any error; from now on the stream is simply over.
    pub fn close(&mut self) {
        self.items.clear();
        self.error = None;
        self.ended = true;
    }

    /// The oldest queued item; when none is left, the error, on this call and every later one;
    /// else whether more input is needed or the stream is over.
    pub fn pop(&mut self) -> Result<Next<T>, &E> {
        if let Some(item) = self.items.pop_front() {
            return Ok(Next::Item(item));
        }
        match &self.error {
            Some(error) => Err(error),
            None if self.ended => Ok(Next::End),
            None => Ok(Next::NeedsInput),
        }
    }

    /// Every queued item at once, oldest first; when none is queued, the error (on this call and
    /// every later one). An empty drain means nothing is ready, or the stream is over.
    pub fn drain(&mut self) -> Result<Drain<'_, T>, &E> {
        match &self.error {
            Some(error) if self.items.is_empty() => Err(error),
            _ => Ok(self.items.drain(..)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Queue = StickyQueue<u32, &'static str>;

    #[test]
    fn items_then_end() {
        let mut q = Queue::new();
        assert!(q.is_open());
        assert_eq!(q.pop(), Ok(Next::NeedsInput));
        q.push(1);
        q.push(2);
        q.end();
        assert!(!q.is_open());
        q.push(3);
        assert_eq!(q.len(), 2);
        assert_eq!(q.items().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(q.pop(), Ok(Next::Item(1)));
        assert_eq!(q.pop(), Ok(Next::Item(2)));
        assert_eq!(q.pop(), Ok(Next::End));
        assert_eq!(q.pop(), Ok(Next::End));
        assert!(q.error().is_none());
    }

    /// A queue of `items` that then failed with "bad".
    fn failed(items: &[u32]) -> Queue {
        let mut q = Queue::new();
        for &item in items {
            q.push(item);
        }
        q.fail("bad");
        q
    }

    #[test]
    fn items_first_then_the_error_on_every_call() {
        let mut q = failed(&[1]);
        q.fail("later");
        q.push(2);
        assert!(!q.is_open());
        assert_eq!(q.error(), Some(&"bad"));
        assert_eq!(q.pop(), Ok(Next::Item(1)));
        for _ in 0..3 {
            assert_eq!(q.pop(), Err(&"bad"));
            assert!(q.drain().is_err());
        }
    }

    #[test]
    fn drain_hands_out_items_before_the_error() {
        assert_eq!(Queue::new().drain().map(Iterator::count), Ok(0));
        let mut q = failed(&[1, 2]);
        assert_eq!(q.drain().map(Iterator::collect::<Vec<_>>), Ok(vec![1, 2]));
        assert!(q.is_empty());
        assert_eq!(q.drain().map(Iterator::count), Err(&"bad"));
    }

    #[test]
    fn no_error_after_the_end() {
        let mut q = Queue::new();
        q.end();
        q.fail("too late");
        assert_eq!(q.pop(), Ok(Next::End));
        assert!(q.error().is_none());
    }

    #[test]
    fn close_drops_items_and_error() {
        let mut q = failed(&[1]);
        q.close();
        assert_eq!(q.pop(), Ok(Next::End));
        assert_eq!(q.drain().map(Iterator::count), Ok(0));
        q.push(5);
        assert!(q.is_empty());
    }
}
