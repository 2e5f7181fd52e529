//! The official Python SDKs as clients: proof that real clients parse what Routeplane sends.
//!
//! The SDKs come from `make sdk` (a venv under target/, installed from PyPI by
//! `make check`). Without them these tests print why and pass: they are an extra
//! check of shapes the protocol tests already cover, not the only one.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::wire::Wire;
use crate::support::{MockUpstream, Proxy};

/// The venv's python when it has the `module` package, else `None` (with a printed reason).
pub fn python_with(module: &str) -> Option<PathBuf> {
    let python = std::env::var_os("ROUTEPLANE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/python")
        });
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "skipped: the `{module}` Python SDK is not installed at {} (run `make sdk`)",
            python.display()
        );
        return None;
    }
    Some(python)
}

/// A mock speaking `up` that answers streams with events and everything else with a body.
fn mock(up: Wire) -> MockUpstream {
    MockUpstream::start(move |req| {
        let stream =
            serde_json::from_slice::<Value>(&req.body).is_ok_and(|v| v["stream"] == json!(true));
        up.reply(stream, false)
    })
}

fn run(python: &PathBuf, script: &str, url: &str) -> Value {
    let out = Command::new(python)
        .args(["-c", script, url])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

const OPENAI_SCRIPT: &str = r#"
import json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
out = {}
out["chat"] = c.chat.completions.create(model="m", messages=msgs).choices[0].message.content
s = c.chat.completions.create(model="m", messages=msgs, stream=True)
out["chat_stream"] = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
out["responses"] = c.responses.create(model="m", input="hi").output_text
s = c.responses.create(model="m", input="hi", stream=True)
out["responses_stream"] = "".join(e.delta for e in s if e.type == "response.output_text.delta")
print(json.dumps(out))
"#;

const ANTHROPIC_SCRIPT: &str = r#"
import json, sys, anthropic
c = anthropic.Anthropic(base_url=sys.argv[1], api_key="unused", max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
out = {}
r = c.messages.create(model="m", max_tokens=50, messages=msgs)
out["messages"] = "".join(b.text for b in r.content if b.type == "text")
with c.messages.stream(model="m", max_tokens=50, messages=msgs) as s:
    out["messages_stream"] = "".join(s.text_stream)
print(json.dumps(out))
"#;

#[test]
fn openai_sdk_reads_chat_and_responses_from_every_upstream() {
    let Some(python) = python_with("openai") else {
        return;
    };
    for up in Wire::ALL {
        let m = mock(up);
        let p = Proxy::start(&format!(
            "providers:\n  up:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n",
            m.url(),
            up.config_name()
        ));
        let out = run(&python, OPENAI_SCRIPT, &p.url());
        for key in ["chat", "chat_stream", "responses", "responses_stream"] {
            assert_eq!(out[key], "Hello there", "{up:?} {key}: {out}");
        }
    }
}

#[test]
fn anthropic_sdk_reads_messages_from_every_upstream() {
    let Some(python) = python_with("anthropic") else {
        return;
    };
    for up in Wire::ALL {
        let m = mock(up);
        let p = Proxy::start(&format!(
            "providers:\n  up:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n",
            m.url(),
            up.config_name()
        ));
        let out = run(&python, ANTHROPIC_SCRIPT, &p.url());
        for key in ["messages", "messages_stream"] {
            assert_eq!(out[key], "Hello there", "{up:?} {key}: {out}");
        }
    }
}
