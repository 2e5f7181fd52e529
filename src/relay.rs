//! The request's main loop: try each target in order, classify what happened, answer the client.
//!
//! [`run`] is where a request spends its life. For each target it builds the upstream
//! body (bytes with only `model` changed when the protocols match, a translation
//! otherwise), attaches the credential, sends, and classifies the outcome with
//! `next_step`, the failover table in one `match`. The client's status line is held
//! until the upstream's first event (or whole body) is in hand, so a failure before
//! that is invisible to the client and the next target is tried. Once an event has
//! gone out, the answer is committed: a later failure ends the stream with an error
//! event in the client's protocol.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::auth::Auth;
use crate::body::RawBody;
use crate::error::Error;
use crate::log::StreamEnd;
use crate::protocol::{self, Decoded, Protocol, chat};
use crate::registry::{Settings, Target};
use crate::route::Cooldown;
use crate::sse::{self, ClientWriter};
use crate::upstream::{self, Piece, Reply, SendError};

/// What the relay needs from the server, shared by every request.
#[derive(Debug)]
pub struct Env {
    /// The upstream HTTP client.
    pub client: upstream::Client,
    /// Upstream credentials.
    pub auth: Arc<Auth>,
    /// Endpoints that failed recently.
    pub cooldown: Cooldown,
}

/// One client request, parsed and resolved.
pub struct Call<'a> {
    /// The protocol the client speaks.
    pub inbound: Protocol,
    /// The client's body.
    pub body: &'a RawBody,
    /// Targets in the order to try them.
    pub targets: Vec<Target>,
    /// The client asked for a stream.
    pub stream: bool,
    /// Chat clients: `stream_options.include_usage`.
    pub include_usage: bool,
    /// Client headers passed upstream when protocols match (e.g. `anthropic-beta`).
    pub forward: Vec<(String, String)>,
    /// The model name the client asked for.
    pub requested: String,
}

/// What the relay did, for the log line and the response headers.
#[derive(Debug, Default)]
pub struct Served {
    /// Status sent to the client.
    pub status: u16,
    /// `provider:model` that answered.
    pub served_by: Option<String>,
    /// Upstream attempts made.
    pub attempts: usize,
    /// Each attempt as `(provider:model, result)`: its status, or a word for why it
    /// failed (`refused`, `timeout`, …), for the log line.
    pub tried: Vec<(String, String)>,
    /// How a streamed answer ended; `None` when the client did not get a stream.
    pub stream: Option<StreamEnd>,
}

/// Why an attempt produced no answer for the client.
#[derive(Debug)]
struct Failure {
    /// Upstream HTTP status, if one was received.
    status: Option<u16>,
    /// Short reason for the log and the exhausted message.
    reason: String,
    /// What kind of failure it is.
    kind: FailKind,
    /// An upstream error body to surface (bytes, content type).
    body: Option<(Vec<u8>, String)>,
    /// Upstream headers to surface with it.
    headers: Vec<(String, String)>,
    /// The upstream asked for a pause (Retry-After, reset headers).
    retry_after: Option<Duration>,
}

/// The categories of `next_step`'s table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    /// Nothing was answered (refused, reset, DNS, connect timeout).
    Network,
    /// The upstream answered with this HTTP status.
    Status(u16),
    /// The first event or the body did not arrive in time.
    Timeout,
    /// The body ended or broke before the first event / before it was complete.
    EarlyEnd,
    /// The upstream said the context window was exceeded or content was filtered.
    ContextOrFilter,
    /// The request could not be prepared for this target (a field it cannot express, no login).
    Prepare(u16),
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Try the next target (and cool this one down when `cool` is set).
    Next {
        /// Put the endpoint in cool-down.
        cool: bool,
    },
    /// Give this answer to the client; trying elsewhere would not help.
    Surface,
}

/// The failover table.
///
/// | outcome                                           | step                  |
/// |---------------------------------------------------|-----------------------|
/// | 408, 429, 5xx                                     | next, cool down       |
/// | refused, reset, DNS, connect or first-byte timeout| next, cool down       |
/// | stream ends or breaks before its first event      | next, cool down       |
/// | context window exceeded, content filtered         | next                  |
/// | request cannot be expressed for / no login at it  | next                  |
/// | 400, 401, 402, 403, 404, 422, other 4xx           | surface               |
///
/// After the first event has gone to the client nothing is retried: the stream ends
/// with an error event. A client that disconnects stops everything.
fn next_step(kind: FailKind) -> Step {
    match kind {
        FailKind::Status(408 | 429) | FailKind::Status(500..=599) => Step::Next { cool: true },
        FailKind::Network | FailKind::Timeout | FailKind::EarlyEnd => Step::Next { cool: true },
        FailKind::ContextOrFilter | FailKind::Prepare(_) => Step::Next { cool: false },
        FailKind::Status(_) => Step::Surface,
    }
}

/// How an attempt ended.
enum Outcome {
    /// The client got an answer (complete, or a stream that was committed).
    Answered { status: u16 },
    /// A committed stream ended with an error event.
    Broke { status: u16 },
    /// Nothing went to the client; see the failure.
    Failed(Failure),
    /// The client went away; stop.
    ClientGone,
}

/// Runs one request to completion: the main loop.
pub fn run(env: &Env, settings: &Settings, call: &Call<'_>, out: &mut ClientWriter) -> Served {
    let mut served = Served::default();
    let mut failures: Vec<(String, Failure)> = Vec::new();
    // The hub request is built at most once, however many targets need it.
    let mut hub: Option<Result<Value, Error>> = None;

    for target in env.cooldown.order(call.targets.clone()) {
        served.attempts += 1;
        let outcome = attempt(env, settings, call, &target, served.attempts, &mut hub, out);
        match outcome {
            Outcome::Answered { status } | Outcome::Broke { status } => {
                env.cooldown.clear(&target);
                served.status = status;
                served.served_by = Some(target.label());
                served.tried.push((target.label(), status.to_string()));
                served.stream = out.streamed().then_some(match outcome {
                    Outcome::Broke { .. } => StreamEnd::Broken,
                    _ => StreamEnd::Complete,
                });
                return served;
            }
            Outcome::ClientGone => {
                served.status = 499;
                served.served_by = Some(target.label());
                served.tried.push((target.label(), "client_closed".into()));
                served.stream = out.streamed().then_some(StreamEnd::ClientClosed);
                return served;
            }
            Outcome::Failed(f) => {
                served.tried.push((target.label(), short_reason(&f)));
                let step = next_step(f.kind);
                if let Step::Next { cool: true } = step {
                    env.cooldown.fail(&target, f.retry_after);
                }
                if step == Step::Surface {
                    served.status = surface(call, &f, out);
                    served.served_by = Some(target.label());
                    return served;
                }
                failures.push((target.label(), f));
            }
        }
    }
    served.status = exhausted(call, failures, out);
    served
}

/// `POST /v1/messages/count_tokens`: asked of the first Anthropic target that answers;
/// without one, an estimate marked `"estimated": true` (about four bytes a token),
/// because a 404 would break clients that count before every request.
pub fn count_tokens(
    env: &Env,
    settings: &Settings,
    call: &Call<'_>,
    out: &mut ClientWriter,
) -> Served {
    let mut served = Served::default();
    for target in call
        .targets
        .iter()
        .filter(|t| t.protocol == Protocol::Anthropic)
    {
        served.attempts += 1;
        let Ok(mut headers) = env.auth.headers(target) else {
            continue;
        };
        headers.push(("content-type".into(), "application/json".into()));
        for (name, value) in &call.forward {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.clone(), value.clone()));
        }
        let url = format!("{}/messages/count_tokens", target.provider.api_base);
        let Ok(reply) = env
            .client
            .post(&url, &headers, &call.body.with_model(&target.model))
        else {
            continue;
        };
        let status = reply.status;
        if status >= 500 || status == 429 || status == 404 {
            continue;
        }
        let Ok(bytes) = reply.read_all(settings.limits.max_response_bytes) else {
            continue;
        };
        let _ = out.respond(
            status,
            "application/json",
            &served_headers(target, served.attempts),
            &bytes,
        );
        served.status = status;
        served.served_by = Some(target.label());
        return served;
    }
    let text_bytes = call.body.with_model("").len();
    let estimate = serde_json::json!({"input_tokens": text_bytes.div_ceil(4), "estimated": true});
    let headers = vec![("x-routeplane-estimate".to_string(), "true".to_string())];
    let _ = out.respond(
        200,
        "application/json",
        &headers,
        estimate.to_string().as_bytes(),
    );
    served.status = 200;
    served
}

/// Answers with a surfaced upstream error: verbatim when the protocols match.
fn surface(call: &Call<'_>, f: &Failure, out: &mut ClientWriter) -> u16 {
    let status = f.status.unwrap_or(502);
    match &f.body {
        Some((bytes, ct)) if f.kind == FailKind::Status(status) && same_shape(call, ct) => {
            let _ = out.respond(status, ct, &f.headers, bytes);
        }
        Some((bytes, _)) => {
            let msg = protocol::upstream_error_message(bytes);
            respond_error(call.inbound, status, &msg, &f.headers, out);
        }
        None => respond_error(call.inbound, status, &f.reason, &f.headers, out),
    }
    status
}

/// True when a surfaced body can go to the client as-is (its protocol's JSON).
fn same_shape(call: &Call<'_>, content_type: &str) -> bool {
    call.targets.iter().all(|t| t.protocol == call.inbound) && content_type.contains("json")
}

/// Answers when every target failed.
fn exhausted(call: &Call<'_>, failures: Vec<(String, Failure)>, out: &mut ClientWriter) -> u16 {
    if failures.len() == 1 {
        let (label, f) = &failures[0];
        return match f.kind {
            // One target that answered: its own error is the most useful thing to show.
            FailKind::Status(_) | FailKind::ContextOrFilter | FailKind::Prepare(_) => {
                surface(call, f, out)
            }
            _ => {
                let provider = label.split(':').next().unwrap_or(label);
                let err = Error::Upstream {
                    provider: provider.to_string(),
                    reason: f.reason.clone(),
                };
                respond_error(call.inbound, 502, &err.to_string(), &[], out);
                502
            }
        };
    }
    let all_rate_limited = !failures.is_empty()
        && failures
            .iter()
            .all(|(_, f)| f.kind == FailKind::Status(429));
    let status = if all_rate_limited { 429 } else { 502 };
    let mut headers = Vec::new();
    if all_rate_limited && let Some(wait) = failures.iter().filter_map(|(_, f)| f.retry_after).min()
    {
        headers.push(("retry-after".to_string(), wait.as_secs().max(1).to_string()));
    }
    let attempts: Vec<String> = failures
        .iter()
        .map(|(label, f)| match f.status {
            Some(s) => format!("{label} → {s} {}", f.reason),
            None => format!("{label} → {}", f.reason),
        })
        .collect();
    let err = if attempts.is_empty() {
        Error::bad_request("no target to try")
    } else {
        Error::Exhausted { status, attempts }
    };
    respond_error(call.inbound, err.status(), &err.to_string(), &headers, out);
    err.status()
}

/// Sends an error body in the client's protocol.
pub fn respond_error(
    inbound: Protocol,
    status: u16,
    message: &str,
    headers: &[(String, String)],
    out: &mut ClientWriter,
) {
    let body = inbound.error_body(status, message);
    let _ = out.respond(status, "application/json", headers, &body);
}

/// A failure with no upstream body.
fn fail(kind: FailKind, reason: impl Into<String>) -> Outcome {
    Outcome::Failed(Failure {
        status: match kind {
            FailKind::Status(s) | FailKind::Prepare(s) => Some(s),
            _ => None,
        },
        reason: reason.into(),
        kind,
        body: None,
        headers: Vec::new(),
        retry_after: None,
    })
}

/// One try at one target.
#[allow(clippy::too_many_arguments)]
fn attempt(
    env: &Env,
    settings: &Settings,
    call: &Call<'_>,
    target: &Target,
    attempts: usize,
    hub: &mut Option<Result<Value, Error>>,
    out: &mut ClientWriter,
) -> Outcome {
    let provider = &target.provider;
    let upstream_stream = call.stream || env.auth.stream_only(provider);
    let body = match upstream_body(env, call, target, hub) {
        Ok(b) => b,
        Err(e) => return fail(FailKind::Prepare(e.status()), e.to_string()),
    };
    let mut headers = match env.auth.headers(target) {
        Ok(h) => h,
        Err(e) => return fail(FailKind::Prepare(e.status()), e.to_string()),
    };
    headers.push(("content-type".into(), "application/json".into()));
    if upstream_stream {
        headers.push(("accept".into(), "text/event-stream".into()));
    }
    if target.protocol == call.inbound {
        // The client's own protocol headers (e.g. its `anthropic-version`) replace ours.
        for (name, value) in &call.forward {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.clone(), value.clone()));
        }
    }
    let url = format!("{}{}", provider.api_base, target.protocol.endpoint());
    // The first-byte deadline is per attempt: an earlier endpoint's wait does not count.
    let sent = Instant::now();
    let mut reply = match env.client.post(&url, &headers, &body) {
        Ok(r) => r,
        Err(SendError::Network(reason)) => return fail(FailKind::Network, reason),
        Err(e @ SendError::Timeout(_)) => return fail(FailKind::Timeout, e.to_string()),
    };
    // A subscription token the upstream rejects is refreshed once and the request retried once.
    if reply.status == 401 && env.auth.refresh_after_401(target) {
        let fresh = env.auth.headers(target).map(|h| {
            headers.retain(|(n, _)| !h.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)));
            headers.extend(h);
        });
        if fresh.is_ok() {
            reply = match env.client.post(&url, &headers, &body) {
                Ok(r) => r,
                Err(SendError::Network(reason)) => return fail(FailKind::Network, reason),
                Err(e @ SendError::Timeout(_)) => return fail(FailKind::Timeout, e.to_string()),
            };
        }
    }
    if !(200..300).contains(&reply.status) {
        return upstream_error(settings, reply);
    }
    let t = Try {
        settings,
        call,
        target,
        number: attempts,
        translate: target.protocol != call.inbound || env.auth.rewrites_body(provider),
    };
    if upstream_stream && reply.content_type.starts_with("text/event-stream") {
        relay_stream(&t, reply, out, sent)
    } else {
        relay_whole(&t, reply, out)
    }
}

/// One attempt's fixed facts, handed to the helpers that relay its answer.
#[derive(Clone, Copy)]
struct Try<'a> {
    settings: &'a Settings,
    call: &'a Call<'a>,
    target: &'a Target,
    /// Its number among the request's attempts, for `x-routeplane-attempts`.
    number: usize,
    /// The answer is translated (or reshaped), not copied byte for byte.
    translate: bool,
}

/// Builds the bytes sent upstream for `target`.
fn upstream_body(
    env: &Env,
    call: &Call<'_>,
    target: &Target,
    hub: &mut Option<Result<Value, Error>>,
) -> Result<Vec<u8>, Error> {
    let provider = &target.provider;
    if target.protocol == call.inbound && !env.auth.rewrites_body(provider) {
        return Ok(call.body.with_model(&target.model));
    }
    let mut up = if target.protocol == call.inbound {
        let mut v = call.body.to_value()?;
        v["model"] = Value::String(target.model.clone());
        v
    } else {
        let chat = hub
            .get_or_insert_with(|| {
                call.body
                    .to_value()
                    .and_then(|v| call.inbound.request_to_chat(v))
            })
            .as_ref()
            .map_err(|e| Error::bad_request(e.to_string()))?
            .clone();
        target
            .protocol
            .request_from_chat(chat, &target.model, &provider.id)?
    };
    env.auth.shape_body(provider, &mut up);
    serde_json::to_vec(&up).map_err(|e| Error::Internal(format!("cannot encode body: {e}")))
}

/// Reads an upstream error answer and classifies it.
fn upstream_error(settings: &Settings, reply: Reply) -> Outcome {
    let status = reply.status;
    let retry_after = reply.retry_after;
    let headers = reply.headers.clone();
    let ct = if reply.content_type.is_empty() {
        "application/json".to_string()
    } else {
        reply.content_type.clone()
    };
    let limit = settings.limits.max_response_bytes.min(1024 * 1024);
    let bytes = reply.read_all(limit).unwrap_or_default();
    let message = protocol::upstream_error_message(&bytes);
    let kind = if (400..500).contains(&status) && context_or_filter(&message, &bytes) {
        FailKind::ContextOrFilter
    } else {
        FailKind::Status(status)
    };
    let reason: String = message.chars().take(200).collect();
    Outcome::Failed(Failure {
        status: Some(status),
        reason,
        kind,
        body: Some((bytes, ct)),
        headers,
        retry_after,
    })
}

/// True for errors another model might not have: context window, content filter.
fn context_or_filter(message: &str, body: &[u8]) -> bool {
    let m = message.to_ascii_lowercase();
    let b = String::from_utf8_lossy(body).to_ascii_lowercase();
    [
        "context_length_exceeded",
        "context window",
        "maximum context length",
        "prompt is too long",
        "content_filter",
        "content filter",
        "content management policy",
    ]
    .iter()
    .any(|needle| m.contains(needle) || b.contains(needle))
}

/// Headers that tell the client who served, after how many attempts.
fn served_headers(target: &Target, attempts: usize) -> Vec<(String, String)> {
    vec![
        ("x-routeplane-provider".into(), target.provider.id.clone()),
        ("x-routeplane-model".into(), target.model.clone()),
        ("x-routeplane-attempts".into(), attempts.to_string()),
    ]
}

/// Relays a complete (non-streaming) answer.
fn relay_whole(t: &Try<'_>, reply: Reply, out: &mut ClientWriter) -> Outcome {
    let Try {
        settings,
        call,
        target,
        number: attempts,
        translate,
    } = *t;
    let status = reply.status;
    let ct = reply.content_type.clone();
    let mut headers = reply.headers.clone();
    headers.extend(served_headers(target, attempts));
    let bytes = match reply.read_all(settings.limits.max_response_bytes) {
        Ok(b) => b,
        Err(reason) => return fail(FailKind::EarlyEnd, reason),
    };
    let answer = if translate {
        let translated = serde_json::from_slice::<Value>(&bytes)
            .map_err(|_| Error::Internal("upstream answered with malformed JSON".into()))
            .and_then(|v| target.protocol.response_to_chat(v))
            .map(|chat| call.inbound.response_from_chat(chat));
        match translated {
            Ok(v) => v.to_string().into_bytes(),
            Err(e) => return fail(FailKind::EarlyEnd, e.to_string()),
        }
    } else {
        if bytes.is_empty() {
            return fail(FailKind::EarlyEnd, "upstream answered with an empty body");
        }
        bytes
    };
    let ct = if translate || ct.is_empty() {
        "application/json".to_string()
    } else {
        ct
    };
    match out.respond(status, &ct, &headers, &answer) {
        Ok(()) => Outcome::Answered { status },
        Err(_) => Outcome::ClientGone,
    }
}

/// Where a streamed answer stands.
enum Commit {
    /// No event has gone to the client; held event bytes wait here.
    Holding(Vec<Vec<u8>>),
    /// The head and at least one event went out.
    Streaming,
}

/// Relays a streamed answer event by event (or collects it for a non-streaming client).
fn relay_stream(t: &Try<'_>, reply: Reply, out: &mut ClientWriter, started: Instant) -> Outcome {
    let Try {
        settings,
        call,
        target,
        number: attempts,
        translate,
    } = *t;
    let status = reply.status;
    let mut headers = reply.headers.clone();
    headers.extend(served_headers(target, attempts));
    let stream = reply.stream();
    let mut parser = sse::Parser::new(settings.limits.max_event_bytes);
    let mut decoder = target.protocol.decoder();
    // Named after the upstream's model, as an unstreamed answer is, unless its events
    // name one themselves.
    let mut encoder = call.inbound.encoder(&target.model, call.include_usage);
    let mut collector = (!call.stream).then(chat::Collector::default);
    let mut commit = Commit::Holding(Vec::new());
    let mut deadline = started + settings.first_byte_timeout;
    let mut events = Vec::new();

    loop {
        let piece = stream.next(deadline);
        let bytes = match piece {
            Piece::Data(b) => b,
            Piece::End | Piece::Broken(_) | Piece::Timeout => {
                let timed_out = matches!(piece, Piece::Timeout);
                let reason = match piece {
                    Piece::Timeout if matches!(commit, Commit::Holding(_)) => {
                        format!("no first event within {:.0?}", settings.first_byte_timeout)
                    }
                    Piece::Timeout => format!(
                        "silent for {:.0?}, the limit `timeouts.idle_secs` sets",
                        settings.idle_timeout
                    ),
                    Piece::Broken(r) => r,
                    _ => "the stream ended without its end marker".to_string(),
                };
                return match commit {
                    Commit::Holding(_) if timed_out => fail(FailKind::Timeout, reason),
                    Commit::Holding(_) => fail(FailKind::EarlyEnd, reason),
                    Commit::Streaming => {
                        let msg = format!(
                            "upstream `{}` stopped part-way through its answer ({reason})",
                            target.provider.id
                        );
                        end_with_error(out, &mut encoder, 502, &msg, status)
                    }
                };
            }
        };
        events.clear();
        if let Err(sse::ParseError::TooLong { limit }) = parser.feed(&bytes, &mut events) {
            let msg = format!(
                "upstream sent a stream event longer than {limit} bytes (`limits.max_event_bytes`)"
            );
            return match commit {
                Commit::Holding(_) => fail(FailKind::EarlyEnd, msg),
                Commit::Streaming => end_with_error(out, &mut encoder, 502, &msg, status),
            };
        }
        for ev in events.drain(..) {
            let decoded = decoder.event(&ev);
            let (chunks, end) = match decoded {
                Decoded::Chunks(c) => (c, false),
                Decoded::End(c) => (c, true),
                Decoded::Failed { status: s, message } => {
                    return match commit {
                        Commit::Holding(_) => Outcome::Failed(Failure {
                            status: Some(s),
                            kind: if context_or_filter(&message, b"") {
                                FailKind::ContextOrFilter
                            } else {
                                FailKind::Status(s)
                            },
                            reason: message.chars().take(200).collect(),
                            body: None,
                            headers: Vec::new(),
                            retry_after: None,
                        }),
                        Commit::Streaming => end_with_error(out, &mut encoder, s, &message, status),
                    };
                }
            };
            if let Some(c) = collector.as_mut() {
                chunks.iter().for_each(|ch| c.add(ch));
                if end {
                    let chat = collector
                        .take()
                        .map(chat::Collector::finish)
                        .unwrap_or_default();
                    let body = call.inbound.response_from_chat(chat).to_string();
                    return match out.respond(status, "application/json", &headers, body.as_bytes())
                    {
                        Ok(()) => Outcome::Answered { status },
                        Err(_) => Outcome::ClientGone,
                    };
                }
                continue;
            }
            // Decide what goes out for this event.
            let outgoing: Vec<Vec<u8>> = if translate {
                let mut evs: Vec<Vec<u8>> = chunks
                    .iter()
                    .flat_map(|ch| encoder.chunk(ch))
                    .map(|e| e.raw)
                    .collect();
                if end {
                    evs.extend(encoder.finish().into_iter().map(|e| e.raw));
                }
                evs
            } else {
                vec![ev.raw]
            };
            if let Commit::Holding(held) = &mut commit {
                if chunks.is_empty() && !end {
                    // Pings and comments before the first real event wait with the head.
                    held.extend(outgoing);
                    continue;
                }
                let held = std::mem::take(held);
                if out
                    .start_stream(status, "text/event-stream", &headers)
                    .is_err()
                {
                    return Outcome::ClientGone;
                }
                for raw in held {
                    if out.send(&raw).is_err() {
                        return Outcome::ClientGone;
                    }
                }
                commit = Commit::Streaming;
                deadline = Instant::now() + settings.idle_timeout;
            }
            for raw in outgoing {
                if out.send(&raw).is_err() {
                    return Outcome::ClientGone;
                }
            }
            if end {
                return match out.end_stream() {
                    Ok(()) => Outcome::Answered { status },
                    Err(_) => Outcome::ClientGone,
                };
            }
        }
        if matches!(commit, Commit::Streaming) {
            deadline = Instant::now() + settings.idle_timeout;
        }
    }
}

/// Ends a committed stream with an error event in the client's protocol.
fn end_with_error(
    out: &mut ClientWriter,
    encoder: &mut protocol::Encoder,
    status: u16,
    message: &str,
    http_status: u16,
) -> Outcome {
    for ev in encoder.fail(status, message) {
        if out.send(&ev.raw).is_err() {
            return Outcome::ClientGone;
        }
    }
    let _ = out.end_stream();
    Outcome::Broke {
        status: http_status,
    }
}

/// One word for a failed attempt in the log's `tried=`: its status, or what happened.
fn short_reason(f: &Failure) -> String {
    match f.kind {
        FailKind::Status(s) => s.to_string(),
        FailKind::ContextOrFilter => format!("{}:context_or_filter", f.status.unwrap_or(400)),
        FailKind::Timeout => "timeout".into(),
        FailKind::EarlyEnd => "ended_early".into(),
        FailKind::Prepare(401) => "not_logged_in".into(),
        FailKind::Prepare(_) => "cannot_express".into(),
        FailKind::Network => {
            let r = f.reason.as_str();
            if r.contains("refused") {
                "refused"
            } else if r.contains("reset") {
                "reset"
            } else if r.contains("host not found") {
                "dns"
            } else {
                "network"
            }
            .into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_table() {
        let next = Step::Next { cool: true };
        let cases = [
            (FailKind::Status(408), next),
            (FailKind::Status(429), next),
            (FailKind::Status(500), next),
            (FailKind::Status(503), next),
            (FailKind::Network, next),
            (FailKind::Timeout, next),
            (FailKind::EarlyEnd, next),
            (FailKind::ContextOrFilter, Step::Next { cool: false }),
            (FailKind::Status(400), Step::Surface),
            (FailKind::Status(401), Step::Surface),
            (FailKind::Status(402), Step::Surface),
            (FailKind::Status(403), Step::Surface),
            (FailKind::Status(404), Step::Surface),
            (FailKind::Status(422), Step::Surface),
        ];
        for (kind, want) in cases {
            assert_eq!(next_step(kind), want, "{kind:?}");
        }
    }

    #[test]
    fn context_and_filter_errors_are_recognised() {
        assert!(context_or_filter(
            "This model's maximum context length is 8192 tokens",
            b""
        ));
        assert!(context_or_filter(
            "x",
            br#"{"error":{"code":"context_length_exceeded"}}"#
        ));
        assert!(!context_or_filter("invalid temperature", b"{}"));
    }
}
