//! The benchmark's stream client: N concurrent streams, per-event added delay and TTFB.
//!
//! `cargo run --release --example stream_client -- ADDR CONCURRENCY ROUNDS` opens
//! CONCURRENCY connections at once to ADDR, each asking ROUNDS times for a streamed chat
//! completion (`"model":"m"`), and measures for every event the delay between its
//! emission by the mock upstream (the `"t"` field) and its arrival here. Prints one line
//! of JSON: time to first byte and added delay, p50 and p99, in milliseconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .expect("usage: stream_client ADDR CONCURRENCY ROUNDS");
    let n: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(1);
    let rounds: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(5);
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (addr, barrier) = (addr.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let (mut ttfb, mut delays, mut failed) = (Vec::new(), Vec::new(), 0usize);
                for _ in 0..rounds {
                    match one(&addr) {
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

/// One streamed request: TTFB in ms and each event's added delay in ms.
fn one(addr: &str) -> Option<(f64, Vec<f64>)> {
    let mut conn = TcpStream::connect(addr).ok()?;
    conn.set_nodelay(true).ok()?;
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        if line == "\r\n" {
            break;
        }
    }
    let mut delays = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            break;
        }
        let n = usize::from_str_radix(line.trim(), 16).ok()?;
        let mut data = vec![0; n + 2];
        r.read_exact(&mut data).ok()?;
        let arrived = now_ns();
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&data);
        if let Some(t) = text
            .split("\"t\":")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse::<u128>().ok())
        {
            delays.push(arrived.saturating_sub(t) as f64 / 1e6);
        }
    }
    Some((ttfb, delays))
}
