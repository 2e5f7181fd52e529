//! What would serve a model when nothing does: the line `routeplane models` prints under
//! an empty table, and the start-up log when nothing can be served.

use super::Detected;
use crate::auth::{self, Auth, Subscription};
use crate::registry::{self, Kind, Provider, Registry};

/// True when no request can be served as things stand at start-up: no virtual model, no
/// model declared or detected, no hosted provider with a key (its list comes later, but
/// its vendor's names reach it now), and no subscription login. A local server serves
/// what it declares or lists, key or not.
pub fn nothing_served(registry: &Registry, detected: &Detected, auth: &Auth) -> bool {
    registry.virtuals.is_empty()
        && registry.providers.iter().all(|p| {
            p.models.is_empty()
                && detected.models(&p.id).is_empty()
                && !(p.source_kind() == Kind::Hosted && p.key.is_some())
                && !auth.logged_in(&p.id)
        })
}

/// The model `ollama pull` is shown with: the README's first example.
const FIRST_MODEL: &str = "llama3.1";

/// What `routeplane models` says when it has nothing to list: the local servers that are
/// up but list no models (and what pulls one), the keys that are not set, the local
/// servers looked for and not found, the default ports the config keeps from being
/// asked, and the logins not made.
pub fn nothing_to_list(registry: &Registry, detected: &Detected, auth: &Auth) -> String {
    let wants_key =
        |p: &Provider| p.source_kind() == Kind::Hosted && p.key.is_none() && !p.key_vars.is_empty();
    // A built-in without its key or login, also one given a block (`anthropic:` with
    // only `headers:`): that is what it lacks, not a list of models or a server to start.
    let lacks = |p: &Provider| {
        (wants_key(p) || p.source_kind() == Kind::Subscription) && !auth.logged_in(&p.id)
    };
    let keyless = || registry.providers.iter().filter(|p| wants_key(p));
    let keys: Vec<&str> = keyless()
        .filter_map(|p| p.key_vars.get(1).map(String::as_str))
        .collect();
    // Set to no key (the client's `unused` exported in this shell): "set X" alone
    // reads as wrong to whoever sees X set.
    let set: Vec<String> = keyless().filter_map(|p| auth::set_to_no_key(p)).collect();
    // Found, but refusing the key they were asked with (or without): what gives one.
    let refused: Vec<String> = (registry.providers.iter())
        .filter(|p| p.detect && auth.key_refused(p).is_some())
        .map(|p| match p.key {
            None => format!("{} wants a key: {}", p.id, auth::key_wanted(p)),
            Some(_) => format!("{} refused its key: {}", p.id, auth::key_wanted(p)),
        })
        .collect();
    // Asked for their models: up with none (an Ollama just installed), or not found.
    let (empty, local): (Vec<&str>, Vec<&str>) = registry
        .providers
        .iter()
        .filter(|p| p.detect && auth.key_refused(p).is_none() && !lacks(p))
        // Up with a list that failed: neither empty nor missing, as far as is known.
        .filter(|p| !detected.state(&p.id).is_some_and(|s| s.list_failed()))
        .map(|p| p.id.as_str())
        .partition(|id| detected.state(id).is_some_and(|s| s.up));
    // `detect.default_ports: false`, and the config names none of them.
    let unasked: Vec<&str> = registry
        .providers
        .iter()
        .filter(|p| p.source_kind() == Kind::Local && !p.configured && !p.detect)
        .map(|p| p.id.as_str())
        .collect();
    let logins: Vec<String> = registry::builtin_ids()
        .filter(|id| Subscription::of(id).is_some() && !auth.logged_in(id))
        .map(|id| format!("`routeplane login {id}`"))
        .collect();
    // A block of the user's own with no models and no listing: reachable, but unnamed.
    let unlisted: Vec<String> = registry
        .providers
        .iter()
        .filter(|p| p.configured && p.models.is_empty() && !p.detect && !lacks(p))
        .map(|p| format!("`{}`", p.id))
        .collect();
    let mut todo = Vec::new();
    let (ollama, others): (Vec<&str>, Vec<&str>) = empty.iter().partition(|id| **id == "ollama");
    if !ollama.is_empty() {
        todo.push(format!(
            "pull a model into ollama, which is up but lists none (`ollama pull {FIRST_MODEL}`)"
        ));
    }
    if !others.is_empty() {
        let (which, are) = match others.len() {
            1 => ("is", "lists"),
            _ => ("are", "list"),
        };
        todo.push(format!(
            "load a model into {}, which {which} up but {are} none",
            or_list(&others)
        ));
    }
    todo.extend(refused);
    if !unlisted.is_empty() {
        todo.push(format!(
            "give {} a `models:` list or `detect: true` (`PROVIDER:MODEL` reaches one \
             meanwhile)",
            or_list(&unlisted)
        ));
    }
    if !keys.is_empty() {
        let set: String = set.iter().map(|s| format!("; {s}")).collect();
        todo.push(format!("set a provider's key ({}{set})", or_list(&keys)));
    }
    if !local.is_empty() {
        todo.push(format!("start a local server ({})", or_list(&local)));
    }
    if !unasked.is_empty() {
        todo.push(format!(
            "name a local server under `providers:`, as `ollama: {{}}` \
             (`detect.default_ports: false` keeps the default ports of {} from being asked)",
            and_list(&unasked)
        ));
    }
    if !logins.is_empty() {
        todo.push(format!("run {}", or_list(&logins)));
    }
    let mut line = "no models are configured or detected".to_string();
    if !todo.is_empty() {
        line.push_str("; ");
        line.push_str(&todo.join(", or "));
    }
    line
}

/// `a, b or c`.
fn or_list<S: AsRef<str>>(items: &[S]) -> String {
    joined(items, "or")
}

/// `a, b and c`.
fn and_list<S: AsRef<str>>(items: &[S]) -> String {
    joined(items, "and")
}

/// `a, b WORD c`.
fn joined<S: AsRef<str>>(items: &[S], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} {word} {}", init.join(", "), last.as_ref())
        }
    }
}
