//! Reads the common shape of a `usage` object in place: keys without escapes, whole
//! numbers, `null`, and objects of those one level down (the `*_details`).
//!
//! Every complete answer's usage is read before it goes out; through serde the small
//! object took ~2k instructions of a ~45k request (callgrind), most of it checking and
//! matching key strings. Anything outside the common shape (a string, an array, a
//! fraction, an escape, a key written twice) returns `None`, and the caller lets serde
//! read it: the answer is then the same, only slower.

use super::{Details, UsageFields};

/// Reads the counts of the usage object that `text` starts with (after leading
/// whitespace) into `f`, empty when given; `None`, with `f` partly filled, for a usage
/// object this reader leaves to serde. Filled in place: the fields returned were two
/// copies of ~300 bytes (`memcpy`, ~130 instructions).
pub(super) fn usage(text: &[u8], f: &mut UsageFields) -> Option<()> {
    let mut cur = Cursor { text, at: 0 };
    cur.object(|cur, key| {
        let slot = match key {
            b"prompt_tokens" => &mut f.prompt_tokens,
            b"completion_tokens" => &mut f.completion_tokens,
            b"input_tokens" => &mut f.input_tokens,
            b"output_tokens" => &mut f.output_tokens,
            b"cache_read_input_tokens" => &mut f.cache_read_input_tokens,
            b"cache_creation_input_tokens" => &mut f.cache_creation_input_tokens,
            b"promptTokenCount" => &mut f.prompt_token_count,
            b"toolUsePromptTokenCount" => &mut f.tool_use_prompt_token_count,
            b"candidatesTokenCount" => &mut f.candidates_token_count,
            b"thoughtsTokenCount" => &mut f.thoughts_token_count,
            b"cachedContentTokenCount" => &mut f.cached_content_token_count,
            b"prompt_tokens_details" => return cur.details(&mut f.prompt_tokens_details),
            b"completion_tokens_details" => {
                return cur.details(&mut f.completion_tokens_details);
            }
            b"input_tokens_details" => return cur.details(&mut f.input_tokens_details),
            b"output_tokens_details" => return cur.details(&mut f.output_tokens_details),
            // Counts nobody reads (`total_tokens`), or objects of them.
            _ => return cur.skip(),
        };
        cur.count(slot)
    })
}

/// Where the reading stands in the text.
struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The next byte that is not whitespace, without taking it.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.text.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// Takes `b` if it comes next.
    fn eat(&mut self, b: u8) -> bool {
        let next = self.peek() == Some(b);
        self.at += usize::from(next);
        next
    }

    /// Reads `{ "key": value, ... }`, calling `value` at each value with its key.
    fn object(&mut self, mut value: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.key()?;
            if !self.eat(b':') {
                return None;
            }
            value(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// A key without escapes.
    fn key(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let rest: &'a [u8] = &self.text[self.at..];
        // Its end or an escape, whichever comes first, in one search (a search for the
        // end, then one for an escape in the key, was ~190 instructions a key).
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[len] == b'\\' {
            return None;
        }
        self.at += len + 1;
        Some(&rest[..len])
    }

    /// A whole number or `null` into an empty slot (a key seen twice is left to serde,
    /// which refuses it).
    fn count(&mut self, slot: &mut Option<u64>) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = self.number()?;
        Some(())
    }

    /// `Some(None)` for `null`, `Some(Some(n))` for a whole number; `None` for the rest.
    fn number(&mut self) -> Option<Option<u64>> {
        if self.peek()? == b'n' {
            return self.text[self.at..].starts_with(b"null").then(|| {
                self.at += 4;
                None
            });
        }
        // Counted and summed in one pass; a sum of more than 19 digits, which may have
        // wrapped, is refused below.
        let (mut digits, mut n) = (0, 0u64);
        for &d in self.text[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
        {
            n = n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            digits += 1;
        }
        // A fraction or an exponent is not a count this reader takes; nor is "01".
        let after = self.text.get(self.at + digits).copied();
        let leading_zero = digits > 1 && self.text[self.at] == b'0';
        if digits == 0 || digits > 19 || leading_zero || matches!(after, Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.at += digits;
        Some(Some(n))
    }

    /// A `*_details` object (or `null`) into an empty slot.
    fn details(&mut self, slot: &mut Option<Details>) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        if self.peek()? == b'n' {
            return self.number().map(|_| ());
        }
        let mut d = Details::default();
        self.object(|cur, key| match key {
            b"cached_tokens" => cur.count(&mut d.cached_tokens),
            b"reasoning_tokens" => cur.count(&mut d.reasoning_tokens),
            _ => cur.skip(),
        })?;
        *slot = Some(d);
        Some(())
    }

    /// A value nobody reads: a count, `null`, or an object of those (one level only:
    /// deeper nesting is serde's, which limits it).
    fn skip(&mut self) -> Option<()> {
        if self.peek()? == b'{' {
            return self.object(|cur, _| cur.number().map(|_| ()));
        }
        self.number().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<UsageFields> {
        let mut f = UsageFields::default();
        usage(text.as_bytes(), &mut f).map(|()| f)
    }

    #[test]
    fn common_usage_objects_are_read_in_place() {
        let f = read(r#"{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#).unwrap();
        assert_eq!((f.prompt_tokens, f.completion_tokens), (Some(9), Some(6)));
        let f = read(
            r#" { "prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
                 "completion_tokens_details": null, "completion_tokens": 0 } "#,
        )
        .unwrap();
        assert_eq!(f.prompt_tokens_details.unwrap().cached_tokens, Some(2));
        assert!(f.completion_tokens_details.is_none());
        assert_eq!(f.completion_tokens, Some(0));
        let f =
            read(r#"{"promptTokenCount":10,"thoughtsTokenCount":4,"x":{"y":1,"z":null}}"#).unwrap();
        assert_eq!(
            (f.prompt_token_count, f.thoughts_token_count),
            (Some(10), Some(4))
        );
        assert!(read("{}").is_some());
    }

    #[test]
    fn what_is_read_in_place_is_what_serde_reads() {
        use crate::protocol::Protocol;
        use serde::Deserialize as _;
        for text in [
            r#"{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}"#,
            r#"{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}"#,
            r#"{"input_tokens":5,"cache_read_input_tokens":2,"cache_creation_input_tokens":1,"output_tokens":7}"#,
            r#"{"input_tokens":4,"output_tokens":6,"output_tokens_details":{"reasoning_tokens":2},"input_tokens_details":{"cached_tokens":0}}"#,
            r#"{"promptTokenCount":10,"candidatesTokenCount":3,"thoughtsTokenCount":4,"cachedContentTokenCount":2,"totalTokenCount":17,"toolUsePromptTokenCount":1}"#,
            r#"{"prompt_tokens_details":null,"prompt_tokens":0}"#,
        ] {
            let ours = read(text).unwrap();
            let serde =
                UsageFields::deserialize(&mut serde_json::Deserializer::from_str(text)).unwrap();
            for p in [
                Protocol::Chat,
                Protocol::Anthropic,
                Protocol::Responses,
                Protocol::Gemini,
            ] {
                assert_eq!(ours.tokens(p), serde.tokens(p), "{text} as {p:?}");
            }
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for text in [
            r#"{"input_tokens":5,"service_tier":"standard"}"#,
            r#"{"prompt_tokens":1.5}"#,
            r#"{"prompt_tokens":1e3}"#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"prompt_tokens":01}"#,
            r#"{"prompt_tokens":99999999999999999999}"#,
            r#"{"prompt_tokens":1,"prompt_tokens":2}"#,
            r#"{"prompt\u005ftokens":1}"#,
            r#"{"promptTokensDetails":[{"modality":"TEXT","tokenCount":3}]}"#,
            r#"{"prompt_tokens":1"#,
            r#"{"prompt_tokens":1 "completion_tokens":2}"#,
            r#"{"prompt_tokens":nul}"#,
            r#"{"x":{"y":{"z":1}}}"#,
            r#"[1]"#,
            "",
        ] {
            assert!(read(text).is_none(), "{text}");
        }
    }
}
