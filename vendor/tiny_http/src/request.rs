use std::cell::Cell;
use std::io::Error as IoError;
use std::io::{self, BufRead, BufWriter, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use std::sync::mpsc::Sender;
use std::sync::OnceLock;

use crate::head::{Head, Known};
use crate::util::{ChunkedBody, ConnState, Ended, EqualReader, FusedReader};
use crate::util::{RefinedTcpStream, SequentialWriter};
use crate::{HTTPVersion, Header, Method, Response, StatusCode};

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header or `Connection: upgrade` header (used for
///    websockets), which indicates that this is the last request that will be received on this
///    connection
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<Box<dyn Read + Send + 'static>>,

    // routeplane: a small body read whole with the head, kept as it came until a reader
    // or `take_body` asks for it: a caller that takes it pays for no boxed reader and no
    // second buffer.
    buffered: Option<Vec<u8>>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<ResponseWriter>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    // routeplane: the path and headers as read; `Header`s are made from it only when
    // `headers()` is called (see `head.rs`).
    head: Head,
    headers: OnceLock<Box<[Header]>>,

    http_version: HTTPVersion,

    body_length: Option<usize>,

    // true if a `100 Continue` response must be sent when `as_reader()` is called
    must_send_continue: bool,

    // If Some, a message must be sent after responding
    notify_when_responded: Option<Sender<()>>,

    // routeplane: when the request was read, so a server can refuse one that waited
    // too long for a worker instead of letting a backlog grow.
    received_at: std::time::Instant,

    // routeplane: the connection's state, for `client_probe`.
    conn: ConnState,
}

/// routeplane: where a request's answer is written (see `Request::into_writer`): the
/// connection's own writer as it is, or any other one boxed. The stock crate boxed
/// every writer: an allocation and a free a request.
pub struct ResponseWriter(Sink);

enum Sink {
    Connection(SequentialWriter<BufWriter<RefinedTcpStream>>),
    Other(Box<dyn Write + Send + 'static>),
}

impl ResponseWriter {
    /// The connection's writer.
    pub(crate) fn connection(w: SequentialWriter<BufWriter<RefinedTcpStream>>) -> ResponseWriter {
        ResponseWriter(Sink::Connection(w))
    }

    /// Any other writer.
    pub(crate) fn other(w: impl Write + Send + 'static) -> ResponseWriter {
        ResponseWriter(Sink::Other(Box::new(w)))
    }
}

impl Write for ResponseWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Sink::Connection(w) => w.write(buf),
            Sink::Other(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.0 {
            Sink::Connection(w) => w.write_all(buf),
            Sink::Other(w) => w.write_all(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.0 {
            Sink::Connection(w) => w.write_vectored(bufs),
            Sink::Other(w) => w.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Sink::Connection(w) => w.flush(),
            Sink::Other(w) => w.flush(),
        }
    }
}

/// routeplane: tells, without reading or writing, whether the client of a request has
/// closed or reset its connection; usable after `into_writer`, e.g. while a server
/// waits before its answer's first byte.
#[derive(Clone)]
pub struct ClientProbe(ConnState);

impl ClientProbe {
    /// True when the client closed or reset the connection (a peek sees its end).
    pub fn gone(&self) -> bool {
        self.0.client_gone()
    }
}

struct NotifyOnDrop<R> {
    sender: Sender<()>,
    inner: R,
}

impl<R: Read> Read for NotifyOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
impl<R: Write> Write for NotifyOnDrop<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
impl<R> Drop for NotifyOnDrop<R> {
    fn drop(&mut self) {
        self.sender.send(()).unwrap();
    }
}

/// routeplane: the most a small body read with the head may be (see `take_body`).
const SMALL: usize = 1024;

thread_local! {
    /// routeplane: the buffer of a small body given back with `reuse_body`, for the
    /// next one this thread reads: a connection's requests are read on its thread.
    static SMALL_BODY: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// routeplane: gives back a body taken with `Request::take_body` once the caller is
/// done with it: this thread's next small body is read into it instead of a new
/// allocation (under musl's allocator, one lock for every thread, each is a wait on a
/// busy server). Any other vector is simply dropped.
pub fn reuse_body(body: Vec<u8>) {
    if body.capacity() <= SMALL {
        let _ = SMALL_BODY.try_with(|spare| spare.set(body));
    }
}

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// routeplane: where a request's body comes from. A small body is read here with the
/// head, from the source as it is; any other body gets the source taken whole for its
/// reader. The connection's source is its next request's too: taking it is a hand-off
/// between two readers (a lock each to give and to take the turn, ~300 instructions
/// a request, callgrind), which a body read with the head does not need.
pub(crate) trait BodySource: BufRead {
    /// The source as a body's reader holds it.
    type Taken: Read + Send + 'static;

    /// The source, for a reader that reads the body later.
    fn into_reader(self) -> Self::Taken;
}

impl BodySource for &'static [u8] {
    type Taken = &'static [u8];

    fn into_reader(self) -> &'static [u8] {
        self
    }
}

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// You must pass a `Read` that will allow the `Request` object to read from the incoming data.
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_request<S>(
    secure: bool,
    method: Method,
    head: Head,
    version: HTTPVersion,
    mut source_data: S,
    writer: ResponseWriter,
    state: ConnState,
) -> Result<Request, RequestCreationError>
where
    S: BodySource,
{
    // finding the transfer-encoding header
    let transfer_encoding = head.known(Known::TransferEncoding);

    // finding the content-length header
    let content_length = if transfer_encoding.is_some() {
        // if transfer-encoding is specified, the Content-Length
        // header must be ignored (RFC2616 #4.4)
        None
    } else {
        head.known(Known::ContentLength)
            .and_then(|v| FromStr::from_str(v).ok())
    };

    // true if the client sent a `Expect: 100-continue` header
    let expects_continue = {
        match head.known(Known::Expect) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
            _ => return Err(RequestCreationError::ExpectationFailed),
        }
    };

    // true if the client sent a `Connection: upgrade` header
    let connection_upgrade = {
        match head.known(Known::Connection) {
            // routeplane: without a lowercase copy of the value.
            Some(v) if crate::client::contains_ignore_case(v, "upgrade") => true,
            _ => false,
        }
    };

    // we wrap `source_data` around a reading whose nature depends on the transfer-encoding and
    // content-length headers
    let conn = state.clone();
    let mut buffered = None;
    let reader = if connection_upgrade {
        // if we have a `Connection: upgrade`, always keeping the whole reader
        Box::new(source_data.into_reader()) as Box<dyn Read + Send + 'static>
    } else if let Some(content_length) = content_length {
        if content_length == 0 {
            Box::new(io::empty()) as Box<dyn Read + Send + 'static>
        } else if content_length <= SMALL && !expects_continue {
            // if the content-length is small enough, we just read everything into a buffer

            // routeplane: in the buffer of a body given back (`reuse_body`), if any.
            let mut buffer = SMALL_BODY.try_with(Cell::take).unwrap_or_default();
            buffer.clear();
            buffer.reserve(content_length);
            // routeplane: copied from the source's buffer as it stands, not read into a
            // zeroed one: the zeroing and the reads' layers were ~150 instructions a
            // request (callgrind).
            while buffer.len() != content_length {
                let available = source_data.fill_buf()?;
                if available.is_empty() {
                    // routeplane: the socket ended before the Content-Length. The stock
                    // code dropped the connection without a word; hand the caller what
                    // came, then an error, so it can answer 400 (and relay nothing).
                    break;
                }
                let n = available.len().min(content_length - buffer.len());
                buffer.extend_from_slice(&available[..n]);
                source_data.consume(n);
            }

            if buffer.len() == content_length {
                buffered = Some(buffer);
                // A zero-sized reader: boxing it allocates nothing.
                Box::new(io::empty()) as Box<dyn Read + Send + 'static>
            } else {
                let ended = Ended {
                    what: "Content-Length",
                    state,
                };
                Box::new(Cursor::new(buffer).chain(ended)) as Box<dyn Read + Send + 'static>
            }
        } else {
            let source = source_data.into_reader();
            let (data_reader, _) = EqualReader::new(source, content_length, state); // TODO:
            Box::new(FusedReader::new(data_reader)) as Box<dyn Read + Send + 'static>
        }
    } else if transfer_encoding.is_some() {
        // if a transfer-encoding was specified, then "chunked" is ALWAYS applied
        // over the message (RFC2616 #3.6)
        // routeplane: `ChunkedBody` reports a body cut short instead of ending it quietly.
        Box::new(FusedReader::new(ChunkedBody::new(source_data.into_reader(), state)))
            as Box<dyn Read + Send + 'static>
    } else {
        // if we have neither a Content-Length nor a Transfer-Encoding,
        // assuming that we have no data
        // TODO: could also be multipart/byteranges
        Box::new(io::empty()) as Box<dyn Read + Send + 'static>
    };

    Ok(Request {
        data_reader: Some(reader),
        buffered,
        response_writer: Some(writer),
        secure,
        method,
        head,
        headers: OnceLock::new(),
        http_version: version,
        body_length: content_length,
        must_send_continue: expects_continue,
        notify_when_responded: None,
        received_at: std::time::Instant::now(),
        conn,
    })
}

impl Request {
    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// routeplane: when the request was read from the connection.
    #[inline]
    pub fn received_at(&self) -> std::time::Instant {
        self.received_at
    }

    /// routeplane: a probe for whether the client has left; see `ClientProbe`.
    pub fn client_probe(&self) -> ClientProbe {
        ClientProbe(self.conn.clone())
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        self.head.path()
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        headers_of(&self.headers, &self.head)
    }

    /// routeplane: the value of the first header named `name` (ignoring case), without
    /// making the `Header` list.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.get(name)
    }

    /// routeplane: the value of the first `Host` header, found when the head was read.
    pub fn host(&self) -> Option<&str> {
        self.head.known(Known::Host)
    }

    /// routeplane: the value of the first `k` header, found when the head was read.
    pub(crate) fn known_header(&self, k: Known) -> Option<&str> {
        self.head.known(k)
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        // routeplane: kept per connection (see `ConnState::remote`).
        self.conn.remote()
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// The main purpose of this function is to support websockets.
    /// If you detect that the request wants to use some kind of protocol upgrade, you can
    ///  call this function to obtain full control of the socket stream.
    ///
    /// If you call this on a non-websocket request, tiny-http will wait until this `Stream` object
    ///  is destroyed before continuing to read or write on the socket. Therefore you should always
    ///  destroy it as soon as possible.
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        use crate::util::CustomStream;

        response
            .raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                headers_of(&self.headers, &self.head),
                false,
                Some(protocol),
            )
            .ok(); // TODO: unused result

        self.response_writer.as_mut().unwrap().flush().ok(); // TODO: unused result

        let stream = CustomStream::new(self.extract_reader_impl(), self.extract_writer_impl());
        if let Some(sender) = self.notify_when_responded.take() {
            let stream = NotifyOnDrop {
                sender,
                inner: stream,
            };
            Box::new(stream) as Box<dyn ReadWrite + Send>
        } else {
            Box::new(stream) as Box<dyn ReadWrite + Send>
        }
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # extern crate rustc_serialize;
    /// # extern crate tiny_http;
    /// # use rustc_serialize::json::Json;
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # fn main() {
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "application/json" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    ///     let json: Json = content.parse().unwrap();
    /// }
    /// # }
    /// ```
    ///
    /// If the client sent a `Expect: 100-continue` header with the request, calling this
    ///  function will send back a `100 Continue` response.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.must_send_continue {
            let msg = Response::new_empty(StatusCode(100));
            msg.raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                headers_of(&self.headers, &self.head),
                true,
                None,
            )
            .ok();
            self.response_writer.as_mut().unwrap().flush().ok();
            self.must_send_continue = false;
        }

        self.unbuffer();
        self.data_reader.as_mut().unwrap()
    }

    /// routeplane: the whole body, when it was small enough to be read with the head
    /// (at most 1 KiB, no `Expect: 100-continue`) and no reader has been asked for yet;
    /// `None` otherwise, and the body is then read through `as_reader`.
    pub fn take_body(&mut self) -> Option<Vec<u8>> {
        self.buffered.take()
    }

    /// routeplane: puts a body kept whole behind the reader.
    fn unbuffer(&mut self) {
        if let Some(body) = self.buffered.take() {
            self.data_reader = Some(Box::new(Cursor::new(body)));
        }
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI.
    ///
    /// Note that the destruction of the `Writer` object may trigger
    /// some events. For exemple if a client has sent multiple requests and the requests
    /// have been processed in parallel, the destruction of a writer will trigger
    /// the writing of the next response.
    /// Therefore you should always destroy the `Writer` as soon as possible.
    #[inline]
    pub fn into_writer(mut self) -> ResponseWriter {
        // routeplane: a client that sent `Expect: 100-continue` and was never told to go
        // on has not sent its body: answered now (a 413 for a Content-Length over the
        // limit), the connection closes, instead of first waiting a second to drain a
        // body that comes only after the client's own expect timeout.
        if self.must_send_continue {
            self.conn.close();
        }
        let writer = self.extract_writer_impl();
        if let Some(sender) = self.notify_when_responded.take() {
            let writer = NotifyOnDrop {
                sender,
                inner: writer,
            };
            ResponseWriter::other(writer)
        } else {
            writer
        }
    }

    /// Extract the response `Writer` object from the Request, dropping this `Writer` has the same side effects
    /// as the object returned by `into_writer` above.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> ResponseWriter {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Extract the body `Reader` object from the Request.
    ///
    /// This may only be called once on a single request.
    fn extract_reader_impl(&mut self) -> Box<dyn Read + Send + 'static> {
        use std::mem;

        assert!(self.data_reader.is_some());
        self.unbuffer();

        let mut reader = None;
        mem::swap(&mut self.data_reader, &mut reader);
        reader.unwrap()
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let res = self.respond_impl(response);
        if let Some(sender) = self.notify_when_responded.take() {
            sender.send(()).unwrap();
        }
        res
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();

        let do_not_send_body = self.method == Method::Head;

        Self::ignore_client_closing_errors(response.raw_print(
            writer.by_ref(),
            self.http_version.clone(),
            self.headers(),
            do_not_send_body,
            None,
        ))?;

        Self::ignore_client_closing_errors(writer.flush())
    }

    /// routeplane: answers in HTTP `version` (`respond` answers in the request's own,
    /// which tiny_http refuses to speak when it is above 1.1).
    pub(crate) fn respond_as<R: Read>(
        mut self,
        response: Response<R>,
        version: HTTPVersion,
    ) -> Result<(), IoError> {
        self.http_version = version;
        self.respond(response)
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }

    pub(crate) fn with_notify_sender(mut self, sender: Sender<()>) -> Self {
        self.notify_when_responded = Some(sender);
        self
    }
}

/// routeplane: a request's `Header`s, made from its head the first time they are asked for.
fn headers_of<'a>(made: &'a OnceLock<Box<[Header]>>, head: &Head) -> &'a [Header] {
    made.get_or_init(|| head.headers().into_boxed_slice())
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method,
            self.url(),
            self.remote_addr()
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let _ = self.respond_impl(response); // ignoring any potential error
            if let Some(sender) = self.notify_when_responded.take() {
                sender.send(()).unwrap();
            }
        }
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn a_request_is_moved_as_one_copy_of_at_most_256_bytes() {
        // routeplane: a request is moved several times on its way to the handler (a
        // `memcpy` each); past 256 bytes each took ~60 instructions instead of ~29
        // (callgrind): its client address lives in the connection's state for this.
        assert!(std::mem::size_of::<Request>() <= 256);
    }

    #[test]
    fn a_request_tells_its_clients_address() {
        let addr: std::net::SocketAddr = "10.1.2.3:4567".parse().unwrap();
        let request: Request = crate::TestRequest::new().with_remote_addr(addr).into();
        assert_eq!(request.remote_addr(), Some(&addr));
    }

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
