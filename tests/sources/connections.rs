//! Upstream errors passed on unchanged, and pooled connections the upstream closed
//! while idle retried once on a new one.

use super::*;

#[test]
fn an_upstream_4xx_reaches_the_client_unchanged() {
    let error = json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}});
    let up = MockUpstream::always(Reply::json(400, error.clone()));
    let p = Proxy::start(&format!(
        "providers:\n  gw:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    let resp = chat(&p, "m");
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json(), error, "code and param survive");
}

#[test]
fn a_pooled_connection_closed_while_idle_is_retried_once_on_a_new_one() {
    let up = MockUpstream::closing_idle(|_| Reply::json(200, chat_answer("fine")));
    let p = Proxy::start(&format!(
        "providers:\n  llama:\n    api_base: {}\n    models: [m]\n",
        up.url()
    ));
    for i in 0..3 {
        let resp = chat(&p, "m");
        assert_eq!(resp.status, 200, "request {i}: {}", resp.body);
        assert_eq!(resp.header("x-routeplane-attempts"), Some("1"));
    }
    let reqs = up.requests();
    let dropped = reqs.iter().filter(|r| r.on_conn > 0).count();
    assert!(
        dropped >= 1,
        "the mock dropped a reused connection: {reqs:?}"
    );
    assert_eq!(
        reqs.len(),
        3 + dropped,
        "each dropped request was sent once more"
    );
}

#[test]
fn a_stream_with_an_endpoint_left_also_retries_a_dead_pooled_connection() {
    let up = MockUpstream::closing_idle(|req| {
        if req.json()["stream"] == json!(true) {
            Reply::chat_stream(2, Duration::ZERO)
        } else {
            Reply::json(200, chat_answer("fine"))
        }
    });
    let other = MockUpstream::always(Reply::chat_stream(3, Duration::ZERO));
    let p = Proxy::start(&format!(
        "providers:\n  llama:\n    api_base: {}\n    models: [m]\n  other:\n    api_base: {}\nmodels:\n  agent:\n    endpoints: [llama:m, other:x]\n",
        up.url(),
        other.url()
    ));
    // A whole answer leaves its connection in the pool.
    assert_eq!(chat(&p, "m").status, 200);
    // With another endpoint left, the stream's head is due within the first-token
    // deadline (`post_within`); the dead pooled connection is still not an attempt.
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "agent", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(s.status, 200);
    assert_eq!(s.header("x-routeplane-provider"), Some("llama"));
    assert_eq!(s.header("x-routeplane-attempts"), Some("1"));
    assert!(s.text().contains("t1"), "{}", s.text());
    assert_eq!(other.count(), 0);
    let reqs = up.requests();
    let streamed: Vec<usize> = reqs
        .iter()
        .filter(|r| r.json()["stream"] == json!(true))
        .map(|r| r.on_conn)
        .collect();
    assert_eq!(
        streamed,
        [1, 0],
        "dropped on the reused connection, then sent anew"
    );
}
