//! Asking sources for their model lists: a local server probed (its native listing,
//! then `/models`), hosted providers' lists fetched with their key or login, and the
//! shapes those lists come in.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Detected, SAID_AT_MOST, SourceState};
use crate::auth::Auth;
use crate::log;
use crate::registry::{Provider, Target};
use crate::upstream::{Client, Header, HeaderValue};

/// Built-in hosted providers whose model list is asked for (with their key or login),
/// and the query their listing needs to come whole.
const HOSTED_LISTINGS: &[(&str, &str)] = &[
    ("openai", ""),
    ("openrouter", ""),
    ("mistral", ""),
    // Anthropic pages its list, 20 models by default.
    ("anthropic", "?limit=1000"),
];

/// The most bytes read from one model listing (OpenRouter's, with descriptions and
/// prices for every model, is the largest).
const LISTING_LIMIT: u64 = 16 * 1024 * 1024;

/// Asks one source for its models; with the status it refused its key with, if it did.
pub fn probe(client: &Client, p: &Provider, timeout: Duration) -> (SourceState, Option<u16>) {
    let headers: Vec<Header> = p
        .key
        .iter()
        .map(|k| ("authorization".into(), HeaderValue::Bearer(k.clone())))
        .collect();
    let mut last_error = String::new();
    let mut answered = false;
    // The server's own listing says which models only embed; the OpenAI-style one
    // does not.
    let native = match p.id.as_str() {
        _ if p.is_ollama() => Some("/api/tags"),
        "lmstudio" => Some("/api/v0/models"),
        _ => None,
    };
    if let Some(path) = native {
        let root = p.api_base.trim_end_matches("/v1");
        match list(
            client,
            (&format!("{root}{path}"), ""),
            &headers,
            timeout,
            p.own_base,
        ) {
            Ok(models) => return (up(models), None),
            Err(e) => {
                answered = e.answered && e.key_refused.is_none();
                last_error = e.why;
            }
        }
    }
    match list(
        client,
        (&format!("{}/models", p.api_base), ""),
        &headers,
        timeout,
        p.own_base,
    ) {
        Ok(models) => (up(models), None),
        Err(Unlisted {
            why: e,
            key_refused,
            answered: also,
        }) => {
            let state = SourceState {
                // Something listens there and answered, not with a list: it may chat
                // all the same (a server without a model list), so it is not down. A
                // refused key is told as such, the source down as before.
                up: (answered || also) && key_refused.is_none(),
                reason: if last_error.is_empty() || e == last_error {
                    e
                } else {
                    format!("{e}; {last_error}")
                },
                ..SourceState::default()
            };
            (state, key_refused)
        }
    }
}

/// The models a listing named.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Listing {
    /// Those to chat with.
    pub(super) chat: Vec<String>,
    /// Those the server says only embed.
    pub(super) embeddings: Vec<String>,
}

pub(super) fn up(listed: Listing) -> SourceState {
    SourceState {
        up: true,
        models: listed.chat,
        embeddings: listed.embeddings,
        ..SourceState::default()
    }
}

/// Why a model listing failed.
#[derive(Debug)]
struct Unlisted {
    /// The server refused the credential sent: a 401, or a 403 that does not say the
    /// key only lacks the right to list (OpenAI's restricted keys: "Missing scopes").
    key_refused: Option<u16>,
    /// What happened, for the log and stderr.
    why: String,
    /// The server answered (with a status or a body that is no list): something listens
    /// there. False when nothing answered (refused, timed out, cut off).
    answered: bool,
}

impl Unlisted {
    /// A listing the server answered, not with a model list.
    fn answered(why: String) -> Unlisted {
        Unlisted {
            key_refused: None,
            why,
            answered: true,
        }
    }
}

/// True for a refusal that says the key may not do this one thing, not that it is no
/// key: OpenAI's restricted keys list no models ("You have insufficient permissions for
/// this operation. Missing scopes: api.model.read.") and serve requests well.
fn lacks_a_scope(said: &str) -> bool {
    let said = said.to_ascii_lowercase();
    said.contains("missing scope") || said.contains("insufficient permissions")
}

/// GETs a listing, at `url` with Routeplane's own `query` after it (`?limit=1000`), and
/// reads model names from either known shape. `own_base`: the user wrote the provider's
/// `api_base`, which a host that does not resolve then names (else only the network).
fn list(
    client: &Client,
    (url, query): (&str, &str),
    headers: &[Header],
    timeout: Duration,
    own_base: bool,
) -> Result<Listing, Unlisted> {
    let asked = format!("{url}{query}");
    let (status, body) = client
        .get(&asked, headers, timeout, LISTING_LIMIT)
        .map_err(|e| Unlisted {
            key_refused: None,
            why: match own_base {
                true => e.to_string(),
                false => e.network_only().to_string(),
            },
            answered: false,
        })?;
    // Only what came from the config may hold a key; our own query is shown as it is.
    let url = format!("{}{query}", crate::log::shown_url(url));
    if !(200..300).contains(&status) {
        // A listing holds no prompt, so its error's words can be shown; never the
        // credential, should a server echo what it was sent. On one line: an error
        // page's HTML spreads over many.
        let body = crate::upstream::without_credentials(&body, headers).unwrap_or(body);
        let message = crate::protocol::upstream_error_message(&body);
        let words = message.split_whitespace().collect::<Vec<_>>().join(" ");
        // Escaped here, where the server's words come in: they reach the log, stderr
        // and the status page.
        let said = log::printable(&words, 200);
        let key_refused =
            (status == 401 || (status == 403 && !lacks_a_scope(&said))).then_some(status);
        return Err(Unlisted {
            key_refused,
            why: format!("{url} answered {status}: {said}"),
            answered: true,
        });
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|_| Unlisted::answered(format!("{url} answered something other than JSON")))?;
    model_names(&v)
        .ok_or_else(|| Unlisted::answered(format!("{url} answered without a model list")))
}

/// Model names from `{"data": [{"id"}]}` (OpenAI style, `data` may be null; LM
/// Studio's `/api/v0/models` in that shape) or `{"models": [{"name"|"model"}]}`
/// (Ollama's native listing), each sorted by what the server says it does.
fn model_names(v: &Value) -> Option<Listing> {
    let mut listed = Listing::default();
    let mut add = |name: Option<&str>, embeds: bool| {
        // A name with a control character (an escape sequence, a line end) or a
        // bidirectional one is no model anyone can ask for; printed, it would rewrite
        // the terminal or a log, or read as another name.
        if let Some(name) = name.filter(|n| !n.chars().any(log::unprintable)) {
            let to = match embeds {
                true => &mut listed.embeddings,
                false => &mut listed.chat,
            };
            to.push(name.to_string());
        }
    };
    if let Some(data) = v.get("data") {
        for m in data.as_array().map(Vec::as_slice).unwrap_or_default() {
            // LM Studio's own listing; its `/v1/models`, like the others', says nothing.
            add(m["id"].as_str(), m["type"] == "embeddings");
        }
        return Some(listed);
    }
    for m in v.get("models")?.as_array()? {
        add(m["name"].as_str().or(m["model"].as_str()), ollama_embeds(m));
    }
    Some(listed)
}

/// True when Ollama's `/api/tags` entry is a model that only embeds: its `capabilities`
/// (newer servers) say `embedding` and not `completion`; without them, its family is
/// of the BERT line (`bert`, `nomic-bert`, `jina-bert-v2`, `xlm-roberta`: Ollama names
/// the architecture from the weights' metadata), encoders that embed and cannot chat.
/// Never from the model's name, which the server only repeats.
fn ollama_embeds(m: &Value) -> bool {
    if let Some(caps) = m["capabilities"].as_array() {
        let has = |c: &str| caps.iter().any(|x| x == c);
        return has("embedding") && !has("completion");
    }
    let details = &m["details"];
    let families = details["families"].as_array().map(Vec::as_slice);
    std::iter::once(&details["family"])
        .chain(families.unwrap_or_default())
        .filter_map(Value::as_str)
        .any(|f| f.contains("bert"))
}

/// Probes every detect-enabled provider at once and records the results; returns
/// within about `timeout` however many sources there are, with the ids of the sources
/// that answered (their cool-downs may end: a server that answers is back). A server
/// that refuses the key it was sent (or its lack of one: LM Studio or vLLM started
/// with a key) is up, and says so as a hosted provider's refused key does
/// ([`Auth::key_answered`]).
pub fn probe_all(
    client: &Client,
    auth: &Arc<Auth>,
    providers: &[Arc<Provider>],
    detected: &Arc<Detected>,
    timeout: Duration,
) -> Vec<String> {
    if detected.stopped() {
        return Vec::new();
    }
    let handles: Vec<_> = providers
        .iter()
        .filter(|p| p.detect)
        .map(|p| {
            let (client, p, detected) = (client.clone(), Arc::clone(p), Arc::clone(detected));
            let auth = Arc::clone(auth);
            crate::spawn::run("probe", move || {
                let (state, refused) = probe(&client, &p, timeout);
                let up = state.up;
                match refused {
                    Some(status) => auth.key_answered(&p, status, true),
                    None if up => auth.key_answered(&p, 200, false),
                    None => {}
                }
                detected.set(&p.id, state);
                up.then(|| p.id.clone())
            })
        })
        .collect();
    handles
        .into_iter()
        .filter_map(|h| h.join().flatten())
        .collect()
}

/// Why `provider`'s model list could not be fetched, logged and returned.
fn listing_failed(provider: &str, e: impl std::fmt::Display) -> String {
    let e = log::printable(&e.to_string(), SAID_AT_MOST);
    let why = format!("cannot list the models of {provider}: {e}");
    log::line(why.clone());
    why
}

/// Asks each hosted provider that has a key or a login for its model list, all at
/// once, and records the lists; a provider that cannot be asked keeps its last list.
/// Returns why each list that could not be fetched was not (also logged).
pub fn list_hosted(
    client: &Client,
    auth: &Arc<Auth>,
    providers: &[Arc<Provider>],
    detected: &Arc<Detected>,
    timeout: Duration,
) -> Vec<String> {
    if detected.stopped() {
        return Vec::new();
    }
    let handles: Vec<_> = providers
        .iter()
        .filter_map(|p| {
            let &(_, query) = HOSTED_LISTINGS.iter().find(|(id, _)| *id == p.id)?;
            // A login is used as requests would use it (it wins over a key), but only
            // while its token is fresh: a list is not worth a refresh.
            let pinned_only = auth.logged_in(&p.id);
            if (pinned_only && !auth.token_fresh(&p.id)) || (p.key.is_none() && !pinned_only) {
                return None;
            }
            // The credential headers a request would carry (key or login, refreshed).
            let target = Target::new(p, "");
            let mut login = auth.logins_of(std::slice::from_ref(&target)).take(&p.id);
            let headers = match auth.headers(&target, login.as_mut()) {
                // Into the listing's own thread.
                Ok(h) => h.into_inner(),
                Err(e) => return Some(Err(listing_failed(&p.id, e))),
            };
            let url = format!("{}/models", p.api_base);
            let (client, p, detected) = (client.clone(), Arc::clone(p), Arc::clone(detected));
            let auth = Arc::clone(auth);
            Some(Ok(crate::spawn::run("list", move || {
                match list(&client, (&url, query), &headers, timeout, p.own_base) {
                    Ok(models) => {
                        auth.key_answered(&p, 200, false);
                        let listed = SourceState {
                            pinned_only,
                            ..up(models)
                        };
                        detected.set(&p.id, listed);
                        None
                    }
                    // A list that failed as the stop began is no news either.
                    Err(_) if detected.stopped() => None,
                    Err(e) => {
                        let why = listing_failed(&p.id, e.why);
                        if let Some(status) = e.key_refused {
                            auth.key_answered(&p, status, true);
                        }
                        Some(why)
                    }
                }
            })))
        })
        .collect();
    handles
        .into_iter()
        .filter_map(|h| match h {
            Ok(h) => h.join().flatten(),
            Err(why) => Some(why),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listing_shapes() {
        let cases = [
            (
                json!({"object": "list", "data": [{"id": "a"}, {"id": "b"}]}),
                Some((vec!["a", "b"], vec![])),
            ),
            (
                json!({"object": "list", "data": null}),
                Some((vec![], vec![])),
            ),
            (
                json!({"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b"}, {"model": "qwen:7b"}]}),
                Some((vec!["llama3.1:8b", "qwen:7b"], vec![])),
            ),
            // LM Studio's own listing types its models.
            (
                json!({"data": [{"id": "qwen", "type": "llm"}, {"id": "nomic", "type": "embeddings"}, {"id": "vl", "type": "vlm"}]}),
                Some((vec!["qwen", "vl"], vec!["nomic"])),
            ),
            // Ollama's: capabilities when it has them, else the family.
            (
                json!({"models": [
                    {"name": "a", "capabilities": ["embedding"], "details": {"family": "llama"}},
                    {"name": "b", "capabilities": ["completion", "tools"], "details": {"family": "bert"}},
                    {"name": "c", "details": {"family": "nomic-bert", "families": ["nomic-bert"]}},
                    {"name": "d", "details": {"family": "llama", "families": ["llama", "clip"]}},
                    {"name": "e", "details": {"family": "qwen2", "families": ["xlm-roberta"]}},
                    {"name": "nomic-embed-text:latest"},
                ]}),
                Some((
                    vec!["b", "d", "nomic-embed-text:latest"],
                    vec!["a", "c", "e"],
                )),
            ),
            (json!({"something": "else"}), None),
        ];
        let strings = |w: Vec<&str>| w.into_iter().map(String::from).collect::<Vec<_>>();
        for (v, want) in cases {
            let want = want.map(|(chat, embeddings)| Listing {
                chat: strings(chat),
                embeddings: strings(embeddings),
            });
            assert_eq!(model_names(&v), want, "{v}");
        }
    }
}
