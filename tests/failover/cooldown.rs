//! Cool-downs: a failed endpoint is tried last until its cool-down ends, for as long as
//! its Retry-After or its plan's reset says.

use super::*;

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
fn an_endpoint_asked_while_it_cools_down_gets_one_try_not_its_retries() {
    let a = MockUpstream::always(Reply::Json(500, r#"{"error":{"message":"boom"}}"#.into()));
    let b = MockUpstream::always(Reply::Json(503, r#"{"error":{"message":"busy"}}"#.into()));
    let p = Proxy::start(&config(&a.url(), &b.url(), "failover:\n  backoff_ms: 20\n"));
    // Not cooling down yet: each is asked again after its failure. One is out of
    // capacity for now: the whole is the overload answer (exhausted.rs).
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-attempts"), Some("4"));
    assert_eq!((a.count(), b.count()), (2, 2));
    // Both cool down now, and are asked only because every other failed too: once each,
    // in any client's protocol, streamed or not, or asked for alone.
    for (wire, model, stream, want) in [
        (Wire::Chat, "smart", false, "2"),
        (Wire::Anthropic, "smart", true, "2"),
        (Wire::Gemini, "smart", false, "2"),
        (Wire::Chat, "a:m", true, "1"),
    ] {
        let before = a.count() + b.count();
        let resp = ask_as(&p, wire, model, stream);
        let what = format!("{wire:?} {model} stream={stream}: {}", resp.body);
        assert!(resp.status >= 500, "{what}");
        assert_eq!(resp.header("x-routeplane-attempts"), Some(want), "{what}");
        assert_eq!((a.count() + b.count() - before).to_string(), want, "{what}");
    }
    let message = ask(&p, "smart").error_message();
    assert_text(
        &message,
        "every target failed: a:m → 500 boom; b:m → 503 busy",
    );
}
