//! What a client asks in each protocol, and what of it an upstream received: questions,
//! tools and tool choices, tool results, PDFs and images.

use serde_json::{Value, json};

use super::Wire;

impl Wire {
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
}
