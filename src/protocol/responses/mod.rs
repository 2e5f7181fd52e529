//! OpenAI Responses ⇄ the chat hub: requests, answers, stream events, and the Codex body rules.
//!
//! A Responses request is a list of *items* (messages, function calls, their outputs)
//! plus `instructions`; a Responses stream is a sequence of typed events that open and
//! close output items. `source.rs` talks to a Responses source (chat in, chat out),
//! `client.rs` serves a Responses client. Routeplane is stateless, so it always asks an
//! upstream not to store (`store: false`) and refuses `previous_response_id` unless the
//! request goes byte for byte to a Responses source.

mod client;
mod source;
#[cfg(test)]
mod tests;

pub use client::{Encoder, custom_tools, request_to_chat, response_from_chat};
pub use source::{Decoder, codex_body, delta, request_from_chat, response_to_chat};

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
