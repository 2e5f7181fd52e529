//! Reading what a client got back, in each protocol: text, tool calls, whether a stream
//! ended properly, errors, and the blocks or items the SDKs would keep.

use serde_json::{Value, json};

use super::{Answer, Wire};
use crate::support::proxy::{Resp, Streamed};

impl Wire {
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
