//! `routeplane config validate`, and the config errors a start tells as it does: lines
//! named, variables unset, a missing file, a listen address without keys.

use std::process::Command;

use super::{run, text};
use crate::support::proxy::bin;
use crate::support::{Dir, assert_text, config_error};

#[test]
fn config_takes_its_file_before_validate_and_names_its_one_subcommand() {
    // `config -c FILE validate` was `invalid option '-c'`, and `config check` an
    // `unexpected argument` that named no command.
    let dir = Dir::new();
    dir.write("mine.yaml", "listen: 127.0.0.1:4999\n");
    let out = run(&dir, &["config", "-c", "mine.yaml", "validate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("listen 127.0.0.1:4999"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&dir, &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert_text(
        &text(&out.stderr),
        "routeplane: error: `config check` is not a command; the one `config` command is \
         `config validate` (see --help)\n",
    );
}

#[test]
fn validate_names_the_line_of_a_bad_key() {
    let dir = Dir::new();
    let path = dir.write(
        "bad.yaml",
        "skip_auth: true\nproviders:\n  ollama:\n    api_bsae: http://x\n",
    );
    let out = run(&dir, &["config", "validate", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "routeplane: invalid: {}:4:5: unknown field `api_bsae`, expected one of",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn validate_refuses_provider_ids_read_as_a_login_or_as_no_provider() {
    // `x#y` was shown "not logged in" while it served; `-` counted with requests no
    // provider answered.
    for (id, rename) in [
        ("x#y", "x-y"),
        ("-", "local"),
        ("openai-codex#", "openai-codex-"),
    ] {
        let yaml = format!("providers:\n  \"{id}\":\n    api_base: http://127.0.0.1:9/v1\n");
        let (path, validate, serve) = config_error(&yaml, &[]);
        let want = format!(
            "{path}:2:3: provider id `{id}` is taken: `-` stands for no provider, and `#` names \
             a second login (`openai-codex#work`, `anthropic#work`); rename the block, e.g. \
             `{rename}`\n"
        );
        assert_text(&validate, &format!("routeplane: invalid: {want}"));
        assert_text(&serve, &format!("routeplane: error: {want}"));
    }
}

#[test]
fn validate_refuses_an_unset_variable_as_serving_does() {
    // An `api_key`'s fallback is said empty: `:-default`, as said before, would send the
    // word `default` to the provider as its key.
    let yaml = "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_key: ${ROUTEPLANE_SURELY_UNSET}\n";
    let (path, validate, serve) = config_error(yaml, &[]);
    let want = format!(
        "{path}:4:14: providers.x.api_key: environment variable `ROUTEPLANE_SURELY_UNSET` is not \
         set (set it, or write `${{ROUTEPLANE_SURELY_UNSET:-}}` to start without that key)\n"
    );
    assert_text(&validate, &format!("routeplane: invalid: {want}"));
    assert_text(&serve, &format!("routeplane: error: {want}"));
    // With a fallback, both take it.
    let dir = Dir::new();
    let path = dir.write("c.yaml", &yaml.replace("UNSET}", "UNSET:-}"));
    let out = run(&dir, &["config", "validate", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_text(&text(&out.stderr), "");
}

#[test]
fn serve_fails_on_an_unset_variable_naming_it_and_its_line() {
    let dir = Dir::new();
    let path = dir.write("c.yaml", "# ${IN_COMMENT}\nproviders:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_key: ${ROUTEPLANE_SURELY_UNSET}\n");
    let out = run(&dir, &["-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            ":5:14: providers.x.api_key: environment variable `ROUTEPLANE_SURELY_UNSET` is not set"
        ),
        "{err}"
    );
}

#[test]
fn usage_and_login_read_a_config_whose_key_variable_is_unset_and_serve_still_refuses() {
    // A service whose key lives only in its own environment: reading the ledger or
    // storing a login needs no key, so neither stops at the unset variable.
    let dir = Dir::new();
    let ledger = dir.path().join("u.jsonl");
    let yaml = format!(
        "usage:\n  path: {}\nproviders:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_key: ${{ROUTEPLANE_SURELY_UNSET}}\n",
        ledger.display()
    );
    let path = dir.write("c.yaml", &yaml);
    let cfg = path.to_str().unwrap();
    let out = run(&dir, &["usage", "-c", cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no usage ledger at"),
        "{}",
        text(&out.stderr)
    );
    std::fs::create_dir_all(dir.path().join(".claude")).unwrap();
    dir.write(
        ".claude/.credentials.json",
        r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-a","refreshToken":"sk-ant-ort01-b","expiresAt":4102444800000}}"#,
    );
    let out = run(&dir, &["login", "anthropic", "--import", "-c", cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Serving sends the key: there the unset variable is still an error, named.
    let out = run(&dir, &["-c", cfg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("environment variable `ROUTEPLANE_SURELY_UNSET` is not set"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_config_path_is_an_error() {
    let dir = Dir::new();
    let out = run(&dir, &["-c", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("config file `nope.yaml` does not exist"));
    // A path with a space is suggested as one shell word, so the line can be pasted.
    let out = run(&dir, &["-c", "my configs/rp é.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_text(
        &text(&out.stderr),
        "routeplane: error: config file `my configs/rp é.yaml` does not exist (create one \
         with `routeplane init -c 'my configs/rp é.yaml'`) (see --help)\n",
    );
    std::fs::create_dir(dir.path().join("my configs")).unwrap();
    let init = Command::new("sh")
        .arg("-c")
        .arg(format!("{} init -c 'my configs/rp é.yaml'", bin()))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init.stderr));
    assert!(dir.path().join("my configs/rp é.yaml").exists());
}

#[test]
fn non_loopback_without_keys_refuses_to_start() {
    let dir = Dir::new();
    let out = run(&dir, &["--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("refusing to serve 0.0.0.0:0 without client keys"));
}

#[test]
fn keys_left_beside_skip_auth_true_are_named_in_the_refusal() {
    // The `init` template's `skip_auth: true` kept while its `keys:` is uncommented.
    let dir = Dir::new();
    dir.write("rp.yaml", "skip_auth: true\nkeys:\n  - rp-secret-1\n");
    let out = run(&dir, &["-c", "rp.yaml", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("refusing to serve 0.0.0.0:0 with `skip_auth: true`, which lets clients in"),
        "{err}"
    );
    assert!(!err.contains("rp-secret-1"), "{err}");
}

#[test]
fn validate_takes_serves_allow_open_and_listen() {
    let dir = Dir::new();
    dir.write("open.yaml", "listen: 0.0.0.0:4356\n");
    dir.write("plain.yaml", "workers: 8\n");
    let refused = run(&dir, &["config", "validate", "-c", "open.yaml"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("refusing to serve 0.0.0.0:4356 without client keys"),
        "{}",
        text(&refused.stderr)
    );
    // As `serve --allow-open` would start, validate passes it.
    let open = run(
        &dir,
        &["config", "validate", "-c", "open.yaml", "--allow-open"],
    );
    assert!(open.status.success(), "{}", text(&open.stderr));
    assert!(
        text(&open.stdout).contains("listen 0.0.0.0:4356"),
        "{}",
        text(&open.stdout)
    );
    // `--listen` wins over the file's, as for serve: judged at the address serve would use.
    let at = run(
        &dir,
        &[
            "config",
            "validate",
            "-c",
            "plain.yaml",
            "--listen",
            "0.0.0.0:0",
        ],
    );
    assert_eq!(at.status.code(), Some(1), "{}", text(&at.stderr));
    assert!(text(&at.stderr).contains("refusing to serve 0.0.0.0:0 without client keys"));
    let both = run(
        &dir,
        &[
            "config",
            "validate",
            "-c",
            "plain.yaml",
            "--listen",
            "0.0.0.0:0",
            "--allow-open",
        ],
    );
    assert!(both.status.success(), "{}", text(&both.stderr));
    assert!(text(&both.stdout).contains("listen 0.0.0.0:0"));
    let bad = run(&dir, &["config", "validate", "--listen", "nowhere"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--listen `nowhere` is not an address"));
}

#[test]
fn an_unset_client_key_variable_is_not_offered_a_default() {
    // A default written in the file would be a client key anyone could read or guess.
    let yaml = "skip_auth: false\nkeys:\n  - ${ROUTEPLANE_SURELY_UNSET}\n";
    let (path, validate, serve) = config_error(yaml, &[]);
    let want = format!(
        "{path}:3:5: keys: environment variable `ROUTEPLANE_SURELY_UNSET` is not set (export it \
         before starting routeplane, e.g. `export ROUTEPLANE_SURELY_UNSET=$(openssl rand -hex \
         32)`, and give clients the same value)\n"
    );
    assert_text(&validate, &format!("routeplane: invalid: {want}"));
    assert_text(&serve, &format!("routeplane: error: {want}"));
    // Elsewhere the default is still offered (`validate_refuses_an_unset_variable_as_serving_does`).
}

#[test]
fn validate_of_a_missing_or_unreadable_file_exits_1_as_its_help_says() {
    let dir = Dir::new();
    let help = text(&run(&dir, &["--help"]).stdout);
    assert!(help.contains("exit 0 when valid, 1 when not"), "{help}");
    let out = run(&dir, &["config", "validate", "-c", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_text(
        &text(&out.stderr),
        "routeplane: invalid: config file `nope.yaml` does not exist (create one with \
         `routeplane init -c nope.yaml`)\n",
    );
    // A directory where the file should be cannot be read: not valid either.
    std::fs::create_dir(dir.path().join("adir.yaml")).unwrap();
    let out = run(&dir, &["config", "validate", "-c", "adir.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("routeplane: invalid: cannot read config `adir.yaml`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_model_or_endpoint_written_twice_is_a_warning_at_its_line() {
    let (ok, stderr) = crate::support::validate(
        "providers:\n  ollama:\n    models:\n      - id: llama3.1:8b\n      - llama3.1:8b\n  vllm:\n    models: [q, q]\nmodels:\n  smart:\n    endpoints:\n      - ollama:llama3.1:8b\n      - {provider: ollama, service_id: llama3.1:8b}\n      - vllm:q\n",
        &[],
    );
    assert!(ok, "{stderr}");
    assert_text(
        &stderr,
        "routeplane: warning: routeplane.yaml:5:9: model `llama3.1:8b` is declared twice under \
         `providers.ollama`; keep one\n\
         routeplane: warning: routeplane.yaml:7:17: model `q` is declared twice under \
         `providers.vllm`; keep one\n\
         routeplane: warning: routeplane.yaml:12:9: endpoint `ollama:llama3.1:8b` is listed \
         twice in virtual model `smart`; list it once (`failover.retries` sets how often a \
         failed endpoint is asked again)\n",
    );
    // The same id under two providers is two models: nothing to say.
    let (ok, stderr) = crate::support::validate(
        "providers:\n  ollama:\n    models: [m]\n  vllm:\n    models: [m]\n",
        &[],
    );
    assert!(ok && stderr.is_empty(), "{stderr}");
}

#[test]
fn a_model_name_yaml_reads_as_a_boolean_or_a_number_is_told_to_be_quoted() {
    // YAML 1.1 reads `yes`, `on`, `y`, `off`… as booleans: a list of such names failed
    // with "invalid type: boolean `true`", a word the file does not hold.
    let cases = [
        ("models: [gpt, on]", "4:19", "on", "a boolean"),
        ("models: [Yes]", "4:14", "Yes", "a boolean"),
        ("models:\n      - n  # no\n", "5:9", "n", "a boolean"),
        ("models:\n      - 7\n", "5:9", "7", "a number"),
        ("models: [1.50]", "4:14", "1.50", "a number"),
    ];
    for (models, at, word, kind) in cases {
        let yaml =
            format!("providers:\n  mine:\n    api_base: http://127.0.0.1:9/v1\n    {models}\n");
        let (path, validate, serve) = config_error(&yaml, &[]);
        let want = format!(
            "{path}:{at}: providers.mine.models: `{word}` is {kind} to YAML, not a model \
             name: write it in quotes, as `\"{word}\"`\n"
        );
        assert_text(&validate, &format!("routeplane: invalid: {want}"));
        assert_text(&serve, &format!("routeplane: error: {want}"));
    }
    // Quoted, or as an `id`, each is the name written.
    let dir = Dir::new();
    let yaml = "providers:\n  mine:\n    api_base: http://127.0.0.1:9/v1\n    models: [\"on\", \"7\", {id: off, provider_model_id: no}]\n";
    dir.write("routeplane.yaml", &crate::support::proxy::hermetic(yaml));
    // Another port than the block's: one Routeplane serves at is no provider's.
    let out = run(&dir, &["models", "--listen", "127.0.0.1:7"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_text(
        &text(&out.stdout),
        "MODEL  PROVIDER  SOURCE    STATE\non     mine      declared  active\n7      mine      declared  active\noff    mine      declared  active\n",
    );
}

#[test]
fn an_api_protocol_that_names_no_protocol_is_refused_with_the_ones_there_are() {
    // `openai` was taken as chat_completions without a word, though OpenAI speaks two
    // protocols; no other spelling is guessed at either.
    let expected = "expected chat_completions, anthropic, responses or gemini";
    for (value, meant) in [
        (
            "openai",
            " (OpenAI's Chat Completions, which most servers speak, is `chat_completions`; its \
             Responses API is `responses`)",
        ),
        ("messages", "; did you mean `anthropic`?"),
        ("google", "; did you mean `gemini`?"),
        ("chat-completions", "; did you mean `chat_completions`?"),
        ("grpc", ""),
    ] {
        let yaml = format!(
            "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_protocol: {value}\n"
        );
        let (path, validate, serve) = config_error(&yaml, &[]);
        let want = format!("{path}:4:19: unknown protocol `{value}`; {expected}{meant}\n");
        assert_text(&validate, &format!("routeplane: invalid: {want}"));
        assert_text(&serve, &format!("routeplane: error: {want}"));
    }
    // In a list of rules too.
    let yaml = "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_protocol:\n      - \"claude-*\": messages\n      - \"*\": chat_completions\n";
    let (_, validate, _) = config_error(yaml, &[]);
    assert!(
        validate.contains(&format!(
            "unknown protocol `messages`; {expected}; did you mean `anthropic`?"
        )),
        "{validate}"
    );
}

#[test]
fn an_api_protocol_of_neither_shape_is_refused_at_its_value_with_one_message() {
    // Guards the hand-written reader of `api_protocol:` (it replaced an untagged enum
    // to save binary size): what it refuses, where, and in which words, are the enum's.
    let wanted = "expected a protocol (`chat_completions`, `anthropic`, `responses` or \
                  `gemini`) or a list of `\"glob\": protocol` entries";
    for (value, at) in [
        (" 5", "5:19: providers.x.api_protocol"),
        (
            " ${ROUTEPLANE_TEST_UNSET_PROTOCOL}",
            "5:19: providers.x.api_protocol",
        ),
        ("\n      - anthropic", "6:7: providers.x.api_protocol"),
        (
            "\n      \"claude-*\": anthropic",
            "6:7: providers.x.api_protocol.claude-*",
        ),
        (
            "\n      - \"claude-*\": 5\n      - \"*\": gemini",
            "6:7: providers.x.api_protocol.claude-*",
        ),
        ("\n      - 7: anthropic", "6:7: providers.x.api_protocol.7"),
    ] {
        let yaml = format!(
            "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    models: [m]\n    api_protocol:{value}\n"
        );
        let (path, validate, _) = config_error(&yaml, &[]);
        assert_text(
            &validate,
            &format!("routeplane: invalid: {path}:{at}: {wanted}\n"),
        );
    }
    // Taken: a list (a null entry is no rule), an empty one, nothing, a variable.
    let dir = Dir::new();
    for value in [
        "\n      -\n      - \"claude-*\": anthropic\n      - \"*\": ${ROUTEPLANE_TEST_UNSET_PROTOCOL:-gemini}",
        " []",
        " ~",
        " [{\"a*\": anthropic}, {\"*\": responses}]",
    ] {
        let path = dir.write(
            "ok.yaml",
            &format!("providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    models: [m]\n    api_protocol:{value}\n"),
        );
        let out = run(&dir, &["config", "validate", "-c", path.to_str().unwrap()]);
        assert!(out.status.success(), "{value}: {}", text(&out.stderr));
    }
}

#[test]
fn a_provider_at_routeplanes_own_address_is_refused_and_a_builtin_there_left_out() {
    // A block at the address clients use (`http://127.0.0.1:4356/v1`, copied from the
    // client lines) sent each request back to Routeplane, and again, until every worker
    // waited on itself and the client got nothing; `--listen 127.0.0.1:8080` had
    // llama.cpp's built-in find Routeplane's own model list there.
    let dir = Dir::new();
    let port = crate::support::MockUpstream::free_port();
    let at = format!("127.0.0.1:{port}");
    let block = format!("providers:\n  mine:\n    api_base: http://localhost:{port}/v1\n");
    dir.write(
        "routeplane.yaml",
        &crate::support::proxy::hermetic(&format!("{block}    models: [m]\n")),
    );
    let want = format!(
        "routeplane.yaml:3:5: `api_base` of `mine` is Routeplane's own address ({at}): its \
         requests would come back to it; set the model server's address, or listen elsewhere\n"
    );
    let out = run(&dir, &["config", "validate", "--listen", &at]);
    assert_eq!(out.status.code(), Some(1));
    assert_text(&text(&out.stderr), &format!("routeplane: invalid: {want}"));
    // Serving it stops at once (before, it served: bounded here, not waited out).
    let serve = crate::support::proxy::routeplane_in(dir.path())
        .args(["--listen", &at])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (ended, out) = crate::support::wait_output(serve, std::time::Duration::from_secs(5));
    assert!(ended, "served: {}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(1));
    assert_text(&text(&out.stderr), &format!("routeplane: error: {want}"));
    // llama.cpp's default port, taken by Routeplane: no llama.cpp is there.
    dir.write("routeplane.yaml", &crate::support::proxy::hermetic(""));
    let listed = |listen: &str| text(&run(&dir, &["providers", "--listen", listen]).stdout);
    let at_8080 = listed("127.0.0.1:8080");
    assert!(!at_8080.contains("llamacpp"), "{at_8080}");
    let at_8081 = listed("127.0.0.1:8081");
    assert!(at_8081.contains("llamacpp"), "{at_8081}");
}

#[test]
fn a_number_written_with_an_exponent_or_a_unit_is_read_or_told_how_to_write() {
    // `1e6` bytes was refused as "expected a whole number, got 1000000", and `60s`
    // did not say that the key's name already gives the unit.
    let dir = Dir::new();
    dir.write(
        "e.yaml",
        "limits:\n  max_body_bytes: 1e6\n  max_event_bytes: 2.0e6\n",
    );
    let out = run(&dir, &["config", "validate", "-c", "e.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (key, value) in [
        ("timeouts:\n  first_byte_secs", "60s"),
        ("failover:\n  backoff_ms", "500ms"),
        ("limits:\n  max_body_bytes", "64MiB"),
    ] {
        dir.write("u.yaml", &format!("{key}: {value}\n"));
        let out = run(&dir, &["config", "validate", "-c", "u.yaml"]);
        assert_eq!(out.status.code(), Some(1), "{value}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!(
                "got \"{value}\" (write the number alone: the key's name gives its unit)"
            )),
            "{err}"
        );
    }
    // A fraction is still no whole number, and a word is told as it was.
    dir.write("f.yaml", "workers: 1.5\nlimits:\n  max_body_bytes: lots\n");
    let err = text(&run(&dir, &["config", "validate", "-c", "f.yaml"]).stderr);
    assert!(err.contains("expected a whole number, got 1.5"), "{err}");
}
