//! The failover table: the kinds of failure an attempt can have, and for each whether the
//! same endpoint is asked again and whether the next one is tried or the answer surfaced.

use super::Call;
use super::refused::Param;
use crate::error::{Error, Field};
use crate::protocol::Protocol;
use crate::upstream::Net;

/// The categories of `next_step`'s table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailKind {
    /// Nothing was answered (refused, DNS, TLS): which, as the HTTP client found it.
    Network(Net),
    /// The connection was reset ([`Net::Reset`]) or closed ([`Net::Closed`]) before
    /// the response head.
    Dropped(Net),
    /// The upstream answered with this HTTP status.
    Status(u16),
    /// The first content, the response head or the body did not arrive in time.
    Timeout,
    /// The body ended or broke before the first content / before it was complete.
    EarlyEnd,
    /// The answer (or one of its events) is over Routeplane's own limit
    /// (`limits.max_response_bytes`, `limits.max_event_bytes`): the endpoint works, the
    /// limit is ours, so it does not cool down.
    TooLarge,
    /// The answer is not its protocol's: an HTML page (a captive portal, a proxy's),
    /// an event stream or other bytes where a JSON answer should be, no body at all, or
    /// a redirect (3xx), which is never followed; or a translated answer (or stream
    /// event) no client could read (`Decoded::Unreadable`, `hub::fit_answer`), which the
    /// source would send again.
    Malformed,
    /// The upstream said the prompt does not fit the model's context window.
    Context,
    /// The upstream said a content filter held the answer back.
    Filter,
    /// The upstream could not read what another account or source made: reasoning
    /// another account encrypted (OpenAI's `invalid_encrypted_content`: failover moved a
    /// session between two accounts), or an item id it never stored.
    Foreign,
    /// The model takes no reasoning, which the request asked for (Ollama's "does not
    /// support thinking", OpenAI's "Unsupported parameter: 'reasoning_effort'").
    Unthinking,
    /// The model refused a parameter a request carried (OpenAI's reasoning models:
    /// "Unsupported parameter: 'stop'", "Unsupported value: 'temperature' does not
    /// support 0.2"), one Routeplane can leave out (`refused.rs`).
    Unsupported(Param),
    /// The source would not take its credential for this request: Anthropic's answer
    /// to a subscription login ("only authorized for use with Claude Code"). Another
    /// endpoint, with a key or a local server, can still answer.
    Credential,
    /// The request could not be prepared for this target, and was never sent.
    Prepare(Unprepared),
}

/// Why a request could not be prepared for a target, from the error that said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unprepared {
    /// A field its protocol cannot carry (the client's 400): the request field, when
    /// the error named one, for OpenAI's `param`.
    CannotExpress(Option<Field>),
    /// No key, or a login that is missing or refused for good (the client's 401).
    NoCredential,
    /// A subscription's refresh that failed for now (the client's 502).
    RefreshFailed,
}

impl Unprepared {
    /// The cause `e` names, `e` being an error from preparing a request.
    pub(super) fn of(e: &Error) -> Unprepared {
        match e {
            Error::RefreshFailed { .. } => Unprepared::RefreshFailed,
            Error::NoCredential { .. }
            | Error::LoginNeeded { .. }
            | Error::Unauthorized { .. }
            | Error::AuthRefused(_) => Unprepared::NoCredential,
            Error::Unsupported { field, .. } | Error::UntranslatableField { field, .. } => {
                Unprepared::CannotExpress(Some(*field))
            }
            _ => Unprepared::CannotExpress(None),
        }
    }
}

impl FailKind {
    /// The request field a failure to prepare the request named, for OpenAI's `param`.
    pub(super) fn field(self) -> Option<Field> {
        match self {
            FailKind::Prepare(Unprepared::CannotExpress(field)) => field,
            _ => None,
        }
    }

    /// Whether the source answered in words of its own that a client can be shown as
    /// they are (an error status, a context overflow, a filter…), rather than failing to
    /// answer at all.
    pub(super) fn source_said(self) -> bool {
        matches!(
            self,
            FailKind::Status(_)
                | FailKind::Context
                | FailKind::Filter
                | FailKind::Foreign
                | FailKind::Unthinking
                | FailKind::Unsupported(_)
                | FailKind::Credential
        )
    }
}

/// What to do after a failed attempt (once its retries are spent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
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
/// | outcome                                            | retried | step           |
/// |----------------------------------------------------|---------|----------------|
/// | 429, 500, 502, 503, 504, 529                       | yes     | next, cool down|
/// | reset or closed before the response head           | yes     | next, cool down|
/// | 408, other 5xx                                     | no      | next, cool down|
/// | a 2xx error body (OpenRouter, Anthropic)           | as its  | status's step  |
/// | refused, DNS, connect/first-byte/first-token timeout| no     | next, cool down|
/// | stream ends or breaks before its first content     | no      | next, cool down|
/// | answer or event before content over our own limit  | no      | next           |
/// | a 2xx whose body is not its protocol's (HTML, none)| no      | next, cool down|
/// | a translated answer or event no client could read  | no      | next, cool down|
/// | context window exceeded, content filtered          | no      | next           |
/// | credential refused for this use (Claude login)     | no      | next, cool down|
/// | the model takes no reasoning, which was asked      | once, without it | surface |
/// | a parameter the model refuses, on a translated request | once, without it | surface |
/// | request cannot be expressed for / no login at it   | no      | next           |
/// | request malformed in the client's own protocol     | no      | 400, no target |
/// | 404: this endpoint has no such model (or path)     | no      | next, cool down|
/// | 400, 401, 402, 403, 422, other 4xx                 | no      | surface        |
///
/// "Retried" is `retryable`: the same endpoint again, `failover.retries` times, before
/// the step is taken. A malformed request is found while its body is made, before any
/// endpoint is asked (`Outcome::Invalid`), so it never reaches this table. After
/// content has gone to the client a failure is a break, for `rescue.rs`. A client that
/// disconnects stops everything: found by a write, in a retry's pause, or after a
/// second of an upstream's silence while its answer is awaited (`upstream::Abandon`).
pub(super) fn next_step(kind: FailKind) -> Step {
    match kind {
        // A 404 is the endpoint's, not the request's: a model Ollama has not pulled, one
        // a provider retired, an `api_base` with a wrong path. Another endpoint may have it.
        FailKind::Status(404 | 408 | 429) | FailKind::Status(500..=599) => {
            Step::Next { cool: true }
        }
        FailKind::Network(_)
        | FailKind::Dropped(_)
        | FailKind::Timeout
        | FailKind::EarlyEnd
        | FailKind::Malformed
        | FailKind::Credential => Step::Next { cool: true },
        FailKind::Context | FailKind::Filter | FailKind::TooLarge | FailKind::Prepare(_) => {
            Step::Next { cool: false }
        }
        FailKind::Status(_)
        | FailKind::Foreign
        | FailKind::Unthinking
        | FailKind::Unsupported(_) => Step::Surface,
    }
}

/// [`next_step`] for this request. A legacy completion's 404 moves on without cooling
/// the endpoint down: a source without `/completions` (Mistral; OpenAI for its chat
/// models) serves the chat requests that share the endpoint well.
pub(super) fn next_step_of(call: &Call<'_>, kind: FailKind) -> Step {
    match (call.inbound, kind) {
        (Protocol::Completions, FailKind::Status(404)) => Step::Next { cool: false },
        _ => next_step(kind),
    }
}

/// True for the quick, transient failures worth asking the same endpoint again.
pub(super) fn retryable(kind: FailKind) -> bool {
    matches!(
        kind,
        FailKind::Status(429 | 500 | 502 | 503 | 504 | 529) | FailKind::Dropped(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_table() {
        let next = Step::Next { cool: true };
        let cases = [
            (FailKind::Status(408), next, false),
            (FailKind::Status(429), next, true),
            (FailKind::Status(500), next, true),
            (FailKind::Status(501), next, false),
            (FailKind::Status(503), next, true),
            (FailKind::Status(529), next, true),
            (FailKind::Network(Net::Refused), next, false),
            (FailKind::Network(Net::Dns), next, false),
            (FailKind::Dropped(Net::Reset), next, true),
            (FailKind::Dropped(Net::Closed), next, true),
            (FailKind::Timeout, next, false),
            (FailKind::EarlyEnd, next, false),
            (FailKind::TooLarge, Step::Next { cool: false }, false),
            (FailKind::Malformed, next, false),
            (FailKind::Context, Step::Next { cool: false }, false),
            (FailKind::Filter, Step::Next { cool: false }, false),
            (FailKind::Foreign, Step::Surface, false),
            (FailKind::Unthinking, Step::Surface, false),
            (FailKind::Unsupported(Param::Stop), Step::Surface, false),
            (FailKind::Credential, next, false),
            (FailKind::Status(400), Step::Surface, false),
            (FailKind::Status(401), Step::Surface, false),
            (FailKind::Status(402), Step::Surface, false),
            (FailKind::Status(403), Step::Surface, false),
            (FailKind::Status(404), next, false),
            (FailKind::Status(422), Step::Surface, false),
        ];
        for (kind, want, retried) in cases {
            assert_eq!(next_step(kind), want, "{kind:?}");
            assert_eq!(retryable(kind), retried, "{kind:?}");
        }
    }

    #[test]
    fn a_request_not_prepared_is_labelled_by_its_error_not_its_status() {
        let refresh = Error::RefreshFailed {
            provider: "anthropic".into(),
            reason: "refresh failed (503: down)".into(),
        };
        let no_key = Error::NoCredential {
            provider: "openai".into(),
            hint: String::new(),
        };
        let cases = [
            (refresh, Unprepared::RefreshFailed, 502),
            (no_key, Unprepared::NoCredential, 401),
            (
                Error::Unauthorized { config: None },
                Unprepared::NoCredential,
                401,
            ),
            (
                Error::UntranslatableField {
                    field: Field::N,
                    said: "above 1 needs a Chat source".into(),
                },
                Unprepared::CannotExpress(Some(Field::N)),
                400,
            ),
        ];
        for (e, want, status) in cases {
            assert_eq!(Unprepared::of(&e), want, "{e}");
            // The client's status is the error's own, as before.
            assert_eq!(e.status(), status, "{e}");
        }
    }
}
