//! Errors in the caller's protocol: the upstream's, the proxy's own, a wrong path, and
//! Anthropic's overload.

use serde_json::json;

use super::setup;
use crate::support::wire::Wire;
use crate::support::{MockUpstream, Proxy, Reply};

#[test]
fn a_named_tool_choice_without_a_name_is_refused_in_the_callers_shape() {
    let bad = [
        (Wire::Anthropic, json!({"type": "tool"})),
        (
            Wire::Gemini,
            json!({"mode": "ANY", "allowedFunctionNames": [7]}),
        ),
        // Made no choice, where the client forced one.
        (Wire::Chat, json!({"type": "function"})),
        (Wire::Chat, json!({"type": "function", "name": "lookup"})),
        (Wire::Responses, json!({"type": "function"})),
    ];
    for (client, choice) in bad {
        // A Chat request to a Chat source goes as it came, for that source to judge.
        let up = if client == Wire::Chat {
            Wire::Anthropic
        } else {
            Wire::Chat
        };
        let (mock, p) = setup(up, up.reply(false, false));
        let mut req = client.request("m", false, true);
        client.set_tool_choice(&mut req, choice);
        let resp = p.post(&client.url("m", false), req);
        assert_eq!(resp.status, 400, "{client:?}: {}", resp.body);
        let message = client.error_message(&resp.json());
        assert!(
            message.contains("tool_choice") || message.contains("allowedFunctionNames"),
            "{client:?}: {message}"
        );
        assert!(
            mock.requests().is_empty(),
            "{client:?}: nothing goes upstream"
        );
    }
}

#[test]
fn every_pair_returns_upstream_errors_in_the_callers_shape() {
    for client in Wire::ALL {
        for up in Wire::ALL {
            let (_mock, p) = setup(up, up.error_reply());
            let resp = p.post(&client.url("m", false), client.request("m", false, false));
            assert_eq!(resp.status, 400, "{client:?}←{up:?}");
            assert_eq!(
                client.error_message(&resp.json()),
                "bad thing",
                "{client:?}←{up:?}: {}",
                resp.body
            );
        }
    }
}

#[test]
fn proxy_errors_use_the_callers_protocol() {
    let p = Proxy::start("");
    let resp = p.post(
        "/v1/messages",
        json!({"model": "nope", "max_tokens": 5, "messages": []}),
    );
    assert_eq!(resp.status, 404);
    let v = resp.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    let resp = p.post("/v1/responses", json!({"model": "nope", "input": "hi"}));
    assert_eq!(resp.status, 404);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown model `nope`")
    );
}

#[test]
fn an_anthropic_clients_wrong_path_is_answered_in_anthropics_shape() {
    let p = Proxy::start("");
    let anthropic = [("anthropic-version", "2023-06-01")];
    for (method, path, headers, said) in [
        (
            "GET",
            "/v1/models/nosuch",
            &anthropic[..],
            "unknown model `nosuch`",
        ),
        (
            "POST",
            "/v1/messages/batches",
            &[][..],
            "no endpoint POST /v1/messages/batches",
        ),
        (
            "POST",
            "/v1/v1/messages",
            &[][..],
            "no endpoint POST /v1/v1/messages",
        ),
    ] {
        let resp = p.send(method, path, headers, b"{}");
        assert_eq!(resp.status, 404, "{path}: {}", resp.body);
        let v = resp.json();
        assert_eq!(v["type"], "error", "{path}: {v}");
        assert_eq!(v["error"]["type"], "not_found_error", "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(said),
            "{path}: {v}"
        );
    }
    // The base-URL hint is written for exactly this client.
    let v = p.send("POST", "/v1/v1/messages", &[], b"{}").json();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("and an Anthropic client's to the address alone"),
        "{v}"
    );
    // Without either sign, a path is answered as OpenAI answers.
    let v = p.get("/v1/models/nosuch").json();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    let v = p.post("/v1/embeddings", json!({})).json();
    assert_eq!(v["error"]["code"], "unknown_url", "{v}");
}

#[test]
fn anthropics_overload_reaches_other_clients_as_503() {
    // 529 is Anthropic's own; a client of another protocol may retry only the 5xx
    // statuses it knows.
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let (_mock, p) = setup(Wire::Anthropic, Reply::json(529, overloaded));
    for (client, status) in [
        (Wire::Chat, 503),
        (Wire::Responses, 503),
        (Wire::Gemini, 503),
        (Wire::Anthropic, 529),
    ] {
        let resp = p.post(&client.url("m", false), client.request("m", false, false));
        assert_eq!(resp.status, status, "{client:?}: {}", resp.body);
        assert_eq!(
            client.error_message(&resp.json()),
            "Overloaded",
            "{client:?}"
        );
        if matches!(client, Wire::Chat | Wire::Responses) {
            assert_eq!(resp.json()["error"]["type"], "server_error");
        }
    }
}

#[test]
fn a_proxys_web_page_for_an_error_is_named_by_its_title_not_passed_on() {
    // nginx's page for a source behind it that is down. Before, the client got the
    // page, tags and all, as its error's message.
    let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n";
    // Cloudflare's, sent as JSON would be but opening as a page, with a pause named.
    let cloudflare = "<!DOCTYPE html>\n<html lang=\"en-US\"><head><title>\n  example.com | 503:\n  Service temporarily unavailable</title></head><body><h1>Error 503</h1></body></html>";
    let cases = [
        (
            Reply::Typed(502, "text/html", nginx.into()),
            502,
            "upstream `up` answered 502 with a web page (title: 502 Bad Gateway), not an API \
             error: a proxy or gateway in front of the source answered",
        ),
        (
            Reply::JsonWith(
                503,
                vec![("Retry-After".into(), "9".into())],
                cloudflare.into(),
            ),
            503,
            "upstream `up` answered 503 with a web page (title: example.com | 503: Service \
             temporarily unavailable), not an API error: a proxy or gateway in front of the \
             source answered",
        ),
    ];
    for (reply, status, said) in cases {
        for up in [Wire::Chat, Wire::Anthropic] {
            let mock = MockUpstream::always(reply.clone());
            let p = Proxy::start(&format!(
                "providers:\n  up:\n    api_base: {}\n    api_protocol: {}\n    models: [m]\nfailover:\n  retries: 0\n",
                mock.url(),
                up.config_name()
            ));
            for client in [Wire::Chat, Wire::Anthropic] {
                let what = format!("{client:?}←{up:?} {status}");
                let resp = p.post(&client.url("m", false), client.request("m", false, false));
                assert_eq!(resp.status, status, "{what}: {}", resp.body);
                assert_eq!(client.error_message(&resp.json()), said, "{what}");
                if status == 503 {
                    assert_eq!(resp.header("retry-after"), Some("9"), "{what}");
                }
            }
        }
    }
    // A 404 page: nothing served at that path, said by its title too.
    let page = "<html><head><title>404 Not Found</title></head><body>nope</body></html>";
    let mock = MockUpstream::always(Reply::Typed(404, "text/html", page.into()));
    let p = Wire::Chat.serving(&mock, "m");
    let resp = p.post(
        &Wire::Chat.url("m", false),
        Wire::Chat.request("m", false, false),
    );
    assert_eq!(resp.status, 404, "{}", resp.body);
    let message = Wire::Chat.error_message(&resp.json());
    assert!(
        message.contains("answered 404 (a web page titled `404 Not Found`): nothing is served"),
        "{message}"
    );
}

#[test]
fn a_web_page_answered_with_200_is_named_by_its_title_not_its_size() {
    // A captive portal's login page, sent whatever was asked. Before, the client was told
    // only "200 with 160 bytes of `text/html`"; the page is never quoted (it may echo
    // what the network knows of its user).
    let portal = "<!DOCTYPE html>\n<html><head><title>Hotel  WiFi |\n Log in</title></head><body><form>room 512, Smith</form></body></html>";
    page_is_named_by_its_title("text/html; charset=utf-8", portal, "Hotel WiFi | Log in");
}

/// A 200 with `page` as `content_type` is a 502 that names the page by `title`, for a
/// client whose protocol is copied (Chat) and one that is translated (Anthropic), whole
/// and streamed; the page itself (it holds "room 512") is never quoted.
fn page_is_named_by_its_title(content_type: &'static str, page: &str, title: &str) {
    let said = format!(
        "upstream `up` failed: it answered 200 with a web page (title: {title}), not its \
         protocol's JSON answer: a network's login page (a captive portal) or a proxy in \
         front of the source answered"
    );
    let mock = MockUpstream::always(Reply::Typed(200, content_type, page.into()));
    let p = Wire::Chat.serving(&mock, "m");
    for client in [Wire::Chat, Wire::Anthropic] {
        for stream in [false, true] {
            let what = format!("{content_type}, {client:?}, stream {stream}");
            let body = client.request("m", stream, false);
            let resp = match stream {
                true => p.stream(&client.url("m", true), body).into(),
                false => p.post(&client.url("m", false), body),
            };
            assert_eq!(resp.status, 502, "{what}: {}", resp.body);
            assert_eq!(client.error_message(&resp.json()), said, "{what}");
            assert!(!resp.body.contains("room 512"), "{what}: {}", resp.body);
        }
    }
}

#[test]
fn a_web_page_labelled_as_an_event_stream_is_named_by_its_title() {
    // A captive portal or a proxy that labels whatever it sends `text/event-stream`.
    // Before, the page was read as events: the client was told the stream ended without
    // its end marker, or got an empty stream.
    let portal = "\u{feff}\r\n <!doctype html>\n<html><head><title>Guest WiFi</title></head><body><form>room 512, Smith</form></body></html>";
    page_is_named_by_its_title("text/event-stream", portal, "Guest WiFi");
}

#[test]
fn a_web_pages_title_is_shown_with_its_entities_decoded() {
    // Before, `Sign in &amp; accept &#8211; Caf&eacute;` was shown as written. The
    // common named entities and numeric ones are decoded; others stay as written, and a
    // control character one decodes to is still written out.
    let page = "<html><head><title>Sign in &amp; accept &#8211; Caf&eacute; &#x2713; \
                &lt;3&gt;&nbsp;&quot;&apos;&#27;&#xD800;&amp</title></head></html>";
    let mock = MockUpstream::always(Reply::Typed(200, "text/html", page.into()));
    let p = Wire::Chat.serving(&mock, "m");
    let resp = p.post(
        &Wire::Chat.url("m", false),
        Wire::Chat.request("m", false, false),
    );
    assert_eq!(resp.status, 502, "{}", resp.body);
    let message = Wire::Chat.error_message(&resp.json());
    assert!(
        message.contains(r#"(title: Sign in & accept – Caf&eacute; ✓ <3> "'\u{1b}&#xD800;&amp), "#),
        "{message}"
    );
}

/// `client`'s plain request with the top-level `fields` set.
fn with(client: Wire, fields: serde_json::Value) -> serde_json::Value {
    let mut req = client.request("m", false, false);
    for (k, v) in fields.as_object().into_iter().flatten() {
        req[k] = v.clone();
    }
    req
}

#[test]
fn a_wrong_typed_field_or_unknown_word_a_translation_reads_is_a_400_naming_it() {
    // Read with `as_u64` and friends, each was dropped without a word: a string token
    // cap became the source's default, a misspelt tool choice `auto`, a misspelt
    // `json_schema` format free text.
    let bad = [
        (
            Wire::Chat,
            Wire::Anthropic,
            json!({"max_tokens": "100"}),
            "max_tokens",
        ),
        (Wire::Chat, Wire::Gemini, json!({"stop": 5}), "stop"),
        (
            Wire::Chat,
            Wire::Responses,
            json!({"tool_choice": "requird"}),
            "tool_choice",
        ),
        (
            Wire::Responses,
            Wire::Chat,
            json!({"max_output_tokens": "100"}),
            "max_output_tokens",
        ),
        (
            Wire::Responses,
            Wire::Anthropic,
            json!({"max_output_tokens": -1}),
            "max_output_tokens",
        ),
        (
            Wire::Responses,
            Wire::Gemini,
            json!({"max_output_tokens": 1.5}),
            "max_output_tokens",
        ),
        (
            Wire::Responses,
            Wire::Chat,
            json!({"instructions": {"text": "x"}}),
            "instructions",
        ),
        (
            Wire::Anthropic,
            Wire::Chat,
            json!({"max_tokens": "100"}),
            "max_tokens",
        ),
        (
            Wire::Anthropic,
            Wire::Gemini,
            json!({"thinking": {"type": "enabled", "budget_tokens": "2048"}}),
            "thinking.budget_tokens",
        ),
        (
            Wire::Gemini,
            Wire::Chat,
            json!({"generationConfig": {"maxOutputTokens": "100 tokens"}}),
            "generationConfig.maxOutputTokens",
        ),
        (
            Wire::Gemini,
            Wire::Anthropic,
            json!({"generationConfig": {"temperature": "hot"}}),
            "generationConfig.temperature",
        ),
        (
            Wire::Gemini,
            Wire::Chat,
            json!({"generationConfig": {"presencePenalty": "high"}}),
            "generationConfig.presencePenalty",
        ),
        (
            Wire::Gemini,
            Wire::Anthropic,
            json!({"toolConfig": {"functionCallingConfig": {"mode": "REQUIRED"}}}),
            "toolConfig.functionCallingConfig.mode",
        ),
        (
            Wire::Anthropic,
            Wire::Chat,
            json!({"tool_choice": {"type": "anyy"}}),
            "tool_choice.type",
        ),
        (
            Wire::Anthropic,
            Wire::Responses,
            json!({"thinking": {"type": "enable", "budget_tokens": 2048}}),
            "thinking.type",
        ),
        (
            Wire::Anthropic,
            Wire::Gemini,
            json!({"output_config": {"effort": 3}}),
            "output_config.effort",
        ),
        (
            Wire::Responses,
            Wire::Anthropic,
            json!({"text": {"format": {"type": "json_shema", "schema": {}}}}),
            "text.format.type",
        ),
        // No other protocol's source takes Chat's custom tools.
        (
            Wire::Chat,
            Wire::Responses,
            json!({"tool_choice": {"type": "custom", "custom": {"name": "patch"}}}),
            "tool_choice.type",
        ),
        // A misspelt effort was the most thinking for Anthropic, none for Gemini.
        (
            Wire::Chat,
            Wire::Anthropic,
            json!({"reasoning_effort": "hihg"}),
            "reasoning_effort",
        ),
        (
            Wire::Responses,
            Wire::Gemini,
            json!({"reasoning": {"effort": "hihg"}}),
            "reasoning.effort",
        ),
        (
            Wire::Gemini,
            Wire::Anthropic,
            json!({"generationConfig": {"thinkingConfig": {"thinkingLevel": "HIHG"}}}),
            "generationConfig.thinkingConfig.thinkingLevel",
        ),
    ];
    for (client, up, fields, name) in bad {
        let (mock, p) = setup(up, up.reply(false, false));
        let resp = p.post(&client.url("m", false), with(client, fields));
        assert_eq!(resp.status, 400, "{client:?}→{up:?} {name}: {}", resp.body);
        let message = client.error_message(&resp.json());
        assert!(
            message.starts_with(&format!("`{name}` must be ")),
            "{client:?}→{up:?}: {message}"
        );
        // OpenAI's own error names the field in `param`, which SDKs show.
        if matches!(client, Wire::Chat | Wire::Responses) {
            assert_eq!(resp.json()["error"]["param"], name, "{client:?}→{up:?}");
        }
        assert!(
            mock.requests().is_empty(),
            "{client:?}→{up:?}: nothing goes upstream"
        );
    }
}

#[test]
fn an_openai_clients_400_names_in_param_the_field_its_message_leads_with() {
    let (_mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    let resp = p.post(Wire::Chat.path(), json!({"model": "m", "messages": "hi"}));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["param"], "messages", "{}", resp.body);
    let resp = p.post(
        Wire::Chat.path(),
        json!({"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.json()["error"]["param"].is_null(), "{}", resp.body);
    // Neither source takes `n: 2`: the field each endpoint's reason names.
    let resp = p.post(Wire::Chat.path(), with(Wire::Chat, json!({"n": 2})));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["param"], "n", "{}", resp.body);
}

#[test]
fn a_sources_400_retold_in_openais_shape_names_no_param_from_its_words() {
    // Anthropic's own words lead with its field, `max_tokens`, which a Responses
    // client never sent (its cap is `max_output_tokens`): read back from the message,
    // it was named the client's `param`.
    let said = "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation";
    let body =
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": said}});
    let (_mock, p) = setup(Wire::Anthropic, Reply::json(400, body));
    let resp = p.post(
        Wire::Responses.path(),
        Wire::Responses.request("m", false, false),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.json()["error"]["message"], said, "{}", resp.body);
    assert!(resp.json()["error"]["param"].is_null(), "{}", resp.body);
}

#[test]
fn a_chat_sources_400_retold_to_a_chat_client_keeps_its_param() {
    // A Chat source refuses a field and a virtual model's next endpoint speaks
    // Anthropic: the 400 is retold, not copied, and its `param` is the Chat client's.
    let said = "Invalid content: expected a string or an array of parts.";
    let body = json!({"error": {"message": said, "type": "invalid_request_error",
        "param": "messages[0].content", "code": "invalid_value"}});
    let chat = MockUpstream::always(Reply::json(400, body));
    let anthropic = MockUpstream::always(Wire::Anthropic.reply(false, false));
    let p = Proxy::start(&format!(
        "providers:\n  a: {{api_base: {}, models: [m]}}\n  b: {{api_base: {}, api_protocol: anthropic, models: [m]}}\nmodels:\n  smart: {{endpoints: [a:m, b:m]}}\n",
        chat.url(),
        anthropic.url()
    ));
    let resp = p.post(Wire::Chat.path(), Wire::Chat.request("smart", false, false));
    assert_eq!(resp.status, 400, "{}", resp.body);
    let error = &resp.json()["error"];
    assert_eq!(error["message"], said, "{}", resp.body);
    assert_eq!(error["param"], "messages[0].content", "{}", resp.body);
    assert_eq!(error["code"], "invalid_value", "{}", resp.body);
    // A Responses client never sent `messages`: the Chat source's field is not its own.
    let resp = p.post(
        Wire::Responses.path(),
        Wire::Responses.request("smart", false, false),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.json()["error"]["param"].is_null(), "{}", resp.body);
    // Anthropic's error shape has no `param`.
    let resp = p.post(
        Wire::Anthropic.path(),
        Wire::Anthropic.request("smart", false, false),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(Wire::Anthropic.error_message(&resp.json()), said);
    assert!(resp.body.find("param").is_none(), "{}", resp.body);
    assert!(
        anthropic.requests().is_empty(),
        "a 400 is the client's to fix"
    );
}

#[test]
fn a_sources_error_code_is_retold_only_when_short_and_printable() {
    // A source's `code` reaches an OpenAI-shaped client as it came, when it is a name:
    // up to 200 bytes, no control character. A longer one (a page, a dump) or one
    // carrying a terminal escape is left out, and the message is still told.
    let cases = [
        ("x".repeat(200), true),
        ("x".repeat(201), false),
        ("y".repeat(300), false),
        ("invalid\u{1b}[31mvalue".to_string(), false),
        ("invalid\nvalue".to_string(), false),
    ];
    for (code, kept) in cases {
        let body = json!({"error": {"message": "bad value", "type": "invalid_request_error",
            "code": code}});
        let (_mock, p) = setup(Wire::Chat, Reply::json(400, body));
        // A Chat source retold to a Responses client, in OpenAI's shape.
        let resp = p.post(
            Wire::Responses.path(),
            Wire::Responses.request("m", false, false),
        );
        assert_eq!(resp.status, 400, "{}", resp.body);
        let error = &resp.json()["error"];
        assert_eq!(error["message"], "bad value", "{}", resp.body);
        if kept {
            assert_eq!(error["code"], code, "{}", resp.body);
        } else {
            assert!(error["code"].is_null(), "{code:?}: {}", resp.body);
        }
    }
}

#[test]
fn what_sdks_send_passes_a_translation_a_null_as_absent() {
    // `max_tokens: null` means not given; `stop` a lone string; `temperature` an integer.
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    let fields = json!({"max_tokens": null, "stop": "END", "temperature": 1, "n": null});
    let resp = p.post(Wire::Chat.path(), with(Wire::Chat, fields));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.posts()[0].json();
    assert_eq!(sent["stop_sequences"], json!(["END"]), "{sent}");
    assert_eq!(sent["temperature"], json!(1), "{sent}");
    assert!(sent["max_tokens"].is_u64(), "a default cap: {sent}");
    // An Anthropic client's lone stop string is kept, not dropped.
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let resp = p.post(
        Wire::Anthropic.path(),
        with(Wire::Anthropic, json!({"stop_sequences": "END"})),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(mock.posts()[0].json()["stop"], "END");
}

#[test]
fn the_words_and_numbers_the_real_apis_take_pass_a_translation() {
    // Google takes a number written as a string (proto3 JSON): it is the number.
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let gc = json!({"maxOutputTokens": "100", "temperature": "0.5", "seed": "-7",
        "thinkingConfig": {"thinkingBudget": "4096"}});
    let mut req = with(Wire::Gemini, json!({"generationConfig": gc}));
    Wire::Gemini.set_tool_choice(&mut req, json!({"mode": "VALIDATED"}));
    let resp = p.post(&Wire::Gemini.url("m", false), req);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.posts()[0].json();
    assert_eq!(sent["max_tokens"], json!(100), "{sent}");
    assert_eq!(sent["temperature"], json!(0.5), "{sent}");
    assert_eq!(sent["seed"], json!(-7), "{sent}");
    assert_eq!(sent["reasoning_effort"], "medium", "{sent}");
    assert_eq!(sent["tool_choice"], "auto", "{sent}");
    // Claude's adaptive thinking at `xhigh` effort (Opus 4.7) is the most chat has.
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let fields = json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"},
        "tool_choice": {"type": "none"}});
    let resp = p.post(Wire::Anthropic.path(), with(Wire::Anthropic, fields));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.posts()[0].json();
    assert_eq!(sent["reasoning_effort"], "high", "{sent}");
    assert_eq!(sent["tool_choice"], "none", "{sent}");
    // Every effort OpenAI's and Google's SDKs send, Google's in capitals too; its
    // unspecified level is none asked.
    let level = |l: &str| json!({"generationConfig": {"thinkingConfig": {"thinkingLevel": l}}});
    let efforts = [
        (Wire::Gemini, level("HIGH"), json!("high")),
        (Wire::Gemini, level("minimal"), json!("minimal")),
        (
            Wire::Gemini,
            level("THINKING_LEVEL_UNSPECIFIED"),
            json!(null),
        ),
        (
            Wire::Responses,
            json!({"reasoning": {"effort": "xhigh"}}),
            json!("xhigh"),
        ),
        (
            Wire::Responses,
            json!({"reasoning": {"effort": "none"}}),
            json!("none"),
        ),
    ];
    for (client, fields, effort) in efforts {
        let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
        let resp = p.post(&client.url("m", false), with(client, fields));
        assert_eq!(resp.status, 200, "{client:?}: {}", resp.body);
        let sent = mock.posts()[0].json();
        assert_eq!(sent["reasoning_effort"], effort, "{client:?}: {sent}");
    }
}

#[test]
fn a_wrong_typed_field_copied_to_a_source_of_its_own_protocol_goes_as_it_came() {
    // That source judges it, in its own words; Routeplane reads nothing of it.
    let bad = [
        (Wire::Chat, json!({"max_tokens": "100"})),
        (Wire::Anthropic, json!({"max_tokens": "100"})),
        (Wire::Responses, json!({"max_output_tokens": "100"})),
        (
            Wire::Gemini,
            json!({"generationConfig": {"maxOutputTokens": "100"}}),
        ),
    ];
    for (wire, fields) in bad {
        let (mock, p) = setup(wire, wire.error_reply());
        let resp = p.post(&wire.url("m", false), with(wire, fields.clone()));
        assert_eq!(resp.status, 400, "{wire:?}: {}", resp.body);
        assert_eq!(wire.error_message(&resp.json()), "bad thing", "{wire:?}");
        let sent = mock.posts()[0].json();
        for (k, v) in fields.as_object().into_iter().flatten() {
            assert_eq!(&sent[k], v, "{wire:?}: {sent}");
        }
    }
}
