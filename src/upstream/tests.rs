//! The client against scripted upstreams on 127.0.0.1: framing, pooling, deadlines,
//! TLS, and the reading of retry times.

use super::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An upstream on 127.0.0.1 that answers the requests on each connection with the
/// next scripted answers, each written in pieces with `pause` between them, then
/// closes; returns its URL and the count of connections accepted.
fn upstream(script: Vec<Vec<Vec<&'static str>>>, pause: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/x", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for (conn, answers) in listener.incoming().zip(script) {
            let conn = conn.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut out = conn;
                for answer in answers {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    for (i, piece) in answer.iter().enumerate() {
                        if i > 0 {
                            std::thread::sleep(pause);
                        }
                        if out.write_all(piece.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, accepted)
}

fn client() -> Client {
    Client::with(Duration::from_secs(2), Duration::from_secs(5), 4)
}

#[test]
fn chunked_answers_split_anywhere_arrive_whole_and_the_connection_is_reused() {
    let chunked = vec![
        "HTTP/1.1 200 OK\r\nContent-Type: Text/Plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "lo\r\n6;ext=1\r\n world\r",
        "\n0\r\n",
        "Trailer: x\r\n\r\n",
    ];
    let sized = vec!["HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Request-Id: r1\r\n\r\nok"];
    let (url, accepted) = upstream(vec![vec![chunked, sized]], Duration::from_millis(20));
    let c = client();
    let first = c.post(&url, &[], b"{}", KEEP_WAITING).unwrap();
    assert_eq!((first.status, &*first.content_type), (200, "text/plain"));
    assert_eq!(first.read_all(100, KEEP_WAITING).unwrap(), b"hello world");
    let second = c.post(&url, &[], b"{}", KEEP_WAITING).unwrap();
    assert_eq!(second.status, 201);
    assert_eq!(
        second.headers,
        [("x-request-id".to_string(), "r1".to_string())]
    );
    assert_eq!(second.read_all(100, KEEP_WAITING).unwrap(), b"ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn a_pooled_connection_the_upstream_closed_is_replaced_unseen() {
    let one = || vec![vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"]];
    let (url, accepted) = upstream(vec![one(), one()], Duration::ZERO);
    let c = client();
    assert_eq!(
        c.post(&url, &[], b"1", KEEP_WAITING)
            .unwrap()
            .read_all(10, KEEP_WAITING)
            .unwrap(),
        b"a"
    );
    // The upstream has closed that connection; the next request finds it dead.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        c.post(&url, &[], b"2", KEEP_WAITING)
            .unwrap()
            .read_all(10, KEEP_WAITING)
            .unwrap(),
        b"a"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn a_connection_kept_by_one_thread_serves_the_others() {
    let ok = || vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"];
    let (url, accepted) = upstream(vec![vec![ok(), ok(), ok(), ok()]], Duration::ZERO);
    let c = client();
    let post = move |c: &Client, url: &str| {
        assert_eq!(
            c.post(url, &[], b"1", KEEP_WAITING)
                .unwrap()
                .read_all(10, KEEP_WAITING)
                .unwrap(),
            b"a"
        );
    };
    // Kept in this thread's slot.
    post(&c, &url);
    // Taken from this thread's slot by another, which keeps it until it ends.
    let (c2, url2) = (c.clone(), url.clone());
    std::thread::spawn(move || post(&c2, &url2)).join().unwrap();
    // Moved to the shared list as that thread ended, then kept by a third thread.
    let (c3, url3) = (c.clone(), url.clone());
    std::thread::spawn(move || post(&c3, &url3)).join().unwrap();
    post(&c, &url);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn a_thread_whose_connection_another_took_opens_its_own() {
    let ok = || vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"];
    let script = vec![vec![ok(), ok(), ok(), ok()], vec![ok()]];
    let (url, accepted) = upstream(script, Duration::ZERO);
    let c = client();
    let post = move |c: &Client, url: &str| {
        assert_eq!(
            c.post(url, &[], b"1", KEEP_WAITING)
                .unwrap()
                .read_all(10, KEEP_WAITING)
                .unwrap(),
            b"a"
        );
    };
    // Kept in this thread's slot.
    post(&c, &url);
    let (go, turn) = std::sync::mpsc::channel::<()>();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let (c2, url2) = (c.clone(), url.clone());
    let other = std::thread::spawn(move || {
        // Takes this thread's connection; twice, staying alive in between.
        for () in turn {
            post(&c2, &url2);
            done.send(()).unwrap();
        }
    });
    go.send(()).unwrap();
    finished.recv().unwrap();
    // This thread's connection was taken: it opens one, instead of taking the
    // other thread's back (which would leave that one to take again, and so on).
    post(&c, &url);
    go.send(()).unwrap();
    finished.recv().unwrap();
    drop(go);
    other.join().unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn no_connection_is_kept_when_none_may_be() {
    let one = || vec![vec!["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"]];
    let (url, accepted) = upstream(vec![one(), one()], Duration::ZERO);
    let c = Client::with(Duration::from_secs(2), Duration::from_secs(5), 0);
    for _ in 0..2 {
        assert_eq!(
            c.post(&url, &[], b"1", KEEP_WAITING)
                .unwrap()
                .read_all(10, KEEP_WAITING)
                .unwrap(),
            b"a"
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn bodies_too_large_or_cut_short_are_errors() {
    let long = vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"];
    let short = vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"];
    let (url, _) = upstream(vec![vec![long], vec![short]], Duration::ZERO);
    let c = client();
    let err = c
        .post(&url, &[], b"", KEEP_WAITING)
        .unwrap()
        .read_all(4, KEEP_WAITING)
        .unwrap_err();
    assert!(err.to_string().contains("larger than 4 bytes"), "{err}");
    let err = c
        .post(&url, &[], b"", KEEP_WAITING)
        .unwrap()
        .read_all(100, KEEP_WAITING)
        .unwrap_err();
    assert!(
        err.to_string().contains("before its Content-Length"),
        "{err}"
    );
}

#[test]
fn a_sized_body_split_after_its_head_arrives_whole_and_the_connection_is_reused() {
    let split = vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello",
        " world",
    ];
    let whole = vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"];
    let (url, accepted) = upstream(vec![vec![split, whole]], Duration::from_millis(20));
    let c = client();
    let read = |reply: Reply| reply.read_all(100, KEEP_WAITING).unwrap();
    assert_eq!(
        read(c.post(&url, &[], b"", KEEP_WAITING).unwrap()),
        b"hello world"
    );
    assert_eq!(read(c.post(&url, &[], b"", KEEP_WAITING).unwrap()), b"ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn an_answer_without_length_runs_to_the_connection_end() {
    let old = vec!["HTTP/1.0 200 OK\r\n\r\nall of ", "it"];
    let (url, _) = upstream(vec![vec![old]], Duration::from_millis(20));
    assert_eq!(
        client()
            .post(&url, &[], b"", KEEP_WAITING)
            .unwrap()
            .read_all(100, KEEP_WAITING)
            .unwrap(),
        b"all of it"
    );
}

#[test]
fn a_stream_piece_holds_what_is_buffered_and_a_silence_times_out() {
    let events = vec![
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na\n\n\r\n3\r\nb\n\n\r\n",
        "3\r\nc\n\n\r\n",
    ];
    let (url, _) = upstream(vec![vec![events]], Duration::from_millis(600));
    let mut stream = client()
        .post(&url, &[], b"", KEEP_WAITING)
        .unwrap()
        .stream();
    let start = Instant::now();
    let Piece::Data(first) = stream.next(start + Duration::from_secs(5), KEEP_WAITING) else {
        panic!("no data");
    };
    // Both chunks of the first packet, without waiting for the next.
    assert_eq!(first, b"a\n\nb\n\n");
    assert!(start.elapsed() < Duration::from_millis(500));
    let piece = stream.next(Instant::now() + Duration::from_millis(100), KEEP_WAITING);
    assert!(matches!(piece, Piece::Timeout), "{piece:?}");
    assert!(start.elapsed() < Duration::from_millis(550));
    assert!(matches!(
        stream.next(Instant::now() + Duration::from_secs(5), KEEP_WAITING),
        Piece::Timeout
    ));
}

#[test]
fn an_answer_within_a_slice_never_asks_whether_it_is_still_wanted() {
    let sized = vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "ok"];
    let (url, _) = upstream(vec![vec![sized]], Duration::from_millis(300));
    // Asking would give the answer up: it arrives whole, so nothing asked.
    let asked = std::cell::Cell::new(0);
    let unwanted = || {
        asked.set(asked.get() + 1);
        true
    };
    let reply = client().post(&url, &[], b"", &unwanted).unwrap();
    assert_eq!(reply.read_all(10, &unwanted).unwrap(), b"ok");
    assert_eq!(asked.get(), 0, "a look at the client costs system calls");
}

#[test]
fn a_silent_upstream_waits_on_while_its_answer_is_wanted() {
    let late = vec!["", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"];
    let (url, _) = upstream(vec![vec![late]], Duration::from_millis(2500));
    let asked = std::cell::Cell::new(0);
    let wanted = || {
        asked.set(asked.get() + 1);
        false
    };
    let reply = client().post(&url, &[], b"", &wanted).unwrap();
    assert_eq!(reply.read_all(10, &wanted).unwrap(), b"ok");
    assert!(asked.get() >= 1, "asked after each silent slice");
}

#[test]
fn a_wait_given_up_ends_within_a_slice_or_two() {
    // Silent for 4 s before the head, before the body's rest, before a stream's
    // first event; the deadline (5 s) is further still.
    let pause = Duration::from_secs(4);
    let no_head = vec!["", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"];
    let half_body = vec!["HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", "cd"];
    let no_event = vec![
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "3\r\na\n\n\r\n0\r\n\r\n",
    ];
    let script = vec![vec![no_head], vec![half_body], vec![no_event]];
    let (url, _) = upstream(script, pause);
    let c = client();
    let unwanted = || true;
    let within = |started: Instant| started.elapsed() < Duration::from_millis(3000);

    let started = Instant::now();
    let err = c.post(&url, &[], b"", &unwanted).unwrap_err();
    assert_eq!(err, SendError::Abandoned);
    assert!(within(started), "{:?}", started.elapsed());

    let reply = c.post(&url, &[], b"", KEEP_WAITING).unwrap();
    let started = Instant::now();
    assert_eq!(reply.read_all(10, &unwanted), Err(BodyError::Abandoned));
    assert!(within(started), "{:?}", started.elapsed());

    let mut stream = c.post(&url, &[], b"", KEEP_WAITING).unwrap().stream();
    let started = Instant::now();
    let piece = stream.next(started + Duration::from_secs(5), &unwanted);
    assert!(matches!(piece, Piece::Abandoned), "{piece:?}");
    assert!(within(started), "{:?}", started.elapsed());
}

#[test]
fn answers_that_are_not_http_are_network_errors() {
    let garbage = vec!["SSH-2.0-OpenSSH\r\n\r\n"];
    let (url, _) = upstream(vec![vec![garbage]], Duration::ZERO);
    let err = client().post(&url, &[], b"", KEEP_WAITING).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad answer: the upstream did not answer in HTTP"
    );
    let err = client()
        .post("http://127.0.0.1:1/x", &[], b"", KEEP_WAITING)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "connection refused by 127.0.0.1:1 (is the server running?)"
    );
}

#[test]
fn a_get_ends_at_its_deadline_even_when_the_head_trickles_in() {
    // Each header line comes within the timeout of the one before; the whole head
    // would take over a second.
    let mut head = vec!["HTTP/1.1 200 OK\r\n"];
    head.extend(std::iter::repeat_n("x-slow: 1\r\n", 12));
    head.push("Content-Length: 0\r\n\r\n");
    let (url, _) = upstream(vec![vec![head]], Duration::from_millis(100));
    let got = client().get(&url, &[], Duration::from_millis(300), 1024);
    assert!(
        matches!(got, Err(SendError::Timeout(_))),
        "a 300 ms GET must not wait for a head trickled over 1.3 s: {got:?}"
    );
}

#[test]
fn an_https_upstream_with_a_certificate_no_root_vouches_for_is_refused() {
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    // A self-signed certificate for 127.0.0.1 and localhost (openssl, P-256, 100 years).
    let cert = CertificateDer::from(&include_bytes!("testdata/self-signed.cert.der")[..]);
    let key = PrivatePkcs8KeyDer::from(&include_bytes!("testdata/self-signed.key.der")[..]);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.into_owned()], key.clone_key().into())
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/v1/x", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut stream = rustls::StreamOwned::new(tls, conn);
        // Were the certificate taken, the request would be answered.
        let mut request = [0; 1024];
        if stream.read(&mut request).is_ok_and(|n| n > 0) {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = stream.flush();
        }
    });
    let err = client()
        .post(&url, &[], b"", KEEP_WAITING)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("TLS failed: ") && err.contains("UnknownIssuer"),
        "{err}"
    );
}

#[test]
fn retry_after_in_seconds_and_reset_headers() {
    assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_retry_after("soon"), None);
    assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
    assert_eq!(parse_reset("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_reset("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_reset("x"), None);
}

#[test]
fn retry_after_as_a_past_date_is_zero() {
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::ZERO)
    );
}

#[test]
fn plan_limit_resets_in_unix_time_and_in_bodies() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let near = |d: Option<Duration>, secs: u64| d.is_some_and(|d| d.as_secs().abs_diff(secs) <= 1);
    let later = (now.as_secs() + 600).to_string();
    assert!(near(unix_time_from_now(&later), 600));
    let later_ms = (now.as_millis() + 600_000).to_string();
    assert!(near(unix_time_from_now(&later_ms), 600));
    assert_eq!(unix_time_from_now("1000"), Some(Duration::ZERO));
    assert_eq!(unix_time_from_now("soon"), None);
    let body = |e: &str| format!(r#"{{"error":{{"type":"usage_limit_reached",{e}}}}}"#);
    assert!(near(
        reset_in_body(body(r#""resets_in_seconds":90"#).as_bytes()),
        90
    ));
    let at = format!(r#""resets_at":{}"#, now.as_secs() + 90);
    assert!(near(reset_in_body(body(&at).as_bytes()), 90));
    assert_eq!(reset_in_body(body(r#""message":"m""#).as_bytes()), None);
    assert_eq!(reset_in_body(b"slow down"), None);
}

#[test]
fn a_credential_header_is_sent_whole_and_never_shown() {
    let key = Secret::new("sk-test-12345678");
    let headers: Vec<Header> = vec![
        ("authorization".into(), HeaderValue::Bearer(key.clone())),
        ("x-api-key".into(), HeaderValue::Key(key)),
        ("x-app".into(), "cli".into()),
    ];
    let origin = Origin::split("http://127.0.0.1:1/v1").unwrap();
    let mut bytes = Vec::new();
    http1::request(
        &mut bytes,
        "POST",
        (&origin, "/chat"),
        &headers,
        Some(b"{}"),
    )
    .unwrap();
    let sent = String::from_utf8(bytes).unwrap();
    assert!(
        sent.contains("\r\nauthorization: Bearer sk-test-12345678\r\n"),
        "{sent}"
    );
    assert!(
        sent.contains("\r\nx-api-key: sk-test-12345678\r\n"),
        "{sent}"
    );
    assert!(sent.contains("\r\nx-app: cli\r\n"), "{sent}");
    let shown = format!("{headers:?}");
    assert!(
        !shown.contains("sk-test") && shown.contains("cli"),
        "{shown}"
    );
}

#[test]
fn a_known_header_is_passed_back_as_the_list_of_passed_back_names_says() {
    for name in [
        "Retry-After",
        "x-ratelimit-reset",
        "X-RateLimit-Reset-Requests",
        "anthropic-ratelimit-unified-status",
        "anthropic-ratelimit-unified-reset",
        "content-type",
        "Content-Encoding",
        "content-length",
        "Transfer-Encoding",
        "connection",
        "x-request-id",
        "x-ratelimit-remaining-tokens",
        "server",
    ] {
        let known = Known::of(name);
        assert_eq!(
            passes_back(known, name),
            passed_back(name),
            "{name} ({known:?})"
        );
    }
}
