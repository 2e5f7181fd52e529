//! Google's side as a Gemini client sees it: the endpoints and model paths, keys sent the
//! Google ways, array and SSE streams, model lists and token counts in Google's shape, and
//! errors in that shape.

use super::*;

#[test]
fn stream_without_alt_sse_is_one_json_array() {
    for up in [Wire::Chat, Wire::Gemini] {
        let mock = MockUpstream::always(up.reply(true, false));
        let p = proxy(&mock, up.config_name(), "m", "");
        let s = p.stream("/v1beta/models/m:streamGenerateContent", ask());
        assert_eq!(s.status, 200, "{up:?}: {}", s.text());
        assert_eq!(s.header("content-type"), Some("application/json"));
        let a = read_gemini_array(&s.text());
        assert_eq!(a.text, "Hello there", "{up:?}: {}", s.text());
        assert!(a.ended, "{up:?}: {}", s.text());
        assert!(s.complete);
        // Upstream, Routeplane always asks for SSE.
        if up == Wire::Gemini {
            assert_eq!(
                mock.requests()[0].path,
                "/v1/models/m:streamGenerateContent?alt=sse"
            );
        }
    }
}

#[test]
fn model_path_goes_through_the_registry() {
    let mock = MockUpstream::start(|_| Reply::json(200, chat_answer("ok")));
    let p = proxy(
        &mock,
        "chat_completions",
        "\"llama3.1:8b\"",
        "models:\n  smart:\n    endpoints: [up:llama3.1:8b]\n",
    );
    // A provider-qualified id with colons of its own: the method is after the last one.
    for path in [
        "/v1beta/models/up:llama3.1:8b:generateContent",
        "/v1beta/models/up%3Allama3.1%3A8b:generateContent",
        "/v1beta/models/llama3.1:8b:generateContent",
        "/v1beta/models/smart:generateContent",
        "/v1/models/smart:generateContent",
    ] {
        let resp = p.post(path, ask());
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        assert_eq!(Wire::Gemini.read(&resp).text, "ok", "{path}");
    }
    let described = |id: &str| p.get(&format!("/v1beta/models/{id}")).json()["description"].clone();
    assert_eq!(described("smart"), "a virtual model of Routeplane's");
    assert_eq!(
        described("up:llama3.1:8b"),
        "served by up through Routeplane"
    );
    for rec in mock.requests() {
        assert_eq!(rec.json()["model"], "llama3.1:8b");
    }
    // The request-level `models` list overrides the path's model.
    let mut body = ask();
    body["models"] = json!(["nope-not-here", "smart"]);
    let resp = p.post("/v1beta/models/ignored:generateContent", body);
    assert_eq!(
        resp.status, 200,
        "an id nothing serves is passed over: {}",
        resp.body
    );
    let mut body = ask();
    body["models"] = json!(["smart"]);
    let resp = p.post("/v1beta/models/ignored:generateContent", body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let resp = p.post("/v1beta/models/nope:generateContent", ask());
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["error"]["status"], "NOT_FOUND");
    assert_eq!(resp.json()["error"]["code"], 404);
    let resp = p.post("/v1beta/models/smart:embedContent", ask());
    assert_eq!(resp.status, 400);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(":generateContent")
    );
}

/// A Gemini client of a Gemini source gets each event as it was sent, and the ledger
/// counts the running usage of the last event that carried one, here one before the end
/// (the relay reads such events in place, not decoded).
#[test]
fn a_copied_gemini_stream_goes_out_as_sent_and_counts_its_last_running_usage() {
    let part = |text: &str, out: Option<u64>| {
        let mut v = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}], "modelVersion": "m", "responseId": "r1"});
        if let Some(n) = out {
            v["usageMetadata"] =
                json!({"promptTokenCount": 6, "candidatesTokenCount": n, "thoughtsTokenCount": 1});
        }
        v
    };
    let mut last = part("", None);
    last["candidates"][0]["finishReason"] = json!("STOP");
    let events = [
        part("Hel", Some(1)),
        part("lo", Some(2)),
        part(" there", Some(3)),
        last,
    ];
    let sse = events
        .iter()
        .map(|v| format!("data: {v}\r\n\r\n"))
        .collect();
    let mock = MockUpstream::always(Reply::Sse(sse, Duration::ZERO));
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = proxy(
        &mock,
        "gemini",
        "m",
        &format!("usage:\n  path: {}\n", ledger.display()),
    );
    let s = p.stream(&Wire::Gemini.url("m", true), ask());
    assert_eq!(s.status, 200);
    let sent: Vec<Value> = s
        .data()
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(sent, events);
    assert_eq!(Wire::Gemini.read_stream(&s).text, "Hello there");
    let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(10), || !read().is_empty()));
    let line: Value = serde_json::from_str(read().lines().next().unwrap()).unwrap();
    // Gemini's candidates exclude thoughts; the ledger's output counts them, as OpenAI does.
    assert_eq!(
        (&line["tokens"]["input"], &line["tokens"]["output"]),
        (&json!(6), &json!(4)),
        "{line}"
    );
}

#[test]
fn client_keys_are_accepted_the_google_ways() {
    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = proxy(
        &mock,
        "chat_completions",
        "m",
        "skip_auth: false\nkeys: [\"k-1\"]\n",
    );
    let body = ask().to_string();
    let path = "/v1beta/models/m:generateContent";
    for (headers, query, ok) in [
        (vec![("x-goog-api-key", "k-1")], "", true),
        (vec![], "?key=k-1", true),
        (vec![("authorization", "Bearer k-1")], "", true),
        (vec![("x-goog-api-key", "wrong")], "", false),
        (vec![], "?key=wrong", false),
        (vec![], "", false),
    ] {
        let resp = p.send("POST", &format!("{path}{query}"), &headers, body.as_bytes());
        if ok {
            assert_eq!(resp.status, 200, "{headers:?}{query}: {}", resp.body);
        } else {
            assert_eq!(resp.status, 401, "{headers:?}{query}");
            assert_eq!(resp.json()["error"]["status"], "UNAUTHENTICATED");
        }
    }
    // The last request's line is out (lines are written in batches) before looking.
    assert!(wait_until(Duration::from_secs(5), || p
        .log()
        .iter()
        .filter(|l| l.contains(" /v1beta/models/m:generateContent "))
        .count()
        == 6));
    assert!(
        !p.log().iter().any(|l| l.contains("k-1")),
        "the key never reaches the log"
    );
}

#[test]
fn models_are_listed_in_googles_shape() {
    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = proxy(&mock, "chat_completions", "m", "");
    let v = p.get("/v1beta/models").json();
    let names: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"models/m"), "{v}");
    assert!(names.contains(&"models/up:m"), "{v}");
    let one = p.get("/v1beta/models/m");
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["name"], "models/m");
    assert!(
        one.json()["supportedGenerationMethods"]
            .to_string()
            .contains("generateContent")
    );
    assert_eq!(p.get("/v1beta/models/absent").status, 404);
    // The SDK, given a base URL, lists `/v1/models`: both shapes in one answer.
    let both = p.get("/v1/models").json();
    assert_eq!(both["object"], "list");
    assert!(both["data"].to_string().contains("\"up:m\""), "{both}");
    assert!(
        both["models"].to_string().contains("\"models/up:m\""),
        "{both}"
    );
    let one = p.get("/v1/models/up:m").json();
    assert_eq!(
        (one["id"].as_str(), one["name"].as_str()),
        (Some("up:m"), Some("models/up:m"))
    );
}

#[test]
fn count_tokens_goes_to_a_gemini_upstream_else_is_estimated() {
    let mock = MockUpstream::always(Reply::json(200, json!({"totalTokens": 12})));
    let p = proxy(&mock, "gemini", "m", "");
    let resp = p.post("/v1beta/models/m:countTokens", ask());
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json(), json!({"totalTokens": 12}));
    let rec = &mock.requests()[0];
    assert_eq!(rec.path, "/v1/models/m:countTokens");
    assert_eq!(
        rec.json(),
        ask(),
        "the body goes as it came, no model added"
    );

    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = proxy(&mock, "chat_completions", "m", "");
    let resp = p.post("/v1beta/models/m:countTokens", ask());
    assert_eq!(resp.status, 200);
    assert!(resp.json()["totalTokens"].as_u64().unwrap() > 0);
    assert_eq!(resp.header("x-routeplane-estimate"), Some("true"));
    assert_eq!(mock.count(), 0);
}

#[test]
fn builtin_gemini_sends_the_key_as_x_goog_api_key() {
    for var in ["GEMINI_API_KEY", "GOOGLE_API_KEY"] {
        let mock = MockUpstream::always(Wire::Gemini.reply(false, false));
        let yaml = format!(
            "providers:\n  gemini:\n    api_base: {}\n    models: [gemini-x]\n",
            mock.url()
        );
        let p = Proxy::start_with(&yaml, &[(var, "g-secret")], &[]);
        let resp = p.post(
            "/v1/chat/completions",
            json!({"model": "gemini:gemini-x", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(resp.status, 200, "{var}: {}", resp.body);
        assert_eq!(Wire::Chat.read(&resp).text, "Hello there");
        let rec = &mock.requests()[0];
        assert_eq!(rec.path, "/v1/models/gemini-x:generateContent");
        assert_eq!(rec.header("x-goog-api-key"), Some("g-secret"), "{var}");
        assert_eq!(rec.header("authorization"), None);
        assert!(
            !rec.path.contains("g-secret"),
            "the key stays out of the URL"
        );
    }
}

#[test]
fn a_gemini_answer_without_candidates_names_its_provider() {
    let mock = MockUpstream::always(Reply::json(
        200,
        json!({"usageMetadata": {"promptTokenCount": 3}}),
    ));
    let p = Proxy::start(&format!(
        "providers:\n  gm:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\n",
        mock.url()
    ));
    let r = p.post(
        &Wire::Chat.url("m", false),
        Wire::Chat.request("m", false, false),
    );
    assert_eq!(r.status, 502, "{}", r.body);
    let said = r.error_message();
    assert!(
        said.contains("upstream `gm` failed: the answer has no candidates"),
        "{said}"
    );
    assert!(!said.contains("gemini"), "{said}");
}

#[test]
fn a_broken_stream_ends_with_an_error_in_googles_shape() {
    let mut evs = chat_events(2, false);
    evs.truncate(2);
    let mock = MockUpstream::always(Reply::SseThenBreak(evs, Default::default()));
    let p = proxy(&mock, "chat_completions", "m", "");
    let s = p.stream("/v1beta/models/m:streamGenerateContent?alt=sse", ask());
    assert_eq!(s.status, 200);
    let text = s.text();
    let last = text
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .last()
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap();
    assert_eq!(v["error"]["code"], 502, "{text}");
    assert_eq!(v["error"]["status"], "INTERNAL");
    assert!(s.complete);
    // The array stream closes its array after the error element.
    let s = p.stream("/v1beta/models/m:streamGenerateContent", ask());
    let items: Vec<Value> = serde_json::from_str(&s.text()).expect("still one JSON array");
    assert_eq!(items.last().unwrap()["error"]["code"], 502);
}
