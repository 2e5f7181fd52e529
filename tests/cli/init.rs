//! `routeplane init`: the file it writes, where, with what rights, and what it refuses.

use std::process::Command;

use super::{run, text};
use crate::support::proxy::{bin, isolate};
use crate::support::{Dir, assert_text};

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
fn init_in_a_directory_it_cannot_write_names_the_user_config_instead() {
    // It said only "Permission denied" of a shell started in `/` or a system directory.
    // sysfs's top refuses a new file to root as to anyone, where a mode 0555 would not.
    let dir = Dir::new();
    let init = || {
        let out = isolate(&mut Command::new(bin()), dir.path())
            .arg("init")
            .current_dir("/sys")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let user = dir.path().join("config/routeplane/routeplane.yaml");
    let user = user.display();
    let refused = "routeplane: error: cannot write `routeplane.yaml`: Permission denied (os error \
                   13); this directory is not writable:";
    assert_text(
        &init(),
        &format!(
            "{refused} `routeplane init -c {user}` writes the file routeplane reads from any \
             directory\n"
        ),
    );
    // With that file there, `init -c` it would be refused: it is the one to edit.
    std::fs::create_dir_all(dir.path().join("config/routeplane")).unwrap();
    dir.write("config/routeplane/routeplane.yaml", "listen: 127.0.0.1:1\n");
    assert_text(
        &init(),
        &format!(
            "{refused} the file routeplane reads from any directory, {user}, exists: edit \
             that one\n"
        ),
    );
}

#[test]
fn init_here_with_a_user_config_says_it_exists_not_how_to_write_it() {
    // It said "`routeplane init -c ~/.config/routeplane/routeplane.yaml` writes one
    // there" of a file that was there: that command is refused.
    let dir = Dir::new();
    std::fs::create_dir_all(dir.path().join("config/routeplane")).unwrap();
    dir.write("config/routeplane/routeplane.yaml", "listen: 127.0.0.1:1\n");
    let out = run(&dir, &["init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let user = dir.path().join("config/routeplane/routeplane.yaml");
    let said = text(&out.stdout);
    assert!(
        said.ends_with(&format!(
            "the file it reads from any directory is {} (it exists, and is the one read \
             elsewhere)\n",
            user.display()
        )),
        "{said}"
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
