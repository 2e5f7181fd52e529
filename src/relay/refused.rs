//! What models refused of a request, asked without it from then on.
//!
//! Claude Code asks for thinking on its turns. Translated for a Chat Completions source
//! it is a `reasoning_effort`, which a model without reasoning refuses: Ollama says
//! `"llama3.1" does not support thinking`, OpenAI's gpt-4o `Unsupported parameter:
//! 'reasoning_effort'`. OpenAI's reasoning models (o1, o3, o4-mini, gpt-5…) refuse in
//! the same words the sampling knobs another model family's client sends: `stop`,
//! `temperature` other than 1, `top_p`, the penalties, `logprobs`, and `max_tokens`
//! ("Use 'max_completion_tokens' instead"). Other sources refuse them in words of their
//! own ([`Param::refused_in`]): DeepSeek's reasoner, Kimi, and Anthropic's newer models,
//! which take no `temperature`, `top_p` or `top_k`, or not two of them together. Such a
//! refusal is asked again at once without what was refused (`attempt.rs`), and the
//! endpoint is remembered here with it, so that its later requests leave it out from
//! the first try instead of paying a refused request each. A parameter is left out only
//! of a translated request: a client that wrote the request for this source chose it,
//! and gets the source's error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::protocol::Protocol;

/// Endpoints remembered at most: each is an endpoint label a request named, so a client
/// naming many cannot grow this without bound. Past it, a refusal costs one more
/// request each time.
const MOST: usize = 1024;

/// A request parameter Routeplane can leave out of a translated request without
/// changing what it asks: a sampling knob, stop sequences, log probabilities, or the
/// output limit under its older name. Never `tools`, `messages`, `model` or
/// `response_format`, which are the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Param {
    Temperature,
    TopP,
    /// Anthropic's (and Gemini's `topK`, which reaches only Anthropic).
    TopK,
    PresencePenalty,
    FrequencyPenalty,
    Stop,
    Logprobs,
    TopLogprobs,
    LogitBias,
    /// Renamed `max_completion_tokens`, not left out: it is the client's cost limit.
    MaxTokens,
}

impl Param {
    /// Every parameter, in the order of their bits in [`Refusals`].
    const ALL: [Param; 10] = [
        Param::Temperature,
        Param::TopP,
        Param::TopK,
        Param::PresencePenalty,
        Param::FrequencyPenalty,
        Param::Stop,
        Param::Logprobs,
        Param::TopLogprobs,
        Param::LogitBias,
        Param::MaxTokens,
    ];

    /// Its key in a Chat Completions or Responses request, as a refusal names it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Param::Temperature => "temperature",
            Param::TopP => "top_p",
            Param::TopK => "top_k",
            Param::PresencePenalty => "presence_penalty",
            Param::FrequencyPenalty => "frequency_penalty",
            Param::Stop => "stop",
            Param::Logprobs => "logprobs",
            Param::TopLogprobs => "top_logprobs",
            Param::LogitBias => "logit_bias",
            Param::MaxTokens => "max_tokens",
        }
    }

    /// The parameter a refusal names, from its message in lowercase, in the words of
    /// the sources that send one; `None` for any other message, and for a parameter not
    /// in [`Param::ALL`] (`reasoning_effort` is reasoning's, `tools` the request's).
    /// Each wording is matched where it names the parameter, never anywhere in the
    /// text, so a message that only mentions one is not read as refusing it.
    pub(super) fn refused_in(message: &str) -> Option<Param> {
        let known = |name: &str| Param::ALL.into_iter().find(|p| p.name() == name);
        // OpenAI: "unsupported parameter: 'stop' is not supported with this model." or
        // "unsupported value: 'temperature' does not support 0.2 with this model. only
        // the default (1) value is supported." DeepSeek's reasoner: "deepseek-reasoner
        // does not support the parameter `temperature`".
        let quoted = [
            ("unsupported parameter: '", '\''),
            ("unsupported value: '", '\''),
            ("does not support the parameter `", '`'),
        ];
        for (head, close) in quoted {
            if let Some(at) = message.find(head) {
                let named = &message[at + head.len()..];
                return known(&named[..named.find(close)?]);
            }
        }
        // Anthropic's models from Claude Opus 4.7 on: "`temperature` is deprecated for
        // this model." (`top_p`, `top_k` alike), the name quoted or not (Bedrock's
        // "…errors: temperature is deprecated for this model").
        if let Some(at) = message.find(" is deprecated for this model") {
            let named = message[..at].rsplit([' ', ':']).next()?;
            return known(named.trim_matches('`'));
        }
        // Anthropic's Claude 4.5 and later: "`temperature` and `top_p` cannot both be
        // specified for this model. please use only one." The temperature is kept: it
        // is the knob clients mean, and Anthropic's own advice is to set that one.
        if message.contains("`temperature` and `top_p` cannot both be specified") {
            return Some(Param::TopP);
        }
        // Kimi (Moonshot): "invalid temperature: only 1 is allowed for this model".
        let (name, rest) = message.strip_prefix("invalid ")?.split_once(": only ")?;
        known(name).filter(|_| rest.ends_with("is allowed for this model"))
    }

    /// The key this parameter has in a request in `protocol`, when a source of that
    /// protocol can be asked without it: Chat Completions' and Responses' names as
    /// [`Param::name`] says, and Anthropic's sampling knobs. An Anthropic request must
    /// carry its `max_tokens`, and has no penalties or log probabilities; a Gemini
    /// source's refusals are not read.
    pub(super) fn key(self, protocol: Protocol) -> Option<&'static str> {
        match protocol {
            Protocol::Chat | Protocol::Responses => Some(self.name()),
            Protocol::Anthropic => {
                matches!(self, Param::Temperature | Param::TopP | Param::TopK).then(|| self.name())
            }
            _ => None,
        }
    }

    /// Takes it out of a request body in `protocol` (see [`Param::key`]); `max_tokens`
    /// becomes `max_completion_tokens` (unless that is there already), and log
    /// probabilities go with their count, which needs them.
    pub(super) fn leave_out(self, protocol: Protocol, body: &mut Value) {
        let (Some(key), Some(obj)) = (self.key(protocol), body.as_object_mut()) else {
            return;
        };
        let taken = obj.shift_remove(key);
        match (self, taken) {
            (Param::MaxTokens, Some(n)) => {
                obj.entry("max_completion_tokens").or_insert(n);
            }
            (Param::Logprobs, _) => {
                obj.shift_remove(Param::TopLogprobs.name());
            }
            _ => {}
        }
    }

    /// Its bit in [`Refusals`]; bit 0 is reasoning's.
    fn bit(self) -> u16 {
        2 << self as u16
    }
}

/// What an endpoint refused: its reasoning, parameters, or nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Refusals(u16);

impl Refusals {
    /// Nothing refused.
    pub(super) const NONE: Refusals = Refusals(0);
    /// The reasoning the request asked for.
    pub(super) const REASONING: Refusals = Refusals(1);

    /// True when all of `other` is among these.
    pub(super) fn has(self, other: Refusals) -> bool {
        self.0 & other.0 == other.0
    }

    /// These and `other`.
    pub(super) fn with(self, other: Refusals) -> Refusals {
        Refusals(self.0 | other.0)
    }

    /// Only the reasoning of these, if it is one: what a copied request leaves out.
    pub(super) fn reasoning_only(self) -> Refusals {
        Refusals(self.0 & Refusals::REASONING.0)
    }

    /// The parameters among these.
    pub(super) fn params(self) -> impl Iterator<Item = Param> {
        Param::ALL
            .into_iter()
            .filter(move |p| self.0 & p.bit() != 0)
    }
}

impl From<Param> for Refusals {
    fn from(p: Param) -> Refusals {
        Refusals(p.bit())
    }
}

/// Endpoints (`provider:model` labels) whose model refused part of a request.
#[derive(Debug, Default)]
pub struct Refused {
    labels: Mutex<HashMap<String, Refusals>>,
    /// Anything is remembered: read without the lock by every request.
    any: AtomicBool,
}

impl Refused {
    /// Remembers that the model at `label` refused `what`.
    pub(super) fn note(&self, label: &str, what: Refusals) {
        let mut labels = crate::sync::lock(&self.labels);
        if let Some(known) = labels.get_mut(label) {
            *known = known.with(what);
        } else if labels.len() < MOST {
            labels.insert(label.to_string(), what);
            self.any.store(true, Ordering::Release);
        }
    }

    /// What the model at `label` refused before.
    pub(super) fn of(&self, label: &str) -> Refusals {
        if !self.any.load(Ordering::Acquire) {
            return Refusals::NONE;
        }
        let labels = crate::sync::lock(&self.labels);
        labels.get(label).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_noted_refusal_is_known_for_its_model_and_no_other() {
        let r = Refused::default();
        assert_eq!(r.of("ollama:llama3.1"), Refusals::NONE);
        r.note("ollama:llama3.1", Refusals::REASONING);
        r.note("openai:o3", Param::Stop.into());
        r.note("openai:o3", Param::Temperature.into());
        assert!(r.of("ollama:llama3.1").has(Refusals::REASONING));
        assert_eq!(r.of("ollama:qwen3"), Refusals::NONE);
        let o3 = r.of("openai:o3");
        assert!(!o3.has(Refusals::REASONING));
        assert_eq!(
            o3.params().collect::<Vec<_>>(),
            [Param::Temperature, Param::Stop]
        );
        assert_eq!(o3.reasoning_only(), Refusals::NONE);
    }

    #[test]
    fn remembered_models_are_bounded() {
        let r = Refused::default();
        for i in 0..MOST + 10 {
            r.note(&format!("p:m{i}"), Refusals::REASONING);
        }
        assert_eq!(crate::sync::lock(&r.labels).len(), MOST);
        assert_eq!(r.of(&format!("p:m{}", MOST + 5)), Refusals::NONE);
        // One already known still learns more.
        r.note("p:m0", Param::Stop.into());
        assert!(r.of("p:m0").has(Param::Stop.into()));
    }

    #[test]
    fn the_refused_parameter_is_read_from_openais_words() {
        for (message, want) in [
            (
                "Unsupported parameter: 'stop' is not supported with this model.",
                Some(Param::Stop),
            ),
            (
                "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.",
                Some(Param::Temperature),
            ),
            (
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                Some(Param::MaxTokens),
            ),
            (
                "Unsupported parameter: 'top_p' is not supported with this model. (request id: 2025050875)",
                Some(Param::TopP),
            ),
            // What is the request, or reasoning's, is not a parameter to leave out.
            (
                "Unsupported parameter: 'tools' is not supported with this model.",
                None,
            ),
            (
                "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model.",
                None,
            ),
            ("temperature must be at most 2", None),
            ("Unsupported parameter: 'stop", None),
            // DeepSeek's reasoner.
            (
                "deepseek-reasoner does not support the parameter `presence_penalty`",
                Some(Param::PresencePenalty),
            ),
            (
                "deepseek-reasoner does not support the parameter `temperature`",
                Some(Param::Temperature),
            ),
            ("deepseek-reasoner does not support Json Output.", None),
            ("deepseek-reasoner does not support Function Calling", None),
            // Anthropic's, and Bedrock's wording of them.
            (
                "`temperature` is deprecated for this model.",
                Some(Param::Temperature),
            ),
            ("`top_k` is deprecated for this model.", Some(Param::TopK)),
            (
                "The model returned the following errors: temperature is deprecated for this model.",
                Some(Param::Temperature),
            ),
            ("`top_p` is deprecated for this model", Some(Param::TopP)),
            (
                "`temperature` and `top_p` cannot both be specified for this model. Please use only one.",
                Some(Param::TopP),
            ),
            (
                "claude-2 is deprecated for this model family: use a newer one",
                None,
            ),
            ("`thinking` is deprecated for this model.", None),
            // Kimi's.
            (
                "invalid temperature: only 1 is allowed for this model",
                Some(Param::Temperature),
            ),
            ("invalid temperature: only 1 is allowed", None),
            (
                "invalid model: only chat models are allowed for this model",
                None,
            ),
        ] {
            let m = message.to_ascii_lowercase();
            assert_eq!(Param::refused_in(&m), want, "{message}");
        }
    }

    #[test]
    fn a_parameter_is_left_out_and_the_old_output_limit_renamed() {
        let mut body = json!({"model": "o3", "stop": ["x"], "logprobs": true, "top_logprobs": 2, "max_tokens": 50, "tools": []});
        Param::Stop.leave_out(Protocol::Chat, &mut body);
        Param::Logprobs.leave_out(Protocol::Chat, &mut body);
        Param::MaxTokens.leave_out(Protocol::Chat, &mut body);
        assert_eq!(
            body,
            json!({"model": "o3", "tools": [], "max_completion_tokens": 50})
        );
        // A limit already under its new name stays as the client set it.
        let mut body = json!({"max_tokens": 50, "max_completion_tokens": 20});
        Param::MaxTokens.leave_out(Protocol::Responses, &mut body);
        assert_eq!(body, json!({"max_completion_tokens": 20}));
        // Anthropic's request keeps the output limit it must carry; its knobs go.
        let mut body = json!({"max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "top_k": 5});
        for p in [Param::MaxTokens, Param::TopP, Param::TopK] {
            p.leave_out(Protocol::Anthropic, &mut body);
        }
        assert_eq!(body, json!({"max_tokens": 50, "temperature": 0.2}));
        // Gemini's refusals are not read: nothing is left out of its request.
        let mut body = json!({"temperature": 0.2});
        Param::Temperature.leave_out(Protocol::Gemini, &mut body);
        assert_eq!(body, json!({"temperature": 0.2}));
    }
}
