//! Serving a Responses client: its requests become hub chat requests, and what every
//! answer repeats of them (see `answer.rs` and `stream.rs` for the answers themselves).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{FILE_FIELDS, SHARED_FIELDS, is_minted, unseal};
use crate::body::RawBody;
use crate::error::{Error, Field};
use crate::protocol::{Must, ToolChoice, check, copy_fields, nameless, text_of, tools};

/// What [`request_to_chat`] reads, and every field the answer repeats (`ECHOED`), with
/// what each must be: so the answer never repeats what OpenAI would have refused.
const CHECKED: [(&str, Must); 15] = [
    ("instructions", Must::Text),
    ("max_output_tokens", Must::Count),
    ("parallel_tool_calls", Must::Flag),
    ("reasoning", Must::Object),
    ("reasoning.effort", crate::protocol::EFFORT),
    ("temperature", Must::Number),
    ("text", Must::Object),
    ("text.format", Must::Object),
    // Any other would be answered in free text, where the client asked for JSON.
    (
        "text.format.type",
        Must::OneOf("text json_object json_schema"),
    ),
    ("tool_choice", Must::Choice),
    ("tools", Must::List),
    ("top_p", Must::Number),
    ("truncation", Must::Text),
    ("user", Must::Text),
    ("metadata", Must::Object),
];

/// A Responses request from a client → hub chat request.
pub fn request_to_chat(mut req: Value) -> Result<Value, Error> {
    check(&mut req, &CHECKED)?;
    if !req["previous_response_id"].is_null() {
        return Err(Error::UntranslatableField {
            field: Field::PreviousResponseId,
            said: "needs a Responses upstream; send the full conversation in `input` instead"
                .into(),
        });
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
                    kind @ ("function_call" | "custom_tool_call" | "local_shell_call") => {
                        // A custom tool's text travels as a function's one `input` argument,
                        // a local shell's action as the function `local_shell`'s arguments.
                        let (name, arguments) = match kind {
                            "custom_tool_call" => (
                                item["name"].clone(),
                                json!({"input": item["input"].as_str().unwrap_or("")}).to_string(),
                            ),
                            "local_shell_call" => (
                                json!(tools::LOCAL_SHELL),
                                tools::local_shell_arguments(&item["action"]),
                            ),
                            _ => (
                                item["name"].clone(),
                                item["arguments"].as_str().unwrap_or("{}").to_string(),
                            ),
                        };
                        let call = json!({"id": item["call_id"], "type": "function", "function": {"name": name, "arguments": arguments}});
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
                    kind @ ("function_call_output"
                    | "custom_tool_call_output"
                    | "local_shell_call_output") => {
                        // Parts (an image a tool returned) go on as parts.
                        let output = match &item["output"] {
                            Value::String(s) => json!(s),
                            parts @ Value::Array(_) => content_to_chat(parts)?,
                            other => json!(text_of(other)),
                        };
                        // OpenAI documents a local shell's output with the call's id as `id`.
                        let call_id = match &item["call_id"] {
                            Value::Null if kind == "local_shell_call_output" => &item["id"],
                            id => id,
                        };
                        messages.push(
                            json!({"role": "tool", "tool_call_id": call_id, "content": output}),
                        );
                    }
                    "reasoning" => {
                        signed = item["encrypted_content"].as_str().and_then(unseal);
                    }
                    // A reference to an item Routeplane made (the AI SDK gives back an
                    // answer's items so unless `store: false`) names nothing any source
                    // stored, and refusing it would end every tool loop at its second
                    // step: it goes, as before a Responses source (`drop_own`).
                    "item_reference" if item["id"].as_str().is_some_and(is_minted) => {}
                    other => {
                        return Err(Error::Untranslatable(format!(
                            "input item type `{other}` is only available from a Responses upstream"
                        )));
                    }
                }
            }
        }
        // A Chat Completions or Anthropic body sent here (its base URL's path changed).
        Value::Null if req["messages"].is_array() => {
            return Err(Error::bad_field(
                "input",
                "is required: a string or a list of items; `messages` is a Chat Completions \
                 or Anthropic Messages body's, for /v1/chat/completions or /v1/messages",
            ));
        }
        Value::Null => {
            return Err(Error::bad_field(
                "input",
                "is required: a string or a list of items",
            ));
        }
        _ => {
            return Err(Error::bad_field(
                "input",
                "must be a string or a list of items",
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
    if tc["type"] == "allowed_tools" {
        out["tool_choice"] = allowed_to_chat(tc);
        return Ok(out);
    }
    let choice = match tc.as_str() {
        Some("auto") => Some(ToolChoice::Auto),
        Some("required") => Some(ToolChoice::Required),
        Some("none") => Some(ToolChoice::Never),
        // A function's. A hosted tool's (`web_search_preview`, `file_search`, `mcp`)
        // forces a tool [`flatten_tools`] left out: made no choice, the model would
        // answer without it; another target, a Responses source, may take it.
        _ => match (tc["type"].as_str(), tc["name"].as_str()) {
            (Some(kind @ ("function" | "custom")), None) => return Err(nameless(kind)),
            (Some(kind), _) if !matches!(kind, "function" | "custom") => {
                return Err(Error::UntranslatableField {
                    field: Field::ToolChoice,
                    said: format!("of type `{kind}` needs a Responses upstream"),
                });
            }
            (_, name) => name.map(ToolChoice::Function),
        },
    };
    if let Some(c) = choice {
        out["tool_choice"] = c.to_chat();
    }
    Ok(out)
}

/// A Responses `allowed_tools` choice in the hub's (chat's) shape, naming the functions
/// [`flatten_tools`] made of the tools it allows; a hosted tool (`web_search`), which
/// no function stands for, allows nothing.
fn allowed_to_chat(tc: &Value) -> Value {
    let names = tc["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| match t["type"].as_str() {
            Some("local_shell") => Some(tools::LOCAL_SHELL),
            Some("function" | "custom") => t["name"].as_str(),
            _ => None,
        });
    // An unknown mode goes on, to be refused with the hub's message.
    tools::allowed_choice(tc["mode"].as_str().unwrap_or_default(), names)
}

/// Responses tools → chat function tools. A `namespace` (Codex CLI groups tools so)
/// contributes its functions; a custom tool (free text, such as Codex CLI's
/// `apply_patch`) becomes a function of one string, `input`, whose description carries
/// the text's format; the client-run `local_shell` the function `local_shell` of its
/// action's fields; hosted tools (`web_search`, `file_search`, …) exist only on a
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
            Some("local_shell") => out.push(tools::local_shell_function()),
            Some("namespace") => flatten_tools(
                t["tools"].as_array().map(Vec::as_slice).unwrap_or_default(),
                out,
            )?,
            _ => {}
        }
    }
    Ok(())
}

/// The tools of a Responses client whose calls go back as items of their own rather
/// than `function_call`s.
#[derive(Debug, Clone, Default)]
pub struct ClientTools {
    /// The names of its custom (free-text) tools (Codex CLI's `apply_patch`): a call
    /// of one goes back as a `custom_tool_call` with its text.
    pub custom: Vec<String>,
    /// It offers OpenAI's `local_shell` (older Codex CLI): a call of the function
    /// `local_shell` goes back as a `local_shell_call`.
    pub local_shell: bool,
}

impl ClientTools {
    /// Reads them from a Responses request (in `namespace`s too). Most requests have
    /// neither, and their tools (Codex CLI's: tens of KiB of descriptions) are not
    /// parsed at all; those that do are read for kinds and names only.
    pub fn of(body: &RawBody) -> ClientTools {
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
        fn collect(tools: &[Tool<'_>], out: &mut ClientTools) {
            for t in tools {
                match (&*t.kind, &t.name) {
                    ("custom", Some(name)) => out.custom.push(name.to_string()),
                    ("local_shell", _) => out.local_shell = true,
                    ("namespace", _) => collect(&t.tools, out),
                    _ => {}
                }
            }
        }
        let mut found = ClientTools::default();
        let Some(raw) = body.get("tools") else {
            return found;
        };
        static CUSTOM: crate::protocol::Marker =
            crate::protocol::Marker::new(|| memchr::memmem::Finder::new("\"custom\""));
        static SHELL: crate::protocol::Marker =
            crate::protocol::Marker::new(|| memchr::memmem::Finder::new("\"local_shell\""));
        if !crate::protocol::holds(raw, &CUSTOM) && !crate::protocol::holds(raw, &SHELL) {
            return found;
        }
        if let Ok(tools) = serde_json::from_slice::<Vec<Tool<'_>>>(raw) {
            collect(&tools, &mut found);
        }
        found
    }

    /// True when `name` is one of the client's custom tools.
    pub(super) fn is_custom(&self, name: &Value) -> bool {
        name.as_str()
            .is_some_and(|n| self.custom.iter().any(|c| c == n))
    }

    /// True when a call of `name` is one of the client's local shell.
    pub(super) fn is_local_shell(&self, name: &Value) -> bool {
        self.local_shell && name == tools::LOCAL_SHELL
    }
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
    pub(super) fn read(&self) -> Map<String, Value> {
        self.0
            .as_deref()
            .and_then(|raw| serde_json::from_slice(raw).ok())
            .unwrap_or_default()
    }
}

/// What a Response says of an [`ECHOED`] field: the request's value, else what OpenAI
/// says when the request leaves it out. A sampling setting left out is null, not
/// OpenAI's 1: the source's own default applies, and it may differ. An object given
/// has the keys OpenAI's always has, which the SDKs read: Codex sends `text:
/// {"verbosity": …}` alone, and OpenAI's answer still names the format; a `reasoning`
/// has its `effort` and `summary`, null when not given.
fn echoed(request: &Map<String, Value>, key: &str) -> Value {
    let default = match key {
        "parallel_tool_calls" => json!(true),
        "reasoning" => json!({"effort": null, "summary": null}),
        "text" => json!({"format": {"type": "text"}}),
        "tool_choice" => json!("auto"),
        "tools" => json!([]),
        "truncation" => json!("disabled"),
        "metadata" => json!({}),
        _ => Value::Null,
    };
    match (request.get(key).filter(|v| !v.is_null()), default) {
        (Some(Value::Object(given)), Value::Object(mut all)) => {
            all.extend(given.clone());
            Value::Object(all)
        }
        (Some(given), _) => given.clone(),
        (None, default) => default,
    }
}

/// A Response object in OpenAI's key order, with what the client's `request` set
/// ([`echoed`]); `error`, `incomplete_details` and `usage` null, for the caller to fill
/// in place.
pub(super) fn response_object(
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
