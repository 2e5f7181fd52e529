//! Shipping: the systemd units and `service install`, readiness through `$NOTIFY_SOCKET`,
//! the static binary alone in an empty root (the container image's stand-in), the Debian
//! package, the install script and the release metadata.
//!
//! This file holds the service (the units, `service install`, readiness) and the shared
//! helpers; the image is in `image.rs`, the Debian package and its maintainer scripts in
//! `deb.rs`, the install script and the release metadata in `release.rs`.
//!
//! Tools the machine may lack are installed by `make check` (systemd-analyze, dpkg-deb);
//! lintian is used when present (`make deb` installs it). A test without its tool says
//! so and skips.

mod deb;
mod image;
mod release;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;

use crate::support::files::FileServer;
use crate::support::proxy::bin;
use crate::support::upstream::chat_answer;
use crate::support::{Dir, MockUpstream, Proxy, Reply};

/// The repository root.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository as text.
fn repo_file(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Where `tool` is on PATH.
fn which(tool: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", tool])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && path.starts_with('/')).then(|| PathBuf::from(path))
}

/// True when `tool` is on PATH; otherwise prints why the calling test skips.
fn have(tool: &str, test: &str) -> bool {
    let found = which(tool).is_some();
    if !found {
        eprintln!("skipped {test}: `{tool}` is not installed (make check installs it)");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The shipped unit as `service install` writes it for the binary under test.
fn expected_unit(file: &str, default_bin: &str) -> String {
    let bin = std::fs::canonicalize(bin()).unwrap();
    repo_file(file).replacen(
        &format!("ExecStart={default_bin} "),
        &format!("ExecStart={} ", bin.display()),
        1,
    )
}

/// `routeplane service install ARGS` with HOME in `home`.
fn service_install(home: &Path, args: &[&str]) -> Output {
    run(Command::new(bin())
        .arg("service")
        .arg("install")
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME"))
}

#[test]
fn service_install_writes_the_shipped_units_and_refuses_to_overwrite() {
    let dir = Dir::new();
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();
    let out = service_install(dir.path(), &["--root", root_s]);
    assert!(out.status.success(), "{}", text(&out));
    let unit = root.join("etc/systemd/system/routeplane.service");
    crate::support::assert_text(
        &std::fs::read_to_string(&unit).unwrap(),
        &expected_unit(
            "dist/systemd/routeplane.service",
            "/usr/local/bin/routeplane",
        ),
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/routeplane/routeplane.yaml")).unwrap(),
        repo_file("routeplane.example.yaml")
    );
    let said = String::from_utf8_lossy(&out.stdout);
    for line in [
        "wrote ",
        "systemctl daemon-reload",
        "systemctl enable --now routeplane",
        "useradd --system",
    ] {
        assert!(said.contains(line), "no {line:?} in:\n{said}");
    }
    // The service's user can log in only once systemd has made its state directory, at
    // the first start: the login lines come after the start, and say so.
    let start = said.find("systemctl enable --now routeplane").unwrap();
    assert!(
        said[start..].contains(
            "The service keeps its logins in /var/lib/routeplane, which systemd creates \
             (owned by routeplane) when the service first starts. Once it has, to log it in to \
             a subscription:\n  sudo -u routeplane env XDG_DATA_HOME=/var/lib routeplane login \
             anthropic\n  sudo -u routeplane env XDG_DATA_HOME=/var/lib routeplane login \
             openai-codex --device\n"
        ),
        "{said}"
    );

    // Again: nothing changes, and the edited config is kept.
    std::fs::write(
        root.join("etc/routeplane/routeplane.yaml"),
        "skip_auth: true\n",
    )
    .unwrap();
    let again = service_install(dir.path(), &["--root", root_s]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("unchanged"));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/routeplane/routeplane.yaml")).unwrap(),
        "skip_auth: true\n"
    );

    // A unit edited by hand is not overwritten without --force.
    std::fs::write(&unit, "[Service]\nExecStart=/bin/true\n").unwrap();
    let refused = service_install(dir.path(), &["--root", root_s]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("pass --force to overwrite it"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(&unit).unwrap(),
        "[Service]\nExecStart=/bin/true\n"
    );
    let forced = service_install(dir.path(), &["--root", root_s, "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert_eq!(
        std::fs::read_to_string(&unit).unwrap(),
        expected_unit(
            "dist/systemd/routeplane.service",
            "/usr/local/bin/routeplane"
        )
    );

    // The user unit goes under the home, with the directories it may write.
    let home = dir.path().join("home");
    let user = service_install(&home, &["--user", "--root", root_s]);
    assert!(user.status.success(), "{}", text(&user));
    let inside = root.join(home.strip_prefix("/").unwrap());
    crate::support::assert_text(
        &std::fs::read_to_string(inside.join(".config/systemd/user/routeplane.service")).unwrap(),
        &expected_unit(
            "dist/systemd/routeplane.user.service",
            "%h/.local/bin/routeplane",
        ),
    );
    // The user's own config is private, as `init` writes it; the system one is shared
    // with the service's group only.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&inside.join(".config/routeplane/routeplane.yaml")),
        0o600
    );
    assert_eq!(mode(&root.join("etc/routeplane/routeplane.yaml")), 0o640);
    for d in [".local/share/routeplane", ".local/state/routeplane"] {
        assert!(inside.join(d).is_dir(), "{d} was not created");
    }
    let said = String::from_utf8_lossy(&user.stdout);
    assert!(said.contains("systemctl --user enable --now routeplane"));
    // Keys exported in the installing shell never reach the service: said where they go.
    assert!(
        said.contains(&format!(
            "put upstream keys in {} as KEY=value lines",
            home.join(".config/routeplane/env").display()
        )),
        "{said}"
    );
}

#[test]
fn service_install_writes_the_config_named_with_c_into_the_unit() {
    // `routeplane -c X service install` wrote a unit that read /etc/routeplane anyway.
    let dir = Dir::new();
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();
    let config = dir.path().join("conf dir/rp.yaml");
    let out = run(Command::new(bin())
        .args([
            "-c",
            "conf dir/rp.yaml",
            "service",
            "install",
            "--root",
            root_s,
        ])
        .current_dir(dir.path())
        .env("HOME", dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    crate::support::assert_text(
        &std::fs::read_to_string(root.join("etc/systemd/system/routeplane.service")).unwrap(),
        &expected_unit(
            "dist/systemd/routeplane.service",
            "/usr/local/bin/routeplane",
        )
        .replacen(
            " -c /etc/routeplane/routeplane.yaml",
            &format!(" -c \"{}\"", config.display()),
            1,
        ),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!(
            "the service reads its config from {}\n",
            config.display()
        )),
        "{said}"
    );
    // A starter where it names, when there is none (inside --root, as the unit is).
    assert_eq!(
        std::fs::read_to_string(root.join(config.strip_prefix("/").unwrap())).unwrap(),
        repo_file("routeplane.example.yaml")
    );
    // Wherever the checkout is, a config the unit's sandbox hides is warned about.
    let warned = String::from_utf8_lossy(&out.stderr);
    let hidden = ["/tmp/", "/var/tmp/", "/home/", "/root/", "/run/user/"]
        .iter()
        .any(|d| config.starts_with(d));
    assert_eq!(
        warned.contains(&format!(
            "routeplane: warning: {} is under /",
            config.display()
        )),
        hidden,
        "{warned}"
    );
    // Named: the directory and the setting that hides it (the starter goes inside --root).
    for (config, under, setting) in [
        ("/tmp/rp-test/rp.yaml", "/tmp", "PrivateTmp=yes"),
        ("/home/someone/rp.yaml", "/home", "ProtectHome=yes"),
    ] {
        let root = dir.path().join(format!("hidden-{}", &under[1..]));
        let root = root.to_str().unwrap();
        let out = service_install(dir.path(), &["--root", root, "-c", config]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!(
                "routeplane: warning: {config} is under {under}, which the unit hides from the \
                 service ({setting}): it could not read its config"
            )),
            "{}",
            text(&out)
        );
    }

    // After the command too, for the user unit; an existing file is kept.
    let home = dir.path().join("home");
    let kept = root.join("srv/rp.yaml");
    std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
    std::fs::write(&kept, "skip_auth: true\n").unwrap();
    let user = service_install(&home, &["--user", "--root", root_s, "-c", "/srv/rp.yaml"]);
    assert!(user.status.success(), "{}", text(&user));
    let inside = root.join(home.strip_prefix("/").unwrap());
    crate::support::assert_text(
        &std::fs::read_to_string(inside.join(".config/systemd/user/routeplane.service")).unwrap(),
        &expected_unit(
            "dist/systemd/routeplane.user.service",
            "%h/.local/bin/routeplane",
        )
        .replacen(" -c %E/routeplane/routeplane.yaml", " -c /srv/rp.yaml", 1),
    );
    assert!(
        String::from_utf8_lossy(&user.stdout)
            .contains("the service reads its config from /srv/rp.yaml\n"),
        "{}",
        text(&user)
    );
    assert!(
        !String::from_utf8_lossy(&user.stderr).contains("config"),
        "{}",
        text(&user)
    );
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "skip_auth: true\n");
    assert!(!inside.join(".config/routeplane/routeplane.yaml").exists());

    // Without -c, the unit's own config, said as well.
    let plain = service_install(&home, &["--root", dir.path().join("r2").to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&plain.stdout)
            .contains("the service reads its config from /etc/routeplane/routeplane.yaml\n"),
        "{}",
        text(&plain)
    );
}

#[test]
fn units_pass_systemd_analyze_verify_and_score_well() {
    if !have(
        "systemd-analyze",
        "units_pass_systemd_analyze_verify_and_score_well",
    ) {
        return;
    }
    let dir = Dir::new();
    let root = dir.path().join("root");
    let home = dir.path().join("home");
    let runtime = dir.path().join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let root_s = root.to_str().unwrap();
    assert!(service_install(&home, &["--root", root_s]).status.success());
    assert!(
        service_install(&home, &["--user", "--root", root_s])
            .status
            .success()
    );
    let system = root.join("etc/systemd/system/routeplane.service");
    let user = root
        .join(home.strip_prefix("/").unwrap())
        .join(".config/systemd/user/routeplane.service");
    for (unit, scope, worst) in [(&system, None, 2.0), (&user, Some("--user"), 2.5)] {
        let analyze = |args: &[&str]| {
            run(Command::new("systemd-analyze")
                .args(scope)
                .args(args)
                .arg(unit)
                .env("XDG_RUNTIME_DIR", &runtime)
                .env("SYSTEMD_LOG_COLOR", "0"))
        };
        // The man page the units name comes with the Debian package only.
        let verify = analyze(&["verify", "--man=no"]);
        let said = text(&verify);
        assert!(verify.status.success(), "{}: {said}", unit.display());
        assert!(
            !said.contains("routeplane"),
            "systemd-analyze verify complains about {}: {said}",
            unit.display()
        );
        let security = analyze(&["security", "--offline=true", "--no-pager"]);
        let said = text(&security);
        let Some(score) = said
            .lines()
            .find_map(|l| l.split("Overall exposure level for").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<f64>().ok())
        else {
            eprintln!("systemd-analyze security --offline did not score the unit: {said}");
            continue;
        };
        assert!(
            score <= worst,
            "{} exposure {score} is above {worst}: {said}",
            unit.display()
        );
    }
}

/// Reads one notification, waiting up to 10 s.
fn next_state(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn readiness_reload_and_stop_reach_the_notify_socket() {
    // The first detection is slow: READY=1 must still come after it.
    let up = MockUpstream::start(|req| {
        if req.path.ends_with("/models") {
            std::thread::sleep(Duration::from_millis(300));
            return Reply::json(200, json!({"object": "list", "data": [{"id": "found"}]}));
        }
        Reply::json(200, chat_answer("ok"))
    });
    let sockets = Dir::new();
    let path = sockets.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let yaml = format!(
        "detect:\n  timeout_secs: 5\nproviders:\n  gpu:\n    api_base: {}\n    detect: true\n",
        up.url()
    );
    let mut p = Proxy::start_with(&yaml, &[("NOTIFY_SOCKET", path.to_str().unwrap())], &[]);
    let ready = next_state(&socket);
    assert!(ready.starts_with("READY=1"), "{ready:?}");
    assert!(
        up.requests().iter().any(|r| r.path.ends_with("/models")),
        "READY=1 came before the first detection"
    );
    let models = p.get("/v1/models");
    assert!(models.body.contains("\"found\""), "{}", models.body);

    p.signal("HUP");
    let reloading = next_state(&socket);
    assert!(reloading.starts_with("RELOADING=1"), "{reloading:?}");
    let ready = next_state(&socket);
    assert!(ready.starts_with("READY=1"), "{ready:?}");
    p.wait_log("reloaded config");

    p.signal("TERM");
    let stopping = next_state(&socket);
    assert!(stopping.starts_with("STOPPING=1"), "{stopping:?}");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn without_notify_socket_nothing_is_sent_and_serving_is_unchanged() {
    let p = Proxy::start_with(
        "{}\n",
        &[("NOTIFY_SOCKET", "/nonexistent/notify.sock")],
        &[],
    );
    assert_eq!(p.get("/health").status, 200);
    p.wait_log("cannot tell systemd");
    assert_eq!(p.get("/health").status, 200);
}

/// The static (crt-static, glibc) debug build of the binary, built once per test run
/// into target/static; `make check` builds it before the tests, so this is then a no-op.
fn static_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let target = "x86_64-unknown-linux-gnu";
            let out = run(Command::new(cargo)
                .current_dir(repo())
                .args([
                    "build",
                    "--quiet",
                    "--bin",
                    "routeplane",
                    "--target",
                    target,
                ])
                .args(["--target-dir", "target/static"])
                .env("RUSTFLAGS", "-C target-feature=+crt-static"));
            assert!(out.status.success(), "static build failed: {}", text(&out));
            repo()
                .join("target/static")
                .join(target)
                .join("debug/routeplane")
        })
        .clone()
}

/// Files under `dir`, relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn service_command_has_help_and_misuse_exits_2() {
    let help = run(Command::new(bin()).args(["service", "install", "--help"]));
    assert!(help.status.success(), "{}", text(&help));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--root DIR"));
    for args in [
        &["service"][..],
        &["service", "start"],
        &["service", "install", "--bogus"],
    ] {
        let out = run(Command::new(bin()).args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("routeplane: error: "));
    }
}

#[test]
fn service_install_warns_when_the_unit_would_hide_the_binary() {
    // The units do hide these: a binary there fails with 203/EXEC.
    let system = repo_file("dist/systemd/routeplane.service");
    let user = repo_file("dist/systemd/routeplane.user.service");
    assert!(system.contains("\nPrivateTmp=yes\n") && system.contains("\nProtectHome=yes\n"));
    assert!(user.contains("\nPrivateTmp=yes\n") && user.contains("\nProtectHome=read-only\n"));
    // A copy of the binary under /tmp itself, wherever the build is.
    let tmp = PathBuf::from(format!("/tmp/routeplane-ship-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let exe = tmp.join("routeplane");
    std::fs::copy(bin(), &exe).unwrap();
    let dir = Dir::new();
    let root = dir.path().join("root");
    let install = |args: &[&str]| {
        Command::new(&exe)
            .args(["service", "install", "--root", root.to_str().unwrap()])
            .args(args)
            .env("HOME", dir.path())
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap()
    };
    let out = install(&[]);
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    let shown = exe.display();
    assert!(
        said.contains(&format!(
            "routeplane: warning: {shown} is under /tmp, which the unit hides from the service \
             (PrivateTmp=yes): it could not start (203/EXEC); install the binary where the unit \
             sees it and install the unit again: `sudo install -m 0755 {shown} \
             /usr/local/bin/`, then `sudo /usr/local/bin/routeplane service install --force`"
        )),
        "{}",
        text(&out)
    );
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(bin(), &exe).unwrap();
    let out = install(&["--user"]);
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "routeplane: warning: {shown} is under /tmp, which the unit hides from the service \
             (PrivateTmp=yes): it could not start (203/EXEC); install the binary where the unit \
             sees it and install the unit again: `install -D -m 0755 {shown} \
             ~/.local/bin/routeplane`, then `~/.local/bin/routeplane service install --user \
             --force`"
        )),
        "{}",
        text(&out)
    );
}

#[test]
fn service_install_quotes_a_binary_path_with_spaces_and_refuses_one_systemd_cannot_name() {
    // A Pi user's binary in a folder named with a space (and a `%`, systemd's specifier
    // sign): unquoted, `ExecStart=/…/my tools/routeplane` would run `/…/my`.
    let dir = Dir::new();
    let folder = dir.path().join("my tools 100%");
    std::fs::create_dir_all(&folder).unwrap();
    let exe = folder.join("routeplane");
    std::fs::copy(bin(), &exe).unwrap();
    let root = dir.path().join("root");
    let install = |exe: &Path, args: &[&str]| {
        run(Command::new(exe)
            .args(["service", "install", "--root", root.to_str().unwrap()])
            .args(args)
            .env("HOME", dir.path().join("home"))
            .env_remove("XDG_CONFIG_HOME"))
    };
    let quoted = format!("\"{}\"", exe.display().to_string().replace('%', "%%"));
    let out = install(&exe, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let system = root.join("etc/systemd/system/routeplane.service");
    let unit = std::fs::read_to_string(&system).unwrap();
    assert!(
        unit.contains(&format!(
            "\nExecStart={quoted} serve -c /etc/routeplane/routeplane.yaml\n"
        )),
        "{unit}"
    );
    let out = install(&exe, &["--user"]);
    assert!(out.status.success(), "{}", text(&out));
    let user = root
        .join(dir.path().join("home").strip_prefix("/").unwrap())
        .join(".config/systemd/user/routeplane.service");
    let unit = std::fs::read_to_string(&user).unwrap();
    assert!(
        unit.contains(&format!(
            "\nExecStart={quoted} serve -c %E/routeplane/routeplane.yaml\n"
        )),
        "{unit}"
    );
    // systemd itself reads the executable the unit names as this binary.
    if have(
        "systemd-analyze",
        "service_install_quotes_a_binary_path_with_spaces_and_refuses_one_systemd_cannot_name",
    ) {
        let verify = run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&system)
            .env("SYSTEMD_LOG_COLOR", "0"));
        let said = text(&verify);
        assert!(
            verify.status.success() && !said.contains("is not executable"),
            "{said}"
        );
    }

    // A quote in the path cannot be written in a unit at all: refused, nothing written.
    let odd = dir.path().join("it's here");
    std::fs::create_dir_all(&odd).unwrap();
    let odd_exe = odd.join("routeplane");
    std::fs::copy(bin(), &odd_exe).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    let out = install(&odd_exe, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "routeplane: error: systemd cannot start a binary at `{}`: a unit cannot name a \
             path with a quote, a backslash or a control character in it; copy the binary to \
             /usr/local/bin (or ~/.local/bin for --user) and run `routeplane service install` \
             from there (see --help)\n",
            odd_exe.display()
        )
    );
    assert!(
        !root.exists(),
        "nothing is written for a binary the unit cannot name"
    );
}
