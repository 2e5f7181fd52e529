//! A Gemini client of other sources: what its fields become, and what survives the
//! translation back (call signatures, several candidates, usage not reported).

use super::*;

/// A mock Gemini API that, asked first, calls `read` with the signature `sig-real`, and
/// answers later requests with text; streamed (`alt=sse`) or whole, as asked.
fn gemini_signing_a_call() -> MockUpstream {
    MockUpstream::numbered(|n, req| {
        let part = if n == 0 {
            json!({"functionCall": {"name": "read", "args": {"path": "a.rs"}}, "thoughtSignature": "sig-real"})
        } else {
            json!({"text": "done"})
        };
        let answer = json!({"responseId": format!("resp-{}", req.path.len()),
            "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}]});
        if req.path.contains("alt=sse") {
            Reply::Sse(vec![format!("data: {answer}\r\n\r\n")], Duration::ZERO)
        } else {
            Reply::json(200, answer)
        }
    })
}

#[test]
fn geminis_call_signature_survives_a_chat_clients_loop_that_drops_it() {
    // opencode and aider keep no `reasoning_details`, where Gemini's signature of a call
    // reaches a Chat client. Gemini 3 refuses a call turn without one, so the turn went
    // with the placeholder Google allows for history it did not make, losing the
    // model's reasoning. The signature is now kept under the call's id and given back.
    let tools = json!([{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]);
    let ask = json!({"role": "user", "content": "read a.rs"});
    for stream in [false, true] {
        let mock = gemini_signing_a_call();
        let p = Proxy::start_with(
            &format!("providers:\n  gemini:\n    api_base: {}\n", mock.url()),
            &[("GEMINI_API_KEY", "k")],
            &[],
        );
        let first = json!({"model": "gemini:gemini-3-pro", "messages": [ask], "tools": tools, "stream": stream});
        let answer = p.stream(&Wire::Chat.url("m", stream), first);
        assert_eq!(answer.status, 200, "{}", answer.text());
        let text = answer.text();
        let id = text
            .split("\"id\":\"call_")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|rest| format!("call_{rest}"))
            .unwrap_or_else(|| panic!("a call id: {text}"));
        // The client's next turn, as opencode sends it: the call and its result alone.
        let turn = json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a.rs\"}"}}]});
        let result = json!({"role": "tool", "tool_call_id": id, "content": "fn main() {}"});
        let second = json!({"model": "gemini:gemini-3-pro", "messages": [ask, turn, result], "tools": tools});
        let resp = p.post(&Wire::Chat.url("m", false), second);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let posts: Vec<Value> = mock.posts().iter().map(|r| r.json()).collect();
        let call = &posts[1]["contents"][1]["parts"][0];
        assert_eq!(call["functionCall"]["name"], "read", "{}", posts[1]);
        assert_eq!(
            call["thoughtSignature"], "sig-real",
            "stream {stream}: {}",
            posts[1]
        );
        // Another session's call of another id gets the placeholder, not this one's.
        let other = json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_other_0", "type": "function", "function": {"name": "read", "arguments": "{}"}}]});
        let result = json!({"role": "tool", "tool_call_id": "call_other_0", "content": "x"});
        let third = json!({"model": "gemini:gemini-3-pro", "messages": [ask, other, result], "tools": tools});
        assert_eq!(p.post(&Wire::Chat.url("m", false), third).status, 200);
        let sent = mock.posts()[2].json();
        assert_eq!(
            sent["contents"][1]["parts"][0]["thoughtSignature"], "skip_thought_signature_validator",
            "{sent}"
        );
    }
}

/// Posts `body`, written as the client wrote it (key spelling matters), to `model`'s
/// `generateContent` and returns what the chat source `mock` was asked.
fn asked_of_chat(p: &Proxy, mock: &MockUpstream, body: &str) -> Value {
    let resp = p.send(
        "POST",
        &Wire::Gemini.url("m", false),
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    mock.requests().last().expect("the source was asked").json()
}

#[test]
fn a_gemini_clients_snake_case_fields_reach_a_chat_source() {
    // google-genai 3.6.1, given a base URL, sends these nested fields in snake_case,
    // which Google takes as well; only camelCase was read, so the schema went as empty
    // properties, the PNG as an octet-stream PDF, the image URL as null and the thinking
    // settings nowhere. Names inside the client's data (a schema's properties, a call's
    // args, a function's response) stay as written.
    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = proxy(&mock, "chat_completions", "m", "");
    let body = r#"{
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [
                {"text": "look"},
                {"inline_data": {"mime_type": "image/png", "data": "iVBORw0K"}},
                {"file_data": {"file_uri": "https://example.com/cat.jpg", "mime_type": "image/jpeg"}}]},
            {"role": "model", "parts": [{"function_call": {"name": "read_file", "args": {"file_path": "a.rs"}}, "thought_signature": "sig"}]},
            {"role": "user", "parts": [{"function_response": {"name": "read_file", "response": {"file_content": "fn main() {}"}}}]}
        ],
        "tools": [{"function_declarations": [{"name": "read_file", "description": "reads",
            "parameters_json_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}]}],
        "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["read_file"]}},
        "generation_config": {"max_output_tokens": 77, "stop_sequences": ["END"], "top_p": 0.5,
            "thinking_config": {"thinking_budget": 4000, "include_thoughts": true}}
    }"#;
    let sent = asked_of_chat(&p, &mock, body);
    let m = &sent["messages"];
    assert_eq!(
        m[0],
        json!({"role": "system", "content": "be brief"}),
        "{sent}"
    );
    assert_eq!(
        m[1]["content"],
        json!([
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]),
        "{sent}"
    );
    assert_eq!(m[2]["tool_calls"][0]["function"]["name"], "read_file");
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"file_path":"a.rs"}"#
    );
    assert_eq!(m[3]["role"], "tool");
    assert_eq!(m[3]["content"], r#"{"file_content":"fn main() {}"}"#);
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "read_file", "description": "reads",
            "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}}]),
        "{sent}"
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "read_file"}})
    );
    assert_eq!(sent["max_tokens"], 77);
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(sent["top_p"], 0.5);
    assert_eq!(sent["reasoning_effort"], "medium", "{sent}");

    // `thinking_level` too, as the SDK sends it for Gemini 3.
    let body = r#"{"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generation_config": {"thinking_config": {"thinking_level": "HIGH"}}}"#;
    assert_eq!(asked_of_chat(&p, &mock, body)["reasoning_effort"], "high");
}

#[test]
fn a_gemini_clients_several_candidates_are_a_400_from_other_sources_not_one_merged_answer() {
    // A Chat source was sent `n: 2` and answered two choices, but the client got one
    // candidate, or, streaming, both answers run together as candidate 0. The hub
    // carries one answer: asked of any source but Gemini, it is refused before it is
    // sent, in Google's shape, whichever way the client spelt it.
    for up in [Wire::Chat, Wire::Anthropic, Wire::Responses] {
        let mock = MockUpstream::always(up.reply(false, false));
        let p = proxy(&mock, up.config_name(), "m", "");
        for (config, stream) in [("generationConfig", false), ("generation_config", true)] {
            let count = if config == "generationConfig" {
                "candidateCount"
            } else {
                "candidate_count"
            };
            let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                config: {count: 2}});
            let (status, text) = if stream {
                let s = p.stream(&Wire::Gemini.url("m", true), body);
                (s.status, s.text())
            } else {
                let r = p.post(&Wire::Gemini.url("m", false), body);
                (r.status, r.body)
            };
            assert_eq!(status, 400, "{up:?} {config}: {text}");
            let message = Wire::Gemini.error_message(&serde_json::from_str(&text).unwrap());
            assert!(
                message.contains("`candidateCount` above 1 needs a Gemini upstream"),
                "{up:?}: {message}"
            );
        }
        assert_eq!(mock.count(), 0, "{up:?}: nothing was sent");
        // One candidate is asked as any request is.
        let one = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"candidateCount": 1}});
        let resp = p.post(&Wire::Gemini.url("m", false), one);
        assert_eq!(resp.status, 200, "{up:?}: {}", resp.body);
        assert_eq!(
            resp.json()["candidates"][0]["content"]["parts"][0]["text"],
            "Hello there"
        );
        assert!(mock.requests()[0].json().get("n").is_none());
    }
}

#[test]
fn a_gemini_clients_several_candidates_move_on_to_a_gemini_source_that_is_asked_whole() {
    // A Chat source cannot give several candidates; the virtual model's Gemini source
    // can, and gets the request as the client wrote it. Though local (whose whole answers
    // are otherwise collected from a stream), it is asked for a whole one: one stream
    // cannot carry several candidates, whichever way the client spelt the count.
    let a = MockUpstream::always(Wire::Chat.reply(false, false));
    let b = MockUpstream::always(Wire::Gemini.reply(false, false));
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\n  b:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
        a.url(),
        b.url()
    ));
    let body = r#"{"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generation_config": {"candidate_count": 2}}"#;
    let resp = p.send(
        "POST",
        &Wire::Gemini.url("smart", false),
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(a.count(), 0);
    let sent = &b.requests()[0];
    assert!(sent.path.contains(":generateContent"), "{}", sent.path);
    assert_eq!(sent.json()["generation_config"]["candidate_count"], 2);
}

#[test]
fn a_gemini_chats_streamed_pieces_reach_a_chat_source_as_one_assistant_message() {
    // The SDK's chat keeps each streamed piece of an answer as its own `model` turn;
    // chat templates of the Mistral family refuse two assistant messages in a row.
    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = proxy(&mock, "chat_completions", "m", "");
    let piece = |t: &str| json!({"role": "model", "parts": [{"text": t}]});
    let body = json!({"contents": [
        {"role": "user", "parts": [{"text": "Salut"}]},
        {"role": "model", "parts": [{"text": "pondering", "thought": true}]},
        piece("Hél"), piece("lo"), piece(" there"),
        {"role": "user", "parts": [{"text": "read a.rs"}]},
        piece("Let me look."),
        {"role": "model", "parts": [{"functionCall": {"name": "read", "args": {"path": "a.rs"}}, "thoughtSignature": "sig"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "read", "args": {"path": "b.rs"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "read", "response": {"output": "A"}}},
            {"functionResponse": {"name": "read", "response": {"output": "B"}}}]},
    ]});
    let sent = asked_of_chat(&p, &mock, &body.to_string());
    let m = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = m.iter().map(|x| x["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant", "tool", "tool"],
        "{sent}"
    );
    assert_eq!(m[1], json!({"role": "assistant", "content": "Héllo there"}));
    assert_eq!(m[3]["content"], "Let me look.");
    let calls = m[3]["tool_calls"].as_array().unwrap();
    let args: Vec<&str> = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(args, [r#"{"path":"a.rs"}"#, r#"{"path":"b.rs"}"#]);
    // Each response pairs with its own call, though they came in different turns.
    assert_eq!(m[4]["tool_call_id"], calls[0]["id"]);
    assert_eq!(m[4]["content"], "A");
    assert_eq!(m[5]["tool_call_id"], calls[1]["id"]);
    assert_eq!(m[5]["content"], "B");
}

#[test]
fn a_gemini_response_schema_reaches_a_chat_source_as_json_schema() {
    // Google's OpenAPI subset says `nullable` where JSON Schema has a type union, and
    // orders properties by `propertyOrdering`, which JSON Schema has no word for.
    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = proxy(&mock, "chat_completions", "m", "");
    let body = r#"{"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": {
            "type": "OBJECT",
            "properties": {
                "name": {"type": "STRING"},
                "nickname": {"type": "STRING", "nullable": true},
                "size": {"type": "STRING", "enum": ["S", "L"], "nullable": true},
                "tags": {"type": "ARRAY", "items": {"type": "OBJECT",
                    "properties": {"b": {"type": "INTEGER"}, "a": {"type": "INTEGER"}},
                    "property_ordering": ["a", "b"]}}
            },
            "required": ["name"],
            "propertyOrdering": ["tags", "name", "nickname", "size"]
        }}}"#;
    let sent = asked_of_chat(&p, &mock, body);
    let schema = &sent["response_format"]["json_schema"]["schema"];
    assert_eq!(
        *schema,
        json!({"type": "object", "properties": {
            "name": {"type": "string"},
            "nickname": {"type": ["string", "null"]},
            "size": {"type": ["string", "null"], "enum": ["S", "L", null]},
            "tags": {"type": "array", "items": {"type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}},
            "required": ["name"]}),
        "{sent}"
    );
    // Objects compare without order; the order is what `propertyOrdering` was for.
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(&schema["properties"]),
        ["tags", "name", "nickname", "size"]
    );
    assert_eq!(
        keys(&schema["properties"]["tags"]["items"]["properties"]),
        ["a", "b"]
    );
}

#[test]
fn a_gemini_clients_url_safe_image_reaches_other_sources_as_standard_base64() {
    // The google-genai SDK sends bytes URL-safe; Google takes both alphabets, OpenAI
    // and Anthropic the standard one.
    let body = json!({"contents": [{"role": "user", "parts": [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo_mP8-5-hHgA"}},
    ]}]});
    for up in [Wire::Chat, Wire::Anthropic] {
        let mock = MockUpstream::always(up.reply(false, false));
        let p = up.serving(&mock, "m");
        let resp = p.post(&Wire::Gemini.url("m", false), body.clone());
        assert_eq!(resp.status, 200, "{up:?}: {}", resp.body);
        let sent = String::from_utf8(mock.posts()[0].body.clone()).unwrap();
        assert!(sent.contains("iVBORw0KGgo/mP8+5+hHgA=="), "{up:?}: {sent}");
    }
}

#[test]
fn usage_gemini_did_not_report_reaches_other_clients_left_out_not_as_zeros() {
    // Gemini leaves out a cached or thinking count when there is none, and a whole
    // answer may carry no `usageMetadata` at all.
    let text = json!({"content": {"role": "model", "parts": [{"text": "Hello there"}]}, "finishReason": "STOP", "index": 0});
    let counted = json!({"candidates": [text], "modelVersion": "m", "responseId": "r1",
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}});
    let uncounted = json!({"candidates": [text], "modelVersion": "m", "responseId": "r2"});
    let mock = MockUpstream::start(move |req| {
        let body = req.json();
        let asked = body["contents"][0]["parts"][0]["text"]
            .as_str()
            .unwrap_or_default();
        match (req.path.contains("stream"), asked == "count") {
            (true, _) => Reply::Sse(vec![format!("data: {counted}\n\n")], Duration::ZERO),
            (false, true) => Reply::json(200, counted.clone()),
            (false, false) => Reply::json(200, uncounted.clone()),
        }
    });
    let p = proxy(&mock, "gemini", "m", "");
    let chat = |q: &str| json!({"model": "m", "messages": [{"role": "user", "content": q}]});
    let counted = p.post("/v1/chat/completions", chat("count"));
    assert_eq!(
        counted.json()["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        "{}",
        counted.body
    );
    let uncounted = p.post("/v1/chat/completions", chat("none")).json();
    assert!(uncounted.get("usage").is_none(), "{uncounted}");
    let mut streamed = chat("count");
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let s = p.stream("/v1/chat/completions", streamed);
    let usage = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["usage"].is_object())
        .map(|v| v["usage"].clone());
    assert_eq!(
        usage,
        Some(json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})),
        "{}",
        s.text()
    );
    let anthropic = p.post(
        "/v1/messages",
        json!({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "count"}]}),
    );
    assert_eq!(
        anthropic.json()["usage"],
        json!({"input_tokens": 5, "output_tokens": 2}),
        "{}",
        anthropic.body
    );
}

#[test]
fn a_gemini_stream_with_an_empty_response_id_is_named_by_its_first_event_alone() {
    // `responseId: ""` left the answer unnamed, so each event was read as the first: the
    // chunks took each event's model (and time, and call-id prefix) anew.
    let part = |text: &str, model: &str| {
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
            "modelVersion": model, "responseId": ""})
    };
    let mut last = part("", "g-2");
    last["candidates"][0]["finishReason"] = json!("STOP");
    let sse = [part("Hel", "g-1"), part("lo", "g-2"), last]
        .iter()
        .map(|v| format!("data: {v}\r\n\r\n"))
        .collect();
    let mock = MockUpstream::always(Reply::Sse(sse, Duration::ZERO));
    let p = proxy(&mock, "gemini", "m", "");
    let s = p.stream(Wire::Chat.path(), Wire::Chat.request("m", true, false));
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!(Wire::Chat.read_stream(&s).text, "Hello");
    let chunks: Vec<Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(chunks.len() >= 2, "{chunks:?}");
    assert!(chunks.iter().all(|c| c["model"] == "g-1"), "{chunks:?}");
}
