//! Serving a Anthropic client: its requests become hub chat requests, and chat answers
//! and chunks become Anthropic answers and events.

use serde_json::{Value, json};

use super::{
    UNSIGNED, block_of, client_id, detail_of, error_json, finish_reason, source_id, usage_to_chat,
};
use crate::error::Error;
use crate::protocol::{self, Must, ToolChoice, text_of};
use crate::sse::Event;

/// An Anthropic document block as a chat part: one given inline (a PDF) becomes a
/// `file` part, plain text a text part. One given by URL or file id has no chat form,
/// and is refused rather than left out unseen.
pub(super) fn document_part(b: &Value) -> Result<Value, Error> {
    let s = &b["source"];
    match s["type"].as_str() {
        Some("base64") => {
            let media_type = s["media_type"].as_str().unwrap_or("application/pdf");
            let url = protocol::to_data_url(media_type, s["data"].as_str().unwrap_or(""));
            Ok(protocol::file_part(b["title"].as_str(), url))
        }
        Some("text") => Ok(json!({"type": "text", "text": s["data"]})),
        _ => Err(Error::Untranslatable(
            "a `document` by URL or file id cannot be passed to this model's source: send it inline (base64)".into(),
        )),
    }
}

/// An Anthropic image block as a chat `image_url` part (a data URL when inline).
fn image_part(b: &Value) -> Value {
    let s = &b["source"];
    let url = match s["type"].as_str() {
        Some("base64") => protocol::to_data_url(
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

/// What [`request_to_chat`] reads, which would drop a wrong type or an unknown word,
/// with what each must be.
const CHECKED: [(&str, Must); 15] = [
    ("max_tokens", Must::Count),
    ("temperature", Must::Number),
    ("top_p", Must::Number),
    ("top_k", Must::Count),
    ("stop_sequences", Must::Stops),
    ("system", Must::TextOrList),
    ("tools", Must::List),
    ("tool_choice", Must::Object),
    ("tool_choice.type", Must::OneOf("auto any tool none")),
    ("thinking", Must::Object),
    ("thinking.type", Must::OneOf("enabled disabled adaptive")),
    ("output_config", Must::Object),
    (
        "output_config.effort",
        Must::OneOf("low medium high xhigh max"),
    ),
    ("thinking.budget_tokens", Must::Count),
    ("metadata.user_id", Must::Text),
];

/// A Messages request from a client → hub chat request.
pub fn request_to_chat(mut req: Value) -> Result<Value, Error> {
    protocol::check(&mut req, &CHECKED)?;
    let Some(list) = req["messages"].as_array() else {
        // A Responses body sent here: its `input` is what `messages` would be.
        let sent = match req["messages"].is_null() && !req["input"].is_null() {
            true => "; `input` is a Responses body's, for /v1/responses",
            false => "",
        };
        return Err(Error::bad_request(format!(
            "`messages` is required and must be an array{sent}"
        )));
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
            return Err(Error::bad_request(format!(
                "unknown message role `{role}`; expected `user` or `assistant`"
            )));
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
                .map(|b| json!({"id": source_id(&b["id"]), "type": "function", "function": {"name": b["name"], "arguments": b["input"].to_string()}}))
                .collect();
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            // Signed thinking, for a source that gives it back to Claude (OpenRouter).
            let details: Vec<Value> = blocks.iter().filter_map(detail_of).collect();
            if !details.is_empty() {
                msg["reasoning_details"] = Value::Array(details);
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
                    messages.push(json!({"role": "tool", "tool_call_id": source_id(&b["tool_use_id"]), "content": content}));
                }
                kind => match block_part(b)? {
                    Some(part) => parts.push(part),
                    // Dropped, it would change what was asked without a word.
                    None => {
                        return Err(Error::Untranslatable(format!(
                            "a user content block of type `{}` can go only to an Anthropic source; chat carries text, image, document and tool_result blocks",
                            kind.unwrap_or("?")
                        )));
                    }
                },
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
    protocol::copy_fields(
        &req,
        &mut out,
        &["max_tokens", "temperature", "top_p", "top_k", "stream"],
    );
    if req["stream"] == json!(true) {
        out["stream_options"] = json!({"include_usage": true});
    }
    // A lone string too, as chat's `stop` takes one.
    if !req["stop_sequences"].is_null() {
        out["stop"] = req["stop_sequences"].clone();
    }
    if let Some(tools) = req["tools"].as_array() {
        let mut converted = Vec::new();
        for t in tools {
            if t["input_schema"].is_null() {
                converted.push(
                    protocol::tools::anthropic_builtin(t)
                        .ok_or_else(|| protocol::tools::anthropic_server_tool(t))?,
                );
                continue;
            }
            // A tool may have no description; strict validators refuse a null one.
            let mut f = json!({"name": t["name"], "parameters": t["input_schema"]});
            protocol::copy_fields(t, &mut f, &["description"]);
            converted.push(json!({"type": "function", "function": f}));
        }
        out["tools"] = Value::Array(converted);
    }
    let tc = &req["tool_choice"];
    let choice = match tc["type"].as_str() {
        Some("auto") => Some(ToolChoice::Auto),
        Some("any") => Some(ToolChoice::Required),
        Some("none") => Some(ToolChoice::Never),
        Some("tool") => Some(ToolChoice::Function(
            tc["name"]
                .as_str()
                .ok_or_else(|| protocol::nameless("tool"))?,
        )),
        _ => None,
    };
    if let Some(c) = choice {
        out["tool_choice"] = c.to_chat();
    }
    if tc["disable_parallel_tool_use"] == json!(true) {
        out["parallel_tool_calls"] = json!(false);
    }
    // Adaptive thinking (Claude 4.6) leaves the budget to the model, steered by
    // `output_config.effort`, which also applies without thinking.
    let effort = match req["output_config"]["effort"].as_str() {
        Some(e @ ("low" | "medium" | "high")) => Some(e),
        Some("max" | "xhigh") => Some("high"),
        _ => None,
    };
    match req["thinking"]["type"].as_str() {
        Some("enabled") => {
            let given = req["thinking"]["budget_tokens"].as_u64();
            out["reasoning_effort"] = json!(match given.unwrap_or(4096) {
                0..=2048 => "low",
                2049..=8192 => "medium",
                _ => "high",
            });
            // The number itself, for a source that takes one (Gemini's `thinkingBudget`).
            if let Some(budget) = given {
                out[protocol::THINKING_BUDGET] = json!(budget);
            }
        }
        Some("adaptive") => out["reasoning_effort"] = json!(effort.unwrap_or("medium")),
        _ => {
            if let Some(e) = effort {
                out["reasoning_effort"] = json!(e);
            }
        }
    }
    // Structured output: `output_config.format`, or the older beta's `output_format`.
    let format = match &req["output_config"]["format"] {
        f if f.is_object() => f,
        _ => &req["output_format"],
    };
    match format["type"].as_str() {
        Some("json_schema") if format["schema"].is_object() => {
            out["response_format"] = json!({"type": "json_schema", "json_schema": {
                "name": "output", "schema": format["schema"], "strict": true,
            }});
        }
        Some(other) => {
            return Err(Error::Untranslatable(format!(
                "output format `{other}` can go only to an Anthropic source; Routeplane maps `json_schema` with a `schema` to others"
            )));
        }
        None => {}
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
/// requires `input_tokens` and `output_tokens` as numbers (the AI SDK's Anthropic
/// provider refuses a null one, and the whole stream with it), so counts the upstream
/// did not report are 0 there, as Anthropic's own `message_start` begins before it has
/// counted; the optional cache count is left out instead.
fn usage_from_chat(u: &Value) -> Value {
    if !u.is_object() {
        return json!({"input_tokens": 0, "output_tokens": 0});
    }
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = u["prompt_tokens_details"]["cached_tokens"].as_u64();
    let mut usage = json!({
        "input_tokens": prompt.saturating_sub(cached.unwrap_or(0)),
        "output_tokens": u["completion_tokens"].as_u64().unwrap_or(0),
    });
    // Only a count the upstream gave: an absent one is not a zero.
    if let Some(read) = cached {
        usage["cache_read_input_tokens"] = json!(read);
    }
    usage
}

/// An Anthropic message id derived from a chat id.
fn message_id(chat_id: &Value) -> String {
    match chat_id.as_str() {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) => format!("msg_{id}"),
        None => "msg_routeplane".to_string(),
    }
}

/// Hub chat completion → Messages answer. A client that `thinks` gets a thinking block
/// first even when the source gave none, marked as Routeplane's: if Claude answers the
/// next turn, that marks a turn whose thinking Claude never signed (see `drop_unsigned`).
pub fn response_from_chat(chat: Value, thinks: bool) -> Value {
    let choice = &chat["choices"][0];
    let msg = &choice["message"];
    // Claude's signed thinking (through OpenRouter, say) goes back as Claude signed it.
    let mut content: Vec<Value> = msg["reasoning_details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(block_of)
        .collect();
    let reasoning = msg["reasoning_content"].as_str().unwrap_or("");
    if content.is_empty() && (thinks || !reasoning.is_empty()) {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": UNSIGNED}));
    }
    let text = text_of(&msg["content"]);
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        let input =
            protocol::arguments_object(call["function"]["arguments"].as_str().unwrap_or("{}"));
        content.push(json!({"type": "tool_use", "id": client_id(&call["id"]), "name": call["function"]["name"], "input": input}));
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
    /// A redacted thinking block, whole at its start.
    Redacted,
    /// Argument fragments of chat tool call N are flowing.
    Tool(u64),
}

/// Writes hub chunks to an Anthropic client as Messages events.
#[derive(Debug)]
pub struct Encoder {
    model: String,
    /// The client asked for thinking: a turn begins with a thinking block.
    thinks: bool,
    /// `message_start` went out.
    started: bool,
    /// The open block and its index.
    open: Option<(usize, Block)>,
    /// The open thinking block has Claude's signature.
    signed: bool,
    /// The open block is a broken answer's thinking: it takes nothing more (see
    /// [`Encoder::resume`]).
    sealed: bool,
    next_index: usize,
    stop: &'static str,
    usage: Value,
    /// A `message_delta` already went out verbatim (a same-protocol stream's own).
    delta_sent: bool,
    /// Calls that began while another call's block was open, whole so far: Anthropic
    /// blocks cannot interleave, and a chat upstream may send every call's id and name
    /// before any arguments. Each is written when the open call's block closes.
    waiting: Vec<WaitingCall>,
    /// Text and thinking (deltas without their calls) that came while a call's block
    /// was open, written after the calls when the stream ends: a chat upstream may send
    /// text between one call's argument fragments, and a block cannot reopen, so
    /// writing the text at once would cut the call short. A call's block thus closes
    /// only at the end, and each call is one whole block.
    after_calls: Vec<Value>,
}

/// A tool call held back while another call's block is open.
#[derive(Debug)]
struct WaitingCall {
    /// The chat call's index.
    n: u64,
    id: Value,
    name: Value,
    arguments: String,
}

impl Encoder {
    /// An encoder that names `model` in its events; a client that `thinks` gets a
    /// thinking block first in every answer (see [`response_from_chat`]).
    pub fn new(model: &str, thinks: bool) -> Encoder {
        Encoder {
            model: model.to_string(),
            thinks,
            started: false,
            open: None,
            signed: false,
            sealed: false,
            next_index: 0,
            stop: "end_turn",
            usage: Value::Null,
            delta_sent: false,
            waiting: Vec::new(),
            after_calls: Vec::new(),
        }
    }

    /// Learns the open block and the next index from an event that went out verbatim.
    pub fn observe(&mut self, ev: &Event) {
        // Deltas, the bulk of a stream, change nothing here: not even parsed. Only a
        // thinking block's signature is looked for, so that a break after it (before the
        // block's stop) does not mark the block unsigned.
        if matches!(ev.event.as_deref(), Some("content_block_delta" | "ping")) {
            if let Some((_, Block::Thinking)) = self.open
                && ev
                    .data
                    .as_deref()
                    .is_some_and(|d| d.contains("\"signature_delta\""))
            {
                self.signed = true;
            }
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
                self.signed = false;
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
        // Counts come with `message_delta`; until then a source that reports no usage
        // on its first chunk has counted nothing yet, as Anthropic's own says.
        let mut usage = usage_from_chat(&chunk["usage"]);
        usage["output_tokens"] = json!(0);
        out.push(Self::ev(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": message_id(id), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": usage,
            }}),
        ));
    }

    /// From now on another answer continues the open stream. A thinking block the break
    /// left open is sealed: the continuation's thinking goes into a block of its own,
    /// and this one is closed first, marked unsigned unless its signature came.
    ///
    /// Appended to, it would read as both attempts' thinking under the continuation's
    /// signature, made over the second part only, and Anthropic refuses modified
    /// thinking when a client gives it back in a tool loop. Closed apart, each block
    /// keeps what it was signed over: the broken one carries Routeplane's unsigned
    /// marker and is taken out of the next request (`drop_unsigned`), the
    /// continuation's keeps Claude's signature. Text, by contrast, is spliced into the
    /// open text block: a prefill makes the continuation carry it on.
    pub fn resume(&mut self) {
        self.sealed = matches!(self.open, Some((_, Block::Thinking)));
    }

    /// Closes the open block, if any; a call's block closing lets the calls held back
    /// go out, each whole.
    fn close(&mut self, out: &mut Vec<Event>) {
        let Some((index, kind)) = self.open.take() else {
            return;
        };
        self.sealed = false;
        if kind == Block::Thinking && !self.signed {
            out.push(Self::ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": UNSIGNED}})));
        }
        out.push(Self::ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        if let Block::Tool(_) = kind {
            for call in std::mem::take(&mut self.waiting) {
                let block = json!({"type": "tool_use", "id": client_id(&call.id), "name": call.name, "input": {}});
                let i = self.ensure(Block::Tool(call.n), block, out);
                if !call.arguments.is_empty() {
                    out.push(Self::ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": call.arguments}})));
                }
                // Not `close`: its calls are all out, and this must not recurse.
                self.open = None;
                out.push(Self::ev(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": i}),
                ));
            }
        }
    }

    /// One chat tool-call fragment: into the open call's block, held back while another
    /// call's block is open, or a new block.
    fn tool_fragment(&mut self, call: &Value, out: &mut Vec<Event>) {
        let n = call["index"].as_u64().unwrap_or(0);
        let args = call["function"]["arguments"].as_str().unwrap_or("");
        if let Some(w) = self.waiting.iter_mut().find(|w| w.n == n) {
            w.arguments.push_str(args);
            return;
        }
        if let Some((_, Block::Tool(open))) = self.open
            && open != n
        {
            self.waiting.push(WaitingCall {
                n,
                id: call["id"].clone(),
                name: call["function"]["name"].clone(),
                arguments: args.to_string(),
            });
            return;
        }
        let block = json!({"type": "tool_use", "id": client_id(&call["id"]), "name": call["function"]["name"], "input": {}});
        let i = self.ensure(Block::Tool(n), block, out);
        if !args.is_empty() {
            out.push(Self::ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": args}})));
        }
    }

    /// A streamed reasoning detail Claude signed: the open thinking block's signature,
    /// or a redacted thinking block of its own. Its text came as `reasoning_content`.
    fn signed(&mut self, piece: &Value, out: &mut Vec<Event>) {
        let Some(block) = block_of(piece) else {
            return;
        };
        if block["type"] == "redacted_thinking" {
            self.ensure(Block::Redacted, block, out);
            self.close(out);
            return;
        }
        // Never on a broken answer's thinking (`resume`): this signature is not over it.
        if let Some((i, Block::Thinking)) = self.open
            && !self.sealed
        {
            out.push(Self::ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": block["signature"]}})));
            self.signed = true;
        }
    }

    /// Makes `kind` the open block, opening it with `block` if it is not already.
    fn ensure(&mut self, kind: Block, block: Value, out: &mut Vec<Event>) -> usize {
        if let Some((index, open)) = self.open
            && open == kind
            && !self.sealed
        {
            return index;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        self.signed = false;
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
        let calling = matches!(self.open, Some((_, Block::Tool(_))));
        if !calling {
            self.content(d, &mut out);
        } else if let Some(rest) = protocol::without_calls(d) {
            self.after_calls.push(rest);
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            self.tool_fragment(call, &mut out);
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.stop = stop_reason(f);
        }
        out
    }

    /// The thinking, signed thinking and text of one delta.
    fn content(&mut self, d: &Value, out: &mut Vec<Event>) {
        let reasoning = d["reasoning_content"].as_str().filter(|r| !r.is_empty());
        let text = d["content"].as_str().filter(|t| !t.is_empty());
        // A turn from another source that begins without thinking still begins with a
        // thinking block, marked, when the client asked for thinking (`drop_unsigned`).
        if self.thinks
            && self.next_index == 0
            && reasoning.is_none()
            && (text.is_some() || d["tool_calls"].is_array())
        {
            self.ensure(
                Block::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            );
            self.close(out);
        }
        if let Some(r) = reasoning {
            let i = self.ensure(
                Block::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            );
            out.push(Self::ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": r}})));
        }
        for piece in d["reasoning_details"].as_array().into_iter().flatten() {
            self.signed(piece, out);
        }
        if let Some(t) = text {
            let i = self.ensure(Block::Text, json!({"type": "text", "text": ""}), out);
            out.push(Self::ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}})));
        }
    }

    /// Closes the stream: the open block, what came after the calls, `message_delta`,
    /// `message_stop`.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        self.start(&Value::Null, &mut out);
        self.close(&mut out);
        for d in std::mem::take(&mut self.after_calls) {
            self.content(&d, &mut out);
        }
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

    /// An `error` event, after the text and thinking held behind a call the break cut:
    /// the client reads everything the source said. Blocks cannot interleave, so the
    /// cut call's block stops first, its input as far as it came; calls waiting behind
    /// it never began for the client and stay out.
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Event> {
        let mut out = Vec::new();
        if !self.after_calls.is_empty() {
            if let Some((index, Block::Tool(_))) = self.open {
                self.open = None;
                self.waiting.clear();
                out.push(Self::ev(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": index}),
                ));
            }
            for d in std::mem::take(&mut self.after_calls) {
                self.content(&d, &mut out);
            }
        }
        out.push(Self::ev("error", error_json(status, message)));
        out
    }
}
