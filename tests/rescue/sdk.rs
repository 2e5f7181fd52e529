//! The official SDKs accumulate a rescued stream into one message.

use std::process::Command;

use serde_json::Value;

use super::{config, healthy};
use crate::support::answer::{self, CANONICAL, Fault};
use crate::support::wire::Wire;
use crate::support::{MockUpstream, Proxy};

const OPENAI_SCRIPT: &str = r#"
import json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
out = {}
with c.beta.chat.completions.stream(model="smart", messages=msgs) as s:
    out["chat"] = s.get_final_completion().choices[0].message.content
with c.responses.stream(model="smart", input="hi") as s:
    out["responses"] = s.get_final_response().output_text
print(json.dumps(out))
"#;

const ANTHROPIC_SCRIPT: &str = r#"
import json, sys, anthropic
c = anthropic.Anthropic(base_url=sys.argv[1], api_key="unused", max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
with c.messages.stream(model="smart", max_tokens=500, messages=msgs) as s:
    m = s.get_final_message()
print(json.dumps({"text": "".join(b.text for b in m.content if b.type == "text"), "blocks": len(m.content)}))
"#;

/// Runs `script` against a proxy whose `smart` breaks once per request, on `a`'s side.
fn sdk_run(python: &std::path::Path, script: &str) -> Value {
    // Each request's first answer breaks after 20 tokens; its continuation is whole.
    let a = MockUpstream::start(|req| {
        let fault = match answer::prefill(&req.json()) {
            None => Fault::Cut(20),
            Some(_) => Fault::None,
        };
        answer::reply(Wire::Anthropic, req, "a", fault)
    });
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Anthropic, &b, ""));
    let out = Command::new(python)
        .args(["-c", script, &p.url()])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        b.count() == 0 && a.count() >= 2,
        "every stream was continued"
    );
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

#[test]
fn openai_sdk_accumulates_a_rescued_stream() {
    let Some(python) = crate::sdk::python_with("openai") else {
        return;
    };
    let out = sdk_run(&python, OPENAI_SCRIPT);
    assert_eq!(out["chat"], CANONICAL, "{out}");
    assert_eq!(out["responses"], CANONICAL, "{out}");
}

#[test]
fn anthropic_sdk_accumulates_a_rescued_stream() {
    let Some(python) = crate::sdk::python_with("anthropic") else {
        return;
    };
    let out = sdk_run(&python, ANTHROPIC_SCRIPT);
    assert_eq!(out["text"], CANONICAL, "{out}");
    assert_eq!(out["blocks"], 1, "{out}");
}
