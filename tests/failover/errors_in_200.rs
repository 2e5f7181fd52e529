//! An error sent with a 200 (an OpenAI-style error body, an Anthropic error body, a
//! Responses object whose `status` is `failed`): failed over like the status it names.

use super::*;

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
