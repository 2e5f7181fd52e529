//! Seeing what the proxy did: the usage ledger, `routeplane usage`, `/metrics` and
//! `/status.json` agree with what the mocks served, tokens included; an unwritable ledger
//! never fails a request; the observability endpoints want a key when keys are set.

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
    let stdout = crate::support::stdout_of(
        Command::new(bin())
            .arg("usage")
            .args(args)
            .args(["--json", "-c"])
            .arg(p.dir.path().join("routeplane.yaml"))
            .env("HOME", p.dir.path()),
    );
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn ledger_usage_and_metrics_agree_with_what_the_mocks_served() {
    let (good, anth, resp) = (chat_mock(), mock(Wire::Anthropic), mock(Wire::Responses));
    // Its error text quotes the prompt, as some servers do: it must not reach the ledger.
    let bad = MockUpstream::always(Reply::Json(
        503,
        r#"{"error":{"message":"overloaded while reading: be brief"}}"#.into(),
    ));
    // A stream that ends before its first event: moved past, unseen by the client.
    let flaky = MockUpstream::always(Reply::SseEmpty);
    let ledger_dir = Dir::new();
    let ledger = ledger_dir.path().join("usage.jsonl");
    let p = Proxy::start(&config(
        &good.url(),
        &bad.url(),
        &anth.url(),
        &resp.url(),
        &flaky.url(),
        ledger.to_str().unwrap(),
    ));

    // Each request's line is written after its answer went out: the next request
    // waits for it, so that the lines' order is the requests' order.
    let written = |n| {
        ledger_lines(&ledger, n);
    };
    // 1. Chat, whole answer: 5 in, 2 out.
    assert_eq!(
        p.post(
            "/v1/chat/completions",
            Wire::Chat.request("good:m", false, false)
        )
        .status,
        200
    );
    written(1);
    // 2. Chat stream, usage not asked for: counted, and the client gets no usage chunk.
    let s = p.stream(
        "/v1/chat/completions",
        Wire::Chat.request("good:m", true, false),
    );
    assert_eq!(Wire::Chat.read_stream(&s).text, "Hello there");
    assert!(
        s.data().last().is_some_and(|d| d == "[DONE]"),
        "{:?}",
        s.data()
    );
    assert!(
        !s.text().contains("\"usage\":{"),
        "the client did not ask for usage: {}",
        s.text()
    );
    written(2);
    // 3. Chat stream that asks for usage: it gets the chunk.
    let mut asks = Wire::Chat.request("good:m", true, false);
    asks["stream_options"] = json!({"include_usage": true});
    let s = p.stream("/v1/chat/completions", asks);
    assert!(
        s.data()
            .iter()
            .any(|d| d.contains("\"completion_tokens\":4")),
        "{}",
        s.text()
    );
    written(3);
    // 4. Fail-over: bad answers 503 (twice: a 503 is retried once), good serves.
    let r = p.post(
        "/v1/chat/completions",
        Wire::Chat.request("smart", false, false),
    );
    assert_eq!(
        (r.status, r.header("x-routeplane-provider")),
        (200, Some("good"))
    );
    written(4);
    // 5-8. The other protocols, same-protocol and translated, streamed and not.
    let s = p.stream(
        "/v1/messages",
        Wire::Anthropic.request("anth:m", true, false),
    );
    assert!(Wire::Anthropic.read_stream(&s).ended);
    written(5);
    assert_eq!(
        p.post(
            "/v1/messages",
            Wire::Anthropic.request("good:m", false, false)
        )
        .status,
        200
    );
    written(6);
    let s = p.stream(
        "/v1/responses",
        Wire::Responses.request("resp:m", true, false),
    );
    assert!(Wire::Responses.read_stream(&s).ended);
    written(7);
    let s = p.stream(
        "/v1/responses",
        Wire::Responses.request("good:m", true, false),
    );
    assert!(Wire::Responses.read_stream(&s).ended);
    written(8);
    // 9. An unknown model: an error nobody served.
    assert_eq!(
        p.post(
            "/v1/chat/completions",
            Wire::Chat.request("nope", false, false)
        )
        .status,
        404
    );
    written(9);
    // 10. A streamed fail-over: flaky's stream ends before its first event, anth serves.
    let s = p.stream(
        "/v1/messages",
        Wire::Anthropic.request("careful", true, false),
    );
    assert_eq!(Wire::Anthropic.read_stream(&s).text, "Hello there");
    assert_eq!(s.header("x-routeplane-attempts"), Some("2"));

    // (served_by, inbound, stream, input, output, attempts)
    let want = [
        ("good:m", "chat_completions", false, 5, 2, 1),
        ("good:m", "chat_completions", true, 11, 4, 1),
        ("good:m", "chat_completions", true, 11, 4, 1),
        ("good:m", "chat_completions", false, 5, 2, 3),
        ("anth:m", "anthropic", true, 5, 2, 1),
        ("good:m", "anthropic", false, 5, 2, 1),
        ("resp:m", "responses", true, 5, 2, 1),
        ("good:m", "responses", true, 11, 4, 1),
    ];
    let lines = ledger_lines(&ledger, 10);
    assert_eq!(lines.len(), 10);
    for (line, (by, inbound, stream, input, output, attempts)) in lines.iter().zip(want).chain(
        lines[9..]
            .iter()
            .zip([("anth:m", "anthropic", true, 5, 2, 2)]),
    ) {
        let got = (
            line["served_by"].as_str().unwrap(),
            line["inbound"].as_str().unwrap(),
            line["stream"].as_bool().unwrap(),
            line["tokens"]["input"].as_u64().unwrap(),
            line["tokens"]["output"].as_u64().unwrap(),
            line["attempts"].as_u64().unwrap(),
        );
        assert_eq!(
            got,
            (by, inbound, stream, input, output, attempts),
            "{line}"
        );
        assert_eq!(line["status"], 200, "{line}");
        assert!(line["ttft_ms"].as_f64().is_some_and(|t| t > 0.0), "{line}");
        assert!(line["ttfb_ms"].as_f64().unwrap() <= line["total_ms"].as_f64().unwrap());
    }
    assert_eq!(lines[1]["tokens"]["cached_input"], 3);
    assert_eq!(lines[0]["model"], "good:m");
    assert_eq!(lines[3]["model"], "smart");
    let bad = json!({"endpoint": "bad:m", "status": 503, "reason": "server error"});
    assert_eq!(
        lines[3]["failed"],
        json!([bad, bad]),
        "each attempt, the retry too"
    );
    assert_eq!(
        (
            &lines[8]["status"],
            &lines[8]["served_by"],
            &lines[8]["model"]
        ),
        (&json!(404), &Value::Null, &json!("nope"))
    );
    assert_eq!(
        lines[9]["failed"],
        json!([{"endpoint": "flaky:m", "status": null, "reason": "the stream ended without its end marker"}])
    );
    let text = std::fs::read_to_string(&ledger).unwrap();
    for secret in ["be brief", "Hello", "there", "hi\""] {
        assert!(
            !text.contains(secret),
            "prompt or answer text `{secret}` in the ledger"
        );
    }

    // `routeplane usage` sums the same.
    let u = usage_json(&p, &[]);
    let total = &u["total"];
    assert_eq!(
        [
            &total["requests"],
            &total["errors"],
            &total["failovers"],
            &total["input_tokens"],
            &total["output_tokens"]
        ],
        [&json!(10), &json!(1), &json!(2), &json!(63), &json!(24)],
        "{u}"
    );
    let group = |key: &str| {
        u["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == key)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (&group("good")["requests"], &group("good")["input_tokens"]),
        (&json!(6), &json!(48))
    );
    assert_eq!(group("-")["errors"], 1);
    assert!(group("good")["ttft_p95_ms"].as_f64().is_some());
    let by_model = usage_json(&p, &["--by", "model"]);
    assert_eq!(by_model["groups"][0]["key"], "-");
    assert_eq!(by_model["groups"].as_array().unwrap().len(), 4);
    let by_day = usage_json(&p, &["--by", "day", "--since", "24h"]);
    assert_eq!(by_day["groups"].as_array().unwrap().len(), 1);
    assert_eq!(by_day["total"]["requests"], 10);
    assert_eq!(
        usage_json(&p, &["--since", "2999-01-01"])["total"]["requests"],
        0
    );

    // /metrics counts the same, in a format promtool accepts.
    let m = p.get("/metrics");
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let t = &m.body;
    promtool_check(t);
    let req = |provider: &str, status: u16, inbound: &str| {
        let model = if provider == "-" { "-" } else { "m" };
        sample(
            t,
            &format!(
                "routeplane_requests_total{{provider=\"{provider}\",model=\"{model}\",status=\"{status}\",inbound=\"{inbound}\"}}"
            ),
        )
    };
    assert_eq!(req("good", 200, "chat_completions"), 4.0);
    assert_eq!(req("good", 200, "anthropic"), 1.0);
    assert_eq!(req("good", 200, "responses"), 1.0);
    assert_eq!(req("anth", 200, "anthropic"), 2.0);
    assert_eq!(req("resp", 200, "responses"), 1.0);
    assert_eq!(req("-", 404, "chat_completions"), 1.0);
    assert_eq!(
        sample(t, r#"routeplane_attempts_total{provider="good"}"#),
        6.0
    );
    assert_eq!(
        sample(t, r#"routeplane_attempts_total{provider="bad"}"#),
        2.0
    );
    assert_eq!(
        sample(t, r#"routeplane_retries_total{provider="bad"}"#),
        1.0
    );
    assert_eq!(
        sample(t, r#"routeplane_retries_total{provider="good"}"#),
        0.0
    );
    assert_eq!(
        sample(t, r#"routeplane_failovers_total{provider="bad"}"#),
        1.0
    );
    assert_eq!(
        sample(t, r#"routeplane_failovers_total{provider="flaky"}"#),
        1.0
    );
    assert_eq!(
        sample(t, r#"routeplane_failovers_total{provider="good"}"#),
        0.0
    );
    let tokens = |p: &str, d: &str| {
        sample(
            t,
            &format!("routeplane_tokens_total{{provider=\"{p}\",direction=\"{d}\"}}"),
        )
    };
    assert_eq!(
        (tokens("good", "input"), tokens("good", "output")),
        (48.0, 18.0)
    );
    assert_eq!(tokens("good", "cached_input"), 9.0);
    assert_eq!(
        (tokens("anth", "input"), tokens("resp", "output")),
        (10.0, 2.0)
    );
    assert_eq!(
        sample(
            t,
            r#"routeplane_time_to_first_token_seconds_count{provider="good"}"#
        ),
        6.0
    );
    assert_eq!(
        sample(
            t,
            r#"routeplane_request_duration_seconds_bucket{provider="good",le="+Inf"}"#
        ),
        6.0
    );
    assert_eq!(sample(t, r#"routeplane_provider_up{provider="bad"}"#), 1.0);
    assert!(sample(t, r#"routeplane_provider_cooldown_seconds{provider="bad"}"#) > 0.0);
    assert_eq!(
        sample(
            t,
            r#"routeplane_provider_cooldown_seconds{provider="good"}"#
        ),
        0.0
    );
    assert_eq!(sample(t, "routeplane_requests_in_flight"), 0.0);
    assert_eq!(sample(t, "routeplane_open_streams"), 0.0);
    assert!(t.contains(&format!(
        "routeplane_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));

    // /status.json: the page's data.
    let s = p.get("/status.json").json();
    let ids: Vec<&str> = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["good", "bad", "anth", "resp", "flaky"],
        "configured sources, in file order"
    );
    let good_today = &s["sources"][0]["today"];
    assert_eq!(
        (&good_today["requests"], &good_today["input_tokens"]),
        (&json!(6), &json!(48))
    );
    assert_eq!(s["sources"][1]["state"], "cooling down");
    assert_eq!(s["sources"][4]["state"], "cooling down");
    assert_eq!(s["recent"].as_array().unwrap().len(), 10);
    assert_eq!(s["recent"][0]["model"], "careful", "newest first");
    assert_eq!(s["recent"][1]["model"], "nope");
    assert_eq!(s["recent"][6]["failed"][0]["endpoint"], "bad:m");
}

#[test]
fn a_retry_or_a_lone_failed_endpoint_is_not_counted_as_a_failover() {
    let (good, bad) = (
        chat_mock(),
        MockUpstream::always(Reply::json(503, json!({"error": {"message": "busy"}}))),
    );
    // Fails once, then answers: a retry of the same endpoint.
    let once = MockUpstream::script(vec![
        Reply::json(503, json!({"error": {"message": "busy"}})),
        Reply::json(200, crate::support::upstream::chat_answer("ok")),
    ]);
    let ledger_dir = Dir::new();
    let ledger = ledger_dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  good: {{api_base: {}, models: [m]}}\n  bad: {{api_base: {}, models: [m]}}\n  once: {{api_base: {}, models: [m]}}\nmodels:\n  smart: {{endpoints: [bad:m, good:m]}}\nfailover: {{backoff_ms: 10}}\nusage: {{path: {}}}\n",
        good.url(),
        bad.url(),
        once.url(),
        ledger.display()
    ));
    for (n, (model, status)) in [("smart", 200), ("bad:m", 503), ("once:m", 200)]
        .into_iter()
        .enumerate()
    {
        let resp = p.post(
            "/v1/chat/completions",
            Wire::Chat.request(model, false, false),
        );
        assert_eq!(resp.status, status, "{model}: {}", resp.body);
        ledger_lines(&ledger, n + 1);
    }
    let u = usage_json(&p, &["--by", "model"]);
    assert_eq!(u["total"]["requests"], 3, "{u}");
    assert_eq!(u["total"]["failovers"], 1, "only `smart` moved on: {u}");
    // The request no endpoint answered counts where its error came from, not under `-`.
    let keys: Vec<_> = (u["groups"].as_array().unwrap().iter())
        .map(|g| {
            (
                g["key"].as_str().unwrap(),
                g["requests"].clone(),
                g["errors"].clone(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("bad:m", json!(1), json!(1)),
            ("good:m", json!(1), json!(0)),
            ("once:m", json!(1), json!(0))
        ],
        "{u}"
    );
    // As `/metrics` counts them.
    let metrics = p.get("/metrics").body;
    let counted = ["bad", "good", "once"].map(|id| {
        sample(
            &metrics,
            &format!("routeplane_failovers_total{{provider=\"{id}\"}}"),
        )
    });
    assert_eq!(counted.iter().sum::<f64>(), 1.0, "{metrics}");
    // And each request where `usage` has it, in `/metrics` and on the status page.
    let requests = |id: &str, status: u16| {
        let series = format!(
            "routeplane_requests_total{{provider=\"{id}\",model=\"m\",status=\"{status}\",inbound=\"chat_completions\"}}"
        );
        sample(&metrics, &series)
    };
    assert_eq!(
        [
            requests("bad", 503),
            requests("good", 200),
            requests("once", 200)
        ],
        [1.0, 1.0, 1.0],
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"routeplane_requests_total{provider="-""#),
        "{metrics}"
    );
    let s = p.get("/status.json").json();
    for source in s["sources"].as_array().unwrap() {
        assert_eq!(source["today"]["requests"], 1, "{source}");
    }
}

#[test]
fn a_full_or_unwritable_ledger_never_fails_a_request() {
    let up = chat_mock();
    // /dev/full: every write fails with "no space left on device".
    let full = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: /dev/full\n",
        up.url()
    ));
    for _ in 0..3 {
        let r = full.post(
            "/v1/chat/completions",
            Wire::Chat.request("m", false, false),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    full.wait_log("usage ledger `/dev/full`: cannot write to it");
    assert!(wait_until(Duration::from_secs(5), || {
        sample(
            &full.get("/metrics").body,
            "routeplane_usage_ledger_errors_total",
        ) == 3.0
    }));
    let warnings = full
        .log()
        .iter()
        .filter(|l| l.contains("usage ledger"))
        .count();
    assert_eq!(
        warnings,
        1,
        "one warning, not one per request: {:#?}",
        full.log()
    );
    assert!(
        std::path::Path::new("/dev/full").exists(),
        "a device is never rotated away"
    );

    // A directory that cannot be created (its parent is a file): warned at start.
    let dir = Dir::new();
    let file = dir.write("not-a-dir", "x");
    let blocked = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}/usage.jsonl\n",
        up.url(),
        file.display()
    ));
    let s = blocked.stream("/v1/chat/completions", Wire::Chat.request("m", true, false));
    assert_eq!(Wire::Chat.read_stream(&s).text, "Hello there");
    let warning = blocked.wait_log("usage ledger");
    assert!(warning.contains("cannot open it"), "{warning}");
}

#[test]
fn the_ledger_can_be_turned_off_and_defaults_to_the_state_dir() {
    let up = chat_mock();
    let on = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    on.post(
        "/v1/chat/completions",
        Wire::Chat.request("m", false, false),
    );
    // The proxy under test has XDG_STATE_HOME inside its own directory.
    let default = on.dir.path().join("state/routeplane/usage.jsonl");
    assert_eq!(ledger_lines(&default, 1).len(), 1);

    let off = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  enabled: false\n",
        up.url()
    ));
    assert_eq!(
        off.post(
            "/v1/chat/completions",
            Wire::Chat.request("m", false, false)
        )
        .status,
        200
    );
    // Counted once the client has its answer, so a moment after it.
    let series = r#"routeplane_tokens_total{provider="good",direction="input"} 5"#;
    assert!(wait_until(Duration::from_secs(5), || off
        .get("/metrics")
        .body
        .contains(series)));
    assert!(
        !off.dir.path().join("state").exists(),
        "nothing written when off"
    );
}

#[test]
fn metrics_and_status_want_a_key_when_keys_are_set() {
    let up = chat_mock();
    let p = Proxy::start(&format!(
        "skip_auth: false\nkeys: [sekrit]\nproviders:\n  good:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    for path in ["/metrics", "/status.json"] {
        assert_eq!(p.get(path).status, 401, "{path} without a key");
        let wrong = p.send("GET", path, &[("Authorization", "Bearer nope")], b"");
        assert_eq!(wrong.status, 401, "{path} with a wrong key");
        let ok = p.send("GET", path, &[("Authorization", "Bearer sekrit")], b"");
        assert_eq!(ok.status, 200, "{path} with the key");
        // Anthropic's SDKs send the key as `x-api-key`.
        let ok = p.send("GET", path, &[("X-Api-Key", "sekrit")], b"");
        assert_eq!(ok.status, 200, "{path} with the key as x-api-key");
        let wrong = p.send("GET", path, &[("x-api-key", "nope")], b"");
        assert_eq!(wrong.status, 401, "{path} with a wrong x-api-key");
    }
    // The page itself holds no data: it loads, and asks for a key.
    let page = p.send("GET", "/", &[("Accept", "text/html")], b"");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("sessionStorage") && page.body.contains("/status.json"));
    assert!(
        page.body.len() < 30 * 1024,
        "the page is {} bytes",
        page.body.len()
    );
    for accept in [
        "application/json",
        "application/json, */*;q=0.1",
        "text/plain",
    ] {
        let json = p.send("GET", "/", &[("Accept", accept)], b"");
        assert_eq!(json.json(), json!({"status": "ok"}), "Accept: {accept}");
    }
    let curl = p.send("GET", "/", &[("Accept", "*/*")], b"");
    assert!(curl.body.starts_with("<!doctype html>"), "{}", curl.body);
    assert_eq!(p.get("/health").json(), json!({"status": "ok"}));
    // HEAD / answers what GET / would for the same Accept, without the body.
    for (accept, get) in [
        ("text/html", &page),
        (
            "application/json",
            &p.send("GET", "/", &[("Accept", "application/json")], b""),
        ),
    ] {
        let head = p.raw(&format!(
            "HEAD / HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        ));
        assert!(
            head.starts_with("HTTP/1.1 200 "),
            "HEAD / ({accept}): {head}"
        );
        assert!(
            head.ends_with("\r\n\r\n"),
            "HEAD / ({accept}) has no body: {head:?}"
        );
        let lower = head.to_ascii_lowercase();
        let content_type = get.header("content-type").unwrap().to_ascii_lowercase();
        assert!(
            lower.contains(&format!("content-type: {content_type}\r\n")),
            "{head}"
        );
        assert!(
            lower.contains(&format!("content-length: {}\r\n", get.body.len())),
            "{head}"
        );
    }
}

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

#[test]
fn todays_totals_and_recent_requests_survive_a_restart() {
    let up = chat_mock();
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    // A line from another day comes first: listed among the recent, not in today's totals.
    let old = r#"{"time":"2020-01-01T10:00:00.000Z","inbound":"chat_completions","model":"m","served_by":"good:m","status":200,"stream":false,"attempts":1,"rescues":0,"failed":[],"ttfb_ms":1.0,"ttft_ms":1.0,"total_ms":2.0,"tokens":{"input":1000,"output":1000,"cached_input":null,"reasoning":null}}"#;
    std::fs::write(&ledger, format!("{old}\n")).unwrap();
    let yaml = format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n",
        up.url(),
        ledger.display()
    );
    let first = Proxy::start(&yaml);
    first.post(
        "/v1/chat/completions",
        Wire::Chat.request("m", false, false),
    );
    assert_eq!(ledger_lines(&ledger, 2).len(), 2);
    drop(first);

    let second = Proxy::start(&yaml);
    let seeded = wait_until(Duration::from_secs(10), || {
        second.get("/status.json").json()["recent"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    });
    assert!(seeded, "{}", second.get("/status.json").body);
    let s = second.get("/status.json").json();
    assert_eq!(s["sources"][0]["today"]["requests"], 1, "{s}");
    assert_eq!(s["sources"][0]["today"]["input_tokens"], 5, "{s}");
    assert_eq!(
        s["recent"][1]["time"], "2020-01-01T10:00:00.000Z",
        "oldest last"
    );
    // Counters are per process: Prometheus sees a restart as a reset.
    assert!(
        !second
            .get("/metrics")
            .body
            .contains("routeplane_requests_total{")
    );
}

#[test]
fn a_line_cut_off_by_an_earlier_run_does_not_swallow_the_next() {
    let up = chat_mock();
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    // A run stopped (or a disk filled) in the middle of writing its last line.
    std::fs::write(
        &ledger,
        r#"{"time":"2020-01-01T10:00:00.000Z","inbound":"chat"#,
    )
    .unwrap();
    let config = dir.write(
        "c.yaml",
        &format!(
            "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n",
            up.url(),
            ledger.display()
        ),
    );
    let p = Proxy::start(&dir.read("c.yaml"));
    p.post(
        "/v1/chat/completions",
        Wire::Chat.request("m", false, false),
    );
    let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read().lines().count() >= 2),
        "{}",
        read()
    );
    let text = read();
    let lines: Vec<&str> = text.lines().collect();
    let line: Value = serde_json::from_str(lines[1]).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(line["served_by"], "good:m");
    let out = Command::new(bin())
        .args(["usage", "--by", "provider", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(r#""requests":1"#), "{said}");
}

#[test]
fn sources_show_logins_until_they_expire_and_leave_out_unused_builtins() {
    let up = chat_mock();
    let p = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    // A ChatGPT login, as `routeplane login openai-codex` stores it (read when it changes).
    let login = json!({"version": 1, "credentials": {"openai-codex": {
        "access_token": "at-1", "refresh_token": "rt-1", "expires_at": 4102444800u64}}});
    std::fs::create_dir_all(p.dir.path().join("data/routeplane")).unwrap();
    p.dir.write("data/routeplane/auth.json", &login.to_string());
    let s = p.get("/status.json").json();
    let sources = s["sources"].as_array().unwrap();
    let ids: Vec<&str> = sources.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["good", "openai-codex"], "{s}");
    assert_eq!(sources[1]["state"], "logged in");
    assert_eq!(sources[1]["detail"], "until 2100-01-01T00:00:00.000Z");
    assert_eq!(sources[1]["kind"], "subscription");
    let m = p.get("/metrics").body;
    assert_eq!(
        sample(&m, r#"routeplane_provider_up{provider="openai-codex"}"#),
        1.0
    );
    assert!(
        !m.contains(r#"provider="openrouter""#),
        "unused built-ins are left out"
    );
    assert!(!s.to_string().contains("at-1"), "no token in the status");
}

#[test]
fn the_ledger_rotates_at_max_bytes_keeping_one_previous_file() {
    let up = chat_mock();
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n  max_bytes: 4096\n",
        up.url(),
        ledger.display()
    ));
    for _ in 0..30 {
        assert_eq!(
            p.post(
                "/v1/chat/completions",
                Wire::Chat.request("m", false, false)
            )
            .status,
            200
        );
    }
    let previous = dir.path().join("usage.jsonl.1");
    let lines = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    };
    // Each request is counted, then its line appended at once: all 30 are in the files
    // a moment after /metrics counts them.
    let counted = r#"routeplane_requests_total{provider="good",model="m",status="200",inbound="chat_completions"} 30"#;
    assert!(wait_until(Duration::from_secs(5), || p
        .get("/metrics")
        .body
        .contains(counted)));
    std::thread::sleep(Duration::from_millis(300));
    // Lines are ~300 bytes: the file turned over more than once; the oldest lines are gone.
    assert!(
        lines(&previous) > 0 && lines(&previous) + lines(&ledger) < 30,
        "current {} previous {}",
        lines(&ledger),
        lines(&previous)
    );
    for path in [&ledger, &previous] {
        let size = std::fs::metadata(path).unwrap().len();
        assert!(size <= 4096 + 512, "{} is {size} bytes", path.display());
    }
    let kept = (lines(&previous) + lines(&ledger)) as u64;
    assert_eq!(usage_json(&p, &[])["total"]["requests"], kept);
}

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
    let u = usage_json(&p, &["--by", "model"]);
    let one = |k: &str| (k.to_string(), json!(1), json!(0), json!(1), json!(0));
    assert_eq!(usage_rows(&u), [one("hang:m")], "{u}");
    let u = usage_json(&p, &["--by", "provider"]);
    assert_eq!(usage_rows(&u), [one("hang")], "no `-` row: {u}");

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

#[test]
fn a_ledger_lines_time_is_when_the_request_arrived_as_the_log_lines_is() {
    // A stream of four events 400 ms apart: it ends over a second after it began.
    let up = MockUpstream::always(Reply::chat_stream(4, Duration::from_millis(400)));
    let dir = Dir::new();
    let ledger = dir.path().join("usage.jsonl");
    let p = Proxy::start(&format!(
        "providers:\n  good:\n    api_base: {}\n    models: [m]\nusage:\n  path: {}\n",
        up.url(),
        ledger.display()
    ));
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(s.status, 200);
    let logged = p.wait_log("POST /v1/chat/completions");
    let total = crate::support::proxy::logged_ms(&logged, "total_ms");
    assert!(total >= 1000.0, "{logged}");
    let arrived = logged.split(' ').next().unwrap();
    // `usage --since` picks requests by this time: when they were made, not when a
    // long stream ended.
    let line = &ledger_lines(&ledger, 1)[0];
    assert_eq!(line["time"], arrived, "{line}\n{logged}");
    let status = p.get("/status.json").json();
    assert_eq!(status["recent"][0]["time"], arrived, "{status}");
}
