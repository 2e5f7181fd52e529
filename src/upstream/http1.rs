//! HTTP/1.1 on one upstream connection: the request in one write, the response head,
//! and the body, framed by its length, by chunks, or by the connection's end.

use std::borrow::Cow;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use super::conn::{Conn, MAX_HEAD, Pool};
use super::{Abandon, Header, HeaderValue, KEEP_WAITING};
use crate::log::decimal;
use crate::registry::Origin;

/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4 * 1024;

/// [`Gather::put`] of each piece in turn, each inlined (a loop over an array of
/// pieces was a call and a `memcpy` per piece, literals too).
macro_rules! put {
    ($head:ident: $($piece:expr),+) => {
        $($head.put($piece);)+
    };
}

/// A request's bytes, head and body together, in place of what `out` held: one `send`
/// wakes the upstream once. Its path is `target`'s, then `path`.
pub(super) fn request(
    out: &mut Vec<u8>,
    method: &str,
    (target, path): (&Origin, &str),
    headers: &[Header],
    body: Option<&[u8]>,
) -> Result<(), String> {
    let len = body.map_or(0, <[u8]>::len);
    out.clear();
    out.reserve(256 + len + headers.len() * 48);
    let mut head = Gather {
        out,
        buf: [0; GATHER],
        len: 0,
    };
    let base = target.path();
    let base = match base.is_empty() && path.is_empty() {
        true => "/",
        false => base,
    };
    put!(head: method.as_bytes(), b" ", base.as_bytes(), path.as_bytes());
    put!(head: b" HTTP/1.1\r\nhost: ", target.authority().as_bytes(), b"\r\n");
    if !headers.iter().any(|(h, _)| is_name(h, "user-agent")) {
        let agent = concat!("user-agent: routeplane/", env!("CARGO_PKG_VERSION"), "\r\n");
        put!(head: agent.as_bytes());
    }
    for (name, value) in headers {
        // A header from a config file must not be able to start a second request. What
        // the program itself wrote (borrowed text) is not looked at: most of a request's.
        let name_ok =
            matches!(name, Cow::Borrowed(_)) || !name.is_empty() && name.bytes().all(token_byte);
        let value_ok =
            matches!(value, HeaderValue::Text(Cow::Borrowed(_))) || !breaks_line(value.as_bytes());
        if !name_ok || !value_ok {
            return Err(format!("the header `{name}` is not a valid HTTP header"));
        }
        if is_name(name, "host") || is_name(name, "content-length") {
            continue;
        }
        put!(head: name.as_bytes(), b": ", value.as_bytes(), b"\r\n");
    }
    match body {
        Some(body) => {
            let mut digits = [0; 20];
            let len = decimal(&mut digits, body.len() as u64);
            put!(head: b"content-length: ", len, b"\r\n\r\n");
            head.flush();
            out.extend_from_slice(body);
        }
        None => {
            put!(head: b"\r\n");
            head.flush();
        }
    }
    Ok(())
}

/// The room [`Gather`] has: most request heads fit.
const GATHER: usize = 512;

/// A request head gathered on the stack and added to the request in one copy. Each
/// `Vec::extend_from_slice` is a call of ~30 instructions besides its copy (opt-level
/// "s" does not inline it), twenty a request; a piece put in an array is its copy
/// alone, and a literal's copy a store or two.
struct Gather<'a> {
    out: &'a mut Vec<u8>,
    buf: [u8; GATHER],
    len: usize,
}

impl Gather<'_> {
    /// Adds `piece`; what does not fit goes straight to the request.
    #[inline(always)]
    fn put(&mut self, piece: &[u8]) {
        match self.buf.get_mut(self.len..self.len + piece.len()) {
            Some(room) => {
                room.copy_from_slice(piece);
                self.len += piece.len();
            }
            None => self.spill(piece),
        }
    }

    /// Adds what is gathered, then `piece`, to the request.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, piece: &[u8]) {
        self.flush();
        self.out.extend_from_slice(piece);
    }

    /// Adds what is gathered to the request.
    fn flush(&mut self) {
        self.out.extend_from_slice(&self.buf[..self.len]);
        self.len = 0;
    }
}

/// True when a header value holds a byte that would end its line, or a NUL. Short
/// values (most) are looked at a byte at a time: `memchr3`'s setup is ~120
/// instructions a value (callgrind).
fn breaks_line(value: &[u8]) -> bool {
    match value.len() < 32 {
        true => value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)),
        false => memchr::memchr3(b'\r', b'\n', 0, value).is_some(),
    }
}

/// A byte allowed in a header name (RFC 9110's `tchar`).
fn token_byte(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// [`token_byte`] of each byte: one look-up, where the ranges were ~11 instructions a
/// byte of every header name sent (callgrind).
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

/// A response head, as far as a relay needs it.
#[derive(Debug)]
pub(super) struct Head {
    /// The status code.
    pub(super) status: u16,
    /// How the body is delimited.
    pub(super) framing: Framing,
    /// The connection may carry another request after this body.
    pub(super) keep_alive: bool,
}

/// Reads one response head (skipping `1xx` interim ones) from `conn`, calling `header`
/// with each header's kind, name and value; the connection's read timeout must be set,
/// and with `by` each read waits only what is left until then. A long wait asks
/// `abandon` whether to give up.
pub(super) fn read_head(
    conn: &mut Conn,
    by: Option<Instant>,
    abandon: Abandon<'_>,
    mut header: impl FnMut(Known, &str, &str),
) -> io::Result<Head> {
    loop {
        let len = loop {
            if let Some(i) = find_end(conn.buffered()) {
                break i;
            }
            if conn.buffered().len() >= MAX_HEAD {
                return Err(invalid("the upstream's response head is over 16 KiB"));
            }
            if let Some(by) = by {
                conn.set_deadline(by)?;
            }
            if conn.fill(MAX_HEAD + 4, abandon)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                ));
            }
        };
        let head = parse_head(&conn.buffered()[..len], &mut header);
        conn.consume(len);
        match head? {
            // 100 Continue, 103 Early Hints: the answer follows.
            Head {
                status: 100..=199, ..
            } => continue,
            head => return Ok(head),
        }
    }
}

/// The length of the head at the start of `b`, through its blank line.
fn find_end(b: &[u8]) -> Option<usize> {
    for nl in memchr::memchr_iter(b'\n', b) {
        let rest = &b[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
    }
    None
}

/// Where each line of `bytes` lies: split at LF, a CR before it left out, and the
/// rest after the last LF as a last line.
fn lines(bytes: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    memchr::memchr_iter(b'\n', bytes)
        .chain(std::iter::once(bytes.len()))
        .map(move |end| {
            let line = start..end;
            start = end + 1;
            if bytes[line.clone()].ends_with(b"\r") {
                line.start..line.end - 1
            } else {
                line
            }
        })
}

/// True when the header name `name` (or any text, a `Content-Type` value too) is
/// `lower` (lowercase ASCII), ignoring ASCII case.
///
/// Eight bytes at a time: where `lower` has a letter, `name`'s byte may differ from it
/// only by the case bit (0x20), elsewhere not at all. `eq_ignore_ascii_case` went a
/// byte at a time, ~16 instructions each, for every name read (callgrind). A name of
/// eight bytes or more ends with the word of its last eight, which may overlap the one
/// before: a tail gathered a byte at a time was ~10 instructions a byte.
#[inline]
pub(super) fn is_name(name: &str, lower: &str) -> bool {
    debug_assert!(
        !lower
            .bytes()
            .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    );
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    // Whether the words of `name` and `lower` are the same but for the case of letters.
    let same = |n: u64, l: u64| {
        // 0x80 in each byte of `l` from `a` (0x61) to `z` (0x7a), moved to 0x20.
        let letters =
            (l.wrapping_add(0x1f * ONES) & !l.wrapping_add(0x05 * ONES) & (0x80 * ONES)) >> 2;
        n | letters == l
    };
    let (name, lower) = (name.as_bytes(), lower.as_bytes());
    let len = name.len();
    if len != lower.len() {
        return false;
    }
    if len < 8 {
        let word = |b: &[u8]| (b.iter().rev()).fold(0, |w, &x| w << 8 | u64::from(x));
        return same(word(name), word(lower));
    }
    // A whole word is one load (a copy of a variable length was a call to `memcpy`).
    let at = |b: &[u8], i: usize| match <[u8; 8]>::try_from(&b[i..i + 8]) {
        Ok(w) => u64::from_le_bytes(w),
        Err(_) => 0,
    };
    // A loop, not an iterator chain: that was a generic function of its own, a call
    // per name.
    let mut i = 0;
    while i + 8 < len {
        if !same(at(name, i), at(lower, i)) {
            return false;
        }
        i += 8;
    }
    same(at(name, len - 8), at(lower, len - 8))
}

/// The response headers a relay reads, each told apart by one look at its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Known {
    /// `Content-Length`.
    ContentLength,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// `Connection`.
    Connection,
    /// `Content-Type`.
    ContentType,
    /// `Content-Encoding`.
    ContentEncoding,
    /// `Retry-After`.
    RetryAfter,
    /// `x-ratelimit-reset-requests` or `x-ratelimit-reset`: when requests may resume.
    RateReset,
    /// `anthropic-ratelimit-unified-status`: whether a subscription's window is spent.
    UnifiedStatus,
    /// `anthropic-ratelimit-unified-reset`: when a spent window comes back.
    UnifiedReset,
    /// Any other header.
    Other,
}

impl Known {
    /// What the header `name` is. Its length picks the one name it may be, so a name is
    /// compared once at most, in one shared copy of [`is_name`]: a chain of `is_name`
    /// inlined for each candidate was ~60 code lines a response head (callgrind).
    #[inline(never)]
    pub(super) fn of(name: &str) -> Known {
        let (known, lower) = match name.len() {
            10 => (Known::Connection, "connection"),
            11 => (Known::RetryAfter, "retry-after"),
            12 => (Known::ContentType, "content-type"),
            14 => (Known::ContentLength, "content-length"),
            16 => (Known::ContentEncoding, "content-encoding"),
            17 if name.as_bytes()[0] | 0x20 == b't' => {
                (Known::TransferEncoding, "transfer-encoding")
            }
            17 => (Known::RateReset, "x-ratelimit-reset"),
            26 => (Known::RateReset, "x-ratelimit-reset-requests"),
            33 => (Known::UnifiedReset, "anthropic-ratelimit-unified-reset"),
            34 => (Known::UnifiedStatus, "anthropic-ratelimit-unified-status"),
            _ => return Known::Other,
        };
        match is_name(name, lower) {
            true => known,
            false => Known::Other,
        }
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

/// Parses a whole head, calling `header` with each header's name and value.
/// Routeplane never sends HEAD, so only the status says that an answer has no body
/// whatever its headers claim.
fn parse_head(bytes: &[u8], header: &mut impl FnMut(Known, &str, &str)) -> io::Result<Head> {
    // Checked as text once: then each line is a slice of it. Only a head that is not
    // all text (obs-text in a value) checks its lines one by one.
    let text = std::str::from_utf8(bytes).ok();
    let line_text = |line: Range<usize>| match text {
        Some(t) => t.get(line),
        None => std::str::from_utf8(&bytes[line]).ok(),
    };
    let mut lines = lines(bytes);
    let not_http = || invalid("the upstream did not answer in HTTP");
    let status_line = lines.next().and_then(line_text).ok_or_else(not_http)?;
    // The version is eight bytes and a space, and the code three digits: read in
    // place, where a search for the space and a `parse` were ~150 instructions.
    let http10 = match (status_line.get(..8), status_line.as_bytes().get(8)) {
        (Some("HTTP/1.1"), Some(b' ')) => false,
        (Some("HTTP/1.0"), Some(b' ')) => true,
        _ => return Err(not_http()),
    };
    let code = status_line.as_bytes()[9..].get(..3).ok_or_else(not_http)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(not_http());
    }
    let status = code.iter().fold(0, |n, &d| n * 10 + u16::from(d - b'0'));
    if !(100..600).contains(&status) {
        return Err(not_http());
    }
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = !http10;
    for range in lines {
        if range.is_empty() {
            continue;
        }
        let Some(line) = line_text(range.clone()) else {
            // A value in another encoding (obs-text) is skipped, header and all: the
            // answer is still good. Unless it is one that frames the body.
            let line = &bytes[range];
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            if [&b"content-length"[..], b"transfer-encoding", b"connection"]
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f))
            {
                return Err(invalid(
                    "the upstream sent a header that frames the body in no text",
                ));
            }
            continue;
        };
        // `split_once(':')` searched with core's `memchr`, ~100 instructions a line.
        let colon = memchr::memchr(b':', line.as_bytes())
            .ok_or_else(|| invalid("the upstream sent a malformed header line"))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        // HTTP's whitespace is ASCII; `trim` looks for Unicode's, a character at a time.
        let value = value.trim_ascii();
        let known = Known::of(name);
        match known {
            Known::ContentLength => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| invalid("the upstream sent a malformed Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(invalid("the upstream sent two different Content-Lengths"));
                }
                length = Some(n);
            }
            Known::TransferEncoding => {
                // Comma lists are split as bytes here and below: `str::split` by a
                // `char` is a searcher of its own, per header.
                chunked = value
                    .as_bytes()
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                if !chunked {
                    // Any other coding runs to the connection's end.
                    keep_alive = false;
                }
            }
            Known::Connection => {
                for token in value.as_bytes().split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    }
                }
            }
            _ => {}
        }
        header(known, name, value);
    }
    let framing = if matches!(status, 100..=199 | 204 | 304) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked(Chunk::Size)
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::Close
    };
    Ok(Head {
        status,
        framing,
        keep_alive,
    })
}

/// How a body is delimited, and how far it has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, in this state.
    Chunked(Chunk),
    /// Until the connection ends.
    Close,
}

/// Where a chunked body's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this much left.
    Data(u64),
    /// After a chunk's data, before its line end.
    DataEnd,
    /// After the last chunk, in the trailer.
    Trailer,
}

/// A response body being read from its connection. When it has been read to its end
/// the connection goes back to the pool (or closes, when it may not be reused).
pub(super) struct Body {
    /// None once the body ended (the connection went back) or broke.
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
}

impl Body {
    /// The body that follows `head` on `conn`.
    pub(super) fn new(conn: Conn, head: &Head, pool: Arc<Pool>) -> Body {
        let mut body = Body {
            conn: Some(conn),
            framing: head.framing,
            keep_alive: head.keep_alive,
            pool,
        };
        if body.framing == Framing::Length(0) {
            body.finish();
        }
        body
    }

    /// The length the head declared, if it did.
    pub(super) fn declared_len(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        }
    }

    /// The connection, for setting its deadline; None once the body ended.
    pub(super) fn conn(&mut self) -> Option<&mut Conn> {
        self.conn.as_mut()
    }

    /// Adds the body bytes already buffered to `out`, as far as a declared length goes
    /// (none for other framings): a whole answer that came with its head is copied
    /// once, not read into zeros. Its connection goes back once that is all of it.
    pub(super) fn take_buffered(&mut self, out: &mut Vec<u8>) {
        let (Framing::Length(left), Some(conn)) = (self.framing, self.conn.as_mut()) else {
            return;
        };
        let have = conn.buffered();
        let n = have.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        out.extend_from_slice(&have[..n]);
        conn.consume(n);
        self.framing = Framing::Length(left - n as u64);
        if self.framing == Framing::Length(0) {
            self.finish();
        }
    }

    /// Reads body bytes into `out`; 0 at the body's end. A long wait asks `abandon`
    /// whether to give up.
    pub(super) fn read(&mut self, out: &mut [u8], abandon: Abandon<'_>) -> io::Result<usize> {
        Ok(self.read_or_not(out, Some(abandon))?.unwrap_or(0))
    }

    /// Reads body bytes into `out` only as far as they are already buffered (chunk
    /// boundaries included); None when more would mean waiting on the network.
    pub(super) fn read_buffered(&mut self, out: &mut [u8]) -> io::Result<Option<usize>> {
        self.read_or_not(out, None)
    }

    /// Reads; waits on the network only when given `wait`, which a long wait asks
    /// whether to give up.
    fn read_or_not(
        &mut self,
        out: &mut [u8],
        wait: Option<Abandon<'_>>,
    ) -> io::Result<Option<usize>> {
        if out.is_empty() {
            return Ok(Some(0));
        }
        let result = self.step(out, wait);
        match &result {
            Ok(Some(0)) => self.finish(),
            Ok(_) => {
                if self.framing == Framing::Length(0) {
                    self.finish();
                }
            }
            // A connection that broke, timed out or was given up mid-body cannot carry
            // another request.
            Err(_) => self.conn = None,
        }
        result
    }

    /// One read, per framing; None when `wait` is not given and the next step needs
    /// the network.
    fn step(&mut self, out: &mut [u8], wait: Option<Abandon<'_>>) -> io::Result<Option<usize>> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Some(0));
        };
        // Only the buffer is read when there is no waiting.
        let abandon = wait.unwrap_or(KEEP_WAITING);
        let wait = wait.is_some();
        loop {
            let empty = conn.buffered().is_empty();
            match self.framing {
                Framing::Length(0) => return Ok(Some(0)),
                Framing::Length(_) | Framing::Close | Framing::Chunked(Chunk::Data(_))
                    if empty && !wait =>
                {
                    return Ok(None);
                }
                Framing::Length(left) => {
                    let n = conn.read_into(cap(out, left), abandon)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the body ended before its Content-Length",
                        ));
                    }
                    self.framing = Framing::Length(left - n as u64);
                    return Ok(Some(n));
                }
                Framing::Close => return conn.read_into(out, abandon).map(Some),
                Framing::Chunked(Chunk::Data(left)) => {
                    let n = conn.read_into(cap(out, left), abandon)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the body ended before its last chunk",
                        ));
                    }
                    let left = left - n as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Some(n));
                }
                Framing::Chunked(state) => {
                    let next = read_line(conn, wait, abandon, |line| -> io::Result<_> {
                        Ok(match state {
                            Chunk::Size => match parse_chunk_size(line)? {
                                0 => Some(Chunk::Trailer),
                                size => Some(Chunk::Data(size)),
                            },
                            Chunk::DataEnd if line.is_empty() => Some(Chunk::Size),
                            Chunk::DataEnd => return Err(invalid("a chunk ran past its size")),
                            // The blank line after the trailers ends the body.
                            Chunk::Trailer if line.is_empty() => None,
                            Chunk::Trailer | Chunk::Data(_) => Some(state),
                        })
                    })?;
                    match next {
                        None => return Ok(None),
                        Some(Some(chunk)) => self.framing = Framing::Chunked(chunk),
                        Some(None) => return Ok(Some(0)),
                    }
                }
            }
        }
    }

    /// The body ended: its connection goes back to the pool when it may be reused.
    fn finish(&mut self) {
        self.framing = Framing::Length(0);
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buffered().is_empty()
        {
            self.pool.put(conn);
        }
    }
}

/// `out`, no longer than `left`.
fn cap(out: &mut [u8], left: u64) -> &mut [u8] {
    let n = usize::try_from(left).unwrap_or(usize::MAX).min(out.len());
    &mut out[..n]
}

/// Reads one line from the connection and gives it, without its line end, to `f`
/// where it lies in the buffer (no copy per chunk); None when `wait` is false and the
/// line is not buffered whole.
fn read_line<T>(
    conn: &mut Conn,
    wait: bool,
    abandon: Abandon<'_>,
    f: impl FnOnce(&[u8]) -> io::Result<T>,
) -> io::Result<Option<T>> {
    loop {
        if let Some(i) = memchr::memchr(b'\n', conn.buffered()) {
            let line = &conn.buffered()[..i];
            let got = f(line.strip_suffix(b"\r").unwrap_or(line))?;
            conn.consume(i + 1);
            return Ok(Some(got));
        }
        if !wait {
            return Ok(None);
        }
        if conn.buffered().len() > MAX_LINE {
            return Err(invalid("a chunk line is too long"));
        }
        if conn.fill(MAX_LINE + 2, abandon)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the body ended before its last chunk",
            ));
        }
    }
}

/// A chunk-size line's size (extensions after `;` ignored).
fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = std::str::from_utf8(hex).unwrap_or_default().trim_ascii();
    if hex.is_empty() || hex.len() > 15 {
        return Err(invalid("a malformed chunk size"));
    }
    u64::from_str_radix(hex, 16).map_err(|_| invalid("a malformed chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> (io::Result<Head>, Vec<(String, String)>) {
        head_bytes(text.as_bytes())
    }

    fn head_bytes(bytes: &[u8]) -> (io::Result<Head>, Vec<(String, String)>) {
        let mut seen = Vec::new();
        let h = parse_head(bytes, &mut |_, n, v| {
            seen.push((n.to_string(), v.to_string()));
        });
        (h, seen)
    }

    #[test]
    fn heads_give_status_framing_and_reuse() {
        let (h, seen) =
            head("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n");
        let h = h.unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, Framing::Length(12), true)
        );
        assert_eq!(seen[0], ("Content-Type".into(), "application/json".into()));
        // A status code with more after it, and a value with a colon of its own.
        let (h, seen) = head("HTTP/1.1 2000 OK\r\nx-at: 12:30\r\n\r\n");
        assert_eq!(h.unwrap().status, 200);
        assert_eq!(seen, [("x-at".to_string(), "12:30".to_string())]);
        let h = head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .0
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked(Chunk::Size));
        let h = head("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n")
            .0
            .unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\n\r\n").0.unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        let h = head("HTTP/1.1 204 No Content\r\n\r\n").0.unwrap();
        assert_eq!(h.framing, Framing::Length(0));
        // A value that is not UTF-8 is skipped; one that frames the body is an error.
        let (h, seen) =
            head_bytes(b"HTTP/1.1 200 OK\r\nx-city: K\xf6ln\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(h.unwrap().framing, Framing::Length(2));
        assert_eq!(seen, [("Content-Length".to_string(), "2".to_string())]);
        assert!(
            head_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: \xf6\r\n\r\n")
                .0
                .is_err()
        );
        for bad in [
            "SSH-2.0\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\n\r\n",
            "HTTP/1.1  200 OK\r\n\r\n",
            "HTTP/1.10 200 OK\r\n\r\n",
            "HTTP/1.1 +20 OK\r\n\r\n",
            "HTTP/1.1 099 Low\r\n\r\n",
            "HTTP/1.1 600 High\r\n\r\n",
            "HTTP/1.1 20\r\n\r\n",
            "HTTP/1.1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        ] {
            assert!(head(bad).0.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn coding_and_connection_lists_are_read_by_their_entries() {
        let h = |text: &str| head(text).0.unwrap();
        // Only a last `chunked` frames the body in chunks; any other coding runs to
        // the connection's end.
        let chunked = h("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip , CHUNKED\r\n\r\n");
        assert_eq!(
            (chunked.framing, chunked.keep_alive),
            (Framing::Chunked(Chunk::Size), true)
        );
        let gzip = h("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!((gzip.framing, gzip.keep_alive), (Framing::Close, false));
        // `close` anywhere in the list ends the connection; a token that only contains
        // it does not.
        let closing = "HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\nContent-Length: 0\r\n\r\n";
        assert!(!h(closing).keep_alive);
        let kept = "HTTP/1.1 200 OK\r\nConnection: closed-ish\r\nContent-Length: 0\r\n\r\n";
        assert!(h(kept).keep_alive);
    }

    #[test]
    fn head_ends_at_the_first_blank_line() {
        assert_eq!(find_end(b"HTTP/1.1 200 OK\r\na: b\r\n\r\nbody"), Some(25));
        assert_eq!(find_end(b"HTTP/1.1 200 OK\na: b\n\nbody"), Some(22));
        assert_eq!(find_end(b"HTTP/1.1 200 OK\r\na: b\r\n"), None);
    }

    #[test]
    fn header_names_match_ignoring_ascii_case_and_nothing_else() {
        for name in [
            "content-length",
            "Content-Length",
            "CONTENT-LENGTH",
            "cOnTeNt-LeNgTh",
        ] {
            assert!(is_name(name, "content-length"), "{name}");
        }
        // Each byte changed in turn, to its other case bit or to another byte, fails; at
        // every length around the words, the last one overlapping the one before.
        for long in [
            "host",
            "expect",
            "abcdefg",
            "abcdefgh",
            "x-api-key",
            "connection",
            "content-length",
            "abcdefghijklmnop",
            "transfer-encoding",
            "x-ratelimit-reset-requests",
        ] {
            assert!(is_name(&long.to_uppercase(), long));
            for i in 0..long.len() {
                for other in [b'_', b'\r', long.as_bytes()[i] ^ 0x20, b'0', 0xc3] {
                    let mut bytes = long.as_bytes().to_vec();
                    if bytes[i].is_ascii_alphabetic() && other == bytes[i] ^ 0x20 {
                        continue;
                    }
                    bytes[i] = other;
                    let name = String::from_utf8_lossy(&bytes);
                    assert!(!is_name(&name, long), "{name:?}");
                }
            }
        }
        assert!(!is_name("content-lengt", "content-length"));
        assert!(!is_name("content-lengths", "content-length"));
        assert!(!is_name("@", "`"));
        assert!(is_name("", ""));
    }

    #[test]
    fn known_headers_are_told_apart_by_name_in_any_case_and_nothing_else() {
        for (name, known) in [
            ("Content-Length", Known::ContentLength),
            ("transfer-encoding", Known::TransferEncoding),
            ("CONNECTION", Known::Connection),
            ("content-type", Known::ContentType),
            ("Content-Encoding", Known::ContentEncoding),
            ("Retry-After", Known::RetryAfter),
            ("x-ratelimit-reset", Known::RateReset),
            ("X-RateLimit-Reset-Requests", Known::RateReset),
            ("anthropic-ratelimit-unified-status", Known::UnifiedStatus),
            ("anthropic-ratelimit-unified-reset", Known::UnifiedReset),
        ] {
            assert_eq!(Known::of(name), known, "{name}");
        }
        // The length of a known name with other bytes, and other names.
        for name in [
            "connectioN!",
            "retry-aftex",
            "x-request-id",
            "transfer-encodinq",
            "",
            "x",
        ] {
            assert_eq!(Known::of(name), Known::Other, "{name}");
        }
    }

    #[test]
    fn token_bytes_are_rfc_9110_tchars() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(token_byte(b), tchar, "{b}");
        }
    }

    #[test]
    fn requests_are_one_buffer_and_refuse_header_injection() {
        let t = Origin::split("http://127.0.0.1:9/v1").unwrap();
        let t = (&t, "/x");
        let h: Vec<Header> = vec![("authorization".into(), "Bearer k".into())];
        let mut r = b"left over".to_vec();
        request(&mut r, "POST", t, &h, Some(b"{}")).unwrap();
        let text = String::from_utf8(r).unwrap();
        assert!(
            text.starts_with("POST /v1/x HTTP/1.1\r\nhost: 127.0.0.1:9\r\nuser-agent: routeplane/")
        );
        assert!(text.ends_with("authorization: Bearer k\r\ncontent-length: 2\r\n\r\n{}"));
        // Text made at run time (a config file's, a client's) and keys are looked at.
        for value in ["1\r\nx-b: 2", "1\nx-b: 2", "1\rx", "a\0"] {
            let evil: Vec<Header> = vec![("x-a".into(), value.to_string().into())];
            let refused = request(&mut Vec::new(), "POST", t, &evil, Some(b""));
            assert!(refused.is_err(), "{value:?}");
            let key = HeaderValue::Bearer(crate::log::Secret::new(value));
            let evil: Vec<Header> = vec![("authorization".into(), key)];
            let refused = request(&mut Vec::new(), "POST", t, &evil, Some(b""));
            assert!(refused.is_err(), "{value:?}");
        }
        let evil: Vec<Header> = vec![("x a".to_string().into(), "1".into())];
        assert!(request(&mut Vec::new(), "GET", t, &evil, None).is_err());
        let long = format!("{}\r\nx-b: 2", "a".repeat(40));
        let evil: Vec<Header> = vec![("x-a".into(), long.into())];
        assert!(request(&mut Vec::new(), "GET", t, &evil, None).is_err());
    }

    #[test]
    fn a_request_head_longer_than_its_gathering_goes_out_whole_and_in_order() {
        let t = Origin::split("http://h:1").unwrap();
        let key = "k".repeat(GATHER + 100);
        let h: Vec<Header> = vec![
            ("user-agent".into(), "ua".into()),
            ("x-a".into(), "1".into()),
            ("authorization".into(), key.clone().into()),
            ("x-b".into(), "2".into()),
        ];
        let mut r = Vec::new();
        request(&mut r, "POST", (&t, ""), &h, Some(b"{}")).unwrap();
        let want = format!(
            "POST / HTTP/1.1\r\nhost: h:1\r\nuser-agent: ua\r\nx-a: 1\r\nauthorization: {key}\r\n\
             x-b: 2\r\ncontent-length: 2\r\n\r\n{{}}"
        );
        assert_eq!(std::str::from_utf8(&r).unwrap(), want);
        request(&mut r, "GET", (&t, "/m"), &[], None).unwrap();
        let agent = env!("CARGO_PKG_VERSION");
        let want =
            format!("GET /m HTTP/1.1\r\nhost: h:1\r\nuser-agent: routeplane/{agent}\r\n\r\n");
        assert_eq!(std::str::from_utf8(&r).unwrap(), want);
    }

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"0;name=v").unwrap(), 0);
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"zz").is_err());
        assert!(parse_chunk_size(b"ffffffffffffffffff").is_err());
    }
}
