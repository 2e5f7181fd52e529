//! Serving a Responses client: its requests become hub chat requests, and chat answers
//! and chunks become Responses answers and events.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{FILE_FIELDS, SHARED_FIELDS, minted, seal, unseal};
use crate::body::RawBody;
use crate::error::Error;
use crate::protocol::{ToolChoice, add_detail, copy_fields, now, text_of, without_calls};
use crate::sse::Event;

/// A Responses request from a client → hub chat request.
pub fn request_to_chat(req: Value) -> Result<Value, Error> {
    if !req["previous_response_id"].is_null() {
        return Err(Error::Untranslatable(
            "`previous_response_id` needs a Responses upstream; send the full conversation in `input` instead".into(),
        ));
    }
    let mut messages: Vec<Value> = Vec::new();
    // Thinking another source signed, given back for the turn that follows it: it goes
    // with that turn's calls, so the source can keep thinking through a tool loop.
    let mut signed: Option<Vec<Value>> = None;
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
                        let mut message =
                            json!({"role": role, "content": content_to_chat(&item["content"])?});
                        if let Some(details) = signed.take().filter(|_| role == "assistant") {
                            message["reasoning_details"] = Value::Array(details);
                        }
                        messages.push(message);
                    }
                    kind @ ("function_call" | "custom_tool_call") => {
                        // A custom tool's text travels as a function's one `input` argument.
                        let arguments = if kind == "custom_tool_call" {
                            json!({"input": item["input"].as_str().unwrap_or("")}).to_string()
                        } else {
                            item["arguments"].as_str().unwrap_or("{}").to_string()
                        };
                        let call = json!({"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": arguments}});
                        // Consecutive calls (and text just before them) form one assistant
                        // turn; reasoning given back begins a new one.
                        match messages.last_mut() {
                            Some(last) if last["role"] == "assistant" && signed.is_none() => {
                                if !last["tool_calls"].is_array() {
                                    last["tool_calls"] = json!([]);
                                }
                                if let Some(a) = last["tool_calls"].as_array_mut() {
                                    a.push(call);
                                }
                            }
                            _ => {
                                let mut message = json!({"role": "assistant", "content": null, "tool_calls": [call]});
                                if let Some(details) = signed.take() {
                                    message["reasoning_details"] = Value::Array(details);
                                }
                                messages.push(message);
                            }
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
                    "reasoning" => {
                        signed = item["encrypted_content"].as_str().and_then(unseal);
                    }
                    other => {
                        return Err(Error::Untranslatable(format!(
                            "input item type `{other}` is only available from a Responses upstream"
                        )));
                    }
                }
            }
        }
        Value::Null => {
            return Err(Error::bad_request(
                "`input` is required: a string or a list of items",
            ));
        }
        _ => {
            return Err(Error::bad_request(
                "`input` must be a string or a list of items",
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
        flatten_tools(tools, &mut converted)?;
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
pub(super) fn flatten_tools(tools: &[Value], out: &mut Vec<Value>) -> Result<(), Error> {
    for t in tools {
        let kind = t["type"].as_str();
        if matches!(kind, Some("function" | "custom"))
            && t["name"].as_str().is_none_or(str::is_empty)
        {
            return Err(Error::bad_request(format!(
                "a `{}` tool needs a `name`",
                kind.unwrap_or_default()
            )));
        }
        match kind {
            Some("function") => {
                // Neither is required, and strict validators refuse a null one.
                let mut f = json!({"name": t["name"]});
                copy_fields(t, &mut f, &["description", "parameters", "strict"]);
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
            )?,
            _ => {}
        }
    }
    Ok(())
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
pub(super) fn custom_input(arguments: &str) -> String {
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
                Err(Error::Untranslatable(
                    "an `input_file` by `file_url` can go only to a Responses source; send the file inline as `file_data`".into(),
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

/// The request fields OpenAI's Response object repeats, whatever the source. OpenAI's
/// SDKs read them from every answer (openai-python's `Response.tools` is a list, not
/// optional: `for t in r.tools` fails on a missing one).
const ECHOED: [&str; 12] = [
    "instructions",
    "max_output_tokens",
    "parallel_tool_calls",
    "reasoning",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
    "metadata",
];

/// What of a Responses client's request its translated answer repeats (`ECHOED`):
/// the request's own bytes for those fields, made one JSON object. Copied, not parsed:
/// a request that goes to a Responses source as it came never needs them, and Codex
/// CLI's tools and instructions run to tens of KiB. Shared, since every attempt's
/// stream encoder holds it.
#[derive(Debug, Clone, Default)]
pub struct Echo(Option<Arc<[u8]>>);

impl Echo {
    /// The fields of a Responses client's `body` its answer repeats.
    pub fn of(body: &RawBody) -> Echo {
        let mut raw = b"{".to_vec();
        for key in ECHOED {
            let Some(value) = body.get(key) else {
                continue;
            };
            if raw.len() > 1 {
                raw.push(b',');
            }
            raw.push(b'"');
            raw.extend_from_slice(key.as_bytes());
            raw.extend_from_slice(b"\":");
            raw.extend_from_slice(value);
        }
        raw.push(b'}');
        Echo(Some(raw.into()))
    }

    /// The fields, read; none when there are none.
    fn read(&self) -> Map<String, Value> {
        self.0
            .as_deref()
            .and_then(|raw| serde_json::from_slice(raw).ok())
            .unwrap_or_default()
    }
}

/// What a Response says of an [`ECHOED`] field: the request's value, else what OpenAI
/// says when the request leaves it out. A sampling setting left out is null, not
/// OpenAI's 1: the source's own default applies, and it may differ.
fn echoed(request: &Map<String, Value>, key: &str) -> Value {
    if let Some(v) = request.get(key).filter(|v| !v.is_null()) {
        // Codex sends `text: {"verbosity": …}` alone; OpenAI's answer still names the
        // format, and the SDKs read it.
        if key == "text"
            && let Some(t) = v.as_object().filter(|t| !t.contains_key("format"))
        {
            let mut text = Map::new();
            text.insert("format".into(), json!({"type": "text"}));
            text.extend(t.clone());
            return Value::Object(text);
        }
        return v.clone();
    }
    match key {
        "parallel_tool_calls" => json!(true),
        "reasoning" => json!({"effort": null, "summary": null}),
        "text" => json!({"format": {"type": "text"}}),
        "tool_choice" => json!("auto"),
        "tools" => json!([]),
        "truncation" => json!("disabled"),
        "metadata" => json!({}),
        _ => Value::Null,
    }
}

/// A Response object in OpenAI's key order, with what the client's `request` set
/// ([`echoed`]); `error`, `incomplete_details` and `usage` null, for the caller to fill
/// in place.
fn response_object(
    id: &str,
    created: u64,
    status: &str,
    model: &Value,
    output: Vec<Value>,
    request: &Map<String, Value>,
) -> Value {
    let asked = |key| echoed(request, key);
    json!({
        "id": id, "object": "response", "created_at": created, "status": status,
        "error": null, "incomplete_details": null,
        "instructions": asked("instructions"), "max_output_tokens": asked("max_output_tokens"),
        "model": model, "output": output,
        "parallel_tool_calls": asked("parallel_tool_calls"),
        // Translated, a request never continues a stored one (it is refused, see
        // `request_to_chat`), and nothing is stored to be continued: Routeplane keeps
        // no answers.
        "previous_response_id": null,
        "reasoning": asked("reasoning"),
        "store": false,
        "temperature": asked("temperature"), "text": asked("text"),
        "tool_choice": asked("tool_choice"), "tools": asked("tools"),
        "top_p": asked("top_p"), "truncation": asked("truncation"),
        "usage": null, "user": asked("user"), "metadata": asked("metadata"),
    })
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
/// back as `custom_tool_call` items, and what the client asked is repeated (`echo`).
pub fn response_from_chat(chat: Value, custom: &[String], echo: &Echo) -> Value {
    let id = response_id(&chat["id"]);
    let choice = &chat["choices"][0];
    let msg = &choice["message"];
    let mut output = Vec::new();
    let reasoning = msg["reasoning_content"].as_str().filter(|r| !r.is_empty());
    let details = msg["reasoning_details"]
        .as_array()
        .filter(|d| !d.is_empty());
    if reasoning.is_some() || details.is_some() {
        let summary: Vec<Value> = reasoning
            .map(|r| json!({"type": "summary_text", "text": r}))
            .into_iter()
            .collect();
        // Sealed even with no details, so that given back it is taken out before a
        // Responses source, which refuses reasoning without its own encrypted content.
        let sealed = seal(details.map_or(&[], Vec::as_slice));
        output.push(json!({"type": "reasoning", "id": minted("rs", &id), "summary": summary, "encrypted_content": sealed}));
    }
    let text = text_of(&msg["content"]);
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(json!({"type": "output_text", "text": text, "annotations": []}));
    }
    if let Some(r) = msg["refusal"].as_str().filter(|r| !r.is_empty()) {
        content.push(json!({"type": "refusal", "refusal": r}));
    }
    if !content.is_empty() {
        output.push(json!({"type": "message", "id": minted("msg", &id), "status": "completed", "role": "assistant",
            "content": content}));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        let call_id = call["id"].as_str().unwrap_or("");
        let (name, arguments) = (&call["function"]["name"], &call["function"]["arguments"]);
        output.push(if is_custom(custom, name) {
            json!({"type": "custom_tool_call", "id": minted("ctc", call_id), "call_id": call_id,
                "name": name, "input": custom_input(arguments.as_str().unwrap_or("")), "status": "completed"})
        } else {
            json!({"type": "function_call", "id": minted("fc", call_id), "call_id": call_id,
                "name": name, "arguments": arguments, "status": "completed"})
        });
    }
    let (status, incomplete) = status_of(choice["finish_reason"].as_str().unwrap_or("stop"));
    let created = chat["created"].as_u64().unwrap_or_else(now);
    let mut r = response_object(&id, created, status, &chat["model"], output, &echo.read());
    r["incomplete_details"] = incomplete;
    r["usage"] = usage_from_chat(&chat["usage"]);
    r
}

/// True when `name` is one of the client's custom tools.
fn is_custom(custom: &[String], name: &Value) -> bool {
    name.as_str().is_some_and(|n| custom.iter().any(|c| c == n))
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
    /// An encoder that names `model` in its events; calls of the `custom` tools go out
    /// as `custom_tool_call` items; each Response object repeats `echo`.
    pub fn new(model: &str, custom: Vec<String>, echo: Echo) -> Encoder {
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
                        part: if t == "reasoning" {
                            Part::Reasoning
                        } else {
                            Part::Text
                        },
                        text: String::new(),
                        details: Vec::new(),
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
            t.text = if t.part == Part::Reasoning {
                reasoning
            } else {
                text
            }
            .to_string();
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
    fn response(&mut self, status: &str) -> Value {
        let mut done = self.done.clone();
        done.sort_by_key(|(oi, _)| *oi);
        let output: Vec<Value> = done.into_iter().map(|(_, item)| item).collect();
        let request = self
            .request
            .get_or_insert_with(|| Box::new(self.echo.read()));
        let model = json!(self.model);
        response_object(&self.id, self.created, status, &model, output, request)
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
            let (done, part) = if t.part == Part::Refusal {
                let ev = self.ev(
                    "response.refusal.done",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "refusal": t.text}),
                );
                (ev, json!({"type": "refusal", "refusal": t.text}))
            } else {
                let ev = self.ev(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "text": t.text}),
                );
                (
                    ev,
                    json!({"type": "output_text", "text": t.text, "annotations": []}),
                )
            };
            out.push(done);
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
        let (oi, id) = (t.oi, t.id.clone());
        let ev = match kind {
            Part::Reasoning => self.ev(
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "delta": delta}),
            ),
            Part::Text => self.ev(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": oi, "content_index": 0, "delta": delta}),
            ),
            Part::Refusal => self.ev(
                "response.refusal.delta",
                json!({"item_id": id, "output_index": oi, "content_index": 0, "delta": delta}),
            ),
        };
        out.push(ev);
    }

    /// The open message (or reasoning) item, opened when there is none of that kind.
    fn open_text(&mut self, kind: Part, out: &mut Vec<Event>) -> Option<&mut OpenText> {
        if self.text.as_ref().is_some_and(|t| t.part != kind) {
            self.close_text(out);
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
            } else {
                let ev = self.ev("response.output_item.added", json!({"output_index": oi, "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}));
                out.push(ev);
                let part = if kind == Part::Refusal {
                    json!({"type": "refusal", "refusal": ""})
                } else {
                    json!({"type": "output_text", "text": "", "annotations": []})
                };
                let ev = self.ev(
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": oi, "content_index": 0, "part": part}),
                );
                out.push(ev);
            }
            self.text = Some(OpenText {
                oi,
                id,
                part: kind,
                text: String::new(),
                details: Vec::new(),
            });
        }
        self.text.as_mut()
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
                json!({"type": "custom_tool_call", "id": minted("ctc", &call_id), "call_id": call_id, "name": name, "input": "", "status": "in_progress"})
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
