//! Anthropic Messages ⇄ the chat hub: requests, answers, stream events and errors.
//!
//! Four directions: a chat request becomes a Messages request for an Anthropic
//! upstream and its answer (whole or streamed) becomes chat again; a Messages request
//! from a client (Claude Code, the Anthropic SDKs) becomes a chat request and chat
//! answers become Messages answers and events. Fields with no counterpart are dropped
//! only when that cannot change the meaning of the request; otherwise the request is
//! refused with the field's name. The first two directions are `source.rs`, the other
//! two `client.rs`; what both use is here.

use memchr::memmem::Finder;
use serde_json::{Value, json};

use crate::body::RawBody;
use crate::protocol;

mod client;
mod schema;
mod source;
#[cfg(test)]
mod tests;

pub use client::{Encoder, request_to_chat, response_from_chat};
pub use source::{Decoder, delta, request_from_chat, response_to_chat};

/// `max_tokens` when a chat request gives none: Anthropic requires one.
const DEFAULT_MAX_TOKENS: u64 = 8192;

/// The `format` of a hub reasoning detail that is Claude's signed thinking, as
/// OpenRouter names it: only such a detail goes back to Anthropic.
pub(crate) const SIGNED_BY_CLAUDE: &str = "anthropic-claude-v1";

/// The signature of a thinking block Routeplane wrote for an Anthropic client from
/// another source's reasoning, or empty to stand first in a turn Claude did not answer.
/// Claude Code gives it back; Claude would refuse it, so it is taken out first.
const UNSIGNED: &str = "routeplane:v1:not-signed";

/// A `thinking` or `redacted_thinking` block as a hub reasoning detail; `None` for any
/// other block, and for thinking Claude did not sign, which Anthropic would refuse back.
fn detail_of(block: &Value) -> Option<Value> {
    match block["type"].as_str()? {
        "thinking" => {
            let signature = block["signature"]
                .as_str()
                .filter(|s| !s.is_empty() && *s != UNSIGNED)?;
            Some(
                json!({"type": "reasoning.text", "text": block["thinking"].as_str().unwrap_or(""), "signature": signature, "format": SIGNED_BY_CLAUDE}),
            )
        }
        "redacted_thinking" => Some(
            json!({"type": "reasoning.encrypted", "data": block["data"].as_str()?, "format": SIGNED_BY_CLAUDE}),
        ),
        _ => None,
    }
}

/// A hub reasoning detail as the block Claude signed; `None` for another model's.
fn block_of(detail: &Value) -> Option<Value> {
    if detail["format"] != SIGNED_BY_CLAUDE {
        return None;
    }
    match detail["type"].as_str()? {
        "reasoning.text" => {
            let signature = detail["signature"].as_str().filter(|s| !s.is_empty())?;
            Some(
                json!({"type": "thinking", "thinking": detail["text"].as_str().unwrap_or(""), "signature": signature}),
            )
        }
        "reasoning.encrypted" => {
            Some(json!({"type": "redacted_thinking", "data": detail["data"].as_str()?}))
        }
        _ => None,
    }
}

/// The longest tool call id Anthropic takes.
const MAX_ID: usize = 64;

/// Whether Anthropic takes `id` as a tool call id: `^[a-zA-Z0-9_-]+$`, at most
/// [`MAX_ID`] characters.
fn anthropic_takes(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(taken_in_id)
}

/// Whether Anthropic takes the byte `b` in a tool call id.
fn taken_in_id(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `id` as an id Anthropic takes, at most `max` characters: its start with each byte
/// Anthropic refuses made `_`, then `_` and a hash of the whole id. The hash keeps apart
/// ids that would otherwise map alike (`functions.a:0` and `functions_a_0`, two long
/// ids with the same start), and maps an id alike on every turn, so that a call and its
/// result still pair and a source's prompt cache still matches the history.
fn hashed_id(id: &str, max: usize) -> String {
    let hash = format!("{:016x}", protocol::fnv1a(id.as_bytes()));
    let start: String = id
        .bytes()
        .take(max.saturating_sub(hash.len() + 1))
        .map(|b| if taken_in_id(b) { char::from(b) } else { '_' })
        .collect();
    format!("{start}_{hash}")
}

/// How a tool call id that Anthropic would refuse begins when an Anthropic client gets
/// it (see [`client_id`]).
const ESCAPED_ID: &str = "rpid_";

/// How an id begins that [`client_id`] had to shorten with a hash: unlike
/// [`ESCAPED_ID`], it tells [`source_id`] there is nothing to decode.
const HASHED_ID: &str = "rpih_";

/// A source's tool call id as an Anthropic client gets it: as it is when Anthropic
/// takes it (`^[a-zA-Z0-9_-]+$`, at most 64 characters), else escaped into what
/// Anthropic takes. The client gives its history back as it got it, and when failover
/// sends that history to Claude as it came, Claude would refuse Kimi's
/// `functions.get_weather:0`; [`source_id`] gives the source that made it its own id
/// back.
///
/// An escape longer than Anthropic takes (a long id, or one with many bytes to escape:
/// `functions.mcp__github__create_pull_request:12`) is [`hashed_id`] after
/// [`HASHED_ID`] instead, and cannot be decoded: Routeplane keeps nothing between
/// turns to look the id up in. That id goes back to the source as the client has it,
/// in the call and in its result alike, so they still pair: a source pairs a result
/// with its call by their ids, not by ids it made (and a Chat source's ids are
/// shortened alike on their way, see `chat::fit_tool_ids`), and the id is the same on
/// every turn, so the source's prompt cache still matches the history from the next
/// turn on.
fn client_id(id: &Value) -> Value {
    let Some(s) = id.as_str() else {
        return id.clone();
    };
    if anthropic_takes(s) && !s.starts_with(ESCAPED_ID) {
        return id.clone();
    }
    let mut out = String::from(ESCAPED_ID);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    if out.len() > MAX_ID {
        out = format!("{HASHED_ID}{}", hashed_id(s, MAX_ID - HASHED_ID.len()));
    }
    json!(out)
}

/// The id an Anthropic client's escaped tool call id stands for ([`client_id`]).
fn source_id(id: &Value) -> Value {
    let Some(escaped) = id.as_str().and_then(|s| s.strip_prefix(ESCAPED_ID)) else {
        return id.clone();
    };
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        rest = after;
        if b != b'_' {
            bytes.push(b);
            continue;
        }
        let hex = rest.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
            return id.clone();
        };
        bytes.push(byte);
        rest = &rest[2..];
    }
    String::from_utf8(bytes).map_or_else(|_| id.clone(), Value::String)
}

/// Whether a Messages request asks for thinking (`enabled`, or Claude 4.6's `adaptive`).
pub fn asks_thinking(body: &RawBody) -> bool {
    body.get("thinking")
        .and_then(|raw| serde_json::from_slice::<Value>(raw).ok())
        .is_some_and(|t| thinking_on(&t))
}

/// Whether a `thinking` setting turns thinking on.
fn thinking_on(thinking: &Value) -> bool {
    matches!(thinking["type"].as_str(), Some("enabled" | "adaptive"))
}

/// Whether a Messages request's `messages` hold a thinking block Routeplane wrote.
pub fn holds_unsigned(messages: &[u8]) -> bool {
    static MARK: crate::protocol::Marker = crate::protocol::Marker::new(|| Finder::new(UNSIGNED));
    crate::protocol::holds(messages, &MARK)
}

/// Takes out of a Messages request the thinking blocks Routeplane wrote, and turns
/// thinking off when the tool loop's last turn is then left without Claude's thinking
/// first, which Anthropic refuses (the answer comes without thinking, not at all).
pub fn drop_unsigned(req: &mut Value) {
    let Some(messages) = req["messages"].as_array_mut() else {
        return;
    };
    for m in messages.iter_mut().filter(|m| m["role"] == "assistant") {
        if let Some(blocks) = m["content"].as_array_mut() {
            blocks.retain(|b| !(b["type"] == "thinking" && b["signature"] == UNSIGNED));
        }
    }
    // A turn that was only such a block would be empty, which Anthropic refuses.
    messages.retain(|m| m["content"].as_array().is_none_or(|b| !b.is_empty()));
    let bare_loop = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "assistant")
        .and_then(|m| m["content"].as_array())
        .is_some_and(|blocks| {
            let first = blocks.first().and_then(|b| b["type"].as_str());
            blocks.iter().any(|b| b["type"] == "tool_use")
                && !matches!(first, Some("thinking" | "redacted_thinking"))
        });
    if bare_loop
        && thinking_on(&req["thinking"])
        && let Some(o) = req.as_object_mut()
    {
        o.shift_remove("thinking");
    }
}

/// The Anthropic error body for a status.
pub fn error_json(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// Anthropic's `error.type` for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Anthropic `stop_reason` → chat `finish_reason`. `pause_turn` (Anthropic paused a
/// long turn of its server tools, a web search, to be resumed by sending the turn back)
/// is an unfinished answer, as `length` says: the server tools' blocks that a resumption
/// needs reach no other protocol, and a `stop` would pass a half answer off as whole.
fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" | "pause_turn" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage → chat usage (prompt tokens include cache reads and writes); null
/// when the upstream reported none, never zeros.
fn usage_to_chat(u: &Value) -> Value {
    if !u.is_object() {
        return Value::Null;
    }
    let input = u["input_tokens"].as_u64().unwrap_or(0);
    let cache_read = u["cache_read_input_tokens"].as_u64();
    let cache_write = u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    let output = u["output_tokens"].as_u64().unwrap_or(0);
    let prompt = input + cache_read.unwrap_or(0) + cache_write;
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
    });
    // Only a count the upstream gave: an absent one is not a zero.
    if let Some(read) = cache_read {
        usage["prompt_tokens_details"] = json!({"cached_tokens": read});
    }
    usage
}
