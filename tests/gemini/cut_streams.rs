//! Cut Gemini streams continued: a Gemini client's stalled stream elsewhere, and the
//! `gemini` built-in from a final model turn.

use super::*;

/// A mock whose first answer, in `wire`, breaks after 20 tokens; its continuations are whole.
fn cut_once(wire: Wire) -> MockUpstream {
    MockUpstream::numbered(move |n, req| {
        let fault = if n == 0 { Fault::Cut(20) } else { Fault::None };
        answer::reply(wire, req, "a", fault)
    })
}

#[test]
fn a_gemini_clients_stalled_stream_is_continued_elsewhere_without_repeats_and_ends_once() {
    let sent = answer::tokens(CANONICAL)[..20].concat();
    for up in [Wire::Chat, Wire::Gemini] {
        // `a` stalls after 20 tokens; `b` (another tag, so other ids) continues.
        let a = MockUpstream::start(move |req| {
            let fault = Fault::Stall(20, Duration::from_secs(3));
            answer::reply(up, req, "a", fault)
        });
        let b = MockUpstream::start(|req| answer::reply(Wire::Gemini, req, "b", Fault::None));
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\n  b:\n    api_base: {}\n    api_protocol: gemini\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\ntimeouts:\n  idle_secs: 1\n",
            a.url(),
            up.config_name(),
            b.url()
        ));
        // Without `alt=sse`: the continuation must keep the one JSON array well formed.
        let s = p.stream("/v1beta/models/smart:streamGenerateContent", ask());
        assert_eq!(s.status, 200, "{up:?}: {}", s.text());
        let items: Vec<Value> = serde_json::from_str(&s.text()).expect("one JSON array");
        let got = read_gemini_array(&s.text());
        assert_eq!(
            got.text, CANONICAL,
            "{up:?}: nothing repeated, nothing lost"
        );
        assert!(got.ended, "{up:?}: {}", s.text());
        assert!(items.iter().all(|v| v.get("error").is_none()), "{up:?}");
        let finishes = items
            .iter()
            .filter(|v| v["candidates"][0]["finishReason"].is_string())
            .count();
        assert_eq!(finishes, 1, "{up:?}: one ending");
        // The ids and model the client saw first stay, whoever continues.
        for key in ["responseId", "modelVersion"] {
            let seen: Vec<&Value> = items.iter().map(|v| &v[key]).collect();
            assert!(
                seen.windows(2).all(|w| w[0] == w[1]),
                "{up:?}: one {key}: {seen:?}"
            );
        }
        assert_eq!((a.count(), b.count()), (1, 1), "{up:?}");
        let cont = b.requests()[0].json();
        assert_eq!(
            answer::prefill(&cont).as_deref(),
            Some(sent.trim_end()),
            "{up:?}"
        );
        p.wait_log("rescued=1");
    }
}

#[test]
fn the_gemini_builtin_continues_a_cut_stream_from_a_final_model_turn() {
    let sent = answer::tokens(CANONICAL)[..20].concat();
    for client in [Wire::Chat, Wire::Gemini] {
        let a = cut_once(Wire::Gemini);
        // The built-in's own `prefill` applies: the block sets none.
        let yaml = format!(
            "providers:\n  gemini:\n    api_base: {}\n    models: [m]\ntimeouts:\n  idle_secs: 1\n",
            a.url()
        );
        let p = Proxy::start_with(&yaml, &[("GEMINI_API_KEY", "g-secret")], &[]);
        let mut body = client.request("gemini:m", true, false);
        if client == Wire::Chat {
            body["stream_options"] = json!({"include_usage": true});
        }
        let s = p.stream(&client.url("gemini:m", true), body);
        assert_eq!(s.status, 200, "{client:?}: {}", s.text());
        let got = client.read_stream(&s);
        assert_eq!(got.text, CANONICAL, "{client:?}: {}", s.text());
        assert!(got.ended && s.complete, "{client:?}: {}", s.text());
        let reqs = a.requests();
        assert_eq!(reqs.len(), 2, "{client:?}: continued by the same endpoint");
        assert_eq!(reqs[1].path, "/v1/models/m:streamGenerateContent?alt=sse");
        let cont = reqs[1].json();
        assert!(
            cont.get("model").is_none(),
            "the model stays in the URL: {cont}"
        );
        let last = cont["contents"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["role"], "model", "{cont}");
        assert_eq!(answer::prefill(&cont).as_deref(), Some(sent.trim_end()));
    }
}
