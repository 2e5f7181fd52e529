//! The listener: tiny_http, at most `workers` requests at once, start-up and signals.
//!
//! tiny_http gives each connection a thread of its own, and a request runs on it; at
//! most `workers` run at once. A request that cannot start within
//! `limits.queue_wait_secs` gets 503 with `Retry-After`, naming the limit: load never
//! grows an unbounded backlog. Routeplane's own read-only answers (`/health`,
//! `/metrics`, the status page) need no worker, so a full proxy still answers them.
//! What a request then goes through: what its path names in `path.rs`; the endpoint
//! table, its body and the model in `prepare.rs`; the answer or the relay, the log line
//! and the ledger line in `request.rs`; who may call (the client key, a web page's
//! `Origin`, a browser's preflight) in `guard.rs`; the model and source lists the
//! read-only endpoints answer with in `listing.rs`.

mod guard;
mod listing;
mod path;
mod prepare;
mod request;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::auth::Auth;
use crate::detect::{self, Detected};
use crate::error::Error;
use crate::log;
use crate::notify;
use crate::registry::{Kind, Registry, Target};
use crate::relay::{self, Env, Recall, Refused, Unreadable};
use crate::route::Cooldown;
use crate::stats::{self, Stats, ledger::Ledger};
use crate::upstream;
use request::{busy, handle};

/// Everything a worker needs, shared by all of them.
pub struct Shared {
    /// The current registry; replaced whole on reload.
    pub registry: RwLock<Arc<Registry>>,
    /// Detection results for local sources.
    pub detected: Arc<Detected>,
    /// Upstream client, credentials and cool-down.
    pub env: Env,
    /// Requests accepted and not yet answered (queued or in a worker).
    pending: AtomicUsize,
    /// Counters for /metrics and the status page.
    pub stats: Stats,
    /// The usage ledger, unless `usage.enabled` is false.
    pub ledger: Option<Ledger>,
    /// Test hook: a request for this model panics inside its handler, so the tests can
    /// prove a panic stays inside one request. Set only from `ROUTEPLANE_TEST_PANIC_MODEL`.
    panic_model: Option<String>,
    /// Raised by a request that found a local server refusing connections, or one
    /// found down answering ([`tell_detection`]): the detection thread probes at once
    /// instead of at its next interval.
    probe_now: (Mutex<bool>, Condvar),
}

impl Shared {
    /// Builds the shared state for a registry.
    pub fn new(registry: Registry, auth: Arc<Auth>, detected: Arc<Detected>) -> Shared {
        detected.watch_logins(&auth);
        let env = Env {
            client: upstream::Client::new(&registry.settings),
            auth,
            cooldown: Cooldown::new(registry.settings.cooldown),
            recall: Recall::new(registry.settings.limits.reasoning_memory_bytes),
            unreadable: Unreadable::default(),
            refused: Refused::default(),
            cut: AtomicBool::new(false),
        };
        // Opened once: a SIGHUP reload keeps the ledger it started with.
        let stats = Stats::default();
        let ledger = registry.settings.usage_path.clone().map(|path| {
            let errors = Arc::clone(&stats.ledger_errors);
            Ledger::open(path, registry.settings.usage_max_bytes, errors)
        });
        Shared {
            probe_now: (Mutex::new(false), Condvar::new()),
            registry: RwLock::new(Arc::new(registry)),
            detected,
            env,
            pending: AtomicUsize::new(0),
            stats,
            ledger,
            panic_model: std::env::var("ROUTEPLANE_TEST_PANIC_MODEL")
                .ok()
                .filter(|m| !m.is_empty()),
        }
    }

    /// A snapshot of the current registry.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A bound, not yet serving, listener.
pub struct Listener {
    http: Arc<tiny_http::Server>,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
}

/// Binds the listen address; accepted sockets time out after `client_timeout` of silence.
pub fn bind(addr: SocketAddr, client_timeout: Duration) -> Result<Listener, Error> {
    // The operating system's error is kept as it is (tiny_http boxes it), so that the
    // command line can tell an address in use from one that is not this machine's.
    let http = tiny_http::Server::http_with_timeout(addr, client_timeout).map_err(|e| {
        let source = match e.downcast::<std::io::Error>() {
            Ok(e) => *e,
            Err(e) => std::io::Error::other(e.to_string()),
        };
        Error::io(format!("cannot listen on {addr}"), source)
    })?;
    // Refusals tiny_http answers itself (a head too large or too slow) are answered
    // and logged as Routeplane's own errors.
    let secs = client_timeout.as_secs_f64();
    tiny_http::set_refusal_hook(Box::new(move |r| request::refused(r, secs)));
    // Its own errors (a connection's thread refused at the system's limit) go to our log.
    tiny_http::set_error_hook(crate::log::line);
    let addr = http
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::Internal("listener has no IP address".into()))?;
    Ok(Listener {
        http: Arc::new(http),
        addr,
    })
}

/// Builds a new registry when asked to reload (SIGHUP); the CLI knows where the config is.
pub type Reload = Box<dyn Fn() -> Result<Registry, Error> + Send>;

/// Serves until SIGTERM/SIGINT, then lets requests already accepted finish, up to the
/// grace period; those still running then are ended, each client told that routeplane
/// is stopping and each request's lines written, within 2 s more (`CUT_WAIT`). SIGHUP
/// swaps in a freshly loaded registry; a bad config is logged and the old one keeps
/// serving.
///
/// Each request runs on its connection's own thread (tiny_http has one per connection):
/// handing it to a separate worker pool cost two context switches per request, the
/// largest item in a profile of scripts/bench.sh at 32 clients. `workers` bounds how
/// many run at once; a request that cannot start within `limits.queue_wait_secs` of its
/// arrival gets 503 with `Retry-After`.
pub fn serve(listener: Listener, shared: Arc<Shared>, reload: Reload) -> Result<(), Error> {
    let settings = shared.registry().settings.clone();
    let stopping = Arc::new(AtomicBool::new(false));
    let wait = Duration::from_secs_f64(settings.limits.queue_wait_secs.max(0.0));
    let limit = settings.workers;
    raise_open_files(limit);
    // Handlers first: until they are in, SIGHUP's default action ends the process.
    let stop = watch_signals(
        Arc::clone(&listener.http),
        Arc::clone(&shared),
        Arc::clone(&stopping),
        reload,
    )?;
    log::set_format(settings.log_format);
    // The first line names the bound address (tests read the port from it); once it is
    // out, signals are handled.
    let source = shared.registry().source.clone();
    let with = if source == crate::config::NO_FILE {
        source
    } else {
        format!("config {source}")
    };
    log::line(format!("listening on http://{} with {with}", listener.addr));
    log_warnings(&shared.registry());
    if let Some(why) = shared.env.auth.unreadable() {
        log::line(format!(
            "warning: subscription logins are not used: the token file cannot be read: {why}"
        ));
    }
    if let Some(why) = shared.env.auth.readable_by_others() {
        log::line(format!("warning: {why}"));
    }
    warn_if_few_files(limit);
    // Start-up lines are out; the requests' lines go in batches.
    log::batch_lines();
    if let Some(pause) = test_pause_before_handler() {
        thread::sleep(pause);
    }
    {
        // Requests that arrived since binding were queued; this runs them too.
        let (shared, stopping) = (Arc::clone(&shared), Arc::clone(&stopping));
        listener.http.handle_inline(Box::new(move |req| {
            admit(req, &shared, &stopping, limit, wait)
        }));
    }
    start_detection(&shared);
    start_ledger_tail(&shared);
    if !stopping.load(Ordering::SeqCst) {
        notify::ready();
    }
    // Sleeps until a stop signal: an idle server wakes for nothing.
    let _ = stop.recv();
    // Stop accepting: the last handle to the server closes the listening socket.
    drop(listener);
    let grace = shared.registry().settings.shutdown_grace;
    let deadline = Instant::now() + grace;
    let mut again = false;
    // A login's refresh in flight is waited for too, within the same grace: its answer
    // rotates the refresh token, which must be stored before the process ends.
    let busy = || shared.pending.load(Ordering::SeqCst) > 0 || shared.env.auth.refreshing();
    while busy() && Instant::now() < deadline {
        // A second stop signal ends the wait.
        if stop.try_recv().is_ok() {
            again = true;
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let mut left = shared.pending.load(Ordering::SeqCst);
    if left > 0 && !again {
        // The grace ran out: what still runs ends now, its client told why (a 503, or
        // its stream's error event and end), and writes its log and ledger lines.
        shared.env.cut.store(true, Ordering::SeqCst);
        let until = Instant::now() + CUT_WAIT;
        while shared.pending.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            if stop.try_recv().is_ok() {
                again = true;
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let still = shared.pending.load(Ordering::SeqCst);
        if still < left {
            log::line(format!(
                "ended {} request(s) still running after {grace:?}: {}",
                left - still,
                Error::Stopping
            ));
        }
        left = still;
    }
    if left > 0 {
        let when = if again {
            "at a second signal".to_string()
        } else {
            format!("after {grace:?} and {CUT_WAIT:?} more")
        };
        log::line(format!(
            "stopped with {left} request(s) still running {when}"
        ));
    } else {
        log::line("stopped");
    }
    if shared.env.auth.refreshing() {
        log::line(
            "warning: stopped during a login's refresh; if its requests say \"login needed\", \
             run `routeplane login` again",
        );
    }
    if let Some(ledger) = &shared.ledger {
        ledger.flush();
    }
    log::flush();
    Ok(())
}

/// Test hook: how long to wait between the listening line and the request handler's
/// start, so that the tests can send requests that arrive before it (they are queued,
/// and run by `handle_inline`). Set only from `ROUTEPLANE_TEST_HANDLER_AFTER_MS`.
fn test_pause_before_handler() -> Option<Duration> {
    let ms = std::env::var("ROUTEPLANE_TEST_HANDLER_AFTER_MS").ok()?;
    ms.parse().ok().map(Duration::from_millis)
}

/// How long the requests still running when a stop's grace ran out have to end, each
/// with its error and its lines, before the process exits regardless. Each notices the
/// cut at its upstream's next event, within a [`upstream::SLICE`] of its silence, or
/// within 50 ms of a retry's pause; one blocked writing to a client that reads nothing
/// does not end in time.
const CUT_WAIT: Duration = Duration::from_secs(2);

/// Runs one request once fewer than `limit` are running; a request that cannot start
/// within `wait` of its arrival, or arrives while stopping, gets 503.
///
/// A waiting request polls, first after 1 ms, then less often (up to every 16 ms):
/// waiting happens only past `workers` (1024 by default), and a condition variable
/// would cost every request a lock. A fixed 1 ms would make a thousand waiting
/// requests a million wake-ups a second, taken from the requests that run.
fn admit(
    req: tiny_http::Request,
    shared: &Shared,
    stopping: &AtomicBool,
    limit: usize,
    wait: Duration,
) {
    let mut nap = Duration::from_millis(1);
    loop {
        if stopping.load(Ordering::SeqCst) {
            busy(req, Error::Stopping, shared);
            return;
        }
        let running = shared.pending.load(Ordering::SeqCst);
        if running < limit {
            let taken = shared.pending.compare_exchange(
                running,
                running + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            if taken.is_ok() {
                break;
            }
            // Another request took a slot first: look again at once.
            continue;
        }
        // Looked at only once the slots are full, so a model request pays nothing for it.
        if needs_no_worker(&req) {
            handle(req, shared);
            return;
        }
        if req.received_at().elapsed() > wait {
            let config = guard::config_named(&shared.registry());
            busy(
                req,
                Error::Busy {
                    workers: limit,
                    config,
                },
                shared,
            );
            return;
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(16));
    }
    handle(req, shared);
    shared.pending.fetch_sub(1, Ordering::SeqCst);
}

/// True for Routeplane's own read-only answers (`/health`, `/api/hello`, the status page
/// and its data, `/metrics`, the cool-down list), which run even when every worker is
/// taken: each holds no upstream and ends at once, and a health check or a scrape that
/// saw a busy proxy as dead would have it restarted, ending every open stream. Model
/// requests, listings included, still wait for a worker.
fn needs_no_worker(req: &tiny_http::Request) -> bool {
    use tiny_http::Method::{Get, Head};
    if !matches!(req.method(), Get | Head) {
        return false;
    }
    let url = req.url();
    let path = url.split_once('?').map_or(url, |(path, _)| path);
    matches!(
        path,
        "/health" | "/api/hello" | "/" | "/metrics" | "/status.json" | "/routeplane/cooldowns"
    )
}

/// Files a request holds: two sockets (the client's and the upstream's).
const FILES_PER_REQUEST: usize = 2;
/// Files held apart from requests: the listener, the idle upstream pool, logs and files.
const SPARE_FILES: usize = 64;

/// Raises the soft open-files limit to what `workers` requests need, never past the hard
/// limit: many systems start programs with a soft limit of 1024 (the hard one far
/// higher), which would refuse connections near 500 open streams. Before the listener
/// takes connections, so none is refused for want of a file the process could have had.
fn raise_open_files(workers: usize) {
    // Only ever raised; where it fails, `warn_if_few_files` says what the limit is.
    let _ = rlimit::increase_nofile_limit((FILES_PER_REQUEST * workers + SPARE_FILES) as u64);
}

/// Says so at start-up when the open-files limit, raised as far as it may be, cannot
/// hold `workers` requests.
fn warn_if_few_files(workers: usize) {
    let Ok((files, _)) = rlimit::Resource::NOFILE.get() else {
        return;
    };
    if files < (FILES_PER_REQUEST * workers + SPARE_FILES) as u64 {
        let fit = files.saturating_sub(SPARE_FILES as u64) / FILES_PER_REQUEST as u64;
        log::line(format!(
            "note: the open-files limit ({files}, as far as this process may raise it) holds \
             about {fit} requests at once, fewer than `workers` ({workers}); raise the hard \
             limit (`ulimit -Hn`, or LimitNOFILE= in a systemd unit) or lower `workers`"
        ));
    }
}

/// Probes local sources once (bounded by the probe timeout, so listening is delayed by
/// at most that), then again in the background every `detect.interval_secs`; hosted
/// lists are fetched in the background at once and every `detect.hosted_interval_secs`.
fn start_detection(shared: &Arc<Shared>) {
    probe_local(shared, &shared.registry());
    let registry = shared.registry();
    let (detected, auth) = (&shared.detected, &shared.env.auth);
    log::line(local_servers(&registry, detected, auth));
    // Once, here: a request that finds nothing gets its own 404, with no more work.
    if detect::nothing_served(&registry, detected, auth) {
        log::line(format!(
            "nothing can be served: {}",
            detect::nothing_to_list(&registry, detected, auth)
        ));
    }
    let local = Arc::clone(shared);
    let spawned = thread::Builder::new().name("detect".into()).spawn(move || {
        loop {
            let registry = local.registry();
            local.wait_to_probe(registry.settings.detect_interval);
            probe_local(&local, &local.registry());
        }
    });
    if let Err(e) = spawned {
        log::line(format!(
            "local source detection is off: cannot start its thread: {e}"
        ));
    }
    let hosted = Arc::clone(shared);
    let spawned = thread::Builder::new().name("hosted".into()).spawn(move || {
        loop {
            let registry = hosted.registry();
            list_hosted(&hosted, &registry);
            thread::sleep(registry.settings.hosted_interval);
        }
    });
    if let Err(e) = spawned {
        log::line(format!(
            "hosted model lists are off: cannot start its thread: {e}"
        ));
    }
}

impl Shared {
    /// Asks the detection thread for a probe now (see `probe_now`).
    fn probe_soon(&self) {
        let (asked, wake) = &self.probe_now;
        *crate::sync::lock(asked) = true;
        wake.notify_one();
    }

    /// Waits `interval`, or less when a probe is asked for meanwhile.
    fn wait_to_probe(&self, interval: Duration) {
        let (asked, wake) = &self.probe_now;
        let guard = crate::sync::lock(asked);
        let mut guard = match wake.wait_timeout_while(guard, interval, |asked| !*asked) {
            Ok((g, _)) => g,
            Err(poisoned) => poisoned.into_inner().0,
        };
        *guard = false;
    }
}

/// Asks for a probe when a request learned what detection does not know yet: a local
/// source it last found down has answered (it is back), or one it found up refused a
/// connection (it has stopped). The status page, `/metrics`, the model lists and
/// bare-name routing then say so from the probe's answer on, not up to
/// `detect.interval_secs` later. A request with no detected source among its targets,
/// as every request to a declared or hosted one, pays one look at each target's flag.
pub(super) fn tell_detection(shared: &Shared, targets: &[Target], served: &relay::Served) {
    if !targets.iter().any(|t| t.provider.detect) {
        return;
    }
    let detected = |label: &str| {
        targets
            .iter()
            .find(|t| t.label() == label)
            .filter(|t| t.provider.detect)
    };
    let back = served
        .served_by
        .as_deref()
        .and_then(detected)
        .is_some_and(|t| !shared.detected.is_active(&t.provider));
    // Only a request that failed over or failed can hold a refused attempt.
    let gone = (served.attempts > 1 || served.served_by.is_none())
        && served
            .tried
            .iter()
            .filter(|t| t.word == "refused")
            .filter_map(|t| detected(&t.endpoint))
            .any(|t| shared.detected.is_active(&t.provider));
    if (back || gone) && shared.detected.may_probe_on_demand() {
        shared.probe_soon();
    }
}

/// Probes the local sources; one that answers leaves its cool-down at once.
pub(super) fn probe_local(shared: &Shared, registry: &Registry) {
    let sent = Instant::now();
    let answered = detect::probe_all(
        &shared.env.client,
        &shared.env.auth,
        &registry.providers,
        &shared.detected,
        registry.settings.detect_timeout,
    );
    for p in answered.iter().filter_map(|id| registry.provider(id)) {
        shared.env.cooldown.forgive(p, sent);
    }
}

/// Fetches the hosted providers' model lists (internet hosts: the connect timeout, not
/// the short local probe timeout, bounds each).
fn list_hosted(shared: &Shared, registry: &Registry) {
    let timeout = registry
        .settings
        .connect_timeout
        .max(registry.settings.detect_timeout);
    // Each failure is in the log already.
    let _ = detect::list_hosted(
        &shared.env.client,
        &shared.env.auth,
        &registry.providers,
        &shared.detected,
        timeout,
    );
}

/// The start-up summary of local sources: `local servers: llamacpp (1 model), mygpu
/// (configured, 2 models); not found: ollama, vllm, lmstudio`. A server that refused its
/// key is found, and says so. A block of one's own at a server on this machine or its
/// network that is not asked for its models (it lists them) is named as configured:
/// the summary said `none` of a proxy serving one.
fn local_servers(registry: &Registry, detected: &Detected, auth: &Auth) -> String {
    let models = |n: usize| format!("{n} model{}", if n == 1 { "" } else { "s" });
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for p in &registry.providers {
        if !p.detect {
            if p.configured && p.source_kind() == Kind::Local {
                let listed = match p.models.len() {
                    0 => "not asked for its models".to_string(),
                    n => models(n),
                };
                found.push(format!("{} (configured, {listed})", p.id));
            }
            continue;
        }
        if let Some(status) = auth.key_refused(p) {
            found.push(format!("{} (key refused: {status})", p.id));
            continue;
        }
        match detected.state(&p.id) {
            Some(s) if s.list_failed() => found.push(format!("{} (model list failed)", p.id)),
            Some(s) if s.up => found.push(format!("{} ({})", p.id, models(s.models.len()))),
            _ => missing.push(p.id.as_str()),
        }
    }
    let found = if found.is_empty() {
        "none".to_string()
    } else {
        found.join(", ")
    };
    if missing.is_empty() {
        format!("local servers: {found}")
    } else {
        format!("local servers: {found}; not found: {}", missing.join(", "))
    }
}

/// Reads the last 8 MiB the ledger held at start in the background, so the status
/// page's totals for today and its recent requests survive a restart.
fn start_ledger_tail(shared: &Arc<Shared>) {
    let Some(ledger) = &shared.ledger else {
        return;
    };
    let (path, len) = (ledger.path().to_path_buf(), ledger.opened_len());
    if len == 0 {
        return;
    }
    let shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("ledger-tail".into())
        .spawn(move || {
            let earlier = stats::ledger::tail(&path, len, 8 * 1024 * 1024);
            shared.stats.seed(earlier);
        });
    if let Err(e) = spawned {
        log::line(format!("cannot read the usage ledger's tail: {e}"));
    }
}

/// Puts a reloaded registry in place, and says what it did not apply.
fn reloaded(shared: &Arc<Shared>, mut registry: Registry) {
    let unchanged = restart_only(&shared.registry().settings, &mut registry.settings);
    if !unchanged.is_empty() {
        log::line(format!(
            "reload: {} changed in the file and take effect at the next start; the rest is reloaded",
            unchanged.join(", ")
        ));
    }
    log::set_format(registry.settings.log_format);
    let registry = Arc::new(registry);
    *shared.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&registry);
    log::line(format!("reloaded config: {}", registry.source));
    log_warnings(&registry);
    // Keys may have changed: the hosted lists are fetched again.
    let shared = Arc::clone(shared);
    let _ = thread::Builder::new()
        .name("hosted".into())
        .spawn(move || list_hosted(&shared, &registry));
}

/// The registry's warnings, one log line each (at start and after each reload).
fn log_warnings(registry: &Registry) {
    for w in &registry.warnings {
        log::line(format!("warning: {w}"));
    }
}

/// The keys whose change a reload cannot apply, because what they set is built once at
/// start (the listening socket and its timeouts, the worker limit, the upstream
/// connection pool, the cool-down table, the reasoning memory and the usage ledger), that
/// the reloaded file changes from what the process runs with. Their running values are
/// put back into `file`: the registry in place says what is in effect, and a file
/// changed back is no change.
fn restart_only(
    running: &crate::registry::Settings,
    file: &mut crate::registry::Settings,
) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($key:literal, $($field:ident).+) => {
            if file.$($field).+ != running.$($field).+ {
                if changed.last() != Some(&$key) {
                    changed.push($key);
                }
                file.$($field).+ = running.$($field).+.clone();
            }
        };
    }
    keep!("listen", listen);
    keep!("workers", workers);
    keep!("limits.client_timeout_secs", limits.client_timeout_secs);
    keep!("limits.idle_connections", limits.idle_connections);
    keep!(
        "limits.reasoning_memory_bytes",
        limits.reasoning_memory_bytes
    );
    keep!("timeouts.connect_secs", connect_timeout);
    keep!("failover.cooldown_secs", cooldown);
    keep!("usage", usage_path);
    keep!("usage", usage_max_bytes);
    changed
}

/// Starts the thread that turns signals into a graceful stop or a reload.
fn watch_signals(
    http: Arc<tiny_http::Server>,
    shared: Arc<Shared>,
    stopping: Arc<AtomicBool>,
    reload: Reload,
) -> Result<mpsc::Receiver<()>, Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let (stop, stopped) = mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| Error::io("cannot install signal handlers", e))?;
    let mut http = Some(http);
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    notify::reloading();
                    match reload() {
                        Ok(registry) => reloaded(&shared, registry),
                        Err(e) => log::line(format!("reload failed, keeping the old config: {e}")),
                    }
                    notify::ready();
                    continue;
                }
                if stopping.swap(true, Ordering::SeqCst) {
                    // Ctrl-C twice: the user will not wait for the grace period.
                    log::line("stopping now: a second signal");
                } else {
                    let grace = shared.registry().settings.shutdown_grace;
                    log::line(format!(
                        "stopping: no new connections; waiting up to {} for requests in \
                         flight (a second signal stops at once)",
                        crate::error::seconds(grace.as_secs_f64())
                    ));
                    notify::stopping();
                    shared.detected.stop();
                    // Let go of the server, so `serve` can close the listening socket.
                    http.take();
                }
                let _ = stop.send(());
            }
        })
        .map_err(|e| Error::io("cannot start the signal thread", e))?;
    Ok(stopped)
}
