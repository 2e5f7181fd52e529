//! The failover table: which statuses and faults move on, which reach the client
//! unchanged, and requests no endpoint can take (cool-downs are in `cooldown.rs`).

use super::*;

#[test]
fn fall_through_statuses_and_faults_reach_the_next_endpoint() {
    // (name, reply, retried once on the same endpoint first)
    let cases = [
        (
            "500",
            Reply::Json(500, r#"{"error":{"message":"boom"}}"#.into()),
            true,
        ),
        ("503", Reply::Json(503, "overloaded".into()), true),
        ("529", Reply::Json(529, "overloaded".into()), true),
        ("408", Reply::Json(408, "{}".into()), false),
        ("501", Reply::Json(501, "{}".into()), false),
        (
            "429",
            Reply::Json(429, r#"{"error":{"message":"slow down"}}"#.into()),
            true,
        ),
        ("reset", Reply::Reset, true),
        ("garbage", Reply::Garbage, false),
        ("hang", Reply::Hang(Duration::from_secs(3)), false),
        (
            "context",
            Reply::Json(
                400,
                r#"{"error":{"message":"x","code":"context_length_exceeded"}}"#.into(),
            ),
            false,
        ),
    ];
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    for (name, reply, retried) in cases {
        let a = MockUpstream::always(reply);
        let p = Proxy::start(&config(&a.url(), &b.url(), "failover:\n  backoff_ms: 20\n"));
        let resp = ask(&p, "smart");
        assert_eq!(resp.status, 200, "{name}: {}", resp.body);
        assert_eq!(
            resp.json()["choices"][0]["message"]["content"],
            "from b",
            "{name}"
        );
        let tries = if retried { 2 } else { 1 };
        assert_eq!(resp.header("x-routeplane-provider"), Some("b"), "{name}");
        let total = (tries + 1).to_string();
        assert_eq!(
            resp.header("x-routeplane-attempts"),
            Some(total.as_str()),
            "{name}"
        );
        assert_eq!(a.count(), tries, "{name}: retried only when transient");
        let line = p.wait_log("served_by=b:m");
        assert!(
            line.contains(&format!("attempts={total}")),
            "{name}: {line}"
        );
    }
}

#[test]
fn an_error_sent_with_200_fails_over_like_the_status_it_names() {
    // OpenRouter's documented behaviour once it has begun a request: a 200 whose body
    // is the error. Before, it went to the client as an answer (an Anthropic client got
    // an empty message) and nothing else was tried.
    let error = r#"{"error":{"code":502,"message":"Provider returned error","metadata":{}}}"#;
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let a = MockUpstream::always(Reply::Json(200, error.into()));
        let p = Proxy::start(&config(&a.url(), &b.url(), "failover:\n  backoff_ms: 20\n"));
        let resp = p.post(
            path,
            json!({"model": "smart", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        assert!(resp.body.contains("from b"), "{path}: {}", resp.body);
        // A 502 is retried once on the same endpoint, as when it comes as a status.
        assert_eq!(a.count(), 2, "{path}");
        let line = p.wait_log("served_by=b:m");
        assert!(line.contains("tried=a:m→502,a:m→502,b:m→200"), "{line}");
    }
    // Alone, its error is the answer, with the status it names, not a 200.
    for (code, status) in [
        ("502", 502u16),
        ("429", 429),
        ("\"rate_limit_exceeded\"", 429),
    ] {
        let body = format!(r#"{{"error":{{"code":{code},"message":"no provider"}}}}"#);
        let a = MockUpstream::always(Reply::Json(200, body.clone()));
        let p = Proxy::start(&config(&a.url(), &b.url(), "failover:\n  retries: 0\n"));
        let resp = ask(&p, "a:m");
        assert_eq!(resp.status, status, "{code}: {}", resp.body);
        assert_text(&resp.body, &body);
    }
    // An answer that only mentions an error, or carries `"error": null`, is an answer,
    // passed on byte for byte.
    let mentions = chat_answer(r#"the log says "error": 42"#).to_string();
    let with_null = mentions.replacen('{', r#"{"error": null, "#, 1);
    for answer in [mentions, with_null] {
        let a = MockUpstream::always(Reply::Json(200, answer.clone()));
        let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        let resp = ask(&p, "smart");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, answer);
        assert_eq!(b.count(), 0);
    }
}

#[test]
fn an_anthropic_error_body_sent_with_200_fails_over_like_the_status_it_names() {
    // Anthropic (and gateways in its format) may send its error body with a 200. Before,
    // it went to an Anthropic client as a 200 answer, and nothing else was tried.
    let error =
        |kind: &str| json!({"type": "error", "error": {"type": kind, "message": "Overloaded"}});
    let overloaded = error("overloaded_error").to_string();
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let anthropic_then_b = |a: &MockUpstream, extra: &str| {
        format!(
            "providers:\n  a:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n{extra}",
            a.url(),
            b.url()
        )
    };
    // Copied to an Anthropic client, translated for a chat client: both fail over.
    for client in [Wire::Anthropic, Wire::Chat] {
        let a = MockUpstream::always(Reply::Json(200, overloaded.clone()));
        let p = Proxy::start(&anthropic_then_b(&a, "failover:\n  backoff_ms: 20\n"));
        let resp = ask_as(&p, client, "smart", false);
        assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
        assert!(resp.body.contains("from b"), "{client:?}: {}", resp.body);
        // A 529 is retried once on the same endpoint, as when it comes as a status.
        assert_eq!(a.count(), 2, "{client:?}");
        let line = p.wait_log("served_by=b:m");
        assert!(line.contains("tried=a:m→529,a:m→529,b:m→200"), "{line}");
    }
    // Alone, its error is the answer, with the status its type names: an Anthropic
    // client gets it as sent, another client its own error (529 as the 503 it knows).
    for (kind, status, other) in [
        ("overloaded_error", 529u16, 503u16),
        ("rate_limit_error", 429, 429),
    ] {
        let body = error(kind).to_string();
        let a = MockUpstream::always(Reply::Json(200, body.clone()));
        let p = Proxy::start(&anthropic_then_b(&a, "failover:\n  retries: 0\n"));
        let resp = ask_as(&p, Wire::Anthropic, "a:m", false);
        assert_eq!(resp.status, status, "{kind}: {}", resp.body);
        assert_text(&resp.body, &body);
        let resp = ask_as(&p, Wire::Chat, "a:m", false);
        assert_eq!(resp.status, other, "{kind}: {}", resp.body);
        assert_eq!(resp.error_message(), "Overloaded", "{kind}");
    }
    // A stream whose first event is the error was already told by its status.
    let a = MockUpstream::always(Reply::Sse(
        vec![named("error", error("overloaded_error"))],
        Duration::ZERO,
    ));
    let p = Proxy::start(&anthropic_then_b(&a, "failover:\n  retries: 0\n"));
    for (client, status) in [(Wire::Anthropic, 529), (Wire::Chat, 503)] {
        let resp = ask_as(&p, client, "a:m", true);
        assert_eq!(resp.status, status, "{client:?} stream: {}", resp.body);
        assert_eq!(resp.error_message(), "Overloaded", "{client:?} stream");
    }
}

#[test]
fn a_failed_responses_object_sent_with_200_fails_over() {
    // A Responses source ends a request that failed with a whole response object whose
    // `status` is `failed`. A Responses client got it as an answer, and nothing else was
    // tried; a Chat client got a 502 instead of the next endpoint's answer.
    let failed = json!({"id": "resp_1", "object": "response", "status": "failed", "output": [],
        "error": {"code": "server_error", "message": "the model crashed"}});
    let answer = json!({"id": "resp_2", "object": "response", "status": "completed",
        "output": [{"type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "from b", "annotations": []}]}]});
    let both = |a: &MockUpstream, b: &MockUpstream| {
        format!(
            "providers:\n  a: {{api_base: {}, api_protocol: responses, models: [m]}}\n  b: {{api_base: {}, api_protocol: responses, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, b:m]}}\nfailover:\n  retries: 0\n",
            a.url(),
            b.url()
        )
    };
    for (path, body) in [
        ("/v1/responses", json!({"model": "smart", "input": "hi"})),
        (
            "/v1/chat/completions",
            json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ] {
        let a = MockUpstream::always(Reply::json(200, failed.clone()));
        let b = MockUpstream::always(Reply::json(200, answer.clone()));
        let p = Proxy::start(&both(&a, &b));
        let resp = p.post(path, body);
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        assert!(resp.body.contains("from b"), "{path}: {}", resp.body);
        assert_eq!((a.count(), b.count()), (1, 1), "{path}");
        let line = p.wait_log("served_by=b:m");
        assert!(line.contains("tried=a:m→502,b:m→200"), "{path}: {line}");
    }
    // An answer whose items say `failed` (a tool that failed) is an answer.
    let mut tool_failed = answer.clone();
    tool_failed["output"].as_array_mut().unwrap().insert(
        0,
        json!({"type": "web_search_call", "id": "ws_1", "status": "failed"}),
    );
    let a = MockUpstream::always(Reply::json(200, tool_failed.clone()));
    let b = MockUpstream::always(Reply::json(200, answer.clone()));
    let p = Proxy::start(&both(&a, &b));
    let resp = p.post("/v1/responses", json!({"model": "smart", "input": "hi"}));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json(), tool_failed);
    assert_eq!(b.count(), 0);
}

#[test]
fn refused_connection_falls_through() {
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&dead_url(), &b.url(), ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
}

#[test]
fn a_host_that_does_not_resolve_falls_through() {
    // A label longer than DNS allows (63 bytes) fails to resolve before any query is
    // sent, so the test reaches no name server; the failure takes the same path as a
    // name a server does not know.
    let host = format!("http://{}.example/v1", "a".repeat(64));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&host, &b.url(), ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    let line = p.wait_log("status=200");
    assert!(line.contains("tried=a:m→dns,b:m→200"), "{line}");
    // With nowhere else to go, the client is told what failed.
    let p = Proxy::start(&config(&host, &host, ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 502, "{}", resp.body);
    let message = resp.error_message();
    let told = format!(
        "host not found: `{}.example` does not resolve (check `api_base`, and this \
         machine's DNS)",
        "a".repeat(64)
    );
    assert_text(
        &message,
        &format!("every target failed: a:m → {told}; b:m → {told}"),
    );
}

#[test]
fn client_errors_are_surfaced_unchanged_and_nothing_else_is_tried() {
    for status in [400u16, 401, 402, 403, 422] {
        let body = format!(
            r#"{{"error":{{"message":"refused with {status}","type":"invalid_request_error"}}}}"#
        );
        let a = MockUpstream::always(Reply::Json(status, body.clone()));
        let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        let resp = ask(&p, "smart");
        assert_eq!(resp.status, status);
        assert_text(&resp.body, &body);
        assert_eq!(b.count(), 0, "{status} must not fall through");
        // Whose words they are: a virtual model's client could not tell otherwise.
        assert_eq!(resp.header("x-routeplane-provider"), Some("a"), "{status}");
        assert_eq!(resp.header("x-routeplane-model"), Some("m"), "{status}");
        assert_eq!(resp.header("x-routeplane-attempts"), Some("1"), "{status}");
    }
}

#[test]
fn a_model_one_endpoint_does_not_have_is_asked_of_the_next() {
    // Ollama without the model pulled, a retired hosted model, a wrong `api_base` path:
    // a 404 is the endpoint's, and a virtual model moves on (not retried).
    let missing = r#"{"error":"model \"m\" not found, try pulling it first"}"#;
    let a = MockUpstream::always(Reply::Json(404, missing.into()));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(a.count(), 1);
    let line = p.wait_log("served_by=b:m");
    assert!(line.contains("tried=a:m→404,b:m→200"), "{line}");
    // Named alone, its 404 is the answer, as it came.
    let resp = ask(&p, "a:m");
    assert_eq!(resp.status, 404);
    assert_text(&resp.body, missing);
    assert_eq!(resp.header("x-routeplane-provider"), Some("a"));
    // When no endpoint has it, still a 404, saying what each answered.
    let c = MockUpstream::always(Reply::Json(404, missing.into()));
    let p = Proxy::start(&config(&a.url(), &c.url(), ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 404, "{}", resp.body);
    let message = resp.error_message();
    assert!(
        message.starts_with("every target failed: a:m → 404"),
        "{message}"
    );
}

#[test]
fn exhausted_lists_every_attempt() {
    let a = MockUpstream::always(Reply::Json(500, r#"{"error":{"message":"boom"}}"#.into()));
    let dead = dead_url();
    let p = Proxy::start(&config(&a.url(), &dead, ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 502);
    // Where the refusal came from, and its likely cause.
    let at = dead
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        &format!(
            "every target failed: a:m → 500 boom; b:m → connection refused by {at} (is the server running?)"
        ),
    );
    // a's 500 retried once, then b.
    assert_eq!(resp.header("x-routeplane-attempts"), Some("3"));
    // One endpoint that did not answer: its failure, with the attempts it took.
    let resp = ask(&p, "b:m");
    assert_eq!(resp.status, 502, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-attempts"), Some("1"));
}

#[test]
fn all_rate_limited_is_429_with_retry_after() {
    let limited = || {
        Reply::JsonWith(
            429,
            vec![("Retry-After".into(), "7".into())],
            r#"{"error":{"message":"slow"}}"#.into(),
        )
    };
    let a = MockUpstream::always(limited());
    let b = MockUpstream::always(limited());
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("7"));
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "every target failed: a:m → 429 slow; b:m → 429 slow",
    );
}

#[test]
fn all_rate_limited_without_retry_after_says_when_the_first_cool_down_ends() {
    let limited = |headers: Vec<(String, String)>| {
        MockUpstream::always(Reply::JsonWith(
            429,
            headers,
            r#"{"error":{"message":"slow"}}"#.into(),
        ))
    };
    // Neither names a pause: the cool-down each is given is what is left to wait.
    let (a, b) = (limited(vec![]), limited(vec![]));
    let p = Proxy::start(&config(
        &a.url(),
        &b.url(),
        "failover:\n  retries: 0\n  cooldown_secs: 20\n",
    ));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 429, "{}", resp.body);
    assert_eq!(resp.header("retry-after"), Some("20"));
    // An OpenAI-style reset of 2.5 s is the shorter wait, rounded up: 2 would be early.
    let reset = vec![("x-ratelimit-reset-requests".into(), "2.5s".into())];
    let (a, b) = (limited(reset), limited(vec![]));
    let p = Proxy::start(&config(
        &a.url(),
        &b.url(),
        "failover:\n  retries: 0\n  cooldown_secs: 20\n",
    ));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 429, "{}", resp.body);
    assert_eq!(resp.header("retry-after"), Some("3"));
}

/// Two Anthropic sources `a` and `b` serving `m`, `smart` = a:m then b:m, asked once each.
fn anthropic_pair(a: &MockUpstream, b: &MockUpstream) -> String {
    format!(
        "providers:\n  a: {{api_base: {}, api_protocol: anthropic, models: [m]}}\n  b: {{api_base: {}, api_protocol: anthropic, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, b:m]}}\nfailover:\n  retries: 0\n",
        a.url(),
        b.url()
    )
}

#[test]
fn every_endpoint_overloaded_is_the_clients_overloaded_with_every_attempt() {
    // Anthropic's 529 as a status (with a pause named) from one source, as a stream's
    // error event from the other (an event stream sent for a whole answer is read as
    // one). Before, every client got a 502 `api_error`, which Claude Code shows as a
    // broken API rather than "overloaded".
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let a = MockUpstream::always(Reply::JsonWith(
        529,
        vec![("Retry-After".into(), "3".into())],
        overloaded.to_string(),
    ));
    let b = MockUpstream::always(Reply::Sse(
        vec![named("error", overloaded.clone())],
        Duration::ZERO,
    ));
    let p = Proxy::start(&anthropic_pair(&a, &b));
    let cases = [
        (Wire::Anthropic, 529, "overloaded_error"),
        (Wire::Chat, 503, "server_error"),
        (Wire::Responses, 503, "server_error"),
        (Wire::Gemini, 503, "UNAVAILABLE"),
    ];
    for (client, status, kind) in cases {
        for stream in [false, true] {
            let what = format!("{client:?}, stream {stream}");
            let resp = ask_as(&p, client, "smart", stream);
            assert_eq!(resp.status, status, "{what}: {}", resp.body);
            let error = &resp.json()["error"];
            let said = match client {
                Wire::Gemini => &error["status"],
                _ => &error["type"],
            };
            assert_eq!(said, kind, "{what}: {}", resp.body);
            assert_text(
                &resp.error_message(),
                "every target failed: a:m → 529 Overloaded; b:m → 529 Overloaded",
            );
            assert_eq!(resp.header("x-routeplane-attempts"), Some("2"), "{what}");
            assert_eq!(resp.header("retry-after"), Some("3"), "{what}");
        }
    }
    // A rate limit among the overloaded: still the sources are full, not the client
    // sending too much; its pause is the one to wait.
    let limited = MockUpstream::always(Reply::JsonWith(
        429,
        vec![("Retry-After".into(), "5".into())],
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}})
            .to_string(),
    ));
    let p = Proxy::start(&anthropic_pair(&limited, &b));
    let resp = ask_as(&p, Wire::Anthropic, "smart", false);
    assert_eq!(resp.status, 529, "{}", resp.body);
    assert_eq!(resp.header("retry-after"), Some("5"));
    assert_text(
        &resp.error_message(),
        "every target failed: a:m → 429 slow; b:m → 529 Overloaded",
    );
    // Overloaded with no pause named: no `Retry-After` made up from a cool-down.
    let plain = MockUpstream::always(Reply::Json(529, overloaded.to_string()));
    let p = Proxy::start(&anthropic_pair(&plain, &b));
    let resp = ask_as(&p, Wire::Chat, "smart", false);
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert_eq!(resp.header("retry-after"), None);
}

#[test]
fn an_endpoint_with_no_key_leaves_the_answer_to_those_asked() {
    // A virtual model's hosted fallback the user has no key for was never asked: the
    // overloaded or rate-limited sources that were decide the answer, not a 502.
    let cases = [
        (529, "overloaded_error", 529),
        (429, "rate_limit_error", 429),
    ];
    for (status, kind, want) in cases {
        let a = MockUpstream::always(Reply::Json(
            status,
            json!({"type": "error", "error": {"type": kind, "message": "busy"}}).to_string(),
        ));
        let p = Proxy::start(&format!(
            "providers:\n  a: {{api_base: {}, api_protocol: anthropic, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, openai:gpt-4o]}}\nfailover:\n  retries: 0\n",
            a.url()
        ));
        let resp = ask_as(&p, Wire::Anthropic, "smart", false);
        assert_eq!(resp.status, want, "{}", resp.body);
        assert_eq!(resp.json()["error"]["type"], kind, "{}", resp.body);
        let message = resp.error_message();
        assert!(message.contains("a:m → "), "{message}");
        assert!(message.contains("openai:gpt-4o → "), "{message}");
    }
}

#[test]
fn stream_failures_before_the_first_event_are_invisible() {
    let cases = [
        ("closes before first event", Reply::SseEmpty),
        (
            "slow first token",
            Reply::SseSlowFirst(Duration::from_secs(3), chat_events(2, true), Duration::ZERO),
        ),
        ("500", Reply::Json(500, "{}".into())),
        (
            "in-band error first",
            Reply::Sse(
                vec!["data: {\"error\":{\"message\":\"overloaded\",\"code\":503}}\n\n".into()],
                Duration::ZERO,
            ),
        ),
    ];
    let b = MockUpstream::always(Reply::Sse(chat_events(2, true), Duration::ZERO));
    for (name, reply) in cases {
        let a = MockUpstream::always(reply);
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        let s = stream(&p, "smart");
        assert_eq!(s.status, 200, "{name}: {}", s.text());
        assert_eq!(s.header("x-routeplane-provider"), Some("b"), "{name}");
        assert_eq!(
            s.text(),
            chat_events(2, true).concat(),
            "{name}: the client sees only b's stream"
        );
    }
}

/// Neither `a` nor `b` says `prefill: true`: a broken stream cannot be continued.
#[test]
fn stream_broken_after_first_event_ends_with_an_error_event() {
    let cases = [
        (
            "break",
            Reply::SseThenBreak(chat_events(3, false), Duration::ZERO),
            "upstream `a` stopped part-way through its answer (the stream ended without its end marker); no endpoint could continue it",
        ),
        (
            "stall",
            Reply::SseThenStall(
                chat_events(3, false),
                Duration::ZERO,
                Duration::from_secs(3),
            ),
            "upstream `a` stopped part-way through its answer (silent for 500ms, the limit `timeouts.idle_secs` sets); no endpoint could continue it",
        ),
        (
            "no done",
            Reply::Sse(chat_events(3, false), Duration::ZERO),
            "upstream `a` stopped part-way through its answer (the stream ended without its end marker); no endpoint could continue it",
        ),
    ];
    for (name, reply, message) in cases {
        let a = MockUpstream::always(reply);
        let b = MockUpstream::always(Reply::Sse(chat_events(2, true), Duration::ZERO));
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        let s = stream(&p, "smart");
        assert_eq!(s.status, 200, "{name}");
        let data = s.data();
        assert_eq!(
            data.len(),
            4,
            "{name}: three events then the error: {data:?}"
        );
        let err: serde_json::Value = serde_json::from_str(&data[3]).unwrap();
        assert_eq!(err["error"]["message"], message, "{name}");
        assert!(s.complete, "{name}: the client stream is closed properly");
        assert_eq!(b.count(), 0, "{name}: never restarted on another endpoint");
    }
}

#[test]
fn one_unreadable_event_is_dropped_and_the_stream_goes_on() {
    let mut events = chat_events(2, false);
    events.push("data: {broken json\n\n".into());
    events.extend(chat_events(1, true));
    let a = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let b = MockUpstream::always(Reply::Sse(chat_events(2, true), Duration::ZERO));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let s = stream(&p, "smart");
    let data = s.data();
    assert_eq!(data.len(), 4, "{data:?}");
    assert_eq!(data[3], "[DONE]");
    assert!(!s.text().contains("error"), "{}", s.text());
    p.wait_log("upstream `a` sent an unreadable stream event; dropped it");
    assert_eq!(b.count(), 0);
}

#[test]
fn bare_name_cascade_uses_the_same_failover() {
    let a = MockUpstream::always(Reply::Json(503, "{}".into()));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = ask(&p, "m");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    // 503 is retried once on `a`, then `b`.
    assert_eq!(resp.header("x-routeplane-attempts"), Some("3"));
}

#[test]
fn single_pinned_target_shows_its_own_error() {
    let a = MockUpstream::always(Reply::Json(
        500,
        r#"{"error":{"message":"model crashed"}}"#.into(),
    ));
    let b = MockUpstream::always(Reply::json(200, chat_answer("b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = ask(&p, "a:m");
    assert_eq!(resp.status, 500);
    assert_text(&resp.body, r#"{"error":{"message":"model crashed"}}"#);
}

#[test]
fn a_request_malformed_in_its_own_protocol_is_400_at_once_with_no_endpoint_asked() {
    // (client, a body its own protocol refuses, the message word for word). The mocks
    // speak another protocol, so the body is translated and the fault found there.
    let cases = [
        (
            Wire::Chat,
            json!({"model": "M"}),
            "`messages` is required and must be an array",
        ),
        (
            Wire::Anthropic,
            json!({"model": "M", "max_tokens": 50}),
            "`messages` is required and must be an array",
        ),
        (
            Wire::Responses,
            json!({"model": "M"}),
            "`input` is required: a string or a list of items",
        ),
        (
            Wire::Responses,
            json!({"model": "M", "input": 42}),
            "`input` must be a string or a list of items",
        ),
        (
            Wire::Gemini,
            json!({"contents": "hi"}),
            "`contents` must be a list of {role, parts}",
        ),
        (
            Wire::Gemini,
            json!({}),
            "`contents` is required: a list of {role, parts}",
        ),
    ];
    for up in [Wire::Chat, Wire::Anthropic] {
        let a = MockUpstream::always(up.reply(false, false));
        let b = MockUpstream::always(up.reply(false, false));
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    api_protocol: {up}\n    models: [m]\n  b:\n    api_base: {}\n    api_protocol: {up}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
            a.url(),
            b.url(),
            up = up.config_name(),
        ));
        let mut asked = 0;
        for (client, body, message) in cases.iter().filter(|(c, ..)| *c != up) {
            // A virtual model and a bare name that both providers serve.
            for model in ["smart", "m"] {
                let mut body = body.clone();
                if body.get("model").is_some() {
                    body["model"] = json!(model);
                }
                let resp = p.post(&client.url(model, false), body);
                let what = format!("{client:?} → {up:?}, {model}");
                assert_eq!(resp.status, 400, "{what}: {}", resp.body);
                let v = resp.json();
                assert_text(&client.error_message(&v), message);
                match client {
                    Wire::Gemini => assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{what}"),
                    _ => assert_eq!(v["error"]["type"], "invalid_request_error", "{what}"),
                }
                asked += 1;
            }
        }
        // The log line of each: no attempt, none tried.
        let refused = || -> Vec<String> {
            p.log()
                .into_iter()
                .filter(|l| l.contains(" status=400 "))
                .collect()
        };
        assert!(wait_until(Duration::from_secs(5), || refused().len() == asked));
        for line in refused() {
            assert!(line.contains(" attempts=0 "), "{line}");
            assert!(!line.contains("tried="), "{line}");
        }
        assert_eq!(a.count() + b.count(), 0, "{up:?}: no endpoint was asked");
        assert_eq!(
            p.get("/routeplane/cooldowns").json()["cooldowns"],
            json!([]),
            "{up:?}: no endpoint cools down"
        );
        // Nothing counted against `a`: it is still asked first.
        let resp = p.post(&up.url("smart", false), up.request("smart", false, false));
        assert_eq!(
            resp.header("x-routeplane-provider"),
            Some("a"),
            "{}",
            resp.body
        );
    }
}

#[test]
fn a_request_one_endpoint_cannot_take_moves_on_to_one_that_can() {
    // A Chat source cannot take `previous_response_id`; a Responses source can.
    let a = MockUpstream::always(Wire::Chat.reply(false, false));
    let b = MockUpstream::always(Wire::Responses.reply(false, false));
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\n  b:\n    api_base: {}\n    api_protocol: responses\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
        a.url(),
        b.url(),
    ));
    let resp = p.post(
        "/v1/responses",
        json!({"model": "smart", "input": "and then?", "previous_response_id": "resp_1"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(a.count(), 0);
    assert_eq!(b.requests()[0].json()["previous_response_id"], "resp_1");
}

#[test]
fn a_request_no_endpoint_can_take_is_400_saying_why() {
    let chat = || MockUpstream::always(Wire::Chat.reply(false, false));
    let (a, b) = (chat(), chat());
    let c = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let d = MockUpstream::always(Wire::Gemini.reply(false, false));
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\n  c:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n  d:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\nmodels:\n  chats:\n    endpoints: [a:m, b:m]\n  others:\n    endpoints: [c:m, d:m]\n",
        a.url(),
        b.url(),
        c.url(),
        d.url(),
    ));
    // Neither Chat source takes `previous_response_id`: the one reason, once.
    let resp = p.post(
        "/v1/responses",
        json!({"model": "chats", "input": "and then?", "previous_response_id": "resp_1"}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "`previous_response_id` needs a Responses upstream; send the full conversation in `input` instead",
    );
    // Neither Anthropic nor Gemini takes `n: 2`: each endpoint's reason.
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "others", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "every target failed: c:m → 400 the request field `n` cannot be expressed for provider `c`; remove it or choose another model; d:m → 400 the request field `n` cannot be expressed for provider `d`; remove it or choose another model",
    );
    assert_eq!(a.count() + b.count() + c.count() + d.count(), 0);
}
