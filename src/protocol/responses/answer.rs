//! Serving a Responses client its whole answer: a hub chat completion as a Responses
//! object, and the pieces of it a stream's events carry too (usage, ids, status,
//! annotations, local shell calls), which `stream.rs` writes.

use serde_json::{Value, json};

use super::client::{ClientTools, Echo, custom_input, response_object};
use super::{minted, seal};
use crate::protocol::{now, text_of, tools};

/// Chat usage → Responses usage; null when the upstream reported none, never zeros.
pub(super) fn usage_from_chat(u: &Value) -> Value {
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
pub(super) fn response_id(chat_id: &Value) -> String {
    match chat_id.as_str() {
        Some(id) if id.starts_with("resp_") => id.to_string(),
        Some(id) => format!("resp_{id}"),
        None => "resp_routeplane".to_string(),
    }
}

/// `status` and `incomplete_details` for a chat finish reason.
pub(super) fn status_of(finish: &str) -> (&'static str, Value) {
    match finish {
        "length" => ("incomplete", json!({"reason": "max_output_tokens"})),
        "content_filter" => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// Hub chat completion → Responses object; calls of the client's custom tools and local
/// shell go back as their own items (`client_tools`), and what the client asked is repeated
/// (`echo`).
pub fn response_from_chat(chat: Value, client_tools: &ClientTools, echo: &Echo) -> Value {
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
        output.push(json!({"type": "reasoning", "id": item_id("rs", &id, &output), "summary": summary, "encrypted_content": sealed}));
    }
    let text = text_of(&msg["content"]);
    let mut content = Vec::new();
    if !text.is_empty() {
        let annotations = msg["annotations"].as_array().into_iter().flatten();
        let annotations: Vec<Value> = annotations.filter_map(annotation).collect();
        content.push(json!({"type": "output_text", "text": text, "annotations": annotations}));
    }
    if let Some(r) = msg["refusal"].as_str().filter(|r| !r.is_empty()) {
        content.push(json!({"type": "refusal", "refusal": r}));
    }
    if !content.is_empty() {
        output.push(json!({"type": "message", "id": item_id("msg", &id, &output), "status": "completed", "role": "assistant",
            "content": content}));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        // Never `""`: every answer comes here through `hub::fit_answer`, whose calls
        // each have a string id (a collected one's too); the fallback only types it.
        let call_id = call["id"].as_str().unwrap_or("");
        let (name, arguments) = (&call["function"]["name"], &call["function"]["arguments"]);
        let arguments_text = arguments.as_str().unwrap_or("");
        output.push(if client_tools.is_custom(name) {
            json!({"type": "custom_tool_call", "id": minted("ctc", call_id), "call_id": call_id,
                "name": name, "input": custom_input(arguments_text), "status": "completed"})
        } else if client_tools.is_local_shell(name) {
            local_shell_call(call_id, arguments_text)
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

/// The id of the item about to join `output`, as a stream names it (`stream/text.rs`):
/// with its output index, so a whole answer and the same answer streamed name it alike.
fn item_id(kind: &str, response: &str, output: &[Value]) -> String {
    minted(kind, &format!("{response}_{}", output.len()))
}

/// A hub annotation (OpenAI Chat's `url_citation`) as a Responses `output_text`
/// annotation; `None` for another kind.
pub(super) fn annotation(a: &Value) -> Option<Value> {
    if a["type"] != "url_citation" {
        return None;
    }
    let c = &a["url_citation"];
    Some(
        json!({"type": "url_citation", "start_index": c["start_index"], "end_index": c["end_index"],
        "url": c["url"], "title": c["title"]}),
    )
}

/// A finished `local_shell_call` item from a chat call of the local shell.
pub(super) fn local_shell_call(call_id: &str, arguments: &str) -> Value {
    json!({"type": "local_shell_call", "id": minted("lsc", call_id), "call_id": call_id,
        "action": tools::local_shell_action(arguments), "status": "completed"})
}
