//! The body an attempt sends: the client's own bytes lent, or the request re-encoded for its target.
//!
//! The client's bytes go with light edits only (the target's model; a stream or its usage
//! asked for) when the target speaks the client's protocol, its login rewrites no body,
//! and a first ask has nothing to mend or leave out. Otherwise the request is
//! re-encoded: mended, translated through the hub chat request (built once per request),
//! extended by a continuation's partial answer, and without what the model refused
//! (`refused.rs`) or what reasoning a source cannot read (`unreadable.rs`).

use std::borrow::Cow;

use serde_json::Value;

use super::attempt::Ask;
use super::refused::Refusals;
use super::{Run, rescue};
use crate::error::Error;
use crate::protocol::{self, Protocol};
use crate::registry::Target;

/// What [`Run::upstream_body`] learned of the body for a target, decided once for the
/// copied path and the re-encoded one alike.
#[derive(Clone, Copy)]
struct BodyPlan {
    /// The target speaks the client's protocol.
    same: bool,
    /// A whole answer asked for as a stream, to be collected.
    collected: bool,
    /// A chat stream asked for its usage (issue 19).
    asks_usage: bool,
    /// The target's protocol mends this body.
    mended: bool,
    /// The model refused reasoning: it is left out.
    unthought: bool,
}

impl<'a> Run<'a, '_> {
    /// Builds the bytes sent upstream for `target`, a stream when `streamed`: the
    /// client's own, lent, when they go as they came.
    pub(super) fn upstream_body(
        &mut self,
        target: &Target,
        ask: Ask,
        streamed: bool,
    ) -> Result<Cow<'a, [u8]>, Error> {
        let (env, call) = (self.env, self.call);
        let provider = &target.provider;
        let same = target.protocol == call.inbound;
        // A whole answer asked for as a stream, to be collected.
        let collected = streamed && !call.stream;
        // usage (issue 19): a chat stream copied byte for byte is asked for its usage.
        let asks_usage = super::asks_usage(call, target);
        let mended = same && target.protocol.must_mend(call.body, &target.source());
        // What this model refused, in this request or before, is left out
        // (`refused.rs`): of a copied request only its reasoning, as the client chose
        // the rest for this source.
        let refused = self.left_out.with(env.refused.of(target.label()));
        self.left_out = match same {
            true => refused.reasoning_only(),
            false => refused,
        };
        let unthought = self.left_out.has(Refusals::REASONING);
        if same
            && !env.auth.rewrites_body(provider, &self.logins)
            && ask == Ask::Original
            && !mended
            && !unthought
        {
            // A whole answer to collect is asked for as a stream in the client's own
            // bytes, as a copied one is: not re-encoded, which costs a tree and may
            // change how a number is written.
            if collected {
                return Ok(target.protocol.streaming_body(call.body, target.model()));
            }
            if asks_usage {
                return Ok(Cow::Owned(
                    call.body.with_model_asking_usage(target.model()),
                ));
            }
            return Ok(target.protocol.passthrough_body(call.body, target.model()));
        }
        let plan = BodyPlan {
            same,
            collected,
            asks_usage,
            mended,
            unthought,
        };
        self.reencoded_body(target, ask, plan)
    }

    /// [`Run::upstream_body`] when the client's bytes cannot go as they came: the
    /// request re-encoded for `target` (`mended` when its protocol mends it). Apart, as
    /// only translated, mended and retried requests take it.
    #[inline(never)]
    fn reencoded_body(
        &mut self,
        target: &Target,
        ask: Ask,
        plan: BodyPlan,
    ) -> Result<Cow<'a, [u8]>, Error> {
        let (env, call) = (self.env, self.call);
        let provider = &target.provider;
        let BodyPlan {
            same,
            collected,
            asks_usage,
            mended,
            unthought,
        } = plan;
        let mut up = if same {
            let mut v = call.body.to_value()?;
            if target.protocol == Protocol::Gemini {
                // Gemini's model is in the URL; Google refuses unknown body fields.
                if let Some(o) = v.as_object_mut() {
                    o.shift_remove("model");
                }
            } else {
                v["model"] = Value::String(target.model().to_string());
            }
            if mended {
                target.protocol.mend(&mut v, &target.source());
            }
            if unthought {
                target.protocol.forget_thinking(&mut v);
            }
            if ask == Ask::Continue {
                rescue::append_partial(call.inbound, &mut v, &self.splice.prefill())?;
            }
            // usage (issue 19): a continuation reports the whole answer's usage too; the
            // client's encoder drops it again when the client did not ask.
            if asks_usage && let Some(obj) = v.as_object_mut() {
                protocol::chat::ask_usage(obj);
            }
            v
        } else {
            let mut chat = self
                .hub
                .get_or_insert_with(|| {
                    let mut chat = call
                        .body
                        .to_value()
                        .and_then(|v| call.inbound.request_to_chat(v, call.stream))?;
                    env.recall.restore(&mut chat);
                    Ok(chat)
                })
                .as_ref()
                .map_err(same_kind)?
                .clone();
            if ask == Ask::Continue {
                rescue::append_partial(Protocol::Chat, &mut chat, &self.splice.prefill())?;
            }
            if unthought {
                Protocol::Chat.forget_thinking(&mut chat);
            }
            if target.protocol == Protocol::Chat
                && let Some(given) = chat["stop"].as_array().map(Vec::len)
            {
                let dropped = protocol::chat::stops_dropped(given, &target.source());
                if dropped > 0 {
                    crate::log::line(format!(
                        "{}: OpenAI takes at most 4 stop sequences; sent the first 4 of the {given} asked, the answer may run past the other {dropped}",
                        target.label()
                    ));
                }
            }
            let mut up = target.protocol.request_from_chat(chat, &target.source())?;
            for p in self.left_out.params() {
                p.leave_out(target.protocol, &mut up);
            }
            up
        };
        if ask == Ask::Continue {
            rescue::unthink_continuation(target.protocol, &mut up);
            rescue::prefill_flags(target, &mut up);
            rescue::lower_cap(target.protocol, &mut up, self.splice.sent_tokens());
        }
        if collected {
            target.protocol.ask_stream(&mut up);
        }
        if let Ask::WithoutOldReasoning | Ask::WithoutReasoning = ask {
            let all = ask == Ask::WithoutReasoning;
            let mut left_out = Vec::new();
            let left = target
                .protocol
                .forget_reasoning(&mut up, all, &mut left_out);
            if !all {
                self.reasoning_left = left;
            }
            // Known on the session's later turns, which still carry it (`unreadable.rs`).
            env.unreadable
                .note(&provider.id, left_out.iter().map(String::as_str));
        }
        env.auth.shape_body(provider, &self.logins, &mut up);
        serde_json::to_vec(&up)
            .map(Cow::Owned)
            .map_err(|e| Error::Internal(format!("cannot encode body: {e}")))
    }
}

/// The hub translation's error again, for the next target that needs it, of the same
/// kind: the kind decides whether that target is skipped or the request ends.
fn same_kind(e: &Error) -> Error {
    match e {
        Error::Untranslatable(message) => Error::Untranslatable(message.clone()),
        Error::UntranslatableField { field, said } => Error::UntranslatableField {
            field: *field,
            said: said.clone(),
        },
        Error::BadRequest(told) => Error::BadRequest(told.clone()),
        e => Error::bad_request(e.to_string()),
    }
}
