//! Talking to a Anthropic source: hub chat requests become Anthropic requests, and its
//! answers and stream events become chat again.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    DEFAULT_MAX_TOKENS, MAX_ID, anthropic_takes, block_of, detail_of, finish_reason, hashed_id,
    usage_to_chat,
};
use crate::error::{Error, Field};
use crate::protocol::view::{self, Delta, Text, Typed};
use crate::protocol::{self, Decoded, Last, ToolChoice, fit_call, now, text_of};
use crate::sse::Event;

/// Hub chat request → Messages request for `model` at `provider`.
pub fn request_from_chat(chat: Value, model: &str, provider: &str) -> Result<Value, Error> {
    let unsupported = |field| Error::Unsupported {
        field,
        provider: provider.to_string(),
    };
    protocol::refuse_chat_only(&chat, provider)?;
    // Structured output: Anthropic's `output_config.format` takes a JSON schema (Claude
    // 4.5 models and later; an older model's refusal reaches the client). It has no
    // "any JSON object" mode, so `json_object` cannot be expressed.
    let format = match chat["response_format"]["type"].as_str() {
        None | Some("text") => None,
        Some("json_schema") if chat["response_format"]["json_schema"]["schema"].is_object() => {
            let schema = super::schema::fit(&chat["response_format"]["json_schema"]["schema"]);
            Some(json!({"type": "json_schema", "schema": schema}))
        }
        Some(_) => return Err(unsupported(Field::ResponseFormat)),
    };
    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    let Some(list) = chat["messages"].as_array() else {
        return Err(Error::bad_field("messages", "must be an array"));
    };
    // `none` asks for no reasoning, which is Anthropic's default: no `thinking` at all.
    // With thinking on, Anthropic refuses a tool loop whose last assistant turn does not
    // start with its signed thinking block (a hub reasoning detail, when the client
    // gave it back), and a forced tool choice: then the answer comes without thinking
    // rather than not at all.
    let asked = ToolChoice::of_chat(&chat);
    let effort = chat["reasoning_effort"].as_str().filter(|e| *e != "none");
    // The client's output cap, which thinking must fit under (see `thinking`).
    let cap = chat["max_completion_tokens"]
        .as_u64()
        .or(chat["max_tokens"].as_u64());
    let thinking = effort
        .filter(|_| {
            !matches!(asked, Some(ToolChoice::Required | ToolChoice::Function(_)))
                && last_turn(list).is_none_or(|m| !called(m) || !signed_thinking(m).is_empty())
        })
        .and_then(|e| thinking(e, chat[protocol::THINKING_BUDGET].as_u64(), cap));
    let thinks = thinking.is_some();
    for m in list {
        let (role, blocks) = match m["role"].as_str() {
            Some("system" | "developer") => {
                // Parts stay blocks when one marks a cache breakpoint.
                let cached = m["content"]
                    .as_array()
                    .is_some_and(|parts| parts.iter().any(|p| p["cache_control"].is_object()));
                if cached {
                    let blocks = content_blocks(&m["content"], provider)?;
                    system.extend(blocks.into_iter().filter(|b| b["type"] == "text"));
                    continue;
                }
                let text = text_of(&m["content"]);
                if !blank(&text) {
                    system.push(json!({"type": "text", "text": text}));
                }
                continue;
            }
            Some("user") => ("user", content_blocks(&m["content"], provider)?),
            Some("assistant") => ("assistant", assistant_blocks(m, thinks)?),
            Some("tool") => {
                // A tool result's images and documents stay inside it: Anthropic takes them there.
                let content = if protocol::has_media(&m["content"]) {
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
            other => return Err(protocol::unknown_role(other)),
        };
        if blocks.is_empty() {
            continue;
        }
        protocol::push_turn(&mut messages, role, "content", blocks);
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    for key in ["temperature", "top_p", "top_k", "stream"] {
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
    if let Some(Value::Array(stops)) = protocol::stop_list(&chat) {
        let kept: Vec<Value> = stops
            .into_iter()
            .filter(|s| s.as_str().is_some_and(|s| !s.trim().is_empty()))
            .collect();
        if !kept.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(kept));
        }
    }
    let max_tokens = match thinking {
        Some((budget, max_tokens)) => {
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
            // Extended thinking rejects a custom temperature, top_p or top_k.
            out.shift_remove("temperature");
            out.shift_remove("top_p");
            out.shift_remove("top_k");
            max_tokens
        }
        None => cap.unwrap_or(DEFAULT_MAX_TOKENS),
    };
    out.insert("max_tokens".into(), json!(max_tokens));
    if let Some(format) = format {
        out.insert("output_config".into(), json!({"format": format}));
    }
    if let Some(tools) = chat["tools"].as_array() {
        let mut converted = Vec::new();
        for t in tools {
            if t["type"] != "function" {
                return Err(unsupported(Field::Tools));
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

/// The smallest thinking budget Anthropic takes; it must also be below `max_tokens`.
const MIN_BUDGET: u64 = 1024;

/// The thinking budget and `max_tokens` of a request that asks for `effort`: the budget
/// the client gave as a number (`given`, an Anthropic or Gemini client's) as it is, at
/// least Anthropic's minimum, else its effort's. The client's output cap (`cap`) is a
/// cost limit and is never raised: the budget is cut to fit below it, and a cap with no
/// room for the minimum leaves thinking off (`None`). Only when the client gave no cap
/// is one chosen, with room for the budget and an answer after it.
fn thinking(effort: &str, given: Option<u64>, cap: Option<u64>) -> Option<(u64, u64)> {
    let budget = given
        .unwrap_or(match effort {
            "minimal" | "low" => 1024,
            "medium" => 4096,
            _ => 16384,
        })
        .max(MIN_BUDGET);
    match cap {
        Some(cap) if cap <= MIN_BUDGET => None,
        Some(cap) => Some((budget.min(cap - 1), cap)),
        None if DEFAULT_MAX_TOKENS <= budget => Some((budget, budget + 4096)),
        None => Some((budget, DEFAULT_MAX_TOKENS)),
    }
}

/// The last assistant turn.
fn last_turn(messages: &[Value]) -> Option<&Value> {
    messages.iter().rev().find(|m| m["role"] == "assistant")
}

/// Whether an assistant turn called tools: when it is the last, their results follow
/// and the model goes on from them.
fn called(turn: &Value) -> bool {
    turn["tool_calls"].as_array().is_some_and(|c| !c.is_empty())
}

/// An assistant turn's thinking blocks as Claude signed them, from its hub reasoning
/// details.
fn signed_thinking(turn: &Value) -> Vec<Value> {
    turn["reasoning_details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(block_of)
        .collect()
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
            .map(|p| {
                let mut block = match p["type"].as_str() {
                    Some("text") => json!({"type": "text", "text": p["text"]}),
                    Some("image_url") => image_block(protocol::image_url(p)),
                    Some("file") => {
                        let (media_type, data) = protocol::inline_file(p, provider)?;
                        document_block(media_type, data, p["file"]["filename"].as_str())
                    }
                    _ => {
                        let kind = p["type"].as_str().unwrap_or("?");
                        return Err(protocol::part_unsupported(kind, provider));
                    }
                };
                keep_cache_control(p, &mut block);
                Ok(block)
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(Error::bad_request(
            "message `content` must be a string or an array",
        )),
    }
}

/// A chat part's `cache_control` (OpenRouter's and LiteLLM's way to mark an Anthropic
/// cache breakpoint) kept on its block: without it the prompt is not cached, and costs
/// up to ten times as much.
fn keep_cache_control(part: &Value, block: &mut Value) {
    if part["cache_control"].is_object() {
        block["cache_control"] = part["cache_control"].clone();
    }
}

/// An image URL (https or a base64 data URL) as an Anthropic image block.
fn image_block(url: &str) -> Value {
    if let Some((media_type, data)) = protocol::data_url(url) {
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

/// A chat assistant message → text and tool_use blocks, after its signed thinking when
/// this request `thinks` (Anthropic wants it first, and only then).
fn assistant_blocks(m: &Value, thinks: bool) -> Result<Vec<Value>, Error> {
    let mut blocks = if thinks {
        signed_thinking(m)
    } else {
        Vec::new()
    };
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
                Error::Untranslatable(format!(
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
/// as it is when Anthropic takes it (Claude's own ids, so its prompt cache matches),
/// else [`hashed_id`]: another provider's id (Kimi's `functions.get_weather:0`, say)
/// has its other characters made `_` and a hash of the whole after them, so that it
/// does not meet another id (`functions_get_weather_0`) made the same. A call and its
/// result are mapped alike, so they still pair.
pub(super) fn tool_id(id: &Value) -> Value {
    match id.as_str() {
        Some(s) if !anthropic_takes(s) => json!(hashed_id(s, MAX_ID)),
        _ => id.clone(),
    }
}

// ---- Anthropic → chat (upstream answers) ----

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
    let mut details = Vec::new();
    let mut annotations = Vec::new();
    // The answer's length in characters so far, where the next text block's citations begin.
    let mut at = 0;
    for b in resp["content"].as_array().into_iter().flatten() {
        match b["type"].as_str() {
            Some("text") => {
                let t = b["text"].as_str().unwrap_or("");
                text.push_str(t);
                let start = at;
                at += t.chars().count();
                let cited = b["citations"].as_array().into_iter().flatten();
                annotations.extend(cited.filter_map(|c| annotation(c, start, at)));
            }
            Some("thinking") => reasoning.push_str(b["thinking"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()},
            })),
            _ => {}
        }
        details.extend(detail_of(b));
    }
    let mut message = protocol::assistant_message(text, reasoning, calls);
    if !details.is_empty() {
        message["reasoning_details"] = Value::Array(details);
    }
    if !annotations.is_empty() {
        message["annotations"] = Value::Array(annotations);
    }
    Ok(json!({
        "id": resp["id"], "object": "chat.completion", "created": now(), "model": resp["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(resp["stop_reason"].as_str().unwrap_or(""))}],
        "usage": usage_to_chat(&resp["usage"]),
    }))
}

/// An Anthropic citation of a web page as the hub's annotation (OpenAI's `url_citation`)
/// of the characters `start..end` of the answer, the text block that cites it; `None`
/// for a citation with no URL (a place in a document the client gave).
fn annotation(citation: &Value, start: usize, end: usize) -> Option<Value> {
    let url = citation["url"].as_str()?;
    Some(json!({"type": "url_citation", "url_citation": {
        "start_index": start, "end_index": end, "url": url,
        "title": citation["title"].as_str().unwrap_or(""),
    }}))
}

/// Decodes an Anthropic Messages stream into hub chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    id: String,
    model: String,
    created: u64,
    /// Anthropic block index → chat tool call index, and whether arguments came for it.
    tools: HashMap<u64, (usize, bool)>,
    /// The open thinking block: its index, text and signature so far. It goes out
    /// whole as a reasoning detail when it ends, so a client can give it back.
    thinking: Option<(u64, String, String)>,
    /// Reasoning details sent so far.
    details: usize,
    usage: Value,
    /// The answer's text so far, in characters: where a text block's citations begin.
    chars: usize,
    /// The open text block that cites: its index, the character it begins at, and its
    /// citations, which go out as annotations when it ends.
    citing: Option<(u64, usize, Vec<Value>)>,
    /// What the last block was: a `tool_use` block that reached its stop is whole, so
    /// a break right after it cut nothing of the answer but its ending.
    last: Last,
    /// `tool_use` blocks that reached their `content_block_stop`.
    calls_done: usize,
    /// The prefix of ids made for calls that came without one ([`fit_call`]).
    made: Option<String>,
}

/// What the relay reads of a copied Messages stream's usual event, a text or thinking
/// `content_block_delta` (see [`Delta`]); `None` for every other event, which
/// [`Decoder::event`] reads in full. None of these changes the decoder's state. A
/// tool's input is read in full: whose it is (a call of the client's, or a server
/// tool's such as web search) is in the decoder's state.
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
        protocol::hub_chunk(&self.id, self.created, &self.model, delta, finish)
    }

    /// A chunk with one reasoning detail.
    fn detail(&mut self, detail: Value) -> Decoded {
        let detail = protocol::numbered(detail, &mut self.details);
        Decoded::Chunks(vec![
            self.chunk(json!({"reasoning_details": [detail]}), None),
        ])
    }

    /// Notes what an event makes the answer's last content (see [`Last`]).
    fn note_last(&mut self, kind: &str, v: &Value) {
        match kind {
            "content_block_start" => {
                self.last = match v["content_block"]["type"].as_str() {
                    Some("text") => Last::Text,
                    Some("thinking" | "redacted_thinking") => Last::Reasoning,
                    // A call, open until its stop; a server tool's block.
                    _ => Last::Other,
                }
            }
            "content_block_stop" if self.tools.contains_key(&v["index"].as_u64().unwrap_or(0)) => {
                self.last = Last::Call;
                self.calls_done += 1;
            }
            _ => {}
        }
    }

    /// The chunks that end an answer whose stream broke (closed, cut, went silent or
    /// sent an error event) right after a `tool_use` block's `content_block_stop`,
    /// before `message_delta`: the call is whole, and the answer ends as a tool call
    /// with the usage reported so far. Parallel calls come as blocks one after
    /// another, so calls the break came before are lost. `None` when anything else
    /// came last, which a break may have cut.
    pub fn whole_ending(&mut self) -> Option<Vec<Value>> {
        if self.last != Last::Call {
            return None;
        }
        let mut out = vec![self.chunk(json!({}), Some("tool_calls"))];
        if self.usage.is_object() {
            let usage = usage_to_chat(&self.usage);
            out.push(protocol::usage_chunk(
                &self.id,
                self.created,
                &self.model,
                usage,
            ));
        }
        Some(out)
    }

    /// What a break cut after `tool_use` blocks that all reached their stop: the text
    /// or thinking block that followed them.
    pub fn cut_after_calls(&self) -> Option<&'static str> {
        let whole = !self.tools.is_empty() && self.calls_done >= self.tools.len();
        self.last.cut_after_calls(whole)
    }

    /// The open thinking block, when the event is about it.
    fn open_thinking(&mut self, event: &Value) -> Option<&mut (u64, String, String)> {
        let index = event["index"].as_u64().unwrap_or(0);
        self.thinking.as_mut().filter(|t| t.0 == index)
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
        self.note_last(kind, &v);
        let one = |c: Value| Decoded::Chunks(vec![c]);
        match kind {
            "message_start" => {
                let m = &v["message"];
                self.id = match protocol::answer_id(&m["id"]) {
                    Ok(id) => id.unwrap_or("msg").to_string(),
                    Err(why) => return Decoded::Unreadable(why),
                };
                self.model = m["model"].as_str().unwrap_or("").to_string();
                self.created = now();
                // Only an object: `message_delta` writes its counts into it.
                self.usage = Some(&m["usage"])
                    .filter(|u| u.is_object())
                    .cloned()
                    .unwrap_or_default();
                one(self.chunk(json!({"role": "assistant", "content": ""}), None))
            }
            "content_block_start" => {
                let b = &v["content_block"];
                match b["type"].as_str() {
                    Some("tool_use") => {
                        let index = self.tools.len();
                        // Anthropic starts with `input: {}` and sends the input as deltas;
                        // a server that puts it here instead is read the same.
                        let given = b["input"]
                            .as_object()
                            .filter(|i| !i.is_empty())
                            .map(|_| b["input"].to_string());
                        let seen = given.is_some();
                        let mut call = json!({"index": index, "id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": given.unwrap_or_default()}});
                        if let Err(message) = fit_call(&mut call, &mut self.made, index as u64) {
                            return Decoded::Unreadable(message);
                        }
                        self.tools
                            .insert(v["index"].as_u64().unwrap_or(0), (index, seen));
                        one(self.chunk(json!({"tool_calls": [call]}), None))
                    }
                    Some("text") => {
                        self.citing =
                            Some((v["index"].as_u64().unwrap_or(0), self.chars, Vec::new()));
                        match b["text"].as_str().filter(|t| !t.is_empty()) {
                            Some(t) => {
                                self.chars += t.chars().count();
                                one(self.chunk(json!({"content": t}), None))
                            }
                            None => Decoded::Chunks(Vec::new()),
                        }
                    }
                    Some("thinking") => {
                        let given = |key: &str| b[key].as_str().unwrap_or("").to_string();
                        let index = v["index"].as_u64().unwrap_or(0);
                        self.thinking = Some((index, given("thinking"), given("signature")));
                        Decoded::Chunks(Vec::new())
                    }
                    Some("redacted_thinking") => match detail_of(b) {
                        Some(detail) => self.detail(detail),
                        None => Decoded::Chunks(Vec::new()),
                    },
                    _ => Decoded::Chunks(Vec::new()),
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        self.chars += d["text"].as_str().map_or(0, |t| t.chars().count());
                        one(self.chunk(json!({"content": d["text"]}), None))
                    }
                    Some("citations_delta") => {
                        let index = v["index"].as_u64().unwrap_or(0);
                        if let Some((_, _, cited)) = self.citing.as_mut().filter(|c| c.0 == index) {
                            cited.push(d["citation"].clone());
                        }
                        Decoded::Chunks(Vec::new())
                    }
                    Some("thinking_delta") => {
                        if let Some((_, text, _)) = self.open_thinking(&v) {
                            text.push_str(d["thinking"].as_str().unwrap_or(""));
                        }
                        one(self.chunk(json!({"reasoning_content": d["thinking"]}), None))
                    }
                    Some("signature_delta") => {
                        if let Some((_, _, signature)) = self.open_thinking(&v) {
                            signature.push_str(d["signature"].as_str().unwrap_or(""));
                        }
                        Decoded::Chunks(Vec::new())
                    }
                    Some("input_json_delta") => {
                        let fragment = d["partial_json"].as_str().is_some_and(|p| !p.is_empty());
                        let index = match self.tools.get_mut(&v["index"].as_u64().unwrap_or(0)) {
                            Some((index, seen)) => {
                                *seen |= fragment;
                                *index
                            }
                            // A block that is no tool call of the client's: a server tool's
                            // (`server_tool_use`: Anthropic runs a web search itself), left
                            // out like its block, not taken for the first call's arguments.
                            None => return Decoded::Chunks(Vec::new()),
                        };
                        one(self.chunk(
                            json!({"tool_calls": [{"index": index, "function": {"arguments": d["partial_json"]}}]}),
                            None,
                        ))
                    }
                    _ => Decoded::Chunks(Vec::new()),
                }
            }
            "content_block_stop" if self.open_thinking(&v).is_some() => {
                let Some((_, thinking, signature)) = self.thinking.take() else {
                    return Decoded::Chunks(Vec::new());
                };
                let block =
                    json!({"type": "thinking", "thinking": thinking, "signature": signature});
                match detail_of(&block) {
                    Some(detail) => self.detail(detail),
                    None => Decoded::Chunks(Vec::new()),
                }
            }
            "content_block_stop"
                if self
                    .citing
                    .as_ref()
                    .is_some_and(|c| Some(c.0) == v["index"].as_u64()) =>
            {
                let Some((_, start, cited)) = self.citing.take() else {
                    return Decoded::Chunks(Vec::new());
                };
                let end = self.chars;
                let annotations: Vec<Value> = cited
                    .iter()
                    .filter_map(|c| annotation(c, start, end))
                    .collect();
                if annotations.is_empty() {
                    return Decoded::Chunks(Vec::new());
                }
                one(self.chunk(json!({"annotations": annotations}), None))
            }
            // A call without input streams no fragment, or only `""`: its arguments
            // are `{}`, as in the unstreamed answer, not an empty string no client parses.
            "content_block_stop" => match self.tools.get_mut(&v["index"].as_u64().unwrap_or(0)) {
                Some((index, seen @ false)) => {
                    *seen = true;
                    let index = *index;
                    one(self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": "{}"}}]}),
                        None,
                    ))
                }
                _ => Decoded::Chunks(Vec::new()),
            },
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
                Decoded::End(vec![protocol::usage_chunk(
                    &self.id,
                    self.created,
                    &self.model,
                    usage,
                )])
            }
            "error" => Decoded::Failed {
                status: crate::protocol::status_of_error(&v["error"]),
                message: v["error"]["message"]
                    .as_str()
                    .unwrap_or("upstream error")
                    .to_string(),
            },
            _ => Decoded::Chunks(Vec::new()),
        }
    }
}
