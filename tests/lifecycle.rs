//! Signals: SIGTERM stops gracefully, SIGHUP reloads the config without dropping a beat.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::proxy::Streamed;
use crate::support::upstream::{chat_answer, chat_events};
use crate::support::{MockUpstream, Proxy, Reply};

/// A client asking `m` for a stream, on its own thread.
fn stream_in_background(p: &Proxy) -> std::thread::JoinHandle<Streamed> {
    let client = crate::support::proxy::Client {
        addr: p.addr.clone(),
    };
    std::thread::spawn(move || {
        client.stream(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": []}),
        )
    })
}

#[test]
fn sigterm_lets_a_running_stream_finish_then_exits_0() {
    let up = MockUpstream::always(Reply::Sse(chat_events(10, true), Duration::from_millis(60)));
    let yaml = format!(
        "shutdown_grace_secs: 5\nproviders:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let mut p = Proxy::start(&yaml);
    let streaming = stream_in_background(&p);
    // The stream is running once the upstream has its request (about 0.6 s of it left).
    assert!(crate::support::wait_until(Duration::from_secs(5), || up
        .count()
        == 1));
    p.signal("TERM");
    let s = streaming.join().unwrap();
    assert_eq!(
        s.data().len(),
        11,
        "the stream ran to its end: {}",
        s.text()
    );
    assert!(s.complete);
    assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(0));
    p.wait_log("stopped");
}

#[test]
fn a_request_refused_while_stopping_is_logged_and_counted() {
    let up = MockUpstream::always(Reply::Sse(
        chat_events(10, true),
        Duration::from_millis(100),
    ));
    let yaml = format!(
        "shutdown_grace_secs: 5\nproviders:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let mut p = Proxy::start(&yaml);
    // A kept-alive client: its next request comes after the listener has closed.
    let conn = p.kept_alive();
    let first = crate::support::proxy::post_on(
        &conn,
        "/v1/messages",
        json!({"model": "nope", "max_tokens": 8, "messages": []}),
    );
    assert_eq!(first.status, 404, "{}", first.body);
    let streaming = stream_in_background(&p);
    assert!(crate::support::wait_until(Duration::from_secs(5), || up
        .count()
        == 1));
    p.signal("TERM");
    p.wait_log("stopping: no new connections");
    let refused = crate::support::proxy::post_on(
        &conn,
        "/v1/messages",
        json!({"model": "m", "max_tokens": 8, "messages": []}),
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(
        refused.json()["type"],
        "error",
        "Anthropic's shape: {}",
        refused.body
    );
    assert_eq!(
        refused.error_message(),
        "routeplane is stopping; retry shortly"
    );
    assert!(streaming.join().unwrap().complete);
    assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(0));
    let line = p.wait_log("status=503");
    assert!(
        line.contains(
            "POST /v1/messages model=- served_by=- status=503 attempts=0 refused=stopping ttfb_ms="
        ),
        "{line}"
    );
    let ledger = p.dir.path().join("state/routeplane/usage.jsonl");
    let ledger = std::fs::read_to_string(ledger).unwrap_or_default();
    let refused: Vec<serde_json::Value> = ledger
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["status"] == 503)
        .collect();
    assert_eq!(refused.len(), 1, "{ledger}");
    assert_eq!(refused[0]["inbound"], "anthropic", "{ledger}");
}

#[test]
fn a_second_signal_stops_at_once() {
    // A request that would hold the stop for the whole grace period.
    let up = MockUpstream::always(Reply::Hang(Duration::from_secs(8)));
    let yaml = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let mut p = Proxy::start(&yaml);
    let waiting = stream_in_background(&p);
    assert!(crate::support::wait_until(Duration::from_secs(5), || up
        .count()
        == 1));
    p.signal("INT");
    p.wait_log(
        "stopping: no new connections; waiting up to 10 seconds for requests in flight (a \
         second signal stops at once)",
    );
    let again = std::time::Instant::now();
    p.signal("INT");
    assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        again.elapsed() < Duration::from_secs(2),
        "{:?}",
        again.elapsed()
    );
    p.wait_log("stopped with 1 request(s) still running at a second signal");
    let _ = waiting.join();
}

#[test]
fn requests_still_running_when_the_grace_ends_are_told_and_written_down() {
    // A stream that goes on for 20 s and a whole answer 20 s away; the grace is 1 s.
    let up = MockUpstream::start(|req| match req.json()["model"].as_str() {
        Some("stream") => Reply::SseWatched(chat_events(200, true), Duration::from_millis(100)),
        _ => Reply::Hang(Duration::from_secs(20)),
    });
    let dir = crate::support::Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let yaml = format!(
        "shutdown_grace_secs: 1\nproviders:\n  local:\n    api_base: {}\n    models: [stream, whole]\nusage:\n  path: {}\n",
        up.url(),
        ledger.display()
    );
    let mut p = Proxy::start(&yaml);
    let (a, b) = (p.client.clone(), p.client.clone());
    let streaming = std::thread::spawn(move || {
        a.stream(
            "/v1/chat/completions",
            json!({"model": "stream", "stream": true, "messages": []}),
        )
    });
    let waiting = std::thread::spawn(move || {
        b.post(
            "/v1/chat/completions",
            json!({"model": "whole", "messages": []}),
        )
    });
    assert!(crate::support::wait_until(Duration::from_secs(5), || up
        .posts()
        .len()
        == 2));
    let stopped_at = Instant::now();
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
    // The grace, then at most the 2 s the cut may take.
    let took = stopped_at.elapsed();
    assert!(took < Duration::from_millis(4500), "{took:?}");
    // The stream ends with its protocol's error event and its proper end, not cut off.
    let s = streaming.join().unwrap();
    assert_eq!(s.status, 200);
    assert!(s.complete, "the stream's last chunk: {}", s.text());
    let data = s.data();
    assert!(data.len() > 2, "{data:?}");
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["message"], "routeplane is stopping; retry shortly",
        "{data:?}"
    );
    // The whole answer not yet begun is a 503 in the client's protocol.
    let w = waiting.join().unwrap();
    assert_eq!(w.status, 503, "{}", w.body);
    assert_eq!(w.error_message(), "routeplane is stopping; retry shortly");
    assert_eq!(w.header("retry-after"), Some("1"));
    // Each has its log line and its ledger line, written before the exit.
    let stream_line = p.wait_log("model=stream ");
    assert!(
        stream_line.contains(" status=200 stream=broken ")
            && stream_line.contains(" tried=local:stream→stopped "),
        "{stream_line}"
    );
    let whole_line = p.wait_log("model=whole ");
    assert!(
        whole_line.contains(" served_by=- status=503 ")
            && whole_line.contains(" tried=local:whole→stopped "),
        "{whole_line}"
    );
    p.wait_log("ended 2 request(s) still running after 1s: routeplane is stopping");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ends: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l["model"].clone(),
                l["status"].clone(),
                l["stream_end"].clone(),
            )
        })
        .collect();
    ends.sort_by_key(|e| e.0.to_string());
    assert_eq!(
        ends,
        [
            (json!("stream"), json!(200), json!("broken")),
            (json!("whole"), json!(503), json!(null)),
        ]
    );
}

#[test]
fn a_normal_stop_writes_the_log_and_ledger_lines_still_gathering() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let dir = crate::support::Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let yaml = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n",
        up.url(),
        ledger.display()
    );
    // Lines gather for ten minutes: only the stop can write them.
    let mut p = Proxy::start_with(&yaml, &[("ROUTEPLANE_TEST_BATCH_MS", "600000")], &[]);
    for _ in 0..3 {
        let r = p.post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": []}),
        );
        assert_eq!(r.status, 200);
    }
    std::thread::sleep(Duration::from_millis(200));
    let requests = |p: &Proxy| {
        p.log()
            .iter()
            .filter(|l| l.contains("served_by=local:m"))
            .count()
    };
    assert_eq!(requests(&p), 0, "still gathering: {:#?}", p.log());
    assert!(!ledger.exists() || std::fs::read_to_string(&ledger).unwrap().is_empty());
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(0));
    p.wait_log("stopped");
    assert_eq!(requests(&p), 3, "{:#?}", p.log());
    let lines = std::fs::read_to_string(&ledger).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
}

#[test]
fn sighup_reloads_and_a_bad_file_keeps_the_old_config() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let base = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [one]\n",
        up.url()
    );
    let p = Proxy::start(&base);
    let ask = |model: &str| {
        p.post(
            "/v1/chat/completions",
            json!({"model": model, "messages": []}),
        )
        .status
    };
    assert_eq!(ask("two"), 404);
    p.dir
        .write("routeplane.yaml", &base.replace("[one]", "[one, two]"));
    p.signal("HUP");
    p.wait_log("reloaded config");
    assert_eq!(ask("two"), 200);
    p.dir
        .write("routeplane.yaml", "providers:\n  local:\n    api_bsae: x\n");
    p.signal("HUP");
    let line = p.wait_log("reload failed");
    assert!(
        line.contains("keeping the old config") && line.contains("unknown field `api_bsae`"),
        "{line}"
    );
    assert_eq!(ask("two"), 200);
}

#[test]
fn a_reload_applies_a_new_first_byte_deadline() {
    let up = MockUpstream::always(Reply::Hang(Duration::from_secs(6)));
    let base = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [one]\ntimeouts:\n  first_byte_secs: 60\n",
        up.url()
    );
    let p = Proxy::start(&base);
    p.dir.write(
        "routeplane.yaml",
        &base.replace("first_byte_secs: 60", "first_byte_secs: 0.5"),
    );
    p.signal("HUP");
    p.wait_log("reloaded config");
    let started = Instant::now();
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "one", "messages": []}),
    );
    let took = started.elapsed();
    assert_eq!(resp.status, 504, "{}", resp.body);
    assert!(
        took < Duration::from_secs(4),
        "the reloaded half second, not the 6 s silence: {took:?}"
    );
    // The message names the deadline that was kept.
    assert!(
        resp.error_message().contains("0.5 seconds"),
        "{}",
        resp.body
    );
}

#[test]
fn a_reload_keeps_the_listen_address_given_on_the_command_line_without_a_word() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let port = MockUpstream::free_port();
    let listen = format!("127.0.0.1:{port}");
    let yaml = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [one]\n",
        up.url()
    );
    let p = Proxy::start_with(&yaml, &[], &["--listen", &listen]);
    p.signal("HUP");
    p.wait_log("reloaded config");
    let log = p.log();
    assert!(
        !log.iter()
            .any(|l| l.contains("take effect at the next start")),
        "nothing in the file changed: {log:#?}"
    );
}

#[test]
fn a_reload_says_which_changes_wait_for_a_restart() {
    // The worker limit and the cool-down table are built once at start: a reload that
    // changes them says so instead of seeming to apply them.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let base = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [one]\n",
        up.url()
    );
    let p = Proxy::start(&base);
    p.dir.write(
        "routeplane.yaml",
        &format!("{base}workers: 7\nfailover:\n  cooldown_secs: 9\n"),
    );
    p.signal("HUP");
    let line = p.wait_log("take effect at the next start");
    assert!(
        line.contains("workers, failover.cooldown_secs changed"),
        "{line}"
    );
    p.wait_log("reloaded config");

    // The file put back is what the process runs with: nothing waits for a restart.
    p.dir.write("routeplane.yaml", &base);
    p.signal("HUP");
    let reloads = |log: &[String]| log.iter().filter(|l| l.contains("reloaded config")).count();
    assert!(
        crate::support::wait_until(Duration::from_secs(10), || reloads(&p.log()) == 2),
        "{:#?}",
        p.log()
    );
    let waiting = p
        .log()
        .into_iter()
        .filter(|l| l.contains("take effect at the next start"));
    assert_eq!(waiting.count(), 1, "{:#?}", p.log());
}

#[test]
fn a_signal_sent_as_soon_as_it_listens_is_handled() {
    // The listening line comes after the signal handlers are in: SIGHUP's default
    // action would otherwise end the process (it raced with start-up detection).
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let yaml = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [one]\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    p.signal("HUP");
    p.wait_log("reloaded config");
    assert_eq!(
        p.post(
            "/v1/chat/completions",
            json!({"model": "one", "messages": []})
        )
        .status,
        200
    );
}

#[test]
fn a_taken_port_is_said_to_be_in_use_with_the_key_or_flag_that_moves_it() {
    // Another server (a model server, say Ollama) holds the port the config names.
    let other = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let taken = format!("127.0.0.1:{}", other.port());
    let dir = crate::support::Dir::new();
    let config = dir.write(
        "routeplane.yaml",
        &crate::support::proxy::hermetic(&format!("listen: {taken}\n")),
    );
    let run = |args: &[&str]| {
        let out = crate::support::proxy::routeplane_in(dir.path())
            .arg("-c")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let in_use = "another program listens there (another routeplane, or a server such as Ollama)";
    assert_eq!(
        run(&[]),
        (
            Some(1),
            format!(
                "routeplane: error: cannot listen on {taken}: {in_use}; set `listen:` in {}, or pass --listen ADDR\n",
                config.display()
            )
        )
    );
    assert_eq!(
        run(&["--listen", &taken]),
        (
            Some(1),
            format!(
                "routeplane: error: cannot listen on {taken}: {in_use}; pass another --listen ADDR\n"
            )
        )
    );
}

#[test]
fn a_second_routeplane_on_a_taken_port_is_told_a_routeplane_serves_there() {
    // `routeplane` started twice (a service and a terminal): the second was told only
    // that some program, perhaps Ollama, held the port.
    let first = Proxy::start("");
    let out = crate::support::proxy::routeplane_in(first.dir.path())
        .args(["--listen", &first.addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "routeplane: error: cannot listen on {}: a routeplane already serves there; pass \
             another --listen ADDR\n",
            first.addr
        )
    );
}

#[test]
fn a_reload_caught_while_an_editor_has_emptied_the_file_keeps_the_old_config() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let base = format!(
        "providers:\n  local:\n    api_base: {}\n    models: [one]\n",
        up.url()
    );
    let p = Proxy::start(&base);
    let ask = || {
        p.post(
            "/v1/chat/completions",
            json!({"model": "one", "messages": []}),
        )
        .status
    };
    assert_eq!(ask(), 200);
    // Saved in place: emptied first, written after. Before, the reload in between took
    // the empty file as the built-in defaults and every model was gone (404).
    let config = p.dir.write("routeplane.yaml", "");
    p.signal("HUP");
    let line = p.wait_log("reload failed");
    assert!(
        line.ends_with(&format!(
            "reload failed, keeping the old config: {}: the file holds no setting now (saved part-way?); a restart with it serves the built-in defaults",
            config.display()
        )),
        "{line}"
    );
    assert_eq!(ask(), 200);
    let fixed = crate::support::proxy::hermetic(&base);
    p.dir.write("routeplane.yaml", &fixed);
    p.signal("HUP");
    p.wait_log("reloaded config");
    assert_eq!(ask(), 200);
}
