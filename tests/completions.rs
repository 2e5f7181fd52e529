//! Legacy text completions (`/v1/completions`, editors' autocomplete): copied to the
//! sources that speak OpenAI's API, streamed event by event, failed over, continued.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::proxy::Streamed;
use crate::support::upstream::{chat_answer, completion, completion_events};
use crate::support::{Dir, MockUpstream, Proxy, Reply, wait_until};

/// A proxy whose model `coder` is at `up`, with `extra` config.
fn coder_at(up: &MockUpstream, extra: &str) -> Proxy {
    Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models: [coder]\n{extra}",
        up.url()
    ))
}

/// The `text` of each chunk of a completions stream, and whether it ended with `[DONE]`.
fn texts(s: &Streamed) -> (Vec<String>, bool) {
    let data = s.data();
    let done = data.last().is_some_and(|d| d == "[DONE]");
    let texts = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            let v: Value = serde_json::from_str(d).expect("each event is JSON");
            assert_eq!(v["object"], "text_completion", "{d}");
            assert!(v["choices"][0].get("delta").is_none(), "{d}");
            v["choices"][0]["text"].as_str().unwrap_or("").to_string()
        })
        .collect();
    (texts, done)
}

#[test]
fn a_completion_is_copied_to_the_source_with_its_model_rewritten() {
    let up = MockUpstream::always(Reply::json(200, completion("x): pass")));
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models:\n      - id: coder\n        provider_model_id: coder-7b-q4\n",
        up.url()
    ));
    let req = json!({"model": "coder", "prompt": "def f(", "suffix": ")", "max_tokens": 8,
        "x_vendor": [1]});
    // OpenAI's SDKs given a base URL without `/v1` ask `/completions`.
    for path in ["/v1/completions", "/completions"] {
        let resp = p.post(path, req.clone());
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert_eq!(resp.json()["choices"][0]["text"], "x): pass");
        assert_eq!(resp.json()["object"], "text_completion");
        assert_eq!(resp.header("x-routeplane-provider"), Some("local"));
    }
    for sent in up.requests() {
        assert_eq!(sent.path, "/v1/completions");
        let body = sent.json();
        assert_eq!(body["model"], "coder-7b-q4");
        assert_eq!(body["suffix"], ")");
        assert_eq!(body["x_vendor"], json!([1]));
    }
    assert!(
        p.wait_log("POST /v1/completions model=coder")
            .contains("status=200")
    );
}

#[test]
fn a_streamed_completion_arrives_event_by_event() {
    let texts_sent = ["a", "b", "c", "d"];
    let gap = Duration::from_millis(150);
    let mut events = completion_events(&texts_sent);
    events.push("data: [DONE]\n\n".into());
    let up = MockUpstream::always(Reply::Sse(events, gap));
    let p = coder_at(&up, "");
    let s = p.stream(
        "/v1/completions",
        json!({"model": "coder", "prompt": "x", "stream": true}),
    );
    assert_eq!(s.status, 200);
    assert_eq!(texts(&s), (texts_sent.map(String::from).to_vec(), true));
    // The first text reached the client well before the last was sent.
    let arrived = |t: &str| {
        s.chunks
            .iter()
            .find(|(_, c)| c.contains(&format!("\"text\":\"{t}\"")))
            .map(|(at, _)| *at)
            .expect("the text arrived")
    };
    assert!(
        arrived("d") - arrived("a") >= gap * 2,
        "buffered: {:?}",
        s.chunks
    );
}

#[test]
fn a_whole_answer_to_a_streamed_completion_reaches_the_client_as_a_stream() {
    // A server that ignores `"stream": true` and answers whole.
    let up = MockUpstream::always(Reply::json(200, completion("x): pass")));
    let p = coder_at(&up, "");
    let s = p.stream(
        "/v1/completions",
        json!({"model": "coder", "prompt": "def f(", "stream": true}),
    );
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    let (got, done) = texts(&s);
    assert_eq!(got.concat(), "x): pass", "{}", s.text());
    assert!(done, "{}", s.text());
}

#[test]
fn a_streamed_completions_usage_is_counted_and_not_shown_unasked() {
    // Usage comes only when asked for, as from OpenAI.
    let up = MockUpstream::start(|req| {
        let mut events = completion_events(&["a", "b"]);
        if req.json()["stream_options"]["include_usage"] == true {
            let usage = json!({"id": "cmpl-1", "object": "text_completion", "choices": [],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}});
            events.push(format!("data: {usage}\n\n"));
        }
        events.push("data: [DONE]\n\n".into());
        Reply::Sse(events, Duration::from_millis(5))
    });
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = coder_at(&up, &format!("usage:\n  path: {}\n", ledger.display()));
    let s = p.stream(
        "/v1/completions",
        json!({"model": "coder", "prompt": "x", "stream": true}),
    );
    assert_eq!(texts(&s), (vec!["a".to_string(), "b".to_string()], true));
    assert!(!s.text().contains("usage"), "{}", s.text());
    let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(10), || !read().is_empty()));
    let line: Value = serde_json::from_str(read().lines().next().unwrap()).unwrap();
    assert_eq!(line["inbound"], "completions", "{line}");
    assert_eq!(line["tokens"]["input"], 7, "{line}");
    assert_eq!(line["tokens"]["output"], 2, "{line}");
}

#[test]
fn a_completion_fails_over_to_sources_that_speak_openais_api_only() {
    let claude = MockUpstream::always(Reply::json(200, json!({})));
    let down = MockUpstream::always(Reply::json(503, json!({"error": {"message": "busy"}})));
    let up = MockUpstream::always(Reply::json(200, completion("ok")));
    let p = Proxy::start(&format!(
        "providers:\n  claude:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n  down:\n    api_base: {}\n    models: [m]\n  up:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [claude:m, down:m, up:m]\n  claude-only:\n    endpoints: [claude:m]\nfailover:\n  backoff_ms: 10\n",
        claude.url(),
        down.url(),
        up.url()
    ));
    let resp = p.post("/v1/completions", json!({"model": "smart", "prompt": "x"}));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["choices"][0]["text"], "ok");
    assert_eq!(resp.header("x-routeplane-provider"), Some("up"));
    assert_eq!(claude.count(), 0, "an Anthropic source is never asked");
    assert!(down.count() >= 1);
    // Only sources of another protocol: a 400 in OpenAI's shape that says what to do.
    let resp = p.post(
        "/v1/completions",
        json!({"model": "claude-only", "prompt": "x"}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    let message = resp.error_message();
    assert!(message.contains("`claude:m` (anthropic)"), "{message}");
    assert!(message.contains("/v1/chat/completions"), "{message}");
    assert_eq!(claude.count(), 0);
}

#[test]
fn a_source_without_completions_keeps_serving_chat_first() {
    // Mistral's API, and OpenAI's for a chat model, answer `/completions` with a 404.
    let chat_only = MockUpstream::start(|req| match req.path.as_str() {
        "/v1/chat/completions" => Reply::json(200, chat_answer("from chat_only")),
        _ => Reply::json(
            404,
            json!({"error": {"message": "not a completions model"}}),
        ),
    });
    let up = MockUpstream::always(Reply::json(200, completion("ok")));
    let p = Proxy::start(&format!(
        "providers:\n  chat_only:\n    api_base: {}\n    models: [m]\n  up:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [chat_only:m, up:m]\n",
        chat_only.url(),
        up.url()
    ));
    let resp = p.post("/v1/completions", json!({"model": "smart", "prompt": "x"}));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("up"));
    // Not cooled down: a chat request still goes to it first.
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("chat_only"));
}

#[test]
fn a_broken_completion_stream_is_continued_from_its_prompt() {
    // Every even request breaks after two texts; every odd one gives the rest.
    let up = MockUpstream::numbered(|n, _| {
        let gap = Duration::from_millis(10);
        if n % 2 == 0 {
            return Reply::SseThenBreak(completion_events(&["def ", "f("]), gap);
        }
        let mut rest = completion_events(&["x):"]);
        rest.push("data: [DONE]\n\n".into());
        Reply::Sse(rest, gap)
    });
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\nfailover:\n  backoff_ms: 10\n",
        up.url()
    ));
    let s = p.stream(
        "/v1/completions",
        json!({"model": "m", "prompt": "# f\n", "stream": true}),
    );
    assert_eq!(s.status, 200);
    let (got, done) = texts(&s);
    assert_eq!(got.concat(), "def f(x):", "{got:?}");
    assert!(done, "one clean end: {:?}", s.data());
    let asked = up.requests();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1].path, "/v1/completions");
    assert_eq!(asked[1].json()["prompt"], "# f\ndef f(");
    assert!(p.wait_log("stream=rescued").contains("rescued_by=local:m"));

    // Two prompts cannot be continued: the stream ends with an error event.
    let s = p.stream(
        "/v1/completions",
        json!({"model": "m", "prompt": ["a", "b"], "stream": true}),
    );
    let data = s.data();
    assert!(
        data.last().is_some_and(|d| d.contains("\"error\"")),
        "{data:?}"
    );
    assert_eq!(up.count(), 3, "no continuation was sent");
}

#[test]
fn a_404_page_for_a_completion_says_the_source_serves_no_legacy_completions() {
    // A server that serves chat at its base but no `/completions`, with a page for the
    // 404. Before, the client was told nothing is served at that path and to check the
    // provider's `api_base`, which was right: chat worked at it.
    let chat_only = MockUpstream::start(|req| match req.path.as_str() {
        "/v1/chat/completions" => Reply::json(200, chat_answer("from chat_only")),
        _ => Reply::Typed(404, "text/plain", "404 page not found".into()),
    });
    let p = coder_at(&chat_only, "");
    for path in ["/v1/completions", "/completions"] {
        let resp = p.post(path, json!({"model": "coder", "prompt": "x"}));
        assert_eq!(resp.status, 404, "{path}: {}", resp.body);
        let message = resp.error_message();
        assert!(
            message.ends_with(
                "/completions answered 404 (`404 page not found`): the source serves no \
                 legacy completions; ask /v1/chat/completions instead"
            ),
            "{path}: {message}"
        );
        assert!(!message.contains("api_base"), "{path}: {message}");
    }
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "coder", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
}
