//! Streams: every event reaches the client when the upstream sends it, never bunched.

use std::time::Duration;

use serde_json::json;

use crate::support::upstream::{chat_answer, chat_events};
use crate::support::wire::Wire;
use crate::support::{MockUpstream, Proxy, Reply, wait_until};

fn config(up: &MockUpstream) -> String {
    format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    )
}

#[test]
fn stream_events_arrive_unbuffered() {
    let gap = Duration::from_millis(100);
    let up = MockUpstream::always(Reply::chat_stream(8, gap));
    let p = Proxy::start(&config(&up));
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": []}),
    );
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    assert!(s.complete, "the stream ends with the zero-length chunk");
    let data = s.data();
    assert_eq!(data.len(), 9, "{data:?}");
    assert_eq!(data[8], "[DONE]");
    // Each event arrives on its own, spaced like the upstream sent them: relative to the
    // first event, event i lands near i * gap (within half a gap), never all at the end.
    let first = s.chunks[0].0;
    for (i, (at, text)) in s.chunks.iter().enumerate().take(8) {
        let expected = gap * i as u32;
        let offset = at.saturating_sub(first);
        assert!(
            offset + gap / 2 >= expected && offset <= expected + gap / 2,
            "event {i} ({text:?}) arrived at {offset:?}, expected about {expected:?}"
        );
    }
    let sent = &up.requests()[0];
    assert_eq!(sent.json()["stream"], true);
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
}

#[test]
fn a_whole_answer_to_a_stream_request_reaches_the_client_as_a_stream() {
    // Some servers ignore `"stream": true` and answer whole. The client asked for a
    // stream and reads events: it gets the answer as its protocol's stream, not a JSON
    // body its stream reader finds nothing in.
    let up = MockUpstream::always(Reply::json(
        200,
        crate::support::upstream::chat_answer("all at once"),
    ));
    let p = Proxy::start(&config(&up));
    let chat = p.stream(
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(chat.status, 200);
    assert_eq!(chat.header("content-type"), Some("text/event-stream"));
    let data = chat.data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let first: serde_json::Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["content"], "all at once");
    assert!(
        data.iter().all(|d| !d.contains("\"usage\"")),
        "not asked for: {data:?}"
    );
    let messages = p.stream(
        "/v1/messages",
        json!({"model": "m", "stream": true, "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(messages.status, 200);
    let text = messages.text();
    for kind in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
    ] {
        assert!(text.contains(&format!("event: {kind}")), "{kind}: {text}");
    }
    assert!(text.contains("all at once"), "{text}");
    p.wait_log("model=m served_by=local:m status=200 stream=complete");
}

#[test]
fn stream_bytes_pass_through_unchanged() {
    let up = MockUpstream::always(Reply::Sse(chat_events(3, true), Duration::ZERO));
    let p = Proxy::start(&config(&up));
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": []}),
    );
    assert_eq!(s.text(), chat_events(3, true).concat());
}

#[test]
fn client_disconnect_stops_the_upstream_read() {
    let up = MockUpstream::always(Reply::chat_stream(200, Duration::from_millis(20)));
    let p = Proxy::start(&config(&up));
    p.leave_mid_stream("m");
    // The request ends long before the 4 s the full stream would take.
    let line = p.wait_log("served_by=local:m");
    assert!(line.contains("status=499"), "{line}");
}

#[test]
fn a_client_that_leaves_before_the_first_event_stops_the_wait_for_it() {
    // A local model loading: the head at once, the first event only after 8 s, and
    // first_byte_secs at its default (300 s). The client gives up long before.
    let delay = Duration::from_secs(8);
    let up = MockUpstream::always(Reply::SseSlowFirst(
        delay,
        chat_events(2, true),
        Duration::ZERO,
    ));
    let p = Proxy::start(&config(&up));
    let (line, total) = p.leave_once_asked(
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": []}),
        || up.count() == 1,
    );
    // Noticed within about a second of leaving, not when the first event came.
    assert!(
        total < 5000.0,
        "{total} ms, the upstream's delay is {delay:?}: {line}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || up.hung_up().len() == 1),
        "the upstream connection is closed, not kept for the rest of its answer"
    );
}

#[test]
fn a_client_that_leaves_while_only_keep_alives_come_stops_the_upstream() {
    // Before its first content a source sends keep-alives for 6 s (OpenRouter's
    // comments, Anthropic's pings, a local server reading a long prompt): each is a
    // piece of the stream, held back, so no write tells that the client left.
    let gap = Duration::from_millis(500);
    let comments: Vec<String> = std::iter::repeat_n(": keep-alive\n\n".to_string(), 12)
        .chain(chat_events(2, true))
        .collect();
    let mut pings = Wire::Anthropic.events(false);
    let ping = pings.remove(1);
    pings.splice(1..1, std::iter::repeat_n(ping, 12));
    for (wire, events) in [(Wire::Chat, comments), (Wire::Anthropic, pings)] {
        let up = MockUpstream::always(Reply::SseWatched(events, gap));
        let p = wire.serving(&up, "m");
        let (line, total) = p.leave_once_asked(wire.path(), wire.request("m", true, false), || {
            up.posts().len() == 1
        });
        assert!(
            total < 4000.0,
            "{wire:?}: noticed within about a second, not when content came at 6 s: {line}"
        );
        assert!(
            line.contains(" ttfb_ms=- "),
            "{wire:?}: no byte went to the client: {line}"
        );
        assert!(
            wait_until(Duration::from_secs(2), || up.hung_up().len() == 1),
            "{wire:?}: the upstream connection is closed, not kept for the rest of its answer"
        );
    }
}

#[test]
fn a_client_that_leaves_while_its_whole_answer_is_collected_stops_the_upstream() {
    // A whole answer asked of a local server with an endpoint after it goes upstream as
    // a stream, collected: nothing is written to the client until its end, 10 s on.
    let up = MockUpstream::always(Reply::SseWatched(
        chat_events(20, true),
        Duration::from_millis(500),
    ));
    let spare = MockUpstream::always(Reply::json(200, chat_answer("spare")));
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\n  spare:\n    api_base: {}\n    models: [m]\nmodels:\n  v:\n    endpoints: [local:m, spare:m]\n",
        up.url(),
        spare.url()
    ));
    let (line, total) = p.leave_once_asked(
        "/v1/chat/completions",
        json!({"model": "v", "messages": [{"role": "user", "content": "hi"}]}),
        || up.posts().len() == 1,
    );
    assert_eq!(
        up.posts()[0].json()["stream"],
        true,
        "collected from a stream"
    );
    assert!(total < 4000.0, "noticed within about a second: {line}");
    // Not a 200 with a first byte for an answer nobody received.
    assert!(
        line.contains(" served_by=- status=499 ") && line.contains(" ttfb_ms=- "),
        "{line}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || up.hung_up().len() == 1),
        "the upstream connection is closed, not kept for the rest of its answer"
    );
    assert!(spare.posts().is_empty(), "nothing asked after it left");
}

#[test]
fn the_first_event_has_the_first_byte_deadline_and_later_ones_the_idle_one() {
    // The first event takes longer than the idle timeout but less than the first-byte
    // one; later gaps stay under the idle timeout. One deadline for both would cut it.
    let up = MockUpstream::always(Reply::SseSlowFirst(
        Duration::from_millis(2000),
        chat_events(3, true),
        Duration::from_millis(300),
    ));
    let yaml = format!(
        "timeouts:\n  first_byte_secs: 6\n  idle_secs: 1\n{}",
        config(&up)
    );
    let p = Proxy::start(&yaml);
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": []}),
    );
    assert_eq!(s.status, 200, "{}", s.text());
    assert!(s.complete);
    assert_eq!(s.data().len(), 4, "{:?}", s.data());
    assert!(
        s.chunks[0].0 >= Duration::from_millis(1900),
        "{:?}",
        s.chunks[0].0
    );
}

/// Serves one connection of a kept-alive upstream: chunked SSE answers, each two chat
/// events and `[DONE]`. With `stall`, the first answer stops after one event for 1.5 s
/// and then finishes, so a reused connection would hand its rest to the next request.
fn serve_kept_alive(conn: std::net::TcpStream, stall: bool) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut out = conn;
    let chunk = |text: &str| format!("{:x}\r\n{text}\r\n", text.len());
    for round in 0.. {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let events = chat_events(2, true);
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        let _ = out.write_all(format!("{head}{}", chunk(&events[0])).as_bytes());
        if stall && round == 0 {
            std::thread::sleep(Duration::from_millis(1500));
        }
        let rest: String = events[1..].iter().map(|e| chunk(e)).collect();
        if out
            .write_all(format!("{rest}0\r\n\r\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

/// Starts a kept-alive upstream whose first connection stalls (when `stall`); returns
/// its address and the count of connections it accepted.
fn kept_alive_upstream(
    stall: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&accepted);
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4).flatten() {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            std::thread::spawn(move || serve_kept_alive(conn, stall && first));
        }
    });
    (addr, accepted)
}

#[test]
fn a_finished_stream_hands_its_upstream_connection_to_the_next_request() {
    let (addr, accepted) = kept_alive_upstream(false);
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: http://{addr}/v1\n    models: [m]\n"
    ));
    let body = json!({"model": "m", "stream": true, "messages": []});
    for i in 1..=3 {
        let s = p.stream("/v1/chat/completions", body.clone());
        assert_eq!(s.status, 200);
        assert_eq!(s.text(), chat_events(2, true).concat());
        // The request's log line comes after the relay let go of the upstream body.
        let logged = || p.log().iter().filter(|l| l.contains("status=200")).count();
        assert!(crate::support::wait_until(
            Duration::from_secs(10),
            || logged() == i
        ));
    }
    // For a hosted API, each new connection would be a TLS handshake.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_stream_that_timed_out_never_lends_its_connection() {
    use std::sync::atomic::Ordering;
    let (addr, accepted) = kept_alive_upstream(true);
    let yaml = format!(
        "timeouts:\n  idle_secs: 0.5\nproviders:\n  local:\n    api_base: http://{addr}/v1\n    models: [m]\n"
    );
    let p = Proxy::start(&yaml);
    let body = json!({"model": "m", "stream": true, "messages": []});
    let stalled = p.stream("/v1/chat/completions", body.clone());
    assert_eq!(stalled.status, 200);
    let data = stalled.data();
    assert_eq!(data.len(), 2, "one event, then the error: {data:?}");
    assert!(data[1].contains("silent for 500ms"), "{data:?}");
    // The next request must not be sent on the stalled connection: its late rest would
    // be read as this answer.
    let next = p.stream("/v1/chat/completions", body);
    assert_eq!(next.status, 200);
    assert_eq!(next.text(), chat_events(2, true).concat());
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a fresh connection");
}
