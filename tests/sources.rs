//! Sources as a new user meets them: keys from the environment, hosted model lists,
//! local servers that are down or too small, upstream errors passed on unchanged,
//! stale pooled connections, and subscription state that tells the truth.

use std::time::Duration;

use serde_json::json;

use crate::support::upstream::{Recorded, chat_answer};
use crate::support::{MockUpstream, Proxy, Reply};

fn chat(p: &Proxy, model: &str) -> crate::support::proxy::Resp {
    p.post(
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

#[test]
fn hosted_keys_come_from_routeplane_variables_before_the_vendors() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let yaml = format!(
        "providers:\n  openai:\n    api_base: {}\n  openrouter:\n    api_base: {}\n",
        up.url(),
        up.url()
    );
    let p = Proxy::start_with(
        &yaml,
        &[
            ("ROUTEPLANE_OPENAI_API_KEY", "sk-routeplane"),
            ("OPENAI_API_KEY", "sk-vendor"),
            ("OPENROUTER_API_KEY", "sk-or"),
        ],
        &[],
    );
    assert_eq!(chat(&p, "openai:gpt-4o").status, 200);
    assert_eq!(chat(&p, "openrouter:x/y").status, 200);
    let auths: Vec<_> = up
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_string())
        .collect();
    assert_eq!(auths, ["Bearer sk-routeplane", "Bearer sk-or"]);
    assert!(!p.log().join("\n").contains("sk-"), "no key in the log");
}

#[test]
fn a_provider_without_a_key_is_answered_401_at_once_and_skipped_in_a_cascade() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("from local")));
    let yaml = format!(
        "providers:\n  openai:\n    api_base: {0}\n  anthropic:\n    api_base: {0}\n  local:\n    api_base: {0}\nmodels:\n  smart:\n    endpoints: [openai:gpt-4o, local:m]\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    let resp = chat(&p, "openai:gpt-4o");
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(
        resp.json()["error"]["message"],
        "provider `openai` has no credential: set OPENAI_API_KEY or ROUTEPLANE_OPENAI_API_KEY"
    );
    let resp = p.post(
        "/v1/messages",
        json!({"model": "anthropic:claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(resp.json()["type"], "error", "in the caller's protocol");
    assert_eq!(
        resp.json()["error"]["message"],
        "provider `anthropic` has no credential: set ANTHROPIC_API_KEY or ROUTEPLANE_ANTHROPIC_API_KEY, or run `routeplane login anthropic`"
    );
    assert_eq!(up.count(), 0, "nothing was sent upstream");
    let resp = chat(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("local"));
    assert_eq!(
        up.count(),
        1,
        "only the endpoint with a credential was asked"
    );
}

#[test]
fn an_upstream_4xx_reaches_the_client_unchanged() {
    let error = json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}});
    let up = MockUpstream::always(Reply::json(400, error.clone()));
    let p = Proxy::start(&format!(
        "providers:\n  gw:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let resp = chat(&p, "m");
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json(), error, "code and param survive");
}

#[test]
fn a_pooled_connection_closed_while_idle_is_retried_once_on_a_new_one() {
    let up = MockUpstream::closing_idle(|_| Reply::json(200, chat_answer("fine")));
    let p = Proxy::start(&format!(
        "providers:\n  llama:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    for i in 0..3 {
        let resp = chat(&p, "m");
        assert_eq!(resp.status, 200, "request {i}: {}", resp.body);
        assert_eq!(resp.header("x-routeplane-attempts"), Some("1"));
    }
    let reqs = up.requests();
    let dropped = reqs.iter().filter(|r| r.on_conn > 0).count();
    assert!(
        dropped >= 1,
        "the mock dropped a reused connection: {reqs:?}"
    );
    assert_eq!(
        reqs.len(),
        3 + dropped,
        "each dropped request was sent once more"
    );
}

/// A mock llama.cpp with a 4096-token window: a streamed oversized request gets 200 and
/// an empty stream, the same request unstreamed a 400 that says why.
fn small_llama(req: &Recorded) -> Reply {
    let body = req.json();
    let oversized = body["messages"].to_string().len() > 2000;
    match (oversized, body["stream"] == json!(true)) {
        (true, true) => Reply::SseEmpty,
        (true, false) => Reply::json(
            400,
            json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}}),
        ),
        (false, true) => Reply::chat_stream(2, Duration::ZERO),
        (false, false) => Reply::json(200, chat_answer("small")),
    }
}

fn long_prompt(model: &str) -> serde_json::Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "x".repeat(3000)}]})
}

#[test]
fn an_empty_stream_from_an_overflowing_local_server_is_explained() {
    let llama = MockUpstream::start(small_llama);
    let big = MockUpstream::always(Reply::chat_stream(3, Duration::ZERO));
    let p = Proxy::start(&format!(
        "providers:\n  llamacpp:\n    api_base: {}\n    detect: false\n    models: [tiny]\n  big:\n    api_base: {}\nmodels:\n  agent:\n    endpoints: [llamacpp:tiny, big:large]\n",
        llama.url(),
        big.url()
    ));
    let resp = p.post("/v1/chat/completions", long_prompt("tiny"));
    assert_eq!(resp.status, 400, "{}", resp.body);
    let err = resp.json()["error"].clone();
    assert_eq!(err["code"], "context_length_exceeded");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "the prompt (5000 tokens) is larger than the model's context window (4096 tokens)"
        ),
        "{msg}"
    );
    let asked: Vec<_> = llama
        .requests()
        .iter()
        .map(|r| r.json()["stream"].clone())
        .collect();
    assert_eq!(
        asked,
        [json!(true), json!(false)],
        "asked once more, unstreamed"
    );
    assert_eq!(llama.requests()[1].json()["max_tokens"], 1);

    // In a virtual model the overflow moves on to the next endpoint.
    let s = p.stream("/v1/chat/completions", long_prompt("agent"));
    assert_eq!(s.status, 200);
    assert_eq!(s.header("x-routeplane-provider"), Some("big"));
    assert!(s.text().contains("t2"), "{}", s.text());
    // A prompt that fits streams as usual.
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "tiny", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(s.header("x-routeplane-provider"), Some("llamacpp"));
}
