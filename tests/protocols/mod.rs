//! Every inbound protocol served by every upstream protocol: text, tools, errors, streams.
//!
//! This file holds the round trips every pair makes, what a request becomes for a source
//! that would refuse it as sent, and the endpoints beside generation (`count_tokens`).
//! Tools and their choices are in `tools.rs`, files and images in `parts.rs`, errors in
//! the caller's shape in `errors.rs`.

mod errors;
mod parts;
mod tools;

use serde_json::json;

use crate::support::wire::Wire;
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
        // OpenAI's always has a `summary`, null when not asked for.
        ("reasoning", json!({"effort": "low", "summary": null})),
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
