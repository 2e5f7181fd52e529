//! What sources say they serve, and whether they are up: local servers and hosted lists.
//!
//! A provider with detection on (the local built-ins, or any block with `detect: true`)
//! is asked for its model list: Ollama through its native `GET /api/tags`, falling back
//! to `GET {api_base}/models`; every other server through `GET {api_base}/models`. The
//! answers live here, beside the immutable registry, and change as sources come and go.
//! A source found down is skipped by bare-name cascades but stays reachable when a
//! request pins it; the models it served are remembered, so a request for one of them
//! learns that its source is down rather than that the model does not exist. Every
//! change of state is one log line.
//!
//! Ollama lists a model pulled without a tag as `NAME:latest` and answers to `NAME` as
//! well, so a local source that lists only `NAME:latest` serves `NAME` as that
//! ([`Detected::latest_of`]); listings keep the names as the source reports them.
//!
//! Hosted providers with a key (or a subscription login) are asked for their lists
//! too, far less often ([`list_hosted`]). A list fetched with a subscription's login
//! is `pinned_only`: those models never join a bare-name cascade, so a plain request
//! never spends a personal plan.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::auth::{Auth, Subscription};
use crate::log;
use crate::registry::{Kind, Provider, Target};
use crate::time::utc_datetime;
use crate::upstream::{Client, Header};

/// Built-in hosted providers whose model list is asked for (with their key or login),
/// and the query their listing needs to come whole.
const HOSTED_LISTINGS: &[(&str, &str)] = &[
    ("openai", ""),
    ("openrouter", ""),
    ("mistral", ""),
    // Anthropic pages its list, 20 models by default.
    ("anthropic", "?limit=1000"),
];

/// The most bytes read from one model listing (OpenRouter's, with descriptions and
/// prices for every model, is the largest).
const LISTING_LIMIT: u64 = 16 * 1024 * 1024;

/// The most of a source's error told in one log line. Its own words are cut at 200
/// characters ([`list`]); two listings' reasons and their URLs fit.
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
    /// (it answered, so something listens there: see [`LIST_FAILED`]).
    pub reason: String,
    /// The models it listed when it was last up (kept while it is down).
    pub former: Vec<String>,
    /// When it last answered a probe.
    pub last_up: Option<SystemTime>,
    /// The list came through a subscription login: its models serve only when named
    /// with the provider (or in a virtual model), never through a bare-name cascade.
    pub pinned_only: bool,
    /// When this state was learned (its probe's answer, or its failure).
    pub checked: Option<SystemTime>,
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
}

impl Detected {
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
        let served = s.former.iter().any(|m| m == model) || latest(&s.former, model).is_some();
        (!s.up && served).then_some(s.last_up).flatten()
    }

    /// The name the source lists for `name` when that is `name:latest` and `name` itself
    /// is not listed. What it listed last while it is down, so a pinned request keeps
    /// one label (and one cool-down) whatever the source's state.
    pub fn latest_of(&self, provider: &str, name: &str) -> Option<String> {
        let map = self.read();
        let s = map.get(provider)?;
        if s.up {
            latest(s.served(), name).cloned()
        } else {
            latest(&s.former, name).cloned()
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
        let before = map.get(provider);
        state.checked = Some(SystemTime::now());
        if let Some(b) = before.filter(|_| state.list_failed()) {
            // A list that fails once does not make the models it listed unknown: they
            // keep being routed as they were.
            let (models, embeddings) = match b.up {
                true => (b.models.clone(), b.embeddings.clone()),
                false => (b.former.clone(), Vec::new()),
            };
            state.models = models;
            state.embeddings = embeddings;
        }
        if state.up {
            state.last_up = Some(SystemTime::now());
            state.former = state.served().cloned().collect();
        } else if let Some(b) = before {
            // What a source served outlives its going down, until it answers again.
            state.former = if b.up {
                b.models.clone()
            } else {
                b.former.clone()
            };
            state.last_up = b.last_up;
        }
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
        let latest = latest(s.served(), model).filter(|_| local)?;
        Some(Cow::Owned(latest.clone()))
    }
}

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

/// Asks one source for its models; with the status it refused its key with, if it did.
pub fn probe(client: &Client, p: &Provider, timeout: Duration) -> (SourceState, Option<u16>) {
    let headers: Vec<Header> = p
        .key
        .iter()
        .map(|k| {
            (
                "authorization".into(),
                crate::auth::bearer(k.expose()).into(),
            )
        })
        .collect();
    let mut last_error = String::new();
    let mut answered = false;
    // The server's own listing says which models only embed; the OpenAI-style one
    // does not.
    let native = match p.id.as_str() {
        _ if p.is_ollama() => Some("/api/tags"),
        "lmstudio" => Some("/api/v0/models"),
        _ => None,
    };
    if let Some(path) = native {
        let root = p.api_base.trim_end_matches("/v1");
        match list(client, (&format!("{root}{path}"), ""), &headers, timeout) {
            Ok(models) => return (up(models), None),
            Err(e) => {
                answered = e.answered && e.key_refused.is_none();
                last_error = e.why;
            }
        }
    }
    match list(
        client,
        (&format!("{}/models", p.api_base), ""),
        &headers,
        timeout,
    ) {
        Ok(models) => (up(models), None),
        Err(Unlisted {
            why: e,
            key_refused,
            answered: also,
        }) => {
            let state = SourceState {
                // Something listens there and answered, not with a list: it may chat
                // all the same (a server without a model list), so it is not down. A
                // refused key is told as such, the source down as before.
                up: (answered || also) && key_refused.is_none(),
                reason: if last_error.is_empty() || e == last_error {
                    e
                } else {
                    format!("{e}; {last_error}")
                },
                ..SourceState::default()
            };
            (state, key_refused)
        }
    }
}

/// The `name:latest` in `listed` when `name` has no tag and is not listed itself: only
/// `:latest` is implied, as Ollama implies it (`llama3.1:8b` is not `llama3.1`).
fn latest<'a>(listed: impl IntoIterator<Item = &'a String>, name: &str) -> Option<&'a String> {
    // A tag follows the last colon, unless that colon is a registry's port
    // (`host:5000/library/llama3.1`).
    if name
        .rsplit_once(':')
        .is_some_and(|(_, tag)| !tag.contains('/'))
    {
        return None;
    }
    let mut found = None;
    for m in listed {
        if m == name {
            return None;
        }
        if found.is_none() && m.strip_suffix(":latest") == Some(name) {
            found = Some(m);
        }
    }
    found
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

    /// True when it listed `model`, to chat or to embed with.
    fn lists(&self, model: &str) -> bool {
        self.served().any(|m| m == model)
    }
}

/// The models a listing named.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    /// Those to chat with.
    chat: Vec<String>,
    /// Those the server says only embed.
    embeddings: Vec<String>,
}

fn up(listed: Listing) -> SourceState {
    SourceState {
        up: true,
        models: listed.chat,
        embeddings: listed.embeddings,
        ..SourceState::default()
    }
}

/// Why a model listing failed.
#[derive(Debug)]
struct Unlisted {
    /// The server refused the credential sent: a 401, or a 403 that does not say the
    /// key only lacks the right to list (OpenAI's restricted keys: "Missing scopes").
    key_refused: Option<u16>,
    /// What happened, for the log and stderr.
    why: String,
    /// The server answered (with a status or a body that is no list): something listens
    /// there. False when nothing answered (refused, timed out, cut off).
    answered: bool,
}

impl Unlisted {
    /// A listing the server answered, not with a model list.
    fn answered(why: String) -> Unlisted {
        Unlisted {
            key_refused: None,
            why,
            answered: true,
        }
    }
}

/// True for a refusal that says the key may not do this one thing, not that it is no
/// key: OpenAI's restricted keys list no models ("You have insufficient permissions for
/// this operation. Missing scopes: api.model.read.") and serve requests well.
fn lacks_a_scope(said: &str) -> bool {
    let said = said.to_ascii_lowercase();
    said.contains("missing scope") || said.contains("insufficient permissions")
}

/// GETs a listing, at `url` with Routeplane's own `query` after it (`?limit=1000`), and
/// reads model names from either known shape.
fn list(
    client: &Client,
    (url, query): (&str, &str),
    headers: &[Header],
    timeout: Duration,
) -> Result<Listing, Unlisted> {
    let asked = format!("{url}{query}");
    let (status, body) = client
        .get(&asked, headers, timeout, LISTING_LIMIT)
        .map_err(|e| Unlisted {
            key_refused: None,
            why: e.to_string(),
            answered: false,
        })?;
    // Only what came from the config may hold a key; our own query is shown as it is.
    let url = format!("{}{query}", crate::log::shown_url(url));
    if !(200..300).contains(&status) {
        // A listing holds no prompt, so its error's words can be shown; never the
        // credential, should a server echo what it was sent. On one line: an error
        // page's HTML spreads over many.
        let body = crate::upstream::without_credentials(&body, headers).unwrap_or(body);
        let message = crate::protocol::upstream_error_message(&body);
        let words = message.split_whitespace().collect::<Vec<_>>().join(" ");
        // Escaped here, where the server's words come in: they reach the log, stderr
        // and the status page.
        let said = log::printable(&words, 200);
        let key_refused =
            (status == 401 || (status == 403 && !lacks_a_scope(&said))).then_some(status);
        return Err(Unlisted {
            key_refused,
            why: format!("{url} answered {status}: {said}"),
            answered: true,
        });
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|_| Unlisted::answered(format!("{url} answered something other than JSON")))?;
    model_names(&v)
        .ok_or_else(|| Unlisted::answered(format!("{url} answered without a model list")))
}

/// Model names from `{"data": [{"id"}]}` (OpenAI style, `data` may be null; LM
/// Studio's `/api/v0/models` in that shape) or `{"models": [{"name"|"model"}]}`
/// (Ollama's native listing), each sorted by what the server says it does.
fn model_names(v: &Value) -> Option<Listing> {
    let mut listed = Listing::default();
    let mut add = |name: Option<&str>, embeds: bool| {
        if let Some(name) = name {
            let to = match embeds {
                true => &mut listed.embeddings,
                false => &mut listed.chat,
            };
            to.push(name.to_string());
        }
    };
    if let Some(data) = v.get("data") {
        for m in data.as_array().map(Vec::as_slice).unwrap_or_default() {
            // LM Studio's own listing; its `/v1/models`, like the others', says nothing.
            add(m["id"].as_str(), m["type"] == "embeddings");
        }
        return Some(listed);
    }
    for m in v.get("models")?.as_array()? {
        add(m["name"].as_str().or(m["model"].as_str()), ollama_embeds(m));
    }
    Some(listed)
}

/// True when Ollama's `/api/tags` entry is a model that only embeds: its `capabilities`
/// (newer servers) say `embedding` and not `completion`; without them, its family is
/// of the BERT line (`bert`, `nomic-bert`, `jina-bert-v2`, `xlm-roberta`: Ollama names
/// the architecture from the weights' metadata), encoders that embed and cannot chat.
/// Never from the model's name, which the server only repeats.
fn ollama_embeds(m: &Value) -> bool {
    if let Some(caps) = m["capabilities"].as_array() {
        let has = |c: &str| caps.iter().any(|x| x == c);
        return has("embedding") && !has("completion");
    }
    let details = &m["details"];
    let families = details["families"].as_array().map(Vec::as_slice);
    std::iter::once(&details["family"])
        .chain(families.unwrap_or_default())
        .filter_map(Value::as_str)
        .any(|f| f.contains("bert"))
}

/// Probes every detect-enabled provider at once and records the results; returns
/// within about `timeout` however many sources there are, with the ids of the sources
/// that answered (their cool-downs may end: a server that answers is back). A server
/// that refuses the key it was sent (or its lack of one: LM Studio or vLLM started
/// with a key) is up, and says so as a hosted provider's refused key does
/// ([`Auth::key_answered`]).
pub fn probe_all(
    client: &Client,
    auth: &Arc<Auth>,
    providers: &[Arc<Provider>],
    detected: &Arc<Detected>,
    timeout: Duration,
) -> Vec<String> {
    let handles: Vec<_> = providers
        .iter()
        .filter(|p| p.detect)
        .map(|p| {
            let (client, p, detected) = (client.clone(), Arc::clone(p), Arc::clone(detected));
            let auth = Arc::clone(auth);
            thread::spawn(move || {
                let (state, refused) = probe(&client, &p, timeout);
                let up = state.up;
                match refused {
                    Some(status) => auth.key_answered(&p, status, true),
                    None if up => auth.key_answered(&p, 200, false),
                    None => {}
                }
                detected.set(&p.id, state);
                up.then(|| p.id.clone())
            })
        })
        .collect();
    handles
        .into_iter()
        .filter_map(|h| h.join().ok().flatten())
        .collect()
}

/// Why `provider`'s model list could not be fetched, logged and returned.
fn listing_failed(provider: &str, e: impl std::fmt::Display) -> String {
    let e = log::printable(&e.to_string(), SAID_AT_MOST);
    let why = format!("cannot list the models of {provider}: {e}");
    log::line(why.clone());
    why
}

/// Asks each hosted provider that has a key or a login for its model list, all at
/// once, and records the lists; a provider that cannot be asked keeps its last list.
/// Returns why each list that could not be fetched was not (also logged).
pub fn list_hosted(
    client: &Client,
    auth: &Arc<Auth>,
    providers: &[Arc<Provider>],
    detected: &Arc<Detected>,
    timeout: Duration,
) -> Vec<String> {
    let handles: Vec<_> = providers
        .iter()
        .filter_map(|p| {
            let &(_, query) = HOSTED_LISTINGS.iter().find(|(id, _)| *id == p.id)?;
            // A login is used as requests would use it (it wins over a key), but only
            // while its token is fresh: a list is not worth a refresh.
            let pinned_only = auth.logged_in(&p.id);
            if (pinned_only && !auth.token_fresh(&p.id)) || (p.key.is_none() && !pinned_only) {
                return None;
            }
            // The credential headers a request would carry (key or login, refreshed).
            let headers = match auth.headers(&Target::new(p, "")) {
                // Into the listing's own thread.
                Ok(h) => h.into_inner(),
                Err(e) => return Some(Err(listing_failed(&p.id, e))),
            };
            let url = format!("{}/models", p.api_base);
            let (client, p, detected) = (client.clone(), Arc::clone(p), Arc::clone(detected));
            let auth = Arc::clone(auth);
            Some(Ok(thread::spawn(move || {
                match list(&client, (&url, query), &headers, timeout) {
                    Ok(models) => {
                        auth.key_answered(&p, 200, false);
                        let listed = SourceState {
                            pinned_only,
                            ..up(models)
                        };
                        detected.set(&p.id, listed);
                        None
                    }
                    Err(e) => {
                        let why = listing_failed(&p.id, e.why);
                        if let Some(status) = e.key_refused {
                            auth.key_answered(&p, status, true);
                        }
                        Some(why)
                    }
                }
            })))
        })
        .collect();
    handles
        .into_iter()
        .filter_map(|h| match h {
            Ok(h) => h.join().ok().flatten(),
            Err(why) => Some(why),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A source up with these models to chat with.
    fn chat(models: &[&str]) -> SourceState {
        up(Listing {
            chat: models.iter().map(|m| m.to_string()).collect(),
            embeddings: Vec::new(),
        })
    }

    #[test]
    fn listing_shapes() {
        let cases = [
            (
                json!({"object": "list", "data": [{"id": "a"}, {"id": "b"}]}),
                Some((vec!["a", "b"], vec![])),
            ),
            (
                json!({"object": "list", "data": null}),
                Some((vec![], vec![])),
            ),
            (
                json!({"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b"}, {"model": "qwen:7b"}]}),
                Some((vec!["llama3.1:8b", "qwen:7b"], vec![])),
            ),
            // LM Studio's own listing types its models.
            (
                json!({"data": [{"id": "qwen", "type": "llm"}, {"id": "nomic", "type": "embeddings"}, {"id": "vl", "type": "vlm"}]}),
                Some((vec!["qwen", "vl"], vec!["nomic"])),
            ),
            // Ollama's: capabilities when it has them, else the family.
            (
                json!({"models": [
                    {"name": "a", "capabilities": ["embedding"], "details": {"family": "llama"}},
                    {"name": "b", "capabilities": ["completion", "tools"], "details": {"family": "bert"}},
                    {"name": "c", "details": {"family": "nomic-bert", "families": ["nomic-bert"]}},
                    {"name": "d", "details": {"family": "llama", "families": ["llama", "clip"]}},
                    {"name": "e", "details": {"family": "qwen2", "families": ["xlm-roberta"]}},
                    {"name": "nomic-embed-text:latest"},
                ]}),
                Some((
                    vec!["b", "d", "nomic-embed-text:latest"],
                    vec!["a", "c", "e"],
                )),
            ),
            (json!({"something": "else"}), None),
        ];
        let strings = |w: Vec<&str>| w.into_iter().map(String::from).collect::<Vec<_>>();
        for (v, want) in cases {
            let want = want.map(|(chat, embeddings)| Listing {
                chat: strings(chat),
                embeddings: strings(embeddings),
            });
            assert_eq!(model_names(&v), want, "{v}");
        }
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
        let of = |name| latest(&listed, name).map(String::as_str);
        assert_eq!(of("llama3.1"), Some("llama3.1:latest"));
        assert_eq!(of("host:5000/lib/tiny"), Some("host:5000/lib/tiny:latest"));
        assert_eq!(of("llama3.1:8b"), None, "a tag is never replaced");
        assert_eq!(of("qwen2"), None, "only `:latest` is implied");
        assert_eq!(of("llama3.1:latest"), None, "listed as written");
        let both: Vec<String> = ["m", "m:latest"].map(String::from).into();
        assert_eq!(
            latest(&both, "m"),
            None,
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
