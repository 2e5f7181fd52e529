//! Reasoning and item ids a source refused as another account's, known again on a
//! session's later turns.
//!
//! Failover that moves a session between two OpenAI accounts (a Codex plan and an API
//! key) leaves the first account's encrypted reasoning, and the ids of its items, in the
//! history the client sends on every later turn, and the second refuses each such
//! request (`invalid_encrypted_content`, "Item with id … not found"). The relay then asks
//! again without them (`attempt::Ask`). What it left out is remembered here, per
//! source, as fingerprints: a later request to that source that still carries one of
//! them leaves its older reasoning and its ids out from the first try, instead of paying
//! a refused request per turn. Nothing is remembered until a source refuses, so until
//! then no request is scanned.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::protocol::responses::KINDS;

/// Fingerprints kept per source; the oldest go first. Each turn adds the reasoning it
/// left out, so this is hundreds of turns of one session.
const PER_SOURCE: usize = 4096;

/// How OpenAI's encrypted reasoning begins (a Fernet token: version byte 0x80, then
/// the timestamp's zero bytes, in URL-safe base64), wherever a client carries it: a
/// Responses item's `encrypted_content`, a chat client's reasoning details.
const SEALED: &[u8] = b"\"gAAAA";

/// Fingerprints of the reasoning each source refused or was sent without.
#[derive(Debug, Default)]
pub struct Unreadable {
    by_source: Mutex<HashMap<String, Known>>,
    /// Anything is remembered: read without the lock by every Responses request.
    any: AtomicBool,
}

#[derive(Debug, Default)]
struct Known {
    prints: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Unreadable {
    /// Remembers what was left out of a request to `source`: its encrypted texts and
    /// item ids.
    pub fn note<'s>(&self, source: &str, sealed: impl IntoIterator<Item = &'s str>) {
        let mut sealed = sealed.into_iter().peekable();
        // Nothing left out: nothing to know, and no request need be scanned for it.
        if sealed.peek().is_none() {
            return;
        }
        let mut map = crate::sync::lock(&self.by_source);
        let known = map.entry(source.to_string()).or_default();
        for s in sealed {
            let print = fingerprint(s.as_bytes());
            if known.prints.insert(print) {
                known.order.push_back(print);
            }
        }
        while known.order.len() > PER_SOURCE {
            if let Some(old) = known.order.pop_front() {
                known.prints.remove(&old);
            }
        }
        self.any.store(true, Ordering::Release);
    }

    /// True when `body` carries reasoning or an item id `source` was sent without before.
    /// Out of line: only a Responses target asks it, and its searches would sit among the
    /// hot code of every attempt.
    #[inline(never)]
    pub fn known_in(&self, source: &str, body: &[u8]) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let map = crate::sync::lock(&self.by_source);
        let Some(known) = map.get(source) else {
            return false;
        };
        // A JSON string from just after its opening quote, if it is known.
        let known_at = |text: &[u8]| {
            memchr::memchr(b'"', text)
                .is_some_and(|end| known.prints.contains(&fingerprint(&text[..end])))
        };
        let sealed = memchr::memmem::find_iter(body, SEALED).any(|at| known_at(&body[at + 1..]));
        // Item ids: `"msg_…"`, `"fc_…"`.
        sealed
            || KINDS.iter().any(|kind| {
                memchr::memmem::find_iter(body, kind.as_bytes()).any(|at| {
                    let quoted = at > 0 && body[at - 1] == b'"';
                    quoted && body.get(at + kind.len()) == Some(&b'_') && known_at(&body[at..])
                })
            })
    }
}

/// FNV-1a, 64 bits: the texts are long and random, so collisions do not matter here
/// (one would cost a request its older reasoning, which the model reads no more).
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_left_out_is_known_in_later_bodies_of_that_source_only() {
        let u = Unreadable::default();
        let body = br#"{"input":[{"type":"reasoning","encrypted_content":"gAAAA-old"}]}"#;
        assert!(!u.known_in("openai", body), "nothing noted yet");
        u.note("openai", ["gAAAA-old"]);
        assert!(u.known_in("openai", body));
        assert!(!u.known_in("openai-codex", body), "another source");
        let details = br#"{"reasoning_details":[{"data":"gAAAA-old"}]}"#;
        assert!(
            u.known_in("openai", details),
            "wherever the client carries it"
        );
        let other = br#"{"input":[{"encrypted_content":"gAAAA-new"}]}"#;
        assert!(!u.known_in("openai", other));
        // An item's id, as another account made it.
        u.note("openai", ["msg_other"]);
        let id = br#"{"input":[{"type":"message","id":"msg_other"}]}"#;
        assert!(u.known_in("openai", id));
        let own = br#"{"input":[{"type":"message","id":"msg_own"}]}"#;
        assert!(!u.known_in("openai", own));
    }

    #[test]
    fn nothing_left_out_scans_nothing() {
        let u = Unreadable::default();
        u.note("openai", []);
        assert!(!u.any.load(Ordering::Acquire));
    }

    #[test]
    fn the_oldest_fingerprints_go_first() {
        let u = Unreadable::default();
        let texts: Vec<String> = (0..=PER_SOURCE).map(|i| format!("gAAAA-{i}")).collect();
        u.note("s", texts.iter().map(String::as_str));
        let body = |i: usize| format!(r#"{{"encrypted_content":"gAAAA-{i}"}}"#);
        assert!(!u.known_in("s", body(0).as_bytes()));
        assert!(u.known_in("s", body(1).as_bytes()));
        assert!(u.known_in("s", body(PER_SOURCE).as_bytes()));
    }
}
