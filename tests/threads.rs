//! No thread to be had (the process at its limit): the work a thread would have done is
//! done on the thread at hand, or the start fails with an error, never a panic. The
//! hook `ROUTEPLANE_TEST_SPAWN_FAILS` names the threads whose start fails (the limit
//! itself does not bind root).

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::support::proxy::{hermetic, routeplane_in};
use crate::support::upstream::ollama;
use crate::support::{Dir, MockUpstream, Proxy, wait_until};

/// A config with an Ollama at `up`, and nothing else asked.
fn with_ollama(up: &MockUpstream) -> String {
    hermetic(&format!(
        "providers:\n  ollama:\n    api_base: {}\n",
        up.url()
    ))
}

#[test]
fn local_servers_are_probed_on_the_servers_own_thread_when_none_can_be_had() {
    // Each source was probed on a thread of its own: at the limit the start-up probe
    // panicked, and the server with it.
    let up = MockUpstream::start(ollama(&["llama3.1:8b"]));
    let hook = [("ROUTEPLANE_TEST_SPAWN_FAILS", "probe,list")];
    let p = Proxy::start_with(&with_ollama(&up), &hook, &[]);
    p.wait_log("local servers: ollama (1 model)");
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
}

#[test]
fn models_lists_what_it_finds_when_no_thread_can_be_had() {
    let up = MockUpstream::start(ollama(&["llama3.1:8b"]));
    let dir = Dir::new();
    dir.write("routeplane.yaml", &with_ollama(&up));
    let out = routeplane_in(dir.path())
        .arg("models")
        .env("ROUTEPLANE_TEST_SPAWN_FAILS", "hosted,probe,list")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("llama3.1:8b  ollama"), "{stdout}");
}

#[test]
fn no_thread_to_accept_connections_is_an_error_at_start_not_a_panic() {
    let dir = Dir::new();
    dir.write("routeplane.yaml", &hermetic(""));
    let mut child = routeplane_in(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("ROUTEPLANE_TEST_SPAWN_FAILS", "accept")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut code = None;
    wait_until(Duration::from_secs(5), || {
        code = child.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    if code.is_none() {
        child.kill().unwrap();
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, Some(Some(1)), "{stderr}");
    assert!(
        stderr.starts_with(
            "routeplane: error: cannot listen on 127.0.0.1:0: no thread can be started"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("`ulimit -u`"), "{stderr}");
}

#[test]
fn a_request_queued_before_the_handler_is_answered_when_no_thread_can_be_had() {
    // Requests that arrive before the handler is in are each run on a thread of their
    // own once it is: at the limit that start panicked, ending the server at its start.
    let up = MockUpstream::start(ollama(&["m"]));
    let yaml = hermetic(&format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let hook = [
        ("ROUTEPLANE_TEST_HANDLER_AFTER_MS", "500"),
        ("ROUTEPLANE_TEST_SPAWN_FAILS", "queued"),
    ];
    let p = Proxy::start_with(&yaml, &hook, &[]);
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
    );
    assert_eq!(resp.status, 200, "served on after: {}", resp.body);
}

#[test]
fn a_connection_closed_for_want_of_a_thread_is_logged() {
    // tiny_http logged it through the `log` crate, which Routeplane gives no logger:
    // the client saw its connection closed and the log said nothing.
    let hook = [("ROUTEPLANE_TEST_SPAWN_FAILS", "conn")];
    let p = Proxy::start_with("", &hook, &[]);
    let answer = p.raw("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_eq!(
        answer, "",
        "a connection with no thread is closed unanswered"
    );
    let line = p.wait_log("connection closed: no thread could be started for it (");
    assert!(line.contains("`ulimit -u`"), "{line}");
}
