//! Subscription logins end to end: each flow through the real binary with stdin piped,
//! tokens attached at request time, refreshed before expiry and after a 401, rotated
//! refresh tokens never lost.

mod headless;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::oauth::{MockOAuth, id_token};
use crate::support::proxy::bin;
use crate::support::upstream::Recorded;
use crate::support::wire::Wire;
use crate::support::{Dir, MockUpstream, Proxy, Reply, assert_text, wait_output, wait_until};

/// Runs `routeplane ARGS` with the token file in `dir`; `respond` gets each stderr line
/// and may answer on stdin. Returns (exit code, stdout, stderr).
fn run(
    dir: &Dir,
    args: &[&str],
    stdin_text: Option<&str>,
    mut respond: impl FnMut(&str) -> Option<String>,
) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("data/auth.json"))
        .env_remove("CODEX_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(t) = stdin_text {
        // A login that stops before it reads stdin has closed it: a broken pipe here.
        let _ = stdin.write_all(t.as_bytes());
    }
    let mut err = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        err.push_str(&line);
        err.push('\n');
        if let Some(answer) = respond(&line) {
            stdin.write_all(answer.as_bytes()).unwrap();
            stdin.flush().unwrap();
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

/// The `state` query value of a printed authorize URL.
fn state_of(line: &str) -> Option<String> {
    let url = line.trim();
    url.contains("/authorize?").then(|| {
        url.split("state=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string()
    })
}

fn stored(dir: &Dir) -> Value {
    serde_json::from_str(&dir.read("data/auth.json")).unwrap()
}

fn anthropic_config(oauth: &MockOAuth, upstream: &MockUpstream) -> String {
    format!(
        "providers:\n  anthropic:\n    api_base: {}\n    models: [claude-x]\n{}",
        upstream.url(),
        oauth.auth_block("https://example.invalid/callback")
    )
}

fn codex_config(oauth: &MockOAuth, upstream: &MockUpstream, port: u16) -> String {
    format!(
        "providers:\n  openai-codex:\n    api_base: {}\n    models: [gpt-5]\n{}",
        upstream.url(),
        oauth.auth_block(&format!("http://localhost:{port}/auth/callback"))
    )
}

/// Logs in to anthropic through the paste flow.
fn anthropic_login(dir: &Dir, config: &str) -> (i32, String, String) {
    let cfg = dir.write("routeplane.yaml", config);
    run(
        dir,
        &[
            "login",
            "anthropic",
            "-c",
            cfg.to_str().unwrap(),
            "--no-browser",
        ],
        None,
        |line| state_of(line).map(|s| format!("good-code#{s}\n")),
    )
}

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

/// Starts a codex loopback login and plays the browser; returns the login's result.
fn codex_loopback_login(dir: &Dir, config: &str, port: u16) -> (i32, String, String) {
    let cfg = dir.write("routeplane.yaml", config);
    run(
        dir,
        &[
            "login",
            "openai-codex",
            "-c",
            cfg.to_str().unwrap(),
            "--no-browser",
        ],
        None,
        |line| {
            if let Some(state) = state_of(line) {
                std::thread::spawn(move || {
                    // The browser follows the redirect once the listener is up.
                    let (addr, path) = (
                        format!("127.0.0.1:{port}"),
                        format!("/auth/callback?code=good-code&state={state}"),
                    );
                    let ok = wait_until(Duration::from_secs(5), || {
                        crate::support::proxy::try_get_status(&addr, &path) == Some(200)
                    });
                    assert!(ok, "callback listener did not answer");
                });
            }
            None
        },
    )
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
fn token_stdin_refreshes_once_and_stores_the_rotation() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, 9));
    let (code, out, err) = run(
        &dir,
        &[
            "login",
            "openai-codex",
            "-c",
            cfg.to_str().unwrap(),
            "--token-stdin",
        ],
        Some("rt-0\n"),
        |_| None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("logged in to openai-codex"));
    assert_eq!(oauth.refreshes(), 1);
    assert_eq!(
        stored(&dir)["credentials"]["openai-codex"]["refresh_token"],
        "rt-1"
    );
}

#[test]
fn a_token_file_it_cannot_keep_stops_the_login_before_the_refresh_token_is_spent() {
    // The token endpoint rotates refresh tokens: one refreshed and then not stored is
    // gone for good, and the user's login with it.
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, 9));
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let cut_short = dir.write("data/auth.json", r#"{"version": 1, "credentials": {"#);
    let login = |extra: &[&str]| {
        let mut args = vec![
            "login",
            "openai-codex",
            "-c",
            cfg.to_str().unwrap(),
            "--token-stdin",
        ];
        args.extend_from_slice(extra);
        run(&dir, &args, Some("rt-0\n"), |_| None)
    };
    let (code, out, err) = login(&[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "routeplane: error: login failed: `{}` is not valid JSON (EOF while parsing an \
             object at line 1 column 31); fix or delete it and log in again\n",
            cut_short.display()
        )
    );
    // A token file where no directory can be made (a file is in the way).
    let blocked = dir.path().join("data/auth.json/auth.json");
    let (code, _, err) = login(&["--auth-file", blocked.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "routeplane: error: cannot create `{}.lock`: Not a directory",
            blocked.display()
        )),
        "{err}"
    );
    assert_eq!(oauth.refreshes(), 0, "the refresh token was never spent");
}

#[test]
fn vendor_logins_import_and_logout_forgets() {
    let dir = Dir::new();
    std::fs::create_dir_all(dir.path().join(".claude")).unwrap();
    dir.write(".claude/.credentials.json", r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-a","refreshToken":"sk-ant-ort01-b","expiresAt":4102444800000}}"#);
    std::fs::create_dir_all(dir.path().join(".codex")).unwrap();
    let jwt = id_token("acct_7");
    dir.write(".codex/auth.json", &format!(r#"{{"auth_mode":"chatgpt","tokens":{{"id_token":"{jwt}","access_token":"{jwt}","refresh_token":"rt-x","account_id":"acct_7"}}}}"#));
    for provider in ["anthropic", "openai-codex"] {
        let (code, _, err) = run(&dir, &["login", provider, "--import"], None, |_| None);
        assert_eq!(code, 0, "{provider}: {err}");
    }
    let v = stored(&dir);
    assert_eq!(v["credentials"]["anthropic"]["expires_at"], 4102444800u64);
    assert_eq!(v["credentials"]["openai-codex"]["account_id"], "acct_7");
    assert!(
        dir.read(".claude/.credentials.json")
            .contains("sk-ant-ort01-b"),
        "the vendor file is untouched"
    );
    let (code, out, _) = run(&dir, &["logout", "anthropic"], None, |_| None);
    assert_eq!((code, out.as_str()), (0, "logged out of anthropic\n"));
    assert!(stored(&dir)["credentials"].get("anthropic").is_none());
    let (_, out, _) = run(&dir, &["logout", "anthropic"], None, |_| None);
    assert_eq!(out, "not logged in to anthropic\n");
    // A misspelt provider is an error, not "not logged in", as for login.
    let (code, _, err) = run(&dir, &["logout", "antropic"], None, |_| None);
    assert_ne!(code, 0);
    assert!(
        err.contains("`antropic` has no subscription login"),
        "{err}"
    );
    // `openai` is an API key's provider: the plan's login is named.
    let (code, _, err) = run(&dir, &["login", "openai"], None, |_| None);
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "`openai` has no subscription login; the choices are anthropic and openai-codex; \
             ChatGPT plans log in as `openai-codex`, and an API key goes in OPENAI_API_KEY"
        ),
        "{err}"
    );
}

#[test]
fn logout_from_a_damaged_token_file_says_the_logout_failed_and_why() {
    // It said "login failed: …" to a user who was logging out.
    let dir = Dir::new();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let cut_short =
        r#"{"version": 1, "credentials": {"anthropic": {"refresh_token": "sk-ant-ort01-b"#;
    let file = dir.write("data/auth.json", cut_short);
    let (code, out, err) = run(&dir, &["logout", "anthropic"], None, |_| None);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "routeplane: error: logout: the token file `{}` cannot be read: it is not valid \
             JSON (EOF while parsing a string at line 1 column 77); fix or remove it\n",
            file.display()
        )
    );
    assert!(
        !err.contains("sk-ant-ort01-b"),
        "no token is printed: {err}"
    );
    assert_eq!(
        dir.read("data/auth.json"),
        cut_short,
        "the file is untouched"
    );
}

#[test]
fn a_labelled_login_is_its_own_provider() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Wire::Responses.reply(true, false));
    let dir = Dir::new();
    let config = codex_config(&oauth, &up, 9);
    let cfg = dir.write("routeplane.yaml", &config);
    let args = [
        "login",
        "openai-codex",
        "-c",
        cfg.to_str().unwrap(),
        "--token-stdin",
        "--label",
        "work",
    ];
    let (code, out, err) = run(&dir, &args, Some("rt-0\n"), |_| None);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("logged in to openai-codex#work"), "{out}");
    let auth_file = dir.path().join("data/auth.json");
    let p = Proxy::start_with(
        &config,
        &[("ROUTEPLANE_AUTH_FILE", auth_file.to_str().unwrap())],
        &[],
    );
    let ask = |model: &str| {
        p.post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    let resp = ask("openai-codex#work:gpt-5");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        up.requests()[0].header("authorization"),
        Some("Bearer at-1")
    );
    let resp = ask("openai-codex:gpt-5");
    assert_eq!(
        resp.status, 401,
        "the unlabelled login does not exist: {}",
        resp.body
    );
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

#[test]
fn an_unreachable_token_endpoint_names_the_auth_setting_not_api_base() {
    let dir = Dir::new();
    // `.invalid` never resolves (RFC 6761): no network is needed to fail the look-up.
    let cfg = dir.write(
        "routeplane.yaml",
        "providers:\n  openai-codex:\n    auth:\n      token_url: https://routeplane-test.invalid/oauth/token\n",
    );
    let (code, _, err) = run(
        &dir,
        &[
            "login",
            "openai-codex",
            "-c",
            cfg.to_str().unwrap(),
            "--token-stdin",
        ],
        Some("rt-0\n"),
        |_| None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "cannot reach https://routeplane-test.invalid/oauth/token: host not found: \
             `routeplane-test.invalid` does not resolve (check `auth: token_url`, and this \
             machine's DNS)"
        ),
        "{err}"
    );
    assert!(!err.contains("api_base"), "{err}");
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
fn a_label_clients_could_not_name_is_refused_before_anything_is_asked() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &anthropic_config(&oauth, &up));
    for label in ["work:2", "my work", "a#b"] {
        let mut child = Command::new(bin())
            .args([
                "login",
                "anthropic",
                "--token-stdin",
                "--label",
                label,
                "-c",
            ])
            .arg(&cfg)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("ROUTEPLANE_AUTH_FILE", dir.path().join("data/auth.json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The token is for the old code, which took any label and stored it; the new
        // one may have exited before reading it. Stdin is closed either way.
        let _ = child.stdin.take().unwrap().write_all(b"rt-0\n");
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{label}: {err}");
        assert!(
            err.contains("--label must be a word without `:`, `#`, spaces")
                && err.contains("anthropic#LABEL:MODEL"),
            "{label}: {err}"
        );
    }
    assert_eq!(
        oauth.refreshes(),
        0,
        "nothing was asked of the token endpoint"
    );
    assert!(!dir.path().join("data/auth.json").exists());
}
