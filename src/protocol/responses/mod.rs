//! OpenAI Responses ⇄ the chat hub: requests, answers, stream events, and the Codex body rules.
//!
//! A Responses request is a list of *items* (messages, function calls, their outputs)
//! plus `instructions`; a Responses stream is a sequence of typed events that open and
//! close output items. `source.rs` talks to a Responses source (chat in, chat out),
//! `client.rs` reads a Responses client's request, `answer.rs` writes its whole answer
//! and `stream.rs` its stream.
//! Routeplane is stateless, so it always asks an upstream not to store (`store: false`)
//! and refuses `previous_response_id` unless the request goes byte for byte to a
//! Responses source.
//!
//! Thinking another source signed (Claude's) reaches a Responses client as a reasoning
//! item's `encrypted_content`, sealed by Routeplane, which Codex gives back on its next
//! turn; a Responses source could not read it, so it is taken out before one sees it.
//! Every reasoning item Routeplane makes is sealed so, with no details when the source
//! signed nothing: given back without `encrypted_content`, OpenAI would refuse it.
//!
//! A Responses source's own reasoning items carry its `encrypted_content`: they travel
//! through the hub as reasoning details (OpenRouter's `openai-responses-v1`), so a
//! client of another protocol can give them back, and go back to a Responses source as
//! reasoning items before the turn they led to.

use memchr::memmem::Finder;
use serde_json::Value;

use crate::base64;

mod answer;
mod client;
mod source;
mod stream;
#[cfg(test)]
mod tests;

pub use answer::response_from_chat;
pub use client::{ClientTools, Echo, request_to_chat};
pub use source::{Decoder, codex_body, delta, failed_status, request_from_chat, response_to_chat};
pub use stream::Encoder;

/// How an `encrypted_content` Routeplane sealed begins (OpenAI's begin `gAAAA`).
const SEALED: &str = "routeplane:v1:";

/// What joins the kind (`msg`, `fc`, `ctc`, `rs`) to the rest in the id of an item
/// Routeplane made for a translated answer: a source never stored it, so it is taken
/// out before a Responses source sees it ("Item with id … not found").
const MINTED: &str = "_rp_";

/// The kinds of item, as their ids begin (`msg_…`), that OpenAI stores and Routeplane
/// makes ids for: messages, function calls, custom tool calls, local shell calls,
/// reasoning.
pub(crate) const KINDS: [&str; 5] = ["msg", "fc", "ctc", "lsc", "rs"];

/// The id of an item Routeplane made: `fc_rp_call_1`.
fn minted(kind: &str, rest: &str) -> String {
    format!("{kind}{MINTED}{rest}")
}

/// True for an id [`minted`] made.
fn is_minted(id: &str) -> bool {
    id.find(MINTED).is_some_and(|at| KINDS.contains(&&id[..at]))
}

/// The least `max_output_tokens` a Responses source is asked for: OpenAI refuses less
/// (`integer_below_min_value`: "Expected a value >= 16"), and clients send caps as small
/// as 1 to probe a model (Claude Code's start-up quota check, "test connection"
/// buttons). A smaller cap is raised to it, so such an answer may run to 16 tokens.
pub const LEAST_OUTPUT_CAP: u64 = 16;

/// The `format` of a hub reasoning detail that is a Responses source's encrypted
/// reasoning, as OpenRouter names it: only such a detail goes back to a Responses source.
pub(crate) const SIGNED_BY_OPENAI: &str = "openai-responses-v1";

/// Hub reasoning details as a reasoning item's `encrypted_content`.
fn seal(details: &[Value]) -> String {
    let json = serde_json::to_vec(details).unwrap_or_default();
    format!("{SEALED}{}", base64::encode(&json))
}

/// The hub reasoning details in an `encrypted_content` Routeplane sealed; `None` for
/// one it did not, and for one sealed empty, which carries nothing to give back.
fn unseal(content: &str) -> Option<Vec<Value>> {
    let json = base64::decode(content.strip_prefix(SEALED)?)?;
    serde_json::from_slice::<Vec<Value>>(&json)
        .ok()
        .filter(|details| !details.is_empty())
}

/// Whether a client's request `input` holds what Routeplane wrote for itself: a
/// reasoning item it sealed, or an item id it made.
pub fn holds_own(input: &[u8]) -> bool {
    // One search for the joint, then a look at what leads to it: `"fc_rp_…`.
    let minted_id = memchr::memmem::find_iter(input, MINTED.as_bytes()).any(|at| {
        KINDS.iter().any(|kind| {
            input[..at]
                .strip_suffix(kind.as_bytes())
                .is_some_and(|before| before.ends_with(b"\""))
        })
    });
    static MARK: crate::protocol::Marker = crate::protocol::Marker::new(|| Finder::new(SEALED));
    minted_id || crate::protocol::holds(input, &MARK)
}

/// Takes out of a Responses request what [`holds_own`] found: a Responses source refuses
/// `encrypted_content` it did not make and item ids it never stored. A reference to a
/// made item names nothing and goes; the other items stay, inline, without the id.
pub fn drop_own(req: &mut Value) {
    if let Some(items) = req["input"].as_array_mut() {
        items.retain(|item| {
            let sealed = item["type"] == "reasoning"
                && item["encrypted_content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(SEALED));
            let reference =
                item["type"] == "item_reference" && item["id"].as_str().is_some_and(is_minted);
            !sealed && !reference
        });
        for item in items.iter_mut() {
            if item["id"].as_str().is_some_and(is_minted)
                && let Some(o) = item.as_object_mut()
            {
                o.shift_remove("id");
            }
        }
    }
}

/// Takes the reasoning items out of a Responses request, `all` of them or those before
/// its last user message (all when there are none before it), and every item's id. With
/// nothing stored (`store: false`, or another account), an id only names an item the
/// account that made it might look up ("Item with id … not found"; Routeplane's own
/// `msg_`/`fc_` ids for translated answers were never stored anywhere), and reasoning
/// reaches the next turn only as encrypted content, which an account other than the one
/// that encrypted it cannot read (`invalid_encrypted_content`). Reasoning from before
/// the last user message is read no more (OpenAI's models reason afresh for each
/// question), so leaving it out first loses nothing; a reasoning item left without an
/// id and without encrypted content says nothing, and goes too. True when reasoning is
/// left; the encrypted texts and the item ids left out are added to `left_out`.
pub fn drop_reasoning(req: &mut Value, all: bool, left_out: &mut Vec<String>) -> bool {
    let Some(items) = req["input"].as_array_mut() else {
        return false;
    };
    let reasoning = |i: &Value| i["type"] == "reasoning";
    // Items from `cut` on are the tool loop's own: their reasoning stays.
    let cut = match items.iter().rposition(|i| i["role"] == "user") {
        Some(at) if !all && items[..at].iter().any(reasoning) => at,
        _ => items.len(),
    };
    let mut kept = items.split_off(cut);
    let (gone, rest): (Vec<Value>, Vec<Value>) =
        std::mem::take(items).into_iter().partition(reasoning);
    *items = rest;
    left_out.extend(
        gone.into_iter()
            .filter_map(|mut i| match i["encrypted_content"].take() {
                Value::String(s) => Some(s),
                _ => None,
            }),
    );
    kept.retain(|i| !reasoning(i) || i["encrypted_content"].is_string());
    items.extend(kept);
    // An `item_reference` is nothing but its id.
    for item in items.iter_mut().filter(|i| i["type"] != "item_reference") {
        if let Some(Value::String(id)) = item.as_object_mut().and_then(|o| o.shift_remove("id")) {
            left_out.push(id);
        }
    }
    items.iter().any(reasoning)
}

/// Instructions sent to the ChatGPT/Codex backend when the client gave none (it requires some).
const DEFAULT_INSTRUCTIONS: &str = "You are a helpful assistant.";

/// The request fields chat and Responses share, under the same names.
const SHARED_FIELDS: [&str; 6] = [
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "metadata",
    "stream",
];

/// What a file part carries, the same in chat's `file` and Responses' `input_file`.
const FILE_FIELDS: [&str; 3] = ["filename", "file_data", "file_id"];
