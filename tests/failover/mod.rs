//! Virtual models and failover: the right endpoint serves, surfaced errors arrive
//! unchanged, and nothing the client sees betrays a failure before the first event.

mod cooldown;
mod errors_in_200;
mod exhausted;
mod models_list;
mod non_answers;
mod refused;
mod scenarios;
mod streams;
mod table;
mod unfit_requests;
mod unreadable;
mod whole;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::answer::{self, Fault};
use crate::support::upstream::{chat_answer, chat_events, dead_url};
use crate::support::wire::{Wire, named};
use crate::support::{Dir, MockUpstream, Proxy, Reply, assert_text, wait_until};

/// Two providers `a` and `b` serving `m`, a virtual model `smart` = a:m then b:m.
fn config(a: &str, b: &str, extra: &str) -> String {
    format!(
        "providers:\n  a:\n    api_base: {a}\n    models: [m]\n  b:\n    api_base: {b}\n    models: [m]\nmodels:\n  smart:\n    endpoints:\n      - a:m\n      - {{provider: b, service_id: m}}\ntimeouts:\n  first_byte_secs: 1\n  idle_secs: 0.5\n{extra}"
    )
}

fn ask(p: &Proxy, model: &str) -> crate::support::proxy::Resp {
    p.post(
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

fn stream(p: &Proxy, model: &str) -> crate::support::proxy::Streamed {
    p.stream(
        "/v1/chat/completions",
        json!({"model": model, "stream": true, "messages": []}),
    )
}

/// Asks `p` for `model` as a `wire` client, whole or streamed, the answer whole.
fn ask_as(p: &Proxy, wire: Wire, model: &str, stream: bool) -> crate::support::proxy::Resp {
    let body = wire.request(model, stream, false);
    match stream {
        true => p.stream(&wire.url(model, true), body).into(),
        false => p.post(&wire.url(model, false), body),
    }
}

/// An upstream whose first streamed answer has `fault` and whose later ones are healthy.
fn faulty_once(tag: &'static str, fault: Fault) -> MockUpstream {
    MockUpstream::numbered(move |n, req| {
        let f = if n == 0 { fault } else { Fault::None };
        answer::reply(Wire::Chat, req, tag, f)
    })
}
