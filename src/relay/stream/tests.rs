//! The stream's tests: what counts as content, and the copied-event views (read without
//! a full parse) agreeing with what each protocol's decoder makes of the same event.

use super::*;
use crate::protocol::{Decoder, Protocol};
use serde_json::json;

#[test]
fn content_is_text_reasoning_or_a_tool_call_not_a_role() {
    let delta = |d: Value| json!({"choices": [{"index": 0, "delta": d}]});
    assert!(!has_content(&delta(
        json!({"role": "assistant", "content": ""})
    )));
    assert!(!has_content(&json!({"choices": [], "usage": {}})));
    assert!(has_content(&delta(json!({"content": "a"}))));
    assert!(has_content(&delta(json!({"reasoning_content": "hm"}))));
    assert!(has_content(&delta(json!({"tool_calls": [{"index": 0}]}))));
}

#[test]
fn a_copied_chat_chunk_reads_as_its_value_does() {
    let chunks = [
        r#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
        r#"{"choices":[{"delta":{"content":"a \"quoted\"\nline \u00e9"}}]}"#,
        r#"{"choices":[{"delta":{"reasoning_content":"hm","reasoning":"not this"}}]}"#,
        r#"{"choices":[{"delta":{"reasoning":"think"}}]}"#,
        r#"{"choices":[{"delta":{"refusal":"no"}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"t"}]}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[]}}]}"#,
        r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#,
        r#"{"choices":[{"delta":null}],"usage":null}"#,
        r#"{"choices":[]}"#,
        r#"{"object":"chat.completion.chunk"}"#,
    ];
    for data in chunks {
        let ev = Event::data(data);
        let d = chat::delta(&ev).unwrap_or_else(|| panic!("read {data}"));
        let v: Value = serde_json::from_str(data).unwrap();
        let delta = &v["choices"][0]["delta"];
        let reasoning = delta["reasoning_content"]
            .as_str()
            .or(delta["reasoning"].as_str());
        let tool = delta["tool_calls"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        assert_eq!(d.content.as_deref(), delta["content"].as_str(), "{data}");
        assert_eq!(d.reasoning.as_deref(), reasoning, "{data}");
        assert_eq!(d.has_content, has_content(&v), "{data}");
        assert_eq!(d.finish, has_finish(&v), "{data}");
        assert_eq!(d.tool, tool, "{data}");
    }
    // Read in full instead: errors (even a null one), usage, the end, other shapes.
    for data in [
        r#"{"error":{"message":"slow down","code":429}}"#,
        r#"{"error":null,"choices":[]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        "[DONE]",
        r#"[{"choices":[]}]"#,
        r#"{"choices":[{"delta":{"content":5}}]}"#,
        r#"{"choices":{"0":{}}}"#,
        r#"{"choices":[],"choices":[]}"#,
        "{not json",
    ] {
        assert_eq!(chat::delta(&Event::data(data)), None, "{data}");
    }
}

/// An event as Messages and Responses upstreams send it: named after its `type`.
fn named_by_type(data: &str) -> Event {
    let v: Value = serde_json::from_str(data).unwrap_or_default();
    Event::named(v["type"].as_str(), data)
}

/// A decoder that has read `first` (Gemini's decoder takes its ids from the first
/// event, which the view leaves to it).
fn primed(protocol: Protocol, first: Option<&str>) -> Decoder {
    let mut decoder = protocol.decoder(false);
    if let Some(data) = first {
        assert!(matches!(
            decoder.event(&Event::data(data)),
            Decoded::Chunks(_)
        ));
    }
    decoder
}

/// Each event, read through the copied-event view, agrees with what its decoder
/// makes of it: one chunk, or none for an event that adds nothing.
fn assert_view_matches_decoder(protocol: Protocol, first: Option<&str>, events: &[&str]) {
    for data in events {
        let ev = named_by_type(data);
        let d = primed(protocol, first)
            .copied_delta(&ev)
            .unwrap_or_else(|| panic!("read {data}"));
        let Decoded::Chunks(chunks) = primed(protocol, first).event(&ev) else {
            panic!("decoded {data}");
        };
        let none = json!({});
        let ch = match &chunks[..] {
            [ch] => ch,
            [] => &none,
            _ => panic!("one chunk at most for {data}"),
        };
        let delta = &ch["choices"][0]["delta"];
        assert_eq!(d.content.as_deref(), delta["content"].as_str(), "{data}");
        assert_eq!(
            d.reasoning.as_deref(),
            delta["reasoning_content"].as_str(),
            "{data}"
        );
        let tool = delta["tool_calls"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        assert_eq!(d.has_content, has_content(ch), "{data}");
        assert_eq!(d.finish, has_finish(ch), "{data}");
        assert_eq!(d.tool, tool, "{data}");
    }
}

/// None of these events is read through the view: the decoder reads them.
fn assert_left_to_decoder(protocol: Protocol, first: Option<&str>, events: &[&str]) {
    for data in events {
        let ev = named_by_type(data);
        assert_eq!(primed(protocol, first).copied_delta(&ev), None, "{data}");
    }
}

#[test]
fn a_copied_messages_delta_reads_as_its_decoded_chunk_does() {
    assert_view_matches_decoder(
        Protocol::Anthropic,
        None,
        &[
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"a\n\"b\""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
        ],
    );
    assert_left_to_decoder(
        Protocol::Anthropic,
        None,
        &[
            r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"s"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}"#,
            r#"{"index":0,"delta":{"type":"text_delta","text":"no type"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
            r#"{"type":"ping"}"#,
            r#"[{"type":"content_block_delta"}]"#,
        ],
    );
    // An event named otherwise is not even parsed for the view.
    let text =
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#;
    let mut decoder = Protocol::Anthropic.decoder(false);
    assert!(decoder.copied_delta(&Event::data(text)).is_some());
    assert_eq!(
        decoder.copied_delta(&Event::named(Some("ping"), text)),
        None
    );
}

#[test]
fn a_copied_responses_delta_reads_as_its_decoded_chunk_does() {
    assert_view_matches_decoder(
        Protocol::Responses,
        None,
        &[
            r#"{"type":"response.output_text.delta","item_id":"m","output_index":0,"delta":"Hi"}"#,
            r#"{"type":"response.output_text.delta","delta":""}"#,
            r#"{"type":"response.output_text.delta","delta":"a\n\"b\""}"#,
            r#"{"type":"response.refusal.delta","delta":"no"}"#,
            r#"{"type":"response.reasoning_summary_text.delta","delta":"hm"}"#,
            r#"{"type":"response.reasoning_text.delta","delta":"think"}"#,
        ],
    );
    assert_left_to_decoder(
        Protocol::Responses,
        None,
        &[
            r#"{"type":"response.created","response":{"id":"r","model":"m"}}"#,
            r#"{"type":"response.function_call_arguments.delta","item_id":"f","delta":"{"}"#,
            r#"{"type":"response.output_text.delta","delta":{"text":"x"}}"#,
            r#"{"type":"response.output_text.delta"}"#,
            r#"{"delta":"no type"}"#,
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":1}}}"#,
            r#"{"type":"error","message":"busy"}"#,
            r#"[{"type":"response.output_text.delta","delta":"x"}]"#,
        ],
    );
}

#[test]
fn a_copied_gemini_event_reads_as_its_decoded_chunk_does() {
    let first = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]}}],"responseId":"r1","modelVersion":"gemini-x"}"#;
    assert_view_matches_decoder(
        Protocol::Gemini,
        Some(first),
        &[
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":" there"}]},"index":0}],"usageMetadata":{"promptTokenCount":4},"responseId":"r1"}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"a\n\"b\" \u00e9"}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"one "},{"text":"two"}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"hm","thought":true},{"text":"so"}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"not a thought","thought":false}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":""}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"thoughtSignature":"sig"}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[]}}]}"#,
            r#"{"candidates":[{"index":0}]}"#,
            r#"{"candidates":[],"usageMetadata":{"promptTokenCount":4}}"#,
            r#"{"usageMetadata":{"promptTokenCount":4}}"#,
        ],
    );
    assert_left_to_decoder(
        Protocol::Gemini,
        Some(first),
        &[
            r#"{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP"}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"x"},{"functionCall":{"name":"f"}}]}}]}"#,
            r#"{"error":{"code":429,"message":"busy"}}"#,
            r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":5}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"x","thought":"yes"}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":{"text":"x"}}}]}"#,
            r#"[{"candidates":[]}]"#,
            "{not json",
        ],
    );
    // The first event is the decoder's: its ids come from it.
    let second = r#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#;
    assert_eq!(
        primed(Protocol::Gemini, None).copied_delta(&Event::data(second)),
        None
    );
}

#[test]
fn a_copied_gemini_streams_usage_is_the_last_one_sent_whoever_read_it() {
    let usage =
        |n: u64| format!(r#""usageMetadata":{{"promptTokenCount":4,"candidatesTokenCount":{n}}}"#);
    let text = |t: &str, n: u64| {
        format!(
            r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{t}"}}]}}}}],{}}}"#,
            usage(n)
        )
    };
    let call = format!(
        r#"{{"candidates":[{{"content":{{"parts":[{{"functionCall":{{"name":"f","args":{{}}}}}}]}}}}],{}}}"#,
        usage(7)
    );
    let end = r#"{"candidates":[{"content":{"parts":[]},"finishReason":"STOP"}]}"#.to_string();
    // The last count came through the view; then through the decoder (a call).
    let streams = [
        (
            vec![text("Hi", 1), text(" there", 2), text("!", 3), end.clone()],
            2,
            3,
        ),
        (vec![text("Hi", 1), text(" there", 2), call, end], 1, 7),
    ];
    for (events, viewed, completion) in streams {
        // As the relay reads a copied stream: the view where it can, else the decoder.
        let mut relayed = Protocol::Gemini.decoder(false);
        let mut through_view = 0;
        let mut last = None;
        for data in &events {
            let ev = Event::data(data);
            if relayed.copied_delta(&ev).is_some() {
                through_view += 1;
            } else {
                last = Some(relayed.event(&ev));
            }
        }
        assert_eq!(through_view, viewed);
        let mut decoded = Protocol::Gemini.decoder(false);
        let whole: Vec<_> = events
            .iter()
            .map(|d| decoded.event(&Event::data(d)))
            .collect();
        let usage = |d: &Decoded| match d {
            Decoded::End(chunks) => chunks.last().map(|ch| ch["usage"].clone()),
            _ => None,
        };
        let from_view = usage(last.as_ref().unwrap());
        assert_eq!(from_view, usage(whole.last().unwrap()));
        assert_eq!(from_view.unwrap()["completion_tokens"], completion);
    }
}
