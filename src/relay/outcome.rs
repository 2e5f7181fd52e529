//! How an attempt ended (an answer, a failure, a break after content) and the failures'
//! own words, cut and with the credentials sent masked.

use std::borrow::Cow;
use std::time::Duration;

use super::table::{FailKind, Unprepared};
use crate::error::{Error, Told};
use crate::route;
use crate::upstream::{self, Header, Net};

/// Why an attempt produced no answer for the client.
#[derive(Debug)]
pub(super) struct Failure {
    /// Upstream HTTP status, if one was received.
    pub(super) status: Option<u16>,
    /// Short reason for the log and the exhausted message.
    pub(super) reason: String,
    /// What kind of failure it is.
    pub(super) kind: FailKind,
    /// An upstream error body to surface (bytes, content type).
    pub(super) body: Option<(Vec<u8>, Cow<'static, str>)>,
    /// Upstream headers to surface with it.
    pub(super) headers: Vec<(String, String)>,
    /// The upstream asked for a pause (Retry-After, reset headers).
    pub(super) retry_after: Option<Duration>,
}

impl Failure {
    /// What the failure says of its server, for its cool-down.
    pub(super) fn failed(&self) -> route::Failed {
        match (self.kind, self.retry_after) {
            (FailKind::Status(429) | FailKind::Timeout, _) | (_, Some(_)) => route::Failed::Busy {
                retry_after: self.retry_after,
            },
            (FailKind::Network(Net::Refused), _) => route::Failed::Refused,
            _ => route::Failed::NotServing,
        }
    }
}

/// A committed stream that broke: what to tell the client if it cannot be continued.
#[derive(Debug)]
pub(super) struct Break {
    /// The message of the error event.
    pub(super) message: String,
    /// The status the error event carries.
    pub(super) status: u16,
    /// The failure is one `retryable` covers (reset, closed early, a 429/5xx event):
    /// the same endpoint is asked to continue first.
    pub(super) retry_same: bool,
    /// The HTTP status of the answer that broke, for the log's `tried=`.
    pub(super) upstream_status: u16,
    /// What the break cut when every tool call before it is whole
    /// (`Decoder::cut_after_calls`): `text` or `reasoning`, for the error's message.
    pub(super) cut_after_calls: Option<&'static str>,
}

/// How an attempt ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The client got an answer (complete, or a stream that ended with an error event).
    Answered,
    /// Nothing went to the client from this attempt; see the failure.
    Failed(Failure),
    /// The client's request is malformed in its own protocol (a `BadRequest` found while
    /// translating it): no target could take it, so nothing was sent and no target is
    /// blamed. The message is the client's 400.
    Invalid(Told),
    /// Content went out, then the stream broke; the client's stream is still open.
    Broken(Break),
    /// The client went away; stop.
    ClientGone,
    /// A stop's grace period ran out: the request ends now ([`super::stopped`]).
    Stopped,
}

impl Outcome {
    /// This outcome with each credential among the headers `sent` to the upstream as
    /// `***` wherever its words are: the failure's reason and error body, the break's
    /// message. Every attempt's outcome passes here once, where its headers were sent
    /// (`attempt.rs`), so every path an upstream's words take is covered: an error
    /// status's body, a 200 whose body is an error, an error event before or after
    /// content, a whole answer that could not be read. A copied stream's events are
    /// not looked at: an error event is never copied (its decoder reads it, for
    /// failover, and the client's error event is written from the message masked here),
    /// and an answer that quotes a key is the answer. An answer costs nothing here: it
    /// is looked at in place, not moved, and the masking is out of line.
    pub(super) fn mask_credentials(&mut self, sent: &[Header]) {
        if let Outcome::Failed(_) | Outcome::Broken(_) = self {
            self.mask_words(sent);
        }
    }

    /// [`Outcome::mask_credentials`] of a failure or a break: its words masked.
    #[cold]
    #[inline(never)]
    fn mask_words(&mut self, sent: &[Header]) {
        let mask = |text: &mut String| {
            if let Some(masked) = upstream::text_without_credentials(text, sent) {
                *text = masked;
            }
        };
        match self {
            Outcome::Failed(f) => {
                mask(&mut f.reason);
                if let Some((bytes, _)) = &mut f.body
                    && let Some(masked) = upstream::without_credentials(bytes, sent)
                {
                    *bytes = masked;
                }
            }
            Outcome::Broken(b) => mask(&mut b.message),
            _ => {}
        }
    }
}

/// An upstream's words cut to at most `max` characters, never inside a word long
/// enough to hold a credential: that one is left out whole, so that a key is either
/// all there (and [`Outcome::mask_credentials`] masks it) or not there at all.
pub(super) fn cut(text: &str, max: usize) -> String {
    let Some((at, _)) = text.char_indices().nth(max) else {
        return text.to_string();
    };
    let (head, tail) = text.split_at(at);
    if head.ends_with(char::is_whitespace) || tail.starts_with(char::is_whitespace) {
        return head.to_string();
    }
    let word_start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word_end = tail
        .find(char::is_whitespace)
        .map_or(text.len(), |i| at + i);
    if word_end - word_start < upstream::SHORTEST_CREDENTIAL {
        return head.to_string();
    }
    head[..word_start].trim_end().to_string()
}

/// A failure with no upstream body.
pub(super) fn fail(kind: FailKind, reason: impl Into<String>) -> Outcome {
    Outcome::Failed(Failure {
        status: match kind {
            FailKind::Status(s) => Some(s),
            _ => None,
        },
        reason: reason.into(),
        kind,
        body: None,
        headers: Vec::new(),
        retry_after: None,
    })
}

/// A request that could not be prepared for a target (`e` says why): never sent, and
/// `e`'s status is the client's should no other target answer.
#[cold]
pub(super) fn unprepared(e: Error) -> Outcome {
    Outcome::Failed(Failure {
        status: Some(e.status()),
        kind: FailKind::Prepare(Unprepared::of(&e)),
        reason: e.to_string(),
        body: None,
        headers: Vec::new(),
        retry_after: None,
    })
}

/// A whole answer over `limits.max_response_bytes`: as it came, or collected from a
/// stream (whose bytes are counted as they arrive, so memory stays bounded).
pub(super) fn too_large(limit: u64) -> Outcome {
    fail(
        FailKind::TooLarge,
        format!("the answer is larger than {limit} bytes (raise `limits.max_response_bytes`)"),
    )
}

/// A safety block moved past: the upstream answered 200 with nothing in it, which
/// `reason` says why. `answer` is what it sent (its bytes, a stream's up to the block,
/// and content type) and `headers` its headers: if no later endpoint answers, that is
/// the client's answer ([`super::Run::answer_filtered`]).
pub(super) fn held_back(
    reason: String,
    answer: Option<(Vec<u8>, Cow<'static, str>)>,
    headers: Vec<(String, String)>,
) -> Outcome {
    Outcome::Failed(Failure {
        status: Some(200),
        kind: FailKind::Filter,
        reason,
        body: answer,
        headers,
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Header;

    #[test]
    fn words_are_cut_where_no_credential_is_cut_in_two() {
        assert_eq!(cut("short", 200), "short");
        assert_eq!(cut("one two three", 7), "one two");
        assert_eq!(cut("one two three", 8), "one two ");
        // A word too short to be a key is cut as any other.
        assert_eq!(cut("one two three", 6), "one tw");
        // One that could be is left out whole: masked whole later, or not there at all.
        assert_eq!(cut("key sk-SECRET-123 refused", 12), "key");
        assert_eq!(cut("sk-SECRET-123", 5), "");
        assert_eq!(cut("ключ sk-SECRET-123", 8), "ключ");
    }

    #[test]
    fn a_failure_and_a_break_lose_the_credentials_sent() {
        let sent: Vec<Header> = vec![
            ("authorization".into(), "Bearer sk-SECRET-123".into()),
            ("x-title".into(), "sk-SECRET-123 as a title".into()),
        ];
        let f = Failure {
            status: Some(401),
            reason: "bad key sk-SECRET-123".into(),
            kind: FailKind::Status(401),
            body: Some((
                b"{\"error\": \"sk-SECRET-123\"}".to_vec(),
                "application/json".into(),
            )),
            headers: Vec::new(),
            retry_after: None,
        };
        let mut o = Outcome::Failed(f);
        o.mask_credentials(&sent);
        let Outcome::Failed(f) = o else {
            panic!("still a failure");
        };
        assert_eq!(f.reason, "bad key ***");
        assert_eq!(f.body.unwrap().0, b"{\"error\": \"***\"}");
        let b = Break {
            message: "sk-SECRET-123 revoked".into(),
            status: 502,
            retry_same: true,
            upstream_status: 200,
            cut_after_calls: None,
        };
        let mut o = Outcome::Broken(b);
        o.mask_credentials(&sent);
        let Outcome::Broken(b) = o else {
            panic!("still a break");
        };
        assert_eq!(b.message, "*** revoked");
    }
}
