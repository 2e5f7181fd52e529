//! Documentation that is executed: the example config and every yaml block of the README.

use std::process::Command;

use crate::support::Dir;
use crate::support::proxy::bin;

fn validate(dir: &Dir, yaml: &str) -> (bool, String) {
    let path = dir.write("doc.yaml", yaml);
    let out = Command::new(bin())
        .args(["config", "validate", "-c", path.to_str().unwrap()])
        .output()
        .expect("run routeplane");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn example_config_is_valid_and_is_what_init_writes() {
    let dir = Dir::new();
    let example = include_str!("../routeplane.example.yaml");
    let (ok, err) = validate(&dir, example);
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
    let dir = Dir::new();
    let example = include_str!("../routeplane.example.yaml");
    let uncommented: String = example
        .lines()
        .filter(|l| !l.starts_with("# ") && *l != "#")
        .map(|l| {
            let l = l.strip_prefix('#').unwrap_or(l);
            // Drop trailing explanations after the value.
            match l.find("  #") {
                Some(i) => &l[..i],
                None => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (ok, err) = validate(&dir, &uncommented);
    assert!(ok, "{err}\n{uncommented}");
}

#[test]
fn readme_yaml_blocks_are_valid() {
    let dir = Dir::new();
    let readme = include_str!("../README.md");
    let mut blocks = 0;
    for block in readme.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap();
        let (ok, err) = validate(&dir, yaml);
        assert!(ok, "README block is invalid: {err}\n{yaml}");
        blocks += 1;
    }
    assert!(blocks > 0, "the README shows at least one config");
}
