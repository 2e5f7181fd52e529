//! One request, from its head to its log line: what was decided (see `prepare.rs`) is
//! answered or relayed, then the log line, the ledger line and the counters are written.
//! The answers to requests that never were one (no worker free, a head tiny_http
//! refused) are written here too, with their log lines.
//!
//! Every response is written by hand through `Request::into_writer` (see `sse.rs` for
//! why). A panic inside one request is caught, answered with a 500 if nothing was sent
//! yet, and the thread lives on.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use super::guard;
use super::path::{
    alias_of, is_generation, method_name, path_name, protocol_for, route_path, sent_path,
};
use super::prepare::{Prepared, prepare};
use super::{Shared, tell_detection};
use crate::error::Error;
use crate::log::{self, RequestLog};
use crate::protocol::{Asked, Protocol};
use crate::relay::{self, Call};
use crate::sse::ClientWriter;
use crate::stats::{self, Finished};

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
        path: path_name(sent_path(req.url())),
        ..RequestLog::default()
    };
    let inbound = protocol_for(req.method(), req.url(), || {
        req.header("anthropic-version").is_some()
    });
    let counted = is_generation(req.method(), route_path(&log.path));
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
    relay::respond_error(inbound, err.status(), &err, &headers, &mut out);
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
            path: path_name(sent_path(path)),
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
        path: path_name(sent_path(req.url())),
        ..RequestLog::default()
    };
    // The endpoint it names (the log keeps the path as sent): no copy either way.
    let route = alias_of(&log.path);
    let inbound = protocol_for(req.method(), req.url(), || {
        req.header("anthropic-version").is_some()
    });
    let http10 = is_http10(&req);
    let head_only = *req.method() == tiny_http::Method::Head;
    let registry = shared.registry();
    let generation = is_generation(req.method(), route.unwrap_or(&log.path));
    // Read everything needed from the request before taking its writer.
    let mut origin = None;
    let prepared = prepare(
        &mut req,
        route.unwrap_or(&log.path),
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
    // Written in place by the handler: returned through `catch_unwind`, the large
    // `Served` was copied twice more (~6 hot code lines a request, callgrind).
    let mut served = relay::Served::default();
    let result = catch_unwind(AssertUnwindSafe(|| match prepared {
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
            served = if count_tokens {
                relay::count_tokens(&shared.env, &registry.settings, &call, &mut out)
            } else {
                relay::run(&shared.env, &registry.settings, &call, &mut out)
            };
            tell_detection(shared, &targets, &served);
            // The thread's next small body is read into this one's buffer.
            tiny_http::reuse_body(body.into_bytes());
        }
        Prepared::Fail(err) => served.status = answer_refused(err, inbound, &mut out),
        Prepared::Json(status, body) => {
            served.status = answer_made(&mut out, status, "application/json", &[], &body);
        }
        Prepared::Preflight(grant) => {
            served.status = answer_made(&mut out, 200, "text/plain", &grant, "");
        }
        Prepared::Text(status, content_type, body) => {
            served.status = answer_made(&mut out, status, content_type, &[], &body);
        }
    }));
    if result.is_err() {
        served = answer_panicked(inbound, &mut out);
    }
    let first_write = out.first_write();
    let counted = counted.then_some(Counted { inbound, stream });
    finish(shared, log, served, started, first_write, counted);
}

/// Sends a whole answer `prepare` made (a page, a list, a preflight's grant): apart
/// from [`handle`]'s relay path, which a chat request runs. Returns the status sent.
#[inline(never)]
fn answer_made(
    out: &mut ClientWriter,
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    body: &str,
) -> u16 {
    let _ = out.respond(status, content_type, headers, body.as_bytes());
    status
}

/// Answers a request that was refused before it was relayed (`err`: a wrong path,
/// method or key, a body too large or unreadable) in the client's protocol. Apart from
/// [`handle`], which every request runs.
#[cold]
#[inline(never)]
fn answer_refused(err: Error, inbound: Protocol, out: &mut ClientWriter) -> u16 {
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
    let body = inbound.error_body_coded(err.status(), &err.to_string(), code, err.param());
    let _ = out.respond(err.status(), "application/json", &headers, &body);
    err.status()
}

/// Answers a request whose handler panicked: a 500 when nothing was sent yet, else the
/// stream is ended.
#[cold]
#[inline(never)]
fn answer_panicked(inbound: Protocol, out: &mut ClientWriter) -> relay::Served {
    if !out.started() {
        let err = Error::Internal("the request handler failed; see the log".into());
        relay::respond_error(inbound, 500, &err, &[], out);
    } else {
        let _ = out.end_stream();
    }
    relay::Served {
        status: 500,
        ..relay::Served::default()
    }
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
    // Swapped, not assigned: nothing to drop.
    std::mem::swap(&mut log.rescued, &mut served.rescued_by);
    std::mem::swap(&mut log.said, &mut served.said);
    log.ttfb = first_write.map(|t| t.duration_since(started));
    let now = Instant::now();
    log.total = now.duration_since(started);
    let logged = !polled(&log);
    // Its log line first: the ledger's line and the counters take its fields.
    let lines = log::Lines::request(logged.then_some(&log));
    let Some(Counted { inbound, stream }) = counted else {
        return lines.write();
    };
    // The client has its last byte: now the request is counted and written down.
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
    match &shared.ledger {
        Some(ledger) => lines.write_with(
            now,
            ledger.sink(),
            |line| stats::ledger::push_line(line, &finished),
            |line| ledger.append(line),
        ),
        None => lines.write(),
    }
    shared.stats.record(finished);
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
