//! A request body as its top-level keys with raw values: read a few fields, rewrite `model`.
//!
//! Routeplane re-sends most bodies upstream with only `model` changed, so it does not
//! build a JSON tree for them: the top level is split into keys and raw value bytes,
//! unknown fields pass through byte for byte, and a 1 MB agent context costs one scan.
//! Full parsing happens only when a protocol translator needs it. The body as re-sent
//! upstream is put together in `rewrite.rs`; the usual body's one-pass split is in
//! `split.rs`.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::sync::Spare;

mod rewrite;
mod split;

pub use rewrite::give_back;

thread_local! {
    /// This thread's list of a body's entries, kept between requests.
    static ENTRIES: Cell<Vec<Entry>> = const { Cell::new(Vec::new()) };
}

/// `n` zero bytes to read a body into. Allocated and then zeroed, because `vec![0; n]`
/// is a `calloc`, which glibc (before 2.42) serves without its per-thread cache, under
/// the lock of an arena two of 32 workers share on 2 cores: a worker preempted inside
/// it held up the other (futex waits in a profile at 32 clients).
pub fn zeroed(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    crate::sync::zero_to(&mut v, n);
    v
}

/// The most entries a request's `models` preference list may have.
pub const MAX_MODELS: usize = 8;

/// A JSON object body, its top-level entries in order, values unparsed.
///
/// The entries are ranges of the body's own bytes, not copies: a key and a boxed value
/// allocated per entry (and freed after) were ~2.5k instructions a request (callgrind).
#[derive(Debug)]
pub struct RawBody {
    /// The body as received, then the text of any keys it wrote with escapes, unescaped.
    bytes: Vec<u8>,
    /// The body's length, where those keys' text starts.
    len: usize,
    /// Each top-level key and where its value's bytes are, in this thread's list kept
    /// for them.
    entries: Spare<Vec<Entry>>,
}

/// A top-level key and where its value's bytes are.
type Entry = (Key, Range<usize>);

/// A top-level key: where it is in the body (between its quotes), or, when it was
/// written with escapes, where its unescaped text is, past the body's end. Ranges both:
/// a list of them is emptied without dropping its entries one by one.
#[derive(Debug)]
enum Key {
    At(Range<usize>),
    Unescaped(Range<usize>),
}

/// The fix for the two bodies typed by hand that are most often not JSON: a form
/// (`curl -d 'model=m&…'`) and an object written with single quotes.
fn slip(bytes: &[u8]) -> &'static str {
    let text = bytes.trim_ascii_start();
    if text.starts_with(b"{'") {
        "; JSON takes double quotes (\"model\"), not single ones"
    } else if text.first().is_some_and(u8::is_ascii_alphabetic) && text.contains(&b'=') {
        "; the body is a form (key=value): send a JSON object (curl: --json '{\"model\": …}')"
    } else {
        ""
    }
}

/// The 400 for a body of nothing but whitespace.
#[cold]
#[inline(never)]
fn empty() -> Error {
    Error::bad_request("request body is empty; send a JSON object")
}

/// The 400 for a body that is not a JSON object, with serde_json's reason.
#[cold]
#[inline(never)]
fn not_an_object(bytes: &[u8], e: serde_json::Error) -> Error {
    Error::bad_request(format!(
        "request body is not a valid JSON object: {e}{}",
        slip(bytes)
    ))
}

impl RawBody {
    /// Splits a body; anything but a JSON object is a 400.
    pub fn parse(bytes: Vec<u8>) -> Result<RawBody, Error> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(empty());
        }
        // The usual body in one scan (see `split.rs`).
        let mut entries = Spare::take(&ENTRIES);
        if split::split(&bytes, |key, value| entries.push((Key::At(key), value))).is_some() {
            let len = bytes.len();
            return Ok(RawBody {
                bytes,
                len,
                entries,
            });
        }
        // Given back for serde's reading to take.
        entries.clear();
        drop(entries);
        RawBody::parse_serde(bytes)
    }

    /// [`RawBody::parse`] of a body the one-pass split declines: serde_json checks the
    /// syntax and skips each value without building it, and keys and values borrowed
    /// from the body become ranges. Out of line: the usual body never comes here.
    #[inline(never)]
    fn parse_serde(mut bytes: Vec<u8>) -> Result<RawBody, Error> {
        let (entries, unescaped) =
            Entries::parse_serde(&bytes).map_err(|e| not_an_object(&bytes, e))?;
        let len = bytes.len();
        if !unescaped.is_empty() {
            bytes.extend_from_slice(unescaped.as_bytes());
        }
        Ok(RawBody {
            bytes,
            len,
            entries,
        })
    }

    /// The body as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The body as received, for reuse once it is no longer needed.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.bytes.truncate(self.len);
        self.bytes
    }

    /// A key's text.
    #[inline]
    fn key(&self, key: &Key) -> &[u8] {
        let (Key::At(r) | Key::Unescaped(r)) = key;
        &self.bytes[r.clone()]
    }

    /// Every entry as (key, raw value bytes), in order.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(k, v)| (self.key(k), &self.bytes[v.clone()]))
    }

    /// Whether `key` is `name`: the lengths first, which settle most comparisons without
    /// reading a byte of the body.
    #[inline]
    fn is(&self, key: &Key, name: &[u8]) -> bool {
        let (Key::At(r) | Key::Unescaped(r)) = key;
        r.len() == name.len() && self.bytes[r.clone()] == *name
    }

    /// The raw value of a top-level key (the last one, when a key is repeated).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        let (_, value) = (self.entries.iter().rev()).find(|(k, _)| self.is(k, key.as_bytes()))?;
        Some(&self.bytes[value.clone()])
    }

    /// What routing reads (`model`, `models`, `stream`), found in one pass over the top
    /// level. A body that writes any top-level key twice is a 400: the upstream's JSON
    /// reader may take the other one (many take the first, Routeplane's the last), and
    /// the request would then be served by a model other than the one routed, allowed and
    /// logged, or ask what a translator never read (another `messages`, `tools`).
    pub fn routing(&self) -> Result<Routing, Error> {
        // `model`, `models` and `stream`, in that order.
        let mut found: [Option<&[u8]>; 3] = [None; 3];
        let few = self.entries.len() <= PAIRWISE;
        for (at, (key, value)) in self.iter().enumerate() {
            let routed = match key {
                b"model" => 0,
                b"models" => 1,
                b"stream" => 2,
                _ => found.len(),
            };
            if let Some(slot) = found.get_mut(routed) {
                *slot = Some(value);
            }
            // Each key against those before it: the usual 3-8 keys are 3-28 comparisons
            // of a few bytes, most ended by their lengths, and nothing allocated. A body
            // of more keys is sorted below instead: pairwise, 100k keys would be 5e9.
            if few && self.entries[..at].iter().any(|(k, _)| self.is(k, key)) {
                return Err(twice(key));
            }
        }
        if !few && let Some(e) = self.twice_among_many() {
            return Err(e);
        }
        let [model, models, stream] = found;
        Ok(Routing {
            model: string("model", model)?,
            models: models.map(models_list).transpose()?,
            stream: match stream {
                None | Some(b"null") | Some(b"false") => false,
                Some(b"true") => true,
                Some(other) => return Err(not_a_boolean(other)),
            },
        })
    }

    /// The 400 for a key written twice in a body of more than [`PAIRWISE`] keys: the
    /// keys sorted, not compared pairwise.
    #[inline(never)]
    fn twice_among_many(&self) -> Option<Error> {
        let mut keys: Vec<&[u8]> = self.iter().map(|(k, _)| k).collect();
        keys.sort_unstable();
        let pair = keys.windows(2).find(|pair| pair[0] == pair[1])?;
        Some(twice(pair[0]))
    }

    /// `stream_options.include_usage: true` (Chat Completions).
    pub fn include_usage(&self) -> bool {
        self.get("stream_options")
            .and_then(|raw| serde_json::from_slice::<Value>(raw).ok())
            .is_some_and(|v| v["include_usage"] == Value::Bool(true))
    }

    /// The whole body as a JSON tree, for a translator (`models` removed).
    pub fn to_value(&self) -> Result<Value, Error> {
        let mut map = serde_json::Map::new();
        for (key, value) in self.iter() {
            if key == b"models" {
                continue;
            }
            let key = String::from_utf8_lossy(key);
            let v: Value = serde_json::from_slice(value).map_err(|e| {
                // serde_json stops at 128 levels, to keep its recursion off the end of the
                // stack: such a value is valid JSON, which "not valid JSON" would deny.
                if e.to_string().starts_with("recursion limit exceeded") {
                    Error::bad_key(
                        key.to_string().into(),
                        "is nested too deeply: more than 128 levels of arrays and objects, \
                         which no model request needs; flatten it"
                            .into(),
                    )
                } else {
                    Error::bad_key(key.to_string().into(), format!("is not valid JSON: {e}"))
                }
            })?;
            map.insert(key.into_owned(), v);
        }
        Ok(Value::Object(map))
    }
}

/// The top-level entries of a JSON object, as positions in its bytes.
struct Entries<'a> {
    /// The whole body, to tell where a borrowed key or value starts.
    base: &'a [u8],
}

impl<'a> Entries<'a> {
    /// Splits `bytes` through serde_json alone.
    fn parse_serde(bytes: &'a [u8]) -> Result<Split, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let entries = (&mut de).deserialize_map(Entries { base: bytes })?;
        de.end()?;
        Ok(entries)
    }

    /// Where `part`, a slice of the body, lies in it.
    fn range(&self, part: &[u8]) -> Range<usize> {
        let start = part.as_ptr() as usize - self.base.as_ptr() as usize;
        start..start + part.len()
    }
}

/// A body's entries, and the text of the keys among them written with escapes,
/// unescaped, one after another: their ranges start at the body's end.
type Split = (Spare<Vec<Entry>>, String);

impl<'de> Visitor<'de> for Entries<'de> {
    type Value = Split;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Spare::take(&ENTRIES);
        let mut unescaped = String::new();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let key = match key {
                Cow::Borrowed(k) => Key::At(self.range(k.as_bytes())),
                Cow::Owned(k) => {
                    let start = self.base.len() + unescaped.len();
                    unescaped.push_str(&k);
                    Key::Unescaped(start..start + k.len())
                }
            };
            entries.push((key, self.range(value.get().as_bytes())));
        }
        Ok((entries, unescaped))
    }
}

/// A JSON string as serde_json hands it over: borrowed from the input unless it has
/// escapes (serde's own `Cow<str>` copies, unless it is a struct field marked `borrow`).
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(s))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(s.to_owned()))
            }
        }
        d.deserialize_str(V).map(Text)
    }
}

/// Up to this many top-level keys, [`RawBody::routing`] compares each key with those
/// before it (at most 120 comparisons); a body with more has its keys sorted.
const PAIRWISE: usize = 16;

/// The 400 for a top-level key written twice, naming it as client text may be shown.
fn twice(key: &[u8]) -> Error {
    Error::bad_request(format!(
        "the body names `{}` twice; name it once",
        crate::log::printable(&String::from_utf8_lossy(key), 64)
    ))
}

/// What routing reads from a body ([`RawBody::routing`]).
#[derive(Debug)]
pub struct Routing {
    /// `model`, if given (`null` counts as not given).
    pub model: Option<String>,
    /// The `models` preference list, checked for shape and length.
    pub models: Option<Vec<String>>,
    /// `stream: true`.
    pub stream: bool,
}

/// The 400 for a `stream` that is not `true`, `false` or `null`.
#[cold]
#[inline(never)]
fn not_a_boolean(raw: &[u8]) -> Error {
    match raw {
        // `"true"` in quotes is a string: the commonest slip, told with its fix.
        b"\"true\"" | b"\"false\"" => Error::bad_field(
            "stream",
            "must be a boolean: write true or false without quotes",
        ),
        _ => Error::bad_field("stream", "must be a boolean"),
    }
}

/// A top-level string field's raw value as text; present but not a string is a 400.
fn string(key: &'static str, raw: Option<&[u8]>) -> Result<Option<String>, Error> {
    match raw {
        None | Some(b"null") => Ok(None),
        Some(raw) => {
            let text = match raw {
                // Most strings (a model name) have no escapes: taken as they lie.
                [b'"', text @ .., b'"'] if !text.contains(&b'\\') => {
                    String::from_utf8(text.to_vec()).ok()
                }
                _ => serde_json::from_slice::<String>(raw).ok(),
            };
            text.map(Some)
                .ok_or_else(|| Error::bad_field(key, "must be a string"))
        }
    }
}

/// A `models` preference list's raw value, checked for shape and length. Out of line:
/// the usual body names one `model`.
#[inline(never)]
fn models_list(raw: &[u8]) -> Result<Vec<String>, Error> {
    let list: Vec<String> = match serde_json::from_slice(raw) {
        Ok(list) => list,
        Err(_) => return Err(models_entry_error(raw)),
    };
    // An empty id would reach routing as a model named ``, and its 404 would not say
    // which entry of the list was left blank.
    if let Some(at) = list.iter().position(|m| m.trim().is_empty()) {
        return Err(Error::bad_field(
            "models",
            format!(
                "entry {} is empty; each entry is a model id, as `[\"smart\", \"ollama:llama3.1\"]`",
                at + 1
            ),
        ));
    }
    if list.is_empty() {
        return Err(Error::bad_field("models", "must list at least one model"));
    }
    if list.len() > MAX_MODELS {
        return Err(Error::bad_field(
            "models",
            format!(
                "lists {} models; at most {MAX_MODELS} are allowed",
                list.len()
            ),
        ));
    }
    Ok(list)
}

/// Why a `models` value is not a list of model ids, naming the entry that is not one.
fn models_entry_error(raw: &[u8]) -> Error {
    let example = "as `[\"smart\", \"ollama:llama3.1\"]`";
    let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(raw) else {
        return Error::bad_field(
            "models",
            format!("must be an array of model ids, {example}"),
        );
    };
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    match list.iter().position(|v| !v.is_string()) {
        Some(at) => Error::bad_field(
            "models",
            format!(
                "entry {} is {}, not a model id; each entry is a string, {example}",
                at + 1,
                kind(&list[at])
            ),
        ),
        None => Error::bad_field(
            "models",
            format!("must be an array of model ids, {example}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass split's entries, or `None` where it declines.
    fn split_entries(bytes: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
        let mut got = Vec::new();
        split::split(bytes, |k, v| got.push((k, v)))?;
        Some(got)
    }

    /// The split takes only what serde_json takes, and finds the entries it finds.
    fn assert_split_agrees(bytes: &[u8]) -> bool {
        let Some(got) = split_entries(bytes) else {
            return false;
        };
        let text = String::from_utf8_lossy(bytes);
        let (want, _) = Entries::parse_serde(bytes)
            .unwrap_or_else(|e| panic!("split took what serde refuses ({e}): {text}"));
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| match k {
                Key::At(k) => (k.clone(), v.clone()),
                Key::Unescaped(_) => panic!("split took a key serde unescapes: {text}"),
            })
            .collect();
        assert_eq!(got, want, "{text}");
        true
    }

    #[test]
    fn the_usual_bodies_are_split_in_one_pass_as_serde_splits_them() {
        for body in [
            r#"{"model":"mock-model","messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}"#,
            " {\"a\" : [ 1 , -0.5e+3, 2E-1, 0, true,false, null ,{}], \"b\":{\"c\":\"\"}}\r\n",
            r#"{"s":"tab\t quote\" slash\/ back\\ \u00e9\uD83D\uDE00 \ud800 é 😀"}"#,
            r#"{"model":"m","model":"n","":{"\u0041":1}}"#,
            "{}",
            "\t{ }\n",
            r#"{"é":"ü","k":["ß",{"ø":"😀 and then plain text past a word"}]}"#,
        ] {
            assert!(assert_split_agrees(body.as_bytes()), "declined: {body}");
        }
        // Declined, and serde decides: an escaped top-level key (serde unescapes it), not
        // JSON, not an object, trailing bytes, deep nesting, invalid UTF-8.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(70), "]".repeat(70));
        let not_utf8: &[u8] = b"{\"a\":\"\xff\"}";
        // Past the first byte that is not ASCII, the rest of the body is checked too.
        let not_utf8_later: &[&[u8]] = &[
            b"{\"a\":\"\xc3\xa9\",\"b\":\"\xff\"}",
            b"{\"\xc3\xa9\":1,\"b\":[\"x\xc0\xaf\"]}",
            b"{\"a\":\"\xe2\x82\"}",
            b"{\"a\":\"\xc3\xa9\"}\xff",
        ];
        for body in [
            r#"{"mo\u0064el":"m"}"#.as_bytes(),
            br#"{"a":01}"#,
            br#"{"a":1,}"#,
            br#"{"a":"\x"}"#,
            br#"{"a":"\u12"}"#,
            b"{\"a\":\"line\nbreak\"}",
            br#"[1]"#,
            br#"{"a":1} x"#,
            br#"{"a":tru}"#,
            br#"{"a":-}"#,
            br#"{"a":1.}"#,
            br#"{"a":1e}"#,
            deep.as_bytes(),
            not_utf8,
        ]
        .into_iter()
        .chain(not_utf8_later.iter().copied())
        {
            assert!(
                split_entries(body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_one_pass_split_never_takes_what_serde_refuses() {
        // Deterministic pseudo-random bodies, well-formed and then broken a byte at a time:
        // wherever the split answers, serde_json answers the same.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        fn value(out: &mut String, depth: usize, next: &mut dyn FnMut(usize) -> usize) {
            const PIECES: [&str; 16] = [
                "0",
                "-12",
                "3.25",
                "1e9",
                "-0.5E-3",
                "true",
                "false",
                "null",
                "\"\"",
                "\"text\"",
                "\"e\\n\\\"\\u00e9\"",
                "\"é😀\"",
                "\"\\ud800\"",
                "\" \\/ \"",
                // Past a word of eight bytes, where strings are scanned a word at a time.
                "\"a longer run of plain text, with é and 😀 in it\"",
                "\"twelve bytes\\\" then a quote, then \\\\ and \\u00e9 past it\"",
            ];
            match next(if depth > 3 { 1 } else { 3 }) {
                0 => out.push_str(PIECES[next(PIECES.len())]),
                1 => {
                    out.push('[');
                    for i in 0..next(4) {
                        if i > 0 {
                            out.push_str([",", " , ", ",\n"][next(3)]);
                        }
                        value(out, depth + 1, next);
                    }
                    out.push(']');
                }
                _ => {
                    out.push('{');
                    for i in 0..next(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(["\"k\":", "\"\" : ", "\"\\u0041\":"][next(3)]);
                        value(out, depth + 1, next);
                    }
                    out.push('}');
                }
            }
        }
        const NOISE: &[u8] = b"{}[]:,\"\\ \n0-.eE+tfnu\x01\xff";
        let mut taken = 0;
        for _ in 0..3000 {
            let mut body = String::from("{");
            for i in 0..next(5) {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(["\"model\":", "\"m\" :", " \"x\":"][next(3)]);
                value(&mut body, 1, &mut next);
            }
            body.push('}');
            taken += usize::from(assert_split_agrees(body.as_bytes()));
            for _ in 0..6 {
                let mut broken = body.clone().into_bytes();
                let at = next(broken.len());
                match next(3) {
                    0 => {
                        broken.remove(at);
                    }
                    1 => broken.insert(at, NOISE[next(NOISE.len())]),
                    _ => broken[at] = NOISE[next(NOISE.len())],
                }
                assert_split_agrees(&broken);
            }
        }
        // The well-formed ones are nearly all taken (only escaped keys are declined).
        assert!(
            taken > 2000,
            "only {taken} of 3000 well-formed bodies were split"
        );
    }

    #[test]
    fn string_values_are_read_with_and_without_escapes() {
        let model = |text: &str| {
            let body = RawBody::parse(text.as_bytes().to_vec()).unwrap();
            body.routing().map(|r| r.model)
        };
        assert_eq!(
            model(r#"{"model":"gpt-4o"}"#).unwrap().as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(
            model(r#"{"model":"k\u00f6ln"}"#).unwrap().as_deref(),
            Some("köln")
        );
        assert_eq!(
            model(r#"{"model":"köln"}"#).unwrap().as_deref(),
            Some("köln")
        );
        assert_eq!(
            model(r#"{"model":"a\"b"}"#).unwrap().as_deref(),
            Some("a\"b")
        );
        assert_eq!(model(r#"{"model":""}"#).unwrap().as_deref(), Some(""));
        assert_eq!(model(r#"{"model":null}"#).unwrap(), None);
        for not_a_string in [
            r#"{"model":5}"#,
            r#"{"model":["a"]}"#,
            r#"{"model":{"a":"b"}}"#,
        ] {
            assert!(model(not_a_string).is_err(), "{not_a_string}");
        }
    }

    #[test]
    fn keys_written_with_escapes_are_the_keys_they_spell() {
        // `mod\u0065l` is `model`; `a\"b` must go out still escaped.
        let body =
            RawBody::parse(br#"{"mod\u0065l":"smart","a\"b":1,"st\u0072eam":true}"#.to_vec())
                .unwrap();
        let routing = body.routing().unwrap();
        assert_eq!(routing.model.as_deref(), Some("smart"));
        assert!(routing.stream);
        let out = String::from_utf8(body.with_model("m").into_owned()).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(
            v,
            serde_json::json!({"model": "m", "a\"b": 1, "stream": true}),
            "{out}"
        );
    }

    #[test]
    fn wrong_shapes_are_bad_requests() {
        for (json, want) in [
            ("[1]", "request body is not a valid JSON object"),
            ("{\"model\":5}", "`model` must be a string"),
            ("{\"stream\":\"yes\"}", "`stream` must be a boolean"),
            (
                "{\"stream\":\"true\"}",
                "`stream` must be a boolean: write true or false without quotes",
            ),
            (
                "{\"models\":\"a\"}",
                "`models` must be an array of model ids",
            ),
            (
                "{\"models\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}",
                "`models` lists 9 models; at most 8 are allowed",
            ),
            ("  ", "request body is empty; send a JSON object"),
            (
                "{\"model\":\"a\",\"x\":1,\"model\":\"b\"}",
                "the body names `model` twice; name it once",
            ),
            (
                "{\"stream\":false,\"model\":\"a\",\"stream\":true}",
                "the body names `stream` twice; name it once",
            ),
            (
                "{\"models\":[\"a\"],\"mod\\u0065ls\":[\"b\"]}",
                "the body names `models` twice; name it once",
            ),
            (
                "{\"model\":\"a\",\"messages\":[],\"x\":1,\"messages\":[]}",
                "the body names `messages` twice; name it once",
            ),
            (
                "{\"tools\":[],\"model\":\"a\",\"t\\u006fols\":[]}",
                "the body names `tools` twice; name it once",
            ),
        ] {
            let err = RawBody::parse(json.as_bytes().to_vec())
                .and_then(|b| b.routing().map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(want), "{json}: {err}");
        }
    }

    #[test]
    fn a_key_twice_is_found_among_many_keys_too() {
        // Past the pairwise comparisons, the sorted keys: anywhere in the body.
        let keys = |n: usize| (0..n).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>();
        for n in [2, PAIRWISE - 1, PAIRWISE, PAIRWISE + 1, 1000] {
            let distinct = format!("{{\"model\":\"a\",{}}}", keys(n).join(","));
            let body = RawBody::parse(distinct.into_bytes()).unwrap();
            assert_eq!(body.routing().unwrap().model.as_deref(), Some("a"), "{n}");
            for (first, again) in [(0, n - 1), (n / 2, n - 1), (0, 1)] {
                if first == again {
                    continue;
                }
                let mut list = keys(n);
                list[again] = list[first].clone();
                let text = format!("{{\"model\":\"a\",{}}}", list.join(","));
                let err = RawBody::parse(text.into_bytes())
                    .unwrap()
                    .routing()
                    .unwrap_err()
                    .to_string();
                let want = format!("the body names `k{first}` twice");
                assert!(err.starts_with(&want), "{n} {first} {again}: {err}");
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        // The top-level split skips values without recursing; building a tree refuses.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let body = RawBody::parse(deep.as_bytes().to_vec()).unwrap();
        let err = body.to_value().unwrap_err().to_string();
        assert!(err.starts_with("`a` is nested too deeply"), "{err}");
    }
}
