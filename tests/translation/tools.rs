//! Tools through a translation: the built-in tools a client runs itself (Anthropic's
//! bash and text editor, OpenAI's local shell), a server tool refused elsewhere, and a
//! choice of allowed tools.

use std::time::Duration;

use serde_json::{Value, json};

use super::event_data;
use crate::support::wire::{Wire, sources};
use crate::support::{MockUpstream, Reply};

/// An Anthropic source's answer calling `name` with `args`, whatever was asked.
fn calls(wire: Wire, name: &str, args: Value) -> MockUpstream {
    MockUpstream::always(Reply::json(200, wire.calling(name, args)))
}

#[test]
fn an_anthropic_clients_bash_and_text_editor_reach_any_source_as_functions_and_come_back_as_its_tool_use()
 {
    // Claude Code and the Anthropic SDKs' tool runners run these tools themselves; the
    // model only asks, so any model can be offered them with their documented input.
    let tools = json!([
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    ]);
    let ls = json!({"command": "ls -la"});
    for wire in [Wire::Chat, Wire::Responses, Wire::Gemini] {
        let mock = calls(wire, "bash", ls.clone());
        let p = wire.serving(&mock, "m");
        let mut body = Wire::Anthropic.request("m", false, false);
        body["tools"] = tools.clone();
        let r = p.post(Wire::Anthropic.path(), body);
        assert_eq!(r.status, 200, "{wire:?}: {}", r.body);
        let answer = Wire::Anthropic.read(&r);
        assert_eq!(
            answer.tools,
            [("bash".into(), ls.clone(), "call_1".into())],
            "{wire:?}"
        );
        let offered = wire.offered(&mock.posts()[0].json());
        let names: Vec<&str> = offered.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bash", "str_replace_based_edit_tool"], "{wire:?}");
        let (bash, editor) = (&offered[0].1["properties"], &offered[1].1["properties"]);
        assert_eq!(bash["command"]["type"], "string", "{wire:?}");
        assert_eq!(bash["restart"]["type"], "boolean", "{wire:?}");
        assert_eq!(
            editor["command"]["enum"],
            json!(["view", "create", "str_replace", "insert"]),
            "{wire:?}"
        );
        for field in [
            "path",
            "file_text",
            "old_str",
            "new_str",
            "insert_line",
            "view_range",
        ] {
            assert!(editor[field].is_object(), "{wire:?}: {field}");
        }
    }
}

#[test]
fn an_anthropic_server_tool_is_refused_for_another_source_with_what_to_do() {
    let mock = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = Wire::Chat.serving(&mock, "m");
    let mut body = Wire::Anthropic.request("m", false, false);
    body["tools"] = json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]);
    let r = p.post(Wire::Anthropic.path(), body);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.json()["error"]["type"],
        "invalid_request_error",
        "{}",
        r.body
    );
    assert_eq!(
        r.error_message(),
        "tool `web_search` (type `web_search_20250305`) is run by Anthropic's servers, so only an Anthropic source can offer it: send this request to a model an Anthropic source serves, or leave the tool out"
    );
    assert!(mock.posts().is_empty());
}

/// A Responses request of a client with OpenAI's `local_shell` (older Codex CLI), in the
/// middle of its loop: it ran one command and gives back the output.
fn local_shell_request(stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "instructions": "be brief",
    "tools": [{"type": "local_shell"}],
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "what is here?"}]},
        {"type": "local_shell_call", "id": "lsh_1", "call_id": "call_0", "status": "completed",
            "action": {"type": "exec", "command": ["ls"], "env": {}, "working_directory": "/w"}},
        {"type": "local_shell_call_output", "id": "call_0", "output": "a.txt"},
    ]})
}

/// The local shell action the model asks for, as the client gets it.
fn listing() -> Value {
    json!({"type": "exec", "command": ["ls", "-la"], "env": {}, "working_directory": "/tmp"})
}

/// What a source of another protocol saw of [`local_shell_request`]: the function and
/// the earlier call and its output, as chat messages.
fn assert_local_shell_offered(sent: &Value) {
    let offered = Wire::Chat.offered(sent);
    assert_eq!(offered.len(), 1, "{sent}");
    assert_eq!(offered[0].0, "local_shell");
    let schema = &offered[0].1["properties"];
    assert_eq!(schema["command"]["type"], "array", "{sent}");
    for field in ["workdir", "timeout_ms", "env"] {
        assert!(schema[field].is_object(), "{field}: {sent}");
    }
    let messages = sent["messages"].as_array().unwrap();
    let call = &messages[2]["tool_calls"][0];
    assert_eq!(call["id"], "call_0", "{sent}");
    assert_eq!(call["function"]["name"], "local_shell", "{sent}");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"command": ["ls"], "workdir": "/w", "env": {}}));
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_0", "content": "a.txt"})
    );
}

#[test]
fn a_responses_clients_local_shell_is_a_function_elsewhere_and_its_call_comes_back_as_a_local_shell_call()
 {
    let args = json!({"command": ["ls", "-la"], "workdir": "/tmp"});
    let mock = calls(Wire::Chat, "local_shell", args.clone());
    let p = Wire::Chat.serving(&mock, "m");
    let r = p.post(Wire::Responses.path(), local_shell_request(false));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_local_shell_offered(&mock.posts()[0].json());
    let output = r.json()["output"].clone();
    assert_eq!(output.as_array().map(Vec::len), Some(1), "{output}");
    assert_eq!(output[0]["type"], "local_shell_call", "{output}");
    assert_eq!(output[0]["call_id"], "call_1", "{output}");
    assert_eq!(output[0]["status"], "completed", "{output}");
    assert_eq!(output[0]["action"], listing(), "{output}");

    // Streamed: the call is held until its action is whole, then sent as one item.
    let chunk = crate::support::wire::chat_chunk;
    let text = args.to_string();
    let (head, tail) = text.split_at(text.len() / 2);
    let events = vec![
        chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "local_shell", "arguments": head}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": tail}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        "data: [DONE]\n\n".to_string(),
    ];
    let mock = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let p = Wire::Chat.serving(&mock, "m");
    let s = p.stream(Wire::Responses.path(), local_shell_request(true));
    assert_local_shell_offered(&mock.posts()[0].json());
    let done: Vec<Value> = event_data(&s)
        .into_iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| e["item"].clone())
        .collect();
    assert_eq!(done.len(), 1, "{}", s.text());
    assert_eq!(done[0]["type"], "local_shell_call", "{}", s.text());
    assert_eq!(done[0]["call_id"], "call_1", "{}", s.text());
    assert_eq!(done[0]["action"], listing(), "{}", s.text());
    let output = crate::support::wire::responses_output(&s);
    assert_eq!(output, done, "{}", s.text());
}

/// Tools `get_weather`, `get_time` and `get_news` in a request of `wire`.
fn three_tools(wire: Wire) -> Value {
    let mut body = wire.request("m", false, true);
    let one = body["tools"][0].clone();
    let named = |name: &str| {
        let mut t = one.clone();
        match wire {
            Wire::Chat => t["function"]["name"] = json!(name),
            _ => t["name"] = json!(name),
        }
        t
    };
    body["tools"] = json!([one, named("get_time"), named("get_news")]);
    body
}

#[test]
fn a_choice_of_allowed_tools_narrows_the_tools_another_source_is_offered() {
    let (anthropic, gemini, chat) = (
        MockUpstream::always(Wire::Anthropic.reply(false, false)),
        MockUpstream::always(Wire::Gemini.reply(false, false)),
        MockUpstream::always(Wire::Chat.reply(false, false)),
    );
    let p = sources(&[
        ("claude", Wire::Anthropic, &anthropic, "claude"),
        ("google", Wire::Gemini, &gemini, "gemini"),
        ("local", Wire::Chat, &chat, "llama"),
    ]);
    // A Chat client may call only get_weather or get_news, and must call one.
    let mut body = three_tools(Wire::Chat);
    let allowed = json!({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "get_weather"}},
        {"type": "function", "function": {"name": "get_news"}}]}});
    body["tool_choice"] = allowed.clone();
    body["model"] = json!("claude");
    let r = p.post(Wire::Chat.path(), body.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = anthropic.posts()[0].json();
    let names: Vec<String> = Wire::Anthropic
        .offered(&sent)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["get_weather", "get_news"], "{sent}");
    assert_eq!(sent["tool_choice"], json!({"type": "any"}), "{sent}");
    // Copied to a source of its own protocol, the request is unchanged.
    body["model"] = json!("llama");
    let r = p.post(Wire::Chat.path(), body.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = chat.posts()[0].json();
    assert_eq!(sent["tool_choice"], allowed, "{sent}");
    assert_eq!(sent["tools"], body["tools"], "{sent}");

    // A Responses client's own shape, mode auto: Gemini's plain AUTO over get_time alone.
    let mut body = three_tools(Wire::Responses);
    body["tool_choice"] = json!({"type": "allowed_tools", "mode": "auto",
        "tools": [{"type": "function", "name": "get_time"}, {"type": "web_search"}]});
    body["model"] = json!("gemini");
    let r = p.post(Wire::Responses.path(), body);
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = gemini.posts()[0].json();
    let names: Vec<String> = Wire::Gemini
        .offered(&sent)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["get_time"], "{sent}");
    assert_eq!(
        Wire::Gemini.tool_choice(&sent),
        json!({"mode": "AUTO"}),
        "{sent}"
    );
}
