//! `${VAR}` expansion of the file's values: strings, and numbers or booleans that may be
//! written as strings holding a variable.
//!
//! An error never repeats what a variable or a `${…}` holds, nor a name that looks like a
//! key rather than a variable's: a key pasted in the wrong place must not reach a log.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

use super::Text;

/// Expands a string value; an unset variable is an error, for `config validate` as for
/// `serve`: a file that one passes and the other refuses helps nobody.
pub(super) fn expand_text<E: de::Error>(raw: &str) -> Result<Text, E> {
    from_env(raw).map(Text).map_err(unexpanded)
}

thread_local! {
    /// Set while a command that sends nothing upstream reads the file
    /// ([`super::load_unset_as_empty`]).
    static UNSET_AS_EMPTY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with an unset variable read as empty on this thread.
pub(super) fn unset_as_empty<T>(f: impl FnOnce() -> T) -> T {
    UNSET_AS_EMPTY.with(|u| u.set(true));
    let out = f();
    UNSET_AS_EMPTY.with(|u| u.set(false));
    out
}

/// Expands `s` from the environment; an unset variable is an error unless this thread
/// reads the file for a command that needs no key.
fn from_env(s: &str) -> Result<String, Unexpanded> {
    let lenient = UNSET_AS_EMPTY.with(std::cell::Cell::get);
    expand_with(s, |name| std::env::var(name).ok(), lenient)
}

/// The error for an unset `${NAME}`, naming it only when it is [`conventional`].
fn unset<E: de::Error>(name: &str) -> E {
    if !conventional(name) {
        return E::custom(UNSET_UNSHOWN);
    }
    // An empty value counts as unset, as the shell's `${VAR:-…}` has it; said as it is.
    let state = match std::env::var_os(name) {
        Some(v) if v.is_empty() => "is empty",
        _ => "is not set",
    };
    E::custom(format!(
        "environment variable `{name}` {state} (set it, or write `${{{name}:-default}}`)"
    ))
}

/// An unset variable's message under `keys:`, with its hint to export the variable
/// only: the general hint (`${NAME:-default}`) would make a client key a default
/// written in the file, one anybody who reads it, or guesses, can send. Any other
/// message is kept.
pub(super) fn client_key_unset(msg: String) -> String {
    let Some((name, rest)) = msg
        .strip_prefix("environment variable `")
        .and_then(|r| r.split_once('`'))
    else {
        return msg;
    };
    let state = rest.split(" (").next().unwrap_or(rest).trim();
    format!(
        "environment variable `{name}` {state} (export it before starting routeplane, e.g. \
         `export {name}=$(openssl rand -hex 32)`, and give clients the same value)"
    )
}

/// The error for an unset `${NAME}` whose name is not repeated. The error names its
/// place (the key holding the reference, line and column) when the parser reports it.
pub(super) const UNSET_UNSHOWN: &str = "`${…}` names an environment variable that is not set; its name is \
     not shown, as it looks like a key (a variable's name is upper-case letters, digits and \
     `_`): write the variable's name between the braces, e.g. `${GEMINI_API_KEY}`, and set it \
     (`export GEMINI_API_KEY=…`)";

/// The error for a `${…}` that holds no variable name. What it holds is not repeated:
/// the likeliest text between the braces is a key pasted there.
pub(super) const NOT_A_NAME: &str = "`${…}` must hold an environment variable's name (letters, digits \
     and `_`; what it holds is not shown, as it may be a key): put a key in a variable, e.g. \
     `export MY_KEY=…`, and write `${MY_KEY}`";

/// How an error of expansion is turned into a message.
fn unexpanded<E: de::Error>(e: Unexpanded) -> E {
    match e {
        Unexpanded::Unset(name) => unset(&name),
        Unexpanded::NotAName => E::custom(NOT_A_NAME),
    }
}

/// A number or a boolean in the file: written plainly, or as a string that may hold
/// `${VAR}` (`workers: ${WORKERS:-8}`), expanded and then read.
pub(super) trait Scalar: Sized {
    /// Which one, for the one visitor that reads them all.
    const KIND: Kind;
    /// The value, when `v` was read for [`Self::KIND`].
    fn from_read(v: Read) -> Option<Self>;
}

/// The kinds of [`Scalar`]. One visitor reads every kind, so the YAML reader is
/// instantiated once for them, not once per type (bench/results.md, "Binary size,
/// session 39").
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// `u64`.
    U64,
    /// `usize`.
    Usize,
    /// `f64`.
    F64,
    /// `bool`.
    Bool,
}

/// A [`Scalar`] as read, by its [`Kind`].
pub(super) enum Read {
    /// A `u64`.
    U64(u64),
    /// A `usize`.
    Usize(usize),
    /// An `f64`.
    F64(f64),
    /// A `bool`.
    Bool(bool),
}

impl Kind {
    /// What a wrong value is told it should be.
    fn wanted(self) -> &'static str {
        match self {
            Kind::U64 | Kind::Usize => "a whole number",
            Kind::F64 => "a number",
            Kind::Bool => "true or false",
        }
    }

    /// From an integer the parser read.
    fn int(self, v: i128) -> Option<Read> {
        match self {
            Kind::U64 => u64::try_from(v).ok().map(Read::U64),
            Kind::Usize => usize::try_from(v).ok().map(Read::Usize),
            Kind::F64 => Some(Read::F64(v as f64)),
            Kind::Bool => None,
        }
    }

    /// From text: written so, or what a variable gave.
    fn parse(self, v: &str) -> Option<Read> {
        match self {
            Kind::U64 => v.parse().ok().map(Read::U64),
            Kind::Usize => v.parse().ok().map(Read::Usize),
            Kind::F64 => v.parse().ok().map(Read::F64),
            Kind::Bool => v.parse().ok().map(Read::Bool),
        }
    }

    /// The message for a value of the wrong kind.
    fn wrong<E: de::Error>(self, got: impl fmt::Display) -> E {
        E::custom(format!("expected {}, got {got}", self.wanted()))
    }
}

impl Scalar for u64 {
    const KIND: Kind = Kind::U64;
    fn from_read(v: Read) -> Option<u64> {
        match v {
            Read::U64(v) => Some(v),
            _ => None,
        }
    }
}

impl Scalar for usize {
    const KIND: Kind = Kind::Usize;
    fn from_read(v: Read) -> Option<usize> {
        match v {
            Read::Usize(v) => Some(v),
            _ => None,
        }
    }
}

impl Scalar for f64 {
    const KIND: Kind = Kind::F64;
    fn from_read(v: Read) -> Option<f64> {
        match v {
            Read::F64(v) => Some(v),
            _ => None,
        }
    }
}

impl Scalar for bool {
    const KIND: Kind = Kind::Bool;
    fn from_read(v: Read) -> Option<bool> {
        match v {
            Read::Bool(v) => Some(v),
            _ => None,
        }
    }
}

/// Reads a [`Scalar`] field.
pub(super) fn scalar<'de, D: Deserializer<'de>, T: Scalar>(d: D) -> Result<T, D::Error> {
    let read = d.deserialize_any(T::KIND)?;
    // The visitor reads only `T::KIND`, so `from_read` has its value.
    T::from_read(read).ok_or_else(|| T::KIND.wrong::<D::Error>("another kind"))
}

impl<'de> Visitor<'de> for Kind {
    type Value = Read;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wanted())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Read, E> {
        match self {
            Kind::Bool => Ok(Read::Bool(v)),
            _ => Err(self.wrong(v)),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Read, E> {
        self.int(v.into()).ok_or_else(|| self.wrong(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Read, E> {
        self.int(v.into()).ok_or_else(|| self.wrong(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Read, E> {
        match self {
            Kind::F64 => Ok(Read::F64(v)),
            // YAML reads `1e6` as a float: a whole one is the number it writes.
            Kind::U64 | Kind::Usize if v.fract() == 0.0 && v.abs() < 1e19 => {
                self.int(v as i128).ok_or_else(|| self.wrong(v))
            }
            _ => Err(self.wrong(v)),
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Read, E> {
        let expanded = from_env(v).map_err(unexpanded)?;
        self.parse(expanded.trim()).ok_or_else(|| {
            if expanded == v {
                let told = serde_json::Value::from(v);
                match with_unit(v) {
                    true => self.wrong(format!("{told}{UNIT_HINT}")),
                    false => self.wrong(told),
                }
            } else {
                // What a variable holds may be a key put in the wrong place: only
                // what is written in the file is shown.
                self.wrong(format!(
                    "what {} gives (not shown: it comes from the environment)",
                    serde_json::Value::from(v)
                ))
            }
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Read, E> {
        Err(self.wrong("nothing"))
    }
}

/// Said after a number written with its unit, which the key's name already gives.
pub(super) const UNIT_HINT: &str = " (write the number alone: the key's name gives its unit)";

/// True for a number written with a unit after it (`60s`, `1.5 m`, `64MiB`).
pub(super) fn with_unit(v: &str) -> bool {
    let number = v
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .trim_end();
    number.len() < v.trim_end().len() && number.parse::<f64>().is_ok()
}

/// Reads an optional [`Scalar`] field (a missing key is `None` through `default`).
pub(super) fn some_scalar<'de, D: Deserializer<'de>, T: Scalar>(
    d: D,
) -> Result<Option<T>, D::Error> {
    scalar(d).map(Some)
}

/// Why a string could not be expanded.
#[derive(Debug, PartialEq, Eq)]
pub enum Unexpanded {
    /// `${NAME}` without a fallback, and `NAME` is unset or empty.
    Unset(String),
    /// `${…}` holds something other than a variable name (`[A-Za-z_][A-Za-z0-9_]*`).
    /// What it holds is kept out of the error: it is most often a key.
    NotAName,
}

/// Expands `${VAR}` and `${VAR:-fallback}`; the error is the first that cannot be.
pub fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Unexpanded> {
    expand_with(s, lookup, false)
}

/// [`expand`], with an unset variable read as empty when `unset_as_empty`.
fn expand_with(
    s: &str,
    lookup: impl Fn(&str) -> Option<String>,
    unset_as_empty: bool,
) -> Result<String, Unexpanded> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, fallback) = match inner.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (inner, None),
        };
        if !is_variable_name(name) {
            return Err(Unexpanded::NotAName);
        }
        match (lookup(name).filter(|v| !v.is_empty()), fallback) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(f)) => out.push_str(f),
            (None, None) if unset_as_empty => {}
            (None, None) => return Err(Unexpanded::Unset(name.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What an error about a value adds when `${VAR}`s in `written` (its text in the file)
/// gave it: the variables that are set, so that the user fixes the environment and not
/// the file. Named only when all are [`conventional`]; never what they hold. Empty when
/// none is set: the file's own text, or a `${VAR:-default}`'s default, is the value.
pub(super) fn read_from_env(written: &str) -> String {
    let (mut named, mut unnamed) = (Vec::new(), false);
    let mut rest = written;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            break;
        };
        let name = after[..end].split(":-").next().unwrap_or_default();
        rest = &after[end + 1..];
        // As `from_env` reads it: an empty value is unset, its default used.
        if !std::env::var(name).is_ok_and(|v| !v.is_empty()) {
            continue;
        }
        if !conventional(name) {
            unnamed = true;
        } else if !named.contains(&name) {
            named.push(name);
        }
    }
    let from = match named.as_slice() {
        _ if unnamed => "an environment variable".to_string(),
        [] => return String::new(),
        [one] => format!("the environment variable `{one}`"),
        [first @ .., last] => format!(
            "the environment variables `{}` and `{last}`",
            first.join("`, `")
        ),
    };
    format!("; the value comes from {from}, not the file")
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what a shell accepts as a variable's name.
fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `[A-Z_][A-Z0-9_]*`, a variable name as people write one: the only names an error
/// repeats. Some keys are valid names too (Google's `AIza…` keys mix upper and lower
/// case, digits, `_` and `-`), and a key pasted between the braces must not be printed.
pub(super) fn conventional(name: &str) -> bool {
    is_variable_name(name) && !name.bytes().any(|b| b.is_ascii_lowercase())
}

/// `[a-z_]+`, a config key as people write one (every key of the file is): the only
/// unknown key names an error repeats, besides one a letter or two from a known key (a
/// typo). Anything else, digits or `-` or upper case in it, may be a credential
/// pasted as a key (`sk-or-v1-…: 1`), as [`conventional`] has it for variable names.
pub(super) fn field_like(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}
