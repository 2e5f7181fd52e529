//! Random-input fuzzing of the parsers and translators, for a bounded time (`make fuzz`).
//!
//! `cargo run --release --example fuzz -- SECONDS [SEED]` mutates seed inputs (byte
//! flips, insertions, deletions, splices, truncations) and feeds them to the config
//! loader, the request-body splitter, the SSE parser and every protocol translator and
//! stream decoder. A panic is a bug: the input that caused it is printed (and saved
//! under `target/fuzz-crashes/`) so it can become a regression test. This is not
//! coverage-guided: cargo-fuzz needs a nightly toolchain, which these machines lack.

use std::panic;
use std::time::{Duration, Instant};

use routeplane::body::RawBody;
use routeplane::config;
use routeplane::protocol::{Asked, Protocol, Source, responses};
use routeplane::sse::{Event, Parser};

/// A small deterministic generator (xorshift64*), so a seed reproduces a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Sources under each id rule (OpenAI's, Mistral's).
const SOURCES: &[Source<'static>] = &[
    Source {
        provider: "p",
        api_base: "http://127.0.0.1:1/v1",
        model: "m",
    },
    Source {
        provider: "p",
        api_base: "http://127.0.0.1:1/v1",
        model: "devstral",
    },
];

const SEEDS: &[&str] = &[
    "providers:\n  x:\n    api_base: http://h/v1\n    api_key: ${K:-v}\n    api_protocol:\n      - \"claude-*\": anthropic\n    models:\n      - id: m\n        provider_model_id: n\nmodels:\n  s:\n    endpoints: [x:m, {provider: x, service_id: m}]\n",
    r#"{"model":"m","stream":true,"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"auto"}"#,
    r#"{"model":"m","max_tokens":9,"system":"s","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":"x"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}}]}],"thinking":{"type":"enabled","budget_tokens":9000}}"#,
    r#"{"model":"m","instructions":"i","input":[{"type":"message","role":"user","content":"hi"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"o"}]}"#,
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\"}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n\ndata: {\"type\":\"message_stop\"}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"function_call\",\"id\":\"fc\",\"call_id\":\"c\",\"name\":\"f\"}}\n\ndata: {\"type\":\"response.function_call_arguments.delta\",\"output_index\":0,\"delta\":\"{}\"}\n\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{}}}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\",\"tool_calls\":[{\"index\":3,\"function\":{\"arguments\":\"{\"}}]},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n",
    r#"{"systemInstruction":{"parts":[{"text":"s"}]},"contents":[{"role":"user","parts":[{"text":"hi"},{"inlineData":{"mimeType":"image/png","data":"AA"}}]},{"role":"model","parts":[{"functionCall":{"name":"f","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"output":"o"}}}]}],"generationConfig":{"topK":3,"responseMimeType":"application/json","responseSchema":{"type":"OBJECT"},"thinkingConfig":{"thinkingBudget":9000}},"tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"OBJECT"}}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f"]}}}"#,
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"t\",\"thought\":true},{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":1},\"promptFeedback\":{}}\r\n\r\n",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = rng.next() as u8;
            }
            1 => {
                const BYTES: &[u8] = b"{}[]\":,\n\\ 0a-";
                v.insert(at, BYTES[rng.below(BYTES.len())]);
            }
            2 if at < v.len() => {
                v.remove(at);
            }
            3 => v.truncate(at),
            4 => {
                let other = SEEDS[rng.below(SEEDS.len())].as_bytes();
                let from = rng.below(other.len());
                let len = rng.below(64).min(other.len() - from);
                v.splice(at..at, other[from..from + len].iter().copied());
            }
            _ => {
                let n = rng.below(4);
                let chunk: Vec<u8> = v[at..].iter().take(16).copied().collect();
                for _ in 0..n {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
        }
    }
    v
}

/// Runs every target on one input.
fn exercise(input: &[u8]) {
    // Whatever tool the input names may be a custom one (Responses clients'), and a
    // `local_shell` call the client's local shell.
    let asked = Asked {
        include_usage: true,
        client_tools: responses::ClientTools {
            custom: vec!["f".into(), "get_weather".into()],
            local_shell: true,
        },
        thinks: input.first().is_some_and(|b| b & 1 == 1),
        // The input's own fields, as a Responses client's answer repeats them.
        echo: RawBody::parse(input.to_vec())
            .map(|body| responses::Echo::of(&body))
            .unwrap_or_default(),
    };
    let text = String::from_utf8_lossy(input);
    let _ = config::parse(&text);
    if let Ok(body) = RawBody::parse(input.to_vec()) {
        let _ = body.routing();
        let _ = body.with_model("x");
        let _ = body.without_model();
        let _ = Asked::of(Protocol::Responses, &body);
        if let Ok(v) = body.to_value() {
            for (p, to) in Protocol::ALL
                .into_iter()
                .flat_map(|p| SOURCES.iter().map(move |to| (p, to)))
            {
                let _ = p.must_mend(&body, to);
                p.mend(&mut v.clone(), to);
                if let Ok(chat) = p.request_to_chat(v.clone(), true) {
                    for up in Protocol::ALL {
                        let _ = up.request_from_chat(chat.clone(), to);
                    }
                }
                if let Ok(chat) = p.response_to_chat(v.clone()) {
                    for client in Protocol::ALL {
                        let _ = client.response_from_chat(chat.clone(), &asked);
                    }
                }
            }
        }
    }
    for split in [1usize, 7, 64] {
        let mut parser = Parser::new(4096);
        let mut events: Vec<Event> = Vec::new();
        for piece in input.chunks(split) {
            if parser.feed(piece, &mut events).is_err() {
                break;
            }
        }
        for up in Protocol::ALL {
            let mut d = up.decoder(true);
            for client in Protocol::ALL {
                let mut e = client.encoder("m", &asked);
                for ev in &events {
                    if let routeplane::protocol::Decoded::Chunks(cs)
                    | routeplane::protocol::Decoded::End(cs) = d.event(ev)
                    {
                        for c in &cs {
                            let _ = e.chunk(c);
                        }
                    }
                }
                let _ = e.finish();
                let _ = e.fail(500, "x", "so far", "");
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(secs);
    panic::set_hook(Box::new(|_| {}));
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let seed_input = SEEDS[rng.below(SEEDS.len())].as_bytes();
        let input = mutate(&mut rng, seed_input);
        if panic::catch_unwind(|| exercise(&input)).is_err() {
            let dir = std::path::Path::new("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(dir);
            let path = dir.join(format!("crash-{seed}-{runs}"));
            let _ = std::fs::write(&path, &input);
            eprintln!(
                "fuzz: a panic after {runs} inputs; input saved to {}:\n{}",
                path.display(),
                String::from_utf8_lossy(&input)
            );
            std::process::exit(1);
        }
        runs += 1;
    }
    println!("fuzz: {runs} inputs in {secs}s (seed {seed}), no panic");
}
