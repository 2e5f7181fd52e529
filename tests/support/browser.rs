//! Headless Chromium (Debian's `chromium`, installed by `make check`): render a page,
//! read its DOM, take a screenshot. Each run is bounded in time and uses its own profile.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Dir;

/// The Chromium binary, or `None` with the reason it is missing.
pub fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ROUTEPLANE_TEST_CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err("no chromium found in /usr/bin, /usr/local/bin or /snap/bin (run `make check`, which installs Debian's `chromium`)".into())
}

/// Runs Chromium headless on `url` with `extra` flags; its stdout, within 90 s.
fn run(url: &str, extra: &[String]) -> Result<String, String> {
    let bin = chromium()?;
    let profile = Dir::new();
    // At the lowest priority: Chromium's processes would otherwise take the 2 cores from
    // tests running beside it that time events (tests/stream.rs), and make them flaky.
    let mut cmd = if Path::new("/usr/bin/nice").is_file() {
        let mut c = Command::new("/usr/bin/nice");
        c.args(["-n", "19"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let mut child = cmd
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start chromium: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let out = reader.join().unwrap_or_default();
            return if status.success() {
                Ok(out)
            } else {
                Err(format!("chromium exited with {status}"))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("chromium did not finish within 90 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The page's DOM after its scripts ran (virtual time lets its first poll finish).
pub fn dump_dom(url: &str) -> Result<String, String> {
    run(url, &["--dump-dom".to_string()])
}

/// Writes a PNG of the page at `width`×`height` to `path`.
pub fn screenshot(url: &str, path: &Path, width: u32, height: u32) -> Result<(), String> {
    run(
        url,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={width},{height}"),
        ],
    )?;
    if path.is_file() {
        Ok(())
    } else {
        Err(format!(
            "chromium wrote no screenshot at {}",
            path.display()
        ))
    }
}

/// A stand-in for the desktop's `xdg-open` that opens nothing and exits with `code`
/// (0: it took the URL; 3: no desktop, as on a server). Returns the directory to give
/// the binary as its `PATH`.
pub fn opener(dir: &Dir, code: i32) -> PathBuf {
    opener_running(dir, &format!("exit {code}"))
}

/// A stand-in for `xdg-open` on a machine without a display that hangs (for 30 s) and
/// opens nothing, as a headless one may; its process id is in `dir` ([`opener_pid`]).
/// Returns the directory to give as `PATH`.
pub fn hanging_opener(dir: &Dir) -> PathBuf {
    // By its full path: the login's `PATH` is only the opener's directory.
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("a sleep binary");
    let noted = dir.path().join("opener.pid");
    opener_running(
        dir,
        &format!("echo $$ > '{}'\nexec {sleep} 30", noted.display()),
    )
}

/// The process id of the [`hanging_opener`] that ran in `dir`, if one did.
pub fn opener_pid(dir: &Dir) -> Option<u32> {
    let text = std::fs::read_to_string(dir.path().join("opener.pid")).ok()?;
    text.trim().parse().ok()
}

/// True while process `pid` runs (a zombie, ended and not yet reaped, does not).
pub fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `PID (NAME) STATE …`: the name may hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// An `xdg-open` that runs the shell line `body`, in `dir`'s `bin`, which it returns.
fn opener_running(dir: &Dir, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("xdg-open");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}
