//! Gemini translation, both ways, unit by unit.

use super::*;
use crate::error::Error;
use crate::protocol::Decoded;
use crate::protocol::testing::{decode_all, fold};
use crate::sse::Event;

fn decode(evs: &[Event]) -> (Vec<Value>, bool) {
    decode_all(crate::protocol::Decoder::Gemini(Decoder::default()), evs)
}

#[test]
fn paths_carry_the_model_and_the_method() {
    assert_eq!(
        endpoint("gemini-2.5-flash", false),
        "/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        endpoint("models/gemini-2.5-flash", true),
        "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        method_path("tunedModels/mine", "countTokens"),
        "/tunedModels/mine:countTokens"
    );
    assert_eq!(
        method_path("a b", "generateContent"),
        "/models/a%20b:generateContent"
    );
}

#[test]
fn chat_request_becomes_generate_content() {
    let chat = json!({
        "model": "x", "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop": "END",
        "reasoning_effort": "low",
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "t2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "one"},
            {"role": "tool", "tool_call_id": "t2", "content": "{\"n\":2}"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "additionalProperties": false}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    });
    let out = request_from_chat(chat, "gemini-x", "p").unwrap();
    assert!(out.get("model").is_none(), "the model is in the URL");
    assert_eq!(
        out["systemInstruction"],
        json!({"parts": [{"text": "be brief"}]})
    );
    let c = out["contents"].as_array().unwrap();
    assert_eq!(c.len(), 3, "both responses in one turn: {c:?}");
    assert_eq!(
        c[0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": "AAAA"}})
    );
    assert_eq!(c[1]["role"], "model");
    assert_eq!(
        c[1]["parts"][0]["functionCall"],
        json!({"id": "t1", "name": "f", "args": {"a": 1}})
    );
    assert_eq!(c[1]["parts"][0]["thoughtSignature"], SYNTHETIC_SIGNATURE);
    assert!(c[1]["parts"][1].get("thoughtSignature").is_none());
    assert_eq!(c[1]["parts"][1]["functionCall"]["args"], json!({}));
    assert_eq!(
        c[2]["parts"][0]["functionResponse"],
        json!({"id": "t1", "name": "f", "response": {"result": "one"}})
    );
    assert_eq!(
        c[2]["parts"][1]["functionResponse"]["response"],
        json!({"n": 2})
    );
    let gc = &out["generationConfig"];
    assert_eq!(gc["maxOutputTokens"], 50);
    assert_eq!(gc["topP"], 0.9);
    assert_eq!(gc["topK"], 40);
    assert_eq!(gc["stopSequences"], json!(["END"]));
    assert_eq!(gc["responseMimeType"], "application/json");
    assert_eq!(gc["responseJsonSchema"], json!({"type": "object"}));
    assert_eq!(gc["thinkingConfig"]["thinkingBudget"], 1024);
    // A budget given as a number goes as it is, within what the model takes.
    for (model, given, sent) in [
        ("gemini-2.5-flash", 2000, 2000),
        ("gemini-2.5-flash", 50000, 24576),
        ("gemini-2.5-pro", 50000, 32768),
        ("gemini-2.5-flash-lite", 100, 512),
    ] {
        let chat = json!({"messages": [], "reasoning_effort": "low", "thinking_budget": given});
        let out = request_from_chat(chat, model, "p").unwrap();
        assert_eq!(
            out["generationConfig"]["thinkingConfig"]["thinkingBudget"], sent,
            "{model} {given}"
        );
    }
    assert_eq!(
        out["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["additionalProperties"],
        false
    );
    assert_eq!(
        out["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}})
    );
    let orphan = json!({"messages": [{"role": "tool", "tool_call_id": "zz", "content": "x"}]});
    assert!(request_from_chat(orphan, "m", "p").is_err());
    assert!(request_from_chat(json!({"messages": [], "n": 2}), "m", "p").is_err());
}

#[test]
fn answer_becomes_chat_with_ids_usage_and_reasoning() {
    let resp = json!({"responseId": "r1", "modelVersion": "gemini-x",
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "hmm", "thought": true}, {"text": "ok"},
            {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "sig"}]},
            "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 4, "cachedContentTokenCount": 2, "totalTokenCount": 17}});
    let chat = response_to_chat(resp).unwrap();
    let m = &chat["choices"][0]["message"];
    assert_eq!(m["content"], "ok");
    assert_eq!(m["reasoning_content"], "hmm");
    assert_eq!(m["tool_calls"][0]["id"], "call_r1_0");
    assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chat["usage"]["completion_tokens"], 7);
    assert_eq!(
        chat["usage"]["completion_tokens_details"]["reasoning_tokens"],
        4
    );
    assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    let back = response_from_chat(chat);
    assert_eq!(back["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        back["candidates"][0]["content"]["parts"][0],
        json!({"text": "hmm", "thought": true})
    );
    assert_eq!(
        back["candidates"][0]["content"]["parts"][2]["functionCall"]["args"],
        json!({"a": 1})
    );
    assert_eq!(back["usageMetadata"]["candidatesTokenCount"], 3);
    assert_eq!(back["usageMetadata"]["thoughtsTokenCount"], 4);
}

#[test]
fn safety_blocks_are_content_filter_failures() {
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}});
    assert!(blocked_answer(blocked.to_string().as_bytes()).is_some());
    let fine =
        json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "SAFETY"}]});
    assert_eq!(
        blocked_answer(fine.to_string().as_bytes()),
        None,
        "text went out"
    );
    // Read as an answer, a block is an empty one, filtered, with its usage.
    let empty =
        json!({"candidates": [{"content": {"parts": []}, "finishReason": "PROHIBITED_CONTENT"}]});
    assert!(blocked_answer(empty.to_string().as_bytes()).is_some());
    for answer in [&blocked, &empty] {
        let chat = response_to_chat(answer.clone()).unwrap();
        let choice = &chat["choices"][0];
        assert_eq!(choice["finish_reason"], "content_filter", "{chat}");
        assert_eq!(choice["message"]["content"], "", "{chat}");
        assert!(choice["message"]["tool_calls"].is_null(), "{chat}");
    }
    let chat = response_to_chat(blocked.clone()).unwrap();
    assert_eq!(chat["usage"]["prompt_tokens"], 3, "{chat}");
    for (answer, chunks) in [(&blocked, 3), (&empty, 2)] {
        let mut d = Decoder::default();
        match d.event(&Event::data(answer.to_string())) {
            Decoded::Blocked { end, message } => {
                assert!(message.contains("content filter"), "{message}");
                assert_eq!(end.len(), chunks, "{end:?}");
                assert_eq!(end[0]["choices"][0]["delta"]["role"], "assistant");
                assert_eq!(end[1]["choices"][0]["finish_reason"], "content_filter");
            }
            other => panic!("{other:?}"),
        }
    }
    // After text went out, a safety stop is only the finish reason.
    let mut d = Decoder::default();
    let text = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]});
    assert!(matches!(d.event(&Event::data(text.to_string())), Decoded::Chunks(c) if c.len() == 1));
    match d.event(&Event::data(
        json!({"candidates": [{"finishReason": "SAFETY"}]}).to_string(),
    )) {
        Decoded::End(c) => assert_eq!(c[0]["choices"][0]["finish_reason"], "content_filter"),
        other => panic!("{other:?}"),
    }
}

fn text_stream() -> Vec<Event> {
    [
        json!({"responseId": "r1", "modelVersion": "g", "candidates": [{"content": {"role": "model", "parts": [{"text": "think", "thought": true}]}}]}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}}]}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"city": "Paris"}}}]}}]}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}}),
    ]
    .iter()
    .map(|v| Event::data(v.to_string()))
    .collect()
}

#[test]
fn stream_ends_at_the_finish_reason_and_round_trips() {
    let evs = text_stream();
    let (chunks, ended) = decode(&evs);
    assert!(ended);
    let out = fold(&chunks);
    let m = &out["choices"][0]["message"];
    assert_eq!(m["content"], "Hello");
    assert_eq!(m["reasoning_content"], "think");
    assert_eq!(m["tool_calls"][0]["id"], "call_r1_0");
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out["usage"]["total_tokens"], 7);
    let (_, ended) = decode(&evs[..3]);
    assert!(
        !ended,
        "no finish reason, no end: the relay reports the break"
    );
    let mut e = Encoder::new("g");
    let mut again: Vec<Event> = chunks.iter().flat_map(|c| e.chunk(c)).collect();
    again.extend(e.finish());
    let (rechunks, ended) = decode(&again);
    assert!(ended);
    let back = fold(&rechunks);
    assert_eq!(back["choices"][0]["message"]["content"], "Hello");
    assert_eq!(
        back["choices"][0]["message"]["tool_calls"][0]["id"],
        "call_r1_0"
    );
    assert_eq!(
        back["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(back["usage"]["prompt_tokens"], 5);
}

#[test]
fn stream_errors_carry_their_code() {
    let mut d = Decoder::default();
    let ev = Event::data(error_json(429, "quota").to_string());
    assert_eq!(
        d.event(&ev),
        Decoded::Failed {
            status: 429,
            message: "quota".into()
        }
    );
    assert_eq!(d.event(&Event::data("{oops")), Decoded::Malformed);
}

#[test]
fn a_stream_that_breaks_right_after_a_call_ends_whole_and_one_after_text_does_not() {
    let event = |part: Value| {
        Event::data(
            json!({"candidates": [{"content": {"role": "model", "parts": [part]}}],
                "responseId": "r1", "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2}})
            .to_string(),
        )
    };
    let text = event(json!({"text": "Let me look."}));
    let call = event(json!({"functionCall": {"name": "f", "args": {"a": 1}}}));
    let mut d = Decoder::default();
    assert!(matches!(d.event(&text), Decoded::Chunks(_)));
    assert_eq!(d.whole_ending(), None, "text may have been cut");
    assert!(matches!(d.event(&call), Decoded::Chunks(_)));
    let ending = d.whole_ending().expect("the call came whole");
    assert_eq!(ending[0]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(ending[1]["usage"]["completion_tokens"], 2);
    // Text after the call, read through the copied stream's view, may be cut again.
    assert!(delta(&mut d, &text).is_some());
    assert_eq!(d.whole_ending(), None);
    assert_eq!(d.cut_after_calls(), Some("text"), "the call came whole");
}

#[test]
fn an_observed_stream_continues_with_its_ids_and_ends_once() {
    let mut e = Encoder::new("asked");
    for ev in &text_stream()[..2] {
        e.observe(ev);
    }
    let mut enc = crate::protocol::Encoder::Gemini(e);
    enc.resume("Hello", "think");
    let role = json!({"id": "other", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]});
    assert!(
        enc.chunk(&role).is_empty(),
        "nothing for a second role chunk"
    );
    let text = json!({"id": "other", "choices": [{"index": 0, "delta": {"content": " world"}}]});
    let mut out = enc.chunk(&text);
    let stop =
        json!({"id": "other", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    out.extend(enc.chunk(&stop));
    out.extend(enc.finish());
    let v: Vec<Value> = out
        .iter()
        .map(|ev| serde_json::from_str(ev.data.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(
        v.len(),
        2,
        "the new text, then the end with its last character: {v:?}"
    );
    assert_eq!(
        v[0]["candidates"][0]["content"]["parts"],
        json!([{"text": " worl"}])
    );
    assert_eq!(
        v[1]["candidates"][0]["content"]["parts"],
        json!([{"text": "d"}])
    );
    assert!(
        v.iter()
            .all(|x| x["responseId"] == "r1" && x["modelVersion"] == "g")
    );
    assert_eq!(v[1]["candidates"][0]["finishReason"], "STOP");
}

#[test]
fn inbound_request_becomes_chat_with_stable_ids() {
    let req = json!({
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"}, {"inlineData": {"mimeType": "image/jpeg", "data": "QQ=="}}]},
            {"role": "model", "parts": [{"text": "thinking", "thought": true},
                {"functionCall": {"name": "get.weather", "args": {"city": "Paris"}}, "thoughtSignature": "s"},
                {"functionCall": {"name": "get.weather", "args": {"city": "Rome"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "cli-made-up", "name": "get.weather", "response": {"output": "sunny"}}},
                {"functionResponse": {"name": "get.weather", "response": {"temp": 20}}}]},
        ],
        "generationConfig": {"temperature": 0.1, "topK": 3, "maxOutputTokens": 99, "stopSequences": ["X"],
            "responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
            "thinkingConfig": {"thinkingBudget": 4000}},
        "tools": [{"functionDeclarations": [{"name": "get.weather", "parameters": {"type": "OBJECT"}}]}, {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    });
    let chat = request_to_chat(req.clone(), true).unwrap();
    let m = chat["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "sys"}));
    assert_eq!(
        m[1]["content"][1]["image_url"]["url"],
        "data:image/jpeg;base64,QQ=="
    );
    assert_eq!(m[2]["content"], Value::Null);
    assert_eq!(m[2]["tool_calls"][0]["id"], "call_1_0_get_weather");
    assert_eq!(m[2]["tool_calls"][1]["id"], "call_1_1_get_weather");
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "call_1_0_get_weather", "content": "sunny"})
    );
    assert_eq!(
        m[4],
        json!({"role": "tool", "tool_call_id": "call_1_1_get_weather", "content": "{\"temp\":20}"})
    );
    assert_eq!(
        request_to_chat(req, true).unwrap(),
        chat,
        "the same history gives the same ids"
    );
    assert_eq!(chat["stream"], true);
    assert_eq!(chat["max_tokens"], 99);
    assert_eq!(chat["top_k"], 3);
    assert_eq!(chat["stop"], json!(["X"]));
    assert_eq!(chat["reasoning_effort"], "medium");
    assert_eq!(chat["thinking_budget"], 4000);
    assert_eq!(
        chat["response_format"]["json_schema"]["schema"]["properties"]["a"]["type"],
        "string"
    );
    assert_eq!(chat["tools"].as_array().unwrap().len(), 1);
    assert_eq!(
        chat["tools"][0]["function"]["parameters"],
        json!({"type": "object"})
    );
    assert_eq!(chat["tool_choice"], "required");
    // Malformed ends the request; a cache only a Gemini upstream knows moves on.
    assert!(matches!(
        request_to_chat(json!({"contents": "hi"}), false),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        request_to_chat(json!({"contents": [{"role": "robot", "parts": []}]}), false),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        request_to_chat(json!({"contents": [], "cachedContent": "c/1"}), false),
        Err(Error::UntranslatableField { .. })
    ));
    // Several candidates only a Gemini upstream gives; one is asked as usual.
    let many = json!({"contents": [], "generationConfig": {"candidateCount": 2}});
    assert!(matches!(
        request_to_chat(many, false),
        Err(Error::UntranslatableField { .. })
    ));
    let one = json!({"contents": [], "generation_config": {"candidate_count": 1}});
    assert!(request_to_chat(one, false).unwrap().get("n").is_none());
}

#[test]
fn long_function_names_get_short_stable_ids_that_still_pair() {
    // An MCP tool's name makes `call_{turn}_{j}_{name}` longer than the 40 characters
    // OpenAI takes; each call still gets its own id, and its response the same one.
    let name = "mcp_github_create_pull_request_review_comment";
    let call = |args: Value| json!({"functionCall": {"name": name, "args": args}});
    let answer =
        |out: &str| json!({"functionResponse": {"name": name, "response": {"output": out}}});
    let req = json!({"contents": [
        {"role": "user", "parts": [{"text": "review it"}]},
        {"role": "model", "parts": [call(json!({"line": 1})), call(json!({"line": 2}))]},
        {"role": "user", "parts": [answer("ok 1"), answer("ok 2")]},
    ]});
    let chat = request_to_chat(req.clone(), false).unwrap();
    let m = chat["messages"].as_array().unwrap();
    let ids: Vec<&str> = m[1]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    for (j, id) in ids.iter().enumerate() {
        assert!(id.len() <= 40, "{id}");
        assert!(id.starts_with(&format!("call_1_{j}_mcp_github")), "{id}");
        assert_eq!(m[2 + j]["tool_call_id"], *id, "{chat}");
    }
    assert_eq!(request_to_chat(req, false).unwrap(), chat, "stable");
    assert_eq!(synthetic_id(1, 0, "get.weather"), "call_1_0_get_weather");
}

#[test]
fn a_gemini_clients_calls_carry_a_signature_its_own_else_the_placeholder() {
    let call = |id: &str| json!({"id": id, "type": "function", "function": {"name": "read", "arguments": "{}"}});
    let chat = |details: Value| {
        json!({"id": "c1", "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "reasoning_details": details, "tool_calls": [call("call_a"), call("call_b")]}}]})
    };
    let signed = |answer: &Value| -> Vec<Value> {
        answer["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["thoughtSignature"].clone())
            .collect()
    };
    let placeholder = json!(SYNTHETIC_SIGNATURE);
    let answer = response_from_chat(chat(Value::Null));
    assert_eq!(signed(&answer), [placeholder.clone(), Value::Null]);
    let own = json!([{"type": "reasoning.encrypted", "data": "gsig", "id": "call_a", "format": SIGNED_BY_GEMINI}]);
    let answer = response_from_chat(chat(own.clone()));
    assert_eq!(signed(&answer), [json!("gsig"), Value::Null]);

    // Streamed: the calls go out whole in the last event, signed alike.
    let mut e = Encoder::new("m");
    let delta = |d: Value| json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": d}]});
    let mut evs = e.chunk(&delta(json!({"reasoning_details": own})));
    for (i, id) in ["call_a", "call_b"].iter().enumerate() {
        let mut c = call(id);
        c["index"] = json!(i);
        evs.extend(e.chunk(&delta(json!({"tool_calls": [c]}))));
    }
    evs.extend(e.finish());
    let last: Value = serde_json::from_str(evs.last().unwrap().data.as_deref().unwrap()).unwrap();
    assert_eq!(signed(&last), [json!("gsig"), Value::Null]);
}

#[test]
fn a_stream_to_a_gemini_client_ends_on_real_text() {
    // Every event has parts, none an empty text; the last carries the final character
    // with the finish reason, and text and thoughts keep their order.
    let mut e = Encoder::new("m");
    let delta = |d: Value| json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": d}]});
    let mut evs = Vec::new();
    for d in [
        json!({"role": "assistant", "content": ""}),
        json!({"reasoning_content": "Let me"}),
        json!({"reasoning_content": " see."}),
        json!({"content": "H"}),
        json!({"content": "i é"}),
        json!({}),
    ] {
        evs.extend(e.chunk(&delta(d)));
    }
    evs.extend(e.chunk(
        &json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ));
    evs.extend(e.finish());
    let v: Vec<Value> = evs
        .iter()
        .map(|ev| serde_json::from_str(ev.data.as_deref().unwrap()).unwrap())
        .collect();
    let (mut text, mut thoughts) = (String::new(), String::new());
    for x in &v {
        let parts = x["candidates"][0]["content"]["parts"].as_array().unwrap();
        assert!(!parts.is_empty(), "{x}");
        for p in parts {
            let t = p["text"].as_str().unwrap();
            assert!(!t.is_empty(), "{x}");
            if p["thought"] == json!(true) {
                assert!(text.is_empty(), "a thought after text: {v:?}");
                thoughts.push_str(t);
            } else {
                text.push_str(t);
            }
        }
    }
    assert_eq!((thoughts.as_str(), text.as_str()), ("Let me see.", "Hi é"));
    let last = v.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["candidates"][0]["content"]["parts"],
        json!([{"text": "é"}])
    );

    // Nothing at all: the last event has the finish reason and no parts.
    let mut e = Encoder::new("m");
    let evs = e.finish();
    let last: Value = serde_json::from_str(evs[0].data.as_deref().unwrap()).unwrap();
    assert_eq!(last["candidates"][0]["content"], json!({"role": "model"}));
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
}

#[test]
fn error_bodies_in_googles_shape() {
    assert_eq!(
        error_json(429, "x"),
        json!({"error": {"code": 429, "message": "x", "status": "RESOURCE_EXHAUSTED"}})
    );
    assert_eq!(error_json(404, "x")["error"]["status"], "NOT_FOUND");
    assert_eq!(error_json(502, "x")["error"]["status"], "INTERNAL");
}

#[test]
fn an_answer_has_no_empty_text_part() {
    // Gemini refuses an empty text part in the history a client sends back: an answer
    // with nothing in it has no parts, and one of only calls or thoughts no text part.
    let answer = |message: Value, finish: &str| {
        response_from_chat(json!({"id": "c1", "model": "m", "choices": [{"index": 0,
            "finish_reason": finish, "message": message}]}))
    };
    let call =
        json!({"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}});
    for (message, finish) in [
        (json!({"role": "assistant", "content": ""}), "stop"),
        (json!({"role": "assistant", "content": null}), "length"),
        (json!({"role": "assistant", "content": []}), "stop"),
    ] {
        let got = answer(message, finish);
        assert_eq!(
            got["candidates"][0]["content"],
            json!({"role": "model"}),
            "{got}"
        );
        assert!(got["candidates"][0]["finishReason"].is_string(), "{got}");
    }
    for message in [
        json!({"role": "assistant", "content": "", "tool_calls": [call]}),
        json!({"role": "assistant", "content": null, "reasoning_content": "hmm"}),
    ] {
        let got = answer(message, "stop");
        let parts = got["candidates"][0]["content"]["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 1, "{got}");
        assert_ne!(parts[0]["text"], "", "{got}");
    }
}
