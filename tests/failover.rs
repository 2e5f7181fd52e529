//! Virtual models and failover: the right endpoint serves, surfaced errors arrive
//! unchanged, and nothing the client sees betrays a failure before the first event.

use std::time::Duration;

use serde_json::json;

use crate::support::upstream::{chat_answer, chat_events};
use crate::support::{MockUpstream, Proxy, Reply, assert_text};

/// Two providers `a` and `b` serving `m`, a virtual model `smart` = a:m then b:m.
fn config(a: &str, b: &str, extra: &str) -> String {
    format!(
        "providers:\n  a:\n    api_base: {a}\n    models: [m]\n  b:\n    api_base: {b}\n    models: [m]\nmodels:\n  smart:\n    endpoints:\n      - a:m\n      - {{provider: b, service_id: m}}\ntimeouts:\n  first_byte_secs: 1\n  idle_secs: 0.5\n{extra}"
    )
}

fn ask(p: &Proxy, model: &str) -> crate::support::proxy::Resp {
    p.post(
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

fn stream(p: &Proxy, model: &str) -> crate::support::proxy::Streamed {
    p.stream(
        "/v1/chat/completions",
        json!({"model": model, "stream": true, "messages": []}),
    )
}

/// A port nothing listens on.
fn dead_url() -> String {
    let up = MockUpstream::always(Reply::Reset);
    let url = up.url();
    drop(up);
    url
}

#[test]
fn fall_through_statuses_and_faults_reach_the_next_endpoint() {
    let cases = [
        (
            "500",
            Reply::Json(500, r#"{"error":{"message":"boom"}}"#.into()),
        ),
        ("503", Reply::Json(503, "overloaded".into())),
        ("408", Reply::Json(408, "{}".into())),
        (
            "429",
            Reply::Json(429, r#"{"error":{"message":"slow down"}}"#.into()),
        ),
        ("reset", Reply::Reset),
        ("garbage", Reply::Garbage),
        ("hang", Reply::Hang(Duration::from_secs(3))),
        (
            "context",
            Reply::Json(
                400,
                r#"{"error":{"message":"x","code":"context_length_exceeded"}}"#.into(),
            ),
        ),
    ];
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    for (name, reply) in cases {
        let a = MockUpstream::always(reply);
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        let resp = ask(&p, "smart");
        assert_eq!(resp.status, 200, "{name}: {}", resp.body);
        assert_eq!(
            resp.json()["choices"][0]["message"]["content"],
            "from b",
            "{name}"
        );
        assert_eq!(resp.header("x-routeplane-provider"), Some("b"), "{name}");
        assert_eq!(resp.header("x-routeplane-attempts"), Some("2"), "{name}");
        assert_eq!(a.count(), 1, "{name}: each endpoint at most once");
        let line = p.wait_log("served_by=b:m");
        assert!(line.contains("attempts=2"), "{name}: {line}");
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
fn client_errors_are_surfaced_unchanged_and_nothing_else_is_tried() {
    for status in [400u16, 401, 402, 403, 404, 422] {
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
    }
}

#[test]
fn exhausted_lists_every_attempt() {
    let a = MockUpstream::always(Reply::Json(500, r#"{"error":{"message":"boom"}}"#.into()));
    let dead = dead_url();
    let p = Proxy::start(&config(&a.url(), &dead, ""));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 502);
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "every target failed: a:m → 500 boom; b:m → connection refused",
    );
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
fn cooldown_skips_a_failed_endpoint_then_recovers() {
    let a = MockUpstream::script(vec![
        Reply::Json(500, "{}".into()),
        Reply::json(200, chat_answer("from a")),
    ]);
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(
        &a.url(),
        &b.url(),
        "failover:\n  cooldown_secs: 0.6\n",
    ));
    assert_eq!(ask(&p, "smart").header("x-routeplane-provider"), Some("b"));
    // Within the cool-down, `a` is tried last: `b` answers without `a` being asked.
    let resp = ask(&p, "smart");
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(resp.header("x-routeplane-attempts"), Some("1"));
    assert_eq!(a.count(), 1);
    std::thread::sleep(Duration::from_millis(700));
    let resp = ask(&p, "smart");
    assert_eq!(
        resp.header("x-routeplane-provider"),
        Some("a"),
        "{}",
        resp.body
    );
}

#[test]
fn retry_after_sets_the_cooldown_length() {
    let a = MockUpstream::script(vec![
        Reply::JsonWith(429, vec![("Retry-After".into(), "1".into())], "{}".into()),
        Reply::json(200, chat_answer("from a")),
    ]);
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    // The default cool-down is long; the upstream's Retry-After (1 s) wins.
    let p = Proxy::start(&config(
        &a.url(),
        &b.url(),
        "failover:\n  cooldown_secs: 60\n",
    ));
    assert_eq!(ask(&p, "smart").header("x-routeplane-provider"), Some("b"));
    assert_eq!(ask(&p, "smart").header("x-routeplane-provider"), Some("b"));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(ask(&p, "smart").header("x-routeplane-provider"), Some("a"));
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

#[test]
fn stream_broken_after_first_event_ends_with_an_error_event() {
    let cases = [
        (
            "break",
            Reply::SseThenBreak(chat_events(3, false), Duration::ZERO),
            "upstream `a` stopped part-way through its answer (the stream ended without its end marker)",
        ),
        (
            "stall",
            Reply::SseThenStall(
                chat_events(3, false),
                Duration::ZERO,
                Duration::from_secs(3),
            ),
            "upstream `a` stopped part-way through its answer (silent for 500ms, the limit `timeouts.idle_secs` sets)",
        ),
        (
            "no done",
            Reply::Sse(chat_events(3, false), Duration::ZERO),
            "upstream `a` stopped part-way through its answer (the stream ended without its end marker)",
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
fn malformed_event_after_the_first_is_an_error_event() {
    let mut events = chat_events(2, false);
    events.push("data: {broken json\n\n".into());
    events.extend(chat_events(1, true));
    let a = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let b = MockUpstream::always(Reply::Sse(chat_events(2, true), Duration::ZERO));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let s = stream(&p, "smart");
    let data = s.data();
    assert_eq!(data.len(), 3, "{data:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data[2]).unwrap()["error"]["message"],
        "upstream sent a malformed stream event"
    );
}

#[test]
fn models_array_orders_targets_and_is_removed_upstream() {
    let a = MockUpstream::always(Reply::Json(500, "{}".into()));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"models": ["a:m", "b:m"], "messages": []}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    let sent = b.requests()[0].json();
    assert_eq!(sent["model"], "m");
    assert!(
        sent.get("models").is_none(),
        "`models` is not sent upstream: {sent}"
    );
}

#[test]
fn models_array_limits_are_400_before_any_upstream_call() {
    let a = MockUpstream::always(Reply::json(200, chat_answer("a")));
    let b = MockUpstream::always(Reply::json(200, chat_answer("b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let nine: Vec<String> = (0..9).map(|_| "a:m".to_string()).collect();
    let resp = p.post(
        "/v1/chat/completions",
        json!({"models": nine, "messages": []}),
    );
    assert_eq!(resp.status, 400);
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "`models` lists 9 models; at most 8 are allowed",
    );
    let resp = p.post(
        "/v1/chat/completions",
        json!({"models": ["a:m", "nope"], "messages": []}),
    );
    assert_eq!(resp.status, 400);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("`models` names unknown model `nope`"),
        "{}",
        resp.body
    );
    assert_eq!(a.count() + b.count(), 0);
}

#[test]
fn bare_name_cascade_uses_the_same_failover() {
    let a = MockUpstream::always(Reply::Json(503, "{}".into()));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = ask(&p, "m");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(resp.header("x-routeplane-attempts"), Some("2"));
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
