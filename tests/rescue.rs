//! Mid-stream rescue: a stream that breaks after sending text is continued by a prefill
//! and spliced into the open stream, in every client protocol; what cannot be continued
//! ends with an error event; retries keep to their budget.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::answer::{self, CANONICAL, Fault};
use crate::support::proxy::Streamed;
use crate::support::wire::{Wire, data};
use crate::support::{MockUpstream, Proxy, Reply, assert_text};

/// Providers `a` (speaking `a_wire`) and `b` (chat), both `prefill: true`, and `smart` =
/// a:m then b:m.
fn config(a: &MockUpstream, a_wire: Wire, b: &MockUpstream, extra: &str) -> String {
    format!(
        "providers:\n  a:\n    api_base: {}\n    api_protocol: {}\n    prefill: true\n    models: [m]\n  b:\n    api_base: {}\n    prefill: true\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\ntimeouts:\n  first_byte_secs: 2\n  first_token_secs: 1\n  idle_secs: 1\nfailover:\n  backoff_ms: 20\n{extra}",
        a.url(),
        a_wire.config_name(),
        b.url()
    )
}

/// An upstream speaking `wire` whose first answer has `fault`; later ones are healthy.
fn faulty_once(wire: Wire, tag: &'static str, fault: Fault) -> MockUpstream {
    MockUpstream::numbered(move |n, req| {
        let f = if n == 0 { fault } else { Fault::None };
        answer::reply(wire, req, tag, f)
    })
}

/// A healthy chat upstream.
fn healthy(tag: &'static str) -> MockUpstream {
    MockUpstream::start(move |req| answer::reply(Wire::Chat, req, tag, Fault::None))
}

/// A client of `wire` asks `smart` for a stream.
fn ask(p: &Proxy, wire: Wire) -> Streamed {
    let mut body = wire.request("smart", true, false);
    if wire == Wire::Chat {
        body["stream_options"] = json!({"include_usage": true});
    }
    p.stream(&wire.url("smart", true), body)
}

/// Each event of a stream as `(name or type, data JSON)`.
fn events(s: &Streamed) -> Vec<(String, Value)> {
    // Google's events end with CRLF CRLF, the others' with LF LF.
    s.text()
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data: String = e.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            let v = serde_json::from_str(&data).unwrap_or(Value::String(data));
            let kind = v["type"].as_str().map_or(name, str::to_string);
            (kind, v)
        })
        .collect()
}

/// Asserts a client of `wire` got one coherent stream carrying the whole answer.
#[track_caller]
fn assert_one_whole_stream(wire: Wire, s: &Streamed) {
    let what = format!("{wire:?} client: {}", s.text());
    assert_eq!(s.status, 200, "{what}");
    let got = wire.read_stream(s);
    assert_text(&got.text, CANONICAL);
    assert!(got.ended, "{what}");
    assert!(s.complete, "{what}");
    let evs = events(s);
    let count = |k: &str| evs.iter().filter(|(n, _)| n == k).count();
    match wire {
        Wire::Chat => {
            let roles = evs
                .iter()
                .filter(|(_, v)| !v["choices"][0]["delta"]["role"].is_null());
            assert_eq!(roles.count(), 1, "one role chunk: {what}");
            let ids: Vec<&Value> = evs.iter().filter_map(|(_, v)| v.get("id")).collect();
            assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id: {what}");
            assert!(evs.iter().all(|(_, v)| v.get("error").is_none()), "{what}");
            let done = evs.iter().filter(|(_, v)| *v == json!("[DONE]")).count();
            assert_eq!(done, 1, "{what}");
        }
        Wire::Anthropic => {
            assert_eq!(count("message_start"), 1, "{what}");
            assert_eq!(count("message_stop"), 1, "{what}");
            assert_eq!(count("message_delta"), 1, "{what}");
            assert_eq!(count("error"), 0, "{what}");
            assert_eq!(count("content_block_start"), 1, "one text block: {what}");
            assert!(
                evs.iter()
                    .filter(|(n, _)| n == "content_block_delta")
                    .all(|(_, v)| v["index"] == 0),
                "{what}"
            );
        }
        Wire::Responses => {
            assert_eq!(count("response.created"), 1, "{what}");
            assert_eq!(count("response.completed"), 1, "{what}");
            assert_eq!(count("response.failed") + count("error"), 0, "{what}");
            let seqs: Vec<u64> = evs
                .iter()
                .map(|(_, v)| v["sequence_number"].as_u64().expect("numbered"))
                .collect();
            let want: Vec<u64> = (0..seqs.len() as u64).collect();
            assert_eq!(seqs, want, "sequence numbers continue: {what}");
            let items: Vec<&Value> = evs
                .iter()
                .filter(|(n, _)| n == "response.output_text.delta")
                .map(|(_, v)| &v["item_id"])
                .collect();
            assert!(items.windows(2).all(|w| w[0] == w[1]), "one item: {what}");
            let done = evs
                .iter()
                .find(|(n, _)| n == "response.output_text.done")
                .expect("text done");
            assert_eq!(done.1["text"], CANONICAL, "{what}");
            let completed = &evs
                .iter()
                .find(|(n, _)| n == "response.completed")
                .unwrap()
                .1;
            let output = &completed["response"]["output"];
            assert_eq!(output.as_array().map(Vec::len), Some(1), "{what}");
            assert_eq!(output[0]["content"][0]["text"], CANONICAL, "{what}");
        }
        Wire::Gemini => {
            assert!(evs.iter().all(|(_, v)| v.get("error").is_none()), "{what}");
            let finishes: Vec<usize> = (0..evs.len())
                .filter(|&i| evs[i].1["candidates"][0]["finishReason"].is_string())
                .collect();
            assert_eq!(finishes, [evs.len() - 1], "one finish, last: {what}");
            assert_eq!(
                evs.last().unwrap().1["candidates"][0]["finishReason"],
                "STOP",
                "{what}"
            );
            let ids: Vec<&Value> = evs.iter().map(|(_, v)| &v["responseId"]).collect();
            assert!(ids[0].is_string(), "{what}");
            assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id: {what}");
        }
    }
}

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
fn a_cut_inside_a_tool_call_ends_with_an_error_event() {
    for client in Wire::ALL {
        let a = faulty_once(Wire::Chat, "a", Fault::ToolCut);
        let b = healthy("b");
        let p = Proxy::start(&config(&a, Wire::Chat, &b, ""));
        let s = p.stream(
            &client.url("smart", true),
            client.request("smart", true, true),
        );
        assert_eq!(s.status, 200, "{client:?}");
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

// ---- The official SDKs accumulate a rescued stream into one message ----

const OPENAI_SCRIPT: &str = r#"
import json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
out = {}
with c.beta.chat.completions.stream(model="smart", messages=msgs) as s:
    out["chat"] = s.get_final_completion().choices[0].message.content
with c.responses.stream(model="smart", input="hi") as s:
    out["responses"] = s.get_final_response().output_text
print(json.dumps(out))
"#;

const ANTHROPIC_SCRIPT: &str = r#"
import json, sys, anthropic
c = anthropic.Anthropic(base_url=sys.argv[1], api_key="unused", max_retries=0)
msgs = [{"role": "user", "content": "hi"}]
with c.messages.stream(model="smart", max_tokens=500, messages=msgs) as s:
    m = s.get_final_message()
print(json.dumps({"text": "".join(b.text for b in m.content if b.type == "text"), "blocks": len(m.content)}))
"#;

/// Runs `script` against a proxy whose `smart` breaks once per request, on `a`'s side.
fn sdk_run(python: &std::path::Path, script: &str) -> Value {
    // Each request's first answer breaks after 20 tokens; its continuation is whole.
    let a = MockUpstream::start(|req| {
        let fault = match answer::prefill(&req.json()) {
            None => Fault::Cut(20),
            Some(_) => Fault::None,
        };
        answer::reply(Wire::Anthropic, req, "a", fault)
    });
    let b = healthy("b");
    let p = Proxy::start(&config(&a, Wire::Anthropic, &b, ""));
    let out = Command::new(python)
        .args(["-c", script, &p.url()])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        b.count() == 0 && a.count() >= 2,
        "every stream was continued"
    );
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

#[test]
fn openai_sdk_accumulates_a_rescued_stream() {
    let Some(python) = crate::sdk::python_with("openai") else {
        return;
    };
    let out = sdk_run(&python, OPENAI_SCRIPT);
    assert_eq!(out["chat"], CANONICAL, "{out}");
    assert_eq!(out["responses"], CANONICAL, "{out}");
}

#[test]
fn anthropic_sdk_accumulates_a_rescued_stream() {
    let Some(python) = crate::sdk::python_with("anthropic") else {
        return;
    };
    let out = sdk_run(&python, ANTHROPIC_SCRIPT);
    assert_eq!(out["text"], CANONICAL, "{out}");
    assert_eq!(out["blocks"], 1, "{out}");
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

// ---- Thinking, usage, caps and keep-alives across a rescue ----

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
    let said = format!("bad\nFAKE forged line \u{202e}txet {}", "x".repeat(2000));
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
        line.contains("a:m: bad\\nFAKE forged line \\u{202e}txet xxx"),
        "{line}"
    );
    assert!(!line.contains('\u{202e}'), "{line}");
    assert!(line.ends_with("x…; continuing it"), "{line}");
    assert!(
        !p.log().iter().any(|l| l.starts_with("FAKE")),
        "{:#?}",
        p.log()
    );
}
