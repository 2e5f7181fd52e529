//! What the proxy did, in memory: counters, histograms, today's totals and the last requests.
//!
//! Words used here: a *finished* request is one client request to a generation endpoint
//! (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`, Gemini's generate methods)
//! after its last byte went out; a *source* is a provider; *tokens* are the counts the
//! upstream reported (never estimated; for a rescued stream as the relay adjusts them to
//! cover the whole answer). The relay notes each attempt as a [`Tried`], the first
//! token and the usage while it answers; the server turns what the relay returns into
//! a [`Finished`], hands it to [`Stats::record`] (a send on a channel: no lock, no
//! I/O) and to the [`ledger`] (a line appended to this thread's buffer). `GET /metrics` and
//! `GET /status.json` read [`Stats`] through [`metrics`] and [`Stats::status_json`].
//! Nothing here knows HTTP or decides a request's fate.

pub mod ledger;
pub mod metrics;
#[cfg(test)]
mod tests;
mod tokens;

pub use tokens::Tokens;

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::log::{self, StreamEnd};
use crate::protocol::Protocol;
use crate::registry::provider_of;
use crate::time;

/// How many finished requests the status page lists.
pub const RECENT: usize = 50;

/// How many time-to-first-token samples per source are kept for percentiles.
const TTFT_SAMPLES: usize = 512;

/// After this many finished requests wait to be added in, the worker that hands over
/// the next adds them in, if no one else holds the counters.
const ADD_IN_AFTER: usize = 32;

/// How many finished requests can wait to be added in; past that (a reader held the
/// counters all that while) the next one waits for the lock and adds them in itself.
const HAND_OVER: usize = 256;

/// One upstream attempt of a request (same-endpoint retries and continuations each
/// their own), as the relay made it: the log line shows `word`, the counters and the
/// ledger read the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// `provider:model`, shared with its target.
    pub endpoint: Arc<str>,
    /// What the log's `tried=` shows: its status, or a word for why it failed. Borrowed
    /// for the usual `200`: one allocation fewer a request.
    pub word: Cow<'static, str>,
    /// It asked to continue a broken stream (a rescue attempt).
    pub continuation: bool,
    /// How it ended.
    pub ended: Ended,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Its answer (or the error it surfaced) went to the client.
    Answered,
    /// Its stream broke after content had gone out.
    Broke,
    /// The client left while it ran.
    ClientGone,
    /// Nothing of it went out; the request moved on, or gave up.
    Failed {
        /// The upstream's HTTP status, when it answered.
        status: Option<u16>,
        /// Why, in Routeplane's words (at most 120 characters): an upstream's own text
        /// may quote the request.
        reason: String,
    },
}

/// An attempt's word for an HTTP status; the usual `200` borrowed, not allocated.
pub fn status_word(status: u16) -> Cow<'static, str> {
    match status {
        200 => Cow::Borrowed("200"),
        s => other_status_word(s),
    }
}

/// [`status_word`] of a status other than 200, out of line: its formatting was code
/// lines of the usual request's (issue 16).
#[inline(never)]
fn other_status_word(status: u16) -> Cow<'static, str> {
    Cow::Owned(status.to_string())
}

impl Tried {
    /// An attempt that failed before anything went out (the ledger's `failed` entries).
    pub fn failed(endpoint: &str, status: Option<u16>, reason: &str) -> Tried {
        Tried {
            endpoint: Arc::from(endpoint),
            word: status.map_or(Cow::Borrowed("failed"), status_word),
            continuation: false,
            ended: Ended::Failed {
                status,
                reason: reason.to_string(),
            },
        }
    }

    /// True when nothing of it went out and the request moved on (or gave up).
    fn is_failed(&self) -> bool {
        matches!(self.ended, Ended::Failed { .. })
    }
}

/// One finished request, as the ledger, the counters and the status page see it.
#[derive(Debug, Clone)]
pub struct Finished {
    /// When it arrived (the time of its log line).
    pub at: SystemTime,
    /// The protocol the client spoke.
    pub inbound: Protocol,
    /// The model (or comma-joined `models` list) the client asked for; empty if it
    /// named none or its body could not be read (`null` in the ledger and status page).
    pub requested: String,
    /// `provider:model` that answered.
    pub served_by: Option<Arc<str>>,
    /// Status sent to the client (499: the client went away).
    pub status: u16,
    /// The client asked for a stream.
    pub stream: bool,
    /// How the streamed answer ended (the log's `stream=`); `None` when no stream went
    /// out, or for a ledger line written before it was recorded.
    pub stream_end: Option<StreamEnd>,
    /// Upstream attempts made.
    pub attempts: usize,
    /// Times a broken stream was continued (the relay's `rescued`).
    pub rescues: usize,
    /// The `provider:model` of each continuation that sent part of the answer, in order
    /// (`served_by` started it); empty when none, or for a ledger line written before it
    /// was recorded.
    pub rescued_by: Vec<String>,
    /// Every attempt, in order. Read back from the ledger, only the failed ones.
    pub tried: Vec<Tried>,
    /// Until the first byte went to the client.
    pub ttfb: Option<Duration>,
    /// Until the first token went to the client.
    pub ttft: Option<Duration>,
    /// Until the last byte went to the client.
    pub total: Duration,
    /// What the upstream reported.
    pub tokens: Tokens,
}

/// The `provider:model` a request counts at: the one that answered (`served_by`), else
/// the one the client left while waiting for it (`abandoned`), else the one whose error
/// the client got (its last failed attempt); `None` when no endpoint was asked (an
/// unknown model). The counters, the status page and `routeplane usage` all count by it.
pub fn owner<'a>(
    served_by: Option<&'a str>,
    abandoned: Option<&'a str>,
    last_failed: impl FnOnce() -> Option<&'a str>,
) -> Option<&'a str> {
    served_by.or(abandoned).or_else(last_failed)
}

impl Finished {
    /// The `provider:model` the request counts at (see [`owner`]).
    pub fn owner(&self) -> Option<&str> {
        let last_failed = || self.failed().last().map(|(endpoint, _, _)| endpoint);
        owner(self.served_by.as_deref(), self.abandoned(), last_failed)
    }

    /// True for an answer the client could not use (see [`is_error`]).
    pub fn is_error(&self) -> bool {
        is_error(self.status, self.stream_end)
    }

    /// The endpoint that was being asked when the client left, when nothing of an
    /// answer had gone out: the request is its, though not its error.
    pub fn abandoned(&self) -> Option<&str> {
        if self.served_by.is_some() {
            return None;
        }
        (self.tried.last())
            .filter(|t| t.ended == Ended::ClientGone)
            .map(|t| &*t.endpoint)
    }

    /// The attempts that failed before anything of theirs went out, in order:
    /// `(endpoint, upstream status, reason)`.
    pub fn failed(&self) -> impl Iterator<Item = (&str, Option<u16>, &str)> {
        self.tried.iter().filter_map(|t| match &t.ended {
            Ended::Failed { status, reason } => Some((&*t.endpoint, *status, reason.as_str())),
            _ => None,
        })
    }
}

/// How many of a request's `failed` attempts (the first ones) were moved past, to a
/// retry or another endpoint: all, unless no endpoint answered and the client did not
/// leave (`answered` false), when the last is the request's own error, counted once as
/// that. `routeplane usage` counts these as their sources' `failed`.
pub fn moved_past(failed: usize, answered: bool) -> usize {
    failed.saturating_sub(usize::from(!answered))
}

/// True for an answer the client could not use: a 4xx/5xx, or a stream that broke and
/// ended with an error event under its 200 (a client that left, 499, is not one).
pub fn is_error(status: u16, stream_end: Option<StreamEnd>) -> bool {
    (status >= 400 && status != 499) || stream_end == Some(StreamEnd::Broken)
}

/// Fixed histogram bounds in seconds, shared by both duration histograms.
pub const BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A cumulative-at-render histogram: counts per bucket, the sum and the count.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Observations at or below each bound of [`BUCKETS`] (not cumulative).
    pub counts: [u64; BUCKETS.len()],
    /// Sum of observations in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i] += 1;
        }
        self.sum += s;
        self.count += 1;
    }
}

/// Requests answered with one (model, status, inbound) by one source.
#[derive(Debug, Clone)]
pub struct RequestCount {
    /// Upstream model (`-` when nothing answered).
    pub model: String,
    /// Status sent to the client.
    pub status: u16,
    /// The client's protocol.
    pub inbound: Protocol,
    /// How many.
    pub count: u64,
}

/// Streamed answers of one model of a source that ended one way.
#[derive(Debug, Clone)]
pub struct StreamCount {
    /// Upstream model that started the stream.
    pub model: String,
    /// How the streams ended.
    pub end: StreamEnd,
    /// How many.
    pub count: u64,
}

/// Everything counted for one source since start.
#[derive(Debug, Clone, Default)]
pub struct SourceCounts {
    /// Requests it answered, by model, status and protocol.
    pub requests: Vec<RequestCount>,
    /// Streams it started, by model and how they ended: a broken stream's status is
    /// the 200 its head carried, so only this tells it from a complete one.
    pub streams: Vec<StreamCount>,
    /// Attempts made at it.
    pub attempts: u64,
    /// Attempts at it that repeated the attempt just before (same endpoint again).
    pub retries: u64,
    /// Times a request moved on from it to another endpoint.
    pub failovers: u64,
    /// Streams it continued after another endpoint broke.
    pub rescues: u64,
    /// Tokens: input, output, cached input, reasoning.
    pub tokens: [u64; 4],
    /// Time to first token of its answers.
    pub ttft: Histogram,
    /// Total time of its answers.
    pub total: Histogram,
    /// Recent time-to-first-token samples in milliseconds, for percentiles.
    ttft_ms: VecDeque<u32>,
}

/// Today's totals for one source (the status page's bars).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Today {
    /// Requests that counted at it or failed at it and moved on.
    pub requests: u64,
    /// Of those, the ones it gave an error answer (broken streams included) or failed
    /// and moved on from.
    pub errors: u64,
    /// Input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
}

/// What the counters hold, behind one lock that no worker waits for.
#[derive(Debug)]
struct Inner {
    /// Finished requests handed over and not yet added in.
    arrived: mpsc::Receiver<Finished>,
    /// By provider id; `-` for requests nothing answered.
    sources: ById<SourceCounts>,
    /// The UTC day (days since the epoch) `today` counts.
    day: i64,
    /// When that day begins and ends: a request of it is known as one by two
    /// comparisons, not the arithmetic of [`time::days`] (~60 instructions).
    day_span: Range<SystemTime>,
    /// Today's totals by provider id.
    today: ById<Today>,
    /// The last [`RECENT`] finished requests, newest last.
    recent: VecDeque<Finished>,
    /// Recent time-to-first-token samples of every source, in milliseconds.
    ttft_ms: VecDeque<u32>,
}

impl Inner {
    /// Counters at zero, fed by what is sent to `arrived`.
    fn new(arrived: mpsc::Receiver<Finished>) -> Inner {
        Inner {
            arrived,
            sources: ById::default(),
            day: 0,
            day_span: time::day_span(0),
            today: ById::default(),
            recent: VecDeque::new(),
            ttft_ms: VecDeque::new(),
        }
    }

    /// Adds in every finished request handed over so far; `waiting` counts them down.
    fn add_arrived(&mut self, waiting: &AtomicUsize) {
        let mut added = 0;
        while let Ok(f) = self.arrived.try_recv() {
            self.add(f);
            added += 1;
        }
        waiting.fetch_sub(added, Ordering::AcqRel);
    }

    /// Adds one finished request to every aggregate (it is kept among the recent ones).
    fn add(&mut self, f: Finished) {
        let label = f.owner();
        let (provider, model) = match label {
            Some(label) => {
                let provider = provider_of(label);
                (provider, label.get(provider.len() + 1..).unwrap_or("-"))
            }
            None => ("-", "-"),
        };
        let day = if self.day_span.contains(&f.at) {
            self.day
        } else {
            time::days(f.at)
        };
        let ttft_ms = f.ttft.map(|d| d.as_millis().min(u32::MAX as u128) as u32);

        // The answering source (usually the only one asked) is looked up once.
        let owner = self.sources.place(provider);
        for (i, t) in f.tried.iter().enumerate() {
            // The answering attempt's endpoint is `served_by` itself (one `Arc`, the
            // target's label): its source is known without a look at its text.
            let at = if label.is_some_and(|l| std::ptr::eq(l, &*t.endpoint)) {
                owner
            } else {
                match provider_of(&t.endpoint) {
                    at if at == provider => owner,
                    at => self.sources.place(at),
                }
            };
            count_attempt(&mut self.sources.0[at].1, &f.tried, i);
        }
        let counts = &mut self.sources.0[owner].1;
        match counts
            .requests
            .iter_mut()
            .find(|r| r.status == f.status && r.inbound == f.inbound && r.model == model)
        {
            Some(r) => r.count += 1,
            None => counts.requests.push(RequestCount {
                model: model.to_string(),
                status: f.status,
                inbound: f.inbound,
                count: 1,
            }),
        }
        if let Some(end) = f.stream_end {
            match (counts.streams.iter_mut()).find(|s| s.end == end && s.model == model) {
                Some(s) => s.count += 1,
                None => counts.streams.push(StreamCount {
                    model: model.to_string(),
                    end,
                    count: 1,
                }),
            }
        }
        // Field by field: as a loop over the four (zipped) it was ~45 instructions.
        let t = f.tokens;
        let [input, output, cached_input, reasoning] = &mut counts.tokens;
        *input += t.input.unwrap_or(0);
        *output += t.output.unwrap_or(0);
        *cached_input += t.cached_input.unwrap_or(0);
        *reasoning += t.reasoning.unwrap_or(0);
        if let Some(d) = f.ttft {
            counts.ttft.observe(d);
        }
        counts.total.observe(f.total);
        if let Some(ms) = ttft_ms {
            push_bounded(&mut counts.ttft_ms, ms, TTFT_SAMPLES);
            push_bounded(&mut self.ttft_ms, ms, TTFT_SAMPLES);
        }

        // A request that arrived before midnight may be added in after one that arrived
        // after it (a long stream): it is not today's.
        if day > self.day {
            self.day = day;
            self.day_span = time::day_span(day);
            self.today.0.clear();
        }
        if day == self.day {
            self.add_today(provider, &f);
        }

        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(f);
    }

    /// Adds a request of the day `today` counts to its totals: a request of the source
    /// it counts at (an error when the client could not use its answer), and a request
    /// and an error of each other source that failed it and was moved past, once per
    /// request however often it was retried: errors never outnumber requests.
    fn add_today(&mut self, provider: &str, f: &Finished) {
        let totals = self.today.get_or_default(provider);
        totals.requests += 1;
        totals.errors += u64::from(f.is_error());
        totals.input += f.tokens.input.unwrap_or(0);
        totals.output += f.tokens.output.unwrap_or(0);
        let mut counted: Vec<&str> = Vec::new();
        for (endpoint, _, _) in f.failed() {
            let at = provider_of(endpoint);
            if at != provider && !counted.contains(&at) {
                counted.push(at);
                let t = self.today.get_or_default(at);
                t.requests += 1;
                t.errors += 1;
            }
        }
    }
}

/// The in-memory aggregates, shared by every worker.
#[derive(Debug)]
pub struct Stats {
    /// When the process started.
    pub started: SystemTime,
    /// Requests inside a handler now.
    pub in_flight: AtomicUsize,
    /// Streaming requests inside a handler now.
    pub open_streams: AtomicUsize,
    /// Ledger lines that could not be written.
    pub ledger_errors: Arc<AtomicU64>,
    /// Workers hand finished requests over here instead of taking the lock: one worker
    /// preempted while holding a lock every worker takes held up all of them (futex
    /// waits on 1 request in 50 at 32 clients on 2 cores, the latency's 99th percentile).
    /// Bounded, so its slots are allocated once: an unbounded channel allocated a block
    /// of 31 every 31 requests, which musl's allocator maps and unmaps under its one
    /// lock.
    finished: mpsc::SyncSender<Finished>,
    /// How many were handed over and not yet added in.
    waiting: AtomicUsize,
    inner: Mutex<Inner>,
}

impl Default for Stats {
    fn default() -> Stats {
        let (finished, arrived) = mpsc::sync_channel(HAND_OVER);
        Stats {
            started: SystemTime::now(),
            in_flight: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            ledger_errors: Arc::default(),
            finished,
            waiting: AtomicUsize::new(0),
            inner: Mutex::new(Inner::new(arrived)),
        }
    }
}

/// Marks a request in flight (and a stream open) until dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    stats: &'a Stats,
    stream: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.stream {
            self.stats.open_streams.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Stats {
    /// Counts a request in flight (and a stream open when `stream`) until the guard drops.
    pub fn enter(&self, stream: bool) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if stream {
            self.open_streams.fetch_add(1, Ordering::Relaxed);
        }
        InFlight {
            stats: self,
            stream,
        }
    }

    /// Hands one finished request over to every aggregate (it is kept among the recent
    /// ones); readers see it added in.
    pub fn record(&self, f: Finished) {
        // Counted before it is sent: adding in never takes away more than was counted.
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel) + 1;
        match self.finished.try_send(f) {
            Ok(()) if waiting < ADD_IN_AFTER => return,
            Ok(()) => {}
            Err(TrySendError::Full(f)) => {
                self.counters().add(f);
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            // Not reached: the receiver lives as long as `self`.
            Err(TrySendError::Disconnected(_)) => return,
        }
        // Never waits: whoever holds the lock is reading, or adding these in already.
        let mut inner = match self.inner.try_lock() {
            Ok(inner) => inner,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        inner.add_arrived(&self.waiting);
    }

    /// The counters with every request handed over so far added in.
    fn counters(&self) -> MutexGuard<'_, Inner> {
        let mut inner = crate::sync::lock(&self.inner);
        inner.add_arrived(&self.waiting);
        inner
    }

    /// Loads today's totals and the recent list from requests an earlier run recorded
    /// (oldest first); the counters behind `/metrics` start from zero, as counters do.
    pub fn seed(&self, earlier: Vec<Finished>) {
        let today = time::days(SystemTime::now());
        let mut inner = self.counters();
        let inner = &mut *inner;
        if inner.day != today {
            inner.day = today;
            inner.day_span = time::day_span(today);
            inner.today.0.clear();
        }
        let keep = RECENT.saturating_sub(inner.recent.len());
        let skip = earlier.len().saturating_sub(keep);
        for (i, f) in earlier.into_iter().enumerate() {
            if time::days(f.at) == today {
                inner.add_today(f.owner().map_or("-", provider_of), &f);
            }
            if i >= skip {
                // Older than anything recorded since start: in front of it, in order.
                let at = i - skip;
                inner.recent.insert(at, f);
            }
        }
    }

    /// A copy of the per-source counters, for `/metrics` (taken under the lock, rendered outside it).
    pub fn snapshot(&self) -> BTreeMap<String, SourceCounts> {
        let mut counts = BTreeMap::new();
        // Inserted one by one: collected, the map would link a sort of its own.
        for (id, c) in &self.counters().sources.0 {
            counts.insert(id.clone(), c.clone());
        }
        counts
    }

    /// The body of `GET /status.json`: sources with their state and today's totals, the
    /// last requests, time-to-first-token percentiles.
    pub fn status_json(&self, sources: &[Source]) -> String {
        let (today, recent, mut all_ttft, mut per_source) = {
            let inner = self.counters();
            let today_valid = inner.day == time::days(SystemTime::now());
            // A list, not a map: a few sources, each looked up once, and collecting
            // into a map would link a sort of its own for this one page.
            let per_source: Vec<(String, Vec<u32>)> = (inner.sources.0.iter())
                .map(|(k, v)| (k.clone(), v.ttft_ms.iter().copied().collect()))
                .collect();
            (
                if today_valid {
                    inner.today.clone()
                } else {
                    ById::default()
                },
                inner.recent.clone(),
                inner.ttft_ms.iter().copied().collect::<Vec<u32>>(),
                per_source,
            )
        };
        let listed: Vec<Value> = sources
            .iter()
            .map(|s| {
                let t = today.get(&s.id).cloned().unwrap_or_default();
                let samples = per_source
                    .iter_mut()
                    .find(|(id, _)| *id == s.id)
                    .map(|(_, v)| std::mem::take(v));
                json!({
                    "id": s.id,
                    "kind": s.kind,
                    "state": s.state,
                    "up": s.up,
                    "detail": s.detail,
                    "cooldown_s": s.cooldown.map(|d| d.as_secs_f64().ceil() as u64),
                    "today": {"requests": t.requests, "errors": t.errors, "input_tokens": t.input, "output_tokens": t.output},
                    "ttft_ms": percentiles(samples.unwrap_or_default()),
                })
            })
            .collect();
        let recent: Vec<Value> = recent.iter().rev().map(recent_json).collect();
        all_ttft.sort_unstable();
        let uptime = SystemTime::now()
            .duration_since(self.started)
            .unwrap_or_default();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "started": time::rfc3339(self.started),
            "uptime_s": uptime.as_secs(),
            "in_flight": self.in_flight.load(Ordering::Relaxed),
            "open_streams": self.open_streams.load(Ordering::Relaxed),
            "ledger_errors": self.ledger_errors.load(Ordering::Relaxed),
            "sources": listed,
            "ttft_ms": percentiles(all_ttft),
            "recent": recent,
        })
        .to_string()
    }

    /// True when any request was counted for this source since start.
    pub fn has_source(&self, id: &str) -> bool {
        self.counters().sources.get(id).is_some()
    }
}

/// A source as the server sees it now, for `/metrics` and the status page.
#[derive(Debug, Clone)]
pub struct Source {
    /// Provider id.
    pub id: String,
    /// `local`, `hosted` or `subscription`.
    pub kind: &'static str,
    /// `up`, `down`, `cooling down`, `no key`, `key refused (401)`, `not logged in`,
    /// `logged in`, `login needed`, `not asked`.
    pub state: String,
    /// True when requests can be sent to it now; `None` when that is not known (a local
    /// server `not asked` for its models).
    pub up: Option<bool>,
    /// More about the state: why it is down, until when a login or cool-down lasts.
    pub detail: String,
    /// The longest cool-down left on one of its endpoints.
    pub cooldown: Option<Duration>,
}

/// Values by provider id, in a list: a few sources, each found by a scan, once for the
/// usual request where a map looked twice (`contains_key`, then `get_mut`, as a map's
/// entry takes an owned key).
#[derive(Debug, Clone)]
struct ById<T>(Vec<(String, T)>);

impl<T> Default for ById<T> {
    fn default() -> Self {
        ById(Vec::new())
    }
}

impl<T: Default> ById<T> {
    /// Where `id` is in the list, added at zero on first use (no allocation on later ones).
    fn place(&mut self, id: &str) -> usize {
        match self.0.iter().position(|(k, _)| k == id) {
            Some(at) => at,
            None => {
                self.0.push((id.to_string(), T::default()));
                self.0.len() - 1
            }
        }
    }

    /// The value of `id`, added at zero on first use.
    fn get_or_default(&mut self, id: &str) -> &mut T {
        let at = self.place(id);
        &mut self.0[at].1
    }

    /// The value of `id`, if it has one.
    fn get(&self, id: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }
}

/// Counts attempt `i` of `tried` at its source: an attempt, and a retry when it asks
/// again the endpoint that just failed, a fail-over when it failed and the next asks
/// another, a rescue when it is a continuation that sent content.
fn count_attempt(counts: &mut SourceCounts, tried: &[Tried], i: usize) {
    let t = &tried[i];
    counts.attempts += 1;
    let previous = i.checked_sub(1).map(|j| &tried[j]);
    if previous.is_some_and(|p| p.is_failed() && p.endpoint == t.endpoint) {
        counts.retries += 1;
    }
    if t.continuation && matches!(t.ended, Ended::Answered | Ended::Broke) {
        counts.rescues += 1;
    }
    let next = tried.get(i + 1);
    if t.is_failed() && next.is_some_and(|n| n.endpoint != t.endpoint) {
        counts.failovers += 1;
    }
}

/// Appends `v`, dropping the oldest past `cap`. Inlined: two a request, each a call
/// was ~10 instructions more.
#[inline]
fn push_bounded(q: &mut VecDeque<u32>, v: u32, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

/// p50/p95/p99 (nearest rank) of samples; nulls when there are none.
fn percentiles(mut v: Vec<u32>) -> Value {
    v.sort_unstable();
    json!({
        "p50": percentile(&v, 50),
        "p95": percentile(&v, 95),
        "p99": percentile(&v, 99),
        "count": v.len(),
    })
}

/// The nearest-rank percentile of sorted samples.
pub fn percentile<T: Copy>(sorted: &[T], p: usize) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// One row of the status page's request list.
fn recent_json(f: &Finished) -> Value {
    let ms = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0);
    let failed: Vec<Value> = f
        .failed()
        .map(|(endpoint, status, reason)| json!({"endpoint": endpoint, "status": status, "reason": reason}))
        .collect();
    json!({
        "time": time::rfc3339(f.at),
        "inbound": f.inbound.name(),
        "model": (!f.requested.is_empty()).then_some(&f.requested),
        "served_by": f.served_by.as_deref(),
        "status": f.status,
        "stream": f.stream,
        "stream_end": f.stream_end.map(StreamEnd::name),
        "attempts": f.attempts,
        "rescues": f.rescues,
        "rescued_by": f.rescued_by,
        "failed": failed,
        "abandoned": f.abandoned(),
        "ttft_ms": ms(f.ttft),
        "total_ms": ms(Some(f.total)),
        "input_tokens": f.tokens.input,
        "output_tokens": f.tokens.output,
    })
}

/// Appends `s` to `out` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Names and models rarely need an escape: one copy then, not a push per character,
    // and the test eight bytes at a time (a byte at a time, ~6 instructions a byte).
    let plain = log::every_word(s.as_bytes(), |w| {
        let bad = (w.wrapping_sub(log::ONES * 0x20) & !w)
            | log::zero_byte(w ^ (log::ONES * u64::from(b'"')))
            | log::zero_byte(w ^ (log::ONES * u64::from(b'\\')));
        bad & log::HIGH == 0
    });
    if plain {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
