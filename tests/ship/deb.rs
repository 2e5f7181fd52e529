//! The Debian package: what it installs (binary, unit, conffile), and its maintainer
//! scripts creating the user once and purging the state.

use super::*;

#[test]
fn debian_package_installs_binary_unit_conffile_and_creates_the_user() {
    let test = "debian_package_installs_binary_unit_conffile_and_creates_the_user";
    if !cfg!(target_arch = "x86_64") || !have("dpkg-deb", test) {
        return;
    }
    let dir = Dir::new();
    let out = run(Command::new(repo().join("dist/deb/build.sh"))
        .arg("amd64")
        .arg(static_binary())
        .arg(dir.path().join("out")));
    assert!(out.status.success(), "{}", text(&out));
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(deb.ends_with(format!(
        "routeplane_{}_amd64.deb",
        env!("CARGO_PKG_VERSION")
    )));
    let deb_s = deb.to_str().unwrap();

    let listing =
        String::from_utf8(run(Command::new("dpkg-deb").args(["-c", deb_s])).stdout).unwrap();
    for path in [
        "./usr/bin/routeplane",
        "./lib/systemd/system/routeplane.service",
        "./etc/routeplane/routeplane.yaml",
        "./usr/share/doc/routeplane/copyright",
        "./usr/share/man/man1/routeplane.1.gz",
    ] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
        assert!(line.contains("root/root"), "{line}");
    }
    let field = |name: &str| {
        String::from_utf8(run(Command::new("dpkg-deb").args(["-f", deb_s, name])).stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), "routeplane");
    assert_eq!(field("Architecture"), "amd64");
    assert_eq!(field("Depends"), "adduser");

    let control = dir.path().join("control");
    assert!(
        run(Command::new("dpkg-deb").args(["-e", deb_s]).arg(&control))
            .status
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/routeplane/routeplane.yaml\n"
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group"), "{postinst}");
    assert!(postinst.contains("dpkg-statoverride --update --add root routeplane 0640"));

    // Unpacked by dpkg into a throwaway root (configuring would run postinst on this host).
    let root = dir.path().join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    let unpack = run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .args(["--force-not-root", "--unpack", deb_s]));
    assert!(unpack.status.success(), "{}", text(&unpack));
    let status = run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["-s", "routeplane"]));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("Status: install ok unpacked"),
        "{}",
        text(&status)
    );
    let version = run(Command::new(root.join("usr/bin/routeplane")).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("routeplane {}\n", env!("CARGO_PKG_VERSION"))
    );
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/routeplane.service")).unwrap();
    assert_eq!(
        unit,
        repo_file("dist/systemd/routeplane.service").replace(
            "ExecStart=/usr/local/bin/routeplane ",
            "ExecStart=/usr/bin/routeplane "
        )
    );
    // A conffile waits beside its place until the package is configured.
    assert_eq!(
        std::fs::read_to_string(root.join("etc/routeplane/routeplane.yaml.dpkg-new")).unwrap(),
        repo_file("routeplane.example.yaml")
    );

    if have("lintian", test) {
        let lint = run(Command::new("lintian")
            .args(["--fail-on", "error,warning", "--pedantic", "--display-info"])
            .arg(&deb));
        assert!(lint.status.success(), "lintian: {}", text(&lint));
        let said = String::from_utf8_lossy(&lint.stdout);
        assert!(
            !said
                .lines()
                .any(|l| l.starts_with("E:") || l.starts_with("W:")),
            "{said}"
        );
    }
}

/// Runs a maintainer script from dist/deb with every command it calls replaced by a stub
/// that logs its arguments; `present` names the stubs that report "found" (exit 0) to
/// `getent` and `dpkg-statoverride --list`. PATH holds only the stubs, so nothing on this
/// machine is changed. Returns the log, one call per line.
fn maintainer_script(script: &str, args: &[&str], present: bool) -> String {
    let dir = Dir::new();
    let stubs = dir.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let log = dir.path().join("calls.log");
    let lookup_status = if present { 0 } else { 1 };
    for tool in [
        "getent",
        "adduser",
        "dpkg-statoverride",
        "deb-systemd-helper",
        "deb-systemd-invoke",
        "systemctl",
        "rm",
    ] {
        // `getent` and `dpkg-statoverride --list` look things up; every other call succeeds.
        let status = format!(
            "case \"{tool} $1\" in getent*|'dpkg-statoverride --list') exit {lookup_status};; esac\nexit 0\n"
        );
        let body = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\n{status}",
            log.display()
        );
        let path = stubs.join(tool);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let sh = which("sh").expect("sh");
    let out = run(Command::new(sh)
        .arg(repo().join("dist/deb").join(script))
        .args(args)
        .env_clear()
        .env("PATH", &stubs));
    assert!(out.status.success(), "{script} {args:?}: {}", text(&out));
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[test]
fn maintainer_scripts_create_the_user_once_and_purge_the_state() {
    let first = maintainer_script("postinst", &["configure"], false);
    for call in [
        "getent passwd routeplane",
        "adduser --system --group --quiet --home /var/lib/routeplane --no-create-home --gecos Routeplane LLM proxy routeplane",
        "dpkg-statoverride --update --add root routeplane 0640 /etc/routeplane/routeplane.yaml",
        "deb-systemd-helper unmask routeplane.service",
        "deb-systemd-helper enable routeplane.service",
    ] {
        assert!(first.lines().any(|l| l == call), "no `{call}` in:\n{first}");
    }
    // An upgrade: the user and the override exist and are left alone.
    let upgrade = maintainer_script("postinst", &["configure", "0.1.0"], true);
    assert!(!upgrade.contains("adduser"), "{upgrade}");
    assert!(!upgrade.contains("--add"), "{upgrade}");

    let purge = maintainer_script("postrm", &["purge"], true);
    for call in [
        "deb-systemd-helper purge routeplane.service",
        "dpkg-statoverride --remove /etc/routeplane/routeplane.yaml",
        "rm -rf /var/lib/routeplane",
    ] {
        assert!(purge.lines().any(|l| l == call), "no `{call}` in:\n{purge}");
    }
    let remove = maintainer_script("postrm", &["remove"], true);
    assert!(
        !remove.contains("rm -rf"),
        "remove keeps the state: {remove}"
    );
}
