//! The `models` array: the order it sets, its limits, entries that are not model ids,
//! and ids nothing serves.

use super::*;

#[test]
fn models_array_orders_targets_and_is_removed_upstream() {
    let a = MockUpstream::always(Reply::Json(500, "{}".into()));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"models": ["a:m", "b:m"], "messages": []}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    let sent = b.requests()[0].json();
    assert_eq!(sent["model"], "m");
    assert!(
        sent.get("models").is_none(),
        "`models` is not sent upstream: {sent}"
    );
}

#[test]
fn models_array_limits_are_400_before_any_upstream_call() {
    let a = MockUpstream::always(Reply::json(200, chat_answer("a")));
    let b = MockUpstream::always(Reply::json(200, chat_answer("b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let nine: Vec<String> = (0..9).map(|_| "a:m".to_string()).collect();
    let resp = p.post(
        "/v1/chat/completions",
        json!({"models": nine, "messages": []}),
    );
    assert_eq!(resp.status, 400);
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "`models` lists 9 models; at most 8 are allowed",
    );
    assert_eq!(a.count() + b.count(), 0);
}

#[test]
fn a_models_list_with_a_blank_or_odd_entry_names_that_entry() {
    // A blank entry was routed as a model named ``, and its 404 named no entry; an entry
    // that is no string was told only that the list is not a list of ids.
    let a = MockUpstream::always(Reply::json(200, chat_answer("a")));
    let b = MockUpstream::always(Reply::json(200, chat_answer("b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    let example = "as `[\"smart\", \"ollama:llama3.1\"]`";
    for (list, says) in [
        (
            json!(["a:m", ""]),
            format!("`models` entry 2 is empty; each entry is a model id, {example}"),
        ),
        (
            json!(["nope", 3, "a:m"]),
            format!(
                "`models` entry 2 is a number, not a model id; each entry is a string, {example}"
            ),
        ),
        (
            json!([{"model": "a:m"}]),
            format!(
                "`models` entry 1 is an object, not a model id; each entry is a string, {example}"
            ),
        ),
        (
            json!("a:m"),
            format!("`models` must be an array of model ids, {example}"),
        ),
    ] {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"models": list, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(resp.status, 400, "{list}: {}", resp.body);
        assert_text(&resp.error_message(), &says);
    }
    assert_eq!(a.count() + b.count(), 0);
}

#[test]
fn a_models_list_passes_over_ids_nothing_serves() {
    let a = MockUpstream::always(Reply::json(200, chat_answer("from a")));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&config(&a.url(), &b.url(), ""));
    // `gpt-4o` with no OpenAI key, a typo: the next id is there for that.
    for list in [json!(["gpt-4o", "b:m"]), json!(["nope", "b:m", "a:m"])] {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"models": list, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(resp.status, 200, "{list}: {}", resp.body);
        assert_eq!(resp.header("x-routeplane-provider"), Some("b"), "{list}");
    }
    p.wait_log("`models`: passing over \"gpt-4o\": nothing serves it");
    p.wait_log("`models`: passing over \"nope\": nothing serves it");
    // None served: the first one's 404, with what would serve it.
    let resp = p.post(
        "/v1/chat/completions",
        json!({"models": ["gpt-4o", "nope"], "messages": []}),
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    let message = resp.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.starts_with("unknown model `gpt-4o`"), "{message}");
    assert!(message.contains("set OPENAI_API_KEY"), "{message}");
    assert_eq!((a.count(), b.count()), (0, 2));
}
