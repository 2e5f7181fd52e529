//! Lines that many threads append and one thread writes: a batch per `write(2)`.
//!
//! A request ends with two lines, its log line and its usage-ledger line. Written one
//! `write(2)` each, they were two of the six system calls a request cost at 32
//! clients; gathered for [`Batch::new`]'s `every` (10 ms for both), hundreds of lines
//! go out in one. What that costs: a line reaches its file up to `every` later, and the
//! lines still gathering are lost if the process is killed with SIGKILL (a normal stop
//! flushes them). Lines are written in the order they were appended.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// Past this many gathered bytes the appender writes them itself: a sink that stalls
/// (a full pipe on stderr) holds back its appenders, as a direct write would, instead
/// of growing the batch without bound.
const MOST: usize = 1024 * 1024;

/// Gathers lines and writes them through its sink from a thread of its own.
pub struct Batch {
    gathered: Mutex<Vec<u8>>,
    /// The writer waits here for a first line.
    first: Condvar,
    /// Whoever holds this writes: holding it while taking the gathered lines keeps
    /// batches in order.
    sink: Mutex<Sink>,
}

/// Writes one batch.
type Write = Box<dyn FnMut(&[u8]) + Send>;

/// Where batches go, and the spare buffer that takes turns with the gathering one.
struct Sink {
    write: Write,
    spare: Vec<u8>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("gathered", &lock(&self.gathered).len())
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// Starts a writer thread named `name` that writes gathered lines through `write`
    /// at most `every` after the first of them arrived.
    pub fn new(
        name: &str,
        every: Duration,
        write: impl FnMut(&[u8]) + Send + 'static,
    ) -> std::io::Result<Arc<Batch>> {
        let batch = Arc::new(Batch {
            gathered: Mutex::new(Vec::new()),
            first: Condvar::new(),
            sink: Mutex::new(Sink {
                write: Box::new(write),
                spare: Vec::new(),
            }),
        });
        let writer = Arc::clone(&batch);
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || writer.write_forever(every))?;
        Ok(batch)
    }

    /// Appends one line (its newline included).
    pub fn push(&self, line: &[u8]) {
        let mut gathered = lock(&self.gathered);
        let was_empty = gathered.is_empty();
        gathered.extend_from_slice(line);
        let full = gathered.len() >= MOST;
        drop(gathered);
        if full {
            self.flush();
        } else if was_empty {
            // Only the first line of a batch wakes the writer: a wake is a system call.
            self.first.notify_one();
        }
    }

    /// Writes every line appended so far before returning.
    pub fn flush(&self) {
        let mut sink = lock(&self.sink);
        let Sink { write, spare } = &mut *sink;
        std::mem::swap(&mut *lock(&self.gathered), spare);
        if !spare.is_empty() {
            write(spare);
            spare.clear();
        }
        if spare.capacity() > MOST {
            spare.shrink_to(64 * 1024);
        }
    }

    fn write_forever(&self, every: Duration) {
        loop {
            let mut gathered = lock(&self.gathered);
            while gathered.is_empty() {
                gathered = self
                    .first
                    .wait(gathered)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            drop(gathered);
            thread::sleep(every);
            self.flush();
        }
    }
}

/// A poisoned lock still holds whole lines: a panic elsewhere does not stop the log.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Every write the sink was given, in order.
    type Writes = Arc<Mutex<Vec<Vec<u8>>>>;

    fn collecting(every: Duration) -> (Arc<Batch>, Writes) {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&writes);
        let batch = Batch::new("test-batch", every, move |bytes| {
            seen.lock().unwrap().push(bytes.to_vec())
        })
        .unwrap();
        (batch, writes)
    }

    #[test]
    fn lines_appended_together_go_out_in_one_write_in_order() {
        let (batch, writes) = collecting(Duration::from_millis(200));
        for i in 0..50 {
            batch.push(format!("line {i}\n").as_bytes());
        }
        batch.flush();
        let writes = writes.lock().unwrap();
        assert_eq!(writes.len(), 1, "one write for the 50 lines");
        let expected: String = (0..50).map(|i| format!("line {i}\n")).collect();
        assert_eq!(writes[0], expected.as_bytes());
    }

    #[test]
    fn a_line_is_written_by_the_thread_without_a_flush() {
        let (batch, writes) = collecting(Duration::from_millis(5));
        batch.push(b"alone\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        while writes.lock().unwrap().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(*writes.lock().unwrap(), vec![b"alone\n".to_vec()]);
    }

    #[test]
    fn an_appender_past_the_limit_writes_itself() {
        let (batch, writes) = collecting(Duration::from_secs(3600));
        let line = vec![b'x'; MOST / 4];
        for _ in 0..4 {
            batch.push(&line);
        }
        // The writer thread sleeps an hour after the first line: this write was the
        // fourth appender's own.
        assert_eq!(writes.lock().unwrap().len(), 1);
        assert_eq!(writes.lock().unwrap()[0].len(), MOST);
    }
}
