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
