//! Responses item ids: those Routeplane made never reach a Responses source, references
//! to them still take a tool loop anywhere, and ids a source never stored are left out
//! when it says so.

use super::*;

#[test]
fn item_ids_routeplane_made_never_reach_a_responses_source() {
    // A Responses client answered by a chat source (translated) keeps the ids Routeplane
    // made for that answer's items and sends them back. When the next turn goes to a
    // Responses source, those ids are taken out first: that source never stored them
    // and would refuse the whole request. Its own ids stay.
    let chat = MockUpstream::start(|req| Wire::Chat.reply(req.json()["stream"] == true, true));
    let responses = MockUpstream::start(|req| {
        let body = req.json();
        let foreign = body["input"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["id"].as_str())
            .find(|id| *id != "msg_68real");
        match foreign {
            Some(id) => Reply::json(
                404,
                json!({"error": {"message": format!("Item with id '{id}' not found."), "type": "invalid_request_error"}}),
            ),
            None => Wire::Responses.reply(false, false),
        }
    });
    let p = Proxy::start(&format!(
        "providers:\n  c:\n    api_base: {}\n    models: [m]\n  r:\n    api_base: {}\n    api_protocol: responses\n    models: [m]\n",
        chat.url(),
        responses.url()
    ));
    for stream in [false, true] {
        let first = p.stream(
            &Wire::Responses.url("c:m", stream),
            json!({"model": "c:m", "stream": stream, "input": [user_item("weather?")],
                "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}),
        );
        assert_eq!(first.status, 200, "{}", first.text());
        // The items the client was answered with, as it keeps them.
        let output: Vec<Value> = if stream {
            first
                .data()
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter(|e| e["type"] == "response.output_item.done")
                .map(|e| e["item"].clone())
                .collect()
        } else {
            serde_json::from_str::<Value>(&first.text()).unwrap()["output"]
                .as_array()
                .unwrap()
                .clone()
        };
        assert!(!output.is_empty(), "stream {stream}: {}", first.text());
        assert!(output.iter().all(|i| i["id"].is_string()), "{output:?}");
        let mut input = vec![
            json!({"type": "message", "id": "msg_68real", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}),
            user_item("weather?"),
        ];
        input.extend(output.iter().cloned());
        let call_id = output
            .iter()
            .find(|i| i["type"] == "function_call")
            .unwrap()["call_id"]
            .clone();
        input.push(json!({"type": "function_call_output", "call_id": call_id, "output": "sunny"}));
        let before = responses.count();
        let resp = p.post(
            &Wire::Responses.url("r:m", false),
            json!({"model": "r:m", "input": input}),
        );
        assert_eq!(resp.status, 200, "stream {stream}: {}", resp.body);
        assert_eq!(
            responses.count(),
            before + 1,
            "stream {stream}: not refused first"
        );
        let sent = body_of(&responses.requests()[before]);
        let ids: Vec<&str> = sent["input"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        assert_eq!(ids, ["msg_68real"], "stream {stream}: {sent}");
        assert_eq!(
            sent["input"].as_array().unwrap().len(),
            input.len(),
            "every item is still there, inline"
        );
    }
}

#[test]
fn references_to_items_routeplane_made_take_a_tool_loop_to_any_source() {
    // The AI SDK's OpenAI provider (store left on) gives an answer's reasoning and text
    // back as `item_reference`s to the ids Routeplane made for them. No source stored
    // those: the references go, and the loop's next step reaches a chat or an
    // Anthropic source with the call and its output, instead of a 400.
    let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "reasoning_content": "hmm", "content": "Let me look.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}]});
    let chat =
        MockUpstream::start(
            move |req| match req.json()["messages"].as_array().unwrap().len() {
                1 => Reply::json(200, answer.clone()),
                _ => Wire::Chat.reply(false, false),
            },
        );
    let claude = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let p = Proxy::start(&format!(
        "providers:\n  c:\n    api_base: {}\n    models: [m]\n  a:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n",
        chat.url(),
        claude.url()
    ));
    let tools =
        json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
    let output = responses_items(
        &p,
        false,
        json!({"model": "c:m", "input": [user_item("weather?")], "tools": tools}),
    );
    assert_eq!(
        output
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["reasoning", "message", "function_call"]
    );
    // As the AI SDK sends the next step: references, then the call inline, then its output.
    let mut input = vec![user_item("weather?")];
    for item in &output[..2] {
        input.push(json!({"type": "item_reference", "id": item["id"]}));
    }
    input.push(output[2].clone());
    input.push(json!({"type": "function_call_output", "call_id": "call_1", "output": "sunny"}));
    for (model, mock) in [("c:m", &chat), ("a:m", &claude)] {
        let resp = p.post(
            &Wire::Responses.url(model, false),
            json!({"model": model, "input": input, "tools": tools}),
        );
        assert_eq!(resp.status, 200, "{model}: {}", resp.body);
        assert_eq!(
            resp.json()["output"][0]["content"][0]["text"],
            "Hello there"
        );
        let sent = mock.posts().last().unwrap().json();
        let roles: Vec<&str> = sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        let expected: &[&str] = match model {
            "c:m" => &["user", "assistant", "tool"],
            _ => &["user", "assistant", "user"],
        };
        assert_eq!(roles, expected, "{model}: {sent}");
    }
}

#[test]
fn item_ids_a_responses_source_never_stored_are_left_out_when_it_says_so() {
    // A Responses client keeps the ids of the items it was answered with and sends them
    // back. Ids Routeplane made for a translated answer (`msg_…`, `fc_…`), or ids of
    // another account's items, name nothing a source can look up, and OpenAI refuses
    // the whole request. It is asked again at once with the same items, inline, and no
    // ids (an id-only reasoning item says nothing without its id, and goes).
    let mock = MockUpstream::start(|req| {
        let body = req.json();
        let ids: Vec<&str> = body["input"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["id"].as_str())
            .collect();
        match ids.first() {
            Some(id) => Reply::json(
                404,
                json!({"error": {"message": format!("Item with id '{id}' not found. Items are not persisted when `store` is set to false. Try again with `store` set to true, or remove this item from your input."),
                    "type": "invalid_request_error", "param": "input", "code": null}}),
            ),
            None => Wire::Responses.reply(false, false),
        }
    });
    let p = Wire::Responses.serving(&mock, "m");
    let input = json!([
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": null},
        {"type": "function_call", "id": "fc_call_a", "call_id": "call_a", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
        {"type": "message", "id": "msg_chatcmpl-1", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and Rome?"}]},
    ]);
    let resp = p.post(
        &Wire::Responses.url("m", false),
        json!({"model": "m", "store": false, "input": input}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let line = p.wait_log("status=200");
    assert!(line.contains("tried=up:m→404:foreign,up:m→200"), "{line}");
    let again = body_of(&mock.requests()[1]);
    assert_eq!(
        input_kinds(&again),
        [
            "message",
            "function_call",
            "function_call_output",
            "message",
            "message"
        ],
        "{again}"
    );
    assert_eq!(again["input"][1]["call_id"], "call_a");
    assert_eq!(again["input"][3]["content"][0]["text"], "Sunny.");
}

#[test]
fn a_whole_answer_names_its_items_as_the_same_answer_streamed() {
    // A whole answer's message was `msg_rp_resp_X` where the stream said
    // `msg_rp_resp_X_1`: a client that keeps ids from one and meets the other saw two
    // items. Both carry the output index, which tells several items apart.
    let chat = MockUpstream::start(|req| {
        if body_of(req)["stream"] == json!(true) {
            return chat_sse(
                &[
                    json!({"reasoning_content": "hmm"}),
                    json!({"content": "Hi."}),
                ],
                "stop",
            );
        }
        Reply::json(
            200,
            json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "reasoning_content": "hmm",
                    "content": "Hi."}, "finish_reason": "stop"}]}),
        )
    });
    let p = Proxy::start(&format!(
        "providers:\n  c:\n    api_base: {}\n    models: [m]\n",
        chat.url()
    ));
    let ids = |stream| {
        let req = json!({"model": "m", "stream": stream, "input": [user_item("hi")]});
        let items = responses_items(&p, stream, req);
        items
            .iter()
            .map(|i| format!("{} {}", i["type"], i["id"]))
            .collect::<Vec<_>>()
    };
    let whole = ids(false);
    assert_eq!(
        whole,
        [
            r#""reasoning" "rs_rp_resp_c1_0""#,
            r#""message" "msg_rp_resp_c1_1""#
        ]
    );
    assert_eq!(whole, ids(true));
}
