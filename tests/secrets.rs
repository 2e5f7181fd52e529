//! Secrets never reach what routeplane prints: config errors, the server log, listings.
//!
//! Every key here holds `SECRET`; each test asserts the word appears nowhere it reads.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::proxy::{bin, isolate};
use crate::support::{Dir, MockUpstream, Proxy, assert_text, config_error, stdout_of, wait_until};

/// A provider block up to where its key goes.
const BLOCK: &str = "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n";

/// What a `${…}` holding anything but a variable name is told.
const NOT_A_NAME: &str = "`${…}` must hold an environment variable's name (letters, digits \
     and `_`; what it holds is not shown, as it may be a key): put a key in a variable, e.g. \
     `export MY_KEY=…`, and write `${MY_KEY}`";

#[test]
fn a_key_written_as_a_variable_name_is_refused_without_repeating_it() {
    let dir = Dir::new();
    let path = dir.write(
        "c.yaml",
        &format!("{BLOCK}    api_key: ${{sk-SECRET-123}}\n"),
    );
    for (args, prefix) in [
        (&["config", "validate"][..], "routeplane: invalid"),
        (&["serve", "--listen", "127.0.0.1:0"], "routeplane: error"),
    ] {
        let out = Command::new(bin())
            .args(args)
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_text(
            &String::from_utf8_lossy(&out.stderr),
            &format!(
                "{prefix}: {}:4:14: providers.x.api_key: {NOT_A_NAME}\n",
                path.display()
            ),
        );
    }
}

/// What an unset `${…}` whose name looks like a key is told.
const UNSET_UNSHOWN: &str = "`${…}` names an environment variable that is not set; its name is \
     not shown, as it looks like a key (a variable's name is upper-case letters, digits and \
     `_`): write the variable's name between the braces, e.g. `${GEMINI_API_KEY}`, and set it \
     (`export GEMINI_API_KEY=…`)";

#[test]
fn an_unset_variable_whose_name_looks_like_a_key_is_not_named() {
    // Shaped like a Gemini key, and a valid variable name: it reaches the unset path.
    const FAKE: &str = "AIzaSyFakeKey0123456789abcdefghijkl";
    let yaml = format!("providers:\n  gemini:\n    api_key: ${{{FAKE}}}\n");
    let dir = Dir::new();
    let path = dir.write("c.yaml", &yaml);
    let told = format!(
        "{}:3:14: providers.gemini.api_key: {UNSET_UNSHOWN}",
        path.display()
    );
    for (args, prefix) in [
        (&["config", "validate"][..], "routeplane: invalid"),
        (&["serve", "--listen", "127.0.0.1:0"], "routeplane: error"),
    ] {
        let out = isolate(&mut Command::new(bin()), dir.path())
            .args(args)
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        for text in [&stdout, &stderr] {
            assert!(!text.contains("AIza"), "{args:?}: {text}");
        }
        assert_text(&stdout, "");
        assert_text(&stderr, &format!("{prefix}: {told}\n"));
    }
    // A reload refused for it logs it no more than start-up does.
    let p = Proxy::start("skip_auth: true\n");
    let path = p.dir.write("routeplane.yaml", &yaml);
    p.signal("HUP");
    let line = p.wait_log("reload failed");
    let told = format!(
        "{}:3:14: providers.gemini.api_key: {UNSET_UNSHOWN}",
        path.display()
    );
    assert!(
        line.ends_with(&format!(" reload failed, keeping the old config: {told}")),
        "{line}"
    );
    let log = p.log();
    assert!(!log.iter().any(|l| l.contains("AIza")), "{log:#?}");
}

#[test]
fn a_variable_holding_a_key_in_a_number_setting_is_not_repeated() {
    let dir = Dir::new();
    let path = dir.write("c.yaml", "workers: ${MY_TOKEN}\n");
    let out = isolate(&mut Command::new(bin()), dir.path())
        .args(["config", "validate", "-c"])
        .arg(&path)
        .env("MY_TOKEN", "sk-SECRET-123")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_text(
        &String::from_utf8_lossy(&out.stderr),
        &format!(
            "routeplane: invalid: {}:1:10: workers: expected a whole number, got what \
             \"${{MY_TOKEN}}\" gives (not shown: it comes from the environment)\n",
            path.display()
        ),
    );
}

#[test]
fn config_errors_in_key_places_never_quote_the_key() {
    let cases = [
        (
            "keys: sk-SECRET-123\n".to_string(),
            "1:7: keys: expected a list, got a single value (not shown: it may be a key); \
             write `keys: [sk-...]`"
                .to_string(),
        ),
        (
            "keys:\n  - sk-SECRET-123: x\n".into(),
            "2:5: keys: expected string scalar, got a map (not shown: it may be a key); write \
             `keys: [sk-...]`"
                .into(),
        ),
        (
            format!("{BLOCK}    api_key: ${{sk-SECRET-123}}\n"),
            format!("4:14: providers.x.api_key: {NOT_A_NAME}"),
        ),
        (
            format!("{BLOCK}    api_key:\n      sk-SECRET-123: 1\n"),
            "5:7: providers.x.api_key: expected string scalar".into(),
        ),
        (
            format!("{BLOCK}    headers: Bearer sk-SECRET-123\n"),
            "4:5: providers.x.headers: expected a map".into(),
        ),
        (
            format!("{BLOCK}    headers:\n      Authorization: \"Bearer ${{sk-SECRET-123:-x}}\"\n"),
            format!("5:22: providers.x.headers: {NOT_A_NAME}"),
        ),
        (
            // A key pasted where its provider's block goes.
            "providers:\n  openai: sk-SECRET-123\n".into(),
            "2:11: providers.openai: expected a map of keys, got a single value".into(),
        ),
    ];
    for (yaml, want) in cases {
        let (path, validate, serve) = config_error(&yaml, &[]);
        assert_text(&validate, &format!("routeplane: invalid: {path}:{want}\n"));
        assert_text(&serve, &format!("routeplane: error: {path}:{want}\n"));
    }
}

#[test]
fn config_errors_of_any_shape_around_a_key_leave_it_out() {
    for yaml in [
        "keys: {sk-SECRET-1: 1, sk-SECRET-1: 2}\n".to_string(),
        "keys: [sk-SECRET-1, [sk-SECRET-2]]\n".into(),
        "keys:\n  - \"sk-SECRET-1\n".into(),
        "keys:\n  sk-SECRET-1\n".into(),
        format!("{BLOCK}    api_key: [sk-SECRET-1]\n"),
        format!("{BLOCK}    api_key: sk-SECRET-1: x\n"),
        format!("{BLOCK}    headers:\n      - X-Key: sk-SECRET-1\n"),
        format!("{BLOCK}    headers: {{X-Key: {{sk-SECRET-1: 1}}}}\n"),
        "providers: {x: {api_base: \"http://h/v1\", api_key: [sk-SECRET-1]}}\n".into(),
        "providers: sk-SECRET-1\n".into(),
        "sk-SECRET-1\n".into(),
    ] {
        let (_, validate, serve) = config_error(&yaml, &[]);
        for out in [validate, serve] {
            assert!(!out.contains("SECRET"), "{yaml}\n{out}");
            assert!(out.contains(": "), "still says what is wrong: {out}");
        }
    }
}

#[test]
fn a_reload_refused_for_a_misshapen_key_logs_no_key() {
    let p = Proxy::start("skip_auth: true\n");
    let path = p.dir.write("routeplane.yaml", "keys: rk-SECRET-456\n");
    p.signal("HUP");
    let line = p.wait_log("reload failed");
    assert!(
        line.ends_with(&format!(
            " reload failed, keeping the old config: {}:1:7: keys: expected a list, got a \
             single value (not shown: it may be a key); write `keys: [sk-...]`",
            path.display()
        )),
        "{line}"
    );
    let log = p.log();
    assert!(!log.iter().any(|l| l.contains("SECRET")), "{log:#?}");
}

#[test]
fn a_password_in_a_base_url_refuses_the_config_and_is_shown_as_stars() {
    // Were: a warning, and each request failed with the reason (the starred URL in the
    // client's error, the status page and the ledger). No request could be sent to it,
    // so nothing loads it now.
    let yaml = "providers:\n  x:\n    api_base: http://user:sk-SECRET-789@127.0.0.1:1/v1\n    models: [m]\n";
    let want = "3:5: `api_base` of `x`: http://user:***@127.0.0.1:1/v1 holds a user name or \
                password, which is not sent: write `http://127.0.0.1:1/v1` and give the \
                credential as the provider's `api_key` or in its `headers`";
    let (path, validate, serve) = config_error(yaml, &[]);
    assert_text(&validate, &format!("routeplane: invalid: {path}:{want}\n"));
    assert_text(&serve, &format!("routeplane: error: {path}:{want}\n"));
    // Nor does a listing.
    let dir = Dir::new();
    dir.write("routeplane.yaml", yaml);
    let out = isolate(&mut Command::new(bin()), dir.path())
        .arg("providers")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains(want), "{said}");
    assert!(!said.contains("SECRET"), "{said}");
}

#[test]
fn a_key_pasted_as_a_yaml_key_is_not_repeated_in_the_unknown_key_error() {
    let yaml = format!("{BLOCK}    sk-or-v1-SECRET0123: 1\n");
    let (path, validate, serve) = config_error(&yaml, &[]);
    for (said, prefix) in [
        (&validate, "routeplane: invalid"),
        (&serve, "routeplane: error"),
    ] {
        assert!(!said.contains("SECRET"), "{said}");
        assert!(
            said.starts_with(&format!(
                "{prefix}: {path}:4:5: unknown field whose name is not shown, as it looks like \
                 an API key (a key goes in a value: `api_key: …`, or under `headers:` or \
                 `keys:`); expected one of api_base, api_key,"
            )),
            "{said}"
        );
    }
    // A misspelt key is still named, with the key meant.
    let (_, validate, _) = config_error(&format!("{BLOCK}    apiKey: x\n"), &[]);
    assert!(
        validate.contains("unknown field `apiKey`, expected one of")
            && validate.contains("did you mean `api_key`?"),
        "{validate}"
    );
    let (_, validate, _) = config_error("wrokers: 2\n", &[]);
    assert!(validate.contains("unknown field `wrokers`"), "{validate}");
}

#[test]
fn words_of_a_comment_left_uncommented_are_named_but_a_pasted_bearer_key_is_not() {
    // The starter file's prose, its `#` taken off with the example lines under it, was
    // said to look like an API key, and not shown.
    let (path, validate, _) = config_error("Virtual models: one name, tried in order\n", &[]);
    assert!(
        validate.starts_with(&format!(
            "routeplane: invalid: {path}:1:1: unknown field `Virtual models`, expected one of \
             listen,"
        )) && validate.ends_with(", models; a comment begins with `#`\n"),
        "{validate}"
    );
    let (_, validate, _) = config_error("Bearer sk-or-v1-SECRET0123456789abcdef: 1\n", &[]);
    assert!(
        !validate.contains("SECRET") && validate.contains("looks like an API key"),
        "{validate}"
    );
}

#[test]
fn a_key_in_a_base_urls_query_is_shown_as_stars_wherever_the_url_is() {
    let upstream = MockUpstream::always(crate::support::Reply::json(
        404,
        json!({"error": {"message": "no such path"}}),
    ));
    let port = upstream.port();
    let yaml = format!(
        "providers:\n  x:\n    api_base: http://127.0.0.1:{port}/v1?key=sk-SECRET-456\n    models: [m]\n"
    );
    let shown = format!("http://127.0.0.1:{port}/v1?key=***");
    let dir = Dir::new();
    dir.write("routeplane.yaml", &yaml);
    let run = |args: &[&str]| {
        stdout_of(
            isolate(&mut Command::new(bin()), dir.path())
                .args(args)
                .current_dir(dir.path()),
        )
    };
    let table = run(&["providers"]);
    assert!(
        table.contains(&format!("\nx             {shown}  ")),
        "{table}"
    );
    let listed: Value = serde_json::from_str(&run(&["providers", "--json"])).unwrap();
    assert_eq!(listed[0]["api_base"], shown.as_str());
    let route = run(&["route", "x:m"]);
    assert!(route.contains(&shown), "{route}");
    // Paths go after the whole base, into the query: validate and start-up say so.
    let warning = format!(
        "3:5: `api_base` of `x` has a query string ({shown}; its values are not shown, as they \
         may be a key): Routeplane adds paths such as `/chat/completions` after the whole base, \
         inside the query, so its requests fail; end `api_base` before the `?`, and give a key \
         as its `api_key` or in its `headers`"
    );
    let out = isolate(&mut Command::new(bin()), dir.path())
        .args(["config", "validate"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_text(
        &String::from_utf8_lossy(&out.stderr),
        &format!("routeplane: warning: routeplane.yaml:{warning}\n"),
    );
    let p = Proxy::start(&yaml);
    let config = p.dir.path().join("routeplane.yaml");
    p.wait_log(&format!(" warning: {}:{warning}", config.display()));
    let answer = p.post(
        "/v1/chat/completions",
        json!({"model": "x:m", "messages": []}),
    );
    assert_eq!(answer.status, 404, "{}", answer.body);
    p.wait_log("status=404");
    let status = p.get("/status.json").body;
    for text in [answer.body, status, p.log().join("\n"), table, route] {
        assert!(!text.contains("SECRET"), "{text}");
    }
}

#[test]
fn a_key_a_source_echoes_in_its_error_reaches_no_client_and_no_log() {
    // As OpenAI does for a wrong key: the refusal quotes the key it was sent.
    let upstream = MockUpstream::numbered(|n, req| {
        if n == 0 {
            return crate::support::Reply::json(200, json!({"data": [{"id": "m"}]}));
        }
        let sent = req
            .header("authorization")
            .or(req.header("x-api-key"))
            .unwrap_or("");
        let key = sent.strip_prefix("Bearer ").unwrap_or(sent);
        crate::support::Reply::json(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {key}."),
                   "type": "invalid_request_error", "code": "invalid_api_key"}}),
        )
    });
    let base = upstream.url();
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.3\nproviders:\n  x:\n    api_base: {base}\n    api_key: sk-SECRET-789abc\n    detect: true\n    models: [m]\n  y:\n    api_base: {base}\n    api_key: sk-SECRET-789abc\n    api_protocol: anthropic\n    models: [m]\n"
    ));
    let down = p.wait_log("source x is down");
    assert!(down.contains("Incorrect API key provided: ***."), "{down}");
    let mut seen = Vec::new();
    // The same protocol (the body passed on) and a translated one (its message retold).
    for model in ["x:m", "y:m"] {
        let chat = p.post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(chat.status, 401, "{}", chat.body);
        assert!(
            chat.error_message()
                .contains("Incorrect API key provided: ***."),
            "{}",
            chat.body
        );
        seen.push(chat.body);
        let messages = p.post(
            "/v1/messages",
            json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(messages.status, 401, "{}", messages.body);
        seen.push(messages.body);
    }
    // A token count asked of the source is refused the same way, and said as every
    // other endpoint's 401 is: Routeplane's key, not the client's (Claude Code would
    // otherwise tell its user to /login).
    let counted = p.post(
        "/v1/messages/count_tokens",
        json!({"model": "y:m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(counted.status, 401, "{}", counted.body);
    let v: Value = serde_json::from_str(&counted.body).unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    assert_eq!(
        counted.error_message(),
        "upstream `y` refused the key Routeplane sends it (401: Incorrect API key provided: \
         ***.); check `providers.y.api_key`. The client's key to Routeplane is not at fault",
    );
    assert_eq!(counted.header("x-routeplane-provider"), Some("y"));
    seen.push(counted.body);
    p.wait_log("y:m");
    seen.push(p.get("/status.json").body);
    seen.push(p.log().join("\n"));
    for text in seen {
        assert!(!text.contains("SECRET"), "{text}");
    }
}

/// The usage ledger of `p` once it holds `n` lines (it is written a moment after each
/// answer).
fn ledger_lines(p: &Proxy, n: usize) -> String {
    let ledger = p.dir.path().join("state/routeplane/usage.jsonl");
    let mut lines = String::new();
    let written = wait_until(Duration::from_secs(5), || {
        lines = std::fs::read_to_string(&ledger).unwrap_or_default();
        lines.lines().count() >= n
    });
    assert!(written, "{lines}");
    lines
}

#[test]
fn a_key_a_source_echoes_in_a_200_error_or_an_error_event_reaches_no_one() {
    // Each model fails as its name says, quoting the key it was sent.
    let upstream = MockUpstream::start(|req| {
        let sent = req.header("authorization").unwrap_or("");
        let key = sent.strip_prefix("Bearer ").unwrap_or(sent);
        let error = |code: u16| {
            json!({"error": {"message": format!("Incorrect API key provided: {key}. Find yours at \
                   https://example.invalid/keys"), "code": code}})
        };
        let event = |v: Value| format!("data: {v}\n\n");
        match req.json()["model"].as_str().unwrap_or("") {
            // OpenRouter's failure once it has begun: a 200 whose body is an error.
            "whole" => crate::support::Reply::json(200, error(401)),
            "whole-down" => crate::support::Reply::json(200, error(501)),
            // An error event before any content, and one after some.
            "early" => crate::support::Reply::Sse(vec![event(error(501))], Duration::ZERO),
            _ => {
                let mut events = crate::support::upstream::chat_events(2, false);
                events.push(event(error(502)));
                crate::support::Reply::Sse(events, Duration::ZERO)
            }
        }
    });
    let p = Proxy::start(&format!(
        "providers:\n  x:\n    api_base: {}\n    api_key: sk-SECRET-4242abcd\n    models: [whole, \
         whole-down, early, late]\nmodels:\n  both:\n    endpoints: [x:whole-down, x:early]\n",
        upstream.url()
    ));
    let told = "Incorrect API key provided: ***. Find yours at https://example.invalid/keys";
    let ask = |model: &str| {
        p.post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    // Passed on as it came, but for the key.
    let whole = ask("x:whole");
    assert_eq!(whole.status, 401, "{}", whole.body);
    assert_eq!(whole.error_message(), told);
    // Every target failed: the list says what each said.
    let both = ask("both");
    assert_eq!(both.status, 502, "{}", both.body);
    let said = both.error_message();
    for endpoint in ["x:whole-down", "x:early"] {
        assert!(said.contains(&format!("{endpoint} → 501 {told}")), "{said}");
    }
    // The error event that ends a stream begun.
    let late = p.stream(
        "/v1/chat/completions",
        json!({"model": "x:late", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(late.status, 200);
    let events = late.data();
    assert!(events[0].contains("t0"), "{events:?}");
    let ended = events
        .iter()
        .find(|e| e.contains("\"error\""))
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(ended.contains(told), "{ended}");
    p.wait_log("x:late");
    let mut seen = vec![whole.body, both.body, late.text(), ledger_lines(&p, 3)];
    seen.push(p.get("/status.json").body);
    seen.push(p.log().join("\n"));
    for text in seen {
        assert!(!text.contains("SECRET"), "{text}");
    }
}

#[test]
fn a_hosted_list_refused_is_told_with_our_own_query_and_without_the_key() {
    // Anthropic's list is asked with `?limit=1000`; this one refuses the key, quoting it.
    let upstream = MockUpstream::start(|req| {
        let key = req.header("x-api-key").unwrap_or("");
        crate::support::Reply::json(
            401,
            json!({"type": "error", "error": {"type": "authentication_error",
                   "message": format!("invalid x-api-key {key}")}}),
        )
    });
    let p = Proxy::start_with(
        &format!(
            "providers:\n  anthropic:\n    api_base: {}\n",
            upstream.url()
        ),
        &[("ANTHROPIC_API_KEY", "sk-ant-SECRET-1234")],
        &[],
    );
    let line = p.wait_log("cannot list the models of anthropic");
    assert!(
        line.ends_with(&format!(
            " cannot list the models of anthropic: {}/models?limit=1000 answered 401: invalid \
             x-api-key ***",
            upstream.url()
        )),
        "{line}"
    );
    assert!(!p.log().join("\n").contains("SECRET"));
}
