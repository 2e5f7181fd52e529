use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read};

use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Method};
use crate::util::{ConnState, RefinedTcpStream};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::head::{HeadBuilder, Known, LineError};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // routeplane: deadlines and the closing flag, shared with the body readers.
    state: ConnState,

    // routeplane: a byte of the current request has arrived (its deadline runs).
    in_request: bool,

    // routeplane: a head line that did not lie whole in the read buffer.
    line: Vec<u8>,

    // routeplane: the current request's method and path once its line is read, for a
    // refusal's answer and log line (see `Refusal`).
    asked: Option<(Method, String)>,
}

/// routeplane: the longest header line accepted.
const MAX_HEADER_LINE: usize = 16 * 1024;
/// routeplane: the most headers accepted in one request.
const MAX_HEADERS: usize = 100;

/// routeplane: how long, and how much, a connection being closed is still read from.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_LIMIT: usize = 1024 * 1024;

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// routeplane: the request line is longer than MAX_HEADER_LINE (414).
    RequestLineTooLong,
    /// routeplane: a header line over MAX_HEADER_LINE, or (true) over MAX_HEADERS of
    /// them (431).
    HeadersTooLarge(HTTPVersion, bool),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
    ) -> ClientConnection {
        let secure = read_socket.secure();
        let state = read_socket.state().clone();
        // routeplane: kept in the connection's state, which every request holds.
        if let Ok(Some(addr)) = read_socket.peer_addr() {
            state.set_remote(addr);
        }

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            state,
            in_request: false,
            line: Vec::new(),
            asked: None,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source and hands it, without its CRLF,
    /// to `parse`.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    ///
    /// routeplane: `Ok(None)` for a line longer than MAX_HEADER_LINE. A line is parsed
    /// where it lies in the read buffer, or else from `self.line`, which is kept from
    /// one line to the next: the stock code allocated a `Vec` per line (and grew it),
    /// then an `AsciiString` from it: 3.2k instructions per request of 8 lines.
    fn read_next_line<T>(&mut self, parse: impl FnOnce(&[u8]) -> T) -> IoResult<Option<T>> {
        // routeplane: whole buffered runs at a time (the stock code read one byte per
        // call); a line still ends only at CRLF, as before.
        self.line.clear();
        loop {
            let available = self.next_header_source.fill_buf()?;
            if available.is_empty() {
                return Err(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF"));
            }

            // routeplane: from the first byte of a request, its whole head must arrive
            // within the client timeout; the socket timeout alone bounds each read, so a
            // client trickling a byte at a time held this thread forever.
            if !self.in_request {
                self.in_request = true;
                self.state.start_deadline();
            }

            let (taken, ended) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            // The common case: the whole line is in the buffer.
            if ended && self.line.is_empty() && taken >= 2 && available[taken - 2] == b'\r' {
                let line = &available[..taken - 2];
                if line.len() > MAX_HEADER_LINE {
                    return Ok(None);
                }
                let parsed = parse(line);
                self.next_header_source.consume(taken);
                return Ok(Some(parsed));
            }
            self.line.extend_from_slice(&available[..taken]);
            self.next_header_source.consume(taken);

            // A bare LF stays part of the line, as in the stock reader.
            let crlf = ended && self.line.ends_with(b"\r\n");
            let len = self.line.len() - if crlf { 2 } else { 0 };
            // routeplane: a header line has a size limit (the stock crate had none:
            // a 300 MiB line cost 310 MB of memory).
            if len > MAX_HEADER_LINE {
                return Ok(None);
            }
            if crlf {
                return Ok(Some(parse(&self.line[..len])));
            }
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        self.in_request = false;
        let result = self.read_request();
        // routeplane: the head (and a small body read with it) is in; the body reader
        // runs on the socket's own timeout and its caller's deadline.
        self.state.set_deadline(None);
        result
    }

    /// routeplane: the header lines of a request whose line is in `head`, up to the
    /// empty line that ends them.
    fn read_headers(&mut self, head: &mut HeadBuilder, version: &HTTPVersion) -> Result<(), ReadError> {
        let refused = |e| match e {
            LineError::TooMany => ReadError::HeadersTooLarge(version.clone(), true),
            LineError::Malformed => ReadError::WrongHeader(version.clone()),
            LineError::NotAscii => ReadError::ReadIoError(not_ascii()),
        };
        loop {
            // routeplane: the lines that lie whole in the read buffer, taken in one go:
            // one `fill_buf` and one `consume` for all of them, not one each (each one
            // passes two layers of readers). A line the buffer does not hold whole, or
            // one ending in a bare LF, is left to `read_next_line`.
            let available = self.next_header_source.fill_buf().map_err(ReadError::ReadIoError)?;
            let (mut used, mut ended, mut result) = (0, false, Ok(()));
            while let Some(i) = memchr::memchr(b'\n', &available[used..]) {
                let lf = used + i;
                if lf == used || available[lf - 1] != b'\r' || lf - 1 - used > MAX_HEADER_LINE {
                    break;
                }
                let line = &available[used..lf - 1];
                used = lf + 1;
                if line.is_empty() {
                    ended = true;
                    break;
                }
                result = match head.len() {
                    MAX_HEADERS.. => Err(LineError::TooMany),
                    _ => head.header_line(line),
                };
                if result.is_err() {
                    break;
                }
            }
            self.next_header_source.consume(used);
            result.map_err(refused)?;
            if ended {
                return Ok(());
            }

            // routeplane: each line is checked where it lies (see `read_next_line`) and
            // copied into the head; `None` is the empty line that ends it.
            let line = self
                .read_next_line(|line| {
                    // routeplane: and so has the number of headers.
                    (!line.is_empty()).then(|| match head.len() {
                        MAX_HEADERS.. => Err(LineError::TooMany),
                        _ => head.header_line(line),
                    })
                })
                .map_err(ReadError::ReadIoError)?
                .ok_or_else(|| ReadError::HeadersTooLarge(version.clone(), false))?;

            match line {
                None => return Ok(()),
                Some(result) => result.map_err(refused)?,
            }
        }
    }

    fn read_request(&mut self) -> Result<Request, ReadError> {
        // reading the request line
        // routeplane: the path goes into the request's `Head`, as its headers do.
        // routeplane: its outcomes taken apart in one match: through a chain of
        // `map_err`s and `?`s the parsed line was copied once a layer (~4 hot code lines
        // a request, callgrind).
        let parsed = self.read_next_line(|line| {
            // routeplane: checked and parsed as bytes (a UTF-8 check of the line
            // besides the ASCII one was ~60 instructions a request, callgrind).
            if !line.is_ascii() {
                return Err(ReadError::ReadIoError(not_ascii()));
            }
            parse_request_line(line.trim_ascii())
                .map(|(method, path, version)| (method, HeadBuilder::new(path, 512), version))
        });
        let (method, mut head, version) = match parsed {
            Ok(Some(parsed)) => parsed?,
            Ok(None) => return Err(ReadError::RequestLineTooLong),
            Err(e) => return Err(ReadError::ReadIoError(e)),
        };
        // getting all headers
        if let Err(e) = self.read_headers(&mut head, &version) {
            // routeplane: kept for the refusal's answer (its path picks the error's shape).
            let path = head.path();
            let path = path.split('?').next().unwrap_or(path);
            let mut end = path.len().min(256);
            while !path.is_char_boundary(end) {
                end -= 1;
            }
            self.asked = Some((method, path[..end].to_string()));
            return Err(e);
        }
        let head = head
            .finish()
            .ok_or_else(|| ReadError::ReadIoError(not_ascii()))?;

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        // routeplane: the next request's reader is made only when this one's body needs
        // the source (see `Handoff`).
        let data_source = Handoff {
            readers: &mut self.source,
            current: &mut self.next_header_source,
        };

        // building the next reader
        // routeplane: returned as it is made, not through `?` and `Ok` (each a copy of
        // the whole `Request`).
        crate::request::new_request(
            self.secure,
            method,
            head,
            version.clone(),
            data_source,
            crate::request::ResponseWriter::connection(writer),
            self.state.clone(),
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })
    }
}

/// routeplane: a request's body source: the connection's reader, handed to the request
/// (and a new one made for the next request, whose turn comes when the body is done)
/// only when its body is not read with its head.
struct Handoff<'a> {
    readers: &'a mut SequentialReaderBuilder<BufReader<RefinedTcpStream>>,
    current: &'a mut SequentialReader<BufReader<RefinedTcpStream>>,
}

impl Read for Handoff<'_> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        self.current.read(buf)
    }
}

impl BufRead for Handoff<'_> {
    fn fill_buf(&mut self) -> IoResult<&[u8]> {
        self.current.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.current.consume(amount)
    }
}

impl crate::request::BodySource for Handoff<'_> {
    type Taken = SequentialReader<BufReader<RefinedTcpStream>>;

    fn into_reader(self) -> Self::Taken {
        let mut taken = self.readers.next().unwrap();
        std::mem::swap(self.current, &mut taken);
        taken
    }
}

impl ClientConnection {
    /// routeplane: answers a request this connection cannot go on from, then ends it.
    fn refuse(&mut self, status: u16, version: HTTPVersion) {
        self.answer_and_close(status, version);
        self.linger();
    }

    /// routeplane: the last answer on this connection (it is flushed when the connection
    /// is dropped, or by `linger`).
    fn answer_and_close(&mut self, status: u16, version: HTTPVersion) {
        self.answer_refusal(status, version, RefusalKind::Malformed);
    }

    /// routeplane: the last answer on this connection, made by the refusal hook when one
    /// is set (`set_refusal_hook`): the embedding server writes its own body and log line.
    fn answer_refusal(&mut self, status: u16, version: HTTPVersion, kind: RefusalKind) {
        use crate::{Response, StatusCode};
        let asked = self.asked.take();
        let refusal = Refusal {
            status,
            kind,
            method: asked.as_ref().map(|(m, _)| m.clone()),
            path: asked.map(|(_, p)| p),
            idle: !self.in_request,
        };
        let answer = REFUSAL_HOOK.get().map(|hook| hook(&refusal));
        if let Some(writer) = self.sink.next() {
            match answer {
                Some(answer) => {
                    let mut response = Response::from_data(answer.body)
                        .with_status_code(StatusCode(status))
                        .with_connection_close();
                    for (name, value) in answer.headers {
                        if let Ok(h) = crate::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                            response.add_header(h);
                        }
                    }
                    response.raw_print(writer, version, &[], false, None).ok();
                }
                None => {
                    let response = Response::new_empty(StatusCode(status)).with_connection_close();
                    response.raw_print(writer, version, &[], false, None).ok();
                }
            }
        }
    }

    /// routeplane: `refuse` for a refusal of a known kind.
    fn refuse_as(&mut self, status: u16, version: HTTPVersion, kind: RefusalKind) {
        self.answer_refusal(status, version, kind);
        self.linger();
    }

    /// routeplane: ends a connection whose client may still be sending. Closing a socket
    /// with unread bytes makes the kernel send RST, and the client's kernel then drops the
    /// answer it has not read yet: so flush, half-close (the client sees our answer end),
    /// and read and discard what still comes, within LINGER_TIME and LINGER_LIMIT.
    fn linger(&mut self) {
        if let Some(mut writer) = self.sink.next() {
            writer.with_turn(|w| {
                use std::io::Write;
                w.flush().ok();
                w.get_mut().shutdown_write();
            });
        }
        let until = Instant::now() + self.state.at_most(LINGER_TIME);
        self.state.set_deadline(Some(until));
        let mut buf = [0u8; 4096];
        let mut left = LINGER_LIMIT;
        while left > 0 {
            match self.next_header_source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => left = left.saturating_sub(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.state.set_deadline(None);
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        loop {
            // routeplane: a body left unread, cut short or broken off leaves the stream
            // at an unknown place: what follows is not a request. (Checked before and
            // after reading: with `recv` the previous body may still be in use.)
            if self.state.closing() {
                self.linger();
                return None;
            }
            // routeplane: a request handed to another thread (queued before an inline
            // handler was set, or for `recv`) holds the reader until its body is done;
            // its answer may end the connection meanwhile. Looked at again once the turn
            // comes, not only after a read that waits for a next request the client will
            // not send (up to the client timeout, while it waits for our close).
            if self.next_header_source.wait_turn() && self.state.closing() {
                self.linger();
                return None;
            }
            let result = self.read();
            if self.state.closing() {
                self.linger();
                return None;
            }
            // routeplane: each refusal below is the connection's last answer.
            let rq = match result {
                Err(ReadError::WrongRequestLine) => {
                    // we don't know where the next request would start, so we have to close
                    self.refuse(400, HTTPVersion(1, 1));
                    return None;
                }

                Err(ReadError::WrongHeader(ver)) => {
                    self.refuse(400, ver);
                    return None;
                }

                // routeplane: too long or too many header lines: say so (431; the stock
                // crate had no limits, these are ours).
                Err(ReadError::HeadersTooLarge(ver, too_many)) => {
                    let kind = if too_many {
                        RefusalKind::TooManyHeaders(MAX_HEADERS)
                    } else {
                        RefusalKind::HeaderLineTooLong(MAX_HEADER_LINE)
                    };
                    self.refuse_as(431, ver, kind);
                    return None;
                }

                Err(ReadError::RequestLineTooLong) => {
                    self.refuse_as(414, HTTPVersion(1, 1), RefusalKind::RequestLineTooLong(MAX_HEADER_LINE));
                    return None;
                }

                // routeplane: a socket read timeout shows up as WouldBlock on Unix.
                Err(ReadError::ReadIoError(ref err))
                    if matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
                {
                    // An idle connection (no byte of a next request yet) has nothing
                    // unread to linger for.
                    if self.in_request {
                        self.refuse_as(408, HTTPVersion(1, 1), RefusalKind::Timeout);
                    } else {
                        self.answer_refusal(408, HTTPVersion(1, 1), RefusalKind::Timeout);
                    }
                    return None;
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    self.refuse(417, ver);
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => rq,
            };

            // checking HTTP version
            if *rq.http_version() > (1, 1) {
                let response = Response::from_string(
                    "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
                )
                .with_status_code(StatusCode(505));
                // routeplane: answered through the request's own writer. The stock code
                // took the next one, whose turn comes only once this request's writer is
                // dropped, i.e. never: the connection hung without an answer.
                rq.respond_as(response, HTTPVersion(1, 1)).ok();
                continue;
            }

            // updating the status of the connection
            // routeplane: without making the request's `Header` list.
            let connection_header = rq.known_header(Known::Connection);

            // routeplane: compared ignoring case in place (the stock code allocated a
            // lowercase copy of the value per request).
            match connection_header {
                Some(val) if contains_ignore_case(val, "close") => self.no_more_requests = true,
                Some(val) if contains_ignore_case(val, "upgrade") => self.no_more_requests = true,
                Some(val)
                    if !contains_ignore_case(val, "keep-alive")
                        && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

/// routeplane: whether `haystack` contains `needle`, ignoring ASCII case.
pub(crate) fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn not_ascii() -> IoError {
    IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII")
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &[u8]) -> Result<HTTPVersion, ReadError> {
    // routeplane: each version compared as one 8-byte word (a match on the byte strings
    // was a tree of comparisons over 5 code lines, callgrind).
    const fn word(v: &[u8; 8]) -> u64 {
        u64::from_le_bytes(*v)
    }
    const V09: u64 = word(b"HTTP/0.9");
    const V10: u64 = word(b"HTTP/1.0");
    const V11: u64 = word(b"HTTP/1.1");
    const V20: u64 = word(b"HTTP/2.0");
    const V30: u64 = word(b"HTTP/3.0");
    use std::convert::TryFrom;
    let version = <[u8; 8]>::try_from(version).map_err(|_| ReadError::WrongRequestLine)?;
    let (major, minor) = match u64::from_le_bytes(version) {
        V11 => (1, 1),
        V10 => (1, 0),
        V09 => (0, 9),
        V20 => (2, 0),
        V30 => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &[u8]) -> Result<(Method, &[u8], HTTPVersion), ReadError> {
    // routeplane: the words split as `line.split(' ')` would, by a byte search (through
    // `split` this was ~400 instructions a request), a word at a time (a byte at a
    // time, ~150).
    let mut rest = Some(line);
    let mut parts = std::iter::from_fn(|| {
        let s = rest?;
        match crate::head::find(s, b' ') {
            Some(at) => {
                rest = Some(&s[at + 1..]);
                Some(&s[..at])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    });

    let method = parts.next().and_then(Method::from_word);
    let path = parts.next();
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

/// routeplane: what a refusal the connection answers itself is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request line is longer than this many bytes (414).
    RequestLineTooLong(usize),
    /// A header line is longer than this many bytes (431).
    HeaderLineTooLong(usize),
    /// There are more than this many headers (431).
    TooManyHeaders(usize),
    /// The head (or a small body read with it) did not arrive within the client
    /// timeout (408).
    Timeout,
    /// A request line or header line that is not HTTP, or an `Expect` other than
    /// `100-continue` (400, 417).
    Malformed,
}

/// routeplane: a request the connection refuses before it becomes a `Request`.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The status it is answered with.
    pub status: u16,
    /// Why.
    pub kind: RefusalKind,
    /// The method, when the request line was read.
    pub method: Option<Method>,
    /// The path without its query (at most 256 bytes), when the request line was read.
    pub path: Option<String>,
    /// No byte of a request had come: a kept-alive connection timed out idle.
    pub idle: bool,
}

/// routeplane: what the embedding server answers a refusal with.
#[derive(Debug, Clone, Default)]
pub struct RefusalAnswer {
    /// Headers besides `Content-Length` and `Connection: close` (a `Server` one
    /// replaces tiny_http's).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// routeplane: the embedding server's answer to a refusal (its body, its log line).
pub type RefusalHook = Box<dyn Fn(&Refusal) -> RefusalAnswer + Send + Sync>;

static REFUSAL_HOOK: std::sync::OnceLock<RefusalHook> = std::sync::OnceLock::new();

/// routeplane: sets, once per process, how refusals are answered; without it they are
/// empty answers. A second call is ignored.
pub fn set_refusal_hook(hook: RefusalHook) {
    let _ = REFUSAL_HOOK.set(hook);
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line(b"GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == b"/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line(b"GET /hello").is_err());
        assert!(super::parse_request_line(b"qsd qsd qsd").is_err());
    }
}
