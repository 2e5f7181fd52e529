//! OpenAI Responses ⇄ chat hub: requests, responses, stream events, errors. (Being written.)

use serde_json::Value;

use super::Decoded;
use crate::error::Error;
use crate::sse::Event;

/// Client request → hub chat request.
pub fn request_to_chat(_req: Value) -> Result<Value, Error> {
    Err(Error::bad_request(
        "protocol translation is not available yet",
    ))
}

/// Hub chat request → upstream request.
pub fn request_from_chat(_chat: Value, _model: &str, provider: &str) -> Result<Value, Error> {
    Err(Error::Unsupported {
        field: "api_protocol".into(),
        provider: provider.into(),
    })
}

/// Upstream response → hub chat completion.
pub fn response_to_chat(_resp: Value) -> Result<Value, Error> {
    Err(Error::Internal(
        "protocol translation is not available yet".into(),
    ))
}

/// Hub chat completion → client response.
pub fn response_from_chat(chat: Value) -> Value {
    chat
}

/// Upstream stream decoder.
#[derive(Debug, Default)]
pub struct Decoder;

impl Decoder {
    /// Decodes one upstream event.
    pub fn event(&mut self, _ev: &Event) -> Decoded {
        Decoded::Failed {
            status: 502,
            message: "protocol translation is not available yet".into(),
        }
    }
}

/// Client stream encoder.
#[derive(Debug)]
pub struct Encoder;

impl Encoder {
    /// A new encoder.
    pub fn new(_model: &str) -> Encoder {
        Encoder
    }
    /// Encodes one hub chunk.
    pub fn chunk(&mut self, _chunk: &Value) -> Vec<Event> {
        Vec::new()
    }
    /// Closes a stream.
    pub fn finish(&mut self) -> Vec<Event> {
        Vec::new()
    }
    /// Ends a stream with an error.
    pub fn fail(&mut self, _status: u16, _message: &str) -> Vec<Event> {
        Vec::new()
    }
}
