//! Mid-stream rescue: a stream that breaks after sending text is continued by a prefill
//! and spliced into the open stream, in every client protocol; what cannot be continued
//! ends with an error event; retries keep to their budget.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::answer::{self, CANONICAL, Fault};
use crate::support::proxy::Streamed;
use crate::support::wire::Wire;
use crate::support::{MockUpstream, Proxy, Reply, assert_text};

/// Providers `a` (speaking `a_wire`) and `b` (chat), both `prefill: true`, and `smart` =
/// a:m then b:m.
fn config(a: &MockUpstream, a_wire: Wire, b: &MockUpstream, extra: &str) -> String {
    format!(
        "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    prefill: true\n    models: [m]\n  b:\n    api_base: {}\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\ntimeouts:\n  first_byte_secs: 2\n  first_token_secs: 1\n  idle_secs: 1\nfailover:\n  backoff_ms: 20\n{extra}",
        a.url(),
        a_wire.config_name(),
        b.url()
    )
}

/// An upstream speaking `wire` whose first answer has `fault`; later ones are healthy.
fn faulty_once(wire: Wire, tag: &'static str, fault: Fault) -> MockUpstream {
    MockUpstream::numbered(move |n, req| {
        let f = if n == 0 { fault } else { Fault::None };
        answer::reply(wire, req, tag, f)
    })
}

/// A healthy chat upstream.
fn healthy(tag: &'static str) -> MockUpstream {
    MockUpstream::start(move |req| answer::reply(Wire::Chat, req, tag, Fault::None))
}

/// A client of `wire` asks `smart` for a stream.
fn ask(p: &Proxy, wire: Wire) -> Streamed {
    let mut body = wire.request("smart", true, false);
    if wire == Wire::Chat {
        body["stream_options"] = json!({"include_usage": true});
    }
    p.stream(&wire.url("smart", true), body)
}

/// Each event of a stream as `(name or type, data JSON)`.
fn events(s: &Streamed) -> Vec<(String, Value)> {
    // Google's events end with CRLF CRLF, the others' with LF LF.
    s.text()
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data: String = e.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            let v = serde_json::from_str(&data).unwrap_or(Value::String(data));
            let kind = v["type"].as_str().map_or(name, str::to_string);
            (kind, v)
        })
        .collect()
}

/// Asserts a client of `wire` got one coherent stream carrying the whole answer.
#[track_caller]
fn assert_one_whole_stream(wire: Wire, s: &Streamed) {
    let what = format!("{wire:?} client: {}", s.text());
    assert_eq!(s.status, 200, "{what}");
    let got = wire.read_stream(s);
    assert_text(&got.text, CANONICAL);
    assert!(got.ended, "{what}");
    assert!(s.complete, "{what}");
    let evs = events(s);
    let count = |k: &str| evs.iter().filter(|(n, _)| n == k).count();
    match wire {
        Wire::Chat => {
            let roles = evs
                .iter()
                .filter(|(_, v)| !v["choices"][0]["delta"]["role"].is_null());
            assert_eq!(roles.count(), 1, "one role chunk: {what}");
            let ids: Vec<&Value> = evs.iter().filter_map(|(_, v)| v.get("id")).collect();
            assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id: {what}");
            assert!(evs.iter().all(|(_, v)| v.get("error").is_none()), "{what}");
            let done = evs.iter().filter(|(_, v)| *v == json!("[DONE]")).count();
            assert_eq!(done, 1, "{what}");
        }
        Wire::Anthropic => {
            assert_eq!(count("message_start"), 1, "{what}");
            assert_eq!(count("message_stop"), 1, "{what}");
            assert_eq!(count("message_delta"), 1, "{what}");
            assert_eq!(count("error"), 0, "{what}");
            assert_eq!(count("content_block_start"), 1, "one text block: {what}");
            assert!(
                evs.iter()
                    .filter(|(n, _)| n == "content_block_delta")
                    .all(|(_, v)| v["index"] == 0),
                "{what}"
            );
        }
        Wire::Responses => {
            assert_eq!(count("response.created"), 1, "{what}");
            assert_eq!(count("response.completed"), 1, "{what}");
            assert_eq!(count("response.failed") + count("error"), 0, "{what}");
            let seqs: Vec<u64> = evs
                .iter()
                .map(|(_, v)| v["sequence_number"].as_u64().expect("numbered"))
                .collect();
            let want: Vec<u64> = (0..seqs.len() as u64).collect();
            assert_eq!(seqs, want, "sequence numbers continue: {what}");
            let items: Vec<&Value> = evs
                .iter()
                .filter(|(n, _)| n == "response.output_text.delta")
                .map(|(_, v)| &v["item_id"])
                .collect();
            assert!(items.windows(2).all(|w| w[0] == w[1]), "one item: {what}");
            let done = evs
                .iter()
                .find(|(n, _)| n == "response.output_text.done")
                .expect("text done");
            assert_eq!(done.1["text"], CANONICAL, "{what}");
            let completed = &evs
                .iter()
                .find(|(n, _)| n == "response.completed")
                .unwrap()
                .1;
            let output = &completed["response"]["output"];
            assert_eq!(output.as_array().map(Vec::len), Some(1), "{what}");
            assert_eq!(output[0]["content"][0]["text"], CANONICAL, "{what}");
        }
        Wire::Gemini => {
            assert!(evs.iter().all(|(_, v)| v.get("error").is_none()), "{what}");
            let finishes: Vec<usize> = (0..evs.len())
                .filter(|&i| evs[i].1["candidates"][0]["finishReason"].is_string())
                .collect();
            assert_eq!(finishes, [evs.len() - 1], "one finish, last: {what}");
            assert_eq!(
                evs.last().unwrap().1["candidates"][0]["finishReason"],
                "STOP",
                "{what}"
            );
            let ids: Vec<&Value> = evs.iter().map(|(_, v)| &v["responseId"]).collect();
            assert!(ids[0].is_string(), "{what}");
            assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id: {what}");
        }
    }
}

/// A Responses source's opening, numbered by `ev`: `response.created`, then a whole
/// message item saying "Checking." (what a source streams before a tool call).
fn responses_checked(ev: &mut impl FnMut(&str, Value) -> String) -> Vec<String> {
    let text = json!({"type": "output_text", "text": "Checking.", "annotations": []});
    vec![
        ev(
            "response.created",
            json!({"response": {"id": "resp_a", "object": "response", "created_at": 7, "status": "in_progress", "model": "a-model", "output": []}}),
        ),
        ev(
            "response.output_item.added",
            json!({"output_index": 0, "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        ev(
            "response.output_text.delta",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Checking."}),
        ),
        ev(
            "response.output_item.done",
            json!({"output_index": 0, "item": {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [text]}}),
        ),
    ]
}

/// A Responses answer in two messages, as Codex models write a commentary before the
/// final answer: the first five tokens of [`CANONICAL`] as a whole message, five more
/// of a second one, and the connection closes.
fn two_messages_cut() -> Reply {
    let toks = answer::tokens(CANONICAL);
    let mut ev = crate::support::wire::sequenced();
    let resp = json!({"id": "resp_a", "object": "response", "created_at": 7, "status": "in_progress",
        "model": "a-model", "output": []});
    let mut evs = vec![
        ev("response.created", json!({"response": resp})),
        ev("response.in_progress", json!({"response": resp})),
    ];
    for (oi, said) in [(0, &toks[..5]), (1, &toks[5..10])] {
        let id = format!("msg_a{oi}");
        evs.push(ev(
            "response.output_item.added",
            json!({"output_index": oi, "item": {"type": "message",
            "id": id, "status": "in_progress", "role": "assistant", "content": []}}),
        ));
        evs.push(ev(
            "response.content_part.added",
            json!({"item_id": id, "output_index": oi,
            "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        ));
        for t in said {
            evs.push(ev(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": oi,
                "content_index": 0, "delta": t}),
            ));
        }
        if oi == 0 {
            let text = said.concat();
            let part = json!({"type": "output_text", "text": text, "annotations": []});
            evs.push(ev(
                "response.output_text.done",
                json!({"item_id": id, "output_index": 0,
                "content_index": 0, "text": text}),
            ));
            evs.push(ev(
                "response.content_part.done",
                json!({"item_id": id, "output_index": 0,
                "content_index": 0, "part": part}),
            ));
            evs.push(ev(
                "response.output_item.done",
                json!({"output_index": 0, "item": {"type": "message",
                "id": id, "status": "completed", "role": "assistant", "content": [part]}}),
            ));
        }
    }
    Reply::SseThenBreak(evs, Duration::from_millis(1))
}

// Continued streams that reach the client whole, in every protocol.
mod whole;
// Streams that cannot be continued end with the client's error event, and continuations keep to their limits.
mod endings;
// Retries before the first token keep to their budget and deadlines.
mod budget;
// The official SDKs accumulate a rescued stream into one message.
mod sdk;
// Thinking, usage, caps, keep-alives and the log line across a rescue.
mod thinking;
// Streams that break right after whole tool calls, or in the text after them.
mod calls;
