//! Parameters through a translation: no more stop sequences than the source takes, and
//! the knobs a source refuses, left out and remembered, or the client's own error.

use serde_json::json;

use crate::support::wire::{Wire, sources};
use crate::support::{MockUpstream, Reply, assert_text};

#[test]
fn openais_api_gets_at_most_four_stop_sequences_and_the_log_says_so() {
    // An Anthropic client may send any number; OpenAI's API refuses more than four.
    // A server of open models takes them all.
    let openai = MockUpstream::always(Wire::Chat.reply(false, false));
    let local = MockUpstream::always(Wire::Chat.reply(false, false));
    let p = sources(&[
        ("openai", Wire::Chat, &openai, "gpt-4o"),
        ("local", Wire::Chat, &local, "llama"),
    ]);
    let stops = json!(["A", "B", "C", "D", "E"]);
    for model in ["gpt-4o", "llama"] {
        let mut body = Wire::Anthropic.request(model, false, false);
        body["stop_sequences"] = stops.clone();
        let r = p.post(Wire::Anthropic.path(), body);
        assert_eq!(r.status, 200, "{model}: {}", r.body);
    }
    assert_eq!(
        openai.posts()[0].json()["stop"],
        json!(["A", "B", "C", "D"])
    );
    assert_eq!(local.posts()[0].json()["stop"], stops);
    let line = p.wait_log("OpenAI takes at most 4 stop sequences");
    assert!(line.contains("first 4 of the 5 asked"), "{line}");
}

/// OpenAI's refusal of `param` by a reasoning model (o1, o3, gpt-5…), as its Chat
/// Completions and Responses APIs say it.
fn refusal(param: &str) -> String {
    let (message, code) = match param {
        "temperature" => (
            "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.".to_string(),
            "unsupported_value",
        ),
        "max_tokens" => (
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.".to_string(),
            "unsupported_parameter",
        ),
        p => (
            format!("Unsupported parameter: '{p}' is not supported with this model."),
            "unsupported_parameter",
        ),
    };
    json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
        .to_string()
}

/// A `wire` source whose model refuses each of `params` a request carries, one at a
/// time as OpenAI does, and answers a request without any of them.
fn refusing(wire: Wire, params: &'static [&'static str]) -> MockUpstream {
    refusing_in(wire, params, refusal)
}

/// A source's refusal of a parameter, as the body of its 400.
type Words = fn(&str) -> String;

/// [`refusing`], the refusal's body in `words`.
fn refusing_in(wire: Wire, params: &'static [&'static str], words: Words) -> MockUpstream {
    MockUpstream::start(move |req| {
        let body = req.json();
        match params.iter().find(|p| body.get(**p).is_some()) {
            Some(p) => Reply::Json(400, words(p)),
            None => wire.reply(false, false),
        }
    })
}

/// DeepSeek's reasoner's refusal of `param`, as reported in deepseek-ai/DeepSeek-R1#7
/// (`temperature`) and lollipopkit/flutter_gpt_box#213 (`presence_penalty`, whole body).
fn deepseek_refusal(param: &str) -> String {
    json!({"error": {"message": format!("deepseek-reasoner does not support the parameter `{param}`"),
        "type": "invalid_request_error", "param": null, "code": "invalid_request_error"}})
    .to_string()
}

/// Kimi's refusal of a temperature other than 1 (kimi-k2.5, k3), as reported in
/// countbot-ai/CountBot#61 and opencyvis/opencyvis-phone#12.
fn kimi_refusal(param: &str) -> String {
    json!({"error": {"message": format!("invalid {param}: only 1 is allowed for this model"),
        "type": "invalid_request_error"}})
    .to_string()
}

/// Anthropic's refusal of a sampling knob by Claude Opus 4.7 and later, as reported in
/// RooCode#12162 (whole body), vellum-assistant#35820 (`top_k`) and CLIProxyAPI#4383
/// (`top_p`).
fn anthropic_deprecated(param: &str) -> String {
    json!({"type": "error", "error": {"type": "invalid_request_error",
        "message": format!("`{param}` is deprecated for this model.")},
        "request_id": "req_011CdiGoqGztGDh6yhEmTzLF"})
    .to_string()
}

#[test]
fn knobs_deepseek_and_kimi_refuse_in_their_own_words_are_left_out_and_remembered() {
    // A Gemini client's temperature and presence penalty, translated for
    // deepseek-reasoner, which refuses each; an Anthropic client's temperature for Kimi.
    let cases: [(Wire, &'static [&'static str], Words, usize); 2] = [
        (
            Wire::Gemini,
            &["temperature", "presence_penalty"],
            deepseek_refusal,
            3,
        ),
        (Wire::Anthropic, &["temperature"], kimi_refusal, 2),
    ];
    for (client, params, words, asked) in cases {
        let up = refusing_in(Wire::Chat, params, words);
        let p = Wire::Chat.serving(&up, "m");
        let mut body = client.request("m", false, false);
        match client {
            Wire::Gemini => {
                body["generationConfig"] = json!({"temperature": 0.2, "presencePenalty": 0.5});
            }
            _ => body["temperature"] = json!(0.2),
        }
        let r = p.post(&client.url("m", false), body.clone());
        assert_eq!(r.status, 200, "{params:?}: {}", r.body);
        assert_eq!(client.read(&r).text, "Hello there", "{params:?}");
        let sent = up.posts();
        assert_eq!(sent.len(), asked, "{params:?}: once more for each");
        for param in params {
            assert!(sent[0].json().get(*param).is_some(), "{param}");
            assert_eq!(sent[asked - 1].json().get(*param), None, "{param}");
            p.wait_log(&format!("the model refused `{param}`"));
        }
        assert_eq!(
            sent[asked - 1].json()["messages"],
            sent[0].json()["messages"]
        );
        // Remembered: the next request is asked once, without them.
        let r = p.post(&client.url("m", false), body);
        assert_eq!(r.status, 200, "{params:?}: {}", r.body);
        assert_eq!(r.header("x-routeplane-attempts"), Some("1"));
        assert_eq!(up.posts().len(), asked + 1, "{params:?}");
    }
}

#[test]
fn knobs_anthropic_refuses_are_left_out_of_a_translated_request_and_remembered() {
    // Claude Opus 4.7 and later take no temperature, top_p or top_k: a Gemini client's
    // three, refused one at a time in Anthropic's words, are left out one by one.
    let up = refusing_in(
        Wire::Anthropic,
        &["temperature", "top_p", "top_k"],
        anthropic_deprecated,
    );
    let p = Wire::Anthropic.serving(&up, "m");
    let mut body = Wire::Gemini.request("m", false, false);
    body["generationConfig"] = json!({"temperature": 0.2, "topP": 0.9, "topK": 5});
    let r = p.post(&Wire::Gemini.url("m", false), body.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(Wire::Gemini.read(&r).text, "Hello there");
    let sent = up.posts();
    assert_eq!(sent.len(), 4, "once more for each");
    assert_eq!(sent[0].json()["top_k"], 5, "{}", sent[0].json());
    let last = sent[3].json();
    for param in ["temperature", "top_p", "top_k"] {
        assert_eq!(last.get(param), None, "{param}: {last}");
    }
    // Anthropic's own required limit stays.
    assert!(last["max_tokens"].is_u64(), "{last}");
    let logged = p.wait_log("POST /v1beta/models/m:generateContent");
    assert!(
        logged
            .contains("tried=up:m→400:no_temperature,up:m→400:no_top_p,up:m→400:no_top_k,up:m→200"),
        "{logged}"
    );
    assert_eq!(p.post(&Wire::Gemini.url("m", false), body).status, 200);
    assert_eq!(up.posts().len(), 5);
    assert_eq!(up.posts()[4].json().get("temperature"), None);

    // Claude 4.5 and later take temperature or top_p, not both: top_p is left out, the
    // client's temperature kept (reported in ChatterUI#564, langfuse#9882).
    let up = MockUpstream::start(|req| {
        let body = req.json();
        if body.get("temperature").is_some() && body.get("top_p").is_some() {
            let message = "`temperature` and `top_p` cannot both be specified for this model. Please use only one.";
            let error = json!({"type": "error", "error": {"type": "invalid_request_error", "message": message},
                "request_id": "req_011CTLK54w9XLMYuwBfczGqu"});
            return Reply::Json(400, error.to_string());
        }
        Wire::Anthropic.reply(false, false)
    });
    let p = Wire::Anthropic.serving(&up, "m");
    let mut chat = Wire::Chat.request("m", false, false);
    chat["temperature"] = json!(0.2);
    chat["top_p"] = json!(0.9);
    let r = p.post(Wire::Chat.path(), chat.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(Wire::Chat.read(&r).text, "Hello there");
    let sent = up.posts();
    assert_eq!(sent.len(), 2, "asked again at once");
    assert_eq!(sent[1].json()["temperature"], 0.2);
    assert_eq!(sent[1].json().get("top_p"), None);
    p.wait_log("the model refused `top_p`; asked again without it, and so from now on");
    assert_eq!(p.post(Wire::Chat.path(), chat).status, 200);
    assert_eq!(up.posts().len(), 3);
}

#[test]
fn an_anthropic_clients_own_knob_refused_is_its_error_unchanged() {
    // Written for Anthropic, the request is the client's choice, as a chat client's is.
    let up = refusing_in(Wire::Anthropic, &["temperature"], anthropic_deprecated);
    let p = Wire::Anthropic.serving(&up, "m");
    let mut own = Wire::Anthropic.request("m", false, false);
    own["temperature"] = json!(0.2);
    let r = p.post(Wire::Anthropic.path(), own);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        Wire::Anthropic.error_message(&r.json()),
        "`temperature` is deprecated for this model."
    );
    assert_eq!(up.posts().len(), 1);
}

#[test]
fn a_stop_a_reasoning_model_refuses_is_left_out_of_a_translated_request_and_remembered() {
    // Claude Code's stop sequences, translated for gpt-5 or o3, which take none.
    let up = refusing(Wire::Chat, &["stop"]);
    let p = Wire::Chat.serving(&up, "m");
    let mut claude = Wire::Anthropic.request("m", false, false);
    claude["stop_sequences"] = json!(["###"]);
    let r = p.post(Wire::Anthropic.path(), claude.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(Wire::Anthropic.read(&r).text, "Hello there");
    let sent = up.posts();
    assert_eq!(sent.len(), 2, "asked again at once");
    assert_eq!(sent[0].json()["stop"], json!(["###"]));
    assert_eq!(sent[1].json().get("stop"), None);
    assert_eq!(sent[1].json()["messages"], sent[0].json()["messages"]);
    // Each request sent is an attempt: the refused one is in the count and the log.
    assert_eq!(r.header("x-routeplane-attempts"), Some("2"));
    let line = p.wait_log("the model refused `stop`");
    assert!(line.contains("up:m: "), "{line}");
    let logged = p.wait_log("POST /v1/messages");
    assert!(
        logged.contains("attempts=2 tried=up:m→400:no_stop,up:m→200"),
        "{logged}"
    );
    // Remembered: the next turn goes without it from the first try.
    let r = p.post(Wire::Anthropic.path(), claude);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-routeplane-attempts"), Some("1"));
    let sent = up.posts();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].json().get("stop"), None);
}

#[test]
fn a_chat_clients_own_parameter_refused_is_its_error_unchanged() {
    // Written for this source, the request is the client's choice: the source's 400
    // as it came, asked once, even after a translated request taught Routeplane.
    let up = refusing(Wire::Chat, &["stop"]);
    let p = Wire::Chat.serving(&up, "m");
    let mut own = Wire::Chat.request("m", false, false);
    own["stop"] = json!(["###"]);
    let r = p.post(Wire::Chat.path(), own.clone());
    assert_eq!(r.status, 400, "{}", r.body);
    assert_text(&r.body, &refusal("stop"));
    assert_eq!(up.posts().len(), 1);
    let mut claude = Wire::Anthropic.request("m", false, false);
    claude["stop_sequences"] = json!(["###"]);
    assert_eq!(p.post(Wire::Anthropic.path(), claude).status, 200);
    assert_eq!(up.posts().len(), 3);
    let r = p.post(Wire::Chat.path(), own);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_text(&r.body, &refusal("stop"));
    let sent = up.posts();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3].json()["stop"], json!(["###"]));
}

#[test]
fn sampling_knobs_a_reasoning_model_refuses_are_left_out_one_by_one() {
    // A Gemini client's temperature and stop sequences to a chat source refusing both;
    // an Anthropic client's temperature to a Responses source (gpt-5 there refuses it
    // too); an Anthropic client's limit to a deployment whose name does not say it is
    // a reasoning model, which takes it only as `max_completion_tokens`.
    let cases: [(Wire, Wire, &'static [&'static str], usize); 3] = [
        (Wire::Gemini, Wire::Chat, &["temperature", "stop"], 3),
        (Wire::Anthropic, Wire::Responses, &["temperature"], 2),
        (Wire::Anthropic, Wire::Chat, &["max_tokens"], 2),
    ];
    for (client, source, params, asked) in cases {
        let up = refusing(source, params);
        let p = source.serving(&up, "m");
        let mut body = client.request("m", false, false);
        match client {
            Wire::Gemini => {
                body["generationConfig"] = json!({"temperature": 0.2, "stopSequences": ["###"]});
            }
            _ => body["temperature"] = json!(0.2),
        }
        let r = p.post(&client.url("m", false), body.clone());
        assert_eq!(r.status, 200, "{params:?}: {}", r.body);
        assert_eq!(client.read(&r).text, "Hello there", "{params:?}");
        let sent = up.posts();
        assert_eq!(sent.len(), asked, "{params:?}: once more for each");
        let last = sent[asked - 1].json();
        for param in params {
            assert!(
                sent[0].json().get(*param).is_some(),
                "{param}: {}",
                sent[0].json()
            );
            assert_eq!(last.get(*param), None, "{param}: {last}");
        }
        if params == ["max_tokens"] {
            assert_eq!(last["max_completion_tokens"], 100, "{last}");
        }
        // All remembered: the next request is asked once.
        assert_eq!(p.post(&client.url("m", false), body).status, 200);
        assert_eq!(up.posts().len(), asked + 1, "{params:?}");
    }
}
