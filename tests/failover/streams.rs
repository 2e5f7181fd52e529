//! Streams: a failure before the first event is invisible to the client, one after it
//! ends the stream with an error event, one unreadable event is dropped.

use super::*;

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
