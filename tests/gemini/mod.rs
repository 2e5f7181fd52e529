//! Google Gemini on both sides: its endpoints, keys, model paths, array streams,
//! token counts, the `gemini` built-in, and safety blocks as a reason to fail over.

mod blocks;
mod cli;
mod cut_streams;
mod endpoints;
mod translation;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::answer::{self, CANONICAL, Fault};
use crate::support::upstream::{chat_answer, chat_events};
use crate::support::wire::{Wire, read_gemini_array};
use crate::support::{Dir, MockUpstream, Proxy, Reply, wait_until};

/// A proxy whose provider `up` (speaking `protocol`) serves `models`.
fn proxy(mock: &MockUpstream, protocol: &str, models: &str, extra: &str) -> Proxy {
    Proxy::start(&format!(
        "providers:\n  up:\n    api_base: {}\n    api_protocol: {protocol}\n    models: [{models}]\n{extra}",
        mock.url()
    ))
}

fn ask() -> Value {
    Wire::Gemini.request("m", false, false)
}
