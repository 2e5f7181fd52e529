//! OpenAI's encrypted reasoning and Responses item ids: kept for the source and account
//! that made them, left out everywhere else.

use super::*;

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
