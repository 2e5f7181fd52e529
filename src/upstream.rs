//! The other party: one shared ureq agent that sends a request upstream and reads its answer.
//!
//! The agent is built once: 4xx/5xx come back as responses to classify (not errors),
//! redirects are never followed (a credential must not travel to another host),
//! proxy environment variables are ignored (ureq would send even loopback traffic
//! through `HTTP_PROXY`), and there is no gzip (a relay must see event boundaries).
//!
//! A streaming body is read on the relay's own thread, each read bounded by the deadline
//! the relay passes in: a long one for the first event (a model loading, a long prompt)
//! and a short one between events (a stall). ureq fixes its timeouts when the request
//! starts, so the transport (`transport.rs`) shortens each wait for input to the
//! deadline of the read in progress. (A reader thread per stream did this before: at 256
//! streams it doubled the threads and put a hand-off between every event and the client.)

use std::cell::RefCell;
use std::io::Read;
use std::time::{Duration, Instant};

use crate::registry::Settings;

mod explain;
mod transport;

pub use explain::explain_empty_stream;

/// Upstream headers worth passing back to the client.
const PASSED_BACK: &[&str] = &[
    "retry-after",
    "x-request-id",
    "request-id",
    "openai-processing-ms",
];

/// Header prefixes worth passing back (rate-limit information).
const PASSED_BACK_PREFIXES: &[&str] = &["x-ratelimit-", "anthropic-ratelimit-"];

/// The shared HTTP client.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// An agent that keeps no connection: a retry after a pooled connection was found
    /// dead must not draw another one from the pool.
    fresh: ureq::Agent,
    connect_timeout: Duration,
    /// The agent's response-head timeout, for [`Client::post_within`].
    first_byte_timeout: Duration,
}

/// Why an upstream could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Connection refused, reset, DNS failure, TLS failure: nothing was answered.
    Network(String),
    /// No response head within the deadline.
    Timeout(&'static str),
}

/// The reasons `classify` gives a connection that broke before the response head.
const RESET: &str = "connection reset";
const CLOSED: &str = "connection closed before a response";

impl SendError {
    /// True when the connection was reset or closed before the response head: the
    /// request may not have been seen, and asking again may well succeed (unlike a
    /// refused connection, a failed look-up or a timeout).
    pub fn dropped(&self) -> bool {
        matches!(self, SendError::Network(r) if r == RESET || r == CLOSED)
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Network(s) => f.write_str(s),
            SendError::Timeout(stage) => write!(f, "timed out waiting for {stage}"),
        }
    }
}

/// An upstream's answer: status, a few headers, and the body still to read.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `content-type`, lower-cased.
    pub content_type: String,
    /// Headers passed back to the client.
    pub headers: Vec<(String, String)>,
    /// `Retry-After` and provider reset headers, as a duration from now.
    pub retry_after: Option<Duration>,
    body: ureq::Body,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .finish()
    }
}

impl Client {
    /// Builds the agent from the resolved settings.
    pub fn new(settings: &Settings) -> Client {
        // `idle`: connections kept per host (none for the agent of retries).
        let config = |idle: usize| {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .proxy(None)
                .user_agent(concat!("routeplane/", env!("CARGO_PKG_VERSION")))
                .timeout_connect(Some(settings.connect_timeout))
                // ureq's default keeps 3 per host, too few for concurrent requests to one
                // local server. But every request scans the whole idle pool (ureq's purge is
                // linear): after 256 streams had each left a connection, requests cost 40%
                // more CPU (make bench). So a bounded number, `limits.idle_connections`.
                .max_idle_connections_per_host(idle)
                .max_idle_connections(idle.clamp(16, 1024) * 4)
                // Each open connection holds both buffers, zeroed, for its whole life:
                // ureq's 128 KiB each way cost 64 MiB across 256 open streams, and 32/16 KiB
                // still 47 of the 119 MiB that 1000 streams took (make bench). Events are
                // small; a response head must fit in the input buffer (providers send 1 to
                // 4 KiB); a larger request body leaves in several writes.
                .input_buffer_size(16 * 1024)
                .output_buffer_size(8 * 1024)
                .max_response_header_size(16 * 1024)
                // On the agent, not per request: a per-request override clones the whole
                // config for every call.
                .timeout_recv_response(Some(settings.first_byte_timeout))
                // For whole bodies (`read_all`) and listings; a stream's reads have the
                // relay's deadlines instead (`Stream::next`).
                .timeout_per_read(Some(
                    settings.first_byte_timeout.max(Duration::from_secs(1)),
                ))
                .build()
        };
        let fresh = ureq::Agent::with_parts(
            config(0),
            transport::Corking::default(),
            transport::Resolver::default(),
        );
        let agent = ureq::Agent::with_parts(
            config(settings.limits.idle_connections.max(1)),
            transport::Corking::default(),
            transport::Resolver::default(),
        );
        Client {
            agent,
            fresh,
            connect_timeout: settings.connect_timeout,
            first_byte_timeout: settings.first_byte_timeout,
        }
    }

    /// POSTs `body` to `url` and returns once the response head is in.
    ///
    /// A pooled connection the upstream closed while it sat idle shows up only when the
    /// request is written to it (ureq checks it before reuse, but the close can land
    /// just after). When a reused connection dies before any byte of the answer, the
    /// request is sent once more at once on a new connection: the upstream never saw
    /// it, so this is not an attempt.
    pub fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Reply, SendError> {
        self.send(url, headers, body, None)
    }

    /// [`Client::post`] whose response head must arrive within `head_within` when that
    /// is sooner than the first-byte timeout: a stream's first-token deadline, when
    /// another endpoint remains (a server loading a model may hold back even its head).
    /// A dead pooled connection is retried as in [`Client::post`].
    pub fn post_within(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        head_within: Duration,
    ) -> Result<Reply, SendError> {
        // A per-request timeout clones the agent's config: only when it is shorter.
        let within = (head_within < self.first_byte_timeout).then_some(head_within);
        self.send(url, headers, body, within)
    }

    /// One POST, sent again on a new connection when a reused one died unanswered.
    fn send(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        within: Option<Duration>,
    ) -> Result<Reply, SendError> {
        transport::forget_connect();
        let sent = post_with(&self.agent, url, headers, body, within);
        let resp = match sent {
            Err(e) if died_unanswered(&e) && !transport::connected() => {
                post_with(&self.fresh, url, headers, body, within)
            }
            other => other,
        }
        .map_err(classify)?;
        Ok(reply(resp))
    }

    /// GETs `url` with a short timeout (model listings, liveness probes).
    pub fn get(
        &self,
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), SendError> {
        let mut req = self.agent.get(url);
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let resp = req
            .config()
            .timeout_global(Some(timeout.max(self.connect_timeout.min(timeout))))
            .build()
            .call()
            .map_err(classify)?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .take(limit)
            .read_to_end(&mut body)
            .map_err(|e| SendError::Network(format!("reading the answer failed: {e}")))?;
        Ok((status, body))
    }
}

/// One POST through `agent`, its response head due `within` when given (else the agent's).
fn post_with(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    within: Option<Duration>,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let mut req = match within {
        Some(d) => agent
            .post(url)
            .config()
            .timeout_recv_response(Some(d))
            .build(),
        None => agent.post(url),
    };
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    req.send(body)
}

/// True when a connection closed or reset before the answer's first byte.
fn died_unanswered(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(io) if matches!(
        io.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof
    ))
}

/// Maps a ureq error to what failover needs to know.
fn classify(e: ureq::Error) -> SendError {
    match e {
        ureq::Error::Timeout(t) => SendError::Timeout(match t {
            ureq::Timeout::Connect | ureq::Timeout::Resolve => "a connection",
            _ => "the response",
        }),
        ureq::Error::Io(io) => SendError::Network(match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                RESET.to_string()
            }
            std::io::ErrorKind::UnexpectedEof => CLOSED.to_string(),
            _ => format!("network error: {io}"),
        }),
        ureq::Error::HostNotFound => SendError::Network("host not found".to_string()),
        ureq::Error::ConnectionFailed => SendError::Network("connection failed".to_string()),
        other => SendError::Network(format!("request failed: {other}")),
    }
}

/// Splits a ureq response into what the relay uses.
fn reply(resp: ureq::http::Response<ureq::Body>) -> Reply {
    let status = resp.status().as_u16();
    let mut headers = Vec::new();
    let mut content_type = String::new();
    let mut retry_after = None;
    for (name, value) in resp.headers() {
        let name = name.as_str();
        let Ok(value) = value.to_str() else { continue };
        if name == "content-type" {
            content_type = value.to_ascii_lowercase();
            continue;
        }
        if name == "retry-after" {
            retry_after = parse_retry_after(value);
        }
        if retry_after.is_none()
            && (name == "x-ratelimit-reset-requests" || name == "x-ratelimit-reset")
        {
            retry_after = parse_reset(value);
        }
        if PASSED_BACK.contains(&name) || PASSED_BACK_PREFIXES.iter().any(|p| name.starts_with(p)) {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    Reply {
        status,
        content_type,
        headers,
        retry_after,
        body: resp.into_body(),
    }
}

/// `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// OpenAI-style reset headers: `1s`, `6m0s`, `250ms`, or plain seconds.
fn parse_reset(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += match c {
            'h' => n * 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                n / 1000.0
            }
            'm' => n * 60.0,
            's' => n,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// What one wait on a streaming body produced.
#[derive(Debug)]
pub enum Piece {
    /// Bytes, as the network delivered them.
    Data(Vec<u8>),
    /// The body ended cleanly.
    End,
    /// Nothing arrived before the deadline.
    Timeout,
    /// The connection broke.
    Broken(String),
}

/// A streaming body, read on the caller's thread with a deadline per read.
pub struct Stream {
    state: RefCell<Reading>,
}

/// What a [`Stream`] reads with.
struct Reading {
    reader: ureq::BodyReader<'static>,
    /// One read's worth; the bytes are copied out into each [`Piece::Data`].
    buf: Vec<u8>,
    /// The body ended, broke or timed out: later calls answer without reading.
    over: Option<Piece>,
}

/// How much one read takes from ureq's input buffer: events are far smaller, and each
/// open stream holds this buffer.
const READ_SIZE: usize = 4 * 1024;

impl Reply {
    /// Reads the whole body (non-streaming answers, error bodies), up to `limit` bytes.
    pub fn read_all(self, limit: u64) -> Result<Vec<u8>, String> {
        // Sized from Content-Length (when sane) so the read does not grow it step by step.
        let expected = self
            .body
            .content_length()
            .unwrap_or(0)
            .min(limit.min(1 << 20));
        let mut out = Vec::with_capacity(expected as usize);
        let mut reader = self.body.into_reader().take(limit + 1);
        reader
            .read_to_end(&mut out)
            .map_err(|e| format!("the body broke off: {e}"))?;
        if out.len() as u64 > limit {
            return Err(format!("the body is larger than {limit} bytes"));
        }
        Ok(out)
    }

    /// Hands the body over for reading piece by piece; see [`Stream::next`].
    pub fn stream(self) -> Stream {
        Stream {
            state: RefCell::new(Reading {
                reader: self.body.into_reader(),
                buf: Vec::new(),
                over: None,
            }),
        }
    }
}

impl Stream {
    /// Waits until `deadline` for the next piece.
    ///
    /// A timeout is final: the connection may hold half an event, so it is closed (ureq
    /// keeps a connection for reuse only after its body was read to the end), and every
    /// later call answers `Timeout` again without reading.
    pub fn next(&self, deadline: Instant) -> Piece {
        let mut state = self.state.borrow_mut();
        let Reading { reader, buf, over } = &mut *state;
        if let Some(last) = over {
            return last.again();
        }
        if buf.is_empty() {
            buf.resize(READ_SIZE, 0);
        }
        let result = {
            let _bounded = transport::ReadDeadline::set(deadline);
            loop {
                match reader.read(buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            }
        };
        let piece = match result {
            Ok(0) => Piece::End,
            Ok(n) => return Piece::Data(buf[..n].to_vec()),
            Err(e) if is_timeout(&e) || Instant::now() >= deadline => Piece::Timeout,
            Err(e) => Piece::Broken(format!("the stream broke off: {e}")),
        };
        *over = Some(piece.again());
        // The read buffer is not needed any more; the reader goes with the stream.
        *buf = Vec::new();
        piece
    }
}

/// How long a stream dropped before its body's end waits for that end: see `Drop`.
const LINGER: Duration = Duration::from_millis(5);

impl Drop for Stream {
    /// The relay stops reading at the protocol's end marker (`[DONE]`, `message_stop`);
    /// the body's own end (the last chunk) comes in the same packet or just after it.
    /// Reading it hands the connection back to ureq's pool for the next request (for a
    /// hosted API, a TLS handshake saved); a connection dropped before its end is
    /// closed. A body that goes on (the client left mid-stream) is closed after at most
    /// a few reads, within `LINGER`.
    fn drop(&mut self) {
        let Reading { reader, buf, over } = self.state.get_mut();
        if over.is_some() {
            return;
        }
        if buf.is_empty() {
            buf.resize(READ_SIZE, 0);
        }
        let _bounded = transport::ReadDeadline::set(Instant::now() + LINGER);
        for _ in 0..4 {
            match reader.read(buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

impl Piece {
    /// The same outcome again, for a stream asked after it ended.
    fn again(&self) -> Piece {
        match self {
            Piece::Data(_) | Piece::End => Piece::End,
            Piece::Timeout => Piece::Timeout,
            Piece::Broken(why) => Piece::Broken(why.clone()),
        }
    }
}

/// True when a body read failed because a timeout expired (ureq wraps its own
/// `Error::Timeout` in the `io::Error` a body read returns).
fn is_timeout(e: &std::io::Error) -> bool {
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) {
        return true;
    }
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_reset_headers() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_reset("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_reset("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_reset("x"), None);
    }

    #[test]
    fn retry_after_as_a_past_date_is_zero() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }
}
