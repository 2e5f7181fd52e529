//! Translated answers no client could read (a tool call without a name, an id of
//! another type): the source's fault, told one way whole or streamed, and moved past.

use super::*;

/// An Anthropic source's tool call with its `name` left out: whole, or streamed.
fn nameless(stream: bool) -> Reply {
    let name = "\"name\":\"get_weather\",";
    match stream {
        true => {
            let events = Wire::Anthropic.events(true);
            Reply::Sse(
                events.into_iter().map(|e| e.replace(name, "")).collect(),
                Duration::ZERO,
            )
        }
        false => {
            let body = Wire::Anthropic.body(true).to_string().replace(name, "");
            Reply::Json(200, body)
        }
    }
}

#[test]
fn an_unreadable_answer_fails_over_at_once_whole_or_streamed_and_is_logged_malformed() {
    // A whole one was logged `ended_early`; a streamed one was taken for the source's
    // 502 and asked again of the same endpoint, which sends the same again.
    let dir = Dir::new();
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let mut failed = Vec::new();
    for stream in [false, true] {
        let a = MockUpstream::always(nameless(stream));
        let ledger = dir.path().join(format!("usage-{stream}.jsonl"));
        let yaml = |usage: &str| {
            format!(
                "providers:\n  a:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n{usage}",
                a.url(),
                b.url(),
            )
        };
        let p = Proxy::start(&yaml(&format!("usage:\n  path: {}\n", ledger.display())));
        let resp = ask_as(&p, Wire::Chat, "smart", stream);
        assert_eq!(resp.status, 200, "stream={stream}: {}", resp.body);
        assert!(
            resp.body.contains("from b"),
            "stream={stream}: {}",
            resp.body
        );
        let line = p.wait_log("served_by=b:m");
        assert!(
            line.contains("attempts=2 tried=a:m→malformed,b:m→200"),
            "stream={stream}: {line}"
        );
        assert_eq!(a.count(), 1, "stream={stream}: asked again");
        // The ledger tells the attempt the same way, whole or streamed.
        let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
        assert!(wait_until(Duration::from_secs(10), || !read().is_empty()));
        let v: Value = serde_json::from_str(read().lines().next().unwrap()).unwrap();
        failed.push(v["failed"].clone());
        // Alone (on a proxy of its own: the first cooled `a` down), the client's 502
        // says what could not be read, as a whole one's does.
        let p = Proxy::start(&yaml(""));
        let resp = ask_as(&p, Wire::Chat, "a:m", stream);
        assert_eq!(resp.status, 502, "stream={stream}: {}", resp.body);
        assert!(
            resp.error_message().starts_with(
                "upstream `a` failed: the source's answer could not be read (a tool call \
                 without a string `name`)"
            ),
            "stream={stream}: {}",
            resp.body
        );
        assert_eq!(a.count(), 2, "stream={stream}: asked again");
    }
    assert_eq!(failed[0], failed[1]);
    assert!(
        failed[0].to_string().contains("could not be read"),
        "{failed:?}"
    );
}

#[test]
fn a_chat_streams_id_that_is_not_a_string_fails_over_when_translated_and_is_copied_as_is() {
    // A chat source's streamed `"id": 7` reached an Anthropic client as `msg_routeplane`,
    // a Responses one as `resp_routeplane` and a Gemini one as no `responseId`, without a
    // word, where a whole answer's, or another source's stream's, is refused. A Chat
    // client gets the stream byte for byte: what is copied is the source's, not refused.
    // Usage in every chunk (vLLM's `continuous_usage_stats`) has a copied stream's first
    // chunk read in full, as a translated one's is.
    let usage = r#""usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"choices""#;
    let events: Vec<String> = (Wire::Chat.events(false).into_iter())
        .map(|e| (e.replace("\"id\":\"c1\"", "\"id\":7")).replace("\"choices\"", usage))
        .collect();
    let a = MockUpstream::always(Reply::Sse(events.clone(), Duration::ZERO));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    // A proxy each: the first failure cools `a` down.
    let proxy = || Proxy::start(&config(&a.url(), &b.url(), ""));
    for client in [Wire::Anthropic, Wire::Responses, Wire::Gemini] {
        let p = proxy();
        let resp = ask_as(&p, client, "smart", true);
        assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
        // A Gemini client gets it in two parts: `from ` and `b`.
        assert!(resp.body.contains("from "), "{client:?}: {}", resp.body);
        assert!(!resp.body.contains("there"), "{client:?}: {}", resp.body);
        let line = p.wait_log("served_by=b:m");
        assert!(
            line.contains("tried=a:m→malformed,b:m→200"),
            "{client:?}: {line}"
        );
    }
    // Alone, the client's error says what could not be read, in its protocol.
    let resp = ask_as(&proxy(), Wire::Anthropic, "a:m", true);
    assert_eq!(resp.status, 502, "{}", resp.body);
    assert!(
        resp.body
            .contains("could not be read (`id` is not a string)"),
        "{}",
        resp.body
    );
    let s = proxy().stream(Wire::Chat.path(), Wire::Chat.request("a:m", true, false));
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!(s.text(), events.concat());
}

#[test]
fn a_translated_stream_without_an_id_is_named_anew_each_turn() {
    // A chat source's stream without `id` reached every Anthropic client as
    // `msg_routeplane`, every Responses one as `resp_routeplane` and every Gemini one
    // without a `responseId`: one name for every turn, where a whole answer's is made.
    let events: Vec<String> = (Wire::Chat.events(false).into_iter())
        .map(|e| e.replace("\"id\":\"c1\",", ""))
        .collect();
    assert!(!events.concat().contains("\"id\""));
    let a = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\n",
        a.url()
    ));
    for (client, key) in [
        (Wire::Anthropic, "\"id\":\"msg_chatcmpl-"),
        (Wire::Responses, "\"id\":\"resp_chatcmpl-"),
        (Wire::Gemini, "\"responseId\":\"chatcmpl-"),
    ] {
        let ids: Vec<String> = (0..2)
            .map(|_| {
                let resp = ask_as(&p, client, "a:m", true);
                assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
                let at = resp
                    .body
                    .find(key)
                    .unwrap_or_else(|| panic!("{client:?}: {}", resp.body));
                let rest = &resp.body[at + key.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .collect();
        assert_ne!(ids[0], ids[1], "{client:?}: one id for two turns");
    }
}
