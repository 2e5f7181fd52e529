//! Serving a Gemini client: its requests become hub chat requests, and chat answers
//! and chunks become Gemini answers and events.
//!
//! A request's field names come in either of Google's spellings (`inlineData` or
//! `inline_data`); [`request_to_chat`] first makes them camelCase
//! (`super::spelling`), and everything here reads that one.

use serde_json::{Value, json};

use super::{error_json, gemini_finish, signature, spelling, synthetic_id, usage_from_chat};
use crate::error::{Error, Field};
use crate::protocol::{self, Must, ToolChoice, arguments_object, assistant_message, text_of};
use crate::sse::Event;

/// The text of a `systemInstruction`: a Content, a list of parts, or a plain string.
fn instruction_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(_) => text_of(&v["parts"]),
        Value::Array(_) => text_of(v),
        _ => String::new(),
    }
}

/// Google's OpenAPI-subset schema as JSON Schema: upper-case `type`s lower-cased;
/// `nullable: true` a type union with `"null"` (a `null` choice in `anyOf` when there is
/// no type, and `null` added to an `enum`); `propertyOrdering`, which JSON Schema lacks,
/// used to order `properties` (Gemini otherwise orders them alphabetically) and then
/// dropped. Only a schema's own keys are read: property names and the values of `enum`,
/// `default` and `example` are the client's.
fn json_schema(v: &Value) -> Value {
    let Value::Object(m) = v else {
        return v.clone();
    };
    let nullable = m.get("nullable") == Some(&json!(true));
    let mut out = serde_json::Map::new();
    for (k, x) in m {
        let x = match (k.as_str(), x) {
            ("nullable" | "propertyOrdering", _) => continue,
            ("type", Value::String(t)) => {
                let t = json!(t.to_ascii_lowercase());
                if nullable { json!([t, "null"]) } else { t }
            }
            ("items", x) => json_schema(x),
            // A nullable enum lists null too, or JSON Schema's `enum` still refuses it.
            ("enum", Value::Array(a)) if nullable && !a.contains(&Value::Null) => {
                let mut a = a.clone();
                a.push(Value::Null);
                Value::Array(a)
            }
            ("anyOf", Value::Array(a)) => {
                let mut a: Vec<Value> = a.iter().map(json_schema).collect();
                if nullable && m.get("type").is_none() {
                    a.push(json!({"type": "null"}));
                }
                Value::Array(a)
            }
            ("properties", Value::Object(p)) => {
                let order = m.get("propertyOrdering").and_then(Value::as_array);
                let named = order.into_iter().flatten().filter_map(Value::as_str);
                let mut props: serde_json::Map<String, Value> = named
                    .filter_map(|n| p.get(n).map(|s| (n.to_string(), json_schema(s))))
                    .collect();
                for (n, s) in p {
                    if !props.contains_key(n) {
                        props.insert(n.clone(), json_schema(s));
                    }
                }
                Value::Object(props)
            }
            // Google's JSON writes its 64-bit integers as strings.
            (
                "minItems" | "maxItems" | "minLength" | "maxLength" | "minProperties"
                | "maxProperties",
                Value::String(n),
            ) => n.parse::<u64>().map_or_else(|_| x.clone(), |n| json!(n)),
            _ => x.clone(),
        };
        out.insert(k.clone(), x);
    }
    Value::Object(out)
}

/// A function response's payload as chat tool content: a lone string field unwrapped.
fn response_text(response: &Value) -> String {
    if let Some(m) = response.as_object()
        && m.len() == 1
        && let Some(s) = ["output", "result", "content"]
            .iter()
            .find_map(|k| m.get(*k).and_then(Value::as_str))
    {
        return s.to_string();
    }
    match response {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An `inlineData` blob as a chat part: an image as an image, anything else (a PDF) as
/// a file.
fn inline_part(d: &Value) -> Value {
    let mime = d["mimeType"].as_str().unwrap_or("application/octet-stream");
    let data = crate::base64::standard(d["data"].as_str().unwrap_or(""));
    let url = protocol::to_data_url(mime, &data);
    if mime.starts_with("image/") {
        json!({"type": "image_url", "image_url": {"url": url}})
    } else {
        protocol::file_part(None, url)
    }
}

/// Gemini's `thinkingLevel`s: in the small letters of its docs, the hub's efforts, and
/// in the capitals google-genai sends.
const LEVELS: Must = Must::OneOf(
    "minimal low medium high xhigh MINIMAL LOW MEDIUM HIGH XHIGH THINKING_LEVEL_UNSPECIFIED",
);

// Google's numbers, which it takes written as strings too (proto3 JSON).
const COUNT: Must = Must::Proto(&Must::Count);
const INTEGER: Must = Must::Proto(&Must::Integer);
const NUMBER: Must = Must::Proto(&Must::Number);

/// What [`request_to_chat`] reads, which would drop a wrong type or an unknown word,
/// with what each must be; by the camelCase names it reads, once `spelling` made them so.
const CHECKED: [(&str, Must); 15] = [
    ("generationConfig", Must::Object),
    ("generationConfig.maxOutputTokens", COUNT),
    ("generationConfig.candidateCount", COUNT),
    ("generationConfig.temperature", NUMBER),
    ("generationConfig.topP", NUMBER),
    ("generationConfig.topK", NUMBER),
    ("generationConfig.seed", INTEGER),
    ("generationConfig.presencePenalty", NUMBER),
    ("generationConfig.frequencyPenalty", NUMBER),
    ("generationConfig.stopSequences", Must::Stops),
    ("generationConfig.thinkingConfig", Must::Object),
    ("generationConfig.thinkingConfig.thinkingBudget", INTEGER),
    ("generationConfig.thinkingConfig.thinkingLevel", LEVELS),
    ("tools", Must::List),
    (
        "toolConfig.functionCallingConfig.mode",
        Must::OneOf("AUTO ANY NONE VALIDATED MODE_UNSPECIFIED"),
    ),
];

/// A `generateContent` request from a client → hub chat request. `stream` comes from
/// the method in the URL, since Gemini bodies do not say.
pub fn request_to_chat(mut req: Value, stream: bool) -> Result<Value, Error> {
    spelling::request(&mut req);
    protocol::check(&mut req, &CHECKED)?;
    if !req["cachedContent"].is_null() {
        return Err(Error::UntranslatableField {
            field: Field::CachedContent,
            said: "needs a Gemini upstream; send the full conversation in `contents` instead"
                .into(),
        });
    }
    // The hub carries one answer. A Chat source would make the candidates (`n`), but
    // they would reach the client as one: every event `index: 0`, which the SDK joins
    // into one text. Only a Gemini source, which gets the request as it came, answers
    // several; a virtual model moves on to one.
    if req["generationConfig"]["candidateCount"]
        .as_u64()
        .is_some_and(|n| n > 1)
    {
        return Err(Error::UntranslatableField {
            field: Field::CandidateCount,
            said: "above 1 needs a Gemini upstream; ask for one candidate or choose a Gemini model"
                .into(),
        });
    }
    let Some(contents) = req["contents"].as_array() else {
        return Err(Error::bad_field(
            "contents",
            if req["contents"].is_null() {
                "is required: a list of {role, parts}"
            } else {
                "must be a list of {role, parts}"
            },
        ));
    };
    let mut messages: Vec<Value> = Vec::new();
    let system = instruction_text(&req["systemInstruction"]);
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    // The calls of the last model turn, (name, id, answered), to pair responses with.
    let mut pending: Vec<(String, String, bool)> = Vec::new();
    for (turn, c) in contents.iter().enumerate() {
        let parts = match &c["parts"] {
            Value::Array(p) => p.as_slice(),
            Value::Null => &[],
            _ => return Err(Error::bad_field("parts", "of a content must be a list")),
        };
        match c["role"].as_str().unwrap_or("user") {
            "model" => {
                let mut text = String::new();
                let mut calls = Vec::new();
                // A run of model turns is one answer (see `push_answer`): a response
                // after it may answer a call of any of them.
                if !last_is_answer(&messages) {
                    pending.clear();
                }
                for p in parts {
                    if let Some(t) = p["text"].as_str()
                        && p["thought"] != json!(true)
                    {
                        text.push_str(t);
                    }
                    let fc = &p["functionCall"];
                    if fc.is_object() {
                        let name = fc["name"].as_str().unwrap_or("").to_string();
                        let id = fc["id"]
                            .as_str()
                            .map_or_else(|| synthetic_id(turn, calls.len(), &name), str::to_string);
                        let args = if fc["args"].is_object() {
                            fc["args"].to_string()
                        } else {
                            "{}".into()
                        };
                        calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}));
                        pending.push((name, id, false));
                    }
                }
                if text.is_empty() && calls.is_empty() {
                    continue;
                }
                push_answer(&mut messages, text, calls);
            }
            "user" | "function" | "tool" => {
                let mut other = Vec::new();
                for (j, p) in parts.iter().enumerate() {
                    let fr = &p["functionResponse"];
                    if fr.is_object() {
                        let name = fr["name"].as_str().unwrap_or("");
                        let id = pair_response(&mut pending, fr["id"].as_str(), name)
                            .unwrap_or_else(|| synthetic_id(turn, j, name));
                        // Gemini 3 nests a function result's images in its `parts`.
                        let text = response_text(&fr["response"]);
                        let media: Vec<Value> = fr["parts"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|p| p["inlineData"].is_object())
                            .map(|p| inline_part(&p["inlineData"]))
                            .collect();
                        let content = if media.is_empty() {
                            json!(text)
                        } else {
                            let mut parts = vec![json!({"type": "text", "text": text})];
                            parts.extend(media);
                            Value::Array(parts)
                        };
                        messages
                            .push(json!({"role": "tool", "tool_call_id": id, "content": content}));
                    } else if let Some(t) = p["text"].as_str() {
                        other.push(json!({"type": "text", "text": t}));
                    } else if p["inlineData"].is_object() {
                        other.push(inline_part(&p["inlineData"]));
                    } else if p["fileData"].is_object() {
                        // Chat takes an image by URL, but no other file by URL.
                        let f = &p["fileData"];
                        match f["mimeType"].as_str() {
                            Some(mime) if !mime.starts_with("image/") => {
                                return Err(Error::Untranslatable(format!(
                                    "a `fileData` part of type `{mime}` (a file by URI) can go only to a Gemini source; send it inline as `inlineData`"
                                )));
                            }
                            _ => other.push(
                                json!({"type": "image_url", "image_url": {"url": f["fileUri"]}}),
                            ),
                        }
                    } else if !(p["executableCode"].is_object()
                        || p["codeExecutionResult"].is_object())
                    {
                        // Dropped, a misspelt part would leave the turn empty without a word.
                        return Err(Error::bad_request(format!(
                            "part {j} of `contents[{turn}]` has none of `text`, `inlineData`, `fileData` or `functionResponse`"
                        )));
                    }
                }
                if other.is_empty() {
                    continue;
                }
                let content = if other.iter().all(|p| p["type"] == "text") {
                    json!(text_of(&Value::Array(other)))
                } else {
                    Value::Array(other)
                };
                messages.push(json!({"role": "user", "content": content}));
            }
            role => {
                return Err(Error::bad_request(format!(
                    "unknown content role `{role}`; expected `user` or `model`"
                )));
            }
        }
    }
    let mut out = json!({"messages": messages});
    if stream {
        out["stream"] = json!(true);
        out["stream_options"] = json!({"include_usage": true});
    }
    let gc = &req["generationConfig"];
    for (from, to) in [
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("topK", "top_k"),
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
        ("maxOutputTokens", "max_tokens"),
        ("stopSequences", "stop"),
    ] {
        if !gc[from].is_null() {
            out[to] = gc[from].clone();
        }
    }
    if gc["responseMimeType"] == "application/json" {
        let schema = if gc["responseJsonSchema"].is_object() {
            Some(gc["responseJsonSchema"].clone())
        } else if gc["responseSchema"].is_object() {
            Some(json_schema(&gc["responseSchema"]))
        } else {
            None
        };
        out["response_format"] = match schema {
            Some(s) => {
                json!({"type": "json_schema", "json_schema": {"name": "response", "schema": s}})
            }
            None => json!({"type": "json_object"}),
        };
    }
    let thinking = &gc["thinkingConfig"];
    let effort = match (
        thinking["thinkingLevel"].as_str(),
        thinking["thinkingBudget"].as_i64(),
    ) {
        // The unspecified level is none given.
        (Some(level), _) if level != "THINKING_LEVEL_UNSPECIFIED" => {
            Some(level.to_ascii_lowercase())
        }
        (_, Some(b)) if b > 0 => Some(
            match b {
                ..=2048 => "low",
                2049..=8192 => "medium",
                _ => "high",
            }
            .to_string(),
        ),
        _ => None,
    };
    if let Some(e) = effort {
        out["reasoning_effort"] = json!(e);
        // A budget given as a number goes on as one, for a source that takes one
        // (Anthropic's `budget_tokens`).
        if thinking["thinkingLevel"].is_null()
            && let Some(b) = thinking["thinkingBudget"].as_u64()
        {
            out[protocol::THINKING_BUDGET] = json!(b);
        }
    }
    let mut tools = Vec::new();
    for t in req["tools"].as_array().into_iter().flatten() {
        // Built-in tools (googleSearch, codeExecution, urlContext) exist only on a Gemini
        // upstream; leaving them out only narrows what the model may call.
        for d in t["functionDeclarations"].as_array().into_iter().flatten() {
            let params = if d["parametersJsonSchema"].is_object() {
                d["parametersJsonSchema"].clone()
            } else if d["parameters"].is_object() {
                json_schema(&d["parameters"])
            } else {
                json!({"type": "object", "properties": {}})
            };
            let mut f = json!({"name": d["name"], "parameters": params});
            if let Some(desc) = d["description"].as_str() {
                f["description"] = json!(desc);
            }
            tools.push(json!({"type": "function", "function": f}));
        }
    }
    if !tools.is_empty() {
        out["tools"] = Value::Array(tools);
    }
    let fcc = &req["toolConfig"]["functionCallingConfig"];
    let allowed = fcc["allowedFunctionNames"].as_array();
    let choice = match fcc["mode"].as_str() {
        Some("NONE") => Some(ToolChoice::Never),
        // One allowed function is a named choice; several, some tool of those.
        Some("ANY") => match allowed.map(Vec::as_slice) {
            Some([one]) => Some(ToolChoice::Function(one.as_str().ok_or_else(|| {
                Error::bad_field("allowedFunctionNames", "must list function names")
            })?)),
            Some(several @ [_, _, ..]) => {
                let names = several.iter().filter_map(Value::as_str);
                out["tool_choice"] = protocol::tools::allowed_choice("required", names);
                return Ok(out);
            }
            _ => Some(ToolChoice::Required),
        },
        Some("AUTO" | "VALIDATED") => Some(ToolChoice::Auto),
        _ => None,
    };
    if let Some(c) = choice {
        out["tool_choice"] = c.to_chat();
    }
    Ok(out)
}

/// Whether the last hub message is an assistant's, which a model turn joins.
fn last_is_answer(messages: &[Value]) -> bool {
    messages.last().is_some_and(|m| m["role"] == "assistant")
}

/// Adds a model turn's text and calls to `messages`: as a new assistant message, or to
/// the last one when that is an assistant's too. The google-genai SDK's chat keeps each
/// streamed piece of an answer as a `model` turn of its own, and many chat templates
/// (Mistral's, several of llama.cpp's and vLLM's) refuse roles that do not alternate;
/// Anthropic and Gemini sources fold turns the same way (`protocol::push_turn`). The
/// pieces are of one answer, so their text is joined with nothing between; thoughts
/// are left out as before. Consecutive user turns are left apart: the SDK's chat makes
/// none (it leaves a question whose answer was empty out of the history, with the
/// answer), and joining two would change what a source that takes them apart is asked.
fn push_answer(messages: &mut Vec<Value>, text: String, calls: Vec<Value>) {
    if !last_is_answer(messages) {
        messages.push(assistant_message(text, String::new(), calls));
        return;
    }
    let Some(last) = messages.pop() else {
        return;
    };
    let mut joined = text_of(&last["content"]);
    joined.push_str(&text);
    let mut all: Vec<Value> = last["tool_calls"].as_array().cloned().unwrap_or_default();
    all.extend(calls);
    messages.push(assistant_message(joined, String::new(), all));
}

/// The id of the pending call a function response answers: by id, else the first
/// unanswered call of that name (gemini-cli makes up its own ids when Gemini gave none).
fn pair_response(
    pending: &mut [(String, String, bool)],
    id: Option<&str>,
    name: &str,
) -> Option<String> {
    let slot = id
        .and_then(|id| pending.iter().position(|(_, p, _)| p == id))
        .or_else(|| pending.iter().position(|(n, _, done)| n == name && !done));
    match slot {
        Some(i) => {
            pending[i].2 = true;
            Some(pending[i].1.clone())
        }
        None => id.map(str::to_string),
    }
}

// ---- chat → Gemini client (inbound answers) ----

/// The parts of a hub assistant message.
fn answer_parts(msg: &Value) -> Vec<Value> {
    let mut parts = Vec::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
        parts.push(json!({"text": r, "thought": true}));
    }
    let text = text_of(&msg["content"]);
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    let details = msg["reasoning_details"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let calls = msg["tool_calls"].as_array().into_iter().flatten();
    for (j, call) in calls.enumerate() {
        parts.push(function_call(
            &call["id"],
            &call["function"]["name"],
            call["function"]["arguments"].as_str().unwrap_or("{}"),
            signature(details, &call["id"], j == 0),
        ));
    }
    parts
}

/// A `functionCall` part, with its thought signature if it has one. A Gemini client
/// gives the part back as it got it, and a Gemini source (the same protocol: the
/// history goes byte for byte) refuses a turn of calls whose first has none.
fn function_call(id: &Value, name: &Value, args: &str, signature: Option<&str>) -> Value {
    let mut fc = json!({"name": name, "args": arguments_object(args)});
    if id.is_string() {
        fc["id"] = id.clone();
    }
    let mut part = json!({"functionCall": fc});
    if let Some(s) = signature {
        part["thoughtSignature"] = json!(s);
    }
    part
}

/// A text part, or a thought part when `thought`.
fn text_part(text: String, thought: bool) -> Value {
    if thought {
        json!({"text": text, "thought": true})
    } else {
        json!({"text": text})
    }
}

/// One `GenerateContentResponse` with these parts.
fn response(parts: Vec<Value>, id: &str, model: &str) -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
        "modelVersion": model,
        "responseId": id,
    })
}

/// Hub chat completion → `generateContent` answer. An answer with nothing in it (no
/// text, thoughts or calls) has a content without parts, as Gemini's own has (and as
/// [`Encoder::finish`] writes), not an empty text part: a client keeps the content as
/// history and sends it back, and Gemini refuses an empty text part. The google-genai
/// SDK's chat leaves a content without parts, and the question it answers, out of the
/// history it sends next; an empty text part it would send back.
pub fn response_from_chat(chat: Value) -> Value {
    let choice = &chat["choices"][0];
    let parts = answer_parts(&choice["message"]);
    let empty = parts.is_empty();
    let mut out = response(
        parts,
        chat["id"].as_str().unwrap_or("routeplane"),
        chat["model"].as_str().unwrap_or(""),
    );
    if empty {
        out["candidates"][0]["content"] = json!({"role": "model"});
    }
    out["candidates"][0]["finishReason"] = json!(gemini_finish(
        choice["finish_reason"].as_str().unwrap_or("stop")
    ));
    // No counts are not zero counts: a source that reports none gives none.
    if chat["usage"].is_object() {
        out["usageMetadata"] = usage_from_chat(&chat["usage"]);
    }
    out
}

/// A tool call whose argument fragments are still arriving.
#[derive(Debug, Default)]
struct PendingCall {
    id: Value,
    name: Value,
    args: String,
}

/// Writes hub chunks to a Gemini client as `GenerateContentResponse` events. Text goes
/// out as it comes but for its last character, which the last event carries: that
/// event has the `finishReason` and usage, and ends on real text as Gemini's own
/// streams do, not on an empty text part (a client that keeps such a part sends it
/// back, and Gemini refuses an empty text part). A function call goes out whole at the
/// end, since Gemini's parts carry complete arguments.
#[derive(Debug)]
pub struct Encoder {
    model: String,
    id: String,
    /// Tool calls by their chat index.
    calls: Vec<PendingCall>,
    /// The reasoning details so far: Gemini's own signature of a call may be one.
    details: Vec<Value>,
    /// The last character of the text or (`true`) thoughts so far, not sent yet.
    held: Option<(String, bool)>,
    finish: String,
    usage: Value,
}

impl Encoder {
    /// An encoder that names `model` in its events.
    pub fn new(model: &str) -> Encoder {
        Encoder {
            model: model.to_string(),
            id: String::new(),
            calls: Vec::new(),
            details: Vec::new(),
            held: None,
            finish: "stop".into(),
            usage: Value::Null,
        }
    }

    fn event(&self, parts: Vec<Value>) -> Event {
        Event::data(response(parts, &self.id, &self.model).to_string())
    }

    /// Learns the `responseId` and `modelVersion` a same-protocol stream showed the
    /// client, so a continuation's events carry them too. Only until they are known:
    /// the rest of a stream is not parsed.
    pub fn observe(&mut self, ev: &Event) {
        if !self.id.is_empty() {
            return;
        }
        let Some(v) = ev
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
        else {
            return;
        };
        if let Some(id) = v["responseId"].as_str() {
            self.id = id.to_string();
            if let Some(m) = v["modelVersion"].as_str() {
                self.model = m.to_string();
            }
        }
    }

    /// Encodes one chunk.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        // The first chunk names the answer and the model that answered, as the
        // unstreamed answer does.
        if self.id.is_empty()
            && let Some(id) = chunk["id"].as_str()
        {
            self.id = id.to_string();
            if let Some(m) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
                self.model = m.to_string();
            }
        }
        if chunk["usage"].is_object() {
            self.usage = chunk["usage"].clone();
        }
        let choice = &chunk["choices"][0];
        let d = &choice["delta"];
        let mut parts = Vec::new();
        if let Some(r) = d["reasoning_content"].as_str() {
            self.text(r, true, &mut parts);
        }
        if let Some(t) = d["content"].as_str() {
            self.text(t, false, &mut parts);
        }
        for detail in d["reasoning_details"].as_array().into_iter().flatten() {
            protocol::add_detail(&mut self.details, detail);
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0) as usize;
            if index > 1024 {
                continue;
            }
            if self.calls.len() <= index {
                self.calls.resize_with(index + 1, PendingCall::default);
            }
            let slot = &mut self.calls[index];
            if call["id"].is_string() {
                slot.id = call["id"].clone();
            }
            if call["function"]["name"].is_string() {
                slot.name = call["function"]["name"].clone();
            }
            slot.args
                .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = f.to_string();
        }
        if parts.is_empty() {
            return Vec::new();
        }
        vec![self.event(parts)]
    }

    /// Adds `more` text (or thoughts) to `parts`, all but its last character, which is
    /// held for the next part or the last event; what was held of the other kind goes
    /// first.
    fn text(&mut self, more: &str, thought: bool, parts: &mut Vec<Value>) {
        if more.is_empty() {
            return;
        }
        let mut text = match self.held.take() {
            Some((held, kind)) if kind == thought => held,
            Some((held, kind)) => {
                parts.push(text_part(held, kind));
                String::new()
            }
            None => String::new(),
        };
        text.push_str(more);
        let last = text.char_indices().next_back().map_or(0, |(i, _)| i);
        let held = text.split_off(last);
        if !text.is_empty() {
            parts.push(text_part(text, thought));
        }
        self.held = Some((held, thought));
    }

    /// The last event: the held text, whole function calls, the finish reason and
    /// usage. With nothing in it, its content has no parts, as Gemini's own last event
    /// after a call has none.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut parts: Vec<Value> = self
            .held
            .take()
            .map(|(text, thought)| text_part(text, thought))
            .into_iter()
            .collect();
        let calls = self.calls.iter().filter(|c| c.name.is_string());
        for (j, c) in calls.enumerate() {
            let signed = signature(&self.details, &c.id, j == 0);
            parts.push(function_call(&c.id, &c.name, &c.args, signed));
        }
        let empty = parts.is_empty();
        let mut last = response(parts, &self.id, &self.model);
        if empty {
            last["candidates"][0]["content"] = json!({"role": "model"});
        }
        last["candidates"][0]["finishReason"] = json!(gemini_finish(&self.finish));
        if !self.usage.is_null() {
            last["usageMetadata"] = usage_from_chat(&self.usage);
        }
        vec![Event::data(last.to_string())]
    }

    /// The held text, then an error event in Google's shape.
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some((text, thought)) = self.held.take() {
            out.push(self.event(vec![text_part(text, thought)]));
        }
        out.push(Event::data(error_json(status, message).to_string()));
        out
    }
}
