//! The command line, through the real binary: init, config validate, route, help.

use std::process::{Command, Output, Stdio};

use crate::support::proxy::{bin, isolate};
use crate::support::{Dir, assert_text, config_error};

fn run(dir: &Dir, args: &[&str]) -> Output {
    crate::support::proxy::routeplane_in(dir.path())
        .args(args)
        .output()
        .expect("run routeplane")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_then_validate_succeeds() {
    let dir = Dir::new();
    let out = run(&dir, &["init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Where else `routeplane` looks: a file here is read only here.
    let user = dir.path().join("config/routeplane/routeplane.yaml");
    let user = user.display();
    assert_text(
        &text(&out.stdout),
        &format!(
            "wrote routeplane.yaml; check it with `routeplane config validate`, then run \
             `routeplane`\nrouteplane reads it when started in this directory; the file it \
             reads from any directory is {user} (`routeplane init -c {user}` writes one there)\n"
        ),
    );
    assert!(dir.read("routeplane.yaml").contains("skip_auth: true"));
    let out = run(&dir, &["config", "validate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("routeplane.yaml: valid"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn init_elsewhere_prints_commands_that_find_the_file_it_wrote() {
    let dir = Dir::new();
    // A file in the default place too: the commands must not find that one instead.
    dir.write("routeplane.yaml", "listen: 127.0.0.1:1\n");
    for (path, shown) in [
        ("sub/routeplane.yaml", "sub/routeplane.yaml"),
        ("my dir/it's.yaml", "'my dir/it'\\''s.yaml'"),
    ] {
        let out = run(&dir, &["init", "-c", path]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        assert_text(
            &said,
            &format!(
                "wrote {path}; check it with `routeplane config validate -c {shown}`, then run \
                 `routeplane -c {shown}`\n"
            ),
        );
        // The printed command, run by a shell, checks the new file.
        let validate = said.split('`').nth(1).unwrap();
        let bin_dir = std::path::Path::new(bin()).parent().unwrap();
        let out = isolate(&mut Command::new("sh"), dir.path())
            .args(["-c", validate])
            .current_dir(dir.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin_dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let file = std::path::Path::new(path).display().to_string();
        assert!(
            text(&out.stdout).starts_with(&format!("{file}: valid")),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn init_refuses_to_overwrite() {
    let dir = Dir::new();
    dir.write("routeplane.yaml", "listen: 127.0.0.1:1\n");
    let out = run(&dir, &["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert_text(
        &text(&out.stderr),
        "routeplane: error: `routeplane.yaml` already exists; pass --force to overwrite it (see --help)\n",
    );
    assert_eq!(dir.read("routeplane.yaml"), "listen: 127.0.0.1:1\n");
    let out = run(&dir, &["init", "--force"]);
    assert!(out.status.success());
    assert!(dir.read("routeplane.yaml").contains("skip_auth: true"));
}

#[test]
fn init_at_a_directory_names_the_file_to_write_in_it() {
    // It was told to pass --force, which then failed: `Is a directory`.
    let dir = Dir::new();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    for args in [
        &["init", "-c", "conf"][..],
        &["init", "--force", "-c", "conf"],
    ] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_text(
            &text(&out.stderr),
            "routeplane: error: `conf` is a directory; name the file to write in it: \
             `routeplane init -c conf/routeplane.yaml` (see --help)\n",
        );
    }
    let out = run(&dir, &["init", "-c", "conf/routeplane.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn init_under_a_file_says_the_file_is_not_a_directory() {
    // It said "cannot create `notes`: File exists", of a file the user meant to write in.
    let dir = Dir::new();
    dir.write("notes", "mine\n");
    for (args, file) in [
        (
            &["init", "-c", "notes/routeplane.yaml"][..],
            "notes/routeplane.yaml",
        ),
        (
            &["init", "--force", "-c", "notes/sub/x.yaml"],
            "notes/sub/x.yaml",
        ),
    ] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_text(
            &text(&out.stderr),
            &format!(
                "routeplane: error: `notes` is a file, not a directory, so `{file}` cannot be \
                 written; name another path with -c (see --help)\n"
            ),
        );
    }
    assert_eq!(dir.read("notes"), "mine\n");
}

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
    let yaml = "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    api_key: ${ROUTEPLANE_SURELY_UNSET}\n";
    let (path, validate, serve) = config_error(yaml, &[]);
    let want = format!(
        "{path}:4:14: providers.x.api_key: environment variable `ROUTEPLANE_SURELY_UNSET` is not \
         set (set it, or write `${{ROUTEPLANE_SURELY_UNSET:-default}}`)\n"
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
fn every_command_has_help_and_misuse_exits_2() {
    let dir = Dir::new();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["init", "--help"],
        &["config", "validate", "--help"],
        &["route", "--help"],
        &["models", "--help"],
        &["providers", "--help"],
        &["login", "--help"],
        &["logout", "--help"],
        &["usage", "--help"],
        &["service", "--help"],
    ] {
        let out = run(&dir, args);
        assert!(out.status.success(), "{args:?}");
        let help = text(&out.stdout);
        assert!(help.contains("Usage: routeplane"), "{args:?}: {help}");
        // Each option's words start in one column, and so do their continuation lines.
        let columns: std::collections::BTreeSet<usize> = help
            .lines()
            .skip_while(|l| !l.starts_with("Options:"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| {
                let indent = l.len() - l.trim_start().len();
                let option = l[indent..].starts_with('-');
                let from = if option {
                    indent + l[indent..].find("  ")?
                } else {
                    0
                };
                Some(from + l[from..].find(|c: char| c != ' ')?)
            })
            .collect();
        assert!(columns.len() <= 1, "{args:?}: columns {columns:?}:\n{help}");
    }
    let out = run(&dir, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert_text(
        &text(&out.stderr),
        "routeplane: error: unknown command `frobnicate` (see --help)\n",
    );
    // `help COMMAND`, as git and cargo take it, is that command's help, not the list.
    for (asked, same_as) in [
        (&["help", "login"][..], &["login", "--help"][..]),
        (&["help", "config"], &["config", "validate", "--help"]),
        (&["help", "service"], &["service", "install", "--help"]),
        (&["help"], &["--help"]),
    ] {
        let out = run(&dir, asked);
        assert!(out.status.success(), "{asked:?}: {}", text(&out.stderr));
        assert_text(&text(&out.stdout), &text(&run(&dir, same_as).stdout));
    }
    let out = run(&dir, &["help", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert_text(
        &text(&out.stderr),
        "routeplane: error: unknown command `frobnicate` (see --help)\n",
    );
}

#[test]
fn every_printing_command_exits_0_quietly_when_its_reader_has_gone() {
    let dir = Dir::new();
    dir.write(
        "routeplane.yaml",
        "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n    models: [m]\n",
    );
    std::fs::create_dir_all(dir.path().join(".local/state/routeplane")).unwrap();
    dir.write(
        ".local/state/routeplane/usage.jsonl",
        &format!(
            "{}\n",
            serde_json::json!({"time": "2026-12-02T03:40:12.123Z", "inbound": "chat_completions",
                "model": "x:m", "served_by": "x:m", "status": 200, "stream": false,
                "attempts": 1, "rescues": 0, "failed": [], "ttfb_ms": 1.0, "ttft_ms": 1.0,
                "total_ms": 2.0, "tokens": {"input": 1, "output": 1, "cached_input": null,
                "reasoning": null}})
        ),
    );
    for args in [
        &["--version"][..],
        &["--help"],
        &["route", "--help"],
        &["models"],
        &["models", "--json"],
        &["providers"],
        &["providers", "--json"],
        &["usage"],
        &["usage", "--json"],
        &["route", "x:m"],
        &["config", "validate"],
        &["init", "-c", "new.yaml"],
    ] {
        // `routeplane models | head -1` once head has gone: every write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = crate::support::proxy::routeplane_in(dir.path())
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_text(&text(&out.stderr), "");
    }
}

#[test]
fn non_loopback_without_keys_refuses_to_start() {
    let dir = Dir::new();
    let out = run(&dir, &["--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("refusing to serve 0.0.0.0:0 without client keys"));
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
fn init_writes_the_config_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    // Upstream keys may go in it: 0600 whatever the umask, new or replaced with --force.
    let init = |args: &str| {
        isolate(&mut Command::new("sh"), dir.path())
            .args(["-c", &format!("umask 000; exec \"$0\" init {args}"), bin()])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = init("");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode("routeplane.yaml"), 0o600);
    dir.write("old.yaml", "workers: 8\n");
    std::fs::set_permissions(
        dir.path().join("old.yaml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = init("-c old.yaml --force");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode("old.yaml"), 0o600);
    assert!(dir.read("old.yaml").contains("skip_auth: true"));
}

#[test]
fn an_unknown_command_from_another_tool_is_pointed_at_ours() {
    let dir = Dir::new();
    for (word, meant) in [
        (
            "list",
            "`routeplane models` lists the model ids clients can name, `routeplane providers` \
             the providers",
        ),
        ("start", "`routeplane serve` (or plain `routeplane`) serves"),
        (
            "validate",
            "`routeplane config validate` checks a config file",
        ),
        ("provider", "did you mean `providers`?"),
    ] {
        let out = run(&dir, &[word]);
        assert_eq!(out.status.code(), Some(2), "{word}");
        assert_text(
            &text(&out.stderr),
            &format!("routeplane: error: unknown command `{word}`; {meant} (see --help)\n"),
        );
    }
    // `help` is the help, as `--help` is.
    let out = run(&dir, &["help"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), text(&run(&dir, &["--help"]).stdout));
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
    let out = run(&dir, &["models", "--listen", "127.0.0.1:9"]);
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
