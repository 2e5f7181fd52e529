//! Answers in each upstream protocol and readers for each client protocol, written once.
//!
//! Shapes follow the public API references of OpenAI Chat Completions, Anthropic
//! Messages and OpenAI Responses. `Wire` names a protocol on either side.

use std::time::Duration;

use serde_json::{Value, json};

use super::proxy::{Resp, Streamed};
use super::{MockUpstream, Reply};

/// A protocol, as a client or an upstream speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI Chat Completions.
    Chat,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    Responses,
}

impl Wire {
    /// All three.
    pub const ALL: [Wire; 3] = [Wire::Chat, Wire::Anthropic, Wire::Responses];

    /// The `api_protocol` name.
    pub fn config_name(self) -> &'static str {
        match self {
            Wire::Chat => "chat_completions",
            Wire::Anthropic => "anthropic",
            Wire::Responses => "responses",
        }
    }

    /// The proxy path a client of this protocol calls.
    pub fn path(self) -> &'static str {
        match self {
            Wire::Chat => "/v1/chat/completions",
            Wire::Anthropic => "/v1/messages",
            Wire::Responses => "/v1/responses",
        }
    }

    /// The upstream path for this protocol.
    pub fn upstream_path(self) -> &'static str {
        self.path()
    }

    /// A client request asking `model` a question, optionally with a tool, optionally streaming.
    pub fn request(self, model: &str, stream: bool, tool: bool) -> Value {
        let mut v = match self {
            Wire::Chat => {
                json!({"model": model, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]})
            }
            Wire::Anthropic => {
                json!({"model": model, "max_tokens": 100, "system": "be brief", "messages": [{"role": "user", "content": "hi"}]})
            }
            Wire::Responses => json!({"model": model, "instructions": "be brief", "input": "hi"}),
        };
        v["stream"] = json!(stream);
        if tool {
            let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
            v["tools"] = match self {
                Wire::Chat => {
                    json!([{"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": schema}}])
                }
                Wire::Anthropic => {
                    json!([{"name": "get_weather", "description": "weather", "input_schema": schema}])
                }
                Wire::Responses => {
                    json!([{"type": "function", "name": "get_weather", "description": "weather", "parameters": schema}])
                }
            };
        }
        v
    }

    /// The follow-up request carrying the tool result `sunny` for call `call_1`.
    pub fn tool_result_request(self, model: &str, stream: bool) -> Value {
        let mut v = match self {
            Wire::Chat => json!({"model": model, "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
            ]}),
            Wire::Anthropic => json!({"model": model, "max_tokens": 100, "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]}
            ]}),
            Wire::Responses => json!({"model": model, "input": [
                {"type": "message", "role": "user", "content": "weather in Paris?"},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
            ]}),
        };
        v["stream"] = json!(stream);
        v
    }

    /// True when an upstream body (this protocol) carries the tool result `sunny` for `call_1`.
    pub fn has_tool_result(self, body: &Value) -> bool {
        let s = body.to_string();
        match self {
            Wire::Chat => body["messages"].as_array().is_some_and(|m| {
                m.iter().any(|x| {
                    x["role"] == "tool"
                        && x["tool_call_id"] == "call_1"
                        && x["content"].to_string().contains("sunny")
                })
            }),
            Wire::Anthropic => {
                s.contains("\"tool_result\"")
                    && s.contains("\"tool_use_id\":\"call_1\"")
                    && s.contains("sunny")
            }
            Wire::Responses => body["input"].as_array().is_some_and(|m| {
                m.iter().any(|x| {
                    x["type"] == "function_call_output"
                        && x["call_id"] == "call_1"
                        && x["output"].to_string().contains("sunny")
                })
            }),
        }
    }

    /// The upstream's answer: the text `Hello there`, or a `get_weather` call.
    pub fn reply(self, stream: bool, tool: bool) -> Reply {
        if stream {
            Reply::Sse(self.events(tool), Duration::ZERO)
        } else {
            Reply::json(200, self.body(tool))
        }
    }

    /// A non-streaming answer body.
    pub fn body(self, tool: bool) -> Value {
        match (self, tool) {
            (Wire::Chat, false) => {
                json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
            }
            (Wire::Chat, true) => {
                json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
            }
            (Wire::Anthropic, false) => {
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 5, "output_tokens": 2}})
            }
            (Wire::Anthropic, true) => {
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}], "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 5, "output_tokens": 2}})
            }
            (Wire::Responses, false) => {
                json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "m",
                "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Hello there", "annotations": []}]}],
                "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}})
            }
            (Wire::Responses, true) => {
                json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "m",
                "output": [{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"}],
                "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}})
            }
        }
    }

    /// A streamed answer, event by event.
    pub fn events(self, tool: bool) -> Vec<String> {
        let data = |v: Value| format!("data: {v}\n\n");
        let named = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
        match (self, tool) {
            (Wire::Chat, false) => vec![
                data(
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": null}]}),
                ),
                data(
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": null}]}),
                ),
                data(
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                ),
                "data: [DONE]\n\n".into(),
            ],
            (Wire::Chat, true) => vec![
                data(
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"ci"}}]}, "finish_reason": null}]}),
                ),
                data(
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\":\"Paris\"}"}}]}, "finish_reason": null}]}),
                ),
                data(
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
                ),
                "data: [DONE]\n\n".into(),
            ],
            (Wire::Anthropic, tool) => {
                let mut evs = vec![
                    named(
                        "message_start",
                        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
                    ),
                    named("ping", json!({"type": "ping"})),
                ];
                if tool {
                    evs.push(named("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}})));
                    evs.push(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"ci"}})));
                    evs.push(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "ty\":\"Paris\"}"}})));
                } else {
                    evs.push(named("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
                    evs.push(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})));
                    evs.push(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}})));
                }
                evs.push(named(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ));
                let stop = if tool { "tool_use" } else { "end_turn" };
                evs.push(named("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 2}})));
                evs.push(named("message_stop", json!({"type": "message_stop"})));
                evs
            }
            (Wire::Responses, tool) => {
                let mut evs = vec![named(
                    "response.created",
                    json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": "m", "output": []}}),
                )];
                if tool {
                    evs.push(named("response.output_item.added", json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "", "status": "in_progress"}})));
                    evs.push(named("response.function_call_arguments.delta", json!({"type": "response.function_call_arguments.delta", "sequence_number": 2, "item_id": "fc_1", "output_index": 0, "delta": "{\"ci"})));
                    evs.push(named("response.function_call_arguments.delta", json!({"type": "response.function_call_arguments.delta", "sequence_number": 3, "item_id": "fc_1", "output_index": 0, "delta": "ty\":\"Paris\"}"})));
                    evs.push(named("response.output_item.done", json!({"type": "response.output_item.done", "sequence_number": 4, "output_index": 0, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"}})));
                } else {
                    evs.push(named("response.output_item.added", json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}})));
                    evs.push(named("response.output_text.delta", json!({"type": "response.output_text.delta", "sequence_number": 2, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Hello"})));
                    evs.push(named("response.output_text.delta", json!({"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": " there"})));
                }
                evs.push(named("response.completed", json!({"type": "response.completed", "sequence_number": 9, "response": Wire::Responses.body(tool)})));
                evs
            }
        }
    }

    /// An error answer in this protocol's shape, with status 400 and message `bad thing`.
    pub fn error_reply(self) -> Reply {
        let body = match self {
            Wire::Anthropic => {
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad thing"}})
            }
            _ => {
                json!({"error": {"message": "bad thing", "type": "invalid_request_error", "param": null, "code": null}})
            }
        };
        Reply::json(400, body)
    }

    /// The error message from a client-side error body of this protocol.
    pub fn error_message(self, v: &Value) -> String {
        match self {
            Wire::Anthropic => {
                assert_eq!(v["type"], "error", "Anthropic error shape: {v}");
                v["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }
            _ => v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// What a client of this protocol got: text and tool calls `(name, arguments JSON)`.
    pub fn read(self, resp: &Resp) -> Answer {
        let v = resp.json();
        let mut a = Answer::default();
        match self {
            Wire::Chat => {
                let msg = &v["choices"][0]["message"];
                a.text = msg["content"].as_str().unwrap_or_default().to_string();
                for c in msg["tool_calls"].as_array().into_iter().flatten() {
                    a.tools.push((
                        c["function"]["name"].as_str().unwrap().into(),
                        parse(&c["function"]["arguments"]),
                        c["id"].as_str().unwrap_or_default().into(),
                    ));
                }
            }
            Wire::Anthropic => {
                assert_eq!(v["type"], "message", "{v}");
                for b in v["content"].as_array().into_iter().flatten() {
                    match b["type"].as_str() {
                        Some("text") => a.text.push_str(b["text"].as_str().unwrap()),
                        Some("tool_use") => a.tools.push((
                            b["name"].as_str().unwrap().into(),
                            b["input"].clone(),
                            b["id"].as_str().unwrap_or_default().into(),
                        )),
                        _ => {}
                    }
                }
            }
            Wire::Responses => {
                assert_eq!(v["object"], "response", "{v}");
                for item in v["output"].as_array().into_iter().flatten() {
                    match item["type"].as_str() {
                        Some("message") => {
                            for c in item["content"].as_array().into_iter().flatten() {
                                a.text.push_str(c["text"].as_str().unwrap_or_default());
                            }
                        }
                        Some("function_call") => a.tools.push((
                            item["name"].as_str().unwrap().into(),
                            parse(&item["arguments"]),
                            item["call_id"].as_str().unwrap_or_default().into(),
                        )),
                        _ => {}
                    }
                }
            }
        }
        a
    }

    /// What a streaming client of this protocol got, and whether the stream ended properly.
    pub fn read_stream(self, s: &Streamed) -> Answer {
        let mut a = Answer::default();
        let mut args: Vec<(String, String, String)> = Vec::new();
        let mut ended = false;
        for ev in s.text().split("\n\n").filter(|e| !e.trim().is_empty()) {
            let data: String = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n");
            if data == "[DONE]" {
                ended = true;
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            match self {
                Wire::Chat => {
                    let d = &v["choices"][0]["delta"];
                    a.text.push_str(d["content"].as_str().unwrap_or_default());
                    for c in d["tool_calls"].as_array().into_iter().flatten() {
                        let i = c["index"].as_u64().unwrap() as usize;
                        if args.len() <= i {
                            args.push((String::new(), String::new(), String::new()));
                        }
                        if let Some(n) = c["function"]["name"].as_str() {
                            args[i].0 = n.into();
                        }
                        if let Some(id) = c["id"].as_str() {
                            args[i].2 = id.into();
                        }
                        args[i]
                            .1
                            .push_str(c["function"]["arguments"].as_str().unwrap_or_default());
                    }
                }
                Wire::Anthropic => match v["type"].as_str() {
                    Some("content_block_start") if v["content_block"]["type"] == "tool_use" => {
                        args.push((
                            v["content_block"]["name"].as_str().unwrap().into(),
                            String::new(),
                            v["content_block"]["id"].as_str().unwrap_or_default().into(),
                        ));
                    }
                    Some("content_block_delta") => {
                        a.text
                            .push_str(v["delta"]["text"].as_str().unwrap_or_default());
                        if let Some(p) = v["delta"]["partial_json"].as_str() {
                            args.last_mut().unwrap().1.push_str(p);
                        }
                    }
                    Some("message_stop") => ended = true,
                    _ => {}
                },
                Wire::Responses => match v["type"].as_str() {
                    Some("response.output_text.delta") => {
                        a.text.push_str(v["delta"].as_str().unwrap())
                    }
                    Some("response.output_item.added") if v["item"]["type"] == "function_call" => {
                        args.push((
                            v["item"]["name"].as_str().unwrap().into(),
                            String::new(),
                            v["item"]["call_id"].as_str().unwrap_or_default().into(),
                        ));
                    }
                    Some("response.function_call_arguments.delta") => args
                        .last_mut()
                        .unwrap()
                        .1
                        .push_str(v["delta"].as_str().unwrap()),
                    Some("response.completed") => ended = true,
                    _ => {}
                },
            }
        }
        a.tools = args
            .into_iter()
            .map(|(n, j, id)| (n, serde_json::from_str(&j).unwrap_or(Value::Null), id))
            .collect();
        a.ended = ended;
        a
    }
}

fn parse(v: &Value) -> Value {
    serde_json::from_str(v.as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

/// What a client received, protocol aside.
#[derive(Debug, Default, PartialEq)]
pub struct Answer {
    /// Concatenated text.
    pub text: String,
    /// Tool calls: name, parsed arguments, call id.
    pub tools: Vec<(String, Value, String)>,
    /// The stream ended with its protocol's end marker.
    pub ended: bool,
}

/// A chat upstream that, like OpenAI, ends a stream with a usage chunk (11 in, 3 of them
/// cached, 4 out) only when asked with `stream_options.include_usage`; whole answers
/// report 5 in, 2 out. Stream events are `gap` apart.
pub fn chat_mock_with_usage(gap: Duration) -> MockUpstream {
    MockUpstream::start(move |req| {
        let body = req.json();
        if body["stream"] != json!(true) {
            return Wire::Chat.reply(false, false);
        }
        let mut evs = Wire::Chat.events(false);
        if body["stream_options"]["include_usage"] == json!(true) {
            let done = evs.pop().unwrap();
            evs.push(format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15, "prompt_tokens_details": {"cached_tokens": 3}}})
            ));
            evs.push(done);
        }
        Reply::Sse(evs, gap)
    })
}
