//! The names a request may be addressed to while clients need no key, besides `localhost`
//! and IP addresses: those under `allowed_hosts:` (names, `*.domain`, `*`) and this
//! machine's own, read when the config is.

/// `allowed_hosts:` resolved, with this machine's names.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// `*` was listed: a request may be addressed to any name.
    pub any: bool,
    /// The names listed, as written (compared without case).
    pub names: Vec<String>,
    /// Each `*.example.com` listed, as `.example.com`: any name under it.
    pub under: Vec<String>,
    /// This machine's names: its hostname, the first label of it and that `.local`
    /// (mDNS), as a client on the network calls it (`http://mybox:4356`).
    pub machine: Vec<String>,
}

impl AllowedHosts {
    /// Reads `allowed_hosts:` entries, adding this machine's names; `Err` says why an
    /// entry is not a name or a wildcard. Entries that are empty (`${HOST:-}`) are
    /// dropped.
    pub(super) fn new<'a>(entries: impl Iterator<Item = &'a str>) -> Result<Self, String> {
        let mut hosts = AllowedHosts {
            machine: machine_names(),
            ..AllowedHosts::default()
        };
        for entry in entries.map(str::trim).filter(|e| !e.is_empty()) {
            let shown = || entry.chars().take(100).collect::<String>();
            if entry == "*" {
                hosts.any = true;
            } else if let Some(domain) = entry.strip_prefix("*.").filter(|d| is_name(d)) {
                hosts.under.push(format!(".{domain}"));
            } else if entry.contains('*') {
                return Err(format!(
                    "`allowed_hosts` lists `{}`, which is not a wildcard Routeplane reads: \
                     write `*` for every name, or `*.example.com` for every name under \
                     example.com",
                    shown()
                ));
            } else if is_name(entry) {
                hosts.names.push(entry.to_string());
            } else {
                return Err(format!(
                    "`allowed_hosts` lists `{}`, which is not a host name; write names \
                     only, without a scheme or a port (`routeplane`, `mybox.lan`)",
                    shown()
                ));
            }
        }
        Ok(hosts)
    }

    /// True when the user listed nothing (this machine's names do not count).
    pub fn is_empty(&self) -> bool {
        !self.any && self.names.is_empty() && self.under.is_empty()
    }

    /// True for a `Host`'s name (without port) listed, under a listed domain, this
    /// machine's, or any with `*` listed.
    pub fn host(&self, name: &str) -> bool {
        self.any || self.page(name)
    }

    /// True for a web page's host (its `Origin`'s) listed, under a listed domain or this
    /// machine's: a page the user serves by a name they gave. `*` does not count: it
    /// lets a request by any name in, not every site's page.
    pub fn page(&self, name: &str) -> bool {
        let b = name.as_bytes();
        (self.names.iter().chain(&self.machine)).any(|n| n.eq_ignore_ascii_case(name))
            || self.under.iter().any(|d| {
                b.len() > d.len() && b[b.len() - d.len()..].eq_ignore_ascii_case(d.as_bytes())
            })
    }
}

/// True for a host name as `allowed_hosts` takes one: letters, digits, `.`, `-`, `_`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// This machine's names: its hostname (the kernel's, else `/etc/hostname`, which a
/// sandboxed service with `ProcSubset=pid` may be the only one to see), its first label
/// and that label `.local`; none when neither can be read or it is `localhost`.
fn machine_names() -> Vec<String> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let Some(hostname) = read("/proc/sys/kernel/hostname").or_else(|| read("/etc/hostname")) else {
        return Vec::new();
    };
    let full = hostname.trim().trim_end_matches('.');
    if !is_name(full) || full.eq_ignore_ascii_case("localhost") {
        return Vec::new();
    }
    let short = full.split('.').next().unwrap_or(full);
    let mut names = vec![full.to_string(), format!("{short}.local")];
    if short != full {
        names.push(short.to_string());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts {
            machine: vec!["mybox".into(), "mybox.local".into()],
            ..AllowedHosts::new(entries.iter().copied()).unwrap()
        }
    }

    #[test]
    fn names_wildcards_and_this_machine_are_allowed() {
        let h = hosts(&["routeplane", "*.example.com"]);
        for name in [
            "routeplane",
            "RoutePlane",
            "a.example.com",
            "A.B.Example.COM",
            "mybox",
            "MyBox.local",
        ] {
            assert!(h.host(name) && h.page(name), "{name}");
        }
        for name in [
            "example.com",
            "evil.com",
            "aexample.com",
            ".example.com",
            "routeplane.evil",
            "mybox.evil",
        ] {
            assert!(!h.host(name) && !h.page(name), "{name}");
        }
        // `*` lets a request by any name in, never a page from anywhere.
        let any = hosts(&["*"]);
        assert!(any.host("evil.example") && !any.page("evil.example"));
        assert!(!any.is_empty() && hosts(&[]).is_empty());
    }

    #[test]
    fn malformed_wildcards_and_names_are_refused_naming_the_forms() {
        for entry in ["*foo", "a.*.b", "*.", "**.x", "*.*.x", "x.*"] {
            let err = AllowedHosts::new([entry].into_iter()).unwrap_err();
            assert!(
                err.contains("write `*` for every name, or `*.example.com`"),
                "{entry}: {err}"
            );
        }
        let err = AllowedHosts::new(["http://mybox"].into_iter()).unwrap_err();
        assert!(err.contains("which is not a host name"), "{err}");
        let ok = AllowedHosts::new(["", " * ", "*.lan"].into_iter()).unwrap();
        assert!(ok.any && ok.under == [".lan"] && ok.names.is_empty());
    }
}
