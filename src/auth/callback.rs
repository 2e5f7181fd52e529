//! A one-shot loopback listener for OAuth redirects: waits for the browser's callback.
//!
//! Binds the redirect URI's port on 127.0.0.1, answers the callback with a short page
//! (and `Connection: close`, so a browser's kept-alive socket cannot stall the next
//! login; openai/codex found the same with tiny_http), checks `state`, and gives up
//! when the caller says to (its time is up, or nothing could bring the browser back),
//! with the caller's message, which knows what else to do.

use std::time::{Duration, Instant};

use super::oauth;
use crate::error::Error;
use crate::sse::ClientWriter;

const DONE_PAGE: &str = "<!doctype html><title>routeplane</title><p>Logged in. You can close this tab and return to the terminal.</p>";

/// The port and path of a loopback redirect URI (`http://localhost:1455/auth/callback`).
pub fn port_and_path(redirect_uri: &str) -> Option<(u16, String)> {
    let rest = redirect_uri.strip_prefix("http://")?;
    let (host_port, path) = rest.split_once('/').unwrap_or((rest, ""));
    let port = host_port.rsplit_once(':')?.1.parse().ok()?;
    Some((port, format!("/{path}")))
}

/// How often the wait asks `give_up` whether to stop waiting.
const GIVE_UP_EVERY: Duration = Duration::from_millis(100);

/// Waits for the redirect and returns its `code` after checking `state`; `hint` runs
/// once if nothing has come back after `hint_after` (to say what else may be done), and
/// `give_up`, asked every 100 ms, ends the wait with its error when it has one (the
/// time allowed has passed, or nothing is left that could bring the browser back).
pub fn wait_for_code(
    redirect_uri: &str,
    state: &str,
    hint_after: Duration,
    hint: impl Fn(),
    give_up: impl Fn() -> Option<Error>,
) -> Result<String, Error> {
    let (port, path) = port_and_path(redirect_uri).ok_or_else(|| {
        Error::Auth(format!(
            "the redirect URI `{redirect_uri}` is not a loopback http URL with a port"
        ))
    })?;
    let server = tiny_http::Server::http(("127.0.0.1", port)).map_err(|e| {
        Error::Auth(format!("cannot listen on 127.0.0.1:{port} for the login callback ({e}); close whatever uses it, or use --device"))
    })?;
    let started = Instant::now();
    let mut hinted = false;
    loop {
        let to_hint = (started + hint_after).saturating_duration_since(Instant::now());
        if !hinted && to_hint.is_zero() {
            hinted = true;
            hint();
        }
        if let Some(e) = give_up() {
            return Err(e);
        }
        let wait = if hinted {
            GIVE_UP_EVERY
        } else {
            to_hint.min(GIVE_UP_EVERY)
        };
        let Ok(Some(req)) = server.recv_timeout(wait) else {
            continue;
        };
        let url = req.url().to_string();
        let (req_path, query) = url.split_once('?').unwrap_or((&url, ""));
        let mut out = ClientWriter::new(req.into_writer(), false, false);
        let close = vec![("Connection".to_string(), "close".to_string())];
        if req_path != path {
            let _ = out.respond(404, "text/plain", &close, b"not found");
            continue;
        }
        if let Some(err) = oauth::query_value(query, "error") {
            let _ = out.respond(400, "text/plain", &close, b"login failed; see the terminal");
            let detail = oauth::query_value(query, "error_description").unwrap_or_default();
            // Whoever reaches the loopback port can write these: printed as they came,
            // they could move the cursor or forge lines.
            let said = crate::log::printable(&format!("{err} {detail}"), oauth::SAID_AT_MOST);
            return Err(Error::Auth(format!(
                "the provider refused the login: {said}"
            )));
        }
        if oauth::query_value(query, "state").as_deref() != Some(state) {
            let _ = out.respond(
                400,
                "text/plain",
                &close,
                b"state mismatch; start the login again",
            );
            return Err(Error::Auth(
                "the callback's state does not match this login; start it again".into(),
            ));
        }
        let Some(code) = oauth::query_value(query, "code").filter(|c| !c.is_empty()) else {
            let _ = out.respond(400, "text/plain", &close, b"no code");
            return Err(Error::Auth("the callback carried no code".into()));
        };
        let _ = out.respond(
            200,
            "text/html; charset=utf-8",
            &close,
            DONE_PAGE.as_bytes(),
        );
        return Ok(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_split() {
        assert_eq!(
            port_and_path("http://localhost:1455/auth/callback"),
            Some((1455, "/auth/callback".into()))
        );
        assert_eq!(port_and_path("https://x/cb"), None);
    }
}
