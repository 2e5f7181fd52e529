//! A streamed answer, event by event: holding until the first content, committing, splicing.
//!
//! The client's status line and the events before the first generated content (a role
//! chunk, `message_start`, `ping`, `response.created`) are held: a failure before content
//! is invisible and another endpoint can be tried. Content commits the attempt; after
//! that a break is handed to `rescue.rs` with the client's stream still open. [`Splice`]
//! (`splice.rs`) is the client's side of the stream across attempts: its encoder, the
//! text it has, and whether it is being continued by another answer.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::attempt::Try;
use super::classify::{compressed_with, not_a_stream};
use super::recall::Noted;
use super::splice::Splice;
use super::{Break, EMPTY_STREAM, FailKind, Failure, Outcome, Run, fail, served_by, unfit};
use crate::log;
use crate::protocol::{Decoded, chat};
use crate::sse::{self, Event, ServedBy};
use crate::stats::Tokens;
use crate::upstream::{Piece, Reply, SLICE};

/// True when a hub chunk carries generated content: text, reasoning or a tool call.
fn has_content(ch: &Value) -> bool {
    let d = &ch["choices"][0]["delta"];
    let text = |k: &str| d[k].as_str().is_some_and(|s| !s.is_empty());
    text("content")
        || text("reasoning_content")
        || text("reasoning")
        || text("refusal")
        || d["tool_calls"].as_array().is_some_and(|a| !a.is_empty())
}

/// True when a hub chunk carries the answer's finish marker.
fn has_finish(ch: &Value) -> bool {
    !ch["choices"][0]["finish_reason"].is_null()
}

/// Relays a streamed answer event by event (or collects it for a non-streaming client).
pub(super) fn relay_stream(
    run: &mut Run<'_, '_>,
    t: &Try<'_>,
    reply: Reply,
    sent: Instant,
) -> Outcome {
    // usage (issue 19): an attempt's usage counts once something of it went out.
    let mut seen = Tokens::default();
    let outcome = relay_events(run, t, reply, sent, &mut seen);
    if !matches!(outcome, Outcome::Failed(_)) && seen.reported() {
        run.served.tokens = seen;
    }
    outcome
}

/// [`relay_stream`]'s loop; notes the upstream's usage reports in `seen`.
fn relay_events(
    run: &mut Run<'_, '_>,
    t: &Try<'_>,
    mut reply: Reply,
    sent: Instant,
    seen: &mut Tokens,
) -> Outcome {
    let (settings, call, target, env) = (run.settings, run.call, t.target, run.env);
    // usage (issue 19): the usage chunk asked for on the client's behalf is dropped.
    let strip_usage = super::asks_usage(call, target);
    let status = reply.status;
    let coding = reply.coding.take();
    let head = AnswerHead {
        status,
        headers: std::mem::take(&mut reply.headers),
        by: served_by(target, t.number),
    };
    let mut stream = reply.stream();
    let mut parser = sse::Parser::new(settings.limits.max_event_bytes);
    let mut decoder = target.protocol.decoder(t.translate);
    let splice = &mut run.splice;
    splice.begin(call, target.model());
    let out = &mut *run.out;
    let first_token = &mut run.served.first_token;
    // A same-protocol stream is copied byte for byte, until a continuation: from then on
    // every event is written by the client's encoder.
    let verbatim = !t.translate && !splice.continuing;
    let mut collector = (!call.stream).then(chat::Collector::default);
    // The stream's bytes read into a collected answer, held to a whole answer's limit.
    let mut collected: u64 = 0;
    let mut held: Vec<Event> = Vec::new();
    // The bytes of `held`, bounded as a whole answer is (see where events are held).
    let mut held_bytes: u64 = 0;
    let mut content = false;
    let mut opening = true;
    let mut finished = false;
    let mut strip = splice.continuing && splice.trimmed;
    let mut deadline = sent + t.patience;
    let mut events = Vec::new();
    let who = format!("upstream `{}`", target.provider.id);
    // The usual event of a copied stream is read without a `Value` tree (protocol/view.rs);
    // anything else (an error, usage, the end) is decoded in full.
    let copied = verbatim && collector.is_none();
    let mut noted = Noted::of(call, target, &run.env.recall);
    // What was read before the first content, while another endpoint is left: a
    // filtered answer moved past is the client's after all if none of them answers.
    let mut kept: Option<Vec<u8>> = (!t.alone).then(Vec::new);
    // When to look next whether the client left while nothing is written to it.
    let mut look = sent + SLICE;

    loop {
        let piece = match stream.next(deadline, &|| super::unwanted(env, out)) {
            // After the finish marker only usage and the end marker are left: a stream
            // that breaks or goes silent there (a chunked body cut before its last chunk,
            // a server that never sends `[DONE]`) ended its answer, as one that closes
            // does. Continued, the client would get a second ending after the first.
            Piece::Broken(_) | Piece::Timeout if finished && content => Piece::End,
            piece => piece,
        };
        let bytes = match piece {
            Piece::Data(b) => {
                // A compressed stream, or a web page sent as one, would parse as no
                // event at all and end "without its end marker": its `Content-Encoding`,
                // or its first bytes, say what it is.
                if std::mem::take(&mut opening)
                    && let Some(reason) = match &coding {
                        Some(c) => Some(format!("it {}", compressed_with(status, c, b.len()))),
                        None => not_a_stream(status, &b, &mut stream, deadline, &|| {
                            super::unwanted(env, out)
                        }),
                    }
                {
                    return fail(FailKind::Malformed, reason);
                }
                if let Some(k) = kept.as_mut().filter(|_| !content) {
                    match k.len() + b.len() > KEEP_LIMIT {
                        true => kept = None,
                        false => k.extend_from_slice(&b),
                    }
                }
                if collector.is_some() {
                    collected += b.len() as u64;
                    if collected > settings.limits.max_response_bytes {
                        return super::too_large(settings.limits.max_response_bytes);
                    }
                }
                if !content || collector.is_some() {
                    // Held or collected, nothing goes out, and only a write (or a silent
                    // upstream's SLICE) tells that the client left: keep-alives, pings or
                    // a whole answer being collected would keep the upstream generating
                    // for nobody. A look costs system calls: at most one a SLICE, none
                    // once events are written.
                    let now = Instant::now();
                    if now >= look {
                        if out.client_gone() {
                            return Outcome::ClientGone;
                        }
                        look = now + SLICE;
                    }
                }
                b
            }
            Piece::End if finished => {
                let v = Verbatim(verbatim);
                let o = end_finished(out, call, &head, splice, v, content, held, collector);
                return token_at(o, first_token);
            }
            Piece::Abandoned => return super::given_up(env),
            Piece::End | Piece::Broken(_) | Piece::Timeout => {
                let timed_out = matches!(piece, Piece::Timeout);
                let reason = match piece {
                    Piece::Timeout if !content => {
                        format!("no first token within {:.0?}", t.patience)
                    }
                    Piece::Timeout => format!(
                        "silent for {:.0?}, the limit `timeouts.idle_secs` sets",
                        settings.idle_timeout
                    ),
                    Piece::Broken(r) => r,
                    _ => EMPTY_STREAM.to_string(),
                };
                return match () {
                    // A whole answer being collected that goes silent part-way did not
                    // end: it timed out, as a copied whole answer whose body stalls does.
                    () if timed_out && (!content || collector.is_some()) => {
                        fail(FailKind::Timeout, reason)
                    }
                    () if !content || collector.is_some() => fail(FailKind::EarlyEnd, reason),
                    () => match decoder.whole_ending() {
                        Some(ending) => {
                            let said = part_way(&who, &reason);
                            end_whole(out, splice, &head, ending, seen, &said)
                        }
                        None => Outcome::Broken(Break {
                            message: part_way(&who, &reason),
                            status: 502,
                            retry_same: !timed_out,
                            upstream_status: status,
                            cut_after_calls: decoder.cut_after_calls(),
                        }),
                    },
                };
            }
        };
        // A stop's grace period ran out: the answer ends here, with an error the client
        // can read (`relay::stopped`). An event at a time keeps no answer past it.
        if env.is_cut() {
            return Outcome::Stopped;
        }
        events.clear();
        if let Err(sse::ParseError::TooLong { limit }) = parser.feed(&bytes, &mut events) {
            let msg = format!(
                "upstream sent a stream event longer than {limit} bytes (`limits.max_event_bytes`)"
            );
            return match content && collector.is_none() {
                false => fail(FailKind::TooLarge, msg),
                true => Outcome::Broken(Break {
                    message: part_way(
                        &who,
                        &format!(
                            "it sent a stream event longer than {limit} bytes, the limit `limits.max_event_bytes` sets"
                        ),
                    ),
                    status: 502,
                    retry_same: false,
                    upstream_status: status,
                    cut_after_calls: decoder.cut_after_calls(),
                }),
            };
        }
        // Whether this read brought more than keep-alives, which say the connection is
        // open but not that the answer moves on.
        let mut progressed = false;
        for ev in events.drain(..) {
            progressed |= !keep_alive(&ev);
            // A finish before any content is read in full: it may be a filter's (below).
            let quick = copied
                .then(|| decoder.copied_delta(&ev))
                .flatten()
                .filter(|d| content || d.has_content || !d.finish);
            let (has, end, outgoing) = if let Some(delta) = quick {
                finished |= delta.finish;
                (splice.note(delta), false, vec![ev])
            } else {
                let (mut chunks, end) = match decoder.event(&ev) {
                    Decoded::Chunks(c) => (c, false),
                    Decoded::End(c) => (c, true),
                    Decoded::Malformed => {
                        log::line(format!("{who} sent an unreadable stream event; dropped it"));
                        continue;
                    }
                    // A safety block: the answer when no endpoint is left or content
                    // went out already; else the next endpoint is asked.
                    Decoded::Blocked { end, message } => {
                        if !content && !t.alone {
                            return super::held_back(message, as_sent(kept), head.headers);
                        }
                        (end, true)
                    }
                    // An error after the finish marker (Anthropic's overload before
                    // `message_stop`) is not the answer's: it is whole.
                    Decoded::Failed { .. } | Decoded::Unreadable(_) if finished && content => {
                        let (v, held) = (Verbatim(verbatim), std::mem::take(&mut held));
                        let o = end_finished(out, call, &head, splice, v, content, held, collector);
                        return token_at(o, first_token);
                    }
                    // Before content, failed as a whole answer that cannot be read is
                    // (`Malformed`); after, the stream ends saying so, not as an error the
                    // source sent.
                    Decoded::Unreadable(reason) => {
                        if !content || collector.is_some() {
                            return fail(FailKind::Malformed, reason);
                        }
                        let said = format!("{who} failed part-way: {reason}");
                        if let Some(ending) = decoder.whole_ending() {
                            return end_whole(out, splice, &head, ending, seen, &said);
                        }
                        return Outcome::Broken(Break {
                            message: said,
                            status: 502,
                            retry_same: false,
                            upstream_status: status,
                            cut_after_calls: decoder.cut_after_calls(),
                        });
                    }
                    Decoded::Failed { status: s, message } => {
                        if content
                            && collector.is_none()
                            && let Some(ending) = decoder.whole_ending()
                        {
                            let said = super::cut(&message, SAID_AT_MOST);
                            let said =
                                part_way(&who, &format!("it sent an error: {}", said.trim_end()));
                            return end_whole(out, splice, &head, ending, seen, &said);
                        }
                        if !content || collector.is_some() {
                            return Outcome::Failed(Failure {
                                status: Some(s),
                                kind: unfit(&message, b"").unwrap_or(FailKind::Status(s)),
                                reason: super::cut(&message, 200),
                                body: None,
                                headers: Vec::new(),
                                retry_after: None,
                            });
                        }
                        let said = super::cut(&message, SAID_AT_MOST);
                        let said = said.trim_end();
                        return Outcome::Broken(Break {
                            message: part_way(&who, &format!("it sent an error: {said}")),
                            status: s,
                            retry_same: super::retryable(FailKind::Status(s)),
                            upstream_status: status,
                            cut_after_calls: decoder.cut_after_calls(),
                        });
                    }
                };
                let mut has = false;
                for ch in &mut chunks {
                    let held = splice.take(ch, &mut strip);
                    if let Some(n) = noted.as_mut() {
                        n.add(&ch["choices"][0]["delta"]);
                    }
                    has |= has_content(ch) || held;
                    finished |= has_finish(ch);
                    // usage (issue 19): read after `take`, which makes a continuation's
                    // usage cover the whole answer.
                    if let Some(u) = ch.get("usage").filter(|u| u.is_object()) {
                        let tokens = Tokens::from_chat_usage(u);
                        if tokens.reported() {
                            *seen = tokens;
                        }
                    }
                }
                // A content filter emptied the answer before anything went out (a chat
                // source's, Azure's; Anthropic's refusal; an `incomplete` Responses
                // answer): another endpoint may answer, as after a Gemini safety block.
                // The last one's is what the source said, and the client's.
                if !content
                    && !has
                    && !splice.open
                    && !t.alone
                    && let Some(reason) =
                        (chunks.iter()).find_map(|ch| target.protocol.filtered(ch, "delta"))
                {
                    return super::held_back(reason, as_sent(kept), head.headers);
                }
                if let Some(c) = collector.as_mut() {
                    chunks.iter().for_each(|ch| c.add(ch));
                    content |= has;
                    if end {
                        let c = collector.take().unwrap_or_default();
                        return token_at(
                            respond_collected(out, call, &head, c, splice),
                            first_token,
                        );
                    }
                    continue;
                }
                let mut outgoing: Vec<Event> = if verbatim && strip_usage && usage_only(&chunks) {
                    // usage (issue 19): the client did not ask for this chunk; we did.
                    Vec::new()
                } else if verbatim {
                    vec![ev]
                } else {
                    chunks
                        .iter()
                        .flat_map(|ch| splice.encoder.chunk(ch))
                        .collect()
                };
                if end && !verbatim {
                    outgoing.extend(splice.encoder.finish());
                }
                (has, end, outgoing)
            };
            if !content && !has && !end {
                // Events before the first content wait, with the status line. Only the
                // first-token deadline ends the wait, and a source can send a great deal
                // before it (role-only deltas, empty choices, comments, fast and without
                // end): what is held is an answer not yet begun, bounded as a whole one
                // is. Past it, the source is moved past as one whose answer is too large,
                // before the client has seen anything of it.
                held_bytes += outgoing.iter().map(|e| e.raw.len() as u64).sum::<u64>();
                if held_bytes > settings.limits.max_response_bytes {
                    return fail(
                        FailKind::TooLarge,
                        format!(
                            "upstream sent more than {} bytes of stream events before any content (`limits.max_response_bytes`)",
                            settings.limits.max_response_bytes
                        ),
                    );
                }
                held.extend(outgoing);
                continue;
            }
            let v = Verbatim(verbatim);
            if end {
                let o = commit_and_end(out, splice, v, &head, held, outgoing, content);
                return if has { token_at(o, first_token) } else { o };
            }
            if !content {
                let held = std::mem::take(&mut held);
                if let Err(o) = commit(out, splice, v, &head, held) {
                    return o;
                }
                content = true;
            }
            if let Err(o) = send(out, splice, v, outgoing) {
                return o;
            }
            if has && first_token.is_none() {
                *first_token = Some(Instant::now());
            }
        }
        // After the first content, silence is measured between events that carry the
        // answer on (content, or a new block, a signature, usage); keep-alives do not
        // count, or a server that stalled but sends them would never be rescued. A
        // thinking phase sends thinking deltas, which do. Before the first content the
        // first-token deadline holds, whatever comes.
        if content && progressed {
            deadline = Instant::now() + settings.idle_timeout;
        }
        // The answer is whole once its finish marker came; its usage and end marker
        // follow at once, so a client is not kept `idle_secs` waiting for them.
        if finished && content {
            deadline = deadline.min(Instant::now() + AFTER_FINISH);
        }
    }
}

/// The most of an upstream's own words an error event after content passes on, as a
/// failure's reason before content is cut ([`super::cut`] keeps a credential whole, so
/// it is masked, or leaves it out).
const SAID_AT_MOST: usize = 200;

/// What a client's error event says of a stream that `who` (`upstream \`a\``) broke
/// off after content went out: a cut, a silence or the upstream's own error event, in
/// one wording, so a client (and the log) reads which upstream failed and what
/// happened or what it said the same way whichever it was. The rescue adds why it was
/// not continued.
fn part_way(who: &str, what: &str) -> String {
    format!("{who} stopped part-way through its answer ({what})")
}

/// How long a stream is waited for after its finish marker: its usage and end marker
/// come right after it (OpenRouter's usage, priced, a moment later).
const AFTER_FINISH: Duration = Duration::from_secs(5);

/// Ends a stream after its finish marker with the normal ending, whatever came after
/// it: the end marker, a close, a break, a silence or an error event.
#[allow(clippy::too_many_arguments)]
fn end_finished(
    out: &mut sse::ClientWriter,
    call: &super::Call<'_>,
    head: &AnswerHead<'_>,
    splice: &mut Splice,
    v: Verbatim,
    content: bool,
    held: Vec<Event>,
    collector: Option<chat::Collector>,
) -> Outcome {
    if let Some(c) = collector {
        return respond_collected(out, call, head, c, splice);
    }
    // Held events go out (and are observed) before the encoder writes the end.
    if !content && let Err(o) = commit(out, splice, v, head, held) {
        return o;
    }
    let ending = splice.encoder.finish();
    commit_and_end(out, splice, v, head, Vec::new(), ending, true)
}

/// Ends a stream that broke before its finish marker right after whole tool calls
/// (`Decoder::whole_ending`): its `ending` chunks go out in the client's protocol, then
/// the normal ending, as when the upstream finished. A copied stream's encoder, which
/// read none of it, still knows the client's ids to end it with. The client cannot
/// tell, so the log says what broke (`said`) and the request's stream end is
/// `broke_after_call`: calls the break came before (parallel ones not yet begun) are
/// lost.
fn end_whole(
    out: &mut sse::ClientWriter,
    splice: &mut Splice,
    head: &AnswerHead<'_>,
    mut ending: Vec<Value>,
    seen: &mut Tokens,
    said: &str,
) -> Outcome {
    log::line(format!(
        "{said}; right after a whole tool call: ended the answer as a tool call with the calls it sent (any later call is lost)"
    ));
    splice.broke_after_call = true;
    let mut events = Vec::new();
    for ch in &mut ending {
        // A continuation's usage covers the whole answer here too.
        splice.take(ch, &mut false);
        if let Some(u) = ch.get("usage").filter(|u| u.is_object()) {
            let tokens = Tokens::from_chat_usage(u);
            if tokens.reported() {
                *seen = tokens;
            }
        }
        events.extend(splice.encoder.chunk(ch));
    }
    events.extend(splice.encoder.finish());
    commit_and_end(out, splice, Verbatim(false), head, Vec::new(), events, true)
}

/// The most of a stream kept before its first content for a filtered answer: such an
/// answer is a few events (a role chunk or `message_start`, the filtered ending); one
/// larger is not kept, and its request ends as any whose endpoints all failed.
const KEEP_LIMIT: usize = 64 * 1024;

/// A stream's bytes kept before its first content, as an answer in hand.
fn as_sent(kept: Option<Vec<u8>>) -> Option<(Vec<u8>, std::borrow::Cow<'static, str>)> {
    kept.map(|k| (k, "text/event-stream".into()))
}

/// True for an event that only keeps the connection open: an SSE comment (`: keep-alive`,
/// which dispatches no data) or Anthropic's `ping`.
fn keep_alive(ev: &Event) -> bool {
    ev.data.is_none() || ev.event.as_deref() == Some("ping")
}

/// usage (issue 19): notes that the first content went out now, when `o` says it did
/// and nothing went out before.
fn token_at(o: Outcome, first_token: &mut Option<Instant>) -> Outcome {
    if matches!(o, Outcome::Answered) && first_token.is_none() {
        *first_token = Some(Instant::now());
    }
    o
}

/// usage (issue 19): an event whose chunks only report usage (`"choices": []`).
fn usage_only(chunks: &[Value]) -> bool {
    !chunks.is_empty()
        && chunks.iter().all(|ch| {
            ch["choices"].as_array().is_some_and(|c| c.is_empty()) && ch["usage"].is_object()
        })
}

/// Events copied from a same-protocol upstream (true), or written by the encoder.
#[derive(Clone, Copy)]
struct Verbatim(bool);

/// Sends events; a verbatim stream's events are observed so it can be continued later.
fn send(
    out: &mut sse::ClientWriter,
    splice: &mut Splice,
    verbatim: Verbatim,
    events: Vec<Event>,
) -> Result<(), Outcome> {
    for ev in events {
        if verbatim.0 {
            splice.encoder.observe(&ev);
        }
        out.send(&ev.raw).map_err(|_| Outcome::ClientGone)?;
    }
    Ok(())
}

/// The head of the answer being relayed: the upstream's status and the headers passed
/// back, and who served it.
struct AnswerHead<'a> {
    status: u16,
    headers: Vec<(String, String)>,
    by: ServedBy<'a>,
}

/// First content: the status line (unless a continuation finds it sent) and the held events.
fn commit(
    out: &mut sse::ClientWriter,
    splice: &mut Splice,
    verbatim: Verbatim,
    head: &AnswerHead<'_>,
    held: Vec<Event>,
) -> Result<(), Outcome> {
    if !splice.open {
        out.start_stream(
            head.status,
            "text/event-stream",
            &head.headers,
            Some(head.by),
        )
        .map_err(|_| Outcome::ClientGone)?;
        splice.open = true;
        splice.status = head.status;
    }
    send(out, splice, verbatim, held)
}

/// Sends the last events of a stream that ended well, committing first if need be.
fn commit_and_end(
    out: &mut sse::ClientWriter,
    splice: &mut Splice,
    verbatim: Verbatim,
    head: &AnswerHead<'_>,
    held: Vec<Event>,
    last: Vec<Event>,
    content: bool,
) -> Outcome {
    if !content && let Err(o) = commit(out, splice, verbatim, head, held) {
        return o;
    }
    if let Err(o) = send(out, splice, verbatim, last) {
        return o;
    }
    match out.end_stream() {
        Ok(()) => Outcome::Answered,
        Err(_) => Outcome::ClientGone,
    }
}

/// Answers a streaming client whose upstream sent its whole answer instead of a stream
/// (a server that ignores `"stream": true`): the answer, as hub `chat`, goes out as the
/// client's protocol's stream of it, so the client's stream reader gets events, not a
/// JSON body it cannot read.
pub(super) fn relay_whole_as_stream(
    run: &mut Run<'_, '_>,
    t: &Try<'_>,
    status: u16,
    headers: Vec<(String, String)>,
    chat: &Value,
) -> Outcome {
    let head = AnswerHead {
        status,
        headers,
        by: served_by(t.target, t.number),
    };
    let splice = &mut run.splice;
    splice.begin(run.call, t.target.model());
    let mut events = Vec::new();
    for ch in chat::as_chunks(chat) {
        events.extend(splice.encoder.chunk(&ch));
    }
    events.extend(splice.encoder.finish());
    run.served.first_token = Some(Instant::now());
    commit_and_end(
        run.out,
        splice,
        Verbatim(false),
        &head,
        Vec::new(),
        events,
        false,
    )
}

/// Answers a non-streaming client with what a stream-only upstream sent.
fn respond_collected(
    out: &mut sse::ClientWriter,
    call: &super::Call<'_>,
    head: &AnswerHead<'_>,
    c: chat::Collector,
    splice: &mut Splice,
) -> Outcome {
    let mut chat = c.finish();
    // Fit as a source's whole answer is (`fit_answer`): a call given no id gets one, and
    // one the stream never named fails the answer, which has not gone out.
    if let Err(reason) = crate::protocol::fit_answer(&mut chat) {
        return fail(FailKind::Malformed, reason);
    }
    let body = call
        .inbound
        .response_from_chat(chat, &call.asked)
        .to_string();
    splice.status = head.status;
    match out.respond_served(
        head.status,
        "application/json",
        &head.headers,
        Some(head.by),
        body.as_bytes(),
    ) {
        Ok(()) => Outcome::Answered,
        Err(_) => Outcome::ClientGone,
    }
}

#[cfg(test)]
mod tests;
