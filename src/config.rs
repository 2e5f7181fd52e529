//! `routeplane.yaml` as written: the serde types, `${VAR}` expansion, and errors with line:column.
//!
//! This module mirrors the file and nothing more; `registry.rs` turns it into the
//! resolved, immutable picture the server uses. Every struct denies unknown keys, so a
//! typo is an error naming the key, the keys expected there, and its line. Every
//! tunable has its default in the one `Default` impl of its section.
//!
//! Any string may hold `${VAR}` or `${VAR:-fallback}`, expanded from the environment
//! as the file is read. Comments are never expanded (they are gone once parsed).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use crate::error::Error;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`--listen` wins).
    pub listen: Option<Text>,
    /// Let any client in without a key; defaults to true when `keys` is empty.
    #[serde(deserialize_with = "some_scalar")]
    pub skip_auth: Option<bool>,
    /// Client keys accepted when `skip_auth` is false.
    pub keys: Vec<Text>,
    /// Worker threads, i.e. requests served at once.
    #[serde(deserialize_with = "some_scalar")]
    pub workers: Option<usize>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[serde(deserialize_with = "some_scalar")]
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
    #[serde(deserialize_with = "providers")]
    pub providers: Named<Provider>,
    /// Virtual models, keyed by name, in file order.
    pub models: Named<VirtualModel>,
}

/// `limits:` — what one client may send and how many may wait.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted (413 above it).
    #[serde(deserialize_with = "scalar")]
    pub max_body_bytes: u64,
    /// How long a request may wait for a worker before it gets 503.
    #[serde(deserialize_with = "scalar")]
    pub queue_wait_secs: f64,
    /// Deadline for a client to send its whole request (head and body).
    #[serde(deserialize_with = "scalar")]
    pub client_timeout_secs: f64,
    /// Largest upstream response body read for a non-streaming answer.
    #[serde(deserialize_with = "scalar")]
    pub max_response_bytes: u64,
    /// Longest single upstream stream event.
    #[serde(deserialize_with = "scalar")]
    pub max_event_bytes: usize,
    /// Idle upstream connections kept open per upstream host, for reuse, besides the
    /// one each client connection's thread keeps for its next request; 0 keeps none.
    #[serde(deserialize_with = "scalar")]
    pub idle_connections: usize,
    /// Memory for the reasoning of translated answers, kept for clients that do not give
    /// it back (opencode, aider, Gemini clients); 0 keeps none.
    #[serde(deserialize_with = "scalar")]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// TCP + TLS connect.
    #[serde(deserialize_with = "scalar")]
    pub connect_secs: f64,
    /// From sending the request to the first event or the whole non-streaming body.
    #[serde(deserialize_with = "scalar")]
    pub first_byte_secs: f64,
    /// Longest silence between two stream events.
    #[serde(deserialize_with = "scalar")]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Failover {
    /// How long an endpoint that failed with 429/5xx/network is tried last.
    #[serde(deserialize_with = "scalar")]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Detect {
    /// Seconds between background probes.
    #[serde(deserialize_with = "scalar")]
    pub interval_secs: f64,
    /// Timeout of one probe.
    #[serde(deserialize_with = "scalar")]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` (the default) or `json`: one JSON object per line, for log shippers.
    pub format: crate::log::Format,
}

/// One `providers:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
    #[serde(deserialize_with = "some_scalar")]
    pub detect: Option<bool>,
    /// OAuth endpoint overrides for subscription providers.
    pub auth: Option<AuthOverrides>,
    /// The source can continue a partial answer given as a final assistant message.
    pub prefill: Option<bool>,
}

/// `api_protocol:` as written.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
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
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

/// Expands a string value; an unset variable is an error, for `config validate` as for
/// `serve`: a file that one passes and the other refuses helps nobody.
fn expand_text<E: de::Error>(raw: &str) -> Result<Text, E> {
    expand(raw, |name| std::env::var(name).ok())
        .map(Text)
        .map_err(unexpanded)
}

/// The error for an unset `${NAME}`, naming it only when it is [`conventional`].
fn unset<E: de::Error>(name: &str) -> E {
    if !conventional(name) {
        return E::custom(UNSET_UNSHOWN);
    }
    // An empty value counts as unset, as the shell's `${VAR:-…}` has it; said as it is.
    let state = match std::env::var_os(name) {
        Some(v) if v.is_empty() => "is empty",
        _ => "is not set",
    };
    E::custom(format!(
        "environment variable `{name}` {state} (set it, or write `${{{name}:-default}}`)"
    ))
}

/// An unset variable's message under `keys:`, with its hint to export the variable
/// only: the general hint (`${NAME:-default}`) would make a client key a default
/// written in the file, one anybody who reads it, or guesses, can send. Any other
/// message is kept.
fn client_key_unset(msg: String) -> String {
    let Some((name, rest)) = msg
        .strip_prefix("environment variable `")
        .and_then(|r| r.split_once('`'))
    else {
        return msg;
    };
    let state = rest.split(" (").next().unwrap_or(rest).trim();
    format!(
        "environment variable `{name}` {state} (export it before starting routeplane, e.g. \
         `export {name}=$(openssl rand -hex 32)`, and give clients the same value)"
    )
}

/// The error for an unset `${NAME}` whose name is not repeated. The error names its
/// place (the key holding the reference, line and column) when the parser reports it.
const UNSET_UNSHOWN: &str = "`${…}` names an environment variable that is not set; its name is \
     not shown, as it looks like a key (a variable's name is upper-case letters, digits and \
     `_`): write the variable's name between the braces, e.g. `${GEMINI_API_KEY}`, and set it \
     (`export GEMINI_API_KEY=…`)";

/// The error for a `${…}` that holds no variable name. What it holds is not repeated:
/// the likeliest text between the braces is a key pasted there.
const NOT_A_NAME: &str = "`${…}` must hold an environment variable's name (letters, digits \
     and `_`; what it holds is not shown, as it may be a key): put a key in a variable, e.g. \
     `export MY_KEY=…`, and write `${MY_KEY}`";

/// How an error of expansion is turned into a message.
fn unexpanded<E: de::Error>(e: Unexpanded) -> E {
    match e {
        Unexpanded::Unset(name) => unset(&name),
        Unexpanded::NotAName => E::custom(NOT_A_NAME),
    }
}

/// A number or a boolean in the file: written plainly, or as a string that may hold
/// `${VAR}` (`workers: ${WORKERS:-8}`), expanded and then read.
trait Scalar: Sized + std::str::FromStr {
    /// What a wrong value is told it should be.
    const WANTED: &'static str;
    /// From an integer the parser read.
    fn from_i128(v: i128) -> Option<Self>;
    /// From a float the parser read.
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    /// From a boolean the parser read.
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
}

impl Scalar for u64 {
    const WANTED: &'static str = "a whole number";
    fn from_i128(v: i128) -> Option<u64> {
        u64::try_from(v).ok()
    }
}

impl Scalar for usize {
    const WANTED: &'static str = "a whole number";
    fn from_i128(v: i128) -> Option<usize> {
        usize::try_from(v).ok()
    }
}

impl Scalar for f64 {
    const WANTED: &'static str = "a number";
    fn from_i128(v: i128) -> Option<f64> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<f64> {
        Some(v)
    }
}

impl Scalar for bool {
    const WANTED: &'static str = "true or false";
    fn from_i128(_: i128) -> Option<bool> {
        None
    }
    fn from_bool(v: bool) -> Option<bool> {
        Some(v)
    }
}

/// Reads a [`Scalar`] field.
fn scalar<'de, D: Deserializer<'de>, T: Scalar>(d: D) -> Result<T, D::Error> {
    struct V<T>(std::marker::PhantomData<T>);
    fn wrong<T: Scalar, E: de::Error>(got: impl fmt::Display) -> E {
        E::custom(format!("expected {}, got {got}", T::WANTED))
    }
    impl<'de, T: Scalar> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::WANTED)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
            T::from_bool(v).ok_or_else(|| wrong::<T, E>(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            T::from_i128(v.into()).ok_or_else(|| wrong::<T, E>(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            T::from_i128(v.into()).ok_or_else(|| wrong::<T, E>(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            T::from_f64(v).ok_or_else(|| wrong::<T, E>(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            let expanded = expand(v, |name| std::env::var(name).ok()).map_err(unexpanded)?;
            expanded.trim().parse::<T>().map_err(|_| {
                if expanded == v {
                    wrong::<T, E>(serde_json::Value::from(v))
                } else {
                    // What a variable holds may be a key put in the wrong place: only
                    // what is written in the file is shown.
                    wrong::<T, E>(format!(
                        "what {} gives (not shown: it comes from the environment)",
                        serde_json::Value::from(v)
                    ))
                }
            })
        }
        fn visit_unit<E: de::Error>(self) -> Result<T, E> {
            Err(wrong::<T, E>("nothing"))
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// Reads an optional [`Scalar`] field (a missing key is `None` through `default`).
fn some_scalar<'de, D: Deserializer<'de>, T: Scalar>(d: D) -> Result<Option<T>, D::Error> {
    scalar(d).map(Some)
}

/// Why a string could not be expanded.
#[derive(Debug, PartialEq, Eq)]
pub enum Unexpanded {
    /// `${NAME}` without a fallback, and `NAME` is unset or empty.
    Unset(String),
    /// `${…}` holds something other than a variable name (`[A-Za-z_][A-Za-z0-9_]*`).
    /// What it holds is kept out of the error: it is most often a key.
    NotAName,
}

/// Expands `${VAR}` and `${VAR:-fallback}`; the error is the first that cannot be.
pub fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Unexpanded> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, fallback) = match inner.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (inner, None),
        };
        if !is_variable_name(name) {
            return Err(Unexpanded::NotAName);
        }
        match (lookup(name).filter(|v| !v.is_empty()), fallback) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(f)) => out.push_str(f),
            (None, None) => return Err(Unexpanded::Unset(name.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what a shell accepts as a variable's name.
fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `[A-Z_][A-Z0-9_]*`, a variable name as people write one: the only names an error
/// repeats. Some keys are valid names too (Google's `AIza…` keys mix upper and lower
/// case, digits, `_` and `-`), and a key pasted between the braces must not be printed.
fn conventional(name: &str) -> bool {
    is_variable_name(name) && !name.bytes().any(|b| b.is_ascii_lowercase())
}

/// `[a-z_]+`, a config key as people write one (every key of the file is): the only
/// unknown key names an error repeats, besides one a letter or two from a known key (a
/// typo). Anything else, digits or `-` or upper case in it, may be a credential
/// pasted as a key (`sk-or-v1-…: 1`), as [`conventional`] has it for variable names.
fn field_like(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// `providers:`, where a provider written with nothing under it (`ollama:`) is one with
/// every default, as `ollama: {}` is: the way people name a built-in source to use as is.
/// Only here: a virtual model or a header with nothing under it is a slip.
fn providers<'de, D: Deserializer<'de>>(d: D) -> Result<Named<Provider>, D::Error> {
    struct Blank(Provider);
    impl<'de> Deserialize<'de> for Blank {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blank, D::Error> {
            Option::<Provider>::deserialize(d).map(|p| Blank(p.unwrap_or_default()))
        }
    }
    let Named(entries) = Named::<Blank>::deserialize(d)?;
    let entries = entries.into_iter().map(|e| Entry {
        name: e.name,
        line: e.line,
        col: e.col,
        value: e.value.0,
    });
    Ok(Named(entries.collect()))
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
        let text = self
            .path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let (line, col) = locate(&text, key);
        self.error_at(line, col, msg)
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

/// Parses config text; errors are `(line, col, message)`.
pub fn parse(text: &str) -> Result<Config, (usize, usize, String)> {
    serde_saphyr::from_str::<Config>(text).map_err(|e| {
        let (line, col) = e
            .location()
            .map_or((0, 0), |l| (l.line() as usize, l.column() as usize));
        let msg = bare_message(&e.without_snippet().to_string());
        (line, col, explain(text, line, col, &msg))
    })
}

/// Keys whose values are credentials: client keys, an upstream key, header values.
/// An error inside one names the key and never what is written below it, not even a
/// map key (`- sk-…: x` makes the key a map key).
const SECRET_KEYS: [&str; 3] = ["keys", "api_key", "headers"];

/// The keys of a [`Provider`] block, as written in the file.
const PROVIDER_KEYS: [&str; 8] = [
    "api_base",
    "api_key",
    "api_protocol",
    "headers",
    "models",
    "detect",
    "auth",
    "prefill",
];

/// Rewrites a parser message so that it names the key and the kind of value wanted:
/// `invalid u64` at `workers: lots` becomes `workers: expected a whole number, got "lots"`.
///
/// The value written is repeated only where a number or true/false was wanted. Where a
/// list or map was wanted, a single value written there may be a key that belonged
/// inside (`keys: sk-…`, `openai: sk-…`), so only its kind is told. Inside a
/// [`SECRET_KEYS`] key, the message itself is reduced to one known to quote nothing.
fn explain(text: &str, line: usize, col: usize, msg: &str) -> String {
    let src = text.lines().nth(line.wrapping_sub(1)).unwrap_or("");
    let mut told = told(text, line, col, src, msg);
    if let [top, key] = &keys_around(text, line, col)[..]
        && top == "providers"
        && PROVIDER_KEYS.contains(&key.as_str())
    {
        // `ollama:` with nothing under it is a provider with defaults, so its keys
        // written without indentation become providers of their own.
        told.push_str(&format!(
            " (`{key}` is a key of a provider: indent it under the provider it belongs to)"
        ));
    }
    if unquoted_variable_in_flow(src) {
        // YAML reads `{` as a map there: `[${KEY}]` fails with `expected ',' or ']'`.
        told.push_str(" (inside `[…]` or `{…}`, put a ${VAR} in quotes: `[\"${VAR}\"]`)");
    }
    told
}

/// What YAML read a model name in a provider's `models:` list as, when it read it as
/// something else: unquoted, `on`, `no`, `y` (YAML 1.1's booleans, which serde-saphyr
/// keeps) and `7` are no strings. Elsewhere a name's type is known, and it stays text.
fn read_as(msg: &str) -> Option<&'static str> {
    let rest = msg.strip_prefix("invalid type: ")?;
    let (got, wanted) = rest.split_once(", expected ")?;
    if wanted != MODEL_ENTRY {
        return None;
    }
    match got.split_once(' ')?.0 {
        "boolean" => Some("a boolean"),
        "integer" | "floating" => Some("a number"),
        _ => None,
    }
}

/// True when `rest` of a line is a key's colon with no value after it (`:`, `:  # x`).
fn nothing_after(rest: &str) -> bool {
    let after = rest.strip_prefix(':').map(str::trim_start);
    after.is_some_and(|a| a.is_empty() || a.starts_with('#'))
}

/// [`explain`]'s message, before any hint.
fn told(text: &str, line: usize, col: usize, src: &str, msg: &str) -> String {
    let keys = keys_around(text, line, col);
    if let Some(at) = keys.iter().position(|k| SECRET_KEYS.contains(&k.as_str())) {
        let safe = secret_safe(msg);
        let safe = if at == 0 && keys[0] == "keys" {
            client_key_unset(safe)
        } else {
            safe
        };
        return format!("{}: {safe}", keys[..=at].join("."));
    }
    // `a:` with nothing after it, its keys not indented under it: the parser points at
    // the colon, and `a` holds nothing.
    let nothing = src.get(col.wrapping_sub(1)..).is_some_and(nothing_after);
    let value = value_at(src, col).filter(|_| !nothing);
    // A list or a map where another kind of value was wanted. The parser places a map
    // at its first key (`detect:` over `  interval_secs: 5`) and a list where a map was
    // wanted at its first item: the error is the key's that holds it, not one inside it.
    // A list where anything else was wanted is placed at the key holding it.
    let list = msg == "expected mapping start" && list_at(src, col);
    let map = msg.starts_with("invalid type: map, expected ");
    let got = if list || msg.starts_with("invalid type: sequence, expected ") {
        Some("a list")
    } else if map {
        Some("a map")
    } else {
        None
    };
    let keys = if list || map {
        keys_holding(text, line, col).0
    } else {
        keys
    };
    let wanted = match msg {
        m if m.starts_with("invalid u") || m.starts_with("invalid i") => Some("a whole number"),
        "invalid floating point" => Some("a number"),
        "invalid boolean" => Some("true or false"),
        _ => None,
    };
    let single = if value.is_some() {
        ", got a single value"
    } else {
        ""
    };
    // The parser's own path to a line whose indentation is off is a guess: none is told.
    let mut pathless = false;
    let msg = match (wanted, &value, read_as(msg)) {
        (_, Some(v), Some(kind)) => {
            format!("`{v}` is {kind} to YAML, not a model name: write it in quotes, as `\"{v}\"`")
        }
        (Some(w), Some(v), _) => format!("expected {w}, got {}", quoted(v)),
        _ if nothing && msg == "expected mapping start" => {
            "expected a map of keys, got nothing (indent the keys that belong to it under it)"
                .to_string()
        }
        _ if nothing && msg == "expected sequence start" => {
            "expected a list, got nothing (indent its items under it)".to_string()
        }
        _ if list => "expected a map of keys, got a list".to_string(),
        _ => match msg {
            "expected sequence start" => format!("expected a list{single}"),
            "expected mapping start" => format!("expected a map of keys{single}"),
            // The parser's words, and what usually causes them.
            "mapping values are not allowed in this context" => {
                "a key here is indented more than the keys beside it".to_string()
            }
            m if m.contains("did not find expected") => {
                pathless = true;
                "this line is indented differently from the lines beside it (a list item or a \
                 key one space off?)"
                    .to_string()
            }
            m if m.starts_with("duplicate mapping key") => {
                let key = m
                    .trim_start_matches("duplicate mapping key")
                    .trim_start_matches(':')
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim();
                format!("`{key}` is written twice at this level; keep one")
            }
            m if got.is_some() => {
                let wanted = m.split_once(", expected ").map_or(m, |(_, w)| w);
                let wanted = if wanted == "a sequence" {
                    "a list"
                } else {
                    wanted
                };
                format!("expected {wanted}, got {}", got.unwrap_or_default())
            }
            "data did not match any variant of untagged enum ProtocolSpec" => {
                "expected a protocol (`chat_completions`, `anthropic`, `responses` or \
                 `gemini`) or a list of `\"glob\": protocol` entries"
                    .to_string()
            }
            m => without_strings(m),
        },
    };
    // Messages that already name what is wrong by its key need no prefix.
    let named = msg.starts_with("unknown field") || msg.starts_with("unknown key");
    if named {
        let field = msg.split('`').nth(1).unwrap_or("");
        // `- llama3.1: 8b` under a provider's `models:`: a tag's colon with a space after
        // it makes a map. Told without the key, which may still be a key pasted there.
        let tag = if msg.contains(" in a model entry;") {
            "; a model name with a tag is written without a space after its colon \
             (`- llama3.1:8b`), or as `- id: NAME`"
        } else {
            ""
        };
        match nearest_field(&msg) {
            Some(near) => format!("{msg}; did you mean `{near}`?"),
            None if !field_like(field) => {
                let expected = msg
                    .split_once(", expected ")
                    .or(msg.split_once("; expected "));
                format!(
                    "unknown field whose name is not shown, as it looks like an API key (a key \
                     goes in a value: `api_key: …`, or under `headers:` or `keys:`){}{tag}",
                    expected.map_or(String::new(), |(_, e)| format!("; expected {e}"))
                )
            }
            None => format!("{msg}{tag}"),
        }
    } else if keys.is_empty() || pathless {
        msg
    } else {
        let hint = match (&keys[..], got) {
            ([top, _, key], Some("a map")) if top == "providers" && key == "detect" => {
                " (under a provider, `detect` is whether to ask it for its models; the probe \
                 interval is the top-level `detect.interval_secs`)"
                    .to_string()
            }
            ([top, name], _) if top == "models" && list => format!(
                " (a virtual model's endpoints go under its `endpoints:`, e.g. \
                 `{name}: {{endpoints: [ollama:llama3.1]}}`)"
            ),
            _ => String::new(),
        };
        format!("{}: {msg}{hint}", keys.join("."))
    }
}

/// The expected key an "unknown field `x`, expected one of a, b" message most likely
/// meant: one or two letters away (`provider` for `providers`, `api_bsae` for
/// `api_base`); `None` when none is that near.
fn nearest_field(msg: &str) -> Option<&str> {
    let field = msg.split('`').nth(1)?;
    let (_, expected) = msg.split_once("expected ")?;
    let names = expected.trim_start_matches("one of ");
    nearest(
        field,
        names
            .split(", ")
            .flat_map(|n| n.split(" or "))
            .map(|n| n.trim_matches('`')),
    )
}

/// Of `names`, the one nearest `asked` when it is one or two letters away (a typo),
/// else `None`; the first of equally near ones.
pub fn nearest<'a>(asked: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .map(|n| (edits(asked, n), n))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

/// The Levenshtein distance between two short names, a swap of two letters counting as
/// two.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// True when a line writes `${` unquoted after a `[` or `{`: in flow style.
fn unquoted_variable_in_flow(src: &str) -> bool {
    src.match_indices("${").any(|(i, _)| {
        let before = &src[..i];
        before.contains(['[', '{']) && !before.ends_with(['"', '\''])
    })
}

/// A parser message from inside a secret key, with nothing of the file in it: messages
/// known to quote nothing are kept, any other is cut to what was expected.
fn secret_safe(msg: &str) -> String {
    // Ours: they name a variable only once it is known to be a conventional name.
    if msg.starts_with("environment variable `") || msg == NOT_A_NAME || msg == UNSET_UNSHOWN {
        return msg.to_string();
    }
    match msg {
        "expected sequence start" => "expected a list".into(),
        "expected mapping start" => "expected a map of keys".into(),
        "invalid type: sequence, expected a map" => "expected a map, got a list".into(),
        "invalid type: map, expected a sequence" => "expected a list, got a map".into(),
        "expected string scalar"
        | "mapping values are not allowed in this context"
        | "cannot deserialize tagged scalar into string"
        | "alias references unknown anchor" => msg.into(),
        m if m.starts_with("unclosed ") => m.into(),
        m if m.starts_with("duplicate mapping key") => "a key is written twice here".into(),
        // serde's `expected …` is the reader's own description, never the input.
        m => match m.rsplit_once("expected ") {
            Some((_, wanted)) => format!("expected {wanted}"),
            None => "cannot be read (what is written here is not shown: it may be a key)".into(),
        },
    }
}

/// serde's `invalid type: string "…", expected X` as `expected X, got a single value`,
/// and any other `string "…"` it quotes as `a string`: the string may be a key.
fn without_strings(msg: &str) -> String {
    const STR: &str = "string \"";
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(at) = rest.find(STR) {
        out.push_str(&rest[..at]);
        out.push_str("a string");
        // serde writes the string with `{:?}`: a quote inside it is escaped.
        let body = &rest[at + STR.len()..];
        let mut escaped = false;
        let end = body
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map_or(body.len(), |(i, _)| i + 1);
        rest = &body[end..];
    }
    out.push_str(rest);
    match out
        .strip_prefix("invalid type: a string, ")
        .and_then(|r| r.strip_prefix("expected "))
    {
        Some(wanted) => format!("expected {wanted}, got a single value"),
        None => out,
    }
}

/// The 1-based line and column of a dotted key path among a file's map keys, or
/// `(0, 0)` when it is not written there (a default, or a place inside a list).
fn locate(text: &str, path: &str) -> (usize, usize) {
    let mut open: Vec<(usize, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if body.is_empty() || body.starts_with('#') || body.starts_with('-') {
            continue;
        }
        let Some((key, _)) = body.split_once(':') else {
            continue;
        };
        while open.last().is_some_and(|(at, _)| *at >= indent) {
            open.pop();
        }
        open.push((indent, key.trim()));
        let here = open.iter().map(|(_, k)| *k).collect::<Vec<_>>().join(".");
        if here == path {
            return (i + 1, indent + 1);
        }
    }
    (0, 0)
}

/// The keys whose values hold the place at 1-based `line`:`col`, outermost first, as
/// the text shows them: `limits.max_body_bytes` at `lots` in `  max_body_bytes: lots`
/// under `limits:`. Read from the keys of the less indented lines above, those still
/// open on the line before `col` (block or flow style), and a key written at `col`.
fn keys_around(text: &str, line: usize, col: usize) -> Vec<String> {
    let (mut keys, at) = keys_holding(text, line, col);
    keys.extend(at);
    keys
}

/// [`keys_around`] apart: the keys whose values hold the place, and a key written right
/// at it, which belongs inside a map that begins there (`interval_secs` of
/// `detect:` over `  interval_secs: 5`, when `detect` is refused a map).
fn keys_holding(text: &str, line: usize, col: usize) -> (Vec<String>, Option<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(src) = lines.get(line.wrapping_sub(1)) else {
        return (Vec::new(), None);
    };
    let indent = |l: &str| l.len() - l.trim_start_matches([' ', '-']).len();
    let mut outer = Vec::new();
    let mut level = indent(src);
    for above in lines[..line - 1].iter().rev() {
        if level == 0 {
            break;
        }
        let body = above.trim_start_matches([' ', '-']);
        if body.is_empty() || body.starts_with('#') || indent(above) >= level {
            continue;
        }
        outer.push(open_keys(above).into_iter().map(|(_, k)| k));
        level = indent(above);
    }
    let mut cut = src.len().min(col.saturating_sub(1));
    while !src.is_char_boundary(cut) {
        cut -= 1;
    }
    // At the colon of `a:` with nothing after it, the error is about `a`'s value.
    if nothing_after(&src[cut..]) {
        cut += 1;
    }
    let (before, at) = src.split_at(cut);
    let mut keys: Vec<String> = outer.into_iter().rev().flatten().collect();
    keys.extend(open_keys(before).into_iter().map(|(_, k)| k));
    // A key that starts right at `col`: the error is about its whole value.
    let start = at.len() - at.trim_start_matches([' ', '-']).len();
    let at_key = open_keys(at)
        .into_iter()
        .find(|(i, _)| *i == start)
        .map(|(_, k)| k);
    // A line cut inside its key (`  a` of `  a:`) opens no key.
    keys.retain(|k| !k.is_empty());
    (keys, at_key.filter(|k| !k.is_empty()))
}

/// True when a list begins at 1-based `col` of a line: `[`, a `- ` item, or the first
/// item's value just after its `-`.
fn list_at(src: &str, col: usize) -> bool {
    let Some(before) = src.get(..col.saturating_sub(1)) else {
        return false;
    };
    let rest = &src[before.len()..];
    rest.starts_with('[')
        || rest == "-"
        || rest.starts_with("- ")
        || (before.contains('-') && before.chars().all(|c| c == ' ' || c == '-'))
}

/// The map keys whose values are still open at the end of `s` (a line, or its start),
/// each with the byte offset it starts at: `a:` gives `a`; `a: {b: 1, c: [` gives `a`
/// and `c`. Scalars are skipped, quoted or not.
fn open_keys(s: &str) -> Vec<(usize, String)> {
    // `None` marks an open `{` or `[`.
    let mut open: Vec<Option<(usize, String)>> = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let at = s.len() - rest.len();
        let Some(c) = rest.chars().next() else { break };
        match c {
            '#' => break,
            '{' | '[' => {
                open.push(None);
                rest = &rest[1..];
            }
            '}' | ']' => {
                while let Some(Some(_)) = open.pop() {}
                rest = &rest[1..];
            }
            ',' => {
                while let Some(Some(_)) = open.last() {
                    open.pop();
                }
                rest = &rest[1..];
            }
            '-' if rest.len() == 1 || rest[1..].starts_with([' ', '\t']) => rest = &rest[1..],
            '"' | '\'' => {
                let body = &rest[1..];
                let (word, after) = match body.find(c) {
                    Some(end) => (&body[..end], &body[end + 1..]),
                    None => (body, ""),
                };
                rest = after;
                if let Some(after) = rest.trim_start().strip_prefix(':') {
                    open.push(Some((at, word.to_string())));
                    rest = after;
                }
            }
            _ => {
                // A plain scalar ends at `: `, a flow separator or a comment.
                let end = rest
                    .char_indices()
                    .find(|&(i, ch)| {
                        let next = rest[i + ch.len_utf8()..].chars().next();
                        (ch == ':' && next.is_none_or(|n| " \t,}]".contains(n)))
                            || ",}]".contains(ch)
                            || (ch == '#' && rest[..i].ends_with([' ', '\t']))
                    })
                    .map_or(rest.len(), |(i, _)| i);
                let word = rest[..end].trim();
                rest = &rest[end..];
                if let Some(after) = rest.strip_prefix(':') {
                    open.push(Some((at, word.to_string())));
                    rest = after;
                }
            }
        }
    }
    open.into_iter().flatten().collect()
}

/// The scalar that starts at 1-based `col` of a line, up to a comment or a flow separator.
fn value_at(line: &str, col: usize) -> Option<String> {
    let rest = line.get(col.checked_sub(1)?..)?;
    let end = [" #", ",", "}", "]"]
        .iter()
        .filter_map(|stop| rest.find(stop))
        .min()
        .unwrap_or(rest.len());
    let v = rest[..end].trim();
    (!v.is_empty() && !v.starts_with(['{', '['])).then(|| v.to_string())
}

/// A value as the file wrote it, in double quotes unless it already has quotes.
fn quoted(v: &str) -> String {
    if v.starts_with(['"', '\'']) {
        v.to_string()
    } else {
        format!("\"{v}\"")
    }
}

/// The parser's message without its own "error: line N column M:" prefix or
/// "at line N, column M" suffix: the error names its place once, as `path:line:col`.
fn bare_message(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let mut msg = match first.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((_, msg)) => msg,
        None => first,
    };
    while let Some(i) = msg.rfind(" at line ") {
        let tail = &msg[i + " at line ".len()..];
        let place = tail.split_once(", column ").is_some_and(|(l, c)| {
            l.bytes().all(|b| b.is_ascii_digit()) && c.bytes().all(|b| b.is_ascii_digit())
        });
        if !place {
            break;
        }
        msg = &msg[..i];
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_over_a_small_vocabulary() {
        let cases = [
            ("plain", Ok("plain")),
            ("${KEY}", Ok("sk-1")),
            ("a${KEY}b${KEY}", Ok("ask-1bsk-1")),
            ("${UNSET:-dflt}", Ok("dflt")),
            ("${EMPTY:-dflt}", Ok("dflt")),
            ("${KEY:-dflt}", Ok("sk-1")),
            ("${UNSET:-}", Ok("")),
            ("$KEY {KEY}", Ok("$KEY {KEY}")),
            ("${unterminated", Ok("${unterminated")),
            ("${UNSET}", Err(Unexpanded::Unset("UNSET".into()))),
            ("x ${EMPTY}", Err(Unexpanded::Unset("EMPTY".into()))),
            ("${_K1}", Err(Unexpanded::Unset("_K1".into()))),
            ("${sk-1}", Err(Unexpanded::NotAName)),
            ("${sk-1:-dflt}", Err(Unexpanded::NotAName)),
            ("${KEY.x}", Err(Unexpanded::NotAName)),
            ("${1KEY}", Err(Unexpanded::NotAName)),
            ("${}", Err(Unexpanded::NotAName)),
            ("${ KEY}", Err(Unexpanded::NotAName)),
        ];
        for (input, want) in cases {
            let got = expand(input, env);
            assert_eq!(got, want.map(String::from), "input {input}");
        }
    }

    #[test]
    fn unknown_key_names_line_column_and_expected_keys() {
        let (line, col, msg) = parse("providers:\n  ollama:\n    api_bsae: x\n").unwrap_err();
        assert_eq!((line, col), (3, 5));
        assert!(
            msg.starts_with("unknown field `api_bsae`, expected one of"),
            "{msg}"
        );
        assert!(msg.contains("api_base"), "{msg}");
        assert!(msg.ends_with("; did you mean `api_base`?"), "{msg}");
        let (_, _, msg) = parse("provider:\n  x: 1\n").unwrap_err();
        assert!(msg.ends_with("; did you mean `providers`?"), "{msg}");
        // Nothing near: no guess.
        let (_, _, msg) = parse("colour: red\n").unwrap_err();
        assert!(!msg.contains("did you mean"), "{msg}");
    }

    #[test]
    fn unset_variable_is_an_error_at_its_line() {
        let text = "# ${IN_A_COMMENT} is never looked up\nproviders:\n  x:\n    api_key: \"${ROUTEPLANE_TEST_UNSET_VAR}\"\n";
        let (line, _, msg) = parse(text).unwrap_err();
        assert_eq!(line, 4);
        assert!(
            msg.contains("`ROUTEPLANE_TEST_UNSET_VAR` is not set"),
            "{msg}"
        );
    }

    #[test]
    fn only_a_conventional_unset_name_is_repeated() {
        for name in ["GEMINI_API_KEY", "_K1", "K"] {
            assert!(conventional(name), "{name}");
        }
        for name in [
            "AIzaSyFakeKey0123456789abcdefghijkl",
            "my_key",
            "Key",
            "sk-1",
            "1KEY",
            "",
        ] {
            assert!(!conventional(name), "{name}");
        }
        // In a key's place and elsewhere, the error names the key that holds it.
        for (text, want) in [
            (
                "providers:\n  x:\n    api_key: ${AIzaSyFakeKey0123456789abcdefghijkl}\n",
                (3, 14, "providers.x.api_key"),
            ),
            (
                "providers:\n  x:\n    api_base: http://${routeplane_test_unset}/v1\n",
                (3, 15, "providers.x.api_base"),
            ),
        ] {
            let (line, col, msg) = parse(text).unwrap_err();
            assert_eq!((line, col), (want.0, want.1), "{text}");
            assert_eq!(msg, format!("{}: {UNSET_UNSHOWN}", want.2), "{text}");
        }
    }

    #[test]
    fn empty_and_comment_only_files_are_valid() {
        for text in ["", "# nothing\n", "providers:\n"] {
            let r = parse(text);
            assert!(r.is_ok(), "{text:?}: {:?}", r.err());
        }
    }

    #[test]
    fn providers_keep_file_order_and_both_endpoint_spellings() {
        let text = "providers:\n  zed: {}\n  alpha: {}\nmodels:\n  smart:\n    endpoints:\n      - zed:m1\n      - {provider: alpha, service_id: m2}\n";
        let c = parse(text).unwrap();
        let names: Vec<_> = c.providers.0.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["zed", "alpha"]);
        let eps: Vec<_> = c.models.0[0]
            .value
            .endpoints
            .iter()
            .map(|e| e.value.parts().unwrap())
            .collect();
        assert_eq!(eps, [("zed", "m1"), ("alpha", "m2")]);
    }

    #[test]
    fn parser_messages_name_their_place_once() {
        let cases = [
            ("invalid u64 at line 1, column 10", "invalid u64"),
            (
                "error: line 2 column 3: invalid boolean at line 2, column 3",
                "invalid boolean",
            ),
            (
                "invalid u16 at line 2, column 9 at line 2, column 3",
                "invalid u16",
            ),
            ("ends at line one", "ends at line one"),
        ];
        for (raw, want) in cases {
            assert_eq!(bare_message(raw), want, "{raw}");
        }
    }

    #[test]
    fn errors_are_explained_with_the_key_path() {
        let text = "limits:\n  # note\n  max_body_bytes: lots # why\nproviders:\n  x:\n    models:\n      - id: 7\n";
        let cases = [
            (
                3,
                19,
                "invalid u64",
                "limits.max_body_bytes: expected a whole number, got \"lots\"",
            ),
            (
                7,
                13,
                "whatever it says",
                "providers.x.models.id: whatever it says",
            ),
            (
                3,
                3,
                "unknown field `max_body_bytes`",
                "unknown field `max_body_bytes`",
            ),
            (
                6,
                5,
                "invalid type: string \"a \\\"quoted\\\" one\", expected a sequence",
                "providers.x.models: expected a sequence, got a single value",
            ),
        ];
        for (line, col, msg, want) in cases {
            assert_eq!(explain(text, line, col, msg), want, "{line}:{col}");
        }
    }

    #[test]
    fn a_list_or_map_where_another_value_was_wanted_is_told_at_the_key_holding_it() {
        let cases = [
            // A map is placed at its first key, or at its `{`.
            (
                "workers:\n  a: 1\n",
                2,
                3,
                "invalid type: map, expected a whole number",
                "workers: expected a whole number, got a map",
            ),
            (
                "workers: {a: 1}\n",
                1,
                10,
                "invalid type: map, expected a whole number",
                "workers: expected a whole number, got a map",
            ),
            // A list where a map was wanted is placed at its first item, or its `[`.
            (
                "limits:\n  - max_body_bytes: 1\n",
                2,
                3,
                "expected mapping start",
                "limits: expected a map of keys, got a list",
            ),
            (
                "log:\n- json\n",
                2,
                3,
                "expected mapping start",
                "log: expected a map of keys, got a list",
            ),
            (
                "log: [json]\n",
                1,
                6,
                "expected mapping start",
                "log: expected a map of keys, got a list",
            ),
            // Any other list is placed at the key holding it.
            (
                "skip_auth: [a]\n",
                1,
                1,
                "invalid type: sequence, expected true or false",
                "skip_auth: expected true or false, got a list",
            ),
            (
                "p:\n  x:\n    models: {a: b}\n",
                3,
                13,
                "invalid type: map, expected a sequence",
                "p.x.models: expected a list, got a map",
            ),
        ];
        for (text, line, col, msg, want) in cases {
            assert_eq!(explain(text, line, col, msg), want, "{text:?}");
        }
    }

    #[test]
    fn a_variable_unquoted_in_flow_style_is_told_to_be_quoted() {
        let hint = " (inside `[…]` or `{…}`, put a ${VAR} in quotes: `[\"${VAR}\"]`)";
        let told = explain("keys: [${K}]\n", 1, 9, "expected ',' or ']'");
        assert_eq!(told, format!("keys: expected ',' or ']'{hint}"));
        let told = explain("log: {format: ${F}}\n", 1, 15, "whatever");
        assert_eq!(told, format!("log.format: whatever{hint}"));
        for fine in ["keys: [\"${K}\"]\n", "workers: ${W}\n", "keys: ['${K}']\n"] {
            assert!(!explain(fine, 1, 1, "m").contains("quotes"), "{fine}");
        }
    }

    #[test]
    fn errors_inside_secret_keys_quote_nothing_written_there() {
        let cases = [
            (
                "keys: sk-1\n",
                1,
                7,
                "expected sequence start",
                "keys: expected a list",
            ),
            (
                "keys:\n  - sk-1: x\n",
                2,
                5,
                "expected string scalar",
                "keys: expected string scalar",
            ),
            (
                "keys:\n- sk-1: x\n",
                2,
                3,
                "expected string scalar",
                "keys: expected string scalar",
            ),
            (
                "keys: {sk-1: 1, sk-1: 2}\n",
                1,
                17,
                "duplicate mapping key: sk-1, set …",
                "keys: a key is written twice here",
            ),
            (
                "p:\n  x:\n    api_key:\n      sk-1: 1\n",
                4,
                7,
                "expected string scalar",
                "p.x.api_key: expected string scalar",
            ),
            (
                "p:\n  x:\n    headers: sk-1\n",
                3,
                5,
                "invalid type: string \"sk-1\", expected a map",
                "p.x.headers: expected a map",
            ),
            (
                "p:\n  x:\n    headers:\n      X-Key: [sk-1]\n",
                4,
                14,
                "expected string scalar",
                "p.x.headers: expected string scalar",
            ),
            (
                "p: {x: {api_base: \"h: 1\", api_key: [sk-1]}}\n",
                1,
                38,
                "expected string scalar",
                "p.x.api_key: expected string scalar",
            ),
            (
                "keys:\n  - sk-1\n",
                2,
                5,
                "something new about sk-1",
                "keys: cannot be read (what is written here is not shown: it may be a key)",
            ),
        ];
        for (text, line, col, msg, want) in cases {
            assert_eq!(explain(text, line, col, msg), want, "{text:?}");
        }
    }

    #[test]
    fn keys_are_located_by_their_dotted_path() {
        let text = "# c\nlimits:\n  # x\n  max_body_bytes: 1\ntimeouts:\n  idle_secs: 0\nmodels:\n  - idle_secs: 1\n";
        assert_eq!(locate(text, "limits.max_body_bytes"), (4, 3));
        assert_eq!(locate(text, "timeouts.idle_secs"), (6, 3));
        assert_eq!(locate(text, "limits"), (2, 1));
        assert_eq!(locate(text, "idle_secs"), (0, 0));
        assert_eq!(locate(text, "workers"), (0, 0));
    }

    #[test]
    fn the_keys_around_a_place_are_read_in_block_and_flow_style() {
        let text =
            "# c\np:\n  x: {a: 1, \"b c\": [2, {d: 3}], e: http://h:1/v1}\n  y:\n    - z: 4\n";
        let at = |line, col| keys_around(text, line, col).join(".");
        assert_eq!(at(3, 3), "p.x");
        assert_eq!(at(3, 10), "p.x.a");
        assert_eq!(at(3, 24), "p.x.b c");
        assert_eq!(at(3, 28), "p.x.b c.d");
        assert_eq!(at(3, 42), "p.x.e");
        assert_eq!(at(5, 7), "p.y.z");
        assert_eq!(at(5, 10), "p.y.z");
        assert_eq!(at(1, 1), "");
    }
}
