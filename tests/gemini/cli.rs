//! Google's own Gemini CLI (when `make gemini-cli` installed it) as a client.

use super::*;

/// The Gemini CLI that `make gemini-cli` installs under target/, with `node` to run it;
/// `None` (and a printed reason) when either is missing.
fn gemini_cli() -> Option<std::path::PathBuf> {
    let cli = std::env::var_os("ROUTEPLANE_TEST_GEMINI_CLI")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/gemini-cli/node_modules/.bin/gemini")
        });
    // `v20.20.2` → 20; the CLI needs node 20 or later.
    let major = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
            v.trim_start_matches('v')
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        });
    if !cli.exists() || major.is_none_or(|m| m < 20) {
        eprintln!(
            "skipped: Gemini CLI not installed at {} or no `node` 20 or later (node major: {major:?}; run `make gemini-cli`)",
            cli.display()
        );
        return None;
    }
    Some(cli)
}

/// Runs `gemini -m up:m -p PROMPT` in a fresh home (with a file `a.txt` in it) against
/// the proxy and returns its stdout; panics with everything known when it fails or
/// takes over 120 s.
fn run_gemini(cli: &std::path::Path, p: &Proxy, prompt: &str) -> String {
    let home = Dir::new();
    std::fs::create_dir_all(home.path().join(".gemini")).unwrap();
    // Gemini CLI 0.61 picks a `gateway` auth type for GOOGLE_GEMINI_BASE_URL and then
    // rejects it when run headless; the API-key type with the same base URL works.
    home.write(
        ".gemini/settings.json",
        r#"{"security": {"auth": {"selectedType": "gemini-api-key"}},
            "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
            "privacy": {"usageStatisticsEnabled": false}, "telemetry": {"enabled": false}}"#,
    );
    home.write("a.txt", "");
    let mut child = Command::new(cli)
        .args(["-m", "up:m", "-p", prompt])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("GOOGLE_GEMINI_BASE_URL", p.url())
        .env("GEMINI_API_KEY", "unused")
        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gemini");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "gemini did not finish within 120 s; proxy log: {:#?}",
                p.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {stdout}\nstderr: {}\nproxy log: {:#?}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        p.log()
    );
    stdout
}

#[test]
fn gemini_cli_answers_through_routeplane_from_a_chat_upstream() {
    let Some(cli) = gemini_cli() else {
        return;
    };
    let mock = MockUpstream::start(|req| {
        let stream = String::from_utf8_lossy(&req.body).contains("\"stream\":true");
        Wire::Chat.reply(stream, false)
    });
    let p = proxy(&mock, "chat_completions", "m", "");
    let stdout = run_gemini(&cli, &p, "Say hello");
    assert!(stdout.contains("Hello there"), "{stdout}");
    let asked = mock.requests().iter().any(|r| {
        r.path == "/v1/chat/completions" && r.json()["messages"].to_string().contains("Say hello")
    });
    assert!(asked, "the prompt reached the chat upstream");
}

#[test]
fn gemini_cli_runs_a_tool_through_routeplane() {
    let Some(cli) = gemini_cli() else {
        return;
    };
    // The chat source asks for `list_directory` (one of the CLI's own tools), its
    // arguments in two fragments, then answers once the listing is back.
    let mock = MockUpstream::start(|req| {
        let body = req.json();
        let answered = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x["role"] == "tool"));
        let chunk = crate::support::wire::chat_chunk;
        let mut evs = if answered {
            vec![chunk(json!({"content": "Listed."}), Value::Null)]
        } else {
            vec![
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_abc", "type": "function",
                        "function": {"name": "list_directory", "arguments": "{\"dir_path\":"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\".\"}"}}]}),
                    Value::Null,
                ),
            ]
        };
        let finish = if answered { "stop" } else { "tool_calls" };
        evs.push(chunk(json!({}), json!(finish)));
        evs.push("data: [DONE]\n\n".into());
        Reply::Sse(evs, Duration::ZERO)
    });
    let p = proxy(&mock, "chat_completions", "m", "");
    let stdout = run_gemini(&cli, &p, "list the files here");
    assert!(stdout.contains("Listed."), "{stdout}");
    let result = mock
        .requests()
        .iter()
        .filter_map(|r| {
            let msgs = r.json()["messages"].as_array()?.clone();
            msgs.into_iter().find(|m| m["role"] == "tool")
        })
        .next()
        .expect("the tool's result went back upstream");
    assert_eq!(result["tool_call_id"], "call_abc", "{result}");
    assert!(result["content"].to_string().contains("a.txt"), "{result}");
}
