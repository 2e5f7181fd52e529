//! Serving a Responses client its stream: hub chunks as the typed events of a Responses
//! stream, each output item opened, filled and closed as OpenAI's are.

use serde_json::{Map, Value, json};

use super::answer::{annotation, local_shell_call, response_id, status_of, usage_from_chat};
use super::client::{ClientTools, Echo, custom_input, response_object};
use super::{minted, seal};
use crate::protocol::{add_detail, now, without_calls};
use crate::sse::Event;

/// What a chat tool call is to a Responses client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// A `function_call`, its arguments streamed as they come.
    Function,
    /// A call of one of the client's custom tools: its text goes out whole at its end,
    /// once it can be taken out of the arguments.
    Custom,
    /// A call of the client's local shell: its action goes out whole at its end.
    LocalShell,
}

/// What an item's flowing text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// A reasoning item's summary.
    Reasoning,
    /// A message's `output_text`.
    Text,
    /// A message's `refusal`.
    Refusal,
}

/// A message or reasoning item whose text is flowing to the client.
#[derive(Debug)]
struct OpenText {
    /// Its output index.
    oi: usize,
    /// Its item id.
    id: String,
    /// What its text is.
    part: Part,
    /// Text so far.
    text: String,
    /// A reasoning item's details so far, sealed into it at its end.
    details: Vec<Value>,
    /// A message's parts before the flowing one: a refusal and text are parts of one
    /// message, as OpenAI writes them, not two messages. The flowing part's
    /// `content_index` is their number.
    parts: Vec<Value>,
    /// The flowing `output_text`'s annotations so far.
    annotations: Vec<Value>,
}

impl OpenText {
    /// A message or reasoning item that begins at output index `oi`, its text empty;
    /// boxed, as the encoder holds it (it is one variant of an enum).
    fn new(oi: usize, id: String, part: Part) -> Box<OpenText> {
        Box::new(OpenText {
            oi,
            id,
            part,
            text: String::new(),
            details: Vec::new(),
            parts: Vec::new(),
            annotations: Vec::new(),
        })
    }
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
    /// What the call is to the client.
    kind: Call,
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
        // from what the relay collected when the stream is resumed. A call's arguments
        // and a refusal (rare, both) are not collected there, and a cut one's
        // `response.failed` carries them.
        let kind = ev.event.as_deref().unwrap_or("");
        if kind.ends_with(".delta") {
            if !self.opened.is_empty() && kind.ends_with("_call_arguments.delta") {
                self.add_arguments(data);
            }
            if kind == "response.refusal.delta" {
                self.add_refusal(data);
            }
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
                match item["type"].as_str() {
                    Some(t @ ("message" | "reasoning")) => {
                        let part = if t == "reasoning" {
                            Part::Reasoning
                        } else {
                            Part::Text
                        };
                        self.text = Some(OpenText::new(oi, id, part));
                    }
                    _ => self.opened.push((oi, item.clone())),
                }
            }
            // A message's parts, one after another: a refusal's text is its own, not
            // the answer's text the relay collected.
            "response.content_part.added" => {
                if let Some(t) = self.text.as_mut().filter(|t| t.id == v["item_id"]) {
                    t.part = match v["part"]["type"].as_str() {
                        Some("refusal") => Part::Refusal,
                        _ => Part::Text,
                    };
                }
            }
            "response.content_part.done" => {
                if let Some(t) = self.text.as_mut().filter(|t| t.id == v["item_id"]) {
                    t.parts.push(v["part"].clone());
                    t.text.clear();
                }
            }
            "response.output_item.done" => {
                let oi = v["output_index"].as_u64().unwrap_or(0) as usize;
                if self.text.as_ref().is_some_and(|t| t.oi == oi) {
                    self.text = None;
                }
                self.opened.retain(|(at, _)| *at != oi);
                self.done.push((oi, v["item"].clone()));
            }
            _ => {}
        }
    }

    /// Adds a copied `response.function_call_arguments.delta` to the open call it names.
    fn add_arguments(&mut self, data: &str) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let (Some(id), Some(more)) = (v["item_id"].as_str(), v["delta"].as_str()) else {
            return;
        };
        let call = self.opened.iter_mut().map(|(_, item)| item);
        if let Some(item) = call.filter(|i| i["id"] == id).last()
            && let Some(Value::String(args)) = item.get_mut("arguments")
        {
            args.push_str(more);
        }
    }

    /// Adds a copied `response.refusal.delta` to the open message's refusal.
    fn add_refusal(&mut self, data: &str) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(t) = self.text.as_mut().filter(|t| t.part == Part::Refusal)
            && let Some(more) = v["delta"].as_str()
        {
            t.text.push_str(more);
        }
    }

    /// Continues the open stream: an observed open item gets the text the client has.
    pub fn resume(&mut self, text: &str, reasoning: &str) {
        if self.observed {
            self.fill(text, reasoning);
        }
    }

    /// Gives the open item of a copied stream, whose deltas are not read, its share of
    /// what the client has: `text` and `reasoning` are the whole answer's, and the items
    /// of its kind done before it (Codex models' commentary message before the final
    /// one) have theirs.
    fn fill(&mut self, text: &str, reasoning: &str) {
        let Some(part) = self.text.as_ref().map(|t| t.part) else {
            return;
        };
        let (all, kind, parts) = match part {
            Part::Reasoning => (reasoning, "reasoning", "summary"),
            Part::Text => (text, "message", "content"),
            // Read from its own deltas (`add_refusal`): the text is not the refusal's.
            Part::Refusal => return,
        };
        let mut done: Vec<&(usize, Value)> = self
            .done
            .iter()
            .filter(|(_, i)| i["type"] == kind)
            .collect();
        done.sort_by_key(|(oi, _)| *oi);
        // The open message's own parts done before the flowing one had theirs too.
        let own_parts = self.text.as_ref().map_or(&[][..], |t| t.parts.as_slice());
        let before: String = done
            .iter()
            .flat_map(|(_, i)| i[parts].as_array().into_iter().flatten())
            .chain(own_parts)
            .filter_map(|p| p["text"].as_str())
            .collect();
        // A source that joins its items' texts otherwise than end to end: all of it,
        // rather than lose any.
        let own = all.strip_prefix(before.as_str()).unwrap_or(all);
        if let Some(t) = self.text.as_mut() {
            t.text = own.to_string();
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

    /// Closes the open message or reasoning item.
    fn close_text(&mut self, out: &mut Vec<Event>) {
        let Some(t) = self.text.take() else { return };
        let (oi, id) = (t.oi, t.id.clone());
        let item = if t.part == Part::Reasoning {
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
            // Sealed even with no details, as in `response_from_chat`.
            json!({"type": "reasoning", "id": id, "summary": [part], "encrypted_content": seal(&t.details)})
        } else {
            let mut t = t;
            let part = self.end_part(&mut t, out);
            t.parts.push(part);
            json!({"type": "message", "id": id, "status": "completed", "role": "assistant", "content": t.parts})
        };
        let ev = self.ev(
            "response.output_item.done",
            json!({"output_index": oi, "item": item}),
        );
        out.push(ev);
        self.done.push((oi, item));
    }

    /// Ends the flowing part of the message `t` (its text, then the part) and gives it.
    fn end_part(&mut self, t: &mut OpenText, out: &mut Vec<Event>) -> Value {
        let (oi, id, ci) = (t.oi, t.id.clone(), t.parts.len());
        let text = std::mem::take(&mut t.text);
        let (done, part) = if t.part == Part::Refusal {
            let ev = self.ev(
                "response.refusal.done",
                json!({"item_id": id, "output_index": oi, "content_index": ci, "refusal": text}),
            );
            (ev, json!({"type": "refusal", "refusal": text}))
        } else {
            let ev = self.ev(
                "response.output_text.done",
                json!({"item_id": id, "output_index": oi, "content_index": ci, "text": text}),
            );
            let annotations = std::mem::take(&mut t.annotations);
            (
                ev,
                json!({"type": "output_text", "text": text, "annotations": annotations}),
            )
        };
        out.push(done);
        let ev = self.ev(
            "response.content_part.done",
            json!({"item_id": id, "output_index": oi, "content_index": ci, "part": part}),
        );
        out.push(ev);
        part
    }

    /// Begins a part of `kind` in the message `t`, after its other parts.
    fn begin_part(&mut self, t: &mut OpenText, kind: Part, out: &mut Vec<Event>) {
        t.part = kind;
        let part = if kind == Part::Refusal {
            json!({"type": "refusal", "refusal": ""})
        } else {
            json!({"type": "output_text", "text": "", "annotations": []})
        };
        let (oi, ci) = (t.oi, t.parts.len());
        let ev = self.ev(
            "response.content_part.added",
            json!({"item_id": t.id, "output_index": oi, "content_index": ci, "part": part}),
        );
        out.push(ev);
    }

    /// Adds the citations of a delta (hub annotations) to the flowing `output_text`.
    fn annotate(&mut self, annotations: &[Value], out: &mut Vec<Event>) {
        let Some(mut t) = self.text.take() else {
            return;
        };
        if t.part == Part::Text {
            for a in annotations.iter().filter_map(annotation) {
                let ev = self.ev(
                    "response.output_text.annotation.added",
                    json!({"item_id": t.id, "output_index": t.oi, "content_index": t.parts.len(),
                        "annotation_index": t.annotations.len(), "annotation": a}),
                );
                out.push(ev);
                t.annotations.push(a);
            }
        }
        self.text = Some(t);
    }

    /// Closes every open function call.
    fn close_tools(&mut self, out: &mut Vec<Event>) {
        for t in std::mem::take(&mut self.tools) {
            match t.kind {
                Call::Custom => {
                    self.close_custom(t, out);
                    continue;
                }
                Call::LocalShell => {
                    let item = local_shell_call(&t.call_id, &t.args);
                    let ev = self.ev(
                        "response.output_item.done",
                        json!({"output_index": t.oi, "item": item}),
                    );
                    out.push(ev);
                    self.done.push((t.oi, item));
                    continue;
                }
                Call::Function => {}
            }
            let id = minted("fc", &t.call_id);
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
        let id = minted("ctc", &t.call_id);
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
    fn text_delta(&mut self, kind: Part, delta: &str, out: &mut Vec<Event>) {
        let Some(t) = self.open_text(kind, out) else {
            return;
        };
        t.text.push_str(delta);
        let (oi, id, ci) = (t.oi, t.id.clone(), t.parts.len());
        let ev = match kind {
            Part::Reasoning => self.ev(
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "delta": delta}),
            ),
            Part::Text => self.ev(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": oi, "content_index": ci, "delta": delta}),
            ),
            Part::Refusal => self.ev(
                "response.refusal.delta",
                json!({"item_id": id, "output_index": oi, "content_index": ci, "delta": delta}),
            ),
        };
        out.push(ev);
    }

    /// The open message (or reasoning) item, opened when there is none of that kind.
    fn open_text(&mut self, kind: Part, out: &mut Vec<Event>) -> Option<&mut OpenText> {
        let message = |p: Part| p != Part::Reasoning;
        match self.text.take() {
            // Text after a refusal, or a refusal after text: the next part of the message.
            Some(mut t) if t.part != kind && message(t.part) && message(kind) => {
                let part = self.end_part(&mut t, out);
                t.parts.push(part);
                self.begin_part(&mut t, kind, out);
                self.text = Some(t);
            }
            Some(t) if t.part != kind => {
                self.text = Some(t);
                self.close_text(out);
            }
            t => self.text = t,
        }
        if self.text.is_none() {
            self.close_tools(out);
            let oi = self.next_oi;
            self.next_oi += 1;
            let prefix = if kind == Part::Reasoning { "rs" } else { "msg" };
            let id = minted(prefix, &format!("{}_{oi}", self.id));
            if kind == Part::Reasoning {
                let ev = self.ev("response.output_item.added", json!({"output_index": oi, "item": {"type": "reasoning", "id": id, "summary": []}}));
                out.push(ev);
                let ev = self.ev("response.reasoning_summary_part.added", json!({"item_id": id, "output_index": oi, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
                out.push(ev);
                self.text = Some(OpenText::new(oi, id, kind));
            } else {
                let ev = self.ev("response.output_item.added", json!({"output_index": oi, "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}));
                out.push(ev);
                let mut t = OpenText::new(oi, id, kind);
                self.begin_part(&mut t, kind, out);
                self.text = Some(t);
            }
        }
        self.text.as_deref_mut()
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
            let kind = if self.client_tools.is_custom(&name) {
                Call::Custom
            } else if self.client_tools.is_local_shell(&name) {
                Call::LocalShell
            } else {
                Call::Function
            };
            let item = if kind == Call::Custom {
                json!({"type": "custom_tool_call", "id": minted("ctc", &call_id), "call_id": call_id, "name": name, "input": "", "status": "in_progress"})
            } else if kind == Call::LocalShell {
                json!({"type": "local_shell_call", "id": minted("lsc", &call_id), "call_id": call_id,
                    "action": {"type": "exec", "command": [], "env": {}}, "status": "in_progress"})
            } else {
                json!({"type": "function_call", "id": minted("fc", &call_id), "call_id": call_id, "name": name, "arguments": "", "status": "in_progress"})
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
                kind,
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
        if t.kind != Call::Function {
            // Held: the text or the action is inside JSON until the arguments are whole.
            return;
        }
        let (oi, id) = (t.oi, minted("fc", &t.call_id));
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
