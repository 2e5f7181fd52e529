//! `routeplane.yaml` as written: the serde types, `${VAR}` expansion, and errors with line:column.
//!
//! This module mirrors the file and nothing more; `registry.rs` turns it into the
//! resolved, immutable picture the server uses. Every struct denies unknown keys, so a
//! typo is an error naming the key, the keys expected there, and its line. Every
//! tunable has its default in the one `Default` impl of its section.
//!
//! Any string may hold `${VAR}` or `${VAR:-fallback}`, expanded from the environment
//! as the file is read. Comments are never expanded (they are gone once parsed).
//!
//! The file's shape (its sections, their defaults, `load` and `parse`) is here;
//! `expand.rs` expands `${VAR}` in strings, numbers and booleans, `sections.rs` reads
//! the maps of known keys (the file, each section, a provider, a virtual model), and
//! `explain.rs` turns the YAML parser's errors into messages that name the key and keep
//! secrets out.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::error::Error;

mod expand;
mod explain;
mod protocol;
mod sections;
#[cfg(test)]
mod tests;

pub use expand::{Unexpanded, expand};
pub use explain::nearest;

use expand::expand_text;
use explain::{bare_message, explain, lines_ended, locate, locate_in_flow};

/// The whole file.
#[derive(Debug, Default)]
pub struct Config {
    /// Address to listen on (`--listen` wins).
    pub listen: Option<Text>,
    /// Let any client in without a key; defaults to true when `keys` is empty.
    pub skip_auth: Option<bool>,
    /// Client keys accepted when `skip_auth` is false.
    pub keys: Vec<Text>,
    /// Host names besides `localhost` and IP addresses that clients without a key may
    /// call Routeplane by.
    pub allowed_hosts: Vec<Text>,
    /// Worker threads, i.e. requests served at once.
    pub workers: Option<usize>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_grace_secs: Option<f64>,
    /// Request limits.
    pub limits: Limits,
    /// Upstream timeouts.
    pub timeouts: Timeouts,
    /// Failover tuning.
    pub failover: Failover,
    /// Local-source detection tuning.
    pub detect: Detect,
    /// The usage ledger.
    pub usage: Usage,
    /// Log output.
    pub log: Log,
    /// Sources of tokens, keyed by provider id, in file order.
    pub providers: Named<Provider>,
    /// Virtual models, keyed by name, in file order.
    pub models: Named<VirtualModel>,
}

/// `limits:` — what one client may send and how many may wait.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: u64,
    /// How long a request may wait for a worker before it gets 503.
    pub queue_wait_secs: f64,
    /// Deadline for a client to send its whole request (head and body).
    pub client_timeout_secs: f64,
    /// Largest upstream response body read for a non-streaming answer (a stream
    /// collected into one counts the stream's bytes).
    pub max_response_bytes: u64,
    /// Longest single upstream stream event.
    pub max_event_bytes: usize,
    /// Idle upstream connections kept open per upstream host, for reuse, besides the
    /// one each client connection's thread keeps for its next request; 0 keeps none.
    pub idle_connections: usize,
    /// Memory for the reasoning of translated answers, kept for clients that do not give
    /// it back (opencode, aider, Gemini clients); 0 keeps none.
    pub reasoning_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 32 * 1024 * 1024,
            queue_wait_secs: 2.0,
            client_timeout_secs: 30.0,
            max_response_bytes: 64 * 1024 * 1024,
            max_event_bytes: 16 * 1024 * 1024,
            idle_connections: 32,
            reasoning_memory_bytes: 8 * 1024 * 1024,
        }
    }
}

/// `timeouts:` — how long an upstream may take at each stage.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect_secs: f64,
    /// From sending the request to the first event or the whole non-streaming body.
    pub first_byte_secs: f64,
    /// Longest silence between two stream events.
    pub idle_secs: f64,
    /// From sending a streamed request to its first generated content, when another
    /// endpoint remains to try (the last endpoint waits up to `first_byte_secs`).
    pub first_token_secs: f64,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect_secs: 10.0,
            first_byte_secs: 300.0,
            idle_secs: 120.0,
            first_token_secs: 15.0,
        }
    }
}

/// `failover:` — how failed endpoints are treated.
#[derive(Debug, Clone)]
pub struct Failover {
    /// How long an endpoint that failed with 429/5xx/network is tried last.
    pub cooldown_secs: f64,
    /// Retries of the same endpoint after a quick transient failure (429, 5xx, reset).
    pub retries: u32,
    /// The first retry's pause in milliseconds; it doubles per retry, with jitter.
    pub backoff_ms: u64,
    /// The longest `Retry-After` waited out on the same endpoint; longer ones move on.
    pub max_retry_wait_secs: f64,
    /// Streams continued after a mid-stream failure, at most, per request.
    pub max_rescues: u32,
}

impl Default for Failover {
    fn default() -> Failover {
        Failover {
            cooldown_secs: 30.0,
            retries: 1,
            backoff_ms: 250,
            max_retry_wait_secs: 5.0,
            max_rescues: 2,
        }
    }
}

/// `detect:` — asking local servers which models they serve.
#[derive(Debug, Clone)]
pub struct Detect {
    /// Seconds between background probes.
    pub interval_secs: f64,
    /// Timeout of one probe.
    pub timeout_secs: f64,
    /// Seconds between asking hosted providers (with a key or login) for their models.
    pub hosted_interval_secs: f64,
    /// Ask the built-in local servers the config does not name at their default ports.
    pub default_ports: bool,
}

impl Default for Detect {
    fn default() -> Detect {
        Detect {
            interval_secs: 30.0,
            timeout_secs: 0.5,
            hosted_interval_secs: 3600.0,
            default_ports: true,
        }
    }
}

/// `usage:` — the ledger of finished requests (`routeplane usage` reads it).
#[derive(Debug, Clone)]
pub struct Usage {
    /// Append one line per finished request.
    pub enabled: bool,
    /// The ledger file; empty means `$XDG_STATE_HOME/routeplane/usage.jsonl`.
    pub path: Option<Text>,
    /// Rotate past this many bytes, keeping one previous file.
    pub max_bytes: u64,
}

impl Default for Usage {
    fn default() -> Usage {
        Usage {
            enabled: true,
            path: None,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `log:` — how log lines are written.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// `text` (the default) or `json`: one JSON object per line, for log shippers.
    pub format: crate::log::Format,
}

/// One `providers:` block.
#[derive(Debug, Default)]
pub struct Provider {
    /// Base URL ending before the endpoint path (`…/v1`).
    pub api_base: Option<Text>,
    /// Upstream credential.
    pub api_key: Option<Text>,
    /// Wire format(s): a name, or a list of one-entry `glob: protocol` maps.
    pub api_protocol: Option<Spanned<ProtocolSpec>>,
    /// Extra headers sent upstream (e.g. OpenRouter's `HTTP-Referer`).
    pub headers: Named<Text>,
    /// Models this source serves.
    pub models: Vec<Spanned<ModelEntry>>,
    /// Ask the source which models it serves.
    pub detect: Option<bool>,
    /// OAuth endpoint overrides for subscription providers.
    pub auth: Option<AuthOverrides>,
    /// The source can continue a partial answer given as a final assistant message.
    pub prefill: Option<bool>,
}

/// `api_protocol:` as written (read in `protocol.rs`).
#[derive(Debug)]
pub enum ProtocolSpec {
    /// One protocol for every model.
    One(Text),
    /// `- "glob": protocol` entries, first match wins.
    Patterns(Vec<Named<Text>>),
}

/// A `models:` entry of a provider: `- id: NAME` (or just `- NAME`).
#[derive(Debug)]
pub enum ModelEntry {
    /// The short form: the name is both id and upstream name.
    Name(Text),
    /// The long form.
    Full {
        /// The id clients use.
        id: Text,
        /// The name sent upstream when it differs.
        provider_model_id: Option<Text>,
    },
}

/// OAuth overrides under a provider's `auth:`; tests point these at a mock.
#[derive(Debug, Default, Clone)]
pub struct AuthOverrides {
    /// Authorization page.
    pub authorize_url: Option<Text>,
    /// Token endpoint (exchange and refresh).
    pub token_url: Option<Text>,
    /// Device-code endpoint (user code request).
    pub device_url: Option<Text>,
    /// Device-code polling endpoint.
    pub device_token_url: Option<Text>,
    /// Page the user opens for the device flow.
    pub device_verify_url: Option<Text>,
    /// Redirect URI sent with the authorization request.
    pub redirect_uri: Option<Text>,
    /// OAuth client id.
    pub client_id: Option<Text>,
}

/// One virtual model.
#[derive(Debug, Default)]
pub struct VirtualModel {
    /// Endpoints in the order they are tried.
    pub endpoints: Vec<Spanned<EndpointSpec>>,
    /// How endpoints are chosen; only `priority` exists.
    pub strategy: Option<Spanned<Text>>,
}

/// A virtual model endpoint: `provider:model` or `{provider, service_id}`.
#[derive(Debug)]
pub enum EndpointSpec {
    /// `provider:model`.
    Compact(Text),
    /// The anchor's spelling.
    Full {
        /// Provider id.
        provider: Text,
        /// Model at that provider.
        service_id: Text,
        /// This endpoint's first-token deadline, overriding `timeouts.first_token_secs`.
        first_token_secs: Option<f64>,
    },
}

impl EndpointSpec {
    /// `(provider, model)`, or `None` when the compact form has no colon.
    pub fn parts(&self) -> Option<(&str, &str)> {
        match self {
            EndpointSpec::Compact(t) => t.0.split_once(':'),
            EndpointSpec::Full {
                provider,
                service_id,
                ..
            } => Some((&provider.0, &service_id.0)),
        }
    }

    /// The endpoint's own first-token deadline in seconds, if it sets one.
    pub fn first_token_secs(&self) -> Option<f64> {
        match self {
            EndpointSpec::Compact(_) => None,
            EndpointSpec::Full {
                first_token_secs, ..
            } => *first_token_secs,
        }
    }
}

/// What a provider's `models:` entry should be, as its parse error says.
const MODEL_ENTRY: &str = "a model name, or a map with `id` and `provider_model_id`";

impl<'de> Deserialize<'de> for ModelEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ModelEntry, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ModelEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(MODEL_ENTRY)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ModelEntry, E> {
                expand_text(v).map(ModelEntry::Name)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ModelEntry, A::Error> {
                let (mut id, mut upstream) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => id = Some(map.next_value::<Text>()?),
                        "provider_model_id" => upstream = map.next_value::<Option<Text>>()?,
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key `{other}` in a model entry; expected `id` or \
                                 `provider_model_id`"
                            )));
                        }
                    }
                }
                let id = id.ok_or_else(|| {
                    de::Error::custom("a model entry needs `id` (write `- id: NAME` or `- NAME`)")
                })?;
                Ok(ModelEntry::Full {
                    id,
                    provider_model_id: upstream,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for EndpointSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EndpointSpec, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EndpointSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "`provider:model` or `{provider: ID, service_id: MODEL, first_token_secs: N}`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EndpointSpec, E> {
                expand_text(v).map(EndpointSpec::Compact)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EndpointSpec, A::Error> {
                let (mut provider, mut service_id, mut first_token_secs) = (None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "provider" => provider = Some(map.next_value::<Text>()?),
                        "service_id" => service_id = Some(map.next_value::<Text>()?),
                        "first_token_secs" => first_token_secs = map.next_value::<Option<f64>>()?,
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key `{other}` in an endpoint; expected `provider`, \
                                 `service_id` and optionally `first_token_secs` (or write \
                                 `provider:model`)"
                            )));
                        }
                    }
                }
                match (provider, service_id) {
                    (Some(provider), Some(service_id)) => Ok(EndpointSpec::Full {
                        provider,
                        service_id,
                        first_token_secs,
                    }),
                    _ => Err(de::Error::custom(
                        "an endpoint map needs both `provider` and `service_id` \
                         (or write `provider:model`)",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A string from the file with `${VAR}` already expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    /// The expanded value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        let raw = String::deserialize(d)?;
        expand_text(&raw)
    }
}

/// A YAML map kept in file order, each key with its line and column.
#[derive(Debug)]
pub struct Named<T>(pub Vec<Entry<T>>);

/// One entry of a [`Named`] map.
#[derive(Debug)]
pub struct Entry<T> {
    /// The key.
    pub name: String,
    /// 1-based line of the key.
    pub line: usize,
    /// 1-based column of the key.
    pub col: usize,
    /// The value.
    pub value: T,
}

impl<T> Default for Named<T> {
    fn default() -> Named<T> {
        Named(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Named<T>, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_unit<E>(self) -> Result<Named<T>, E> {
                Ok(Named(Vec::new()))
            }
            fn visit_none<E>(self) -> Result<Named<T>, E> {
                Ok(Named(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<T>()?;
                    entries.push(Entry {
                        name: key.value,
                        line: key.referenced.line() as usize,
                        col: key.referenced.column() as usize,
                        value,
                    });
                }
                Ok(Named(entries))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// How a config that is not a file is named: the built-in providers and defaults.
pub const NO_FILE: &str = "no config file (built-in defaults)";

/// A loaded config and where it came from.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The parsed file (defaults when there was no file).
    pub config: Config,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

impl Loaded {
    /// How the file is named in messages.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or(NO_FILE.to_string(), |p| p.display().to_string())
    }

    /// A config error at the line of `key` (a dotted path, `limits.max_body_bytes`),
    /// found by reading the file again: resolved settings no longer know their place.
    pub fn error_at_key(&self, key: &str, msg: impl Into<String>) -> Error {
        let (line, col) = locate(&lines_ended(&self.text()), key);
        self.error_at(line, col, msg)
    }

    /// [`Loaded::error_at_key`] for an error about the value written there: when
    /// `${VAR}`s gave it (`api_base: ${MY_BASE}`), the message names them, so the user
    /// fixes the environment and not the file; never what they hold.
    pub fn error_at_value(&self, key: &str, msg: impl Into<String>) -> Error {
        let text = self.text();
        let text = lines_ended(&text);
        let mut msg = msg.into();
        let (line, col) = match locate(&text, key) {
            (0, _) => match locate_in_flow(&text, key) {
                // Written inline (`x: {api_base: "${X}"}`): traced to its variables alike.
                Some((line, col, value)) => {
                    msg += &expand::read_from_env(value);
                    return self.error_at(line, col, msg);
                }
                None => (0, 0),
            },
            found => found,
        };
        if let Some(written) = line.checked_sub(1).and_then(|l| text.lines().nth(l)) {
            // The value after the key, without a comment (never expanded).
            let value = written.split_once(':').map_or("", |(_, v)| v);
            let value = value.split(" #").next().unwrap_or(value);
            msg += &expand::read_from_env(value);
        }
        self.error_at(line, col, msg)
    }

    /// The file's text, read again; empty when there is none.
    fn text(&self) -> String {
        self.path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// A config error at a place in this file.
    pub fn error_at(&self, line: usize, col: usize, msg: impl Into<String>) -> Error {
        Error::Config {
            path: self.name(),
            line,
            col,
            msg: msg.into(),
        }
    }
}

/// Reads and parses a config file.
pub fn load(path: Option<&Path>) -> Result<Loaded, Error> {
    let Some(path) = path else {
        return Ok(Loaded::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read config `{}`", path.display()), e))?;
    let config = parse(&text).map_err(|(line, col, msg)| Error::Config {
        path: path.display().to_string(),
        line,
        col,
        msg,
    })?;
    Ok(Loaded {
        config,
        path: Some(path.to_path_buf()),
    })
}

/// Reads a config file for a command that sends nothing upstream (`usage`, `login`):
/// an unset `${VAR}` reads as empty, so a key kept only in the service's environment
/// does not stop them.
pub fn load_unset_as_empty(path: Option<&Path>) -> Result<Loaded, Error> {
    expand::unset_as_empty(|| load(path))
}

/// Parses config text; errors are `(line, col, message)`.
pub fn parse(text: &str) -> Result<Config, (usize, usize, String)> {
    serde_saphyr::from_str::<Config>(text).map_err(|e| {
        let text = &*lines_ended(text);
        let (line, col) = e
            .location()
            .map_or((0, 0), |l| (l.line() as usize, l.column() as usize));
        let (line, col, msg) = match explain::unclosed(text) {
            // Told at the bracket: what the parser refused first may be what it opens.
            Some((line, col, c)) => {
                let close = if c == b'[' { ']' } else { '}' };
                let msg = format!("unclosed bracket '{}': no '{close}' closes it", c as char);
                (line, col, msg)
            }
            None => (line, col, bare_message(&e.without_snippet().to_string())),
        };
        (line, col, explain(text, line, col, &msg))
    })
}
