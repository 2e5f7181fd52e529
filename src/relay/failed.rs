//! What the client is told when its request ends in a failure: the upstream's own error,
//! or the list of what every endpoint answered.

use std::borrow::Cow;
use std::time::Duration;

use super::table::Unprepared;
use super::{Call, FailKind, Failure};
use crate::error::{Error, Field};
use crate::protocol::{self, Protocol};
use crate::registry::Target;
use crate::route::Cooldown;
use crate::sse::{ClientWriter, ServedBy};
use crate::upstream::Net;

/// Answers with a surfaced upstream error: verbatim when the protocols match; else in
/// the client's protocol, with OpenAI's `code` when the upstream gave one (its `param`
/// too, when the source spoke the client's protocol), and a context overflow in the
/// words the client's own handling looks for (Claude Code compacts on "prompt is too
/// long"). `by` names the endpoint that said it, in the answer's headers.
pub(super) fn surface(
    call: &Call<'_>,
    f: &Failure,
    by: Option<ServedBy<'_>>,
    out: &mut ClientWriter,
) -> u16 {
    let status = f.status.unwrap_or(502);
    // A plan limit whose end was named only in the body (the Codex backend) is told
    // the client in the standard header too.
    let mut headers = Cow::Borrowed(&f.headers[..]);
    if status == 429
        && let Some(wait) = f.retry_after
        && !f.headers.iter().any(|(n, _)| n == "retry-after")
    {
        headers
            .to_mut()
            .push(("retry-after".to_string(), retry_after_secs(wait)));
    }
    if let Some((bytes, ct)) = &f.body
        && f.kind.source_said()
        && same_shape(call, ct)
    {
        let _ = out.respond_served(status, ct, &headers, by, bytes);
        return status;
    }
    let (message, (code, param)) = match &f.body {
        Some((bytes, _)) => (
            Cow::Owned(protocol::upstream_error_message(bytes)),
            protocol::upstream_error_fields(bytes),
        ),
        None => (Cow::Borrowed(f.reason.as_str()), (None, None)),
    };
    // The upstream's `param` names a field of the request it was sent: the client's own
    // only when that source speaks the client's protocol (a Chat source's `messages` is
    // a Responses client's `input`).
    let theirs = by.as_ref().is_some_and(|b| {
        call.targets.iter().any(|t| {
            t.protocol == call.inbound && *t.provider.id == *b.provider && t.model() == b.model
        })
    });
    let param = param.filter(|_| theirs);
    // Anthropic's own 529 (overloaded) is a 503 to every other client: theirs retry
    // the 5xx statuses they know, and some switch on 500, 502 and 503 alone.
    let status = match (call.inbound, status) {
        (Protocol::Anthropic, s) => s,
        (_, 529) => 503,
        (_, s) => s,
    };
    let (status, body) = match f.kind {
        FailKind::Context => (400, call.inbound.context_error_body(&message)),
        k => (
            status,
            call.inbound.error_body_coded(
                status,
                &message,
                code.as_deref(),
                k.field().map(Field::name).or(param.as_deref()),
            ),
        ),
    };
    let _ = out.respond_served(status, "application/json", &headers, by, &body);
    status
}

/// True when a surfaced body can go to the client as-is (its protocol's JSON).
pub(super) fn same_shape(call: &Call<'_>, content_type: &str) -> bool {
    call.targets.iter().all(|t| t.protocol == call.inbound) && content_type.contains("json")
}

/// Answers when every target failed.
pub(super) fn exhausted(
    call: &Call<'_>,
    failures: Vec<(String, Failure)>,
    attempts: usize,
    cooldown: &Cooldown,
    out: &mut ClientWriter,
) -> u16 {
    // The endpoint whose own error is shown, named in the answer's headers.
    fn by(label: &str, attempts: usize) -> ServedBy<'_> {
        let (provider, model) = label.split_once(':').unwrap_or((label, ""));
        ServedBy {
            provider,
            model,
            attempts,
        }
    }
    if failures.len() == 1 {
        let (label, f) = &failures[0];
        return match f.kind {
            // One target that answered: its own error is the most useful thing to show.
            k if k.source_said() || matches!(k, FailKind::Prepare(_)) => {
                surface(call, f, Some(by(label, attempts)), out)
            }
            _ => {
                let provider = label.split(':').next().unwrap_or(label);
                let err = Error::Upstream {
                    provider: provider.to_string(),
                    reason: f.reason.clone(),
                };
                // A source that did not answer in time is a gateway timeout, not a bad
                // answer: clients and dashboards tell the two apart.
                let status = if f.kind == FailKind::Timeout {
                    504
                } else {
                    502
                };
                let counted = [attempts_header(attempts)];
                respond_error(call.inbound, status, &err, &counted, out);
                status
            }
        };
    }
    // No endpoint answered and one could not fit the prompt: that is what the client
    // can act on (shorten or compact it), where a 502 listing every failure says "try
    // again" and the same prompt fails the same way.
    if let Some((label, f)) = failures.iter().find(|(_, f)| f.kind == FailKind::Context) {
        return surface(call, f, Some(by(label, attempts)), out);
    }
    // What the endpoints that were asked said decides what the whole is: one with no
    // key or login (a virtual model's hosted fallback the user has no key for) said
    // nothing, and left every rule below to a 502.
    let asked: Vec<FailKind> = failures
        .iter()
        .map(|(_, f)| f.kind)
        .filter(|k| *k != FailKind::Prepare(Unprepared::NoCredential))
        .collect();
    let all = |is: fn(FailKind) -> bool| !asked.is_empty() && asked.iter().all(|k| is(*k));
    // Retrying later can work when an endpoint was rate limited or out of capacity for
    // now: that is the answer, whatever the others said (a 500, a refused connection,
    // a model one lacks), since a 502 tells the client's retries nothing. Out of
    // capacity wins over a rate limit: the client is not sending too much, the sources
    // are full.
    let limited = |k: FailKind| k == FailKind::Status(429);
    let full = |k: FailKind| matches!(k, FailKind::Status(503 | 529));
    let any_overloaded = asked.iter().any(|k| full(*k));
    let any_rate_limited = !any_overloaded && asked.iter().any(|k| limited(*k));
    // No endpoint has the model: a 404 still, with what each said.
    let none_has_it = all(|k| k == FailKind::Status(404));
    // Nothing was sent: no target can take the request as it is (a field none of their
    // protocols carries), so the client has to change it. A 400, not a 502, and a
    // reason every target gave is said once.
    let none_can_take = !failures.is_empty()
        && failures
            .iter()
            .all(|(_, f)| matches!(f.kind, FailKind::Prepare(Unprepared::CannotExpress(_))));
    if none_can_take
        && failures
            .iter()
            .all(|(_, f)| f.reason == failures[0].1.reason)
    {
        return surface(call, &failures[0].1, None, out);
    }
    let status = match (any_rate_limited, any_overloaded, none_can_take, none_has_it) {
        (true, ..) => 429,
        (_, true, ..) => overloaded(call.inbound),
        (_, _, true, _) => 400,
        (.., true) => 404,
        _ => 502,
    };
    let mut headers = vec![attempts_header(attempts)];
    // When the first rate-limited or overloaded endpoint takes requests again: the
    // pause it asked for, or, for a rate limit that named none, what is left of its
    // cool-down (an overloaded one's is Routeplane's guess, not a time the source
    // gave). A pause another failure named (a 500's) is no promise of an answer.
    if (any_rate_limited || any_overloaded)
        && let Some(wait) = failures
            .iter()
            .filter(|(_, f)| limited(f.kind) || full(f.kind))
            .filter_map(|(label, f)| {
                f.retry_after
                    .or_else(|| limited(f.kind).then(|| cooldown.left(label)).flatten())
            })
            .min()
    {
        headers.push(("retry-after".to_string(), retry_after_secs(wait)));
    }
    let attempts: Vec<String> = failures
        .iter()
        .map(|(label, f)| match f.status {
            Some(s) => format!("{label} → {s} {}", f.reason),
            None => format!("{label} → {}", f.reason),
        })
        .collect();
    // The client's 400 names the field the first refusal named, as that one alone would.
    let param = (status == 400)
        .then(|| failures.iter().find(|(_, f)| f.status == Some(400)))
        .flatten()
        .and_then(|(_, f)| f.kind.field());
    let err = if attempts.is_empty() {
        Error::bad_request("no target to try")
    } else {
        Error::Exhausted {
            status,
            attempts,
            param,
        }
    };
    respond_error(call.inbound, err.status(), &err, &headers, out);
    err.status()
}

/// A protocol's status for "every source is overloaded": Anthropic's 529
/// (`overloaded_error`), the 503 every other client's retries know.
fn overloaded(inbound: Protocol) -> u16 {
    match inbound {
        Protocol::Anthropic => 529,
        _ => 503,
    }
}

/// [`crate::sse::ATTEMPTS`] for an error no one endpoint gave, which [`ServedBy`]
/// cannot name: how many upstream requests the failure took.
pub(super) fn attempts_header(attempts: usize) -> (String, String) {
    (crate::sse::ATTEMPTS.to_string(), attempts.to_string())
}

/// A wait as `Retry-After` says it: whole seconds, rounded up (a client that comes
/// back a fraction early is refused again), at least 1.
pub(super) fn retry_after_secs(wait: Duration) -> String {
    (wait.as_secs_f64().ceil() as u64).max(1).to_string()
}

/// Sends `err` as an error body in the client's protocol, with `status`.
pub fn respond_error(
    inbound: Protocol,
    status: u16,
    err: &Error,
    headers: &[(String, String)],
    out: &mut ClientWriter,
) {
    let body = inbound.error_body_coded(status, &err.to_string(), None, err.param());
    let _ = out.respond(status, "application/json", headers, &body);
}

/// The most of an upstream's words the log line's `said=` quotes for one endpoint.
const SAID_AT_MOST: usize = 200;

/// Notes what an endpoint that failed said in words of its own (a plan limit's 429,
/// a 5xx's message), for the log line's `said=`: `tried=` shows only its status, and
/// the operator needs its reason. Escaped and short, as the rescue's line quotes one.
pub(super) fn note_said(served: &mut super::Served, target: &Target, f: &Failure) {
    if f.kind.source_said() && !f.reason.is_empty() {
        let words = crate::log::printable(&f.reason, SAID_AT_MOST);
        served.said.push((target.label().to_string(), words));
    }
}

/// One word for an attempt that failed, for the log's `tried=`: its status, or what happened.
pub(super) fn short_reason(f: &Failure) -> String {
    match f.kind {
        FailKind::Status(s) => s.to_string(),
        FailKind::Context => format!("{}:context", f.status.unwrap_or(400)),
        FailKind::Filter => format!("{}:filter", f.status.unwrap_or(400)),
        FailKind::Foreign => format!("{}:foreign", f.status.unwrap_or(400)),
        FailKind::Unthinking => format!("{}:no_reasoning", f.status.unwrap_or(400)),
        FailKind::Unsupported(p) => format!("{}:no_{}", f.status.unwrap_or(400), p.name()),
        FailKind::Credential => format!("{}:credential", f.status.unwrap_or(400)),
        FailKind::Timeout => "timeout".into(),
        FailKind::EarlyEnd => "ended_early".into(),
        FailKind::TooLarge => "too_large".into(),
        FailKind::Malformed => "malformed".into(),
        FailKind::Prepare(Unprepared::NoCredential) => "no_credential".into(),
        FailKind::Prepare(Unprepared::RefreshFailed) => "refresh_failed".into(),
        FailKind::Prepare(Unprepared::CannotExpress(_)) => "cannot_express".into(),
        FailKind::Dropped(Net::Reset) | FailKind::Network(Net::Reset) => "reset".into(),
        FailKind::Dropped(_) => "closed".into(),
        FailKind::Network(Net::Refused) => "refused".into(),
        FailKind::Network(Net::Dns) => "dns".into(),
        FailKind::Network(_) => "network".into(),
    }
}

/// usage (issue 19): the status the upstream answered an attempt with, for the ledger
/// and the status page. `None` for a request that could not be prepared (no key, a
/// login whose refresh failed, a field its protocol cannot carry): it was never sent,
/// and its failure's status (401, 502, 400) is the client's, which shown there read
/// as the source's answer. Its reason says what failed.
pub(super) fn upstream_status(f: &Failure) -> Option<u16> {
    match f.kind {
        FailKind::Prepare(_) => None,
        _ => f.status,
    }
}

/// usage (issue 19): why an attempt failed, for the ledger and the status page. An
/// upstream's own error text may quote the request, so it is named by its category;
/// reasons Routeplane wrote (network, timeout, early end) are kept.
pub(super) fn trail_reason(f: &Failure) -> String {
    match f.kind {
        FailKind::Status(429) => "rate limited".into(),
        FailKind::Status(408) => "request timeout".into(),
        FailKind::Status(500..=599) => "server error".into(),
        FailKind::Status(_) => "refused the request".into(),
        FailKind::Context => "context window exceeded".into(),
        FailKind::Filter => "content filtered".into(),
        FailKind::Foreign => "reasoning from another account".into(),
        FailKind::Unthinking => "the model takes no reasoning".into(),
        FailKind::Unsupported(p) => format!("the model takes no `{}`", p.name()),
        FailKind::Credential => "credential refused for this use".into(),
        FailKind::Network(_)
        | FailKind::Dropped(_)
        | FailKind::Timeout
        | FailKind::EarlyEnd
        | FailKind::TooLarge
        | FailKind::Malformed
        | FailKind::Prepare(_) => f.reason.chars().take(120).collect(),
    }
}
