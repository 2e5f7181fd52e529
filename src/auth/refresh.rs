//! Keeping a login's access token fresh: one refresh at a time per login, a pause after failures.
//!
//! A token is refreshed five minutes before it expires, and once after a 401 to it.
//! Each refresh runs in a thread of its own (refreshes are rare; on the request's own
//! when none can be started), one at a time per login: requests that need the same
//! login wait for it and share its result, those whose token has not expired for a
//! moment at most ([`AHEAD_WAIT`]) before they go out with it, so a hung token
//! endpoint holds none of them. A refresh that failed for
//! now pauses the next (doubling up to a minute) while the token, not yet expired,
//! still carries requests. The refresh runs under the token file's lock, reads the
//! file again under it, and stores the rotated refresh token before the new access
//! token is used.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::oauth::{self, TokenFailure, Tokens};
use super::{
    Auth, Login, REFRESH_MARGIN_SECS, Subscription, anthropic, fingerprint, openai_codex, store,
};
use crate::error::Error;
use crate::registry::Provider;
use crate::sync::lock;

/// After a refresh fails for now, no other is tried for this long, doubled for each
/// failure in a row up to [`PAUSE_MOST`]; a refresh that succeeds ends it. A token
/// endpoint that is down or slow would otherwise hold every request for up to
/// `oauth::TOKEN_WAIT` (10 s) each; short, as most such failures are a blip (a deploy,
/// a dropped connection) and a client's retry a few seconds later should find a
/// refresh tried again.
pub(super) const PAUSE_FIRST: Duration = Duration::from_secs(5);
/// The longest pause between refreshes that keep failing: once the endpoint is back,
/// its login works again within a minute.
const PAUSE_MOST: Duration = Duration::from_secs(60);

/// A request whose token has not expired waits this long at most, from the start of
/// its login's refresh, for the refresh to end: a token endpoint answers well within
/// it, and one that hangs holds no request beyond it. The refresh goes on in its own
/// thread, and the request goes out with the token it has.
pub(super) const AHEAD_WAIT: Duration = Duration::from_secs(1);

/// One login's refreshes, made one at a time, each in a thread of its own.
#[derive(Debug, Default)]
pub(super) struct Flight {
    /// How the refreshes went, and whether one is in flight.
    last: Mutex<Last>,
    /// Signalled when a refresh ends.
    ended: Condvar,
}

/// How a login's refreshes went.
#[derive(Debug, Default)]
struct Last {
    /// When the refresh in flight started; `None` when none is.
    started: Option<Instant>,
    /// Refreshes ended so far: a request that sees it change was waiting for one
    /// that ended, and takes its result (the stored tokens, or `failure`).
    ended: u64,
    /// How the last refresh failed; `None` after one that succeeded.
    failure: Option<Error>,
    /// Refreshes that failed for now in a row.
    streak: u32,
    /// After a refresh failed for now: no refresh is tried before this instant for the
    /// refresh token with this fingerprint (a new login, which replaces it, is tried at
    /// once), and requests that need one get `failure`.
    pause: Option<(Instant, u64)>,
}

impl Auth {
    /// Makes `login`'s tokens usable for `p`'s request: left as they are, or refreshed
    /// when they expire within the margin or when they are `rejected` (an upstream
    /// just answered 401 to them). A refresh runs in its own thread, one at a time per
    /// login; a request whose token has not expired (and was not refused) waits for it
    /// at most [`AHEAD_WAIT`], one whose token has, until it ends.
    pub(super) fn fresh(
        self: &Arc<Self>,
        p: &Arc<Provider>,
        login: &mut Login,
        rejected: bool,
    ) -> Result<(), Error> {
        // The usual request: a token far from expiry, nothing locked or read.
        if !self.needs_refresh(&login.tokens, rejected.then_some(&login.tokens)) {
            return Ok(());
        }
        let rejected = rejected.then(|| login.tokens.clone());
        login.tokens = self.settle(p, rejected)?;
        Ok(())
    }

    /// [`Auth::fresh`] for tokens that need a refresh (`rejected`: the ones an upstream
    /// just refused): the tokens to use.
    fn settle(
        self: &Arc<Self>,
        p: &Arc<Provider>,
        rejected: Option<Tokens>,
    ) -> Result<Tokens, Error> {
        let login_needed = |reason: String| Error::LoginNeeded {
            provider: p.id.clone(),
            reason,
        };
        let flight = {
            let mut flights = lock(&self.flights);
            Arc::clone(flights.entry(p.id.clone()).or_default())
        };
        let mut last = lock(&flight.last);
        // The count of ended refreshes when this request began to wait for one.
        let mut waited = None;
        loop {
            // Read again: a refresh (here, or another process's) may have stored new tokens.
            let current = self
                .tokens(&p.id)
                .ok_or_else(|| login_needed("not logged in".into()))?;
            if !self.needs_refresh(&current, rejected.as_ref()) {
                return Ok(current);
            }
            let usable = usable_as_is(&current, rejected.as_ref());
            if waited.is_some_and(|n| n != last.ended) {
                // The refresh waited for ended: its tokens (which may expire within the
                // margin again), or its failure, are ours too, rather than one more try
                // each for a burst of requests.
                return match last.failure.as_ref().and_then(failed_again) {
                    Some(Error::RefreshFailed { .. }) if usable => Ok(current),
                    Some(e) => Err(e),
                    None => Ok(current),
                };
            }
            if let Some(started) = last.started {
                waited.get_or_insert(last.ended);
                let wait = match usable {
                    // A token that still serves waits a moment, not for a hung endpoint.
                    true => match (started + AHEAD_WAIT).checked_duration_since(Instant::now()) {
                        Some(left) => left,
                        None => return Ok(current),
                    },
                    // One that does not waits for the end, which the refresh's own
                    // deadlines bound.
                    false => Duration::MAX,
                };
                let woken = flight.ended.wait_timeout(last, wait);
                last = woken.unwrap_or_else(PoisonError::into_inner).0;
                continue;
            }
            // Within the pause after a failure for now: the token as it is while it has
            // not expired (and was not just refused), else that failure's answer at once.
            let spent = fingerprint(current.refresh.expose());
            if let Some((until, print)) = last.pause
                && Instant::now() < until
                && print == spent
                && let Some(e) = last.failure.as_ref().and_then(failed_again)
            {
                return if usable { Ok(current) } else { Err(e) };
            }
            let (auth, to, on) = (Arc::clone(self), Arc::clone(p), Arc::clone(&flight));
            let (now, refused) = (current.clone(), rejected.clone());
            last.started = Some(Instant::now());
            // Refreshes are rare: a thread each, which no request joins.
            let spawned = !crate::spawn::refused("refresh")
                && std::thread::Builder::new()
                    .spawn(move || auth.refresh_in_flight(&to, &on, now, refused, spent))
                    .is_ok();
            if !spawned {
                // No thread to be had (the process at its limit): the refresh runs on
                // this request's own, which then takes its result as a waiter would,
                // rather than the request failing.
                waited = Some(last.ended);
                drop(last);
                self.refresh_in_flight(p, &flight, current, rejected.clone(), spent);
                last = lock(&flight.last);
            }
        }
    }

    /// A refresh of `p`'s login in its own thread, for requests that found `current`
    /// (whose refresh token has fingerprint `spent`) in need of one: its result goes to
    /// `flight` and the requests waiting there.
    fn refresh_in_flight(
        &self,
        p: &Provider,
        flight: &Flight,
        current: Tokens,
        rejected: Option<Tokens>,
        spent: u64,
    ) {
        // A panic (a bug) must still end the refresh: requests wait for its end.
        let result = catch_unwind(AssertUnwindSafe(|| self.refresh(p, rejected.as_ref())))
            .unwrap_or_else(|_| Err(Error::Internal("the refresh panicked".into())));
        let mut last = lock(&flight.last);
        match &result {
            Err(Error::RefreshFailed { .. }) => {
                last.streak = last.streak.saturating_add(1);
                let pause = self
                    .pause_first
                    .saturating_mul(1 << (last.streak - 1).min(16))
                    .min(PAUSE_MOST.max(self.pause_first));
                last.pause = Some((Instant::now() + pause, spent));
            }
            _ => {
                last.streak = 0;
                last.pause = None;
            }
        }
        last.failure = result.as_ref().err().and_then(failed_again);
        last.started = None;
        last.ended += 1;
        drop(last);
        flight.ended.notify_all();
        // Failed for now, with an access token that has not expired (refreshes start
        // five minutes ahead): it carries the requests until it expires; the pause
        // spaces out the next tries.
        if let Err(Error::RefreshFailed { reason, .. }) = &result
            && usable_as_is(&current, rejected.as_ref())
        {
            let left = current.expires_at.saturating_sub(oauth::now());
            crate::log::line(format!(
                "warning: the {} login could not be refreshed ({reason}); its access \
                 token, which expires in {left} s, is used until then",
                p.id
            ));
        }
    }

    /// Whether a refresh is in flight. A stop waits for it: the endpoint's answer rotates
    /// the refresh token, and a process that ends before storing the new one loses the
    /// login.
    pub fn refreshing(&self) -> bool {
        lock(&self.flights)
            .values()
            .any(|f| lock(&f.last).started.is_some())
    }

    /// Whether `current` must be refreshed before use: it expires within the margin, or
    /// it is the token an upstream just refused.
    fn needs_refresh(&self, current: &Tokens, rejected: Option<&Tokens>) -> bool {
        let rejected_now = rejected.is_some_and(|r| r.access == current.access);
        let expiring =
            current.expires_at != 0 && current.expires_at <= oauth::now() + REFRESH_MARGIN_SECS;
        rejected_now || expiring
    }

    /// Refreshes `p`'s login under the token file's lock, which another routeplane
    /// refreshing the same file (or a `routeplane login`) takes too: the file is read
    /// again under it, and a login another process renewed meanwhile is used as it is,
    /// its rotated refresh token not spent a second time (which a provider may take as
    /// a stolen token, and revoke the login).
    fn refresh(&self, p: &Provider, rejected: Option<&Tokens>) -> Result<Tokens, Error> {
        let login_needed = |reason: String| Error::LoginNeeded {
            provider: p.id.clone(),
            reason,
        };
        let (Some(client), Some(store)) = (&self.client, &self.store) else {
            return Err(login_needed("no token store".into()));
        };
        let unreadable = |e: Error| match e {
            Error::Auth(why) => login_needed(format!("its token file cannot be read: {why}")),
            e => login_needed(e.to_string()),
        };
        // Read before the refresh token is spent: one spent and then not stored is lost.
        let held = store.lock().map_err(|e| match e {
            Error::Auth(why) => login_needed(why),
            e => login_needed(e.to_string()),
        })?;
        let entry = held.load().map_err(unreadable)?.remove(&p.id);
        let current = entry
            .as_ref()
            .and_then(store::from_json)
            .ok_or_else(|| login_needed("not logged in".into()))?;
        if let Some(reason) = entry.as_ref().and_then(store::refused) {
            return Err(login_needed(format!("login needed: {reason}")));
        }
        if !self.needs_refresh(&current, rejected) {
            drop(held);
            self.remember(&p.id, &current);
            return Ok(current);
        }
        if current.refresh.expose().is_empty() {
            return Err(login_needed("the stored login cannot be refreshed".into()));
        }
        let renewed = match Subscription::of(&p.id) {
            Some(Subscription::Anthropic) => anthropic::refresh(client, &p.auth, &current),
            Some(Subscription::OpenAiCodex) => openai_codex::refresh(client, &p.auth, &current),
            None => return Ok(current),
        }
        .map_err(|e| {
            let words = e.words();
            if let TokenFailure::Answered { for_good: true, .. } = e {
                // Refused for good: marked in the file, so no refresh is tried again
                // (by this or another routeplane) until a new login replaces the entry.
                if let Err(mark) = held.mark_refused(&p.id, current.refresh.expose(), &words) {
                    crate::log::line(format!("cannot mark the {} login: {mark}", p.id));
                }
                crate::log::line(format!(
                    "the {} login was refused ({words}); run `routeplane login {}`",
                    p.id,
                    p.id.split('#').next().unwrap_or(&p.id)
                ));
                return login_needed(format!("login needed: {words}"));
            }
            // Not "login needed": the endpoint was down, slow or answered a page, and
            // the login may be good. A token endpoint's answer says "refresh failed
            // (STATUS: …)" already.
            let reason = match e {
                TokenFailure::Answered { .. } => words,
                TokenFailure::NoTokens(why) => format!("refresh failed: {why}"),
            };
            Error::RefreshFailed {
                provider: p.id.clone(),
                reason,
            }
        })?;
        // Persist the rotated refresh token before anything uses the new access token.
        held.put(&p.id, Some(&renewed))
            .map_err(|e| login_needed(e.to_string()))?;
        drop(held);
        self.remember(&p.id, &renewed);
        crate::log::line(format!("refreshed the {} login", p.id));
        Ok(renewed)
    }

    /// Keeps `tokens`, just read from or written to the token file, as `key`'s. The
    /// file is read again at the next look-up: other logins in it may have changed
    /// since the cache was filled, and another process may have written it since.
    fn remember(&self, key: &str, tokens: &Tokens) {
        let mut cache = lock(&self.cache);
        cache.tokens.insert(key.to_string(), tokens.clone());
        cache.refused.remove(key);
        cache.read_at = None;
        cache.recheck = None;
    }
}

/// Whether `current`, which needs a refresh, may still be sent when the refresh failed
/// for now: it has not expired, and it is not the token an upstream just refused.
fn usable_as_is(current: &Tokens, rejected: Option<&Tokens>) -> bool {
    let rejected_now = rejected.is_some_and(|r| r.access == current.access);
    let expired = current.expires_at != 0 && current.expires_at <= oauth::now();
    !rejected_now && !expired
}

/// A copy of a refresh's failure for the requests that waited for it: the two ways a
/// refresh fails (the login is gone, or the refresh failed for now).
fn failed_again(e: &Error) -> Option<Error> {
    match e {
        Error::LoginNeeded { provider, reason } => Some(Error::LoginNeeded {
            provider: provider.clone(),
            reason: reason.clone(),
        }),
        Error::RefreshFailed { provider, reason } => Some(Error::RefreshFailed {
            provider: provider.clone(),
            reason: reason.clone(),
        }),
        _ => None,
    }
}
