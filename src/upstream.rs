//! The other party: the HTTP/1.1 client that sends a request upstream and reads its answer.
//!
//! Hand-written on std's sockets and rustls (`conn.rs`: connecting, TLS, the idle pool;
//! `http1.rs`: the wire format). ureq did this before; at 32 clients its per-request
//! machinery (request and header maps, a pool scanned and probed with two `ioctl`s and a
//! `recv` on every reuse, four reader layers) was about 40% of Routeplane's CPU per
//! request, measured with callgrind and strace against the shared benchmark.
//!
//! What a relay needs and nothing more: 4xx/5xx come back as answers to classify,
//! redirects are never followed (a credential must not travel to another host), proxy
//! environment variables are not read (loopback traffic must not leave through
//! `HTTP_PROXY`), and nothing is compressed (a relay must see event boundaries).
//!
//! A streaming body is read on the relay's own thread, each read bounded by the deadline
//! the relay passes in: a long one for the first event (a model loading, a long prompt)
//! and a short one between events (a stall).
//!
//! A long wait (a response head, a first event, a whole answer) is waited a [`SLICE`] at
//! a time, and after each silent slice the caller is asked whether the answer is still
//! wanted ([`Abandon`]): a client that leaves is noticed within about a second, not when
//! the upstream answers or the deadline passes. There is no second thread to watch
//! the client: one thread per request is a measured design goal (issue 16).

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::registry::Settings;
use crate::sync;

mod conn;
mod explain;
mod http1;

pub use explain::explain_empty_stream;

use conn::{Conn, Names, Pool, Target};
use http1::Body;

/// How long a read of an upstream waits before it asks whether the answer is still
/// wanted ([`Abandon`]). It is also the socket's read timeout for every longer wait, the
/// same from request to request, so it costs no system call to set.
pub const SLICE: Duration = Duration::from_secs(1);

/// Asked after each [`SLICE`] an upstream stays silent: true gives its answer up (the
/// client it was for has left), ending the wait at once with [`SendError::Abandoned`],
/// [`BodyError::Abandoned`] or [`Piece::Abandoned`] and closing the connection. An
/// answer within a slice asks nothing: asking (a look at the client's socket) costs
/// system calls, and most answers come sooner.
pub type Abandon<'a> = &'a dyn Fn() -> bool;

/// Never gives an answer up: for waits that no client is behind (model listings,
/// logins).
pub const KEEP_WAITING: Abandon<'static> = &|| false;

/// Upstream headers worth passing back to the client.
const PASSED_BACK: &[&str] = &[
    "retry-after",
    "x-request-id",
    "request-id",
    "openai-processing-ms",
];

/// Header prefixes worth passing back (rate-limit information).
const PASSED_BACK_PREFIXES: &[&str] = &["x-ratelimit-", "anthropic-ratelimit-"];

/// The shared HTTP client; clones share the pool.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Arc<Pool>,
    names: Names,
    connect_timeout: Duration,
    /// The wait for a response head, and for each read of a whole body.
    first_byte_timeout: Duration,
}

/// Why an upstream could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Connection refused, reset, DNS failure, TLS failure: nothing was answered.
    Network(String),
    /// No response head within the deadline.
    Timeout(&'static str),
    /// The answer stopped being wanted while it was awaited (see [`Abandon`]).
    Abandoned,
}

/// What a [`SendError::Timeout`] was waiting for when the connect deadline ran out.
pub const CONNECTING: &str = "a connection";

/// The reasons `classify` gives a connection that broke before the response head.
const RESET: &str = "connection reset";
const CLOSED: &str = "connection closed before a response";

/// The hint of a failed look-up: most URLs the client is asked for are built on
/// `api_base`. [`SendError::hinting`] names another setting for the others.
pub const CHECK_API_BASE: &str = "check `api_base`";

impl SendError {
    /// This error with its hint naming `setting` (`auth: token_url`) instead of
    /// `api_base`, for a URL that setting gives.
    pub fn hinting(self, setting: &str) -> SendError {
        match self {
            SendError::Network(s) => {
                SendError::Network(s.replace(CHECK_API_BASE, &format!("check `{setting}`")))
            }
            e => e,
        }
    }

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
            SendError::Abandoned => f.write_str("the answer is no longer wanted"),
        }
    }
}

/// What failed, for failover: `stage` names what was awaited when time ran out.
fn classify(e: &std::io::Error, stage: &'static str) -> SendError {
    use std::io::ErrorKind as K;
    if conn::abandoned(e) {
        return SendError::Abandoned;
    }
    SendError::Network(match e.kind() {
        K::TimedOut | K::WouldBlock => return SendError::Timeout(stage),
        K::ConnectionRefused => "connection refused".to_string(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => RESET.to_string(),
        K::UnexpectedEof => CLOSED.to_string(),
        _ if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => format!("TLS failed: {e}"),
        K::InvalidData => format!("bad answer: {e}"),
        _ => format!("network error: {e}"),
    })
}

/// A request header: names and most values are fixed text, so neither is copied per
/// request unless it is made at run time (a key, a client's own header).
pub type Header = (Cow<'static, str>, Cow<'static, str>);

/// The fewest bytes a header value must have to be masked as a credential.
pub const SHORTEST_CREDENTIAL: usize = 8;

/// Puts a client's own protocol headers (`call.forward`) over `ours`: each replaces
/// ours of the same name, except `anthropic-beta`, whose lists are joined. A login's
/// betas (`oauth-2025-04-20`) are what make its token valid at all, and Claude Code
/// always sends betas of its own: replacing would lose the login's, merging keeps both.
pub fn overlay(ours: &mut Vec<Header>, client: &[Header]) {
    for (name, value) in client {
        let at = ours.iter().position(|(n, _)| n.eq_ignore_ascii_case(name));
        let value = match at {
            Some(i) if name.eq_ignore_ascii_case("anthropic-beta") => {
                let mut joined = ours[i].1.to_string();
                for beta in value.split(',').map(str::trim).filter(|b| !b.is_empty()) {
                    if !joined.split(',').any(|b| b.trim() == beta) {
                        joined.push(',');
                        joined.push_str(beta);
                    }
                }
                Cow::Owned(joined)
            }
            _ => value.clone(),
        };
        ours.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        ours.push((name.clone(), value));
    }
}

/// `body` with each credential among the headers `sent` (a key, a token, without its
/// `Bearer `) as `***`, or `None` when none is in it: a source that echoes the key it
/// refused must not hand it on to a client or a log.
pub fn without_credentials(body: &[u8], sent: &[Header]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for (name, value) in sent {
        let name = name.to_ascii_lowercase();
        let carries = ["auth", "key", "token", "secret", "cookie"]
            .iter()
            .any(|w| name.contains(w));
        let secret = value.strip_prefix("Bearer ").unwrap_or(value).as_bytes();
        // Shorter values are no credential, and would mask common words.
        if !carries || secret.len() < SHORTEST_CREDENTIAL {
            continue;
        }
        let text = out.as_deref().unwrap_or(body);
        if let Some(replaced) = replace_all(text, secret, b"***") {
            out = Some(replaced);
        }
    }
    out
}

/// [`without_credentials`] for text: `None` when no credential is in it.
pub fn text_without_credentials(text: &str, sent: &[Header]) -> Option<String> {
    let masked = without_credentials(text.as_bytes(), sent)?;
    // Whole UTF-8 strings replaced by ASCII in UTF-8: still UTF-8.
    Some(
        String::from_utf8(masked)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// `hay` with every `needle` replaced by `with`, or `None` when there is none.
fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = hay;
    let mut found = false;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
        found = true;
    }
    found.then(|| {
        out.extend_from_slice(rest);
        out
    })
}

/// An upstream's answer: status, a few headers, and the body still to read.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `content-type`, lower-cased; the common ones borrowed, not allocated.
    pub content_type: Cow<'static, str>,
    /// Headers passed back to the client.
    pub headers: Vec<(String, String)>,
    /// `Retry-After` and provider reset headers, as a duration from now.
    pub retry_after: Option<Duration>,
    body: Source,
}

/// Where a reply's body comes from.
enum Source {
    /// The connection it arrived on.
    Wire(Body),
    /// Bytes already in hand (an answer rewritten by Routeplane).
    Bytes(Vec<u8>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .finish()
    }
}

impl Client {
    /// Builds the client from the resolved settings.
    pub fn new(settings: &Settings) -> Client {
        Client::with(
            settings.connect_timeout,
            settings.first_byte_timeout,
            settings.limits.idle_connections,
        )
    }

    fn with(connect_timeout: Duration, first_byte_timeout: Duration, idle: usize) -> Client {
        Client {
            inner: Arc::new(Inner {
                // Per origin, so that concurrent requests to one local server find a
                // connection each; bounded, since each idle one holds a socket and a
                // buffer (`limits.idle_connections`, besides one kept per thread).
                pool: Arc::new(Pool::new(idle)),
                names: Names::default(),
                connect_timeout,
                first_byte_timeout: first_byte_timeout.max(Duration::from_secs(1)),
            }),
        }
    }

    /// POSTs `body` to `url` and returns once the response head is in; a long wait for
    /// it asks `abandon` whether to give up.
    ///
    /// A pooled connection the upstream closed while it sat idle shows up only when the
    /// request is written to it. When a reused connection dies before any byte of the
    /// answer, the request is sent once more at once on a new connection: the upstream
    /// never saw it, so this is not an attempt.
    pub fn post(
        &self,
        url: &str,
        headers: &[Header],
        body: &[u8],
        abandon: Abandon<'_>,
    ) -> Result<Reply, SendError> {
        self.send(
            "POST",
            url,
            headers,
            Some(body),
            (self.inner.first_byte_timeout, None),
            abandon,
        )
    }

    /// [`Client::post`] whose response head (and each read of a whole body) must arrive
    /// within `wait`, the caller's deadline rather than the one the client was built
    /// with: a stream's first-token deadline when another endpoint remains (a server
    /// loading a model may hold back even its head), or the first-byte timeout of the
    /// settings in force, which a reload changes. A dead pooled connection is retried as
    /// in [`Client::post`].
    pub fn post_within(
        &self,
        url: &str,
        headers: &[Header],
        body: &[u8],
        wait: Duration,
        abandon: Abandon<'_>,
    ) -> Result<Reply, SendError> {
        self.send("POST", url, headers, Some(body), (wait, None), abandon)
    }

    /// GETs `url` within `timeout` in all (model listings, liveness probes), reading at
    /// most `limit` bytes of the answer.
    pub fn get(
        &self,
        url: &str,
        headers: &[Header],
        timeout: Duration,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), SendError> {
        let deadline = Instant::now() + timeout;
        let head = (timeout, Some(deadline));
        let reply = self.send("GET", url, headers, None, head, KEEP_WAITING)?;
        let status = reply.status;
        let body = reply
            .read_until(limit, Some(deadline), KEEP_WAITING)
            .map_err(|e| SendError::Network(e.to_string()))?;
        Ok((status, body))
    }

    /// One request, sent again on a new connection when a reused one died unanswered.
    /// Each read of the head waits `head_wait`, or only what is left until `head_by`
    /// when the whole request has a deadline (listings and probes: not the request
    /// path, where a deadline would change the socket's timeout on every request).
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[Header],
        body: Option<&[u8]>,
        (head_wait, head_by): (Duration, Option<Instant>),
        abandon: Abandon<'_>,
    ) -> Result<Reply, SendError> {
        let target = Target::parse(url)?;
        let head = (head_wait, head_by);
        sync::with_spare(&SPARE_REQUEST, |bytes| {
            http1::request(bytes, method, &target, headers, body).map_err(SendError::Network)?;
            let inner = &*self.inner;
            let Some(pooled) = inner.pool.take(target.origin) else {
                return self.exchange(self.open(&target, head_wait)?, bytes, head, abandon);
            };
            match self.exchange(pooled, bytes, head, abandon) {
                // Closed while it sat idle: the upstream never saw the request.
                Err(e) if e.dropped() => {
                    self.exchange(self.open(&target, head_wait)?, bytes, head, abandon)
                }
                other => other,
            }
        })
    }

    /// A new connection to `target`.
    fn open(&self, target: &Target<'_>, head_wait: Duration) -> Result<Conn, SendError> {
        let connect = self.inner.connect_timeout.min(head_wait);
        Conn::open(
            target,
            &self.inner.names,
            connect,
            self.inner.first_byte_timeout,
        )
    }

    /// Sends the request's bytes on `conn` and reads the response head.
    fn exchange(
        &self,
        mut conn: Conn,
        bytes: &[u8],
        (head_wait, head_by): (Duration, Option<Instant>),
        abandon: Abandon<'_>,
    ) -> Result<Reply, SendError> {
        // Before the write: a TLS handshake reads during it.
        match head_by {
            Some(by) => conn.set_deadline(by),
            None => conn.set_wait(head_wait),
        }
        .map_err(|e| classify(&e, "the response"))?;
        conn.send(bytes, abandon)
            .map_err(|e| classify(&e, "a connection"))?;
        let mut content_type = Cow::Borrowed("");
        let mut headers = Vec::new();
        let mut retry_after = None;
        let mut reset = None;
        // Anthropic's subscription limits: when the window is spent (`rejected`), it
        // comes back at `…-unified-reset` (Unix time), hours later; a `Retry-After`
        // beside it may be far shorter.
        let (mut spent, mut window_reset) = (false, None);
        let head = http1::read_head(&mut conn, head_by, abandon, |name, value| {
            if http1::is_name(name, "content-type") {
                content_type = lowercase_type(value);
                return;
            }
            if http1::is_name(name, "retry-after") {
                retry_after = parse_retry_after(value);
            } else if http1::is_name(name, "x-ratelimit-reset-requests")
                || http1::is_name(name, "x-ratelimit-reset")
            {
                reset = reset.or_else(|| parse_reset(value));
            } else if http1::is_name(name, "anthropic-ratelimit-unified-status") {
                spent = value.trim() == "rejected";
            } else if http1::is_name(name, "anthropic-ratelimit-unified-reset") {
                window_reset = unix_time_from_now(value);
            }
            if passed_back(name) {
                headers.push((name.to_ascii_lowercase(), value.to_string()));
            }
        })
        .map_err(|e| classify(&e, "the response"))?;
        // Reads of a whole body wait as long as the head did.
        Ok(Reply {
            status: head.status,
            content_type,
            headers,
            retry_after: match window_reset {
                Some(at) if spent && head.status == 429 => Some(at),
                _ => retry_after.or(reset),
            },
            body: Source::Wire(Body::new(conn, &head, Arc::clone(&self.inner.pool))),
        })
    }
}

/// A `Content-Type` lower-cased: the types upstreams answer with borrowed.
fn lowercase_type(value: &str) -> Cow<'static, str> {
    const COMMON: [&str; 4] = [
        "application/json",
        "text/event-stream",
        "application/json; charset=utf-8",
        "text/event-stream; charset=utf-8",
    ];
    match COMMON.iter().find(|c| http1::is_name(value, c)) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(value.to_ascii_lowercase()),
    }
}

thread_local! {
    /// A whole answer's buffer, given back by [`recycle`] for the thread's next one.
    static SPARE_BODY: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The buffer the thread's last request was sent from, for its next one.
    static SPARE_REQUEST: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Gives back a body [`Reply::read_all`] returned, once its bytes went out: the thread's
/// next whole answer is read into it (see [`sync::take_spare`]).
pub fn recycle(body: Vec<u8>) {
    sync::keep_spare(&SPARE_BODY, body);
}

/// True for a header passed back to the client.
fn passed_back(name: &str) -> bool {
    PASSED_BACK.iter().any(|p| http1::is_name(name, p))
        || PASSED_BACK_PREFIXES.iter().any(|p| {
            name.get(..p.len())
                .is_some_and(|start| http1::is_name(start, p))
        })
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

/// A Unix time in seconds (or milliseconds, when it is that large), as a duration from
/// now; zero when it has passed.
fn unix_time_from_now(v: &str) -> Option<Duration> {
    until_unix(v.trim().parse().ok()?)
}

/// [`unix_time_from_now`] for a number already read.
fn until_unix(n: u64) -> Option<Duration> {
    let at = match n {
        n if n > 100_000_000_000 => Duration::from_millis(n),
        n => Duration::from_secs(n),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(at.saturating_sub(now))
}

/// When a plan limit named in a 429's body ends: the ChatGPT (Codex) backend's
/// `usage_limit_reached` carries `resets_in_seconds` or `resets_at` (Unix time) and no
/// `Retry-After`.
pub fn reset_in_body(body: &[u8]) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = &v["error"];
    if let Some(secs) = e["resets_in_seconds"].as_f64() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    until_unix(e["resets_at"].as_u64()?)
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
    /// The answer stopped being wanted while it was awaited (see [`Abandon`]).
    Abandoned,
}

/// Why a whole body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// It broke off or ended before its length.
    Failed(String),
    /// It was larger than the limit the reader was given.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// It stalled: a read waited its whole time (the wait its head had) for nothing.
    Timeout,
    /// The answer stopped being wanted while it was awaited (see [`Abandon`]).
    Abandoned,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Failed(why) => f.write_str(why),
            BodyError::TooLarge { limit } => write!(f, "the body is larger than {limit} bytes"),
            BodyError::Timeout => f.write_str("the body stalled part-way"),
            BodyError::Abandoned => f.write_str("the answer is no longer wanted"),
        }
    }
}

/// A streaming body, read on the caller's thread with a deadline per read.
pub struct Stream {
    body: Source,
    /// One read's worth; the bytes are copied out into each [`Piece::Data`].
    buf: Vec<u8>,
    /// The body ended, broke or timed out: later calls answer without reading.
    over: Option<Piece>,
}

/// The most one piece carries: events are far smaller.
const READ_SIZE: usize = 4 * 1024;

impl Reply {
    /// An answer already in hand: `bytes` as its body, read as one that arrived.
    pub fn in_hand(
        status: u16,
        content_type: Cow<'static, str>,
        headers: Vec<(String, String)>,
        bytes: Vec<u8>,
    ) -> Reply {
        Reply {
            status,
            content_type,
            headers,
            retry_after: None,
            body: Source::Bytes(bytes),
        }
    }

    /// Reads the whole body (non-streaming answers, error bodies), up to `limit` bytes;
    /// a long wait asks `abandon` whether to give up.
    pub fn read_all(self, limit: u64, abandon: Abandon<'_>) -> Result<Vec<u8>, BodyError> {
        self.read_until(limit, None, abandon)
    }

    /// Reads the whole body, each read bounded by the head's wait, all of it by
    /// `deadline` when given.
    fn read_until(
        self,
        limit: u64,
        deadline: Option<Instant>,
        abandon: Abandon<'_>,
    ) -> Result<Vec<u8>, BodyError> {
        let too_large = || BodyError::TooLarge { limit };
        let broke = |e: std::io::Error| match () {
            () if conn::abandoned(&e) => BodyError::Abandoned,
            () if conn::is_timeout(&e) => BodyError::Timeout,
            () => BodyError::Failed(format!("the body broke off: {e}")),
        };
        let mut body = match self.body {
            Source::Bytes(bytes) if bytes.len() as u64 > limit => return Err(too_large()),
            Source::Bytes(bytes) => return Ok(bytes),
            Source::Wire(body) => body,
        };
        // Sized from Content-Length (when sane) so the read does not grow it step by step,
        // and done when that many bytes are in.
        let exact = body.declared_len().filter(|&n| n <= limit.min(1 << 20));
        let mut out = sync::take_spare(&SPARE_BODY);
        out.clear();
        out.resize(exact.map_or(1024, |n| (n as usize).max(1)), 0);
        let mut len = 0;
        loop {
            if len == out.len() {
                if exact == Some(len as u64) {
                    break;
                }
                if len as u64 > limit {
                    return Err(too_large());
                }
                out.resize((len * 2).min(limit as usize + 1).max(len + 1), 0);
            }
            if let (Some(d), Some(conn)) = (deadline, body.conn()) {
                conn.set_deadline(d).map_err(broke)?;
            }
            match body.read(&mut out[len..], abandon) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) => return Err(broke(e)),
            }
        }
        if len as u64 > limit {
            return Err(too_large());
        }
        out.truncate(len);
        Ok(out)
    }

    /// Hands the body over for reading piece by piece; see [`Stream::next`].
    pub fn stream(self) -> Stream {
        Stream {
            body: self.body,
            buf: Vec::new(),
            over: None,
        }
    }
}

impl Stream {
    /// Waits until `deadline` for the next piece: what the network delivered in one
    /// read, with whatever more is already buffered. A long wait asks `abandon` whether
    /// to give up.
    ///
    /// A timeout is final: the connection may hold half an event, so it is closed, and
    /// every later call answers `Timeout` again without reading (and so for a stream
    /// given up).
    pub fn next(&mut self, deadline: Instant, abandon: Abandon<'_>) -> Piece {
        if let Some(last) = &self.over {
            return last.again();
        }
        let body = match &mut self.body {
            Source::Wire(body) => body,
            Source::Bytes(bytes) => {
                let piece = if bytes.is_empty() {
                    Piece::End
                } else {
                    Piece::Data(std::mem::take(bytes))
                };
                return piece;
            }
        };
        if self.buf.is_empty() {
            self.buf.resize(READ_SIZE, 0);
        }
        let mut result = match body.conn() {
            Some(conn) => conn
                .set_deadline(deadline)
                .and_then(|()| body.read(&mut self.buf, abandon)),
            None => Ok(0),
        };
        // Chunk boundaries already in hand need no wait: one piece per network read.
        while let Ok(n) = result {
            if n == 0 || n == self.buf.len() {
                break;
            }
            match body.read_buffered(&mut self.buf[n..]) {
                Ok(Some(m)) if m > 0 => result = Ok(n + m),
                _ => break,
            }
        }
        let piece = match result {
            Ok(0) => Piece::End,
            Ok(n) => return Piece::Data(self.buf[..n].to_vec()),
            Err(e) if conn::abandoned(&e) => Piece::Abandoned,
            Err(e) if conn::is_timeout(&e) || Instant::now() >= deadline => Piece::Timeout,
            Err(e) => Piece::Broken(format!("the stream broke off: {e}")),
        };
        self.over = Some(piece.again());
        // The read buffer is not needed any more.
        self.buf = Vec::new();
        piece
    }
}

/// How long a stream dropped before its body's end waits for that end: see `Drop`.
const LINGER: Duration = Duration::from_millis(5);

impl Drop for Stream {
    /// The relay stops reading at the protocol's end marker (`[DONE]`, `message_stop`);
    /// the body's own end (the last chunk) comes in the same packet or just after it.
    /// Reading it hands the connection back to the pool for the next request (for a
    /// hosted API, a TLS handshake saved); a connection dropped before its end is
    /// closed. A body that goes on (the client left mid-stream) is closed after at most
    /// a few reads, within `LINGER`.
    fn drop(&mut self) {
        let Source::Wire(body) = &mut self.body else {
            return;
        };
        if self.over.is_some() {
            return;
        }
        if self.buf.is_empty() {
            self.buf.resize(READ_SIZE, 0);
        }
        let until = Instant::now() + LINGER;
        for _ in 0..4 {
            let Some(conn) = body.conn() else { return };
            if conn.set_deadline(until).is_err() {
                return;
            }
            match body.read(&mut self.buf, KEEP_WAITING) {
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
            Piece::Abandoned => Piece::Abandoned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An upstream on 127.0.0.1 that answers the requests on each connection with the
    /// next scripted answers, each written in pieces with `pause` between them, then
    /// closes; returns its URL and the count of connections accepted.
    fn upstream(
        script: Vec<Vec<Vec<&'static str>>>,
        pause: Duration,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/x", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for (conn, answers) in listener.incoming().zip(script) {
                let conn = conn.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut out = conn;
                    for answer in answers {
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        for (i, piece) in answer.iter().enumerate() {
                            if i > 0 {
                                std::thread::sleep(pause);
                            }
                            if out.write_all(piece.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    fn client() -> Client {
        Client::with(Duration::from_secs(2), Duration::from_secs(5), 4)
    }

    #[test]
    fn chunked_answers_split_anywhere_arrive_whole_and_the_connection_is_reused() {
        let chunked = vec![
            "HTTP/1.1 200 OK\r\nContent-Type: Text/Plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            "lo\r\n6;ext=1\r\n world\r",
            "\n0\r\n",
            "Trailer: x\r\n\r\n",
        ];
        let sized = vec!["HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Request-Id: r1\r\n\r\nok"];
        let (url, accepted) = upstream(vec![vec![chunked, sized]], Duration::from_millis(20));
        let c = client();
        let first = c.post(&url, &[], b"{}", KEEP_WAITING).unwrap();
        assert_eq!((first.status, &*first.content_type), (200, "text/plain"));
        assert_eq!(first.read_all(100, KEEP_WAITING).unwrap(), b"hello world");
        let second = c.post(&url, &[], b"{}", KEEP_WAITING).unwrap();
        assert_eq!(second.status, 201);
        assert_eq!(
            second.headers,
            [("x-request-id".to_string(), "r1".to_string())]
        );
        assert_eq!(second.read_all(100, KEEP_WAITING).unwrap(), b"ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_pooled_connection_the_upstream_closed_is_replaced_unseen() {
        let one = || vec![vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"]];
        let (url, accepted) = upstream(vec![one(), one()], Duration::ZERO);
        let c = client();
        assert_eq!(
            c.post(&url, &[], b"1", KEEP_WAITING)
                .unwrap()
                .read_all(10, KEEP_WAITING)
                .unwrap(),
            b"a"
        );
        // The upstream has closed that connection; the next request finds it dead.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            c.post(&url, &[], b"2", KEEP_WAITING)
                .unwrap()
                .read_all(10, KEEP_WAITING)
                .unwrap(),
            b"a"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_connection_kept_by_one_thread_serves_the_others() {
        let ok = || vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"];
        let (url, accepted) = upstream(vec![vec![ok(), ok(), ok(), ok()]], Duration::ZERO);
        let c = client();
        let post = move |c: &Client, url: &str| {
            assert_eq!(
                c.post(url, &[], b"1", KEEP_WAITING)
                    .unwrap()
                    .read_all(10, KEEP_WAITING)
                    .unwrap(),
                b"a"
            );
        };
        // Kept in this thread's slot.
        post(&c, &url);
        // Taken from this thread's slot by another, which keeps it until it ends.
        let (c2, url2) = (c.clone(), url.clone());
        std::thread::spawn(move || post(&c2, &url2)).join().unwrap();
        // Moved to the shared list as that thread ended, then kept by a third thread.
        let (c3, url3) = (c.clone(), url.clone());
        std::thread::spawn(move || post(&c3, &url3)).join().unwrap();
        post(&c, &url);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_thread_whose_connection_another_took_opens_its_own() {
        let ok = || vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"];
        let script = vec![vec![ok(), ok(), ok(), ok()], vec![ok()]];
        let (url, accepted) = upstream(script, Duration::ZERO);
        let c = client();
        let post = move |c: &Client, url: &str| {
            assert_eq!(
                c.post(url, &[], b"1", KEEP_WAITING)
                    .unwrap()
                    .read_all(10, KEEP_WAITING)
                    .unwrap(),
                b"a"
            );
        };
        // Kept in this thread's slot.
        post(&c, &url);
        let (go, turn) = std::sync::mpsc::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let (c2, url2) = (c.clone(), url.clone());
        let other = std::thread::spawn(move || {
            // Takes this thread's connection; twice, staying alive in between.
            for () in turn {
                post(&c2, &url2);
                done.send(()).unwrap();
            }
        });
        go.send(()).unwrap();
        finished.recv().unwrap();
        // This thread's connection was taken: it opens one, instead of taking the
        // other thread's back (which would leave that one to take again, and so on).
        post(&c, &url);
        go.send(()).unwrap();
        finished.recv().unwrap();
        drop(go);
        other.join().unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn no_connection_is_kept_when_none_may_be() {
        let one = || vec![vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"]];
        let (url, accepted) = upstream(vec![one(), one()], Duration::ZERO);
        let c = Client::with(Duration::from_secs(2), Duration::from_secs(5), 0);
        for _ in 0..2 {
            assert_eq!(
                c.post(&url, &[], b"1", KEEP_WAITING)
                    .unwrap()
                    .read_all(10, KEEP_WAITING)
                    .unwrap(),
                b"a"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn bodies_too_large_or_cut_short_are_errors() {
        let long = vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"];
        let short = vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"];
        let (url, _) = upstream(vec![vec![long], vec![short]], Duration::ZERO);
        let c = client();
        let err = c
            .post(&url, &[], b"", KEEP_WAITING)
            .unwrap()
            .read_all(4, KEEP_WAITING)
            .unwrap_err();
        assert!(err.to_string().contains("larger than 4 bytes"), "{err}");
        let err = c
            .post(&url, &[], b"", KEEP_WAITING)
            .unwrap()
            .read_all(100, KEEP_WAITING)
            .unwrap_err();
        assert!(
            err.to_string().contains("before its Content-Length"),
            "{err}"
        );
    }

    #[test]
    fn an_answer_without_length_runs_to_the_connection_end() {
        let old = vec!["HTTP/1.0 200 OK\r\n\r\nall of ", "it"];
        let (url, _) = upstream(vec![vec![old]], Duration::from_millis(20));
        assert_eq!(
            client()
                .post(&url, &[], b"", KEEP_WAITING)
                .unwrap()
                .read_all(100, KEEP_WAITING)
                .unwrap(),
            b"all of it"
        );
    }

    #[test]
    fn a_stream_piece_holds_what_is_buffered_and_a_silence_times_out() {
        let events = vec![
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na\n\n\r\n3\r\nb\n\n\r\n",
            "3\r\nc\n\n\r\n",
        ];
        let (url, _) = upstream(vec![vec![events]], Duration::from_millis(600));
        let mut stream = client()
            .post(&url, &[], b"", KEEP_WAITING)
            .unwrap()
            .stream();
        let start = Instant::now();
        let Piece::Data(first) = stream.next(start + Duration::from_secs(5), KEEP_WAITING) else {
            panic!("no data");
        };
        // Both chunks of the first packet, without waiting for the next.
        assert_eq!(first, b"a\n\nb\n\n");
        assert!(start.elapsed() < Duration::from_millis(500));
        let piece = stream.next(Instant::now() + Duration::from_millis(100), KEEP_WAITING);
        assert!(matches!(piece, Piece::Timeout), "{piece:?}");
        assert!(start.elapsed() < Duration::from_millis(550));
        assert!(matches!(
            stream.next(Instant::now() + Duration::from_secs(5), KEEP_WAITING),
            Piece::Timeout
        ));
    }

    #[test]
    fn an_answer_within_a_slice_never_asks_whether_it_is_still_wanted() {
        let sized = vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "ok"];
        let (url, _) = upstream(vec![vec![sized]], Duration::from_millis(300));
        // Asking would give the answer up: it arrives whole, so nothing asked.
        let asked = std::cell::Cell::new(0);
        let unwanted = || {
            asked.set(asked.get() + 1);
            true
        };
        let reply = client().post(&url, &[], b"", &unwanted).unwrap();
        assert_eq!(reply.read_all(10, &unwanted).unwrap(), b"ok");
        assert_eq!(asked.get(), 0, "a look at the client costs system calls");
    }

    #[test]
    fn a_silent_upstream_waits_on_while_its_answer_is_wanted() {
        let late = vec!["", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"];
        let (url, _) = upstream(vec![vec![late]], Duration::from_millis(2500));
        let asked = std::cell::Cell::new(0);
        let wanted = || {
            asked.set(asked.get() + 1);
            false
        };
        let reply = client().post(&url, &[], b"", &wanted).unwrap();
        assert_eq!(reply.read_all(10, &wanted).unwrap(), b"ok");
        assert!(asked.get() >= 1, "asked after each silent slice");
    }

    #[test]
    fn a_wait_given_up_ends_within_a_slice_or_two() {
        // Silent for 4 s before the head, before the body's rest, before a stream's
        // first event; the deadline (5 s) is further still.
        let pause = Duration::from_secs(4);
        let no_head = vec!["", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"];
        let half_body = vec!["HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", "cd"];
        let no_event = vec![
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "3\r\na\n\n\r\n0\r\n\r\n",
        ];
        let script = vec![vec![no_head], vec![half_body], vec![no_event]];
        let (url, _) = upstream(script, pause);
        let c = client();
        let unwanted = || true;
        let within = |started: Instant| started.elapsed() < Duration::from_millis(3000);

        let started = Instant::now();
        let err = c.post(&url, &[], b"", &unwanted).unwrap_err();
        assert_eq!(err, SendError::Abandoned);
        assert!(within(started), "{:?}", started.elapsed());

        let reply = c.post(&url, &[], b"", KEEP_WAITING).unwrap();
        let started = Instant::now();
        assert_eq!(reply.read_all(10, &unwanted), Err(BodyError::Abandoned));
        assert!(within(started), "{:?}", started.elapsed());

        let mut stream = c.post(&url, &[], b"", KEEP_WAITING).unwrap().stream();
        let started = Instant::now();
        let piece = stream.next(started + Duration::from_secs(5), &unwanted);
        assert!(matches!(piece, Piece::Abandoned), "{piece:?}");
        assert!(within(started), "{:?}", started.elapsed());
    }

    #[test]
    fn answers_that_are_not_http_are_network_errors() {
        let garbage = vec!["SSH-2.0-OpenSSH\r\n\r\n"];
        let (url, _) = upstream(vec![vec![garbage]], Duration::ZERO);
        let err = client().post(&url, &[], b"", KEEP_WAITING).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad answer: the upstream did not answer in HTTP"
        );
        let err = client()
            .post("http://127.0.0.1:1/x", &[], b"", KEEP_WAITING)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection refused by 127.0.0.1:1 (is the server running?)"
        );
    }

    #[test]
    fn a_get_ends_at_its_deadline_even_when_the_head_trickles_in() {
        // Each header line comes within the timeout of the one before; the whole head
        // would take over a second.
        let mut head = vec!["HTTP/1.1 200 OK\r\n"];
        head.extend(std::iter::repeat_n("x-slow: 1\r\n", 12));
        head.push("Content-Length: 0\r\n\r\n");
        let (url, _) = upstream(vec![vec![head]], Duration::from_millis(100));
        let got = client().get(&url, &[], Duration::from_millis(300), 1024);
        assert!(
            matches!(got, Err(SendError::Timeout(_))),
            "a 300 ms GET must not wait for a head trickled over 1.3 s: {got:?}"
        );
    }

    #[test]
    fn an_https_upstream_with_a_certificate_no_root_vouches_for_is_refused() {
        use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
        // A self-signed certificate for 127.0.0.1 and localhost (openssl, P-256, 100 years).
        let cert =
            CertificateDer::from(&include_bytes!("upstream/testdata/self-signed.cert.der")[..]);
        let key =
            PrivatePkcs8KeyDer::from(&include_bytes!("upstream/testdata/self-signed.key.der")[..]);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.into_owned()], key.clone_key().into())
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}/v1/x", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut stream = rustls::StreamOwned::new(tls, conn);
            // Were the certificate taken, the request would be answered.
            let mut request = [0; 1024];
            if stream.read(&mut request).is_ok_and(|n| n > 0) {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                let _ = stream.flush();
            }
        });
        let err = client()
            .post(&url, &[], b"", KEEP_WAITING)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("TLS failed: ") && err.contains("UnknownIssuer"),
            "{err}"
        );
    }

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

    #[test]
    fn plan_limit_resets_in_unix_time_and_in_bodies() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let near =
            |d: Option<Duration>, secs: u64| d.is_some_and(|d| d.as_secs().abs_diff(secs) <= 1);
        let later = (now.as_secs() + 600).to_string();
        assert!(near(unix_time_from_now(&later), 600));
        let later_ms = (now.as_millis() + 600_000).to_string();
        assert!(near(unix_time_from_now(&later_ms), 600));
        assert_eq!(unix_time_from_now("1000"), Some(Duration::ZERO));
        assert_eq!(unix_time_from_now("soon"), None);
        let body = |e: &str| format!(r#"{{"error":{{"type":"usage_limit_reached",{e}}}}}"#);
        assert!(near(
            reset_in_body(body(r#""resets_in_seconds":90"#).as_bytes()),
            90
        ));
        let at = format!(r#""resets_at":{}"#, now.as_secs() + 90);
        assert!(near(reset_in_body(body(&at).as_bytes()), 90));
        assert_eq!(reset_in_body(body(r#""message":"m""#).as_bytes()), None);
        assert_eq!(reset_in_body(b"slow down"), None);
    }
}
