//! Answers in each upstream protocol and readers for each client protocol, written once.
//!
//! Shapes follow the public API references of OpenAI Chat Completions, Anthropic
//! Messages, OpenAI Responses and Google Gemini `generateContent`. `Wire` names a
//! protocol on either side.

use std::time::Duration;

use serde_json::{Value, json};

use super::proxy::{Proxy, Resp, Streamed};
use super::upstream::Recorded;
use super::{MockUpstream, Reply};

/// An SSE event of only `data` (Chat Completions, Gemini).
pub fn data(v: Value) -> String {
    format!("data: {v}\n\n")
}

/// One Chat Completions stream chunk (`id` c1, model `m`) of one choice, as an SSE event.
pub fn chat_chunk(delta: Value, finish: Value) -> String {
    data(
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
}

/// An SSE event with its `event:` name (Anthropic, Responses).
pub fn named(name: &str, v: Value) -> String {
    format!("event: {name}\ndata: {v}\n\n")
}

/// Makes Responses events as a source sends them: each named by its `type`, which is
/// set, and numbered by `sequence_number` from 0.
pub fn sequenced() -> impl FnMut(&str, Value) -> String {
    let mut seq = 0;
    move |name, mut v| {
        v["type"] = json!(name);
        v["sequence_number"] = json!(seq);
        seq += 1;
        named(name, v)
    }
}

/// A protocol, as a client or an upstream speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI Chat Completions.
    Chat,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    Responses,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl Wire {
    /// All four.
    pub const ALL: [Wire; 4] = [Wire::Chat, Wire::Anthropic, Wire::Responses, Wire::Gemini];

    /// A proxy whose `model` is served by one source, `mock`, speaking this protocol.
    pub fn serving(self, mock: &MockUpstream, model: &str) -> Proxy {
        Proxy::start(&format!(
            "providers:\n  up:\n    api_base: {}\n    api_protocol: {}\n    models: [{model}]\n",
            mock.url(),
            self.config_name()
        ))
    }

    /// The `api_protocol` name.
    pub fn config_name(self) -> &'static str {
        match self {
            Wire::Chat => "chat_completions",
            Wire::Anthropic => "anthropic",
            Wire::Responses => "responses",
            Wire::Gemini => "gemini",
        }
    }

    /// The proxy path a client of this protocol calls (Gemini: the models collection;
    /// its calls are under it, see [`Wire::url`]).
    pub fn path(self) -> &'static str {
        match self {
            Wire::Chat => "/v1/chat/completions",
            Wire::Anthropic => "/v1/messages",
            Wire::Responses => "/v1/responses",
            Wire::Gemini => "/v1beta/models",
        }
    }

    /// The proxy path a client calls for `model`: Gemini puts the model and whether to
    /// stream (as SSE) in it.
    pub fn url(self, model: &str, stream: bool) -> String {
        match (self, stream) {
            (Wire::Gemini, false) => format!("/v1beta/models/{model}:generateContent"),
            (Wire::Gemini, true) => format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            _ => self.path().to_string(),
        }
    }

    /// The upstream path for this protocol (non-streaming, model `m`).
    pub fn upstream_path(self) -> &'static str {
        match self {
            Wire::Gemini => "/v1/models/m:generateContent",
            _ => self.path(),
        }
    }

    /// The model an upstream request of this protocol asked for (Gemini: in the path).
    pub fn sent_model(self, rec: &Recorded) -> String {
        match self {
            Wire::Gemini => {
                let path = rec.path.split('?').next().unwrap_or_default();
                let rest = path.split_once("/models/").map_or("", |(_, r)| r);
                rest.rsplit_once(':').map_or(rest, |(m, _)| m).to_string()
            }
            _ => rec.json()["model"].as_str().unwrap_or_default().to_string(),
        }
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
            Wire::Gemini => {
                json!({"systemInstruction": {"parts": [{"text": "be brief"}]}, "contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
            }
        };
        if self != Wire::Gemini {
            v["stream"] = json!(stream);
        }
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
                Wire::Gemini => {
                    json!([{"functionDeclarations": [{"name": "get_weather", "description": "weather", "parametersJsonSchema": schema}]}])
                }
            };
        }
        v
    }

    /// This protocol's words for the four tool choices: the model decides, some tool
    /// must be called, none may be, and `get_weather` must be.
    pub fn tool_choices(self) -> [Value; 4] {
        match self {
            Wire::Chat => [
                json!("auto"),
                json!("required"),
                json!("none"),
                json!({"type": "function", "function": {"name": "get_weather"}}),
            ],
            Wire::Anthropic => [
                json!({"type": "auto"}),
                json!({"type": "any"}),
                json!({"type": "none"}),
                json!({"type": "tool", "name": "get_weather"}),
            ],
            Wire::Responses => [
                json!("auto"),
                json!("required"),
                json!("none"),
                json!({"type": "function", "name": "get_weather"}),
            ],
            Wire::Gemini => [
                json!({"mode": "AUTO"}),
                json!({"mode": "ANY"}),
                json!({"mode": "NONE"}),
                json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
            ],
        }
    }

    /// Puts the tool choice `choice` (in this protocol's words) into the request `req`.
    pub fn set_tool_choice(self, req: &mut Value, choice: Value) {
        match self {
            Wire::Gemini => req["toolConfig"] = json!({"functionCallingConfig": choice}),
            _ => req["tool_choice"] = choice,
        }
    }

    /// The function tools a request body of this protocol offers: name and input schema.
    pub fn offered(self, body: &Value) -> Vec<(String, Value)> {
        let tools = match self {
            Wire::Gemini => &body["tools"][0]["functionDeclarations"],
            _ => &body["tools"],
        };
        let tools = tools.as_array().into_iter().flatten();
        tools
            .map(|t| {
                let (name, schema) = match self {
                    Wire::Chat => (&t["function"]["name"], &t["function"]["parameters"]),
                    Wire::Anthropic => (&t["name"], &t["input_schema"]),
                    Wire::Responses => (&t["name"], &t["parameters"]),
                    Wire::Gemini => (&t["name"], &t["parametersJsonSchema"]),
                };
                (
                    name.as_str().unwrap_or_default().to_string(),
                    schema.clone(),
                )
            })
            .collect()
    }

    /// The tool choice a request body of this protocol makes (null when it makes none).
    pub fn tool_choice(self, body: &Value) -> Value {
        match self {
            Wire::Gemini => body["toolConfig"]["functionCallingConfig"].clone(),
            _ => body["tool_choice"].clone(),
        }
    }

    /// This protocol's part for an inline PDF named `document.pdf` (the name Routeplane
    /// gives one that comes without, as from Gemini, whose parts carry none).
    pub fn pdf_part(self) -> Value {
        let data = "JVBERi0x";
        match self {
            Wire::Chat => json!({"type": "file",
                "file": {"filename": "document.pdf", "file_data": format!("data:application/pdf;base64,{data}")}}),
            Wire::Anthropic => json!({"type": "document", "title": "document.pdf",
                "source": {"type": "base64", "media_type": "application/pdf", "data": data}}),
            Wire::Responses => json!({"type": "input_file", "filename": "document.pdf",
                "file_data": format!("data:application/pdf;base64,{data}")}),
            Wire::Gemini => json!({"inlineData": {"mimeType": "application/pdf", "data": data}}),
        }
    }

    /// A request for `model` whose one user turn is a PDF, then the text `summarize`.
    pub fn pdf_request(self, model: &str) -> Value {
        let text = match self {
            Wire::Chat | Wire::Anthropic => json!({"type": "text", "text": "summarize"}),
            Wire::Responses => json!({"type": "input_text", "text": "summarize"}),
            Wire::Gemini => json!({"text": "summarize"}),
        };
        let parts = json!([self.pdf_part(), text]);
        match self {
            Wire::Chat => json!({"model": model, "messages": [{"role": "user", "content": parts}]}),
            Wire::Anthropic => {
                json!({"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": parts}]})
            }
            Wire::Responses => {
                json!({"model": model, "input": [{"type": "message", "role": "user", "content": parts}]})
            }
            Wire::Gemini => json!({"contents": [{"role": "user", "parts": parts}]}),
        }
    }

    /// The parts of the first user turn of a request body in this protocol.
    pub fn first_user_parts(self, body: &Value) -> Value {
        match self {
            Wire::Chat | Wire::Anthropic => body["messages"][0]["content"].clone(),
            Wire::Responses => body["input"][0]["content"].clone(),
            Wire::Gemini => body["contents"][0]["parts"].clone(),
        }
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
            Wire::Gemini => json!({"contents": [
                {"role": "user", "parts": [{"text": "weather in Paris?"}]},
                {"role": "model", "parts": [{"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"id": "call_1", "name": "get_weather", "response": {"output": "sunny"}}}]}
            ]}),
        };
        if self != Wire::Gemini {
            v["stream"] = json!(stream);
        }
        v
    }

    /// This protocol's part for a small inline PNG.
    pub fn png_part(self) -> Value {
        let data = "iVBORw0KGgo=";
        let url = format!("data:image/png;base64,{data}");
        match self {
            Wire::Chat => json!({"type": "image_url", "image_url": {"url": url}}),
            Wire::Anthropic => json!({"type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": data}}),
            Wire::Responses => json!({"type": "input_image", "image_url": url, "detail": "auto"}),
            Wire::Gemini => json!({"inlineData": {"mimeType": "image/png", "data": data}}),
        }
    }

    /// [`Wire::tool_result_request`] whose tool result is the text `sunny` and a PNG (a
    /// screenshot tool's answer); Gemini's goes beside its function response.
    pub fn tool_image_request(self, model: &str) -> Value {
        let mut v = self.tool_result_request(model, false);
        let png = self.png_part();
        match self {
            Wire::Chat => {
                v["messages"][2]["content"] = json!([{"type": "text", "text": "sunny"}, png]);
            }
            Wire::Anthropic => {
                v["messages"][2]["content"][0]["content"] =
                    json!([{"type": "text", "text": "sunny"}, png]);
            }
            Wire::Responses => {
                v["input"][2]["output"] = json!([{"type": "input_text", "text": "sunny"}, png]);
            }
            Wire::Gemini => {
                v["contents"][2]["parts"].as_array_mut().unwrap().push(png);
            }
        }
        v
    }

    /// The image an upstream body (this protocol) carries with the tool result for
    /// `call_1`, where this protocol takes it: inside the result (Anthropic, Responses),
    /// beside it in its turn (Gemini, Anthropic), or in the user message right after
    /// the tool messages (Chat, Responses); `Null` when there is none.
    pub fn tool_image(self, body: &Value) -> Value {
        let is_image = |p: &&Value| {
            p["type"] == "image" || p["type"] == "image_url" || p["type"] == "input_image"
        };
        let first_image = |parts: &Value| {
            parts
                .as_array()
                .and_then(|a| a.iter().find(is_image).cloned())
                .unwrap_or(Value::Null)
        };
        let list = |key: &str| body[key].as_array().cloned().unwrap_or_default();
        match self {
            Wire::Chat => {
                let m = list("messages");
                let Some(i) = m.iter().position(|x| x["role"] == "tool") else {
                    return Value::Null;
                };
                let next = m.iter().skip(i).find(|x| x["role"] != "tool");
                let mut image = next
                    .filter(|x| x["role"] == "user")
                    .map_or(Value::Null, |x| first_image(&x["content"]));
                // `auto` is what no `detail` means (a Responses client's image has one).
                if image["image_url"]["detail"] == "auto" {
                    image["image_url"]
                        .as_object_mut()
                        .map(|o| o.remove("detail"));
                }
                image
            }
            Wire::Anthropic => {
                let m = list("messages");
                let Some(turn) = m.iter().find(|x| x.to_string().contains("tool_result")) else {
                    return Value::Null;
                };
                let blocks = turn["content"].as_array().cloned().unwrap_or_default();
                let inside = blocks.iter().map(|b| first_image(&b["content"]));
                inside
                    .chain([first_image(&turn["content"])])
                    .find(|v| !v.is_null())
                    .unwrap_or(Value::Null)
            }
            Wire::Responses => {
                let items = list("input");
                let Some(i) = items
                    .iter()
                    .position(|x| x["type"] == "function_call_output")
                else {
                    return Value::Null;
                };
                let inside = first_image(&items[i]["output"]);
                if !inside.is_null() {
                    return inside;
                }
                items
                    .get(i + 1)
                    .map_or(Value::Null, |x| first_image(&x["content"]))
            }
            Wire::Gemini => list("contents")
                .iter()
                .find(|c| c.to_string().contains("functionResponse"))
                .and_then(|c| {
                    let parts = c["parts"].as_array()?;
                    parts.iter().find(|p| p["inlineData"].is_object()).cloned()
                })
                .unwrap_or(Value::Null),
        }
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
            Wire::Gemini => body["contents"].as_array().is_some_and(|c| {
                c.iter()
                    .flat_map(|x| x["parts"].as_array().into_iter().flatten())
                    .any(|p| {
                        let fr = &p["functionResponse"];
                        fr["name"] == "get_weather"
                            && fr["id"] == "call_1"
                            && fr["response"].to_string().contains("sunny")
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
            Wire::Gemini => {
                assert!(v["error"]["code"].is_u64(), "Google error shape: {v}");
                assert!(v["error"]["status"].is_string(), "Google error shape: {v}");
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
            Wire::Gemini => {
                assert!(v["candidates"].is_array(), "{v}");
                gemini_parts(&v, &mut a);
            }
        }
        a
    }

    /// What a streaming client of this protocol got, and whether the stream ended properly.
    /// Argument fragments go to the call their event names (an Anthropic block's index,
    /// a Responses item's id), as the SDKs apply them; a call without a name reads as
    /// one named "".
    pub fn read_stream(self, s: &Streamed) -> Answer {
        let mut a = Answer::default();
        let mut args: Vec<(String, String, String)> = Vec::new();
        // The call each Anthropic block index or Responses item id is.
        let mut slot_of: Vec<(Value, usize)> = Vec::new();
        let slot = |slot_of: &[(Value, usize)], key: &Value| {
            let found = slot_of.iter().find(|(k, _)| k == key);
            found.map(|&(_, i)| i)
        };
        let mut ended = false;
        // Google's streams end lines with CRLF; the others with LF.
        let text = s.text().replace("\r\n", "\n");
        for ev in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
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
                        slot_of.push((v["index"].clone(), args.len()));
                        args.push((
                            v["content_block"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .into(),
                            String::new(),
                            v["content_block"]["id"].as_str().unwrap_or_default().into(),
                        ));
                    }
                    Some("content_block_delta") => {
                        a.text
                            .push_str(v["delta"]["text"].as_str().unwrap_or_default());
                        if let Some(p) = v["delta"]["partial_json"].as_str() {
                            let i = slot(&slot_of, &v["index"]).expect("a delta of no block");
                            args[i].1.push_str(p);
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
                        slot_of.push((v["item"]["id"].clone(), args.len()));
                        args.push((
                            v["item"]["name"].as_str().unwrap_or_default().into(),
                            String::new(),
                            v["item"]["call_id"].as_str().unwrap_or_default().into(),
                        ));
                    }
                    Some("response.function_call_arguments.delta") => {
                        let i = slot(&slot_of, &v["item_id"]).expect("a delta of no item");
                        args[i].1.push_str(v["delta"].as_str().unwrap());
                    }
                    Some("response.completed") => ended = true,
                    _ => {}
                },
                Wire::Gemini => {
                    gemini_parts(&v, &mut a);
                    ended |= v["candidates"][0]["finishReason"].is_string();
                }
            }
        }
        a.tools.extend(
            args.into_iter()
                .map(|(n, j, id)| (n, serde_json::from_str(&j).unwrap_or(Value::Null), id)),
        );
        a.ended = ended;
        a
    }
}

/// Adds the text and function calls of a Gemini response to an answer.
fn gemini_parts(v: &Value, a: &mut Answer) {
    for p in v["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if p["thought"] != json!(true) {
            a.text.push_str(p["text"].as_str().unwrap_or_default());
        }
        let fc = &p["functionCall"];
        if fc.is_object() {
            a.tools.push((
                fc["name"].as_str().unwrap().into(),
                fc["args"].clone(),
                fc["id"].as_str().unwrap_or_default().into(),
            ));
        }
    }
}

/// What a Gemini client got from a JSON-array stream (`:streamGenerateContent` without
/// `alt=sse`); `ended` when the array closed after an element with a finish reason.
pub fn read_gemini_array(body: &str) -> Answer {
    let mut a = Answer::default();
    let items: Vec<Value> = serde_json::from_str(body).expect("the stream is one JSON array");
    for v in &items {
        gemini_parts(v, &mut a);
    }
    a.ended = items
        .last()
        .is_some_and(|v| v["candidates"][0]["finishReason"].is_string());
    a
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

/// An Anthropic Messages stream folded into the answer's `content` blocks, as the SDKs
/// (and Claude Code) keep them to send back: deltas applied to the block they name.
pub fn anthropic_content(s: &Streamed) -> Vec<Value> {
    let mut blocks: Vec<Value> = Vec::new();
    let mut inputs: Vec<String> = Vec::new();
    for v in s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
    {
        let i = v["index"].as_u64().unwrap_or(0) as usize;
        match v["type"].as_str() {
            Some("content_block_start") => {
                blocks.push(v["content_block"].clone());
                inputs.push(String::new());
            }
            Some("content_block_delta") => {
                let (d, b) = (&v["delta"], &mut blocks[i]);
                for (delta_key, block_key) in [
                    ("text", "text"),
                    ("thinking", "thinking"),
                    ("signature", "signature"),
                ] {
                    if let Some(t) = d[delta_key].as_str() {
                        let so_far = b[block_key].as_str().unwrap_or_default().to_string();
                        b[block_key] = json!(so_far + t);
                    }
                }
                inputs[i].push_str(d["partial_json"].as_str().unwrap_or_default());
            }
            Some("content_block_stop") if !inputs[i].is_empty() => {
                blocks[i]["input"] = serde_json::from_str(&inputs[i]).unwrap();
            }
            _ => {}
        }
    }
    blocks
}

/// Asserts that each block of an Anthropic Messages stream is whole: its events
/// contiguous, start, deltas, stop, none inside another (Anthropic's blocks cannot
/// interleave).
pub fn assert_blocks_whole(s: &Streamed) {
    let mut open: Option<u64> = None;
    for d in s.data() {
        let Ok(v) = serde_json::from_str::<Value>(&d) else {
            continue;
        };
        let index = v["index"].as_u64();
        match v["type"].as_str() {
            Some("content_block_start") => {
                assert_eq!(open, None, "a block opened inside another: {}", s.text());
                open = index;
            }
            Some("content_block_delta") => assert_eq!(index, open, "{}", s.text()),
            Some("content_block_stop") => {
                assert_eq!(index, open, "{}", s.text());
                open = None;
            }
            _ => {}
        }
    }
}

/// The `output` items of the response a Responses stream completed with, as the SDKs
/// return it; empty when it never completed.
pub fn responses_output(s: &Streamed) -> Vec<Value> {
    s.data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["type"] == "response.completed")
        .and_then(|v| v["response"]["output"].as_array().cloned())
        .unwrap_or_default()
}

/// A proxy with one provider for each source: its name, the protocol it speaks, its mock
/// and the one model it serves. Each has a key, so `openrouter` (the built-in provider,
/// pointed at its mock) can be one of them.
pub fn sources(list: &[(&str, Wire, &MockUpstream, &str)]) -> Proxy {
    let mut yaml = String::from("providers:\n");
    for (name, wire, mock, model) in list {
        yaml += &format!(
            "  {name}: {{api_base: {}, api_protocol: {}, api_key: k, models: [{model}]}}\n",
            mock.url(),
            wire.config_name()
        );
    }
    Proxy::start(&yaml)
}
