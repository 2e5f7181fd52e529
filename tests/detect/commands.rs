//! What `routeplane models` and `providers` say of detection, and which local servers a
//! config has asked: default ports off, a block with nothing under it, a server up
//! without models, one that wants a key.

use super::*;

#[test]
fn default_ports_off_asks_only_the_local_servers_the_config_names() {
    let up = MockUpstream::start(ollama(&["llama3.1:8b"]));
    let dir = only_ollama_at(&up);
    let v: serde_json::Value = serde_json::from_str(&cli(&dir, &["providers", "--json"])).unwrap();
    let state = |id: &str| entry(&v, id)["state"].clone();
    assert_eq!(state("ollama"), "active", "named, so asked");
    for id in ["vllm", "lmstudio", "llamacpp"] {
        assert_eq!(state(id), "not asked", "{id}");
    }
    assert_text(
        &cli(&dir, &["models"]),
        "MODEL        PROVIDER  SOURCE    STATE\nllama3.1:8b  ollama    detected  active\n",
    );
    // Served the same way: the named server is asked, and its model answers.
    let p = Proxy::start(&dir.read("routeplane.yaml"));
    p.wait_log("source ollama is up (1 model)");
    assert_eq!(ask(&p, "llama3.1:8b").status, 200);
}

#[test]
fn a_provider_written_with_nothing_under_it_is_named_with_its_defaults() {
    let dir = Dir::new();
    dir.write(
        "routeplane.yaml",
        "detect:\n  default_ports: false\nproviders:\n  vllm:\n  lmstudio:   # as is\n",
    );
    let v: serde_json::Value = serde_json::from_str(&cli(&dir, &["providers", "--json"])).unwrap();
    let state = |id: &str| entry(&v, id)["state"].as_str().unwrap().to_string();
    for id in ["vllm", "lmstudio"] {
        assert_ne!(state(id), "not asked", "{id} is named, so asked");
    }
    assert_eq!(state("llamacpp"), "not asked");
}

#[test]
fn models_and_providers_commands_show_detection() {
    let up = MockUpstream::start(ollama(&["llama3.1:8b"]));
    let dir = Dir::new();
    dir.write(
        "routeplane.yaml",
        &hermetic(&format!(
            "providers:\n  ollama:\n    api_base: {}\n    models: [declared:1b]\n",
            up.url()
        )),
    );
    assert_text(
        &cli(&dir, &["models"]),
        "MODEL        PROVIDER  SOURCE    STATE\ndeclared:1b  ollama    declared  not listed by the server\nllama3.1:8b  ollama    detected  active\n",
    );
    let v: serde_json::Value = serde_json::from_str(&cli(&dir, &["models", "--json"])).unwrap();
    assert_eq!(
        v[1],
        json!({"id": "llama3.1:8b", "provider": "ollama", "source": "detected", "state": "active"})
    );
    let v: serde_json::Value =
        serde_json::from_str(&cli(&dir, &["providers", "list", "--json"])).unwrap();
    let find = |id: &str| entry(&v, id).clone();
    assert_eq!(
        find("ollama"),
        json!({"id": "ollama", "api_base": up.url(), "protocol": "chat_completions", "auth": "none", "key_variable": null, "key_in_config": false, "state": "active"})
    );
    assert_eq!(find("openai")["state"], "no key");
    assert_eq!(find("openai")["auth"], "key");
    assert_eq!(find("openai")["key_variable"], "OPENAI_API_KEY");
    assert_eq!(find("openai-codex")["auth"], "oauth");
    assert_eq!(find("openai-codex")["state"], "not logged in");
    let text = cli(&dir, &["providers"]);
    // Each column is as wide as its longest entry: `openai-codex`, Gemini's base URL,
    // `chat_completions`, `key (OPENROUTER_API_KEY)`.
    assert!(text.starts_with("PROVIDER      API_BASE"), "{text}");
    assert!(
        text.contains(&format!(
            "ollama        {:<48}  chat_completions  none                      active",
            up.url()
        )),
        "{text}"
    );
    assert!(
        text.contains("key (OPENROUTER_API_KEY)  no key\n"),
        "{text}"
    );
}

#[test]
fn models_says_a_server_that_is_up_without_models_needs_one_pulled() {
    // Ollama just installed: up, nothing pulled. The hint said to start it.
    let ollama_up = MockUpstream::start(ollama(&[]));
    let lmstudio_up = MockUpstream::start(ollama(&[]));
    let dir = only_ollama_at(&ollama_up);
    let (table, hint) = models(&dir);
    assert_text(&table, "MODEL  PROVIDER  SOURCE  STATE\n");
    assert!(
        hint.starts_with(
            "routeplane: no models are configured or detected; pull a model into ollama, \
             which is up but lists none (`ollama pull llama3.1`), or set a provider's key"
        ),
        "{hint}"
    );
    assert!(!hint.contains("start a local server"), "{hint}");
    // Another server up with none: it needs a model loaded; one not found, started.
    let dead = format!("http://127.0.0.1:{}/v1", MockUpstream::free_port());
    dir.write(
        "routeplane.yaml",
        &format!(
            "detect:\n  default_ports: false\nproviders:\n  lmstudio:\n    api_base: {}\n  \
             llamacpp:\n    api_base: {dead}\n",
            lmstudio_up.url()
        ),
    );
    let (_, hint) = models(&dir);
    assert!(
        hint.starts_with(
            "routeplane: no models are configured or detected; load a model into lmstudio, \
             which is up but lists none, or set a provider's key"
        ) && hint.contains(", or start a local server (llamacpp), or name a local server under"),
        "{hint}"
    );
    // Nothing named and the default ports off: the hint says what turned them off.
    dir.write("routeplane.yaml", "detect:\n  default_ports: false\n");
    let (_, hint) = models(&dir);
    assert_text(
        &hint,
        "routeplane: no models are configured or detected; set a provider's key \
         (OPENAI_API_KEY, OPENROUTER_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or \
         MISTRAL_API_KEY), or name a local server under `providers:`, as `ollama: {}` \
         (`detect.default_ports: false` keeps the default ports of ollama, vllm, lmstudio \
         and llamacpp from being asked), or run `routeplane login anthropic` or \
         `routeplane login openai-codex`\n",
    );
}

#[test]
fn a_block_of_ones_own_on_this_machine_without_models_is_asked_for_them() {
    // `ollama-box` on another port, with neither `models:` nor `detect:`: it showed
    // `active`, was never asked, and served nothing.
    let up = MockUpstream::start(ollama(&["qwen2:7b"]));
    let dir = Dir::new();
    let config = format!("providers:\n  ollama-box:\n    api_base: {}\n", up.url());
    dir.write("routeplane.yaml", &hermetic(&config));
    assert_text(
        &cli(&dir, &["models"]),
        "MODEL     PROVIDER    SOURCE    STATE\nqwen2:7b  ollama-box  detected  active\n",
    );
    let p = Proxy::start(&config);
    p.wait_log("source ollama-box is up (1 model)");
    let resp = ask(&p, "qwen2:7b");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("ollama-box"));
    drop(p);
    let state = |dir: &Dir| {
        let v: serde_json::Value =
            serde_json::from_str(&cli(dir, &["providers", "--json"])).unwrap();
        let p = v
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "ollama-box");
        p.unwrap()["state"].as_str().unwrap().to_string()
    };
    // Not running: down, as a built-in local server is.
    let dead = format!("http://127.0.0.1:{}/v1", MockUpstream::free_port());
    dir.write(
        "routeplane.yaml",
        &hermetic(&format!(
            "providers:\n  ollama-box:\n    api_base: {dead}\n"
        )),
    );
    assert_eq!(state(&dir), "down");
    // `detect: false` keeps it from being asked (`not asked`, as a built-in local server
    // is), and so does naming its models, under `models:` or in a virtual model, as before.
    for (block, shown) in [
        ("    detect: false\n", "not asked"),
        ("    models: [declared:1b]\n", "active"),
        (
            "models:\n  smart:\n    endpoints: [ollama-box:qwen2:7b]\n",
            "active",
        ),
    ] {
        let asked = up.requests().len();
        dir.write(
            "routeplane.yaml",
            &hermetic(&format!(
                "providers:\n  ollama-box:\n    api_base: {}\n{block}",
                up.url()
            )),
        );
        assert_eq!(state(&dir), shown, "{block}");
        assert_eq!(up.requests().len(), asked, "{block}: not asked");
    }
}

#[test]
fn a_local_server_that_wants_a_key_shows_key_refused_and_the_key_to_set() {
    // LM Studio started with a key, asked with none: it answers, 401. It showed `down`.
    let lm = MockUpstream::start(lmstudio(Some("lm-secret")));
    let config = format!("providers:\n  lmstudio:\n    api_base: {}\n", lm.url());
    let dir = Dir::new();
    dir.write("routeplane.yaml", &hermetic(&config));
    let hint = "set `api_key` under `providers: lmstudio:` to the key the server was started with";
    let out = routeplane_in(dir.path())
        .args(["providers", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = v.as_array().unwrap().iter().find(|p| p["id"] == "lmstudio");
    assert_eq!(row.unwrap()["state"], "key refused (401)");
    assert_text(
        &String::from_utf8_lossy(&out.stderr),
        &format!("routeplane: lmstudio refused a request without a key (401); {hint}\n"),
    );
    // Nothing to list: the key is what is missing, not a server to start.
    let (table, said) = models(&dir);
    assert_text(&table, "MODEL  PROVIDER  SOURCE  STATE\n");
    assert!(
        said.starts_with(&format!(
            "routeplane: no models are configured or detected; lmstudio wants a key: {hint}, or"
        )) && !said.contains("start a local server"),
        "{said}"
    );
    // The status page and `/metrics` say the same.
    let p = Proxy::start(&config);
    p.wait_log("lmstudio refused a request without a key (401)");
    let s = p.source_status("lmstudio");
    assert_eq!(
        (&s["state"], &s["up"], &s["detail"]),
        (&json!("key refused (401)"), &json!(false), &json!(hint)),
        "{s}"
    );
    let up = r#"routeplane_provider_up{provider="lmstudio"}"#;
    assert_eq!(p.metric(up).as_deref(), Some("0"));
    p.wait_log("local servers: lmstudio (key refused: 401)");
    drop(p);
    // Given its key, it is up and lists its models.
    let config = format!("{config}    api_key: lm-secret\n");
    dir.write("routeplane.yaml", &hermetic(&config));
    assert_text(
        &cli(&dir, &["models"]),
        "MODEL                PROVIDER  SOURCE    STATE\nqwen2.5-7b-instruct  lmstudio  detected  active\n",
    );
    let p = Proxy::start(&config);
    p.wait_log("source lmstudio is up (1 model");
    assert_eq!(p.source_status("lmstudio")["state"], "up");
    assert_eq!(p.metric(up).as_deref(), Some("1"));
}

#[test]
fn route_says_the_listed_name_a_typo_is_near_before_the_pull() {
    // A request was asked "Did you mean `ollama:llama3.1`?"; `route` said only to pull
    // the typo.
    let up = MockUpstream::start(ollama(&["llama3.1:latest"]));
    let dir = Dir::new();
    dir.write(
        "routeplane.yaml",
        &hermetic(&format!(
            "providers:\n  ollama:\n    api_base: {}\n",
            up.url()
        )),
    );
    let route = cli(&dir, &["route", "ollama:lama3.1"]);
    let first = route.lines().next().unwrap_or_default();
    assert!(
        first.ends_with(
            ") not listed by the server (Did you mean `ollama:llama3.1`? Otherwise, run \
             `ollama pull lama3.1`)"
        ),
        "{route}"
    );
}

#[test]
fn a_listed_model_name_wider_than_a_format_width_is_printed_whole() {
    // `format!`'s width stops at 65535 and panicked past it: the table pads by hand.
    let long: &'static str = "m".repeat(70_000).leak();
    let up = MockUpstream::start(ollama(vec![long, "llama3.1:8b"].leak()));
    let dir = only_ollama_at(&up);
    let (out, err) = models(&dir);
    assert!(!err.contains("panicked"), "{err}");
    let pad = " ".repeat(70_000 - "llama3.1:8b".len() + 2);
    assert!(
        out.contains(&format!("\nllama3.1:8b{pad}ollama    detected  active\n")),
        "{err}"
    );
    assert!(out.contains(&format!("\n{long}  ollama    detected  active\n")));
}

#[test]
fn a_listing_of_thousands_of_names_some_twice_shows_each_once_in_its_order() {
    // Each name was searched for in the names before it (seconds for a long list), and
    // a name listed twice made two rows.
    let names: Vec<String> = (0..20_000).map(|i| format!("m{i}:latest")).collect();
    let twice = names.iter().chain(&names[..5]).map(|n| &*n.clone().leak());
    let up = MockUpstream::start(ollama(twice.collect::<Vec<_>>().leak()));
    let dir = only_ollama_at(&up);
    // The listing is ~500 KB: on a loaded machine a debug build can take longer than the
    // default half-second probe to read it, and the test is of the order, not the speed.
    let config = dir.read("routeplane.yaml");
    let config = config.replacen("detect:\n", "detect:\n  timeout_secs: 30\n", 1);
    dir.write("routeplane.yaml", &config);
    let (out, err) = models(&dir);
    let shown: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(shown.len(), names.len(), "{err}");
    assert!(shown == names, "each name once, in the order listed");
}

#[test]
fn a_listed_model_name_with_control_or_bidirectional_characters_is_left_out() {
    // An escape sequence or a line end in a name rewrote the terminal `models` printed
    // to, and made up table rows; a right-to-left override printed as it is makes a name
    // read as another (Trojan Source).
    let names = vec![
        "llama3.1:8b",
        "x\u{1b}[2J",
        "a\r\nfake  ollama  detected  active",
        "gpt\u{202e}4pm.exe",
        "a\u{2066}b\u{2069}",
        "x\u{200f}y",
        "z\u{202a}",
    ];
    let up = MockUpstream::start(ollama(names.leak()));
    let dir = only_ollama_at(&up);
    let (out, _) = models(&dir);
    assert_text(
        &out,
        "MODEL        PROVIDER  SOURCE    STATE\nllama3.1:8b  ollama    detected  active\n",
    );
}

#[test]
fn a_block_of_ones_own_at_a_local_address_is_told_as_a_local_server() {
    // One on the network, not asked (only one on this machine is, unasked), and one on
    // this machine that declares its model: both local, as the status page says.
    let lan = "http://10.255.255.1:8000/v1";
    let here = format!("http://127.0.0.1:{}/v1", MockUpstream::free_port());
    let dir = Dir::new();
    dir.write(
        "routeplane.yaml",
        &hermetic(&format!(
            "providers:\n  box:\n    api_base: {lan}\n  mine:\n    api_base: {here}\n    \
             models: [llama]\n"
        )),
    );
    let v: serde_json::Value = serde_json::from_str(&cli(&dir, &["providers", "--json"])).unwrap();
    assert_eq!(entry(&v, "box")["state"], "not asked", "{v}");
    let p = Proxy::start(&dir.read("routeplane.yaml"));
    assert_eq!(p.source_status("box")["kind"], "local");
    // OpenRouter's way of naming it is told the colon, keyless as a local server is.
    let resp = ask(&p, "mine/llama");
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert!(
        resp.error_message()
            .contains("A provider is named before a colon: to ask `mine`, name it `mine:llama`"),
        "{}",
        resp.body
    );
    // A key does not make a local block serve more than it declares or lists.
    let p = Proxy::start(&hermetic(&format!(
        "providers:\n  box:\n    api_base: {lan}\n    api_key: sk-box\n"
    )));
    let line = p.wait_log("nothing can be served");
    assert!(line.contains("give `box` a `models:` list"), "{line}");
}
