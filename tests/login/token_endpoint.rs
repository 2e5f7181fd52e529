//! A token endpoint that cannot be reached or refuses: the setting named, its words
//! escaped and cut short, the grant never printed.

use super::*;

#[test]
fn an_unreachable_token_endpoint_names_the_auth_setting_not_api_base() {
    let dir = Dir::new();
    // `.invalid` never resolves (RFC 6761): no network is needed to fail the look-up.
    let cfg = dir.write(
        "routeplane.yaml",
        "providers:\n  openai-codex:\n    auth:\n      token_url: https://routeplane-test.invalid/oauth/token\n",
    );
    let (code, _, err) = codex_token_stdin(&dir, &cfg);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "cannot reach https://routeplane-test.invalid/oauth/token: no network or DNS \
             here (`routeplane-test.invalid` does not resolve); if you set `auth: token_url`, \
             check it"
        ),
        "{err}"
    );
    assert!(!err.contains("api_base"), "{err}");
}

#[test]
fn a_device_login_offline_leads_with_the_network_then_the_setting() {
    // It said only "check `auth: device_url`", to a user with no config at all.
    let dir = Dir::new();
    let cfg = dir.write(
        "routeplane.yaml",
        "providers:\n  openai-codex:\n    auth:\n      device_url: https://routeplane-test.invalid/usercode\n",
    );
    let (code, _, err) = run(
        &dir,
        &[
            "login",
            "openai-codex",
            "--device",
            "-c",
            cfg.to_str().unwrap(),
        ],
        None,
        |_| None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "cannot reach https://routeplane-test.invalid/usercode: no network or DNS here \
             (`routeplane-test.invalid` does not resolve); if you set `auth: device_url`, \
             check it"
        ),
        "{err}"
    );
}

/// A token endpoint that refuses every grant in words no terminal should get as they
/// came: escape sequences, a line break, the grant it was sent, and a page more.
fn hostile_token_endpoint() -> MockUpstream {
    MockUpstream::start(|req| {
        let sent: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let grant = sent["refresh_token"].as_str().or(sent["code"].as_str());
        let description = format!(
            "\u{1b}[2J\u{1b}[31m{} is revoked\nrouteplane: logged in{}",
            grant.unwrap_or("?"),
            " and more".repeat(50)
        );
        Reply::json(
            400,
            json!({"error": "invalid_grant", "error_description": description}),
        )
    })
}

/// The last line a failed login prints when the hostile endpoint refused `what`: the
/// escapes shown as text, the grant as `***`, cut after 300 characters.
fn told_hostile(what: &str) -> String {
    // 45 characters come before the padding.
    let more: String = " and more".repeat(50).chars().take(300 - 45).collect();
    format!(
        "routeplane: error: login refused: {what} failed (400: \\u{{1b}}[2J\\u{{1b}}[31m*** is \
         revoked\\nrouteplane: logged in{more}…)\n"
    )
}

#[test]
fn a_token_endpoints_refusal_is_printed_escaped_short_and_without_the_grant() {
    let endpoint = hostile_token_endpoint();
    let b = format!("http://127.0.0.1:{}", endpoint.port());
    let dir = Dir::new();
    let config = format!(
        "providers:\n  anthropic:\n    auth:\n      authorize_url: {b}/authorize\n      \
         token_url: {b}/token\n      redirect_uri: https://example.invalid/callback\n"
    );
    let cfg = dir.write("routeplane.yaml", &config);
    let (code, _, err) = run(
        &dir,
        &[
            "login",
            "anthropic",
            "-c",
            cfg.to_str().unwrap(),
            "--token-stdin",
        ],
        Some("rt-SECRET-0123456789\n"),
        |_| None,
    );
    assert_eq!(code, 1, "{err}");
    assert_text(&err, &told_hostile("refresh"));
    // The paste flow's code (`good-code`) is a grant too.
    let (code, _, err) = anthropic_login(&dir, &config);
    assert_eq!(code, 1, "{err}");
    // After the prompt, which ends without a line break.
    let told = err.rsplit("(CODE#STATE): ").next().unwrap_or_default();
    assert_text(told, &told_hostile("the code exchange"));
    assert!(!err.contains("good-code"), "{err}");
}

#[test]
fn a_token_lifetime_past_u64_is_a_far_expiry_not_one_already_past() {
    // `now + expires_in` wrapped: a token stored as expired a second ago, refreshed at
    // every request.
    let oauth = MockOAuth::start(u64::MAX);
    let up = MockUpstream::always(Reply::json(200, json!({})));
    let dir = Dir::new();
    let (code, _, err) = anthropic_login(&dir, &anthropic_config(&oauth, &up));
    assert_eq!(code, 0, "{err}");
    let at = stored(&dir)["credentials"]["anthropic"]["expires_at"].clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(at.as_u64().is_some_and(|at| at > now + 3600), "{at}");
}
