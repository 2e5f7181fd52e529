//! Reasoning a source refuses: asked again without it, and remembered.

use super::*;

/// A chat source whose model takes no reasoning, refusing it as `refusal` says it.
fn unthinking_source(refusal: &'static str) -> MockUpstream {
    MockUpstream::start(move |req| {
        let body = req.json();
        let asks = ["reasoning_effort", "reasoning", "thinking"];
        if asks.iter().any(|k| body.get(k).is_some()) {
            Reply::Json(400, refusal.to_string())
        } else {
            Reply::json(200, chat_answer("no thoughts"))
        }
    })
}

#[test]
fn claude_thinking_refused_by_an_anthropic_source_is_asked_again_without_it() {
    // Claude Code against Ollama's Anthropic API: the client's own body, copied, but
    // for the `thinking` its model refused.
    let refusal = r#"{"type":"error","error":{"type":"invalid_request_error","message":"\"llama3.1\" does not support thinking"}}"#;
    let up = MockUpstream::start(move |req| {
        if req.json().get("thinking").is_some() {
            Reply::Json(400, refusal.to_string())
        } else {
            Wire::Anthropic.reply(false, false)
        }
    });
    let p = Wire::Anthropic.serving(&up, "m");
    let mut claude = Wire::Anthropic.request("m", false, false);
    claude["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let resp = p.post("/v1/messages", claude);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(Wire::Anthropic.read(&resp).text, "Hello there");
    let sent = up.posts();
    assert_eq!(sent.len(), 2);
    assert!(sent[1].json().get("thinking").is_none());
    assert_eq!(sent[1].json()["system"], "be brief", "the rest as it came");
}

#[test]
fn a_model_that_takes_no_reasoning_is_asked_again_without_it_and_remembered() {
    // Claude Code asks for thinking; a model without it refuses the effort it became.
    for refusal in [
        r#"{"error":{"message":"\"llama3.1:8b\" does not support thinking","type":"invalid_request_error","param":null,"code":null}}"#,
        r#"{"error":{"message":"think value \"high\" is not supported for this model","type":"api_error"}}"#,
        r#"{"error":{"message":"Unsupported parameter: 'reasoning_effort' is not supported with this model.","type":"invalid_request_error","param":"reasoning_effort","code":"unsupported_parameter"}}"#,
    ] {
        let up = unthinking_source(refusal);
        let p = Wire::Chat.serving(&up, "m");
        let claude = json!({"model": "m", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}});
        let resp = p.post("/v1/messages", claude.clone());
        assert_eq!(resp.status, 200, "{refusal}: {}", resp.body);
        assert_eq!(Wire::Anthropic.read(&resp).text, "no thoughts", "{refusal}");
        let sent = up.posts();
        assert_eq!(sent.len(), 2, "{refusal}: asked again at once");
        assert!(sent[0].json().get("reasoning_effort").is_some());
        assert!(
            sent[1].json().get("reasoning_effort").is_none(),
            "{refusal}"
        );
        // Known from now on: the next turn goes without it from the first try, and so
        // does a chat client's own request, copied otherwise.
        let resp = p.post("/v1/messages", claude);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let own = json!({"model": "m", "reasoning_effort": "high", "messages": [{"role": "user", "content": "hi"}]});
        let resp = p.post("/v1/chat/completions", own);
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert_eq!(Wire::Chat.read(&resp).text, "no thoughts");
        assert_eq!(up.posts().len(), 4, "{refusal}: one request each");
    }
}

#[test]
fn reasoning_refused_by_a_responses_or_gemini_source_is_asked_again_without_it() {
    // Claude Code's thinking becomes a Responses `reasoning` (with its encrypted content
    // asked back) or Gemini's `thinkingConfig`; a model without them refuses it in its
    // source's words.
    let cases = [
        (
            Wire::Responses,
            r#"{"error":{"message":"Unsupported parameter: 'reasoning.effort' is not supported with this model.","type":"invalid_request_error","param":"reasoning.effort","code":"unsupported_parameter"}}"#,
        ),
        (
            Wire::Gemini,
            r#"{"error":{"code":400,"message":"thinking_config is not supported.","status":"INVALID_ARGUMENT"}}"#,
        ),
        (
            Wire::Gemini,
            r#"{"error":{"code":400,"message":"Unable to submit request because thinking is not configurable in this model; please remove the thinking_config setting and try it again.","status":"INVALID_ARGUMENT"}}"#,
        ),
    ];
    for (wire, refusal) in cases {
        let asks = |body: &Value| {
            body.get("reasoning").is_some()
                || body.get("include").is_some()
                || body
                    .get("generationConfig")
                    .is_some_and(|c| c.get("thinkingConfig").is_some())
        };
        let up = MockUpstream::start(move |req| {
            if asks(&req.json()) {
                Reply::Json(400, refusal.to_string())
            } else {
                wire.reply(false, false)
            }
        });
        let p = wire.serving(&up, "m");
        let mut claude = Wire::Anthropic.request("m", false, false);
        claude["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
        let resp = p.post("/v1/messages", claude);
        assert_eq!(resp.status, 200, "{refusal}: {}", resp.body);
        assert_eq!(Wire::Anthropic.read(&resp).text, "Hello there");
        let sent = up.posts();
        assert_eq!(sent.len(), 2, "{refusal}: asked again at once");
        assert!(asks(&sent[0].json()), "{refusal}: {}", sent[0].json());
        assert!(!asks(&sent[1].json()), "{refusal}: {}", sent[1].json());
        assert_eq!(
            wire.first_user_parts(&sent[1].json()),
            wire.first_user_parts(&sent[0].json()),
            "the rest as it was"
        );
    }
}

#[test]
fn a_reasoning_refusal_of_a_request_without_reasoning_is_not_asked_again() {
    // Nothing to leave out: a second request would go out the same and be refused the
    // same.
    let refusal = r#"{"error":{"code":400,"message":"thinking_config is not supported.","status":"INVALID_ARGUMENT"}}"#;
    for client in [Wire::Gemini, Wire::Chat] {
        let up = MockUpstream::always(Reply::Json(400, refusal.to_string()));
        let p = Wire::Gemini.serving(&up, "m");
        let resp = p.post(&client.url("m", false), client.request("m", false, false));
        assert_eq!(resp.status, 400, "{client:?}: {}", resp.body);
        assert_eq!(up.posts().len(), 1, "{client:?}");
    }
}

#[test]
fn a_refusal_without_reasoning_is_returned_after_one_more_try() {
    // Refused again without the reasoning: the source's error, not a third request.
    let refusal =
        r#"{"error":{"message":"\"m\" does not support thinking","type":"invalid_request_error"}}"#;
    let up = MockUpstream::always(Reply::Json(400, refusal.to_string()));
    let p = Wire::Chat.serving(&up, "m");
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "m", "reasoning_effort": "low", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_text(&resp.body, refusal);
    assert_eq!(up.posts().len(), 2);
    // A plain 400 is not taken for one, nor an effort the model does not take (it
    // reasons): asked once, and the next request keeps its effort.
    for other in [
        r#"{"error":{"message":"temperature must be at most 2","type":"invalid_request_error"}}"#,
        r#"{"error":{"message":"Unsupported value: 'reasoning_effort' does not support 'minimal' with this model. Supported values are: 'low', 'medium', and 'high'.","type":"invalid_request_error","param":"reasoning_effort","code":"unsupported_value"}}"#,
    ] {
        let up = MockUpstream::always(Reply::Json(400, other.to_string()));
        let p = Wire::Chat.serving(&up, "m");
        for _ in 0..2 {
            let resp = p.post(
                "/v1/chat/completions",
                json!({"model": "m", "reasoning_effort": "minimal", "messages": [{"role": "user", "content": "hi"}]}),
            );
            assert_eq!(resp.status, 400);
        }
        let sent = up.posts();
        assert_eq!(sent.len(), 2, "{other}");
        assert_eq!(sent[1].json()["reasoning_effort"], "minimal", "{other}");
    }
}

#[test]
fn a_reasoning_refusal_is_asked_again_once_even_past_what_is_remembered() {
    // Models remembered are bounded (1024); one past them is still asked again without
    // its reasoning, once, not in a loop.
    let up = unthinking_source(
        r#"{"error":{"message":"this model does not support thinking","type":"invalid_request_error"}}"#,
    );
    let p = Wire::Chat.serving(&up, "m");
    for i in 0..1030 {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"model": format!("up:m{i}"), "reasoning_effort": "low", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(resp.status, 200, "{i}: {}", resp.body);
    }
    assert_eq!(up.posts().len(), 2 * 1030);
}
