//! Continued streams reach the client whole, in every protocol: one start, one end,
//! the whole answer, the usage of all of it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{ask, assert_one_whole_stream, config, events, faulty_once, healthy, two_messages_cut};
use crate::support::Reply;
use crate::support::answer::{self, CANONICAL, Fault};
use crate::support::wire::Wire;
use crate::support::{MockUpstream, Proxy};

#[test]
fn every_client_protocol_gets_one_whole_stream_after_a_cut() {
    for client in Wire::ALL {
        for up in Wire::ALL {
            let a = faulty_once(up, "a", Fault::Cut(20));
            let b = healthy("b");
            let p = Proxy::start(&config(&a, up, &b, ""));
            let s = ask(&p, client);
            assert_one_whole_stream(client, &s);
            // A Responses upstream cannot take a prefill: `b` continues it.
            let (want_a, want_b) = if up == Wire::Responses {
                (1, 1)
            } else {
                (2, 0)
            };
            assert_eq!(
                (a.count(), b.count()),
                (want_a, want_b),
                "{client:?} <- {up:?}"
            );
            p.wait_log("rescued=1");
        }
    }
}

#[test]
fn every_client_protocol_gets_one_whole_stream_after_a_stall_or_an_error_event() {
    let faults = [
        Fault::Stall(15, Duration::from_secs(4)),
        Fault::ErrorEvent(15),
    ];
    for client in Wire::ALL {
        for fault in faults {
            let a = faulty_once(Wire::Anthropic, "a", fault);
            let b = healthy("b");
            let p = Proxy::start(&config(&a, Wire::Anthropic, &b, ""));
            let s = ask(&p, client);
            assert_one_whole_stream(client, &s);
            // An overloaded error event is retried on `a`; a stall goes to `b`.
            let want = match fault {
                Fault::ErrorEvent(_) => (2, 0),
                _ => (1, 1),
            };
            assert_eq!((a.count(), b.count()), want, "{client:?} {fault:?}");
        }
    }
}

#[test]
fn the_rescued_usage_covers_the_whole_answer() {
    let a = faulty_once(Wire::Chat, "a", Fault::Cut(24));
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Chat, &b, ""));
    let s = ask(&p, Wire::Chat);
    assert_one_whole_stream(Wire::Chat, &s);
    let usage = events(&s)
        .into_iter()
        .find(|(_, v)| v["usage"].is_object())
        .expect("a usage chunk")
        .1["usage"]
        .clone();
    let toks = answer::tokens(CANONICAL);
    let sent = toks[..24].concat();
    let carried = sent.len().div_ceil(4) as u64;
    // The mock counts the prefill in its prompt: 10 + a quarter of its bytes.
    let prompt = 10 + sent.trim_end().len().div_ceil(4) as u64;
    assert_eq!(
        usage["completion_tokens"],
        json!((toks.len() - 24) as u64 + carried)
    );
    assert_eq!(usage["prompt_tokens"], json!(prompt - carried));
}

#[test]
fn vllm_is_told_to_continue_the_final_message() {
    let up = faulty_once(Wire::Chat, "v", Fault::Cut(8));
    let yaml = format!(
        "providers:\n  vllm:\n    api_base: {}\n    detect: false\n    models: [m]\ntimeouts:\n  idle_secs: 1\n",
        up.url()
    );
    let p = Proxy::start(&yaml);
    let s = p.stream(
        "/v1/chat/completions",
        json!({"model": "vllm:m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_one_whole_stream(Wire::Chat, &s);
    let reqs = up.requests();
    assert_eq!(reqs.len(), 2);
    let cont = reqs[1].json();
    assert_eq!(cont["continue_final_message"], json!(true));
    assert_eq!(cont["add_generation_prompt"], json!(false));
    assert!(reqs[0].json().get("continue_final_message").is_none());
}

#[test]
fn a_stream_that_closes_after_its_finish_marker_is_complete_in_every_protocol() {
    for client in Wire::ALL {
        for up in [Wire::Chat, Wire::Anthropic] {
            let a = MockUpstream::start(move |req| answer::reply(up, req, "a", Fault::NoEndMarker));
            let b = healthy("b");
            let p = Proxy::start(&config(&a, up, &b, ""));
            let started = Instant::now();
            let s = ask(&p, client);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{client:?} <- {up:?}"
            );
            assert_one_whole_stream(client, &s);
            assert_eq!((a.count(), b.count()), (1, 0), "{client:?} <- {up:?}");
        }
    }
}

#[test]
fn a_copied_responses_stream_continued_in_its_second_message_keeps_each_messages_text() {
    // Its continued message took all the text the client had, the finished message's
    // too: the closing events said the commentary twice.
    let toks = answer::tokens(CANONICAL);
    let a = MockUpstream::always(two_messages_cut());
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Responses, &b, ""));
    let s = ask(&p, Wire::Responses);
    assert_eq!((a.count(), b.count()), (1, 1), "{}", s.text());
    let evs = events(&s);
    let rest = CANONICAL.strip_prefix(toks[..5].concat().as_str()).unwrap();
    let done: Vec<&Value> = evs
        .iter()
        .filter(|(k, _)| k == "response.output_text.done")
        .map(|(_, v)| &v["text"])
        .collect();
    assert_eq!(
        done,
        [&json!(toks[..5].concat()), &json!(rest)],
        "{}",
        s.text()
    );
    let (kind, last) = evs.last().unwrap();
    assert_eq!(kind, "response.completed", "{}", s.text());
    let texts: Vec<&Value> = last["response"]["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["content"][0]["text"])
        .collect();
    assert_eq!(texts, done, "{last}");
}

#[test]
fn a_stream_that_breaks_or_stalls_after_its_finish_marker_is_complete_in_every_protocol() {
    // Hosted APIs send their streams chunked: closed after the finish marker without
    // the body's last chunk, such a stream broke off, and one may never send `[DONE]`.
    // Either way the answer is whole: continued, the client got a second ending (and a
    // usage of the answer and a half) after its first.
    let faults = [
        Fault::BreakAfterFinish,
        Fault::StallAfterFinish(Duration::from_secs(3)),
    ];
    for client in Wire::ALL {
        for up in [Wire::Chat, Wire::Anthropic] {
            for fault in faults {
                let a = MockUpstream::start(move |req| answer::reply(up, req, "a", fault));
                let b = healthy("b");
                let p = Proxy::start(&config(&a, up, &b, ""));
                let s = ask(&p, client);
                assert_one_whole_stream(client, &s);
                let what = format!("{client:?} <- {up:?} {fault:?}: {}", s.text());
                assert_eq!((a.count(), b.count()), (1, 0), "{what}");
                let finishes = events(&s)
                    .iter()
                    .filter(|(k, v)| {
                        k == "message_delta" || v["choices"][0]["finish_reason"].is_string()
                    })
                    .count();
                if matches!(client, Wire::Chat | Wire::Anthropic) {
                    assert_eq!(finishes, 1, "{what}");
                }
                p.wait_log("stream=complete");
            }
        }
    }
}

#[test]
fn a_whole_tool_call_whose_stream_breaks_after_its_finish_marker_is_the_clients() {
    // The call is whole: not "a tool call was cut".
    let mut evs = Wire::Chat.events(true);
    evs.pop();
    let a = MockUpstream::always(Reply::SseChunkedThenBreak(evs));
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Chat, &b, ""));
    for client in Wire::ALL {
        let s = p.stream(
            &client.url("smart", true),
            client.request("smart", true, true),
        );
        let got = client.read_stream(&s);
        assert!(got.ended, "{client:?}: {}", s.text());
        assert_eq!(got.tools.len(), 1, "{client:?}: {}", s.text());
        assert_eq!(got.tools[0].1, json!({"city": "Paris"}), "{client:?}");
        assert!(!s.text().contains("was cut"), "{client:?}: {}", s.text());
    }
    assert_eq!(b.count(), 0);
}

#[test]
fn a_finished_stream_that_goes_silent_keeps_the_client_only_briefly() {
    // `idle_secs` (120 by default) is for an answer that may go on; after its finish
    // marker only the usage and end marker are left to wait for.
    let a = MockUpstream::start(|req| {
        answer::reply(
            Wire::Chat,
            req,
            "a",
            Fault::StallAfterFinish(Duration::from_secs(20)),
        )
    });
    let yaml = format!(
        "providers:\n  a:\n    api_base: {}\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m]\ntimeouts:\n  idle_secs: 30\n",
        a.url()
    );
    let p = Proxy::start(&yaml);
    let started = Instant::now();
    let s = ask(&p, Wire::Chat);
    let took = started.elapsed();
    assert_one_whole_stream(Wire::Chat, &s);
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(a.count(), 1);
}

#[test]
fn an_error_event_after_the_finish_marker_leaves_the_answer_whole() {
    // Anthropic may send `overloaded_error` after `message_delta` has ended the answer.
    let mut evs = answer::events(
        Wire::Anthropic,
        "a",
        &answer::tokens(CANONICAL),
        10,
        Fault::NoEndMarker,
    );
    evs.push(crate::support::wire::named(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    for client in Wire::ALL {
        let a = MockUpstream::always(Reply::SseThenBreak(evs.clone(), Duration::ZERO));
        let b = healthy("b");
        let p = Proxy::start(&config(&a, Wire::Anthropic, &b, ""));
        let s = ask(&p, client);
        assert_one_whole_stream(client, &s);
        assert_eq!((a.count(), b.count()), (1, 0), "{client:?}: {}", s.text());
        p.wait_log("stream=complete");
    }
}
