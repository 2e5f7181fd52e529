//! Resolution, cascades, virtual models, the 404's hints and the cool-down list.

use std::time::{Duration, Instant};

use super::unknown::unlikeness;
use super::*;
use crate::config::{self, Loaded};

fn reg(yaml: &str) -> Registry {
    let config = config::parse(yaml).unwrap();
    Registry::build(&Loaded { config, path: None }).unwrap()
}

const YAML: &str = "providers:\n  ollama:\n    detect: false\n    models: [llama3.1:8b, shared]\n  other:\n    api_base: http://127.0.0.1:9/v1\n    models:\n      - id: shared\n        provider_model_id: shared-v2\nmodels:\n  smart:\n    endpoints: [ollama:llama3.1:8b, other:shared]\n";

fn labels(t: &[Target]) -> Vec<String> {
    t.iter().map(|t| t.label().to_string()).collect()
}

#[test]
fn colon_in_ollama_tag_is_not_a_provider() {
    let r = reg(YAML);
    let d = Detected::default();
    assert_eq!(
        labels(&resolve(&r, &d, "ollama:llama3.1:8b").unwrap()),
        ["ollama:llama3.1:8b"]
    );
    assert_eq!(
        labels(&resolve(&r, &d, "llama3.1:8b").unwrap()),
        ["ollama:llama3.1:8b"]
    );
}

#[test]
fn the_last_hope_is_after_the_last_warm_endpoint_with_a_credential() {
    let r = reg(
        "providers:\n  a: {api_base: http://127.0.0.1:1, models: [m]}\n  b: {api_base: http://127.0.0.1:2, models: [m]}\n  c: {api_base: http://127.0.0.1:3, models: [m]}\n",
    );
    let t = resolve(&r, &Detected::default(), "m").unwrap();
    assert_eq!(labels(&t), ["a:m", "b:m", "c:m"]);
    let has = |_: &Provider| false;
    let lacks = |id: &'static str| move |p: &Provider| p.id == id;
    assert_eq!(last_hope(&t, 3, has), 2, "only the last is the last");
    assert_eq!(last_hope(&t, 2, has), 1, "the cooling one comes after it");
    assert_eq!(last_hope(&t, 3, lacks("c")), 1, "c would fail at once");
    assert_eq!(last_hope(&t, 1, has), 0);
    assert_eq!(last_hope(&t, 0, has), 0, "all cooling: each is the last");
    assert_eq!(last_hope(&t[..1], 1, lacks("a")), 0);
}

#[test]
fn bare_names_cascade_in_config_order_with_upstream_names() {
    let r = reg(YAML);
    let d = Detected::default();
    assert_eq!(
        labels(&resolve(&r, &d, "shared").unwrap()),
        ["ollama:shared", "other:shared-v2"]
    );
}

#[test]
fn a_name_without_its_latest_tag_finds_the_listed_entry() {
    let r = reg("providers:\n  ollama:\n    api_base: http://127.0.0.1:9/v1\n");
    let d = Detected::default();
    d.set(
        "ollama",
        crate::detect::SourceState {
            up: true,
            models: vec!["llama3.1:latest".into(), "qwen2:7b".into()],
            ..crate::detect::SourceState::default()
        },
    );
    let found = |model| listed(&r, &d, model).map(|(id, _)| id);
    for (model, want) in [
        ("llama3.1", Some("llama3.1:latest")),
        ("llama3.1:latest", Some("llama3.1:latest")),
        ("ollama:llama3.1", Some("ollama:llama3.1:latest")),
        ("qwen2:7b", Some("qwen2:7b")),
        ("qwen2", None),
        ("llama3.1:8b", None),
        ("ollama:nope", None),
    ] {
        assert_eq!(found(model).as_deref(), want, "{model}");
    }
}

#[test]
fn a_local_server_that_lists_a_mistral_name_serves_it_before_mistral() {
    let r = reg(
        "providers:\n  mistral:\n    api_key: k\n  ollama:\n    api_base: http://127.0.0.1:9/v1\n",
    );
    let d = Detected::default();
    let resolved = |model| resolve(&r, &d, model).map(|t| labels(&t));
    // Listed nowhere: a name of Mistral's is asked of it, a tagged one of no one.
    assert_eq!(
        resolved("mistral-large").unwrap(),
        ["mistral:mistral-large"]
    );
    assert!(resolved("mistral-small3.1:24b").is_err());
    d.set(
        "ollama",
        crate::detect::SourceState {
            up: true,
            models: vec!["mistral-large:latest".into(), "mistral-small3.1:24b".into()],
            ..crate::detect::SourceState::default()
        },
    );
    assert_eq!(
        resolved("mistral-large").unwrap(),
        ["ollama:mistral-large:latest"]
    );
    assert_eq!(
        resolved("mistral-small3.1:24b").unwrap(),
        ["ollama:mistral-small3.1:24b"]
    );
}

#[test]
fn virtual_models_list_their_endpoints() {
    let r = reg(YAML);
    let d = Detected::default();
    assert_eq!(
        labels(&resolve(&r, &d, "smart").unwrap()),
        ["ollama:llama3.1:8b", "other:shared-v2"]
    );
}

#[test]
fn unknown_model_suggests_known_ids() {
    let r = reg(YAML);
    let err = resolve(&r, &Detected::default(), "nope")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown model `nope`; known models include: smart, llama3.1:8b, shared, ollama:llama3.1:8b, ollama:shared, other:shared"
    );
}

#[test]
fn names_like_the_one_asked_lead_the_suggestions() {
    for (asked, id, want) in [
        ("llama3.1", "ollama:llama3.1:8b", 0),
        ("gpt-4o", "openrouter:openai/GPT-4o-mini", 0),
        ("llama3.1:70b", "llama3.1:8b", 1),
        ("llama3.1:70b", "qwen3:8b", 2),
        ("", "a", 2),
        (":x", "a:y", 2),
    ] {
        assert_eq!(unlikeness(asked, id), want, "{asked} ~ {id}");
    }
}

#[test]
fn models_list_is_deduplicated() {
    let r = reg(YAML);
    let list = ["smart".to_string(), "shared".to_string()];
    assert_eq!(
        labels(&resolve_all(&r, &Detected::default(), &list).unwrap()),
        ["ollama:llama3.1:8b", "other:shared-v2", "ollama:shared"]
    );
}

#[test]
fn an_endpoint_a_virtual_model_lists_twice_is_tried_once() {
    let yaml = YAML.replace(
        "[ollama:llama3.1:8b, other:shared]",
        "[other:shared, ollama:shared, other:shared, ollama:llama3.1:8b, ollama:shared]",
    );
    let r = reg(&yaml);
    let one = ["smart".to_string()];
    assert_eq!(
        labels(&resolve_all(&r, &Detected::default(), &one).unwrap()),
        ["other:shared-v2", "ollama:shared", "ollama:llama3.1:8b"]
    );
}

#[test]
fn a_probe_answered_forgives_only_earlier_outages_of_its_provider() {
    let r = reg(YAML);
    let d = Detected::default();
    let c = Cooldown::new(Duration::from_secs(30));
    let targets = resolve(&r, &d, "smart").unwrap();
    let ollama = r.provider("ollama").unwrap();
    c.fail(&targets[0], Failed::NotServing);
    c.fail(&targets[1], Failed::NotServing);
    c.forgive(ollama, Instant::now());
    assert_eq!(
        c.snapshot().into_iter().map(|(l, _)| l).collect::<Vec<_>>(),
        ["other:shared-v2"]
    );
    let before = Instant::now();
    c.fail(&targets[0], Failed::NotServing);
    c.forgive(ollama, before);
    assert_eq!(
        c.snapshot().len(),
        2,
        "a failure after the probe was sent stays"
    );
    // A 429: the server is busy, which its model list says nothing of.
    let limited = Failed::Busy {
        retry_after: Some(Duration::from_secs(60)),
    };
    c.fail(&targets[0], limited);
    c.forgive(ollama, Instant::now() + Duration::from_secs(1));
    assert_eq!(c.snapshot().len(), 2, "a busy server's cool-down stays");
}

#[test]
fn cooling_endpoints_move_to_the_back() {
    let r = reg(YAML);
    let d = Detected::default();
    let c = Cooldown::new(Duration::from_secs(30));
    let targets = resolve(&r, &d, "smart").unwrap();
    c.fail(&targets[0], Failed::NotServing);
    assert_eq!(
        labels(&c.order(&targets).0),
        ["other:shared-v2", "ollama:llama3.1:8b"]
    );
    assert_eq!(c.order(&targets).1, 1, "one leads that is not cooling down");
    c.clear(&targets[0]);
    assert_eq!(
        labels(&c.order(&targets).0),
        ["ollama:llama3.1:8b", "other:shared-v2"]
    );
}

#[test]
fn an_empty_list_again_is_skipped_without_its_lock() {
    let r = reg(YAML);
    let c = Cooldown::new(Duration::from_secs(30));
    let targets = resolve(&r, &Detected::default(), "smart").unwrap();
    assert!(matches!(c.order(&targets).0, Cow::Borrowed(_)));
    // Emptied by each way an entry goes: a success, a probe answered, time.
    c.fail(&targets[0], Failed::NotServing);
    assert!(matches!(c.order(&targets).0, Cow::Owned(_)));
    c.clear(&targets[0]);
    assert!(matches!(c.order(&targets).0, Cow::Borrowed(_)));
    c.fail(&targets[0], Failed::NotServing);
    c.forgive(
        r.provider("ollama").unwrap(),
        Instant::now() + Duration::from_secs(1),
    );
    assert!(matches!(c.order(&targets).0, Cow::Borrowed(_)));
    c.fail(&targets[0], Failed::Refused);
    c.clear(&targets[0]);
    assert!(matches!(c.order(&targets).0, Cow::Borrowed(_)));
    c.fail(
        &targets[0],
        Failed::Busy {
            retry_after: Some(Duration::ZERO),
        },
    );
    let _ = c.order(&targets);
    assert!(matches!(c.order(&targets).0, Cow::Borrowed(_)));
}

#[test]
fn a_refused_connection_cools_its_whole_origin_and_one_success_warms_it() {
    // Two providers at one server (its OpenAI path and its native one), and another.
    let r = reg(
        "providers:\n  a: {api_base: http://127.0.0.1:7/v1, models: [m1, m2]}\n  a2: {api_base: http://127.0.0.1:7, models: [m3]}\n  b: {api_base: http://127.0.0.1:8/v1, models: [m1]}\nmodels:\n  v:\n    endpoints: [a:m1, a:m2, a2:m3, b:m1]\n",
    );
    let c = Cooldown::new(Duration::from_secs(30));
    let targets = resolve(&r, &Detected::default(), "v").unwrap();
    c.fail(&targets[0], Failed::Refused);
    assert!(c.origin_refused(&targets[2]) && !c.origin_refused(&targets[3]));
    assert_eq!(
        labels(&c.order(&targets).0),
        ["b:m1", "a:m1", "a:m2", "a2:m3"]
    );
    let listed = || c.snapshot().into_iter().map(|(l, _)| l).collect::<Vec<_>>();
    assert_eq!(
        listed(),
        ["a2:m3", "a:m1", "a:m2"],
        "each named once ordered"
    );
    // A model's own failure is its own, and outlives the origin's warming.
    c.fail(&targets[3], Failed::NotServing);
    c.clear(&targets[2]);
    assert_eq!(listed(), ["b:m1"]);
    // A probe of either provider answered warms the origin too.
    c.fail(&targets[1], Failed::Refused);
    c.forgive(
        r.provider("a2").unwrap(),
        Instant::now() + Duration::from_secs(1),
    );
    assert_eq!(listed(), ["b:m1"]);
}
