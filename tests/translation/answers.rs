//! An answer beyond plain text through a translation: a turn Anthropic paused, with the
//! citations of its web search, and a refusal beside text.

use std::time::Duration;

use serde_json::{Value, json};

use super::event_data;
use crate::support::upstream::Recorded;
use crate::support::wire::{Wire, named};
use crate::support::{MockUpstream, Proxy, Reply};

/// The page Claude's web search found and cited.
const URL: &str = "https://example.com/paris";

/// The answer's text: a block without citations, then one citing [`URL`].
const TEXT: [&str; 2] = ["Per the forecast, ", "it is sunny in Paris."];

/// The citation as a Chat client gets it (OpenAI's `url_citation`): the second text
/// block, counted in characters of the whole text.
fn chat_annotation() -> Value {
    json!({"type": "url_citation", "url_citation": {"start_index": 18, "end_index": 39, "url": URL, "title": "Paris weather"}})
}

/// The citation as a Responses client gets it on its `output_text`.
fn responses_annotation() -> Value {
    json!({"type": "url_citation", "start_index": 18, "end_index": 39, "url": URL, "title": "Paris weather"})
}

/// The blocks of a web search Anthropic ran itself, before the text it led to.
fn server_tool_blocks() -> [Value; 2] {
    [
        json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "weather paris"}}),
        json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
            {"type": "web_search_result", "url": URL, "title": "Paris weather", "encrypted_content": "enc", "page_age": null}]}),
    ]
}

/// Anthropic's citation of the page in a text block.
fn citation() -> Value {
    json!({"type": "web_search_result_location", "url": URL, "title": "Paris weather", "encrypted_index": "idx", "cited_text": "Sunny all day"})
}

/// Claude's whole answer after a web search, with citations, paused by Anthropic
/// (`pause_turn`: its server tools ran long) before the turn was done.
pub fn paused_answer() -> Value {
    let [used, found] = server_tool_blocks();
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [used, found,
            {"type": "text", "text": TEXT[0]},
            {"type": "text", "text": TEXT[1], "citations": [citation()]}],
        "stop_reason": "pause_turn", "stop_sequence": null,
        "usage": {"input_tokens": 5, "output_tokens": 9},
    })
}

/// [`paused_answer`] as Anthropic streams it.
pub fn paused_events() -> Vec<String> {
    let [used, found] = server_tool_blocks();
    let ev = |v: Value| {
        let kind = v["type"].as_str().unwrap().to_string();
        named(&kind, v)
    };
    let delta =
        |i: u64, d: Value| ev(json!({"type": "content_block_delta", "index": i, "delta": d}));
    let start = |i: u64, b: Value| {
        ev(json!({"type": "content_block_start", "index": i, "content_block": b}))
    };
    let stop = |i: u64| ev(json!({"type": "content_block_stop", "index": i}));
    let mut used_start = used.clone();
    used_start["input"] = json!({});
    vec![
        ev(
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ),
        start(0, used_start),
        delta(
            0,
            json!({"type": "input_json_delta", "partial_json": used["input"].to_string()}),
        ),
        stop(0),
        start(1, found),
        stop(1),
        start(2, json!({"type": "text", "text": ""})),
        delta(2, json!({"type": "text_delta", "text": TEXT[0]})),
        stop(2),
        start(3, json!({"type": "text", "text": "", "citations": []})),
        delta(
            3,
            json!({"type": "citations_delta", "citation": citation()}),
        ),
        delta(3, json!({"type": "text_delta", "text": TEXT[1]})),
        stop(3),
        ev(
            json!({"type": "message_delta", "delta": {"stop_reason": "pause_turn", "stop_sequence": null}, "usage": {"output_tokens": 9}}),
        ),
        ev(json!({"type": "message_stop"})),
    ]
}

/// An Anthropic source's answer to `req`: [`paused_answer`], streamed when asked for a
/// stream.
pub fn paused_reply(req: &Recorded) -> Reply {
    match req.json()["stream"] == json!(true) {
        true => Reply::Sse(paused_events(), Duration::ZERO),
        false => Reply::json(200, paused_answer()),
    }
}

/// A proxy whose `m` is an Anthropic source answering [`paused_reply`].
fn paused_source() -> (MockUpstream, Proxy) {
    let mock = MockUpstream::start(paused_reply);
    let p = Wire::Anthropic.serving(&mock, "m");
    (mock, p)
}

#[test]
fn a_paused_anthropic_turn_reaches_other_clients_as_unfinished_with_its_citations() {
    let (_mock, p) = paused_source();
    let text = TEXT.concat();

    // Chat: `length`, as an answer cut short says; the text whole, its citation an
    // annotation, the search no call of the client's.
    let r = p.post(Wire::Chat.path(), Wire::Chat.request("m", false, false));
    let v = r.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "length", "{v}");
    assert_eq!(choice["message"]["content"], text, "{v}");
    assert_eq!(
        choice["message"]["annotations"],
        json!([chat_annotation()]),
        "{v}"
    );
    assert!(choice["message"]["tool_calls"].is_null(), "{v}");
    let s = p.stream(Wire::Chat.path(), Wire::Chat.request("m", true, false));
    let chunks = event_data(&s);
    let finishes: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!("length")], "{}", s.text());
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text, "{}", s.text());
    let annotations: Vec<&Value> = chunks
        .iter()
        .flat_map(|c| c["choices"][0]["delta"]["annotations"].as_array())
        .flatten()
        .collect();
    assert_eq!(annotations, [&chat_annotation()], "{}", s.text());

    // Responses: `incomplete`, the citation on the text it cites.
    let r = p.post(
        Wire::Responses.path(),
        Wire::Responses.request("m", false, false),
    );
    let v = r.json();
    assert_eq!(v["status"], "incomplete", "{v}");
    let messages: Vec<&Value> = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .collect();
    assert_eq!(messages.len(), 1, "{v}");
    let part = &messages[0]["content"][0];
    assert_eq!(part["text"], text, "{v}");
    assert_eq!(part["annotations"], json!([responses_annotation()]), "{v}");
    let s = p.stream(
        Wire::Responses.path(),
        Wire::Responses.request("m", true, false),
    );
    let evs = event_data(&s);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.incomplete", "{}", s.text());
    let added: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.annotation.added")
        .map(|e| &e["annotation"])
        .collect();
    assert_eq!(added, [&responses_annotation()], "{}", s.text());
    let output = last["response"]["output"].as_array().unwrap();
    let part = &output.iter().find(|i| i["type"] == "message").unwrap()["content"][0];
    assert_eq!(part["text"], text, "{}", s.text());
    assert_eq!(
        part["annotations"],
        json!([responses_annotation()]),
        "{}",
        s.text()
    );

    // Gemini: cut short too.
    let r = p.post(
        &Wire::Gemini.url("m", false),
        Wire::Gemini.request("m", false, false),
    );
    assert_eq!(
        r.json()["candidates"][0]["finishReason"],
        "MAX_TOKENS",
        "{}",
        r.body
    );
    let s = p.stream(
        &Wire::Gemini.url("m", true),
        Wire::Gemini.request("m", true, false),
    );
    let reasons: Vec<Value> = event_data(&s)
        .iter()
        .map(|e| e["candidates"][0]["finishReason"].clone())
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(reasons, [json!("MAX_TOKENS")], "{}", s.text());

    // An Anthropic client gets Claude's answer as Claude sent it, to resume the turn.
    let r = p.post(
        Wire::Anthropic.path(),
        Wire::Anthropic.request("m", false, false),
    );
    assert_eq!(r.json(), paused_answer(), "{}", r.body);
    let s = p.stream(
        Wire::Anthropic.path(),
        Wire::Anthropic.request("m", true, false),
    );
    assert_eq!(s.text(), paused_events().concat());
}

#[test]
fn a_refusal_then_text_reach_a_responses_client_as_one_message() {
    // OpenAI writes a refusal and text as two parts of one message item.
    let chunk = crate::support::wire::chat_chunk;
    let events = vec![
        chunk(
            json!({"role": "assistant", "refusal": "I can't "}),
            Value::Null,
        ),
        chunk(json!({"refusal": "do that."}), Value::Null),
        chunk(json!({"content": " Here is "}), Value::Null),
        chunk(json!({"content": "something else."}), Value::Null),
        chunk(json!({}), json!("stop")),
        "data: [DONE]\n\n".to_string(),
    ];
    let mock = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let p = Wire::Chat.serving(&mock, "m");
    let s = p.stream(
        Wire::Responses.path(),
        Wire::Responses.request("m", true, false),
    );
    let evs = event_data(&s);
    let kinds = |kind: &str| evs.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(kinds("response.output_item.added"), 1, "{}", s.text());
    assert_eq!(kinds("response.content_part.added"), 2, "{}", s.text());
    let text_at: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| &e["content_index"])
        .collect();
    assert_eq!(text_at, [&json!(1), &json!(1)], "{}", s.text());
    let want = json!([
        {"type": "refusal", "refusal": "I can't do that."},
        {"type": "output_text", "text": " Here is something else.", "annotations": []},
    ]);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.completed", "{}", s.text());
    let output = last["response"]["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{}", s.text());
    assert_eq!(output[0]["content"], want, "{}", s.text());
    let done: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"]["content"])
        .collect();
    assert_eq!(done, [&want], "{}", s.text());
}
