//! The README's quick start and first example, run as written with no config (in a
//! network namespace of its own where it binds Ollama's port), and every local server
//! asked shown on the status page and in the metrics.

use super::*;

/// Ollama's built-in port, where the README's first example is answered.
const OLLAMA_PORT: u16 = 11434;

/// The fenced block of `lang` that follows `heading` in the README.
fn readme_block(heading: &str, lang: &str) -> &'static str {
    let readme = include_str!("../../README.md");
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README has {heading:?}"));
    section
        .split(&format!("```{lang}\n"))
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("a {lang} block after {heading:?}"))
}

#[test]
fn quick_start_is_two_commands_run_and_test() {
    let block = readme_block("## Quick start", "sh");
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands, ["cargo run --release", "make check"]);
}

#[test]
fn serving_writes_only_the_usage_ledger_as_the_quick_start_says() {
    let block = readme_block("## Quick start", "sh");
    assert!(
        block.contains("(finds local servers; writes only the usage ledger)"),
        "{block}"
    );
    let quick_start = include_str!("../../README.md")
        .split("## Quick start")
        .nth(1)
        .unwrap();
    assert!(quick_start.contains("`$XDG_STATE_HOME/routeplane/usage.jsonl`"));
    let mut p = Proxy::start_without_config(&[]);
    let ask = json!({"model": "nobody-serves-this", "messages": []});
    assert_eq!(p.post("/v1/chat/completions", ask).status, 404);
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(0));
    // Everything in its home (where XDG_STATE_HOME and the other XDG dirs point).
    let mut files = Vec::new();
    let mut dirs = vec![p.dir.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path.strip_prefix(p.dir.path()).unwrap().to_path_buf());
            }
        }
    }
    assert_eq!(files, [Path::new("state/routeplane/usage.jsonl")]);
    let ledger = p.dir.read("state/routeplane/usage.jsonl");
    assert_eq!(ledger.lines().count(), 1, "{ledger}");
}

/// Set in the copy of this test binary that runs in its own network namespace.
const IN_OWN_NETWORK: &str = "ROUTEPLANE_TEST_IN_OWN_NETWORK";

/// Runs the test `name` (of this binary) again in a new network namespace with only
/// loopback up, so what it binds on a well-known port is seen by nothing else: other
/// tests of this binary start proxies with built-in defaults, whose detection would find
/// a mock Ollama on 11434. Its output, or `None` when no namespace can be made here
/// (`unshare -n` as root, `unshare -rn` with user namespaces, and `ip` are needed).
fn in_own_network(name: &str) -> Option<std::process::Output> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let try_with = |flags: &[&str]| {
        let probe = Command::new("unshare")
            .args(flags)
            .args(["ip", "link", "set", "lo", "up"])
            .output()
            .ok()?;
        probe.status.success().then_some(())?;
        Command::new("unshare")
            .args(flags)
            .args(["sh", "-ec", r#"ip link set lo up; exec "$@""#, "sh"])
            .arg(&exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(IN_OWN_NETWORK, "1")
            .output()
            .ok()
    };
    try_with(&["-n"]).or_else(|| try_with(&["-r", "-n"]))
}

#[test]
fn readme_first_client_example_works_as_written_with_no_config() {
    let name =
        "first_run::quick_start::readme_first_client_example_works_as_written_with_no_config";
    if std::env::var_os(IN_OWN_NETWORK).is_none() {
        let Some(out) = in_own_network(name) else {
            eprintln!(
                "skipped: no network namespace could be made (run as root, or allow user \
                 namespaces); the README example needs 127.0.0.1:{OLLAMA_PORT} to itself"
            );
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{stderr}");
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "in its own network namespace:\n{stdout}\n{stderr}"
        );
        return;
    }
    // The example names a built-in local server, so it needs that server's own port
    // (here in a network namespace of its own, where it is free).
    if let Err(e) = TcpListener::bind(("127.0.0.1", OLLAMA_PORT)) {
        eprintln!("skipped: 127.0.0.1:{OLLAMA_PORT} is taken ({e}); the README example needs it");
        return;
    }
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed; the README example runs it");
        return;
    }
    let up = MockUpstream::start_on(OLLAMA_PORT, ollama);
    let p = Proxy::start_without_config(&[]);
    let first = p.wait_log("listening on");
    assert!(
        first.ends_with(" with no config file (built-in defaults)"),
        "{first}"
    );
    // The other local servers' ports may be in use on this machine: only Ollama's
    // answer is certain.
    p.wait_log(" local servers: ollama (1 model)");
    let block = readme_block("## Point a client at it", "sh").replace("127.0.0.1:4356", &p.addr);
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = crate::support::proxy::isolate(&mut Command::new("sh"), p.dir.path())
        .args(["-ec", &block])
        .current_dir(p.dir.path())
        .env("PATH", path)
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("\nllama3.1  ") && stdout.contains(" detected  active"),
        "`routeplane models` lists the id:\n{stdout}"
    );
    let answer: Value = serde_json::from_str(stdout.lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        answer["choices"][0]["message"]["content"], "hello from ollama",
        "{stdout}"
    );
    let sent: Vec<Recorded> = up
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json()["model"], "llama3.1");
    assert!(
        stderr.is_empty(),
        "`routeplane models` logs nothing: {stderr}"
    );
}

#[test]
fn every_local_server_asked_is_on_the_status_page_and_in_metrics_found_or_not() {
    // With no config, a local server not running at start had no `routeplane_provider_up`
    // series and no row on the status page: an alert on `== 0` never fired for it.
    let name = "first_run::quick_start::every_local_server_asked_is_on_the_status_page_and_in_metrics_found_or_not";
    if std::env::var_os(IN_OWN_NETWORK).is_none() {
        let Some(out) = in_own_network(name) else {
            eprintln!(
                "skipped: no network namespace could be made (run as root, or allow user \
                 namespaces); the default ports must be free of this machine's servers"
            );
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "in its own network namespace:\n{stdout}\n{stderr}"
        );
        return;
    }
    // In a network namespace of its own: nothing listens on the default ports.
    let up = MockUpstream::start_on(OLLAMA_PORT, ollama);
    let p = Proxy::start_without_config(&[]);
    p.wait_log(" local servers: ollama (1 model); not found: vllm, lmstudio, llamacpp");
    let status = p.get("/status.json").json();
    let states: Vec<(&str, &str, &Value)> = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap(),
                s["state"].as_str().unwrap(),
                &s["up"],
            )
        })
        .collect();
    let (t, f) = (&json!(true), &json!(false));
    assert_eq!(
        states,
        [
            ("ollama", "up", t),
            ("vllm", "down", f),
            ("lmstudio", "down", f),
            ("llamacpp", "down", f),
        ],
        "the hosted built-ins without a key are left out: {status}"
    );
    let metrics = p.get("/metrics").body;
    let gauges: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("routeplane_provider_up{"))
        .collect();
    assert_eq!(
        gauges,
        [
            r#"routeplane_provider_up{provider="ollama"} 1"#,
            r#"routeplane_provider_up{provider="vllm"} 0"#,
            r#"routeplane_provider_up{provider="lmstudio"} 0"#,
            r#"routeplane_provider_up{provider="llamacpp"} 0"#,
        ]
    );
    drop(p);
    // Servers not asked have no series: the default ports turned off, or a block that
    // says `detect: false` and names no model (what would its 0 say?).
    let p = Proxy::start(
        "detect:\n  default_ports: false\nproviders:\n  ollama:\n  vllm:\n    detect: false\n",
    );
    p.wait_log(" local servers: ollama (1 model)");
    let metrics = p.get("/metrics").body;
    let gauges: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("routeplane_provider_up{"))
        .collect();
    assert_eq!(gauges, [r#"routeplane_provider_up{provider="ollama"} 1"#]);
    let status = p.get("/status.json").json();
    let vllm = &status["sources"][1];
    assert_eq!(
        (&vllm["id"], &vllm["state"], &vllm["up"]),
        (&json!("vllm"), &json!("not asked"), &Value::Null),
        "{status}"
    );
    drop(up);
}
