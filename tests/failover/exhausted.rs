//! What the client gets when every endpoint failed: one status chosen from what each
//! said, and when a retry can work, the shortest pause the busy ones asked for.

use super::*;

/// An answer with `status`, a `Retry-After` of `pause` seconds when given, and an
/// OpenAI-shaped error saying `words`.
fn said(status: u16, pause: Option<u32>, words: &str) -> Reply {
    let headers = pause.map(|s| ("Retry-After".to_string(), s.to_string()));
    Reply::JsonWith(
        status,
        headers.into_iter().collect(),
        json!({"error": {"message": words}}).to_string(),
    )
}

/// What `a`, `b` and `c` answer: a status (0: the connection is refused) and the
/// `Retry-After` it names.
type Answers = [(u16, Option<u32>); 3];

#[test]
fn a_rate_limit_or_an_overload_among_other_failures_decides_the_status_and_its_pause() {
    // Before, any failure of another kind beside a rate limit or an overload (a 500,
    // a refused connection) made the whole a 502 without `Retry-After`: the client
    // was told nothing a retry could use, though a later retry can work.
    let (limited, full, broken, other) = (429, 503, 500, 0);
    let cases: [(Answers, u16, u16, Option<&str>); 7] = [
        // A rate limit beside server errors: the rate limit, and its pause.
        (
            [(limited, Some(7)), (broken, None), (broken, None)],
            429,
            429,
            Some("7"),
        ),
        // The shortest pause among the rate limits; a 500's pause is no promise.
        (
            [(broken, Some(1)), (limited, Some(9)), (limited, Some(4))],
            429,
            429,
            Some("4"),
        ),
        // Beside a refused connection (`other`): still the rate limit.
        (
            [(other, None), (limited, Some(6)), (broken, None)],
            429,
            429,
            Some("6"),
        ),
        // Out of capacity wins over a rate limit (the sources are full, the client
        // is not sending too much); the shortest pause of either.
        (
            [(full, Some(5)), (broken, None), (limited, Some(3))],
            503,
            529,
            Some("3"),
        ),
        // An overload that named no pause: none made up.
        (
            [(broken, None), (full, None), (other, None)],
            503,
            529,
            None,
        ),
        // Each rate limited or overloaded: as before.
        (
            [(limited, Some(8)), (limited, Some(2)), (limited, Some(5))],
            429,
            429,
            Some("2"),
        ),
        // Nothing a retry later would change: a 502.
        (
            [(broken, None), (broken, Some(4)), (other, None)],
            502,
            502,
            None,
        ),
    ];
    for (answers, chat_status, anthropic_status, pause) in cases {
        let mocks: Vec<MockUpstream> = answers
            .iter()
            .map(|&(status, pause)| MockUpstream::always(said(status, pause, "nope")))
            .collect();
        let url = |i: usize| match answers[i].0 {
            0 => dead_url(),
            _ => mocks[i].url(),
        };
        let p = Proxy::start(&format!(
            "providers:\n  a: {{api_base: {}, models: [m]}}\n  b: {{api_base: {}, models: [m]}}\n  c: {{api_base: {}, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, b:m, c:m]}}\nfailover:\n  retries: 0\n",
            url(0),
            url(1),
            url(2)
        ));
        for (client, status) in [
            (Wire::Chat, chat_status),
            (Wire::Anthropic, anthropic_status),
        ] {
            let what = format!("{answers:?} to {client:?}");
            let resp = ask_as(&p, client, "smart", false);
            assert_eq!(resp.status, status, "{what}: {}", resp.body);
            assert_eq!(resp.header("retry-after"), pause, "{what}");
            // Every attempt is still listed, whatever decided the status.
            let message = client.error_message(&resp.json());
            for endpoint in ["a:m → ", "b:m → ", "c:m → "] {
                assert!(message.contains(endpoint), "{what}: {message}");
            }
        }
    }
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
    let reset = vec![("x-ratelimit-reset-requests".into(), "2.5s".into())];
    for (first, waited) in [
        // Neither names a pause: the cool-down each is given is what is left to wait.
        (vec![], "20"),
        // An OpenAI-style reset of 2.5 s is the shorter wait, rounded up: 2 would be early.
        (reset, "3"),
    ] {
        let (a, b) = (limited(first), limited(vec![]));
        let p = Proxy::start(&config(
            &a.url(),
            &b.url(),
            "failover:\n  retries: 0\n  cooldown_secs: 20\n",
        ));
        let resp = ask(&p, "smart");
        assert_eq!(resp.status, 429, "{}", resp.body);
        assert_eq!(resp.header("retry-after"), Some(waited));
    }
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
