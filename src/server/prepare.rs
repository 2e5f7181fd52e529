//! What a request asks for, decided before any byte of its answer is written: the
//! open pages, the endpoint table, the client key, the body read within its limits, and
//! the model routed to its targets.

use std::time::{Duration, Instant};

use serde_json::json;

use super::guard;
use super::listing::{gemini_models, models_list, sources};
use super::path::{GENERATION, gemini_call, percent_decode, query_param};
use super::{Shared, probe_local};
use crate::body::RawBody;
use crate::error::Error;
use crate::protocol::Protocol;
use crate::registry::Registry;
use crate::route;
use crate::stats;

/// The status page served at `GET /`: one file, inline CSS and script, no other assets.
const STATUS_PAGE: &str = include_str!("../../assets/status.html");

/// The longest model id a request may name, a `provider:` prefix included. Real ids
/// are under 200 bytes (a vLLM model served under its snapshot path is about 120);
/// the bound keeps what is echoed (headers, error bodies, log and ledger) small.
pub(super) const MAX_MODEL_BYTES: usize = 256;

/// What `prepare` decided before any byte is written.
pub(super) enum Prepared {
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
// Kept out of `handle`: inlined there, its relay path cost ~180 instructions a request
// more (callgrind).
#[inline(never)]
pub(super) fn prepare(
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
        (Post, _) if gemini.is_some() => match gemini.as_ref().map(|(_, m)| *m) {
            Some("generateContent" | "streamGenerateContent" | "countTokens") => Protocol::Gemini,
            _ => return Prepared::Fail(no_gemini_method(path)),
        },
        (Post, "/v1/chat/completions") => Protocol::Chat,
        (Post, "/v1/completions") => Protocol::Completions,
        (Post, "/v1/messages" | "/v1/messages/count_tokens") => Protocol::Anthropic,
        (Post, "/v1/responses") => Protocol::Responses,
        _ => return not_relayed(&method, path, registry, shared),
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
        return Prepared::Fail(too_long(m, logged_model));
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
            return Prepared::Fail(Error::bad_field(
                "model",
                "is required (or `models`, a list of up to 8 model ids)",
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
        anthropic_headers(req)
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

/// Answers a request that is not relayed: the lists and counters a GET reads, and the
/// refusal of a method or path no endpoint takes. Apart from [`prepare`]'s relay path,
/// which a chat request runs.
#[inline(never)]
fn not_relayed(
    method: &tiny_http::Method,
    path: &str,
    registry: &Registry,
    shared: &Shared,
) -> Prepared {
    use tiny_http::Method::{Get, Head};
    match (method, path) {
        (Get | Head, "/v1/models") => Prepared::Json(200, models_list(registry, &shared.detected)),
        (Get | Head, "/metrics") => {
            let kept = shared.env.recall.bytes();
            let text = stats::metrics::render(&shared.stats, &sources(registry, shared), kept);
            Prepared::Text(200, stats::metrics::CONTENT_TYPE, text)
        }
        (Get | Head, "/status.json") => {
            Prepared::Json(200, shared.stats.status_json(&sources(registry, shared)))
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
            Prepared::Json(200, answer.to_string())
        }
        (Get | Head, "/v1beta/models") => {
            Prepared::Json(200, gemini_models(registry, &shared.detected, None))
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
            Prepared::Json(200, one)
        }
        (_, p) if GENERATION.contains(&p) => Prepared::Fail(Error::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_string(),
            allowed: "POST",
        }),
        (_, "/v1/models" | "/metrics" | "/status.json" | "/health" | "/") => {
            Prepared::Fail(Error::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_string(),
                allowed: "GET, HEAD",
            })
        }
        _ => Prepared::Fail(Error::NoEndpoint {
            method: method.to_string(),
            path: path.to_string(),
        }),
    }
}

/// The refusal of a model id over [`MAX_MODEL_BYTES`]; the log line gets its first 32
/// bytes (`logged_model`).
#[cold]
#[inline(never)]
fn too_long(m: &str, logged_model: &mut String) -> Error {
    let mut cut = m.len().min(32);
    while !m.is_char_boundary(cut) {
        cut -= 1;
    }
    *logged_model = format!("{}…", &m[..cut]);
    Error::bad_request(format!(
        "the model id `{}…` is {} bytes long; model ids are at most {MAX_MODEL_BYTES} bytes",
        &m[..cut],
        m.len()
    ))
}

/// The client's `anthropic-beta` and `anthropic-version` headers, forwarded to an
/// Anthropic upstream. Apart from [`prepare`]: only Anthropic's requests take it.
#[inline(never)]
fn anthropic_headers(req: &tiny_http::Request) -> Vec<crate::upstream::Header> {
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
}

/// The refusal of a Gemini path that names no method Routeplane serves.
#[cold]
#[inline(never)]
fn no_gemini_method(path: &str) -> Error {
    Error::bad_request(format!(
        "no Gemini method at {path}; Routeplane serves :generateContent, :streamGenerateContent and :countTokens"
    ))
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
}
