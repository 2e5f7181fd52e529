//! What sources say they serve, and whether they are up: local servers and hosted lists.
//!
//! A provider with detection on (the local built-ins, or any block with `detect: true`)
//! is asked for its model list: Ollama through its native `GET /api/tags`, falling back
//! to `GET {api_base}/models`; every other server through `GET {api_base}/models`. The
//! answers live here, beside the immutable registry, and change as sources come and go.
//! A source found down is skipped by bare-name cascades but stays reachable when a
//! request pins it; the models it served are remembered, so a request for one of them
//! learns that its source is down rather than that the model does not exist. Every
//! change of state is one log line, until the server stops: from then on no probe runs
//! and none logs ([`Detected::stop`]).
//!
//! Ollama lists a model pulled without a tag as `NAME:latest` and answers to `NAME` as
//! well, so a local source that lists only `NAME:latest` serves `NAME` as that
//! ([`Detected::latest_of`]); listings keep the names as the source reports them.
//!
//! Hosted providers with a key (or a subscription login) are asked for their lists
//! too, far less often ([`list_hosted`]). A list fetched with a subscription's login
//! is `pinned_only`: those models never join a bare-name cascade, so a plain request
//! never spends a personal plan.

//!
//! Asking the sources is in `probe.rs`; the state a provider or a model is shown in
//! (listings, `routeplane providers`, `routeplane route`) in `state.rs`. What would serve a model when
//! nothing does, in `nothing.rs`.

mod nothing;
mod probe;
mod state;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::auth::{Auth, Subscription};
use crate::log;
use crate::registry::Provider;

pub use nothing::{nothing_served, nothing_to_list};
pub use probe::{list_hosted, probe, probe_all};
pub use state::{State, model_state, provider_state};

/// The most of a source's error told in one log line. Its own words are cut at 200
/// characters (`list` in probe.rs); two listings' reasons and their URLs fit.
const SAID_AT_MOST: usize = 1000;

/// How often an unknown model may trigger a probe of every source.
const ON_DEMAND_GAP: Duration = Duration::from_secs(1);

/// What detection last learned about one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceState {
    /// The source answered its last probe.
    pub up: bool,
    /// Models it listed, to chat with.
    pub models: Vec<String>,
    /// Models it listed that it says only embed (LM Studio's `"type": "embeddings"`, an
    /// Ollama model of a BERT family): left out of listings, but a request that names
    /// one still goes to the source, which answers for itself.
    pub embeddings: Vec<String>,
    /// Why it is down, when it is; while it is up, why its model list failed, if it did
    /// (it answered, so something listens there: see [`State::ListFailed`]).
    pub reason: String,
    /// The models it listed when it was last up (kept while it is down): to chat with,
    /// then to embed with, so a model of either kind is told down, not unknown.
    pub former: Vec<String>,
    /// How many of `former` are to chat with: a list that fails when it is back must not
    /// list the ones that only embed as models to chat with.
    pub former_chat: usize,
    /// When it last answered a probe.
    pub last_up: Option<SystemTime>,
    /// The list came through a subscription login: its models serve only when named
    /// with the provider (or in a virtual model), never through a bare-name cascade.
    pub pinned_only: bool,
    /// When this state was learned (its probe's answer, or its failure).
    pub checked: Option<SystemTime>,
    /// The names in `former` (while it is up, what it serves), to look one up without a
    /// pass over them; made by [`Detected::set`], empty in a state not yet set.
    pub(crate) names: Names,
}

/// Probed providers' states by id. Looked up for every local source on every bare-model
/// request, so hashed with FNV-1a: the ids come from the config, not from clients, and
/// the standard SipHash was most of a request's routing cost (callgrind).
type States = HashMap<String, SourceState, BuildHasherDefault<Fnv>>;

/// The FNV-1a hash (64 bits).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Detection results for every probed provider.
#[derive(Debug, Default)]
pub struct Detected {
    states: RwLock<States>,
    /// When an unknown model last triggered a probe.
    last_on_demand: Mutex<Option<Instant>>,
    /// The logins, once known: a provider listed with its key stops cascading the
    /// moment a login takes over its requests, not at the next list.
    auth: std::sync::OnceLock<Arc<Auth>>,
    /// The server is stopping: no probe runs, and none that was running records or logs.
    stopped: AtomicBool,
}

impl Detected {
    /// Ends detection for a stop: a probe's "is up" amid the stopping lines read as if
    /// the server were still taking requests.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// True once [`Detected::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// True unless detection found the provider down; sources never probed count as up.
    pub fn is_active(&self, p: &Provider) -> bool {
        !p.detect || self.look().is_active(p)
    }

    /// True when the provider listed `model` in its last answer.
    pub fn serves(&self, provider: &str, model: &str) -> bool {
        self.read()
            .get(provider)
            .is_some_and(|s| s.up && s.lists(model))
    }

    /// The name a bare `model` cascades to the provider under, if it may (see
    /// [`Look::cascades`]).
    pub fn cascades<'m>(
        &self,
        provider: &str,
        model: &'m str,
        local: bool,
    ) -> Option<Cow<'m, str>> {
        self.look().cascades(provider, model, local)
    }

    /// One look at every state, for a question asked of many sources at once: a bare
    /// name asks each listed source on every request, and each separate look was a
    /// write to the lock's shared count, a cache line the two cores passed back and
    /// forth.
    pub fn look(&self) -> Look<'_> {
        Look {
            states: self.read(),
            detected: self,
        }
    }

    /// True when a login now carries the provider's requests (it wins over a key).
    pub fn login_took_over(&self, provider: &str) -> bool {
        Subscription::of(provider).is_some()
            && self.auth.get().is_some_and(|a| a.logged_in(provider))
    }

    /// A login of `provider`'s subscription that is stored and not refused, under its
    /// id or a label (`openai-codex#work`); `None` until the logins are watched.
    pub fn login_of(&self, provider: &str) -> Option<String> {
        let (sub, auth) = (Subscription::of(provider)?, self.auth.get()?);
        auth.logins()
            .into_iter()
            .find(|l| Subscription::of(l) == Some(sub) && auth.refused(l).is_none())
    }

    /// Lets [`Detected::cascades`] see logins made after a list was fetched.
    pub fn watch_logins(&self, auth: &Arc<Auth>) {
        let _ = self.auth.set(Arc::clone(auth));
    }

    /// The provider whose subscription login lists `model`, if one does: a login is never
    /// spent on a bare name, so a request must name it (`openai-codex:gpt-5-codex`).
    pub fn login_listing(&self, model: &str) -> Option<String> {
        let map = self.read();
        let (id, _) = map.iter().find(|(id, s)| {
            s.up && s.lists(model) && (s.pinned_only || self.login_took_over(id))
        })?;
        Some(id.clone())
    }

    /// True when the provider's listed models may be named bare.
    pub fn bare_names(&self, provider: &str) -> bool {
        self.read().get(provider).is_none_or(|s| !s.pinned_only) && !self.login_took_over(provider)
    }

    /// When a source that is down now last served `model` (or its `:latest`), if it did.
    pub fn served_until(&self, provider: &str, model: &str) -> Option<SystemTime> {
        let map = self.read();
        let s = map.get(provider)?;
        let served = s.names.listing(model).is_some();
        (!s.up && served).then_some(s.last_up).flatten()
    }

    /// The name the source lists for `name` when that is `name:latest` and `name` itself
    /// is not listed. What it listed last while it is down, so a pinned request keeps
    /// one label (and one cool-down) whatever the source's state.
    pub fn latest_of(&self, provider: &str, name: &str) -> Option<String> {
        self.pinned(provider, name, false).flatten()
    }

    /// [`Detected::latest_of`] in a `Some`, for a name named with the source; with
    /// `near` (only an Ollama's "not found" tells it), `None` when the source is up, its
    /// list whole, and neither the name nor its `:latest` is in it. One look-up.
    pub fn pinned(&self, provider: &str, name: &str, near: bool) -> Option<Option<String>> {
        let map = self.read();
        let Some(s) = map.get(provider) else {
            return Some(None);
        };
        match s.names.listing(name) {
            None if near && s.up && !s.list_failed() => None,
            found => Some(found.flatten()),
        }
    }

    /// The models a provider listed to chat with.
    pub fn models(&self, provider: &str) -> Vec<String> {
        self.read()
            .get(provider)
            .map(|s| s.models.clone())
            .unwrap_or_default()
    }

    /// True when the provider was probed or listed its models at least once.
    pub fn known(&self, provider: &str) -> bool {
        self.read().contains_key(provider)
    }

    /// The last state of a provider, if it was probed.
    pub fn state(&self, provider: &str) -> Option<SourceState> {
        self.read().get(provider).cloned()
    }

    /// Records a probe result and logs a change of state.
    pub fn set(&self, provider: &str, mut state: SourceState) {
        let mut map = self.states.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock: a probe that answers as the stop begins says nothing.
        if self.stopped() {
            return;
        }
        let before = map.get(provider);
        state.checked = Some(SystemTime::now());
        if let Some(b) = before.filter(|_| state.list_failed()) {
            // A list that fails once does not make the models it listed unknown: they
            // keep being routed as they were.
            let (models, embeddings) = match b.up {
                true => (b.models.clone(), b.embeddings.clone()),
                false => {
                    let (chat, embed) = b.former.split_at(b.former_chat);
                    (chat.to_vec(), embed.to_vec())
                }
            };
            state.models = models;
            state.embeddings = embeddings;
        }
        if state.up {
            state.last_up = Some(SystemTime::now());
            state.former = state.served().cloned().collect();
            state.former_chat = state.models.len();
        } else if let Some(b) = before {
            // What a source served outlives its going down, until it answers again.
            state.former = b.former.clone();
            state.former_chat = b.former_chat;
            state.last_up = b.last_up;
        }
        // While it is up, `former` is what it serves now.
        state.names = Names::of(&state.former);
        let before = map.insert(provider.to_string(), state.clone());
        let changed = before.as_ref().is_none_or(|b| {
            b.up != state.up
                || b.models != state.models
                || b.embeddings != state.embeddings
                || (state.up && b.reason != state.reason)
        });
        // A source never seen and still down is not news worth a line at every start.
        let first_and_down = before.is_none() && !state.up;
        if changed && !first_and_down {
            if state.list_failed() {
                log::line(format!(
                    "source {provider} is up, but its model list failed: {}",
                    log::printable(&state.reason, SAID_AT_MOST)
                ));
            } else if state.up {
                let n = state.models.len();
                let embed = match state.embeddings.len() {
                    0 => String::new(),
                    e => format!(", and {e} to embed with, not listed"),
                };
                log::line(format!(
                    "source {provider} is up ({n} model{}{embed})",
                    if n == 1 { "" } else { "s" }
                ));
            } else {
                // The reason quotes the server (its error, a model it named): escaped, as
                // bidirectional overrides and escape sequences could forge the line.
                log::line(format!(
                    "source {provider} is down: {}",
                    log::printable(&state.reason, SAID_AT_MOST)
                ));
            }
        }
    }

    /// True at most once per second: whether an unknown model may trigger a probe now.
    pub fn may_probe_on_demand(&self) -> bool {
        let mut last = self
            .last_on_demand
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < ON_DEMAND_GAP) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, States> {
        self.states.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The states as they were at one moment: see [`Detected::look`].
pub struct Look<'d> {
    states: std::sync::RwLockReadGuard<'d, States>,
    detected: &'d Detected,
}

impl Look<'_> {
    /// True unless detection found the provider down; sources never probed count as up.
    pub fn is_active(&self, p: &Provider) -> bool {
        !p.detect || self.states.get(&p.id).is_none_or(|s| s.up)
    }

    /// True when some source is up, so that a bare name may cascade to one it did not
    /// declare: one pass over the few states instead of a look-up for each source (four
    /// a request with the built-in local servers down, ~0.5k instructions).
    pub fn any_up(&self) -> bool {
        self.states.values().any(|s| s.up)
    }

    /// The name a bare `model` cascades to the provider under, if it may: `model` when
    /// the provider, up, listed it (not through a subscription login), or, at a `local`
    /// source, the `model:latest` it listed instead ([`Detected::latest_of`]).
    pub fn cascades<'m>(
        &self,
        provider: &str,
        model: &'m str,
        local: bool,
    ) -> Option<Cow<'m, str>> {
        let s = self.states.get(provider).filter(|s| s.up)?;
        if !s.pinned_only && s.lists(model) {
            // The logins are read under this look: they never wait for the states.
            return (!self.detected.login_took_over(provider)).then_some(Cow::Borrowed(model));
        }
        let latest = s.names.listing(model).flatten().filter(|_| local)?;
        Some(Cow::Owned(latest))
    }
}

/// Every name a source listed, sorted: a bare name looks itself up in each listed
/// source's on every request, where it was a pass over the source's whole list (a
/// hosted one's hundreds), twice when it was not there. Sorted, not hashed: the sort of
/// strings is in the binary already, a map of them would add its own code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Names(Vec<String>);

impl Names {
    /// The names of `listed`.
    fn of(listed: &[String]) -> Names {
        let mut names = listed.to_vec();
        names.sort_unstable();
        Names(names)
    }

    /// True when `name` followed by `tail` is one of them.
    fn has(&self, name: &str, tail: &str) -> bool {
        let wanted = || name.bytes().chain(tail.bytes());
        self.0.binary_search_by(|m| m.bytes().cmp(wanted())).is_ok()
    }

    /// How `name` was listed: `Some(None)` as itself, `Some(Some)` only as the
    /// `name:latest` an untagged name implies (only `:latest` is implied, as Ollama
    /// implies it: `llama3.1:8b` is not `llama3.1`), `None` not at all.
    fn listing(&self, name: &str) -> Option<Option<String>> {
        if self.has(name, "") {
            return Some(None);
        }
        (!tagged(name) && self.has(name, ":latest")).then(|| Some(format!("{name}:latest")))
    }
}

/// True when `name` has a tag: after its last colon, unless that colon is a registry's
/// port (`host:5000/library/llama3.1`).
fn tagged(name: &str) -> bool {
    name.rsplit_once(':')
        .is_some_and(|(_, tag)| !tag.contains('/'))
}

impl SourceState {
    /// Every model it listed: to chat with, then to embed with.
    fn served(&self) -> impl Iterator<Item = &String> {
        self.models.iter().chain(&self.embeddings)
    }

    /// True when it is up but its model list failed.
    pub fn list_failed(&self) -> bool {
        self.up && !self.reason.is_empty()
    }

    /// True when it listed `model`, to chat or to embed with (while it is up).
    fn lists(&self, model: &str) -> bool {
        self.names.has(model, "")
    }
}

#[cfg(test)]
mod tests {
    use super::probe::{Listing, up};
    use super::*;

    /// A source up with these models to chat with.
    fn chat(models: &[&str]) -> SourceState {
        up(Listing {
            chat: models.iter().map(|m| m.to_string()).collect(),
            embeddings: Vec::new(),
        })
    }

    #[test]
    fn a_model_that_only_embeds_is_routed_but_not_listed() {
        let d = Detected::default();
        let listed = Listing {
            chat: vec!["qwen2:7b".into()],
            embeddings: vec!["nomic-embed-text:latest".into()],
        };
        d.set("ollama", up(listed));
        assert_eq!(d.models("ollama"), ["qwen2:7b"]);
        assert!(d.serves("ollama", "nomic-embed-text:latest"));
        assert_eq!(
            d.latest_of("ollama", "nomic-embed-text").as_deref(),
            Some("nomic-embed-text:latest")
        );
        assert!(d.cascades("ollama", "nomic-embed-text", true).is_some());
    }

    #[test]
    fn a_source_that_goes_down_remembers_what_it_served() {
        let d = Detected::default();
        d.set("llamacpp", chat(&["tiny"]));
        assert!(
            d.served_until("llamacpp", "tiny").is_none(),
            "up: nothing to explain"
        );
        let down = SourceState {
            reason: "connection refused".into(),
            ..SourceState::default()
        };
        d.set("llamacpp", down.clone());
        d.set("llamacpp", down);
        assert!(
            d.served_until("llamacpp", "tiny").is_some(),
            "remembered while down"
        );
        assert!(d.served_until("llamacpp", "other").is_none());
        d.set("llamacpp", chat(&[]));
        assert!(d.served_until("llamacpp", "tiny").is_none());
    }

    #[test]
    fn a_list_that_fails_while_the_server_answers_keeps_it_up_with_its_models() {
        let d = Detected::default();
        d.set("ollama", chat(&["m"]));
        let failed = SourceState {
            up: true,
            reason: "http://h/api/tags answered 500: broke".into(),
            ..SourceState::default()
        };
        d.set("ollama", failed.clone());
        let s = d.state("ollama").unwrap();
        assert!(s.up && s.list_failed());
        assert_eq!(s.models, ["m"], "the models it listed are kept");
        assert!(d.cascades("ollama", "m", true).is_some());
        // Listed again, it is plainly up.
        d.set("ollama", chat(&["m", "n"]));
        assert!(!d.state("ollama").unwrap().list_failed());
        // A first probe whose list fails knows no models, and is up all the same.
        d.set("vllm", failed);
        let s = d.state("vllm").unwrap();
        assert!(s.up && s.models.is_empty());
    }

    #[test]
    fn a_list_fetched_with_a_login_never_cascades() {
        let d = Detected::default();
        d.set(
            "anthropic",
            SourceState {
                pinned_only: true,
                ..chat(&["claude"])
            },
        );
        assert!(d.serves("anthropic", "claude"));
        assert!(d.cascades("anthropic", "claude", false).is_none());
        assert!(!d.bare_names("anthropic"));
        d.set("openai", chat(&["gpt"]));
        assert!(d.cascades("openai", "gpt", false).is_some());
    }

    #[test]
    fn only_the_latest_tag_is_implied() {
        let listed: Vec<String> = ["llama3.1:latest", "qwen2:7b", "host:5000/lib/tiny:latest"]
            .map(String::from)
            .into();
        let names = Names::of(&listed);
        let of = |name| names.listing(name).flatten();
        assert_eq!(of("llama3.1").as_deref(), Some("llama3.1:latest"));
        let registry = of("host:5000/lib/tiny");
        assert_eq!(registry.as_deref(), Some("host:5000/lib/tiny:latest"));
        assert_eq!(of("llama3.1:8b"), None, "a tag is never replaced");
        assert_eq!(of("qwen2"), None, "only `:latest` is implied");
        assert_eq!(of("llama3.1:latest"), None, "listed as written");
        let both: Vec<String> = ["m", "m:latest"].map(String::from).into();
        assert_eq!(
            Names::of(&both).listing("m"),
            Some(None),
            "a name listed as written is itself"
        );
    }

    #[test]
    fn on_demand_probes_are_rate_limited() {
        let d = Detected::default();
        assert!(d.may_probe_on_demand());
        assert!(!d.may_probe_on_demand());
    }
}
