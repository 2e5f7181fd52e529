//! A login at request time: its token refreshed before expiry and after a 401 (the
//! rotation kept), a Claude login's answers and betas, and a login refused for the use.

use super::*;

fn logged_in_proxy(oauth: &MockOAuth, up: &MockUpstream) -> (Dir, Proxy) {
    logged_in_with(&anthropic_config(oauth, up))
}

/// A proxy on `config` after `routeplane login anthropic` with it.
fn logged_in_with(config: &str) -> (Dir, Proxy) {
    let dir = Dir::new();
    let (code, _, err) = anthropic_login(&dir, config);
    assert_eq!(code, 0, "{err}");
    let p = Proxy::start_with(
        config,
        &[(
            "ROUTEPLANE_AUTH_FILE",
            dir.path().join("data/auth.json").to_str().unwrap(),
        )],
        &[],
    );
    (dir, p)
}

fn ask(p: &Proxy) -> u16 {
    p.post(
        "/v1/chat/completions",
        json!({"model": "anthropic:claude-x", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .status
}

#[test]
fn tokens_near_expiry_are_refreshed_once_for_a_burst_and_the_rotation_is_kept() {
    // Tokens that expire in 60 s are inside the 5-minute margin: the next request refreshes.
    let oauth = MockOAuth::start(60);
    let up = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let (dir, p) = logged_in_proxy(&oauth, &up);
    // Tokens issued from now on live long: one refresh must serve the whole burst.
    oauth.set_expires_in(3600);
    let p = std::sync::Arc::new(p);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let p = std::sync::Arc::clone(&p);
            std::thread::spawn(move || ask(&p))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(
        oauth.refreshes(),
        1,
        "eight concurrent requests share one refresh"
    );
    assert_eq!(
        stored(&dir)["credentials"]["anthropic"]["refresh_token"],
        json!(oauth.valid_refresh())
    );
    let last: Vec<Recorded> = up.requests();
    assert!(
        last.iter()
            .all(|r| r.header("authorization") != Some("Bearer at-1")),
        "the expiring token was never used"
    );
}

#[test]
fn a_401_refreshes_once_and_retries() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::refuse_once_then(|_| Wire::Anthropic.reply(false, false));
    let (_dir, p) = logged_in_proxy(&oauth, &up);
    assert_eq!(ask(&p), 200);
    assert_eq!(oauth.refreshes(), 1);
    let auths: Vec<_> = up
        .posts()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(auths, ["Bearer at-1", "Bearer at-2"]);
}

#[test]
fn a_401_to_a_token_count_refreshes_once_and_counts_again() {
    // Claude Code counts before its requests: a count that met the expired token must
    // refresh it, as a request does, not answer 401 until a request happens to.
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::refuse_once_then(|_| Reply::json(200, json!({"input_tokens": 3})));
    let (_dir, p) = logged_in_proxy(&oauth, &up);
    let body =
        json!({"model": "anthropic:claude-x", "messages": [{"role": "user", "content": "hi"}]});
    let r = p.post("/v1/messages/count_tokens", body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"input_tokens": 3}));
    assert_eq!(oauth.refreshes(), 1);
    let auths: Vec<_> = (up.posts().iter())
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(auths, ["Bearer at-1", "Bearer at-2"]);
}

#[test]
fn a_claude_logins_answer_reaches_an_anthropic_client_as_claude_sent_it() {
    // Claude Code resumes a turn Anthropic paused (`pause_turn`) by sending it back with
    // its server tools' blocks and citations: through a login as through a key, the
    // answer is Anthropic's own, not rewritten.
    use crate::translation::{paused_answer, paused_events, paused_reply};
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::start(|req| match req.method.as_str() {
        "GET" => Reply::json(200, json!({"data": []})),
        _ => paused_reply(req),
    });
    let (_dir, p) = logged_in_proxy(&oauth, &up);
    let mut body = Wire::Anthropic.request("anthropic:claude-x", false, false);
    let r = p.post(Wire::Anthropic.path(), body.clone());
    assert_eq!(r.json(), paused_answer(), "{}", r.body);
    body["stream"] = json!(true);
    let s = p.stream(Wire::Anthropic.path(), body);
    assert_eq!(s.text(), paused_events().concat());
    let sent = up.posts()[0].json();
    assert_eq!(sent["system"][0]["type"], "text", "{sent}");
}

#[test]
fn a_clients_own_betas_join_the_logins_oauth_beta() {
    // Claude Code always sends `anthropic-beta`; a token without `oauth-2025-04-20` is
    // refused, so the client's list is merged with the login's, not put in its place,
    // on the first send, on the retry after a refresh, and when counting tokens.
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::refuse_once_then(|req| match req.path.ends_with("/count_tokens") {
        true => Reply::json(200, json!({"input_tokens": 3})),
        false => Wire::Anthropic.reply(false, false),
    });
    let (_dir, p) = logged_in_proxy(&oauth, &up);
    let claude_code = [
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "claude-code-20250219, interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
        ),
    ];
    let body = json!({"model": "anthropic:claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let resp = p.send(
        "POST",
        "/v1/messages",
        &claude_code,
        body.to_string().as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let resp = p.send(
        "POST",
        "/v1/messages/count_tokens",
        &claude_code,
        body.to_string().as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent: Vec<_> = up
        .posts()
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.header("anthropic-beta").unwrap().to_string(),
            )
        })
        .collect();
    let merged = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14";
    assert_eq!(
        sent,
        [
            ("/v1/messages".to_string(), merged.to_string()),
            ("/v1/messages".to_string(), merged.to_string()),
            ("/v1/messages/count_tokens".to_string(), merged.to_string()),
        ]
    );
}

#[test]
fn a_failed_refresh_asks_the_client_to_log_in() {
    let oauth = MockOAuth::start(60);
    let up = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let (dir, p) = logged_in_proxy(&oauth, &up);
    // Another machine used the refresh token: ours is now revoked.
    let mut v = stored(&dir);
    v["credentials"]["anthropic"]["refresh_token"] = json!("rt-stale");
    dir.write("data/auth.json", &v.to_string());
    let resp = p.post("/v1/messages", json!({"model": "anthropic:claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(resp.json()["type"], "error");
    let msg = resp.error_message();
    assert!(
        msg.starts_with("provider `anthropic` needs a login (")
            && msg.ends_with("run `routeplane login anthropic`"),
        "{msg}"
    );
    assert_eq!(up.count(), 0);
}

#[test]
fn a_claude_login_refused_for_this_use_falls_over_to_the_next_endpoint() {
    // Anthropic answers a subscription login it will not take from this client with a
    // 400 (reported publicly, at times for hours): a virtual model moves on to its key
    // or local endpoint, and the login cools down.
    let refusal = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "This credential is only authorized for use with Claude Code and cannot be used for other API requests."}});
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::json(400, refusal.clone()));
    let b = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let config = format!(
        "providers:\n  anthropic:\n    api_base: {}\n    models: [claude-x]\n{}  b:\n    api_base: {}\n    api_protocol: anthropic\n    models: [claude-x]\nmodels:\n  smart:\n    endpoints: [anthropic:claude-x, b:claude-x]\n",
        up.url(),
        oauth.auth_block("https://example.invalid/callback"),
        b.url()
    );
    let (_dir, p) = logged_in_with(&config);
    let posts = |u: &MockUpstream| u.posts().len();
    let ask = |model: &str| {
        p.post(
            "/v1/messages",
            json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    let resp = ask("smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(
        posts(&up),
        1,
        "not asked again: the refusal is not transient"
    );
    let line = p.wait_log("served_by=b:claude-x");
    assert!(
        line.contains("tried=anthropic:claude-x→400:credential,b:claude-x→200"),
        "{line}"
    );
    // Cooling down: the next request goes to `b` first.
    assert_eq!(ask("smart").status, 200);
    assert_eq!(posts(&up), 1);
    assert_eq!(posts(&b), 2);
    // Named alone, the refusal reaches the client as Anthropic wrote it.
    let resp = ask("anthropic:claude-x");
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json(), refusal);
}
