//! Virtual models and failover: the right endpoint serves, surfaced errors arrive
//! unchanged, and nothing the client sees betrays a failure before the first event.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::answer::{self, Fault};
use crate::support::upstream::{chat_answer, chat_events, dead_url};
use crate::support::wire::{Wire, named};
use crate::support::{Dir, MockUpstream, Proxy, Reply, assert_text, wait_until};

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

/// Seconds left of `target`'s cool-down, from the running proxy.
fn cooling_left(p: &Proxy, target: &str) -> Option<f64> {
    let list = p.get("/routeplane/cooldowns").json()["cooldowns"].clone();
    list.as_array()?
        .iter()
        .find(|c| c["target"] == target)
        .and_then(|c| c["secs_left"].as_f64())
}

#[test]
fn a_spent_plan_limit_cools_its_endpoint_down_until_it_resets() {
    // The ChatGPT (Codex) backend names when a plan's window comes back in the body of
    // its 429 and sends no Retry-After; Anthropic's subscription in a header, beside a
    // Retry-After that may be far shorter. Either way the endpoint is neither asked
    // again after a pause nor every `cooldown_secs`, but left until then.
    let reset_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3000;
    let codex = Reply::Json(
        429,
        r#"{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","plan_type":"plus","resets_in_seconds":3000}}"#.into(),
    );
    let claude = Reply::JsonWith(
        429,
        vec![
            ("retry-after".into(), "1".into()),
            (
                "anthropic-ratelimit-unified-status".into(),
                "rejected".into(),
            ),
            (
                "anthropic-ratelimit-unified-reset".into(),
                reset_at.to_string(),
            ),
        ],
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"limit reached"}}"#.into(),
    );
    for (name, limited) in [("codex", codex), ("claude", claude)] {
        let a = MockUpstream::always(limited);
        let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
        let p = Proxy::start(&config(&a.url(), &b.url(), ""));
        let resp = ask(&p, "smart");
        assert_eq!(resp.header("x-routeplane-provider"), Some("b"), "{name}");
        assert_eq!(a.count(), 1, "{name}: not retried");
        let left = cooling_left(&p, "a:m").unwrap_or(0.0);
        assert!((2900.0..=3000.0).contains(&left), "{name}: {left}");
        ask(&p, "smart");
        assert_eq!(a.count(), 1, "{name}: tried last while it is spent");
    }
    // Named alone, the limit reaches the client with the wait in the standard header.
    let a = MockUpstream::always(Reply::Json(
        429,
        r#"{"error":{"type":"usage_limit_reached","message":"m","resets_in_seconds":3000}}"#.into(),
    ));
    let p = Proxy::start(&config(&a.url(), &a.url(), ""));
    let resp = ask(&p, "a:m");
    assert_eq!(resp.status, 429);
    let wait: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((2990..=3000).contains(&wait), "{wait}");
    // A 429 that names no reset keeps the usual cool-down.
    let a = MockUpstream::always(Reply::Json(429, r#"{"error":{"message":"slow"}}"#.into()));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), "failover:\n  backoff_ms: 20\n"));
    ask(&p, "smart");
    let left = cooling_left(&p, "a:m").unwrap_or(0.0);
    assert!((25.0..=30.0).contains(&left), "{left}");
}

#[test]
fn cooldown_skips_a_failed_endpoint_then_recovers() {
    // Two 500s: the first attempt and its retry.
    let a = MockUpstream::script(vec![
        Reply::Json(500, "{}".into()),
        Reply::Json(500, "{}".into()),
        Reply::json(200, chat_answer("from a")),
    ]);
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(
        &a.url(),
        &b.url(),
        "failover:\n  cooldown_secs: 0.6\n  backoff_ms: 20\n",
    ));
    assert_eq!(ask(&p, "smart").header("x-routeplane-provider"), Some("b"));
    // Within the cool-down, `a` is tried last: `b` answers without `a` being asked.
    let resp = ask(&p, "smart");
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(resp.header("x-routeplane-attempts"), Some("1"));
    assert_eq!(a.count(), 2);
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
    // The default cool-down is long; the upstream's Retry-After (1 s) wins. It is
    // longer than `max_retry_wait_secs`, so `a` is not waited for but cooled down.
    let p = Proxy::start(&config(
        &a.url(),
        &b.url(),
        "failover:\n  cooldown_secs: 60\n  max_retry_wait_secs: 0.5\n",
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
    assert_eq!(a.count() + b.count(), 0);
}

#[test]
fn a_models_list_passes_over_ids_nothing_serves() {
    let a = MockUpstream::always(Reply::json(200, chat_answer("from a")));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    // `gpt-4o` with no OpenAI key, a typo: the next id is there for that.
    for list in [json!(["gpt-4o", "b:m"]), json!(["nope", "b:m", "a:m"])] {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"models": list, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(resp.status, 200, "{list}: {}", resp.body);
        assert_eq!(resp.header("x-routeplane-provider"), Some("b"), "{list}");
    }
    p.wait_log("`models`: passing over \"gpt-4o\": nothing serves it");
    p.wait_log("`models`: passing over \"nope\": nothing serves it");
    // None served: the first one's 404, with what would serve it.
    let resp = p.post(
        "/v1/chat/completions",
        json!({"models": ["gpt-4o", "nope"], "messages": []}),
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    let message = resp.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.starts_with("unknown model `gpt-4o`"), "{message}");
    assert!(message.contains("set OPENAI_API_KEY"), "{message}");
    assert_eq!((a.count(), b.count()), (0, 2));
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

// ---- The 16 fault scenarios of the failoverbench catalogue, for a chat client ----
//
// `smart` = a:m then b:m, both able to continue a prefill; short deadlines keep each
// scenario around a second (the catalogue's 20 s and 30 s are scaled down).

/// Two chat providers `a` and `b` with `prefill: true`, a virtual model `smart`.
fn bench(a: &MockUpstream, b: &MockUpstream, extra: &str) -> String {
    format!(
        "providers:\n  a:\n    api_base: {}\n    prefill: true\n    models: [m]\n  b:\n    api_base: {}\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\ntimeouts:\n  first_byte_secs: 2\n  first_token_secs: 1\n  idle_secs: 1\nfailover:\n  backoff_ms: 50\n{extra}",
        a.url(),
        b.url()
    )
}

/// A healthy upstream tagged `tag`, continuing any prefill.
fn healthy(tag: &'static str) -> MockUpstream {
    MockUpstream::start(move |req| answer::reply(Wire::Chat, req, tag, Fault::None))
}

/// An upstream whose first answer is `first` and whose later ones are healthy.
fn first_then_healthy(tag: &'static str, first: Reply) -> MockUpstream {
    MockUpstream::numbered(move |n, req| match n {
        0 => first.clone(),
        _ => answer::reply(Wire::Chat, req, tag, Fault::None),
    })
}

/// An upstream whose first streamed answer has `fault` and whose later ones are healthy.
fn faulty_once(tag: &'static str, fault: Fault) -> MockUpstream {
    MockUpstream::numbered(move |n, req| {
        let f = if n == 0 { fault } else { Fault::None };
        answer::reply(Wire::Chat, req, tag, f)
    })
}

/// A chat client's streamed request for `smart`, with usage.
fn ask_smart(p: &Proxy) -> crate::support::proxy::Streamed {
    p.stream(
        "/v1/chat/completions",
        json!({"model": "smart", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Why does a gateway earn trust?"}]}),
    )
}

/// Asserts the client got the whole canonical answer, ended properly, with no error.
#[track_caller]
fn assert_whole(s: &crate::support::proxy::Streamed) {
    assert_eq!(s.status, 200, "{}", s.text());
    let got = Wire::Chat.read_stream(s);
    assert_text(&got.text, answer::CANONICAL);
    assert!(got.ended, "ends with [DONE]: {}", s.text());
    assert!(s.complete, "the HTTP stream is closed properly");
    assert!(!s.text().contains("\"error\""), "{}", s.text());
    let roles = s.data().iter().filter(|d| d.contains("\"role\"")).count();
    assert_eq!(roles, 1, "exactly one role chunk: {}", s.text());
}

/// The prefill `req` carried, if any.
fn prefill_of(req: &crate::support::upstream::Recorded) -> Option<String> {
    answer::prefill(&req.json())
}

#[test]
fn s01_429_with_retry_after_is_waited_out_on_the_same_endpoint() {
    let a = first_then_healthy(
        "a",
        Reply::JsonWith(
            429,
            vec![("Retry-After".into(), "1".into())],
            r#"{"error":{"message":"slow down"}}"#.into(),
        ),
    );
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let s = ask_smart(&p);
    assert_whole(&s);
    assert_eq!(s.header("x-routeplane-provider"), Some("a"));
    assert_eq!((a.count(), b.count()), (2, 0));
    let gap = a.gaps()[0];
    // Honoured within 0.2 s, with room for a loaded machine.
    assert!(
        gap >= Duration::from_millis(990) && gap <= Duration::from_millis(1500),
        "{gap:?}"
    );
}

#[test]
fn s02_persistent_429_backs_off_once_then_fails_over() {
    let a = MockUpstream::always(Reply::Json(429, r#"{"error":{"message":"slow"}}"#.into()));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    assert_whole(&ask_smart(&p));
    assert_eq!(a.count(), 2, "one retry, no hammering");
    // Backoff 50 ms, jittered in its upper half.
    assert!(a.gaps()[0] >= Duration::from_millis(25), "{:?}", a.gaps());
    assert_eq!(b.count(), 1);
}

#[test]
fn an_endpoint_is_asked_at_most_twice_within_a_second_and_a_half() {
    let a = MockUpstream::always(Reply::Json(503, r#"{"error":{"message":"busy"}}"#.into()));
    let b = healthy("b");
    let p = Proxy::start(&config(
        &a.url(),
        &b.url(),
        "failover:\n  retries: 2\n  backoff_ms: 20\n",
    ));
    assert_whole(&ask_smart(&p));
    assert_eq!((a.count(), b.count()), (3, 1));
    let gaps = a.gaps();
    // The first retry waits its backoff (at most 20 ms); the second waits until 1.5 s
    // after the first ask, not 40 ms (arrivals lag their asks a little).
    assert!(gaps[0] < Duration::from_millis(500), "{gaps:?}");
    assert!(gaps[0] + gaps[1] >= Duration::from_millis(1450), "{gaps:?}");
}

#[test]
fn s03_a_single_500_is_retried_on_the_same_endpoint() {
    let a = first_then_healthy(
        "a",
        Reply::Json(500, r#"{"error":{"message":"oops"}}"#.into()),
    );
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let s = ask_smart(&p);
    assert_whole(&s);
    assert_eq!(s.header("x-routeplane-provider"), Some("a"));
    assert_eq!((a.count(), b.count()), (2, 0));
}

#[test]
fn s04_persistent_503_fails_over_within_the_budget() {
    let a = MockUpstream::always(Reply::Json(503, r#"{"error":{"message":"busy"}}"#.into()));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let s = ask_smart(&p);
    assert_whole(&s);
    assert_eq!(s.header("x-routeplane-provider"), Some("b"));
    assert_eq!(a.count(), 2);
}

#[test]
fn s05_a_reset_before_the_head_is_retried() {
    let a = first_then_healthy("a", Reply::Reset);
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let s = ask_smart(&p);
    assert_whole(&s);
    assert_eq!(s.header("x-routeplane-provider"), Some("a"));
    assert_eq!((a.count(), b.count()), (2, 0));
}

#[test]
fn s06_a_silent_endpoint_is_not_asked_twice() {
    let a = MockUpstream::always(Reply::Hang(Duration::from_secs(8)));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let started = Instant::now();
    let s = ask_smart(&p);
    assert_whole(&s);
    assert_eq!(s.header("x-routeplane-provider"), Some("b"));
    assert_eq!(a.count(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "first_byte_secs 2 bounds it"
    );
}

#[test]
fn s07_a_slow_first_token_moves_on_invisibly() {
    let a = MockUpstream::start(|req| {
        answer::reply(
            Wire::Chat,
            req,
            "a",
            Fault::SlowFirst(Duration::from_secs(4)),
        )
    });
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let started = Instant::now();
    let s = ask_smart(&p);
    assert_whole(&s);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "first_token_secs 1, not the 4 s wait: {:?}",
        started.elapsed()
    );
    assert_eq!(s.header("x-routeplane-provider"), Some("b"));
    assert!(
        !s.text().contains("chatcmpl-a"),
        "nothing of a's stream: {}",
        s.text()
    );
    assert_eq!(a.count(), 1);
}

#[test]
fn s08_a_stream_cut_mid_answer_is_continued() {
    let a = faulty_once("a", Fault::Cut(24));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let s = ask_smart(&p);
    assert_whole(&s);
    // A cut is retried on the same endpoint, with the answer so far as a prefill.
    assert_eq!((a.count(), b.count()), (2, 0));
    let pre = prefill_of(&a.requests()[1]).expect("the continuation ends with a prefill");
    assert_eq!(
        pre,
        answer::tokens(answer::CANONICAL)[..24].concat().trim_end()
    );
    assert!(prefill_of(&a.requests()[0]).is_none());
    let line = p.wait_log("model=smart");
    assert!(line.contains("rescued=1 rescued_by=a:m"), "{line}");
    assert!(!s.text().contains("chatcmpl-b"));
}

#[test]
fn s09_a_stalled_stream_is_continued_elsewhere() {
    let a = MockUpstream::start(|req| {
        answer::reply(
            Wire::Chat,
            req,
            "a",
            Fault::Stall(12, Duration::from_secs(5)),
        )
    });
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let started = Instant::now();
    let s = ask_smart(&p);
    assert_whole(&s);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // A stall is not retried on the same endpoint: `b` continues.
    assert_eq!((a.count(), b.count()), (1, 1));
    assert!(prefill_of(&b.requests()[0]).is_some());
    // The continuation keeps a's ids: one stream for the client.
    let ids: Vec<String> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect();
    assert!(ids.iter().all(|id| id == "chatcmpl-a"), "{ids:?}");
    p.wait_log("rescued=1 rescued_by=b:m");
    // And the proxy is well afterwards.
    assert_whole(&ask_smart(&p));
}

#[test]
fn s10_one_malformed_chunk_is_skipped() {
    let a = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "a", Fault::BadEvent(9)));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    assert_whole(&ask_smart(&p));
    assert_eq!((a.count(), b.count()), (1, 0));
    p.wait_log("sent an unreadable stream event; dropped it");
}

#[test]
fn s11_a_finished_stream_without_done_is_complete() {
    let a = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "a", Fault::NoEndMarker));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let started = Instant::now();
    let s = ask_smart(&p);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no waiting for [DONE]"
    );
    assert_whole(&s);
    let usage = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find(|v| v["usage"].is_object())
        .expect("usage reported");
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!((a.count(), b.count()), (1, 0));
}

#[test]
fn s12_context_length_goes_to_the_next_model_without_a_retry() {
    let a = MockUpstream::always(Reply::Json(
        400,
        r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#.into(),
    ));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    assert_whole(&ask_smart(&p));
    assert_eq!((a.count(), b.count()), (1, 1));
}

#[test]
fn s13_a_content_policy_rejection_is_surfaced_without_a_retry() {
    let body = r#"{"error":{"message":"Your request was rejected by the safety system","type":"invalid_request_error","code":"content_policy_violation"}}"#;
    let a = MockUpstream::always(Reply::Json(400, body.into()));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let s = ask_smart(&p);
    assert_eq!(s.status, 400);
    assert_text(&s.text(), body);
    assert_eq!((a.count(), b.count()), (1, 0));
}

#[test]
fn s14_a_cut_is_continued_where_the_prefill_is_supported() {
    let a = faulty_once("a", Fault::Cut(24));
    // `b` would refuse a prefill: it is never asked one.
    let b = MockUpstream::start(|req| answer::refuses_prefill(req, "b"));
    let p = Proxy::start(&bench(&a, &b, ""));
    assert_whole(&ask_smart(&p));
    assert_eq!(b.count(), 0);
}

#[test]
fn s15_a_flapping_endpoint_is_cooled_down_and_used_again() {
    // Four 503s (two requests' worth), then healthy.
    let a = MockUpstream::numbered(|n, req| match n {
        0..4 => Reply::Json(503, "{}".into()),
        _ => answer::reply(Wire::Chat, req, "a", Fault::None),
    });
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, "  cooldown_secs: 1\n"));
    let mut served = Vec::new();
    for i in 0..5 {
        let s = ask_smart(&p);
        assert_whole(&s);
        served.push(s.header("x-routeplane-provider").unwrap().to_string());
        if i != 0 {
            std::thread::sleep(Duration::from_millis(1100));
        }
    }
    // 1: a fails twice, b answers; 2: a cools down, b answers at once; 3: a probed again
    // after its cool-down, fails twice, b answers; 4 and 5: a has recovered.
    assert_eq!(served, ["b", "b", "b", "a", "a"]);
    assert_eq!(a.count(), 6);
}

#[test]
fn s16_the_fallbacks_model_and_usage_are_reported() {
    let a = MockUpstream::always(Reply::Json(503, "{}".into()));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let s = ask_smart(&p);
    assert_whole(&s);
    let chunks: Vec<serde_json::Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(chunks.iter().all(|c| c["model"] == "b-model"), "{chunks:?}");
    assert!(
        chunks
            .iter()
            .any(|c| c["usage"]["total_tokens"].as_u64().is_some())
    );
    assert!(a.count() <= 6);
}

#[test]
fn a_client_that_leaves_during_a_retry_wait_stops_everything() {
    let a = MockUpstream::always(Reply::JsonWith(
        429,
        vec![("Retry-After".into(), "3".into())],
        "{}".into(),
    ));
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let (line, total) = p.leave_once_asked(
        "/v1/chat/completions",
        json!({"model": "smart", "stream": true, "messages": []}),
        || a.count() == 1,
    );
    // It left 0.3 s into the 3 s wait.
    assert!(total < 2500.0, "noticed within the 3 s wait: {line}");
    // No endpoint served it: the one that refused did not, nor did the one never asked.
    assert!(line.contains(" served_by=- "), "{line}");
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        (a.count(), b.count()),
        (1, 0),
        "nothing asked after it left"
    );
}

#[test]
fn a_client_that_leaves_while_a_whole_answer_is_awaited_stops_the_wait() {
    // Not streamed, and the upstream silent for 8 s; first_byte_secs at its default
    // (300 s). The client gives up long before.
    let delay = Duration::from_secs(8);
    let up = MockUpstream::always(Reply::Hang(delay));
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let (line, total) = p.leave_once_asked(
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        || up.count() == 1,
    );
    assert!(
        total < 5000.0,
        "{total} ms, the upstream's delay is {delay:?}: {line}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || up.hung_up().len() == 1),
        "the upstream connection is closed, not kept for its answer"
    );
}

#[test]
fn a_client_that_leaves_while_a_whole_answer_trickles_in_stops_the_read() {
    // The body comes 8 bytes every half second, about 17 s in all: never a silent
    // second, so the wait's slices alone would not see the client leave before the end.
    let body = chat_answer(&"x".repeat(60)).to_string();
    let gap = Duration::from_millis(500);
    let up = MockUpstream::always(Reply::JsonTrickle(200, body, 8, gap));
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let (line, total) = p.leave_once_asked(
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        || up.count() == 1,
    );
    assert!(total < 3000.0, "{total} ms, the body takes 17 s: {line}");
    assert!(
        wait_until(Duration::from_secs(2), || up.hung_up().len() == 1),
        "the upstream connection is closed, not kept for the rest of the body"
    );
    // The client left 0.3 s after the upstream was asked.
    let closed = up.hung_up()[0] - up.requests()[0].at;
    assert!(
        closed < Duration::from_millis(2500),
        "closed after {closed:?}"
    );
}

#[test]
fn a_client_that_leaves_while_the_first_endpoint_is_silent_stops_everything() {
    // `a` holds back even its head for 8 s and may take 6 s to its first token; the
    // client gives up long before, and `b` is never asked.
    let a = MockUpstream::always(Reply::Hang(Duration::from_secs(8)));
    let b = healthy("b");
    let yaml = bench(&a, &b, "")
        .replace("first_byte_secs: 2", "first_byte_secs: 10")
        .replace("first_token_secs: 1", "first_token_secs: 6");
    let p = Proxy::start(&yaml);
    let (line, total) = p.leave_once_asked(
        "/v1/chat/completions",
        json!({"model": "smart", "stream": true, "messages": []}),
        || a.count() == 1,
    );
    assert!(total < 4500.0, "{total} ms, a's deadline is 6 s: {line}");
    assert!(line.contains("attempts=1"), "{line}");
    assert!(
        wait_until(Duration::from_secs(2), || a.hung_up().len() == 1),
        "a's connection is closed"
    );
    // The request is over (its line is logged): nothing more will be asked.
    assert_eq!((a.count(), b.count()), (1, 0), "b is never asked");
}

#[test]
fn a_client_that_leaves_while_an_empty_stream_is_explained_cools_nothing_down() {
    // `a`'s stream ends before its first event; asked again unstreamed to learn why, it
    // is silent. The client gives up meanwhile: that is not `a`'s failure.
    let a = MockUpstream::numbered(|n, req| match n {
        0 => Reply::SseEmpty,
        1 => Reply::Hang(Duration::from_secs(8)),
        _ => answer::reply(Wire::Chat, req, "a", Fault::None),
    });
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, "").replace("first_token_secs: 1", "first_token_secs: 6"));
    let (line, total) = p.leave_once_asked(
        "/v1/chat/completions",
        json!({"model": "smart", "stream": true, "messages": []}),
        || a.count() == 2,
    );
    assert!(total < 4500.0, "{line}");
    assert_eq!(b.count(), 0, "b is never asked");
    // `a` was not cooled down: the next request is its again.
    let s = ask_smart(&p);
    assert_whole(&s);
    assert_eq!(s.header("x-routeplane-provider"), Some("a"));
}

#[test]
fn a_healthy_streams_first_content_is_not_delayed() {
    // The first content comes 400 ms after the head; the client has it then, not later.
    let a = MockUpstream::start(|req| {
        answer::reply(
            Wire::Chat,
            req,
            "a",
            Fault::SlowFirst(Duration::from_millis(400)),
        )
    });
    let b = healthy("b");
    let p = Proxy::start(&bench(&a, &b, ""));
    let s = ask_smart(&p);
    assert_whole(&s);
    let first = s.chunks[0].0;
    assert!(
        first >= Duration::from_millis(390) && first < Duration::from_millis(900),
        "{first:?}"
    );
    // The role chunk waited for the content and went out with it, in order.
    assert!(s.chunks[0].1.contains("\"role\""), "{:?}", s.chunks[0]);
}

#[test]
fn a_held_back_response_head_counts_against_the_first_token_deadline() {
    // A server loading a model may not even send its head; `a` is not the last endpoint,
    // so it gets first_token_secs (1 s), not first_byte_secs (10 s).
    let a = MockUpstream::always(Reply::Hang(Duration::from_secs(8)));
    let b = healthy("b");
    let yaml = bench(&a, &b, "").replace("first_byte_secs: 2", "first_byte_secs: 10");
    let p = Proxy::start(&yaml);
    let started = Instant::now();
    let s = ask_smart(&p);
    assert_whole(&s);
    assert_eq!(s.header("x-routeplane-provider"), Some("b"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.count(), 1, "a timeout is not retried");
}

#[test]
fn a_prompt_too_long_for_the_last_endpoint_is_a_400_in_the_clients_words() {
    // One endpoint fails for another reason, the other cannot fit the prompt (in either
    // order: the failed one cools down and is tried last next time). The client can act
    // on the overflow (compact, shorten), so it gets that in its own protocol's words,
    // not a 502 listing both.
    let overflow = r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
    let a = MockUpstream::always(Reply::Json(501, r#"{"error":{"message":"no"}}"#.into()));
    let b = MockUpstream::always(Reply::Json(400, overflow.into()));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    for client in [Wire::Chat, Wire::Responses, Wire::Anthropic, Wire::Gemini] {
        let resp = p.post(
            &client.url("smart", false),
            client.request("smart", false, false),
        );
        assert_eq!(resp.status, 400, "{client:?}: {}", resp.body);
        let v = resp.json();
        let message = client.error_message(&v);
        assert!(
            message.contains("maximum context length is 8192"),
            "{client:?}: {message}"
        );
        match client {
            Wire::Chat | Wire::Responses => {
                assert_eq!(v["error"]["code"], "context_length_exceeded", "{v}")
            }
            Wire::Anthropic => {
                assert!(message.starts_with("prompt is too long"), "{message}");
                assert_eq!(v["error"]["type"], "invalid_request_error");
            }
            Wire::Gemini => assert_eq!(v["error"]["status"], "INVALID_ARGUMENT"),
        }
    }
    // The log names the overflow as such, not as a filter.
    let line = p.wait_log("b:m→400:context");
    assert!(line.contains(" status=400 "), "{line}");
}

#[test]
fn a_slow_first_token_is_waited_for_when_no_later_endpoint_could_answer() {
    // Every endpoint after the slow one has no key, or failed just now and is cooling
    // down: giving up on the slow one at the first-token deadline would end in an error
    // where an answer was coming.
    let slow = || {
        MockUpstream::always(Reply::SseSlowFirst(
            Duration::from_millis(1500),
            chat_events(2, true),
            Duration::ZERO,
        ))
    };
    let a = slow();
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, openai:gpt-4o]\ntimeouts:\n  first_token_secs: 0.5\n",
        a.url()
    ));
    let s = stream(&p, "smart");
    assert_eq!(s.status, 200, "{}", s.text());
    assert!(s.complete, "{}", s.text());
    assert_eq!(a.count(), 1);

    let a = slow();
    let b = MockUpstream::always(Reply::Json(501, r#"{"error":{"message":"no"}}"#.into()));
    // First token within 1 s, first byte within 2 s; `a` takes 1.5 s.
    let p = Proxy::start(&bench(&a, &b, ""));
    // `b` fails once, asked by its own name, and cools down.
    assert_eq!(ask(&p, "b:m").status, 501);
    let s = stream(&p, "smart");
    assert_eq!(s.status, 200, "{}", s.text());
    assert!(s.complete, "{}", s.text());
    assert_eq!((a.count(), b.count()), (1, 1));
}

// ---- A whole answer from an endpoint with a fallback ----
//
// A client that asks for a whole answer gets its first byte only once all of it is
// made, so a silent endpoint could not be told from a busy one. While another endpoint
// remains, the answer is asked for as a stream and collected: the first-token deadline
// then holds for whole answers too.

/// A chat upstream that streams when asked to, and else answers whole, like Ollama.
fn as_asked() -> MockUpstream {
    MockUpstream::start(|req| Wire::Chat.reply(req.json()["stream"] == true, false))
}

/// Two chat providers `a` and `b`, `smart` = a:m then b:m, a first-token deadline of
/// 1 s and the default first-byte deadline (300 s).
fn whole_config(a: &MockUpstream, b: &MockUpstream) -> String {
    whole_config_speaking(a, Wire::Chat, b)
}

/// [`whole_config`] with `a` speaking `wire`.
fn whole_config_speaking(a: &MockUpstream, wire: Wire, b: &MockUpstream) -> String {
    format!(
        "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\ntimeouts:\n  first_token_secs: 1\n",
        a.url(),
        wire.config_name(),
        b.url()
    )
}

#[test]
fn a_whole_answer_passes_over_a_silent_endpoint_at_its_first_token_deadline() {
    let a = MockUpstream::always(Reply::Hang(Duration::from_secs(8)));
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    let started = Instant::now();
    let resp = ask(&p, "smart");
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        "Hello there"
    );
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert!(
        took < Duration::from_secs(4),
        "first_token_secs 1, not the 8 s silence: {took:?}"
    );
    assert_eq!(a.count(), 1, "a silent endpoint is not asked twice");
    // The last endpoint is asked for the whole answer the client asked for.
    assert_eq!(b.posts()[0].json()["stream"], json!(null));
    let line = p.wait_log("served_by=b:m");
    assert!(line.contains("a:m→timeout"), "{line}");
}

#[test]
fn a_whole_answer_is_collected_from_a_stream_for_every_client_protocol() {
    for wire in Wire::ALL {
        let a = crate::support::wire::chat_mock_with_usage(Duration::ZERO);
        let b = as_asked();
        let p = Proxy::start(&whole_config(&a, &b));
        let resp = p.post(
            &wire.url("smart", false),
            wire.request("smart", false, false),
        );
        assert_eq!(resp.status, 200, "{wire:?}: {}", resp.body);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(wire.read(&resp).text, "Hello there", "{wire:?}");
        assert_eq!(resp.header("x-routeplane-provider"), Some("a"), "{wire:?}");
        // The stream's own usage, which it reports only when asked.
        let v = resp.json();
        let output = match wire {
            Wire::Chat => &v["usage"]["completion_tokens"],
            Wire::Anthropic | Wire::Responses => &v["usage"]["output_tokens"],
            Wire::Gemini => &v["usageMetadata"]["candidatesTokenCount"],
        };
        assert_eq!(*output, json!(4), "{wire:?}: {v}");
        let sent = a.posts()[0].json();
        assert_eq!(sent["stream"], true, "{wire:?}: {sent}");
        assert_eq!(sent["stream_options"]["include_usage"], true, "{wire:?}");
        assert_eq!(b.count(), 0, "{wire:?}");
    }
}

#[test]
fn a_whole_answer_is_collected_from_a_stream_in_every_source_protocol() {
    for wire in Wire::ALL {
        // Streams when asked to: in the body, or (Gemini) in the path.
        let a = MockUpstream::start(move |req| {
            let streamed = req.json()["stream"] == true || req.path.contains("stream");
            wire.reply(streamed, true)
        });
        let b = as_asked();
        let p = Proxy::start(&whole_config_speaking(&a, wire, &b));
        let resp = p.post(
            "/v1/chat/completions",
            Wire::Chat.request("smart", false, true),
        );
        assert_eq!(resp.status, 200, "{wire:?}: {}", resp.body);
        assert_eq!(resp.header("x-routeplane-provider"), Some("a"), "{wire:?}");
        let got = Wire::Chat.read(&resp);
        assert_eq!(got.tools.len(), 1, "{wire:?}: {}", resp.body);
        assert_eq!(got.tools[0].0, "get_weather", "{wire:?}");
        assert_eq!(got.tools[0].1, json!({"city": "Paris"}), "{wire:?}");
        let sent = &a.posts()[0];
        let streamed = sent.json()["stream"] == true || sent.path.contains("stream");
        assert!(streamed, "{wire:?}: {} {}", sent.path, sent.json());
    }
}

#[test]
fn a_whole_answer_asked_as_a_stream_keeps_the_clients_bytes() {
    // A schema's key order is what a model fills in first: sent as the client wrote it,
    // in each protocol a self-hosted server may speak (Ollama, llama.cpp and vLLM serve
    // Anthropic's and OpenAI's Responses shapes too).
    let schema =
        r#"{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"string"}}}"#;
    let cases = [
        (
            Wire::Chat,
            format!(
                r#"{{"model":"smart","messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}]}}"#
            ),
        ),
        (
            Wire::Anthropic,
            format!(
                r#"{{"model":"smart","max_tokens":50,"messages":[{{"role":"user","content":"hi"}}],"tools":[{{"name":"f","input_schema":{schema}}}]}}"#
            ),
        ),
        (
            Wire::Responses,
            format!(
                r#"{{"model":"smart","input":"hi","tools":[{{"type":"function","name":"f","parameters":{schema}}}]}}"#
            ),
        ),
    ];
    for (wire, body) in cases {
        let a = MockUpstream::start(move |req| wire.reply(req.json()["stream"] == true, false));
        let b = as_asked();
        let p = Proxy::start(&whole_config_speaking(&a, wire, &b));
        let resp = p.send(
            "POST",
            wire.path(),
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(resp.status, 200, "{wire:?}: {}", resp.body);
        assert_eq!(wire.read(&resp).text, "Hello there", "{wire:?}");
        let sent = String::from_utf8(a.posts()[0].body.clone()).unwrap();
        assert!(
            sent.find("zeta").unwrap() < sent.find("alpha").unwrap(),
            "{wire:?}: {sent}"
        );
        let sent = a.posts()[0].json();
        assert_eq!(sent["stream"], true, "{wire:?}: {sent}");
        // Only a chat stream is asked for its usage: Anthropic refuses fields it does not know.
        let usage = wire == Wire::Chat;
        assert_eq!(
            sent["stream_options"].is_object(),
            usage,
            "{wire:?}: {sent}"
        );
    }
}

#[test]
fn a_whole_answer_keeps_a_local_servers_reasoning_name_and_calls_without_an_index() {
    // Ollama names its reasoning `reasoning`; some servers stream parallel tool calls
    // without an `index`.
    let chunk = |delta| crate::support::wire::chat_chunk(delta, serde_json::Value::Null);
    let call = |id: &str, n: u32| json!({"tool_calls": [{"id": id, "type": "function", "function": {"name": "read", "arguments": format!("{{\"n\": {n}}}")}}]});
    let events = vec![
        chunk(json!({"role": "assistant", "reasoning": "Two files."})),
        chunk(call("call_0", 0)),
        chunk(call("call_1", 1)),
        "data: [DONE]\n\n".to_string(),
    ];
    let a = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let message = &resp.json()["choices"][0]["message"];
    assert_eq!(message["reasoning"], "Two files.", "{message}");
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{message}");
    assert_eq!(calls[1]["id"], "call_1");
    assert_eq!(calls[1]["function"]["arguments"], "{\"n\": 1}");
}

#[test]
fn a_hosted_apis_whole_answer_is_asked_as_the_client_asked() {
    // A hosted API's whole answer carries what only a copy keeps (server tools,
    // citations, encrypted reasoning). 0.0.0.0 reaches the mock as a host that is
    // neither loopback nor on this network would: as a hosted API.
    let a = as_asked();
    let b = as_asked();
    let hosted = a.url().replace("127.0.0.1", "0.0.0.0");
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {hosted}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
        b.url()
    ));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("a"));
    assert_eq!(a.posts()[0].json()["stream"], json!(null));
    assert_eq!(resp.json(), Wire::Chat.body(false), "copied byte for byte");
    // `route` says which deadline a whole answer from it waits for.
    let config = p.dir.path().join("routeplane.yaml");
    let out = std::process::Command::new(crate::support::proxy::bin())
        .args(["route", "smart", "-c", config.to_str().unwrap()])
        .env("HOME", p.dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("deadline: first token 15s (a whole answer: first byte 300s);"),
        "{text}"
    );
}

#[test]
fn a_whole_answer_from_the_last_endpoint_is_copied_as_asked() {
    let a = crate::support::wire::chat_mock_with_usage(Duration::ZERO);
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    // Pinned: no endpoint after it, so nothing to move on to and nothing to collect.
    let resp = ask(&p, "a:m");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = a.posts()[0].json();
    assert_eq!(sent["stream"], json!(null), "{sent}");
    assert_eq!(
        resp.json()["usage"]["completion_tokens"],
        2,
        "the whole answer's own"
    );
}

#[test]
fn a_whole_answer_with_several_choices_is_not_collected() {
    let a = as_asked();
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "smart", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("a"));
    // One stream could not give the client both choices: asked as the client asked.
    assert_eq!(a.posts()[0].json()["stream"], json!(null));
}

#[test]
fn a_whole_answer_whose_stream_breaks_part_way_is_asked_of_the_next_endpoint() {
    let a = faulty_once("a", Fault::Cut(5));
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    // Nothing of the broken answer reached the client: b's whole answer did.
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        "Hello there"
    );
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
}

/// A chat source whose model takes no reasoning, refusing it as `refusal` says it.
fn unthinking_source(refusal: &'static str) -> MockUpstream {
    MockUpstream::start(move |req| {
        let body = req.json();
        let asks = ["reasoning_effort", "reasoning", "thinking"];
        if asks.iter().any(|k| body.get(k).is_some()) {
            Reply::Json(400, refusal.to_string())
        } else {
            Reply::json(200, chat_answer("no thoughts"))
        }
    })
}

#[test]
fn claude_thinking_refused_by_an_anthropic_source_is_asked_again_without_it() {
    // Claude Code against Ollama's Anthropic API: the client's own body, copied, but
    // for the `thinking` its model refused.
    let refusal = r#"{"type":"error","error":{"type":"invalid_request_error","message":"\"llama3.1\" does not support thinking"}}"#;
    let up = MockUpstream::start(move |req| {
        if req.json().get("thinking").is_some() {
            Reply::Json(400, refusal.to_string())
        } else {
            Wire::Anthropic.reply(false, false)
        }
    });
    let p = Wire::Anthropic.serving(&up, "m");
    let mut claude = Wire::Anthropic.request("m", false, false);
    claude["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let resp = p.post("/v1/messages", claude);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(Wire::Anthropic.read(&resp).text, "Hello there");
    let sent = up.posts();
    assert_eq!(sent.len(), 2);
    assert!(sent[1].json().get("thinking").is_none());
    assert_eq!(sent[1].json()["system"], "be brief", "the rest as it came");
}

#[test]
fn a_model_that_takes_no_reasoning_is_asked_again_without_it_and_remembered() {
    // Claude Code asks for thinking; a model without it refuses the effort it became.
    for refusal in [
        r#"{"error":{"message":"\"llama3.1:8b\" does not support thinking","type":"invalid_request_error","param":null,"code":null}}"#,
        r#"{"error":{"message":"think value \"high\" is not supported for this model","type":"api_error"}}"#,
        r#"{"error":{"message":"Unsupported parameter: 'reasoning_effort' is not supported with this model.","type":"invalid_request_error","param":"reasoning_effort","code":"unsupported_parameter"}}"#,
    ] {
        let up = unthinking_source(refusal);
        let p = Wire::Chat.serving(&up, "m");
        let claude = json!({"model": "m", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}});
        let resp = p.post("/v1/messages", claude.clone());
        assert_eq!(resp.status, 200, "{refusal}: {}", resp.body);
        assert_eq!(Wire::Anthropic.read(&resp).text, "no thoughts", "{refusal}");
        let sent = up.posts();
        assert_eq!(sent.len(), 2, "{refusal}: asked again at once");
        assert!(sent[0].json().get("reasoning_effort").is_some());
        assert!(
            sent[1].json().get("reasoning_effort").is_none(),
            "{refusal}"
        );
        // Known from now on: the next turn goes without it from the first try, and so
        // does a chat client's own request, copied otherwise.
        let resp = p.post("/v1/messages", claude);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let own = json!({"model": "m", "reasoning_effort": "high", "messages": [{"role": "user", "content": "hi"}]});
        let resp = p.post("/v1/chat/completions", own);
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert_eq!(Wire::Chat.read(&resp).text, "no thoughts");
        assert_eq!(up.posts().len(), 4, "{refusal}: one request each");
    }
}

#[test]
fn reasoning_refused_by_a_responses_or_gemini_source_is_asked_again_without_it() {
    // Claude Code's thinking becomes a Responses `reasoning` (with its encrypted content
    // asked back) or Gemini's `thinkingConfig`; a model without them refuses it in its
    // source's words.
    let cases = [
        (
            Wire::Responses,
            r#"{"error":{"message":"Unsupported parameter: 'reasoning.effort' is not supported with this model.","type":"invalid_request_error","param":"reasoning.effort","code":"unsupported_parameter"}}"#,
        ),
        (
            Wire::Gemini,
            r#"{"error":{"code":400,"message":"thinking_config is not supported.","status":"INVALID_ARGUMENT"}}"#,
        ),
        (
            Wire::Gemini,
            r#"{"error":{"code":400,"message":"Unable to submit request because thinking is not configurable in this model; please remove the thinking_config setting and try it again.","status":"INVALID_ARGUMENT"}}"#,
        ),
    ];
    for (wire, refusal) in cases {
        let asks = |body: &Value| {
            body.get("reasoning").is_some()
                || body.get("include").is_some()
                || body
                    .get("generationConfig")
                    .is_some_and(|c| c.get("thinkingConfig").is_some())
        };
        let up = MockUpstream::start(move |req| {
            if asks(&req.json()) {
                Reply::Json(400, refusal.to_string())
            } else {
                wire.reply(false, false)
            }
        });
        let p = wire.serving(&up, "m");
        let mut claude = Wire::Anthropic.request("m", false, false);
        claude["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
        let resp = p.post("/v1/messages", claude);
        assert_eq!(resp.status, 200, "{refusal}: {}", resp.body);
        assert_eq!(Wire::Anthropic.read(&resp).text, "Hello there");
        let sent = up.posts();
        assert_eq!(sent.len(), 2, "{refusal}: asked again at once");
        assert!(asks(&sent[0].json()), "{refusal}: {}", sent[0].json());
        assert!(!asks(&sent[1].json()), "{refusal}: {}", sent[1].json());
        assert_eq!(
            wire.first_user_parts(&sent[1].json()),
            wire.first_user_parts(&sent[0].json()),
            "the rest as it was"
        );
    }
}

#[test]
fn a_reasoning_refusal_of_a_request_without_reasoning_is_not_asked_again() {
    // Nothing to leave out: a second request would go out the same and be refused the
    // same.
    let refusal = r#"{"error":{"code":400,"message":"thinking_config is not supported.","status":"INVALID_ARGUMENT"}}"#;
    for client in [Wire::Gemini, Wire::Chat] {
        let up = MockUpstream::always(Reply::Json(400, refusal.to_string()));
        let p = Wire::Gemini.serving(&up, "m");
        let resp = p.post(&client.url("m", false), client.request("m", false, false));
        assert_eq!(resp.status, 400, "{client:?}: {}", resp.body);
        assert_eq!(up.posts().len(), 1, "{client:?}");
    }
}

#[test]
fn a_refusal_without_reasoning_is_returned_after_one_more_try() {
    // Refused again without the reasoning: the source's error, not a third request.
    let refusal =
        r#"{"error":{"message":"\"m\" does not support thinking","type":"invalid_request_error"}}"#;
    let up = MockUpstream::always(Reply::Json(400, refusal.to_string()));
    let p = Wire::Chat.serving(&up, "m");
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "m", "reasoning_effort": "low", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_text(&resp.body, refusal);
    assert_eq!(up.posts().len(), 2);
    // A plain 400 is not taken for one, nor an effort the model does not take (it
    // reasons): asked once, and the next request keeps its effort.
    for other in [
        r#"{"error":{"message":"temperature must be at most 2","type":"invalid_request_error"}}"#,
        r#"{"error":{"message":"Unsupported value: 'reasoning_effort' does not support 'minimal' with this model. Supported values are: 'low', 'medium', and 'high'.","type":"invalid_request_error","param":"reasoning_effort","code":"unsupported_value"}}"#,
    ] {
        let up = MockUpstream::always(Reply::Json(400, other.to_string()));
        let p = Wire::Chat.serving(&up, "m");
        for _ in 0..2 {
            let resp = p.post(
                "/v1/chat/completions",
                json!({"model": "m", "reasoning_effort": "minimal", "messages": [{"role": "user", "content": "hi"}]}),
            );
            assert_eq!(resp.status, 400);
        }
        let sent = up.posts();
        assert_eq!(sent.len(), 2, "{other}");
        assert_eq!(sent[1].json()["reasoning_effort"], "minimal", "{other}");
    }
}

#[test]
fn a_reasoning_refusal_is_asked_again_once_even_past_what_is_remembered() {
    // Models remembered are bounded (1024); one past them is still asked again without
    // its reasoning, once, not in a loop.
    let up = unthinking_source(
        r#"{"error":{"message":"this model does not support thinking","type":"invalid_request_error"}}"#,
    );
    let p = Wire::Chat.serving(&up, "m");
    for i in 0..1030 {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"model": format!("up:m{i}"), "reasoning_effort": "low", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(resp.status, 200, "{i}: {}", resp.body);
    }
    assert_eq!(up.posts().len(), 2 * 1030);
}

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

/// Asks `p` for `model` as a `wire` client, whole or streamed, the answer whole.
fn ask_as(p: &Proxy, wire: Wire, model: &str, stream: bool) -> crate::support::proxy::Resp {
    let body = wire.request(model, stream, false);
    match stream {
        true => p.stream(&wire.url(model, true), body).into(),
        false => p.post(&wire.url(model, false), body),
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
                assert_eq!(resp.status, 502, "{said}: {}", resp.body);
                assert!(resp.body.contains("e:m → 529"), "{said}: {}", resp.body);
            } else if client == Wire::Anthropic {
                assert_eq!(resp.status, 529, "{said}: {}", resp.body);
                assert_eq!(message, "overloaded_error", "{said}");
            } else {
                // 529 is Anthropic's own: another protocol's client gets the 503 its
                // retries know (protocols::anthropics_overload_reaches_other_clients_as_503).
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
