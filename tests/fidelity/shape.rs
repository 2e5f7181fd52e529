//! Thinking, limits, structured output, cache breakpoints, efforts and Gemini's parts:
//! the shape of a request or an answer survives a translation (refusals are in
//! `refusals.rs`).

use super::*;

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
fn a_malformed_gemini_call_is_asked_again_then_moves_on_whole_or_streamed() {
    // Gemini ends an answer whose function call it could not form with
    // MALFORMED_FUNCTION_CALL and nothing in it: that is no answer. The model samples
    // the call anew when asked again, so it is the source's 502, retried once, then the
    // next endpoint is asked, streamed or not. A whole one was filed `malformed` and not
    // asked again; a streamed one was.
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
        assert_eq!(bad.count(), 2, "stream: {stream}");
        let line = p.wait_log("served_by=c:cm");
        assert!(
            line.contains("tried=g:gm→502,g:gm→502,c:cm→200"),
            "stream: {stream}: {line}"
        );
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
fn a_streamed_responses_answer_is_dated_by_its_source_as_a_whole_one_is() {
    // A streamed answer's `created_at` was the proxy's clock, a whole one's the source's.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let sources = [
        (Wire::Chat, Wire::Chat.reply(true, false), Some(1)),
        // A Responses source that answers a stream whole, as a server that ignores
        // `"stream": true` does: the client still gets a stream.
        (
            Wire::Responses,
            Reply::json(200, Wire::Responses.body(false)),
            Some(1),
        ),
        // Anthropic dates nothing: the time it answered.
        (Wire::Anthropic, Wire::Anthropic.reply(true, false), None),
    ];
    for (up, reply, dated) in sources {
        let (_mock, p) = setup(up, reply);
        let before = now();
        let s = p.stream(
            &Wire::Responses.url("m", true),
            Wire::Responses.request("m", true, false),
        );
        let after = now();
        let dates: Vec<(String, u64)> = s
            .data()
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v["response"].is_object())
            .map(|v| {
                let at = v["response"]["created_at"].as_u64().expect("a date");
                (v["type"].as_str().unwrap().to_string(), at)
            })
            .collect();
        let kinds: Vec<&str> = dates.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.completed"
            ],
            "{up:?}"
        );
        for (kind, at) in &dates {
            match dated {
                Some(when) => assert_eq!(*at, when, "{up:?} {kind}"),
                None => assert!((before..=after).contains(at), "{up:?} {kind}: {at}"),
            }
        }
    }
}
