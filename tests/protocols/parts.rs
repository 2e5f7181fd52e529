//! Files and images through a translation: inline PDFs, images in tool results, a
//! file by URL refused where it would be lost, and empty text parts left out.

use serde_json::json;

use super::{each_translated_pair, setup};
use crate::support::wire::Wire;

#[test]
fn every_pair_carries_an_inline_pdf() {
    each_translated_pair(|client, up| {
        let (mock, p) = setup(up, up.reply(false, false));
        let resp = p.post(&client.url("m", false), client.pdf_request("m"));
        assert_eq!(resp.status, 200, "{client:?}→{up:?}: {}", resp.body);
        let sent = up.first_user_parts(&mock.requests()[0].json());
        assert_eq!(sent[0], up.pdf_part(), "{client:?}→{up:?}: {sent}");
        let parts = sent.as_array().map(Vec::len);
        assert_eq!(parts, Some(2), "{client:?}→{up:?}: {sent}");
    });
}

#[test]
fn every_pair_carries_an_image_in_a_tool_result() {
    // A screenshot tool's answer: the image reaches every format's upstream, where it
    // takes one, beside the result's text.
    each_translated_pair(|client, up| {
        let (mock, p) = setup(up, up.reply(false, false));
        let resp = p.post(&client.url("m", false), client.tool_image_request("m"));
        assert_eq!(resp.status, 200, "{client:?}→{up:?}: {}", resp.body);
        let sent = mock.requests()[0].json();
        assert!(up.has_tool_result(&sent), "{client:?}→{up:?}: {sent}");
        assert_eq!(
            up.tool_image(&sent),
            up.png_part(),
            "{client:?}→{up:?}: {sent}"
        );
    });
}

#[test]
fn a_tool_results_image_reaches_a_chat_upstream_in_a_user_message() {
    // OpenAI refuses an image in a tool message: it follows the tool messages instead,
    // and they still follow their calls unbroken.
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let resp = p.post(
        &Wire::Anthropic.url("m", false),
        Wire::Anthropic.tool_image_request("m"),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    let m = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = m.iter().map(|x| x["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "user"], "{sent}");
    assert_eq!(m[2]["content"], "sunny", "{sent}");
    assert_eq!(m[3]["content"], json!([Wire::Chat.png_part()]), "{sent}");
}

#[test]
fn a_gemini_function_results_nested_image_reaches_anthropic_inside_the_result() {
    // Gemini 3 nests a function result's images in the result's own `parts`.
    let (mock, p) = setup(Wire::Anthropic, Wire::Anthropic.reply(false, false));
    let mut req = Wire::Gemini.tool_result_request("m", false);
    req["contents"][2]["parts"][0]["functionResponse"]["parts"] = json!([Wire::Gemini.png_part()]);
    let resp = p.post(&Wire::Gemini.url("m", false), req);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    let result = &sent["messages"][2]["content"][0];
    assert_eq!(result["type"], "tool_result", "{sent}");
    assert_eq!(
        result["content"],
        json!([{"type": "text", "text": "sunny"}, Wire::Anthropic.png_part()]),
        "{sent}"
    );
}

#[test]
fn a_file_by_url_is_refused_rather_than_lost() {
    // Chat's `file` part, the hub's form, has no by-URL form: each client's way of
    // naming a file by URL is a 400 in its own shape, and nothing goes upstream.
    let by_url = [
        (
            Wire::Anthropic,
            json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
                {"type": "text", "text": "summarize"},
            ]}]}),
            "document",
        ),
        (
            Wire::Responses,
            json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_file", "file_url": "https://example.com/a.pdf"},
                {"type": "input_text", "text": "summarize"},
            ]}]}),
            "file_url",
        ),
        (
            Wire::Gemini,
            json!({"contents": [{"role": "user", "parts": [
                {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/a.pdf"}},
                {"text": "summarize"},
            ]}]}),
            "fileData",
        ),
    ];
    for (client, req, named) in by_url {
        let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
        let resp = p.post(&client.url("m", false), req);
        assert_eq!(resp.status, 400, "{client:?}: {}", resp.body);
        let message = client.error_message(&resp.json());
        assert!(message.contains(named), "{client:?}: {message}");
        assert!(
            mock.requests().is_empty(),
            "{client:?}: nothing goes upstream"
        );
    }
}

#[test]
fn a_gemini_image_by_uri_reaches_chat_as_an_image_url() {
    let (mock, p) = setup(Wire::Chat, Wire::Chat.reply(false, false));
    let resp = p.post(
        &Wire::Gemini.url("m", false),
        json!({"contents": [{"role": "user", "parts": [
            {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png"}},
            {"text": "what is this?"},
        ]}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    assert_eq!(
        sent["messages"][0]["content"][0],
        json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})
    );
}

#[test]
fn an_empty_text_part_never_reaches_gemini() {
    let (mock, p) = setup(Wire::Gemini, Wire::Gemini.reply(false, false));
    let resp = p.post(
        &Wire::Chat.url("m", false),
        json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]},
        ]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = mock.requests()[0].json();
    assert_eq!(sent["contents"][0]["parts"], json!([{"text": "hi"}]));
}
