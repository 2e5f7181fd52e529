//! `routeplane service install [--user]`: write the systemd unit, its config and its user.
//!
//! The units are the files in `dist/systemd/`, compiled in, so what the command writes
//! and what the repository (and the Debian package) ships never disagree. The one line
//! changed is `ExecStart=`: its binary becomes the binary running this command, and its
//! config the one `-c` names, if any.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use lexopt::prelude::*;
use routeplane::{Error, paths};

use super::Global;

/// The system-wide unit, byte for byte as in the repository.
pub(crate) const SYSTEM_UNIT: &str = include_str!("../../dist/systemd/routeplane.service");
/// The per-user unit, byte for byte as in the repository.
pub(crate) const USER_UNIT: &str = include_str!("../../dist/systemd/routeplane.user.service");
/// The binary path `ExecStart=` names in the system unit.
const SYSTEM_BIN: &str = "/usr/local/bin/routeplane";
/// The binary path `ExecStart=` names in the user unit.
const USER_BIN: &str = "%h/.local/bin/routeplane";
/// The config `ExecStart=` names in the system unit.
const SYSTEM_CONFIG: &str = "/etc/routeplane/routeplane.yaml";
/// The config `ExecStart=` names in the user unit (`%E` is `$XDG_CONFIG_HOME`).
const USER_CONFIG: &str = "%E/routeplane/routeplane.yaml";
/// Directories the system unit hides from the service, and the setting that does it
/// (as `dist/systemd/routeplane.service` has them): a binary there cannot be started.
const SYSTEM_HIDES: [(&str, &str); 5] = [
    ("/tmp", "PrivateTmp=yes"),
    ("/var/tmp", "PrivateTmp=yes"),
    ("/home", "ProtectHome=yes"),
    ("/root", "ProtectHome=yes"),
    ("/run/user", "ProtectHome=yes"),
];
/// The same for the user unit, whose `ProtectHome=read-only` leaves the home readable.
const USER_HIDES: [(&str, &str); 2] = [("/tmp", "PrivateTmp=yes"), ("/var/tmp", "PrivateTmp=yes")];
/// The system service's account.
const SERVICE_USER: &str = "routeplane";

const HELP: &str = "\
routeplane service install: install Routeplane as a systemd service

Usage: routeplane service install [--user] [--force] [--root DIR] [-c PATH]

Without --user (run as root): writes /etc/systemd/system/routeplane.service, creates
the `routeplane` system user and /etc/routeplane/, and writes a starter
/etc/routeplane/routeplane.yaml if there is none. The service keeps its state
(logins) in /var/lib/routeplane.
With --user: writes ~/.config/systemd/user/routeplane.service and a starter
~/.config/routeplane/routeplane.yaml if there is none; the service runs as you.
With -c PATH, the service reads PATH instead (a starter is written there if there is
none). Either way it prints the systemctl lines to run; it starts nothing itself.

Options:
      --user         install the per-user unit instead of the system-wide one
      --force        overwrite a unit file that differs (a config is never overwritten)
      --root DIR     write under DIR instead of / (a package or image being built);
                     no user is created there
  -c, --config PATH  the config the service reads (written into the unit as an
                     absolute path)
  -h, --help         print help
";

/// Parses `service SUBCOMMAND`.
pub(crate) fn run(mut global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    let mut user = false;
    let mut force = false;
    let mut root: Option<PathBuf> = None;
    let mut sub: Option<String> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) if sub.is_none() => sub = Some(v.string()?),
            Long("user") => user = true,
            Long("force") => force = true,
            Long("root") => root = Some(parser.value()?.into()),
            Short('c') | Long("config") => super::config_flag(&mut global, parser)?,
            Short('h') | Long("help") => {
                out!("{HELP}")?;
                return Ok(ExitCode::SUCCESS);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    match sub.as_deref() {
        Some("install") => {}
        Some(other) => {
            return Err(Error::Usage(format!(
                "unknown service command `{other}`; the one there is: `service install`"
            )));
        }
        None => return Err(Error::Usage("say what to do: `service install`".into())),
    }
    let exe = std::env::current_exe()
        .and_then(fs::canonicalize)
        .map_err(|e| Error::io("cannot find the path of this routeplane binary", e))?;
    // The service starts elsewhere than here: a relative path would name another file.
    let config = match global.config {
        Some(path) => Some(std::path::absolute(&path).map_err(|e| {
            Error::io(
                format!("cannot find the full path of `{}`", path.display()),
                e,
            )
        })?),
        None => None,
    };
    let plan = Plan {
        root,
        force,
        exe,
        config,
        euid: effective_uid(),
    };
    if user { plan.user() } else { plan.system() }?;
    Ok(ExitCode::SUCCESS)
}

/// What `service install` was asked to do, and where.
struct Plan {
    /// `--root`, when writing into something other than the running system.
    root: Option<PathBuf>,
    /// `--force`.
    force: bool,
    /// The binary `ExecStart=` will run.
    exe: PathBuf,
    /// `-c`, made absolute: the config `ExecStart=` will name instead of the unit's own.
    config: Option<PathBuf>,
    /// The effective user id, when it could be read.
    euid: Option<u32>,
}

impl Plan {
    /// `path` (absolute) inside the root being written.
    fn at(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_path_buf(),
        }
    }

    /// The unit text with `ExecStart=` naming this binary, and the config of `-c` in
    /// place of `default_config`.
    fn unit(
        &self,
        template: &str,
        default_bin: &str,
        default_config: &str,
    ) -> Result<String, Error> {
        let mut unit = unit_for(template, default_bin, &exec_path(&self.exe)?);
        if let Some(config) = &self.config {
            let word = unit_word(config).ok_or_else(|| {
                Error::Usage(format!(
                    "a systemd unit cannot name the config `{}`: a unit cannot name a path \
                     with a quote, a backslash or a control character in it; move or link \
                     the file to a plainer path",
                    config.display()
                ))
            })?;
            let flag = |config: &str| format!("-c {config}");
            unit = unit_for(&unit, &flag(default_config), &flag(&word));
        }
        Ok(unit)
    }

    /// The config the service reads: `-c`'s, else `default`; says which, and warns when
    /// the unit's sandbox hides it from the service (`hides`).
    fn config_path(&self, default: PathBuf, hides: &[(&str, &str)]) -> Result<PathBuf, Error> {
        let config = self.config.clone().unwrap_or(default);
        outln!("the service reads its config from {}", config.display())?;
        if let Some((dir, setting)) = hides.iter().find(|(dir, _)| config.starts_with(dir)) {
            eprintln!(
                "routeplane: warning: {} is under {dir}, which the unit hides from the service \
                 ({setting}): it could not read its config and would not start; put the \
                 config where the unit sees it and install the unit again",
                config.display()
            );
        }
        Ok(config)
    }

    /// The system-wide install.
    fn system(&self) -> Result<(), Error> {
        let hint = if self.root.is_none() && self.euid != Some(0) {
            " (a system service is installed as root: `sudo routeplane service install`, \
             or `routeplane service install --user` for your own)"
        } else {
            ""
        };
        let unit_path = self.at(Path::new("/etc/systemd/system/routeplane.service"));
        self.write_unit(
            &unit_path,
            &self.unit(SYSTEM_UNIT, SYSTEM_BIN, SYSTEM_CONFIG)?,
            hint,
        )?;
        self.warn_if_hidden(
            &SYSTEM_HIDES,
            &format!(
                "`sudo install -m 0755 {} /usr/local/bin/`, then `sudo /usr/local/bin/routeplane \
                 service install --force`",
                super::shell_word(&self.exe.display().to_string())
            ),
        );
        let config_dir = self.at(Path::new("/etc/routeplane"));
        fs::create_dir_all(&config_dir)
            .map_err(|e| Error::io(format!("cannot create `{}`{hint}", config_dir.display()), e))?;
        self.ensure_user()?;
        let shown = self.config_path(PathBuf::from(SYSTEM_CONFIG), &SYSTEM_HIDES)?;
        let config = self.at(&shown);
        let wrote = write_config(&config, 0o640)?;
        // The config may hold keys: readable by root and the service's group only.
        let group = group_id(&self.at(Path::new("/etc/group")), SERVICE_USER);
        match group {
            Some(gid) if wrote && self.euid == Some(0) => {
                std::os::unix::fs::chown(&config, Some(0), Some(gid))
                    .map_err(|e| Error::io(format!("cannot chown `{}`", config.display()), e))?;
                outln!("  {} is root:{SERVICE_USER}, mode 0640", config.display())?;
            }
            _ if wrote => outln!(
                "  then let the service read it: chown root:{SERVICE_USER} {}",
                super::shell_word(&shown.display().to_string())
            )?,
            _ => {}
        }
        outln!("Then run:")?;
        if let Some(root) = &self.root {
            outln!("  (on the system that {} becomes)", root.display())?;
        }
        outln!("  systemctl daemon-reload")?;
        outln!("  systemctl enable --now routeplane")?;
        outln!("  systemctl status routeplane")?;
        outln!("  journalctl -u routeplane -f")?;
        // After the start, not before: until systemd has made /var/lib/routeplane, the
        // service's user cannot, and a login run first fails there.
        outln!(
            "The service keeps its logins in /var/lib/routeplane, which systemd creates \
             (owned by {SERVICE_USER}) when the service first starts. Once it has, to log \
             it in to a subscription:\n  \
             sudo -u {SERVICE_USER} env XDG_DATA_HOME=/var/lib routeplane login anthropic\n  \
             sudo -u {SERVICE_USER} env XDG_DATA_HOME=/var/lib routeplane login openai-codex \
             --device"
        )?;
        Ok(())
    }

    /// The per-user install.
    fn user(&self) -> Result<(), Error> {
        let home = paths::home().ok_or_else(|| {
            Error::Usage("HOME is not set; the user unit goes under ~/.config/systemd/user".into())
        })?;
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"));
        let unit_path = self.at(&config_home.join("systemd/user/routeplane.service"));
        self.write_unit(
            &unit_path,
            &self.unit(USER_UNIT, USER_BIN, USER_CONFIG)?,
            "",
        )?;
        self.warn_if_hidden(
            &USER_HIDES,
            &format!(
                "`install -D -m 0755 {} ~/.local/bin/routeplane`, then \
                 `~/.local/bin/routeplane service install --user --force`",
                super::shell_word(&self.exe.display().to_string())
            ),
        );
        // The unit lets the service write only these two; they must exist when it starts.
        for dir in [".local/share/routeplane", ".local/state/routeplane"] {
            let dir = self.at(&home.join(dir));
            fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create `{}`", dir.display()), e))?;
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        }
        // The user's own file, as `init` writes it: no group shares its keys.
        let default = config_home.join("routeplane").join(paths::CONFIG_FILE);
        write_config(&self.at(&self.config_path(default, &USER_HIDES)?), 0o600)?;
        // The user manager starts the service without the shell's exports.
        outln!(
            "The service does not see the variables exported in your shell: put upstream \
             keys in {} as KEY=value lines (mode 0600), or in the config.",
            config_home.join("routeplane/env").display()
        )?;
        outln!("Then run:")?;
        outln!("  systemctl --user daemon-reload")?;
        outln!("  systemctl --user enable --now routeplane")?;
        outln!("  loginctl enable-linger \"$USER\"   # start at boot, keep running after logout")?;
        outln!("  journalctl --user -u routeplane -f")?;
        Ok(())
    }

    /// Warns (on stderr) when `ExecStart=` names a binary where the unit's sandbox
    /// hides it from the service: systemd could not execute it (status 203/EXEC) and
    /// the service would never start. `fix` is how to put it where the unit sees it.
    fn warn_if_hidden(&self, hides: &[(&str, &str)], fix: &str) {
        if let Some((dir, setting)) = hides.iter().find(|(dir, _)| self.exe.starts_with(dir)) {
            eprintln!(
                "routeplane: warning: {} is under {dir}, which the unit hides from the service \
                 ({setting}): it could not start (203/EXEC); install the binary where the unit \
                 sees it and install the unit again: {fix}",
                self.exe.display()
            );
        }
    }

    /// Writes a unit, refusing to replace a different one without `--force`.
    fn write_unit(&self, path: &Path, text: &str, hint: &str) -> Result<(), Error> {
        match fs::read_to_string(path) {
            Ok(existing) if existing == text => {
                outln!("{} is already installed, unchanged", path.display())?;
                return Ok(());
            }
            Ok(_) if !self.force => {
                return Err(Error::Usage(format!(
                    "`{}` already exists and differs; pass --force to overwrite it",
                    path.display()
                )));
            }
            _ => {}
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create `{}`{hint}", dir.display()), e))?;
        }
        fs::write(path, text)
            .map_err(|e| Error::io(format!("cannot write `{}`{hint}", path.display()), e))?;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o644));
        outln!(
            "wrote {} (ExecStart runs {})",
            path.display(),
            self.exe.display()
        )?;
        Ok(())
    }

    /// Creates the service's system user when installing into this machine as root;
    /// otherwise says how.
    fn ensure_user(&self) -> Result<(), Error> {
        let create = format!(
            "useradd --system --user-group --home-dir /var/lib/routeplane --no-create-home \
             --shell /usr/sbin/nologin {SERVICE_USER}"
        );
        if self.root.is_some() {
            return outln!(
                "not creating the `{SERVICE_USER}` user inside --root; there, run: {create}"
            );
        }
        if user_exists(SERVICE_USER) {
            return outln!("user `{SERVICE_USER}` exists");
        }
        if self.euid != Some(0) {
            return outln!("the `{SERVICE_USER}` user does not exist; as root, run: {create}");
        }
        let args: Vec<&str> = create.split_whitespace().skip(1).collect();
        match Command::new("useradd").args(&args).status() {
            Ok(s) if s.success() => outln!("created system user `{SERVICE_USER}`"),
            Ok(s) => outln!("`{create}` failed ({s}); create the user, then start the service"),
            Err(e) => outln!("cannot run useradd ({e}); create the user with: {create}"),
        }
    }
}

/// The binary's path as `ExecStart=` must write it: `%` doubled (systemd reads `%h`, `%E`
/// … as specifiers), and in double quotes when it holds whitespace, which would otherwise
/// end the executable's name (`/opt/my tools/routeplane` ran `/opt/my`). A path systemd
/// refuses as an executable's name however it is written (a quote, a backslash or a
/// control character: "Executable name contains special characters", checked with
/// `systemd-analyze verify` 252), or one that is not UTF-8, is refused here, before
/// anything is written, rather than installed as a unit that cannot start.
fn exec_path(exe: &Path) -> Result<String, Error> {
    let refused = || {
        Error::Usage(format!(
            "systemd cannot start a binary at `{}`: a unit cannot name a path with a quote, \
             a backslash or a control character in it; copy the binary to /usr/local/bin \
             (or ~/.local/bin for --user) and run `routeplane service install` from there",
            exe.display()
        ))
    };
    unit_word(exe).ok_or_else(refused)
}

/// A path as a unit's command line writes it (see [`exec_path`]); `None` when no unit
/// can name it.
fn unit_word(path: &Path) -> Option<String> {
    let path = path.to_str()?;
    if path
        .chars()
        .any(|c| matches!(c, '"' | '\'' | '\\') || c.is_control())
    {
        return None;
    }
    let path = path.replace('%', "%%");
    Some(match path.contains(char::is_whitespace) {
        true => format!("\"{path}\""),
        false => path,
    })
}

/// A unit's text with `default` in `ExecStart=` (its binary or its config) replaced by
/// `with`, once.
pub(crate) fn unit_for(template: &str, default: &str, with: &str) -> String {
    template
        .lines()
        .map(|line| match line.strip_prefix("ExecStart=") {
            Some(rest) => format!("ExecStart={}", rest.replacen(default, with, 1)),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Writes the starter config with `mode` unless one exists; true when it wrote one.
fn write_config(path: &Path, mode: u32) -> Result<bool, Error> {
    if path.exists() {
        outln!("kept the existing config {}", path.display())?;
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create `{}`", dir.display()), e))?;
    }
    fs::write(path, super::init::TEMPLATE)
        .map_err(|e| Error::io(format!("cannot write `{}`", path.display()), e))?;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
    outln!(
        "wrote the starter config {} (edit it; check it with `routeplane config validate -c {}`)",
        path.display(),
        super::shell_word(&path.display().to_string())
    )?;
    Ok(true)
}

/// The process's effective user id (the owner of `/proc/self`).
fn effective_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// True when the system knows the user (through NSS, so LDAP users count).
fn user_exists(name: &str) -> bool {
    match Command::new("getent").args(["passwd", name]).output() {
        Ok(out) => out.status.success(),
        Err(_) => fs::read_to_string("/etc/passwd")
            .is_ok_and(|t| t.lines().any(|l| l.split(':').next() == Some(name))),
    }
}

/// A group's id from a group file.
fn group_id(group_file: &Path, name: &str) -> Option<u32> {
    let text = fs::read_to_string(group_file).ok()?;
    text.lines().find_map(|l| {
        let mut fields = l.split(':');
        if fields.next() != Some(name) {
            return None;
        }
        fields.nth(1)?.parse().ok()
    })
}
