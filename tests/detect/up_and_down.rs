//! A local source followed up and down: one that starts later joins, one that goes down
//! leaves the cascade but stays pinnable, one whose listing fails but that chats stays up.

use super::*;

#[test]
fn a_source_that_starts_later_becomes_active() {
    let port = MockUpstream::free_port();
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.3\nproviders:\n  ollama:\n    api_base: http://127.0.0.1:{port}/v1\n"
    ));
    assert_eq!(ask(&p, "llama3.1:8b").status, 404);
    let _up = MockUpstream::start_on(port, ollama(&["llama3.1:8b"]));
    assert!(wait_until(Duration::from_secs(5), || ask(
        &p,
        "llama3.1:8b"
    )
    .status
        == 200));
    p.wait_log("source ollama is up (1 model)");
}

#[test]
fn once_stopping_no_source_is_probed_or_logged() {
    // A source that came up during the grace period was logged "is up" between the
    // stopping lines, as if the server were still taking requests.
    let port = MockUpstream::free_port();
    let hangs = MockUpstream::always(Reply::Hang(Duration::from_secs(8)));
    let mut p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.2\nproviders:\n  ollama:\n    api_base: http://127.0.0.1:{port}/v1\n  \
         local:\n    api_base: {}\n    models: [m]\n",
        hangs.url()
    ));
    let client = crate::support::proxy::Client {
        addr: p.addr.clone(),
    };
    // A request that holds the stop for its grace period.
    let waiting = std::thread::spawn(move || {
        client.post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": []}),
        )
    });
    assert!(wait_until(Duration::from_secs(5), || hangs.count() == 1));
    p.signal("TERM");
    p.wait_log("stopping: no new connections");
    let up = MockUpstream::start_on(port, ollama(&["llama3.1:8b"]));
    // Ten probe intervals.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(up.count(), 0, "probed while stopping");
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(0));
    let log = p.log();
    assert!(!log.iter().any(|l| l.contains("source ollama")), "{log:#?}");
    let _ = waiting.join();
}

#[test]
fn a_source_that_goes_down_leaves_the_cascade_but_stays_pinnable() {
    let a = MockUpstream::start(ollama(&["m"]));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.3\nproviders:\n  a:\n    api_base: {}\n    detect: true\n  b:\n    api_base: {}\n    models: [m]\n",
        a.url(),
        b.url()
    ));
    p.wait_log("source a is up (1 model)");
    assert_eq!(ask(&p, "m").header("x-routeplane-provider"), Some("a"));
    drop(a);
    p.wait_log("source a is down");
    let resp = ask(&p, "m");
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(
        resp.header("x-routeplane-attempts"),
        Some("1"),
        "a is skipped, not tried"
    );
    let resp = ask(&p, "a:m");
    assert_eq!(
        resp.status, 502,
        "pinned requests still go to a: {}",
        resp.body
    );
}

#[test]
fn a_server_whose_model_list_fails_but_that_chats_is_up_and_keeps_its_models() {
    // Its list answering 500 made it `down`: the status page and `providers` said so,
    // and a request for a model it had listed got "source ollama is down".
    let failing = Arc::new(AtomicBool::new(false));
    let listed = ollama(&["m"]);
    let fails = Arc::clone(&failing);
    let up = MockUpstream::start(move |req| match req.path.as_str() {
        "/api/tags" | "/v1/models" if fails.load(Ordering::SeqCst) => {
            Reply::json(500, json!({"error": "listing broke"}))
        }
        _ => listed(req),
    });
    let config = format!(
        "detect:\n  interval_secs: 0.3\n  default_ports: false\nproviders:\n  ollama:\n    \
         api_base: {}\n",
        up.url()
    );
    let p = Proxy::start(&config);
    p.wait_log("source ollama is up (1 model)");
    failing.store(true, Ordering::SeqCst);
    let line = p.wait_log("source ollama is up, but its model list failed: ");
    let why = line
        .split_once("its model list failed: ")
        .map_or("", |(_, why)| why);
    assert!(why.contains("answered 500: listing broke"), "{line}");
    let resp = ask(&p, "m");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("ollama"));
    let s = p.source_status("ollama");
    assert_eq!((&s["state"], &s["up"]), (&json!("up"), &json!(true)), "{s}");
    assert_eq!(s["detail"], format!("model list failed: {why}"), "{s}");
    drop(p);
    // The command line says the same, asked once with the list failing.
    let dir = Dir::new();
    dir.write("routeplane.yaml", &config);
    let v: serde_json::Value = serde_json::from_str(&cli(&dir, &["providers", "--json"])).unwrap();
    let row = v.as_array().unwrap().iter().find(|p| p["id"] == "ollama");
    let state = row.unwrap()["state"].as_str().unwrap().to_string();
    assert!(
        state.starts_with("up, model list failed: ") && state.contains("answered 500"),
        "{state}"
    );
    // Pinned, it is served.
    let p = Proxy::start(&config);
    p.wait_log("local servers: ollama (model list failed)");
    assert_eq!(ask(&p, "ollama:m").status, 200);
}

#[test]
fn a_model_that_only_embeds_is_told_down_with_its_source_and_never_listed_to_chat() {
    // What a down source served kept only its chat models: a request naming its embedding
    // model (which the server answers for itself) was told "unknown model", not that the
    // source is down.
    let listing_fails = Arc::new(AtomicBool::new(false));
    let fails = Arc::clone(&listing_fails);
    let ollama = move |req: &Recorded| match req.path.as_str() {
        "/api/tags" | "/v1/models" if fails.load(Ordering::SeqCst) => {
            Reply::json(500, json!({"error": "listing broke"}))
        }
        "/api/tags" => Reply::json(
            200,
            json!({"models": [
                {"name": "llama3.1:latest", "model": "llama3.1:latest", "details": {"family": "llama"}},
                {"name": "nomic-embed-text:latest", "model": "nomic-embed-text:latest", "details": {"family": "nomic-bert"}},
            ]}),
        ),
        _ => Reply::json(200, chat_answer("from ollama")),
    };
    let ollama = Arc::new(ollama);
    let serve = |port| {
        let ollama = Arc::clone(&ollama);
        MockUpstream::start_on(port, move |req| ollama(req))
    };
    let port = MockUpstream::free_port();
    let up = serve(port);
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.3\n  default_ports: false\nproviders:\n  ollama:\n    \
         api_base: http://127.0.0.1:{port}/v1\n"
    ));
    p.wait_log("source ollama is up (1 model, and 1 to embed with, not listed)");
    let chat_ids = ["llama3.1:latest", "ollama:llama3.1:latest"];
    assert_eq!(listed_ids(&p), chat_ids);
    drop(up);
    p.wait_log("source ollama is down");
    assert!(listed_ids(&p).iter().all(|id| !id.contains("nomic")));
    // The same answer for either model it served: its source is down.
    let chat = ask(&p, "llama3.1");
    let embedded = ask(&p, "nomic-embed-text");
    assert_eq!(
        (chat.status, embedded.status),
        (503, 503),
        "{}",
        embedded.body
    );
    let message = |r: &crate::support::proxy::Resp| r.json()["error"]["message"].clone();
    let told = message(&chat)
        .as_str()
        .unwrap()
        .replace("llama3.1", "nomic-embed-text");
    assert_eq!(message(&embedded), json!(told));
    // Back with a list that fails, it serves what it listed, each as what it is.
    listing_fails.store(true, Ordering::SeqCst);
    let up = serve(port);
    p.wait_log("source ollama is up, but its model list failed");
    assert_eq!(listed_ids(&p), chat_ids);
    let resp = ask(&p, "nomic-embed-text");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.header("x-routeplane-model"),
        Some("nomic-embed-text:latest")
    );
    let sent = up.posts();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json()["model"], "nomic-embed-text:latest");
}
