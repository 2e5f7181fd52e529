//! The flows a person goes through: Anthropic's paste flow, ChatGPT's loopback and
//! device-code flows; the tokens they store and what requests then carry.

use super::*;

#[test]
fn anthropic_paste_flow_stores_tokens_privately_and_attaches_them() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let dir = Dir::new();
    let (code, out, err) = anthropic_login(&dir, &anthropic_config(&oauth, &up));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Anthropic's terms (February 2026) reserve Claude Pro/Max OAuth"),
        "{err}"
    );
    assert_text(
        &out,
        &format!(
            "logged in to anthropic; the token is stored in {}\n",
            dir.path().join("data/auth.json").display()
        ),
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("data/auth.json")), 0o600);
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    assert_eq!(
        stored(&dir)["credentials"]["anthropic"]["refresh_token"],
        "rt-1"
    );
    let exchange = oauth
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(exchange.header("content-type"), Some("application/json"));
    assert!(
        !err.contains("at-1") && !err.contains("rt-1"),
        "no token in the output"
    );

    let p = Proxy::start_with(
        &anthropic_config(&oauth, &up),
        &[(
            "ROUTEPLANE_AUTH_FILE",
            dir.path().join("data/auth.json").to_str().unwrap(),
        )],
        &[],
    );
    let resp = p.post("/v1/chat/completions", json!({"model": "anthropic:claude-x", "messages": [{"role": "system", "content": "mine"}, {"role": "user", "content": "hi"}]}));
    assert_eq!(resp.status, 200, "{}", resp.body);
    // The model list is asked for with the login too (a GET); the request is the POST.
    let sent = &up.posts()[0];
    assert_eq!(sent.header("authorization"), Some("Bearer at-1"));
    assert!(
        sent.header("anthropic-beta")
            .unwrap()
            .contains("oauth-2025-04-20")
    );
    assert!(sent.header("x-api-key").is_none());
    let system = sent.json()["system"].clone();
    assert_eq!(
        system[0]["text"],
        "You are Claude Code, Anthropic's official CLI for Claude."
    );
    assert_eq!(
        system[1]["text"], "mine",
        "the client's system prompt is kept"
    );
    p.wait_log("served_by=anthropic:claude-x");
    assert!(!p.log().join("\n").contains("at-1"));
}

#[test]
fn anthropic_login_refuses_a_mismatched_state() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &anthropic_config(&oauth, &up));
    let (code, _, err) = run(
        &dir,
        &[
            "login",
            "anthropic",
            "-c",
            cfg.to_str().unwrap(),
            "--no-browser",
        ],
        None,
        |line| state_of(line).map(|_| "good-code#forged\n".to_string()),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("the pasted state does not match this login"),
        "{err}"
    );
}

#[test]
fn codex_loopback_flow_then_requests_carry_the_account() {
    let oauth = MockOAuth::start(3600);
    let port = MockUpstream::free_port();
    let up = MockUpstream::always(Wire::Responses.reply(true, false));
    let dir = Dir::new();
    let config = codex_config(&oauth, &up, port);
    let (code, out, err) = codex_loopback_login(&dir, &config, port);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("logged in to openai-codex"), "{out}");
    let exchange = oauth
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(
        exchange.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        stored(&dir)["credentials"]["openai-codex"]["account_id"],
        "acct_1"
    );

    let p = Proxy::start_with(
        &config,
        &[(
            "ROUTEPLANE_AUTH_FILE",
            dir.path().join("data/auth.json").to_str().unwrap(),
        )],
        &[],
    );
    let resp = p.post("/v1/chat/completions", json!({"model": "openai-codex:gpt-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        "Hello there",
        "a non-streaming client gets the collected stream"
    );
    // The collected answer says who served it, as a relayed one does.
    assert_eq!(resp.header("x-routeplane-provider"), Some("openai-codex"));
    assert_eq!(resp.header("x-routeplane-model"), Some("gpt-5"));
    assert_eq!(resp.header("x-routeplane-attempts"), Some("1"));
    let sent = &up.requests()[0];
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.header("chatgpt-account-id"), Some("acct_1"));
    assert_eq!(sent.header("openai-beta"), Some("responses=experimental"));
    let body = sent.json();
    assert_eq!(
        (body["stream"].clone(), body["store"].clone()),
        (json!(true), json!(false))
    );
    assert!(body["instructions"].is_string());
    assert!(body.get("max_output_tokens").is_none());
}

#[test]
fn codex_device_flow_polls_until_approved() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, 9));
    let (code, _, err) = run(
        &dir,
        &[
            "providers",
            "login",
            "openai-codex",
            "-c",
            cfg.to_str().unwrap(),
            "--device",
        ],
        None,
        |_| None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "open {}/device and enter the code ABCD-1234",
            oauth.base()
        )),
        "{err}"
    );
    let polls = oauth
        .requests()
        .iter()
        .filter(|r| r.path == "/device/token")
        .count();
    assert_eq!(polls, 3, "two pending answers, then approval");
    let exchange = oauth
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert!(String::from_utf8_lossy(&exchange.body).contains("code_verifier=server-verifier"));
}
