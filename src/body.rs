//! A request body as its top-level keys with raw values: read a few fields, rewrite `model`.
//!
//! Routeplane re-sends most bodies upstream with only `model` changed, so it does not
//! build a JSON tree for them: the top level is split into keys and raw value bytes,
//! unknown fields pass through byte for byte, and a 1 MB agent context costs one scan.
//! Full parsing happens only when a protocol translator needs it.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::Error;

/// The most entries a request's `models` preference list may have.
pub const MAX_MODELS: usize = 8;

/// A JSON object body, its top-level entries in order, values unparsed.
#[derive(Debug)]
pub struct RawBody {
    entries: Vec<(String, Box<RawValue>)>,
}

impl RawBody {
    /// Splits a body; anything but a JSON object is a 400.
    pub fn parse(bytes: &[u8]) -> Result<RawBody, Error> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::bad_request(
                "request body is empty; send a JSON object",
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            Error::bad_request(format!("request body is not a valid JSON object: {e}"))
        })
    }

    /// The raw value of a top-level key.
    fn get(&self, key: &str) -> Option<&RawValue> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &**v)
    }

    /// A top-level string field; present but not a string is a 400.
    pub fn string(&self, key: &str) -> Result<Option<String>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str::<String>(raw.get())
                .map(Some)
                .map_err(|_| Error::bad_request(format!("`{key}` must be a string"))),
        }
    }

    /// `model`, if given.
    pub fn model(&self) -> Result<Option<String>, Error> {
        self.string("model")
    }

    /// `stream: true`.
    pub fn stream(&self) -> Result<bool, Error> {
        match self.get("stream").map(RawValue::get) {
            None | Some("null") | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(Error::bad_request("`stream` must be a boolean")),
        }
    }

    /// `stream_options.include_usage: true` (Chat Completions).
    pub fn include_usage(&self) -> bool {
        self.get("stream_options")
            .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
            .is_some_and(|v| v["include_usage"] == Value::Bool(true))
    }

    /// The `models` preference list, checked for shape and length.
    pub fn models(&self) -> Result<Option<Vec<String>>, Error> {
        let Some(raw) = self.get("models") else {
            return Ok(None);
        };
        let list: Vec<String> = serde_json::from_str(raw.get())
            .map_err(|_| Error::bad_request("`models` must be an array of model ids"))?;
        if list.is_empty() {
            return Err(Error::bad_request("`models` must list at least one model"));
        }
        if list.len() > MAX_MODELS {
            return Err(Error::bad_request(format!(
                "`models` lists {} models; at most {MAX_MODELS} are allowed",
                list.len()
            )));
        }
        Ok(Some(list))
    }

    /// The body as re-sent upstream: `model` set to `model`, `models` removed.
    pub fn with_model(&self, model: &str) -> Vec<u8> {
        self.rewritten(model, None)
    }

    /// [`RawBody::with_model`], also asking a chat stream for its usage chunk:
    /// `stream_options.include_usage: true`, the client's other stream options kept.
    pub fn with_model_asking_usage(&self, model: &str) -> Vec<u8> {
        let options = match self
            .get("stream_options")
            .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        {
            Some(Value::Object(mut m)) => {
                m.insert("include_usage".into(), Value::Bool(true));
                Value::Object(m).to_string()
            }
            _ => r#"{"include_usage":true}"#.to_string(),
        };
        self.rewritten(model, Some(("stream_options", &options)))
    }

    /// The body with `model` set, `models` removed and, when given, one more top-level
    /// key set to a raw JSON value (replacing the client's).
    fn rewritten(&self, model: &str, set: Option<(&str, &str)>) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.entries
                .iter()
                .map(|(k, v)| k.len() + v.get().len() + 4)
                .sum::<usize>()
                + 32,
        );
        out.push(b'{');
        let model_json = json_string(model);
        let mut wrote_model = false;
        let mut first = true;
        let mut wrote_set = false;
        for (key, value) in &self.entries {
            let value = match key.as_str() {
                "models" => continue,
                "model" if wrote_model => continue,
                "model" => {
                    wrote_model = true;
                    model_json.as_str()
                }
                k if set.is_some_and(|(name, _)| name == k) => {
                    if wrote_set {
                        continue;
                    }
                    wrote_set = true;
                    set.map_or("", |(_, v)| v)
                }
                _ => value.get(),
            };
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(json_string(key).as_bytes());
            out.push(b':');
            out.extend_from_slice(value.as_bytes());
        }
        if !wrote_model {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(b"\"model\":");
            out.extend_from_slice(model_json.as_bytes());
        }
        if let Some((name, value)) = set.filter(|_| !wrote_set) {
            out.push(b',');
            out.extend_from_slice(json_string(name).as_bytes());
            out.push(b':');
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'}');
        out
    }

    /// The body as re-sent to an upstream that takes the model from its URL (Gemini):
    /// `model` and `models` removed, everything else byte for byte.
    pub fn without_model(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.entries
                .iter()
                .map(|(k, v)| k.len() + v.get().len() + 4)
                .sum::<usize>()
                + 2,
        );
        out.push(b'{');
        for (key, value) in self
            .entries
            .iter()
            .filter(|(k, _)| k != "model" && k != "models")
        {
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(json_string(key).as_bytes());
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        out
    }

    /// The whole body as a JSON tree, for a translator (`models` removed).
    pub fn to_value(&self) -> Result<Value, Error> {
        let mut map = serde_json::Map::new();
        for (key, value) in &self.entries {
            if key == "models" {
                continue;
            }
            let v: Value = serde_json::from_str(value.get())
                .map_err(|e| Error::bad_request(format!("`{key}` is not valid JSON: {e}")))?;
            map.insert(key.clone(), v);
        }
        Ok(Value::Object(map))
    }
}

impl<'de> Deserialize<'de> for RawBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawBody, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = RawBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBody, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    entries.push(entry);
                }
                Ok(RawBody { entries })
            }
        }
        d.deserialize_map(Entries)
    }
}

/// A string as a JSON string literal, quoted and escaped.
fn json_string(s: &str) -> String {
    // Serializing a `&str` cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_rewritten_and_everything_else_kept() {
        let body = RawBody::parse(
            br#"{"model":"smart","x_unknown":{"a":[1,2.50]},"models":["a"],"stream":true}"#,
        )
        .unwrap();
        let out = String::from_utf8(body.with_model("llama3.1:8b")).unwrap();
        assert_eq!(
            out,
            r#"{"model":"llama3.1:8b","x_unknown":{"a":[1,2.50]},"stream":true}"#
        );
    }

    #[test]
    fn usage_is_asked_for_and_other_stream_options_kept() {
        let plain = RawBody::parse(br#"{"model":"a","stream":true}"#).unwrap();
        assert_eq!(
            String::from_utf8(plain.with_model_asking_usage("b")).unwrap(),
            r#"{"model":"b","stream":true,"stream_options":{"include_usage":true}}"#
        );
        let with = RawBody::parse(
            br#"{"stream_options":{"include_usage":false,"x":1},"model":"a","stream":true}"#,
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
    fn model_is_added_when_only_models_was_given() {
        let body = RawBody::parse(br#"{"models":["a","b"]}"#).unwrap();
        assert_eq!(body.models().unwrap().unwrap(), vec!["a", "b"]);
        assert_eq!(body.with_model("a"), br#"{"model":"a"}"#);
    }

    #[test]
    fn model_can_be_left_out_for_a_model_in_the_url() {
        let body = RawBody::parse(
            br#"{"models":["a"],"contents":[{"parts":[{"text":"x"}]}],"model":"m"}"#,
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
        ] {
            let err = RawBody::parse(json.as_bytes())
                .and_then(|b| b.model().and(b.stream()).and(b.models()).map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(want), "{json}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        // The top-level split skips values without recursing; building a tree refuses.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let body = RawBody::parse(deep.as_bytes()).unwrap();
        assert!(body.to_value().is_err());
    }
}
