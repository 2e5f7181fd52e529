//! Local sources: models are learned from the server itself and follow it up and down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::support::proxy::{hermetic, routeplane_in};
use crate::support::upstream::{Recorded, chat_answer};
use crate::support::{Dir, MockUpstream, Proxy, Reply, assert_text, wait_until};

/// A mock Ollama: native `/api/tags`, OpenAI-style `/v1/models`, chat completions.
fn ollama(models: &'static [&'static str]) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |req| match req.path.as_str() {
        "/api/tags" => Reply::json(
            200,
            json!({"models": models.iter().map(|m| json!({"name": m, "model": m, "size": 1})).collect::<Vec<_>>()}),
        ),
        "/v1/models" => Reply::json(
            200,
            json!({"object": "list", "data": models.iter().map(|m| json!({"id": m, "object": "model"})).collect::<Vec<_>>()}),
        ),
        _ => Reply::json(200, chat_answer("from ollama")),
    }
}

#[test]
fn an_ollama_without_its_native_listing_is_asked_the_openai_one() {
    // A server on Ollama's port that is not Ollama (or an Ollama behind a proxy that
    // passes only `/v1`): `/api/tags` fails, `/v1/models` lists.
    let serve = ollama(&["qwen2:7b"]);
    let up = MockUpstream::start(move |req| match req.path.as_str() {
        "/api/tags" => Reply::json(404, json!({"error": "not found"})),
        _ => serve(req),
    });
    let p = Proxy::start(&format!(
        "providers:\n  ollama:\n    api_base: {}\n",
        up.url()
    ));
    p.wait_log("source ollama is up (1 model)");
    let resp = ask(&p, "qwen2:7b");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("ollama"));
    let paths: Vec<String> = up.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.contains(&"/api/tags".to_string()), "{paths:?}");
    assert!(paths.contains(&"/v1/models".to_string()), "{paths:?}");
}

fn ask(p: &Proxy, model: &str) -> crate::support::proxy::Resp {
    p.post(
        "/v1/chat/completions",
        json!({"model": model, "messages": []}),
    )
}

#[test]
fn ollama_models_route_by_bare_and_qualified_name() {
    let up = MockUpstream::start(ollama(&["llama3.1:8b", "qwen2:7b"]));
    let p = Proxy::start(&format!(
        "providers:\n  ollama:\n    api_base: {}\n",
        up.url()
    ));
    p.wait_log("source ollama is up (2 models)");
    for model in ["llama3.1:8b", "ollama:qwen2:7b"] {
        let resp = ask(&p, model);
        assert_eq!(resp.status, 200, "{model}: {}", resp.body);
        assert_eq!(resp.header("x-routeplane-provider"), Some("ollama"));
    }
    assert!(
        up.requests().iter().any(|r| r.path == "/api/tags"),
        "the native listing is used"
    );
    let ids = p.model_ids();
    for want in ["llama3.1:8b", "qwen2:7b", "ollama:llama3.1:8b"] {
        assert!(ids.contains(&want.to_string()), "{want} in {ids:?}");
    }
}

#[test]
fn an_ollama_name_without_a_tag_is_its_listed_latest_tag() {
    let up = MockUpstream::start(ollama(&["llama3.1:latest", "qwen2:7b"]));
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.3\nproviders:\n  ollama:\n    api_base: {}\nmodels:\n  local:\n    endpoints: [ollama:llama3.1]\n",
        up.url()
    ));
    p.wait_log("source ollama is up (2 models)");
    // Bare, pinned, in a virtual model, and as listed: one endpoint, the listed name.
    for model in ["llama3.1", "ollama:llama3.1", "local", "llama3.1:latest"] {
        let resp = ask(&p, model);
        assert_eq!(resp.status, 200, "{model}: {}", resp.body);
        assert_eq!(resp.header("x-routeplane-provider"), Some("ollama"));
        assert_eq!(resp.header("x-routeplane-model"), Some("llama3.1:latest"));
    }
    let sent: Vec<String> = up
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .map(|r| r.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, ["llama3.1:latest"; 4]);
    // Only `:latest` is implied: another tag is another model.
    for model in ["llama3.1:8b", "qwen2"] {
        let resp = ask(&p, model);
        assert_eq!(resp.status, 404, "{model}: {}", resp.body);
    }
    // Listings say what Ollama says, once: the short form is not a second model.
    let ids = p.model_ids();
    assert_eq!(
        ids,
        [
            "local",
            "llama3.1:latest",
            "qwen2:7b",
            "ollama:llama3.1:latest",
            "ollama:qwen2:7b"
        ]
    );
    // Down, it is the source that is missing, not the model.
    drop(up);
    p.wait_log("source ollama is down");
    let resp = ask(&p, "llama3.1");
    assert_eq!(resp.status, 503, "{}", resp.body);
}

#[test]
fn a_model_named_without_its_latest_tag_is_described_as_listed() {
    let up = MockUpstream::start(ollama(&["llama3.1:latest", "qwen2:7b"]));
    let p = Proxy::start(&format!(
        "providers:\n  ollama:\n    api_base: {}\n",
        up.url()
    ));
    p.wait_log("source ollama is up (2 models)");
    // Found as routing finds it, and named as `GET /v1/models` lists it.
    for (path, id) in [
        ("/v1/models/llama3.1", "llama3.1:latest"),
        ("/v1beta/models/llama3.1", "llama3.1:latest"),
        ("/v1beta/models/models/llama3.1", "llama3.1:latest"),
        ("/v1/models/ollama:llama3.1", "ollama:llama3.1:latest"),
        ("/v1beta/models/ollama%3Allama3.1", "ollama:llama3.1:latest"),
        ("/v1/models/llama3.1:latest", "llama3.1:latest"),
    ] {
        let resp = p.get(path);
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        let v = resp.json();
        assert_eq!(
            (v["id"].as_str(), v["name"].as_str(), v["owned_by"].as_str()),
            (
                Some(id),
                Some(format!("models/{id}").as_str()),
                Some("ollama")
            ),
            "{path}"
        );
    }
    // Only `:latest` is implied, and an unknown name is still unknown.
    for path in [
        "/v1/models/llama3.1:8b",
        "/v1/models/qwen2",
        "/v1/models/ollama:qwen2",
        "/v1beta/models/absent",
    ] {
        let resp = p.get(path);
        assert_eq!(resp.status, 404, "{path}");
        // The models that are served, as suggestions; not "no models are configured".
        assert!(
            resp.body.contains("llama3.1:latest"),
            "{path}: {}",
            resp.body
        );
    }
}

#[test]
fn an_unknown_model_named_with_its_source_is_told_in_the_callers_protocol() {
    let up = MockUpstream::start(ollama(&["llama3.1:latest"]));
    let p = Proxy::start(&format!(
        "providers:\n  ollama:\n    api_base: {}\n",
        up.url()
    ));
    p.wait_log("source ollama is up (1 model)");
    // A GET names a model, never a Gemini method: the colon is the id's own, and the
    // error is OpenAI's, as for any other `/v1/models/{id}`.
    let resp = p.get("/v1/models/ollama:qwen2");
    assert_eq!(resp.status, 404, "{}", resp.body);
    let v = resp.json();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    // The name Ollama pulls is the model's, without the provider it was named with.
    let message = resp.error_message();
    assert!(message.contains("run `ollama pull qwen2`"), "{message}");
    // The Anthropic SDK's `models.retrieve` gets Anthropic's shape.
    let resp = p.send(
        "GET",
        "/v1/models/ollama:qwen2",
        &[("anthropic-version", "2023-06-01")],
        b"",
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_eq!(
        resp.json()["error"]["type"],
        "not_found_error",
        "{}",
        resp.body
    );
    // Named with another source, it is not Ollama's to pull.
    let resp = p.get("/v1/models/vllm:qwen2");
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert!(!resp.body.contains("ollama pull"), "{}", resp.body);
}

#[test]
fn vllm_style_listing_and_null_data_are_understood() {
    let vllm = MockUpstream::start(|req| match req.path.as_str() {
        "/v1/models" => Reply::json(
            200,
            json!({"object": "list", "data": [{"id": "Qwen/Qwen2.5-7B", "object": "model", "owned_by": "vllm", "max_model_len": 32768}]}),
        ),
        _ => Reply::json(200, chat_answer("from vllm")),
    });
    let empty = MockUpstream::start(|req| match req.path.as_str() {
        "/v1/models" => Reply::json(200, json!({"object": "list", "data": null})),
        _ => Reply::Json(404, "{}".into()),
    });
    let p = Proxy::start(&format!(
        "providers:\n  gpu:\n    api_base: {}\n    detect: true\n  ollama:\n    api_base: {}\n",
        vllm.url(),
        empty.url()
    ));
    p.wait_log("source gpu is up (1 model)");
    p.wait_log("source ollama is up (0 models)");
    let resp = ask(&p, "Qwen/Qwen2.5-7B");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("gpu"));
}

#[test]
fn a_source_that_starts_later_becomes_active() {
    let port = MockUpstream::free_port();
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.3\nproviders:\n  ollama:\n    api_base: http://127.0.0.1:{port}/v1\n"
    ));
    assert_eq!(ask(&p, "llama3.1:8b").status, 404);
    let _up = MockUpstream::start_on(port, ollama(&["llama3.1:8b"]));
    assert!(wait_until(Duration::from_secs(5), || ask(
        &p,
        "llama3.1:8b"
    )
    .status
        == 200));
    p.wait_log("source ollama is up (1 model)");
}

#[test]
fn a_source_that_goes_down_leaves_the_cascade_but_stays_pinnable() {
    let a = MockUpstream::start(ollama(&["m"]));
    let b = MockUpstream::always(Reply::json(200, chat_answer("from b")));
    let p = Proxy::start(&format!(
        "detect:\n  interval_secs: 0.3\nproviders:\n  a:\n    api_base: {}\n    detect: true\n  b:\n    api_base: {}\n    models: [m]\n",
        a.url(),
        b.url()
    ));
    p.wait_log("source a is up (1 model)");
    assert_eq!(ask(&p, "m").header("x-routeplane-provider"), Some("a"));
    drop(a);
    p.wait_log("source a is down");
    let resp = ask(&p, "m");
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(
        resp.header("x-routeplane-attempts"),
        Some("1"),
        "a is skipped, not tried"
    );
    let resp = ask(&p, "a:m");
    assert_eq!(
        resp.status, 502,
        "pinned requests still go to a: {}",
        resp.body
    );
}

fn cli(dir: &Dir, args: &[&str]) -> String {
    crate::support::stdout_of(routeplane_in(dir.path()).args(args))
}

#[test]
fn default_ports_off_asks_only_the_local_servers_the_config_names() {
    let up = MockUpstream::start(ollama(&["llama3.1:8b"]));
    let dir = Dir::new();
    dir.write(
        "routeplane.yaml",
        &format!(
            "detect:\n  default_ports: false\nproviders:\n  ollama:\n    api_base: {}\n",
            up.url()
        ),
    );
    let v: serde_json::Value = serde_json::from_str(&cli(&dir, &["providers", "--json"])).unwrap();
    let state = |id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["state"].clone())
            .unwrap()
    };
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
    let state = |id: &str| {
        let p = v.as_array().unwrap().iter().find(|p| p["id"] == id);
        p.unwrap()["state"].as_str().unwrap().to_string()
    };
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
    let find = |id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap()
    };
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

/// `routeplane models` in `dir`: its stdout and stderr.
fn models(dir: &Dir) -> (String, String) {
    let out = routeplane_in(dir.path()).arg("models").output().unwrap();
    assert!(out.status.success());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr))
}

#[test]
fn models_says_a_server_that_is_up_without_models_needs_one_pulled() {
    // Ollama just installed: up, nothing pulled. The hint said to start it.
    let ollama_up = MockUpstream::start(ollama(&[]));
    let lmstudio_up = MockUpstream::start(ollama(&[]));
    let dir = Dir::new();
    dir.write(
        "routeplane.yaml",
        &format!(
            "detect:\n  default_ports: false\nproviders:\n  ollama:\n    api_base: {}\n",
            ollama_up.url()
        ),
    );
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
    // `detect: false` keeps it from being asked, and so does naming its models, under
    // `models:` or in a virtual model, as before.
    for block in [
        "    detect: false\n",
        "    models: [declared:1b]\n",
        "models:\n  smart:\n    endpoints: [ollama-box:qwen2:7b]\n",
    ] {
        let asked = up.requests().len();
        dir.write(
            "routeplane.yaml",
            &hermetic(&format!(
                "providers:\n  ollama-box:\n    api_base: {}\n{block}",
                up.url()
            )),
        );
        assert_eq!(state(&dir), "active", "{block}");
        assert_eq!(up.requests().len(), asked, "{block}: not asked");
    }
}

/// The ids `GET /v1/models` lists.
fn listed_ids(p: &Proxy) -> Vec<String> {
    let v = p.get("/v1/models").json();
    let data = v["data"].as_array().cloned().unwrap_or_default();
    data.iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// A mock LM Studio: its own `/api/v0/models` types each model, `/v1/models` does not;
/// with `key`, every request without that bearer key is refused (401), as LM Studio
/// started with "Require API key" refuses it.
fn lmstudio(key: Option<&'static str>) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let models = [
        ("qwen2.5-7b-instruct", "llm"),
        ("text-embedding-nomic-embed-text-v1.5", "embeddings"),
    ];
    move |req| {
        if let Some(key) = key
            && req.header("authorization") != Some(&format!("Bearer {key}"))
        {
            return Reply::json(401, json!({"error": {"message": "Invalid API key"}}));
        }
        match req.path.as_str() {
            "/api/v0/models" => Reply::json(
                200,
                json!({"object": "list", "data": models.iter().map(|(id, t)| json!({"id": id, "object": "model", "type": t})).collect::<Vec<_>>()}),
            ),
            "/v1/models" => Reply::json(
                200,
                json!({"object": "list", "data": models.iter().map(|(id, _)| json!({"id": id, "object": "model"})).collect::<Vec<_>>()}),
            ),
            _ => Reply::json(200, chat_answer("from lmstudio")),
        }
    }
}

#[test]
fn models_the_server_says_only_embed_are_not_listed_but_still_served_when_named() {
    // Ollama's `/api/tags` says what each model is: `capabilities` on newer servers, a
    // family of the BERT line on older ones. Both were listed as models to chat with.
    let ollama = MockUpstream::start(|req| match req.path.as_str() {
        "/api/tags" => Reply::json(
            200,
            json!({"models": [
                {"name": "llama3.1:latest", "model": "llama3.1:latest", "details": {"family": "llama", "families": ["llama"]}},
                {"name": "nomic-embed-text:latest", "model": "nomic-embed-text:latest", "details": {"family": "nomic-bert", "families": ["nomic-bert"]}},
                {"name": "all-minilm:latest", "model": "all-minilm:latest", "details": {"family": "llama"}, "capabilities": ["embedding"]},
            ]}),
        ),
        _ => Reply::json(
            400,
            json!({"error": {"message": "\"nomic-embed-text:latest\" does not support chat", "type": "api_error"}}),
        ),
    });
    let lm = MockUpstream::start(lmstudio(None));
    let config = format!(
        "providers:\n  ollama:\n    api_base: {}\n  lmstudio:\n    api_base: {}\n",
        ollama.url(),
        lm.url()
    );
    let p = Proxy::start(&config);
    p.wait_log("source ollama is up (1 model, and 2 to embed with, not listed)");
    p.wait_log("source lmstudio is up (1 model, and 1 to embed with, not listed)");
    assert_eq!(
        listed_ids(&p),
        [
            "llama3.1:latest",
            "qwen2.5-7b-instruct",
            "ollama:llama3.1:latest",
            "lmstudio:qwen2.5-7b-instruct"
        ]
    );
    assert!(
        lm.requests().iter().any(|r| r.path == "/api/v0/models"),
        "LM Studio's own listing is asked"
    );
    // Named, one still goes to its server, which answers for itself.
    let resp = ask(&p, "ollama:nomic-embed-text");
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.contains("does not support chat"), "{}", resp.body);
    let sent: Vec<String> = ollama
        .posts()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, ["nomic-embed-text:latest"]);
    let resp = ask(&p, "text-embedding-nomic-embed-text-v1.5");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("lmstudio"));
    // The command says what the server says.
    let dir = Dir::new();
    dir.write("routeplane.yaml", &hermetic(&config));
    assert_text(
        &cli(&dir, &["models"]),
        "MODEL                PROVIDER  SOURCE    STATE\n\
         llama3.1:latest      ollama    detected  active\n\
         qwen2.5-7b-instruct  lmstudio  detected  active\n",
    );
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
fn a_model_ollama_has_not_pulled_is_answered_with_the_command_that_pulls_it() {
    // Ollama's own 404 says "try pulling it first"; the command was nowhere.
    let up = MockUpstream::start(move |req| match req.path.as_str() {
        "/api/tags" => Reply::json(
            200,
            json!({"models": [{"name": "qwen2:7b", "model": "qwen2:7b", "details": {"family": "qwen2"}}]}),
        ),
        _ => Reply::json(
            404,
            json!({"error": {"message": format!("model \"{}\" not found, try pulling it first", req.json()["model"].as_str().unwrap()), "type": "api_error", "param": null, "code": null}}),
        ),
    });
    let config = format!("providers:\n  ollama:\n    api_base: {}\n", up.url());
    let p = Proxy::start(&config);
    p.wait_log("source ollama is up (1 model)");
    // Named with Ollama, in each client's protocol.
    let resp = ask(&p, "ollama:llama3.1");
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_eq!(
        resp.error_message(),
        "model \"llama3.1\" not found, try pulling it first; run `ollama pull llama3.1`"
    );
    let resp = p.post(
        "/v1/messages",
        json!({"model": "ollama:llama3.1:8b", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    let v = resp.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");
    assert_eq!(
        v["error"]["message"],
        "model \"llama3.1:8b\" not found, try pulling it first; run `ollama pull llama3.1:8b`"
    );
    // Bare: no source has it, and Ollama, up, could pull it.
    let pull = "ollama is up and has not pulled it: run `ollama pull llama3.1`";
    let resp = ask(&p, "llama3.1");
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_eq!(
        resp.error_message(),
        format!(
            "unknown model `llama3.1`; known models include: qwen2:7b, ollama:qwen2:7b. {pull}"
        )
    );
    // A vendor's name is not Ollama's to pull.
    assert!(!ask(&p, "gpt-4o").body.contains("ollama pull"));
    // `routeplane route` says it too, bare and named.
    let dir = Dir::new();
    dir.write("routeplane.yaml", &hermetic(&config));
    let out = routeplane_in(dir.path())
        .args(["route", "llama3.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_text(
        &String::from_utf8_lossy(&out.stderr),
        &format!(
            "routeplane: error: unknown model `llama3.1`; known models include: qwen2:7b, \
             ollama:qwen2:7b. {pull}\n"
        ),
    );
    let text = cli(&dir, &["route", "ollama:llama3.1"]);
    assert!(
        text.starts_with(&format!(
            "1. ollama:llama3.1 (chat_completions, {}/chat/completions) not listed by the \
             server (run `ollama pull llama3.1`)\n",
            up.url()
        )),
        "{text}"
    );
}

#[test]
fn a_sources_words_reach_the_log_escaped_bidi_overrides_included() {
    // A server lists a model whose name carries a right-to-left override (it would read
    // `evilexe.txt`) and an escape sequence, then quotes that name in its errors; so
    // does a hosted provider's listing.
    let hostile = "evil\u{202e}txt.exe\u{1b}[2J";
    let said = json!({"error": {"message": format!("model {hostile} failed to load")}});
    let escaped = r"model evil\u{202e}txt.exe\u{1b}[2J failed to load";
    for format in ["text", "json"] {
        let (listed, refused) = (json!({"data": [{"id": hostile}]}), said.clone());
        let local = MockUpstream::numbered(move |n, _| match n {
            0 => Reply::json(200, listed.clone()),
            _ => Reply::json(500, refused.clone()),
        });
        let hosted = MockUpstream::always(Reply::json(500, said.clone()));
        let p = Proxy::start(&format!(
            "log:\n  format: {format}\ndetect:\n  interval_secs: 0.3\nproviders:\n  box:\n    \
             api_base: {}\n    detect: true\n  openai:\n    api_base: {}\n    api_key: sk-test\n",
            local.url(),
            hosted.url()
        ));
        // A server that answers its list with an error is up: only its list failed.
        for needle in [
            "source box is up, but its model list failed",
            "cannot list the models of openai",
        ] {
            let line = p.wait_log(needle);
            let msg = match format {
                "json" => serde_json::from_str::<serde_json::Value>(&line).unwrap()["msg"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                _ => line,
            };
            assert!(msg.contains(escaped), "{format}: {msg}");
        }
        for line in p.log() {
            assert!(
                !line.contains('\u{202e}') && !line.contains('\u{1b}'),
                "{format}: {line:?}"
            );
        }
    }
}

#[test]
fn a_server_whose_model_list_fails_but_that_chats_is_up_and_keeps_its_models() {
    // Its list answering 500 made it `down`: the status page and `providers` said so,
    // and a request for a model it had listed got "source ollama is down".
    let failing = Arc::new(AtomicBool::new(false));
    let listed = ollama(&["m"]);
    let fails = Arc::clone(&failing);
    let up = MockUpstream::start(move |req| match req.path.as_str() {
        "/api/tags" | "/v1/models" if fails.load(Ordering::SeqCst) => {
            Reply::json(500, json!({"error": "listing broke"}))
        }
        _ => listed(req),
    });
    let config = format!(
        "detect:\n  interval_secs: 0.3\n  default_ports: false\nproviders:\n  ollama:\n    \
         api_base: {}\n",
        up.url()
    );
    let p = Proxy::start(&config);
    p.wait_log("source ollama is up (1 model)");
    failing.store(true, Ordering::SeqCst);
    let line = p.wait_log("source ollama is up, but its model list failed: ");
    let why = line
        .split_once("its model list failed: ")
        .map_or("", |(_, why)| why);
    assert!(why.contains("answered 500: listing broke"), "{line}");
    let resp = ask(&p, "m");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("ollama"));
    let s = p.source_status("ollama");
    assert_eq!((&s["state"], &s["up"]), (&json!("up"), &json!(true)), "{s}");
    assert_eq!(s["detail"], format!("model list failed: {why}"), "{s}");
    drop(p);
    // The command line says the same, asked once with the list failing.
    let dir = Dir::new();
    dir.write("routeplane.yaml", &config);
    let v: serde_json::Value = serde_json::from_str(&cli(&dir, &["providers", "--json"])).unwrap();
    let row = v.as_array().unwrap().iter().find(|p| p["id"] == "ollama");
    let state = row.unwrap()["state"].as_str().unwrap().to_string();
    assert!(
        state.starts_with("up, model list failed: ") && state.contains("answered 500"),
        "{state}"
    );
    // Pinned, it is served.
    let p = Proxy::start(&config);
    p.wait_log("local servers: ollama (model list failed)");
    assert_eq!(ask(&p, "ollama:m").status, 200);
}
