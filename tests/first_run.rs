//! What a new user meets in the first hour: the README's first example working with no
//! config, a start-up that says what it found, answers to `HEAD`, config errors that
//! name the key, and answers that look the same however they travelled.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::proxy::bin;
use crate::support::upstream::{Recorded, chat_answer, chat_events};
use crate::support::{Dir, MockUpstream, Proxy, Reply, assert_text, config_error, validate};

/// Ollama's built-in port, where the README's first example is answered.
const OLLAMA_PORT: u16 = 11434;

/// A mock Ollama serving `llama3.1`: native listing, OpenAI listing, chat.
fn ollama(req: &Recorded) -> Reply {
    match req.path.as_str() {
        "/api/tags" => Reply::json(
            200,
            json!({"models": [{"name": "llama3.1", "model": "llama3.1"}]}),
        ),
        "/v1/models" => Reply::json(200, json!({"object": "list", "data": [{"id": "llama3.1"}]})),
        _ => Reply::json(
            200,
            json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "llama3.1",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello from ollama"}, "finish_reason": "stop"}]}),
        ),
    }
}

/// The fenced block of `lang` that follows `heading` in the README.
fn readme_block(heading: &str, lang: &str) -> &'static str {
    let readme = include_str!("../README.md");
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
    let quick_start = include_str!("../README.md")
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
    let name = "first_run::readme_first_client_example_works_as_written_with_no_config";
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

/// A config that points every local built-in away from its default port: `ollama` at
/// `url`, the others at a port nothing listens on.
fn local_servers_config(url: &str) -> String {
    let dead = MockUpstream::always(Reply::Reset);
    let dead_url = dead.url();
    drop(dead);
    // A probe's default half second can pass on a loaded test machine, and the
    // summary would then count the mock as not found.
    format!(
        "detect:\n  timeout_secs: 5\nproviders:\n  ollama:\n    api_base: {url}\n  vllm:\n    api_base: {dead_url}\n  lmstudio:\n    api_base: {dead_url}\n  llamacpp:\n    api_base: {dead_url}\n"
    )
}

#[test]
fn start_up_names_the_config_and_the_local_servers_found_and_not() {
    let up = MockUpstream::start(ollama);
    let p = Proxy::start(&local_servers_config(&up.url()));
    let first = p.wait_log("listening on");
    let config = p.dir.path().join("routeplane.yaml");
    assert!(
        first.ends_with(&format!(" with config {}", config.display())),
        "{first}"
    );
    assert!(!first.contains("(("), "{first}");
    p.wait_log(" local servers: ollama (1 model); not found: vllm, lmstudio, llamacpp");
}

#[test]
fn ollama_names_reach_ollama_and_near_misses_are_told_the_name() {
    // Ollama's `mistral:7b` starts with a built-in provider's id; `gpt-oss` looks like an
    // OpenAI model's name. Neither is meant for a hosted API that has no key.
    let up = MockUpstream::start(|req| {
        let names = ["mistral:7b", "gpt-oss:20b"];
        match req.path.as_str() {
            "/api/tags" => Reply::json(
                200,
                json!({"models": names.map(|n| json!({"name": n, "model": n}))}),
            ),
            "/v1/models" => Reply::json(
                200,
                json!({"object": "list", "data": names.map(|n| json!({"id": n}))}),
            ),
            _ => Reply::json(200, chat_answer("from ollama")),
        }
    });
    let p = Proxy::start(&local_servers_config(&up.url()));
    p.wait_log(" local servers: ollama (2 models)");
    let ask = |model: &str| {
        p.post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    let resp = ask("mistral:7b");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("ollama"));
    for (model, hint) in [
        (
            "gpt-oss",
            "`gpt-oss` is served with a tag: name `gpt-oss:20b`",
        ),
        (
            "olama:gpt-oss:20b",
            "`olama` is no provider; did you mean `ollama:gpt-oss:20b`?",
        ),
        (
            "ollama/gpt-oss:20b",
            "a provider is named before a colon: to ask `ollama`, name it `ollama:gpt-oss:20b`",
        ),
    ] {
        let resp = ask(model);
        assert_eq!(resp.status, 404, "{model}: {}", resp.body);
        let message = resp.error_message();
        assert!(
            message.ends_with(&format!(". {hint}")),
            "{model}: {message}"
        );
    }
}

#[test]
fn models_and_providers_print_their_table_and_no_log_lines() {
    let up = MockUpstream::start(ollama);
    let dir = Dir::new();
    dir.write("routeplane.yaml", &local_servers_config(&up.url()));
    for args in [&["models"][..], &["providers"]] {
        let out = crate::support::proxy::routeplane_in(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert_text(&String::from_utf8_lossy(&out.stderr), "");
        assert!(String::from_utf8_lossy(&out.stdout).contains("ollama"));
    }
}

#[test]
fn models_and_route_say_which_declared_model_the_server_does_not_list() {
    // A model declared at an Ollama that has not pulled it, and a virtual model of it
    // alone: a request would get a 404 from each.
    let up = MockUpstream::start(ollama);
    let dir = Dir::new();
    let yaml = local_servers_config(&up.url()).replace(
        "  ollama:\n",
        "  ollama:\n    models: [\"qwen3-coder:30b\", llama3.1]\n",
    ) + "models:\n  coder:\n    endpoints: [ollama:qwen3-coder:30b]\n  chat:\n    endpoints: [ollama:qwen3-coder:30b, ollama:llama3.1]\n  cloud:\n    endpoints: [openai:gpt-4o]\n";
    dir.write("routeplane.yaml", &yaml);
    let run = |args: &[&str]| {
        crate::support::stdout_of(crate::support::proxy::routeplane_in(dir.path()).args(args))
    };
    let table = run(&["models"]);
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .map(|l| {
                l.split("  ")
                    .filter(|c| !c.is_empty())
                    .last()
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| panic!("no {id} in {table}"))
    };
    assert_eq!(
        row("qwen3-coder:30b"),
        "not listed by the server",
        "{table}"
    );
    assert_eq!(row("llama3.1"), "active", "{table}");
    assert_eq!(row("coder"), "not listed by its servers", "{table}");
    assert_eq!(row("chat"), "active", "{table}");
    assert_eq!(row("cloud"), "no endpoint active", "{table}");
    let route = run(&["route", "coder"]);
    assert!(
        route.lines().next().is_some_and(
            |l| l.ends_with(") not listed by the server (run `ollama pull qwen3-coder:30b`)")
        ),
        "{route}"
    );
}

#[test]
fn models_says_on_stderr_why_a_keyed_providers_list_is_missing() {
    // OpenAI's restricted keys may not list models: the table was empty with no word of
    // why, and its hint asked for keys that are set.
    let up = MockUpstream::always(Reply::json(
        403,
        json!({"error": {"message": "Missing scopes: api.model.read (key sk-restricted)", "type": "invalid_request_error"}}),
    ));
    let dir = Dir::new();
    let yaml = format!(
        "{}  openai:\n    api_base: {}\n    api_key: sk-restricted\n",
        nothing_found_config(),
        up.url()
    );
    dir.write("routeplane.yaml", &yaml);
    let out = crate::support::proxy::routeplane_in(dir.path())
        .arg("models")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("routeplane: cannot list the models of openai: ")
            && first.contains("403")
            && first.contains("Missing scopes: api.model.read (key ***)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("sk-restricted"),
        "an echoed key is masked: {stderr}"
    );
}

/// [`local_servers_config`] with every local built-in at a port nothing listens on: what
/// this machine runs adds no model, so a message is the same wherever the test runs.
fn nothing_found_config() -> String {
    local_servers_config(&format!(
        "http://127.0.0.1:{}/v1",
        MockUpstream::free_port()
    ))
}

/// What a 404 for `gpt-4o` says with no OpenAI key and no ChatGPT login.
const GPT_4O_WITHOUT_KEY: &str = "unknown model `gpt-4o`; no models are configured (run \
    `routeplane models`). `gpt-4o` looks like an OpenAI model: set OPENAI_API_KEY or \
    ROUTEPLANE_OPENAI_API_KEY, or run `routeplane login openai-codex` and name a model it \
    lists `openai-codex:MODEL`, or name it `openrouter:openai/gpt-4o` with OPENROUTER_API_KEY \
    set";

/// What a 404 for `claude-sonnet-4-5` says with no Anthropic key and no Claude login.
const CLAUDE_WITHOUT_KEY: &str = "unknown model `claude-sonnet-4-5`; no models are configured \
    (run `routeplane models`). `claude-sonnet-4-5` looks like an Anthropic model: set \
    ANTHROPIC_API_KEY or ROUTEPLANE_ANTHROPIC_API_KEY, or run `routeplane login anthropic` and \
    name it `anthropic:claude-sonnet-4-5`";

/// An Anthropic Messages request for `model`.
fn messages_request(model: &str) -> Value {
    json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
}

#[test]
fn a_hosted_model_without_its_key_gets_a_404_naming_the_key_and_the_login() {
    // `isolate` keeps this machine's OPENAI_API_KEY and the like away from the proxy.
    let p = Proxy::start(&nothing_found_config());
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let resp = p.post("/v1/chat/completions", chat);
    assert_eq!(resp.status, 404, "{}", resp.body);
    let v = resp.json();
    assert_eq!(v["error"]["code"], "model_not_found", "{v}");
    assert_text(v["error"]["message"].as_str().unwrap(), GPT_4O_WITHOUT_KEY);
    let resp = p.post("/v1/messages", messages_request("claude-sonnet-4-5"));
    assert_eq!(resp.status, 404, "{}", resp.body);
    let v = resp.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");
    assert_text(v["error"]["message"].as_str().unwrap(), CLAUDE_WITHOUT_KEY);
    // A name no hosted provider's family has gets no hint.
    let resp = p.post("/v1/messages", messages_request("llama3.1"));
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "unknown model `llama3.1`; no models are configured (run `routeplane models`)",
    );
}

#[test]
fn route_says_what_a_hosted_model_without_its_key_needs_as_the_server_does() {
    let dir = Dir::new();
    dir.write("routeplane.yaml", &nothing_found_config());
    let out = crate::support::proxy::routeplane_in(dir.path())
        .args(["route", "gpt-4o"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_text(
        &String::from_utf8_lossy(&out.stderr),
        &format!("routeplane: error: {GPT_4O_WITHOUT_KEY}\n"),
    );
}

#[test]
fn a_hosted_model_whose_vendor_has_a_key_gets_no_hint_and_with_a_login_the_name_that_spends_it() {
    // Nothing answers at these bases: the key and the login are there, their lists are not.
    let dead = format!("http://127.0.0.1:{}/v1", MockUpstream::free_port());
    let yaml = format!(
        "{}  openai:\n    api_base: {dead}\n    api_key: sk-test\n  openai-codex:\n    api_base: {dead}\n",
        nothing_found_config()
    );
    let p = Proxy::start(&yaml);
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    // With a key and no list, the model is asked of OpenAI by its name (nothing answers
    // there): no 404 and no hint.
    let resp = p.post("/v1/chat/completions", chat);
    assert_eq!(resp.status, 502, "{}", resp.body);
    let message = resp.error_message();
    assert!(message.starts_with("upstream `openai`"), "{message}");
    // A labelled ChatGPT login, and no key: the login is OpenAI's credential.
    let logins = Dir::new();
    // A proxy with one stored `login` (the id it is stored under) of `provider`, whose
    // base answers nothing.
    let logged_in = |login: &str, provider: &str| {
        let credentials = json!({"version": 1, "credentials": {login: {
            "access_token": "at-1", "refresh_token": "rt-1", "expires_at": 4102444800u64}}});
        let auth_file = logins.write(&format!("{provider}.json"), &credentials.to_string());
        let yaml = format!(
            "{}  {provider}:\n    api_base: {dead}\n",
            nothing_found_config()
        );
        Proxy::start_with(
            &yaml,
            &[("ROUTEPLANE_AUTH_FILE", auth_file.to_str().unwrap())],
            &[],
        )
    };
    let p = logged_in("openai-codex#work", "openai-codex");
    // It is never spent on a bare name: the 404 says the name that spends it.
    let chat = json!({"model": "o3", "messages": [{"role": "user", "content": "hi"}]});
    let message = p.post("/v1/chat/completions", chat).json()["error"]["message"].clone();
    assert_text(
        message.as_str().unwrap(),
        "unknown model `o3`; no models are configured (run `routeplane models`). A bare name \
         never spends a subscription login: to ask your `openai-codex#work` login, name it \
         `openai-codex#work:o3` (if the plan serves that model)",
    );
    // Anthropic has neither.
    let resp = p.post("/v1/messages", messages_request("claude-sonnet-4-5"));
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        CLAUDE_WITHOUT_KEY,
    );
    // A Claude login serves Anthropic's names as they are.
    let p = logged_in("anthropic", "anthropic");
    let resp = p.post("/v1/messages", messages_request("claude-sonnet-4-5"));
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert!(
        resp.error_message().ends_with(
            ". A bare name never spends a subscription login: to ask your `anthropic` login, \
             name it `anthropic:claude-sonnet-4-5`"
        ),
        "{}",
        resp.body
    );
}

#[test]
fn a_local_base_url_without_v1_is_questioned_at_validate_and_start() {
    // Ollama at `http://127.0.0.1:11434` (no `/v1`) answers every request 404: said
    // before the first request, and only where a server at the root is unlikely.
    let yaml = "providers:\n  box:\n    api_base: http://127.0.0.1:11434/\n    models: [m]\n  \
                far:\n    api_base: https://api.deepseek.com\n    models: [d]\n";
    let (ok, stderr) = validate(yaml, &[]);
    assert!(ok);
    let warning = "3:5: `api_base` of `box` has no path (http://127.0.0.1:11434): Ollama, \
                   vLLM, LM Studio and llama.cpp serve OpenAI's API under `/v1` and answer \
                   404 without it; write `http://127.0.0.1:11434/v1` unless this server \
                   serves at its root";
    assert_text(
        &stderr,
        &format!("routeplane: warning: routeplane.yaml:{warning}\n"),
    );
    let p = Proxy::start(yaml);
    let config = p.dir.path().join("routeplane.yaml");
    p.wait_log(&format!(" warning: {}:{warning}", config.display()));
}

#[test]
fn config_slips_that_still_load_are_warned_at_validate() {
    let (ok, stderr) = validate(
        "skip_auth: true\nkeys: [k1]\nproviders:\n  groq:\n    api_base: http://127.0.0.1:9/v1/chat/completions\n    api_key: $GROQ_API_KEY\n",
        &[],
    );
    assert!(ok, "{stderr}");
    assert_text(
        &stderr,
        "routeplane: warning: routeplane.yaml:1:1: `skip_auth: true` lets every client in, so \
         the `keys:` listed are never asked for; set `skip_auth: false` (or remove the line) \
         to require them\n\
         routeplane: warning: routeplane.yaml:6:5: `api_key` of `groq` is the text \
         `$GROQ_API_KEY`, sent as the key itself: write `${GROQ_API_KEY}` to read the \
         environment variable\n\
         routeplane: warning: routeplane.yaml:5:5: `api_base` of `groq` ends with \
         `/chat/completions`, a path Routeplane adds itself after the base; end it before \
         `/chat/completions`\n",
    );
    // Written as meant: nothing to say.
    let (ok, stderr) = validate(
        "keys: [k1]\nproviders:\n  groq:\n    api_base: http://127.0.0.1:9/v1\n    api_key: gsk-$x\n",
        &[],
    );
    assert!(ok && stderr.is_empty(), "{stderr}");
}

#[test]
fn an_empty_variable_is_said_to_be_empty_not_unset() {
    let (ok, stderr) = validate("keys: [\"${ROUTEPLANE_KEY}\"]\n", &[("ROUTEPLANE_KEY", "")]);
    assert!(!ok);
    assert!(
        stderr.contains("environment variable `ROUTEPLANE_KEY` is empty (export it"),
        "{stderr}"
    );
}

#[test]
fn validate_refuses_what_serving_refuses() {
    let (ok, stderr) = validate("listen: 0.0.0.0:4399\n", &[]);
    assert!(!ok);
    assert!(
        stderr
            .starts_with("routeplane: invalid: refusing to serve 0.0.0.0:4399 without client keys"),
        "{stderr}"
    );
    let (ok, stderr) = validate("listen: 0.0.0.0:4399\nkeys: [k1]\n", &[]);
    assert!(ok, "{stderr}");
}

#[test]
fn a_virtual_endpoint_without_its_provider_is_told_how_to_write_it() {
    let (ok, stderr) = validate("models:\n  smart:\n    endpoints: [llama3.1:8b]\n", &[]);
    assert!(!ok);
    assert!(
        stderr.contains("endpoint names unknown provider `llama3.1` (only the text before the first colon names one): write the provider first, e.g. `ollama:llama3.1:8b`; known: "),
        "{stderr}"
    );
    let (_, stderr) = validate("models:\n  smart:\n    endpoints: [olama:llama3.1]\n", &[]);
    assert!(
        stderr.contains(
            "endpoint names unknown provider `olama` (did you mean `ollama:llama3.1`?); known: "
        ),
        "{stderr}"
    );
}

#[test]
fn a_clients_placeholder_key_in_routeplanes_shell_is_no_key() {
    // The README's client lines export `OPENAI_API_KEY=unused`; a user who then starts
    // Routeplane in the same shell must not have it sent to OpenAI as a key.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start_with(
        &format!("providers:\n  openai:\n    api_base: {}\n", up.url()),
        &[("OPENAI_API_KEY", "unused")],
        &[],
    );
    p.wait_log(
        "warning: `unused`, the key a client sends to Routeplane, is no key for a vendor: \
         `OPENAI_API_KEY` taken as unset; set such variables only in the client's shell, not in \
         the one that starts Routeplane",
    );
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "openai:gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(up.count(), 0, "the placeholder was sent as a key");
    assert!(
        resp.error_message().starts_with(
            "provider `openai` has no credential: `OPENAI_API_KEY` is set, but taken as unset \
             (`unused`, the key a client sends to Routeplane, is no key for a vendor); set \
             OPENAI_API_KEY or"
        ),
        "{}",
        resp.body
    );
}

#[test]
fn a_key_read_from_a_variable_loses_its_line_end_and_the_placeholder_is_no_key() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let yaml = format!(
        "providers:\n  x:\n    api_base: {}\n    api_key: ${{RP_TEST_KEY:-}}\n    models: [m]\n",
        up.url()
    );
    let ask = |p: &Proxy| {
        let body = json!({"model": "x:m", "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(p.post("/v1/chat/completions", body).status, 200);
    };
    // A key file saved on Windows and read with `$(cat key.txt)` keeps its `\r\n`.
    let p = Proxy::start_with(&yaml, &[("RP_TEST_KEY", " sk-SECRET-1\r\n")], &[]);
    ask(&p);
    assert_eq!(
        up.posts()[0].header("authorization"),
        Some("Bearer sk-SECRET-1")
    );
    // The README's client line run in Routeplane's shell, read through the config.
    let p = Proxy::start_with(&yaml, &[("RP_TEST_KEY", "unused")], &[]);
    p.wait_log(
        "routeplane.yaml:4:5: `api_key` of `x` is `unused`, the key a client sends to Routeplane, not a \
         vendor's: taken as no key; set the variable it reads only in the client's shell, not in \
         the one that starts Routeplane",
    );
    ask(&p);
    assert_eq!(up.posts()[1].header("authorization"), None);
    // A character no header carries, inside the key: refused where it is written.
    let (path, validate, serve) = config_error(&yaml, &[("RP_TEST_KEY", "sk-SECRET\r\n-2")]);
    let said = format!(
        "{path}:4:5: `api_key` of `x`: it holds something other than visible ASCII characters \
         inside (a space, a line break, a control character), which no key does and no header \
         carries; the value is not shown\n"
    );
    assert_text(&validate, &format!("routeplane: invalid: {said}"));
    assert_text(&serve, &format!("routeplane: error: {said}"));
}

#[test]
fn a_404_page_at_the_upstream_says_to_check_the_api_base() {
    // Ollama without `/v1` answers Go's plain-text 404 page, not an API's JSON.
    let up = MockUpstream::start(|req| match req.path.as_str() {
        "/v1/chat/completions" => Reply::json(200, chat_answer("ok")),
        _ => Reply::Json(404, "404 page not found".into()),
    });
    let root = format!("http://127.0.0.1:{}", up.port());
    let p = Proxy::start(&format!(
        "providers:\n  box:\n    api_base: {root}\n    models: [m]\n"
    ));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "box:m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_text(
        &resp.error_message(),
        &format!(
            "{root}/chat/completions answered 404 (`404 page not found`): nothing is served \
             at that path; check the provider's `api_base` (an OpenAI-style server's usually \
             ends in `/v1`)"
        ),
    );
    // A model a source lacks (its 404 is JSON) is still its own words, as they came.
    let missing = r#"{"error":"model \"m\" not found, try pulling it first"}"#;
    let lacks = MockUpstream::always(Reply::Json(404, missing.into()));
    let p = Proxy::start(&format!(
        "providers:\n  box:\n    api_base: {}\n    models: [m]\n",
        lacks.url()
    ));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "box:m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_text(&resp.body, missing);
}

#[test]
fn head_requests_get_200_and_no_body_even_without_a_key() {
    let p = Proxy::start("skip_auth: false\nkeys: [k1]\n");
    for path in ["/", "/health", "/api/hello"] {
        let answer = p.raw(&format!(
            "HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(answer.starts_with("HTTP/1.1 200 "), "HEAD {path}: {answer}");
        assert!(
            answer.ends_with("\r\n\r\n"),
            "HEAD {path}: nothing after the head: {answer:?}"
        );
    }
    let hello = p.get("/api/hello");
    assert_eq!(hello.status, 200);
    assert_eq!(hello.json(), json!({"status": "ok"}));
    // Everything else still needs the key.
    assert_eq!(p.get("/v1/models").status, 401);
}

#[test]
fn config_errors_name_the_key_the_value_wanted_and_their_place_once() {
    let cases: [(&str, &str); 32] = [
        (
            "models:\n  smart:\n  endpoints: [ollama:llama3.1]\n",
            "2:8: models.smart: expected a map of keys, got nothing (indent the keys that belong to it under it)",
        ),
        (
            "providers:\n  ollama:\n    models:\n    - id: a\n      provider_model_id: b\n     - id: c\n",
            "6:6: this line is indented differently from the lines beside it (a list item or a key one space off?)",
        ),
        (
            "provider:\n  ollama: {api_base: http://127.0.0.1:11434/v1}\n",
            "1:1: unknown field `provider`, expected one of listen, skip_auth, keys, workers, \
             shutdown_grace_secs, limits, timeouts, failover, detect, usage, log, providers, \
             models; did you mean `providers`?",
        ),
        (
            "providers:\n  a:\n    api_base: http://127.0.0.1:1/v1\n  a:\n    api_base: http://127.0.0.1:2/v1\n",
            "4:3: providers.a: `a` is written twice at this level; keep one",
        ),
        (
            "providers:\n  a:\n    api_base: http://127.0.0.1:1/v1\n     models: [m]\n",
            "4:12: providers.a.api_base: a key here is indented more than the keys beside it",
        ),
        (
            "providers:\n  a:\n  api_base: http://127.0.0.1:1/v1\n",
            "3:13: providers.api_base: expected a map of keys, got a single value (`api_base` is a key of a provider: indent it under the provider it belongs to)",
        ),
        (
            "# tuned\ntimeouts:\n  idle_secs: 0\n",
            "3:3: `timeouts.idle_secs` must be a positive number of seconds",
        ),
        (
            "log: json\n",
            "1:6: log: expected a map of keys, got a single value",
        ),
        (
            "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    headers: [a]\n",
            "4:5: providers.x.headers: expected a map, got a list",
        ),
        (
            "keys: [${ROUTEPLANE_KEY:-}]\n",
            "1:9: keys: expected ',' or ']' (inside `[…]` or `{…}`, put a ${VAR} in quotes: `[\"${VAR}\"]`)",
        ),
        (
            "limits: {max_body_bytes: ${RP_TEST_UNSET:-1}}\n",
            "1:26: limits.max_body_bytes: expected a whole number, got \"$\" (inside `[…]` or `{…}`, put a ${VAR} in quotes: `[\"${VAR}\"]`)",
        ),
        (
            "workers: lots\n",
            "1:10: workers: expected a whole number, got \"lots\"",
        ),
        (
            "limits:\n  queue_wait_secs: soon\n",
            "2:20: limits.queue_wait_secs: expected a number, got \"soon\"",
        ),
        (
            "limits:\n  max_body_bytes: -1\n",
            "2:19: limits.max_body_bytes: expected a whole number, got -1",
        ),
        (
            "skip_auth: sure\n",
            "1:12: skip_auth: expected true or false, got \"sure\"",
        ),
        (
            "workers: ${ROUTEPLANE_SURELY_UNSET_WORKERS}\n",
            "1:10: workers: environment variable `ROUTEPLANE_SURELY_UNSET_WORKERS` is not set (set it, or write `${ROUTEPLANE_SURELY_UNSET_WORKERS:-default}`)",
        ),
        (
            "models:\n  smart:\n    endpoints:\n      - {provider: ollama, model: llama3}\n",
            "4:9: unknown key `model` in an endpoint; expected `provider`, `service_id` and optionally `first_token_secs` (or write `provider:model`)",
        ),
        (
            "models:\n  smart:\n    endpoints:\n      - llama3\n",
            "4:9: each endpoint of a virtual model names its provider: write `provider:model` (e.g. `ollama:llama3.1`) or `{provider: ID, service_id: MODEL}`",
        ),
        (
            "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    models:\n      - {name: m}\n",
            "5:9: unknown key `name` in a model entry; expected `id` or `provider_model_id`; \
             a model name with a tag is written without a space after its colon (`- llama3.1:8b`), \
             or as `- id: NAME`",
        ),
        (
            "providers:\n  ollama:\n    models:\n      - llama3.1: 8b\n",
            "4:9: unknown field whose name is not shown, as it looks like an API key (a key goes \
             in a value: `api_key: …`, or under `headers:` or `keys:`); expected `id` or \
             `provider_model_id`; a model name with a tag is written without a space after its \
             colon (`- llama3.1:8b`), or as `- id: NAME`",
        ),
        (
            "providers:\n  ollama:\n    models:\n      - qwen2.5-coder: 7b\n",
            "4:9: unknown field whose name is not shown, as it looks like an API key (a key goes \
             in a value: `api_key: …`, or under `headers:` or `keys:`); expected `id` or \
             `provider_model_id`; a model name with a tag is written without a space after its \
             colon (`- llama3.1:8b`), or as `- id: NAME`",
        ),
        (
            "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_protocol: {claude: anthropic}\n",
            "4:19: providers.x.api_protocol: expected a protocol (`chat_completions`, `anthropic`, `responses` or `gemini`) or a list of `\"glob\": protocol` entries",
        ),
        (
            "providers:\n  ollama:\n    detect:\n      interval_secs: 5\n",
            "4:7: providers.ollama.detect: expected true or false, got a map (under a provider, `detect` is whether to ask it for its models; the probe interval is the top-level `detect.interval_secs`)",
        ),
        (
            "providers:\n  ollama:\n    detect: {interval_secs: 5}\n",
            "3:13: providers.ollama.detect: expected true or false, got a map (under a provider, `detect` is whether to ask it for its models; the probe interval is the top-level `detect.interval_secs`)",
        ),
        (
            "skip_auth:\n  x: 1\n",
            "2:3: skip_auth: expected true or false, got a map",
        ),
        (
            "models: {smart: [ollama:llama3.1]}\n",
            "1:17: models.smart: expected a map of keys, got a list (a virtual model's endpoints go under its `endpoints:`, e.g. `smart: {endpoints: [ollama:llama3.1]}`)",
        ),
        (
            "models:\n  smart:\n    - ollama:llama3.1\n",
            "3:5: models.smart: expected a map of keys, got a list (a virtual model's endpoints go under its `endpoints:`, e.g. `smart: {endpoints: [ollama:llama3.1]}`)",
        ),
        (
            "log: [json]\n",
            "1:6: log: expected a map of keys, got a list",
        ),
        (
            "limits:\n  - max_body_bytes: 1\n",
            "2:3: limits: expected a map of keys, got a list",
        ),
        (
            "providers:\n  Ollama: {}\n",
            "2:3: provider `Ollama` needs `api_base` (e.g. http://127.0.0.1:8000/v1); did you mean the built-in provider `ollama`?",
        ),
        (
            "providers:\n  olama:\n    models:\n      - llama3.1:8b\n",
            "2:3: provider `olama` needs `api_base` (e.g. http://127.0.0.1:8000/v1); did you mean the built-in provider `ollama`?",
        ),
        (
            "providers:\n  LMStudio: {}\n",
            "2:3: provider `LMStudio` needs `api_base` (e.g. http://127.0.0.1:8000/v1); did you mean the built-in provider `lmstudio`?",
        ),
    ];
    for (yaml, want) in cases {
        let (path, validate, serve) = config_error(yaml, &[]);
        assert_text(&validate, &format!("routeplane: invalid: {path}:{want}\n"));
        assert_text(&serve, &format!("routeplane: error: {path}:{want}\n"));
    }
}

#[test]
fn numbers_and_switches_may_come_from_the_environment() {
    let dir = Dir::new();
    let path = dir.write(
        "c.yaml",
        "workers: ${RP_TEST_WORKERS}\nskip_auth: ${RP_TEST_UNSET:-true}\nlimits:\n  queue_wait_secs: \"${RP_TEST_UNSET:-0.25}\"\n",
    );
    crate::support::stdout_of(
        Command::new(bin())
            .args(["config", "validate", "-c"])
            .arg(&path)
            .env("RP_TEST_WORKERS", "3"),
    );
    let (_, validate, _) = config_error(
        "workers: ${RP_TEST_WORKERS}\n",
        &[("RP_TEST_WORKERS", "many")],
    );
    assert!(
        validate.ends_with(
            ":1:10: workers: expected a whole number, got what \"${RP_TEST_WORKERS}\" gives (not shown: it comes from the environment)\n"
        ),
        "{validate}"
    );
}

/// A chat upstream that reports no usage and calls its model `m`, streamed or not.
fn no_usage_upstream() -> MockUpstream {
    MockUpstream::start(|req| {
        if req.json()["stream"] == true {
            Reply::Sse(chat_events(2, true), Duration::ZERO)
        } else {
            Reply::json(
                200,
                json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "t0t1"}, "finish_reason": "stop"}]}),
            )
        }
    })
}

/// The JSON payloads of a streamed answer.
fn events(s: &crate::support::proxy::Streamed) -> Vec<Value> {
    s.data()
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[test]
fn translated_answers_name_the_same_model_and_invent_no_usage_but_anthropics_required_zeros() {
    let up = no_usage_upstream();
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models:\n      - id: tiny\n        provider_model_id: m\n",
        up.url()
    ));
    // Anthropic client.
    let ask = json!({"model": "local:tiny", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    let whole = p.post("/v1/messages", ask.clone()).json();
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let evs = events(&p.stream("/v1/messages", streamed));
    let start = evs.iter().find(|e| e["type"] == "message_start").unwrap();
    let delta = evs.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(whole["model"], "m");
    assert_eq!(start["message"]["model"], "m", "{evs:?}");
    // Anthropic's format requires both counts as numbers (the AI SDK refuses a null
    // one, and the stream with it): 0 there, as Anthropic's `message_start` begins.
    let unknown = json!({"input_tokens": 0, "output_tokens": 0});
    assert_eq!(whole["usage"], unknown);
    assert_eq!(delta["usage"], unknown, "{evs:?}");
    assert_eq!(start["message"]["usage"], unknown, "{evs:?}");
    // Responses client.
    let ask = json!({"model": "local:tiny", "input": "hi"});
    let whole = p.post("/v1/responses", ask.clone()).json();
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let evs = events(&p.stream("/v1/responses", streamed));
    let created = evs
        .iter()
        .find(|e| e["type"] == "response.created")
        .unwrap();
    let done = evs
        .iter()
        .find(|e| e["type"] == "response.completed")
        .unwrap();
    assert_eq!(whole["model"], "m");
    assert_eq!(created["response"]["model"], "m");
    assert_eq!(done["response"]["model"], "m");
    assert!(whole["usage"].is_null(), "{whole}");
    assert!(done["response"]["usage"].is_null(), "{done}");
}

#[test]
fn translated_usage_has_no_cache_count_the_source_did_not_give() {
    // A chat source that counts no cached tokens, and a Claude-style one that does not
    // report cache fields: neither count becomes a zero on the other side.
    let chat = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let claude = MockUpstream::always(Reply::json(
        200,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 4, "output_tokens": 2}}),
    ));
    let p = Proxy::start(&format!(
        "providers:\n  chat:\n    api_base: {}\n    models: [m]\n  claude:\n    api_base: {}\n    api_protocol: anthropic\n    models: [c]\n",
        chat.url(),
        claude.url()
    ));
    let messages = json!([{"role": "user", "content": "hi"}]);
    let anthropic = p.post(
        "/v1/messages",
        json!({"model": "chat:m", "max_tokens": 20, "messages": messages}),
    );
    assert_eq!(
        anthropic.json()["usage"],
        json!({"input_tokens": 3, "output_tokens": 2}),
        "{}",
        anthropic.body
    );
    let openai = p.post(
        "/v1/chat/completions",
        json!({"model": "claude:c", "messages": messages}),
    );
    assert_eq!(
        openai.json()["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}),
        "{}",
        openai.body
    );
}

/// Reads answers without upstream usage through the official SDKs; prints what they made
/// of usage.
const NO_USAGE_SCRIPT: &str = r#"
import json, sys, anthropic, openai
a = anthropic.Anthropic(base_url=sys.argv[1], api_key="unused", max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
out = {}
r = a.messages.create(model="local:tiny", max_tokens=20, messages=msgs)
out["messages"] = [r.content[0].text, r.model, r.usage.output_tokens]
with a.messages.stream(model="local:tiny", max_tokens=20, messages=msgs) as s:
    m = s.get_final_message()
out["messages_stream"] = [m.content[0].text, m.model, m.usage.output_tokens]
o = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
r = o.responses.create(model="local:tiny", input="hi")
out["responses"] = [r.output_text, r.model, r.usage]
with o.responses.stream(model="local:tiny", input="hi") as s:
    r = s.get_final_response()
out["responses_stream"] = [r.output_text, r.model, r.usage]
print(json.dumps(out))
"#;

#[test]
fn official_sdks_read_translated_answers_without_usage() {
    let python =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import anthropic, openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: the Python SDKs are not installed (run `make sdk`)");
        return;
    }
    let up = no_usage_upstream();
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models:\n      - id: tiny\n        provider_model_id: m\n",
        up.url()
    ));
    let stdout =
        crate::support::stdout_of(Command::new(&python).args(["-c", NO_USAGE_SCRIPT, &p.url()]));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    // Anthropic's usage counts are required numbers (the AI SDK refuses null): an
    // unreported count is 0 there; Responses' whole usage is left out.
    assert_eq!(
        v,
        json!({
            "messages": ["t0t1", "m", 0], "messages_stream": ["t0t1", "m", 0],
            "responses": ["t0t1", "m", null], "responses_stream": ["t0t1", "m", null],
        })
    );
}

#[test]
fn every_local_server_asked_is_on_the_status_page_and_in_metrics_found_or_not() {
    // With no config, a local server not running at start had no `routeplane_provider_up`
    // series and no row on the status page: an alert on `== 0` never fired for it.
    let name =
        "first_run::every_local_server_asked_is_on_the_status_page_and_in_metrics_found_or_not";
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
