//! ureq plumbing: a resolver that does not look up an address, and a transport that
//! sends a request's head and body in one write and bounds each wait for input by the
//! deadline of the stream read in progress.
//!
//! Both use ureq's `unversioned` API, which may change in a minor release; the
//! lockfile pins ureq, and a change breaks the build here, not at run time.

use std::cell::Cell;
use std::time::{Duration, Instant};

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};

/// How long a looked-up host name's addresses are reused.
const RESOLVED_FOR: Duration = Duration::from_secs(30);

/// Host names to addresses, for ureq. ureq resolves before it looks in its connection
/// pool, so its own resolver ran `getaddrinfo` for every request, pooled connection or
/// not (and spawned a thread for it when a timeout applied); for `127.0.0.1` that was 3%
/// of a request's instructions, for a hosted API a DNS query. An IP address is parsed
/// in place; a name's answer is kept for [`RESOLVED_FOR`].
#[derive(Debug, Default)]
pub(super) struct Resolver {
    inner: ureq::unversioned::resolver::DefaultResolver,
    names: std::sync::Mutex<Vec<(String, Instant, ResolvedAddrs)>>,
}

type ResolvedAddrs = ureq::unversioned::resolver::ResolvedSocketAddrs;

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ResolvedAddrs, ureq::Error> {
        let (Some(host), Some(scheme)) = (uri.host(), uri.scheme()) else {
            return self.inner.resolve(uri, config, timeout);
        };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme.as_str() == "https" { 443 } else { 80 });
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
            let mut addrs = self.inner.empty();
            addrs.push(std::net::SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        let key = format!("{host}:{port}");
        let now = Instant::now();
        {
            let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, _, addrs)) = names
                .iter()
                .find(|(k, at, _)| *k == key && now.duration_since(*at) < RESOLVED_FOR)
            {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.retain(|(k, at, _)| *k != key && now.duration_since(*at) < RESOLVED_FOR);
        names.push((key, now, addrs.clone()));
        Ok(addrs)
    }
}

thread_local! {
    /// Whether this thread's current request opened a new connection (ureq connects on
    /// the calling thread): a failure on a reused one may be a stale pooled connection.
    static CONNECTED: Cell<bool> = const { Cell::new(false) };

    /// The deadline of the stream read running on this thread, if one is.
    static READ_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Starts watching for a new connection on this thread.
pub(super) fn forget_connect() {
    CONNECTED.with(|c| c.set(false));
}

/// True when a connection was opened on this thread since [`forget_connect`].
pub(super) fn connected() -> bool {
    CONNECTED.with(Cell::get)
}

/// While alive, every wait for input on this thread ends by a deadline. A stream's
/// reads run on the relay's thread (`Stream::next`); ureq's own timeouts are fixed when
/// a request starts and cannot tell the first event's wait from the wait between two.
pub(super) struct ReadDeadline(());

impl ReadDeadline {
    /// Bounds this thread's waits for input by `deadline` until the guard is dropped.
    pub(super) fn set(deadline: Instant) -> ReadDeadline {
        READ_DEADLINE.with(|d| d.set(Some(deadline)));
        ReadDeadline(())
    }
}

impl Drop for ReadDeadline {
    fn drop(&mut self) {
        READ_DEADLINE.with(|d| d.set(None));
    }
}

/// `timeout` bounded by this thread's read deadline, if one is set. The deadline
/// replaces ureq's per-read timeout (a backstop for whole bodies); a deadline already
/// past still allows one brief wait, so bytes that have arrived are taken.
///
/// The time left is rounded up to whole milliseconds: ureq sets the socket's timeout
/// again (a system call) only when the value changes, and between events the idle
/// deadline is always about the same distance away. Exact microseconds cost a
/// `setsockopt` per event (strace, one stream of 20 events).
fn bounded(mut timeout: NextTimeout) -> NextTimeout {
    let Some(deadline) = READ_DEADLINE.with(Cell::get) else {
        return timeout;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let left = Duration::from_millis(u64::try_from(left.as_millis()).unwrap_or(u64::MAX / 2) + 1);
    timeout.per_read = None;
    if ureq::unversioned::transport::time::Duration::from(left) < timeout.after {
        timeout.after = left.into();
        timeout.reason = ureq::Timeout::RecvBody;
    }
    timeout
}

/// Connects as ureq would, then corks the transport: see [`Corked`].
#[derive(Debug, Default)]
pub(super) struct Corking {
    inner: DefaultConnector,
}

impl Connector<()> for Corking {
    type Out = Corked;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Corked>, ureq::Error> {
        CONNECTED.with(|c| c.set(true));
        Ok(self.inner.connect(details, chained)?.map(|inner| Corked {
            inner,
            held: Vec::new(),
            corked: false,
        }))
    }
}

/// A transport that holds back the first write after each read, so a request's head
/// leaves together with the start of its body. ureq writes them separately: a second
/// `send` for every request, and a second wake-up of the upstream (measured on the
/// benchmark's null proxy: one write instead of two gave 12% more requests a second).
/// Held bytes go out in front of the next write, or before the next read (a request
/// without a body, or one waiting for `100 Continue`).
#[derive(Debug)]
pub(super) struct Corked {
    inner: Box<dyn Transport>,
    /// The held write (a copy: ureq reuses its output buffer for the next one).
    held: Vec<u8>,
    /// A write has been held since the last read; the next one is sent.
    corked: bool,
}

impl Corked {
    /// Sends the held bytes on their own.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.corked = false;
        if self.held.is_empty() {
            return Ok(());
        }
        let n = self.held.len();
        self.inner.buffers().output()[..n].copy_from_slice(&self.held);
        self.held.clear();
        self.inner.transmit_output(n, timeout)
    }
}

impl Transport for Corked {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if !self.corked {
            self.corked = true;
            self.held.clear();
            self.held
                .extend_from_slice(&self.inner.buffers().output()[..amount]);
            return Ok(());
        }
        let held = self.held.len();
        let output = self.inner.buffers().output();
        if held + amount <= output.len() {
            // Held bytes in front of the new ones, one write.
            output.copy_within(..amount, held);
            output[..held].copy_from_slice(&self.held);
            self.held.clear();
            return self.inner.transmit_output(held + amount, timeout);
        }
        // Too large to join (a big body): the held bytes first, then these.
        let new = output[..amount].to_vec();
        self.flush(timeout)?;
        self.corked = true;
        self.inner.buffers().output()[..amount].copy_from_slice(&new);
        self.inner.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        self.inner.maybe_await_input(bounded(timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.flush(timeout)?;
        self.inner.await_input(bounded(timeout))
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &Resolver, url: &str) -> Vec<std::net::SocketAddr> {
        use ureq::unversioned::resolver::Resolver as _;
        let timeout = ureq::unversioned::transport::NextTimeout {
            after: ureq::unversioned::transport::time::Duration::from_secs(2),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        let config = ureq::Agent::config_builder().build();
        r.resolve(&url.parse().unwrap(), &config, timeout)
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn addresses_resolve_in_place_and_names_are_kept() {
        let r = Resolver::default();
        assert_eq!(
            resolve(&r, "http://127.0.0.1:8/v1"),
            ["127.0.0.1:8".parse().unwrap()]
        );
        assert_eq!(resolve(&r, "http://[::1]:9/"), ["[::1]:9".parse().unwrap()]);
        assert_eq!(
            resolve(&r, "https://10.0.0.2/"),
            ["10.0.0.2:443".parse().unwrap()]
        );
        assert!(
            r.names.lock().unwrap().is_empty(),
            "no lookup for an address"
        );
        // `localhost` is in every hosts file: no network needed.
        let first = resolve(&r, "http://localhost:7/");
        assert!(
            first.iter().all(|a| a.port() == 7 && a.ip().is_loopback()),
            "{first:?}"
        );
        assert_eq!(resolve(&r, "http://localhost:7/"), first);
        assert_eq!(r.names.lock().unwrap().len(), 1);
    }
}
