//! What the read-only endpoints list: the models, in OpenAI's shape and in Gemini's, and
//! the sources with their state now (for `/metrics` and `/status.json`).

use std::time::Duration;

use serde_json::json;

use super::Shared;
use crate::detect::{self, Detected, State};
use crate::registry::{Registry, provider_of};
use crate::{route, stats};

/// Each source worth showing, with its state now: configured, keyed, logged in, asked
/// for its models (a local server never found included, as down: an alert on
/// `routeplane_provider_up == 0` must see it), found up, or counted since start (the
/// unconfigured built-ins without a key, and the local ones not asked, are left out).
pub(super) fn sources(registry: &Registry, shared: &Shared) -> Vec<stats::Source> {
    let cooling = shared.env.cooldown.snapshot();
    let auth = &shared.env.auth;
    let mut out = Vec::new();
    for p in &registry.providers {
        let logged_in = auth.logged_in(&p.id);
        let found = shared.detected.state(&p.id);
        let listed = p.configured
            || p.key.is_some()
            || logged_in
            || p.detect
            || found.as_ref().is_some_and(|s| s.up)
            || shared.stats.has_source(&p.id);
        if !listed {
            continue;
        }
        let mine: Vec<&(String, Duration)> = cooling
            .iter()
            .filter(|(label, _)| provider_of(label) == p.id)
            .collect();
        let cooldown = mine.iter().map(|(_, left)| *left).max();
        let (state, up, detail) = if logged_in && auth.refused(&p.id).is_some() {
            // The refresh token was refused for good: nothing is sent there until then.
            let again = format!("run `routeplane login {}`", p.id);
            ("login needed".to_string(), Some(false), Some(again))
        } else if logged_in {
            // An expired token is refreshed by the next request: its date would read
            // as a login that ended (`until 1970-…` for one written by hand).
            let detail = match auth.expires_at(&p.id).filter(|e| *e > 0) {
                Some(e) if e <= crate::auth::oauth::now() => {
                    Some("expired, refreshed on next use".to_string())
                }
                until => until.map(|e| {
                    let at = std::time::UNIX_EPOCH + Duration::from_secs(e);
                    format!("until {}", crate::time::rfc3339(at))
                }),
            };
            ("logged in".to_string(), Some(true), detail)
        } else {
            match detect::provider_state(p, &shared.detected, auth) {
                State::Active => ("up".to_string(), Some(true), None),
                State::Down => ("down".to_string(), Some(false), found.map(|s| s.reason)),
                // It answers, so requests go to it; only its list is missing.
                State::ListFailed(why) => {
                    let why = format!("model list failed: {why}");
                    ("up".to_string(), Some(true), Some(why))
                }
                State::NotAsked => ("not asked".to_string(), None, None),
                // `openai:` pointed at a local server: how to send it no key.
                State::NoKey(true) => {
                    let hint = crate::auth::key_hint(p);
                    ("no key".to_string(), Some(false), Some(hint))
                }
                refused @ State::KeyRefused(_) => {
                    let what = crate::auth::key_wanted(p);
                    (refused.to_string(), Some(false), Some(what))
                }
                other => (other.to_string(), Some(false), None),
            }
        };
        let (state, detail) = match cooldown {
            // A cool-down is one model's: named, so that it does not read as the whole
            // provider's.
            Some(left) if up == Some(true) => {
                let secs = left.as_secs_f64().ceil();
                let shortest = mine.iter().map(|(_, l)| *l).min().unwrap_or(left);
                let detail = match mine.as_slice() {
                    [(label, _)] => format!("{} for {secs} s", &label[p.id.len() + 1..]),
                    // Cool-downs end at different times (a 503's 30 s, a 429's hour):
                    // the longest is not every model's.
                    more if left - shortest >= Duration::from_secs(1) => {
                        format!("{} models, the longest for {secs} s", more.len())
                    }
                    more => format!("{} models for {secs} s", more.len()),
                };
                ("cooling down".to_string(), Some(detail))
            }
            _ => (state, detail),
        };
        out.push(stats::Source {
            id: p.id.clone(),
            // A block of one's own at a server on this machine or its network is local.
            kind: p.source_kind().name(),
            state,
            up,
            detail: detail.unwrap_or_default(),
            cooldown,
        });
    }
    out
}

/// When a listed model was made, in Anthropic's shape: unknown, so the epoch, as
/// OpenAI's `created: 0` says.
const CREATED_AT: &str = "1970-01-01T00:00:00Z";

/// `GET /v1/models` in OpenAI's list shape, which Anthropic's fills out (each entry's
/// `type`, `display_name` and `created_at`; one page), with Google's `models` list
/// beside it: the google-genai SDK asks the same path when given a base URL (its API
/// version is `v1`).
pub(super) fn models_list(registry: &Registry, detected: &Detected) -> String {
    let routable = route::routable(registry, detected);
    let data: Vec<_> = routable
        .iter()
        .map(|(id, owner)| {
            json!({"id": id, "object": "model", "created": 0, "owned_by": owner,
                "type": "model", "display_name": id, "created_at": CREATED_AT})
        })
        .collect();
    let google: Vec<_> = routable
        .iter()
        .map(|(id, owner)| gemini_model(id, owner))
        .collect();
    let (first, last) = (routable.first(), routable.last());
    json!({"object": "list", "data": data, "models": google, "has_more": false,
        "first_id": first.map(|(id, _)| id), "last_id": last.map(|(id, _)| id)})
    .to_string()
}

/// One model in Google's shape, with OpenAI's and Anthropic's fields too (`GET
/// …/models/{id}` is one path for all three).
fn gemini_model(id: &str, owner: &str) -> serde_json::Value {
    json!({
        "name": format!("models/{id}"), "baseModelId": id, "displayName": id,
        // A virtual model's owner is Routeplane itself.
        "description": if owner == "routeplane" {
            "a virtual model of Routeplane's".to_string()
        } else {
            format!("served by {owner} through Routeplane")
        },
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        "id": id, "object": "model", "created": 0, "owned_by": owner,
        "type": "model", "display_name": id, "created_at": CREATED_AT,
    })
}

/// `GET /v1beta/models` in Google's shape; with `only`, the entry of the model it names
/// as routing reads names ([`route::listed`]), or "", for `GET /v1beta/models/{id}` and
/// `GET /v1/models/{id}`.
pub(super) fn gemini_models(
    registry: &Registry,
    detected: &Detected,
    only: Option<&str>,
) -> String {
    let only = only.map(|m| m.strip_prefix("models/").unwrap_or(m));
    match only {
        Some(id) => route::listed(registry, detected, id)
            .map(|(m, owner)| gemini_model(&m, &owner).to_string())
            .unwrap_or_default(),
        None => {
            let list: Vec<_> = route::routable(registry, detected)
                .iter()
                .map(|(m, owner)| gemini_model(m, owner))
                .collect();
            json!({"models": list}).to_string()
        }
    }
}
