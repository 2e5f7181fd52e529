//! What a translation gives a client beyond plain text: a turn Anthropic paused, the
//! citations of a web search, a refusal beside text, no more stop sequences than the
//! source takes, the built-in tools a client runs itself, a choice of allowed tools, and
//! the parameters a source refuses, in each source's own words.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::proxy::Streamed;
use crate::support::upstream::Recorded;
use crate::support::wire::{Wire, named, sources};
use crate::support::{MockUpstream, Proxy, Reply, assert_text};

/// The page Claude's web search found and cited.
const URL: &str = "https://example.com/paris";

/// The answer's text: a block without citations, then one citing [`URL`].
const TEXT: [&str; 2] = ["Per the forecast, ", "it is sunny in Paris."];

/// The citation as a Chat client gets it (OpenAI's `url_citation`): the second text
/// block, counted in characters of the whole text.
fn chat_annotation() -> Value {
    json!({"type": "url_citation", "url_citation": {"start_index": 18, "end_index": 39, "url": URL, "title": "Paris weather"}})
}

/// The citation as a Responses client gets it on its `output_text`.
fn responses_annotation() -> Value {
    json!({"type": "url_citation", "start_index": 18, "end_index": 39, "url": URL, "title": "Paris weather"})
}

/// The blocks of a web search Anthropic ran itself, before the text it led to.
fn server_tool_blocks() -> [Value; 2] {
    [
        json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "weather paris"}}),
        json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
            {"type": "web_search_result", "url": URL, "title": "Paris weather", "encrypted_content": "enc", "page_age": null}]}),
    ]
}

/// Anthropic's citation of the page in a text block.
fn citation() -> Value {
    json!({"type": "web_search_result_location", "url": URL, "title": "Paris weather", "encrypted_index": "idx", "cited_text": "Sunny all day"})
}

/// Claude's whole answer after a web search, with citations, paused by Anthropic
/// (`pause_turn`: its server tools ran long) before the turn was done.
pub fn paused_answer() -> Value {
    let [used, found] = server_tool_blocks();
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [used, found,
            {"type": "text", "text": TEXT[0]},
            {"type": "text", "text": TEXT[1], "citations": [citation()]}],
        "stop_reason": "pause_turn", "stop_sequence": null,
        "usage": {"input_tokens": 5, "output_tokens": 9},
    })
}

/// [`paused_answer`] as Anthropic streams it.
pub fn paused_events() -> Vec<String> {
    let [used, found] = server_tool_blocks();
    let ev = |v: Value| {
        let kind = v["type"].as_str().unwrap().to_string();
        named(&kind, v)
    };
    let delta =
        |i: u64, d: Value| ev(json!({"type": "content_block_delta", "index": i, "delta": d}));
    let start = |i: u64, b: Value| {
        ev(json!({"type": "content_block_start", "index": i, "content_block": b}))
    };
    let stop = |i: u64| ev(json!({"type": "content_block_stop", "index": i}));
    let mut used_start = used.clone();
    used_start["input"] = json!({});
    vec![
        ev(
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ),
        start(0, used_start),
        delta(
            0,
            json!({"type": "input_json_delta", "partial_json": used["input"].to_string()}),
        ),
        stop(0),
        start(1, found),
        stop(1),
        start(2, json!({"type": "text", "text": ""})),
        delta(2, json!({"type": "text_delta", "text": TEXT[0]})),
        stop(2),
        start(3, json!({"type": "text", "text": "", "citations": []})),
        delta(
            3,
            json!({"type": "citations_delta", "citation": citation()}),
        ),
        delta(3, json!({"type": "text_delta", "text": TEXT[1]})),
        stop(3),
        ev(
            json!({"type": "message_delta", "delta": {"stop_reason": "pause_turn", "stop_sequence": null}, "usage": {"output_tokens": 9}}),
        ),
        ev(json!({"type": "message_stop"})),
    ]
}

/// An Anthropic source's answer to `req`: [`paused_answer`], streamed when asked for a
/// stream.
pub fn paused_reply(req: &Recorded) -> Reply {
    match req.json()["stream"] == json!(true) {
        true => Reply::Sse(paused_events(), Duration::ZERO),
        false => Reply::json(200, paused_answer()),
    }
}

/// A proxy whose `m` is an Anthropic source answering [`paused_reply`].
fn paused_source() -> (MockUpstream, Proxy) {
    let mock = MockUpstream::start(paused_reply);
    let p = Wire::Anthropic.serving(&mock, "m");
    (mock, p)
}

/// Each event's data as JSON (Gemini's events end with CRLF CRLF).
fn event_data(s: &Streamed) -> Vec<Value> {
    s.text()
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[test]
fn a_paused_anthropic_turn_reaches_other_clients_as_unfinished_with_its_citations() {
    let (_mock, p) = paused_source();
    let text = TEXT.concat();

    // Chat: `length`, as an answer cut short says; the text whole, its citation an
    // annotation, the search no call of the client's.
    let r = p.post(Wire::Chat.path(), Wire::Chat.request("m", false, false));
    let v = r.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "length", "{v}");
    assert_eq!(choice["message"]["content"], text, "{v}");
    assert_eq!(
        choice["message"]["annotations"],
        json!([chat_annotation()]),
        "{v}"
    );
    assert!(choice["message"]["tool_calls"].is_null(), "{v}");
    let s = p.stream(Wire::Chat.path(), Wire::Chat.request("m", true, false));
    let chunks = event_data(&s);
    let finishes: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!("length")], "{}", s.text());
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text, "{}", s.text());
    let annotations: Vec<&Value> = chunks
        .iter()
        .flat_map(|c| c["choices"][0]["delta"]["annotations"].as_array())
        .flatten()
        .collect();
    assert_eq!(annotations, [&chat_annotation()], "{}", s.text());

    // Responses: `incomplete`, the citation on the text it cites.
    let r = p.post(
        Wire::Responses.path(),
        Wire::Responses.request("m", false, false),
    );
    let v = r.json();
    assert_eq!(v["status"], "incomplete", "{v}");
    let messages: Vec<&Value> = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .collect();
    assert_eq!(messages.len(), 1, "{v}");
    let part = &messages[0]["content"][0];
    assert_eq!(part["text"], text, "{v}");
    assert_eq!(part["annotations"], json!([responses_annotation()]), "{v}");
    let s = p.stream(
        Wire::Responses.path(),
        Wire::Responses.request("m", true, false),
    );
    let evs = event_data(&s);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.incomplete", "{}", s.text());
    let added: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.annotation.added")
        .map(|e| &e["annotation"])
        .collect();
    assert_eq!(added, [&responses_annotation()], "{}", s.text());
    let output = last["response"]["output"].as_array().unwrap();
    let part = &output.iter().find(|i| i["type"] == "message").unwrap()["content"][0];
    assert_eq!(part["text"], text, "{}", s.text());
    assert_eq!(
        part["annotations"],
        json!([responses_annotation()]),
        "{}",
        s.text()
    );

    // Gemini: cut short too.
    let r = p.post(
        &Wire::Gemini.url("m", false),
        Wire::Gemini.request("m", false, false),
    );
    assert_eq!(
        r.json()["candidates"][0]["finishReason"],
        "MAX_TOKENS",
        "{}",
        r.body
    );
    let s = p.stream(
        &Wire::Gemini.url("m", true),
        Wire::Gemini.request("m", true, false),
    );
    let reasons: Vec<Value> = event_data(&s)
        .iter()
        .map(|e| e["candidates"][0]["finishReason"].clone())
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(reasons, [json!("MAX_TOKENS")], "{}", s.text());

    // An Anthropic client gets Claude's answer as Claude sent it, to resume the turn.
    let r = p.post(
        Wire::Anthropic.path(),
        Wire::Anthropic.request("m", false, false),
    );
    assert_eq!(r.json(), paused_answer(), "{}", r.body);
    let s = p.stream(
        Wire::Anthropic.path(),
        Wire::Anthropic.request("m", true, false),
    );
    assert_eq!(s.text(), paused_events().concat());
}

#[test]
fn a_refusal_then_text_reach_a_responses_client_as_one_message() {
    // OpenAI writes a refusal and text as two parts of one message item.
    let chunk = crate::support::wire::chat_chunk;
    let events = vec![
        chunk(
            json!({"role": "assistant", "refusal": "I can't "}),
            Value::Null,
        ),
        chunk(json!({"refusal": "do that."}), Value::Null),
        chunk(json!({"content": " Here is "}), Value::Null),
        chunk(json!({"content": "something else."}), Value::Null),
        chunk(json!({}), json!("stop")),
        "data: [DONE]\n\n".to_string(),
    ];
    let mock = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let p = Wire::Chat.serving(&mock, "m");
    let s = p.stream(
        Wire::Responses.path(),
        Wire::Responses.request("m", true, false),
    );
    let evs = event_data(&s);
    let kinds = |kind: &str| evs.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(kinds("response.output_item.added"), 1, "{}", s.text());
    assert_eq!(kinds("response.content_part.added"), 2, "{}", s.text());
    let text_at: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| &e["content_index"])
        .collect();
    assert_eq!(text_at, [&json!(1), &json!(1)], "{}", s.text());
    let want = json!([
        {"type": "refusal", "refusal": "I can't do that."},
        {"type": "output_text", "text": " Here is something else.", "annotations": []},
    ]);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.completed", "{}", s.text());
    let output = last["response"]["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{}", s.text());
    assert_eq!(output[0]["content"], want, "{}", s.text());
    let done: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"]["content"])
        .collect();
    assert_eq!(done, [&want], "{}", s.text());
}

#[test]
fn openais_api_gets_at_most_four_stop_sequences_and_the_log_says_so() {
    // An Anthropic client may send any number; OpenAI's API refuses more than four.
    // A server of open models takes them all.
    let openai = MockUpstream::always(Wire::Chat.reply(false, false));
    let local = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = sources(&[
        ("openai", Wire::Chat, &openai, "gpt-4o"),
        ("local", Wire::Chat, &local, "llama"),
    ]);
    let stops = json!(["A", "B", "C", "D", "E"]);
    for model in ["gpt-4o", "llama"] {
        let mut body = Wire::Anthropic.request(model, false, false);
        body["stop_sequences"] = stops.clone();
        let r = p.post(Wire::Anthropic.path(), body);
        assert_eq!(r.status, 200, "{model}: {}", r.body);
    }
    assert_eq!(
        openai.posts()[0].json()["stop"],
        json!(["A", "B", "C", "D"])
    );
    assert_eq!(local.posts()[0].json()["stop"], stops);
    let line = p.wait_log("OpenAI takes at most 4 stop sequences");
    assert!(line.contains("first 4 of the 5 asked"), "{line}");
}

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

/// OpenAI's refusal of `param` by a reasoning model (o1, o3, gpt-5…), as its Chat
/// Completions and Responses APIs say it.
fn refusal(param: &str) -> String {
    let (message, code) = match param {
        "temperature" => (
            "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.".to_string(),
            "unsupported_value",
        ),
        "max_tokens" => (
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.".to_string(),
            "unsupported_parameter",
        ),
        p => (
            format!("Unsupported parameter: '{p}' is not supported with this model."),
            "unsupported_parameter",
        ),
    };
    json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
        .to_string()
}

/// A `wire` source whose model refuses each of `params` a request carries, one at a
/// time as OpenAI does, and answers a request without any of them.
fn refusing(wire: Wire, params: &'static [&'static str]) -> MockUpstream {
    refusing_in(wire, params, refusal)
}

/// A source's refusal of a parameter, as the body of its 400.
type Words = fn(&str) -> String;

/// [`refusing`], the refusal's body in `words`.
fn refusing_in(wire: Wire, params: &'static [&'static str], words: Words) -> MockUpstream {
    MockUpstream::start(move |req| {
        let body = req.json();
        match params.iter().find(|p| body.get(**p).is_some()) {
            Some(p) => Reply::Json(400, words(p)),
            None => wire.reply(false, false),
        }
    })
}

/// DeepSeek's reasoner's refusal of `param`, as reported in deepseek-ai/DeepSeek-R1#7
/// (`temperature`) and lollipopkit/flutter_gpt_box#213 (`presence_penalty`, whole body).
fn deepseek_refusal(param: &str) -> String {
    json!({"error": {"message": format!("deepseek-reasoner does not support the parameter `{param}`"),
        "type": "invalid_request_error", "param": null, "code": "invalid_request_error"}})
    .to_string()
}

/// Kimi's refusal of a temperature other than 1 (kimi-k2.5, k3), as reported in
/// countbot-ai/CountBot#61 and opencyvis/opencyvis-phone#12.
fn kimi_refusal(param: &str) -> String {
    json!({"error": {"message": format!("invalid {param}: only 1 is allowed for this model"),
        "type": "invalid_request_error"}})
    .to_string()
}

/// Anthropic's refusal of a sampling knob by Claude Opus 4.7 and later, as reported in
/// RooCode#12162 (whole body), vellum-assistant#35820 (`top_k`) and CLIProxyAPI#4383
/// (`top_p`).
fn anthropic_deprecated(param: &str) -> String {
    json!({"type": "error", "error": {"type": "invalid_request_error",
        "message": format!("`{param}` is deprecated for this model.")},
        "request_id": "req_011CdiGoqGztGDh6yhEmTzLF"})
    .to_string()
}

#[test]
fn knobs_deepseek_and_kimi_refuse_in_their_own_words_are_left_out_and_remembered() {
    // A Gemini client's temperature and presence penalty, translated for
    // deepseek-reasoner, which refuses each; an Anthropic client's temperature for Kimi.
    let cases: [(Wire, &'static [&'static str], Words, usize); 2] = [
        (
            Wire::Gemini,
            &["temperature", "presence_penalty"],
            deepseek_refusal,
            3,
        ),
        (Wire::Anthropic, &["temperature"], kimi_refusal, 2),
    ];
    for (client, params, words, asked) in cases {
        let up = refusing_in(Wire::Chat, params, words);
        let p = Wire::Chat.serving(&up, "m");
        let mut body = client.request("m", false, false);
        match client {
            Wire::Gemini => {
                body["generationConfig"] = json!({"temperature": 0.2, "presencePenalty": 0.5});
            }
            _ => body["temperature"] = json!(0.2),
        }
        let r = p.post(&client.url("m", false), body.clone());
        assert_eq!(r.status, 200, "{params:?}: {}", r.body);
        assert_eq!(client.read(&r).text, "Hello there", "{params:?}");
        let sent = up.posts();
        assert_eq!(sent.len(), asked, "{params:?}: once more for each");
        for param in params {
            assert!(sent[0].json().get(*param).is_some(), "{param}");
            assert_eq!(sent[asked - 1].json().get(*param), None, "{param}");
            p.wait_log(&format!("the model refused `{param}`"));
        }
        assert_eq!(
            sent[asked - 1].json()["messages"],
            sent[0].json()["messages"]
        );
        // Remembered: the next request is asked once, without them.
        let r = p.post(&client.url("m", false), body);
        assert_eq!(r.status, 200, "{params:?}: {}", r.body);
        assert_eq!(r.header("x-routeplane-attempts"), Some("1"));
        assert_eq!(up.posts().len(), asked + 1, "{params:?}");
    }
}

#[test]
fn knobs_anthropic_refuses_are_left_out_of_a_translated_request_and_remembered() {
    // Claude Opus 4.7 and later take no temperature, top_p or top_k: a Gemini client's
    // three, refused one at a time in Anthropic's words, are left out one by one.
    let up = refusing_in(
        Wire::Anthropic,
        &["temperature", "top_p", "top_k"],
        anthropic_deprecated,
    );
    let p = Wire::Anthropic.serving(&up, "m");
    let mut body = Wire::Gemini.request("m", false, false);
    body["generationConfig"] = json!({"temperature": 0.2, "topP": 0.9, "topK": 5});
    let r = p.post(&Wire::Gemini.url("m", false), body.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(Wire::Gemini.read(&r).text, "Hello there");
    let sent = up.posts();
    assert_eq!(sent.len(), 4, "once more for each");
    assert_eq!(sent[0].json()["top_k"], 5, "{}", sent[0].json());
    let last = sent[3].json();
    for param in ["temperature", "top_p", "top_k"] {
        assert_eq!(last.get(param), None, "{param}: {last}");
    }
    // Anthropic's own required limit stays.
    assert!(last["max_tokens"].is_u64(), "{last}");
    let logged = p.wait_log("POST /v1beta/models/m:generateContent");
    assert!(
        logged
            .contains("tried=up:m→400:no_temperature,up:m→400:no_top_p,up:m→400:no_top_k,up:m→200"),
        "{logged}"
    );
    assert_eq!(p.post(&Wire::Gemini.url("m", false), body).status, 200);
    assert_eq!(up.posts().len(), 5);
    assert_eq!(up.posts()[4].json().get("temperature"), None);

    // Claude 4.5 and later take temperature or top_p, not both: top_p is left out, the
    // client's temperature kept (reported in ChatterUI#564, langfuse#9882).
    let up = MockUpstream::start(|req| {
        let body = req.json();
        if body.get("temperature").is_some() && body.get("top_p").is_some() {
            let message = "`temperature` and `top_p` cannot both be specified for this model. Please use only one.";
            let error = json!({"type": "error", "error": {"type": "invalid_request_error", "message": message},
                "request_id": "req_011CTLK54w9XLMYuwBfczGqu"});
            return Reply::Json(400, error.to_string());
        }
        Wire::Anthropic.reply(false, false)
    });
    let p = Wire::Anthropic.serving(&up, "m");
    let mut chat = Wire::Chat.request("m", false, false);
    chat["temperature"] = json!(0.2);
    chat["top_p"] = json!(0.9);
    let r = p.post(Wire::Chat.path(), chat.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(Wire::Chat.read(&r).text, "Hello there");
    let sent = up.posts();
    assert_eq!(sent.len(), 2, "asked again at once");
    assert_eq!(sent[1].json()["temperature"], 0.2);
    assert_eq!(sent[1].json().get("top_p"), None);
    p.wait_log("the model refused `top_p`; asked again without it, and so from now on");
    assert_eq!(p.post(Wire::Chat.path(), chat).status, 200);
    assert_eq!(up.posts().len(), 3);
}

#[test]
fn an_anthropic_clients_own_knob_refused_is_its_error_unchanged() {
    // Written for Anthropic, the request is the client's choice, as a chat client's is.
    let up = refusing_in(Wire::Anthropic, &["temperature"], anthropic_deprecated);
    let p = Wire::Anthropic.serving(&up, "m");
    let mut own = Wire::Anthropic.request("m", false, false);
    own["temperature"] = json!(0.2);
    let r = p.post(Wire::Anthropic.path(), own);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        Wire::Anthropic.error_message(&r.json()),
        "`temperature` is deprecated for this model."
    );
    assert_eq!(up.posts().len(), 1);
}

#[test]
fn a_stop_a_reasoning_model_refuses_is_left_out_of_a_translated_request_and_remembered() {
    // Claude Code's stop sequences, translated for gpt-5 or o3, which take none.
    let up = refusing(Wire::Chat, &["stop"]);
    let p = Wire::Chat.serving(&up, "m");
    let mut claude = Wire::Anthropic.request("m", false, false);
    claude["stop_sequences"] = json!(["###"]);
    let r = p.post(Wire::Anthropic.path(), claude.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(Wire::Anthropic.read(&r).text, "Hello there");
    let sent = up.posts();
    assert_eq!(sent.len(), 2, "asked again at once");
    assert_eq!(sent[0].json()["stop"], json!(["###"]));
    assert_eq!(sent[1].json().get("stop"), None);
    assert_eq!(sent[1].json()["messages"], sent[0].json()["messages"]);
    // Each request sent is an attempt: the refused one is in the count and the log.
    assert_eq!(r.header("x-routeplane-attempts"), Some("2"));
    let line = p.wait_log("the model refused `stop`");
    assert!(line.contains("up:m: "), "{line}");
    let logged = p.wait_log("POST /v1/messages");
    assert!(
        logged.contains("attempts=2 tried=up:m→400:no_stop,up:m→200"),
        "{logged}"
    );
    // Remembered: the next turn goes without it from the first try.
    let r = p.post(Wire::Anthropic.path(), claude);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-routeplane-attempts"), Some("1"));
    let sent = up.posts();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].json().get("stop"), None);
}

#[test]
fn a_chat_clients_own_parameter_refused_is_its_error_unchanged() {
    // Written for this source, the request is the client's choice: the source's 400
    // as it came, asked once, even after a translated request taught Routeplane.
    let up = refusing(Wire::Chat, &["stop"]);
    let p = Wire::Chat.serving(&up, "m");
    let mut own = Wire::Chat.request("m", false, false);
    own["stop"] = json!(["###"]);
    let r = p.post(Wire::Chat.path(), own.clone());
    assert_eq!(r.status, 400, "{}", r.body);
    assert_text(&r.body, &refusal("stop"));
    assert_eq!(up.posts().len(), 1);
    let mut claude = Wire::Anthropic.request("m", false, false);
    claude["stop_sequences"] = json!(["###"]);
    assert_eq!(p.post(Wire::Anthropic.path(), claude).status, 200);
    assert_eq!(up.posts().len(), 3);
    let r = p.post(Wire::Chat.path(), own);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_text(&r.body, &refusal("stop"));
    let sent = up.posts();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].json()["stop"], json!(["###"]));
}

#[test]
fn sampling_knobs_a_reasoning_model_refuses_are_left_out_one_by_one() {
    // A Gemini client's temperature and stop sequences to a chat source refusing both;
    // an Anthropic client's temperature to a Responses source (gpt-5 there refuses it
    // too); an Anthropic client's limit to a deployment whose name does not say it is
    // a reasoning model, which takes it only as `max_completion_tokens`.
    let cases: [(Wire, Wire, &'static [&'static str], usize); 3] = [
        (Wire::Gemini, Wire::Chat, &["temperature", "stop"], 3),
        (Wire::Anthropic, Wire::Responses, &["temperature"], 2),
        (Wire::Anthropic, Wire::Chat, &["max_tokens"], 2),
    ];
    for (client, source, params, asked) in cases {
        let up = refusing(source, params);
        let p = source.serving(&up, "m");
        let mut body = client.request("m", false, false);
        match client {
            Wire::Gemini => {
                body["generationConfig"] = json!({"temperature": 0.2, "stopSequences": ["###"]});
            }
            _ => body["temperature"] = json!(0.2),
        }
        let r = p.post(&client.url("m", false), body.clone());
        assert_eq!(r.status, 200, "{params:?}: {}", r.body);
        assert_eq!(client.read(&r).text, "Hello there", "{params:?}");
        let sent = up.posts();
        assert_eq!(sent.len(), asked, "{params:?}: once more for each");
        let last = sent[asked - 1].json();
        for param in params {
            assert!(
                sent[0].json().get(*param).is_some(),
                "{param}: {}",
                sent[0].json()
            );
            assert_eq!(last.get(*param), None, "{param}: {last}");
        }
        if params == ["max_tokens"] {
            assert_eq!(last["max_completion_tokens"], 100, "{last}");
        }
        // All remembered: the next request is asked once.
        assert_eq!(p.post(&client.url("m", false), body).status, 200);
        assert_eq!(up.posts().len(), asked + 1, "{params:?}");
    }
}
