//! Subscription logins end to end: each flow through the real binary with stdin piped,
//! tokens attached at request time, refreshed before expiry and after a 401, rotated
//! refresh tokens never lost. The flows a person goes through in interactive.rs; the
//! token given on stdin, imported, labelled, kept in the token file and logged out in
//! stored.rs; a login at request time in requests.rs; a refresh that fails or races
//! another routeplane in refresh.rs; a token endpoint that fails in
//! token_endpoint.rs; no terminal or no browser in headless.rs. The helpers they share
//! are here.

mod headless;
mod interactive;
mod refresh;
mod requests;
mod stored;
mod token_endpoint;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::oauth::{MockOAuth, id_token};
use crate::support::proxy::bin;
use crate::support::upstream::Recorded;
use crate::support::wire::Wire;
use crate::support::{
    Dir, MockUpstream, Proxy, Reply, assert_text, entry, wait_output, wait_until,
};

/// `routeplane login openai-codex -c CFG --token-stdin` given the refresh token `rt-0`.
fn codex_token_stdin(dir: &Dir, cfg: &std::path::Path) -> (i32, String, String) {
    codex_token_stdin_with(dir, cfg, &[])
}

/// [`codex_token_stdin`] with `extra` arguments after it (`--label work`).
fn codex_token_stdin_with(
    dir: &Dir,
    cfg: &std::path::Path,
    extra: &[&str],
) -> (i32, String, String) {
    let mut args = vec![
        "login",
        "openai-codex",
        "-c",
        cfg.to_str().unwrap(),
        "--token-stdin",
    ];
    args.extend_from_slice(extra);
    run(dir, &args, Some("rt-0\n"), |_| None)
}

/// Runs `routeplane ARGS` with the token file in `dir`; `respond` gets each stderr line
/// and may answer on stdin. Returns (exit code, stdout, stderr).
fn run(
    dir: &Dir,
    args: &[&str],
    stdin_text: Option<&str>,
    mut respond: impl FnMut(&str) -> Option<String>,
) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("data/auth.json"))
        .env_remove("CODEX_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(t) = stdin_text {
        // A login that stops before it reads stdin has closed it: a broken pipe here.
        let _ = stdin.write_all(t.as_bytes());
    }
    let mut err = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        err.push_str(&line);
        err.push('\n');
        if let Some(answer) = respond(&line) {
            stdin.write_all(answer.as_bytes()).unwrap();
            stdin.flush().unwrap();
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

/// The `state` query value of a printed authorize URL.
fn state_of(line: &str) -> Option<String> {
    let url = line.trim();
    url.contains("/authorize?").then(|| {
        url.split("state=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string()
    })
}

fn stored(dir: &Dir) -> Value {
    serde_json::from_str(&dir.read("data/auth.json")).unwrap()
}

fn anthropic_config(oauth: &MockOAuth, upstream: &MockUpstream) -> String {
    format!(
        "providers:\n  anthropic:\n    api_base: {}\n    models: [claude-x]\n{}",
        upstream.url(),
        oauth.auth_block("https://example.invalid/callback")
    )
}

fn codex_config(oauth: &MockOAuth, upstream: &MockUpstream, port: u16) -> String {
    format!(
        "providers:\n  openai-codex:\n    api_base: {}\n    models: [gpt-5]\n{}",
        upstream.url(),
        oauth.auth_block(&format!("http://localhost:{port}/auth/callback"))
    )
}

/// Logs in to anthropic through the paste flow.
fn anthropic_login(dir: &Dir, config: &str) -> (i32, String, String) {
    let cfg = dir.write("routeplane.yaml", config);
    run(
        dir,
        &[
            "login",
            "anthropic",
            "-c",
            cfg.to_str().unwrap(),
            "--no-browser",
        ],
        None,
        |line| state_of(line).map(|s| format!("good-code#{s}\n")),
    )
}

/// Starts a codex loopback login and plays the browser; returns the login's result.
fn codex_loopback_login(dir: &Dir, config: &str, port: u16) -> (i32, String, String) {
    let cfg = dir.write("routeplane.yaml", config);
    run(
        dir,
        &[
            "login",
            "openai-codex",
            "-c",
            cfg.to_str().unwrap(),
            "--no-browser",
        ],
        None,
        |line| {
            if let Some(state) = state_of(line) {
                std::thread::spawn(move || {
                    // The browser follows the redirect once the listener is up.
                    let (addr, path) = (
                        format!("127.0.0.1:{port}"),
                        format!("/auth/callback?code=good-code&state={state}"),
                    );
                    let ok = wait_until(Duration::from_secs(5), || {
                        crate::support::proxy::try_get_status(&addr, &path) == Some(200)
                    });
                    assert!(ok, "callback listener did not answer");
                });
            }
            None
        },
    )
}
