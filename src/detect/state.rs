//! The state a provider or one of its models is shown in: the `providers` and `models`
//! commands, `routeplane route`, the status page and `/status.json`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Detected;
use crate::auth::{Auth, RENAME, Subscription};
use crate::registry::{Kind, Provider};
use crate::time::utc_datetime;

/// A provider's state, or one of its models': what decides it is told by the variant,
/// and its `Display` is the text users see, so no caller reads the text back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Requests go to it (the caller adds cool-down).
    Active,
    /// A subscription login whose refresh token was refused: `routeplane login` again.
    LoginNeeded,
    /// A subscription login, valid until this time when its token says.
    LoggedIn(Option<SystemTime>),
    /// A subscription login whose access token has expired: the next request refreshes
    /// it (its date would read as a login that ended).
    LoginExpired,
    /// Its logins are not known: the token file cannot be read.
    TokenFileUnreadable,
    /// A subscription, or a labelled login (`anthropic#work`), with no login stored.
    NotLoggedIn,
    /// A hosted provider whose key variable is not set; `true` for a hosted built-in
    /// pointed at a server on this machine or its network (`openai:` at a vLLM), which
    /// still wants its key: the text then says how to send none.
    NoKey(bool),
    /// The provider refused its key with this status (see [`Auth::key_answered`]).
    KeyRefused(u16),
    /// Detection found it down.
    Down,
    /// A local server that answers but whose model list failed, and why (a 404 or 500
    /// where its list should be, an answer that is no list): it is up, and requests go
    /// to it.
    ListFailed(String),
    /// A local server neither detected nor given models (in its block or a virtual model).
    NotAsked,
    /// A model an up local server does not list (only [`model_state`] tells this).
    NotListed,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Active => f.write_str("active"),
            State::LoginNeeded => f.write_str("login needed"),
            State::LoggedIn(Some(until)) => write!(f, "logged in until {}", utc_datetime(*until)),
            State::LoggedIn(None) => f.write_str("logged in, expiry unknown"),
            State::LoginExpired => f.write_str("logged in, expired, refreshed on next use"),
            State::TokenFileUnreadable => f.write_str("token file unreadable"),
            State::NotLoggedIn => f.write_str("not logged in"),
            State::NoKey(false) => f.write_str("no key"),
            State::NoKey(true) => write!(f, "no key (set `api_key`, or {})", RENAME),
            State::KeyRefused(status) => write!(f, "key refused ({status})"),
            State::Down => f.write_str("down"),
            State::ListFailed(why) => write!(f, "up, model list failed: {why}"),
            State::NotAsked => f.write_str("not asked"),
            State::NotListed => f.write_str("not listed by the server"),
        }
    }
}

/// A provider's state for listings and `routeplane route`; never [`State::NotListed`].
pub fn provider_state(p: &Provider, detected: &Detected, auth: &Auth) -> State {
    let sub = Subscription::of(&p.id);
    if sub.is_some() && auth.logged_in(&p.id) {
        if auth.refused(&p.id).is_some() {
            return State::LoginNeeded;
        }
        // 0 is "not said" (a token file written by hand, a token without `exp`).
        return match auth.expires_at(&p.id).filter(|e| *e > 0) {
            Some(at) if at <= crate::auth::oauth::now() => State::LoginExpired,
            until => State::LoggedIn(until.map(|at| UNIX_EPOCH + Duration::from_secs(at))),
        };
    }
    if sub.is_some() && p.key.is_none() && auth.unreadable().is_some() {
        return State::TokenFileUnreadable;
    }
    if p.key.is_none() && (p.kind == Kind::Subscription || p.id.contains('#')) {
        return State::NotLoggedIn;
    }
    if p.key.is_none() && !p.key_vars.is_empty() {
        return State::NoKey(p.self_hosted());
    }
    if let Some(status) = auth.key_refused(p) {
        return State::KeyRefused(status);
    }
    match detected.state(&p.id) {
        Some(s) if p.detect && !s.up => State::Down,
        Some(s) if p.detect && s.list_failed() => State::ListFailed(s.reason),
        _ if p.source_kind() == Kind::Local
            && !p.detect
            && p.models.is_empty()
            && !p.in_virtual =>
        {
            State::NotAsked
        }
        _ => State::Active,
    }
}

/// [`provider_state`] for one of its models: [`State::NotListed`] when the provider is
/// an up local server whose list lacks the model (an Ollama model not pulled), which a
/// request would find out with a 404.
pub fn model_state(p: &Provider, model: &str, detected: &Detected, auth: &Auth) -> State {
    let state = provider_state(p, detected, auth);
    // Without a list, whether it serves the model is not known: requests go to it.
    if let State::ListFailed(_) = state {
        return State::Active;
    }
    let up_with_list = p.detect && detected.state(&p.id).is_some_and(|s| s.up);
    let listed = || detected.serves(&p.id, model) || detected.latest_of(&p.id, model).is_some();
    if state == State::Active && up_with_list && !listed() {
        return State::NotListed;
    }
    state
}
