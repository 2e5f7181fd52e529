//! `routeplane init`: write the commented starter config, never over an existing file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lexopt::prelude::*;
use routeplane::{Error, paths};

use super::Global;

/// The starter config: the example file in the repository, byte for byte.
pub(crate) const TEMPLATE: &str = include_str!("../../routeplane.example.yaml");

const HELP: &str = "\
routeplane init: write a commented starter routeplane.yaml

Usage: routeplane init [-c PATH] [--force]

Options:
  -c, --config PATH  where to write it (default: ./routeplane.yaml)
      --force        overwrite an existing file
  -h, --help         print help
";

/// Writes the template.
pub(crate) fn run(mut global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    let mut force = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => super::config_flag(&mut global, parser)?,
            Long("force") => force = true,
            Short('h') | Long("help") => {
                out!("{HELP}")?;
                return Ok(ExitCode::SUCCESS);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let here = global.config.is_none();
    let path = global
        .config
        .unwrap_or_else(|| PathBuf::from(paths::CONFIG_FILE));
    // `--force` cannot replace a directory: said before it is suggested.
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "`{}` is a directory; name the file to write in it: `routeplane init -c {}`",
            path.display(),
            super::shell_word(&path.join(paths::CONFIG_FILE).display().to_string())
        )));
    }
    if path.exists() && !force {
        return Err(Error::Usage(format!(
            "`{}` already exists; pass --force to overwrite it",
            path.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            in_the_way(dir, &path)
                .unwrap_or_else(|| Error::io(format!("cannot create `{}`", dir.display()), e))
        })?;
    }
    write_private(&path, TEMPLATE).map_err(|e| {
        let e = match here {
            true => elsewhere(e),
            false => e,
        };
        Error::io(format!("cannot write `{}`", path.display()), e)
    })?;
    // The commands to run next find this file only if a bare `routeplane` would.
    let found = paths::find_config().and_then(|f| f.canonicalize().ok());
    let flag = if found.is_some() && found == path.canonicalize().ok() {
        String::new()
    } else {
        format!(" -c {}", super::shell_word(&path.display().to_string()))
    };
    outln!(
        "wrote {}; check it with `routeplane config validate{flag}`, then run `routeplane{flag}`",
        path.display()
    )?;
    // `./routeplane.yaml` is read only where it is: started elsewhere, `routeplane`
    // silently uses another file or none.
    if here && let Some(user) = paths::user_config() {
        // One there already: `init -c` it would be refused, and that file is the one
        // read elsewhere, which may not be what the user means to change.
        let there = user.exists();
        let user = super::shell_word(&user.display().to_string());
        let then = match there {
            true => "it exists, and is the one read elsewhere".to_string(),
            false => format!("`routeplane init -c {user}` writes one there"),
        };
        outln!(
            "routeplane reads it when started in this directory; the file it reads from any \
             directory is {user} ({then})"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A directory this user cannot write to (`/`, a system directory a shell started in)
/// refuses `./routeplane.yaml`: the refusal, with where a file can go instead, the one
/// `routeplane` reads from any directory.
fn elsewhere(e: std::io::Error) -> std::io::Error {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    let Some(user) =
        paths::user_config().filter(|_| matches!(e.kind(), PermissionDenied | ReadOnlyFilesystem))
    else {
        return e;
    };
    let shown = super::shell_word(&user.display().to_string());
    let instead = match user.exists() {
        true => {
            format!("the file routeplane reads from any directory, {shown}, exists: edit that one")
        }
        false => format!(
            "`routeplane init -c {shown}` writes the file routeplane reads from any directory"
        ),
    };
    std::io::Error::new(
        e.kind(),
        format!("{e}; this directory is not writable: {instead}"),
    )
}

/// The refusal of a directory to make where a file is (`-c FILE/routeplane.yaml`):
/// the operating system says only `File exists`, of a path that looks like a directory.
fn in_the_way(dir: &Path, path: &Path) -> Option<Error> {
    let file = dir.ancestors().find(|a| a.is_file())?;
    Some(Error::Usage(format!(
        "`{}` is a file, not a directory, so `{}` cannot be written; name another path \
         with -c",
        file.display(),
        path.display()
    )))
}

/// Writes `text` to `path` with mode 0600 whatever the umask: the file may come to
/// hold upstream keys. The mode is set before anything is written, also on a file
/// `--force` replaces, whose old mode `create` would keep.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}
