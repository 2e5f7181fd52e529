//! Requests no endpoint can take: malformed in their own protocol (400 at once), or
//! asking what one endpoint cannot express (the next one asked, or 400 saying why).

use super::*;

#[test]
fn a_request_malformed_in_its_own_protocol_is_400_at_once_with_no_endpoint_asked() {
    // (client, a body its own protocol refuses, the message word for word). The mocks
    // speak another protocol, so the body is translated and the fault found there.
    let cases = [
        (
            Wire::Chat,
            json!({"model": "M"}),
            "`messages` is required and must be an array",
        ),
        (
            Wire::Anthropic,
            json!({"model": "M", "max_tokens": 50}),
            "`messages` is required and must be an array",
        ),
        (
            Wire::Responses,
            json!({"model": "M"}),
            "`input` is required: a string or a list of items",
        ),
        (
            Wire::Responses,
            json!({"model": "M", "input": 42}),
            "`input` must be a string or a list of items",
        ),
        (
            Wire::Gemini,
            json!({"contents": "hi"}),
            "`contents` must be a list of {role, parts}",
        ),
        (
            Wire::Gemini,
            json!({}),
            "`contents` is required: a list of {role, parts}",
        ),
    ];
    for up in [Wire::Chat, Wire::Anthropic] {
        let a = MockUpstream::always(up.reply(false, false));
        let b = MockUpstream::always(up.reply(false, false));
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    api_protocol: {up}\n    models: [m]\n  b:\n    api_base: {}\n    api_protocol: {up}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
            a.url(),
            b.url(),
            up = up.config_name(),
        ));
        let mut asked = 0;
        for (client, body, message) in cases.iter().filter(|(c, ..)| *c != up) {
            // A virtual model and a bare name that both providers serve.
            for model in ["smart", "m"] {
                let mut body = body.clone();
                if body.get("model").is_some() {
                    body["model"] = json!(model);
                }
                let resp = p.post(&client.url(model, false), body);
                let what = format!("{client:?} → {up:?}, {model}");
                assert_eq!(resp.status, 400, "{what}: {}", resp.body);
                let v = resp.json();
                assert_text(&client.error_message(&v), message);
                match client {
                    Wire::Gemini => assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{what}"),
                    _ => assert_eq!(v["error"]["type"], "invalid_request_error", "{what}"),
                }
                asked += 1;
            }
        }
        // The log line of each: no attempt, none tried.
        let refused = || -> Vec<String> {
            p.log()
                .into_iter()
                .filter(|l| l.contains(" status=400 "))
                .collect()
        };
        assert!(wait_until(Duration::from_secs(5), || refused().len() == asked));
        for line in refused() {
            assert!(line.contains(" attempts=0 "), "{line}");
            assert!(!line.contains("tried="), "{line}");
        }
        assert_eq!(a.count() + b.count(), 0, "{up:?}: no endpoint was asked");
        assert_eq!(
            p.get("/routeplane/cooldowns").json()["cooldowns"],
            json!([]),
            "{up:?}: no endpoint cools down"
        );
        // Nothing counted against `a`: it is still asked first.
        let resp = p.post(&up.url("smart", false), up.request("smart", false, false));
        assert_eq!(
            resp.header("x-routeplane-provider"),
            Some("a"),
            "{}",
            resp.body
        );
    }
}

#[test]
fn a_request_one_endpoint_cannot_take_moves_on_to_one_that_can() {
    // A Chat source cannot take `previous_response_id`; a Responses source can.
    let a = MockUpstream::always(Wire::Chat.reply(false, false));
    let b = MockUpstream::always(Wire::Responses.reply(false, false));
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\n  b:\n    api_base: {}\n    api_protocol: responses\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
        a.url(),
        b.url(),
    ));
    let resp = p.post(
        "/v1/responses",
        json!({"model": "smart", "input": "and then?", "previous_response_id": "resp_1"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-routeplane-provider"), Some("b"));
    assert_eq!(a.count(), 0);
    assert_eq!(b.requests()[0].json()["previous_response_id"], "resp_1");
}

#[test]
fn a_request_no_endpoint_can_take_is_400_saying_why() {
    let chat = || MockUpstream::always(Wire::Chat.reply(false, false));
    let (a, b) = (chat(), chat());
    let c = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let d = MockUpstream::always(Wire::Gemini.reply(false, false));
    let p = Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\n  c:\n    api_base: {}\n    api_protocol: anthropic\n    models: [m]\n  d:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\nmodels:\n  chats:\n    endpoints: [a:m, b:m]\n  others:\n    endpoints: [c:m, d:m]\n",
        a.url(),
        b.url(),
        c.url(),
        d.url(),
    ));
    // Neither Chat source takes `previous_response_id`: the one reason, once.
    let resp = p.post(
        "/v1/responses",
        json!({"model": "chats", "input": "and then?", "previous_response_id": "resp_1"}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "`previous_response_id` needs a Responses upstream; send the full conversation in `input` instead",
    );
    // Neither Anthropic nor Gemini takes `n: 2`: each endpoint's reason.
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "others", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "every target failed: c:m → 400 the request field `n` cannot be expressed for provider `c`; remove it or choose another model; d:m → 400 the request field `n` cannot be expressed for provider `d`; remove it or choose another model",
    );
    assert_eq!(a.count() + b.count() + c.count() + d.count(), 0);
}
