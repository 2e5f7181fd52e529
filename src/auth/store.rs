//! The token file: load, change under a lock, write atomically with mode 0600.
//!
//! One JSON file holds every login, keyed `provider` or `provider#label`. Writes go to
//! a temporary file in the same directory, are synced, and renamed over the old one,
//! so a crash never leaves a truncated file. A lock file serialises read-modify-write
//! between routeplane processes (a server refreshing while `routeplane login` runs),
//! and the file is re-read under the lock so one process never overwrites another's
//! rotated refresh token.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};

use super::oauth::Tokens;
use crate::error::Error;
use crate::log::Secret;

/// How long to wait for another process's lock: longer than a refresh made under it
/// takes (its token endpoint is given `oauth::TOKEN_WAIT` to connect and as long again
/// to answer), shorter than [`LOCK_STALE`].
const LOCK_WAIT: Duration = Duration::from_secs(25);
/// A lock file older than this was left by a crashed process.
const LOCK_STALE: Duration = Duration::from_secs(30);

/// The token file at a path.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

/// A version of the token file as one `stat` sees it. The modification time alone
/// misses a copy that keeps it (`cp -p`, a backup restored, `touch -r`); the change time
/// (ctime), which no program can set back, catches those; the inode, a file renamed over
/// it (each `routeplane login` writes a new one); the length, most writes within one
/// tick of the file system's clock. A write in place within the tick of the last read,
/// of the same length, is the one left: see [`Stamp::settled_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: (i64, i64),
    changed: (i64, i64),
    len: u64,
    file: (u64, u64),
}

/// How long after a change a file's times may still be those of a later change: the
/// tick of its file system's clock (a jiffy on Linux, 2 s on FAT) with room to spare.
const TICK: Duration = Duration::from_secs(2);

impl Stamp {
    /// When a file read at `read` with this stamp is known to be the file with this
    /// stamp: `None` when it changed more than a tick before `read`; else the moment,
    /// a tick after its change, from which a same-stamped file is the one read (a write
    /// in place in the same tick, after the read, would leave the stamp as it was).
    pub fn settled_at(&self, read: SystemTime) -> Option<SystemTime> {
        let (secs, nanos) = self.changed;
        let changed = SystemTime::UNIX_EPOCH
            + Duration::new(u64::try_from(secs).ok()?, u32::try_from(nanos).ok()?);
        let settled = changed + TICK;
        (settled > read).then_some(settled)
    }
}

/// The key of a login: `provider` or `provider#label`.
pub fn key(provider: &str, label: Option<&str>) -> String {
    match label {
        Some(l) if !l.is_empty() => format!("{provider}#{l}"),
        _ => provider.to_string(),
    }
}

impl Store {
    /// A store at `path` (nothing is read or created yet).
    pub fn new(path: impl Into<PathBuf>) -> Store {
        Store { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A warning when the file lets its group or other users read it: it holds refresh
    /// tokens, and a copy made by hand (`cp`, a backup restored) takes the umask's mode,
    /// 0644 as a rule, not the 0600 Routeplane writes. Names the path and the fix only.
    pub fn readable_by_others(&self) -> Option<String> {
        let mode = fs::metadata(&self.path).ok()?.permissions().mode() & 0o777;
        let path = self.path.display();
        (mode & 0o044 != 0).then(|| {
            format!(
                "the token file `{path}` can be read by other users (mode {mode:04o}) and holds \
                 login tokens: run `chmod 600 {path}`"
            )
        })
    }

    /// What tells this version of the file from another, if it exists: one `stat`.
    pub fn stamp(&self) -> Option<Stamp> {
        let m = fs::metadata(&self.path).ok()?;
        Some(Stamp {
            modified: (m.mtime(), m.mtime_nsec()),
            changed: (m.ctime(), m.ctime_nsec()),
            len: m.len(),
            file: (m.dev(), m.ino()),
        })
    }

    /// Every login in the file (empty when there is no file).
    pub fn load(&self) -> Result<Map<String, Value>, Error> {
        self.load_or(invalid)
    }

    /// As [`Store::load`], with `invalid` making the error for a file that is not a token
    /// file (from the path and what is wrong with it, with the fix) in the words of the
    /// command that read it: a logout's must not say that a login failed.
    pub fn load_or(
        &self,
        invalid: impl FnOnce(&Path, String) -> Error,
    ) -> Result<Map<String, Value>, Error> {
        let mut file = self.whole(invalid)?;
        Ok(match file.get_mut("credentials").map(Value::take) {
            Some(Value::Object(all)) => all,
            _ => Map::new(),
        })
    }

    /// The file's top-level object, every key in it (empty when there is no file). A
    /// file that is JSON but has no `credentials` object (another program's, given as
    /// `--auth-file`) is refused like one that is not JSON: read as empty, the next
    /// write would replace it.
    fn whole(
        &self,
        invalid: impl FnOnce(&Path, String) -> Error,
    ) -> Result<Map<String, Value>, Error> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => {
                return Err(Error::io(
                    format!("cannot read `{}`", self.path.display()),
                    e,
                ));
            }
        };
        match serde_json::from_str::<Value>(&text) {
            Err(e) => Err(format!("not valid JSON ({e}); fix or delete it")),
            Ok(Value::Object(file)) if file.get("credentials").is_some_and(Value::is_object) => {
                Ok(file)
            }
            Ok(_) => Err(
                "not a routeplane token file (no `credentials` object); move it away or \
                 use another --auth-file"
                    .into(),
            ),
        }
        .map_err(|why| invalid(&self.path, why))
    }

    /// The tokens stored under `key`.
    pub fn get(&self, key: &str) -> Result<Option<Tokens>, Error> {
        Ok(self.load()?.get(key).and_then(from_json))
    }

    /// Fails as a later [`Store::put`] would: the file is there but not valid JSON, or
    /// its directory cannot be made or written to (the lock file is made, then removed).
    /// A login asks first: a code or a refresh token may be single-use, and tokens got
    /// with it and then not stored are lost, the refresh token with them.
    pub fn check_writable(&self) -> Result<(), Error> {
        let _lock = Lock::take(&self.path)?;
        self.load().map(|_| ())
    }

    /// Stores (or with `None` removes) a new login's tokens under `key`, under the lock.
    /// The replaced login's keys Routeplane does not write (a newer version's, a note)
    /// stay only when both name the same `account_id`: a login may be another account's,
    /// and they were about the old one. Anthropic's logins carry no account, so its
    /// keys go: missing, a key is what an older Routeplane's entry lacks too; kept, it
    /// could tell another account's facts as this one's.
    pub fn put(&self, key: &str, tokens: Option<&Tokens>) -> Result<(), Error> {
        self.lock()?.replace(key, tokens, false)
    }

    /// Marks the login under `key` as refused for good ("login needed"), unless it was
    /// replaced since `refresh` was tried: a new login (or another process's refresh)
    /// writes an entry without the mark, which ends it.
    pub fn mark_refused(&self, key: &str, refresh: &str, reason: &str) -> Result<(), Error> {
        self.lock()?.mark_refused(key, refresh, reason)
    }

    /// The file, locked against every other routeplane until the result is dropped:
    /// a refresh reads, spends and stores a rotating refresh token under it, so two
    /// processes never spend the same one.
    pub fn lock(&self) -> Result<Held<'_>, Error> {
        Ok(Held {
            store: self,
            _lock: Lock::take(&self.path)?,
        })
    }

    /// Writes the whole file atomically: temp file (0600) in the same directory, fsync, rename.
    fn write(&self, v: &Value) -> Result<(), Error> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create `{}`", dir.display()), e))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("auth.json"),
            std::process::id()
        ));
        let io = |e| Error::io(format!("cannot write `{}`", tmp.display()), e);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(
            serde_json::to_string_pretty(v)
                .unwrap_or_default()
                .as_bytes(),
        )
        .map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, &self.path)
            .map_err(|e| Error::io(format!("cannot replace `{}`", self.path.display()), e))?;
        // The rename is durable only once the directory entry is.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The error for a token file that cannot be read as one.
fn invalid(path: &Path, why: String) -> Error {
    Error::Auth(format!("`{}` is {why} and log in again", path.display()))
}

/// Why a stored login was refused for good, if it was (see [`Store::mark_refused`]).
pub fn refused(entry: &Value) -> Option<String> {
    entry["login_needed"].as_str().map(str::to_string)
}

/// Tokens as stored.
fn to_json(t: &Tokens) -> Value {
    json!({
        "access_token": t.access.expose(),
        "refresh_token": t.refresh.expose(),
        "expires_at": t.expires_at,
        "id_token": t.id_token.as_ref().map(Secret::expose),
        "account_id": t.account_id,
    })
}

/// Tokens from their stored form.
pub(super) fn from_json(v: &Value) -> Option<Tokens> {
    Some(Tokens {
        access: Secret::new(v["access_token"].as_str()?),
        refresh: Secret::new(v["refresh_token"].as_str().unwrap_or("")),
        expires_at: v["expires_at"].as_u64().map_or(0, seconds),
        id_token: v["id_token"].as_str().map(Secret::new),
        account_id: v["account_id"].as_str().map(str::to_string),
    })
}

/// A stored expiry in Unix seconds. Routeplane writes seconds, and `--import` turns
/// Claude Code's `expiresAt` (milliseconds) into them; a file written by hand or by a
/// script from those credentials may hold milliseconds still, which read as seconds
/// put the expiry some 50 000 years ahead, and the token would never be refreshed.
/// 10^11 tells them apart: in seconds the year 5138, in milliseconds March 1973.
fn seconds(at: u64) -> u64 {
    if at > 100_000_000_000 { at / 1000 } else { at }
}

/// The token file while this process holds its lock (see [`Store::lock`]).
#[derive(Debug)]
pub struct Held<'a> {
    store: &'a Store,
    _lock: Lock,
}

impl Held<'_> {
    /// Every login in the file, read now.
    pub fn load(&self) -> Result<Map<String, Value>, Error> {
        self.store.load()
    }

    /// As [`Store::put`], under the lock already held, for tokens renewed with the
    /// login's own refresh token: the same grant, so every key Routeplane does not write
    /// (a newer version's, a note) stays, as the file's own do.
    pub fn put(&self, key: &str, tokens: Option<&Tokens>) -> Result<(), Error> {
        self.replace(key, tokens, true)
    }

    /// Stores or removes `key`'s tokens; the old entry's other keys stay when `renewed`
    /// or when both name the same account.
    fn replace(&self, key: &str, tokens: Option<&Tokens>, renewed: bool) -> Result<(), Error> {
        self.change(|all| {
            let Some(t) = tokens else {
                // Shifted, not swapped: the other logins keep their order in the file.
                all.shift_remove(key);
                return true;
            };
            let mut entry = to_json(t);
            let account = t.account_id.as_deref();
            let same = |old: &Map<String, Value>| {
                renewed
                    || account.is_some() && old.get("account_id").and_then(Value::as_str) == account
            };
            let old = all.get(key).and_then(Value::as_object).filter(|o| same(o));
            if let (Some(new), Some(old)) = (entry.as_object_mut(), old) {
                // New tokens end a "login needed" mark.
                for (k, v) in old.iter().filter(|(k, _)| *k != "login_needed") {
                    new.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            all.insert(key.to_string(), entry);
            true
        })
    }

    /// As [`Store::mark_refused`], under the lock already held.
    pub fn mark_refused(&self, key: &str, refresh: &str, reason: &str) -> Result<(), Error> {
        self.change(|all| {
            let Some(entry) = all.get_mut(key).and_then(Value::as_object_mut) else {
                return false;
            };
            if entry.get("refresh_token").and_then(Value::as_str) != Some(refresh) {
                return false;
            }
            entry.insert("login_needed".into(), json!(reason));
            true
        })
    }

    /// Reads the file, lets `change` change its logins, and writes it when that says so:
    /// every other top-level key (a newer Routeplane's, a user's) is written back as read.
    fn change(&self, change: impl FnOnce(&mut Map<String, Value>) -> bool) -> Result<(), Error> {
        let mut file = self.store.whole(invalid)?;
        file.entry("version").or_insert(json!(1));
        let slot = file
            .entry("credentials")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(all) = slot else {
            return Ok(());
        };
        if !change(all) {
            return Ok(());
        }
        self.store.write(&Value::Object(file))
    }
}

/// An exclusive lock: a `.lock` file beside the token file, removed on drop.
#[derive(Debug)]
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn take(file: &Path) -> Result<Lock, Error> {
        let mut name = file.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = fs::create_dir_all(dir);
        }
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => return Ok(Lock { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > LOCK_STALE);
                    if stale {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if Instant::now() > deadline {
                        return Err(Error::Auth(format!(
                            "`{}` is locked by another routeplane; remove it if no other routeplane is running",
                            path.display()
                        )));
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(Error::io(format!("cannot create `{}`", path.display()), e)),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: u32) -> Tokens {
        Tokens {
            access: Secret::new(format!("a{n}")),
            refresh: Secret::new(format!("r{n}")),
            expires_at: 100,
            id_token: None,
            account_id: Some("acct".into()),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("routeplane-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn written_atomically_with_private_modes() {
        let dir = temp_dir("modes");
        let store = Store::new(dir.join("sub/auth.json"));
        store.put("anthropic", Some(&tokens(1))).unwrap();
        store
            .put(&key("openai-codex", Some("work")), Some(&tokens(2)))
            .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(&dir.join("sub")), 0o700);
        assert_eq!(store.get("anthropic").unwrap().unwrap(), tokens(1));
        assert_eq!(
            store
                .get("openai-codex#work")
                .unwrap()
                .unwrap()
                .refresh
                .expose(),
            "r2"
        );
        store.put("anthropic", None).unwrap();
        assert!(store.get("anthropic").unwrap().is_none());
        let leftovers: Vec<_> = fs::read_dir(dir.join("sub"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from("auth.json")],
            "no temp or lock file left"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_read_within_a_tick_of_its_change_is_read_once_more_a_tick_later() {
        let stamp = |changed: u64| Stamp {
            modified: (0, 0),
            changed: (changed as i64, 0),
            len: 1,
            file: (1, 1),
        };
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        // Changed a second before the read: a write in that tick may follow unseen.
        assert_eq!(stamp(1000).settled_at(at(1001)), Some(at(1002)));
        // Changed long before: the stamp alone tells.
        assert_eq!(stamp(1000).settled_at(at(1002)), None);
        assert_eq!(stamp(1000).settled_at(at(5000)), None);
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = temp_dir("concurrent");
        let store = Store::new(dir.join("auth.json"));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = store.clone();
                thread::spawn(move || s.put(&format!("p{i}"), Some(&tokens(i))).unwrap())
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(store.load().unwrap().len(), 8);
        let _ = fs::remove_dir_all(dir);
    }
}
