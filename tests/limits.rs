//! Limits on concurrency: a full queue answers 503 with Retry-After instead of growing,
//! and a burst of kept-alive connections is served at once, none left waiting.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::proxy::read_response;
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
    // until the client timeout. That race needs a server whose idle threads are few
    // (a fresh one), and lost about every other burst here: three fresh servers.
    let up = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let yaml = format!(
        "providers:\n  up:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for server in 0..3 {
        let p = Proxy::start(&yaml);
        let addr = p.url().trim_start_matches("http://").to_string();
        let mut conns: Vec<TcpStream> = (0..24)
            .map(|_| TcpStream::connect(&addr).expect("connect"))
            .collect();
        let started = Instant::now();
        for c in &mut conns {
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            c.write_all(request.as_bytes()).unwrap();
        }
        for (i, c) in conns.iter().enumerate() {
            // One whole answer each; the connection stays open, as a client's would.
            let answer = read_response(c.try_clone().unwrap(), started);
            assert_eq!(answer.status, 200, "server {server}, connection {i}");
            let body: serde_json::Value = serde_json::from_str(&answer.text()).unwrap();
            assert_eq!(body["choices"][0]["message"]["content"], "hi");
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "server {server}: {took:?}");
    }
}
