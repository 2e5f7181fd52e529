//! The one error type: what failed, which HTTP status it means, and what to do next.
//!
//! Every fallible function in the library returns [`Error`]. Its `Display` is the
//! message a person reads (a log line, a CLI error, the `message` of an error body), so
//! it never contains a key, token or verifier. [`Error::status`] is the one table from
//! error to HTTP status; the protocol modules render the body in the caller's shape.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// Everything that can go wrong in Routeplane.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Command-line misuse; the message names the argument.
    Usage(String),
    /// A file could not be read or written.
    Io {
        /// Which file, or what was being done.
        what: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The config file is invalid at a place (line and column are 1-based; 0 = unknown).
    Config {
        /// The file the problem is in.
        path: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        col: usize,
        /// What is wrong and how to fix it.
        msg: String,
    },
    /// The client's request is malformed in its own protocol (400): no target could
    /// take it, so nothing is sent and nothing else is tried.
    BadRequest(Told),
    /// The request is valid in the client's protocol but cannot be put into a target's
    /// (400): a file by URL, a server tool only Anthropic runs. Another target,
    /// one speaking the client's protocol typically, may still take it.
    Untranslatable(String),
    /// An [`Error::Untranslatable`] about one request field, which only a source of the
    /// client's own protocol takes (`previous_response_id`, a forced hosted tool).
    UntranslatableField {
        /// The request field.
        field: Field,
        /// What is wrong, after the field.
        said: String,
    },
    /// A request field the chosen upstream's protocol cannot express (400).
    Unsupported {
        /// The request field.
        field: Field,
        /// The provider that cannot express it.
        provider: String,
    },
    /// No endpoint at this path (404).
    NoEndpoint {
        /// The request's method.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The path is an endpoint, but not for this method (405).
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The path asked for.
        path: String,
        /// The methods it takes, for the `Allow` header.
        allowed: &'static str,
    },
    /// No source serves the requested model (404).
    UnknownModel {
        /// The model the client asked for.
        model: String,
        /// A few ids that do exist, to suggest.
        known: Vec<String>,
        /// What would serve it or the name that reaches it, when something is known
        /// (boxed: errors ride on every Result in the request path).
        hint: Option<Box<str>>,
    },
    /// The request body exceeds the configured limit (413).
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request body broke off or was malformed on the wire (400); the connection
    /// closes, since where the next request would start is unknown.
    BodyUnreadable(String),
    /// The client did not send its whole request in time (408).
    ClientTimeout {
        /// The deadline in seconds.
        secs: f64,
    },
    /// The client presented no key, or a wrong one (401).
    Unauthorized {
        /// The config file its keys are listed in, as a client may be told it
        /// (the home directory as `~`, a file elsewhere by its name); `None` when none was read.
        config: Option<Box<str>>,
    },
    /// The client's `Authorization` header has no `Bearer ` before its key (401).
    KeyWithoutBearer,
    /// A key header that takes the key alone (`x-api-key`) was sent `Bearer KEY` (401).
    BearerInKeyHeader {
        /// The header's name, as sent in lower case.
        header: &'static str,
    },
    /// A web page's request (its `Origin` is not this machine) while clients need no
    /// key (403): any site the browser visits could otherwise spend the keys and logins.
    FromWebPage {
        /// The request's `Origin`.
        origin: Box<str>,
    },
    /// A request whose `Host` is a name not known to be this machine, while clients
    /// need no key (403): a web page whose name was pointed at this machine (DNS
    /// rebinding) could otherwise read Routeplane's answers.
    ForeignHost {
        /// The request's `Host`.
        host: Box<str>,
    },
    /// A subscription provider has no usable login (401).
    LoginNeeded {
        /// The provider id to log in to.
        provider: String,
        /// Why the stored credential cannot be used.
        reason: String,
    },
    /// A subscription login could not be refreshed just now (502): its token endpoint
    /// was unreachable, slow, or answered something other than an OAuth answer. The
    /// login is kept and a request after a short pause tries again (one after another,
    /// each waiting on a down endpoint, would hold them all); a 401 would tell a client such
    /// as Claude Code that its own key is bad.
    RefreshFailed {
        /// The provider id whose login it is.
        provider: String,
        /// What the token endpoint did.
        reason: String,
    },
    /// A provider that needs a key has none, and no login (401); nothing was sent.
    NoCredential {
        /// The provider id.
        provider: String,
        /// What to set or run, e.g. `set OPENAI_API_KEY or ROUTEPLANE_OPENAI_API_KEY`.
        hint: String,
    },
    /// The only local source that served a model is down (503), so it is not a typo.
    SourceDown {
        /// `llamacpp (127.0.0.1:8080)`.
        source: String,
        /// The model the client asked for.
        model: String,
        /// When the source was last seen serving it (`12:03 UTC`).
        until: String,
    },
    /// A token endpoint refused a grant for good (`invalid_grant`, revoked): only a new
    /// login helps, so no refresh is tried again.
    AuthRefused(String),
    /// An upstream could not be reached or broke the protocol (502).
    Upstream {
        /// The provider id.
        provider: String,
        /// What happened, without secrets.
        reason: String,
    },
    /// A source's answer that is its own failure, read as its error `status` would be:
    /// Gemini's MALFORMED_FUNCTION_CALL with nothing answered, a 502 asked again, where
    /// an answer that cannot be read ([`Error::Upstream`]) moves on.
    SourceFailed {
        /// The status the source's failure counts as.
        status: u16,
        /// What the source said, without secrets.
        reason: String,
    },
    /// Every target of a request failed; `status` is what the client gets.
    Exhausted {
        /// The status to answer with (502; the client protocol's overload status, 529
        /// or 503, when any attempt was overloaded; else 429 when any was rate
        /// limited; 400 when no target could take the request and nothing was sent;
        /// 404 when no endpoint had the model).
        status: u16,
        /// One `provider:model → status/reason` line per attempt.
        attempts: Vec<String>,
        /// The field the first target's 400 named, when the 400 is the client's.
        param: Option<Field>,
    },
    /// `workers` requests are running and this one could not start in time (503).
    Busy {
        /// The `workers` limit that was reached.
        workers: usize,
        /// The config file `workers` is set in, as for [`Error::Unauthorized`].
        config: Option<Box<str>>,
    },
    /// The server is stopping and takes no new requests (503).
    Stopping,
    /// An OAuth flow or token operation failed.
    Auth(String),
    /// `routeplane logout` could not forget a login (the token file is unusable).
    Logout(String),
    /// A bug: something that should not happen did (500).
    Internal(String),
}

/// A 400's words, with the request field they are about when there is one, kept apart:
/// the message leads with it (`` `max_tokens` must be … ``), and OpenAI's error body
/// names it in `param`, which SDKs show.
#[derive(Debug, Clone)]
pub struct Told {
    /// The request field, as the client writes it (`tool_choice.type`).
    pub field: Option<Cow<'static, str>>,
    /// What is wrong: after the field when there is one, else the whole message.
    pub said: String,
}

impl From<String> for Told {
    fn from(said: String) -> Told {
        Told { field: None, said }
    }
}

impl fmt::Display for Told {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(field) = &self.field {
            write!(f, "`{field}` ")?;
        }
        f.write_str(&self.said)
    }
}

/// A request field some target's protocol cannot take, by name: a byte, so that a
/// failure's kind carries it for the client's `param` and every failure stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `n` above 1.
    N,
    /// `logprobs`.
    Logprobs,
    /// `tools`.
    Tools,
    /// `response_format`.
    ResponseFormat,
    /// Gemini's `cachedContent`.
    CachedContent,
    /// Gemini's `candidateCount` above 1.
    CandidateCount,
    /// `previous_response_id`.
    PreviousResponseId,
    /// `tool_choice`.
    ToolChoice,
}

impl Field {
    /// The field as the client writes it.
    pub fn name(self) -> &'static str {
        match self {
            Field::N => "n",
            Field::Logprobs => "logprobs",
            Field::Tools => "tools",
            Field::ResponseFormat => "response_format",
            Field::CachedContent => "cachedContent",
            Field::CandidateCount => "candidateCount",
            Field::PreviousResponseId => "previous_response_id",
            Field::ToolChoice => "tool_choice",
        }
    }
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_)
            | Error::Untranslatable(_)
            | Error::UntranslatableField { .. }
            | Error::BodyUnreadable(_)
            | Error::Unsupported { .. }
            | Error::Usage(_) => 400,
            Error::Unauthorized { .. }
            | Error::KeyWithoutBearer
            | Error::BearerInKeyHeader { .. }
            | Error::LoginNeeded { .. }
            | Error::NoCredential { .. }
            | Error::AuthRefused(_) => 401,
            Error::FromWebPage { .. } | Error::ForeignHost { .. } => 403,
            Error::UnknownModel { .. } | Error::NoEndpoint { .. } => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::ClientTimeout { .. } => 408,
            Error::TooLarge { .. } => 413,
            Error::Upstream { .. } | Error::Auth(_) | Error::RefreshFailed { .. } => 502,
            Error::Exhausted { status, .. } | Error::SourceFailed { status, .. } => *status,
            Error::Busy { .. } | Error::Stopping | Error::SourceDown { .. } => 503,
            Error::Io { .. } | Error::Config { .. } | Error::Logout(_) | Error::Internal(_) => 500,
        }
    }

    /// Shorthand for a 400 with a message.
    pub fn bad_request(msg: impl Into<String>) -> Error {
        Error::BadRequest(Told::from(msg.into()))
    }

    /// Shorthand for a 400 about the request field `field`: its message is `said`
    /// after the field.
    pub fn bad_field(field: &'static str, said: impl Into<String>) -> Error {
        Error::bad_key(Cow::Borrowed(field), said.into())
    }

    /// [`Error::bad_field`] for a field named by the client, any top-level key.
    pub fn bad_key(field: Cow<'static, str>, said: String) -> Error {
        Error::BadRequest(Told {
            field: Some(field),
            said,
        })
    }

    /// The request field a 400 is about, for OpenAI's `param`; `None` for any other.
    pub fn param(&self) -> Option<&str> {
        match self {
            Error::BadRequest(told) => told.field.as_deref(),
            Error::Unsupported { field, .. } | Error::UntranslatableField { field, .. } => {
                Some(field.name())
            }
            Error::Exhausted { param, .. } => param.map(Field::name),
            _ => None,
        }
    }

    /// Shorthand for an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// After a path Routeplane does not serve: what the client's base URL or path most
/// likely got wrong, when the path tells.
fn path_hint(f: &mut fmt::Formatter<'_>, path: &str) -> fmt::Result {
    // A served endpoint under another prefix is a client's base URL gone wrong
    // (`/v1/v1/messages`: an Anthropic client given the OpenAI base URL).
    let served = ["/completions", "/messages", "/responses", "/models"];
    let trimmed = path.trim_end_matches('/');
    let gemini = [":generateContent", ":streamGenerateContent", ":countTokens"];
    if path.contains("//") {
        // A base URL written with a last `/` to which the client adds `/chat/…`.
        f.write_str(
            ". The path has `//`: write the client's base URL without a last `/` \
             (Routeplane's address followed by `/v1` for an OpenAI client, the \
             address alone for an Anthropic one)",
        )
    } else if trimmed.len() < path.len() && served.iter().any(|s| trimmed.ends_with(s)) {
        write!(f, ". Leave out the last `/`: ask for {trimmed}")
    } else if [
        "/v1/chat/completion",
        "/v1/completion",
        "/v1/message",
        "/v1/response",
    ]
    .contains(&trimmed)
    {
        // The plural's `s` left out, the commonest slip typing a path by hand.
        write!(f, ". Did you mean {trimmed}s?")
    } else if gemini.iter().any(|m| path.ends_with(m)) {
        // `/v1beta/v1beta/models/…`: the google-genai SDK given a base URL with `/v1beta`.
        f.write_str(
            ". Set a Gemini client's base URL to Routeplane's address alone; it adds \
             `/v1beta/models/MODEL:generateContent` itself",
        )
    } else if path.starts_with("/v1beta/models/") || path.starts_with("/v1/models/") {
        write!(
            f,
            ". A Gemini call names its method after the model: POST {trimmed}:generateContent \
             (or :streamGenerateContent, :countTokens)"
        )
    } else if served.iter().any(|s| path.ends_with(s)) {
        f.write_str(
            ". Set an OpenAI client's base URL to Routeplane's address followed by \
             `/v1`, and an Anthropic client's to the address alone",
        )
    } else if path.ends_with("/embeddings") || path.ends_with("/embed") {
        f.write_str(
            ". Embeddings are not relayed: point the embedding client at the \
             model server itself",
        )
    } else if path.starts_with("/api/") {
        // Ollama's own API: `/api/chat`, `/api/generate`, `/api/tags`.
        f.write_str(
            ". Ollama's own API (/api/…) is not served: choose the client's \
             OpenAI-compatible provider, with Routeplane's address followed by \
             `/v1` as its base URL",
        )
    } else {
        Ok(())
    }
}

/// The config file a setting is written in, as an error names it: the one the server
/// read, not the name it is looked for by (`-c` names another, and the user's config
/// directory holds one too).
fn file(config: &Option<Box<str>>) -> &str {
    config.as_deref().unwrap_or("a config file")
}

/// After an `OPTIONS` refused: it is a browser's cross-origin (CORS) preflight, which is
/// never answered, since any web page could otherwise spend the logins and keys of a
/// proxy that lets every local client in (`skip_auth`).
fn cross_origin(f: &mut fmt::Formatter<'_>, method: &str) -> fmt::Result {
    if method != "OPTIONS" {
        return Ok(());
    }
    f.write_str(
        ". An OPTIONS request is a browser's cross-origin (CORS) preflight, which \
         Routeplane does not answer: any web site could then use your logins and keys; call \
         Routeplane from a server or a local app, not from a page in a browser",
    )
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg} (see --help)"),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Config {
                path,
                line,
                col,
                msg,
            } => match (line, col) {
                (0, _) => write!(f, "{path}: {msg}"),
                (l, 0) => write!(f, "{path}:{l}: {msg}"),
                (l, c) => write!(f, "{path}:{l}:{c}: {msg}"),
            },
            Error::BadRequest(told) => told.fmt(f),
            Error::Untranslatable(msg) => f.write_str(msg),
            Error::UntranslatableField { field, said } => write!(f, "`{}` {said}", field.name()),
            Error::Unsupported { field, provider } => {
                f.write_str(&unexpressed(field.name(), provider))
            }
            Error::UnknownModel { model, known, hint } => {
                write!(f, "unknown model `{model}`")?;
                if known.is_empty() {
                    // Not only "configured": most are found (a local server, a key's list),
                    // and `models` says which of those is missing.
                    write!(
                        f,
                        "; no models are configured or detected (`routeplane models` says \
                         what would serve one)"
                    )?;
                } else {
                    write!(f, "; known models include: {}", known.join(", "))?;
                }
                match hint {
                    Some(hint) => write!(f, ". {hint}"),
                    None => Ok(()),
                }
            }
            Error::TooLarge { limit } => write!(
                f,
                "request body is larger than the limit of {limit} bytes (raise `limits.max_body_bytes`)"
            ),
            Error::BodyUnreadable(reason) => {
                write!(f, "could not read the request body: {reason}")
            }
            Error::ClientTimeout { secs } => write!(
                f,
                "the request body did not arrive within {} (`limits.client_timeout_secs`)",
                seconds(*secs)
            ),
            Error::FromWebPage { origin } => write!(
                f,
                "refused a request from a web page (Origin: {origin}): with no client key \
                 needed, any site the browser visits could spend your keys and logins \
                 through Routeplane. Call Routeplane from a program, or a page on this \
                 machine (localhost); a browser-based client needs a key: set `skip_auth: \
                 false` and list it under `keys:`"
            ),
            Error::ForeignHost { host } => write!(
                f,
                "refused a request addressed to `{host}`, a name not known to be this \
                 machine: with no client key needed, a web page whose name was pointed at this \
                 machine (DNS rebinding) could read Routeplane's answers. Call Routeplane at \
                 127.0.0.1, localhost or another IP address; to call it by this name, list \
                 the name under `allowed_hosts:`, or require client keys (`skip_auth: false` \
                 and `keys:`)"
            ),
            Error::KeyWithoutBearer => f.write_str(
                "the `Authorization` header has no `Bearer ` before the key: send \
                 `Authorization: Bearer KEY` or `x-api-key: KEY`",
            ),
            Error::BearerInKeyHeader { header } => write!(
                f,
                "the `{header}` header takes the key alone: send `{header}: KEY` without \
                 `Bearer `, or `Authorization: Bearer KEY`"
            ),
            Error::Unauthorized { config } => write!(
                f,
                "missing or invalid API key: send `Authorization: Bearer KEY`, `x-api-key: KEY` \
                 or `x-goog-api-key: KEY` (or `?key=KEY`) with a key listed under `keys:` in {}",
                file(config)
            ),
            Error::NoEndpoint { method, path } => {
                write!(
                    f,
                    "no endpoint {method} {path}; Routeplane serves GET /v1/models, POST \
                     /v1/chat/completions, /v1/completions, /v1/messages, /v1/responses and \
                     /v1beta/models/{{model}}:generateContent"
                )?;
                // A preflight's path is the page's to fix, not a base URL.
                if method != "OPTIONS" {
                    path_hint(f, path)?;
                }
                cross_origin(f, method)
            }
            Error::MethodNotAllowed {
                method,
                path,
                allowed,
            } => {
                // `Allow`'s list, read as a sentence: "takes GET or HEAD".
                let allowed = allowed.replace(", ", " or ");
                write!(f, "{path} takes {allowed}, not {method}")?;
                cross_origin(f, method)
            }
            Error::LoginNeeded { provider, reason } => write!(
                f,
                "provider `{provider}` needs a login ({reason}); run `routeplane login {provider}`"
            ),
            Error::RefreshFailed { provider, reason } => write!(
                f,
                "provider `{provider}` could not refresh its login ({reason}); the login is \
                 kept and a request after a short pause (at most a minute) tries again: if \
                 this lasts, check this machine's network, or run `routeplane login {provider}`"
            ),
            Error::NoCredential { provider, hint } => {
                write!(f, "provider `{provider}` has no credential: {hint}")
            }
            Error::SourceDown {
                source,
                model,
                until,
            } => write!(
                f,
                "source {source} is down; it served {model} until {until}. Start it again, \
                 or name another model"
            ),
            Error::AuthRefused(msg) => write!(f, "login refused: {msg}"),
            Error::Upstream { provider, reason } => {
                write!(f, "upstream `{provider}` failed: {reason}")
            }
            Error::SourceFailed { reason, .. } => f.write_str(reason),
            Error::Exhausted { attempts, .. } => {
                write!(f, "every target failed: {}", attempts.join("; "))
            }
            Error::Busy { workers, config } => write!(
                f,
                "busy: {workers} {} running (the `workers` limit); retry shortly, or raise \
                 `workers` in {}",
                if *workers == 1 {
                    "request is"
                } else {
                    "requests are"
                },
                file(config)
            ),
            Error::Stopping => f.write_str("routeplane is stopping; retry shortly"),
            Error::Auth(msg) => write!(f, "login failed: {msg}"),
            Error::Logout(msg) => write!(f, "logout: {msg}"),
            Error::Internal(msg) => write!(f, "internal error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// What [`Error::Unsupported`] says of `what`, also said of a content part, which is no
/// request field of its own ([`Error::Untranslatable`], with no `param`).
pub fn unexpressed(what: &str, provider: &str) -> String {
    format!(
        "the request field `{what}` cannot be expressed for provider `{provider}`; remove it \
         or choose another model"
    )
}

/// `1 second`, `0.5 seconds`, `30 seconds`: a config value in seconds, read aloud.
pub(crate) fn seconds(secs: f64) -> String {
    if secs == 1.0 {
        "1 second".to_string()
    } else {
        format!("{secs} seconds")
    }
}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Error {
        let file = match &e {
            lexopt::Error::UnexpectedArgument(a) => file_flag(&a.to_string_lossy()),
            _ => String::new(),
        };
        Error::Usage(format!("{e}{file}"))
    }
}

/// For a word that names a YAML file (`config validate my.yaml`, as other tools take a
/// file), `; …` saying the flag that names one; else nothing.
pub fn file_flag(word: &str) -> String {
    if word.ends_with(".yaml") || word.ends_with(".yml") {
        format!("; name a config file with -c: `-c {word}`")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        // Errors ride on every Result in the request path.
        assert!(std::mem::size_of::<Error>() <= 80);
    }

    #[test]
    fn statuses_follow_the_table() {
        assert_eq!(Error::bad_request("x").status(), 400);
        assert_eq!(Error::Unauthorized { config: None }.status(), 401);
        let unknown = Error::UnknownModel {
            model: "m".into(),
            known: vec![],
            hint: None,
        };
        assert_eq!(unknown.status(), 404);
        assert_eq!(Error::TooLarge { limit: 1 }.status(), 413);
        let up = Error::Upstream {
            provider: "p".into(),
            reason: "r".into(),
        };
        assert_eq!(up.status(), 502);
        let busy = Error::Busy {
            workers: 1,
            config: None,
        };
        assert_eq!(busy.status(), 503);
        assert_eq!(Error::Stopping.status(), 503);
    }

    #[test]
    fn timeouts_read_as_english() {
        let one = Error::ClientTimeout { secs: 1.0 }.to_string();
        assert!(one.contains("within 1 second ("), "{one}");
        let half = Error::ClientTimeout { secs: 0.5 }.to_string();
        assert!(half.contains("within 0.5 seconds ("), "{half}");
    }

    #[test]
    fn config_error_names_line_and_column() {
        let e = Error::Config {
            path: "routeplane.yaml".into(),
            line: 3,
            col: 5,
            msg: "unknown key `api_bsae`".into(),
        };
        assert_eq!(e.to_string(), "routeplane.yaml:3:5: unknown key `api_bsae`");
    }
}
