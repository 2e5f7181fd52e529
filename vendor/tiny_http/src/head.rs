//! routeplane: a request's head as it was read: its path and header lines in one string,
//! with where each header's name and value lie in it.
//!
//! The stock `Request` held its path as a `String` and each header as a `Header` of two
//! `AsciiString`s, made (and later freed) for every request: 13 allocations and 13 frees
//! for 6 headers, about 3k instructions per request (callgrind), whether or not anyone
//! looked at the headers. A `Head` is two buffers, reused by the thread's next head
//! (see `SPARE`); `Header`s are made from it only when `Request::headers` is called, and
//! `Head::get` finds one value without them.

use std::cell::Cell;
use std::ops::Range;

use crate::Header;

/// The most bytes of head text a thread keeps for its next head.
const KEEP: usize = 8 * 1024;

thread_local! {
    /// The buffers of the last head this thread dropped, for the next head it reads: a
    /// connection reads and drops its heads on one thread, so each request after the
    /// first makes its head without an allocation (under musl's allocator, one lock for
    /// every thread, each is a wait on a busy server).
    static SPARE: Cell<Option<(Vec<u8>, Vec<Span>)>> = const { Cell::new(None) };
}

/// A request's path and headers, checked as the stock reader checked them.
pub(crate) struct Head {
    text: String,
    path: Range<u32>,
    headers: Vec<Span>,
    known: [Option<usize>; 5],
}

/// The headers looked at in every request: tiny_http's own, and Routeplane's `Host`.
#[derive(Clone, Copy)]
pub(crate) enum Known {
    TransferEncoding,
    ContentLength,
    Expect,
    Connection,
    /// routeplane: `Host`, which Routeplane reads in every request (who it is addressed to).
    Host,
}

/// Their names, in `Known`'s order (no two of the same length: see `HeadBuilder::add`).
const KNOWN: [&[u8]; 5] = [
    b"transfer-encoding",
    b"content-length",
    b"expect",
    b"connection",
    b"host",
];

/// Where one header's name and value lie in `Head::text`.
struct Span {
    name: Range<u32>,
    value: Range<u32>,
}

/// Why a header line was refused.
pub(crate) enum LineError {
    /// Not ASCII (the stock reader closed the connection without an answer).
    NotAscii,
    /// No colon, or whitespace in the name (400).
    Malformed,
    /// One header more than the reader accepts (431; the reader checks, not `header_line`).
    TooMany,
}

/// A `Head` as its lines come in.
pub(crate) struct HeadBuilder {
    bytes: Vec<u8>,
    path: Range<u32>,
    headers: Vec<Span>,
    /// Where the first of each `Known` header is in `headers`.
    known: [Option<usize>; 5],
}

impl HeadBuilder {
    /// A head whose request line named `path`; `room` is a guess of the head's size.
    pub(crate) fn new(path: &str, room: usize) -> HeadBuilder {
        let (mut bytes, mut headers) = SPARE.try_with(Cell::take).ok().flatten().unwrap_or_default();
        bytes.clear();
        bytes.reserve(room.max(path.len()));
        bytes.extend_from_slice(path.as_bytes());
        headers.clear();
        // Room for a common client's headers without regrowing.
        headers.reserve(16);
        HeadBuilder {
            bytes,
            path: 0..path.len() as u32,
            headers,
            known: [None; 5],
        }
    }

    /// routeplane: the path of the request line (for a refusal's answer).
    pub(crate) fn path(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.path.end as usize]).unwrap_or("")
    }

    /// The number of headers so far.
    pub(crate) fn len(&self) -> usize {
        self.headers.len()
    }

    /// Adds a header line (without its CRLF), checked as the stock reader did: the line
    /// is ASCII, then trimmed, split at its first colon; the name has no whitespace; the
    /// value is trimmed.
    pub(crate) fn header_line(&mut self, line: &[u8]) -> Result<(), LineError> {
        if !line.is_ascii() {
            return Err(LineError::NotAscii);
        }
        let line = trim(line);
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(LineError::Malformed)?;
        let name = &line[..colon];
        if name.iter().any(|&b| is_whitespace(b)) {
            return Err(LineError::Malformed);
        }
        let value = trim(&line[colon + 1..]);
        let name = self.push(name);
        let value = self.push(value);
        self.add(Span { name, value });
        Ok(())
    }

    /// Adds a header whose parts were pushed, noting it when it is a `Known` one: each
    /// line's name is compared once here, instead of every line's at each of the five
    /// lookups a request made (a sixth of the reading of a head, callgrind).
    fn add(&mut self, span: Span) {
        let name = &self.bytes[span.name.start as usize..span.name.end as usize];
        // Their lengths differ: one comparison at most, and only for a name as long.
        let k = KNOWN.iter().position(|k| k.len() == name.len());
        if let Some(k) = k.filter(|&k| name.eq_ignore_ascii_case(KNOWN[k])) {
            self.known[k].get_or_insert(self.headers.len());
        }
        self.headers.push(span);
    }

    fn push(&mut self, part: &[u8]) -> Range<u32> {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(part);
        start..self.bytes.len() as u32
    }

    /// The head (every part of it was checked to be ASCII).
    pub(crate) fn finish(self) -> Option<Head> {
        Some(Head {
            text: String::from_utf8(self.bytes).ok()?,
            path: self.path,
            headers: self.headers,
            known: self.known,
        })
    }
}

impl Drop for Head {
    fn drop(&mut self) {
        let text = std::mem::take(&mut self.text).into_bytes();
        if text.capacity() <= KEEP {
            let headers = std::mem::take(&mut self.headers);
            // A thread on its way out has no spare to keep: the buffers are freed.
            let _ = SPARE.try_with(|spare| spare.set(Some((text, headers))));
        }
    }
}

impl Head {
    /// A head made of a path and headers (for `TestRequest`).
    pub(crate) fn from_parts(path: &str, headers: &[Header]) -> Head {
        let mut head = HeadBuilder::new(path, 0);
        for h in headers {
            let name = head.push(h.field.as_str().as_bytes());
            let value = head.push(h.value.as_bytes());
            head.add(Span { name, value });
        }
        Head {
            // Built from `&str`s only.
            text: String::from_utf8(head.bytes).unwrap_or_default(),
            path: head.path,
            headers: head.headers,
            known: head.known,
        }
    }

    fn at(&self, range: &Range<u32>) -> &str {
        &self.text[range.start as usize..range.end as usize]
    }

    /// The path of the request line.
    pub(crate) fn path(&self) -> &str {
        self.at(&self.path)
    }

    /// The value of the first header named `name`, ignoring case.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        // Names compared as bytes: slicing `text` checks char boundaries, a fifth of
        // the cost of a lookup.
        let text = self.text.as_bytes();
        self.headers
            .iter()
            .find(|h| text[h.name.start as usize..h.name.end as usize].eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| self.at(&h.value))
    }

    /// The value of the first `k` header.
    pub(crate) fn known(&self, k: Known) -> Option<&str> {
        self.known[k as usize].map(|i| self.at(&self.headers[i].value))
    }

    /// The headers, made one by one.
    pub(crate) fn headers(&self) -> Vec<Header> {
        self.headers
            .iter()
            .filter_map(|h| {
                // Both parts were checked to be ASCII when they were read.
                Header::from_bytes(self.at(&h.name), self.at(&h.value)).ok()
            })
            .collect()
    }
}

/// `char::is_whitespace` for ASCII (`u8::is_ascii_whitespace` leaves out the vertical
/// tab).
pub(crate) fn is_whitespace(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ')
}

/// `str::trim` for ASCII.
fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_whitespace(*first) {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !is_whitespace(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}
