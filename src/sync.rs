//! Taking a lock whose last holder panicked.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, even when a thread panicked while holding it: every lock in Routeplane
/// guards data that stays whole between statements (lines, connections, counters,
/// caches), and a panic in one request must not stop the others.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
