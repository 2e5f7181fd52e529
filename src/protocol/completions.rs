//! OpenAI's legacy text completions (`POST /v1/completions`): a prompt continued as raw
//! text, the form editors' autocomplete (fill-in-the-middle with `suffix`) still uses.
//!
//! A prompt has no chat form that a model would continue the same way, so a request is
//! never translated: it goes only to sources that speak OpenAI's API, byte for byte
//! with the model rewritten. What is mapped is the answer's shape, for the relay's
//! bookkeeping and for a broken stream's continuation: each choice's `text` is the
//! hub's `delta.content` (or `message.content`), and back.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::{Decoded, chat};
use crate::error::Error;
use crate::sse::Event;

/// Why a legacy completion cannot go to a source of another protocol.
pub fn untranslatable() -> Error {
    Error::Untranslatable(
        "a legacy completion (`prompt`) goes only to sources that speak OpenAI's Chat \
         Completions API; ask /v1/chat/completions for the others"
            .into(),
    )
}

/// A completions answer or chunk in the hub's names: each choice's `text` becomes the
/// content of its `part` (`message` or `delta`).
pub fn into_hub(answer: &mut Value, part: &str) {
    let Some(choices) = answer.get_mut("choices").and_then(Value::as_array_mut) else {
        return;
    };
    for choice in choices.iter_mut().filter_map(Value::as_object_mut) {
        if let Some(text) = choice.shift_remove("text") {
            choice.insert(part.into(), json!({"content": text}));
        }
    }
}

/// A hub answer or chunk in the completions shape: the content of each choice's `part`
/// becomes its `text` (reasoning and tool calls have no place in it).
pub fn from_hub(mut answer: Value, part: &str) -> Value {
    if let Some(choices) = answer.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(m) = choice.shift_remove(part) {
                let text = super::text_of(&m["content"]);
                choice.insert("text".into(), Value::String(text));
            }
        }
    }
    if answer.is_object() {
        answer["object"] = json!("text_completion");
    }
    answer
}

/// Adds the answer so far to the prompt, which a model continues as raw text. Only a
/// single prompt can be continued: with several (or token ids), `n` above 1 or the
/// prompt echoed, the choices could not be told apart or the echo would repeat.
pub fn append_partial(req: &mut Value, text: &str) -> Result<(), Error> {
    let single = req["n"].as_u64().is_none_or(|n| n <= 1) && req["echo"] != true;
    let slot = match req.get_mut("prompt") {
        Some(Value::Array(ps)) if ps.len() == 1 => ps.get_mut(0),
        other => other,
    };
    match slot {
        Some(Value::String(prompt)) if single => {
            prompt.push_str(text);
            Ok(())
        }
        _ => Err(Error::bad_request(
            "only a single text prompt (no `n` above 1, no `echo`) can be continued",
        )),
    }
}

/// Decodes a completions stream: chat's framing, `text` for content.
#[derive(Debug, Default)]
pub struct Decoder(chat::Decoder);

impl Decoder {
    /// Decodes one upstream event.
    pub fn event(&mut self, ev: &Event) -> Decoded {
        match self.0.event(ev) {
            Decoded::Chunks(mut chunks) => {
                chunks.iter_mut().for_each(|c| into_hub(c, "delta"));
                Decoded::Chunks(chunks)
            }
            Decoded::End(mut chunks) => {
                chunks.iter_mut().for_each(|c| into_hub(c, "delta"));
                Decoded::End(chunks)
            }
            other => other,
        }
    }
}

/// Writes hub chunks to a completions client: chat's encoder (usage, a continuation's
/// ids), each chunk then put in the completions shape.
#[derive(Debug)]
pub struct Encoder(chat::Encoder);

impl Encoder {
    /// An encoder; usage chunks are sent only when the client asked for them.
    pub fn new(include_usage: bool) -> Encoder {
        Encoder(chat::Encoder::new(include_usage))
    }

    /// Encodes one chunk.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        let shaped = self.0.shape(chunk).map(Cow::into_owned);
        shaped
            .map(|c| Event::data(from_hub(c, "delta").to_string()))
            .into_iter()
            .collect()
    }

    /// `data: [DONE]`.
    pub fn finish(&mut self) -> Vec<Event> {
        self.0.finish()
    }

    /// An in-band error chunk, as chat's.
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Event> {
        self.0.fail(status, message)
    }

    /// Learns the stream's ids from a chunk that went out verbatim.
    pub fn observe(&mut self, ev: &Event) {
        self.0.observe(ev);
    }

    /// Continues the open stream with another answer's chunks.
    pub fn resume(&mut self) {
        self.0.resume();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_the_hubs_content_and_back() {
        let mut chunk = json!({"id": "c", "object": "text_completion",
            "choices": [{"index": 0, "text": "Hel", "logprobs": null, "finish_reason": null}]});
        into_hub(&mut chunk, "delta");
        assert_eq!(chunk["choices"][0]["delta"]["content"], "Hel");
        assert!(chunk["choices"][0].get("text").is_none());
        let back = from_hub(chunk, "delta");
        assert_eq!(back["choices"][0]["text"], "Hel");
        assert_eq!(back["object"], "text_completion");
        assert!(back["choices"][0].get("delta").is_none());
        // A usage chunk has no choice to map.
        let usage = from_hub(
            json!({"choices": [], "usage": {"prompt_tokens": 1}}),
            "delta",
        );
        assert_eq!(usage["usage"]["prompt_tokens"], 1);
    }

    #[test]
    fn only_a_single_prompt_is_continued() {
        let mut one = json!({"prompt": "def f(", "suffix": ")"});
        append_partial(&mut one, "x").unwrap();
        assert_eq!(one["prompt"], "def f(x");
        let mut listed = json!({"prompt": ["a"]});
        append_partial(&mut listed, "b").unwrap();
        assert_eq!(listed["prompt"], json!(["ab"]));
        for refused in [
            json!({"prompt": ["a", "b"]}),
            json!({"prompt": [1, 2]}),
            json!({"prompt": "a", "n": 2}),
            json!({"prompt": "a", "echo": true}),
        ] {
            let mut r = refused.clone();
            assert!(append_partial(&mut r, "x").is_err(), "{refused}");
            assert_eq!(r, refused);
        }
    }
}
