//! How a request that did not simply succeed is counted: a rescued stream, a broken
//! one, a client that left, a body that is not JSON.

use super::*;

#[test]
fn a_rescued_stream_counts_as_one_rescue_with_the_whole_answers_tokens() {
    use crate::support::answer::{self, CANONICAL, Fault};
    // `a` stalls after eight tokens; `b` continues the stream from them.
    let a = MockUpstream::start(|req| {
        answer::reply(
            Wire::Chat,
            req,
            "a",
            Fault::Stall(8, Duration::from_secs(3)),
        )
    });
    let b = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "b", Fault::None));
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    prefill: true\n    models: [m]\n  b:\n    api_base: {}\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\ntimeouts:\n  first_token_secs: 5\n  idle_secs: 1\nusage:\n  path: {}\n",
        a.url(),
        b.url(),
        ledger.display()
    ));
    // A chat client that does not ask for usage.
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!(Wire::Chat.read_stream(&s).text, CANONICAL);
    // Both upstreams were asked for their usage; the client gets none of it.
    for up in [&a, &b] {
        let asked = &up.requests()[0].json();
        assert_eq!(asked["stream_options"]["include_usage"], true, "{asked}");
    }
    assert!(b.requests()[0].json()["messages"][1]["role"] == "assistant");
    let chunks: Vec<Value> = s
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null) && c["choices"].is_array()),
        "no usage chunk reaches a client that did not ask: {}",
        s.text()
    );

    // The ledger: served by the endpoint that started it, one rescue, nothing failed,
    // and the tokens of the whole answer: the prompt without the prefill, the text
    // before the break counted as output (about four bytes a token, as the relay tells it).
    let line = &ledger_lines(&ledger, 1)[0];
    assert_eq!(line["served_by"], "a:m", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(
        (line["attempts"].as_u64(), line["rescues"].as_u64()),
        (Some(2), Some(1)),
        "{line}"
    );
    assert_eq!(line["failed"], json!([]), "{line}");
    assert!(line["ttft_ms"].as_f64().is_some(), "{line}");
    let before: String = answer::tokens(CANONICAL)[..8].concat();
    let rest = answer::tokens(&CANONICAL[before.len()..]).len() as u64;
    assert_eq!(line["tokens"]["input"], 10, "{line}");
    assert_eq!(
        line["tokens"]["output"].as_u64(),
        Some(rest + before.len().div_ceil(4) as u64),
        "{line}"
    );

    // /metrics: the rescue belongs to the endpoint that continued; no retry, no fail-over.
    let metrics = p.get("/metrics").body;
    assert_eq!(
        sample(&metrics, r#"routeplane_rescues_total{provider="b"}"#),
        1.0
    );
    assert_eq!(
        sample(&metrics, r#"routeplane_rescues_total{provider="a"}"#),
        0.0
    );
    assert_eq!(
        sample(&metrics, r#"routeplane_attempts_total{provider="a"}"#),
        1.0
    );
    assert_eq!(
        sample(&metrics, r#"routeplane_attempts_total{provider="b"}"#),
        1.0
    );
    assert_eq!(
        sample(&metrics, r#"routeplane_failovers_total{provider="a"}"#),
        0.0
    );
    let usage = usage_json(&p, &["--by", "provider"]);
    assert_eq!(usage["total"]["rescues"], 1, "{usage}");
}

#[test]
fn a_rescued_streams_rescuer_is_named_in_the_ledger_and_counted_by_usage() {
    use crate::support::answer::{self, CANONICAL, Fault};
    // The ledger named only the endpoint that started a rescued stream, with a count of
    // rescues: who finished the answer was in the log line alone, and `routeplane usage`
    // had nothing to count at it. `a` cannot continue and is cut after eight tokens;
    // `b` continues.
    let a = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "a", Fault::Cut(8)));
    let b = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "b", Fault::None));
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  a: {{api_base: {}, models: [m]}}\n  b: {{api_base: {}, prefill: true, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, b:m]}}\nusage: {{path: {}}}\n",
        a.url(),
        b.url(),
        ledger.display()
    ));
    let s = p.stream(
        "/v1/chat/completions",
        Wire::Chat.request("smart", true, false),
    );
    assert_eq!(Wire::Chat.read_stream(&s).text, CANONICAL, "{}", s.text());
    // The head went out with the first content: it can only name who started.
    let provider = s.headers.iter().find(|(k, _)| k == "x-routeplane-provider");
    assert_eq!(provider.map(|(_, v)| v.as_str()), Some("a"));
    p.wait_log("rescued=1 rescued_by=b:m");

    let line = &ledger_lines(&ledger, 1)[0];
    assert_eq!(
        (&line["served_by"], &line["rescues"], &line["rescued_by"]),
        (&json!("a:m"), &json!(1), &json!(["b:m"])),
        "{line}"
    );
    // The request (and its tokens) stays where its answer started; the continuation
    // counts at `b`, which has a row though it started nothing, as /metrics has it.
    let u = usage_json(&p, &["--by", "model"]);
    let rows: Vec<(&Value, &Value, &Value, &Value)> = (u["groups"].as_array().unwrap().iter())
        .map(|g| (&g["key"], &g["requests"], &g["rescues"], &g["continued"]))
        .collect();
    assert_eq!(
        rows,
        [
            (&json!("a:m"), &json!(1), &json!(1), &json!(0)),
            (&json!("b:m"), &json!(0), &json!(0), &json!(1)),
        ],
        "{u}"
    );
    assert_eq!(
        (&u["total"]["rescues"], &u["total"]["continued"]),
        (&json!(1), &json!(1))
    );
    let table = usage_out(&p, &[]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][5..7], ["RESCUES", "CONTINUED"], "{table}");
    assert_eq!(rows[2][..7], ["b", "0", "0", "0", "0", "0", "1"], "{table}");
    // The status page's request list names the rescuer too.
    let recent = || {
        let status: Value = serde_json::from_str(&p.get("/status.json").body).unwrap();
        status["recent"][0]["rescued_by"].clone()
    };
    assert!(
        wait_until(Duration::from_secs(5), || recent() == json!(["b:m"])),
        "{}",
        recent()
    );
}

#[test]
fn a_broken_stream_is_an_error_everywhere_and_a_stream_the_client_left_is_not() {
    use crate::support::upstream::chat_events;
    // `brk` closes its stream after two chunks and cannot be continued; `cut` can, but
    // its continuation breaks too, and one is allowed. `good` finishes; `slow` takes
    // seconds, and its client leaves.
    let brk = MockUpstream::always(Reply::SseThenBreak(chat_events(2, false), Duration::ZERO));
    let cut = MockUpstream::always(Reply::SseThenBreak(chat_events(2, false), Duration::ZERO));
    let good = MockUpstream::always(Reply::chat_stream(2, Duration::ZERO));
    let slow = MockUpstream::always(Reply::chat_stream(200, Duration::from_millis(20)));
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  brk: {{api_base: {}, models: [m]}}\n  cut: {{api_base: {}, prefill: true, models: [m]}}\n  good: {{api_base: {}, models: [m]}}\n  slow: {{api_base: {}, models: [m]}}\nfailover: {{max_rescues: 1}}\nusage: {{path: {}}}\n",
        brk.url(),
        cut.url(),
        good.url(),
        slow.url(),
        ledger.display()
    ));
    let stream = |path: &str, body: Value| {
        let s = p.stream(path, body);
        assert_eq!(s.status, 200, "{}", s.text());
        s
    };
    // One at a time, each line written before the next request: lines in order.
    let s = stream(
        "/v1/chat/completions",
        Wire::Chat.request("brk:m", true, false),
    );
    assert!(
        s.text().contains("no endpoint could continue it"),
        "{}",
        s.text()
    );
    ledger_lines(&ledger, 1);
    let s = stream(
        "/v1/messages",
        Wire::Anthropic.request("brk:m", true, false),
    );
    assert!(s.text().contains("event: error"), "{}", s.text());
    ledger_lines(&ledger, 2);
    let s = stream(
        "/v1/chat/completions",
        Wire::Chat.request("cut:m", true, false),
    );
    assert!(
        s.text().contains("no more continuations are allowed"),
        "{}",
        s.text()
    );
    ledger_lines(&ledger, 3);
    stream(
        "/v1/chat/completions",
        Wire::Chat.request("good:m", true, false),
    );
    ledger_lines(&ledger, 4);
    p.leave_mid_stream("slow:m");
    let lines = ledger_lines(&ledger, 5);

    // The ledger: the head's 200 and how the stream ended; older readers' `stream`
    // is as it was.
    let ends: Vec<_> = (lines.iter())
        .map(|l| {
            (
                l["served_by"].as_str().unwrap(),
                l["status"].as_u64().unwrap(),
                l["stream"].clone(),
                l["stream_end"].clone(),
                l["rescues"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ends,
        [
            ("brk:m", 200, json!(true), json!("broken"), 0),
            ("brk:m", 200, json!(true), json!("broken"), 0),
            ("cut:m", 200, json!(true), json!("broken"), 1),
            ("good:m", 200, json!(true), json!("complete"), 0),
            ("slow:m", 499, json!(true), json!("client_closed"), 0),
        ],
        "{lines:#?}"
    );
    assert_eq!(lines[1]["inbound"], "anthropic");

    // `routeplane usage`: a broken stream is an error, a client that left is not.
    let u = usage_json(&p, &["--by", "model"]);
    let row =
        |k: &str, n: u64, e: u64, r: u64| (k.to_string(), json!(n), json!(e), json!(0), json!(r));
    assert_eq!(
        usage_rows(&u),
        [
            row("brk:m", 2, 2, 0),
            row("cut:m", 1, 1, 1),
            row("good:m", 1, 0, 0),
            row("slow:m", 1, 0, 0)
        ],
        "{u}"
    );
    assert_eq!(u["total"]["errors"], 3, "{u}");

    // /metrics: every stream by how it ended, beside the 200s the heads said.
    let metrics = p.get("/metrics").body;
    promtool_check(&metrics);
    for (provider, end, n) in [
        ("brk", "broken", 2.0),
        ("cut", "broken", 1.0),
        ("good", "complete", 1.0),
        ("slow", "client_closed", 1.0),
    ] {
        let series = format!(
            "routeplane_streams_total{{provider=\"{provider}\",model=\"m\",end=\"{end}\"}}"
        );
        assert_eq!(sample(&metrics, &series), n, "{series}");
    }
    assert_eq!(
        sample(
            &metrics,
            r#"routeplane_requests_total{provider="brk",model="m",status="200",inbound="chat_completions"}"#
        ),
        1.0
    );

    // /status.json: today's errors per source, and the recent rows say how they ended.
    let s = p.get("/status.json").json();
    let errors: Vec<_> = (s["sources"].as_array().unwrap().iter())
        .map(|x| (x["id"].as_str().unwrap(), x["today"]["errors"].clone()))
        .collect();
    assert_eq!(
        errors,
        [
            ("brk", json!(2)),
            ("cut", json!(1)),
            ("good", json!(0)),
            ("slow", json!(0))
        ],
        "{s}"
    );
    let recent: Vec<_> = (s["recent"].as_array().unwrap().iter())
        .map(|r| r["stream_end"].as_str().unwrap())
        .collect();
    assert_eq!(
        recent,
        ["client_closed", "complete", "broken", "broken", "broken"],
        "newest first: {s}"
    );
}

#[test]
fn a_client_that_leaves_while_an_endpoint_is_asked_counts_at_that_endpoint() {
    // `smart` is bad:m, which fails (and is retried), then hang:m, which says nothing
    // for 8 s: the client leaves while hang:m is asked.
    let bad = MockUpstream::always(Reply::json(503, json!({"error": {"message": "busy"}})));
    let hang = MockUpstream::always(Reply::Hang(Duration::from_secs(8)));
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  bad: {{api_base: {}, models: [m]}}\n  hang: {{api_base: {}, models: [m]}}\nmodels:\n  smart: {{endpoints: [bad:m, hang:m]}}\nfailover: {{backoff_ms: 10}}\nusage: {{path: {}}}\n",
        bad.url(),
        hang.url(),
        ledger.display()
    ));
    let (log, _) = p.leave_once_asked(
        "/v1/chat/completions",
        Wire::Chat.request("smart", false, false),
        || hang.count() == 1,
    );
    assert!(log.contains("hang:m→client_closed"), "{log}");

    // The ledger names the endpoint the client was waiting for; nothing answered.
    let line = &ledger_lines(&ledger, 1)[0];
    assert_eq!(
        (&line["status"], &line["served_by"], &line["abandoned"]),
        (&json!(499), &Value::Null, &json!("hang:m")),
        "{line}"
    );
    let failed: Vec<_> = (line["failed"].as_array().unwrap().iter())
        .map(|f| f["endpoint"].as_str().unwrap())
        .collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|e| *e == "bad:m"),
        "{line}"
    );

    // `routeplane usage`: at hang, moved on to from bad, and not hang's error.
    // bad only failed: a row with no request, its failed attempts.
    let u = usage_json(&p, &["--by", "model"]);
    let one = |k: &str| (k.to_string(), json!(1), json!(0), json!(1), json!(0));
    let none = |k: &str| (k.to_string(), json!(0), json!(0), json!(0), json!(0));
    assert_eq!(usage_rows(&u), [none("bad:m"), one("hang:m")], "{u}");
    assert_eq!(u["groups"][0]["failed"], failed.len(), "{u}");
    let u = usage_json(&p, &["--by", "provider"]);
    assert_eq!(
        usage_rows(&u),
        [none("bad"), one("hang")],
        "no `-` row: {u}"
    );

    // The status page's row shows where it was left; only bad's failures are errors.
    let s = p.get("/status.json").json();
    assert_eq!(s["recent"][0]["abandoned"], "hang:m", "{s}");
    assert_eq!(s["sources"][1]["id"], "hang");
    assert_eq!(s["sources"][1]["today"]["errors"], 0, "{s}");
}

#[test]
fn a_body_that_is_not_json_has_no_model_in_the_log_the_ledger_the_status_page_or_usage() {
    let up = chat_mock();
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n",
        up.url(),
        ledger.display()
    ));
    let resp = p.send(
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json")],
        br#"{"model": "m", "messages": oops"#,
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    let logged = p.wait_log("POST /v1/chat/completions");
    assert!(logged.contains(" model=- "), "{logged}");
    // JSON says "none" as null, where the log line says `-`; an empty name would be
    // a name.
    let line = &ledger_lines(&ledger, 1)[0];
    assert_eq!(line["model"], Value::Null, "{line}");
    let s = p.get("/status.json").json();
    assert_eq!(s["recent"][0]["model"], Value::Null, "{s}");
    assert_eq!(s["recent"][0]["status"], 400, "{s}");
    // `routeplane usage` reads the line (under `-`: no endpoint was asked).
    let u = usage_json(&p, &[]);
    assert_eq!(usage_rows(&u)[0].0, "-", "{u}");
    assert_eq!(u["total"]["requests"], 1, "{u}");
    assert_eq!(u["total"]["errors"], 1, "{u}");
}
