//! What a client's request fields must be when a translation reads them: one of the
//! wrong type, or a word the translation does not know, is the client's 400, named, not
//! dropped without a word (a token cap lost so is money spent). A request copied to a
//! source of its own protocol is never read here: that source answers for itself.

use serde_json::{Number, Value};

use crate::error::Error;

/// What a field's value must be. Null passes as absent: SDKs send `max_tokens: null`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Must {
    /// A whole number, 0 or more: a token cap, a count.
    Count,
    /// A whole number, maybe negative (Gemini's `thinkingBudget: -1`).
    Integer,
    /// Any number: a temperature may be written `1`.
    Number,
    /// A string.
    Text,
    /// `true` or `false`.
    Flag,
    /// A list.
    List,
    /// An object.
    Object,
    /// A string or a list of strings: stop sequences.
    Stops,
    /// A string or a list: text, or text blocks.
    TextOrList,
    /// OpenAI's tool choice: `auto`, `none`, `required`, or an object.
    Choice,
    /// One of these words, written apart by spaces (a type, a mode): read as none
    /// given, an unknown one would change what was asked without a word. One string,
    /// not a list: each `&str` of a static list is a relocation the binary carries.
    OneOf(&'static str),
    /// Gemini's: as the kind, or written as a string (`"100"`), which proto3 JSON, and
    /// so Google, takes for a number; made the number for the translation.
    Proto(&'static Must),
}

impl Must {
    /// True when `v` is of this kind.
    fn holds(self, v: &Value) -> bool {
        match self {
            Must::Count => v.is_u64(),
            Must::Integer => v.is_i64() || v.is_u64(),
            Must::Number => v.is_number(),
            Must::Text => v.is_string(),
            Must::Flag => v.is_boolean(),
            Must::List => v.is_array(),
            Must::Object => v.is_object(),
            Must::Stops => {
                v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            }
            Must::TextOrList => v.is_string() || v.is_array(),
            Must::Choice => {
                v.is_object() || matches!(v.as_str(), Some("auto" | "none" | "required"))
            }
            Must::OneOf(words) => v.as_str().is_some_and(|s| words.split(' ').any(|w| w == s)),
            Must::Proto(must) => must.holds(v),
        }
    }

    /// What the kind is, for the message.
    fn words(self) -> String {
        (match self {
            Must::Count => "a non-negative integer",
            Must::Integer => "an integer",
            Must::Number => "a number",
            Must::Text => "a string",
            Must::Flag => "true or false",
            Must::List => "a list",
            Must::Object => "an object",
            Must::Stops => "a string or a list of strings",
            Must::TextOrList => "a string or a list",
            Must::Choice => "`auto`, `none`, `required` or an object",
            Must::OneOf(words) => return format!("one of `{}`", words.replace(' ', "`, `")),
            Must::Proto(must) => return must.words(),
        })
        .into()
    }
}

/// A reasoning effort, in OpenAI's words (`reasoning_effort`, `reasoning.effort`). An
/// unknown one was taken for the most thinking by an Anthropic source and for none by a
/// Gemini one.
pub(crate) const EFFORT: Must = Must::OneOf("none minimal low medium high xhigh");

/// Checks the `fields` of `req`, each named by its path as the client writes it
/// (`thinking.budget_tokens`) with what it must be: the first that is not is a 400
/// naming it. A table, not code, per protocol: the binary's size counts.
pub(crate) fn check(req: &mut Value, fields: &[(&'static str, Must)]) -> Result<(), Error> {
    for &(path, must) in fields {
        let Some(v) = path.split('.').try_fold(&mut *req, |v, key| v.get_mut(key)) else {
            continue;
        };
        if let (Must::Proto(_), Some(s)) = (must, v.as_str()) {
            // The parses the binary has already, not serde_json's number parser anew.
            let n = s.parse::<i64>().map(Number::from).ok();
            if let Some(n) = n.or_else(|| s.parse().ok().and_then(Number::from_f64)) {
                *v = Value::Number(n);
            }
        }
        if !v.is_null() && !must.holds(v) {
            return Err(Error::bad_field(path, format!("must be {}", must.words())));
        }
    }
    Ok(())
}

/// The error for a tool choice of one tool (of type `kind`) that does not name it.
pub(crate) fn nameless(kind: &str) -> Error {
    Error::bad_field("tool_choice", format!("of type `{kind}` needs a `name`"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Must, check};

    #[test]
    fn what_sdks_send_passes_and_a_wrong_type_is_named() {
        let ok = [
            (json!(null), Must::Count),
            (json!(100), Must::Count),
            (json!(-1), Must::Integer),
            (json!(1), Must::Number),
            (json!("END"), Must::Stops),
            (json!(["a", "b"]), Must::Stops),
            (json!("required"), Must::Choice),
            (json!({"type": "function"}), Must::Choice),
            (json!("any"), Must::OneOf("auto any")),
            (json!(-1), Must::Proto(&Must::Integer)),
        ];
        for (v, must) in &ok {
            assert!(
                check(&mut json!({"f": v}), &[("f", *must)]).is_ok(),
                "{v} as {must:?}"
            );
        }
        // Gemini's number written as a string is the number.
        let mut req = json!({"f": {"g": "100"}, "h": "-1"});
        let proto = [
            ("f.g", Must::Proto(&Must::Count)),
            ("h", Must::Proto(&Must::Integer)),
        ];
        check(&mut req, &proto).unwrap();
        assert_eq!(req, json!({"f": {"g": 100}, "h": -1}));
        let bad = [
            (json!("100"), Must::Count),
            (json!(-5), Must::Count),
            (json!(1.5), Must::Count),
            (json!({}), Must::Count),
            (json!(1.5), Must::Integer),
            (json!("hot"), Must::Number),
            (json!(["a", 1]), Must::Stops),
            (json!("any"), Must::Choice),
            (json!(7), Must::Text),
            (json!("anyy"), Must::OneOf("auto any")),
            (json!(7), Must::OneOf("auto any")),
            (json!("-1"), Must::Proto(&Must::Count)),
            (json!("1.5"), Must::Proto(&Must::Integer)),
            (json!("many"), Must::Proto(&Must::Count)),
        ];
        for (v, must) in &bad {
            let mut req = json!({"a": 1, "f": {"g": v}});
            let e = check(&mut req, &[("a", Must::Count), ("f.g", *must)]).unwrap_err();
            assert!(e.to_string().starts_with("`f.g` must be "), "{v}: {e}");
        }
    }
}
