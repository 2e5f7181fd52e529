//! The client's side of a streamed answer across the attempts that make it: what it
//! has, and how a continuation is spliced onto it.
//!
//! [`Splice`] holds the client's encoder, whether the status line went out, and the
//! text and reasoning the client has. When `rescue.rs` continues a broken stream,
//! [`Splice::resume`] turns it over to the continuation, whose chunks are adjusted
//! before they go out: the whitespace the prefill lost, reasoning said again, a usage
//! that covers the whole answer. Reading and writing the events is `stream.rs`'s.

use serde_json::Value;

use super::Outcome;
use crate::log::StreamEnd;
use crate::protocol::Encoder;
use crate::protocol::view::Delta;
use crate::sse;

/// The client's side of a streamed answer, across the attempts that make it.
#[derive(Debug)]
pub(super) struct Splice {
    /// Writes hub chunks in the client's protocol; observes a same-protocol stream.
    pub(super) encoder: Encoder,
    /// The status line went out.
    pub(super) open: bool,
    /// The status the client got.
    pub(super) status: u16,
    /// Everything from now on is another answer continuing the open stream.
    pub(super) continuing: bool,
    /// Text the client has.
    text: String,
    /// Reasoning the client has.
    reasoning: String,
    /// A tool call went out (such a stream is never continued).
    pub(super) tool: bool,
    /// A refusal went out: nothing can be asked to continue one (a prefill is an
    /// answer's text), and asked afresh a model would start it over.
    pub(super) refused: bool,
    /// Tokens estimated for what the client had when the continuation began (its text
    /// and reasoning): output the continuation's usage does not count.
    carried: u64,
    /// Tokens estimated for the prefill the continuation was asked with: counted in its
    /// prompt, but output of this answer. Only text is prefilled; reasoning the client
    /// has is never in the continuation's prompt, so it is not taken off the input.
    prefilled: u64,
    /// The prefill lost trailing whitespace the client already has.
    pub(super) trimmed: bool,
    /// The continuation is saying again the reasoning the client has (asked afresh
    /// after a cut inside it): how many bytes of it came again so far, held back.
    echo: Option<usize>,
    /// The upstream broke right after whole tool calls and the answer was ended as a
    /// tool call (`stream.rs`'s `end_whole`): the stream's end is not `complete`.
    pub(super) broke_after_call: bool,
}

impl Splice {
    /// A client stream with nothing sent, whose encoder names `model` until the
    /// upstream's first chunk names its own.
    pub(super) fn new(call: &super::Call<'_>, model: &str) -> Splice {
        Splice {
            encoder: call.inbound.encoder(model, &call.asked),
            open: false,
            status: 0,
            continuing: false,
            text: String::new(),
            reasoning: String::new(),
            tool: false,
            refused: false,
            carried: 0,
            prefilled: 0,
            trimmed: false,
            echo: None,
            broke_after_call: false,
        }
    }

    /// Starts afresh for an attempt at `model` while nothing went out: an earlier
    /// attempt's held events (a retry's too) may have moved the encoder, and the stream
    /// is named after the upstream's model, as an unstreamed answer is.
    pub(super) fn begin(&mut self, call: &super::Call<'_>, model: &str) {
        if !self.open {
            *self = Splice::new(call, model);
        }
    }

    /// The partial answer to send as a prefill: the text without trailing whitespace
    /// (Anthropic refuses a final assistant message ending in whitespace).
    pub(super) fn prefill(&self) -> String {
        self.text.trim_end().to_string()
    }

    /// Turns the open stream over to a continuation.
    pub(super) fn resume(&mut self) {
        self.encoder.resume(&self.text, &self.reasoning);
        self.continuing = true;
        self.trimmed = self.text.len() != self.text.trim_end().len();
        // About four bytes a token: the continuation's usage covers the whole answer.
        self.carried = (self.text.len() + self.reasoning.len()).div_ceil(4) as u64;
        self.prefilled = self.text.trim_end().len().div_ceil(4) as u64;
        // An Anthropic client's continued thinking is a block of its own, signed over
        // all of its text: none of it may be left out there.
        let own_block = matches!(self.encoder, Encoder::Anthropic(_));
        self.echo = (!self.reasoning.is_empty() && !own_block).then_some(0);
    }

    /// How the stream ended, when it ended with its protocol's normal ending.
    pub(super) fn ended(&self, or: StreamEnd) -> StreamEnd {
        match self.broke_after_call {
            true => StreamEnd::BrokeAfterCall,
            false => or,
        }
    }

    /// Tokens estimated for the output the client already has (text and reasoning),
    /// once a continuation began: what its output cap is lowered by.
    pub(super) fn sent_tokens(&self) -> u64 {
        self.carried
    }

    /// Ends the open stream with an error event.
    pub(super) fn fail(
        &mut self,
        out: &mut sse::ClientWriter,
        status: u16,
        message: &str,
    ) -> Outcome {
        for ev in self
            .encoder
            .fail(status, message, &self.text, &self.reasoning)
        {
            if out.send(&ev.raw).is_err() {
                return Outcome::ClientGone;
            }
        }
        let _ = out.end_stream();
        Outcome::Answered
    }

    /// Notes what a copied event adds to the answer (as [`Splice::take`] does for a
    /// decoded chunk); true when it carries content.
    pub(super) fn note(&mut self, d: Delta<'_>) -> bool {
        if let Some(t) = d.content {
            self.text.push_str(&t);
        }
        if let Some(r) = d.reasoning {
            self.reasoning.push_str(&r);
        }
        self.tool |= d.tool;
        self.refused |= d.refusal;
        d.has_content
    }

    /// Notes what a chunk adds to the answer; a continuation's chunk is adjusted first.
    /// True when reasoning was held back from it ([`Splice::skip_echo`]): the
    /// continuation is moving on, though the client gets nothing new yet.
    pub(super) fn take(&mut self, ch: &mut Value, strip: &mut bool) -> bool {
        let delta = ch.pointer_mut("/choices/0/delta");
        let held = self.continuing && delta.is_some_and(|d| self.skip_echo(d));
        if self.continuing {
            if *strip && let Some(t) = ch["choices"][0]["delta"]["content"].as_str() {
                let kept = t.trim_start();
                *strip = kept.is_empty();
                ch["choices"][0]["delta"]["content"] = Value::String(kept.to_string());
            }
            if let Some(u) = ch.get_mut("usage").filter(|u| u.is_object()) {
                carry_usage(u, self.carried, self.prefilled);
            }
        }
        let d = &ch["choices"][0]["delta"];
        if let Some(t) = d["content"].as_str() {
            self.text.push_str(t);
        }
        if let Some(r) = d["reasoning_content"].as_str().or(d["reasoning"].as_str()) {
            self.reasoning.push_str(r);
        }
        if d["tool_calls"].as_array().is_some_and(|a| !a.is_empty()) {
            self.tool = true;
        }
        if d["refusal"].as_str().is_some_and(|r| !r.is_empty()) {
            self.refused = true;
        }
        held
    }

    /// Takes out of a continuation's delta the reasoning that repeats, from its start,
    /// the reasoning the client already has: a source asked again after a cut inside its
    /// reasoning may think the same again (the same model, a low temperature), and the
    /// client would read it twice. Once it says something else, what was held back goes
    /// out before it, so the client reads the continuation's reasoning whole, as before;
    /// once it has said all the client has, only what is new goes out. True when some
    /// was held back.
    fn skip_echo(&mut self, d: &mut Value) -> bool {
        let Some(matched) = self.echo else {
            return false;
        };
        // OpenRouter and Ollama name it `reasoning`; some servers send both names.
        let Some(r) = d["reasoning_content"].as_str().or(d["reasoning"].as_str()) else {
            // Text or a call: the reasoning ended, all of it something the client has.
            let filled = |k: &str| d[k].as_str().is_some_and(|t| !t.is_empty());
            if filled("content") || filled("refusal") || d["tool_calls"].is_array() {
                self.echo = None;
            }
            return false;
        };
        let have = &self.reasoning[matched..];
        let (out, held) = if have.starts_with(r) && have.len() > r.len() {
            self.echo = Some(matched + r.len());
            (String::new(), !r.is_empty())
        } else if let Some(new) = r.strip_prefix(have) {
            self.echo = None;
            (new.to_string(), new.is_empty() && !r.is_empty())
        } else {
            self.echo = None;
            (format!("{}{r}", &self.reasoning[..matched]), false)
        };
        if let Some(o) = d.as_object_mut() {
            for key in ["reasoning_content", "reasoning"] {
                if let Some(said @ Value::String(_)) = o.get_mut(key) {
                    *said = Value::String(out.clone());
                }
            }
        }
        held
    }
}

/// Adds the tokens of the answer before a continuation (`carried`: its text and
/// reasoning) to its usage as output, and takes the prefill it was asked with
/// (`prefilled`: that text, which the upstream counted as prompt) off its input.
fn carry_usage(u: &mut Value, carried: u64, prefilled: u64) {
    let prompt = u["prompt_tokens"].as_u64();
    let completion = u["completion_tokens"].as_u64();
    if let (Some(p), Some(c)) = (prompt, completion) {
        let (p, c) = (p.saturating_sub(prefilled), c + carried);
        u["prompt_tokens"] = p.into();
        u["completion_tokens"] = c.into();
        u["total_tokens"] = (p + c).into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn carried_tokens_move_from_prompt_to_completion() {
        let mut u = json!({"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60});
        carry_usage(&mut u, 8, 8);
        assert_eq!(
            u,
            json!({"prompt_tokens": 42, "completion_tokens": 18, "total_tokens": 60})
        );
        // Reasoning the client has is output, but was never in the continuation's prompt.
        let mut u = json!({"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60});
        carry_usage(&mut u, 8, 3);
        assert_eq!(
            u,
            json!({"prompt_tokens": 47, "completion_tokens": 18, "total_tokens": 65})
        );
    }
}
