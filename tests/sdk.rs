//! The official Python SDKs (openai, anthropic, google-genai) as clients: proof that
//! real clients parse what Routeplane sends.
//!
//! The SDKs come from `make sdk` (a venv under target/, installed from PyPI by
//! `make check`). Without them these tests print why and pass: they are an extra
//! check of shapes the protocol tests already cover, not the only one.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::upstream::{completion, completion_events};
use crate::support::wire::Wire;
use crate::support::{MockUpstream, Reply};

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
        let stream = serde_json::from_slice::<Value>(&req.body)
            .is_ok_and(|v| v["stream"] == json!(true))
            || req.path.contains(":streamGenerateContent");
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
tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
def echo(r):
    # What a Response repeats of the request; a passthrough mock's answer has none of it.
    if r.tools is None:
        return None
    return [[t.name for t in r.tools], r.tool_choice, r.parallel_tool_calls, r.text.format.type]
r = c.responses.create(model="m", input="hi", tools=tools)
out["responses"] = r.output_text
out["responses_echo"] = echo(r)
s = c.responses.create(model="m", input="hi", tools=tools, stream=True)
events = list(s)
out["responses_stream"] = "".join(e.delta for e in events if e.type == "response.output_text.delta")
out["responses_stream_echo"] = [echo(e.response) for e in events if e.type == "response.completed"]
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
out["models"] = [[m.id, m.display_name, m.type] for m in c.models.list()]
out["model"] = c.models.retrieve("m").display_name
print(json.dumps(out))
"#;

#[test]
fn openai_sdk_reads_chat_and_responses_from_every_upstream() {
    let Some(python) = python_with("openai") else {
        return;
    };
    for up in Wire::ALL {
        let m = mock(up);
        let p = up.serving(&m, "m");
        let out = run(&python, OPENAI_SCRIPT, &p.url());
        for key in ["chat", "chat_stream", "responses", "responses_stream"] {
            assert_eq!(out[key], "Hello there", "{up:?} {key}: {out}");
        }
        // A translated Response repeats the request's tools and settings, as OpenAI's
        // does: the SDK's `r.tools` is a list to iterate, not None.
        if up != Wire::Responses {
            let echo = json!([["get_weather"], "auto", true, "text"]);
            assert_eq!(out["responses_echo"], echo, "{up:?}: {out}");
            assert_eq!(out["responses_stream_echo"], json!([echo]), "{up:?}: {out}");
        }
    }
}

const COMPLETIONS_SCRIPT: &str = r#"
import json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
out = {}
out["text"] = c.completions.create(model="m", prompt="def f(", suffix=")").choices[0].text
s = c.completions.create(model="m", prompt="def f(", stream=True)
out["stream"] = "".join(ch.choices[0].text for ch in s if ch.choices)
print(json.dumps(out))
"#;

#[test]
fn openai_sdk_reads_a_legacy_completion() {
    let Some(python) = python_with("openai") else {
        return;
    };
    let m = MockUpstream::start(|req| {
        if req.json()["stream"] == true {
            let mut events = completion_events(&["x", "): pass"]);
            events.push("data: [DONE]\n\n".into());
            return Reply::Sse(events, Duration::from_millis(5));
        }
        Reply::json(200, completion("x): pass"))
    });
    let p = Wire::Chat.serving(&m, "m");
    let out = run(&python, COMPLETIONS_SCRIPT, &p.url());
    assert_eq!(out, json!({"text": "x): pass", "stream": "x): pass"}));
}

#[test]
fn anthropic_sdk_reads_messages_from_every_upstream() {
    let Some(python) = python_with("anthropic") else {
        return;
    };
    for up in Wire::ALL {
        let m = mock(up);
        let p = up.serving(&m, "m");
        let out = run(&python, ANTHROPIC_SCRIPT, &p.url());
        for key in ["messages", "messages_stream"] {
            assert_eq!(out[key], "Hello there", "{up:?} {key}: {out}");
        }
        // Its model list, one page, every entry complete.
        assert!(
            out["models"]
                .as_array()
                .unwrap()
                .contains(&json!(["m", "m", "model"])),
            "{up:?}: {out}"
        );
        assert_eq!(out["model"], "m", "{up:?}: {out}");
    }
}

const GENAI_SCRIPT: &str = r#"
import json, sys
from google import genai
from google.genai import types
c = genai.Client(api_key="unused", http_options=types.HttpOptions(base_url=sys.argv[1]))
out = {}
out["text"] = c.models.generate_content(model="m", contents="hi").text
s = c.models.generate_content_stream(model="m", contents="hi")
out["text_stream"] = "".join(ch.text or "" for ch in s)
schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
tool = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="weather", parameters_json_schema=schema)])
cfg = types.GenerateContentConfig(
    tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
ask = types.Content(role="user", parts=[types.Part(text="weather in Paris?")])
r = c.models.generate_content(model="m", contents=[ask], config=cfg)
fc = r.function_calls[0]
out["call"] = {"name": fc.name, "args": fc.args, "id": fc.id}
s = c.models.generate_content_stream(model="m", contents=[ask], config=cfg)
calls = [f for ch in s for f in (ch.function_calls or [])]
out["stream_call"] = {"name": calls[0].name, "args": calls[0].args, "id": calls[0].id}
answer = types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
    id=fc.id, name=fc.name, response={"output": "sunny"}))])
r = c.models.generate_content(model="m", contents=[ask, r.candidates[0].content, answer], config=cfg)
out["after_tool"] = r.text
out["models"] = [m.name for m in c.models.list()]
out["tokens"] = c.models.count_tokens(model="m", contents="hello there").total_tokens
print(json.dumps(out))
"#;

#[test]
fn genai_sdk_calls_a_tool_through_every_upstream() {
    let Some(python) = python_with("google.genai") else {
        return;
    };
    for up in Wire::ALL {
        // A tool call for the question, text once the tool's result is in.
        let m = MockUpstream::start(move |req| {
            let body = String::from_utf8_lossy(&req.body);
            let stream = body.contains("\"stream\":true") || req.path.contains(":stream");
            let tool = body.contains("get_weather") && !body.contains("sunny");
            if req.path.ends_with(":countTokens") {
                return Reply::json(200, json!({"totalTokens": 4}));
            }
            up.reply(stream, tool)
        });
        let p = up.serving(&m, "m");
        let out = run(&python, GENAI_SCRIPT, &p.url());
        for key in ["text", "text_stream", "after_tool"] {
            assert_eq!(out[key], "Hello there", "{up:?} {key}: {out}");
        }
        let call = json!({"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"});
        assert_eq!(out["call"], call, "{up:?}: {out}");
        assert_eq!(out["stream_call"], call, "{up:?}: {out}");
        let answered = m
            .requests()
            .into_iter()
            .find(|r| String::from_utf8_lossy(&r.body).contains("sunny"))
            .expect("the tool result went upstream")
            .json();
        assert!(up.has_tool_result(&answered), "{up:?}: {answered}");
        assert!(
            out["models"]
                .as_array()
                .unwrap()
                .contains(&json!("models/m")),
            "{up:?}: {out}"
        );
        assert!(out["tokens"].as_u64().is_some_and(|n| n > 0), "{out}");
    }
}

const GENAI_CHAT_SCRIPT: &str = r#"
import json, sys
from google import genai
from google.genai import types
c = genai.Client(api_key="unused", http_options=types.HttpOptions(base_url=sys.argv[1]))
chat = c.chats.create(model="m")
out = {}
out["first"] = "".join(ch.text or "" for ch in chat.send_message_stream("hi"))
out["second"] = "".join(ch.text or "" for ch in chat.send_message_stream("and again"))
out["history"] = [{"role": h.role, "parts": [p.model_dump(mode="json", exclude_none=True) for p in h.parts or []]}
    for h in chat.get_history(curated=True)]
print(json.dumps(out))
"#;

#[test]
fn genai_sdk_chat_keeps_a_streamed_answer_from_another_source_without_empty_parts() {
    // The SDK's chat keeps each event's content as history, and only when every event
    // has a part: an empty text part would go back to Gemini (which refuses it), an
    // event with no parts would make the chat forget the turn.
    let Some(python) = python_with("google.genai") else {
        return;
    };
    let m = crate::support::wire::chat_mock_with_usage(std::time::Duration::ZERO);
    let p = Wire::Chat.serving(&m, "m");
    let out = run(&python, GENAI_CHAT_SCRIPT, &p.url());
    assert_eq!(out["first"], "Hello there", "{out}");
    assert_eq!(out["second"], "Hello there", "{out}");
    let history = out["history"].as_array().unwrap();
    assert!(
        history.iter().all(|h| h["parts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["text"].as_str().is_some_and(|t| !t.is_empty()))),
        "{out}"
    );
    let said: String = history
        .iter()
        .filter(|h| h["role"] == "model")
        .flat_map(|h| h["parts"].as_array().unwrap())
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert_eq!(said, "Hello thereHello there", "both turns kept: {out}");
    let second = m.requests()[1].json();
    let earlier: String = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(earlier, "Hello there", "{second}");
}

const GENAI_EMPTY_SCRIPT: &str = r#"
import json, sys
from google import genai
from google.genai import types
c = genai.Client(api_key="unused", http_options=types.HttpOptions(base_url=sys.argv[1]))
chat = c.chats.create(model="smart")
out = {}
out["first"] = chat.send_message("hi").text
out["second"] = chat.send_message("and again").text
out["history"] = [{"role": h.role, "parts": [p.model_dump(mode="json", exclude_none=True) for p in h.parts or []]}
    for h in chat.get_history(curated=True)]
print(json.dumps(out))
"#;

#[test]
fn genai_sdk_chat_sends_gemini_no_empty_text_part_after_an_empty_answer() {
    // Another source answers the first question with nothing; the second goes to
    // Gemini (failover), with the chat's history as the SDK keeps it. The answer
    // without parts the SDK leaves out of that history, question and all; an empty text
    // part it would keep, and Gemini refuses one.
    let Some(python) = python_with("google.genai") else {
        return;
    };
    let error = json!({"error": {"message": "down", "type": "server_error"}});
    let chat = MockUpstream::script(vec![
        Reply::json(200, crate::support::upstream::chat_answer("")),
        Reply::json(500, error),
    ]);
    let gemini = MockUpstream::always(Wire::Gemini.reply(false, false));
    let p = crate::support::Proxy::start(&format!(
        "providers:\n  c:\n    api_base: {}\n    models: [cm]\n  g:\n    api_base: {}\n    api_protocol: gemini\n    models: [gm]\nmodels:\n  smart:\n    endpoints: [c:cm, g:gm]\n",
        chat.url(),
        gemini.url()
    ));
    let out = run(&python, GENAI_EMPTY_SCRIPT, &p.url());
    assert_eq!(out["second"], "Hello there", "{out}");
    let asked = gemini.posts().first().expect("Gemini was asked").json();
    let contents = asked["contents"].as_array().unwrap();
    for c in contents {
        let parts = c["parts"].as_array();
        assert!(parts.is_some_and(|p| !p.is_empty()), "{asked}");
        for part in parts.into_iter().flatten() {
            assert_ne!(part["text"], "", "an empty text part: {asked}");
        }
    }
    assert_eq!(contents.last().unwrap()["parts"][0]["text"], "and again");
    let said = out["history"].to_string();
    assert!(!said.contains(r#""text":"""#), "{out}");
    assert_eq!(out["first"], Value::Null, "{out}");
}
