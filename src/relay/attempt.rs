//! Asking one endpoint: the credential, the send, and quick retries of the same endpoint.
//!
//! `Run::endpoint` asks one target, again after a 429/5xx/reset (`retryable`) up to
//! `failover.retries` times: a `Retry-After` (or reset header) up to
//! `failover.max_retry_wait_secs` is waited out, a longer one moves on at once (and
//! cools the endpoint down for that long); without one the pause is a jittered
//! exponential backoff from `failover.backoff_ms`. Whatever the settings, one endpoint
//! is never asked more than twice within 1.5 s, and a client that leaves during a
//! pause stops everything; so does one that leaves while an answer is awaited (its
//! head, its first event, a whole body), noticed after the upstream's first silent
//! second (`upstream::Abandon`). The body it sends is built in `request.rs`; its
//! answer is relayed in `whole.rs`, or in `stream.rs` when it streams.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use super::classify::{send_failed, upstream_error};
use super::refused::{Param, Refusals};
use super::stream::relay_stream;
use super::{EMPTY_STREAM, FailKind, Failure, Outcome, Run, fail, served_by, unprepared};
use crate::auth::Login;
use crate::error::Error;
use crate::protocol::Protocol;
use crate::registry::Origin;
use crate::registry::Target;
use crate::stats::{Ended, Tried, status_word};
use crate::upstream::{self, Header, Reply};

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
            // The spacing rule holds across the whole request, continuations included:
            // it takes two attempts before, which most requests never make.
            if self.served.tried.len() >= 2 {
                wait = wait.max(self.spacing(label));
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

    /// How long the endpoint `label` must still wait for its next attempt under the
    /// spacing rule: at most two of its attempts fall within [`SPACING`]. Out of
    /// [`Run::endpoint`]'s loop: a request's first attempts never wait.
    #[cold]
    #[inline(never)]
    fn spacing(&self, label: &str) -> Duration {
        let mut times = (self.served.tried.iter())
            .zip(self.asked.iter())
            .filter(|(t, _)| *t.endpoint == *label)
            .map(|(_, at)| *at);
        let before_last = times.clone().count().checked_sub(2);
        match before_last.and_then(|n| times.nth(n)) {
            Some(t) => (t + SPACING).saturating_duration_since(Instant::now()),
            None => Duration::ZERO,
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
        self.pause_for(wait)
    }

    /// [`Run::pause`] once there is something to wait for or to look at. Out of
    /// [`Run::endpoint`]'s loop, which a request's first attempt runs through.
    #[cold]
    #[inline(never)]
    fn pause_for(&mut self, wait: Duration) -> bool {
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
            || (!last && target.provider.self_hosted() && collects_whole(call))
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
        // The target's login, if any, goes with the attempt: a refresh it needs leaves
        // the new tokens in it, and it comes back for the request's next attempts.
        let mut login = self.logins.take(&target.provider.id);
        let outcome = match env.auth.headers(target, login.as_mut()) {
            Ok(mut headers) => {
                headers.push(("content-type".into(), "application/json".into()));
                if upstream_stream {
                    headers.push(("accept".into(), "text/event-stream".into()));
                }
                if target.protocol == call.inbound {
                    upstream::overlay(&mut headers, &call.forward);
                }
                let streams = (last, upstream_stream);
                let mut outcome =
                    self.send_with(target, streams, ask, body, &mut headers, &mut login);
                // Whatever an upstream said of a failure leaves the attempt here, beside
                // the credentials it was sent: masked once for every path its words take.
                outcome.mask_credentials(&headers);
                outcome
            }
            Err(e) => unprepared(e),
        };
        self.logins.put(login);
        outcome
    }

    /// [`Run::send_body`] with the headers it sends and the login they carry; a login
    /// refreshed after a 401 replaces its own in them.
    fn send_with(
        &mut self,
        target: &Target,
        (last, upstream_stream): (bool, bool),
        ask: Ask,
        body: &[u8],
        headers: &mut Vec<Header>,
        login: &mut Option<Login>,
    ) -> Outcome {
        let (env, settings) = (self.env, self.settings);
        let provider = &target.provider;
        let path = target.protocol.endpoint(target.model(), upstream_stream);
        // Sent to the provider's `api_base` as split when the registry was built; the
        // URL is written out only for the words of a failure.
        let url = || format!("{}{path}", provider.api_base);
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
        let at = (&provider.base, &path[..]);
        let posted = env.client.post_at(at, headers, body, wait, &gone);
        // The deadline a timeout ran out, and the key that sets it, for its message.
        let deadline = match (upstream_stream, last, target.first_token.is_some()) {
            (true, false, true) => (patience, "the endpoint's `first_token_secs`"),
            (true, false, false) => (patience, "`timeouts.first_token_secs`"),
            _ => (settings.first_byte_timeout, "`timeouts.first_byte_secs`"),
        };
        let mut reply = match posted {
            Ok(r) => r,
            Err(e) => return send_failed(env, target, &e, deadline, settings.connect_timeout),
        };
        if reply.status == 401 {
            let sent = (at, body, login);
            reply = match self.after_401(target, reply, sent, headers, (wait, deadline)) {
                Ok(r) => r,
                Err(outcome) => return outcome,
            };
        }
        // A 401 refuses the key itself; a 403 may refuse only this request (a prompt a
        // moderation flagged, a model the key may not use), so it says nothing of the key.
        env.auth
            .key_answered(provider, reply.status, reply.status == 401);
        if !(200..300).contains(&reply.status) {
            return upstream_error(self, target, reply, &url());
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
                return self.explain_empty(target, (&headers[..], body), patience, outcome);
            }
            outcome
        } else if ask == Ask::Continue {
            // A continuation must stream into the open stream; a whole body cannot.
            fail(FailKind::EarlyEnd, "the continuation was not streamed")
        } else {
            self.relay_whole(&t, reply)
        }
    }

    /// A stream `target` ended cleanly before any content (`outcome`): asked once more
    /// for `body` with `headers`, unstreamed, within `patience`, to learn why. Apart
    /// from [`Run::send_with`], whose answered requests never take it.
    #[cold]
    #[inline(never)]
    fn explain_empty(
        &mut self,
        target: &Target,
        (headers, body): (&[Header], &[u8]),
        patience: Duration,
        outcome: Outcome,
    ) -> Outcome {
        let env = self.env;
        let path = target.protocol.endpoint(target.model(), true);
        let url = format!("{}{path}", target.provider.api_base);
        let gone = || super::unwanted(env, self.out);
        match upstream::explain_empty_stream(&env.client, &url, headers, body, patience, &gone) {
            Ok(Some(why)) => upstream_error(self, target, why, &url),
            Ok(None) => outcome,
            // The client left (or a stop cut the request short): not the source's
            // failure, to cool it down for.
            Err(_) => super::given_up(env),
        }
    }

    /// A 401 `reply` to the request `sent` (where, and its body) with `headers`: a
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
        (at, body, login): ((&Origin, &str), &[u8], &mut Option<Login>),
        headers: &mut Vec<Header>,
        (wait, deadline): (Duration, (Duration, &'static str)),
    ) -> Result<Reply, Outcome> {
        let (env, settings) = (self.env, self.settings);
        let gone = || super::unwanted(env, self.out);
        // A subscription token the upstream rejects is refreshed once and the request retried once.
        if env.auth.refresh_after_401(target, login.as_mut()) {
            if refreshed_headers(env, self.call, target, login, headers) {
                return match env.client.post_at(at, headers, body, wait, &gone) {
                    Ok(r) => Ok(r),
                    Err(e) => Err(send_failed(
                        env,
                        target,
                        &e,
                        deadline,
                        settings.connect_timeout,
                    )),
                };
            }
        } else if let Some(e) = env.auth.login_needed(target) {
            // The refresh was refused for good: the client is told to log in again.
            return Err(unprepared(e));
        }
        Ok(reply)
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
}

/// [`Protocol::collects_whole`] of the client's request, out of line: only a
/// self-hosted endpoint that is not the last asks it, and its body reader would sit
/// among the hot code of every attempt.
#[inline(never)]
fn collects_whole(call: &super::Call<'_>) -> bool {
    call.inbound.collects_whole(call.body)
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

/// After a refresh of `login`, its fresh credentials put in place of those in
/// `headers`; false when they cannot be had. The client's own headers (its betas) are
/// merged again for a source of its protocol, as on the first send.
pub(super) fn refreshed_headers(
    env: &super::Env,
    call: &super::Call<'_>,
    target: &Target,
    login: &mut Option<Login>,
    headers: &mut Vec<Header>,
) -> bool {
    let Ok(fresh) = env.auth.headers(target, login.as_mut()) else {
        return false;
    };
    headers.retain(|(n, _)| !fresh.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)));
    headers.extend(fresh.into_inner());
    if target.protocol == call.inbound {
        upstream::overlay(headers, &call.forward);
    }
    true
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
