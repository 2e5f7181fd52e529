//! Answers in each upstream protocol and readers for each client protocol, written once.
//!
//! Shapes follow the public API references of OpenAI Chat Completions, Anthropic
//! Messages, OpenAI Responses and Google Gemini `generateContent`. `Wire` names a
//! protocol on either side.
//!
//! The parts: this file names the protocols and writes their SSE events; `request.rs`
//! writes what a client asks and reads what an upstream received; `reply.rs` writes
//! what an upstream answers; `read.rs` reads what a client got back.

mod read;
mod reply;
mod request;

pub use read::{anthropic_content, assert_blocks_whole, read_gemini_array, responses_output};
pub use reply::chat_mock_with_usage;

use serde_json::{Value, json};

use super::MockUpstream;
use super::proxy::Proxy;
use super::upstream::Recorded;

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
