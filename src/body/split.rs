//! The top level of the usual JSON object body split in one pass, without serde.
//!
//! serde_json took ~3k instructions to split an 86-byte chat body (the largest piece of
//! a whole answer's ~31k that is Routeplane's own): its machinery runs per string, and
//! each raw value is checked for UTF-8 again. This scanner checks the body's UTF-8 once
//! and its syntax byte by byte, as serde_json does when it skips a value. It accepts
//! only what serde_json accepts and finds the same entries (a test compares the two on
//! many inputs); it declines, and serde_json decides with its own error message, a body
//! that is not UTF-8 or not well-formed, a top-level key written with an escape (serde
//! unescapes it), and nesting deeper than [`MAX_DEPTH`].

use std::ops::Range;

/// Deeper than this, serde_json decides (it has its own limit, 128).
const MAX_DEPTH: usize = 64;

/// Calls `entry` with where each top-level key (between its quotes) and its value lie,
/// in order; `None` when the body is not one this scanner is sure of, and then some
/// entries may have been given already.
pub(super) fn split(bytes: &[u8], mut entry: impl FnMut(Range<usize>, Range<usize>)) -> Option<()> {
    std::str::from_utf8(bytes).ok()?;
    let mut s = Scan { b: bytes, at: 0 };
    s.space();
    if s.next()? != b'{' {
        return None;
    }
    s.object(0, false, &mut entry)?;
    s.space();
    (s.at == bytes.len()).then_some(())
}

/// Where the scan stands in the body.
struct Scan<'a> {
    b: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    /// The next byte, not taken.
    fn next(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    /// Takes `c` if it comes next.
    fn eat(&mut self, c: u8) -> bool {
        let next = self.next() == Some(c);
        self.at += usize::from(next);
        next
    }

    /// Skips JSON's four whitespace bytes.
    fn space(&mut self) {
        while matches!(self.next(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string, from its opening quote to past its closing one. Escapes are checked as
    /// serde_json checks a string it skips (`\u` and four hex digits, whatever they
    /// encode); `escapes` false declines any (a key serde would unescape).
    fn string(&mut self, escapes: bool) -> Option<()> {
        self.at += 1;
        loop {
            let rest = &self.b[self.at..];
            let i = rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            self.at += i + 1;
            match rest[i] {
                b'"' => return Some(()),
                b'\\' if escapes => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                    b'u' => {
                        let hex = self.b.get(self.at + 1..self.at + 5)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.at += 5;
                    }
                    _ => return None,
                },
                // A control character, or an escape where none is taken.
                _ => return None,
            }
        }
    }

    /// One value of any kind, at `depth` containers down.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.next()? {
            b'"' => self.string(true),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => self.object(depth, true, &mut |_, _| {}),
            b'[' => self.list(b']', |s| s.value(depth + 1)),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object, calling `entry` with where each key (between its quotes) and its value
    /// lie. `escapes` false declines a key written with one: at the top level serde
    /// unescapes it, and the key is then not the bytes between its quotes.
    fn object(
        &mut self,
        depth: usize,
        escapes: bool,
        entry: &mut dyn FnMut(Range<usize>, Range<usize>),
    ) -> Option<()> {
        self.list(b'}', |s| {
            if s.next()? != b'"' {
                return None;
            }
            let key = s.at + 1;
            s.string(escapes)?;
            let key = key..s.at - 1;
            s.space();
            if !s.eat(b':') {
                return None;
            }
            s.space();
            let value = s.at;
            s.value(depth + 1)?;
            entry(key, value..s.at);
            Some(())
        })
    }

    /// From an opening bracket to past `close`: items read by `item`, between commas.
    fn list(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.at += 1;
        self.space();
        if self.eat(close) {
            return Some(());
        }
        loop {
            self.space();
            item(self)?;
            self.space();
            match self.next()? {
                b',' => self.at += 1,
                c if c == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `true`, `false` or `null`, exactly.
    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// A number as JSON writes one: `-`, no leading zero, a fraction and an exponent
    /// each with at least one digit.
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.next()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            self.some_digits()?;
        }
        if matches!(self.next(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.next(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    /// Skips digits, if any.
    fn digits(&mut self) {
        while self.next().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// Skips at least one digit.
    fn some_digits(&mut self) -> Option<()> {
        let from = self.at;
        self.digits();
        (self.at > from).then_some(())
    }
}
