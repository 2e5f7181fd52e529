//! OpenAI Chat Completions: the hub format, its stream decoder and encoder, its errors.
//!
//! Chat needs no request translation (it is the hub; a request is only checked for its
//! `messages`), so this file holds the parts every route through the hub shares:
//! reading a chat upstream's stream, writing chat chunks to a client, folding a chunk
//! stream into one `chat.completion` (for a non-streaming client of a stream-only
//! upstream), and the OpenAI error shape. What a hub request becomes for a chat source
//! (OpenAI's limits, tool call ids and reasoning details it refuses) is `source.rs`'s.

mod source;

pub(crate) use source::{MAX_TOOL_ID, ask_usage, mend, must_mend, takes_completion_limit};
// The registry's tests ask which tool call ids a source takes.
#[cfg(test)]
pub(crate) use source::ToolIds;
pub use source::{request_from_chat, stops_dropped};

use std::borrow::Cow;

use memchr::memmem::Finder;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::view::{self, Delta, First, Present, Text};
use super::{Decoded, Must, fit_call, openai_error_type};
use crate::error::Error;
use crate::sse::Event;

/// What the other protocols' translators read of a hub request, which would drop a
/// wrong type or an unknown word, with what each must be.
const CHECKED: [(&str, Must); 13] = [
    ("max_tokens", Must::Count),
    ("max_completion_tokens", Must::Count),
    ("n", Must::Count),
    ("temperature", Must::Number),
    ("top_p", Must::Number),
    ("stop", Must::Stops),
    ("tools", Must::List),
    ("tool_choice", Must::Choice),
    // A `custom` tool's choice has no translation: no other protocol's source takes
    // Chat's custom tools.
    ("tool_choice.type", Must::OneOf("function allowed_tools")),
    ("parallel_tool_calls", Must::Flag),
    ("reasoning_effort", super::EFFORT),
    ("response_format", Must::Object),
    ("user", Must::Text),
];

/// A Chat client's request as the hub request: itself, once it has its `messages`. Each
/// translator would refuse it without them; here it is the client's fault, said once.
pub fn request_to_chat(mut req: Value) -> Result<Value, Error> {
    if !req["messages"].is_array() {
        return Err(Error::bad_field(
            "messages",
            "is required and must be an array",
        ));
    }
    super::check(&mut req, &CHECKED)?;
    // Without a name the choice would be none made, where the client forced one.
    let tc = &req["tool_choice"];
    if tc.is_object() && tc["type"] != "allowed_tools" && !tc["function"]["name"].is_string() {
        return Err(super::nameless("function"));
    }
    // The hub's own field, which only a translation sets (see the hub conventions).
    if let Some(obj) = req.as_object_mut() {
        obj.shift_remove(super::THINKING_BUDGET);
    }
    Ok(req)
}

/// The OpenAI error body: `{"error":{"message","type","param","code"}}`, its `param`
/// the request field a 400 is about ([`Error::param`]), as OpenAI's own names it.
pub fn error_json(status: u16, message: &str, param: Option<&str>) -> Value {
    let code = match status {
        401 => json!("invalid_api_key"),
        404 => json!("model_not_found"),
        413 => json!("request_too_large"),
        429 => json!("rate_limit_exceeded"),
        _ => Value::Null,
    };
    json!({"error": {
        "message": message,
        "type": openai_error_type(status),
        "param": param,
        "code": code,
    }})
}

/// Decodes a Chat Completions upstream stream (`data: {chunk}` … `data: [DONE]`).
#[derive(Debug, Default)]
pub struct Decoder {
    /// Tool calls numbered so far in the first choice, for calls streamed without an
    /// `index`.
    calls: CallNumbers,
    /// The first chunk's `id` is yet to be read as a whole answer's is
    /// ([`answer_id`](super::answer_id)), and made when missing: a translated stream's,
    /// which the client's encoder makes its answer's id. A copied stream goes out as the
    /// source sent it.
    check_id: bool,
}

/// Numbers a stream's tool calls, as the hub has them (`tool_calls[].index` from 0).
/// Some servers (SGLang, some Ollama paths) stream calls without an `index`, often each
/// whole in one delta: a new id is then the next call, and a fragment with neither an
/// id nor an index continues the last one. Done once here, where a chat source's stream
/// enters the hub, so that every encoder and the collector see numbered calls.
#[derive(Debug, Default)]
struct CallNumbers {
    /// How many calls the stream has begun.
    count: u64,
    /// The id of the call a fragment without an index continues.
    last_id: Option<String>,
    /// The prefix of the ids given to this stream's calls that came without one.
    made: Option<String>,
}

impl CallNumbers {
    /// Gives each call of a delta its `index`, keeping one the server gave, and each
    /// that begins an id ([`fit_call`]); the reason when a call that begins is unreadable.
    fn number(&mut self, delta: &mut Value) -> Result<(), String> {
        let calls = delta.get_mut("tool_calls").and_then(Value::as_array_mut);
        for call in calls.into_iter().flatten().filter(|c| c.is_object()) {
            let id = call["id"].as_str().filter(|id| !id.is_empty());
            let index = match call["index"].as_u64() {
                Some(i) => i,
                None if self.count == 0
                    || id.is_some_and(|id| self.last_id.as_deref() != Some(id)) =>
                {
                    self.count
                }
                None => self.count - 1,
            };
            if let Some(id) = id {
                self.last_id = Some(id.to_string());
            }
            if index >= self.count {
                fit_call(call, &mut self.made, index)?;
            }
            self.count = self.count.max(index.saturating_add(1));
            call["index"] = json!(index);
        }
        Ok(())
    }
}

impl Decoder {
    /// A decoder for a stream `translated` for the client, whose first chunk's `id`
    /// is then checked.
    pub fn new(translated: bool) -> Decoder {
        Decoder {
            check_id: translated,
            ..Decoder::default()
        }
    }

    /// Decodes one upstream event.
    pub fn event(&mut self, ev: &Event) -> Decoded {
        let Some(data) = ev.data.as_deref() else {
            return Decoded::Chunks(Vec::new());
        };
        if ev.is_done() {
            return Decoded::End(Vec::new());
        }
        match serde_json::from_str::<Value>(data) {
            Ok(v) if v.get("error").is_some() => Decoded::Failed {
                status: super::status_of_error(&v["error"]),
                message: super::upstream_error_message(data.as_bytes()),
            },
            Ok(mut v) if v.is_object() => {
                if std::mem::take(&mut self.check_id) {
                    match super::answer_id(&v["id"]) {
                        Err(why) => return Decoded::Unreadable(why),
                        // The client's encoder names its answer after this one's.
                        Ok(None) => v["id"] = super::made_answer_id(),
                        Ok(Some(_)) => {}
                    }
                }
                into_hub(&mut v, "delta");
                // The hub carries one choice: a translated request cannot ask for more.
                if let Some(delta) = v.pointer_mut("/choices/0/delta")
                    && let Err(message) = self.calls.number(delta)
                {
                    return Decoded::Unreadable(message);
                }
                if let Some(choice) = v.pointer_mut("/choices/0") {
                    end_calls(choice, self.calls.count > 0);
                }
                Decoded::Chunks(vec![v])
            }
            _ => Decoded::Malformed,
        }
    }
}

/// A chat source's answer or chunk in the hub's names, in each choice's `message` or
/// `delta` (`part`): thinking is `reasoning_content` (Ollama and OpenRouter call it
/// `reasoning`).
pub fn into_hub(answer: &mut Value, part: &str) {
    let Some(choices) = answer.get_mut("choices").and_then(Value::as_array_mut) else {
        return;
    };
    for choice in choices {
        // A chunk's calls are known only to the stream's decoder, which does its own.
        let called = part == "message"
            && choice["message"]["tool_calls"]
                .as_array()
                .is_some_and(|c| !c.is_empty());
        // Calls without an id get one where every source's answer enters the hub
        // (`hub::fit_answer`).
        end_calls(choice, called);
        let Some(m) = choice.get_mut(part).and_then(Value::as_object_mut) else {
            continue;
        };
        let unset = match m.get("reasoning_content") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if unset && let Some(v) = m.get("reasoning").filter(|v| v.is_string()).cloned() {
            m.insert("reasoning_content".into(), v);
        }
    }
}

/// A chat source's turn that `called` tools ends in `tool_calls` in the hub, whatever
/// the source said: Gemini's OpenAI-compatible endpoint, SGLang and older Ollama end one
/// with `stop`, and an Anthropic client's loop (`while stop_reason == "tool_use"`) would
/// stop without running the calls it was just given. A Gemini source's turn gets the
/// same where it enters the hub.
fn end_calls(choice: &mut Value, called: bool) {
    if called && choice["finish_reason"] == "stop" {
        choice["finish_reason"] = json!("tool_calls");
    }
}

/// A hub answer (`part` = `message`) or chunk (`delta`) with its refusal (OpenAI's
/// `refusal`, with no content) as its content, for a client whose protocol has no field
/// for one (Anthropic, Gemini): an empty answer would say nothing.
pub fn refusal_as_content<'a>(answer: Cow<'a, Value>, part: &str) -> Cow<'a, Value> {
    let refuses = answer["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c[part]["refusal"].as_str().is_some_and(|r| !r.is_empty()));
    if !refuses {
        return answer;
    }
    let mut answer = answer.into_owned();
    for choice in answer["choices"].as_array_mut().into_iter().flatten() {
        let m = &mut choice[part];
        let Some(refusal) = m["refusal"].as_str().filter(|r| !r.is_empty()) else {
            continue;
        };
        // After any text: a whole answer's apart from it, a stream's as it comes.
        let text = match m["content"].as_str().filter(|t| !t.is_empty()) {
            Some(t) if part == "message" => format!("{t}\n\n{refusal}"),
            Some(t) => format!("{t}{refusal}"),
            None => refusal.to_string(),
        };
        m["content"] = Value::String(text);
    }
    Cow::Owned(answer)
}

/// How a chat source says a content filter held its answer back (Azure OpenAI's).
const FILTERED: &str = "content_filter";

/// Why a hub answer (`part` = `message`) or chunk (`delta`) is one a content filter
/// emptied: it finished with `content_filter` and has nothing in it (no text,
/// reasoning, refusal or tool call). `None` for any other, a filtered one with content
/// included: that one is an answer.
pub fn filtered(answer: &Value, part: &str) -> Option<String> {
    let choice = &answer["choices"][0];
    if choice["finish_reason"].as_str() != Some(FILTERED) {
        return None;
    }
    let m = &choice[part];
    let filled = |k: &str| m[k].as_str().is_some_and(|s| !s.is_empty());
    let produced = ["content", "reasoning_content", "reasoning", "refusal"]
        .into_iter()
        .any(filled)
        || m["tool_calls"].as_array().is_some_and(|a| !a.is_empty());
    (!produced).then(|| format!("content filter: the answer was held back (`{FILTERED}`)"))
}

/// [`filtered`] for a whole chat answer's bytes, relayed unchanged: looked for by its
/// words first, so an ordinary answer is scanned once and never parsed.
pub fn filtered_answer(body: &[u8]) -> Option<String> {
    static FILTER: super::Marker = super::Marker::new(|| Finder::new("\"content_filter\""));
    FILTER.find(body)?;
    filtered(&serde_json::from_slice(body).ok()?, "message")
}

/// A hub request whose assistant turns said their refusals (OpenAI's `refusal`, with
/// no content) as text, which every source reads: translated, a turn with only a
/// refusal would be left empty, and dropped.
pub fn refusals_as_text(req: &mut Value) {
    for m in req["messages"].as_array_mut().into_iter().flatten() {
        let Some(o) = m.as_object_mut().filter(|o| o.contains_key("refusal")) else {
            continue;
        };
        let Some(Value::String(refusal)) = o.shift_remove("refusal") else {
            continue;
        };
        let text = super::text_of(o.get("content").unwrap_or(&Value::Null));
        let said = match (text.is_empty(), refusal.is_empty()) {
            (_, true) => continue,
            (true, false) => refusal,
            (false, false) => format!("{text}\n\n{refusal}"),
        };
        o.insert("content".into(), Value::String(said));
    }
}

/// What the relay reads of an ordinary chunk of a copied chat stream (see
/// [`Delta`]); `None` for anything else (`[DONE]`, an error, a usage report, a field of
/// an unexpected type), which [`Decoder::event`] reads in full.
pub fn delta(ev: &Event) -> Option<Delta<'_>> {
    let chunk: ChunkView<'_> = view::object(ev, &[])?;
    if chunk.error.0 || chunk.usage.is_some() {
        return None;
    }
    let Some(ChoiceView {
        delta,
        finish_reason,
    }) = chunk.choices.0
    else {
        return Some(Delta::default());
    };
    let d = delta.unwrap_or_default();
    let tool = d.tool_calls.is_some_and(|calls| !calls.is_empty());
    let filled = |t: &Option<Text<'_>>| t.as_ref().is_some_and(|t| !t.0.is_empty());
    let refusal = filled(&d.refusal);
    Some(Delta {
        has_content: filled(&d.content)
            || filled(&d.reasoning_content)
            || filled(&d.reasoning)
            || refusal
            || tool,
        content: d.content.map(|t| t.0),
        reasoning: d.reasoning_content.or(d.reasoning).map(|t| t.0),
        tool,
        refusal,
        finish: finish_reason.is_some(),
    })
}

/// The fields of a chunk [`delta`] looks at; serde skips the others unread.
#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(default)]
    error: Present,
    usage: Option<IgnoredAny>,
    #[serde(default, borrow)]
    choices: First<ChoiceView<'a>>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow)]
    delta: Option<DeltaView<'a>>,
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
struct DeltaView<'a> {
    #[serde(borrow)]
    content: Option<Text<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Text<'a>>,
    #[serde(borrow)]
    reasoning: Option<Text<'a>>,
    #[serde(borrow)]
    refusal: Option<Text<'a>>,
    /// Zero-sized elements: counted, never allocated.
    tool_calls: Option<Vec<IgnoredAny>>,
}

/// A hub chat completion as the chunks of its stream: its message as one delta with
/// the finish reason, then its usage, as a stream reports it.
pub fn as_chunks(chat: &Value) -> Vec<Value> {
    let choice = &chat["choices"][0];
    let mut delta = choice["message"].clone();
    if let Some(calls) = delta["tool_calls"].as_array_mut() {
        for (i, call) in calls.iter_mut().enumerate() {
            call["index"] = json!(i);
        }
    }
    let chunk = |choices: Value| {
        json!({"id": chat["id"], "object": "chat.completion.chunk", "created": chat["created"],
            "model": chat["model"], "choices": choices})
    };
    let mut chunks = vec![chunk(json!([{"index": 0, "delta": delta,
        "finish_reason": choice["finish_reason"]}]))];
    if chat["usage"].is_object() {
        let mut usage = chunk(json!([]));
        usage["usage"] = chat["usage"].clone();
        chunks.push(usage);
    }
    chunks
}

/// Writes hub chunks to a Chat Completions client.
#[derive(Debug)]
pub struct Encoder {
    include_usage: bool,
    /// `id`, `created` and `model` of the stream's first chunk.
    first: Option<[Value; 3]>,
    /// The stream continues another answer: chunks take the first chunk's ids and lose
    /// their `role`.
    continuing: bool,
}

impl Encoder {
    /// An encoder; usage chunks are sent only when the client asked for them.
    pub fn new(include_usage: bool) -> Encoder {
        Encoder {
            include_usage,
            first: None,
            continuing: false,
        }
    }

    /// Remembers the ids of the stream's first chunk.
    fn remember(&mut self, chunk: &Value) {
        if self.first.is_none() && chunk.is_object() {
            self.first = Some(["id", "created", "model"].map(|k| chunk[k].clone()));
        }
    }

    /// Learns the stream's ids from a chunk that went out verbatim.
    pub fn observe(&mut self, ev: &Event) {
        if self.first.is_some() || ev.is_done() {
            return;
        }
        if let Some(v) = ev
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
        {
            self.remember(&v);
        }
    }

    /// Continues the open stream with another answer's chunks.
    pub fn resume(&mut self) {
        self.continuing = true;
    }

    /// A continuation chunk with the stream's ids and no role; `None` when nothing is left.
    fn continued(&self, chunk: &Value) -> Option<Value> {
        let mut c = chunk.clone();
        if let Some([id, created, model]) = &self.first {
            c["id"] = id.clone();
            c["created"] = created.clone();
            c["model"] = model.clone();
        }
        let mut keep = false;
        // `choices` may be empty (a usage chunk): no indexing that could panic.
        if let Some(choice) = c
            .get_mut("choices")
            .and_then(|cs| cs.get_mut(0))
            .filter(|ch| ch.is_object())
        {
            keep |= !choice["finish_reason"].is_null();
            if let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) {
                delta.shift_remove("role");
                if delta.get("content").is_some_and(|t| t == "" || t.is_null()) {
                    delta.shift_remove("content");
                }
                keep |= !delta.is_empty();
            }
        }
        keep |= chunk.get("usage").is_some_and(|u| !u.is_null());
        keep.then_some(c)
    }

    /// Encodes one chunk.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        self.shape(chunk)
            .map(|c| Event::data(c.to_string()))
            .into_iter()
            .collect()
    }

    /// One chunk as the client gets it (a continuation's ids, usage only when asked),
    /// before it is written; `None` when nothing of it goes out.
    pub fn shape<'c>(&mut self, chunk: &'c Value) -> Option<Cow<'c, Value>> {
        self.remember(chunk);
        let chunk = match self.continuing {
            true => Cow::Owned(self.continued(chunk)?),
            false => Cow::Borrowed(chunk),
        };
        if !self.include_usage && chunk.get("usage").is_some() {
            if chunk["choices"].as_array().is_some_and(|c| c.is_empty()) {
                return None;
            }
            let mut c = chunk.into_owned();
            if let Some(obj) = c.as_object_mut() {
                obj.shift_remove("usage");
            }
            return Some(Cow::Owned(c));
        }
        Some(chunk)
    }

    /// `data: [DONE]`.
    pub fn finish(&mut self) -> Vec<Event> {
        vec![Event::data("[DONE]")]
    }

    /// An in-band error chunk; OpenAI ends such a stream without `[DONE]`.
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Event> {
        vec![Event::data(error_json(status, message, None).to_string())]
    }
}

/// Folds a stream of hub chunks into one `chat.completion` body.
#[derive(Debug, Default)]
pub struct Collector {
    id: Option<Value>,
    model: Option<Value>,
    created: Option<Value>,
    content: String,
    refusal: String,
    reasoning: String,
    /// The source named its reasoning `reasoning` (Ollama, OpenRouter): so named in the
    /// answer too, beside the hub's `reasoning_content`.
    named_reasoning: bool,
    /// Reasoning details, merged by their stream index.
    details: Vec<Value>,
    /// Tool calls by their stream index.
    tools: Vec<CallSoFar>,
    /// The text's citations (see the hub conventions).
    annotations: Vec<Value>,
    finish_reason: Option<Value>,
    usage: Option<Value>,
}

/// A tool call as its chunks have told it so far.
#[derive(Debug, Default)]
struct CallSoFar {
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

impl Collector {
    /// Adds one chunk.
    pub fn add(&mut self, chunk: &Value) {
        for (slot, key) in [
            (&mut self.id, "id"),
            (&mut self.model, "model"),
            (&mut self.created, "created"),
        ] {
            if slot.is_none() && !chunk[key].is_null() {
                *slot = Some(chunk[key].clone());
            }
        }
        if chunk.get("usage").is_some_and(|u| !u.is_null()) {
            self.usage = Some(chunk["usage"].clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        if let Some(s) = delta["content"].as_str() {
            self.content.push_str(s);
        }
        if let Some(s) = delta["refusal"].as_str() {
            self.refusal.push_str(s);
        }
        if let Some(s) = delta["reasoning_content"].as_str() {
            self.reasoning.push_str(s);
        }
        self.named_reasoning |= delta["reasoning"].is_string();
        for detail in delta["reasoning_details"].as_array().into_iter().flatten() {
            super::add_detail(&mut self.details, detail);
        }
        if let Some(a) = delta["annotations"].as_array() {
            self.annotations.extend(a.iter().cloned());
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            // The decoder numbered calls streamed without an `index` ([`CallNumbers`]).
            let index = call["index"].as_u64().unwrap_or(0) as usize;
            if index > 1024 {
                continue;
            }
            while self.tools.len() <= index {
                self.tools.push(CallSoFar::default());
            }
            let slot = &mut self.tools[index];
            if let Some(id) = call["id"].as_str() {
                slot.id = Some(id.to_string());
            }
            if let Some(name) = call["function"]["name"].as_str() {
                slot.name = Some(name.to_string());
            }
            // Appended in place: a source may send the arguments a few bytes a chunk, and
            // copying what came so far for each would be quadratic in their length.
            if let Some(args) = call["function"]["arguments"].as_str() {
                slot.arguments.push_str(args);
            }
        }
        if !choice["finish_reason"].is_null() {
            self.finish_reason = Some(choice["finish_reason"].clone());
        }
    }

    /// The complete response.
    pub fn finish(self) -> Value {
        let mut message = json!({"role": "assistant", "content": self.content});
        if !self.reasoning.is_empty() {
            if self.named_reasoning {
                message["reasoning"] = json!(self.reasoning);
            }
            message["reasoning_content"] = json!(self.reasoning);
        }
        if !self.details.is_empty() {
            message["reasoning_details"] = Value::Array(self.details);
        }
        if !self.annotations.is_empty() {
            message["annotations"] = Value::Array(self.annotations);
        }
        if !self.refusal.is_empty() {
            message["refusal"] = json!(self.refusal);
            if self.content.is_empty() {
                message["content"] = Value::Null;
            }
        }
        // A slot no fragment reached (a server that numbers its calls from 1) is no call.
        let calls: Vec<Value> = (self.tools.into_iter())
            .filter(|t| t.id.is_some() || t.name.is_some() || !t.arguments.is_empty())
            .map(|t| {
                json!({
                    "id": t.id,
                    "type": "function",
                    "function": {
                        "name": t.name.unwrap_or_default(),
                        "arguments": t.arguments,
                    },
                })
            })
            .collect();
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
            if self.content.is_empty() {
                message["content"] = Value::Null;
            }
        }
        let mut out = json!({
            "id": self.id.unwrap_or(json!("chatcmpl-routeplane")),
            "object": "chat.completion",
            "created": self.created.unwrap_or(json!(0)),
            "model": self.model.unwrap_or(json!("")),
            "choices": [{
                "index": 0,
                "message": message,
                "finish_reason": self.finish_reason.unwrap_or(json!("stop")),
            }],
        });
        if let Some(u) = self.usage {
            out["usage"] = u;
        }
        out
    }
}

#[cfg(test)]
mod tests;
