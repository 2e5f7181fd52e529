//! The failover table: which statuses and faults move on (a refused connection, a
//! host that does not resolve) and which reach the client unchanged. An error sent with
//! a 200 is in `errors_in_200.rs`, every endpoint failed in `exhausted.rs`, streams in
//! `streams.rs`, requests no endpoint can take in `unfit_requests.rs`, cool-downs in
//! `cooldown.rs`.

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
        "host not found: `{}.example` does not resolve (check `api_base`, the network or \
         DNS)",
        "a".repeat(64)
    );
    assert_text(
        &message,
        &format!("every target failed: a:m → {told}; b:m → {told}"),
    );
}

#[test]
fn a_builtins_own_host_that_does_not_resolve_names_the_network_not_api_base() {
    // `openrouter` with only its key: "check `api_base`" sent the user looking for a
    // setting they never wrote. The test hook puts a name under `.invalid` in place of
    // the built-ins' hosts; a label over 63 bytes fails before any query is sent.
    let host = format!("{}.invalid", "a".repeat(64));
    let yaml = format!(
        "providers:\n  openrouter:\n    api_key: sk-or-test-123456\n  openai:\n    \
         api_base: https://{host}/v1\n    api_key: sk-test-123456\n"
    );
    let p = Proxy::start_with(&yaml, &[("ROUTEPLANE_TEST_BUILTIN_HOST", &host)], &[]);
    let not_found = format!("host not found: `{host}` does not resolve");
    // Its model list, asked at start, says so in the log.
    let listed = p.wait_log("cannot list the models of openrouter");
    assert!(
        listed.ends_with(&format!("{not_found} (check the network or DNS)")),
        "{listed}"
    );
    let chat = |model: &str| {
        p.post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    let resp = chat("openrouter:x/m");
    assert_eq!(resp.status, 502, "{}", resp.body);
    assert_text(
        &resp.error_message(),
        &format!("upstream `openrouter` failed: {not_found} (check the network or DNS)"),
    );
    // A built-in whose `api_base` the user wrote: that setting is checked first.
    let resp = chat("openai:gpt-4o");
    assert_eq!(resp.status, 502, "{}", resp.body);
    assert_text(
        &resp.error_message(),
        &format!("upstream `openai` failed: {not_found} (check `api_base`, the network or DNS)"),
    );
}

#[test]
fn a_host_that_does_not_resolve_is_dns_in_the_log_whatever_its_name_says() {
    // The log's word came from the failure's text: a host named for a refusal or a
    // reset was logged `refused` or `reset`, as if it had answered. Too long a label
    // (over 63 bytes) fails before any query, as in the test above.
    let host = |word: &str| format!("http://connection-{word}-{}.example/v1", "a".repeat(50));
    let p = Proxy::start(&config(&host("refused"), &host("reset"), ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 502, "{}", resp.body);
    let line = p.wait_log("status=502");
    assert!(line.contains("tried=a:m→dns,b:m→dns"), "{line}");
}

#[test]
fn client_errors_are_surfaced_unchanged_and_nothing_else_is_tried() {
    // A 401 is surfaced too, but retold: it refused Routeplane's key, not the client's
    // (sources::keys::an_upstream_401_says_routeplanes_key_was_refused_not_the_clients).
    for status in [400u16, 402, 403, 422] {
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
