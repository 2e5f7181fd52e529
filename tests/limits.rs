//! Limits on concurrency: hundreds of open streams are served with the defaults; past
//! `workers` a request waits briefly, then gets 503 with Retry-After naming the limit;
//! and a burst of kept-alive connections is served at once, none left waiting.

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::proxy::{read_response, try_get_status};
use crate::support::upstream::chat_answer;
use crate::support::{MockUpstream, Proxy, Reply};

#[test]
fn excess_requests_wait_briefly_then_get_503() {
    let up = MockUpstream::always(Reply::Hang(Duration::from_secs(2)));
    let yaml = format!(
        "workers: 1\nlimits:\n  queue_wait_secs: 0.2\ntimeouts:\n  first_byte_secs: 1.5\nproviders:\n  slow:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let p = std::sync::Arc::new(Proxy::start(&yaml));
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let p = std::sync::Arc::clone(&p);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100 * i));
                p.post(
                    "/v1/chat/completions",
                    json!({"model": "m", "messages": []}),
                )
            })
        })
        .collect();
    let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // The first holds the only worker until its upstream times out; the two behind it
    // waited longer than queue_wait_secs and are refused.
    let busy: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        busy.len(),
        2,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(busy[0].header("retry-after"), Some("1"));
    assert_eq!(
        busy[0].json()["error"]["message"],
        "busy: 1 request is running (the `workers` limit); retry shortly, or raise `workers` in ~/routeplane.yaml"
    );
    // The one that ran: its upstream never answered, a gateway timeout that says which
    // deadline ran out.
    let timed_out: Vec<_> = answers.iter().filter(|r| r.status == 504).collect();
    assert_eq!(timed_out.len(), 1);
    assert_eq!(
        timed_out[0].error_message(),
        "upstream `slow` failed: timed out waiting for the response (1.5 seconds, \
         `timeouts.first_byte_secs`)"
    );
}

#[test]
fn a_burst_of_kept_alive_connections_is_served_at_once() {
    // Each connection holds a thread for its whole kept-alive life. Opened together,
    // connections used to be queued behind idle threads that had not yet woken, and
    // then waited for another connection to close: with clients that keep theirs open,
    // until the client timeout. That race needs a server whose idle threads are few
    // (a fresh one), and lost about every other burst here: three fresh servers.
    let up = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let yaml = format!(
        "providers:\n  up:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for server in 0..3 {
        let p = Proxy::start(&yaml);
        let addr = p.url().trim_start_matches("http://").to_string();
        let mut conns: Vec<TcpStream> = (0..24)
            .map(|_| TcpStream::connect(&addr).expect("connect"))
            .collect();
        let started = Instant::now();
        for c in &mut conns {
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            c.write_all(request.as_bytes()).unwrap();
        }
        for (i, c) in conns.iter().enumerate() {
            // One whole answer each; the connection stays open, as a client's would.
            let answer = read_response(c.try_clone().unwrap(), started);
            assert_eq!(answer.status, 200, "server {server}, connection {i}");
            let body: serde_json::Value = serde_json::from_str(&answer.text()).unwrap();
            assert_eq!(body["choices"][0]["message"]["content"], "hi");
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "server {server}: {took:?}");
    }
}

/// The soft limit on open files of this process (the proxy inherits it).
fn open_files_limit() -> u64 {
    files_limits(std::process::id()).0
}

/// A process's soft and hard limits on open files, from /proc (Linux; unlimited
/// elsewhere).
fn files_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files"));
    let field = |n: usize| {
        line.and_then(|l| l.split_whitespace().nth(n))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (field(3), field(4))
}

#[test]
fn three_hundred_slow_streams_are_all_served_with_the_defaults() {
    // Each stream lasts about 5 s, longer than a request may wait for a worker
    // (limits.queue_wait_secs, 2 s): with 64 workers (the old default) 172 of the 300
    // got 503. Long enough that the streams overlap even when some connections wait a
    // second for the proxy's or the mock's accept queue (128 deep).
    const STREAMS: usize = 300;
    // This process holds a client and an upstream socket per stream, each read and
    // written through two handles (`try_clone`), and the tests beside it some more; the
    // proxy, another process, holds its own two files per stream.
    let files = open_files_limit();
    assert!(
        files >= 4 * STREAMS as u64 + 100,
        "this test holds {STREAMS} client and {STREAMS} upstream sockets in this process, \
         two handles each: raise the open-files limit (ulimit -n) to {} or more, now {files}",
        4 * STREAMS + 100
    );
    let up = MockUpstream::always(Reply::chat_stream(10, Duration::from_millis(500)));
    // The default configuration: a provider block and nothing else.
    let yaml = format!(
        "providers:\n  slow:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(STREAMS));
    let handles: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (client, barrier) = ((*p).clone(), std::sync::Arc::clone(&barrier));
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    barrier.wait();
                    let sent = Instant::now();
                    let s = client.stream(
                        "/v1/chat/completions",
                        json!({"model": "m", "stream": true, "messages": []}),
                    );
                    let first = s.chunks.first().map(|(t, _)| sent + *t);
                    let last = s.chunks.last().map(|(t, _)| sent + *t);
                    (s.status, s.complete, s.data(), first, last)
                })
                .expect("spawn a client thread")
        })
        .collect();
    let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let statuses: std::collections::BTreeMap<u16, usize> =
        answers.iter().fold(Default::default(), |mut m, a| {
            *m.entry(a.0).or_default() += 1;
            m
        });
    assert_eq!(statuses.get(&200), Some(&STREAMS), "statuses: {statuses:?}");
    for (i, (_, complete, data, _, _)) in answers.iter().enumerate() {
        assert!(*complete, "stream {i} did not end cleanly: {data:?}");
        assert_eq!(data.len(), 11, "stream {i}: {data:?}");
        assert_eq!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "stream {i}"
        );
    }
    // All were open at the same moment: every stream's first event came before any
    // stream's last one.
    let latest_first = answers.iter().filter_map(|a| a.3).max().unwrap();
    let earliest_last = answers.iter().filter_map(|a| a.4).min().unwrap();
    assert!(
        latest_first < earliest_last,
        "the streams did not overlap: the last to start began {:?} after the first to end",
        latest_first - earliest_last
    );
    assert_eq!(up.count(), STREAMS);
}

#[test]
fn past_the_workers_ceiling_a_request_gets_503_naming_the_key() {
    let up = MockUpstream::always(Reply::chat_stream(6, Duration::from_millis(500)));
    let yaml = format!(
        "workers: 4\nlimits:\n  queue_wait_secs: 0.3\nproviders:\n  slow:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    let body = json!({"model": "m", "stream": true, "messages": []});
    // Exactly the ceiling: all four are served.
    let running: Vec<_> = (0..4)
        .map(|_| {
            let (client, body) = ((*p).clone(), body.clone());
            std::thread::spawn(move || client.stream("/v1/chat/completions", body))
        })
        .collect();
    assert!(
        crate::support::wait_until(Duration::from_secs(10), || up.count() == 4),
        "the upstream saw {} of 4 streams",
        up.count()
    );
    // One more: it waits queue_wait_secs for a worker, then is refused.
    let refused = p.post("/v1/chat/completions", body.clone());
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("4 requests are running") && message.contains("raise `workers`"),
        "{message}"
    );
    for h in running {
        let s = h.join().unwrap();
        assert_eq!(s.status, 200);
        assert!(s.complete, "{:?}", s.data());
    }
    // The ceiling is free again.
    let again = p.stream("/v1/chat/completions", body);
    assert_eq!(again.status, 200);
    assert!(again.complete);
    assert_eq!(up.count(), 5, "the refused request never went upstream");
    p.wait_log("status=503 attempts=0 refused=workers");
}

#[test]
fn a_full_proxy_answers_health_checks_and_counts_what_it_refused() {
    let up = MockUpstream::always(Reply::chat_stream(12, Duration::from_millis(250)));
    let yaml = format!(
        "workers: 2\nlimits:\n  queue_wait_secs: 0.2\nproviders:\n  slow:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    let body = json!({"model": "m", "stream": true, "messages": []});
    let running: Vec<_> = (0..2)
        .map(|_| {
            let (client, body) = ((*p).clone(), body.clone());
            std::thread::spawn(move || client.stream("/v1/chat/completions", body))
        })
        .collect();
    assert!(
        crate::support::wait_until(Duration::from_secs(10), || up.count() == 2),
        "the upstream saw {} of 2 streams",
        up.count()
    );
    // Every worker is taken: a health check, a scrape and the status page still answer.
    for path in [
        "/health",
        "/metrics",
        "/status.json",
        "/routeplane/cooldowns",
        "/",
    ] {
        let r = p.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // A model request does not: it waits, then is refused.
    let refused = p.post("/v1/chat/completions", body.clone());
    assert_eq!(refused.status, 503, "{}", refused.body);
    for h in running {
        let s = h.join().unwrap();
        assert_eq!(s.status, 200);
        assert!(s.complete, "{:?}", s.data());
    }
    assert_eq!(up.count(), 2, "the refused request never went upstream");
    // Its log line has a request's fields, and says why.
    let line = p.wait_log("status=503");
    assert!(
        line.contains(
            "POST /v1/chat/completions model=- served_by=- status=503 attempts=0 refused=workers ttfb_ms="
        ),
        "{line}"
    );
    // It is counted, and in the ledger.
    let metrics = p.get("/metrics").body;
    let series = r#"routeplane_requests_total{provider="-",model="-",status="503",inbound="chat_completions"} 1"#;
    assert!(metrics.lines().any(|l| l == series), "{metrics}");
    let ledger = p.dir.path().join("state/routeplane/usage.jsonl");
    let mut refused_lines = Vec::new();
    let written = crate::support::wait_until(Duration::from_secs(5), || {
        refused_lines = std::fs::read_to_string(&ledger)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["status"] == 503)
            .collect();
        !refused_lines.is_empty()
    });
    assert!(written, "no 503 in the ledger");
    assert_eq!(refused_lines.len(), 1);
    assert_eq!(refused_lines[0]["attempts"], 0);
    assert_eq!(refused_lines[0]["served_by"], serde_json::Value::Null);
}

#[test]
fn an_open_files_limit_below_the_workers_is_named_at_start() {
    // 16384 workers need about 32 832 descriptors; the proxy raises its soft limit up to
    // its hard one, inherited from this process, so the note must appear exactly when
    // the hard limit is lower, and name what the soft one became.
    let up = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let yaml = format!(
        "workers: 16384\nproviders:\n  up:\n    api_base: {}\n    models: [m]\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    assert_eq!(
        p.post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": []})
        )
        .status,
        200
    );
    // Log lines reach stderr in batches, in order: once the request's own line is there,
    // a note written at start-up is there too (or never will be).
    p.wait_log("served_by=up:m");
    let (soft, hard) = files_limits(p.pid());
    let noted = p.log().into_iter().find(|l| l.contains("open-files limit"));
    if hard < 2 * 16384 + 64 {
        assert_eq!(soft, hard, "the soft limit was not raised to the hard one");
        let line = noted.expect("a note about the open-files limit");
        assert!(
            line.contains(&format!("({soft}, as far as this process may raise it)"))
                && line.contains("`workers` (16384)")
                && line.contains("ulimit -Hn"),
            "{line}"
        );
    } else {
        assert!(soft >= 2 * 16384 + 64, "the soft limit stayed at {soft}");
        assert_eq!(noted, None, "the limit ({hard}) is high enough");
    }
}

#[test]
fn a_low_soft_open_files_limit_is_raised_to_fit_the_workers() {
    // Shells start programs with a soft limit of 1024 (the hard one far higher): the
    // default 1 024 workers need about 2 112 files, so ~500 streams were all it held.
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let (_, hard) = files_limits(std::process::id());
    if hard < 2112 {
        eprintln!("skipped: the hard open-files limit ({hard}) is below what the test needs");
        return;
    }
    let up = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let p = Proxy::start_through(
        &["prlimit", "--nofile=256:"],
        &format!(
            "providers:\n  up:\n    api_base: {}\n    models: [m]\n",
            up.url()
        ),
    );
    let (soft, _) = files_limits(p.pid());
    assert!(
        soft >= 2 * 1024 + 64,
        "the soft limit stayed at {soft} for the default 1024 workers"
    );
    // Raised to what the workers need, not to whatever the hard limit allows.
    assert!(soft <= 4096, "the soft limit went to {soft}");
    assert!(!p.log().iter().any(|l| l.contains("open-files limit")));
}

/// The number of files `pid` has open, from /proc (Linux).
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_proxy_out_of_open_files_accepts_again_once_some_close() {
    // At the limit, tiny_http's accept thread panicked duplicating an accepted socket:
    // the listener was gone for good and every later client was refused.
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let up = MockUpstream::always(Reply::json(200, chat_answer("hi")));
    let p = Proxy::start(&format!(
        "providers:\n  up:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let ask = || {
        p.post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": []}),
        )
    };
    assert_eq!(ask().status, 200);
    // Each accepted connection took three files, so whether the one the accept loop
    // got last was also the last free one depended on the count: three limits in a row
    // meet every case.
    for limit in [40, 41, 42] {
        let limited = Command::new("prlimit")
            .args(["--pid", &p.pid().to_string(), &format!("--nofile={limit}:")])
            .status()
            .expect("run prlimit");
        assert!(limited.success(), "prlimit --nofile failed");
        // More idle connections than the proxy has files left: it runs out.
        let idle: Vec<TcpStream> = (0..60)
            .filter_map(|_| TcpStream::connect(&p.addr).ok())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut most = 0;
        // (Under tiny_http's old three files a connection, two could stay free.)
        while most + 2 < limit && Instant::now() < deadline {
            most = most.max(open_files(p.pid()));
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            most + 2 >= limit,
            "the proxy never ran out of files: at most {most} open, limit {limit}"
        );
        drop(idle);
        // Served again: the accept loop outlived the shortage.
        let deadline = Instant::now() + Duration::from_secs(10);
        while try_get_status(&p.addr, "/health") != Some(200) {
            assert!(
                Instant::now() < deadline,
                "the proxy stopped accepting after running out of files (limit {limit})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(ask().status, 200);
}

#[test]
fn an_open_stream_holds_two_files_the_clients_and_the_upstreams() {
    // The stock tiny_http duplicated each client socket twice more: four files a
    // stream, so a soft limit of 1024 held about 250 streams, not the 480 the
    // start-up note promised.
    const STREAMS: usize = 20;
    let up = MockUpstream::always(Reply::chat_stream(4, Duration::from_millis(500)));
    let p = Proxy::start(&format!(
        "providers:\n  up:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let before = open_files(p.pid());
    let open: Vec<TcpStream> = (0..STREAMS)
        .map(|_| {
            p.send_only(
                "/v1/chat/completions",
                json!({"model": "m", "stream": true, "messages": []}),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.count() < STREAMS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(up.count(), STREAMS);
    let during = open_files(p.pid());
    // A few spare for the idle upstream pool's bookkeeping and the log.
    assert!(
        during <= before + 2 * STREAMS + 4,
        "{STREAMS} open streams took {} files",
        during - before
    );
    drop(open);
}
