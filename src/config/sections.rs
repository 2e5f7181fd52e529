//! The file's maps of known keys (the whole file, `limits:`, a provider …) read by one
//! table-driven visitor instead of a derived one each.
//!
//! Why: a derived `Deserialize` inlines the YAML reader's value-reading code once per
//! field and its map-reading code once per struct; for ten structs that was about 180 KiB
//! of the binary (bench/results.md, "Binary size, session 39"). Here every map goes
//! through [`SectionVisitor`] and every value through [`Kind`]'s one seed, so the reader
//! is instantiated once per value type, not once per field. Messages are the derived
//! ones: unknown keys go through the same `unknown_field`, and each value is read by
//! its type's own `Deserialize` (or [`scalar`]).
//!
//! A section's keys all have defaults: a key left out keeps its section's `Default`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::expand::{scalar, some_scalar};
use super::{
    AuthOverrides, Config, Detect, EndpointSpec, Entry, Failover, Limits, Log, ModelEntry, Named,
    ProtocolSpec, Provider, Text, Timeouts, Usage, VirtualModel,
};

/// Declares [`Kind`] (how a key's value is read) and [`Val`] (what it read) together,
/// with the one seed that reads every kind.
macro_rules! kinds {
    ($($kind:ident($ty:ty) = $read:expr;)*) => {
        /// How one key's value is read.
        #[derive(Clone, Copy)]
        enum Kind {
            $(
                #[doc = concat!("Read as `", stringify!($ty), "`.")]
                $kind,
            )*
        }

        /// A value read for one key, by its [`Kind`].
        enum Val {
            $(
                #[doc = concat!("A `", stringify!($ty), "`.")]
                $kind($ty),
            )*
        }

        impl<'de> DeserializeSeed<'de> for Kind {
            type Value = Val;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
                Ok(match self {
                    $(Kind::$kind => Val::$kind(($read)(d)?),)*
                })
            }
        }
    };
}

kinds! {
    ScalarU64(u64) = scalar;
    ScalarUsize(usize) = scalar;
    ScalarF64(f64) = scalar;
    SomeBool(Option<bool>) = some_scalar;
    SomeUsize(Option<usize>) = some_scalar;
    SomeF64(Option<f64>) = some_scalar;
    F64(f64) = f64::deserialize;
    U32(u32) = u32::deserialize;
    U64(u64) = u64::deserialize;
    Bool(bool) = bool::deserialize;
    OptBool(Option<bool>) = opt_bool;
    OptText(Option<Text>) = opt_text;
    Texts(Vec<Text>) = Vec::<Text>::deserialize;
    LogFormat(crate::log::Format) = crate::log::Format::deserialize;
    Limits(Limits) = Limits::deserialize;
    Timeouts(Timeouts) = Timeouts::deserialize;
    Failover(Failover) = Failover::deserialize;
    Detect(Detect) = Detect::deserialize;
    Usage(Usage) = Usage::deserialize;
    Log(Log) = Log::deserialize;
    Providers(Named<Provider>) = providers;
    Blank(Provider) = blank;
    Models(Named<VirtualModel>) = models;
    Model(VirtualModel) = VirtualModel::deserialize;
    Protocol(Option<Spanned<ProtocolSpec>>) = opt_protocol;
    SpannedProtocol(Spanned<ProtocolSpec>) = Spanned::<ProtocolSpec>::deserialize;
    Headers(Named<Text>) = headers;
    Header(Text) = Text::deserialize;
    ModelEntries(Vec<Spanned<ModelEntry>>) = Vec::<Spanned<ModelEntry>>::deserialize;
    Auth(Option<AuthOverrides>) = opt_auth;
    AuthSection(AuthOverrides) = AuthOverrides::deserialize;
    Endpoints(Vec<Spanned<EndpointSpec>>) = Vec::<Spanned<EndpointSpec>>::deserialize;
    Strategy(Option<Spanned<Text>>) = opt_strategy;
    SpannedText(Spanned<Text>) = Spanned::<Text>::deserialize;
}

/// A map of known keys, each read by its [`Kind`] and stored by [`Section::store`].
trait Section {
    /// The struct's name, as a derived `Deserialize` gives it to the reader.
    const NAME: &'static str;
    /// The keys, in the order they are documented.
    const KEYS: &'static [&'static str];
    /// How each of [`Self::KEYS`] is read.
    const KINDS: &'static [Kind];
    /// Keeps the value read for `KEYS[key]`.
    fn store(&mut self, key: usize, val: Val);
}

/// Implements [`Section`] for a struct from its keys and their kinds, and its
/// `Deserialize` through [`read`].
macro_rules! section {
    ($ty:ident { $($field:ident: $kind:ident),* $(,)? }) => {
        impl Section for $ty {
            const NAME: &'static str = stringify!($ty);
            const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];
            const KINDS: &'static [Kind] = &[$(Kind::$kind),*];
            fn store(&mut self, key: usize, val: Val) {
                // A key's value is always of its kind: the arm that does not match
                // cannot be reached.
                match (Self::KEYS.get(key).copied(), val) {
                    $((Some(stringify!($field)), Val::$kind(v)) => self.$field = v,)*
                    _ => {}
                }
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let mut out = $ty::default();
                read(d, &mut out)?;
                Ok(out)
            }
        }
    };
}

section!(Config {
    listen: OptText,
    skip_auth: SomeBool,
    keys: Texts,
    allowed_hosts: Texts,
    workers: SomeUsize,
    shutdown_grace_secs: SomeF64,
    limits: Limits,
    timeouts: Timeouts,
    failover: Failover,
    detect: Detect,
    usage: Usage,
    log: Log,
    providers: Providers,
    models: Models,
});

section!(Limits {
    max_body_bytes: ScalarU64,
    queue_wait_secs: ScalarF64,
    client_timeout_secs: ScalarF64,
    max_response_bytes: ScalarU64,
    max_event_bytes: ScalarUsize,
    idle_connections: ScalarUsize,
    reasoning_memory_bytes: ScalarUsize,
});

section!(Timeouts {
    connect_secs: ScalarF64,
    first_byte_secs: ScalarF64,
    idle_secs: ScalarF64,
    first_token_secs: F64,
});

section!(Failover {
    cooldown_secs: ScalarF64,
    retries: U32,
    backoff_ms: U64,
    max_retry_wait_secs: F64,
    max_rescues: U32,
});

section!(Detect {
    interval_secs: ScalarF64,
    timeout_secs: ScalarF64,
    hosted_interval_secs: F64,
    default_ports: Bool,
});

section!(Usage {
    enabled: Bool,
    path: OptText,
    max_bytes: U64,
});

section!(Log { format: LogFormat });

section!(Provider {
    api_base: OptText,
    api_key: OptText,
    api_protocol: Protocol,
    headers: Headers,
    models: ModelEntries,
    detect: SomeBool,
    auth: Auth,
    prefill: OptBool,
});

section!(AuthOverrides {
    authorize_url: OptText,
    token_url: OptText,
    device_url: OptText,
    device_token_url: OptText,
    device_verify_url: OptText,
    redirect_uri: OptText,
    client_id: OptText,
});

section!(VirtualModel {
    endpoints: Endpoints,
    strategy: Strategy,
});

/// Where `key` belongs when it is a key of another part of the file (`first_byte_secs`
/// written at the top level belongs under `timeouts:`), for the error at a key unknown
/// where it was written, under the key `parent` (`None` at the top level); `None` for a
/// key no other part of the file has. `detect` and `models` are both a provider's and
/// the top level's: `in_provider` (it was written under `providers:`) says which.
pub(super) fn home_of(key: &str, parent: Option<&str>, in_provider: bool) -> Option<&'static str> {
    const PROVIDER: &str = "in a provider's block under `providers:`";
    if in_provider && Provider::KEYS.contains(&key) {
        return Some(PROVIDER);
    }
    let homes: [(Option<&str>, &str, &[&str]); 9] = [
        (
            None,
            "at the top level, at the start of its line",
            Config::KEYS,
        ),
        (Some("limits"), "under `limits:`", Limits::KEYS),
        (Some("timeouts"), "under `timeouts:`", Timeouts::KEYS),
        (Some("failover"), "under `failover:`", Failover::KEYS),
        (Some("detect"), "under `detect:`", Detect::KEYS),
        (Some("usage"), "under `usage:`", Usage::KEYS),
        (Some("log"), "under `log:`", Log::KEYS),
        (Some(""), PROVIDER, Provider::KEYS),
        (
            Some("auth"),
            "under a provider's `auth:`",
            AuthOverrides::KEYS,
        ),
    ];
    (homes.into_iter())
        .find(|(name, _, keys)| *name != parent && keys.contains(&key))
        .map(|(_, home, _)| home)
}

/// Reads a map of `S`'s keys into `out`. Generic only over `S` here: the reader sees
/// one visitor type for every section.
fn read<'de, D: Deserializer<'de>, S: Section>(d: D, out: &mut S) -> Result<(), D::Error> {
    d.deserialize_struct(
        S::NAME,
        S::KEYS,
        SectionVisitor {
            name: S::NAME,
            keys: S::KEYS,
            kinds: S::KINDS,
            store: &mut |key, val| out.store(key, val),
        },
    )
}

/// Reads one section's map, as a derived visitor would, key by key.
struct SectionVisitor<'a> {
    /// The struct's name, for "expected struct …".
    name: &'static str,
    /// Its keys.
    keys: &'static [&'static str],
    /// How each key's value is read.
    kinds: &'static [Kind],
    /// Where a value read goes.
    store: &'a mut dyn FnMut(usize, Val),
}

impl<'de> Visitor<'de> for SectionVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "struct {}", self.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = 0u64;
        while let Some(key) = map.next_key_seed(Key(self.keys))? {
            if seen & (1 << key) != 0 {
                return Err(de::Error::duplicate_field(self.keys[key]));
            }
            seen |= 1 << key;
            let val = map.next_value_seed(self.kinds[key])?;
            (self.store)(key, val);
        }
        Ok(())
    }
}

/// Reads a key of a section into its index, refusing one the section does not have.
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.0
            .iter()
            .position(|k| *k == v)
            .ok_or_else(|| E::unknown_field(v, self.0))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        match usize::try_from(v) {
            Ok(i) if i < self.0.len() => Ok(i),
            _ => Err(E::invalid_value(
                de::Unexpected::Unsigned(v),
                &format!("field index 0 <= i < {}", self.0.len()).as_str(),
            )),
        }
    }
}

/// `providers:`, where a provider written with nothing under it (`ollama:`) is one with
/// every default, as `ollama: {}` is: the way people name a built-in source to use as is.
/// Only here: a virtual model or a header with nothing under it is a slip.
fn providers<'de, D: Deserializer<'de>>(d: D) -> Result<Named<Provider>, D::Error> {
    named(d, Kind::Blank, |v| match v {
        Val::Blank(p) => Some(p),
        _ => None,
    })
}

/// A provider under `providers:`, nothing written there being every default.
fn blank<'de, D: Deserializer<'de>>(d: D) -> Result<Provider, D::Error> {
    Option::<Provider>::deserialize(d).map(Option::unwrap_or_default)
}

/// `models:`, the virtual models.
fn models<'de, D: Deserializer<'de>>(d: D) -> Result<Named<VirtualModel>, D::Error> {
    named(d, Kind::Model, |v| match v {
        Val::Model(m) => Some(m),
        _ => None,
    })
}

/// A provider's `headers:`.
fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<Named<Text>, D::Error> {
    named(d, Kind::Header, |v| match v {
        Val::Header(t) => Some(t),
        _ => None,
    })
}

/// Reads a [`Named`] map whose values are all of `kind`, taken out of [`Val`] by
/// `take`: one visitor for every such map, as [`SectionVisitor`] is for sections.
fn named<'de, D: Deserializer<'de>, T>(
    d: D,
    kind: Kind,
    take: fn(Val) -> Option<T>,
) -> Result<Named<T>, D::Error> {
    let entries = d.deserialize_any(NamedVisitor(kind))?;
    let entries = entries.into_iter().filter_map(|e| {
        Some(Entry {
            name: e.name,
            line: e.line,
            col: e.col,
            value: take(e.value)?,
        })
    });
    Ok(Named(entries.collect()))
}

/// Reads a map kept in file order, each key with its place, each value by one [`Kind`].
struct NamedVisitor(Kind);

impl<'de> Visitor<'de> for NamedVisitor {
    type Value = Vec<Entry<Val>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_unit<E>(self) -> Result<Vec<Entry<Val>>, E> {
        Ok(Vec::new())
    }

    fn visit_none<E>(self) -> Result<Vec<Entry<Val>>, E> {
        Ok(Vec::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Entry<Val>>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value_seed(self.0)?;
            entries.push(Entry {
                name: key.value,
                line: key.referenced.line() as usize,
                col: key.referenced.column() as usize,
                value,
            });
        }
        Ok(entries)
    }
}

/// Reads an optional key's value: nothing or `null` is `None`, anything else is read by
/// `kind` and taken out of [`Val`] by `take`. One `deserialize_option` for every
/// optional key, as [`named`] is one visitor for every named map.
fn opt<'de, D: Deserializer<'de>, T>(
    d: D,
    kind: Kind,
    take: fn(Val) -> Option<T>,
) -> Result<Option<T>, D::Error> {
    Ok(d.deserialize_option(Opt(kind))?.and_then(take))
}

/// `prefill:`, a boolean or nothing.
fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    opt(d, Kind::Bool, |v| match v {
        Val::Bool(b) => Some(b),
        _ => None,
    })
}

/// A string or nothing.
fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Text>, D::Error> {
    opt(d, Kind::Header, |v| match v {
        Val::Header(t) => Some(t),
        _ => None,
    })
}

/// A provider's `api_protocol:`.
fn opt_protocol<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Spanned<ProtocolSpec>>, D::Error> {
    opt(d, Kind::SpannedProtocol, |v| match v {
        Val::SpannedProtocol(p) => Some(p),
        _ => None,
    })
}

/// A provider's `auth:`.
fn opt_auth<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AuthOverrides>, D::Error> {
    opt(d, Kind::AuthSection, |v| match v {
        Val::AuthSection(a) => Some(a),
        _ => None,
    })
}

/// A virtual model's `strategy:`.
fn opt_strategy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Spanned<Text>>, D::Error> {
    opt(d, Kind::SpannedText, |v| match v {
        Val::SpannedText(t) => Some(t),
        _ => None,
    })
}

/// Reads `None` for nothing or `null`, else the value by its [`Kind`], as serde's own
/// `Option` visitor does (its words included).
struct Opt(Kind);

impl<'de> Visitor<'de> for Opt {
    type Value = Option<Val>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("option")
    }

    fn visit_none<E>(self) -> Result<Option<Val>, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<Val>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Val>, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}
