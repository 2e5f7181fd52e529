//! `api_protocol:` read by one hand-written visitor, as the untagged enum it replaced
//! read it: a protocol, or a list of `"glob": protocol` maps.
//!
//! Why: `#[serde(untagged)]` buffers the value in serde's `Content` and reads it again
//! through `ContentRefDeserializer`, instantiating the YAML reader and serde's buffer
//! code for every type inside (bench/results.md, "Binary size, session 49"). One
//! visitor here reads the value, each list entry and each string of an entry, so the
//! reader is instantiated once. What it accepts is what the untagged enum accepted
//! (strings only, `${VAR}` expanded, a null entry an empty map) and every refusal is
//! its one message, which `explain.rs` words for people.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::expand::expand_text;
use super::{Entry, Named, ProtocolSpec, Text};

/// The untagged enum's message for a value that is neither shape.
const NO_MATCH: &str = "data did not match any variant of untagged enum ProtocolSpec";

impl<'de> Deserialize<'de> for ProtocolSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ProtocolSpec, D::Error> {
        match d.deserialize_any(Shape::Spec)? {
            Got::Spec(spec) => Ok(spec),
            _ => Err(de::Error::custom(NO_MATCH)),
        }
    }
}

/// What is being read: the value, one entry of its list, or a string of an entry.
#[derive(Clone, Copy)]
enum Shape {
    /// `api_protocol:`'s value.
    Spec,
    /// A `- "glob": protocol` entry.
    Entries,
    /// A glob or a protocol.
    Str,
}

/// What a [`Shape`] read; `Bad` when it is not of that shape (the whole value is then
/// refused, once the rest of it is read, as the untagged enum read all of it first).
enum Got {
    /// The value.
    Spec(ProtocolSpec),
    /// An entry.
    Entries(Named<Text>),
    /// A string.
    Str(String),
    /// Not of the shape read.
    Bad,
}

impl Shape {
    /// A value not of this shape: refused at once for the whole value, noted for a part.
    fn other<E: de::Error>(self) -> Result<Got, E> {
        match self {
            Shape::Spec => Err(E::custom(NO_MATCH)),
            _ => Ok(Got::Bad),
        }
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = Got;

    // serde's buffer's own words, for a value it could not take either.
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Got, E> {
        match self {
            Shape::Spec => match expand_text::<E>(v) {
                Ok(t) => Ok(Got::Spec(ProtocolSpec::One(t))),
                Err(_) => self.other(),
            },
            Shape::Str => Ok(Got::Str(v.to_owned())),
            Shape::Entries => self.other(),
        }
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Got, E> {
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => self.other(),
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Got, E> {
        self.other()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Got, E> {
        self.other()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Got, E> {
        self.other()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Got, E> {
        self.other()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Got, E> {
        match self {
            Shape::Entries => Ok(Got::Entries(Named::default())),
            _ => self.other(),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Got, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Got, A::Error> {
        let Shape::Spec = self else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return self.other();
        };
        let (mut list, mut bad) = (Vec::new(), false);
        while let Some(got) = seq.next_element_seed(Shape::Entries)? {
            match got {
                Got::Entries(entries) => list.push(entries),
                _ => bad = true,
            }
        }
        if bad {
            return self.other();
        }
        Ok(Got::Spec(ProtocolSpec::Patterns(list)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Got, A::Error> {
        let Shape::Entries = self else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return self.other();
        };
        let (mut entries, mut bad) = (Vec::new(), false);
        while let Some(key) = map.next_key_seed(Shape::Str)? {
            let value = map.next_value_seed(Shape::Str)?;
            match (key, value) {
                (Got::Str(name), Got::Str(value)) => match expand_text::<A::Error>(&value) {
                    Ok(value) => entries.push(Entry {
                        name,
                        line: 0,
                        col: 0,
                        value,
                    }),
                    Err(_) => bad = true,
                },
                _ => bad = true,
            }
        }
        if bad {
            return self.other();
        }
        Ok(Got::Entries(Named(entries)))
    }
}

impl<'de> de::DeserializeSeed<'de> for Shape {
    type Value = Got;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Got, D::Error> {
        d.deserialize_any(self)
    }
}
