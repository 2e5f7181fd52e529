//! Hosted model lists: fetched with the key, at start, on SIGHUP and every interval;
//! a vendor asked by name while its key cannot list; Mistral's list and key.

use super::*;

#[test]
fn hosted_lists_are_fetched_with_the_key_so_bare_names_reach_them_and_sighup_refreshes() {
    let listed = Arc::new(Mutex::new(vec!["gpt-a".to_string()]));
    let openai = MockUpstream::start(hosted(
        Arc::clone(&listed),
        Reply::json(200, chat_answer("from openai")),
    ));
    let anthropic = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["claude-z".to_string()])),
        crate::support::wire::Wire::Anthropic.reply(false, false),
    ));
    let p = Proxy::start_with(
        &format!(
            "providers:\n  openai:\n    api_base: {}\n  anthropic:\n    api_base: {}\n",
            openai.url(),
            anthropic.url()
        ),
        &[("OPENAI_API_KEY", "sk-o"), ("ANTHROPIC_API_KEY", "sk-a")],
        &[],
    );
    p.wait_log("source openai is up (1 model)");
    p.wait_log("source anthropic is up (1 model)");
    let resp = chat(&p, "gpt-a");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("openai"));
    let resp = p.post(
        "/v1/messages",
        json!({"model": "claude-z", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("anthropic"));
    let listing = openai.requests()[0].clone();
    assert_eq!(
        (listing.method.as_str(), listing.path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(listing.header("authorization"), Some("Bearer sk-o"));
    let listing = anthropic.requests()[0].clone();
    assert_eq!(listing.path, "/v1/models?limit=1000");
    assert_eq!(listing.header("x-api-key"), Some("sk-a"));
    assert!(listing.header("anthropic-version").is_some());
    let all = p.model_ids();
    for want in ["gpt-a", "openai:gpt-a", "claude-z", "anthropic:claude-z"] {
        assert!(all.contains(&want.to_string()), "{want} in {all:?}");
    }

    listed.lock().unwrap().push("gpt-b".into());
    p.signal("HUP");
    p.wait_log("source openai is up (2 models)");
    assert_eq!(
        chat(&p, "gpt-b").header("x-routeplane-provider"),
        Some("openai")
    );
}

#[test]
fn a_hosted_model_is_asked_of_its_vendor_by_name_while_its_key_cannot_list_models() {
    // OpenAI's restricted keys may not list models (403, "Missing scopes:
    // api.model.read"), and a listing can fail or be late after a start: a bare
    // `gpt-4o` still goes to `openai`, which has the key, instead of a 404.
    let openai = cannot_list(
        json!({"error": {"message": "You have insufficient permissions for this operation. Missing scopes: api.model.read."}}),
        "from openai",
    );
    let config = format!("providers:\n  openai:\n    api_base: {}\n", openai.url());
    let p = Proxy::start_with(&config, &[("OPENAI_API_KEY", "sk-o")], &[]);
    p.wait_log("cannot list the models of openai");
    let resp = chat(&p, "gpt-4o");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("openai"));
    let sent = &openai.posts()[0];
    assert_eq!(sent.json()["model"], "gpt-4o");
    // Only names of the vendor's families; others are still unknown, and so are
    // Ollama's tagged names for open weights (`gpt-oss:20b`): no vendor's API has one.
    for model in ["llama3", "gpt-oss:20b"] {
        assert_eq!(chat(&p, model).status, 404, "{model}");
    }
    let posts = openai.posts().len();
    assert_eq!(posts, 1, "only `gpt-4o` was asked of OpenAI");
    // Without the key, the 404 says what would serve it.
    let p = Proxy::start(&config);
    for (model, key) in [
        ("gpt-4o", "OPENAI_API_KEY"),
        ("openai/gpt-4o", "OPENROUTER_API_KEY"),
    ] {
        let resp = chat(&p, model);
        assert_eq!(resp.status, 404);
        assert!(resp.body.contains(key), "{}", resp.body);
    }
    // A model Ollama pulled from a host is not an OpenRouter `vendor/model`.
    let resp = chat(&p, "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q8_0");
    assert_eq!(resp.status, 404);
    assert!(!resp.body.contains("OPENROUTER_API_KEY"), "{}", resp.body);
    // With a list, the list decides.
    let listed = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["gpt-a".to_string()])),
        Reply::json(200, chat_answer("from openai")),
    ));
    let p = Proxy::start_with(
        &format!("providers:\n  openai:\n    api_base: {}\n", listed.url()),
        &[("OPENAI_API_KEY", "sk-o")],
        &[],
    );
    p.wait_log("source openai is up (1 model)");
    assert_eq!(chat(&p, "gpt-4o").status, 404);
}

#[test]
fn hosted_lists_are_fetched_again_every_interval() {
    let openai = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec!["gpt-a".to_string()])),
        Reply::json(200, chat_answer("x")),
    ));
    let _p = Proxy::start_with(
        &format!(
            "detect:\n  hosted_interval_secs: 0.2\nproviders:\n  openrouter:\n    api_base: {}\n",
            openai.url()
        ),
        &[("ROUTEPLANE_OPENROUTER_API_KEY", "sk-r")],
        &[],
    );
    assert!(wait_until(Duration::from_secs(10), || openai.count() >= 3));
    assert!(
        openai
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer sk-r"))
    );
}

/// A config pointing the built-in `mistral` at `up`, with the local built-ins not asked:
/// a server this machine runs adds no model (an Ollama-style name must stay unknown).
fn mistral_at(up: &MockUpstream) -> String {
    let locals: String = ["ollama", "vllm", "lmstudio", "llamacpp"]
        .iter()
        .map(|id| format!("  {id}:\n    detect: false\n"))
        .collect();
    format!(
        "providers:\n  mistral:\n    api_base: {}\n{locals}",
        up.url()
    )
}

#[test]
fn mistral_is_asked_with_its_key_and_its_list_joins_the_models() {
    let up = MockUpstream::start(hosted(
        Arc::new(Mutex::new(vec![
            "mistral-small-latest".to_string(),
            "codestral-latest".to_string(),
        ])),
        Reply::json(200, chat_answer("from mistral")),
    ));
    let p = Proxy::start_with(&mistral_at(&up), &[("MISTRAL_API_KEY", "sk-m")], &[]);
    p.wait_log("source mistral is up (2 models)");
    let listing = up.requests()[0].clone();
    assert_eq!(
        (listing.method.as_str(), listing.path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(listing.header("authorization"), Some("Bearer sk-m"));
    let resp = chat(&p, "mistral:mistral-small-latest");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("mistral"));
    let sent = &up.posts()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-m"));
    assert_eq!(sent.json()["model"], "mistral-small-latest");
    let all = p.model_ids();
    for want in [
        "mistral-small-latest",
        "mistral:mistral-small-latest",
        "codestral-latest",
        "mistral:codestral-latest",
    ] {
        assert!(all.contains(&want.to_string()), "{want} in {all:?}");
    }
}

#[test]
fn a_bare_mistral_name_is_asked_of_mistral_while_its_key_cannot_list_models() {
    let up = cannot_list(json!({"message": "Forbidden"}), "from mistral");
    let p = Proxy::start_with(&mistral_at(&up), &[("MISTRAL_API_KEY", "sk-m")], &[]);
    p.wait_log("cannot list the models of mistral");
    let resp = chat(&p, "codestral-latest");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("mistral"));
    let sent = &up.posts()[0];
    assert_eq!(sent.header("authorization"), Some("Bearer sk-m"));
    assert_eq!(sent.json()["model"], "codestral-latest");
    // An Ollama-style name with a tag is a local server's, never asked of Mistral.
    assert_eq!(chat(&p, "mistral-small3.1:24b").status, 404);
    assert_eq!(up.posts().len(), 1);
}

#[test]
fn a_bare_mistral_name_without_its_key_gets_a_404_naming_the_key() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("from mistral")));
    let p = Proxy::start(&mistral_at(&up));
    let resp = chat(&p, "codestral-latest");
    assert_eq!(resp.status, 404, "{}", resp.body);
    let msg = resp.error_message();
    assert!(
        msg.contains(
            "`codestral-latest` looks like a Mistral model: set MISTRAL_API_KEY or \
             ROUTEPLANE_MISTRAL_API_KEY"
        ),
        "{msg}"
    );
    // A tagged name is a local server's to pull, not a key's to set.
    let msg = chat(&p, "mistral-small3.1:24b").error_message();
    assert!(!msg.contains("MISTRAL_API_KEY"), "{msg}");
    assert_eq!(up.count(), 0, "nothing was sent upstream");
}
