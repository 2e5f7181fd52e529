//! `routeplane usage` as a command: its table, its options and their errors.

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
PROVIDER  REQUESTS  ERRORS FAILOVERS RESCUES    INPUT_TOK   OUTPUT_TOK  TTFT_P50  TTFT_P95
local            2       1         0       0           40            2      10ms      30ms
total            2       1         0       0           40            2      10ms      30ms
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
PROVIDER  REQUESTS  ERRORS FAILOVERS RESCUES    INPUT_TOK   OUTPUT_TOK  TTFT_P50  TTFT_P95
total            0       0         0       0            0            0         -         -
",
    );
}
