//! Anthropic Messages ⇄ the chat hub: requests, answers, stream events and errors.
//!
//! Four directions: a chat request becomes a Messages request for an Anthropic
//! upstream and its answer (whole or streamed) becomes chat again; a Messages request
//! from a client (Claude Code, the Anthropic SDKs) becomes a chat request and chat
//! answers become Messages answers and events. Fields with no counterpart are dropped
//! only when that cannot change the meaning of the request; otherwise the request is
//! refused with the field's name.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::view::{self, Delta, Text, Typed};
use super::{Decoded, ToolChoice, now, text_of};
use crate::error::Error;
use crate::sse::Event;

/// `max_tokens` when a chat request gives none: Anthropic requires one.
const DEFAULT_MAX_TOKENS: u64 = 8192;

/// The Anthropic error body for a status.
pub fn error_json(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// Anthropic's `error.type` for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The HTTP status an Anthropic `error.type` stands for.
fn status_of(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 503,
        _ => 502,
    }
}

// ---- chat → Anthropic (upstream requests) ----

/// Hub chat request → Messages request for `model` at `provider`.
pub fn request_from_chat(chat: Value, model: &str, provider: &str) -> Result<Value, Error> {
    let unsupported = |field: &str| Error::Unsupported {
        field: field.to_string(),
        provider: provider.to_string(),
    };
    super::refuse_chat_only(&chat, provider)?;
    match chat["response_format"]["type"].as_str() {
        None | Some("text") => {}
        Some(_) => return Err(unsupported("response_format")),
    }
    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    let Some(list) = chat["messages"].as_array() else {
        return Err(Error::bad_request("`messages` must be an array"));
    };
    for m in list {
        let (role, blocks) = match m["role"].as_str() {
            Some("system" | "developer") => {
                let text = text_of(&m["content"]);
                if !blank(&text) {
                    system.push(json!({"type": "text", "text": text}));
                }
                continue;
            }
            Some("user") => ("user", content_blocks(&m["content"], provider)?),
            Some("assistant") => ("assistant", assistant_blocks(m)?),
            Some("tool") => {
                // A tool result's images and documents stay inside it: Anthropic takes them there.
                let content = if super::has_media(&m["content"]) {
                    Value::Array(content_blocks(&m["content"], provider)?)
                } else {
                    json!(text_of(&m["content"]))
                };
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": tool_id(&m["tool_call_id"]),
                    "content": content,
                });
                ("user", vec![block])
            }
            other => return Err(super::unknown_role(other)),
        };
        if blocks.is_empty() {
            continue;
        }
        super::push_turn(&mut messages, role, "content", blocks);
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut max_tokens = chat["max_completion_tokens"]
        .as_u64()
        .or(chat["max_tokens"].as_u64())
        .unwrap_or(DEFAULT_MAX_TOKENS);
    for key in ["temperature", "top_p", "stream"] {
        if !chat[key].is_null() {
            out.insert(key.into(), chat[key].clone());
        }
    }
    // Chat's temperature runs to 2, Anthropic's to 1: a hotter one is its hottest.
    if chat["temperature"].as_f64().is_some_and(|t| t > 1.0) {
        out.insert("temperature".into(), json!(1.0));
    }
    // Anthropic refuses a stop sequence of whitespace alone; without it an answer can
    // only run longer.
    if let Some(Value::Array(stops)) = super::stop_list(&chat) {
        let kept: Vec<Value> = stops
            .into_iter()
            .filter(|s| s.as_str().is_some_and(|s| !s.trim().is_empty()))
            .collect();
        if !kept.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(kept));
        }
    }
    // `none` asks for no reasoning, which is Anthropic's default: no `thinking` at all.
    if let Some(effort) = chat["reasoning_effort"].as_str().filter(|e| *e != "none") {
        let budget: u64 = match effort {
            "minimal" | "low" => 1024,
            "medium" => 4096,
            _ => 16384,
        };
        if max_tokens <= budget {
            max_tokens = budget + 4096;
        }
        out.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
        // Extended thinking rejects a custom temperature/top_p.
        out.remove("temperature");
        out.remove("top_p");
    }
    out.insert("max_tokens".into(), json!(max_tokens));
    if let Some(tools) = chat["tools"].as_array() {
        let mut converted = Vec::new();
        for t in tools {
            if t["type"] != "function" {
                return Err(unsupported("tools"));
            }
            let f = &t["function"];
            let mut tool = json!({
                "name": f["name"],
                "input_schema": if f["parameters"].is_object() { f["parameters"].clone() } else { json!({"type": "object"}) },
            });
            if let Some(d) = f["description"].as_str() {
                tool["description"] = json!(d);
            }
            converted.push(tool);
        }
        out.insert("tools".into(), Value::Array(converted));
    }
    let asked = ToolChoice::of_chat(&chat);
    let mut choice = asked.map(|c| match c {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Never => json!({"type": "none"}),
        ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
    });
    // `{"type": "none"}` has no such field: no tool is called, in parallel or not.
    if chat["parallel_tool_calls"] == json!(false)
        && out.contains_key("tools")
        && asked != Some(ToolChoice::Never)
    {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        c["disable_parallel_tool_use"] = json!(true);
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    if let Some(user) = chat["user"].as_str() {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(Value::Object(out))
}

/// Anthropic refuses a text block with no text, or whitespace alone; leaving it out
/// says the same.
fn blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// Chat user content (a string or parts) → Anthropic blocks.
fn content_blocks(content: &Value, provider: &str) -> Result<Vec<Value>, Error> {
    match content {
        Value::String(s) if blank(s) => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| !(p["type"] == "text" && p["text"].as_str().is_some_and(blank)))
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(json!({"type": "text", "text": p["text"]})),
                Some("image_url") => Ok(image_block(super::image_url(p))),
                Some("file") => {
                    let (media_type, data) = super::inline_file(p, provider)?;
                    Ok(document_block(
                        media_type,
                        data,
                        p["file"]["filename"].as_str(),
                    ))
                }
                _ => Err(Error::Unsupported {
                    field: format!("content part `{}`", p["type"].as_str().unwrap_or("?")),
                    provider: provider.to_string(),
                }),
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(Error::bad_request(
            "message `content` must be a string or an array",
        )),
    }
}

/// An image URL (https or a base64 data URL) as an Anthropic image block.
fn image_block(url: &str) -> Value {
    if let Some((media_type, data)) = super::data_url(url) {
        return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// An inline file (a PDF) as an Anthropic document block, titled with its file name.
fn document_block(media_type: &str, data: &str, filename: Option<&str>) -> Value {
    let mut block = json!({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}});
    if let Some(name) = filename {
        block["title"] = json!(name);
    }
    block
}

/// A chat assistant message → text and tool_use blocks.
fn assistant_blocks(m: &Value) -> Result<Vec<Value>, Error> {
    let mut blocks = Vec::new();
    let text = text_of(&m["content"]);
    if !blank(&text) {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for call in m["tool_calls"].as_array().into_iter().flatten() {
        let args = call["function"]["arguments"].as_str().unwrap_or("{}");
        let input: Value = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|_| {
                Error::bad_request(format!(
                    "tool call `{}` has arguments that are not valid JSON",
                    call["id"].as_str().unwrap_or("?")
                ))
            })?
        };
        blocks.push(json!({"type": "tool_use", "id": tool_id(&call["id"]), "name": call["function"]["name"], "input": input}));
    }
    Ok(blocks)
}

/// A tool call id as Anthropic takes it (`^[a-zA-Z0-9_-]+$`, at most 64 characters):
/// another provider's id (Kimi's `functions.get_weather:0`, say) has its other
/// characters made `_`. A call and its result are mapped alike, so they still pair.
fn tool_id(id: &Value) -> Value {
    let Some(id) = id.as_str() else {
        return id.clone();
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if id.len() <= 64 && id.chars().all(allowed) {
        return json!(id);
    }
    let mapped: String = id
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(64)
        .collect();
    json!(mapped)
}

// ---- Anthropic → chat (upstream answers) ----

/// Anthropic `stop_reason` → chat `finish_reason`.
fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage → chat usage (prompt tokens include cache reads and writes); null
/// when the upstream reported none, never zeros.
fn usage_to_chat(u: &Value) -> Value {
    if !u.is_object() {
        return Value::Null;
    }
    let input = u["input_tokens"].as_u64().unwrap_or(0);
    let cache_read = u["cache_read_input_tokens"].as_u64().unwrap_or(0);
    let cache_write = u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    let output = u["output_tokens"].as_u64().unwrap_or(0);
    let prompt = input + cache_read + cache_write;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    })
}

/// Messages answer → hub chat completion.
pub fn response_to_chat(resp: Value) -> Result<Value, Error> {
    if resp["type"] == "error" {
        return Err(Error::Upstream {
            provider: "anthropic".into(),
            reason: resp["error"]["message"]
                .as_str()
                .unwrap_or("error")
                .to_string(),
        });
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in resp["content"].as_array().into_iter().flatten() {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or("")),
            Some("thinking") => reasoning.push_str(b["thinking"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()},
            })),
            _ => {}
        }
    }
    let message = super::assistant_message(text, reasoning, calls);
    Ok(json!({
        "id": resp["id"], "object": "chat.completion", "created": now(), "model": resp["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(resp["stop_reason"].as_str().unwrap_or(""))}],
        "usage": usage_to_chat(&resp["usage"]),
    }))
}

/// Decodes an Anthropic Messages stream into hub chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    id: String,
    model: String,
    created: u64,
    /// Anthropic block index → chat tool call index.
    tools: HashMap<u64, usize>,
    usage: Value,
}

/// What the relay reads of a copied Messages stream's usual event, a text, thinking or
/// tool-input `content_block_delta` (see [`Delta`]); `None` for every other event,
/// which [`Decoder::event`] reads in full. None of these changes the decoder's state.
pub fn delta(ev: &Event) -> Option<Delta<'_>> {
    const KIND: &str = "content_block_delta";
    let event: Typed<'_, BlockDelta<'_>> = view::object(ev, &[KIND])?;
    if event.kind.0 != KIND {
        return None;
    }
    let d = event.delta?;
    match d.kind.0.as_ref() {
        "text_delta" => Some(Delta::text(Some(d.text?.0), None)),
        "thinking_delta" => Some(Delta::text(None, Some(d.thinking?.0))),
        // Decoded, it is a one-element `tool_calls` whatever its `partial_json`.
        "input_json_delta" => Some(Delta::tool_call()),
        _ => None,
    }
}

/// The `delta` of a `content_block_delta`, as far as [`delta`] looks.
#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow)]
    thinking: Option<Text<'a>>,
}

impl Decoder {
    /// A chunk with one delta.
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        super::hub_chunk(&self.id, self.created, &self.model, delta, finish)
    }

    /// Decodes one upstream event.
    pub fn event(&mut self, ev: &Event) -> Decoded {
        let Some(data) = ev.data.as_deref() else {
            return Decoded::Chunks(Vec::new());
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return Decoded::Malformed;
        };
        let kind = v["type"].as_str().or(ev.event.as_deref()).unwrap_or("");
        let one = |c: Value| Decoded::Chunks(vec![c]);
        match kind {
            "message_start" => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or("msg").to_string();
                self.model = m["model"].as_str().unwrap_or("").to_string();
                self.created = now();
                self.usage = m["usage"].clone();
                one(self.chunk(json!({"role": "assistant", "content": ""}), None))
            }
            "content_block_start" => {
                let b = &v["content_block"];
                match b["type"].as_str() {
                    Some("tool_use") => {
                        let index = self.tools.len();
                        self.tools.insert(v["index"].as_u64().unwrap_or(0), index);
                        one(self.chunk(
                            json!({"tool_calls": [{"index": index, "id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": ""}}]}),
                            None,
                        ))
                    }
                    Some("text") if b["text"].as_str().is_some_and(|t| !t.is_empty()) => {
                        one(self.chunk(json!({"content": b["text"]}), None))
                    }
                    _ => Decoded::Chunks(Vec::new()),
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => one(self.chunk(json!({"content": d["text"]}), None)),
                    Some("thinking_delta") => {
                        one(self.chunk(json!({"reasoning_content": d["thinking"]}), None))
                    }
                    Some("input_json_delta") => {
                        let index = self
                            .tools
                            .get(&v["index"].as_u64().unwrap_or(0))
                            .copied()
                            .unwrap_or(0);
                        one(self.chunk(
                            json!({"tool_calls": [{"index": index, "function": {"arguments": d["partial_json"]}}]}),
                            None,
                        ))
                    }
                    _ => Decoded::Chunks(Vec::new()),
                }
            }
            "message_delta" => {
                if let Some(u) = v["usage"].as_object() {
                    for (k, val) in u {
                        if !val.is_null() {
                            self.usage[k] = val.clone();
                        }
                    }
                }
                match v["delta"]["stop_reason"].as_str() {
                    Some(stop) => one(self.chunk(json!({}), Some(finish_reason(stop)))),
                    None => Decoded::Chunks(Vec::new()),
                }
            }
            "message_stop" => {
                if !self.usage.is_object() {
                    return Decoded::End(Vec::new());
                }
                let usage = usage_to_chat(&self.usage);
                Decoded::End(vec![super::usage_chunk(
                    &self.id,
                    self.created,
                    &self.model,
                    usage,
                )])
            }
            "error" => Decoded::Failed {
                status: status_of(v["error"]["type"].as_str().unwrap_or("")),
                message: v["error"]["message"]
                    .as_str()
                    .unwrap_or("upstream error")
                    .to_string(),
            },
            _ => Decoded::Chunks(Vec::new()),
        }
    }
}

// ---- Anthropic client → chat (inbound requests) ----

/// An Anthropic document block as a chat part: one given inline (a PDF) becomes a
/// `file` part, plain text a text part. One given by URL or file id has no chat form,
/// and is refused rather than left out unseen.
fn document_part(b: &Value) -> Result<Value, Error> {
    let s = &b["source"];
    match s["type"].as_str() {
        Some("base64") => {
            let media_type = s["media_type"].as_str().unwrap_or("application/pdf");
            let url = super::to_data_url(media_type, s["data"].as_str().unwrap_or(""));
            Ok(super::file_part(b["title"].as_str(), url))
        }
        Some("text") => Ok(json!({"type": "text", "text": s["data"]})),
        _ => Err(Error::bad_request(
            "a `document` by URL or file id cannot be passed to this model's source: send it inline (base64)",
        )),
    }
}

/// An Anthropic image block as a chat `image_url` part (a data URL when inline).
fn image_part(b: &Value) -> Value {
    let s = &b["source"];
    let url = match s["type"].as_str() {
        Some("base64") => super::to_data_url(
            s["media_type"].as_str().unwrap_or("image/png"),
            s["data"].as_str().unwrap_or(""),
        ),
        _ => s["url"].as_str().unwrap_or("").to_string(),
    };
    json!({"type": "image_url", "image_url": {"url": url}})
}

/// A `tool_result` block's content as a chat tool message's: a string, or parts when
/// it carries images or documents (a screenshot tool's answer), which go on rather
/// than being left out unseen. An error result says so first.
fn tool_result_to_chat(b: &Value) -> Result<Value, Error> {
    let error = b["is_error"] == json!(true);
    let blocks = match &b["content"] {
        Value::Array(blocks)
            if blocks
                .iter()
                .any(|x| matches!(x["type"].as_str(), Some("image" | "document"))) =>
        {
            blocks
        }
        content => {
            let text = text_of(content);
            return Ok(json!(if error {
                format!("error: {text}")
            } else {
                text
            }));
        }
    };
    let mut parts = Vec::new();
    if error {
        parts.push(json!({"type": "text", "text": "error:"}));
    }
    for x in blocks {
        parts.extend(block_part(x)?);
    }
    Ok(Value::Array(parts))
}

/// A user content block (text, image, document) as a chat part; `None` for a block
/// chat has no part for.
fn block_part(b: &Value) -> Result<Option<Value>, Error> {
    Ok(match b["type"].as_str() {
        Some("text") => Some(json!({"type": "text", "text": b["text"]})),
        Some("image") => Some(image_part(b)),
        Some("document") => Some(document_part(b)?),
        _ => None,
    })
}

/// A Messages request from a client → hub chat request.
pub fn request_to_chat(req: Value) -> Result<Value, Error> {
    let Some(list) = req["messages"].as_array() else {
        return Err(Error::bad_request(
            "`messages` is required and must be an array",
        ));
    };
    let mut messages = Vec::new();
    let system = text_of(&req["system"]);
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in list {
        let role = m["role"].as_str().unwrap_or("");
        // Claude Code (2.1, with the mid-conversation-system beta) sends system turns
        // inside `messages`.
        if role == "system" {
            messages.push(json!({"role": "system", "content": text_of(&m["content"])}));
            continue;
        }
        if role != "user" && role != "assistant" {
            return Err(super::unknown_role(Some(role)));
        }
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(a) => a.clone(),
            _ => {
                return Err(Error::bad_request(
                    "message `content` must be a string or an array",
                ));
            }
        };
        if role == "assistant" {
            let text: String = blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect();
            let calls: Vec<Value> = blocks
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| json!({"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": b["input"].to_string()}}))
                .collect();
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            messages.push(msg);
            continue;
        }
        // Tool results become `tool` messages, which must follow the assistant's call.
        let mut parts = Vec::new();
        for b in &blocks {
            match b["type"].as_str() {
                Some("tool_result") => {
                    let content = tool_result_to_chat(b)?;
                    messages.push(json!({"role": "tool", "tool_call_id": b["tool_use_id"], "content": content}));
                }
                _ => parts.extend(block_part(b)?),
            }
        }
        if !parts.is_empty() {
            let content = if parts.iter().all(|p| p["type"] == "text") {
                json!(
                    parts
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            } else {
                Value::Array(parts)
            };
            messages.push(json!({"role": "user", "content": content}));
        }
    }
    let mut out = json!({"model": req["model"], "messages": messages});
    super::copy_fields(
        &req,
        &mut out,
        &["max_tokens", "temperature", "top_p", "stream"],
    );
    if req["stream"] == json!(true) {
        out["stream_options"] = json!({"include_usage": true});
    }
    if let Some(stop) = req["stop_sequences"].as_array() {
        out["stop"] = Value::Array(stop.clone());
    }
    if let Some(tools) = req["tools"].as_array() {
        let mut converted = Vec::new();
        for t in tools {
            if t["input_schema"].is_null() {
                return Err(Error::bad_request(format!(
                    "tool type `{}` is only available from an Anthropic upstream",
                    t["type"].as_str().unwrap_or("?")
                )));
            }
            converted.push(json!({"type": "function", "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]}}));
        }
        out["tools"] = Value::Array(converted);
    }
    let tc = &req["tool_choice"];
    let choice = match tc["type"].as_str() {
        Some("auto") => Some(ToolChoice::Auto),
        Some("any") => Some(ToolChoice::Required),
        Some("none") => Some(ToolChoice::Never),
        Some("tool") => Some(ToolChoice::Function(tc["name"].as_str().ok_or_else(
            || Error::bad_request("`tool_choice` of type `tool` needs the tool's `name`"),
        )?)),
        _ => None,
    };
    if let Some(c) = choice {
        out["tool_choice"] = c.to_chat();
    }
    if tc["disable_parallel_tool_use"] == json!(true) {
        out["parallel_tool_calls"] = json!(false);
    }
    if req["thinking"]["type"] == "enabled" {
        let budget = req["thinking"]["budget_tokens"].as_u64().unwrap_or(4096);
        out["reasoning_effort"] = json!(match budget {
            0..=2048 => "low",
            2049..=8192 => "medium",
            _ => "high",
        });
    }
    if let Some(user) = req["metadata"]["user_id"].as_str() {
        out["user"] = json!(user);
    }
    Ok(out)
}

// ---- chat → Anthropic client (inbound answers) ----

/// Chat `finish_reason` → Anthropic `stop_reason`.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Chat usage → Anthropic usage (input excludes cached tokens). The Messages format
/// requires the object (the SDKs read `usage.output_tokens`), so counts the upstream
/// did not report are null, never zeros.
fn usage_from_chat(u: &Value) -> Value {
    if !u.is_object() {
        return json!({"input_tokens": null, "output_tokens": null});
    }
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "cache_read_input_tokens": cached,
        "output_tokens": u["completion_tokens"].as_u64().unwrap_or(0),
    })
}

/// An Anthropic message id derived from a chat id.
fn message_id(chat_id: &Value) -> String {
    match chat_id.as_str() {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) => format!("msg_{id}"),
        None => "msg_routeplane".to_string(),
    }
}

/// Hub chat completion → Messages answer.
pub fn response_from_chat(chat: Value) -> Value {
    let choice = &chat["choices"][0];
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    let text = text_of(&msg["content"]);
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        let input = super::arguments_object(call["function"]["arguments"].as_str().unwrap_or("{}"));
        content.push(json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}));
    }
    json!({
        "id": message_id(&chat["id"]), "type": "message", "role": "assistant", "model": chat["model"],
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage_from_chat(&chat["usage"]),
    })
}

/// The kind of content block open in the client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Text deltas are flowing.
    Text,
    /// Thinking deltas are flowing.
    Thinking,
    /// Argument fragments of chat tool call N are flowing.
    Tool(u64),
}

/// Writes hub chunks to an Anthropic client as Messages events.
#[derive(Debug)]
pub struct Encoder {
    model: String,
    /// `message_start` went out.
    started: bool,
    /// The open block and its index.
    open: Option<(usize, Block)>,
    next_index: usize,
    stop: &'static str,
    usage: Value,
    /// A `message_delta` already went out verbatim (a same-protocol stream's own).
    delta_sent: bool,
}

impl Encoder {
    /// An encoder that names `model` in its events.
    pub fn new(model: &str) -> Encoder {
        Encoder {
            model: model.to_string(),
            started: false,
            open: None,
            next_index: 0,
            stop: "end_turn",
            usage: Value::Null,
            delta_sent: false,
        }
    }

    /// Learns the open block and the next index from an event that went out verbatim.
    pub fn observe(&mut self, ev: &Event) {
        // Deltas, the bulk of a stream, change nothing here: not even parsed.
        if matches!(ev.event.as_deref(), Some("content_block_delta" | "ping")) {
            return;
        }
        let Some(v) = ev
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
        else {
            return;
        };
        match v["type"].as_str().or(ev.event.as_deref()).unwrap_or("") {
            "message_start" => {
                self.started = true;
                if let Some(m) = v["message"]["model"].as_str().filter(|m| !m.is_empty()) {
                    self.model = m.to_string();
                }
                if v["message"]["usage"].is_object() {
                    self.usage = usage_to_chat(&v["message"]["usage"]);
                }
            }
            "content_block_start" => {
                let index = v["index"].as_u64().unwrap_or(0) as usize;
                let kind = match v["content_block"]["type"].as_str() {
                    Some("text") => Block::Text,
                    Some("thinking") => Block::Thinking,
                    // Never continued: a stream with a tool call is not rescued.
                    _ => Block::Tool(u64::MAX),
                };
                self.open = Some((index, kind));
                self.next_index = self.next_index.max(index + 1);
            }
            "content_block_stop" => self.open = None,
            "message_delta" => {
                self.delta_sent = true;
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.stop = stop_reason(finish_reason(s));
                }
            }
            _ => {}
        }
    }

    fn ev(name: &str, data: Value) -> Event {
        Event::named(Some(name), data.to_string())
    }

    /// `message_start`, once; it names the model the first chunk names, as the
    /// unstreamed answer does.
    fn start(&mut self, chunk: &Value, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(m) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
            self.model = m.to_string();
        }
        let id = &chunk["id"];
        out.push(Self::ev(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": message_id(id), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                // Counts come with `message_delta`; none is known yet.
                "usage": {"input_tokens": null, "output_tokens": 0},
            }}),
        ));
    }

    /// Closes the open block, if any.
    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some((index, _)) = self.open.take() {
            out.push(Self::ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    /// Makes `kind` the open block, opening it with `block` if it is not already.
    fn ensure(&mut self, kind: Block, block: Value, out: &mut Vec<Event>) -> usize {
        if let Some((index, open)) = self.open
            && open == kind
        {
            return index;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        out.push(Self::ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    /// Encodes one chunk.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        let mut out = Vec::new();
        self.start(chunk, &mut out);
        if chunk["usage"].is_object() {
            self.usage = chunk["usage"].clone();
        }
        let choice = &chunk["choices"][0];
        let d = &choice["delta"];
        if let Some(r) = d["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
            let i = self.ensure(
                Block::Thinking,
                json!({"type": "thinking", "thinking": ""}),
                &mut out,
            );
            out.push(Self::ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": r}})));
        }
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            let i = self.ensure(Block::Text, json!({"type": "text", "text": ""}), &mut out);
            out.push(Self::ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}})));
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            let n = call["index"].as_u64().unwrap_or(0);
            let block = json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}});
            let i = self.ensure(Block::Tool(n), block, &mut out);
            if let Some(args) = call["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                out.push(Self::ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": args}})));
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.stop = stop_reason(f);
        }
        out
    }

    /// Closes the stream: the open block, `message_delta`, `message_stop`.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        self.start(&Value::Null, &mut out);
        self.close(&mut out);
        if !self.delta_sent {
            out.push(Self::ev(
                "message_delta",
                json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop, "stop_sequence": null},
                "usage": usage_from_chat(&self.usage)}),
            ));
        }
        out.push(Self::ev("message_stop", json!({"type": "message_stop"})));
        out
    }

    /// An `error` event.
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Event> {
        vec![Self::ev("error", error_json(status, message))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::chat::Collector;

    fn ev(name: &str, data: Value) -> Event {
        Event::named(Some(name), data.to_string())
    }

    #[test]
    fn a_tool_results_image_goes_to_chat_as_parts_and_back() {
        let png = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}});
        let req = json!({"messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true,
                "content": [{"type": "text", "text": "blurred"}, png]}]},
        ]});
        let chat = request_to_chat(req).unwrap();
        let tool = &chat["messages"][1];
        assert_eq!(
            tool["content"],
            json!([
                {"type": "text", "text": "error:"},
                {"type": "text", "text": "blurred"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
            ])
        );
        let back = request_from_chat(chat, "m", "up").unwrap();
        let result = &back["messages"][1]["content"][0];
        assert_eq!(result["type"], "tool_result");
        assert_eq!(result["content"][2], png, "{result}");
    }

    #[test]
    fn chat_request_becomes_messages_request() {
        let chat = json!({
            "model": "x", "max_tokens": 50, "temperature": 0.5, "stop": "END", "user": "u1", "stream": true,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}, {"id": "t2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "one"},
                {"role": "tool", "tool_call_id": "t2", "content": "two"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": "required", "parallel_tool_calls": false,
        });
        let out = request_from_chat(chat, "claude-x", "p").unwrap();
        assert_eq!(out["model"], "claude-x");
        assert_eq!(out["system"], json!([{"type": "text", "text": "be brief"}]));
        assert_eq!(out["max_tokens"], 50);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["metadata"], json!({"user_id": "u1"}));
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(
            msgs.len(),
            3,
            "tool results fold into one user turn: {msgs:?}"
        );
        assert_eq!(
            msgs[0]["content"][1]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
        );
        assert_eq!(
            msgs[0]["content"][2]["source"],
            json!({"type": "url", "url": "https://x/y.png"})
        );
        assert_eq!(
            msgs[1]["content"][0],
            json!({"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}})
        );
        assert_eq!(
            msgs[2]["content"][1],
            json!({"type": "tool_result", "tool_use_id": "t2", "content": "two"})
        );
        assert_eq!(out["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn no_parallel_calls_is_said_on_every_choice_but_none() {
        let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
        let sent = |choice: Value| {
            let chat = json!({"messages": [], "tools": tools, "tool_choice": choice, "parallel_tool_calls": false});
            request_from_chat(chat, "m", "p").unwrap()["tool_choice"].clone()
        };
        assert_eq!(sent(json!("none")), json!({"type": "none"}));
        assert_eq!(
            sent(Value::Null),
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            sent(json!({"type": "function", "function": {"name": "f"}})),
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn what_anthropic_would_refuse_is_made_acceptable() {
        let chat = json!({"temperature": 1.6, "stop": [" ", "\n\n", "END"], "messages": [
            {"role": "assistant", "content": null, "tool_calls": [{"id": "functions.get_weather:0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"},
        ]});
        let out = request_from_chat(chat, "m", "p").unwrap();
        assert_eq!(out["temperature"], 1.0);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        let m = &out["messages"];
        assert_eq!(m[0]["content"][0]["id"], "functions_get_weather_0");
        assert_eq!(m[1]["content"][0]["tool_use_id"], "functions_get_weather_0");
        assert_eq!(tool_id(&json!("call_AbC-1")), "call_AbC-1");
        assert_eq!(tool_id(&json!("x".repeat(80))), "x".repeat(64));
        let out = request_from_chat(
            json!({"messages": [], "temperature": 0.4, "stop": "\t"}),
            "m",
            "p",
        )
        .unwrap();
        assert_eq!(out["temperature"], 0.4);
        assert!(out.get("stop_sequences").is_none());
    }

    #[test]
    fn blank_text_is_left_out() {
        let chat = json!({"messages": [
            {"role": "system", "content": " \n"},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": "\n\n", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
            {"role": "user", "content": "  "},
        ]});
        let out = request_from_chat(chat, "m", "p").unwrap();
        assert!(out.get("system").is_none());
        let m = out["messages"].as_array().unwrap();
        assert_eq!(m[0]["content"], json!([{"type": "text", "text": "hi"}]));
        assert_eq!(m[1]["content"].as_array().unwrap().len(), 1, "{}", m[1]);
        assert_eq!(m[1]["content"][0]["type"], "tool_use");
        assert_eq!(m.len(), 3, "the blank last turn is gone: {m:?}");
    }

    #[test]
    fn no_reasoning_asked_is_no_thinking() {
        let chat = json!({"messages": [], "reasoning_effort": "none", "temperature": 0.3});
        let out = request_from_chat(chat, "m", "p").unwrap();
        assert!(out.get("thinking").is_none(), "{out}");
        assert_eq!(out["temperature"], 0.3, "kept: thinking is off");
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn documents_become_chat_parts_or_are_refused() {
        let doc = |source: Value| json!({"type": "document", "source": source});
        assert_eq!(
            document_part(&doc(
                json!({"type": "text", "media_type": "text/plain", "data": "notes"})
            ))
            .unwrap(),
            json!({"type": "text", "text": "notes"})
        );
        assert_eq!(
            document_part(&doc(
                json!({"type": "base64", "media_type": "application/pdf", "data": "QQ=="})
            ))
            .unwrap()["file"],
            json!({"filename": "document.pdf", "file_data": "data:application/pdf;base64,QQ=="})
        );
        assert!(document_part(&doc(json!({"type": "file", "file_id": "f1"}))).is_err());
    }

    #[test]
    fn max_tokens_defaults_and_reasoning_becomes_thinking() {
        let out = request_from_chat(json!({"messages": [], "temperature": 1}), "m", "p").unwrap();
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        let out = request_from_chat(json!({"messages": [], "reasoning_effort": "high", "max_tokens": 100, "temperature": 0.2}), "m", "p").unwrap();
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 16384})
        );
        assert!(out["max_tokens"].as_u64().unwrap() > 16384);
        assert!(out.get("temperature").is_none());
    }

    #[test]
    fn inexpressible_fields_are_refused_by_name() {
        for (field, chat) in [
            ("n", json!({"messages": [], "n": 2})),
            (
                "response_format",
                json!({"messages": [], "response_format": {"type": "json_object"}}),
            ),
            ("logprobs", json!({"messages": [], "logprobs": true})),
        ] {
            let err = request_from_chat(chat, "m", "anthropic").unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "the request field `{field}` cannot be expressed for provider `anthropic`; remove it or choose another model"
                )
            );
        }
        assert!(request_from_chat(json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{oops"}}]}]}), "m", "p").is_err());
    }

    #[test]
    fn messages_answer_becomes_chat_completion() {
        let resp = json!({"id": "msg_1", "type": "message", "model": "c", "stop_reason": "tool_use",
            "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "ok"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 3}});
        let chat = response_to_chat(resp).unwrap();
        let m = &chat["choices"][0]["message"];
        assert_eq!(m["content"], "ok");
        assert_eq!(m["reasoning_content"], "hmm");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chat["usage"]["prompt_tokens"], 15);
        assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
        assert_eq!(chat["usage"]["total_tokens"], 18);
        let back = response_from_chat(chat);
        assert_eq!(back["stop_reason"], "tool_use");
        assert_eq!(back["content"][2]["input"], json!({"a": 1}));
        assert_eq!(back["usage"]["input_tokens"], 10);
    }

    /// A stream with text, two tool calls whose inputs arrive in fragments, and usage.
    fn parallel_tool_stream() -> Vec<Event> {
        let mut evs = vec![
            ev(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "model": "c", "usage": {"input_tokens": 7, "output_tokens": 1}}}),
            ),
            ev("ping", json!({"type": "ping"})),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me"}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " check."}}),
            ),
            ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
        ];
        for (block, (id, name, frags)) in [
            ("t1", "f", ["{\"ci", "ty\": \"Pa", "ris\"}"]),
            ("t2", "g", ["{\"n", "\": ", "2}"]),
        ]
        .into_iter()
        .enumerate()
        {
            let index = block + 1;
            evs.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
            for f in frags {
                evs.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": f}})));
            }
            evs.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
        evs.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}})));
        evs.push(ev("message_stop", json!({"type": "message_stop"})));
        evs
    }

    fn decode_all(evs: &[Event]) -> (Vec<Value>, bool) {
        crate::protocol::testing::decode_all(
            crate::protocol::Decoder::Anthropic(Decoder::default()),
            evs,
        )
    }

    #[test]
    fn streamed_parallel_tool_calls_get_indexes_and_whole_arguments() {
        let (chunks, ended) = decode_all(&parallel_tool_stream());
        assert!(ended);
        let mut c = Collector::default();
        chunks.iter().for_each(|ch| c.add(ch));
        let out = c.finish();
        let m = &out["choices"][0]["message"];
        assert_eq!(m["content"], "Let me check.");
        assert_eq!(m["tool_calls"][0]["id"], "t1");
        assert_eq!(
            m["tool_calls"][0]["function"]["arguments"],
            "{\"city\": \"Paris\"}"
        );
        assert_eq!(m["tool_calls"][1]["function"]["name"], "g");
        assert_eq!(m["tool_calls"][1]["function"]["arguments"], "{\"n\": 2}");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["usage"]["completion_tokens"], 30);
        assert_eq!(out["usage"]["prompt_tokens"], 7);
    }

    #[test]
    fn error_event_mid_stream_fails_with_its_status() {
        let mut d = Decoder::default();
        let got = d.event(&ev("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})));
        assert_eq!(
            got,
            Decoded::Failed {
                status: 503,
                message: "Overloaded".into()
            }
        );
        assert_eq!(d.event(&Event::data("{not json")), Decoded::Malformed);
    }

    #[test]
    fn stream_without_stop_never_ends() {
        let evs = parallel_tool_stream();
        let (_, ended) = decode_all(&evs[..evs.len() - 1]);
        assert!(!ended, "the relay sees no end marker and reports the break");
    }

    #[test]
    fn an_observed_stream_continues_in_its_open_block_and_ends_once() {
        let mut e = Encoder::new("m");
        for v in [
            json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        ] {
            e.observe(&ev(v["type"].as_str().unwrap(), v.clone()));
        }
        let chunk = json!({"id": "other", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "lo"}}]});
        let out = e.chunk(&chunk);
        let names: Vec<_> = out.iter().map(|x| x.event.clone().unwrap()).collect();
        assert_eq!(
            names,
            ["content_block_delta"],
            "no second message_start or block"
        );
        assert!(out[0].data.as_deref().unwrap().contains("\"index\":0"));
        let names: Vec<_> = e
            .finish()
            .iter()
            .map(|x| x.event.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            ["content_block_stop", "message_delta", "message_stop"]
        );
        // A stream whose own message_delta went out gets only the missing message_stop.
        e.observe(&ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
        ));
        let names: Vec<_> = e
            .finish()
            .iter()
            .map(|x| x.event.clone().unwrap())
            .collect();
        assert_eq!(names, ["message_stop"]);
    }

    #[test]
    fn decoded_stream_reencodes_to_the_same_content() {
        let (chunks, _) = decode_all(&parallel_tool_stream());
        let mut e = Encoder::new("c");
        let mut out: Vec<Event> = chunks.iter().flat_map(|c| e.chunk(c)).collect();
        out.extend(e.finish());
        let (again, ended) = decode_all(&out);
        assert!(ended);
        let fold = |cs: &[Value]| {
            let v = crate::protocol::testing::fold(cs);
            (
                v["choices"][0]["message"].clone(),
                v["choices"][0]["finish_reason"].clone(),
            )
        };
        assert_eq!(fold(&chunks), fold(&again));
        let names: Vec<_> = out.iter().filter_map(|e| e.event.clone()).collect();
        assert_eq!(names.first().map(String::as_str), Some("message_start"));
        assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    }

    #[test]
    fn inbound_request_becomes_chat() {
        let req = json!({"model": "m", "max_tokens": 64, "system": [{"type": "text", "text": "sys"}], "stream": true,
        "stop_sequences": ["X"], "thinking": {"type": "enabled", "budget_tokens": 4000}, "metadata": {"user_id": "u"},
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": true},
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QQ=="}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "res"}]}, {"type": "text", "text": "go on"}]},
        ]});
        let chat = request_to_chat(req).unwrap();
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "sys"}));
        assert_eq!(
            m[1]["content"][1]["image_url"]["url"],
            "data:image/jpeg;base64,QQ=="
        );
        assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "t1", "content": "res"})
        );
        assert_eq!(m[4], json!({"role": "user", "content": "go on"}));
        assert_eq!(chat["stop"], json!(["X"]));
        assert_eq!(chat["reasoning_effort"], "medium");
        assert_eq!(chat["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(chat["parallel_tool_calls"], false);
        assert_eq!(chat["user"], "u");
        assert!(request_to_chat(json!({"model": "m"})).is_err());
        assert!(request_to_chat(json!({"model": "m", "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]})).is_err());
    }

    #[test]
    fn error_bodies_by_status() {
        assert_eq!(
            error_json(429, "x"),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "x"}})
        );
        assert_eq!(error_json(404, "x")["error"]["type"], "not_found_error");
        assert_eq!(error_json(500, "x")["error"]["type"], "api_error");
    }
}
