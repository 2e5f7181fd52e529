//! What another account made (item ids, encrypted reasoning): left out when refused,
//! and at once on a session's later turns; reasoning kept for a client let go.

use super::*;

#[test]
fn a_sessions_later_turns_leave_out_item_ids_another_account_made_at_once() {
    // The same, for a client that sends back its items' ids and no reasoning: the ids
    // another account made were refused on every later turn, each a refused request.
    let mock = MockUpstream::start(|req| {
        if String::from_utf8_lossy(&req.body).contains("msg_other") {
            return Reply::json(
                404,
                json!({"error": {"message": "Item with id 'msg_other' not found. Items are not persisted when `store` is set to false.",
                    "type": "invalid_request_error", "param": "input", "code": null}}),
            );
        }
        Wire::Responses.reply(false, false)
    });
    let p = Wire::Responses.serving(&mock, "m");
    let mut input = vec![
        user_item("weather?"),
        json!({"type": "message", "id": "msg_other", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]}),
        user_item("and Rome?"),
    ];
    let turn = |input: &[Value]| bodies_sent(&p, &mock, input);
    assert_eq!(turn(&input).len(), 2, "refused, then asked without ids");
    input.extend([
        json!({"type": "message", "id": "msg_mine", "role": "assistant", "content": [{"type": "output_text", "text": "Rain."}]}),
        user_item("and Oslo?"),
    ]);
    let sent = turn(&input);
    assert_eq!(sent.len(), 1, "asked once, without the ids");
    assert!(!sent[0].to_string().contains("msg_other"), "{}", sent[0]);
    assert_eq!(sent[0]["input"][1]["content"][0]["text"], "Sunny.");
    // Another session, whose ids were never refused, is copied as it came.
    copied_byte_for_byte(
        &p,
        &mock,
        json!([user_item("hi"), {"type": "message", "id": "msg_new", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello."}]}, user_item("again")]),
    );
}

#[test]
fn a_sessions_later_turns_leave_out_reasoning_another_account_encrypted_at_once() {
    // After a failover between accounts, the client sends the other account's reasoning
    // on every later turn. Refused once, it is left out of that session's later requests
    // from the first try, not after a refused request each turn.
    let refusal = json!({"error": {"message": "The encrypted content for item rs_a could not be verified.",
        "type": "invalid_request_error", "code": "invalid_encrypted_content"}});
    let mock = MockUpstream::start(move |req| {
        if String::from_utf8_lossy(&req.body).contains("gAAAA-other") {
            return Reply::json(400, refusal.clone());
        }
        Wire::Responses.reply(false, false)
    });
    let p = Wire::Responses.serving(&mock, "m");
    let mut input = vec![
        user_item("weather?"),
        json!({"type": "reasoning", "id": "rs_a", "summary": [], "encrypted_content": "gAAAA-other"}),
        json!({"type": "function_call", "id": "fc_a", "call_id": "call_a", "name": "get_weather", "arguments": "{}"}),
        json!({"type": "function_call_output", "call_id": "call_a", "output": "sunny"}),
    ];
    let turn = |input: &[Value]| bodies_sent(&p, &mock, input);
    assert_eq!(turn(&input).len(), 2, "refused, then asked without it");
    // The next question: asked once, without the other account's reasoning.
    input.extend([
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]}),
        user_item("and Rome?"),
    ]);
    let sent = turn(&input);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        input_kinds(&sent[0]),
        [
            "message",
            "function_call",
            "function_call_output",
            "message",
            "message"
        ],
        "{}",
        sent[0]
    );
    // The new tool loop's reasoning, this account's own, goes as it came.
    input.extend([
        json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-mine"}),
        json!({"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{}"}),
        json!({"type": "function_call_output", "call_id": "call_b", "output": "rain"}),
    ]);
    let sent = turn(&input);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["input"][5]["encrypted_content"], "gAAAA-mine",
        "{}",
        sent[0]
    );
    assert!(!sent[0].to_string().contains("gAAAA-other"));
    // Another session, which never held the other account's reasoning, is copied as it came.
    copied_byte_for_byte(
        &p,
        &mock,
        json!([user_item("hi"), {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-mine-2"},
            user_item("again")]),
    );
}

#[test]
fn reasoning_another_account_encrypted_is_left_out_when_refused() {
    // Failover moved a Codex session from one account to another: the second cannot
    // read the first's encrypted reasoning and refuses the whole request. It is asked
    // again at once without the reasoning (and without the item ids, which only the
    // first account could look up).
    let refusal = json!({"error": {"message": "The encrypted content for item rs_a could not be verified. Reason: Encrypted content could not be decrypted or parsed.",
        "type": "invalid_request_error", "param": null, "code": "invalid_encrypted_content"}});
    let mock = MockUpstream::start(move |req| {
        if String::from_utf8_lossy(&req.body).contains("gAAAA-other") {
            return Reply::json(400, refusal.clone());
        }
        Wire::Responses.reply(req.json()["stream"] == true, false)
    });
    // A proxy per case: each is the first turn to meet the other account's reasoning
    // (later turns of the same session leave it out at once; see the next test).
    let fresh = || Wire::Responses.serving(&mock, "m");
    let input = json!([
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "reasoning", "id": "rs_a", "summary": [], "encrypted_content": "gAAAA-other"},
        {"type": "function_call", "id": "fc_a", "call_id": "call_a", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
    ]);
    for stream in [false, true] {
        let p = fresh();
        let req = json!({"model": "m", "store": false, "stream": stream, "input": input});
        let s = p.stream(&Wire::Responses.url("m", stream), req);
        assert_eq!(s.status, 200, "stream {stream}: {}", s.text());
        let line = p.wait_log("status=200");
        assert!(line.contains("tried=up:m→400:foreign,up:m→200"), "{line}");
    }
    let again = body_of(&mock.requests()[1]);
    assert_eq!(
        input_kinds(&again),
        ["message", "function_call", "function_call_output"],
        "{again}"
    );
    assert!(again["input"][1].get("id").is_none(), "{again}");
    assert_eq!(again["input"][1]["call_id"], "call_a", "{again}");
    // Another account's reasoning before the last question goes first: this account's,
    // in the tool loop since, stays.
    let mut longer = input.as_array().unwrap().clone();
    longer.extend([
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and Rome?"}]}),
        json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-mine"}),
        json!({"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": "{}"}),
        json!({"type": "function_call_output", "call_id": "call_b", "output": "rain"}),
    ]);
    let sent = bodies_sent(&fresh(), &mock, &longer);
    assert_eq!(sent.len(), 2);
    let again = &sent[1];
    assert_eq!(
        input_kinds(again),
        [
            "message",
            "function_call",
            "function_call_output",
            "message",
            "reasoning",
            "function_call",
            "function_call_output"
        ],
        "{again}"
    );
    assert_eq!(
        again["input"][4]["encrypted_content"], "gAAAA-mine",
        "{again}"
    );
    // Failover in the middle of a tool loop: the loop's reasoning is the other
    // account's too, and goes when the first leaves it refused.
    longer[5]["encrypted_content"] = json!("gAAAA-other-2");
    let sent = bodies_sent(&fresh(), &mock, &longer);
    assert_eq!(sent.len(), 3);
    let last = &sent[2];
    assert_eq!(
        input_kinds(last),
        [
            "message",
            "function_call",
            "function_call_output",
            "message",
            "function_call",
            "function_call_output"
        ],
        "{last}"
    );
    // The same from a chat client, whose history carries the reasoning as details.
    let detail = json!({"type": "reasoning.encrypted", "data": "gAAAA-other", "id": "rs_a", "format": "openai-responses-v1"});
    let chat = json!({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "reasoning_details": [detail],
            "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    ]});
    let before = mock.count();
    let p = fresh();
    let resp = p.post(&Wire::Chat.url("m", false), chat);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let again = body_of(&mock.requests()[before + 1]);
    assert_eq!(
        input_kinds(&again),
        ["message", "function_call", "function_call_output"],
        "{again}"
    );
    // Refused again without any reasoning, the refusal reaches the client.
    let stubborn = MockUpstream::always(Reply::json(
        400,
        json!({"error": {"message": "x", "code": "invalid_encrypted_content"}}),
    ));
    let p = Wire::Responses.serving(&stubborn, "m");
    let resp = p.post(
        &Wire::Responses.url("m", false),
        json!({"model": "m", "input": input}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(stubborn.count(), 2);
}

#[test]
fn reasoning_kept_for_a_client_is_let_go_when_another_account_refuses_it() {
    // aider's loop began on one OpenAI account; failover moved it to another, which
    // cannot read what the first encrypted. What Routeplane kept for aider is refused
    // once, asked again without, and then let go: the next turn is asked once.
    let first = openai_reasons_then_calls();
    let other = MockUpstream::start(|req| {
        if String::from_utf8_lossy(&req.body).contains("gAAAA-test") {
            let refusal = json!({"error": {"message": "The encrypted content could not be verified.",
                "type": "invalid_request_error", "code": "invalid_encrypted_content"}});
            return Reply::json(400, refusal);
        }
        Wire::Responses.reply(false, false)
    });
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let ask = json!({"role": "user", "content": "weather in Paris?"});
    let p = sources(&[("openai", Wire::Responses, &first, "m")]);
    let resp = p.post(
        &Wire::Chat.url("m", false),
        json!({"model": "m", "messages": [ask], "tools": tools}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    // The same proxy's config now points `openai` at the other account.
    p.dir.write(
        "routeplane.yaml",
        &format!("providers:\n  openai: {{api_base: {}, api_protocol: responses, api_key: k, models: [m]}}\n", other.url()),
    );
    p.signal("HUP");
    p.wait_log("reloaded config");
    let call = json!({"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}});
    let turn = json!({"role": "assistant", "content": null, "tool_calls": [call]});
    let result = json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"});
    let again = json!({"model": "m", "messages": [ask, turn, result], "tools": tools});
    // Counted in POSTs: the reload also lists the new account's models, in the
    // background, and under load that listing landed inside a turn.
    for asked in [2, 1] {
        let before = other.posts().len();
        let resp = p.post(&Wire::Chat.url("m", false), again.clone());
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert_eq!(
            other.posts().len() - before,
            asked,
            "requests upstream for this turn"
        );
    }
}
