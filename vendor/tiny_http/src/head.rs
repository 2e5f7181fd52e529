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
use std::convert::TryFrom;
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
    known: [Option<u16>; 5],
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
    known: [Option<u16>; 5],
}

impl HeadBuilder {
    /// A head whose request line named `path` (ASCII); `room` is a guess of the head's
    /// size.
    pub(crate) fn new(path: &[u8], room: usize) -> HeadBuilder {
        let (mut bytes, mut headers) = SPARE.try_with(Cell::take).ok().flatten().unwrap_or_default();
        bytes.clear();
        bytes.reserve(room.max(path.len()));
        bytes.extend_from_slice(path);
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
    ///
    /// routeplane: in one pass over the name, and the trimmed line copied whole (its
    /// name and value lie in it): the name's colon and whitespace searches, the value's
    /// trim and a copy each of name and value were ~500 instructions a header
    /// (callgrind).
    pub(crate) fn header_line(&mut self, line: &[u8]) -> Result<(), LineError> {
        if !line.is_ascii() {
            return Err(LineError::NotAscii);
        }
        let line = trim(line);
        let colon = name_end(line).ok_or(LineError::Malformed)?;
        // The line's end is trimmed already: the value needs only its start trimmed.
        let after = &line[colon + 1..];
        let lead = after.iter().take_while(|&&b| is_whitespace(b)).count();
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(line);
        let end = self.bytes.len() as u32;
        let name = start..start + colon as u32;
        let value = start + (colon + 1 + lead) as u32..end;
        self.add(Span { name, value });
        Ok(())
    }

    /// Adds a header whose parts were pushed, noting it when it is a `Known` one: each
    /// line's name is compared once here, instead of every line's at each of the five
    /// lookups a request made (a sixth of the reading of a head, callgrind).
    fn add(&mut self, span: Span) {
        let name = &self.bytes[span.name.start as usize..span.name.end as usize];
        // An index past `u16` (only a `TestRequest` could have one) is not noted: the
        // `Request` stays small (each move of it is a copy, callgrind).
        if let (Some(k), Ok(i)) = (known_of(name), u16::try_from(self.headers.len())) {
            self.known[k as usize].get_or_insert(i);
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
        let mut head = HeadBuilder::new(path.as_bytes(), 0);
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
    #[inline]
    pub(crate) fn known(&self, k: Known) -> Option<&str> {
        self.known[k as usize].map(|i| self.at(&self.headers[usize::from(i)].value))
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

/// routeplane: where the first colon of an ASCII `line` is, if no whitespace comes
/// before it; eight bytes at a time (a byte at a time, the two searches were ~6
/// instructions a byte of every name).
fn name_end(line: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = 0x80 * ONES;
    // 0x80 in each byte of `w` that is zero; exact for bytes under 0x80 (no carries).
    let zero = |w: u64| !w.wrapping_add(0x7f * ONES) & HIGH;
    let mut at = 0;
    while at < line.len() {
        let rest = &line[at..];
        // The last word padded with zeros: neither a colon nor whitespace.
        let w = match rest.get(..8).map(<[u8; 8]>::try_from) {
            Some(Ok(w)) => u64::from_le_bytes(w),
            _ => rest.iter().rev().fold(0, |w, &b| w << 8 | u64::from(b)),
        };
        let colon = zero(w ^ (u64::from(b':') * ONES));
        // ' ', and '\t' to '\r' (0x09 to 0x0d), as `is_whitespace`.
        let space = zero(w ^ (0x20 * ONES))
            | (w.wrapping_add(0x77 * ONES) & !w.wrapping_add(0x72 * ONES) & HIGH);
        if colon != 0 {
            let first = colon & colon.wrapping_neg();
            return (space & (first - 1) == 0).then(|| at + first.trailing_zeros() as usize / 8);
        }
        if space != 0 {
            return None;
        }
        at += 8;
    }
    None
}

/// routeplane: where the first `byte` is in `hay`, eight bytes at a time: the request
/// line's words are short, and a byte at a time their search was ~150 instructions a
/// request (callgrind; a head's lines, searched for their LF, are left to `memchr`,
/// which costs as much there). One copy, not one inlined per word of the request line
/// (~6 hot code lines a request fewer, callgrind).
#[inline(never)]
pub(crate) fn find(hay: &[u8], byte: u8) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = 0x80 * ONES;
    let pattern = u64::from(byte) * ONES;
    let mut words = hay.chunks_exact(8);
    for (i, w) in words.by_ref().enumerate() {
        let w = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes) ^ pattern;
        // 0x80 in the byte where `w` is first zero (a borrow can mark a byte after
        // it, never one before): exact for any bytes.
        let hit = w.wrapping_sub(ONES) & !w & HIGH;
        if hit != 0 {
            return Some(i * 8 + hit.trailing_zeros() as usize / 8);
        }
    }
    let rest = words.remainder();
    let at = hay.len() - rest.len();
    rest.iter().position(|&b| b == byte).map(|i| at + i)
}

/// routeplane: which `Known` header `name` names, ignoring case.
fn known_of(name: &[u8]) -> Option<Known> {
    // Their lengths differ: one comparison at most, and only for a name as long (a
    // search of `KNOWN` by length was ~30 instructions a header).
    let k = match name.len() {
        17 => Known::TransferEncoding,
        14 => Known::ContentLength,
        6 => Known::Expect,
        10 => Known::Connection,
        4 => Known::Host,
        _ => return None,
    };
    eq_lower(name, KNOWN[k as usize]).then_some(k)
}

/// routeplane: `name.eq_ignore_ascii_case(lower)` for a `lower` of lower-case letters
/// and `-` as long as `name` (at least four bytes: the `KNOWN` names), a word at a time:
/// a byte at a time it was ~150 instructions a header (callgrind). Each of `name`'s
/// bytes where `lower` has a letter gets the case bit (0x20) set before the comparison,
/// so it matches that letter in either case and nothing else; a `-` must be itself.
fn eq_lower(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = u64::from_le_bytes([0x20; 8]);
    let len = name.len();
    if len != lower.len() || len < 4 {
        return false;
    }
    // Bit 6 is set in a lower-case letter and not in `-`: moved down one, it is the
    // letter's case bit (bit 6 of each byte lands on bit 5 of the same byte).
    let same = |n: u64, k: u64| n | (k >> 1 & CASE) == k;
    if len < 8 {
        // Two four-byte words, overlapping when the name is shorter than eight.
        let word = |s: &[u8]| {
            let at = |i: usize| {
                let w = s.get(i..i + 4).and_then(|w| <[u8; 4]>::try_from(w).ok());
                w.map_or(0, u32::from_le_bytes)
            };
            u64::from(at(0)) | u64::from(at(len - 4)) << 32
        };
        return same(word(name), word(lower));
    }
    let word = |s: &[u8], i: usize| {
        let w = s.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok());
        w.map_or(0, u64::from_le_bytes)
    };
    let mut at = 0;
    // The last word ends at the name's end, overlapping the one before.
    while at + 8 < len {
        if !same(word(name, at), word(lower, at)) {
            return false;
        }
        at += 8;
    }
    same(word(name, len - 8), word(lower, len - 8))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The stock reader's split of a header line, for comparison: trimmed, split at the
    /// first colon, no whitespace in the name, the value trimmed.
    fn stock(line: &str) -> Option<(String, String)> {
        let line = line.trim();
        let (name, value) = line.split_once(':')?;
        if name.chars().any(char::is_whitespace) {
            return None;
        }
        Some((name.to_string(), value.trim().to_string()))
    }

    #[test]
    fn header_lines_split_as_the_stock_reader_split_them() {
        let lines = [
            "Host: 127.0.0.1",
            "host:127.0.0.1",
            "  Content-Length:\t 12 \t",
            "x-empty:",
            "x-empty:   ",
            "x-colons: a:b: c",
            ":no-name",
            " lead: x",
            "a b: c",
            "a\tb: c",
            "a\x0bb: c",
            "no colon",
            "x: \x0b v \x0b",
            "x:v",
            "",
        ];
        for line in lines {
            let mut head = HeadBuilder::new(b"/p", 0);
            let got = head.header_line(line.as_bytes()).ok().map(|()| {
                let head = head.finish().unwrap();
                let s = &head.headers[0];
                (head.at(&s.name).to_string(), head.at(&s.value).to_string())
            });
            assert_eq!(got, stock(line), "{line:?}");
        }
        let mut head = HeadBuilder::new(b"/p", 0);
        assert!(matches!(head.header_line("x: K\u{f6}ln".as_bytes()), Err(LineError::NotAscii)));
    }

    #[test]
    fn known_headers_are_found_in_any_case_and_only_by_their_whole_name() {
        let mut head = HeadBuilder::new(b"/p", 0);
        for line in [
            "Content-Lengtx: 1",
            "CONTENT-LENGTH: 2",
            "content-length: 3",
            "HOST: h",
            "Connectio\r: x",
            "Expect: e",
        ] {
            let _ = head.header_line(line.as_bytes());
        }
        let head = head.finish().unwrap();
        assert_eq!(head.known(Known::ContentLength), Some("2"));
        assert_eq!(head.known(Known::Host), Some("h"));
        assert_eq!(head.known(Known::Expect), Some("e"));
        assert_eq!(head.known(Known::Connection), None);
        assert_eq!(head.known(Known::TransferEncoding), None);
    }

    #[test]
    fn known_names_match_as_eq_ignore_ascii_case_whatever_byte_stands_where() {
        // Every byte at every place of each known name, in both cases: the word-wise
        // comparison says what the byte-wise one says.
        for k in KNOWN {
            for upper in [false, true] {
                let base: Vec<u8> = k
                    .iter()
                    .map(|&b| if upper { b.to_ascii_uppercase() } else { b })
                    .collect();
                assert!(eq_lower(&base, k));
                for i in 0..base.len() {
                    for b in 0..=0xffu8 {
                        let mut name = base.clone();
                        name[i] = b;
                        assert_eq!(eq_lower(&name, k), name.eq_ignore_ascii_case(k), "{name:?}");
                    }
                }
            }
            assert!(!eq_lower(&k[1..], k));
        }
        // Each name is found as its own `Known`.
        for (i, k) in KNOWN.iter().enumerate() {
            assert_eq!(known_of(k).map(|k| k as usize), Some(i));
            assert_eq!(known_of(&k.to_ascii_uppercase()).map(|k| k as usize), Some(i));
        }
    }

    #[test]
    fn find_finds_the_first_byte_as_a_byte_search_would() {
        // Each byte value at each place, after and before other matches and bytes
        // whose borrow could mark a wrong byte (0x00, 0x01, 0x80, 0xff).
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=0xffu8 {
                    for fill in [b'a', 0, 1, 0x80, 0xff, b'\n' ^ 1, b' ' + 1] {
                        let mut hay = vec![fill; len];
                        hay[at] = b;
                        if at + 1 < len {
                            hay[len - 1] = b'\n';
                        }
                        for needle in [b'\n', b' '] {
                            let slow = hay.iter().position(|&x| x == needle);
                            assert_eq!(find(&hay, needle), slow, "{hay:?} {needle}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_name_ends_at_its_first_colon_whatever_byte_stands_where() {
        // Each ASCII byte at each place of lines around the eight-byte words: the colon
        // found, and whitespace before it refused, as a byte at a time would.
        let slow = |line: &[u8]| {
            let colon = line.iter().position(|&b| b == b':')?;
            (!line[..colon].iter().any(|&b| is_whitespace(b))).then(|| colon)
        };
        for base in ["a", "abcdefg:", "abcdefgh:x", "abcdefghijklmnop", "x-a:b c:d\te"] {
            for i in 0..base.len() + 1 {
                for b in 0..0x80u8 {
                    let mut line = base.as_bytes().to_vec();
                    line.insert(i, b);
                    assert_eq!(name_end(&line), slow(&line), "{line:?}");
                }
            }
        }
    }
}
