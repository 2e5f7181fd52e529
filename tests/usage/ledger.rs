//! The ledger file: a full or unwritable one never fails a request, it can be turned
//! off, it rotates at `max_bytes`, a torn line is ended, a line's time is its arrival.

use super::*;

#[test]
fn a_full_or_unwritable_ledger_never_fails_a_request() {
    let up = chat_mock();
    // /dev/full: every write fails with "no space left on device".
    let full = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: /dev/full\n",
        up.url()
    ));
    for _ in 0..3 {
        let r = full.post(
            "/v1/chat/completions",
            Wire::Chat.request("m", false, false),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    full.wait_log("usage ledger `/dev/full`: cannot write to it");
    assert!(wait_until(Duration::from_secs(5), || {
        sample(
            &full.get("/metrics").body,
            "routeplane_usage_ledger_errors_total",
        ) == 3.0
    }));
    let warnings = full
        .log()
        .iter()
        .filter(|l| l.contains("usage ledger"))
        .count();
    assert_eq!(
        warnings,
        1,
        "one warning, not one per request: {:#?}",
        full.log()
    );
    assert!(
        std::path::Path::new("/dev/full").exists(),
        "a device is never rotated away"
    );

    // A directory that cannot be created (its parent is a file): warned at start.
    let dir = Dir::new();
    let file = dir.write("not-a-dir", "x");
    let blocked = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}/usage.jsonl\n",
        up.url(),
        file.display()
    ));
    let s = blocked.stream("/v1/chat/completions", Wire::Chat.request("m", true, false));
    assert_eq!(Wire::Chat.read_stream(&s).text, "Hello there");
    let warning = blocked.wait_log("usage ledger");
    assert!(warning.contains("cannot open it"), "{warning}");
}

#[test]
fn the_ledger_can_be_turned_off_and_defaults_to_the_state_dir() {
    let up = chat_mock();
    let on = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    on.post(
        "/v1/chat/completions",
        Wire::Chat.request("m", false, false),
    );
    // The proxy under test has XDG_STATE_HOME inside its own directory.
    let default = on.dir.path().join("state/routeplane/usage.jsonl");
    assert_eq!(ledger_lines(&default, 1).len(), 1);

    let off = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  enabled: false\n",
        up.url()
    ));
    assert_eq!(
        off.post(
            "/v1/chat/completions",
            Wire::Chat.request("m", false, false)
        )
        .status,
        200
    );
    // Counted once the client has its answer, so a moment after it.
    let series = r#"routeplane_tokens_total{provider="good",direction="input"} 5"#;
    assert!(wait_until(Duration::from_secs(5), || off
        .get("/metrics")
        .body
        .contains(series)));
    assert!(
        !off.dir.path().join("state").exists(),
        "nothing written when off"
    );
}

#[test]
fn a_line_cut_off_by_an_earlier_run_does_not_swallow_the_next() {
    let up = chat_mock();
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    // A run stopped (or a disk filled) in the middle of writing its last line.
    std::fs::write(
        &ledger,
        r#"{"time":"2020-01-01T10:00:00.000Z","inbound":"chat"#,
    )
    .unwrap();
    let config = dir.write(
        "c.yaml",
        &format!(
            "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n",
            up.url(),
            ledger.display()
        ),
    );
    let p = Proxy::start(&dir.read("c.yaml"));
    p.post(
        "/v1/chat/completions",
        Wire::Chat.request("m", false, false),
    );
    let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read().lines().count() >= 2),
        "{}",
        read()
    );
    let text = read();
    let lines: Vec<&str> = text.lines().collect();
    let line: Value = serde_json::from_str(lines[1]).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(line["served_by"], "good:m");
    let out = Command::new(bin())
        .args(["usage", "--by", "provider", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(r#""requests":1"#), "{said}");
}

#[test]
fn the_ledger_rotates_at_max_bytes_keeping_one_previous_file() {
    let up = chat_mock();
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n  max_bytes: 4096\n",
        up.url(),
        ledger.display()
    ));
    for _ in 0..30 {
        assert_eq!(
            p.post(
                "/v1/chat/completions",
                Wire::Chat.request("m", false, false)
            )
            .status,
            200
        );
    }
    let previous = dir.path().join("usage.jsonl.1");
    let lines = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    };
    // Each request is counted, then its line appended at once: all 30 are in the files
    // a moment after /metrics counts them.
    let counted = r#"routeplane_requests_total{provider="good",model="m",status="200",inbound="chat_completions"} 30"#;
    assert!(wait_until(Duration::from_secs(5), || p
        .get("/metrics")
        .body
        .contains(counted)));
    std::thread::sleep(Duration::from_millis(300));
    // Lines are ~300 bytes: the file turned over more than once; the oldest lines are gone.
    assert!(
        lines(&previous) > 0 && lines(&previous) + lines(&ledger) < 30,
        "current {} previous {}",
        lines(&ledger),
        lines(&previous)
    );
    for path in [&ledger, &previous] {
        let size = std::fs::metadata(path).unwrap().len();
        assert!(size <= 4096 + 512, "{} is {size} bytes", path.display());
    }
    let kept = (lines(&previous) + lines(&ledger)) as u64;
    assert_eq!(usage_json(&p, &[])["total"]["requests"], kept);
}

#[test]
fn a_ledger_lines_time_is_when_the_request_arrived_as_the_log_lines_is() {
    // A stream of four events 400 ms apart: it ends over a second after it began.
    let up = MockUpstream::always(Reply::chat_stream(4, Duration::from_millis(400)));
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n",
        up.url(),
        ledger.display()
    ));
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(s.status, 200);
    let logged = p.wait_log("POST /v1/chat/completions");
    let total = crate::support::proxy::logged_ms(&logged, "total_ms");
    assert!(total >= 1000.0, "{logged}");
    let arrived = logged.split(' ').next().unwrap();
    // `usage --since` picks requests by this time: when they were made, not when a
    // long stream ended.
    let line = &ledger_lines(&ledger, 1)[0];
    assert_eq!(line["time"], arrived, "{line}\n{logged}");
    let status = p.get("/status.json").json();
    assert_eq!(status["recent"][0]["time"], arrived, "{status}");
}

#[test]
fn an_endpoint_nothing_was_sent_to_has_no_upstream_status_only_what_failed() {
    // A virtual model's hosted fallback with no key is never asked. Before, the ledger
    // and the status page gave it the client's status for its failure (401; a login
    // whose refresh failed, 502) as if the source had answered so.
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let a = MockUpstream::always(Reply::json(500, json!({"error": {"message": "boom"}})));
    let p = Proxy::start(&format!(
        "providers:\n  a: {{api_base: {}, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, openai:gpt-4o]}}\nfailover: {{retries: 0}}\nusage: {{path: {}}}\n",
        a.url(),
        ledger.display()
    ));
    let r = p.post(
        "/v1/chat/completions",
        Wire::Chat.request("smart", false, false),
    );
    assert_eq!(r.status, 502, "{}", r.body);
    // The endpoint passed over counts as an attempt, in the header as in the ledger
    // (the README says so where it explains `x-routeplane-attempts`).
    assert_eq!(r.header("x-routeplane-attempts"), Some("2"));
    assert!(
        p.wait_log(" model=smart ")
            .contains("tried=a:m→500,openai:gpt-4o→no_credential"),
        "{:?}",
        p.log()
    );
    let line = &ledger_lines(&ledger, 1)[0];
    assert_eq!(line["attempts"], 2, "{line}");
    let failed = &line["failed"];
    assert_eq!(
        failed[0],
        json!({"endpoint": "a:m", "status": 500, "reason": "server error"}),
        "{line}"
    );
    assert_eq!(failed[1]["endpoint"], "openai:gpt-4o", "{line}");
    assert_eq!(failed[1]["status"], Value::Null, "{line}");
    let reason = failed[1]["reason"].as_str().unwrap();
    assert!(reason.contains("openai"), "what failed: {reason}");
    // The status page reads the same.
    let s = p.get("/status.json").json();
    assert_eq!(s["recent"][0]["failed"][1]["status"], Value::Null, "{s}");
    assert_eq!(s["recent"][0]["failed"][1]["reason"], reason, "{s}");
}
