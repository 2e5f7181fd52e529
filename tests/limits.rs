//! Limits on concurrency: a full queue answers 503 with Retry-After instead of growing,
//! and a burst of kept-alive connections is served at once, none left waiting.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::upstream::chat_answer;
use crate::support::{MockUpstream, Proxy, Reply};

#[test]
fn excess_requests_wait_briefly_then_get_503() {
    let up = MockUpstream::always(Reply::Hang(Duration::from_secs(2)));
    let yaml = format!(
        "workers: 1\nlimits:\n  queue_wait_secs: 0.2\ntimeouts:\n  first_byte_secs: 1.5\nproviders:\n  slow:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let p = std::sync::Arc::new(Proxy::start(&yaml));
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let p = std::sync::Arc::clone(&p);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100 * i));
                p.post(
                    "/v1/chat/completions",
                    json!({"model": "m", "messages": []}),
                )
            })
        })
        .collect();
    let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // The first holds the only worker until its upstream times out; the two behind it
    // waited longer than queue_wait_secs and are refused.
    let busy: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        busy.len(),
        2,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(busy[0].header("retry-after"), Some("1"));
    assert_eq!(
        busy[0].json()["error"]["message"],
        "too many requests in flight; retry shortly"
    );
    assert_eq!(answers.iter().filter(|r| r.status == 502).count(), 1);
}

#[test]
fn a_burst_of_kept_alive_connections_is_served_at_once() {
    // Each connection holds a thread for its whole kept-alive life. Opened together,
    // connections used to be queued behind idle threads that had not yet woken, and
    // then waited for another connection to close: with clients that keep theirs open,
    // until the client timeout.
    let up = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let yaml = format!(
        "providers:\n  up:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    let addr = p.url().trim_start_matches("http://").to_string();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut conns: Vec<TcpStream> = (0..24)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    let started = Instant::now();
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.write_all(request.as_bytes()).unwrap();
    }
    for (i, c) in conns.iter().enumerate() {
        // Read one whole answer and leave the connection open, as a client would.
        let mut r = BufReader::new(c);
        let mut status = String::new();
        r.read_line(&mut status)
            .unwrap_or_else(|e| panic!("connection {i} got no answer: {e}"));
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "connection {i}: {status}"
        );
        let mut len = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut answer = vec![0; len];
        r.read_exact(&mut answer).unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
