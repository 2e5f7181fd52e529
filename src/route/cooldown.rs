//! Endpoints that failed recently, tried last until their time is up, and where a
//! request's last hope begins.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::registry::{Provider, Target, provider_of};

/// What a failure said of its server, which decides what may end its cool-down early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// The server was not serving: down, restarting, still loading, without the model
    /// (refused, a reset, a 404, a 5xx). A detection probe it answers says it is back.
    NotServing,
    /// Nothing listens where the endpoint is (its connection was refused): a fact about
    /// its origin, not its model, so every endpoint there cools down with it, and a
    /// success of any of them, or a probe answered, ends it for all.
    Refused,
    /// The server was busy or slow (a 429, a timeout, a stall), or named how long to
    /// wait: a probe it answers says nothing of that, so only time ends it.
    Busy {
        /// How long the server asked to be left alone.
        retry_after: Option<Duration>,
    },
}

/// One cool-down: when it began, when it ends, and why.
#[derive(Debug, Clone)]
struct Entry {
    failed: Instant,
    until: Instant,
    why: Failed,
    /// The origin that refused, for a cool-down that is its origin's.
    origin: Option<String>,
}

/// The cool-downs: each endpoint's, and each origin's that refused a connection.
#[derive(Debug, Default)]
struct Table {
    /// `provider:model` → its cool-down. An endpoint cooling down because its origin
    /// refused is here too (once a request has it among its targets), so the list names
    /// endpoints, as `/routeplane/cooldowns` and the status page show it.
    labels: HashMap<String, Entry>,
    /// An origin (`http://127.0.0.1:11434`, a provider's [`crate::registry::Origin::origin`], split once
    /// with its `api_base`) that refused a connection → its cool-down, which every
    /// endpoint there shares: a refusal is a fact about it, whatever path or model follows.
    origins: HashMap<String, Entry>,
}

/// Endpoints that failed recently, tried last until their time is up.
#[derive(Debug)]
pub struct Cooldown {
    until: Mutex<Table>,
    /// How many entries `until` holds (both maps), read without its lock: every request looks
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
            until: Mutex::new(Table::default()),
            entries: AtomicUsize::new(0),
            default,
        }
    }

    /// Records a failure of `target`; a `retry_after` overrides the default length.
    pub fn fail(&self, target: &Target, why: Failed) {
        let retry_after = match why {
            Failed::Busy { retry_after } => retry_after,
            Failed::NotServing | Failed::Refused => None,
        };
        let len = retry_after
            .unwrap_or(self.default)
            .min(Duration::from_secs(3600));
        let failed = Instant::now();
        let refused = why == Failed::Refused;
        let entry = Entry {
            failed,
            until: failed + len,
            why,
            origin: refused.then(|| target.provider.base.origin().to_string()),
        };
        let mut table = self.lock();
        if let Some(at) = &entry.origin {
            table.origins.insert(at.clone(), entry.clone());
        }
        table.labels.insert(target.label().to_string(), entry);
    }

    /// Records a success: the endpoint is trusted again, and so is every endpoint of its
    /// origin, if that origin had refused a connection (it is listening now).
    #[inline]
    pub fn clear(&self, target: &Target) {
        if self.entries.load(Ordering::Acquire) != 0 {
            self.clear_listed(target);
        }
    }

    /// [`Cooldown::clear`] with a list to look in. Out of line: the usual list is empty,
    /// and the look at its length is all a request then runs (issue 16).
    #[inline(never)]
    fn clear_listed(&self, target: &Target) {
        let mut table = self.lock();
        table.labels.remove(target.label());
        let at = target.provider.base.origin();
        if table.origins.remove(at).is_some() {
            table.warm_origin(at, |_| true);
        }
    }

    /// Ends the cool-downs of a provider's endpoints that were not serving before `since`
    /// (a detection probe sent then was answered: the server is back), and its origin's
    /// if it refused a connection before then. A busy one's stay: a model list says
    /// nothing of a 429 or of a slow first token.
    pub fn forgive(&self, provider: &Provider, since: Instant) {
        if self.entries.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut table = self.lock();
        table.labels.retain(|label, e| {
            let not_serving = matches!(e.why, Failed::NotServing | Failed::Refused);
            !(not_serving && provider_of(label) == provider.id && e.failed < since)
        });
        let at = provider.base.origin();
        if table.origins.get(at).is_some_and(|e| e.failed < since) {
            table.origins.remove(at);
            table.warm_origin(at, |e| e.failed < since);
        }
    }

    /// What is left of `label`'s cool-down, if it is cooling down.
    pub fn left(&self, label: &str) -> Option<Duration> {
        let until = self.lock().labels.get(label)?.until;
        Some(until.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// True when `target`'s origin refused a connection and is cooling down for it.
    pub fn origin_refused(&self, target: &Target) -> bool {
        if self.entries.load(Ordering::Acquire) == 0 {
            return false;
        }
        let table = self.lock();
        let now = Instant::now();
        let at = target.provider.base.origin();
        table.origins.get(at).is_some_and(|e| e.until > now)
    }

    /// Endpoints cooling down now, with the time left for each, sorted.
    pub fn snapshot(&self) -> Vec<(String, Duration)> {
        let map = self.lock();
        let now = Instant::now();
        let mut out: Vec<(String, Duration)> = map
            .labels
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|(label, e)| (label.clone(), e.until - now))
            .collect();
        // Labels are a map's keys, so no two are equal: an unstable sort by them gives
        // the order a stable sort of the pairs gave, with less code in the binary.
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Orders targets: those not cooling down first, each group in its given order; and
    /// how many lead that are not cooling down. Borrowed as given when nothing cools
    /// down, as on almost every request.
    #[inline]
    pub fn order<'t>(&self, targets: &'t [Target]) -> (Cow<'t, [Target]>, usize) {
        if self.entries.load(Ordering::Acquire) == 0 {
            return (Cow::Borrowed(targets), targets.len());
        }
        self.order_listed(targets)
    }

    /// [`Cooldown::order`] with a list to look in. Out of line: the usual list is empty,
    /// and the look at its length is all a request then runs (issue 16).
    #[inline(never)]
    fn order_listed<'t>(&self, targets: &'t [Target]) -> (Cow<'t, [Target]>, usize) {
        let mut map = self.lock();
        let now = Instant::now();
        map.labels.retain(|_, e| e.until > now);
        map.origins.retain(|_, e| e.until > now);
        if !map.origins.is_empty() {
            // An endpoint of an origin that refused is listed by its own label from
            // now on: the list names what cools down, not where.
            for t in targets {
                let at = t.provider.base.origin();
                if let Some(e) = map.origins.get(at).cloned() {
                    map.labels.entry(t.label().to_string()).or_insert(e);
                }
            }
        }
        let (ordered, warm) = cooling_last(targets, |t| map.labels.contains_key(t.label()));
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

impl Table {
    /// Ends the cool-downs its origin `at` gave its endpoints (those `since` allows).
    fn warm_origin(&mut self, at: &str, since: impl Fn(&Entry) -> bool) {
        // Only refusals are the origin's; an endpoint's own failure (a 5xx, a 429) stays.
        self.labels
            .retain(|_, e| e.origin.as_deref() != Some(at) || !since(e));
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
    map: MutexGuard<'a, Table>,
    entries: &'a AtomicUsize,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Table;
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
        let len = self.map.labels.len() + self.map.origins.len();
        self.entries.store(len, Ordering::Release);
    }
}

/// Shared handle to the cool-down list.
pub type SharedCooldown = Arc<Cooldown>;
