//! Talking to a Responses source: hub chat requests become Responses requests, and its
//! answers and stream events become chat again.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{DEFAULT_INSTRUCTIONS, FILE_FIELDS, SHARED_FIELDS, SIGNED_BY_OPENAI};
use crate::error::{Error, Field};
use crate::protocol::view::{self, Delta, Text, Typed};
use crate::protocol::{self, Decoded, Last, ToolChoice, copy_fields, fit_call, now, text_of};
use crate::sse::Event;

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
                let url = protocol::image_url(p);
                let detail = p["image_url"]["detail"].as_str().unwrap_or("auto");
                Ok(json!({"type": "input_image", "image_url": url, "detail": detail}))
            }
            Some("file") => {
                let mut part = json!({"type": "input_file"});
                copy_fields(&p["file"], &mut part, &FILE_FIELDS);
                Ok(part)
            }
            other => Err(protocol::part_unsupported(other.unwrap_or("?"), provider)),
        })
        .collect()
}

/// Hub chat request → Responses request for `model` at `provider`.
pub fn request_from_chat(chat: Value, model: &str, provider: &str) -> Result<Value, Error> {
    let unsupported = |field| Error::Unsupported {
        field,
        provider: provider.to_string(),
    };
    protocol::refuse_chat_only(&chat, provider)?;
    let Some(list) = chat["messages"].as_array() else {
        return Err(Error::bad_field("messages", "must be an array"));
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
                // Reasoning goes back only with what it led to: OpenAI refuses a
                // reasoning item that no message or call follows.
                if !text.is_empty() || m["tool_calls"].as_array().is_some_and(|c| !c.is_empty()) {
                    input.extend(reasoning_items(m));
                }
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
                let output = if protocol::has_media(&m["content"]) {
                    Value::Array(input_parts(&m["content"], provider)?)
                } else {
                    json!(text_of(&m["content"]))
                };
                input.push(json!({"type": "function_call_output", "call_id": m["tool_call_id"], "output": output}));
            }
            other => return Err(protocol::unknown_role(other)),
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
        out.insert(
            "max_output_tokens".into(),
            json!(n.max(super::LEAST_OUTPUT_CAP)),
        );
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
    // With nothing stored, reasoning reaches the next turn only as its encrypted content.
    // Asked for only with an effort, which only a reasoning model takes, or of a model
    // that reasons unasked.
    if chat["reasoning_effort"].is_string() || reasons_unasked(model) {
        out.insert("include".into(), json!(["reasoning.encrypted_content"]));
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
                return Err(unsupported(Field::Tools));
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

/// The reasoning items a Responses source made for an assistant turn, from its hub
/// reasoning details. Without their ids, as Codex CLI sends them: with `store: false`
/// OpenAI would look an id up, and find nothing.
fn reasoning_items(turn: &Value) -> Vec<Value> {
    let details = turn["reasoning_details"].as_array().into_iter().flatten();
    details
        .filter(|d| d["format"] == SIGNED_BY_OPENAI && d["type"] == "reasoning.encrypted")
        .filter_map(|d| d["data"].as_str())
        .map(|data| json!({"type": "reasoning", "summary": [], "encrypted_content": data}))
        .collect()
}

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
        obj.shift_remove(key);
    }
    obj.entry("include")
        .or_insert_with(|| json!(["reasoning.encrypted_content"]));
}

/// Whether an OpenAI model reasons with no effort asked (`o3`, `gpt-5`, `gpt-5-codex`),
/// so that its reasoning is worth asking for. `gpt-5-chat` does not reason.
fn reasons_unasked(model: &str) -> bool {
    protocol::chat::takes_completion_limit(model) && !model.contains("-chat")
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

/// The status a complete Responses object with `"status": "failed"` stands for (its
/// `error` names it), `None` for any other answer. OpenAI sends such an object with a 200.
pub fn failed_status(body: &[u8]) -> Option<u16> {
    // Items have statuses of their own, so the word alone decides nothing; without it
    // the body is not parsed at all.
    static FAILED: crate::protocol::Marker =
        crate::protocol::Marker::new(|| memchr::memmem::Finder::new("\"failed\""));
    FAILED.find(body)?;
    #[derive(serde::Deserialize)]
    struct Response {
        status: Option<String>,
        #[serde(default)]
        error: Value,
    }
    let r: Response = serde_json::from_slice(body).ok()?;
    (r.status.as_deref() == Some("failed")).then(|| protocol::status_of_error(&r.error))
}

/// A Responses object → hub chat completion. One that failed never gets here: the
/// relay takes it as the failure it is ([`failed_status`]).
pub fn response_to_chat(resp: Value) -> Result<Value, Error> {
    let mut text = String::new();
    let mut refusal = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let mut details = Vec::new();
    for item in resp["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for c in item["content"].as_array().into_iter().flatten() {
                    text.push_str(c["text"].as_str().unwrap_or(""));
                    refusal.push_str(c["refusal"].as_str().unwrap_or(""));
                }
            }
            Some("reasoning") => {
                for s in item["summary"].as_array().into_iter().flatten() {
                    reasoning.push_str(s["text"].as_str().unwrap_or(""));
                }
                details.extend(detail_of(item));
            }
            Some("function_call") => calls.push(json!({"id": item["call_id"], "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"].as_str().unwrap_or("{}")}})),
            _ => {}
        }
    }
    let finish = finish_of(&resp, !calls.is_empty());
    let empty = text.is_empty();
    let mut message = protocol::assistant_message(text, reasoning, calls);
    if !details.is_empty() {
        message["reasoning_details"] = Value::Array(details);
    }
    if !refusal.is_empty() {
        // As OpenAI's chat answers carry one: no content beside it.
        message["refusal"] = json!(refusal);
        if empty {
            message["content"] = Value::Null;
        }
    }
    Ok(json!({
        "id": resp["id"], "object": "chat.completion", "created": resp["created_at"].as_u64().unwrap_or_else(now), "model": resp["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_to_chat(&resp["usage"]),
    }))
}

/// A reasoning item's encrypted content as a hub reasoning detail, so a client can
/// give it back; `None` for an item without (the source was not asked for it).
fn detail_of(item: &Value) -> Option<Value> {
    let data = item["encrypted_content"]
        .as_str()
        .filter(|d| !d.is_empty())?;
    let mut detail =
        json!({"type": "reasoning.encrypted", "data": data, "format": SIGNED_BY_OPENAI});
    if let Some(id) = item["id"].as_str() {
        detail["id"] = json!(id);
    }
    Some(detail)
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
        TEXT => Some(Delta::text(Some(event.delta?.0), None)),
        // Content, but not the answer's text, as its decoder makes it.
        REFUSAL => {
            let refusal = !event.delta?.0.is_empty();
            Some(Delta {
                has_content: refusal,
                refusal,
                ..Delta::default()
            })
        }
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
    /// Reasoning details sent so far.
    details: usize,
    /// What the last item was: a `function_call` item that reached its
    /// `output_item.done` is whole, so a break right after it cut nothing of the
    /// answer but its ending.
    last: Last,
    /// `function_call` items that reached their `output_item.done`.
    calls_done: usize,
    /// The prefix of ids made for calls that came without one ([`fit_call`]).
    made: Option<String>,
}

impl Decoder {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        protocol::hub_chunk(&self.id, self.created, &self.model, delta, finish)
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

    /// Registers a function call item and gives its announcing chunk; a call no client
    /// can read ([`fit_call`]) fails the answer.
    fn announce(&mut self, v: &Value, item: &Value, with_args: bool) -> Decoded {
        let index = self.tools.len();
        let args = if with_args {
            item["arguments"].as_str().unwrap_or("")
        } else {
            ""
        };
        let mut call = json!({"index": index, "id": item["call_id"], "type": "function",
            "function": {"name": item["name"], "arguments": args}});
        if let Err(message) = fit_call(&mut call, &mut self.made, index as u64) {
            return Decoded::Unreadable(message);
        }
        let key = item["id"]
            .as_str()
            .or(item["call_id"].as_str())
            .unwrap_or("")
            .to_string();
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
        Decoded::Chunks(vec![self.chunk(json!({"tool_calls": [call]}), None)])
    }

    /// Notes what an event makes the answer's last content (see [`Last`]).
    fn note_last(&mut self, kind: &str, v: &Value) {
        let item = v["item"]["type"].as_str();
        match kind {
            "response.output_item.added" => {
                self.last = match item {
                    Some("message") => Last::Text,
                    Some("reasoning") => Last::Reasoning,
                    // A call, open until it is done; a server tool's item.
                    _ => Last::Other,
                }
            }
            "response.output_item.done" if item == Some("function_call") => {
                self.last = Last::Call;
                self.calls_done += 1;
            }
            _ => {}
        }
    }

    /// The chunks that end an answer whose stream broke (closed, cut, went silent or
    /// sent an error event) right after a `function_call` item's `output_item.done`,
    /// before `response.completed`: the call is whole, and the answer ends as a tool
    /// call (the usage comes only with `response.completed`). Calls the break came
    /// before are lost. `None` when anything else came last, which a break may have cut.
    pub fn whole_ending(&mut self) -> Option<Vec<Value>> {
        (self.last == Last::Call).then(|| vec![self.chunk(json!({}), Some("tool_calls"))])
    }

    /// What a break cut after `function_call` items that were all done: the message or
    /// reasoning item that followed them.
    pub fn cut_after_calls(&self) -> Option<&'static str> {
        let whole = !self.tools.is_empty() && self.calls_done >= self.tools.len();
        self.last.cut_after_calls(whole)
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
            protocol::usage_chunk(&self.id, self.created, &self.model, usage),
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
        self.note_last(&kind, &v);
        let one = |c: Value| Decoded::Chunks(vec![c]);
        match kind.as_str() {
            "response.created" => {
                let r = &v["response"];
                self.id = match protocol::answer_id(&r["id"]) {
                    Ok(id) => id.unwrap_or("resp").to_string(),
                    Err(why) => return Decoded::Unreadable(why),
                };
                self.model = r["model"].as_str().unwrap_or("").to_string();
                self.created = r["created_at"].as_u64().unwrap_or_else(now);
                one(self.chunk(json!({"role": "assistant", "content": ""}), None))
            }
            "response.output_text.delta" => one(self.chunk(json!({"content": v["delta"]}), None)),
            "response.refusal.delta" => one(self.chunk(json!({"refusal": v["delta"]}), None)),
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                one(self.chunk(json!({"reasoning_content": v["delta"]}), None))
            }
            "response.output_item.added" if v["item"]["type"] == "function_call" => {
                let item = v["item"].clone();
                self.announce(&v, &item, false)
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
            // Whole only when done: `added` may carry it cut short.
            "response.output_item.done" if v["item"]["type"] == "reasoning" => {
                match detail_of(&v["item"]) {
                    Some(detail) => {
                        let detail = protocol::numbered(detail, &mut self.details);
                        one(self.chunk(json!({"reasoning_details": [detail]}), None))
                    }
                    None => Decoded::Chunks(Vec::new()),
                }
            }
            "response.output_item.done" if v["item"]["type"] == "function_call" => {
                let item = v["item"].clone();
                let key = item["id"]
                    .as_str()
                    .or(item["call_id"].as_str())
                    .unwrap_or("");
                if self.tools.contains_key(key) {
                    Decoded::Chunks(Vec::new())
                } else {
                    self.announce(&v, &item, true)
                }
            }
            "response.completed" | "response.done" | "response.incomplete" => {
                Decoded::End(self.ending(&v["response"]))
            }
            "response.failed" => {
                let e = &v["response"]["error"];
                Decoded::Failed {
                    status: super::super::status_of_error(e),
                    message: e["message"]
                        .as_str()
                        .unwrap_or("the response failed")
                        .to_string(),
                }
            }
            "error" => Decoded::Failed {
                status: super::super::status_of_error(&v),
                message: v["message"]
                    .as_str()
                    .unwrap_or("upstream error")
                    .to_string(),
            },
            _ => Decoded::Chunks(Vec::new()),
        }
    }
}
