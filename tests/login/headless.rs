//! Logins with no terminal, no browser, or neither: each stops, or ends its wait, and
//! names the flows that can work there.

use super::*;

#[test]
fn a_paste_login_without_a_terminal_names_the_flows_that_need_none() {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &anthropic_config(&oauth, &up));
    // A CI job: stdin is empty and not a terminal.
    let out = Command::new(bin())
        .args(["login", "anthropic", "--no-browser", "--label", "ci", "-c"])
        .arg(&cfg)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("data/auth.json"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // A usage error, as for openai-codex below: this flow cannot run here.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("(CODE#STATE): \nrouteplane: error: stdin ended before a code was pasted (it is not a terminal)")
            && err.contains("`routeplane login anthropic --label ci --token-stdin`")
            && err.contains("`routeplane login anthropic --label ci --import`"),
        "{err}"
    );
}

#[test]
fn device_with_anthropic_is_refused_saying_its_paste_flow_needs_no_browser_here() {
    // The README once told a service's admin to run `login anthropic --device`: taken
    // silently, it printed a URL and waited for a paste the admin did not expect.
    let dir = Dir::new();
    let out = Command::new(bin())
        .args(["login", "anthropic", "--device"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("data/auth.json"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "routeplane: error: --device is openai-codex's device-code flow; `routeplane login \
         anthropic` needs no browser on this machine either: open the URL it prints on any \
         device, approve, and paste the CODE#STATE shown back here (see --help)\n"
    );
    assert!(out.stdout.is_empty());
}

/// The three ways to log in to openai-codex without a browser here; `label` is
/// ` --label NAME` or empty.
fn codex_other_ways(label: &str) -> [String; 3] {
    ["--device", "--token-stdin", "--import"]
        .map(|flag| format!("`routeplane login openai-codex{label} {flag}`"))
}

/// Runs a codex browser login as a CI job does (stdin empty and not a terminal) with
/// `args` after `--label ci` and `PATH` at `path`, and checks that it stops at once,
/// with exit code 2, naming the ways that need no browser here.
fn codex_login_stops_without_a_browser(args: &[&str], path: &std::path::Path) {
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let port = MockUpstream::free_port();
    let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, port));
    let child = Command::new(bin())
        .args(["login", "openai-codex", "--label", "ci"])
        .args(args)
        .arg("-c")
        .arg(&cfg)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("PATH", path)
        // No display, as on a CI runner, whatever the machine running the tests has.
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("data/auth.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It waited 300 s for a callback nothing could send, and said nothing for 30.
    let (ended, out) = wait_output(child, Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(ended, "{args:?}: still waiting after 20 s: {err}");
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(&format!(
            "routeplane: error: no browser was opened here and stdin has ended (it is not a \
             terminal), so nothing can bring the login back to \
             http://localhost:{port}/auth/callback"
        )),
        "{args:?}: {err}"
    );
    // Once: a note listed them and the error listed them again, nearly the same
    // paragraph twice.
    for way in codex_other_ways(" --label ci") {
        assert_eq!(err.matches(&way).count(), 1, "{args:?}: {way}: {err}");
    }
    assert!(!dir.path().join("data/auth.json").exists());
}

#[test]
fn a_browser_login_with_no_browser_and_no_terminal_stops_at_once_naming_the_other_ways() {
    // The opener would take the URL, but is not asked.
    let dir = Dir::new();
    let path = crate::support::browser::opener(&dir, 0);
    codex_login_stops_without_a_browser(&["--no-browser"], &path);
}

#[test]
fn a_browser_login_whose_opener_fails_without_a_terminal_stops_at_once_too() {
    // A CI runner with xdg-open installed and no desktop: the opener exits 3.
    let dir = Dir::new();
    let path = crate::support::browser::opener(&dir, 3);
    codex_login_stops_without_a_browser(&[], &path);
}

#[test]
fn a_browser_login_whose_opener_hangs_with_no_display_stops_at_once_too() {
    // A headless `xdg-open` that neither fails nor opens anything: still running after
    // a second, it was taken as a browser, and the login waited for its callback.
    let dir = Dir::new();
    let path = crate::support::browser::hanging_opener(&dir);
    codex_login_stops_without_a_browser(&[], &path);
}

#[test]
fn a_hung_opener_does_not_outlive_the_login() {
    // An `xdg-open` that never exits: on a desktop it is taken for the browser and the
    // login waits for the callback until its wait ends; with no display the login stops
    // at once. Either way the opener was left running after the login had ended.
    for display in [Some(":0"), None] {
        let oauth = MockOAuth::start(3600);
        let up = MockUpstream::always(Reply::Json(500, "{}".into()));
        let dir = Dir::new();
        let path = crate::support::browser::hanging_opener(&dir);
        let port = MockUpstream::free_port();
        let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, port));
        let mut cmd = Command::new(bin());
        cmd.args(["login", "openai-codex", "-c"])
            .arg(&cfg)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("PATH", &path)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("BROWSER")
            .env("ROUTEPLANE_AUTH_FILE", dir.path().join("data/auth.json"))
            .env("ROUTEPLANE_TEST_LOGIN_WAIT_SECS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(display) = display {
            cmd.env("DISPLAY", display);
        }
        let (ended, out) = wait_output(cmd.spawn().unwrap(), Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        let pid = crate::support::browser::opener_pid(&dir).expect("the opener ran");
        let left = crate::support::browser::running(pid);
        if left {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        assert!(ended, "{display:?}: still waiting after 20 s: {err}");
        let wanted = if display.is_some() { 1 } else { 2 };
        assert_eq!(out.status.code(), Some(wanted), "{display:?}: {err}");
        assert!(!left, "{display:?}: the opener outlived the login: {err}");
    }
}

/// Runs `routeplane ARGS` (with `--label ci`) in `dir` as a script whose stdin is a pipe
/// it holds open and never writes to, with the login's wait shortened to 1 s; its exit
/// code, `None` when it was still running after 20 s (it is then killed), and stderr.
fn login_on_a_silent_pipe(dir: &Dir, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .args(["--label", "ci"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("data/auth.json"))
        .env("ROUTEPLANE_TEST_LOGIN_WAIT_SECS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let held = child.stdin.take();
    let (ended, out) = wait_output(child, Duration::from_secs(20));
    drop(held);
    let code = ended.then(|| out.status.code().unwrap_or(-1));
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_paste_login_on_a_pipe_that_stays_open_stops_when_its_wait_ends() {
    // `ssh host routeplane login anthropic` from a script, or a CI step with stdin
    // attached: nothing is pasted and stdin never ends. It waited for ever.
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let cfg = dir.write("routeplane.yaml", &anthropic_config(&oauth, &up));
    let cfg = cfg.to_str().unwrap();
    let (code, err) =
        login_on_a_silent_pipe(&dir, &["login", "anthropic", "--no-browser", "-c", cfg]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "(CODE#STATE): \nrouteplane: error: login failed: no code was pasted within 1s; \
             start the login again for a new URL."
        ) && err.contains("`routeplane login anthropic --label ci --token-stdin`")
            && err.contains("`routeplane login anthropic --label ci --import`"),
        "{err}"
    );
    // The token flow reads the same pipe, and ends the same way.
    let (code, err) =
        login_on_a_silent_pipe(&dir, &["login", "anthropic", "--token-stdin", "-c", cfg]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "routeplane: error: --token-stdin read nothing within 1s; pipe the refresh token in"
        ),
        "{err}"
    );
    assert_eq!(oauth.refreshes(), 0);
    assert!(!dir.path().join("data/auth.json").exists());
}

#[test]
fn a_browser_login_on_a_pipe_that_stays_open_stops_when_its_wait_ends() {
    // The same for openai-codex: its browser wait ends at the same time, and names the
    // same kind of ways out.
    let oauth = MockOAuth::start(3600);
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let port = MockUpstream::free_port();
    let cfg = dir.write("routeplane.yaml", &codex_config(&oauth, &up, port));
    let args = [
        "login",
        "openai-codex",
        "--no-browser",
        "-c",
        cfg.to_str().unwrap(),
    ];
    let (code, err) = login_on_a_silent_pipe(&dir, &args);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "routeplane: error: login failed: no browser came back to \
             http://localhost:{port}/auth/callback within 1s; start the login again, or log \
             in without a browser here"
        )),
        "{err}"
    );
    for way in codex_other_ways(" --label ci") {
        assert!(err.contains(&way), "{way}: {err}");
    }
    assert!(!dir.path().join("data/auth.json").exists());
}

#[test]
fn a_browser_login_without_a_terminal_names_the_other_ways_at_once_and_takes_the_callback() {
    // As `ssh host routeplane login openai-codex --no-browser` runs it: stdin is an open
    // pipe, not a terminal, and a browser elsewhere comes back through a forwarded port.
    let oauth = MockOAuth::start(3600);
    let port = MockUpstream::free_port();
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let dir = Dir::new();
    let (code, out, err) = codex_loopback_login(&dir, &codex_config(&oauth, &up, port), port);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("logged in to openai-codex"), "{out}");
    // Told before the wait, not after 30 s without a callback.
    let told = err
        .lines()
        .position(|l| l.starts_with("stdin is not a terminal and no browser was opened here"))
        .unwrap_or_else(|| panic!("{err}"));
    let waiting = err
        .lines()
        .position(|l| l.starts_with("waiting for the browser to return to"))
        .unwrap();
    assert_eq!(told, waiting + 1, "{err}");
    for way in codex_other_ways("") {
        assert!(err.contains(&way), "{way}: {err}");
    }
}

/// A device login against a server whose code request answers `usercode`, and whose
/// polls stay pending, with the login's wait shortened to 1 s: exit code (`None` when
/// it was still running after 10 s) and stderr.
fn device_login(usercode: Value) -> (Option<i32>, String) {
    let server = MockUpstream::start(move |req| match req.path.as_str() {
        "/device/usercode" => Reply::json(200, usercode.clone()),
        _ => Reply::json(
            403,
            json!({"error": {"code": "deviceauth_authorization_pending"}}),
        ),
    });
    let up = MockUpstream::always(Reply::Json(500, "{}".into()));
    let b = format!("http://127.0.0.1:{}", server.port());
    let dir = Dir::new();
    let cfg = dir.write(
        "routeplane.yaml",
        &format!(
            "providers:\n  openai-codex:\n    api_base: {}\n    models: [gpt-5]\n    auth:\n      token_url: \
             {b}/token\n      device_url: {b}/device/usercode\n      device_token_url: \
             {b}/device/token\n      device_verify_url: {b}/device\n",
            up.url()
        ),
    );
    let child = Command::new(bin())
        .args([
            "login",
            "openai-codex",
            "--device",
            "-c",
            cfg.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("ROUTEPLANE_AUTH_FILE", dir.path().join("data/auth.json"))
        .env("ROUTEPLANE_TEST_LOGIN_WAIT_SECS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ended, out) = wait_output(child, Duration::from_secs(10));
    let code = ended.then(|| out.status.code().unwrap_or(-1));
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_device_poll_interval_of_days_still_ends_when_the_code_expires() {
    // It slept the whole interval: a login that never ended.
    let (code, err) = device_login(
        json!({"device_auth_id": "d", "user_code": "AB-12", "interval": "99999999999"}),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.ends_with(
            "login failed: the device code expired before it was approved; run the login again\n"
        ),
        "{err}"
    );
}

#[test]
fn a_device_code_with_control_characters_is_refused_not_printed() {
    // An escape sequence in the code reached the terminal.
    let (code, err) = device_login(
        json!({"device_auth_id": "d", "user_code": "AB\u{1b}]0;x\u{7}", "interval": "0"}),
    );
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err,
        "routeplane: error: login failed: the device login sent an unusable code \
         \"AB\\u{1b}]0;x\\u{7}\"; try again later\n"
    );
}

#[test]
fn a_device_code_says_how_long_it_lives_as_the_server_said() {
    // "15 minutes" was fixed text, whatever the server's `expires_in` said.
    for (expires_in, told) in [
        (json!(600), "10 minutes"),
        (json!("90"), "90 seconds"),
        (Value::Null, "15 minutes"),
    ] {
        let (code, err) = device_login(json!({"device_auth_id": "d", "user_code": "AB-12",
            "interval": "0", "expires_in": expires_in}));
        assert_eq!(code, Some(1), "{err}");
        let want = format!("waiting for approval (the code expires in {told})...\n");
        assert!(err.contains(&want), "{want}: {err}");
    }
}
