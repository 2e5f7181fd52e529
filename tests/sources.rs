//! Sources as a new user meets them: keys from the environment, hosted model lists,
//! local servers that are down or too small, upstream errors passed on unchanged,
//! stale pooled connections, and subscription state that tells the truth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::upstream::{Recorded, chat_answer};
use crate::support::{MockUpstream, Proxy, Reply, wait_until};

/// The binary, with no hosted key from the developer's environment (a key would send
/// model-list requests to the internet).
fn routeplane() -> std::process::Command {
    let mut cmd = std::process::Command::new(crate::support::proxy::bin());
    for var in crate::support::proxy::CREDENTIAL_VARS {
        cmd.env_remove(var);
    }
    cmd
}

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
        .posts()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_string())
        .collect();
    assert_eq!(auths, ["Bearer sk-routeplane", "Bearer sk-or"]);
    p.wait_log("served_by=openrouter:x/y");
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

#[test]
fn a_stream_with_an_endpoint_left_also_retries_a_dead_pooled_connection() {
    let up = MockUpstream::closing_idle(|req| {
        if req.json()["stream"] == json!(true) {
            Reply::chat_stream(2, Duration::ZERO)
        } else {
            Reply::json(200, chat_answer("fine"))
        }
    });
    let other = MockUpstream::always(Reply::chat_stream(3, Duration::ZERO));
    let p = Proxy::start(&format!(
        "providers:\n  llama:\n    api_base: {}\n    models: [m]\n  other:\n    api_base: {}\nmodels:\n  agent:\n    endpoints: [llama:m, other:x]\n",
        up.url(),
        other.url()
    ));
    // A whole answer leaves its connection in the pool.
    assert_eq!(chat(&p, "m").status, 200);
    // With another endpoint left, the stream's head is due within the first-token
    // deadline (`post_within`); the dead pooled connection is still not an attempt.
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "agent", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(s.status, 200);
    assert_eq!(s.header("x-routeplane-provider"), Some("llama"));
    assert_eq!(s.header("x-routeplane-attempts"), Some("1"));
    assert!(s.text().contains("t1"), "{}", s.text());
    assert_eq!(other.count(), 0);
    let reqs = up.requests();
    let streamed: Vec<usize> = reqs
        .iter()
        .filter(|r| r.json()["stream"] == json!(true))
        .map(|r| r.on_conn)
        .collect();
    assert_eq!(
        streamed,
        [1, 0],
        "dropped on the reused connection, then sent anew"
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
        msg.starts_with("prompt is too long: 5000 tokens > 4096 maximum; "),
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

    // Claude Code's protocol: the same words, which it knows as a cue to compact.
    let resp = p.post(
        "/v1/messages",
        json!({"model": "tiny", "stream": true, "max_tokens": 5, "messages": [{"role": "user", "content": "x".repeat(3000)}]}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    let msg = resp.error_message();
    assert!(
        msg.starts_with("prompt is too long: 5000 tokens > 4096 maximum"),
        "{msg}"
    );

    // In a virtual model the overflow moves on to the next endpoint.
    let s = p.stream("/v1/chat/completions", long_prompt("agent"));
    assert_eq!(s.status, 200);
    assert_eq!(s.header("x-routeplane-provider"), Some("big"));
    assert!(s.text().contains("t2"), "{}", s.text());
    // The overflow was explained there too, so the source is not cooled down: a prompt
    // that fits goes to it first again.
    let asked = llama.requests();
    assert_eq!(asked.last().unwrap().json()["stream"], json!(false));
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "agent", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(s.header("x-routeplane-provider"), Some("llamacpp"));
    // A prompt that fits streams as usual.
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "tiny", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(s.header("x-routeplane-provider"), Some("llamacpp"));
}

/// A mock local server listing `models` whose chat answers come from `chat`.
fn local(
    models: &'static [&'static str],
    chat: impl Fn() -> Reply + Send + Sync + 'static,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |req| match req.path.as_str() {
        "/v1/models" => Reply::json(
            200,
            json!({"object": "list", "data": models.iter().map(|m| json!({"id": m})).collect::<Vec<_>>()}),
        ),
        _ => chat(),
    }
}

#[test]
fn a_model_whose_local_source_went_down_is_503_naming_the_source() {
    let llama = MockUpstream::start(local(&["tiny-llama"], || {
        Reply::json(200, chat_answer("hi"))
    }));
    let port = llama.port();
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.3\nproviders:\n  llamacpp:\n    api_base: {}\n",
        llama.url()
    ));
    p.wait_log("source llamacpp is up (1 model)");
    assert_eq!(chat(&p, "tiny-llama").status, 200);
    drop(llama);
    p.wait_log("source llamacpp is down");
    let resp = chat(&p, "tiny-llama");
    assert_eq!(resp.status, 503, "{}", resp.body);
    let msg = resp.error_message();
    let want = format!("source llamacpp (127.0.0.1:{port}) is down; it served tiny-llama until ");
    assert!(msg.starts_with(&want) && msg.contains(" UTC"), "{msg}");
    assert_eq!(
        chat(&p, "never-served").status,
        404,
        "a typo is still a 404"
    );
}

#[test]
fn a_local_source_whose_probe_answers_again_leaves_its_cool_down() {
    let failing = Arc::new(AtomicBool::new(true));
    let f = Arc::clone(&failing);
    let a = MockUpstream::start(local(&["m"], move || {
        if f.load(Ordering::SeqCst) {
            Reply::json(500, json!({"error": {"message": "loading"}}))
        } else {
            Reply::json(200, chat_answer("from a"))
        }
    }));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&format!(
        "failover:\n  cooldown_secs: 600\ndetect:\n  interval_secs: 0.3\nproviders:\n  a:\n    api_base: {}\n    detect: true\n  b:\n    api_base: {}\n    models: [m]\n",
        a.url(),
        b.url()
    ));
    p.wait_log("source a is up (1 model)");
    let resp = chat(&p, "m");
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"), "a failed");
    failing.store(false, Ordering::SeqCst);
    // Without the probe, a would stay behind b for ten minutes.
    assert!(
        wait_until(Duration::from_secs(10), || {
            chat(&p, "m").header("x-routeplane-provider") == Some("a")
        }),
        "a took traffic again"
    );
}

#[test]
fn a_probe_answered_leaves_a_busy_sources_cool_down_alone() {
    // A 429 that names a minute: the server is up and answers its model list, busy all
    // the same.
    let a = MockUpstream::start(local(&["m"], || {
        Reply::JsonWith(
            429,
            vec![("Retry-After".into(), "60".into())],
            r#"{"error":{"message":"slow down"}}"#.into(),
        )
    }));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.2\nproviders:\n  a:\n    api_base: {}\n    detect: true\n  b:\n    api_base: {}\n    models: [m]\n",
        a.url(),
        b.url()
    ));
    p.wait_log("source a is up (1 model)");
    assert_eq!(chat(&p, "m").header("x-routeplane-provider"), Some("b"));
    let probes = a.count() - a.posts().len();
    // Several probes answered since: the cool-down the server named still holds.
    assert!(wait_until(Duration::from_secs(10), || {
        a.count() - a.posts().len() >= probes + 3
    }));
    let cooling = p.get("/routeplane/cooldowns").json();
    assert_eq!(cooling["cooldowns"][0]["target"], "a:m", "{cooling}");
    assert_eq!(chat(&p, "m").header("x-routeplane-provider"), Some("b"));
    assert_eq!(a.posts().len(), 1, "not asked again within its minute");
}

#[test]
fn route_knows_detected_models_and_shows_state_and_cool_down() {
    let a = MockUpstream::start(local(&["m"], || {
        Reply::json(500, json!({"error": {"message": "boom"}}))
    }));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let port = MockUpstream::free_port();
    let yaml = format!(
        "failover:\n  cooldown_secs: 600\nproviders:\n  a:\n    api_base: {}\n    detect: true\n  b:\n    api_base: {}\n    models: [m]\n  c:\n    api_base: http://127.0.0.1:{}/v1\n    detect: true\n",
        a.url(),
        b.url(),
        MockUpstream::free_port()
    );
    let listen = format!("127.0.0.1:{port}");
    let p = Proxy::start_with(&yaml, &[], &["--listen", &listen]);
    assert_eq!(p.addr, listen);
    p.wait_log("source a is up (1 model)");
    assert_eq!(chat(&p, "m").header("x-routeplane-provider"), Some("b"));
    let cooling = p.get("/routeplane/cooldowns");
    assert_eq!(
        cooling.json()["cooldowns"][0]["target"],
        "a:m",
        "{}",
        cooling.body
    );
    let config = p.dir.path().join("routeplane.yaml");
    // The server was started with `--listen`: it is asked there, not at the default.
    let named = format!("localhost:{port}");
    let out = routeplane()
        .args([
            "route",
            "m",
            "-c",
            config.to_str().unwrap(),
            "--listen",
            &named,
        ])
        .env("HOME", p.dir.path())
        .env_remove("XDG_DATA_HOME")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each target's line, then its failover policy indented under it.
    let lines: Vec<&str> = text.lines().step_by(2).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        text.lines()
            .skip(1)
            .step_by(2)
            .all(|l| l.starts_with("   deadline: ")),
        "{text}"
    );
    // In the order the server tries them: the endpoint cooling down last.
    assert_eq!(
        lines[0],
        format!(
            "1. b:m (chat_completions, {}/chat/completions) active",
            b.url()
        ),
        "{text}"
    );
    let cooling = format!(
        "2. a:m (chat_completions, {}/chat/completions) cooling down until ",
        a.url()
    );
    assert!(
        lines[1].starts_with(&cooling) && lines[1].ends_with(" s left)"),
        "{text}"
    );
    // To the second: a cool-down of seconds would end "until 12:32" at 12:32:34.
    let clock = &lines[1][cooling.len()..];
    let hms: Vec<&str> = clock.split(' ').next().unwrap().split(':').collect();
    assert!(
        hms.len() == 3 && hms.iter().all(|n| n.len() == 2) && clock[8..].starts_with(" UTC ("),
        "{text}"
    );
    let out = routeplane()
        .args(["route", "c:x", "-c", config.to_str().unwrap()])
        .env("HOME", p.dir.path())
        .env_remove("XDG_DATA_HOME")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.lines().next().is_some_and(|l| l.ends_with(") down")),
        "{text}"
    );
}

#[test]
fn one_models_cool_down_is_shown_as_that_models_not_its_providers() {
    // `a` serves `m` badly and `k` well; `b` serves `m`.
    let a = MockUpstream::start(|req| match req.json()["model"].as_str() {
        Some("m") => Reply::json(500, json!({"error": {"message": "boom"}})),
        _ => Reply::json(200, chat_answer("from a")),
    });
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let port = MockUpstream::free_port();
    let yaml = format!(
        "listen: 127.0.0.1:{port}\nproviders:\n  a:\n    api_base: {}\n    models: [m, k]\n  b:\n    api_base: {}\n    models: [m]\nfailover:\n  backoff_ms: 20\n",
        a.url(),
        b.url()
    );
    let p = Proxy::start_with(&yaml, &[], &["--listen", &format!("127.0.0.1:{port}")]);
    assert_eq!(chat(&p, "m").header("x-routeplane-provider"), Some("b"));
    assert_eq!(chat(&p, "a:k").header("x-routeplane-provider"), Some("a"));
    let config = p.dir.path().join("routeplane.yaml");
    let run = |what: &str| {
        let out = routeplane()
            .args([what, "-c", config.to_str().unwrap()])
            .env("HOME", p.dir.path())
            .env_remove("XDG_DATA_HOME")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let row = |text: &str, starts: &str| {
        let line = text.lines().find(|l| l.starts_with(starts));
        line.unwrap_or_else(|| panic!("no {starts:?} row: {text}"))
            .to_string()
    };
    let providers = run("providers");
    let a_row = row(&providers, "a ");
    assert!(a_row.contains("active; m cooling down until "), "{a_row}");
    let models = run("models");
    let cooling: Vec<&str> = models
        .lines()
        .filter(|l| l.contains("cooling down"))
        .collect();
    assert_eq!(cooling.len(), 1, "only a's m: {models}");
    assert!(
        cooling[0].starts_with("m ") && cooling[0].contains(" a "),
        "{models}"
    );
    let k_row = row(&models, "k ");
    assert!(k_row.trim_end().ends_with("active"), "{k_row}");
    let status = p.get("/status.json").json();
    let a_source = &status["sources"][0];
    assert_eq!(a_source["id"], "a", "{status}");
    assert_eq!(a_source["state"], "cooling down");
    let detail = a_source["detail"].as_str().unwrap();
    assert!(detail.starts_with("m for "), "{detail}");
    // Another file listening at the same address is another server's business.
    let other = p
        .dir
        .write("other.yaml", &std::fs::read_to_string(&config).unwrap());
    let out = routeplane()
        .args(["providers", "-c", other.to_str().unwrap()])
        .env("HOME", p.dir.path())
        .output()
        .unwrap();
    let providers = String::from_utf8_lossy(&out.stdout);
    assert!(
        row(&providers, "a ").trim_end().ends_with("active"),
        "{providers}"
    );
}

/// A mock hosted API: `GET /v1/models` lists what `listed` holds, anything else answers.
fn hosted(
    listed: Arc<Mutex<Vec<String>>>,
    answer: Reply,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |req| {
        if req.method == "GET" && req.path.starts_with("/v1/models") {
            let data: Vec<_> = listed
                .lock()
                .unwrap()
                .iter()
                .map(|m| json!({"id": m, "object": "model"}))
                .collect();
            Reply::json(
                200,
                json!({"object": "list", "data": data, "has_more": false}),
            )
        } else {
            answer.clone()
        }
    }
}

#[test]
fn hosted_lists_are_fetched_with_the_key_so_bare_names_reach_them_and_sighup_refreshes() {
    let listed = Arc::new(Mutex::new(vec!["gpt-a".to_string()]));
    let openai = MockUpstream::start(hosted(
        Arc::clone(&listed),
        Reply::json(200, chat_answer("from openai")),
    ));
    let anthropic = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["claude-z".to_string()])),
        crate::support::wire::Wire::Anthropic.reply(false, false),
    ));
    let p = Proxy::start_with(
        &format!(
            "providers:\n  openai:\n    api_base: {}\n  anthropic:\n    api_base: {}\n",
            openai.url(),
            anthropic.url()
        ),
        &[("OPENAI_API_KEY", "sk-o"), ("ANTHROPIC_API_KEY", "sk-a")],
        &[],
    );
    p.wait_log("source openai is up (1 model)");
    p.wait_log("source anthropic is up (1 model)");
    let resp = chat(&p, "gpt-a");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("openai"));
    let resp = p.post(
        "/v1/messages",
        json!({"model": "claude-z", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("anthropic"));
    let listing = openai.requests()[0].clone();
    assert_eq!(
        (listing.method.as_str(), listing.path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(listing.header("authorization"), Some("Bearer sk-o"));
    let listing = anthropic.requests()[0].clone();
    assert_eq!(listing.path, "/v1/models?limit=1000");
    assert_eq!(listing.header("x-api-key"), Some("sk-a"));
    assert!(listing.header("anthropic-version").is_some());
    let all = p.model_ids();
    for want in ["gpt-a", "openai:gpt-a", "claude-z", "anthropic:claude-z"] {
        assert!(all.contains(&want.to_string()), "{want} in {all:?}");
    }

    listed.lock().unwrap().push("gpt-b".into());
    p.signal("HUP");
    p.wait_log("source openai is up (2 models)");
    assert_eq!(
        chat(&p, "gpt-b").header("x-routeplane-provider"),
        Some("openai")
    );
}

/// A hosted source whose key may not list models (403 with `refusal`), answering every
/// chat request with `text`.
fn cannot_list(refusal: Value, text: &'static str) -> MockUpstream {
    MockUpstream::start(move |req| match req.method.as_str() {
        "GET" => Reply::json(403, refusal.clone()),
        _ => Reply::json(200, chat_answer(text)),
    })
}

#[test]
fn a_hosted_model_is_asked_of_its_vendor_by_name_while_its_key_cannot_list_models() {
    // OpenAI's restricted keys may not list models (403, "Missing scopes:
    // api.model.read"), and a listing can fail or be late after a start: a bare
    // `gpt-4o` still goes to `openai`, which has the key, instead of a 404.
    let openai = cannot_list(
        json!({"error": {"message": "You have insufficient permissions for this operation. Missing scopes: api.model.read."}}),
        "from openai",
    );
    let config = format!("providers:\n  openai:\n    api_base: {}\n", openai.url());
    let p = Proxy::start_with(&config, &[("OPENAI_API_KEY", "sk-o")], &[]);
    p.wait_log("cannot list the models of openai");
    let resp = chat(&p, "gpt-4o");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("openai"));
    let sent = &openai.posts()[0];
    assert_eq!(sent.json()["model"], "gpt-4o");
    // Only names of the vendor's families; others are still unknown, and so are
    // Ollama's tagged names for open weights (`gpt-oss:20b`): no vendor's API has one.
    for model in ["llama3", "gpt-oss:20b"] {
        assert_eq!(chat(&p, model).status, 404, "{model}");
    }
    let posts = openai.posts().len();
    assert_eq!(posts, 1, "only `gpt-4o` was asked of OpenAI");
    // Without the key, the 404 says what would serve it.
    let p = Proxy::start(&config);
    for (model, key) in [
        ("gpt-4o", "OPENAI_API_KEY"),
        ("openai/gpt-4o", "OPENROUTER_API_KEY"),
    ] {
        let resp = chat(&p, model);
        assert_eq!(resp.status, 404);
        assert!(resp.body.contains(key), "{}", resp.body);
    }
    // A model Ollama pulled from a host is not an OpenRouter `vendor/model`.
    let resp = chat(&p, "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q8_0");
    assert_eq!(resp.status, 404);
    assert!(!resp.body.contains("OPENROUTER_API_KEY"), "{}", resp.body);
    // With a list, the list decides.
    let listed = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["gpt-a".to_string()])),
        Reply::json(200, chat_answer("from openai")),
    ));
    let p = Proxy::start_with(
        &format!("providers:\n  openai:\n    api_base: {}\n", listed.url()),
        &[("OPENAI_API_KEY", "sk-o")],
        &[],
    );
    p.wait_log("source openai is up (1 model)");
    assert_eq!(chat(&p, "gpt-4o").status, 404);
}

#[test]
fn hosted_lists_are_fetched_again_every_interval() {
    let openai = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["gpt-a".to_string()])),
        Reply::json(200, chat_answer("x")),
    ));
    let _p = Proxy::start_with(
        &format!(
            "detect:\n  hosted_interval_secs: 0.2\nproviders:\n  openrouter:\n    api_base: {}\n",
            openai.url()
        ),
        &[("ROUTEPLANE_OPENROUTER_API_KEY", "sk-r")],
        &[],
    );
    assert!(wait_until(Duration::from_secs(10), || openai.count() >= 3));
    assert!(
        openai
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer sk-r"))
    );
}

/// A config pointing the built-in `mistral` at `up`, with the local built-ins not asked:
/// a server this machine runs adds no model (an Ollama-style name must stay unknown).
fn mistral_at(up: &MockUpstream) -> String {
    let locals: String = ["ollama", "vllm", "lmstudio", "llamacpp"]
        .iter()
        .map(|id| format!("  {id}:\n    detect: false\n"))
        .collect();
    format!(
        "providers:\n  mistral:\n    api_base: {}\n{locals}",
        up.url()
    )
}

#[test]
fn mistral_is_asked_with_its_key_and_its_list_joins_the_models() {
    let up = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec![
            "mistral-small-latest".to_string(),
            "codestral-latest".to_string(),
        ])),
        Reply::json(200, chat_answer("from mistral")),
    ));
    let p = Proxy::start_with(&mistral_at(&up), &[("MISTRAL_API_KEY", "sk-m")], &[]);
    p.wait_log("source mistral is up (2 models)");
    let listing = up.requests()[0].clone();
    assert_eq!(
        (listing.method.as_str(), listing.path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(listing.header("authorization"), Some("Bearer sk-m"));
    let resp = chat(&p, "mistral:mistral-small-latest");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("mistral"));
    let sent = &up.posts()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-m"));
    assert_eq!(sent.json()["model"], "mistral-small-latest");
    let all = p.model_ids();
    for want in [
        "mistral-small-latest",
        "mistral:mistral-small-latest",
        "codestral-latest",
        "mistral:codestral-latest",
    ] {
        assert!(all.contains(&want.to_string()), "{want} in {all:?}");
    }
}

#[test]
fn a_bare_mistral_name_is_asked_of_mistral_while_its_key_cannot_list_models() {
    let up = cannot_list(json!({"message": "Forbidden"}), "from mistral");
    let p = Proxy::start_with(&mistral_at(&up), &[("MISTRAL_API_KEY", "sk-m")], &[]);
    p.wait_log("cannot list the models of mistral");
    let resp = chat(&p, "codestral-latest");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("mistral"));
    let sent = &up.posts()[0];
    assert_eq!(sent.header("authorization"), Some("Bearer sk-m"));
    assert_eq!(sent.json()["model"], "codestral-latest");
    // An Ollama-style name with a tag is a local server's, never asked of Mistral.
    assert_eq!(chat(&p, "mistral-small3.1:24b").status, 404);
    assert_eq!(up.posts().len(), 1);
}

#[test]
fn a_bare_mistral_name_without_its_key_gets_a_404_naming_the_key() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("from mistral")));
    let p = Proxy::start(&mistral_at(&up));
    let resp = chat(&p, "codestral-latest");
    assert_eq!(resp.status, 404, "{}", resp.body);
    let msg = resp.error_message();
    assert!(
        msg.contains(
            "`codestral-latest` looks like a Mistral model: set MISTRAL_API_KEY or \
             ROUTEPLANE_MISTRAL_API_KEY"
        ),
        "{msg}"
    );
    // A tagged name is a local server's to pull, not a key's to set.
    let msg = chat(&p, "mistral-small3.1:24b").error_message();
    assert!(!msg.contains("MISTRAL_API_KEY"), "{msg}");
    assert_eq!(up.count(), 0, "nothing was sent upstream");
}

/// Writes a token file holding `entries` (`key`, access, refresh, seconds left).
fn token_file(dir: &crate::support::Dir, entries: &[(&str, &str, &str, i64)]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let creds: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, access, refresh, left)| {
            (
                key.to_string(),
                json!({"access_token": access, "refresh_token": refresh, "expires_at": now + left}),
            )
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let path = dir.write(
        "data/auth.json",
        &json!({"version": 1, "credentials": creds}).to_string(),
    );
    path.to_str().unwrap().to_string()
}

#[test]
fn a_subscription_list_serves_only_when_named_never_through_a_bare_name() {
    let up = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["claude-sub".to_string()])),
        crate::support::wire::Wire::Anthropic.reply(false, false),
    ));
    let dir = crate::support::Dir::new();
    let auth_file = token_file(&dir, &[("anthropic", "at-live", "rt", 86_400)]);
    let p = Proxy::start_with(
        &format!("providers:\n  anthropic:\n    api_base: {}\n", up.url()),
        &[("ROUTEPLANE_AUTH_FILE", &auth_file)],
        &[],
    );
    p.wait_log("source anthropic is up (1 model)");
    assert_eq!(
        up.requests()[0].header("authorization"),
        Some("Bearer at-live"),
        "listed with the login's token"
    );
    assert_eq!(
        chat(&p, "claude-sub").status,
        404,
        "no bare cascade to a plan"
    );
    let resp = chat(&p, "anthropic:claude-sub");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let all = p.model_ids();
    assert!(all.contains(&"anthropic:claude-sub".to_string()), "{all:?}");
    assert!(!all.contains(&"claude-sub".to_string()), "{all:?}");
    // `routeplane models` shows the id a client can name, as `/v1/models` does.
    let config = dir.write(
        "routeplane.yaml",
        &format!("providers:\n  anthropic:\n    api_base: {}\n", up.url()),
    );
    let table = cli(
        &dir,
        &[("ROUTEPLANE_AUTH_FILE", &auth_file)],
        &["models", "-c", config.to_str().unwrap()],
    );
    let first_cells: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(first_cells.contains(&"anthropic:claude-sub"), "{table}");
    assert!(!first_cells.contains(&"claude-sub"), "{table}");
}

fn cli(dir: &crate::support::Dir, env: &[(&str, &str)], args: &[&str]) -> String {
    crate::support::stdout_of(
        routeplane()
            .args(args)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .envs(env.iter().copied()),
    )
}

#[test]
fn a_refresh_refused_for_good_means_login_needed_until_a_new_login() {
    let oauth = crate::support::oauth::MockOAuth::start(3600);
    let up = MockUpstream::always(crate::support::wire::Wire::Anthropic.reply(false, false));
    let dir = crate::support::Dir::new();
    // Expiring within the refresh margin, with a refresh token the server revoked.
    let auth_file = token_file(&dir, &[("anthropic", "at-old", "rt-stale", 60)]);
    let yaml = format!(
        "providers:\n  anthropic:\n    api_base: {}\n    models: [claude-x]\n{}",
        up.url(),
        oauth.auth_block("https://example.invalid/callback")
    );
    let config = dir.write("routeplane.yaml", &yaml);
    let p = Proxy::start_with(&yaml, &[("ROUTEPLANE_AUTH_FILE", &auth_file)], &[]);
    let ask = || {
        p.post(
            "/v1/messages",
            json!({"model": "anthropic:claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    for _ in 0..2 {
        let resp = ask();
        assert_eq!(resp.status, 401, "{}", resp.body);
        assert_eq!(resp.json()["error"]["type"], "authentication_error");
        let msg = resp.error_message();
        assert!(
            msg.contains("login needed") && msg.ends_with("run `routeplane login anthropic`"),
            "{msg}"
        );
    }
    let token_calls = oauth
        .requests()
        .iter()
        .filter(|r| r.path == "/token")
        .count();
    assert_eq!(token_calls, 1, "no refresh after the refusal");
    assert_eq!(up.count(), 0);
    let env = [("ROUTEPLANE_AUTH_FILE", auth_file.as_str())];
    let v: serde_json::Value = serde_json::from_str(&cli(
        &dir,
        &env,
        &["providers", "--json", "-c", config.to_str().unwrap()],
    ))
    .unwrap();
    let row = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "anthropic")
        .unwrap();
    assert_eq!(
        (row["auth"].as_str(), row["state"].as_str()),
        (Some("oauth"), Some("login needed"))
    );

    // A new login (the file changes) ends it.
    token_file(&dir, &[("anthropic", "at-new", "rt-0", 60)]);
    let resp = ask();
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(oauth.refreshes(), 1);
}

#[test]
fn providers_lists_each_login_with_what_is_true_of_it() {
    let up = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["gpt-l".to_string()])),
        Reply::json(200, chat_answer("x")),
    ));
    let dir = crate::support::Dir::new();
    let auth_file = token_file(
        &dir,
        &[
            ("openai-codex", "at-1", "rt-1", 86_400),
            ("anthropic#work", "at-2", "rt-2", 86_400),
        ],
    );
    let config = dir.write(
        "routeplane.yaml",
        &format!(
            "providers:\n  openai:\n    api_base: {}\n  mine:\n    api_base: {}\n    api_key: k\n",
            up.url(),
            up.url()
        ),
    );
    let env = [
        ("ROUTEPLANE_AUTH_FILE", auth_file.as_str()),
        ("ROUTEPLANE_OPENAI_API_KEY", "sk-x"),
    ];
    let cfg = config.to_str().unwrap();
    let rows = |dir: &crate::support::Dir| -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&cli(
            dir,
            &env,
            &["providers", "--json", "-c", cfg],
        ))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
    };
    let v = rows(&dir);
    let row = |id: &str| {
        v.iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {v:?}"))
    };
    assert_eq!(
        (
            row("openai")["auth"].clone(),
            row("openai")["key_variable"].clone(),
            row("openai")["state"].clone()
        ),
        (
            json!("key"),
            json!("ROUTEPLANE_OPENAI_API_KEY"),
            json!("active")
        )
    );
    assert_eq!(
        (
            row("openrouter")["key_variable"].clone(),
            row("openrouter")["state"].clone()
        ),
        (json!("OPENROUTER_API_KEY"), json!("no key"))
    );
    assert_eq!(
        (
            row("mine")["auth"].clone(),
            row("mine")["key_in_config"].clone()
        ),
        (json!("key"), json!(true))
    );
    assert_eq!(row("anthropic")["state"], "no key");
    for id in ["anthropic#work", "openai-codex"] {
        assert_eq!(row(id)["auth"], "oauth");
        let state = row(id)["state"].as_str().unwrap().to_string();
        assert!(
            state.starts_with("logged in until 2") && state.ends_with(" UTC"),
            "{id}: {state}"
        );
    }
    assert_eq!(row("ollama")["auth"], "none");
    let table = cli(&dir, &env, &["providers", "-c", cfg]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("anthropic#work ") && l.contains(" oauth ")),
        "{table}"
    );
    assert!(table.contains("key (ROUTEPLANE_OPENAI_API_KEY)"), "{table}");

    let models: serde_json::Value =
        serde_json::from_str(&cli(&dir, &env, &["models", "--json", "-c", cfg])).unwrap();
    assert!(
        models.as_array().unwrap().contains(
            &json!({"id": "gpt-l", "provider": "openai", "source": "listed", "state": "active"})
        ),
        "{models}"
    );

    cli(&dir, &env, &["logout", "openai-codex"]);
    let v = rows(&dir);
    let codex = v.iter().find(|r| r["id"] == "openai-codex").unwrap();
    assert_eq!(codex["state"], "not logged in");
}

#[test]
fn overriding_device_url_alone_moves_the_whole_device_flow() {
    let oauth = MockUpstream::start(|req| match req.path.as_str() {
        "/api/accounts/deviceauth/usercode" => Reply::json(
            200,
            json!({"device_auth_id": "dev-1", "user_code": "WXYZ-0000", "interval": "0"}),
        ),
        "/api/accounts/deviceauth/token" => Reply::json(
            200,
            json!({"authorization_code": "code", "code_verifier": "v", "code_challenge": "c"}),
        ),
        "/oauth/token" => Reply::json(
            200,
            json!({"access_token": "at", "refresh_token": "rt", "expires_in": 3600, "id_token": crate::support::oauth::id_token("acct")}),
        ),
        _ => Reply::json(418, json!({"error": "unexpected path"})),
    });
    let origin = format!("http://127.0.0.1:{}", oauth.port());
    let dir = crate::support::Dir::new();
    let config = dir.write(
        "routeplane.yaml",
        &format!(
            "providers:\n  openai-codex:\n    auth:\n      device_url: {origin}/api/accounts/deviceauth/usercode\n"
        ),
    );
    let out = routeplane()
        .args([
            "login",
            "openai-codex",
            "--device",
            "-c",
            config.to_str().unwrap(),
        ])
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("auth.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "open {origin}/codex/device and enter the code WXYZ-0000"
        )),
        "{err}"
    );
    let paths: Vec<String> = oauth.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api/accounts/deviceauth/usercode",
            "/api/accounts/deviceauth/token",
            "/oauth/token"
        ]
    );
    let exchange = String::from_utf8_lossy(&oauth.requests()[2].body).into_owned();
    assert!(
        exchange.contains("deviceauth%2Fcallback") && exchange.contains("127.0.0.1"),
        "the device redirect is on the same origin: {exchange}"
    );
}

#[test]
fn a_browser_login_without_a_callback_points_to_device() {
    use std::io::BufRead;
    let port = MockUpstream::free_port();
    let dir = crate::support::Dir::new();
    let config = dir.write(
        "routeplane.yaml",
        &format!(
            "providers:\n  openai-codex:\n    auth:\n      authorize_url: http://127.0.0.1:9/authorize\n      redirect_uri: http://localhost:{port}/auth/callback\n"
        ),
    );
    // A desktop's opener takes the URL (and opens nothing: this is a test), but no
    // callback comes. Without a browser opened and without a terminal, the login says
    // more, and at once (`login::headless::a_browser_login_without_a_terminal_…`).
    let mut child = routeplane()
        .args(["login", "openai-codex", "-c", config.to_str().unwrap()])
        .env("PATH", crate::support::browser::opener(&dir, 0))
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("auth.json"))
        .env("ROUTEPLANE_TEST_LOGIN_HINT_SECS", "0.5")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
        if seen.iter().any(|l| l.contains("--device")) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let waiting = seen
        .iter()
        .position(|l| l.contains("waiting for the browser"));
    let hint = seen.iter().position(|l| {
        // One sentence, as a person reads it: no source indentation inside it.
        l.contains(
            "No browser on this machine? Press Ctrl-C and run \
             `routeplane login openai-codex --device`: it works without a browser here \
             (you approve on another device).",
        )
    });
    assert!(
        waiting.is_some() && hint > waiting,
        "the hint follows the wait: {seen:#?}"
    );
}

#[test]
fn a_login_made_after_a_key_listed_the_models_ends_their_bare_names() {
    let up = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["claude-z".to_string()])),
        crate::support::wire::Wire::Anthropic.reply(false, false),
    ));
    let dir = crate::support::Dir::new();
    let auth_file = dir.path().join("data/auth.json");
    let p = Proxy::start_with(
        &format!("providers:\n  anthropic:\n    api_base: {}\n", up.url()),
        &[
            ("ANTHROPIC_API_KEY", "sk-a"),
            ("ROUTEPLANE_AUTH_FILE", auth_file.to_str().unwrap()),
        ],
        &[],
    );
    p.wait_log("source anthropic is up (1 model)");
    assert_eq!(chat(&p, "claude-z").status, 200, "listed with the key");
    token_file(&dir, &[("anthropic", "at-plan", "rt", 86_400)]);
    let bare = chat(&p, "claude-z");
    assert_eq!(bare.status, 404, "the plan is not spent on a bare name");
    // The 404 says which name reaches the model.
    let message = bare.error_message();
    assert!(
        message.ends_with(
            "`anthropic` lists `claude-z` through a subscription login, which a bare name never uses: name it `anthropic:claude-z`"
        ),
        "{message}"
    );
    assert_eq!(chat(&p, "anthropic:claude-z").status, 200);
    let last = up.requests().pop().unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer at-plan"));
}

#[test]
fn an_upstream_401_whose_refresh_is_refused_asks_the_client_to_log_in() {
    let oauth = crate::support::oauth::MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::json(
        401,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "OAuth token has been revoked"}}),
    ));
    let dir = crate::support::Dir::new();
    // A token that looks fresh, but the upstream and the token endpoint both refuse it.
    let auth_file = token_file(&dir, &[("anthropic", "at-revoked", "rt-revoked", 86_400)]);
    let yaml = format!(
        "providers:\n  anthropic:\n    api_base: {}\n    detect: false\n    models: [claude-x]\n{}",
        up.url(),
        oauth.auth_block("https://example.invalid/callback")
    );
    let p = Proxy::start_with(&yaml, &[("ROUTEPLANE_AUTH_FILE", &auth_file)], &[]);
    let resp = p.post(
        "/v1/messages",
        json!({"model": "anthropic:claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401, "{}", resp.body);
    let msg = resp.error_message();
    assert!(
        msg.contains("login needed") && msg.ends_with("run `routeplane login anthropic`"),
        "{msg}"
    );
    let posts = up.posts().len();
    assert_eq!(posts, 1, "not retried with the refused login");
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "anthropic:claude-x", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401);
    assert_eq!(
        up.posts().len(),
        1,
        "a login known to be refused is not sent at all"
    );
}

/// OpenAI's answer to a key it does not know.
fn wrong_key() -> Reply {
    Reply::json(
        401,
        json!({"error": {"message": "Incorrect API key provided: sk-bad.", "type": "invalid_request_error", "code": "invalid_api_key"}}),
    )
}

#[test]
fn a_key_the_upstream_refuses_is_key_refused_until_it_is_accepted_again() {
    // A key OpenAI answers 401 to was `active` in `providers`, `up` on the status page
    // and 1 in `routeplane_provider_up`.
    let openai =
        MockUpstream::start(
            |req| match (req.header("authorization"), req.method.as_str()) {
                (Some("Bearer sk-good"), "GET") => {
                    Reply::json(200, json!({"object": "list", "data": [{"id": "gpt-4o"}]}))
                }
                (Some("Bearer sk-good"), _) => Reply::json(200, chat_answer("from openai")),
                _ => wrong_key(),
            },
        );
    let config = format!("providers:\n  openai:\n    api_base: {}\n", openai.url());
    let dir = crate::support::Dir::new();
    dir.write("routeplane.yaml", &crate::support::proxy::hermetic(&config));
    let state = |key: &str| {
        let out = cli(&dir, &[("OPENAI_API_KEY", key)], &["providers", "--json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let openai = v.as_array().unwrap().iter().find(|p| p["id"] == "openai");
        openai.unwrap()["state"].as_str().unwrap().to_string()
    };
    assert_eq!(state("sk-bad"), "key refused (401)");
    assert_eq!(state("sk-good"), "active");
    // Refused at the listing: the three views agree.
    let p = Proxy::start_with(&config, &[("OPENAI_API_KEY", "sk-bad")], &[]);
    p.wait_log("the key of openai (OPENAI_API_KEY) was refused (401)");
    let s = p.source_status("openai");
    assert_eq!(
        (&s["state"], &s["up"], &s["detail"]),
        (
            &json!("key refused (401)"),
            &json!(false),
            &json!("check OPENAI_API_KEY")
        ),
        "{s}"
    );
    let up = r#"routeplane_provider_up{provider="openai"}"#;
    assert_eq!(p.metric(up).as_deref(), Some("0"));
    assert_eq!(chat(&p, "openai:gpt-4o").status, 401);
    assert_eq!(p.source_status("openai")["state"], "key refused (401)");

    // Refused at a request: a key that listed well and is then revoked.
    let answer = Arc::new(std::sync::atomic::AtomicU16::new(200));
    let said = Arc::clone(&answer);
    let revoked = MockUpstream::start(move |req| match req.method.as_str() {
        "GET" => Reply::json(200, json!({"object": "list", "data": [{"id": "gpt-4o"}]})),
        _ => match said.load(Ordering::SeqCst) {
            200 => Reply::json(200, chat_answer("from openai")),
            401 => wrong_key(),
            status => Reply::json(
                status,
                json!({"error": {"message": "Your input was flagged by moderation."}}),
            ),
        },
    });
    let config = format!("providers:\n  openai:\n    api_base: {}\n", revoked.url());
    let p = Proxy::start_with(&config, &[("OPENAI_API_KEY", "sk-good")], &[]);
    p.wait_log("source openai is up (1 model)");
    assert_eq!(p.source_status("openai")["state"], "up");
    // A 403 may refuse one request (a flagged prompt, a model the key may not use): the
    // key stays as it was.
    answer.store(403, Ordering::SeqCst);
    assert_eq!(chat(&p, "gpt-4o").status, 403);
    assert_eq!(p.source_status("openai")["state"], "up");
    answer.store(401, Ordering::SeqCst);
    assert_eq!(chat(&p, "gpt-4o").status, 401);
    p.wait_log("the key of openai (OPENAI_API_KEY) was refused (401)");
    assert_eq!(p.source_status("openai")["state"], "key refused (401)");
    assert_eq!(p.metric(up).as_deref(), Some("0"));
    // A later success clears it.
    answer.store(200, Ordering::SeqCst);
    assert_eq!(chat(&p, "gpt-4o").status, 200);
    p.wait_log("the key of openai (OPENAI_API_KEY) is accepted again");
    assert_eq!(p.source_status("openai")["state"], "up");
    assert_eq!(p.metric(up).as_deref(), Some("1"));

    // A 403 to the model list, which asks nothing of a prompt or a model, refuses the
    // key; but a restricted key that may not list models (OpenAI: "Missing scopes")
    // serves requests: it is no refused key.
    let disabled = cannot_list(
        json!({"error": {"message": "This API key has been disabled."}}),
        "from openai",
    );
    let config = format!("providers:\n  openai:\n    api_base: {}\n", disabled.url());
    dir.write("routeplane.yaml", &crate::support::proxy::hermetic(&config));
    assert_eq!(state("sk-disabled"), "key refused (403)");
    let restricted = cannot_list(
        json!({"error": {"message": "You have insufficient permissions for this operation. Missing scopes: api.model.read."}}),
        "from openai",
    );
    let config = format!(
        "providers:\n  openai:\n    api_base: {}\n",
        restricted.url()
    );
    dir.write("routeplane.yaml", &crate::support::proxy::hermetic(&config));
    assert_eq!(state("sk-restricted"), "active");
}

#[test]
fn a_bare_name_only_a_block_of_ones_own_could_serve_is_told_how_to_reach_it() {
    // Two servers of one's own given a key: one without a model listing, asked for one
    // (it names no model), and a gateway named only by a virtual model's endpoint.
    let up = MockUpstream::start(|req| match req.path.as_str() {
        "/v1/models" => Reply::json(404, json!({"error": {"message": "no such path"}})),
        _ => Reply::json(200, chat_answer("served")),
    });
    let p = Proxy::start(&format!(
        "providers:\n  selfhosted:\n    api_base: {base}\n    api_key: sk-own\n  gateway:\n    \
         api_base: {base}\n    api_key: sk-own\nmodels:\n  smart:\n    endpoints: [gateway:gpt-4o]\n",
        base = up.url()
    ));
    // The endpoint is listed as it is reached, with its provider; the bare name is not.
    let ids = p.model_ids();
    assert!(ids.contains(&"gateway:gpt-4o".to_string()), "{ids:?}");
    assert!(!ids.contains(&"gpt-4o".to_string()), "{ids:?}");
    assert_eq!(p.get("/v1/models/gateway:gpt-4o").status, 200);
    assert_eq!(chat(&p, "gateway:gpt-4o").status, 200);

    // The bare name an endpoint names: the names that reach it, before any vendor's key.
    let resp = chat(&p, "gpt-4o");
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert!(
        resp.error_message().ends_with(
            ". `gpt-4o` is named only as an endpoint of the virtual model `smart`, and a bare \
             name reaches only what a provider declares or lists: name `smart` or \
             `gateway:gpt-4o`, or declare `gpt-4o` under `models:` of `gateway`"
        ),
        "{}",
        resp.body
    );
    // A name nothing names: the blocks that list no models, which may serve it.
    let unlisted = "`selfhosted` and `gateway` list no models, so no bare name reaches \
                    them: if one serves `qwen3-coder`, name it `selfhosted:qwen3-coder` or \
                    `gateway:qwen3-coder`, or declare `qwen3-coder` under its block's `models:`";
    let resp = chat(&p, "qwen3-coder");
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert!(
        resp.error_message().ends_with(&format!(". {unlisted}")),
        "{}",
        resp.body
    );
    // Beside a vendor's key for a name of its own.
    let resp = chat(&p, "gpt-4.1");
    let told = resp.error_message();
    assert!(
        told.contains("`gpt-4.1` looks like an OpenAI model: set OPENAI_API_KEY")
            && told.ends_with(&unlisted.replace("qwen3-coder", "gpt-4.1")),
        "{told}"
    );
    assert_eq!(up.posts().len(), 1, "only the pinned request went upstream");
}
