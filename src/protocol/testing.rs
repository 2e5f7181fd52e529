//! Helpers for the translators' tests: run a decoder over events, fold chunks.

use serde_json::{Value, json};

use super::{Decoded, Decoder, chat::Collector};
use crate::sse::Event;

/// Decodes every event; returns the chunks and whether the end marker came.
pub(crate) fn decode_all(mut d: Decoder, evs: &[Event]) -> (Vec<Value>, bool) {
    let (mut chunks, mut ended) = (Vec::new(), false);
    for e in evs {
        match d.event(e) {
            Decoded::Chunks(c) => chunks.extend(c),
            Decoded::End(c) => {
                chunks.extend(c);
                ended = true;
            }
            Decoded::Blocked { message, .. }
            | Decoded::Failed { message, .. }
            | Decoded::Unreadable(message) => {
                panic!("{message}")
            }
            Decoded::Malformed => panic!("malformed event {e:?}"),
        }
    }
    (chunks, ended)
}

/// A chat source's stream whose thinking and text come between one call's
/// argument fragments: the call must reach a client whole (`{"a":1}`), and the
/// thinking (`hmm`) and the text (`so`) too.
pub(crate) fn thoughts_inside_a_call() -> Vec<Value> {
    let delta = |d: Value| json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": d}]});
    vec![
        delta(
            json!({"tool_calls": [{"index": 0, "id": "t1", "type": "function",
            "function": {"name": "f", "arguments": "{\"a\":"}}]}),
        ),
        delta(json!({"reasoning_content": "hmm"})),
        delta(json!({"content": "so"})),
        delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]})),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    ]
}

/// Checks a completion folded from [`thoughts_inside_a_call`] encoded and decoded
/// again: its one call whole, its thinking and its text kept.
pub(crate) fn assert_whole_with_thoughts(completion: &Value) {
    let m = &completion["choices"][0]["message"];
    let calls = m["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{m}");
    let call = &calls[0];
    assert_eq!(
        (&call["id"], &call["function"]["name"]),
        (&json!("t1"), &json!("f"))
    );
    assert_eq!(call["function"]["arguments"], "{\"a\":1}");
    assert_eq!(
        (&m["content"], &m["reasoning_content"]),
        (&json!("so"), &json!("hmm"))
    );
}

/// Folds chunks into one completion.
pub(crate) fn fold(chunks: &[Value]) -> Value {
    let mut c = Collector::default();
    chunks.iter().for_each(|ch| c.add(ch));
    c.finish()
}
