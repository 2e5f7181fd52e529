//! Lines that many threads append and one thread writes: a batch per `write(2)`.
//!
//! A request ends with two lines, its log line and its usage-ledger line. Written one
//! `write(2)` each, they were two of the six system calls a request cost at 32
//! clients; gathered for [`every`] (10 ms), hundreds of lines go out in one. What that
//! costs: a line reaches its file up to `every` later (half as long again when no line
//! follows it), and the lines still gathering are lost if the process is killed with
//! SIGKILL (a normal stop flushes them).
//!
//! A batch writes to any number of sinks, each line to the one it names: the log's
//! stderr and the ledger's file share one batch, [`lines`], so a request hands both
//! its lines to one buffer, and one writer thread serves the process.
//!
//! Each thread appends to a buffer of its own, which the writer empties: with one
//! buffer for all, behind one lock, a worker preempted while holding it held up every
//! other (futex waits on 1 request in 100 at 32 clients on 2 cores, the latency's 99th
//! percentile); with a line handed over in an allocation of its own, the writer freed
//! it into the appender's heap arena, whose lock the appender then waited for. Lines
//! are numbered as they are appended and each sink's are written in that order; one
//! thread's lines always in its order, and two appended at the same instant by two
//! threads may land in two batches in either order. The writer swaps each thread's
//! buffer for an empty one it keeps for that thread, then copies each line once, into
//! its sink's write, merging the threads' lines by number: no thread waits on a copy,
//! and the writer grows none of an appender's allocations, nor frees one while it lives.
//!
//! Under traffic the writer is woken by the line that finds its batch due, not by a
//! timer of its own: Linux charges a timer's wake-up to whichever thread it interrupts,
//! often the upstream's, and a thread seen to wake two different threads loses the
//! scheduler's pull onto its waker's core (`wake_wide`): with a timer every 10 ms per
//! batch, the proxy-upstream pairs were split across 2 cores on half the requests
//! (bench/results.md, issue 16 session 13). The writer's own timer, half as long again,
//! covers a batch that no later line comes to.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// How long lines gather before one write.
const EVERY: Duration = Duration::from_millis(10);

/// Past this many waiting bytes the appender writes them itself: a sink that stalls
/// (a full pipe on stderr) holds back its appenders, as a direct write would, instead
/// of growing the batch without bound.
const MOST: usize = 1024 * 1024;

/// `due_at` while the writer waits for no batch, or once a line told it its batch is due.
const NOT_DUE: u64 = u64::MAX;

/// How long lines gather: `EVERY`, unless the test hook `ROUTEPLANE_TEST_BATCH_MS`
/// sets another (the tests prove that a stop writes lines still gathering by making
/// them gather for minutes).
pub fn every() -> Duration {
    std::env::var("ROUTEPLANE_TEST_BATCH_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(EVERY, Duration::from_millis)
}

/// The process's batch, started on first use: the log and the ledger write through it.
/// `None` if its writer thread could not start; then each line is a write of its own.
pub fn lines() -> Option<&'static Batch> {
    static LINES: OnceLock<Option<Arc<Batch>>> = OnceLock::new();
    LINES
        .get_or_init(|| Batch::new("lines", every()).ok())
        .as_deref()
}

/// Gathers lines and writes each to its sink from a thread of its own.
pub struct Batch {
    /// Tells this batch's buffers from another's in a thread's list.
    id: usize,
    /// The next line's number.
    numbered: AtomicU64,
    /// Bytes appended and not yet written.
    waiting: AtomicUsize,
    /// Woken by the line that finds nothing waiting, and by the one that finds the
    /// batch due.
    writer: OnceLock<Thread>,
    /// When the waiting batch is due, in nanoseconds since `epoch`; `NOT_DUE` while
    /// the writer is not waiting for one, and once the line that found it due took it
    /// (so that one line wakes the writer).
    due_at: AtomicU64,
    /// What `due_at` counts from.
    epoch: Instant,
    /// A thread adds its buffer here on its first line, for the writer to take.
    buffers: Mutex<Vec<Arc<Mutex<Lines>>>>,
    /// Whoever holds this writes: holding it while taking the lines keeps batches in order.
    out: Mutex<Out>,
}

/// Where a line goes: made by [`Batch::add_sink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sink(usize);

/// One thread's lines since the writer last took them.
#[derive(Default)]
struct Lines {
    text: Vec<u8>,
    /// Each line's sink, its number, and where it ends in `text`.
    ends: Vec<(Sink, u64, usize)>,
}

/// Writes one batch of one sink's lines.
type Write = Box<dyn FnMut(&[u8]) + Send>;

/// The sinks, and the buffers a batch is put together in (kept between batches).
struct Out {
    /// By `Sink`: its write (`None` once removed) and its lines of the batch, in
    /// number order.
    sinks: Vec<(Option<Write>, Vec<u8>)>,
    /// Every appending thread's buffer, and the one swapped with it: the lines the
    /// writer took from it, emptied once written.
    buffers: Vec<(Arc<Mutex<Lines>>, Lines)>,
    /// The merge's next line of each thread with lines left: its number, its
    /// thread's place in `buffers`, its place in the thread's lines.
    next: BinaryHeap<Reverse<(u64, usize, usize)>>,
}

thread_local! {
    /// This thread's buffer in each batch it appended to, by batch id.
    static MINE: RefCell<Vec<(usize, Arc<Mutex<Lines>>)>> = const { RefCell::new(Vec::new()) };
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// Starts a writer thread named `name` that writes gathered lines `every` after
    /// the first of them arrived (up to half as long again when no line follows it).
    pub fn new(name: &str, every: Duration) -> std::io::Result<Arc<Batch>> {
        static IDS: AtomicUsize = AtomicUsize::new(0);
        let batch = Arc::new(Batch {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            numbered: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            writer: OnceLock::new(),
            due_at: AtomicU64::new(NOT_DUE),
            epoch: Instant::now(),
            buffers: Mutex::new(Vec::new()),
            out: Mutex::new(Out {
                sinks: Vec::new(),
                buffers: Vec::new(),
                next: BinaryHeap::new(),
            }),
        });
        let writer = Arc::clone(&batch);
        let thread = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || writer.write_forever(every))?;
        // Before anyone can append: a line appended with no one to wake would wait for
        // the next one.
        let _ = batch.writer.set(thread.thread().clone());
        Ok(batch)
    }

    /// Adds a sink: each batch's lines for it go to `write`, in one call.
    pub fn add_sink(&self, write: impl FnMut(&[u8]) + Send + 'static) -> Sink {
        let mut out = lock(&self.out);
        out.sinks.push((Some(Box::new(write)), Vec::new()));
        Sink(out.sinks.len() - 1)
    }

    /// Writes the sink's lines, then drops it; lines later pushed to it are dropped.
    pub fn remove_sink(&self, sink: Sink) {
        self.flush();
        if let Some((write, _)) = lock(&self.out).sinks.get_mut(sink.0) {
            *write = None;
        }
    }

    /// Appends one line (its newline included) for `sink`.
    pub fn push(&self, sink: Sink, line: &[u8]) {
        self.push_lines(line, &[(sink, line.len())], None);
    }

    /// Appends lines that lie back to back in `text`, each given as its sink and where
    /// it ends in `text`, in one hand-over: a request's log line and ledger line take
    /// one lock, one copy and one look at the clock, not two of each (~250
    /// instructions, callgrind). `now` is the time when the caller has just read the
    /// clock (a look is ~90 instructions).
    pub fn push_lines(&self, text: &[u8], ends: &[(Sink, usize)], now: Option<Instant>) {
        // Counted before it is appended: a write never takes away more than was counted.
        let before = self.waiting.fetch_add(text.len(), Ordering::AcqRel);
        let appended = MINE.try_with(|mine| {
            let mut mine = mine.borrow_mut();
            let at = match mine.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => self.add_buffer(&mut mine),
            };
            // Numbered under this thread's lock: the writer takes a line with its number.
            let mut lines = lock(&mine[at].1);
            let first = self
                .numbered
                .fetch_add(ends.len() as u64, Ordering::Relaxed);
            let start = lines.text.len();
            lines.text.extend_from_slice(text);
            for (n, &(sink, end)) in (first..).zip(ends) {
                lines.ends.push((sink, n, start + end));
            }
        });
        if appended.is_err() {
            self.push_alone(text, ends);
            return;
        }
        if before + text.len() >= MOST {
            self.flush();
        } else if before == 0 || self.take_due(now) {
            // Only the first line of a batch wakes the writer, and the first to find it
            // due: a wake is a system call.
            if let Some(writer) = self.writer.get() {
                writer.unpark();
            }
        }
    }

    /// Adds this thread's buffer for this batch to `mine` (its first line): its place.
    #[cold]
    #[inline(never)]
    fn add_buffer(&self, mine: &mut Vec<(usize, Arc<Mutex<Lines>>)>) -> usize {
        let buffer = Arc::new(Mutex::new(Lines::default()));
        lock(&self.buffers).push(Arc::clone(&buffer));
        mine.push((self.id, buffer));
        mine.len() - 1
    }

    /// Writes lines of [`Batch::push_lines`] each alone: the thread is exiting and its
    /// buffers are gone.
    #[cold]
    #[inline(never)]
    fn push_alone(&self, text: &[u8], ends: &[(Sink, usize)]) {
        self.waiting.fetch_sub(text.len(), Ordering::AcqRel);
        let mut from = 0;
        for &(sink, end) in ends {
            self.write_alone(sink, &text[from..end]);
            from = end;
        }
    }

    /// True for the one line that finds the waiting batch due: it takes the due time.
    fn take_due(&self, now: Option<Instant>) -> bool {
        let due_at = self.due_at.load(Ordering::Acquire);
        due_at != NOT_DUE
            && (now.unwrap_or_else(Instant::now))
                .saturating_duration_since(self.epoch)
                .as_nanos()
                >= u128::from(due_at)
            && self
                .due_at
                .compare_exchange(due_at, NOT_DUE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Writes every line appended so far, to every sink, before returning.
    pub fn flush(&self) {
        let mut out = lock(&self.out);
        let Out {
            sinks,
            buffers,
            next,
        } = &mut *out;
        buffers.extend(lock(&self.buffers).drain(..).map(|b| (b, Lines::default())));
        for (buffer, taken) in buffers.iter_mut() {
            std::mem::swap(&mut *lock(buffer), taken);
        }
        // Each thread's lines are in number order: merged by the first line each has left.
        for (i, (_, taken)) in buffers.iter().enumerate() {
            if let Some(&(_, n, _)) = taken.ends.first() {
                next.push(Reverse((n, i, 0)));
            }
        }
        while let Some(Reverse((_, i, mut at))) = next.pop() {
            let taken = &buffers[i].1;
            let other = next.peek().map_or(u64::MAX, |Reverse((n, ..))| *n);
            // This thread's lines, up to one another thread numbered before them.
            loop {
                let (sink, _, end) = taken.ends[at];
                let from = at.checked_sub(1).map_or(0, |before| taken.ends[before].2);
                // Lines of a removed sink are dropped.
                if let Some((Some(_), lines)) = sinks.get_mut(sink.0) {
                    lines.extend_from_slice(&taken.text[from..end]);
                }
                at += 1;
                match taken.ends.get(at) {
                    Some(&(_, n, _)) if n < other => {}
                    Some(&(_, n, _)) => {
                        next.push(Reverse((n, i, at)));
                        break;
                    }
                    None => break,
                }
            }
        }
        for (write, lines) in sinks.iter_mut() {
            if let Some(write) = write
                && !lines.is_empty()
            {
                write(lines);
            }
            lines.clear();
            if lines.capacity() > MOST {
                lines.shrink_to(64 * 1024);
            }
        }
        // Dropped lines are counted off all the same.
        let mut written = 0;
        for (_, taken) in buffers.iter_mut() {
            written += taken.text.len();
            taken.text.clear();
            taken.ends.clear();
        }
        self.waiting.fetch_sub(written, Ordering::AcqRel);
        // A thread that has ended left its buffer here alone: dropped once empty. It
        // may have appended again after its buffer was swapped above, and ended since:
        // those lines wait for the next batch, not lost with the buffer.
        buffers.retain(|(b, _)| Arc::strong_count(b) > 1 || !lock(b).ends.is_empty());
    }

    /// Writes one line, after every line appended before it.
    fn write_alone(&self, sink: Sink, line: &[u8]) {
        self.flush();
        if let Some((Some(write), _)) = lock(&self.out).sinks.get_mut(sink.0) {
            write(line);
        }
    }

    fn write_forever(&self, every: Duration) {
        loop {
            // A wake may come early or for a line already written: look again.
            while self.waiting.load(Ordering::Acquire) == 0 {
                thread::park();
            }
            let start = Instant::now();
            let due_at = (start + every).duration_since(self.epoch).as_nanos();
            self.due_at.store(
                u64::try_from(due_at).unwrap_or(NOT_DUE - 1),
                Ordering::Release,
            );
            // A later line takes the due time once the batch is due, and wakes this
            // thread; its own timer runs half as long again, for a batch no line follows.
            let timeout = start + every + every / 2;
            while self.due_at.load(Ordering::Acquire) != NOT_DUE {
                let now = Instant::now();
                if now >= timeout {
                    break;
                }
                thread::park_timeout(timeout - now);
            }
            self.due_at.store(NOT_DUE, Ordering::Release);
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Every write the sink was given, in order.
    type Writes = Arc<Mutex<Vec<Vec<u8>>>>;

    /// A sink that keeps every write it is given.
    fn keeping(batch: &Batch) -> (Sink, Writes) {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&writes);
        let sink = batch.add_sink(move |bytes| seen.lock().unwrap().push(bytes.to_vec()));
        (sink, writes)
    }

    fn collecting(every: Duration) -> (Arc<Batch>, Sink, Writes) {
        let batch = Batch::new("test-batch", every).unwrap();
        let (sink, writes) = keeping(&batch);
        (batch, sink, writes)
    }

    #[test]
    fn lines_appended_together_go_out_in_one_write_in_order() {
        let (batch, sink, writes) = collecting(Duration::from_millis(200));
        for i in 0..50 {
            batch.push(sink, format!("line {i}\n").as_bytes());
        }
        batch.flush();
        let writes = writes.lock().unwrap();
        assert_eq!(writes.len(), 1, "one write for the 50 lines");
        let expected: String = (0..50).map(|i| format!("line {i}\n")).collect();
        assert_eq!(writes[0], expected.as_bytes());
    }

    #[test]
    fn each_sink_gets_its_own_lines_in_one_write_in_order() {
        let batch = Batch::new("test-batch", Duration::from_secs(3600)).unwrap();
        let (log, logged) = keeping(&batch);
        let (ledger, ledgered) = keeping(&batch);
        for i in 0..20 {
            batch.push(log, format!("log {i}\n").as_bytes());
            batch.push(ledger, format!("ledger {i}\n").as_bytes());
        }
        batch.flush();
        let expected = |name| (0..20).map(|i| format!("{name} {i}\n")).collect::<String>();
        assert_eq!(*logged.lock().unwrap(), vec![expected("log").into_bytes()]);
        assert_eq!(
            *ledgered.lock().unwrap(),
            vec![expected("ledger").into_bytes()]
        );
    }

    #[test]
    fn lines_handed_over_together_each_reach_their_sink_in_order() {
        let batch = Batch::new("test-batch", Duration::from_secs(3600)).unwrap();
        let (log, logged) = keeping(&batch);
        let (ledger, ledgered) = keeping(&batch);
        batch.push(log, b"log 0\n");
        batch.push_lines(b"log 1\nledger 1\n", &[(log, 6), (ledger, 15)], None);
        batch.push(ledger, b"ledger 2\n");
        batch.push_lines(b"log 3\n", &[(log, 6)], Some(Instant::now()));
        batch.flush();
        assert_eq!(
            *logged.lock().unwrap(),
            vec![b"log 0\nlog 1\nlog 3\n".to_vec()]
        );
        assert_eq!(
            *ledgered.lock().unwrap(),
            vec![b"ledger 1\nledger 2\n".to_vec()]
        );
        assert_eq!(batch.waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_removed_sink_gets_its_lines_and_no_more() {
        let batch = Batch::new("test-batch", Duration::from_secs(3600)).unwrap();
        let (gone, writes) = keeping(&batch);
        let (kept, kept_writes) = keeping(&batch);
        batch.push(gone, b"before\n");
        batch.remove_sink(gone);
        batch.push(gone, b"after\n");
        batch.push(kept, b"kept\n");
        batch.flush();
        assert_eq!(writes.lock().unwrap().concat(), b"before\n");
        assert_eq!(kept_writes.lock().unwrap().concat(), b"kept\n");
        assert_eq!(
            batch.waiting.load(Ordering::Relaxed),
            0,
            "the dropped line is counted off too"
        );
    }

    #[test]
    fn a_line_is_written_by_the_thread_without_a_flush() {
        let (batch, sink, writes) = collecting(Duration::from_millis(5));
        batch.push(sink, b"alone\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        while writes.lock().unwrap().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(*writes.lock().unwrap(), vec![b"alone\n".to_vec()]);
    }

    #[test]
    fn no_line_is_left_behind_when_the_writer_goes_idle() {
        // A batch a millisecond long and a sink that takes a millisecond to write: the
        // second line of each pair arrives while the first is being written, just
        // before the writer goes idle, and nothing follows it. It must still be
        // written, with no flush to help.
        let every = Duration::from_millis(1);
        let batch = Batch::new("test-batch", every).unwrap();
        let writes: Writes = Arc::default();
        let seen = Arc::clone(&writes);
        let sink = batch.add_sink(move |bytes| {
            thread::sleep(every);
            seen.lock().unwrap().push(bytes.to_vec());
        });
        let written = || writes.lock().unwrap().concat().len();
        for pair in 1..=20 {
            batch.push(sink, b"a\n");
            // Past the writer's own timer (1.5 ms), into the write.
            thread::sleep(every * 2);
            batch.push(sink, b"b\n");
            let deadline = Instant::now() + Duration::from_secs(2);
            while written() < pair * 4 && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(written(), pair * 4, "a line left behind in pair {pair}");
        }
    }

    #[test]
    fn a_line_that_finds_its_batch_due_wakes_the_writer() {
        let every = Duration::from_secs(1);
        let (batch, sink, writes) = collecting(every);
        batch.push(sink, b"first\n");
        // Due a second after the writer woke for the first line; its own timer has a
        // quarter of a second to go: this line tells it instead. (A quarter of a second
        // of slack each way, for a busy machine.)
        thread::sleep(every + Duration::from_millis(250));
        batch.push(sink, b"second\n");
        assert_eq!(
            batch.due_at.load(Ordering::Acquire),
            NOT_DUE,
            "the due batch was not told"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while writes.lock().unwrap().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(writes.lock().unwrap().concat(), b"first\nsecond\n");
    }

    #[test]
    fn an_appender_past_the_limit_writes_itself() {
        let (batch, sink, writes) = collecting(Duration::from_secs(3600));
        let line = vec![b'x'; MOST / 4];
        for _ in 0..4 {
            batch.push(sink, &line);
        }
        // The writer thread sleeps an hour after the first line: this write was the
        // fourth appender's own.
        assert_eq!(writes.lock().unwrap().len(), 1);
        assert_eq!(writes.lock().unwrap()[0].len(), MOST);
    }

    #[test]
    fn lines_appended_by_two_threads_in_turn_are_written_in_that_order() {
        let (batch, sink, writes) = collecting(Duration::from_secs(3600));
        let (to_b, b_turn) = std::sync::mpsc::channel::<usize>();
        let (to_a, a_turn) = std::sync::mpsc::channel::<usize>();
        thread::scope(|s| {
            let batch_b = &batch;
            s.spawn(move || {
                while let Ok(i) = b_turn.recv() {
                    batch_b.push(sink, format!("{i}\n").as_bytes());
                    to_a.send(i + 1).unwrap();
                }
            });
            // This thread appends the odd lines, the other the even ones, taking turns:
            // each thread's buffer holds every other line.
            let mut i = 1;
            while i <= 8 {
                batch.push(sink, format!("{i}\n").as_bytes());
                to_b.send(i + 1).unwrap();
                i = a_turn.recv().unwrap();
            }
            drop(to_b);
        });
        batch.flush();
        assert_eq!(writes.lock().unwrap().concat(), b"1\n2\n3\n4\n5\n6\n7\n8\n");
    }

    #[test]
    fn lines_of_many_threads_in_one_batch_are_written_in_the_order_appended() {
        let batch = Batch::new("test-batch", Duration::from_secs(3600)).unwrap();
        let (even, evens) = keeping(&batch);
        let (odd, odds) = keeping(&batch);
        // Three threads take turns in runs of 1 to 4 lines, lines to the two sinks by turn.
        let owner: Vec<usize> = (0..300).flat_map(|r| vec![r % 3; 1 + r % 4]).collect();
        let next = AtomicUsize::new(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        thread::scope(|s| {
            for me in 0..3 {
                let (owner, next, batch) = (&owner, &next, &batch);
                s.spawn(move || {
                    loop {
                        let i = next.load(Ordering::Acquire);
                        if i == owner.len() || Instant::now() > deadline {
                            break;
                        } else if owner[i] == me {
                            let sink = if i % 2 == 0 { even } else { odd };
                            batch.push(sink, format!("{i}\n").as_bytes());
                            next.store(i + 1, Ordering::Release);
                        } else {
                            thread::yield_now();
                        }
                    }
                });
            }
        });
        batch.flush();
        let expected = |first| {
            (first..owner.len())
                .step_by(2)
                .map(|i| format!("{i}\n"))
                .collect::<String>()
        };
        assert_eq!(*evens.lock().unwrap(), vec![expected(0).into_bytes()]);
        assert_eq!(*odds.lock().unwrap(), vec![expected(1).into_bytes()]);
    }

    #[test]
    fn lines_from_many_threads_all_arrive_each_threads_in_order() {
        let (batch, sink, writes) = collecting(Duration::from_millis(1));
        thread::scope(|s| {
            for t in 0..8 {
                let batch = &batch;
                s.spawn(move || {
                    for i in 0..500 {
                        batch.push(sink, format!("{t} {i}\n").as_bytes());
                    }
                });
            }
        });
        batch.flush();
        let all: Vec<u8> = writes.lock().unwrap().concat();
        let text = String::from_utf8(all).unwrap();
        let mut next = [0; 8];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let t: usize = t.parse().unwrap();
            assert_eq!(
                i.parse::<usize>().unwrap(),
                next[t],
                "thread {t} out of order"
            );
            next[t] += 1;
        }
        assert_eq!(next, [500; 8], "every line, once");
        assert_eq!(batch.waiting.load(Ordering::Relaxed), 0);
    }
}
