//! What a source's own words say of its failure: whether it is one another endpoint
//! may not have (a context window, a content filter, reasoning another account made or
//! the model does not do, a parameter it refuses, a credential it takes only from its
//! own app), which `next_step` then moves past or surfaces.

use super::FailKind;
use super::refused::Param;

/// How sources say a prompt does not fit the model's context window.
const CONTEXT_WORDS: [&str; 7] = [
    "context_length_exceeded",
    "context window",
    // llama.cpp: `exceed_context_size_error`, "the request exceeds the available context size".
    "exceed_context_size",
    "exceeds the available context size",
    "maximum context length",
    "prompt is too long",
    // Gemini: "The input token count (N) exceeds the maximum number of tokens allowed (M)."
    "exceeds the maximum number of tokens",
];

/// How sources say a model takes no reasoning, in their error's message. A value it
/// does not take ("Unsupported value: 'reasoning_effort' does not support 'minimal'")
/// is not one: that model reasons, and the client's error is returned.
const UNTHINKING_WORDS: [&str; 12] = [
    // Ollama (and its Anthropic API): `"llama3.1:8b" does not support thinking`.
    "does not support thinking",
    "does not support reasoning",
    "thinking is not supported",
    // Google, for a model without thinking or without the setting asked: "thinking_config
    // is not supported.", "Thinking level is not supported for this model.", "Thinking is
    // not enabled for models/…", and Vertex's "thinking is not configurable in this
    // model" and "Thinking_config.include_thoughts is only enabled when thinking is
    // enabled".
    "thinking_config is not supported",
    "thinking level is not supported",
    "thinking_level is not supported",
    "thinking is not enabled for",
    "thinking is not configurable",
    "only enabled when thinking is enabled",
    // OpenAI: "Unsupported parameter: 'reasoning_effort' is not supported with this
    // model." (its Responses API: 'reasoning.effort'), and its older "Unrecognized
    // request argument supplied: reasoning_effort".
    "unsupported parameter: 'reasoning_effort'",
    "unsupported parameter: 'reasoning.effort'",
    "argument supplied: reasoning_effort",
];

/// How sources say a content filter held an answer back.
const FILTER_WORDS: [&str; 3] = [
    "content_filter",
    "content filter",
    "content management policy",
];

/// The kind of an error another model might not have, from its message and body: the
/// context window ([`FailKind::Context`]), a content filter ([`FailKind::Filter`]),
/// reasoning another account encrypted ([`FailKind::Foreign`]), reasoning the model does
/// not do ([`FailKind::Unthinking`]), a parameter it refuses ([`FailKind::Unsupported`]),
/// or a credential the source takes only from its own
/// app ([`FailKind::Credential`]).
pub(super) fn unfit(message: &str, body: &[u8]) -> Option<FailKind> {
    let m = message.to_ascii_lowercase();
    let b = String::from_utf8_lossy(body).to_ascii_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| m.contains(w) || b.contains(w));
    // OpenAI's code, or its words in a stream's error event: "The encrypted content
    // for item rs_… could not be verified".
    let foreign = m.contains("encrypted content") && m.contains("could not be verified")
        // An item id the source never stored: "Item with id 'msg_…' not found. Items
        // are not persisted when `store` is set to false."
        || (m.starts_with("item with id") && m.contains("not found"));
    if foreign || says(&["invalid_encrypted_content"]) {
        Some(FailKind::Foreign)
    } else if UNTHINKING_WORDS.iter().any(|w| m.contains(w))
        || (m.contains("think value") && m.contains("not supported"))
    {
        Some(FailKind::Unthinking)
    } else if let Some(p) = Param::refused_in(&m) {
        Some(FailKind::Unsupported(p))
    } else if m.contains("only authorized for use with claude code") {
        Some(FailKind::Credential)
    } else if says(&CONTEXT_WORDS) {
        Some(FailKind::Context)
    } else if says(&FILTER_WORDS) {
        Some(FailKind::Filter)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_another_endpoint_may_not_have_are_recognised() {
        let context = Some(FailKind::Context);
        assert_eq!(
            unfit("This model's maximum context length is 8192 tokens", b""),
            context
        );
        assert_eq!(
            unfit("x", br#"{"error":{"code":"context_length_exceeded"}}"#),
            context
        );
        assert_eq!(
            unfit(
                "The input token count (9) exceeds the maximum number of tokens allowed (8).",
                b""
            ),
            context
        );
        assert_eq!(
            unfit("content filter: the answer was blocked (SAFETY)", b""),
            Some(FailKind::Filter)
        );
        assert_eq!(
            unfit(
                "This credential is only authorized for use with Claude Code and cannot be \
                 used for other API requests.",
                b""
            ),
            Some(FailKind::Credential)
        );
        for refused in [
            "\"llama3.1:8b\" does not support thinking",
            "think value \"medium\" is not supported for this model",
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
        ] {
            assert_eq!(unfit(refused, b""), Some(FailKind::Unthinking), "{refused}");
        }
        assert_eq!(
            unfit(
                "Unsupported parameter: 'stop' is not supported with this model.",
                br#"{"error":{"param":"stop","code":"unsupported_parameter"}}"#
            ),
            Some(FailKind::Unsupported(Param::Stop))
        );
        for value in [
            "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model.",
            "Invalid value for 'reasoning_effort': must be one of low, medium, high",
            "thinking.budget_tokens: must be less than max_tokens",
        ] {
            assert_eq!(unfit(value, b""), None, "{value}");
        }
        assert_eq!(unfit("invalid temperature", b"{}"), None);
    }
}
