//! Google Gemini (`generateContent`) ⇄ the chat hub: requests, answers, stream events and errors.
//!
//! Gemini speaks in `contents` (turns with a `role` of `user` or `model`) made of
//! `parts` (text, inline data, function calls and responses); the model is in the URL,
//! not the body, and a stream is a different method (`:streamGenerateContent`) rather
//! than a body field. Function calls usually carry no id, so ids are synthesised here,
//! from the turn's position, so that the same history always gets the same ids.
//!
//! Wire facts used, with their sources (Google's REST reference for
//! `generativelanguage.googleapis.com/v1beta` at ai.google.dev/api and the Vertex AI
//! reference pages, read in stored copies; the google-genai Python SDK 3.6.1 source,
//! `types.py`, `models.py`, `_api_client.py`, `_base_url.py`; gemini-cli 0.61.0
//! `bundle/`, both installed by `make check`):
//! - `POST {base}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`
//!   (each event `data: <GenerateContentResponse>`, no end marker: the last event has a
//!   `finishReason`), `:countTokens` → `{"totalTokens"}`; without `alt=sse` the stream is
//!   one JSON array of responses. The key is `x-goog-api-key` or `?key=` (SDK
//!   `_api_client.py` sets `x-goog-api-key`). Given a base URL (`http_options` or
//!   `GOOGLE_GEMINI_BASE_URL`), SDK 3.6.1 calls `/v1/models/…`, not `/v1beta` (measured).
//!   (source: ai.google.dev/api/generate-content)
//! - Request: `contents[{role, parts}]`, `systemInstruction` (a Content), `tools[{
//!   functionDeclarations[{name, description, parameters | parametersJsonSchema}]}]`,
//!   `toolConfig.functionCallingConfig{mode: AUTO|ANY|NONE|VALIDATED,
//!   allowedFunctionNames}`, `generationConfig{temperature, topP, topK, maxOutputTokens,
//!   stopSequences, candidateCount, seed, presencePenalty, frequencyPenalty,
//!   responseMimeType, responseSchema (OpenAPI subset, upper-case types) |
//!   responseJsonSchema (JSON Schema), thinkingConfig{thinkingBudget, includeThoughts,
//!   thinkingLevel}}`, `safetySettings`, `cachedContent`. (source:
//!   ai.google.dev/api/caching#Content, …/generate-content#generationconfig; SDK
//!   `GenerateContentConfig`)
//! - Parts: `{text}`, `{text, thought: true}` (a thought summary), `{inlineData{mimeType,
//!   data}}`, `{fileData{mimeType, fileUri}}`, `{functionCall{id?, name, args}}`,
//!   `{functionResponse{id?, name, response: <object>}}`, and `thoughtSignature` on any
//!   part. `FunctionCall.id` is optional and the Developer API usually leaves it out.
//!   Gemini 3 rejects a function-call turn without its signature; gemini-cli sends the
//!   placeholder `skip_thought_signature_validator` for history it did not get from
//!   Gemini, and so does this file. gemini-cli answers a call with
//!   `{functionResponse{id, name, response: {output}}}`, the id its own when the model
//!   gave none. (source: ai.google.dev/gemini-api/docs/thought-signatures; gemini-cli
//!   `createFunctionResponsePart`, `SYNTHETIC_THOUGHT_SIGNATURE`)
//! - Response: `candidates[{content{role: "model", parts}, finishReason, index}]`,
//!   `promptFeedback{blockReason}` (a blocked prompt has no candidates),
//!   `usageMetadata{promptTokenCount, candidatesTokenCount, thoughtsTokenCount,
//!   cachedContentTokenCount, toolUsePromptTokenCount, totalTokenCount}`, `modelVersion`,
//!   `responseId`. `finishReason`: STOP, MAX_TOKENS, SAFETY, RECITATION, LANGUAGE, OTHER,
//!   BLOCKLIST, PROHIBITED_CONTENT, SPII, MALFORMED_FUNCTION_CALL, IMAGE_SAFETY; a call
//!   ends with STOP, not a tool reason. `candidatesTokenCount` excludes thoughts.
//!   (source: ai.google.dev/api/generate-content#FinishReason, #UsageMetadata)
//! - Errors: `{"error": {"code": <HTTP status>, "message", "status": "INVALID_ARGUMENT" |
//!   "UNAUTHENTICATED" | "PERMISSION_DENIED" | "NOT_FOUND" | "RESOURCE_EXHAUSTED" |
//!   "INTERNAL" | "UNAVAILABLE" | "DEADLINE_EXCEEDED"}}`. (source:
//!   cloud.google.com/apis/design/errors)
//!
//! Choices where the references are silent: a chat `tool` message whose text is not a
//! JSON object is sent as `response: {"result": text}` (the SDK's own examples); a
//! response of one string field (`output`, `result`, `content`) comes back to chat as
//! that string; `topK` travels through the hub as `top_k` but is not sent to a chat
//! upstream (OpenAI refuses the field, and gemini-cli always sends `topK: 64`); a
//! safety block with nothing produced is a content-filter failure (the relay moves on,
//! as for other filters); after text has gone out it is the `content_filter` finish
//! reason.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::view::{self, Delta, First, Present, Text};
use super::{
    Decoded, ToolChoice, arguments_object, assistant_message, hub_chunk, now, text_of, usage_chunk,
};
use crate::error::Error;
use crate::sse::Event;

/// The placeholder signature Gemini 3 accepts on a function call it did not produce.
const SYNTHETIC_SIGNATURE: &str = "skip_thought_signature_validator";

/// Thinking budgets for the chat reasoning efforts.
const BUDGETS: [(&str, u64); 4] = [
    ("minimal", 512),
    ("low", 1024),
    ("medium", 8192),
    ("high", 24576),
];

/// Google's `status` name for an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 | 529 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// The Google error body: `{"error": {"code", "message", "status"}}`.
pub fn error_json(status: u16, message: &str) -> Value {
    json!({"error": {"code": status, "message": message, "status": status_name(status)}})
}

/// The path after `api_base` for a method (`generateContent`, `countTokens`, …) of `model`.
pub fn method_path(model: &str, method: &str) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    // Tuned models are addressed by their full resource name (`tunedModels/x`).
    let resource = if model.contains('/') {
        model.to_string()
    } else {
        format!("models/{model}")
    };
    let mut out = String::with_capacity(resource.len() + method.len() + 2);
    out.push('/');
    for b in resource.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/@:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push(':');
    out.push_str(method);
    out
}

/// The upstream path for a generation call, streamed as SSE or not.
pub fn endpoint(model: &str, stream: bool) -> String {
    if stream {
        method_path(model, "streamGenerateContent?alt=sse")
    } else {
        method_path(model, "generateContent")
    }
}

/// A function name as the safe tail of an id (Anthropic allows `[A-Za-z0-9_-]` only).
fn id_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The id given to call `j` of the model turn at `turn` when Gemini gave none: the same
/// history always yields the same ids.
fn synthetic_id(turn: usize, j: usize, name: &str) -> String {
    format!("call_{turn}_{j}_{}", id_safe(name))
}

/// A Gemini `finishReason` → chat `finish_reason`.
fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// A chat `finish_reason` → Gemini `finishReason`.
fn gemini_finish(finish: &str) -> &'static str {
    match finish {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

/// Why an answer produced nothing usable, if a safety block is the reason.
fn blocked(resp: &Value) -> Option<String> {
    let reason = resp["promptFeedback"]["blockReason"].as_str()?;
    Some(format!("content filter: the prompt was blocked ({reason})"))
}

/// The message of a safety stop that produced nothing.
fn filtered(reason: &str) -> String {
    format!("content filter: the answer was blocked ({reason})")
}

/// Gemini usage → chat usage (completion tokens include thoughts, as OpenAI counts them).
fn usage_to_chat(u: &Value) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let prompt = n("promptTokenCount") + n("toolUsePromptTokenCount");
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount") + thoughts;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": u["totalTokenCount"].as_u64().unwrap_or(prompt + completion),
        "prompt_tokens_details": {"cached_tokens": n("cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    })
}

/// Chat usage → Gemini `usageMetadata`.
fn usage_from_chat(u: &Value) -> Value {
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    let completion = u["completion_tokens"].as_u64().unwrap_or(0);
    let thoughts = u["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or(0)
        .min(completion);
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    let mut out = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion - thoughts,
        "totalTokenCount": u["total_tokens"].as_u64().unwrap_or(prompt + completion),
    });
    if thoughts > 0 {
        out["thoughtsTokenCount"] = json!(thoughts);
    }
    if cached > 0 {
        out["cachedContentTokenCount"] = json!(cached);
    }
    out
}

// ---- chat → Gemini (upstream requests) ----

/// Hub chat request → `generateContent` body (the model goes in the URL).
pub fn request_from_chat(chat: Value, _model: &str, provider: &str) -> Result<Value, Error> {
    let unsupported = |field: &str| Error::Unsupported {
        field: field.to_string(),
        provider: provider.to_string(),
    };
    super::refuse_chat_only(&chat, provider)?;
    let Some(list) = chat["messages"].as_array() else {
        return Err(Error::bad_request("`messages` must be an array"));
    };
    let mut system: Vec<String> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Tool call id → function name: a Gemini function response names its function.
    let mut names: HashMap<String, String> = HashMap::new();
    for m in list {
        let (role, parts) = match m["role"].as_str() {
            Some("system" | "developer") => {
                let text = text_of(&m["content"]);
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            Some("user") => ("user", user_parts(&m["content"], provider)?),
            Some("assistant") => ("model", model_parts(m, &mut names)?),
            Some("tool") => {
                let id = m["tool_call_id"].as_str().unwrap_or("");
                let Some(name) = names.get(id) else {
                    return Err(Error::bad_request(format!(
                        "tool result `{id}` answers no earlier tool call"
                    )));
                };
                let text = text_of(&m["content"]);
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"result": text}),
                };
                let mut fr = json!({"name": name, "response": response});
                if !id.is_empty() {
                    fr["id"] = json!(id);
                }
                let mut parts = vec![json!({"functionResponse": fr})];
                // A tool result's images and files go beside its response, in the
                // same turn, as Gemini takes a multimodal function result.
                if super::has_media(&m["content"])
                    && let Some(all) = m["content"].as_array()
                {
                    let media = all
                        .iter()
                        .filter(|p| p["type"] != "text")
                        .cloned()
                        .collect();
                    parts.extend(user_parts(&Value::Array(media), provider)?);
                }
                ("user", parts)
            }
            other => return Err(super::unknown_role(other)),
        };
        if parts.is_empty() {
            continue;
        }
        super::push_turn(&mut contents, role, "parts", parts);
    }
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system.join("\n\n")}]}),
        );
    }
    let config = generation_config(&chat);
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = chat["tools"].as_array() {
        let mut decls = Vec::new();
        for t in tools {
            if t["type"] != "function" {
                return Err(unsupported("tools"));
            }
            let f = &t["function"];
            let mut d = json!({"name": f["name"]});
            if let Some(desc) = f["description"].as_str() {
                d["description"] = json!(desc);
            }
            if f["parameters"].is_object() {
                // JSON Schema as is; `parameters` takes only Google's OpenAPI subset.
                d["parametersJsonSchema"] = f["parameters"].clone();
            }
            decls.push(d);
        }
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    let calling = ToolChoice::of_chat(&chat).map(|c| match c {
        ToolChoice::Auto => json!({"mode": "AUTO"}),
        ToolChoice::Required => json!({"mode": "ANY"}),
        ToolChoice::Never => json!({"mode": "NONE"}),
        ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
    });
    if let Some(c) = calling {
        out.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
    }
    Ok(Value::Object(out))
}

/// The chat sampling fields as a `generationConfig`.
fn generation_config(chat: &Value) -> Map<String, Value> {
    let mut gc = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if !chat[from].is_null() {
            gc.insert(to.into(), chat[from].clone());
        }
    }
    if let Some(n) = chat["max_completion_tokens"]
        .as_u64()
        .or(chat["max_tokens"].as_u64())
    {
        gc.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(stop) = super::stop_list(chat) {
        gc.insert("stopSequences".into(), stop);
    }
    let rf = &chat["response_format"];
    match rf["type"].as_str() {
        Some("json_schema") => {
            gc.insert("responseMimeType".into(), json!("application/json"));
            if rf["json_schema"]["schema"].is_object() {
                gc.insert(
                    "responseJsonSchema".into(),
                    rf["json_schema"]["schema"].clone(),
                );
            }
        }
        Some("json_object") => {
            gc.insert("responseMimeType".into(), json!("application/json"));
        }
        _ => {}
    }
    if let Some(effort) = chat["reasoning_effort"].as_str()
        && let Some((_, budget)) = BUDGETS.iter().find(|(e, _)| *e == effort)
    {
        gc.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": budget, "includeThoughts": true}),
        );
    }
    gc
}

/// Chat user content → Gemini parts.
fn user_parts(content: &Value, provider: &str) -> Result<Vec<Value>, Error> {
    match content {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Null => Ok(Vec::new()),
        // An empty text part says nothing, and Google refuses one.
        Value::Array(parts) => parts
            .iter()
            .filter(|p| !(p["type"] == "text" && p["text"] == ""))
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(json!({"text": p["text"]})),
                Some("image_url") => Ok(media_part(super::image_url(p))),
                Some("file") => {
                    let (mime, data) = super::inline_file(p, provider)?;
                    Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
                }
                other => Err(Error::Unsupported {
                    field: format!("content part `{}`", other.unwrap_or("?")),
                    provider: provider.to_string(),
                }),
            })
            .collect(),
        _ => Err(Error::bad_request(
            "message `content` must be a string or an array",
        )),
    }
}

/// An image URL as a part: a data URL becomes `inlineData`, anything else `fileData`.
fn media_part(url: &str) -> Value {
    if let Some((mime, data)) = super::data_url(url) {
        return json!({"inlineData": {"mimeType": mime, "data": data}});
    }
    let lower = url.to_ascii_lowercase();
    let mime = [
        (".png", "image/png"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
        (".pdf", "application/pdf"),
    ]
    .iter()
    .find(|(ext, _)| lower.ends_with(ext))
    .map_or("image/jpeg", |(_, m)| m);
    json!({"fileData": {"mimeType": mime, "fileUri": url}})
}

/// A chat assistant message → model parts; remembers each call's function name.
fn model_parts(m: &Value, names: &mut HashMap<String, String>) -> Result<Vec<Value>, Error> {
    let mut parts = Vec::new();
    let text = text_of(&m["content"]);
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    for (j, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
        let name = call["function"]["name"].as_str().unwrap_or("");
        let args = call["function"]["arguments"].as_str().unwrap_or("{}");
        if !args.trim().is_empty() && serde_json::from_str::<Value>(args).is_err() {
            return Err(Error::bad_request(format!(
                "tool call `{}` has arguments that are not valid JSON",
                call["id"].as_str().unwrap_or("?")
            )));
        }
        let mut fc = json!({"name": name, "args": arguments_object(args)});
        if let Some(id) = call["id"].as_str() {
            fc["id"] = json!(id);
            names.insert(id.to_string(), name.to_string());
        }
        let mut part = json!({"functionCall": fc});
        if j == 0 {
            part["thoughtSignature"] = json!(SYNTHETIC_SIGNATURE);
        }
        parts.push(part);
    }
    Ok(parts)
}

// ---- Gemini → chat (upstream answers) ----

/// The text, thoughts and calls of a candidate's parts; `ids` names calls without an id.
fn read_parts(parts: &Value, first_index: usize, ids: &str) -> (String, String, Vec<Value>) {
    let (mut text, mut thoughts, mut calls) = (String::new(), String::new(), Vec::new());
    for p in parts.as_array().into_iter().flatten() {
        if let Some(t) = p["text"].as_str() {
            if p["thought"] == json!(true) {
                thoughts.push_str(t);
            } else {
                text.push_str(t);
            }
        }
        let fc = &p["functionCall"];
        if fc.is_object() {
            let name = fc["name"].as_str().unwrap_or("");
            let index = first_index + calls.len();
            let id = fc["id"]
                .as_str()
                .map_or_else(|| format!("call_{ids}_{index}"), str::to_string);
            let args = if fc["args"].is_object() {
                fc["args"].to_string()
            } else {
                "{}".to_string()
            };
            calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}));
        }
    }
    (text, thoughts, calls)
}

/// A prefix for the ids of calls in one answer: its `responseId`, else the clock.
fn id_prefix(resp: &Value) -> String {
    match resp["responseId"].as_str() {
        Some(id) if !id.is_empty() => id_safe(id),
        _ => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{nanos:x}")
        }
    }
}

/// The content-filter reason of a `generateContent` answer that a safety block emptied:
/// a blocked prompt, or a safety stop with nothing produced.
fn block_reason(resp: &Value) -> Option<String> {
    if let Some(reason) = blocked(resp) {
        return Some(reason);
    }
    let cand = resp["candidates"].get(0)?;
    let reason = cand["finishReason"].as_str()?;
    let (text, _, calls) = read_parts(&cand["content"]["parts"], 0, "");
    (finish_reason(reason, false) == "content_filter" && text.is_empty() && calls.is_empty())
        .then(|| filtered(reason))
}

/// The block reason (see `block_reason`) of an answer's bytes, for an answer relayed unchanged.
pub fn blocked_answer(body: &[u8]) -> Option<String> {
    block_reason(&serde_json::from_slice(body).ok()?)
}

/// A `generateContent` answer → hub chat completion. A safety block with nothing
/// produced is an error whose message says `content filter`, so the relay moves on.
pub fn response_to_chat(resp: Value) -> Result<Value, Error> {
    let failed = |reason: String| Error::Upstream {
        provider: "gemini".into(),
        reason,
    };
    if let Some(reason) = block_reason(&resp) {
        return Err(failed(reason));
    }
    let Some(cand) = resp["candidates"].get(0) else {
        return Err(failed("the answer has no candidates".into()));
    };
    let (text, thoughts, calls) = read_parts(&cand["content"]["parts"], 0, &id_prefix(&resp));
    let reason = cand["finishReason"].as_str().unwrap_or("STOP");
    let finish = finish_reason(reason, !calls.is_empty());
    Ok(json!({
        "id": resp["responseId"].as_str().unwrap_or("gemini"),
        "object": "chat.completion", "created": now(), "model": resp["modelVersion"],
        "choices": [{"index": 0, "message": assistant_message(text, thoughts, calls), "finish_reason": finish}],
        "usage": usage_to_chat(&resp["usageMetadata"]),
    }))
}

/// Decodes a `streamGenerateContent?alt=sse` stream into hub chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    id: String,
    model: String,
    created: u64,
    /// Something went to the client already (the role chunk with it).
    started: bool,
    /// Tool calls announced so far.
    tools: usize,
    /// Prefix for synthesised call ids.
    ids: String,
    usage: Value,
    /// The running `usageMetadata` of the last event [`delta`] read, as sent: newer than
    /// `usage` when not empty (read only if the last event carries none of its own).
    viewed_usage: String,
}

impl Decoder {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        hub_chunk(&self.id, self.created, &self.model, delta, finish)
    }

    /// Decodes one upstream event; the event with a `finishReason` is the last.
    pub fn event(&mut self, ev: &Event) -> Decoded {
        let Some(data) = ev.data.as_deref() else {
            return Decoded::Chunks(Vec::new());
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return Decoded::Malformed;
        };
        if v["error"].is_object() {
            let e = &v["error"];
            return Decoded::Failed {
                status: e["code"]
                    .as_u64()
                    .filter(|c| (400..600).contains(c))
                    .map_or(502, |c| c as u16),
                message: e["message"]
                    .as_str()
                    .unwrap_or("upstream error")
                    .to_string(),
            };
        }
        if let Some(reason) = blocked(&v) {
            return Decoded::Failed {
                status: 400,
                message: reason,
            };
        }
        if self.id.is_empty() {
            self.id = v["responseId"].as_str().unwrap_or("gemini").to_string();
            self.model = v["modelVersion"].as_str().unwrap_or("").to_string();
            self.created = now();
            self.ids = id_prefix(&v);
        }
        if v["usageMetadata"].is_object() {
            self.usage = v["usageMetadata"].clone();
            self.viewed_usage.clear();
        }
        let cand = &v["candidates"][0];
        let (text, thoughts, calls) = read_parts(&cand["content"]["parts"], self.tools, &self.ids);
        let reason = cand["finishReason"].as_str();
        let mut delta = Map::new();
        if !thoughts.is_empty() {
            delta.insert("reasoning_content".into(), json!(thoughts));
        }
        if !text.is_empty() {
            delta.insert("content".into(), json!(text));
        }
        if !calls.is_empty() {
            let indexed: Vec<Value> = calls
                .into_iter()
                .enumerate()
                .map(|(j, mut c)| {
                    c["index"] = json!(self.tools + j);
                    c
                })
                .collect();
            self.tools += indexed.len();
            delta.insert("tool_calls".into(), Value::Array(indexed));
        }
        let mut out = Vec::new();
        if !delta.is_empty() {
            if !self.started {
                delta.insert("role".into(), json!("assistant"));
            }
            self.started = true;
            out.push(self.chunk(Value::Object(delta), None));
        }
        let Some(reason) = reason else {
            return Decoded::Chunks(out);
        };
        let finish = finish_reason(reason, self.tools > 0);
        if finish == "content_filter" && !self.started {
            return Decoded::Failed {
                status: 400,
                message: filtered(reason),
            };
        }
        out.push(self.chunk(json!({}), Some(finish)));
        if !self.viewed_usage.is_empty() {
            self.usage = serde_json::from_str(&self.viewed_usage).unwrap_or_default();
        }
        if !self.usage.is_null() {
            let usage = usage_to_chat(&self.usage);
            out.push(usage_chunk(&self.id, self.created, &self.model, usage));
        }
        Decoded::End(out)
    }
}

/// What the relay reads of an ordinary event of a copied stream (see [`view`]): its
/// text and thoughts. `None` for what [`Decoder::event`] must read: the first event
/// (the decoder's ids come from it), a function call (the decoder numbers them), the
/// last event (its `finishReason`), a block or an error. Gemini repeats the running
/// `usageMetadata` on every event; the decoder keeps the latest, from here too.
///
/// [`view`]: super::view
pub fn delta<'a>(decoder: &mut Decoder, ev: &'a Event) -> Option<Delta<'a>> {
    if decoder.id.is_empty() {
        return None;
    }
    let event: EventView<'_> = view::object(ev, &[])?;
    if event.error.0 || event.prompt_feedback.0 {
        return None;
    }
    let (text, thoughts) = match event.candidates.0 {
        None => (Cow::Borrowed(""), Cow::Borrowed("")),
        Some(CandidateView {
            finish: Present(true),
            ..
        }) => return None,
        Some(CandidateView { content, .. }) => {
            let parts = content.map(|c| c.parts).unwrap_or_default();
            if parts.call {
                return None;
            }
            (parts.text, parts.thoughts)
        }
    };
    // Kept as text: the last event usually carries the final count, and then this one
    // is never read as a value.
    if let Some(u) = event.usage.map(RawValue::get)
        && u.starts_with('{')
    {
        decoder.viewed_usage.clear();
        decoder.viewed_usage.push_str(u);
    }
    let filled = |t: Cow<'a, str>| (!t.is_empty()).then_some(t);
    Some(Delta::text(filled(text), filled(thoughts)))
}

/// The fields of an event [`delta`] looks at; serde skips the others unread.
#[derive(Deserialize)]
struct EventView<'a> {
    #[serde(default)]
    error: Present,
    #[serde(default, rename = "promptFeedback")]
    prompt_feedback: Present,
    #[serde(default, borrow)]
    candidates: First<CandidateView<'a>>,
    #[serde(borrow, rename = "usageMetadata")]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CandidateView<'a> {
    #[serde(borrow)]
    content: Option<ContentView<'a>>,
    #[serde(default, rename = "finishReason")]
    finish: Present,
}

#[derive(Deserialize)]
struct ContentView<'a> {
    #[serde(default, borrow)]
    parts: Parts<'a>,
}

/// A candidate's parts folded as [`read_parts`] reads them: text and thoughts each run
/// together (borrowed when there is one piece), and whether any is a function call.
#[derive(Default)]
struct Parts<'a> {
    text: Cow<'a, str>,
    thoughts: Cow<'a, str>,
    call: bool,
}

#[derive(Deserialize)]
struct PartView<'a> {
    #[serde(borrow)]
    text: Option<Text<'a>>,
    thought: Option<bool>,
    #[serde(default, rename = "functionCall")]
    call: Present,
}

impl<'de: 'a, 'a> Deserialize<'de> for Parts<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Parts<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of parts")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parts<'a>, A::Error> {
                let mut parts = Parts::default();
                while let Some(p) = seq.next_element::<PartView<'de>>()? {
                    parts.call |= p.call.0;
                    let Some(Text(t)) = p.text else { continue };
                    let into = if p.thought == Some(true) {
                        &mut parts.thoughts
                    } else {
                        &mut parts.text
                    };
                    if into.is_empty() {
                        *into = t;
                    } else {
                        into.to_mut().push_str(&t);
                    }
                }
                Ok(parts)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

// ---- Gemini client → chat (inbound requests) ----

/// The text of a `systemInstruction`: a Content, a list of parts, or a plain string.
fn instruction_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(_) => text_of(&v["parts"]),
        Value::Array(_) => text_of(v),
        _ => String::new(),
    }
}

/// Google's OpenAPI-subset schema (upper-case `type`) as JSON Schema.
fn json_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| match (k.as_str(), x) {
                    ("type", Value::String(t)) => (k.clone(), json!(t.to_ascii_lowercase())),
                    _ => (k.clone(), json_schema(x)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

/// A function response's payload as chat tool content: a lone string field unwrapped.
fn response_text(response: &Value) -> String {
    if let Some(m) = response.as_object()
        && m.len() == 1
        && let Some(s) = ["output", "result", "content"]
            .iter()
            .find_map(|k| m.get(*k).and_then(Value::as_str))
    {
        return s.to_string();
    }
    match response {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An `inlineData` blob as a chat part: an image as an image, anything else (a PDF) as
/// a file.
fn inline_part(d: &Value) -> Value {
    let mime = d["mimeType"].as_str().unwrap_or("application/octet-stream");
    let url = super::to_data_url(mime, d["data"].as_str().unwrap_or(""));
    if mime.starts_with("image/") {
        json!({"type": "image_url", "image_url": {"url": url}})
    } else {
        super::file_part(None, url)
    }
}

/// A `generateContent` request from a client → hub chat request. `stream` comes from
/// the method in the URL, since Gemini bodies do not say.
pub fn request_to_chat(req: Value, stream: bool) -> Result<Value, Error> {
    if !req["cachedContent"].is_null() {
        return Err(Error::bad_request(
            "`cachedContent` needs a Gemini upstream; send the full conversation in `contents` instead",
        ));
    }
    let Some(contents) = req["contents"].as_array() else {
        return Err(Error::bad_request(
            "`contents` is required: a list of {role, parts}",
        ));
    };
    let mut messages: Vec<Value> = Vec::new();
    let system = instruction_text(&req["systemInstruction"]);
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    // The calls of the last model turn, (name, id, answered), to pair responses with.
    let mut pending: Vec<(String, String, bool)> = Vec::new();
    for (turn, c) in contents.iter().enumerate() {
        let parts = match &c["parts"] {
            Value::Array(p) => p.as_slice(),
            Value::Null => &[],
            _ => return Err(Error::bad_request("`parts` of a content must be a list")),
        };
        match c["role"].as_str().unwrap_or("user") {
            "model" => {
                let mut text = String::new();
                let mut calls = Vec::new();
                pending.clear();
                for p in parts {
                    if let Some(t) = p["text"].as_str()
                        && p["thought"] != json!(true)
                    {
                        text.push_str(t);
                    }
                    let fc = &p["functionCall"];
                    if fc.is_object() {
                        let name = fc["name"].as_str().unwrap_or("").to_string();
                        let id = fc["id"]
                            .as_str()
                            .map_or_else(|| synthetic_id(turn, calls.len(), &name), str::to_string);
                        let args = if fc["args"].is_object() {
                            fc["args"].to_string()
                        } else {
                            "{}".into()
                        };
                        calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}));
                        pending.push((name, id, false));
                    }
                }
                if text.is_empty() && calls.is_empty() {
                    continue;
                }
                messages.push(assistant_message(text, String::new(), calls));
            }
            "user" | "function" | "tool" => {
                let mut other = Vec::new();
                for (j, p) in parts.iter().enumerate() {
                    let fr = &p["functionResponse"];
                    if fr.is_object() {
                        let name = fr["name"].as_str().unwrap_or("");
                        let id = pair_response(&mut pending, fr["id"].as_str(), name)
                            .unwrap_or_else(|| synthetic_id(turn, j, name));
                        // Gemini 3 nests a function result's images in its `parts`.
                        let text = response_text(&fr["response"]);
                        let media: Vec<Value> = fr["parts"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|p| p["inlineData"].is_object())
                            .map(|p| inline_part(&p["inlineData"]))
                            .collect();
                        let content = if media.is_empty() {
                            json!(text)
                        } else {
                            let mut parts = vec![json!({"type": "text", "text": text})];
                            parts.extend(media);
                            Value::Array(parts)
                        };
                        messages
                            .push(json!({"role": "tool", "tool_call_id": id, "content": content}));
                    } else if let Some(t) = p["text"].as_str() {
                        other.push(json!({"type": "text", "text": t}));
                    } else if p["inlineData"].is_object() {
                        other.push(inline_part(&p["inlineData"]));
                    } else if p["fileData"].is_object() {
                        // Chat takes an image by URL, but no other file by URL.
                        let f = &p["fileData"];
                        match f["mimeType"].as_str() {
                            Some(mime) if !mime.starts_with("image/") => {
                                return Err(Error::bad_request(format!(
                                    "a `fileData` part of type `{mime}` (a file by URI) can go only to a Gemini source; send it inline as `inlineData`"
                                )));
                            }
                            _ => other.push(
                                json!({"type": "image_url", "image_url": {"url": f["fileUri"]}}),
                            ),
                        }
                    }
                }
                if other.is_empty() {
                    continue;
                }
                let content = if other.iter().all(|p| p["type"] == "text") {
                    json!(text_of(&Value::Array(other)))
                } else {
                    Value::Array(other)
                };
                messages.push(json!({"role": "user", "content": content}));
            }
            role => {
                return Err(Error::bad_request(format!(
                    "unknown content role `{role}`; expected `user` or `model`"
                )));
            }
        }
    }
    let mut out = json!({"messages": messages});
    if stream {
        out["stream"] = json!(true);
        out["stream_options"] = json!({"include_usage": true});
    }
    let gc = &req["generationConfig"];
    for (from, to) in [
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("topK", "top_k"),
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
        ("maxOutputTokens", "max_tokens"),
        ("stopSequences", "stop"),
    ] {
        if !gc[from].is_null() {
            out[to] = gc[from].clone();
        }
    }
    if let Some(n) = gc["candidateCount"].as_u64().filter(|n| *n > 1) {
        out["n"] = json!(n);
    }
    if gc["responseMimeType"] == "application/json" {
        let schema = if gc["responseJsonSchema"].is_object() {
            Some(gc["responseJsonSchema"].clone())
        } else if gc["responseSchema"].is_object() {
            Some(json_schema(&gc["responseSchema"]))
        } else {
            None
        };
        out["response_format"] = match schema {
            Some(s) => {
                json!({"type": "json_schema", "json_schema": {"name": "response", "schema": s}})
            }
            None => json!({"type": "json_object"}),
        };
    }
    let thinking = &gc["thinkingConfig"];
    let effort = match (
        thinking["thinkingLevel"].as_str(),
        thinking["thinkingBudget"].as_i64(),
    ) {
        (Some(level), _) => Some(level.to_ascii_lowercase()),
        (None, Some(b)) if b > 0 => Some(
            match b {
                ..=2048 => "low",
                2049..=8192 => "medium",
                _ => "high",
            }
            .to_string(),
        ),
        _ => None,
    };
    if let Some(e) = effort {
        out["reasoning_effort"] = json!(e);
    }
    let mut tools = Vec::new();
    for t in req["tools"].as_array().into_iter().flatten() {
        // Built-in tools (googleSearch, codeExecution, urlContext) exist only on a Gemini
        // upstream; leaving them out only narrows what the model may call.
        for d in t["functionDeclarations"].as_array().into_iter().flatten() {
            let params = if d["parametersJsonSchema"].is_object() {
                d["parametersJsonSchema"].clone()
            } else if d["parameters"].is_object() {
                json_schema(&d["parameters"])
            } else {
                json!({"type": "object", "properties": {}})
            };
            let mut f = json!({"name": d["name"], "parameters": params});
            if let Some(desc) = d["description"].as_str() {
                f["description"] = json!(desc);
            }
            tools.push(json!({"type": "function", "function": f}));
        }
    }
    if !tools.is_empty() {
        out["tools"] = Value::Array(tools);
    }
    let fcc = &req["toolConfig"]["functionCallingConfig"];
    let allowed = fcc["allowedFunctionNames"].as_array();
    let choice = match fcc["mode"].as_str() {
        Some("NONE") => Some(ToolChoice::Never),
        // One allowed function is a named choice; several, chat's nearest: any tool.
        Some("ANY") => match allowed.map(Vec::as_slice) {
            Some([one]) => Some(ToolChoice::Function(one.as_str().ok_or_else(|| {
                Error::bad_request("`allowedFunctionNames` must list function names")
            })?)),
            _ => Some(ToolChoice::Required),
        },
        Some("AUTO" | "VALIDATED") => Some(ToolChoice::Auto),
        _ => None,
    };
    if let Some(c) = choice {
        out["tool_choice"] = c.to_chat();
    }
    Ok(out)
}

/// The id of the pending call a function response answers: by id, else the first
/// unanswered call of that name (gemini-cli makes up its own ids when Gemini gave none).
fn pair_response(
    pending: &mut [(String, String, bool)],
    id: Option<&str>,
    name: &str,
) -> Option<String> {
    let slot = id
        .and_then(|id| pending.iter().position(|(_, p, _)| p == id))
        .or_else(|| pending.iter().position(|(n, _, done)| n == name && !done));
    match slot {
        Some(i) => {
            pending[i].2 = true;
            Some(pending[i].1.clone())
        }
        None => id.map(str::to_string),
    }
}

// ---- chat → Gemini client (inbound answers) ----

/// The parts of a hub assistant message.
fn answer_parts(msg: &Value) -> Vec<Value> {
    let mut parts = Vec::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
        parts.push(json!({"text": r, "thought": true}));
    }
    let text = text_of(&msg["content"]);
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        parts.push(function_call(
            &call["id"],
            &call["function"]["name"],
            call["function"]["arguments"].as_str().unwrap_or("{}"),
        ));
    }
    parts
}

/// A `functionCall` part.
fn function_call(id: &Value, name: &Value, args: &str) -> Value {
    let mut fc = json!({"name": name, "args": arguments_object(args)});
    if id.is_string() {
        fc["id"] = id.clone();
    }
    json!({"functionCall": fc})
}

/// One `GenerateContentResponse` with these parts.
fn response(parts: Vec<Value>, id: &str, model: &str) -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
        "modelVersion": model,
        "responseId": id,
    })
}

/// Hub chat completion → `generateContent` answer.
pub fn response_from_chat(chat: Value) -> Value {
    let choice = &chat["choices"][0];
    let mut parts = answer_parts(&choice["message"]);
    if parts.is_empty() {
        parts.push(json!({"text": ""}));
    }
    let mut out = response(
        parts,
        chat["id"].as_str().unwrap_or("routeplane"),
        chat["model"].as_str().unwrap_or(""),
    );
    out["candidates"][0]["finishReason"] = json!(gemini_finish(
        choice["finish_reason"].as_str().unwrap_or("stop")
    ));
    out["usageMetadata"] = usage_from_chat(&chat["usage"]);
    out
}

/// A tool call whose argument fragments are still arriving.
#[derive(Debug, Default)]
struct PendingCall {
    id: Value,
    name: Value,
    args: String,
}

/// Writes hub chunks to a Gemini client as `GenerateContentResponse` events. Text goes
/// out as it comes; a function call goes out whole at the end, since Gemini's parts
/// carry complete arguments.
#[derive(Debug)]
pub struct Encoder {
    model: String,
    id: String,
    /// Tool calls by their chat index.
    calls: Vec<PendingCall>,
    finish: String,
    usage: Value,
}

impl Encoder {
    /// An encoder that names `model` in its events.
    pub fn new(model: &str) -> Encoder {
        Encoder {
            model: model.to_string(),
            id: String::new(),
            calls: Vec::new(),
            finish: "stop".into(),
            usage: Value::Null,
        }
    }

    fn event(&self, parts: Vec<Value>) -> Event {
        Event::data(response(parts, &self.id, &self.model).to_string())
    }

    /// Learns the `responseId` and `modelVersion` a same-protocol stream showed the
    /// client, so a continuation's events carry them too. Only until they are known:
    /// the rest of a stream is not parsed.
    pub fn observe(&mut self, ev: &Event) {
        if !self.id.is_empty() {
            return;
        }
        let Some(v) = ev
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
        else {
            return;
        };
        if let Some(id) = v["responseId"].as_str() {
            self.id = id.to_string();
            if let Some(m) = v["modelVersion"].as_str() {
                self.model = m.to_string();
            }
        }
    }

    /// Encodes one chunk.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        if self.id.is_empty()
            && let Some(id) = chunk["id"].as_str()
        {
            self.id = id.to_string();
        }
        if chunk["usage"].is_object() {
            self.usage = chunk["usage"].clone();
        }
        let choice = &chunk["choices"][0];
        let d = &choice["delta"];
        let mut parts = Vec::new();
        if let Some(r) = d["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
            parts.push(json!({"text": r, "thought": true}));
        }
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            parts.push(json!({"text": t}));
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0) as usize;
            if index > 1024 {
                continue;
            }
            if self.calls.len() <= index {
                self.calls.resize_with(index + 1, PendingCall::default);
            }
            let slot = &mut self.calls[index];
            if call["id"].is_string() {
                slot.id = call["id"].clone();
            }
            if call["function"]["name"].is_string() {
                slot.name = call["function"]["name"].clone();
            }
            slot.args
                .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = f.to_string();
        }
        if parts.is_empty() {
            return Vec::new();
        }
        vec![self.event(parts)]
    }

    /// The last event: whole function calls, the finish reason and usage.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut parts: Vec<Value> = self
            .calls
            .iter()
            .filter(|c| c.name.is_string())
            .map(|c| function_call(&c.id, &c.name, &c.args))
            .collect();
        if parts.is_empty() {
            parts.push(json!({"text": ""}));
        }
        let mut last = response(parts, &self.id, &self.model);
        last["candidates"][0]["finishReason"] = json!(gemini_finish(&self.finish));
        if !self.usage.is_null() {
            last["usageMetadata"] = usage_from_chat(&self.usage);
        }
        vec![Event::data(last.to_string())]
    }

    /// An error event in Google's shape.
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Event> {
        vec![Event::data(error_json(status, message).to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::{decode_all, fold};

    fn decode(evs: &[Event]) -> (Vec<Value>, bool) {
        decode_all(crate::protocol::Decoder::Gemini(Decoder::default()), evs)
    }

    #[test]
    fn paths_carry_the_model_and_the_method() {
        assert_eq!(
            endpoint("gemini-2.5-flash", false),
            "/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            endpoint("models/gemini-2.5-flash", true),
            "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            method_path("tunedModels/mine", "countTokens"),
            "/tunedModels/mine:countTokens"
        );
        assert_eq!(
            method_path("a b", "generateContent"),
            "/models/a%20b:generateContent"
        );
    }

    #[test]
    fn chat_request_becomes_generate_content() {
        let chat = json!({
            "model": "x", "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop": "END",
            "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                    {"id": "t2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "one"},
                {"role": "tool", "tool_call_id": "t2", "content": "{\"n\":2}"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "additionalProperties": false}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        });
        let out = request_from_chat(chat, "gemini-x", "p").unwrap();
        assert!(out.get("model").is_none(), "the model is in the URL");
        assert_eq!(
            out["systemInstruction"],
            json!({"parts": [{"text": "be brief"}]})
        );
        let c = out["contents"].as_array().unwrap();
        assert_eq!(c.len(), 3, "both responses in one turn: {c:?}");
        assert_eq!(
            c[0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/png", "data": "AAAA"}})
        );
        assert_eq!(c[1]["role"], "model");
        assert_eq!(
            c[1]["parts"][0]["functionCall"],
            json!({"id": "t1", "name": "f", "args": {"a": 1}})
        );
        assert_eq!(c[1]["parts"][0]["thoughtSignature"], SYNTHETIC_SIGNATURE);
        assert!(c[1]["parts"][1].get("thoughtSignature").is_none());
        assert_eq!(c[1]["parts"][1]["functionCall"]["args"], json!({}));
        assert_eq!(
            c[2]["parts"][0]["functionResponse"],
            json!({"id": "t1", "name": "f", "response": {"result": "one"}})
        );
        assert_eq!(
            c[2]["parts"][1]["functionResponse"]["response"],
            json!({"n": 2})
        );
        let gc = &out["generationConfig"];
        assert_eq!(gc["maxOutputTokens"], 50);
        assert_eq!(gc["topP"], 0.9);
        assert_eq!(gc["topK"], 40);
        assert_eq!(gc["stopSequences"], json!(["END"]));
        assert_eq!(gc["responseMimeType"], "application/json");
        assert_eq!(gc["responseJsonSchema"], json!({"type": "object"}));
        assert_eq!(gc["thinkingConfig"]["thinkingBudget"], 1024);
        assert_eq!(
            out["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["additionalProperties"],
            false
        );
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}})
        );
        let orphan = json!({"messages": [{"role": "tool", "tool_call_id": "zz", "content": "x"}]});
        assert!(request_from_chat(orphan, "m", "p").is_err());
        assert!(request_from_chat(json!({"messages": [], "n": 2}), "m", "p").is_err());
    }

    #[test]
    fn answer_becomes_chat_with_ids_usage_and_reasoning() {
        let resp = json!({"responseId": "r1", "modelVersion": "gemini-x",
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "hmm", "thought": true}, {"text": "ok"},
                {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "sig"}]},
                "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 4, "cachedContentTokenCount": 2, "totalTokenCount": 17}});
        let chat = response_to_chat(resp).unwrap();
        let m = &chat["choices"][0]["message"];
        assert_eq!(m["content"], "ok");
        assert_eq!(m["reasoning_content"], "hmm");
        assert_eq!(m["tool_calls"][0]["id"], "call_r1_0");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chat["usage"]["completion_tokens"], 7);
        assert_eq!(
            chat["usage"]["completion_tokens_details"]["reasoning_tokens"],
            4
        );
        assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
        let back = response_from_chat(chat);
        assert_eq!(back["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            back["candidates"][0]["content"]["parts"][0],
            json!({"text": "hmm", "thought": true})
        );
        assert_eq!(
            back["candidates"][0]["content"]["parts"][2]["functionCall"]["args"],
            json!({"a": 1})
        );
        assert_eq!(back["usageMetadata"]["candidatesTokenCount"], 3);
        assert_eq!(back["usageMetadata"]["thoughtsTokenCount"], 4);
    }

    #[test]
    fn safety_blocks_are_content_filter_failures() {
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}});
        assert!(blocked_answer(blocked.to_string().as_bytes()).is_some());
        let fine = json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "SAFETY"}]});
        assert_eq!(
            blocked_answer(fine.to_string().as_bytes()),
            None,
            "text went out"
        );
        let err = response_to_chat(blocked.clone()).unwrap_err().to_string();
        assert!(err.contains("content filter"), "{err}");
        let empty = json!({"candidates": [{"content": {"parts": []}, "finishReason": "PROHIBITED_CONTENT"}]});
        assert!(
            response_to_chat(empty.clone())
                .unwrap_err()
                .to_string()
                .contains("content filter")
        );
        let mut d = Decoder::default();
        match d.event(&Event::data(blocked.to_string())) {
            Decoded::Failed {
                status: 400,
                message,
            } => assert!(message.contains("content filter")),
            other => panic!("{other:?}"),
        }
        let mut d = Decoder::default();
        assert!(matches!(
            d.event(&Event::data(empty.to_string())),
            Decoded::Failed { .. }
        ));
        // After text went out, a safety stop is only the finish reason.
        let mut d = Decoder::default();
        let text =
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]});
        assert!(
            matches!(d.event(&Event::data(text.to_string())), Decoded::Chunks(c) if c.len() == 1)
        );
        match d.event(&Event::data(
            json!({"candidates": [{"finishReason": "SAFETY"}]}).to_string(),
        )) {
            Decoded::End(c) => assert_eq!(c[0]["choices"][0]["finish_reason"], "content_filter"),
            other => panic!("{other:?}"),
        }
    }

    fn text_stream() -> Vec<Event> {
        [
            json!({"responseId": "r1", "modelVersion": "g", "candidates": [{"content": {"role": "model", "parts": [{"text": "think", "thought": true}]}}]}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}}]}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"city": "Paris"}}}]}}]}),
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}}),
        ]
        .iter()
        .map(|v| Event::data(v.to_string()))
        .collect()
    }

    #[test]
    fn stream_ends_at_the_finish_reason_and_round_trips() {
        let evs = text_stream();
        let (chunks, ended) = decode(&evs);
        assert!(ended);
        let out = fold(&chunks);
        let m = &out["choices"][0]["message"];
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["reasoning_content"], "think");
        assert_eq!(m["tool_calls"][0]["id"], "call_r1_0");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["usage"]["total_tokens"], 7);
        let (_, ended) = decode(&evs[..3]);
        assert!(
            !ended,
            "no finish reason, no end: the relay reports the break"
        );
        let mut e = Encoder::new("g");
        let mut again: Vec<Event> = chunks.iter().flat_map(|c| e.chunk(c)).collect();
        again.extend(e.finish());
        let (rechunks, ended) = decode(&again);
        assert!(ended);
        let back = fold(&rechunks);
        assert_eq!(back["choices"][0]["message"]["content"], "Hello");
        assert_eq!(
            back["choices"][0]["message"]["tool_calls"][0]["id"],
            "call_r1_0"
        );
        assert_eq!(
            back["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(back["usage"]["prompt_tokens"], 5);
    }

    #[test]
    fn stream_errors_carry_their_code() {
        let mut d = Decoder::default();
        let ev = Event::data(error_json(429, "quota").to_string());
        assert_eq!(
            d.event(&ev),
            Decoded::Failed {
                status: 429,
                message: "quota".into()
            }
        );
        assert_eq!(d.event(&Event::data("{oops")), Decoded::Malformed);
    }

    #[test]
    fn an_observed_stream_continues_with_its_ids_and_ends_once() {
        let mut e = Encoder::new("asked");
        for ev in &text_stream()[..2] {
            e.observe(ev);
        }
        let mut enc = crate::protocol::Encoder::Gemini(e);
        enc.resume("Hello", "think");
        let role = json!({"id": "other", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]});
        assert!(
            enc.chunk(&role).is_empty(),
            "nothing for a second role chunk"
        );
        let text =
            json!({"id": "other", "choices": [{"index": 0, "delta": {"content": " world"}}]});
        let mut out = enc.chunk(&text);
        let stop =
            json!({"id": "other", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        out.extend(enc.chunk(&stop));
        out.extend(enc.finish());
        let v: Vec<Value> = out
            .iter()
            .map(|ev| serde_json::from_str(ev.data.as_deref().unwrap()).unwrap())
            .collect();
        assert_eq!(v.len(), 2, "the new text, then the end: {v:?}");
        assert_eq!(
            v[0]["candidates"][0]["content"]["parts"],
            json!([{"text": " world"}])
        );
        assert!(
            v.iter()
                .all(|x| x["responseId"] == "r1" && x["modelVersion"] == "g")
        );
        assert_eq!(v[1]["candidates"][0]["finishReason"], "STOP");
    }

    #[test]
    fn inbound_request_becomes_chat_with_stable_ids() {
        let req = json!({
            "systemInstruction": {"parts": [{"text": "sys"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "weather?"}, {"inlineData": {"mimeType": "image/jpeg", "data": "QQ=="}}]},
                {"role": "model", "parts": [{"text": "thinking", "thought": true},
                    {"functionCall": {"name": "get.weather", "args": {"city": "Paris"}}, "thoughtSignature": "s"},
                    {"functionCall": {"name": "get.weather", "args": {"city": "Rome"}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "cli-made-up", "name": "get.weather", "response": {"output": "sunny"}}},
                    {"functionResponse": {"name": "get.weather", "response": {"temp": 20}}}]},
            ],
            "generationConfig": {"temperature": 0.1, "topK": 3, "maxOutputTokens": 99, "stopSequences": ["X"],
                "responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
                "thinkingConfig": {"thinkingBudget": 4000}},
            "tools": [{"functionDeclarations": [{"name": "get.weather", "parameters": {"type": "OBJECT"}}]}, {"googleSearch": {}}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        });
        let chat = request_to_chat(req.clone(), true).unwrap();
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "sys"}));
        assert_eq!(
            m[1]["content"][1]["image_url"]["url"],
            "data:image/jpeg;base64,QQ=="
        );
        assert_eq!(m[2]["content"], Value::Null);
        assert_eq!(m[2]["tool_calls"][0]["id"], "call_1_0_get_weather");
        assert_eq!(m[2]["tool_calls"][1]["id"], "call_1_1_get_weather");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "call_1_0_get_weather", "content": "sunny"})
        );
        assert_eq!(
            m[4],
            json!({"role": "tool", "tool_call_id": "call_1_1_get_weather", "content": "{\"temp\":20}"})
        );
        assert_eq!(
            request_to_chat(req, true).unwrap(),
            chat,
            "the same history gives the same ids"
        );
        assert_eq!(chat["stream"], true);
        assert_eq!(chat["max_tokens"], 99);
        assert_eq!(chat["top_k"], 3);
        assert_eq!(chat["stop"], json!(["X"]));
        assert_eq!(chat["reasoning_effort"], "medium");
        assert_eq!(
            chat["response_format"]["json_schema"]["schema"]["properties"]["a"]["type"],
            "string"
        );
        assert_eq!(chat["tools"].as_array().unwrap().len(), 1);
        assert_eq!(
            chat["tools"][0]["function"]["parameters"],
            json!({"type": "object"})
        );
        assert_eq!(chat["tool_choice"], "required");
        assert!(request_to_chat(json!({"contents": "hi"}), false).is_err());
        assert!(
            request_to_chat(json!({"contents": [{"role": "robot", "parts": []}]}), false).is_err()
        );
        assert!(request_to_chat(json!({"contents": [], "cachedContent": "c/1"}), false).is_err());
    }

    #[test]
    fn error_bodies_in_googles_shape() {
        assert_eq!(
            error_json(429, "x"),
            json!({"error": {"code": 429, "message": "x", "status": "RESOURCE_EXHAUSTED"}})
        );
        assert_eq!(error_json(404, "x")["error"]["status"], "NOT_FOUND");
        assert_eq!(error_json(502, "x")["error"]["status"], "INTERNAL");
    }
}
