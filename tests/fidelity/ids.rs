//! Tool-call ids: shortened where a source or client refuses long ones, still paired,
//! and given back to the source that made them as it made them.

use super::*;

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
