//! A JSON schema made into one Anthropic's structured output takes.
//!
//! Claude's `output_config.format` takes a subset of JSON Schema and refuses the rest
//! with a 400 ("For 'integer' type, property 'minimum' is not supported"); a schema
//! from a Chat or Responses client (pydantic's, zod's) often has it. Anthropic's own
//! SDKs reshape a schema before they send it, and this does what they do: every
//! object closed (`additionalProperties: false`, required), `oneOf` as `anyOf`, the
//! keywords it does not take (`minimum`, `maxLength`, `pattern`, `default`, a string
//! format outside its list, `minItems` above 1) moved into the description, where the
//! model may still follow them. A type list (`["integer", "null"]`, which the SDKs
//! never send) becomes an `anyOf` of one type each.

use serde_json::{Map, Value, json};

/// String formats Anthropic takes.
const FORMATS: [&str; 10] = [
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "uri",
    "ipv4",
    "ipv6",
    "uuid",
];

/// `schema` reshaped for Anthropic's structured output.
pub(super) fn fit(schema: &Value) -> Value {
    let Some(given) = schema.as_object() else {
        return schema.clone();
    };
    let mut rest = given.clone();
    let mut out = Map::new();
    if let Some(Value::Object(defs)) = rest.shift_remove("$defs") {
        let defs = defs.iter().map(|(k, d)| (k.clone(), fit(d))).collect();
        out.insert("$defs".into(), Value::Object(defs));
    }
    if let Some(r) = rest.shift_remove("$ref") {
        out.insert("$ref".into(), r);
        if let Some(d) = rest.shift_remove("description") {
            out.insert("description".into(), d);
        }
        return Value::Object(out);
    }
    if let Some(Value::Array(types)) = rest.get("type") {
        return one_type_each(types.clone(), rest, out);
    }
    let kind = rest.shift_remove("type");
    // An `enum` of plain values or a `const` says the type itself: Anthropic takes it
    // without one.
    let primitive = |v: &Value| !v.is_object() && !v.is_array();
    let enumerated = rest
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty() && e.iter().all(primitive));
    let constant = rest.get("const").is_some_and(primitive);
    for (key, keep) in [("enum", enumerated), ("const", constant)] {
        if keep && let Some(v) = rest.shift_remove(key) {
            out.insert(key.into(), v);
        }
    }
    let literal = enumerated || constant;
    let kind = kind.filter(|_| !literal);
    let variants = |v: Value| match v {
        Value::Array(list) => Value::Array(list.iter().map(fit).collect()),
        other => other,
    };
    let (any, one, all) = (
        rest.shift_remove("anyOf"),
        rest.shift_remove("oneOf"),
        rest.shift_remove("allOf"),
    );
    if let Some(v) = any.or(one) {
        out.insert("anyOf".into(), variants(v));
    } else if let Some(v) = all {
        out.insert("allOf".into(), variants(v));
    } else if let Some(k) = &kind {
        out.insert("type".into(), k.clone());
    }
    for key in ["description", "title"] {
        if let Some(v) = rest.shift_remove(key) {
            out.insert(key.into(), v);
        }
    }
    match kind.as_ref().and_then(Value::as_str) {
        Some("object") => {
            let props = match rest.shift_remove("properties") {
                Some(Value::Object(p)) => p.iter().map(|(k, s)| (k.clone(), fit(s))).collect(),
                _ => Map::new(),
            };
            out.insert("properties".into(), Value::Object(props));
            rest.shift_remove("additionalProperties");
            out.insert("additionalProperties".into(), Value::Bool(false));
            if let Some(r) = rest.shift_remove("required") {
                out.insert("required".into(), r);
            }
        }
        Some("string") => {
            if let Some(f) = rest.get("format").and_then(Value::as_str)
                && FORMATS.contains(&f)
            {
                out.insert(
                    "format".into(),
                    rest.shift_remove("format").unwrap_or_default(),
                );
            }
        }
        Some("array") => {
            if let Some(items) = rest.shift_remove("items") {
                out.insert("items".into(), fit(&items));
            }
            if let Some(n) = rest.get("minItems")
                && (n == 0 || n == 1)
            {
                out.insert(
                    "minItems".into(),
                    rest.shift_remove("minItems").unwrap_or_default(),
                );
            }
        }
        _ => {}
    }
    // What is left Anthropic does not take: said in words, which the model may follow.
    if !rest.is_empty() {
        let said: Vec<String> = rest.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let said = format!("{{{}}}", said.join(", "));
        let description = match out.get("description").and_then(Value::as_str) {
            Some(d) => format!("{d}\n\n{said}"),
            None => said,
        };
        out.insert("description".into(), json!(description));
    }
    Value::Object(out)
}

/// A schema whose `type` is a list: an `anyOf` of the schema with one type each, the
/// rest of its keywords with the type they belong to (`properties` with `object`).
fn one_type_each(
    types: Vec<Value>,
    mut rest: Map<String, Value>,
    mut out: Map<String, Value>,
) -> Value {
    rest.shift_remove("type");
    if let Some(d) = rest.shift_remove("description") {
        out.insert("description".into(), d);
    }
    let variants = types.into_iter().map(|t| {
        let mut one = if t == "null" {
            Map::new()
        } else {
            rest.clone()
        };
        one.insert("type".into(), t);
        fit(&Value::Object(one))
    });
    out.insert("anyOf".into(), Value::Array(variants.collect()));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_anthropic_refuses_is_said_in_the_description() {
        let pydantic = json!({
            "$defs": {"Item": {"type": "object", "properties": {
                "qty": {"type": "integer", "minimum": 0, "maximum": 10, "title": "Qty"},
            }, "required": ["qty"]}},
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 5, "format": "email"},
                "tags": {"type": "object", "additionalProperties": {"type": "integer"}},
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "size": {"type": ["integer", "null"], "minimum": 1},
                "fixed": {"type": "string", "const": "x"},
            },
        });
        let fitted = fit(&pydantic);
        assert_eq!(
            fitted,
            json!({
                "$defs": {"Item": {"type": "object", "properties": {
                    "qty": {"type": "integer", "title": "Qty", "description": "{minimum: 0, maximum: 10}"},
                }, "additionalProperties": false, "required": ["qty"]}},
                "type": "object",
                "properties": {
                    "name": {"type": "string", "format": "email", "description": "{maxLength: 5}"},
                    "tags": {"type": "object", "properties": {}, "additionalProperties": false},
                    "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "description": "{minItems: 2}"},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "{default: null}"},
                    "kind": {"enum": ["a", "b"]},
                    "size": {"anyOf": [
                        {"type": "integer", "description": "{minimum: 1}"},
                        {"type": "null"},
                    ]},
                    "fixed": {"const": "x"},
                },
                "additionalProperties": false,
            })
        );
        // The order of a schema's properties is kept: a model fills them in that order.
        let names: Vec<_> = fitted["properties"].as_object().unwrap().keys().collect();
        assert_eq!(
            names,
            ["name", "tags", "items", "note", "kind", "size", "fixed"]
        );
    }
}
