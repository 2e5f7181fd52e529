//! What code that many threads run shares: a lock that outlives a panic, and a buffer
//! each thread keeps for its next request.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::LocalKey;

/// Locks `m`, even when a thread panicked while holding it: every lock in Routeplane
/// guards data that stays whole between statements (lines, connections, counters,
/// caches), and a panic in one request must not stop the others.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `buf` `len` bytes long, the bytes it gains zero: room for a read to fill.
///
/// Not `buf.resize(len, 0)`: at opt-level "s" that is a loop storing a byte at a time,
/// six instructions a byte (1.8k of a request's 35k to take a 297-byte answer, 600k for
/// a 100 KB prompt; callgrind), where copying from a block of zeros is `memcpy`.
pub fn zero_to(buf: &mut Vec<u8>, len: usize) {
    const ZEROS: &[u8] = &[0; 1024];
    buf.truncate(len);
    buf.reserve(len - buf.len());
    while buf.len() < len {
        let n = (len - buf.len()).min(ZEROS.len());
        buf.extend_from_slice(&ZEROS[..n]);
    }
}

/// The most a thread keeps of a buffer between requests: one that a long body or line
/// grew is freed, since a thousand threads (one per open stream) would each hold one.
pub const KEEP: usize = 16 * 1024;

/// What a thread can keep between requests: a vector or a string, emptied for reuse.
pub trait Reusable: Default {
    /// Empties it, keeping its room.
    fn empty(&mut self);
    /// The bytes its room takes.
    fn room(&self) -> usize;
}

impl<T> Reusable for Vec<T> {
    fn empty(&mut self) {
        self.clear();
    }
    fn room(&self) -> usize {
        self.capacity().saturating_mul(size_of::<T>())
    }
}

impl Reusable for String {
    fn empty(&mut self) {
        self.clear();
    }
    fn room(&self) -> usize {
        self.capacity()
    }
}

/// Takes this thread's spare from `slot`: empty, with the room its last use grew; with
/// none the first time, or when the spare is already taken further up this thread's
/// stack.
///
/// A connection thread reuses its buffers from one request to the next. Under musl's
/// allocator, one lock for every thread that maps and unmaps groups of mid-sized
/// blocks while holding it, each allocation a request saved was a wait fewer at 32
/// clients (`bench/results.md`, "Issue 16, session 11").
pub fn take_spare<R: Reusable>(slot: &'static LocalKey<Cell<R>>) -> R {
    slot.try_with(Cell::take).unwrap_or_default()
}

/// Gives `buf` back to `slot`, emptied, for this thread's next [`take_spare`], unless it
/// grew past [`KEEP`] bytes (or the thread is exiting): then it is freed.
pub fn keep_spare<R: Reusable>(slot: &'static LocalKey<Cell<R>>, mut buf: R) {
    if buf.room() <= KEEP {
        buf.empty();
        let _ = slot.try_with(|spare| spare.set(buf));
    }
}

/// Runs `f` with this thread's spare from `slot`, and keeps it afterwards.
pub fn with_spare<R: Reusable, T>(
    slot: &'static LocalKey<Cell<R>>,
    f: impl FnOnce(&mut R) -> T,
) -> T {
    let mut buf = take_spare(slot);
    let out = f(&mut buf);
    keep_spare(slot, buf);
    out
}

/// This thread's spare from a slot, given back when dropped: for a buffer that lives
/// through a function with many ways out.
pub struct Spare<R: Reusable + 'static> {
    slot: &'static LocalKey<Cell<R>>,
    buf: R,
}

impl<R: Reusable> Spare<R> {
    /// Takes this thread's spare from `slot` (see [`take_spare`]).
    pub fn take(slot: &'static LocalKey<Cell<R>>) -> Spare<R> {
        Spare {
            slot,
            buf: take_spare(slot),
        }
    }

    /// The buffer, no longer given back (it goes to another thread, or is kept).
    pub fn into_inner(mut self) -> R {
        std::mem::take(&mut self.buf)
    }
}

impl<R: Reusable + std::fmt::Debug> std::fmt::Debug for Spare<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.buf.fmt(f)
    }
}

impl<R: Reusable> Deref for Spare<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.buf
    }
}

impl<R: Reusable> DerefMut for Spare<R> {
    fn deref_mut(&mut self) -> &mut R {
        &mut self.buf
    }
}

impl<R: Reusable> Drop for Spare<R> {
    fn drop(&mut self) {
        // One without room (taken out, or never grown) must not replace a kept one.
        if self.buf.room() > 0 {
            keep_spare(self.slot, std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local!(static SLOT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) });

    #[test]
    fn a_spare_is_reused_emptied_unless_it_grew_too_big() {
        let first = with_spare(&SLOT, |buf| {
            buf.extend_from_slice(b"first");
            // Taken further up the stack: this one starts empty and is its own.
            with_spare(&SLOT, |inner| {
                assert!(inner.is_empty() && inner.capacity() == 0)
            });
            buf.as_ptr()
        });
        with_spare(&SLOT, |buf| {
            assert!(buf.is_empty());
            assert_eq!(buf.as_ptr(), first, "the spare was not reused");
            buf.resize(KEEP + 1, 0);
        });
        assert_eq!(take_spare(&SLOT).capacity(), 0, "a grown spare was kept");
    }

    #[test]
    fn zero_to_grows_with_zeros_and_shrinks() {
        let mut buf = b"kept".to_vec();
        zero_to(&mut buf, 2500);
        assert_eq!(&buf[..4], b"kept");
        assert!(buf.len() == 2500 && buf[4..].iter().all(|&b| b == 0));
        zero_to(&mut buf, 3);
        assert_eq!(buf, b"kep");
    }

    thread_local!(static TEXT: Cell<String> = const { Cell::new(String::new()) });

    #[test]
    fn a_spare_taken_for_a_scope_goes_back_when_dropped() {
        let first = {
            let mut text = Spare::take(&TEXT);
            text.push_str("http://127.0.0.1:1/v1");
            text.as_ptr()
        };
        let text = Spare::take(&TEXT);
        assert!(text.is_empty());
        assert_eq!(text.as_ptr(), first, "the spare was not given back");
    }
}
