//! Logins without a browser flow and the token file they go to: a refresh token on
//! stdin, a vendor's login imported, labels, logout, a token file that cannot be kept,
//! one others can read, one replaced under its old time, an expiry in milliseconds.

use std::os::unix::fs::MetadataExt;

use super::*;

#[test]
fn token_stdin_refreshes_once_and_stores_the_rotation() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, 9));
    let (code, out, err) = codex_token_stdin(&dir, &cfg);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("logged in to openai-codex"));
    assert_eq!(oauth.refreshes(), 1);
    assert_eq!(
        stored(&dir)["credentials"]["openai-codex"]["refresh_token"],
        "rt-1"
    );
}

#[test]
fn a_login_keeps_the_token_files_other_keys_and_a_logins_own() {
    // Rewritten with only `version` and `credentials`: a newer Routeplane's keys, a
    // user's note, and a login's keys Routeplane does not write were dropped.
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, 9));
    let path = token_file(
        &dir,
        json!({"openai-codex": {"access_token": "old", "refresh_token": "rt-old",
            "account_id": "acct_1", "scopes": ["a", "b"], "login_needed": "refused"}}),
        0o600,
    );
    let mut file = stored(&dir);
    file["note"] = json!("work laptop");
    file["later"] = json!({"x": [1, 2.5, null]});
    std::fs::write(&path, file.to_string()).unwrap();
    let (code, _, err) = codex_token_stdin(&dir, &cfg);
    assert_eq!(code, 0, "{err}");
    let file = stored(&dir);
    assert_eq!(file["note"], "work laptop", "{file}");
    assert_eq!(file["later"], json!({"x": [1, 2.5, null]}), "{file}");
    assert_eq!(file["version"], 1, "{file}");
    let login = &file["credentials"]["openai-codex"];
    assert_eq!(login["refresh_token"], "rt-1", "{file}");
    assert_eq!(login["scopes"], json!(["a", "b"]), "{file}");
    assert!(
        login.get("login_needed").is_none(),
        "a new login ends the mark: {file}"
    );
    let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_login_as_another_account_drops_the_old_logins_own_keys() {
    // They were kept whoever logged in: account A's note (or a newer Routeplane's key
    // about A's grant) stayed on account B's login. The mock's logins are `acct_1`'s.
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let login_over = |account: Value| {
        // A token endpoint of its own each time: the mock's `rt-0` is spent once.
        let oauth = MockOAuth::start(3600);
        let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, 9));
        let old = json!({"access_token": "old", "refresh_token": "rt-old", "note": "a"});
        let mut old = old.as_object().unwrap().clone();
        if !account.is_null() {
            old.insert("account_id".into(), account);
        }
        token_file(&dir, json!({ "openai-codex": old }), 0o600);
        let (code, _, err) = codex_token_stdin(&dir, &cfg);
        assert_eq!(code, 0, "{err}");
        let file = stored(&dir);
        assert_eq!(file["credentials"]["openai-codex"]["account_id"], "acct_1");
        file["credentials"]["openai-codex"]["note"].clone()
    };
    assert_eq!(
        login_over(json!("acct_2")),
        Value::Null,
        "another account's"
    );
    assert_eq!(login_over(Value::Null), Value::Null, "no account to match");
    assert_eq!(login_over(json!("acct_1")), "a", "the same account's");
    let mode = std::fs::metadata(dir.path().join("data/auth.json"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
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
fn an_import_with_no_vendor_login_here_says_to_log_in_without_it() {
    // Was the OS's words alone: "cannot read `…` to import: No such file or directory".
    let dir = Dir::new();
    for (provider, file, cli) in [
        ("anthropic", ".claude/.credentials.json", "Claude Code"),
        ("openai-codex", ".codex/auth.json", "the Codex CLI"),
    ] {
        let (code, _, err) = run(&dir, &["login", provider, "--import"], None, |_| None);
        assert_eq!(code, 1, "{err}");
        crate::support::assert_text(
            &err,
            &format!(
                "routeplane: error: login failed: nothing to import: no `{}` ({cli} writes it \
                 when logged in here); run `routeplane login {provider}` without --import\n",
                dir.path().join(file).display()
            ),
        );
    }
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
    // `providers logout` as `providers login`: the same command.
    let (code, out, err) = run(&dir, &["providers", "logout", "openai-codex"], None, |_| {
        None
    });
    assert_eq!(
        (code, out.as_str()),
        (0, "logged out of openai-codex\n"),
        "{err}"
    );
    assert!(stored(&dir)["credentials"].get("openai-codex").is_none());
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
    // A local server or a hosted API: what it takes instead of a login.
    let (code, _, err) = run(&dir, &["login", "ollama"], None, |_| None);
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "; `ollama` is a local server and needs none: Routeplane asks it for its models on \
             its port (`routeplane providers` shows whether it answered)"
        ),
        "{err}"
    );
    let (code, _, err) = run(&dir, &["login", "openrouter"], None, |_| None);
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "; `openrouter` takes an API key: set OPENROUTER_API_KEY, or `api_key:` in its block"
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
             JSON (EOF while parsing a string at line 1 column 77); fix or delete it\n",
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
    let (code, out, err) = codex_token_stdin_with(&dir, &cfg, &["--label", "work"]);
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

/// Writes `credentials` as the token file in `dir`, with mode `mode` (a file copied by
/// hand keeps the copy's mode); returns its path.
fn token_file(dir: &Dir, credentials: Value, mode: u32) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let path = dir.write(
        "data/auth.json",
        &json!({"version": 1, "credentials": credentials}).to_string(),
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A config whose subscriptions' model lists go nowhere (a token with no expiry counts
/// as fresh, and a fresh login's list is asked for), with no local server probed.
fn listing_config(dir: &Dir) -> std::path::PathBuf {
    let dead = crate::support::upstream::dead_url();
    dir.write(
        "routeplane.yaml",
        &format!(
            "detect:\n  default_ports: false\nproviders:\n  anthropic:\n    api_base: {dead}\n  openai-codex:\n    api_base: {dead}\n"
        ),
    )
}

/// `providers --json` with a private token file holding `logins`: its JSON, and what it
/// printed (stdout, stderr).
fn listed(dir: &Dir, logins: Value) -> (Value, String, String) {
    token_file(dir, logins, 0o600);
    let cfg = listing_config(dir);
    let (code, out, err) = run(
        dir,
        &["providers", "--json", "-c", cfg.to_str().unwrap()],
        None,
        |_| None,
    );
    assert_eq!(code, 0, "{err}");
    (serde_json::from_str(&out).unwrap(), out, err)
}

#[test]
fn providers_shows_an_expired_token_as_refreshed_on_next_use_not_its_date() {
    // A token that expired (here at 1970-01-01 00:00:01) is refreshed by the next
    // request: its date would read as a login that ended in 1970. A token file that
    // does not say when its token expires (0) does not make it "until 1970" either.
    let dir = Dir::new();
    let (v, out, err) = listed(
        &dir,
        json!({
            "anthropic": {"access_token": "at-a", "refresh_token": "rt-a", "expires_at": 1},
            "openai-codex": {"access_token": "at-c", "refresh_token": "rt-c", "expires_at": 0},
        }),
    );
    let state = |id: &str| entry(&v, id)["state"].clone();
    assert_eq!(
        state("anthropic"),
        "logged in, expired, refreshed on next use"
    );
    assert_eq!(state("openai-codex"), "logged in, expiry unknown");
    assert!(!out.contains("1970"), "{out}");
    assert!(
        !err.contains("chmod"),
        "a private token file is not warned about: {err}"
    );
}

#[test]
fn a_token_file_others_can_read_is_warned_about_once_by_providers_models_and_serve() {
    // Copied by hand (`cp` takes the umask's 0644), the token file lets every user of
    // the machine read the refresh tokens: each command says so, naming the path and
    // the fix, once, and never what the file holds.
    let dir = Dir::new();
    let file = token_file(
        &dir,
        json!({"anthropic": {"access_token": "at-SECRET-a", "refresh_token": "rt-SECRET-a", "expires_at": 1}}),
        0o644,
    );
    let path = file.display();
    let told = format!(
        "warning: the token file `{path}` can be read by other users (mode 0644) and holds \
         login tokens: run `chmod 600 {path}`"
    );
    let cfg = listing_config(&dir);
    let (code, out, err) = run(
        &dir,
        &["providers", "-c", cfg.to_str().unwrap()],
        None,
        |_| None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches(&told).count(), 1, "{err}");
    assert!(err.contains(&format!("routeplane: {told}\n")), "{err}");
    let (code, models, err) = run(&dir, &["models", "-c", cfg.to_str().unwrap()], None, |_| {
        None
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches(&told).count(), 1, "{err}");
    assert!(err.contains(&format!("routeplane: {told}\n")), "{err}");
    assert!(
        !models.contains("SECRET") && !err.contains("SECRET"),
        "{models}{err}"
    );
    let p = Proxy::start_with(
        &std::fs::read_to_string(&cfg).unwrap(),
        &[("ROUTEPLANE_AUTH_FILE", file.to_str().unwrap())],
        &[],
    );
    p.wait_log(&told);
    // A request reads the file again: still one warning.
    p.post(
        "/v1/messages",
        json!({"model": "nothing:x", "max_tokens": 1, "messages": []}),
    );
    let log = p.log();
    assert_eq!(
        log.iter().filter(|l| l.contains(&told)).count(),
        1,
        "{log:?}"
    );
    for said in log
        .iter()
        .map(String::as_str)
        .chain([out.as_str(), err.as_str()])
    {
        assert!(!said.contains("SECRET"), "{said}");
    }
}

#[test]
fn a_token_file_replaced_under_its_old_modification_time_is_read_again() {
    // A backup restored with `cp -p`, or a script that writes the file and sets its
    // time back: the server, which read the file before, sends the new token, though
    // the file's time, length and inode are what they were.
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let dir = Dir::new();
    let login = |access: &str| json!({"anthropic": {"access_token": access, "refresh_token": "rt-0", "expires_at": 0}});
    let file = token_file(&dir, login("at-old"), 0o600);
    let meta = std::fs::metadata(&file).unwrap();
    let p = Proxy::start_with(
        &anthropic_config(&oauth, &up),
        &[("ROUTEPLANE_AUTH_FILE", file.to_str().unwrap())],
        &[],
    );
    let ask = || {
        let r = p.post(
            "/v1/messages",
            Wire::Anthropic.request("anthropic:claude-x", false, false),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    ask();
    // Written in place, as long as before, its time set back.
    std::fs::write(
        &file,
        json!({"version": 1, "credentials": login("at-new")}).to_string(),
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
    let now = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (now.modified().unwrap(), now.len(), now.ino()),
        (meta.modified().unwrap(), meta.len(), meta.ino())
    );
    ask();
    let used: Vec<_> = up
        .posts()
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default().to_string())
        .collect();
    assert_eq!(used, ["Bearer at-old", "Bearer at-new"]);
    assert_eq!(oauth.refreshes(), 0);
}

#[test]
fn an_expiry_in_milliseconds_is_read_as_its_date() {
    // A token file written by hand or by a script from Claude Code's credentials, whose
    // `expiresAt` is in milliseconds: read as seconds, it would be a date some 50 000
    // years ahead, and the token never refreshed.
    let dir = Dir::new();
    let (v, out, _) = listed(
        &dir,
        json!({
            // 2100-01-01 00:00:00 UTC.
            "anthropic": {"access_token": "at-a", "refresh_token": "rt-a", "expires_at": 4_102_444_800_000_u64},
            // 2001-09-09, long expired.
            "openai-codex": {"access_token": "at-c", "refresh_token": "rt-c", "expires_at": 1_000_000_000_000_u64},
        }),
    );
    let state = |id: &str| entry(&v, id)["state"].as_str().unwrap().to_string();
    assert!(
        state("anthropic").starts_with("logged in until 2100-01-01 "),
        "{out}"
    );
    assert_eq!(
        state("openai-codex"),
        "logged in, expired, refreshed on next use"
    );
}

#[test]
fn a_token_whose_expiry_in_milliseconds_is_near_is_refreshed_before_use() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let dir = Dir::new();
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 60_000;
    let file = token_file(
        &dir,
        json!({"anthropic": {"access_token": "at-0", "refresh_token": "rt-0", "expires_at": soon}}),
        0o600,
    );
    let p = Proxy::start_with(
        &anthropic_config(&oauth, &up),
        &[("ROUTEPLANE_AUTH_FILE", file.to_str().unwrap())],
        &[],
    );
    let r = p.post(
        "/v1/messages",
        Wire::Anthropic.request("anthropic:claude-x", false, false),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(oauth.refreshes(), 1);
    assert_eq!(up.posts()[0].header("authorization"), Some("Bearer at-1"));
    // Stored back in seconds, as every expiry Routeplane writes.
    let stored = stored(&dir)["credentials"]["anthropic"]["expires_at"]
        .as_u64()
        .unwrap();
    assert!(stored < 100_000_000_000, "{stored}");
}

#[test]
fn a_json_file_not_shaped_as_a_token_file_is_refused_and_kept_as_it_was() {
    // Read as holding no logins, it was replaced by the next login: another program's
    // file given as --auth-file (Claude Code's), or one with `credentials` a list.
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, 9));
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    for text in [
        r#"{"claudeAiOauth": {"refreshToken": "keep-me"}}"#,
        r#"{"version": 1, "credentials": ["keep-me"]}"#,
        "[1]",
    ] {
        let file = dir.write("data/auth.json", text);
        let args = ["-c", cfg.to_str().unwrap(), "--token-stdin"];
        let (code, out, err) = run(
            &dir,
            &[&["login", "openai-codex"], &args[..]].concat(),
            Some("rt-0\n"),
            |_| None,
        );
        assert_eq!((code, out.as_str()), (1, ""), "{err}");
        assert_eq!(
            err,
            format!(
                "routeplane: error: login failed: `{}` is not a routeplane token file (no \
                 `credentials` object); move it away or use another --auth-file and log in again\n",
                file.display()
            )
        );
        let (code, _, err) = run(&dir, &["logout", "openai-codex"], None, |_| None);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("logout: the token file `"), "{err}");
        assert_eq!(
            dir.read("data/auth.json"),
            text,
            "the file is kept as it was"
        );
    }
    assert_eq!(oauth.refreshes(), 0, "the refresh token was never spent");
}
