//! routeplane: what everything reading from one client connection shares.
//!
//! The socket's read timeout bounds each read, not a whole phase: a client sending one
//! byte just inside it each time could hold the connection's thread forever. A deadline
//! set here makes the socket reads of that phase (the header block, the drain of an
//! unread body, the lingering close) share one budget; `RefinedTcpStream::read` enforces
//! it. And a body reader that gave up, or a body that broke off, leaves the stream at an
//! unknown position, so it marks the connection as closing: what follows on the socket
//! is not a request.

use crate::connection::Connection;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub(crate) struct ConnState(Arc<Inner>);

/// `Inner::deadline` for a deadline that starts at the next socket read.
const PENDING: u64 = u64::MAX;

struct Inner {
    /// The socket's own read timeout (the server's client timeout), if any.
    timeout: Option<Duration>,
    /// When the current phase must be over, if one is running: nanoseconds after
    /// `since`, plus one; 0 when none runs; `PENDING` for one that starts at the next
    /// socket read. An atomic, not a lock: every socket read looks at it (a lock and an
    /// unlock each time showed in a profile).
    deadline: AtomicU64,
    /// What `deadline` counts from.
    since: Instant,
    /// No further request may be read from this connection.
    closing: AtomicBool,
    /// The TCP connection, only to look whether the client left (`client_gone`).
    peer: Option<Arc<Connection>>,
    /// The server shut the socket's reading side (the request said `Connection: close`,
    /// or the connection ended): a peek then sees an end that is ours.
    read_shut: AtomicBool,
    /// A read on the socket saw the client's end (EOF or a reset).
    peer_closed: AtomicBool,
    /// A thread is inside a read on the socket (a request handed to another thread
    /// leaves the connection's own reading the next one).
    reading: AtomicBool,
    /// The client's address (none on a Unix socket), here and not in each `Request`:
    /// a request is moved several times on its way, each move a copy (callgrind).
    remote: OnceLock<SocketAddr>,
}

impl ConnState {
    pub(crate) fn new(timeout: Option<Duration>) -> ConnState {
        ConnState::with_peer(timeout, None)
    }

    pub(crate) fn with_peer(
        timeout: Option<Duration>,
        peer: Option<Arc<Connection>>,
    ) -> ConnState {
        ConnState(Arc::new(Inner {
            timeout,
            deadline: AtomicU64::new(0),
            since: Instant::now(),
            closing: AtomicBool::new(false),
            peer,
            read_shut: AtomicBool::new(false),
            peer_closed: AtomicBool::new(false),
            reading: AtomicBool::new(false),
            remote: OnceLock::new(),
        }))
    }

    /// True when the client closed or reset the connection: a read saw it, or a peek
    /// (without blocking, without consuming: bytes waiting, a pipelined request, mean it
    /// is there). The socket is non-blocking only for the peek, and only while no
    /// thread is inside a read on it.
    pub(crate) fn client_gone(&self) -> bool {
        let Some(Connection::Tcp(s)) = self.0.peer.as_deref() else {
            return false;
        };
        if self.0.peer_closed.load(Ordering::SeqCst) {
            return true;
        }
        if self.0.read_shut.load(Ordering::SeqCst) || self.0.reading.load(Ordering::SeqCst) {
            // Unknowable by a peek (the end it would see is ours), or another thread's
            // read will see the client's end and set `peer_closed`; a non-blocking
            // moment must not surprise that read.
            return false;
        }
        if s.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let gone = match s.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        let _ = s.set_nonblocking(false);
        gone
    }

    /// Notes the client's address (once: later calls change nothing).
    pub(crate) fn set_remote(&self, addr: SocketAddr) {
        let _ = self.0.remote.set(addr);
    }

    /// The client's address, if it was noted.
    pub(crate) fn remote(&self) -> Option<&SocketAddr> {
        self.0.remote.get()
    }

    /// The socket's read timeout.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.0.timeout
    }

    /// `cap`, or the client timeout when that is shorter.
    pub(crate) fn at_most(&self, cap: Duration) -> Duration {
        self.0.timeout.map_or(cap, |t| t.min(cap))
    }

    /// The current phase's deadline; one set to start at the next read starts now.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.0.deadline.load(Ordering::Acquire) {
            0 => None,
            PENDING => {
                let deadline = Instant::now().checked_add(self.0.timeout?);
                self.set_deadline(deadline);
                deadline
            }
            n => Some(self.0.since + Duration::from_nanos(n - 1)),
        }
    }

    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) {
        let n = deadline.map_or(0, |d| {
            let after = d.saturating_duration_since(self.0.since).as_nanos();
            // Under `PENDING`, which is not a time.
            after.min(u128::from(u64::MAX - 2)) as u64 + 1
        });
        self.0.deadline.store(n, Ordering::Release);
    }

    /// Starts a deadline of the client timeout (if there is one) at the connection's
    /// next socket read instead of now: a request's head that came whole in one read
    /// reads no more, and asks no clock (reading it and the deadline's arithmetic were
    /// ~110 instructions a request, callgrind). The next read, if any, comes as soon as
    /// the bytes already read are parsed.
    pub(crate) fn start_deadline(&self) {
        if self.0.timeout.is_some() {
            self.0.deadline.store(PENDING, Ordering::Release);
        }
    }

    /// Notes that a thread enters (true) or leaves (false) a read on the socket.
    pub(crate) fn reading(&self, now: bool) {
        self.0.reading.store(now, Ordering::SeqCst);
    }

    /// Notes that a read saw the client's end of the connection.
    pub(crate) fn peer_closed(&self) {
        self.0.peer_closed.store(true, Ordering::SeqCst);
    }

    /// Notes that the server shut the socket's reading side.
    pub(crate) fn read_shut(&self) {
        self.0.read_shut.store(true, Ordering::SeqCst);
    }

    pub(crate) fn close(&self) {
        self.0.closing.store(true, Ordering::SeqCst);
    }

    pub(crate) fn closing(&self) -> bool {
        self.0.closing.load(Ordering::SeqCst)
    }
}

/// An error for a body that ended before its framing said it would.
pub(crate) fn body_ended(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("the body ended before its {what}"),
    )
}

/// A reader that fails with `body_ended`: what follows the bytes of a body cut short.
/// Reading it marks the connection as closing (not before: the request that carries it
/// has yet to be handed out).
pub(crate) struct Ended {
    pub(crate) what: &'static str,
    pub(crate) state: ConnState,
}

impl std::io::Read for Ended {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        self.state.close();
        Err(body_ended(self.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_started_for_the_next_read_runs_from_that_read() {
        let timeout = Duration::from_secs(5);
        let state = ConnState::new(Some(timeout));
        state.start_deadline();
        std::thread::sleep(Duration::from_millis(20));
        let before = Instant::now();
        let first = state.deadline().unwrap();
        assert!(first >= before + timeout && first <= Instant::now() + timeout);
        // Started once: asked again, it is the same moment.
        assert_eq!(state.deadline(), Some(first));
        state.set_deadline(None);
        assert_eq!(state.deadline(), None);
        // Without a client timeout there is none to start.
        let untimed = ConnState::new(None);
        untimed.start_deadline();
        assert_eq!(untimed.deadline(), None);
        // The farthest deadline is kept as a time, not taken for one yet to start.
        let since = state.0.since;
        state.set_deadline(Some(since + Duration::from_nanos(u64::MAX)));
        assert_eq!(state.deadline(), Some(since + Duration::from_nanos(u64::MAX - 2)));
    }
}
