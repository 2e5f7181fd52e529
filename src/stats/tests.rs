//! The counters, today's totals and the status page, fed finished requests by one thread
//! and by many at once.

use super::*;

/// A local source that is up, for the status page.
pub(crate) fn up_source(id: &str) -> Source {
    Source {
        id: id.into(),
        kind: "local",
        state: "up".into(),
        up: Some(true),
        detail: String::new(),
        cooldown: None,
    }
}

pub(crate) fn finished(served: Option<&str>, status: u16, failed: &[&str]) -> Finished {
    Finished {
        at: SystemTime::now(),
        inbound: Protocol::Chat,
        requested: "smart".into(),
        served_by: served.map(Arc::from),
        status,
        stream: false,
        stream_end: None,
        attempts: failed.len() + usize::from(served.is_some()),
        rescues: 0,
        rescued_by: Vec::new(),
        tried: failed
            .iter()
            .map(|e| Tried::failed(e, Some(503), "down"))
            .chain(served.map(|s| Tried {
                endpoint: Arc::from(s),
                word: status.to_string().into(),
                continuation: false,
                ended: Ended::Answered,
            }))
            .collect(),
        ttfb: Some(Duration::from_millis(5)),
        ttft: Some(Duration::from_millis(20)),
        total: Duration::from_millis(40),
        tokens: Tokens {
            input: Some(5),
            output: Some(2),
            cached_input: None,
            reasoning: None,
        },
    }
}

#[test]
fn an_attempts_word_is_its_status() {
    assert!(matches!(status_word(200), Cow::Borrowed("200")));
    for status in [201, 299, 400, 404, 429, 500, 529] {
        assert_eq!(status_word(status), status.to_string());
    }
    assert_eq!(Tried::failed("a:m", Some(503), "down").word, "503");
    assert_eq!(Tried::failed("a:m", None, "refused").word, "failed");
}

#[test]
fn failovers_and_retries_are_counted_per_source() {
    let stats = Stats::default();
    // a failed twice (a retry), then b failed, then c answered.
    stats.record(finished(Some("c:m"), 200, &["a:m", "a:m", "b:m"]));
    let s = stats.snapshot();
    assert_eq!(
        (s["a"].attempts, s["a"].retries, s["a"].failovers),
        (2, 1, 1)
    );
    assert_eq!((s["b"].attempts, s["b"].failovers), (1, 1));
    assert_eq!((s["c"].attempts, s["c"].failovers), (1, 0));
    assert_eq!(s["c"].tokens, [5, 2, 0, 0]);
    assert_eq!(s["c"].requests[0].count, 1);
    assert_eq!(s["c"].ttft.count, 1);
}

#[test]
fn a_rescue_counts_for_the_endpoint_that_continued() {
    let stats = Stats::default();
    // a broke mid-stream; its continuation was refused; b continued the stream.
    let mut f = finished(Some("a:m"), 200, &[]);
    let t = |e: &str, continuation, ended| Tried {
        endpoint: Arc::from(e),
        word: Cow::Borrowed(""),
        continuation,
        ended,
    };
    f.tried = vec![
        t("a:m", false, Ended::Broke),
        t(
            "a:m",
            true,
            Ended::Failed {
                status: Some(400),
                reason: "refused the request".into(),
            },
        ),
        t("b:m", true, Ended::Answered),
    ];
    f.rescues = 1;
    stats.record(f);
    let s = stats.snapshot();
    let a = &s["a"];
    assert_eq!(
        (a.attempts, a.retries, a.failovers, a.rescues),
        (2, 0, 1, 0)
    );
    let b = &s["b"];
    assert_eq!(
        (b.attempts, b.retries, b.failovers, b.rescues),
        (1, 0, 0, 1)
    );
    // The request and its tokens belong to the endpoint that started the answer.
    assert_eq!(a.requests[0].count, 1);
}

#[test]
fn a_broken_stream_is_an_error_and_a_client_that_left_is_not() {
    let stats = Stats::default();
    let stream = |end| Finished {
        stream: true,
        stream_end: Some(end),
        status: if end == StreamEnd::ClientClosed {
            499
        } else {
            200
        },
        ..finished(Some("c:m"), 200, &[])
    };
    for end in [
        StreamEnd::Complete,
        StreamEnd::Broken,
        StreamEnd::Broken,
        StreamEnd::ClientClosed,
    ] {
        stats.record(stream(end));
    }
    let s = stats.snapshot();
    let ends: Vec<_> = (s["c"].streams.iter())
        .map(|x| (x.model.as_str(), x.end, x.count))
        .collect();
    assert_eq!(
        ends,
        [
            ("m", StreamEnd::Complete, 1),
            ("m", StreamEnd::Broken, 2),
            ("m", StreamEnd::ClientClosed, 1)
        ]
    );
    let v: Value = serde_json::from_str(&stats.status_json(&[up_source("c")])).unwrap();
    assert_eq!(v["sources"][0]["today"]["errors"], 2, "{v}");
    assert_eq!(
        v["recent"][0]["stream_end"], "client_closed",
        "newest first"
    );
    assert_eq!(v["recent"][0]["abandoned"], Value::Null);
}

#[test]
fn a_request_the_client_left_before_its_answer_is_the_asked_endpoints() {
    let mut f = finished(None, 499, &["a:m"]);
    f.tried.push(Tried {
        endpoint: Arc::from("b:m"),
        word: Cow::Borrowed("client_closed"),
        continuation: false,
        ended: Ended::ClientGone,
    });
    assert_eq!(f.abandoned(), Some("b:m"));
    assert!(!f.is_error());
    // Once something of it went out, the request is the answering endpoint's.
    f.served_by = Some(Arc::from("b:m"));
    assert_eq!(f.abandoned(), None);
    // A client that left in a retry's pause: the trail ends at the failure.
    assert_eq!(finished(None, 499, &["a:m"]).abandoned(), None);
}

#[test]
fn a_request_counts_where_answered_else_where_left_else_where_it_last_failed() {
    let last = || Some("c:m");
    assert_eq!(owner(Some("a:m"), None, last), Some("a:m"));
    assert_eq!(owner(None, Some("b:m"), last), Some("b:m"));
    assert_eq!(owner(None, None, last), Some("c:m"));
    assert_eq!(owner(None, None, || None), None);
    let f = finished(None, 503, &["a:m", "b:m"]);
    assert_eq!(f.owner(), Some("b:m"));
}

#[test]
fn recent_keeps_the_last_fifty() {
    let stats = Stats::default();
    for _ in 0..(RECENT + 7) {
        stats.record(finished(Some("c:m"), 200, &[]));
    }
    let v: Value = serde_json::from_str(&stats.status_json(&[])).unwrap();
    assert_eq!(v["recent"].as_array().unwrap().len(), RECENT);
    assert_eq!(v["ttft_ms"]["p50"], 20);
}

#[test]
fn requests_recorded_by_many_threads_at_once_are_all_counted() {
    let stats = Stats::default();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..(ADD_IN_AFTER * 3 + 5) {
                    stats.record(finished(Some("c:m"), 200, &["a:m"]));
                }
            });
        }
    });
    // Fewer than ADD_IN_AFTER may still be waiting: a reader adds them in first.
    let s = stats.snapshot();
    let n = 8 * (ADD_IN_AFTER as u64 * 3 + 5);
    assert_eq!((s["c"].requests[0].count, s["a"].failovers), (n, n));
    assert_eq!(stats.waiting.load(Ordering::Relaxed), 0);
    let v: Value = serde_json::from_str(&stats.status_json(&[])).unwrap();
    assert_eq!(v["recent"].as_array().unwrap().len(), RECENT);
}

#[test]
fn requests_recorded_while_a_reader_holds_the_counters_are_all_counted() {
    let stats = Stats::default();
    let n = HAND_OVER + 5;
    let reader = stats.inner.lock().unwrap();
    std::thread::scope(|s| {
        let recorder = s.spawn(|| {
            for _ in 0..n {
                stats.record(finished(Some("c:m"), 200, &[]));
            }
        });
        // Held until the hand-over is full and the recorder waits for the lock.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stats.waiting.load(Ordering::Relaxed) <= HAND_OVER
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!recorder.is_finished(), "the full hand-over did not wait");
        drop(reader);
    });
    assert_eq!(stats.snapshot()["c"].requests[0].count, n as u64);
    assert_eq!(stats.waiting.load(Ordering::Relaxed), 0);
}

#[test]
fn a_request_of_yesterday_added_in_late_is_not_counted_today() {
    let stats = Stats::default();
    stats.record(finished(Some("c:m"), 200, &[]));
    let mut late = finished(Some("c:m"), 200, &[]);
    late.at -= Duration::from_secs(86_400);
    stats.record(late);
    let v: Value = serde_json::from_str(&stats.status_json(&[up_source("c")])).unwrap();
    assert_eq!(v["sources"][0]["today"]["requests"], 1);
    assert_eq!(v["recent"].as_array().unwrap().len(), 2);
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let v: Vec<u32> = (1..=100).collect();
    assert_eq!(percentile(&v, 50), Some(50));
    assert_eq!(percentile(&v, 95), Some(95));
    assert_eq!(percentile(&[7u32], 95), Some(7));
    assert_eq!(percentile::<u32>(&[], 50), None);
}

#[test]
fn json_strings_are_escaped() {
    let mut s = String::new();
    push_json_str(&mut s, "a\"b\\c\nd\u{1}é");
    assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    let back: String = serde_json::from_str(&s).unwrap();
    assert_eq!(back, "a\"b\\c\nd\u{1}é");
}

#[test]
fn json_strings_are_tested_eight_bytes_at_a_time_as_a_byte_at_a_time() {
    // Every ASCII byte at every place of texts around a word long, and beside text
    // outside ASCII: copied as is exactly when no byte needs an escape, and read back
    // as the text it was.
    for len in [1, 2, 3, 4, 5, 7, 8, 9, 16, 23] {
        for at in 0..len {
            for b in 0..0x80u8 {
                for other in ["a", "é", "\u{7f}", " "] {
                    let mut text = vec!["m"; len];
                    text[(at + 1) % len] = other;
                    let byte = [b];
                    text[at] = std::str::from_utf8(&byte).unwrap();
                    let text = text.concat();
                    let mut out = String::new();
                    push_json_str(&mut out, &text);
                    let plain = !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
                    assert_eq!(out == format!("\"{text}\""), plain, "{text:?}");
                    assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
                }
            }
        }
    }
}

#[test]
fn an_attempt_sharing_the_served_by_label_counts_at_its_source() {
    let stats = Stats::default();
    let mut f = finished(Some("c:m"), 200, &["a:m"]);
    // As the relay makes them: the answering attempt's endpoint is `served_by`'s `Arc`.
    let label = f.served_by.clone().unwrap();
    f.tried.last_mut().unwrap().endpoint = label;
    stats.record(f);
    let s = stats.snapshot();
    assert_eq!(
        (s["c"].attempts, s["a"].attempts, s["a"].failovers),
        (1, 1, 1)
    );
    assert_eq!(s["c"].requests[0].count, 1);
}
