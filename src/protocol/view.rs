//! What the relay reads of a stream event it copies to the client unchanged, read
//! without a `Value` tree.
//!
//! When client and upstream speak the same protocol, each event goes out as it came;
//! the relay still needs to know what it adds to the answer (for the first-token
//! commit, a later continuation's prefill, tool calls) and whether it finishes. Parsing
//! a 230-byte chat chunk into a `Value`, only to look at four fields, was half of the
//! ~29k instructions the event cost (callgrind). Each protocol's `delta` reads its
//! usual content event into a [`Delta`] with serde skipping the rest; any other event
//! is left to its decoder.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};

pub(super) use crate::body::Text;
use crate::sse::Event;

/// What a copied event adds to the answer.
#[derive(Debug, Default, PartialEq)]
pub struct Delta<'a> {
    /// Answer text.
    pub content: Option<Cow<'a, str>>,
    /// Reasoning (thinking) text.
    pub reasoning: Option<Cow<'a, str>>,
    /// It carries generated content: text, reasoning, a refusal or a tool call.
    pub has_content: bool,
    /// It carries a tool call.
    pub tool: bool,
    /// It carries a refusal.
    pub refusal: bool,
    /// It carries the answer's finish marker.
    pub finish: bool,
}

impl<'a> Delta<'a> {
    /// Text or reasoning alone: no tool call, no finish.
    pub(super) fn text(content: Option<Cow<'a, str>>, reasoning: Option<Cow<'a, str>>) -> Self {
        Delta {
            has_content: content
                .as_ref()
                .or(reasoning.as_ref())
                .is_some_and(|t| !t.is_empty()),
            content,
            reasoning,
            tool: false,
            refusal: false,
            finish: false,
        }
    }
}

/// The event's data read as `T`, if it is a JSON object that fits. An event whose
/// `event:` name is not among `kinds` is not read at all (its decoder reads it, once):
/// `kinds` empty for a protocol that does not name its events.
pub(super) fn object<'a, T: Deserialize<'a>>(ev: &'a Event, kinds: &[&str]) -> Option<T> {
    if let Some(name) = ev.event.as_deref()
        && !kinds.is_empty()
        && !kinds.contains(&name)
    {
        return None;
    }
    let data = ev.data.as_deref()?;
    // A derived struct would also take a JSON array, field by field.
    if !data.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(data).ok()
}

/// An event of the protocols that say what they are in `type` (Messages, Responses),
/// with its `delta`; serde skips the other fields unread.
#[derive(serde::Deserialize)]
pub(super) struct Typed<'a, D> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Text<'a>,
    pub(super) delta: Option<D>,
}

/// A key that is there, whatever its value (an `"error": null` is still an error event).
#[derive(Default)]
pub(super) struct Present(pub(super) bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// The first element of a JSON array, the rest skipped: no `Vec` to allocate.
pub(super) struct First<T>(pub(super) Option<T>);

impl<T> Default for First<T> {
    fn default() -> Self {
        First(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}
