//! Credentials Routeplane presents UPSTREAM: a static key, or a subscription's OAuth token.
//!
//! Client keys (what callers present to Routeplane) are checked in `server/guard.rs`,
//! not here.
//! This module decides the headers that carry a provider's credential, keeps OAuth
//! tokens fresh (refreshed five minutes before they expire, and once after a 401, one
//! refresh at a time per login, in this process and across those sharing the token
//! file, the rotated refresh token stored before the new access token is used:
//! `refresh.rs`), and applies the body rules a subscription backend insists on. A
//! request looks its logins up once ([`Auth::logins_of`], one `stat` of the token
//! file) and hands them to each step that needs them.
//!
//! Subscription logins are found by provider id: `anthropic` (Claude Pro/Max, preferred
//! over `ANTHROPIC_API_KEY` when logged in) and `openai-codex` (ChatGPT plans). A login
//! made with `--label NAME` is the provider `anthropic#NAME` / `openai-codex#NAME`.

pub mod anthropic;
pub mod callback;
pub mod oauth;
pub mod openai_codex;
mod refresh;
pub mod store;

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::error::Error;
use crate::protocol::{Protocol, responses};
use crate::registry::{Kind, Provider, Target};
use crate::sync::{Spare, lock};
use crate::upstream::{Client, Header, HeaderValue};
use oauth::Tokens;
use refresh::{Flight, PAUSE_FIRST};
use store::Store;

/// The Anthropic API version sent with every Messages request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Refresh a token this long before it expires.
const REFRESH_MARGIN_SECS: u64 = 5 * 60;

/// The subscription a provider id stands for, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// Claude Pro/Max.
    Anthropic,
    /// ChatGPT/Codex.
    OpenAiCodex,
}

impl Subscription {
    /// The subscription behind a provider id (`openai-codex#work` is a second ChatGPT login).
    pub fn of(provider: &str) -> Option<Subscription> {
        // Asked several times per request: compared in place, without splitting.
        let is = |name: &str| {
            provider
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('#'))
        };
        if is("anthropic") {
            Some(Subscription::Anthropic)
        } else if is("openai-codex") {
            Some(Subscription::OpenAiCodex)
        } else {
            None
        }
    }
}

thread_local! {
    /// This thread's list of upstream request headers, kept between requests: one
    /// allocation a request fewer (see `sync::take_spare`).
    static HEADERS: Cell<Vec<Header>> = const { Cell::new(Vec::new()) };
}

/// How a hosted built-in pointed at a server on this machine or its network sends no
/// key: it stays hosted and wants its key (a LiteLLM in `openai`'s place), while a
/// block of one's own there is a local server's.
pub const RENAME: &str = "rename the block: one of your own needs no key";

/// What to set (or run) to give a provider a credential, for messages.
pub fn key_hint(p: &Provider) -> String {
    let mut hint = format!("set {}", key_vars_shown(p));
    if let Some(refused) = set_to_no_key(p) {
        hint = format!("{refused}; {hint}");
    }
    if Subscription::of(&p.id).is_some() {
        hint.push_str(&format!(", or run `routeplane login {}`", p.id));
    }
    if p.self_hosted() {
        hint.push_str(", or ");
        hint.push_str(RENAME);
    }
    hint
}

/// A variable of `p`'s key that is set, but to no key (`OPENAI_API_KEY=unused`), named
/// with why: "set X" alone reads as wrong to whoever sees X set.
pub fn set_to_no_key(p: &Provider) -> Option<String> {
    p.key_vars.iter().find_map(|var| {
        let why = crate::registry::unusable_key(&std::env::var(var).ok()?)?;
        Some(format!("`{var}` is set, but taken as unset ({why})"))
    })
}

/// The variables a provider's key is read from, as messages name them:
/// `OPENAI_API_KEY or ROUTEPLANE_OPENAI_API_KEY`.
pub fn key_vars_shown(p: &Provider) -> String {
    // The vendor's variables first: they are the ones people already have.
    let vars: Vec<&str> = p
        .key_vars
        .iter()
        .skip(1)
        .chain(p.key_vars.first())
        .map(String::as_str)
        .collect();
    vars.join(" or ")
}

/// Why `p`, with no key and no login, cannot be asked: a subscription (or a labelled
/// login id, which never stands for the provider's key) needs a login, a hosted API its
/// key. `None` for a source that needs neither (a local server).
fn without_key(p: &Provider) -> Option<Error> {
    let login = Subscription::of(&p.id).is_some() && p.id.contains('#');
    if login || p.kind == Kind::Subscription {
        return Some(Error::LoginNeeded {
            provider: p.id.clone(),
            reason: "not logged in".into(),
        });
    }
    (!p.key_vars.is_empty()).then(|| Error::NoCredential {
        provider: p.id.clone(),
        hint: key_hint(p),
    })
}

/// Tokens read from the store, and which version of the file they were read from.
#[derive(Debug, Default)]
struct Cache {
    read_at: Option<store::Stamp>,
    /// When the file was read within a tick of its last change: the moment after which
    /// it is read once more, as a write in that tick may have left the stamp as it was.
    recheck: Option<SystemTime>,
    tokens: HashMap<String, Tokens>,
    /// Logins a token endpoint refused for good, with its words ("login needed").
    refused: HashMap<String, String>,
    /// Why the token file, which exists, could not be read at the last try (not valid
    /// JSON, or not readable by this user: `sudo routeplane login` leaves it root's, mode
    /// 0600, and a service running as another user cannot open it). Its logins are then
    /// unknown rather than absent, and messages say so instead of "not logged in".
    unreadable: Option<String>,
}

/// A subscription login as one request found it in the token file.
#[derive(Debug)]
pub struct Login {
    /// The login's key: its provider's id.
    id: String,
    /// Its tokens; a refresh made for the request leaves the new ones here.
    tokens: Tokens,
    /// Why it was refused for good, when it was.
    refused: Option<String>,
}

/// The logins one request's targets use, looked up once ([`Auth::logins_of`]); empty for
/// a request to no subscription, which allocates nothing.
#[derive(Debug, Default)]
pub struct Logins(Vec<Login>);

impl Logins {
    /// The login of provider `id`, if it has one.
    pub fn get(&self, id: &str) -> Option<&Login> {
        self.0.iter().find(|l| l.id == id)
    }

    /// Takes provider `id`'s login out, for an attempt that may refresh it: it goes
    /// back with [`Logins::put`].
    pub fn take(&mut self, id: &str) -> Option<Login> {
        let i = self.0.iter().position(|l| l.id == id)?;
        Some(self.0.swap_remove(i))
    }

    /// Puts back a login [`Logins::take`] took, with the tokens it now has.
    pub fn put(&mut self, login: Option<Login>) {
        self.0.extend(login);
    }
}

/// Credentials for every provider.
#[derive(Debug, Default)]
pub struct Auth {
    store: Option<Store>,
    client: Option<Client>,
    cache: Mutex<Cache>,
    /// One per login: a refresh in flight makes the others wait for its result.
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    /// Keys an upstream refused, by provider id: a fingerprint of the key (another key,
    /// after a reload, is not the one refused; no key at all has one too) and the
    /// status it was refused with.
    keys_refused: Mutex<HashMap<String, (u64, u16)>>,
    /// Some key is in `keys_refused`: a request answered 2xx looks no further without.
    any_key_refused: AtomicBool,
    /// The first pause after a refresh failed for now: [`PAUSE_FIRST`], unless the test
    /// hook `ROUTEPLANE_TEST_REFRESH_PAUSE_MS` sets another (tests cannot wait 5 s).
    pause_first: Duration,
}

/// A fingerprint of a key, kept instead of the key itself.
fn fingerprint(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// The fingerprint of the key `p` sends: none is sent without one (a local server
/// started with a key, asked with none, refuses that), so "none" is a key too.
fn key_print(p: &Provider) -> u64 {
    fingerprint(p.key.as_ref().map_or("", |k| k.expose()))
}

impl Auth {
    /// Credentials backed by a token file; `client` makes refresh calls.
    pub fn new(store: Option<Store>, client: Client) -> Auth {
        let pause_first = std::env::var("ROUTEPLANE_TEST_REFRESH_PAUSE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(PAUSE_FIRST, Duration::from_millis);
        Auth {
            store,
            client: Some(client),
            pause_first,
            ..Auth::default()
        }
    }

    /// The stored tokens of a login, re-reading the file when it changed: see
    /// [`Auth::cache`].
    fn tokens(&self, key: &str) -> Option<Tokens> {
        self.cache()?.tokens.get(key).cloned()
    }

    /// The logins as the token file has them now, re-read when it changed (a `routeplane
    /// login`, another process's refresh, a copy put in its place): one `stat` a call,
    /// and a read only when the file's [`store::Stamp`] changed. `None` without a store.
    fn cache(&self) -> Option<MutexGuard<'_, Cache>> {
        let store = self.store.as_ref()?;
        let mut cache = lock(&self.cache);
        let stamp = store.stamp();
        if stamp.is_none() {
            cache.tokens.clear();
            cache.refused.clear();
            cache.read_at = None;
            cache.recheck = None;
            cache.unreadable = None;
        } else if stamp != cache.read_at || cache.recheck.is_some_and(|at| SystemTime::now() >= at)
        {
            // A file that could not be read (another program's write, caught half done,
            // or not this user's) is read again when its stamp changes (the rest of the
            // write makes it longer; a `chmod` changes its ctime), and once more a tick
            // after its last change: not at every look-up.
            let read = SystemTime::now();
            cache.read_at = stamp;
            cache.recheck = stamp.and_then(|s| s.settled_at(read));
            match store.load() {
                Ok(all) => {
                    cache.tokens = all
                        .iter()
                        .filter_map(|(k, v)| store::from_json(v).map(|t| (k.clone(), t)))
                        .collect();
                    cache.refused = all
                        .iter()
                        .filter_map(|(k, v)| store::refused(v).map(|r| (k.clone(), r)))
                        .collect();
                    cache.unreadable = None;
                }
                Err(Error::Auth(why)) => cache.unreadable = Some(why),
                Err(e) => cache.unreadable = Some(e.to_string()),
            }
        }
        Some(cache)
    }

    /// The logins of those of `targets`' providers that are subscriptions, as one
    /// request finds them: one `stat` of the token file for all, none when none is a
    /// subscription (a key's request reads nothing). The request hands them to each
    /// step that needs them rather than each looking again.
    #[inline(never)]
    pub fn logins_of(&self, targets: &[Target]) -> Logins {
        let mut logins = Logins::default();
        let mut cache = None;
        for p in targets.iter().map(|t| &*t.provider) {
            if Subscription::of(&p.id).is_none() || logins.get(&p.id).is_some() {
                continue;
            }
            let Some(c) = cache.get_or_insert_with(|| self.cache()) else {
                break;
            };
            if let Some(tokens) = c.tokens.get(&p.id) {
                logins.0.push(Login {
                    id: p.id.clone(),
                    tokens: tokens.clone(),
                    refused: c.refused.get(&p.id).cloned(),
                });
            }
        }
        logins
    }

    /// Why a login was refused for good, when it was: it needs `routeplane login` again.
    pub fn refused(&self, provider: &str) -> Option<String> {
        let cache = self.cache()?;
        cache.tokens.get(provider)?;
        cache.refused.get(provider).cloned()
    }

    /// Why the token file cannot be read, when it exists and cannot: its logins are
    /// unknown, not absent.
    pub fn unreadable(&self) -> Option<String> {
        let _ = self.tokens("");
        lock(&self.cache).unreadable.clone()
    }

    /// `e`, a "needs a login" or "no credential" refusal of subscription provider `p`,
    /// saying that the token file that may hold its login cannot be read, when so: "not
    /// logged in" would send the user to log in again, into the same unreadable file.
    fn unless_unreadable(&self, p: &Provider, e: Error) -> Error {
        if Subscription::of(&p.id).is_none() {
            return e;
        }
        let Some(why) = lock(&self.cache).unreadable.clone() else {
            return e;
        };
        match e {
            Error::LoginNeeded { provider, .. } => Error::LoginNeeded {
                provider,
                reason: format!("its token file cannot be read: {why}"),
            },
            Error::NoCredential { provider, hint } => Error::NoCredential {
                provider,
                hint: format!(
                    "{hint} (its token file, which may hold a login, cannot be read: {why})"
                ),
            },
            e => e,
        }
    }

    /// A warning when the token file can be read by other users (see
    /// [`Store::readable_by_others`]).
    pub fn readable_by_others(&self) -> Option<String> {
        self.store.as_ref()?.readable_by_others()
    }

    /// Every stored login's key (`anthropic`, `openai-codex#work`), sorted.
    pub fn logins(&self) -> Vec<String> {
        let _ = self.tokens("");
        let cache = lock(&self.cache);
        let mut keys: Vec<String> = cache.tokens.keys().cloned().collect();
        // A map's keys, none equal: unstable is the same order, in less code.
        keys.sort_unstable();
        keys
    }

    /// True when a subscription login is stored for the provider.
    pub fn logged_in(&self, provider: &str) -> bool {
        Subscription::of(provider).is_some() && self.tokens(provider).is_some()
    }

    /// True when a login's access token can be used now without a refresh (and was
    /// not refused): background work such as a model list never spends a refresh.
    pub fn token_fresh(&self, provider: &str) -> bool {
        self.tokens(provider)
            .is_some_and(|t| t.expires_at == 0 || t.expires_at > oauth::now() + REFRESH_MARGIN_SECS)
            && self.refused(provider).is_none()
    }

    /// The expiry (Unix seconds) of a provider's login, if logged in.
    pub fn expires_at(&self, provider: &str) -> Option<u64> {
        self.tokens(provider).map(|t| t.expires_at)
    }

    /// Headers that carry `target`'s credential and protocol requirements, in this
    /// thread's list kept for them (given back when dropped). `login` is its provider's,
    /// as [`Auth::logins_of`] found it; a refresh it needed leaves the new tokens in it.
    pub fn headers(
        self: &Arc<Self>,
        target: &Target,
        login: Option<&mut Login>,
    ) -> Result<Spare<Vec<Header>>, Error> {
        let p = &target.provider;
        let mut h = Spare::take(&HEADERS);
        if target.protocol == Protocol::Anthropic {
            h.push(("anthropic-version".into(), ANTHROPIC_VERSION.into()));
        }
        // Only subscriptions have a login: an API-key provider's request costs no
        // file-system call.
        match (Subscription::of(&p.id), login) {
            (Some(sub), Some(login)) => {
                if let Some(reason) = &login.refused {
                    return Err(Error::LoginNeeded {
                        provider: p.id.clone(),
                        reason: format!("login needed: {reason}"),
                    });
                }
                self.fresh(&target.provider, login, false)?;
                h.extend(match sub {
                    Subscription::Anthropic => anthropic::headers(&login.tokens),
                    Subscription::OpenAiCodex => openai_codex::headers(&login.tokens),
                });
            }
            _ => match &p.key {
                Some(key) if target.protocol == Protocol::Anthropic => {
                    h.push(("x-api-key".into(), HeaderValue::Key(key.clone())));
                }
                // Google's own header; `?key=` would put the key in URLs and logs.
                Some(key) if target.protocol == Protocol::Gemini => {
                    h.push(("x-goog-api-key".into(), HeaderValue::Key(key.clone())));
                }
                Some(key) => h.push(("authorization".into(), HeaderValue::Bearer(key.clone()))),
                None => {
                    if let Some(e) = without_key(p) {
                        return Err(self.unless_unreadable(p, e));
                    }
                }
            },
        }
        h.extend(
            p.headers
                .iter()
                .map(|(n, v)| (n.clone().into(), v.clone().into())),
        );
        Ok(h)
    }

    /// Whether [`Auth::headers`] would refuse `p`, its login `login` (as
    /// [`Auth::logins_of`] found it), for want of a key or a login, without refreshing a
    /// token.
    pub fn lacks_credential(&self, p: &Provider, login: Option<&Login>) -> bool {
        match login {
            Some(login) => login.refused.is_some(),
            None => p.key.is_none() && without_key(p).is_some(),
        }
    }

    /// After a 401 from an OAuth upstream to `login`'s token: refresh once, the new
    /// tokens left in `login`; true when the request may be retried.
    pub fn refresh_after_401(self: &Arc<Self>, target: &Target, login: Option<&mut Login>) -> bool {
        login.is_some_and(|login| self.fresh(&target.provider, login, true).is_ok())
    }

    /// After a 401 whose refresh failed: the "login needed" error when the login behind
    /// `target` was refused for good, so the client hears what to do rather than the
    /// upstream's words about a dead token.
    pub fn login_needed(&self, target: &Target) -> Option<Error> {
        let id = &target.provider.id;
        let reason = self.refused(id)?;
        Some(Error::LoginNeeded {
            provider: id.clone(),
            reason: format!("login needed: {reason}"),
        })
    }

    /// What an upstream answered to `p`'s key (a request's status, or a model listing's):
    /// `refused` marks the key refused, with `status`, until an answer that is not
    /// `refused` and is a success (2xx) clears it; a request sent without a key (a local
    /// server's) is refused the same way. Nothing happens when a login carries the
    /// provider's requests instead. A change is one log line.
    pub fn key_answered(&self, p: &Provider, status: u16, refused: bool) {
        let ok = (200..300).contains(&status);
        // The usual request: a success with no key refused anywhere costs one load.
        if (ok && !self.any_key_refused.load(Ordering::Relaxed)) || (!ok && !refused) {
            return;
        }
        if self.logged_in(&p.id) {
            return;
        }
        let print = key_print(p);
        let mut refusals = lock(&self.keys_refused);
        let before = refusals
            .get(&p.id)
            .filter(|(f, _)| *f == print)
            .map(|r| r.1);
        if refused {
            refusals.insert(p.id.clone(), (print, status));
        } else {
            refusals.remove(&p.id);
        }
        self.any_key_refused
            .store(!refusals.is_empty(), Ordering::Relaxed);
        drop(refusals);
        let from = p.key_source.as_deref().unwrap_or("api_key");
        match (before, refused) {
            (None, true) if p.key.is_none() => crate::log::line(format!(
                "{} refused a request without a key ({status}); {}",
                p.id,
                key_wanted(p)
            )),
            (None, true) => crate::log::line(format!(
                "the key of {} ({from}) was refused ({status})",
                p.id
            )),
            (Some(_), false) => {
                crate::log::line(format!("the key of {} ({from}) is accepted again", p.id));
            }
            _ => {}
        }
    }

    /// The status an upstream refused `p`'s key with, when the key `p` has now was the
    /// one refused and nothing has accepted it since.
    pub fn key_refused(&self, p: &Provider) -> Option<u16> {
        if !self.any_key_refused.load(Ordering::Relaxed) {
            return None;
        }
        let refusals = lock(&self.keys_refused);
        let (print, status) = refusals.get(&p.id)?;
        (*print == key_print(p)).then_some(*status)
    }
}

/// What to do about a refused key: check where it comes from, or, for a provider
/// asked without one (a local server started with a key), give it one.
pub fn key_wanted(p: &Provider) -> String {
    match (p.key.is_some(), p.key_source.as_deref()) {
        (true, Some(var)) if var != "api_key" => format!("check {var}"),
        (true, _) => "check its `api_key`".to_string(),
        (false, _) => format!(
            "set `api_key` under `providers: {}:` to the key the server was started with",
            p.id
        ),
    }
}

impl Auth {
    /// True when the provider's backend needs the body rewritten (never byte
    /// passthrough); `logins` are the request's ([`Auth::logins_of`]).
    pub fn rewrites_body(&self, p: &Provider, logins: &Logins) -> bool {
        match Subscription::of(&p.id) {
            Some(Subscription::OpenAiCodex) => true,
            Some(Subscription::Anthropic) => logins.get(&p.id).is_some(),
            None => false,
        }
    }

    /// True when the provider only answers streams (its non-streaming answers are collected).
    pub fn stream_only(&self, p: &Provider) -> bool {
        Subscription::of(&p.id) == Some(Subscription::OpenAiCodex)
    }

    /// Applies a provider's body rules to an upstream request; `logins` are the
    /// request's ([`Auth::logins_of`]).
    pub fn shape_body(&self, p: &Provider, logins: &Logins, body: &mut Value) {
        match Subscription::of(&p.id) {
            Some(Subscription::OpenAiCodex) => responses::codex_body(body),
            Some(Subscription::Anthropic) if logins.get(&p.id).is_some() => {
                anthropic::shape_body(body)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_known_by_id_and_by_labelled_id() {
        let of = Subscription::of;
        assert_eq!(of("anthropic"), Some(Subscription::Anthropic));
        assert_eq!(of("anthropic#work"), Some(Subscription::Anthropic));
        assert_eq!(of("openai-codex"), Some(Subscription::OpenAiCodex));
        assert_eq!(of("openai-codex#2"), Some(Subscription::OpenAiCodex));
        for other in [
            "openai",
            "anthropicx",
            "anthropic-api",
            "mock",
            "",
            "#anthropic",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
        let key = crate::log::Secret::new("k1");
        assert_eq!((key.bearer(), key.expose()), ("Bearer k1", "k1"));
    }

    #[test]
    fn a_token_file_caught_half_written_is_read_again_though_its_time_is_the_same() {
        let dir = std::env::temp_dir().join(format!("rp-auth-half-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens.json");
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let write = |text: &str| {
            std::fs::write(&path, text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
        };
        write(r#"{"credentials": {"anthropic": {"access_tok"#);
        let auth = Auth {
            store: Some(Store::new(&path)),
            ..Auth::default()
        };
        assert!(!auth.logged_in("anthropic"));
        // The rest of the write lands within the same tick of the file's clock.
        write(r#"{"credentials": {"anthropic": {"access_token": "at", "refresh_token": "rt"}}}"#);
        assert!(auth.logged_in("anthropic"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
