//! Every inbound protocol served by every upstream protocol: text, tools, errors, streams.

use serde_json::json;

use crate::support::wire::{Wire, named};
use crate::support::{MockUpstream, Proxy};

/// A proxy whose model `m` is served by a mock speaking `up`.
fn setup(up: Wire, reply: crate::support::Reply) -> (MockUpstream, Proxy) {
    let mock = MockUpstream::always(reply);
    let p = up.serving(&mock, "m");
    (mock, p)
}

#[test]
fn every_pair_serves_text_without_streaming() {
    for client in Wire::ALL {
        for up in Wire::ALL {
            let (mock, p) = setup(up, up.reply(false, false));
            let resp = p.post(&client.url("m", false), client.request("m", false, false));
            assert_eq!(resp.status, 200, "{client:?}←{up:?}: {}", resp.body);
            assert_eq!(
                client.read(&resp).text,
                "Hello there",
                "{client:?}←{up:?}: {}",
                resp.body
            );
            let sent = &mock.requests()[0];
            assert_eq!(sent.path, up.upstream_path(), "{client:?}←{up:?}");
            assert_eq!(up.sent_model(sent), "m");
        }
    }
}

#[test]
fn every_pair_streams_text() {
    for client in Wire::ALL {
        for up in Wire::ALL {
            let (_mock, p) = setup(up, up.reply(true, false));
            let s = p.stream(&client.url("m", true), client.request("m", true, false));
            assert_eq!(s.status, 200, "{client:?}←{up:?}: {}", s.text());
            let a = client.read_stream(&s);
            assert_eq!(a.text, "Hello there", "{client:?}←{up:?}: {}", s.text());
            assert!(
                a.ended,
                "{client:?}←{up:?}: stream ends with its marker: {}",
                s.text()
            );
            assert!(s.complete);
        }
    }
}

#[test]
fn every_pair_relays_a_tool_call() {
    for client in Wire::ALL {
        for up in Wire::ALL {
            for stream in [false, true] {
                let (mock, p) = setup(up, up.reply(stream, true));
                let a = if stream {
                    client.read_stream(
                        &p.stream(&client.url("m", true), client.request("m", true, true)),
                    )
                } else {
                    client.read(&p.post(&client.url("m", false), client.request("m", false, true)))
                };
                let case = format!("{client:?}←{up:?} stream={stream}");
                assert_eq!(a.tools.len(), 1, "{case}: {a:?}");
                assert_eq!(a.tools[0].0, "get_weather", "{case}");
                assert_eq!(a.tools[0].1, json!({"city": "Paris"}), "{case}");
                assert_eq!(a.tools[0].2, "call_1", "{case}: the call id survives");
                let sent = mock.requests()[0].json();
                assert!(
                    sent.to_string().contains("get_weather"),
                    "{case}: tools reach upstream: {sent}"
                );
            }
        }
    }
}

#[test]
fn every_pair_sends_the_tool_result_upstream() {
    for client in Wire::ALL {
        for up in Wire::ALL {
            let (mock, p) = setup(up, up.reply(false, false));
            let resp = p.post(
                &client.url("m", false),
                client.tool_result_request("m", false),
            );
            assert_eq!(resp.status, 200, "{client:?}←{up:?}: {}", resp.body);
            assert_eq!(client.read(&resp).text, "Hello there");
            let sent = mock.requests()[0].json();
            assert!(up.has_tool_result(&sent), "{client:?}←{up:?}: {sent}");
        }
    }
}

/// Runs `check` on every pair of two different protocols (one protocol in and out is
/// passed through as bytes).
fn each_translated_pair(mut check: impl FnMut(Wire, Wire)) {
    for client in Wire::ALL {
        for up in Wire::ALL {
            if client != up {
                check(client, up);
            }
        }
    }
}

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

#[test]
fn a_chat_request_anthropic_would_refuse_reaches_it_acceptable() {
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    let resp = p.post(
        &Wire::Chat.url("m", false),
        json!({"model": "m", "temperature": 1.6, "stop": [" ", "END"], "messages": [
            {"role": "system", "content": " "},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": "\n\n", "tool_calls": [{"id": "functions.get_weather:0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"},
        ]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    assert_eq!(
        sent["temperature"], 1.0,
        "chat's 0-2 range, clamped to Anthropic's 0-1"
    );
    assert_eq!(
        sent["stop_sequences"],
        json!(["END"]),
        "a blank stop is dropped"
    );
    assert!(
        sent.get("system").is_none(),
        "a blank system prompt is left out"
    );
    assert_eq!(
        sent["messages"][0]["content"],
        json!([{"type": "text", "text": "weather?"}]),
        "so is a blank text part"
    );
    let (call, result) = (&sent["messages"][1], &sent["messages"][2]);
    assert_eq!(call["content"].as_array().unwrap().len(), 1, "{call}");
    let id = call["content"][0]["id"].as_str().unwrap();
    assert!(id.starts_with("functions_get_weather_0_"), "{call}");
    assert_eq!(result["content"][0]["tool_use_id"], id, "{result}");
}

#[test]
fn no_reasoning_asked_sends_anthropic_no_thinking() {
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    for (effort, thinking) in [("none", false), ("low", true)] {
        let mut req = Wire::Chat.request("m", false, false);
        req["reasoning_effort"] = json!(effort);
        let resp = p.post(&Wire::Chat.url("m", false), req);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let sent = mock.requests().last().unwrap().json();
        assert_eq!(sent.get("thinking").is_some(), thinking, "{effort}: {sent}");
    }
}

#[test]
fn every_pair_carries_an_inline_pdf() {
    each_translated_pair(|client, up| {
        let (mock, p) = setup(up, up.reply(false, false));
        let resp = p.post(&client.url("m", false), client.pdf_request("m"));
        assert_eq!(resp.status, 200, "{client:?}→{up:?}: {}", resp.body);
        let sent = up.first_user_parts(&mock.requests()[0].json());
        assert_eq!(sent[0], up.pdf_part(), "{client:?}→{up:?}: {sent}");
        let parts = sent.as_array().map(Vec::len);
        assert_eq!(parts, Some(2), "{client:?}→{up:?}: {sent}");
    });
}

#[test]
fn every_pair_carries_an_image_in_a_tool_result() {
    // A screenshot tool's answer: the image reaches every format's upstream, where it
    // takes one, beside the result's text.
    each_translated_pair(|client, up| {
        let (mock, p) = setup(up, up.reply(false, false));
        let resp = p.post(&client.url("m", false), client.tool_image_request("m"));
        assert_eq!(resp.status, 200, "{client:?}→{up:?}: {}", resp.body);
        let sent = mock.requests()[0].json();
        assert!(up.has_tool_result(&sent), "{client:?}→{up:?}: {sent}");
        assert_eq!(
            up.tool_image(&sent),
            up.png_part(),
            "{client:?}→{up:?}: {sent}"
        );
    });
}

#[test]
fn a_tool_results_image_reaches_a_chat_upstream_in_a_user_message() {
    // OpenAI refuses an image in a tool message: it follows the tool messages instead,
    // and they still follow their calls unbroken.
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let resp = p.post(
        &Wire::Anthropic.url("m", false),
        Wire::Anthropic.tool_image_request("m"),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    let m = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = m.iter().map(|x| x["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "user"], "{sent}");
    assert_eq!(m[2]["content"], "sunny", "{sent}");
    assert_eq!(m[3]["content"], json!([Wire::Chat.png_part()]), "{sent}");
}

#[test]
fn a_gemini_function_results_nested_image_reaches_anthropic_inside_the_result() {
    // Gemini 3 nests a function result's images in the result's own `parts`.
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    let mut req = Wire::Gemini.tool_result_request("m", false);
    req["contents"][2]["parts"][0]["functionResponse"]["parts"] = json!([Wire::Gemini.png_part()]);
    let resp = p.post(&Wire::Gemini.url("m", false), req);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    let result = &sent["messages"][2]["content"][0];
    assert_eq!(result["type"], "tool_result", "{sent}");
    assert_eq!(
        result["content"],
        json!([{"type": "text", "text": "sunny"}, Wire::Anthropic.png_part()]),
        "{sent}"
    );
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

/// The keys of a Response object, in the order OpenAI writes them.
const RESPONSE_KEYS: [&str; 23] = [
    "id",
    "object",
    "created_at",
    "status",
    "error",
    "incomplete_details",
    "instructions",
    "max_output_tokens",
    "model",
    "output",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "usage",
    "user",
    "metadata",
];

#[test]
fn a_translated_responses_answer_repeats_what_the_client_asked_as_openai_does() {
    // OpenAI's Response repeats the request's settings, defaults where it set none, and
    // its SDKs read them: a translated answer had none, so `for t in r.tools` failed on
    // None. Checked whole and in each stream event that carries the Response.
    let tool = json!({"type": "function", "name": "get_weather", "description": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
    let format = json!({"type": "json_schema", "name": "weather", "strict": true,
        "schema": {"type": "object", "properties": {"sky": {"type": "string"}}}});
    let asked = json!({"model": "m", "input": "hi", "instructions": "be brief",
        "tools": [tool], "tool_choice": "required", "parallel_tool_calls": false,
        "temperature": 0.2, "max_output_tokens": 50, "metadata": {"run": "7"},
        "text": {"format": format}, "reasoning": {"effort": "low"}});
    let set = [
        ("instructions", json!("be brief")),
        ("tools", json!([tool])),
        ("tool_choice", json!("required")),
        ("parallel_tool_calls", json!(false)),
        ("temperature", json!(0.2)),
        ("max_output_tokens", json!(50)),
        ("metadata", json!({"run": "7"})),
        ("text", json!({"format": format})),
        ("reasoning", json!({"effort": "low"})),
    ];
    let defaults = [
        ("instructions", json!(null)),
        ("tools", json!([])),
        ("tool_choice", json!("auto")),
        ("parallel_tool_calls", json!(true)),
        ("temperature", json!(null)),
        ("top_p", json!(null)),
        ("max_output_tokens", json!(null)),
        ("metadata", json!({})),
        ("text", json!({"format": {"type": "text"}})),
        ("reasoning", json!({"effort": null, "summary": null})),
        ("truncation", json!("disabled")),
        ("user", json!(null)),
        ("error", json!(null)),
        ("previous_response_id", json!(null)),
        // Routeplane keeps no answer to be continued.
        ("store", json!(false)),
    ];
    let check = |r: &serde_json::Value, want: &[(&str, serde_json::Value)], what: &str| {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, RESPONSE_KEYS, "{what}: {r}");
        for (key, value) in want {
            assert_eq!(&r[key], value, "{what}: {key} in {r}");
        }
    };
    for up in [Wire::Chat, Wire::Anthropic, Wire::Gemini] {
        // Codex's `text` names a verbosity and no format; the answer names both.
        let verbose = [(
            "text",
            json!({"format": {"type": "text"}, "verbosity": "low"}),
        )];
        for (request, want) in [
            (asked.clone(), &set[..]),
            (json!({"model": "m", "input": "hi"}), &defaults[..]),
            (
                json!({"model": "m", "input": "hi", "text": {"verbosity": "low"}}),
                &verbose[..],
            ),
        ] {
            let (_mock, p) = setup(up, up.reply(false, false));
            let resp = p.post("/v1/responses", request.clone());
            assert_eq!(resp.status, 200, "{up:?}: {}", resp.body);
            let r = resp.json();
            check(&r, want, &format!("{up:?} whole"));
            assert_eq!(r["status"], "completed");
            assert_eq!(r["usage"]["total_tokens"], 7, "{r}");

            let (_mock, p) = setup(up, up.reply(true, false));
            let mut request = request;
            request["stream"] = json!(true);
            let s = p.stream("/v1/responses", request);
            assert_eq!(s.status, 200, "{up:?}: {}", s.text());
            let events: Vec<serde_json::Value> = s
                .data()
                .iter()
                .filter_map(|d| serde_json::from_str(d).ok())
                .filter(|e: &serde_json::Value| e["response"].is_object())
                .collect();
            let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
            assert_eq!(
                kinds,
                [
                    "response.created",
                    "response.in_progress",
                    "response.completed"
                ],
                "{up:?}"
            );
            for e in &events {
                check(&e["response"], want, &format!("{up:?} {}", e["type"]));
            }
        }
    }
}

#[test]
fn a_file_by_url_is_refused_rather_than_lost() {
    // Chat's `file` part, the hub's form, has no by-URL form: each client's way of
    // naming a file by URL is a 400 in its own shape, and nothing goes upstream.
    let by_url = [
        (
            Wire::Anthropic,
            json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
                {"type": "text", "text": "summarize"},
            ]}]}),
            "document",
        ),
        (
            Wire::Responses,
            json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_file", "file_url": "https://example.com/a.pdf"},
                {"type": "input_text", "text": "summarize"},
            ]}]}),
            "file_url",
        ),
        (
            Wire::Gemini,
            json!({"contents": [{"role": "user", "parts": [
                {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/a.pdf"}},
                {"text": "summarize"},
            ]}]}),
            "fileData",
        ),
    ];
    for (client, req, named) in by_url {
        let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
        let resp = p.post(&client.url("m", false), req);
        assert_eq!(resp.status, 400, "{client:?}: {}", resp.body);
        let message = client.error_message(&resp.json());
        assert!(message.contains(named), "{client:?}: {message}");
        assert!(
            mock.requests().is_empty(),
            "{client:?}: nothing goes upstream"
        );
    }
}

#[test]
fn a_gemini_image_by_uri_reaches_chat_as_an_image_url() {
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let resp = p.post(
        &Wire::Gemini.url("m", false),
        json!({"contents": [{"role": "user", "parts": [
            {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png"}},
            {"text": "what is this?"},
        ]}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    assert_eq!(
        sent["messages"][0]["content"][0],
        json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})
    );
}

#[test]
fn an_empty_text_part_never_reaches_gemini() {
    let (mock, p) = setup(Wire::Gemini, Wire::Gemini.reply(false, false));
    let resp = p.post(
        &Wire::Chat.url("m", false),
        json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]},
        ]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    assert_eq!(sent["contents"][0]["parts"], json!([{"text": "hi"}]));
}

#[test]
fn a_named_tool_choice_without_a_name_is_refused_in_the_callers_shape() {
    let bad = [
        (Wire::Anthropic, json!({"type": "tool"})),
        (
            Wire::Gemini,
            json!({"mode": "ANY", "allowedFunctionNames": [7]}),
        ),
    ];
    for (client, choice) in bad {
        let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
        let mut req = client.request("m", false, true);
        client.set_tool_choice(&mut req, choice);
        let resp = p.post(&client.url("m", false), req);
        assert_eq!(resp.status, 400, "{client:?}: {}", resp.body);
        let message = client.error_message(&resp.json());
        assert!(
            message.contains("tool_choice") || message.contains("allowedFunctionNames"),
            "{client:?}: {message}"
        );
        assert!(
            mock.requests().is_empty(),
            "{client:?}: nothing goes upstream"
        );
    }
}

#[test]
fn every_pair_returns_upstream_errors_in_the_callers_shape() {
    for client in Wire::ALL {
        for up in Wire::ALL {
            let (_mock, p) = setup(up, up.error_reply());
            let resp = p.post(&client.url("m", false), client.request("m", false, false));
            assert_eq!(resp.status, 400, "{client:?}←{up:?}");
            assert_eq!(
                client.error_message(&resp.json()),
                "bad thing",
                "{client:?}←{up:?}: {}",
                resp.body
            );
        }
    }
}

#[test]
fn proxy_errors_use_the_callers_protocol() {
    let p = Proxy::start("");
    let resp = p.post(
        "/v1/messages",
        json!({"model": "nope", "max_tokens": 5, "messages": []}),
    );
    assert_eq!(resp.status, 404);
    let v = resp.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    let resp = p.post("/v1/responses", json!({"model": "nope", "input": "hi"}));
    assert_eq!(resp.status, 404);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown model `nope`")
    );
}

#[test]
fn an_anthropic_clients_wrong_path_is_answered_in_anthropics_shape() {
    let p = Proxy::start("");
    let anthropic = [("anthropic-version", "2023-06-01")];
    for (method, path, headers, said) in [
        (
            "GET",
            "/v1/models/nosuch",
            &anthropic[..],
            "unknown model `nosuch`",
        ),
        (
            "POST",
            "/v1/messages/batches",
            &[][..],
            "no endpoint POST /v1/messages/batches",
        ),
        (
            "POST",
            "/v1/v1/messages",
            &[][..],
            "no endpoint POST /v1/v1/messages",
        ),
    ] {
        let resp = p.send(method, path, headers, b"{}");
        assert_eq!(resp.status, 404, "{path}: {}", resp.body);
        let v = resp.json();
        assert_eq!(v["type"], "error", "{path}: {v}");
        assert_eq!(v["error"]["type"], "not_found_error", "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(said),
            "{path}: {v}"
        );
    }
    // The base-URL hint is written for exactly this client.
    let v = p.send("POST", "/v1/v1/messages", &[], b"{}").json();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("and an Anthropic client's to the address alone"),
        "{v}"
    );
    // Without either sign, a path is answered as OpenAI answers.
    let v = p.get("/v1/models/nosuch").json();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    let v = p.post("/v1/embeddings", json!({})).json();
    assert_eq!(v["error"]["code"], "unknown_url", "{v}");
}

#[test]
fn same_protocol_is_byte_passthrough() {
    for up in [Wire::Anthropic, Wire::Responses, Wire::Gemini] {
        let (mock, p) = setup(up, up.reply(true, false));
        let mut req = up.request("m", true, false);
        req["x_unknown_field"] = json!({"kept": true});
        let s = p.stream(&up.url("m", true), req);
        assert_eq!(
            s.text(),
            up.events(false).concat(),
            "{up:?}: events unchanged"
        );
        assert_eq!(
            mock.requests()[0].json()["x_unknown_field"],
            json!({"kept": true})
        );
    }
}

#[test]
fn count_tokens_is_forwarded_to_an_anthropic_upstream() {
    let (mock, p) = setup(
        Wire::Anthropic,
        crate::support::Reply::json(200, json!({"input_tokens": 12})),
    );
    let resp = p.post(
        "/v1/messages/count_tokens",
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({"input_tokens": 12}));
    assert_eq!(mock.requests()[0].path, "/v1/messages/count_tokens");
    assert_eq!(resp.header("x-routeplane-attempts"), Some("1"));
    assert_eq!(resp.header("x-routeplane-provider"), Some("up"));
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

#[test]
fn count_tokens_passes_over_a_silent_endpoint_at_the_first_token_deadline() {
    use crate::support::Reply;
    let silent = MockUpstream::always(Reply::Hang(std::time::Duration::from_secs(8)));
    let good = MockUpstream::always(Reply::json(200, json!({"input_tokens": 12})));
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n  b:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\ntimeouts:\n  first_token_secs: 1\n",
        silent.url(),
        good.url()
    ));
    let started = std::time::Instant::now();
    let resp = p.post(
        "/v1/messages/count_tokens",
        json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json(), json!({"input_tokens": 12}));
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
}

#[test]
fn count_tokens_is_an_estimate_marked_as_such_elsewhere() {
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let resp = p.post("/v1/messages/count_tokens", json!({"model": "m", "messages": [{"role": "user", "content": "hello world, how are you"}]}));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["estimated"], true);
    assert!(resp.json()["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(resp.header("x-routeplane-estimate"), Some("true"));
    assert_eq!(mock.count(), 0);
}

#[test]
fn real_client_shapes_are_accepted() {
    // Shapes seen from Claude Code 2.1 (system turns inside `messages`) and Codex CLI
    // 0.169 (tools grouped in a `namespace`, the hosted `web_search` tool), both tried
    // against routeplane for real.
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let resp = p.post(
        "/v1/messages",
        json!({"model": "m", "max_tokens": 9, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "mid-conversation note"}]}
        ]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        mock.requests()[0].json()["messages"][1],
        json!({"role": "system", "content": "mid-conversation note"})
    );
    let resp = p.post(
        "/v1/responses",
        json!({"model": "m", "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]}, {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
               "tools": [{"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
                         {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}}]},
                         {"type": "web_search", "external_web_access": false}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let names: Vec<String> = mock.requests()[1].json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["exec_command", "spawn_agent"]);
}

#[test]
fn a_cap_below_openais_least_reaches_a_responses_source_raised_to_16() {
    // OpenAI refuses `max_output_tokens` under 16 (`integer_below_min_value`), and
    // clients probe a model with a cap of 1 (Claude Code's start-up check).
    let (mock, p) = setup(Wire::Responses, Wire::Responses.reply(false, false));
    for client in [Wire::Chat, Wire::Anthropic, Wire::Gemini] {
        for (cap, sent) in [(1, 16), (15, 16), (16, 16), (40, 40)] {
            let mut req = client.request("m", false, false);
            match client {
                Wire::Gemini => req["generationConfig"] = json!({"maxOutputTokens": cap}),
                _ => req["max_tokens"] = json!(cap),
            }
            let resp = p.post(&client.url("m", false), req);
            assert_eq!(resp.status, 200, "{client:?} {cap}: {}", resp.body);
            let body = mock.posts().last().unwrap().json();
            assert_eq!(body["max_output_tokens"], sent, "{client:?} {cap}: {body}");
        }
    }
}

#[test]
fn anthropics_overload_reaches_other_clients_as_503() {
    // 529 is Anthropic's own; a client of another protocol may retry only the 5xx
    // statuses it knows.
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let (_mock, p) = setup(
        Wire::Anthropic,
        crate::support::Reply::json(529, overloaded),
    );
    for (client, status) in [
        (Wire::Chat, 503),
        (Wire::Responses, 503),
        (Wire::Gemini, 503),
        (Wire::Anthropic, 529),
    ] {
        let resp = p.post(&client.url("m", false), client.request("m", false, false));
        assert_eq!(resp.status, status, "{client:?}: {}", resp.body);
        assert_eq!(
            client.error_message(&resp.json()),
            "Overloaded",
            "{client:?}"
        );
        if matches!(client, Wire::Chat | Wire::Responses) {
            assert_eq!(resp.json()["error"]["type"], "server_error");
        }
    }
}
