//! Tools through a translation: schemas and arguments in their key order, tool choices,
//! Codex's free-text custom tools, and a server tool that is not the client's call.

use serde_json::json;

use super::{each_translated_pair, setup};
use crate::support::MockUpstream;
use crate::support::wire::{Wire, named};

/// A JSON schema whose keys are not in alphabetical order at any depth: the order a
/// model fills in an object's fields is the order its schema names them.
const ORDERED_SCHEMA: &str = r#"{"type":"object","properties":{"zeta":{"type":"string","description":"first"},"alpha":{"type":"object","properties":{"yak":{"type":"string"},"bee":{"type":"string"}}}},"required":["zeta","alpha"]}"#;

/// `client`'s request for model `m` as raw bytes (a `Value` would sort the keys before
/// the proxy saw them), with a tool and a structured answer whose schemas are
/// [`ORDERED_SCHEMA`].
fn request_with_ordered_schemas(client: Wire) -> String {
    let s = ORDERED_SCHEMA;
    match client {
        Wire::Chat => format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{s}}}}}],"response_format":{{"type":"json_schema","json_schema":{{"name":"r","schema":{s}}}}}}}"#
        ),
        Wire::Anthropic => format!(
            r#"{{"model":"m","max_tokens":50,"messages":[{{"role":"user","content":"hi"}}],"tools":[{{"name":"f","input_schema":{s}}}],"output_config":{{"format":{{"type":"json_schema","schema":{s}}}}}}}"#
        ),
        Wire::Responses => format!(
            r#"{{"model":"m","input":"hi","tools":[{{"type":"function","name":"f","parameters":{s}}}],"text":{{"format":{{"type":"json_schema","name":"r","schema":{s}}}}}}}"#
        ),
        Wire::Gemini => format!(
            r#"{{"contents":[{{"role":"user","parts":[{{"text":"hi"}}]}}],"tools":[{{"functionDeclarations":[{{"name":"f","parametersJsonSchema":{s}}}]}}],"generationConfig":{{"responseMimeType":"application/json","responseJsonSchema":{s}}}}}"#
        ),
    }
}

#[test]
fn every_pair_keeps_a_schemas_key_order() {
    each_translated_pair(|client, up| {
        let (mock, p) = setup(up, up.reply(false, false));
        let body = request_with_ordered_schemas(client);
        let resp = p.send(
            "POST",
            &client.url("m", false),
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(resp.status, 200, "{client:?}→{up:?}: {}", resp.body);
        let sent = String::from_utf8(mock.posts()[0].body.clone()).unwrap();
        // Both schemas reach upstream: the tool's and the structured answer's.
        let schemas = sent.matches(r#""zeta":"#).count();
        assert_eq!(schemas, 2, "{client:?}→{up:?}: {sent}");
        // Each copy of the schema, at both depths, in the client's order.
        for (first, then) in [(r#""zeta""#, r#""alpha""#), (r#""yak""#, r#""bee""#)] {
            let firsts: Vec<_> = sent.match_indices(first).map(|(i, _)| i).collect();
            let thens: Vec<_> = sent.match_indices(then).map(|(i, _)| i).collect();
            assert_eq!(firsts.len(), thens.len(), "{client:?}→{up:?}: {sent}");
            for (a, b) in firsts.iter().zip(&thens) {
                assert!(a < b, "{client:?}→{up:?}: {first} before {then}: {sent}");
            }
        }
    });
}

#[test]
fn a_tool_calls_arguments_keep_the_models_key_order() {
    // An Anthropic source's whole answer carries a call's input as an object; a chat
    // client gets it as a string, written in the order the model wrote it.
    let answer = r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{"zeta":1,"alpha":{"yak":2,"bee":3}}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}"#;
    let mock = MockUpstream::always(crate::support::Reply::Json(200, answer.into()));
    let p = Wire::Anthropic.serving(&mock, "m");
    let resp = p.post(
        &Wire::Chat.url("m", false),
        Wire::Chat.request("m", false, true),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.body
            .contains(r#"{\"zeta\":1,\"alpha\":{\"yak\":2,\"bee\":3}}"#),
        "{}",
        resp.body
    );
}

#[test]
fn every_pair_carries_the_tool_choice() {
    each_translated_pair(|client, up| {
        let (mock, p) = setup(up, up.reply(false, false));
        for (asked, sent) in client.tool_choices().into_iter().zip(up.tool_choices()) {
            let mut req = client.request("m", false, true);
            client.set_tool_choice(&mut req, asked.clone());
            let resp = p.post(&client.url("m", false), req);
            assert_eq!(resp.status, 200, "{client:?}→{up:?} {asked}: {}", resp.body);
            let upstream = mock.requests().last().unwrap().json();
            assert_eq!(up.tool_choice(&upstream), sent, "{client:?}→{up:?} {asked}");
        }
    });
}

#[test]
fn a_forced_hosted_tool_is_refused_by_a_translation_not_dropped() {
    // The hosted tool is left out for any other source; made no choice, the force was
    // lost and the model answered without searching.
    let forced = [
        json!({"type": "web_search_preview"}),
        json!({"type": "file_search"}),
        json!({"type": "mcp", "server_label": "docs", "name": "lookup"}),
    ];
    for choice in forced {
        let kind = choice["type"].as_str().unwrap();
        let tools = json!([{"type": kind, "vector_store_ids": ["vs_1"], "server_label": "docs"}]);
        let req = json!({"model": "m", "input": "hi", "tools": tools, "tool_choice": choice});
        for up in [Wire::Chat, Wire::Anthropic, Wire::Gemini] {
            let (mock, p) = setup(up, up.reply(false, false));
            let resp = p.post("/v1/responses", req.clone());
            assert_eq!(resp.status, 400, "{kind}→{up:?}: {}", resp.body);
            let error = &resp.json()["error"];
            assert_eq!(error["param"], "tool_choice", "{kind}→{up:?}: {error}");
            assert!(
                error["message"].as_str().unwrap().contains(kind),
                "{kind}→{up:?}: {error}"
            );
            assert!(mock.requests().is_empty(), "{kind}→{up:?}");
        }
        // A Responses source has the tool: the request goes as it came.
        let (mock, p) = setup(Wire::Responses, Wire::Responses.reply(false, false));
        let resp = p.post("/v1/responses", req.clone());
        assert_eq!(resp.status, 200, "{kind}: {}", resp.body);
        assert_eq!(mock.posts()[0].json()["tool_choice"], choice);
    }
}

#[test]
fn no_parallel_calls_reaches_anthropic_except_on_a_none_choice() {
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    for (choice, sent) in [
        (
            json!("required"),
            json!({"type": "any", "disable_parallel_tool_use": true}),
        ),
        (json!("none"), json!({"type": "none"})),
    ] {
        let mut req = Wire::Chat.request("m", false, true);
        req["tool_choice"] = choice;
        req["parallel_tool_calls"] = json!(false);
        let resp = p.post(&Wire::Chat.url("m", false), req);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let upstream = mock.requests().last().unwrap().json();
        assert_eq!(upstream["tool_choice"], sent);
    }
}

/// Codex CLI's free-text `apply_patch`, a past call of it and its output.
fn custom_tool_request(stream: bool) -> serde_json::Value {
    json!({"model": "m", "stream": stream,
    "tools": [{"type": "custom", "name": "apply_patch", "description": "Edit files.",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+ end_patch"}}],
    "input": [
        {"type": "message", "role": "user", "content": "add a.txt"},
        {"type": "custom_tool_call", "call_id": "call_0", "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch"},
        {"type": "custom_tool_call_output", "call_id": "call_0", "output": "Done"},
    ]})
}

const PATCH: &str = "*** Begin Patch\n*** Add File: a.txt\n+hi \"there\"\n*** End Patch";

/// Checks the chat request a custom tool and its past call became.
fn assert_custom_tool_sent(sent: &serde_json::Value) {
    let tool = &sent["tools"][0]["function"];
    assert_eq!(tool["name"], "apply_patch", "{sent}");
    let input = &tool["parameters"]["properties"]["input"];
    assert_eq!(input["type"], "string", "{sent}");
    assert!(
        input["description"]
            .as_str()
            .unwrap()
            .contains("begin_patch hunk+"),
        "the format travels with it: {sent}"
    );
    let call = &sent["messages"][1]["tool_calls"][0]["function"];
    let args: serde_json::Value =
        serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        args,
        json!({"input": "*** Begin Patch\n*** End Patch"}),
        "{sent}"
    );
    assert_eq!(sent["messages"][2]["content"], "Done", "{sent}");
}

#[test]
fn a_codex_custom_tool_works_through_a_chat_source() {
    let args = json!({"input": PATCH}).to_string();
    let answer = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "apply_patch", "arguments": args}}]}}]});
    let (mock, p) = setup(
        Wire::Chat,
        crate::support::Reply::Json(200, answer.to_string()),
    );
    let resp = p.post(&Wire::Responses.url("m", false), custom_tool_request(false));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_custom_tool_sent(&mock.requests()[0].json());
    let item = &resp.json()["output"][0];
    assert_eq!(item["type"], "custom_tool_call", "{}", resp.body);
    assert_eq!(
        (&item["name"], &item["call_id"], &item["input"]),
        (&json!("apply_patch"), &json!("call_1"), &json!(PATCH))
    );
}

#[test]
fn a_codex_custom_tool_call_streams_back_as_one() {
    // The call's arguments arrive in pieces that split the JSON string; the client gets
    // the text whole, as a custom tool call.
    let args = json!({"input": PATCH}).to_string();
    let (a, b) = args.split_at(17);
    let chunk = crate::support::wire::chat_chunk;
    let events = vec![
        chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "apply_patch", "arguments": a}}]}),
            json!(null),
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}),
            json!(null),
        ),
        chunk(json!({}), json!("tool_calls")),
        "data: [DONE]\n\n".to_string(),
    ];
    let (mock, p) = setup(
        Wire::Chat,
        crate::support::Reply::Sse(events, std::time::Duration::ZERO),
    );
    let s = p.stream(&Wire::Responses.url("m", true), custom_tool_request(true));
    assert_eq!(s.status, 200);
    assert_custom_tool_sent(&mock.requests()[0].json());
    let events: Vec<serde_json::Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        !kinds.iter().any(|k| k.contains("function_call")),
        "{kinds:?}"
    );
    let done = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .expect("the call's item ends");
    assert_eq!(done["item"]["type"], "custom_tool_call");
    assert_eq!(done["item"]["input"], PATCH);
    let input_done = events
        .iter()
        .find(|e| e["type"] == "response.custom_tool_call_input.done")
        .expect("its input ends");
    assert_eq!(input_done["input"], PATCH);
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed", "{kinds:?}");
    assert_eq!(completed["response"]["output"][0]["input"], PATCH);
}

#[test]
fn an_anthropic_server_tool_is_not_taken_for_a_tool_call_of_the_client() {
    // Anthropic runs its web search itself: the `server_tool_use` block and its input
    // are its own, not a call the client should make.
    let events = vec![
        named(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ),
        named(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
        ),
        named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"query\": \"weather\"}"}}),
        ),
        named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        named(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        ),
        named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "It is sunny."}}),
        ),
        named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        named(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}),
        ),
        named("message_stop", json!({"type": "message_stop"})),
    ];
    let (_mock, p) = setup(
        Wire::Anthropic,
        crate::support::Reply::Sse(events, std::time::Duration::ZERO),
    );
    let s = p.stream("/v1/chat/completions", Wire::Chat.request("m", true, false));
    let got = Wire::Chat.read_stream(&s);
    assert_eq!(got.text, "It is sunny.", "{}", s.text());
    assert!(got.tools.is_empty(), "{}", s.text());
    assert!(got.ended, "{}", s.text());
}
