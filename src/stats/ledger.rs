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

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::{Finished, moved_past, percentile, push_json_str};
use crate::batch::{self, Batch, Sink};
use crate::log::{self, StreamEnd, push_u64};
use crate::registry::provider_of;
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

/// Appends the ledger line of a finished request, newline included. By hand, without
/// `write!`: through it the line was ~6k instructions a request of ~125k (callgrind).
pub fn push_line(s: &mut String, f: &Finished) {
    s.push_str("{\"time\":\"");
    time::Rfc3339(f.at).push_to(s);
    s.push_str("\",\"inbound\":\"");
    s.push_str(f.inbound.name());
    s.push_str("\",\"model\":");
    // None named, or the body unreadable: null, as the JSON log has it (the text log `-`).
    match f.requested.as_str() {
        "" => s.push_str("null"),
        requested => push_json_str(s, requested),
    }
    s.push_str(",\"served_by\":");
    match &f.served_by {
        Some(by) => push_json_str(s, by),
        None => s.push_str("null"),
    }
    s.push_str(",\"status\":");
    push_u64(s, u64::from(f.status));
    s.push_str(",\"stream\":");
    s.push_str(if f.stream { "true" } else { "false" });
    // Beside `stream`, not in its place: lines before it say `"stream": true`, and
    // readers of the ledger test that.
    s.push_str(",\"stream_end\":");
    match f.stream_end {
        Some(end) => {
            s.push('"');
            s.push_str(end.name());
            s.push('"');
        }
        None => s.push_str("null"),
    }
    s.push_str(",\"attempts\":");
    push_u64(s, f.attempts as u64);
    s.push_str(",\"rescues\":");
    push_u64(s, f.rescues as u64);
    // Who finished a rescued stream (`served_by` started it). Only on a rescued stream's
    // line: every other line stays as long as it was (the ledger's bytes are a share of
    // a request's cost, bench/results.md), and a reader defaults it to `[]`.
    if !f.rescued_by.is_empty() {
        s.push_str(",\"rescued_by\":[");
        for (i, by) in f.rescued_by.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            push_json_str(s, by);
        }
        s.push(']');
    }
    s.push_str(",\"failed\":[");
    for (i, (endpoint, status, reason)) in f.failed().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"endpoint\":");
        push_json_str(s, endpoint);
        s.push_str(",\"status\":");
        push_opt(s, status.map(u64::from));
        s.push_str(",\"reason\":");
        push_json_str(s, reason);
        s.push('}');
    }
    s.push_str("],\"abandoned\":");
    match f.abandoned() {
        Some(endpoint) => push_json_str(s, endpoint),
        None => s.push_str("null"),
    }
    s.push_str(",\"ttfb_ms\":");
    push_opt_ms(s, f.ttfb);
    s.push_str(",\"ttft_ms\":");
    push_opt_ms(s, f.ttft);
    s.push_str(",\"total_ms\":");
    log::push_ms(s, f.total);
    let t = f.tokens;
    s.push_str(",\"tokens\":{\"input\":");
    push_opt(s, t.input);
    s.push_str(",\"output\":");
    push_opt(s, t.output);
    s.push_str(",\"cached_input\":");
    push_opt(s, t.cached_input);
    s.push_str(",\"reasoning\":");
    push_opt(s, t.reasoning);
    s.push_str("}}\n");
}

/// A number, or `null`.
fn push_opt(s: &mut String, n: Option<u64>) {
    match n {
        Some(n) => push_u64(s, n),
        None => s.push_str("null"),
    }
}

/// Milliseconds with one decimal, or `null`.
fn push_opt_ms(s: &mut String, d: Option<Duration>) {
    match d {
        Some(d) => log::push_ms(s, d),
        None => s.push_str("null"),
    }
}

/// A ledger line as read back (unknown keys ignored, missing ones defaulted).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Entry {
    /// When the request arrived, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub time: String,
    /// The client's protocol.
    pub inbound: String,
    /// What the client asked for; `None` when it named nothing readable.
    pub model: Option<String>,
    /// `provider:model` that answered.
    pub served_by: Option<String>,
    /// Status sent to the client.
    pub status: u16,
    /// The client asked for a stream.
    pub stream: bool,
    /// How the stream ended ([`StreamEnd::name`]); `None` for no stream, or a line
    /// written before it was recorded.
    pub stream_end: Option<String>,
    /// Upstream attempts.
    pub attempts: u64,
    /// Times the stream broke and was continued.
    pub rescues: u64,
    /// The `provider:model` of each continuation, in order; written only on a rescued
    /// stream's line, so empty for others and for lines written before it was recorded.
    pub rescued_by: Vec<String>,
    /// Endpoints that failed first.
    pub failed: Vec<serde_json::Value>,
    /// The endpoint being asked when the client left before any answer went out.
    pub abandoned: Option<String>,
    /// Time to first byte.
    pub ttfb_ms: Option<f64>,
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Total time.
    pub total_ms: Option<f64>,
    /// Token counts.
    pub tokens: EntryTokens,
}

/// The `tokens` of an [`Entry`].
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct EntryTokens {
    /// Input tokens.
    pub input: Option<u64>,
    /// Output tokens.
    pub output: Option<u64>,
    /// Cached input tokens.
    pub cached_input: Option<u64>,
    /// Reasoning tokens.
    pub reasoning: Option<u64>,
}

impl Entry {
    /// How the stream ended; `None` also for a word this version does not know.
    fn stream_end(&self) -> Option<StreamEnd> {
        self.stream_end.as_deref().and_then(StreamEnd::named)
    }

    /// True when the request moved from a failed endpoint to another, as the
    /// `failovers_total` counter counts them: a retry of the same endpoint, or an
    /// endpoint that failed with nowhere else to go, is not one.
    fn failed_over(&self) -> bool {
        let mut asked = (self.failed.iter())
            .filter_map(|f| f["endpoint"].as_str())
            .chain(self.served_by.as_deref())
            .chain(self.abandoned.as_deref());
        let first = asked.next();
        asked.any(|e| Some(e) != first)
    }

    /// The finished request this line records; `None` when its time is unreadable.
    pub fn finished(&self) -> Option<Finished> {
        let at = time::parse(&self.time)?;
        let ms = |v: Option<f64>| {
            v.filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| Duration::from_secs_f64(v / 1000.0))
        };
        // Only the failed attempts and the one the client left are written down; the
        // status page shows no more.
        let left = self.abandoned.as_deref().map(|e| super::Tried {
            endpoint: Arc::from(e),
            word: std::borrow::Cow::Borrowed("client_closed"),
            continuation: false,
            ended: super::Ended::ClientGone,
        });
        let tried = self
            .failed
            .iter()
            .map(|f| {
                super::Tried::failed(
                    f["endpoint"].as_str().unwrap_or("-"),
                    f["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
                    f["reason"].as_str().unwrap_or(""),
                )
            })
            .chain(left)
            .collect();
        Some(Finished {
            at: std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(at).ok()?),
            inbound: crate::protocol::Protocol::named(&self.inbound)
                .unwrap_or(crate::protocol::Protocol::Chat),
            requested: self.model.clone().unwrap_or_default(),
            served_by: self.served_by.as_deref().map(Arc::from),
            status: self.status,
            stream: self.stream,
            stream_end: self.stream_end(),
            attempts: self.attempts as usize,
            rescues: self.rescues as usize,
            rescued_by: self.rescued_by.clone(),
            tried,
            ttfb: ms(self.ttfb_ms),
            ttft: ms(self.ttft_ms),
            total: ms(self.total_ms).unwrap_or_default(),
            tokens: super::Tokens {
                input: self.tokens.input,
                output: self.tokens.output,
                cached_input: self.tokens.cached_input,
                reasoning: self.tokens.reasoning,
            },
        })
    }
}

/// The requests recorded in the last `max` bytes before `len` of the ledger at `path`,
/// oldest first (a line cut by that window is skipped). Today's lines sit at the end,
/// so this finds them without reading a whole 64 MiB file at start-up.
pub fn tail(path: &Path, len: u64, max: u64) -> Vec<Finished> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let start = len.saturating_sub(max);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if f.take(len - start).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let mut lines = bytes.split(|b| *b == b'\n');
    if start > 0 {
        lines.next();
    }
    lines
        .filter_map(|l| serde_json::from_slice::<Entry>(l).ok())
        .filter_map(|e| e.finished())
        .collect()
}

/// How `routeplane usage` groups requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The provider that answered, else the last one asked (`-` for none).
    Provider,
    /// The `provider:model` that answered, else the last one asked (`-` for none).
    Model,
    /// The UTC date.
    Day,
}

impl By {
    /// Reads `provider`, `model` or `day`.
    pub fn parse(s: &str) -> Option<By> {
        match s {
            "provider" => Some(By::Provider),
            "model" => Some(By::Model),
            "day" => Some(By::Day),
            _ => None,
        }
    }

    /// The group key of an entry: where it counts ([`super::owner`]), or its day.
    /// Under `-` the errors were nobody's.
    fn key(self, e: &Entry) -> &str {
        let last_failed = || e.failed.last().and_then(|f| f["endpoint"].as_str());
        let owner = || {
            super::owner(e.served_by.as_deref(), e.abandoned.as_deref(), last_failed).unwrap_or("-")
        };
        match self {
            By::Provider => provider_of(owner()),
            By::Model => owner(),
            By::Day => e.time.get(..10).unwrap_or("-"),
        }
    }

    /// The group key of an attempt of entry `e` at `endpoint`: that endpoint's, or the
    /// entry's day.
    fn attempt_key<'e>(self, e: &'e Entry, endpoint: &'e str) -> &'e str {
        match self {
            By::Provider => provider_of(endpoint),
            By::Model => endpoint,
            By::Day => e.time.get(..10).unwrap_or("-"),
        }
    }
}

/// One row of `routeplane usage`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// The provider, model or date.
    pub key: String,
    /// Requests.
    pub requests: u64,
    /// Of which answered with an error: 4xx/5xx, or a stream that broke (a client that
    /// left is not one).
    pub errors: u64,
    /// Requests that moved past at least one failed endpoint.
    pub failovers: u64,
    /// Attempts at it that failed and were moved past (to a retry or another
    /// endpoint), whoever answered the request: a source that only failed has a row of
    /// its own. A request no endpoint answered has its last failed attempt as its
    /// error instead ([`moved_past`]).
    pub failed: u64,
    /// Times its requests' streams broke and were continued (by it or another).
    pub rescues: u64,
    /// Continuations it sent (part of an answer another endpoint, or itself, started
    /// and broke off), counted where the rescuer counts, as `routeplane_rescues_total`
    /// counts them: a rescuer that started no request has a row of its own.
    pub continued: u64,
    /// Input tokens reported.
    pub input: u64,
    /// Output tokens reported.
    pub output: u64,
    /// Time to first token, median (ms).
    pub ttft_p50: Option<f64>,
    /// Time to first token, 95th percentile (ms).
    pub ttft_p95: Option<f64>,
}

/// What reading the ledger found.
#[derive(Debug)]
pub struct Summary {
    /// Groups in key order, then a total row is up to the caller.
    pub groups: Vec<Group>,
    /// The total over every group.
    pub total: Group,
    /// Lines that were not ledger lines.
    pub skipped: u64,
}

impl Default for Summary {
    /// No requests: its total row is still labelled, as the table prints it.
    fn default() -> Summary {
        Summary {
            groups: Vec::new(),
            total: Group {
                key: "total".into(),
                ..Group::default()
            },
            skipped: 0,
        }
    }
}

/// Reads the previous and the current ledger file (either may be missing) and sums the
/// requests at or after `since_ms`.
pub fn summarize(path: &Path, since_ms: Option<i64>, by: By) -> std::io::Result<Summary> {
    let mut old = path.to_path_buf().into_os_string();
    old.push(".1");
    let mut groups: BTreeMap<String, (Group, Vec<f64>)> = BTreeMap::new();
    let mut total = (Summary::default().total, Vec::new());
    let mut skipped = 0;
    let mut found = false;
    for file in [PathBuf::from(old), path.to_path_buf()] {
        let f = match File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        found = true;
        for line in BufReader::new(f).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let Ok(e) = serde_json::from_str::<Entry>(&line) else {
                skipped += 1;
                continue;
            };
            let Some(at) = time::parse(&e.time) else {
                skipped += 1;
                continue;
            };
            if since_ms.is_some_and(|s| at < s) {
                continue;
            }
            let answered = e.served_by.is_some() || e.abandoned.is_some();
            for f in &e.failed[..moved_past(e.failed.len(), answered)] {
                let endpoint = f["endpoint"].as_str().unwrap_or("-");
                group(&mut groups, by.attempt_key(&e, endpoint)).0.failed += 1;
                total.0.failed += 1;
            }
            for rescuer in &e.rescued_by {
                group(&mut groups, by.attempt_key(&e, rescuer)).0.continued += 1;
                total.0.continued += 1;
            }
            let slot = group(&mut groups, by.key(&e));
            for (g, ttfts) in [&mut *slot, &mut total] {
                g.requests += 1;
                g.errors += u64::from(super::is_error(e.status, e.stream_end()));
                g.failovers += u64::from(e.failed_over());
                g.rescues += e.rescues;
                g.input += e.tokens.input.unwrap_or(0);
                g.output += e.tokens.output.unwrap_or(0);
                if let Some(t) = e.ttft_ms {
                    ttfts.push(t);
                }
            }
        }
    }
    if !found {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no ledger file yet",
        ));
    }
    let finish = |(mut g, mut t): (Group, Vec<f64>)| {
        t.sort_by(f64::total_cmp);
        g.ttft_p50 = percentile(&t, 50);
        g.ttft_p95 = percentile(&t, 95);
        g
    };
    Ok(Summary {
        groups: groups.into_values().map(finish).collect(),
        total: finish(total),
        skipped,
    })
}

/// The group (and its time-to-first-token samples) under `key`, made on first use: a
/// key is copied once, for its group's first line.
fn group<'g>(
    groups: &'g mut BTreeMap<String, (Group, Vec<f64>)>,
    key: &str,
) -> &'g mut (Group, Vec<f64>) {
    if !groups.contains_key(key) {
        let group = Group {
            key: key.to_string(),
            ..Group::default()
        };
        groups.insert(key.to_string(), (group, Vec::new()));
    }
    groups.get_mut(key).expect("inserted above")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;
    use crate::stats::{Ended, Stats, Tokens, Tried};

    /// The ledger line of a finished request, newline included.
    fn line(f: &Finished) -> String {
        let mut s = String::with_capacity(320 + 96 * f.tried.len());
        push_line(&mut s, f);
        s
    }

    fn sample() -> Finished {
        Finished {
            at: std::time::UNIX_EPOCH + Duration::from_millis(1_796_182_812_123),
            inbound: Protocol::Anthropic,
            requested: "sm\"art".into(),
            served_by: Some("local:llama3.1:8b".into()),
            status: 200,
            stream: true,
            stream_end: Some(StreamEnd::Complete),
            attempts: 2,
            rescues: 0,
            rescued_by: Vec::new(),
            tried: vec![
                Tried::failed("cloud:gpt", Some(503), "server error"),
                Tried {
                    endpoint: "local:llama3.1:8b".into(),
                    word: "200".into(),
                    continuation: false,
                    ended: Ended::Answered,
                },
            ],
            ttfb: Some(Duration::from_micros(12_340)),
            ttft: Some(Duration::from_micros(15_050)),
            total: Duration::from_millis(200),
            tokens: Tokens {
                input: Some(12),
                output: Some(3),
                cached_input: Some(2),
                reasoning: None,
            },
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let l = line(&sample());
        assert!(l.ends_with("}\n") && l.matches('\n').count() == 1);
        assert_eq!(
            l.trim_end(),
            r#"{"time":"2026-12-02T03:40:12.123Z","inbound":"anthropic","model":"sm\"art","served_by":"local:llama3.1:8b","status":200,"stream":true,"stream_end":"complete","attempts":2,"rescues":0,"failed":[{"endpoint":"cloud:gpt","status":503,"reason":"server error"}],"abandoned":null,"ttfb_ms":12.3,"ttft_ms":15.1,"total_ms":200.0,"tokens":{"input":12,"output":3,"cached_input":2,"reasoning":null}}"#
        );
        let back: Entry = serde_json::from_str(&l).unwrap();
        assert_eq!(back.tokens.input, Some(12));
        assert_eq!(back.failed.len(), 1);
    }

    #[test]
    fn broken_streams_are_errors_and_old_lines_are_still_read() {
        let dir = std::env::temp_dir().join(format!("routeplane-ends-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("usage.jsonl");
        let broken = Finished {
            stream_end: Some(StreamEnd::Broken),
            ..sample()
        };
        let mut left = Finished {
            served_by: None,
            status: 499,
            stream_end: None,
            ..sample()
        };
        left.tried[1].ended = Ended::ClientGone;
        // A line from before `stream_end` and `abandoned` were written.
        let old = r#"{"time":"2026-12-02T03:40:12.123Z","inbound":"chat_completions","model":"m","served_by":"local:llama3.1:8b","status":200,"stream":true,"attempts":1,"rescues":0,"failed":[],"ttfb_ms":1.0,"ttft_ms":1.0,"total_ms":2.0,"tokens":{"input":1,"output":1,"cached_input":null,"reasoning":null}}"#;
        let text = [line(&broken), line(&left), format!("{old}\n")].concat();
        std::fs::write(&path, &text).unwrap();
        let s = summarize(&path, None, By::Model).unwrap();
        assert_eq!(s.skipped, 0);
        let rows: Vec<_> = (s.groups.iter())
            .map(|g| (g.key.as_str(), g.requests, g.errors, g.failovers, g.failed))
            .collect();
        // The client left while local was asked, after cloud failed: local's request,
        // moved on to from cloud, and no one's error. Cloud failed twice, its own row.
        assert_eq!(
            rows,
            [("cloud:gpt", 0, 0, 0, 2), ("local:llama3.1:8b", 3, 1, 2, 0)]
        );
        let back = tail(&path, text.len() as u64, text.len() as u64);
        assert_eq!(back[0].stream_end, Some(StreamEnd::Broken));
        assert!(back[0].is_error());
        assert_eq!(back[1].abandoned(), Some("local:llama3.1:8b"));
        assert_eq!((back[2].stream, back[2].stream_end), (true, None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rescued_line_names_its_rescuers_and_usage_counts_each_where_it_continued() {
        let dir = std::env::temp_dir().join(format!("routeplane-rescued-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("usage.jsonl");
        let rescued = Finished {
            stream_end: Some(StreamEnd::Rescued),
            rescues: 2,
            rescued_by: vec!["local:llama3.1:8b".into(), "far:m".into()],
            ..sample()
        };
        let l = line(&rescued);
        assert!(
            l.contains(r#""rescues":2,"rescued_by":["local:llama3.1:8b","far:m"],"failed""#),
            "{l}"
        );
        assert!(
            !line(&sample()).contains("rescued_by"),
            "only a rescued line has it"
        );
        // A rescued stream's line from before `rescued_by` was written: its rescue stays
        // where the request counts, and no one is named as having continued it.
        let old = r#"{"time":"2026-12-02T03:40:12.123Z","inbound":"chat_completions","model":"m","served_by":"local:llama3.1:8b","status":200,"stream":true,"stream_end":"rescued","attempts":2,"rescues":1,"failed":[],"abandoned":null,"ttfb_ms":1.0,"ttft_ms":1.0,"total_ms":2.0,"tokens":{"input":1,"output":1,"cached_input":null,"reasoning":null}}"#;
        let text = [l, format!("{old}\n")].concat();
        std::fs::write(&path, &text).unwrap();
        let s = summarize(&path, None, By::Provider).unwrap();
        assert_eq!(s.skipped, 0);
        let rows: Vec<_> = (s.groups.iter())
            .map(|g| (g.key.as_str(), g.requests, g.rescues, g.continued))
            .collect();
        assert_eq!(
            rows,
            [("cloud", 0, 0, 0), ("far", 0, 0, 1), ("local", 2, 3, 1)]
        );
        assert_eq!((s.total.rescues, s.total.continued), (3, 2));
        let back = tail(&path, text.len() as u64, text.len() as u64);
        assert_eq!(back[0].rescued_by, rescued.rescued_by);
        assert!(back[1].rescued_by.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_tail_skips_a_cut_line_and_seeds_today() {
        let dir = std::env::temp_dir().join(format!("routeplane-tail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("usage.jsonl");
        let old = Finished {
            at: std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000),
            ..sample()
        };
        let now = Finished {
            at: SystemTime::now(),
            ..sample()
        };
        let text = [line(&old), line(&old), line(&now), line(&now)].concat();
        std::fs::write(&path, &text).unwrap();
        let len = text.len() as u64;
        // A window that starts inside the second line: three lines, the first cut.
        let window = len - line(&old).len() as u64 - 5;
        let got = tail(&path, len, window);
        assert_eq!(got.len(), 2, "the cut line is skipped");
        assert_eq!(got[0].tokens, now.tokens);
        // Read back, the failed attempts are what is left of the trail.
        assert_eq!(got[0].tried, now.tried[..1]);
        assert_eq!(tail(&path, len, len).len(), 4);

        let stats = Stats::default();
        stats.seed(tail(&path, len, len));
        let v: serde_json::Value =
            serde_json::from_str(&stats.status_json(&[crate::stats::tests::up_source("local")]))
                .unwrap();
        assert_eq!(
            v["sources"][0]["today"]["requests"], 2,
            "only today's lines: {v}"
        );
        assert_eq!(v["recent"].as_array().unwrap().len(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_dropped_ledger_writes_what_it_was_given() {
        let dir = std::env::temp_dir().join(format!("routeplane-drop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("usage.jsonl");
        let ledger = Ledger::open(path.clone(), u64::MAX, Arc::default());
        ledger.append(&line(&sample()));
        // No flush: dropping it writes its lines and takes its sink out of the batch.
        drop(ledger);
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, line(&sample()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rotation_keeps_one_previous_file() {
        let dir = std::env::temp_dir().join(format!("routeplane-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("usage.jsonl");
        let one = line(&sample()).len() as u64;
        let ledger = Ledger::open(path.clone(), one * 3, Arc::default());
        // Gathered into one batch, the lines still turn the file over where one write
        // per line would.
        for _ in 0..10 {
            ledger.append(&line(&sample()));
        }
        ledger.flush();
        let current = std::fs::read_to_string(&path).unwrap();
        let previous = std::fs::read_to_string(dir.join("usage.jsonl.1")).unwrap();
        assert_eq!(previous.lines().count(), 4, "rotated once past 3 lines");
        assert_eq!(current.lines().count(), 2);
        let s = summarize(&path, None, By::Provider).unwrap();
        assert_eq!(s.total.requests, 6);
        assert_eq!((s.groups[0].key.as_str(), s.groups[0].failed), ("cloud", 6));
        assert_eq!(s.groups[1].key, "local");
        assert_eq!((s.total.failovers, s.total.input), (6, 72));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
