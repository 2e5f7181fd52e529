//! The status page at `GET /`, rendered by a real browser (headless Chromium from
//! Debian's `chromium`, installed by `make check`): every source is listed with its
//! state, the last requests with their fail-over trail; with keys set it asks for one.
//! Without Chromium these tests print why and pass; `tests/usage/` checks the data.

use std::time::Duration;

use serde_json::json;

use crate::support::browser;
use crate::support::wire::{Wire, chat_mock_with_usage};
use crate::support::{MockUpstream, Proxy, Reply, wait_until};

/// The browser, or `None` after printing why the test is skipped.
fn have_chromium() -> bool {
    match browser::chromium() {
        Ok(_) => true,
        Err(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

#[test]
fn status_page_renders_every_source_and_the_failover_trail() {
    if !have_chromium() {
        return;
    }
    let gap = Duration::from_millis(15);
    let local = chat_mock_with_usage(gap);
    let claude = MockUpstream::start(move |req| {
        let stream = req.json()["stream"] == json!(true);
        match Wire::Anthropic.reply(stream, false) {
            Reply::Sse(events, _) => Reply::Sse(events, gap),
            whole => whole,
        }
    });
    let bad = MockUpstream::always(Reply::Json(
        503,
        r#"{"error":{"message":"overloaded"}}"#.into(),
    ));
    let dead = MockUpstream::always(Reply::Reset);
    let dead_url = dead.url();
    drop(dead);
    let p = Proxy::start(&format!(
        "providers:\n  local-gpu:\n    api_base: {}\n    models: [llama3.1:8b]\n  claude-sub:\n    api_base: {}\n    api_protocol: anthropic\n    models: [sonnet]\n  paid-key:\n    api_base: {}\n    models: [gpt]\n  old-box:\n    api_base: {dead_url}\n    detect: true\nmodels:\n  smart:\n    endpoints: [paid-key:gpt, local-gpu:llama3.1:8b]\n",
        local.url(),
        claude.url(),
        bad.url(),
    ));
    p.post(
        "/v1/chat/completions",
        Wire::Chat.request("smart", false, false),
    );
    p.stream(
        "/v1/chat/completions",
        Wire::Chat.request("llama3.1:8b", true, false),
    );
    p.stream(
        "/v1/messages",
        Wire::Anthropic.request("sonnet", true, false),
    );
    p.stream(
        "/v1/responses",
        Wire::Responses.request("llama3.1:8b", true, false),
    );
    p.post(
        "/v1/responses",
        Wire::Responses.request("sonnet", false, false),
    );
    let ready = wait_until(Duration::from_secs(10), || {
        let s = p.get("/status.json").json();
        s["recent"].as_array().is_some_and(|r| r.len() == 5) && s["sources"][3]["state"] == "down"
    });
    assert!(ready, "{}", p.get("/status.json").body);

    let dom = browser::dump_dom(&format!("{}/", p.url())).unwrap_or_else(|e| panic!("{e}"));
    for id in ["local-gpu", "claude-sub", "paid-key", "old-box"] {
        assert!(
            dom.contains(&format!("<tr data-source=\"{id}\">")),
            "source {id} is not listed:\n{dom}"
        );
    }
    let row = |id: &str| {
        let from = dom
            .split(&format!("<tr data-source=\"{id}\">"))
            .nth(1)
            .unwrap();
        from.split("</tr>").next().unwrap().to_string()
    };
    assert!(
        row("paid-key").contains(">cooling down</span>"),
        "{}",
        row("paid-key")
    );
    assert!(
        row("old-box").contains(">down</span>"),
        "{}",
        row("old-box")
    );
    assert!(
        row("local-gpu").contains(">up</span>"),
        "{}",
        row("local-gpu")
    );
    assert!(
        dom.contains("<s title=\"server error\">paid-key:gpt 503</s>"),
        "the fail-over trail:\n{dom}"
    );
    let rows = dom.split("<tbody id=\"recent\">").nth(1).unwrap();
    let rows = rows.split("</tbody>").next().unwrap();
    assert_eq!(
        rows.matches("<tr>").count(),
        5,
        "one row per request:\n{rows}"
    );
    assert!(
        dom.contains("<span id=\"conn\" class=\"live\">live</span>"),
        "{dom}"
    );

    // For the README: ROUTEPLANE_SCREENSHOT=$PWD/docs/status-page.png cargo test --test integration status_page
    if let Some(path) = std::env::var_os("ROUTEPLANE_SCREENSHOT") {
        let url = format!("{}/", p.url());
        browser::screenshot(&url, std::path::Path::new(&path), 1280, 640)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn status_page_asks_for_a_key_and_shows_no_data_without_one() {
    if !have_chromium() {
        return;
    }
    let good = MockUpstream::start(|_| Wire::Chat.reply(false, false));
    let p = Proxy::start(&format!(
        "skip_auth: false\nkeys: [sekrit]\nproviders:\n  local-gpu:\n    api_base: {}\n    models: [m]\n",
        good.url()
    ));
    let dom = browser::dump_dom(&format!("{}/", p.url())).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        dom.contains("<section id=\"key\" style=\"display: block;\">"),
        "{dom}"
    );
    assert!(
        !dom.contains("data-source="),
        "no data without a key:\n{dom}"
    );
    assert!(dom.contains("key needed"), "{dom}");
}

#[test]
fn status_page_marks_a_broken_stream_and_where_a_client_left() {
    if !have_chromium() {
        return;
    }
    use crate::support::upstream::chat_events;
    let brk = MockUpstream::always(Reply::SseThenBreak(chat_events(2, false), Duration::ZERO));
    let hang = MockUpstream::always(Reply::Hang(Duration::from_secs(8)));
    let p = Proxy::start(&format!(
        "providers:\n  brk:\n    api_base: {}\n    models: [m]\n  hang:\n    api_base: {}\n    models: [m]\n",
        brk.url(),
        hang.url(),
    ));
    let s = p.stream(
        "/v1/chat/completions",
        Wire::Chat.request("brk:m", true, false),
    );
    assert_eq!(s.status, 200);
    p.leave_once_asked(
        "/v1/chat/completions",
        Wire::Chat.request("hang:m", false, false),
        || hang.count() == 1,
    );
    let ready = wait_until(Duration::from_secs(10), || {
        p.get("/status.json").json()["recent"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    });
    assert!(ready, "{}", p.get("/status.json").body);

    let dom = browser::dump_dom(&format!("{}/", p.url())).unwrap_or_else(|e| panic!("{e}"));
    let brk_row = dom.split("<tr data-source=\"brk\">").nth(1).unwrap();
    let brk_row = brk_row.split("</tr>").next().unwrap();
    assert!(
        brk_row.contains("<td class=\"num err\">1</td>"),
        "the broken stream is brk's error today: {brk_row}"
    );
    assert!(
        dom.contains("<td class=\"num err\">200 broken</td>"),
        "the broken stream's row:\n{dom}"
    );
    assert!(
        dom.contains("<td class=\"trail\">hang:m (client left)</td>"),
        "where the client left:\n{dom}"
    );
    assert!(dom.contains("<td class=\"num ok\">499</td>"), "{dom}");
}

#[test]
fn a_local_server_a_probe_missed_is_up_from_its_first_answer() {
    // llama.cpp started after Routeplane: the start-up probe found nothing and the next
    // one is `detect.interval_secs` away. Meanwhile it answers requests, and the page
    // and `/metrics` say so, not "down: connection refused" (an alert on
    // `routeplane_provider_up == 0` firing while it serves), and so do the model list
    // and bare names: it was left out of them until that next probe.
    let port = MockUpstream::free_port();
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 600\nproviders:\n  llamacpp:\n    api_base: http://127.0.0.1:{port}/v1\n    models: [m]\n"
    ));
    let down = wait_until(Duration::from_secs(5), || {
        p.source_status("llamacpp")["state"] == "down"
    });
    assert!(down, "{}", p.source_status("llamacpp"));
    let _up = MockUpstream::start_on(port, |req| {
        if req.method == "GET" {
            return Reply::json(200, json!({"object": "list", "data": [{"id": "m"}]}));
        }
        Wire::Chat.reply(req.json()["stream"] == json!(true), false)
    });
    assert!(
        !p.model_ids().contains(&"m".to_string()),
        "down: not listed"
    );
    let resp = p.post(
        "/v1/chat/completions",
        Wire::Chat.request("llamacpp:m", false, false),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let up = wait_until(Duration::from_secs(5), || {
        p.source_status("llamacpp")["state"] == "up"
    });
    let s = p.source_status("llamacpp");
    assert!(up, "{s}");
    assert_eq!(s["up"], json!(true), "{s}");
    let metric = p.metric("routeplane_provider_up{provider=\"llamacpp\"}");
    assert_eq!(metric.as_deref(), Some("1"));
    assert!(p.model_ids().contains(&"m".to_string()), "listed again");
    p.wait_log("source llamacpp is up (1 model)");
}

#[test]
fn a_local_server_that_stops_is_down_with_its_reason_once_a_request_finds_it_gone() {
    // llama.cpp quits while Routeplane runs: the next request is refused there and
    // served by the next endpoint. The page and `/metrics` say the server is down, and
    // why, from then on, not "cooling down" (and up) until the next probe, up to
    // `detect.interval_secs` later.
    let local = MockUpstream::start(|req| {
        if req.method == "GET" {
            return Reply::json(200, json!({"object": "list", "data": [{"id": "m"}]}));
        }
        Wire::Chat.reply(req.json()["stream"] == json!(true), false)
    });
    let hosted =
        MockUpstream::start(|req| Wire::Chat.reply(req.json()["stream"] == json!(true), false));
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 600\nproviders:\n  llamacpp:\n    api_base: {}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [llamacpp:m, b:m]\n",
        local.url(),
        hosted.url()
    ));
    let found = wait_until(Duration::from_secs(5), || {
        p.source_status("llamacpp")["state"] == "up"
    });
    assert!(found, "{}", p.source_status("llamacpp"));
    drop(local);
    let resp = p.post(
        "/v1/chat/completions",
        Wire::Chat.request("smart", false, false),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    let down = wait_until(Duration::from_secs(5), || {
        p.source_status("llamacpp")["state"] == "down"
    });
    let s = p.source_status("llamacpp");
    assert!(down, "{s}");
    // Why, as the probe found it (refused, or reset by a server on its way out).
    assert!(!s["detail"].as_str().unwrap_or("").is_empty(), "{s}");
    let metric = p.metric("routeplane_provider_up{provider=\"llamacpp\"}");
    assert_eq!(metric.as_deref(), Some("0"));
}

#[test]
fn status_page_names_who_continued_a_rescued_stream() {
    if !have_chromium() {
        return;
    }
    // The trail said `1 rescue(s)`: who finished the answer was in the log line alone.
    use crate::support::answer::{self, Fault};
    let a = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "a", Fault::Cut(8)));
    let b = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "b", Fault::None));
    let p = Proxy::start(&format!(
        "providers:\n  a: {{api_base: {}, models: [m]}}\n  b: {{api_base: {}, prefill: true, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, b:m]}}\n",
        a.url(),
        b.url(),
    ));
    let s = p.stream(
        "/v1/chat/completions",
        Wire::Chat.request("smart", true, false),
    );
    assert_eq!(s.status, 200);
    let ready = wait_until(Duration::from_secs(10), || {
        p.get("/status.json").json()["recent"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });
    assert!(ready, "{}", p.get("/status.json").body);

    let dom = browser::dump_dom(&format!("{}/", p.url())).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        dom.contains("<td class=\"trail\">rescued by b:m</td>"),
        "the rescued stream's trail:\n{dom}"
    );
    assert!(dom.contains("<code>a:m</code>"), "started by a:\n{dom}");
}
