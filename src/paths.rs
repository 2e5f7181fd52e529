//! Where Routeplane's files live: the config search order and the per-user data dir.
//!
//! One home for these rules so `config`, `auth/store.rs` and the CLI agree.

use std::env;
use std::path::{Path, PathBuf};

/// The config file name searched for in the working directory and the config dir.
pub const CONFIG_FILE: &str = "routeplane.yaml";

/// `$XDG_CONFIG_HOME/routeplane/routeplane.yaml`, else `~/.config/routeplane/routeplane.yaml`.
pub fn user_config() -> Option<PathBuf> {
    base_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("routeplane").join(CONFIG_FILE))
}

/// The config to load when none is named: `./routeplane.yaml`, then the user's, else none.
pub fn find_config() -> Option<PathBuf> {
    let local = Path::new(CONFIG_FILE);
    if local.is_file() {
        return Some(local.to_path_buf());
    }
    user_config().filter(|p| p.is_file())
}

/// A `routeplane.yml` where [`find_config`] looks for `routeplane.yaml` (here, then the
/// user's config dir): never read, so a start without `-c` says it is there, whichever
/// config it found.
pub fn unread_yml() -> Option<PathBuf> {
    let here = PathBuf::from("routeplane.yml");
    if here.is_file() {
        return Some(here);
    }
    user_config()
        .map(|p| p.with_extension("yml"))
        .filter(|p| p.is_file())
}

/// The default token file: `$XDG_DATA_HOME/routeplane/auth.json`, else
/// `~/.local/share/routeplane/auth.json`; `ROUTEPLANE_AUTH_FILE` overrides both.
pub fn auth_file() -> Option<PathBuf> {
    if let Some(p) = env::var_os("ROUTEPLANE_AUTH_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    base_dir("XDG_DATA_HOME", ".local/share").map(|d| d.join("routeplane").join("auth.json"))
}

/// The default usage ledger: `$XDG_STATE_HOME/routeplane/usage.jsonl`, else
/// `~/.local/state/routeplane/usage.jsonl`.
pub fn usage_file() -> Option<PathBuf> {
    base_dir("XDG_STATE_HOME", ".local/state").map(|d| d.join("routeplane").join("usage.jsonl"))
}

/// `path` as an answer to a client names a file: under the home directory with it
/// written `~` (`~/.config/routeplane/routeplane.yaml`), elsewhere by its name alone
/// (`prod.yaml` of `/srv/team/prod.yaml`). A web page, or anyone on the network when
/// the proxy listens there, may read a 401: the home directory's name is most often the
/// user's, and the file's folders are nobody's business but the operator's.
pub fn tilde(path: &str) -> String {
    // A home of `/` would make every absolute path `~/…`.
    let home = home().filter(|h| h.parent().is_some());
    let path = Path::new(path);
    match home.and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) => Path::new("~").join(rest).display().to_string(),
        None if path.is_absolute() => (path.file_name()).map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        None => path.display().to_string(),
    }
}

/// The user's home directory, from `$HOME`.
pub fn home() -> Option<PathBuf> {
    env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// An XDG base directory: the variable if set and absolute, else `~/<fallback>`.
fn base_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    match env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_absolute() => Some(p),
        _ => home().map(|h| h.join(fallback)),
    }
}
