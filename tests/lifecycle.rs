//! Signals: SIGTERM stops gracefully, SIGHUP reloads the config without dropping a beat.

use std::time::Duration;

use serde_json::json;

use crate::support::upstream::{chat_answer, chat_events};
use crate::support::{MockUpstream, Proxy, Reply};

#[test]
fn sigterm_lets_a_running_stream_finish_then_exits_0() {
    let up = MockUpstream::always(Reply::Sse(chat_events(10, true), Duration::from_millis(60)));
    let yaml = format!(
        "shutdown_grace_secs: 5\nproviders:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let mut p = Proxy::start(&yaml);
    let addr = p.addr.clone();
    let streaming = std::thread::spawn(move || {
        let client = crate::support::proxy::Client { addr };
        client.stream(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": []}),
        )
    });
    std::thread::sleep(Duration::from_millis(150));
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
