//! Who may call: the client key, and the `Origin` of a request from a web page.

use super::request::query_param;
use crate::registry::Registry;

/// True for an `Origin` (`scheme://host[:port]`) that is this machine: `localhost` (or a
/// name under it), `127.x.x.x` or `[::1]`. Only browsers send `Origin`; a page from this
/// machine is a program the user runs here, a page from anywhere else is not (`null`, a
/// sandboxed frame or a file, neither).
pub(super) fn from_this_machine(origin: &str) -> bool {
    let Some((_, authority)) = origin.trim().split_once("://") else {
        return false;
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(host, _)| host),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
            assert!(from_this_machine(origin), "{origin}");
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
            assert!(!from_this_machine(origin), "{origin}");
        }
    }
}
