//! Whole (non-streamed) answers: collected from a stream, copied as asked, passed over
//! when silent or broken.

use super::*;

// A client that asks for a whole answer gets its first byte only once all of it is
// made, so a silent endpoint could not be told from a busy one. While another endpoint
// remains, the answer is asked for as a stream and collected: the first-token deadline
// then holds for whole answers too.

/// A chat upstream that streams when asked to, and else answers whole, like Ollama.
fn as_asked() -> MockUpstream {
    MockUpstream::start(|req| Wire::Chat.reply(req.json()["stream"] == true, false))
}

/// Two chat providers `a` and `b`, `smart` = a:m then b:m, a first-token deadline of
/// 1 s and the default first-byte deadline (300 s).
fn whole_config(a: &MockUpstream, b: &MockUpstream) -> String {
    whole_config_speaking(a, Wire::Chat, b)
}

/// [`whole_config`] with `a` speaking `wire`.
fn whole_config_speaking(a: &MockUpstream, wire: Wire, b: &MockUpstream) -> String {
    format!(
        "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\ntimeouts:\n  first_token_secs: 1\n",
        a.url(),
        wire.config_name(),
        b.url()
    )
}

#[test]
fn a_whole_answer_passes_over_a_silent_endpoint_at_its_first_token_deadline() {
    let a = MockUpstream::always(Reply::Hang(Duration::from_secs(8)));
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    let started = Instant::now();
    let resp = ask(&p, "smart");
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        "Hello there"
    );
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert!(
        took < Duration::from_secs(4),
        "first_token_secs 1, not the 8 s silence: {took:?}"
    );
    assert_eq!(a.count(), 1, "a silent endpoint is not asked twice");
    // The last endpoint is asked for the whole answer the client asked for.
    assert_eq!(b.posts()[0].json()["stream"], json!(null));
    let line = p.wait_log("served_by=b:m");
    assert!(line.contains("a:m→timeout"), "{line}");
}

#[test]
fn a_whole_answer_is_collected_from_a_stream_for_every_client_protocol() {
    for wire in Wire::ALL {
        let a = crate::support::wire::chat_mock_with_usage(Duration::ZERO);
        let b = as_asked();
        let p = Proxy::start(&whole_config(&a, &b));
        let resp = p.post(
            &wire.url("smart", false),
            wire.request("smart", false, false),
        );
        assert_eq!(resp.status, 200, "{wire:?}: {}", resp.body);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(wire.read(&resp).text, "Hello there", "{wire:?}");
        assert_eq!(resp.header("x-routeplane-provider"), Some("a"), "{wire:?}");
        // The stream's own usage, which it reports only when asked.
        let v = resp.json();
        let output = match wire {
            Wire::Chat => &v["usage"]["completion_tokens"],
            Wire::Anthropic | Wire::Responses => &v["usage"]["output_tokens"],
            Wire::Gemini => &v["usageMetadata"]["candidatesTokenCount"],
        };
        assert_eq!(*output, json!(4), "{wire:?}: {v}");
        let sent = a.posts()[0].json();
        assert_eq!(sent["stream"], true, "{wire:?}: {sent}");
        assert_eq!(sent["stream_options"]["include_usage"], true, "{wire:?}");
        assert_eq!(b.count(), 0, "{wire:?}");
    }
}

#[test]
fn a_whole_answer_is_collected_from_a_stream_in_every_source_protocol() {
    for wire in Wire::ALL {
        // Streams when asked to: in the body, or (Gemini) in the path.
        let a = MockUpstream::start(move |req| {
            let streamed = req.json()["stream"] == true || req.path.contains("stream");
            wire.reply(streamed, true)
        });
        let b = as_asked();
        let p = Proxy::start(&whole_config_speaking(&a, wire, &b));
        let resp = p.post(
            "/v1/chat/completions",
            Wire::Chat.request("smart", false, true),
        );
        assert_eq!(resp.status, 200, "{wire:?}: {}", resp.body);
        assert_eq!(resp.header("x-routeplane-provider"), Some("a"), "{wire:?}");
        let got = Wire::Chat.read(&resp);
        assert_eq!(got.tools.len(), 1, "{wire:?}: {}", resp.body);
        assert_eq!(got.tools[0].0, "get_weather", "{wire:?}");
        assert_eq!(got.tools[0].1, json!({"city": "Paris"}), "{wire:?}");
        let sent = &a.posts()[0];
        let streamed = sent.json()["stream"] == true || sent.path.contains("stream");
        assert!(streamed, "{wire:?}: {} {}", sent.path, sent.json());
    }
}

#[test]
fn a_whole_answer_asked_as_a_stream_keeps_the_clients_bytes() {
    // A schema's key order is what a model fills in first: sent as the client wrote it,
    // in each protocol a self-hosted server may speak (Ollama, llama.cpp and vLLM serve
    // Anthropic's and OpenAI's Responses shapes too).
    let schema =
        r#"{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"string"}}}"#;
    let cases = [
        (
            Wire::Chat,
            format!(
                r#"{{"model":"smart","messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}]}}"#
            ),
        ),
        (
            Wire::Anthropic,
            format!(
                r#"{{"model":"smart","max_tokens":50,"messages":[{{"role":"user","content":"hi"}}],"tools":[{{"name":"f","input_schema":{schema}}}]}}"#
            ),
        ),
        (
            Wire::Responses,
            format!(
                r#"{{"model":"smart","input":"hi","tools":[{{"type":"function","name":"f","parameters":{schema}}}]}}"#
            ),
        ),
    ];
    for (wire, body) in cases {
        let a = MockUpstream::start(move |req| wire.reply(req.json()["stream"] == true, false));
        let b = as_asked();
        let p = Proxy::start(&whole_config_speaking(&a, wire, &b));
        let resp = p.send(
            "POST",
            wire.path(),
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(resp.status, 200, "{wire:?}: {}", resp.body);
        assert_eq!(wire.read(&resp).text, "Hello there", "{wire:?}");
        let sent = String::from_utf8(a.posts()[0].body.clone()).unwrap();
        assert!(
            sent.find("zeta").unwrap() < sent.find("alpha").unwrap(),
            "{wire:?}: {sent}"
        );
        let sent = a.posts()[0].json();
        assert_eq!(sent["stream"], true, "{wire:?}: {sent}");
        // Only a chat stream is asked for its usage: Anthropic refuses fields it does not know.
        let usage = wire == Wire::Chat;
        assert_eq!(
            sent["stream_options"].is_object(),
            usage,
            "{wire:?}: {sent}"
        );
    }
}

#[test]
fn a_whole_answer_keeps_a_local_servers_reasoning_name_and_calls_without_an_index() {
    // Ollama names its reasoning `reasoning`; some servers stream parallel tool calls
    // without an `index`.
    let chunk = |delta| crate::support::wire::chat_chunk(delta, serde_json::Value::Null);
    let call = |id: &str, n: u32| json!({"tool_calls": [{"id": id, "type": "function", "function": {"name": "read", "arguments": format!("{{\"n\": {n}}}")}}]});
    let events = vec![
        chunk(json!({"role": "assistant", "reasoning": "Two files."})),
        chunk(call("call_0", 0)),
        chunk(call("call_1", 1)),
        "data: [DONE]\n\n".to_string(),
    ];
    let a = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let message = &resp.json()["choices"][0]["message"];
    assert_eq!(message["reasoning"], "Two files.", "{message}");
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{message}");
    assert_eq!(calls[1]["id"], "call_1");
    assert_eq!(calls[1]["function"]["arguments"], "{\"n\": 1}");
}

#[test]
fn a_hosted_apis_whole_answer_is_asked_as_the_client_asked() {
    // A hosted API's whole answer carries what only a copy keeps (server tools,
    // citations, encrypted reasoning). 0.0.0.0 reaches the mock as a host that is
    // neither loopback nor on this network would: as a hosted API.
    let a = as_asked();
    let b = as_asked();
    let hosted = a.url().replace("127.0.0.1", "0.0.0.0");
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {hosted}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
        b.url()
    ));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("a"));
    assert_eq!(a.posts()[0].json()["stream"], json!(null));
    assert_eq!(resp.json(), Wire::Chat.body(false), "copied byte for byte");
    // `route` says which deadline a whole answer from it waits for.
    let config = p.dir.path().join("routeplane.yaml");
    let out = std::process::Command::new(crate::support::proxy::bin())
        .args(["route", "smart", "-c", config.to_str().unwrap()])
        .env("HOME", p.dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("deadline: first token 15s (a whole answer: first byte 300s);"),
        "{text}"
    );
}

#[test]
fn a_whole_answer_from_the_last_endpoint_is_copied_as_asked() {
    let a = crate::support::wire::chat_mock_with_usage(Duration::ZERO);
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    // Pinned: no endpoint after it, so nothing to move on to and nothing to collect.
    let resp = ask(&p, "a:m");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = a.posts()[0].json();
    assert_eq!(sent["stream"], json!(null), "{sent}");
    assert_eq!(
        resp.json()["usage"]["completion_tokens"],
        2,
        "the whole answer's own"
    );
}

#[test]
fn a_whole_answer_with_several_choices_is_not_collected() {
    let a = as_asked();
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "smart", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("a"));
    // One stream could not give the client both choices: asked as the client asked.
    assert_eq!(a.posts()[0].json()["stream"], json!(null));
}

#[test]
fn a_whole_answer_whose_stream_breaks_part_way_is_asked_of_the_next_endpoint() {
    let a = faulty_once("a", Fault::Cut(5));
    let b = as_asked();
    let p = Proxy::start(&whole_config(&a, &b));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    // Nothing of the broken answer reached the client: b's whole answer did.
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        "Hello there"
    );
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
}

#[test]
fn a_whole_answer_whose_stream_stalls_part_way_is_logged_as_a_timeout() {
    // The collected stream went silent, it did not end: the log's `tried=` says
    // `timeout`, as it does for a copied whole answer whose body stalls and as the
    // ledger's reason says (`silent for 1s`), not `ended_early`.
    let a = faulty_once("a", Fault::Stall(3, Duration::from_secs(8)));
    let b = as_asked();
    let p = Proxy::start(&format!("{}  idle_secs: 1\n", whole_config(&a, &b)));
    let resp = ask(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    let line = p.wait_log("POST /v1/chat/completions");
    assert!(line.contains("tried=a:m→timeout,b:m→200"), "{line}");
}
