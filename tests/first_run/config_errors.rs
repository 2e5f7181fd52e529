//! Config errors and slips: each names the key, the value it wanted and its place once;
//! `config validate` refuses what serving refuses and warns of what still loads.

use super::*;

#[test]
fn a_local_base_url_without_v1_is_questioned_at_validate_and_start() {
    // Ollama at `http://127.0.0.1:11434` (no `/v1`) answers every request 404: said
    // before the first request, and only where a server at the root is unlikely.
    let yaml = "providers:\n  box:\n    api_base: http://127.0.0.1:11434/\n    models: [m]\n  \
                far:\n    api_base: https://api.deepseek.com\n    models: [d]\n";
    warned_at_validate_and_start(
        yaml,
        "3:5: `api_base` of `box` has no path (http://127.0.0.1:11434): Ollama, vLLM, LM \
         Studio and llama.cpp serve OpenAI's API under `/v1` and answer 404 without it; \
         write `http://127.0.0.1:11434/v1` unless this server serves at its root",
    );
}

/// Checks that `yaml` loads with `warning` (after `routeplane.yaml:`), said by `config
/// validate` alone and in the log of a server started with it.
fn warned_at_validate_and_start(yaml: &str, warning: &str) {
    let (ok, stderr) = validate(yaml, &[]);
    assert!(ok, "{stderr}");
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
fn allowed_hosts_beside_required_keys_is_warned_at_validate_and_start() {
    // With keys the key decides whatever the `Host`: the names are never looked at.
    let yaml = "keys: [k1]\nallowed_hosts: [routeplane]\n";
    warned_at_validate_and_start(
        yaml,
        "2:1: `allowed_hosts` applies only while clients need no key; with `keys:` \
         required, the key decides whatever name a request is addressed to, so the names \
         listed are never checked; remove them",
    );
    // Without keys the names are what let a request in: nothing to say.
    let (ok, stderr) = validate("allowed_hosts: [routeplane]\n", &[]);
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
    // A model after the colon: the provider before it is undefined, said first. It was
    // told only "e.g. `ollama:nosuch:llama3.1`"; a word tag (`llama3:instruct`) can still
    // be Ollama's, so that way is named second.
    let (_, stderr) = validate("models:\n  smart:\n    endpoints: [nosuch:llama3.1]\n", &[]);
    assert!(
        stderr.contains(
            "endpoint names unknown provider `nosuch`: no block under `providers:` defines \
             `nosuch`, and no built-in provider is named so (if `nosuch:llama3.1` is a local \
             model's name and tag, write its provider first: `ollama:nosuch:llama3.1`); known: "
        ),
        "{stderr}"
    );
    // Ollama's `mixtral:8x7b` is a name and a tag, not a mistyped `mistral`: it was asked
    // "did you mean `mistral:8x7b`?", a Mistral API model that does not exist.
    let (_, stderr) = validate("models:\n  smart:\n    endpoints: [mixtral:8x7b]\n", &[]);
    assert!(
        stderr.contains("endpoint names unknown provider `mixtral` (only the text before the first colon names one): write the provider first, e.g. `ollama:mixtral:8x7b`; known: "),
        "{stderr}"
    );
    // LiteLLM's way, a slash after the provider: told with the user's own names.
    let (_, stderr) = validate("models:\n  smart:\n    endpoints: [ollama/llama3.1]\n", &[]);
    assert_text(
        &stderr,
        "routeplane: invalid: routeplane.yaml:3:17: each endpoint of a virtual model names its \
         provider: write `provider:model` (here `ollama:llama3.1`, a colon after the provider) \
         or `{provider: ID, service_id: MODEL}`\n",
    );
}

#[test]
fn validate_warns_of_a_virtual_endpoint_that_has_no_key_and_no_login() {
    // It said "valid" and nothing else: every request then passed the endpoint over,
    // and a newcomer learned why only from a request's log line.
    let yaml = "models:\n  smart:\n    endpoints: [ollama:llama3.1, openai:gpt-4o, \
                anthropic:claude-sonnet-4-5]\n";
    let (ok, stderr) = validate(yaml, &[]);
    assert!(ok, "{stderr}");
    assert_text(
        &stderr,
        "routeplane: warning: endpoint `openai:gpt-4o` of `smart` has no key here (set \
         OPENAI_API_KEY or ROUTEPLANE_OPENAI_API_KEY); requests pass it over until the \
         environment `routeplane` runs in has one\n\
         routeplane: warning: endpoint `anthropic:claude-sonnet-4-5` of `smart` has no key \
         here (set ANTHROPIC_API_KEY or ROUTEPLANE_ANTHROPIC_API_KEY, or run `routeplane \
         login anthropic`); requests pass it over until the environment `routeplane` runs \
         in has one\n",
    );
    // A key for one, a stored login for the other: nothing to say.
    let logins = Dir::new();
    let auth = logins.write(
        "auth.json",
        &json!({"version": 1, "credentials": {"anthropic": {"access_token": "at-1",
            "refresh_token": "rt-1", "expires_at": 4102444800u64}}})
        .to_string(),
    );
    let (ok, stderr) = validate(
        yaml,
        &[
            ("OPENAI_API_KEY", "sk-test"),
            ("ROUTEPLANE_AUTH_FILE", auth.to_str().unwrap()),
        ],
    );
    assert!(ok, "{stderr}");
    assert_text(&stderr, "");
}

#[test]
fn config_errors_name_the_key_the_value_wanted_and_their_place_once() {
    let cases: [(&str, &str); 37] = [
        // One item written without its list: said how to write the list, the value not
        // repeated (under `keys:` it is a key).
        (
            "keys:\n  sk-SECRET-1\n",
            "2:3: keys: expected a list, got a single value (not shown: it may be a key); \
             write `keys: [sk-...]`",
        ),
        (
            "models:\n  smart:\n    endpoints: ollama:llama3.1\n",
            "3:16: models.smart.endpoints: expected a list, got a single value; write \
             `endpoints: [provider:model]`, one item per endpoint",
        ),
        (
            "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    models: llama3.1\n",
            "4:13: providers.x.models: expected a list, got a single value; write \
             `models: [MODEL]`, one item per model",
        ),
        (
            "allowed_hosts: routeplane\n",
            "1:16: allowed_hosts: expected a list, got a single value; write \
             `allowed_hosts: [NAME]`, one item per name",
        ),
        (
            "providers:\n\tollama:\n\t\tmodels: [m]\n",
            "2:2: ollama: tabs disallowed within this context (block indentation) (YAML indents \
             with spaces, never tabs: replace the tabs with spaces)",
        ),
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
            "1:1: unknown field `provider`, expected one of listen, skip_auth, keys, \
             allowed_hosts, workers, shutdown_grace_secs, limits, timeouts, failover, detect, \
             usage, log, providers, models; did you mean `providers`?",
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
            "3:3: `timeouts.idle_secs` must be a positive number of seconds, at most 1000000000",
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
    each_told(&cases);
}

#[test]
fn seconds_too_long_for_a_deadline_are_refused_at_validate_not_a_panic_at_start() {
    // Each once passed `config validate` and then panicked: at start (the two limits),
    // in every connection, or at SIGTERM (`Instant::now() + d` overflows).
    let cases = [
        "limits:\n  client_timeout_secs: 1e300\n",
        "limits:\n  queue_wait_secs: 1e300\n",
        "shutdown_grace_secs: 9e18\n",
        "timeouts:\n  first_byte_secs: 9e18\n",
    ];
    for yaml in cases {
        let (path, validate, serve) = config_error(yaml, &[]);
        let key = yaml
            .trim_end()
            .rsplit([' ', '\n'])
            .nth(1)
            .unwrap()
            .trim_end_matches(':');
        for (said, word) in [(validate, "invalid"), (serve, "error")] {
            assert!(
                said.starts_with(&format!("routeplane: {word}: {path}:"))
                    && said.contains(&format!(
                        "{key}` must be a positive number of seconds, at most 1000000000\n"
                    )),
                "{yaml}: {said}"
            );
        }
    }
}

#[test]
fn an_unknown_protocol_from_a_variable_is_not_shown() {
    // What a `${VAR}` holds may be a key; a short lower-case word is shown as written.
    let yaml = "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_protocol: ${RP_TEST_PROTO}\n";
    let (path, validate, serve) = config_error(yaml, &[("RP_TEST_PROTO", "sk-live-Abc123")]);
    let want = "4:19: unknown protocol (not shown: it may be a key); expected chat_completions, \
                anthropic, responses or gemini\n";
    assert_text(&validate, &format!("routeplane: invalid: {path}:{want}"));
    assert_text(&serve, &format!("routeplane: error: {path}:{want}"));
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

#[test]
fn models_indented_under_providers_is_told_it_belongs_at_the_top_level() {
    // It was told only "providers.models: expected a map of keys, got a list", or an
    // unknown field `smart` of a provider, with no word of where `models:` goes.
    let hint = " (`models:` under `providers:` is read as a provider named `models`: virtual \
        models go under a top-level `models:`, at the start of its line, and a provider's own \
        models under its block, as `ollama: {models: [llama3.1]}`)";
    for (yaml, want) in [
        (
            "providers:\n  ollama: {}\n  models:\n    - id: llama3.1\n",
            "4:5: providers.models: expected a map of keys, got a list",
        ),
        (
            "providers:\n  ollama: {}\n  models:\n    smart:\n      endpoints: [ollama:llama3.1]\n",
            "4:5: unknown field `smart`, expected one of api_base, api_key, api_protocol, \
             headers, models, detect, auth, prefill",
        ),
    ] {
        let (path, validate, serve) = config_error(yaml, &[]);
        assert_text(
            &validate,
            &format!("routeplane: invalid: {path}:{want}{hint}\n"),
        );
        assert_text(&serve, &format!("routeplane: error: {path}:{want}{hint}\n"));
    }
}

#[test]
fn a_port_alone_and_a_model_id_with_a_space_at_its_end_are_refused_saying_the_fix() {
    // `listen: 8080` was refused without the address meant; `id: "llama3.1 "` loaded,
    // and a request for `llama3.1` was a 404 listing what looked like that very name.
    for (yaml, want) in [
        (
            "listen: 8080\n",
            "1:1: `listen: 8080` is not an address like 127.0.0.1:4356; for port 8080 on this \
             machine only, write `listen: 127.0.0.1:8080`",
        ),
        (
            "providers:\n  box:\n    api_base: http://127.0.0.1:9/v1\n    models:\n      - id: \"m \"\n",
            "5:9: model `m ` begins or ends with a space; remove it",
        ),
        (
            "providers:\n  box:\n    api_base: http://127.0.0.1:9/v1\n    models: [m]\nmodels:\n  smart:\n    endpoints: [\"box:m \"]\n",
            "7:17: model `m ` begins or ends with a space; remove it",
        ),
    ] {
        let (path, validate, serve) = config_error(yaml, &[]);
        assert_text(&validate, &format!("routeplane: invalid: {path}:{want}\n"));
        assert_text(&serve, &format!("routeplane: error: {path}:{want}\n"));
    }
}

#[test]
fn a_list_written_as_a_map_and_virtual_models_as_a_list_are_told_the_shape_wanted() {
    // `models:` of a provider written as a map was told "providers.x.models.gpt-4o:
    // expected a list, got a single value", a model taken for a key and a map for a
    // value; `models:` of virtual models as a list, only "expected a map, got a list".
    let block = "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    models:";
    for (yaml, want) in [
        (
            format!("{block}\n      gpt-4o: {{}}\n"),
            "5:7: providers.x.models: expected a list, got a map; write `models: [MODEL]`, \
             one item per model",
        ),
        (
            format!("{block} {{gpt-4o: {{}}}}\n"),
            "4:13: providers.x.models: expected a list, got a map; write `models: [MODEL]`, \
             one item per model",
        ),
        (
            "models:\n  smart:\n    endpoints:\n      ollama: llama3.1\n".into(),
            "4:7: models.smart.endpoints: expected a list, got a map; write \
             `endpoints: [provider:model]`, one item per endpoint",
        ),
        // Keys named, as other proxies take them: a map, its contents not shown.
        (
            "keys:\n  laptop: sk-SECRET-1\n".into(),
            "2:3: keys: expected a list, got a map (not shown: it may be a key); write \
             `keys: [sk-...]`",
        ),
        (
            "models:\n  - id: smart\n    endpoints: [ollama:llama3.1]\n".into(),
            "1:1: models: expected a map, got a list (a virtual model is a key under \
             `models:`, e.g. `smart: {endpoints: [ollama:llama3.1]}`)",
        ),
    ] {
        let (path, validate, serve) = config_error(&yaml, &[]);
        assert_text(&validate, &format!("routeplane: invalid: {path}:{want}\n"));
        assert_text(&serve, &format!("routeplane: error: {path}:{want}\n"));
    }
}

#[test]
fn other_tools_key_names_and_a_provider_at_the_top_are_told_ours() {
    // `base_url` (the OpenAI SDKs', LiteLLM's) and `client_keys` were told only the keys
    // expected, none of them near enough to be asked about; `openai:` at the top level
    // was told the top-level keys, with no word of `providers:`.
    let top = "listen, skip_auth, keys, allowed_hosts, workers, shutdown_grace_secs, limits, \
               timeouts, failover, detect, usage, log, providers, models";
    for (yaml, want) in [
        (
            "providers:\n  x:\n    base_url: http://127.0.0.1:9/v1\n",
            "3:5: unknown field `base_url`, expected one of api_base, api_key, api_protocol, \
             headers, models, detect, auth, prefill; did you mean `api_base`?"
                .to_string(),
        ),
        (
            "client_keys: [k1]\n",
            format!(
                "1:1: unknown field `client_keys`, expected one of {top}; did you mean `keys`?"
            ),
        ),
        (
            "openai:\n  api_key: sk-x\n",
            format!(
                "1:1: unknown field `openai`, expected one of {top}; a provider's block goes \
                 under `providers:`"
            ),
        ),
        (
            "skip_auth: true\ngw: {models: [m], api_base: http://127.0.0.1:9/v1}\n",
            format!(
                "2:1: unknown field `gw`, expected one of {top}; a provider's block goes \
                 under `providers:`"
            ),
        ),
    ] {
        let (path, validate, serve) = config_error(yaml, &[]);
        assert_text(&validate, &format!("routeplane: invalid: {path}:{want}\n"));
        assert_text(&serve, &format!("routeplane: error: {path}:{want}\n"));
    }
}

#[test]
fn keys_as_maps_an_unclosed_bracket_and_text_after_a_quote_are_told_the_fix() {
    // Were: "keys: expected string scalar", "providers.x.keys: expected one of …" (the
    // unknown key unnamed), "providers: expected a map, got a list" for a `[` never
    // closed, and "cannot be read" for text after a closing quote.
    let cases = [
        (
            "keys: [{key: sk-SECRET-1}]\n",
            "1:8: keys: expected string scalar, got a map (not shown: it may be a key); write \
             `keys: [sk-...]`",
        ),
        (
            "keys:\n  - key: sk-SECRET-1\n",
            "2:5: keys: expected string scalar, got a map (not shown: it may be a key); write \
             `keys: [sk-...]`",
        ),
        (
            "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    keys:\n      - key: sk-SECRET-1\n",
            "4:5: unknown field `keys`, expected one of api_base, api_key, api_protocol, \
             headers, models, detect, auth, prefill; did you mean `api_key`?",
        ),
        (
            "providers: [\n  x: {api_base: http://127.0.0.1:9/v1}\n",
            "1:12: providers: unclosed bracket '[': no ']' closes it",
        ),
        (
            "keys: [sk-SECRET-1, sk-SECRET-2\nproviders:\n  x: {api_base: http://127.0.0.1:9/v1}\n",
            "1:7: keys: unclosed bracket '[': no ']' closes it",
        ),
        (
            "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_key: \"sk-SECRET\"123\n",
            "4:25: providers.x.api_key: text follows the closing quote: put the whole value \
             inside the quotes",
        ),
    ];
    each_told(&cases);
}

#[test]
fn a_file_whose_lines_end_in_cr_alone_is_told_line_by_line_without_its_keys() {
    // `\r` alone (old Mac files) ends a line for YAML but not for the excerpts: the file
    // read as one line, and an error's key path ran on through the lines after it.
    let cases = [
        (
            "providers:\r  x:\r    api_key: sk-SECRET-1\r    timeout_secs: [\r",
            "4:19: providers.x.timeout_secs: unclosed bracket '[': no ']' closes it",
        ),
        (
            "workers: lots\rproviders:\r  x:\r    api_key: sk-SECRET-1\r",
            "1:10: workers: expected a whole number, got \"lots\"",
        ),
        (
            "providers:\r\n  x:\r    api_key: sk-SECRET-1\r\nworkers: lots\r",
            "4:10: workers: expected a whole number, got \"lots\"",
        ),
    ];
    each_told(&cases);
}

#[test]
fn an_extra_bracket_and_text_after_a_list_are_told_where_without_the_keys() {
    // Were: "keys: cannot be read (what is written here is not shown: …)" for the extra
    // `]` and a `[` closed by `}`, "keys: expected key" for text after the list, and
    // outside `keys:` "misplaced bracket" or "this line is indented differently".
    let cases = [
        (
            "keys: [sk-SECRET-1, sk-SECRET-2]]\n",
            "1:33: keys: an extra `]` or `}`: nothing is open here to close; remove it",
        ),
        (
            "keys: [sk-SECRET-1] sk-SECRET-2\n",
            "1:21: keys: text after a closing bracket: remove it or move it inside",
        ),
        (
            "keys: [sk-SECRET-1, sk-SECRET-2}\n",
            "1:7: keys: a `[` closed by `}`, or `{` by `]`: close each with its own",
        ),
        (
            "allowed_hosts: [a, b] c\n",
            "1:23: allowed_hosts: text after a closing bracket: remove it or move it inside",
        ),
        (
            "providers:\n  x: {api_base: http://127.0.0.1:9/v1}}\n",
            "2:39: providers.x: an extra `]` or `}`: nothing is open here to close; remove it",
        ),
    ];
    each_told(&cases);
}

#[test]
fn an_api_base_without_its_scheme_is_told_at_its_line_with_the_url_to_write() {
    // Were: at the provider's line, "must start with http:// or https://", no URL.
    let cases = [
        (
            "providers:\n  ollama:\n    api_base: localhost:11434\n",
            "3:5: `api_base` of `ollama` must start with http:// or https://; write \
             `http://localhost:11434/v1`",
        ),
        (
            "providers:\n  box:\n    models: [m]\n    api_base: 192.168.1.9:8000/v1\n",
            "4:5: `api_base` of `box` must start with http:// or https://; write \
             `http://192.168.1.9:8000/v1`",
        ),
        // A public host: its path is not known, so no URL is made up.
        (
            "providers:\n  ds:\n    api_base: api.deepseek.com\n",
            "3:5: `api_base` of `ds` must start with http:// or https://",
        ),
        // Written on the block's line: told at its key there.
        (
            "providers:\n  box: {api_base: localhost:8000}\n",
            "2:9: `api_base` of `box` must start with http:// or https://; write \
             `http://localhost:8000/v1`",
        ),
        // A key pasted there is no host: not repeated.
        (
            "providers:\n  x:\n    api_base: sk-SECRET-1\n",
            "3:5: `api_base` of `x` must start with http:// or https://",
        ),
    ];
    each_told(&cases);
}

#[test]
fn an_api_base_no_request_could_be_sent_to_is_refused_at_load_with_what_to_write() {
    // Were: valid, and every request to it failed with the reason.
    let cases = [
        (
            "providers:\n  x:\n    api_base: http://user@127.0.0.1:1/v1\n",
            "3:5: `api_base` of `x`: http://***@127.0.0.1:1/v1 holds a user name or password, \
             which is not sent: write `http://127.0.0.1:1/v1` and give the credential as the \
             provider's `api_key` or in its `headers`",
        ),
        (
            "providers:\n  x:\n    models: [m]\n    api_base: http://127.0.0.1:99999/v1\n",
            "4:5: `api_base` of `x`: http://127.0.0.1:99999/v1 has a port that is not a \
             number up to 65535: write the server's port",
        ),
        (
            "providers:\n  x: {api_base: \"http://:8000/v1\"}\n",
            "2:7: `api_base` of `x`: http://:8000/v1 is not an http(s) URL like \
             `http://127.0.0.1:8000/v1`",
        ),
        // A built-in's base written over, its password not repeated.
        (
            "providers:\n  openai:\n    api_base: https://me:sk-SECRET-1@gw.example/v1?k=1\n",
            "3:5: `api_base` of `openai`: https://me:***@gw.example/v1?k=*** holds a user name \
             or password, which is not sent: write `https://gw.example/v1?k=***` and give the \
             credential as the provider's `api_key` or in its `headers`",
        ),
    ];
    each_told(&cases);
    // From the environment: told at the line that reads the variable, naming it, so
    // that the fix goes there and not into the file.
    let env = |yaml: &str, vars: &[(&str, &str)], want: &str| {
        let (path, validate, serve) = config_error(yaml, vars);
        assert_text(&validate, &format!("routeplane: invalid: {path}:{want}\n"));
        assert_text(&serve, &format!("routeplane: error: {path}:{want}\n"));
        assert!(!validate.contains("SECRET"), "{validate}");
    };
    let from_env = "; the value comes from the environment variable `X_BASE`, not the file";
    env(
        "providers:\n  x:\n    api_base: ${X_BASE}\n",
        &[("X_BASE", "http://127.0.0.1:99999")],
        &format!(
            "3:5: `api_base` of `x`: http://127.0.0.1:99999 has a port that is not a number \
             up to 65535: write the server's port{from_env}"
        ),
    );
    env(
        "providers:\n  x:\n    models: [m]\n    api_base: \"${X_BASE:-http://127.0.0.1:8000/v1}\"\n",
        &[("X_BASE", "http://me:SECRET@127.0.0.1:8000/v1")],
        &format!(
            "4:5: `api_base` of `x`: http://me:***@127.0.0.1:8000/v1 holds a user name or \
             password, which is not sent: write `http://127.0.0.1:8000/v1` and give the \
             credential as the provider's `api_key` or in its `headers`{from_env}"
        ),
    );
    env(
        "providers:\n  x:\n    api_base: ${X_BASE}\n",
        &[("X_BASE", "localhost:8000")],
        &format!(
            "3:5: `api_base` of `x` must start with http:// or https://; write \
             `http://localhost:8000/v1`{from_env}"
        ),
    );
    // Written inline, it was told at the block with no variable named: traced alike, at
    // its key, and a variable of the next key (`api_key`) is not taken for its own.
    env(
        "providers: {x: {api_base: \"${X_BASE}\", api_key: \"${X_KEY}\"}}\n",
        &[("X_BASE", "localhost:8000"), ("X_KEY", "SECRET")],
        &format!(
            "1:17: `api_base` of `x` must start with http:// or https://; write \
             `http://localhost:8000/v1`{from_env}"
        ),
    );
    env(
        "providers:\n  x: {models: [m], api_base: '${X_BASE}'}\n",
        &[("X_BASE", "http://127.0.0.1:99999")],
        &format!(
            "2:20: `api_base` of `x`: http://127.0.0.1:99999 has a port that is not a number \
             up to 65535: write the server's port{from_env}"
        ),
    );
    // Two variables, both named.
    env(
        "providers:\n  x:\n    api_base: http://${X_HOST}:${X_PORT}/v1 # ${NOT_READ}\n",
        &[
            ("X_HOST", "127.0.0.1"),
            ("X_PORT", "80800"),
            ("NOT_READ", "x"),
        ],
        "3:5: `api_base` of `x`: http://127.0.0.1:80800/v1 has a port that is not a number \
         up to 65535: write the server's port; the value comes from the environment \
         variables `X_HOST` and `X_PORT`, not the file",
    );
    // A variable whose name looks like a key is not named; one unset, whose default in
    // the file was the value, is not blamed.
    env(
        "providers:\n  x:\n    api_base: ${sk_SECRET}\n",
        &[("sk_SECRET", "http://127.0.0.1:99999")],
        "3:5: `api_base` of `x`: http://127.0.0.1:99999 has a port that is not a number \
         up to 65535: write the server's port; the value comes from an environment \
         variable, not the file",
    );
    env(
        "providers:\n  x:\n    api_base: ${X_UNSET:-http://127.0.0.1:99999}\n",
        &[],
        "3:5: `api_base` of `x`: http://127.0.0.1:99999 has a port that is not a number \
         up to 65535: write the server's port",
    );
}

/// Each config's error, from `config validate` and from serving alike: at its line and
/// column with the message wanted, never the file's secrets (written `SECRET`).
fn each_told(cases: &[(&str, &str)]) {
    for (yaml, want) in cases {
        let (path, validate, serve) = config_error(yaml, &[]);
        assert_text(&validate, &format!("routeplane: invalid: {path}:{want}\n"));
        assert_text(&serve, &format!("routeplane: error: {path}:{want}\n"));
        assert!(
            !validate.contains("SECRET") && !serve.contains("SECRET"),
            "{validate}"
        );
    }
}

#[test]
fn a_key_written_in_another_section_is_told_where_it_belongs() {
    // Each was told only the keys expected where it stood, none near enough to be asked
    // about: nothing said that the key exists, one level or one section away.
    let top = "listen, skip_auth, keys, allowed_hosts, workers, shutdown_grace_secs, limits, \
               timeouts, failover, detect, usage, log, providers, models";
    let provider = "api_base, api_key, api_protocol, headers, models, detect, auth, prefill";
    let cases = [
        (
            "first_byte_secs: 600\n".to_string(),
            format!(
                "1:1: unknown field `first_byte_secs`, expected one of {top}; \
                 `first_byte_secs` belongs under `timeouts:`"
            ),
        ),
        (
            "timeouts:\n  cooldown_secs: 5\n".to_string(),
            "2:3: unknown field `cooldown_secs`, expected one of connect_secs, \
             first_byte_secs, idle_secs, first_token_secs; `cooldown_secs` belongs under \
             `failover:`"
                .to_string(),
        ),
        (
            "api_base: http://127.0.0.1:9/v1\n".to_string(),
            format!(
                "1:1: unknown field `api_base`, expected one of {top}; `api_base` belongs in \
                 a provider's block under `providers:`"
            ),
        ),
        (
            "providers:\n  ollama:\n    listen: 127.0.0.1:4000\n".to_string(),
            format!(
                "3:5: unknown field `listen`, expected one of {provider}; `listen` belongs at \
                 the top level, at the start of its line"
            ),
        ),
        // `detect` is the top level's and a provider's: under `providers:`, the provider's.
        (
            "providers:\n  ollama:\n    models:\n      - id: llama3.1\n        detect: true\n"
                .to_string(),
            "4:9: unknown key `detect` in a model entry; expected `id` or \
             `provider_model_id`; `detect` belongs in a provider's block under `providers:`"
                .to_string(),
        ),
        (
            "models:\n  smart:\n    endpoints: [ollama:llama3.1]\n    first_token_secs: 60\n"
                .to_string(),
            "4:5: unknown field `first_token_secs`, expected one of endpoints, strategy; \
             `first_token_secs` belongs under `timeouts:`, or in an endpoint: `{provider: \
             ID, service_id: MODEL, first_token_secs: N}`"
                .to_string(),
        ),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(y, w)| (&**y, &**w)).collect();
    each_told(&cases);
}

#[test]
fn a_virtual_model_written_as_one_endpoint_is_told_its_endpoints_key() {
    // Was "models.smart: expected a map of keys, got a single value", with no word of
    // `endpoints:`, which the same model written as a list was told.
    each_told(&[(
        "models:\n  smart: ollama:llama3.1\n",
        "2:10: models.smart: expected a map of keys, got a single value (a virtual model's \
         endpoints go under its `endpoints:`, e.g. `smart: {endpoints: [ollama:llama3.1]}`)",
    )]);
}

#[test]
fn an_api_key_written_as_a_variables_bare_name_is_warned_at_validate_and_start() {
    // `api_key: GROQ_API_KEY` sent that text as the key, and the 401 came from upstream.
    warned_at_validate_and_start(
        "providers:\n  groq:\n    api_base: http://127.0.0.1:9/v1\n    api_key: GROQ_API_KEY\n",
        "4:5: `api_key` of `groq` is the text `GROQ_API_KEY`, sent as the key itself: write \
         `${GROQ_API_KEY}` to read the environment variable",
    );
    // A key in capitals that names no variable (`…_KEY`, `…_TOKEN`) is a key.
    let (ok, stderr) = validate(
        "providers:\n  groq:\n    api_base: http://127.0.0.1:9/v1\n    api_key: ABC_123XYZ\n",
        &[],
    );
    assert!(ok && stderr.is_empty(), "{stderr}");
}

#[test]
fn a_virtual_model_named_as_an_endpoint_is_told_to_list_its_endpoints() {
    // Was told only to name a provider, as if `fast` were a model's name.
    each_told(&[(
        "models:\n  smart:\n    endpoints: [fast]\n  fast:\n    endpoints: [ollama:llama3.1]\n",
        "3:17: each endpoint of a virtual model names its provider: write `provider:model` \
         (`fast` is a virtual model: list its endpoints here) or `{provider: ID, service_id: \
         MODEL}`",
    )]);
}

#[test]
fn a_key_written_without_its_unit_or_in_another_is_told_the_one_meant() {
    // `first_byte` and `backoff_secs` were told only the keys expected: too many letters
    // from `first_byte_secs` and `backoff_ms` to be asked about as typos.
    for (yaml, want) in [
        (
            "timeouts:\n  first_byte: 30\n",
            "2:3: unknown field `first_byte`, expected one of connect_secs, first_byte_secs, \
             idle_secs, first_token_secs; did you mean `first_byte_secs`?",
        ),
        (
            "failover:\n  backoff_secs: 1\n",
            "2:3: unknown field `backoff_secs`, expected one of cooldown_secs, retries, \
             backoff_ms, max_retry_wait_secs, max_rescues; did you mean `backoff_ms`?",
        ),
    ] {
        let (path, validate, serve) = config_error(yaml, &[]);
        assert_text(&validate, &format!("routeplane: invalid: {path}:{want}\n"));
        assert_text(&serve, &format!("routeplane: error: {path}:{want}\n"));
    }
}
