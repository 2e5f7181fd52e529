//! What a translation gives a client beyond plain text: a turn Anthropic paused, the
//! citations of a web search, a refusal beside text (answers.rs); the built-in tools a
//! client runs itself and a choice of allowed tools (tools.rs); no more stop sequences
//! than the source takes, and the parameters a source refuses, in each source's own
//! words (parameters.rs).

mod answers;
mod parameters;
mod tools;

// login/requests.rs sends the same paused turn through a login.
pub use answers::{paused_answer, paused_events, paused_reply};

use serde_json::Value;

use crate::support::proxy::Streamed;

/// Each event's data as JSON (Gemini's events end with CRLF CRLF).
fn event_data(s: &Streamed) -> Vec<Value> {
    s.text()
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}
