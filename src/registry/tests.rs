//! Building registries from small configs, and the built-in tables.

use super::build::lacks_v1_on_this_network;
use super::builtin::{BUILTINS, Builtin, FAMILIES, key_vars};
use super::*;
use crate::config::{self, Loaded};
use crate::error::Error;

fn build(yaml: &str) -> Result<Registry, Error> {
    let config = config::parse(yaml).map_err(|(l, c, m)| Error::Config {
        path: "t".into(),
        line: l,
        col: c,
        msg: m,
    })?;
    Registry::build(&Loaded {
        config,
        path: Some("t.yaml".into()),
    })
}

#[test]
fn a_targets_model_is_its_label_after_the_provider_id() {
    let r = build(
        "providers:\n  ollama:\n    api_base: http://127.0.0.1:1/v1\n    models: [llama3.1:8b]\n",
    )
    .unwrap();
    let t = Target::new(&r.provider_for("ollama").unwrap(), "llama3.1:8b");
    assert_eq!(t.label(), "ollama:llama3.1:8b");
    assert_eq!(t.model(), "llama3.1:8b");
    // On both sides of the stack buffer's 128 bytes, and past it.
    for n in [0, 1, 120, 121, 122, 123, 500] {
        let model = "é".repeat(n / 2) + &"m".repeat(n % 2);
        let t = Target::new(&r.provider_for("ollama").unwrap(), &model);
        assert_eq!(t.label(), format!("ollama:{model}"));
        assert_eq!(t.model(), model);
        assert!(Arc::ptr_eq(&t.shared_label(), &t.clone().shared_label()));
    }
}

#[test]
fn a_declared_models_targets_share_one_label_naming_the_upstream_model() {
    let r = build(
        "providers:\n  openai-codex:\n    models:\n      - id: fast\n        provider_model_id: gpt-5-mini\n",
    )
    .unwrap();
    let p = r.provider_for("openai-codex").unwrap();
    let (a, b) = (Target::new(&p, "fast"), Target::new(&p, "fast"));
    assert_eq!(a.label(), "openai-codex:gpt-5-mini");
    assert_eq!(a.model(), "gpt-5-mini");
    assert!(Arc::ptr_eq(&a.shared_label(), &b.shared_label()));
    // A login's labelled id names its own targets.
    let t = Target::new(&r.provider_for("openai-codex#work").unwrap(), "fast");
    assert_eq!(t.label(), "openai-codex#work:gpt-5-mini");
    assert_eq!(t.model(), "gpt-5-mini");
}

#[test]
fn globs() {
    for (g, t, want) in [
        ("*", "anything", true),
        ("claude-*", "claude-3-5", true),
        ("claude-*", "gpt-4o", false),
        ("gpt-?o", "gpt-4o", true),
        ("exact", "exact", true),
        ("exact", "exactly", false),
        ("*-mini", "o4-mini", true),
        // `?` is one character, also outside ASCII.
        ("modèle-?", "modèle-é", true),
        ("m?", "mé", true),
        ("m?", "méé", false),
    ] {
        assert_eq!(glob_match(g, t), want, "{g} {t}");
    }
}

#[test]
fn builtins_fill_what_a_block_leaves_out() {
    let r = build("providers:\n  ollama:\n    models: [llama3.1]\n").unwrap();
    let p = r.provider("ollama").unwrap();
    assert_eq!(p.api_base, "http://127.0.0.1:11434/v1");
    assert!(p.declares("llama3.1"));
    assert!(
        r.provider("vllm").is_some(),
        "unconfigured built-ins stay routable"
    );
}

#[test]
fn key_variables_put_routeplane_first_and_spell_ids_in_upper_case() {
    let b = Builtin {
        id: "my-cloud",
        api_base: "https://x/v1",
        protocol: Protocol::Chat,
        key_env: Some("MY_CLOUD_KEY"),
        kind: Kind::Hosted,
        prefill: Prefill::No,
    };
    assert_eq!(
        key_vars(&b),
        ["ROUTEPLANE_MY_CLOUD_API_KEY", "MY_CLOUD_KEY"]
    );
    let local = BUILTINS.iter().find(|b| b.id == "ollama").unwrap();
    assert!(key_vars(local).is_empty(), "local sources need nothing");
}

#[test]
fn mistral_is_keyed_as_the_others_and_its_api_takes_mistrals_tool_ids() {
    let b = BUILTINS.iter().find(|b| b.id == "mistral").unwrap();
    assert_eq!(
        key_vars(b),
        ["ROUTEPLANE_MISTRAL_API_KEY", "MISTRAL_API_KEY"]
    );
    let r = build("").unwrap();
    // A name of no Mistral family: the rule comes from the host alone.
    let t = Target::new(&r.provider_for("mistral").unwrap(), "any-model");
    assert_eq!(
        crate::protocol::chat::ToolIds::of(&t.source()),
        crate::protocol::chat::ToolIds::Mistral
    );
    assert!(!t.can_continue(), "no `prefix: true` is sent");
}

#[test]
fn a_pathless_base_is_questioned_only_on_this_machine_or_network() {
    for (base, questioned) in [
        ("http://127.0.0.1:11434", true),
        ("http://localhost:8000", true),
        ("http://[::1]:8080", true),
        ("http://192.168.1.20:1234", true),
        ("http://gpu-box.local:11434", true),
        ("http://127.0.0.1:11434/v1", false),
        ("http://10.0.0.5:8000/openai/v1", false),
        ("https://api.deepseek.com", false),
        ("http://8.8.8.8:8000", false),
    ] {
        let base_split = Origin::split(base).unwrap();
        assert_eq!(lacks_v1_on_this_network(&base_split), questioned, "{base}");
    }
}

#[test]
fn builtin_bases_split() {
    for b in BUILTINS {
        assert!(Origin::split(b.api_base).is_ok(), "{}", b.api_base);
    }
    // The test hook's host: a name of letters, digits, `.` and `-` under `.invalid`.
    assert!(Origin::split("https://-.invalid/v1").is_ok());
}

#[test]
fn hosted_model_names_fall_in_their_vendors_family() {
    let family = |m: &str| family_of(m).map(|f| f.provider);
    for m in [
        "gpt-4o",
        "gpt-5-mini",
        "o1",
        "o1-mini",
        "o3",
        "o3-pro",
        "o4-mini",
    ] {
        assert_eq!(family(m), Some("openai"), "{m}");
    }
    for m in ["chatgpt-4o-latest", "codex-mini-latest"] {
        assert_eq!(family(m), Some("openai"), "{m}");
    }
    assert_eq!(family("claude-sonnet-4-5"), Some("anthropic"));
    assert_eq!(family("gemini-2.5-pro"), Some("gemini"));
    for m in [
        "mistral-small-latest",
        "mistral-large-2411",
        "codestral-latest",
        "devstral-medium-2507",
        "magistral-medium-latest",
        "pixtral-large-latest",
        "ministral-8b-latest",
        "open-mistral-nemo",
        "open-mixtral-8x22b",
    ] {
        assert_eq!(family(m), Some("mistral"), "{m}");
    }
    // Ollama's names for Mistral's weights: a tag, or no `-` after the family.
    for m in [
        "mistral-small3.1:24b",
        "mistral-nemo:12b",
        "codestral-latest:22b",
        "mistral:7b",
        "mistral",
        "codestral",
        "mixtral:8x7b",
        "mistralai/codestral-2508",
    ] {
        assert_ne!(family(m), Some("mistral"), "{m}");
    }
    // Ollama's names for open weights of other vendors, and for a model pulled from
    // a host: no vendor's.
    for m in [
        "gpt-oss:20b",
        "gemini-like:7b",
        "hf.co/bartowski/Llama-3.2-1B-GGUF:Q8_0",
    ] {
        assert_eq!(family(m), None, "{m}");
    }
    assert_eq!(
        family("meta-llama/llama-3.3-70b-instruct:free"),
        Some("openrouter")
    );
    assert_eq!(family("openai/gpt-4o"), Some("openrouter"));
    assert_eq!(
        family("meta-llama/llama-3.1-8b-instruct"),
        Some("openrouter")
    );
    // Local names and names already carrying a vendor's prefix are not guessed at.
    for m in [
        "llama3.1", "o3de", "o2", "gpt4all", "claude", "/gpt-4o", "GPT-4o",
    ] {
        assert_eq!(family(m), None, "{m}");
    }
    // Every family names a built-in with key variables, and a login a built-in too.
    for f in FAMILIES {
        let b = BUILTINS.iter().find(|b| b.id == f.provider).unwrap();
        assert!(!key_vars(b).is_empty(), "{}", f.provider);
        assert!(f.login.is_none_or(|l| builtin_ids().any(|id| id == l)));
    }
}

#[test]
fn protocol_patterns_first_match_wins() {
    let r = build(
        "providers:\n  mix:\n    api_base: http://x/v1\n    api_protocol:\n      - \"claude-*\": anthropic\n      - \"*\": chat_completions\n    models:\n      - id: fast\n        provider_model_id: claude-fast\n",
    )
    .unwrap();
    let p = r.provider("mix").unwrap();
    assert_eq!(p.protocol_for("claude-x"), Protocol::Anthropic);
    assert_eq!(p.protocol_for("gpt"), Protocol::Chat);
    // A declared model is asked in the protocol of its upstream name.
    let p = r.provider_for("mix").unwrap();
    assert_eq!(Target::new(&p, "fast").protocol, Protocol::Anthropic);
    assert_eq!(Target::new(&p, "claude-y").protocol, Protocol::Anthropic);
    assert_eq!(Target::new(&p, "gpt").protocol, Protocol::Chat);
}

#[test]
fn load_errors_name_their_line() {
    let cases = [
        (
            "models:\n  smart:\n    endpoints:\n      - nowhere:m\n",
            "t.yaml:4:9: endpoint names unknown provider `nowhere`",
        ),
        (
            "models:\n  ollama:\n    endpoints: [vllm:x]\n",
            "t.yaml:2:3: virtual model `ollama` has the same name as a provider",
        ),
        (
            "providers:\n  x:\n    api_base: http://h/v1\n    api_protocol: grpc\n",
            "t.yaml:4:19: unknown protocol `grpc`",
        ),
        (
            "models:\n  s:\n    strategy: random\n    endpoints: [vllm:x]\n",
            "t.yaml:3:15: unknown strategy `random`",
        ),
        (
            "providers:\n  mine: {}\n",
            "t.yaml:2:3: provider `mine` needs `api_base`",
        ),
    ];
    for (yaml, want) in cases {
        let err = build(yaml).unwrap_err().to_string();
        assert!(err.starts_with(want), "{yaml}\n got: {err}");
    }
}
