//! An `api_base` split once, when the registry is built: scheme, host, port, authority
//! and base path, for every request the upstream client sends to it.

use std::ops::Range;

/// Where a URL points, split once: an `api_base` is split when the registry is built
/// ([`Base`]), and each request to it joins only its path, which is not split.
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
}

impl Origin {
    /// Splits an `http://` or `https://` URL; user info and fragments are refused.
    pub fn split(url: &str) -> Result<Origin, String> {
        let bad = || format!("not an http(s) URL: {}", crate::log::shown_url(url));
        let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad()),
        };
        let end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            // Never sent: a password belongs in a header the provider block sets.
            return Err(format!(
                "{} holds a user name or password, which is not sent; give the credential as \
                 the provider's `api_key` or in its `headers`",
                crate::log::shown_url(url)
            ));
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
            Some(p) => p.parse().map_err(|_| bad())?,
        };
        if host.is_empty() {
            return Err(bad());
        }
        let at = |part: &str| {
            let start = part.as_ptr() as usize - url.as_ptr() as usize;
            start..start + part.len()
        };
        Ok(Origin {
            url: url.into(),
            tls,
            port,
            host: at(host),
            authority: at(authority),
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

/// A provider's `api_base` as split when the registry is built ([`Origin`]), or why it
/// cannot be asked (a user name in it, a bad port), said by each request sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base(pub Result<Origin, String>);

impl Base {
    /// Splits `api_base`.
    pub fn new(api_base: &str) -> Base {
        Base(Origin::split(api_base))
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
