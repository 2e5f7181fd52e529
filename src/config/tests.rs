//! `${VAR}` expansion, parse errors and their messages, over small vocabularies.

use super::expand::{UNSET_UNSHOWN, conventional};
use super::explain::keys_around;
use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "KEY" => Some("sk-1".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn expansion_over_a_small_vocabulary() {
    let cases = [
        ("plain", Ok("plain")),
        ("${KEY}", Ok("sk-1")),
        ("a${KEY}b${KEY}", Ok("ask-1bsk-1")),
        ("${UNSET:-dflt}", Ok("dflt")),
        ("${EMPTY:-dflt}", Ok("dflt")),
        ("${KEY:-dflt}", Ok("sk-1")),
        ("${UNSET:-}", Ok("")),
        ("$KEY {KEY}", Ok("$KEY {KEY}")),
        ("${unterminated", Ok("${unterminated")),
        ("${UNSET}", Err(Unexpanded::Unset("UNSET".into()))),
        ("x ${EMPTY}", Err(Unexpanded::Unset("EMPTY".into()))),
        ("${_K1}", Err(Unexpanded::Unset("_K1".into()))),
        ("${sk-1}", Err(Unexpanded::NotAName)),
        ("${sk-1:-dflt}", Err(Unexpanded::NotAName)),
        ("${KEY.x}", Err(Unexpanded::NotAName)),
        ("${1KEY}", Err(Unexpanded::NotAName)),
        ("${}", Err(Unexpanded::NotAName)),
        ("${ KEY}", Err(Unexpanded::NotAName)),
    ];
    for (input, want) in cases {
        let got = expand(input, env);
        assert_eq!(got, want.map(String::from), "input {input}");
    }
}

#[test]
fn unknown_key_names_line_column_and_expected_keys() {
    let (line, col, msg) = parse("providers:\n  ollama:\n    api_bsae: x\n").unwrap_err();
    assert_eq!((line, col), (3, 5));
    assert!(
        msg.starts_with("unknown field `api_bsae`, expected one of"),
        "{msg}"
    );
    assert!(msg.contains("api_base"), "{msg}");
    assert!(msg.ends_with("; did you mean `api_base`?"), "{msg}");
    let (_, _, msg) = parse("provider:\n  x: 1\n").unwrap_err();
    assert!(msg.ends_with("; did you mean `providers`?"), "{msg}");
    // Nothing near: no guess.
    let (_, _, msg) = parse("colour: red\n").unwrap_err();
    assert!(!msg.contains("did you mean"), "{msg}");
}

#[test]
fn unset_variable_is_an_error_at_its_line() {
    let text = "# ${IN_A_COMMENT} is never looked up\nproviders:\n  x:\n    api_key: \"${ROUTEPLANE_TEST_UNSET_VAR}\"\n";
    let (line, _, msg) = parse(text).unwrap_err();
    assert_eq!(line, 4);
    assert!(
        msg.contains("`ROUTEPLANE_TEST_UNSET_VAR` is not set"),
        "{msg}"
    );
}

#[test]
fn only_a_conventional_unset_name_is_repeated() {
    for name in ["GEMINI_API_KEY", "_K1", "K"] {
        assert!(conventional(name), "{name}");
    }
    for name in [
        "AIzaSyFakeKey0123456789abcdefghijkl",
        "my_key",
        "Key",
        "sk-1",
        "1KEY",
        "",
    ] {
        assert!(!conventional(name), "{name}");
    }
    // In a key's place and elsewhere, the error names the key that holds it.
    for (text, want) in [
        (
            "providers:\n  x:\n    api_key: ${AIzaSyFakeKey0123456789abcdefghijkl}\n",
            (3, 14, "providers.x.api_key"),
        ),
        (
            "providers:\n  x:\n    api_base: http://${routeplane_test_unset}/v1\n",
            (3, 15, "providers.x.api_base"),
        ),
    ] {
        let (line, col, msg) = parse(text).unwrap_err();
        assert_eq!((line, col), (want.0, want.1), "{text}");
        assert_eq!(msg, format!("{}: {UNSET_UNSHOWN}", want.2), "{text}");
    }
}

#[test]
fn empty_and_comment_only_files_are_valid() {
    for text in ["", "# nothing\n", "providers:\n"] {
        let r = parse(text);
        assert!(r.is_ok(), "{text:?}: {:?}", r.err());
    }
}

#[test]
fn providers_keep_file_order_and_both_endpoint_spellings() {
    let text = "providers:\n  zed: {}\n  alpha: {}\nmodels:\n  smart:\n    endpoints:\n      - zed:m1\n      - {provider: alpha, service_id: m2}\n";
    let c = parse(text).unwrap();
    let names: Vec<_> = c.providers.0.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["zed", "alpha"]);
    let eps: Vec<_> = c.models.0[0]
        .value
        .endpoints
        .iter()
        .map(|e| e.value.parts().unwrap())
        .collect();
    assert_eq!(eps, [("zed", "m1"), ("alpha", "m2")]);
}

#[test]
fn parser_messages_name_their_place_once() {
    let cases = [
        ("invalid u64 at line 1, column 10", "invalid u64"),
        (
            "error: line 2 column 3: invalid boolean at line 2, column 3",
            "invalid boolean",
        ),
        (
            "invalid u16 at line 2, column 9 at line 2, column 3",
            "invalid u16",
        ),
        ("ends at line one", "ends at line one"),
    ];
    for (raw, want) in cases {
        assert_eq!(bare_message(raw), want, "{raw}");
    }
}

#[test]
fn errors_are_explained_with_the_key_path() {
    let text = "limits:\n  # note\n  max_body_bytes: lots # why\nproviders:\n  x:\n    models:\n      - id: 7\n";
    let cases = [
        (
            3,
            19,
            "invalid u64",
            "limits.max_body_bytes: expected a whole number, got \"lots\"",
        ),
        (
            7,
            13,
            "whatever it says",
            "providers.x.models.id: whatever it says",
        ),
        (
            3,
            3,
            "unknown field `max_body_bytes`",
            "unknown field `max_body_bytes`",
        ),
        (
            6,
            5,
            "invalid type: string \"a \\\"quoted\\\" one\", expected a sequence",
            "providers.x.models: expected a sequence, got a single value",
        ),
    ];
    for (line, col, msg, want) in cases {
        assert_eq!(explain(text, line, col, msg), want, "{line}:{col}");
    }
}

#[test]
fn a_list_or_map_where_another_value_was_wanted_is_told_at_the_key_holding_it() {
    let cases = [
        // A map is placed at its first key, or at its `{`.
        (
            "workers:\n  a: 1\n",
            2,
            3,
            "invalid type: map, expected a whole number",
            "workers: expected a whole number, got a map",
        ),
        (
            "workers: {a: 1}\n",
            1,
            10,
            "invalid type: map, expected a whole number",
            "workers: expected a whole number, got a map",
        ),
        // A list where a map was wanted is placed at its first item, or its `[`.
        (
            "limits:\n  - max_body_bytes: 1\n",
            2,
            3,
            "expected mapping start",
            "limits: expected a map of keys, got a list",
        ),
        (
            "log:\n- json\n",
            2,
            3,
            "expected mapping start",
            "log: expected a map of keys, got a list",
        ),
        (
            "log: [json]\n",
            1,
            6,
            "expected mapping start",
            "log: expected a map of keys, got a list",
        ),
        // Any other list is placed at the key holding it.
        (
            "skip_auth: [a]\n",
            1,
            1,
            "invalid type: sequence, expected true or false",
            "skip_auth: expected true or false, got a list",
        ),
        (
            "p:\n  x:\n    models: {a: b}\n",
            3,
            13,
            "invalid type: map, expected a sequence",
            "p.x.models: expected a list, got a map",
        ),
    ];
    for (text, line, col, msg, want) in cases {
        assert_eq!(explain(text, line, col, msg), want, "{text:?}");
    }
}

#[test]
fn a_variable_unquoted_in_flow_style_is_told_to_be_quoted() {
    let hint = " (inside `[…]` or `{…}`, put a ${VAR} in quotes: `[\"${VAR}\"]`)";
    let told = explain("keys: [${K}]\n", 1, 9, "expected ',' or ']'");
    assert_eq!(told, format!("keys: expected ',' or ']'{hint}"));
    let told = explain("log: {format: ${F}}\n", 1, 15, "whatever");
    assert_eq!(told, format!("log.format: whatever{hint}"));
    for fine in ["keys: [\"${K}\"]\n", "workers: ${W}\n", "keys: ['${K}']\n"] {
        assert!(!explain(fine, 1, 1, "m").contains("quotes"), "{fine}");
    }
}

#[test]
fn errors_inside_secret_keys_quote_nothing_written_there() {
    let cases = [
        (
            "keys: sk-1\n",
            1,
            7,
            "expected sequence start",
            "keys: expected a list, got a single value (not shown: it may be a key); write \
             `keys: [sk-...]`",
        ),
        (
            "keys:\n  - sk-1: x\n",
            2,
            5,
            "expected string scalar",
            "keys: expected string scalar, got a map (not shown: it may be a key); write \
             `keys: [sk-...]`",
        ),
        (
            "keys:\n- sk-1: x\n",
            2,
            3,
            "expected string scalar",
            "keys: expected string scalar, got a map (not shown: it may be a key); write \
             `keys: [sk-...]`",
        ),
        (
            "keys: {sk-1: 1, sk-1: 2}\n",
            1,
            17,
            "duplicate mapping key: sk-1, set …",
            "keys: a key is written twice here",
        ),
        (
            "p:\n  x:\n    api_key:\n      sk-1: 1\n",
            4,
            7,
            "expected string scalar",
            "p.x.api_key: expected string scalar",
        ),
        (
            "p:\n  x:\n    headers: sk-1\n",
            3,
            5,
            "invalid type: string \"sk-1\", expected a map",
            "p.x.headers: expected a map",
        ),
        (
            "p:\n  x:\n    headers:\n      X-Key: [sk-1]\n",
            4,
            14,
            "expected string scalar",
            "p.x.headers: expected string scalar",
        ),
        (
            "p: {x: {api_base: \"h: 1\", api_key: [sk-1]}}\n",
            1,
            38,
            "expected string scalar",
            "p.x.api_key: expected string scalar",
        ),
        (
            "keys:\n  - sk-1\n",
            2,
            5,
            "something new about sk-1",
            "keys: cannot be read (what is written here is not shown: it may be a key)",
        ),
    ];
    for (text, line, col, msg, want) in cases {
        assert_eq!(explain(text, line, col, msg), want, "{text:?}");
    }
}

#[test]
fn keys_are_located_by_their_dotted_path() {
    let text = "# c\nlimits:\n  # x\n  max_body_bytes: 1\ntimeouts:\n  idle_secs: 0\nmodels:\n  - idle_secs: 1\n";
    assert_eq!(locate(text, "limits.max_body_bytes"), (4, 3));
    assert_eq!(locate(text, "timeouts.idle_secs"), (6, 3));
    assert_eq!(locate(text, "limits"), (2, 1));
    assert_eq!(locate(text, "idle_secs"), (0, 0));
    assert_eq!(locate(text, "workers"), (0, 0));
}

#[test]
fn the_keys_around_a_place_are_read_in_block_and_flow_style() {
    let text = "# c\np:\n  x: {a: 1, \"b c\": [2, {d: 3}], e: http://h:1/v1}\n  y:\n    - z: 4\n";
    let at = |line, col| keys_around(text, line, col).join(".");
    assert_eq!(at(3, 3), "p.x");
    assert_eq!(at(3, 10), "p.x.a");
    assert_eq!(at(3, 24), "p.x.b c");
    assert_eq!(at(3, 28), "p.x.b c.d");
    assert_eq!(at(3, 42), "p.x.e");
    assert_eq!(at(5, 7), "p.y.z");
    assert_eq!(at(5, 10), "p.y.z");
    assert_eq!(at(1, 1), "");
}
