//! Tool calls survive a translation whole: parallel, interleaved, without an index or
//! input, ended by `stop`, described or not.

use super::*;

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
    assert_blocks_whole(&s);
    assert!(a.ended);
}

#[test]
fn calls_streamed_without_an_index_reach_every_client_apart() {
    // SGLang and some Ollama paths stream calls without an `index`, each whole or in
    // fragments of which only the first has the id: a new id is a new call.
    let call = |id: Option<&str>, name: &str, args: &str| {
        let mut c = json!({"function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
            c["function"]["name"] = json!(name);
        }
        json!({"tool_calls": [c]})
    };
    let reply = chat_sse(
        &[
            call(Some("call_A"), "get_weather", r#"{"city":"#),
            call(None, "", r#""Paris"}"#),
            call(Some("call_B"), "get_time", r#"{"tz":"UTC"}"#),
        ],
        "tool_calls",
    );
    for client in [Wire::Anthropic, Wire::Responses, Wire::Gemini] {
        let (_mock, p) = setup(Wire::Chat, reply.clone());
        let s = p.stream(&client.url("m", true), client.request("m", true, true));
        assert_eq!(s.status, 200, "{client:?}: {}", s.text());
        let a = client.read_stream(&s);
        assert_eq!(
            a.tools,
            vec![
                (
                    "get_weather".into(),
                    json!({"city": "Paris"}),
                    "call_A".into()
                ),
                ("get_time".into(), json!({"tz": "UTC"}), "call_B".into()),
            ],
            "{client:?}: {}",
            s.text()
        );
        assert!(a.ended, "{client:?}: {}", s.text());
    }
}

#[test]
fn text_between_a_calls_fragments_leaves_the_call_whole() {
    // A chat source may send text between one call's argument fragments. Each client
    // gets the call once, named, with all its arguments, and the text.
    let reply = chat_sse(
        &[
            json!({"tool_calls": [{"index": 0, "id": "call_A", "type": "function",
                "function": {"name": "get_weather", "arguments": r#"{"city":"#}}]}),
            json!({"content": "thinking aloud"}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": r#""Paris"}"#}}]}),
        ],
        "tool_calls",
    );
    let weather = (
        "get_weather".into(),
        json!({"city": "Paris"}),
        "call_A".into(),
    );
    for client in [Wire::Anthropic, Wire::Responses, Wire::Gemini] {
        let (_mock, p) = setup(Wire::Chat, reply.clone());
        let s = p.stream(&client.url("m", true), client.request("m", true, true));
        assert_eq!(s.status, 200, "{client:?}: {}", s.text());
        let a = client.read_stream(&s);
        assert_eq!(a.tools, vec![weather.clone()], "{client:?}: {}", s.text());
        assert_eq!(a.text, "thinking aloud", "{client:?}: {}", s.text());
        assert!(a.ended, "{client:?}: {}", s.text());
        match client {
            Wire::Anthropic => {
                assert_blocks_whole(&s);
                let blocks = anthropic_content(&s);
                let calls: Vec<&Value> =
                    blocks.iter().filter(|b| b["type"] == "tool_use").collect();
                assert_eq!(calls.len(), 1, "{}", s.text());
                assert_eq!(calls[0]["input"], json!({"city": "Paris"}), "{}", s.text());
            }
            Wire::Responses => {
                let output = responses_output(&s);
                let calls: Vec<&Value> = output
                    .iter()
                    .filter(|i| i["type"] == "function_call")
                    .collect();
                assert_eq!(calls.len(), 1, "{}", s.text());
                assert_eq!(
                    (
                        &calls[0]["name"],
                        &calls[0]["call_id"],
                        &calls[0]["arguments"]
                    ),
                    (
                        &json!("get_weather"),
                        &json!("call_A"),
                        &json!(r#"{"city":"Paris"}"#)
                    ),
                    "{}",
                    s.text()
                );
                assert!(
                    output.iter().any(|i| i["type"] == "message"),
                    "the text is an item of its own: {}",
                    s.text()
                );
            }
            _ => {}
        }
    }
}

#[test]
fn calls_a_chat_source_ends_with_stop_reach_an_anthropic_client_as_tool_use() {
    // Gemini's OpenAI-compatible endpoint, SGLang and older Ollama end a turn of calls
    // with `stop`; a loop that runs tools while `stop_reason == "tool_use"` must still
    // run them. A turn without calls stays `end_turn`.
    let call = json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}});
    let whole = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me look.", "tool_calls": [call]}, "finish_reason": "stop"}]});
    let mock = MockUpstream::start(move |req| {
        let body = req.json();
        let calls = body["messages"][0]["content"] != "no tools";
        match (body["stream"] == true, calls) {
            (true, true) => chat_sse(
                &[
                    json!({"content": "Let me look."}),
                    json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}),
                ],
                "stop",
            ),
            (true, false) => chat_sse(&[json!({"content": "Hi."})], "stop"),
            (false, true) => Reply::json(200, whole.clone()),
            (false, false) => Wire::Chat.reply(false, false),
        }
    });
    let p = Wire::Chat.serving(&mock, "m");
    for (question, reason) in [("weather?", "tool_use"), ("no tools", "end_turn")] {
        let req = json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": question}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]});
        let resp = p.post("/v1/messages", req.clone());
        assert_eq!(resp.json()["stop_reason"], reason, "{}", resp.body);
        let mut streamed = req;
        streamed["stream"] = json!(true);
        let s = p.stream("/v1/messages", streamed);
        let delta = s
            .data()
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v["type"] == "message_delta")
            .unwrap();
        assert_eq!(delta["delta"]["stop_reason"], reason, "{}", s.text());
    }
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
fn a_tool_without_a_description_reaches_a_chat_source_without_one() {
    // Not `"description": null` (nor `"parameters": null`), which strict validators refuse.
    let schema = json!({"type": "object"});
    let cases = [
        (
            Wire::Anthropic,
            json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"name": "now", "input_schema": schema}]}),
        ),
        (
            Wire::Responses,
            json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "now", "parameters": schema}]}),
        ),
        (
            Wire::Responses,
            json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "now"}]}),
        ),
        (
            Wire::Gemini,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "tools": [{"functionDeclarations": [{"name": "now", "parametersJsonSchema": schema}]}]}),
        ),
    ];
    for (client, req) in cases {
        let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
        let resp = p.post(&client.url("m", false), req);
        assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
        let sent = mock.requests()[0].json();
        let function = &sent["tools"][0]["function"];
        assert_eq!(function["name"], "now", "{client:?}: {sent}");
        assert!(function.get("description").is_none(), "{client:?}: {sent}");
        let parameters = function.get("parameters");
        assert!(
            parameters.is_none_or(|p| !p.is_null()),
            "{client:?}: {sent}"
        );
    }
}
