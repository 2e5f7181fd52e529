//! Google Gemini on both sides: its endpoints, keys, model paths, array streams,
//! token counts, the `gemini` built-in, and safety blocks as a reason to fail over.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::answer::{self, CANONICAL, Fault};
use crate::support::upstream::{chat_answer, chat_events};
use crate::support::wire::{Wire, read_gemini_array};
use crate::support::{Dir, MockUpstream, Proxy, Reply, wait_until};

/// A proxy whose provider `up` (speaking `protocol`) serves `models`.
fn proxy(mock: &MockUpstream, protocol: &str, models: &str, extra: &str) -> Proxy {
    Proxy::start(&format!(
        "providers:\n  up:\n    api_base: {}\n    api_protocol: {protocol}\n    models: [{models}]\n{extra}",
        mock.url()
    ))
}

fn ask() -> Value {
    Wire::Gemini.request("m", false, false)
}

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

/// A Gemini answer that the safety filter blocked: the prompt, or the answer.
fn blocked_replies() -> [Reply; 2] {
    [
        Reply::json(
            200,
            json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}),
        ),
        Reply::json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "PROHIBITED_CONTENT", "index": 0}]}),
        ),
    ]
}

#[test]
fn a_safety_block_fails_over_like_a_content_filter() {
    for blocked in blocked_replies() {
        for stream in [false, true] {
            let sse = match &blocked {
                Reply::Json(_, body) => {
                    Reply::Sse(vec![format!("data: {body}\r\n\r\n")], Default::default())
                }
                _ => unreachable!(),
            };
            let a = MockUpstream::always(if stream { sse } else { blocked.clone() });
            let b = MockUpstream::start(move |_| {
                if stream {
                    Reply::Sse(chat_events(2, true), Default::default())
                } else {
                    Reply::json(200, chat_answer("from b"))
                }
            });
            let dir = Dir::new();
            let ledger = dir.path().join("usage.jsonl");
            let p = Proxy::start(&format!(
                "providers:\n  a:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\nusage:\n  path: {}\n",
                a.url(),
                b.url(),
                ledger.display()
            ));
            let want = if stream { "t0t1" } else { "from b" };
            let resp = if stream {
                let s = p.stream(
                    "/v1/chat/completions",
                    json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
                );
                Wire::Chat.read_stream(&s).text
            } else {
                let r = p.post(
                    "/v1/chat/completions",
                    json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
                );
                Wire::Chat.read(&r).text
            };
            assert_eq!(resp, want, "stream={stream}");
            assert_eq!(a.count(), 1);
            assert_eq!(b.count(), 1);
            // The attempt moved past is told with the status Gemini answered, stream or not.
            let line = p.wait_log("served_by=b:m");
            assert!(line.contains("tried=a:m→200:filter,b:m→200"), "{line}");
            let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
            assert!(wait_until(Duration::from_secs(10), || !read().is_empty()));
            let first: Value = serde_json::from_str(read().lines().next().unwrap()).unwrap();
            assert_eq!(
                first["failed"],
                json!([{"endpoint": "a:m", "status": 200, "reason": "content filtered"}]),
                "stream={stream}"
            );
            // A filter is about this prompt, not the endpoint: no cool-down, `a` first again.
            let again = p.post(
                "/v1/chat/completions",
                json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
            );
            assert_eq!(again.status, 200);
            assert_eq!(
                a.count(),
                2,
                "stream={stream}: a filtered answer cools nothing down"
            );
        }
    }
}

#[test]
fn a_safety_block_with_no_endpoint_left_is_the_clients_answer() {
    // Google's own answer is a 200 the SDKs read (`prompt_feedback.block_reason`); a
    // client of another format gets its format's filtered answer, not an invented error.
    for blocked in blocked_replies() {
        let Reply::Json(_, body) = &blocked else {
            unreachable!()
        };
        let sent: Value = serde_json::from_str(body).unwrap();
        let sse = Reply::Sse(vec![format!("data: {body}\r\n\r\n")], Duration::ZERO);
        let a = MockUpstream::start(move |r| {
            if r.path.contains("alt=sse") {
                sse.clone()
            } else {
                blocked.clone()
            }
        });
        let dir = Dir::new();
        let ledger = dir.path().join("usage.jsonl");
        // Named otherwise than `gemini`.
        let p = Proxy::start(&format!(
            "providers:\n  gm:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\nusage:\n  path: {}\n",
            a.url(),
            ledger.display()
        ));
        let mut answered = 0;
        for client in [Wire::Gemini, Wire::Chat, Wire::Anthropic, Wire::Responses] {
            for stream in [false, true] {
                let (url, req) = (client.url("m", stream), client.request("m", stream, false));
                let said = format!("{client:?} stream={stream}");
                let (status, data) = if stream {
                    let s = p.stream(&url, req);
                    assert!(s.complete, "{said}");
                    (s.status, s.data())
                } else {
                    let r = p.post(&url, req);
                    (r.status, vec![r.body])
                };
                assert_eq!(status, 200, "{said}: {data:?}");
                answered += 1;
                let events: Vec<Value> = data
                    .iter()
                    .filter_map(|d| serde_json::from_str(d).ok())
                    .collect();
                let has = |f: &dyn Fn(&Value) -> bool| events.iter().any(f);
                match (client, stream) {
                    // The same protocol: Google's answer as it came.
                    (Wire::Gemini, _) => assert_eq!(events, std::slice::from_ref(&sent), "{said}"),
                    (Wire::Chat, false) => {
                        let choice = &events[0]["choices"][0];
                        assert_eq!(choice["finish_reason"], "content_filter", "{said}");
                        assert_eq!(choice["message"]["content"], "", "{said}");
                    }
                    (Wire::Chat, true) => {
                        assert!(has(
                            &|e| e["choices"][0]["finish_reason"] == "content_filter"
                        ));
                        assert!(!has(&|e| e["choices"][0]["delta"]["content"]
                            .as_str()
                            .is_some_and(|t| !t.is_empty())));
                        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{said}");
                    }
                    (Wire::Anthropic, false) => {
                        assert_eq!(events[0]["stop_reason"], "refusal", "{said}: {events:?}");
                        assert_eq!(events[0]["content"], json!([]), "{said}");
                    }
                    (Wire::Anthropic, true) => {
                        assert!(
                            has(&|e| e["delta"]["stop_reason"] == "refusal"),
                            "{said}: {events:?}"
                        );
                        assert!(has(&|e| e["type"] == "message_stop"), "{said}");
                    }
                    (Wire::Responses, false) => {
                        assert_eq!(events[0]["status"], "incomplete", "{said}");
                        assert_eq!(
                            events[0]["incomplete_details"]["reason"], "content_filter",
                            "{said}"
                        );
                    }
                    (Wire::Responses, true) => {
                        assert!(
                            has(&|e| e["type"] == "response.incomplete"
                                && e["response"]["incomplete_details"]["reason"]
                                    == "content_filter"),
                            "{said}: {events:?}"
                        );
                    }
                }
            }
        }
        // Answered by `gm`, as the ledger says: no failure invented.
        let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
        assert!(wait_until(Duration::from_secs(10), || read()
            .lines()
            .count()
            >= answered));
        for line in read().lines() {
            let line: Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                (&line["status"], &line["served_by"], &line["failed"]),
                (&json!(200), &json!("gm:m"), &json!([])),
                "{line}"
            );
        }
        assert_eq!(a.count(), answered, "nothing asked twice");
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

/// The Gemini CLI that `make gemini-cli` installs under target/, with `node` to run it;
/// `None` (and a printed reason) when either is missing.
fn gemini_cli() -> Option<std::path::PathBuf> {
    let cli = std::env::var_os("ROUTEPLANE_TEST_GEMINI_CLI")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/gemini-cli/node_modules/.bin/gemini")
        });
    // `v20.20.2` → 20; the CLI needs node 20 or later.
    let major = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
            v.trim_start_matches('v')
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        });
    if !cli.exists() || major.is_none_or(|m| m < 20) {
        eprintln!(
            "skipped: Gemini CLI not installed at {} or no `node` 20 or later (node major: {major:?}; run `make gemini-cli`)",
            cli.display()
        );
        return None;
    }
    Some(cli)
}

/// Runs `gemini -m up:m -p PROMPT` in a fresh home (with a file `a.txt` in it) against
/// the proxy and returns its stdout; panics with everything known when it fails or
/// takes over 120 s.
fn run_gemini(cli: &std::path::Path, p: &Proxy, prompt: &str) -> String {
    let home = Dir::new();
    std::fs::create_dir_all(home.path().join(".gemini")).unwrap();
    // Gemini CLI 0.61 picks a `gateway` auth type for GOOGLE_GEMINI_BASE_URL and then
    // rejects it when run headless; the API-key type with the same base URL works.
    home.write(
        ".gemini/settings.json",
        r#"{"security": {"auth": {"selectedType": "gemini-api-key"}},
            "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
            "privacy": {"usageStatisticsEnabled": false}, "telemetry": {"enabled": false}}"#,
    );
    home.write("a.txt", "");
    let mut child = Command::new(cli)
        .args(["-m", "up:m", "-p", prompt])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("GOOGLE_GEMINI_BASE_URL", p.url())
        .env("GEMINI_API_KEY", "unused")
        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gemini");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "gemini did not finish within 120 s; proxy log: {:#?}",
                p.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {stdout}\nstderr: {}\nproxy log: {:#?}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        p.log()
    );
    stdout
}

#[test]
fn gemini_cli_answers_through_routeplane_from_a_chat_upstream() {
    let Some(cli) = gemini_cli() else {
        return;
    };
    let mock = MockUpstream::start(|req| {
        let stream = String::from_utf8_lossy(&req.body).contains("\"stream\":true");
        Wire::Chat.reply(stream, false)
    });
    let p = proxy(&mock, "chat_completions", "m", "");
    let stdout = run_gemini(&cli, &p, "Say hello");
    assert!(stdout.contains("Hello there"), "{stdout}");
    let asked = mock.requests().iter().any(|r| {
        r.path == "/v1/chat/completions" && r.json()["messages"].to_string().contains("Say hello")
    });
    assert!(asked, "the prompt reached the chat upstream");
}

#[test]
fn gemini_cli_runs_a_tool_through_routeplane() {
    let Some(cli) = gemini_cli() else {
        return;
    };
    // The chat source asks for `list_directory` (one of the CLI's own tools), its
    // arguments in two fragments, then answers once the listing is back.
    let mock = MockUpstream::start(|req| {
        let body = req.json();
        let answered = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x["role"] == "tool"));
        let chunk = crate::support::wire::chat_chunk;
        let mut evs = if answered {
            vec![chunk(json!({"content": "Listed."}), Value::Null)]
        } else {
            vec![
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_abc", "type": "function",
                        "function": {"name": "list_directory", "arguments": "{\"dir_path\":"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\".\"}"}}]}),
                    Value::Null,
                ),
            ]
        };
        let finish = if answered { "stop" } else { "tool_calls" };
        evs.push(chunk(json!({}), json!(finish)));
        evs.push("data: [DONE]\n\n".into());
        Reply::Sse(evs, Duration::ZERO)
    });
    let p = proxy(&mock, "chat_completions", "m", "");
    let stdout = run_gemini(&cli, &p, "list the files here");
    assert!(stdout.contains("Listed."), "{stdout}");
    let result = mock
        .requests()
        .iter()
        .filter_map(|r| {
            let msgs = r.json()["messages"].as_array()?.clone();
            msgs.into_iter().find(|m| m["role"] == "tool")
        })
        .next()
        .expect("the tool's result went back upstream");
    assert_eq!(result["tool_call_id"], "call_abc", "{result}");
    assert!(result["content"].to_string().contains("a.txt"), "{result}");
}

#[test]
fn a_gemini_client_of_a_gemini_source_also_moves_on_from_a_block() {
    for stream in [false, true] {
        let [blocked, _] = blocked_replies();
        let a = MockUpstream::always(match blocked {
            Reply::Json(_, body) if stream => {
                Reply::Sse(vec![format!("data: {body}\r\n\r\n")], Default::default())
            }
            other => other,
        });
        let b = MockUpstream::start(|req| {
            let stream = String::from_utf8_lossy(&req.body).contains("\"stream\":true");
            Wire::Chat.reply(stream, false)
        });
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
            a.url(),
            b.url()
        ));
        let text = if stream {
            let s = p.stream(&Wire::Gemini.url("smart", true), ask());
            Wire::Gemini.read_stream(&s).text
        } else {
            let r = p.post(&Wire::Gemini.url("smart", false), ask());
            Wire::Gemini.read(&r).text
        };
        assert_eq!(text, "Hello there", "stream={stream}");
        assert_eq!((a.count(), b.count()), (1, 1), "stream={stream}");
    }
}

/// A mock whose first answer, in `wire`, breaks after 20 tokens; its continuations are whole.
fn cut_once(wire: Wire) -> MockUpstream {
    MockUpstream::numbered(move |n, req| {
        let fault = if n == 0 { Fault::Cut(20) } else { Fault::None };
        answer::reply(wire, req, "a", fault)
    })
}

#[test]
fn a_gemini_clients_stalled_stream_is_continued_elsewhere_without_repeats_and_ends_once() {
    let sent = answer::tokens(CANONICAL)[..20].concat();
    for up in [Wire::Chat, Wire::Gemini] {
        // `a` stalls after 20 tokens; `b` (another tag, so other ids) continues.
        let a = MockUpstream::start(move |req| {
            let fault = Fault::Stall(20, Duration::from_secs(3));
            answer::reply(up, req, "a", fault)
        });
        let b = MockUpstream::start(|req| answer::reply(Wire::Gemini, req, "b", Fault::None));
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n  b:\n    api_base: {}\n    api_protocol: gemini\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\ntimeouts:\n  idle_secs: 1\n",
            a.url(),
            up.config_name(),
            b.url()
        ));
        // Without `alt=sse`: the continuation must keep the one JSON array well formed.
        let s = p.stream("/v1beta/models/smart:streamGenerateContent", ask());
        assert_eq!(s.status, 200, "{up:?}: {}", s.text());
        let items: Vec<Value> = serde_json::from_str(&s.text()).expect("one JSON array");
        let got = read_gemini_array(&s.text());
        assert_eq!(
            got.text, CANONICAL,
            "{up:?}: nothing repeated, nothing lost"
        );
        assert!(got.ended, "{up:?}: {}", s.text());
        assert!(items.iter().all(|v| v.get("error").is_none()), "{up:?}");
        let finishes = items
            .iter()
            .filter(|v| v["candidates"][0]["finishReason"].is_string())
            .count();
        assert_eq!(finishes, 1, "{up:?}: one ending");
        // The ids and model the client saw first stay, whoever continues.
        for key in ["responseId", "modelVersion"] {
            let seen: Vec<&Value> = items.iter().map(|v| &v[key]).collect();
            assert!(
                seen.windows(2).all(|w| w[0] == w[1]),
                "{up:?}: one {key}: {seen:?}"
            );
        }
        assert_eq!((a.count(), b.count()), (1, 1), "{up:?}");
        let cont = b.requests()[0].json();
        assert_eq!(
            answer::prefill(&cont).as_deref(),
            Some(sent.trim_end()),
            "{up:?}"
        );
        p.wait_log("rescued=1");
    }
}

#[test]
fn the_gemini_builtin_continues_a_cut_stream_from_a_final_model_turn() {
    let sent = answer::tokens(CANONICAL)[..20].concat();
    for client in [Wire::Chat, Wire::Gemini] {
        let a = cut_once(Wire::Gemini);
        // The built-in's own `prefill` applies: the block sets none.
        let yaml = format!(
            "providers:\n  gemini:\n    api_base: {}\n    models: [m]\ntimeouts:\n  idle_secs: 1\n",
            a.url()
        );
        let p = Proxy::start_with(&yaml, &[("GEMINI_API_KEY", "g-secret")], &[]);
        let mut body = client.request("gemini:m", true, false);
        if client == Wire::Chat {
            body["stream_options"] = json!({"include_usage": true});
        }
        let s = p.stream(&client.url("gemini:m", true), body);
        assert_eq!(s.status, 200, "{client:?}: {}", s.text());
        let got = client.read_stream(&s);
        assert_eq!(got.text, CANONICAL, "{client:?}: {}", s.text());
        assert!(got.ended && s.complete, "{client:?}: {}", s.text());
        let reqs = a.requests();
        assert_eq!(reqs.len(), 2, "{client:?}: continued by the same endpoint");
        assert_eq!(reqs[1].path, "/v1/models/m:streamGenerateContent?alt=sse");
        let cont = reqs[1].json();
        assert!(
            cont.get("model").is_none(),
            "the model stays in the URL: {cont}"
        );
        let last = cont["contents"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["role"], "model", "{cont}");
        assert_eq!(answer::prefill(&cont).as_deref(), Some(sent.trim_end()));
    }
}

/// A mock Gemini API that, asked first, calls `read` with the signature `sig-real`, and
/// answers later requests with text; streamed (`alt=sse`) or whole, as asked.
fn gemini_signing_a_call() -> MockUpstream {
    MockUpstream::numbered(|n, req| {
        let part = if n == 0 {
            json!({"functionCall": {"name": "read", "args": {"path": "a.rs"}}, "thoughtSignature": "sig-real"})
        } else {
            json!({"text": "done"})
        };
        let answer = json!({"responseId": format!("resp-{}", req.path.len()),
            "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}]});
        if req.path.contains("alt=sse") {
            Reply::Sse(vec![format!("data: {answer}\r\n\r\n")], Duration::ZERO)
        } else {
            Reply::json(200, answer)
        }
    })
}

#[test]
fn geminis_call_signature_survives_a_chat_clients_loop_that_drops_it() {
    // opencode and aider keep no `reasoning_details`, where Gemini's signature of a call
    // reaches a Chat client. Gemini 3 refuses a call turn without one, so the turn went
    // with the placeholder Google allows for history it did not make, losing the
    // model's reasoning. The signature is now kept under the call's id and given back.
    let tools = json!([{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]);
    let ask = json!({"role": "user", "content": "read a.rs"});
    for stream in [false, true] {
        let mock = gemini_signing_a_call();
        let p = Proxy::start_with(
            &format!("providers:\n  gemini:\n    api_base: {}\n", mock.url()),
            &[("GEMINI_API_KEY", "k")],
            &[],
        );
        let first = json!({"model": "gemini:gemini-3-pro", "messages": [ask], "tools": tools, "stream": stream});
        let answer = p.stream(&Wire::Chat.url("m", stream), first);
        assert_eq!(answer.status, 200, "{}", answer.text());
        let text = answer.text();
        let id = text
            .split("\"id\":\"call_")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|rest| format!("call_{rest}"))
            .unwrap_or_else(|| panic!("a call id: {text}"));
        // The client's next turn, as opencode sends it: the call and its result alone.
        let turn = json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a.rs\"}"}}]});
        let result = json!({"role": "tool", "tool_call_id": id, "content": "fn main() {}"});
        let second = json!({"model": "gemini:gemini-3-pro", "messages": [ask, turn, result], "tools": tools});
        let resp = p.post(&Wire::Chat.url("m", false), second);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let posts: Vec<Value> = mock.posts().iter().map(|r| r.json()).collect();
        let call = &posts[1]["contents"][1]["parts"][0];
        assert_eq!(call["functionCall"]["name"], "read", "{}", posts[1]);
        assert_eq!(
            call["thoughtSignature"], "sig-real",
            "stream {stream}: {}",
            posts[1]
        );
        // Another session's call of another id gets the placeholder, not this one's.
        let other = json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_other_0", "type": "function", "function": {"name": "read", "arguments": "{}"}}]});
        let result = json!({"role": "tool", "tool_call_id": "call_other_0", "content": "x"});
        let third = json!({"model": "gemini:gemini-3-pro", "messages": [ask, other, result], "tools": tools});
        assert_eq!(p.post(&Wire::Chat.url("m", false), third).status, 200);
        let sent = mock.posts()[2].json();
        assert_eq!(
            sent["contents"][1]["parts"][0]["thoughtSignature"], "skip_thought_signature_validator",
            "{sent}"
        );
    }
}

/// Posts `body`, written as the client wrote it (key spelling matters), to `model`'s
/// `generateContent` and returns what the chat source `mock` was asked.
fn asked_of_chat(p: &Proxy, mock: &MockUpstream, body: &str) -> Value {
    let resp = p.send(
        "POST",
        &Wire::Gemini.url("m", false),
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    mock.requests().last().expect("the source was asked").json()
}

#[test]
fn a_gemini_clients_snake_case_fields_reach_a_chat_source() {
    // google-genai 3.6.1, given a base URL, sends these nested fields in snake_case,
    // which Google takes as well; only camelCase was read, so the schema went as empty
    // properties, the PNG as an octet-stream PDF, the image URL as null and the thinking
    // settings nowhere. Names inside the client's data (a schema's properties, a call's
    // args, a function's response) stay as written.
    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = proxy(&mock, "chat_completions", "m", "");
    let body = r#"{
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [
                {"text": "look"},
                {"inline_data": {"mime_type": "image/png", "data": "iVBORw0K"}},
                {"file_data": {"file_uri": "https://example.com/cat.jpg", "mime_type": "image/jpeg"}}]},
            {"role": "model", "parts": [{"function_call": {"name": "read_file", "args": {"file_path": "a.rs"}}, "thought_signature": "sig"}]},
            {"role": "user", "parts": [{"function_response": {"name": "read_file", "response": {"file_content": "fn main() {}"}}}]}
        ],
        "tools": [{"function_declarations": [{"name": "read_file", "description": "reads",
            "parameters_json_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}]}],
        "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["read_file"]}},
        "generation_config": {"max_output_tokens": 77, "stop_sequences": ["END"], "top_p": 0.5,
            "thinking_config": {"thinking_budget": 4000, "include_thoughts": true}}
    }"#;
    let sent = asked_of_chat(&p, &mock, body);
    let m = &sent["messages"];
    assert_eq!(
        m[0],
        json!({"role": "system", "content": "be brief"}),
        "{sent}"
    );
    assert_eq!(
        m[1]["content"],
        json!([
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]),
        "{sent}"
    );
    assert_eq!(m[2]["tool_calls"][0]["function"]["name"], "read_file");
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"file_path":"a.rs"}"#
    );
    assert_eq!(m[3]["role"], "tool");
    assert_eq!(m[3]["content"], r#"{"file_content":"fn main() {}"}"#);
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "read_file", "description": "reads",
            "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}}]),
        "{sent}"
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "read_file"}})
    );
    assert_eq!(sent["max_tokens"], 77);
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(sent["top_p"], 0.5);
    assert_eq!(sent["reasoning_effort"], "medium", "{sent}");

    // `thinking_level` too, as the SDK sends it for Gemini 3.
    let body = r#"{"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generation_config": {"thinking_config": {"thinking_level": "HIGH"}}}"#;
    assert_eq!(asked_of_chat(&p, &mock, body)["reasoning_effort"], "high");
}

#[test]
fn a_gemini_clients_several_candidates_are_a_400_from_other_sources_not_one_merged_answer() {
    // A Chat source was sent `n: 2` and answered two choices, but the client got one
    // candidate, or, streaming, both answers run together as candidate 0. The hub
    // carries one answer: asked of any source but Gemini, it is refused before it is
    // sent, in Google's shape, whichever way the client spelt it.
    for up in [Wire::Chat, Wire::Anthropic, Wire::Responses] {
        let mock = MockUpstream::always(up.reply(false, false));
        let p = proxy(&mock, up.config_name(), "m", "");
        for (config, stream) in [("generationConfig", false), ("generation_config", true)] {
            let count = if config == "generationConfig" {
                "candidateCount"
            } else {
                "candidate_count"
            };
            let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                config: {count: 2}});
            let (status, text) = if stream {
                let s = p.stream(&Wire::Gemini.url("m", true), body);
                (s.status, s.text())
            } else {
                let r = p.post(&Wire::Gemini.url("m", false), body);
                (r.status, r.body)
            };
            assert_eq!(status, 400, "{up:?} {config}: {text}");
            let message = Wire::Gemini.error_message(&serde_json::from_str(&text).unwrap());
            assert!(
                message.contains("`candidateCount` above 1 needs a Gemini upstream"),
                "{up:?}: {message}"
            );
        }
        assert_eq!(mock.count(), 0, "{up:?}: nothing was sent");
        // One candidate is asked as any request is.
        let one = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"candidateCount": 1}});
        let resp = p.post(&Wire::Gemini.url("m", false), one);
        assert_eq!(resp.status, 200, "{up:?}: {}", resp.body);
        assert_eq!(
            resp.json()["candidates"][0]["content"]["parts"][0]["text"],
            "Hello there"
        );
        assert!(mock.requests()[0].json().get("n").is_none());
    }
}

#[test]
fn a_gemini_clients_several_candidates_move_on_to_a_gemini_source_that_is_asked_whole() {
    // A Chat source cannot give several candidates; the virtual model's Gemini source
    // can, and gets the request as the client wrote it. Though local (whose whole answers
    // are otherwise collected from a stream), it is asked for a whole one: one stream
    // cannot carry several candidates, whichever way the client spelt the count.
    let a = MockUpstream::always(Wire::Chat.reply(false, false));
    let b = MockUpstream::always(Wire::Gemini.reply(false, false));
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\n  b:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
        a.url(),
        b.url()
    ));
    let body = r#"{"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generation_config": {"candidate_count": 2}}"#;
    let resp = p.send(
        "POST",
        &Wire::Gemini.url("smart", false),
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(a.count(), 0);
    let sent = &b.requests()[0];
    assert!(sent.path.contains(":generateContent"), "{}", sent.path);
    assert_eq!(sent.json()["generation_config"]["candidate_count"], 2);
}

#[test]
fn a_gemini_chats_streamed_pieces_reach_a_chat_source_as_one_assistant_message() {
    // The SDK's chat keeps each streamed piece of an answer as its own `model` turn;
    // chat templates of the Mistral family refuse two assistant messages in a row.
    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = proxy(&mock, "chat_completions", "m", "");
    let piece = |t: &str| json!({"role": "model", "parts": [{"text": t}]});
    let body = json!({"contents": [
        {"role": "user", "parts": [{"text": "Salut"}]},
        {"role": "model", "parts": [{"text": "pondering", "thought": true}]},
        piece("Hél"), piece("lo"), piece(" there"),
        {"role": "user", "parts": [{"text": "read a.rs"}]},
        piece("Let me look."),
        {"role": "model", "parts": [{"functionCall": {"name": "read", "args": {"path": "a.rs"}}, "thoughtSignature": "sig"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "read", "args": {"path": "b.rs"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "read", "response": {"output": "A"}}},
            {"functionResponse": {"name": "read", "response": {"output": "B"}}}]},
    ]});
    let sent = asked_of_chat(&p, &mock, &body.to_string());
    let m = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = m.iter().map(|x| x["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant", "tool", "tool"],
        "{sent}"
    );
    assert_eq!(m[1], json!({"role": "assistant", "content": "Héllo there"}));
    assert_eq!(m[3]["content"], "Let me look.");
    let calls = m[3]["tool_calls"].as_array().unwrap();
    let args: Vec<&str> = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(args, [r#"{"path":"a.rs"}"#, r#"{"path":"b.rs"}"#]);
    // Each response pairs with its own call, though they came in different turns.
    assert_eq!(m[4]["tool_call_id"], calls[0]["id"]);
    assert_eq!(m[4]["content"], "A");
    assert_eq!(m[5]["tool_call_id"], calls[1]["id"]);
    assert_eq!(m[5]["content"], "B");
}

#[test]
fn a_gemini_response_schema_reaches_a_chat_source_as_json_schema() {
    // Google's OpenAPI subset says `nullable` where JSON Schema has a type union, and
    // orders properties by `propertyOrdering`, which JSON Schema has no word for.
    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = proxy(&mock, "chat_completions", "m", "");
    let body = r#"{"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": {
            "type": "OBJECT",
            "properties": {
                "name": {"type": "STRING"},
                "nickname": {"type": "STRING", "nullable": true},
                "size": {"type": "STRING", "enum": ["S", "L"], "nullable": true},
                "tags": {"type": "ARRAY", "items": {"type": "OBJECT",
                    "properties": {"b": {"type": "INTEGER"}, "a": {"type": "INTEGER"}},
                    "property_ordering": ["a", "b"]}}
            },
            "required": ["name"],
            "propertyOrdering": ["tags", "name", "nickname", "size"]
        }}}"#;
    let sent = asked_of_chat(&p, &mock, body);
    let schema = &sent["response_format"]["json_schema"]["schema"];
    assert_eq!(
        *schema,
        json!({"type": "object", "properties": {
            "name": {"type": "string"},
            "nickname": {"type": ["string", "null"]},
            "size": {"type": ["string", "null"], "enum": ["S", "L", null]},
            "tags": {"type": "array", "items": {"type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}},
            "required": ["name"]}),
        "{sent}"
    );
    // Objects compare without order; the order is what `propertyOrdering` was for.
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(&schema["properties"]),
        ["tags", "name", "nickname", "size"]
    );
    assert_eq!(
        keys(&schema["properties"]["tags"]["items"]["properties"]),
        ["a", "b"]
    );
}

#[test]
fn a_gemini_clients_url_safe_image_reaches_other_sources_as_standard_base64() {
    // The google-genai SDK sends bytes URL-safe; Google takes both alphabets, OpenAI
    // and Anthropic the standard one.
    let body = json!({"contents": [{"role": "user", "parts": [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo_mP8-5-hHgA"}},
    ]}]});
    for up in [Wire::Chat, Wire::Anthropic] {
        let mock = MockUpstream::always(up.reply(false, false));
        let p = up.serving(&mock, "m");
        let resp = p.post(&Wire::Gemini.url("m", false), body.clone());
        assert_eq!(resp.status, 200, "{up:?}: {}", resp.body);
        let sent = String::from_utf8(mock.posts()[0].body.clone()).unwrap();
        assert!(sent.contains("iVBORw0KGgo/mP8+5+hHgA=="), "{up:?}: {sent}");
    }
}

#[test]
fn usage_gemini_did_not_report_reaches_other_clients_left_out_not_as_zeros() {
    // Gemini leaves out a cached or thinking count when there is none, and a whole
    // answer may carry no `usageMetadata` at all.
    let text = json!({"content": {"role": "model", "parts": [{"text": "Hello there"}]}, "finishReason": "STOP", "index": 0});
    let counted = json!({"candidates": [text], "modelVersion": "m", "responseId": "r1",
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}});
    let uncounted = json!({"candidates": [text], "modelVersion": "m", "responseId": "r2"});
    let mock = MockUpstream::start(move |req| {
        let body = req.json();
        let asked = body["contents"][0]["parts"][0]["text"]
            .as_str()
            .unwrap_or_default();
        match (req.path.contains("stream"), asked == "count") {
            (true, _) => Reply::Sse(vec![format!("data: {counted}\n\n")], Duration::ZERO),
            (false, true) => Reply::json(200, counted.clone()),
            (false, false) => Reply::json(200, uncounted.clone()),
        }
    });
    let p = proxy(&mock, "gemini", "m", "");
    let chat = |q: &str| json!({"model": "m", "messages": [{"role": "user", "content": q}]});
    let counted = p.post("/v1/chat/completions", chat("count"));
    assert_eq!(
        counted.json()["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        "{}",
        counted.body
    );
    let uncounted = p.post("/v1/chat/completions", chat("none")).json();
    assert!(uncounted.get("usage").is_none(), "{uncounted}");
    let mut streamed = chat("count");
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let s = p.stream("/v1/chat/completions", streamed);
    let usage = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["usage"].is_object())
        .map(|v| v["usage"].clone());
    assert_eq!(
        usage,
        Some(json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})),
        "{}",
        s.text()
    );
    let anthropic = p.post(
        "/v1/messages",
        json!({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "count"}]}),
    );
    assert_eq!(
        anthropic.json()["usage"],
        json!({"input_tokens": 5, "output_tokens": 2}),
        "{}",
        anthropic.body
    );
}
