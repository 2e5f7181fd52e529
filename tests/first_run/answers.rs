//! Answers that look the same however they travelled: `HEAD`, an upstream's 404 page,
//! translated answers that name the same model and invent no usage, and a body sent to
//! another format's path told which path takes it.

use super::*;

/// A chat request for `box:m` through a proxy whose `box` is at `api_base`, checked to
/// be answered 404.
fn a_404_through_box_at(api_base: &str) -> crate::support::proxy::Resp {
    let p = Proxy::start(&format!(
        "providers:\n  box:\n    api_base: {api_base}\n    models: [m]\n"
    ));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "box:m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    resp
}

#[test]
fn a_404_page_at_the_upstream_says_to_check_the_api_base() {
    // Ollama without `/v1` answers Go's plain-text 404 page, not an API's JSON.
    let up = MockUpstream::start(|req| match req.path.as_str() {
        "/v1/chat/completions" => Reply::json(200, chat_answer("ok")),
        _ => Reply::Json(404, "404 page not found".into()),
    });
    let root = format!("http://127.0.0.1:{}", up.port());
    let resp = a_404_through_box_at(&root);
    assert_text(
        &resp.error_message(),
        &format!(
            "{root}/chat/completions answered 404 (`404 page not found`): nothing is served \
             at that path; check the provider's `api_base` (an OpenAI-style server's usually \
             ends in `/v1`)"
        ),
    );
    // A model a source lacks (its 404 is JSON) is still its own words, as they came.
    let missing = r#"{"error":"model \"m\" not found, try pulling it first"}"#;
    let lacks = MockUpstream::always(Reply::Json(404, missing.into()));
    let resp = a_404_through_box_at(&lacks.url());
    assert_text(&resp.body, missing);
}

#[test]
fn a_json_404_from_an_api_base_with_no_path_says_to_check_the_api_base() {
    // A hosted API without its `/v1` (OpenAI's "Invalid URL") answers a JSON 404, which
    // was passed on as the source's own words, with no word of the `api_base`.
    let invalid = r#"{"error":{"message":"Invalid URL (POST /chat/completions)","type":"invalid_request_error"}}"#;
    let up = MockUpstream::always(Reply::Json(404, invalid.into()));
    let root = format!("http://127.0.0.1:{}", up.port());
    let resp = a_404_through_box_at(&root);
    assert_text(
        &resp.error_message(),
        &format!(
            "{root}/chat/completions answered 404 (`Invalid URL (POST /chat/completions)`): \
             nothing is served at that path; check the provider's `api_base` (an OpenAI-style \
             server's usually ends in `/v1`)"
        ),
    );
}

#[test]
fn head_requests_get_200_and_no_body_even_without_a_key() {
    let p = Proxy::start("skip_auth: false\nkeys: [k1]\n");
    for path in ["/", "/health", "/api/hello"] {
        let answer = p.raw(&format!(
            "HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ));
        assert!(answer.starts_with("HTTP/1.1 200 "), "HEAD {path}: {answer}");
        assert!(
            answer.ends_with("\r\n\r\n"),
            "HEAD {path}: nothing after the head: {answer:?}"
        );
    }
    let hello = p.get("/api/hello");
    assert_eq!(hello.status, 200);
    assert_eq!(hello.json(), json!({"status": "ok"}));
    // Everything else still needs the key.
    assert_eq!(p.get("/v1/models").status, 401);
}

/// A chat upstream that reports no usage and calls its model `m`, streamed or not.
fn no_usage_upstream() -> MockUpstream {
    MockUpstream::start(|req| {
        if req.json()["stream"] == true {
            Reply::Sse(chat_events(2, true), Duration::ZERO)
        } else {
            Reply::json(
                200,
                json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "t0t1"}, "finish_reason": "stop"}]}),
            )
        }
    })
}

/// The JSON payloads of a streamed answer.
fn events(s: &crate::support::proxy::Streamed) -> Vec<Value> {
    s.data()
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[test]
fn translated_answers_name_the_same_model_and_invent_no_usage_but_anthropics_required_zeros() {
    let up = no_usage_upstream();
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models:\n      - id: tiny\n        provider_model_id: m\n",
        up.url()
    ));
    // Anthropic client.
    let ask = json!({"model": "local:tiny", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    let whole = p.post("/v1/messages", ask.clone()).json();
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let evs = events(&p.stream("/v1/messages", streamed));
    let start = evs.iter().find(|e| e["type"] == "message_start").unwrap();
    let delta = evs.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(whole["model"], "m");
    assert_eq!(start["message"]["model"], "m", "{evs:?}");
    // Anthropic's format requires both counts as numbers (the AI SDK refuses a null
    // one, and the stream with it): 0 there, as Anthropic's `message_start` begins.
    let unknown = json!({"input_tokens": 0, "output_tokens": 0});
    assert_eq!(whole["usage"], unknown);
    assert_eq!(delta["usage"], unknown, "{evs:?}");
    assert_eq!(start["message"]["usage"], unknown, "{evs:?}");
    // Responses client.
    let ask = json!({"model": "local:tiny", "input": "hi"});
    let whole = p.post("/v1/responses", ask.clone()).json();
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let evs = events(&p.stream("/v1/responses", streamed));
    let created = evs
        .iter()
        .find(|e| e["type"] == "response.created")
        .unwrap();
    let done = evs
        .iter()
        .find(|e| e["type"] == "response.completed")
        .unwrap();
    assert_eq!(whole["model"], "m");
    assert_eq!(created["response"]["model"], "m");
    assert_eq!(done["response"]["model"], "m");
    assert!(whole["usage"].is_null(), "{whole}");
    assert!(done["response"]["usage"].is_null(), "{done}");
}

#[test]
fn translated_usage_has_no_cache_count_the_source_did_not_give() {
    // A chat source that counts no cached tokens, and a Claude-style one that does not
    // report cache fields: neither count becomes a zero on the other side.
    let chat = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let claude = MockUpstream::always(Reply::json(
        200,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 4, "output_tokens": 2}}),
    ));
    let p = Proxy::start(&format!(
        "providers:\n  chat:\n    api_base: {}\n    models: [m]\n  claude:\n    api_base: {}\n    api_protocol: anthropic\n    models: [c]\n",
        chat.url(),
        claude.url()
    ));
    let messages = json!([{"role": "user", "content": "hi"}]);
    let anthropic = p.post(
        "/v1/messages",
        json!({"model": "chat:m", "max_tokens": 20, "messages": messages}),
    );
    assert_eq!(
        anthropic.json()["usage"],
        json!({"input_tokens": 3, "output_tokens": 2}),
        "{}",
        anthropic.body
    );
    let openai = p.post(
        "/v1/chat/completions",
        json!({"model": "claude:c", "messages": messages}),
    );
    assert_eq!(
        openai.json()["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}),
        "{}",
        openai.body
    );
}

/// Reads answers without upstream usage through the official SDKs; prints what they made
/// of usage.
const NO_USAGE_SCRIPT: &str = r#"
import json, sys, anthropic, openai
a = anthropic.Anthropic(base_url=sys.argv[1], api_key="unused", max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
out = {}
r = a.messages.create(model="local:tiny", max_tokens=20, messages=msgs)
out["messages"] = [r.content[0].text, r.model, r.usage.output_tokens]
with a.messages.stream(model="local:tiny", max_tokens=20, messages=msgs) as s:
    m = s.get_final_message()
out["messages_stream"] = [m.content[0].text, m.model, m.usage.output_tokens]
o = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
r = o.responses.create(model="local:tiny", input="hi")
out["responses"] = [r.output_text, r.model, r.usage]
with o.responses.stream(model="local:tiny", input="hi") as s:
    r = s.get_final_response()
out["responses_stream"] = [r.output_text, r.model, r.usage]
print(json.dumps(out))
"#;

#[test]
fn official_sdks_read_translated_answers_without_usage() {
    let python =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import anthropic, openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: the Python SDKs are not installed (run `make sdk`)");
        return;
    }
    let up = no_usage_upstream();
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models:\n      - id: tiny\n        provider_model_id: m\n",
        up.url()
    ));
    let stdout =
        crate::support::stdout_of(Command::new(&python).args(["-c", NO_USAGE_SCRIPT, &p.url()]));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    // Anthropic's usage counts are required numbers (the AI SDK refuses null): an
    // unreported count is 0 there; Responses' whole usage is left out.
    assert_eq!(
        v,
        json!({
            "messages": ["t0t1", "m", 0], "messages_stream": ["t0t1", "m", 0],
            "responses": ["t0t1", "m", null], "responses_stream": ["t0t1", "m", null],
        })
    );
}

#[test]
fn a_body_sent_to_another_formats_path_is_told_the_path_that_takes_it() {
    // A Chat body at /v1/responses was told only "`input` is required", and a
    // Responses body at /v1/messages only "`messages` is required".
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&format!(
        "providers:\n  box:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let chat = json!({"model": "box:m", "messages": [{"role": "user", "content": "hi"}]});
    let resp = p.post("/v1/responses", chat);
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["param"], "input", "{}", resp.body);
    assert_text(
        &resp.error_message(),
        "`input` is required: a string or a list of items; `messages` is a Chat Completions \
         or Anthropic Messages body's, for /v1/chat/completions or /v1/messages",
    );
    let responses = json!({"model": "box:m", "max_tokens": 5, "input": "hi"});
    let resp = p.post("/v1/messages", responses);
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["type"], "error", "{}", resp.body);
    assert_text(
        &resp.error_message(),
        "`messages` is required and must be an array; `input` is a Responses body's, for \
         /v1/responses",
    );
    assert_eq!(up.count(), 0, "nothing is sent");
}
