//! Asking one endpoint: the body, the credential, the send, and quick retries of the same endpoint.
//!
//! `Run::endpoint` asks one target, again after a 429/5xx/reset (`retryable`) up to
//! `failover.retries` times: a `Retry-After` (or reset header) up to
//! `failover.max_retry_wait_secs` is waited out, a longer one moves on at once (and
//! cools the endpoint down for that long); without one the pause is a jittered
//! exponential backoff from `failover.backoff_ms`. Whatever the settings, one endpoint
//! is never asked more than twice within 1.5 s, and a client that leaves during a
//! pause stops everything; so does one that leaves while an answer is awaited (its
//! head, its first event, a whole body), noticed after the upstream's first silent
//! second (`upstream::Abandon`).

use std::borrow::Cow;
use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::classify::{
    compressed_with, failed_with, not_an_answer, said_instead, send_failed, upstream_error,
};
use super::recall::Noted;
use super::refused::{Param, Refusals};
use super::stream::relay_stream;
use super::{
    EMPTY_STREAM, FailKind, Failure, Outcome, Run, fail, rescue, served_by, unfit, unprepared,
};
use crate::error::Error;
use crate::protocol::{self, Protocol};
use crate::registry::Target;
use crate::stats::{Ended, Tokens, Tried, status_word};
use crate::sync::Spare;
use crate::upstream::{self, BodyError, Header, Reply};

/// At most two attempts of one endpoint fall within this window.
const SPACING: Duration = Duration::from_millis(1500);

/// How often a pause looks whether the client is still there.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// What an attempt asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ask {
    /// The client's request.
    Original,
    /// The client's request plus the answer so far as a final assistant message.
    Continue,
    /// The client's request without the reasoning a source encrypted before its last
    /// user message, which a source of another account refused
    /// ([`super::FailKind::Foreign`]); the source reads none of it again anyway.
    WithoutOldReasoning,
    /// The client's request without any reasoning a source encrypted: refused again,
    /// failover moved the session in the middle of its tool loop.
    WithoutReasoning,
}

/// What [`Run::endpoint`] does after a failed attempt.
enum Next {
    /// Asks the same endpoint again at once, as this.
    AtOnce(Ask),
    /// Asks the same endpoint again after this pause (a retry).
    Retry(Duration),
    /// Leaves it: the failure is the endpoint's outcome.
    Stop,
}

/// What [`Run::upstream_body`] learned of the body for a target, decided once for the
/// copied path and the re-encoded one alike.
#[derive(Clone, Copy)]
struct BodyPlan {
    /// The target speaks the client's protocol.
    same: bool,
    /// A whole answer asked for as a stream, to be collected.
    collected: bool,
    /// A chat stream asked for its usage (issue 19).
    asks_usage: bool,
    /// The target's protocol mends this body.
    mended: bool,
    /// The model refused reasoning: it is left out.
    unthought: bool,
}

thread_local! {
    /// This thread's buffer for an attempt's URL, kept between requests.
    static URL: Cell<String> = const { Cell::new(String::new()) };
}

/// One attempt's fixed facts, handed to the helpers that relay its answer.
#[derive(Clone, Copy)]
pub(super) struct Try<'a> {
    pub(super) target: &'a Target,
    /// Its number among the request's attempts, for `x-routeplane-attempts`.
    pub(super) number: usize,
    /// The answer is translated (or reshaped), not copied byte for byte.
    pub(super) translate: bool,
    /// How long a stream may take to its first content.
    pub(super) patience: Duration,
    /// No endpoint is left to move on to (and this is no continuation): a safety
    /// block is the answer, not a reason to ask another.
    pub(super) alone: bool,
    /// How long each read of the answer waits, and the key that sets it: for the
    /// message of a body that stalls.
    pub(super) wait: (Duration, &'static str),
}

impl<'a> Run<'a, '_> {
    /// True when the request as `target` was asked holds reasoning to leave out: the
    /// client's own, or the hub request's it was translated from.
    fn asked_thinking(&self, target: &Target) -> bool {
        if target.protocol == self.call.inbound {
            // Parsed afresh (an error's path): the copy sent was never a tree.
            let body = self.call.body.to_value();
            body.is_ok_and(|mut v| target.protocol.forget_thinking(&mut v))
        } else {
            matches!(&self.hub, Some(Ok(hub)) if Protocol::Chat.asks_thinking(hub))
        }
    }

    /// Asks one endpoint, retrying it after quick transient failures.
    pub(super) fn endpoint(&mut self, target: &Target, last: bool, mut ask: Ask) -> Outcome {
        let label = target.label();
        // Asked with all the request carries, unless this model refused some of it before.
        self.left_out = Refusals::NONE;
        // A session this source already refused another account's reasoning for: its
        // older reasoning is left out from the first try, not after a refusal.
        if ask == Ask::Original
            && target.protocol == Protocol::Responses
            && self
                .env
                .unreadable
                .known_in(&target.provider.id, self.call.body.bytes())
        {
            ask = Ask::WithoutOldReasoning;
        }
        let mut retried = 0;
        let mut wait = Duration::ZERO;
        loop {
            // The spacing rule holds across the whole request, continuations included.
            let mut times = self
                .served
                .tried
                .iter()
                .zip(self.asked.iter())
                .filter(|(t, _)| *t.endpoint == *label)
                .map(|(_, at)| *at);
            let before_last = times.clone().count().checked_sub(2);
            if let Some(t) = before_last.and_then(|n| times.nth(n)) {
                wait = wait.max((t + SPACING).saturating_duration_since(Instant::now()));
            }
            if !self.pause(wait) {
                return super::given_up(self.env);
            }
            let asked_at = Instant::now();
            let outcome = self.attempt(target, last, ask);
            let (word, ended) = match &outcome {
                // Nothing was asked of this endpoint: no attempt to record.
                Outcome::Invalid(_) => return outcome,
                Outcome::Answered => (status_word(self.splice.status), Ended::Answered),
                _ => self.unanswered(&outcome),
            };
            // Side by side: `asked` stays in step with `tried`.
            self.served.tried.push(Tried {
                endpoint: target.shared_label(),
                word,
                continuation: ask == Ask::Continue,
                ended,
            });
            self.asked.push(asked_at);
            let Outcome::Failed(f) = &outcome else {
                return outcome;
            };
            match self.after_failure(target, f, ask, retried) {
                Next::AtOnce(next) => {
                    ask = next;
                    wait = Duration::ZERO;
                }
                Next::Retry(pause) => {
                    wait = pause;
                    retried += 1;
                }
                Next::Stop => return outcome,
            }
        }
    }

    /// What the trail records of an attempt that did not answer: its word and how it
    /// ended. Out of [`Run::endpoint`]'s loop, which an answered request runs through.
    #[cold]
    #[inline(never)]
    fn unanswered(&self, outcome: &Outcome) -> (Cow<'static, str>, Ended) {
        match outcome {
            Outcome::Broken(b) => (format!("{}:broken", b.upstream_status).into(), Ended::Broke),
            Outcome::ClientGone => (Cow::Borrowed("client_closed"), Ended::ClientGone),
            Outcome::Stopped if self.out.streamed() => (Cow::Borrowed("stopped"), Ended::Broke),
            Outcome::Stopped => (
                Cow::Borrowed("stopped"),
                Ended::Failed {
                    status: None,
                    reason: "routeplane stopped before it answered".into(),
                },
            ),
            Outcome::Failed(f) => (
                super::short_reason(f).into(),
                Ended::Failed {
                    status: super::upstream_status(f),
                    reason: super::trail_reason(f),
                },
            ),
            Outcome::Answered | Outcome::Invalid(_) => {
                unreachable!("an answer and an invalid request are recorded by the caller")
            }
        }
    }

    /// After attempt `f` of `target` failed (asked as `ask`, `retried` times retried
    /// already): whether it is asked again at once without what it refused, retried
    /// after a pause, or left. Out of [`Run::endpoint`]'s loop, which an answered
    /// request runs through.
    #[cold]
    #[inline(never)]
    fn after_failure(&mut self, target: &Target, f: &Failure, ask: Ask, retried: u32) -> Next {
        let label = target.label();
        let unreasoned = match ask {
            Ask::Original => Some(Ask::WithoutOldReasoning),
            Ask::WithoutOldReasoning if self.reasoning_left => Some(Ask::WithoutReasoning),
            _ => None,
        };
        if f.kind == FailKind::Foreign
            && target.protocol == Protocol::Responses
            && let Some(next) = unreasoned
        {
            // Failover moved the session from another account, whose encrypted
            // reasoning this one cannot read: asked again at once without it (first
            // what came before the last question, which is read no more), and what
            // was kept of it for this request is let go.
            if let Some(Ok(hub)) = &self.hub {
                self.env.recall.forget(hub);
            }
            return Next::AtOnce(next);
        }
        // Asked again only when there is reasoning to leave out: a request without
        // any would go out the same and be refused the same.
        if f.kind == FailKind::Unthinking
            && !self.left_out.has(Refusals::REASONING)
            && self.asked_thinking(target)
        {
            // The model takes no reasoning: asked again at once without it, and
            // remembered, so its later requests go without it from the first try.
            self.env.refused.note(label, Refusals::REASONING);
            self.left_out = self.left_out.with(Refusals::REASONING);
            return Next::AtOnce(ask);
        }
        // A parameter of a request written for another model family, which this
        // model refuses: the same, said in the log. Each is left out once at most,
        // so a model refusing several is asked at most once more for each.
        if let FailKind::Unsupported(p) = f.kind
            && target.protocol != self.call.inbound
            && p.key(target.protocol).is_some()
            && !self.left_out.has(p.into())
        {
            self.env.refused.note(label, p.into());
            self.left_out = self.left_out.with(p.into());
            crate::log::line(format_args!(
                "{label}: the model refused `{}`; asked again {}, and so from now on",
                p.name(),
                match p {
                    Param::MaxTokens => "with `max_completion_tokens`",
                    _ => "without it",
                }
            ));
            return Next::AtOnce(ask);
        }
        if retried >= self.settings.retries || !super::retryable(f.kind) || self.cooling {
            return Next::Stop;
        }
        match f.retry_after {
            Some(d) if d > self.settings.max_retry_wait => Next::Stop,
            Some(d) => Next::Retry(d),
            None => Next::Retry(backoff(self.settings.backoff, retried)),
        }
    }

    /// Waits, looking whether the client is still there; false when it left (or a stop
    /// cut the request short, see [`super::unwanted`]). Before
    /// the request's first attempt there is nothing to wait for and nothing to look at
    /// (a look costs system calls on every request).
    fn pause(&mut self, wait: Duration) -> bool {
        if wait.is_zero() && self.served.attempts == 0 {
            return true;
        }
        let until = Instant::now() + wait;
        loop {
            if super::unwanted(self.env, self.out) {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(PROBE_EVERY));
        }
    }

    /// One try at one target. A body this target cannot take (`Unsupported`,
    /// `Untranslatable`) is a failure of this target; a body malformed in the client's
    /// own protocol (`BadRequest`) is no target's, and ends the request.
    fn attempt(&mut self, target: &Target, last: bool, ask: Ask) -> Outcome {
        let streamed = self.streams_upstream(target, last);
        let body = match self.upstream_body(target, ask, streamed) {
            Ok(b) => b,
            Err(Error::BadRequest(message)) => return Outcome::Invalid(message),
            Err(e) => {
                self.served.attempts += 1;
                return unprepared(e);
            }
        };
        self.served.attempts += 1;
        let outcome = self.send_body(target, (last, streamed), ask, &body);
        if let Cow::Owned(body) = body {
            crate::body::give_back(body);
        }
        outcome
    }

    /// Whether `target` is asked for a stream: when the client asked for one; when the
    /// source answers only streams (its whole answer is then collected); and when the
    /// client asked a self-hosted server for a whole answer but another endpoint
    /// remains. A whole answer's first byte comes only when all of it is made, so only
    /// a stream shows in time that a server is stuck (loading a model, its GPU busy),
    /// the usual fault of a local server. Its plain chat answer is collected unless
    /// that would lose what the client asked for ([`Protocol::collects_whole`]); a
    /// hosted API's carries what only a copy keeps (server tools, citations, encrypted
    /// reasoning), and is asked as the client asked.
    fn streams_upstream(&self, target: &Target, last: bool) -> bool {
        let call = self.call;
        call.stream
            || self.env.auth.stream_only(&target.provider)
            || (!last && target.provider.self_hosted() && call.inbound.collects_whole(call.body))
    }

    /// [`Run::attempt`] with the body it sends; `last` whether no endpoint remains after
    /// this one, `upstream_stream` whether it is asked for a stream.
    fn send_body(
        &mut self,
        target: &Target,
        (last, upstream_stream): (bool, bool),
        ask: Ask,
        body: &[u8],
    ) -> Outcome {
        let (env, call) = (self.env, self.call);
        let mut headers = match env.auth.headers(target) {
            Ok(h) => h,
            Err(e) => return unprepared(e),
        };
        headers.push(("content-type".into(), "application/json".into()));
        if upstream_stream {
            headers.push(("accept".into(), "text/event-stream".into()));
        }
        if target.protocol == call.inbound {
            upstream::overlay(&mut headers, &call.forward);
        }
        let outcome = self.send_with(target, (last, upstream_stream), ask, body, &mut headers);
        // Whatever an upstream said of a failure leaves the attempt here, beside the
        // credentials it was sent: masked once for every path its words take.
        outcome.without_credentials(&headers)
    }

    /// [`Run::send_body`] with the headers it sends; a login refreshed after a 401
    /// replaces its own in them.
    fn send_with(
        &mut self,
        target: &Target,
        (last, upstream_stream): (bool, bool),
        ask: Ask,
        body: &[u8],
        headers: &mut Vec<Header>,
    ) -> Outcome {
        let (env, settings) = (self.env, self.settings);
        let provider = &target.provider;
        let path = target.protocol.endpoint(target.model(), upstream_stream);
        let mut url = Spare::take(&URL);
        url.push_str(&provider.api_base);
        url.push_str(&path);
        // The last endpoint waits as long as any first byte; the others only as long as
        // a first token may take before another endpoint is the better bet.
        let patience = if last {
            settings.first_byte_timeout
        } else {
            target
                .first_token
                .unwrap_or(settings.first_token_timeout)
                .min(settings.first_byte_timeout)
        };
        // Deadlines are per attempt: an earlier endpoint's wait does not count. A
        // stream's head counts against its first-token deadline too.
        let sent = Instant::now();
        let gone = || super::unwanted(env, self.out);
        // A whole answer waits as long as the settings in force say (not those the
        // client was built with: a reload applies).
        let wait = match upstream_stream {
            true => patience,
            false => settings.first_byte_timeout,
        };
        let posted = env.client.post_within(&url, headers, body, wait, &gone);
        // The deadline a timeout ran out, and the key that sets it, for its message.
        let deadline = match (upstream_stream, last, target.first_token.is_some()) {
            (true, false, true) => (patience, "the endpoint's `first_token_secs`"),
            (true, false, false) => (patience, "`timeouts.first_token_secs`"),
            _ => (settings.first_byte_timeout, "`timeouts.first_byte_secs`"),
        };
        let mut reply = match posted {
            Ok(r) => r,
            Err(e) => return send_failed(env, &e, deadline, settings.connect_timeout),
        };
        if reply.status == 401 {
            reply = match self.after_401(target, reply, (&url, body), headers, (wait, deadline)) {
                Ok(r) => r,
                Err(outcome) => return outcome,
            };
        }
        // A 401 refuses the key itself; a 403 may refuse only this request (a prompt a
        // moderation flagged, a model the key may not use), so it says nothing of the key.
        env.auth
            .key_answered(provider, reply.status, reply.status == 401);
        if !(200..300).contains(&reply.status) {
            return upstream_error(self, target, reply, &url);
        }
        let t = Try {
            target,
            number: self.served.attempts,
            translate: self.translates(target),
            patience,
            alone: self.alone && ask != Ask::Continue,
            wait: deadline,
        };
        // A stream is read as one, asked for or not: a server that ignores `"stream":
        // false` has its events collected into the whole answer the client asked for.
        if reply.content_type.starts_with("text/event-stream") {
            let outcome = relay_stream(self, &t, reply, sent);
            // A stream that ended cleanly before any content (llama.cpp's answer to a
            // prompt larger than its context): ask once more, unstreamed, to learn why.
            // Asked of every endpoint, not only the last: a context overflow moves on
            // without cooling a source down that serves shorter prompts well.
            if let Outcome::Failed(f) = &outcome
                && f.kind == FailKind::EarlyEnd
                && f.reason == EMPTY_STREAM
                && upstream_stream
                && ask == Ask::Original
                && !env.auth.stream_only(provider)
            {
                let gone = || super::unwanted(env, self.out);
                match upstream::explain_empty_stream(
                    &env.client,
                    &url,
                    headers,
                    body,
                    patience,
                    &gone,
                ) {
                    Ok(Some(why)) => return upstream_error(self, target, why, &url),
                    Ok(None) => {}
                    // The client left (or a stop cut the request short): not the
                    // source's failure, to cool it down for.
                    Err(_) => return super::given_up(env),
                }
            }
            outcome
        } else if ask == Ask::Continue {
            // A continuation must stream into the open stream; a whole body cannot.
            fail(FailKind::EarlyEnd, "the continuation was not streamed")
        } else {
            self.relay_whole(&t, reply)
        }
    }

    /// A 401 `reply` to the request `sent` (URL and body) with `headers`: a
    /// subscription token the upstream rejects is refreshed once and the request sent
    /// once more (the fresh login's headers replace the old in `headers`), within
    /// `wait` and failing as `deadline` says; a refresh refused for good tells the
    /// client to log in again. Apart from [`Run::send_with`], which every request runs.
    #[cold]
    #[inline(never)]
    fn after_401(
        &self,
        target: &Target,
        reply: Reply,
        (url, body): (&str, &[u8]),
        headers: &mut Vec<Header>,
        (wait, deadline): (Duration, (Duration, &'static str)),
    ) -> Result<Reply, Outcome> {
        let (env, settings) = (self.env, self.settings);
        let gone = || super::unwanted(env, self.out);
        // A subscription token the upstream rejects is refreshed once and the request retried once.
        if env.auth.refresh_after_401(target) {
            let fresh = env.auth.headers(target).map(|h| {
                headers.retain(|(n, _)| !h.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)));
                headers.extend(h.into_inner());
                // The fresh login's headers replaced the client's betas merged above.
                if target.protocol == self.call.inbound {
                    upstream::overlay(headers, &self.call.forward);
                }
            });
            if fresh.is_ok() {
                return match env.client.post_within(url, headers, body, wait, &gone) {
                    Ok(r) => Ok(r),
                    Err(e) => Err(send_failed(env, &e, deadline, settings.connect_timeout)),
                };
            }
        } else if let Some(e) = env.auth.login_needed(target) {
            // The refresh was refused for good: the client is told to log in again.
            return Err(unprepared(e));
        }
        Ok(reply)
    }

    /// Builds the bytes sent upstream for `target`, a stream when `streamed`: the
    /// client's own, lent, when they go as they came.
    fn upstream_body(
        &mut self,
        target: &Target,
        ask: Ask,
        streamed: bool,
    ) -> Result<Cow<'a, [u8]>, Error> {
        let (env, call) = (self.env, self.call);
        let provider = &target.provider;
        let same = target.protocol == call.inbound;
        // A whole answer asked for as a stream, to be collected.
        let collected = streamed && !call.stream;
        // usage (issue 19): a chat stream copied byte for byte is asked for its usage.
        let asks_usage = super::asks_usage(call, target);
        let mended = same && target.protocol.must_mend(call.body, &target.source());
        // What this model refused, in this request or before, is left out
        // (`refused.rs`): of a copied request only its reasoning, as the client chose
        // the rest for this source.
        let refused = self.left_out.with(env.refused.of(target.label()));
        self.left_out = match same {
            true => refused.reasoning_only(),
            false => refused,
        };
        let unthought = self.left_out.has(Refusals::REASONING);
        if same
            && !env.auth.rewrites_body(provider)
            && ask == Ask::Original
            && !mended
            && !unthought
        {
            // A whole answer to collect is asked for as a stream in the client's own
            // bytes, as a copied one is: not re-encoded, which costs a tree and may
            // change how a number is written.
            if collected {
                return Ok(target.protocol.streaming_body(call.body, target.model()));
            }
            if asks_usage {
                return Ok(Cow::Owned(
                    call.body.with_model_asking_usage(target.model()),
                ));
            }
            return Ok(target.protocol.passthrough_body(call.body, target.model()));
        }
        let plan = BodyPlan {
            same,
            collected,
            asks_usage,
            mended,
            unthought,
        };
        self.reencoded_body(target, ask, plan)
    }

    /// [`Run::upstream_body`] when the client's bytes cannot go as they came: the
    /// request re-encoded for `target` (`mended` when its protocol mends it). Apart, as
    /// only translated, mended and retried requests take it.
    #[inline(never)]
    fn reencoded_body(
        &mut self,
        target: &Target,
        ask: Ask,
        plan: BodyPlan,
    ) -> Result<Cow<'a, [u8]>, Error> {
        let (env, call) = (self.env, self.call);
        let provider = &target.provider;
        let BodyPlan {
            same,
            collected,
            asks_usage,
            mended,
            unthought,
        } = plan;
        let mut up = if same {
            let mut v = call.body.to_value()?;
            if target.protocol == Protocol::Gemini {
                // Gemini's model is in the URL; Google refuses unknown body fields.
                if let Some(o) = v.as_object_mut() {
                    o.shift_remove("model");
                }
            } else {
                v["model"] = Value::String(target.model().to_string());
            }
            if mended {
                target.protocol.mend(&mut v, &target.source());
            }
            if unthought {
                target.protocol.forget_thinking(&mut v);
            }
            if ask == Ask::Continue {
                rescue::append_partial(call.inbound, &mut v, &self.splice.prefill())?;
            }
            // usage (issue 19): a continuation reports the whole answer's usage too; the
            // client's encoder drops it again when the client did not ask.
            if asks_usage && let Some(obj) = v.as_object_mut() {
                protocol::chat::ask_usage(obj);
            }
            v
        } else {
            let mut chat = self
                .hub
                .get_or_insert_with(|| {
                    let mut chat = call
                        .body
                        .to_value()
                        .and_then(|v| call.inbound.request_to_chat(v, call.stream))?;
                    env.recall.restore(&mut chat);
                    Ok(chat)
                })
                .as_ref()
                .map_err(same_kind)?
                .clone();
            if ask == Ask::Continue {
                rescue::append_partial(Protocol::Chat, &mut chat, &self.splice.prefill())?;
            }
            if unthought {
                Protocol::Chat.forget_thinking(&mut chat);
            }
            if target.protocol == Protocol::Chat
                && let Some(given) = chat["stop"].as_array().map(Vec::len)
            {
                let dropped = protocol::chat::stops_dropped(given, &target.source());
                if dropped > 0 {
                    crate::log::line(format!(
                        "{}: OpenAI takes at most 4 stop sequences; sent the first 4 of the {given} asked, the answer may run past the other {dropped}",
                        target.label()
                    ));
                }
            }
            let mut up = target.protocol.request_from_chat(chat, &target.source())?;
            for p in self.left_out.params() {
                p.leave_out(target.protocol, &mut up);
            }
            up
        };
        if ask == Ask::Continue {
            rescue::unthink_continuation(target.protocol, &mut up);
            rescue::prefill_flags(target, &mut up);
            rescue::lower_cap(target.protocol, &mut up, self.splice.sent_tokens());
        }
        if collected {
            target.protocol.ask_stream(&mut up);
        }
        if let Ask::WithoutOldReasoning | Ask::WithoutReasoning = ask {
            let all = ask == Ask::WithoutReasoning;
            let mut left_out = Vec::new();
            let left = target
                .protocol
                .forget_reasoning(&mut up, all, &mut left_out);
            if !all {
                self.reasoning_left = left;
            }
            // Known on the session's later turns, which still carry it (`unreadable.rs`).
            env.unreadable
                .note(&provider.id, left_out.iter().map(String::as_str));
        }
        env.auth.shape_body(provider, &mut up);
        serde_json::to_vec(&up)
            .map(Cow::Owned)
            .map_err(|e| Error::Internal(format!("cannot encode body: {e}")))
    }

    /// True when `target`'s answer is translated (or reshaped) for the client, not
    /// copied byte for byte. A Claude login's answer to an Anthropic client is copied
    /// like an API key's: its request only gained the identity line, and through the
    /// hub the answer would lose what only Anthropic's own format carries (a
    /// `pause_turn`, server tools' blocks, citations). A Codex login's stream is
    /// re-encoded, as its request was.
    fn translates(&self, target: &Target) -> bool {
        target.protocol != self.call.inbound || self.env.auth.stream_only(&target.provider)
    }

    /// Gives the client the filtered answer `target` sent (`kept`: its status, its
    /// bytes, a stream's up to the filter, with their content type, and its headers),
    /// moved past while another endpoint was left and now the only answer any endpoint
    /// gave: as `target` would have given it as the last endpoint. A filter's error
    /// (Azure's 400 `content_filter`) is its error, in the client's protocol. Nothing
    /// is asked upstream.
    pub(super) fn answer_filtered(&mut self, target: &Target, mut kept: Failure) -> Outcome {
        if kept.status != Some(200) {
            let by = served_by(target, self.served.attempts);
            self.splice.status = super::surface(self.call, &kept, Some(by), self.out);
            return Outcome::Answered;
        }
        let Some((bytes, ct)) = kept.body.take() else {
            return Outcome::Failed(kept);
        };
        let headers = std::mem::take(&mut kept.headers);
        let first_byte = self.settings.first_byte_timeout;
        let t = Try {
            target,
            number: self.served.attempts,
            translate: self.translates(target),
            patience: first_byte,
            alone: true,
            wait: (first_byte, "`timeouts.first_byte_secs`"),
        };
        let stream = ct.starts_with("text/event-stream");
        let reply = Reply::in_hand(200, ct, headers, bytes);
        match stream {
            true => relay_stream(self, &t, reply, Instant::now()),
            false => self.relay_whole(&t, reply),
        }
    }

    /// Relays a complete (non-streaming) answer.
    fn relay_whole(&mut self, t: &Try<'_>, mut reply: Reply) -> Outcome {
        let (settings, call, target) = (self.settings, self.call, t.target);
        let status = reply.status;
        let ct = std::mem::take(&mut reply.content_type);
        let headers = std::mem::take(&mut reply.headers);
        let retry_after = reply.retry_after;
        let coding = reply.coding.take();
        let limit = settings.limits.max_response_bytes;
        let bytes = match reply.read_all(limit, &|| super::unwanted(self.env, self.out)) {
            Ok(b) => b,
            Err(BodyError::Failed(reason)) => return fail(FailKind::EarlyEnd, reason),
            Err(BodyError::TooLarge { limit }) => return super::too_large(limit),
            // Its head came, then the body stopped: the source did not answer in time,
            // as a stream that goes silent before its first token.
            Err(BodyError::Timeout) => return stalled(t.wait),
            Err(BodyError::Abandoned) => return super::given_up(self.env),
        };
        // A body in a coding (Routeplane asks for none) cannot be read, whatever it is.
        if let Some(coding) = coding {
            let said = compressed_with(status, &coding, bytes.len());
            return fail(FailKind::Malformed, format!("it {said}"));
        }
        // OpenRouter's failure after it began: a 200 whose body is an error; Anthropic's
        // error body sent with a 200; and a Responses object that failed. Failed over,
        // retried or surfaced like the status they name, never passed on as an answer.
        if let Some(status) = target.protocol.failed_answer(&bytes) {
            return failed_with(status, (bytes, ct), headers, retry_after);
        }
        // A safety block (Gemini's 200 with nothing in it) or an answer a content filter
        // emptied (a chat source's, Azure's; Anthropic's refusal; an `incomplete`
        // Responses answer) moves on while an endpoint is left; the last one's is the
        // client's answer, filtered.
        if !t.alone
            && let Some(reason) = target.protocol.blocked_answer(&bytes)
        {
            return super::held_back(reason, Some((bytes, ct)), headers);
        }
        // usage (issue 19): read from the end of the body before it goes out.
        let tokens = Tokens::from_answer(target.protocol, &bytes);
        if tokens.reported() {
            self.served.tokens = tokens;
        }
        // A server that ignored `"stream": true`: the client still gets a stream.
        if call.stream {
            return match self.hub_answer(t, (status, &ct), &bytes) {
                Ok(chat) => super::stream::relay_whole_as_stream(self, t, status, headers, &chat),
                Err(failed) => failed,
            };
        }
        let answer = if t.translate {
            match self.translated_whole(t, (status, &ct), &bytes) {
                Ok(answer) => answer,
                Err(failed) => return failed,
            }
        } else {
            // Copied as it came, so not parsed: looked at only as far as an answer's shape.
            if let Some(reason) = not_an_answer(status, &ct, &bytes) {
                return fail(FailKind::Malformed, reason);
            }
            bytes
        };
        let ct = if t.translate || ct.is_empty() {
            "application/json".into()
        } else {
            ct
        };
        self.splice.status = status;
        let by = Some(served_by(target, t.number));
        let sent = self.out.respond_served(status, &ct, &headers, by, &answer);
        crate::upstream::recycle(answer);
        match sent {
            Ok(()) => {
                self.served.first_token = Some(Instant::now());
                Outcome::Answered
            }
            Err(_) => Outcome::ClientGone,
        }
    }
}

impl Run<'_, '_> {
    /// A whole answer (with its status and content type) translated into the client's
    /// protocol, or the failure when it cannot be read. Apart from
    /// [`Run::relay_whole`], whose copied answers do not take it.
    #[inline(never)]
    fn translated_whole(
        &self,
        t: &Try<'_>,
        (status, ct): (u16, &str),
        bytes: &[u8],
    ) -> Result<Vec<u8>, Outcome> {
        let call = self.call;
        let chat = self.hub_answer(t, (status, ct), bytes)?;
        Ok(call
            .inbound
            .response_from_chat(chat, &call.asked)
            .to_string()
            .into_bytes())
    }

    /// A whole answer (with its status and content type) read as hub chat, its
    /// reasoning noted for the client's next turn when it was translated; the failure
    /// when it is not JSON, or cannot be read (a Gemini answer with no candidates).
    fn hub_answer(
        &self,
        t: &Try<'_>,
        (status, ct): (u16, &str),
        bytes: &[u8],
    ) -> Result<Value, Outcome> {
        let (call, target) = (self.call, t.target);
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
            let reason = not_an_answer(status, ct, bytes);
            let reason = reason.unwrap_or_else(|| said_instead(status, ct, bytes));
            return Err(fail(FailKind::Malformed, reason));
        };
        let chat = target.protocol.response_to_chat(v).map_err(|e| {
            // What went wrong, without a provider's name: the failure is the
            // endpoint's, named where it is told.
            let reason = match e {
                Error::Upstream { reason, .. } => reason,
                e => e.to_string(),
            };
            fail(unfit(&reason, b"").unwrap_or(FailKind::EarlyEnd), reason)
        })?;
        if t.translate
            && let Some(mut noted) = Noted::of(call, target, &self.env.recall)
        {
            noted.add(&chat["choices"][0]["message"]);
        }
        Ok(chat)
    }
}

/// A whole body that stopped part-way after its head: the source did not answer in
/// time (`wait`: how long each read waited, and the key that sets it).
#[cold]
#[inline(never)]
fn stalled((waited, key): (Duration, &'static str)) -> Outcome {
    let waited = crate::error::seconds(waited.as_secs_f64());
    let reason = format!("the body stalled part-way: nothing more of it within {waited} ({key})");
    fail(FailKind::Timeout, reason)
}

/// The hub translation's error again, for the next target that needs it, of the same
/// kind: the kind decides whether that target is skipped or the request ends.
fn same_kind(e: &Error) -> Error {
    match e {
        Error::Untranslatable(message) => Error::Untranslatable(message.clone()),
        e => Error::bad_request(e.to_string()),
    }
}

/// The pause before retry number `n` (from 0): `base` doubled `n` times, then a random
/// point in its upper half, so clients that failed together do not retry together.
fn backoff(base: Duration, n: u32) -> Duration {
    let full = base.saturating_mul(1 << n.min(10));
    // A random number without a crate: the standard library seeds each RandomState anew.
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    full / 2 + full.mul_f64((r % 1000) as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half() {
        let base = Duration::from_millis(250);
        for n in 0..4 {
            let full = base * (1 << n);
            for _ in 0..20 {
                let d = backoff(base, n);
                assert!(d >= full / 2 && d <= full, "{n}: {d:?}");
            }
        }
    }
}
