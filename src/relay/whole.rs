//! A whole (non-streamed) answer relayed: read, judged, translated when it must be, sent.
//!
//! Its body is read within `limits.max_response_bytes`; an error sent with a 200, a
//! safety block while another endpoint is left, or a body that is not an answer is a
//! failure of the attempt, not the client's answer. A client that asked for a stream
//! gets this answer as one (`stream.rs`).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::attempt::Try;
use super::classify::{compressed_with, failed_with, not_an_answer, said_instead};
use super::recall::Noted;
use super::{FailKind, Outcome, Run, fail, served_by, unfit};
use crate::error::Error;
use crate::stats::Tokens;
use crate::upstream::{BodyError, Reply};

impl Run<'_, '_> {
    /// Relays a complete (non-streaming) answer.
    pub(super) fn relay_whole(&mut self, t: &Try<'_>, mut reply: Reply) -> Outcome {
        let (settings, call, target) = (self.settings, self.call, t.target);
        let status = reply.status;
        let ct = std::mem::take(&mut reply.content_type);
        let headers = std::mem::take(&mut reply.headers);
        let retry_after = reply.retry_after;
        let coding = reply.coding.take();
        let limit = settings.limits.max_response_bytes;
        let bytes = match reply.read_all(limit, &|| super::unwanted(self.env, self.out)) {
            Ok(b) => b,
            Err(BodyError::Failed(reason)) => return fail(FailKind::EarlyEnd, reason),
            Err(BodyError::TooLarge { limit }) => return super::too_large(limit),
            // Its head came, then the body stopped: the source did not answer in time,
            // as a stream that goes silent before its first token.
            Err(BodyError::Timeout) => return stalled(t.wait),
            Err(BodyError::Abandoned) => return super::given_up(self.env),
        };
        // A body in a coding (Routeplane asks for none) cannot be read, whatever it is.
        if let Some(coding) = coding {
            let said = compressed_with(status, &coding, bytes.len());
            return fail(FailKind::Malformed, format!("it {said}"));
        }
        // OpenRouter's failure after it began: a 200 whose body is an error; Anthropic's
        // error body sent with a 200; and a Responses object that failed. Failed over,
        // retried or surfaced like the status they name, never passed on as an answer.
        if let Some(status) = target.protocol.failed_answer(&bytes) {
            return failed_with(status, (bytes, ct), headers, retry_after);
        }
        // A safety block (Gemini's 200 with nothing in it) or an answer a content filter
        // emptied (a chat source's, Azure's; Anthropic's refusal; an `incomplete`
        // Responses answer) moves on while an endpoint is left; the last one's is the
        // client's answer, filtered.
        if !t.alone
            && let Some(reason) = target.protocol.blocked_answer(&bytes)
        {
            return super::held_back(reason, Some((bytes, ct)), headers);
        }
        // usage (issue 19): read from the end of the body before it goes out.
        let tokens = Tokens::from_answer(target.protocol, &bytes);
        if tokens.reported() {
            self.served.tokens = tokens;
        }
        // A server that ignored `"stream": true`: the client still gets a stream.
        if call.stream {
            return match self.hub_answer(t, (status, &ct), &bytes) {
                Ok(chat) => super::stream::relay_whole_as_stream(self, t, status, headers, &chat),
                Err(failed) => failed,
            };
        }
        let answer = if t.translate {
            match self.translated_whole(t, (status, &ct), &bytes) {
                Ok(answer) => answer,
                Err(failed) => return failed,
            }
        } else {
            // Copied as it came, so not parsed: looked at only as far as an answer's shape.
            if let Some(reason) = not_an_answer(status, &ct, &bytes) {
                return fail(FailKind::Malformed, reason);
            }
            bytes
        };
        let ct = if t.translate || ct.is_empty() {
            "application/json".into()
        } else {
            ct
        };
        self.splice.status = status;
        let by = Some(served_by(target, t.number));
        let sent = self.out.respond_served(status, &ct, &headers, by, &answer);
        crate::upstream::recycle(answer);
        match sent {
            Ok(()) => {
                self.served.first_token = Some(Instant::now());
                Outcome::Answered
            }
            Err(_) => Outcome::ClientGone,
        }
    }

    /// A whole answer (with its status and content type) translated into the client's
    /// protocol, or the failure when it cannot be read. Apart from
    /// [`Run::relay_whole`], whose copied answers do not take it.
    #[inline(never)]
    fn translated_whole(
        &self,
        t: &Try<'_>,
        (status, ct): (u16, &str),
        bytes: &[u8],
    ) -> Result<Vec<u8>, Outcome> {
        let call = self.call;
        let mut chat = self.hub_answer(t, (status, ct), bytes)?;
        // An answer that names no model names the one asked for, as a stream does: an
        // Anthropic or Responses client's SDK takes a `model` string, never `null`.
        if let Some(answer) = chat.as_object_mut()
            && answer
                .get("model")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            answer.insert("model".into(), Value::from(call.requested));
        }
        Ok(call
            .inbound
            .response_from_chat(chat, &call.asked)
            .to_string()
            .into_bytes())
    }

    /// A whole answer (with its status and content type) read as hub chat, its
    /// reasoning noted for the client's next turn when it was translated; the failure
    /// when it is not JSON, or cannot be read (a Gemini answer with no candidates).
    fn hub_answer(
        &self,
        t: &Try<'_>,
        (status, ct): (u16, &str),
        bytes: &[u8],
    ) -> Result<Value, Outcome> {
        let (call, target) = (self.call, t.target);
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
            let reason = not_an_answer(status, ct, bytes);
            let reason = reason.unwrap_or_else(|| said_instead(status, ct, bytes));
            return Err(fail(FailKind::Malformed, reason));
        };
        let chat = target.protocol.response_to_chat(v).map_err(|e| match e {
            // The source's own failure (Gemini's word that the model's call came out
            // malformed): its status, as in a stream, asked again (the model samples
            // anew).
            Error::SourceFailed { status, reason } => fail(FailKind::Status(status), reason),
            // What went wrong, without a provider's name: the failure is the
            // endpoint's, named where it is told. Unreadable, as a stream's event that
            // cannot be read is (`Decoded::Unreadable`): the endpoint would send the
            // same again, so the next one is asked.
            e => {
                let reason = match e {
                    Error::Upstream { reason, .. } => reason,
                    e => e.to_string(),
                };
                fail(unfit(&reason, b"").unwrap_or(FailKind::Malformed), reason)
            }
        })?;
        if t.translate
            && let Some(mut noted) = Noted::of(call, target, &self.env.recall)
        {
            noted.add(&chat["choices"][0]["message"]);
        }
        Ok(chat)
    }
}

/// A whole body that stopped part-way after its head: the source did not answer in
/// time (`wait`: how long each read waited, and the key that sets it).
#[cold]
#[inline(never)]
fn stalled((waited, key): (Duration, &'static str)) -> Outcome {
    let waited = crate::error::seconds(waited.as_secs_f64());
    let reason = format!("the body stalled part-way: nothing more of it within {waited} ({key})");
    fail(FailKind::Timeout, reason)
}
