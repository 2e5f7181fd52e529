//! Serving a Responses client its stream: hub chunks as the typed events of a Responses
//! stream, each output item opened, filled and closed as OpenAI's are. The message and
//! reasoning items are `text.rs`'s, the tool calls `calls.rs`'s; a stream that went out
//! as it came is followed by `copied.rs`.

mod calls;
mod copied;
mod text;

use serde_json::{Map, Value, json};

use self::calls::{Call, OpenTool};
use self::text::{OpenText, Part};
use super::answer::{response_id, status_of, usage_from_chat};
use super::client::{ClientTools, Echo, response_object};
use super::{minted, seal};
use crate::protocol::{add_detail, now, without_calls};
use crate::sse::Event;

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
    text: Option<Box<OpenText>>,
    tools: Vec<OpenTool>,
    /// Completed items with their output index, for `response.completed`.
    done: Vec<(usize, Value)>,
    /// Items a copied stream opened that are neither message nor reasoning (a function
    /// call, a hosted tool's call), as announced, until their end: a failed response
    /// carries them.
    opened: Vec<(usize, Value)>,
    finish: String,
    usage: Value,
    /// The stream so far went out verbatim (a same-protocol stream) and was observed.
    observed: bool,
    /// The client's tools whose calls are items of their own.
    client_tools: ClientTools,
    /// What the client asked that each Response object repeats; read into `request`
    /// when the first one is made (a stream copied as it came makes none). Boxed: the
    /// encoder is one variant of an enum.
    echo: Echo,
    request: Option<Box<Map<String, Value>>>,
    /// Text and reasoning (deltas without their calls) that came while a function call
    /// was open, written as their own items after the calls when the stream ends: a chat
    /// upstream may send text between one call's argument fragments, and closing the
    /// call to open a message item would cut it in two. A call thus closes only at the
    /// end, whole.
    after_calls: Vec<Value>,
}

impl Encoder {
    /// An encoder that names `model` in its events; calls of the client's custom tools
    /// and local shell (`client_tools`) go out as their own items; each Response object
    /// repeats `echo`.
    pub fn new(model: &str, client_tools: ClientTools, echo: Echo) -> Encoder {
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
            opened: Vec::new(),
            finish: "stop".into(),
            usage: Value::Null,
            observed: false,
            client_tools,
            echo,
            request: None,
            after_calls: Vec::new(),
        }
    }

    /// One event, numbered.
    fn ev(&mut self, kind: &str, mut data: Value) -> Event {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        Event::named(Some(kind), data.to_string())
    }

    /// The response object as it stands: its items done, and with `open` the items
    /// still open too, as the client has them so far.
    fn response(&mut self, status: &str, open: bool) -> Value {
        let mut items = self.done.clone();
        if open {
            items.extend(self.open_items());
        }
        items.sort_by_key(|(oi, _)| *oi);
        let output: Vec<Value> = items.into_iter().map(|(_, item)| item).collect();
        let request = self
            .request
            .get_or_insert_with(|| Box::new(self.echo.read()));
        let model = json!(self.model);
        response_object(&self.id, self.created, status, &model, output, request)
    }

    /// The items still open, with their output index, as the events that went out
    /// describe them so far, marked `incomplete`: a message's parts with the text
    /// streamed, a reasoning item's summary, a function call's arguments. A custom tool's
    /// input and a local shell's action are held until the call ends, so such a call is
    /// as it was announced; a copied stream's function call has the arguments its
    /// deltas brought.
    fn open_items(&self) -> Vec<(usize, Value)> {
        let mut open = Vec::new();
        if let Some(t) = self.text.as_deref() {
            let item = if t.part == Part::Reasoning {
                let part = json!({"type": "summary_text", "text": t.text});
                json!({"type": "reasoning", "id": t.id, "summary": [part],
                    "encrypted_content": seal(&t.details), "status": "incomplete"})
            } else {
                let mut content = t.parts.clone();
                // A copied message whose last part ended: no part is flowing.
                let between = self.observed && t.text.is_empty() && !t.parts.is_empty();
                content.extend((!between).then(|| {
                    if t.part == Part::Refusal {
                        json!({"type": "refusal", "refusal": t.text})
                    } else {
                        json!({"type": "output_text", "text": t.text, "annotations": t.annotations})
                    }
                }));
                json!({"type": "message", "id": t.id, "status": "incomplete", "role": "assistant",
                    "content": content})
            };
            open.push((t.oi, item));
        }
        for t in &self.tools {
            let item = match t.kind {
                Call::Function => {
                    json!({"type": "function_call", "id": minted("fc", &t.call_id), "call_id": t.call_id,
                        "name": t.name, "arguments": t.args, "status": "incomplete"})
                }
                Call::Custom => {
                    json!({"type": "custom_tool_call", "id": minted("ctc", &t.call_id), "call_id": t.call_id,
                        "name": t.name, "input": "", "status": "incomplete"})
                }
                Call::LocalShell => {
                    json!({"type": "local_shell_call", "id": minted("lsc", &t.call_id), "call_id": t.call_id,
                        "action": {"type": "exec", "command": [], "env": {}}, "status": "incomplete"})
                }
            };
            open.push((t.oi, item));
        }
        for (oi, item) in &self.opened {
            let mut item = item.clone();
            item["status"] = json!("incomplete");
            open.push((*oi, item));
        }
        open
    }

    /// `response.created` and `response.in_progress`, once; they name the model the
    /// first chunk names, and are dated as it is (the source's time: chat's `created`,
    /// a Responses source's `created_at`, the time it answered for the others), as the
    /// unstreamed answer is.
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
        self.created = chunk["created"].as_u64().unwrap_or_else(now);
        let r = self.response("in_progress", false);
        out.push(self.ev("response.created", json!({"response": r})));
        let r = self.response("in_progress", false);
        out.push(self.ev("response.in_progress", json!({"response": r})));
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
        if self.tools.is_empty() {
            self.content(d, &mut out);
        } else if let Some(rest) = without_calls(d) {
            self.after_calls.push(rest);
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            self.tool_delta(call, &mut out);
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = f.to_string();
        }
        out
    }

    /// The reasoning, reasoning details, text and refusal of one delta.
    fn content(&mut self, d: &Value, out: &mut Vec<Event>) {
        if let Some(r) = d["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
            self.text_delta(Part::Reasoning, r, out);
        }
        if let Some(details) = d["reasoning_details"].as_array().filter(|d| !d.is_empty())
            && let Some(t) = self.open_text(Part::Reasoning, out)
        {
            for piece in details {
                add_detail(&mut t.details, piece);
            }
        }
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            self.text_delta(Part::Text, t, out);
        }
        if let Some(r) = d["refusal"].as_str().filter(|r| !r.is_empty()) {
            self.text_delta(Part::Refusal, r, out);
        }
        if let Some(a) = d["annotations"].as_array().filter(|a| !a.is_empty()) {
            self.annotate(a, out);
        }
    }

    /// Closes the stream with `response.completed` (or `response.incomplete`).
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        self.start(&Value::Null, &mut out);
        self.close_text(&mut out);
        self.close_tools(&mut out);
        for d in std::mem::take(&mut self.after_calls) {
            self.content(&d, &mut out);
        }
        self.close_text(&mut out);
        let (status, incomplete) = status_of(&self.finish);
        let mut r = self.response(status, false);
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

    /// `response.failed` with the error, its response carrying the items the client
    /// has so far (the SDKs take the final response from it: openai-node's
    /// `finalResponse()` is this event's `response`), the open ones `incomplete`.
    /// `text` and `reasoning` are what the client has: a copied stream's open item
    /// knows no text of its own, its deltas being copied unread. Text and reasoning
    /// held behind a call the break cut go out first, as items of their own beside the
    /// call, which stays open: the client reads everything the source said.
    pub fn fail(&mut self, status: u16, message: &str, text: &str, reasoning: &str) -> Vec<Event> {
        if self.observed && self.text.as_ref().is_some_and(|t| t.text.is_empty()) {
            self.fill(text, reasoning);
        }
        let mut out = Vec::new();
        if !self.after_calls.is_empty() {
            // Out of the way, the cut calls are not closed as whole by a new item.
            let cut = std::mem::take(&mut self.tools);
            for d in std::mem::take(&mut self.after_calls) {
                self.content(&d, &mut out);
            }
            self.tools = cut;
        }
        let code = match status {
            429 => "rate_limit_exceeded",
            400..=499 => "invalid_request",
            _ => "server_error",
        };
        let mut r = self.response("failed", true);
        r["error"] = json!({"code": code, "message": message});
        out.push(self.ev("response.failed", json!({"response": r})));
        out
    }
}
