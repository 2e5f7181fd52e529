//! What an upstream answers in each protocol: whole bodies, streams, tool calls, errors.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Wire, data, named};
use crate::support::{MockUpstream, Reply};

impl Wire {
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
            (Wire::Gemini, tool) => {
                let part = if tool {
                    json!({"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}})
                } else {
                    json!({"text": "Hello there"})
                };
                json!({"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
                "modelVersion": "m", "responseId": "r1"})
            }
        }
    }

    /// A non-streaming answer that calls the tool `name` with `args` (id `call_1`).
    pub fn calling(self, name: &str, args: Value) -> Value {
        let mut v = self.body(true);
        match self {
            Wire::Chat => {
                let f = &mut v["choices"][0]["message"]["tool_calls"][0]["function"];
                f["name"] = json!(name);
                f["arguments"] = json!(args.to_string());
            }
            Wire::Anthropic => {
                v["content"][0]["name"] = json!(name);
                v["content"][0]["input"] = args;
            }
            Wire::Responses => {
                v["output"][0]["name"] = json!(name);
                v["output"][0]["arguments"] = json!(args.to_string());
            }
            Wire::Gemini => {
                let call = &mut v["candidates"][0]["content"]["parts"][0]["functionCall"];
                call["name"] = json!(name);
                call["args"] = args;
            }
        }
        v
    }

    /// A streamed answer, event by event.
    pub fn events(self, tool: bool) -> Vec<String> {
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
            (Wire::Gemini, tool) => {
                // Google ends each event with CRLF CRLF and sends no end marker: the
                // last event carries `finishReason` and `usageMetadata`.
                let ev = |v: Value| format!("data: {v}\r\n\r\n");
                let part = |p: Value| json!({"candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}], "modelVersion": "m", "responseId": "r1"});
                let mut evs = if tool {
                    vec![ev(part(
                        json!({"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}}),
                    ))]
                } else {
                    vec![
                        ev(part(json!({"text": "Hello"}))),
                        ev(part(json!({"text": " there"}))),
                    ]
                };
                let mut last = part(json!({"text": ""}));
                last["candidates"][0]["finishReason"] = json!("STOP");
                last["usageMetadata"] =
                    json!({"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7});
                evs.push(ev(last));
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
            Wire::Gemini => {
                json!({"error": {"code": 400, "message": "bad thing", "status": "INVALID_ARGUMENT"}})
            }
            _ => {
                json!({"error": {"message": "bad thing", "type": "invalid_request_error", "param": null, "code": null}})
            }
        };
        Reply::json(400, body)
    }
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
