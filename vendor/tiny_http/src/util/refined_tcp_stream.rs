use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::Connection;
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use crate::ssl::SslStream;
use crate::util::ConnState;

pub(crate) enum Stream {
    // routeplane: shared by the connection's reading and writing halves (and its
    // `ConnState`'s probe); the stock crate duplicated the descriptor for each, three
    // files a connection, and unwrapped the duplication, so at the open-files limit
    // the accept thread panicked and the server stopped accepting for good.
    Http(Arc<Connection>),
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    Https(SslStream),
}

impl Clone for Stream {
    fn clone(&self) -> Self {
        match self {
            Stream::Http(tcp_stream) => Stream::Http(Arc::clone(tcp_stream)),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => Stream::Https(ssl_stream.clone()),
        }
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(Arc::new(tcp_stream))
    }
}

impl Stream {
    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => true,
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.peer_addr(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.peer_addr(),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.shutdown(how),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.shutdown(how),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.set_read_timeout(timeout),
            // routeplane: the TLS features stay off; nothing to shorten there.
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => Ok(()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).read(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).write(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => (&**tcp_stream).flush(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.flush(),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    // routeplane: the connection's shared deadline and the read timeout last set on
    // the socket (`timeout` is what accept set).
    state: ConnState,
    applied: Option<Duration>,
}

impl RefinedTcpStream {
    /// routeplane: `timeout` is the read timeout already set on the socket.
    pub(crate) fn new<S>(
        stream: S,
        timeout: Option<Duration>,
    ) -> (RefinedTcpStream, RefinedTcpStream)
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let (read, write) = (stream.clone(), stream);
        let peer = match &write {
            Stream::Http(conn) => match **conn {
                Connection::Tcp(_) => Some(Arc::clone(conn)),
                #[cfg(unix)]
                Connection::Unix(_) => None,
            },
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => None,
        };
        let state = ConnState::with_peer(timeout, peer);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            state: state.clone(),
            applied: timeout,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            state,
            applied: timeout,
        };

        (read, write)
    }

    /// routeplane: the state shared by everything reading from this connection.
    pub(crate) fn state(&self) -> &ConnState {
        &self.state
    }

    /// routeplane: sends FIN after what was written, so the client sees the end of our
    /// answer while we may still read (and discard) what it sends.
    pub(crate) fn shutdown_write(&mut self) {
        self.stream.shutdown(Shutdown::Write).ok();
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            // routeplane: before the shutdown, so a probe never mistakes it for the client's.
            self.state.read_shut();
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        // routeplane: while a deadline runs, no read may wait past it; otherwise the
        // socket gets its normal timeout back. Only a change costs a system call.
        let wanted = match self.state.deadline() {
            None => self.state.timeout(),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client did not send in time",
                    ));
                }
                Some(self.state.timeout().map_or(left, |t| t.min(left)))
            }
        };
        if wanted != self.applied {
            self.stream.set_read_timeout(wanted)?;
            self.applied = wanted;
        }
        self.state.reading(true);
        let read = self.stream.read(buf);
        self.state.reading(false);
        // routeplane: the client's end seen here (a request queued for another thread
        // leaves this one reading the next) is what `ClientProbe` reports.
        let gone = match &read {
            Ok(0) => !buf.is_empty(),
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ),
        };
        if gone {
            self.state.peer_closed();
        }
        read
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
