//! How a local server's model list is read (Ollama's own or the OpenAI one, vLLM's,
//! LM Studio's types) and its models named and routed: bare and qualified names, the
//! `latest` tag, an unknown model named with its source.

use super::*;

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
