use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Method};
use crate::util::{ConnState, RefinedTcpStream};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

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
    /// routeplane: a header line over MAX_HEADER_LINE, or over MAX_HEADERS of them (431).
    HeadersTooLarge(HTTPVersion),
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
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        let state = read_socket.state().clone();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            state,
            in_request: false,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    ///
    /// routeplane: `Ok(None)` for a line longer than MAX_HEADER_LINE.
    fn read_next_line(&mut self) -> IoResult<Option<AsciiString>> {
        // routeplane: whole buffered runs at a time (the stock code read one byte per
        // call); a line still ends only at CRLF, as before.
        let mut buf = Vec::new();
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
                if let Some(timeout) = self.state.timeout() {
                    self.state.set_deadline(Some(Instant::now() + timeout));
                }
            }

            let (taken, ended) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            buf.extend_from_slice(&available[..taken]);
            self.next_header_source.consume(taken);

            // A bare LF stays part of the line, as in the stock reader.
            let crlf = ended && buf.len() >= 2 && buf[buf.len() - 2] == b'\r';
            if crlf {
                buf.truncate(buf.len() - 2);
            }
            // routeplane: a header line has a size limit (the stock crate had none:
            // a 300 MiB line cost 310 MB of memory).
            if buf.len() > MAX_HEADER_LINE {
                return Ok(None);
            }
            if crlf {
                return AsciiString::from_ascii(buf)
                    .map(Some)
                    .map_err(|_| IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII"));
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

    fn read_request(&mut self) -> Result<Request, ReadError> {
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self
                    .read_next_line()
                    .map_err(ReadError::ReadIoError)?
                    .ok_or(ReadError::RequestLineTooLong)?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self
                        .read_next_line()
                        .map_err(ReadError::ReadIoError)?
                        .ok_or_else(|| ReadError::HeadersTooLarge(version.clone()))?;

                    if line.is_empty() {
                        break;
                    };
                    // routeplane: and so has the number of headers.
                    if headers.len() >= MAX_HEADERS {
                        return Err(ReadError::HeadersTooLarge(version));
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
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
        })?;

        // return the request
        Ok(request)
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
        use crate::{Header, Response, StatusCode};
        if let Some(writer) = self.sink.next() {
            let mut response = Response::new_empty(StatusCode(status));
            if let Ok(close) = Header::from_bytes(&b"Connection"[..], &b"close"[..]) {
                response.add_header(close);
            }
            response.raw_print(writer, version, &[], false, None).ok();
        }
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
                Err(ReadError::HeadersTooLarge(ver)) => {
                    self.refuse(431, ver);
                    return None;
                }

                Err(ReadError::RequestLineTooLong) => {
                    self.refuse(414, HTTPVersion(1, 1));
                    return None;
                }

                // routeplane: a socket read timeout shows up as WouldBlock on Unix.
                Err(ReadError::ReadIoError(ref err))
                    if matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
                {
                    // An idle connection (no byte of a next request yet) has nothing
                    // unread to linger for.
                    if self.in_request {
                        self.refuse(408, HTTPVersion(1, 1));
                    } else {
                        self.answer_and_close(408, HTTPVersion(1, 1));
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
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
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

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
