//! A body as re-sent upstream: `model` set, `models` removed, the client's other bytes
//! as they came; asking a stream, or its usage, in place; `model` left out for a model
//! in the URL. The buffer of a body sent is given back to be written into by the next.
//!
//! Each top-level key is here once: a body that repeats one was refused before routing
//! (`RawBody::routing`), so nothing below chooses between two.

use std::borrow::Cow;
use std::cell::Cell;

use serde_json::Value;

use super::{Key, RawBody};
use crate::sync;

thread_local! {
    /// The buffer this thread's next rewritten body is written into (see [`give_back`]).
    static REWRITTEN: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Gives a body built for upstream back once it has been sent: the thread's next
/// rewritten body is written into it instead of a new allocation (one a request fewer;
/// under musl every allocation takes the allocator's one lock, see `sync::take_spare`).
pub fn give_back(body: Vec<u8>) {
    sync::keep_spare(&REWRITTEN, body);
}

impl RawBody {
    /// The body as re-sent upstream: `model` set to `model`, `models` removed. The usual
    /// body already names the model as it goes upstream and is lent as it came: taken
    /// apart and put together it was ~0.8k of a request's ~33k instructions, and copied
    /// whole, a copy of every byte of an agent's context.
    pub fn with_model(&self, model: &str) -> Cow<'_, [u8]> {
        if self.names_only(model) {
            return Cow::Borrowed(self.bytes());
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

    /// True when `model` is the body's `model`, as a string without escapes, and there
    /// is no `models` list: [`RawBody::rewritten`] would change nothing but spacing.
    fn names_only(&self, model: &str) -> bool {
        let mut named = false;
        for (key, value) in self.iter() {
            match key {
                b"models" => return false,
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
        out.reserve(self.len + model.len() + 48);
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
                b"model" => {
                    wrote_model = true;
                    None
                }
                k => match set.iter().position(|(n, _)| n.as_bytes() == k) {
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
            Key::Unescaped(_) => {
                let text = String::from_utf8_lossy(self.key(key));
                push_json_string(out, &text);
            }
        }
    }

    /// The body as re-sent to an upstream that takes the model from its URL (Gemini):
    /// `model` and `models` removed, everything else byte for byte.
    pub fn without_model(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len + 2);
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
}

/// Appends a string as a JSON string literal, quoted and escaped.
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a `&str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
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
        // written with an escape, no model at all.
        for (text, model, want) in [
            (r#"{"model":"a", "x":1}"#, "b", r#"{"model":"b","x":1}"#),
            (r#"{"model":"a","models":["a"]}"#, "a", r#"{"model":"a"}"#),
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
}
