//! Signed thinking (Claude's, Gemini's call signatures) survives a tool loop through
//! another client or source, and reaches no source that could not read it.

use super::*;

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
