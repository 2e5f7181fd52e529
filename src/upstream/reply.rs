//! An upstream's answer once its head is read: the body, read whole up to a limit or
//! piece by piece as a stream, each wait bounded and asking whether it is still wanted.

use std::borrow::Cow;
use std::cell::Cell;
use std::time::{Duration, Instant};

use super::http1::Body;
use super::{Abandon, KEEP_WAITING, SLICE, conn};
use crate::sync;

/// An upstream's answer: status, a few headers, and the body still to read.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `content-type`, lower-cased; the common ones borrowed, not allocated.
    pub content_type: Cow<'static, str>,
    /// Headers passed back to the client.
    pub headers: Vec<(String, String)>,
    /// `Retry-After` and provider reset headers, as a duration from now.
    pub retry_after: Option<Duration>,
    /// The body's `Content-Encoding` (`gzip`, `br`, `zstd`, `deflate`…), lower-cased;
    /// `None` without one or for `identity`. Routeplane asks for none and decodes none:
    /// a body with one cannot be read, and the relay says so.
    pub coding: Option<Box<str>>,
    pub(super) body: Source,
}

/// Where a reply's body comes from.
pub(super) enum Source {
    /// The connection it arrived on.
    Wire(Body),
    /// Bytes already in hand (an answer rewritten by Routeplane).
    Bytes(Vec<u8>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .finish()
    }
}

thread_local! {
    /// A whole answer's buffer, given back by [`recycle`] for the thread's next one.
    static SPARE_BODY: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Gives back a body [`Reply::read_all`] returned, once its bytes went out: the thread's
/// next whole answer is read into it (see [`sync::take_spare`]).
pub fn recycle(body: Vec<u8>) {
    sync::keep_spare(&SPARE_BODY, body);
}

/// What one wait on a streaming body produced.
#[derive(Debug)]
pub enum Piece {
    /// Bytes, as the network delivered them.
    Data(Vec<u8>),
    /// The body ended cleanly.
    End,
    /// Nothing arrived before the deadline.
    Timeout,
    /// The connection broke.
    Broken(String),
    /// The answer stopped being wanted while it was awaited (see [`Abandon`]).
    Abandoned,
}

/// Why a whole body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// It broke off or ended before its length.
    Failed(String),
    /// It was larger than the limit the reader was given.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// It stalled: a read waited its whole time (the wait its head had) for nothing.
    Timeout,
    /// The answer stopped being wanted while it was awaited (see [`Abandon`]).
    Abandoned,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Failed(why) => f.write_str(why),
            BodyError::TooLarge { limit } => write!(f, "the body is larger than {limit} bytes"),
            BodyError::Timeout => f.write_str("the body stalled part-way"),
            BodyError::Abandoned => f.write_str("the answer is no longer wanted"),
        }
    }
}

/// A streaming body, read on the caller's thread with a deadline per read.
pub struct Stream {
    body: Source,
    /// One read's worth; the bytes are copied out into each [`Piece::Data`].
    buf: Vec<u8>,
    /// The body ended, broke or timed out: later calls answer without reading.
    over: Option<Piece>,
}

/// The most one piece carries: events are far smaller.
const READ_SIZE: usize = 4 * 1024;

impl Reply {
    /// An answer already in hand: `bytes` as its body, read as one that arrived.
    pub fn in_hand(
        status: u16,
        content_type: Cow<'static, str>,
        headers: Vec<(String, String)>,
        bytes: Vec<u8>,
    ) -> Reply {
        Reply {
            status,
            content_type,
            headers,
            retry_after: None,
            coding: None,
            body: Source::Bytes(bytes),
        }
    }

    /// Reads the whole body (non-streaming answers, error bodies), up to `limit` bytes;
    /// a long wait, or a body still trickling in after a slice, asks `abandon` whether
    /// to give up.
    pub fn read_all(self, limit: u64, abandon: Abandon<'_>) -> Result<Vec<u8>, BodyError> {
        self.read_until(limit, None, abandon)
    }

    /// Reads the whole body, each read bounded by the head's wait, all of it by
    /// `deadline` when given.
    pub(super) fn read_until(
        self,
        limit: u64,
        deadline: Option<Instant>,
        abandon: Abandon<'_>,
    ) -> Result<Vec<u8>, BodyError> {
        let too_large = || BodyError::TooLarge { limit };
        let broke = |e: std::io::Error| match () {
            () if conn::abandoned(&e) => BodyError::Abandoned,
            () if conn::is_timeout(&e) => BodyError::Timeout,
            () => BodyError::Failed(format!("the body broke off: {e}")),
        };
        let mut body = match self.body {
            Source::Bytes(bytes) if bytes.len() as u64 > limit => return Err(too_large()),
            Source::Bytes(bytes) => return Ok(bytes),
            Source::Wire(body) => body,
        };
        // Sized from Content-Length (when sane) so the read does not grow it step by step,
        // and done when that many bytes are in.
        let exact = body.declared_len().filter(|&n| n <= limit.min(1 << 20));
        let mut out = sync::take_spare(&SPARE_BODY);
        out.clear();
        if exact.is_some() {
            body.take_buffered(&mut out);
        }
        let mut len = out.len();
        sync::zero_to(&mut out, exact.map_or(1024, |n| (n as usize).max(1)));
        // When the answer was last known to be wanted; None until a second read.
        let mut wanted_at: Option<Instant> = None;
        loop {
            if len == out.len() {
                if exact == Some(len as u64) {
                    break;
                }
                if len as u64 > limit {
                    return Err(too_large());
                }
                sync::zero_to(&mut out, (len * 2).min(limit as usize + 1).max(len + 1));
            }
            if let (Some(d), Some(conn)) = (deadline, body.conn()) {
                conn.set_deadline(d).map_err(broke)?;
            }
            match body.read(&mut out[len..], abandon) {
                Ok(0) => break,
                // A body that trickles in (a few bytes every half second) never leaves a
                // slice silent, so `abandon` is asked here too, at most once a SLICE:
                // only from the second read on, so a body that came in one read (most
                // answers) reads no clock.
                Ok(n) if len > 0 => {
                    len += n;
                    let now = Instant::now();
                    let since = *wanted_at.get_or_insert(now);
                    if now.duration_since(since) >= SLICE {
                        if abandon() {
                            return Err(BodyError::Abandoned);
                        }
                        wanted_at = Some(now);
                    }
                }
                Ok(n) => len += n,
                Err(e) => return Err(broke(e)),
            }
        }
        if len as u64 > limit {
            return Err(too_large());
        }
        out.truncate(len);
        Ok(out)
    }

    /// Hands the body over for reading piece by piece; see [`Stream::next`].
    pub fn stream(self) -> Stream {
        Stream {
            body: self.body,
            buf: Vec::new(),
            over: None,
        }
    }
}

impl Stream {
    /// Waits until `deadline` for the next piece: what the network delivered in one
    /// read, with whatever more is already buffered. A long wait asks `abandon` whether
    /// to give up.
    ///
    /// A timeout is final: the connection may hold half an event, so it is closed, and
    /// every later call answers `Timeout` again without reading (and so for a stream
    /// given up).
    pub fn next(&mut self, deadline: Instant, abandon: Abandon<'_>) -> Piece {
        if let Some(last) = &self.over {
            return last.again();
        }
        let body = match &mut self.body {
            Source::Wire(body) => body,
            Source::Bytes(bytes) => {
                let piece = if bytes.is_empty() {
                    Piece::End
                } else {
                    Piece::Data(std::mem::take(bytes))
                };
                return piece;
            }
        };
        if self.buf.is_empty() {
            sync::zero_to(&mut self.buf, READ_SIZE);
        }
        let mut result = match body.conn() {
            Some(conn) => conn
                .set_deadline(deadline)
                .and_then(|()| body.read(&mut self.buf, abandon)),
            None => Ok(0),
        };
        // Chunk boundaries already in hand need no wait: one piece per network read.
        while let Ok(n) = result {
            if n == 0 || n == self.buf.len() {
                break;
            }
            match body.read_buffered(&mut self.buf[n..]) {
                Ok(Some(m)) if m > 0 => result = Ok(n + m),
                _ => break,
            }
        }
        let piece = match result {
            Ok(0) => Piece::End,
            Ok(n) => return Piece::Data(self.buf[..n].to_vec()),
            Err(e) if conn::abandoned(&e) => Piece::Abandoned,
            Err(e) if conn::is_timeout(&e) || Instant::now() >= deadline => Piece::Timeout,
            Err(e) => Piece::Broken(format!("the stream broke off: {e}")),
        };
        self.over = Some(piece.again());
        // The read buffer is not needed any more.
        self.buf = Vec::new();
        piece
    }
}

/// How long a stream dropped before its body's end waits for that end: see `Drop`.
const LINGER: Duration = Duration::from_millis(5);

impl Drop for Stream {
    /// The relay stops reading at the protocol's end marker (`[DONE]`, `message_stop`);
    /// the body's own end (the last chunk) comes in the same packet or just after it.
    /// Reading it hands the connection back to the pool for the next request (for a
    /// hosted API, a TLS handshake saved); a connection dropped before its end is
    /// closed. A body that goes on (the client left mid-stream) is closed after at most
    /// a few reads, within `LINGER`.
    fn drop(&mut self) {
        let Source::Wire(body) = &mut self.body else {
            return;
        };
        if self.over.is_some() {
            return;
        }
        if self.buf.is_empty() {
            sync::zero_to(&mut self.buf, READ_SIZE);
        }
        let until = Instant::now() + LINGER;
        for _ in 0..4 {
            let Some(conn) = body.conn() else { return };
            if conn.set_deadline(until).is_err() {
                return;
            }
            match body.read(&mut self.buf, KEEP_WAITING) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

impl Piece {
    /// The same outcome again, for a stream asked after it ended.
    fn again(&self) -> Piece {
        match self {
            Piece::Data(_) | Piece::End => Piece::End,
            Piece::Timeout => Piece::Timeout,
            Piece::Broken(why) => Piece::Broken(why.clone()),
            Piece::Abandoned => Piece::Abandoned,
        }
    }
}
