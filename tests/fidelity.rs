//! What must survive a translation (parallel calls, calls without input, thinking,
//! structured output, cache breakpoints), and what a source would refuse (thinking
//! where Anthropic forbids it, a limit under the name OpenAI's reasoning models refuse).

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
        // Marked as not Claude's, so it is taken out if the history goes to Claude.
        json!({"type": "thinking", "thinking": "Let me see.", "signature": "routeplane:v1:not-signed"}),
        "{}",
        resp.body
    );
    assert_eq!(content[1]["text"], "Hello there");
}

#[test]
fn thinking_is_left_off_where_anthropic_would_refuse_it() {
    // Anthropic refuses thinking in a tool loop whose last assistant turn has no signed
    // thinking block (no other protocol carries one), and with a forced tool choice.
    let turn = |input: Value, choice: Option<&str>| {
        let mut req = json!({"model": "m", "input": input, "reasoning": {"effort": "medium"},
            "tools": [{"type": "function", "name": "read", "parameters": {"type": "object"}}]});
        if let Some(c) = choice {
            req["tool_choice"] = json!(c);
        }
        req
    };
    let ask = json!([{"role": "user", "content": "read a.rs"}]);
    let mid_loop = json!([
        {"role": "user", "content": "read a.rs"},
        {"type": "function_call", "call_id": "call_1", "name": "read", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "fn main() {}"},
    ]);
    for (req, thinks) in [
        (turn(ask.clone(), None), true),
        (turn(mid_loop, None), false),
        (turn(ask, Some("required")), false),
    ] {
        let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
        let resp = p.post(&Wire::Responses.url("m", false), req.clone());
        assert_eq!(resp.status, 200, "{}", resp.body);
        let sent = mock.requests()[0].json();
        assert_eq!(sent["thinking"].is_object(), thinks, "{req}\n→ {sent}");
    }
}

#[test]
fn a_limit_reaches_openai_reasoning_models_as_max_completion_tokens() {
    // Anthropic's `max_tokens` is required; OpenAI's reasoning models refuse the chat
    // field of that name and take `max_completion_tokens`. Other models keep `max_tokens`.
    for (model, key) in [
        ("gpt-5-mini", "max_completion_tokens"),
        ("openai/o3", "max_completion_tokens"),
        ("llama3.1", "max_tokens"),
    ] {
        let (mock, p) = setup_model(Wire::Chat, Wire::Chat.reply(false, false), model);
        let mut req = Wire::Anthropic.request(model, false, false);
        req["max_tokens"] = json!(1000);
        let resp = p.post(&Wire::Anthropic.url(model, false), req);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let sent = mock.requests()[0].json();
        let other = if key == "max_tokens" {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        assert_eq!(
            (&sent[key], &sent[other]),
            (&json!(1000), &Value::Null),
            "{model}: {sent}"
        );
    }
}

#[test]
fn anthropic_structured_output_and_effort_reach_a_chat_source() {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    for (extra, effort) in [
        (
            json!({"output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "high"},
                "thinking": {"type": "adaptive"}}),
            json!("high"),
        ),
        // The older beta's field, and no effort asked.
        (
            json!({"output_format": {"type": "json_schema", "schema": schema}}),
            Value::Null,
        ),
    ] {
        let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
        let mut req = Wire::Anthropic.request("m", false, false);
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        let resp = p.post(&Wire::Anthropic.url("m", false), req);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let sent = mock.requests()[0].json();
        assert_eq!(sent["response_format"]["type"], "json_schema", "{sent}");
        assert_eq!(sent["response_format"]["json_schema"]["schema"], schema);
        assert_eq!(sent["reasoning_effort"], effort, "{sent}");
    }
}

#[test]
fn structured_output_reaches_an_anthropic_source_as_its_output_format() {
    let schema = json!({"type": "object", "properties": {
        "city": {"type": "string"},
        "qty": {"type": "integer", "minimum": 0},
        "stops": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "meta": {"type": "object", "properties": {}, "additionalProperties": false},
    }, "required": ["city"]});
    // Anthropic requires every object closed, as its SDKs make them; OpenAI only in
    // strict mode. One the client closed stays as it was. A keyword it refuses (pydantic
    // writes `ge=0` as `minimum`) is said in the description, as its SDKs say it.
    let closed = json!({"type": "object", "properties": {
        "city": {"type": "string"},
        "qty": {"type": "integer", "description": "{minimum: 0}"},
        "stops": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": false}},
        "meta": {"type": "object", "properties": {}, "additionalProperties": false},
    }, "required": ["city"], "additionalProperties": false});
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    for client in [Wire::Chat, Wire::Responses] {
        let mut req = client.request("m", false, false);
        match client {
            Wire::Chat => {
                req["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "city", "strict": true, "schema": schema}});
            }
            _ => {
                req["text"] =
                    json!({"format": {"type": "json_schema", "name": "city", "schema": schema}});
            }
        }
        let resp = p.post(&client.url("m", false), req);
        assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
        assert_eq!(client.read(&resp).text, "Hello there", "{client:?}");
        let sent = mock.requests().last().unwrap().json();
        assert_eq!(
            sent["output_config"],
            json!({"format": {"type": "json_schema", "schema": closed}}),
            "{client:?}: {sent}"
        );
    }
    // Anthropic has no mode for "any JSON object": said, in the caller's shape.
    let mut req = Wire::Chat.request("m", false, false);
    req["response_format"] = json!({"type": "json_object"});
    let asked = mock.count();
    let resp = p.post(&Wire::Chat.url("m", false), req);
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.contains("response_format"), "{}", resp.body);
    assert_eq!(mock.count(), asked, "not sent");
}

#[test]
fn cache_breakpoints_reach_an_anthropic_source() {
    // OpenRouter's and LiteLLM's convention: `cache_control` on a chat part marks an
    // Anthropic cache breakpoint. Without it the prompt is never cached.
    let mark = json!({"type": "ephemeral"});
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    let resp = p.post(
        &Wire::Chat.url("m", false),
        json!({"model": "m", "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "You are terse."},
                {"type": "text", "text": "A long style guide.", "cache_control": mark},
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "A long document.", "cache_control": mark},
                {"type": "text", "text": "Summarize it."},
            ]},
        ]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    assert_eq!(
        sent["system"],
        json!([
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "A long style guide.", "cache_control": mark},
        ]),
        "{sent}"
    );
    assert_eq!(sent["messages"][0]["content"][0]["cache_control"], mark);
    assert!(
        sent["messages"][0]["content"][1]
            .get("cache_control")
            .is_none()
    );
}

#[test]
fn a_chat_sources_refusal_reaches_other_clients_as_its_text() {
    // OpenAI puts a refusal in `refusal`, with no content; Anthropic's and Gemini's
    // protocols have no field for one, and an empty answer would read as a success that
    // said nothing. (Responses has one: `a_refusal_stays_a_refusal_between_chat_and_responses`.)
    let said = "I can't help with that.";
    for client in [Wire::Anthropic, Wire::Gemini] {
        let answer = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": said}, "finish_reason": "stop"}],
        });
        let (_mock, p) = setup(Wire::Chat, Reply::json(200, answer));
        let resp = p.post(&client.url("m", false), client.request("m", false, false));
        assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
        assert_eq!(client.read(&resp).text, said, "{client:?}: {}", resp.body);
        // Beside some text, after it.
        let both = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Partly.", "refusal": said}, "finish_reason": "stop"}],
        });
        let (_mock, p) = setup(Wire::Chat, Reply::json(200, both));
        let resp = p.post(&client.url("m", false), client.request("m", false, false));
        let want = format!("Partly.\n\n{said}");
        assert_eq!(client.read(&resp).text, want, "{client:?}: {}", resp.body);

        let (_mock, p) = setup(
            Wire::Chat,
            chat_sse(
                &[
                    json!({"role": "assistant", "content": null, "refusal": ""}),
                    json!({"refusal": "I can't "}),
                    json!({"refusal": "help with that."}),
                ],
                "stop",
            ),
        );
        let s = p.stream(&client.url("m", true), client.request("m", true, false));
        assert_eq!(
            client.read_stream(&s).text,
            said,
            "{client:?}: {}",
            s.text()
        );
    }
}

#[test]
fn reasoning_efforts_reach_gemini_within_what_each_model_takes() {
    // `none` turns a Flash model's thinking off (a budget of 0); a Pro model cannot stop
    // thinking and would refuse that, so it keeps its default. `xhigh` is the largest
    // budget every 2.5 model takes.
    for (model, effort, config) in [
        ("gemini-2.5-flash", "none", json!({"thinkingBudget": 0})),
        ("gemini-2.5-pro", "none", Value::Null),
        (
            "gemini-2.5-pro",
            "xhigh",
            json!({"thinkingBudget": 24576, "includeThoughts": true}),
        ),
    ] {
        let (mock, p) = setup_model(Wire::Gemini, Wire::Gemini.reply(false, false), model);
        let mut req = Wire::Chat.request(model, false, false);
        req["reasoning_effort"] = json!(effort);
        let resp = p.post(&Wire::Chat.url(model, false), req);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let sent = mock.requests()[0].json();
        assert_eq!(
            sent["generationConfig"]["thinkingConfig"], config,
            "{model} {effort}: {sent}"
        );
    }
}

#[test]
fn translated_thinking_never_raises_the_clients_cap() {
    // A client's output cap is a cost limit: thinking fits under it or stays off.
    // Anthropic takes a budget of 1024 at least, and below `max_tokens`.
    let gemini = |config: Value| {
        let mut req = Wire::Gemini.request("m", false, false);
        req["generationConfig"] = config;
        (Wire::Gemini, req)
    };
    let chat = |extra: Value| {
        let mut req = Wire::Chat.request("m", false, false);
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        (Wire::Chat, req)
    };
    for ((client, req), max_tokens, budget) in [
        // No room for the least budget under the cap: thinking off, the cap kept.
        (
            gemini(json!({"maxOutputTokens": 100, "thinkingConfig": {"thinkingBudget": 9000}})),
            100,
            Value::Null,
        ),
        (
            gemini(json!({"max_output_tokens": 12, "thinking_config": {"thinking_budget": 9000}})),
            12,
            Value::Null,
        ),
        (
            gemini(json!({"maxOutputTokens": 100, "thinkingConfig": {"thinkingLevel": "HIGH"}})),
            100,
            Value::Null,
        ),
        (
            chat(json!({"max_tokens": 100, "reasoning_effort": "high"})),
            100,
            Value::Null,
        ),
        // Room for some: the budget is cut below the cap.
        (
            chat(json!({"max_completion_tokens": 3000, "reasoning_effort": "high"})),
            3000,
            json!(2999),
        ),
        // A budget given as a number goes as it is.
        (
            gemini(json!({"maxOutputTokens": 8000, "thinkingConfig": {"thinkingBudget": 2048}})),
            8000,
            json!(2048),
        ),
        (
            gemini(json!({"maxOutputTokens": 20000, "thinkingConfig": {"thinkingBudget": 9000}})),
            20000,
            json!(9000),
        ),
        // No cap given: Routeplane picks one with room for the budget.
        (
            gemini(json!({"thinkingConfig": {"thinkingBudget": 2048}})),
            8192,
            json!(2048),
        ),
    ] {
        let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
        let resp = p.post(&client.url("m", false), req.clone());
        assert_eq!(resp.status, 200, "{}", resp.body);
        let sent = mock.requests()[0].json();
        assert_eq!(sent["max_tokens"], max_tokens, "{req}\n→ {sent}");
        assert_eq!(sent["thinking"]["budget_tokens"], budget, "{req}\n→ {sent}");
    }
}

#[test]
fn an_anthropic_clients_budget_reaches_gemini_as_written() {
    for (model, given, sent_budget) in [
        ("gemini-2.5-flash", 2000, 2000),
        ("gemini-2.5-flash", 1024, 1024),
        ("gemini-2.5-flash", 30000, 24576),
        ("gemini-2.5-pro", 30000, 30000),
    ] {
        let (mock, p) = setup_model(Wire::Gemini, Wire::Gemini.reply(false, false), model);
        let mut req = Wire::Anthropic.request(model, false, false);
        req["max_tokens"] = json!(40000);
        req["thinking"] = json!({"type": "enabled", "budget_tokens": given});
        let resp = p.post(&Wire::Anthropic.url(model, false), req);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let sent = mock.requests()[0].json();
        assert_eq!(
            sent["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": sent_budget, "includeThoughts": true}),
            "{model} {given}: {sent}"
        );
        assert_eq!(sent["generationConfig"]["maxOutputTokens"], 40000);
    }
}

#[test]
fn top_k_goes_between_gemini_and_anthropic() {
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    let mut req = Wire::Gemini.request("m", false, false);
    req["generationConfig"] = json!({"topK": 5, "temperature": 0.3});
    let resp = p.post(&Wire::Gemini.url("m", false), req);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    assert_eq!(sent["top_k"], 5, "{sent}");
    assert_eq!(sent["temperature"], 0.3, "{sent}");

    let (mock, p) = setup(Wire::Gemini, Wire::Gemini.reply(false, false));
    let mut req = Wire::Anthropic.request("m", false, false);
    req["top_k"] = json!(7);
    let resp = p.post(&Wire::Anthropic.url("m", false), req);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    assert_eq!(sent["generationConfig"]["topK"], 7, "{sent}");

    // Thinking takes no top_k: it goes with the other sampling settings.
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    let mut req = Wire::Gemini.request("m", false, false);
    req["generationConfig"] = json!({"topK": 5, "thinkingConfig": {"thinkingBudget": 2048}});
    let resp = p.post(&Wire::Gemini.url("m", false), req);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    assert!(sent["thinking"].is_object(), "{sent}");
    assert!(sent.get("top_k").is_none(), "{sent}");
}

#[test]
fn a_malformed_gemini_call_moves_on_instead_of_an_empty_success() {
    // Gemini ends an answer whose function call it could not form with
    // MALFORMED_FUNCTION_CALL and nothing in it: that is no answer, so the next
    // endpoint is asked, streamed or not.
    let malformed = json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}],
        "modelVersion": "g", "responseId": "r1"});
    for stream in [false, true] {
        let bad = MockUpstream::always(if stream {
            Reply::Sse(vec![format!("data: {malformed}\r\n\r\n")], Duration::ZERO)
        } else {
            Reply::json(200, malformed.clone())
        });
        let good = MockUpstream::always(Wire::Chat.reply(stream, false));
        let p = Proxy::start(&format!(
            "providers:\n  g:\n    api_base: {}\n    api_protocol: gemini\n    models: [gm]\n  c:\n    api_base: {}\n    models: [cm]\nmodels:\n  smart:\n    endpoints: [g:gm, c:cm]\n",
            bad.url(),
            good.url()
        ));
        let client = Wire::Anthropic;
        let text = if stream {
            let s = p.stream(
                &client.url("smart", true),
                client.request("smart", true, true),
            );
            assert_eq!(s.status, 200, "{}", s.text());
            client.read_stream(&s).text
        } else {
            let resp = p.post(
                &client.url("smart", false),
                client.request("smart", false, true),
            );
            assert_eq!(resp.status, 200, "{}", resp.body);
            client.read(&resp).text
        };
        assert_eq!(text, "Hello there", "stream: {stream}");
        assert_eq!(good.count(), 1, "stream: {stream}");
    }
}

#[test]
fn a_gemini_client_gets_no_usage_where_the_source_gave_none() {
    let answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
    });
    let (_mock, p) = setup(Wire::Chat, Reply::json(200, answer));
    let resp = p.post(
        &Wire::Gemini.url("m", false),
        Wire::Gemini.request("m", false, false),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.json().get("usageMetadata").is_none(), "{}", resp.body);
}

#[test]
fn a_part_that_cannot_be_carried_is_refused_not_dropped() {
    // Dropped, each of these changed the request without a word: a misspelt Gemini
    // part or an unknown Anthropic block left the prompt empty, and a tool without a
    // name went upstream as `null`.
    let cases = [
        (
            Wire::Gemini,
            json!({"contents": [{"role": "user", "parts": [{"txt": "hi"}]}]}),
            "part 0",
        ),
        (
            Wire::Anthropic,
            json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": [{"type": "bogus"}]}]}),
            "bogus",
        ),
        (
            Wire::Responses,
            json!({"model": "m", "input": "hi", "tools": [{"type": "function", "parameters": {"type": "object"}}]}),
            "name",
        ),
    ];
    for (client, req, named) in cases {
        let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
        let resp = p.post(&client.url("m", false), req);
        assert_eq!(resp.status, 400, "{client:?}: {}", resp.body);
        let message = client.error_message(&resp.json());
        assert!(message.contains(named), "{client:?}: {message}");
        assert_eq!(mock.count(), 0, "{client:?}: nothing goes upstream");
    }
}

#[test]
fn a_gemini_stream_names_the_model_that_answered() {
    // As the unstreamed answer does, and the other protocols' streams.
    let answered = "m-2026-01-01";
    let events = vec![
        format!(
            "data: {}\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": answered,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}]})
        ),
        "data: [DONE]\n\n".to_string(),
    ];
    let (_mock, p) = setup(Wire::Chat, Reply::Sse(events, Duration::ZERO));
    let s = p.stream(
        &Wire::Gemini.url("m", true),
        Wire::Gemini.request("m", true, false),
    );
    assert_eq!(s.status, 200, "{}", s.text());
    let models: Vec<Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .map(|v| v["modelVersion"].clone())
        .collect();
    assert!(!models.is_empty());
    assert!(models.iter().all(|m| m == answered), "{models:?}");
}

#[test]
fn an_upstreams_error_code_reaches_a_client_of_another_openai_shape() {
    // A Responses client of a chat source: the body is translated, and OpenAI's code
    // (which SDKs and Codex read) goes with the message.
    let refused = r#"{"error":{"message":"temperature is out of range","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#;
    let (_mock, p) = setup(Wire::Chat, Reply::Json(400, refused.into()));
    let resp = p.post(
        &Wire::Responses.url("m", false),
        Wire::Responses.request("m", false, false),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    let v = resp.json();
    assert_eq!(v["error"]["code"], "invalid_value", "{v}");
    assert_eq!(v["error"]["message"], "temperature is out of range");
}

/// Claude's answer to "read a.rs" with thinking on: signed thinking, then a call.
fn claude_thinks_then_calls() -> Reply {
    anthropic_sse(&[
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": {"input_tokens": 5, "output_tokens": 0}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Need "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "a.rs."}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig-1"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "opaque-2"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"path\":\"a.rs\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ])
}

/// The bodies of the requests a mock was sent (not its model listings, which the
/// built-in providers are asked for).
fn posted(mock: &MockUpstream) -> Vec<Value> {
    mock.posts().iter().map(body_of).collect()
}

/// A mock Claude that answers as [`claude_thinks_then_calls`] does, streamed or whole as
/// asked.
fn claude_thinking_then_calling() -> MockUpstream {
    MockUpstream::start(|rec| {
        if body_of(rec)["stream"] == true {
            return claude_thinks_then_calls();
        }
        let [thinking, redacted] = claudes_signed_thinking();
        let call =
            json!({"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.rs"}});
        Reply::json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [thinking, redacted, call], "stop_reason": "tool_use",
                "usage": {"input_tokens": 5, "output_tokens": 9}}),
        )
    })
}

/// The thinking blocks [`claude_thinks_then_calls`] signed, as Anthropic wants them back.
fn claudes_signed_thinking() -> [Value; 2] {
    [
        json!({"type": "thinking", "thinking": "Need a.rs.", "signature": "sig-1"}),
        json!({"type": "redacted_thinking", "data": "opaque-2"}),
    ]
}

#[test]
fn claudes_signed_thinking_survives_a_codex_tool_loop() {
    // Codex gives back each reasoning item it got, `encrypted_content` and all, with the
    // calls after it. Claude's signed thinking travels in it, so the second turn of the
    // loop keeps thinking on instead of being sent without it.
    let (mock, p) = setup(Wire::Anthropic, claude_thinks_then_calls());
    let tools = json!([{"type": "function", "name": "read", "parameters": {"type": "object"}}]);
    let ask = json!({"role": "user", "content": [{"type": "input_text", "text": "read a.rs"}]});
    let first = json!({"model": "m", "stream": true, "store": false, "input": [ask],
        "reasoning": {"effort": "medium"}, "include": ["reasoning.encrypted_content"], "tools": tools});
    let items = responses_items(&p, true, first);
    let [reasoning, call] = &items[..] else {
        panic!("expected a reasoning item and a call: {items:?}");
    };
    assert_eq!(reasoning["type"], "reasoning", "{reasoning}");
    assert_eq!(reasoning["summary"][0]["text"], "Need a.rs.");
    assert!(reasoning["encrypted_content"].is_string(), "{reasoning}");
    assert_eq!(call["type"], "function_call", "{call}");

    let output = json!({"type": "function_call_output", "call_id": call["call_id"], "output": "fn main() {}"});
    let second = json!({"model": "m", "stream": true, "store": false,
        "input": [ask, reasoning, call, output], "reasoning": {"effort": "medium"}, "tools": tools});
    let s = p.stream(&Wire::Responses.url("m", true), second);
    assert_eq!(s.status, 200, "{}", s.text());
    let sent = mock.requests()[1].json();
    assert!(sent["thinking"].is_object(), "thinking left off: {sent}");
    let turn = &sent["messages"][1];
    assert_eq!(turn["role"], "assistant", "{sent}");
    let [thinking, redacted] = claudes_signed_thinking();
    assert_eq!(turn["content"][0], thinking, "{sent}");
    assert_eq!(turn["content"][1], redacted, "{sent}");
    assert_eq!(turn["content"][2]["type"], "tool_use", "{sent}");
}

#[test]
fn a_chat_client_gets_claudes_signed_thinking_and_gives_it_back() {
    // In OpenRouter's shape (`reasoning_details`), which its clients keep and send back.
    let (mock, p) = setup(Wire::Anthropic, claude_thinks_then_calls());
    let tools = json!([{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]);
    let ask = json!({"role": "user", "content": "read a.rs"});
    let first = json!({"model": "m", "messages": [ask], "reasoning_effort": "medium", "tools": tools, "stream": true});
    let s = p.stream(&Wire::Chat.url("m", true), first);
    let mut details = Vec::new();
    let mut calls = Vec::new();
    for v in s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
    {
        let delta = &v["choices"][0]["delta"];
        details.extend(
            delta["reasoning_details"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
        calls.extend(
            delta["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    assert_eq!(details.len(), 2, "{}", s.text());
    assert_eq!(details[0]["type"], "reasoning.text");
    assert_eq!(details[0]["text"], "Need a.rs.");
    assert_eq!(details[0]["signature"], "sig-1");
    assert_eq!(details[1]["type"], "reasoning.encrypted");

    let turn = json!({"role": "assistant", "content": null, "reasoning_details": details,
        "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a.rs\"}"}}]});
    let result = json!({"role": "tool", "tool_call_id": "toolu_1", "content": "fn main() {}"});
    let second = json!({"model": "m", "messages": [ask, turn, result], "reasoning_effort": "medium", "tools": tools, "stream": true});
    assert_eq!(p.stream(&Wire::Chat.url("m", true), second).status, 200);
    let sent = mock.requests()[1].json();
    assert!(sent["thinking"].is_object(), "thinking left off: {sent}");
    let [thinking, redacted] = claudes_signed_thinking();
    assert_eq!(sent["messages"][1]["content"][0], thinking, "{sent}");
    assert_eq!(sent["messages"][1]["content"][1], redacted, "{sent}");
}

#[test]
fn claudes_thinking_survives_a_chat_clients_loop_that_drops_it() {
    // opencode and aider keep no `reasoning_details`: their next turn comes without
    // Claude's thinking. Routeplane kept it under the turn's first call and gives it
    // back, so thinking stays on; with no memory for it the turn goes without.
    let tools = json!([{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]);
    let ask = json!({"role": "user", "content": "read a.rs"});
    // Kimi's ids (`functions.Bash:0`) may be alike in two sessions: its answers are not
    // kept. Anthropic's are random.
    for (name, stream, memory) in [
        ("anthropic", true, None),
        ("anthropic", false, None),
        ("anthropic", true, Some(0)),
        ("kimi", true, None),
    ] {
        let mock = claude_thinking_then_calling();
        let limits = memory.map_or(String::new(), |m| {
            format!("limits:\n  reasoning_memory_bytes: {m}\n")
        });
        let p = Proxy::start(&format!(
            "{limits}providers:\n  {name}:\n    api_base: {}\n    api_key: k\n    api_protocol: anthropic\n    models: [m]\n",
            mock.url()
        ));
        let kept_here = memory.is_none() && name == "anthropic";
        let first = json!({"model": "m", "messages": [ask], "reasoning_effort": "medium", "tools": tools, "stream": stream});
        let answer = p.stream(&Wire::Chat.url("m", stream), first);
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(answer.text().contains("toolu_1"), "{}", answer.text());
        let metrics = p.get("/metrics").body;
        let kept: f64 = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("routeplane_reasoning_memory_bytes ")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{metrics}"));
        assert_eq!(kept > 0.0, kept_here, "{metrics}");
        // The client's next turn, as opencode sends it: the call and its result alone.
        let turn = json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a.rs\"}"}}]});
        let result = json!({"role": "tool", "tool_call_id": "toolu_1", "content": "fn main() {}"});
        let second = json!({"model": "m", "messages": [ask, turn, result], "reasoning_effort": "medium", "tools": tools, "stream": true});
        assert_eq!(p.stream(&Wire::Chat.url("m", true), second).status, 200);
        let sent = posted(&mock)[1].clone();
        if !kept_here {
            assert!(
                sent["thinking"].is_null(),
                "thinking on without its blocks: {sent}"
            );
            assert_eq!(
                sent["messages"][1]["content"][0]["type"], "tool_use",
                "{sent}"
            );
            continue;
        }
        assert!(
            sent["thinking"].is_object(),
            "stream {stream}: thinking left off: {sent}"
        );
        let [thinking, redacted] = claudes_signed_thinking();
        assert_eq!(sent["messages"][1]["content"][0], thinking, "{sent}");
        assert_eq!(sent["messages"][1]["content"][1], redacted, "{sent}");
        // Another session's turn with a call of another id gets none of it.
        let other = json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": "toolu_2", "type": "function", "function": {"name": "read", "arguments": "{}"}}]});
        let result = json!({"role": "tool", "tool_call_id": "toolu_2", "content": "x"});
        let third = json!({"model": "m", "messages": [ask, other, result], "reasoning_effort": "medium", "tools": tools});
        assert_eq!(p.post(&Wire::Chat.url("m", false), third).status, 200);
        let sent = posted(&mock)[2].clone();
        assert!(sent["thinking"].is_null(), "{sent}");
        assert!(!sent.to_string().contains("sig-1"), "{sent}");
    }
}

#[test]
fn claudes_thinking_survives_a_gemini_clients_loop() {
    // A Gemini client has no place for Claude's thinking; it gives back the call with
    // the id it got.
    let mock = claude_thinking_then_calling();
    let p = sources(&[("anthropic", Wire::Anthropic, &mock, "m")]);
    let ask = json!({"role": "user", "parts": [{"text": "read a.rs"}]});
    let tools = json!([{"functionDeclarations": [{"name": "read", "parametersJsonSchema": {"type": "object"}}]}]);
    let thinking = json!({"thinkingConfig": {"thinkingBudget": 2048}});
    let first = json!({"contents": [ask], "tools": tools, "generationConfig": thinking});
    let resp = p.post(&Wire::Gemini.url("m", false), first);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let parts = resp.json()["candidates"][0]["content"]["parts"].clone();
    let call = parts
        .as_array()
        .unwrap()
        .iter()
        .find(|part| part["functionCall"].is_object())
        .unwrap_or_else(|| panic!("a call: {parts}"))
        .clone();
    assert_eq!(call["functionCall"]["id"], "toolu_1", "{call}");
    let answer = json!({"functionResponse": {"id": "toolu_1", "name": "read", "response": {"output": "fn main() {}"}}});
    let second = json!({"contents": [ask, {"role": "model", "parts": [call]}, {"role": "user", "parts": [answer]}],
        "tools": tools, "generationConfig": thinking});
    let resp = p.post(&Wire::Gemini.url("m", false), second);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = posted(&mock)[1].clone();
    assert!(sent["thinking"].is_object(), "thinking left off: {sent}");
    assert_eq!(
        sent["messages"][1]["content"][0],
        claudes_signed_thinking()[0],
        "{sent}"
    );
}

#[test]
fn claudes_sealed_thinking_reaches_no_other_source() {
    // What Routeplane sealed into a reasoning item is Claude's alone: a Responses source
    // would refuse `encrypted_content` it did not make, OpenAI a message field it does
    // not know. OpenRouter carries it on to Claude.
    let claude = MockUpstream::always(claude_thinks_then_calls());
    let responses = MockUpstream::always(Wire::Responses.reply(true, false));
    let chat = MockUpstream::always(Wire::Chat.reply(true, false));
    let openrouter = MockUpstream::always(Wire::Chat.reply(true, false));
    let p = sources(&[
        ("claude", Wire::Anthropic, &claude, "c"),
        ("codex", Wire::Responses, &responses, "x"),
        ("local", Wire::Chat, &chat, "l"),
        ("openrouter", Wire::Chat, &openrouter, "r"),
    ]);
    let ask = json!({"role": "user", "content": "read a.rs"});
    let first = json!({"model": "c", "stream": true, "input": [ask], "reasoning": {"effort": "medium"},
        "tools": [{"type": "function", "name": "read", "parameters": {"type": "object"}}]});
    let items = responses_items(&p, true, first);
    assert!(items[0]["encrypted_content"].is_string(), "{items:?}");
    let output = json!({"type": "function_call_output", "call_id": items[1]["call_id"], "output": "fn main() {}"});
    let input = json!([ask, items[0], items[1], output]);
    for (model, mock) in [("x", &responses), ("l", &chat), ("r", &openrouter)] {
        let req = json!({"model": model, "stream": true, "input": input});
        let s = p.stream(&Wire::Responses.url(model, true), req);
        assert_eq!(s.status, 200, "{model}: {}", s.text());
        let asked = mock.posts().into_iter().next();
        let sent = String::from_utf8_lossy(&asked.expect("asked").body).into_owned();
        let carried = sent.contains("sig-1") || sent.contains("routeplane:v1:");
        assert_eq!(carried, model == "r", "{model}: {sent}");
    }
    // The Responses source still got the rest of the turn.
    let sent = responses.requests()[0].json();
    assert_eq!(
        input_kinds(&sent),
        ["user", "function_call", "function_call_output"],
        "{sent}"
    );
}

#[test]
fn claude_code_keeps_claudes_signature_through_openrouter() {
    // OpenRouter streams Claude's thinking as `reasoning` text with `reasoning_details`
    // pieces, the signature last; Claude Code must get a signed thinking block, and
    // what it gives back must reach OpenRouter as details again.
    const SIGNED: &str = "anthropic-claude-v1";
    let piece = |fields: Value| {
        let mut d = json!({"type": "reasoning.text", "index": 0, "format": SIGNED});
        d.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        d
    };
    let mock = MockUpstream::always(chat_sse(
        &[
            json!({"role": "assistant", "reasoning": "Need ", "reasoning_details": [piece(json!({"text": "Need "}))]}),
            json!({"reasoning": "a.rs.", "reasoning_details": [piece(json!({"text": "a.rs."}))]}),
            json!({"reasoning_details": [piece(json!({"signature": "sig-1"}))]}),
            json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}),
        ],
        "tool_calls",
    ));
    let p = sources(&[("openrouter", Wire::Chat, &mock, "m")]);
    let tools = json!([{"name": "read", "input_schema": {"type": "object"}}]);
    let ask = json!({"role": "user", "content": "read a.rs"});
    let first = json!({"model": "m", "max_tokens": 9000, "stream": true, "messages": [ask], "tools": tools,
        "thinking": {"type": "enabled", "budget_tokens": 4096}});
    let s = p.stream(&Wire::Anthropic.url("m", true), first);
    let deltas: Vec<Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["type"] == "content_block_delta" && v["index"] == 0)
        .map(|v| v["delta"].clone())
        .collect();
    let thinking: String = deltas
        .iter()
        .filter_map(|d| d["thinking"].as_str())
        .collect();
    assert_eq!(thinking, "Need a.rs.", "{}", s.text());
    assert_eq!(
        deltas.last().unwrap(),
        &json!({"type": "signature_delta", "signature": "sig-1"}),
        "{}",
        s.text()
    );

    let turn = json!({"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Need a.rs.", "signature": "sig-1"},
        {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}]});
    let result = json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "fn main() {}"}]});
    let second = json!({"model": "m", "max_tokens": 9000, "stream": true, "messages": [ask, turn, result],
        "tools": tools, "thinking": {"type": "enabled", "budget_tokens": 4096}});
    assert_eq!(
        p.stream(&Wire::Anthropic.url("m", true), second).status,
        200
    );
    let asked: Vec<Value> = mock.posts().iter().map(|r| r.json()).collect();
    let sent = &asked[1];
    assert_eq!(
        sent["messages"][1]["reasoning_details"],
        json!([{"type": "reasoning.text", "text": "Need a.rs.", "signature": "sig-1", "format": SIGNED}]),
        "{sent}"
    );
}

#[test]
fn geminis_own_thought_signature_goes_back_with_its_call() {
    // Gemini 3 signs a turn's first call. Given back (sealed to a Codex client, as
    // `reasoning_details` to a chat client), it goes with that call again instead of
    // the placeholder that history from elsewhere gets.
    let answer = |stream: bool| {
        let parts = json!([{"functionCall": {"name": "read", "args": {"path": "a.rs"}}, "thoughtSignature": "gsig-1"}]);
        json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "modelVersion": "gemini-3-pro", "responseId": if stream { "r1" } else { "r2" }})
    };
    let sse = Reply::Sse(vec![format!("data: {}\n\n", answer(true))], Duration::ZERO);
    for (stream, reply) in [(true, sse), (false, Reply::json(200, answer(false)))] {
        let (mock, p) = setup(Wire::Gemini, reply);
        let tools = json!([{"type": "function", "name": "read", "parameters": {"type": "object"}}]);
        let ask = json!({"role": "user", "content": "read a.rs"});
        let req =
            |input: Value| json!({"model": "m", "stream": stream, "input": input, "tools": tools});
        let items = responses_items(&p, stream, req(json!([ask])));
        let [reasoning, call] = &items[..] else {
            panic!("stream {stream}: expected a reasoning item and a call: {items:?}");
        };
        assert!(reasoning["encrypted_content"].is_string(), "{reasoning}");
        let output = json!({"type": "function_call_output", "call_id": call["call_id"], "output": "fn main() {}"});
        let input = json!([ask, reasoning, call, output]);
        let status = if stream {
            p.stream(&Wire::Responses.url("m", true), req(input)).status
        } else {
            p.post(&Wire::Responses.url("m", false), req(input)).status
        };
        assert_eq!(status, 200);
        let sent = mock.requests()[1].json();
        let part = &sent["contents"][1]["parts"][0];
        assert_eq!(part["functionCall"]["name"], "read", "{sent}");
        assert_eq!(
            part["thoughtSignature"], "gsig-1",
            "stream {stream}: {sent}"
        );
    }
}

#[test]
fn claude_code_comes_back_to_claude_after_another_source_answered_its_tool_turn() {
    // Claude Code with thinking on; one turn of its tool loop answered by a chat source
    // (failover did that), the next by Claude again, with the history as Claude Code
    // kept it. Claude refuses thinking Claude did not sign, and thinking on in a loop
    // whose last turn does not begin with Claude's: it must get neither.
    let claude = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let reasons = |reasoning: bool| {
        let mut first = json!({"role": "assistant"});
        if reasoning {
            first["reasoning_content"] = json!("Let me look.");
        }
        chat_sse(
            &[
                first,
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}),
            ],
            "tool_calls",
        )
    };
    for (reasoning, stream) in [(true, true), (false, true), (true, false), (false, false)] {
        let other = MockUpstream::always(if stream {
            reasons(reasoning)
        } else {
            let mut message = json!({"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "read", "arguments": "{}"}}]});
            if reasoning {
                message["reasoning_content"] = json!("Let me look.");
            }
            Reply::json(
                200,
                json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "l",
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}),
            )
        });
        let p = sources(&[
            ("claude", Wire::Anthropic, &claude, "c"),
            ("local", Wire::Chat, &other, "l"),
        ]);
        let case = format!("reasoning {reasoning}, stream {stream}");
        let tools = json!([{"name": "read", "input_schema": {"type": "object"}}]);
        let ask = json!({"role": "user", "content": "read a.rs"});
        let thinking = json!({"type": "enabled", "budget_tokens": 4096});
        let first = json!({"model": "l", "max_tokens": 9000, "stream": stream, "messages": [ask],
            "tools": tools, "thinking": thinking});
        let content = anthropic_answer(&p, stream, first);
        // Thinking first, even when the source gave none: it marks the turn.
        assert_eq!(content[0]["type"], "thinking", "{case}: {content:?}");
        assert_eq!(
            content.last().unwrap()["type"],
            "tool_use",
            "{case}: {content:?}"
        );

        let turn = json!({"role": "assistant", "content": content});
        let result = json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "fn main() {}"}]});
        let second = json!({"model": "c", "max_tokens": 9000, "messages": [ask, turn, result],
            "tools": tools, "thinking": thinking});
        let resp = p.post(&Wire::Anthropic.url("c", false), second);
        assert_eq!(resp.status, 200, "{case}: {}", resp.body);
        let sent = claude.requests().last().unwrap().json();
        assert!(
            sent["thinking"].is_null(),
            "{case}: thinking left on: {sent}"
        );
        let blocks = &sent["messages"][1]["content"];
        assert_eq!(
            blocks,
            &json!([{"type": "tool_use", "id": "call_1", "name": "read", "input": {}}]),
            "{case}: {sent}"
        );
    }

    // Thinking Claude signed stays, and keeps thinking on, with the other turn's taken out.
    let p = Wire::Anthropic.serving(&claude, "c");
    let foreign = json!({"role": "assistant", "content": [
        {"type": "thinking", "thinking": "", "signature": "routeplane:v1:not-signed"},
        {"type": "tool_use", "id": "call_1", "name": "read", "input": {}}]});
    let signed = json!({"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Now b.rs.", "signature": "sig-2"},
        {"type": "tool_use", "id": "toolu_2", "name": "read", "input": {}}]});
    let result = |id: &str| json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "x"}]});
    let req = json!({"model": "c", "max_tokens": 9000, "thinking": {"type": "enabled", "budget_tokens": 4096},
        "messages": [{"role": "user", "content": "read"}, foreign, result("call_1"), signed, result("toolu_2")]});
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        assert_eq!(p.post(path, req.clone()).status, 200, "{path}");
        let asked = claude.requests().last().unwrap().clone();
        assert!(asked.path.ends_with(path), "{}", asked.path);
        let sent = asked.json();
        assert!(sent["thinking"].is_object(), "{path}: {sent}");
        assert_eq!(
            sent["messages"][1]["content"][0]["type"], "tool_use",
            "{path}: {sent}"
        );
        assert_eq!(
            sent["messages"][3]["content"][0]["signature"], "sig-2",
            "{path}: {sent}"
        );
    }
}

/// vLLM's tool call id, `chatcmpl-tool-<32 hex>`: 46 characters.
const VLLM_ID: &str = "chatcmpl-tool-03f1c2b7a9d8e4f60a1b2c3d4e5f6a7b";

/// The ids of a chat request's assistant calls and of its tool messages, in order.
fn chat_ids(sent: &Value) -> (Vec<String>, Vec<String>) {
    let (mut calls, mut results) = (Vec::new(), Vec::new());
    for m in sent["messages"].as_array().unwrap() {
        for c in m["tool_calls"].as_array().into_iter().flatten() {
            calls.push(c["id"].as_str().unwrap().to_string());
        }
        if m["role"] == "tool" {
            results.push(m["tool_call_id"].as_str().unwrap().to_string());
        }
    }
    (calls, results)
}

#[test]
fn long_tool_call_ids_reach_a_chat_source_shortened_and_still_paired() {
    // OpenAI refuses a tool call id over 40 characters; vLLM's are 46. From another
    // protocol the history is translated: each long id is shortened alike in its call
    // and its result, short ones are kept, and the same history gives the same ids.
    let other = VLLM_ID.replace("7b", "7c");
    let call = |id: &str, city: &str| json!({"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": city}});
    let result = |id: &str| json!({"type": "tool_result", "tool_use_id": id, "content": "sunny"});
    let anthropic = json!({"model": "m", "max_tokens": 100, "messages": [
        {"role": "user", "content": "weather in Paris, Rome and Oslo?"},
        {"role": "assistant", "content": [call(VLLM_ID, "Paris"), call(&other, "Rome"), call("toolu_01short", "Oslo")]},
        {"role": "user", "content": [result(VLLM_ID), result(&other), result("toolu_01short")]},
    ]});
    let responses = json!({"model": "m", "input": [
        {"type": "message", "role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": VLLM_ID, "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": VLLM_ID, "output": "sunny"},
    ]});
    for (client, req, n) in [
        (Wire::Anthropic, anthropic, 3),
        (Wire::Responses, responses, 1),
    ] {
        let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
        for _ in 0..2 {
            let resp = p.post(&client.url("m", false), req.clone());
            assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
        }
        let [first, again] = &mock.requests()[..] else {
            panic!("{client:?}: two requests upstream");
        };
        let sent = first.json();
        let (calls, results) = chat_ids(&sent);
        assert_eq!(calls.len(), n, "{client:?}: {sent}");
        assert_eq!(calls, results, "{client:?}: calls and results pair: {sent}");
        assert!(
            calls.iter().all(|id| id.len() <= 40),
            "{client:?}: {calls:?}"
        );
        assert!(calls[0].starts_with("chatcmpl-tool-"), "{calls:?}");
        if n == 3 {
            assert_ne!(calls[0], calls[1], "ids that differ stay apart");
            assert_eq!(calls[2], "toolu_01short", "a short id is kept");
        }
        assert_eq!(
            chat_ids(&again.json()),
            (calls.clone(), calls),
            "{client:?}"
        );
    }

    // A chat client's own history holds the ids its last source gave it: after a
    // failover from vLLM to OpenAI it is copied, and shortened the same way.
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let req = chat_tool_history(VLLM_ID);
    assert_eq!(p.post(&Wire::Chat.url("m", false), req).status, 200);
    let (calls, results) = chat_ids(&mock.requests()[0].json());
    assert_eq!(calls, results);
    assert!(
        calls[0].len() <= 40 && calls[0].starts_with("chatcmpl-tool-"),
        "{calls:?}"
    );
}

/// A chat client's one-call tool loop whose call has this id.
fn chat_tool_history(id: &str) -> Value {
    json!({"model": "m", "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": id, "content": "sunny"},
    ]})
}

#[test]
fn a_chat_clients_history_whose_ids_the_source_takes_goes_byte_for_byte() {
    // Written with odd spacing and key order, which a rebuilt body would not keep.
    let body = r#"{"messages": [ {"role":"user","content":"weather?"},
        {"tool_calls":[{"id":"call_abc","type":"function","function":{"name":"f","arguments":"{}"}}],"role":"assistant"},
        {"tool_call_id" : "call_abc", "role":"tool","content":"sunny"} ], "model": "m"}"#;
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let resp = p.send("POST", &Wire::Chat.url("m", false), &[], body.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(String::from_utf8_lossy(&mock.requests()[0].body), body);
}

#[test]
fn tool_call_ids_reach_a_mistral_model_as_nine_letters_or_digits() {
    // Mistral's API and its models' chat templates refuse any other id: "Tool call id
    // was call_0fypS1hVX but must be a-z, A-Z, 0-9, with a length of 9". Ids from every
    // other source are made into such ids, alike in calls and results and on every turn;
    // Mistral's own are kept.
    const OWN: &str = "aB3xK9mP2";
    let call = |id: &str| json!({"type": "tool_use", "id": id, "name": "get_weather", "input": {}});
    let result = |id: &str| json!({"type": "tool_result", "tool_use_id": id, "content": "sunny"});
    let anthropic = json!({"model": "devstral-small-2507", "max_tokens": 100, "messages": [
        {"role": "user", "content": "weather in Paris, Rome and Oslo?"},
        {"role": "assistant", "content": [call("toolu_01A09q90qw90lq917835lq9"), call("toolu_01A09q90qw90lq917835lqX"), call(OWN)]},
        {"role": "user", "content": [result("toolu_01A09q90qw90lq917835lq9"), result("toolu_01A09q90qw90lq917835lqX"), result(OWN)]},
    ]});
    let mut chat = chat_tool_history("call_PTLP8xhu3uwZk4l3nlnrrJha");
    chat["model"] = json!("devstral-small-2507");
    let nine = |id: &String| id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    for (client, req, n) in [(Wire::Anthropic, anthropic, 3), (Wire::Chat, chat, 1)] {
        let (mock, p) = setup_model(
            Wire::Chat,
            Wire::Chat.reply(false, false),
            "devstral-small-2507",
        );
        for _ in 0..2 {
            let resp = p.post(&client.url("devstral-small-2507", false), req.clone());
            assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
        }
        let [first, again] = &mock.requests()[..] else {
            panic!("{client:?}: two requests upstream");
        };
        let (calls, results) = chat_ids(&first.json());
        assert_eq!(calls.len(), n, "{client:?}");
        assert_eq!(calls, results, "{client:?}: calls and results pair");
        assert!(calls.iter().all(nine), "{client:?}: {calls:?}");
        if n == 3 {
            assert_ne!(calls[0], calls[1], "ids that differ stay apart");
            assert_eq!(calls[2], OWN, "Mistral's own id is kept");
        }
        assert_eq!(
            chat_ids(&again.json()),
            (calls.clone(), calls),
            "{client:?}"
        );
    }
}

#[test]
fn a_gemini_clients_long_named_calls_reach_a_chat_source_with_short_paired_ids() {
    // Gemini's calls carry no id; the one made from an MCP tool's long name was 55
    // characters, which OpenAI refuses.
    let name = "mcp_github_create_pull_request_review_comment";
    let call = |line: u64| json!({"functionCall": {"name": name, "args": {"line": line}}});
    let answer =
        |out: &str| json!({"functionResponse": {"name": name, "response": {"output": out}}});
    let req = json!({"contents": [
        {"role": "user", "parts": [{"text": "review the PR"}]},
        {"role": "model", "parts": [call(1), call(2)]},
        {"role": "user", "parts": [answer("done 1"), answer("done 2")]},
    ], "tools": [{"functionDeclarations": [{"name": name, "parametersJsonSchema": {"type": "object"}}]}]});
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let resp = p.post(&Wire::Gemini.url("m", false), req);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    let (calls, results) = chat_ids(&sent);
    assert_eq!(calls.len(), 2, "{sent}");
    assert_eq!(calls, results, "{sent}");
    assert_ne!(calls[0], calls[1]);
    assert!(calls.iter().all(|id| id.len() <= 40), "{calls:?}");
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

/// A chat source's answer of two calls, `call_a` and `call_b`, streamed or not, with
/// `details` as the message's reasoning details.
fn two_calls(stream: bool, details: Value) -> Reply {
    let call = |i: u64, id: &str| json!({"index": i, "id": id, "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a.rs\"}"}});
    if stream {
        let mut deltas = vec![json!({"role": "assistant", "tool_calls": [call(0, "call_a")]})];
        if !details.is_null() {
            deltas.push(json!({"reasoning_details": details}));
        }
        deltas.push(json!({"tool_calls": [call(1, "call_b")]}));
        return chat_sse(&deltas, "tool_calls");
    }
    let mut message = json!({"role": "assistant", "content": null, "tool_calls": [call(0, "call_a"), call(1, "call_b")]});
    if !details.is_null() {
        message["reasoning_details"] = details;
    }
    Reply::json(
        200,
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}),
    )
}

/// Each `functionCall` part a Gemini client got, with its thought signature.
fn signed_calls(answers: &[Value]) -> Vec<(String, Value)> {
    answers
        .iter()
        .flat_map(|v| {
            v["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|p| p["functionCall"].is_object())
        .map(|p| {
            let id = p["functionCall"]["id"].as_str().unwrap().to_string();
            (id, p["thoughtSignature"].clone())
        })
        .collect()
}

#[test]
fn a_gemini_clients_calls_from_another_source_carry_a_thought_signature() {
    // The client sends the turn back as it got it; when that goes to a Gemini source
    // (byte for byte, the same protocol), Gemini 3 refuses a turn of calls whose first
    // has no signature. The placeholder is gemini-cli's own for foreign history; a
    // signature Gemini made (OpenRouter's reasoning detail naming the call) is used.
    let placeholder = json!("skip_thought_signature_validator");
    let own = json!([{"type": "reasoning.encrypted", "data": "gsig-1", "id": "call_a", "format": "google-gemini-v1", "index": 0}]);
    for (details, first) in [(Value::Null, placeholder), (own, json!("gsig-1"))] {
        for stream in [false, true] {
            let (_mock, p) = setup(Wire::Chat, two_calls(stream, details.clone()));
            let req = Wire::Gemini.request("m", stream, true);
            let answers = gemini_answers(&p, stream, req);
            assert_eq!(
                signed_calls(&answers),
                [
                    ("call_a".into(), first.clone()),
                    ("call_b".into(), Value::Null)
                ],
                "stream {stream}: {answers:?}"
            );
        }
    }
}

#[test]
fn a_stream_to_a_gemini_client_never_ends_on_an_empty_text_part() {
    // A client that keeps the last event's parts sends them back, and Gemini refuses an
    // empty text part. As Gemini's own streams do, the last event carries the end of
    // the text with the finish reason and usage; every event has a part with text.
    let mock = crate::support::wire::chat_mock_with_usage(Duration::ZERO);
    let p = Wire::Chat.serving(&mock, "m");
    for url in [
        Wire::Gemini.url("m", true),
        "/v1beta/models/m:streamGenerateContent".to_string(),
    ] {
        let s = p.stream(&url, Wire::Gemini.request("m", true, false));
        assert_eq!(s.status, 200, "{}", s.text());
        let events: Vec<Value> = if url.contains("alt=sse") {
            s.data()
                .iter()
                .map(|d| serde_json::from_str(d).unwrap())
                .collect()
        } else {
            serde_json::from_str(&s.text()).unwrap()
        };
        let mut text = String::new();
        for v in &events {
            let parts = v["candidates"][0]["content"]["parts"].as_array();
            assert!(parts.is_some_and(|p| !p.is_empty()), "{url}: {v}");
            for part in parts.into_iter().flatten() {
                let t = part["text"].as_str().unwrap_or_default();
                assert!(!t.is_empty(), "{url}: an empty text part: {v}");
                text.push_str(t);
            }
        }
        assert_eq!(text, "Hello there", "{url}");
        let last = events.last().unwrap();
        assert_eq!(
            last["candidates"][0]["finishReason"], "STOP",
            "{url}: {last}"
        );
        assert_eq!(
            last["usageMetadata"]["totalTokenCount"], 15,
            "{url}: {last}"
        );
    }
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

#[test]
fn reasoning_codex_got_from_a_chat_source_reaches_no_responses_source() {
    // A chat source's reasoning text reaches Codex as a reasoning item, which Codex gives
    // back with its next turn. OpenAI (store false) refuses a reasoning item without
    // encrypted content it made, so the item must not reach a Responses source; the
    // other sources take the turn as before.
    let call = json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}});
    let chat = MockUpstream::start(move |req| {
        if body_of(req)["stream"] != json!(true) {
            let message = json!({"role": "assistant", "content": null,
                "reasoning_content": "I should call the tool.", "tool_calls": [call]});
            return Reply::json(
                200,
                json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "l",
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}),
            );
        }
        let mut streamed = call.clone();
        streamed["index"] = json!(0);
        chat_sse(
            &[
                json!({"role": "assistant", "reasoning_content": "I should call the tool."}),
                json!({"tool_calls": [streamed]}),
            ],
            "tool_calls",
        )
    });
    let answers = |wire: Wire| {
        MockUpstream::start(move |req| wire.reply(body_of(req)["stream"] == json!(true), false))
    };
    let (responses, claude) = (answers(Wire::Responses), answers(Wire::Anthropic));
    let p = sources(&[
        ("local", Wire::Chat, &chat, "l"),
        ("codex", Wire::Responses, &responses, "x"),
        ("claude", Wire::Anthropic, &claude, "c"),
    ]);
    let tools =
        json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
    let ask = json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather in Paris?"}]});
    let req = |model: &str, stream: bool, input: Value| {
        json!({"model": model, "stream": stream, "store": false, "include": ["reasoning.encrypted_content"],
            "input": input, "tools": tools})
    };
    for stream in [true, false] {
        let items = responses_items(&p, stream, req("l", stream, json!([ask])));
        let [reasoning, call] = &items[..] else {
            panic!("stream {stream}: expected a reasoning item and a call: {items:?}");
        };
        assert_eq!(reasoning["type"], "reasoning", "{reasoning}");
        assert_eq!(reasoning["summary"][0]["text"], "I should call the tool.");
        let output =
            json!({"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"});
        let input = json!([ask, reasoning, call, output]);
        for model in ["x", "c", "l"] {
            responses_items(&p, stream, req(model, stream, input.clone()));
        }
        let sent = responses.requests().last().map(body_of).expect("asked");
        assert_eq!(
            input_kinds(&sent),
            ["message", "function_call", "function_call_output"],
            "stream {stream}: {sent}"
        );
    }
}

/// A Responses source (gpt-5) that reasons, encrypted, then calls `get_weather`:
/// streamed or whole, as asked.
fn openai_reasons_then_calls() -> MockUpstream {
    let reasoning = json!({"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAA-test",
        "summary": [{"type": "summary_text", "text": "Need the weather."}]});
    let call = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
        "arguments": "{\"city\":\"Paris\"}", "status": "completed"});
    let body = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "m",
        "output": [reasoning, call], "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}});
    MockUpstream::start(move |req| {
        if body_of(req)["stream"] != json!(true) {
            return Reply::json(200, body.clone());
        }
        let events = [
            json!({"type": "response.created", "response": {"id": "resp_1", "created_at": 1, "status": "in_progress", "model": "m", "output": []}}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "Need the weather."}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": reasoning}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "", "status": "in_progress"}}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": "{\"city\":\"Paris\"}"}),
            json!({"type": "response.output_item.done", "output_index": 1, "item": call}),
            json!({"type": "response.completed", "response": body}),
        ];
        let events = events
            .iter()
            .enumerate()
            .map(|(n, e)| {
                let mut e = e.clone();
                e["sequence_number"] = json!(n);
                format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())
            })
            .collect();
        Reply::Sse(events, Duration::ZERO)
    })
}

#[test]
fn openais_encrypted_reasoning_survives_a_chat_clients_tool_loop() {
    // Not stored (store false), gpt-5's reasoning reaches the next turn of a tool loop
    // only as the encrypted content of its reasoning item. A chat client gets it as
    // OpenRouter's `reasoning_details` and gives it back; the source gets it back as
    // that reasoning item, before the call it led to.
    for stream in [true, false] {
        let mock = openai_reasons_then_calls();
        let p = sources(&[("openai", Wire::Responses, &mock, "m")]);
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
        let ask = json!({"role": "user", "content": "weather in Paris?"});
        let first = json!({"model": "m", "stream": stream, "messages": [ask], "reasoning_effort": "medium", "tools": tools});
        let (mut details, mut calls) = (Vec::new(), Vec::new());
        if stream {
            let s = p.stream(&Wire::Chat.url("m", true), first);
            assert_eq!(s.status, 200, "{}", s.text());
            for v in s
                .data()
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            {
                let delta = &v["choices"][0]["delta"];
                let list = |key: &str| delta[key].as_array().cloned().unwrap_or_default();
                details.extend(list("reasoning_details"));
                calls.extend(list("tool_calls"));
            }
        } else {
            let resp = p.post(&Wire::Chat.url("m", false), first);
            let message = &resp.json()["choices"][0]["message"];
            assert_eq!(
                message["reasoning_content"], "Need the weather.",
                "{message}"
            );
            details = message["reasoning_details"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            calls = message["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        let [detail] = &details[..] else {
            panic!("stream {stream}: expected one reasoning detail: {details:?}");
        };
        assert_eq!(detail["type"], "reasoning.encrypted", "{detail}");
        assert_eq!(detail["data"], "gAAAA-test", "{detail}");
        assert_eq!(detail["format"], "openai-responses-v1", "{detail}");
        assert_eq!(calls[0]["id"], "call_1", "stream {stream}: {calls:?}");
        // An effort was asked: the source was asked for its reasoning encrypted too.
        let asked = posted(&mock)[0].clone();
        assert_eq!(
            asked["include"],
            json!(["reasoning.encrypted_content"]),
            "{asked}"
        );

        let call = json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}});
        let turn = json!({"role": "assistant", "content": null, "reasoning_details": details, "tool_calls": [call]});
        let result = json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"});
        let second = json!({"model": "m", "stream": stream, "messages": [ask, turn, result], "reasoning_effort": "medium", "tools": tools});
        let status = if stream {
            p.stream(&Wire::Chat.url("m", true), second).status
        } else {
            p.post(&Wire::Chat.url("m", false), second).status
        };
        assert_eq!(status, 200);
        let sent = posted(&mock)[1].clone();
        let input = sent["input"].as_array().unwrap();
        let kinds: Vec<&str> = input.iter().filter_map(|i| i["type"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "message",
                "reasoning",
                "function_call",
                "function_call_output"
            ],
            "stream {stream}: {sent}"
        );
        assert_eq!(
            input[1],
            json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-test"}),
            "stream {stream}: {sent}"
        );

        // aider keeps no `reasoning_details`: its turn comes without them, and OpenAI
        // gets the reasoning back all the same, kept for the call it led to.
        let turn = json!({"role": "assistant", "content": null, "tool_calls": [call]});
        let third = json!({"model": "m", "messages": [ask, turn, result], "reasoning_effort": "medium", "tools": tools});
        assert_eq!(p.post(&Wire::Chat.url("m", false), third).status, 200);
        let again = posted(&mock)[2].clone();
        assert_eq!(again["input"], sent["input"], "stream {stream}: {again}");
    }
}

#[test]
fn openais_encrypted_reasoning_survives_claude_codes_loop() {
    // Claude Code gets OpenAI's reasoning as a thinking block marked as not Claude's,
    // which cannot carry it; its next turn gets it back from what Routeplane kept.
    let mock = openai_reasons_then_calls();
    let p = sources(&[("openai", Wire::Responses, &mock, "m")]);
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let ask = json!({"role": "user", "content": "weather in Paris?"});
    let thinking = json!({"type": "enabled", "budget_tokens": 2048});
    let first = json!({"model": "m", "max_tokens": 4096, "messages": [ask], "thinking": thinking, "tools": tools});
    let resp = p.post(&Wire::Anthropic.url("m", false), first);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let content = resp.json()["content"].clone();
    assert_eq!(content[0]["type"], "thinking", "{content}");
    assert_eq!(content[1]["id"], "call_1", "{content}");
    let result = json!({"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"});
    let second = json!({"model": "m", "max_tokens": 4096, "thinking": thinking, "tools": tools,
        "messages": [ask, {"role": "assistant", "content": content}, {"role": "user", "content": [result]}]});
    let resp = p.post(&Wire::Anthropic.url("m", false), second);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = posted(&mock)[1].clone();
    assert_eq!(
        input_kinds(&sent),
        [
            "message",
            "reasoning",
            "function_call",
            "function_call_output"
        ],
        "{sent}"
    );
    assert_eq!(
        sent["input"][1]["encrypted_content"], "gAAAA-test",
        "{sent}"
    );
}

#[test]
fn a_responses_model_that_reasons_unasked_is_asked_for_its_reasoning() {
    // aider asks no effort; gpt-5 reasons all the same, and its reasoning reaches the
    // next turn only if asked for encrypted. gpt-4o would refuse the ask.
    for (model, asked) in [("gpt-5", true), ("gpt-4o", false)] {
        let (mock, p) = setup_model(Wire::Responses, Wire::Responses.reply(false, false), model);
        let req = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let resp = p.post(&Wire::Chat.url(model, false), req);
        assert_eq!(resp.status, 200, "{model}: {}", resp.body);
        let sent = body_of(&mock.requests()[0]);
        let include = json!(["reasoning.encrypted_content"]);
        assert_eq!(sent["include"] == include, asked, "{model}: {sent}");
    }
}

#[test]
fn item_ids_routeplane_made_never_reach_a_responses_source() {
    // A Responses client answered by a chat source (translated) keeps the ids Routeplane
    // made for that answer's items and sends them back. When the next turn goes to a
    // Responses source, those ids are taken out first: that source never stored them
    // and would refuse the whole request. Its own ids stay.
    let chat = MockUpstream::start(|req| Wire::Chat.reply(req.json()["stream"] == true, true));
    let responses = MockUpstream::start(|req| {
        let body = req.json();
        let foreign = body["input"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["id"].as_str())
            .find(|id| *id != "msg_68real");
        match foreign {
            Some(id) => Reply::json(
                404,
                json!({"error": {"message": format!("Item with id '{id}' not found."), "type": "invalid_request_error"}}),
            ),
            None => Wire::Responses.reply(false, false),
        }
    });
    let p = Proxy::start(&format!(
        "providers:\n  c:\n    api_base: {}\n    models: [m]\n  r:\n    api_base: {}\n    api_protocol: responses\n    models: [m]\n",
        chat.url(),
        responses.url()
    ));
    for stream in [false, true] {
        let first = p.stream(
            &Wire::Responses.url("c:m", stream),
            json!({"model": "c:m", "stream": stream, "input": [user_item("weather?")],
                "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}),
        );
        assert_eq!(first.status, 200, "{}", first.text());
        // The items the client was answered with, as it keeps them.
        let output: Vec<Value> = if stream {
            first
                .data()
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter(|e| e["type"] == "response.output_item.done")
                .map(|e| e["item"].clone())
                .collect()
        } else {
            serde_json::from_str::<Value>(&first.text()).unwrap()["output"]
                .as_array()
                .unwrap()
                .clone()
        };
        assert!(!output.is_empty(), "stream {stream}: {}", first.text());
        assert!(output.iter().all(|i| i["id"].is_string()), "{output:?}");
        let mut input = vec![
            json!({"type": "message", "id": "msg_68real", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}),
            user_item("weather?"),
        ];
        input.extend(output.iter().cloned());
        let call_id = output
            .iter()
            .find(|i| i["type"] == "function_call")
            .unwrap()["call_id"]
            .clone();
        input.push(json!({"type": "function_call_output", "call_id": call_id, "output": "sunny"}));
        let before = responses.count();
        let resp = p.post(
            &Wire::Responses.url("r:m", false),
            json!({"model": "r:m", "input": input}),
        );
        assert_eq!(resp.status, 200, "stream {stream}: {}", resp.body);
        assert_eq!(
            responses.count(),
            before + 1,
            "stream {stream}: not refused first"
        );
        let sent = body_of(&responses.requests()[before]);
        let ids: Vec<&str> = sent["input"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        assert_eq!(ids, ["msg_68real"], "stream {stream}: {sent}");
        assert_eq!(
            sent["input"].as_array().unwrap().len(),
            input.len(),
            "every item is still there, inline"
        );
    }
}

#[test]
fn references_to_items_routeplane_made_take_a_tool_loop_to_any_source() {
    // The AI SDK's OpenAI provider (store left on) gives an answer's reasoning and text
    // back as `item_reference`s to the ids Routeplane made for them. No source stored
    // those: the references go, and the loop's next step reaches a chat or an
    // Anthropic source with the call and its output, instead of a 400.
    let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "reasoning_content": "hmm", "content": "Let me look.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}]});
    let chat =
        MockUpstream::start(
            move |req| match req.json()["messages"].as_array().unwrap().len() {
                1 => Reply::json(200, answer.clone()),
                _ => Wire::Chat.reply(false, false),
            },
        );
    let claude = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let p = Proxy::start(&format!(
        "providers:\n  c:\n    api_base: {}\n    models: [m]\n  a:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n",
        chat.url(),
        claude.url()
    ));
    let tools =
        json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
    let output = responses_items(
        &p,
        false,
        json!({"model": "c:m", "input": [user_item("weather?")], "tools": tools}),
    );
    assert_eq!(
        output
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["reasoning", "message", "function_call"]
    );
    // As the AI SDK sends the next step: references, then the call inline, then its output.
    let mut input = vec![user_item("weather?")];
    for item in &output[..2] {
        input.push(json!({"type": "item_reference", "id": item["id"]}));
    }
    input.push(output[2].clone());
    input.push(json!({"type": "function_call_output", "call_id": "call_1", "output": "sunny"}));
    for (model, mock) in [("c:m", &chat), ("a:m", &claude)] {
        let resp = p.post(
            &Wire::Responses.url(model, false),
            json!({"model": model, "input": input, "tools": tools}),
        );
        assert_eq!(resp.status, 200, "{model}: {}", resp.body);
        assert_eq!(
            resp.json()["output"][0]["content"][0]["text"],
            "Hello there"
        );
        let sent = mock.posts().last().unwrap().json();
        let roles: Vec<&str> = sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        let expected: &[&str] = match model {
            "c:m" => &["user", "assistant", "tool"],
            _ => &["user", "assistant", "user"],
        };
        assert_eq!(roles, expected, "{model}: {sent}");
    }
}

#[test]
fn item_ids_a_responses_source_never_stored_are_left_out_when_it_says_so() {
    // A Responses client keeps the ids of the items it was answered with and sends them
    // back. Ids Routeplane made for a translated answer (`msg_…`, `fc_…`), or ids of
    // another account's items, name nothing a source can look up, and OpenAI refuses
    // the whole request. It is asked again at once with the same items, inline, and no
    // ids (an id-only reasoning item says nothing without its id, and goes).
    let mock = MockUpstream::start(|req| {
        let body = req.json();
        let ids: Vec<&str> = body["input"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["id"].as_str())
            .collect();
        match ids.first() {
            Some(id) => Reply::json(
                404,
                json!({"error": {"message": format!("Item with id '{id}' not found. Items are not persisted when `store` is set to false. Try again with `store` set to true, or remove this item from your input."),
                    "type": "invalid_request_error", "param": "input", "code": null}}),
            ),
            None => Wire::Responses.reply(false, false),
        }
    });
    let p = Wire::Responses.serving(&mock, "m");
    let input = json!([
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": null},
        {"type": "function_call", "id": "fc_call_a", "call_id": "call_a", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
        {"type": "message", "id": "msg_chatcmpl-1", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and Rome?"}]},
    ]);
    let resp = p.post(
        &Wire::Responses.url("m", false),
        json!({"model": "m", "store": false, "input": input}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let line = p.wait_log("status=200");
    assert!(line.contains("tried=up:m→404:foreign,up:m→200"), "{line}");
    let again = body_of(&mock.requests()[1]);
    assert_eq!(
        input_kinds(&again),
        [
            "message",
            "function_call",
            "function_call_output",
            "message",
            "message"
        ],
        "{again}"
    );
    assert_eq!(again["input"][1]["call_id"], "call_a");
    assert_eq!(again["input"][3]["content"][0]["text"], "Sunny.");
}

#[test]
fn a_sessions_later_turns_leave_out_item_ids_another_account_made_at_once() {
    // The same, for a client that sends back its items' ids and no reasoning: the ids
    // another account made were refused on every later turn, each a refused request.
    let mock = MockUpstream::start(|req| {
        if String::from_utf8_lossy(&req.body).contains("msg_other") {
            return Reply::json(
                404,
                json!({"error": {"message": "Item with id 'msg_other' not found. Items are not persisted when `store` is set to false.",
                    "type": "invalid_request_error", "param": "input", "code": null}}),
            );
        }
        Wire::Responses.reply(false, false)
    });
    let p = Wire::Responses.serving(&mock, "m");
    let mut input = vec![
        user_item("weather?"),
        json!({"type": "message", "id": "msg_other", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]}),
        user_item("and Rome?"),
    ];
    let turn = |input: &[Value]| bodies_sent(&p, &mock, input);
    assert_eq!(turn(&input).len(), 2, "refused, then asked without ids");
    input.extend([
        json!({"type": "message", "id": "msg_mine", "role": "assistant", "content": [{"type": "output_text", "text": "Rain."}]}),
        user_item("and Oslo?"),
    ]);
    let sent = turn(&input);
    assert_eq!(sent.len(), 1, "asked once, without the ids");
    assert!(!sent[0].to_string().contains("msg_other"), "{}", sent[0]);
    assert_eq!(sent[0]["input"][1]["content"][0]["text"], "Sunny.");
    // Another session, whose ids were never refused, is copied as it came.
    copied_byte_for_byte(
        &p,
        &mock,
        json!([user_item("hi"), {"type": "message", "id": "msg_new", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello."}]}, user_item("again")]),
    );
}

#[test]
fn a_sessions_later_turns_leave_out_reasoning_another_account_encrypted_at_once() {
    // After a failover between accounts, the client sends the other account's reasoning
    // on every later turn. Refused once, it is left out of that session's later requests
    // from the first try, not after a refused request each turn.
    let refusal = json!({"error": {"message": "The encrypted content for item rs_a could not be verified.",
        "type": "invalid_request_error", "code": "invalid_encrypted_content"}});
    let mock = MockUpstream::start(move |req| {
        if String::from_utf8_lossy(&req.body).contains("gAAAA-other") {
            return Reply::json(400, refusal.clone());
        }
        Wire::Responses.reply(false, false)
    });
    let p = Wire::Responses.serving(&mock, "m");
    let mut input = vec![
        user_item("weather?"),
        json!({"type": "reasoning", "id": "rs_a", "summary": [], "encrypted_content": "gAAAA-other"}),
        json!({"type": "function_call", "id": "fc_a", "call_id": "call_a", "name": "get_weather", "arguments": "{}"}),
        json!({"type": "function_call_output", "call_id": "call_a", "output": "sunny"}),
    ];
    let turn = |input: &[Value]| bodies_sent(&p, &mock, input);
    assert_eq!(turn(&input).len(), 2, "refused, then asked without it");
    // The next question: asked once, without the other account's reasoning.
    input.extend([
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]}),
        user_item("and Rome?"),
    ]);
    let sent = turn(&input);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        input_kinds(&sent[0]),
        [
            "message",
            "function_call",
            "function_call_output",
            "message",
            "message"
        ],
        "{}",
        sent[0]
    );
    // The new tool loop's reasoning, this account's own, goes as it came.
    input.extend([
        json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-mine"}),
        json!({"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{}"}),
        json!({"type": "function_call_output", "call_id": "call_b", "output": "rain"}),
    ]);
    let sent = turn(&input);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["input"][5]["encrypted_content"], "gAAAA-mine",
        "{}",
        sent[0]
    );
    assert!(!sent[0].to_string().contains("gAAAA-other"));
    // Another session, which never held the other account's reasoning, is copied as it came.
    copied_byte_for_byte(
        &p,
        &mock,
        json!([user_item("hi"), {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-mine-2"},
            user_item("again")]),
    );
}

#[test]
fn reasoning_another_account_encrypted_is_left_out_when_refused() {
    // Failover moved a Codex session from one account to another: the second cannot
    // read the first's encrypted reasoning and refuses the whole request. It is asked
    // again at once without the reasoning (and without the item ids, which only the
    // first account could look up).
    let refusal = json!({"error": {"message": "The encrypted content for item rs_a could not be verified. Reason: Encrypted content could not be decrypted or parsed.",
        "type": "invalid_request_error", "param": null, "code": "invalid_encrypted_content"}});
    let mock = MockUpstream::start(move |req| {
        if String::from_utf8_lossy(&req.body).contains("gAAAA-other") {
            return Reply::json(400, refusal.clone());
        }
        Wire::Responses.reply(req.json()["stream"] == true, false)
    });
    // A proxy per case: each is the first turn to meet the other account's reasoning
    // (later turns of the same session leave it out at once; see the next test).
    let fresh = || Wire::Responses.serving(&mock, "m");
    let input = json!([
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "reasoning", "id": "rs_a", "summary": [], "encrypted_content": "gAAAA-other"},
        {"type": "function_call", "id": "fc_a", "call_id": "call_a", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
    ]);
    for stream in [false, true] {
        let p = fresh();
        let req = json!({"model": "m", "store": false, "stream": stream, "input": input});
        let s = p.stream(&Wire::Responses.url("m", stream), req);
        assert_eq!(s.status, 200, "stream {stream}: {}", s.text());
        let line = p.wait_log("status=200");
        assert!(line.contains("tried=up:m→400:foreign,up:m→200"), "{line}");
    }
    let again = body_of(&mock.requests()[1]);
    assert_eq!(
        input_kinds(&again),
        ["message", "function_call", "function_call_output"],
        "{again}"
    );
    assert!(again["input"][1].get("id").is_none(), "{again}");
    assert_eq!(again["input"][1]["call_id"], "call_a", "{again}");
    // Another account's reasoning before the last question goes first: this account's,
    // in the tool loop since, stays.
    let mut longer = input.as_array().unwrap().clone();
    longer.extend([
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and Rome?"}]}),
        json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-mine"}),
        json!({"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{}"}),
        json!({"type": "function_call_output", "call_id": "call_b", "output": "rain"}),
    ]);
    let sent = bodies_sent(&fresh(), &mock, &longer);
    assert_eq!(sent.len(), 2);
    let again = &sent[1];
    assert_eq!(
        input_kinds(again),
        [
            "message",
            "function_call",
            "function_call_output",
            "message",
            "reasoning",
            "function_call",
            "function_call_output"
        ],
        "{again}"
    );
    assert_eq!(
        again["input"][4]["encrypted_content"], "gAAAA-mine",
        "{again}"
    );
    // Failover in the middle of a tool loop: the loop's reasoning is the other
    // account's too, and goes when the first leaves it refused.
    longer[5]["encrypted_content"] = json!("gAAAA-other-2");
    let sent = bodies_sent(&fresh(), &mock, &longer);
    assert_eq!(sent.len(), 3);
    let last = &sent[2];
    assert_eq!(
        input_kinds(last),
        [
            "message",
            "function_call",
            "function_call_output",
            "message",
            "function_call",
            "function_call_output"
        ],
        "{last}"
    );
    // The same from a chat client, whose history carries the reasoning as details.
    let detail = json!({"type": "reasoning.encrypted", "data": "gAAAA-other", "id": "rs_a", "format": "openai-responses-v1"});
    let chat = json!({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "reasoning_details": [detail],
            "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    ]});
    let before = mock.count();
    let p = fresh();
    let resp = p.post(&Wire::Chat.url("m", false), chat);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let again = body_of(&mock.requests()[before + 1]);
    assert_eq!(
        input_kinds(&again),
        ["message", "function_call", "function_call_output"],
        "{again}"
    );
    // Refused again without any reasoning, the refusal reaches the client.
    let stubborn = MockUpstream::always(Reply::json(
        400,
        json!({"error": {"message": "x", "code": "invalid_encrypted_content"}}),
    ));
    let p = Wire::Responses.serving(&stubborn, "m");
    let resp = p.post(
        &Wire::Responses.url("m", false),
        json!({"model": "m", "input": input}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(stubborn.count(), 2);
}

#[test]
fn reasoning_kept_for_a_client_is_let_go_when_another_account_refuses_it() {
    // aider's loop began on one OpenAI account; failover moved it to another, which
    // cannot read what the first encrypted. What Routeplane kept for aider is refused
    // once, asked again without, and then let go: the next turn is asked once.
    let first = openai_reasons_then_calls();
    let other = MockUpstream::start(|req| {
        if String::from_utf8_lossy(&req.body).contains("gAAAA-test") {
            let refusal = json!({"error": {"message": "The encrypted content could not be verified.",
                "type": "invalid_request_error", "code": "invalid_encrypted_content"}});
            return Reply::json(400, refusal);
        }
        Wire::Responses.reply(false, false)
    });
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let ask = json!({"role": "user", "content": "weather in Paris?"});
    let p = sources(&[("openai", Wire::Responses, &first, "m")]);
    let resp = p.post(
        &Wire::Chat.url("m", false),
        json!({"model": "m", "messages": [ask], "tools": tools}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    // The same proxy's config now points `openai` at the other account.
    p.dir.write(
        "routeplane.yaml",
        &format!("providers:\n  openai: {{api_base: {}, api_protocol: responses, api_key: k, models: [m]}}\n", other.url()),
    );
    p.signal("HUP");
    p.wait_log("reloaded config");
    let call = json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}});
    let turn = json!({"role": "assistant", "content": null, "tool_calls": [call]});
    let result = json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"});
    let again = json!({"model": "m", "messages": [ask, turn, result], "tools": tools});
    for asked in [2, 1] {
        let before = other.count();
        let resp = p.post(&Wire::Chat.url("m", false), again.clone());
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert_eq!(
            other.count() - before,
            asked,
            "requests upstream for this turn"
        );
    }
}

#[test]
fn openais_encrypted_reasoning_reaches_no_other_source_or_client() {
    // What OpenAI encrypted it alone reads (and OpenRouter, which carries it on):
    // Anthropic and Gemini never see it, and an Anthropic or Gemini client's answer has
    // no place for it.
    let openai = openai_reasons_then_calls();
    let (claude, gemini, openrouter) = (
        MockUpstream::always(Wire::Anthropic.reply(false, false)),
        MockUpstream::always(Wire::Gemini.reply(false, false)),
        MockUpstream::always(Wire::Chat.reply(false, false)),
    );
    let p = sources(&[
        ("gpt", Wire::Responses, &openai, "o"),
        ("claude", Wire::Anthropic, &claude, "c"),
        ("google", Wire::Gemini, &gemini, "g"),
        ("openrouter", Wire::Chat, &openrouter, "r"),
    ]);
    let detail = json!({"type": "reasoning.encrypted", "data": "gAAAA-test", "id": "rs_1", "format": "openai-responses-v1"});
    let call = json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}});
    let messages = json!([
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "reasoning_details": [detail], "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]);
    for (model, mock) in [("c", &claude), ("g", &gemini), ("r", &openrouter)] {
        let resp = p.post(
            &Wire::Chat.url(model, false),
            json!({"model": model, "messages": messages}),
        );
        assert_eq!(resp.status, 200, "{model}: {}", resp.body);
        let asked = mock.posts().into_iter().next();
        let sent = String::from_utf8_lossy(&asked.expect("asked").body).into_owned();
        assert_eq!(sent.contains("gAAAA-test"), model == "r", "{model}: {sent}");
    }
    for (wire, stream) in [
        (Wire::Anthropic, true),
        (Wire::Anthropic, false),
        (Wire::Gemini, true),
        (Wire::Gemini, false),
    ] {
        let req = wire.request("o", stream, true);
        let got = if stream {
            let s = p.stream(&wire.url("o", true), req);
            assert_eq!(s.status, 200, "{wire:?}: {}", s.text());
            let answer = wire.read_stream(&s);
            assert!(answer.ended, "{wire:?}: {}", s.text());
            assert_eq!(answer.tools.len(), 1, "{wire:?}: {}", s.text());
            s.text()
        } else {
            let resp = p.post(&wire.url("o", false), req);
            assert_eq!(resp.status, 200, "{wire:?}: {}", resp.body);
            assert_eq!(wire.read(&resp).tools.len(), 1, "{wire:?}: {}", resp.body);
            resp.body
        };
        assert!(!got.contains("gAAAA-test"), "{wire:?}: {got}");
    }
}

#[test]
fn reasoning_details_a_chat_client_gives_back_reach_only_openrouter() {
    // A Chat client keeps the details Claude's thinking came with and sends them back.
    // When failover gives that turn to a Chat source, its history is copied as is:
    // OpenRouter carries the details to Claude; any other Chat source (DeepSeek, say)
    // refuses a message field it does not know, so they are taken out for it.
    let local = MockUpstream::always(Wire::Chat.reply(false, false));
    let openrouter = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = sources(&[
        ("local", Wire::Chat, &local, "l"),
        ("openrouter", Wire::Chat, &openrouter, "r"),
    ]);
    let detail = json!({"type": "reasoning.text", "text": "Need a.rs.", "signature": "sig-1", "format": "anthropic-claude-v1"});
    let messages = json!([
        {"role": "user", "content": "read a.rs"},
        {"role": "assistant", "content": null, "reasoning_details": [detail],
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "read", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "fn main() {}"},
    ]);
    for (model, mock, kept) in [("l", &local, false), ("r", &openrouter, true)] {
        let req = json!({"model": model, "messages": messages});
        let resp = p.post(&Wire::Chat.url(model, false), req);
        assert_eq!(resp.status, 200, "{model}: {}", resp.body);
        let asked = mock.posts().into_iter().next();
        let sent = asked.expect("asked").json();
        let turn = &sent["messages"][1];
        assert_eq!(
            turn["reasoning_details"].is_array(),
            kept,
            "{model}: {sent}"
        );
        assert_eq!(turn["tool_calls"][0]["id"], "toolu_1", "{model}: {sent}");
    }
}

#[test]
fn kimis_tool_ids_reach_claude_code_in_a_form_claude_takes_and_go_back_to_kimi_as_they_were() {
    // Kimi names its calls `functions.get_weather:0`, which Anthropic refuses. Claude
    // Code keeps what it got; when failover sends that history to Claude as it came,
    // the id must be one Claude takes, and Kimi must still get its own back.
    const KIMI: &str = "functions.read:0";
    let ids = claude_code_tool_loop(KIMI, true);
    assert!(ids[0].starts_with("rpid_"), "{ids:?}");
}

#[test]
fn a_tool_id_too_long_for_claude_reaches_claude_code_bounded_and_goes_back_as_claude_code_has_it() {
    // An MCP tool's call from Kimi escapes past the 64 characters Anthropic takes: it
    // reaches Claude Code shortened with a hash, the same streamed or not, and so the
    // same on every turn. It cannot be decoded, so Kimi gets it back as Claude Code
    // has it, in the call and in its result alike.
    for kimi in [
        "functions.mcp__github__create_pull_request:12",
        &"call_0123456789".repeat(6),
    ] {
        let ids = claude_code_tool_loop(kimi, false);
        assert_eq!(ids[0], ids[1], "{kimi}");
    }
}

/// Claude Code's tool loop with Kimi calling `read` as `kimi_id`, streamed and not:
/// checks that the id Claude Code got is one Claude takes, that the next turn carries
/// it to Claude as it came and to Kimi as `kimi_id` when `reversible`, in the call and
/// its result alike (else only alike). The ids Claude Code got, streamed then not.
fn claude_code_tool_loop(kimi_id: &str, reversible: bool) -> Vec<String> {
    let call = json!({"index": 0, "id": kimi_id, "type": "function", "function": {"name": "read", "arguments": "{}"}});
    let mut got = Vec::new();
    for stream in [true, false] {
        let kimi = MockUpstream::always(if stream {
            chat_sse(
                &[json!({"role": "assistant", "tool_calls": [call]})],
                "tool_calls",
            )
        } else {
            let mut whole = call.clone();
            whole.as_object_mut().unwrap().remove("index");
            Reply::json(
                200,
                json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "k",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [whole]}, "finish_reason": "tool_calls"}]}),
            )
        });
        let claude = MockUpstream::always(Wire::Anthropic.reply(false, false));
        let p = sources(&[
            ("kimi", Wire::Chat, &kimi, "k"),
            ("claude", Wire::Anthropic, &claude, "c"),
        ]);
        let tools = json!([{"name": "read", "input_schema": {"type": "object"}}]);
        let ask = json!({"role": "user", "content": "read a.rs"});
        let first = json!({"model": "k", "max_tokens": 100, "stream": stream, "messages": [ask], "tools": tools});
        let content = anthropic_answer(&p, stream, first);
        let id = content.last().unwrap()["id"].as_str().unwrap().to_string();
        let taken = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        let claude_takes = (1..=64).contains(&id.len()) && id.bytes().all(taken);
        assert!(claude_takes, "stream {stream}: {id}");

        let turn = json!({"role": "assistant", "content": content});
        let result = json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "x"}]});
        for (model, mock) in [("c", &claude), ("k", &kimi)] {
            // The Kimi mock answers as asked in turn 1; Claude's answers whole.
            let again = stream && model == "k";
            let req = json!({"model": model, "max_tokens": 100, "stream": again,
                "messages": [ask, turn, result], "tools": tools});
            let status = if again {
                p.stream(&Wire::Anthropic.url(model, true), req).status
            } else {
                p.post(&Wire::Anthropic.url(model, false), req).status
            };
            assert_eq!(status, 200, "stream {stream}, {model}");
            let sent = mock.requests().last().unwrap().json();
            let (call_id, result_id) = if model == "c" {
                let m = &sent["messages"];
                (
                    m[1]["content"].as_array().unwrap().last().unwrap()["id"].clone(),
                    m[2]["content"][0]["tool_use_id"].clone(),
                )
            } else {
                let m = &sent["messages"];
                (
                    m[1]["tool_calls"][0]["id"].clone(),
                    m[2]["tool_call_id"].clone(),
                )
            };
            let want = match (model, reversible) {
                ("c", _) => json!(id),
                (_, true) => json!(kimi_id),
                // As Claude Code has it, but for the shortening every Chat source's
                // ids get on their way (to OpenAI's 40 characters).
                _ => call_id.clone(),
            };
            assert!(want.is_string(), "stream {stream}, {model}: {sent}");
            assert_eq!(
                (&call_id, &result_id),
                (&want, &want),
                "stream {stream}, {model}: {sent}"
            );
        }
        got.push(id);
    }
    got
}

#[test]
fn tool_ids_claude_would_refuse_reach_it_apart_and_paired() {
    // A Chat client's history from other sources: Kimi's `functions.read:0` and an id
    // that only differs from it in what Claude refuses, and two long ids alike in their
    // first 64 characters. Claude gets ids it takes, a different one for each call,
    // each call's result under its call's id.
    let claude = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let p = Wire::Anthropic.serving(&claude, "c");
    let long = "call_".repeat(13);
    let ids = [
        "functions.read:0".to_string(),
        "functions_read_0".to_string(),
        format!("{long}a"),
        format!("{long}b"),
    ];
    let call = |id: &String| json!({"id": id, "type": "function", "function": {"name": "read", "arguments": "{}"}});
    let mut messages = vec![
        json!({"role": "user", "content": "read a.rs"}),
        json!({"role": "assistant", "content": null, "tool_calls": ids.iter().map(call).collect::<Vec<_>>()}),
    ];
    for id in &ids {
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": id}));
    }
    let resp = p.post(
        &Wire::Chat.url("c", false),
        json!({"model": "c", "messages": messages}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = claude.requests().last().unwrap().json();
    let m = &sent["messages"];
    let calls: Vec<&str> = m[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    let taken = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    for id in &calls {
        assert!(id.len() <= 64 && id.bytes().all(taken), "{id}: {sent}");
    }
    assert_eq!(calls[1], "functions_read_0", "{sent}");
    let apart: std::collections::HashSet<_> = calls.iter().collect();
    assert_eq!((calls.len(), apart.len()), (4, 4), "{sent}");
    // The results are one user turn; each names its call and carries its old id.
    let results = m[2]["content"].as_array().unwrap();
    for (n, result) in results.iter().enumerate() {
        assert_eq!(result["tool_use_id"], calls[n], "{sent}");
        assert_eq!(result["content"], ids[n].as_str(), "{sent}");
    }
}

#[test]
fn an_answer_to_a_gemini_client_has_no_empty_text_part() {
    // A client keeps an answer's content as history and sends it back, and Gemini
    // refuses an empty text part. An answer with nothing in it is a content without
    // parts, streamed or not, as Gemini's own; one of only calls has no text part.
    let call = json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}});
    let whole = |message: Value, finish: &str| {
        Reply::json(
            200,
            json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}]}),
        )
    };
    let mut streamed_call = call.clone();
    streamed_call["index"] = json!(0);
    let cases = [
        (
            whole(json!({"role": "assistant", "content": ""}), "stop"),
            chat_sse(&[json!({"role": "assistant", "content": ""})], "stop"),
            0,
        ),
        (
            whole(
                json!({"role": "assistant", "content": "", "tool_calls": [call]}),
                "tool_calls",
            ),
            chat_sse(
                &[json!({"role": "assistant", "content": "", "tool_calls": [streamed_call]})],
                "tool_calls",
            ),
            1,
        ),
    ];
    for (answer, events, calls) in cases {
        for stream in [false, true] {
            let reply = if stream {
                events.clone()
            } else {
                answer.clone()
            };
            let mock = MockUpstream::always(reply);
            let p = Wire::Chat.serving(&mock, "m");
            let req = Wire::Gemini.request("m", stream, true);
            let answers = gemini_answers(&p, stream, req);
            let parts: Vec<&Value> = answers
                .iter()
                .flat_map(|a| a["candidates"][0]["content"]["parts"].as_array())
                .flatten()
                .collect();
            assert!(
                parts.iter().all(|p| p.get("text").is_none()),
                "stream {stream}: {answers:?}"
            );
            assert_eq!(parts.len(), calls, "stream {stream}: {answers:?}");
            let last = answers.last().unwrap();
            assert!(
                last["candidates"][0]["finishReason"].is_string(),
                "stream {stream}: {last}"
            );
            if calls == 0 {
                assert_eq!(
                    last["candidates"][0]["content"],
                    json!({"role": "model"}),
                    "stream {stream}: {last}"
                );
            }
        }
    }
}

#[test]
fn a_refusal_stays_a_refusal_between_chat_and_responses() {
    // The SDKs' `parse()` helpers read a refusal from its own field; as text it fails
    // to parse as the schema.
    let said = "I can't help with that.";
    let item = json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
        "content": [{"type": "refusal", "refusal": said}]});
    let whole = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
        "model": "m", "output": [item], "usage": {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}});
    let events = vec![
        named(
            "response.created",
            json!({"type": "response.created", "response": {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": "m", "output": []}}),
        ),
        named(
            "response.output_item.added",
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        named(
            "response.content_part.added",
            json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "refusal", "refusal": ""}}),
        ),
        named(
            "response.refusal.delta",
            json!({"type": "response.refusal.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "I can't "}),
        ),
        named(
            "response.refusal.delta",
            json!({"type": "response.refusal.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "help with that."}),
        ),
        named(
            "response.refusal.done",
            json!({"type": "response.refusal.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "refusal": said}),
        ),
        named(
            "response.output_item.done",
            json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        ),
        named(
            "response.completed",
            json!({"type": "response.completed", "response": whole}),
        ),
    ];
    let up = MockUpstream::start(move |req| {
        if req.json()["stream"] == true {
            Reply::Sse(events.clone(), Duration::ZERO)
        } else {
            Reply::json(200, whole.clone())
        }
    });
    let p = Wire::Responses.serving(&up, "m");
    let ask = |stream: bool| json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let resp = p.post("/v1/chat/completions", ask(false));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let message = &resp.json()["choices"][0]["message"];
    assert_eq!(
        (&message["refusal"], &message["content"]),
        (&json!(said), &Value::Null),
        "{message}"
    );
    let s = p.stream("/v1/chat/completions", ask(true));
    let deltas: Vec<Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .map(|c| c["choices"][0]["delta"].clone())
        .collect();
    let refusal: String = deltas
        .iter()
        .filter_map(|d| d["refusal"].as_str())
        .collect();
    assert_eq!(refusal, said, "{deltas:?}");
    assert!(
        deltas
            .iter()
            .all(|d| d["content"].as_str().is_none_or(str::is_empty)),
        "{deltas:?}"
    );
    // Other clients have no field for one: it is the answer's text.
    let resp = p.post(
        "/v1/messages",
        json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(Wire::Anthropic.read(&resp).text, said);

    // And the other way: a chat source's refusal is a Responses refusal part.
    let answer = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": said}, "finish_reason": "stop"}]});
    let up = MockUpstream::start(move |req| {
        if req.json()["stream"] == true {
            chat_sse(
                &[
                    json!({"role": "assistant", "refusal": ""}),
                    json!({"refusal": "I can't "}),
                    json!({"refusal": "help with that."}),
                ],
                "stop",
            )
        } else {
            Reply::json(200, answer.clone())
        }
    });
    let p = Wire::Chat.serving(&up, "m");
    let ask = |stream: bool| json!({"model": "m", "stream": stream, "input": "hi"});
    let refusal_part = json!([{"type": "refusal", "refusal": said}]);
    let resp = p.post("/v1/responses", ask(false));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json()["output"][0]["content"],
        refusal_part,
        "{}",
        resp.body
    );
    let s = p.stream("/v1/responses", ask(true));
    let output = responses_output(&s);
    assert_eq!(output.len(), 1, "{output:?}");
    assert_eq!(output[0]["content"], refusal_part);
    let events: Vec<Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"response.refusal.done"), "{kinds:?}");
    assert!(!kinds.contains(&"response.output_text.delta"), "{kinds:?}");
    let streamed: String = events
        .iter()
        .filter(|e| e["type"] == "response.refusal.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(streamed, said);
}

#[test]
fn a_refusal_in_the_history_reaches_every_source_as_what_the_model_said() {
    // The SDKs' loop appends the answer's message as it came: a chat `refusal` with no
    // content, or a Responses refusal part. Translated, the turn was dropped.
    let said = "I cannot.";
    let chat_turn = json!({"role": "assistant", "content": null, "refusal": said});
    for up in [Wire::Anthropic, Wire::Responses, Wire::Gemini] {
        let (mock, p) = setup(up, up.reply(false, false));
        let ask = json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"}, chat_turn, {"role": "user", "content": "why?"}]});
        let resp = p.post("/v1/chat/completions", ask);
        assert_eq!(resp.status, 200, "{up:?}: {}", resp.body);
        let sent = mock.posts()[0].json().to_string();
        assert!(sent.contains(said), "{up:?}: {sent}");
    }
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let refused = json!({"type": "message", "role": "assistant",
        "content": [{"type": "refusal", "refusal": said}]});
    let ask = json!({"model": "m", "input": [
        {"role": "user", "content": "hi"}, refused, {"role": "user", "content": "why?"}]});
    let resp = p.post("/v1/responses", ask);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.posts()[0].json();
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": said}),
        "{sent}"
    );
}
