//! routeplane: a chunked request body that tells a body broken off from a finished one.
//!
//! `chunked_transfer::Decoder` returns `Ok(0)` when its source ends inside a chunk, the
//! same as after the last chunk, so a client that sent half a chunked body and closed
//! had the half handled as the whole request. It also turns a timeout while reading a
//! chunk's trailing CRLF into a generic decoding error.

use std::io::{ErrorKind, Read, Result as IoResult};

use chunked_transfer::Decoder;

use crate::util::{body_ended, ConnState};

pub(crate) struct ChunkedBody<R: Read> {
    decoder: Decoder<Watched<R>>,
    state: ConnState,
    /// The last chunk was read: the stream is at the next request.
    finished: bool,
}

/// The decoder's source, remembering how it ended.
struct Watched<R> {
    inner: R,
    eof: bool,
    /// The kind of the last read error, which the decoder may have replaced.
    error: Option<ErrorKind>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let result = self.inner.read(buf);
        match &result {
            Ok(0) if !buf.is_empty() => self.eof = true,
            Err(e) => self.error = Some(e.kind()),
            _ => {}
        }
        result
    }
}

impl<R: Read> ChunkedBody<R> {
    pub(crate) fn new(source: R, state: ConnState) -> ChunkedBody<R> {
        ChunkedBody {
            decoder: Decoder::new(Watched {
                inner: source,
                eof: false,
                error: None,
            }),
            state,
            finished: false,
        }
    }
}

impl<R: Read> Read for ChunkedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if buf.is_empty() || self.finished {
            return Ok(0);
        }
        let result = self.decoder.read(buf);
        let source = self.decoder.get_ref();
        match result {
            Ok(0) if source.eof => {
                self.state.close();
                Err(body_ended("last chunk"))
            }
            Ok(0) => {
                self.finished = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.state.close();
                if source.eof {
                    Err(body_ended("last chunk"))
                } else if let Some(kind) = source.error.filter(|k| *k != e.kind()) {
                    // A timeout stays a timeout, so the caller can answer 408.
                    Err(std::io::Error::new(kind, e))
                } else {
                    Err(e)
                }
            }
        }
    }
}

impl<R: Read> Drop for ChunkedBody<R> {
    fn drop(&mut self) {
        // An unread or half-read chunked body is not drained (its length is unknown):
        // the rest would be parsed as the next request, so the connection ends instead.
        if !self.finished {
            self.state.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkedBody;
    use crate::util::ConnState;
    use std::io::{ErrorKind, Read};

    fn read(wire: &[u8]) -> (std::io::Result<String>, bool) {
        let state = ConnState::new(None);
        let mut body = ChunkedBody::new(wire, state.clone());
        let mut out = String::new();
        let result = body.read_to_string(&mut out).map(|_| out);
        (result, state.closing())
    }

    #[test]
    fn a_whole_body_reads_and_keeps_the_connection() {
        let (body, closing) = read(b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\nGET / HTTP/1.1");
        assert_eq!(body.unwrap(), "hello");
        assert!(!closing);
    }

    #[test]
    fn a_body_cut_short_is_an_error_and_closes() {
        for wire in [&b"5\r\nhel"[..], b"3\r\nhel\r\n", b"3\r\nhel"] {
            let (body, closing) = read(wire);
            let err = body.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{wire:?}");
            assert_eq!(err.to_string(), "the body ended before its last chunk");
            assert!(closing);
        }
    }

    #[test]
    fn an_unread_body_closes_the_connection() {
        let state = ConnState::new(None);
        drop(ChunkedBody::new(
            &b"3\r\nhel\r\n0\r\n\r\n"[..],
            state.clone(),
        ));
        assert!(state.closing());
    }
}
