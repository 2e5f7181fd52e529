//! What a request's method and path name, read before its body: the endpoint (a
//! `/v1`-less alias included), the protocol its errors are written in, a Gemini model
//! call, and the names its log line gives them.

use std::borrow::Cow;

use crate::protocol::Protocol;

/// The endpoint a path names, without its query string. An OpenAI client whose base URL
/// lacks `/v1` asks for `/chat/completions`, `/completions`, `/responses` or `/models`:
/// the same endpoints.
pub(super) fn route_path(url: &str) -> &str {
    let path = sent_path(url);
    alias_of(path).unwrap_or(path)
}

/// A URL's path as sent, without its query string: what the log line names, as a
/// user would grep for it (`/chat/completions` from a base URL without `/v1`).
pub(super) fn sent_path(url: &str) -> &str {
    // A byte search, run twice a request: through `split` it was ~190 instructions a
    // call; memchr looks at a word of bytes at a time, not one.
    match memchr::memchr(b'?', url.as_bytes()) {
        Some(at) => &url[..at],
        None => url,
    }
}

/// The `/v1` endpoint a `/v1`-less path is another name for.
pub(super) fn alias_of(path: &str) -> Option<&'static str> {
    Some(match path {
        "/chat/completions" => "/v1/chat/completions",
        "/completions" => "/v1/completions",
        "/responses" => "/v1/responses",
        "/models" => "/v1/models",
        _ => return None,
    })
}

/// The generation endpoints (Gemini's are in its paths): POST only, and counted even
/// when refused.
pub(super) const GENERATION: [&str; 4] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/messages",
    "/v1/responses",
];

/// True for a request to a generation endpoint: counted (ledger, counters) even when
/// refused.
pub(super) fn is_generation(method: &tiny_http::Method, path: &str) -> bool {
    *method == tiny_http::Method::Post
        && (GENERATION.contains(&path)
            || gemini_call(path).is_some_and(|(_, m)| m != "countTokens"))
}

/// The paths nearly every request asks for: the log line names them without a copy,
/// the `/v1`-less aliases too (it names the path as sent).
const KNOWN_PATHS: [&str; 14] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/messages",
    "/v1/responses",
    "/v1/models",
    "/v1/messages/count_tokens",
    "/health",
    "/metrics",
    "/status.json",
    "/",
    "/chat/completions",
    "/completions",
    "/responses",
    "/models",
];

/// `path` for the log line: a known one without a copy (this is made per request).
pub(super) fn path_name(path: &str) -> Cow<'static, str> {
    match KNOWN_PATHS.iter().find(|k| **k == path) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(path.to_string()),
    }
}

/// The method for the log line: a standard one without a copy.
pub(super) fn method_name(method: &tiny_http::Method) -> Cow<'static, str> {
    use tiny_http::Method::*;
    Cow::Borrowed(match method {
        Get => "GET",
        Post => "POST",
        Head => "HEAD",
        Put => "PUT",
        Delete => "DELETE",
        Options => "OPTIONS",
        Patch => "PATCH",
        other => return Cow::Owned(other.as_str().to_string()),
    })
}

/// The protocol errors for this request are written in: its endpoint's; for a path
/// Routeplane does not serve, Anthropic's when the path is Anthropic's (`/v1/messages/
/// batches`, `/v1/v1/messages`: an Anthropic client given a base URL with `/v1`) or the
/// client sends `anthropic-version` (the Anthropic SDK's `models.retrieve`), else OpenAI's.
/// `anthropic_version` is asked only then: a request's header list is made only when
/// asked for (about 3 400 instructions, callgrind), and a served path never needs it.
/// A GET of `/v1/models/{id}` names a model even when the id has a colon
/// (`ollama:qwen2`): only a POST there is a Gemini call.
pub(super) fn protocol_for(
    method: &tiny_http::Method,
    url: &str,
    anthropic_version: impl FnOnce() -> bool,
) -> Protocol {
    use tiny_http::Method::{Get, Head};
    let reads = matches!(method, Get | Head);
    match route_path(url) {
        "/v1/chat/completions" => Protocol::Chat,
        "/v1/messages" | "/v1/messages/count_tokens" => Protocol::Anthropic,
        "/v1/responses" => Protocol::Responses,
        "/v1/completions" => Protocol::Completions,
        p if p.starts_with("/v1beta/") || (!reads && gemini_call(p).is_some()) => Protocol::Gemini,
        p if p.ends_with("/messages") || p.contains("/messages/") => Protocol::Anthropic,
        _ if anthropic_version() => Protocol::Anthropic,
        _ => Protocol::Chat,
    }
}

/// A Gemini model call, `/v1beta/models/{model}:{method}` (or `/v1/…`): the model
/// (percent-decoded) and the method. The method is after the LAST colon, since model
/// ids have colons of their own (`ollama:llama3.1:8b`).
pub(super) fn gemini_call(path: &str) -> Option<(String, &str)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() || method.is_empty() {
        return None;
    }
    Some((percent_decode(model), method))
}

/// `%XX` escapes decoded; anything malformed is kept as it is.
pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of a query parameter, percent-decoded.
pub(super) fn query_param(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(&v.replace('+', " ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_names_the_path_as_sent_and_a_common_one_without_a_copy() {
        assert_eq!(route_path("/chat/completions?x=1"), "/v1/chat/completions");
        assert_eq!(sent_path("/chat/completions?x=1"), "/chat/completions");
        for path in ["/v1/chat/completions", "/chat/completions", "/models"] {
            assert!(
                matches!(path_name(path), Cow::Borrowed(p) if p == path),
                "{path}"
            );
        }
    }

    #[test]
    fn gemini_paths_split_at_the_last_colon() {
        assert_eq!(
            gemini_call("/v1beta/models/ollama:llama3.1:8b:streamGenerateContent"),
            Some(("ollama:llama3.1:8b".to_string(), "streamGenerateContent"))
        );
        assert_eq!(
            gemini_call("/v1/models/ollama%3Allama3.1:generateContent"),
            Some(("ollama:llama3.1".to_string(), "generateContent"))
        );
        assert_eq!(gemini_call("/v1beta/models/plain"), None);
        assert_eq!(gemini_call("/v1/models"), None);
        assert_eq!(
            query_param("/x?alt=sse&key=a%2Bb", "key").as_deref(),
            Some("a+b")
        );
        assert_eq!(query_param("/x?alt=sse", "key"), None);
    }

    #[test]
    fn paths_pick_the_error_protocol() {
        use tiny_http::Method::{Get, Post};
        assert_eq!(
            protocol_for(&Post, "/v1beta/models/m:generateContent?key=k", || false),
            Protocol::Gemini
        );
        assert_eq!(
            protocol_for(&Post, "/v1/models/m:generateContent", || false),
            Protocol::Gemini
        );
        assert_eq!(protocol_for(&Post, "/v1/models", || false), Protocol::Chat);
        assert_eq!(
            protocol_for(&Post, "/v1/messages?beta=true", || false),
            Protocol::Anthropic
        );
        assert_eq!(
            protocol_for(&Post, "/v1/responses", || false),
            Protocol::Responses
        );
        assert_eq!(
            protocol_for(&Post, "/completions", || false),
            Protocol::Completions
        );
        assert_eq!(protocol_for(&Post, "/nope", || false), Protocol::Chat);
        assert_eq!(
            protocol_for(&Post, "/v1/v1/messages", || false),
            Protocol::Anthropic
        );
        assert_eq!(
            protocol_for(&Post, "/v1/messages/batches", || false),
            Protocol::Anthropic
        );
        assert_eq!(
            protocol_for(&Get, "/v1/models/x", || true),
            Protocol::Anthropic
        );
        // A GET names a model: the colon is the id's.
        assert_eq!(
            protocol_for(&Get, "/v1/models/ollama:qwen2", || false),
            Protocol::Chat
        );
        assert_eq!(
            protocol_for(&Get, "/v1beta/models/ollama:qwen2", || false),
            Protocol::Gemini
        );
        assert_eq!(
            protocol_for(&Post, "/v1/chat/completions", || true),
            Protocol::Chat
        );
    }
}
