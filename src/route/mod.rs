//! Which targets a request tries, in what order: pins, cascades, virtual models, cool-down.
//!
//! A model string resolves in this order: a virtual model name; `provider:model`,
//! where only the text before the FIRST colon can be a provider id and only when it
//! names a known provider (so the Ollama tag in `llama3.1:8b` survives); a bare name,
//! which cascades over the providers that declare or serve it, in config order. A
//! name without a tag at a local source that lists only `NAME:latest` (Ollama) is
//! routed as that listed name, pinned or bare.
//! Nothing here sends anything: `routeplane route MODEL` prints this module's answer.
//! What a 404 says of a model nothing serves is in `unknown.rs`; the cool-down list in
//! `cooldown.rs`.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

use crate::detect::Detected;
use crate::error::Error;
use crate::protocol::Protocol;
use crate::registry::{self, Provider, Registry, Target};
use crate::sync::Spare;

mod cooldown;
mod unknown;

pub use cooldown::{Cooldown, Failed, SharedCooldown, cooling_last, last_hope};
pub use unknown::{own_block, unknown};

thread_local! {
    /// This thread's list for a request's targets, kept between requests.
    static TARGETS: Cell<Vec<Target>> = const { Cell::new(Vec::new()) };
}

/// Resolves one model string to its targets, in order.
pub fn resolve(reg: &Registry, detected: &Detected, model: &str) -> Result<Vec<Target>, Error> {
    let mut targets = Vec::new();
    resolve_into(reg, detected, model, &mut targets)?;
    Ok(targets)
}

/// [`resolve`], adding the targets to `targets`.
fn resolve_into(
    reg: &Registry,
    detected: &Detected,
    model: &str,
    targets: &mut Vec<Target>,
) -> Result<(), Error> {
    if let Some(v) = reg.virtual_model(model) {
        for (i, (pid, m)) in v.endpoints.iter().enumerate() {
            // Endpoints were checked against the registry when it was built.
            if let Some(p) = reg.provider_for(pid) {
                let mut t = named(&p, detected, m);
                t.first_token = v.first_token.get(i).copied().flatten();
                targets.push(t);
            }
        }
        return Ok(());
    }
    if let Some((pid, m)) = model.split_once(':')
        && let Some(p) = reg.provider_for(pid)
    {
        if m.is_empty() {
            return Err(Error::bad_request(format!(
                "`{model}` names provider `{pid}` but no model; write `{pid}:MODEL`"
            )));
        }
        // `ollama:llama3.1 ` (a client's setting copied with a space or a line end) went
        // upstream as written, whose "model not found" did not show the space: told as a
        // bare name with spaces around it is.
        if m.starts_with(char::is_whitespace) || m.ends_with(char::is_whitespace) {
            return Err(unknown(reg, detected, model));
        }
        // `mistral:7b` is also Ollama's name for a model. A built-in hosted provider the
        // user gave neither a key nor a block cannot serve it; a source that serves the
        // whole name does.
        let idle = p.source_kind() == registry::Kind::Hosted && !p.configured && p.key.is_none();
        if !(idle && cascade(reg, detected, model, targets)) {
            targets.push(named(&p, detected, m));
        }
        return Ok(());
    }
    if !cascade(reg, detected, model, targets) {
        // Not a typo when a local source that is down now served it: say so (503).
        if let Some((p, until)) = reg
            .providers
            .iter()
            .filter(|p| p.detect)
            .find_map(|p| Some((p, detected.served_until(&p.id, model)?)))
        {
            return Err(Error::SourceDown {
                source: format!("{} ({})", p.id, crate::log::host_of(&p.api_base)),
                model: model.to_string(),
                until: crate::time::utc_time(until),
            });
        }
        // Last: a local server that lists the name (Ollama's `mistral-large:latest` for
        // `mistral-large`) serves it above, before a vendor is guessed from the name.
        let Some(p) = unlisted_vendor(reg, detected, model) else {
            return Err(unknown(reg, detected, model));
        };
        targets.push(Target::new(p, model));
    }
    Ok(())
}

/// Adds the targets of a bare name: every source that declares or serves it, in config
/// order. False when there is none.
fn cascade(reg: &Registry, detected: &Detected, model: &str, targets: &mut Vec<Target>) -> bool {
    let before = targets.len();
    let look = detected.look();
    // Only a source that is up cascades (`Look::cascades`): with none up, none is asked.
    let any_up = look.any_up();
    targets.extend(
        reg.providers
            .iter()
            // Cheapest test first: only listed sources (local servers, and hosted providers
            // asked with their key; a list fetched with a login never cascades) have a
            // state to look up.
            .filter_map(|p| {
                if let Some(m) = p.models.iter().find(|m| m.id == model) {
                    return look.is_active(p).then(|| Target::declared(p, m));
                }
                if !(any_up && (p.detect || p.key.is_some())) {
                    return None;
                }
                listed_target(&look, p, model)
            }),
    );
    targets.len() > before
}

/// The target of a bare name at a source whose list of models has it, if that source is
/// up. Out of line: the usual request's name is declared, and this is not run for it.
#[inline(never)]
fn listed_target(look: &crate::detect::Look<'_>, p: &Arc<Provider>, model: &str) -> Option<Target> {
    // Only a source that is up cascades: no second look at its state.
    let name = look.cascades(&p.id, model, p.detect)?;
    Some(Target::new(p, &name))
}

/// The built-in hosted provider whose model `model` is by its name (`gpt-4o` at
/// OpenAI; a `vendor/model` at OpenRouter), when it has a key but no list of its
/// models: its key may not be allowed to list them (OpenAI's restricted keys), the
/// listing failed, or it has not answered yet after a start. The model is asked of it
/// as named; with a list, the list decides.
fn unlisted_vendor<'r>(
    reg: &'r Registry,
    detected: &Detected,
    model: &str,
) -> Option<&'r Arc<Provider>> {
    let p = reg.provider(registry::family_of(model)?.provider)?;
    // A login that carries the provider's requests is not spent on bare names.
    let usable = p.key.is_some() && !detected.login_took_over(&p.id);
    (usable && !detected.known(&p.id)).then_some(p)
}

/// A target for `model` named with its provider (`ollama:llama3.1`, or a virtual
/// model's endpoint): as written, or at a local source that lists only `model:latest`,
/// as listed, so that it is one endpoint with one label and one cool-down however named.
///
/// At an Ollama that is up and does not list it, a listed name a letter or two from it
/// goes with it ([`Target::near`]), for its "not found": only its list's one pass is
/// spent on a name it lists.
fn named(p: &Arc<Provider>, detected: &Detected, model: &str) -> Target {
    if !p.detect || p.declares(model) {
        return Target::new(p, model);
    }
    match detected.pinned(&p.id, model, p.is_ollama()) {
        Some(listed) => Target::new(p, listed.as_deref().unwrap_or(model)),
        None => {
            let mut t = Target::new(p, model);
            let listed = detected.models(&p.id);
            t.near = unknown::near_hint(&listed, model, Some(&p.id)).map(Into::into);
            t
        }
    }
}

/// `model` named with its provider `p`, as [`named`] sends it: as written, or the
/// `model:latest` a local source lists instead ([`Detected::latest_of`]).
fn as_listed<'m>(p: &Provider, detected: &Detected, model: &'m str) -> Cow<'m, str> {
    let listed = (p.detect && !p.declares(model))
        .then(|| detected.latest_of(&p.id, model))
        .flatten();
    listed.map_or(Cow::Borrowed(model), Cow::Owned)
}

/// Resolves a request's `models` list (or its single `model`) to one ordered target list;
/// ids of a list that nothing serves are passed over, and the first one's error is
/// returned when none is left.
pub fn resolve_all(
    reg: &Registry,
    detected: &Detected,
    models: &[String],
) -> Result<Spare<Vec<Target>>, Error> {
    let mut out = Spare::take(&TARGETS);
    // The usual request names one model: its error is the request's, and the list and
    // the pass over repeats stay out of its code lines (issue 16).
    match models {
        [m] => resolve_into(reg, detected, m, &mut out)?,
        _ => resolve_list(reg, detected, models, &mut out)?,
    }
    if out.len() > 1 {
        keep_first_of_each(&mut out);
    }
    Ok(out)
}

/// [`resolve_all`] of a `models` list, adding its targets to `out`.
#[inline(never)]
fn resolve_list(
    reg: &Registry,
    detected: &Detected,
    models: &[String],
    out: &mut Vec<Target>,
) -> Result<(), Error> {
    let mut first_miss = None;
    for m in models {
        match resolve_into(reg, detected, m, out) {
            Ok(()) => {}
            // In a `models` list the next id is there for when one cannot answer: one
            // nothing serves (`gpt-4o` without a key) is passed over like one that fails.
            Err(e @ (Error::UnknownModel { .. } | Error::SourceDown { .. }))
                if models.len() > 1 =>
            {
                let why = match e {
                    Error::SourceDown { .. } => "only a source now down served it",
                    _ => "nothing serves it",
                };
                // Quoted and escaped: a client's name must not forge a log line.
                crate::log::line(format!("`models`: passing over {m:?}: {why}"));
                first_miss.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    match first_miss {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(()),
    }
}

/// Keeps each endpoint at most once, at its first place (a virtual model may list one
/// twice).
#[inline(never)]
fn keep_first_of_each(out: &mut Vec<Target>) {
    let mut kept = 0;
    for i in 0..out.len() {
        let t = &out[i];
        let seen = out[..kept]
            .iter()
            .any(|o| o.provider.id == t.provider.id && o.model() == t.model());
        if !seen {
            // Not swapped with itself: a target is 64 bytes, and most lists are kept whole.
            if kept != i {
                out.swap(kept, i);
            }
            kept += 1;
        }
    }
    out.truncate(kept);
}

/// Keeps the targets that can take a legacy completion (`/v1/completions`): those that
/// speak Chat Completions, whose servers answer `/completions` too; each is then asked
/// as a completions source. An error naming what the others speak when none is left.
pub fn for_completions(targets: &mut Vec<Target>, model: &str) -> Result<(), Error> {
    if !targets.iter().any(|t| t.protocol == Protocol::Chat) {
        let others: Vec<String> = (targets.iter())
            .map(|t| format!("`{}` ({})", t.label(), t.protocol.name()))
            .collect();
        return Err(Error::bad_request(format!(
            "model `{model}` is served by {}, which speaks no legacy completions: \
             /v1/completions goes only to sources that speak OpenAI's Chat Completions API \
             (Ollama, vLLM, llama.cpp, LM Studio, OpenAI, OpenRouter); ask \
             /v1/chat/completions instead, or name such a source",
            others.join(", ")
        )));
    }
    targets.retain(|t| t.protocol == Protocol::Chat);
    for t in targets.iter_mut() {
        t.protocol = Protocol::Completions;
    }
    Ok(())
}

/// Every id a client can name: virtual models, bare ids, `provider:id`, with their owner.
pub fn routable(reg: &Registry, detected: &Detected) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = reg
        .virtuals
        .iter()
        .map(|v| (v.name.clone(), "routeplane".to_string()))
        .collect();
    let mut qualified = Vec::new();
    for p in &reg.providers {
        let mut ids: Vec<String> = p.models.iter().map(|m| m.id.clone()).collect();
        for d in detected.models(&p.id) {
            if !ids.contains(&d) {
                ids.push(d);
            }
        }
        let bare_listed = detected.bare_names(&p.id);
        for id in &ids {
            let bare = bare_listed || p.declares(id);
            if bare && detected.is_active(p) && !out.iter().any(|(o, _)| o == id) {
                out.push((id.clone(), p.id.clone()));
            }
            qualified.push((format!("{}:{id}", p.id), p.id.clone()));
        }
        // A virtual model's endpoint at a block of one's own serves when named with its
        // provider, though the block may list nothing (a server without `GET /models`).
        if own_block(&p.id) {
            for m in endpoint_models(reg, &p.id).filter(|m| !ids.contains(m)) {
                let id = format!("{}:{m}", p.id);
                if !qualified.iter().any(|(q, _)| *q == id) {
                    qualified.push((id, p.id.clone()));
                }
            }
        }
    }
    out.extend(qualified);
    out
}

/// The models virtual models name at provider `pid`, as written in their endpoints.
pub fn endpoint_models<'r>(reg: &'r Registry, pid: &'r str) -> impl Iterator<Item = &'r String> {
    (reg.virtuals.iter())
        .flat_map(|v| &v.endpoints)
        .filter(move |(p, _)| p == pid)
        .map(|(_, m)| m)
}

/// The entry of [`routable`] a client means by `model`: the id listed as written, or the
/// one routing would send it to, so that `llama3.1` finds the `llama3.1:latest` a local
/// source lists (and `ollama:llama3.1` finds `ollama:llama3.1:latest`).
pub fn listed(reg: &Registry, detected: &Detected, model: &str) -> Option<(String, String)> {
    let ids = routable(reg, detected);
    let find = |id: &str| ids.iter().find(|(listed, _)| listed == id).cloned();
    if let Some(entry) = find(model) {
        return Some(entry);
    }
    // Read as `resolve_into` reads it: a known provider before the first colon pins.
    let implied = if let Some((pid, m)) = model.split_once(':')
        && let Some(p) = reg.provider_for(pid)
    {
        format!("{}:{}", p.id, as_listed(&p, detected, m))
    } else {
        reg.providers
            .iter()
            .filter(|p| p.detect)
            .find_map(|p| detected.cascades(&p.id, model, true))?
            .into_owned()
    };
    find(&implied)
}

#[cfg(test)]
mod tests;
