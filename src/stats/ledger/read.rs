//! Reading the ledger back: its tail, for today's counters at start-up, and the sums
//! of `routeplane usage` over the current and the previous file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::Entry;
use crate::registry::provider_of;
use crate::stats::{Finished, moved_past, percentile};
use crate::time;

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

    /// The group key of an entry: where it counts ([`crate::stats::owner`]), or its day.
    /// Under `-` the errors were nobody's.
    fn key(self, e: &Entry) -> &str {
        let last_failed = || e.failed.last().and_then(|f| f["endpoint"].as_str());
        let owner = || {
            crate::stats::owner(e.served_by.as_deref(), e.abandoned.as_deref(), last_failed)
                .unwrap_or("-")
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
            // From bytes, as `tail` reads them: one reader of `Entry` in the binary,
            // not one for text and one for bytes.
            let Ok(e) = serde_json::from_slice::<Entry>(line.as_bytes()) else {
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
                g.errors += u64::from(crate::stats::is_error(e.status, e.stream_end()));
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
