//! The request's main loop: try each target in order, retry, fail over, rescue a broken stream.
//!
//! [`run`] is where a request spends its life. Each endpoint is asked (with a few quick
//! retries for transient failures, `attempt.rs`), each failure is classified by
//! `next_step`, the failover table in one `match`, and a streamed answer is relayed
//! event by event (`stream.rs`; the client's side of it across attempts is
//! `splice.rs`). The client's status line and the events before the
//! first generated content are held, so a failure before that is invisible and the
//! next target is tried. Once content has gone out the answer is committed: a stream
//! that then breaks is continued by an endpoint that can take the partial answer as a
//! prefill (`rescue.rs`), or ends with an error event in the client's protocol. A
//! translated answer's reasoning is kept for a client that will not give it back
//! (`recall.rs`). What an attempt's failure stands for (a send that got no answer, an
//! error answer, a source's own words: a context window, a filter…) is read in
//! `classify.rs`. A request that ends in failure is told so in `failed.rs`; token
//! counts are asked in `count.rs`.

mod attempt;
mod classify;
mod count;
mod failed;
mod recall;
mod refused;
mod rescue;
mod splice;
mod stream;
mod unreadable;

pub use self::recall::Recall;
pub use self::refused::Refused;
pub use self::unreadable::Unreadable;

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::auth::Auth;
use crate::body::RawBody;
use crate::error::Error;
use crate::log::StreamEnd;
use crate::protocol::{Asked, Protocol};
use crate::registry::{Settings, Target};
use crate::route::{self, Cooldown};
use crate::sse::{ClientWriter, ServedBy};
use crate::stats;
use crate::sync::Spare;
use crate::upstream::{self, Header};

use self::classify::unfit;
pub use self::count::count_tokens;
pub use self::failed::respond_error;
use self::failed::{exhausted, short_reason, surface, trail_reason, upstream_status};
use self::refused::{Param, Refusals};
use self::splice::Splice;

/// What the relay needs from the server, shared by every request.
#[derive(Debug)]
pub struct Env {
    /// The upstream HTTP client.
    pub client: upstream::Client,
    /// Upstream credentials.
    pub auth: Arc<Auth>,
    /// Endpoints that failed recently.
    pub cooldown: Cooldown,
    /// Reasoning kept for clients that do not give it back.
    pub recall: Recall,
    /// Reasoning sources refused as another account's, known on later turns.
    pub unreadable: Unreadable,
    /// Models that refused a request's reasoning or a parameter, asked without it.
    pub refused: Refused,
    /// Set when a stop's grace period ran out: the requests still running end now,
    /// each with an error its client can read and its log and ledger lines.
    pub cut: AtomicBool,
}

impl Env {
    /// True once a stop's grace period ran out (see [`Env::cut`]).
    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }
}

/// True when an answer being awaited is no longer wanted: a stop's grace period ran
/// out, or the client left.
fn unwanted(env: &Env, out: &ClientWriter) -> bool {
    env.is_cut() || out.client_gone()
}

/// How an attempt given up because its answer was [`unwanted`] ends.
fn given_up(env: &Env) -> Outcome {
    match env.is_cut() {
        true => Outcome::Stopped,
        false => Outcome::ClientGone,
    }
}

/// One client request, parsed and resolved.
pub struct Call<'a> {
    /// The protocol the client speaks.
    pub inbound: Protocol,
    /// The client's body.
    pub body: &'a RawBody,
    /// Targets in the order to try them.
    pub targets: &'a [Target],
    /// The client asked for a stream.
    pub stream: bool,
    /// What the client asked of its answer's shape (`include_usage`, custom tools).
    pub asked: Asked,
    /// Client headers passed upstream when protocols match (e.g. `anthropic-beta`).
    pub forward: Vec<Header>,
    /// The model name the client asked for.
    pub requested: &'a str,
}

/// What the relay did, for the log line and the response headers.
#[derive(Debug, Default)]
pub struct Served {
    /// Status sent to the client.
    pub status: u16,
    /// `provider:model` that answered (that started the answer, when it was rescued).
    pub served_by: Option<Arc<str>>,
    /// Upstream attempts made.
    pub attempts: usize,
    /// Times a broken stream was continued by another request (`rescued=N`).
    pub rescued: usize,
    /// The endpoints whose continuations finished the answer, in order.
    pub rescued_by: Vec<String>,
    /// What each endpoint that failed in words of its own said, for the log line's
    /// `said=`: `(provider:model, words)`, escaped and short.
    pub said: Vec<(String, String)>,
    /// Each attempt (retries and continuations included): for the log line its endpoint
    /// and a word (its status, or why it failed: `refused`, `timeout`, …); for the
    /// ledger and the counters how it ended (usage, issue 19).
    pub tried: Vec<stats::Tried>,
    /// How a streamed answer ended; `None` when the client did not get a stream.
    pub stream: Option<StreamEnd>,
    // usage (issue 19): what the answer measured, for the ledger and /metrics.
    /// When the first content (or the whole answer) went to the client.
    pub first_token: Option<Instant>,
    /// The upstream's last usage report; for a rescued stream the continuation's,
    /// adjusted to cover the whole answer as the client is told it.
    pub tokens: stats::Tokens,
}

/// Why an attempt produced no answer for the client.
#[derive(Debug)]
struct Failure {
    /// Upstream HTTP status, if one was received.
    status: Option<u16>,
    /// Short reason for the log and the exhausted message.
    reason: String,
    /// What kind of failure it is.
    kind: FailKind,
    /// An upstream error body to surface (bytes, content type).
    body: Option<(Vec<u8>, Cow<'static, str>)>,
    /// Upstream headers to surface with it.
    headers: Vec<(String, String)>,
    /// The upstream asked for a pause (Retry-After, reset headers).
    retry_after: Option<Duration>,
}

impl Failure {
    /// What the failure says of its server, for its cool-down.
    fn failed(&self) -> route::Failed {
        match (self.kind, self.retry_after) {
            (FailKind::Status(429) | FailKind::Timeout, _) | (_, Some(_)) => route::Failed::Busy {
                retry_after: self.retry_after,
            },
            // Both ways the client says it (at the connect, or from the system's error).
            _ if self.kind == FailKind::Network
                && self.reason.starts_with("connection refused") =>
            {
                route::Failed::Refused
            }
            _ => route::Failed::NotServing,
        }
    }
}

/// The categories of `next_step`'s table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    /// Nothing was answered (refused, DNS, TLS).
    Network,
    /// The connection was reset or closed before the response head.
    Dropped,
    /// The upstream answered with this HTTP status.
    Status(u16),
    /// The first content, the response head or the body did not arrive in time.
    Timeout,
    /// The body ended or broke before the first content / before it was complete.
    EarlyEnd,
    /// The answer (or one of its events) is over Routeplane's own limit
    /// (`limits.max_response_bytes`, `limits.max_event_bytes`): the endpoint works, the
    /// limit is ours, so it does not cool down.
    TooLarge,
    /// The answer is not its protocol's: an HTML page (a captive portal, a proxy's),
    /// an event stream or other bytes where a JSON answer should be, no body at all, or
    /// a redirect (3xx), which is never followed.
    Malformed,
    /// The upstream said the prompt does not fit the model's context window.
    Context,
    /// The upstream said a content filter held the answer back.
    Filter,
    /// The upstream could not read what another account or source made: reasoning
    /// another account encrypted (OpenAI's `invalid_encrypted_content`: failover moved a
    /// session between two accounts), or an item id it never stored.
    Foreign,
    /// The model takes no reasoning, which the request asked for (Ollama's "does not
    /// support thinking", OpenAI's "Unsupported parameter: 'reasoning_effort'").
    Unthinking,
    /// The model refused a parameter a request carried (OpenAI's reasoning models:
    /// "Unsupported parameter: 'stop'", "Unsupported value: 'temperature' does not
    /// support 0.2"), one Routeplane can leave out (`refused.rs`).
    Unsupported(Param),
    /// The source would not take its credential for this request: Anthropic's answer
    /// to a subscription login ("only authorized for use with Claude Code"). Another
    /// endpoint, with a key or a local server, can still answer.
    Credential,
    /// The request could not be prepared for this target (a field it cannot express, no login).
    Prepare(u16),
}

impl FailKind {
    /// Whether the source answered in words of its own that a client can be shown as
    /// they are (an error status, a context overflow, a filter…), rather than failing to
    /// answer at all.
    fn source_said(self) -> bool {
        matches!(
            self,
            FailKind::Status(_)
                | FailKind::Context
                | FailKind::Filter
                | FailKind::Foreign
                | FailKind::Unthinking
                | FailKind::Unsupported(_)
                | FailKind::Credential
        )
    }
}

/// What to do after a failed attempt (once its retries are spent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Try the next target (and cool this one down when `cool` is set).
    Next {
        /// Put the endpoint in cool-down.
        cool: bool,
    },
    /// Give this answer to the client; trying elsewhere would not help.
    Surface,
}

/// The failover table.
///
/// | outcome                                            | retried | step           |
/// |----------------------------------------------------|---------|----------------|
/// | 429, 500, 502, 503, 504, 529                       | yes     | next, cool down|
/// | reset or closed before the response head           | yes     | next, cool down|
/// | 408, other 5xx                                     | no      | next, cool down|
/// | a 2xx error body (OpenRouter, Anthropic)           | as its  | status's step  |
/// | refused, DNS, connect/first-byte/first-token timeout| no     | next, cool down|
/// | stream ends or breaks before its first content     | no      | next, cool down|
/// | answer or event before content over our own limit  | no      | next           |
/// | a 2xx whose body is not its protocol's (HTML, none)| no      | next, cool down|
/// | context window exceeded, content filtered          | no      | next           |
/// | credential refused for this use (Claude login)     | no      | next, cool down|
/// | the model takes no reasoning, which was asked      | once, without it | surface |
/// | a parameter the model refuses, on a translated request | once, without it | surface |
/// | request cannot be expressed for / no login at it   | no      | next           |
/// | request malformed in the client's own protocol     | no      | 400, no target |
/// | 404: this endpoint has no such model (or path)     | no      | next, cool down|
/// | 400, 401, 402, 403, 422, other 4xx                 | no      | surface        |
///
/// "Retried" is `retryable`: the same endpoint again, `failover.retries` times, before
/// the step is taken. A malformed request is found while its body is made, before any
/// endpoint is asked (`Outcome::Invalid`), so it never reaches this table. After
/// content has gone to the client a failure is a break, for `rescue.rs`. A client that
/// disconnects stops everything: found by a write, in a retry's pause, or after a
/// second of an upstream's silence while its answer is awaited (`upstream::Abandon`).
fn next_step(kind: FailKind) -> Step {
    match kind {
        // A 404 is the endpoint's, not the request's: a model Ollama has not pulled, one
        // a provider retired, an `api_base` with a wrong path. Another endpoint may have it.
        FailKind::Status(404 | 408 | 429) | FailKind::Status(500..=599) => {
            Step::Next { cool: true }
        }
        FailKind::Network
        | FailKind::Dropped
        | FailKind::Timeout
        | FailKind::EarlyEnd
        | FailKind::Malformed
        | FailKind::Credential => Step::Next { cool: true },
        FailKind::Context | FailKind::Filter | FailKind::TooLarge | FailKind::Prepare(_) => {
            Step::Next { cool: false }
        }
        FailKind::Status(_)
        | FailKind::Foreign
        | FailKind::Unthinking
        | FailKind::Unsupported(_) => Step::Surface,
    }
}

/// [`next_step`] for this request. A legacy completion's 404 moves on without cooling
/// the endpoint down: a source without `/completions` (Mistral; OpenAI for its chat
/// models) serves the chat requests that share the endpoint well.
fn next_step_of(call: &Call<'_>, kind: FailKind) -> Step {
    match (call.inbound, kind) {
        (Protocol::Completions, FailKind::Status(404)) => Step::Next { cool: false },
        _ => next_step(kind),
    }
}

/// True for the quick, transient failures worth asking the same endpoint again.
fn retryable(kind: FailKind) -> bool {
    matches!(
        kind,
        FailKind::Status(429 | 500 | 502 | 503 | 504 | 529) | FailKind::Dropped
    )
}

/// A committed stream that broke: what to tell the client if it cannot be continued.
#[derive(Debug)]
struct Break {
    /// The message of the error event.
    message: String,
    /// The status the error event carries.
    status: u16,
    /// The failure is one `retryable` covers (reset, closed early, a 429/5xx event):
    /// the same endpoint is asked to continue first.
    retry_same: bool,
    /// The HTTP status of the answer that broke, for the log's `tried=`.
    upstream_status: u16,
    /// What the break cut when every tool call before it is whole
    /// (`Decoder::cut_after_calls`): `text` or `reasoning`, for the error's message.
    cut_after_calls: Option<&'static str>,
}

/// How an attempt ended.
#[derive(Debug)]
enum Outcome {
    /// The client got an answer (complete, or a stream that ended with an error event).
    Answered,
    /// Nothing went to the client from this attempt; see the failure.
    Failed(Failure),
    /// The client's request is malformed in its own protocol (a `BadRequest` found while
    /// translating it): no target could take it, so nothing was sent and no target is
    /// blamed. The message is the client's 400.
    Invalid(String),
    /// Content went out, then the stream broke; the client's stream is still open.
    Broken(Break),
    /// The client went away; stop.
    ClientGone,
    /// A stop's grace period ran out: the request ends now ([`stopped`]).
    Stopped,
}

impl Outcome {
    /// This outcome with each credential among the headers `sent` to the upstream as
    /// `***` wherever its words are: the failure's reason and error body, the break's
    /// message. Every attempt's outcome passes here once, where its headers were sent
    /// (`attempt.rs`), so every path an upstream's words take is covered: an error
    /// status's body, a 200 whose body is an error, an error event before or after
    /// content, a whole answer that could not be read. A copied stream's events are
    /// not looked at: an error event is never copied (its decoder reads it, for
    /// failover, and the client's error event is written from the message masked here),
    /// and an answer that quotes a key is the answer. An answer costs nothing here.
    fn without_credentials(self, sent: &[Header]) -> Outcome {
        let mask = |text: &mut String| {
            if let Some(masked) = upstream::text_without_credentials(text, sent) {
                *text = masked;
            }
        };
        match self {
            Outcome::Failed(mut f) => {
                mask(&mut f.reason);
                if let Some((bytes, _)) = &mut f.body
                    && let Some(masked) = upstream::without_credentials(bytes, sent)
                {
                    *bytes = masked;
                }
                Outcome::Failed(f)
            }
            Outcome::Broken(mut b) => {
                mask(&mut b.message);
                Outcome::Broken(b)
            }
            o => o,
        }
    }
}

/// An upstream's words cut to at most `max` characters, never inside a word long
/// enough to hold a credential: that one is left out whole, so that a key is either
/// all there (and [`Outcome::without_credentials`] masks it) or not there at all.
fn cut(text: &str, max: usize) -> String {
    let Some((at, _)) = text.char_indices().nth(max) else {
        return text.to_string();
    };
    let (head, tail) = text.split_at(at);
    if head.ends_with(char::is_whitespace) || tail.starts_with(char::is_whitespace) {
        return head.to_string();
    }
    let word_start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word_end = tail
        .find(char::is_whitespace)
        .map_or(text.len(), |i| at + i);
    if word_end - word_start < upstream::SHORTEST_CREDENTIAL {
        return head.to_string();
    }
    head[..word_start].trim_end().to_string()
}

/// One request's state while it runs: what it was asked, what went out, what was tried.
struct Run<'a, 'w> {
    env: &'a Env,
    settings: &'a Settings,
    call: &'a Call<'a>,
    out: &'w mut ClientWriter,
    served: Served,
    /// The hub request, built at most once however many targets need it.
    hub: Option<Result<Value, Error>>,
    /// The client's side of a streamed answer.
    splice: Splice,
    /// When each attempt in `served.tried` was asked, in the same order: for the
    /// spacing rule (`attempt.rs`, the one place that pushes to either).
    asked: Spare<Vec<Instant>>,
    /// The last request asked without old reasoning kept its tool loop's: refused
    /// again, it is asked without any (`attempt::Ask`).
    reasoning_left: bool,
    /// What the endpoint being asked is asked without, which its model refused
    /// (`refused.rs`): refused again, it is not asked without it again.
    left_out: Refusals,
    /// The endpoint being asked is the last that can be: every one after it lacks its
    /// key or login. Its safety block is the client's answer (`attempt::Try::alone`).
    alone: bool,
    /// The endpoint being asked is cooling down: it failed moments ago and is asked only
    /// because every one before it failed too, so it gets one try, not its retries: with
    /// every endpoint failing, each client request would cost each `retries + 1` more.
    cooling: bool,
}

/// Why a stream that ended cleanly before (or without) its end marker failed.
const EMPTY_STREAM: &str = "the stream ended without its end marker";

thread_local! {
    /// This thread's list for a request's attempt times ([`Run`]'s `asked`), kept
    /// between requests: one allocation a request fewer.
    static ASKED: Cell<Vec<Instant>> = const { Cell::new(Vec::new()) };
}

/// Runs one request to completion: the main loop.
pub fn run(env: &Env, settings: &Settings, call: &Call<'_>, out: &mut ClientWriter) -> Served {
    // Most requests make one attempt: room for one, not the four a first push makes
    // (smaller blocks, which musl's allocator maps and unmaps less often).
    let mut served = Served::default();
    served.tried.reserve_exact(1);
    let mut run = Run {
        env,
        settings,
        call,
        out,
        served,
        hub: None,
        splice: Splice::new(call, call.requested),
        asked: Spare::take(&ASKED),
        reasoning_left: false,
        left_out: Refusals::NONE,
        alone: false,
        cooling: false,
    };
    let mut failures: Vec<(String, Failure)> = Vec::new();
    // The first filtered answer moved past: its target, its attempt in `tried`, and
    // what it sent. If no later endpoint answers, it is the only answer a source gave.
    let mut filtered: Option<Filtered> = None;
    let (targets, warm) = env.cooldown.order(call.targets);

    let last_hope = route::last_hope(&targets, warm, |p| env.auth.lacks_credential(p));
    // Unlike the last hope, an endpoint cooling down is still one to move on to.
    let alone_from = targets
        .iter()
        .rposition(|t| !env.auth.lacks_credential(&t.provider))
        .unwrap_or(0);
    // Origins that refused a connection during this request: nothing listens there, so
    // their other endpoints are not asked in it (they cool down with it).
    let mut refused: Vec<&str> = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        if !refused.is_empty() && refused.contains(&route::origin(&target.provider.api_base)) {
            env.cooldown.fail(target, route::Failed::Refused);
            continue;
        }
        let last = i >= last_hope;
        run.alone = i >= alone_from;
        run.cooling = i >= warm;
        let outcome = run.endpoint(target, last, attempt::Ask::Original);
        let served = match outcome {
            Outcome::Failed(_) | Outcome::Invalid(_) => false,
            // Only if it had begun the answer when the client left.
            Outcome::ClientGone | Outcome::Stopped => run.out.started(),
            Outcome::Answered | Outcome::Broken(_) => true,
        };
        if served {
            run.served.served_by = Some(target.shared_label());
        }
        match outcome {
            Outcome::Answered => {
                env.cooldown.clear(target);
                run.served.status = run.splice.status;
                run.served.stream =
                    (run.out.streamed()).then(|| run.splice.ended(StreamEnd::Complete));
                return run.served;
            }
            Outcome::ClientGone => {
                run.served.status = 499;
                run.served.stream = run.out.streamed().then_some(StreamEnd::ClientClosed);
                return run.served;
            }
            Outcome::Stopped => {
                stopped(&mut run);
                return run.served;
            }
            Outcome::Broken(b) => {
                run.served.status = run.splice.status;
                rescue::rescue(&mut run, &targets, i, b);
                return run.served;
            }
            Outcome::Invalid(message) => {
                respond_error(call.inbound, 400, &message, &[], run.out);
                run.served.status = 400;
                return run.served;
            }
            Outcome::Failed(mut f) => {
                failed::note_said(&mut run.served, target, &f);
                let step = next_step_of(call, f.kind);
                if let Step::Next { cool: true } = step {
                    env.cooldown.fail(target, f.failed());
                }
                if f.failed() == route::Failed::Refused {
                    refused.push(route::origin(&target.provider.api_base));
                }
                if step == Step::Surface {
                    let by = served_by(target, run.served.attempts);
                    run.served.status = surface(call, &f, Some(by), run.out);
                    run.served.served_by = Some(target.shared_label());
                    // usage (issue 19): its error was the answer, not a failure moved past.
                    if let Some(last) = run.served.tried.last_mut() {
                        last.ended = stats::Ended::Answered;
                    }
                    return run.served;
                }
                // A filtered answer (a 200) or a filter's error (Azure's 400
                // `content_filter` for the prompt), with what it sent.
                if f.kind == FailKind::Filter && filtered.is_none() && f.body.is_some() {
                    let sent = Failure {
                        body: f.body.take(),
                        headers: std::mem::take(&mut f.headers),
                        reason: f.reason.clone(),
                        ..f
                    };
                    filtered = Some(Filtered {
                        target: i,
                        tried: run.served.tried.len().saturating_sub(1),
                        sent,
                    });
                }
                failures.push((target.label().to_string(), f));
            }
        }
    }
    // Every endpoint after a filtered answer failed: that answer (or the filter's
    // error) is the client's, as the filtering endpoint would have given it alone,
    // rather than a 502 for a request a source did answer.
    if let Some(kept) = filtered {
        let target = &targets[kept.target];
        match run.answer_filtered(target, kept.sent) {
            Outcome::Answered => {
                run.served.served_by = Some(target.shared_label());
                run.served.status = run.splice.status;
                run.served.stream = run.out.streamed().then_some(StreamEnd::Complete);
                // usage (issue 19): its answer went out; the attempts after it were
                // moved past.
                if let Some(t) = run.served.tried.get_mut(kept.tried) {
                    t.ended = stats::Ended::Answered;
                }
                return run.served;
            }
            Outcome::ClientGone => {
                run.served.status = 499;
                run.served.stream = run.out.streamed().then_some(StreamEnd::ClientClosed);
                return run.served;
            }
            // Read once already: not reached. The attempts are the client's answer.
            _ => {}
        }
    }
    run.served.status = exhausted(call, failures, run.served.attempts, &env.cooldown, run.out);
    run.served
}

/// A filtered answer (or a filter's error) moved past, kept in case no later endpoint
/// answers.
struct Filtered {
    /// Its endpoint's index in the request's target order.
    target: usize,
    /// Its attempt's index in [`Served::tried`].
    tried: usize,
    /// Its failure, with what it sent: its status (200 for an answer), its body (a
    /// stream's bytes up to the filter) with its content type, and its headers.
    sent: Failure,
}

/// Ends a request a stop cut short, so that its client is told why rather than cut off:
/// a 503 in its protocol when nothing went out yet, else its stream's error event and
/// proper end. A client that left meanwhile is a 499.
fn stopped(run: &mut Run<'_, '_>) {
    let message = Error::Stopping.to_string();
    if run.out.client_gone() {
        run.served.status = 499;
        run.served.stream = run.out.streamed().then_some(StreamEnd::ClientClosed);
        return;
    }
    if !run.out.started() {
        let again = [("retry-after".to_string(), "1".to_string())];
        respond_error(run.call.inbound, 503, &message, &again, run.out);
        run.served.status = 503;
        return;
    }
    run.served.status = run.splice.status;
    run.served.stream = Some(StreamEnd::Broken);
    if let Outcome::ClientGone = run.splice.fail(run.out, 503, &message) {
        run.served.status = 499;
        run.served.stream = Some(StreamEnd::ClientClosed);
    }
}

/// usage (issue 19): true when a chat (or legacy completions) stream relayed byte for
/// byte is asked for its usage chunk (`stream_options.include_usage`) that the client
/// did not ask for; the relay drops that chunk again before it reaches the client.
fn asks_usage(call: &Call<'_>, target: &Target) -> bool {
    matches!(call.inbound, Protocol::Chat | Protocol::Completions)
        && target.protocol == call.inbound
        && call.stream
        && !call.asked.include_usage
}

/// A failure with no upstream body.
fn fail(kind: FailKind, reason: impl Into<String>) -> Outcome {
    Outcome::Failed(Failure {
        status: match kind {
            FailKind::Status(s) | FailKind::Prepare(s) => Some(s),
            _ => None,
        },
        reason: reason.into(),
        kind,
        body: None,
        headers: Vec::new(),
        retry_after: None,
    })
}

/// A whole answer over `limits.max_response_bytes`: as it came, or collected from a
/// stream (whose bytes are counted as they arrive, so memory stays bounded).
fn too_large(limit: u64) -> Outcome {
    fail(
        FailKind::TooLarge,
        format!("the answer is larger than {limit} bytes (raise `limits.max_response_bytes`)"),
    )
}

/// A safety block moved past: the upstream answered 200 with nothing in it, which
/// `reason` says why. `answer` is what it sent (its bytes, a stream's up to the block,
/// and content type) and `headers` its headers: if no later endpoint answers, that is
/// the client's answer ([`Run::answer_filtered`]).
fn held_back(
    reason: String,
    answer: Option<(Vec<u8>, Cow<'static, str>)>,
    headers: Vec<(String, String)>,
) -> Outcome {
    Outcome::Failed(Failure {
        status: Some(200),
        kind: FailKind::Filter,
        reason,
        body: answer,
        headers,
        retry_after: None,
    })
}

/// Headers that tell the client who served, after how many attempts.
fn served_by(target: &Target, attempts: usize) -> ServedBy<'_> {
    ServedBy {
        provider: &target.provider.id,
        model: target.model(),
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_table() {
        let next = Step::Next { cool: true };
        let cases = [
            (FailKind::Status(408), next, false),
            (FailKind::Status(429), next, true),
            (FailKind::Status(500), next, true),
            (FailKind::Status(501), next, false),
            (FailKind::Status(503), next, true),
            (FailKind::Status(529), next, true),
            (FailKind::Network, next, false),
            (FailKind::Dropped, next, true),
            (FailKind::Timeout, next, false),
            (FailKind::EarlyEnd, next, false),
            (FailKind::TooLarge, Step::Next { cool: false }, false),
            (FailKind::Malformed, next, false),
            (FailKind::Context, Step::Next { cool: false }, false),
            (FailKind::Filter, Step::Next { cool: false }, false),
            (FailKind::Foreign, Step::Surface, false),
            (FailKind::Unthinking, Step::Surface, false),
            (FailKind::Unsupported(Param::Stop), Step::Surface, false),
            (FailKind::Credential, next, false),
            (FailKind::Status(400), Step::Surface, false),
            (FailKind::Status(401), Step::Surface, false),
            (FailKind::Status(402), Step::Surface, false),
            (FailKind::Status(403), Step::Surface, false),
            (FailKind::Status(404), next, false),
            (FailKind::Status(422), Step::Surface, false),
        ];
        for (kind, want, retried) in cases {
            assert_eq!(next_step(kind), want, "{kind:?}");
            assert_eq!(retryable(kind), retried, "{kind:?}");
        }
    }

    #[test]
    fn words_are_cut_where_no_credential_is_cut_in_two() {
        assert_eq!(cut("short", 200), "short");
        assert_eq!(cut("one two three", 7), "one two");
        assert_eq!(cut("one two three", 8), "one two ");
        // A word too short to be a key is cut as any other.
        assert_eq!(cut("one two three", 6), "one tw");
        // One that could be is left out whole: masked whole later, or not there at all.
        assert_eq!(cut("key sk-SECRET-123 refused", 12), "key");
        assert_eq!(cut("sk-SECRET-123", 5), "");
        assert_eq!(cut("ключ sk-SECRET-123", 8), "ключ");
    }

    #[test]
    fn a_failure_and_a_break_lose_the_credentials_sent() {
        let sent: Vec<Header> = vec![
            ("authorization".into(), "Bearer sk-SECRET-123".into()),
            ("x-title".into(), "sk-SECRET-123 as a title".into()),
        ];
        let f = Failure {
            status: Some(401),
            reason: "bad key sk-SECRET-123".into(),
            kind: FailKind::Status(401),
            body: Some((
                b"{\"error\": \"sk-SECRET-123\"}".to_vec(),
                "application/json".into(),
            )),
            headers: Vec::new(),
            retry_after: None,
        };
        let Outcome::Failed(f) = Outcome::Failed(f).without_credentials(&sent) else {
            panic!("still a failure");
        };
        assert_eq!(f.reason, "bad key ***");
        assert_eq!(f.body.unwrap().0, b"{\"error\": \"***\"}");
        let b = Break {
            message: "sk-SECRET-123 revoked".into(),
            status: 502,
            retry_same: true,
            upstream_status: 200,
            cut_after_calls: None,
        };
        let Outcome::Broken(b) = Outcome::Broken(b).without_credentials(&sent) else {
            panic!("still a break");
        };
        assert_eq!(b.message, "*** revoked");
    }
}
