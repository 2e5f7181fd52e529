//! The benchmark's stream client: N concurrent streams, per-event added delay and TTFB.
//!
//! `cargo run --release --example stream_client -- ADDR CONCURRENCY ROUNDS [-H 'NAME: VALUE']...`
//! opens CONCURRENCY connections at once to ADDR, each asking ROUNDS times for a streamed
//! chat completion (`"model":"m"`, with any extra `-H` headers, as other proxies need), and
//! measures for every event the delay between its emission by the mock upstream (the
//! `"t"` field) and its arrival here. Events are taken apart at their blank lines, so a
//! proxy may re-chunk the stream or answer without chunked encoding. Prints one line of
//! JSON: time to first byte and added delay, p50 and p99, in milliseconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn main() {
    let (mut positional, mut headers) = (Vec::new(), String::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-H" {
            let h = args.next().expect("-H needs 'NAME: VALUE'");
            headers.push_str(h.trim());
            headers.push_str("\r\n");
        } else {
            positional.push(arg);
        }
    }
    let mut positional = positional.into_iter();
    let addr = positional
        .next()
        .expect("usage: stream_client ADDR CONCURRENCY ROUNDS [-H 'NAME: VALUE']...");
    let n: usize = positional.next().and_then(|v| v.parse().ok()).unwrap_or(1);
    let rounds: usize = positional.next().and_then(|v| v.parse().ok()).unwrap_or(5);
    let headers = Arc::new(headers);
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (addr, barrier) = (addr.clone(), Arc::clone(&barrier));
            let headers = Arc::clone(&headers);
            thread::spawn(move || {
                barrier.wait();
                let (mut ttfb, mut delays, mut failed) = (Vec::new(), Vec::new(), 0usize);
                for _ in 0..rounds {
                    match one(&addr, &headers) {
                        Some((t, d)) => {
                            ttfb.push(t);
                            delays.extend(d);
                        }
                        None => failed += 1,
                    }
                }
                (ttfb, delays, failed)
            })
        })
        .collect();
    let (mut ttfb, mut delays, mut failed) = (Vec::new(), Vec::new(), 0);
    for h in handles {
        let (t, d, f) = h.join().expect("client thread");
        ttfb.extend(t);
        delays.extend(d);
        failed += f;
    }
    ttfb.sort_by(f64::total_cmp);
    delays.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            v[((v.len() - 1) as f64 * p).round() as usize]
        }
    };
    println!(
        "{{\"streams\":{},\"events\":{},\"failed\":{failed},\"ttfb_p50_ms\":{:.3},\"ttfb_p99_ms\":{:.3},\"delay_p50_ms\":{:.3},\"delay_p99_ms\":{:.3}}}",
        ttfb.len(),
        delays.len(),
        pct(&ttfb, 0.5),
        pct(&ttfb, 0.99),
        pct(&delays, 0.5),
        pct(&delays, 0.99)
    );
}

/// One streamed request: TTFB in ms and each event's added delay in ms. `headers` are
/// extra header lines, each ending in CRLF.
fn one(addr: &str, headers: &str) -> Option<(f64, Vec<f64>)> {
    let mut conn = TcpStream::connect(addr).ok()?;
    conn.set_nodelay(true).ok()?;
    // A stream silent this long has failed (events come every few milliseconds).
    conn.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    // The address as the Host, as any client sends it: a made-up name is refused while
    // clients need no key (DNS rebinding), and every stream failed so.
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let start = Instant::now();
    conn.write_all(req.as_bytes()).ok()?;
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let ttfb = start.elapsed().as_secs_f64() * 1000.0;
    if !line.contains(" 200 ") {
        return None;
    }
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut events = Events::default();
    if chunked {
        loop {
            line.clear();
            if r.read_line(&mut line).ok()? == 0 {
                break;
            }
            let size = line.trim().split(';').next().unwrap_or("");
            let n = usize::from_str_radix(size, 16).ok()?;
            let mut data = vec![0; n + 2];
            r.read_exact(&mut data).ok()?;
            if n == 0 {
                break;
            }
            events.add(&data[..n], now_ns());
        }
    } else {
        // No chunked encoding: the body runs to the end of the connection.
        let mut data = [0; 16384];
        loop {
            let n = r.read(&mut data).ok()?;
            if n == 0 {
                break;
            }
            events.add(&data[..n], now_ns());
        }
    }
    Some((ttfb, events.delays))
}

/// Splits arriving stream bytes into events at blank lines; each event carrying a `"t"`
/// gives the delay from its emission to the arrival of its last byte.
#[derive(Default)]
struct Events {
    pending: Vec<u8>,
    delays: Vec<f64>,
}

impl Events {
    fn add(&mut self, bytes: &[u8], arrived: u128) {
        // SSE lines may end in CRLF; without the CRs every event ends in "\n\n".
        self.pending.extend(bytes.iter().filter(|&&b| b != b'\r'));
        let mut start = 0;
        while let Some(end) = self.pending[start..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|p| start + p + 2)
        {
            let text = String::from_utf8_lossy(&self.pending[start..end]);
            if let Some(t) = text
                .split("\"t\":")
                .nth(1)
                .and_then(|s| s.split([',', '}']).next())
                .and_then(|s| s.trim().parse::<u128>().ok())
            {
                self.delays.push(arrived.saturating_sub(t) as f64 / 1e6);
            }
            start = end;
        }
        self.pending.drain(..start);
    }
}
