//! A start-up that says what it found: the config and the local servers named, found
//! or not, near-miss model names told the real one, and `models`, `providers` and `route`
//! saying what a server lists and what it does not.

use super::*;

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
fn start_up_with_nothing_to_serve_says_so_and_what_would_serve_once() {
    // It said only "local servers: none; not found: ...", and a newcomer learned which
    // keys or logins would help only from a 404 or `routeplane models`.
    let p = Proxy::start(&nothing_found_config());
    p.wait_log(" local servers: none; not found: ollama, vllm, lmstudio, llamacpp");
    let line = p.wait_log(" nothing can be served: no models are configured or detected; ");
    for what in [
        "start a local server (ollama, vllm, lmstudio or llamacpp)",
        "set a provider's key (",
        "OPENAI_API_KEY",
        "run `routeplane login ",
    ] {
        assert!(line.contains(what), "{what}: {line}");
    }
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "llama3.1", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    let said = p.log();
    let times = said
        .iter()
        .filter(|l| l.contains("nothing can be served"))
        .count();
    assert_eq!(times, 1, "{said:?}");
    // With a model found, nothing of the kind.
    let up = MockUpstream::start(ollama);
    let p = Proxy::start(&local_servers_config(&up.url()));
    p.wait_log(" local servers: ollama (1 model)");
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "llama3.1", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    p.wait_log(" status=200 ");
    let said = p.log();
    assert!(
        !said.iter().any(|l| l.contains("nothing can be served")),
        "{said:?}"
    );
}

#[test]
fn start_up_lists_a_local_server_of_ones_own_as_configured() {
    // A block of one's own on this machine, its models listed, is not asked for them:
    // the summary said "local servers: none" of a proxy that serves it.
    let up = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let yaml = format!(
        "{}  mygpu:\n    api_base: {}\n    models: [a, b]\n  lan:\n    api_base: http://192.168.1.9:1/v1\n    models: [c]\n  hosted:\n    api_base: https://api.example.com/v1\n    models: [d]\n",
        nothing_found_config(),
        up.url()
    );
    let p = Proxy::start(&yaml);
    p.wait_log(
        " local servers: mygpu (configured, 2 models), lan (configured, 1 model); \
         not found: ollama, vllm, lmstudio, llamacpp",
    );
}

#[test]
fn ollama_names_reach_ollama_and_near_misses_are_told_the_name() {
    // Ollama's `mistral:7b` starts with a built-in provider's id; `gpt-oss` looks like an
    // OpenAI model's name. Neither is meant for a hosted API that has no key.
    let up = MockUpstream::start(crate::support::upstream::ollama(&[
        "mistral:7b",
        "gpt-oss:20b",
    ]));
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
            "A provider is named before a colon: to ask `ollama`, name it `ollama:gpt-oss:20b`",
        ),
        // A name and a tag, however near a provider's id (`mistral`): it was asked "did you
        // mean `mistral:8x7b`?", a Mistral API model that does not exist.
        (
            "mixtral:8x7b",
            "ollama is up and has not pulled it: run `ollama pull mixtral:8x7b`",
        ),
    ] {
        told_404(&p, model, hint);
    }
}

#[test]
fn the_readmes_smart_undefined_is_told_where_virtual_models_are_defined() {
    // `smart` was told `run \`ollama pull smart\``: the README names it as if it existed.
    let up = MockUpstream::start(ollama);
    let config = local_servers_config(&up.url());
    for (extra, none) in [
        ("", "this config defines no virtual models"),
        (
            "models:\n  fast:\n    endpoints: [ollama:llama3.1]\n",
            "this config does not define it",
        ),
    ] {
        let p = Proxy::start(&format!("{config}{extra}"));
        p.wait_log(" local servers: ollama (1 model)");
        let hint = format!(
            "`smart` is the README's example of a virtual model, and {none}: define it under \
             a top-level `models:` with the endpoints to try in order (see \
             the commented example `routeplane init` writes, or the README's Configuration)"
        );
        let message = told_404(&p, "smart", &hint);
        assert!(!message.contains("ollama pull"), "{message}");
    }
}

#[test]
fn a_defined_virtual_model_named_in_other_case_is_told_its_name() {
    // `Smart` for a defined `smart` was told "`smart` is the README's example of a virtual
    // model, and this config does not define it", and `smrt` "Did you mean `smart`?. …".
    let dead = MockUpstream::free_port();
    let config = format!(
        "{}  gw:\n    api_base: http://127.0.0.1:{dead}/v1\nmodels:\n  smart:\n    endpoints: [gw:m1]\n",
        nothing_found_config()
    );
    let p = Proxy::start(&config);
    p.wait_log(" local servers: gw (configured, not asked for its models); not found: ");
    for (model, hint) in [
        (
            "Smart",
            "`Smart` is served as `smart`: a model's name is matched with its case",
        ),
        (
            "GW:m1",
            "`GW:m1` is served as `gw:m1`: a model's name is matched with its case",
        ),
        (
            "smrt",
            "Did you mean `smart`? `gw` lists no models, so no bare name reaches it: if it \
             serves `smrt`, name it `gw:smrt`, or declare `smrt` under `models:` of `gw`, or \
             give it `detect: true` if its server lists its models",
        ),
    ] {
        told_404(&p, model, hint);
    }
}

#[test]
fn a_block_a_virtual_model_names_is_told_how_to_have_it_asked_for_its_models() {
    // A local block that a virtual model names is not asked for its list, so its other
    // models' bare names were told only to be named with the block or declared.
    let up = MockUpstream::start(crate::support::upstream::ollama(&["m1", "m2"]));
    let config = |detect: &str| {
        format!(
            "{}  gw:\n    api_base: {}\n{detect}models:\n  smart:\n    endpoints: [gw:m1]\n",
            nothing_found_config(),
            up.url()
        )
    };
    let ask = |p: &Proxy| {
        p.post(
            "/v1/chat/completions",
            json!({"model": "m2", "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    let p = Proxy::start(&config(""));
    p.wait_log(" local servers: gw (configured, not asked for its models); not found: ");
    let resp = ask(&p);
    assert_eq!(resp.status, 404, "{}", resp.body);
    let message = resp.error_message();
    assert!(
        message.ends_with(
            ". `gw` lists no models, so no bare name reaches it: if it serves `m2`, name it \
             `gw:m2`, or declare `m2` under `models:` of `gw`, or give it `detect: true` if its \
             server lists its models"
        ),
        "{message}"
    );
    // As told: its list is asked for, and the name reaches it.
    let p = Proxy::start(&config("    detect: true\n"));
    p.wait_log(" local servers: gw (2 models)");
    let resp = ask(&p);
    assert_eq!(resp.status, 200, "{}", resp.body);
}

#[test]
fn a_vendors_name_sent_by_its_agent_with_only_a_local_server_is_told_a_virtual_model() {
    // Claude Code sends `claude-…` names itself: pointed at Routeplane with only Ollama,
    // its user was told only to set a key or log in, not how a local model answers them.
    let up = MockUpstream::start(ollama);
    let config = local_servers_config(&up.url());
    let p = Proxy::start(&config);
    p.wait_log(" local servers: ollama (1 model)");
    let ask = |p: &Proxy| {
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]});
        p.post("/v1/messages", body)
    };
    let resp = ask(&p);
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_eq!(resp.json()["type"], "error", "{}", resp.body);
    let message = resp.error_message();
    assert!(
        message.ends_with(
            "; or, for a client that sends this name itself, define a virtual model \
             `claude-sonnet-4-5` under `models:` with endpoints such as `ollama:llama3.1`"
        ),
        "{message}"
    );
    // What it says works.
    let p = Proxy::start(&format!(
        "{config}models:\n  claude-sonnet-4-5:\n    endpoints: [ollama:llama3.1]\n"
    ));
    p.wait_log(" local servers: ollama (1 model)");
    assert_eq!(ask(&p).status, 200);
}

#[test]
fn a_typo_of_a_served_name_is_asked_about_before_a_pull() {
    // `lama3.1` was told only `run \`ollama pull lama3.1\``, a pull of a typo, while
    // `llama3.1:latest` was one of the suggestions.
    let up = MockUpstream::start(crate::support::upstream::ollama(&[
        "llama3.1:latest",
        "qwen3-coder:30b",
    ]));
    let p = Proxy::start(&local_servers_config(&up.url()));
    p.wait_log(" local servers: ollama (2 models)");
    for (model, hint) in [
        (
            "lama3.1",
            "Did you mean `llama3.1`? Otherwise, ollama is up and has not pulled it: run \
             `ollama pull lama3.1`",
        ),
        (
            "qwen3coder:30b",
            "Did you mean `qwen3-coder:30b`? Otherwise, ollama is up and has not pulled it: \
             run `ollama pull qwen3coder:30b`",
        ),
        // Only the case differs from `llama3.1:latest`: it was told to name
        // `llama3.1:latest`, though `llama3.1` works.
        (
            "Llama3.1",
            "`Llama3.1` is served as `llama3.1`: a model's name is matched with its case",
        ),
        // Nothing served is near, or only another tag of the name (another size): only
        // the pull.
        (
            "phi4:14b",
            "ollama is up and has not pulled it: run `ollama pull phi4:14b`",
        ),
        (
            "llama3.1:70b",
            "ollama is up and has not pulled it: run `ollama pull llama3.1:70b`",
        ),
    ] {
        told_404(&p, model, hint);
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

#[test]
fn a_routeplane_yml_where_the_config_is_looked_for_is_said_to_be_unread() {
    // `routeplane.yml` was passed over in silence: the start said "no config file
    // (built-in defaults)", and the providers written in it were not there.
    let dir = Dir::new();
    let yml = dir.write("routeplane.yml", "listen: 127.0.0.1:4399\n");
    let said = "`routeplane.yml` is not read (routeplane reads `routeplane.yaml`): rename it, \
                or pass -c routeplane.yml";
    let validate = |dir: &Dir| {
        let out = crate::support::proxy::routeplane_in(dir.path())
            .args(["config", "validate"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_text(&validate(&dir), &format!("routeplane: warning: {said}\n"));
    let mut cmd = crate::support::proxy::routeplane_in(dir.path());
    cmd.args(["--listen", "127.0.0.1:0"]);
    let p = Proxy::spawn(cmd, Dir::new());
    p.wait_log(&format!(" warning: {said}"));
    // In the user's config dir, named with its path.
    std::fs::remove_file(yml).unwrap();
    let user = dir.path().join("config/routeplane");
    std::fs::create_dir_all(&user).unwrap();
    let yml = user.join("routeplane.yml");
    std::fs::write(&yml, "listen: 127.0.0.1:4399\n").unwrap();
    let yml = yml.display();
    assert_text(
        &validate(&dir),
        &format!(
            "routeplane: warning: `{yml}` is not read (routeplane reads `routeplane.yaml`): \
             rename it, or pass -c {yml}\n"
        ),
    );
    // A user config read in its place said nothing of `./routeplane.yml`: the file
    // written here was passed over for one elsewhere.
    std::fs::remove_file(user.join("routeplane.yml")).unwrap();
    std::fs::write(user.join("routeplane.yaml"), "listen: 127.0.0.1:4398\n").unwrap();
    dir.write("routeplane.yml", "listen: 127.0.0.1:4399\n");
    assert_text(&validate(&dir), &format!("routeplane: warning: {said}\n"));
    // Named with -c, the file read is the one meant: nothing to say.
    let out = crate::support::proxy::routeplane_in(dir.path())
        .args(["config", "validate", "-c"])
        .arg(user.join("routeplane.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

/// Asks `p` for `model` and checks the 404's message ends with the sentence `hint`;
/// returns the message.
fn told_404(p: &Proxy, model: &str, hint: &str) -> String {
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 404, "{model}: {}", resp.body);
    let message = resp.error_message();
    assert!(
        message.ends_with(&format!(". {hint}")),
        "{model}: {message}"
    );
    message
}
