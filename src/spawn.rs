//! Threads started, or their work done on the caller's own when the system refuses one.
//!
//! `std::thread::spawn` panics when no thread can be had (EAGAIN at the process's or
//! the cgroup's limit): a detection round, a command's listing or a login's refresh
//! then died with it. Here the work runs on the caller's thread instead, later than it
//! would have but done.

use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// Test hook: a comma-separated list of the thread names whose start fails, as at the
/// thread limit (which does not bind root): `refresh`, `probe`, `list`, `hosted`;
/// tiny_http reads `accept` and `queued` from it.
const HOOK: &str = "ROUTEPLANE_TEST_SPAWN_FAILS";

/// True when the test hook makes the start of thread `name` fail.
pub fn refused(name: &str) -> bool {
    std::env::var(HOOK).is_ok_and(|v| v.split(',').any(|n| n == name))
}

/// Work started on a thread of its own, or already done on the caller's.
pub enum Started<T> {
    /// Running on its thread.
    Thread(JoinHandle<Option<T>>),
    /// Done on the caller's thread: none could be started.
    Done(Option<T>),
}

impl<T> Started<T> {
    /// The work's result; `None` when its thread panicked.
    pub fn join(self) -> Option<T> {
        match self {
            Started::Thread(h) => h.join().ok().flatten(),
            Started::Done(t) => t,
        }
    }
}

/// Runs `work` on a new thread named `name`, or on this one when none can be had.
pub fn run<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> Started<T> {
    // `Builder::spawn` drops the closure it could not start: the work waits in a slot
    // both sides can reach, so that it can be taken back.
    let slot = Arc::new(Mutex::new(Some(work)));
    let theirs = Arc::clone(&slot);
    let spawned = if refused(name) {
        None
    } else {
        thread::Builder::new()
            .name(name.into())
            .spawn(move || crate::sync::lock(&theirs).take().map(|w| w()))
            .ok()
    };
    match spawned {
        Some(h) => Started::Thread(h),
        None => Started::Done(crate::sync::lock(&slot).take().map(|w| w())),
    }
}
