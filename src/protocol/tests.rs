//! The protocol seam's own tests: which answers are collected, errors read, markers found.

use super::*;

#[test]
fn whole_answers_are_collected_unless_the_client_asked_what_one_stream_cannot_give() {
    let cases = [
        (Protocol::Chat, r#"{"messages":[]}"#, true),
        (Protocol::Chat, r#"{"n":1,"logprobs":false}"#, true),
        (Protocol::Chat, r#"{"n":2}"#, false),
        (
            Protocol::Chat,
            r#"{"logprobs":true,"top_logprobs":2}"#,
            false,
        ),
        (
            Protocol::Completions,
            r#"{"prompt":"a","logprobs":null}"#,
            true,
        ),
        (
            Protocol::Completions,
            r#"{"prompt":"a","echo":true}"#,
            false,
        ),
        (
            Protocol::Completions,
            r#"{"prompt":"a","best_of":3}"#,
            false,
        ),
        (
            Protocol::Completions,
            r#"{"prompt":"a","logprobs":0}"#,
            false,
        ),
        (
            Protocol::Gemini,
            r#"{"generationConfig":{"temperature":1}}"#,
            true,
        ),
        (
            Protocol::Gemini,
            r#"{"generationConfig":{"candidateCount":2}}"#,
            false,
        ),
        (
            Protocol::Gemini,
            r#"{"generationConfig":{"responseLogprobs":true}}"#,
            false,
        ),
        (
            Protocol::Gemini,
            r#"{"generation_config":{"candidate_count":2}}"#,
            false,
        ),
        (
            Protocol::Gemini,
            r#"{"generationConfig":{"response_logprobs":true}}"#,
            false,
        ),
        (Protocol::Anthropic, r#"{"max_tokens":5}"#, true),
        (Protocol::Responses, r#"{"input":"a"}"#, true),
    ];
    for (protocol, body, want) in cases {
        let body = RawBody::parse(body.as_bytes().to_vec()).unwrap();
        assert_eq!(
            protocol.collects_whole(&body),
            want,
            "{protocol:?} {body:?}"
        );
    }
}

#[test]
fn errors_sent_as_answers_are_told_from_answers() {
    let cases: [(&str, Option<u16>); 14] = [
        (
            r#"{"error":{"code":502,"message":"Provider returned error"}}"#,
            Some(502),
        ),
        (
            r#"{"type":"error","error":{"type":"overloaded_error","message":"m"}}"#,
            Some(529),
        ),
        (
            r#" {"type" : "error", "error":{"type":"rate_limit_error"}}"#,
            Some(429),
        ),
        (r#"{"type":"error"}"#, None),
        (r#"{"type":"errors","error":{"type":"api_error"}}"#, None),
        (
            r#"{"id":"m","type":"error","error":{"type":"api_error"}}"#,
            None,
        ),
        (r#" { "error" : {"code":429,"message":"m"}}"#, Some(429)),
        (r#"{"error":"model not found"}"#, Some(502)),
        (
            r#"{"error":{"code":"rate_limit_exceeded","message":"m"},"id":"x"}"#,
            Some(429),
        ),
        (
            r#"{"id":"r","status":"completed","output":[],"error":null}"#,
            None,
        ),
        (
            r#"{"choices":[{"message":{"content":"\"error\": 1"}}]}"#,
            None,
        ),
        (r#"{"choices":[],"error":{"code":500}}"#, None),
        (r#"{"type":"message","content":[]}"#, None),
        ("not json with \"error\": 1", None),
    ];
    for (body, status) in cases {
        assert_eq!(error_in_answer(body.as_bytes()), status, "{body}");
    }
}

#[test]
fn error_statuses_come_from_the_code_or_the_type() {
    let cases = [
        (json!({"code": 503}), 503),
        (json!({"code": 200}), 502),
        (
            json!({"type": "tokens", "code": "rate_limit_exceeded"}),
            429,
        ),
        (
            json!({"type": "error", "code": "context_length_exceeded"}),
            400,
        ),
        (json!({"type": "overloaded_error"}), 529),
        (json!({"type": "billing_error"}), 402),
        (json!({"code": "usage_limit_reached"}), 429),
        (json!({"message": "?"}), 502),
    ];
    for (err, status) in cases {
        assert_eq!(status_of_error(&err), status, "{err}");
    }
}

#[test]
fn error_messages_are_found_in_every_shape() {
    let cases: [(&str, &str); 6] = [
        (r#"{"error":{"message":"m1","type":"x"}}"#, "m1"),
        (
            r#"{"type":"error","error":{"type":"overloaded_error","message":"m2"}}"#,
            "m2",
        ),
        (r#"{"object":"error","message":"m3","code":400}"#, "m3"),
        (r#"{"error":"m4"}"#, "m4"),
        (r#"{"detail":"m5"}"#, "m5"),
        ("plain text", "plain text"),
    ];
    for (body, want) in cases {
        assert_eq!(upstream_error_message(body.as_bytes()), want, "{body}");
    }
}

#[test]
fn long_ids_are_shortened_alike_and_kept_apart() {
    let vllm = "chatcmpl-tool-03f1c2b7a9d8e4f60a1b2c3d4e5f6a7b";
    assert_eq!(bounded_id("call_1", 40), "call_1");
    assert_eq!(bounded_id(&"x".repeat(40), 40), "x".repeat(40));
    let short = bounded_id(vllm, 40);
    assert_eq!(short.len(), 40, "{short}");
    assert!(short.starts_with("chatcmpl-tool-03f1c2b7a_"), "{short}");
    assert_eq!(bounded_id(vllm, 40), short, "the same id maps alike");
    let other = vllm.replace("7b", "7c");
    assert_ne!(bounded_id(&other, 40), short, "ids that differ stay apart");
    // Cut at a character's edge, never inside one.
    let wide = "é".repeat(30);
    assert!(bounded_id(&wide, 40).len() <= 40);
    // FNV-1a's published test vector: the hash must not change between builds.
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn protocol_spellings() {
    for p in [
        Protocol::Chat,
        Protocol::Anthropic,
        Protocol::Responses,
        Protocol::Gemini,
    ] {
        assert_eq!(Protocol::parse(p.name()), Some(p));
    }
    // Legacy completions is no provider's protocol, and nothing is guessed.
    for other in [
        "completions",
        "openai",
        "messages",
        "google",
        "grpc",
        "Anthropic",
    ] {
        assert_eq!(Protocol::parse(other), None, "{other}");
    }
}
