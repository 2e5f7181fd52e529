//! Documentation that is executed: the example config and every yaml block of the README.

use std::process::Command;

use crate::support::proxy::bin;
use crate::support::{Dir, validate};

#[test]
fn example_config_is_valid_and_is_what_init_writes() {
    let dir = Dir::new();
    let example = include_str!("../routeplane.example.yaml");
    let (ok, err) = validate(example, &[]);
    assert!(ok, "{err}");
    let out = Command::new(bin())
        .arg("init")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(dir.read("routeplane.yaml"), example);
}

#[test]
fn example_config_is_valid_with_every_comment_removed() {
    // The commented examples are real config: uncommenting them must give a valid file.
    let example = include_str!("../routeplane.example.yaml");
    // Commented config is `# key:` or a line indented under one; prose is the rest.
    let config = |rest: &str| {
        rest.starts_with(' ')
            || rest.split_once(':').is_some_and(|(key, _)| {
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
    };
    let uncommented: String = example
        .lines()
        .filter_map(|l| match l.strip_prefix('#') {
            None => Some(l),
            Some(rest) => rest.strip_prefix(' ').filter(|rest| config(rest)),
        })
        .map(|l| match l.find("  #") {
            // Drop trailing explanations after the value.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    for key in ["keys:", "limits:", "providers:", "  openrouter:", "models:"] {
        assert!(
            uncommented.contains(&format!("\n{key}\n")),
            "{key} is uncommented:\n{uncommented}"
        );
    }
    // The `keys:` example reads ROUTEPLANE_KEY, and says to export it first; the
    // others have fallbacks.
    let (ok, err) = validate(&uncommented, &[("ROUTEPLANE_KEY", "k1")]);
    assert!(ok, "{err}\n{uncommented}");
    let (ok, err) = validate(&uncommented, &[("ROUTEPLANE_KEY", "")]);
    assert!(
        !ok && err.contains("environment variable `ROUTEPLANE_KEY` is empty"),
        "{err}"
    );
}

#[test]
fn readme_yaml_blocks_are_valid() {
    let readme = include_str!("../README.md");
    let mut blocks = 0;
    for block in readme.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap();
        let (ok, err) = validate(yaml, &[]);
        assert!(ok, "README block is invalid: {err}\n{yaml}");
        blocks += 1;
    }
    assert!(blocks > 0, "the README shows at least one config");
}

#[test]
fn readme_names_every_result_the_logs_tried_field_can_show() {
    // The words are read from the code that writes them, so a new one cannot be
    // added without the README's table of log fields saying what it means.
    let readme = include_str!("../README.md");
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `tried` |"))
        .expect("the README's log table has a `tried` row");
    let failed = include_str!("../src/relay/failed.rs");
    let body = failed
        .split("fn short_reason")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("short_reason writes the words");
    let mut words = Vec::new();
    for piece in body.split('"').skip(1).step_by(2) {
        if let Some(suffix) = piece.strip_prefix("{}:") {
            // A name within the word (`400:no_stop`) is said as the README says it.
            words.push(format!("STATUS:{}", suffix.replace("{}", "PARAM")));
        } else if piece.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            words.push(piece.to_string());
        }
    }
    // An attempt that ended without an answer or a failure (`client_closed`, `stopped`).
    let attempt = include_str!("../src/relay/attempt.rs");
    let unanswered = attempt
        .split("fn unanswered")
        .nth(1)
        .and_then(|rest| rest.split("\n    }\n").next())
        .expect("Run::unanswered, in relay/attempt.rs, writes the other words");
    let failures = words.len();
    for piece in unanswered.split("Cow::Borrowed(\"").skip(1) {
        words.push(piece.split('"').next().unwrap().to_string());
    }
    assert!(failures > 10 && words.len() > failures, "{words:?}");
    let missing: Vec<_> = words
        .iter()
        .filter(|w| !row.contains(&format!("`{w}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "the README's `tried` row lacks {missing:?}"
    );
}
