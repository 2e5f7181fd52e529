//! The usage ledger: one JSON line per finished request, appended to a file, and read back.
//!
//! The file (`usage.path`, by default `$XDG_STATE_HOME/routeplane/usage.jsonl`) is
//! opened once in append mode. Workers append their lines to the process's batch
//! ([`batch::lines`], which the log's lines share): its thread writes what gathered
//! for the file in one `write(2)`, so lines reach the file up to 10 ms after
//! their request ended (a normal stop writes them all; SIGKILL loses those still
//! gathering). Past `usage.max_bytes` (checked after each batch) the file is renamed
//! to `usage.jsonl.1` (replacing the one before) and a fresh one is opened; only a
//! regular file is ever renamed. A file that cannot be opened or written
//! (full or read-only disk) costs one warning line, never a request; the warning is
//! repeated only after writes worked again. Lines hold counts, names and times: never
//! prompt or answer text, never a key.
//!
//! The parts: this file keeps the file (appending, rotating); `line.rs` writes a
//! request's line and reads one back as an [`Entry`]; `read.rs` reads the files back,
//! for today's counters at start-up ([`tail`]) and for `routeplane usage` ([`summarize`]).

mod line;
mod read;
#[cfg(test)]
mod tests;

pub use line::{Entry, EntryTokens, push_line};
pub use read::{By, Group, Summary, summarize, tail};

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::batch::{self, Batch, Sink};
use crate::log;
use crate::sync::lock;
use crate::time;

/// How long a ledger that could not be opened waits before trying again.
const REOPEN_GAP_MS: i64 = 30_000;

/// The ledger a server appends to: lines gathered and written in batches.
#[derive(Debug)]
pub struct Ledger {
    file: Arc<Appender>,
    /// `None` when the writer thread could not start: then each line is its own write.
    batch: Option<(&'static Batch, Sink)>,
}

impl Ledger {
    /// Opens (creating its directory) the ledger at `path`; a failure is one warning line
    /// and the ledger tries again later. Lines that cannot be written count in `errors`.
    pub fn open(path: PathBuf, max_bytes: u64, errors: Arc<AtomicU64>) -> Ledger {
        let file = Arc::new(Appender::open(path, max_bytes, errors));
        let writer = Arc::clone(&file);
        let batch =
            batch::lines().map(|lines| (lines, lines.add_sink(move |text| writer.append(text))));
        Ledger { file, batch }
    }

    /// The file's length when it was opened: the lines earlier runs wrote end there.
    pub fn opened_len(&self) -> u64 {
        self.file.opened_len
    }

    /// The file it appends to.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Appends one request's line (see [`push_line`]). Called after the client has its last byte; the
    /// line reaches the file within [`batch::every`], or at [`Ledger::flush`].
    pub fn append(&self, line: &str) {
        match self.batch {
            Some((batch, sink)) => batch.push(sink, line.as_bytes()),
            None => self.file.append(line.as_bytes()),
        }
    }

    /// Where its lines go in the process's batch; `None` when each is its own write.
    pub fn sink(&self) -> Option<(&'static Batch, Sink)> {
        self.batch
    }

    /// Writes every line appended so far.
    pub fn flush(&self) {
        if let Some((batch, _)) = self.batch {
            batch.flush();
        }
    }
}

impl Drop for Ledger {
    /// Writes its lines, and stops the batch writing to its file.
    fn drop(&mut self) {
        if let Some((batch, sink)) = self.batch {
            batch.remove_sink(sink);
        }
    }
}

/// The open file, its size and its failures.
#[derive(Debug)]
struct Appender {
    path: PathBuf,
    max_bytes: u64,
    /// The open file; replaced whole on rotation (the lock is held only to clone or swap).
    file: Mutex<Option<Arc<File>>>,
    /// Bytes in the current file.
    size: AtomicU64,
    /// One writer rotates at a time.
    rotating: AtomicBool,
    /// The last write failed and was warned about.
    failing: AtomicBool,
    /// When opening last failed (ms since the epoch), to retry at most every 30 s.
    open_failed_at: AtomicI64,
    /// The file's length when the process opened it: what earlier runs wrote.
    opened_len: u64,
    /// Lines that could not be written.
    errors: Arc<AtomicU64>,
}

impl Appender {
    fn open(path: PathBuf, max_bytes: u64, errors: Arc<AtomicU64>) -> Appender {
        let mut file = Appender {
            path,
            max_bytes,
            file: Mutex::new(None),
            size: AtomicU64::new(0),
            rotating: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            open_failed_at: AtomicI64::new(0),
            opened_len: 0,
            errors,
        };
        match file.reopen() {
            Ok(()) => file.opened_len = file.size.load(Ordering::Relaxed),
            Err(e) => file.warn(&format!("cannot open it: {e}")),
        }
        file
    }

    /// Opens the file afresh and makes it the current one.
    fn reopen(&self) -> std::io::Result<()> {
        let result = (|| {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&self.path)
        })();
        match result {
            Ok(file) => {
                end_torn_line(&file);
                self.size
                    .store(file.metadata().map_or(0, |m| m.len()), Ordering::Relaxed);
                *lock(&self.file) = Some(Arc::new(file));
                Ok(())
            }
            Err(e) => {
                self.open_failed_at
                    .store(time::unix_ms(SystemTime::now()), Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Appends whole lines, rotating after the line that takes the file past
    /// `max_bytes`, as when each line was its own write.
    fn append(&self, mut lines: &[u8]) {
        while !lines.is_empty() {
            let room = self
                .max_bytes
                .saturating_sub(self.size.load(Ordering::Relaxed));
            let room = usize::try_from(room).unwrap_or(usize::MAX);
            let cut = match lines.get(room..) {
                // The line holding byte `room` ends past `max_bytes`.
                Some(past) => past
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(lines.len(), |i| room + i + 1),
                None => lines.len(),
            };
            self.write_lines(&lines[..cut]);
            lines = &lines[cut..];
        }
    }

    /// Appends whole lines in one write; past `max_bytes`, rotates after it.
    fn write_lines(&self, lines: &[u8]) {
        let count = || lines.iter().filter(|&&b| b == b'\n').count() as u64;
        let file = lock(&self.file).clone();
        let file = match file {
            Some(file) => file,
            None => {
                let since =
                    time::unix_ms(SystemTime::now()) - self.open_failed_at.load(Ordering::Relaxed);
                if since < REOPEN_GAP_MS || self.reopen().is_err() {
                    self.errors.fetch_add(count(), Ordering::Relaxed);
                    return;
                }
                match lock(&self.file).clone() {
                    Some(f) => f,
                    None => return,
                }
            }
        };
        if self.failing.load(Ordering::Relaxed) {
            // The write that failed may have left part of a line.
            end_torn_line(&file);
        }
        // One write: O_APPEND puts the lines at the end, whole, even with another
        // process appending to the same file at the same moment.
        match (&*file).write_all(lines) {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    log::line(format!(
                        "usage ledger `{}` is written again",
                        self.path.display()
                    ));
                }
                let size =
                    self.size.fetch_add(lines.len() as u64, Ordering::Relaxed) + lines.len() as u64;
                if size > self.max_bytes {
                    self.rotate();
                }
            }
            Err(e) => {
                self.errors.fetch_add(count(), Ordering::Relaxed);
                self.warn(&format!("cannot write to it: {e}"));
            }
        }
    }

    /// Logs a failure once, until writes work again.
    fn warn(&self, what: &str) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            log::line(format!(
                "usage ledger `{}`: {what}; requests are still served, their usage is not recorded (set `usage.path` or `usage.enabled: false`)",
                self.path.display()
            ));
        }
    }

    /// Renames the full file to `NAME.1` and starts a new one.
    fn rotate(&self) {
        if self.rotating.swap(true, Ordering::AcqRel) {
            return;
        }
        // Only a regular file is renamed: `usage.path: /dev/null` must stay what it is.
        let regular = std::fs::metadata(&self.path).is_ok_and(|m| m.is_file());
        if regular {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            match std::fs::rename(&self.path, &old) {
                Ok(()) => {
                    if let Err(e) = self.reopen() {
                        self.warn(&format!("cannot open it after rotating: {e}"));
                        *lock(&self.file) = None;
                    }
                }
                Err(e) => {
                    // Not again at every request: only after another `max_bytes`.
                    self.size.store(0, Ordering::Relaxed);
                    self.warn(&format!("cannot rotate it: {e}"));
                }
            }
        } else {
            self.size.store(0, Ordering::Relaxed);
        }
        self.rotating.store(false, Ordering::Release);
    }
}

/// Ends the last line of `file` when it lacks its line end (a run stopped or a disk
/// filled mid-write): the next line would be glued to it, and both lost to `usage`.
fn end_torn_line(file: &File) {
    use std::os::unix::fs::FileExt;
    let Ok(meta) = file.metadata() else { return };
    let mut last = [0u8];
    // Only a regular file has a last byte to read; `/dev/null` has none.
    if meta.is_file()
        && meta.len() > 0
        && file
            .read_at(&mut last, meta.len() - 1)
            .is_ok_and(|n| n == 1)
        && last[0] != b'\n'
    {
        let _ = (&*file).write_all(b"\n");
    }
}
