//! Google Gemini (`generateContent`) ⇄ the chat hub: requests, answers, stream events and errors.
//!
//! Gemini speaks in `contents` (turns with a `role` of `user` or `model`) made of
//! `parts` (text, inline data, function calls and responses); the model is in the URL,
//! not the body, and a stream is a different method (`:streamGenerateContent`) rather
//! than a body field. Function calls usually carry no id, so ids are synthesised here,
//! from the turn's position, so that the same history always gets the same ids.
//! `source.rs` talks to a Gemini source, `client.rs` serves a Gemini client; the wire
//! facts both rely on, and what they share, are here.
//!
//! Wire facts used, with their sources (Google's REST reference for
//! `generativelanguage.googleapis.com/v1beta` at ai.google.dev/api and the Vertex AI
//! reference pages, read in stored copies; the google-genai Python SDK 3.6.1 source,
//! `types.py`, `models.py`, `_api_client.py`, `_base_url.py`; gemini-cli 0.61.0
//! `bundle/`, both installed by `make check`):
//! - `POST {base}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`
//!   (each event `data: <GenerateContentResponse>`, no end marker: the last event has a
//!   `finishReason`, with the last text, or after a call no parts at all: pydantic-ai
//!   #2631, req_llm #638), `:countTokens` → `{"totalTokens"}`; without `alt=sse` the
//!   stream is one JSON array of responses. The key is `x-goog-api-key` or `?key=` (SDK
//!   `_api_client.py` sets `x-goog-api-key`). Given a base URL (`http_options` or
//!   `GOOGLE_GEMINI_BASE_URL`), SDK 3.6.1 calls `/v1/models/…`, not `/v1beta` (measured).
//!   (source: ai.google.dev/api/generate-content)
//! - Request: `contents[{role, parts}]`, `systemInstruction` (a Content), `tools[{
//!   functionDeclarations[{name, description, parameters | parametersJsonSchema}]}]`,
//!   `toolConfig.functionCallingConfig{mode: AUTO|ANY|NONE|VALIDATED,
//!   allowedFunctionNames}`, `generationConfig{temperature, topP, topK, maxOutputTokens,
//!   stopSequences, candidateCount, seed, presencePenalty, frequencyPenalty,
//!   responseMimeType, responseSchema (OpenAPI subset, upper-case types) |
//!   responseJsonSchema (JSON Schema), thinkingConfig{thinkingBudget, includeThoughts,
//!   thinkingLevel}}`, `safetySettings`, `cachedContent`. (source:
//!   ai.google.dev/api/caching#Content, …/generate-content#generationconfig; SDK
//!   `GenerateContentConfig`)
//! - `thinkingConfig.thinkingBudget` ranges by model: 2.5 Pro 128 to 32768 (it cannot
//!   stop thinking), 2.5 Flash 0 to 24576, 2.5 Flash-Lite 512 to 24576; 0 is off and -1
//!   dynamic; a budget outside the model's range is refused. (source:
//!   ai.google.dev/gemini-api/docs/thinking#set-budget; js-genai `ThinkingConfig`: "the
//!   default values and allowed ranges are model dependent")
//! - Field names: a proto3 JSON parser takes a field's original snake_case name as
//!   well as its lowerCamelCase one, and Google's does (the protobuf JSON mapping,
//!   protobuf.dev/programming-guides/json); SDK 3.6.1 given a base URL sends several
//!   nested fields in snake_case (`inlineData.mime_type`, `parameters_json_schema`,
//!   `thinkingConfig.thinking_budget`: a tester's capture). `spelling.rs` reads both.
//! - Parts: `{text}`, `{text, thought: true}` (a thought summary), `{inlineData{mimeType,
//!   data}}`, `{fileData{mimeType, fileUri}}`, `{functionCall{id?, name, args}}`,
//!   `{functionResponse{id?, name, response: <object>}}`, and `thoughtSignature` on any
//!   part. `FunctionCall.id` is optional and the Developer API usually leaves it out.
//!   Gemini 3 rejects a function-call turn without its signature; gemini-cli sends the
//!   placeholder `skip_thought_signature_validator` for history it did not get from
//!   Gemini, and so does `source.rs` when the client did not give Gemini's own back (a
//!   hub reasoning detail naming the call), and `client.rs` on a Gemini client's calls
//!   from another source, which the client gives back as they came. gemini-cli answers
//!   a call with `{functionResponse{id, name, response: {output}}}`, the id its own
//!   when the model gave none. (source: ai.google.dev/gemini-api/docs/thought-signatures;
//!   gemini-cli `createFunctionResponsePart`, `SYNTHETIC_THOUGHT_SIGNATURE`)
//! - Response: `candidates[{content{role: "model", parts}, finishReason, index}]`,
//!   `promptFeedback{blockReason}` (a blocked prompt has no candidates),
//!   `usageMetadata{promptTokenCount, candidatesTokenCount, thoughtsTokenCount,
//!   cachedContentTokenCount, toolUsePromptTokenCount, totalTokenCount}`, `modelVersion`,
//!   `responseId`. `finishReason`: STOP, MAX_TOKENS, SAFETY, RECITATION, LANGUAGE, OTHER,
//!   BLOCKLIST, PROHIBITED_CONTENT, SPII, MALFORMED_FUNCTION_CALL, IMAGE_SAFETY; a call
//!   ends with STOP, not a tool reason. `candidatesTokenCount` excludes thoughts.
//!   (source: ai.google.dev/api/generate-content#FinishReason, #UsageMetadata)
//! - Errors: `{"error": {"code": <HTTP status>, "message", "status": "INVALID_ARGUMENT" |
//!   "UNAUTHENTICATED" | "PERMISSION_DENIED" | "NOT_FOUND" | "RESOURCE_EXHAUSTED" |
//!   "INTERNAL" | "UNAVAILABLE" | "DEADLINE_EXCEEDED"}}`. (source:
//!   cloud.google.com/apis/design/errors)
//!
//! Choices where the references are silent: a chat `tool` message whose text is not a
//! JSON object is sent as `response: {"result": text}` (the SDK's own examples); a
//! response of one string field (`output`, `result`, `content`) comes back to chat as
//! that string; `topK` travels through the hub as `top_k` but is not sent to a chat
//! upstream (OpenAI refuses the field, and gemini-cli always sends `topK: 64`); a
//! safety block with nothing produced is an empty answer, finished `content_filter`,
//! which the relay moves past while another endpoint is left, as for other filters
//! ([`blocked_answer`], [`Decoded::Blocked`](crate::protocol::Decoded::Blocked)); after
//! text has gone out it is the `content_filter` finish reason.

use serde_json::{Value, json};

use crate::body::RawBody;
use crate::protocol;

mod client;
mod source;
mod spelling;
#[cfg(test)]
mod tests;

pub use client::{Encoder, request_to_chat, response_from_chat};
pub use source::{Decoder, blocked_answer, delta, request_from_chat, response_to_chat};

/// Whether a whole answer to a Gemini client's `body` can be collected from a stream:
/// not with several candidates or log probabilities asked for, in either spelling.
pub fn collects_whole(body: &RawBody) -> bool {
    let Some(mut gc) = ["generationConfig", "generation_config"]
        .iter()
        .find_map(|k| body.get(k))
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
    else {
        return true;
    };
    spelling::generation_config(&mut gc);
    gc["candidateCount"].as_u64().is_none_or(|n| n <= 1) && gc["responseLogprobs"] != json!(true)
}

/// The placeholder signature Gemini 3 accepts on a function call it did not produce.
const SYNTHETIC_SIGNATURE: &str = "skip_thought_signature_validator";

/// The `format` of a hub reasoning detail that is a Gemini call's thought signature,
/// as OpenRouter names it (the detail's `id` is the call's).
pub(crate) const SIGNED_BY_GEMINI: &str = "google-gemini-v1";

/// Thinking budgets for the chat reasoning efforts; `xhigh` (GPT-5.1's) gets the
/// largest budget every 2.5 model takes (Flash's ceiling; Pro's is 32768).
const BUDGETS: [(&str, u64); 5] = [
    ("minimal", 512),
    ("low", 1024),
    ("medium", 8192),
    ("high", 24576),
    ("xhigh", 24576),
];

/// Google's `status` name for an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 | 529 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// The Google error body: `{"error": {"code", "message", "status"}}`.
pub fn error_json(status: u16, message: &str) -> Value {
    json!({"error": {"code": status, "message": message, "status": status_name(status)}})
}

/// The path after `api_base` for a method (`generateContent`, `countTokens`, …) of `model`.
pub fn method_path(model: &str, method: &str) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    // Tuned models are addressed by their full resource name (`tunedModels/x`).
    let resource = if model.contains('/') {
        model.to_string()
    } else {
        format!("models/{model}")
    };
    let mut out = String::with_capacity(resource.len() + method.len() + 2);
    out.push('/');
    for b in resource.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/@:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push(':');
    out.push_str(method);
    out
}

/// The upstream path for a generation call, streamed as SSE or not.
pub fn endpoint(model: &str, stream: bool) -> String {
    if stream {
        method_path(model, "streamGenerateContent?alt=sse")
    } else {
        method_path(model, "generateContent")
    }
}

/// A function name as the safe tail of an id (Anthropic allows `[A-Za-z0-9_-]` only).
fn id_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The id given to call `j` of the model turn at `turn` when Gemini gave none: the same
/// history always yields the same ids. A long name (an MCP tool's) is cut and hashed,
/// since OpenAI takes ids of at most 40 characters.
fn synthetic_id(turn: usize, j: usize, name: &str) -> String {
    let id = format!("call_{turn}_{j}_{}", id_safe(name));
    protocol::bounded_id(&id, protocol::chat::MAX_TOOL_ID).into_owned()
}

/// The thought signature for the call `id`, the `first` of its turn: Gemini's own when
/// a hub reasoning detail names the call, else on the first call the placeholder, since
/// Gemini 3 refuses a turn of calls without one.
fn signature<'a>(details: &'a [Value], id: &Value, first: bool) -> Option<&'a str> {
    let own = details
        .iter()
        .filter(|d| id.is_string() && d["format"] == SIGNED_BY_GEMINI && d["id"] == *id)
        .find_map(|d| d["data"].as_str());
    own.or(first.then_some(SYNTHETIC_SIGNATURE))
}

/// A Gemini `finishReason` → chat `finish_reason`.
fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// A chat `finish_reason` → Gemini `finishReason`.
fn gemini_finish(finish: &str) -> &'static str {
    match finish {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

/// Why an answer produced nothing usable, if a safety block is the reason.
fn blocked(resp: &Value) -> Option<String> {
    let reason = resp["promptFeedback"]["blockReason"].as_str()?;
    Some(format!("content filter: the prompt was blocked ({reason})"))
}

/// The message of a safety stop that produced nothing.
fn filtered(reason: &str) -> String {
    format!("content filter: the answer was blocked ({reason})")
}

/// Gemini usage → chat usage (completion tokens include thoughts, as OpenAI counts them);
/// null when Gemini reported none, and a cached or thinking count only when it gave
/// one: an absent count is not a zero (Gemini leaves both out when there are none).
fn usage_to_chat(u: &Value) -> Value {
    if !u.is_object() {
        return Value::Null;
    }
    let n = |k: &str| u[k].as_u64();
    let prompt = n("promptTokenCount").unwrap_or(0) + n("toolUsePromptTokenCount").unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount").unwrap_or(0) + thoughts.unwrap_or(0);
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": n("totalTokenCount").unwrap_or(prompt + completion),
    });
    if let Some(cached) = n("cachedContentTokenCount") {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    if let Some(thoughts) = thoughts {
        usage["completion_tokens_details"] = json!({"reasoning_tokens": thoughts});
    }
    usage
}

/// Chat usage → Gemini `usageMetadata`.
fn usage_from_chat(u: &Value) -> Value {
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    let completion = u["completion_tokens"].as_u64().unwrap_or(0);
    let thoughts = u["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or(0)
        .min(completion);
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    let mut out = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion - thoughts,
        "totalTokenCount": u["total_tokens"].as_u64().unwrap_or(prompt + completion),
    });
    if thoughts > 0 {
        out["thoughtsTokenCount"] = json!(thoughts);
    }
    if cached > 0 {
        out["cachedContentTokenCount"] = json!(cached);
    }
    out
}
