//! Safety blocks as a reason to fail over, like a content filter, and the client's answer
//! when no endpoint is left.

use super::*;

/// A Gemini answer that the safety filter blocked: the prompt, or the answer.
fn blocked_replies() -> [Reply; 2] {
    [
        Reply::json(
            200,
            json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}),
        ),
        Reply::json(
            200,
            json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "PROHIBITED_CONTENT", "index": 0}]}),
        ),
    ]
}

#[test]
fn a_safety_block_fails_over_like_a_content_filter() {
    for blocked in blocked_replies() {
        for stream in [false, true] {
            let sse = match &blocked {
                Reply::Json(_, body) => {
                    Reply::Sse(vec![format!("data: {body}\r\n\r\n")], Default::default())
                }
                _ => unreachable!(),
            };
            let a = MockUpstream::always(if stream { sse } else { blocked.clone() });
            let b = MockUpstream::start(move |_| {
                if stream {
                    Reply::Sse(chat_events(2, true), Default::default())
                } else {
                    Reply::json(200, chat_answer("from b"))
                }
            });
            let dir = Dir::new();
            let ledger = dir.path().join("usage.jsonl");
            let p = Proxy::start(&format!(
                "providers:\n  a:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\nusage:\n  path: {}\n",
                a.url(),
                b.url(),
                ledger.display()
            ));
            let want = if stream { "t0t1" } else { "from b" };
            let resp = if stream {
                let s = p.stream(
                    "/v1/chat/completions",
                    json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
                );
                Wire::Chat.read_stream(&s).text
            } else {
                let r = p.post(
                    "/v1/chat/completions",
                    json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
                );
                Wire::Chat.read(&r).text
            };
            assert_eq!(resp, want, "stream={stream}");
            assert_eq!(a.count(), 1);
            assert_eq!(b.count(), 1);
            // The attempt moved past is told with the status Gemini answered, stream or not.
            let line = p.wait_log("served_by=b:m");
            assert!(line.contains("tried=a:m→200:filter,b:m→200"), "{line}");
            let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
            assert!(wait_until(Duration::from_secs(10), || !read().is_empty()));
            let first: Value = serde_json::from_str(read().lines().next().unwrap()).unwrap();
            assert_eq!(
                first["failed"],
                json!([{"endpoint": "a:m", "status": 200, "reason": "content filtered"}]),
                "stream={stream}"
            );
            // A filter is about this prompt, not the endpoint: no cool-down, `a` first again.
            let again = p.post(
                "/v1/chat/completions",
                json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
            );
            assert_eq!(again.status, 200);
            assert_eq!(
                a.count(),
                2,
                "stream={stream}: a filtered answer cools nothing down"
            );
        }
    }
}

#[test]
fn a_safety_block_with_no_endpoint_left_is_the_clients_answer() {
    // Google's own answer is a 200 the SDKs read (`prompt_feedback.block_reason`); a
    // client of another format gets its format's filtered answer, not an invented error.
    for blocked in blocked_replies() {
        let Reply::Json(_, body) = &blocked else {
            unreachable!()
        };
        let sent: Value = serde_json::from_str(body).unwrap();
        let sse = Reply::Sse(vec![format!("data: {body}\r\n\r\n")], Duration::ZERO);
        let a = MockUpstream::start(move |r| {
            if r.path.contains("alt=sse") {
                sse.clone()
            } else {
                blocked.clone()
            }
        });
        let dir = Dir::new();
        let ledger = dir.path().join("usage.jsonl");
        // Named otherwise than `gemini`.
        let p = Proxy::start(&format!(
            "providers:\n  gm:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\nusage:\n  path: {}\n",
            a.url(),
            ledger.display()
        ));
        let mut answered = 0;
        for client in [Wire::Gemini, Wire::Chat, Wire::Anthropic, Wire::Responses] {
            for stream in [false, true] {
                let (url, req) = (client.url("m", stream), client.request("m", stream, false));
                let said = format!("{client:?} stream={stream}");
                let (status, data) = if stream {
                    let s = p.stream(&url, req);
                    assert!(s.complete, "{said}");
                    (s.status, s.data())
                } else {
                    let r = p.post(&url, req);
                    (r.status, vec![r.body])
                };
                assert_eq!(status, 200, "{said}: {data:?}");
                answered += 1;
                let events: Vec<Value> = data
                    .iter()
                    .filter_map(|d| serde_json::from_str(d).ok())
                    .collect();
                let has = |f: &dyn Fn(&Value) -> bool| events.iter().any(f);
                match (client, stream) {
                    // The same protocol: Google's answer as it came.
                    (Wire::Gemini, _) => assert_eq!(events, std::slice::from_ref(&sent), "{said}"),
                    (Wire::Chat, false) => {
                        let choice = &events[0]["choices"][0];
                        assert_eq!(choice["finish_reason"], "content_filter", "{said}");
                        assert_eq!(choice["message"]["content"], "", "{said}");
                    }
                    (Wire::Chat, true) => {
                        assert!(has(
                            &|e| e["choices"][0]["finish_reason"] == "content_filter"
                        ));
                        assert!(!has(&|e| e["choices"][0]["delta"]["content"]
                            .as_str()
                            .is_some_and(|t| !t.is_empty())));
                        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{said}");
                    }
                    (Wire::Anthropic, false) => {
                        assert_eq!(events[0]["stop_reason"], "refusal", "{said}: {events:?}");
                        assert_eq!(events[0]["content"], json!([]), "{said}");
                    }
                    (Wire::Anthropic, true) => {
                        assert!(
                            has(&|e| e["delta"]["stop_reason"] == "refusal"),
                            "{said}: {events:?}"
                        );
                        assert!(has(&|e| e["type"] == "message_stop"), "{said}");
                    }
                    (Wire::Responses, false) => {
                        assert_eq!(events[0]["status"], "incomplete", "{said}");
                        assert_eq!(
                            events[0]["incomplete_details"]["reason"], "content_filter",
                            "{said}"
                        );
                    }
                    (Wire::Responses, true) => {
                        assert!(
                            has(&|e| e["type"] == "response.incomplete"
                                && e["response"]["incomplete_details"]["reason"]
                                    == "content_filter"),
                            "{said}: {events:?}"
                        );
                    }
                }
            }
        }
        // Answered by `gm`, as the ledger says: no failure invented.
        let read = || std::fs::read_to_string(&ledger).unwrap_or_default();
        assert!(wait_until(Duration::from_secs(10), || read()
            .lines()
            .count()
            >= answered));
        for line in read().lines() {
            let line: Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                (&line["status"], &line["served_by"], &line["failed"]),
                (&json!(200), &json!("gm:m"), &json!([])),
                "{line}"
            );
        }
        assert_eq!(a.count(), answered, "nothing asked twice");
    }
}

#[test]
fn a_gemini_client_of_a_gemini_source_also_moves_on_from_a_block() {
    for stream in [false, true] {
        let [blocked, _] = blocked_replies();
        let a = MockUpstream::always(match blocked {
            Reply::Json(_, body) if stream => {
                Reply::Sse(vec![format!("data: {body}\r\n\r\n")], Default::default())
            }
            other => other,
        });
        let b = MockUpstream::start(|req| {
            let stream = String::from_utf8_lossy(&req.body).contains("\"stream\":true");
            Wire::Chat.reply(stream, false)
        });
        let p = Proxy::start(&format!(
            "providers:\n  a:\n    api_base: {}\n    api_protocol: gemini\n    models: [m]\n  b:\n    api_base: {}\n    models: [m]\nmodels:\n  smart:\n    endpoints: [a:m, b:m]\n",
            a.url(),
            b.url()
        ));
        let text = if stream {
            let s = p.stream(&Wire::Gemini.url("smart", true), ask());
            Wire::Gemini.read_stream(&s).text
        } else {
            let r = p.post(&Wire::Gemini.url("smart", false), ask());
            Wire::Gemini.read(&r).text
        };
        assert_eq!(text, "Hello there", "stream={stream}");
        assert_eq!((a.count(), b.count()), (1, 1), "stream={stream}");
    }
}
