//! What code that many threads run shares: a lock that outlives a panic, and a buffer
//! each thread keeps for its next request.

use std::cell::Cell;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::LocalKey;

/// Locks `m`, even when a thread panicked while holding it: every lock in Routeplane
/// guards data that stays whole between statements (lines, connections, counters,
/// caches), and a panic in one request must not stop the others.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The most a thread keeps of a buffer between requests: one that a long body or line
/// grew is freed, since a thousand threads (one per open stream) would each hold one.
pub const KEEP: usize = 16 * 1024;

/// Takes this thread's spare from `slot`, leaving it empty: empty too the first time, or
/// when the spare is already taken further up this thread's stack.
///
/// A connection thread reuses its buffers from one request to the next. Under musl's
/// allocator, one lock for every thread that maps and unmaps groups of mid-sized
/// blocks while holding it, each allocation a request saved was a wait fewer at 32
/// clients (`bench/results.md`, "Issue 16, session 11").
pub fn take_spare(slot: &'static LocalKey<Cell<Vec<u8>>>) -> Vec<u8> {
    slot.try_with(Cell::take).unwrap_or_default()
}

/// Gives `buf` back to `slot` for this thread's next [`take_spare`], unless it grew past
/// [`KEEP`] (or the thread is exiting): then it is freed.
pub fn keep_spare(slot: &'static LocalKey<Cell<Vec<u8>>>, buf: Vec<u8>) {
    if buf.capacity() <= KEEP {
        let _ = slot.try_with(|spare| spare.set(buf));
    }
}

/// Runs `f` with this thread's spare from `slot`, emptied, and keeps it afterwards.
pub fn with_spare<R>(
    slot: &'static LocalKey<Cell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    let mut buf = take_spare(slot);
    buf.clear();
    let out = f(&mut buf);
    keep_spare(slot, buf);
    out
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
}
