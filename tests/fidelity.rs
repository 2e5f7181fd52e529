//! What must survive a translation: parallel calls, calls without input, thinking.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::wire::Wire;
use crate::support::{MockUpstream, Proxy, Reply};

/// A proxy whose model `m` is served by a mock speaking `up` that answers `reply`.
fn setup(up: Wire, reply: Reply) -> (MockUpstream, Proxy) {
    let mock = MockUpstream::always(reply);
    let yaml = format!(
        "providers:\n  up:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n",
        mock.url(),
        up.config_name()
    );
    (mock, Proxy::start(&yaml))
}

/// A chat stream of these deltas, then `finish`, then `[DONE]`.
fn chat_sse(deltas: &[Value], finish: &str) -> Reply {
    let chunk = |delta: &Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
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

#[test]
fn interleaved_parallel_calls_reach_an_anthropic_client_as_whole_blocks() {
    // Some chat servers send every call's id and name before any arguments. Anthropic's
    // blocks cannot interleave: each call is one block, start to stop, with its own input.
    let call = |i: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"index": i, "function": {"arguments": args}});
        if let (Some(id), Some(name)) = (id, name) {
            c["id"] = json!(id);
            c["type"] = json!("function");
            c["function"]["name"] = json!(name);
        }
        json!({"tool_calls": [c]})
    };
    let (_mock, p) = setup(
        Wire::Chat,
        chat_sse(
            &[
                call(0, Some("call_a"), Some("read"), ""),
                call(1, Some("call_b"), Some("list"), ""),
                call(0, None, None, r#"{"path":"#),
                call(1, None, None, r#"{"dir":"src"}"#),
                call(0, None, None, r#""a.rs"}"#),
            ],
            "tool_calls",
        ),
    );
    let s = p.stream(
        &Wire::Anthropic.url("m", true),
        Wire::Anthropic.request("m", true, true),
    );
    assert_eq!(s.status, 200, "{}", s.text());
    let a = Wire::Anthropic.read_stream(&s);
    assert_eq!(
        a.tools,
        vec![
            ("read".into(), json!({"path": "a.rs"}), "call_a".into()),
            ("list".into(), json!({"dir": "src"}), "call_b".into()),
        ],
        "{}",
        s.text()
    );
    // Each block's events are contiguous: start, deltas, stop.
    let mut open: Option<u64> = None;
    for d in s.data() {
        let v: Value = serde_json::from_str(&d).unwrap();
        let index = v["index"].as_u64();
        match v["type"].as_str().unwrap() {
            "content_block_start" => {
                assert_eq!(open, None, "a block opened inside another: {}", s.text());
                open = index;
            }
            "content_block_delta" => assert_eq!(index, open, "{}", s.text()),
            "content_block_stop" => {
                assert_eq!(index, open, "{}", s.text());
                open = None;
            }
            _ => {}
        }
    }
    assert!(a.ended);
}

#[test]
fn a_streamed_call_without_input_has_empty_object_arguments() {
    // Anthropic streams a call without input as `input: {}` and at most an empty
    // fragment; chat and Responses clients parse the arguments, so they get `{}`.
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": {"input_tokens": 5, "output_tokens": 0}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
        json!({"type": "message_stop"}),
    ];
    for client in [Wire::Chat, Wire::Responses] {
        let (_mock, p) = setup(Wire::Anthropic, anthropic_sse(&events));
        let s = p.stream(&client.url("m", true), client.request("m", true, true));
        assert_eq!(s.status, 200, "{client:?}: {}", s.text());
        let a = client.read_stream(&s);
        assert_eq!(
            a.tools,
            vec![("now".into(), json!({}), "toolu_1".into())],
            "{client:?}: {}",
            s.text()
        );
    }
}

#[test]
fn thinking_named_reasoning_reaches_other_clients() {
    // Ollama and OpenRouter name a chat answer's thinking `reasoning`, vLLM
    // `reasoning_content`: both are thinking to an Anthropic client, streamed or not.
    let (_mock, p) = setup(
        Wire::Chat,
        chat_sse(
            &[
                json!({"role": "assistant", "reasoning": "Let me see."}),
                json!({"content": "Hello there"}),
            ],
            "stop",
        ),
    );
    let s = p.stream(
        &Wire::Anthropic.url("m", true),
        Wire::Anthropic.request("m", true, false),
    );
    let thinking: String = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["thinking"].as_str().map(str::to_string))
        .collect();
    assert_eq!(thinking, "Let me see.", "{}", s.text());
    assert_eq!(Wire::Anthropic.read_stream(&s).text, "Hello there");

    let answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there", "reasoning": "Let me see."}, "finish_reason": "stop"}],
    });
    let (_mock, p) = setup(Wire::Chat, Reply::json(200, answer));
    let resp = p.post(
        &Wire::Anthropic.url("m", false),
        Wire::Anthropic.request("m", false, false),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let content = &resp.json()["content"];
    assert_eq!(
        content[0],
        json!({"type": "thinking", "thinking": "Let me see.", "signature": ""}),
        "{}",
        resp.body
    );
    assert_eq!(content[1]["text"], "Hello there");
}
