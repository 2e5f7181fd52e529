//! Releases: the install script installs only a download whose checksum matches, and
//! the release metadata lists every crate in the binary with its licence.

use super::*;

/// A release site for install.sh: the asset and its `.sha256`, under `/latest/download`
/// and `/download/v9.9.9`. `corrupt` flips a byte of the asset after hashing it.
fn release_site(corrupt: bool) -> (FileServer, Vec<u8>) {
    let asset = format!("routeplane-{}-linux-musl", std::env::consts::ARCH);
    let good = b"#!/bin/sh\necho 'routeplane 9.9.9 (test asset)'\n".to_vec();
    let digest = ring::digest::digest(&ring::digest::SHA256, &good);
    let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let mut served = good.clone();
    if corrupt {
        served[20] ^= 0x20;
    }
    let mut files = Vec::new();
    for prefix in ["/latest/download", "/download/v9.9.9"] {
        files.push((format!("{prefix}/{asset}"), served.clone()));
        files.push((
            format!("{prefix}/{asset}.sha256"),
            format!("{hash}  {asset}\n").into_bytes(),
        ));
    }
    (FileServer::start(files), good)
}

fn install_sh(base: &str, dir: &Path, args: &[&str]) -> Output {
    run(Command::new("sh")
        .arg(repo().join("dist/install.sh"))
        .args(args)
        .env("ROUTEPLANE_BASE_URL", base)
        .env("ROUTEPLANE_INSTALL_DIR", dir.join("bin"))
        .env("HOME", dir)
        .env_remove("ROUTEPLANE_VERSION"))
}

#[test]
fn install_script_installs_a_verified_download_and_refuses_a_corrupted_one() {
    if !matches!(std::env::consts::ARCH, "x86_64" | "aarch64") || !have("sha256sum", "install") {
        return;
    }
    let (site, good) = release_site(false);
    let dir = Dir::new();
    let out = install_sh(&site.url(), dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let installed = dir.path().join("bin/routeplane");
    assert_eq!(std::fs::read(&installed).unwrap(), good);
    assert_eq!(
        std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("checksum ok"), "{said}");
    assert!(said.contains("routeplane 9.9.9 (test asset)"), "{said}");
    let pinned = install_sh(&site.url(), &dir.path().join("pinned"), &["v9.9.9"]);
    assert!(pinned.status.success(), "{}", text(&pinned));
    assert!(
        site.requested()
            .iter()
            .any(|p| p.starts_with("/download/v9.9.9/"))
    );

    let (bad_site, _) = release_site(true);
    let bad_dir = Dir::new();
    let out = install_sh(&bad_site.url(), bad_dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("checksum mismatch"), "{said}");
    assert!(!bad_dir.path().join("bin/routeplane").exists());
    assert!(!bad_dir.path().join("bin").exists() || walk(&bad_dir.path().join("bin")).is_empty());

    // Plain http is only for loopback: anything else is refused before any download.
    let out = install_sh("http://example.invalid/releases", bad_dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));
}

#[test]
fn release_metadata_lists_every_crate_in_the_binary_with_its_licence() {
    if !have(
        "python3",
        "release_metadata_lists_every_crate_in_the_binary_with_its_licence",
    ) {
        return;
    }
    let script = repo().join("scripts/release-meta.py");
    let target = "x86_64-unknown-linux-musl";
    let out = run(Command::new(&script)
        .args(["sbom", target])
        .current_dir(repo()));
    assert!(out.status.success(), "{}", text(&out));
    let bom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["metadata"]["component"]["name"], "routeplane");
    let components = bom["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for needed in [
        "rustls",
        "ring",
        "webpki-roots",
        "tiny_http",
        "serde_json",
        "lexopt",
    ] {
        assert!(names.contains(&needed), "{needed} missing from {names:?}");
    }
    // Proc macros run in the compiler, not in the binary.
    assert!(!names.contains(&"serde_derive"), "{names:?}");
    let lock = repo_file("Cargo.lock");
    for c in components {
        let purl = c["purl"].as_str().unwrap();
        assert_eq!(
            purl,
            format!(
                "pkg:cargo/{}@{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        );
        if c["name"] == "tiny_http" {
            continue; // vendored: no registry checksum
        }
        let hash = c["hashes"][0]["content"]
            .as_str()
            .unwrap_or_else(|| panic!("{c}"));
        assert!(lock.contains(&format!("checksum = \"{hash}\"")), "{purl}");
        assert!(c["licenses"][0]["expression"].is_string(), "{c}");
    }

    let out = run(Command::new(&script)
        .args(["notices", target])
        .current_dir(repo()));
    assert!(out.status.success(), "{}", text(&out));
    let notices = String::from_utf8_lossy(&out.stdout);
    for name in &names {
        assert!(
            notices.contains(&format!("\n{name} ")),
            "no notice for {name}"
        );
    }
    assert!(notices.contains("CDLA-Permissive-2.0"));
    assert!(notices.contains("Permission is hereby granted"));
}
