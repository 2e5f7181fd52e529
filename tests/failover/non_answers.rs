//! Answers that are not answers (not JSON, filtered, refused, incomplete, overloaded):
//! moved past, and the client's answer when no later endpoint gives one.

use super::*;

/// The `n`th (from 1) log line that contains `needle`, once there is one.
fn nth_log(p: &Proxy, needle: &str, n: usize) -> String {
    let lines = || -> Vec<String> { p.log().into_iter().filter(|l| l.contains(needle)).collect() };
    let ok = wait_until(Duration::from_secs(10), || lines().len() >= n);
    assert!(ok, "no log line {n} with {needle:?} in {:#?}", p.log());
    lines().swap_remove(n - 1)
}

/// A whole answer that is no answer: an HTML page, an event stream, nothing.
fn non_answers() -> [(&'static str, Reply); 4] {
    let html = "<html><body>Please log in to the Wi-Fi</body></html>";
    [
        ("html", Reply::Typed(200, "text/html", html.into())),
        (
            "sse",
            Reply::Typed(
                200,
                "text/event-stream",
                "data: garbage\n\ndata: more\n\n".into(),
            ),
        ),
        ("empty", Reply::Json(200, String::new())),
        (
            "cut",
            Reply::Json(200, r#"{"choices": [{"message": "#.into()),
        ),
    ]
}

#[test]
fn a_whole_answer_that_is_not_json_fails_over_and_alone_is_a_502_naming_its_source() {
    // A captive portal's page, or garbage where JSON should be: before, a client of the
    // source's own protocol got it as a 200, and nothing else was tried.
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    for (name, reply) in non_answers() {
        let a = MockUpstream::always(reply);
        for stream in [false, true] {
            // Each on a proxy of its own: the first cools `a` down.
            let p = Proxy::start(&config(&a.url(), &b.url(), ""));
            let body = json!({"model": "smart", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
            let resp = p.post("/v1/chat/completions", body);
            assert_eq!(resp.status, 200, "{name} stream={stream}: {}", resp.body);
            assert!(resp.body.contains("from b"), "{name}: {}", resp.body);
            assert_eq!(resp.header("x-routeplane-provider"), Some("b"), "{name}");
            let line = p.wait_log("served_by=b:m");
            // An event stream is read as one: of garbage, it ended before its content.
            let word = match name {
                "sse" => "ended_early",
                _ => "malformed",
            };
            let tried = format!("tried=a:m→{word},b:m→200");
            assert!(line.contains(&tried), "{name}: {line}");
        }
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        // Alone: a clean 502 in the client's protocol that names the source and says
        // what came instead, for a stream request too (no "internal error").
        for stream in [false, true] {
            let body = json!({"model": "a:m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
            let resp = p.post("/v1/chat/completions", body);
            assert_eq!(resp.status, 502, "{name} stream={stream}: {}", resp.body);
            let message = resp.error_message();
            let said = match name {
                "sse" => "the stream ended without its end marker",
                _ => "it answered 200 with ",
            };
            assert!(
                message.starts_with(&format!("upstream `a` failed: {said}")),
                "{name}: {message}"
            );
            assert!(!message.contains("internal"), "{name}: {message}");
            assert!(
                !message.contains("Wi-Fi"),
                "the page is not quoted: {message}"
            );
        }
    }
    // A server that ignores `"stream": false`: its events are read as the stream they
    // are, and the client gets the whole answer it asked for.
    let a = MockUpstream::always(Reply::chat_stream(2, Duration::ZERO));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = ask(&p, "a:m");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(Wire::Chat.read(&resp).text, "t0t1", "{}", resp.body);
    // Anthropic's and Gemini's own clients, copied from a source of their protocol.
    for wire in [Wire::Anthropic, Wire::Gemini] {
        let html = non_answers().into_iter().next().unwrap().1;
        let a = MockUpstream::always(html);
        let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
            a.url(),
            wire.config_name(),
            b.url()
        ));
        let resp = p.post(
            &wire.url("smart", false),
            wire.request("smart", false, false),
        );
        assert_eq!(resp.status, 200, "{wire:?}: {}", resp.body);
        assert_eq!(wire.read(&resp).text, "from b", "{wire:?}");
        let resp = p.post(&wire.url("a:m", false), wire.request("a:m", false, false));
        assert_eq!(resp.status, 502, "{wire:?}: {}", resp.body);
        assert!(
            resp.body.contains("upstream `a` failed"),
            "{wire:?}: {}",
            resp.body
        );
        assert!(!resp.body.contains("Wi-Fi"), "{wire:?}: {}", resp.body);
    }
}

#[test]
fn a_gzipped_answer_nobody_asked_for_is_said_to_be_compressed_and_moved_past() {
    // A server may compress an answer to a request that names no `Accept-Encoding`.
    // Before, a whole one was "N bytes of `application/json`, not its protocol's JSON
    // answer" and a stream one "ended without its end marker": true, and no help.
    let whole = Reply::Gzipped(200, "application/json", chat_answer("zipped").to_string());
    let events = Reply::Gzipped(200, "text/event-stream", chat_events(2, true).concat());
    let a = MockUpstream::start(move |req| match req.json()["stream"] == true {
        true => events.clone(),
        false => whole.clone(),
    });
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    for stream in [false, true] {
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        let resp = ask_as(&p, Wire::Chat, "smart", stream);
        assert_eq!(resp.status, 200, "stream={stream}: {}", resp.body);
        assert!(resp.body.contains("from b"), "{}", resp.body);
        let line = p.wait_log("served_by=b:m");
        assert!(line.contains("tried=a:m→malformed,b:m→200"), "{line}");
    }
    // Alone, each client in its own protocol, copied or translated, whole or streamed.
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    for wire in [Wire::Chat, Wire::Anthropic] {
        for stream in [false, true] {
            let resp = ask_as(&p, wire, "a:m", stream);
            assert_eq!(resp.status, 502, "{wire:?} stream={stream}: {}", resp.body);
            let message = wire.error_message(&resp.json());
            let (start, end) = (
                "upstream `a` failed: it answered 200 with ",
                " bytes compressed with gzip (`content-encoding`), which Routeplane does not ask for or decode",
            );
            assert!(
                message.starts_with(start) && message.ends_with(end),
                "{wire:?} stream={stream}: {message}"
            );
        }
    }
    // The request named no coding: the server chose gzip on its own.
    assert!(
        a.posts()
            .iter()
            .all(|r| r.header("accept-encoding").is_none())
    );
}

#[test]
fn a_redirect_is_moved_past_and_alone_is_a_502_naming_the_url_not_a_302() {
    // A network's login page redirects every request. Before, the client got the 302
    // itself, without its `Location`, the page's HTML as the error's message.
    let a = MockUpstream::always(Reply::JsonWith(
        302,
        vec![("location".into(), "http://login.example/portal".into())],
        "<html>Please log in to the Wi-Fi</html>".into(),
    ));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    for stream in [false, true] {
        let resp = ask_as(&p, Wire::Chat, "smart", stream);
        assert_eq!(resp.status, 200, "stream={stream}: {}", resp.body);
        assert!(resp.body.contains("from b"), "{}", resp.body);
    }
    // The first moved past it; the second found it cooling down.
    p.wait_log("served_by=b:m status=200 attempts=2 tried=a:m→malformed,b:m→200");
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    for wire in [Wire::Chat, Wire::Anthropic] {
        for stream in [false, true] {
            let resp = ask_as(&p, wire, "a:m", stream);
            assert_eq!(resp.status, 502, "{wire:?} stream={stream}: {}", resp.body);
            assert_eq!(
                wire.error_message(&resp.json()),
                format!(
                    "upstream `a` failed: {}/chat/completions answered 302, a redirect, which Routeplane does not follow: a network's login page or a server that moved; check the provider's `api_base`",
                    a.url()
                ),
                "{wire:?} stream={stream}"
            );
        }
    }
}

#[test]
fn a_body_in_any_coding_is_said_to_be_compressed_by_its_name() {
    // Brotli has no magic number and zstd's or zlib's are not gzip's: only the
    // `Content-Encoding` names them. Before, each was "N bytes of `application/json`,
    // not its protocol's JSON answer", a stream's "ended without its end marker", and
    // an error's bytes were passed on as its message.
    let junk = b"\x1b\x03\x00\xf8\xa5{\"x\x9c".to_vec();
    for coding in ["br", "zstd", "deflate"] {
        let (whole, events) = (junk.clone(), junk.clone());
        let a = MockUpstream::start(move |req| match req.json()["stream"] == true {
            true => Reply::Encoded(200, "text/event-stream", coding, events.clone()),
            false => Reply::Encoded(200, "application/json", coding, whole.clone()),
        });
        let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        for stream in [false, true] {
            let resp = ask_as(&p, Wire::Chat, "smart", stream);
            assert_eq!(resp.status, 200, "{coding} stream={stream}: {}", resp.body);
            assert!(resp.body.contains("from b"), "{}", resp.body);
        }
        let said = format!(
            "answered 200 with {} bytes compressed with {coding} (`content-encoding`), which \
             Routeplane does not ask for or decode",
            junk.len()
        );
        for wire in [Wire::Chat, Wire::Anthropic] {
            for stream in [false, true] {
                let resp = ask_as(&p, wire, "a:m", stream);
                let what = format!("{coding} {wire:?} stream={stream}");
                assert_eq!(resp.status, 502, "{what}: {}", resp.body);
                let message = wire.error_message(&resp.json());
                assert_eq!(message, format!("upstream `a` failed: it {said}"), "{what}");
            }
        }
        // An error in a coding: its status, said for what it is, not its bytes.
        let limited = MockUpstream::always(Reply::Encoded(
            429,
            "application/json",
            coding,
            junk.clone(),
        ));
        let p = Proxy::start(&config(
            &limited.url(),
            &b.url(),
            "failover:\n  retries: 0\n",
        ));
        let resp = ask_as(&p, Wire::Chat, "a:m", false);
        assert_eq!(resp.status, 429, "{coding}: {}", resp.body);
        assert_eq!(
            Wire::Chat.error_message(&resp.json()),
            format!("upstream `a` {}", said.replace("200", "429")),
            "{coding}"
        );
    }
}

/// A chat answer Azure's content filter emptied, whole or as a stream.
fn filtered_answer(stream: bool) -> Reply {
    if stream {
        Reply::Sse(
            vec![
                "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n".into(),
                "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\",\"content_filter_results\":{\"hate\":{\"filtered\":true}}}]}\n\n".into(),
                "data: [DONE]\n\n".into(),
            ],
            Duration::ZERO,
        )
    } else {
        Reply::json(
            200,
            json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null},
                    "finish_reason": "content_filter", "content_filter_results": {"hate": {"filtered": true}}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}}),
        )
    }
}

#[test]
fn an_answer_a_content_filter_emptied_moves_on_and_alone_is_what_the_source_said() {
    for stream in [false, true] {
        let a = MockUpstream::always(filtered_answer(stream));
        let b = MockUpstream::start(move |_| match stream {
            true => Reply::chat_stream(2, Duration::ZERO),
            false => Reply::json(200, chat_answer("t0t1")),
        });
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        for (n, wire) in [(1, Wire::Chat), (2, Wire::Anthropic)] {
            let asked = (a.count(), b.count());
            let body = wire.request("smart", stream, false);
            let text = match stream {
                true => {
                    wire.read_stream(&p.stream(&wire.url("smart", true), body))
                        .text
                }
                false => wire.read(&p.post(&wire.url("smart", false), body)).text,
            };
            assert_eq!(text, "t0t1", "{wire:?} stream={stream}");
            assert_eq!(
                (a.count(), b.count()),
                (asked.0 + 1, asked.1 + 1),
                "{wire:?}"
            );
            let line = nth_log(&p, "served_by=b:m", n);
            assert!(
                line.contains("tried=a:m→200:filter,b:m→200"),
                "{wire:?}: {line}"
            );
        }
        // A filter is about the prompt: `a` was not cooled down, and was asked first
        // again (counted above).
        // Alone, the client gets what the source said: the filtered answer, not an error.
        let body = json!({"model": "a:m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let resp: crate::support::proxy::Resp = match stream {
            true => p.stream("/v1/chat/completions", body).into(),
            false => p.post("/v1/chat/completions", body),
        };
        assert_eq!(resp.status, 200, "stream={stream}: {}", resp.body);
        assert!(
            resp.body.contains("\"finish_reason\":\"content_filter\""),
            "{}",
            resp.body
        );
        let body = json!({"model": "a:m", "max_tokens": 9, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let resp: crate::support::proxy::Resp = match stream {
            true => p.stream("/v1/messages", body).into(),
            false => p.post("/v1/messages", body),
        };
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert!(
            resp.body.contains("\"stop_reason\":\"refusal\""),
            "{}",
            resp.body
        );
    }
    // After text went out, a filter's stop is the end of that answer, not a failover.
    let mut events = chat_events(1, false);
    events.extend(
        [
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\n",
            "data: [DONE]\n\n",
        ]
        .map(String::from),
    );
    let a = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let b = MockUpstream::always(Reply::chat_stream(2, Duration::ZERO));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let s = stream(&p, "smart");
    assert_eq!(Wire::Chat.read_stream(&s).text, "t0");
    assert!(s.text().contains("content_filter"), "{}", s.text());
    assert_eq!(b.count(), 0);
}

#[test]
fn a_whole_answer_whose_body_stalls_is_a_timeout_in_routeplanes_words() {
    // The head came, then half the body, then nothing: before, a 502 "the body broke
    // off: Resource temporarily unavailable (os error 11)", logged `ended_early`.
    let stalled = || {
        let answer = chat_answer("never all of it").to_string();
        Reply::JsonThenStall(200, answer, Duration::from_secs(4))
    };
    let a = MockUpstream::always(stalled());
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = ask(&p, "a:m");
    assert_eq!(resp.status, 504, "{}", resp.body);
    let message = resp.error_message();
    assert!(
        message.contains("within 1 second (`timeouts.first_byte_secs`)"),
        "{message}"
    );
    assert!(!message.contains("os error"), "{message}");
    let line = p.wait_log("status=504");
    assert!(line.contains("tried=a:m→timeout"), "{line}");
    // In a virtual model the next endpoint answers.
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("from b"), "{}", resp.body);
    let line = p.wait_log("served_by=b:m");
    assert!(line.contains("tried=a:m→timeout,b:m→200"), "{line}");
}

/// A source's answer a content filter emptied: whole, or streamed when asked.
type Filtered = fn(bool) -> Reply;

/// An Anthropic answer refused before anything was said (`stop_reason: refusal`, no
/// content), whole or as a stream.
fn refused_answer(stream: bool) -> Reply {
    let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}});
    if stream {
        Reply::Sse(
            vec![
                named("message_start", start),
                named("ping", json!({"type": "ping"})),
                named(
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "refusal", "stop_sequence": null}, "usage": {"output_tokens": 1}}),
                ),
                named("message_stop", json!({"type": "message_stop"})),
            ],
            Duration::ZERO,
        )
    } else {
        Reply::json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
                "stop_reason": "refusal", "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}),
        )
    }
}

/// A Responses answer a content filter cut off before anything was said (`incomplete`,
/// `incomplete_details.reason: content_filter`, no output), whole or as a stream.
fn incomplete_answer(stream: bool) -> Reply {
    let resp = |status: &str| {
        let mut r = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": status, "model": "m", "output": []});
        if status == "incomplete" {
            r["incomplete_details"] = json!({"reason": "content_filter"});
            r["usage"] = json!({"input_tokens": 5, "output_tokens": 0, "total_tokens": 5});
        }
        r
    };
    if stream {
        Reply::Sse(
            vec![
                named(
                    "response.created",
                    json!({"type": "response.created", "sequence_number": 0, "response": resp("in_progress")}),
                ),
                named(
                    "response.incomplete",
                    json!({"type": "response.incomplete", "sequence_number": 1, "response": resp("incomplete")}),
                ),
            ],
            Duration::ZERO,
        )
    } else {
        Reply::json(200, resp("incomplete"))
    }
}

/// What a client of `wire` finds in a filtered answer: its protocol's filtered ending.
fn filtered_mark(wire: Wire) -> &'static str {
    match wire {
        Wire::Anthropic => "\"stop_reason\":\"refusal\"",
        Wire::Responses => "\"reason\":\"content_filter\"",
        _ => "\"finish_reason\":\"content_filter\"",
    }
}

#[test]
fn an_anthropic_refusal_or_a_filtered_responses_answer_moves_on_and_alone_is_the_clients() {
    // Before, both went to the client as its answer while another endpoint was left,
    // where an empty chat answer with `finish_reason: content_filter` (Azure's) and a
    // Gemini safety block moved on.
    let sources: [(Wire, Filtered); 2] = [
        (Wire::Anthropic, refused_answer),
        (Wire::Responses, incomplete_answer),
    ];
    for (source, filtered) in sources {
        for stream in [false, true] {
            let a = MockUpstream::always(filtered(stream));
            let b = MockUpstream::start(move |_| match stream {
                true => Reply::chat_stream(2, Duration::ZERO),
                false => Reply::json(200, chat_answer("t0t1")),
            });
            let p = Proxy::start(&format!(
                "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
                a.url(),
                source.config_name(),
                b.url()
            ));
            let said =
                |client: Wire| format!("{source:?} source, {client:?} client, stream={stream}");
            for (n, client) in [(1, Wire::Chat), (2, source)] {
                let body = client.request("smart", stream, false);
                let text = match stream {
                    true => {
                        let s = p.stream(&client.url("smart", true), body);
                        client.read_stream(&s).text
                    }
                    false => client.read(&p.post(&client.url("smart", false), body)).text,
                };
                assert_eq!(text, "t0t1", "{}", said(client));
                let line = nth_log(&p, "served_by=b:m", n);
                assert!(line.contains("tried=a:m→200:filter,b:m→200"), "{line}");
            }
            // Alone, the client gets what the source said, in its own protocol.
            for client in [Wire::Chat, source] {
                let resp = ask_as(&p, client, "a:m", stream);
                assert_eq!(resp.status, 200, "{}: {}", said(client), resp.body);
                let mark = filtered_mark(client);
                assert!(resp.body.contains(mark), "{}: {}", said(client), resp.body);
            }
        }
    }
}

#[test]
fn an_anthropic_overload_is_told_as_the_529_it_is() {
    // Anthropic's `overloaded_error` is its HTTP 529. Sent in a stream's error event it
    // was told as a 503, in the log, the ledger and the client's error.
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}});
    let whole = MockUpstream::always(Reply::Json(529, overloaded.to_string()));
    let event = MockUpstream::always(Reply::Sse(
        vec![named("message_start", start), named("error", overloaded)],
        Duration::ZERO,
    ));
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  w:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n  e:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\nmodels:\n  both:\n    endpoints: [w:m, e:m]\nfailover:\n  retries: 0\nusage:\n  path: {}\n",
        whole.url(),
        event.url(),
        ledger.display()
    ));
    let mut lines = 0;
    for (model, stream, tried) in [
        ("w:m", false, "tried=w:m→529 "),
        ("w:m", true, "tried=w:m→529 "),
        ("e:m", true, "tried=e:m→529 "),
        ("both", true, "tried=w:m→529,e:m→529 "),
    ] {
        for client in [Wire::Chat, Wire::Anthropic] {
            let said = format!("{model} {client:?} stream={stream}");
            let resp = ask_as(&p, client, model, stream);
            lines += 1;
            let line = nth_log(&p, "tried=", lines);
            assert!(line.contains(tried), "{said}: {line}");
            let message = match client {
                Wire::Anthropic => resp.json()["error"]["type"].clone(),
                _ => json!(resp.error_message()),
            };
            assert!(!resp.body.contains("503"), "{said}: {}", resp.body);
            if model == "both" {
                // Every endpoint overloaded: the client's overload answer, listing each
                // (table::every_endpoint_overloaded_is_the_clients_overloaded_with_every_attempt).
                assert!(resp.body.contains("e:m → 529"), "{said}: {}", resp.body);
            }
            if client == Wire::Anthropic {
                assert_eq!(resp.status, 529, "{said}: {}", resp.body);
                assert_eq!(message, "overloaded_error", "{said}");
            } else {
                // 529 is Anthropic's own: another protocol's client gets the 503 its
                // retries know (protocols::errors::anthropics_overload_reaches_other_clients_as_503).
                assert_eq!(resp.status, 503, "{said}: {}", resp.body);
            }
        }
    }
    let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(10), || read()
        .lines()
        .count()
        == lines));
    for l in read().lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        for f in v["failed"].as_array().into_iter().flatten() {
            assert_eq!(f["status"], 529, "{v}");
        }
    }
}

#[test]
fn a_filtered_answer_moved_past_is_the_clients_when_no_later_endpoint_answers() {
    // Before, the client got a 502 listing the attempts, though a source had answered.
    let sources: [(Wire, Filtered); 2] = [
        (Wire::Chat, filtered_answer),
        (Wire::Anthropic, refused_answer),
    ];
    let down = MockUpstream::always(Reply::Json(503, r#"{"error":{"message":"down"}}"#.into()));
    for (source, filtered) in sources {
        for (b_url, b_word) in [(down.url(), "503"), (dead_url(), "refused")] {
            for stream in [false, true] {
                let a = MockUpstream::always(filtered(stream));
                let dir = Dir::new();
                let ledger = dir.path().join("usage.jsonl");
                let p = Proxy::start(&format!(
                    "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n  b:\n    api_base: {b_url}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\nfailover:\n  retries: 0\nusage:\n  path: {}\n",
                    a.url(),
                    source.config_name(),
                    ledger.display()
                ));
                for (n, client) in [(1, Wire::Chat), (2, Wire::Anthropic)] {
                    let said = format!(
                        "{source:?} source, b {b_word}, {client:?} client, stream={stream}"
                    );
                    let resp = ask_as(&p, client, "smart", stream);
                    assert_eq!(resp.status, 200, "{said}: {}", resp.body);
                    let mark = filtered_mark(client);
                    assert!(resp.body.contains(mark), "{said}: {}", resp.body);
                    assert_eq!(resp.header("x-routeplane-provider"), Some("a"), "{said}");
                    assert_eq!(resp.header("x-routeplane-attempts"), Some("2"), "{said}");
                    let line = nth_log(&p, "served_by=a:m", n);
                    let tried = format!(
                        "status=200 {}attempts=2 tried=a:m→200:filter,b:m→{b_word} ",
                        if stream { "stream=complete " } else { "" }
                    );
                    assert!(line.contains(&tried), "{said}: {line}");
                }
                // The ledger: answered by `a`, `b`'s failure moved past.
                let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
                assert!(wait_until(Duration::from_secs(10), || !read().is_empty()));
                let first: Value = serde_json::from_str(read().lines().next().unwrap()).unwrap();
                assert_eq!(first["served_by"], "a:m", "{first}");
                assert_eq!(first["failed"].as_array().map(Vec::len), Some(1), "{first}");
                assert_eq!(first["failed"][0]["endpoint"], "b:m", "{first}");
            }
        }
    }
}

#[test]
fn azures_content_filter_error_moved_past_is_the_clients_when_no_later_endpoint_answers() {
    // Azure's filter refuses a prompt with a 400 `content_filter`, which is moved past
    // like a filtered answer. Before, when every later endpoint failed, the client got a
    // 502 listing the attempts instead of the filter's 400.
    let filter = json!({"error": {"code": "content_filter", "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", "param": "prompt", "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"hate": {"filtered": true, "severity": "high"}}}}}).to_string();
    let a = MockUpstream::always(Reply::Json(400, filter.clone()));
    let down = MockUpstream::always(Reply::Json(503, r#"{"error":{"message":"down"}}"#.into()));
    for (b_url, b_word) in [(down.url(), "503"), (dead_url(), "refused")] {
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    models: [m]\n  b:\n    api_base: {b_url}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\nfailover:\n  retries: 0\n",
            a.url()
        ));
        let mut n = 0;
        for client in [Wire::Chat, Wire::Anthropic] {
            for stream in [false, true] {
                let said = format!("b {b_word}, {client:?} client, stream={stream}");
                let resp = ask_as(&p, client, "smart", stream);
                n += 1;
                assert_eq!(resp.status, 400, "{said}: {}", resp.body);
                match client {
                    // The same protocol everywhere: Azure's error as it sent it.
                    Wire::Chat => assert_text(&resp.body, &filter),
                    _ => {
                        let v = resp.json();
                        assert_eq!(v["type"], "error", "{said}: {v}");
                        assert_eq!(v["error"]["type"], "invalid_request_error", "{said}: {v}");
                        let message = v["error"]["message"].as_str().unwrap_or_default();
                        assert!(
                            message.starts_with("The response was filtered"),
                            "{said}: {v}"
                        );
                    }
                }
                assert_eq!(resp.header("x-routeplane-provider"), Some("a"), "{said}");
                let line = nth_log(&p, "served_by=a:m", n);
                let tried = format!("status=400 attempts=2 tried=a:m→400:filter,b:m→{b_word} ");
                assert!(line.contains(&tried), "{said}: {line}");
            }
        }
    }
}

#[test]
fn a_short_retry_after_is_waited_out_alone_and_in_a_virtual_model() {
    // As README's Failover says (and failoverbench's s01 scores): a 429 whose
    // `Retry-After` is within `failover.max_retry_wait_secs` is waited out on the same
    // endpoint, whether another endpoint remains or not.
    for model in ["a:m", "smart"] {
        let a = MockUpstream::script(vec![
            Reply::JsonWith(429, vec![("Retry-After".into(), "1".into())], "{}".into()),
            Reply::json(200, chat_answer("from a")),
        ]);
        let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        let resp = ask(&p, model);
        assert_eq!(resp.status, 200, "{model}: {}", resp.body);
        assert!(resp.body.contains("from a"), "{model}: {}", resp.body);
        assert_eq!((a.count(), b.count()), (2, 0), "{model}");
        let gap = a.gaps()[0];
        assert!(
            gap >= Duration::from_millis(990) && gap <= Duration::from_millis(1500),
            "{model}: {gap:?}"
        );
    }
}
