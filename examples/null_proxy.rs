//! The benchmark's floor: the least a proxy can do, to judge Routeplane against.
//!
//! `cargo run --release --example null_proxy -- LISTEN_PORT UPSTREAM_ADDR` accepts
//! connections on 127.0.0.1, and for each one opens a connection to the upstream and
//! relays requests and responses, parsing only heads and chunk sizes (to know where a
//! response ends on a kept-alive connection) and sending every chunk as it arrives. Each
//! message (a head with its body, a chunk with its size line) goes out in one write.
//! No routing, no JSON, no limits: whatever Routeplane adds above this is its own cost.
//!
//! Two knobs make the floor heavier on purpose, to price what a proxy's own work costs
//! the whole machine (bench/results.md, issue 16 session 13): `NULL_PROXY_SPIN_NS`
//! busies the thread that long before each of a request's two writes (CPU and nothing
//! else); `NULL_PROXY_TOUCH_KB` writes one byte in every cache line of that many KiB of
//! the connection's own memory before each of them (memory traffic, little CPU). Both
//! are off unless set; the benchmark never sets them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let upstream = args
        .next()
        .expect("usage: null_proxy LISTEN_PORT UPSTREAM_ADDR");
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    let weight = Weight::from_env();
    for conn in listener.incoming().flatten() {
        let upstream = upstream.clone();
        thread::spawn(move || {
            let _ = relay(conn, &upstream, weight);
        });
    }
}

/// Work added before each write, to price a proxy's own CPU and memory traffic.
#[derive(Clone, Copy)]
struct Weight {
    spin: Duration,
    touch_kb: usize,
}

impl Weight {
    fn from_env() -> Weight {
        let knob = |name| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        Weight {
            spin: Duration::from_nanos(knob("NULL_PROXY_SPIN_NS").unwrap_or(0)),
            touch_kb: knob("NULL_PROXY_TOUCH_KB").unwrap_or(0) as usize,
        }
    }

    /// Busies the thread for `spin`, then dirties one byte per cache line of `memory`.
    fn carry(&self, memory: &mut [u8]) {
        if !self.spin.is_zero() {
            let start = Instant::now();
            while start.elapsed() < self.spin {
                std::hint::spin_loop();
            }
        }
        for line in memory.chunks_mut(64) {
            line[0] = line[0].wrapping_add(1);
        }
        std::hint::black_box(memory);
    }
}

/// A message head and how its body is framed.
struct Head {
    bytes: Vec<u8>,
    len: Option<usize>,
    chunked: bool,
}

/// Reads a head (request or status line plus headers); `None` at end of stream.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut head = Vec::new();
    let (mut len, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        head.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            return Ok(Some(Head {
                bytes: head,
                len,
                chunked,
            }));
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
}

fn relay(client: TcpStream, upstream: &str, weight: Weight) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let up = TcpStream::connect(upstream)?;
    up.set_nodelay(true)?;
    let mut client_r = BufReader::new(client.try_clone()?);
    let mut client_w = client;
    let mut up_r = BufReader::new(up.try_clone()?);
    let mut up_w = up;
    // The connection's own, as a thread's stack and buffers are: 32 clients, 32 of them.
    let mut memory = vec![0u8; weight.touch_kb * 1024];
    loop {
        let Some(req) = read_head(&mut client_r)? else {
            return Ok(());
        };
        // Head and body in one write each way, as any careful proxy sends them: two
        // writes are two segments and can wake the reader twice (the first version of
        // this floor did that, and cost its mock and client more than Routeplane did).
        let mut message = req.bytes;
        let head_len = message.len();
        message.resize(head_len + req.len.unwrap_or(0), 0);
        client_r.read_exact(&mut message[head_len..])?;
        weight.carry(&mut memory);
        up_w.write_all(&message)?;
        let Some(resp) = read_head(&mut up_r)? else {
            return Ok(());
        };
        if resp.chunked {
            client_w.write_all(&resp.bytes)?;
            loop {
                let mut size = String::new();
                up_r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                // The size line and its data in one write: one segment an event.
                let mut frame = size.into_bytes();
                let line_len = frame.len();
                frame.resize(line_len + n + 2, 0);
                up_r.read_exact(&mut frame[line_len..])?;
                client_w.write_all(&frame)?;
                if n == 0 {
                    break;
                }
            }
        } else {
            let mut message = resp.bytes;
            let head_len = message.len();
            message.resize(head_len + resp.len.unwrap_or(0), 0);
            up_r.read_exact(&mut message[head_len..])?;
            weight.carry(&mut memory);
            client_w.write_all(&message)?;
        }
    }
}
