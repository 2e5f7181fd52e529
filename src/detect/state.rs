//! The state a provider or one of its models is shown in: the `providers` and `models`
//! commands, `routeplane route`, the status page and `/status.json`.

use std::time::{Duration, UNIX_EPOCH};

use super::Detected;
use crate::auth::{Auth, Subscription};
use crate::registry::{Kind, Provider};
use crate::time::utc_datetime;

/// How [`provider_state`] begins for a local server that answers but whose model list
/// failed (a 404 or 500 where its list should be, an answer that is no list): it is up,
/// and requests go to it.
pub const LIST_FAILED: &str = "up, model list failed: ";

/// A provider's state for listings and `routeplane route`: `no key`, `not logged in`,
/// `token file unreadable` (its logins unknown), `login needed`, `logged in until …`,
/// `key refused (401)` (see [`Auth::key_answered`]), `down`, `up, model list failed: …`
/// ([`LIST_FAILED`]), `not asked` (a local server neither detected nor given models), or
/// `active` (the caller adds cool-down).
pub fn provider_state(p: &Provider, detected: &Detected, auth: &Auth) -> String {
    let sub = Subscription::of(&p.id);
    if sub.is_some() && auth.logged_in(&p.id) {
        if auth.refused(&p.id).is_some() {
            return "login needed".to_string();
        }
        return match auth.expires_at(&p.id).filter(|e| *e > 0) {
            Some(at) => format!(
                "logged in until {}",
                utc_datetime(UNIX_EPOCH + Duration::from_secs(at))
            ),
            None => "logged in".to_string(),
        };
    }
    if sub.is_some() && p.key.is_none() && auth.unreadable().is_some() {
        return "token file unreadable".to_string();
    }
    if p.key.is_none() && (p.kind == Kind::Subscription || p.id.contains('#')) {
        return "not logged in".to_string();
    }
    if p.key.is_none() && !p.key_vars.is_empty() {
        return "no key".to_string();
    }
    if let Some(status) = auth.key_refused(p) {
        return format!("key refused ({status})");
    }
    match detected.state(&p.id) {
        Some(s) if p.detect && !s.up => "down".to_string(),
        Some(s) if p.detect && s.list_failed() => format!("{LIST_FAILED}{}", s.reason),
        _ if p.kind == Kind::Local && !p.detect && p.models.is_empty() => "not asked".to_string(),
        _ => "active".to_string(),
    }
}

/// The state of a model an up local server does not list.
pub const NOT_LISTED: &str = "not listed by the server";

/// [`provider_state`] for one of its models: [`NOT_LISTED`] when the provider is an up
/// local server whose list lacks the model (an Ollama model not pulled), which a
/// request would find out with a 404.
pub fn model_state(p: &Provider, model: &str, detected: &Detected, auth: &Auth) -> String {
    let state = provider_state(p, detected, auth);
    // Without a list, whether it serves the model is not known: requests go to it.
    if state.starts_with(LIST_FAILED) {
        return "active".to_string();
    }
    let up_with_list = p.detect && detected.state(&p.id).is_some_and(|s| s.up);
    let listed = || detected.serves(&p.id, model) || detected.latest_of(&p.id, model).is_some();
    if state == "active" && up_with_list && !listed() {
        return NOT_LISTED.to_string();
    }
    state
}
