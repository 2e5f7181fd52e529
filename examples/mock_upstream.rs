//! A fast mock LLM upstream for the benchmark: chat completions, whole or streamed.
//!
//! `cargo run --release --example mock_upstream -- PORT [GAP_MS]` serves
//! `POST /v1/chat/completions` on 127.0.0.1:PORT (0 picks a port; the first line on
//! stdout is the bound address). A body containing `"stream":true` gets 20 SSE events
//! `GAP_MS` apart (default 5), each carrying `"t"`, its emission time in nanoseconds
//! since the epoch, so a client can measure the delay each hop added. Anything else
//! gets a small `chat.completion`. Thread per connection, keep-alive, std only.
//!
//! With `CHAOS=1` in the environment it misbehaves on purpose (for `scripts/soak.sh`):
//! of every ten requests one is refused (the connection closes), one stalls for two
//! seconds, one gets a 500, one a 429, and one stream breaks off half-way.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const EVENTS: usize = 20;

/// Counts requests, to pick a misbehaviour in chaos mode.
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let gap = Duration::from_millis(args.next().and_then(|g| g.parse().ok()).unwrap_or(5));
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    for conn in listener.incoming().flatten() {
        thread::spawn(move || serve(conn, gap));
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn serve(conn: TcpStream, gap: Duration) {
    let _ = conn.set_nodelay(true);
    let Ok(clone) = conn.try_clone() else { return };
    let mut reader = BufReader::new(clone);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h.trim().is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let stream = body.windows(13).any(|w| w == b"\"stream\":true");
        let chaos = std::env::var_os("CHAOS").is_some() && !line.starts_with("GET");
        // A multiplicative hash spreads the misbehaviours over the requests.
        let roll = REQUESTS
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9)
            % 10;
        if chaos && roll == 0 {
            return;
        }
        if chaos && roll == 1 {
            thread::sleep(Duration::from_secs(2));
        }
        let ok = if chaos && roll == 2 {
            write_status(&mut out, 500, "{\"error\":{\"message\":\"chaos\"}}")
        } else if chaos && roll == 3 {
            write_status(&mut out, 429, "{\"error\":{\"message\":\"slow down\"}}")
        } else if chaos && roll == 4 && stream {
            write_stream(&mut out, gap, EVENTS / 2)
        } else if line.starts_with("GET /health") {
            write_body(&mut out, "{\"status\":\"ok\"}")
        } else if stream {
            write_stream(&mut out, gap, EVENTS + 1)
        } else {
            write_body(
                &mut out,
                r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            )
        };
        if !ok {
            return;
        }
    }
}

fn write_body(out: &mut TcpStream, body: &str) -> bool {
    write_status(out, 200, body)
}

fn write_status(out: &mut TcpStream, status: u16, body: &str) -> bool {
    let msg = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    out.write_all(msg.as_bytes()).is_ok()
}

/// Writes `count` events of a stream (the last being `[DONE]` when the stream is whole);
/// a shorter count breaks the stream off without its terminator.
fn write_stream(out: &mut TcpStream, gap: Duration, count: usize) -> bool {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return false;
    }
    for i in 0..count.min(EVENTS + 1) {
        if i > 0 {
            thread::sleep(gap);
        }
        let event = if i == EVENTS {
            "data: [DONE]\n\n".to_string()
        } else {
            format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"t\":{},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i}\"}},\"finish_reason\":null}}]}}\n\n",
                now_ns()
            )
        };
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        if out.write_all(chunk.as_bytes()).is_err() {
            return false;
        }
    }
    if count <= EVENTS {
        // Broken off: close without the final chunk.
        let _ = out.shutdown(std::net::Shutdown::Both);
        return false;
    }
    out.write_all(b"0\r\n\r\n").is_ok()
}
