//! OpenAI's encrypted reasoning and Responses item ids: kept for the source and account
//! that made them, left out everywhere else. Where reasoning goes (back to the source that
//! encrypted it, through a client's tool loop, to no other source) in encrypted.rs; the
//! item ids Routeplane or a source made in item_ids.rs; reasoning and ids another
//! account made, refused and then left out, in accounts.rs. The mock they share is here.

mod accounts;
mod encrypted;
mod item_ids;

use super::*;

/// A Responses source (gpt-5) that reasons, encrypted, then calls `get_weather`:
/// streamed or whole, as asked.
fn openai_reasons_then_calls() -> MockUpstream {
    let reasoning = json!({"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAA-test",
        "summary": [{"type": "summary_text", "text": "Need the weather."}]});
    let call = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
        "arguments": "{\"city\":\"Paris\"}", "status": "completed"});
    let body = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "m",
        "output": [reasoning, call], "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}});
    MockUpstream::start(move |req| {
        if body_of(req)["stream"] != json!(true) {
            return Reply::json(200, body.clone());
        }
        let events = [
            json!({"type": "response.created", "response": {"id": "resp_1", "created_at": 1, "status": "in_progress", "model": "m", "output": []}}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "Need the weather."}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": reasoning}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "", "status": "in_progress"}}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": "{\"city\":\"Paris\"}"}),
            json!({"type": "response.output_item.done", "output_index": 1, "item": call}),
            json!({"type": "response.completed", "response": body}),
        ];
        let events = events
            .iter()
            .enumerate()
            .map(|(n, e)| {
                let mut e = e.clone();
                e["sequence_number"] = json!(n);
                format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())
            })
            .collect();
        Reply::Sse(events, Duration::ZERO)
    })
}
