//! Responses translation, both ways, unit by unit.

use serde_json::{Value, json};

use super::client::{custom_input, flatten_tools};
use super::*;
use crate::body::RawBody;
use crate::error::Error;
use crate::protocol::Decoded;
use crate::protocol::testing::fold;
use crate::sse::Event;

fn ev(kind: &str, mut data: Value) -> Event {
    data["type"] = json!(kind);
    Event::named(Some(kind), data.to_string())
}

#[test]
fn chat_request_becomes_responses_request() {
    let chat = json!({"model": "x", "max_tokens": 9, "temperature": 0.1, "stop": ["X"], "reasoning_effort": "low", "stream": true,
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": true}},
        "messages": [
            {"role": "system", "content": "a"}, {"role": "developer", "content": "b"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://i/x.png"}}, {"type": "file", "file": {"file_id": "file-1"}}]},
            {"role": "assistant", "content": "calling", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}});
    let r = request_from_chat(chat, "gpt-x", "p").unwrap();
    // A file by id: a Responses source is the one that knows what it names.
    assert_eq!(
        r["input"][0]["content"][2],
        json!({"type": "input_file", "file_id": "file-1"})
    );
    assert_eq!(r["instructions"], "a\n\nb");
    assert_eq!(
        r["max_output_tokens"], 16,
        "raised to the least OpenAI takes"
    );
    assert_eq!(r["store"], false);
    assert!(r.get("stop").is_none());
    assert_eq!(r["reasoning"], json!({"effort": "low", "summary": "auto"}));
    assert_eq!(r["text"]["format"]["type"], "json_schema");
    let input = r["input"].as_array().unwrap();
    assert_eq!(
        input[0]["content"][1],
        json!({"type": "input_image", "image_url": "https://i/x.png", "detail": "auto"})
    );
    assert_eq!(
        input[1]["content"][0],
        json!({"type": "output_text", "text": "calling"})
    );
    assert_eq!(
        input[2],
        json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"})
    );
    assert_eq!(
        input[3],
        json!({"type": "function_call_output", "call_id": "c1", "output": "done"})
    );
    assert_eq!(
        r["tools"][0],
        json!({"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}})
    );
    assert_eq!(r["tool_choice"], json!({"type": "function", "name": "f"}));
    assert!(request_from_chat(json!({"messages": [], "n": 3}), "m", "p").is_err());
}

#[test]
fn custom_tools_are_named_even_inside_a_namespace() {
    let body =
        |tools: Value| RawBody::parse(json!({"tools": tools}).to_string().into_bytes()).unwrap();
    let tools = json!([
        {"type": "function", "name": "f", "description": "not \"custom\""},
        {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
        {"type": "namespace", "name": "mcp", "tools": [{"type": "custom", "name": "x"}]},
    ]);
    assert_eq!(ClientTools::of(&body(tools)).custom, ["apply_patch", "x"]);
    let plain = ClientTools::of(&body(json!([{"type": "function", "name": "f"}])));
    assert!(plain.custom.is_empty() && !plain.local_shell);
    let shell = ClientTools::of(&body(json!([{"type": "local_shell"}])));
    assert!(shell.custom.is_empty() && shell.local_shell);
}

#[test]
fn a_custom_tool_is_a_function_of_its_text() {
    let mut tools = Vec::new();
    flatten_tools(
        &[json!({"type": "custom", "name": "note", "description": "Jot."})],
        &mut tools,
    )
    .unwrap();
    let f = &tools[0]["function"];
    assert_eq!(
        (&f["name"], &f["description"]),
        (&json!("note"), &json!("Jot."))
    );
    assert_eq!(f["parameters"]["required"], json!(["input"]));
    // The text comes out of `{"input": …}`; anything else the model wrote goes whole.
    assert_eq!(custom_input(r#"{"input":"a \"b\""}"#), r#"a "b""#);
    assert_eq!(custom_input("not json"), "not json");
    assert_eq!(custom_input(r#"{"text":"x"}"#), r#"{"text":"x"}"#);
}

#[test]
fn codex_rules_are_applied() {
    let mut r = json!({"model": "m", "input": [], "max_output_tokens": 5, "temperature": 1, "previous_response_id": "x", "stream": false});
    codex_body(&mut r);
    assert_eq!(r["stream"], true);
    assert_eq!(r["store"], false);
    assert_eq!(r["instructions"], DEFAULT_INSTRUCTIONS);
    assert_eq!(r["include"], json!(["reasoning.encrypted_content"]));
    for gone in ["max_output_tokens", "temperature", "previous_response_id"] {
        assert!(r.get(gone).is_none(), "{gone}");
    }
}

#[test]
fn response_object_becomes_chat_and_back() {
    let resp = json!({"id": "resp_1", "created_at": 5, "status": "completed", "model": "m",
        "output": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}]},
                   {"type": "message", "content": [{"type": "output_text", "text": "hi"}]},
                   {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"a\":1}"}],
        "usage": {"input_tokens": 4, "input_tokens_details": {"cached_tokens": 1}, "output_tokens": 2, "total_tokens": 6}});
    let chat = response_to_chat(resp).unwrap();
    assert_eq!(chat["choices"][0]["message"]["content"], "hi");
    assert_eq!(chat["choices"][0]["message"]["reasoning_content"], "think");
    assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    let back = response_from_chat(chat, &ClientTools::default(), &Echo::default());
    assert_eq!(back["status"], "completed");
    assert_eq!(back["output"][2]["call_id"], "c1");
    assert_eq!(back["usage"]["total_tokens"], 6);
    let incomplete = response_to_chat(json!({"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "output": []})).unwrap();
    assert_eq!(incomplete["choices"][0]["finish_reason"], "length");
    let failed = json!({"status": "failed", "output": [], "error": {"code": "server_error", "message": "no"}});
    assert_eq!(failed_status(failed.to_string().as_bytes()), Some(502));
    let tool_failed =
        json!({"status": "completed", "output": [{"type": "web_search_call", "status": "failed"}]});
    assert_eq!(failed_status(tool_failed.to_string().as_bytes()), None);
}

fn parallel_tool_stream() -> Vec<Event> {
    let mut evs = vec![
        ev(
            "response.created",
            json!({"response": {"id": "r1", "model": "m", "created_at": 1}}),
        ),
        ev("response.in_progress", json!({})),
        ev(
            "response.output_item.added",
            json!({"output_index": 0, "item": {"type": "function_call", "id": "fc_a", "call_id": "a", "name": "f", "arguments": ""}}),
        ),
        ev(
            "response.output_item.added",
            json!({"output_index": 1, "item": {"type": "function_call", "id": "fc_b", "call_id": "b", "name": "g", "arguments": ""}}),
        ),
    ];
    // Fragments of the two calls interleave.
    for (oi, frag) in [(0, "{\"x\""), (1, "{\"y\""), (0, ":1}"), (1, ":2}")] {
        evs.push(ev("response.function_call_arguments.delta", json!({"output_index": oi, "item_id": if oi == 0 { "fc_a" } else { "fc_b" }, "delta": frag})));
    }
    evs.push(ev(
        "response.function_call_arguments.done",
        json!({"output_index": 0, "item_id": "fc_a", "arguments": "{\"x\":1}"}),
    ));
    evs.push(ev("response.completed", json!({"response": {"status": "completed", "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}})));
    evs
}

fn decode_all(evs: &[Event]) -> (Vec<Value>, bool) {
    crate::protocol::testing::decode_all(
        crate::protocol::Decoder::Responses(Decoder::default()),
        evs,
    )
}

#[test]
fn streamed_parallel_tool_calls_get_indexes_and_whole_arguments() {
    let (chunks, ended) = decode_all(&parallel_tool_stream());
    assert!(ended);
    let out = fold(&chunks);
    let calls = &out["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls[0]["id"], "a");
    assert_eq!(
        calls[0]["function"]["arguments"], "{\"x\":1}",
        "done does not repeat streamed arguments"
    );
    assert_eq!(calls[1]["function"]["name"], "g");
    assert_eq!(calls[1]["function"]["arguments"], "{\"y\":2}");
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out["usage"]["total_tokens"], 7);
}

#[test]
fn failures_mid_stream_carry_their_status() {
    let mut d = Decoder::default();
    assert_eq!(
        d.event(&ev(
            "response.failed",
            json!({"response": {"error": {"code": "rate_limit_exceeded", "message": "slow"}}})
        )),
        Decoded::Failed {
            status: 429,
            message: "slow".into()
        }
    );
    assert_eq!(
        d.event(&ev(
            "error",
            json!({"code": "server_error", "message": "boom"})
        )),
        Decoded::Failed {
            status: 502,
            message: "boom".into()
        }
    );
}

#[test]
fn stream_without_completed_never_ends() {
    let evs = parallel_tool_stream();
    assert!(
        !decode_all(&evs[..evs.len() - 1]).1,
        "the relay reports the missing end marker"
    );
}

#[test]
fn an_observed_stream_continues_its_item_and_numbering() {
    let mut e = Encoder::new("m", ClientTools::default(), Echo::default());
    for v in [
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_9", "created_at": 3, "model": "gpt-up"}}),
        json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"type": "message", "id": "msg_9"}}),
        json!({"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_9", "output_index": 0, "delta": "Hel"}),
    ] {
        e.observe(&ev(v["type"].as_str().unwrap(), v.clone()));
    }
    e.resume("Hel", "");
    let chunk = json!({"id": "x", "model": "rescuer", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "lo"}}]});
    let out = e.chunk(&chunk);
    assert_eq!(out.len(), 1, "no second response.created: {out:?}");
    let d: Value = serde_json::from_str(out[0].data.as_deref().unwrap()).unwrap();
    assert_eq!(
        (&d["sequence_number"], &d["item_id"]),
        (&json!(3), &json!("msg_9"))
    );
    let end = e.finish();
    let done: Value = serde_json::from_str(end[0].data.as_deref().unwrap()).unwrap();
    assert_eq!(done["text"], "Hello", "the item's whole text");
    let last: Value = serde_json::from_str(end.last().unwrap().data.as_deref().unwrap()).unwrap();
    assert_eq!(last["response"]["id"], "resp_9");
    // The model the client was first told, and no usage invented where none came.
    assert_eq!(last["response"]["model"], "gpt-up");
    assert!(last["response"]["usage"].is_null(), "{last}");
}

#[test]
fn decoded_stream_reencodes_to_the_same_content() {
    let mut evs = vec![ev(
        "response.created",
        json!({"response": {"id": "r1", "model": "m"}}),
    )];
    for d in ["Hel", "lo"] {
        evs.push(ev(
            "response.output_text.delta",
            json!({"output_index": 0, "item_id": "m1", "delta": d}),
        ));
    }
    evs.extend(parallel_tool_stream().into_iter().skip(2));
    let (chunks, _) = decode_all(&evs);
    let mut e = Encoder::new("m", ClientTools::default(), Echo::default());
    let mut out: Vec<Event> = chunks.iter().flat_map(|c| e.chunk(c)).collect();
    out.extend(e.finish());
    let (again, ended) = decode_all(&out);
    assert!(ended);
    let fold = |cs: &[Value]| crate::protocol::testing::fold(cs)["choices"][0].clone();
    assert_eq!(fold(&chunks), fold(&again));
    let seqs: Vec<u64> = out
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e.data.as_deref().unwrap()).unwrap()["sequence_number"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers increase: {seqs:?}"
    );
    let last: Value = serde_json::from_str(out.last().unwrap().data.as_deref().unwrap()).unwrap();
    assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hello");
}

#[test]
fn inbound_request_becomes_chat() {
    let req = json!({"model": "m", "instructions": "sys", "max_output_tokens": 7, "reasoning": {"effort": "high"}, "stream": true,
    "text": {"format": {"type": "json_object"}}, "tool_choice": {"type": "function", "name": "f"},
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "r1"},
        {"role": "developer", "content": "dev"},
    ]});
    let chat = request_to_chat(req).unwrap();
    let m = chat["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "sys"}));
    assert_eq!(m[1], json!({"role": "user", "content": "hi"}));
    assert_eq!(
        m[2]["tool_calls"].as_array().unwrap().len(),
        2,
        "consecutive calls form one turn"
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "c1", "content": "r1"})
    );
    assert_eq!(m[4], json!({"role": "system", "content": "dev"}));
    assert_eq!(chat["max_tokens"], 7);
    assert_eq!(chat["reasoning_effort"], "high");
    assert_eq!(chat["response_format"], json!({"type": "json_object"}));
    assert_eq!(
        chat["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(chat["stream_options"], json!({"include_usage": true}));
}

#[test]
fn inbound_refusals_and_tool_narrowing() {
    let err = request_to_chat(json!({"model": "m", "input": "x", "previous_response_id": "r"}))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("`previous_response_id` needs a Responses upstream")
    );
    let chat = request_to_chat(json!({"model": "m", "input": "x", "tools": [
        {"type": "web_search"},
        {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "inner", "parameters": {}}]},
    ]}))
    .unwrap();
    assert_eq!(
        chat["tools"],
        json!([{"type": "function", "function": {"name": "inner", "parameters": {}}}]),
        "hosted tools are dropped, namespaces flattened"
    );
    // Malformed ends the request; `previous_response_id` moves on to a Responses upstream.
    assert!(matches!(
        request_to_chat(json!({"model": "m"})),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        request_to_chat(json!({"model": "m", "input": 42})),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(err, Error::UntranslatableField { .. }));
}

#[test]
fn reasoning_text_alone_is_sealed_empty_and_gives_nothing_back() {
    // Sealed, Codex's copy of it is taken out before a Responses source; given back to
    // another, it carries no details and begins no turn of its own.
    let chat = json!({"id": "c1", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "hi", "reasoning_content": "think"}}]});
    let reasoning =
        response_from_chat(chat, &ClientTools::default(), &Echo::default())["output"][0].clone();
    let sealed = reasoning["encrypted_content"].as_str().unwrap();
    assert!(holds_own(sealed.as_bytes()), "{reasoning}");
    assert_eq!(unseal(sealed), None);
    let message = json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}]});
    let call = json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"});
    let chat = request_to_chat(json!({"model": "m", "input": [reasoning, message, call]})).unwrap();
    let turn = &chat["messages"][0];
    assert!(turn["reasoning_details"].is_null(), "{chat}");
    assert_eq!(turn["tool_calls"][0]["id"], "c1", "{chat}");
}

#[test]
fn a_sources_encrypted_reasoning_travels_as_a_detail_and_goes_back_before_its_turn() {
    let reasoning = json!({"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAA-x",
        "summary": [{"type": "summary_text", "text": "think"}]});
    let call = json!({"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f", "arguments": "{}"});
    let detail = json!({"type": "reasoning.encrypted", "data": "gAAAA-x", "id": "rs_1", "format": SIGNED_BY_OPENAI});
    let whole = response_to_chat(
        json!({"id": "resp_1", "status": "completed", "output": [reasoning, call]}),
    )
    .unwrap();
    let turn = whole["choices"][0]["message"].clone();
    assert_eq!(turn["reasoning_details"], json!([detail]), "{whole}");

    // Streamed: whole, once the item is done, numbered as OpenRouter numbers them.
    let (chunks, _) = decode_all(&[
        ev(
            "response.created",
            json!({"response": {"id": "resp_1", "model": "m"}}),
        ),
        ev(
            "response.output_item.added",
            json!({"output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
        ),
        ev(
            "response.output_item.done",
            json!({"output_index": 0, "item": reasoning}),
        ),
        ev(
            "response.output_item.done",
            json!({"output_index": 1, "item": call}),
        ),
        ev(
            "response.completed",
            json!({"response": {"status": "completed"}}),
        ),
    ]);
    let mut numbered = detail.clone();
    numbered["index"] = json!(0);
    assert_eq!(
        fold(&chunks)["choices"][0]["message"]["reasoning_details"],
        json!([numbered])
    );

    // Back to a Responses source, before the turn's call, without the id OpenAI would
    // look up (and not find, with nothing stored); other models' details stay out.
    let mut turn = turn;
    turn["reasoning_details"] = json!([detail, {"type": "reasoning.text", "text": "t", "signature": "s", "format": "anthropic-claude-v1"}]);
    let chat = json!({"model": "m", "reasoning_effort": "high", "messages": [{"role": "user", "content": "hi"}, turn,
        {"role": "assistant", "content": null, "reasoning_details": [detail]}]});
    let r = request_from_chat(chat, "gpt-5", "p").unwrap();
    let input = r["input"].as_array().unwrap();
    assert_eq!(
        input.len(),
        3,
        "reasoning goes only with what it led to: {r}"
    );
    assert_eq!(
        input[1],
        json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-x"})
    );
    assert_eq!(input[2]["type"], "function_call");
    assert_eq!(r["include"], json!(["reasoning.encrypted_content"]));
}

#[test]
fn a_model_that_reasons_unasked_is_asked_for_its_reasoning() {
    // Stored nowhere, gpt-5's reasoning reaches the next turn only encrypted; a model
    // that does not reason would refuse the `include`.
    let chat = || json!({"messages": [{"role": "user", "content": "hi"}]});
    for (model, asked) in [
        ("gpt-5", true),
        ("gpt-5-codex", true),
        ("o4-mini", true),
        ("openai/o3", true),
        ("gpt-5-chat-latest", false),
        ("gpt-4o", false),
        ("gpt-4.1", false),
    ] {
        let r = request_from_chat(chat(), model, "p").unwrap();
        assert_eq!(r.get("include").is_some(), asked, "{model}: {r}");
    }
}

#[test]
fn another_accounts_reasoning_goes_older_first() {
    let user = |t: &str| json!({"type": "message", "role": "user", "content": t});
    let reasoning =
        |id: &str| json!({"type": "reasoning", "id": id, "summary": [], "encrypted_content": "e"});
    let call = |id: &str| json!({"type": "function_call", "id": id, "call_id": id, "name": "f", "arguments": "{}"});
    let kinds = |r: &Value| -> Vec<String> {
        let items = r["input"].as_array().unwrap().iter();
        items
            .map(|i| {
                format!(
                    "{}:{}",
                    i["type"].as_str().unwrap(),
                    i["id"].as_str().unwrap_or("-")
                )
            })
            .collect()
    };
    let both = json!({"input": [user("a"), reasoning("rs_1"), call("fc_1"), user("b"), reasoning("rs_2"), call("fc_2")]});
    let mut older = both.clone();
    drop_reasoning(&mut older, false, &mut Vec::new());
    assert_eq!(
        kinds(&older),
        [
            "message:-",
            "function_call:-",
            "message:-",
            "reasoning:-",
            "function_call:-"
        ]
    );
    let mut all = both;
    drop_reasoning(&mut all, true, &mut Vec::new());
    assert_eq!(
        kinds(&all),
        [
            "message:-",
            "function_call:-",
            "message:-",
            "function_call:-"
        ]
    );
    // With none before the last question, the refusal was about the rest: all goes.
    let mut current = json!({"input": [user("a"), reasoning("rs_1"), call("fc_1")]});
    drop_reasoning(&mut current, false, &mut Vec::new());
    assert_eq!(kinds(&current), ["message:-", "function_call:-"]);
    // A reasoning item that is only its id says nothing once the id goes; a reference
    // is only its id, and stays.
    let bare = json!({"type": "reasoning", "id": "rs_3", "summary": [], "encrypted_content": null});
    let reference = json!({"type": "item_reference", "id": "msg_0"});
    let mut loose =
        json!({"input": [reference, user("a"), reasoning("rs_1"), user("b"), bare, call("fc_3")]});
    drop_reasoning(&mut loose, false, &mut Vec::new());
    assert_eq!(
        kinds(&loose),
        [
            "item_reference:msg_0",
            "message:-",
            "message:-",
            "function_call:-"
        ]
    );
}

#[test]
fn ids_routeplane_made_are_found_and_taken_out_and_others_stay() {
    assert!(is_minted("fc_rp_call_1") && is_minted("msg_rp_resp_x_0"));
    assert!(!is_minted("msg_68ab") && !is_minted("rp_x") && !is_minted("call_rp_1"));
    let mut req = json!({"input": [
        {"type": "message", "id": "msg_68ab", "role": "assistant", "content": []},
        {"type": "item_reference", "id": "msg_rp_resp_x_0"},
        {"type": "item_reference", "id": "msg_68ab"},
        {"type": "function_call", "id": "fc_rp_call_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
    ]});
    let input = serde_json::to_vec(&req["input"]).unwrap();
    assert!(holds_own(&input));
    drop_own(&mut req);
    assert_eq!(
        req["input"],
        json!([
            {"type": "message", "id": "msg_68ab", "role": "assistant", "content": []},
            {"type": "item_reference", "id": "msg_68ab"},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        ])
    );
    assert!(!holds_own(&serde_json::to_vec(&req["input"]).unwrap()));
}

#[test]
fn thinking_and_text_inside_a_call_wait_for_it_to_end() {
    let chunks = crate::protocol::testing::thoughts_inside_a_call();
    let mut e = Encoder::new("m", ClientTools::default(), Echo::default());
    let mut out: Vec<Event> = chunks.iter().flat_map(|c| e.chunk(c)).collect();
    out.extend(e.finish());
    let (again, ended) = decode_all(&out);
    assert!(ended);
    crate::protocol::testing::assert_whole_with_thoughts(&fold(&again));
}

#[test]
fn a_stream_that_breaks_right_after_a_done_call_ends_whole_and_one_inside_a_call_does_not() {
    let mut d = Decoder::default();
    d.event(&ev(
        "response.created",
        json!({"response": {"id": "r1", "model": "g"}}),
    ));
    let call = |oi: u64| json!({"type": "function_call", "id": format!("fc{oi}"), "call_id": format!("c{oi}"), "name": "f", "arguments": ""});
    let added = |d: &mut Decoder, oi: u64, item: Value| {
        d.event(&ev(
            "response.output_item.added",
            json!({"output_index": oi, "item": item}),
        ));
    };
    let done = |d: &mut Decoder, oi: u64| {
        let mut item = call(oi);
        item["arguments"] = json!("{}");
        d.event(&ev(
            "response.output_item.done",
            json!({"output_index": oi, "item": item}),
        ));
    };
    added(
        &mut d,
        0,
        json!({"type": "message", "id": "m0", "content": []}),
    );
    assert_eq!(d.whole_ending(), None, "text may have been cut");
    added(&mut d, 1, call(1));
    assert_eq!(
        d.whole_ending(),
        None,
        "the call's arguments may have been cut"
    );
    done(&mut d, 1);
    let ending = d.whole_ending().expect("the call is done");
    assert_eq!(ending[0]["choices"][0]["finish_reason"], "tool_calls");
    // A parallel call begun and cut: not whole.
    added(&mut d, 2, call(2));
    assert_eq!((d.whole_ending(), d.cut_after_calls()), (None, None));
    done(&mut d, 2);
    added(&mut d, 3, json!({"type": "reasoning", "id": "rs3"}));
    assert_eq!(d.cut_after_calls(), Some("reasoning"));
}
