//! Talking to a Chat Completions source: a hub request made into what it takes (OpenAI's
//! limits and names, tool results' media, reasoning details and tool call ids it refuses).

use std::borrow::Cow;

use memchr::memmem::Finder;
use serde_json::{Map, Value, json};

use crate::protocol::Source;

/// Moves the images and files of translated tool results (hub `tool` messages with
/// parts) to a user message right after that turn's tool messages: OpenAI refuses an
/// image in any message but a user's, and tool messages must follow their calls
/// unbroken. The tool message keeps its text.
pub(super) fn lift_tool_media(chat: &mut Value) {
    let Some(messages) = chat["messages"].as_array_mut() else {
        return;
    };
    if !messages
        .iter()
        .any(|m| m["role"] == "tool" && crate::protocol::has_media(&m["content"]))
    {
        return;
    }
    let mut out = Vec::with_capacity(messages.len() + 1);
    let mut lifted = Vec::new();
    for mut m in messages.drain(..) {
        let tool = m["role"] == "tool";
        if !tool && !lifted.is_empty() {
            out.push(json!({"role": "user", "content": std::mem::take(&mut lifted)}));
        }
        if tool
            && crate::protocol::has_media(&m["content"])
            && let Value::Array(parts) = &mut m["content"]
        {
            let (text, media): (Vec<Value>, Vec<Value>) = std::mem::take(parts)
                .into_iter()
                .partition(|p| p["type"] == "text");
            m["content"] = json!(crate::protocol::text_of(&Value::Array(text)));
            lifted.extend(media);
        }
        out.push(m);
    }
    if !lifted.is_empty() {
        out.push(json!({"role": "user", "content": lifted}));
    }
    *messages = out;
}

/// A hub request made from another protocol's, as the Chat source `to` takes it: the
/// hub's own conventions turned into what OpenAI accepts. A chat client's own request
/// never comes here; it goes as it came, or mended (`mend`).
pub fn request_from_chat(mut chat: Value, to: &Source<'_>) -> Value {
    chat["model"] = json!(to.model);
    if let Some(obj) = chat.as_object_mut() {
        // A translated `top_k` (Gemini CLI always sends `topK`) is a sampling hint
        // OpenAI refuses with a 400.
        obj.shift_remove("top_k");
        // The hub's budget in tokens: OpenAI takes an effort word only.
        obj.shift_remove(crate::protocol::THINKING_BUDGET);
        // OpenAI's reasoning models refuse `max_tokens` (400 "use
        // max_completion_tokens"), the name other protocols' limits arrive under;
        // OpenRouter and Azure take either name for them.
        if takes_completion_limit(to.model)
            && let Some(n) = obj.shift_remove("max_tokens")
        {
            obj.entry("max_completion_tokens").or_insert(n);
        }
        // OpenAI's API refuses more than four stop sequences (400 "array too long");
        // an Anthropic client may send any number. The first four stop the answer, a
        // later one can only let it run longer (`stops_dropped` says so in the log).
        if let Some(Value::Array(stops)) = obj.get_mut("stop")
            && stops_dropped(stops.len(), to) > 0
        {
            stops.truncate(OPENAI_MAX_STOPS);
        }
    }
    lift_tool_media(&mut chat);
    mend(&mut chat, to);
    chat
}

/// The most stop sequences OpenAI's API takes.
const OPENAI_MAX_STOPS: usize = 4;

/// How many of `given` stop sequences the Chat source `to` is not sent: those past the
/// fourth, for OpenAI's API (the `openai` provider, any block on `api.openai.com` or
/// Azure OpenAI). Servers of open models (vLLM, Ollama, llama.cpp) take any number.
pub fn stops_dropped(given: usize, to: &Source<'_>) -> usize {
    let host = to.host();
    let openai =
        to.provider == "openai" || host == "api.openai.com" || host.ends_with(".openai.azure.com");
    match openai {
        true => given.saturating_sub(OPENAI_MAX_STOPS),
        false => 0,
    }
}

/// Asks a streamed chat request for its usage (`stream_options.include_usage`), keeping
/// the client's other stream options.
pub(crate) fn ask_usage(req: &mut Map<String, Value>) {
    let options = req.entry("stream_options").or_insert_with(|| json!({}));
    if !options.is_object() {
        *options = json!({});
    }
    options["include_usage"] = json!(true);
}

/// Whether a chat request's `messages`, copied as they came, hold what the source `to`
/// refuses: reasoning details (only OpenRouter takes them back), or a tool result whose
/// call id it does not take ([`ToolIds`]). Asked of every copied chat request, so read
/// without parsing.
pub(crate) fn must_mend(messages: &[u8], to: &Source<'_>) -> bool {
    // The cheap byte search first: most requests hold no details, and the source's host
    // need not be read for them.
    static DETAILS: crate::protocol::Marker =
        crate::protocol::Marker::new(|| Finder::new("\"reasoning_details\""));
    (crate::protocol::holds(messages, &DETAILS) && !keeps_details(to))
        || refuses_an_id(messages, to)
}

/// Makes a chat request one the source `to` takes: without reasoning details unless it
/// keeps them, and with every tool call id in the shape it takes.
pub(crate) fn mend(chat: &mut Value, to: &Source<'_>) {
    if !keeps_details(to) {
        drop_details(chat);
    }
    fit_tool_ids(chat, ToolIds::of(to));
}

/// Whether a chat model is one of OpenAI's reasoning families (`o1`, `o3`, `o4-mini`,
/// `gpt-5`…), which take their output limit only as `max_completion_tokens`; an
/// aggregator's `openai/` prefix is looked through.
pub(crate) fn takes_completion_limit(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    let reasoning_o = name
        .strip_prefix('o')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    reasoning_o || name.starts_with("gpt-5")
}

/// Whether the Chat source `to` takes reasoning details (OpenRouter's shape) back:
/// OpenRouter (the built-in provider, or any block pointed at openrouter.ai) gives them
/// to the model that made them; OpenAI, DeepSeek and others refuse a message field they
/// do not know.
pub(super) fn keeps_details(to: &Source<'_>) -> bool {
    to.provider == "openrouter" || to.host() == "openrouter.ai"
}

/// Takes the reasoning details out of a chat request's messages.
fn drop_details(chat: &mut Value) {
    let messages = chat.get_mut("messages").and_then(Value::as_array_mut);
    for m in messages
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        m.shift_remove("reasoning_details");
    }
}

/// The tool call ids a Chat source takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolIds {
    /// OpenAI's rule, which most sources meet: at most 40 bytes (`string too long.
    /// Expected a string with maximum length 40`). vLLM's own are 46.
    AtMost40,
    /// Mistral's: exactly nine letters or digits (`Tool call id was call_0fypS1hVX but
    /// must be a-z, A-Z, 0-9, with a length of 9`). Mistral's API says so, and so do
    /// the chat templates of Mistral's models served by vLLM or llama.cpp.
    Mistral,
}

impl ToolIds {
    /// The rule of the source `to`: Mistral's for Mistral's API and for any model of
    /// Mistral's families by name, wherever it is served; OpenAI's for the rest.
    pub(crate) fn of(to: &Source<'_>) -> ToolIds {
        const FAMILIES: &[&str] = &[
            "mistral",
            "ministral",
            "mixtral",
            "codestral",
            "devstral",
            "magistral",
            "pixtral",
            "voxtral",
        ];
        let host = to.host();
        let name = to.model.rsplit('/').next().unwrap_or(to.model);
        let of_mistral = host == "mistral.ai"
            || host.ends_with(".mistral.ai")
            || FAMILIES.iter().any(|f| contains_ignoring_case(name, f));
        if of_mistral {
            ToolIds::Mistral
        } else {
            ToolIds::AtMost40
        }
    }

    /// Whether the source takes `id` as it is.
    pub(super) fn takes(self, id: &str) -> bool {
        match self {
            ToolIds::AtMost40 => id.len() <= MAX_TOOL_ID,
            ToolIds::Mistral => id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        }
    }

    /// `id` as the source takes it: as it is when it does, else made from the whole id,
    /// so that a call and its result still pair, every turn gives the same id (a
    /// source's prompt cache still matches the history) and two ids stay apart.
    pub(super) fn fit(self, id: &str) -> Cow<'_, str> {
        match self {
            ToolIds::AtMost40 => crate::protocol::bounded_id(id, MAX_TOOL_ID),
            ToolIds::Mistral if self.takes(id) => Cow::Borrowed(id),
            ToolIds::Mistral => {
                const DIGITS: &[u8; 62] =
                    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
                let mut h = crate::protocol::fnv1a(id.as_bytes());
                let short = (0..9)
                    .map(|_| {
                        let digit = DIGITS[(h % 62) as usize];
                        h /= 62;
                        char::from(digit)
                    })
                    .collect();
                Cow::Owned(short)
            }
        }
    }
}

/// Whether `haystack` holds `needle` (lower case), in any case.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The longest tool call id OpenAI takes.
pub(crate) const MAX_TOOL_ID: usize = 40;

/// Whether raw chat `messages` answer a tool call whose id the source `to` refuses. Each
/// call in a history has its result, so the results' `tool_call_id`s are the ones read;
/// an id written with an escape is taken as refused, and the request is mended to be
/// sure. The source's rule is looked up only for a request that has a tool result.
pub(super) fn refuses_an_id(messages: &[u8], to: &Source<'_>) -> bool {
    const KEY: &[u8] = b"\"tool_call_id\"";
    static ID: crate::protocol::Marker = crate::protocol::Marker::new(|| Finder::new(KEY));
    // Bytes, not text: the body was read as JSON, so it is UTF-8 already, and a whole
    // history need not be checked again for each copied request.
    let mut rest = messages;
    let mut ids = None;
    while let Some(at) = ID.find(rest) {
        rest = rest[at + KEY.len()..].trim_ascii_start();
        let Some(value) = rest.strip_prefix(b":").map(<[u8]>::trim_ascii_start) else {
            continue;
        };
        let Some(value) = value.strip_prefix(b"\"") else {
            continue;
        };
        match memchr::memchr2(b'"', b'\\', value) {
            Some(end) if value[end] == b'"' => {
                let Ok(id) = std::str::from_utf8(&value[..end]) else {
                    return true;
                };
                if !ids.get_or_insert_with(|| ToolIds::of(to)).takes(id) {
                    return true;
                }
                rest = &value[end..];
            }
            _ => return true,
        }
    }
    false
}

/// Rewrites the tool call ids `ids` refuses, in the assistant's calls, the tool messages
/// and Gemini's call signatures (a reasoning detail named by its call's id) alike
/// ([`ToolIds::fit`]). Only the request changes: the client keeps its ids.
pub(super) fn fit_tool_ids(chat: &mut Value, ids: ToolIds) {
    let fit = |id: &mut Value| {
        if let Some(given) = id.as_str()
            && let Cow::Owned(fitted) = ids.fit(given)
        {
            *id = Value::String(fitted);
        }
    };
    let messages = chat.get_mut("messages").and_then(Value::as_array_mut);
    for m in messages.into_iter().flatten() {
        let calls = m.get_mut("tool_calls").and_then(Value::as_array_mut);
        for id in calls.into_iter().flatten().filter_map(|c| c.get_mut("id")) {
            fit(id);
        }
        if let Some(id) = m.get_mut("tool_call_id") {
            fit(id);
        }
        let details = m.get_mut("reasoning_details").and_then(Value::as_array_mut);
        let signatures = details
            .into_iter()
            .flatten()
            .filter(|d| d["format"] == crate::protocol::gemini::SIGNED_BY_GEMINI);
        for id in signatures.filter_map(|d| d.get_mut("id")) {
            fit(id);
        }
    }
}
