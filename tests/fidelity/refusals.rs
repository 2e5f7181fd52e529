//! Refusals through a translation: a model's refusal reaches every client as one (its
//! own field where the protocol has one, its text where not), and one in the history
//! reaches every source as what the model said.

use super::*;

#[test]
fn a_chat_sources_refusal_reaches_other_clients_as_its_text() {
    // OpenAI puts a refusal in `refusal`, with no content; Anthropic's and Gemini's
    // protocols have no field for one, and an empty answer would read as a success that
    // said nothing. (Responses has one: `a_refusal_stays_a_refusal_between_chat_and_responses`.)
    let said = "I can't help with that.";
    for client in [Wire::Anthropic, Wire::Gemini] {
        let answer = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": said}, "finish_reason": "stop"}],
        });
        let (_mock, p) = setup(Wire::Chat, Reply::json(200, answer));
        let resp = p.post(&client.url("m", false), client.request("m", false, false));
        assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
        assert_eq!(client.read(&resp).text, said, "{client:?}: {}", resp.body);
        // Beside some text, after it.
        let both = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Partly.", "refusal": said}, "finish_reason": "stop"}],
        });
        let (_mock, p) = setup(Wire::Chat, Reply::json(200, both));
        let resp = p.post(&client.url("m", false), client.request("m", false, false));
        let want = format!("Partly.\n\n{said}");
        assert_eq!(client.read(&resp).text, want, "{client:?}: {}", resp.body);

        let (_mock, p) = setup(
            Wire::Chat,
            chat_sse(
                &[
                    json!({"role": "assistant", "content": null, "refusal": ""}),
                    json!({"refusal": "I can't "}),
                    json!({"refusal": "help with that."}),
                ],
                "stop",
            ),
        );
        let s = p.stream(&client.url("m", true), client.request("m", true, false));
        assert_eq!(
            client.read_stream(&s).text,
            said,
            "{client:?}: {}",
            s.text()
        );
    }
}

#[test]
fn a_refusal_stays_a_refusal_between_chat_and_responses() {
    // The SDKs' `parse()` helpers read a refusal from its own field; as text it fails
    // to parse as the schema.
    let said = "I can't help with that.";
    let item = json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
        "content": [{"type": "refusal", "refusal": said}]});
    let whole = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
        "model": "m", "output": [item], "usage": {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}});
    let events = vec![
        named(
            "response.created",
            json!({"type": "response.created", "response": {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": "m", "output": []}}),
        ),
        named(
            "response.output_item.added",
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        named(
            "response.content_part.added",
            json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "refusal", "refusal": ""}}),
        ),
        named(
            "response.refusal.delta",
            json!({"type": "response.refusal.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "I can't "}),
        ),
        named(
            "response.refusal.delta",
            json!({"type": "response.refusal.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "help with that."}),
        ),
        named(
            "response.refusal.done",
            json!({"type": "response.refusal.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "refusal": said}),
        ),
        named(
            "response.output_item.done",
            json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        ),
        named(
            "response.completed",
            json!({"type": "response.completed", "response": whole}),
        ),
    ];
    let up = MockUpstream::start(move |req| {
        if req.json()["stream"] == true {
            Reply::Sse(events.clone(), Duration::ZERO)
        } else {
            Reply::json(200, whole.clone())
        }
    });
    let p = Wire::Responses.serving(&up, "m");
    let ask = |stream: bool| json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let resp = p.post("/v1/chat/completions", ask(false));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let message = &resp.json()["choices"][0]["message"];
    assert_eq!(
        (&message["refusal"], &message["content"]),
        (&json!(said), &Value::Null),
        "{message}"
    );
    let s = p.stream("/v1/chat/completions", ask(true));
    let deltas: Vec<Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .map(|c| c["choices"][0]["delta"].clone())
        .collect();
    let refusal: String = deltas
        .iter()
        .filter_map(|d| d["refusal"].as_str())
        .collect();
    assert_eq!(refusal, said, "{deltas:?}");
    assert!(
        deltas
            .iter()
            .all(|d| d["content"].as_str().is_none_or(str::is_empty)),
        "{deltas:?}"
    );
    // Other clients have no field for one: it is the answer's text.
    let resp = p.post(
        "/v1/messages",
        json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(Wire::Anthropic.read(&resp).text, said);

    // And the other way: a chat source's refusal is a Responses refusal part.
    let answer = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": said}, "finish_reason": "stop"}]});
    let up = MockUpstream::start(move |req| {
        if req.json()["stream"] == true {
            chat_sse(
                &[
                    json!({"role": "assistant", "refusal": ""}),
                    json!({"refusal": "I can't "}),
                    json!({"refusal": "help with that."}),
                ],
                "stop",
            )
        } else {
            Reply::json(200, answer.clone())
        }
    });
    let p = Wire::Chat.serving(&up, "m");
    let ask = |stream: bool| json!({"model": "m", "stream": stream, "input": "hi"});
    let refusal_part = json!([{"type": "refusal", "refusal": said}]);
    let resp = p.post("/v1/responses", ask(false));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json()["output"][0]["content"],
        refusal_part,
        "{}",
        resp.body
    );
    let s = p.stream("/v1/responses", ask(true));
    let output = responses_output(&s);
    assert_eq!(output.len(), 1, "{output:?}");
    assert_eq!(output[0]["content"], refusal_part);
    let events: Vec<Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"response.refusal.done"), "{kinds:?}");
    assert!(!kinds.contains(&"response.output_text.delta"), "{kinds:?}");
    let streamed: String = events
        .iter()
        .filter(|e| e["type"] == "response.refusal.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(streamed, said);
}

#[test]
fn a_refusal_in_the_history_reaches_every_source_as_what_the_model_said() {
    // The SDKs' loop appends the answer's message as it came: a chat `refusal` with no
    // content, or a Responses refusal part. Translated, the turn was dropped.
    let said = "I cannot.";
    let chat_turn = json!({"role": "assistant", "content": null, "refusal": said});
    for up in [Wire::Anthropic, Wire::Responses, Wire::Gemini] {
        let (mock, p) = setup(up, up.reply(false, false));
        let ask = json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"}, chat_turn, {"role": "user", "content": "why?"}]});
        let resp = p.post("/v1/chat/completions", ask);
        assert_eq!(resp.status, 200, "{up:?}: {}", resp.body);
        let sent = mock.posts()[0].json().to_string();
        assert!(sent.contains(said), "{up:?}: {sent}");
    }
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let refused = json!({"type": "message", "role": "assistant",
        "content": [{"type": "refusal", "refusal": said}]});
    let ask = json!({"model": "m", "input": [
        {"role": "user", "content": "hi"}, refused, {"role": "user", "content": "why?"}]});
    let resp = p.post("/v1/responses", ask);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.posts()[0].json();
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": said}),
        "{sent}"
    );
}
