//! The ledger, `routeplane usage`, `/metrics` and `/status.json` agree with what the
//! mocks served: requests, errors, fail-overs, tokens; a retry is not a fail-over.

use super::*;

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
    // bad and flaky only failed over (bad's 503 twice, a retry): rows of their own.
    let failed: Vec<_> = (by_model["groups"].as_array().unwrap().iter())
        .map(|g| {
            (
                g["key"].as_str().unwrap(),
                g["requests"].clone(),
                g["failed"].clone(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("-", json!(1), json!(0)),
            ("anth:m", json!(2), json!(0)),
            ("bad:m", json!(0), json!(2)),
            ("flaky:m", json!(0), json!(1)),
            ("good:m", json!(6), json!(0)),
            ("resp:m", json!(1), json!(0)),
        ],
        "{by_model}"
    );
    assert_eq!(by_model["total"]["failed"], 3);
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
                g["failed"].clone(),
            )
        })
        .collect();
    // Failed: bad's two attempts for `smart` (asked alone while it cools down, its one
    // attempt is its request's error); once's attempt before its retry.
    assert_eq!(
        keys,
        [
            ("bad:m", json!(1), json!(1), json!(2)),
            ("good:m", json!(1), json!(0), json!(0)),
            ("once:m", json!(1), json!(0), json!(1))
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
    // The status page: a request of each source it asked, once however often retried,
    // an error of each it failed and moved on from (a retry that answered is none), so
    // errors never outnumber requests; blocks at 127.0.0.1 are local servers.
    let s = p.get("/status.json").json();
    let today: Vec<_> = (s["sources"].as_array().unwrap().iter())
        .map(|x| {
            (
                x["id"].as_str().unwrap(),
                x["kind"].as_str().unwrap(),
                x["today"]["requests"].clone(),
                x["today"]["errors"].clone(),
            )
        })
        .collect();
    assert_eq!(
        today,
        [
            ("good", "local", json!(1), json!(0)),
            ("bad", "local", json!(2), json!(2)),
            ("once", "local", json!(1), json!(0))
        ],
        "{s}"
    );
}
