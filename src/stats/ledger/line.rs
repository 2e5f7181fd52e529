//! One ledger line: written from a finished request by hand, and read back as an [`Entry`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::log::{self, StreamEnd, push_u64};
use crate::stats::{Finished, push_json_str};
use crate::time;

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

/// A number, or `null`. Inlined: four a line, each a call was ~10 instructions more.
#[inline]
fn push_opt(s: &mut String, n: Option<u64>) {
    match n {
        Some(n) => push_u64(s, n),
        None => s.push_str("null"),
    }
}

/// Milliseconds with one decimal, or `null`. Inlined, as [`push_opt`].
#[inline]
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
    pub(super) fn stream_end(&self) -> Option<StreamEnd> {
        self.stream_end.as_deref().and_then(StreamEnd::named)
    }

    /// True when the request moved from a failed endpoint to another, as the
    /// `failovers_total` counter counts them: a retry of the same endpoint, or an
    /// endpoint that failed with nowhere else to go, is not one.
    pub(super) fn failed_over(&self) -> bool {
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
            // A file edited by hand may hold any number; too large for a duration
            // is unreadable, as a negative one is.
            v.and_then(|v| Duration::try_from_secs_f64(v / 1000.0).ok())
        };
        // Only the failed attempts and the one the client left are written down; the
        // status page shows no more.
        let left = self.abandoned.as_deref().map(|e| crate::stats::Tried {
            endpoint: Arc::from(e),
            word: std::borrow::Cow::Borrowed("client_closed"),
            continuation: false,
            ended: crate::stats::Ended::ClientGone,
        });
        let tried = self
            .failed
            .iter()
            .map(|f| {
                crate::stats::Tried::failed(
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
            tokens: crate::stats::Tokens {
                input: self.tokens.input,
                output: self.tokens.output,
                cached_input: self.tokens.cached_input,
                reasoning: self.tokens.reasoning,
            },
        })
    }
}
