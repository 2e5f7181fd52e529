//! Where reasoning goes: OpenAI's encrypted reasoning back to it through a client's tool
//! loop and to no other source or client, reasoning Codex got from a chat source to no
//! Responses source, a chat client's reasoning details only to OpenRouter.

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
