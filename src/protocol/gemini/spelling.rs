//! The two spellings of a Gemini request's field names, made one: snake_case names of
//! the request's own structure become lowerCamelCase, so the translation reads one.
//!
//! Google's API is protobuf, and proto3 JSON parsers take a field's original name
//! (`inline_data`) as well as its lowerCamelCase one (`inlineData`); the google-genai
//! SDK (3.6.1, given a base URL) sends several nested fields in snake_case
//! (`inlineData.mime_type`, `fileData.file_uri`, `parameters_json_schema`,
//! `thinkingConfig.thinking_budget`). Rather than every read asking for both, a request
//! is renamed once, where a Gemini request is read ([`request`]), and the rest of the
//! code reads camelCase only.
//!
//! Only the keys of objects whose shape is Google's are renamed, walking down the
//! fields known to hold more of them; what the client wrote inside them is left as it
//! is: a JSON schema (`parametersJsonSchema`, `responseJsonSchema`), a schema's property
//! names, a call's `args`, a function's `response`, `labels`. When a key comes in both
//! spellings, the later one wins. A Gemini request to a Gemini source is not renamed: it
//! goes byte for byte, and Google takes both.

use serde_json::{Map, Value};

/// What an object in a Gemini request is, for what lies under its keys.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `GenerateContentRequest`, the body.
    Request,
    /// A `Content`: a turn, or `systemInstruction`.
    Content,
    /// A `Part` of a content.
    Part,
    /// A `functionResponse`, whose `response` is the client's.
    FunctionResponse,
    /// A part of a function response: media only.
    MediaPart,
    /// A `Tool`.
    Tool,
    /// A `FunctionDeclaration`.
    Declaration,
    /// `toolConfig`.
    ToolConfig,
    /// `generationConfig`.
    GenerationConfig,
    /// Google's OpenAPI-subset `Schema`.
    Schema,
    /// A schema's `properties`: the client's names, each naming a schema.
    Properties,
    /// An object of Google's with nothing of Google's shape under it (`inlineData`,
    /// `thinkingConfig`): its keys are renamed, its values left.
    Leaf,
}

/// The fields of `shape` (by their camelCase names) that hold more of Google's objects,
/// as one object or a list of them.
fn nested(shape: Shape) -> &'static [(&'static str, Shape)] {
    use Shape::*;
    match shape {
        Request => &[
            ("systemInstruction", Content),
            ("contents", Content),
            ("tools", Tool),
            ("toolConfig", ToolConfig),
            ("generationConfig", GenerationConfig),
            ("safetySettings", Leaf),
        ],
        Content => &[("parts", Part)],
        Part => &[
            ("inlineData", Leaf),
            ("fileData", Leaf),
            ("functionCall", Leaf),
            ("functionResponse", FunctionResponse),
            ("executableCode", Leaf),
            ("codeExecutionResult", Leaf),
            ("videoMetadata", Leaf),
        ],
        FunctionResponse => &[("parts", MediaPart)],
        MediaPart => &[("inlineData", Leaf), ("fileData", Leaf)],
        Tool => &[("functionDeclarations", Declaration)],
        Declaration => &[("parameters", Schema), ("response", Schema)],
        ToolConfig => &[("functionCallingConfig", Leaf)],
        GenerationConfig => &[("responseSchema", Schema), ("thinkingConfig", Leaf)],
        Schema => &[
            ("items", Schema),
            ("anyOf", Schema),
            ("properties", Properties),
        ],
        Properties | Leaf => &[],
    }
}

/// `snake_case` → `snakeCase`; a name without an inner underscore is kept.
fn camel(key: String) -> String {
    if key.starts_with('_') || !key.contains('_') {
        return key;
    }
    let mut out = String::with_capacity(key.len());
    for (i, word) in key.split('_').enumerate() {
        let mut chars = word.chars();
        match chars.next() {
            Some(c) if i > 0 => {
                out.extend(c.to_uppercase());
                out.push_str(chars.as_str());
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// Renames `v`, an object of `shape` or a list of them, and what lies under it.
fn rename(v: &mut Value, shape: Shape) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|x| rename(x, shape)),
        Value::Object(m) => {
            if let Shape::Properties = shape {
                m.values_mut().for_each(|x| rename(x, Shape::Schema));
                return;
            }
            if m.keys().any(|k| k.contains('_')) {
                // Rebuilt rather than renamed in place, so the keys keep their order.
                let old = std::mem::take(m);
                *m = old
                    .into_iter()
                    .map(|(k, x)| (camel(k), x))
                    .collect::<Map<_, _>>();
            }
            for (key, inner) in nested(shape) {
                if let Some(x) = m.get_mut(*key) {
                    rename(x, *inner);
                }
            }
        }
        _ => {}
    }
}

/// Renames a whole `generateContent` request.
pub(super) fn request(req: &mut Value) {
    rename(req, Shape::Request);
}

/// Renames a `generationConfig` alone.
pub(super) fn generation_config(gc: &mut Value) {
    rename(gc, Shape::GenerationConfig);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn googles_keys_are_renamed_and_the_clients_are_not() {
        let mut req = json!({
            "system_instruction": {"parts": [{"text": "s"}]},
            "contents": [{"role": "user", "parts": [
                {"inline_data": {"mime_type": "image/png", "data": "QQ=="}},
                {"function_call": {"name": "f", "args": {"file_path": "a"}}, "thought_signature": "s"},
                {"function_response": {"name": "f", "response": {"out_put": 1},
                    "parts": [{"file_data": {"file_uri": "u", "mime_type": "image/png"}}]}},
            ]}],
            "tools": [{"function_declarations": [{"name": "f",
                "parameters_json_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
                "parameters": {"type": "OBJECT", "property_ordering": ["b_b", "a_a"],
                    "properties": {"a_a": {"type": "ARRAY", "max_items": 2, "items": {"any_of": []}}, "b_b": {}}}}]}],
            "tool_config": {"function_calling_config": {"allowed_function_names": ["f"]}},
            "generation_config": {"max_output_tokens": 5, "response_json_schema": {"max_items": 1},
                "thinking_config": {"thinking_budget": 9}},
            "labels": {"team_name": "x"},
        });
        request(&mut req);
        assert_eq!(
            req,
            json!({
                "systemInstruction": {"parts": [{"text": "s"}]},
                "contents": [{"role": "user", "parts": [
                    {"inlineData": {"mimeType": "image/png", "data": "QQ=="}},
                    {"functionCall": {"name": "f", "args": {"file_path": "a"}}, "thoughtSignature": "s"},
                    {"functionResponse": {"name": "f", "response": {"out_put": 1},
                        "parts": [{"fileData": {"fileUri": "u", "mimeType": "image/png"}}]}},
                ]}],
                "tools": [{"functionDeclarations": [{"name": "f",
                    "parametersJsonSchema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
                    "parameters": {"type": "OBJECT", "propertyOrdering": ["b_b", "a_a"],
                        "properties": {"a_a": {"type": "ARRAY", "maxItems": 2, "items": {"anyOf": []}}, "b_b": {}}}}]}],
                "toolConfig": {"functionCallingConfig": {"allowedFunctionNames": ["f"]}},
                "generationConfig": {"maxOutputTokens": 5, "responseJsonSchema": {"max_items": 1},
                    "thinkingConfig": {"thinkingBudget": 9}},
                "labels": {"team_name": "x"},
            })
        );
        let keys: Vec<&String> = req.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "systemInstruction", "the order is kept");
    }
}
