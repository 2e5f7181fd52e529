//! The four wire formats and the one translation seam between them.
//!
//! A *protocol* is the JSON-over-HTTP dialect a client or an upstream speaks: OpenAI
//! Chat Completions, Anthropic Messages, OpenAI Responses, or Google Gemini (and OpenAI's
//! legacy text completions, which a client may speak and is never translated, see
//! `completions.rs`). Translation
//! always goes through Chat Completions, the *hub*: a request is turned into a chat
//! request and then into the upstream's; an upstream answer is decoded into chat chunks
//! and encoded into the client's events. Four decoders and four encoders instead of
//! sixteen pairs.
//!
//! When the client and the upstream speak the same protocol nothing here translates:
//! the relay forwards bytes with only the model rewritten (see `body.rs`, and
//! [`Protocol::passthrough_body`] for Gemini, whose model is in the URL). Of a stream
//! copied that way it still reads what each event adds, through [`view`].
//!
//! Hub conventions every translator keeps:
//! - thinking text travels as `reasoning_content` (a message field, a delta field);
//!   thinking a model signed or encrypted, to be given back to it in a tool loop
//!   (Claude's thinking, Gemini's call signatures, OpenAI's encrypted reasoning), as
//!   `reasoning_details` in OpenRouter's shape: a message field, and in a stream one
//!   delta per detail, or pieces of one that share its `index` (`add_detail`). Each
//!   detail's `format` names whose it is; only that source's translator sends it back;
//! - decoders always emit a usage chunk (`"choices": []`, `"usage": {…}`) before the
//!   end when the upstream reported usage; the chat encoder drops it unless the client
//!   asked for `stream_options.include_usage`;
//! - a refusal travels as OpenAI's `refusal` (a message field, a delta field), which
//!   the Responses encoder writes as a refusal part; for Anthropic and Gemini clients,
//!   which have no field for one, it becomes the answer's text;
//! - the text's citations of web pages travel as OpenAI's `annotations` (a message
//!   field; in a stream a delta field, after the text they cite) of `url_citation`s,
//!   whose `start_index`/`end_index` count characters of the answer's text; the
//!   Responses encoder writes them on its `output_text`, the Anthropic and Gemini
//!   encoders drop them (Anthropic's citations need its own encrypted index);
//! - `tool_calls[].index` counts from 0 within one response;
//! - a tool result with images or files (a screenshot) is a `tool` message whose
//!   content is parts (`text`, `image_url`, `file`); one of text alone is a string.
//!   Towards a Chat upstream the media move to a user message right after the tool
//!   messages, since OpenAI takes images only from users;
//! - a Responses client's custom (free-text) tool is a function of one string,
//!   `input`; [`Asked`] names those tools, so their calls go back as custom calls;
//! - a built-in tool the client runs itself (Anthropic's bash or text editor,
//!   Responses' `local_shell`) is a function of its documented input schema
//!   (`tools.rs`), its calls going back under its name (a local shell's as its own
//!   item); a choice of `allowed_tools` never reaches the hub: only the tools it allows
//!   stay in `tools`, under its plain mode;
//! - a thinking budget a client gave in tokens (Anthropic's `budget_tokens`, Gemini's
//!   `thinkingBudget`) travels as `THINKING_BUDGET` beside the effort word it maps
//!   to, for the sources that take a number (Anthropic, Gemini); it refines an effort
//!   and means nothing without one, and goes to no Chat source.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::body::RawBody;
use crate::error::Error;
use crate::sse::Event;

pub mod anthropic;
pub mod chat;
pub mod completions;
mod errors;
pub mod gemini;
pub mod responses;
pub(crate) mod tools;
pub mod view;

use errors::error_in_answer;
pub use errors::{openai_error_type, status_of_error, upstream_error_code, upstream_error_message};

/// The hub request's field for a thinking budget in tokens (see the hub conventions).
pub(crate) const THINKING_BUDGET: &str = "thinking_budget";

/// The source a request goes to, as a translator needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The provider's id (`openrouter`).
    pub provider: &'a str,
    /// The provider's base URL.
    pub api_base: &'a str,
    /// The model's name as sent upstream.
    pub model: &'a str,
}

impl Source<'_> {
    /// The host its base URL names, without a port (`api.mistral.ai`).
    pub fn host(&self) -> &str {
        let host = crate::log::host_of(self.api_base);
        host.split(':').next().unwrap_or(host)
    }
}

/// A wire format spoken by a client or an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI Chat Completions, `POST …/chat/completions`; the hub format.
    Chat,
    /// Anthropic Messages, `POST …/messages`.
    Anthropic,
    /// OpenAI Responses, `POST …/responses`.
    Responses,
    /// Google Gemini, `POST …/models/{model}:generateContent`.
    Gemini,
    /// OpenAI's legacy text completions, `POST …/completions`: a client's, relayed only
    /// to the sources of a `chat_completions` provider, which serve it too.
    Completions,
}

/// What a client's request says about the shape of its answer.
#[derive(Debug)]
pub struct Asked {
    /// `stream_options.include_usage` (chat clients).
    pub include_usage: bool,
    /// A Responses client's tools whose calls go back as items of their own: its
    /// custom (free-text) tools (Codex CLI's `apply_patch`), its `local_shell`.
    pub client_tools: responses::ClientTools,
    /// An Anthropic client asked for thinking: each answer begins with a thinking
    /// block, so that a tool loop Claude comes back to can be told apart.
    pub thinks: bool,
    /// What a Responses client's translated answer repeats of its request (`tools`,
    /// `temperature`, …), as OpenAI's answers do; nothing for other clients.
    pub echo: responses::Echo,
}

impl Asked {
    /// Reads what a client speaking `inbound` asked, from its body.
    pub fn of(inbound: Protocol, body: &RawBody) -> Asked {
        Asked {
            include_usage: body.include_usage(),
            client_tools: match inbound {
                Protocol::Responses => responses::ClientTools::of(body),
                _ => responses::ClientTools::default(),
            },
            thinks: inbound == Protocol::Anthropic && anthropic::asks_thinking(body),
            echo: match inbound {
                Protocol::Responses => responses::Echo::of(body),
                _ => responses::Echo::default(),
            },
        }
    }
}

/// What a stream decoder makes of one upstream event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// Chat chunks to pass on; empty for bookkeeping events (a ping, a comment).
    Chunks(Vec<Value>),
    /// The upstream's own end-of-stream marker, after these last chunks.
    End(Vec<Value>),
    /// The event could not be read (not JSON): dropped, the stream goes on.
    Malformed,
    /// A content filter held the whole answer back (a Gemini safety block, with
    /// nothing produced): these last chunks end it as filtered (`content_filter`,
    /// nothing in it, the usage). The relay moves on to another endpoint when one is
    /// left, else they are the answer.
    Blocked {
        /// The filtered ending.
        end: Vec<Value>,
        /// Why, for the failure when another endpoint is asked instead.
        message: String,
    },
    /// The upstream reported an error inside the stream.
    Failed {
        /// The status it corresponds to (its `type`/`code` mapped, else 502).
        status: u16,
        /// The upstream's message, verbatim.
        message: String,
    },
}

impl Protocol {
    /// Every protocol, in the order they are documented (the fuzzer runs each through
    /// every translator and codec).
    pub const ALL: [Protocol; 5] = [
        Protocol::Chat,
        Protocol::Anthropic,
        Protocol::Responses,
        Protocol::Gemini,
        Protocol::Completions,
    ];

    /// Reads a config spelling: `chat_completions`/`openai`, `anthropic`/`messages`,
    /// `responses`, `gemini`/`google`.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "chat_completions" | "openai" => Some(Protocol::Chat),
            "anthropic" | "messages" => Some(Protocol::Anthropic),
            "responses" => Some(Protocol::Responses),
            "gemini" | "google" => Some(Protocol::Gemini),
            _ => None,
        }
    }

    /// The canonical config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Chat => "chat_completions",
            Protocol::Anthropic => "anthropic",
            Protocol::Responses => "responses",
            Protocol::Gemini => "gemini",
            Protocol::Completions => "completions",
        }
    }

    /// A protocol by its [`Protocol::name`], legacy completions included (which no
    /// provider is configured to speak, so [`Protocol::parse`] refuses it).
    pub fn named(s: &str) -> Option<Protocol> {
        match s {
            "completions" => Some(Protocol::Completions),
            _ => Protocol::parse(s),
        }
    }

    /// The path appended to a provider's `api_base` to generate with `model`; Gemini
    /// names the model and whether to stream in the path.
    pub fn endpoint(self, model: &str, stream: bool) -> Cow<'static, str> {
        match self {
            Protocol::Chat => "/chat/completions".into(),
            Protocol::Anthropic => "/messages".into(),
            Protocol::Responses => "/responses".into(),
            Protocol::Gemini => gemini::endpoint(model, stream).into(),
            Protocol::Completions => "/completions".into(),
        }
    }

    /// The path of the token-counting call for `model`, where the protocol has one.
    pub fn count_tokens_endpoint(self, model: &str) -> Option<String> {
        match self {
            Protocol::Anthropic => Some("/messages/count_tokens".into()),
            Protocol::Gemini => Some(gemini::method_path(model, "countTokens")),
            Protocol::Chat | Protocol::Responses | Protocol::Completions => None,
        }
    }

    /// The status of a complete answer that came with a 2xx but is a failure, `None` for
    /// an answer: an error body in any protocol (`error_in_answer`: OpenRouter's way
    /// once it has begun, Anthropic's error body), or a Responses object whose `status`
    /// is `failed`.
    pub fn failed_answer(self, body: &[u8]) -> Option<u16> {
        error_in_answer(body).or_else(|| match self {
            Protocol::Responses => responses::failed_status(body),
            _ => None,
        })
    }

    /// Why a complete answer is really a content-filter block (Gemini answers a blocked
    /// prompt with 200 and no candidates; a chat source, Azure's, with `finish_reason:
    /// "content_filter"` and nothing in it; Anthropic with `stop_reason: "refusal"` and
    /// no content; Responses with an `incomplete` response, its reason `content_filter`,
    /// and no output); `None` for the rest.
    pub fn blocked_answer(self, body: &[u8]) -> Option<String> {
        // Looked for by the word that says it first: an ordinary answer is scanned
        // once and never parsed. Inside a string the word's quotes would be escaped.
        static REFUSAL: Marker = Marker::new(|| memchr::memmem::Finder::new("\"refusal\""));
        static FILTER: Marker = Marker::new(|| memchr::memmem::Finder::new("\"content_filter\""));
        let word = match self {
            Protocol::Gemini => return gemini::blocked_answer(body),
            Protocol::Chat => return chat::filtered_answer(body),
            Protocol::Completions => return None,
            Protocol::Anthropic => &REFUSAL,
            Protocol::Responses => &FILTER,
        };
        word.find(body)?;
        let hub = self
            .response_to_chat(serde_json::from_slice(body).ok()?)
            .ok()?;
        self.filtered(&hub, "message")
    }

    /// Why a hub answer (`part` = `message`) or chunk (`delta`) decoded from a source of
    /// this protocol is one a content filter emptied ([`chat::filtered`]), said as the
    /// source said it; `None` for any other.
    pub fn filtered(self, hub: &Value, part: &str) -> Option<String> {
        let reason = chat::filtered(hub, part)?;
        Some(match self {
            Protocol::Anthropic => {
                "content filter: the model refused to answer (`stop_reason: refusal`)".into()
            }
            Protocol::Responses => "content filter: the answer was held back \
                                    (`incomplete_details.reason: content_filter`)"
                .into(),
            _ => reason,
        })
    }

    /// A token count Routeplane estimated itself, in this protocol's answer shape.
    pub fn token_estimate(self, tokens: usize) -> Value {
        match self {
            Protocol::Gemini => json!({"totalTokens": tokens}),
            _ => json!({"input_tokens": tokens, "estimated": true}),
        }
    }

    /// The client's body re-sent byte for byte to an upstream of the same protocol with
    /// only the model changed: in the body, or (Gemini) nowhere, since it is in the URL.
    pub fn passthrough_body<'b>(self, body: &'b RawBody, model: &str) -> Cow<'b, [u8]> {
        match self {
            Protocol::Gemini => Cow::Owned(body.without_model()),
            _ => body.with_model(model),
        }
    }

    /// Whether a whole answer to `body` (a client request in this protocol) can be put
    /// together from a stream of it without losing what the client asked for: not with
    /// several choices or candidates, log probabilities or an echoed prompt.
    pub fn collects_whole(self, body: &RawBody) -> bool {
        let number = |bytes: &[u8]| serde_json::from_slice::<u64>(bytes).ok();
        let many = |key| body.get(key).and_then(number).is_some_and(|n| n > 1);
        let given = |key| body.get(key).is_some_and(|v| v != b"null" && v != b"false");
        match self {
            Protocol::Chat => !many("n") && !given("logprobs"),
            Protocol::Completions => {
                !many("n") && !many("best_of") && !given("logprobs") && !given("echo")
            }
            Protocol::Gemini => gemini::collects_whole(body),
            Protocol::Anthropic | Protocol::Responses => true,
        }
    }

    /// Makes `req`, a request in this protocol, ask for a stream, with its usage (Gemini
    /// asks for a stream in its URL).
    pub fn ask_stream(self, req: &mut Value) {
        let Some(obj) = req.as_object_mut() else {
            return;
        };
        match self {
            Protocol::Chat | Protocol::Completions => {
                obj.insert("stream".into(), json!(true));
                chat::ask_usage(obj);
            }
            Protocol::Anthropic | Protocol::Responses => {
                obj.insert("stream".into(), json!(true));
            }
            Protocol::Gemini => {}
        }
    }

    /// [`Protocol::passthrough_body`] asking for a stream, and for its usage where a
    /// stream reports it only when asked (chat): a whole answer to be collected from a
    /// stream. Gemini asks for a stream in its URL.
    pub fn streaming_body<'b>(self, body: &'b RawBody, model: &str) -> Cow<'b, [u8]> {
        match self {
            Protocol::Gemini => Cow::Owned(body.without_model()),
            Protocol::Chat | Protocol::Completions => {
                Cow::Owned(body.with_model_streaming(model, true))
            }
            Protocol::Anthropic | Protocol::Responses => {
                Cow::Owned(body.with_model_streaming(model, false))
            }
        }
    }

    /// Whether a client's body, copied as it came, carries what a source of this
    /// protocol would refuse: what Routeplane wrote for itself (another source's
    /// reasoning in a Responses reasoning item; a thinking block Claude did not sign,
    /// given to an Anthropic client; reasoning details a Chat client gives back, towards
    /// a Chat source other than OpenRouter), or a tool call id the Chat source `to` does
    /// not take. Such a body is mended ([`Protocol::mend`]), not copied.
    pub fn must_mend(self, body: &RawBody, to: &Source<'_>) -> bool {
        match self {
            Protocol::Responses => body.get("input").is_some_and(responses::holds_own),
            Protocol::Anthropic => body.get("messages").is_some_and(anthropic::holds_unsigned),
            Protocol::Chat => body.get("messages").is_some_and(|m| chat::must_mend(m, to)),
            Protocol::Gemini | Protocol::Completions => false,
        }
    }

    /// Takes out of a request, or rewrites, what [`Protocol::must_mend`] found.
    pub fn mend(self, req: &mut Value, to: &Source<'_>) {
        match self {
            Protocol::Responses => responses::drop_own(req),
            Protocol::Anthropic => anthropic::drop_unsigned(req),
            Protocol::Chat => chat::mend(req, to),
            Protocol::Gemini | Protocol::Completions => {}
        }
    }

    /// Takes out of a request the reasoning its source encrypted (OpenAI's reasoning
    /// items), for a source of another account, which cannot read it: `all` of it, or
    /// what came before the last user message; and the items' ids, which name nothing
    /// it stored. True when some reasoning is left; the encrypted texts and the ids taken
    /// out are added to `left_out`.
    pub fn forget_reasoning(self, req: &mut Value, all: bool, left_out: &mut Vec<String>) -> bool {
        self == Protocol::Responses && responses::drop_reasoning(req, all, left_out)
    }

    /// Takes out of a request in this protocol the reasoning it asks for: a chat
    /// `reasoning_effort` (and OpenRouter's `reasoning`), Anthropic's `thinking`, a
    /// Responses `reasoning` (and its encrypted content asked back), Gemini's
    /// `thinkingConfig`. For a model that refused it. True when there was some.
    pub fn forget_thinking(self, req: &mut Value) -> bool {
        let Some(o) = req.as_object_mut() else {
            return false;
        };
        match self {
            Protocol::Chat | Protocol::Completions => {
                let effort = o.shift_remove("reasoning_effort").is_some();
                o.shift_remove("reasoning").is_some() || effort
            }
            Protocol::Anthropic => o.shift_remove("thinking").is_some(),
            Protocol::Responses => {
                let mut forgot = o.shift_remove("reasoning").is_some();
                if let Some(Value::Array(include)) = o.get_mut("include") {
                    let before = include.len();
                    include.retain(|i| i != "reasoning.encrypted_content");
                    forgot |= include.len() < before;
                    if include.is_empty() {
                        o.shift_remove("include");
                    }
                }
                forgot
            }
            Protocol::Gemini => {
                let mut forgot = false;
                for config in ["generationConfig", "generation_config"] {
                    if let Some(Value::Object(c)) = o.get_mut(config) {
                        forgot |= c.shift_remove("thinkingConfig").is_some();
                        forgot |= c.shift_remove("thinking_config").is_some();
                    }
                }
                forgot
            }
        }
    }

    /// True when a request in this protocol asks for reasoning [`forget_thinking`]
    /// would take out.
    ///
    /// [`forget_thinking`]: Protocol::forget_thinking
    pub fn asks_thinking(self, req: &Value) -> bool {
        self.forget_thinking(&mut req.clone())
    }

    /// An error body in this protocol's shape.
    pub fn error_body(self, status: u16, message: &str) -> Vec<u8> {
        self.error_body_coded(status, message, None)
    }

    /// [`Protocol::error_body`] with OpenAI's `code` given rather than read from the
    /// status (a 404 is `model_not_found` only when a model was not found).
    pub fn error_body_coded(self, status: u16, message: &str, code: Option<&str>) -> Vec<u8> {
        let body = match self {
            Protocol::Chat | Protocol::Responses | Protocol::Completions => {
                let mut v = chat::error_json(status, message);
                if let Some(code) = code {
                    v["error"]["code"] = json!(code);
                }
                v
            }
            Protocol::Anthropic => anthropic::error_json(status, message),
            Protocol::Gemini => gemini::error_json(status, message),
        };
        body.to_string().into_bytes()
    }

    /// A prompt too long for the model's context window, as this protocol says it, so a
    /// client's own handling sees it: OpenAI's code `context_length_exceeded`,
    /// Anthropic's "prompt is too long" (Claude Code compacts on it), Google's
    /// `INVALID_ARGUMENT`.
    pub fn context_error_body(self, message: &str) -> Vec<u8> {
        const ANTHROPIC: &str = "prompt is too long";
        let message = match self {
            Protocol::Anthropic if !message.to_ascii_lowercase().contains(ANTHROPIC) => {
                Cow::Owned(format!("{ANTHROPIC}: {message}"))
            }
            _ => Cow::Borrowed(message),
        };
        self.error_body_coded(400, &message, Some("context_length_exceeded"))
    }

    /// Client request (this protocol) → hub chat request. `stream` is whether the
    /// client asked for a stream (Gemini says so in the URL, the others in the body).
    pub fn request_to_chat(self, req: Value, stream: bool) -> Result<Value, Error> {
        let mut chat = match self {
            Protocol::Chat => chat::request_to_chat(req),
            Protocol::Anthropic => anthropic::request_to_chat(req),
            Protocol::Responses => responses::request_to_chat(req),
            Protocol::Gemini => gemini::request_to_chat(req, stream),
            Protocol::Completions => Err(completions::untranslatable()),
        }?;
        tools::narrow_to_allowed(&mut chat)?;
        Ok(chat)
    }

    /// Hub chat request → upstream request in this protocol, for the source `to`.
    pub fn request_from_chat(self, mut chat: Value, to: &Source<'_>) -> Result<Value, Error> {
        chat::refusals_as_text(&mut chat);
        let (model, provider) = (to.model, to.provider);
        match self {
            Protocol::Chat => Ok(chat::request_from_chat(chat, to)),
            Protocol::Anthropic => anthropic::request_from_chat(chat, model, provider),
            Protocol::Responses => responses::request_from_chat(chat, model, provider),
            Protocol::Gemini => gemini::request_from_chat(chat, model, provider),
            Protocol::Completions => Err(completions::untranslatable()),
        }
    }

    /// Upstream response body (this protocol, non-streaming) → hub chat completion.
    pub fn response_to_chat(self, resp: Value) -> Result<Value, Error> {
        match self {
            Protocol::Chat => {
                let mut resp = resp;
                chat::into_hub(&mut resp, "message");
                Ok(resp)
            }
            Protocol::Anthropic => anthropic::response_to_chat(resp),
            Protocol::Responses => responses::response_to_chat(resp),
            Protocol::Gemini => gemini::response_to_chat(resp),
            Protocol::Completions => {
                let mut resp = resp;
                completions::into_hub(&mut resp, "message");
                Ok(resp)
            }
        }
    }

    /// Hub chat completion → client response body in this protocol, shaped as `asked`.
    pub fn response_from_chat(self, chat: Value, asked: &Asked) -> Value {
        match self {
            Protocol::Chat => chat,
            Protocol::Anthropic => anthropic::response_from_chat(refused(chat), asked.thinks),
            Protocol::Responses => {
                responses::response_from_chat(chat, &asked.client_tools, &asked.echo)
            }
            Protocol::Gemini => gemini::response_from_chat(refused(chat)),
            Protocol::Completions => completions::from_hub(refused(chat), "message"),
        }
    }

    /// A decoder for an upstream stream in this protocol.
    pub fn decoder(self) -> Decoder {
        match self {
            Protocol::Chat => Decoder::Chat(chat::Decoder::default()),
            Protocol::Anthropic => Decoder::Anthropic(anthropic::Decoder::default()),
            Protocol::Responses => Decoder::Responses(responses::Decoder::default()),
            Protocol::Gemini => Decoder::Gemini(gemini::Decoder::default()),
            Protocol::Completions => Decoder::Completions(completions::Decoder::default()),
        }
    }

    /// An encoder that writes hub chunks as this protocol's events to a client, shaped
    /// as `asked`.
    pub fn encoder(self, model: &str, asked: &Asked) -> Encoder {
        match self {
            Protocol::Chat => Encoder::Chat(chat::Encoder::new(asked.include_usage)),
            Protocol::Anthropic => Encoder::Anthropic(anthropic::Encoder::new(model, asked.thinks)),
            Protocol::Responses => Encoder::Responses(responses::Encoder::new(
                model,
                asked.client_tools.clone(),
                asked.echo.clone(),
            )),
            Protocol::Gemini => Encoder::Gemini(gemini::Encoder::new(model)),
            Protocol::Completions => {
                Encoder::Completions(completions::Encoder::new(asked.include_usage))
            }
        }
    }
}

/// A hub answer with its refusal as its content, for a client with no field for one.
fn refused(chat: Value) -> Value {
    chat::refusal_as_content(Cow::Owned(chat), "message").into_owned()
}

/// A stream decoder for one upstream protocol: upstream events in, hub chunks out.
#[derive(Debug)]
pub enum Decoder {
    /// Chat Completions upstream.
    Chat(chat::Decoder),
    /// Anthropic Messages upstream.
    Anthropic(anthropic::Decoder),
    /// Responses upstream.
    Responses(responses::Decoder),
    /// Gemini upstream.
    Gemini(gemini::Decoder),
    /// Legacy completions upstream.
    Completions(completions::Decoder),
}

impl Decoder {
    /// What an event copied to a same-protocol client adds to the answer, read without
    /// decoding it (see [`view`]); `None` for an event [`Decoder::event`] must read.
    /// Mutable for Gemini, whose events repeat a running usage the decoder keeps.
    pub fn copied_delta<'a>(&mut self, ev: &'a Event) -> Option<view::Delta<'a>> {
        match self {
            Decoder::Chat(_) => chat::delta(ev),
            Decoder::Anthropic(_) => anthropic::delta(ev),
            Decoder::Responses(_) => responses::delta(ev),
            Decoder::Gemini(d) => gemini::delta(d, ev),
            // Rare enough to be decoded in full.
            Decoder::Completions(_) => None,
        }
    }

    /// Decodes one upstream event.
    pub fn event(&mut self, ev: &Event) -> Decoded {
        match self {
            Decoder::Chat(d) => d.event(ev),
            Decoder::Anthropic(d) => d.event(ev),
            Decoder::Responses(d) => d.event(ev),
            Decoder::Gemini(d) => d.event(ev),
            Decoder::Completions(d) => d.event(ev),
        }
    }
}

/// A stream encoder for one client protocol: hub chunks in, client events out.
#[derive(Debug)]
pub enum Encoder {
    /// Chat Completions client.
    Chat(chat::Encoder),
    /// Anthropic Messages client.
    Anthropic(anthropic::Encoder),
    /// Responses client.
    Responses(responses::Encoder),
    /// Gemini client.
    Gemini(gemini::Encoder),
    /// Legacy completions client.
    Completions(completions::Encoder),
}

impl Encoder {
    /// Encodes one hub chunk.
    pub fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        match self {
            Encoder::Chat(e) => e.chunk(chunk),
            Encoder::Anthropic(e) => {
                e.chunk(&chat::refusal_as_content(Cow::Borrowed(chunk), "delta"))
            }
            Encoder::Responses(e) => e.chunk(chunk),
            Encoder::Gemini(e) => e.chunk(&chat::refusal_as_content(Cow::Borrowed(chunk), "delta")),
            Encoder::Completions(e) => {
                e.chunk(&chat::refusal_as_content(Cow::Borrowed(chunk), "delta"))
            }
        }
    }

    /// The events that close a stream that ended well.
    pub fn finish(&mut self) -> Vec<Event> {
        match self {
            Encoder::Chat(e) => e.finish(),
            Encoder::Anthropic(e) => e.finish(),
            Encoder::Responses(e) => e.finish(),
            Encoder::Gemini(e) => e.finish(),
            Encoder::Completions(e) => e.finish(),
        }
    }

    /// The events that end a stream with an error (after at least one event went out).
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Event> {
        match self {
            Encoder::Chat(e) => e.fail(status, message),
            Encoder::Anthropic(e) => e.fail(status, message),
            Encoder::Responses(e) => e.fail(status, message),
            Encoder::Gemini(e) => e.fail(status, message),
            Encoder::Completions(e) => e.fail(status, message),
        }
    }

    /// Learns from an event of this protocol that went to the client as the upstream
    /// sent it (a same-protocol stream), so the stream can be continued later: its ids,
    /// open block or item, indices and sequence numbers.
    pub fn observe(&mut self, ev: &Event) {
        match self {
            Encoder::Chat(e) => e.observe(ev),
            Encoder::Anthropic(e) => e.observe(ev),
            Encoder::Responses(e) => e.observe(ev),
            Encoder::Gemini(e) => e.observe(ev),
            Encoder::Completions(e) => e.observe(ev),
        }
    }

    /// From now on the open stream is continued with another answer's chunks: no second
    /// start (role chunk, `message_start`, `response.created`), the same ids, indices and
    /// sequence numbers going on. `text` and `reasoning` are what the client has so far.
    pub fn resume(&mut self, text: &str, reasoning: &str) {
        match self {
            Encoder::Chat(e) => e.resume(),
            Encoder::Completions(e) => e.resume(),
            Encoder::Anthropic(e) => e.resume(),
            Encoder::Responses(e) => e.resume(text, reasoning),
            // Every Gemini event stands alone (no start, no open part): nothing to reopen.
            Encoder::Gemini(_) => {}
        }
    }
}

/// Seconds since the epoch, for `created` fields.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The text of message content: a string, or the text of its parts joined by newlines.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            // A model's refusal (a chat or Responses `refusal` part) is what it said.
            .filter_map(|p| p["text"].as_str().or(p["refusal"].as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The URL of a chat `image_url` part (`{"url": …}`, or the bare string some clients send).
pub(crate) fn image_url(part: &Value) -> &str {
    let image = &part["image_url"];
    image["url"].as_str().or(image.as_str()).unwrap_or("")
}

/// True when chat content carries more than text (an image, a file): a tool result
/// that does is a `tool` message whose content is parts, not a string.
pub(crate) fn has_media(content: &Value) -> bool {
    content
        .as_array()
        .is_some_and(|parts| parts.iter().any(|p| p["type"] != "text"))
}

/// A hub stream chunk carrying one delta (and maybe a finish reason).
pub(crate) fn hub_chunk(
    id: &str,
    created: u64,
    model: &str,
    delta: Value,
    finish: Option<&str>,
) -> Value {
    json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

/// The text and thinking (`reasoning_details` too) of a hub delta, without its tool
/// calls; `None` when it has none of them. An encoder holds it while a call is open.
pub(crate) fn without_calls(d: &Value) -> Option<Value> {
    let filled = |key: &str| match &d[key] {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    };
    let keys = ["reasoning_content", "reasoning_details", "content"];
    keys.iter().any(|k| filled(k)).then(|| {
        let fields = keys.iter().map(|&k| (k.to_string(), d[k].clone()));
        Value::Object(fields.collect())
    })
}

/// The usage-only hub chunk (`"choices": []`) a decoder sends before the end.
pub(crate) fn usage_chunk(id: &str, created: u64, model: &str, usage: Value) -> Value {
    json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [], "usage": usage,
    })
}

/// A hub assistant message from its pieces; `content` is null when only tools were called.
pub(crate) fn assistant_message(text: String, reasoning: String, calls: Vec<Value>) -> Value {
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

/// The searcher of a marker Routeplane writes (a seal, a signature) or a field it looks
/// for in raw JSON without parsing: asked of every same-protocol request or whole answer,
/// most of which hold none. Made once: making one per call (`str::contains` did) cost about 1 300
/// instructions a copied chat request (callgrind), more than the search.
pub(crate) type Marker = std::sync::LazyLock<memchr::memmem::Finder<'static>>;

/// Whether raw JSON holds `marker`.
pub(crate) fn holds(json: &[u8], marker: &Marker) -> bool {
    marker.find(json).is_some()
}

/// A reasoning detail for a stream, numbered after the `sent` before it: each goes out
/// whole, with its own `index`, as OpenRouter numbers streamed details.
pub(crate) fn numbered(mut detail: Value, sent: &mut usize) -> Value {
    detail["index"] = json!(*sent);
    *sent += 1;
    detail
}

/// Whether a reasoning detail is one a source needs back with the calls it led to, and
/// one Routeplane may keep for a client that drops it: Claude's signed thinking,
/// OpenAI's encrypted reasoning and Gemini's call signatures.
pub fn recallable(detail: &Value) -> bool {
    matches!(
        detail["format"].as_str(),
        Some(anthropic::SIGNED_BY_CLAUDE | responses::SIGNED_BY_OPENAI | gemini::SIGNED_BY_GEMINI)
    )
}

/// Adds a streamed reasoning detail to those so far. OpenRouter streams a detail in
/// pieces that share its `index`: their text is joined and their other fields kept.
pub(crate) fn add_detail(details: &mut Vec<Value>, piece: &Value) {
    let same = |d: &&mut Value| !piece["index"].is_null() && d["index"] == piece["index"];
    let (Some(whole), Some(fields)) = (details.iter_mut().find(same), piece.as_object()) else {
        details.push(piece.clone());
        return;
    };
    for (key, value) in fields {
        match (key.as_str(), &mut whole[key], value) {
            ("text" | "summary" | "data", Value::String(so_far), Value::String(more)) => {
                so_far.push_str(more);
            }
            (_, slot, value) if !value.is_null() => *slot = value.clone(),
            _ => {}
        }
    }
}

/// `id` at most `max` bytes long: as it is when it fits, else its start and a hash of
/// the whole, so that an id is always shortened alike (a call and its result still
/// pair, and a source's prompt cache still matches the history) and two ids stay apart.
pub(crate) fn bounded_id(id: &str, max: usize) -> Cow<'_, str> {
    if id.len() <= max {
        return Cow::Borrowed(id);
    }
    let hash = format!("{:016x}", fnv1a(id.as_bytes()));
    let mut keep = max.saturating_sub(hash.len() + 1);
    while !id.is_char_boundary(keep) {
        keep -= 1;
    }
    Cow::Owned(format!("{}_{hash}", &id[..keep]))
}

/// The 64-bit FNV-1a hash: std's hashers may change between Rust releases, and a
/// shortened id must not change between two turns of a session.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Chat tool-call arguments (a JSON string) as an object; `{}` when empty or not an object.
pub(crate) fn arguments_object(args: &str) -> Value {
    serde_json::from_str::<Value>(args)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// The error for a chat message whose role the hub does not know. Untranslatable, not
/// malformed: a Chat source judges its own roles (OpenAI still takes `function`).
pub(crate) fn unknown_role(role: Option<&str>) -> Error {
    Error::Untranslatable(format!(
        "unknown message role `{}`",
        role.unwrap_or("(none)")
    ))
}

/// Appends a turn of `items` under `key` to `turns`, folded into the last turn when that
/// has the same role: Anthropic and Gemini want roles to alternate, and parallel tool
/// results belong in one turn.
pub(crate) fn push_turn(turns: &mut Vec<Value>, role: &str, key: &str, items: Vec<Value>) {
    match turns.last_mut() {
        Some(last) if last["role"] == role => {
            if let Some(a) = last[key].as_array_mut() {
                a.extend(items);
            }
        }
        _ => turns.push(json!({"role": role, key: items})),
    }
}

/// What a request's tool choice asks for, in the hub's terms: each translator maps its
/// own protocol's words to and from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolChoice<'a> {
    /// The model decides whether to call a tool (chat `"auto"`).
    Auto,
    /// The model must call some tool (chat `"required"`).
    Required,
    /// The model must not call a tool (chat `"none"`).
    Never,
    /// The model must call this function.
    Function(&'a str),
}

impl<'a> ToolChoice<'a> {
    /// The choice a chat request makes, if it makes one the hub knows.
    pub(crate) fn of_chat(chat: &'a Value) -> Option<ToolChoice<'a>> {
        match &chat["tool_choice"] {
            Value::String(s) => match s.as_str() {
                "auto" => Some(ToolChoice::Auto),
                "required" => Some(ToolChoice::Required),
                "none" => Some(ToolChoice::Never),
                _ => None,
            },
            v @ Value::Object(_) => v["function"]["name"].as_str().map(ToolChoice::Function),
            _ => None,
        }
    }

    /// The chat `tool_choice` value that asks for it.
    pub(crate) fn to_chat(self) -> Value {
        match self {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Never => json!("none"),
            ToolChoice::Function(name) => {
                json!({"type": "function", "function": {"name": name}})
            }
        }
    }
}

/// Chat `stop` (a string or a list) as a list of stop sequences.
pub(crate) fn stop_list(chat: &Value) -> Option<Value> {
    match &chat["stop"] {
        Value::String(s) => Some(json!([s])),
        Value::Array(a) => Some(Value::Array(a.clone())),
        _ => None,
    }
}

/// Copies each of `keys` that `from` has (and is not null) into the object `to`.
pub(crate) fn copy_fields(from: &Value, to: &mut Value, keys: &[&str]) {
    for &key in keys {
        if !from[key].is_null() {
            to[key] = from[key].clone();
        }
    }
}

/// A chat `file` part carrying `data_url` inline; chat clients send a file name with it,
/// and OpenAI wants one.
pub(crate) fn file_part(filename: Option<&str>, data_url: String) -> Value {
    json!({"type": "file", "file": {"filename": filename.unwrap_or("document.pdf"), "file_data": data_url}})
}

/// The media type and base64 data a chat `file` part carries inline. A file given by id
/// is refused: only a Responses source knows what the id names.
pub(crate) fn inline_file<'a>(
    part: &'a Value,
    provider: &str,
) -> Result<(&'a str, &'a str), Error> {
    part["file"]["file_data"]
        .as_str()
        .and_then(data_url)
        .ok_or_else(|| Error::Unsupported {
            field: "content part `file` without inline `file_data`".into(),
            provider: provider.to_string(),
        })
}

/// A base64 data URL (`data:MIME;base64,DATA`) split into its media type and data.
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    url.strip_prefix("data:")?.split_once(";base64,")
}

/// The base64 data URL for `data` of media type `mime`; [`data_url`] takes it apart.
pub(crate) fn to_data_url(mime: &str, data: &str) -> String {
    format!("data:{mime};base64,{data}")
}

/// Refuses the chat fields neither other protocol can express: `n` > 1 and `logprobs`.
pub(crate) fn refuse_chat_only(chat: &Value, provider: &str) -> Result<(), Error> {
    let field = if chat["n"].as_u64().is_some_and(|n| n > 1) {
        "n"
    } else if chat["logprobs"] == json!(true) {
        "logprobs"
    } else {
        return Ok(());
    };
    Err(Error::Unsupported {
        field: field.to_string(),
        provider: provider.to_string(),
    })
}

/// Helpers for the translators' tests: run a decoder over events, fold chunks.
#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
