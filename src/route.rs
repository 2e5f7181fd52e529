//! Which targets a request tries, in what order: pins, cascades, virtual models, cool-down.
//!
//! A model string resolves in this order: a virtual model name; `provider:model`,
//! where only the text before the FIRST colon can be a provider id and only when it
//! names a known provider (so the Ollama tag in `llama3.1:8b` survives); a bare name,
//! which cascades over the providers that declare or serve it, in config order. A
//! name without a tag at a local source that lists only `NAME:latest` (Ollama) is
//! routed as that listed name, pinned or bare.
//! Nothing here sends anything: `routeplane route MODEL` prints this module's answer.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::auth;
use crate::detect::Detected;
use crate::error::Error;
use crate::protocol::Protocol;
use crate::registry::{self, Provider, Registry, Target, provider_of};
use crate::sync::Spare;

/// How many known ids a 404 suggests.
const SUGGESTIONS: usize = 6;

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
        // `mistral:7b` is also Ollama's name for a model. A built-in hosted provider the
        // user gave neither a key nor a block cannot serve it; a source that serves the
        // whole name does.
        let idle = p.kind == registry::Kind::Hosted && !p.configured && p.key.is_none();
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
    targets.extend(
        reg.providers
            .iter()
            // Cheapest test first: only listed sources (local servers, and hosted providers
            // asked with their key; a list fetched with a login never cascades) have a
            // state to look up.
            .filter_map(|p| {
                if p.declares(model) {
                    return detected.is_active(p).then(|| Target::new(p, model));
                }
                if !(p.detect || p.key.is_some()) {
                    return None;
                }
                // Only a source that is up cascades: no second look at its state.
                let name = detected.cascades(&p.id, model, p.detect)?;
                Some(Target::new(p, &name))
            }),
    );
    targets.len() > before
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

/// The error for a model nothing serves, with some that are served as suggestions (those
/// named like it first), and what would serve it when its name is a hosted provider's
/// (`credential_hint`).
pub fn unknown(reg: &Registry, detected: &Detected, model: &str) -> Error {
    let mut known = routable_ids(reg, detected);
    let asked = model.to_ascii_lowercase();
    let hint = login_hint(detected, model)
        .or_else(|| tag_hint(&known, model))
        .or_else(|| provider_hint(reg, model))
        .or_else(|| endpoint_hint(reg, model))
        .or_else(|| {
            // What serves a name like it, and beside that the blocks that may serve it
            // though nothing lists it.
            let like =
                credential_hint(reg, detected, model).or_else(|| pull_hint(reg, detected, model));
            match (like, unlisted_hint(reg, detected, model)) {
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
    let shown: Vec<&str> = (reg.providers.iter())
        .filter(|p| own_block(&p.id) && p.models.is_empty())
        .filter(|p| !detected.state(&p.id).is_some_and(|s| s.up))
        .map(|p| p.id.as_str())
        .take(3)
        .collect();
    Some(match shown.as_slice() {
        [] => return None,
        [one] => format!(
            "`{one}` lists no models, so no bare name reaches it: if it serves `{model}`, \
             name it `{one}:{model}`, or declare `{model}` under `models:` of `{one}`"
        ),
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
/// the names that reach it. Before any vendor's hint: a local model is what was meant.
fn tag_hint(known: &[String], model: &str) -> Option<String> {
    let tagged: Vec<String> = known
        .iter()
        .filter(|id| {
            id.split_once(':')
                .is_some_and(|(name, _)| name.eq_ignore_ascii_case(model))
        })
        .map(|id| format!("`{id}`"))
        .collect();
    (!tagged.is_empty()).then(|| {
        format!(
            "`{model}` is served with a tag: name {}",
            tagged.join(" or ")
        )
    })
}

/// For a name an Ollama that is up has not pulled: the command that pulls it. Not for
/// a name of a hosted vendor's (`gpt-4o`), which [`credential_hint`] answers, nor one
/// that is no model name at all.
fn pull_hint(reg: &Registry, detected: &Detected, model: &str) -> Option<String> {
    if registry::family_of(model).is_some()
        || model.is_empty()
        || model.contains(char::is_whitespace)
    {
        return None;
    }
    let p = reg.providers.iter().find(|p| p.is_ollama() && p.detect)?;
    detected.state(&p.id).filter(|s| s.up)?;
    Some(format!(
        "{} is up and has not pulled it: run `ollama pull {model}`",
        p.id
    ))
}

/// For a provider named the wrong way: `openai/gpt-4o` (OpenRouter's way) for a
/// provider `openai` that can serve it, or a provider's id a letter or two away
/// (`olama:llama3.1`).
fn provider_hint(reg: &Registry, model: &str) -> Option<String> {
    if let Some((vendor, rest)) = model.split_once('/')
        && let Some(p) = reg.provider(vendor)
        && (p.key.is_some() || p.kind == registry::Kind::Local)
    {
        return Some(format!(
            "a provider is named before a colon: to ask `{}`, name it `{}:{rest}`",
            p.id, p.id
        ));
    }
    let (named, rest) = model.split_once(':')?;
    if reg.provider(named).is_some() {
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
fn unlikeness(asked: &str, id: &str) -> u8 {
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
fn credential_hint(reg: &Registry, detected: &Detected, model: &str) -> Option<String> {
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
    let mut hint = format!(
        "`{model}` looks like {} model: set {}",
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
    Some(hint)
}

/// A target for `model` named with its provider (`ollama:llama3.1`, or a virtual
/// model's endpoint): as written, or at a local source that lists only `model:latest`,
/// as listed, so that it is one endpoint with one label and one cool-down however named.
fn named(p: &Arc<Provider>, detected: &Detected, model: &str) -> Target {
    Target::new(p, &as_listed(p, detected, model))
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
    let mut first_miss = None;
    for m in models {
        match resolve_into(reg, detected, m, &mut out) {
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
    if out.is_empty()
        && let Some(e) = first_miss
    {
        return Err(e);
    }
    // Each endpoint at most once per request (a virtual model may list one twice).
    let mut kept = 0;
    for i in 0..out.len() {
        let t = &out[i];
        let seen = out[..kept]
            .iter()
            .any(|o| o.provider.id == t.provider.id && o.model() == t.model());
        if !seen {
            out.swap(kept, i);
            kept += 1;
        }
    }
    out.truncate(kept);
    Ok(out)
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

/// The ids of [`routable`], for suggestions.
fn routable_ids(reg: &Registry, detected: &Detected) -> Vec<String> {
    routable(reg, detected)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// What a failure said of its server, which decides what may end its cool-down early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// The server was not serving: down, restarting, still loading, without the model
    /// (refused, a reset, a 404, a 5xx). A detection probe it answers says it is back.
    NotServing,
    /// The server was busy or slow (a 429, a timeout, a stall), or named how long to
    /// wait: a probe it answers says nothing of that, so only time ends it.
    Busy {
        /// How long the server asked to be left alone.
        retry_after: Option<Duration>,
    },
}

/// One cool-down: when it began, when it ends, and why.
#[derive(Debug)]
struct Entry {
    failed: Instant,
    until: Instant,
    why: Failed,
}

/// Endpoints that failed recently, tried last until their time is up.
#[derive(Debug)]
pub struct Cooldown {
    /// `provider:model` → its cool-down.
    until: Mutex<HashMap<String, Entry>>,
    /// How many entries `until` holds, read without its lock: every request looks
    /// twice, the list is nearly always empty, and a worker preempted while holding a
    /// lock every worker takes held up all of them (futex waits at 32 clients). Kept by
    /// [`Locked`]'s drop, whatever changed the list.
    entries: AtomicUsize,
    default: Duration,
}

impl Cooldown {
    /// A cool-down list whose entries last `default` unless the upstream said otherwise.
    pub fn new(default: Duration) -> Cooldown {
        Cooldown {
            until: Mutex::new(HashMap::new()),
            entries: AtomicUsize::new(0),
            default,
        }
    }

    /// Records a failure of `target`; a `retry_after` overrides the default length.
    pub fn fail(&self, target: &Target, why: Failed) {
        let retry_after = match why {
            Failed::Busy { retry_after } => retry_after,
            Failed::NotServing => None,
        };
        let len = retry_after
            .unwrap_or(self.default)
            .min(Duration::from_secs(3600));
        let failed = Instant::now();
        let entry = Entry {
            failed,
            until: failed + len,
            why,
        };
        self.lock().insert(target.label().to_string(), entry);
    }

    /// Records a success: the endpoint is trusted again.
    pub fn clear(&self, target: &Target) {
        if self.entries.load(Ordering::Acquire) == 0 {
            return;
        }
        self.lock().remove(target.label());
    }

    /// Ends the cool-downs of a provider's endpoints that were not serving before `since`
    /// (a detection probe sent then was answered: the server is back). A busy one's stay:
    /// a model list says nothing of a 429 or of a slow first token.
    pub fn forgive(&self, provider: &str, since: Instant) {
        if self.entries.load(Ordering::Acquire) == 0 {
            return;
        }
        self.lock().retain(|label, e| {
            !(e.why == Failed::NotServing && provider_of(label) == provider && e.failed < since)
        });
    }

    /// What is left of `label`'s cool-down, if it is cooling down.
    pub fn left(&self, label: &str) -> Option<Duration> {
        let until = self.lock().get(label)?.until;
        Some(until.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// Endpoints cooling down now, with the time left for each, sorted.
    pub fn snapshot(&self) -> Vec<(String, Duration)> {
        let map = self.lock();
        let now = Instant::now();
        let mut out: Vec<(String, Duration)> = map
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|(label, e)| (label.clone(), e.until - now))
            .collect();
        out.sort();
        out
    }

    /// Orders targets: those not cooling down first, each group in its given order; and
    /// how many lead that are not cooling down. Borrowed as given when nothing cools
    /// down, as on almost every request.
    pub fn order<'t>(&self, targets: &'t [Target]) -> (Cow<'t, [Target]>, usize) {
        if self.entries.load(Ordering::Acquire) == 0 {
            return (Cow::Borrowed(targets), targets.len());
        }
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, e| e.until > now);
        let (ordered, warm) = cooling_last(targets, |t| map.contains_key(t.label()));
        (Cow::Owned(ordered), warm)
    }

    /// The list, locked; `entries` follows its length when the lock is let go.
    fn lock(&self) -> Locked<'_> {
        Locked {
            map: crate::sync::lock(&self.until),
            entries: &self.entries,
        }
    }
}

/// `targets` with those `cooling` after the rest, each group in its given order; and how
/// many lead that are not cooling down.
pub fn cooling_last(targets: &[Target], cooling: impl Fn(&Target) -> bool) -> (Vec<Target>, usize) {
    let (cool, warm): (Vec<&Target>, Vec<&Target>) = targets.iter().partition(|t| cooling(t));
    let leading = warm.len();
    (warm.into_iter().chain(cool).cloned().collect(), leading)
}

/// Where, in targets in the order tried ([`Cooldown::order`]), the last hope begins:
/// from this index on, no later endpoint could answer, so each waits out a slow first
/// token rather than giving up on it. A later endpoint is worth moving on to only when
/// it is not cooling down (among the first `warm`) and has its key or login, since one
/// without fails at once.
pub fn last_hope(
    targets: &[Target],
    warm: usize,
    lacks_credential: impl Fn(&Provider) -> bool,
) -> usize {
    if targets.len() < 2 {
        return 0;
    }
    let mut hopes = targets.iter().enumerate().take(warm).rev();
    hopes
        .find(|(_, t)| !lacks_credential(&t.provider))
        .map_or(0, |(i, _)| i)
}

/// The cool-down list under its lock.
struct Locked<'a> {
    map: MutexGuard<'a, HashMap<String, Entry>>,
    entries: &'a AtomicUsize,
}

impl std::ops::Deref for Locked<'_> {
    type Target = HashMap<String, Entry>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

impl Drop for Locked<'_> {
    /// Stored before the lock is let go, so a reader of `entries` is never behind a change.
    fn drop(&mut self) {
        self.entries.store(self.map.len(), Ordering::Release);
    }
}

/// Shared handle to the cool-down list.
pub type SharedCooldown = Arc<Cooldown>;

#[cfg(test)]
mod tests {
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
        c.fail(&targets[0], Failed::NotServing);
        c.fail(&targets[1], Failed::NotServing);
        c.forgive("ollama", Instant::now());
        assert_eq!(
            c.snapshot().into_iter().map(|(l, _)| l).collect::<Vec<_>>(),
            ["other:shared-v2"]
        );
        let before = Instant::now();
        c.fail(&targets[0], Failed::NotServing);
        c.forgive("ollama", before);
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
        c.forgive("ollama", Instant::now() + Duration::from_secs(1));
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
        c.forgive("ollama", Instant::now() + Duration::from_secs(1));
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
}
