//! The YAML parser's errors as messages a user can act on: the key that holds the
//! mistake, what was wanted there, and the usual cause, never a secret from the file.
//!
//! Also [`nearest`], the "did you mean" of every name a user can mistype.

use super::MODEL_ENTRY;
use super::expand::{
    NOT_A_NAME, UNIT_HINT, UNSET_UNSHOWN, client_key_unset, field_like, with_unit,
};

/// Keys whose values are credentials: client keys, an upstream key, header values.
/// An error inside one names the key and never what is written below it, not even a
/// map key (`- sk-…: x` makes the key a map key).
const SECRET_KEYS: [&str; 3] = ["keys", "api_key", "headers"];

/// The keys of a [`Provider`](super::Provider) block, as written in the file.
const PROVIDER_KEYS: [&str; 8] = [
    "api_base",
    "api_key",
    "api_protocol",
    "headers",
    "models",
    "detect",
    "auth",
    "prefill",
];

/// Rewrites a parser message so that it names the key and the kind of value wanted:
/// `invalid u64` at `workers: lots` becomes `workers: expected a whole number, got "lots"`.
///
/// The value written is repeated only where a number or true/false was wanted. Where a
/// list or map was wanted, a single value written there may be a key that belonged
/// inside (`keys: sk-…`, `openai: sk-…`), so only its kind is told. Inside a
/// [`SECRET_KEYS`] key, the message itself is reduced to one known to quote nothing.
pub(super) fn explain(text: &str, line: usize, col: usize, msg: &str) -> String {
    let src = text.lines().nth(line.wrapping_sub(1)).unwrap_or("");
    // The parser's words name no fix, and inside a secret key they were not told at all.
    let msg = match msg.starts_with("invalid trailing content after ") {
        true => QUOTE_TAIL,
        false => bracket_slip(msg, src, col).unwrap_or(msg),
    };
    let mut told = told(text, line, col, src, msg);
    if let [top, key] = &keys_around(text, line, col)[..]
        && top == "providers"
        && PROVIDER_KEYS.contains(&key.as_str())
    {
        // `ollama:` with nothing under it is a provider with defaults, so its keys
        // written without indentation become providers of their own.
        told.push_str(&format!(
            " (`{key}` is a key of a provider: indent it under the provider it belongs to)"
        ));
    }
    if msg.contains("tabs disallowed") {
        // The parser's words name YAML's rule, not what to change.
        told.push_str(" (YAML indents with spaces, never tabs: replace the tabs with spaces)");
    }
    if unquoted_variable_in_flow(src) {
        // YAML reads `{` as a map there: `[${KEY}]` fails with `expected ',' or ']'`.
        told.push_str(" (inside `[…]` or `{…}`, put a ${VAR} in quotes: `[\"${VAR}\"]`)");
    }
    told
}

/// Text after a value's closing quote (`"sk-abc"123`), told without the value.
const QUOTE_TAIL: &str = "text follows the closing quote: put the whole value inside the quotes";

/// The parser's bracket errors told with their fix, quoting no text (it may be a key):
/// an extra `]` (`keys: [a, b]]`), a `[` closed by `}`, and text after a closed `[…]`
/// or `{…}` (`keys: [a, b] c`), which the parser calls an expected key.
fn bracket_slip(msg: &str, src: &str, col: usize) -> Option<&'static str> {
    let before = src.get(..col.saturating_sub(1)).unwrap_or(src);
    Some(match msg {
        "misplaced bracket" => EXTRA_BRACKET,
        m if m.starts_with("mismatched bracket") => OTHER_BRACKET,
        m if m.ends_with("did not find expected key")
            && before.trim_end().ends_with([']', '}']) =>
        {
            AFTER_BRACKET
        }
        _ => return None,
    })
}

/// [`bracket_slip`]'s messages, which [`secret_safe`] keeps.
const EXTRA_BRACKET: &str = "an extra `]` or `}`: nothing is open here to close; remove it";
/// See [`EXTRA_BRACKET`].
const OTHER_BRACKET: &str = "a `[` closed by `}`, or `{` by `]`: close each with its own";
/// See [`EXTRA_BRACKET`].
const AFTER_BRACKET: &str = "text after a closing bracket: remove it or move it inside";

/// What YAML read a model name in a provider's `models:` list as, when it read it as
/// something else: unquoted, `on`, `no`, `y` (YAML 1.1's booleans, which serde-saphyr
/// keeps) and `7` are no strings. Elsewhere a name's type is known, and it stays text.
fn read_as(msg: &str) -> Option<&'static str> {
    let rest = msg.strip_prefix("invalid type: ")?;
    let (got, wanted) = rest.split_once(", expected ")?;
    if wanted != MODEL_ENTRY {
        return None;
    }
    match got.split_once(' ')?.0 {
        "boolean" => Some("a boolean"),
        "integer" | "floating" => Some("a number"),
        _ => None,
    }
}

/// How a list-valued key is written with one item, for a single value written there:
/// the value itself is not repeated (it may be a key), and a list of one is still
/// written in brackets.
fn list_form(key: &str) -> Option<&'static str> {
    Some(match key {
        "keys" => "`keys: [sk-...]`",
        "endpoints" => "`endpoints: [provider:model]`, one item per endpoint",
        "models" => "`models: [MODEL]`, one item per model",
        "allowed_hosts" => "`allowed_hosts: [NAME]`, one item per name",
        _ => return None,
    })
}

/// True when `rest` of a line is a key's colon with no value after it (`:`, `:  # x`).
fn nothing_after(rest: &str) -> bool {
    let after = rest.strip_prefix(':').map(str::trim_start);
    after.is_some_and(|a| a.is_empty() || a.starts_with('#'))
}

/// [`explain`]'s message, before any hint.
fn told(text: &str, line: usize, col: usize, src: &str, msg: &str) -> String {
    let keys = keys_around(text, line, col);
    // `keys:` under a provider is an unknown key, its name no secret: told as any other.
    let misplaced = |at: usize| msg.starts_with(&format!("unknown field `{}`", keys[at]));
    if let Some(at) = keys.iter().position(|k| SECRET_KEYS.contains(&k.as_str()))
        && !misplaced(at)
    {
        let safe = secret_safe(msg);
        let safe = if at == 0 && keys[0] == "keys" {
            client_key_unset(safe)
        } else if keys[at] == "api_key" {
            // `:-default` would send the text `default` as the key: an empty fallback
            // leaves the provider without one, as the README's example writes it.
            safe.replace(":-default}`)", ":-}` to start without that key)")
        } else {
            safe
        };
        let form = match (msg, list_form(&keys[at])) {
            ("expected sequence start", Some(form)) => {
                let got = if map_begins(text, line, col) {
                    "a map"
                } else {
                    "a single value"
                };
                format!(", got {got} (not shown: it may be a key); write {form}")
            }
            // `keys: [{key: sk-…}]`, or `- key: sk-…`: each item is a key itself.
            ("expected string scalar", Some(form)) if map_begins(text, line, col) => {
                format!(", got a map (not shown: it may be a key); write {form}")
            }
            _ => String::new(),
        };
        return format!("{}: {safe}{form}", keys[..=at].join("."));
    }
    // `a:` with nothing after it, its keys not indented under it: the parser points at
    // the colon, and `a` holds nothing.
    let nothing = src.get(col.wrapping_sub(1)..).is_some_and(nothing_after);
    let value = value_at(src, col).filter(|_| !nothing);
    // A list or a map where another kind of value was wanted. The parser places a map
    // at its first key (`detect:` over `  interval_secs: 5`) and a list where a map was
    // wanted at its first item: the error is the key's that holds it, not one inside it.
    // A list where anything else was wanted is placed at the key holding it.
    let list = msg == "expected mapping start" && list_at(src, col);
    // A list wanted and a key found where it begins (`models:` over `  gpt-4o: {}`): the
    // parser stops at that key, which is no value of its own.
    let map = msg.starts_with("invalid type: map, expected ")
        || (msg == "expected sequence start" && map_begins(text, line, col));
    let got = if list || msg.starts_with("invalid type: sequence, expected ") {
        Some("a list")
    } else if map {
        Some("a map")
    } else {
        None
    };
    let keys = if list || map {
        keys_holding(text, line, col).0
    } else {
        keys
    };
    let wanted = match msg {
        m if m.starts_with("invalid u") || m.starts_with("invalid i") => Some("a whole number"),
        "invalid floating point" => Some("a number"),
        "invalid boolean" => Some("true or false"),
        _ => None,
    };
    let single = if value.is_some() {
        ", got a single value"
    } else {
        ""
    };
    // The parser's own path to a line whose indentation is off is a guess: none is told.
    let mut pathless = false;
    let msg = match (wanted, &value, read_as(msg)) {
        (_, Some(v), Some(kind)) => {
            format!("`{v}` is {kind} to YAML, not a model name: write it in quotes, as `\"{v}\"`")
        }
        (Some(w), Some(v), _) if with_unit(v) => {
            format!("expected {w}, got {}{UNIT_HINT}", quoted(v))
        }
        (Some(w), Some(v), _) => format!("expected {w}, got {}", quoted(v)),
        _ if nothing && msg == "expected mapping start" => {
            "expected a map of keys, got nothing (indent the keys that belong to it under it)"
                .to_string()
        }
        _ if nothing && msg == "expected sequence start" => {
            "expected a list, got nothing (indent its items under it)".to_string()
        }
        _ if list => "expected a map of keys, got a list".to_string(),
        _ => match msg {
            "expected sequence start" => match list_form(keys.last().map_or("", |k| k)) {
                Some(form) if map => format!("expected a list, got a map; write {form}"),
                _ if map => "expected a list, got a map".to_string(),
                Some(form) if value.is_some() => {
                    format!("expected a list{single}; write {form}")
                }
                _ => format!("expected a list{single}"),
            },
            "expected mapping start" => format!("expected a map of keys{single}"),
            // The parser's words, and what usually causes them.
            "mapping values are not allowed in this context" => {
                "a key here is indented more than the keys beside it".to_string()
            }
            m if m.contains("did not find expected") => {
                pathless = true;
                "this line is indented differently from the lines beside it (a list item or a \
                 key one space off?)"
                    .to_string()
            }
            m if m.starts_with("duplicate mapping key") => {
                let key = m
                    .trim_start_matches("duplicate mapping key")
                    .trim_start_matches(':')
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim();
                format!("`{key}` is written twice at this level; keep one")
            }
            m if got.is_some() => {
                let wanted = m.split_once(", expected ").map_or(m, |(_, w)| w);
                let wanted = if wanted == "a sequence" {
                    "a list"
                } else {
                    wanted
                };
                format!("expected {wanted}, got {}", got.unwrap_or_default())
            }
            "data did not match any variant of untagged enum ProtocolSpec" => {
                "expected a protocol (`chat_completions`, `anthropic`, `responses` or \
                 `gemini`) or a list of `\"glob\": protocol` entries"
                    .to_string()
            }
            m => without_strings(m),
        },
    };
    // Messages that already name what is wrong by its key need no prefix.
    let named = msg.starts_with("unknown field") || msg.starts_with("unknown key");
    // `models:` indented under `providers:` is read as a provider named `models`.
    if keys.len() >= 2 && keys[0] == "providers" && keys[1] == "models" {
        let msg = if named {
            msg
        } else {
            format!("{}: {msg}", keys.join("."))
        };
        return format!(
            "{msg} (`models:` under `providers:` is read as a provider named `models`: \
             virtual models go under a top-level `models:`, at the start of its line, and \
             a provider's own models under its block, as `ollama: {{models: [llama3.1]}}`)"
        );
    }
    if named {
        let field = msg.split('`').nth(1).unwrap_or("");
        // `- llama3.1: 8b` under a provider's `models:`: a tag's colon with a space after
        // it makes a map. Told without the key, which may still be a key pasted there.
        let tag = if msg.contains(" in a model entry;") {
            "; a model name with a tag is written without a space after its colon \
             (`- llama3.1:8b`), or as `- id: NAME`"
        } else {
            ""
        };
        let parent = keys.len().checked_sub(2).map(|i| keys[i].as_str());
        let in_provider = keys.first().is_some_and(|k| k == "providers");
        let home = super::sections::home_of(field, parent, in_provider);
        match nearest_field(&msg) {
            Some(near) => format!("{msg}; did you mean `{near}`?"),
            // A key of another section (`first_byte_secs` at the top): where it goes.
            None if home.is_some() => {
                let home = home.unwrap_or_default();
                // A virtual model's own deadline is one of its endpoints'.
                let endpoint = match field {
                    "first_token_secs" => {
                        ", or in an endpoint: `{provider: ID, service_id: MODEL, \
                         first_token_secs: N}`"
                    }
                    _ => "",
                };
                format!("{msg}; `{field}` belongs {home}{endpoint}")
            }
            // `openai:` at the top, as a provider block written without its section.
            None if keys.len() == 1 && holds_provider_keys(text, line) => {
                format!("{msg}; a provider's block goes under `providers:`")
            }
            // Words (a comment's text, its `#` taken off with the lines around it) are
            // no key: short, apart; a `Bearer sk-…` pasted keeps its long word unshown.
            None if field.contains(' ') && field.split(' ').all(|w| w.len() < 20) => {
                format!("{msg}{tag}; a comment begins with `#`")
            }
            None if !field_like(field) => {
                let expected = msg
                    .split_once(", expected ")
                    .or(msg.split_once("; expected "));
                format!(
                    "unknown field whose name is not shown, as it looks like an API key (a key \
                     goes in a value: `api_key: …`, or under `headers:` or `keys:`){}{tag}",
                    expected.map_or(String::new(), |(_, e)| format!("; expected {e}"))
                )
            }
            None => format!("{msg}{tag}"),
        }
    } else if keys.is_empty() || pathless {
        msg
    } else {
        let hint = match (&keys[..], got) {
            ([top, _, key], Some("a map")) if top == "providers" && key == "detect" => {
                " (under a provider, `detect` is whether to ask it for its models; the probe \
                 interval is the top-level `detect.interval_secs`)"
                    .to_string()
            }
            ([top], Some("a list")) if top == "models" => {
                " (a virtual model is a key under `models:`, e.g. `smart: {endpoints: \
                 [ollama:llama3.1]}`)"
                    .to_string()
            }
            // `smart: ollama:llama3.1`, a list or one endpoint with no `endpoints:`.
            ([top, name], _) if top == "models" && (list || value.is_some()) => format!(
                " (a virtual model's endpoints go under its `endpoints:`, e.g. \
                 `{name}: {{endpoints: [ollama:llama3.1]}}`)"
            ),
            _ => String::new(),
        };
        format!("{}: {msg}{hint}", keys.join("."))
    }
}

/// The expected key an "unknown field `x`, expected one of a, b" message most likely
/// meant: one or two letters away (`provider` for `providers`, `api_bsae` for
/// `api_base`), or the same but for its unit; `None` when none is that near.
fn nearest_field(msg: &str) -> Option<&str> {
    let field = msg.split('`').nth(1)?;
    let (_, expected) = msg.split_once("expected ")?;
    let names = expected.trim_start_matches("one of ");
    let names: Vec<&str> = (names.split(", "))
        .flat_map(|n| n.split(" or "))
        .map(|n| n.trim_matches('`'))
        .collect();
    // Other tools' words for ours, too far to be typos (OpenAI's SDKs' `base_url`).
    let meant = SYNONYMS.iter().find(|(theirs, _)| *theirs == field);
    match meant {
        Some((_, ours)) => names.into_iter().find(|n| n == ours),
        // A key without its unit (`first_byte`) or in another (`backoff_secs`) is too
        // far from ours to be a typo, but means it.
        None => nearest(field, names.iter().copied()).or_else(|| {
            (names.into_iter()).find(|n| unitless(n) != *n && unitless(n) == unitless(field))
        }),
    }
}

/// A key's name without the unit it ends with (`first_byte` of `first_byte_secs`).
fn unitless(name: &str) -> &str {
    ["_secs", "_seconds", "_sec", "_ms", "_bytes"]
        .iter()
        .find_map(|unit| name.strip_suffix(unit))
        .unwrap_or(name)
}

/// Keys other tools name so (`base_url`, LiteLLM's and the OpenAI SDKs'), and ours.
const SYNONYMS: [(&str, &str); 8] = [
    ("base_url", "api_base"),
    ("baseURL", "api_base"),
    ("url", "api_base"),
    ("protocol", "api_protocol"),
    ("api_type", "api_protocol"),
    ("client_keys", "keys"),
    ("api_keys", "keys"),
    // A provider's own key, where client keys were written.
    ("keys", "api_key"),
];

/// Of `names`, the one nearest `asked` when it is one or two letters away (a typo),
/// else `None`; the first of equally near ones.
pub fn nearest<'a>(asked: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .map(|n| (edits(asked, n), n))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

/// The Levenshtein distance between two short names, a swap of two letters counting as
/// two.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// True when a line writes `${` unquoted after a `[` or `{`: in flow style.
fn unquoted_variable_in_flow(src: &str) -> bool {
    src.match_indices("${").any(|(i, _)| {
        let before = &src[..i];
        before.contains(['[', '{']) && !before.ends_with(['"', '\''])
    })
}

/// A parser message from inside a secret key, with nothing of the file in it: messages
/// known to quote nothing are kept, any other is cut to what was expected.
fn secret_safe(msg: &str) -> String {
    // Ours: they name a variable only once it is known to be a conventional name.
    if msg.starts_with("environment variable `") || msg == NOT_A_NAME || msg == UNSET_UNSHOWN {
        return msg.to_string();
    }
    match msg {
        "expected sequence start" => "expected a list".into(),
        "expected mapping start" => "expected a map of keys".into(),
        "invalid type: sequence, expected a map" => "expected a map, got a list".into(),
        "invalid type: map, expected a sequence" => "expected a list, got a map".into(),
        "expected string scalar"
        | QUOTE_TAIL
        | "mapping values are not allowed in this context"
        | "cannot deserialize tagged scalar into string"
        | "alias references unknown anchor"
        | EXTRA_BRACKET
        | OTHER_BRACKET
        | AFTER_BRACKET => msg.into(),
        m if m.starts_with("unclosed ") => m.into(),
        m if m.starts_with("duplicate mapping key") => "a key is written twice here".into(),
        // serde's `expected …` is the reader's own description, never the input.
        m => match m.rsplit_once("expected ") {
            Some((_, wanted)) => format!("expected {wanted}"),
            None => "cannot be read (what is written here is not shown: it may be a key)".into(),
        },
    }
}

/// serde's `invalid type: string "…", expected X` as `expected X, got a single value`,
/// and any other `string "…"` it quotes as `a string`: the string may be a key.
fn without_strings(msg: &str) -> String {
    const STR: &str = "string \"";
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(at) = rest.find(STR) {
        out.push_str(&rest[..at]);
        out.push_str("a string");
        // serde writes the string with `{:?}`: a quote inside it is escaped.
        let body = &rest[at + STR.len()..];
        let mut escaped = false;
        let end = body
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map_or(body.len(), |(i, _)| i + 1);
        rest = &body[end..];
    }
    out.push_str(rest);
    match out
        .strip_prefix("invalid type: a string, ")
        .and_then(|r| r.strip_prefix("expected "))
    {
        Some(wanted) => format!("expected {wanted}, got a single value"),
        None => out,
    }
}

/// The text with each line ended by `\n` alone. YAML also ends a line at `\r\n` and at
/// a lone `\r` (old Mac files), where `str::lines` does not: a file of those read as one
/// line, and the excerpts of an error ran on into the lines after it, keys included.
pub(super) fn lines_ended(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        text.into()
    }
}

/// The 1-based line and column of a dotted key path among a file's map keys, or
/// `(0, 0)` when it is not written there (a default, or a place inside a list).
pub(super) fn locate(text: &str, path: &str) -> (usize, usize) {
    let mut open: Vec<(usize, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if body.is_empty() || body.starts_with('#') || body.starts_with('-') {
            continue;
        }
        let Some((key, _)) = body.split_once(':') else {
            continue;
        };
        while open.last().is_some_and(|(at, _)| *at >= indent) {
            open.pop();
        }
        open.push((indent, key.trim()));
        let here = open.iter().map(|(_, k)| *k).collect::<Vec<_>>().join(".");
        if here == path {
            return (i + 1, indent + 1);
        }
    }
    (0, 0)
}

/// [`locate`] for a key written inside a flow map (`x: {api_base: "${X}"}`), which
/// `locate` reads no keys of: its 1-based line and column, and the text of its value
/// (up to the `,` or closing bracket after it, a `${…}` and quotes kept whole).
pub(super) fn locate_in_flow<'t>(text: &'t str, path: &str) -> Option<(usize, usize, &'t str)> {
    let want: Vec<&str> = path.split('.').collect();
    let last = want.last()?;
    for (i, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices(last) {
            let after = &line[at + last.len()..];
            let Some(value) = after.strip_prefix(':') else {
                continue;
            };
            // Not the tail of a longer key (`my_api_base:`), and the keys holding what
            // follows its colon are the path.
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                || keys_around(text, i + 1, at + last.len() + 2) != want
            {
                continue;
            }
            return Some((i + 1, at + 1, flow_value(value)));
        }
    }
    None
}

/// The start of `s` up to where a flow value ends: a `,`, `}` or `]` outside quotes and
/// `${…}`, or a comment.
fn flow_value(s: &str) -> &str {
    let (mut quote, mut var) = (None, false);
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'{') if i > 0 && bytes[i - 1] == b'$' => var = true,
            (None, b'}') if var => var = false,
            (None, b',' | b'}' | b']') => return &s[..i],
            (None, b'#') if i > 0 && bytes[i - 1] == b' ' => return &s[..i],
            _ => {}
        }
    }
    s
}

/// The keys whose values hold the place at 1-based `line`:`col`, outermost first, as
/// the text shows them: `limits.max_body_bytes` at `lots` in `  max_body_bytes: lots`
/// under `limits:`. Read from the keys of the less indented lines above, those still
/// open on the line before `col` (block or flow style), and a key written at `col`.
pub(super) fn keys_around(text: &str, line: usize, col: usize) -> Vec<String> {
    let (mut keys, at) = keys_holding(text, line, col);
    keys.extend(at);
    keys
}

/// [`keys_around`] apart: the keys whose values hold the place, and a key written right
/// at it, which belongs inside a map that begins there (`interval_secs` of
/// `detect:` over `  interval_secs: 5`, when `detect` is refused a map).
fn keys_holding(text: &str, line: usize, col: usize) -> (Vec<String>, Option<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(src) = lines.get(line.wrapping_sub(1)) else {
        return (Vec::new(), None);
    };
    let indent = |l: &str| l.len() - l.trim_start_matches([' ', '-']).len();
    let mut outer = Vec::new();
    let mut level = indent(src);
    for above in lines[..line - 1].iter().rev() {
        if level == 0 {
            break;
        }
        let body = above.trim_start_matches([' ', '-']);
        if body.is_empty() || body.starts_with('#') || indent(above) >= level {
            continue;
        }
        outer.push(open_keys(above).into_iter().map(|(_, k)| k));
        level = indent(above);
    }
    let mut cut = src.len().min(col.saturating_sub(1));
    while !src.is_char_boundary(cut) {
        cut -= 1;
    }
    // At the colon of `a:` with nothing after it, the error is about `a`'s value.
    if nothing_after(&src[cut..]) {
        cut += 1;
    }
    let (before, at) = src.split_at(cut);
    let mut keys: Vec<String> = outer.into_iter().rev().flatten().collect();
    keys.extend(open_keys(before).into_iter().map(|(_, k)| k));
    // A key that starts right at `col`: the error is about its whole value.
    let start = at.len() - at.trim_start_matches([' ', '-']).len();
    let at_key = open_keys(at)
        .into_iter()
        .find(|(i, _)| *i == start)
        .map(|(_, k)| k);
    // A line cut inside its key (`  a` of `  a:`) opens no key.
    keys.retain(|k| !k.is_empty());
    (keys, at_key.filter(|k| !k.is_empty()))
}

/// True when the key at the start of 1-based `line` holds a provider block's keys, on
/// its line (`ollama: {models: [m]}`) or indented under it (`  api_key: …`).
fn holds_provider_keys(text: &str, line: usize) -> bool {
    let mut lines = text.lines().skip(line.saturating_sub(1));
    let first = lines
        .next()
        .and_then(|l| l.split_once(':'))
        .map_or("", |(_, v)| v);
    let below = lines.take_while(|l| l.trim().is_empty() || l.starts_with([' ', '#']));
    std::iter::once(first).chain(below).any(|l| {
        l.split(['{', ',']).any(|piece| {
            let piece = piece.trim_start();
            (PROVIDER_KEYS.iter())
                .any(|k| piece.strip_prefix(k).is_some_and(|r| r.starts_with(':')))
        })
    })
}

/// The 1-based line and column of the first `[` or `{` that nothing closes
/// (`providers: [`), and the bracket: the parser may first refuse what it opens (a list
/// where a map is wanted) and never reach the end that shows the cause. `None` while a
/// quote is left open: the parser's own message is about that.
pub(super) fn unclosed(text: &str) -> Option<(usize, usize, u8)> {
    let mut open = Vec::new();
    let mut quote = 0;
    // The indentation of the line a block scalar (`|`, `>`) began on: its text is skipped.
    let mut block = None;
    for (i, line) in text.lines().enumerate() {
        let b = line.as_bytes();
        let indent = b.iter().take_while(|&&c| c == b' ').count();
        match block {
            Some(at) if indent == b.len() || indent > at => continue,
            _ => block = None,
        }
        // Where a value may begin: a quote or bracket there opens one.
        let mut start = true;
        let mut j = 0;
        while j < b.len() {
            let c = b[j];
            // Byte by byte: every character that matters here is ASCII.
            let next = b.get(j + 1).copied().unwrap_or(b' ');
            let spaced = next == b' ' || next == b'\t';
            j += 1;
            if quote != 0 {
                if (c == b'\\' && quote == b'"') || (c == b'\'' && quote == c && next == c) {
                    j += 1;
                } else if c == quote {
                    quote = 0;
                }
                continue;
            }
            match c {
                b' ' | b'\t' => {}
                b'#' if j == 1 || matches!(b[j - 2], b' ' | b'\t') => break,
                b'"' | b'\'' if start => (quote, start) = (c, false),
                b'[' | b'{' if start => open.push((i + 1, j, c)),
                b']' | b'}' if !open.is_empty() => (_, start) = (open.pop(), false),
                b',' if !open.is_empty() => start = true,
                b':' if spaced || (!open.is_empty() && b",[]{}".contains(&next)) => start = true,
                b'-' if start && spaced => {}
                b'|' | b'>' if start && open.is_empty() => {
                    block = Some(indent);
                    break;
                }
                _ => start = false,
            }
        }
    }
    open.first().copied().filter(|_| quote == 0)
}

/// True when a map begins at 1-based `line`:`col`: a key written there, or a `{`.
fn map_begins(text: &str, line: usize, col: usize) -> bool {
    let src = text.lines().nth(line.wrapping_sub(1)).unwrap_or("");
    keys_holding(text, line, col).1.is_some()
        || src
            .get(col.wrapping_sub(1)..)
            .is_some_and(|r| r.starts_with('{'))
}

/// True when a list begins at 1-based `col` of a line: `[`, a `- ` item, or the first
/// item's value just after its `-`.
fn list_at(src: &str, col: usize) -> bool {
    let Some(before) = src.get(..col.saturating_sub(1)) else {
        return false;
    };
    let rest = &src[before.len()..];
    rest.starts_with('[')
        || rest == "-"
        || rest.starts_with("- ")
        || (before.contains('-') && before.chars().all(|c| c == ' ' || c == '-'))
}

/// The map keys whose values are still open at the end of `s` (a line, or its start),
/// each with the byte offset it starts at: `a:` gives `a`; `a: {b: 1, c: [` gives `a`
/// and `c`. Scalars are skipped, quoted or not.
fn open_keys(s: &str) -> Vec<(usize, String)> {
    // `None` marks an open `{` or `[`.
    let mut open: Vec<Option<(usize, String)>> = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let at = s.len() - rest.len();
        let Some(c) = rest.chars().next() else { break };
        match c {
            '#' => break,
            '{' | '[' => {
                open.push(None);
                rest = &rest[1..];
            }
            '}' | ']' => {
                while let Some(Some(_)) = open.pop() {}
                rest = &rest[1..];
            }
            ',' => {
                while let Some(Some(_)) = open.last() {
                    open.pop();
                }
                rest = &rest[1..];
            }
            '-' if rest.len() == 1 || rest[1..].starts_with([' ', '\t']) => rest = &rest[1..],
            '"' | '\'' => {
                let body = &rest[1..];
                let (word, after) = match body.find(c) {
                    Some(end) => (&body[..end], &body[end + 1..]),
                    None => (body, ""),
                };
                rest = after;
                if let Some(after) = rest.trim_start().strip_prefix(':') {
                    open.push(Some((at, word.to_string())));
                    rest = after;
                }
            }
            _ => {
                // A plain scalar ends at `: `, a flow separator or a comment.
                let end = rest
                    .char_indices()
                    .find(|&(i, ch)| {
                        let next = rest[i + ch.len_utf8()..].chars().next();
                        (ch == ':' && next.is_none_or(|n| " \t,}]".contains(n)))
                            || ",}]".contains(ch)
                            || (ch == '#' && rest[..i].ends_with([' ', '\t']))
                    })
                    .map_or(rest.len(), |(i, _)| i);
                let word = rest[..end].trim();
                rest = &rest[end..];
                if let Some(after) = rest.strip_prefix(':') {
                    open.push(Some((at, word.to_string())));
                    rest = after;
                }
            }
        }
    }
    open.into_iter().flatten().collect()
}

/// The scalar that starts at 1-based `col` of a line, up to a comment or a flow separator.
fn value_at(line: &str, col: usize) -> Option<String> {
    let rest = line.get(col.checked_sub(1)?..)?;
    let end = [" #", ",", "}", "]"]
        .iter()
        .filter_map(|stop| rest.find(stop))
        .min()
        .unwrap_or(rest.len());
    let v = rest[..end].trim();
    (!v.is_empty() && !v.starts_with(['{', '['])).then(|| v.to_string())
}

/// A value as the file wrote it, in double quotes unless it already has quotes.
fn quoted(v: &str) -> String {
    if v.starts_with(['"', '\'']) {
        v.to_string()
    } else {
        format!("\"{v}\"")
    }
}

/// The parser's message without its own "error: line N column M:" prefix or
/// "at line N, column M" suffix: the error names its place once, as `path:line:col`.
pub(super) fn bare_message(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let mut msg = match first.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((_, msg)) => msg,
        None => first,
    };
    while let Some(i) = msg.rfind(" at line ") {
        let tail = &msg[i + " at line ".len()..];
        let place = tail.split_once(", column ").is_some_and(|(l, c)| {
            l.bytes().all(|b| b.is_ascii_digit()) && c.bytes().all(|b| b.is_ascii_digit())
        });
        if !place {
            break;
        }
        msg = &msg[..i];
    }
    msg.to_string()
}
