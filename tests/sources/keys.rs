//! Keys from the environment and the config: which variable wins, a provider without
//! one answered at once, a key the upstream refuses shown as refused until it is
//! accepted, and a bare name only one's own keyed block could serve.

use super::*;

#[test]
fn hosted_keys_come_from_routeplane_variables_before_the_vendors() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let yaml = format!(
        "providers:\n  openai:\n    api_base: {}\n  openrouter:\n    api_base: {}\n",
        up.url(),
        up.url()
    );
    let p = Proxy::start_with(
        &yaml,
        &[
            ("ROUTEPLANE_OPENAI_API_KEY", "sk-routeplane"),
            ("OPENAI_API_KEY", "sk-vendor"),
            ("OPENROUTER_API_KEY", "sk-or"),
        ],
        &[],
    );
    assert_eq!(chat(&p, "openai:gpt-4o").status, 200);
    assert_eq!(chat(&p, "openrouter:x/y").status, 200);
    let auths: Vec<_> = up
        .posts()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_string())
        .collect();
    assert_eq!(auths, ["Bearer sk-routeplane", "Bearer sk-or"]);
    p.wait_log("served_by=openrouter:x/y");
    assert!(!p.log().join("\n").contains("sk-"), "no key in the log");
}

#[test]
fn a_provider_without_a_key_is_answered_401_at_once_and_skipped_in_a_cascade() {
    // Both built-ins point at a server on this machine: the 401 also says a block of
    // one's own sends no key.
    let up = MockUpstream::always(Reply::json(200, chat_answer("from local")));
    let yaml = format!(
        "providers:\n  openai:\n    api_base: {0}\n  anthropic:\n    api_base: {0}\n  local:\n    api_base: {0}\nmodels:\n  smart:\n    endpoints: [openai:gpt-4o, local:m]\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    let resp = chat(&p, "openai:gpt-4o");
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(
        resp.json()["error"]["message"],
        "provider `openai` has no credential: set OPENAI_API_KEY or ROUTEPLANE_OPENAI_API_KEY, \
         or rename the block: one of your own needs no key"
    );
    let resp = p.post(
        "/v1/messages",
        json!({"model": "anthropic:claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(resp.json()["type"], "error", "in the caller's protocol");
    assert_eq!(
        resp.json()["error"]["message"],
        "provider `anthropic` has no credential: set ANTHROPIC_API_KEY or ROUTEPLANE_ANTHROPIC_API_KEY, or run `routeplane login anthropic`, or rename the block: one of your own needs no key"
    );
    assert_eq!(up.count(), 0, "nothing was sent upstream");
    let resp = chat(&p, "smart");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("local"));
    assert_eq!(
        up.count(),
        1,
        "only the endpoint with a credential was asked"
    );
}

/// OpenAI's answer to a key it does not know.
fn wrong_key() -> Reply {
    Reply::json(
        401,
        json!({"error": {"message": "Incorrect API key provided: sk-bad.", "type": "invalid_request_error", "code": "invalid_api_key"}}),
    )
}

#[test]
fn a_key_the_upstream_refuses_is_key_refused_until_it_is_accepted_again() {
    // A key OpenAI answers 401 to was `active` in `providers`, `up` on the status page
    // and 1 in `routeplane_provider_up`.
    let openai =
        MockUpstream::start(
            |req| match (req.header("authorization"), req.method.as_str()) {
                (Some("Bearer sk-good"), "GET") => {
                    Reply::json(200, json!({"object": "list", "data": [{"id": "gpt-4o"}]}))
                }
                (Some("Bearer sk-good"), _) => Reply::json(200, chat_answer("from openai")),
                _ => wrong_key(),
            },
        );
    let config = format!("providers:\n  openai:\n    api_base: {}\n", openai.url());
    let dir = crate::support::Dir::new();
    dir.write("routeplane.yaml", &crate::support::proxy::hermetic(&config));
    let state = |key: &str| {
        let out = cli(&dir, &[("OPENAI_API_KEY", key)], &["providers", "--json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let openai = v.as_array().unwrap().iter().find(|p| p["id"] == "openai");
        openai.unwrap()["state"].as_str().unwrap().to_string()
    };
    assert_eq!(state("sk-bad"), "key refused (401)");
    assert_eq!(state("sk-good"), "active");
    // Refused at the listing: the three views agree.
    let p = Proxy::start_with(&config, &[("OPENAI_API_KEY", "sk-bad")], &[]);
    p.wait_log("the key of openai (OPENAI_API_KEY) was refused (401)");
    let s = p.source_status("openai");
    assert_eq!(
        (&s["state"], &s["up"], &s["detail"]),
        (
            &json!("key refused (401)"),
            &json!(false),
            &json!("check OPENAI_API_KEY")
        ),
        "{s}"
    );
    let up = r#"routeplane_provider_up{provider="openai"}"#;
    assert_eq!(p.metric(up).as_deref(), Some("0"));
    assert_eq!(chat(&p, "openai:gpt-4o").status, 401);
    assert_eq!(p.source_status("openai")["state"], "key refused (401)");

    // Refused at a request: a key that listed well and is then revoked.
    let answer = Arc::new(std::sync::atomic::AtomicU16::new(200));
    let said = Arc::clone(&answer);
    let revoked = MockUpstream::start(move |req| match req.method.as_str() {
        "GET" => Reply::json(200, json!({"object": "list", "data": [{"id": "gpt-4o"}]})),
        _ => match said.load(Ordering::SeqCst) {
            200 => Reply::json(200, chat_answer("from openai")),
            401 => wrong_key(),
            status => Reply::json(
                status,
                json!({"error": {"message": "Your input was flagged by moderation."}}),
            ),
        },
    });
    let config = format!("providers:\n  openai:\n    api_base: {}\n", revoked.url());
    let p = Proxy::start_with(&config, &[("OPENAI_API_KEY", "sk-good")], &[]);
    p.wait_log("source openai is up (1 model)");
    assert_eq!(p.source_status("openai")["state"], "up");
    // A 403 may refuse one request (a flagged prompt, a model the key may not use): the
    // key stays as it was.
    answer.store(403, Ordering::SeqCst);
    assert_eq!(chat(&p, "gpt-4o").status, 403);
    assert_eq!(p.source_status("openai")["state"], "up");
    answer.store(401, Ordering::SeqCst);
    assert_eq!(chat(&p, "gpt-4o").status, 401);
    p.wait_log("the key of openai (OPENAI_API_KEY) was refused (401)");
    assert_eq!(p.source_status("openai")["state"], "key refused (401)");
    assert_eq!(p.metric(up).as_deref(), Some("0"));
    // A later success clears it.
    answer.store(200, Ordering::SeqCst);
    assert_eq!(chat(&p, "gpt-4o").status, 200);
    p.wait_log("the key of openai (OPENAI_API_KEY) is accepted again");
    assert_eq!(p.source_status("openai")["state"], "up");
    assert_eq!(p.metric(up).as_deref(), Some("1"));

    // A 403 to the model list, which asks nothing of a prompt or a model, refuses the
    // key; but a restricted key that may not list models (OpenAI: "Missing scopes")
    // serves requests: it is no refused key.
    let disabled = cannot_list(
        json!({"error": {"message": "This API key has been disabled."}}),
        "from openai",
    );
    let config = format!("providers:\n  openai:\n    api_base: {}\n", disabled.url());
    dir.write("routeplane.yaml", &crate::support::proxy::hermetic(&config));
    assert_eq!(state("sk-disabled"), "key refused (403)");
    let restricted = cannot_list(
        json!({"error": {"message": "You have insufficient permissions for this operation. Missing scopes: api.model.read."}}),
        "from openai",
    );
    let config = format!(
        "providers:\n  openai:\n    api_base: {}\n",
        restricted.url()
    );
    dir.write("routeplane.yaml", &crate::support::proxy::hermetic(&config));
    assert_eq!(state("sk-restricted"), "active");
}

#[test]
fn a_bare_name_only_a_block_of_ones_own_could_serve_is_told_how_to_reach_it() {
    // Two servers of one's own given a key: one without a model listing, asked for one
    // (it names no model), and a gateway named only by a virtual model's endpoint.
    let up = MockUpstream::start(|req| match req.path.as_str() {
        "/v1/models" => Reply::json(404, json!({"error": {"message": "no such path"}})),
        _ => Reply::json(200, chat_answer("served")),
    });
    let p = Proxy::start(&format!(
        "providers:\n  selfhosted:\n    api_base: {base}\n    api_key: sk-own\n  gateway:\n    \
         api_base: {base}\n    api_key: sk-own\nmodels:\n  smart:\n    endpoints: [gateway:gpt-4o]\n",
        base = up.url()
    ));
    // The endpoint is listed as it is reached, with its provider; the bare name is not.
    let ids = p.model_ids();
    assert!(ids.contains(&"gateway:gpt-4o".to_string()), "{ids:?}");
    assert!(!ids.contains(&"gpt-4o".to_string()), "{ids:?}");
    assert_eq!(p.get("/v1/models/gateway:gpt-4o").status, 200);
    assert_eq!(chat(&p, "gateway:gpt-4o").status, 200);

    // The bare name an endpoint names: the names that reach it, before any vendor's key.
    let resp = chat(&p, "gpt-4o");
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert!(
        resp.error_message().ends_with(
            ". `gpt-4o` is named only as an endpoint of the virtual model `smart`, and a bare \
             name reaches only what a provider declares or lists: name `smart` or \
             `gateway:gpt-4o`, or declare `gpt-4o` under `models:` of `gateway`"
        ),
        "{}",
        resp.body
    );
    // A name nothing names: the blocks that list no models, which may serve it.
    let unlisted = "`selfhosted` and `gateway` list no models, so no bare name reaches \
                    them: if one serves `qwen3-coder`, name it `selfhosted:qwen3-coder` or \
                    `gateway:qwen3-coder`, or declare `qwen3-coder` under its block's `models:`";
    let resp = chat(&p, "qwen3-coder");
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert!(
        resp.error_message().ends_with(&format!(". {unlisted}")),
        "{}",
        resp.body
    );
    // Beside a vendor's key for a name of its own.
    let resp = chat(&p, "gpt-4.1");
    let told = resp.error_message();
    assert!(
        told.contains("`gpt-4.1` looks like an OpenAI model: set OPENAI_API_KEY")
            && told.ends_with(&unlisted.replace("qwen3-coder", "gpt-4.1")),
        "{told}"
    );
    assert_eq!(up.posts().len(), 1, "only the pinned request went upstream");
}

#[test]
fn an_upstream_401_says_routeplanes_key_was_refused_not_the_clients() {
    // Passed on as it came, Claude Code read OpenAI's "Incorrect API key" as its own
    // key's fault and told its user to `/login`. Still a 401, in the caller's protocol.
    let up = MockUpstream::start(|req| match req.method.as_str() {
        "GET" => Reply::json(200, json!({"object": "list", "data": [{"id": "m"}]})),
        _ => wrong_key(),
    });
    let yaml = format!(
        "providers:\n  x:\n    api_base: {}\n    api_key: sk-SECRET-x1\n    models: [m]\n  openai:\n    api_base: {}\n  keyless:\n    api_base: {}\n    models: [m]\n",
        up.url(),
        up.url(),
        up.url()
    );
    let p = Proxy::start_with(&yaml, &[("OPENAI_API_KEY", "sk-SECRET-o2")], &[]);
    let refused = "refused the key Routeplane sends it (401: Incorrect API key provided: sk-bad.)";
    let not_yours = "The client's key to Routeplane is not at fault";
    let resp = chat(&p, "x:m");
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(
        resp.error_message(),
        format!("upstream `x` {refused}; check `providers.x.api_key`. {not_yours}")
    );
    // A server started with a key of its own (vLLM's --api-key), none configured here.
    let resp = chat(&p, "keyless:m");
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(
        resp.error_message(),
        format!(
            "upstream `keyless` wants a key, and Routeplane sends it none (401: Incorrect API \
             key provided: sk-bad.); set `providers.keyless.api_key`. {not_yours}"
        )
    );
    let resp = p.post(
        "/v1/messages",
        json!({"model": "openai:gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401, "{}", resp.body);
    let v: Value = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    let msg = resp.error_message();
    assert!(
        msg.contains(&format!(
            "upstream `openai` {refused}; check OPENAI_API_KEY. {not_yours}"
        )),
        "{msg}"
    );
    let line = p.wait_log("openai:gpt-4o");
    assert!(
        line.contains("status=401") && line.contains("refused the key"),
        "{line}"
    );
    let all = format!("{}{}", resp.body, p.log().join("\n"));
    assert!(!all.contains("SECRET"), "{all}");
}
