//! The request log line says what happened: when, which model was asked for, each
//! attempt and its result, how a stream ended; as text or as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::answer::{self, Fault};
use crate::support::upstream::{chat_answer, chat_events, dead_url};
use crate::support::wire::Wire;
use crate::support::{MockUpstream, Proxy, Reply, assert_text, wait_until};

/// `a` refuses connections, `b` answers (a stream when asked for one), `c` breaks its
/// stream after three events; `smart` is a:m then b:m.
fn config(extra: &str) -> (String, MockUpstream, MockUpstream) {
    let b = MockUpstream::start(|req| {
        if req.json()["stream"] == true {
            Reply::Sse(chat_events(2, true), Duration::ZERO)
        } else {
            Reply::json(200, chat_answer("from b"))
        }
    });
    let c = MockUpstream::always(Reply::SseThenBreak(chat_events(3, false), Duration::ZERO));
    let yaml = format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\n  c:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n{extra}",
        dead_url(),
        b.url(),
        c.url()
    );
    (yaml, b, c)
}

/// Sends the four requests the tests log: failed over, streamed, broken, unknown.
fn send_four(p: &Proxy) {
    let chat = |model: &str, stream: bool| {
        p.post(
            "/v1/chat/completions",
            json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    assert_eq!(chat("smart", false).status, 200);
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "b:m", "stream": true, "messages": []}),
    );
    assert_eq!(s.status, 200);
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "c:m", "stream": true, "messages": []}),
    );
    assert_eq!(s.status, 200);
    let r = p.post(
        "/v1/messages",
        json!({"model": "nope", "max_tokens": 5, "messages": []}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
}

/// True for `2026-12-02T03:28:24.123Z`.
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A text line with its time and durations replaced by `TIME` and `N`.
fn shape(line: &str) -> String {
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(is_rfc3339_utc(time), "{line}");
    let fields: Vec<String> = rest
        .split(' ')
        .map(|f| match f.split_once('=') {
            Some((k @ ("ttfb_ms" | "total_ms"), v)) => {
                assert!(v.parse::<f64>().is_ok(), "{line}");
                format!("{k}=N")
            }
            _ => f.to_string(),
        })
        .collect();
    format!("TIME {}", fields.join(" "))
}

fn line_with(p: &Proxy, needle: &str) -> String {
    p.wait_log(needle)
}

#[test]
fn text_lines_name_the_model_each_attempt_and_how_a_stream_ended() {
    let (yaml, _b, _c) = config("");
    let p = Proxy::start(&yaml);
    send_four(&p);
    let got = [
        shape(&line_with(&p, " model=smart ")),
        shape(&line_with(&p, " model=b:m ")),
        shape(&line_with(&p, " model=c:m ")),
        shape(&line_with(&p, " model=nope ")),
    ]
    .join("\n");
    assert_text(
        &got,
        "TIME POST /v1/chat/completions model=smart served_by=b:m status=200 attempts=2 tried=a:m→refused,b:m→200 ttfb_ms=N total_ms=N\n\
         TIME POST /v1/chat/completions model=b:m served_by=b:m status=200 stream=complete attempts=1 ttfb_ms=N total_ms=N\n\
         TIME POST /v1/chat/completions model=c:m served_by=c:m status=200 stream=broken attempts=1 tried=c:m→200:broken ttfb_ms=N total_ms=N\n\
         TIME POST /v1/messages model=nope served_by=- status=404 attempts=0 ttfb_ms=N total_ms=N",
    );
    // Every line of the server, not only request lines, starts with the time.
    for line in p.log() {
        assert!(is_rfc3339_utc(line.split(' ').next().unwrap()), "{line}");
    }
}

#[test]
fn json_lines_carry_the_same_fields() {
    let (yaml, _b, _c) = config("log:\n  format: json\n");
    let p = Proxy::start(&yaml);
    send_four(&p);
    let request = |needle: &str| -> Value {
        let line = line_with(&p, needle);
        let mut v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let obj = v.as_object_mut().unwrap();
        assert!(is_rfc3339_utc(obj.remove("ts").unwrap().as_str().unwrap()));
        assert!(obj.remove("ttfb_ms").unwrap().is_f64(), "{line}");
        assert!(obj.remove("total_ms").unwrap().is_f64(), "{line}");
        v
    };
    let chat = "/v1/chat/completions";
    assert_eq!(
        request(r#""model":"smart""#),
        json!({"method": "POST", "path": chat, "model": "smart", "served_by": "b:m", "status": 200,
            "stream": null, "attempts": 2,
            "tried": [{"target": "a:m", "result": "refused"}, {"target": "b:m", "result": "200"}],
            "rescued": 0, "rescued_by": []})
    );
    assert_eq!(
        request(r#""model":"b:m""#),
        json!({"method": "POST", "path": chat, "model": "b:m", "served_by": "b:m", "status": 200,
            "stream": "complete", "attempts": 1, "tried": [{"target": "b:m", "result": "200"}],
            "rescued": 0, "rescued_by": []})
    );
    assert_eq!(
        request(r#""model":"c:m""#),
        json!({"method": "POST", "path": chat, "model": "c:m", "served_by": "c:m", "status": 200,
            "stream": "broken", "attempts": 1, "tried": [{"target": "c:m", "result": "200:broken"}],
            "rescued": 0, "rescued_by": []})
    );
    assert_eq!(
        request(r#""model":"nope""#),
        json!({"method": "POST", "path": "/v1/messages", "model": "nope", "served_by": null,
            "status": 404, "stream": null, "attempts": 0, "tried": [], "rescued": 0, "rescued_by": []})
    );
    // The other lines are JSON too, so a shipper reads every line the same way.
    for line in p.log() {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(is_rfc3339_utc(v["ts"].as_str().unwrap()), "{line}");
    }
    p.wait_log(r#""msg":"listening on http://"#);
}

#[test]
fn a_stream_the_client_cut_is_logged_as_499_client_closed() {
    let up = MockUpstream::always(Reply::chat_stream(200, Duration::from_millis(20)));
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    p.leave_mid_stream("m");
    let line = shape(&p.wait_log("served_by=local:m"));
    assert!(
        line.starts_with(
            "TIME POST /v1/chat/completions model=m served_by=local:m status=499 stream=client_closed attempts=1 tried=local:m→client_closed "
        ),
        "{line}"
    );
}

#[test]
fn any_method_and_path_are_logged_as_sent() {
    let p = Proxy::start("");
    // A known path, an unknown one (its query left out: it may carry a key), and a
    // method tiny_http has no name for.
    p.get("/v1/models");
    p.get("/v1/nope?key=secret");
    p.send("PROPFIND", "/v1/models", &[], b"");
    assert!(p.wait_log("GET /v1/models ").contains(" status=200 "));
    let unknown = p.wait_log("GET /v1/nope ");
    assert!(
        unknown.contains(" status=404 ") && !unknown.contains("secret"),
        "{unknown}"
    );
    p.wait_log("PROPFIND /v1/models ");
}

#[test]
fn a_model_name_cannot_forge_a_log_line() {
    let p = Proxy::start("");
    let r = p.post(
        "/v1/chat/completions",
        json!({"model": "x\nPOST /v1/chat/completions model=m status=200", "messages": []}),
    );
    assert_eq!(r.status, 404);
    assert!(wait_until(Duration::from_secs(5), || p
        .log()
        .iter()
        .any(|l| l.contains("status=404"))));
    let line = p.wait_log("status=404");
    assert!(
        line.contains(
            r#" model="x\nPOST /v1/chat/completions model=m status=200" served_by=- status=404 "#
        ),
        "{line}"
    );
    assert!(!p.log().iter().any(|l| l.starts_with("POST")));
}

#[test]
fn a_sources_error_page_cannot_forge_a_log_line() {
    // Whatever listens where a source is named answers its model listing with a page
    // of many lines, one of them a request line, and a terminal escape.
    let page = "<html>\n<body>nope</body>\n</html>\n2026-01-01T00:00:00.000Z POST \
                /v1/chat/completions model=forged status=200\n\u{1b}[2J";
    let up = MockUpstream::numbered(move |n, _| match n {
        0 => Reply::json(200, json!({"data": [{"id": "m"}]})),
        _ => Reply::Json(404, page.to_string()),
    });
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.3\nproviders:\n  box:\n    api_base: {}\n    detect: true\n",
        up.url()
    ));
    // It answers, so it is up; only its list failed.
    let line = p.wait_log("source box is up, but its model list failed");
    assert!(
        line.contains("answered 404: <html> <body>nope</body> </html> 2026-01-01T00:00:00.000Z")
            && line.contains("\\u{1b}[2J"),
        "{line}"
    );
    for line in p.log() {
        assert!(
            line.starts_with("20") && !line.contains('\u{1b}'),
            "{line:?}"
        );
    }
}

#[test]
fn a_rescued_stream_lists_every_attempt_retries_included_and_its_rescuer() {
    // `a` answers 503 (retried on the same endpoint), then streams and is cut after 24
    // tokens (a cut is continued on `a` first), then finishes the answer from the prefill.
    for (format, extra) in [("text", ""), ("json", "log:\n  format: json\n")] {
        let a = MockUpstream::numbered(|n, req| match n {
            0 => Reply::json(503, json!({"error": {"message": "busy"}})),
            1 => answer::reply(Wire::Chat, req, "a", Fault::Cut(24)),
            _ => answer::reply(Wire::Chat, req, "a", Fault::None),
        });
        let b = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "b", Fault::None));
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    prefill: true\n    models: [m]\n  b:\n    api_base: {}\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\nfailover:\n  backoff_ms: 20\n{extra}",
            a.url(),
            b.url()
        ));
        let s = p.stream(
            "/v1/chat/completions",
            json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(s.status, 200, "{format}");
        assert!(s.complete, "{format}: {}", s.text());
        assert_eq!(b.count(), 0, "{format}");
        if format == "text" {
            let line = shape(&p.wait_log(" model=smart "));
            assert_eq!(
                line,
                "TIME POST /v1/chat/completions model=smart served_by=a:m status=200 stream=rescued attempts=3 tried=a:m→503,a:m→200:broken,a:m→200 rescued=1 rescued_by=a:m ttfb_ms=N total_ms=N"
            );
        } else {
            let line = p.wait_log(r#""model":"smart""#);
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["stream"], "rescued", "{line}");
            assert_eq!(v["attempts"], 3, "{line}");
            assert_eq!(
                v["tried"],
                json!([{"target": "a:m", "result": "503"}, {"target": "a:m", "result": "200:broken"}, {"target": "a:m", "result": "200"}]),
                "{line}"
            );
            assert_eq!(v["rescued"], 1, "{line}");
            assert_eq!(v["rescued_by"], json!(["a:m"]), "{line}");
        }
    }
}

#[test]
fn the_status_pages_polls_and_scrapes_answered_are_not_logged() {
    // An open status page asks for /status.json every 3 s and Prometheus scrapes
    // /metrics: one line each buried the requests. Refused, they are still logged.
    let p = Proxy::start("keys: [sk-client]\n");
    let key = [("authorization", "Bearer sk-client")];
    for path in ["/status.json", "/metrics", "/health", "/api/hello"] {
        let r = p.send("GET", path, &key, b"");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    assert_eq!(p.get("/status.json").status, 401);
    // The line of a later request is there, and the answered polls before it are not.
    p.send("GET", "/v1/models", &key, b"");
    p.wait_log("GET /v1/models ");
    let polls: Vec<String> = p
        .log()
        .into_iter()
        .filter(|l| {
            ["/status.json ", "/metrics ", "/health ", "/api/hello "]
                .iter()
                .any(|path| l.contains(path))
        })
        .collect();
    assert_eq!(polls.len(), 1, "{polls:?}");
    assert!(
        polls[0].contains("GET /status.json ") && polls[0].contains(" status=401 "),
        "{polls:?}"
    );
}

#[test]
fn an_endpoints_own_words_for_its_failure_are_in_the_line_escaped_and_short() {
    // A plan limit's 429 says why in its body (OpenAI's quota, Anthropic's rate limit);
    // the line said only `429`, and the operator was left guessing which limit it was.
    let quota = "You exceeded your current quota, please check your plan and billing details.";
    let a = MockUpstream::always(Reply::json(
        429,
        json!({"error": {"message": quota, "type": "insufficient_quota"}}),
    ));
    // Words that try to forge a line and clear the screen, and run on: escaped, cut.
    let long = format!(
        "limit\n2026-01-01T00:00:00.000Z POST /v1/chat/completions model=forged status=200 \u{1b}[2J {}THE END",
        "and more ".repeat(40)
    );
    let b = MockUpstream::always(Reply::json(
        429,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": long}}),
    ));
    for (format, extra) in [("text", ""), ("json", "log:\n  format: json\n")] {
        let p = Proxy::start(&format!(
            "providers:\n  a: {{api_base: {}, models: [m]}}\n  b: {{api_base: {}, api_protocol: anthropic, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, b:m]}}\nfailover:\n  retries: 0\n{extra}",
            a.url(),
            b.url()
        ));
        let r = p.post(
            "/v1/chat/completions",
            json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(r.status, 429, "{format}: {}", r.body);
        let b_said = if format == "text" {
            let line = p.wait_log(" model=smart ");
            let (_, said) = line
                .split_once(" tried=a:m→429,b:m→429 said=\"a:m: ")
                .unwrap_or_else(|| panic!("{line}"));
            let (a_said, b_said) = said
                .split_once("; b:m: ")
                .unwrap_or_else(|| panic!("{line}"));
            assert_eq!(a_said, quota, "{line}");
            b_said.to_string()
        } else {
            let line = p.wait_log(r#""model":"smart""#);
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                v["said"][0],
                json!({"target": "a:m", "words": quota}),
                "{line}"
            );
            assert_eq!(v["said"][1]["target"], "b:m", "{line}");
            v["said"][1]["words"].as_str().unwrap().to_string()
        };
        // Escaped as the rescue's line escapes an upstream's words (`\n`, `\u{1b}`); in
        // a text line those are in a JSON string, so their backslash is doubled.
        let (newline, escape) = match format {
            "text" => (r"limit\\n2026-01-01T00:00:00.000Z POST", r"\\u{1b}[2J"),
            _ => (r"limit\n2026-01-01T00:00:00.000Z POST", r"\u{1b}[2J"),
        };
        assert!(b_said.starts_with(newline), "{format}: {b_said}");
        assert!(b_said.contains(escape), "{format}: {b_said}");
        assert!(!b_said.contains("THE END"), "{format}: {b_said}");
        for line in p.log() {
            assert!(
                line.starts_with(['2', '{']) && !line.contains('\u{1b}'),
                "{line:?}"
            );
            assert!(!line.starts_with("2026-01-01"), "{line}");
        }
    }
}
