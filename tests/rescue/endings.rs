//! What cannot be continued ends with the client's protocol's error event, and
//! continuations keep to their limits: `max_rescues`, an endpoint that breaks twice.

use std::time::Duration;

use serde_json::{Value, json};

use super::{ask, config, events, faulty_once, healthy, two_messages_cut};
use crate::support::answer::{self, CANONICAL, Fault};
use crate::support::proxy::Streamed;
use crate::support::wire::{Wire, data, named};
use crate::support::{MockUpstream, Proxy, Reply, assert_text};

#[test]
fn a_cut_inside_a_tool_call_ends_with_an_error_event() {
    // A chat `tool_calls` delta, or an Anthropic `input_json_delta`, half sent.
    let sources = [Wire::Chat, Wire::Anthropic].into_iter();
    for (client, up) in sources.flat_map(|up| Wire::ALL.map(|c| (c, up))) {
        let a = faulty_once(up, "a", Fault::ToolCut);
        let b = healthy("b");
        let p = Proxy::start(&config(&a, up, &b, ""));
        let s = p.stream(
            &client.url("smart", true),
            client.request("smart", true, true),
        );
        assert_eq!(s.status, 200, "{client:?} <- {up:?}");
        let evs = events(&s);
        let (kind, last) = evs.last().expect("events").clone();
        let failed = match client {
            Wire::Chat => last.get("error").is_some(),
            Wire::Anthropic => kind == "error",
            Wire::Responses => kind == "response.failed",
            Wire::Gemini => last.get("error").is_some(),
        };
        assert!(failed, "{client:?}: ends with an error event: {}", s.text());
        assert!(s.text().contains("a tool call was cut"), "{}", s.text());
        assert_eq!(
            (a.count(), b.count()),
            (1, 0),
            "{client:?}: never continued"
        );
    }
}

#[test]
fn a_cut_inside_a_refusal_ends_with_an_error_event() {
    // A refusal cannot be prefilled, and asked afresh a model would start it over.
    let cut = Reply::Sse(
        vec![
            data(
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"role": "assistant", "refusal": "I can't "}, "finish_reason": null}]}),
            ),
            data(
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"refusal": "help with "}, "finish_reason": null}]}),
            ),
        ],
        Duration::ZERO,
    );
    for client in [Wire::Chat, Wire::Responses] {
        let a = MockUpstream::always(cut.clone());
        let b = healthy("b");
        let p = Proxy::start(&config(&a, Wire::Chat, &b, ""));
        let s = p.stream(
            &client.url("smart", true),
            client.request("smart", true, false),
        );
        assert_eq!(s.status, 200, "{client:?}");
        assert!(
            s.text().contains("a refusal was cut"),
            "{client:?}: {}",
            s.text()
        );
        assert_eq!(
            (a.count(), b.count()),
            (1, 0),
            "{client:?}: never continued"
        );
    }
}

#[test]
fn a_refused_prefill_is_never_surfaced() {
    // `a` cannot continue (no prefill) and breaks; `b` claims prefill but refuses it.
    let a = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "a", Fault::Cut(10)));
    let b = MockUpstream::start(|req| answer::refuses_prefill(req, "b"));
    let yaml = config(&a, Wire::Chat, &b, "").replacen("    prefill: true\n", "", 1);
    let p = Proxy::start(&yaml);
    let s = ask(&p, Wire::Chat);
    assert_eq!(s.status, 200);
    let last = events(&s).last().unwrap().1.clone();
    let message = last["error"]["message"].as_str().expect("an error event");
    assert_text(
        message,
        "upstream `a` stopped part-way through its answer (the stream ended without its end marker); no endpoint could continue it",
    );
    assert!(!s.text().contains("prefill"), "{}", s.text());
    assert_eq!(b.count(), 1, "asked once, refused, not retried");
    assert!(answer::prefill(&b.requests()[0].json()).is_some());
}

#[test]
fn continuations_stop_at_max_rescues() {
    // Every answer breaks after five tokens, at three endpoints.
    let cut = || MockUpstream::start(|req| answer::reply(Wire::Chat, req, "a", Fault::Cut(5)));
    let (a, b, c) = (cut(), cut(), cut());
    let yaml = format!(
        "providers:\n  a:\n    api_base: {}\n    prefill: true\n    models: [m]\n  b:\n    api_base: {}\n    prefill: true\n    models: [m]\n  c:\n    api_base: {}\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m, c:m]\nfailover:\n  max_rescues: 2\n",
        a.url(),
        b.url(),
        c.url()
    );
    let p = Proxy::start(&yaml);
    let s = ask(&p, Wire::Chat);
    let got = Wire::Chat.read_stream(&s);
    assert_text(&got.text, &answer::tokens(CANONICAL)[..15].concat());
    assert!(
        s.text()
            .contains("no more continuations are allowed (failover.max_rescues)"),
        "{}",
        s.text()
    );
    let asked = (a.count(), b.count(), c.count());
    assert_eq!(asked, (2, 1, 0), "the first answer and two continuations");
    p.wait_log("rescued=2 rescued_by=a:m,b:m");
}

#[test]
fn a_lone_endpoint_that_breaks_twice_is_not_asked_a_third_time() {
    // Stalled (a third ask would keep the client another `idle_secs`) or cut.
    let faults = [Fault::Stall(5, Duration::from_secs(5)), Fault::Cut(5)];
    for fault in faults {
        let a = MockUpstream::start(move |req| answer::reply(Wire::Chat, req, "a", fault));
        let yaml = format!(
            "providers:\n  a:\n    api_base: {}\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m]\ntimeouts:\n  idle_secs: 0.5\n",
            a.url()
        );
        let p = Proxy::start(&yaml);
        let s = ask(&p, Wire::Chat);
        let got = Wire::Chat.read_stream(&s);
        assert_text(&got.text, &answer::tokens(CANONICAL)[..10].concat());
        assert!(
            s.text().contains("no endpoint could continue it"),
            "{fault:?}: {}",
            s.text()
        );
        assert_eq!(a.count(), 2, "{fault:?}: the answer and one continuation");
        p.wait_log("rescued=1 rescued_by=a:m");
    }
}

#[test]
fn an_endpoint_that_breaks_again_hands_the_rest_to_the_next_and_cools_down() {
    // Every answer of `a` breaks after five tokens; `b` is healthy.
    let a = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "a", Fault::Cut(5)));
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Chat, &b, ""));
    let s = ask(&p, Wire::Chat);
    let got = Wire::Chat.read_stream(&s);
    assert_text(&got.text, CANONICAL);
    assert!(got.ended, "{}", s.text());
    // One more try of `a` after its first break, then `b`, not `a` a third time.
    assert_eq!((a.count(), b.count()), (2, 1));
    p.wait_log("rescued=2 rescued_by=a:m,b:m");
    // Broken twice, `a` cools down: the next request starts at `b`.
    let s = ask(&p, Wire::Chat);
    assert_text(&Wire::Chat.read_stream(&s).text, CANONICAL);
    assert_eq!((a.count(), b.count()), (2, 2));
}

/// One provider `a` speaking `wire`, which cannot continue a stream, as `smart`.
fn lone(a: &MockUpstream, wire: Wire) -> Proxy {
    Proxy::start(&format!(
        "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m]\ntimeouts:\n  idle_secs: 1\n",
        a.url(),
        wire.config_name()
    ))
}

/// The `response` of the `response.failed` a Responses client's stream ends with, after
/// checking the event is the last and its items are those the stream announced.
#[track_caller]
fn failed_response(s: &Streamed) -> Value {
    let evs = events(s);
    let (kind, last) = evs.last().expect("events").clone();
    assert_eq!(kind, "response.failed", "{}", s.text());
    let announced: Vec<&Value> = evs
        .iter()
        .filter(|(k, _)| k == "response.output_item.added")
        .map(|(_, v)| &v["item"]["id"])
        .collect();
    let r = last["response"].clone();
    let ids: Vec<&Value> = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["id"])
        .collect();
    assert_eq!(ids, announced, "{}", s.text());
    assert_eq!(r["status"], "failed");
    r
}

#[test]
fn a_responses_clients_failed_stream_carries_the_text_it_streamed() {
    // Cut after ten tokens with nowhere to continue: OpenAI's SDKs take the final
    // response from the failed event (openai-node's `finalResponse()`), and its output
    // was `[]`, the text the client had read lost.
    let streamed = answer::tokens(CANONICAL)[..10].concat();
    for up in [Wire::Chat, Wire::Anthropic, Wire::Responses] {
        let a = MockUpstream::start(move |req| answer::reply(up, req, "a", Fault::Cut(10)));
        let p = lone(&a, up);
        let s = ask(&p, Wire::Responses);
        assert_eq!(s.status, 200, "{up:?}");
        assert_text(&Wire::Responses.read_stream(&s).text, &streamed);
        let r = failed_response(&s);
        let item = &r["output"][0];
        assert_eq!(item["type"], "message", "{up:?}: {r}");
        assert_eq!(item["status"], "incomplete", "{up:?}: {r}");
        assert_eq!(
            item["content"],
            json!([{"type": "output_text", "text": streamed, "annotations": []}]),
            "{up:?}"
        );
        assert_text(
            r["error"]["message"].as_str().unwrap(),
            "upstream `a` stopped part-way through its answer (the stream ended without its end marker); no endpoint could continue it",
        );
        assert_eq!(r["error"]["code"], "server_error", "{up:?}");
    }
}

#[test]
fn a_responses_clients_failed_stream_carries_its_reasoning_text_and_the_cut_call() {
    let chunk = |delta: Value| {
        data(
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}),
        )
    };
    let cut = Reply::SseThenBreak(
        vec![
            chunk(json!({"role": "assistant", "reasoning_content": "Let me "})),
            chunk(json!({"reasoning_content": "look."})),
            chunk(json!({"content": "Checking "})),
            chunk(json!({"content": "the weather."})),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"ci"}}]}),
            ),
        ],
        Duration::ZERO,
    );
    let a = MockUpstream::always(cut);
    let p = lone(&a, Wire::Chat);
    let s = p.stream(
        &Wire::Responses.url("smart", true),
        Wire::Responses.request("smart", true, true),
    );
    let r = failed_response(&s);
    let out = r["output"].as_array().unwrap();
    assert_eq!(out.len(), 3, "{r}");
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(
        out[0]["summary"],
        json!([{"type": "summary_text", "text": "Let me look."}])
    );
    assert_eq!(out[1]["type"], "message");
    assert_eq!(out[1]["status"], "completed");
    assert_eq!(out[1]["content"][0]["text"], "Checking the weather.");
    assert_eq!(out[2]["type"], "function_call");
    assert_eq!(out[2]["status"], "incomplete");
    assert_eq!(
        (&out[2]["name"], &out[2]["call_id"], &out[2]["arguments"]),
        (&json!("get_weather"), &json!("call_1"), &json!("{\"ci"))
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("; a tool call was cut, so it cannot be continued"),
        "{r}"
    );
}

#[test]
fn every_client_keeps_the_text_it_streamed_and_reads_the_break_in_its_own_error() {
    // Chat, Anthropic and Gemini clients hold the text as it came (their encoders keep
    // nothing back from a text stream): the break ends it with the protocol's own error
    // event, last, saying why.
    let streamed = answer::tokens(CANONICAL)[..10].concat();
    for client in [Wire::Chat, Wire::Anthropic, Wire::Gemini] {
        let a = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "a", Fault::Cut(10)));
        let p = lone(&a, Wire::Chat);
        let s = ask(&p, client);
        assert_eq!(s.status, 200, "{client:?}");
        assert_text(&client.read_stream(&s).text, &streamed);
        let (kind, last) = events(&s).last().expect("events").clone();
        if client == Wire::Anthropic {
            assert_eq!(kind, "error", "{}", s.text());
        }
        assert_text(
            &client.error_message(&last),
            "upstream `a` stopped part-way through its answer (the stream ended without its end marker); no endpoint could continue it",
        );
    }
}

#[test]
fn an_error_event_after_text_names_its_upstream_as_a_cut_does() {
    // A cut told the client which upstream failed ("upstream `a` stopped part-way…"), an
    // error event of the upstream's own after text (OpenRouter's `{"error": …}` chunk,
    // Anthropic's `event: error`) only its bare words: "overloaded", from whom? Here
    // those words quote the key Routeplane sent, which no client may read.
    const KEY: &str = "sk-rescue-SECRET-0123456789";
    let streamed = answer::tokens(CANONICAL)[..10].concat();
    for up in [Wire::Chat, Wire::Anthropic] {
        let a = MockUpstream::start(move |req| {
            let Reply::Sse(mut evs, gap) = answer::reply(up, req, "a", Fault::ErrorEvent(10))
            else {
                unreachable!("an error event is sent as a stream");
            };
            evs.pop();
            let said = format!("overloaded, key {KEY}");
            evs.push(match up {
                Wire::Chat => data(json!({"error": {"message": said, "code": 503}})),
                _ => named(
                    "error",
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": said}}),
                ),
            });
            Reply::Sse(evs, gap)
        });
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    api_key: {KEY}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m]\n",
            a.url(),
            up.config_name()
        ));
        for client in Wire::ALL {
            let s = ask(&p, client);
            let what = format!("{up:?} source, {client:?} client: {}", s.text());
            assert_eq!(s.status, 200, "{what}");
            assert_text(&client.read_stream(&s).text, &streamed);
            let message = match client {
                Wire::Responses => failed_response(&s)["error"]["message"].clone(),
                _ => json!(client.error_message(&events(&s).last().expect("events").1)),
            };
            assert_eq!(
                message,
                "upstream `a` stopped part-way through its answer (it sent an error: overloaded, key ***); no endpoint could continue it",
                "{what}"
            );
            assert!(!s.text().contains(KEY), "{what}");
        }
    }
}

#[test]
fn a_copied_responses_streams_failed_output_gives_each_message_its_own_text() {
    // The open message of a copied stream took all the text the client had, the
    // finished message's too, and said it twice.
    let toks = answer::tokens(CANONICAL);
    let a = MockUpstream::always(two_messages_cut());
    let p = lone(&a, Wire::Responses);
    let s = ask(&p, Wire::Responses);
    let r = failed_response(&s);
    let texts: Vec<(&Value, &Value)> = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (&i["status"], &i["content"][0]["text"]))
        .collect();
    let (first, second) = (json!(toks[..5].concat()), json!(toks[5..10].concat()));
    assert_eq!(
        texts,
        [
            (&json!("completed"), &first),
            (&json!("incomplete"), &second)
        ],
        "{r}"
    );
}

/// A Responses source's stream: a message, then a function call cut inside its
/// arguments (`{"ci`).
fn responses_call_cut() -> Reply {
    let mut ev = crate::support::wire::sequenced();
    let mut evs = super::responses_checked(&mut ev);
    evs.extend([
        ev(
            "response.output_item.added",
            json!({"output_index": 1, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "", "status": "in_progress"}}),
        ),
        ev(
            "response.function_call_arguments.delta",
            json!({"item_id": "fc_1", "output_index": 1, "delta": "{\"ci"}),
        ),
    ]);
    Reply::SseThenBreak(evs, Duration::ZERO)
}

#[test]
fn a_responses_sources_call_cut_in_its_arguments_ends_with_an_error_event() {
    for client in Wire::ALL {
        let a = MockUpstream::always(responses_call_cut());
        let b = healthy("b");
        let p = Proxy::start(&config(&a, Wire::Responses, &b, ""));
        let s = p.stream(
            &client.url("smart", true),
            client.request("smart", true, true),
        );
        assert!(
            s.text().contains("a tool call was cut"),
            "{client:?}: {}",
            s.text()
        );
        assert_eq!((a.count(), b.count()), (1, 0), "{client:?}");
        if client != Wire::Responses {
            continue;
        }
        // Copied as it came: the failed response still has the arguments streamed.
        let r = failed_response(&s);
        let call = &r["output"][1];
        assert_eq!(call["type"], "function_call", "{r}");
        assert_eq!(call["status"], "incomplete", "{r}");
        assert_eq!(call["arguments"], "{\"ci", "{r}");
    }
}

/// A chat source's stream: text, a call cut inside its arguments, and text that came
/// with and after the call's fragments (held back by encoders that keep a call whole).
fn call_cut_with_text_after() -> Reply {
    let chunk = |delta: Value| {
        data(
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}),
        )
    };
    Reply::SseThenBreak(
        vec![
            chunk(json!({"role": "assistant", "content": "Checking. "})),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"ci"}}]}),
            ),
            chunk(
                json!({"content": "Let me ", "tool_calls": [{"index": 0, "function": {"arguments": "ty\""}}]}),
            ),
            chunk(json!({"content": "see."})),
        ],
        Duration::ZERO,
    )
}

#[test]
fn text_held_behind_a_cut_call_reaches_every_client_before_the_error() {
    // Responses and Anthropic encoders hold text that comes while a call is open until
    // the call ends; a cut call never ended, and the text was lost.
    for client in Wire::ALL {
        let a = MockUpstream::always(call_cut_with_text_after());
        let p = lone(&a, Wire::Chat);
        let s = p.stream(
            &client.url("smart", true),
            client.request("smart", true, true),
        );
        let what = format!("{client:?}: {}", s.text());
        assert_eq!(
            client.read_stream(&s).text,
            "Checking. Let me see.",
            "{what}"
        );
        let evs = events(&s);
        let (kind, last) = evs.last().expect("events").clone();
        let message = match client {
            Wire::Responses => {
                assert_eq!(kind, "response.failed", "{what}");
                last["response"]["error"]["message"].clone()
            }
            _ => json!(client.error_message(&last)),
        };
        let message = message.as_str().unwrap_or_default();
        assert!(
            message.ends_with("; a tool call was cut, so it cannot be continued"),
            "{what}"
        );
        if client == Wire::Anthropic {
            // Blocks do not interleave: the call's block stops before the text's starts.
            let blocks: Vec<(&str, &Value)> = evs
                .iter()
                .filter(|(k, _)| k.starts_with("content_block_"))
                .map(|(k, v)| (k.as_str(), &v["index"]))
                .collect();
            let mut open: Option<&Value> = None;
            for (k, i) in blocks {
                match k {
                    "content_block_start" => {
                        assert!(open.is_none(), "{what}");
                        open = Some(i);
                    }
                    "content_block_delta" => assert_eq!(open, Some(i), "{what}"),
                    _ => open = None,
                }
            }
        }
    }
}

#[test]
fn a_responses_clients_failed_stream_carries_the_text_held_behind_a_cut_call() {
    let a = MockUpstream::always(call_cut_with_text_after());
    let p = lone(&a, Wire::Chat);
    let s = p.stream(
        &Wire::Responses.url("smart", true),
        Wire::Responses.request("smart", true, true),
    );
    let r = failed_response(&s);
    let out: Vec<(&Value, &Value, &Value)> = r["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (&i["type"], &i["status"], &i["content"][0]["text"]))
        .collect();
    let (message, call) = (json!("message"), json!("function_call"));
    let (completed, incomplete) = (json!("completed"), json!("incomplete"));
    assert_eq!(
        out,
        [
            (&message, &completed, &json!("Checking. ")),
            (&call, &incomplete, &Value::Null),
            (&message, &incomplete, &json!("Let me see.")),
        ],
        "{r}"
    );
    assert_eq!(r["output"][1]["arguments"], "{\"city\"", "{r}");
}

/// A refusal cut part-way: `I can't help with `, from a source speaking `wire` (a chat
/// source's `refusal` deltas; a Responses message with `Well. ` as its text part, then
/// a refusal part), then the connection closes.
fn refusal_cut(wire: Wire) -> Reply {
    let said = ["I can't ", "help with "];
    let evs = match wire {
        Wire::Chat => said
            .iter()
            .map(|r| {
                data(
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "refusal": r}, "finish_reason": null}]}),
                )
            })
            .collect(),
        _ => {
            let mut ev = crate::support::wire::sequenced();
            let text = json!({"type": "output_text", "text": "Well. ", "annotations": []});
            let at = |ci: u64| json!({"item_id": "msg_1", "output_index": 0, "content_index": ci});
            let with = |mut v: Value, key: &str, value: Value| {
                v[key] = value;
                v
            };
            let mut evs = vec![
                ev(
                    "response.created",
                    json!({"response": {"id": "resp_a", "object": "response", "created_at": 7, "status": "in_progress", "model": "a-model", "output": []}}),
                ),
                ev(
                    "response.output_item.added",
                    json!({"output_index": 0, "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}}),
                ),
                ev(
                    "response.content_part.added",
                    with(at(0), "part", json!({"type": "output_text", "text": "", "annotations": []})),
                ),
                ev("response.output_text.delta", with(at(0), "delta", json!("Well. "))),
                ev("response.output_text.done", with(at(0), "text", json!("Well. "))),
                ev("response.content_part.done", with(at(0), "part", text)),
                ev(
                    "response.content_part.added",
                    with(at(1), "part", json!({"type": "refusal", "refusal": ""})),
                ),
            ];
            for r in said {
                evs.push(ev("response.refusal.delta", with(at(1), "delta", json!(r))));
            }
            evs
        }
    };
    Reply::SseThenBreak(evs, Duration::ZERO)
}

#[test]
fn a_responses_clients_failed_stream_carries_the_refusal_it_streamed() {
    // Copied from a Responses source, the open message's refusal was not read: the
    // failed response carried a text part of the relay's making in its place.
    for up in [Wire::Chat, Wire::Responses] {
        let a = MockUpstream::always(refusal_cut(up));
        let p = lone(&a, up);
        let s = ask(&p, Wire::Responses);
        let what = format!("{up:?}: {}", s.text());
        let refused: String = events(&s)
            .iter()
            .filter(|(k, _)| k == "response.refusal.delta")
            .filter_map(|(_, v)| v["delta"].as_str())
            .collect();
        assert_eq!(refused, "I can't help with ", "{what}");
        let r = failed_response(&s);
        let mut content = vec![json!({"type": "refusal", "refusal": "I can't help with "})];
        if up == Wire::Responses {
            let text = json!({"type": "output_text", "text": "Well. ", "annotations": []});
            content.insert(0, text);
        }
        let item = &r["output"][0];
        assert_eq!(item["status"], "incomplete", "{what}");
        assert_eq!(item["content"], json!(content), "{what}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.ends_with("; a refusal was cut, so it cannot be continued"),
            "{what}"
        );
    }
}
