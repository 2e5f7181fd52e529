//! One connection to an upstream: where a URL points, connecting (TCP, then TLS for
//! `https`), reads bounded by a deadline and waited for a slice at a time, and the pool
//! of idle connections.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock, Weak, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::{Abandon, Net, SLICE, SendError};
use crate::registry::Origin;
use crate::sync::{self, lock};

/// How long a looked-up host name's addresses are reused.
const RESOLVED_FOR: Duration = Duration::from_secs(30);

/// How long an idle connection is kept. Servers close idle connections on their own
/// schedule (Node after 5 s, Go after minutes); one closed under us costs a second try
/// on a new connection (`Client::send`), never an attempt.
const IDLE_FOR: Duration = Duration::from_secs(15);

/// The input buffer each connection starts with; a response head may grow it to
/// [`MAX_HEAD`]. Events are far smaller, and each open stream holds this buffer.
const BUF_SIZE: usize = 8 * 1024;

/// The longest response head accepted (providers send 1 to 4 KiB).
pub(super) const MAX_HEAD: usize = 16 * 1024;

/// The socket under a connection.
enum Io {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Io {
    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Tcp(s) => s,
            Io::Tls(s) => &s.sock,
        }
    }
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.read(buf),
            Io::Tls(s) => match s.read(buf) {
                // Many servers close without TLS's close_notify; where that matters (a
                // body that runs to the connection's end), the end is the end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Tcp(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

/// The socket under a connection, with how long a read on it may wait.
struct Socket {
    io: Io,
    /// How long one read may wait in all ([`Conn::set_wait`]); zero before it is set.
    wait: Duration,
    /// The read timeout last set on the socket, at most a [`SLICE`]: setting it is a
    /// system call, made only when the value changes.
    timeout: Option<Duration>,
}

/// What a read ends with when the answer it waits for is no longer wanted.
#[derive(Debug)]
struct Abandoned;

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the answer is no longer wanted")
    }
}

impl std::error::Error for Abandoned {}

/// True when a read ended because its answer is no longer wanted (see [`Abandon`]).
pub(super) fn abandoned(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Abandoned>())
}

/// True when a read failed because its timeout expired.
pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

impl Socket {
    /// Sets the socket's read timeout, when it changes.
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        if self.timeout != Some(timeout) {
            self.io.tcp().set_read_timeout(Some(timeout))?;
            self.timeout = Some(timeout);
        }
        Ok(())
    }

    /// Runs `op` (one read, or a TLS handshake's reads) until it is done or `wait` has
    /// passed, a [`SLICE`] at a time: after each slice without a byte, `abandon` is
    /// asked whether the answer is still wanted. An answer within the first slice asks
    /// nothing and sets nothing: the slice is the socket's timeout for every read
    /// (whose wait is longer), so a reused connection keeps it from request to request.
    fn sliced<T>(
        &mut self,
        abandon: Abandon<'_>,
        mut op: impl FnMut(&mut Io) -> io::Result<T>,
    ) -> io::Result<T> {
        if self.wait.is_zero() {
            // Never bounded: the socket waits as it was made to.
            return retry_interrupted(|| op(&mut self.io));
        }
        // An earlier wait's last slice may have been shorter.
        self.set_timeout(self.wait.min(SLICE))?;
        let mut until = None;
        loop {
            match op(&mut self.io) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) && self.wait > SLICE => {
                    let now = Instant::now();
                    // The first timeout comes after a whole slice.
                    let until = *until.get_or_insert(now + (self.wait - SLICE));
                    let left = until.saturating_duration_since(now);
                    if left < Duration::from_millis(1) {
                        return Err(e);
                    }
                    if abandon() {
                        return Err(io::Error::other(Abandoned));
                    }
                    self.set_timeout(left.min(SLICE))?;
                }
                done => return done,
            }
        }
    }
}

/// One open connection with its input buffer.
pub(super) struct Conn {
    sock: Socket,
    /// The origin it is connected to ([`Origin::origin`]), the pool's key.
    origin: String,
    /// Bytes read and not used yet are `buf[at..end]`.
    buf: Vec<u8>,
    at: usize,
    end: usize,
}

impl Conn {
    /// Connects to `target`, each address tried within `timeout`.
    pub(super) fn open(
        target: &Origin,
        names: &Names,
        timeout: Duration,
        write_timeout: Duration,
    ) -> Result<Conn, SendError> {
        let addrs = names.resolve(target.host(), target.port, timeout)?;
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(tcp) = tcp else {
            let e = last.unwrap_or_else(|| io::Error::other("no address"));
            // Where, and the likely cause: a local server that is not running.
            if e.kind() == io::ErrorKind::ConnectionRefused {
                let host = match target.host().contains(':') {
                    true => format!("[{}]", target.host()),
                    false => target.host().to_string(),
                };
                return Err(SendError::Network(
                    Net::Refused,
                    format!(
                        "connection refused by {host}:{} (is the server running?)",
                        target.port
                    ),
                ));
            }
            return Err(super::classify(&e, "a connection"));
        };
        // Requests leave in one write; without this a small body could wait on Nagle.
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_write_timeout(Some(write_timeout));
        let io = if target.tls {
            let name = rustls::pki_types::ServerName::try_from(target.host().to_string()).map_err(
                |e| SendError::Network(Net::Other, format!("TLS: bad server name: {e}")),
            )?;
            let tls = rustls::ClientConnection::new(tls_config(), name)
                .map_err(|e| SendError::Network(Net::Other, format!("TLS failed: {e}")))?;
            Io::Tls(Box::new(rustls::StreamOwned::new(tls, tcp)))
        } else {
            Io::Tcp(tcp)
        };
        Ok(Conn {
            sock: Socket {
                io,
                wait: Duration::ZERO,
                timeout: None,
            },
            origin: target.origin().to_string(),
            buf: Vec::new(),
            at: 0,
            end: 0,
        })
    }

    /// Sends `bytes` whole. A new TLS connection shakes hands first, as rustls's first
    /// write would, but with the handshake's reads waited for as an answer's are: up to
    /// the whole wait, asking `abandon` after each slice (inside the write they would
    /// get one slice, the socket's timeout).
    pub(super) fn send(&mut self, bytes: &[u8], abandon: Abandon<'_>) -> io::Result<()> {
        if let Io::Tls(tls) = &self.sock.io
            && tls.conn.is_handshaking()
        {
            self.sock.sliced(abandon, |io| match io {
                Io::Tls(tls) => tls.conn.complete_io(&mut tls.sock).map(drop),
                Io::Tcp(_) => Ok(()),
            })?;
        }
        self.sock.io.write_all(bytes)?;
        self.sock.io.flush()
    }

    /// Bounds each following read by `wait`.
    pub(super) fn set_wait(&mut self, wait: Duration) -> io::Result<()> {
        // Zero would mean "no timeout" to the socket.
        self.sock.wait = wait.max(Duration::from_millis(1));
        self.sock.set_timeout(self.sock.wait.min(SLICE))
    }

    /// Bounds each following read by what is left until `deadline`, rounded up to whole
    /// milliseconds (between stream events the deadline is about the same distance
    /// away each time, so the socket's timeout rarely changes). A deadline already past
    /// still allows one brief wait, so bytes that have arrived are taken.
    pub(super) fn set_deadline(&mut self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX / 2) + 1;
        self.set_wait(Duration::from_millis(ms))
    }

    /// The bytes read and not used yet.
    pub(super) fn buffered(&self) -> &[u8] {
        &self.buf[self.at..self.end]
    }

    /// Marks `n` buffered bytes as used.
    pub(super) fn consume(&mut self, n: usize) {
        self.at += n;
        if self.at == self.end {
            self.at = 0;
            self.end = 0;
        }
    }

    /// Reads more into the buffer (growing it up to `cap` when it is full); 0 at the
    /// connection's end.
    pub(super) fn fill(&mut self, cap: usize, abandon: Abandon<'_>) -> io::Result<usize> {
        if self.buf.is_empty() {
            sync::zero_to(&mut self.buf, BUF_SIZE);
        }
        if self.end == self.buf.len() {
            if self.at > 0 {
                self.buf.copy_within(self.at..self.end, 0);
                self.end -= self.at;
                self.at = 0;
            } else if self.buf.len() < cap {
                let grown = cap.min(self.buf.len() * 2);
                sync::zero_to(&mut self.buf, grown);
            } else {
                return Err(io::Error::other("the buffer is full"));
            }
        }
        let n = self
            .sock
            .sliced(abandon, |io| io.read(&mut self.buf[self.end..]))?;
        self.end += n;
        Ok(n)
    }

    /// Reads into `out`, from the buffer first, else straight from the socket.
    pub(super) fn read_into(&mut self, out: &mut [u8], abandon: Abandon<'_>) -> io::Result<usize> {
        let have = self.buffered();
        if !have.is_empty() {
            let n = have.len().min(out.len());
            out[..n].copy_from_slice(&have[..n]);
            self.consume(n);
            return Ok(n);
        }
        self.sock.sliced(abandon, |io| io.read(out))
    }

    /// Frees the input buffer while the connection waits in the pool, when it grew
    /// past its usual size.
    fn trim(&mut self) {
        if self.buf.len() > BUF_SIZE {
            self.buf = Vec::new();
        }
    }
}

/// `f`, again while it is interrupted by a signal.
fn retry_interrupted<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// TLS settings: the webpki roots, ring's crypto, TLS 1.2 and 1.3; built once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }))
}

/// Host names to addresses. An IP address is taken as it is; a name's answer is kept
/// for [`RESOLVED_FOR`] (a pooled connection needs no look-up at all).
#[derive(Debug, Default)]
pub(super) struct Names {
    known: Mutex<Vec<Resolved>>,
}

/// A host and port, when they were looked up, and their addresses.
type Resolved = (String, u16, Instant, Vec<SocketAddr>);

impl Names {
    /// The addresses of `host`, looked up within `timeout`.
    fn resolve(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, SendError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let now = Instant::now();
        {
            let known = lock(&self.known);
            if let Some((.., addrs)) = known.iter().find(|(h, p, at, _)| {
                h == host && *p == port && now.duration_since(*at) < RESOLVED_FOR
            }) {
                return Ok(addrs.clone());
            }
        }
        // getaddrinfo takes no timeout: it runs on a thread of its own, waited for at
        // most `timeout` (a stuck resolver must not hold the request).
        let (tx, rx) = mpsc::sync_channel(1);
        let name = format!("{host}:{port}");
        let spawned = thread::Builder::new()
            .name("resolve".into())
            .spawn(move || {
                let _ = tx.send(name.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
            });
        if spawned.is_err() {
            return Err(SendError::Network(
                Net::Other,
                "cannot start a look-up thread".into(),
            ));
        }
        let addrs = match rx.recv_timeout(timeout) {
            Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
            Ok(_) => {
                return Err(SendError::Network(
                    Net::Dns,
                    format!(
                        "host not found: `{host}` does not resolve ({})",
                        super::CHECK_API_BASE
                    ),
                ));
            }
            Err(_) => return Err(SendError::Timeout(super::CONNECTING)),
        };
        let mut known = lock(&self.known);
        known.retain(|(h, p, at, _)| {
            !(h == host && *p == port) && now.duration_since(*at) < RESOLVED_FOR
        });
        known.push((host.to_string(), port, now, addrs.clone()));
        Ok(addrs)
    }
}

/// Idle connections, for reuse by the next request to the same origin.
///
/// Each thread keeps the connection its last request used in a slot of its own, and
/// takes it back for its next request: a client connection's requests run on one
/// thread, one after another, so under load no request touches a lock another thread
/// takes. (With every idle connection in one list behind one lock, taken twice a
/// request, a worker preempted while holding it held up the others: futex waits on 1
/// request in 50 at 32 clients on 2 cores.) A thread whose slot is empty takes from
/// the shared list, where slots overflow and ended threads leave theirs, and then from
/// other threads' slots: a client that opens a new connection per request finds the
/// upstream connection its last request used wherever that ran. (Unless it looks just
/// as that thread ends: the connection is then on its way from the slot to the shared
/// list, seen in neither, and one more is opened. Looking again would mean waiting on
/// the slot, which no request does.)
///
/// A thread whose connection another took opens one of its own instead of taking a
/// third thread's: taking in turn made a chain in which, under load, connections moved
/// from thread to thread for good. An upstream thread then answered many of
/// Routeplane's threads, and Linux stops pulling a woken thread onto its waker's core
/// once either has been seen waking several different threads (`wake_wide`): the
/// proxy-upstream pairs ran split across the cores (bench/results.md, issue 16
/// session 13).
#[derive(Debug)]
pub(super) struct Pool {
    /// Oldest first.
    idle: Mutex<Vec<(Conn, Instant)>>,
    /// Every thread's slot that has used this pool.
    slots: Mutex<Vec<Arc<Slot>>>,
    /// The most kept per origin in `idle` (`limits.idle_connections`); 0 keeps none.
    per_origin: usize,
}

/// A thread's connection kept for its next request.
type Slot = Mutex<Kept>;

/// What a slot holds.
#[derive(Debug, Default)]
struct Kept {
    /// The connection, and since when it is idle.
    conn: Option<(Conn, Instant)>,
    /// Another thread took the connection: the next one is the owner's own.
    taken: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("origin", &self.origin)
            .finish()
    }
}

/// This thread's slot in one pool.
struct Mine {
    pool: Weak<Pool>,
    slot: Arc<Slot>,
}

impl Drop for Mine {
    /// The thread ends: what its slot holds goes to the shared list.
    fn drop(&mut self) {
        let kept = lock(&self.slot).conn.take();
        if let (Some(pool), Some((conn, since))) = (self.pool.upgrade(), kept) {
            pool.share(conn, since);
        }
    }
}

thread_local! {
    /// This thread's slot in each pool it used.
    static MINE: RefCell<Vec<Mine>> = const { RefCell::new(Vec::new()) };
}

impl Pool {
    /// An empty pool that keeps at most `per_origin` connections to each origin.
    pub(super) fn new(per_origin: usize) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            slots: Mutex::new(Vec::new()),
            per_origin,
        }
    }

    /// A fresh idle connection to `origin`: this thread's own, else the most recently
    /// shared one, else one another thread kept.
    pub(super) fn take(self: &Arc<Pool>, origin: &str) -> Option<Conn> {
        let now = Instant::now();
        let fresh =
            |c: &Conn, since: Instant| c.origin == origin && now.duration_since(since) < IDLE_FOR;
        let own = self.with_slot(|slot| {
            let mut kept = lock(slot);
            let taken = std::mem::take(&mut kept.taken);
            (take_fresh(&mut kept.conn, fresh), taken)
        });
        let taken = match own {
            Some((Some(conn), _)) => return Some(conn),
            Some((None, taken)) => taken,
            None => false,
        };
        {
            let mut idle = lock(&self.idle);
            if let Some(i) = idle.iter().rposition(|(c, since)| fresh(c, *since)) {
                return Some(idle.remove(i).0);
            }
        }
        if taken {
            return None;
        }
        // Whoever holds the list or a slot now is busy with it: look no further.
        let slots = self.slots.try_lock().ok()?;
        slots.iter().find_map(|slot| {
            let mut kept = slot.try_lock().ok()?;
            let conn = take_fresh(&mut kept.conn, fresh)?;
            kept.taken = true;
            Some(conn)
        })
    }

    /// Keeps `conn` in this thread's slot for its next request; what the slot held
    /// goes to the shared list.
    pub(super) fn put(self: &Arc<Pool>, mut conn: Conn) {
        if self.per_origin == 0 {
            return;
        }
        conn.trim();
        let now = Instant::now();
        // What the slot held goes to the shared list. (A thread that is ending has no
        // slot: `conn` closes.)
        if let Some(Some((before, since))) =
            self.with_slot(move |slot| lock(slot).conn.replace((conn, now)))
        {
            self.share(before, since);
        }
    }

    /// Runs `f` on this thread's slot, made on its first use of the pool; `None` while
    /// the thread is ending.
    fn with_slot<R>(self: &Arc<Pool>, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        MINE.try_with(|mine| {
            let ours = |m: &Mine| Weak::as_ptr(&m.pool) == Arc::as_ptr(self);
            if let Some(m) = mine.borrow().iter().find(|m| ours(m)) {
                return f(&m.slot);
            }
            let slot = Arc::new(Slot::default());
            {
                let mut slots = lock(&self.slots);
                // Slots of threads that have ended (emptied when they ended).
                slots.retain(|s| Arc::strong_count(s) > 1);
                slots.push(Arc::clone(&slot));
            }
            let mut mine = mine.borrow_mut();
            // Slots in pools that are gone.
            mine.retain(|m| m.pool.strong_count() > 0);
            mine.push(Mine {
                pool: Arc::downgrade(self),
                slot: Arc::clone(&slot),
            });
            drop(mine);
            f(&slot)
        })
        .ok()
    }

    /// Puts `conn`, idle since `since`, in the shared list. Connections past their idle
    /// time, and the oldest one to the same origin when it has its fill, are closed,
    /// outside the lock.
    fn share(&self, conn: Conn, since: Instant) {
        let now = Instant::now();
        let mut closing = Vec::new();
        {
            let mut idle = lock(&self.idle);
            while idle
                .first()
                .is_some_and(|(_, since)| now.duration_since(*since) >= IDLE_FOR)
            {
                closing.push(idle.remove(0));
            }
            let mut same = idle.iter().filter(|(c, _)| c.origin == conn.origin).count();
            while same >= self.per_origin.max(1) {
                let Some(i) = idle.iter().position(|(c, _)| c.origin == conn.origin) else {
                    break;
                };
                closing.push(idle.remove(i));
                same -= 1;
            }
            if self.per_origin > 0 && now.duration_since(since) < IDLE_FOR {
                // Oldest first, for the loop above.
                let at = idle.partition_point(|(_, s)| *s <= since);
                idle.insert(at, (conn, since));
            }
        }
        drop(closing);
    }
}

/// The connection a slot holds, when `fresh` says it will do.
fn take_fresh(
    kept: &mut Option<(Conn, Instant)>,
    fresh: impl Fn(&Conn, Instant) -> bool,
) -> Option<Conn> {
    let (conn, since) = kept.as_ref()?;
    if fresh(conn, *since) {
        kept.take().map(|(c, _)| c)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request an `api_base` split once and joined with a path sends, and the
    /// connections it shares, are those of its whole URL split: a longer port, another
    /// host, `@`, `?` and `#` included.
    #[test]
    fn an_api_base_split_once_sends_as_its_whole_url_would() {
        let sent = |origin: &Origin, path: &str| {
            let mut out = Vec::new();
            crate::upstream::http1::request(&mut out, "GET", (origin, path), &[], None).unwrap();
            let (tls, port) = (origin.tls, origin.port);
            let parts = (
                tls,
                origin.host().to_string(),
                port,
                origin.origin().to_string(),
            );
            (String::from_utf8(out).unwrap(), parts)
        };
        let cases = [
            ("http://127.0.0.1:11434/v1", "/chat/completions"),
            ("http://127.0.0.1:11434", "/v1/models"),
            ("http://127.0.0.1:11434", ""),
            ("http://h:8080/v1", "/x"),
            ("http://h.example/v1", "/x"),
            ("https://[::1]:8443/a", "/b?c=d"),
            ("http://h/v1?key=1", "/chat/completions"),
            ("http://h/v1/a@b", "/c"),
            ("http://h/v1#frag", "/chat/completions"),
            ("http://h?x/v1", "/chat/completions"),
            ("http://h@evil/v1", "/chat/completions"),
            ("http://h:80x/v1", "/chat/completions"),
        ];
        for (base, path) in cases {
            let whole = format!("{base}{path}");
            let once = Origin::split(base).map_err(drop).map(|o| sent(&o, path));
            let alone = Origin::split(&whole).map_err(drop).map(|o| sent(&o, ""));
            assert_eq!(once.is_ok(), alone.is_ok(), "{whole}");
            if let (Ok(once), Ok(alone)) = (once, alone) {
                assert_eq!(once, alone, "{whole}");
            }
        }
    }
}
