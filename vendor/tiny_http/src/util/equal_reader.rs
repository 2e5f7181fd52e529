use std::io::Read;
use std::io::Result as IoResult;
use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use crate::util::{body_ended, ConnState};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. If the limit is not reached
/// when the destructor is called, the remaining bytes will be read and
/// thrown away.
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: usize,
    last_read_signal: Sender<IoResult<()>>,
    // routeplane: for the drain's deadline, and to end the connection when the body
    // cannot be read to its end.
    state: ConnState,
}

impl<R> EqualReader<R>
where
    R: Read,
{
    pub(crate) fn new(
        reader: R,
        size: usize,
        state: ConnState,
    ) -> (EqualReader<R>, Receiver<IoResult<()>>) {
        let (tx, rx) = channel();

        let r = EqualReader {
            reader,
            size,
            last_read_signal: tx,
            state,
        };

        (r, rx)
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };
        if buf.is_empty() {
            return Ok(0);
        }

        match self.reader.read(buf) {
            // routeplane: the stock code passed this EOF on as the body's end, so a
            // client that sent half its body and closed had the half handled as the
            // whole request (Routeplane relayed it upstream).
            Ok(0) => {
                self.state.close();
                Err(body_ended("Content-Length"))
            }
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            Err(e) => {
                // Where the body stands on the socket is unknown now.
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.state.close();
                }
                Err(e)
            }
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read,
{
    fn drop(&mut self) {
        // routeplane: the stock code allocated `vec![0; remaining]` here, so one request
        // declaring `Content-Length: 1e18` aborted the whole process. Drain through a
        // fixed buffer, at most DRAIN_LIMIT bytes and for at most DRAIN_TIME (or the
        // client timeout, if shorter: a client trickling its body would otherwise hold
        // the thread for the socket timeout per read). Past either the connection is
        // closed, since the unread rest would be taken for the next request.
        const DRAIN_LIMIT: usize = 1024 * 1024;
        const DRAIN_TIME: Duration = Duration::from_secs(1);
        // Nothing left, or a read already failed and the connection is closing anyway.
        if self.size == 0 || self.state.closing() {
            return;
        }
        if self.size > DRAIN_LIMIT {
            self.state.close();
            self.last_read_signal
                .send(Err(std::io::Error::other(
                    "request body too large to drain",
                )))
                .ok();
            return;
        }
        let previous = self.state.deadline();
        self.state
            .set_deadline(Some(Instant::now() + self.state.at_most(DRAIN_TIME)));
        let mut buf = [0u8; 4096];
        while self.size > 0 {
            let want = self.size.min(buf.len());
            match self.reader.read(&mut buf[..want]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.state.close();
                    self.last_read_signal.send(Err(e)).ok();
                    break;
                }
                Ok(0) => {
                    self.state.close();
                    self.last_read_signal
                        .send(Err(body_ended("Content-Length")))
                        .ok();
                    break;
                }
                Ok(n) => self.size -= n,
            }
        }
        self.state.set_deadline(previous);
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use crate::util::ConnState;
    use std::io::Read;

    #[test]
    fn test_limit() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let (mut equal_reader, _) =
                EqualReader::new(org_reader.by_ref(), 5, ConnState::new(None));

            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    #[test]
    fn test_not_enough() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let (mut equal_reader, _) =
                EqualReader::new(org_reader.by_ref(), 5, ConnState::new(None));

            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    #[test]
    fn a_body_cut_short_is_an_error_and_closes() {
        let state = ConnState::new(None);
        let (mut reader, _) = EqualReader::new(&b"hello"[..], 11, state.clone());
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"hello");
        assert_eq!(err.to_string(), "the body ended before its Content-Length");
        assert!(state.closing());
    }
}
