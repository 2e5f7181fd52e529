//! The 16 fault scenarios of the failoverbench catalogue for a chat client, and a client
//! that leaves while Routeplane waits or retries.

use super::*;

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

#[test]
fn a_refused_connection_cools_every_model_of_its_server_and_one_answer_warms_them_all() {
    // A local server with two models that is not running yet; a virtual model lists
    // both before a source that answers, another only the second.
    let port = MockUpstream::free_port();
    let live = MockUpstream::always(Reply::json(200, chat_answer("from live")));
    let p = Proxy::start(&format!(
        "failover:\n  cooldown_secs: 600\nproviders:\n  box:\n    api_base: http://127.0.0.1:{port}/v1\n    models: [m1, m2]\n  live:\n    api_base: {}\n    models: [x]\nmodels:\n  v:\n    endpoints: [box:m1, box:m2, live:x]\n  w:\n    endpoints: [box:m2, live:x]\n",
        live.url()
    ));
    let resp = ask(&p, "v");
    assert_eq!(
        resp.header("x-routeplane-provider"),
        Some("live"),
        "{}",
        resp.body
    );
    // Refused once: the server's other model was not asked in the same request.
    assert_eq!(resp.header("x-routeplane-attempts"), Some("2"));
    let cooling = || {
        let list = p.get("/routeplane/cooldowns").json()["cooldowns"].clone();
        let list = list.as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|c| c["target"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(cooling(), ["box:m1", "box:m2"], "each model, by its name");
    // Nor is it asked first by a request that names only the other model.
    let resp = ask(&p, "w");
    assert_eq!(resp.header("x-routeplane-provider"), Some("live"));
    assert_eq!(resp.header("x-routeplane-attempts"), Some("1"));
    // The server starts: one model's answer warms the other too.
    let _up = MockUpstream::start_on(port, |_| Reply::json(200, chat_answer("from box")));
    let resp = ask(&p, "box:m1");
    assert_eq!(
        resp.header("x-routeplane-provider"),
        Some("box"),
        "{}",
        resp.body
    );
    // Cleared just after the answer's last byte went out.
    let warm = wait_until(Duration::from_secs(5), || cooling().is_empty());
    assert!(warm, "{:?}", cooling());
    let resp = ask(&p, "w");
    assert_eq!(resp.header("x-routeplane-provider"), Some("box"));
}
