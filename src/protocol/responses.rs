//! OpenAI Responses ⇄ the chat hub: requests, answers, stream events, and the Codex body rules.
//!
//! A Responses request is a list of *items* (messages, function calls, their outputs)
//! plus `instructions`; a Responses stream is a sequence of typed events that open and
//! close output items. This file maps both to and from chat. Routeplane is stateless,
//! so it always asks an upstream not to store (`store: false`) and refuses
//! `previous_response_id` unless the request goes byte for byte to a Responses source.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::view::{self, Delta, Text, Typed};
use super::{Decoded, ToolChoice, copy_fields, now, text_of};
use crate::body::RawBody;
use crate::error::Error;
use crate::sse::Event;

/// Instructions sent to the ChatGPT/Codex backend when the client gave none (it requires some).
const DEFAULT_INSTRUCTIONS: &str = "You are a helpful assistant.";

// ---- chat → Responses (upstream requests) ----

/// Chat user content (a string or parts) → Responses input parts.
fn input_parts(content: &Value, provider: &str) -> Result<Vec<Value>, Error> {
    let Value::Array(parts) = content else {
        return Ok(match content.as_str() {
            Some(s) => vec![json!({"type": "input_text", "text": s})],
            None => Vec::new(),
        });
    };
    parts
        .iter()
        .map(|p| match p["type"].as_str() {
            Some("text") => Ok(json!({"type": "input_text", "text": p["text"]})),
            Some("image_url") => {
                let url = super::image_url(p);
                let detail = p["image_url"]["detail"].as_str().unwrap_or("auto");
                Ok(json!({"type": "input_image", "image_url": url, "detail": detail}))
            }
            Some("file") => {
                let mut part = json!({"type": "input_file"});
                copy_fields(&p["file"], &mut part, &FILE_FIELDS);
                Ok(part)
            }
            other => Err(Error::Unsupported {
                field: format!("content part `{}`", other.unwrap_or("?")),
                provider: provider.to_string(),
            }),
        })
        .collect()
}

/// Hub chat request → Responses request for `model` at `provider`.
pub fn request_from_chat(chat: Value, model: &str, provider: &str) -> Result<Value, Error> {
    let unsupported = |field: &str| Error::Unsupported {
        field: field.to_string(),
        provider: provider.to_string(),
    };
    super::refuse_chat_only(&chat, provider)?;
    let Some(list) = chat["messages"].as_array() else {
        return Err(Error::bad_request("`messages` must be an array"));
    };
    let mut instructions = Vec::new();
    let mut input = Vec::new();
    for m in list {
        match m["role"].as_str() {
            Some("system" | "developer") => instructions.push(text_of(&m["content"])),
            Some("user") => {
                let content = input_parts(&m["content"], provider)?;
                input.push(json!({"type": "message", "role": "user", "content": content}));
            }
            Some("assistant") => {
                let text = text_of(&m["content"]);
                if !text.is_empty() {
                    input.push(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}));
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    input.push(json!({"type": "function_call", "call_id": call["id"], "name": call["function"]["name"],
                        "arguments": call["function"]["arguments"].as_str().unwrap_or("{}")}));
                }
            }
            Some("tool") => {
                // A tool result's images and files stay inside it: its output may be parts.
                let output = if super::has_media(&m["content"]) {
                    Value::Array(input_parts(&m["content"], provider)?)
                } else {
                    json!(text_of(&m["content"]))
                };
                input.push(json!({"type": "function_call_output", "call_id": m["tool_call_id"], "output": output}));
            }
            other => return Err(super::unknown_role(other)),
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("input".into(), Value::Array(input));
    let instructions: Vec<String> = instructions.into_iter().filter(|s| !s.is_empty()).collect();
    if !instructions.is_empty() {
        out.insert("instructions".into(), json!(instructions.join("\n\n")));
    }
    if let Some(n) = chat["max_completion_tokens"]
        .as_u64()
        .or(chat["max_tokens"].as_u64())
    {
        out.insert("max_output_tokens".into(), json!(n));
    }
    // `stop` has no Responses counterpart; dropping it can only make an answer longer.
    for key in SHARED_FIELDS {
        if !chat[key].is_null() {
            out.insert(key.into(), chat[key].clone());
        }
    }
    if let Some(effort) = chat["reasoning_effort"].as_str() {
        out.insert(
            "reasoning".into(),
            json!({"effort": effort, "summary": "auto"}),
        );
    }
    let rf = &chat["response_format"];
    match rf["type"].as_str() {
        Some("json_schema") => {
            let s = &rf["json_schema"];
            out.insert("text".into(), json!({"format": {"type": "json_schema", "name": s["name"], "schema": s["schema"], "strict": s["strict"]}}));
        }
        Some("json_object") => {
            out.insert("text".into(), json!({"format": {"type": "json_object"}}));
        }
        _ => {}
    }
    if let Some(tools) = chat["tools"].as_array() {
        let mut flat = Vec::new();
        for t in tools {
            if t["type"] != "function" {
                return Err(unsupported("tools"));
            }
            let f = &t["function"];
            let mut tool =
                json!({"type": "function", "name": f["name"], "parameters": f["parameters"]});
            copy_fields(f, &mut tool, &["description", "strict"]);
            flat.push(tool);
        }
        out.insert("tools".into(), Value::Array(flat));
    }
    if let Some(c) = ToolChoice::of_chat(&chat) {
        let choice = match c {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Never => json!("none"),
            ToolChoice::Function(name) => json!({"type": "function", "name": name}),
        };
        out.insert("tool_choice".into(), choice);
    }
    out.insert("store".into(), json!(false));
    Ok(Value::Object(out))
}

/// The request fields chat and Responses share, under the same names.
const SHARED_FIELDS: [&str; 6] = [
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "metadata",
    "stream",
];

/// What a file part carries, the same in chat's `file` and Responses' `input_file`.
const FILE_FIELDS: [&str; 3] = ["filename", "file_data", "file_id"];

/// Applies the ChatGPT/Codex backend's rules to a Responses request, in place.
pub fn codex_body(req: &mut Value) {
    let Some(obj) = req.as_object_mut() else {
        return;
    };
    obj.insert("stream".into(), json!(true));
    obj.insert("store".into(), json!(false));
    if obj.get("instructions").is_none_or(Value::is_null) {
        obj.insert("instructions".into(), json!(DEFAULT_INSTRUCTIONS));
    }
    for key in [
        "max_output_tokens",
        "temperature",
        "top_p",
        "previous_response_id",
        "stream_options",
    ] {
        obj.remove(key);
    }
    obj.entry("include")
        .or_insert_with(|| json!(["reasoning.encrypted_content"]));
}

// ---- Responses → chat (upstream answers) ----

/// Responses usage → chat usage; null when the upstream reported none, never zeros.
fn usage_to_chat(u: &Value) -> Value {
    if !u.is_object() {
        return Value::Null;
    }
    let input = u["input_tokens"].as_u64().unwrap_or(0);
    let output = u["output_tokens"].as_u64().unwrap_or(0);
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": u["total_tokens"].as_u64().unwrap_or(input + output),
        "prompt_tokens_details": {"cached_tokens": u["input_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0)},
        "completion_tokens_details": {"reasoning_tokens": u["output_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0)},
    })
}

/// The chat finish reason of a finished response.
fn finish_of(resp: &Value, saw_tool: bool) -> &'static str {
    if resp["status"] == "incomplete" {
        return match resp["incomplete_details"]["reason"].as_str() {
            Some("content_filter") => "content_filter",
            _ => "length",
        };
    }
    if saw_tool { "tool_calls" } else { "stop" }
}

/// A Responses object → hub chat completion.
pub fn response_to_chat(resp: Value) -> Result<Value, Error> {
    if resp["status"] == "failed" {
        return Err(Error::Upstream {
            provider: "responses".into(),
            reason: resp["error"]["message"]
                .as_str()
                .unwrap_or("the response failed")
                .to_string(),
        });
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for item in resp["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for c in item["content"].as_array().into_iter().flatten() {
                    text.push_str(c["text"].as_str().or(c["refusal"].as_str()).unwrap_or(""));
                }
            }
            Some("reasoning") => {
                for s in item["summary"].as_array().into_iter().flatten() {
                    reasoning.push_str(s["text"].as_str().unwrap_or(""));
                }
            }
            Some("function_call") => calls.push(json!({"id": item["call_id"], "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"].as_str().unwrap_or("{}")}})),
            _ => {}
        }
    }
    let finish = finish_of(&resp, !calls.is_empty());
    let message = super::assistant_message(text, reasoning, calls);
    Ok(json!({
        "id": resp["id"], "object": "chat.completion", "created": resp["created_at"].as_u64().unwrap_or_else(now), "model": resp["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_to_chat(&resp["usage"]),
    }))
}

/// One function call the decoder has seen.
#[derive(Debug)]
struct ToolSeen {
    /// Its chat index.
    index: usize,
    /// Argument deltas arrived for it.
    got_delta: bool,
}

/// What the relay reads of a copied Responses stream's usual event, a text, refusal or
/// reasoning delta (see [`Delta`]); `None` for every other event, which
/// [`Decoder::event`] reads in full.
pub fn delta(ev: &Event) -> Option<Delta<'_>> {
    const TEXT: &str = "response.output_text.delta";
    const REFUSAL: &str = "response.refusal.delta";
    const SUMMARY: &str = "response.reasoning_summary_text.delta";
    const REASONING: &str = "response.reasoning_text.delta";
    let event: Typed<'_, Text<'_>> = view::object(ev, &[TEXT, REFUSAL, SUMMARY, REASONING])?;
    match event.kind.0.as_ref() {
        TEXT | REFUSAL => Some(Delta::text(Some(event.delta?.0), None)),
        SUMMARY | REASONING => Some(Delta::text(None, Some(event.delta?.0))),
        _ => None,
    }
}

/// Decodes a Responses stream into hub chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    id: String,
    model: String,
    created: u64,
    /// Function calls by item id.
    tools: HashMap<String, ToolSeen>,
    /// Item ids by output index (delta events may name either).
    by_output: HashMap<u64, String>,
}

impl Decoder {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        super::hub_chunk(&self.id, self.created, &self.model, delta, finish)
    }

    /// The tool an event refers to, by `item_id` or `output_index`.
    fn tool_key(&self, v: &Value) -> Option<String> {
        v["item_id"]
            .as_str()
            .map(str::to_string)
            .filter(|id| self.tools.contains_key(id))
            .or_else(|| {
                v["output_index"]
                    .as_u64()
                    .and_then(|i| self.by_output.get(&i).cloned())
            })
    }

    /// Registers a function call item and returns its announcing chunk.
    fn announce(&mut self, v: &Value, item: &Value, with_args: bool) -> Value {
        let key = item["id"]
            .as_str()
            .or(item["call_id"].as_str())
            .unwrap_or("")
            .to_string();
        let index = self.tools.len();
        self.tools.insert(
            key.clone(),
            ToolSeen {
                index,
                got_delta: with_args,
            },
        );
        if let Some(i) = v["output_index"].as_u64() {
            self.by_output.insert(i, key);
        }
        let args = if with_args {
            item["arguments"].as_str().unwrap_or("")
        } else {
            ""
        };
        self.chunk(
            json!({"tool_calls": [{"index": index, "id": item["call_id"], "type": "function",
            "function": {"name": item["name"], "arguments": args}}]}),
            None,
        )
    }

    /// The last chunks of a finished response: finish reason and usage.
    fn ending(&self, resp: &Value) -> Vec<Value> {
        let finish = finish_of(resp, !self.tools.is_empty());
        let last = self.chunk(json!({}), Some(finish));
        if !resp["usage"].is_object() {
            return vec![last];
        }
        let usage = usage_to_chat(&resp["usage"]);
        vec![
            last,
            super::usage_chunk(&self.id, self.created, &self.model, usage),
        ]
    }

    /// Decodes one upstream event.
    pub fn event(&mut self, ev: &Event) -> Decoded {
        let Some(data) = ev.data.as_deref() else {
            return Decoded::Chunks(Vec::new());
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return Decoded::Malformed;
        };
        let kind = v["type"]
            .as_str()
            .or(ev.event.as_deref())
            .unwrap_or("")
            .to_string();
        let one = |c: Value| Decoded::Chunks(vec![c]);
        match kind.as_str() {
            "response.created" => {
                let r = &v["response"];
                self.id = r["id"].as_str().unwrap_or("resp").to_string();
                self.model = r["model"].as_str().unwrap_or("").to_string();
                self.created = r["created_at"].as_u64().unwrap_or_else(now);
                one(self.chunk(json!({"role": "assistant", "content": ""}), None))
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                one(self.chunk(json!({"content": v["delta"]}), None))
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                one(self.chunk(json!({"reasoning_content": v["delta"]}), None))
            }
            "response.output_item.added" if v["item"]["type"] == "function_call" => {
                let item = v["item"].clone();
                one(self.announce(&v, &item, false))
            }
            "response.function_call_arguments.delta" => match self.tool_key(&v) {
                Some(key) => {
                    let seen = self.tools.get_mut(&key).map(|t| {
                        t.got_delta = true;
                        t.index
                    });
                    let index = seen.unwrap_or(0);
                    one(self.chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": v["delta"]}}]}), None))
                }
                None => Decoded::Chunks(Vec::new()),
            },
            "response.function_call_arguments.done" => match self.tool_key(&v) {
                Some(key) => match self.tools.get_mut(&key) {
                    Some(t) if !t.got_delta => {
                        t.got_delta = true;
                        let index = t.index;
                        one(self.chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": v["arguments"]}}]}), None))
                    }
                    _ => Decoded::Chunks(Vec::new()),
                },
                None => Decoded::Chunks(Vec::new()),
            },
            "response.output_item.done" if v["item"]["type"] == "function_call" => {
                let item = v["item"].clone();
                let key = item["id"]
                    .as_str()
                    .or(item["call_id"].as_str())
                    .unwrap_or("");
                if self.tools.contains_key(key) {
                    Decoded::Chunks(Vec::new())
                } else {
                    one(self.announce(&v, &item, true))
                }
            }
            "response.completed" | "response.done" | "response.incomplete" => {
                Decoded::End(self.ending(&v["response"]))
            }
            "response.failed" => {
                let e = &v["response"]["error"];
                Decoded::Failed {
                    status: failure_status(e["code"].as_str().unwrap_or("")),
                    message: e["message"]
                        .as_str()
                        .unwrap_or("the response failed")
                        .to_string(),
                }
            }
            "error" => Decoded::Failed {
                status: failure_status(v["code"].as_str().unwrap_or("")),
                message: v["message"]
                    .as_str()
                    .unwrap_or("upstream error")
                    .to_string(),
            },
            _ => Decoded::Chunks(Vec::new()),
        }
    }
}

/// The `sequence_number` of an event's JSON, found without parsing it.
fn sequence_number(data: &str) -> Option<u64> {
    let key = "\"sequence_number\":";
    let at = data.find(key)? + key.len();
    let digits: String = data[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The status a Responses failure code stands for.
fn failure_status(code: &str) -> u16 {
    match code {
        "rate_limit_exceeded"
        | "usage_limit_reached"
        | "insufficient_quota"
        | "usage_not_included" => 429,
        "context_length_exceeded" | "invalid_prompt" => 400,
        _ => 502,
    }
}

// ---- Responses client → chat (inbound requests) ----

/// A Responses request from a client → hub chat request.
pub fn request_to_chat(req: Value) -> Result<Value, Error> {
    if !req["previous_response_id"].is_null() {
        return Err(Error::bad_request(
            "`previous_response_id` needs a Responses upstream; send the full conversation in `input` instead",
        ));
    }
    let mut messages: Vec<Value> = Vec::new();
    if let Some(s) = req["instructions"].as_str().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": s}));
    }
    match &req["input"] {
        Value::String(s) => messages.push(json!({"role": "user", "content": s})),
        Value::Array(items) => {
            for item in items {
                let kind = item["type"]
                    .as_str()
                    .unwrap_or(if item["role"].is_string() {
                        "message"
                    } else {
                        ""
                    });
                match kind {
                    "message" => {
                        let role = match item["role"].as_str() {
                            Some("developer") => "system",
                            Some(r @ ("user" | "assistant" | "system")) => r,
                            other => {
                                return Err(Error::bad_request(format!(
                                    "unknown input role `{}`",
                                    other.unwrap_or("(none)")
                                )));
                            }
                        };
                        messages.push(
                            json!({"role": role, "content": content_to_chat(&item["content"])?}),
                        );
                    }
                    kind @ ("function_call" | "custom_tool_call") => {
                        // A custom tool's text travels as a function's one `input` argument.
                        let arguments = if kind == "custom_tool_call" {
                            json!({"input": item["input"].as_str().unwrap_or("")}).to_string()
                        } else {
                            item["arguments"].as_str().unwrap_or("{}").to_string()
                        };
                        let call = json!({"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": arguments}});
                        // Consecutive calls (and text just before them) form one assistant turn.
                        match messages.last_mut() {
                            Some(last) if last["role"] == "assistant" => {
                                if !last["tool_calls"].is_array() {
                                    last["tool_calls"] = json!([]);
                                }
                                if let Some(a) = last["tool_calls"].as_array_mut() {
                                    a.push(call);
                                }
                            }
                            _ => messages.push(
                                json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                            ),
                        }
                    }
                    "function_call_output" | "custom_tool_call_output" => {
                        // Parts (an image a tool returned) go on as parts.
                        let output = match &item["output"] {
                            Value::String(s) => json!(s),
                            parts @ Value::Array(_) => content_to_chat(parts)?,
                            other => json!(text_of(other)),
                        };
                        messages.push(json!({"role": "tool", "tool_call_id": item["call_id"], "content": output}));
                    }
                    "reasoning" => {}
                    other => {
                        return Err(Error::bad_request(format!(
                            "input item type `{other}` is only available from a Responses upstream"
                        )));
                    }
                }
            }
        }
        _ => {
            return Err(Error::bad_request(
                "`input` is required: a string or a list of items",
            ));
        }
    }
    let mut out = json!({"model": req["model"], "messages": messages});
    copy_fields(&req, &mut out, &SHARED_FIELDS);
    if req["stream"] == json!(true) {
        out["stream_options"] = json!({"include_usage": true});
    }
    if let Some(n) = req["max_output_tokens"].as_u64() {
        out["max_tokens"] = json!(n);
    }
    if let Some(e) = req["reasoning"]["effort"].as_str() {
        out["reasoning_effort"] = json!(e);
    }
    let format = &req["text"]["format"];
    match format["type"].as_str() {
        Some("json_schema") => {
            out["response_format"] = json!({"type": "json_schema", "json_schema": {"name": format["name"], "schema": format["schema"], "strict": format["strict"]}});
        }
        Some("json_object") => out["response_format"] = json!({"type": "json_object"}),
        _ => {}
    }
    if let Some(tools) = req["tools"].as_array() {
        let mut converted = Vec::new();
        flatten_tools(tools, &mut converted);
        if !converted.is_empty() {
            out["tools"] = Value::Array(converted);
        }
    }
    let tc = &req["tool_choice"];
    let choice = match tc.as_str() {
        Some("auto") => Some(ToolChoice::Auto),
        Some("required") => Some(ToolChoice::Required),
        Some("none") => Some(ToolChoice::Never),
        // A function's, or any other tool's that has a name.
        _ => tc["name"].as_str().map(ToolChoice::Function),
    };
    if let Some(c) = choice {
        out["tool_choice"] = c.to_chat();
    }
    Ok(out)
}

/// Responses tools → chat function tools. A `namespace` (Codex CLI groups tools so)
/// contributes its functions; a custom tool (free text, such as Codex CLI's
/// `apply_patch`) becomes a function of one string, `input`, whose description carries
/// the text's format; hosted tools (`web_search`, `file_search`, …) exist only on a
/// Responses upstream and are left out, which only narrows what the model may call.
fn flatten_tools(tools: &[Value], out: &mut Vec<Value>) {
    for t in tools {
        match t["type"].as_str() {
            Some("function") => {
                let mut f = json!({"name": t["name"], "parameters": t["parameters"]});
                copy_fields(t, &mut f, &["description", "strict"]);
                out.push(json!({"type": "function", "function": f}));
            }
            Some("custom") => {
                let format = &t["format"];
                let input = match format["definition"].as_str() {
                    Some(definition) => format!(
                        "The tool's whole input, as plain text in this {} ({}):\n{definition}",
                        format["syntax"].as_str().unwrap_or("format"),
                        format["type"].as_str().unwrap_or("text"),
                    ),
                    None => "The tool's whole input, as plain text.".to_string(),
                };
                let mut f = json!({"name": t["name"], "parameters": {
                    "type": "object",
                    "properties": {"input": {"type": "string", "description": input}},
                    "required": ["input"],
                }});
                copy_fields(t, &mut f, &["description"]);
                out.push(json!({"type": "function", "function": f}));
            }
            Some("namespace") => flatten_tools(
                t["tools"].as_array().map(Vec::as_slice).unwrap_or_default(),
                out,
            ),
            _ => {}
        }
    }
}

/// The names of a Responses request's custom tools (in `namespace`s too). Most
/// requests have none, and their tools (Codex CLI's: tens of KiB of descriptions) are
/// not parsed at all; those that do are read for names only.
pub fn custom_tools(body: &RawBody) -> Vec<String> {
    /// Of a tool, only what says whether it is custom, and its name.
    #[derive(Deserialize)]
    struct Tool<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Cow<'a, str>,
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        tools: Vec<Tool<'a>>,
    }
    fn collect(tools: &[Tool<'_>], out: &mut Vec<String>) {
        for t in tools {
            match (&*t.kind, &t.name) {
                ("custom", Some(name)) => out.push(name.to_string()),
                ("namespace", _) => collect(&t.tools, out),
                _ => {}
            }
        }
    }
    let Some(raw) = body.get("tools") else {
        return Vec::new();
    };
    if memchr::memmem::find(raw, b"\"custom\"").is_none() {
        return Vec::new();
    }
    let mut names = Vec::new();
    if let Ok(tools) = serde_json::from_slice::<Vec<Tool<'_>>>(raw) {
        collect(&tools, &mut names);
    }
    names
}

/// A custom tool's text from its chat call's arguments (`{"input": …}`); arguments of
/// another shape go as they are, so nothing the model wrote is lost.
fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v) if v["input"].is_string() => v["input"].as_str().unwrap_or("").to_string(),
        _ => arguments.to_string(),
    }
}

/// Responses message content (a string or parts) → chat content.
fn content_to_chat(content: &Value) -> Result<Value, Error> {
    let Value::Array(parts) = content else {
        return Ok(content.clone());
    };
    if parts
        .iter()
        .all(|p| !matches!(p["type"].as_str(), Some("input_image" | "input_file")))
    {
        return Ok(json!(text_of(content)));
    }
    parts
        .iter()
        .map(|p| match p["type"].as_str() {
            Some("input_image") => Ok(json!({"type": "image_url", "image_url": {"url": p["image_url"], "detail": p["detail"].as_str().unwrap_or("auto")}})),
            // Chat's `file` part has no URL form: sent on, the file would be lost.
            Some("input_file") if p["file_data"].is_null() && p["file_id"].is_null() => {
                Err(Error::bad_request(
                    "an `input_file` by `file_url` can go only to a Responses source; send the file inline as `file_data`",
                ))
            }
            Some("input_file") => {
                let mut file = json!({});
                copy_fields(p, &mut file, &FILE_FIELDS);
                Ok(json!({"type": "file", "file": file}))
            }
            _ => Ok(json!({"type": "text", "text": p["text"]})),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

// ---- chat → Responses client (inbound answers) ----

/// Chat usage → Responses usage; null when the upstream reported none, never zeros.
fn usage_from_chat(u: &Value) -> Value {
    if !u.is_object() {
        return Value::Null;
    }
    let input = u["prompt_tokens"].as_u64().unwrap_or(0);
    let output = u["completion_tokens"].as_u64().unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": u["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0)},
        "total_tokens": input + output,
    })
}

/// A Responses id derived from a chat id.
fn response_id(chat_id: &Value) -> String {
    match chat_id.as_str() {
        Some(id) if id.starts_with("resp_") => id.to_string(),
        Some(id) => format!("resp_{id}"),
        None => "resp_routeplane".to_string(),
    }
}

/// `status` and `incomplete_details` for a chat finish reason.
fn status_of(finish: &str) -> (&'static str, Value) {
    match finish {
        "length" => ("incomplete", json!({"reason": "max_output_tokens"})),
        "content_filter" => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// Hub chat completion → Responses object; calls of the client's `custom` tools go
/// back as `custom_tool_call` items.
pub fn response_from_chat(chat: Value, custom: &[String]) -> Value {
    let id = response_id(&chat["id"]);
    let choice = &chat["choices"][0];
    let msg = &choice["message"];
    let mut output = Vec::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
        output.push(json!({"type": "reasoning", "id": format!("rs_{id}"), "summary": [{"type": "summary_text", "text": r}]}));
    }
    let text = text_of(&msg["content"]);
    if !text.is_empty() {
        output.push(json!({"type": "message", "id": format!("msg_{id}"), "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        let call_id = call["id"].as_str().unwrap_or("");
        let (name, arguments) = (&call["function"]["name"], &call["function"]["arguments"]);
        output.push(if is_custom(custom, name) {
            json!({"type": "custom_tool_call", "id": format!("ctc_{call_id}"), "call_id": call_id,
                "name": name, "input": custom_input(arguments.as_str().unwrap_or("")), "status": "completed"})
        } else {
            json!({"type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id,
                "name": name, "arguments": arguments, "status": "completed"})
        });
    }
    let (status, incomplete) = status_of(choice["finish_reason"].as_str().unwrap_or("stop"));
    json!({
        "id": id, "object": "response", "created_at": chat["created"].as_u64().unwrap_or_else(now),
        "status": status, "incomplete_details": incomplete, "model": chat["model"], "output": output,
        "usage": usage_from_chat(&chat["usage"]),
    })
}

/// True when `name` is one of the client's custom tools.
fn is_custom(custom: &[String], name: &Value) -> bool {
    name.as_str().is_some_and(|n| custom.iter().any(|c| c == n))
}

/// A message or reasoning item whose text is flowing to the client.
#[derive(Debug)]
struct OpenText {
    /// Its output index.
    oi: usize,
    /// Its item id.
    id: String,
    /// A reasoning summary (true) or a message (false).
    reasoning: bool,
    /// Text so far.
    text: String,
}

/// A function call item whose arguments are flowing to the client.
#[derive(Debug)]
struct OpenTool {
    oi: usize,
    /// The chat tool call index it came from.
    index: u64,
    call_id: String,
    name: Value,
    args: String,
    /// A call of one of the client's custom tools: its text goes out whole at its end,
    /// once it can be taken out of the arguments.
    custom: bool,
}

/// Writes hub chunks to a Responses client as typed events.
///
/// Several function calls may be open at once (a chat upstream may interleave their
/// fragments), each with its own output index; text and reasoning are one at a time.
#[derive(Debug)]
pub struct Encoder {
    model: String,
    id: String,
    created: u64,
    started: bool,
    seq: u64,
    next_oi: usize,
    text: Option<OpenText>,
    tools: Vec<OpenTool>,
    /// Completed items with their output index, for `response.completed`.
    done: Vec<(usize, Value)>,
    finish: String,
    usage: Value,
    /// The stream so far went out verbatim (a same-protocol stream) and was observed.
    observed: bool,
    /// The client's custom tools.
    custom: Vec<String>,
}

impl Encoder {
    /// An encoder that names `model` in its events; calls of the `custom` tools go out
    /// as `custom_tool_call` items.
    pub fn new(model: &str, custom: Vec<String>) -> Encoder {
        Encoder {
            model: model.to_string(),
            id: String::new(),
            created: 0,
            started: false,
            seq: 0,
            next_oi: 0,
            text: None,
            tools: Vec::new(),
            done: Vec::new(),
            finish: "stop".into(),
            usage: Value::Null,
            observed: false,
            custom,
        }
    }

    /// Learns ids, the open item, output indices and the sequence number from an event
    /// that went out verbatim.
    pub fn observe(&mut self, ev: &Event) {
        self.observed = true;
        let Some(data) = ev.data.as_deref() else {
            return;
        };
        if let Some(n) = sequence_number(data) {
            self.seq = self.seq.max(n + 1);
        }
        // Deltas, the bulk of a stream, are not parsed: the open item's text is set
        // from what the relay collected when the stream is resumed.
        let kind = ev.event.as_deref().unwrap_or("");
        if kind.ends_with(".delta") {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match v["type"].as_str().unwrap_or(kind) {
            "response.created" => {
                self.started = true;
                let r = &v["response"];
                self.id = r["id"].as_str().unwrap_or("resp_routeplane").to_string();
                self.created = r["created_at"].as_u64().unwrap_or_else(now);
                // A continuation's closing events name the model the client was told.
                if let Some(m) = r["model"].as_str().filter(|m| !m.is_empty()) {
                    self.model = m.to_string();
                }
            }
            "response.output_item.added" => {
                let oi = v["output_index"].as_u64().unwrap_or(0) as usize;
                self.next_oi = self.next_oi.max(oi + 1);
                let item = &v["item"];
                let id = item["id"].as_str().unwrap_or("").to_string();
                if let Some(t @ ("message" | "reasoning")) = item["type"].as_str() {
                    self.text = Some(OpenText {
                        oi,
                        id,
                        reasoning: t == "reasoning",
                        text: String::new(),
                    });
                }
            }
            "response.output_item.done" => {
                let oi = v["output_index"].as_u64().unwrap_or(0) as usize;
                if self.text.as_ref().is_some_and(|t| t.oi == oi) {
                    self.text = None;
                }
                self.done.push((oi, v["item"].clone()));
            }
            _ => {}
        }
    }

    /// Continues the open stream: an observed open item gets the text the client has.
    pub fn resume(&mut self, text: &str, reasoning: &str) {
        if !self.observed {
            return;
        }
        if let Some(t) = self.text.as_mut() {
            t.text = if t.reasoning { reasoning } else { text }.to_string();
        }
    }

    /// One event, numbered.
    fn ev(&mut self, kind: &str, mut data: Value) -> Event {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        Event::named(Some(kind), data.to_string())
    }

    /// The response object as it stands.
    fn response(&self, status: &str) -> Value {
        let mut done = self.done.clone();
        done.sort_by_key(|(oi, _)| *oi);
        let output: Vec<Value> = done.into_iter().map(|(_, item)| item).collect();
        json!({"id": self.id, "object": "response", "created_at": self.created, "status": status, "model": self.model, "output": output})
    }

    /// `response.created` and `response.in_progress`, once; they name the model the
    /// first chunk names, as the unstreamed answer does.
    fn start(&mut self, chunk: &Value, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(m) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
            self.model = m.to_string();
        }
        let chat_id = &chunk["id"];
        self.id = response_id(chat_id);
        self.created = now();
        let r = self.response("in_progress");
        out.push(self.ev("response.created", json!({"response": r})));
        let r = self.response("in_progress");
        out.push(self.ev("response.in_progress", json!({"response": r})));
    }

    /// Closes the open message or reasoning item.
    fn close_text(&mut self, out: &mut Vec<Event>) {
        let Some(t) = self.text.take() else { return };
        let (oi, id) = (t.oi, t.id.clone());
        let item = if t.reasoning {
            let ev = self.ev(
                "response.reasoning_summary_text.done",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "text": t.text}),
            );
            out.push(ev);
            let part = json!({"type": "summary_text", "text": t.text});
            let ev = self.ev(
                "response.reasoning_summary_part.done",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "part": part}),
            );
            out.push(ev);
            json!({"type": "reasoning", "id": id, "summary": [part]})
        } else {
            let ev = self.ev(
                "response.output_text.done",
                json!({"item_id": id, "output_index": oi, "content_index": 0, "text": t.text}),
            );
            out.push(ev);
            let part = json!({"type": "output_text", "text": t.text, "annotations": []});
            let ev = self.ev(
                "response.content_part.done",
                json!({"item_id": id, "output_index": oi, "content_index": 0, "part": part}),
            );
            out.push(ev);
            json!({"type": "message", "id": id, "status": "completed", "role": "assistant", "content": [part]})
        };
        let ev = self.ev(
            "response.output_item.done",
            json!({"output_index": oi, "item": item}),
        );
        out.push(ev);
        self.done.push((oi, item));
    }

    /// Closes every open function call.
    fn close_tools(&mut self, out: &mut Vec<Event>) {
        for t in std::mem::take(&mut self.tools) {
            if t.custom {
                self.close_custom(t, out);
                continue;
            }
            let id = format!("fc_{}", t.call_id);
            let ev = self.ev(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": t.oi, "arguments": t.args}),
            );
            out.push(ev);
            let item = json!({"type": "function_call", "id": id, "call_id": t.call_id, "name": t.name, "arguments": t.args, "status": "completed"});
            let ev = self.ev(
                "response.output_item.done",
                json!({"output_index": t.oi, "item": item}),
            );
            out.push(ev);
            self.done.push((t.oi, item));
        }
    }

    /// Closes a custom tool call: its whole text in one delta, then its end.
    fn close_custom(&mut self, t: OpenTool, out: &mut Vec<Event>) {
        let id = format!("ctc_{}", t.call_id);
        let input = custom_input(&t.args);
        if !input.is_empty() {
            let ev = self.ev(
                "response.custom_tool_call_input.delta",
                json!({"item_id": id, "output_index": t.oi, "delta": input}),
            );
            out.push(ev);
        }
        let ev = self.ev(
            "response.custom_tool_call_input.done",
            json!({"item_id": id, "output_index": t.oi, "input": input}),
        );
        out.push(ev);
        let item = json!({"type": "custom_tool_call", "id": id, "call_id": t.call_id, "name": t.name, "input": input, "status": "completed"});
        let ev = self.ev(
            "response.output_item.done",
            json!({"output_index": t.oi, "item": item}),
        );
        out.push(ev);
        self.done.push((t.oi, item));
    }

    /// Appends text to a message (or reasoning) item, opening one when needed.
    fn text_delta(&mut self, reasoning: bool, delta: &str, out: &mut Vec<Event>) {
        if self.text.as_ref().is_some_and(|t| t.reasoning != reasoning) {
            self.close_text(out);
        }
        if self.text.is_none() {
            self.close_tools(out);
            let oi = self.next_oi;
            self.next_oi += 1;
            let id = format!("{}_{}_{oi}", if reasoning { "rs" } else { "msg" }, self.id);
            if reasoning {
                let ev = self.ev("response.output_item.added", json!({"output_index": oi, "item": {"type": "reasoning", "id": id, "summary": []}}));
                out.push(ev);
                let ev = self.ev("response.reasoning_summary_part.added", json!({"item_id": id, "output_index": oi, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
                out.push(ev);
            } else {
                let ev = self.ev("response.output_item.added", json!({"output_index": oi, "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}));
                out.push(ev);
                let ev = self.ev("response.content_part.added", json!({"item_id": id, "output_index": oi, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}));
                out.push(ev);
            }
            self.text = Some(OpenText {
                oi,
                id,
                reasoning,
                text: String::new(),
            });
        }
        let Some(t) = self.text.as_mut() else { return };
        t.text.push_str(delta);
        let (oi, id) = (t.oi, t.id.clone());
        let ev = if reasoning {
            self.ev(
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "delta": delta}),
            )
        } else {
            self.ev(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": oi, "content_index": 0, "delta": delta}),
            )
        };
        out.push(ev);
    }

    /// Handles one chat tool-call fragment.
    fn tool_delta(&mut self, call: &Value, out: &mut Vec<Event>) {
        let index = call["index"].as_u64().unwrap_or(0);
        if !self.tools.iter().any(|t| t.index == index) {
            self.close_text(out);
            let oi = self.next_oi;
            self.next_oi += 1;
            let call_id = call["id"]
                .as_str()
                .map_or_else(|| format!("call_{index}"), str::to_string);
            let name = call["function"]["name"].clone();
            let custom = is_custom(&self.custom, &name);
            let item = if custom {
                json!({"type": "custom_tool_call", "id": format!("ctc_{call_id}"), "call_id": call_id, "name": name, "input": "", "status": "in_progress"})
            } else {
                json!({"type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id, "name": name, "arguments": "", "status": "in_progress"})
            };
            let ev = self.ev(
                "response.output_item.added",
                json!({"output_index": oi, "item": item}),
            );
            out.push(ev);
            self.tools.push(OpenTool {
                oi,
                index,
                call_id,
                name,
                args: String::new(),
                custom,
            });
        }
        let Some(frag) = call["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let Some(t) = self.tools.iter_mut().find(|t| t.index == index) else {
            return;
        };
        t.args.push_str(frag);
        if t.custom {
            // Held: the text is inside JSON until the arguments are whole.
            return;
        }
        let (oi, id) = (t.oi, format!("fc_{}", t.call_id));
        let ev = self.ev(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": oi, "delta": frag}),
        );
        out.push(ev);
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
            self.text_delta(true, r, &mut out);
        }
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            self.text_delta(false, t, &mut out);
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            self.tool_delta(call, &mut out);
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = f.to_string();
        }
        out
    }

    /// Closes the stream with `response.completed` (or `response.incomplete`).
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        self.start(&Value::Null, &mut out);
        self.close_text(&mut out);
        self.close_tools(&mut out);
        let (status, incomplete) = status_of(&self.finish);
        let mut r = self.response(status);
        r["usage"] = usage_from_chat(&self.usage);
        r["incomplete_details"] = incomplete;
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let ev = self.ev(kind, json!({"response": r}));
        out.push(ev);
        out
    }

    /// `response.failed` with the error.
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Event> {
        let code = match status {
            429 => "rate_limit_exceeded",
            400..=499 => "invalid_request",
            _ => "server_error",
        };
        let mut r = self.response("failed");
        r["error"] = json!({"code": code, "message": message});
        vec![self.ev("response.failed", json!({"response": r}))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::chat::Collector;

    fn ev(kind: &str, mut data: Value) -> Event {
        data["type"] = json!(kind);
        Event::named(Some(kind), data.to_string())
    }

    #[test]
    fn chat_request_becomes_responses_request() {
        let chat = json!({"model": "x", "max_tokens": 9, "temperature": 0.1, "stop": ["X"], "reasoning_effort": "low", "stream": true,
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": true}},
            "messages": [
                {"role": "system", "content": "a"}, {"role": "developer", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://i/x.png"}}, {"type": "file", "file": {"file_id": "file-1"}}]},
                {"role": "assistant", "content": "calling", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}});
        let r = request_from_chat(chat, "gpt-x", "p").unwrap();
        // A file by id: a Responses source is the one that knows what it names.
        assert_eq!(
            r["input"][0]["content"][2],
            json!({"type": "input_file", "file_id": "file-1"})
        );
        assert_eq!(r["instructions"], "a\n\nb");
        assert_eq!(r["max_output_tokens"], 9);
        assert_eq!(r["store"], false);
        assert!(r.get("stop").is_none());
        assert_eq!(r["reasoning"], json!({"effort": "low", "summary": "auto"}));
        assert_eq!(r["text"]["format"]["type"], "json_schema");
        let input = r["input"].as_array().unwrap();
        assert_eq!(
            input[0]["content"][1],
            json!({"type": "input_image", "image_url": "https://i/x.png", "detail": "auto"})
        );
        assert_eq!(
            input[1]["content"][0],
            json!({"type": "output_text", "text": "calling"})
        );
        assert_eq!(
            input[2],
            json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"})
        );
        assert_eq!(
            input[3],
            json!({"type": "function_call_output", "call_id": "c1", "output": "done"})
        );
        assert_eq!(
            r["tools"][0],
            json!({"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}})
        );
        assert_eq!(r["tool_choice"], json!({"type": "function", "name": "f"}));
        assert!(request_from_chat(json!({"messages": [], "n": 3}), "m", "p").is_err());
    }

    #[test]
    fn custom_tools_are_named_even_inside_a_namespace() {
        let body = |tools: Value| {
            RawBody::parse(json!({"tools": tools}).to_string().into_bytes()).unwrap()
        };
        let tools = json!([
            {"type": "function", "name": "f", "description": "not \"custom\""},
            {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
            {"type": "namespace", "name": "mcp", "tools": [{"type": "custom", "name": "x"}]},
        ]);
        assert_eq!(custom_tools(&body(tools)), ["apply_patch", "x"]);
        assert!(custom_tools(&body(json!([{"type": "function", "name": "f"}]))).is_empty());
    }

    #[test]
    fn a_custom_tool_is_a_function_of_its_text() {
        let mut tools = Vec::new();
        flatten_tools(
            &[json!({"type": "custom", "name": "note", "description": "Jot."})],
            &mut tools,
        );
        let f = &tools[0]["function"];
        assert_eq!(
            (&f["name"], &f["description"]),
            (&json!("note"), &json!("Jot."))
        );
        assert_eq!(f["parameters"]["required"], json!(["input"]));
        // The text comes out of `{"input": …}`; anything else the model wrote goes whole.
        assert_eq!(custom_input(r#"{"input":"a \"b\""}"#), r#"a "b""#);
        assert_eq!(custom_input("not json"), "not json");
        assert_eq!(custom_input(r#"{"text":"x"}"#), r#"{"text":"x"}"#);
    }

    #[test]
    fn codex_rules_are_applied() {
        let mut r = json!({"model": "m", "input": [], "max_output_tokens": 5, "temperature": 1, "previous_response_id": "x", "stream": false});
        codex_body(&mut r);
        assert_eq!(r["stream"], true);
        assert_eq!(r["store"], false);
        assert_eq!(r["instructions"], DEFAULT_INSTRUCTIONS);
        assert_eq!(r["include"], json!(["reasoning.encrypted_content"]));
        for gone in ["max_output_tokens", "temperature", "previous_response_id"] {
            assert!(r.get(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn response_object_becomes_chat_and_back() {
        let resp = json!({"id": "resp_1", "created_at": 5, "status": "completed", "model": "m",
            "output": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}]},
                       {"type": "message", "content": [{"type": "output_text", "text": "hi"}]},
                       {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"a\":1}"}],
            "usage": {"input_tokens": 4, "input_tokens_details": {"cached_tokens": 1}, "output_tokens": 2, "total_tokens": 6}});
        let chat = response_to_chat(resp).unwrap();
        assert_eq!(chat["choices"][0]["message"]["content"], "hi");
        assert_eq!(chat["choices"][0]["message"]["reasoning_content"], "think");
        assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
        let back = response_from_chat(chat, &[]);
        assert_eq!(back["status"], "completed");
        assert_eq!(back["output"][2]["call_id"], "c1");
        assert_eq!(back["usage"]["total_tokens"], 6);
        let incomplete = response_to_chat(json!({"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "output": []})).unwrap();
        assert_eq!(incomplete["choices"][0]["finish_reason"], "length");
        assert!(response_to_chat(json!({"status": "failed", "error": {"message": "no"}})).is_err());
    }

    fn parallel_tool_stream() -> Vec<Event> {
        let mut evs = vec![
            ev(
                "response.created",
                json!({"response": {"id": "r1", "model": "m", "created_at": 1}}),
            ),
            ev("response.in_progress", json!({})),
            ev(
                "response.output_item.added",
                json!({"output_index": 0, "item": {"type": "function_call", "id": "fc_a", "call_id": "a", "name": "f", "arguments": ""}}),
            ),
            ev(
                "response.output_item.added",
                json!({"output_index": 1, "item": {"type": "function_call", "id": "fc_b", "call_id": "b", "name": "g", "arguments": ""}}),
            ),
        ];
        // Fragments of the two calls interleave.
        for (oi, frag) in [(0, "{\"x\""), (1, "{\"y\""), (0, ":1}"), (1, ":2}")] {
            evs.push(ev("response.function_call_arguments.delta", json!({"output_index": oi, "item_id": if oi == 0 { "fc_a" } else { "fc_b" }, "delta": frag})));
        }
        evs.push(ev(
            "response.function_call_arguments.done",
            json!({"output_index": 0, "item_id": "fc_a", "arguments": "{\"x\":1}"}),
        ));
        evs.push(ev("response.completed", json!({"response": {"status": "completed", "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}})));
        evs
    }

    fn decode_all(evs: &[Event]) -> (Vec<Value>, bool) {
        crate::protocol::testing::decode_all(
            crate::protocol::Decoder::Responses(Decoder::default()),
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
        let calls = &out["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], "a");
        assert_eq!(
            calls[0]["function"]["arguments"], "{\"x\":1}",
            "done does not repeat streamed arguments"
        );
        assert_eq!(calls[1]["function"]["name"], "g");
        assert_eq!(calls[1]["function"]["arguments"], "{\"y\":2}");
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out["usage"]["total_tokens"], 7);
    }

    #[test]
    fn failures_mid_stream_carry_their_status() {
        let mut d = Decoder::default();
        assert_eq!(
            d.event(&ev(
                "response.failed",
                json!({"response": {"error": {"code": "rate_limit_exceeded", "message": "slow"}}})
            )),
            Decoded::Failed {
                status: 429,
                message: "slow".into()
            }
        );
        assert_eq!(
            d.event(&ev(
                "error",
                json!({"code": "server_error", "message": "boom"})
            )),
            Decoded::Failed {
                status: 502,
                message: "boom".into()
            }
        );
    }

    #[test]
    fn stream_without_completed_never_ends() {
        let evs = parallel_tool_stream();
        assert!(
            !decode_all(&evs[..evs.len() - 1]).1,
            "the relay reports the missing end marker"
        );
    }

    #[test]
    fn an_observed_stream_continues_its_item_and_numbering() {
        let mut e = Encoder::new("m", Vec::new());
        for v in [
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_9", "created_at": 3, "model": "gpt-up"}}),
            json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"type": "message", "id": "msg_9"}}),
            json!({"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_9", "output_index": 0, "delta": "Hel"}),
        ] {
            e.observe(&ev(v["type"].as_str().unwrap(), v.clone()));
        }
        e.resume("Hel", "");
        let chunk = json!({"id": "x", "model": "rescuer", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "lo"}}]});
        let out = e.chunk(&chunk);
        assert_eq!(out.len(), 1, "no second response.created: {out:?}");
        let d: Value = serde_json::from_str(out[0].data.as_deref().unwrap()).unwrap();
        assert_eq!(
            (&d["sequence_number"], &d["item_id"]),
            (&json!(3), &json!("msg_9"))
        );
        let end = e.finish();
        let done: Value = serde_json::from_str(end[0].data.as_deref().unwrap()).unwrap();
        assert_eq!(done["text"], "Hello", "the item's whole text");
        let last: Value =
            serde_json::from_str(end.last().unwrap().data.as_deref().unwrap()).unwrap();
        assert_eq!(last["response"]["id"], "resp_9");
        // The model the client was first told, and no usage invented where none came.
        assert_eq!(last["response"]["model"], "gpt-up");
        assert!(last["response"]["usage"].is_null(), "{last}");
    }

    #[test]
    fn decoded_stream_reencodes_to_the_same_content() {
        let mut evs = vec![ev(
            "response.created",
            json!({"response": {"id": "r1", "model": "m"}}),
        )];
        for d in ["Hel", "lo"] {
            evs.push(ev(
                "response.output_text.delta",
                json!({"output_index": 0, "item_id": "m1", "delta": d}),
            ));
        }
        evs.extend(parallel_tool_stream().into_iter().skip(2));
        let (chunks, _) = decode_all(&evs);
        let mut e = Encoder::new("m", Vec::new());
        let mut out: Vec<Event> = chunks.iter().flat_map(|c| e.chunk(c)).collect();
        out.extend(e.finish());
        let (again, ended) = decode_all(&out);
        assert!(ended);
        let fold = |cs: &[Value]| crate::protocol::testing::fold(cs)["choices"][0].clone();
        assert_eq!(fold(&chunks), fold(&again));
        let seqs: Vec<u64> = out.iter().map(|e| serde_json::from_str::<Value>(e.data.as_deref().unwrap()).unwrap()["sequence_number"].as_u64().unwrap()).collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "sequence numbers increase: {seqs:?}"
        );
        let last: Value =
            serde_json::from_str(out.last().unwrap().data.as_deref().unwrap()).unwrap();
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hello");
    }

    #[test]
    fn inbound_request_becomes_chat() {
        let req = json!({"model": "m", "instructions": "sys", "max_output_tokens": 7, "reasoning": {"effort": "high"}, "stream": true,
        "text": {"format": {"type": "json_object"}}, "tool_choice": {"type": "function", "name": "f"},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "r1"},
            {"role": "developer", "content": "dev"},
        ]});
        let chat = request_to_chat(req).unwrap();
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "sys"}));
        assert_eq!(m[1], json!({"role": "user", "content": "hi"}));
        assert_eq!(
            m[2]["tool_calls"].as_array().unwrap().len(),
            2,
            "consecutive calls form one turn"
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "r1"})
        );
        assert_eq!(m[4], json!({"role": "system", "content": "dev"}));
        assert_eq!(chat["max_tokens"], 7);
        assert_eq!(chat["reasoning_effort"], "high");
        assert_eq!(chat["response_format"], json!({"type": "json_object"}));
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(chat["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn inbound_refusals_and_tool_narrowing() {
        let err = request_to_chat(json!({"model": "m", "input": "x", "previous_response_id": "r"}))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`previous_response_id` needs a Responses upstream")
        );
        let chat = request_to_chat(json!({"model": "m", "input": "x", "tools": [
            {"type": "web_search"},
            {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "inner", "parameters": {}}]},
        ]}))
        .unwrap();
        assert_eq!(
            chat["tools"],
            json!([{"type": "function", "function": {"name": "inner", "parameters": {}}}]),
            "hosted tools are dropped, namespaces flattened"
        );
        assert!(request_to_chat(json!({"model": "m"})).is_err());
    }
}
