//! Event streams on the wire: an incremental SSE parser and the hand-written client writer.
//!
//! The parser takes upstream bytes in whatever pieces the network delivers and yields
//! whole events, each with the exact bytes it arrived as, so a same-protocol relay
//! forwards them untouched. The writer answers the client by hand: tiny_http's
//! `Response` path holds a chunked body until about 8 KiB have gathered (measured: 20
//! events 50 ms apart all arrived after ~1000 ms), so every response goes through
//! `Request::into_writer()` instead, with one HTTP chunk and one `flush` per event
//! (measured: each event within 1 ms). A write error is how a vanished client shows up.

use std::borrow::Cow;
use std::io::{self, Write};
use std::time::Instant;

/// One server-sent event as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The joined `data:` lines, or `None` for a block with no data (a comment, a bare id).
    pub data: Option<String>,
    /// The bytes of the event exactly as they arrived, blank line included.
    pub raw: Vec<u8>,
}

impl Event {
    /// A data-only event (`data: …` + blank line), as the writer sends it.
    pub fn data(data: impl Into<String>) -> Event {
        Event::named(None, data)
    }

    /// An event with an optional name and a data payload.
    pub fn named(event: Option<&str>, data: impl Into<String>) -> Event {
        let data = data.into();
        let mut raw = Vec::with_capacity(data.len() + 32);
        if let Some(name) = event {
            raw.extend_from_slice(b"event: ");
            raw.extend_from_slice(name.as_bytes());
            raw.push(b'\n');
        }
        for line in data.split('\n') {
            raw.extend_from_slice(b"data: ");
            raw.extend_from_slice(line.as_bytes());
            raw.push(b'\n');
        }
        raw.push(b'\n');
        Event {
            event: event.map(str::to_owned),
            data: Some(data),
            raw,
        }
    }

    /// True for OpenAI's `data: [DONE]` terminator.
    pub fn is_done(&self) -> bool {
        self.data.as_deref().map(str::trim) == Some("[DONE]")
    }
}

/// Why the parser gave up on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// One event grew past the limit without ending (an endless line, say).
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

/// An incremental SSE parser: feed it bytes, take out complete events.
#[derive(Debug)]
pub struct Parser {
    /// Bytes of the event in progress (everything since the last blank line).
    buf: Vec<u8>,
    /// How far `buf` has been scanned for line ends.
    scanned: usize,
    /// Where the line being scanned starts.
    line_start: usize,
    /// The longest event accepted.
    limit: usize,
}

impl Parser {
    /// A parser that refuses events longer than `limit` bytes.
    pub fn new(limit: usize) -> Parser {
        Parser {
            buf: Vec::new(),
            scanned: 0,
            line_start: 0,
            limit,
        }
    }

    /// Adds bytes; every event they complete is pushed onto `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), ParseError> {
        self.buf.extend_from_slice(bytes);
        loop {
            // Find the next line end from where we stopped scanning.
            let rest = &self.buf[self.scanned..];
            let Some(off) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.scanned = self.buf.len();
                break;
            };
            let at = self.scanned + off;
            let end = if self.buf[at] == b'\r' {
                match self.buf.get(at + 1) {
                    Some(b'\n') => at + 2,
                    Some(_) => at + 1,
                    // A lone '\r' at the end may be the first half of "\r\n": wait.
                    None => {
                        self.scanned = at;
                        break;
                    }
                }
            } else {
                at + 1
            };
            let empty_line = at == self.line_start;
            self.scanned = end;
            self.line_start = end;
            if empty_line {
                // Copied, then the rest moved down: collecting the drained bytes went
                // one byte at a time (~8 instructions a byte, callgrind).
                let raw = self.buf[..end].to_vec();
                self.buf.drain(..end);
                self.scanned = 0;
                self.line_start = 0;
                out.push(parse_block(raw));
            }
        }
        if self.buf.len() > self.limit {
            return Err(ParseError::TooLong { limit: self.limit });
        }
        Ok(())
    }

    /// True when bytes of an unfinished event are waiting (a stream cut mid-event).
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }
}

/// Splits one complete block (its lines and the blank line) into fields.
fn parse_block(raw: Vec<u8>) -> Event {
    // Checked as UTF-8 first (word at a time for ASCII); only an invalid block takes the
    // lossy path, which looks at every byte.
    let text = match std::str::from_utf8(&raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(&raw),
    };
    let mut event = None;
    let mut data: Option<String> = None;
    // Lines end at `\n` or `\r`, found by byte (a `char` pattern decodes each one).
    let mut rest: &str = &text;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr2(b'\n', b'\r', rest.as_bytes()) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = next;
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    Event { event, data, raw }
}

/// The response to one client request, written by hand through tiny_http's raw writer.
pub struct ClientWriter<W: Write = tiny_http::ResponseWriter> {
    out: W,
    /// HTTP/1.0 clients get a close-delimited stream instead of chunks.
    http10: bool,
    /// A HEAD request gets the head only.
    head_only: bool,
    state: WriterState,
    /// When the first byte went out.
    first_write: Option<Instant>,
    /// Stream events as one JSON array of their data (Gemini without `alt=sse`).
    array: bool,
    /// Array elements written so far.
    items: usize,
    /// A stream's head went out (the answer is a stream, however it ended).
    streamed: bool,
    /// Looks whether the client has gone, without writing (see [`ClientWriter::set_probe`]).
    probe: Option<Probe>,
    /// A stream's chunks are put together here, one after another: a chunk's own
    /// allocation and its size written through `format!` were ~500 of the ~12k
    /// instructions an event cost (callgrind).
    piece: Vec<u8>,
    /// A browser page's origin its answer names (`Access-Control-Allow-Origin`), when a
    /// key let it in (see `server/guard.rs`).
    origin: Option<String>,
}

/// [`ATTEMPTS`] as a literal, for the head's fixed pieces (`concat!`).
macro_rules! attempts {
    () => {
        "x-routeplane-attempts"
    };
}

/// The header that says how many upstream requests an answer or an error took.
pub const ATTEMPTS: &str = attempts!();

/// Which endpoint answered: sent as `x-routeplane-provider`, `x-routeplane-model` and
/// `x-routeplane-attempts`, written straight into the head (no header list to build).
#[derive(Debug, Clone, Copy)]
pub struct ServedBy<'a> {
    /// The provider's id.
    pub provider: &'a str,
    /// The model name sent upstream.
    pub model: &'a str,
    /// Attempts made, this one included.
    pub attempts: usize,
}

/// Says whether the client closed or reset its connection, without reading or writing
/// anything it would see. Held as it is, not boxed: one allocation a request fewer.
pub type Probe = tiny_http::ClientProbe;

/// Where the response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    /// Nothing has been written; any status can still be chosen.
    Fresh,
    /// A stream's head went out; events follow as chunks.
    Streaming,
    /// The response is complete.
    Done,
}

impl<W: Write> ClientWriter<W> {
    /// Wraps the raw connection writer of one request.
    pub fn new(out: W, http10: bool, head_only: bool) -> ClientWriter<W> {
        ClientWriter {
            out,
            http10,
            head_only,
            state: WriterState::Fresh,
            first_write: None,
            array: false,
            items: 0,
            streamed: false,
            probe: None,
            piece: Vec::new(),
            origin: None,
        }
    }

    /// Names `origin` in the answer's head, so that the browser page that asked may read
    /// it. Only for a page a client key let in.
    pub fn allow_origin(&mut self, origin: String) {
        self.origin = Some(origin);
    }

    /// Makes a stream one JSON array whose elements are the events' data, as Gemini's
    /// `:streamGenerateContent` answers without `?alt=sse`. Events keep their SSE form
    /// everywhere else, so the relay and the encoders need not know.
    pub fn json_array(&mut self) {
        self.array = true;
    }

    /// Sets how [`ClientWriter::client_gone`] looks at the connection.
    pub fn set_probe(&mut self, probe: Probe) {
        self.probe = Some(probe);
    }

    /// True when the client is known to have left (a write would also tell, but only
    /// once something can be written: not while a retry waits before the status line,
    /// nor while an upstream's answer is awaited).
    pub fn client_gone(&self) -> bool {
        self.probe.as_ref().is_some_and(Probe::gone)
    }

    /// True once a status line has gone out (a later failure can no longer change it).
    pub fn started(&self) -> bool {
        self.state != WriterState::Fresh
    }

    /// True once a stream's head went out, even after the stream ended.
    pub fn streamed(&self) -> bool {
        self.streamed
    }

    /// When the status line went out, if it did.
    pub fn first_write(&self) -> Option<Instant> {
        self.first_write
    }

    /// Sends a complete response with a known length.
    pub fn respond(
        &mut self,
        status: u16,
        content_type: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> io::Result<()> {
        self.respond_served(status, content_type, headers, None, body)
    }

    /// [`ClientWriter::respond`] with an upstream's answer, saying who served it.
    pub fn respond_served(
        &mut self,
        status: u16,
        content_type: &str,
        headers: &[(String, String)],
        by: Option<ServedBy<'_>>,
        body: &[u8],
    ) -> io::Result<()> {
        self.first_write.get_or_insert_with(Instant::now);
        crate::log::with_buffer(|head| {
            push_head(head, status, content_type, headers, by);
            push_origin(head, self.origin.as_deref());
            head.push_str("\r\nContent-Length: ");
            crate::log::push_u64(head, body.len() as u64);
            head.push_str("\r\n\r\n");
            let body = if self.head_only { &[][..] } else { body };
            // Head and body in one write: each write takes the connection's writer lock
            // (~100 instructions a write, callgrind).
            write_all_vectored(
                &mut self.out,
                &mut [io::IoSlice::new(head.as_bytes()), io::IoSlice::new(body)],
            )
        })?;
        self.state = WriterState::Done;
        self.out.flush()
    }

    /// Sends the head of a stream; events follow through [`ClientWriter::send`].
    pub fn start_stream(
        &mut self,
        status: u16,
        content_type: &str,
        headers: &[(String, String)],
        by: Option<ServedBy<'_>>,
    ) -> io::Result<()> {
        let content_type = if self.array {
            "application/json"
        } else {
            content_type
        };
        self.state = WriterState::Streaming;
        self.streamed = true;
        self.first_write.get_or_insert_with(Instant::now);
        crate::log::with_buffer(|head| {
            push_head(head, status, content_type, headers, by);
            push_origin(head, self.origin.as_deref());
            head.push_str(if self.http10 {
                "\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
            } else {
                "\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
            });
            self.out.write_all(head.as_bytes())
        })?;
        self.out.flush()
    }

    /// Sends one event's bytes as one chunk and flushes, so it leaves now.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        debug_assert_eq!(self.state, WriterState::Streaming);
        if bytes.is_empty() || self.head_only {
            return Ok(());
        }
        if self.array {
            let Some(item) = array_item(bytes, self.items == 0) else {
                return Ok(());
            };
            self.items += 1;
            return self.write_piece(&item);
        }
        self.write_piece(bytes)
    }

    /// Writes bytes as one chunk (or raw for HTTP/1.0) and flushes.
    fn write_piece(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.http10 {
            self.out.write_all(bytes)?;
        } else {
            // Header, data and trailer in one write: small separate writes without
            // TCP_NODELAY can stall on Nagle's algorithm.
            let chunk = &mut self.piece;
            chunk.clear();
            push_hex(chunk, bytes.len());
            chunk.extend_from_slice(b"\r\n");
            chunk.extend_from_slice(bytes);
            chunk.extend_from_slice(b"\r\n");
            self.out.write_all(chunk)?;
            // An event of megabytes is not kept for the rest of the stream.
            if chunk.capacity() > 64 * 1024 {
                self.piece = Vec::new();
            }
        }
        self.out.flush()
    }

    /// Ends a stream (the zero-length chunk that keeps keep-alive working).
    pub fn end_stream(&mut self) -> io::Result<()> {
        if self.state != WriterState::Streaming {
            return Ok(());
        }
        if self.array && !self.head_only {
            let close: &[u8] = if self.items == 0 { b"[]" } else { b"\r\n]" };
            self.write_piece(close)?;
        }
        self.state = WriterState::Done;
        if !self.http10 && !self.head_only {
            self.out.write_all(b"0\r\n\r\n")?;
        }
        self.out.flush()
    }
}

/// Appends `Access-Control-Allow-Origin` naming a page's `origin`, with `Vary: Origin`
/// (the answer differs by origin); nothing without one. The origin was checked to be
/// visible ASCII when it was taken. Each line goes in with the CRLF before it, as in
/// [`push_head`].
fn push_origin(head: &mut String, origin: Option<&str>) {
    if let Some(origin) = origin {
        head.push_str("\r\nAccess-Control-Allow-Origin: ");
        head.push_str(origin);
        head.push_str("\r\nVary: Origin");
    }
}

/// Writes all of `bufs` (`Write::write_all_vectored`, not yet stable): into the
/// connection's buffer when they fit, else in one system call if the socket takes it.
fn write_all_vectored(out: &mut impl Write, mut bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    io::IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match out.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends `n` in lower-case hexadecimal, as a chunk's size is written.
fn push_hex(out: &mut Vec<u8>, n: usize) {
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(b"0123456789abcdef"[(n >> (i * 4)) & 0xf]);
    }
}

/// One SSE event's data as the next element of a JSON array (`[` before the first,
/// `,` between); `None` for an event without data (a comment, a ping).
fn array_item(event: &[u8], first: bool) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(event);
    let data: Vec<&str> = text
        .split(['\n', '\r'])
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    if data.is_empty() {
        return None;
    }
    let mut item = Vec::with_capacity(text.len() + 3);
    item.extend_from_slice(if first { b"[" } else { b"\r\n," });
    item.extend_from_slice(data.join("\n").as_bytes());
    Some(item)
}

/// The longest header value written: a longer one (an upstream's, or a model name from
/// a config) is left out, as Routeplane refuses request header lines over 16 KiB.
const MAX_HEADER_VALUE: usize = 8 * 1024;

/// Appends the status line and common headers; the last header's line is left open
/// (each line after the status line is pushed with the CRLF before it, so that a fixed
/// name and the line end before it go in one push).
///
/// Pushed piece by piece: through `write!` the head was ~2.3k instructions (callgrind).
/// And as few pieces as may be: each push is a call and a copy, ~35 instructions, and
/// a piece a line end was a third of the head's.
fn push_head(
    head: &mut String,
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    by: Option<ServedBy<'_>>,
) {
    match status_line(status) {
        Some(line) => head.push_str(line),
        None => {
            head.push_str("HTTP/1.1 ");
            crate::log::push_u64(head, u64::from(status));
            head.push_str(" Status\r\nDate: ");
        }
    }
    push_http_date(head);
    head.push_str("\r\nServer: routeplane\r\nContent-Type: ");
    head.push_str(content_type);
    // A header value from upstream (or a model name from a client) must not split the
    // head, nor make a line a client refuses (Python's http.client: over 64 KiB).
    // A short value (a provider's id, a model's name) is looked at a byte at a time:
    // through `memchr`'s search, made for long ones, each was ~100 instructions.
    let breaks = |s: &str, colon: bool| {
        if s.len() > MAX_HEADER_VALUE {
            true
        } else if s.len() <= 32 {
            s.bytes()
                .any(|b| b == b'\r' || b == b'\n' || (colon && b == b':'))
        } else if colon {
            memchr::memchr3(b'\r', b'\n', b':', s.as_bytes()).is_some()
        } else {
            memchr::memchr2(b'\r', b'\n', s.as_bytes()).is_some()
        }
    };
    for (name, value) in headers {
        if breaks(value, false) || breaks(name, true) {
            continue;
        }
        head.push_str("\r\n");
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
    }
    if let Some(by) = by {
        for (name, value) in [
            ("\r\nx-routeplane-provider: ", by.provider),
            ("\r\nx-routeplane-model: ", by.model),
        ] {
            if !breaks(value, false) {
                head.push_str(name);
                head.push_str(value);
            }
        }
        head.push_str(concat!("\r\n", attempts!(), ": "));
        crate::log::push_u64(head, by.attempts as u64);
    }
}

/// Appends now as an HTTP date, formatted at most once a second per thread (calendar
/// arithmetic for every response showed in an instruction profile).
fn push_http_date(out: &mut String) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local!(static LAST: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) });
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    crate::time::push_per_second(&LAST, secs, out, |text| {
        text.push_str(&httpdate::fmt_http_date(now));
    });
}

/// Makes `status_line` from each status Routeplane sends and its reason phrase.
macro_rules! status_lines {
    ($($status:literal $reason:literal,)*) => {
        /// The status line and the `Date` header's name (one push), for a status
        /// Routeplane sends; `None` for another, written as `<status> Status`.
        fn status_line(status: u16) -> Option<&'static str> {
            match status {
                $($status => Some(concat!("HTTP/1.1 ", $status, " ", $reason, "\r\nDate: ")),)*
                _ => None,
            }
        }
    };
}

status_lines! {
    200 "OK",
    201 "Created",
    204 "No Content",
    400 "Bad Request",
    401 "Unauthorized",
    402 "Payment Required",
    403 "Forbidden",
    404 "Not Found",
    405 "Method Not Allowed",
    408 "Request Timeout",
    413 "Payload Too Large",
    414 "URI Too Long",
    422 "Unprocessable Entity",
    429 "Too Many Requests",
    431 "Request Header Fields Too Large",
    500 "Internal Server Error",
    502 "Bad Gateway",
    503 "Service Unavailable",
    504 "Gateway Timeout",
    529 "Overloaded",
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: a\ndata: {\"x\":1}\n\n: comment\n\ndata: two\ndata: lines\r\n\r\nid: 5\ndata:nospace\r\rdata: [DONE]\n\n";

    fn parse_in_pieces(pieces: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn chunk_sizes_are_written_in_hex_as_format_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            256,
            4095,
            65_536,
            1 << 20,
            usize::MAX,
        ] {
            let mut out = Vec::new();
            push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}").into_bytes());
        }
    }

    #[test]
    fn parses_fields_and_line_endings() {
        let events = parse_in_pieces(&[STREAM.as_bytes()]);
        let summary: Vec<_> = events
            .iter()
            .map(|e| (e.event.as_deref(), e.data.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some("a"), Some("{\"x\":1}")),
                (None, None),
                (None, Some("two\nlines")),
                (None, Some("nospace")),
                (None, Some("[DONE]")),
            ]
        );
        assert!(events[4].is_done());
        let rejoined: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
        assert_eq!(rejoined, STREAM.as_bytes(), "raw bytes are kept exactly");
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let whole = parse_in_pieces(&[STREAM.as_bytes()]);
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let got = parse_in_pieces(&[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(got, whole, "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn a_block_that_is_not_utf8_is_read_lossily_and_kept_as_it_came() {
        let bytes = b"data: caf\xe9\r\nevent: x\xff\n\n";
        let events = parse_in_pieces(&[bytes]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.as_deref(), Some("caf\u{fffd}"));
        assert_eq!(events[0].event.as_deref(), Some("x\u{fffd}"));
        assert_eq!(events[0].raw, bytes);
    }

    #[test]
    fn endless_line_is_refused() {
        let mut p = Parser::new(64);
        let mut out = Vec::new();
        let err = p.feed(&[b'x'; 100], &mut out).unwrap_err();
        assert_eq!(err, ParseError::TooLong { limit: 64 });
    }

    #[test]
    fn partial_event_is_reported() {
        let mut p = Parser::new(64);
        let mut out = Vec::new();
        p.feed(b"data: {\"half", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(p.has_partial());
    }

    #[test]
    fn writer_frames_each_event_as_one_chunk() {
        let mut w = ClientWriter::new(Vec::new(), false, false);
        let by = ServedBy {
            provider: "p",
            model: "m",
            attempts: 2,
        };
        w.start_stream(
            200,
            "text/event-stream",
            &[("x-a".into(), "b".into())],
            Some(by),
        )
        .unwrap();
        w.send(b"data: hi\n\n").unwrap();
        w.end_stream().unwrap();
        let text = String::from_utf8(w.out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("\r\nx-a: b\r\n"));
        assert!(text.contains(
            "\r\nx-routeplane-provider: p\r\nx-routeplane-model: m\r\nx-routeplane-attempts: 2\r\n"
        ));
        assert!(text.contains("Transfer-Encoding: chunked\r\n\r\n"));
        assert!(text.ends_with("\r\n\r\na\r\ndata: hi\n\n\r\n0\r\n\r\n"));
    }

    #[test]
    fn array_mode_writes_one_json_array_of_event_data() {
        let mut w = ClientWriter::new(Vec::new(), true, false);
        w.json_array();
        w.start_stream(200, "text/event-stream", &[], None).unwrap();
        w.send(b": ping\n\n").unwrap();
        w.send(b"data: {\"a\":1}\n\n").unwrap();
        w.send(b"data: {\"b\":2}\r\n\r\n").unwrap();
        w.end_stream().unwrap();
        let text = String::from_utf8(w.out).unwrap();
        assert!(text.contains("Content-Type: application/json\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v, serde_json::json!([{"a": 1}, {"b": 2}]));
        let mut w = ClientWriter::new(Vec::new(), true, false);
        w.json_array();
        w.start_stream(200, "text/event-stream", &[], None).unwrap();
        w.end_stream().unwrap();
        assert!(String::from_utf8(w.out).unwrap().ends_with("\r\n\r\n[]"));
    }

    /// The head written, its `Date` value replaced by `D`.
    fn head_of(out: Vec<u8>) -> String {
        let text = String::from_utf8(out).unwrap();
        let date = text.find("\r\nDate: ").unwrap() + 8;
        let end = date + text[date..].find("\r\n").unwrap();
        format!("{}D{}", &text[..date], &text[end..])
    }

    #[test]
    fn heads_are_written_byte_for_byte() {
        let by = ServedBy {
            provider: "p",
            model: "m\r\nx: y",
            attempts: 12,
        };
        let headers = [
            ("retry-after".to_string(), "3".to_string()),
            ("x-bad\n".to_string(), "v".to_string()),
        ];
        let mut w = ClientWriter::new(Vec::new(), false, false);
        w.allow_origin("https://a.example".into());
        w.respond_served(429, "application/json", &headers, Some(by), b"{}")
            .unwrap();
        assert_eq!(
            head_of(w.out),
            "HTTP/1.1 429 Too Many Requests\r\nDate: D\r\nServer: routeplane\r\n\
             Content-Type: application/json\r\nretry-after: 3\r\nx-routeplane-provider: p\r\n\
             x-routeplane-attempts: 12\r\nAccess-Control-Allow-Origin: https://a.example\r\n\
             Vary: Origin\r\nContent-Length: 2\r\n\r\n{}"
        );
        let mut w = ClientWriter::new(Vec::new(), false, true);
        w.respond(299, "text/plain", &[], b"abc").unwrap();
        assert_eq!(
            head_of(w.out),
            "HTTP/1.1 299 Status\r\nDate: D\r\nServer: routeplane\r\n\
             Content-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
        );
        // A body larger than the connection's buffer, written with the head.
        let big = vec![b'x'; 64 * 1024];
        let mut w = ClientWriter::new(Vec::new(), false, false);
        w.respond(200, "application/json", &[], &big).unwrap();
        let text = head_of(w.out);
        assert_eq!(
            text.strip_suffix(std::str::from_utf8(&big).unwrap()),
            Some(
                "HTTP/1.1 200 OK\r\nDate: D\r\nServer: routeplane\r\n\
                 Content-Type: application/json\r\nContent-Length: 65536\r\n\r\n"
            )
        );
        for (http10, end) in [
            (false, "Transfer-Encoding: chunked"),
            (true, "Connection: close"),
        ] {
            let mut w = ClientWriter::new(Vec::new(), http10, false);
            w.start_stream(200, "text/event-stream", &[], Some(by))
                .unwrap();
            assert_eq!(
                head_of(w.out),
                format!(
                    "HTTP/1.1 200 OK\r\nDate: D\r\nServer: routeplane\r\n\
                     Content-Type: text/event-stream\r\nx-routeplane-provider: p\r\n\
                     x-routeplane-attempts: 12\r\nCache-Control: no-cache\r\n{end}\r\n\r\n"
                )
            );
        }
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let mut w = ClientWriter::new(Vec::new(), false, false);
        let evil = vec![
            ("x-evil".to_string(), "a\r\nSet-Cookie: z".to_string()),
            ("x-lf".to_string(), "a\nSet-Cookie: y".to_string()),
            ("x-a: b\r\nSet-Cookie".to_string(), "x".to_string()),
            ("x-fine".to_string(), "kept".to_string()),
        ];
        w.respond(200, "application/json", &evil, b"{}").unwrap();
        let text = String::from_utf8(w.out).unwrap();
        assert!(!text.contains("Set-Cookie"), "{text}");
        assert!(text.contains("\r\nx-fine: kept\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"));
        // The head is made in the thread's reused buffer: the next one starts clean.
        let mut w = ClientWriter::new(Vec::new(), false, false);
        w.start_stream(200, "text/event-stream", &[], None).unwrap();
        let text = String::from_utf8(w.out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            !text.contains("x-fine") && !text.contains("Content-Length"),
            "{text}"
        );
    }
}
