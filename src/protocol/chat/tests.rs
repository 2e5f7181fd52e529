//! The Chat Completions translator's tests.

use super::source::{fit_tool_ids, keeps_details, lift_tool_media, refuses_an_id};
use super::*;
use crate::protocol::Source;

fn ev(data: &str) -> Event {
    Event::data(data)
}

#[test]
fn only_an_answer_a_content_filter_emptied_is_filtered() {
    let answer = |message: Value, finish: &str| json!({"choices": [{"index": 0, "message": message, "finish_reason": finish}]});
    let empty = [
        json!({"role": "assistant", "content": null}),
        json!({"role": "assistant", "content": ""}),
        json!({"role": "assistant", "tool_calls": []}),
    ];
    for m in empty {
        let v = answer(m, "content_filter");
        assert!(filtered(&v, "message").is_some(), "{v}");
        assert!(filtered_answer(v.to_string().as_bytes()).is_some(), "{v}");
    }
    let answers = [
        answer(json!({"content": "half of it"}), "content_filter"),
        answer(json!({"reasoning_content": "hm"}), "content_filter"),
        answer(json!({"refusal": "no"}), "content_filter"),
        answer(json!({"tool_calls": [{"id": "t"}]}), "content_filter"),
        answer(json!({"content": null}), "stop"),
        // Its words elsewhere are not its finish reason.
        answer(json!({"content": "\"content_filter\""}), "length"),
    ];
    for v in answers {
        assert_eq!(filtered(&v, "message"), None, "{v}");
        assert_eq!(filtered_answer(v.to_string().as_bytes()), None, "{v}");
    }
    let chunk = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]});
    assert!(filtered(&chunk, "delta").is_some());
    assert_eq!(filtered_answer(b"<html>content_filter</html>"), None);
}

fn to<'a>(api_base: &'a str, model: &'a str) -> Source<'a> {
    Source {
        provider: "p",
        api_base,
        model,
    }
}

#[test]
fn openrouter_keeps_details_by_its_id_or_its_host() {
    let or = Source {
        provider: "openrouter",
        api_base: "http://127.0.0.1:9/v1",
        model: "m",
    };
    assert!(keeps_details(&or));
    assert!(keeps_details(&to(
        "https://user:pw@openrouter.ai:443/api/v1",
        "m"
    )));
    assert!(!keeps_details(&to(
        "https://openrouter.ai.example.com/v1",
        "m"
    )));
    assert!(!keeps_details(&to("https://api.openai.com/v1", "m")));
}

#[test]
fn mistrals_rule_is_its_apis_and_its_families_anywhere() {
    let local = "http://127.0.0.1:8000/v1";
    for (api_base, model) in [
        ("https://api.mistral.ai/v1", "open-model-x"),
        (local, "mistralai/Devstral-Small-2507"),
        (local, "mistral-small3.1:24b"),
        (local, "Ministral-8B-Instruct-2410"),
        ("https://openrouter.ai/api/v1", "mistralai/codestral-2508"),
    ] {
        assert_eq!(
            ToolIds::of(&to(api_base, model)),
            ToolIds::Mistral,
            "{model}"
        );
    }
    for (api_base, model) in [
        ("https://api.openai.com/v1", "gpt-4o"),
        ("https://mistral.ai.example.com/v1", "gpt-4o"),
        (local, "australis-7b"),
    ] {
        assert_eq!(
            ToolIds::of(&to(api_base, model)),
            ToolIds::AtMost40,
            "{model}"
        );
    }
}

#[test]
fn a_refused_id_is_found_in_raw_messages() {
    let ids = |results: &str| format!(r#"[{{"role":"user","content":"tool_call_id"}},{results}]"#);
    let long = "x".repeat(41);
    for (messages, refused) in [
        (ids(r#"{"role":"tool","tool_call_id":"call_1"}"#), false),
        (
            ids(&format!(r#"{{"role":"tool","tool_call_id" : "{long}"}}"#)),
            true,
        ),
        (
            ids(&format!(
                r#"{{"tool_call_id":"a","x":1}},{{"tool_call_id":"{long}"}}"#
            )),
            true,
        ),
        // An escape is not read: the request is mended to be sure.
        (ids(r#"{"tool_call_id":"call\u005f1"}"#), true),
        (ids(r#"{"role":"tool","tool_call_id":null}"#), false),
    ] {
        let found = refuses_an_id(messages.as_bytes(), &to("http://127.0.0.1:1", "m"));
        assert_eq!(found, refused, "{messages}");
    }
    let nine = ids(r#"{"tool_call_id":"aB3xK9mP2"}"#);
    assert!(!refuses_an_id(
        nine.as_bytes(),
        &to("http://127.0.0.1:1", "devstral")
    ));
    let call = ids(r#"{"tool_call_id":"call_aB3xK9"}"#);
    assert!(refuses_an_id(
        call.as_bytes(),
        &to("http://127.0.0.1:1", "devstral")
    ));
}

#[test]
fn a_gemini_signature_keeps_its_call_when_the_id_is_fitted() {
    let long = "x".repeat(41);
    let signature = json!({"type": "reasoning.encrypted", "data": "g", "id": long, "format": "google-gemini-v1"});
    let openai = json!({"type": "reasoning.encrypted", "data": "o", "id": long, "format": "openai-responses-v1"});
    let mut chat = json!({"messages": [{"role": "assistant", "reasoning_details": [signature, openai],
        "tool_calls": [{"id": long, "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]});
    fit_tool_ids(&mut chat, ToolIds::AtMost40);
    let turn = &chat["messages"][0];
    assert_eq!(
        turn["reasoning_details"][0]["id"],
        turn["tool_calls"][0]["id"]
    );
    assert_eq!(
        turn["reasoning_details"][1]["id"],
        json!(long),
        "not a call's id"
    );
}

#[test]
fn mistral_ids_are_nine_letters_or_digits_and_stay_apart() {
    let a = ToolIds::Mistral.fit("toolu_01A09q90qw90lq917835lq9");
    let b = ToolIds::Mistral.fit("toolu_01A09q90qw90lq917835lqX");
    for id in [&a, &b] {
        assert!(ToolIds::Mistral.takes(id), "{id}");
    }
    assert_ne!(a, b);
    assert_eq!(a, ToolIds::Mistral.fit("toolu_01A09q90qw90lq917835lq9"));
    assert!(matches!(
        ToolIds::Mistral.fit("aB3xK9mP2"),
        Cow::Borrowed(_)
    ));
}

#[test]
fn streamed_reasoning_details_fold_by_index() {
    // OpenRouter's pieces of one detail share an index; a whole detail has its own.
    let chunk = |details: Value| json!({"choices": [{"index": 0, "delta": {"reasoning_details": details}}]});
    let mut c = Collector::default();
    for details in [
        json!([{"type": "reasoning.text", "text": "Need ", "index": 0, "format": "f"}]),
        json!([{"type": "reasoning.text", "text": "a.rs.", "index": 0}]),
        json!([{"type": "reasoning.text", "signature": "s", "index": 0}]),
        json!([{"type": "reasoning.encrypted", "data": "x", "index": 1}]),
    ] {
        c.add(&chunk(details));
    }
    assert_eq!(
        c.finish()["choices"][0]["message"]["reasoning_details"],
        json!([
            {"type": "reasoning.text", "text": "Need a.rs.", "signature": "s", "index": 0, "format": "f"},
            {"type": "reasoning.encrypted", "data": "x", "index": 1},
        ])
    );
}

#[test]
fn tool_result_media_follow_the_turns_tool_messages() {
    let png = json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}});
    let mut chat = json!({"messages": [
        {"role": "assistant", "content": null, "tool_calls": []},
        {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "shot"}, png]},
        {"role": "tool", "tool_call_id": "b", "content": "plain"},
        {"role": "user", "content": "and now?"},
    ]});
    lift_tool_media(&mut chat);
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "tool_call_id": "a", "content": "shot"},
            {"role": "tool", "tool_call_id": "b", "content": "plain"},
            {"role": "user", "content": [png]},
            {"role": "user", "content": "and now?"},
        ])
    );
    // Nothing to move: the request is left as it is.
    let mut plain = json!({"messages": [{"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "x"}]}]});
    let before = plain.clone();
    lift_tool_media(&mut plain);
    assert_eq!(plain, before);
}

#[test]
fn decoder_reads_chunks_done_and_errors() {
    let mut d = Decoder::default();
    assert_eq!(
        d.event(&ev(r#"{"choices":[]}"#)),
        Decoded::Chunks(vec![json!({"choices": []})])
    );
    assert_eq!(d.event(&ev("[DONE]")), Decoded::End(vec![]));
    assert_eq!(
        d.event(&ev(r#"{"error":{"message":"slow down","code":429}}"#)),
        Decoded::Failed {
            status: 429,
            message: "slow down".into()
        }
    );
    assert_eq!(d.event(&ev("{not json")), Decoded::Malformed);
}

#[test]
fn only_a_translated_streams_first_chunk_has_its_id_checked() {
    let numbered = r#"{"id":7,"choices":[]}"#;
    let unread = |d: &mut Decoder, data| matches!(d.event(&ev(data)), Decoded::Unreadable(_));
    assert!(unread(&mut Decoder::new(true), numbered));
    assert!(unread(&mut Decoder::new(true), r#"{"id":{},"choices":[]}"#));
    assert!(!unread(&mut Decoder::new(false), numbered));
    // A missing id is made up by the encoder; only the first chunk's is the answer's.
    let mut d = Decoder::new(true);
    assert!(!unread(&mut d, r#"{"choices":[]}"#));
    assert!(!unread(&mut d, numbered));
}

#[test]
fn encoder_drops_usage_unless_asked() {
    let usage = json!({"choices": [], "usage": {"total_tokens": 3}});
    assert!(Encoder::new(false).chunk(&usage).is_empty());
    assert_eq!(Encoder::new(true).chunk(&usage).len(), 1);
}

#[test]
fn a_continued_stream_keeps_the_first_ids_and_sends_no_second_role() {
    let mut e = Encoder::new(true);
    let first = json!({"id":"c1","created":1,"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]});
    assert_eq!(e.chunk(&first).len(), 1);
    e.resume();
    let role = json!({"id":"c2","created":2,"model":"m2","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]});
    assert!(e.chunk(&role).is_empty(), "a second role chunk is dropped");
    let text = json!({"id":"c2","created":2,"model":"m2","choices":[{"index":0,"delta":{"content":"lo"}}]});
    let out: Value = serde_json::from_str(e.chunk(&text)[0].data.as_deref().unwrap()).unwrap();
    assert_eq!(
        (&out["id"], &out["created"], &out["model"]),
        (&json!("c1"), &json!(1), &json!("m1"))
    );
    let usage = json!({"id":"c2","choices":[],"usage":{"total_tokens":3}});
    assert_eq!(e.chunk(&usage).len(), 1, "usage chunks survive");
}

#[test]
fn the_decoder_numbers_calls_streamed_without_an_index() {
    // SGLang and some Ollama paths: a new id is the next call, a fragment with
    // neither id nor index continues the last; a server's own index is kept.
    let call = |id: Option<&str>, index: Option<u64>| {
        // Named: a call that begins without a name is unreadable (`fit_call`).
        let mut call = json!({"function": {"name": "f", "arguments": "x"}});
        if let Some(id) = id {
            call["id"] = json!(id);
        }
        if let Some(i) = index {
            call["index"] = json!(i);
        }
        call
    };
    let chunk = |calls: Vec<Value>| {
        ev(&json!({"choices": [{"index": 0, "delta": {"tool_calls": calls}}]}).to_string())
    };
    let mut d = Decoder::default();
    let mut indices = Vec::new();
    for calls in [
        vec![call(None, None)],
        vec![call(Some("a"), None)],
        vec![call(None, None)],
        vec![call(Some("a"), None), call(Some("b"), None)],
        vec![call(Some(""), None)],
        vec![call(Some("c"), Some(7))],
        vec![call(Some("d"), None)],
    ] {
        let Decoded::Chunks(chunks) = d.event(&chunk(calls)) else {
            panic!("not decoded");
        };
        let calls = chunks[0]["choices"][0]["delta"]["tool_calls"].clone();
        indices.extend(calls.as_array().unwrap().iter().map(|c| c["index"].clone()));
    }
    assert_eq!(indices, [0, 1, 1, 1, 2, 2, 7, 8].map(|i| json!(i)));
}

#[test]
fn collector_names_reasoning_as_its_source_did() {
    let mut c = Collector::default();
    let mut ch = json!({"choices":[{"index":0,"delta":{"reasoning":"hmm"}}]});
    into_hub(&mut ch, "delta");
    c.add(&ch);
    let out = c.finish();
    let message = &out["choices"][0]["message"];
    assert_eq!(
        (&message["reasoning"], &message["reasoning_content"]),
        (&json!("hmm"), &json!("hmm"))
    );
}

#[test]
fn collector_joins_text_and_tool_fragments() {
    let mut c = Collector::default();
    let chunks = [
        json!({"id":"x","model":"m","created":1,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}),
        json!({"choices":[{"index":0,"delta":{"content":"lo"}}]}),
        json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}),
        json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}),
        json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
        json!({"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}),
    ];
    for ch in &chunks {
        c.add(ch);
    }
    let out = c.finish();
    assert_eq!(out["choices"][0]["message"]["content"], "Hello");
    assert_eq!(
        out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"a\":1}"
    );
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out["usage"]["total_tokens"], 3);
}
