//! The one log line per request, and `Secret`, the type that keeps keys out of logs.
//!
//! Routeplane logs to stderr without a logging crate: one line per request and one
//! per notable event (start-up, a source going up or down). Each line starts with an
//! RFC 3339 time in UTC (formatted here, no date crate); with `log.format: json` each is
//! one JSON object with the same fields instead. Once a server listens, its lines are
//! gathered and written in batches ([`crate::batch`]). Nothing that holds a credential can be
//! printed by accident: credentials live in [`Secret`], whose `Debug` and `Display`
//! print `***`, and a URL is shown through [`shown_url`] (both in `shown.rs`).

mod shown;

pub use self::shown::{Secret, host_of, printable, shown_url, unprintable};

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::batch::{self, Batch, Sink};
use crate::time::Rfc3339;

/// How log lines are written: `log.format` in routeplane.yaml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `2026-12-02T03:28:24.123Z POST /v1/messages model=… status=…`, one line each.
    #[default]
    Text,
    /// The same fields as one JSON object per line, for log shippers.
    Json,
}

/// Set from `log.format`; read by every line.
static JSON: AtomicBool = AtomicBool::new(false);
/// Set by commands that are not the server (`models`, `providers`): they print tables,
/// not log lines.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Chooses the format of every line written from now on.
pub fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::Relaxed);
}

/// Stops every log line (for commands whose output is a table on stdout).
pub fn silence() {
    QUIET.store(true, Ordering::Relaxed);
}

/// How a streamed answer ended, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream's end marker reached the client.
    Complete,
    /// The upstream broke, stalled or erred after the first event; the client got an
    /// error event in its protocol.
    Broken,
    /// The upstream broke after the first event and another endpoint finished the answer.
    Rescued,
    /// The client went away before the end.
    ClientClosed,
    /// The upstream broke (closed, cut, went silent or erred) right after whole tool
    /// calls, before its finish marker, and the client got its protocol's ending for a
    /// tool call: calls the break came before are lost.
    BrokeAfterCall,
}

impl StreamEnd {
    /// The word in the log line.
    pub fn name(self) -> &'static str {
        match self {
            StreamEnd::Complete => "complete",
            StreamEnd::Broken => "broken",
            StreamEnd::Rescued => "rescued",
            StreamEnd::ClientClosed => "client_closed",
            StreamEnd::BrokeAfterCall => "broke_after_call",
        }
    }

    /// The end a word of [`StreamEnd::name`] names, as the usage ledger reads it back.
    pub fn named(word: &str) -> Option<StreamEnd> {
        [
            StreamEnd::Complete,
            StreamEnd::Broken,
            StreamEnd::Rescued,
            StreamEnd::ClientClosed,
            StreamEnd::BrokeAfterCall,
        ]
        .into_iter()
        .find(|e| e.name() == word)
    }
}

/// What one request did, for its log line.
#[derive(Debug, Default, Clone)]
pub struct RequestLog {
    /// When the request arrived.
    pub at: Option<SystemTime>,
    /// HTTP method.
    pub method: Cow<'static, str>,
    /// Request path (no query string: it may carry a key).
    pub path: Cow<'static, str>,
    /// The model the client asked for (`a,b` for a `models` list), even an unknown one.
    pub model: String,
    /// `provider:model` that answered, if any.
    pub served_by: Option<Arc<str>>,
    /// Status sent to the client.
    pub status: u16,
    /// How a streamed answer ended; `None` when the answer was not a stream.
    pub stream: Option<StreamEnd>,
    /// How many upstream attempts were made.
    pub attempts: usize,
    /// Each attempt as `(provider:model, result)`: a status, or why it failed.
    pub tried: Vec<(String, String)>,
    /// Time until the first byte went to the client.
    pub ttfb: Option<Duration>,
    /// Time until the response was complete.
    pub total: Duration,
    /// Times a broken stream was continued, and by which endpoints (`provider:model`).
    pub rescued: Vec<String>,
    /// What each endpoint that failed with words of its own (a 429's "You exceeded
    /// your current quota") said, as `(provider:model, words)`: escaped and short
    /// ([`printable`]), for the operator, whom the bare status in `tried=` leaves guessing.
    pub said: Vec<(String, String)>,
    /// Why Routeplane refused the request before it ran (`workers`, `stopping`, or a
    /// limit on the request's head); `None` for a request that ran.
    pub refused: Option<&'static str>,
}

impl RequestLog {
    /// Records the attempts, each as `(provider:model, result)`, when the line shows
    /// them: a JSON line always does, a text line only per `RequestLog::shows_tried`
    /// (not for the usual single answered attempt, which then costs no copy).
    pub fn set_tried<'a>(&mut self, tried: impl Iterator<Item = (&'a str, &'a str)> + Clone) {
        if JSON.load(Ordering::Relaxed) || worth_showing(tried.clone().map(|(_, r)| r)) {
            self.tried = tried.map(|(t, r)| (t.to_string(), r.to_string())).collect();
        }
    }

    /// True when `tried=` is worth a field in a text line.
    fn shows_tried(&self) -> bool {
        worth_showing(self.tried.iter().map(|(_, r)| r.as_str()))
    }

    /// The line as one JSON object with the same fields as the text line.
    pub fn to_json(&self) -> String {
        let ms = |d: Option<Duration>| d.map(|d| ((d.as_micros() + 50) / 100) as f64 / 10.0);
        let tried: Vec<serde_json::Value> = self
            .tried
            .iter()
            .map(|(target, result)| serde_json::json!({"target": target, "result": result}))
            .collect();
        let mut line = serde_json::json!({
            "ts": self.at.map(|t| Rfc3339(t).to_string()),
            "method": self.method,
            "path": self.path,
            "model": (!self.model.is_empty()).then_some(&self.model),
            "served_by": self.served_by.as_deref(),
            "status": self.status,
            "stream": self.stream.map(StreamEnd::name),
            "attempts": self.attempts,
            "tried": tried,
            "rescued": self.rescued.len(),
            "rescued_by": self.rescued,
            "ttfb_ms": ms(self.ttfb),
            "total_ms": ms(Some(self.total)),
        });
        // Only on a refused request's line, as in the text line.
        if let Some(why) = self.refused {
            line["refused"] = why.into();
        }
        // Only when an endpoint failed in words of its own, as in the text line.
        if !self.said.is_empty() {
            let said = self.said.iter();
            line["said"] = said
                .map(|(target, words)| serde_json::json!({"target": target, "words": words}))
                .collect();
        }
        line.to_string()
    }
}

impl RequestLog {
    /// Appends the text line (no newline) to `out`. By hand, not through `write!`: the
    /// formatting machinery was ~8k instructions a request of ~125k (callgrind).
    pub fn push_text(&self, out: &mut String) {
        if let Some(at) = self.at {
            Rfc3339(at).push_to(out);
            out.push(' ');
        }
        push_word(out, &self.method);
        out.push(' ');
        push_word(out, &self.path);
        out.push_str(" model=");
        push_word(out, &self.model);
        out.push_str(" served_by=");
        push_word(out, self.served_by.as_deref().unwrap_or(""));
        out.push_str(" status=");
        push_u64(out, u64::from(self.status));
        if let Some(end) = self.stream {
            out.push_str(" stream=");
            out.push_str(end.name());
        }
        out.push_str(" attempts=");
        push_u64(out, self.attempts as u64);
        if !self.tried.is_empty()
            || !self.rescued.is_empty()
            || !self.said.is_empty()
            || self.refused.is_some()
        {
            self.push_unusual(out);
        }
        out.push_str(" ttfb_ms=");
        push_opt_ms(out, self.ttfb);
        out.push_str(" total_ms=");
        push_ms(out, self.total);
    }

    /// Appends the fields the usual answered request's line has none of: `tried=`,
    /// `rescued=`, `said=`, `refused=`. Out of line, so their code is not among the
    /// usual line's code lines (issue 16).
    #[cold]
    #[inline(never)]
    fn push_unusual(&self, out: &mut String) {
        if self.shows_tried() {
            let mut tried = String::with_capacity(64);
            for (i, (target, result)) in self.tried.iter().enumerate() {
                if i > 0 {
                    tried.push(',');
                }
                tried.push_str(target);
                tried.push('→');
                tried.push_str(result);
            }
            out.push_str(" tried=");
            push_word(out, &tried);
        }
        if !self.rescued.is_empty() {
            out.push_str(" rescued=");
            push_u64(out, self.rescued.len() as u64);
            out.push_str(" rescued_by=");
            push_word(out, &self.rescued.join(","));
        }
        if !self.said.is_empty() {
            let said: Vec<String> = (self.said.iter())
                .map(|(target, words)| format!("{target}: {words}"))
                .collect();
            out.push_str(" said=");
            push_word(out, &said.join("; "));
        }
        if let Some(why) = self.refused {
            out.push_str(" refused=");
            out.push_str(why);
        }
    }
}

impl fmt::Display for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(256);
        self.push_text(&mut s);
        f.write_str(&s)
    }
}

/// True when attempts are worth a `tried=` field, given their results: more than one
/// attempt, or one that failed (a result not a bare 2xx status: a stream that broke
/// after content went out is `200:broken`).
fn worth_showing<'a>(mut results: impl Iterator<Item = &'a str> + Clone) -> bool {
    let answered = |r: &str| r.len() == 3 && r.starts_with('2');
    results.clone().nth(1).is_some() || results.any(|r| !answered(r))
}

/// Appends a value of a text line: as is, `-` when empty, JSON-quoted when it holds a
/// space, a quote, an `=` or a control character, so a client's model name cannot
/// forge a line or a field.
fn push_word(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('-');
        return;
    }
    // Bytes first (printable ASCII is plain); characters only for other text. The
    // character test alone was ~20 instructions a byte, four words a line.
    let plain = plain_ascii(s.as_bytes())
        || (!s.is_ascii()
            && s.chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '='));
    if plain {
        out.push_str(s);
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

/// True when every byte of `s` is printable ASCII other than `"` and `=`: eight at a
/// time, as a byte at a time this was ~7 instructions a byte (~700 a log line).
fn plain_ascii(s: &[u8]) -> bool {
    // Below `!` (a space, a control), 0x7f and up (+1 carries into the high bit; a
    // carry out of 0xff leaves a byte already flagged), `"`, `=`.
    every_word(s, |w| {
        let bad = (w.wrapping_sub(ONES * 0x21) & !w)
            | w
            | w.wrapping_add(ONES)
            | zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'=')));
        bad & HIGH == 0
    })
}

/// `0x0101…01`: a byte-wise constant times this is that byte in every place.
pub(crate) const ONES: u64 = u64::from_le_bytes([0x01; 8]);
/// The high bit of every byte.
pub(crate) const HIGH: u64 = u64::from_le_bytes([0x80; 8]);

/// The high bit of a byte set where the byte of `w` is zero (exact as a yes or no: a
/// borrow only leaves a byte that is itself zero).
pub(crate) fn zero_byte(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w
}

/// True when `ok` holds for every eight bytes of `s`, read as a little-endian word:
/// `ok` judges each byte alone, so the last word may overlap the one before, and a
/// text shorter than a word is read with its bytes repeated, or padded with `a` (a
/// byte every caller takes). No byte-at-a-time tail: the four words of a log line
/// had one each, ~7 instructions a byte.
pub(crate) fn every_word(s: &[u8], ok: impl Fn(u64) -> bool) -> bool {
    let word = |at: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let half = |at: usize| {
        let mut w = [0; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u64::from(u32::from_le_bytes(w))
    };
    let n = s.len();
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if !ok(word(at)) {
                return false;
            }
            at += 8;
        }
        ok(word(n - 8))
    } else if n >= 4 {
        ok(half(0) | half(n - 4) << 32)
    } else if n > 0 {
        let pad = (ONES * u64::from(b'a')) & !0xff_ffff;
        ok(pad | u64::from(s[0]) | u64::from(s[n / 2]) << 8 | u64::from(s[n - 1]) << 16)
    } else {
        true
    }
}

/// Appends a duration as milliseconds with one decimal, or `-`. Inlined: a call of
/// its own was ~10 instructions more.
#[inline]
fn push_opt_ms(out: &mut String, d: Option<Duration>) {
    match d {
        None => out.push('-'),
        Some(d) => push_ms(out, d),
    }
}

/// Appends a duration as milliseconds with one decimal (`12.3`), rounded to the
/// nearest tenth; integer arithmetic, no allocation.
pub fn push_ms(out: &mut String, d: Duration) {
    // Whole seconds and nanoseconds apart, in u64 and u32 (u128 division is a library
    // call), as rounding microseconds gave; those saturate past 584,000 years.
    const EXACT: u64 = u64::MAX / 1_000_000 - 1;
    let secs = d.as_secs();
    let tenths = if secs <= EXACT {
        secs * 10_000 + u64::from((d.subsec_nanos() + 50_000) / 100_000)
    } else {
        let micros = secs
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(d.subsec_micros()));
        micros.saturating_add(50) / 100
    };
    push_u64(out, tenths / 10);
    out.push('.');
    push_digit(out, tenths);
}

/// Appends the last decimal digit of `n`. Through `% 10` the compiler sees it is ASCII
/// and pushes a byte; a character it cannot bound is pushed as UTF-8, ~10 instructions.
fn push_digit(out: &mut String, n: u64) {
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Appends a number in decimal, without `core::fmt` (see [`RequestLog::push_text`]):
/// two digits at a time, each pushed as the character it is, and below 10 000 (every
/// number of the usual request's two lines) without a call of its own, nor the saved
/// registers a call needs. Through [`decimal`] and a copy of its digits the fifteen
/// numbers of a request's two lines were ~1.2k instructions (callgrind).
pub fn push_u64(out: &mut String, n: u64) {
    if n < 10 {
        push_digit(out, n);
    } else if n < 100 {
        push_pair(out, n);
    } else if n < 10_000 {
        // The first one or two digits, then the last two.
        if n < 1000 {
            push_digit(out, n / 100);
        } else {
            push_pair(out, n / 100);
        }
        push_pair(out, n % 100);
    } else {
        push_large(out, n);
    }
}

/// [`push_u64`] from 10 000 up.
#[inline(never)]
fn push_large(out: &mut String, n: u64) {
    push_u64(out, n / 10_000);
    push_pair(out, n / 100 % 100);
    push_pair(out, n % 100);
}

/// Appends the last two decimal digits of `n`.
fn push_pair(out: &mut String, n: u64) {
    push_digit(out, n / 10);
    push_digit(out, n);
}

/// `n` in decimal, written into the end of `buf`: the digits, without `core::fmt`.
pub fn decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Writes one event line to stderr: `TIME message`, or `{"ts", "msg"}` in JSON.
pub fn line(msg: impl fmt::Display) {
    use std::fmt::Write as _;
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    let now = Rfc3339(SystemTime::now());
    let mut text = String::with_capacity(128);
    if JSON.load(Ordering::Relaxed) {
        let v = serde_json::json!({"ts": now.to_string(), "msg": msg.to_string()});
        let _ = writeln!(text, "{v}");
    } else {
        let _ = write!(text, "{now} ");
        let start = text.len();
        let _ = write!(text, "{msg}");
        if text[start..].contains(char::is_control) {
            let flat = one_line(&text[start..]);
            text.truncate(start);
            text.push_str(&flat);
        }
        text.push('\n');
    }
    write_line(&text);
}

/// `msg` with its control characters escaped as JSON writes them (`\n`, `\u001b`): an
/// event line may quote what a server answered (a source's error page), and that must
/// neither forge a line of its own nor reach the terminal as an escape sequence.
fn one_line(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len() + 16);
    for c in msg.chars() {
        if c.is_control() {
            let quoted = serde_json::Value::from(c.to_string()).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes one request's line to stderr, in the chosen format.
pub fn request(log: &RequestLog) {
    Lines::request(Some(log)).write();
}

/// A request's log line in this thread's line buffer, for the usage ledger's line to
/// join: both go to the batch in one hand-over (one lock, one copy, one look at the
/// clock, ~250 instructions fewer a request than two, callgrind).
pub struct Lines {
    text: String,
}

impl Lines {
    /// Takes this thread's line buffer (see [`with_buffer`]) and writes `log`'s line
    /// into it: none for `None`, or while lines are silenced.
    pub fn request(log: Option<&RequestLog>) -> Lines {
        let mut text = crate::sync::take_spare(&LINE);
        if let Some(log) = log.filter(|_| !QUIET.load(Ordering::Relaxed)) {
            push_request(&mut text, log);
        }
        Lines { text }
    }

    /// Writes the log line alone.
    pub fn write(self) {
        if !self.text.is_empty() {
            write_line(&self.text);
        }
        self.give_back();
    }

    /// Appends the line `more` writes (newline included) for `sink` and writes both:
    /// in one hand-over when both go to the batch, else the log line as [`request()`]
    /// writes it and the other through `alone`. `now` is the time, just read.
    pub fn write_with(
        mut self,
        now: Instant,
        sink: Option<(&'static Batch, Sink)>,
        more: impl FnOnce(&mut String),
        alone: impl FnOnce(&str),
    ) {
        let logged = self.text.len();
        more(&mut self.text);
        match (BATCH.get(), sink) {
            (Some(&(batch, log)), Some((other, sink))) if std::ptr::eq(batch, other) => {
                let ends = [(log, logged), (sink, self.text.len())];
                let ends = if logged == 0 { &ends[1..] } else { &ends[..] };
                batch.push_lines(self.text.as_bytes(), ends, Some(now));
            }
            _ => {
                if logged > 0 {
                    write_line(&self.text[..logged]);
                }
                alone(&self.text[logged..]);
            }
        }
        self.give_back();
    }

    fn give_back(self) {
        crate::sync::keep_spare(&LINE, self.text);
    }
}

/// Appends a request's line, newline included, in the chosen format.
fn push_request(text: &mut String, log: &RequestLog) {
    if JSON.load(Ordering::Relaxed) {
        push_json(text, log);
    } else {
        log.push_text(text);
    }
    text.push('\n');
}

/// Appends a request's line as JSON: out of line, as the usual text line's code lines
/// are fewer without it (issue 16).
#[inline(never)]
fn push_json(text: &mut String, log: &RequestLog) {
    text.push_str(&log.to_json());
}

thread_local! {
    /// This thread's line buffer (see [`with_buffer`]).
    static LINE: Cell<String> = const { Cell::new(String::new()) };
}

/// Runs `f` with this thread's line buffer, cleared: a connection thread writes the head
/// of each answer, and the log line and the ledger line of every request it serves,
/// into the same allocation (see [`crate::sync::take_spare`]). A line written while
/// writing a line gets a buffer of its own.
pub fn with_buffer<R>(f: impl FnOnce(&mut String) -> R) -> R {
    crate::sync::with_spare(&LINE, f)
}

/// Where a server's lines go in the process's batch: set by [`batch_lines`].
static BATCH: std::sync::OnceLock<(&'static Batch, Sink)> = std::sync::OnceLock::new();

/// From now on lines are gathered and written in batches (see [`crate::batch`]); the
/// server calls this once it has said where it listens, and [`flush`] when it stops.
pub fn batch_lines() {
    // Without the writer thread, lines stay one write each.
    if let Some(lines) = batch::lines() {
        BATCH.get_or_init(|| (lines, lines.add_sink(write_direct)));
    }
}

/// Writes the lines gathered so far.
pub fn flush() {
    if let Some((batch, _)) = BATCH.get() {
        batch.flush();
    }
}

/// One line, whole: gathered into the next batch, or written at once before a server runs.
fn write_line(text: &str) {
    match BATCH.get() {
        Some((batch, sink)) => batch.push(*sink, text.as_bytes()),
        None => write_direct(text.as_bytes()),
    }
}

/// One `write(2)` of whole lines.
fn write_direct(text: &[u8]) {
    use std::io::Write;
    // Stderr is unbuffered: `eprintln!` would make one write per formatted piece
    // (sixteen for a request line), and lines of concurrent requests could interleave.
    // So: format first, then one write. And not through `Stderr`'s lock: with dozens
    // of requests finishing at once, threads queued on it (futex waits in a profile at
    // 32 clients). A line is one `write(2)` on a duplicate of fd 2, whole on its own.
    match stderr_file() {
        Some(mut f) => {
            let _ = f.write_all(text);
        }
        None => {
            let _ = std::io::stderr().write_all(text);
        }
    }
}

/// A duplicate of the stderr descriptor, made once; writes through it take no lock.
#[cfg(unix)]
fn stderr_file() -> Option<&'static std::fs::File> {
    use std::os::fd::AsFd;
    use std::sync::OnceLock;
    static FILE: OnceLock<Option<std::fs::File>> = OnceLock::new();
    FILE.get_or_init(|| {
        let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
        Some(std::fs::File::from(fd))
    })
    .as_ref()
}

#[cfg(not(unix))]
fn stderr_file() -> Option<&'static std::fs::File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::UNIX_EPOCH;

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for n in (0..20_000)
            .chain((0..64).map(|b| 1u64 << b))
            .chain([u64::MAX - 1, u64::MAX])
        {
            let mut s = String::from("x");
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    #[test]
    fn milliseconds_round_to_the_nearest_tenth_as_microseconds_did() {
        let by_micros = |d: Duration| {
            let micros = (d.as_secs().saturating_mul(1_000_000))
                .saturating_add(u64::from(d.subsec_micros()));
            let tenths = micros.saturating_add(50) / 100;
            format!("{}.{}", tenths / 10, tenths % 10)
        };
        let nanos = [
            0,
            1,
            49_999,
            50_000,
            99_999,
            100_000,
            149_999,
            150_000,
            999_999_999,
        ];
        let secs = [
            0,
            1,
            59,
            86_400,
            u64::MAX / 1_000_000 - 1,
            u64::MAX / 1_000_000,
            u64::MAX,
        ];
        for s in secs {
            for n in nanos
                .iter()
                .copied()
                .chain((0..1000).map(|i| i * 1_000_003))
            {
                let d = Duration::new(s, n);
                let mut out = String::new();
                push_ms(&mut out, d);
                assert_eq!(out, by_micros(d), "{d:?}");
            }
        }
    }

    fn sample() -> RequestLog {
        RequestLog {
            at: Some(UNIX_EPOCH + Duration::from_millis(1_795_835_304_123)),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: "smart".into(),
            served_by: Some("llamacpp:tiny".into()),
            status: 200,
            stream: Some(StreamEnd::Broken),
            attempts: 2,
            tried: vec![
                ("ollama:llama3".into(), "refused".into()),
                ("llamacpp:tiny".into(), "200".into()),
            ],
            ttfb: Some(Duration::from_micros(1_260)),
            total: Duration::from_micros(12_345_049),
            rescued: Vec::new(),
            refused: None,
            said: Vec::new(),
        }
    }

    #[test]
    fn request_lines_show_milliseconds_with_one_decimal() {
        let log = RequestLog {
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            status: 200,
            attempts: 1,
            ttfb: Some(Duration::from_micros(1_260)),
            total: Duration::from_micros(12_345_049),
            ..RequestLog::default()
        };
        assert_eq!(
            log.to_string(),
            "POST /v1/chat/completions model=- served_by=- status=200 attempts=1 ttfb_ms=1.3 total_ms=12345.0"
        );
        let no_ttfb = RequestLog { ttfb: None, ..log };
        assert!(no_ttfb.to_string().contains("ttfb_ms=- "));
    }

    #[test]
    fn a_failed_over_broken_stream_says_so_in_text_and_json() {
        assert_eq!(
            sample().to_string(),
            "2026-11-28T03:08:24.123Z POST /v1/chat/completions model=smart served_by=llamacpp:tiny status=200 stream=broken attempts=2 tried=ollama:llama3→refused,llamacpp:tiny→200 ttfb_ms=1.3 total_ms=12345.0"
        );
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "ts": "2026-11-28T03:08:24.123Z", "method": "POST", "path": "/v1/chat/completions",
                "model": "smart", "served_by": "llamacpp:tiny", "status": 200, "stream": "broken",
                "attempts": 2,
                "tried": [{"target": "ollama:llama3", "result": "refused"}, {"target": "llamacpp:tiny", "result": "200"}],
                "rescued": 0, "rescued_by": [],
                "ttfb_ms": 1.3, "total_ms": 12345.0,
            })
        );
    }

    #[test]
    fn a_rescued_stream_names_each_attempt_and_its_rescuers_in_text_and_json() {
        let log = RequestLog {
            stream: Some(StreamEnd::Rescued),
            attempts: 3,
            tried: vec![
                ("a:m".into(), "200:broken".into()),
                ("a:m".into(), "503".into()),
                ("b:m".into(), "200".into()),
            ],
            served_by: Some("a:m".into()),
            rescued: vec!["b:m".into()],
            ..sample()
        };
        assert_eq!(
            log.to_string(),
            "2026-11-28T03:08:24.123Z POST /v1/chat/completions model=smart served_by=a:m status=200 stream=rescued attempts=3 tried=a:m→200:broken,a:m→503,b:m→200 rescued=1 rescued_by=b:m ttfb_ms=1.3 total_ms=12345.0"
        );
        let v: serde_json::Value = serde_json::from_str(&log.to_json()).unwrap();
        assert_eq!(v["stream"], "rescued");
        assert_eq!(v["rescued"], 1);
        assert_eq!(v["rescued_by"], serde_json::json!(["b:m"]));
        assert_eq!(
            v["tried"][0],
            serde_json::json!({"target": "a:m", "result": "200:broken"})
        );
    }

    #[test]
    fn a_word_is_plain_eight_bytes_at_a_time_as_it_is_a_byte_at_a_time() {
        let plain = |b: &u8| *b > b' ' && *b < 0x7f && *b != b'"' && *b != b'=';
        // Every byte at every place, beside a neighbour at the edges of the ranges (a
        // borrow or a carry crossing into it must not change the answer).
        for len in [1, 2, 3, 4, 5, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0..=255u8 {
                    for other in [b'a', 0x00, 0x20, 0x21, 0x7e, 0x7f, 0x80, 0xff] {
                        let mut word = vec![b'a'; len];
                        word[(at + 1) % len] = other;
                        word[at] = b;
                        let want = word.iter().all(plain);
                        assert_eq!(plain_ascii(&word), want, "{word:x?}");
                    }
                }
            }
        }
        assert!(plain_ascii(b""));
    }

    #[test]
    fn words_outside_printable_ascii_are_quoted() {
        for (word, want) in [
            ("mock-model", "mock-model"),
            ("modèle", "modèle"),
            ("a\u{a0}b", "\"a\u{a0}b\""),
            ("a\u{85}b", "\"a\u{85}b\""),
            ("a\u{7f}b", "\"a\u{7f}b\""),
            ("a=b", "\"a=b\""),
        ] {
            let mut out = String::new();
            push_word(&mut out, word);
            assert_eq!(out, want, "{word:?}");
        }
    }

    #[test]
    fn client_text_cannot_forge_a_line_or_a_field() {
        let log = RequestLog {
            model: "m\nPOST /x status=200".into(),
            served_by: None,
            stream: None,
            attempts: 0,
            tried: Vec::new(),
            ..sample()
        };
        let line = log.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains(
                r#" model="m\nPOST /x status=200" served_by=- status=200 attempts=0 ttfb_ms"#
            ),
            "{line}"
        );
    }
}
