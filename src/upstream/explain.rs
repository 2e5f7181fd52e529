//! Why a stream ended before its first event: the same request once more, unstreamed.
//!
//! llama.cpp answers a streamed request whose prompt does not fit its context with 200
//! and an empty stream; the same request without streaming gets a 400 that says so.
//! The second ask is capped at a token or so, so a source whose stream merely broke
//! spends next to nothing on it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Abandon, BodyError, Client, Header, Net, Reply, SendError};

/// The most bytes of the second answer read.
const LIMIT: u64 = 1024 * 1024;

/// Asks `url` again without streaming; when the answer is a context-window error, it
/// comes back as OpenAI's 400 `context_length_exceeded` (for the relay to classify as
/// upstream errors are), naming the prompt's size and the window when the source said
/// them. `None` for anything else: the empty stream then stays an early end. The answer's
/// head is awaited only `within` (the attempt's own patience), so a source that is
/// merely slow does not hold up failover. A long wait asks `abandon` whether to give
/// up, and a wait given up is `Err(SendError::Abandoned)`: no fault of the source's.
pub fn explain_empty_stream(
    client: &Client,
    url: &str,
    headers: &[Header],
    body: &[u8],
    within: Duration,
    abandon: Abandon<'_>,
) -> Result<Option<Reply>, SendError> {
    let reply = match ask_unstreamed(client, url, headers, body, within, abandon) {
        Err(SendError::Abandoned) => return Err(SendError::Abandoned),
        Err(_) => return Ok(None),
        Ok(reply) => reply,
    };
    if (200..300).contains(&reply.status) {
        return Ok(None);
    }
    let (passed, retry_after) = (reply.headers.clone(), reply.retry_after);
    let answer = match reply.read_all(LIMIT, abandon) {
        Ok(answer) => answer,
        Err(BodyError::Abandoned) => return Err(SendError::Abandoned),
        Err(BodyError::Failed(_) | BodyError::TooLarge { .. } | BodyError::Timeout) => {
            return Ok(None);
        }
    };
    // Only a context-window error explains an empty stream: any other error may be about
    // the changes made for this second ask (a model that refuses `max_tokens`), so the
    // empty stream stays what it was.
    Ok(context_error(&answer).map(|normal| Reply {
        status: 400,
        content_type: "application/json".into(),
        headers: passed,
        retry_after,
        coding: None,
        body: super::Source::Bytes(normal),
    }))
}

/// Sends `body` again without streaming (and asking for next to no answer).
fn ask_unstreamed(
    client: &Client,
    url: &str,
    headers: &[Header],
    body: &[u8],
    within: Duration,
    abandon: Abandon<'_>,
) -> Result<Reply, SendError> {
    let not_json = || SendError::Network(Net::Other, "the request is not a JSON object".into());
    let mut v: Value = serde_json::from_slice(body).map_err(|_| not_json())?;
    let obj = v.as_object_mut().ok_or_else(not_json)?;
    obj.insert("stream".into(), Value::Bool(false));
    obj.shift_remove("stream_options");
    // The prompt is what is in question, not the answer: ask for (almost) none of it.
    let mut capped = false;
    for (field, least) in [
        ("max_tokens", 1),
        ("max_completion_tokens", 1),
        ("max_output_tokens", 16),
    ] {
        if obj.contains_key(field) {
            obj.insert(field.into(), json!(least));
            capped = true;
        }
    }
    if !capped && url.ends_with("/chat/completions") {
        obj.insert("max_tokens".into(), json!(1));
    }
    let bytes = serde_json::to_vec(&v).map_err(|_| not_json())?;
    let headers: Vec<Header> = headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("accept"))
        .cloned()
        .collect();
    client.post_within(url, &headers, &bytes, within, abandon)
}

/// An error body that says the prompt does not fit, rewritten as OpenAI's
/// `context_length_exceeded`; `None` for any other error.
fn context_error(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = &v["error"];
    let text = format!(
        "{} {} {}",
        err["type"].as_str().unwrap_or_default(),
        err["code"].as_str().unwrap_or_default(),
        err["message"].as_str().unwrap_or_default()
    )
    .to_ascii_lowercase();
    let about_context = [
        "exceed_context_size",
        "context_length_exceeded",
        "context size",
        "context length",
        "context window",
    ]
    .iter()
    .any(|n| text.contains(n));
    if !about_context {
        return None;
    }
    // llama.cpp names both numbers; others may name neither.
    let prompt = err["n_prompt_tokens"].as_u64();
    let window = err["n_ctx"].as_u64();
    // Worded as Anthropic words it ("prompt is too long: N tokens > M maximum"): agents
    // such as Claude Code recognise that and compact their context.
    let what = match (prompt, window) {
        (Some(p), Some(w)) => format!("prompt is too long: {p} tokens > {w} maximum"),
        (Some(p), None) => format!("prompt is too long: {p} tokens > the model's context window"),
        (None, Some(w)) => {
            format!("prompt is too long: more than {w} tokens, the model's context window")
        }
        (None, None) => "prompt is too long for the model's context window".to_string(),
    };
    let message = format!(
        "{what}; shorten it, or give the model a larger context (llama.cpp: --ctx-size; \
         Ollama: OLLAMA_CONTEXT_LENGTH or num_ctx). The source said: {}",
        err["message"].as_str().unwrap_or("nothing more")
    );
    let normal = json!({"error": {
        "message": message,
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }});
    Some(normal.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_overflow_becomes_context_length_exceeded() {
        let body = br#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#;
        let v: Value = serde_json::from_slice(&context_error(body).unwrap()).unwrap();
        assert_eq!(v["error"]["code"], "context_length_exceeded");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("prompt is too long: 5000 tokens > 4096 maximum; "),
            "{msg}"
        );
        assert!(context_error(br#"{"error":{"message":"bad temperature"}}"#).is_none());
    }
}
