//! Talking to a Gemini source: hub chat requests become Gemini requests, and its
//! answers and stream events become chat again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{
    BUDGETS, SIGNED_BY_GEMINI, blocked, filtered, finish_reason, id_safe, signature, usage_to_chat,
};
use crate::error::{Error, Field};
use crate::protocol::view::{self, Delta, First, Present, Text};
use crate::protocol::{
    self, Decoded, Last, ToolChoice, arguments_object, assistant_message, hub_chunk, now, text_of,
    usage_chunk,
};
use crate::sse::Event;

/// Hub chat request → `generateContent` body (the model goes in the URL).
pub fn request_from_chat(chat: Value, model: &str, provider: &str) -> Result<Value, Error> {
    let unsupported = |field| Error::Unsupported {
        field,
        provider: provider.to_string(),
    };
    protocol::refuse_chat_only(&chat, provider)?;
    let Some(list) = chat["messages"].as_array() else {
        return Err(Error::bad_field("messages", "must be an array"));
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
                    return Err(Error::Untranslatable(format!(
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
                if protocol::has_media(&m["content"])
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
            other => return Err(protocol::unknown_role(other)),
        };
        if parts.is_empty() {
            continue;
        }
        protocol::push_turn(&mut contents, role, "parts", parts);
    }
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system.join("\n\n")}]}),
        );
    }
    let config = generation_config(&chat, model);
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = chat["tools"].as_array() {
        let mut decls = Vec::new();
        for t in tools {
            if t["type"] != "function" {
                return Err(unsupported(Field::Tools));
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

/// The chat sampling fields as a `generationConfig` for `model`.
fn generation_config(chat: &Value, model: &str) -> Map<String, Value> {
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
    if let Some(stop) = protocol::stop_list(chat) {
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
    match chat["reasoning_effort"].as_str() {
        // Flash models think unless told not to; Pro models cannot stop (a budget of 0
        // is a 400), so they keep their default.
        Some("none") if !model.contains("pro") => {
            gc.insert("thinkingConfig".into(), json!({"thinkingBudget": 0}));
        }
        Some(effort) => {
            // A budget the client gave as a number (an Anthropic client's) goes as it
            // is, within what the model takes; else the effort's.
            let budget = match chat[protocol::THINKING_BUDGET].as_u64() {
                Some(given) => Some(budget_within(model, given)),
                None => BUDGETS.iter().find(|(e, _)| *e == effort).map(|(_, b)| *b),
            };
            if let Some(budget) = budget {
                gc.insert(
                    "thinkingConfig".into(),
                    json!({"thinkingBudget": budget, "includeThoughts": true}),
                );
            }
        }
        None => {}
    }
    gc
}

/// A thinking budget within the range `model` takes (2.5 Pro: 128 to 32768, Flash-Lite:
/// 512 to 24576, Flash: up to 24576; Google refuses one outside it), never 0, which
/// would turn thinking off.
fn budget_within(model: &str, budget: u64) -> u64 {
    let (least, most) = if model.contains("flash-lite") {
        (512, 24576)
    } else if model.contains("pro") {
        (128, 32768)
    } else {
        (1, 24576)
    };
    budget.clamp(least, most)
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
                Some("image_url") => Ok(media_part(protocol::image_url(p))),
                Some("file") => {
                    let (mime, data) = protocol::inline_file(p, provider)?;
                    Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
                }
                other => Err(protocol::part_unsupported(other.unwrap_or("?"), provider)),
            })
            .collect(),
        _ => Err(Error::bad_request(
            "message `content` must be a string or an array",
        )),
    }
}

/// An image URL as a part: a data URL becomes `inlineData`, anything else `fileData`.
fn media_part(url: &str) -> Value {
    if let Some((mime, data)) = protocol::data_url(url) {
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
    let details = m["reasoning_details"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for (j, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
        let name = call["function"]["name"].as_str().unwrap_or("");
        let args = call["function"]["arguments"].as_str().unwrap_or("{}");
        if !args.trim().is_empty() && serde_json::from_str::<Value>(args).is_err() {
            return Err(Error::Untranslatable(format!(
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
        if let Some(signature) = signature(details, &call["id"], j == 0) {
            part["thoughtSignature"] = json!(signature);
        }
        parts.push(part);
    }
    Ok(parts)
}

// ---- Gemini → chat (upstream answers) ----

/// What a candidate's parts say, in the hub's terms.
#[derive(Default)]
struct Read {
    text: String,
    thoughts: String,
    calls: Vec<Value>,
    /// The calls' thought signatures, as reasoning details naming their call.
    signatures: Vec<Value>,
}

/// Reads a candidate's parts; `ids` names calls without an id.
fn read_parts(parts: &Value, first_index: usize, ids: &str) -> Read {
    let mut read = Read::default();
    let Read {
        text,
        thoughts,
        calls,
        signatures,
    } = &mut read;
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
            let index = first_index + calls.len();
            // One of another type is kept, for `fit_call` to refuse, as the name is.
            let id = match &fc["id"] {
                Value::Null => json!(format!("call_{ids}_{index}")),
                Value::String(s) if s.is_empty() => json!(format!("call_{ids}_{index}")),
                id => id.clone(),
            };
            let args = if fc["args"].is_object() {
                fc["args"].to_string()
            } else {
                "{}".to_string()
            };
            if let Some(signature) = p["thoughtSignature"].as_str() {
                signatures.push(json!({"type": "reasoning.encrypted", "data": signature, "id": id, "format": SIGNED_BY_GEMINI}));
            }
            calls.push(json!({"id": id, "type": "function", "function": {"name": fc["name"], "arguments": args}}));
        }
    }
    read
}

/// A prefix for the ids of calls in one answer: its `responseId`, else the clock.
fn id_prefix(resp: &Value) -> String {
    match resp["responseId"].as_str() {
        Some(id) if !id.is_empty() => id_safe(id),
        _ => protocol::clock_hex(),
    }
}

/// The finish reason of an answer whose function call Gemini could not form: nothing
/// usable came, and the next endpoint (or the same one again) usually does better than
/// an empty success would.
const MALFORMED: &str = "MALFORMED_FUNCTION_CALL";

/// Why an answer ended `MALFORMED_FUNCTION_CALL` with nothing in it, whole or streamed:
/// the source's 502, asked again of the same endpoint (the model samples a call anew),
/// then of the next ([`Error::SourceFailed`] for a whole answer).
const MALFORMED_CALL: &str =
    "the model's function call came out malformed (MALFORMED_FUNCTION_CALL); nothing was answered";

/// The content-filter reason of a `generateContent` answer that a safety block emptied:
/// a blocked prompt, or a safety stop with nothing produced.
fn block_reason(resp: &Value) -> Option<String> {
    if let Some(reason) = blocked(resp) {
        return Some(reason);
    }
    let cand = resp["candidates"].get(0)?;
    let reason = cand["finishReason"].as_str()?;
    let Read { text, calls, .. } = read_parts(&cand["content"]["parts"], 0, "");
    (finish_reason(reason, false) == "content_filter" && text.is_empty() && calls.is_empty())
        .then(|| filtered(reason))
}

/// The block reason (see `block_reason`) of an answer's bytes, for an answer relayed unchanged.
pub fn blocked_answer(body: &[u8]) -> Option<String> {
    block_reason(&serde_json::from_slice(body).ok()?)
}

/// A whole answer's `responseId` as its hub completion's `id`, `gemini` when it has
/// none. One of another type is kept, for `hub::fit_answer` to refuse (with
/// `hub::answer_id`) as any source's: a client's SDK reads a string.
fn completion_id(resp: &Value) -> Value {
    match &resp["responseId"] {
        Value::Null => json!("gemini"),
        id => id.clone(),
    }
}

/// A `generateContent` answer → hub chat completion. A safety block with nothing
/// produced (see [`blocked_answer`], which the relay asks first, to move on) is a
/// filtered answer: empty, its finish reason `content_filter`.
pub fn response_to_chat(resp: Value) -> Result<Value, Error> {
    let failed = |reason: String| Error::Upstream {
        provider: "gemini".into(),
        reason,
    };
    let filtered = block_reason(&resp).is_some();
    let Some(cand) = resp["candidates"].get(0).filter(|_| !filtered) else {
        if filtered {
            let message = assistant_message(String::new(), String::new(), Vec::new());
            return Ok(with_usage(
                json!({
                    "id": completion_id(&resp),
                    "object": "chat.completion", "created": now(), "model": resp["modelVersion"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "content_filter"}],
                }),
                &resp,
            ));
        }
        return Err(failed("the answer has no candidates".into()));
    };
    let read = read_parts(&cand["content"]["parts"], 0, &id_prefix(&resp));
    let reason = cand["finishReason"].as_str().unwrap_or("STOP");
    if reason == MALFORMED && read.text.is_empty() && read.calls.is_empty() {
        return Err(Error::SourceFailed {
            status: 502,
            reason: MALFORMED_CALL.into(),
        });
    }
    let finish = finish_reason(reason, !read.calls.is_empty());
    let mut message = assistant_message(read.text, read.thoughts, read.calls);
    if !read.signatures.is_empty() {
        message["reasoning_details"] = Value::Array(read.signatures);
    }
    Ok(with_usage(
        json!({
            "id": completion_id(&resp),
            "object": "chat.completion", "created": now(), "model": resp["modelVersion"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }),
        &resp,
    ))
}

/// A hub answer with the usage of Gemini's answer `resp`, left out when it gave none.
fn with_usage(mut chat: Value, resp: &Value) -> Value {
    let usage = usage_to_chat(&resp["usageMetadata"]);
    if !usage.is_null() {
        chat["usage"] = usage;
    }
    chat
}

/// Decodes a `streamGenerateContent?alt=sse` stream into hub chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    id: String,
    model: String,
    /// 0 until the first event, whose `responseId` and `modelVersion` name the answer,
    /// is read: an empty `responseId` is read once, as any other.
    created: u64,
    /// Something went to the client already (the role chunk with it).
    started: bool,
    /// Tool calls announced so far.
    tools: usize,
    /// What the last content read was: after a function call nothing of the answer is
    /// cut when the stream breaks (see [`Decoder::whole_ending`]).
    last: Last,
    /// Thought signatures sent so far.
    signatures: usize,
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
        if self.created == 0 {
            self.id = match protocol::answer_id(&v["responseId"]) {
                Ok(id) => id.unwrap_or("gemini").to_string(),
                Err(why) => return Decoded::Unreadable(why),
            };
            self.model = v["modelVersion"].as_str().unwrap_or("").to_string();
            self.created = now();
            self.ids = id_prefix(&v);
        }
        if v["usageMetadata"].is_object() {
            self.usage = v["usageMetadata"].clone();
            self.viewed_usage.clear();
        }
        if let Some(reason) = blocked(&v) {
            return self.held_back(reason);
        }
        let cand = &v["candidates"][0];
        let Read {
            text,
            thoughts,
            mut calls,
            signatures,
        } = read_parts(&cand["content"]["parts"], self.tools, &self.ids);
        // Each has an id (read_parts makes one): only one no client can read is refused.
        for c in &mut calls {
            if let Err(message) = protocol::fit_call(c, &mut None, 0) {
                return Decoded::Unreadable(message);
            }
        }
        let reason = cand["finishReason"].as_str();
        if !calls.is_empty() {
            self.last = Last::Call;
        } else if !text.is_empty() {
            self.last = Last::Text;
        } else if !thoughts.is_empty() {
            self.last = Last::Reasoning;
        }
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
        if !signatures.is_empty() {
            let numbered: Vec<Value> = signatures
                .into_iter()
                .map(|d| protocol::numbered(d, &mut self.signatures))
                .collect();
            delta.insert("reasoning_details".into(), Value::Array(numbered));
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
        if reason == MALFORMED && !self.started {
            return Decoded::Failed {
                status: 502,
                message: MALFORMED_CALL.into(),
            };
        }
        let finish = finish_reason(reason, self.tools > 0);
        if finish == "content_filter" && !self.started {
            return self.held_back(filtered(reason));
        }
        out.push(self.chunk(json!({}), Some(finish)));
        self.end_usage(&mut out);
        Decoded::End(out)
    }

    /// The chunks that end an answer whose stream broke (closed, cut, went silent or
    /// sent an error event) before the event with its `finishReason`, when nothing of
    /// it was cut: Gemini sends a function call whole, in one event, so a break right
    /// after one loses only the finish reason and the usage, and the answer ends as a
    /// tool call, as it would have. `None` when text or thoughts came last, which a
    /// break may have cut.
    pub fn whole_ending(&mut self) -> Option<Vec<Value>> {
        if self.last != Last::Call {
            return None;
        }
        let mut out = vec![self.chunk(json!({}), Some("tool_calls"))];
        self.end_usage(&mut out);
        Some(out)
    }

    /// What a break cut after function calls, which come whole: the text or thoughts
    /// that followed them.
    pub fn cut_after_calls(&self) -> Option<&'static str> {
        self.last.cut_after_calls(self.tools > 0)
    }

    /// The usage chunk that ends the answer, when Gemini reported usage.
    fn end_usage(&mut self, out: &mut Vec<Value>) {
        if !self.viewed_usage.is_empty() {
            self.usage = serde_json::from_str(&self.viewed_usage).unwrap_or_default();
        }
        if !self.usage.is_null() {
            let usage = usage_to_chat(&self.usage);
            out.push(usage_chunk(&self.id, self.created, &self.model, usage));
        }
    }

    /// A safety block with nothing produced (`message` says which): the answer ends
    /// empty, filtered, for the relay to move past or give the client.
    fn held_back(&mut self, message: String) -> Decoded {
        let mut end = Vec::new();
        if !self.started {
            self.started = true;
            end.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        end.push(self.chunk(json!({}), Some("content_filter")));
        self.end_usage(&mut end);
        Decoded::Blocked { end, message }
    }
}

/// What the relay reads of an ordinary event of a copied stream (see [`view`]): its
/// text and thoughts. `None` for what [`Decoder::event`] must read: the first event
/// (the decoder's ids come from it), a function call (the decoder numbers them), the
/// last event (its `finishReason`), a block or an error. Gemini repeats the running
/// `usageMetadata` on every event; the decoder keeps the latest, from here too.
///
/// [`view`]: protocol::view
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
    if !text.is_empty() {
        decoder.last = Last::Text;
    } else if !thoughts.is_empty() {
        decoder.last = Last::Reasoning;
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
