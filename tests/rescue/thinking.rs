//! Thinking, usage, caps, keep-alives and the log line across a rescue.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{ask, assert_one_whole_stream, config, events, faulty_once, healthy};
use crate::support::answer::{self, CANONICAL, Fault};
use crate::support::wire::{Wire, data};
use crate::support::{MockUpstream, Proxy, Reply, assert_text};

/// The thinking of [`thinking_reply`]'s answers, in pieces.
const THOUGHT: [&str; 3] = ["Let me ", "think ", "about this. "];

/// How a [`thinking_reply`] answer goes.
#[derive(Clone, Copy)]
enum Thinks {
    /// Two pieces of thinking, then the connection closes: no signature, no text.
    CutMidThought,
    /// Thinking signed `sig-a`, five tokens of text, then the connection closes.
    CutInText,
    /// Whole: thinking signed `sig-b` (none after a prefill), the text, the end.
    Whole,
}

/// An Anthropic upstream's answer with thinking: the rest of [`CANONICAL`] after the
/// request's prefill, its prompt counted as 10 plus a quarter of the prefill's bytes,
/// its output as one token a piece.
fn thinking_reply(req: &crate::support::upstream::Recorded, how: Thinks) -> Reply {
    use crate::support::wire::named;
    let pre = answer::prefill(&req.json()).unwrap_or_default();
    let rest = CANONICAL.strip_prefix(pre.as_str()).expect("a prefix");
    let toks = answer::tokens(rest);
    let prompt = 10 + pre.len().div_ceil(4);
    let (thought, signature, text): (&[&str], _, &[String]) = match how {
        Thinks::CutMidThought => (&THOUGHT[..2], None, &[]),
        Thinks::CutInText => (&THOUGHT, Some("sig-a"), &toks[..5]),
        Thinks::Whole if !pre.is_empty() => (&[], None, &toks),
        Thinks::Whole => (&THOUGHT, Some("sig-b"), &toks),
    };
    let block = |i: usize, delta: Value| {
        named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i, "delta": delta}),
        )
    };
    let mut evs = vec![named(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_a", "type": "message", "role": "assistant", "model": "a-model",
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": prompt, "output_tokens": 1}}}),
    )];
    let mut i = 0;
    if !thought.is_empty() {
        evs.push(named("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
        for t in thought {
            evs.push(block(0, json!({"type": "thinking_delta", "thinking": t})));
        }
        let Some(sig) = signature else {
            return Reply::SseThenBreak(evs, Duration::from_millis(1));
        };
        evs.push(block(
            0,
            json!({"type": "signature_delta", "signature": sig}),
        ));
        evs.push(named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        i = 1;
    }
    evs.push(named("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})));
    for t in text {
        evs.push(block(i, json!({"type": "text_delta", "text": t})));
    }
    if let Thinks::CutInText = how {
        return Reply::SseThenBreak(evs, Duration::from_millis(1));
    }
    let output = thought.len() + text.len();
    evs.push(named(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": i}),
    ));
    evs.push(named("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": output}})));
    evs.push(named("message_stop", json!({"type": "message_stop"})));
    Reply::Sse(evs, Duration::from_millis(1))
}

/// An Anthropic upstream whose first answer goes `first`; later ones are whole.
fn thinking_once(first: Thinks) -> MockUpstream {
    MockUpstream::numbered(move |n, req| {
        thinking_reply(req, if n == 0 { first } else { Thinks::Whole })
    })
}

#[test]
fn a_thinking_block_cut_before_its_signature_is_closed_apart_from_the_rescued_thinking() {
    let a = thinking_once(Thinks::CutMidThought);
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Anthropic, &b, ""));
    let mut body = Wire::Anthropic.request("smart", true, false);
    body["max_tokens"] = json!(4000);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let s = p.stream(&Wire::Anthropic.url("smart", true), body.clone());
    let what = s.text();
    assert_eq!((a.count(), b.count()), (2, 0), "{what}");
    let evs = events(&s);
    // Each block as the client accumulates it: its start, its deltas, its stop.
    let mut blocks: Vec<Value> = Vec::new();
    let mut order = Vec::new();
    for (kind, v) in &evs {
        let i = v["index"].as_u64().unwrap_or(0) as usize;
        match kind.as_str() {
            "content_block_start" => {
                assert_eq!(i, blocks.len(), "{what}");
                blocks.push(v["content_block"].clone());
                order.push(format!("start {i}"));
            }
            "content_block_delta" => {
                let d = &v["delta"];
                let b = &mut blocks[i];
                match d["type"].as_str().unwrap() {
                    "thinking_delta" => {
                        let t = format!(
                            "{}{}",
                            b["thinking"].as_str().unwrap(),
                            d["thinking"].as_str().unwrap()
                        );
                        b["thinking"] = json!(t);
                    }
                    "signature_delta" => b["signature"] = d["signature"].clone(),
                    "text_delta" => {
                        let t = format!(
                            "{}{}",
                            b["text"].as_str().unwrap(),
                            d["text"].as_str().unwrap()
                        );
                        b["text"] = json!(t);
                    }
                    other => panic!("{other}: {what}"),
                }
            }
            "content_block_stop" => order.push(format!("stop {i}")),
            _ => {}
        }
    }
    assert_eq!(blocks.len(), 3, "{what}");
    // The broken thinking stays as the client got it, closed before anything else, and
    // is not signed with the continuation's signature.
    assert_eq!(blocks[0]["type"], "thinking", "{what}");
    assert_eq!(blocks[0]["thinking"], "Let me think ", "{what}");
    assert_ne!(blocks[0]["signature"], "sig-b", "{what}");
    assert_ne!(blocks[0]["signature"], "", "{what}");
    assert_eq!(order[..3], ["start 0", "stop 0", "start 1"], "{what}");
    // The continuation's thinking is a block of its own, with its own signature.
    assert_eq!(blocks[1]["type"], "thinking", "{what}");
    assert_eq!(blocks[1]["thinking"], THOUGHT.concat(), "{what}");
    assert_eq!(blocks[1]["signature"], "sig-b", "{what}");
    assert_eq!(
        blocks[2],
        json!({"type": "text", "text": CANONICAL}),
        "{what}"
    );
    // A thinking block starts with a signature field, as Anthropic's do.
    for (kind, v) in &evs {
        if kind == "content_block_start" && v["content_block"]["type"] == "thinking" {
            assert_eq!(v["content_block"]["signature"], "", "{what}");
        }
    }
    // Given back on the next turn, only what Claude signed goes to Anthropic.
    body["stream"] = json!(false);
    body["messages"] = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": "go on"},
    ]);
    let r = p.post(Wire::Anthropic.path(), body);
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = a.requests()[2].json();
    assert_eq!(
        sent["messages"][1]["content"],
        json!([blocks[1], blocks[2]]),
        "{sent}"
    );
}

#[test]
fn a_chat_client_reads_the_thinking_a_rescue_says_again_only_once() {
    // Cut inside its thinking, the source is asked again as it was and thinks the same
    // again: the client, which has the first two pieces, gets only the third after them.
    let a = thinking_once(Thinks::CutMidThought);
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Anthropic, &b, ""));
    let s = ask(&p, Wire::Chat);
    let what = s.text();
    assert_eq!((a.count(), b.count()), (2, 0), "{what}");
    let deltas: Vec<Value> = s
        .data()
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .map(|c| c["choices"][0]["delta"].clone())
        .collect();
    let said = |key: &str| -> String { deltas.iter().filter_map(|d| d[key].as_str()).collect() };
    assert_eq!(said("reasoning_content"), THOUGHT.concat(), "{what}");
    assert_eq!(said("content"), CANONICAL, "{what}");
}

#[test]
fn a_rescue_takes_only_its_prefill_off_the_input_tokens() {
    // Cut in its thinking (asked again as it was) or in its text (asked with the text
    // as a prefill); the upstream counts 10 plus the prefill either way.
    for first in [Thinks::CutMidThought, Thinks::CutInText] {
        let a = thinking_once(first);
        let b = healthy("b");
        let p = Proxy::start(&config(&a, Wire::Anthropic, &b, ""));
        let s = ask(&p, Wire::Chat);
        let what = s.text();
        assert_eq!((a.count(), b.count()), (2, 0), "{what}");
        assert_text(&Wire::Chat.read_stream(&s).text, CANONICAL);
        let usage = events(&s)
            .into_iter()
            .find(|(_, v)| v["usage"].is_object())
            .expect("a usage chunk")
            .1["usage"]
            .clone();
        // What the client got before the break, and what the continuation said.
        let (before, output) = match first {
            Thinks::CutMidThought => (
                THOUGHT[..2].concat(),
                THOUGHT.len() + answer::tokens(CANONICAL).len(),
            ),
            _ => {
                let toks = answer::tokens(CANONICAL);
                (THOUGHT.concat() + &toks[..5].concat(), toks.len() - 5)
            }
        };
        assert_eq!(usage["prompt_tokens"], json!(10), "{what}");
        let carried = before.len().div_ceil(4);
        assert_eq!(
            usage["completion_tokens"],
            json!(output + carried),
            "{what}"
        );
        p.wait_log("rescued=1");
    }
}

#[test]
fn a_continuation_asks_for_no_more_than_the_cap_leaves() {
    let toks = answer::tokens(CANONICAL);
    let sent = toks[..20].concat().len().div_ceil(4) as u64;
    // (client, its request's cap, upstream, where the continuation's cap is, the cap)
    let cases = [
        (
            Wire::Anthropic,
            json!({"max_tokens": 100}),
            Wire::Anthropic,
            "/max_tokens",
            Some(100 - sent),
        ),
        (
            Wire::Anthropic,
            json!({"max_tokens": 8}),
            Wire::Anthropic,
            "/max_tokens",
            Some(1),
        ),
        (
            Wire::Anthropic,
            json!({"max_tokens": 100}),
            Wire::Gemini,
            "/generationConfig/maxOutputTokens",
            Some(100 - sent),
        ),
        (
            Wire::Chat,
            json!({"max_completion_tokens": 90}),
            Wire::Chat,
            "/max_completion_tokens",
            Some(90 - sent),
        ),
        (
            Wire::Chat,
            json!({"max_tokens": 90}),
            Wire::Chat,
            "/max_tokens",
            Some(90 - sent),
        ),
        (
            Wire::Gemini,
            json!({"generationConfig": {"maxOutputTokens": 90}}),
            Wire::Chat,
            "/max_tokens",
            Some(90 - sent),
        ),
        (Wire::Chat, json!({}), Wire::Chat, "/max_tokens", None),
    ];
    for (client, cap, up, at, want) in cases {
        let a = faulty_once(up, "a", Fault::Cut(20));
        let b = healthy("b");
        let p = Proxy::start(&config(&a, up, &b, ""));
        let mut body = client.request("smart", true, false);
        for (k, v) in cap.as_object().unwrap() {
            body[k] = v.clone();
        }
        let s = p.stream(&client.url("smart", true), body);
        let what = format!("{client:?} {cap} <- {up:?}: {}", s.text());
        assert_text(&client.read_stream(&s).text, CANONICAL);
        let reqs = a.requests();
        assert_eq!(reqs.len(), 2, "{what}");
        let first = reqs[0].json();
        let cont = reqs[1].json();
        assert!(answer::prefill(&cont).is_some(), "{what}");
        assert_eq!(
            cont.pointer(at).and_then(Value::as_u64),
            want,
            "{what}: {cont}"
        );
        if want.is_some() {
            assert!(
                first.pointer(at).and_then(Value::as_u64) > want,
                "{what}: {first}"
            );
        }
    }
}

#[test]
fn keep_alives_after_text_do_not_hold_off_a_rescue() {
    // Five tokens, then only keep-alives (SSE comments; Anthropic's pings) for 4 s:
    // stalled for `idle_secs` (1 s) after its last token, the stream goes to `b`.
    let keep_alive = |wire: Wire| match wire {
        Wire::Anthropic => crate::support::wire::named("ping", json!({"type": "ping"})),
        _ => ": keep-alive\n\n".to_string(),
    };
    for up in [Wire::Chat, Wire::Anthropic] {
        let a = MockUpstream::numbered(move |n, req| {
            if n > 0 {
                return answer::reply(up, req, "a", Fault::None);
            }
            let toks = answer::tokens(CANONICAL);
            let mut evs = answer::events(up, "a", &toks, 10, Fault::Cut(5));
            evs.extend((0..40).map(|_| keep_alive(up)));
            Reply::SseThenBreak(evs, Duration::from_millis(100))
        });
        let b = healthy("b");
        let p = Proxy::start(&config(&a, up, &b, ""));
        let started = Instant::now();
        let s = ask(&p, Wire::Chat);
        let took = started.elapsed();
        assert_one_whole_stream(Wire::Chat, &s);
        assert_eq!((a.count(), b.count()), (1, 1), "{up:?}");
        assert!(took < Duration::from_secs(3), "{up:?}: {took:?}");
        p.wait_log("rescued=1 rescued_by=b:m");
    }
}

#[test]
fn a_long_thinking_phase_is_not_cut_for_idleness() {
    // Thinking deltas 0.4 s apart for 2.4 s, with pings between: longer than
    // `idle_secs` (1 s) in all, never silent that long between pieces of thinking.
    use crate::support::wire::named;
    let thinking = |t: &str| {
        named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": t}}),
        )
    };
    let a = MockUpstream::start(move |req| {
        let Reply::Sse(whole, _) = thinking_reply(req, Thinks::Whole) else {
            unreachable!("a whole answer")
        };
        // The head and the rest each written at once; the thinking 0.2 s a piece.
        let mut evs = vec![whole[..2].concat()];
        for _ in 0..6 {
            evs.push(thinking("hm "));
            evs.push(named("ping", json!({"type": "ping"})));
        }
        evs.push(whole[2..].concat());
        Reply::Sse(evs, Duration::from_millis(200))
    });
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Anthropic, &b, ""));
    let s = ask(&p, Wire::Chat);
    assert_text(&Wire::Chat.read_stream(&s).text, CANONICAL);
    assert_eq!((a.count(), b.count()), (1, 0), "{}", s.text());
    p.wait_log("stream=complete");
}

#[test]
fn the_text_log_shows_the_only_attempt_when_it_broke() {
    let a = MockUpstream::start(|req| answer::reply(Wire::Chat, req, "a", Fault::Cut(5)));
    let yaml = format!(
        "providers:\n  a:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m]\n",
        a.url()
    );
    let p = Proxy::start(&yaml);
    let s = ask(&p, Wire::Chat);
    assert!(
        s.text().contains("no endpoint could continue it"),
        "{}",
        s.text()
    );
    let line = p.wait_log("stream=broken");
    assert!(line.contains("attempts=1 tried=a:m→200:broken"), "{line}");
}

#[test]
fn a_continuation_to_anthropic_asks_without_thinking_which_refuses_a_text_prefill() {
    // Anthropic with thinking on: "a final `assistant` message must start with a
    // thinking block".
    let a = MockUpstream::numbered(|n, req| {
        let body = req.json();
        let prefilled = body["messages"].as_array().unwrap().last().unwrap()["role"] == "assistant";
        match n {
            0 => thinking_reply(req, Thinks::CutInText),
            _ if prefilled && body.get("thinking").is_some() => Reply::json(
                400,
                json!({"type": "error", "error": {"type": "invalid_request_error",
                    "message": "messages.1.content.0.type: Expected `thinking` or \
                    `redacted_thinking`, but found `text`. When `thinking` is enabled, a final \
                    `assistant` message must start with a thinking block."}}),
            ),
            _ => thinking_reply(req, Thinks::Whole),
        }
    });
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Anthropic, &b, ""));
    let mut body = Wire::Anthropic.request("smart", true, false);
    body["max_tokens"] = json!(4000);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let s = p.stream(&Wire::Anthropic.url("smart", true), body);
    let what = s.text();
    assert_eq!((a.count(), b.count()), (2, 0), "{what}");
    assert_text(&Wire::Anthropic.read_stream(&s).text, CANONICAL);
    let continued = a.requests()[1].json();
    assert!(continued.get("thinking").is_none(), "{continued}");
    p.wait_log("rescued=1");
}

#[test]
fn the_rescue_log_line_quotes_an_upstreams_words_escaped_and_short() {
    // An error event's message went into the line as it came: a bidirectional override
    // made the line read other than it is, and nothing bounded its length.
    let said = format!("bad\nFAKE forged line \u{202e}txet {}", "x ".repeat(1000));
    let a = MockUpstream::start(move |req| {
        match answer::reply(Wire::Chat, req, "a", Fault::ErrorEvent(3)) {
            Reply::Sse(mut evs, gap) => {
                evs.pop();
                evs.push(data(json!({"error": {"message": said, "code": 400}})));
                Reply::Sse(evs, gap)
            }
            other => other,
        }
    });
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Chat, &b, ""));
    let s = ask(&p, Wire::Chat);
    assert!(s.text().contains("data: [DONE]"), "{}", s.text());
    let line = p.wait_log("; continuing it");
    assert!(
        line.contains(
            "a:m: upstream `a` stopped part-way through its answer (it sent an error: bad\\nFAKE forged line \\u{202e}txet x x x"
        ),
        "{line}"
    );
    assert!(!line.contains('\u{202e}'), "{line}");
    // Its first 200 characters, as the client's error event has them.
    assert!(line.ends_with(" x); continuing it"), "{line}");
    assert!(line.chars().count() < 400, "{line}");
    assert!(
        !p.log().iter().any(|l| l.starts_with("FAKE")),
        "{:#?}",
        p.log()
    );
}

#[test]
fn reasoning_named_reasoning_said_again_after_a_cut_is_read_once() {
    // OpenRouter and Ollama name a chat delta's reasoning `reasoning`: asked again
    // after a cut inside it, the source thinks the same again.
    let chunk = |delta: Value, finish: Value| {
        data(
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    let thought = |upto: usize| {
        THOUGHT[..upto]
            .iter()
            .map(|t| chunk(json!({"reasoning": t}), Value::Null))
    };
    let mut cut = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    cut.extend(thought(2));
    let mut whole = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    whole.extend(thought(3));
    whole.push(chunk(json!({"content": "Done."}), Value::Null));
    whole.push(chunk(json!({}), json!("stop")));
    whole.push("data: [DONE]\n\n".into());
    // Each request's first answer is cut, its second whole.
    let a = MockUpstream::numbered(move |n, _| match n % 2 {
        0 => Reply::SseThenBreak(cut.clone(), Duration::ZERO),
        _ => Reply::Sse(whole.clone(), Duration::ZERO),
    });
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Chat, &b, ""));
    for client in [Wire::Chat, Wire::Responses, Wire::Gemini] {
        let s = ask(&p, client);
        let what = s.text();
        let said = match client {
            Wire::Chat => s
                .data()
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|c| {
                    let d = &c["choices"][0]["delta"];
                    d["reasoning"]
                        .as_str()
                        .or(d["reasoning_content"].as_str())
                        .map(str::to_string)
                })
                .collect::<String>(),
            Wire::Responses => events(&s)
                .iter()
                .filter(|(k, _)| k == "response.reasoning_summary_text.delta")
                .filter_map(|(_, v)| v["delta"].as_str().map(str::to_string))
                .collect(),
            _ => events(&s)
                .iter()
                .flat_map(|(_, v)| {
                    v["candidates"][0]["content"]["parts"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter(|p| p["thought"] == json!(true))
                .filter_map(|p| p["text"].as_str().map(str::to_string))
                .collect(),
        };
        assert_eq!(said, THOUGHT.concat(), "{client:?}: {what}");
        assert_eq!(client.read_stream(&s).text, "Done.", "{client:?}: {what}");
    }
    assert_eq!(b.count(), 0);
}
