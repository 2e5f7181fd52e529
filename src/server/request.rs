//! One request, from its head to its log line: the endpoint table, limits, the client
//! key, the body and the model, then the relay, the log line and the ledger line.
//!
//! Every response is written by hand through `Request::into_writer` (see `sse.rs` for
//! why). A panic inside one request is caught, answered with a 500 if nothing was sent
//! yet, and the thread lives on.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use serde_json::json;

use super::guard;
use super::listing::{gemini_models, models_list, sources};
use super::{Shared, probe_local, tell_detection};
use crate::body::RawBody;
use crate::error::Error;
use crate::log::{self, RequestLog};
use crate::protocol::{Asked, Protocol};
use crate::registry::Registry;
use crate::relay::{self, Call};
use crate::route;
use crate::sse::ClientWriter;
use crate::stats::{self, Finished};

/// The status page served at `GET /`: one file, inline CSS and script, no other assets.
const STATUS_PAGE: &str = include_str!("../../assets/status.html");

/// Answers 503 to a request that could not start: `workers` were running for longer
/// than it may wait, or the server is stopping. Its log line, ledger line and counters
/// are a refused request's, as `handle` writes them; its body was never read, so the
/// model is not known (`-`). With keys set, it names a web page's origin as any answer
/// past the key does, though the key was not looked at.
pub(super) fn busy(req: tiny_http::Request, err: Error, shared: &Shared) {
    // Measured from its arrival: the wait for a worker is this request's whole time.
    let started = req.received_at();
    let mut log = RequestLog {
        at: Some(std::time::SystemTime::now() - started.elapsed()),
        method: method_name(req.method()),
        path: path_name(route_path(req.url())),
        ..RequestLog::default()
    };
    let inbound = protocol_for(req.method(), req.url(), || {
        req.header("anthropic-version").is_some()
    });
    let counted = is_generation(req.method(), &log.path);
    let http10 = is_http10(&req);
    let head_only = *req.method() == tiny_http::Method::Head;
    // Named as a keyed request's answer names it (see `guard::check`): else a page sees a
    // CORS error where the answer says to retry shortly. It tells no more than a 401.
    let page = guard::named_page(req.header("origin"), &shared.registry()).map(str::to_string);
    let mut out = ClientWriter::new(req.into_writer(), http10, head_only);
    if let Some(page) = page {
        out.allow_origin(page);
    }
    let headers = vec![("retry-after".to_string(), "1".to_string())];
    relay::respond_error(inbound, err.status(), &err.to_string(), &headers, &mut out);
    log.refused = Some(match err {
        Error::Busy { .. } => "workers",
        _ => "stopping",
    });
    let served = relay::Served {
        status: err.status(),
        ..relay::Served::default()
    };
    let first_write = out.first_write();
    drop(out);
    let counted = counted.then_some(Counted {
        inbound,
        stream: false,
    });
    finish(shared, log, served, started, first_write, counted);
}

/// Answers a request tiny_http refused before it was one (its head too large or too
/// slow, or not HTTP) as Routeplane answers any error: a JSON body in the client's
/// protocol, as far as its path tells (OpenAI's shape when there is none), naming the
/// limit, with `Server: routeplane`, and a log line. `client_timeout` is
/// `limits.client_timeout_secs`. A kept-alive connection that timed out idle sent no
/// request: it gets the same answer and no log line.
pub(super) fn refused(r: &tiny_http::Refusal, client_timeout: f64) -> tiny_http::RefusalAnswer {
    use tiny_http::RefusalKind::*;
    let fixed = "Routeplane's fixed limit; no setting raises it";
    let (word, message) = match r.kind {
        RequestLineTooLong(n) => (
            "request_line",
            format!("the request line (method, path and query) is longer than {n} bytes, {fixed}"),
        ),
        HeaderLineTooLong(n) => (
            "header_line",
            format!("a header line is longer than {n} bytes, {fixed}"),
        ),
        TooManyHeaders(n) => (
            "headers",
            format!("the request has more than {n} headers, {fixed}"),
        ),
        Timeout => (
            "client_timeout",
            format!(
                "the request head did not arrive within {} (raise `limits.client_timeout_secs`)",
                crate::error::seconds(client_timeout)
            ),
        ),
        Malformed if r.status == 417 => (
            "malformed",
            "the request's `Expect` header is not `100-continue`, the only one served".to_string(),
        ),
        Malformed => (
            "malformed",
            "the request is not HTTP/1.1: a malformed request line or header line".to_string(),
        ),
    };
    let path = r.path.as_deref().unwrap_or("");
    // Its headers were never read: the path alone picks the shape.
    let method = r.method.as_ref().unwrap_or(&tiny_http::Method::Post);
    let body = protocol_for(method, path, || false).error_body(r.status, &message);
    if !r.idle {
        let log = RequestLog {
            at: Some(std::time::SystemTime::now()),
            method: r.method.as_ref().map_or(Cow::Borrowed(""), method_name),
            path: path_name(route_path(path)),
            status: r.status,
            refused: Some(word),
            ..RequestLog::default()
        };
        log::request(&log);
    }
    tiny_http::RefusalAnswer {
        headers: vec![
            ("Server".to_string(), "routeplane".to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
        ],
        body,
    }
}

/// The endpoint a path names, without its query string. An OpenAI client whose base URL
/// lacks `/v1` asks for `/chat/completions`, `/completions`, `/responses` or `/models`:
/// the same endpoints.
fn route_path(url: &str) -> &str {
    // A byte search: through `split` this was ~190 instructions a call, two a request.
    let path = match url.bytes().position(|b| b == b'?') {
        Some(at) => &url[..at],
        None => url,
    };
    match path {
        "/chat/completions" => "/v1/chat/completions",
        "/completions" => "/v1/completions",
        "/responses" => "/v1/responses",
        "/models" => "/v1/models",
        p => p,
    }
}

/// The generation endpoints (Gemini's are in its paths): POST only, and counted even
/// when refused.
const GENERATION: [&str; 4] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/messages",
    "/v1/responses",
];

/// True for a request to a generation endpoint: counted (ledger, counters) even when
/// refused.
fn is_generation(method: &tiny_http::Method, path: &str) -> bool {
    *method == tiny_http::Method::Post
        && (GENERATION.contains(&path)
            || gemini_call(path).is_some_and(|(_, m)| m != "countTokens"))
}

/// The paths nearly every request asks for: the log line names them without a copy.
const KNOWN_PATHS: [&str; 10] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/messages",
    "/v1/responses",
    "/v1/models",
    "/v1/messages/count_tokens",
    "/health",
    "/metrics",
    "/status.json",
    "/",
];

/// `path` for the log line: a known one without a copy (this is made per request).
fn path_name(path: &str) -> Cow<'static, str> {
    match KNOWN_PATHS.iter().find(|k| **k == path) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(path.to_string()),
    }
}

/// The method for the log line: a standard one without a copy.
fn method_name(method: &tiny_http::Method) -> Cow<'static, str> {
    use tiny_http::Method::*;
    Cow::Borrowed(match method {
        Get => "GET",
        Post => "POST",
        Head => "HEAD",
        Put => "PUT",
        Delete => "DELETE",
        Options => "OPTIONS",
        Patch => "PATCH",
        other => return Cow::Owned(other.as_str().to_string()),
    })
}

/// The protocol errors for this request are written in: its endpoint's; for a path
/// Routeplane does not serve, Anthropic's when the path is Anthropic's (`/v1/messages/
/// batches`, `/v1/v1/messages`: an Anthropic client given a base URL with `/v1`) or the
/// client sends `anthropic-version` (the Anthropic SDK's `models.retrieve`), else OpenAI's.
/// `anthropic_version` is asked only then: a request's header list is made only when
/// asked for (about 3 400 instructions, callgrind), and a served path never needs it.
/// A GET of `/v1/models/{id}` names a model even when the id has a colon
/// (`ollama:qwen2`): only a POST there is a Gemini call.
fn protocol_for(
    method: &tiny_http::Method,
    url: &str,
    anthropic_version: impl FnOnce() -> bool,
) -> Protocol {
    use tiny_http::Method::{Get, Head};
    let reads = matches!(method, Get | Head);
    match route_path(url) {
        "/v1/chat/completions" => Protocol::Chat,
        "/v1/messages" | "/v1/messages/count_tokens" => Protocol::Anthropic,
        "/v1/responses" => Protocol::Responses,
        "/v1/completions" => Protocol::Completions,
        p if p.starts_with("/v1beta/") || (!reads && gemini_call(p).is_some()) => Protocol::Gemini,
        p if p.ends_with("/messages") || p.contains("/messages/") => Protocol::Anthropic,
        _ if anthropic_version() => Protocol::Anthropic,
        _ => Protocol::Chat,
    }
}

/// A Gemini model call, `/v1beta/models/{model}:{method}` (or `/v1/…`): the model
/// (percent-decoded) and the method. The method is after the LAST colon, since model
/// ids have colons of their own (`ollama:llama3.1:8b`).
fn gemini_call(path: &str) -> Option<(String, &str)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() || method.is_empty() {
        return None;
    }
    Some((percent_decode(model), method))
}

/// `%XX` escapes decoded; anything malformed is kept as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of a query parameter, percent-decoded.
pub(super) fn query_param(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(&v.replace('+', " ")))
}

fn is_http10(req: &tiny_http::Request) -> bool {
    let v = req.http_version();
    v.0 == 1 && v.1 == 0
}

/// Handles one request, catching a panic so the worker survives it.
pub(super) fn handle(mut req: tiny_http::Request, shared: &Shared) {
    let started = Instant::now();
    let mut log = RequestLog {
        at: Some(std::time::SystemTime::now()),
        method: method_name(req.method()),
        path: path_name(route_path(req.url())),
        ..RequestLog::default()
    };
    let inbound = protocol_for(req.method(), req.url(), || {
        req.header("anthropic-version").is_some()
    });
    let http10 = is_http10(&req);
    let head_only = *req.method() == tiny_http::Method::Head;
    let registry = shared.registry();
    let generation = is_generation(req.method(), &log.path);
    // Read everything needed from the request before taking its writer.
    let mut origin = None;
    let prepared = prepare(
        &mut req,
        &log.path,
        &registry,
        shared,
        (&mut log.model, &mut origin),
    );
    let (counted, stream) = match &prepared {
        Prepared::Relay {
            count_tokens,
            stream,
            ..
        } => (!count_tokens, *stream),
        Prepared::Fail(_) => (generation, false),
        _ => (false, false),
    };
    let probe = req.client_probe();
    let mut out = ClientWriter::new(req.into_writer(), http10, head_only);
    if let Some(origin) = origin {
        out.allow_origin(origin);
    }
    // A retry's pause, and a long wait on an upstream's answer, look whether the client
    // left (see relay/attempt.rs).
    out.set_probe(probe);
    let result = catch_unwind(AssertUnwindSafe(|| match prepared {
        Prepared::Fail(err) => {
            // After these the connection may hold unread body bytes: do not reuse it.
            let close = matches!(
                err,
                Error::TooLarge { .. } | Error::ClientTimeout { .. } | Error::BodyUnreadable(_)
            );
            let mut headers = if close {
                vec![("Connection".to_string(), "close".to_string())]
            } else {
                Vec::new()
            };
            if let Error::MethodNotAllowed { allowed, .. } = &err {
                headers.push(("Allow".to_string(), allowed.to_string()));
            }
            // OpenAI's own codes for a wrong URL or method, not the model-not-found a 404
            // would otherwise be given.
            let code = match &err {
                Error::NoEndpoint { .. } => Some("unknown_url"),
                Error::MethodNotAllowed { .. } => Some("method_not_allowed"),
                _ => None,
            };
            let body = inbound.error_body_coded(err.status(), &err.to_string(), code);
            let _ = out.respond(err.status(), "application/json", &headers, &body);
            relay::Served {
                status: err.status(),
                ..relay::Served::default()
            }
        }
        Prepared::Json(status, body) => {
            let _ = out.respond(status, "application/json", &[], body.as_bytes());
            relay::Served {
                status,
                ..relay::Served::default()
            }
        }
        Prepared::Preflight(grant) => {
            let _ = out.respond(200, "text/plain", &grant, b"");
            relay::Served {
                status: 200,
                ..relay::Served::default()
            }
        }
        Prepared::Text(status, content_type, body) => {
            let _ = out.respond(status, content_type, &[], body.as_bytes());
            relay::Served {
                status,
                ..relay::Served::default()
            }
        }
        Prepared::Relay {
            body,
            targets,
            forward,
            count_tokens,
            stream,
            array,
        } => {
            // What the client asked for: `log.model` (a `models` list comma-joined).
            let requested = &log.model;
            if shared.panic_model.as_deref() == Some(requested.as_str()) {
                panic!("test hook: ROUTEPLANE_TEST_PANIC_MODEL names `{requested}`");
            }
            let _in_flight = shared.stats.enter(stream);
            let call = Call {
                inbound,
                asked: Asked::of(inbound, &body),
                stream,
                body: &body,
                targets: &targets,
                forward,
                requested,
            };
            if array {
                out.json_array();
            }
            let served = if count_tokens {
                relay::count_tokens(&shared.env, &registry.settings, &call, &mut out)
            } else {
                relay::run(&shared.env, &registry.settings, &call, &mut out)
            };
            tell_detection(shared, &targets, &served);
            // The thread's next small body is read into this one's buffer.
            tiny_http::reuse_body(body.into_bytes());
            served
        }
    }));
    let served = match result {
        Ok(r) => r,
        Err(_) => {
            if !out.started() {
                let err = Error::Internal("the request handler failed; see the log".into());
                relay::respond_error(inbound, 500, &err.to_string(), &[], &mut out);
            } else {
                let _ = out.end_stream();
            }
            relay::Served {
                status: 500,
                ..relay::Served::default()
            }
        }
    };
    let first_write = out.first_write();
    let counted = counted.then_some(Counted { inbound, stream });
    finish(shared, log, served, started, first_write, counted);
}

/// A request the ledger and the counters take: the protocol it came in, and whether the
/// client asked for a stream.
struct Counted {
    inbound: Protocol,
    stream: bool,
}

/// Writes a request's log line and, when it is `counted`, its ledger line and counters:
/// the client has its last byte. `started` is when its time began, `first_write` when
/// its first byte went out.
fn finish(
    shared: &Shared,
    mut log: RequestLog,
    mut served: relay::Served,
    started: Instant,
    first_write: Option<Instant>,
    counted: Option<Counted>,
) {
    log.status = served.status;
    log.served_by = served.served_by.take();
    log.attempts = served.attempts;
    log.set_tried(served.tried.iter().map(|t| (&*t.endpoint, &*t.word)));
    log.stream = served.stream;
    log.rescued = std::mem::take(&mut served.rescued_by);
    log.ttfb = first_write.map(|t| t.duration_since(started));
    log.total = started.elapsed();
    if !polled(&log) {
        log::request(&log);
    }
    // The client has its last byte: now the request is counted and written down.
    if let Some(Counted { inbound, stream }) = counted {
        let finished = Finished {
            // When it arrived, as its log line says: `usage --since` picks requests by
            // when they were made, and a long stream ends minutes later.
            at: log.at.unwrap_or_else(std::time::SystemTime::now),
            inbound,
            requested: std::mem::take(&mut log.model),
            served_by: log.served_by.take(),
            status: served.status,
            stream,
            stream_end: served.stream,
            attempts: served.attempts,
            rescues: served.rescued,
            rescued_by: std::mem::take(&mut log.rescued),
            tried: served.tried,
            ttfb: log.ttfb,
            ttft: served.first_token.map(|t| t.duration_since(started)),
            total: log.total,
            tokens: served.tokens,
        };
        if let Some(ledger) = &shared.ledger {
            log::with_buffer(|line| {
                stats::ledger::push_line(line, &finished);
                ledger.append(line);
            });
        }
        shared.stats.record(finished);
    }
}

/// True for a read that pollers repeat, answered: the status page's `/status.json`
/// (every 3 s while it is open), a scraper's `/metrics`, a health check's `/health`.
/// Logged, they buried the requests; refused (a wrong key), they are logged.
fn polled(log: &RequestLog) -> bool {
    log.status == 200
        && matches!(
            &*log.path,
            "/status.json" | "/metrics" | "/health" | "/api/hello"
        )
        && matches!(&*log.method, "GET" | "HEAD")
}

/// The longest model id a request may name, a `provider:` prefix included. Real ids
/// are under 200 bytes (a vLLM model served under its snapshot path is about 120);
/// the bound keeps what is echoed (headers, error bodies, log and ledger) small.
const MAX_MODEL_BYTES: usize = 256;

/// What `prepare` decided before any byte is written.
enum Prepared {
    /// Answer with this error.
    Fail(Error),
    /// Answer with this JSON.
    Json(u16, String),
    /// Answer with this status, content type and body (the status page, /metrics).
    Text(u16, &'static str, String),
    /// Answer a browser's preflight 200 with these headers (what it may send).
    Preflight(Vec<(String, String)>),
    /// Relay to these targets.
    Relay {
        body: RawBody,
        targets: crate::sync::Spare<Vec<crate::registry::Target>>,
        forward: Vec<crate::upstream::Header>,
        count_tokens: bool,
        /// The client asked for a stream (in the body, or Gemini's method).
        stream: bool,
        /// Gemini's stream without `alt=sse`: one JSON array.
        array: bool,
    },
}

/// Reads and checks a request at `path` (its URL without the query): endpoint, client
/// key, body, model. The requested model goes into `logged_model` as soon as it is read,
/// for the log line of a refused request, and the relay takes it from there. `origin`
/// gets a browser page's origin when its answer is to name it (see [`guard::check`]).
fn prepare(
    req: &mut tiny_http::Request,
    path: &str,
    registry: &Registry,
    shared: &Shared,
    (logged_model, origin): (&mut String, &mut Option<String>),
) -> Prepared {
    use tiny_http::Method::{Get, Head, Post};
    let method = req.method().clone();
    let settings = &registry.settings;
    // Liveness checks, open without a key: `/health` and `/api/hello` (Claude Code sends
    // `HEAD /api/hello` to see that its base URL answers).
    let alive = matches!((&method, path), (Get | Head, "/health" | "/api/hello"));
    if alive {
        return Prepared::Json(200, json!({"status": "ok"}).to_string());
    }
    // Without keys, only a request addressed to this machine (see guard.rs): a page that
    // pointed its own name here (DNS rebinding) would read every answer below. `/health`
    // above stays open: it tells nothing, and a container's health check calls it by the
    // service's name. A browser shows the status page's refusal as text.
    if let Some(err) = guard::foreign_host(req, registry) {
        if path == "/" && accepts_html(req) {
            return Prepared::Text(403, "text/plain; charset=utf-8", err.to_string());
        }
        return Prepared::Fail(err);
    }
    // `/` is open too: the status page, or `{"status":"ok"}` to a client that takes no
    // HTML. HEAD answers 200 with the headers GET would send for the same `Accept`. The
    // page holds no data (it asks /status.json for it, with a key when keys are set).
    if path == "/" && matches!(method, Get | Head) {
        return if accepts_html(req) {
            Prepared::Text(200, "text/html; charset=utf-8", STATUS_PAGE.to_string())
        } else {
            Prepared::Json(200, json!({"status": "ok"}).to_string())
        };
    }
    match guard::check(req, path, registry, origin) {
        Ok(None) => {}
        Ok(Some(grant)) => return Prepared::Preflight(grant),
        Err(e) => return Prepared::Fail(e),
    }
    let gemini = gemini_call(path);
    let endpoint = match (&method, path) {
        (Get | Head, "/v1/models") => {
            return Prepared::Json(200, models_list(registry, &shared.detected));
        }
        (Get | Head, "/metrics") => {
            let kept = shared.env.recall.bytes();
            let text = stats::metrics::render(&shared.stats, &sources(registry, shared), kept);
            return Prepared::Text(200, stats::metrics::CONTENT_TYPE, text);
        }
        (Get | Head, "/status.json") => {
            return Prepared::Json(200, shared.stats.status_json(&sources(registry, shared)));
        }
        // What `routeplane route` and `routeplane providers` cannot know by themselves.
        (Get | Head, "/routeplane/cooldowns") => {
            let list: Vec<_> = shared
                .env
                .cooldown
                .snapshot()
                .into_iter()
                .map(|(target, left)| json!({"target": target, "secs_left": left.as_secs_f64()}))
                .collect();
            // The file it serves, so a command run with another file ignores the list.
            let config = std::fs::canonicalize(&registry.source).ok();
            let config = config.map(|p| p.display().to_string());
            // The keys refused to requests too, which a command's own probe never sees.
            let refused: Vec<_> = registry
                .providers
                .iter()
                .filter_map(|p| {
                    let status = shared.env.auth.key_refused(p)?;
                    Some(json!({"provider": p.id, "status": status}))
                })
                .collect();
            let answer = json!({"config": config, "cooldowns": list, "keys_refused": refused});
            return Prepared::Json(200, answer.to_string());
        }
        (Get | Head, "/v1beta/models") => {
            return Prepared::Json(200, gemini_models(registry, &shared.detected, None));
        }
        // A GET names a model, never a method: `up:m` is a model id here.
        (Get | Head, p) if p.starts_with("/v1beta/models/") || p.starts_with("/v1/models/") => {
            let id = percent_decode(p.split_once("/models/").map_or("", |(_, id)| id));
            // No id ends with `/`: `/v1/models/` is the list, `/v1/models/smart/` is `smart`.
            let id = id.trim_end_matches('/');
            if id.is_empty() {
                let list = if p.starts_with("/v1beta/") {
                    gemini_models(registry, &shared.detected, None)
                } else {
                    models_list(registry, &shared.detected)
                };
                return Prepared::Json(200, list);
            }
            let one = gemini_models(registry, &shared.detected, Some(id));
            if one.is_empty() {
                return Prepared::Fail(route::unknown(registry, &shared.detected, id));
            }
            return Prepared::Json(200, one);
        }
        (Post, _) if gemini.is_some() => match gemini.as_ref().map(|(_, m)| *m) {
            Some("generateContent" | "streamGenerateContent" | "countTokens") => Protocol::Gemini,
            _ => {
                return Prepared::Fail(Error::bad_request(format!(
                    "no Gemini method at {path}; Routeplane serves :generateContent, :streamGenerateContent and :countTokens"
                )));
            }
        },
        (Post, "/v1/chat/completions") => Protocol::Chat,
        (Post, "/v1/completions") => Protocol::Completions,
        (Post, "/v1/messages" | "/v1/messages/count_tokens") => Protocol::Anthropic,
        (Post, "/v1/responses") => Protocol::Responses,
        (_, p) if GENERATION.contains(&p) => {
            return Prepared::Fail(Error::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_string(),
                allowed: "POST",
            });
        }
        (_, "/v1/models" | "/metrics" | "/status.json" | "/health" | "/") => {
            return Prepared::Fail(Error::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_string(),
                allowed: "GET, HEAD",
            });
        }
        _ => {
            return Prepared::Fail(Error::NoEndpoint {
                method: method.to_string(),
                path: path.to_string(),
            });
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
    let body = match RawBody::parse(bytes) {
        Ok(b) => b,
        Err(e) => return Prepared::Fail(e),
    };
    let (model, models, body_stream) = match body.routing() {
        Ok(r) => (r.model, r.models, r.stream),
        Err(e) => return Prepared::Fail(e),
    };
    // Gemini names the model and whether to stream in the URL, not the body.
    let (model, stream) = match &gemini {
        Some((m, method)) => (Some(m.clone()), *method == "streamGenerateContent"),
        None => (model, body_stream),
    };
    // Checked before anything echoes it: a 100 KB name went into a response header,
    // a 404 body, the log line and the ledger line.
    let long = (models.iter().flatten())
        .chain(model.iter())
        .find(|m| m.len() > MAX_MODEL_BYTES);
    if let Some(m) = long {
        let mut cut = m.len().min(32);
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        *logged_model = format!("{}…", &m[..cut]);
        return Prepared::Fail(Error::bad_request(format!(
            "the model id `{}…` is {} bytes long; model ids are at most {MAX_MODEL_BYTES} bytes",
            &m[..cut],
            m.len()
        )));
    }
    let many;
    let list: &[String] = match (models, model) {
        (Some(list), _) => {
            *logged_model = list.join(",");
            many = list;
            &many
        }
        // The model the log line names is the one routed: moved there, not copied.
        (None, Some(m)) if !m.is_empty() => {
            *logged_model = m;
            std::slice::from_ref(&*logged_model)
        }
        _ => {
            return Prepared::Fail(Error::bad_request(
                "`model` is required (or `models`, a list of up to 8 model ids)",
            ));
        }
    };
    let mut resolved = route::resolve_all(registry, &shared.detected, list);
    // A model no source declares may have appeared on a local server since the last probe.
    // So may a source found down since.
    if matches!(
        resolved,
        Err(Error::UnknownModel { .. } | Error::SourceDown { .. })
    ) && shared.detected.may_probe_on_demand()
    {
        probe_local(shared, registry);
        resolved = route::resolve_all(registry, &shared.detected, list);
    }
    let mut targets = match resolved {
        Ok(t) => t,
        Err(e) => return Prepared::Fail(e),
    };
    if endpoint == Protocol::Completions
        && let Err(e) = route::for_completions(&mut targets, logged_model)
    {
        return Prepared::Fail(e);
    }
    let forward = if endpoint == Protocol::Anthropic {
        req.headers()
            .iter()
            .filter(|h| h.field.equiv("anthropic-beta") || h.field.equiv("anthropic-version"))
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase().into(),
                    h.value.as_str().to_string().into(),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let gemini_method = gemini.as_ref().map(|(_, m)| *m);
    Prepared::Relay {
        body,
        targets,
        forward,
        count_tokens: path == "/v1/messages/count_tokens" || gemini_method == Some("countTokens"),
        stream,
        array: stream
            && gemini.is_some()
            && query_param(req.url(), "alt").as_deref() != Some("sse"),
    }
}

/// Reads a request body up to `limit` bytes, all of it within `secs` seconds.
///
/// The socket's own read timeout bounds each read; this bounds the total, so a client
/// trickling a byte at a time cannot hold a worker. A body that ends before its
/// `Content-Length` or last chunk is an error from the reader (the vendored tiny_http
/// reports it), never a shorter body: half a request must not be relayed.
fn read_body(req: &mut tiny_http::Request, limit: u64, secs: f64) -> Result<Vec<u8>, Error> {
    // A small body came whole with the head: taken as it is, no second buffer.
    if let Some(body) = req.take_body() {
        if body.len() as u64 > limit {
            return Err(Error::TooLarge { limit });
        }
        return Ok(body);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs.max(0.0));
    // Read straight into the body, grown as it fills: a zeroed 16 KiB scratch buffer
    // per request was a sixth of all instructions (callgrind). Sized from
    // Content-Length, plus one byte so that the end arrives without a regrowth; but a
    // length the client only claims buys at most 1 MiB until the bytes arrive.
    let first = req.body_length().map_or(4096, |n| n.saturating_add(1));
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = crate::body::zeroed(first.min(cap).min(1 << 20));
    let mut filled = 0;
    let reader = req.as_reader();
    loop {
        if filled == bytes.len() {
            let more = filled.clamp(4096, 1 << 20);
            crate::sync::zero_to(&mut bytes, filled + more);
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
                // After each read that brought bytes: none is due before the first.
                if Instant::now() > deadline {
                    return Err(Error::ClientTimeout { secs });
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

/// True when the client's `Accept` allows HTML: it names `text/html` or `text/*`, or it
/// is absent, or it takes `*/*` without naming JSON (a JSON client that also takes
/// anything gets JSON).
fn accepts_html(req: &tiny_http::Request) -> bool {
    let accept = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("accept"))
        .map(|h| h.value.as_str().to_ascii_lowercase());
    match accept {
        None => true,
        Some(a) if a.trim().is_empty() => true,
        Some(a) if a.contains("text/html") || a.contains("text/*") => true,
        Some(a) => a.contains("*/*") && !a.contains("json"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_body_given_back_is_read_into_by_the_next() {
        let mut first: tiny_http::Request = tiny_http::TestRequest::new()
            .with_body(r#"{"model":"a"}"#)
            .into();
        let body = first.take_body().expect("a small body comes whole");
        let at = body.as_ptr();
        tiny_http::reuse_body(body);
        let mut second: tiny_http::Request = tiny_http::TestRequest::new().with_body("{}").into();
        let body = second.take_body().expect("a small body comes whole");
        assert_eq!(body, b"{}");
        assert_eq!(body.as_ptr(), at, "the given-back buffer was not reused");
    }

    #[test]
    fn gemini_paths_split_at_the_last_colon() {
        assert_eq!(
            gemini_call("/v1beta/models/ollama:llama3.1:8b:streamGenerateContent"),
            Some(("ollama:llama3.1:8b".to_string(), "streamGenerateContent"))
        );
        assert_eq!(
            gemini_call("/v1/models/ollama%3Allama3.1:generateContent"),
            Some(("ollama:llama3.1".to_string(), "generateContent"))
        );
        assert_eq!(gemini_call("/v1beta/models/plain"), None);
        assert_eq!(gemini_call("/v1/models"), None);
        assert_eq!(
            query_param("/x?alt=sse&key=a%2Bb", "key").as_deref(),
            Some("a+b")
        );
        assert_eq!(query_param("/x?alt=sse", "key"), None);
    }

    #[test]
    fn paths_pick_the_error_protocol() {
        use tiny_http::Method::{Get, Post};
        assert_eq!(
            protocol_for(&Post, "/v1beta/models/m:generateContent?key=k", || false),
            Protocol::Gemini
        );
        assert_eq!(
            protocol_for(&Post, "/v1/models/m:generateContent", || false),
            Protocol::Gemini
        );
        assert_eq!(protocol_for(&Post, "/v1/models", || false), Protocol::Chat);
        assert_eq!(
            protocol_for(&Post, "/v1/messages?beta=true", || false),
            Protocol::Anthropic
        );
        assert_eq!(
            protocol_for(&Post, "/v1/responses", || false),
            Protocol::Responses
        );
        assert_eq!(
            protocol_for(&Post, "/completions", || false),
            Protocol::Completions
        );
        assert_eq!(protocol_for(&Post, "/nope", || false), Protocol::Chat);
        assert_eq!(
            protocol_for(&Post, "/v1/v1/messages", || false),
            Protocol::Anthropic
        );
        assert_eq!(
            protocol_for(&Post, "/v1/messages/batches", || false),
            Protocol::Anthropic
        );
        assert_eq!(
            protocol_for(&Get, "/v1/models/x", || true),
            Protocol::Anthropic
        );
        // A GET names a model: the colon is the id's.
        assert_eq!(
            protocol_for(&Get, "/v1/models/ollama:qwen2", || false),
            Protocol::Chat
        );
        assert_eq!(
            protocol_for(&Get, "/v1beta/models/ollama:qwen2", || false),
            Protocol::Gemini
        );
        assert_eq!(
            protocol_for(&Post, "/v1/chat/completions", || true),
            Protocol::Chat
        );
    }
}
