//! Chat completions through the proxy: what a client and the upstream each see.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::proxy::post_on;
use crate::support::upstream::chat_answer;
use crate::support::wire::chat_chunk;
use crate::support::{MockUpstream, Proxy, Reply, assert_text};

fn config(up: &MockUpstream) -> String {
    format!(
        "providers:\n  local:\n    api_base: {}\n    models:\n      - id: small\n        provider_model_id: small-v2-q4\n      - id: llama3.1:8b\n",
        up.url()
    )
}

#[test]
fn non_stream_round_trip_preserves_unknown_fields_and_rewrites_model() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("hello")));
    let p = Proxy::start(&config(&up));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "small", "messages": [{"role": "user", "content": "hi"}], "x_vendor": {"keep": [1, 2]}, "temperature": 0.25}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["choices"][0]["message"]["content"], "hello");
    assert_eq!(resp.header("x-routeplane-provider"), Some("local"));
    assert_eq!(resp.header("x-routeplane-model"), Some("small-v2-q4"));
    let sent = &up.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    let body = sent.json();
    assert_eq!(body["model"], "small-v2-q4");
    assert_eq!(body["x_vendor"], json!({"keep": [1, 2]}));
    assert_eq!(body["temperature"], 0.25);
}

#[test]
fn a_chunked_answer_reaches_the_client_whole_and_its_connection_is_reused() {
    let up = MockUpstream::always(Reply::JsonChunked(200, chat_answer("hello").to_string()));
    let p = Proxy::start(&config(&up));
    // One kept-alive client connection: its requests run on one proxy thread, which
    // keeps its upstream connection for the next. (With a fresh client connection each,
    // the thread that ended hands its upstream connection to the shared list, and the
    // next request may look in between and open another.)
    let conn = p.kept_alive();
    for _ in 0..3 {
        let resp = post_on(
            &conn,
            "/v1/chat/completions",
            json!({"model": "small", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(resp.status, 200, "{}", resp.body);
        assert_eq!(resp.json()["choices"][0]["message"]["content"], "hello");
    }
    let on_conn: Vec<usize> = up.requests().iter().map(|r| r.on_conn).collect();
    assert_eq!(on_conn, [0, 1, 2], "one upstream connection for all three");
}

#[test]
fn pinned_provider_passes_any_model_name_through() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "local:not-declared:7b", "messages": []}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(up.requests()[0].json()["model"], "not-declared:7b");
}

#[test]
fn bare_name_with_colon_cascades_to_the_declaring_provider() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "llama3.1:8b", "messages": []}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(up.requests()[0].json()["model"], "llama3.1:8b");
    assert_eq!(resp.header("x-routeplane-provider"), Some("local"));
}

#[test]
fn models_are_listed_in_anthropics_shape_too() {
    // The Anthropic SDK lists `/v1/models` and reads `display_name`, `created_at` and
    // `type` of each entry, and `has_more` to page: it got `None` for each before.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let v = p.get("/v1/models").json();
    let data = v["data"].as_array().unwrap();
    for m in data {
        assert_eq!(m["type"], "model", "{m}");
        assert_eq!(m["display_name"], m["id"], "{m}");
        assert_eq!(m["created_at"], "1970-01-01T00:00:00Z", "{m}");
    }
    assert_eq!(v["has_more"], false, "{v}");
    assert_eq!(v["first_id"], data[0]["id"], "{v}");
    assert_eq!(v["last_id"], data[data.len() - 1]["id"], "{v}");
    // One model, as `client.models.retrieve` asks for it.
    let one = p.get("/v1/models/small").json();
    assert_eq!(
        (&one["id"], &one["type"], &one["display_name"]),
        (&json!("small"), &json!("model"), &json!("small")),
        "{one}"
    );
}

#[test]
fn models_endpoint_lists_bare_and_qualified_ids() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let resp = p.get("/v1/models");
    assert_eq!(resp.status, 200);
    let v = resp.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<(String, String)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                m["owned_by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in ["small", "llama3.1:8b", "local:small", "local:llama3.1:8b"] {
        assert!(
            ids.iter().any(|(id, owner)| id == want && owner == "local"),
            "{want} missing in {ids:?}"
        );
    }
}

#[test]
fn health_answers_ok() {
    let p = Proxy::start("");
    let resp = p.get("/health");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["status"], "ok");
}

#[test]
fn bad_requests_get_openai_errors_with_the_right_status() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let cases: [(&[u8], u16, &str); 4] = [
        (b"{not json", 400, "request body is not a valid JSON object"),
        (
            b"{\"messages\":[]}",
            400,
            "`model` is required (or `models`, a list of up to 8 model ids)",
        ),
        (b"{\"model\":42}", 400, "`model` must be a string"),
        (b"", 400, "request body is empty; send a JSON object"),
    ];
    for (body, status, message) in cases {
        let resp = p.send("POST", "/v1/chat/completions", &[], body);
        assert_eq!(resp.status, status, "{}", resp.body);
        let err = &resp.json()["error"];
        assert!(
            err["message"].as_str().unwrap().starts_with(message),
            "{err}"
        );
        assert_eq!(err["type"], "invalid_request_error");
    }
    assert_eq!(up.count(), 0, "no bad request reaches the upstream");
}

#[test]
fn an_unknown_path_is_404_and_a_wrong_method_405() {
    let p = Proxy::start("");
    let resp = p.get("/v1/nope");
    assert_eq!(resp.status, 404, "{}", resp.body);
    let message = resp.error_message();
    assert!(
        message.starts_with("no endpoint GET /v1/nope;"),
        "{message}"
    );
    assert_eq!(resp.json()["error"]["code"], "unknown_url");
    for (method, path, allow) in [
        ("GET", "/v1/chat/completions", "POST"),
        ("DELETE", "/v1/messages", "POST"),
        ("POST", "/v1/models", "GET, HEAD"),
    ] {
        let resp = p.send(method, path, &[], b"");
        assert_eq!(resp.status, 405, "{method} {path}: {}", resp.body);
        assert_eq!(resp.header("allow"), Some(allow), "{method} {path}");
        // The client's mistake, not the server's.
        let kind = &resp.json()["error"]["type"];
        assert_eq!(kind, "invalid_request_error", "{method} {path}");
    }
}

#[test]
fn paths_of_apis_not_relayed_say_where_to_go_instead() {
    let p = Proxy::start("");
    for (path, says) in [
        (
            "/v1/embeddings",
            "Embeddings are not relayed: point the embedding client at the model server itself",
        ),
        ("/api/embed", "Embeddings are not relayed"),
        (
            "/api/chat",
            "Ollama's own API (/api/…) is not served: choose the client's OpenAI-compatible provider, with Routeplane's address followed by `/v1` as its base URL",
        ),
        ("/api/generate", "Ollama's own API"),
    ] {
        let resp = p.post(path, json!({"model": "m"}));
        assert_eq!(resp.status, 404, "{path}: {}", resp.body);
        let message = resp.error_message();
        assert!(message.contains(says), "{path}: {message}");
    }
}

#[test]
fn a_base_url_without_v1_reaches_the_same_endpoints() {
    // The OpenAI SDKs append `/chat/completions` to whatever base URL they are given.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let resp = p.post(
        "/chat/completions",
        json!({"model": "small", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["choices"][0]["message"]["content"], "ok");
    let models = p.get("/models");
    assert_eq!(models.status, 200, "{}", models.body);
    assert_eq!(models.json(), p.get("/v1/models").json());
    let resp = p.send("GET", "/responses", &[], b"");
    assert_eq!(resp.status, 405, "/responses is the Responses endpoint");
    // The log names the path as sent, as a user greps for it: it said
    // `/v1/chat/completions`.
    let line = p.wait_log("model=small");
    assert!(
        line.contains(" POST /chat/completions model=small "),
        "{line}"
    );
    p.wait_log("GET /responses ");
}

#[test]
fn a_served_path_under_a_wrong_prefix_says_how_to_set_the_base_url() {
    let p = Proxy::start("");
    // An Anthropic client given the OpenAI base URL (`…/v1`) asks for `/v1/v1/messages`.
    let resp = p.post("/v1/v1/messages", json!({"model": "m"}));
    assert_eq!(resp.status, 404, "{}", resp.body);
    let message = resp.error_message();
    assert!(
        message.contains("Set an OpenAI client's base URL to Routeplane's address followed by `/v1`, and an Anthropic client's to the address alone"),
        "{message}"
    );
    let other = p.get("/v1/nope").error_message();
    assert!(!other.contains("base URL"), "{other}");
}

#[test]
fn a_path_with_a_slash_too_many_says_which_slash() {
    // `/v1/models/` was a 404 for the model ``; `//` and a last `/` were told to set a base
    // URL with `/v1`, which the user had done.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let list = p.get("/v1/models").json();
    let resp = p.get("/v1/models/");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json(), list);
    let resp = p.get("/v1beta/models/");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json(), p.get("/v1beta/models").json());
    let resp = p.get("/v1/models/small/");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["id"], "small");
    for (path, says) in [
        (
            "/v1//chat/completions",
            ". The path has `//`: write the client's base URL without a last `/` (Routeplane's \
             address followed by `/v1` for an OpenAI client, the address alone for an \
             Anthropic one)",
        ),
        (
            "//v1/messages",
            ". The path has `//`: write the client's base URL without a last `/`",
        ),
        (
            "/v1/chat/completions/",
            ". Leave out the last `/`: ask for /v1/chat/completions",
        ),
    ] {
        let resp = p.post(path, json!({"model": "small", "messages": []}));
        assert_eq!(resp.status, 404, "{path}: {}", resp.body);
        let message = resp.error_message();
        assert!(message.contains(says), "{path}: {message}");
        assert!(
            !message.contains("followed by `/v1`, and"),
            "{path}: {message}"
        );
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn a_path_without_its_plural_s_is_asked_about() {
    // `/v1/chat/completion` and `/v1/message` were told only the list of endpoints.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    for path in ["/v1/chat/completion", "/v1/message", "/v1/response/"] {
        let resp = p.post(path, json!({"model": "small", "messages": []}));
        assert_eq!(resp.status, 404, "{path}: {}", resp.body);
        let message = resp.error_message();
        let meant = format!("Did you mean {}s?", path.trim_end_matches('/'));
        assert!(message.ends_with(&meant), "{path}: {message}");
    }
    let other = p.post("/v1/nope", json!({})).error_message();
    assert!(!other.contains("Did you mean"), "{other}");
    assert_eq!(up.count(), 0);
}

#[test]
fn a_stream_flag_in_quotes_is_told_to_lose_them() {
    // `"stream": "true"` was told only that `stream` must be a boolean.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let body = json!({"model": "small", "max_tokens": 8, "stream": "true",
            "messages": [{"role": "user", "content": "hi"}]});
        let resp = p.post(path, body);
        assert_eq!(resp.status, 400, "{path}: {}", resp.body);
        let anthropic = resp.json()["type"] == "error";
        assert_eq!(
            anthropic,
            path == "/v1/messages",
            "the caller's shape: {}",
            resp.body
        );
        let message = resp.error_message();
        assert!(
            message.ends_with("write true or false without quotes"),
            "{message}"
        );
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn a_form_or_single_quoted_body_is_told_what_json_wants() {
    // Both were told only the JSON reader's "expected value at line 1 column 1".
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    for (body, says) in [
        (
            "model=small&stream=false",
            "the body is a form (key=value): send a JSON object",
        ),
        (
            "{'model': 'small'}",
            "JSON takes double quotes (\"model\"), not single ones",
        ),
    ] {
        let resp = p.send("POST", "/v1/chat/completions", &[], body.as_bytes());
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        assert!(resp.error_message().contains(says), "{}", resp.body);
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn a_gemini_path_gone_wrong_says_how_to_set_its_base_url() {
    // The google-genai SDK given a base URL with `/v1beta`, and a call without its method,
    // were told only the list of endpoints.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    for (path, says) in [
        (
            "/v1beta/v1beta/models/small:generateContent",
            ". Set a Gemini client's base URL to Routeplane's address alone; it adds \
             `/v1beta/models/MODEL:generateContent` itself",
        ),
        (
            "/v1beta/models/small",
            ". A Gemini call names its method after the model: POST \
             /v1beta/models/small:generateContent (or :streamGenerateContent, :countTokens)",
        ),
    ] {
        let resp = p.post(path, body.clone());
        assert_eq!(resp.status, 404, "{path}: {}", resp.body);
        assert_eq!(
            resp.json()["error"]["status"],
            "NOT_FOUND",
            "Google's shape"
        );
        let message = resp.error_message();
        assert!(message.ends_with(says), "{path}: {message}");
    }
    assert_eq!(up.count(), 0);
}

#[test]
fn a_browsers_preflight_is_told_why_it_is_not_answered() {
    let p = Proxy::start("");
    let headers = [
        ("Origin", "http://localhost:3000"),
        ("Access-Control-Request-Method", "POST"),
    ];
    let cors = "An OPTIONS request is a browser's cross-origin (CORS) preflight, which \
                Routeplane does not answer: any web site could then use your logins and keys; \
                call Routeplane from a server or a local app, not from a page in a browser";
    for (path, status, shape) in [
        (
            "/v1/chat/completions",
            405,
            "/v1/chat/completions takes POST, not OPTIONS. ",
        ),
        (
            "/v1/models",
            405,
            "/v1/models takes GET or HEAD, not OPTIONS. ",
        ),
        (
            "/v1beta/models/m:generateContent",
            404,
            "no endpoint OPTIONS",
        ),
    ] {
        let resp = p.send("OPTIONS", path, &headers, b"");
        assert_eq!(resp.status, status, "{path}: {}", resp.body);
        assert!(resp.header("access-control-allow-origin").is_none());
        let message = resp.error_message();
        assert!(message.contains(shape), "{path}: {message}");
        assert!(message.ends_with(cors), "{path}: {message}");
    }
    // Any other method is told only what the path takes.
    let message = p.send("DELETE", "/v1/models", &[], b"").error_message();
    assert_text(&message, "/v1/models takes GET or HEAD, not DELETE");
}

#[test]
fn a_model_name_with_spaces_around_it_is_told_the_name_without() {
    // A client's model setting copied with a space or a line end (`"small "`) was a plain
    // 404 that showed the space only between backticks.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    // A name pinned to its source (`local:small `) went upstream with its space, whose
    // "model not found" did not show it: told the same way.
    for (asked, bare, around) in [
        ("small ", "small", "it"),
        (" small", "small", "it"),
        ("llama3.1:8b\n", "llama3.1:8b", "it"),
        ("local:small ", "local:small", "it"),
        ("local:llama3.1:8b\r\n", "local:llama3.1:8b", "it"),
        ("local: small", "local:small", "its colon"),
    ] {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"model": asked, "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(resp.status, 404, "{asked:?}: {}", resp.body);
        let message = resp.error_message();
        assert!(
            message.ends_with(&format!(
                ". The name has spaces or a line end around {around}: name `{bare}`"
            )),
            "{asked:?}: {message}"
        );
    }
    // A name that is unknown without its spaces too gets no such hint.
    let message = p
        .post(
            "/v1/chat/completions",
            json!({"model": "nope ", "messages": []}),
        )
        .error_message();
    assert!(!message.contains("spaces"), "{message}");
    assert_eq!(up.count(), 0);
}

#[test]
fn a_body_naming_any_top_level_key_twice_is_refused_in_the_callers_shape() {
    // Routed on one `model` and relayed, the body let the upstream's JSON reader pick the
    // other (many take the first): a model other than the one routed, allowed and logged.
    // Any other key alike: Routeplane's translators read the last `messages`, a body
    // relayed byte for byte carries both, and the upstream may read the first.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let json = [("Content-Type", "application/json")];
    let long = "k".repeat(300);
    let long_body = format!(r#"{{"model":"small","{long}":1,"messages":[],"{long}":2}}"#);
    for (path, body, key) in [
        (
            "/v1/chat/completions",
            r#"{"model":"small","messages":[{"role":"user","content":"hi"}],"model":"llama3.1:8b"}"#,
            "model",
        ),
        (
            "/v1/messages",
            r#"{"model":"small","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"model":"llama3.1:8b"}"#,
            "model",
        ),
        (
            "/v1/chat/completions",
            r#"{"stream":false,"model":"small","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
            "stream",
        ),
        // A key spelled with an escape is the key it spells.
        (
            "/v1/chat/completions",
            r#"{"model":"small","messages":[],"mod\u0065l":"llama3.1:8b"}"#,
            "model",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"small","messages":[{"role":"user","content":"hi"}],"messages":[{"role":"user","content":"rm -rf"}]}"#,
            "messages",
        ),
        (
            "/v1/messages",
            r#"{"model":"small","max_tokens":8,"messages":[],"max_tokens":99999}"#,
            "max_tokens",
        ),
        (
            "/v1/responses",
            r#"{"model":"small","input":"hi","tools":[],"t\u006fols":[{"type":"function","name":"f"}]}"#,
            "tools",
        ),
        // Client text, named as it may be shown: a control character escaped, a long
        // key cut.
        (
            "/v1/chat/completions",
            "{\"model\":\"small\",\"a\\u001b[2Jb\":1,\"messages\":[],\"a\\u001b[2Jb\":2}",
            "a\\u{1b}[2Jb",
        ),
        (
            "/v1/chat/completions",
            long_body.as_str(),
            &format!("{}…", &long[..64]),
        ),
    ] {
        let resp = p.send("POST", path, &json, body.as_bytes());
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        assert_eq!(
            resp.json()["error"]["type"],
            "invalid_request_error",
            "{}",
            resp.body
        );
        assert_text(
            &resp.error_message(),
            &format!("the body names `{key}` twice; name it once"),
        );
    }
    // Anthropic's shape: `{"type": "error", "error": {...}}`; Gemini's its own.
    let resp = p.send(
        "POST",
        "/v1/messages",
        &json,
        br#"{"model":"small","model":"small","max_tokens":8,"messages":[]}"#,
    );
    assert_eq!(resp.json()["type"], "error", "{}", resp.body);
    let resp = p.send(
        "POST",
        "/v1beta/models/small:generateContent",
        &json,
        br#"{"contents":[{"parts":[{"text":"hi"}]}],"contents":[]}"#,
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(
        resp.json()["error"]["status"],
        "INVALID_ARGUMENT",
        "{}",
        resp.body
    );
    assert_text(
        &resp.error_message(),
        "the body names `contents` twice; name it once",
    );
    // Keys that differ only in case, or only in the same text nested deeper, are not twice.
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "small", "Model": "x", "messages": [{"role": "user", "content": "hi", "model": 1}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(up.count(), 1, "only the last request reached the source");
}

#[test]
fn unknown_model_is_404_listing_known_ids() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "gpt-9", "messages": []}),
    );
    assert_eq!(resp.status, 404);
    assert_text(
        resp.json()["error"]["message"].as_str().unwrap(),
        "unknown model `gpt-9`; known models include: small, llama3.1:8b, local:small, \
         local:llama3.1:8b. `gpt-9` looks like an OpenAI model: set OPENAI_API_KEY or \
         ROUTEPLANE_OPENAI_API_KEY, or run `routeplane login openai-codex` and name a model it \
         lists `openai-codex:MODEL`, or name it `openrouter:openai/gpt-9` with \
         OPENROUTER_API_KEY set; or, for a client that sends this name itself, define a \
         virtual model `gpt-9` under `models:` with endpoints such as `local:small`",
    );
    assert_eq!(resp.json()["error"]["code"], "model_not_found");
}

#[test]
fn an_unknown_models_404_suggests_the_served_names_like_it_first() {
    // A local server with many models: the ones named like the request lead the list,
    // not the first six in the config.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&format!(
        "providers:\n  local:\n    api_base: {}\n    models: [a, b, c, d, e, f, \"qwen3-coder:30b\", \"llama3.1:8b\"]\n",
        up.url()
    ));
    for (asked, first) in [
        (
            "qwen3-coder",
            "qwen3-coder:30b, local:qwen3-coder:30b, a, b, c, d. `qwen3-coder` is served with \
             a tag: name `qwen3-coder:30b`",
        ),
        ("Llama3.1:70b", "llama3.1:8b, local:llama3.1:8b, a, b, c, d"),
    ] {
        let resp = p.post(
            "/v1/chat/completions",
            json!({"model": asked, "messages": []}),
        );
        assert_eq!(resp.status, 404);
        assert_text(
            &resp.error_message(),
            &format!("unknown model `{asked}`; known models include: {first}"),
        );
    }
}

#[test]
fn request_bodies_of_every_size_reach_the_upstream_whole() {
    // The upstream transport holds the request head back to send it with the body;
    // a body larger than its buffer (16 KiB) takes another path than a small one.
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    for size in [0, 100, 16 * 1024 - 300, 16 * 1024, 200_000] {
        let content = "é".repeat(size / 2);
        let sent = json!({"model": "small", "messages": [{"role": "user", "content": content}]});
        let resp = p.post("/v1/chat/completions", sent.clone());
        assert_eq!(resp.status, 200, "{size}");
        let got = up.requests().pop().unwrap();
        let got: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(got["messages"], sent["messages"], "{size}");
    }
    assert_eq!(up.count(), 5);
}

#[test]
fn body_over_the_limit_is_413() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&format!("{}limits:\n  max_body_bytes: 1000\n", config(&up)));
    let big =
        json!({"model": "small", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let resp = p.post("/v1/chat/completions", big);
    assert_eq!(resp.status, 413);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 1000 bytes")
    );
    assert_eq!(up.count(), 0);
}

#[test]
fn unreachable_upstream_is_502_naming_the_provider_without_secrets() {
    let up = MockUpstream::always(Reply::Reset);
    let port = up.port();
    drop(up);
    let yaml = format!(
        "providers:\n  gone:\n    api_base: http://127.0.0.1:{port}/v1\n    api_key: sk-very-secret-value\n    models: [m]\n"
    );
    let p = Proxy::start(&yaml);
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
    );
    assert_eq!(resp.status, 502);
    let msg = resp.error_message();
    assert!(msg.starts_with("upstream `gone` failed:"), "{msg}");
    assert!(!resp.body.contains("sk-very-secret"));
    let log = p.wait_log("served_by=");
    assert!(!p.log().join("\n").contains("sk-very-secret"), "{log}");
}

#[test]
fn provider_key_goes_upstream_and_never_into_logs() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let yaml = format!(
        "providers:\n  keyed:\n    api_base: {}\n    api_key: ${{TEST_KEY}}\n    headers:\n      HTTP-Referer: https://example.com\n    models: [m]\n",
        up.url()
    );
    let p = Proxy::start_with(&yaml, &[("TEST_KEY", "sk-test-123")], &[]);
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
    );
    assert_eq!(resp.status, 200);
    let sent = &up.requests()[0];
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test-123"));
    assert_eq!(sent.header("http-referer"), Some("https://example.com"));
    let line = p.wait_log("served_by=keyed:m");
    assert!(
        line.contains("POST /v1/chat/completions model=m served_by=keyed:m status=200 attempts=1"),
        "{line}"
    );
    assert!(!p.log().join("\n").contains("sk-test-123"));
}

#[test]
fn upstream_client_errors_reach_the_client_unchanged() {
    let body = r#"{"error":{"message":"temperature too high","type":"invalid_request_error","param":"temperature","code":null}}"#;
    let up = MockUpstream::always(Reply::Json(400, body.to_string()));
    let p = Proxy::start(&config(&up));
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "small", "messages": []}),
    );
    assert_eq!(resp.status, 400);
    assert_text(&resp.body, body);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection_and_one_upstream_connection() {
    let up = MockUpstream::always(Reply::json(200, chat_answer("ok")));
    let p = Proxy::start(&config(&up));
    let conn = p.kept_alive();
    for _ in 0..3 {
        let resp = post_on(
            &conn,
            "/v1/chat/completions",
            json!({"model": "small", "messages": []}),
        );
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    let on_conn: Vec<usize> = up.requests().iter().map(|r| r.on_conn).collect();
    assert_eq!(on_conn, [0, 1, 2], "one upstream connection for all three");
}

#[test]
fn a_tool_call_streamed_in_many_fragments_is_collected_exactly_and_in_time() {
    // A long tool call (5 MB of arguments, with escapes and non-ASCII text) streamed in
    // more than 50 000 fragments of 100 characters, to a whole-answer client through a
    // server that ignores `"stream": false`. The client gets one answer, its arguments
    // exact. Collecting is linear: well within the bound, where copying the arguments
    // so far for each fragment (as the collector once did) took over half a minute.
    let items: Vec<String> = (0..450_000).map(|i| format!("é\"{i}")).collect();
    let args = json!({"items": items}).to_string();
    let chars: Vec<char> = args.chars().collect();
    let pieces: Vec<String> = chars.chunks(100).map(|c| c.iter().collect()).collect();
    assert!(pieces.len() > 50_000, "{}", pieces.len());
    let call = |f: serde_json::Value| json!({"tool_calls": [{"index": 0, "function": f}]});
    let mut events = vec![chat_chunk(
        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "save", "arguments": ""}}]}),
        json!(null),
    )];
    events.extend(
        (pieces.iter()).map(|piece| chat_chunk(call(json!({"arguments": piece})), json!(null))),
    );
    events.push(chat_chunk(json!({}), json!("tool_calls")));
    events.push("data: [DONE]\n\n".to_string());
    let up = MockUpstream::always(Reply::Sse(events, Duration::ZERO));
    let p = Proxy::start(&config(&up));
    let asked = Instant::now();
    let resp = p.post(
        "/v1/chat/completions",
        json!({"model": "small", "messages": [{"role": "user", "content": "save them"}]}),
    );
    let took = asked.elapsed();
    assert_eq!(
        resp.status,
        200,
        "{}",
        &resp.body[..resp.body.len().min(500)]
    );
    let v = resp.json();
    let calls = &v["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls.as_array().map(Vec::len), Some(1));
    assert_eq!(calls[0]["id"], "call_1");
    assert_eq!(calls[0]["function"]["name"], "save");
    let got = calls[0]["function"]["arguments"]
        .as_str()
        .unwrap_or_default();
    assert!(
        got == args,
        "{} bytes of arguments, {} sent",
        got.len(),
        args.len()
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert!(took < Duration::from_secs(20), "collected in {took:?}");
}
