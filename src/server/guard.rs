//! Who may call: the client key, and, while clients need no key, the `Origin` of a
//! request from a web page and the `Host` it is addressed to.
//!
//! Without keys, whatever can send a request to the port gets in: programs on this
//! machine, by design. A web page in the user's browser must not: it could spend the
//! keys and logins behind Routeplane (`Origin` shows such a request), or, through a name
//! of its own pointed at this machine (DNS rebinding), read any `GET` answer as its own
//! site's (its `Host` is that name). A name the page cannot point anywhere is safe:
//! `localhost` and the names under it, an IP address, or a name the user listed under
//! `allowed_hosts`.

use super::request::query_param;
use crate::registry::Registry;

/// True for an `Origin` (`scheme://host[:port]`) that is this machine: `localhost` (or a
/// name under it), `127.x.x.x`, `[::1]`, or a name in `allowed` (`allowed_hosts`, names
/// the user gave this machine). Only browsers send `Origin`; a page from this machine is
/// a program the user runs here, a page from anywhere else is not (`null`, a sandboxed
/// frame or a file, neither).
pub(super) fn from_this_machine(origin: &str, allowed: &[String]) -> bool {
    let Some((_, authority)) = origin.trim().split_once("://") else {
        return false;
    };
    let host = host_name(authority);
    is_localhost(host)
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// True for a `Host` (`host[:port]`) no web page can have pointed here: an IP address (a
/// rebinding page needs a name of its own; a client on the network calls by address),
/// `localhost` or a name under it, or a name in `allowed` (`allowed_hosts`). Runs for
/// every request while clients need no key: no allocation. An empty one, like none at
/// all, is no browser's (a browser always names the host).
pub(super) fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let name = host_name(host);
    host.is_empty()
        || name.parse::<std::net::IpAddr>().is_ok()
        || is_localhost(name)
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
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

/// True when the request carries one of the configured client keys: as a bearer token,
/// `x-api-key`, `x-goog-api-key`, or Google's `?key=`.
pub(super) fn client_key_ok(req: &tiny_http::Request, registry: &Registry) -> bool {
    // Looked up by name: `headers()` would build every header of every request.
    let presented = req
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| req.header("x-api-key"))
        .or_else(|| req.header("x-goog-api-key"))
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
            assert!(from_this_machine(origin, &[]), "{origin}");
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
            assert!(!from_this_machine(origin, &[]), "{origin}");
        }
        let mine = ["mybox.lan".to_string()];
        assert!(from_this_machine("http://MyBox.lan:3000", &mine));
        assert!(!from_this_machine("http://evil.mybox.lan", &mine));
    }

    #[test]
    fn only_hosts_no_page_can_point_here_are_allowed() {
        let mine = ["routeplane".to_string(), "MyBox.lan".to_string()];
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
        assert!(!host_allowed("routeplane:4356", &[]));
        assert!(host_allowed("", &[]), "no browser sends an empty Host");
    }
}
