//! Helpers shared by every integration test, written once: the proxy under test, a mock
//! upstream, temp directories.

#![allow(dead_code)]

pub mod answer;
pub mod browser;
pub mod dir;
pub mod files;
pub mod oauth;
pub mod proxy;
pub mod upstream;
pub mod wire;

pub use dir::Dir;
pub use proxy::Proxy;
pub use upstream::{MockUpstream, Reply};

use std::time::{Duration, Instant};

/// The entry of a JSON list (`providers --json`, `models --json`) whose `id` is `id`.
pub fn entry<'a>(list: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    let entries = list.as_array().expect("a JSON list");
    let found = entries.iter().find(|e| e["id"] == id);
    found.unwrap_or_else(|| panic!("no entry {id:?} in {list}"))
}

/// Waits until `f` is true or the deadline passes; returns whether it became true.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Waits up to `limit` for `child` to end, killing it if it does not, and collects its
/// output: whether it ended by itself, and what it wrote.
pub fn wait_output(
    mut child: std::process::Child,
    limit: Duration,
) -> (bool, std::process::Output) {
    let ended = wait_until(limit, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    (ended, child.wait_with_output().unwrap())
}

/// Runs `cmd`, asserts it succeeded (showing its stderr when not), and returns its stdout.
#[track_caller]
pub fn stdout_of(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run the command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts two strings are equal, printing both in full when they are not.
#[track_caller]
pub fn assert_text(actual: &str, expected: &str) {
    if actual != expected {
        panic!("\n--- expected ---\n{expected}\n--- actual ---\n{actual}\n----------------");
    }
}

/// Runs `config validate` on `yaml`, written as `routeplane.yaml` in a fresh directory it
/// runs in (so its messages name `routeplane.yaml:LINE:COL`), with `env` set and no
/// credential variables: whether it passed, and its stderr.
pub fn validate(yaml: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = Dir::new();
    dir.write("routeplane.yaml", yaml);
    let out = proxy::isolate(&mut std::process::Command::new(proxy::bin()), dir.path())
        .args(["config", "validate"])
        .current_dir(dir.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `config validate` and `serve` on a config that both must refuse (exit 1): the
/// file's path and the two commands' stderr.
pub fn config_error(yaml: &str, env: &[(&str, &str)]) -> (String, String, String) {
    let dir = Dir::new();
    let path = dir.write("c.yaml", yaml);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(proxy::bin())
            .args(args)
            .arg("-c")
            .arg(&path)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let validate = run(&["config", "validate"]);
    let serve = run(&["serve", "--listen", "127.0.0.1:0"]);
    (path.display().to_string(), validate, serve)
}
