//! The top level of the usual JSON object body split in one pass, without serde.
//!
//! serde_json took ~3k instructions to split an 86-byte chat body (the largest piece of
//! a whole answer's ~31k that is Routeplane's own): its machinery runs per string, and
//! each raw value is checked for UTF-8 again. This scanner checks the body's UTF-8 once
//! (from its first byte past ASCII) and its syntax as serde_json does when it skips a
//! value, in one loop over the tokens. It accepts only what serde_json accepts and finds
//! the same entries (a test compares the two on many inputs); it declines, and
//! serde_json decides with its own error message, a body that is not UTF-8 or not
//! well-formed, a top-level key written with an escape (serde unescapes it), and
//! nesting deeper than [`MAX_DEPTH`].

use std::ops::Range;

/// Deeper than this, serde_json decides (it has its own limit, 128).
const MAX_DEPTH: usize = 64;

/// Calls `entry` with where each top-level key (between its quotes) and its value lie,
/// in order; `None` when the body is not one this scanner is sure of, and then some
/// entries may have been given already.
///
/// One loop over the body's tokens, the open containers a stack of bits: a recursive
/// descent spent more on its calls and their `Option`s than on the bytes (~1.4k
/// instructions for an 86-byte chat body, callgrind).
pub(super) fn split(b: &[u8], mut entry: impl FnMut(Range<usize>, Range<usize>)) -> Option<()> {
    // Outside strings a byte that is not ASCII is out of place anyway: only the strings'
    // text is looked at for UTF-8, and only until the first byte that is not ASCII, when
    // the rest of the body is checked at once.
    let mut ascii = HIGH;
    let mut at = space(b, 0);
    if b.get(at) != Some(&b'{') {
        return None;
    }
    // The open containers, the innermost in the lowest bit: 1 an object, 0 an array.
    let mut open = 0u64;
    let mut depth = 0;
    // The top-level entry being read: its key (between its quotes), where its value starts.
    let (mut key, mut value) = (0..0, 0);
    let mut state = State::Value;
    loop {
        state = match state {
            State::Value => match *b.get(at)? {
                b'"' => {
                    at = string(b, at + 1, true, &mut ascii)?;
                    State::After
                }
                c @ (b'{' | b'[') => {
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    depth += 1;
                    let object = c == b'{';
                    open = open << 1 | u64::from(object);
                    at = space(b, at + 1);
                    let close = if object { b'}' } else { b']' };
                    if b.get(at) == Some(&close) {
                        if shut(&mut at, &mut depth, &mut open) {
                            break;
                        }
                        State::After
                    } else if object {
                        State::Key
                    } else {
                        State::Value
                    }
                }
                b't' => {
                    at = word(b, at, b"true")?;
                    State::After
                }
                b'f' => {
                    at = word(b, at, b"false")?;
                    State::After
                }
                b'n' => {
                    at = word(b, at, b"null")?;
                    State::After
                }
                b'-' | b'0'..=b'9' => {
                    at = number(b, at)?;
                    State::After
                }
                _ => return None,
            },
            State::Key => {
                if b.get(at) != Some(&b'"') {
                    return None;
                }
                let start = at + 1;
                // A top-level key written with an escape is declined: serde unescapes it,
                // and the key is then not the bytes between its quotes.
                at = string(b, start, depth > 1, &mut ascii)?;
                let end = at - 1;
                at = space(b, at);
                if b.get(at) != Some(&b':') {
                    return None;
                }
                at = space(b, at + 1);
                if depth == 1 {
                    (key, value) = (start..end, at);
                }
                State::Value
            }
            // A value has ended: the next one of its container, or the container's end.
            State::After => {
                if depth == 1 {
                    entry(key.clone(), value..at);
                }
                at = space(b, at);
                let object = open & 1 == 1;
                match *b.get(at)? {
                    b',' => {
                        at = space(b, at + 1);
                        if object { State::Key } else { State::Value }
                    }
                    b'}' if object => {
                        if shut(&mut at, &mut depth, &mut open) {
                            break;
                        }
                        State::After
                    }
                    b']' if !object => {
                        // Never the body's own end: that is an object.
                        shut(&mut at, &mut depth, &mut open);
                        State::After
                    }
                    _ => return None,
                }
            }
        };
    }
    (space(b, at) == b.len()).then_some(())
}

/// What the scan reads next.
#[derive(Clone, Copy)]
enum State {
    /// A value of any kind.
    Value,
    /// An object's key, its colon and then its value.
    Key,
    /// A comma or the end of the open container, after a value.
    After,
}

/// The high bit of each byte of a word.
const HIGH: u64 = u64::from_le_bytes([0x80; 8]);

/// Where the first byte at or after `at` that ends a run of a string's plain text lies:
/// `"`, `\`, a control character, or, when `ascii` is [`HIGH`] (0 takes them), a byte
/// that is not ASCII. Eight bytes at a time: a prompt's text is most of a request's
/// bytes, and a byte at a time this was 11 instructions a byte, three quarters of a
/// 100 KB request's instructions (callgrind).
#[inline]
fn stop(b: &[u8], mut at: usize, ascii: u64) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    // The high bit of a byte's place is set where that byte is zero (or, below, under
    // 0x20), and where a borrow from a lower such byte reaches: the lowest set is exact.
    let zero = |w: u64| w.wrapping_sub(ONES) & !w;
    while let Some(word) = b.get(at..at + 8) {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let found = (zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w)
            | (w & ascii))
            & HIGH;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    while let Some(&c) = b.get(at) {
        if c == b'"' || c == b'\\' || c < 0x20 || (c >= 0x80 && ascii != 0) {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Closes the innermost open container, its closing byte at `at`: true when that was
/// the body's own object, and the body is over.
#[inline(always)]
fn shut(at: &mut usize, depth: &mut usize, open: &mut u64) -> bool {
    *at += 1;
    *depth -= 1;
    *open >>= 1;
    *depth == 0
}

/// Past JSON's four whitespace bytes from `at`.
#[inline]
fn space(b: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(at) {
        at += 1;
    }
    at
}

/// Past a string's closing quote, from `at` just past its opening one. Escapes are
/// checked as serde_json checks a string it skips (`\u` and four hex digits, whatever
/// they encode); `escapes` false declines any (a key serde would unescape). `ascii` is
/// [`HIGH`] while no byte that is not ASCII was met, and 0 once the body's bytes from
/// the first such one are known to be UTF-8.
///
/// Inlined: most strings are a few bytes, and a call's saving and restoring of
/// registers cost as much as the string.
#[inline(always)]
fn string(b: &[u8], mut at: usize, escapes: bool, ascii: &mut u64) -> Option<usize> {
    loop {
        at = stop(b, at, *ascii)?;
        let c = b[at];
        if c >= 0x80 {
            // The bytes before it are ASCII: the body is UTF-8 if the rest is.
            std::str::from_utf8(&b[at..]).ok()?;
            *ascii = 0;
            continue;
        }
        at += 1;
        match c {
            b'"' => return Some(at),
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

/// Past `true`, `false` or `null` at `at`, exactly.
fn word(b: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    b[at..].starts_with(word).then_some(at + word.len())
}

/// Past a number at `at`, as JSON writes one: `-`, no leading zero, a fraction and an
/// exponent each with at least one digit.
fn number(b: &[u8], mut at: usize) -> Option<usize> {
    at += usize::from(b[at] == b'-');
    match *b.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits(b, at + 1),
        _ => return None,
    }
    if b.get(at) == Some(&b'.') {
        at = some_digits(b, at + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = b.get(at) {
            at += 1;
        }
        at = some_digits(b, at)?;
    }
    Some(at)
}

/// Past the digits from `at`, if any.
fn digits(b: &[u8], mut at: usize) -> usize {
    while b.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

/// Past at least one digit from `at`.
fn some_digits(b: &[u8], at: usize) -> Option<usize> {
    let end = digits(b, at);
    (end > at).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::{HIGH, stop};

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
                assert_eq!(stop(&b, 0, 0), None, "{b:?}");
                for at in 0..len {
                    for &s in &STOPS {
                        b[at] = s;
                        for from in [0, 1, 7, 9].into_iter().filter(|&f| f <= at) {
                            assert_eq!(stop(&b, from, 0), Some(at), "from {from}: {b:?}");
                        }
                        // A second stop further on changes nothing.
                        if at + 3 < len {
                            b[at + 3] = b'"';
                            assert_eq!(stop(&b, 0, 0), naive(&b), "{b:?}");
                            b[at + 3] = fill;
                        }
                        b[at] = fill;
                    }
                }
            }
        }
    }

    #[test]
    fn until_the_rest_is_known_utf8_a_run_stops_at_its_first_byte_past_ascii_too() {
        for len in 0..40 {
            assert_eq!(stop(&vec![b'a'; len], 0, HIGH), None);
            for at in 0..len {
                for first in [0x80, 0xc3, 0xff, b'"'] {
                    for then in [b'a', 0xa9, b'\\'] {
                        let mut b = vec![b'a'; len];
                        b[at] = first;
                        if at + 1 < len {
                            b[at + 1] = then;
                        }
                        for from in [0, 1, 7, 9].into_iter().filter(|&f| f <= at) {
                            assert_eq!(stop(&b, from, HIGH), Some(at), "from {from}: {b:?}");
                        }
                    }
                }
            }
        }
    }
}
