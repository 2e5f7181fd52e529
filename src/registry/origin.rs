//! An `api_base` split once, when the registry is built: scheme, host, port, authority
//! and base path, for every request the upstream client sends to it.

use std::ops::Range;

/// Where a URL points, split once: an `api_base` is split when the registry is built (one
/// that cannot be is a config error), and each request to it joins only its path, which
/// is not split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The URL as given.
    url: Box<str>,
    /// `https`.
    pub tls: bool,
    /// The port, explicit or the scheme's.
    pub port: u16,
    /// Where the host lies in `url`, without the brackets of an IPv6 address.
    host: Range<usize>,
    /// Where the authority (host and port as written) lies in `url`; the origin ends
    /// where it does.
    authority: Range<usize>,
    /// The host is this machine (loopback, `localhost`).
    pub this_machine: bool,
    /// The host is this machine or on its network (a private IPv4 address, `*.local`).
    pub this_network: bool,
}

impl Origin {
    /// Splits an `http://` or `https://` URL; user info and fragments are refused, each
    /// with what to write instead.
    pub fn split(url: &str) -> Result<Origin, String> {
        let bad = || refused(url, "is not an http(s) URL like `http://127.0.0.1:8000/v1`");
        let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad()),
        };
        let end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if let Some(at) = authority.rfind('@') {
            // Never sent: a password belongs in a header the provider block sets.
            let scheme = &url[..url.len() - rest.len()];
            let without = format!("{scheme}{}{path}", &authority[at + 1..]);
            let what = format!(
                "holds a user name or password, which is not sent: write `{}` and give the \
                 credential as the provider's `api_key` or in its `headers`",
                crate::log::shown_url(&without)
            );
            return Err(refused(url, &what));
        }
        if authority.is_empty() || authority.contains(['?', '#']) || path.contains('#') {
            return Err(bad());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(bad)?;
                let port = match after {
                    "" => None,
                    p => Some(p.strip_prefix(':').ok_or_else(bad)?),
                };
                (host, port)
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => p.parse().map_err(|_| {
                refused(
                    url,
                    "has a port that is not a number up to 65535: write the server's port",
                )
            })?,
        };
        if host.is_empty() {
            return Err(bad());
        }
        let at = |part: &str| {
            let start = part.as_ptr() as usize - url.as_ptr() as usize;
            start..start + part.len()
        };
        let (this_machine, this_network) = reach(host);
        Ok(Origin {
            url: url.into(),
            tls,
            port,
            host: at(host),
            authority: at(authority),
            this_machine,
            this_network,
        })
    }

    /// The host, without the brackets of an IPv6 address.
    #[inline]
    pub fn host(&self) -> &str {
        &self.url[self.host.clone()]
    }

    /// Host and port as written, for the `Host` header.
    #[inline]
    pub fn authority(&self) -> &str {
        &self.url[self.authority.clone()]
    }

    /// Scheme and authority (`http://127.0.0.1:11434`): connections to the same origin
    /// are interchangeable, so it keys the pool.
    #[inline]
    pub fn origin(&self) -> &str {
        &self.url[..self.authority.end]
    }

    /// The path and query after the authority; empty when the URL has none.
    #[inline]
    pub fn path(&self) -> &str {
        &self.url[self.authority.end..]
    }
}

/// Why `url` is refused: `what` after it as it may be shown (see
/// [`crate::log::shown_url`]), made only then, in one place (masking allocates).
#[cold]
fn refused(url: &str, what: &str) -> String {
    format!("{} {what}", crate::log::shown_url(url))
}

/// Whether a host is this machine, and whether it is this machine or on its network:
/// `127.0.0.1`, `[::1]` and `localhost` are both; `192.168.1.9` and `gpu-box.local` the
/// second.
fn reach(host: &str) -> (bool, bool) {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => (ip.is_loopback(), ip.is_loopback() || ip.is_private()),
        Ok(std::net::IpAddr::V6(ip)) => (ip.is_loopback(), ip.is_loopback()),
        Err(_) => (
            host == "localhost",
            host == "localhost" || host.ends_with(".local"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_origin_host_port_and_path() {
        let t = Origin::split("http://127.0.0.1:11434/v1/chat/completions").unwrap();
        assert_eq!(
            (t.tls, t.host(), t.port, t.authority(), t.path(), t.origin()),
            (
                false,
                "127.0.0.1",
                11434,
                "127.0.0.1:11434",
                "/v1/chat/completions",
                "http://127.0.0.1:11434"
            )
        );
        let t = Origin::split("https://api.openai.com/v1/models?x=1").unwrap();
        assert_eq!((t.tls, t.port, t.path()), (true, 443, "/v1/models?x=1"));
        let t = Origin::split("http://[::1]:8080").unwrap();
        assert_eq!(
            (t.host(), t.port, t.path(), t.authority()),
            ("::1", 8080, "", "[::1]:8080")
        );
        assert_eq!(Origin::split("http://localhost/").unwrap().port, 80);
        for (url, machine, network) in [
            ("http://127.0.0.1:11434", true, true),
            ("http://localhost:8000/v1", true, true),
            ("http://[::1]:8080", true, true),
            ("http://192.168.1.20:1234", false, true),
            ("http://gpu-box.local:11434", false, true),
            ("https://api.deepseek.com", false, false),
            ("http://8.8.8.8:8000", false, false),
        ] {
            let t = Origin::split(url).unwrap();
            assert_eq!(
                (t.this_machine, t.this_network),
                (machine, network),
                "{url}"
            );
        }
        for bad in [
            "ftp://x/",
            "http://",
            "http://user:pw@host/",
            "http://host:notaport/",
            "http://[::1/",
            "localhost:8080/v1",
        ] {
            assert!(Origin::split(bad).is_err(), "{bad}");
        }
    }
}
