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

/// Where the first byte at or after `at` that ends a run of a string's plain text lies:
/// `"`, `\` or a control character. Eight bytes at a time: a prompt's text is most of a
/// request's bytes, and a byte at a time this was 11 instructions a byte, three quarters
/// of a 100 KB request's instructions (callgrind).
#[inline]
fn stop(b: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    // The high bit of a byte's place is set where that byte is zero (or, below, under
    // 0x20), and where a borrow from a lower such byte reaches: the lowest set is exact.
    let zero = |w: u64| w.wrapping_sub(ONES) & !w;
    while let Some(word) = b.get(at..at + 8) {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let found = (zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGH;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    while let Some(&c) = b.get(at) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return Some(at);
        }
        at += 1;
    }
    None
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
        let b = self.b;
        let mut at = self.at + 1;
        loop {
            at = stop(b, at)?;
            let c = b[at];
            at += 1;
            match c {
                b'"' => {
                    self.at = at;
                    return Some(());
                }
                b'\\' if escapes => match *b.get(at)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 1,
                    b'u' => {
                        let hex = b.get(at + 1..at + 5)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        at += 5;
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

#[cfg(test)]
mod tests {
    use super::stop;

    #[test]
    fn a_string_run_stops_at_the_first_quote_backslash_or_control_byte() {
        // Every stopping byte and some that are not, at every place around the word
        // boundaries, after plain text and after text that ends in its own stop.
        const STOPS: [u8; 5] = [b'"', b'\\', 0x00, 0x01, 0x1f];
        const PLAIN: [u8; 8] = [b' ', b'a', 0x7f, 0x80, 0xc3, 0xa9, 0xff, b'!'];
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        for len in 0..40 {
            for &fill in &PLAIN {
                let mut b = vec![fill; len];
                assert_eq!(stop(&b, 0), None, "{b:?}");
                for at in 0..len {
                    for &s in &STOPS {
                        b[at] = s;
                        for from in [0, 1, 7, 9].into_iter().filter(|&f| f <= at) {
                            assert_eq!(stop(&b, from), Some(at), "from {from}: {b:?}");
                        }
                        // A second stop further on changes nothing.
                        if at + 3 < len {
                            b[at + 3] = b'"';
                            assert_eq!(stop(&b, 0), naive(&b), "{b:?}");
                            b[at + 3] = fill;
                        }
                        b[at] = fill;
                    }
                }
            }
        }
    }
}
