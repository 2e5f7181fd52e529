//! The one log line per request, and `Secret`, the type that keeps keys out of logs.
//!
//! Routeplane logs to stderr without a logging crate: one line per request and one
//! per notable event (start-up, a source going up or down). Nothing that holds a
//! credential can be printed by accident: credentials live in [`Secret`], whose
//! `Debug` and `Display` print `***`.

use std::fmt;
use std::time::Duration;

/// A credential: an API key, an access or refresh token, a client key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What one request did, for its log line.
#[derive(Debug, Default, Clone)]
pub struct RequestLog {
    /// HTTP method.
    pub method: String,
    /// Request path (no query string: it may carry a key).
    pub path: String,
    /// The model the client asked for.
    pub model: String,
    /// `provider:model` that answered, if any.
    pub served_by: Option<String>,
    /// Status sent to the client.
    pub status: u16,
    /// How many upstream attempts were made.
    pub attempts: usize,
    /// Time until the first byte went to the client.
    pub ttfb: Option<Duration>,
    /// Time until the response was complete.
    pub total: Duration,
    /// Times a broken stream was continued, and by which endpoints (`provider:model`).
    pub rescued: Vec<String>,
}

impl fmt::Display for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let model = if self.model.is_empty() {
            "-"
        } else {
            &self.model
        };
        let served = self.served_by.as_deref().unwrap_or("-");
        write!(
            f,
            "{} {} model={} served_by={} status={} attempts={} ttfb_ms={} total_ms={}",
            self.method,
            self.path,
            model,
            served,
            self.status,
            self.attempts,
            OptMs(self.ttfb),
            OptMs(Some(self.total)),
        )?;
        if !self.rescued.is_empty() {
            write!(
                f,
                " rescued={} rescued_by={}",
                self.rescued.len(),
                self.rescued.join(",")
            )?;
        }
        Ok(())
    }
}

/// A duration as milliseconds with one decimal, or `-`; integer arithmetic, no
/// allocation (float formatting was a visible part of each request's instructions).
struct OptMs(Option<Duration>);

impl fmt::Display for OptMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("-"),
            Some(d) => {
                let tenths = (d.as_micros() + 50) / 100;
                write!(f, "{}.{}", tenths / 10, tenths % 10)
            }
        }
    }
}

/// Writes one line to stderr, prefixed with `routeplane:`.
pub fn line(msg: impl fmt::Display) {
    use std::fmt::Write as _;
    use std::io::Write;
    // Stderr is unbuffered: `eprintln!` would make one write per formatted piece
    // (sixteen for a request line), and lines of concurrent requests could interleave.
    // So: format first, then one write. And not through `Stderr`'s lock: with dozens
    // of requests finishing at once, threads queued on it (futex waits in a profile at
    // 32 clients). A line is one `write(2)` on a duplicate of fd 2, whole on its own.
    let mut text = String::with_capacity(256);
    let _ = writeln!(text, "routeplane: {msg}");
    match stderr_file() {
        Some(mut f) => {
            let _ = f.write_all(text.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(text.as_bytes());
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

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "sk-live-123");
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
}
