//! Local servers: one too small for the prompt, one that went down and came back, and
//! what `route` shows of detected models and their cool-downs.

use super::*;

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
