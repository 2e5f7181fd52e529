//! Retries before the first token keep to their budget, a long `Retry-After` moves on,
//! and an endpoint can have its own first-token deadline.

use std::time::{Duration, Instant};

use super::{ask, assert_one_whole_stream, config, healthy};
use crate::support::answer::{self, Fault};
use crate::support::wire::Wire;
use crate::support::{MockUpstream, Proxy, Reply};

#[test]
fn retries_keep_to_the_budget_and_never_two_within_1_5_s() {
    let a = MockUpstream::always(Reply::Json(503, "{}".into()));
    let b = healthy("b");
    let extra = "  retries: 3\n";
    let p = Proxy::start(&config(&a, Wire::Chat, &b, extra));
    let s = ask(&p, Wire::Chat);
    assert_one_whole_stream(Wire::Chat, &s);
    let at: Vec<Instant> = a.requests().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 4, "the first attempt and three retries");
    // The mock stamps a request when it reads it. The rule's clock starts before an
    // attempt, and the first attempt's stamp also carries its connection's set-up (the
    // connect, the mock's accept and its new thread): 12.5 ms once on a loaded 2-core
    // machine, so 50 ms of slack. Without the rule three would come within 0.75 s.
    for w in at.windows(3) {
        let span = w[2] - w[0];
        assert!(span >= Duration::from_millis(1450), "three within {span:?}");
    }
}

#[test]
fn a_long_retry_after_moves_on_at_once() {
    let a = MockUpstream::always(Reply::JsonWith(
        429,
        vec![("Retry-After".into(), "30".into())],
        "{}".into(),
    ));
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Chat, &b, ""));
    let started = Instant::now();
    assert_one_whole_stream(Wire::Chat, &ask(&p, Wire::Chat));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        a.count(),
        1,
        "longer than max_retry_wait_secs: not waited for"
    );
    // And `a` cools down: the next request goes to `b` without asking `a`.
    assert_one_whole_stream(Wire::Chat, &ask(&p, Wire::Chat));
    assert_eq!(a.count(), 1);
}

#[test]
fn an_endpoint_can_have_its_own_first_token_deadline() {
    // `a` takes 1.5 s to its first token: too slow for the default 1 s, fine for its own 3 s.
    let a = MockUpstream::start(|req| {
        answer::reply(
            Wire::Chat,
            req,
            "a",
            Fault::SlowFirst(Duration::from_millis(1500)),
        )
    });
    let b = healthy("b");
    let yaml = config(&a, Wire::Chat, &b, "").replace(
        "endpoints: [a:m, b:m]",
        "endpoints:\n      - {provider: a, service_id: m, first_token_secs: 3}\n      - b:m",
    );
    let p = Proxy::start(&yaml);
    let s = ask(&p, Wire::Chat);
    assert_one_whole_stream(Wire::Chat, &s);
    assert_eq!(s.header("x-routeplane-provider"), Some("a"));
    assert_eq!(b.count(), 0);
}
