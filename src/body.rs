//! A request body as its top-level keys with raw values: read a few fields, rewrite `model`.
//!
//! Routeplane re-sends most bodies upstream with only `model` changed, so it does not
//! build a JSON tree for them: the top level is split into keys and raw value bytes,
//! unknown fields pass through byte for byte, and a 1 MB agent context costs one scan.
//! Full parsing happens only when a protocol translator needs it.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::sync::{self, Spare};

mod split;

thread_local! {
    /// The buffer this thread's next rewritten body is written into (see [`give_back`]).
    static REWRITTEN: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// This thread's list of a body's entries, kept between requests.
    static ENTRIES: Cell<Vec<Entry>> = const { Cell::new(Vec::new()) };
}

/// Gives a body built for upstream back once it has been sent: the thread's next
/// rewritten body is written into it instead of a new allocation (one a request fewer;
/// under musl every allocation takes the allocator's one lock, see `sync::take_spare`).
pub fn give_back(body: Vec<u8>) {
    sync::keep_spare(&REWRITTEN, body);
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
    /// The body as received.
    bytes: Vec<u8>,
    /// Each top-level key and where its value's bytes are, in this thread's list kept
    /// for them.
    entries: Spare<Vec<Entry>>,
}

/// A top-level key and where its value's bytes are.
type Entry = (Key, Range<usize>);

/// A top-level key: where it is in the body (between its quotes), or, when it was
/// written with escapes, its unescaped text.
#[derive(Debug)]
enum Key {
    At(Range<usize>),
    Unescaped(String),
}

impl RawBody {
    /// Splits a body; anything but a JSON object is a 400.
    pub fn parse(bytes: Vec<u8>) -> Result<RawBody, Error> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::bad_request(
                "request body is empty; send a JSON object",
            ));
        }
        let entries = Entries::parse(&bytes).map_err(|e| {
            Error::bad_request(format!("request body is not a valid JSON object: {e}"))
        })?;
        Ok(RawBody { bytes, entries })
    }

    /// The body as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The body as received, for reuse once it is no longer needed.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// A key's text.
    fn key<'a>(&'a self, key: &'a Key) -> &'a [u8] {
        match key {
            Key::At(r) => &self.bytes[r.clone()],
            Key::Unescaped(s) => s.as_bytes(),
        }
    }

    /// Every entry as (key, raw value bytes), in order.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(k, v)| (self.key(k), &self.bytes[v.clone()]))
    }

    /// The raw value of a top-level key (the last one, when a key is repeated).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.iter()
            .rev()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// What routing reads (`model`, `models`, `stream`), found in one pass over the top
    /// level. A body that writes any top-level key twice is a 400: the upstream's JSON
    /// reader may take the other one (many take the first, Routeplane's the last), and
    /// the request would then be served by a model other than the one routed, allowed and
    /// logged, or ask what a translator never read (another `messages`, `tools`).
    pub fn routing(&self) -> Result<Routing, Error> {
        let mut found: [Option<&[u8]>; 3] = [None; 3];
        let few = self.entries.len() <= PAIRWISE;
        for (at, (key, value)) in self.iter().enumerate() {
            if let Some(i) = ROUTED.iter().position(|k| k.as_bytes() == key) {
                found[i] = Some(value);
            }
            // Each key against those before it: the usual 3-8 keys are 3-28 comparisons
            // of a few bytes, most ended by their lengths, and nothing allocated. A body
            // of more keys is sorted below instead: pairwise, 100k keys would be 5e9.
            if few && self.entries[..at].iter().any(|(k, _)| self.key(k) == key) {
                return Err(twice(key));
            }
        }
        if !few {
            let mut keys: Vec<&[u8]> = self.iter().map(|(k, _)| k).collect();
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
                return Err(twice(pair[0]));
            }
        }
        let [model, models, stream] = found;
        Ok(Routing {
            model: string("model", model)?,
            models: models.map(models_list).transpose()?,
            stream: match stream {
                None | Some(b"null") | Some(b"false") => false,
                Some(b"true") => true,
                Some(_) => return Err(Error::bad_request("`stream` must be a boolean")),
            },
        })
    }

    /// `stream_options.include_usage: true` (Chat Completions).
    pub fn include_usage(&self) -> bool {
        self.get("stream_options")
            .and_then(|raw| serde_json::from_slice::<Value>(raw).ok())
            .is_some_and(|v| v["include_usage"] == Value::Bool(true))
    }

    /// The body as re-sent upstream: `model` set to `model`, `models` removed. The usual
    /// body already names the model as it goes upstream and is lent as it came: taken
    /// apart and put together it was ~0.8k of a request's ~33k instructions, and copied
    /// whole, a copy of every byte of an agent's context.
    pub fn with_model(&self, model: &str) -> Cow<'_, [u8]> {
        if self.names_only(model) {
            return Cow::Borrowed(&self.bytes);
        }
        Cow::Owned(self.rewritten(model, &[]))
    }

    /// [`RawBody::with_model`], also asking a chat stream for its usage chunk:
    /// `stream_options.include_usage: true`, the client's other stream options kept.
    pub fn with_model_asking_usage(&self, model: &str) -> Vec<u8> {
        self.rewritten(model, &[("stream_options", &self.options_asking_usage())])
    }

    /// The body with `model` set and `"stream": true`, and with `usage` its
    /// `stream_options.include_usage` too: a whole answer asked for as a stream, to be
    /// collected, with the client's other bytes (and their order, which a JSON schema's
    /// keys carry) as they came.
    pub fn with_model_streaming(&self, model: &str, usage: bool) -> Vec<u8> {
        if !usage {
            return self.rewritten(model, &[("stream", "true")]);
        }
        let options = self.options_asking_usage();
        self.rewritten(model, &[("stream", "true"), ("stream_options", &options)])
    }

    /// The client's `stream_options` with `include_usage` set, as raw JSON.
    fn options_asking_usage(&self) -> String {
        match self
            .get("stream_options")
            .and_then(|raw| serde_json::from_slice::<Value>(raw).ok())
        {
            Some(Value::Object(mut m)) => {
                m.insert("include_usage".into(), Value::Bool(true));
                Value::Object(m).to_string()
            }
            _ => r#"{"include_usage":true}"#.to_string(),
        }
    }

    /// True when `model` is the body's one `model`, as a string without escapes, and
    /// there is no `models` list: [`RawBody::rewritten`] would change nothing but spacing.
    fn names_only(&self, model: &str) -> bool {
        let mut named = false;
        for (key, value) in self.iter() {
            match key {
                b"models" => return false,
                b"model" if named => return false,
                b"model" => {
                    named = matches!(value, [b'"', text @ .., b'"'] if text == model.as_bytes());
                    if !named {
                        return false;
                    }
                }
                _ => {}
            }
        }
        named
    }

    /// The body with `model` set, `models` removed and the top-level keys of `set` set
    /// to raw JSON values (replacing the client's).
    fn rewritten(&self, model: &str, set: &[(&str, &str)]) -> Vec<u8> {
        let mut out = sync::take_spare(&REWRITTEN);
        out.reserve(self.bytes.len() + model.len() + 48);
        out.push(b'{');
        let mut wrote_model = false;
        let mut first = true;
        // Which of `set` went out, in place of the client's own.
        let mut wrote_set = [false; 2];
        debug_assert!(set.len() <= wrote_set.len());
        for (key, value) in self.entries.iter() {
            let name = self.key(key);
            let value = match name {
                b"models" => continue,
                b"model" if wrote_model => continue,
                b"model" => {
                    wrote_model = true;
                    None
                }
                k => match set.iter().position(|(n, _)| n.as_bytes() == k) {
                    Some(i) if wrote_set[i] => continue,
                    Some(i) => {
                        wrote_set[i] = true;
                        Some(set[i].1.as_bytes())
                    }
                    None => Some(&self.bytes[value.clone()]),
                },
            };
            if !first {
                out.push(b',');
            }
            first = false;
            self.push_key(&mut out, key);
            out.push(b':');
            match value {
                Some(v) => out.extend_from_slice(v),
                None => push_json_string(&mut out, model),
            }
        }
        if !wrote_model {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(b"\"model\":");
            push_json_string(&mut out, model);
        }
        for (i, (name, value)) in set.iter().enumerate() {
            if !wrote_set[i] {
                out.push(b',');
                push_json_string(&mut out, name);
                out.push(b':');
                out.extend_from_slice(value.as_bytes());
            }
        }
        out.push(b'}');
        out
    }

    /// Appends a key as a JSON string: the client's own bytes, quotes included, when it
    /// had no escapes.
    fn push_key(&self, out: &mut Vec<u8>, key: &Key) {
        match key {
            Key::At(r) => out.extend_from_slice(&self.bytes[r.start - 1..r.end + 1]),
            Key::Unescaped(s) => push_json_string(out, s),
        }
    }

    /// The body as re-sent to an upstream that takes the model from its URL (Gemini):
    /// `model` and `models` removed, everything else byte for byte.
    pub fn without_model(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 2);
        out.push(b'{');
        for (key, value) in self.entries.iter() {
            if matches!(self.key(key), b"model" | b"models") {
                continue;
            }
            if out.len() > 1 {
                out.push(b',');
            }
            self.push_key(&mut out, key);
            out.push(b':');
            out.extend_from_slice(&self.bytes[value.clone()]);
        }
        out.push(b'}');
        out
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
                    Error::bad_request(format!(
                        "`{key}` is nested too deeply: more than 128 levels of arrays and \
                         objects, which no model request needs; flatten it"
                    ))
                } else {
                    Error::bad_request(format!("`{key}` is not valid JSON: {e}"))
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
    /// Splits `bytes`: the usual body in one scan (see `split.rs`); any other, serde_json
    /// checks the syntax and skips each value without building it, and keys and values
    /// borrowed from `bytes` become ranges.
    fn parse(bytes: &'a [u8]) -> Result<Spare<Vec<Entry>>, serde_json::Error> {
        let mut entries = Spare::take(&ENTRIES);
        if split::split(bytes, |key, value| entries.push((Key::At(key), value))).is_some() {
            return Ok(entries);
        }
        // Given back for serde's reading to take.
        entries.clear();
        drop(entries);
        Entries::parse_serde(bytes)
    }

    /// [`Entries::parse`] through serde_json alone.
    fn parse_serde(bytes: &'a [u8]) -> Result<Spare<Vec<Entry>>, serde_json::Error> {
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

impl<'de> Visitor<'de> for Entries<'de> {
    type Value = Spare<Vec<Entry>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Spare::take(&ENTRIES);
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let key = match key {
                Cow::Borrowed(k) => Key::At(self.range(k.as_bytes())),
                Cow::Owned(k) => Key::Unescaped(k),
            };
            entries.push((key, self.range(value.get().as_bytes())));
        }
        Ok(entries)
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

/// Appends a string as a JSON string literal, quoted and escaped.
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a `&str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The top-level keys routing reads, in [`Routing`]'s order.
const ROUTED: [&str; 3] = ["model", "models", "stream"];

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

/// A top-level string field's raw value as text; present but not a string is a 400.
fn string(key: &str, raw: Option<&[u8]>) -> Result<Option<String>, Error> {
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
                .ok_or_else(|| Error::bad_request(format!("`{key}` must be a string")))
        }
    }
}

/// A `models` preference list's raw value, checked for shape and length.
fn models_list(raw: &[u8]) -> Result<Vec<String>, Error> {
    let list: Vec<String> = match serde_json::from_slice(raw) {
        Ok(list) => list,
        Err(_) => return Err(models_entry_error(raw)),
    };
    // An empty id would reach routing as a model named ``, and its 404 would not say
    // which entry of the list was left blank.
    if let Some(at) = list.iter().position(|m| m.trim().is_empty()) {
        return Err(Error::bad_request(format!(
            "`models` entry {} is empty; each entry is a model id, as `[\"smart\", \"ollama:llama3.1\"]`",
            at + 1
        )));
    }
    if list.is_empty() {
        return Err(Error::bad_request("`models` must list at least one model"));
    }
    if list.len() > MAX_MODELS {
        return Err(Error::bad_request(format!(
            "`models` lists {} models; at most {MAX_MODELS} are allowed",
            list.len()
        )));
    }
    Ok(list)
}

/// Why a `models` value is not a list of model ids, naming the entry that is not one.
fn models_entry_error(raw: &[u8]) -> Error {
    let example = "as `[\"smart\", \"ollama:llama3.1\"]`";
    let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(raw) else {
        return Error::bad_request(format!("`models` must be an array of model ids, {example}"));
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
        Some(at) => Error::bad_request(format!(
            "`models` entry {} is {}, not a model id; each entry is a string, {example}",
            at + 1,
            kind(&list[at])
        )),
        None => Error::bad_request(format!("`models` must be an array of model ids, {example}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_rewritten_and_everything_else_kept() {
        let body = RawBody::parse(
            br#"{"model":"smart","x_unknown":{"a":[1,2.50]},"models":["a"],"stream":true}"#
                .to_vec(),
        )
        .unwrap();
        let out = String::from_utf8(body.with_model("llama3.1:8b").into_owned()).unwrap();
        assert_eq!(
            out,
            r#"{"model":"llama3.1:8b","x_unknown":{"a":[1,2.50]},"stream":true}"#
        );
    }

    #[test]
    fn a_body_that_names_its_upstream_model_goes_as_it_came() {
        let text = " {\"model\": \"llama3.1:8b\",\n \"stream\":true, \"x\":[1, 2]}\n";
        let body = RawBody::parse(text.as_bytes().to_vec()).unwrap();
        // Lent, not copied.
        assert!(matches!(body.with_model("llama3.1:8b"), Cow::Borrowed(b) if b == text.as_bytes()));
        // Anything else is put together again: another model, a `models` list, a model
        // twice, a model written with an escape, no model at all.
        for (text, model, want) in [
            (r#"{"model":"a", "x":1}"#, "b", r#"{"model":"b","x":1}"#),
            (r#"{"model":"a","models":["a"]}"#, "a", r#"{"model":"a"}"#),
            (r#"{"model":"a","model":"a"}"#, "a", r#"{"model":"a"}"#),
            (
                r#"{"model":"\u0061", "x":1}"#,
                "a",
                r#"{"model":"a","x":1}"#,
            ),
            (r#"{"x":1}"#, "a", r#"{"x":1,"model":"a"}"#),
        ] {
            let body = RawBody::parse(text.as_bytes().to_vec()).unwrap();
            assert_eq!(
                String::from_utf8(body.with_model(model).into_owned()).unwrap(),
                want,
                "{text}"
            );
        }
    }

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
        let want = Entries::parse_serde(bytes)
            .unwrap_or_else(|e| panic!("split took what serde refuses ({e}): {text}"));
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| match k {
                Key::At(k) => (k.clone(), v.clone()),
                Key::Unescaped(k) => panic!("split took a key serde unescapes ({k}): {text}"),
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
        ] {
            assert!(assert_split_agrees(body.as_bytes()), "declined: {body}");
        }
        // Declined, and serde decides: an escaped top-level key (serde unescapes it), not
        // JSON, not an object, trailing bytes, deep nesting, invalid UTF-8.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(70), "]".repeat(70));
        let not_utf8: &[u8] = b"{\"a\":\"\xff\"}";
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
        ] {
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
    fn usage_is_asked_for_and_other_stream_options_kept() {
        let plain = RawBody::parse(br#"{"model":"a","stream":true}"#.to_vec()).unwrap();
        assert_eq!(
            String::from_utf8(plain.with_model_asking_usage("b")).unwrap(),
            r#"{"model":"b","stream":true,"stream_options":{"include_usage":true}}"#
        );
        let with = RawBody::parse(
            br#"{"stream_options":{"include_usage":false,"x":1},"model":"a","stream":true}"#
                .to_vec(),
        )
        .unwrap();
        let out: Value = serde_json::from_slice(&with.with_model_asking_usage("b")).unwrap();
        assert_eq!(
            out["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
        assert_eq!(out["model"], "b");
    }

    #[test]
    fn a_stream_is_asked_for_in_place_with_the_other_bytes_as_they_came() {
        let whole = RawBody::parse(
            br#"{"stream":false,"model":"a","tools":[{"p":{"z":1,"a":2}}]}"#.to_vec(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(whole.with_model_streaming("b", true)).unwrap(),
            r#"{"stream":true,"model":"b","tools":[{"p":{"z":1,"a":2}}],"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn model_is_added_when_only_models_was_given() {
        let body = RawBody::parse(br#"{"models":["a","b"]}"#.to_vec()).unwrap();
        assert_eq!(body.routing().unwrap().models.unwrap(), vec!["a", "b"]);
        assert_eq!(&*body.with_model("a"), br#"{"model":"a"}"#);
    }

    #[test]
    fn a_body_given_back_is_written_into_by_the_next() {
        let body = RawBody::parse(br#"{"model":"a","x":[1,2]}"#.to_vec()).unwrap();
        let first = body.with_model("long-model-name").into_owned();
        let at = first.as_ptr();
        give_back(first);
        let second = body.with_model("b");
        assert_eq!(&*second, br#"{"model":"b","x":[1,2]}"#);
        assert_eq!(second.as_ptr(), at, "the given-back buffer was not reused");
    }

    #[test]
    fn model_can_be_left_out_for_a_model_in_the_url() {
        let body = RawBody::parse(
            br#"{"models":["a"],"contents":[{"parts":[{"text":"x"}]}],"model":"m"}"#.to_vec(),
        )
        .unwrap();
        assert_eq!(
            body.without_model(),
            br#"{"contents":[{"parts":[{"text":"x"}]}]}"#
        );
    }

    #[test]
    fn wrong_shapes_are_bad_requests() {
        for (json, want) in [
            ("[1]", "request body is not a valid JSON object"),
            ("{\"model\":5}", "`model` must be a string"),
            ("{\"stream\":\"yes\"}", "`stream` must be a boolean"),
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
