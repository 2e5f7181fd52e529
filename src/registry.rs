//! The resolved picture the server runs on: providers with defaults filled in, models, settings.
//!
//! `config.rs` mirrors the file; this module merges it with the built-in providers,
//! checks everything that needs the whole picture (an endpoint naming an unknown
//! provider, a virtual model shadowing a provider id), and produces an immutable
//! [`Registry`]. It also defines [`Target`], one concrete place to send a request, so
//! that `upstream.rs` can take one without knowing how it was chosen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Loaded, ProtocolSpec};
use crate::error::Error;
use crate::log::Secret;
use crate::protocol::{Protocol, Source};

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

/// A provider Routeplane knows without configuration.
struct Builtin {
    id: &'static str,
    api_base: &'static str,
    protocol: Protocol,
    /// The vendor's key variable (`OPENAI_API_KEY`); `ROUTEPLANE_<ID>_API_KEY` is read
    /// before it (see [`key_vars`]). `None` for sources that need no key.
    key_env: Option<&'static str>,
    kind: Kind,
    prefill: Prefill,
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

/// The built-in providers. Local defaults use 127.0.0.1 rather than `localhost`,
/// which may resolve to ::1 first while these servers bind IPv4 by default.
const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "openai",
        api_base: "https://api.openai.com/v1",
        protocol: Protocol::Chat,
        key_env: Some("OPENAI_API_KEY"),
        kind: Kind::Hosted,
        prefill: Prefill::No,
    },
    Builtin {
        id: "openrouter",
        api_base: "https://openrouter.ai/api/v1",
        protocol: Protocol::Chat,
        key_env: Some("OPENROUTER_API_KEY"),
        kind: Kind::Hosted,
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "anthropic",
        api_base: "https://api.anthropic.com/v1",
        protocol: Protocol::Anthropic,
        key_env: Some("ANTHROPIC_API_KEY"),
        kind: Kind::Hosted,
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "gemini",
        api_base: "https://generativelanguage.googleapis.com/v1beta",
        protocol: Protocol::Gemini,
        key_env: Some("GEMINI_API_KEY"),
        kind: Kind::Hosted,
        // `contents` may end with a `model` turn, which Gemini takes as the start of its
        // answer (not promised by Google's reference; not measured here, no network).
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "mistral",
        api_base: "https://api.mistral.ai/v1",
        protocol: Protocol::Chat,
        key_env: Some("MISTRAL_API_KEY"),
        kind: Kind::Hosted,
        // Mistral continues a final assistant message only when it says `"prefix": true`,
        // which is not sent; without it the request is refused (400, `Expected last role
        // User or Tool (or Assistant with prefix True)`).
        prefill: Prefill::No,
    },
    Builtin {
        id: "openai-codex",
        api_base: "https://chatgpt.com/backend-api/codex",
        protocol: Protocol::Responses,
        key_env: None,
        kind: Kind::Subscription,
        prefill: Prefill::No,
    },
    Builtin {
        id: "ollama",
        api_base: "http://127.0.0.1:11434/v1",
        protocol: Protocol::Chat,
        key_env: None,
        kind: Kind::Local,
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "vllm",
        api_base: "http://127.0.0.1:8000/v1",
        protocol: Protocol::Chat,
        key_env: None,
        kind: Kind::Local,
        prefill: Prefill::Flags,
    },
    Builtin {
        id: "lmstudio",
        api_base: "http://127.0.0.1:1234/v1",
        protocol: Protocol::Chat,
        key_env: None,
        kind: Kind::Local,
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "llamacpp",
        api_base: "http://127.0.0.1:8080/v1",
        protocol: Protocol::Chat,
        key_env: None,
        kind: Kind::Local,
        prefill: Prefill::Yes,
    },
];

/// The ids of the built-in providers, in the order they are listed.
pub fn builtin_ids() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.id)
}

/// Model names that only a built-in hosted provider serves as they are (`gpt-4o` at
/// OpenAI), so that a 404 for one can say which credential would serve it, and a
/// provider with a key but no list of its models can still be asked for them.
#[derive(Debug)]
pub struct Family {
    /// The built-in provider that serves them.
    pub provider: &'static str,
    /// Its vendor with an article, as a sentence names it (`an OpenAI`).
    pub vendor: &'static str,
    /// The subscription whose login serves the vendor's models too, if any.
    pub login: Option<&'static str>,
    /// The prefix OpenRouter lists the vendor's models under, when it keeps their names
    /// (it spells Claude's versions with dots, so there is none for Anthropic).
    pub openrouter: Option<&'static str>,
    /// How the names begin; one not ending in `-` stands alone or before a `-`, so that
    /// `o3` takes `o3-mini` but not a local `o3de`.
    starts: &'static [&'static str],
}

/// The families of the built-in hosted providers' model names.
const FAMILIES: &[Family] = &[
    Family {
        provider: "openai",
        vendor: "an OpenAI",
        login: Some("openai-codex"),
        openrouter: Some("openai/"),
        starts: &["gpt-", "o1", "o3", "o4", "chatgpt-", "codex-"],
    },
    Family {
        provider: "anthropic",
        vendor: "an Anthropic",
        login: Some("anthropic"),
        openrouter: None,
        starts: &["claude-"],
    },
    Family {
        provider: "gemini",
        vendor: "a Gemini",
        login: None,
        openrouter: Some("google/"),
        starts: &["gemini-"],
    },
    Family {
        provider: "mistral",
        vendor: "a Mistral",
        login: None,
        // OpenRouter's `mistralai/` names are mostly not Mistral's (no `-latest` aliases,
        // `mistral-small-3.2-24b-instruct`): a hint would name models that do not exist.
        openrouter: None,
        starts: &[
            "mistral-",
            "codestral-",
            "devstral-",
            "magistral-",
            "pixtral-",
            "ministral-",
            "open-mistral-",
            "open-mixtral-",
        ],
    },
];

/// OpenRouter's names: `vendor/model`.
const OPENROUTER: Family = Family {
    provider: "openrouter",
    vendor: "an OpenRouter",
    login: None,
    openrouter: None,
    starts: &[],
};

/// The family `model`'s name puts it in, if any.
pub fn family_of(model: &str) -> Option<&'static Family> {
    // `vendor/model` (`:free` and the like allowed); not a path with a host, which is
    // Ollama's name for a model pulled from one (`hf.co/user/repo:Q8_0`).
    if model.split_once('/').is_some_and(|(vendor, name)| {
        !vendor.is_empty() && !vendor.contains('.') && !name.is_empty() && !name.contains('/')
    }) {
        return Some(&OPENROUTER);
    }
    // No vendor's API names a model with a `:tag` (a fine-tune's `ft:…` id begins
    // otherwise); Ollama names open weights so (`mistral-small3.1:24b`, `gpt-oss:20b`).
    // A local server that lists the name serves it first anyway (route.rs asks a family
    // only when nothing lists it); one not running yet must not send it to a vendor that
    // has no such model, nor make the 404 ask for a key when `ollama pull` serves it.
    if model.contains(':') {
        return None;
    }
    FAMILIES.iter().find(|f| {
        f.starts.iter().any(|start| {
            model.strip_prefix(start).is_some_and(|rest| {
                start.ends_with('-') || rest.is_empty() || rest.starts_with('-')
            })
        })
    })
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
    /// OAuth overrides (subscription providers).
    pub auth: AuthUrls,
    /// Continues a partial answer (mid-stream rescue); `prefill:` in its block.
    pub prefill: Prefill,
}

impl Provider {
    /// True for a self-hosted server (Ollama, vLLM, llama.cpp, LM Studio, or a block of
    /// one's own at an address on this machine or its network), not a hosted API.
    pub fn self_hosted(&self) -> bool {
        self.kind == Kind::Local || on_this_network(&self.api_base)
    }

    /// True for Ollama (the built-in `ollama`, at its default port or where its block
    /// says): its models are pulled with `ollama pull`, and its own listing says which
    /// only embed. A block of one's own is not taken for one: other servers answer
    /// Ollama's paths too (llama.cpp's `/api/tags`).
    pub fn is_ollama(&self) -> bool {
        self.id == "ollama"
    }

    /// The protocol spoken for an upstream model name.
    pub fn protocol_for(&self, model: &str) -> Protocol {
        self.protocols
            .iter()
            .find(|(glob, _)| glob_match(glob, model))
            .map_or(Protocol::Chat, |(_, p)| *p)
    }

    /// True when the provider declares `id`.
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
    /// `provider:model`, made once: logs, counters and the cool-down list name it. The
    /// model sent upstream is its part after the provider's id (one allocation a
    /// target, not two). Shared: a request's attempts and its answer name their
    /// endpoint with this one allocation, not a copy each.
    label: Arc<str>,
}

impl Target {
    /// A target for `model` (a client-facing id) at `provider`.
    pub fn new(provider: &Arc<Provider>, model: &str) -> Target {
        let (protocol, label) = match provider.models.iter().find(|m| m.id == model) {
            Some(m) => (m.protocol, Arc::clone(&m.label)),
            None => (provider.protocol_for(model), joined(&provider.id, model)),
        };
        Target {
            protocol,
            provider: Arc::clone(provider),
            first_token: None,
            label,
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
    /// Builds the registry from a loaded config and the environment.
    pub fn build(loaded: &Loaded) -> Result<Registry, Error> {
        let c = &loaded.config;
        let mut providers: Vec<Arc<Provider>> = Vec::new();
        for entry in &c.providers.0 {
            let id = entry.name.as_str();
            if id.is_empty() || id.contains(':') || id.contains(char::is_whitespace) {
                return Err(loaded.error_at(
                    entry.line,
                    entry.col,
                    format!("provider id `{id}` must be non-empty, without `:` or spaces"),
                ));
            }
            // `#` names a second login of a subscription (`openai-codex#work`), and `-`
            // stands for no provider in the log, the ledger and /metrics: either in
            // another id would be read as what it is not.
            let login = id
                .split_once('#')
                .is_none_or(|(base, label)| LOGINS.contains(&base) && !label.is_empty());
            if !login || id == "-" {
                return Err(loaded.error_at(
                    entry.line,
                    entry.col,
                    format!(
                        "provider id `{id}` is taken: `-` stands for no provider, and `#` \
                         names a second login (`openai-codex#work`, `anthropic#work`); \
                         rename the block, e.g. `{}`",
                        if id == "-" {
                            "local".to_string()
                        } else {
                            id.replace('#', "-")
                        }
                    ),
                ));
            }
            let builtin = BUILTINS.iter().find(|b| b.id == id);
            providers.push(Arc::new(provider(loaded, entry, builtin)?));
        }
        for b in BUILTINS {
            if !providers.iter().any(|p| p.id == b.id) {
                let mut p = from_builtin(b);
                // Port 8080 or 8000 may be another program's on this machine: it is
                // asked only while the user has not said otherwise.
                p.detect &= c.detect.default_ports;
                providers.push(Arc::new(p));
            }
        }

        let mut virtuals = Vec::new();
        for entry in &c.models.0 {
            let name = &entry.name;
            if providers.iter().any(|p| &p.id == name) {
                return Err(loaded.error_at(
                    entry.line,
                    entry.col,
                    format!("virtual model `{name}` has the same name as a provider; rename it"),
                ));
            }
            if let Some(s) = &entry.value.strategy
                && s.value.as_str() != "priority"
            {
                return Err(loaded.error_at(
                    s.referenced.line() as usize,
                    s.referenced.column() as usize,
                    format!(
                        "unknown strategy `{}`; the only strategy is `priority`",
                        s.value.as_str()
                    ),
                ));
            }
            if entry.value.endpoints.is_empty() {
                return Err(loaded.error_at(
                    entry.line,
                    entry.col,
                    format!("virtual model `{name}` lists no endpoints"),
                ));
            }
            let mut endpoints = Vec::new();
            let mut first_token = Vec::new();
            for ep in &entry.value.endpoints {
                let at = (
                    ep.referenced.line() as usize,
                    ep.referenced.column() as usize,
                );
                let Some((p, m)) = ep
                    .value
                    .parts()
                    .filter(|(p, m)| !p.is_empty() && !m.is_empty())
                else {
                    return Err(loaded.error_at(
                        at.0,
                        at.1,
                        "each endpoint of a virtual model names its provider: write \
                         `provider:model` (e.g. `ollama:llama3.1`) or \
                         `{provider: ID, service_id: MODEL}`",
                    ));
                };
                let base = p.split_once('#').map_or(p, |(b, _)| b);
                if !providers.iter().any(|x| x.id == base) {
                    // A typo of a provider, or a bare Ollama name (`llama3.1:8b`), whose
                    // first colon is its tag's.
                    let near = crate::config::nearest(base, providers.iter().map(|x| &*x.id));
                    let hint = match near {
                        Some(id) => format!(" (did you mean `{id}:{m}`?)"),
                        None => format!(
                            " (only the text before the first colon names one): write the \
                             provider first, e.g. `ollama:{p}:{m}`"
                        ),
                    };
                    return Err(loaded.error_at(
                        at.0,
                        at.1,
                        format!(
                            "endpoint names unknown provider `{p}`{hint}; known: {}",
                            ids(&providers)
                        ),
                    ));
                }
                endpoints.push((p.to_string(), m.to_string()));
                let own = ep.value.first_token_secs();
                let deadline =
                    own.map(|s| Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero()));
                if deadline == Some(None) {
                    return Err(loaded.error_at(
                        at.0,
                        at.1,
                        "`first_token_secs` must be a positive number of seconds",
                    ));
                }
                first_token.push(deadline.flatten());
            }
            virtuals.push(Virtual {
                name: name.clone(),
                endpoints,
                first_token,
            });
        }

        // A block of one's own on this machine that says nothing of `detect` and names no
        // models is a local server (an Ollama on another port): asked for them, as the
        // built-in local ones are. One a virtual model names a model of says what it
        // serves, and is not asked.
        for entry in c.providers.0.iter().filter(|e| e.value.detect.is_none()) {
            let mut named = virtuals.iter().flat_map(|v| &v.endpoints);
            if BUILTINS.iter().all(|b| b.id != entry.name)
                && let Some(p) = providers.iter_mut().find(|p| p.id == entry.name)
                && p.models.is_empty()
                && on_this_machine(&p.api_base)
                && !named.any(|(p, _)| *p == entry.name)
            {
                Arc::make_mut(p).detect = true;
            }
        }

        let settings = settings(loaded)?;
        let mut warnings = Vec::new();
        warnings.extend(written_twice(loaded).map(|e| e.to_string()));
        if settings.skip_auth && settings.keys.is_empty() && !loaded.config.keys.is_empty() {
            // Written as `- ${KEY:-}`: an empty fallback is asked for, so it is served, but
            // the file reads as if keys were required.
            warnings.push(
                loaded
                    .error_at_key(
                        "keys",
                        EMPTY_KEYS.to_string()
                            + ", so client auth is off (any client gets in); set the variable, \
                               or `skip_auth: false` to refuse to start without a key",
                    )
                    .to_string(),
            );
        }
        if settings.skip_auth && !settings.keys.is_empty() && loaded.config.skip_auth == Some(true)
        {
            // The starter file's `skip_auth: true` left in while its `keys:` were uncommented.
            let msg = "`skip_auth: true` lets every client in, so the `keys:` listed are never \
                       asked for; set `skip_auth: false` (or remove the line) to require them";
            warnings.push(loaded.error_at_key("skip_auth", msg).to_string());
        }
        let (placeholders, garbled): (Vec<_>, Vec<_>) = unusable_key_vars(&providers, loaded)
            .into_iter()
            .partition(|(_, why)| *why == PLACEHOLDER_KEY);
        let shown = |vars: Vec<(&str, _)>| {
            let vars: Vec<String> = vars.iter().map(|(v, _)| format!("`{v}`")).collect();
            vars.join(", ")
        };
        if !placeholders.is_empty() {
            warnings.push(format!(
                "`{CLIENT_PLACEHOLDER}`, the key a client sends to Routeplane, is no key for a \
                 vendor: {} taken as unset; set such variables only in the client's shell, not \
                 in the one that starts Routeplane",
                shown(placeholders)
            ));
        }
        if !garbled.is_empty() {
            warnings.push(format!("{} taken as unset: {GARBLED_KEY}", shown(garbled)));
        }
        for p in providers.iter().filter(|p| p.configured) {
            if written_key(loaded, &p.id).is_some_and(|k| key_text(k) == CLIENT_PLACEHOLDER) {
                let msg = format!(
                    "`api_key` of `{}` is `{CLIENT_PLACEHOLDER}`, the key a client sends to \
                     Routeplane, not a vendor's: taken as no key; set the variable it reads \
                     only in the client's shell, not in the one that starts Routeplane",
                    p.id
                );
                let key_at = format!("providers.{}.api_key", p.id);
                warnings.push(loaded.error_at_key(&key_at, msg).to_string());
            }
            let shown = crate::log::shown_url(&p.api_base);
            let at = format!("providers.{}.api_base", p.id);
            if let Some(var) = (p.key_source.as_deref() == Some("api_key"))
                .then(|| p.key.as_ref().and_then(|k| unbraced_var(k.expose())))
                .flatten()
            {
                let msg = format!(
                    "`api_key` of `{}` is the text `${var}`, sent as the key itself: write \
                     `${{{var}}}` to read the environment variable",
                    p.id
                );
                let key_at = format!("providers.{}.api_key", p.id);
                warnings.push(loaded.error_at_key(&key_at, msg).to_string());
            }
            if let Some(tail) = [
                "/chat/completions",
                "/completions",
                "/messages",
                "/responses",
            ]
            .iter()
            .find(|t| p.api_base.ends_with(*t))
            {
                let msg = format!(
                    "`api_base` of `{}` ends with `{tail}`, a path Routeplane adds itself \
                     after the base; end it before `{tail}`",
                    p.id
                );
                warnings.push(loaded.error_at_key(&at, msg).to_string());
            }
            let (before_query, query) = match p.api_base.split_once('?') {
                Some((base, query)) => (base, Some(query)),
                None => (p.api_base.as_str(), None),
            };
            if query.is_some() {
                // Paths are appended to the whole base, so they would land in the query.
                let msg = format!(
                    "`api_base` of `{}` has a query string ({shown}; its values are not \
                     shown, as they may be a key): Routeplane adds paths such as \
                     `/chat/completions` after the whole base, inside the query, so its \
                     requests fail; end `api_base` before the `?`, and give a key as its \
                     `api_key` or in its `headers`",
                    p.id
                );
                warnings.push(loaded.error_at_key(&at, msg).to_string());
            }
            if crate::log::shown_url(before_query) != before_query {
                // The upstream client sends no user info (see upstream/conn.rs).
                let msg = format!(
                    "`api_base` of `{}` holds a user name or password ({shown}), which is not \
                     sent, so its requests fail; give the credential as its `api_key` or in its \
                     `headers`",
                    p.id
                );
                warnings.push(loaded.error_at_key(&at, msg).to_string());
            }
            let openai_style = (p.protocols.iter())
                .all(|(_, protocol)| matches!(protocol, Protocol::Chat | Protocol::Responses));
            if openai_style && lacks_v1_on_this_network(&p.api_base) {
                let msg = format!(
                    "`api_base` of `{}` has no path ({shown}): Ollama, vLLM, LM Studio and \
                     llama.cpp serve OpenAI's API under `/v1` and answer 404 without it; \
                     write `{shown}/v1` unless this server serves at its root",
                    p.id
                );
                warnings.push(loaded.error_at_key(&at, msg).to_string());
            }
        }
        Ok(Registry {
            providers,
            virtuals,
            settings,
            source: loaded.name(),
            warnings,
        })
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

/// A comma-separated list of provider ids.
fn ids(providers: &[Arc<Provider>]) -> String {
    providers
        .iter()
        .map(|p| p.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Second places to look for a built-in's key: Google's SDKs and CLI read
/// `GOOGLE_API_KEY` when `GEMINI_API_KEY` is unset.
const KEY_ENV_FALLBACKS: &[(&str, &str)] = &[("GEMINI_API_KEY", "GOOGLE_API_KEY")];

/// The variables a built-in's key is read from, first found wins:
/// `ROUTEPLANE_<ID>_API_KEY` (upper case, `-` → `_`), then the vendor's own (`key_env`),
/// then the vendor's second name, if it has one ([`KEY_ENV_FALLBACKS`]).
fn key_vars(b: &Builtin) -> Vec<String> {
    let Some(vendor) = b.key_env else {
        return Vec::new();
    };
    let own = format!(
        "ROUTEPLANE_{}_API_KEY",
        b.id.to_ascii_uppercase().replace('-', "_")
    );
    let mut vars = vec![own, vendor.to_string()];
    vars.extend(
        KEY_ENV_FALLBACKS
            .iter()
            .filter(|(first, _)| *first == vendor)
            .map(|(_, second)| second.to_string()),
    );
    vars
}

/// True for a base URL with no path at a server on this machine or its network
/// (`http://127.0.0.1:11434`), where every OpenAI-compatible server lives under `/v1`.
/// A hosted API may serve at its root (DeepSeek's `https://api.deepseek.com`), so one
/// is never questioned.
fn lacks_v1_on_this_network(api_base: &str) -> bool {
    let rest = api_base.split_once("://").map_or(api_base, |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, path)| path);
    path.is_empty() && on_this_network(api_base)
}

/// True for a URL at a server on this machine or its network: `[::1]:8000`,
/// `127.0.0.1:8000`, `192.168.1.9`, `gpu-box.local`.
fn on_this_network(url: &str) -> bool {
    let host = host_name(url);
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".local"),
    }
}

/// True for a URL at a server on this machine: `127.0.0.1:8000`, `[::1]:8000`,
/// `localhost:8000`.
fn on_this_machine(url: &str) -> bool {
    let host = host_name(url);
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    }
}

/// A URL's host, without its port or an IPv6 address's brackets.
fn host_name(url: &str) -> &str {
    let authority = crate::log::host_of(url);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.split(':').next().unwrap_or(authority),
    }
}

/// The variable name of a value written `$NAME`, an environment variable without the
/// braces that would have read it.
fn unbraced_var(value: &str) -> Option<&str> {
    let name = value.strip_prefix('$')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

/// The key the README's client lines send (`OPENAI_API_KEY=unused`). Exported in the
/// shell that then starts Routeplane, it would be taken as Routeplane's own key for
/// the vendor, which refuses it: it is no key (see [`unusable_key`]).
const CLIENT_PLACEHOLDER: &str = "unused";

/// Why a key's text cannot be sent as a key, if it cannot: the client placeholder, or a
/// character an HTTP header cannot carry. Spaces and line ends around a key are not
/// counted (see `key_text`).
pub fn unusable_key(key: &str) -> Option<&'static str> {
    let key = key_text(key);
    if key == CLIENT_PLACEHOLDER {
        Some(PLACEHOLDER_KEY)
    } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
        Some(GARBLED_KEY)
    } else {
        None
    }
}

/// Why the client placeholder is no key.
const PLACEHOLDER_KEY: &str =
    "`unused`, the key a client sends to Routeplane, is no key for a vendor";

/// Why a key with an inner space or control character is no key.
const GARBLED_KEY: &str = "it holds something other than visible ASCII characters inside (a \
                           space, a line break, a control character), which no key does and no \
                           header carries; the value is not shown";

/// The `api_key` a provider block writes, expanded.
fn written_key<'a>(loaded: &'a Loaded, id: &str) -> Option<&'a str> {
    let block = loaded.config.providers.0.iter().find(|e| e.name == id)?;
    block.value.api_key.as_ref().map(|k| k.as_str())
}

/// A key as written or exported, without the spaces and line end around it: a key file
/// saved on Windows and read with `$(cat key.txt)` keeps its `\r`, which no header carries.
fn key_text(key: &str) -> &str {
    key.trim()
}

/// The environment variables of built-in providers that hold a key [`unusable_key`]
/// refuses, with why; not those of a block that writes its own `api_key`.
fn unusable_key_vars<'a>(
    providers: &'a [Arc<Provider>],
    loaded: &Loaded,
) -> Vec<(&'a str, &'static str)> {
    (providers.iter())
        .filter(|p| p.key.is_none() && written_key(loaded, &p.id).is_none())
        .flat_map(|p| &p.key_vars)
        .filter_map(|var| {
            let why = std::env::var(var).ok().and_then(|k| unusable_key(&k))?;
            Some((var.as_str(), why))
        })
        .collect()
}

/// A built-in provider with nothing configured; its key comes from the environment.
fn from_builtin(b: &Builtin) -> Provider {
    let key_vars = key_vars(b);
    let found = key_vars.iter().find_map(|var| {
        let value = std::env::var(var).ok()?;
        let key = key_text(&value);
        (!key.is_empty() && unusable_key(key).is_none()).then(|| (key.to_string(), var.clone()))
    });
    let (key, key_source) = found.unzip();
    Provider {
        id: b.id.to_string(),
        api_base: b.api_base.to_string(),
        protocols: vec![("*".to_string(), b.protocol)],
        key_source,
        key: key.map(Secret::new),
        key_vars,
        headers: Vec::new(),
        models: Vec::new(),
        kind: b.kind,
        detect: b.kind == Kind::Local,
        configured: false,
        auth: AuthUrls::default(),
        prefill: b.prefill,
    }
}

/// A configured provider, over its built-in defaults when the id is a built-in one.
fn provider(
    loaded: &Loaded,
    entry: &config::Entry<config::Provider>,
    builtin: Option<&Builtin>,
) -> Result<Provider, Error> {
    let block = &entry.value;
    let mut p = match builtin {
        Some(b) => from_builtin(b),
        None => Provider {
            id: entry.name.clone(),
            api_base: String::new(),
            protocols: vec![("*".to_string(), Protocol::Chat)],
            key: None,
            key_source: None,
            key_vars: Vec::new(),
            headers: Vec::new(),
            models: Vec::new(),
            kind: Kind::Hosted,
            detect: false,
            configured: true,
            auth: AuthUrls::default(),
            prefill: Prefill::No,
        },
    };
    p.configured = true;
    if let Some(base) = &block.api_base {
        p.api_base = base.as_str().trim_end_matches('/').to_string();
    }
    if p.api_base.is_empty() {
        // `Ollama:` or `olama:` meant the built-in, which needs no `api_base`.
        let near = crate::config::nearest(&p.id.to_lowercase(), builtin_ids())
            .filter(|b| *b != p.id)
            .map_or(String::new(), |b| {
                format!("; did you mean the built-in provider `{b}`?")
            });
        return Err(loaded.error_at(
            entry.line,
            entry.col,
            format!(
                "provider `{}` needs `api_base` (e.g. http://127.0.0.1:8000/v1){near}",
                p.id
            ),
        ));
    }
    if !(p.api_base.starts_with("http://") || p.api_base.starts_with("https://")) {
        return Err(loaded.error_at(
            entry.line,
            entry.col,
            format!(
                "`api_base` of `{}` must start with http:// or https://",
                p.id
            ),
        ));
    }
    let key = block.api_key.as_ref().map(|k| key_text(k.as_str()));
    if let Some(key) = key.filter(|k| !k.is_empty() && *k != CLIENT_PLACEHOLDER) {
        if let Some(why) = unusable_key(key) {
            let at = format!("providers.{}.api_key", p.id);
            return Err(loaded.error_at_key(&at, format!("`api_key` of `{}`: {why}", p.id)));
        }
        p.key = Some(Secret::new(key));
        p.key_source = Some("api_key".to_string());
    }
    if let Some(spec) = &block.api_protocol {
        let at = (
            spec.referenced.line() as usize,
            spec.referenced.column() as usize,
        );
        let parse = |name: &str| {
            Protocol::parse(name).ok_or_else(|| {
                loaded.error_at(
                    at.0,
                    at.1,
                    format!(
                        "unknown protocol `{name}`; expected chat_completions, anthropic, responses or gemini"
                    ),
                )
            })
        };
        p.protocols = match &spec.value {
            ProtocolSpec::One(name) => vec![("*".to_string(), parse(name.as_str())?)],
            ProtocolSpec::Patterns(list) => {
                let mut out = Vec::new();
                for map in list {
                    for e in &map.0 {
                        out.push((e.name.clone(), parse(e.value.as_str())?));
                    }
                }
                out
            }
        };
    }
    p.headers = block
        .headers
        .0
        .iter()
        .map(|e| (e.name.clone(), e.value.as_str().to_string()))
        .collect();
    for m in &block.models {
        let (id, upstream) = match &m.value {
            config::ModelEntry::Name(n) => (n.as_str(), n.as_str()),
            config::ModelEntry::Full {
                id,
                provider_model_id,
            } => (
                id.as_str(),
                provider_model_id
                    .as_ref()
                    .map_or(id.as_str(), |u| u.as_str()),
            ),
        };
        if id.is_empty() {
            return Err(loaded.error_at(
                m.referenced.line() as usize,
                m.referenced.column() as usize,
                "a model needs a non-empty `id`",
            ));
        }
        let model = Model::new(&p, id, upstream);
        p.models.push(model);
    }
    // Without `detect`, a block of one's own may still be asked: `Registry::build`
    // decides, once it knows the virtual models.
    if let Some(d) = block.detect {
        p.detect = d;
    }
    match block.prefill {
        Some(false) => p.prefill = Prefill::No,
        Some(true) if p.prefill == Prefill::No => p.prefill = Prefill::Yes,
        _ => {}
    }
    if let Some(a) = &block.auth {
        let s = |t: &Option<config::Text>| t.as_ref().map(|t| t.as_str().to_string());
        p.auth = AuthUrls {
            authorize_url: s(&a.authorize_url),
            token_url: s(&a.token_url),
            device_url: s(&a.device_url),
            device_token_url: s(&a.device_token_url),
            device_verify_url: s(&a.device_verify_url),
            redirect_uri: s(&a.redirect_uri),
            client_id: s(&a.client_id),
        };
    }
    Ok(p)
}

/// Client keys written as `${VAR}`s that all expanded to nothing.
const EMPTY_KEYS: &str = "every entry of `keys:` is empty once its ${VAR}s are expanded";

/// A listen address: `127.0.0.1:4356`, `[::1]:4356`, or `localhost:4356` (loopback,
/// IPv4; no other name is looked up, so what is bound never depends on DNS).
pub fn parse_listen(text: &str) -> Option<std::net::SocketAddr> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port = port.parse().ok()?;
        return Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().ok()
}

/// Resolves the tunables, with defaults.
fn settings(loaded: &Loaded) -> Result<Settings, Error> {
    let c = &loaded.config;
    let listen_text = c.listen.as_ref().map_or(DEFAULT_LISTEN, |l| l.as_str());
    let listen = parse_listen(listen_text).ok_or_else(|| {
        loaded.error_at_key(
            "listen",
            format!("`listen: {listen_text}` is not an address like 127.0.0.1:4356"),
        )
    })?;
    let keys: Vec<Secret> = c
        .keys
        .iter()
        .filter(|k| !k.as_str().is_empty())
        .map(|k| Secret::new(k.as_str()))
        .collect();
    let skip_auth = c.skip_auth.unwrap_or(keys.is_empty());
    if !skip_auth && keys.is_empty() {
        return Err(if c.keys.is_empty() {
            loaded.error_at_key(
                "skip_auth",
                "`skip_auth: false` but `keys:` lists no key; add one or set `skip_auth: true`",
            )
        } else {
            loaded.error_at_key("keys", format!("{EMPTY_KEYS}; set the variable"))
        });
    }
    let workers = c.workers.unwrap_or(DEFAULT_WORKERS);
    if workers == 0 || workers > 16384 {
        return Err(loaded.error_at_key("workers", "`workers` must be between 1 and 16384"));
    }
    let secs = |name: &str, v: f64| -> Result<Duration, Error> {
        Duration::try_from_secs_f64(v)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                loaded.error_at_key(
                    name,
                    format!("`{name}` must be a positive number of seconds"),
                )
            })
    };
    Ok(Settings {
        listen,
        skip_auth,
        keys,
        workers,
        limits: c.limits.clone(),
        connect_timeout: secs("timeouts.connect_secs", c.timeouts.connect_secs)?,
        first_byte_timeout: secs("timeouts.first_byte_secs", c.timeouts.first_byte_secs)?,
        idle_timeout: secs("timeouts.idle_secs", c.timeouts.idle_secs)?,
        first_token_timeout: secs("timeouts.first_token_secs", c.timeouts.first_token_secs)?,
        cooldown: secs("failover.cooldown_secs", c.failover.cooldown_secs)?,
        retries: c.failover.retries.min(10),
        backoff: Duration::from_millis(c.failover.backoff_ms.min(60_000)),
        max_retry_wait: Duration::try_from_secs_f64(c.failover.max_retry_wait_secs)
            .ok()
            .filter(|d| *d <= Duration::from_secs(3600))
            .ok_or_else(|| {
                loaded.error_at_key(
                    "failover.max_retry_wait_secs",
                    "`failover.max_retry_wait_secs` must be between 0 and 3600 seconds",
                )
            })?,
        max_rescues: c.failover.max_rescues.min(10),
        detect_interval: secs("detect.interval_secs", c.detect.interval_secs)?,
        detect_timeout: secs("detect.timeout_secs", c.detect.timeout_secs)?,
        hosted_interval: secs("detect.hosted_interval_secs", c.detect.hosted_interval_secs)?,
        shutdown_grace: secs("shutdown_grace_secs", c.shutdown_grace_secs.unwrap_or(10.0))?,
        usage_path: usage_path(&c.usage),
        usage_max_bytes: c.usage.max_bytes.max(4096),
        log_format: c.log.format,
    })
}

/// Where the usage ledger goes: `usage.path` (a leading `~/` is the home directory),
/// else the per-user state dir; nowhere when the ledger is off.
fn usage_path(u: &config::Usage) -> Option<std::path::PathBuf> {
    if !u.enabled {
        return None;
    }
    match u
        .path
        .as_ref()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
    {
        Some(p) => match p.strip_prefix("~/") {
            Some(rest) => crate::paths::home().map(|h| h.join(rest)),
            None => Some(std::path::PathBuf::from(p)),
        },
        None => crate::paths::usage_file(),
    }
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

/// A model declared twice under one provider, or an endpoint listed twice in one virtual
/// model: each loads, but the second says nothing the first did not (a duplicate endpoint
/// is only asked again after it failed), so it is most likely a slip for another name.
/// One warning per repeat, at its line.
fn written_twice<'a>(loaded: &'a Loaded) -> impl Iterator<Item = Error> + 'a {
    let c = &loaded.config;
    let models = c.providers.0.iter().flat_map(move |entry| {
        let id = |m: &'a serde_saphyr::Spanned<config::ModelEntry>| match &m.value {
            config::ModelEntry::Name(n) => Some(n.as_str()),
            config::ModelEntry::Full { id, .. } => Some(id.as_str()),
        };
        repeats(&entry.value.models, id).map(move |(m, id)| {
            let (line, col) = (m.referenced.line(), m.referenced.column());
            let msg = format!(
                "model `{id}` is declared twice under `providers.{}`; keep one",
                entry.name
            );
            loaded.error_at(line as usize, col as usize, msg)
        })
    });
    let endpoints = c.models.0.iter().flat_map(move |entry| {
        repeats(&entry.value.endpoints, |ep| ep.value.parts()).map(move |(ep, parts)| {
            let (line, col) = (ep.referenced.line(), ep.referenced.column());
            let msg = format!(
                "endpoint `{}:{}` is listed twice in virtual model `{}`; list it once \
                 (`failover.retries` sets how often a failed endpoint is asked again)",
                parts.0, parts.1, entry.name
            );
            loaded.error_at(line as usize, col as usize, msg)
        })
    });
    models.chain(endpoints)
}

/// The items whose key an earlier item already had, each with that key.
fn repeats<'a, T, K: PartialEq + 'a>(
    items: &'a [T],
    key: impl Fn(&'a T) -> Option<K> + 'a,
) -> impl Iterator<Item = (&'a T, K)> + 'a {
    let mut seen = Vec::new();
    items.iter().filter_map(move |item| {
        let k = key(item)?;
        if seen.contains(&k) {
            return Some((item, k));
        }
        seen.push(k);
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> Result<Registry, Error> {
        let config = config::parse(yaml).map_err(|(l, c, m)| Error::Config {
            path: "t".into(),
            line: l,
            col: c,
            msg: m,
        })?;
        Registry::build(&Loaded {
            config,
            path: Some("t.yaml".into()),
        })
    }

    #[test]
    fn a_targets_model_is_its_label_after_the_provider_id() {
        let r = build("providers:\n  ollama:\n    api_base: http://127.0.0.1:1/v1\n    models: [llama3.1:8b]\n").unwrap();
        let t = Target::new(&r.provider_for("ollama").unwrap(), "llama3.1:8b");
        assert_eq!(t.label(), "ollama:llama3.1:8b");
        assert_eq!(t.model(), "llama3.1:8b");
        // On both sides of the stack buffer's 128 bytes, and past it.
        for n in [0, 1, 120, 121, 122, 123, 500] {
            let model = "é".repeat(n / 2) + &"m".repeat(n % 2);
            let t = Target::new(&r.provider_for("ollama").unwrap(), &model);
            assert_eq!(t.label(), format!("ollama:{model}"));
            assert_eq!(t.model(), model);
            assert!(Arc::ptr_eq(&t.shared_label(), &t.clone().shared_label()));
        }
    }

    #[test]
    fn a_declared_models_targets_share_one_label_naming_the_upstream_model() {
        let r = build(
            "providers:\n  openai-codex:\n    models:\n      - id: fast\n        provider_model_id: gpt-5-mini\n",
        )
        .unwrap();
        let p = r.provider_for("openai-codex").unwrap();
        let (a, b) = (Target::new(&p, "fast"), Target::new(&p, "fast"));
        assert_eq!(a.label(), "openai-codex:gpt-5-mini");
        assert_eq!(a.model(), "gpt-5-mini");
        assert!(Arc::ptr_eq(&a.shared_label(), &b.shared_label()));
        // A login's labelled id names its own targets.
        let t = Target::new(&r.provider_for("openai-codex#work").unwrap(), "fast");
        assert_eq!(t.label(), "openai-codex#work:gpt-5-mini");
        assert_eq!(t.model(), "gpt-5-mini");
    }

    #[test]
    fn globs() {
        for (g, t, want) in [
            ("*", "anything", true),
            ("claude-*", "claude-3-5", true),
            ("claude-*", "gpt-4o", false),
            ("gpt-?o", "gpt-4o", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*-mini", "o4-mini", true),
            // `?` is one character, also outside ASCII.
            ("modèle-?", "modèle-é", true),
            ("m?", "mé", true),
            ("m?", "méé", false),
        ] {
            assert_eq!(glob_match(g, t), want, "{g} {t}");
        }
    }

    #[test]
    fn builtins_fill_what_a_block_leaves_out() {
        let r = build("providers:\n  ollama:\n    models: [llama3.1]\n").unwrap();
        let p = r.provider("ollama").unwrap();
        assert_eq!(p.api_base, "http://127.0.0.1:11434/v1");
        assert!(p.declares("llama3.1"));
        assert!(
            r.provider("vllm").is_some(),
            "unconfigured built-ins stay routable"
        );
    }

    #[test]
    fn key_variables_put_routeplane_first_and_spell_ids_in_upper_case() {
        let b = Builtin {
            id: "my-cloud",
            api_base: "https://x/v1",
            protocol: Protocol::Chat,
            key_env: Some("MY_CLOUD_KEY"),
            kind: Kind::Hosted,
            prefill: Prefill::No,
        };
        assert_eq!(
            key_vars(&b),
            ["ROUTEPLANE_MY_CLOUD_API_KEY", "MY_CLOUD_KEY"]
        );
        let local = BUILTINS.iter().find(|b| b.id == "ollama").unwrap();
        assert!(key_vars(local).is_empty(), "local sources need nothing");
    }

    #[test]
    fn mistral_is_keyed_as_the_others_and_its_api_takes_mistrals_tool_ids() {
        let b = BUILTINS.iter().find(|b| b.id == "mistral").unwrap();
        assert_eq!(
            key_vars(b),
            ["ROUTEPLANE_MISTRAL_API_KEY", "MISTRAL_API_KEY"]
        );
        let r = build("").unwrap();
        // A name of no Mistral family: the rule comes from the host alone.
        let t = Target::new(&r.provider_for("mistral").unwrap(), "any-model");
        assert_eq!(
            crate::protocol::chat::ToolIds::of(&t.source()),
            crate::protocol::chat::ToolIds::Mistral
        );
        assert!(!t.can_continue(), "no `prefix: true` is sent");
    }

    #[test]
    fn a_pathless_base_is_questioned_only_on_this_machine_or_network() {
        for (base, questioned) in [
            ("http://127.0.0.1:11434", true),
            ("http://localhost:8000", true),
            ("http://[::1]:8080", true),
            ("http://192.168.1.20:1234", true),
            ("http://gpu-box.local:11434", true),
            ("http://127.0.0.1:11434/v1", false),
            ("http://10.0.0.5:8000/openai/v1", false),
            ("https://api.deepseek.com", false),
            ("http://8.8.8.8:8000", false),
        ] {
            assert_eq!(lacks_v1_on_this_network(base), questioned, "{base}");
        }
    }

    #[test]
    fn hosted_model_names_fall_in_their_vendors_family() {
        let family = |m: &str| family_of(m).map(|f| f.provider);
        for m in [
            "gpt-4o",
            "gpt-5-mini",
            "o1",
            "o1-mini",
            "o3",
            "o3-pro",
            "o4-mini",
        ] {
            assert_eq!(family(m), Some("openai"), "{m}");
        }
        for m in ["chatgpt-4o-latest", "codex-mini-latest"] {
            assert_eq!(family(m), Some("openai"), "{m}");
        }
        assert_eq!(family("claude-sonnet-4-5"), Some("anthropic"));
        assert_eq!(family("gemini-2.5-pro"), Some("gemini"));
        for m in [
            "mistral-small-latest",
            "mistral-large-2411",
            "codestral-latest",
            "devstral-medium-2507",
            "magistral-medium-latest",
            "pixtral-large-latest",
            "ministral-8b-latest",
            "open-mistral-nemo",
            "open-mixtral-8x22b",
        ] {
            assert_eq!(family(m), Some("mistral"), "{m}");
        }
        // Ollama's names for Mistral's weights: a tag, or no `-` after the family.
        for m in [
            "mistral-small3.1:24b",
            "mistral-nemo:12b",
            "codestral-latest:22b",
            "mistral:7b",
            "mistral",
            "codestral",
            "mixtral:8x7b",
            "mistralai/codestral-2508",
        ] {
            assert_ne!(family(m), Some("mistral"), "{m}");
        }
        // Ollama's names for open weights of other vendors, and for a model pulled from
        // a host: no vendor's.
        for m in [
            "gpt-oss:20b",
            "gemini-like:7b",
            "hf.co/bartowski/Llama-3.2-1B-GGUF:Q8_0",
        ] {
            assert_eq!(family(m), None, "{m}");
        }
        assert_eq!(
            family("meta-llama/llama-3.3-70b-instruct:free"),
            Some("openrouter")
        );
        assert_eq!(family("openai/gpt-4o"), Some("openrouter"));
        assert_eq!(
            family("meta-llama/llama-3.1-8b-instruct"),
            Some("openrouter")
        );
        // Local names and names already carrying a vendor's prefix are not guessed at.
        for m in [
            "llama3.1", "o3de", "o2", "gpt4all", "claude", "/gpt-4o", "GPT-4o",
        ] {
            assert_eq!(family(m), None, "{m}");
        }
        // Every family names a built-in with key variables, and a login a built-in too.
        for f in FAMILIES {
            let b = BUILTINS.iter().find(|b| b.id == f.provider).unwrap();
            assert!(!key_vars(b).is_empty(), "{}", f.provider);
            assert!(f.login.is_none_or(|l| builtin_ids().any(|id| id == l)));
        }
    }

    #[test]
    fn protocol_patterns_first_match_wins() {
        let r = build(
            "providers:\n  mix:\n    api_base: http://x/v1\n    api_protocol:\n      - \"claude-*\": anthropic\n      - \"*\": chat_completions\n    models:\n      - id: fast\n        provider_model_id: claude-fast\n",
        )
        .unwrap();
        let p = r.provider("mix").unwrap();
        assert_eq!(p.protocol_for("claude-x"), Protocol::Anthropic);
        assert_eq!(p.protocol_for("gpt"), Protocol::Chat);
        // A declared model is asked in the protocol of its upstream name.
        let p = r.provider_for("mix").unwrap();
        assert_eq!(Target::new(&p, "fast").protocol, Protocol::Anthropic);
        assert_eq!(Target::new(&p, "claude-y").protocol, Protocol::Anthropic);
        assert_eq!(Target::new(&p, "gpt").protocol, Protocol::Chat);
    }

    #[test]
    fn load_errors_name_their_line() {
        let cases = [
            (
                "models:\n  smart:\n    endpoints:\n      - nowhere:m\n",
                "t.yaml:4:9: endpoint names unknown provider `nowhere`",
            ),
            (
                "models:\n  ollama:\n    endpoints: [vllm:x]\n",
                "t.yaml:2:3: virtual model `ollama` has the same name as a provider",
            ),
            (
                "providers:\n  x:\n    api_base: http://h/v1\n    api_protocol: grpc\n",
                "t.yaml:4:19: unknown protocol `grpc`",
            ),
            (
                "models:\n  s:\n    strategy: random\n    endpoints: [vllm:x]\n",
                "t.yaml:3:15: unknown strategy `random`",
            ),
            (
                "providers:\n  mine: {}\n",
                "t.yaml:2:3: provider `mine` needs `api_base`",
            ),
        ];
        for (yaml, want) in cases {
            let err = build(yaml).unwrap_err().to_string();
            assert!(err.starts_with(want), "{yaml}\n got: {err}");
        }
    }
}
