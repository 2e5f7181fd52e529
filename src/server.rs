//! The listener: tiny_http, at most `workers` requests at once, the endpoint table,
//! limits, client keys.
//!
//! tiny_http gives each connection a thread of its own, and a request runs on it; at
//! most `workers` run at once. A request that cannot start within
//! `limits.queue_wait_secs` gets 503 with `Retry-After`, naming the limit: load never
//! grows an unbounded backlog. Each request's body is read (up to the limit), the
//! client key checked, the model resolved, and the request handed to `relay::run`.
//! Every response is written by hand through `Request::into_writer` (see `sse.rs` for
//! why). A panic inside one request is caught, answered with a 500 if nothing was sent
//! yet, and the thread lives on.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::auth::Auth;
use crate::body::RawBody;
use crate::detect::{self, Detected};
use crate::error::Error;
use crate::log::{self, RequestLog};
use crate::protocol::Protocol;
use crate::registry::Registry;
use crate::relay::{self, Call, Env};
use crate::route::{self, Cooldown};
use crate::sse::ClientWriter;
use crate::upstream;

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
    /// Test hook: a request for this model panics inside its handler, so the tests can
    /// prove a panic stays inside one request. Set only from `ROUTEPLANE_TEST_PANIC_MODEL`.
    panic_model: Option<String>,
}

impl Shared {
    /// Builds the shared state for a registry.
    pub fn new(registry: Registry, auth: Arc<Auth>, detected: Arc<Detected>) -> Shared {
        let env = Env {
            client: upstream::Client::new(&registry.settings),
            auth,
            cooldown: Cooldown::new(registry.settings.cooldown),
        };
        Shared {
            registry: RwLock::new(Arc::new(registry)),
            detected,
            env,
            pending: AtomicUsize::new(0),
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
    let http = tiny_http::Server::http_with_timeout(addr, client_timeout).map_err(|e| {
        Error::io(
            format!("cannot listen on {addr} (is another routeplane running? use --listen)"),
            std::io::Error::other(e.to_string()),
        )
    })?;
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
/// grace period. SIGHUP swaps in a freshly loaded registry; a bad config is logged and
/// the old one keeps serving.
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
    // Handlers first: until they are in, SIGHUP's default action ends the process.
    let stop = watch_signals(
        Arc::clone(&listener.http),
        Arc::clone(&shared),
        Arc::clone(&stopping),
        reload,
    )?;
    // The first line names the bound address (tests read the port from it); once it is
    // out, signals are handled.
    log::line(format!(
        "listening on http://{} (config: {})",
        listener.addr,
        shared.registry().source
    ));
    warn_if_few_files(limit);
    {
        // Requests that arrived since binding were queued; this runs them too.
        let (shared, stopping) = (Arc::clone(&shared), Arc::clone(&stopping));
        listener.http.handle_inline(Box::new(move |req| {
            admit(req, &shared, &stopping, limit, wait)
        }));
    }
    start_detection(&shared);
    // Sleeps until a stop signal: an idle server wakes for nothing.
    let _ = stop.recv();
    // Stop accepting: the last handle to the server closes the listening socket.
    drop(listener);
    let grace = shared.registry().settings.shutdown_grace;
    let deadline = Instant::now() + grace;
    while shared.pending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let left = shared.pending.load(Ordering::SeqCst);
    if left > 0 {
        log::line(format!(
            "stopped with {left} request(s) still running after {grace:?}"
        ));
    } else {
        log::line("stopped");
    }
    Ok(())
}

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
            busy(req, Error::Stopping);
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
        if req.received_at().elapsed() > wait {
            busy(req, Error::Busy { workers: limit });
            return;
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(16));
    }
    handle(req, shared);
    shared.pending.fetch_sub(1, Ordering::SeqCst);
}

/// Says so at start-up when the open-files limit cannot hold `workers` requests: each
/// holds two sockets (the client's and the upstream's), and many systems start programs
/// with a soft limit of 1024, which would refuse connections near 500 open streams.
fn warn_if_few_files(workers: usize) {
    let Some(files) = open_files_limit() else {
        return;
    };
    // The listener, the idle upstream pool, logs and files: a few dozen.
    let spare = 64;
    if files < (2 * workers + spare) as u64 {
        let fit = files.saturating_sub(spare as u64) / 2;
        log::line(format!(
            "note: the open-files limit ({files}) holds about {fit} requests at once, fewer than \
             `workers` ({workers}); raise it with `ulimit -n` (or LimitNOFILE= in a systemd unit)"
        ));
    }
}

/// This process's soft limit on open files, from /proc (Linux); None elsewhere.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Probes local sources once (bounded by the probe timeout, so listening is delayed by
/// at most that), then again in the background every `detect.interval_secs`.
fn start_detection(shared: &Arc<Shared>) {
    let settings = shared.registry().settings.clone();
    detect::probe_all(
        &shared.env.client,
        &shared.registry().providers,
        &shared.detected,
        settings.detect_timeout,
    );
    let shared = Arc::clone(shared);
    let spawned = thread::Builder::new().name("detect".into()).spawn(move || {
        loop {
            let registry = shared.registry();
            thread::sleep(registry.settings.detect_interval);
            let timeout = registry.settings.detect_timeout;
            detect::probe_all(
                &shared.env.client,
                &registry.providers,
                &shared.detected,
                timeout,
            );
        }
    });
    if let Err(e) = spawned {
        log::line(format!(
            "local source detection is off: cannot start its thread: {e}"
        ));
    }
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
                    match reload() {
                        Ok(registry) => {
                            let source = registry.source.clone();
                            *shared.registry.write().unwrap_or_else(|p| p.into_inner()) =
                                Arc::new(registry);
                            log::line(format!("reloaded config: {source}"));
                        }
                        Err(e) => log::line(format!("reload failed, keeping the old config: {e}")),
                    }
                    continue;
                }
                log::line("stopping: no new connections; waiting for requests in flight");
                stopping.store(true, Ordering::SeqCst);
                // Let go of the server, so `serve` can close the listening socket.
                http.take();
                let _ = stop.send(());
            }
        })
        .map_err(|e| Error::io("cannot start the signal thread", e))?;
    Ok(stopped)
}

/// Answers 503 to a request that could not start: `workers` were running for longer
/// than it may wait, or the server is stopping.
fn busy(req: tiny_http::Request, err: Error) {
    let inbound = protocol_for(req.url());
    let http10 = is_http10(&req);
    let head_only = *req.method() == tiny_http::Method::Head;
    let path = route_path(req.url()).to_string();
    let method = req.method().to_string();
    let mut out = ClientWriter::new(req.into_writer(), http10, head_only);
    let headers = vec![("retry-after".to_string(), "1".to_string())];
    relay::respond_error(inbound, err.status(), &err.to_string(), &headers, &mut out);
    let why = match err {
        Error::Busy { workers } => format!("{workers} requests running, the `workers` limit"),
        _ => "stopping".to_string(),
    };
    log::line(format!("{method} {path} refused: {why} status=503"));
}

/// The endpoint a path names, without its query string.
fn route_path(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The protocol errors for this path are written in.
fn protocol_for(url: &str) -> Protocol {
    match route_path(url) {
        "/v1/messages" | "/v1/messages/count_tokens" => Protocol::Anthropic,
        "/v1/responses" => Protocol::Responses,
        _ => Protocol::Chat,
    }
}

fn is_http10(req: &tiny_http::Request) -> bool {
    let v = req.http_version();
    v.0 == 1 && v.1 == 0
}

/// Handles one request, catching a panic so the worker survives it.
fn handle(mut req: tiny_http::Request, shared: &Shared) {
    let started = Instant::now();
    let mut log = RequestLog {
        method: req.method().to_string(),
        path: route_path(req.url()).to_string(),
        ..RequestLog::default()
    };
    let inbound = protocol_for(req.url());
    let http10 = is_http10(&req);
    let head_only = *req.method() == tiny_http::Method::Head;
    let registry = shared.registry();
    // Read everything needed from the request before taking its writer.
    let prepared = prepare(&mut req, &registry, shared);
    let mut out = ClientWriter::new(req.into_writer(), http10, head_only);
    let result = catch_unwind(AssertUnwindSafe(|| match prepared {
        Prepared::Fail(err) => {
            // After these the connection may hold unread body bytes: do not reuse it.
            let close = matches!(
                err,
                Error::TooLarge { .. } | Error::ClientTimeout { .. } | Error::BodyUnreadable(_)
            );
            let headers = if close {
                vec![("Connection".to_string(), "close".to_string())]
            } else {
                Vec::new()
            };
            relay::respond_error(inbound, err.status(), &err.to_string(), &headers, &mut out);
            (err.status(), None, 0, String::new())
        }
        Prepared::Json(status, body) => {
            let _ = out.respond(status, "application/json", &[], body.as_bytes());
            (status, None, 0, String::new())
        }
        Prepared::Relay {
            body,
            targets,
            requested,
            forward,
            count_tokens,
        } => {
            if shared.panic_model.as_deref() == Some(requested.as_str()) {
                panic!("test hook: ROUTEPLANE_TEST_PANIC_MODEL names `{requested}`");
            }
            let call = Call {
                inbound,
                include_usage: body.include_usage(),
                stream: body.stream().unwrap_or(false),
                body: &body,
                targets,
                forward,
                requested: requested.clone(),
            };
            let served = if count_tokens {
                relay::count_tokens(&shared.env, &registry.settings, &call, &mut out)
            } else {
                relay::run(&shared.env, &registry.settings, &call, &mut out)
            };
            (served.status, served.served_by, served.attempts, requested)
        }
    }));
    let (status, served_by, attempts, model) = match result {
        Ok(r) => r,
        Err(_) => {
            if !out.started() {
                let err = Error::Internal("the request handler failed; see the log".into());
                relay::respond_error(inbound, 500, &err.to_string(), &[], &mut out);
            } else {
                let _ = out.end_stream();
            }
            (500, None, 0, String::new())
        }
    };
    log.status = status;
    log.served_by = served_by;
    log.attempts = attempts;
    log.model = model;
    log.ttfb = out.first_write().map(|t| t.duration_since(started));
    log.total = started.elapsed();
    log::line(&log);
}

/// What `prepare` decided before any byte is written.
enum Prepared {
    /// Answer with this error.
    Fail(Error),
    /// Answer with this JSON.
    Json(u16, String),
    /// Relay to these targets.
    Relay {
        body: RawBody,
        targets: Vec<crate::registry::Target>,
        requested: String,
        forward: Vec<(String, String)>,
        count_tokens: bool,
    },
}

/// Reads and checks a request: endpoint, client key, body, model.
fn prepare(req: &mut tiny_http::Request, registry: &Registry, shared: &Shared) -> Prepared {
    use tiny_http::Method::{Get, Head, Post};
    let path = route_path(req.url()).to_string();
    let method = req.method().clone();
    let settings = &registry.settings;
    if path == "/health" && matches!(method, Get | Head) {
        return Prepared::Json(200, json!({"status": "ok"}).to_string());
    }
    if !settings.skip_auth && !client_key_ok(req, registry) {
        return Prepared::Fail(Error::Unauthorized);
    }
    let endpoint = match (&method, path.as_str()) {
        (Get | Head, "/v1/models") => {
            return Prepared::Json(200, models_list(registry, &shared.detected));
        }
        (Post, "/v1/chat/completions") => Protocol::Chat,
        (Post, "/v1/messages" | "/v1/messages/count_tokens") => Protocol::Anthropic,
        (Post, "/v1/responses") => Protocol::Responses,
        (_, "/v1/chat/completions" | "/v1/messages" | "/v1/responses" | "/v1/models") => {
            return Prepared::Fail(Error::bad_request(format!(
                "method {method} is not allowed on {path}"
            )));
        }
        _ => {
            return Prepared::Fail(Error::bad_request(format!(
                "no endpoint {method} {path}; see GET /v1/models, POST /v1/chat/completions, /v1/messages, /v1/responses"
            )));
        }
    };
    let limit = settings.limits.max_body_bytes;
    if req.body_length().is_some_and(|n| n as u64 > limit) {
        return Prepared::Fail(Error::TooLarge { limit });
    }
    let bytes = match read_body(req, limit, settings.limits.client_timeout_secs) {
        Ok(b) => b,
        Err(e) => return Prepared::Fail(e),
    };
    let body = match RawBody::parse(&bytes) {
        Ok(b) => b,
        Err(e) => return Prepared::Fail(e),
    };
    let checked = body
        .model()
        .and_then(|m| Ok((m, body.models()?, body.stream()?)));
    let (model, models, _) = match checked {
        Ok(v) => v,
        Err(e) => return Prepared::Fail(e),
    };
    let from_list = models.is_some();
    let list = match (models, model) {
        (Some(list), _) => list,
        (None, Some(m)) if !m.is_empty() => vec![m],
        _ => {
            return Prepared::Fail(Error::bad_request(
                "`model` is required (or `models`, a list of up to 8 model ids)",
            ));
        }
    };
    let mut resolved = route::resolve_all(registry, &shared.detected, &list);
    // A model no source declares may have appeared on a local server since the last probe.
    if matches!(resolved, Err(Error::UnknownModel { .. })) && shared.detected.may_probe_on_demand()
    {
        let timeout = registry.settings.detect_timeout;
        detect::probe_all(
            &shared.env.client,
            &registry.providers,
            &shared.detected,
            timeout,
        );
        resolved = route::resolve_all(registry, &shared.detected, &list);
    }
    let targets = match resolved {
        Ok(t) => t,
        // In a `models` list an unknown id is a malformed request, not a missing model.
        Err(Error::UnknownModel { model, known }) if from_list => {
            return Prepared::Fail(Error::bad_request(format!(
                "`models` names unknown model `{model}`; known models include: {}",
                known.join(", ")
            )));
        }
        Err(e) => return Prepared::Fail(e),
    };
    let forward = if endpoint == Protocol::Anthropic {
        req.headers()
            .iter()
            .filter(|h| h.field.equiv("anthropic-beta") || h.field.equiv("anthropic-version"))
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.as_str().to_string(),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Prepared::Relay {
        body,
        targets,
        requested: list.join(","),
        forward,
        count_tokens: path == "/v1/messages/count_tokens",
    }
}

/// Reads a request body up to `limit` bytes, all of it within `secs` seconds.
///
/// The socket's own read timeout bounds each read; this bounds the total, so a client
/// trickling a byte at a time cannot hold a worker. A body that ends before its
/// `Content-Length` or last chunk is an error from the reader (the vendored tiny_http
/// reports it), never a shorter body: half a request must not be relayed.
fn read_body(req: &mut tiny_http::Request, limit: u64, secs: f64) -> Result<Vec<u8>, Error> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs.max(0.0));
    // Read straight into the body, grown as it fills: a zeroed 16 KiB scratch buffer
    // per request was a sixth of all instructions (callgrind). Sized from
    // Content-Length, plus one byte so that the end arrives without a regrowth; but a
    // length the client only claims buys at most 1 MiB until the bytes arrive.
    let first = req.body_length().map_or(4096, |n| n.saturating_add(1));
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; first.min(cap).min(1 << 20)];
    let mut filled = 0;
    let reader = req.as_reader();
    loop {
        if Instant::now() > deadline {
            return Err(Error::ClientTimeout { secs });
        }
        if filled == bytes.len() {
            let more = filled.clamp(4096, 1 << 20);
            bytes.resize(filled + more, 0);
        }
        match reader.read(&mut bytes[filled..]) {
            Ok(0) => {
                bytes.truncate(filled);
                return Ok(bytes);
            }
            Ok(n) => {
                filled += n;
                if filled as u64 > limit {
                    return Err(Error::TooLarge { limit });
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Error::ClientTimeout { secs });
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::BodyUnreadable(e.to_string())),
        }
    }
}

/// `GET /v1/models` in OpenAI's list shape.
fn models_list(registry: &Registry, detected: &Detected) -> String {
    let data: Vec<_> = route::routable(registry, detected)
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    json!({"object": "list", "data": data}).to_string()
}

/// True when the request carries one of the configured client keys.
fn client_key_ok(req: &tiny_http::Request, registry: &Registry) -> bool {
    let presented = req.headers().iter().find_map(|h| {
        if h.field.equiv("authorization") {
            let v = h.value.as_str();
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .map(str::trim)
                .map(str::to_string)
        } else if h.field.equiv("x-api-key") {
            Some(h.value.as_str().trim().to_string())
        } else {
            None
        }
    });
    let Some(presented) = presented else {
        return false;
    };
    // Check every key, without stopping early, in constant time per key.
    registry.settings.keys.iter().fold(false, |ok, key| {
        ok | constant_time_eq(key.expose().as_bytes(), presented.as_bytes())
    })
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn paths_pick_the_error_protocol() {
        assert_eq!(protocol_for("/v1/messages?beta=true"), Protocol::Anthropic);
        assert_eq!(protocol_for("/v1/responses"), Protocol::Responses);
        assert_eq!(protocol_for("/nope"), Protocol::Chat);
    }
}
