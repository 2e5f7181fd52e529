//! `/metrics` and `/status.json`: a key when keys are set, today's totals across a
//! restart, the sources listed.

use super::*;

#[test]
fn metrics_and_status_want_a_key_when_keys_are_set() {
    let up = chat_mock();
    let p = Proxy::start(&format!(
        "skip_auth: false\nkeys: [sekrit]\nproviders:\n  good:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    for path in ["/metrics", "/status.json"] {
        assert_eq!(p.get(path).status, 401, "{path} without a key");
        let wrong = p.send("GET", path, &[("Authorization", "Bearer nope")], b"");
        assert_eq!(wrong.status, 401, "{path} with a wrong key");
        let ok = p.send("GET", path, &[("Authorization", "Bearer sekrit")], b"");
        assert_eq!(ok.status, 200, "{path} with the key");
        // Anthropic's SDKs send the key as `x-api-key`.
        let ok = p.send("GET", path, &[("X-Api-Key", "sekrit")], b"");
        assert_eq!(ok.status, 200, "{path} with the key as x-api-key");
        let wrong = p.send("GET", path, &[("x-api-key", "nope")], b"");
        assert_eq!(wrong.status, 401, "{path} with a wrong x-api-key");
    }
    // The page itself holds no data: it loads, and asks for a key.
    let page = p.send("GET", "/", &[("Accept", "text/html")], b"");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("sessionStorage") && page.body.contains("/status.json"));
    assert!(
        page.body.len() < 30 * 1024,
        "the page is {} bytes",
        page.body.len()
    );
    for accept in [
        "application/json",
        "application/json, */*;q=0.1",
        "text/plain",
    ] {
        let json = p.send("GET", "/", &[("Accept", accept)], b"");
        assert_eq!(json.json(), json!({"status": "ok"}), "Accept: {accept}");
    }
    let curl = p.send("GET", "/", &[("Accept", "*/*")], b"");
    assert!(curl.body.starts_with("<!doctype html>"), "{}", curl.body);
    assert_eq!(p.get("/health").json(), json!({"status": "ok"}));
    // HEAD / answers what GET / would for the same Accept, without the body.
    for (accept, get) in [
        ("text/html", &page),
        (
            "application/json",
            &p.send("GET", "/", &[("Accept", "application/json")], b""),
        ),
    ] {
        let head = p.raw(&format!(
            "HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        ));
        assert!(
            head.starts_with("HTTP/1.1 200 "),
            "HEAD / ({accept}): {head}"
        );
        assert!(
            head.ends_with("\r\n\r\n"),
            "HEAD / ({accept}) has no body: {head:?}"
        );
        let lower = head.to_ascii_lowercase();
        let content_type = get.header("content-type").unwrap().to_ascii_lowercase();
        assert!(
            lower.contains(&format!("content-type: {content_type}\r\n")),
            "{head}"
        );
        assert!(
            lower.contains(&format!("content-length: {}\r\n", get.body.len())),
            "{head}"
        );
    }
}

#[test]
fn todays_totals_and_recent_requests_survive_a_restart() {
    let up = chat_mock();
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    // A line from another day comes first: listed among the recent, not in today's totals.
    let old = r#"{"time":"2020-01-01T10:00:00.000Z","inbound":"chat_completions","model":"m","served_by":"good:m","status":200,"stream":false,"attempts":1,"rescues":0,"failed":[],"ttfb_ms":1.0,"ttft_ms":1.0,"total_ms":2.0,"tokens":{"input":1000,"output":1000,"cached_input":null,"reasoning":null}}"#;
    std::fs::write(&ledger, format!("{old}\n")).unwrap();
    let yaml = format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n",
        up.url(),
        ledger.display()
    );
    let first = Proxy::start(&yaml);
    first.post(
        "/v1/chat/completions",
        Wire::Chat.request("m", false, false),
    );
    assert_eq!(ledger_lines(&ledger, 2).len(), 2);
    drop(first);

    let second = Proxy::start(&yaml);
    let seeded = wait_until(Duration::from_secs(10), || {
        second.get("/status.json").json()["recent"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    });
    assert!(seeded, "{}", second.get("/status.json").body);
    let s = second.get("/status.json").json();
    assert_eq!(s["sources"][0]["today"]["requests"], 1, "{s}");
    assert_eq!(s["sources"][0]["today"]["input_tokens"], 5, "{s}");
    assert_eq!(
        s["recent"][1]["time"], "2020-01-01T10:00:00.000Z",
        "oldest last"
    );
    // Counters are per process: Prometheus sees a restart as a reset.
    assert!(
        !second
            .get("/metrics")
            .body
            .contains("routeplane_requests_total{")
    );
}

#[test]
fn sources_show_logins_until_they_expire_and_leave_out_unused_builtins() {
    let up = chat_mock();
    let p = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    // A ChatGPT login, as `routeplane login openai-codex` stores it (read when it changes).
    let login = json!({"version": 1, "credentials": {"openai-codex": {
        "access_token": "at-1", "refresh_token": "rt-1", "expires_at": 4102444800u64}}});
    std::fs::create_dir_all(p.dir.path().join("data/routeplane")).unwrap();
    // Whole at once, by a rename, as the login stores it: a server that read the file
    // between its creation and its write kept it as empty (flaky under load).
    let written = p
        .dir
        .write("data/routeplane/auth.json.tmp", &login.to_string());
    std::fs::rename(&written, p.dir.path().join("data/routeplane/auth.json")).unwrap();
    let s = p.get("/status.json").json();
    let sources = s["sources"].as_array().unwrap();
    let ids: Vec<&str> = sources.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["good", "openai-codex"], "{s}");
    assert_eq!(sources[1]["state"], "logged in");
    assert_eq!(sources[1]["detail"], "until 2100-01-01T00:00:00.000Z");
    assert_eq!(sources[1]["kind"], "subscription");
    let m = p.get("/metrics").body;
    assert_eq!(
        sample(&m, r#"routeplane_provider_up{provider="openai-codex"}"#),
        1.0
    );
    assert!(
        !m.contains(r#"provider="openrouter""#),
        "unused built-ins are left out"
    );
    assert!(!s.to_string().contains("at-1"), "no token in the status");
    // Its token expired (here in 1970): the next request refreshes it.
    let login = json!({"version": 1, "credentials": {"openai-codex": {
        "access_token": "at-2", "refresh_token": "rt-2", "expires_at": 1}}});
    let written = p
        .dir
        .write("data/routeplane/auth.json.tmp", &login.to_string());
    // The server reads the file again when its time changes: written within the same
    // tick of the file system's clock as the first, it would not.
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    std::fs::File::options()
        .write(true)
        .open(&written)
        .unwrap()
        .set_modified(at)
        .unwrap();
    std::fs::rename(&written, p.dir.path().join("data/routeplane/auth.json")).unwrap();
    let s = p.get("/status.json").json();
    assert_eq!(s["sources"][1]["state"], "logged in", "{s}");
    assert_eq!(
        s["sources"][1]["detail"], "expired, refreshed on next use",
        "{s}"
    );
}

#[test]
fn a_source_whose_models_cool_down_for_different_times_shows_the_longest_as_the_longest() {
    // `long` asked for an hour (a 429's Retry-After), `short` failed with a 503 (the
    // default 30 s). Before, the page said "2 models for 3600 s" of both.
    let up = MockUpstream::start(|req| match req.json()["model"].as_str() {
        Some("long") => Reply::JsonWith(
            429,
            vec![("retry-after".into(), "3600".into())],
            json!({"error": {"message": "slow down"}}).to_string(),
        ),
        _ => Reply::json(503, json!({"error": {"message": "busy"}})),
    });
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    models: [long, short]\nfailover:\n  retries: 0\n",
        up.url()
    ));
    for model in ["a:long", "a:short"] {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"model": model, "messages": []}),
        );
        assert!(resp.status >= 429, "{model}: {}", resp.body);
    }
    let a = p.source_status("a");
    assert_eq!(a["state"], "cooling down", "{a}");
    let detail = a["detail"].as_str().unwrap_or_default();
    let secs = detail
        .strip_prefix("2 models, the longest for ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|n| n.parse::<u32>().ok());
    assert!(secs.is_some_and(|s| (3590..=3600).contains(&s)), "{detail}");
}

#[test]
fn a_ledger_line_with_a_time_too_long_for_a_duration_still_seeds_the_status_page() {
    // A line edited by hand: `total_ms` past what a duration holds once stopped the
    // reading of the whole ledger (its thread panicked), and the page showed nothing.
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let line = |ms: &str| {
        format!(
            r#"{{"time":"2020-01-01T10:00:00.000Z","inbound":"chat_completions","model":"m","served_by":"good:m","status":200,"stream":false,"attempts":1,"rescues":0,"failed":[],"ttfb_ms":1.0,"ttft_ms":1.0,"total_ms":{ms},"tokens":{{"input":1,"output":1,"cached_input":null,"reasoning":null}}}}"#
        )
    };
    std::fs::write(&ledger, format!("{}\n{}\n", line("1e300"), line("2.0"))).unwrap();
    let p = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: http://127.0.0.1:9/v1\n    models: [m]\nusage:\n  path: {}\n",
        ledger.display()
    ));
    let seeded = wait_until(Duration::from_secs(5), || {
        p.get("/status.json").json()["recent"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    });
    assert!(seeded, "{}", p.get("/status.json").body);
    assert!(
        !p.log().iter().any(|l| l.contains("panicked")),
        "{:?}",
        p.log()
    );
}
