//! `routeplane route`, `models` and `providers`: the targets in order, the tables'
//! columns, an empty list explained, and what the running server saw.

use super::{run, text};
use crate::support::{Dir, assert_text};

#[test]
fn route_prints_targets_in_order() {
    let dir = Dir::new();
    // Nothing listens on these ports: both sources are down.
    let (a, b) = (free_port(), free_port());
    dir.write(
        "routeplane.yaml",
        &format!("providers:\n  ollama:\n    api_base: http://127.0.0.1:{a}/v1\n  vllm:\n    api_base: http://127.0.0.1:{b}/v1\nmodels:\n  smart:\n    endpoints:\n      - ollama:llama3.1:8b\n      - {{provider: vllm, service_id: qwen}}\n"),
    );
    let out = run(&dir, &["route", "smart"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_text(
        &text(&out.stdout),
        &format!(
            "1. ollama:llama3.1:8b (chat_completions, http://127.0.0.1:{a}/v1/chat/completions) down\n   deadline: first token 15s; retries: 1; prefill: yes\n2. vllm:qwen (chat_completions, http://127.0.0.1:{b}/v1/chat/completions) down\n   deadline: first byte 300s (no later endpoint could answer); retries: 1; prefill: yes (continue_final_message)\n"
        ),
    );
}

#[test]
fn route_prints_json_when_asked_as_models_and_providers_do() {
    let dir = Dir::new();
    // Nothing listens on this port: the source is down.
    let a = free_port();
    dir.write(
        "routeplane.yaml",
        &format!("providers:\n  ollama:\n    api_base: http://127.0.0.1:{a}/v1\n"),
    );
    let out = run(&dir, &["route", "ollama:llama3.1", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        got,
        serde_json::json!([{
            "target": "ollama:llama3.1",
            "protocol": "chat_completions",
            "url": format!("http://127.0.0.1:{a}/v1/chat/completions"),
            "state": "down",
            "policy": "deadline: first byte 300s (no later endpoint could answer); retries: 1; prefill: yes",
        }])
    );
}

#[test]
fn route_names_a_catalog_entry_as_config_validate_and_a_client_do() {
    // `config validate` said `openrouter:gpt-4o` where `route` said
    // `openrouter:openai/gpt-4o`: one endpoint, two names. The one a client sends wins;
    // the name sent upstream is told beside it.
    let dir = Dir::new();
    dir.write(
        "routeplane.yaml",
        "providers:\n  openrouter:\n    models:\n      - {id: gpt-4o, provider_model_id: openai/gpt-4o}\n\
         models:\n  smart:\n    endpoints: [openrouter:gpt-4o]\n",
    );
    let validate = text(&run(&dir, &["config", "validate"]).stderr);
    assert!(
        validate.contains("endpoint `openrouter:gpt-4o` of `smart` has no key here"),
        "{validate}"
    );
    for model in ["smart", "gpt-4o", "openrouter:gpt-4o"] {
        let out = text(&run(&dir, &["route", model]).stdout);
        assert_text(
            out.lines().next().unwrap_or_default(),
            "1. openrouter:gpt-4o (chat_completions, https://openrouter.ai/api/v1/chat/completions, \
             as `openai/gpt-4o`) no key",
        );
        let out = run(&dir, &["route", model, "--json"]);
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(got[0]["target"], "openrouter:gpt-4o", "{got}");
    }
}

#[test]
fn route_tells_which_method_a_gemini_source_is_asked_with() {
    let dir = Dir::new();
    // Nothing listens on these ports. 0.0.0.0 is neither loopback nor on this network:
    // a hosted API, asked as the client asks.
    let (a, b) = (free_port(), free_port());
    dir.write(
        "routeplane.yaml",
        &format!("providers:\n  near:\n    api_base: http://127.0.0.1:{a}/v1beta\n    api_protocol: gemini\n    models: [m]\n  far:\n    api_base: http://0.0.0.0:{b}/v1beta\n    api_protocol: gemini\n    models: [m]\nmodels:\n  smart:\n    endpoints: [near:m, far:m]\n"),
    );
    let out = run(&dir, &["route", "smart"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    // A self-hosted server with an endpoint after it is asked for a whole answer as a
    // stream too; the last endpoint, and a hosted one, as the client asks.
    for line in [
        format!(
            "1. near:m (gemini, http://127.0.0.1:{a}/v1beta/models/m:streamGenerateContent?alt=sse, whole answers too (:generateContent when one stream cannot give them)) "
        ),
        format!(
            "2. far:m (gemini, http://0.0.0.0:{b}/v1beta/models/m:generateContent, streams :streamGenerateContent?alt=sse) "
        ),
    ] {
        assert!(said.contains(&line), "{line}\nnot in\n{said}");
    }
    let out = run(&dir, &["route", "near:m"]);
    let said = text(&out.stdout);
    let line = format!(
        "1. near:m (gemini, http://127.0.0.1:{a}/v1beta/models/m:generateContent, streams :streamGenerateContent?alt=sse) "
    );
    assert!(said.contains(&line), "{line}\nnot in\n{said}");
}

/// Asserts that in every row of `table` each column starts where the header's does: two
/// spaces before it, and a cell's first character at it.
#[track_caller]
fn assert_columns_aligned(table: &str) {
    let lines: Vec<Vec<char>> = table.lines().map(|l| l.chars().collect()).collect();
    let header = &lines[0];
    let starts: Vec<usize> = (1..header.len())
        .filter(|&i| header[i] != ' ' && header[i - 1] == ' ')
        .collect();
    assert!(starts.len() >= 3, "{table}");
    for row in &lines[1..] {
        for &at in &starts {
            assert!(
                row.get(at).is_some_and(|c| *c != ' ') && row[at - 2..at] == [' ', ' '],
                "a column of this row does not start at {at}:\n{}\n{table}",
                row.iter().collect::<String>()
            );
        }
    }
}

#[test]
fn models_and_providers_columns_start_where_their_headers_do() {
    let dir = Dir::new();
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    // Every local built-in and the ChatGPT login are asked at a port nothing listens on.
    let locals: String = ["ollama", "vllm", "lmstudio", "llamacpp", "openai-codex"]
        .iter()
        .map(|id| format!("  {id}:\n    api_base: {dead}\n"))
        .collect();
    dir.write(
        "routeplane.yaml",
        &format!(
            "providers:\n{locals}  a-gateway-with-a-long-id:\n    api_base: {dead}\n    models: [m, a-model-with-a-long-name]\nmodels:\n  smart:\n    endpoints: [a-gateway-with-a-long-id:m]\n"
        ),
    );
    // A labelled login is a row of its own, with a label longer than any built-in id.
    dir.write(
        "auth.json",
        &serde_json::json!({"version": 1, "credentials": {"openai-codex#work": {
            "access_token": "at-1", "refresh_token": "rt-1", "expires_at": 4102444800u64}}})
        .to_string(),
    );
    let auth_file = dir.path().join("auth.json");
    for args in [&["models"][..], &["providers"]] {
        let out = crate::support::proxy::routeplane_in(dir.path())
            .args(args)
            .env("ROUTEPLANE_AUTH_FILE", &auth_file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let table = text(&out.stdout);
        assert!(table.contains("a-gateway-with-a-long-id  "), "{table}");
        assert_columns_aligned(&table);
        if args == ["providers"] {
            assert!(table.contains("\nopenai-codex#work  "), "{table}");
            assert!(table.contains("/v1beta  "), "Gemini's base: {table}");
        }
    }
}

#[test]
fn models_with_nothing_to_list_prints_its_header_and_says_how_to_get_some() {
    let dir = Dir::new();
    assert!(run(&dir, &["init"]).status.success());
    // The starter config, with the local servers asked where nothing listens.
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let locals: String = ["ollama", "vllm", "lmstudio", "llamacpp"]
        .iter()
        .map(|id| format!("  {id}:\n    api_base: {dead}\n"))
        .collect();
    let yaml = dir.read("routeplane.yaml") + "providers:\n" + &locals;
    dir.write("routeplane.yaml", &yaml);
    let out = run(&dir, &["models"]);
    assert_eq!(out.status.code(), Some(0));
    assert_text(&text(&out.stdout), "MODEL  PROVIDER  SOURCE  STATE\n");
    assert_text(
        &text(&out.stderr),
        "routeplane: no models are configured or detected; set a provider's key \
         (OPENAI_API_KEY, OPENROUTER_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or MISTRAL_API_KEY), \
         or start a local server (ollama, vllm, lmstudio or llamacpp), or run `routeplane login \
         anthropic` or `routeplane login openai-codex`\n",
    );
    let out = run(&dir, &["models", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_text(&text(&out.stdout), "[]\n");
    assert_text(&text(&out.stderr), "");
    // A built-in's block that sets only a header lacks a key or a login, as without the
    // block: it was told to be given a `models:` list or `detect: true`.
    let headers = "    headers:\n      x-team: a\n";
    dir.write(
        "routeplane.yaml",
        &format!("{yaml}  anthropic:\n{headers}  openai-codex:\n{headers}"),
    );
    let out = run(&dir, &["models"]);
    assert_text(
        &text(&out.stderr),
        "routeplane: no models are configured or detected; set a provider's key \
         (ANTHROPIC_API_KEY, OPENAI_API_KEY, OPENROUTER_API_KEY, GEMINI_API_KEY or MISTRAL_API_KEY), \
         or start a local server (ollama, vllm, lmstudio or llamacpp), or run `routeplane login \
         anthropic` or `routeplane login openai-codex`\n",
    );
    // A hosted block of one's own with a key but no list: named, with what it needs (one
    // on this machine would be asked for its models). Nothing is sent to it.
    dir.write(
        "routeplane.yaml",
        &(yaml + "  groq:\n    api_base: https://api.groq.com/openai/v1\n    api_key: gsk-1\n"),
    );
    let out = run(&dir, &["models"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "routeplane: no models are configured or detected; give `groq` a `models:` list \
             or `detect: true` (`PROVIDER:MODEL` reaches one meanwhile), or set a provider's key"
        ),
        "{stderr}"
    );
}

fn free_port() -> u16 {
    crate::support::MockUpstream::free_port()
}

#[test]
fn providers_shows_a_key_the_running_server_saw_refused_to_a_request() {
    use crate::support::upstream::chat_answer;
    use crate::support::{MockUpstream, Proxy, Reply};
    use serde_json::json;
    // The key lists models well, so the command's own look finds it `active`; requests
    // are refused (a key revoked for inference). Only the server sees that.
    let openai = MockUpstream::start(|req| match req.method.as_str() {
        "GET" => Reply::json(200, json!({"object": "list", "data": [{"id": "gpt-4o"}]})),
        _ if req.json()["model"] == "ok" => Reply::json(200, chat_answer("fine")),
        _ => Reply::json(
            401,
            json!({"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}}),
        ),
    });
    let config = format!("providers:\n  openai:\n    api_base: {}\n", openai.url());
    let key = [("OPENAI_API_KEY", "sk-revoked")];
    let p = Proxy::start_with(&config, &key, &[]);
    p.wait_log("source openai is up (1 model)");
    let served = p.dir.path().join("routeplane.yaml");
    let elsewhere = Dir::new();
    let other = elsewhere.write(
        "routeplane.yaml",
        &std::fs::read_to_string(&served).unwrap(),
    );
    let state = |config: &std::path::Path| {
        let out = crate::support::proxy::routeplane_in(elsewhere.path())
            .args(["providers", "--json", "--listen", &p.addr, "-c"])
            .arg(config)
            .envs(key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let row = v.as_array().unwrap().iter().find(|p| p["id"] == "openai");
        row.unwrap()["state"].as_str().unwrap().to_string()
    };
    assert_eq!(state(&served), "active");
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "openai:gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401, "{}", resp.body);
    p.wait_log("the key of openai (OPENAI_API_KEY) was refused (401)");
    assert_eq!(state(&served), "key refused (401)");
    // A server of another config file says nothing of this one's keys.
    assert_eq!(state(&other), "active");
    // Accepted again, it is active again.
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "openai:ok", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(state(&served), "active");
}

#[test]
fn a_model_given_to_models_is_pointed_at_route() {
    // Was a bare `unexpected argument "smart"`: one model's sources are `route`'s.
    let dir = Dir::new();
    let out = run(&dir, &["models", "smart"]);
    assert_eq!(out.status.code(), Some(2));
    assert_text(
        &text(&out.stderr),
        "routeplane: error: `models` takes no MODEL; `routeplane route smart` shows what \
         serves `smart` (see --help)\n",
    );
}

#[test]
fn a_word_given_to_providers_is_told_what_it_takes() {
    // Was a bare `unexpected argument "ollama"`.
    let dir = Dir::new();
    let out = run(&dir, &["providers", "ollama"]);
    assert_eq!(out.status.code(), Some(2));
    assert_text(
        &text(&out.stderr),
        "routeplane: error: `providers` takes `list`, `login` or `logout`, not `ollama`; \
         `routeplane providers` shows every provider's row (see --help)\n",
    );
}
