//! A local server's own words: a model Ollama has not pulled is answered with the
//! command that pulls it; what a source says reaches the log escaped.

use super::*;

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
fn a_pinned_typo_of_a_pulled_model_is_asked_about_before_the_pull() {
    // A bare `lama3.1` was asked "Did you mean `llama3.1`?", but `ollama:lama3.1` went to
    // Ollama and was told only to pull the typo.
    let list = ollama(&["llama3.1:latest", "qwen2:7b"]);
    let up = MockUpstream::start(move |req| match req.path.as_str() {
        "/v1/chat/completions" => match req.json()["model"].as_str().unwrap() {
            "llama3.1:latest" => Reply::json(200, chat_answer("hi")),
            model => Reply::json(
                404,
                json!({"error": {"message": format!("model \"{model}\" not found, try pulling it first")}}),
            ),
        },
        _ => list(req),
    });
    let p = Proxy::start(&format!(
        "providers:\n  ollama:\n    api_base: {}\n",
        up.url()
    ));
    p.wait_log("source ollama is up (2 models)");
    for (model, said) in [
        (
            "ollama:lama3.1",
            "model \"lama3.1\" not found, try pulling it first. Did you mean \
             `ollama:llama3.1`? Otherwise, run `ollama pull lama3.1`",
        ),
        (
            "ollama:qwen:7b",
            "model \"qwen:7b\" not found, try pulling it first. Did you mean \
             `ollama:qwen2:7b`? Otherwise, run `ollama pull qwen:7b`",
        ),
        // Nothing listed is near, or only another tag of the name: the pull alone.
        (
            "ollama:phi4",
            "model \"phi4\" not found, try pulling it first; run `ollama pull phi4`",
        ),
        (
            "ollama:llama3.1:70b",
            "model \"llama3.1:70b\" not found, try pulling it first; run `ollama pull \
             llama3.1:70b`",
        ),
    ] {
        let resp = ask(&p, model);
        assert_eq!(resp.status, 404, "{model}: {}", resp.body);
        assert_eq!(resp.error_message(), said, "{model}");
    }
    // Listed, it is served as before.
    let resp = ask(&p, "ollama:llama3.1");
    assert_eq!(resp.status, 200, "{}", resp.body);
}

#[test]
fn a_clients_prefix_on_a_served_name_is_said_to_be_dropped_not_taken_for_openrouter() {
    // opencode's `routeplane/llama3.1` pasted into another client, and aider's or
    // LiteLLM's `openai/llama3.1`, were both told they "look like an OpenRouter model".
    let up = MockUpstream::start(ollama(&["llama3.1:latest"]));
    let p = Proxy::start(&format!(
        "providers:\n  ollama:\n    api_base: {}\n",
        up.url()
    ));
    p.wait_log("source ollama is up (1 model)");
    for (model, said) in [
        (
            "routeplane/llama3.1",
            "`routeplane/` is opencode's provider prefix, not part of a model's name: drop it \
             and name `llama3.1`",
        ),
        (
            "openai/llama3.1",
            "`openai/` is a client's prefix (aider, LiteLLM), not part of a model's name: drop \
             it and name `llama3.1`",
        ),
        (
            "routeplane/phi4",
            "`routeplane/` is opencode's provider prefix, not part of a model's name, and \
             `phi4` is not served either.",
        ),
    ] {
        let resp = ask(&p, model);
        assert_eq!(resp.status, 404, "{model}: {}", resp.body);
        let msg = resp.error_message();
        assert!(msg.contains(said), "{model}: {msg}");
        assert!(!msg.contains("OpenRouter"), "{model}: {msg}");
    }
}

#[test]
fn an_openai_prefix_names_the_openai_provider_when_it_can_be_asked() {
    // A block `openai` of one's own (a local server, no key needed): aider's
    // `openai/m` is that provider's `m`.
    let up = MockUpstream::start(ollama(&["other:latest"]));
    let p = Proxy::start(&format!(
        "providers:\n  openai:\n    api_base: {}\n    api_key: sk-local\n    detect: false\n",
        up.url()
    ));
    let resp = ask(&p, "openai/m");
    assert_eq!(resp.status, 404, "{}", resp.body);
    let msg = resp.error_message();
    assert!(
        msg.ends_with("A provider is named before a colon: to ask `openai`, name it `openai:m`"),
        "{msg}"
    );
    assert!(!msg.contains("OpenRouter"), "{msg}");
}
