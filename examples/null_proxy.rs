//! The benchmark's floor: the least a proxy can do, to judge Routeplane against.
//!
//! `cargo run --release --example null_proxy -- LISTEN_PORT UPSTREAM_ADDR` accepts
//! connections on 127.0.0.1, and for each one opens a connection to the upstream and
//! relays requests and responses, parsing only heads and chunk sizes (to know where a
//! response ends on a kept-alive connection) and sending every chunk as it arrives. Each
//! message (a head with its body, a chunk with its size line) goes out in one write.
//! No routing, no JSON, no limits: whatever Routeplane adds above this is its own cost.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let upstream = args
        .next()
        .expect("usage: null_proxy LISTEN_PORT UPSTREAM_ADDR");
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    for conn in listener.incoming().flatten() {
        let upstream = upstream.clone();
        thread::spawn(move || {
            let _ = relay(conn, &upstream);
        });
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

fn relay(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let up = TcpStream::connect(upstream)?;
    up.set_nodelay(true)?;
    let mut client_r = BufReader::new(client.try_clone()?);
    let mut client_w = client;
    let mut up_r = BufReader::new(up.try_clone()?);
    let mut up_w = up;
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
            client_w.write_all(&message)?;
        }
    }
}
