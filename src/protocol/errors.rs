//! What an upstream's error says: its message, its code, the status it names, and an
//! error that came as a 200 answer; OpenAI's `error.type` for a status.

use serde_json::Value;

/// Reads the human message out of an upstream error body of any known shape
/// (OpenAI, Anthropic, vLLM's flat form, Ollama's `{"error": "…"}`, Codex's `detail`).
pub fn upstream_error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        let trimmed = text.trim();
        return if trimmed.is_empty() {
            "no error body".to_string()
        } else {
            trimmed.chars().take(500).collect()
        };
    };
    let candidates = [
        &v["error"]["message"],
        &v["error"],
        &v["message"],
        &v["detail"],
        &v["response"]["error"]["message"],
    ];
    for c in candidates {
        if let Some(s) = c.as_str() {
            return s.to_string();
        }
    }
    text.chars().take(500).collect()
}

/// An upstream error body's OpenAI `code` (`invalid_value`, `context_length_exceeded`…)
/// and `param` (the request field it is about, `messages[0].content`), for an
/// OpenAI-shaped client whose source spoke another protocol than its own, or whose
/// targets did; the other shapes have no such fields. Each is `None` when the body has
/// none, or not a short printable string: it is told the client as it is.
pub fn upstream_error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let name = |key: &str| {
        let s = v["error"][key].as_str()?;
        let fits = !s.is_empty() && s.len() <= 200 && !s.contains(char::is_control);
        fits.then(|| s.to_string())
    };
    (name("code"), name("param"))
}

/// The HTTP status an error object of any known shape stands for: its numeric `code`
/// (OpenRouter, Gemini), else its `type` or `code` name (OpenAI, Anthropic, Codex).
pub fn status_of_error(err: &Value) -> u16 {
    if let Some(n) = err["code"].as_u64().filter(|n| (400..600).contains(n)) {
        return n as u16;
    }
    // OpenAI's rate limits are `type: "tokens"` with `code: "rate_limit_exceeded"`, a
    // Responses error event is `type: "error"` with its `code`: the first name known wins.
    [&err["code"], &err["type"]]
        .iter()
        .filter_map(|n| status_of_name(n.as_str()?))
        .next()
        .unwrap_or(502)
}

/// The HTTP status an error's `type` or `code` name stands for, if it is a known one.
fn status_of_name(name: &str) -> Option<u16> {
    Some(match name {
        "invalid_request_error" | "context_length_exceeded" | "invalid_prompt" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error"
        | "rate_limit_exceeded"
        | "usage_limit_reached"
        | "insufficient_quota"
        | "usage_not_included" => 429,
        // Anthropic's, which it sends as HTTP 529; in a stream's error event it is the
        // same overload, and is told as the status Anthropic gives it.
        "overloaded_error" => 529,
        "api_error" | "server_error" => 502,
        _ => return None,
    })
}

/// The status of an answer that came with a 2xx but is an error, `None` for an answer.
/// OpenRouter documents it: once it has begun a request, a failure comes back with a
/// 200 and `{"error": {"code": 502, …}}` as the body. Anthropic (and gateways in its
/// format) may send its own error body, `{"type": "error", "error": {…}}`, with a 200.
pub(super) fn error_in_answer(body: &[u8]) -> Option<u16> {
    // Such a body leads with its `"error"` key, or with `"type": "error"`; an answer
    // never does. Looked at without a search: every whole answer passes here (a search
    // of each measured about 1% of the chat path's throughput).
    let first_key = body
        .trim_ascii_start()
        .strip_prefix(b"{")
        .map(<[u8]>::trim_ascii_start);
    let typed_error = |k: &[u8]| {
        k.strip_prefix(b"\"type\"")
            .and_then(|v| v.trim_ascii_start().strip_prefix(b":"))
            .is_some_and(|v| v.trim_ascii_start().starts_with(b"\"error\""))
    };
    if !first_key.is_some_and(|k| k.starts_with(b"\"error\"") || typed_error(k)) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        error: Option<Value>,
        choices: Option<serde::de::IgnoredAny>,
        content: Option<serde::de::IgnoredAny>,
        candidates: Option<serde::de::IgnoredAny>,
        output: Option<serde::de::IgnoredAny>,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    let error = a.error.filter(|e| !e.is_null())?;
    let answered =
        a.choices.is_some() || a.content.is_some() || a.candidates.is_some() || a.output.is_some();
    (!answered).then(|| status_of_error(&error))
}

/// The OpenAI `error.type` for a status, shared by the Chat and Responses shapes.
pub fn openai_error_type(status: u16) -> &'static str {
    match status {
        400 | 404 | 405 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}
