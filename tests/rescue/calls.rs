//! A stream that breaks right after whole tool calls (a Gemini `functionCall`, an
//! Anthropic `tool_use` block that reached its stop, a Responses `function_call` item
//! that is done) ends as a tool call in every client protocol, said in the log and the
//! ledger; one that breaks in the text after them says the text was cut, not a call.

use std::time::Duration;

use serde_json::{Value, json};

use super::{config, events, healthy};
use crate::support::answer::{self, Fault};
use crate::support::proxy::Streamed;
use crate::support::wire::{Wire, named, sequenced};
use crate::support::{Dir, MockUpstream, Proxy, Reply, wait_until};

/// How a source's stream stops short of its finish marker.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// The connection closes.
    Close,
    /// The source goes silent, past `idle_secs`.
    Silence,
    /// The source sends an error event (an overload), then closes.
    ErrorEvent,
}

/// The stream of a source speaking `wire`: "Checking." (not for Gemini), a whole call
/// of `get_weather` for Paris and, `text_after`, the start of a text after it.
fn call_stream(wire: Wire, text_after: bool) -> Vec<String> {
    match wire {
        Wire::Anthropic => {
            let block = |i: u64, kind: &str, v: Value| {
                let mut v = v;
                v["type"] = json!(kind);
                v["index"] = json!(i);
                named(kind, v)
            };
            let mut evs = vec![
                named(
                    "message_start",
                    json!({"type": "message_start", "message": {"id": "msg_a", "type": "message", "role": "assistant", "model": "a-model",
                    "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 1}}}),
                ),
                block(
                    0,
                    "content_block_start",
                    json!({"content_block": {"type": "text", "text": ""}}),
                ),
                block(
                    0,
                    "content_block_delta",
                    json!({"delta": {"type": "text_delta", "text": "Checking."}}),
                ),
                block(0, "content_block_stop", json!({})),
                block(
                    1,
                    "content_block_start",
                    json!({"content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
                ),
                block(
                    1,
                    "content_block_delta",
                    json!({"delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Paris\"}"}}),
                ),
                block(1, "content_block_stop", json!({})),
            ];
            if text_after {
                evs.push(block(
                    2,
                    "content_block_start",
                    json!({"content_block": {"type": "text", "text": ""}}),
                ));
                evs.push(block(
                    2,
                    "content_block_delta",
                    json!({"delta": {"type": "text_delta", "text": "Done"}}),
                ));
            }
            evs
        }
        Wire::Responses => {
            let mut ev = sequenced();
            let call = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "", "status": "in_progress"});
            let args = "{\"city\": \"Paris\"}";
            let mut done = call.clone();
            done["arguments"] = json!(args);
            done["status"] = json!("completed");
            let mut evs = super::responses_checked(&mut ev);
            evs.extend([
                ev(
                    "response.output_item.added",
                    json!({"output_index": 1, "item": call}),
                ),
                ev(
                    "response.function_call_arguments.delta",
                    json!({"item_id": "fc_1", "output_index": 1, "delta": args}),
                ),
                ev(
                    "response.function_call_arguments.done",
                    json!({"item_id": "fc_1", "output_index": 1, "arguments": args}),
                ),
                ev(
                    "response.output_item.done",
                    json!({"output_index": 1, "item": done}),
                ),
            ]);
            if text_after {
                evs.push(ev(
                    "response.output_item.added",
                    json!({"output_index": 2, "item": {"type": "message", "id": "msg_2", "status": "in_progress", "role": "assistant", "content": []}}),
                ));
                evs.push(ev(
                    "response.output_text.delta",
                    json!({"item_id": "msg_2", "output_index": 2, "content_index": 0, "delta": "Done"}),
                ));
            }
            evs
        }
        Wire::Gemini => {
            let mut evs = answer::events(Wire::Gemini, "a", &[], 10, Fault::ToolCut);
            if text_after {
                evs.push(format!(
                    "data: {}\r\n\r\n",
                    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Done"}]}, "index": 0}],
                        "modelVersion": "a-model", "responseId": "resp-a"})
                ));
            }
            evs
        }
        Wire::Chat => unreachable!("a chat source's calls have no end of their own"),
    }
}

/// `evs` from a source speaking `wire`, stopped short as `stop` says.
fn stopped(wire: Wire, mut evs: Vec<String>, stop: Stop) -> Reply {
    match stop {
        Stop::Close => Reply::SseThenBreak(evs, Duration::ZERO),
        // Past `idle_secs` (1 s in `config`).
        Stop::Silence => Reply::SseThenStall(evs, Duration::ZERO, Duration::from_secs(3)),
        Stop::ErrorEvent => {
            evs.push(match wire {
                Wire::Anthropic => named(
                    "error",
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ),
                Wire::Responses => sequenced()(
                    "error",
                    json!({"code": "server_error", "message": "The server had an error"}),
                ),
                _ => format!(
                    "data: {}\r\n\r\n",
                    json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
                ),
            });
            Reply::SseThenBreak(evs, Duration::ZERO)
        }
    }
}

/// A client of `client` asks `smart` (`a` speaking `up`, which sends `reply`, then `b`)
/// for a stream with tools; the ledger is `ledger`.
fn ask_tools(
    client: Wire,
    up: Wire,
    reply: Reply,
    ledger: &Dir,
) -> (Streamed, Proxy, [MockUpstream; 2]) {
    let a = MockUpstream::always(reply);
    let b = healthy("b");
    let usage = format!(
        "usage:\n  path: {}\n",
        ledger.path().join("usage.jsonl").display()
    );
    let p = Proxy::start(&config(&a, up, &b, &usage));
    let s = p.stream(
        &client.url("smart", true),
        client.request("smart", true, true),
    );
    (s, p, [a, b])
}

/// Asserts a client of `client` got the call to `get_weather` for Paris and its
/// protocol's normal ending for a tool call, no error.
#[track_caller]
fn assert_ended_as_a_call(client: Wire, s: &Streamed, what: &str) {
    let got = client.read_stream(s);
    assert!(got.ended && s.complete, "{what}");
    assert_eq!(got.tools.len(), 1, "{what}");
    assert_eq!(got.tools[0].0, "get_weather", "{what}");
    assert_eq!(got.tools[0].1, json!({"city": "Paris"}), "{what}");
    let evs = events(s);
    let failed =
        |(k, v): &(String, Value)| k == "error" || k == "response.failed" || v["error"].is_object();
    assert!(!evs.iter().any(failed), "{what}");
    let ended_as_a_call = match client {
        Wire::Chat => evs
            .iter()
            .any(|(_, v)| v["choices"][0]["finish_reason"] == "tool_calls"),
        Wire::Anthropic => evs
            .iter()
            .any(|(k, v)| k == "message_delta" && v["delta"]["stop_reason"] == "tool_use"),
        Wire::Responses => evs.iter().any(|(k, v)| {
            let output = v["response"]["output"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            k == "response.completed"
                && output.iter().any(|i| {
                    i["type"] == "function_call"
                        && i["status"] == "completed"
                        && i["name"] == "get_weather"
                })
        }),
        Wire::Gemini => evs.last().unwrap().1["candidates"][0]["finishReason"] == "STOP",
    };
    assert!(ended_as_a_call, "{what}");
}

/// The `stream_end` of the ledger's only line, once it is written.
fn ledger_end(ledger: &Dir) -> Value {
    let path = ledger.path().join("usage.jsonl");
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read().lines().count() == 1),
        "{}",
        read()
    );
    let line: Value = serde_json::from_str(read().trim()).unwrap();
    line["stream_end"].clone()
}

#[test]
fn a_stream_that_breaks_right_after_a_whole_call_ends_as_a_tool_call() {
    // Whole: Anthropic's `tool_use` block reached its `content_block_stop`, the
    // Responses `function_call` item its `output_item.done`, and Gemini sends a call in
    // one event. A break before the finish marker (a close, a silence, an error event)
    // cut only the ending: the agent gets the call, runs it and asks again.
    let stops = [Stop::Close, Stop::Silence, Stop::ErrorEvent];
    for up in [Wire::Anthropic, Wire::Responses, Wire::Gemini] {
        for stop in stops {
            for client in Wire::ALL {
                let ledger = Dir::new();
                let reply = stopped(up, call_stream(up, false), stop);
                let (s, p, [a, b]) = ask_tools(client, up, reply, &ledger);
                let what = format!("{client:?} <- {up:?}, {stop:?}: {}", s.text());
                assert_eq!(s.status, 200, "{what}");
                assert_ended_as_a_call(client, &s, &what);
                assert_eq!((a.count(), b.count()), (1, 0), "{what}");
                // Not invisible: the log and the ledger say the stream broke after a call.
                p.wait_log("stream=broke_after_call");
                p.wait_log("right after a whole tool call: ended the answer as a tool call");
                assert_eq!(ledger_end(&ledger), "broke_after_call", "{what}");
            }
        }
    }
}

#[test]
fn a_break_in_the_text_after_a_whole_call_says_the_text_was_cut() {
    // The call is whole; the text after it is what the break cut, and a stream with a
    // call cannot be continued: an error that says so, not "a tool call was cut".
    for up in [Wire::Anthropic, Wire::Responses, Wire::Gemini] {
        for client in Wire::ALL {
            let ledger = Dir::new();
            let reply = stopped(up, call_stream(up, true), Stop::Close);
            let (s, p, [a, b]) = ask_tools(client, up, reply, &ledger);
            let what = format!("{client:?} <- {up:?}: {}", s.text());
            let evs = events(&s);
            let (kind, last) = evs.last().expect("events").clone();
            let failed = match client {
                Wire::Anthropic => kind == "error",
                Wire::Responses => kind == "response.failed",
                Wire::Chat | Wire::Gemini => last.get("error").is_some(),
            };
            assert!(failed, "ends with an error event: {what}");
            assert!(
                s.text().contains(
                    "; the text after its tool call was cut, and a stream with a tool call cannot be continued"
                ),
                "{what}"
            );
            assert!(!s.text().contains("a tool call was cut"), "{what}");
            assert_eq!((a.count(), b.count()), (1, 0), "{what}");
            p.wait_log("stream=broken");
            assert_eq!(ledger_end(&ledger), "broken", "{what}");
        }
    }
}
