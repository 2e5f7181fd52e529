//! Building the [`Registry`] from a loaded config and the environment, and the checks
//! that need the whole picture: each refusal a config error at its line, each doubt a
//! warning.

use std::sync::Arc;
use std::time::Duration;

use super::builtin::{
    BEARER_KEY, BUILTINS, Builtin, CLIENT_PLACEHOLDER, GARBLED_KEY, PLACEHOLDER_KEY, QUOTED_KEY,
    builtin_ids, from_builtin, key_text, unusable_key,
};
use super::{
    AllowedHosts, AuthUrls, DEFAULT_LISTEN, DEFAULT_WORKERS, Kind, LOGINS, Model, Origin, Prefill,
    Provider, Registry, Settings, Virtual, parse_listen,
};
use crate::config::{self, Loaded, ProtocolSpec};
use crate::error::Error;
use crate::log::Secret;
use crate::protocol::Protocol;

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
                    // LiteLLM's `ollama/llama3.1`: a provider's id before a slash.
                    let compact = match &ep.value {
                        config::EndpointSpec::Compact(t) => t.0.as_str(),
                        _ => "",
                    };
                    let slash = compact.split_once('/');
                    let eg = match slash.filter(|(p, _)| providers.iter().any(|x| x.id == *p)) {
                        Some((p, m)) => format!("here `{p}:{m}`, a colon after the provider"),
                        // Another virtual model: endpoints do not nest.
                        None if c.models.0.iter().any(|v| v.name == compact) => {
                            format!("`{compact}` is a virtual model: list its endpoints here")
                        }
                        None => "e.g. `ollama:llama3.1`".into(),
                    };
                    return Err(loaded.error_at(
                        at.0,
                        at.1,
                        format!(
                            "each endpoint of a virtual model names its provider: write \
                             `provider:model` ({eg}) or `{{provider: ID, service_id: MODEL}}`"
                        ),
                    ));
                };
                let base = p.split_once('#').map_or(p, |(b, _)| b);
                if !providers.iter().any(|x| x.id == base) {
                    // A typo of a provider, or a bare Ollama name (`llama3.1:8b`), whose
                    // first colon is its tag's (`mixtral:8x7b`, however near `mistral`).
                    let tag = super::looks_like_tag(m);
                    let near = (!tag)
                        .then(|| crate::config::nearest(base, providers.iter().map(|x| &*x.id)))
                        .flatten();
                    let hint = match near {
                        Some(id) => format!(" (did you mean `{id}:{m}`?)"),
                        // `nosuch:llama3.1` reads as a provider and a model, but a word
                        // tag (`llama3:instruct`) is Ollama's too: both are said.
                        None if !tag => format!(
                            ": no block under `providers:` defines `{base}`, and no built-in \
                             provider is named so (if `{p}:{m}` is a local model's name and \
                             tag, write its provider first: `ollama:{p}:{m}`)"
                        ),
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
                if m.trim() != m {
                    return Err(loaded.error_at(at.0, at.1, spaced(m)));
                }
                endpoints.push((p.to_string(), m.to_string()));
                let own = ep.value.first_token_secs();
                let deadline = own.map(seconds);
                if deadline == Some(None) {
                    return Err(loaded.error_at(
                        at.0,
                        at.1,
                        format!("`first_token_secs` {SECONDS}"),
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
        for p in providers.iter_mut() {
            let mut named = virtuals.iter().flat_map(|v| &v.endpoints);
            if named.any(|(e, _)| e.split('#').next() == Some(p.id.as_str())) {
                Arc::make_mut(p).in_virtual = true;
            }
        }
        for entry in c.providers.0.iter().filter(|e| e.value.detect.is_none()) {
            if BUILTINS.iter().all(|b| b.id != entry.name)
                && let Some(p) = providers.iter_mut().find(|p| p.id == entry.name)
                && p.models.is_empty()
                && p.base.this_machine
                && !p.in_virtual
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
        if !settings.skip_auth && !settings.allowed_hosts.is_empty() {
            // The names guard keyless serving only: with keys, a request by any name gets
            // in with the key, so a list written for a container's name reads as a limit
            // that is not there.
            let msg = "`allowed_hosts` applies only while clients need no key; with `keys:` \
                       required, the key decides whatever name a request is addressed to, so \
                       the names listed are never checked; remove them";
            warnings.push(loaded.error_at_key("allowed_hosts", msg).to_string());
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
        for why in [BEARER_KEY, GARBLED_KEY, QUOTED_KEY] {
            let vars: Vec<_> = garbled.iter().filter(|(_, w)| *w == why).copied().collect();
            if !vars.is_empty() {
                warnings.push(format!("{} taken as unset: {why}", shown(vars)));
            }
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
            if let Some((text, var)) = (p.key_source.as_deref() == Some("api_key"))
                .then(|| p.key.as_ref().map(|k| k.expose()))
                .flatten()
                .and_then(|k| Some((k, unbraced_var(k)?)))
            {
                let msg = format!(
                    "`api_key` of `{}` is the text `{text}`, sent as the key itself: write \
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
            if p.api_base.contains('?') {
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
            let openai_style = (p.protocols.iter())
                .all(|(_, protocol)| matches!(protocol, Protocol::Chat | Protocol::Responses));
            if openai_style && lacks_v1_on_this_network(&p.base) {
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
}

/// The refusal of a model id with a space at an end (`"llama3.1 "` in quotes): no
/// client names it so, so it would be a 404 that lists what looks like the name asked.
fn spaced(id: &str) -> String {
    format!("model `{id}` begins or ends with a space; remove it")
}

/// A comma-separated list of provider ids.
fn ids(providers: &[Arc<Provider>]) -> String {
    providers
        .iter()
        .map(|p| p.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// True for a base URL with no path at a server on this machine or its network
/// (`http://127.0.0.1:11434`), where every OpenAI-compatible server lives under `/v1`.
/// A hosted API may serve at its root (DeepSeek's `https://api.deepseek.com`), so one
/// is never questioned.
/// `api_base` written without its scheme (`localhost:11434`, as Ollama's own docs
/// write it) at a server on this machine or its network, as it should be written:
/// `http://`, and the `/v1` local servers serve OpenAI's API under when no path is
/// written. `None` for anything else (another scheme, a host elsewhere, or a key pasted
/// in the wrong place: never echoed).
fn with_scheme(base: &str) -> Option<String> {
    let host = base.split(['/', ':']).next()?;
    let name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.';
    if base.contains("://") || !host.chars().all(name) {
        return None;
    }
    let url = format!("http://{base}");
    let at = Origin::split(&url).ok().filter(|o| o.this_network)?;
    let v1 = if at.path().is_empty() { "/v1" } else { "" };
    Some(format!("{url}{v1}"))
}

pub(super) fn lacks_v1_on_this_network(base: &Origin) -> bool {
    base.path().is_empty() && base.this_network
}

/// The variable name of a value written `$NAME`, an environment variable without the
/// braces that would have read it, or written as a key variable's bare name
/// (`OPENAI_API_KEY`: upper case, ending `_KEY` or `_TOKEN`, which no vendor's key is).
fn unbraced_var(value: &str) -> Option<&str> {
    let (name, bare) = match value.strip_prefix('$') {
        Some(name) => (name, false),
        None => (value, true),
    };
    let mut chars = name.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    let named = !bare
        || (name.bytes().all(|c| !c.is_ascii_lowercase())
            && (name.ends_with("_KEY") || name.ends_with("_TOKEN")));
    (valid && named).then_some(name)
}

/// The `api_key` a provider block writes, expanded.
fn written_key<'a>(loaded: &'a Loaded, id: &str) -> Option<&'a str> {
    let block = loaded.config.providers.0.iter().find(|e| e.name == id)?;
    block.value.api_key.as_ref().map(|k| k.as_str())
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

/// The protocol an unknown `api_protocol` value was likely meant as, for its error:
/// another API's name (`openai` is two protocols, so both are named), or a value a
/// letter or two off. Never taken silently: a wrong guess sends requests the server
/// cannot read.
fn protocol_meant(name: &str) -> String {
    let lower = name.to_ascii_lowercase().replace('-', "_");
    let meant = match lower.as_str() {
        "openai" | "chat" => {
            return " (OpenAI's Chat Completions, which most servers speak, is \
                    `chat_completions`; its Responses API is `responses`)"
                .to_string();
        }
        "messages" | "claude" => "anthropic",
        "google" => "gemini",
        _ => {
            let names = Protocol::ALL
                .iter()
                .filter_map(|p| Protocol::parse(p.name()))
                .map(|p| p.name());
            match crate::config::nearest(&lower, names) {
                Some(near) => near,
                None => return String::new(),
            }
        }
    };
    format!("; did you mean `{meant}`?")
}

/// An unknown protocol's name as an error shows it: only a short word of lower-case
/// letters, `_` and `-`, as protocol names are. Anything else may be a key, pasted or
/// from a `${VAR}` (the value no longer says which), and is not shown.
fn shown_protocol(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-');
    match plain && name.len() <= 24 {
        true => format!("`{name}`"),
        false => "(not shown: it may be a key)".into(),
    }
}

/// A configured provider, over its built-in defaults when the id is a built-in one.
fn provider(
    loaded: &Loaded,
    entry: &config::Entry<config::Provider>,
    builtin: Option<&Builtin>,
) -> Result<Provider, Error> {
    let block = &entry.value;
    let written = (block.api_base.as_ref()).map(|b| b.as_str().trim_end_matches('/'));
    let mut p = match builtin {
        Some(b) => from_builtin(b),
        None => Provider {
            id: entry.name.clone(),
            api_base: String::new(),
            base: api_base(loaded, entry, written.unwrap_or_default())?,
            protocols: vec![("*".to_string(), Protocol::Chat)],
            key: None,
            key_source: None,
            key_vars: Vec::new(),
            headers: Vec::new(),
            models: Vec::new(),
            kind: Kind::Hosted,
            detect: false,
            configured: true,
            own_base: true,
            in_virtual: false,
            auth: AuthUrls::default(),
            prefill: Prefill::No,
        },
    };
    p.configured = true;
    if let Some(base) = written {
        // A block of one's own was split above; a built-in's default base is replaced.
        if builtin.is_some() {
            p.base = api_base(loaded, entry, base)?;
        }
        p.api_base = base.to_string();
        p.own_base = true;
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
                        "unknown protocol {}; expected chat_completions, anthropic, \
                         responses or gemini{}",
                        shown_protocol(name),
                        protocol_meant(name)
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
        let at = (m.referenced.line() as usize, m.referenced.column() as usize);
        if id.is_empty() {
            return Err(loaded.error_at(at.0, at.1, "a model needs a non-empty `id`"));
        }
        if id.trim() != id {
            return Err(loaded.error_at(at.0, at.1, spaced(id)));
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

/// A block's `api_base` split ([`Origin`]), or the config error that says what to write:
/// none written, no `http(s)://`, or one no request could be sent to (a user name in it,
/// a port past 65535), each at its `api_base` line.
fn api_base(
    loaded: &Loaded,
    entry: &config::Entry<config::Provider>,
    base: &str,
) -> Result<Origin, Error> {
    let id = &entry.name;
    if base.is_empty() {
        // `Ollama:` or `olama:` meant the built-in, which needs no `api_base`.
        let near = crate::config::nearest(&id.to_lowercase(), builtin_ids())
            .filter(|b| b != id)
            .map_or(String::new(), |b| {
                format!("; did you mean the built-in provider `{b}`?")
            });
        return Err(loaded.error_at(
            entry.line,
            entry.col,
            format!("provider `{id}` needs `api_base` (e.g. http://127.0.0.1:8000/v1){near}"),
        ));
    }
    let msg = if !(base.starts_with("http://") || base.starts_with("https://")) {
        format!(
            "`api_base` of `{id}` must start with http:// or https://{}",
            with_scheme(base).map_or(String::new(), |u| format!("; write `{u}`"))
        )
    } else {
        match Origin::split(base) {
            Ok(origin) => return Ok(origin),
            Err(why) => format!("`api_base` of `{id}`: {why}"),
        }
    };
    // At the `api_base` line; a block written on one line (`x: {api_base: …}`) is not
    // found by key, and keeps the block's place.
    let mut err = loaded.error_at_value(&format!("providers.{id}.api_base"), msg);
    if let Error::Config { line, col, .. } = &mut err
        && *line == 0
    {
        (*line, *col) = (entry.line, entry.col);
    }
    Err(err)
}

/// Client keys written as `${VAR}`s that all expanded to nothing.
const EMPTY_KEYS: &str = "every entry of `keys:` is empty once its ${VAR}s are expanded";

/// `allowed_hosts:`, each a host name as a browser sends it in `Host` (no scheme, port or
/// path: the port is never compared, since a page re-pointed at this machine reaches
/// whatever port it asks for), `*.domain` or `*`; with this machine's own names.
fn allowed_hosts(loaded: &Loaded) -> Result<AllowedHosts, Error> {
    let entries = loaded.config.allowed_hosts.iter().map(|t| t.as_str());
    AllowedHosts::new(entries).map_err(|msg| loaded.error_at_key("allowed_hosts", msg))
}

/// What a setting in seconds must be.
const SECONDS: &str = "must be a positive number of seconds, at most 1000000000";

/// A setting in seconds as a duration: positive, and short enough that a deadline it
/// sets (`Instant::now() + d`) cannot overflow, which panics; 10^9 s is some 31 years.
fn seconds(v: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero() && d.as_secs() <= 1_000_000_000)
}

/// Resolves the tunables, with defaults.
fn settings(loaded: &Loaded) -> Result<Settings, Error> {
    let c = &loaded.config;
    let listen_text = c.listen.as_ref().map_or(DEFAULT_LISTEN, |l| l.as_str());
    let listen = parse_listen(listen_text).ok_or_else(|| {
        let meant = super::port_alone(listen_text).map_or(String::new(), |port| {
            format!("; for port {port} on this machine only, write `listen: 127.0.0.1:{port}`")
        });
        loaded.error_at_key(
            "listen",
            format!("`listen: {listen_text}` is not an address like 127.0.0.1:4356{meant}"),
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
    let allowed_hosts = allowed_hosts(loaded)?;
    let workers = c.workers.unwrap_or(DEFAULT_WORKERS);
    if workers == 0 || workers > 16384 {
        return Err(loaded.error_at_key("workers", "`workers` must be between 1 and 16384"));
    }
    // Both limits are used as they are written; one too long to be a deadline is refused
    // here (a zero or negative one reads as none).
    for (name, v) in [
        ("limits.queue_wait_secs", c.limits.queue_wait_secs),
        ("limits.client_timeout_secs", c.limits.client_timeout_secs),
    ] {
        if v > 0.0 && seconds(v).is_none() {
            return Err(loaded.error_at_key(name, format!("`{name}` {SECONDS}")));
        }
    }
    let secs = |name: &str, v: f64| -> Result<Duration, Error> {
        seconds(v).ok_or_else(|| loaded.error_at_key(name, format!("`{name}` {SECONDS}")))
    };
    Ok(Settings {
        listen,
        skip_auth,
        keys,
        allowed_hosts,
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

/// The items whose key an earlier item already had, each with that key. A set, not a
/// list searched: a generated config can list tens of thousands of endpoints.
fn repeats<'a, T, K: Eq + std::hash::Hash + Clone + 'a>(
    items: &'a [T],
    key: impl Fn(&'a T) -> Option<K> + 'a,
) -> impl Iterator<Item = (&'a T, K)> + 'a {
    let mut seen = std::collections::HashSet::new();
    items.iter().filter_map(move |item| {
        let k = key(item)?;
        (!seen.insert(k.clone())).then_some((item, k))
    })
}
