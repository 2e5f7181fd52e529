//! One known answer, streamed in any protocol, broken in the ways failover must survive,
//! and continued from a prefill the way a model does.
//!
//! A mock built on [`reply`] reads the request: when its last message is an assistant
//! prefill, it streams only the rest of [`CANONICAL`] after it (a prefill that is not a
//! prefix of the answer gets a 400, so a bad splice fails loudly). Every upstream gets a
//! `tag` that shows in its ids and model name, so a test can see whose ids reached the
//! client.

use std::time::Duration;

use serde_json::{Value, json};

use super::Reply;
use super::upstream::Recorded;
use super::wire::{Wire, data, named};

/// The answer every healthy upstream gives: sixty words, as in the failoverbench catalogue.
pub const CANONICAL: &str = "A gateway earns trust only when the provider behind it misbehaves, because on good days any pipe looks reliable. Real value appears during rate limits, resets, stalls and malformed streams: the gateway must retry sensibly, fail over quickly, continue broken answers without duplication, report honest usage, and never present a truncated reply as complete. Calm handling of failure is the product.";

/// `text` as tokens: the first word, then each following word with its leading space.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        out.push(if i == 0 {
            word.to_string()
        } else {
            format!(" {word}")
        });
    }
    out.retain(|t| !t.is_empty());
    out
}

/// How one streamed reply goes wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// A healthy stream.
    None,
    /// The connection closes after this many tokens, without a finish marker.
    Cut(usize),
    /// Silence after this many tokens, for this long.
    Stall(usize, Duration),
    /// An in-stream "overloaded" error event after this many tokens.
    ErrorEvent(usize),
    /// One unreadable event after this many tokens; the stream otherwise completes.
    BadEvent(usize),
    /// Complete up to the finish marker (and usage), then a clean close with no
    /// `[DONE]` (chat) or `message_stop` (Anthropic).
    NoEndMarker,
    /// Complete up to the finish marker (and usage), sent chunked as hosted APIs send
    /// it, then the connection is cut before the body's last chunk.
    BreakAfterFinish,
    /// Complete up to the finish marker (and usage), then silence this long.
    StallAfterFinish(Duration),
    /// The first token comes this long after the head.
    SlowFirst(Duration),
    /// A tool call whose arguments are cut half-way (chat and Anthropic; Gemini sends a
    /// call whole, so its stream is cut right after the call).
    ToolCut,
}

/// The text of a request's final assistant message (its prefill), if it ends with one;
/// for a Gemini request, its final `model` turn.
pub fn prefill(body: &Value) -> Option<String> {
    if let Some(contents) = body["contents"].as_array() {
        let last = contents.last()?;
        if last["role"] != "model" {
            return None;
        }
        let parts = last["parts"].as_array()?;
        return Some(parts.iter().filter_map(|p| p["text"].as_str()).collect());
    }
    let last = body["messages"].as_array()?.last()?;
    if last["role"] != "assistant" {
        return None;
    }
    match &last["content"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => Some(
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<String>(),
        ),
        _ => None,
    }
}

/// The reply of an upstream speaking `wire` to `req`: the rest of [`CANONICAL`] after
/// the request's prefill, with `fault`.
pub fn reply(wire: Wire, req: &Recorded, tag: &str, fault: Fault) -> Reply {
    let body = req.json();
    let pre = prefill(&body).unwrap_or_default();
    let Some(rest) = CANONICAL.strip_prefix(pre.as_str()) else {
        return Reply::json(
            400,
            json!({"error": {"message": format!("prefill is not a prefix of the answer: {pre:?}"), "type": "invalid_request_error"}}),
        );
    };
    let toks = tokens(rest);
    let prompt = 10 + pre.len().div_ceil(4);
    let evs = events(wire, tag, &toks, prompt, fault);
    let gap = Duration::from_millis(1);
    match fault {
        Fault::Cut(_) | Fault::ToolCut => Reply::SseThenBreak(evs, gap),
        Fault::Stall(_, d) => Reply::SseThenStall(evs, gap, d),
        Fault::SlowFirst(d) => Reply::SseSlowFirst(d, evs, gap),
        Fault::BreakAfterFinish => Reply::SseChunkedThenBreak(evs),
        Fault::StallAfterFinish(d) => Reply::SseThenStall(evs, gap, d),
        _ => Reply::Sse(evs, gap),
    }
}

/// A mock `reply` for a Chat request that refuses any prefill with a 400, like a model
/// that does not support one.
pub fn refuses_prefill(req: &Recorded, tag: &str) -> Reply {
    if prefill(&req.json()).is_some() {
        return Reply::json(
            400,
            json!({"error": {"message": "This model does not support assistant message prefill. The conversation must end with a user message.", "type": "invalid_request_error"}}),
        );
    }
    reply(Wire::Chat, req, tag, Fault::None)
}

/// The SSE events of a reply carrying `toks`, in `wire`, with `fault` applied.
pub fn events(wire: Wire, tag: &str, toks: &[String], prompt: usize, fault: Fault) -> Vec<String> {
    let upto = match fault {
        Fault::Cut(n) | Fault::Stall(n, _) | Fault::ErrorEvent(n) => n.min(toks.len()),
        _ => toks.len(),
    };
    let n_out = toks.len();
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": n_out, "total_tokens": prompt + n_out});
    let end_marker = !matches!(
        fault,
        Fault::NoEndMarker | Fault::BreakAfterFinish | Fault::StallAfterFinish(_)
    );
    let mut evs = Vec::new();
    match wire {
        Wire::Chat => {
            let chunk = |delta: Value, finish: Value| {
                data(
                    json!({"id": format!("chatcmpl-{tag}"), "object": "chat.completion.chunk", "created": 7, "model": format!("{tag}-model"),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
                )
            };
            evs.push(chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            ));
            if fault == Fault::ToolCut {
                evs.push(chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"ci"}}]}),
                    Value::Null,
                ));
                return evs;
            }
            for t in &toks[..upto] {
                evs.push(chunk(json!({"content": t}), Value::Null));
            }
            match fault {
                Fault::Cut(_) | Fault::Stall(..) => return evs,
                Fault::ErrorEvent(_) => {
                    evs.push(data(
                        json!({"error": {"message": "overloaded", "type": "server_error", "code": 503}}),
                    ));
                    return evs;
                }
                _ => {}
            }
            evs.push(chunk(json!({}), json!("stop")));
            evs.push(data(
                json!({"id": format!("chatcmpl-{tag}"), "object": "chat.completion.chunk", "created": 7, "model": format!("{tag}-model"), "choices": [], "usage": usage}),
            ));
            if end_marker {
                evs.push("data: [DONE]\n\n".into());
            }
        }
        Wire::Anthropic => {
            evs.push(named(
                "message_start",
                json!({"type": "message_start", "message": {"id": format!("msg_{tag}"), "type": "message", "role": "assistant", "model": format!("{tag}-model"),
                    "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": prompt, "output_tokens": 1}}}),
            ));
            if fault == Fault::ToolCut {
                evs.push(named("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}})));
                evs.push(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"ci"}})));
                return evs;
            }
            evs.push(named(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            evs.push(named("ping", json!({"type": "ping"})));
            for t in &toks[..upto] {
                evs.push(named(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
                ));
            }
            match fault {
                Fault::Cut(_) | Fault::Stall(..) => return evs,
                Fault::ErrorEvent(_) => {
                    evs.push(named(
                        "error",
                        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                    ));
                    return evs;
                }
                _ => {}
            }
            evs.push(named(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            evs.push(named(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": n_out}}),
            ));
            if end_marker {
                evs.push(named("message_stop", json!({"type": "message_stop"})));
            }
        }
        Wire::Responses => {
            let id = format!("resp_{tag}");
            let item = format!("msg_{tag}");
            let mut ev = crate::support::wire::sequenced();
            let resp = |status: &str, output: Value| json!({"id": id, "object": "response", "created_at": 7, "status": status, "model": format!("{tag}-model"), "output": output});
            evs.push(ev(
                "response.created",
                json!({"response": resp("in_progress", json!([]))}),
            ));
            evs.push(ev(
                "response.in_progress",
                json!({"response": resp("in_progress", json!([]))}),
            ));
            evs.push(ev(
                "response.output_item.added",
                json!({"output_index": 0, "item": {"type": "message", "id": item, "status": "in_progress", "role": "assistant", "content": []}}),
            ));
            evs.push(ev(
                "response.content_part.added",
                json!({"item_id": item, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
            ));
            for t in &toks[..upto] {
                evs.push(ev(
                    "response.output_text.delta",
                    json!({"item_id": item, "output_index": 0, "content_index": 0, "delta": t}),
                ));
            }
            match fault {
                Fault::Cut(_) | Fault::Stall(..) => return evs,
                Fault::ErrorEvent(_) => {
                    evs.push(ev(
                        "error",
                        json!({"code": "server_error", "message": "overloaded"}),
                    ));
                    return evs;
                }
                _ => {}
            }
            let text: String = toks.concat();
            let part = json!({"type": "output_text", "text": text, "annotations": []});
            evs.push(ev(
                "response.output_text.done",
                json!({"item_id": item, "output_index": 0, "content_index": 0, "text": text}),
            ));
            evs.push(ev(
                "response.content_part.done",
                json!({"item_id": item, "output_index": 0, "content_index": 0, "part": part}),
            ));
            let done = json!({"type": "message", "id": item, "status": "completed", "role": "assistant", "content": [part]});
            evs.push(ev(
                "response.output_item.done",
                json!({"output_index": 0, "item": done}),
            ));
            let mut r = resp("completed", json!([done]));
            r["usage"] = json!({"input_tokens": prompt, "output_tokens": n_out, "total_tokens": prompt + n_out});
            evs.push(ev("response.completed", json!({"response": r})));
        }
        Wire::Gemini => {
            // Google ends events with CRLF CRLF and has no end marker: the event with a
            // `finishReason` is the last.
            let ev = |part: Value| {
                format!(
                    "data: {}\r\n\r\n",
                    json!({"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}],
                        "modelVersion": format!("{tag}-model"), "responseId": format!("resp-{tag}")})
                )
            };
            if fault == Fault::ToolCut {
                evs.push(ev(
                    json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}),
                ));
                return evs;
            }
            for t in &toks[..upto] {
                evs.push(ev(json!({"text": t})));
            }
            match fault {
                Fault::Cut(_) | Fault::Stall(..) => return evs,
                Fault::ErrorEvent(_) => {
                    evs.push(format!(
                        "data: {}\r\n\r\n",
                        json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
                    ));
                    return evs;
                }
                _ => {}
            }
            let last = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "index": 0, "finishReason": "STOP"}],
                "modelVersion": format!("{tag}-model"), "responseId": format!("resp-{tag}"),
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": n_out, "totalTokenCount": prompt + n_out}});
            evs.push(format!("data: {last}\r\n\r\n"));
        }
    }
    if let Fault::BadEvent(n) = fault {
        // After the start events and `n` tokens.
        let start = match wire {
            Wire::Chat => 1,
            Wire::Anthropic => 3,
            Wire::Responses => 4,
            Wire::Gemini => 0,
        };
        evs.insert(
            (start + n).min(evs.len()),
            "data: {\"choices\": [{broken\n\n".into(),
        );
    }
    evs
}
