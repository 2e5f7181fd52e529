//! `routeplane usage` as a command: its table, its options and their errors, and the
//! attempts a source failed that another answered.

use super::*;

#[test]
fn usage_command_prints_a_table_and_explains_bad_options() {
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let line = |t: &str, by: &str, status: u16, input: u64| {
        format!(
            "{{\"time\":\"{t}\",\"inbound\":\"chat_completions\",\"model\":\"m\",\"served_by\":\"{by}\",\"status\":{status},\"stream\":false,\"attempts\":1,\"rescues\":0,\"failed\":[],\"ttfb_ms\":1.0,\"ttft_ms\":{input}.0,\"total_ms\":9.0,\"tokens\":{{\"input\":{input},\"output\":1,\"cached_input\":null,\"reasoning\":null}}}}\n"
        )
    };
    let text = [
        line("2026-11-30T10:00:00.000Z", "old:m", 200, 100),
        line("2026-12-01T10:00:00.000Z", "local:m", 200, 10),
        line("2026-12-01T11:00:00.000Z", "local:m", 502, 30),
        "not a ledger line\n".to_string(),
    ]
    .concat();
    std::fs::write(&ledger, text).unwrap();
    let config = dir.write("c.yaml", &format!("usage:\n  path: {}\n", ledger.display()));
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("usage")
            .args(args)
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = run(&["--since", "2026-12-01"]);
    assert!(out.status.success());
    crate::support::assert_text(
        &String::from_utf8_lossy(&out.stdout),
        "\
PROVIDER  REQUESTS  ERRORS  FAILED FAILOVERS RESCUES CONTINUED    INPUT_TOK   OUTPUT_TOK  TTFT_P50  TTFT_P95
local            2       1       0         0       0         0           40            2      10ms      30ms
total            2       1       0         0       0         0           40            2      10ms      30ms
",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped 1 line(s)"));
    let bad = run(&["--by", "colour"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("--by `colour` is not a grouping; use provider, model or day")
    );
    let bad = run(&["--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("neither a span (30m, 24h, 7d) nor a UTC date")
    );
    // No ledger yet: the same table, its total row labelled.
    std::fs::remove_file(&ledger).unwrap();
    let out = run(&[]);
    assert!(out.status.success());
    crate::support::assert_text(
        &String::from_utf8_lossy(&out.stdout),
        "\
PROVIDER  REQUESTS  ERRORS  FAILED FAILOVERS RESCUES CONTINUED    INPUT_TOK   OUTPUT_TOK  TTFT_P50  TTFT_P95
total            0       0       0         0       0         0            0            0         -         -
",
    );
}

#[test]
fn a_source_whose_attempts_failed_over_has_its_failed_attempts_in_the_table() {
    // Before, `usage` counted a request only where it was answered: a source whose
    // every attempt failed over to another was not in the table at all, though the
    // status page and /metrics counted its failures.
    let bad = MockUpstream::always(Reply::Json(500, r#"{"error":{"message":"boom"}}"#.into()));
    let good = chat_mock();
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  bad: {{api_base: {}, models: [m]}}\n  good: {{api_base: {}, models: [m]}}\nmodels:\n  smart: {{endpoints: [bad:m, good:m]}}\nfailover:\n  backoff_ms: 20\nusage:\n  path: {}\n",
        bad.url(),
        good.url(),
        ledger.display()
    ));
    // bad's 500 is asked again once (a retry), then good answers.
    let r = p.post(
        "/v1/chat/completions",
        Wire::Chat.request("smart", false, false),
    );
    assert_eq!(
        (r.status, r.header("x-routeplane-provider")),
        (200, Some("good"))
    );
    ledger_lines(&ledger, 1);
    let table = usage_out(&p, &[]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..5],
        ["PROVIDER", "REQUESTS", "ERRORS", "FAILED", "FAILOVERS"],
        "{table}"
    );
    // Its own row: no request of its own, its two failed attempts, no time to first token.
    assert_eq!(
        rows[1],
        ["bad", "0", "0", "2", "0", "0", "0", "0", "0", "-", "-"],
        "{table}"
    );
    // The request is good's, one that failed over to it.
    assert_eq!(rows[2][..6], ["good", "1", "0", "0", "1", "0"], "{table}");
    assert_eq!(rows[3][..6], ["total", "1", "0", "2", "1", "0"], "{table}");
    assert_eq!(rows.len(), 4, "{table}");
    // Pinned to bad alone: it cools down, so it is asked once, and that attempt is the
    // request's error, not also a failed one. The status page counts each request bad
    // was asked once: two requests, both errors (never more errors than requests).
    let r = p.post(
        "/v1/chat/completions",
        Wire::Chat.request("bad:m", false, false),
    );
    assert_eq!(r.status, 500, "{}", r.body);
    ledger_lines(&ledger, 2);
    let u = usage_json(&p, &["--by", "model"]);
    let bad_row = &u["groups"][0];
    assert_eq!(bad_row["key"], "bad:m", "{u}");
    assert_eq!(
        [&bad_row["requests"], &bad_row["errors"], &bad_row["failed"]],
        [&json!(1), &json!(1), &json!(2)],
        "{u}"
    );
    assert_eq!(u["total"]["failed"], 2, "{u}");
    // The ledger line is appended just before the counters take the request.
    let today = || {
        let t = &p.source_status("bad")["today"];
        (t["requests"].clone(), t["errors"].clone())
    };
    assert!(
        wait_until(Duration::from_secs(5), || today() == (json!(2), json!(2))),
        "{:?}",
        today()
    );
}

#[test]
fn the_row_of_requests_no_source_was_asked_for_is_explained_under_the_table() {
    // Its key `-` was told nowhere but the README.
    let good = chat_mock();
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  good: {{api_base: {}, models: [m]}}\nusage:\n  path: {}\n",
        good.url(),
        ledger.display()
    ));
    let r = p.post(
        "/v1/chat/completions",
        Wire::Chat.request("nosuch", false, false),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    ledger_lines(&ledger, 1);
    let table = usage_out(&p, &[]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].starts_with("-  "), "{table}");
    assert_eq!(
        lines.last(),
        Some(&"-: requests no source was asked for (an unknown model, a refused request)"),
        "{table}"
    );
}
