//! The sources Routeplane knows without configuration, the model-name families only
//! one of them serves, and the environment variables their keys are read from.

use super::{AuthUrls, Kind, Prefill, Provider};
use crate::log::Secret;
use crate::protocol::Protocol;

/// A provider Routeplane knows without configuration.
pub(super) struct Builtin {
    pub(super) id: &'static str,
    pub(super) api_base: &'static str,
    pub(super) protocol: Protocol,
    /// The vendor's key variable (`OPENAI_API_KEY`); `ROUTEPLANE_<ID>_API_KEY` is read
    /// before it (see [`key_vars`]). `None` for sources that need no key.
    pub(super) key_env: Option<&'static str>,
    pub(super) kind: Kind,
    pub(super) prefill: Prefill,
}

/// The built-in providers. Local defaults use 127.0.0.1 rather than `localhost`,
/// which may resolve to ::1 first while these servers bind IPv4 by default.
pub(super) const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "openai",
        api_base: "https://api.openai.com/v1",
        protocol: Protocol::Chat,
        key_env: Some("OPENAI_API_KEY"),
        kind: Kind::Hosted,
        prefill: Prefill::No,
    },
    Builtin {
        id: "openrouter",
        api_base: "https://openrouter.ai/api/v1",
        protocol: Protocol::Chat,
        key_env: Some("OPENROUTER_API_KEY"),
        kind: Kind::Hosted,
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "anthropic",
        api_base: "https://api.anthropic.com/v1",
        protocol: Protocol::Anthropic,
        key_env: Some("ANTHROPIC_API_KEY"),
        kind: Kind::Hosted,
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "gemini",
        api_base: "https://generativelanguage.googleapis.com/v1beta",
        protocol: Protocol::Gemini,
        key_env: Some("GEMINI_API_KEY"),
        kind: Kind::Hosted,
        // `contents` may end with a `model` turn, which Gemini takes as the start of its
        // answer (not promised by Google's reference; not measured here, no network).
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "mistral",
        api_base: "https://api.mistral.ai/v1",
        protocol: Protocol::Chat,
        key_env: Some("MISTRAL_API_KEY"),
        kind: Kind::Hosted,
        // Mistral continues a final assistant message only when it says `"prefix": true`,
        // which is not sent; without it the request is refused (400, `Expected last role
        // User or Tool (or Assistant with prefix True)`).
        prefill: Prefill::No,
    },
    Builtin {
        id: "openai-codex",
        api_base: "https://chatgpt.com/backend-api/codex",
        protocol: Protocol::Responses,
        key_env: None,
        kind: Kind::Subscription,
        prefill: Prefill::No,
    },
    Builtin {
        id: "ollama",
        api_base: "http://127.0.0.1:11434/v1",
        protocol: Protocol::Chat,
        key_env: None,
        kind: Kind::Local,
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "vllm",
        api_base: "http://127.0.0.1:8000/v1",
        protocol: Protocol::Chat,
        key_env: None,
        kind: Kind::Local,
        prefill: Prefill::Flags,
    },
    Builtin {
        id: "lmstudio",
        api_base: "http://127.0.0.1:1234/v1",
        protocol: Protocol::Chat,
        key_env: None,
        kind: Kind::Local,
        prefill: Prefill::Yes,
    },
    Builtin {
        id: "llamacpp",
        api_base: "http://127.0.0.1:8080/v1",
        protocol: Protocol::Chat,
        key_env: None,
        kind: Kind::Local,
        prefill: Prefill::Yes,
    },
];

/// The ids of the built-in providers, in the order they are listed.
pub fn builtin_ids() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.id)
}

/// A built-in provider's kind and its vendor's key variable (`OPENROUTER_API_KEY`), by id.
pub fn builtin_source(id: &str) -> Option<(Kind, Option<&'static str>)> {
    (BUILTINS.iter().find(|b| b.id == id)).map(|b| (b.kind, b.key_env))
}

/// Model names that only a built-in hosted provider serves as they are (`gpt-4o` at
/// OpenAI), so that a 404 for one can say which credential would serve it, and a
/// provider with a key but no list of its models can still be asked for them.
#[derive(Debug)]
pub struct Family {
    /// The built-in provider that serves them.
    pub provider: &'static str,
    /// Its vendor with an article, as a sentence names it (`an OpenAI`).
    pub vendor: &'static str,
    /// The subscription whose login serves the vendor's models too, if any.
    pub login: Option<&'static str>,
    /// The prefix OpenRouter lists the vendor's models under, when it keeps their names
    /// (it spells Claude's versions with dots, so there is none for Anthropic).
    pub openrouter: Option<&'static str>,
    /// How the names begin; one not ending in `-` stands alone or before a `-`, so that
    /// `o3` takes `o3-mini` but not a local `o3de`.
    starts: &'static [&'static str],
}

/// The families of the built-in hosted providers' model names.
pub(super) const FAMILIES: &[Family] = &[
    Family {
        provider: "openai",
        vendor: "an OpenAI",
        login: Some("openai-codex"),
        openrouter: Some("openai/"),
        starts: &["gpt-", "o1", "o3", "o4", "chatgpt-", "codex-"],
    },
    Family {
        provider: "anthropic",
        vendor: "an Anthropic",
        login: Some("anthropic"),
        openrouter: None,
        starts: &["claude-"],
    },
    Family {
        provider: "gemini",
        vendor: "a Gemini",
        login: None,
        openrouter: Some("google/"),
        starts: &["gemini-"],
    },
    Family {
        provider: "mistral",
        vendor: "a Mistral",
        login: None,
        // OpenRouter's `mistralai/` names are mostly not Mistral's (no `-latest` aliases,
        // `mistral-small-3.2-24b-instruct`): a hint would name models that do not exist.
        openrouter: None,
        starts: &[
            "mistral-",
            "codestral-",
            "devstral-",
            "magistral-",
            "pixtral-",
            "ministral-",
            "open-mistral-",
            "open-mixtral-",
        ],
    },
];

/// OpenRouter's names: `vendor/model`.
const OPENROUTER: Family = Family {
    provider: "openrouter",
    vendor: "an OpenRouter",
    login: None,
    openrouter: None,
    starts: &[],
};

/// The family `model`'s name puts it in, if any.
pub fn family_of(model: &str) -> Option<&'static Family> {
    // `vendor/model` (`:free` and the like allowed); not a path with a host, which is
    // Ollama's name for a model pulled from one (`hf.co/user/repo:Q8_0`).
    if model.split_once('/').is_some_and(|(vendor, name)| {
        !vendor.is_empty() && !vendor.contains('.') && !name.is_empty() && !name.contains('/')
    }) {
        return Some(&OPENROUTER);
    }
    // No vendor's API names a model with a `:tag` (a fine-tune's `ft:…` id begins
    // otherwise); Ollama names open weights so (`mistral-small3.1:24b`, `gpt-oss:20b`).
    // A local server that lists the name serves it first anyway (route.rs asks a family
    // only when nothing lists it); one not running yet must not send it to a vendor that
    // has no such model, nor make the 404 ask for a key when `ollama pull` serves it.
    if model.contains(':') {
        return None;
    }
    FAMILIES.iter().find(|f| {
        f.starts.iter().any(|start| {
            model.strip_prefix(start).is_some_and(|rest| {
                start.ends_with('-') || rest.is_empty() || rest.starts_with('-')
            })
        })
    })
}

/// True when `rest`, the text after a name's first colon, reads as a local model's tag
/// (`8b`, `8x7b`, `latest`) rather than a model named after a provider
/// (`ollama:llama3.1`): `mixtral:8x7b` is Ollama's name and tag, not a mistyped
/// `mistral` provider asked for a model `8x7b`.
pub fn looks_like_tag(rest: &str) -> bool {
    rest == "latest" || rest.starts_with(|c: char| c.is_ascii_digit())
}

/// Second places to look for a built-in's key: Google's SDKs and CLI read
/// `GOOGLE_API_KEY` when `GEMINI_API_KEY` is unset.
const KEY_ENV_FALLBACKS: &[(&str, &str)] = &[("GEMINI_API_KEY", "GOOGLE_API_KEY")];

/// The variables a built-in's key is read from, first found wins:
/// `ROUTEPLANE_<ID>_API_KEY` (upper case, `-` → `_`), then the vendor's own (`key_env`),
/// then the vendor's second name, if it has one ([`KEY_ENV_FALLBACKS`]).
pub(super) fn key_vars(b: &Builtin) -> Vec<String> {
    let Some(vendor) = b.key_env else {
        return Vec::new();
    };
    let own = format!(
        "ROUTEPLANE_{}_API_KEY",
        b.id.to_ascii_uppercase().replace('-', "_")
    );
    let mut vars = vec![own, vendor.to_string()];
    vars.extend(
        KEY_ENV_FALLBACKS
            .iter()
            .filter(|(first, _)| *first == vendor)
            .map(|(_, second)| second.to_string()),
    );
    vars
}

/// The key the README's client lines send (`OPENAI_API_KEY=unused`). Exported in the
/// shell that then starts Routeplane, it would be taken as Routeplane's own key for
/// the vendor, which refuses it: it is no key (see [`unusable_key`]).
pub(super) const CLIENT_PLACEHOLDER: &str = "unused";

/// Why a key's text cannot be sent as a key, if it cannot: the client placeholder, or a
/// character an HTTP header cannot carry. Spaces and line ends around a key are not
/// counted (see `key_text`).
pub fn unusable_key(key: &str) -> Option<&'static str> {
    let key = key_text(key);
    if key == CLIENT_PLACEHOLDER {
        Some(PLACEHOLDER_KEY)
    } else if key
        .get(..7)
        .is_some_and(|w| w.eq_ignore_ascii_case("bearer "))
    {
        Some(BEARER_KEY)
    } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
        Some(GARBLED_KEY)
    } else if key.starts_with(['"', '\'']) || key.ends_with(['"', '\'']) {
        Some(QUOTED_KEY)
    } else {
        None
    }
}

/// Why the client placeholder is no key.
pub(super) const PLACEHOLDER_KEY: &str =
    "`unused`, the key a client sends to Routeplane, is no key for a vendor";

/// Why a key with an inner space or control character is no key.
pub(super) const GARBLED_KEY: &str = "it holds something other than visible ASCII characters inside (a \
                           space, a line break, a control character), which no key does and no \
                           header carries; the value is not shown";

/// Why a key written as the whole header value (`Bearer sk-…`) is no key: Routeplane
/// writes the header's `Bearer ` itself.
pub(super) const BEARER_KEY: &str = "it begins with `Bearer `, which Routeplane adds itself: \
                                     remove that word; the value is not shown";

/// Why a key in quotes is no key: `KEY="sk-…"` in a file read as is (`docker run
/// --env-file`) keeps them, and the vendor refuses the key with them.
pub(super) const QUOTED_KEY: &str = "it begins or ends with a quote, which would be sent as \
                                     part of the key (a file of KEY=\"…\" lines read as is \
                                     keeps them): remove it; the value is not shown";

/// A key as written or exported, without the spaces and line end around it: a key file
/// saved on Windows and read with `$(cat key.txt)` keeps its `\r`, which no header carries.
pub(super) fn key_text(key: &str) -> &str {
    key.trim()
}

/// A built-in provider with nothing configured; its key comes from the environment.
pub(super) fn from_builtin(b: &Builtin) -> Provider {
    let key_vars = key_vars(b);
    let found = key_vars.iter().find_map(|var| {
        let value = std::env::var(var).ok()?;
        let key = key_text(&value);
        (!key.is_empty() && unusable_key(key).is_none()).then(|| (key.to_string(), var.clone()))
    });
    let (key, key_source) = found.unzip();
    let api_base = test_host(b).unwrap_or_else(|| b.api_base.to_string());
    Provider {
        id: b.id.to_string(),
        // Constants, or the test hook's name under `.invalid` in a hosted one's host,
        // which it checks: every one splits (`builtin_bases_split`).
        base: super::Origin::split(&api_base).expect("a built-in's base splits"),
        api_base,
        protocols: vec![("*".to_string(), b.protocol)],
        key_source,
        key: key.map(Secret::new),
        key_vars,
        headers: Vec::new(),
        models: Vec::new(),
        kind: b.kind,
        detect: b.kind == Kind::Local,
        configured: false,
        own_base: false,
        in_virtual: false,
        auth: AuthUrls::default(),
        prefill: b.prefill,
    }
}

/// Test hook: `ROUTEPLANE_TEST_BUILTIN_HOST`, a name under `.invalid` (RFC 6761: it
/// never resolves) put in place of a hosted built-in's host, so that a test sees a
/// built-in's failed look-up without the internet. Any other name is ignored: the hook
/// can make a source unreachable, never send its key elsewhere.
fn test_host(b: &Builtin) -> Option<String> {
    let host = std::env::var("ROUTEPLANE_TEST_BUILTIN_HOST").ok()?;
    let name = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    if b.kind == Kind::Local || !host.ends_with(".invalid") || !host.bytes().all(name) {
        return None;
    }
    let rest = b.api_base.strip_prefix("https://")?;
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    Some(format!("https://{host}{path}"))
}
