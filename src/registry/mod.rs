//! The resolved picture the server runs on: providers with defaults filled in, models, settings.
//!
//! `config` mirrors the file; this module merges it with the built-in providers,
//! checks everything that needs the whole picture (an endpoint naming an unknown
//! provider, a virtual model shadowing a provider id), and produces an immutable
//! [`Registry`]. It also defines [`Target`], one concrete place to send a request, so
//! that `upstream` can take one without knowing how it was chosen.
//!
//! The types and the lookups by name are here; `build.rs` builds the registry from the
//! config and checks it, and `builtin.rs` holds the sources known without configuration
//! and where their keys are read from.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config;
use crate::log::Secret;
use crate::protocol::{Protocol, Source};

mod build;
mod builtin;
mod hosts;
mod origin;
#[cfg(test)]
mod tests;

pub use builtin::{Family, builtin_ids, builtin_source, family_of, looks_like_tag, unusable_key};
pub use hosts::AllowedHosts;
pub use origin::Origin;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4356";

/// What kind of source a provider is; decides defaults for detection and credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A hosted API or aggregator reached with a key.
    Hosted,
    /// A self-hosted server on this machine, usually without a key.
    Local,
    /// A subscription reached with an OAuth login (`routeplane login`).
    Subscription,
}

impl Kind {
    /// Lower-case name for listings.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hosted => "hosted",
            Kind::Local => "local",
            Kind::Subscription => "subscription",
        }
    }
}

/// Whether, and how, a source continues a partial answer sent as a final assistant message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefill {
    /// It cannot (or may answer afresh instead, which spliced onto a partial answer is worse
    /// than an error): never asked to continue.
    No,
    /// It continues a final assistant message as is (Anthropic, llama.cpp, Ollama, …).
    Yes,
    /// vLLM: it continues only when told, with `continue_final_message: true` and
    /// `add_generation_prompt: false` in the body.
    Flags,
}

/// A model a provider declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The id clients use.
    pub id: String,
    /// The name sent upstream.
    pub upstream: String,
    /// `provider:upstream`, the label of every target for it, and the protocol it is
    /// asked in: made once here, not per request (the label was an allocation, and its
    /// free when the request left the recent list).
    label: Arc<str>,
    protocol: Protocol,
}

impl Model {
    /// `id` at `provider` (its id and protocols as they will stay), sent upstream as
    /// `upstream`.
    pub fn new(provider: &Provider, id: &str, upstream: &str) -> Model {
        Model {
            id: id.to_string(),
            upstream: upstream.to_string(),
            label: joined(&provider.id, upstream),
            protocol: provider.protocol_for(upstream),
        }
    }
}

/// OAuth endpoint overrides, resolved (empty = the provider's default).
#[derive(Debug, Clone, Default)]
pub struct AuthUrls {
    /// Authorization page.
    pub authorize_url: Option<String>,
    /// Token endpoint.
    pub token_url: Option<String>,
    /// Device user-code endpoint.
    pub device_url: Option<String>,
    /// Device polling endpoint.
    pub device_token_url: Option<String>,
    /// Page shown to the user for the device flow.
    pub device_verify_url: Option<String>,
    /// Redirect URI.
    pub redirect_uri: Option<String>,
    /// Client id.
    pub client_id: Option<String>,
}

/// A source of tokens, with every default applied.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The id used in `provider:model` and in logs.
    pub id: String,
    /// Base URL without a trailing slash.
    pub api_base: String,
    /// `api_base` split once, here, for every request sent to it and every question of
    /// where it is.
    pub base: Origin,
    /// `(glob, protocol)` pairs; first match on the upstream model name wins.
    pub protocols: Vec<(String, Protocol)>,
    /// Static credential, if any.
    pub key: Option<Secret>,
    /// Where the key came from, for listings (`api_key` or an env var name).
    pub key_source: Option<String>,
    /// The environment variables a key is read from, in order (built-in hosted
    /// providers: `ROUTEPLANE_<ID>_API_KEY`, then the vendor's); empty when none is needed.
    pub key_vars: Vec<String>,
    /// Extra upstream headers.
    pub headers: Vec<(String, String)>,
    /// Declared models.
    pub models: Vec<Model>,
    /// What kind of source this is.
    pub kind: Kind,
    /// Ask the source for its models.
    pub detect: bool,
    /// True when routeplane.yaml has a block for it.
    pub configured: bool,
    /// True when the user wrote its `api_base` (every provider of one's own; a
    /// built-in only when its block sets one): a host that does not resolve is then
    /// theirs to check.
    pub own_base: bool,
    /// True when a virtual model names one of its models: that says what it serves.
    pub in_virtual: bool,
    /// OAuth overrides (subscription providers).
    pub auth: AuthUrls,
    /// Continues a partial answer (mid-stream rescue); `prefill:` in its block.
    pub prefill: Prefill,
}

impl Provider {
    /// What kind of source it is, the one answer every listing, hint and start-up
    /// message goes by: a block of one's own at an address on this machine or its
    /// network is `Local`, as Ollama, vLLM, llama.cpp and LM Studio are. A hosted
    /// built-in pointed at one (a LiteLLM in `openai`'s place) stays `Hosted`: it still
    /// wants its key and takes its vendor's model names.
    pub fn source_kind(&self) -> Kind {
        match self.kind {
            Kind::Hosted if self.key_vars.is_empty() && self.base.this_network => Kind::Local,
            k => k,
        }
    }

    /// True for a server that runs on this machine or its network: a `Local` one, or a
    /// hosted built-in pointed at one, which answers with a local server's timing (a
    /// whole answer's first byte comes when all of it is made).
    pub fn self_hosted(&self) -> bool {
        self.source_kind() == Kind::Local || self.base.this_network
    }

    /// True for Ollama (the built-in `ollama`, at its default port or where its block
    /// says): its models are pulled with `ollama pull`, and its own listing says which
    /// only embed. A block of one's own is not taken for one: other servers answer
    /// Ollama's paths too (llama.cpp's `/api/tags`).
    pub fn is_ollama(&self) -> bool {
        self.id == "ollama"
    }

    /// True when its `api_base` has no path (`https://api.example.com`): a 404 from
    /// it is most likely the version path (`/v1`) left out.
    pub fn pathless(&self) -> bool {
        self.base.path().is_empty()
    }

    /// The protocol spoken for an upstream model name.
    pub fn protocol_for(&self, model: &str) -> Protocol {
        self.protocols
            .iter()
            .find(|(glob, _)| glob_match(glob, model))
            .map_or(Protocol::Chat, |(_, p)| *p)
    }

    /// True when the provider declares `id`. Inlined: a bare name's cascade asks every
    /// provider, and most built-ins declare nothing, which is then a length's test.
    #[inline]
    pub fn declares(&self, id: &str) -> bool {
        self.models.iter().any(|m| m.id == id)
    }
}

/// One concrete place to send a request: a provider, an upstream model, a protocol.
#[derive(Debug, Clone)]
pub struct Target {
    /// The provider.
    pub provider: Arc<Provider>,
    /// The wire format the upstream speaks for this model.
    pub protocol: Protocol,
    /// A virtual model's own first-token deadline for this endpoint.
    pub first_token: Option<Duration>,
    /// For a model named with an Ollama that does not list it, the listed name it is a
    /// letter or two from ("Did you mean `ollama:llama3.1`?"), told with its "not found".
    pub near: Option<Box<str>>,
    /// `provider:model`, made once: logs, counters and the cool-down list name it. The
    /// model sent upstream is its part after the provider's id (one allocation a
    /// target, not two). Shared: a request's attempts and its answer name their
    /// endpoint with this one allocation, not a copy each.
    label: Arc<str>,
}

impl Target {
    /// A target for `model` (a client-facing id) at `provider`.
    pub fn new(provider: &Arc<Provider>, model: &str) -> Target {
        if let Some(m) = provider.models.iter().find(|m| m.id == model) {
            return Target::declared(provider, m);
        }
        Target {
            protocol: provider.protocol_for(model),
            provider: Arc::clone(provider),
            first_token: None,
            near: None,
            label: joined(&provider.id, model),
        }
    }

    /// A target for `m`, a model `provider` declares.
    pub fn declared(provider: &Arc<Provider>, m: &Model) -> Target {
        Target {
            protocol: m.protocol,
            provider: Arc::clone(provider),
            first_token: None,
            near: None,
            label: Arc::clone(&m.label),
        }
    }

    /// What would serve a model an Ollama does not have: the listed name it is near
    /// ([`Target::near`]), else the pull. Said by a request's 404 and by `route`.
    pub fn pull_hint(&self) -> String {
        let model = self.model();
        match &self.near {
            Some(near) => format!("{near} Otherwise, run `ollama pull {model}`"),
            None => format!("run `ollama pull {model}`"),
        }
    }

    /// The model name sent upstream.
    pub fn model(&self) -> &str {
        &self.label[self.provider.id.len() + 1..]
    }

    /// This endpoint as a request's translator needs to know it.
    pub fn source(&self) -> Source<'_> {
        Source {
            provider: &self.provider.id,
            api_base: &self.provider.api_base,
            model: self.model(),
        }
    }

    /// True when this endpoint can be asked to continue a partial answer: a legacy
    /// completion always can (its prompt is raw text any source continues); otherwise
    /// its provider prefills and it is not a Responses upstream (which has no assistant
    /// prefill).
    pub fn can_continue(&self) -> bool {
        self.protocol == Protocol::Completions
            || (self.provider.prefill != Prefill::No && self.protocol != Protocol::Responses)
    }

    /// `provider:model`, as logs and messages name it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// [`Target::label`], shared rather than copied.
    pub fn shared_label(&self) -> Arc<str> {
        Arc::clone(&self.label)
    }
}

/// The providers a second login can be made for, as `ID#label`.
const LOGINS: [&str; 2] = ["anthropic", "openai-codex"];

/// The provider id of a `provider:model` label (ids never contain `:`), as `joined`
/// made it. A byte search: `split_once` was ~60 instructions a call for a colon a few
/// bytes in, and the counters take four a request.
pub fn provider_of(label: &str) -> &str {
    match label.bytes().position(|b| b == b':') {
        Some(at) => &label[..at],
        None => label,
    }
}

/// `id:model` in one allocation: put together on the stack when short, as most are
/// (through a `String` first it would be two).
fn joined(id: &str, model: &str) -> Arc<str> {
    let mut buf = [0; 128];
    let len = id.len() + 1 + model.len();
    if len > buf.len() {
        return Arc::from(format!("{id}:{model}"));
    }
    buf[..id.len()].copy_from_slice(id.as_bytes());
    buf[id.len()] = b':';
    buf[id.len() + 1..len].copy_from_slice(model.as_bytes());
    match std::str::from_utf8(&buf[..len]) {
        Ok(label) => Arc::from(label),
        // Not reached: two strings and an ASCII colon are UTF-8.
        Err(_) => Arc::from(format!("{id}:{model}")),
    }
}

/// A virtual model: a name and the endpoints it tries in order.
#[derive(Debug, Clone)]
pub struct Virtual {
    /// The name clients use.
    pub name: String,
    /// `(provider id, model)` pairs in order.
    pub endpoints: Vec<(String, String)>,
    /// Each endpoint's own first-token deadline, if it sets one (same order).
    pub first_token: Vec<Option<Duration>>,
}

/// Requests run at once by default. An LLM stream lasts minutes and holds one for its
/// whole length, so this is sized for a thousand open streams (58 MiB of memory
/// measured by `make bench`), not for CPU: past it a request waits
/// `limits.queue_wait_secs`, then gets 503 naming `workers`.
pub const DEFAULT_WORKERS: usize = 1024;

/// Everything tunable, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Let clients in without a key.
    pub skip_auth: bool,
    /// Accepted client keys.
    pub keys: Vec<Secret>,
    /// Names a request's `Host` may give besides `localhost` and IP addresses while
    /// clients need no key.
    pub allowed_hosts: AllowedHosts,
    /// Worker threads.
    pub workers: usize,
    /// Request limits.
    pub limits: config::Limits,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// First-byte (first event) timeout.
    pub first_byte_timeout: Duration,
    /// Idle timeout between stream events.
    pub idle_timeout: Duration,
    /// First generated content of a stream, when another endpoint remains.
    pub first_token_timeout: Duration,
    /// Retries of one endpoint after a quick transient failure.
    pub retries: u32,
    /// The first retry's pause (doubling, jittered).
    pub backoff: Duration,
    /// The longest `Retry-After` waited out on the same endpoint.
    pub max_retry_wait: Duration,
    /// Mid-stream continuations per request.
    pub max_rescues: u32,
    /// Cool-down after a failure.
    pub cooldown: Duration,
    /// Detection interval.
    pub detect_interval: Duration,
    /// Detection probe timeout.
    pub detect_timeout: Duration,
    /// How often hosted providers' model lists are fetched again.
    pub hosted_interval: Duration,
    /// Grace period for in-flight requests on a graceful stop.
    pub shutdown_grace: Duration,
    /// The usage ledger file; `None` when `usage.enabled` is false or no home is known.
    pub usage_path: Option<std::path::PathBuf>,
    /// Rotate the ledger past this many bytes.
    pub usage_max_bytes: u64,
    /// How log lines are written (`log.format`).
    pub log_format: crate::log::Format,
}

/// The resolved configuration: immutable once built.
#[derive(Debug)]
pub struct Registry {
    /// Configured providers in file order, then the remaining built-ins.
    pub providers: Vec<Arc<Provider>>,
    /// Virtual models in file order.
    pub virtuals: Vec<Virtual>,
    /// Tunables.
    pub settings: Settings,
    /// Where the config came from, for messages.
    pub source: String,
    /// Problems that do not stop serving but change what it does, each placed as a
    /// config error is (`path:line:col: …`): `config validate` prints them, and the
    /// server logs them at start and on every reload.
    pub warnings: Vec<String>,
}

impl Registry {
    /// Serves at `addr` (the file's `listen`, or `--listen` over it), kept off the
    /// providers: a request sent to Routeplane's own address comes back to it, and again,
    /// until every worker waits on itself. A built-in local server's default port taken
    /// by Routeplane (`--listen 127.0.0.1:8080`, llama.cpp's) is no server of that kind:
    /// that provider is left out. A block pointing there is an error.
    pub fn listen_at(&mut self, addr: std::net::SocketAddr) -> Result<(), crate::Error> {
        self.settings.listen = addr;
        // Port 0 is the system's choice, made at bind: no provider's.
        if addr.port() == 0 || !(addr.ip().is_loopback() || addr.ip().is_unspecified()) {
            return Ok(());
        }
        let own = |p: &Provider| p.base.this_machine && p.base.port == addr.port();
        if let Some(p) = self.providers.iter().find(|p| p.configured && own(p)) {
            let loaded = crate::config::Loaded {
                path: (self.source != crate::config::NO_FILE).then(|| self.source.clone().into()),
                ..Default::default()
            };
            return Err(loaded.error_at_key(
                &format!("providers.{}.api_base", p.id),
                format!(
                    "`api_base` of `{}` is Routeplane's own address ({addr}): its requests \
                     would come back to it; set the model server's address, or listen elsewhere",
                    p.id
                ),
            ));
        }
        self.providers.retain(|p| !own(p));
        Ok(())
    }

    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// The provider for an id that may carry a login label, `openai-codex#work`: the base
    /// provider under the labelled id, so the credential of that login is used.
    pub fn provider_for(&self, id: &str) -> Option<Arc<Provider>> {
        if let Some(p) = self.provider(id) {
            return Some(Arc::clone(p));
        }
        let (base, label) = id.split_once('#')?;
        if label.is_empty() {
            return None;
        }
        let mut p = Provider::clone(self.provider(base)?);
        p.id = id.to_string();
        // Their labels name the labelled id.
        p.models = p
            .models
            .iter()
            .map(|m| Model::new(&p, &m.id, &m.upstream))
            .collect();
        Some(Arc::new(p))
    }

    /// The virtual model with this name.
    pub fn virtual_model(&self, name: &str) -> Option<&Virtual> {
        self.virtuals.iter().find(|v| v.name == name)
    }
}

/// A listen address: `127.0.0.1:4356`, `[::1]:4356`, or `localhost:4356` (loopback,
/// IPv4; no other name is looked up, so what is bound never depends on DNS).
pub fn parse_listen(text: &str) -> Option<std::net::SocketAddr> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port = port.parse().ok()?;
        return Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().ok()
}

/// The port of a `listen` written as a port alone (`5000`, `:5000`), as other servers
/// take it, for the error to say the address meant.
pub fn port_alone(text: &str) -> Option<u16> {
    text.strip_prefix(':').unwrap_or(text).parse().ok()
}

/// Glob match with `*` (any run) and `?` (one character).
pub fn glob_match(glob: &str, text: &str) -> bool {
    // Runs for every target of every request: ASCII (every model name seen so far) is
    // matched in place; anything else as chars, so that `?` is one character.
    if glob.is_ascii() && text.is_ascii() {
        return glob_match_in(glob.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    glob_match_in(&g, &t, '*', '?')
}

/// The iterative wildcard match, with one backtrack point per `*`.
fn glob_match_in<T: PartialEq + Copy>(g: &[T], t: &[T], any: T, one: T) -> bool {
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && (g[gi] == one || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == any {
            star = Some((gi, ti));
            gi += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == any)
}
