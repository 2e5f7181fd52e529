//! Mid-stream rescue: a stream that broke after sending text is continued by a prefill.
//!
//! The continuation asks an endpoint the client's request plus the text sent so far as
//! a final assistant message, and `stream.rs` splices only the new text into the open
//! stream. Which endpoint: the one that broke when its failure is one that `retryable`
//! covers (a reset, a close without the finish marker, a 429/5xx error event) and it
//! has not broken before in this request, else the next one that can continue, and the
//! one that broke only when no later one can and it has not broken twice.
//! An endpoint can continue when its provider prefills (`prefill:`, see the registry's
//! built-in defaults) and it is not a Responses upstream. A continuation refused with
//! a 4xx (the prefill itself, typically) skips that endpoint and is never shown to the
//! client. A stream with a tool call or a refusal in it, or with nowhere to continue, ends with
//! its protocol's error event, never as a clean-looking truncated answer.

use serde_json::{Value, json};

use super::attempt::Ask;
use super::{Break, Outcome, Run, Step, next_step_of};
use crate::error::Error;
use crate::log::{self, StreamEnd};
use crate::protocol::{Protocol, completions, responses};
use crate::registry::{Prefill, Target};
use crate::route::Failed;

/// The most of an upstream's words a rescue's log line quotes: an error event's
/// message is not cut before it gets here, and a line is read by people.
const SAID_AT_MOST: usize = 300;

/// Continues a broken stream until it ends, or gives up with an error event.
pub(super) fn rescue(run: &mut Run<'_, '_>, targets: &[Target], broke: usize, brk: Break) {
    let (mut at, mut brk) = (broke, brk);
    let mut refused: Vec<usize> = Vec::new();
    // The endpoints whose streams broke in this request, in order.
    let mut broken: Vec<usize> = Vec::new();
    // A continuation keeps to its own rule of who is asked again (below).
    run.cooling = false;
    loop {
        // A break is worth one more try of the same endpoint; a second one says the
        // endpoint is failing, not unlucky, and the next one is asked instead.
        let retry_same = brk.retry_same && !broken.contains(&at);
        broken.push(at);
        if !retry_same {
            // A stall, or a second break: the endpoint is failing now, whatever else
            // happens.
            let stalled = Failed::Busy { retry_after: None };
            run.env.cooldown.fail(&targets[at], stalled);
        }
        // One that broke twice is failing, not unlucky: asked a third time, a stalled
        // one would keep the client waiting another `idle_secs` for nothing.
        let twice = broken.iter().filter(|&&b| b == at).count() > 1;
        let order = candidates(targets, at, retry_same, twice, &refused);
        let allowed = run.served.rescued < run.settings.max_rescues as usize;
        if run.splice.tool || run.splice.refused || !allowed || order.is_empty() {
            let why = match brk.cut_after_calls {
                // The calls are whole: what the break cut came after them.
                Some(what) if run.splice.tool => format!(
                    "; the {what} after its tool call was cut, and a stream with a tool call cannot be continued"
                ),
                _ if run.splice.tool => "; a tool call was cut, so it cannot be continued".into(),
                _ if run.splice.refused => "; a refusal was cut, so it cannot be continued".into(),
                _ if !allowed => {
                    "; no more continuations are allowed (failover.max_rescues)".into()
                }
                _ => "; no endpoint could continue it".into(),
            };
            give_up(run, &brk, &why);
            return;
        }
        log::line(format!(
            "{}: {}; continuing it",
            targets[at].label(),
            log::printable(&brk.message, SAID_AT_MOST)
        ));
        run.splice.resume();
        let mut broke_again = None;
        for (n, &k) in order.iter().enumerate() {
            let target = &targets[k];
            let last = n + 1 == order.len();
            match run.endpoint(target, last, Ask::Continue) {
                Outcome::Answered => {
                    run.env.cooldown.clear(target);
                    run.served.rescued += 1;
                    run.served.rescued_by.push(target.label().to_string());
                    run.served.stream = Some(run.splice.ended(StreamEnd::Rescued));
                    return;
                }
                Outcome::ClientGone => {
                    run.served.status = 499;
                    run.served.stream = Some(StreamEnd::ClientClosed);
                    return;
                }
                Outcome::Stopped => {
                    super::stopped(run);
                    return;
                }
                Outcome::Broken(b) => {
                    run.served.rescued += 1;
                    run.served.rescued_by.push(target.label().to_string());
                    broke_again = Some((k, b));
                    break;
                }
                // Nothing was sent: the continuation could not be put into its protocol.
                Outcome::Invalid(told) => {
                    refused.push(k);
                    log::line(format!(
                        "{}: could not continue the stream: {}",
                        target.label(),
                        log::printable(&told.to_string(), SAID_AT_MOST)
                    ));
                }
                Outcome::Failed(f) => {
                    if f.status
                        .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
                    {
                        refused.push(k);
                    }
                    if next_step_of(run.call, f.kind) == (Step::Next { cool: true }) {
                        run.env.cooldown.fail(target, f.failed());
                    }
                    log::line(format!(
                        "{}: could not continue the stream: {}",
                        target.label(),
                        log::printable(&f.reason, SAID_AT_MOST)
                    ));
                }
            }
        }
        match broke_again {
            Some((k, b)) => (at, brk) = (k, b),
            None => {
                give_up(run, &brk, "; no endpoint could continue it");
                return;
            }
        }
    }
}

/// Ends the open stream with the break's error event.
fn give_up(run: &mut Run<'_, '_>, brk: &Break, why: &str) {
    let message = format!("{}{why}", brk.message);
    run.served.stream = Some(StreamEnd::Broken);
    if let Outcome::ClientGone = run.splice.fail(run.out, brk.status, &message) {
        run.served.status = 499;
        run.served.stream = Some(StreamEnd::ClientClosed);
    }
}

/// The endpoints to ask for a continuation, in order (indices into `targets`); the one
/// that broke is not among them when it broke `twice`.
fn candidates(
    targets: &[Target],
    at: usize,
    retry_same: bool,
    twice: bool,
    refused: &[usize],
) -> Vec<usize> {
    let able = |k: &usize| targets[*k].can_continue() && !refused.contains(k);
    let later: Vec<usize> = (at + 1..targets.len()).filter(able).collect();
    let same = (able(&at) && !twice).then_some(at);
    match (retry_same, later.is_empty()) {
        (true, _) => same.into_iter().chain(later).collect(),
        (false, false) => later,
        (false, true) => same.into_iter().collect(),
    }
}

/// Adds the answer so far as a final assistant message of a request in `protocol` (to
/// a legacy completion's prompt). Without text (only reasoning went out) the request is
/// sent as it was. An error when the request's form cannot take it.
pub(super) fn append_partial(
    protocol: Protocol,
    body: &mut Value,
    text: &str,
) -> Result<(), Error> {
    if text.is_empty() {
        return Ok(());
    }
    match protocol {
        Protocol::Chat | Protocol::Anthropic => {
            let Some(messages) = body["messages"].as_array_mut() else {
                return Ok(());
            };
            // The client's own prefill: the answer so far continues it.
            if let Some(last) = messages.last_mut().filter(|m| m["role"] == "assistant") {
                match &mut last["content"] {
                    Value::String(own) => own.push_str(text),
                    Value::Array(parts) => parts.push(json!({"type": "text", "text": text})),
                    other => *other = json!(text),
                }
                return Ok(());
            }
            messages.push(json!({"role": "assistant", "content": text}));
        }
        Protocol::Gemini => {
            let Some(contents) = body["contents"].as_array_mut() else {
                return Ok(());
            };
            // The client's own final `model` turn: the answer so far continues it.
            if let Some(last) = contents.last_mut().filter(|c| c["role"] == "model")
                && let Some(parts) = last["parts"].as_array_mut()
            {
                parts.push(json!({"text": text}));
                return Ok(());
            }
            contents.push(json!({"role": "model", "parts": [{"text": text}]}));
        }
        Protocol::Completions => return completions::append_partial(body, text),
        // Responses upstreams are never asked to continue (`Target::can_continue`).
        Protocol::Responses => {}
    }
    Ok(())
}

/// Turns thinking off for a continuation to Anthropic that ends in the answer's text: with
/// thinking on, Anthropic refuses a final assistant message that does not start with a
/// signed thinking block ("Expected `thinking` or `redacted_thinking`, but found
/// `text`"), and the text being continued needs no more thinking. A request asked again
/// as it was (only reasoning went out) keeps it.
pub(super) fn unthink_continuation(protocol: Protocol, body: &mut Value) {
    let ends_in_text = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| m["role"] == "assistant");
    if protocol == Protocol::Anthropic && ends_in_text {
        protocol.forget_thinking(body);
    }
}

/// Lowers a continuation's output cap, in `protocol`'s field for it, by the `sent`
/// tokens (estimated) of the answer the client already has, to at least 1 (a Responses
/// source's least, [`responses::LEAST_OUTPUT_CAP`]): the client's cap bounds the whole
/// answer it pays for and reads, not each attempt at it. A request without a cap keeps none.
pub(super) fn lower_cap(protocol: Protocol, body: &mut Value, sent: u64) {
    let least = match protocol {
        Protocol::Responses => responses::LEAST_OUTPUT_CAP,
        _ => 1,
    };
    // Looked up, not indexed: indexing would add a cap the client never set.
    let mut lower = |at: &str| {
        let cap = body.pointer_mut(at)?;
        let lowered = cap.as_u64()?.saturating_sub(sent).max(least);
        *cap = lowered.into();
        Some(lowered)
    };
    match protocol {
        Protocol::Chat => {
            lower("/max_tokens");
            lower("/max_completion_tokens");
        }
        Protocol::Anthropic => {
            // Anthropic refuses a thinking budget that is not below `max_tokens`.
            if let Some(cap) = lower("/max_tokens")
                && let Some(budget) = body.pointer_mut("/thinking/budget_tokens")
                && budget.as_u64().is_some_and(|b| b >= cap)
            {
                *budget = cap.saturating_sub(1).into();
            }
        }
        Protocol::Gemini => _ = lower("/generationConfig/maxOutputTokens"),
        Protocol::Completions => _ = lower("/max_tokens"),
        Protocol::Responses => _ = lower("/max_output_tokens"),
    }
}

/// vLLM continues a final assistant message only when told so.
pub(super) fn prefill_flags(target: &Target, body: &mut Value) {
    // A legacy completion continues its prompt, not a message.
    let message = target.protocol != Protocol::Completions;
    if message && target.provider.prefill == Prefill::Flags && body.is_object() {
        body["continue_final_message"] = json!(true);
        body["add_generation_prompt"] = json!(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Loaded};
    use crate::registry::Registry;

    fn targets(yaml: &str) -> Vec<Target> {
        let config = config::parse(yaml).unwrap();
        let reg = Registry::build(&Loaded { config, path: None }).unwrap();
        reg.providers
            .iter()
            .filter(|p| p.configured)
            .map(|p| Target::new(p, "m"))
            .collect()
    }

    const YAML: &str = "providers:\n  a:\n    api_base: http://a/v1\n    prefill: true\n  b:\n    api_base: http://b/v1\n  c:\n    api_base: http://c/v1\n    prefill: true\n  d:\n    api_base: http://d/v1\n    prefill: true\n    api_protocol: responses\n";

    #[test]
    fn continuation_order_follows_the_failure_and_the_capability() {
        let t = targets(YAML);
        // a retryable break asks the same endpoint first, then the next able one
        assert_eq!(candidates(&t, 0, true, false, &[]), [0, 2]);
        // a stall asks the next able one; b never prefills, d is a Responses upstream
        assert_eq!(candidates(&t, 0, false, false, &[]), [2]);
        // with no later endpoint able, the one that broke gets one more try, not two
        assert_eq!(candidates(&t, 2, false, false, &[]), [2]);
        assert!(candidates(&t, 2, false, true, &[]).is_empty());
        assert_eq!(candidates(&t, 0, true, false, &[0]), [2]);
        assert!(candidates(&t, 1, false, false, &[2]).is_empty());
    }

    #[test]
    fn builtin_prefill_defaults() {
        let reg = Registry::build(&Loaded::default()).unwrap();
        let able: Vec<&str> = reg
            .providers
            .iter()
            .filter(|p| Target::new(p, "m").can_continue())
            .map(|p| p.id.as_str())
            .collect();
        assert_eq!(
            able,
            [
                "openrouter",
                "anthropic",
                "gemini",
                "ollama",
                "vllm",
                "lmstudio",
                "llamacpp"
            ]
        );
    }

    #[test]
    fn a_continuations_cap_is_lowered_by_what_went_out_and_never_added() {
        let mut anthropic =
            json!({"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1990}});
        lower_cap(Protocol::Anthropic, &mut anthropic, 30);
        assert_eq!(anthropic["max_tokens"], 1970);
        assert_eq!(anthropic["thinking"]["budget_tokens"], 1969);
        let mut chat = json!({"max_completion_tokens": 10, "messages": []});
        lower_cap(Protocol::Chat, &mut chat, 30);
        assert_eq!(chat, json!({"max_completion_tokens": 1, "messages": []}));
        let mut gemini = json!({"generationConfig": {"maxOutputTokens": 100}});
        lower_cap(Protocol::Gemini, &mut gemini, 30);
        assert_eq!(gemini["generationConfig"]["maxOutputTokens"], 70);
        // OpenAI takes no Responses cap below 16.
        let mut responses = json!({"max_output_tokens": 40});
        lower_cap(Protocol::Responses, &mut responses, 30);
        assert_eq!(responses["max_output_tokens"], 16);
        for protocol in [Protocol::Chat, Protocol::Anthropic, Protocol::Gemini] {
            let mut none = json!({"messages": []});
            lower_cap(protocol, &mut none, 30);
            assert_eq!(none, json!({"messages": []}));
        }
    }

    #[test]
    fn partial_answers_become_a_final_assistant_message() {
        let mut chat = json!({"messages": [{"role": "user", "content": "hi"}]});
        append_partial(Protocol::Chat, &mut chat, "Hello").unwrap();
        assert_eq!(
            chat["messages"][1],
            json!({"role": "assistant", "content": "Hello"})
        );
        let mut own = json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure: "}]});
        append_partial(Protocol::Chat, &mut own, "Hello").unwrap();
        assert_eq!(own["messages"].as_array().unwrap().len(), 2);
        assert_eq!(own["messages"][1]["content"], "Sure: Hello");
        let mut gem = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        append_partial(Protocol::Gemini, &mut gem, "Hello").unwrap();
        assert_eq!(
            gem["contents"][1],
            json!({"role": "model", "parts": [{"text": "Hello"}]})
        );
        append_partial(Protocol::Gemini, &mut gem, " there").unwrap();
        assert_eq!(gem["contents"].as_array().unwrap().len(), 2);
        assert_eq!(gem["contents"][1]["parts"][1]["text"], " there");
        let mut empty = json!({"messages": []});
        append_partial(Protocol::Anthropic, &mut empty, "").unwrap();
        assert_eq!(empty["messages"], json!([]));
    }
}
