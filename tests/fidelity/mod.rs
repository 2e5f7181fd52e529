//! What must survive a translation (parallel calls, calls without input, thinking,
//! structured output, cache breakpoints), and what a source would refuse (thinking
//! where Anthropic forbids it, a limit under the name OpenAI's reasoning models refuse).

mod calls;
mod ids;
mod reasoning;
mod refusals;
mod shape;
mod thinking;

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::wire::{
    Wire, anthropic_content, assert_blocks_whole, named, responses_output, sources,
};
use crate::support::{MockUpstream, Proxy, Reply};

/// A proxy whose model `m` is served by a mock speaking `up` that answers `reply`.
fn setup(up: Wire, reply: Reply) -> (MockUpstream, Proxy) {
    setup_model(up, reply, "m")
}

/// As [`setup`], for a model of another name.
fn setup_model(up: Wire, reply: Reply, model: &str) -> (MockUpstream, Proxy) {
    let mock = MockUpstream::always(reply);
    let p = up.serving(&mock, model);
    (mock, p)
}

/// A chat stream of these deltas, then `finish`, then `[DONE]`.
fn chat_sse(deltas: &[Value], finish: &str) -> Reply {
    let chunk = |delta: &Value, finish| crate::support::wire::chat_chunk(delta.clone(), finish);
    let mut events: Vec<String> = deltas.iter().map(|d| chunk(d, Value::Null)).collect();
    events.push(chunk(&json!({}), json!(finish)));
    events.push("data: [DONE]\n\n".into());
    Reply::Sse(events, Duration::ZERO)
}

/// Named SSE events, as Anthropic sends them.
fn anthropic_sse(events: &[Value]) -> Reply {
    let events = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    Reply::Sse(events, Duration::ZERO)
}

/// The kind of each item of a Responses request's `input` (a message's role when it
/// names no type).
fn input_kinds(req: &Value) -> Vec<&str> {
    req["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["type"].as_str().or(i["role"].as_str()))
        .collect()
}

/// What a Gemini client got for `m`: each streamed event, or the one answer.
fn gemini_answers(p: &Proxy, stream: bool, req: Value) -> Vec<Value> {
    if stream {
        let s = p.stream(&Wire::Gemini.url("m", true), req);
        assert_eq!(s.status, 200, "{}", s.text());
        s.data()
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    } else {
        let resp = p.post(&Wire::Gemini.url("m", false), req);
        assert_eq!(resp.status, 200, "{}", resp.body);
        vec![resp.json()]
    }
}

/// What an Anthropic client got, as the answer's content blocks: folded from the
/// events when streamed.
fn anthropic_answer(p: &Proxy, stream: bool, req: Value) -> Vec<Value> {
    if stream {
        return anthropic_content(&p.stream(&Wire::Anthropic.url("", true), req));
    }
    let resp = p.post(&Wire::Anthropic.url("", false), req);
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["content"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What a Responses client got, as output items: whole at `response.output_item.done`
/// when streamed.
fn responses_items(p: &Proxy, stream: bool, req: Value) -> Vec<Value> {
    if stream {
        let s = p.stream(&Wire::Responses.url("", true), req);
        assert_eq!(s.status, 200, "{}", s.text());
        s.data()
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v["type"] == "response.output_item.done")
            .map(|v| v["item"].clone())
            .collect()
    } else {
        let resp = p.post(&Wire::Responses.url("", false), req);
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.json()["output"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// The body of a recorded request as JSON, `null` when it has none (a GET).
fn body_of(req: &crate::support::upstream::Recorded) -> Value {
    serde_json::from_slice(&req.body).unwrap_or_default()
}

/// A Responses user message item.
fn user_item(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// Posts a Responses request with `input` and checks that the Responses source `mock`
/// got it byte for byte, model and all: nothing was mended.
fn copied_byte_for_byte(p: &Proxy, mock: &MockUpstream, input: Value) {
    let sent = json!({"model": "m", "input": input});
    let before = mock.count();
    let resp = p.post(&Wire::Responses.url("m", false), sent.clone());
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        mock.requests()[before].body,
        serde_json::to_vec(&sent).unwrap()
    );
}

/// Posts a Responses request with `input` (unstreamed, nothing stored) and returns the
/// bodies the Responses source `mock` got while it was answered, refused tries included.
fn bodies_sent(p: &Proxy, mock: &MockUpstream, input: &[Value]) -> Vec<Value> {
    let before = mock.count();
    let resp = p.post(
        &Wire::Responses.url("m", false),
        json!({"model": "m", "store": false, "input": input}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    mock.requests()[before..].iter().map(body_of).collect()
}

/// The bodies of the requests a mock was sent (not its model listings, which the
/// built-in providers are asked for).
fn posted(mock: &MockUpstream) -> Vec<Value> {
    mock.posts().iter().map(body_of).collect()
}
