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
//! the upstream answers or the deadline passes. A whole body that trickles in (never a
//! silent slice) is asked about between its reads, at most once a slice. There is no
//! second thread to watch the client: one thread per request is a measured design goal
//! (issue 16).
//!
//! Sending a request and reading its head is here; `reply.rs` reads the body, whole or
//! as a stream, and `retry.rs` reads when an upstream says it may be asked again.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::log::Secret;
use crate::registry::{Origin, Settings};
use crate::sync;

mod conn;
mod explain;
mod http1;
mod reply;
mod retry;
#[cfg(test)]
mod tests;

pub use explain::explain_empty_stream;
pub use reply::{BodyError, Piece, Reply, Stream, recycle};
pub use retry::{parse_retry_after, reset_in_body};

use reply::Source;
use retry::{parse_reset, unix_time_from_now};

use conn::{Conn, Names, Pool};
use http1::{Body, Known};

/// How long a read of an upstream waits before it asks whether the answer is still
/// wanted ([`Abandon`]). It is also the socket's read timeout for every longer wait, the
/// same from request to request, so it costs no system call to set.
pub const SLICE: Duration = Duration::from_secs(1);

/// Asked after each [`SLICE`] an upstream stays silent, and at most once a slice while a
/// whole body trickles in ([`Reply::read_all`]): true gives its answer up (the client it
/// was for has left), ending the wait at once with [`SendError::Abandoned`],
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
    /// Connection refused, reset, DNS failure, TLS failure: nothing was answered. What
    /// happened, set where it is found, and the words that say it.
    Network(Net, String),
    /// No response head within the deadline.
    Timeout(&'static str),
    /// The answer stopped being wanted while it was awaited (see [`Abandon`]).
    Abandoned,
}

/// What kind of network failure a [`SendError::Network`] is, said where it is found:
/// its words may quote a host or an upstream's, which name no cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// The server refused the connection: nothing listens there.
    Refused,
    /// The connection was reset before the response head.
    Reset,
    /// The connection closed before the response head.
    Closed,
    /// The host's name does not resolve.
    Dns,
    /// Anything else: TLS, a URL that cannot be asked, an answer that is not HTTP.
    Other,
}

/// What a [`SendError::Timeout`] was waiting for when the connect deadline ran out.
pub const CONNECTING: &str = "a connection";

/// The reasons `classify` gives a connection that broke before the response head.
const RESET: &str = "connection reset";
const CLOSED: &str = "connection closed before a response";

/// The hint of a failed look-up: the setting that gave the host, then the network.
/// URLs the client is asked for are built on `api_base`; [`SendError::network_only`]
/// leaves the network for a host no setting of the user's gave.
pub const CHECK_API_BASE: &str = "check `api_base`, the network or DNS";

impl SendError {
    /// This error with its look-up hint naming only the network: for a URL no setting
    /// of the user's gave (a built-in provider's own `api_base`).
    pub fn network_only(self) -> SendError {
        match self {
            SendError::Network(net, s) => {
                SendError::Network(net, s.replace(CHECK_API_BASE, "check the network or DNS"))
            }
            e => e,
        }
    }

    /// True when the connection was reset or closed before the response head: the
    /// request may not have been seen, and asking again may well succeed (unlike a
    /// refused connection, a failed look-up or a timeout).
    pub fn dropped(&self) -> bool {
        matches!(self, SendError::Network(Net::Reset | Net::Closed, _))
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Network(_, s) => f.write_str(s),
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
    let (net, words) = match e.kind() {
        K::TimedOut | K::WouldBlock => return SendError::Timeout(stage),
        K::ConnectionRefused => (Net::Refused, "connection refused".to_string()),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            (Net::Reset, RESET.to_string())
        }
        K::UnexpectedEof => (Net::Closed, CLOSED.to_string()),
        _ if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            (Net::Other, format!("TLS failed: {e}"))
        }
        K::InvalidData => (Net::Other, format!("bad answer: {e}")),
        _ => (Net::Other, format!("network error: {e}")),
    };
    SendError::Network(net, words)
}

/// A request header: names and most values are fixed text, so neither is copied per
/// request unless it is made at run time (a client's own header).
pub type Header = (Cow<'static, str>, HeaderValue);

/// A request header's value: text, or a credential sent as it is kept (shared with its
/// key or login: no copy a request), whose `Debug` is `***`.
#[derive(Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Fixed text, or text made for this request.
    Text(Cow<'static, str>),
    /// A credential as it is (`x-api-key: KEY`).
    Key(Secret),
    /// A credential as `Bearer KEY`.
    Bearer(Secret),
}

impl std::ops::Deref for HeaderValue {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            HeaderValue::Text(text) => text,
            HeaderValue::Key(secret) => secret.expose(),
            HeaderValue::Bearer(secret) => secret.bearer(),
        }
    }
}

impl std::fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderValue::Text(text) => text.fmt(f),
            HeaderValue::Key(secret) | HeaderValue::Bearer(secret) => secret.fmt(f),
        }
    }
}

impl From<&'static str> for HeaderValue {
    fn from(text: &'static str) -> HeaderValue {
        HeaderValue::Text(Cow::Borrowed(text))
    }
}

impl From<String> for HeaderValue {
    fn from(text: String) -> HeaderValue {
        HeaderValue::Text(Cow::Owned(text))
    }
}

impl From<Cow<'static, str>> for HeaderValue {
    fn from(text: Cow<'static, str>) -> HeaderValue {
        HeaderValue::Text(text)
    }
}

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
                let mut joined = String::from(&*ours[i].1);
                for beta in value.split(',').map(str::trim).filter(|b| !b.is_empty()) {
                    if !joined.split(',').any(|b| b.trim() == beta) {
                        joined.push(',');
                        joined.push_str(beta);
                    }
                }
                HeaderValue::from(joined)
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

    /// How long a request waits for its answer's head unless told otherwise.
    pub fn first_byte_timeout(&self) -> Duration {
        self.inner.first_byte_timeout
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
            (&split(url)?, ""),
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
        let target = (&split(url)?, "");
        self.send("POST", target, headers, Some(body), (wait, None), abandon)
    }

    /// [`Client::post_within`] to an `api_base` split once (an [`Origin`]) joined with a
    /// path: the request path's way, with no URL to build or split.
    pub fn post_at(
        &self,
        target: (&Origin, &str),
        headers: &[Header],
        body: &[u8],
        wait: Duration,
        abandon: Abandon<'_>,
    ) -> Result<Reply, SendError> {
        self.send("POST", target, headers, Some(body), (wait, None), abandon)
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
        let target = (&split(url)?, "");
        let reply = self.send("GET", target, headers, None, head, KEEP_WAITING)?;
        let status = reply.status;
        let body = reply
            .read_until(limit, Some(deadline), KEEP_WAITING)
            .map_err(|e| SendError::Network(Net::Other, e.to_string()))?;
        Ok((status, body))
    }

    /// One request to `target`'s URL joined with `path`, sent again on a new connection
    /// when a reused one died unanswered. Each read of the head waits `head_wait`, or
    /// only what is left until `head_by` when the whole request has a deadline
    /// (listings and probes: not the request path, where a deadline would change the
    /// socket's timeout on every request).
    fn send(
        &self,
        method: &str,
        (target, path): (&Origin, &str),
        headers: &[Header],
        body: Option<&[u8]>,
        (head_wait, head_by): (Duration, Option<Instant>),
        abandon: Abandon<'_>,
    ) -> Result<Reply, SendError> {
        let head = (head_wait, head_by);
        sync::with_spare(&SPARE_REQUEST, |bytes| {
            http1::request(bytes, method, (target, path), headers, body)
                .map_err(|e| SendError::Network(Net::Other, e))?;
            let inner = &*self.inner;
            let Some(pooled) = inner.pool.take(target.origin()) else {
                return self.exchange(self.open(target, head_wait)?, bytes, head, abandon);
            };
            match self.exchange(pooled, bytes, head, abandon) {
                // Closed while it sat idle: the upstream never saw the request.
                Err(e) if e.dropped() => {
                    self.exchange(self.open(target, head_wait)?, bytes, head, abandon)
                }
                other => other,
            }
        })
    }

    /// A new connection to `target`.
    fn open(&self, target: &Origin, head_wait: Duration) -> Result<Conn, SendError> {
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
        let mut coding = None;
        let mut reset = None;
        // Anthropic's subscription limits: when the window is spent (`rejected`), it
        // comes back at `…-unified-reset` (Unix time), hours later; a `Retry-After`
        // beside it may be far shorter.
        let (mut spent, mut window_reset) = (false, None);
        let head = http1::read_head(&mut conn, head_by, abandon, |known, name, value| {
            match known {
                Known::ContentType => content_type = lowercase_type(value),
                Known::RetryAfter => retry_after = parse_retry_after(value),
                Known::ContentEncoding => {
                    let value = value.trim();
                    coding = (!value.is_empty() && !http1::is_name(value, "identity"))
                        .then(|| value.to_ascii_lowercase().into_boxed_str());
                }
                Known::RateReset => reset = reset.or_else(|| parse_reset(value)),
                Known::UnifiedStatus => spent = value.trim() == "rejected",
                Known::UnifiedReset => window_reset = unix_time_from_now(value),
                _ => {}
            }
            if passes_back(known, name) {
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
            coding,
            body: Source::Wire(Body::new(conn, &head, Arc::clone(&self.inner.pool))),
        })
    }
}

/// `url` split, for a request that names a whole URL.
fn split(url: &str) -> Result<Origin, SendError> {
    Origin::split(url).map_err(|e| SendError::Network(Net::Other, e))
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
    /// The buffer the thread's last request was sent from, for its next one.
    static SPARE_REQUEST: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// [`passed_back`] of a header whose kind is `known`: a kind [`Known::of`] told apart
/// answers without comparing its name again.
fn passes_back(known: Known, name: &str) -> bool {
    match known {
        Known::RetryAfter | Known::RateReset | Known::UnifiedStatus | Known::UnifiedReset => true,
        Known::Other => passed_back(name),
        _ => false,
    }
}

/// True for a header passed back to the client. Out of line: most answers' heads have
/// few such headers, and its comparisons would sit among the head's hot code.
#[inline(never)]
fn passed_back(name: &str) -> bool {
    PASSED_BACK.iter().any(|p| http1::is_name(name, p))
        || PASSED_BACK_PREFIXES.iter().any(|p| {
            name.get(..p.len())
                .is_some_and(|start| http1::is_name(start, p))
        })
}
