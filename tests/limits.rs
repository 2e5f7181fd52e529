//! Limits on concurrency: a full queue answers 503 with Retry-After instead of growing.

use std::time::Duration;

use serde_json::json;

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
        "too many requests in flight; retry shortly"
    );
    assert_eq!(answers.iter().filter(|r| r.status == 502).count(), 1);
}
