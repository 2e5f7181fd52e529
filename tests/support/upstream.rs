//! A scriptable mock upstream on 127.0.0.1: answers with JSON, SSE with gaps, or faults.
//!
//! Written on `std::net` so a script can do what a real server would never do on
//! purpose: reset the connection, hang, send garbage, break a stream mid-way. Every
//! request is recorded for assertions. The listener stops when the mock is dropped.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// How many requests came before this one on the same connection (0: a new one).
    pub on_conn: usize,
    /// When the request's head had arrived.
    pub at: Instant,
}

impl Recorded {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("recorded body is JSON")
    }
}

/// A base URL where every connection is refused. A port a dropped mock had may be
/// bound again by another test (or another test process) meanwhile; port 9
/// (discard) is privileged and served by nothing here, as no test binds below 10000.
pub fn dead_url() -> String {
    "http://127.0.0.1:9/v1".to_string()
}

/// What the mock does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete answer.
    Json(u16, String),
    /// A complete answer with extra headers.
    JsonWith(u16, Vec<(String, String)>, String),
    /// An SSE stream: each event written (and flushed) `gap` after the previous one.
    Sse(Vec<String>, Duration),
    /// An SSE stream that waits `first` before its first event (noting a hang-up
    /// meanwhile, see [`MockUpstream::hung_up`]).
    SseSlowFirst(Duration, Vec<String>, Duration),
    /// An SSE stream like `Sse` whose gaps are spent watching the connection: the
    /// proxy closing it is noted (see [`MockUpstream::hung_up`]) and ends the stream,
    /// as a server stops generating for a client that left.
    SseWatched(Vec<String>, Duration),
    /// SSE events, then the connection is cut without an end marker.
    SseThenBreak(Vec<String>, Duration),
    /// SSE events sent chunked, as hosted APIs send them, then the connection is cut
    /// before the body's last chunk.
    SseChunkedThenBreak(Vec<String>),
    /// SSE events, then silence for the given time (a stall).
    SseThenStall(Vec<String>, Duration, Duration),
    /// A streaming head, then the connection closes before any event.
    SseEmpty,
    /// Accept and say nothing for the given time (noting a hang-up meanwhile, see
    /// [`MockUpstream::hung_up`]).
    Hang(Duration),
    /// Close the connection without answering.
    Reset,
    /// Bytes that are not HTTP.
    Garbage,
    /// A complete answer sent chunked, a few bytes a chunk and a write each (as Ollama,
    /// vLLM and hosted APIs send theirs); the connection stays open.
    JsonChunked(u16, String),
    /// A complete answer with this content type (an HTML page where JSON should be).
    Typed(u16, &'static str, String),
    /// A complete answer with this content type, its body gzip-compressed under
    /// `Content-Encoding: gzip` though the request named no `Accept-Encoding` (which
    /// RFC 9110 lets a server read as "any coding").
    Gzipped(u16, &'static str, String),
    /// A complete answer with this content type whose body is these bytes under this
    /// `Content-Encoding` (`br`, `zstd`, `deflate`): never decoded, so never made.
    Encoded(u16, &'static str, &'static str, Vec<u8>),
    /// A complete answer's head and the first half of its body, then silence for the
    /// given time (a body that stalls).
    JsonThenStall(u16, String, Duration),
    /// A complete answer (with its `Content-Length`) whose body trickles in: `piece`
    /// bytes at a time, each `gap` after the last, never a silent second. The gaps are
    /// spent watching the connection, so a close by the proxy is noted (see
    /// [`MockUpstream::hung_up`]) and ends the answer.
    JsonTrickle(u16, String, usize, Duration),
}

impl Reply {
    /// A JSON answer from a `serde_json::Value`.
    pub fn json(status: u16, v: serde_json::Value) -> Reply {
        Reply::Json(status, v.to_string())
    }

    /// A chat-completions SSE stream of `n` content deltas plus `[DONE]`.
    pub fn chat_stream(n: usize, gap: Duration) -> Reply {
        Reply::Sse(chat_events(n, true), gap)
    }
}

/// `n` chat chunks with content "t0", "t1", …, then `[DONE]` when `done`.
pub fn chat_events(n: usize, done: bool) -> Vec<String> {
    let mut evs: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i}\"}},\"finish_reason\":null}}]}}\n\n"
            )
        })
        .collect();
    if done {
        evs.push("data: [DONE]\n\n".to_string());
    }
    evs
}

/// A mock Ollama serving `models`: native `/api/tags`, OpenAI-style `/v1/models`, and a
/// chat answer "from ollama" to anything else.
pub fn ollama(
    models: &'static [&'static str],
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |req| match req.path.as_str() {
        "/api/tags" => Reply::json(
            200,
            serde_json::json!({"models": models.iter().map(|m| serde_json::json!({"name": m, "model": m, "size": 1})).collect::<Vec<_>>()}),
        ),
        "/v1/models" => Reply::json(
            200,
            serde_json::json!({"object": "list", "data": models.iter().map(|m| serde_json::json!({"id": m, "object": "model"})).collect::<Vec<_>>()}),
        ),
        _ => Reply::json(200, chat_answer("from ollama")),
    }
}

/// A chat completion answer with the given text.
pub fn chat_answer(text: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })
}

/// A legacy `text_completion` answer with the given text.
pub fn completion(text: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    })
}

/// Legacy completion chunks with texts `texts` (no `[DONE]`).
pub fn completion_events(texts: &[&str]) -> Vec<String> {
    texts
        .iter()
        .map(|t| {
            let chunk = serde_json::json!({"id": "cmpl-1", "object": "text_completion", "created": 1,
                "model": "m", "choices": [{"index": 0, "text": t, "logprobs": null,
                "finish_reason": null}]});
            format!("data: {chunk}\n\n")
        })
        .collect()
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A mock upstream server.
pub struct MockUpstream {
    port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    hung_up: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    /// The accept loop, which owns the listener: joined on drop, so that a dropped
    /// mock's port refuses connections at once (a test's "dead" URL).
    accepting: Option<thread::JoinHandle<()>>,
}

impl MockUpstream {
    /// Starts a mock whose answers come from `handler`.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> MockUpstream {
        MockUpstream::start_on(0, handler)
    }

    /// A port that was free a moment ago, for a mock started later with [`MockUpstream::start_on`].
    ///
    /// Taken below the kernel's ephemeral range: a port from that range can be reused by
    /// any outgoing connection meanwhile, even by the proxy's own probe of it (a TCP
    /// connect to a port nothing listens on can open a connection to itself when the
    /// kernel picks the same port as the source), and then the mock cannot bind it.
    pub fn free_port() -> u16 {
        use std::sync::atomic::AtomicU32;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
            .unwrap_or(32768)
            .clamp(12_000, 65_535);
        let span = ephemeral_low - 10_000;
        // Spread the test binary's processes (and parallel CI runs) over the span.
        let seed = std::process::id().wrapping_mul(2_654_435_761) % span;
        for _ in 0..span {
            let n = NEXT.fetch_add(7919, Ordering::Relaxed);
            let port = 10_000 + (seed + n) % span;
            if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
                return port as u16;
            }
        }
        panic!("no free port below {ephemeral_low}");
    }

    /// Starts a mock on a given port (0 for any).
    pub fn start_on(
        port: u16,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind mock");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let hung_up = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, hangups, stopping) = (
            Arc::clone(&requests),
            Arc::clone(&hung_up),
            Arc::clone(&stop),
        );
        let accepting = thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (reqs, hangups, handler, stopping) = (
                    Arc::clone(&reqs),
                    Arc::clone(&hangups),
                    Arc::clone(&handler),
                    Arc::clone(&stopping),
                );
                thread::spawn(move || serve(conn, &reqs, &hangups, &*handler, &stopping));
            }
        });
        MockUpstream {
            port,
            requests,
            hung_up,
            stop,
            accepting: Some(accepting),
        }
    }

    /// A mock that answers every request the same way.
    pub fn always(reply: Reply) -> MockUpstream {
        MockUpstream::start(move |_| reply.clone())
    }

    /// A mock that answers with `replies` in order, repeating the last.
    pub fn script(replies: Vec<Reply>) -> MockUpstream {
        let next = Mutex::new(0usize);
        MockUpstream::start(move |_| {
            let mut i = next.lock().unwrap();
            let r = replies[(*i).min(replies.len() - 1)].clone();
            *i += 1;
            r
        })
    }

    /// A mock that drops every kept-alive connection when its next request arrives,
    /// without answering (a server whose idle timer fires just as a request comes in,
    /// which the client's check before reuse cannot see); new connections get `handler`.
    pub fn closing_idle(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        MockUpstream::start(move |req| {
            if req.on_conn > 0 {
                Reply::Reset
            } else {
                handler(req)
            }
        })
    }

    /// A mock whose handler also gets the request's number (0 for the first).
    pub fn numbered(
        handler: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        let next = Mutex::new(0usize);
        MockUpstream::start(move |req| {
            let n = {
                let mut i = next.lock().unwrap();
                *i += 1;
                *i - 1
            };
            handler(n, req)
        })
    }

    /// A source behind a subscription login that refuses the first request asked of it
    /// as Anthropic refuses an expired token (401), then answers each with `then`. Its
    /// model list (a GET, asked with the login) is answered empty and does not count.
    pub fn refuse_once_then(
        then: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        let refused = AtomicBool::new(false);
        MockUpstream::start(move |req| {
            if req.method == "GET" {
                return Reply::json(200, serde_json::json!({"data": []}));
            }
            if refused.swap(true, Ordering::SeqCst) {
                return then(req);
            }
            Reply::json(
                401,
                serde_json::json!({"type": "error", "error": {"type": "authentication_error", "message": "expired"}}),
            )
        })
    }

    /// The time between each request and the one before it.
    pub fn gaps(&self) -> Vec<Duration> {
        let reqs = self.requests();
        reqs.windows(2).map(|w| w[1].at - w[0].at).collect()
    }

    /// The base URL, ending in `/v1`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The POST requests received so far: what was asked of the source, without its
    /// model listings and probes.
    pub fn posts(&self) -> Vec<Recorded> {
        let all = self.requests.lock().unwrap();
        all.iter().filter(|r| r.method == "POST").cloned().collect()
    }

    /// The number of requests received so far.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// When the proxy closed a connection while the mock was still working on its
    /// answer (a `Hang`, a `SseSlowFirst` before its first event, a `SseWatched`
    /// between events), in order.
    pub fn hung_up(&self) -> Vec<Instant> {
        self.hung_up.lock().unwrap().clone()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag, and wait for it to close the
        // listener: until then the kernel still completes connections to the port,
        // which a request sent to a "dead" URL would see as a reset, not a refusal.
        if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && let Some(accepting) = self.accepting.take()
        {
            let _ = accepting.join();
        }
    }
}

/// Serves requests on one connection until it closes.
fn serve(
    conn: TcpStream,
    reqs: &Mutex<Vec<Recorded>>,
    hung_up: &Mutex<Vec<Instant>>,
    handler: &Handler,
    stop: &AtomicBool,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = conn.set_nodelay(true);
    let mut reader = BufReader::new(conn.try_clone().expect("clone conn"));
    let mut conn = conn;
    let mut on_conn = 0;
    loop {
        let Some(mut req) = read_request(&mut reader) else {
            return;
        };
        req.on_conn = on_conn;
        on_conn += 1;
        // A stopped mock is gone for kept-alive connections too.
        if stop.load(Ordering::SeqCst) {
            return;
        }
        reqs.lock().unwrap().push(req.clone());
        let keep = answer(&mut conn, handler(&req), hung_up);
        if !keep {
            return;
        }
    }
}

/// Reads one request (Content-Length bodies only; that is what Routeplane sends).
fn read_request(r: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let at = Instant::now();
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        path,
        headers,
        body,
        on_conn: 0,
        at,
    })
}

/// Writes one scripted reply; returns whether the connection stays open.
fn answer(conn: &mut TcpStream, reply: Reply, hung_up: &Mutex<Vec<Instant>>) -> bool {
    match reply {
        Reply::Json(status, body) => write_json(conn, status, &[], &body),
        Reply::JsonWith(status, headers, body) => write_json(conn, status, &headers, &body),
        Reply::Sse(events, gap) => {
            write_sse(conn, Duration::ZERO, hung_up, &events, gap);
            false
        }
        Reply::SseSlowFirst(first, events, gap) => {
            write_sse(conn, first, hung_up, &events, gap);
            false
        }
        Reply::SseWatched(events, gap) => {
            write_sse_watched(conn, hung_up, &events, gap);
            false
        }
        Reply::SseThenBreak(events, gap) => {
            write_sse(conn, Duration::ZERO, hung_up, &events, gap);
            let _ = conn.shutdown(Shutdown::Both);
            false
        }
        Reply::SseChunkedThenBreak(events) => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = conn.write_all(head.as_bytes());
            for ev in &events {
                let chunk = format!("{:x}\r\n{ev}\r\n", ev.len());
                if conn.write_all(chunk.as_bytes()).is_err() || conn.flush().is_err() {
                    break;
                }
            }
            let _ = conn.shutdown(Shutdown::Both);
            false
        }
        Reply::SseThenStall(events, gap, stall) => {
            write_sse(conn, Duration::ZERO, hung_up, &events, gap);
            thread::sleep(stall);
            false
        }
        Reply::SseEmpty => {
            write_sse(conn, Duration::ZERO, hung_up, &[], Duration::ZERO);
            false
        }
        Reply::Hang(d) => {
            busy(conn, d, hung_up);
            false
        }
        Reply::Reset => {
            let _ = conn.shutdown(Shutdown::Both);
            false
        }
        Reply::Garbage => {
            let _ = conn.write_all(b"\x00\x01garbage that is not HTTP\r\n\r\n");
            false
        }
        Reply::JsonChunked(status, body) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            let mut ok = conn.write_all(head.as_bytes()).is_ok();
            for piece in body.as_bytes().chunks(7) {
                let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
                chunk.extend_from_slice(piece);
                chunk.extend_from_slice(b"\r\n");
                ok = ok && conn.write_all(&chunk).is_ok() && conn.flush().is_ok();
            }
            ok && conn.write_all(b"0\r\n\r\n").is_ok()
        }
        Reply::Typed(status, ct, body) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).is_ok() && conn.write_all(body.as_bytes()).is_ok()
        }
        Reply::Gzipped(status, ct, body) => {
            let body = gzip(body.as_bytes());
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).is_ok() && conn.write_all(&body).is_ok()
        }
        Reply::Encoded(status, ct, coding, body) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Encoding: {coding}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).is_ok() && conn.write_all(&body).is_ok()
        }
        Reply::JsonThenStall(status, body, stall) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let half = &body.as_bytes()[..body.len() / 2];
            if conn.write_all(head.as_bytes()).is_ok() && conn.write_all(half).is_ok() {
                let _ = conn.flush();
                busy(conn, stall, hung_up);
            }
            false
        }
        Reply::JsonTrickle(status, body, piece, gap) => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if conn.write_all(head.as_bytes()).is_err() {
                return false;
            }
            for (i, bytes) in body.as_bytes().chunks(piece.max(1)).enumerate() {
                if i > 0 && !busy(conn, gap, hung_up) {
                    return false;
                }
                if conn.write_all(bytes).is_err() || conn.flush().is_err() {
                    hung_up.lock().unwrap().push(Instant::now());
                    return false;
                }
            }
            true
        }
    }
}

/// `data` as a gzip member whose deflate blocks are stored, not compressed: valid
/// gzip, which `gunzip` reads, without a compression crate.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut blocks = data.chunks(0xffff).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let len = block.len() as u16;
        out.push(u8::from(blocks.peek().is_none()));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn write_json(conn: &mut TcpStream, status: u16, headers: &[(String, String)], body: &str) -> bool {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).is_ok() && conn.write_all(body.as_bytes()).is_ok()
}

/// Stays busy with an answer for `d`, as a server loading a model does, but stops when
/// the proxy closes the connection meanwhile, noting when in `hung_up`; false then.
fn busy(conn: &TcpStream, d: Duration, hung_up: &Mutex<Vec<Instant>>) -> bool {
    let until = Instant::now() + d;
    let mut scratch = [0u8; 64];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        // Routeplane sends nothing more on a connection that awaits its answer: a read
        // that ends is its close (or reset).
        let _ = conn.set_read_timeout(Some(left));
        match (&*conn).read(&mut scratch) {
            Ok(n) if n > 0 => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            _ => {
                hung_up.lock().unwrap().push(Instant::now());
                return false;
            }
        }
    }
}

/// A close-delimited SSE answer, one write and flush per event, the first after a wait
/// spent [`busy`].
fn write_sse(
    conn: &mut TcpStream,
    first: Duration,
    hung_up: &Mutex<Vec<Instant>>,
    events: &[String],
    gap: Duration,
) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let _ = conn.flush();
    if !busy(conn, first, hung_up) {
        return;
    }
    let start = Instant::now();
    for (i, ev) in events.iter().enumerate() {
        if i > 0 {
            // Sleep to the scheduled time, so drift does not add up.
            let due = start + gap * i as u32;
            thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        if conn.write_all(ev.as_bytes()).is_err() || conn.flush().is_err() {
            return;
        }
    }
}

/// A close-delimited SSE answer, one write and flush per event, each gap after the
/// first event spent [`busy`]: a close by the proxy ends it and is noted in `hung_up`.
fn write_sse_watched(
    conn: &mut TcpStream,
    hung_up: &Mutex<Vec<Instant>>,
    events: &[String],
    gap: Duration,
) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    if conn.write_all(head.as_bytes()).is_err() || conn.flush().is_err() {
        return;
    }
    for (i, ev) in events.iter().enumerate() {
        if i > 0 && !busy(conn, gap, hung_up) {
            return;
        }
        if conn.write_all(ev.as_bytes()).is_err() || conn.flush().is_err() {
            hung_up.lock().unwrap().push(Instant::now());
            return;
        }
    }
}
