//! Seeing what the proxy did: the usage ledger, `routeplane usage`, `/metrics` and
//! `/status.json` agree with what the mocks served, tokens included; an unwritable ledger
//! never fails a request; the observability endpoints want a key when keys are set.

mod agree;
mod command;
mod ends;
mod ledger;
mod status;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::proxy::bin;
use crate::support::wire::{Wire, chat_mock_with_usage};
use crate::support::{Dir, MockUpstream, Proxy, Reply, wait_until};

fn chat_mock() -> MockUpstream {
    chat_mock_with_usage(Duration::ZERO)
}

/// An upstream speaking `up`: streams when asked, whole answers otherwise (5 in, 2 out).
fn mock(up: Wire) -> MockUpstream {
    MockUpstream::start(move |req| up.reply(req.json()["stream"] == json!(true), false))
}

/// Five sources, `smart` = bad:m then good:m and `careful` = flaky:m then anth:m, with
/// the ledger at `ledger`.
fn config(good: &str, bad: &str, anth: &str, resp: &str, flaky: &str, ledger: &str) -> String {
    format!(
        "providers:\n  good:\n    api_base: {good}\n    models: [m]\n  bad:\n    api_base: {bad}\n    models: [m]\n  anth:\n    api_base: {anth}\n    api_protocol: anthropic\n    models: [m]\n  resp:\n    api_base: {resp}\n    api_protocol: responses\n    models: [m]\n  flaky:\n    api_base: {flaky}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [bad:m, good:m]\n  careful:\n    endpoints: [flaky:m, anth:m]\nusage:\n  path: {ledger}\n"
    )
}

/// The ledger's lines once there are `n`.
fn ledger_lines(path: &std::path::Path, n: usize) -> Vec<Value> {
    let read = || std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read().lines().count() >= n),
        "the ledger has {} lines, not {n}:\n{}",
        read().lines().count(),
        read()
    );
    read()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The value of one series in exposition text.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

/// `promtool check metrics` on the text, when Debian's prometheus package is installed.
fn promtool_check(text: &str) {
    let tool = std::env::var_os("ROUTEPLANE_TEST_PROMTOOL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let made =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/promtool");
            if made.is_file() {
                made
            } else {
                "promtool".into()
            }
        });
    let Ok(mut child) = Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!(
            "skipped promtool: not at target/tools/promtool or on PATH (`make obs-tools` fetches it); the unit test stats::metrics parses the format"
        );
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `routeplane usage ARGS -c CONFIG --json`.
fn usage_json(p: &Proxy, args: &[&str]) -> Value {
    let stdout = usage_out(p, &[args, &["--json"]].concat());
    serde_json::from_str(&stdout).unwrap()
}

/// What `routeplane usage ARGS -c CONFIG` prints, for `p`'s config.
fn usage_out(p: &Proxy, args: &[&str]) -> String {
    crate::support::stdout_of(
        Command::new(bin())
            .arg("usage")
            .args(args)
            .arg("-c")
            .arg(p.dir.path().join("routeplane.yaml"))
            .env("HOME", p.dir.path()),
    )
}

/// `(key, requests, errors, failovers, rescues)` of each group of `routeplane usage`.
fn usage_rows(u: &Value) -> Vec<(String, Value, Value, Value, Value)> {
    (u["groups"].as_array().unwrap().iter())
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_string(),
                g["requests"].clone(),
                g["errors"].clone(),
                g["failovers"].clone(),
                g["rescues"].clone(),
            )
        })
        .collect()
}
