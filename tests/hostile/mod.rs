//! Hostile and broken input: nothing crashes the process, nothing holds a worker forever.
//!
//! This file holds hostile clients (lying lengths, huge headers, slow and half-sent
//! requests, malformed bodies); hostile upstreams and the limits on what they send are
//! in `upstreams.rs`.

mod upstreams;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::proxy::post_on;
use crate::support::upstream::{chat_answer, chat_events};
use crate::support::wire::{Wire, chat_chunk};
use crate::support::{MockUpstream, Proxy, Reply, wait_until};

fn config(up: &MockUpstream, extra: &str) -> String {
    format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\nlimits:\n  client_timeout_secs: 1\n{extra}",
        up.url()
    )
}

/// `config` with a half-second client timeout, for the tests that wait it out.
fn fast_config(up: &MockUpstream, extra: &str) -> String {
    config(up, extra).replace("client_timeout_secs: 1\n", "client_timeout_secs: 0.5\n")
}

/// Writes `bytes` to `conn` one at a time, `gap` apart, while reading the answer until
/// the proxy closes: the answer, how long it took, and whether the close was clean.
fn trickle_and_read(
    conn: &mut TcpStream,
    bytes: Vec<u8>,
    gap: Duration,
) -> (String, Duration, bool) {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (mut out, stop) = (conn.try_clone().unwrap(), Arc::clone(&stop));
        thread::spawn(move || {
            for b in bytes {
                if stop.load(Ordering::SeqCst) || out.write_all(&[b]).is_err() {
                    return;
                }
                thread::sleep(gap);
            }
        })
    };
    let started = Instant::now();
    let mut answer = Vec::new();
    let closed = conn.read_to_end(&mut answer).is_ok();
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    (String::from_utf8_lossy(&answer).into_owned(), took, closed)
}

/// The JSON body of a raw answer framed by `Content-Length`.
fn json_body(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

/// A normal request still succeeds.
fn still_serves(p: &Proxy) {
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
}

/// A mock whose answer says back the text of the request's first message.
fn echo_upstream() -> MockUpstream {
    MockUpstream::start(|r| {
        let said = r.json()["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        Reply::json(200, chat_answer(&said))
    })
}

/// Sends raw bytes, then reads whatever comes back until close or `wait`.
fn raw(p: &Proxy, bytes: &[u8], wait: Duration) -> String {
    let mut conn = TcpStream::connect(&p.addr).unwrap();
    conn.set_read_timeout(Some(wait)).unwrap();
    let _ = conn.write_all(bytes);
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn absurd_content_length_does_not_kill_the_process() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up, ""));
    let answer = raw(&p, b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000000000000\r\n\r\n{\"a\"", Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A lie just under the limit, then the client goes away.
    let _ = raw(
        &p,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 30000000\r\n\r\n{",
        Duration::from_millis(200),
    );
    still_serves(&p);
}

#[test]
fn huge_header_line_and_too_many_headers_are_refused() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up, ""));
    let mut long = b"POST /v1/messages?beta=true HTTP/1.1\r\nX-Big: ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 300 * 1024));
    long.extend(b"\r\n\r\n");
    let answer = raw(&p, &long, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Routeplane's answer, in the protocol the path names (Anthropic's here).
    assert!(answer.contains("\r\nServer: routeplane\r\n"), "{answer}");
    let body = json_body(&answer);
    assert_eq!(body["type"], "error", "{answer}");
    assert_eq!(
        body["error"]["message"],
        "a header line is longer than 16384 bytes, Routeplane's fixed limit; no setting raises it"
    );
    let line = p.wait_log("status=431");
    assert!(
        line.contains(
            "POST /v1/messages model=- served_by=- status=431 attempts=0 refused=header_line "
        ),
        "{line}"
    );
    // It says that the connection ends with it.
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    let mut many = b"GET /health HTTP/1.1\r\n".to_vec();
    for i in 0..1000 {
        many.extend(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    let answer = raw(&p, &many, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // No protocol in the path: OpenAI's shape.
    assert_eq!(
        json_body(&answer)["error"]["message"],
        "the request has more than 100 headers, Routeplane's fixed limit; no setting raises it"
    );
    // A request line that long is a URI too long.
    let mut uri = b"GET /".to_vec();
    uri.extend(std::iter::repeat_n(b'a', 20 * 1024));
    uri.extend(b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let answer = raw(&p, &uri, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    assert!(answer.contains("\r\nServer: routeplane\r\n"), "{answer}");
    assert_eq!(
        json_body(&answer)["error"]["message"],
        "the request line (method, path and query) is longer than 16384 bytes, Routeplane's \
         fixed limit; no setting raises it"
    );
    p.wait_log("status=414 attempts=0 refused=request_line ");
    still_serves(&p);
}

#[test]
fn a_request_line_is_split_at_single_spaces_and_a_broken_one_refused() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up, ""));
    for (line, status) in [
        ("GET /health", "400"),
        ("GET  /health HTTP/1.1", "400"),
        ("GET /health?probe=1 HTTP/1.1", "200"),
        // Words after the version are ignored, as the stock parser ignored them.
        ("GET /health HTTP/1.1 more", "200"),
        // ASCII whitespace around the line is trimmed first.
        (" GET /health HTTP/1.1\t", "200"),
    ] {
        let answer = raw(
            &p,
            format!("{line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        );
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{line}: {answer}"
        );
    }
    still_serves(&p);
}

#[test]
fn an_http2_request_line_is_answered_505_not_left_hanging() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up, ""));
    // The stock tiny_http wrote its 505 through a writer whose turn never came.
    let started = Instant::now();
    let answer = raw(
        &p,
        b"GET /health HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 505"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the answer waited for the timeout"
    );
    still_serves(&p);
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    // Each answer says which request it is for.
    let up = echo_upstream();
    let p = Proxy::start(&config(&up, ""));
    let post = |text: &str, last: bool| {
        let body =
            json!({"model": "m", "messages": [{"role": "user", "content": text}]}).to_string();
        let close = if last { "Connection: close\r\n" } else { "" };
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n{close}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // A body over 1 KiB is read after the head, not with it: both paths are taken.
    let long = "x".repeat(3000);
    let mut bytes = post("first", false);
    bytes += "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    bytes += &post(&long, false);
    bytes += &post("last", true);
    let answer = raw(&p, bytes.as_bytes(), Duration::from_secs(10));
    let starts: Vec<usize> = answer.match_indices("HTTP/1.1 ").map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 4, "{answer}");
    let parts: Vec<&str> = (0..4)
        .map(|i| &answer[starts[i]..*starts.get(i + 1).unwrap_or(&answer.len())])
        .collect();
    for part in &parts {
        assert!(part.starts_with("HTTP/1.1 200"), "{part}");
    }
    let said = |part: &str| json_body(part)["choices"][0]["message"]["content"].clone();
    assert_eq!(said(parts[0]), "first");
    assert!(!parts[1].contains("chat.completion"), "{}", parts[1]);
    assert_eq!(said(parts[2]), long.as_str());
    assert_eq!(said(parts[3]), "last");
    assert_eq!(up.count(), 3);
}

/// An Anthropic source that answers with the prompt it was sent and its
/// `anthropic-beta` header (`none` without one), and a proxy in front of it.
fn echo_proxy() -> (MockUpstream, Proxy) {
    let up = MockUpstream::start(|r| {
        let said = r.json()["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let beta = r.header("anthropic-beta").unwrap_or("none").to_string();
        Reply::json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [{"type": "text", "text": format!("{said} beta={beta}")}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}),
        )
    });
    let p = Proxy::start(&format!(
        "providers:\n  anth:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n",
        up.url()
    ));
    (up, p)
}

#[test]
fn a_connections_requests_share_no_headers_or_bodies() {
    // A connection thread reuses one request's head and answer buffers for the next:
    // nothing of the first may show in the second, whichever is longer.
    let (up, p) = echo_proxy();
    let post = |text: &str, extra: &str, last: bool| {
        let body = json!({"model": "m", "max_tokens": 8,
            "messages": [{"role": "user", "content": text}]})
        .to_string();
        let close = if last { "Connection: close\r\n" } else { "" };
        format!(
            "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}{close}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let long = "y".repeat(5000);
    let mut bytes = post(
        &long,
        "anthropic-beta: first-only\r\nX-Padding: ......\r\n",
        false,
    );
    bytes += &post("short", "", true);
    let answer = raw(&p, bytes.as_bytes(), Duration::from_secs(10));
    let second = answer.rfind("HTTP/1.1 ").unwrap();
    let text = |part: &str| json_body(part)["content"][0]["text"].clone();
    assert_eq!(
        text(&answer[..second]),
        format!("{long} beta=first-only").as_str()
    );
    assert_eq!(text(&answer[second..]), "short beta=none");
    assert_eq!(up.count(), 2);
}

#[test]
fn a_head_split_anywhere_between_reads_is_read_as_if_sent_whole() {
    // The server takes the header lines a read brought in whole in one pass, and a line
    // cut by a read's end apart: a head cut inside its request line, between a CR and
    // its LF, inside a name, after a colon and inside its blank line must be read as
    // one sent whole, padded values trimmed.
    let (up, p) = echo_proxy();
    let body = json!({"model": "m", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nanthropic-beta: \t first, second \t\r\nX-Empty:\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let whole = format!("{head}{body}");
    let cuts = [
        "POST /v1/mes",
        "sages HTTP/1.1\r",
        "\nHost: 127.0.0.1\r\nanthropic-be",
        "ta:",
        " \t first, second \t\r\nX-Empty:\r\nContent-Type: application/json\r\nContent-Length",
    ];
    let cut: usize = cuts.iter().map(|c| c.len()).sum();
    let blank = head.len() - 1;
    let mut pieces: Vec<&str> = cuts.to_vec();
    pieces.push(&whole[cut..blank]);
    pieces.push(&whole[blank..]);
    assert_eq!(pieces.concat(), whole);

    let expected = "hi beta=first, second";
    let answer = raw(&p, whole.as_bytes(), Duration::from_secs(10));
    assert_eq!(
        json_body(&answer)["content"][0]["text"],
        expected,
        "{answer}"
    );
    let mut conn = TcpStream::connect(&p.addr).unwrap();
    conn.set_nodelay(true).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for piece in pieces {
        conn.write_all(piece.as_bytes()).unwrap();
        thread::sleep(Duration::from_millis(30));
    }
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    let answer = String::from_utf8_lossy(&out);
    assert_eq!(
        json_body(&answer)["content"][0]["text"],
        expected,
        "{answer}"
    );
    assert_eq!(up.count(), 2);
}

#[test]
fn framing_headers_are_obeyed_whatever_their_case() {
    // The server finds Expect, Transfer-Encoding, Content-Length and Connection as it
    // reads a head; written in capitals, they must act as in any other case.
    let up = echo_upstream();
    let p = Proxy::start(&config(&up, ""));
    let body = |text: &str| {
        json!({"model": "m", "messages": [{"role": "user", "content": text}]}).to_string()
    };
    let (one, two) = (body("one"), body("two"));
    let mut bytes = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHOST: 127.0.0.1\r\nEXPECT: 100-continue\r\nCONTENT-LENGTH: {}\r\n\r\n{one}",
        one.len()
    );
    bytes += &format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n{:x}\r\n{two}\r\n0\r\n\r\n",
        two.len()
    );
    bytes += "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nCONNECTION: Close\r\n\r\n";
    let started = Instant::now();
    let answer = raw(&p, bytes.as_bytes(), Duration::from_secs(10));
    // `Connection: close` ended the connection, not the 10 s wait.
    assert!(started.elapsed() < Duration::from_secs(5), "{answer}");
    assert!(answer.starts_with("HTTP/1.1 100 Continue\r\n"), "{answer}");
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["100", "200", "200", "200"], "{answer}");
    assert!(answer.contains("\"one\""), "{answer}");
    assert!(answer.contains("\"two\""), "{answer}");
    assert_eq!(up.count(), 2);
    // An expectation the server cannot meet, in capitals too, is refused.
    let refused = raw(
        &p,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nEXPECT: telepathy\r\nContent-Length: 2\r\n\r\n{}",
        Duration::from_secs(10),
    );
    assert!(refused.starts_with("HTTP/1.1 417"), "{refused}");
    still_serves(&p);
}

#[test]
fn slow_clients_are_dropped_and_free_their_worker() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up, "workers: 1\n"));
    // Half a head, then silence: the connection is closed after the deadline.
    let started = Instant::now();
    let answer = raw(
        &p,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        Duration::from_secs(10),
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after the 1 s deadline"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A body that trickles in holds the only worker no longer than the deadline.
    let mut conn = TcpStream::connect(&p.addr).unwrap();
    conn.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();
    let started = Instant::now();
    still_serves(&p);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(conn);
}

#[test]
fn headers_trickled_in_are_cut_off_at_the_deadline() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&fast_config(&up, ""));
    // Each byte comes well inside the 0.5 s socket timeout; the whole head would take
    // about 25 s.
    let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut conn = TcpStream::connect(&p.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (answer, took, _) = trickle_and_read(&mut conn, head.to_vec(), Duration::from_millis(400));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(3), "the 408 came after {took:?}");
    assert!(answer.contains("\r\nServer: routeplane\r\n"), "{answer}");
    assert_eq!(
        json_body(&answer)["error"]["message"],
        "the request head did not arrive within 0.5 seconds (raise `limits.client_timeout_secs`)"
    );
    // Cut off inside its request line: no method or path to name.
    p.wait_log("- - model=- served_by=- status=408 attempts=0 refused=client_timeout ");
    still_serves(&p);
}

#[test]
fn an_unread_body_is_drained_briefly_then_the_connection_closes() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&fast_config(&up, ""));
    // No endpoint here, so nobody reads the body; it trickles in far slower than its
    // length, each byte inside the socket timeout.
    let mut conn = TcpStream::connect(&p.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(
        b"POST /v1/nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n{",
    )
    .unwrap();
    let (answer, took, closed) =
        trickle_and_read(&mut conn, vec![b' '; 200], Duration::from_millis(100));
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(closed, "the connection was not closed: {answer}");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    still_serves(&p);
}

#[test]
fn a_half_sent_request_is_refused_not_relayed() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&fast_config(&up, ""));
    // A complete JSON request on its own: only the framing says more was to come.
    let body = format!("{:<40}", r#"{"model":"m","messages":[]}"#);
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    let cases = [
        // Small enough for tiny_http to read with the head.
        (
            "short of Content-Length",
            format!("{head}Content-Length: 100\r\n\r\n{body}"),
            "the body ended before its Content-Length",
        ),
        // Read as it is consumed.
        (
            "far short of Content-Length",
            format!("{head}Content-Length: 5000\r\n\r\n{body}"),
            "the body ended before its Content-Length",
        ),
        (
            "inside a chunk",
            format!("{head}Transfer-Encoding: chunked\r\n\r\n64\r\n{body}"),
            "the body ended before its last chunk",
        ),
        (
            "before the last chunk",
            format!("{head}Transfer-Encoding: chunked\r\n\r\n28\r\n{body}\r\n"),
            "the body ended before its last chunk",
        ),
    ];
    for (name, request, reason) in cases {
        let mut conn = TcpStream::connect(&p.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let _ = conn.read_to_end(&mut out);
        let answer = String::from_utf8_lossy(&out);
        assert!(answer.starts_with("HTTP/1.1 400"), "{name}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{name}: {answer}"
        );
        let error = json_body(&answer);
        assert_eq!(
            error["error"]["message"],
            format!("could not read the request body: {reason}"),
            "{name}"
        );
        assert_eq!(error["error"]["type"], "invalid_request_error", "{name}");
    }
    assert_eq!(up.count(), 0, "a partial body was relayed upstream");
    still_serves(&p);
}

#[test]
fn malformed_bodies_get_json_errors() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up, ""));
    let deep = format!(
        "{{\"model\":\"m\",\"messages\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("wrong types", br#"{"model":"m","stream":"yes"}"#.to_vec()),
        ("invalid utf-8", b"{\"model\":\"m\xff\xfe\"}".to_vec()),
        ("truncated", br#"{"model":"m","messages":[{"#.to_vec()),
    ];
    for (name, body) in cases {
        let resp = p.send("POST", "/v1/chat/completions", &[], &body);
        assert_eq!(resp.status, 400, "{name}: {}", resp.body);
        assert!(resp.json()["error"]["message"].is_string(), "{name}");
    }
    // Deep nesting passes the top-level split untouched; only a translator would build a tree.
    let resp = p.send("POST", "/v1/messages", &[], deep.as_bytes());
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["type"], "error");
    still_serves(&p);
}

#[test]
fn broken_chunked_encoding_is_refused() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up, ""));
    let answer = raw(&p, b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n", Duration::from_secs(5));
    assert!(
        answer.starts_with("HTTP/1.1 400")
            || answer.starts_with("HTTP/1.1 408")
            || answer.is_empty(),
        "{answer}"
    );
    still_serves(&p);
}

#[test]
fn a_too_deeply_nested_body_is_said_to_be_nested_not_invalid() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up, ""));
    // Valid JSON, 200 levels deep: past serde_json's 128 when a translator builds a tree.
    let deep = format!(
        "{{\"model\":\"m\",\"max_tokens\":8,\"messages\":{}{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let resp = p.send("POST", "/v1/messages", &[], deep.as_bytes());
    assert_eq!(resp.status, 400, "{}", resp.body);
    let message = resp.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        message.contains(
            "`messages` is nested too deeply: more than 128 levels of arrays and objects, which \
             no model request needs; flatten it"
        ),
        "{message}"
    );
    assert!(!message.contains("not valid JSON"), "{message}");
    assert_eq!(up.count(), 0);
    still_serves(&p);
}

#[test]
fn an_over_long_model_name_is_refused_and_never_echoed_whole() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let long_id = "y".repeat(9000);
    let yaml = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [\"local:{long_id}\"]\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    let name = format!("local:{}", "x".repeat(100_000));
    let chat = p.post(
        "/v1/chat/completions",
        json!({"model": name, "messages": []}),
    );
    assert_eq!(
        chat.status,
        400,
        "{}",
        &chat.body[..chat.body.len().min(300)]
    );
    assert_eq!(
        chat.error_message(),
        "the model id `local:xxxxxxxxxxxxxxxxxxxxxxxxxx…` is 100006 bytes long; model ids are \
         at most 256 bytes"
    );
    // In the client's protocol.
    let messages = p.post(
        "/v1/messages",
        json!({"model": name, "max_tokens": 8, "messages": []}),
    );
    assert_eq!(messages.status, 400);
    assert_eq!(messages.json()["type"], "error", "{}", messages.body);
    let in_list = p.post(
        "/v1/chat/completions",
        json!({"models": ["local:m", name], "messages": []}),
    );
    assert_eq!(in_list.status, 400);
    assert_eq!(up.count(), 0, "nothing went upstream");
    let line = p.wait_log("status=400");
    assert!(
        line.contains(" model=local:xxxxxxxxxxxxxxxxxxxxxxxxxx… "),
        "{}",
        &line[..line.len().min(400)]
    );
    // A name at the bound is routed as any other.
    let at_bound = format!("local:{}", "z".repeat(250));
    let routed = p.post(
        "/v1/chat/completions",
        json!({"model": at_bound, "messages": []}),
    );
    assert_eq!(routed.status, 200, "{}", routed.body);
    assert_eq!(
        routed.header("x-routeplane-model"),
        Some(&at_bound["local:".len()..])
    );
    // A config's own long id is sent upstream, but no response header line that long.
    let served = p.post(
        "/v1/chat/completions",
        json!({"model": "smart", "messages": []}),
    );
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(served.header("x-routeplane-provider"), Some("local"));
    assert_eq!(served.header("x-routeplane-model"), None);
    assert!(
        served.headers.iter().all(|(n, v)| n.len() + v.len() < 8300),
        "{:?}",
        served
            .headers
            .iter()
            .map(|(n, v)| (n, v.len()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_body_over_the_limit_announced_with_expect_100_continue_is_refused_at_once() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up, "  max_body_bytes: 1000\n"));
    // A client that waits for `100 Continue` before its body, as curl does (for a second).
    let (answer, took) = refused_before_its_body(TcpStream::connect(&p.addr).unwrap());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        took < Duration::from_millis(500),
        "the 413 came after {took:?}"
    );
    assert_eq!(
        json_body(&answer)["error"]["message"],
        "request body is larger than the limit of 1000 bytes (raise `limits.max_body_bytes`)"
    );
    assert_eq!(up.count(), 0, "the body never reached the source");
    still_serves(&p);
}

/// Sends `Expect: 100-continue` with a body over the limit on `conn` and reads until the
/// proxy closes it: the answer, and how long that took.
fn refused_before_its_body(mut conn: TcpStream) -> (String, Duration) {
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    conn.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn requests_that_arrive_before_the_handler_starts_are_answered_and_closed_at_once() {
    // Connections accepted between the listening line and the request handler's start
    // (a test hook holds that moment open for a second). Their requests are queued and
    // run once it starts; but one whose answer ends its connection (a 413 before the
    // body) was closed only at the client timeout, the client waiting for the close.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let yaml = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\nlimits:\n  client_timeout_secs: 10\n  max_body_bytes: 1000\n",
        up.url()
    );
    let pause = Duration::from_secs(1);
    let hook = [("ROUTEPLANE_TEST_HANDLER_AFTER_MS", "1000")];
    let p = Proxy::start_with(&yaml, &hook, &[]);
    // A kept-alive client's request, sent meanwhile too.
    let kept = p.kept_alive();
    let chat = json!({"model": "m", "messages": []});
    let first = {
        let (kept, chat) = (kept.try_clone().unwrap(), chat.clone());
        thread::spawn(move || post_on(&kept, "/v1/chat/completions", chat))
    };
    let (answer, took) = refused_before_its_body(TcpStream::connect(&p.addr).unwrap());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        took < pause + Duration::from_millis(1500),
        "closed {took:?} after it was sent: {answer}"
    );
    // Served, and so is its next request on the same connection.
    let first = first.join().unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    let next = post_on(&kept, "/v1/chat/completions", chat);
    assert_eq!(next.status, 200, "{}", next.body);
}
