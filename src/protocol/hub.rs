//! The pieces every translator shares: the hub's chunks and messages, tool choices,
//! files and ids, so the four protocols' translators build them one way.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::{anthropic, gemini, responses};
use crate::error::{Error, Field};

/// Seconds since the epoch, for `created` fields.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The text of message content: a string, or the text of its parts joined by newlines.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            // A model's refusal (a chat or Responses `refusal` part) is what it said.
            .filter_map(|p| p["text"].as_str().or(p["refusal"].as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The URL of a chat `image_url` part (`{"url": …}`, or the bare string some clients send).
pub(crate) fn image_url(part: &Value) -> &str {
    let image = &part["image_url"];
    image["url"].as_str().or(image.as_str()).unwrap_or("")
}

/// True when chat content carries more than text (an image, a file): a tool result
/// that does is a `tool` message whose content is parts, not a string.
pub(crate) fn has_media(content: &Value) -> bool {
    content
        .as_array()
        .is_some_and(|parts| parts.iter().any(|p| p["type"] != "text"))
}

/// A hub stream chunk carrying one delta (and maybe a finish reason).
pub(crate) fn hub_chunk(
    id: &str,
    created: u64,
    model: &str,
    delta: Value,
    finish: Option<&str>,
) -> Value {
    json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

/// The text and thinking (`reasoning_details` too) of a hub delta, without its tool
/// calls; `None` when it has none of them. An encoder holds it while a call is open.
pub(crate) fn without_calls(d: &Value) -> Option<Value> {
    let filled = |key: &str| match &d[key] {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    };
    let keys = ["reasoning_content", "reasoning_details", "content"];
    keys.iter().any(|k| filled(k)).then(|| {
        let fields = keys.iter().map(|&k| (k.to_string(), d[k].clone()));
        Value::Object(fields.collect())
    })
}

/// The usage-only hub chunk (`"choices": []`) a decoder sends before the end.
pub(crate) fn usage_chunk(id: &str, created: u64, model: &str, usage: Value) -> Value {
    json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [], "usage": usage,
    })
}

/// A hub assistant message from its pieces; `content` is null when only tools were called.
pub(crate) fn assistant_message(text: String, reasoning: String, calls: Vec<Value>) -> Value {
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

/// The searcher of a marker Routeplane writes (a seal, a signature) or a field it looks
/// for in raw JSON without parsing: asked of every same-protocol request or whole answer,
/// most of which hold none. Made once: making one per call (`str::contains` did) cost about 1 300
/// instructions a copied chat request (callgrind), more than the search.
pub(crate) type Marker = std::sync::LazyLock<memchr::memmem::Finder<'static>>;

/// Whether raw JSON holds `marker`.
pub(crate) fn holds(json: &[u8], marker: &Marker) -> bool {
    marker.find(json).is_some()
}

/// A reasoning detail for a stream, numbered after the `sent` before it: each goes out
/// whole, with its own `index`, as OpenRouter numbers streamed details.
pub(crate) fn numbered(mut detail: Value, sent: &mut usize) -> Value {
    detail["index"] = json!(*sent);
    *sent += 1;
    detail
}

/// Whether a reasoning detail is one a source needs back with the calls it led to, and
/// one Routeplane may keep for a client that drops it: Claude's signed thinking,
/// OpenAI's encrypted reasoning and Gemini's call signatures.
pub fn recallable(detail: &Value) -> bool {
    matches!(
        detail["format"].as_str(),
        Some(anthropic::SIGNED_BY_CLAUDE | responses::SIGNED_BY_OPENAI | gemini::SIGNED_BY_GEMINI)
    )
}

/// Adds a streamed reasoning detail to those so far. OpenRouter streams a detail in
/// pieces that share its `index`: their text is joined and their other fields kept.
pub(crate) fn add_detail(details: &mut Vec<Value>, piece: &Value) {
    // A piece without an index is a detail of its own: no search of those so far.
    let index = &piece["index"];
    let whole = match index.is_null() {
        true => None,
        false => details.iter_mut().find(|d| d["index"] == *index),
    };
    let (Some(whole), Some(fields)) = (whole, piece.as_object()) else {
        details.push(piece.clone());
        return;
    };
    for (key, value) in fields {
        match (key.as_str(), &mut whole[key], value) {
            ("text" | "summary" | "data", Value::String(so_far), Value::String(more)) => {
                so_far.push_str(more);
            }
            (_, slot, value) if !value.is_null() => *slot = value.clone(),
            _ => {}
        }
    }
}

/// `id` at most `max` bytes long: as it is when it fits, else its start and a hash of
/// the whole, so that an id is always shortened alike (a call and its result still
/// pair, and a source's prompt cache still matches the history) and two ids stay apart.
pub(crate) fn bounded_id(id: &str, max: usize) -> Cow<'_, str> {
    if id.len() <= max {
        return Cow::Borrowed(id);
    }
    let hash = format!("{:016x}", fnv1a(id.as_bytes()));
    let mut keep = max.saturating_sub(hash.len() + 1);
    while !id.is_char_boundary(keep) {
        keep -= 1;
    }
    Cow::Owned(format!("{}_{hash}", &id[..keep]))
}

/// The prefix of the ids given to one answer's tool calls that came without one (some
/// local servers send none; an Anthropic stream's `tool_use` may lack one): an Anthropic
/// or Responses client must send each call's result back under its id. The clock makes
/// them unique across answers and restarts.
pub(crate) fn made_id_prefix() -> String {
    format!("call_{}_", clock_hex())
}

/// The clock's nanoseconds since the epoch in hex, what made ids are made of.
pub(crate) fn clock_hex() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}")
}

/// Why a source's answer cannot go to a client: `what` of it no client's SDK reads. One
/// wording for every translator, whole answer or stream event.
pub(crate) fn unreadable(what: &str) -> String {
    format!("the source's answer could not be read ({what})")
}

/// A source's tool call as the hub carries it (a whole answer's, or the stream fragment
/// that begins one), fit for any client: a missing `id` (absent, `null` or empty) made
/// as `made` then `n`, `made` being one answer's [`made_id_prefix`]. Unreadable (the
/// reason) when its `id` is of another type or it names no tool (`name` missing, empty
/// or not a string): a client cannot run a nameless call, nor send its result back
/// under an id its SDK refuses.
pub(crate) fn fit_call(call: &mut Value, made: &mut Option<String>, n: u64) -> Result<(), String> {
    let named = call["function"]["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let Some(c) = call.as_object_mut().filter(|_| named) else {
        return Err(unreadable("a tool call without a string `name`"));
    };
    match c.get("id") {
        Some(Value::String(id)) if !id.is_empty() => {}
        None | Some(Value::Null | Value::String(_)) => {
            let prefix = made.get_or_insert_with(made_id_prefix);
            c.insert("id".into(), json!(format!("{prefix}{n}")));
        }
        Some(_) => return Err(unreadable("a tool call's `id` is not a string")),
    }
    Ok(())
}

/// A source's answer id (a whole answer's `id`, a stream's first event's): `None` when
/// it gave none (absent or `null`), for the caller to make one. Unreadable (the reason)
/// when of another type: a client's SDK refuses `"id": 7`. One check, whole or streamed.
pub(crate) fn answer_id(id: &Value) -> Result<Option<&str>, String> {
    match id {
        Value::Null => Ok(None),
        Value::String(id) => Ok(Some(id)),
        _ => Err(unreadable("`id` is not a string")),
    }
}

/// An id for an answer whose source gave none, whole or streamed: another each turn, as
/// a source's own would be.
pub(crate) fn made_answer_id() -> Value {
    json!(format!("chatcmpl-{}", clock_hex()))
}

/// A source's whole answer, read into a hub answer, fit for any client: an `id` it left
/// out (or `null`) made up, as a stream's decoder names one; each call as [`fit_call`]
/// makes it. Unreadable (the reason) when its `id` is of another type, or a call is.
pub(crate) fn fit_answer(chat: &mut Value) -> Result<(), String> {
    let Some(answer) = chat.as_object_mut() else {
        return Ok(());
    };
    if answer_id(answer.get("id").unwrap_or(&Value::Null))?.is_none() {
        answer.insert("id".into(), made_answer_id());
    }
    let choices = answer.get_mut("choices").and_then(Value::as_array_mut);
    let mut made = None;
    for choice in choices.into_iter().flatten() {
        let message = choice.get_mut("message");
        let calls = message.and_then(|m| m.get_mut("tool_calls")?.as_array_mut());
        for (j, call) in calls.into_iter().flatten().enumerate() {
            fit_call(call, &mut made, j as u64)?;
        }
    }
    Ok(())
}

/// The 64-bit FNV-1a hash: std's hashers may change between Rust releases, and a
/// shortened id must not change between two turns of a session.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Chat tool-call arguments (a JSON string) as an object; `{}` when empty or not an object.
pub(crate) fn arguments_object(args: &str) -> Value {
    serde_json::from_str::<Value>(args)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// The error for a chat message whose role the hub does not know. Untranslatable, not
/// malformed: a Chat source judges its own roles (OpenAI still takes `function`).
pub(crate) fn unknown_role(role: Option<&str>) -> Error {
    Error::Untranslatable(format!(
        "unknown message role `{}`",
        role.unwrap_or("(none)")
    ))
}

/// Appends a turn of `items` under `key` to `turns`, folded into the last turn when that
/// has the same role: Anthropic and Gemini want roles to alternate, and parallel tool
/// results belong in one turn.
pub(crate) fn push_turn(turns: &mut Vec<Value>, role: &str, key: &str, items: Vec<Value>) {
    match turns.last_mut() {
        Some(last) if last["role"] == role => {
            if let Some(a) = last[key].as_array_mut() {
                a.extend(items);
            }
        }
        _ => turns.push(json!({"role": role, key: items})),
    }
}

/// What a request's tool choice asks for, in the hub's terms: each translator maps its
/// own protocol's words to and from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolChoice<'a> {
    /// The model decides whether to call a tool (chat `"auto"`).
    Auto,
    /// The model must call some tool (chat `"required"`).
    Required,
    /// The model must not call a tool (chat `"none"`).
    Never,
    /// The model must call this function.
    Function(&'a str),
}

impl<'a> ToolChoice<'a> {
    /// The choice a chat request makes, if it makes one the hub knows.
    pub(crate) fn of_chat(chat: &'a Value) -> Option<ToolChoice<'a>> {
        match &chat["tool_choice"] {
            Value::String(s) => match s.as_str() {
                "auto" => Some(ToolChoice::Auto),
                "required" => Some(ToolChoice::Required),
                "none" => Some(ToolChoice::Never),
                _ => None,
            },
            v @ Value::Object(_) => v["function"]["name"].as_str().map(ToolChoice::Function),
            _ => None,
        }
    }

    /// The chat `tool_choice` value that asks for it.
    pub(crate) fn to_chat(self) -> Value {
        match self {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Never => json!("none"),
            ToolChoice::Function(name) => {
                json!({"type": "function", "function": {"name": name}})
            }
        }
    }
}

/// Chat `stop` (a string or a list) as a list of stop sequences.
pub(crate) fn stop_list(chat: &Value) -> Option<Value> {
    match &chat["stop"] {
        Value::String(s) => Some(json!([s])),
        Value::Array(a) => Some(Value::Array(a.clone())),
        _ => None,
    }
}

/// Copies each of `keys` that `from` has (and is not null) into the object `to`.
pub(crate) fn copy_fields(from: &Value, to: &mut Value, keys: &[&str]) {
    for &key in keys {
        if !from[key].is_null() {
            to[key] = from[key].clone();
        }
    }
}

/// A chat `file` part carrying `data_url` inline; chat clients send a file name with it,
/// and OpenAI wants one.
pub(crate) fn file_part(filename: Option<&str>, data_url: String) -> Value {
    json!({"type": "file", "file": {"filename": filename.unwrap_or("document.pdf"), "file_data": data_url}})
}

/// The media type and base64 data a chat `file` part carries inline. A file given by id
/// is refused: only a Responses source knows what the id names.
pub(crate) fn inline_file<'a>(
    part: &'a Value,
    provider: &str,
) -> Result<(&'a str, &'a str), Error> {
    part["file"]["file_data"]
        .as_str()
        .and_then(data_url)
        .ok_or_else(|| part_unsupported("file` without inline `file_data", provider))
}

/// A content part of type `kind` that `provider`'s protocol cannot carry: told as
/// [`Error::Unsupported`] tells a field, but a part is no request field of its own, so
/// it is no error's `param`.
#[cold]
pub(crate) fn part_unsupported(kind: &str, provider: &str) -> Error {
    let what = format!("content part `{kind}`");
    Error::Untranslatable(crate::error::unexpressed(&what, provider))
}

/// A base64 data URL (`data:MIME;base64,DATA`) split into its media type and data.
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    url.strip_prefix("data:")?.split_once(";base64,")
}

/// The base64 data URL for `data` of media type `mime`; [`data_url`] takes it apart.
pub(crate) fn to_data_url(mime: &str, data: &str) -> String {
    format!("data:{mime};base64,{data}")
}

/// Refuses the chat fields neither other protocol can express: `n` > 1 and `logprobs`.
pub(crate) fn refuse_chat_only(chat: &Value, provider: &str) -> Result<(), Error> {
    let field = if chat["n"].as_u64().is_some_and(|n| n > 1) {
        Field::N
    } else if chat["logprobs"] == json!(true) {
        Field::Logprobs
    } else {
        return Ok(());
    };
    Err(Error::Unsupported {
        field,
        provider: provider.to_string(),
    })
}
