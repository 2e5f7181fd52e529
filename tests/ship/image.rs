//! The container image: the static binary answers alone in an empty root, and the
//! Dockerfile copies only that binary and the config that requires a key.

use super::*;

/// True when this test can chroot (as root) or map itself to root in a user namespace.
fn can_enter_a_root(test: &str) -> Option<Vec<String>> {
    if std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
        return Some(vec!["chroot".into()]);
    }
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .output();
    if probe.is_ok_and(|o| o.status.success()) {
        return Some(vec![
            "unshare".into(),
            "--user".into(),
            "--map-root-user".into(),
            "--root".into(),
        ]);
    }
    eprintln!("skipped {test}: neither root (chroot) nor unprivileged user namespaces (unshare)");
    None
}

#[test]
fn static_binary_answers_from_an_empty_root() {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!(
            "skipped static_binary_answers_from_an_empty_root: the static build is x86_64 Linux"
        );
        return;
    }
    let Some(enter) = can_enter_a_root("static_binary_answers_from_an_empty_root") else {
        return;
    };
    let up = MockUpstream::always(Reply::json(200, chat_answer("from the empty root")));
    let dir = Dir::new();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc/routeplane")).unwrap();
    std::fs::copy(static_binary(), root.join("routeplane")).unwrap();
    // The image's own config, plus a provider: the mock on the host's loopback.
    let config = format!(
        "{}providers:\n  local:\n    api_base: {}\n    models: [m]\n",
        repo_file("dist/docker/routeplane.yaml"),
        up.url()
    );
    std::fs::write(root.join("etc/routeplane/routeplane.yaml"), config).unwrap();
    let mut files: Vec<String> = walk(&root);
    files.sort();
    assert_eq!(files, ["etc/routeplane/routeplane.yaml", "routeplane"]);

    // The environment is cleared below, so the wrapper is found now.
    let wrapper = which(&enter[0]).expect("chroot or unshare is on PATH");
    let mut cmd = Command::new(wrapper);
    cmd.args(&enter[1..])
        .arg(&root)
        .args([
            "/routeplane",
            "serve",
            "-c",
            "/etc/routeplane/routeplane.yaml",
        ])
        // As in the image, on every interface; port 0 instead of 4356 to avoid clashes.
        .args(["--listen", "0.0.0.0:0"])
        .env_clear()
        .env("ROUTEPLANE_KEY", "test-client-key");
    let p = Proxy::spawn(cmd, dir);
    p.wait_log("listening on http://0.0.0.0:");
    let health = p.get("/health");
    assert_eq!(health.status, 200, "{}", health.body);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let refused = p.post("/v1/chat/completions", body.clone());
    assert_eq!(refused.status, 401, "the image's config requires a key");
    let resp = p.send(
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Bearer test-client-key")],
        body.to_string().as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        "from the empty root"
    );
    assert_eq!(up.count(), 1);
}

#[test]
fn dockerfile_holds_only_the_binary_and_the_keyed_config() {
    let docker = repo_file("Dockerfile");
    let instructions: Vec<&str> = docker
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(instructions[0], "FROM scratch");
    let copies: Vec<&str> = instructions
        .iter()
        .filter(|l| l.starts_with("COPY"))
        .copied()
        .collect();
    assert_eq!(
        copies,
        [
            "COPY --chmod=0755 target/docker/routeplane-${TARGETARCH} /routeplane",
            "COPY dist/docker/routeplane.yaml /etc/routeplane/routeplane.yaml",
        ]
    );
    assert!(!instructions.iter().any(|l| l.starts_with("RUN")));
    let config = repo_file("dist/docker/routeplane.yaml");
    assert!(config.contains("listen: 0.0.0.0:4356") && config.contains("skip_auth: false"));
    let ignore = repo_file(".dockerignore");
    assert!(ignore.contains("!target/docker/routeplane-*"));
    assert!(ignore.contains("!dist/docker/routeplane.yaml"));
}
