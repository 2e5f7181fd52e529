//! The four wire formats and the one translation seam between them.
//!
//! A *protocol* is the JSON-over-HTTP dialect a client or an upstream speaks: OpenAI
//! Chat Completions, Anthropic Messages, OpenAI Responses, or Google Gemini (and OpenAI's
//! legacy text completions, which a client may speak and is never translated, see
//! `completions.rs`). Translation
//! always goes through Chat Completions, the *hub*: a request is turned into a chat
//! request and then into the upstream's; an upstream answer is decoded into chat chunks
//! and encoded into the client's events. Four decoders and four encoders instead of
//! sixteen pairs. The pieces the translators build alike (hub chunks and messages, tool
//! choices, files, ids) are in `hub.rs`.
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
mod fields;
pub mod gemini;
mod hub;
pub mod responses;
pub(crate) mod tools;
pub mod view;

use errors::error_in_answer;
pub use errors::{
    openai_error_type, status_of_error, upstream_error_fields, upstream_error_message,
};
pub(crate) use fields::{EFFORT, Must, check, nameless};
pub use hub::recallable;
pub(crate) use hub::{
    Marker, ToolChoice, add_detail, answer_id, arguments_object, assistant_message, bounded_id,
    clock_hex, copy_fields, data_url, file_part, fit_answer, fit_call, fnv1a, has_media, holds,
    hub_chunk, image_url, inline_file, made_answer_id, made_id_prefix, now, numbered,
    part_unsupported, push_turn, refuse_chat_only, stop_list, text_of, to_data_url, unknown_role,
    usage_chunk, without_calls,
};

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
    /// The source sent what no client can read (a tool call without a string `name`,
    /// an id of another type: `hub::unreadable`'s reason). Not the source's words: the
    /// answer fails as a whole one that cannot be read does, and the same endpoint is
    /// not asked again, as it would send the same.
    Unreadable(String),
    /// The upstream reported an error inside the stream.
    Failed {
        /// The status it corresponds to (its `type`/`code` mapped, else 502).
        status: u16,
        /// The upstream's message, verbatim.
        message: String,
    },
}

/// What a stream's last content was, for what a break there cut: kept by the decoders
/// of sources that send a tool call whole (Gemini) or mark where one ends (Anthropic's
/// `content_block_stop`, a Responses `output_item.done`). A chat source's calls come
/// in fragments with no end of their own, so its decoder keeps none.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    /// Nothing yet, or something a break may have cut that is not text or reasoning
    /// (a call still open, a server tool's block).
    #[default]
    Other,
    /// A tool call, whole: a break here cut nothing of the answer but its ending.
    Call,
    /// Text.
    Text,
    /// Reasoning.
    Reasoning,
}

impl Last {
    /// What a break cut when it came after whole tool calls (`calls_whole`): `text` or
    /// `reasoning`, for the client's error message; `None` otherwise.
    pub fn cut_after_calls(self, calls_whole: bool) -> Option<&'static str> {
        match self {
            Last::Text if calls_whole => Some("text"),
            Last::Reasoning if calls_whole => Some("reasoning"),
            _ => None,
        }
    }
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

    /// Reads a config spelling: `chat_completions`, `anthropic`, `responses` or
    /// `gemini`, and nothing else. No alias: `openai` could mean either of OpenAI's two
    /// APIs, and a guess would send a request in a protocol the server does not speak.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "chat_completions" => Some(Protocol::Chat),
            "anthropic" => Some(Protocol::Anthropic),
            "responses" => Some(Protocol::Responses),
            "gemini" => Some(Protocol::Gemini),
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
        self.error_body_coded(status, message, None, None)
    }

    /// [`Protocol::error_body`] with OpenAI's `code` given rather than read from the
    /// status (a 404 is `model_not_found` only when a model was not found), and its
    /// `param`, the request field a 400 is about ([`Error::param`]).
    pub fn error_body_coded(
        self,
        status: u16,
        message: &str,
        code: Option<&str>,
        param: Option<&str>,
    ) -> Vec<u8> {
        let body = match self {
            Protocol::Chat | Protocol::Responses | Protocol::Completions => {
                let mut v = chat::error_json(status, message, param);
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
        self.error_body_coded(400, &message, Some("context_length_exceeded"), None)
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

    /// Upstream response body (this protocol, non-streaming) → hub chat completion, its
    /// ids and tool names fit for any client (`hub::fit_answer`): a source's answer
    /// whose are not is unreadable, refused as a broken answer is.
    pub fn response_to_chat(self, resp: Value) -> Result<Value, Error> {
        let mut chat = match self {
            Protocol::Chat => {
                let mut resp = resp;
                chat::into_hub(&mut resp, "message");
                resp
            }
            Protocol::Anthropic => anthropic::response_to_chat(resp)?,
            Protocol::Responses => responses::response_to_chat(resp)?,
            Protocol::Gemini => gemini::response_to_chat(resp)?,
            Protocol::Completions => {
                let mut resp = resp;
                completions::into_hub(&mut resp, "message");
                return Ok(resp);
            }
        };
        hub::fit_answer(&mut chat).map_err(|reason| Error::Upstream {
            provider: self.name().into(),
            reason,
        })?;
        Ok(chat)
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

    /// A decoder for an upstream stream in this protocol, `translated` for a client of
    /// another (or re-encoded) rather than copied byte for byte.
    pub fn decoder(self, translated: bool) -> Decoder {
        match self {
            Protocol::Chat => Decoder::Chat(chat::Decoder::new(translated)),
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

    /// The chunks that end the answer when its stream broke before its finish marker
    /// right after whole tool calls, as its finish marker and usage would have: a
    /// Gemini call comes whole; an Anthropic `tool_use` block that reached its
    /// `content_block_stop`, or a Responses `function_call` item that reached its
    /// `output_item.done`, is whole. `None` when a break may have cut the answer, for
    /// the relay to continue or fail.
    pub fn whole_ending(&mut self) -> Option<Vec<Value>> {
        match self {
            Decoder::Gemini(d) => d.whole_ending(),
            Decoder::Anthropic(d) => d.whole_ending(),
            Decoder::Responses(d) => d.whole_ending(),
            // Their calls come in fragments with no end of their own.
            Decoder::Chat(_) | Decoder::Completions(_) => None,
        }
    }

    /// What a break cut when every tool call before it is whole and text or reasoning
    /// came after them (`text`, `reasoning`): the client is told that, not that a call
    /// was cut. `None` when a call may have been cut, or none came.
    pub fn cut_after_calls(&self) -> Option<&'static str> {
        match self {
            Decoder::Gemini(d) => d.cut_after_calls(),
            Decoder::Anthropic(d) => d.cut_after_calls(),
            Decoder::Responses(d) => d.cut_after_calls(),
            Decoder::Chat(_) | Decoder::Completions(_) => None,
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

    /// The events that end a stream with an error (after at least one event went out);
    /// `text` and `reasoning` are what the client has so far.
    pub fn fail(&mut self, status: u16, message: &str, text: &str, reasoning: &str) -> Vec<Event> {
        match self {
            Encoder::Chat(e) => e.fail(status, message),
            Encoder::Anthropic(e) => e.fail(status, message),
            Encoder::Responses(e) => e.fail(status, message, text, reasoning),
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

/// Helpers for the translators' tests: run a decoder over events, fold chunks.
#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
