//! Streams: every event reaches the client when the upstream sends it, never bunched.

use std::time::Duration;

use serde_json::json;

use crate::support::upstream::chat_events;
use crate::support::{MockUpstream, Proxy, Reply};

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
    use std::io::{Read, Write};
    let up = MockUpstream::always(Reply::chat_stream(200, Duration::from_millis(20)));
    let p = Proxy::start(&config(&up));
    let body = json!({"model": "m", "stream": true, "messages": []}).to_string();
    let mut conn = std::net::TcpStream::connect(&p.addr).unwrap();
    write!(
        conn,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let _ = conn.read(&mut buf).unwrap();
    drop(conn);
    // The request ends long before the 4 s the full stream would take.
    let line = p.wait_log("served_by=local:m");
    assert!(line.contains("status=499"), "{line}");
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
