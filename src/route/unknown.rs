//! The 404 for a model nothing serves: the served ids named like it, and what would
//! serve it (a block of one's own, a tag, a pull, a key, a login).

use super::routable;
use crate::auth;
use crate::detect::Detected;
use crate::error::Error;
use crate::registry::{self, Registry};

/// How many known ids a 404 suggests.
const SUGGESTIONS: usize = 6;

/// The error for a model nothing serves, with some that are served as suggestions (those
/// named like it first), and what would serve it when its name is a hosted provider's
/// (`credential_hint`).
pub fn unknown(reg: &Registry, detected: &Detected, model: &str) -> Error {
    let served = routable(reg, detected);
    // A served endpoint to show in a virtual model's example: a client such as Claude
    // Code sends its vendor's names itself, whatever else is served.
    let example = (served.iter())
        .find(|(_, p)| p != "routeplane")
        .map(|(id, p)| match id.starts_with(&format!("{p}:")) {
            true => id.clone(),
            false => format!("{p}:{id}"),
        });
    let mut known: Vec<String> = served.into_iter().map(|(id, _)| id).collect();
    let asked = model.to_ascii_lowercase();
    let hint = space_hint(reg, detected, model)
        .or_else(|| prefix_hint(reg, detected, model))
        .or_else(|| login_hint(detected, model))
        .or_else(|| tag_hint(&known, model))
        .or_else(|| provider_hint(reg, model))
        .or_else(|| endpoint_hint(reg, model))
        .or_else(|| {
            // What serves a name like it, and beside that the blocks that may serve it
            // though nothing lists it.
            let like = credential_hint(reg, detected, model, example.as_deref())
                .or_else(|| virtual_hint(reg, model))
                .or_else(|| pull_hint(reg, detected, model));
            // A typo of a served name first: the pull or key it would need is the lesser case.
            let like = match (near_hint(&known, model, None), like) {
                (Some(near), Some(like)) => Some(format!("{near} Otherwise, {like}")),
                (near, like) => near.or(like),
            };
            match (like, unlisted_hint(reg, detected, model)) {
                // "Did you mean `smart`?" ends its own sentence.
                (Some(like), Some(unlisted)) if like.ends_with('?') => {
                    Some(format!("{like} {unlisted}"))
                }
                (Some(like), Some(unlisted)) => Some(format!("{like}. {unlisted}")),
                (like, unlisted) => like.or(unlisted),
            }
        });
    // A stable sort: the rest keep the order they are listed in.
    known.sort_by_cached_key(|id| unlikeness(&asked, id));
    known.truncate(SUGGESTIONS);
    Error::UnknownModel {
        model: model.to_string(),
        known,
        hint: hint.map(String::into_boxed_str),
    }
}

/// For a `model` with spaces or a line end around it (a client's setting copied with
/// them, `"smart "`) or around the colon after its provider (`ollama: llama3.1`): the
/// name without them, when that one is served.
fn space_hint(reg: &Registry, detected: &Detected, model: &str) -> Option<String> {
    let outer = model.trim();
    let bare = match outer.split_once(':') {
        Some((pid, m)) if reg.provider_for(pid.trim()).is_some() => {
            format!("{}:{}", pid.trim(), m.trim())
        }
        _ => outer.to_string(),
    };
    if bare.len() == model.len() || bare.is_empty() || bare.ends_with(':') {
        return None;
    }
    super::resolve(reg, detected, &bare).ok()?;
    let around = if outer.len() == model.len() {
        "its colon"
    } else {
        "it"
    };
    Some(format!(
        "The name has spaces or a line end around {around}: name `{bare}`"
    ))
}

/// For a name under a client's prefix: opencode's `routeplane/` (its provider/model
/// form pasted into another client) or aider's and LiteLLM's `openai/` (which says the
/// API the client speaks): the name without it when that is served, or (`routeplane/`)
/// what it would need, rather than the OpenRouter name a `vendor/` is otherwise taken
/// for. An `openai/` name not served without it is left to the hints below: the
/// provider `openai`'s when it can be asked ([`provider_hint`]), else OpenRouter's.
fn prefix_hint(reg: &Registry, detected: &Detected, model: &str) -> Option<String> {
    let (prefix, rest) = model.split_once('/')?;
    let whose = match prefix {
        "routeplane" => "opencode's provider prefix",
        "openai" => "a client's prefix (aider, LiteLLM)",
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    let said = format!("`{prefix}/` is {whose}, not part of a model's name");
    match super::resolve(reg, detected, rest) {
        Ok(_) => Some(format!("{said}: drop it and name `{rest}`")),
        Err(_) if prefix == "openai" => None,
        Err(e) => {
            let why = match e {
                Error::UnknownModel { hint: Some(h), .. } => format!(". {h}"),
                _ => String::new(),
            };
            Some(format!("{said}, and `{rest}` is not served either{why}"))
        }
    }
}

/// True for a provider block of one's own, not a built-in: what it serves is known only
/// from its block, its virtual models' endpoints, and its listing if it has one.
pub fn own_block(id: &str) -> bool {
    registry::builtin_ids().all(|b| b != id)
}

/// For a bare `model` that a virtual model names at a block of one's own (`gpt-4o` as
/// `gateway:gpt-4o`, an endpoint of `smart`): a bare name reaches only what a provider
/// declares or lists, so the names that do reach it, and how to make the bare one.
fn endpoint_hint(reg: &Registry, model: &str) -> Option<String> {
    let (name, pid) = reg.virtuals.iter().find_map(|v| {
        let (pid, _) = (v.endpoints.iter()).find(|(pid, m)| m == model && own_block(pid))?;
        Some((&v.name, pid))
    })?;
    Some(format!(
        "`{model}` is named only as an endpoint of the virtual model `{name}`, and a bare \
         name reaches only what a provider declares or lists: name `{name}` or \
         `{pid}:{model}`, or declare `{model}` under `models:` of `{pid}`"
    ))
}

/// For a `model` nothing lists: the blocks of one's own that list no models (no
/// `models:`, and no listing: a server without `GET /models`, or one not asked), which
/// may serve it but which no bare name reaches.
fn unlisted_hint(reg: &Registry, detected: &Detected, model: &str) -> Option<String> {
    if model.is_empty() || model.contains(char::is_whitespace) {
        return None;
    }
    // Three at most: a name is not a reason to read a whole config back.
    let blocks: Vec<_> = (reg.providers.iter())
        .filter(|p| own_block(&p.id) && p.models.is_empty())
        // One whose list failed lists nothing either.
        .filter(|p| {
            !detected
                .state(&p.id)
                .is_some_and(|s| s.up && !s.list_failed())
        })
        .take(3)
        .collect();
    let shown: Vec<&str> = blocks.iter().map(|p| p.id.as_str()).collect();
    Some(match shown.as_slice() {
        [] => return None,
        [one] => {
            // A block a virtual model names is not asked for its list unless it says so.
            let ask = if blocks[0].detect {
                ""
            } else {
                ", or give it `detect: true` if its server lists its models"
            };
            format!(
                "`{one}` lists no models, so no bare name reaches it: if it serves `{model}`, \
                 name it `{one}:{model}`, or declare `{model}` under `models:` of `{one}`{ask}"
            )
        }
        [init @ .., last] => {
            let blocks: Vec<String> = init.iter().map(|id| format!("`{id}`")).collect();
            let names: Vec<String> = shown.iter().map(|id| format!("`{id}:{model}`")).collect();
            format!(
                "{} and `{last}` list no models, so no bare name reaches them: if one serves \
                 `{model}`, name it {}, or declare `{model}` under its block's `models:`",
                blocks.join(", "),
                names.join(" or ")
            )
        }
    })
}

/// For a name served only with a tag (`gpt-oss` at an Ollama that has `gpt-oss:20b`):
/// the names that reach it, as they can be written (`llama3.1` for `llama3.1:latest`, which
/// a local server implies). Before any vendor's hint: a local model is what was meant.
/// A served name in other case (`Smart` for the virtual model `smart`) is told first:
/// the hints below would read it as a name nothing serves.
fn tag_hint(known: &[String], model: &str) -> Option<String> {
    let short = known
        .iter()
        .map(|id| id.strip_suffix(":latest").unwrap_or(id));
    let written = known.iter().map(String::as_str);
    let tagged: Vec<&str> = known
        .iter()
        .filter(|id| {
            id.split_once(':')
                .is_some_and(|(name, _)| name.eq_ignore_ascii_case(model))
        })
        .map(|id| id.strip_suffix(":latest").unwrap_or(id))
        .collect();
    // `Llama3.1` for `llama3.1:latest`: only the case differs, and it counts.
    if let Some(same) = short.chain(written).find(|n| n.eq_ignore_ascii_case(model)) {
        return Some(format!(
            "`{model}` is served as `{same}`: a model's name is matched with its case"
        ));
    }
    (!tagged.is_empty()).then(|| {
        let names: Vec<String> = tagged.iter().map(|n| format!("`{n}`")).collect();
        format!(
            "`{model}` is served with a tag: name {}",
            names.join(" or ")
        )
    })
}

/// For a `model` a letter or two from a served name (`lama3.1` for `llama3.1:latest`):
/// that name, as it can be written (without the `:latest` a local server implies). The
/// suggestions list it among others, and a pull hint alone would send a typo to `ollama
/// pull`. Not for names of three letters or fewer (`o3` is two from `o1` and `qwq`).
/// A name `pinned` to a provider is answered with it (`ollama:llama3.1`).
pub(super) fn near_hint(known: &[String], model: &str, pinned: Option<&str>) -> Option<String> {
    let asked = model.to_ascii_lowercase();
    if asked.chars().count() < 4 || asked.contains(char::is_whitespace) {
        return None;
    }
    // (as compared, in lower case; as written, since a server's names may hold capitals)
    let names: Vec<(String, &str)> = known
        .iter()
        .flat_map(|id| {
            let short = id.strip_suffix(":latest");
            short.into_iter().chain([id.as_str()])
        })
        .map(|id| (id.to_ascii_lowercase(), id))
        // Another tag of the name asked (`llama3.1:8b` for `llama3.1:70b`) is another
        // size, not a typo: the suggestions list it first.
        .filter(|(lower, _)| lower.split(':').next() != asked.split(':').next())
        .collect();
    let near = crate::config::nearest(&asked, names.iter().map(|(lower, _)| lower.as_str()))?;
    let (_, shown) = names.iter().find(|(lower, _)| lower == near)?;
    let pin = pinned.map(|p| format!("{p}:")).unwrap_or_default();
    (near != asked).then(|| format!("Did you mean `{pin}{shown}`?"))
}

/// The names the README and `routeplane.example.yaml` give their virtual models: a
/// newcomer asks for one before defining it.
const EXAMPLE_VIRTUALS: &[&str] = &["smart"];

/// For a README example's virtual model (`smart`) the config does not define: where it
/// is defined, instead of `ollama pull smart`, which pulls nothing.
fn virtual_hint(reg: &Registry, model: &str) -> Option<String> {
    let name = EXAMPLE_VIRTUALS
        .iter()
        .find(|n| n.eq_ignore_ascii_case(model))?;
    let none = if reg.virtuals.is_empty() {
        "this config defines no virtual models"
    } else {
        "this config does not define it"
    };
    Some(format!(
        "`{name}` is the README's example of a virtual model, and {none}: define it under \
         a top-level `models:` with the endpoints to try in order (see \
         the commented example `routeplane init` writes, or the README's Configuration)"
    ))
}

/// For a name an Ollama that is up has not pulled: the command that pulls it, with the
/// model's own name (`ollama:qwen2` is pulled as `qwen2`). Not for a name pinned to
/// another source, nor a hosted vendor's (`gpt-4o`), which [`credential_hint`]
/// answers, nor one that is no model name at all.
fn pull_hint(reg: &Registry, detected: &Detected, model: &str) -> Option<String> {
    let p = reg.providers.iter().find(|p| p.is_ollama() && p.detect)?;
    // Only the part before the first colon can name a source (`llama3.1:8b` is a tag).
    let model = match model.split_once(':') {
        Some((pid, rest)) => match reg.provider_for(pid) {
            Some(named) if named.id == p.id => rest,
            Some(_) => return None,
            None => model,
        },
        None => model,
    };
    if registry::family_of(model).is_some()
        || model.is_empty()
        || model.contains(char::is_whitespace)
    {
        return None;
    }
    // Without its list, whether it pulled the model is not known.
    detected.state(&p.id).filter(|s| s.up && !s.list_failed())?;
    Some(format!(
        "{} is up and has not pulled it: run `ollama pull {model}`",
        p.id
    ))
}

/// For a provider named the wrong way: `openai/gpt-4o` (OpenRouter's way) for a
/// provider `openai` that can serve it, or a provider's id a letter or two away
/// (`olama:llama3.1`), unless a tag follows the colon (`mixtral:8x7b` is a model).
fn provider_hint(reg: &Registry, model: &str) -> Option<String> {
    if let Some((vendor, rest)) = model.split_once('/')
        && let Some(p) = reg.provider(vendor)
        && (p.key.is_some() || p.source_kind() == registry::Kind::Local)
    {
        return Some(format!(
            "A provider is named before a colon: to ask `{}`, name it `{}:{rest}`",
            p.id, p.id
        ));
    }
    let (named, rest) = model.split_once(':')?;
    if reg.provider(named).is_some() || registry::looks_like_tag(rest) {
        return None;
    }
    let near = crate::config::nearest(named, reg.providers.iter().map(|p| &*p.id))?;
    Some(format!(
        "`{named}` is no provider; did you mean `{near}:{rest}`?"
    ))
}

/// How little a served `id` looks like the `asked` name (in lower case), 0 to 2: it
/// holds the whole name (`ollama:llama3.1:8b` for `llama3.1`), else the name before its
/// tag (`llama3.1:8b` for `llama3.1:70b`), else nothing of it. Case is ignored.
pub(super) fn unlikeness(asked: &str, id: &str) -> u8 {
    let id = id.to_ascii_lowercase();
    let base = asked.split(':').next().unwrap_or_default();
    if asked.is_empty() {
        2
    } else if id.contains(asked) {
        0
    } else if !base.is_empty() && id.contains(base) {
        1
    } else {
        2
    }
}

/// For a bare `model` that a subscription login lists: the name that reaches it.
fn login_hint(detected: &Detected, model: &str) -> Option<String> {
    let id = detected.login_listing(model)?;
    Some(format!(
        "`{id}` lists `{model}` through a subscription login, which a bare name never \
         uses: name it `{id}:{model}`"
    ))
}

/// For a `model` named like a built-in hosted provider's models (`gpt-4o`) while that
/// provider has no key: the credentials that would serve it, or, with a login of its
/// vendor's subscription, the name that spends it. `None` with a key: its list would
/// then have named the model.
fn credential_hint(
    reg: &Registry,
    detected: &Detected,
    model: &str,
    example: Option<&str>,
) -> Option<String> {
    let family = registry::family_of(model)?;
    let p = reg.provider(family.provider)?;
    if p.key.is_some() || p.key_vars.is_empty() {
        return None;
    }
    if let Some(login) = family.login.and_then(|l| detected.login_of(l)) {
        // ChatGPT's plan serves a list of its own, not every OpenAI model.
        let caveat = if family.login == Some(p.id.as_str()) {
            ""
        } else {
            " (if the plan serves that model)"
        };
        return Some(format!(
            "A bare name never spends a subscription login: to ask your `{login}` login, \
             name it `{login}:{model}`{caveat}"
        ));
    }
    let refused = auth::set_to_no_key(p).map_or(String::new(), |r| r + "; ");
    let mut hint = format!(
        "`{model}` looks like {} model: {refused}set {}",
        family.vendor,
        auth::key_vars_shown(p)
    );
    if let Some(login) = family.login {
        // A login's models are never named bare. The vendor's own login serves its
        // names; another (ChatGPT's for OpenAI) serves a list of its own.
        let named = if login == p.id {
            format!("it `{login}:{model}`")
        } else {
            format!("a model it lists `{login}:MODEL`")
        };
        hint.push_str(&format!(
            ", or run `routeplane login {login}` and name {named}"
        ));
    }
    if let Some(prefix) = family.openrouter
        && let Some(or) = reg.provider("openrouter")
    {
        hint.push_str(&format!(", or name it `openrouter:{prefix}{model}`"));
        if or.key.is_none()
            && let Some(var) = or.key_vars.get(1)
        {
            hint.push_str(&format!(" with {var} set"));
        }
    }
    // Claude Code and Codex send their vendor's names whatever they are pointed at.
    if let Some(endpoint) = example {
        hint.push_str(&format!(
            "; or, for a client that sends this name itself, define a virtual model \
             `{model}` under `models:` with endpoints such as `{endpoint}`"
        ));
    }
    Some(hint)
}
