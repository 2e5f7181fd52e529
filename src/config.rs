//! `routeplane.yaml` as written: the serde types, `${VAR}` expansion, and errors with line:column.
//!
//! This module mirrors the file and nothing more; `registry.rs` turns it into the
//! resolved, immutable picture the server uses. Every struct denies unknown keys, so a
//! typo is an error naming the key, the keys expected there, and its line. Every
//! tunable has its default in the one `Default` impl of its section.
//!
//! Any string may hold `${VAR}` or `${VAR:-fallback}`, expanded from the environment
//! as the file is read. Comments are never expanded (they are gone once parsed).

use std::cell::RefCell;
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
    pub skip_auth: Option<bool>,
    /// Client keys accepted when `skip_auth` is false.
    pub keys: Vec<Text>,
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
    /// Sources of tokens, keyed by provider id, in file order.
    pub providers: Named<Provider>,
    /// Virtual models, keyed by name, in file order.
    pub models: Named<VirtualModel>,
}

/// `limits:` — what one client may send and how many may wait.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: u64,
    /// How long a request may wait for a worker before it gets 503.
    pub queue_wait_secs: f64,
    /// Deadline for a client to send its whole request (head and body).
    pub client_timeout_secs: f64,
    /// Largest upstream response body read for a non-streaming answer.
    pub max_response_bytes: u64,
    /// Longest single upstream stream event.
    pub max_event_bytes: usize,
    /// Idle upstream connections kept open per upstream host, for reuse.
    pub idle_connections: usize,
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
        }
    }
}

/// `timeouts:` — how long an upstream may take at each stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Detect {
    /// Seconds between background probes.
    pub interval_secs: f64,
    /// Timeout of one probe.
    pub timeout_secs: f64,
}

impl Default for Detect {
    fn default() -> Detect {
        Detect {
            interval_secs: 30.0,
            timeout_secs: 0.5,
        }
    }
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
#[derive(Debug, Deserialize)]
#[serde(untagged)]
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
#[derive(Debug, Deserialize)]
#[serde(untagged)]
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

/// A string from the file with `${VAR}` already expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    /// The expanded value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

thread_local! {
    /// Set while `config validate` parses: unset variables become warnings, not errors.
    /// A thread-local because serde gives a `Deserialize` impl no other context.
    static LENIENT: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        let raw = String::deserialize(d)?;
        match expand(&raw, |name| std::env::var(name).ok()) {
            Ok(s) => Ok(Text(s)),
            Err(name) => {
                let lenient = LENIENT.with(|l| {
                    l.borrow_mut().as_mut().map(|w| {
                        w.push(format!("environment variable `{name}` is not set"));
                    })
                });
                match lenient {
                    Some(()) => Ok(Text(String::new())),
                    None => Err(de::Error::custom(format!(
                        "environment variable `{name}` is not set (set it, or write `${{{name}:-default}}`)"
                    ))),
                }
            }
        }
    }
}

/// Expands `${VAR}` and `${VAR:-fallback}`; the error is the first unset name.
pub fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
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
        match (lookup(name).filter(|v| !v.is_empty()), fallback) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(f)) => out.push_str(f),
            (None, None) => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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

/// A loaded config and where it came from.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The parsed file (defaults when there was no file).
    pub config: Config,
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// Problems that do not stop serving (only collected when lenient).
    pub warnings: Vec<String>,
}

impl Loaded {
    /// How the file is named in messages.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or("(built-in defaults)".to_string(), |p| {
                p.display().to_string()
            })
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

/// Reads and parses a config file. With `lenient`, unset `${VAR}`s become warnings.
pub fn load(path: Option<&Path>, lenient: bool) -> Result<Loaded, Error> {
    let Some(path) = path else {
        return Ok(Loaded::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read config `{}`", path.display()), e))?;
    let (config, warnings) = parse(&text, lenient).map_err(|(line, col, msg)| Error::Config {
        path: path.display().to_string(),
        line,
        col,
        msg,
    })?;
    Ok(Loaded {
        config,
        path: Some(path.to_path_buf()),
        warnings,
    })
}

/// Parses config text; errors are `(line, col, message)`.
pub fn parse(text: &str, lenient: bool) -> Result<(Config, Vec<String>), (usize, usize, String)> {
    LENIENT.with(|l| *l.borrow_mut() = lenient.then(Vec::new));
    let result = serde_saphyr::from_str::<Config>(text);
    let warnings = LENIENT.with(|l| l.borrow_mut().take()).unwrap_or_default();
    match result {
        Ok(c) => Ok((c, warnings)),
        Err(e) => {
            let (line, col) = e
                .location()
                .map_or((0, 0), |l| (l.line() as usize, l.column() as usize));
            Err((line, col, bare_message(&e.without_snippet().to_string())))
        }
    }
}

/// The parser's message without its own "error: line N column M:" prefix.
fn bare_message(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    if let Some(rest) = first.strip_prefix("line ")
        && let Some((_, msg)) = rest.split_once(": ")
    {
        return msg.to_string();
    }
    first.to_string()
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
            ("${UNSET}", Err("UNSET")),
            ("x ${EMPTY}", Err("EMPTY")),
        ];
        for (input, want) in cases {
            let got = expand(input, env);
            assert_eq!(
                got.as_deref().map_err(String::as_str),
                want,
                "input {input}"
            );
        }
    }

    #[test]
    fn unknown_key_names_line_column_and_expected_keys() {
        let (line, col, msg) =
            parse("providers:\n  ollama:\n    api_bsae: x\n", false).unwrap_err();
        assert_eq!((line, col), (3, 5));
        assert!(
            msg.starts_with("unknown field `api_bsae`, expected one of"),
            "{msg}"
        );
        assert!(msg.contains("api_base"), "{msg}");
    }

    #[test]
    fn unset_variable_is_an_error_at_its_line_unless_lenient() {
        let text = "# ${IN_A_COMMENT} is never looked up\nproviders:\n  x:\n    api_key: \"${ROUTEPLANE_TEST_UNSET_VAR}\"\n";
        let (line, _, msg) = parse(text, false).unwrap_err();
        assert_eq!(line, 4);
        assert!(
            msg.contains("`ROUTEPLANE_TEST_UNSET_VAR` is not set"),
            "{msg}"
        );
        let (_, warnings) = parse(text, true).unwrap();
        assert_eq!(
            warnings,
            vec!["environment variable `ROUTEPLANE_TEST_UNSET_VAR` is not set"]
        );
    }

    #[test]
    fn empty_and_comment_only_files_are_valid() {
        for text in ["", "# nothing\n", "providers:\n"] {
            let r = parse(text, false);
            assert!(r.is_ok(), "{text:?}: {:?}", r.err());
        }
    }

    #[test]
    fn providers_keep_file_order_and_both_endpoint_spellings() {
        let text = "providers:\n  zed: {}\n  alpha: {}\nmodels:\n  smart:\n    endpoints:\n      - zed:m1\n      - {provider: alpha, service_id: m2}\n";
        let (c, _) = parse(text, false).unwrap();
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
}
