//! The request's main loop: try each target in order, retry, fail over, rescue a broken stream.
//!
//! [`run`] is where a request spends its life. Each endpoint is asked (with a few quick
//! retries for transient failures, `attempt.rs`; the body it is sent is built in
//! `request.rs`), each failure is classified by `next_step`, the failover table in one
//! `match` (`table.rs`; how an attempt ended is `outcome.rs`), and an answer is relayed
//! whole (`whole.rs`) or, streamed, event by event (`stream.rs`; the client's side of it
//! across attempts is `splice.rs`). The client's status line and the events before the
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
mod outcome;
mod recall;
mod refused;
mod request;
mod rescue;
mod splice;
mod stream;
mod table;
mod unreadable;
mod whole;

pub use self::recall::Recall;
pub use self::refused::Refused;
pub use self::unreadable::Unreadable;

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::auth::{Auth, Logins};
use crate::body::RawBody;
use crate::error::Error;
use crate::log::StreamEnd;
use crate::protocol::{Asked, Protocol};
use crate::registry::{Provider, Settings, Target};
use crate::route::{self, Cooldown};
use crate::sse::{ClientWriter, ServedBy};
use crate::stats;
use crate::sync::Spare;
use crate::upstream::{self, Header};

use self::classify::unfit;
pub use self::count::count_tokens;
pub use self::failed::respond_error;
use self::failed::{exhausted, short_reason, surface, trail_reason, upstream_status};
use self::outcome::{Break, Failure, Outcome, cut, fail, held_back, too_large, unprepared};
use self::refused::Refusals;
use self::splice::Splice;
use self::table::{FailKind, Step, next_step_of, retryable};

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
    /// The logins of the targets' subscriptions, looked up once for the request.
    logins: Logins,
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
        logins: env.auth.logins_of(call.targets),
    };
    let mut failures: Vec<(String, Failure)> = Vec::new();
    // The first filtered answer moved past: its target, its attempt in `tried`, and
    // what it sent. If no later endpoint answers, it is the only answer a source gave.
    let mut filtered: Option<Filtered> = None;
    let (targets, warm) = env.cooldown.order(call.targets);

    let lacks = |p: &Provider| env.auth.lacks_credential(p, run.logins.get(&p.id));
    let last_hope = route::last_hope(&targets, warm, lacks);
    // Unlike the last hope, an endpoint cooling down is still one to move on to.
    let alone_from = targets
        .iter()
        .rposition(|t| !lacks(&t.provider))
        .unwrap_or(0);
    // Origins that refused a connection during this request: nothing listens there, so
    // their other endpoints are not asked in it (they cool down with it).
    let mut refused: Vec<&str> = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        if !refused.is_empty() && refused.contains(&target.provider.base.origin()) {
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
            Outcome::Invalid(told) => {
                respond_error(call.inbound, 400, &Error::BadRequest(told), &[], run.out);
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
                    refused.push(target.provider.base.origin());
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
    if run.out.client_gone() {
        run.served.status = 499;
        run.served.stream = run.out.streamed().then_some(StreamEnd::ClientClosed);
        return;
    }
    if !run.out.started() {
        let again = [("retry-after".to_string(), "1".to_string())];
        respond_error(run.call.inbound, 503, &Error::Stopping, &again, run.out);
        run.served.status = 503;
        return;
    }
    run.served.status = run.splice.status;
    run.served.stream = Some(StreamEnd::Broken);
    if let Outcome::ClientGone = run.splice.fail(run.out, 503, &Error::Stopping.to_string()) {
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

/// Headers that tell the client who served, after how many attempts.
fn served_by(target: &Target, attempts: usize) -> ServedBy<'_> {
    ServedBy {
        provider: &target.provider.id,
        model: target.model(),
        attempts,
    }
}
