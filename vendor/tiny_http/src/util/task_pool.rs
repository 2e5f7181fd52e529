use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full.
/// Any idle thread will automatically die after a few seconds.
pub struct TaskPool {
    sharing: Arc<Sharing>,
}

struct Sharing {
    // list of the tasks to be done by worker threads
    todo: Mutex<VecDeque<Box<dyn FnMut() + Send>>>,

    // condvar that will be notified whenever a task is added to `todo`
    condvar: Condvar,

    // number of total worker threads running
    active_tasks: AtomicUsize,

    // number of idle worker threads
    waiting_tasks: AtomicUsize,
}

/// Minimum number of active threads.
static MIN_THREADS: usize = 4;

/// routeplane: the stack of each connection's thread. A request runs on it (parsing,
/// translation, TLS to the upstream). Measured with Routeplane's debug build: its
/// hostile, protocol and auth tests (100 000 nested brackets included) fail with 96 KiB
/// and pass with 256 KiB; release builds use less. std's default is 2 MiB: only touched
/// pages cost memory, but a thousand open streams reserved 2 GiB of address space.
const STACK_SIZE: usize = 512 * 1024;

struct Registration<'a> {
    nb: &'a AtomicUsize,
}

impl<'a> Registration<'a> {
    fn new(nb: &'a AtomicUsize) -> Registration<'a> {
        nb.fetch_add(1, Ordering::Release);
        Registration { nb }
    }
}

impl<'a> Drop for Registration<'a> {
    fn drop(&mut self) {
        self.nb.fetch_sub(1, Ordering::Release);
    }
}

impl TaskPool {
    pub fn new() -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                todo: Mutex::new(VecDeque::new()),
                condvar: Condvar::new(),
                active_tasks: AtomicUsize::new(0),
                waiting_tasks: AtomicUsize::new(0),
            }),
        };

        for _ in 0..MIN_THREADS {
            pool.add_thread(None)
        }

        pool
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    pub fn spawn(&self, code: Box<dyn FnMut() + Send>) {
        let mut queue = self.sharing.todo.lock().unwrap();

        // routeplane: a waiting thread stays counted until it wakes, so in a burst of
        // connections the stock `waiting == 0` test queued several tasks for one idle
        // thread. A task is a connection's whole keep-alive life: the extra ones waited
        // until another connection closed (measured: a third of 32 new connections
        // stalled for the length of a benchmark run). Queue a task only while more
        // threads wait than tasks are already queued; otherwise start a thread.
        if self.sharing.waiting_tasks.load(Ordering::Acquire) <= queue.len() {
            self.add_thread(Some(code));
        } else {
            queue.push_back(code);
            self.sharing.condvar.notify_one();
        }
    }

    fn add_thread(&self, initial_fn: Option<Box<dyn FnMut() + Send>>) {
        let sharing = self.sharing.clone();

        // routeplane: a named thread with a bounded stack; when the system refuses a
        // thread (memory, `ulimit -u`), the task (a connection) is dropped, closing it,
        // instead of `thread::spawn` panicking and ending the accept loop for good.
        // `ROUTEPLANE_TEST_SPAWN_FAILS=conn` makes the start fail, as at the limit.
        let closes = initial_fn.is_some();
        if crate::refused("conn") {
            return refused(closes, std::io::Error::from_raw_os_error(11)); // EAGAIN
        }
        let spawned = thread::Builder::new()
            .name("conn".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let sharing = sharing;
                let _active_guard = Registration::new(&sharing.active_tasks);

                if let Some(mut f) = initial_fn {
                    f();
                }

                loop {
                    let mut task: Box<dyn FnMut() + Send> = {
                        let mut todo = sharing.todo.lock().unwrap();

                        let task;
                        loop {
                            if let Some(poped_task) = todo.pop_front() {
                                task = poped_task;
                                break;
                            }
                            let _waiting_guard = Registration::new(&sharing.waiting_tasks);

                            let received =
                                if sharing.active_tasks.load(Ordering::Acquire) <= MIN_THREADS {
                                    todo = sharing.condvar.wait(todo).unwrap();
                                    true
                                } else {
                                    let (new_lock, waitres) = sharing
                                        .condvar
                                        .wait_timeout(todo, Duration::from_millis(5000))
                                        .unwrap();
                                    todo = new_lock;
                                    !waitres.timed_out()
                                };

                            if !received && todo.is_empty() {
                                return;
                            }
                        }

                        task
                    };

                    task();
                }
            });
        if let Err(e) = spawned {
            refused(closes, e);
        }
    }
}

/// routeplane: a thread refused, said where the embedding server logs, and only when a
/// connection is closed for it (the pool's idle threads are no one's).
fn refused(closes: bool, e: std::io::Error) {
    if closes {
        crate::report(format_args!(
            "connection closed: no thread could be started for it ({}); raise `ulimit -u`",
            e
        ));
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing
            .active_tasks
            .store(999_999_999, Ordering::Release);
        self.sharing.condvar.notify_all();
    }
}
