//! Anthropic translation, both ways, unit by unit.

use super::client::document_part;
use super::source::tool_id;
use super::*;
use crate::error::Error;
use crate::protocol::Decoded;
use crate::protocol::testing::fold;
use crate::sse::Event;

fn ev(name: &str, data: Value) -> Event {
    Event::named(Some(name), data.to_string())
}

#[test]
fn a_tool_results_image_goes_to_chat_as_parts_and_back() {
    let png = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}});
    let req = json!({"messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true,
            "content": [{"type": "text", "text": "blurred"}, png]}]},
    ]});
    let chat = request_to_chat(req).unwrap();
    let tool = &chat["messages"][1];
    assert_eq!(
        tool["content"],
        json!([
            {"type": "text", "text": "error:"},
            {"type": "text", "text": "blurred"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
        ])
    );
    let back = request_from_chat(chat, "m", "up").unwrap();
    let result = &back["messages"][1]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["content"][2], png, "{result}");
}

#[test]
fn chat_request_becomes_messages_request() {
    let chat = json!({
        "model": "x", "max_tokens": 50, "temperature": 0.5, "stop": "END", "user": "u1", "stream": true,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}, {"id": "t2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "one"},
            {"role": "tool", "tool_call_id": "t2", "content": "two"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
        "tool_choice": "required", "parallel_tool_calls": false,
    });
    let out = request_from_chat(chat, "claude-x", "p").unwrap();
    assert_eq!(out["model"], "claude-x");
    assert_eq!(out["system"], json!([{"type": "text", "text": "be brief"}]));
    assert_eq!(out["max_tokens"], 50);
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["metadata"], json!({"user_id": "u1"}));
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        3,
        "tool results fold into one user turn: {msgs:?}"
    );
    assert_eq!(
        msgs[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
    );
    assert_eq!(
        msgs[0]["content"][2]["source"],
        json!({"type": "url", "url": "https://x/y.png"})
    );
    assert_eq!(
        msgs[1]["content"][0],
        json!({"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}})
    );
    assert_eq!(
        msgs[2]["content"][1],
        json!({"type": "tool_result", "tool_use_id": "t2", "content": "two"})
    );
    assert_eq!(out["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(
        out["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
}

#[test]
fn no_parallel_calls_is_said_on_every_choice_but_none() {
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let sent = |choice: Value| {
        let chat = json!({"messages": [], "tools": tools, "tool_choice": choice, "parallel_tool_calls": false});
        request_from_chat(chat, "m", "p").unwrap()["tool_choice"].clone()
    };
    assert_eq!(sent(json!("none")), json!({"type": "none"}));
    assert_eq!(
        sent(Value::Null),
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        sent(json!({"type": "function", "function": {"name": "f"}})),
        json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
    );
}

#[test]
fn what_anthropic_would_refuse_is_made_acceptable() {
    let chat = json!({"temperature": 1.6, "stop": [" ", "\n\n", "END"], "messages": [
        {"role": "assistant", "content": null, "tool_calls": [{"id": "functions.get_weather:0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"},
    ]});
    let out = request_from_chat(chat, "m", "p").unwrap();
    assert_eq!(out["temperature"], 1.0);
    assert_eq!(out["stop_sequences"], json!(["END"]));
    let m = &out["messages"];
    let id = m[0]["content"][0]["id"].as_str().unwrap();
    assert!(id.starts_with("functions_get_weather_0_"), "{id}");
    assert_eq!(m[1]["content"][0]["tool_use_id"], id);
    let out = request_from_chat(
        json!({"messages": [], "temperature": 0.4, "stop": "\t"}),
        "m",
        "p",
    )
    .unwrap();
    assert_eq!(out["temperature"], 0.4);
    assert!(out.get("stop_sequences").is_none());
}

#[test]
fn blank_text_is_left_out() {
    let chat = json!({"messages": [
        {"role": "system", "content": " \n"},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "\n\n", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "ok"},
        {"role": "user", "content": "  "},
    ]});
    let out = request_from_chat(chat, "m", "p").unwrap();
    assert!(out.get("system").is_none());
    let m = out["messages"].as_array().unwrap();
    assert_eq!(m[0]["content"], json!([{"type": "text", "text": "hi"}]));
    assert_eq!(m[1]["content"].as_array().unwrap().len(), 1, "{}", m[1]);
    assert_eq!(m[1]["content"][0]["type"], "tool_use");
    assert_eq!(m.len(), 3, "the blank last turn is gone: {m:?}");
}

#[test]
fn no_reasoning_asked_is_no_thinking() {
    let chat = json!({"messages": [], "reasoning_effort": "none", "temperature": 0.3});
    let out = request_from_chat(chat, "m", "p").unwrap();
    assert!(out.get("thinking").is_none(), "{out}");
    assert_eq!(out["temperature"], 0.3, "kept: thinking is off");
    assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
}

#[test]
fn documents_become_chat_parts_or_are_refused() {
    let doc = |source: Value| json!({"type": "document", "source": source});
    assert_eq!(
        document_part(&doc(
            json!({"type": "text", "media_type": "text/plain", "data": "notes"})
        ))
        .unwrap(),
        json!({"type": "text", "text": "notes"})
    );
    assert_eq!(
        document_part(&doc(
            json!({"type": "base64", "media_type": "application/pdf", "data": "QQ=="})
        ))
        .unwrap()["file"],
        json!({"filename": "document.pdf", "file_data": "data:application/pdf;base64,QQ=="})
    );
    assert!(document_part(&doc(json!({"type": "file", "file_id": "f1"}))).is_err());
}

#[test]
fn max_tokens_defaults_and_reasoning_becomes_thinking() {
    let out = request_from_chat(json!({"messages": [], "temperature": 1}), "m", "p").unwrap();
    assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
    // No cap given: one is chosen with room for the budget.
    let out = request_from_chat(
        json!({"messages": [], "reasoning_effort": "high", "temperature": 0.2, "top_k": 5}),
        "m",
        "p",
    )
    .unwrap();
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert!(out["max_tokens"].as_u64().unwrap() > 16384);
    assert!(out.get("temperature").is_none());
    assert!(out.get("top_k").is_none(), "thinking takes no top_k: {out}");
}

#[test]
fn thinking_fits_under_the_clients_cap_and_a_given_budget_stays() {
    let ask = |extra: Value| {
        let mut chat = json!({"messages": [], "temperature": 0.2, "top_k": 5});
        for (k, v) in extra.as_object().unwrap() {
            chat[k] = v.clone();
        }
        request_from_chat(chat, "m", "p").unwrap()
    };
    // A cap with no room for the least budget: thinking off, the cap as it was.
    let out = ask(json!({"reasoning_effort": "high", "max_tokens": 100}));
    assert!(out.get("thinking").is_none(), "{out}");
    assert_eq!(out["max_tokens"], 100);
    assert_eq!(out["temperature"], 0.2);
    assert_eq!(out["top_k"], 5);
    let out = ask(json!({"reasoning_effort": "low", "max_completion_tokens": 1024}));
    assert!(out.get("thinking").is_none(), "{out}");
    assert_eq!(out["max_tokens"], 1024);
    // Room for some: the budget is cut below the cap, which stays.
    let out = ask(json!({"reasoning_effort": "high", "max_tokens": 5000}));
    assert_eq!(out["thinking"]["budget_tokens"], 4999);
    assert_eq!(out["max_tokens"], 5000);
    // A budget given as a number goes as it is, at least Anthropic's minimum.
    for (given, sent) in [(2048, 2048), (9000, 9000), (500, 1024)] {
        let out = ask(
            json!({"reasoning_effort": "medium", "thinking_budget": given, "max_tokens": 20000}),
        );
        assert_eq!(out["thinking"]["budget_tokens"], sent, "{given}");
        assert_eq!(out["max_tokens"], 20000);
    }
    // A budget alone asks for nothing: the effort turns thinking on.
    let out = ask(json!({"thinking_budget": 2048}));
    assert!(out.get("thinking").is_none(), "{out}");
}

#[test]
fn inexpressible_fields_are_refused_by_name() {
    for (field, chat) in [
        ("n", json!({"messages": [], "n": 2})),
        (
            "response_format",
            json!({"messages": [], "response_format": {"type": "json_object"}}),
        ),
        ("logprobs", json!({"messages": [], "logprobs": true})),
    ] {
        let err = request_from_chat(chat, "m", "anthropic").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the request field `{field}` cannot be expressed for provider `anthropic`; remove it or choose another model"
            )
        );
    }
    assert!(request_from_chat(json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{oops"}}]}]}), "m", "p").is_err());
}

#[test]
fn messages_answer_becomes_chat_completion() {
    let resp = json!({"id": "msg_1", "type": "message", "model": "c", "stop_reason": "tool_use",
        "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "ok"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 3}});
    let chat = response_to_chat(resp).unwrap();
    let m = &chat["choices"][0]["message"];
    assert_eq!(m["content"], "ok");
    assert_eq!(m["reasoning_content"], "hmm");
    assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chat["usage"]["prompt_tokens"], 15);
    assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
    assert_eq!(chat["usage"]["total_tokens"], 18);
    let back = response_from_chat(chat, false);
    assert_eq!(back["stop_reason"], "tool_use");
    assert_eq!(back["content"][2]["input"], json!({"a": 1}));
    assert_eq!(back["usage"]["input_tokens"], 10);
}

/// A stream with text, two tool calls whose inputs arrive in fragments, and usage.
fn parallel_tool_stream() -> Vec<Event> {
    let mut evs = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "c", "usage": {"input_tokens": 7, "output_tokens": 1}}}),
        ),
        ev("ping", json!({"type": "ping"})),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " check."}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
    ];
    for (block, (id, name, frags)) in [
        ("t1", "f", ["{\"ci", "ty\": \"Pa", "ris\"}"]),
        ("t2", "g", ["{\"n", "\": ", "2}"]),
    ]
    .into_iter()
    .enumerate()
    {
        let index = block + 1;
        evs.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
        for f in frags {
            evs.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": f}})));
        }
        evs.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    evs.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}})));
    evs.push(ev("message_stop", json!({"type": "message_stop"})));
    evs
}

fn decode_all(evs: &[Event]) -> (Vec<Value>, bool) {
    crate::protocol::testing::decode_all(
        crate::protocol::Decoder::Anthropic(Decoder::default()),
        evs,
    )
}

#[test]
fn streamed_parallel_tool_calls_get_indexes_and_whole_arguments() {
    let (chunks, ended) = decode_all(&parallel_tool_stream());
    assert!(ended);
    let out = fold(&chunks);
    let m = &out["choices"][0]["message"];
    assert_eq!(m["content"], "Let me check.");
    assert_eq!(m["tool_calls"][0]["id"], "t1");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"city\": \"Paris\"}"
    );
    assert_eq!(m["tool_calls"][1]["function"]["name"], "g");
    assert_eq!(m["tool_calls"][1]["function"]["arguments"], "{\"n\": 2}");
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out["usage"]["completion_tokens"], 30);
    assert_eq!(out["usage"]["prompt_tokens"], 7);
}

#[test]
fn error_event_mid_stream_fails_with_its_status() {
    let mut d = Decoder::default();
    let got = d.event(&ev(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    assert_eq!(
        got,
        Decoded::Failed {
            status: 529,
            message: "Overloaded".into()
        }
    );
    assert_eq!(d.event(&Event::data("{not json")), Decoded::Malformed);
}

#[test]
fn stream_without_stop_never_ends() {
    let evs = parallel_tool_stream();
    let (_, ended) = decode_all(&evs[..evs.len() - 1]);
    assert!(!ended, "the relay sees no end marker and reports the break");
}

#[test]
fn an_observed_stream_continues_in_its_open_block_and_ends_once() {
    let mut e = Encoder::new("m", false);
    for v in [
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
    ] {
        e.observe(&ev(v["type"].as_str().unwrap(), v.clone()));
    }
    let chunk = json!({"id": "other", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "lo"}}]});
    let out = e.chunk(&chunk);
    let names: Vec<_> = out.iter().map(|x| x.event.clone().unwrap()).collect();
    assert_eq!(
        names,
        ["content_block_delta"],
        "no second message_start or block"
    );
    assert!(out[0].data.as_deref().unwrap().contains("\"index\":0"));
    let names: Vec<_> = e
        .finish()
        .iter()
        .map(|x| x.event.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        ["content_block_stop", "message_delta", "message_stop"]
    );
    // A stream whose own message_delta went out gets only the missing message_stop.
    e.observe(&ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
    ));
    let names: Vec<_> = e
        .finish()
        .iter()
        .map(|x| x.event.clone().unwrap())
        .collect();
    assert_eq!(names, ["message_stop"]);
}

#[test]
fn a_resumed_stream_closes_its_cut_thinking_before_the_continuations() {
    // Cut before the signature: closed as unsigned. Cut after it: closed as it is.
    for (signed, want) in [(false, Some(UNSIGNED)), (true, None)] {
        let mut e = Encoder::new("m", true);
        let mut sent = vec![
            json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 5}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me"}}),
        ];
        if signed {
            sent.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig-a"}}));
        }
        for v in sent {
            e.observe(&ev(v["type"].as_str().unwrap(), v.clone()));
        }
        e.resume();
        let chunk =
            json!({"choices": [{"index": 0, "delta": {"reasoning_content": "Let me think"}}]});
        let out: Vec<Value> = e
            .chunk(&chunk)
            .iter()
            .map(|x| serde_json::from_str(x.data.as_deref().unwrap()).unwrap())
            .collect();
        let signature = out
            .iter()
            .find(|v| v["delta"]["type"] == "signature_delta")
            .map(|v| v["delta"]["signature"].clone());
        assert_eq!(signature, want.map(|w| json!(w)), "{out:?}");
        let rest = &out[out.len() - 3..];
        assert_eq!(rest[0], json!({"type": "content_block_stop", "index": 0}));
        assert_eq!(rest[1]["index"], 1);
        assert_eq!(
            rest[1]["content_block"],
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(rest[2]["delta"]["thinking"], "Let me think");
    }
}

#[test]
fn decoded_stream_reencodes_to_the_same_content() {
    let (chunks, _) = decode_all(&parallel_tool_stream());
    let mut e = Encoder::new("c", false);
    let mut out: Vec<Event> = chunks.iter().flat_map(|c| e.chunk(c)).collect();
    out.extend(e.finish());
    let (again, ended) = decode_all(&out);
    assert!(ended);
    let fold = |cs: &[Value]| {
        let v = crate::protocol::testing::fold(cs);
        (
            v["choices"][0]["message"].clone(),
            v["choices"][0]["finish_reason"].clone(),
        )
    };
    assert_eq!(fold(&chunks), fold(&again));
    let names: Vec<_> = out.iter().filter_map(|e| e.event.clone()).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
}

#[test]
fn inbound_request_becomes_chat() {
    let req = json!({"model": "m", "max_tokens": 64, "system": [{"type": "text", "text": "sys"}], "stream": true,
    "stop_sequences": ["X"], "thinking": {"type": "enabled", "budget_tokens": 4000}, "metadata": {"user_id": "u"},
    "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": true},
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QQ=="}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "res"}]}, {"type": "text", "text": "go on"}]},
    ]});
    let chat = request_to_chat(req).unwrap();
    let m = chat["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "sys"}));
    assert_eq!(
        m[1]["content"][1]["image_url"]["url"],
        "data:image/jpeg;base64,QQ=="
    );
    assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "t1", "content": "res"})
    );
    assert_eq!(m[4], json!({"role": "user", "content": "go on"}));
    assert_eq!(chat["stop"], json!(["X"]));
    assert_eq!(chat["reasoning_effort"], "medium");
    assert_eq!(chat["thinking_budget"], 4000);
    assert_eq!(chat["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        chat["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(chat["parallel_tool_calls"], false);
    assert_eq!(chat["user"], "u");
    // Malformed ends the request; a server tool only an Anthropic upstream can take.
    assert!(matches!(
        request_to_chat(json!({"model": "m"})),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        request_to_chat(
            json!({"model": "m", "messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]})
        ),
        Err(Error::Untranslatable(_))
    ));
}

#[test]
fn ids_anthropic_would_refuse_are_made_acceptable_without_meeting() {
    let valid = |s: &str| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    // What Anthropic takes goes as it is, so that Claude's prompt cache matches.
    for id in ["call_AbC-1", "toolu_01A", &"x".repeat(64)] {
        assert_eq!(tool_id(&json!(id)), json!(id));
    }
    assert_eq!(tool_id(&Value::Null), Value::Null);
    let long = "x".repeat(80);
    let ids = [
        "functions.get_weather:0".to_string(),
        "functions_get_weather_0".to_string(),
        "functions:get_weather.0".to_string(),
        long.clone(),
        format!("{long}y"),
        format!("{}.", "x".repeat(63)),
        "x".repeat(65),
        String::new(),
        "é".into(),
        "_".into(),
    ];
    let mapped: Vec<Value> = ids.iter().map(|id| tool_id(&json!(id))).collect();
    for (id, got) in ids.iter().zip(&mapped) {
        let s = got.as_str().unwrap();
        assert!(valid(s), "{id:?} → {s}");
        assert_eq!(&tool_id(&json!(id)), got, "{id}: the same on every turn");
        let others = mapped.iter().filter(|m| *m == got).count();
        assert_eq!(others, 1, "{id:?} → {s} meets another id");
    }
}

#[test]
fn error_bodies_by_status() {
    assert_eq!(
        error_json(429, "x"),
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "x"}})
    );
    assert_eq!(error_json(404, "x")["error"]["type"], "not_found_error");
    assert_eq!(error_json(500, "x")["error"]["type"], "api_error");
}

#[test]
fn an_id_anthropic_would_refuse_is_escaped_for_the_client_and_given_back_as_it_was() {
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    for id in [
        "functions.get_weather:0",
        "call a/b",
        "rpid_looks_escaped",
        "é",
        "",
    ] {
        let escaped = client_id(&json!(id));
        let shown = escaped.as_str().unwrap();
        assert!(valid(shown), "{id} → {shown}");
        assert_eq!(source_id(&escaped), json!(id), "{shown}");
    }
    // Ids Anthropic takes, and what is not an id, go as they are, both ways.
    for id in [json!("toolu_01A"), json!("call_1-x"), Value::Null] {
        assert_eq!(client_id(&id), id);
        assert_eq!(source_id(&id), id);
    }
    assert_eq!(source_id(&json!("rpid_bad_zz")), json!("rpid_bad_zz"));
    // An escape Anthropic takes at its longest, 64 characters, is still an escape.
    let widest = format!("{0}.{0}", "a".repeat(28));
    let escaped = client_id(&json!(widest));
    assert_eq!(escaped.as_str().map(str::len), Some(64), "{escaped}");
    assert_eq!(source_id(&escaped), json!(widest));
}

#[test]
fn an_id_too_long_for_anthropic_reaches_the_client_bounded_and_goes_back_as_the_client_has_it() {
    let valid = |s: &str| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    // An MCP tool's name escapes past 64 characters; so does a long id Anthropic
    // would take but for its length, and one with nothing Anthropic takes.
    let mcp = "functions.mcp__github__create_pull_request:12";
    let ids = [
        mcp.to_string(),
        "a1_".repeat(27),
        "x".repeat(65),
        format!("{0}.{0}a", "a".repeat(28)),
        "é".repeat(40),
    ];
    let mut shown = Vec::new();
    for id in &ids {
        let got = client_id(&json!(id));
        let s = got.as_str().unwrap();
        assert!(valid(s), "{id} → {s}");
        assert_eq!(client_id(&json!(id)), got, "{id}: the same on every turn");
        // Nothing to decode: the call and its result go back alike, as they came.
        assert_eq!(source_id(&got), got, "{id}");
        shown.push(got);
    }
    assert!(
        shown[0]
            .as_str()
            .unwrap()
            .starts_with("rpih_functions_mcp_")
    );
    // Ids that differ only past what is kept, or only in a byte Anthropic refuses,
    // stay apart.
    let apart = [
        mcp.replace(":12", ":13"),
        mcp.replace(':', "."),
        format!("{}y", "x".repeat(64)),
    ];
    for id in apart {
        let got = client_id(&json!(id));
        assert!(valid(got.as_str().unwrap()), "{id} → {got}");
        assert!(!shown.contains(&got), "{id} → {got}");
    }
}

#[test]
fn thinking_and_text_inside_a_call_wait_for_it_to_end() {
    let chunks = crate::protocol::testing::thoughts_inside_a_call();
    let mut e = Encoder::new("m", false);
    let mut out: Vec<Event> = chunks.iter().flat_map(|c| e.chunk(c)).collect();
    out.extend(e.finish());
    let (again, ended) = decode_all(&out);
    assert!(ended);
    crate::protocol::testing::assert_whole_with_thoughts(&fold(&again));
}

#[test]
fn a_stream_that_breaks_right_after_a_stopped_call_ends_whole_and_one_inside_a_call_does_not() {
    let mut d = Decoder::default();
    let start = json!({"type": "message_start", "message": {"id": "m1", "model": "c", "usage": {"input_tokens": 7, "output_tokens": 1}}});
    d.event(&ev("message_start", start));
    let block = |d: &mut Decoder, i: u64, kind: &str| {
        let b = match kind {
            "tool_use" => {
                json!({"type": "tool_use", "id": format!("t{i}"), "name": "f", "input": {}})
            }
            k => json!({"type": k, "text": ""}),
        };
        d.event(&ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": b}),
        ));
    };
    let stop = |d: &mut Decoder, i: u64| {
        d.event(&ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    };
    block(&mut d, 0, "text");
    assert_eq!(d.whole_ending(), None, "text may have been cut");
    assert_eq!(d.cut_after_calls(), None, "no call came");
    block(&mut d, 1, "tool_use");
    assert_eq!(d.whole_ending(), None, "the call's input may have been cut");
    stop(&mut d, 1);
    let ending = d.whole_ending().expect("the call reached its stop");
    assert_eq!(ending[0]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(ending[1]["usage"]["prompt_tokens"], 7);
    // A parallel call begun and cut: not whole.
    block(&mut d, 2, "tool_use");
    assert_eq!(d.whole_ending(), None);
    assert_eq!(d.cut_after_calls(), None, "a call was cut");
    stop(&mut d, 2);
    // Text after whole calls: the break cut the text.
    block(&mut d, 3, "text");
    assert_eq!(d.whole_ending(), None);
    assert_eq!(d.cut_after_calls(), Some("text"));
}
