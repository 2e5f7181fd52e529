//! What a new user meets in the first hour: the README's first example working with no
//! config, a start-up that says what it found, answers to `HEAD`, config errors that
//! name the key, and answers that look the same however they travelled.

mod answers;
mod config_errors;
mod missing_keys;
mod quick_start;
mod start_up;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::proxy::bin;
use crate::support::upstream::{Recorded, chat_answer, chat_events};
use crate::support::{Dir, MockUpstream, Proxy, Reply, assert_text, config_error, validate};

/// A mock Ollama serving `llama3.1`: native listing, OpenAI listing, chat.
fn ollama(req: &Recorded) -> Reply {
    match req.path.as_str() {
        "/api/tags" => Reply::json(
            200,
            json!({"models": [{"name": "llama3.1", "model": "llama3.1"}]}),
        ),
        "/v1/models" => Reply::json(200, json!({"object": "list", "data": [{"id": "llama3.1"}]})),
        _ => Reply::json(
            200,
            json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "llama3.1",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello from ollama"}, "finish_reason": "stop"}]}),
        ),
    }
}

/// A config that points every local built-in away from its default port: `ollama` at
/// `url`, the others at a port nothing listens on.
fn local_servers_config(url: &str) -> String {
    let dead = MockUpstream::always(Reply::Reset);
    let dead_url = dead.url();
    drop(dead);
    // A probe's default half second can pass on a loaded test machine, and the
    // summary would then count the mock as not found.
    format!(
        "detect:\n  timeout_secs: 5\nproviders:\n  ollama:\n    api_base: {url}\n  vllm:\n    api_base: {dead_url}\n  lmstudio:\n    api_base: {dead_url}\n  llamacpp:\n    api_base: {dead_url}\n"
    )
}

/// [`local_servers_config`] with every local built-in at a port nothing listens on: what
/// this machine runs adds no model, so a message is the same wherever the test runs.
fn nothing_found_config() -> String {
    local_servers_config(&format!(
        "http://127.0.0.1:{}/v1",
        MockUpstream::free_port()
    ))
}
