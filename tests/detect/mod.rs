//! Local sources: models are learned from the server itself and follow it up and down.
//! How a server's list is read and its models named and routed in listing.rs; a source
//! that starts later, goes down or fails its listing in up_and_down.rs; what `models`
//! and `providers` say of detection, and which servers a config has asked, in
//! commands.rs; a server's own words, to a client and in the log, in words.rs. The mock
//! servers and helpers they share are here.

mod commands;
mod listing;
mod up_and_down;
mod words;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::support::proxy::{hermetic, routeplane_in};
use crate::support::upstream::{Recorded, chat_answer, ollama};
use crate::support::{Dir, MockUpstream, Proxy, Reply, assert_text, entry, wait_until};

fn ask(p: &Proxy, model: &str) -> crate::support::proxy::Resp {
    p.post(
        "/v1/chat/completions",
        json!({"model": model, "messages": []}),
    )
}

fn cli(dir: &Dir, args: &[&str]) -> String {
    crate::support::stdout_of(routeplane_in(dir.path()).args(args))
}

/// A directory whose config asks only the Ollama at `up`, no default ports.
fn only_ollama_at(up: &MockUpstream) -> Dir {
    let dir = Dir::new();
    dir.write(
        "routeplane.yaml",
        &format!(
            "detect:\n  default_ports: false\nproviders:\n  ollama:\n    api_base: {}\n",
            up.url()
        ),
    );
    dir
}

/// `routeplane models` in `dir`: its stdout and stderr.
fn models(dir: &Dir) -> (String, String) {
    let out = routeplane_in(dir.path()).arg("models").output().unwrap();
    assert!(out.status.success());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr))
}

/// The ids `GET /v1/models` lists.
fn listed_ids(p: &Proxy) -> Vec<String> {
    let v = p.get("/v1/models").json();
    let data = v["data"].as_array().cloned().unwrap_or_default();
    data.iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// A mock LM Studio: its own `/api/v0/models` types each model, `/v1/models` does not;
/// with `key`, every request without that bearer key is refused (401), as LM Studio
/// started with "Require API key" refuses it.
fn lmstudio(key: Option<&'static str>) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let models = [
        ("qwen2.5-7b-instruct", "llm"),
        ("text-embedding-nomic-embed-text-v1.5", "embeddings"),
    ];
    move |req| {
        if let Some(key) = key
            && req.header("authorization") != Some(&format!("Bearer {key}"))
        {
            return Reply::json(401, json!({"error": {"message": "Invalid API key"}}));
        }
        match req.path.as_str() {
            "/api/v0/models" => Reply::json(
                200,
                json!({"object": "list", "data": models.iter().map(|(id, t)| json!({"id": id, "object": "model", "type": t})).collect::<Vec<_>>()}),
            ),
            "/v1/models" => Reply::json(
                200,
                json!({"object": "list", "data": models.iter().map(|(id, _)| json!({"id": id, "object": "model"})).collect::<Vec<_>>()}),
            ),
            _ => Reply::json(200, chat_answer("from lmstudio")),
        }
    }
}
