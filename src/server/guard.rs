//! Who may call: the client key, and, while clients need no key, the `Origin` of a
//! request from a web page and the `Host` it is addressed to; with keys, a browser's
//! preflight.
//!
//! Without keys, whatever can send a request to the port gets in: programs on this
//! machine, by design. A web page in the user's browser must not: it could spend the
//! keys and logins behind Routeplane (`Origin` shows such a request), or, through a name
//! of its own pointed at this machine (DNS rebinding), read any `GET` answer as its own
//! site's (its `Host` is that name). A name the page cannot point anywhere is safe:
//! `localhost` and the names under it, an IP address, this machine's own name, or a name
//! the user listed under `allowed_hosts` (or a `*.domain` or `*` there: the user's word
//! that no page can point those names here, as behind their own reverse proxy).
//!
//! With keys, the key decides, for a page as for a program: a browser's cross-origin
//! (CORS) preflight, which never carries a key, is answered for the paths a key opens,
//! and a keyed answer names the page's origin so the page may read it. Paths open
//! without a key (`/health`, `/`) get no such grant.

use tiny_http::Method;

use super::path::query_param;
use crate::error::Error;
use crate::registry::{AllowedHosts, Registry};

/// How long a browser may keep a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The request headers granted to a preflight that names none usable: those the four
/// APIs' clients send.
const CLIENT_HEADERS: &str = "authorization, content-type, x-api-key, x-goog-api-key, api-key, anthropic-version, anthropic-beta";

/// Decides whether a request past the paths open without a key may go on: `Ok(None)`
/// goes on, `Ok(Some(headers))` is a browser's preflight answered with what it may send,
/// `Err` is refused. With keys set, `origin` gets the page's origin of a request that
/// comes from one, to be named in its answer's `Access-Control-Allow-Origin`.
pub(super) fn check(
    req: &tiny_http::Request,
    path: &str,
    registry: &Registry,
    origin: &mut Option<String>,
) -> Result<Option<Vec<(String, String)>>, Error> {
    let page = req.header("origin");
    if registry.settings.skip_auth {
        if let Some(page) = page.filter(|o| !from_this_machine(o, &registry.settings.allowed_hosts))
        {
            return Err(Error::FromWebPage {
                origin: page.chars().take(200).collect(),
            });
        }
        return Ok(None);
    }
    if let Some(page) = named_page(page, registry) {
        if *req.method() == Method::Options && req.header("access-control-request-method").is_some()
        {
            // Browsers never send a key with a preflight: asked for one, a page with a key
            // never got through. A path no key opens is answered as without keys (every
            // OPTIONS ends in a 405 or 404 there, never at data).
            return Ok(opened_by_key(path).map(|methods| grant(req, page, methods)));
        }
        *origin = Some(page.to_string());
    }
    if client_key_ok(req, registry) {
        Ok(None)
    } else if req
        .header("authorization")
        .is_some_and(|v| bearer(v).is_none())
    {
        // `Authorization: sk-…`: the key without its scheme word; said how, not shown.
        Err(Error::KeyWithoutBearer)
    } else if let Some(header) = KEY_HEADERS
        .into_iter()
        .find(|h| req.header(h).is_some_and(|v| bearer(v).is_some()))
    {
        // `x-api-key: Bearer sk-…`: the scheme word where the key goes alone.
        Err(Error::BearerInKeyHeader { header })
    } else {
        Err(Error::Unauthorized {
            config: config_named(registry),
        })
    }
}

/// The config file as a 401 or a full proxy's 503 names it, where its `keys:` and
/// `workers` are set ([`crate::paths::tilde`]); `None` when none was read.
pub(super) fn config_named(registry: &Registry) -> Option<Box<str>> {
    let read = registry.source != crate::config::NO_FILE;
    read.then(|| crate::paths::tilde(&registry.source).into())
}

/// The page's origin (a request's `Origin`) its answer is to name, so the page may read
/// it: only with keys set, where the key decides, and only one that can be named as it
/// came. Without keys a page gets nothing: it is refused, or is this machine's.
pub(super) fn named_page<'r>(page: Option<&'r str>, registry: &Registry) -> Option<&'r str> {
    page.filter(|o| !registry.settings.skip_auth && plain(o))
}

/// While clients need no key, the refusal of a request addressed to a name no web page
/// may have pointed here (DNS rebinding: see above); `None` lets it go on. With keys the
/// key decides.
pub(super) fn foreign_host(req: &tiny_http::Request, registry: &Registry) -> Option<Error> {
    let settings = &registry.settings;
    if !settings.skip_auth {
        return None;
    }
    let host = req
        .host()
        .filter(|h| !host_allowed(h, &settings.allowed_hosts))?;
    Some(Error::ForeignHost {
        host: host.chars().take(200).collect(),
    })
}

/// The methods of a path that needs a key, for a preflight; `None` for a path open
/// without one, or none Routeplane serves.
fn opened_by_key(path: &str) -> Option<&'static str> {
    match path {
        "/v1/chat/completions"
        | "/v1/completions"
        | "/v1/messages"
        | "/v1/messages/count_tokens"
        | "/v1/responses" => Some("POST"),
        "/v1/models" | "/v1beta/models" | "/metrics" | "/status.json" | "/routeplane/cooldowns" => {
            Some("GET, HEAD")
        }
        p if p.starts_with("/v1/models/") || p.starts_with("/v1beta/models/") => {
            Some(match p.rsplit_once(':') {
                Some((_, "generateContent" | "streamGenerateContent" | "countTokens")) => "POST",
                _ => "GET, HEAD",
            })
        }
        _ => None,
    }
}

/// A preflight's answer: the page, the path's methods and the headers it asked to send
/// (when they are header names; else the ones clients send).
fn grant(req: &tiny_http::Request, page: &str, methods: &str) -> Vec<(String, String)> {
    let asked = req
        .header("access-control-request-headers")
        .filter(|h| {
            h.len() <= 1000
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b))
        })
        .unwrap_or(CLIENT_HEADERS);
    [
        ("Access-Control-Allow-Origin", page),
        ("Access-Control-Allow-Methods", methods),
        ("Access-Control-Allow-Headers", asked),
        ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE),
        ("Vary", "Origin"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into()
}

/// True for an `Origin` that can be named in a header as it came: visible ASCII, short.
fn plain(origin: &str) -> bool {
    origin.len() <= 200 && origin.bytes().all(|b| b.is_ascii_graphic())
}

/// True for an `Origin` (`scheme://host[:port]`) that is this machine: `localhost` (or a
/// name under it), `127.x.x.x`, `[::1]`, its hostname, or a name in `allowed`
/// (`allowed_hosts`, names the user gave this machine; `*` is not every page). Only
/// browsers send `Origin`; a page from this machine is a program the user runs here, a
/// page from anywhere else is not (`null`, a sandboxed frame or a file, neither).
fn from_this_machine(origin: &str, allowed: &AllowedHosts) -> bool {
    let Some((_, authority)) = origin.trim().split_once("://") else {
        return false;
    };
    let host = host_name(authority);
    is_localhost(host)
        || allowed.page(host)
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// True for a `Host` (`host[:port]`) no web page can have pointed here: an IP address (a
/// rebinding page needs a name of its own; a client on the network calls by address),
/// `localhost` or a name under it, or one `allowed` takes (`allowed_hosts`, this
/// machine's hostname). Runs for every request while clients need no key: no
/// allocation. An empty one, like none at all, is no browser's (a browser always names
/// the host).
fn host_allowed(host: &str, allowed: &AllowedHosts) -> bool {
    let host = host.trim();
    let name = host_name(host);
    host.is_empty() || is_ip_address(name) || is_localhost(name) || allowed.host(name)
}

/// True for an IP address as a `Host` names one: dotted digits (a browser writes each
/// IPv4 form it takes so, and takes no name that is only digits and dots), or IPv6 (it
/// came in brackets). Not `IpAddr`'s parser: this runs for every request.
fn is_ip_address(name: &str) -> bool {
    let v4 = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    v4 || (name.contains(':') && name.parse::<std::net::Ipv6Addr>().is_ok())
}

/// The host of an authority (`host[:port]`, `[v6][:port]`), without port or brackets.
fn host_name(authority: &str) -> &str {
    match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(host, _)| host),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    }
}

/// `localhost` or a name under it (`app.localhost`), in any case: resolved to this
/// machine by browsers and systems alike, never by DNS (RFC 6761).
fn is_localhost(name: &str) -> bool {
    const SUFFIX: &[u8] = b".localhost";
    let b = name.as_bytes();
    name.eq_ignore_ascii_case("localhost")
        || (b.len() > SUFFIX.len() && b[b.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX))
}

/// The key of an `Authorization: Bearer KEY` header's value.
fn bearer(v: &str) -> Option<&str> {
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
}

/// The headers that carry a client's key alone, without a scheme word.
const KEY_HEADERS: [&str; 3] = ["x-api-key", "x-goog-api-key", "api-key"];

/// True when the request carries one of the configured client keys: as a bearer token,
/// `x-api-key`, `x-goog-api-key`, Azure OpenAI's `api-key` (its SDKs send no other), or
/// Google's `?key=`.
fn client_key_ok(req: &tiny_http::Request, registry: &Registry) -> bool {
    // Looked up by name: `headers()` would build every header of every request.
    let presented = req
        .header("authorization")
        .and_then(bearer)
        .or_else(|| req.header("x-api-key"))
        .or_else(|| req.header("x-goog-api-key"))
        .or_else(|| req.header("api-key"))
        .map(|v| v.trim().to_string())
        .or_else(|| query_param(req.url(), "key"));
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

    /// `allowed_hosts` as listed, without this machine's names.
    fn listed(names: &[&str]) -> AllowedHosts {
        AllowedHosts {
            names: names.iter().map(|n| n.to_string()).collect(),
            ..AllowedHosts::default()
        }
    }

    fn none() -> AllowedHosts {
        listed(&[])
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn only_origins_of_this_machine_are_from_it() {
        for origin in [
            "http://localhost:3000",
            "http://LOCALHOST",
            "http://app.localhost:8080",
            "http://127.0.0.1:4356",
            "https://127.8.9.10",
            "http://[::1]:5173",
        ] {
            assert!(from_this_machine(origin, &none()), "{origin}");
        }
        for origin in [
            "https://example.com",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "http://[::2]:80",
            "null",
            "",
            "http://10.0.0.5:4356",
        ] {
            assert!(!from_this_machine(origin, &none()), "{origin}");
        }
        let mine = listed(&["mybox.lan"]);
        assert!(from_this_machine("http://MyBox.lan:3000", &mine));
        assert!(!from_this_machine("http://evil.mybox.lan", &mine));
    }

    #[test]
    fn only_hosts_no_page_can_point_here_are_allowed() {
        let mine = listed(&["routeplane", "MyBox.lan"]);
        for host in [
            "127.0.0.1:4356",
            "127.0.0.1",
            "localhost:4356",
            "LocalHost",
            "app.localhost:8080",
            "[::1]:4356",
            "[fe80::1]",
            "192.168.1.20:4356",
            "10.0.0.5",
            "routeplane:4356",
            "mybox.LAN",
        ] {
            assert!(host_allowed(host, &mine), "{host}");
        }
        for host in [
            "evil.example:4356",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:4356",
            "evilocalhost",
            ".localhost",
            "routeplane.evil.example",
            "[::1",
        ] {
            assert!(!host_allowed(host, &mine), "{host}");
        }
        assert!(!host_allowed("routeplane:4356", &none()));
        assert!(host_allowed("", &none()), "no browser sends an empty Host");
    }

    #[test]
    fn a_preflight_is_granted_only_the_paths_a_key_opens() {
        for (path, methods) in [
            ("/v1/chat/completions", Some("POST")),
            ("/v1/messages/count_tokens", Some("POST")),
            (
                "/v1beta/models/ollama:qwen2:streamGenerateContent",
                Some("POST"),
            ),
            ("/v1/models", Some("GET, HEAD")),
            ("/v1/models/ollama:qwen2", Some("GET, HEAD")),
            ("/status.json", Some("GET, HEAD")),
            ("/health", None),
            ("/", None),
            ("/api/hello", None),
            ("/v1/embeddings", None),
        ] {
            assert_eq!(opened_by_key(path), methods, "{path}");
        }
    }
}
