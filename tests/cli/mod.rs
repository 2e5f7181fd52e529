//! The command line, through the real binary: every command's help and misuse, and
//! what it does when its reader has gone. `init` in init.rs, `config validate` and the
//! config errors a start shares with it in config.rs, `route`, `models` and
//! `providers` in lists.rs.

mod config;
mod init;
mod lists;

use std::process::{Output, Stdio};

use crate::support::{Dir, assert_text};

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
fn a_mistyped_option_is_asked_about_as_a_mistyped_command_is() {
    // `serv` was asked "did you mean `serve`?", but `--confg` was only an invalid option.
    let dir = Dir::new();
    for (args, meant) in [
        (
            &["--confg", "x.yaml"][..],
            "--confg'; did you mean `--config`?",
        ),
        (&["models", "--jsn"], "--jsn'; did you mean `--json`?"),
        (&["init", "--forse"], "--forse'; did you mean `--force`?"),
    ] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_text(
            &text(&out.stderr),
            &format!("routeplane: error: invalid option '{meant} (see --help)\n"),
        );
    }
    // Nothing near: said as before.
    let out = run(&dir, &["--verbose"]);
    assert_text(
        &text(&out.stderr),
        "routeplane: error: invalid option '--verbose' (see --help)\n",
    );
}

#[test]
fn status_version_and_a_port_flag_are_pointed_at_what_routeplane_has() {
    // A newcomer's guesses from other servers: `status` and `version` were an unknown
    // command, and `--port 5000` or `--listen 5000` an error that did not say the way.
    let dir = Dir::new();
    for (args, said) in [
        (
            &["status"][..],
            "unknown command `status`; a running routeplane shows its status at \
             http://127.0.0.1:4356/ (the default: no config file was found) in a browser, \
             `/status.json` for scripts; `routeplane providers` lists each provider's state, \
             `routeplane usage` what was served",
        ),
        (
            &["version"],
            "unknown command `version`; `routeplane --version` prints the version",
        ),
        (
            &["--port", "5000"],
            "there is no --port: pass --listen 127.0.0.1:PORT, or set `listen:` in \
             routeplane.yaml",
        ),
        (
            &["serve", "-p", "5000"],
            "there is no --port: pass --listen 127.0.0.1:PORT, or set `listen:` in \
             routeplane.yaml",
        ),
        (
            &["--listen", "5000"],
            "--listen `5000` is not an address like 127.0.0.1:4356; for port 5000 on this \
             machine only, pass --listen 127.0.0.1:5000",
        ),
        (
            &["serve", "--listen", ":5000"],
            "--listen `:5000` is not an address like 127.0.0.1:4356; for port 5000 on this \
             machine only, pass --listen 127.0.0.1:5000",
        ),
    ] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_text(
            &text(&out.stderr),
            &format!("routeplane: error: {said} (see --help)\n"),
        );
    }
    // Not a port: said as before.
    let out = run(&dir, &["--listen", "localhost"]);
    assert_text(
        &text(&out.stderr),
        "routeplane: error: --listen `localhost` is not an address like 127.0.0.1:4356 \
         (see --help)\n",
    );
}

#[test]
fn status_is_pointed_at_the_address_the_config_gives() {
    // It said "http://127.0.0.1:4356/ by default" while the file read said `listen:`
    // elsewhere, where the page is.
    let dir = Dir::new();
    let status = |dir: &Dir, args: &[&str]| {
        let err = text(&run(dir, args).stderr);
        let at = err.find(" at ").map_or(0, |i| i + 4);
        let end = err.find(" in a browser").unwrap_or(err.len());
        err[at..end].to_string()
    };
    dir.write("routeplane.yaml", "listen: 127.0.0.1:7411\n");
    assert_eq!(
        status(&dir, &["status"]),
        "http://127.0.0.1:7411/ (the `listen` of routeplane.yaml)"
    );
    let other = dir.write("other.yaml", "skip_auth: true\n");
    let other = other.to_str().unwrap();
    assert_eq!(
        status(&dir, &["-c", other, "status"]),
        format!("http://127.0.0.1:4356/ (the default: {other} sets no `listen`)")
    );
    assert_eq!(
        status(&dir, &["--listen", "127.0.0.1:7412", "status"]),
        "http://127.0.0.1:7412/ (--listen)"
    );
    dir.write("routeplane.yaml", "listen: nowhere\n");
    assert_eq!(
        status(&dir, &["health"]),
        "http://127.0.0.1:4356/ (the default: routeplane.yaml is not valid, `routeplane \
         config validate` says why)"
    );
}

#[test]
fn a_config_file_named_without_c_is_pointed_at_the_flag() {
    // As other tools take a file: each was a bare "unexpected argument" or "unknown
    // command" that did not say how a file is named.
    let dir = Dir::new();
    for (args, said) in [
        (
            &["config", "validate", "my.yaml"][..],
            "unexpected argument \"my.yaml\"",
        ),
        (&["init", "my.yaml"], "unexpected argument \"my.yaml\""),
        (&["serve", "my.yml"], "unexpected argument \"my.yml\""),
        (&["my.yaml"], "unknown command `my.yaml`"),
    ] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let file = args[args.len() - 1];
        assert_text(
            &text(&out.stderr),
            &format!(
                "routeplane: error: {said}; name a config file with -c: `-c {file}` (see --help)\n"
            ),
        );
    }
    assert!(!dir.path().join("my.yaml").exists());
}
