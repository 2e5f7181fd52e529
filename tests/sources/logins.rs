//! Subscription state that tells the truth: a login's list served only when named, a
//! refresh refused for good, `providers` rows per login, the device and browser flows'
//! URLs and hints, and a 401 whose refresh is refused.

use super::*;

/// Writes a token file holding `entries` (`key`, access, refresh, seconds left).
fn token_file(dir: &crate::support::Dir, entries: &[(&str, &str, &str, i64)]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let creds: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, access, refresh, left)| {
            (
                key.to_string(),
                json!({"access_token": access, "refresh_token": refresh, "expires_at": now + left}),
            )
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let path = dir.write(
        "data/auth.json",
        &json!({"version": 1, "credentials": creds}).to_string(),
    );
    path.to_str().unwrap().to_string()
}

#[test]
fn a_subscription_list_serves_only_when_named_never_through_a_bare_name() {
    let up = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["claude-sub".to_string()])),
        crate::support::wire::Wire::Anthropic.reply(false, false),
    ));
    let dir = crate::support::Dir::new();
    let auth_file = token_file(&dir, &[("anthropic", "at-live", "rt", 86_400)]);
    let p = Proxy::start_with(
        &format!("providers:\n  anthropic:\n    api_base: {}\n", up.url()),
        &[("ROUTEPLANE_AUTH_FILE", &auth_file)],
        &[],
    );
    p.wait_log("source anthropic is up (1 model)");
    assert_eq!(
        up.requests()[0].header("authorization"),
        Some("Bearer at-live"),
        "listed with the login's token"
    );
    assert_eq!(
        chat(&p, "claude-sub").status,
        404,
        "no bare cascade to a plan"
    );
    let resp = chat(&p, "anthropic:claude-sub");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let all = p.model_ids();
    assert!(all.contains(&"anthropic:claude-sub".to_string()), "{all:?}");
    assert!(!all.contains(&"claude-sub".to_string()), "{all:?}");
    // `routeplane models` shows the id a client can name, as `/v1/models` does.
    let config = dir.write(
        "routeplane.yaml",
        &format!("providers:\n  anthropic:\n    api_base: {}\n", up.url()),
    );
    let table = cli(
        &dir,
        &[("ROUTEPLANE_AUTH_FILE", &auth_file)],
        &["models", "-c", config.to_str().unwrap()],
    );
    let first_cells: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(first_cells.contains(&"anthropic:claude-sub"), "{table}");
    assert!(!first_cells.contains(&"claude-sub"), "{table}");
}

#[test]
fn a_refresh_refused_for_good_means_login_needed_until_a_new_login() {
    let oauth = crate::support::oauth::MockOAuth::start(3600);
    let up = MockUpstream::always(crate::support::wire::Wire::Anthropic.reply(false, false));
    let dir = crate::support::Dir::new();
    // Expiring within the refresh margin, with a refresh token the server revoked.
    let auth_file = token_file(&dir, &[("anthropic", "at-old", "rt-stale", 60)]);
    let yaml = format!(
        "providers:\n  anthropic:\n    api_base: {}\n    models: [claude-x]\n{}",
        up.url(),
        oauth.auth_block("https://example.invalid/callback")
    );
    let config = dir.write("routeplane.yaml", &yaml);
    let p = Proxy::start_with(&yaml, &[("ROUTEPLANE_AUTH_FILE", &auth_file)], &[]);
    let ask = || {
        p.post(
            "/v1/messages",
            json!({"model": "anthropic:claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    for _ in 0..2 {
        let resp = ask();
        assert_eq!(resp.status, 401, "{}", resp.body);
        assert_eq!(resp.json()["error"]["type"], "authentication_error");
        let msg = resp.error_message();
        assert!(
            msg.contains("login needed") && msg.ends_with("run `routeplane login anthropic`"),
            "{msg}"
        );
    }
    let token_calls = oauth
        .requests()
        .iter()
        .filter(|r| r.path == "/token")
        .count();
    assert_eq!(token_calls, 1, "no refresh after the refusal");
    assert_eq!(up.count(), 0);
    let env = [("ROUTEPLANE_AUTH_FILE", auth_file.as_str())];
    let v: serde_json::Value = serde_json::from_str(&cli(
        &dir,
        &env,
        &["providers", "--json", "-c", config.to_str().unwrap()],
    ))
    .unwrap();
    let row = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "anthropic")
        .unwrap();
    assert_eq!(
        (row["auth"].as_str(), row["state"].as_str()),
        (Some("oauth"), Some("login needed"))
    );

    // A new login (the file changes) ends it.
    token_file(&dir, &[("anthropic", "at-new", "rt-0", 60)]);
    let resp = ask();
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(oauth.refreshes(), 1);
}

#[test]
fn providers_lists_each_login_with_what_is_true_of_it() {
    let up = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["gpt-l".to_string()])),
        Reply::json(200, chat_answer("x")),
    ));
    let dir = crate::support::Dir::new();
    let auth_file = token_file(
        &dir,
        &[
            ("openai-codex", "at-1", "rt-1", 86_400),
            ("anthropic#work", "at-2", "rt-2", 86_400),
        ],
    );
    let config = dir.write(
        "routeplane.yaml",
        &format!(
            "providers:\n  openai:\n    api_base: {}\n  mine:\n    api_base: {}\n    api_key: k\n",
            up.url(),
            up.url()
        ),
    );
    let env = [
        ("ROUTEPLANE_AUTH_FILE", auth_file.as_str()),
        ("ROUTEPLANE_OPENAI_API_KEY", "sk-x"),
    ];
    let cfg = config.to_str().unwrap();
    let rows = |dir: &crate::support::Dir| -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&cli(
            dir,
            &env,
            &["providers", "--json", "-c", cfg],
        ))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
    };
    let v = rows(&dir);
    let row = |id: &str| {
        v.iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {v:?}"))
    };
    assert_eq!(
        (
            row("openai")["auth"].clone(),
            row("openai")["key_variable"].clone(),
            row("openai")["state"].clone()
        ),
        (
            json!("key"),
            json!("ROUTEPLANE_OPENAI_API_KEY"),
            json!("active")
        )
    );
    assert_eq!(
        (
            row("openrouter")["key_variable"].clone(),
            row("openrouter")["state"].clone()
        ),
        (json!("OPENROUTER_API_KEY"), json!("no key"))
    );
    assert_eq!(
        (
            row("mine")["auth"].clone(),
            row("mine")["key_in_config"].clone()
        ),
        (json!("key"), json!(true))
    );
    assert_eq!(row("anthropic")["state"], "no key");
    for id in ["anthropic#work", "openai-codex"] {
        assert_eq!(row(id)["auth"], "oauth");
        let state = row(id)["state"].as_str().unwrap().to_string();
        assert!(
            state.starts_with("logged in until 2") && state.ends_with(" UTC"),
            "{id}: {state}"
        );
    }
    assert_eq!(row("ollama")["auth"], "none");
    let table = cli(&dir, &env, &["providers", "-c", cfg]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("anthropic#work ") && l.contains(" oauth ")),
        "{table}"
    );
    assert!(table.contains("key (ROUTEPLANE_OPENAI_API_KEY)"), "{table}");

    let models: serde_json::Value =
        serde_json::from_str(&cli(&dir, &env, &["models", "--json", "-c", cfg])).unwrap();
    assert!(
        models.as_array().unwrap().contains(
            &json!({"id": "gpt-l", "provider": "openai", "source": "listed", "state": "active"})
        ),
        "{models}"
    );

    cli(&dir, &env, &["logout", "openai-codex"]);
    let v = rows(&dir);
    let codex = v.iter().find(|r| r["id"] == "openai-codex").unwrap();
    assert_eq!(codex["state"], "not logged in");
}

#[test]
fn overriding_device_url_alone_moves_the_whole_device_flow() {
    let oauth = MockUpstream::start(|req| match req.path.as_str() {
        "/api/accounts/deviceauth/usercode" => Reply::json(
            200,
            json!({"device_auth_id": "dev-1", "user_code": "WXYZ-0000", "interval": "0"}),
        ),
        "/api/accounts/deviceauth/token" => Reply::json(
            200,
            json!({"authorization_code": "code", "code_verifier": "v", "code_challenge": "c"}),
        ),
        "/oauth/token" => Reply::json(
            200,
            json!({"access_token": "at", "refresh_token": "rt", "expires_in": 3600, "id_token": crate::support::oauth::id_token("acct")}),
        ),
        _ => Reply::json(418, json!({"error": "unexpected path"})),
    });
    let origin = format!("http://127.0.0.1:{}", oauth.port());
    let dir = crate::support::Dir::new();
    let config = dir.write(
        "routeplane.yaml",
        &format!(
            "providers:\n  openai-codex:\n    auth:\n      device_url: {origin}/api/accounts/deviceauth/usercode\n"
        ),
    );
    let out = routeplane()
        .args([
            "login",
            "openai-codex",
            "--device",
            "-c",
            config.to_str().unwrap(),
        ])
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("auth.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "open {origin}/codex/device and enter the code WXYZ-0000"
        )),
        "{err}"
    );
    let paths: Vec<String> = oauth.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api/accounts/deviceauth/usercode",
            "/api/accounts/deviceauth/token",
            "/oauth/token"
        ]
    );
    let exchange = String::from_utf8_lossy(&oauth.requests()[2].body).into_owned();
    assert!(
        exchange.contains("deviceauth%2Fcallback") && exchange.contains("127.0.0.1"),
        "the device redirect is on the same origin: {exchange}"
    );
}

#[test]
fn a_browser_login_without_a_callback_points_to_device() {
    use std::io::BufRead;
    let port = MockUpstream::free_port();
    let dir = crate::support::Dir::new();
    let config = dir.write(
        "routeplane.yaml",
        &format!(
            "providers:\n  openai-codex:\n    auth:\n      authorize_url: http://127.0.0.1:9/authorize\n      redirect_uri: http://localhost:{port}/auth/callback\n"
        ),
    );
    // A desktop's opener takes the URL (and opens nothing: this is a test), but no
    // callback comes. Without a browser opened and without a terminal, the login says
    // more, and at once (`login::headless::a_browser_login_without_a_terminal_…`).
    let mut child = routeplane()
        .args(["login", "openai-codex", "-c", config.to_str().unwrap()])
        .env("PATH", crate::support::browser::opener(&dir, 0))
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("auth.json"))
        .env("ROUTEPLANE_TEST_LOGIN_HINT_SECS", "0.5")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
        if seen.iter().any(|l| l.contains("--device")) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let waiting = seen
        .iter()
        .position(|l| l.contains("waiting for the browser"));
    let hint = seen.iter().position(|l| {
        // One sentence, as a person reads it: no source indentation inside it.
        l.contains(
            "No browser on this machine? Press Ctrl-C and run \
             `routeplane login openai-codex --device`: it works without a browser here \
             (you approve on another device).",
        )
    });
    assert!(
        waiting.is_some() && hint > waiting,
        "the hint follows the wait: {seen:#?}"
    );
}

#[test]
fn a_login_made_after_a_key_listed_the_models_ends_their_bare_names() {
    let up = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["claude-z".to_string()])),
        crate::support::wire::Wire::Anthropic.reply(false, false),
    ));
    let dir = crate::support::Dir::new();
    let auth_file = dir.path().join("data/auth.json");
    let p = Proxy::start_with(
        &format!("providers:\n  anthropic:\n    api_base: {}\n", up.url()),
        &[
            ("ANTHROPIC_API_KEY", "sk-a"),
            ("ROUTEPLANE_AUTH_FILE", auth_file.to_str().unwrap()),
        ],
        &[],
    );
    p.wait_log("source anthropic is up (1 model)");
    assert_eq!(chat(&p, "claude-z").status, 200, "listed with the key");
    token_file(&dir, &[("anthropic", "at-plan", "rt", 86_400)]);
    let bare = chat(&p, "claude-z");
    assert_eq!(bare.status, 404, "the plan is not spent on a bare name");
    // The 404 says which name reaches the model.
    let message = bare.error_message();
    assert!(
        message.ends_with(
            "`anthropic` lists `claude-z` through a subscription login, which a bare name never uses: name it `anthropic:claude-z`"
        ),
        "{message}"
    );
    assert_eq!(chat(&p, "anthropic:claude-z").status, 200);
    let last = up.requests().pop().unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer at-plan"));
}

#[test]
fn an_upstream_401_whose_refresh_is_refused_asks_the_client_to_log_in() {
    let oauth = crate::support::oauth::MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::json(
        401,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "OAuth token has been revoked"}}),
    ));
    let dir = crate::support::Dir::new();
    // A token that looks fresh, but the upstream and the token endpoint both refuse it.
    let auth_file = token_file(&dir, &[("anthropic", "at-revoked", "rt-revoked", 86_400)]);
    let yaml = format!(
        "providers:\n  anthropic:\n    api_base: {}\n    detect: false\n    models: [claude-x]\n{}",
        up.url(),
        oauth.auth_block("https://example.invalid/callback")
    );
    let p = Proxy::start_with(&yaml, &[("ROUTEPLANE_AUTH_FILE", &auth_file)], &[]);
    let resp = p.post(
        "/v1/messages",
        json!({"model": "anthropic:claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401, "{}", resp.body);
    let msg = resp.error_message();
    assert!(
        msg.contains("login needed") && msg.ends_with("run `routeplane login anthropic`"),
        "{msg}"
    );
    let posts = up.posts().len();
    assert_eq!(posts, 1, "not retried with the refused login");
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "anthropic:claude-x", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401);
    assert_eq!(
        up.posts().len(),
        1,
        "a login known to be refused is not sent at all"
    );
}

#[test]
fn a_token_file_that_cannot_be_read_is_said_so_not_taken_for_no_login() {
    // A login once made, its file since cut short (a full disk, a hand edit): the
    // login is unknown, and "not logged in; run `routeplane login`" would only lead
    // to the same file.
    let dir = crate::support::Dir::new();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let auth_file = dir.write(
        "data/auth.json",
        r#"{"version": 1, "credentials": {"openai-codex": {"access_token": "at""#,
    );
    let auth_file = auth_file.to_str().unwrap();
    let why = format!(
        "`{auth_file}` is not valid JSON (EOF while parsing an object at line 1 column 68); \
         fix or delete it and log in again"
    );
    let p = Proxy::start_with("", &[("ROUTEPLANE_AUTH_FILE", auth_file)], &[]);
    let warned = p.wait_log("warning: subscription logins");
    assert!(
        warned.ends_with(&format!(
            "warning: subscription logins are not used: the token file cannot be read: {why}"
        )),
        "{warned}"
    );
    let resp = chat(&p, "openai-codex:gpt-5");
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(
        resp.error_message(),
        format!(
            "provider `openai-codex` needs a login (its token file cannot be read: {why}); \
             run `routeplane login openai-codex`"
        )
    );
    let table = cli(&dir, &[("ROUTEPLANE_AUTH_FILE", auth_file)], &["providers"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("openai-codex "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.ends_with("  token file unreadable"), "{table}");
}
