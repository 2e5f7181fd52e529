//! Hostile upstreams: garbage, resets and endless answers give the client a clean error,
//! and an answer, a stream or one event is held to Routeplane's own size limits.

use serde_json::Value;

use super::*;

#[test]
fn hostile_upstreams_give_clean_errors() {
    let cases = [
        ("garbage", Reply::Garbage, 502),
        (
            "unterminated event",
            Reply::Sse(
                // Content first, so the stream is committed before it breaks.
                vec![
                    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"unterminated"
                        .into(),
                ],
                Duration::ZERO,
            ),
            200,
        ),
        (
            "endless line",
            Reply::Sse(
                vec!["data: ".to_string() + &"x".repeat(200_000)],
                Duration::ZERO,
            ),
            502,
        ),
    ];
    for (name, reply, status) in cases {
        let up = MockUpstream::always(reply);
        let yaml = format!(
            "providers:\n  local:\n    api_base: {}\n    models: [m]\nlimits:\n  max_event_bytes: 65536\n",
            up.url()
        );
        let p = Proxy::start(&yaml);
        let s = p.stream(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": []}),
        );
        assert_eq!(s.status, status, "{name}: {}", s.text());
        if status == 200 {
            let last = s.data().last().cloned().unwrap_or_default();
            assert!(
                last.contains("\"error\""),
                "{name}: ends with an error event: {}",
                s.text()
            );
        }
    }
}

#[test]
fn an_answer_over_max_response_bytes_names_the_key_and_moves_on() {
    let big = MockUpstream::always(Reply::json(200, chat_answer(&"x".repeat(2000))));
    let small = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let yaml = format!(
        "providers:\n  big:\n    api_base: {}\n    models: [m]\n  small:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [big:m, small:m]\nlimits:\n  max_response_bytes: 1000\n",
        big.url(),
        small.url()
    );
    let p = Proxy::start(&yaml);
    // Alone: a 502 that names the setting to raise.
    let alone = p.post(
        "/v1/chat/completions",
        json!({"model": "big:m", "messages": []}),
    );
    assert_eq!(alone.status, 502, "{}", alone.body);
    assert_eq!(
        alone.error_message(),
        "upstream `big` failed: the answer is larger than 1000 bytes (raise \
         `limits.max_response_bytes`)"
    );
    let line = p.wait_log("model=big:m");
    assert!(line.contains("tried=big:m→too_large "), "{line}");
    // With an endpoint left: the next one answers.
    let moved = p.post(
        "/v1/chat/completions",
        json!({"model": "smart", "messages": []}),
    );
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.json()["choices"][0]["message"]["content"], "hi");
    let line = p.wait_log("model=smart");
    assert!(
        line.contains("tried=big:m→too_large,small:m→200 "),
        "{line}"
    );
}

#[test]
fn an_answer_collected_from_a_stream_is_held_to_max_response_bytes_in_every_protocol() {
    // Both ignore `"stream": false` and stream: `big` 20 events (about 3 KB, 60 bytes of
    // text), `small` 3. A whole answer is collected from each for the client.
    let big = MockUpstream::always(Reply::Sse(chat_events(20, true), Duration::ZERO));
    let small = MockUpstream::always(Reply::Sse(chat_events(3, true), Duration::ZERO));
    let yaml = format!(
        "providers:\n  big:\n    api_base: {}\n    models: [m]\n  small:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [big:m, small:m]\nlimits:\n  max_response_bytes: 1000\n",
        big.url(),
        small.url()
    );
    let p = Proxy::start(&yaml);
    for wire in Wire::ALL {
        // Alone: a 502 in the client's protocol that names the setting to raise.
        let alone = p.post(
            &wire.url("big:m", false),
            wire.request("big:m", false, false),
        );
        assert_eq!(alone.status, 502, "{wire:?}: {}", alone.body);
        assert_eq!(
            wire.error_message(&alone.json()),
            "upstream `big` failed: the answer is larger than 1000 bytes (raise \
             `limits.max_response_bytes`)",
            "{wire:?}"
        );
        // With an endpoint left: the next one answers.
        let moved = p.post(
            &wire.url("smart", false),
            wire.request("smart", false, false),
        );
        assert_eq!(moved.status, 200, "{wire:?}: {}", moved.body);
        assert_eq!(wire.read(&moved).text, "t0t1t2", "{wire:?}");
    }
    let tried = |model: &str, needle: &str| {
        let lines = || -> Vec<String> {
            let all = p.log().into_iter();
            all.filter(|l| l.contains(model)).collect()
        };
        wait_until(Duration::from_secs(5), || lines().len() == 4);
        let lines = lines();
        assert_eq!(lines.len(), 4, "{model}: {lines:#?}");
        assert!(lines.iter().all(|l| l.contains(needle)), "{lines:#?}");
    };
    tried("model=big:m ", "tried=big:m→too_large ");
    tried("model=smart ", "tried=big:m→too_large,small:m→200 ");
}

#[test]
fn an_endless_stream_event_is_held_to_max_event_bytes_streamed_or_collected() {
    // One line that never ends: a stream client and a whole-answer client alike get a
    // 502 that names the setting, before anything else went out.
    let up = MockUpstream::always(Reply::Sse(
        vec!["data: ".to_string() + &"x".repeat(200_000)],
        Duration::ZERO,
    ));
    let p = Proxy::start(&config(&up, "  max_event_bytes: 65536\n"));
    let expected = "upstream `local` failed: upstream sent a stream event longer than 65536 bytes \
                    (`limits.max_event_bytes`)";
    for stream in [false, true] {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": stream, "messages": []}),
        );
        assert_eq!(resp.status, 502, "stream {stream}: {}", resp.body);
        assert_eq!(resp.error_message(), expected, "stream {stream}");
    }
    // After content went out, the stream the client has ends with an error event that
    // names it.
    let mut events = chat_events(1, false);
    events.push("data: ".to_string() + &"x".repeat(200_000));
    let after = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let p = Proxy::start(&config(&after, "  max_event_bytes: 65536\n"));
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": []}),
    );
    assert_eq!(s.status, 200, "{}", s.text());
    let last = s.data().last().cloned().unwrap_or_default();
    assert!(
        last.contains("\"error\"") && last.contains("`limits.max_event_bytes`"),
        "{}",
        s.text()
    );
}

#[test]
fn events_before_the_first_content_are_held_to_max_response_bytes() {
    // A source that sends, fast, nothing but role-only deltas, empty choices and
    // keep-alive comments (about 250 KB of them) before its answer: held for the client
    // until the first content, they would all sit in memory. Past 64 KiB the source is
    // moved past before anything of it went out.
    let mut events: Vec<String> = (0..3000)
        .map(|i| match i % 3 {
            0 => chat_chunk(json!({"role": "assistant"}), json!(null)),
            1 => format!("data: {}\n\n", json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []})),
            _ => ": keep-alive\n\n".to_string(),
        })
        .collect();
    events.extend(chat_events(2, true));
    let chatty = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let quiet = MockUpstream::always(Reply::Sse(chat_events(3, true), Duration::ZERO));
    let yaml = format!(
        "providers:\n  chatty:\n    api_base: {}\n    models: [m]\n  quiet:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [chatty:m, quiet:m]\nlimits:\n  max_response_bytes: 65536\n",
        chatty.url(),
        quiet.url()
    );
    let p = Proxy::start(&yaml);
    let ask = |model: &str| json!({"model": model, "stream": true, "messages": []});
    // Alone: a 502 that names the setting, nothing of the stream.
    let alone = p.post("/v1/chat/completions", ask("chatty:m"));
    assert_eq!(alone.status, 502, "{}", alone.body);
    assert_eq!(
        alone.error_message(),
        "upstream `chatty` failed: upstream sent more than 65536 bytes of stream events \
         before any content (`limits.max_response_bytes`)"
    );
    // With an endpoint left: its answer alone reaches the client.
    let moved = p.stream("/v1/chat/completions", ask("smart"));
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(moved.header("x-routeplane-provider"), Some("quiet"));
    assert_eq!(Wire::Chat.read_stream(&moved).text, "t0t1t2");
    assert!(!moved.text().contains("keep-alive"), "{}", moved.text());
    let line = p.wait_log("model=smart");
    assert!(
        line.contains("tried=chatty:m→too_large,quiet:m→200"),
        "{line}"
    );
}

#[test]
fn a_chat_sources_tool_calls_without_ids_reach_clients_with_ids_of_their_own() {
    // Some local servers send a call without an `id`; an Anthropic or Responses client
    // must send the call's result back under one, so each call gets its own, not `null`,
    // `""` or the same `call_0` every turn.
    let call = json!({"type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}});
    let answer = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [call]}, "finish_reason": "tool_calls"}]});
    let streamed = vec![
        chat_chunk(
            json!({"tool_calls": [{"index": 0, "type": "function", "function": {"name": "f", "arguments": "{\"a\""}}]}),
            json!(null),
        ),
        chat_chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
            json!(null),
        ),
        chat_chunk(json!({}), json!("tool_calls")),
        "data: [DONE]\n\n".to_string(),
    ];
    let up = MockUpstream::start(move |r| match r.json()["stream"] == json!(true) {
        true => Reply::Sse(streamed.clone(), Duration::ZERO),
        false => Reply::json(200, answer.clone()),
    });
    let p = Proxy::start(&config(&up, ""));
    // The ids of the calls in one answer: a `tool_use` block's `id`, a `function_call`'s
    // `call_id`, wherever they are in the answer or its events.
    let ids = |path: &str, stream: bool| -> Vec<serde_json::Value> {
        let body = match path {
            "/v1/responses" => json!({"model": "m", "stream": stream, "input": "hi"}),
            _ => json!({"model": "m", "max_tokens": 10, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}),
        };
        let s = p.stream(path, body);
        assert_eq!(s.status, 200, "{path}: {}", s.text());
        let values = match stream {
            true => s
                .data()
                .iter()
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect(),
            false => vec![serde_json::from_str(&s.text()).unwrap()],
        };
        let mut found = Vec::new();
        let mut stack: Vec<serde_json::Value> = values;
        while let Some(v) = stack.pop() {
            match &v {
                serde_json::Value::Object(o) => {
                    match o.get("type").and_then(|t| t.as_str()) {
                        Some("tool_use") => found.push(v["id"].clone()),
                        Some("function_call") => found.push(v["call_id"].clone()),
                        _ => {}
                    }
                    stack.extend(o.values().cloned());
                }
                serde_json::Value::Array(a) => stack.extend(a.iter().cloned()),
                _ => {}
            }
        }
        assert!(!found.is_empty(), "{path}: no call: {}", s.text());
        found
    };
    for stream in [false, true] {
        for path in ["/v1/messages", "/v1/responses"] {
            let (first, again) = (ids(path, stream), ids(path, stream));
            for id in first.iter().chain(&again) {
                assert!(
                    id.as_str().is_some_and(|s| !s.is_empty()),
                    "{path} stream={stream}: id {id}"
                );
            }
            assert_ne!(
                first[0], again[0],
                "{path} stream={stream}: one id for two calls"
            );
        }
    }
}

#[test]
fn an_anthropic_stream_whose_usage_is_not_an_object_still_reaches_a_chat_client() {
    // `message_delta` adds its counts into `message_start`'s usage: a usage that was a
    // string there panicked the worker, and the client's stream stopped short.
    let ev =
        |v: serde_json::Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let events = vec![
        ev(
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": "none"}}),
        ),
        ev(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}),
        ),
        ev(json!({"type": "content_block_stop", "index": 0})),
        ev(
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}),
        ),
        ev(json!({"type": "message_stop"})),
    ];
    let up = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n",
        up.url()
    ));
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(s.status, 200, "{}", s.text());
    let answer = Wire::Chat.read_stream(&s);
    assert_eq!(
        (answer.text.as_str(), answer.ended),
        ("hi", true),
        "{}",
        s.text()
    );
    let line = p.wait_log("POST /v1/chat/completions");
    assert!(line.contains("status=200"), "{line}");
    assert!(
        !p.log().iter().any(|l| l.contains("panicked")),
        "{:?}",
        p.log()
    );
}

#[test]
fn a_whole_answer_that_names_no_model_is_translated_with_the_model_asked_for() {
    // Some servers leave `model` out of an answer; a translated one said `"model": null`,
    // which an Anthropic or Responses SDK does not take. A stream names the model asked
    // for until the upstream names one; a whole answer now does the same.
    let mut answer = chat_answer("hi");
    answer.as_object_mut().unwrap().remove("model");
    let up = MockUpstream::always(Reply::json(200, answer));
    let p = Proxy::start(&config(&up, ""));
    let ask =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let messages = p.post("/v1/messages", ask);
    assert_eq!(messages.status, 200, "{}", messages.body);
    assert_eq!(messages.json()["model"], "m", "{}", messages.body);
    let responses = p.post("/v1/responses", json!({"model": "m", "input": "hi"}));
    assert_eq!(responses.status, 200, "{}", responses.body);
    assert_eq!(responses.json()["model"], "m", "{}", responses.body);
}

/// The `(from, to)` replacements a [`spoiled_source`] makes in its answer's text.
type Spoils = Arc<Mutex<Vec<(String, String)>>>;

/// A source speaking `wire` whose tool-call answer (whole, or streamed when asked) has
/// each `from` in its JSON text made `to`, as the test last set them.
fn spoiled_source(wire: Wire) -> (MockUpstream, Spoils) {
    let spoils: Spoils = Arc::default();
    let set = Arc::clone(&spoils);
    let mock = MockUpstream::start(move |r| {
        let stream = r.json()["stream"] == json!(true) || r.path.contains("streamGenerate");
        let spoil = |text: String| {
            let list = set.lock().unwrap();
            list.iter().fold(text, |t, (from, to)| t.replace(from, to))
        };
        match stream {
            true => Reply::Sse(
                wire.events(true).into_iter().map(spoil).collect(),
                Duration::ZERO,
            ),
            false => Reply::json(
                200,
                serde_json::from_str(&spoil(wire.body(true).to_string())).unwrap(),
            ),
        }
    });
    (mock, spoils)
}

/// What a client speaking `client` gets asking `p` for a tool call, whole or streamed:
/// the status and the body or events.
fn ask_call(p: &Proxy, client: Wire, stream: bool) -> (u16, String) {
    let s = p.stream(&client.url("m", stream), client.request("m", stream, true));
    (s.status, s.text())
}

#[test]
fn a_tool_call_without_a_string_name_is_refused_as_an_unreadable_answer() {
    // A nameless call, or one named by a number, went to the client as it came; its SDK
    // cannot read it, nor run it. Whole or streamed, from any protocol, the answer is a
    // 502 in the client's protocol saying the source's answer could not be read.
    let name = "\"name\":\"get_weather\"";
    for wire in Wire::ALL {
        let (mock, spoils) = spoiled_source(wire);
        let p = wire.serving(&mock, "m");
        let client = if wire == Wire::Chat {
            Wire::Anthropic
        } else {
            Wire::Chat
        };
        let nameless = format!("{name},");
        for (from, to) in [(name, "\"name\":7"), (nameless.as_str(), "")] {
            *spoils.lock().unwrap() = vec![(from.to_string(), to.to_string())];
            for stream in [false, true] {
                let (status, body) = ask_call(&p, client, stream);
                let case = format!("{wire:?} → {client:?}, stream {stream}, {to:?}");
                assert_eq!(status, 502, "{case}: {body}");
                assert!(
                    body.contains("the source's answer could not be read (a tool call without a string `name`)"),
                    "{case}: {body}"
                );
            }
        }
    }
}

#[test]
fn an_answer_or_tool_call_id_that_is_not_a_string_is_refused_and_a_missing_answer_id_made() {
    // A number where an id should be went to a Chat client as it came (`"id": 7`),
    // which its SDK refuses; a missing one went as `null`.
    for wire in [Wire::Anthropic, Wire::Responses] {
        let (mock, spoils) = spoiled_source(wire);
        let p = wire.serving(&mock, "m");
        let top = if wire == Wire::Anthropic {
            "msg_1"
        } else {
            "resp_1"
        };
        let call = if wire == Wire::Anthropic {
            ("\"id\":\"call_1\"", "\"id\":5")
        } else {
            ("\"call_id\":\"call_1\"", "\"call_id\":5")
        };
        let cases = [
            (format!("\"id\":\"{top}\""), "\"id\":7", false),
            (call.0.to_string(), call.1, false),
            (call.0.to_string(), call.1, true),
        ];
        for (from, to, stream) in cases {
            *spoils.lock().unwrap() = vec![(from.clone(), to.to_string())];
            let (status, body) = ask_call(&p, Wire::Chat, stream);
            let case = format!("{wire:?}, stream {stream}, {to}");
            assert_eq!(status, 502, "{case}: {body}");
            assert!(
                body.contains("the source's answer could not be read ("),
                "{case}: {body}"
            );
            assert!(body.contains("` is not a string)"), "{case}: {body}");
        }
        for to in ["\"id\":null", "\"unnamed\":0"] {
            *spoils.lock().unwrap() = vec![(format!("\"id\":\"{top}\""), to.to_string())];
            let (status, body) = ask_call(&p, Wire::Chat, false);
            assert_eq!(status, 200, "{wire:?}, {to}: {body}");
            let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].clone();
            assert!(
                id.as_str().is_some_and(|id| id.starts_with("chatcmpl-")),
                "{wire:?}, {to}: {body}"
            );
        }
    }
}

#[test]
fn a_gemini_answer_whose_response_id_is_not_a_string_is_refused_as_another_sources_id_is() {
    // `"responseId": 7` was made `gemini` without a word, where another source's `"id": 7`
    // is refused as an answer no client could read.
    let (mock, spoils) = spoiled_source(Wire::Gemini);
    *spoils.lock().unwrap() = vec![("\"responseId\":\"r1\"".into(), "\"responseId\":7".into())];
    let p = Wire::Gemini.serving(&mock, "m");
    let (status, body) = ask_call(&p, Wire::Chat, false);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("the source's answer could not be read (`id` is not a string)"),
        "{body}"
    );
}

#[test]
fn a_streamed_answer_id_that_is_not_a_string_is_refused_before_any_content() {
    // A stream's `"id": 7` (Gemini's `"responseId": 7`) was made `msg`, `resp` or
    // `gemini` without a word, where a whole answer's is refused. A missing one is
    // still made up.
    for (wire, given) in [
        (Wire::Anthropic, "\"id\":\"msg_1\""),
        (Wire::Responses, "\"id\":\"resp_1\""),
        (Wire::Gemini, "\"responseId\":\"r1\""),
    ] {
        let (mock, spoils) = spoiled_source(wire);
        let p = wire.serving(&mock, "m");
        let key = given.split(':').next().unwrap();
        for (to, refused) in [("7", true), ("[\"x\"]", true), ("null", false)] {
            *spoils.lock().unwrap() = vec![(given.to_string(), format!("{key}:{to}"))];
            let (status, body) = ask_call(&p, Wire::Chat, true);
            let case = format!("{wire:?}, {key}:{to}");
            if !refused {
                assert_eq!(status, 200, "{case}: {body}");
                assert!(body.contains("get_weather"), "{case}: {body}");
                continue;
            }
            assert_eq!(status, 502, "{case}: {body}");
            assert!(
                body.contains("the source's answer could not be read (`id` is not a string)"),
                "{case}: {body}"
            );
            assert!(!body.contains("get_weather"), "{case}: {body}");
        }
    }
}

#[test]
fn tool_calls_without_ids_from_anthropic_and_responses_sources_get_ids_of_their_own() {
    // An Anthropic `tool_use` or a Responses `function_call` without its id reached a
    // Responses client streamed as `call_0` on every turn, whole as `""`, and an
    // Anthropic or Chat client as `null`; a client keys the call's result by it.
    for (wire, id, client) in [
        (Wire::Anthropic, "\"id\":\"call_1\",", Wire::Responses),
        (Wire::Responses, "\"call_id\":\"call_1\",", Wire::Anthropic),
        (Wire::Responses, "\"call_id\":\"call_1\",", Wire::Chat),
    ] {
        let (mock, spoils) = spoiled_source(wire);
        *spoils.lock().unwrap() = vec![(id.to_string(), String::new())];
        let p = wire.serving(&mock, "m");
        for stream in [false, true] {
            let ids: Vec<String> = (0..2)
                .map(|_| {
                    let (status, body) = ask_call(&p, client, stream);
                    assert_eq!(status, 200, "{wire:?} → {client:?}: {body}");
                    let said = |key: &str| {
                        let at = body.find(&format!("\"{key}\":\"call_"))? + key.len() + 4;
                        let end = body[at..].find('"')?;
                        Some(body[at..at + end].to_string())
                    };
                    let id = said("call_id").or_else(|| said("id"));
                    id.unwrap_or_else(|| panic!("{wire:?} → {client:?}: no call id: {body}"))
                })
                .collect();
            assert!(
                ids[0].len() > "call_0".len(),
                "{wire:?} → {client:?}: {ids:?}"
            );
            assert_ne!(
                ids[0], ids[1],
                "{wire:?} → {client:?}, stream {stream}: one id twice"
            );
        }
    }
}

#[test]
fn a_nameless_tool_call_after_text_ends_the_stream_with_an_error_event() {
    // The text went out already: the stream ends as one the source broke off, with an
    // error event in the client's protocol, not a nameless call.
    let ev =
        |v: serde_json::Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let mut events = Wire::Anthropic.events(false);
    let stop = events.len() - 2;
    events.insert(stop, ev(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": 7, "input": {}}})));
    let up = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let p = Wire::Anthropic.serving(&up, "m");
    let s = p.stream(
        &Wire::Chat.url("m", true),
        Wire::Chat.request("m", true, true),
    );
    assert_eq!(s.status, 200, "{}", s.text());
    let last = s.data().last().cloned().unwrap_or_default();
    assert!(
        last.contains("\"error\"")
            && last.contains(
                "the source's answer could not be read (a tool call without a string `name`)"
            ),
        "{}",
        s.text()
    );
    assert!(!s.text().contains("\"name\":7"), "{}", s.text());
    // Said as what it is: not an error the source sent.
    assert!(
        last.contains("failed part-way: the source's answer could not be read")
            && !last.contains("sent an error"),
        "{last}"
    );
}

#[test]
fn a_whole_answer_collected_from_a_stream_has_only_calls_that_came_each_with_an_id() {
    // A server that ignores `"stream": false` has its events collected. A slot was kept
    // for each index below the highest: calls numbered from 1 reached the client after
    // a call with no id and no name, and a call begun after a higher index went with
    // `"id": null` (a Responses client's `"call_id": ""`).
    let chunk = |calls: Value, finish: Value| {
        let delta = match calls {
            Value::Null => json!({}),
            calls => json!({"tool_calls": calls}),
        };
        format!(
            "data: {}\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let call = |index: u64, id: Option<&str>, name: &str| json!([{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": "{}"}}]);
    let end = || {
        vec![
            chunk(Value::Null, json!("tool_calls")),
            "data: [DONE]\n\n".to_string(),
        ]
    };
    let from_one = [
        vec![chunk(call(1, Some("call_1"), "a"), Value::Null)],
        end(),
    ]
    .concat();
    let up = MockUpstream::always(Reply::Sse(from_one, Duration::ZERO));
    let p = Proxy::start(&config(&up, ""));
    let ask = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let resp = p.post("/v1/chat/completions", ask);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let calls = resp.json()["choices"][0]["message"]["tool_calls"].clone();
    assert_eq!(calls.as_array().map(Vec::len), Some(1), "{}", resp.body);
    assert_eq!(calls[0]["id"], "call_1", "{}", resp.body);
    let swapped = [
        vec![
            chunk(call(1, None, "b"), Value::Null),
            chunk(call(0, None, "a"), Value::Null),
        ],
        end(),
    ]
    .concat();
    let up = MockUpstream::always(Reply::Sse(swapped, Duration::ZERO));
    let p = Proxy::start(&config(&up, ""));
    let resp = p.post("/v1/responses", json!({"model": "m", "input": "hi"}));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let output = resp.json()["output"].clone();
    let ids: Vec<&str> = (output.as_array().into_iter().flatten())
        .filter_map(|item| item["call_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{}", resp.body);
    assert!(ids.iter().all(|id| id.len() > 5), "{}", resp.body);
}
