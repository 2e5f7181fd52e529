//! Sources as a new user meets them: keys from the environment, hosted model lists,
//! local servers that are down or too small, upstream errors passed on unchanged,
//! stale pooled connections, and subscription state that tells the truth.

mod connections;
mod hosted;
mod keys;
mod local;
mod logins;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::upstream::{Recorded, chat_answer};
use crate::support::{MockUpstream, Proxy, Reply, wait_until};

/// The binary, with no hosted key from the developer's environment (a key would send
/// model-list requests to the internet).
fn routeplane() -> std::process::Command {
    let mut cmd = std::process::Command::new(crate::support::proxy::bin());
    for var in crate::support::proxy::CREDENTIAL_VARS {
        cmd.env_remove(var);
    }
    cmd
}

fn chat(p: &Proxy, model: &str) -> crate::support::proxy::Resp {
    p.post(
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

/// A mock hosted API: `GET /v1/models` lists what `listed` holds, anything else answers.
fn hosted(
    listed: Arc<Mutex<Vec<String>>>,
    answer: Reply,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |req| {
        if req.method == "GET" && req.path.starts_with("/v1/models") {
            let data: Vec<_> = listed
                .lock()
                .unwrap()
                .iter()
                .map(|m| json!({"id": m, "object": "model"}))
                .collect();
            Reply::json(
                200,
                json!({"object": "list", "data": data, "has_more": false}),
            )
        } else {
            answer.clone()
        }
    }
}

/// A hosted source whose key may not list models (403 with `refusal`), answering every
/// chat request with `text`.
fn cannot_list(refusal: Value, text: &'static str) -> MockUpstream {
    MockUpstream::start(move |req| match req.method.as_str() {
        "GET" => Reply::json(403, refusal.clone()),
        _ => Reply::json(200, chat_answer(text)),
    })
}

fn cli(dir: &crate::support::Dir, env: &[(&str, &str)], args: &[&str]) -> String {
    crate::support::stdout_of(
        routeplane()
            .args(args)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .envs(env.iter().copied()),
    )
}
