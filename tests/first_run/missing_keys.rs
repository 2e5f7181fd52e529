//! A hosted model without its key, or with a placeholder for one: the 404 and `route`
//! name the key and the login, and a key from a variable is taken as meant.

use super::*;

/// What a 404 for `gpt-4o` says with no OpenAI key and no ChatGPT login.
const GPT_4O_WITHOUT_KEY: &str = "unknown model `gpt-4o`; no models are configured or \
    detected (`routeplane models` says what would serve one). `gpt-4o` looks like an OpenAI model: set OPENAI_API_KEY or \
    ROUTEPLANE_OPENAI_API_KEY, or run `routeplane login openai-codex` and name a model it \
    lists `openai-codex:MODEL`, or name it `openrouter:openai/gpt-4o` with OPENROUTER_API_KEY \
    set";

/// What a 404 for `claude-sonnet-4-5` says with no Anthropic key and no Claude login.
const CLAUDE_WITHOUT_KEY: &str = "unknown model `claude-sonnet-4-5`; no models are configured \
    or detected (`routeplane models` says what would serve one). `claude-sonnet-4-5` looks like an Anthropic model: set \
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
    // A name no hosted provider's family has gets no hint. Nothing was found either,
    // which is not only a config's matter (it said "no models are configured").
    let resp = p.post("/v1/messages", messages_request("llama3.1"));
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "unknown model `llama3.1`; no models are configured or detected (`routeplane models` \
         says what would serve one)",
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
        "unknown model `o3`; no models are configured or detected (`routeplane models` says \
         what would serve one). A bare name never spends a subscription login: to ask your \
         `openai-codex#work` login, name it `openai-codex#work:o3` (if the plan serves that \
         model)",
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
fn a_placeholder_key_in_routeplanes_shell_is_named_where_a_key_is_asked_for() {
    // With `OPENAI_API_KEY=unused` exported, `route gpt-4o`, the server's 404 and
    // `models` said "set OPENAI_API_KEY" of a variable the user sees set.
    let dir = Dir::new();
    dir.write("routeplane.yaml", &nothing_found_config());
    let run = |args: &[&str]| {
        let out = crate::support::proxy::routeplane_in(dir.path())
            .args(args)
            .env("OPENAI_API_KEY", "unused")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let set = "`OPENAI_API_KEY` is set, but taken as unset (`unused`, the key a client sends to \
               Routeplane, is no key for a vendor)";
    let told = GPT_4O_WITHOUT_KEY.replace(
        "OpenAI model: set OPENAI_API_KEY",
        &format!("OpenAI model: {set}; set OPENAI_API_KEY"),
    );
    assert_text(
        &run(&["route", "gpt-4o"]),
        &format!("routeplane: error: {told}\n"),
    );
    let p = Proxy::start_with(
        &nothing_found_config(),
        &[("OPENAI_API_KEY", "unused")],
        &[],
    );
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_text(&resp.error_message(), &told);
    let models = run(&["models"]);
    assert!(
        models.starts_with(&format!(
            "routeplane: no models are configured or detected; set a provider's key \
             (OPENAI_API_KEY, OPENROUTER_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or \
             MISTRAL_API_KEY; {set}), or "
        )),
        "{models}"
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
fn a_key_in_quotes_is_no_key() {
    // `OPENAI_API_KEY="sk-…"` in a file read as is (`docker run --env-file`) keeps its
    // quotes: they were sent as part of the key, and the vendor's 401 did not say why.
    let quoted = "\"sk-SECRET-1\"";
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start_with(
        &format!("providers:\n  openai:\n    api_base: {}\n", up.url()),
        &[("OPENAI_API_KEY", quoted)],
        &[],
    );
    let why = "it begins or ends with a quote, which would be sent as part of the key (a \
               file of KEY=\"…\" lines read as is keeps them): remove it; the value is not shown";
    p.wait_log(&format!("warning: `OPENAI_API_KEY` taken as unset: {why}"));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "openai:gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert_eq!(up.count(), 0, "the quoted key was sent");
    assert!(!p.log().concat().contains("SECRET"));
    // Read through the config: refused where it is written.
    let yaml =
        "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_key: ${RP_TEST_KEY}\n";
    let (path, validate, serve) = config_error(yaml, &[("RP_TEST_KEY", quoted)]);
    let said = format!("{path}:4:5: `api_key` of `x`: {why}\n");
    assert_text(&validate, &format!("routeplane: invalid: {said}"));
    assert_text(&serve, &format!("routeplane: error: {said}"));
}

#[test]
fn a_key_written_with_its_bearer_word_is_told_to_drop_it() {
    // `api_key: Bearer sk-…` (the whole header value, copied from a curl line) was told
    // only "something other than visible ASCII".
    let key = "Bearer sk-SECRET-1";
    let why = "it begins with `Bearer `, which Routeplane adds itself: remove that word; the \
               value is not shown";
    let p = Proxy::start_with(
        "providers:\n  openai:\n    api_base: http://127.0.0.1:9/v1\n",
        &[("OPENAI_API_KEY", key)],
        &[],
    );
    p.wait_log(&format!("warning: `OPENAI_API_KEY` taken as unset: {why}"));
    assert!(!p.log().concat().contains("SECRET"));
    let yaml =
        "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_key: ${RP_TEST_KEY}\n";
    let (path, validate, serve) = config_error(yaml, &[("RP_TEST_KEY", key)]);
    let said = format!("{path}:4:5: `api_key` of `x`: {why}\n");
    assert_text(&validate, &format!("routeplane: invalid: {said}"));
    assert_text(&serve, &format!("routeplane: error: {said}"));
    assert!(!validate.contains("SECRET") && !serve.contains("SECRET"));
}

#[test]
fn a_hosted_built_in_at_a_local_server_without_a_key_says_how_to_send_none() {
    // `openai:` pointed at a vLLM started without a key: it stays hosted and wants its
    // key, so `providers`, the status page and a request said `no key` and what variable
    // to set, never that a block of one's own sends none.
    let up = MockUpstream::start(ollama);
    let yaml = format!(
        "providers:\n  openai:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let dir = Dir::new();
    dir.write("routeplane.yaml", &yaml);
    let out = crate::support::proxy::routeplane_in(dir.path())
        .arg("providers")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("openai "))
        .unwrap_or("");
    assert!(
        row.ends_with(
            "  no key (set `api_key`, or rename the block: one of your own needs no key)"
        ),
        "{table}"
    );
    // `--json` keeps `state` the word a script matches, the fix beside it.
    let out = crate::support::proxy::routeplane_in(dir.path())
        .args(["providers", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &list.as_array().unwrap()[0];
    assert_eq!(row["state"], "no key", "{list}");
    let detail = row["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("rename the block"), "{list}");
    let p = Proxy::start(&yaml);
    let s = p.source_status("openai");
    assert_eq!(s["state"], "no key", "{s}");
    let rename = "or rename the block: one of your own needs no key";
    assert!(s["detail"].as_str().unwrap().ends_with(rename), "{s}");
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "openai:m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 401, "{}", resp.body);
    assert!(resp.error_message().contains(rename), "{}", resp.body);
    assert!(up.requests().is_empty(), "nothing is sent without the key");
}
