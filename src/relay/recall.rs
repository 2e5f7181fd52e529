//! Reasoning a client does not give back, kept for its next turn by the call it led to.
//!
//! Claude's signed thinking and OpenAI's encrypted reasoning reach a client of another
//! protocol as hub reasoning details. A client that drops them (opencode and aider keep
//! no `reasoning_details`; a Gemini client has no place for them) sends its next turn
//! without them: Claude then takes the tool loop only with thinking off, and OpenAI's
//! reasoning is lost for the turn. So the details of a translated answer that calls a
//! tool are kept here, in memory only, under its first call's id, and given back to the
//! turn with that call in a later request that lacks them. Only answers of sources whose
//! call ids are random (Anthropic's `toolu_…`, OpenAI's `call_…`, those Routeplane makes
//! for Google's Gemini calls from the answer's `responseId`; see [`mints_random_ids`])
//! are kept, so one session's reasoning reaches no other: Kimi's `functions.Bash:0`
//! would be shared between sessions.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::protocol::{self, Source};
use crate::registry::Target;

/// The kept reasoning, at most `budget` bytes of it, the oldest let go first.
#[derive(Debug)]
pub struct Recall {
    budget: usize,
    kept: Mutex<Kept>,
    /// The bytes kept, as `Kept::bytes` after each change: read without the lock by
    /// every translated request (0: nothing to restore) and by `/metrics`.
    bytes: AtomicUsize,
}

#[derive(Debug, Default)]
struct Kept {
    by_call: HashMap<String, Vec<Value>>,
    /// Ids in the order kept, with the bytes each holds.
    order: VecDeque<(String, usize)>,
    bytes: usize,
}

impl Kept {
    /// Lets go of what is kept for `id`, if anything.
    fn remove(&mut self, id: &str) {
        if self.by_call.remove(id).is_none() {
            return;
        }
        if let Some(at) = self.order.iter().position(|(kept, _)| kept == id)
            && let Some((_, old)) = self.order.remove(at)
        {
            self.bytes -= old;
        }
    }
}

impl Recall {
    /// An empty memory of at most `budget` bytes (`limits.reasoning_memory_bytes`); 0
    /// keeps nothing.
    pub fn new(budget: usize) -> Recall {
        Recall {
            budget,
            kept: Mutex::new(Kept::default()),
            bytes: AtomicUsize::new(0),
        }
    }

    /// Keeps an answer's reasoning `details` for the turn whose first tool call is `call`.
    pub fn keep(&self, call: &str, details: &[Value]) {
        let kept: Vec<Value> = details
            .iter()
            .filter(|d| protocol::recallable(d))
            .cloned()
            .collect();
        let bytes = call.len() + kept.iter().map(|d| d.to_string().len()).sum::<usize>();
        if kept.is_empty() || bytes > self.budget {
            return;
        }
        let mut k = crate::sync::lock(&self.kept);
        // Kept again (a retried turn): the older entry goes.
        k.remove(call);
        k.by_call.insert(call.to_string(), kept);
        k.order.push_back((call.to_string(), bytes));
        k.bytes += bytes;
        while k.bytes > self.budget {
            let Some((id, old)) = k.order.pop_front() else {
                break;
            };
            k.by_call.remove(&id);
            k.bytes -= old;
        }
        self.bytes.store(k.bytes, Ordering::Release);
    }

    /// The bytes kept now (each detail counted as its JSON).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Gives each assistant turn of a hub request's tool loop (after its last user
    /// message: the reasoning Claude and OpenAI take back) that calls tools, and carries
    /// no reasoning, the reasoning kept for its first call.
    pub fn restore(&self, chat: &mut Value) {
        if self.bytes() == 0 {
            return;
        }
        let Some(messages) = chat.get_mut("messages").and_then(Value::as_array_mut) else {
            return;
        };
        let start = loop_start(messages);
        let turns = messages[start..].iter_mut().filter(|m| {
            m["role"] == "assistant"
                && m["reasoning_details"]
                    .as_array()
                    .is_none_or(|d| d.is_empty())
        });
        let k = crate::sync::lock(&self.kept);
        for turn in turns {
            let first = turn["tool_calls"][0]["id"].as_str();
            if let Some(details) = first.and_then(|id| k.by_call.get(id)) {
                turn["reasoning_details"] = Value::Array(details.clone());
            }
        }
    }

    /// Lets go of what [`Recall::restore`] could give a hub request: a source refused it
    /// as reasoning another account encrypted (failover moved the session), and would
    /// refuse it on every later turn.
    pub fn forget(&self, chat: &Value) {
        if self.bytes() == 0 {
            return;
        }
        let Some(messages) = chat["messages"].as_array() else {
            return;
        };
        let turns = messages[loop_start(messages)..].iter();
        let firsts = turns.filter_map(|m| m["tool_calls"][0]["id"].as_str());
        let mut k = crate::sync::lock(&self.kept);
        for id in firsts {
            k.remove(id);
        }
        self.bytes.store(k.bytes, Ordering::Release);
    }
}

/// Where a conversation's tool loop begins: after its last user message.
fn loop_start(messages: &[Value]) -> usize {
    messages
        .iter()
        .rposition(|m| m["role"] == "user")
        .map_or(0, |i| i + 1)
}

/// Whether a source's tool call ids are random, so that one names one call of one
/// session: Anthropic's, OpenAI's (the API, Azure's, the ChatGPT backend), OpenRouter's
/// and Google's Gemini API's (ids made from each answer's own `responseId`), by the
/// built-in provider's id or by the host. Kimi's, DeepSeek's or a local server's may be
/// made from a call's name and position, alike in every session.
pub(super) fn mints_random_ids(to: &Source<'_>) -> bool {
    let host = to.host();
    matches!(
        to.provider,
        "anthropic" | "openai" | "openai-codex" | "openrouter" | "gemini"
    ) || matches!(
        host,
        "api.anthropic.com"
            | "api.openai.com"
            | "chatgpt.com"
            | "openrouter.ai"
            | "generativelanguage.googleapis.com"
    ) || host.ends_with(".openai.azure.com")
}

/// A translated answer's reasoning, noted as it goes to the client and kept at its first
/// tool call: the reasoning that led to a call comes before it, and the client may send
/// its next turn as soon as the answer ends.
#[derive(Debug)]
pub(super) struct Noted<'r> {
    recall: &'r Recall,
    details: Vec<Value>,
    /// The first call went by: nothing more is noted.
    called: bool,
}

impl<'r> Noted<'r> {
    /// Notes for `recall` what `target` answers `call`, when the answer is translated
    /// (a client of the source's own protocol gives its reasoning back) and the source
    /// [`mints_random_ids`].
    pub(super) fn of(
        call: &super::Call<'_>,
        target: &Target,
        recall: &'r Recall,
    ) -> Option<Noted<'r>> {
        let worth = target.protocol != call.inbound && mints_random_ids(&target.source());
        worth.then(|| Noted {
            recall,
            details: Vec::new(),
            called: false,
        })
    }

    /// Notes a hub chunk's delta, or a whole answer's message.
    pub(super) fn add(&mut self, delta: &Value) {
        if self.called {
            return;
        }
        if let Some(pieces) = delta["reasoning_details"].as_array() {
            for piece in pieces {
                protocol::add_detail(&mut self.details, piece);
            }
        }
        if let Some(call) = delta["tool_calls"][0]["id"].as_str() {
            self.called = true;
            if !self.details.is_empty() {
                self.recall.keep(call, &self.details);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claude(text: &str) -> Value {
        json!({"type": "reasoning.text", "format": "anthropic-claude-v1", "text": text, "signature": "s"})
    }

    fn turn(id: &str) -> Value {
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
    }

    #[test]
    fn a_turn_without_reasoning_gets_what_its_first_call_was_kept_with() {
        let r = Recall::new(1 << 20);
        r.keep(
            "toolu_1",
            &[
                claude("think"),
                // Reasoning no source needs back: not kept.
                json!({"type": "reasoning.text", "text": "plain"}),
            ],
        );
        let mut chat = json!({"messages": [turn("toolu_1"), turn("toolu_2")]});
        r.restore(&mut chat);
        assert_eq!(
            chat["messages"][0]["reasoning_details"],
            json!([claude("think")])
        );
        assert!(chat["messages"][1].get("reasoning_details").is_none());
        // A turn that has its own keeps it.
        let mut own = json!({"messages": [turn("toolu_1")]});
        own["messages"][0]["reasoning_details"] = json!([claude("mine")]);
        r.restore(&mut own);
        assert_eq!(
            own["messages"][0]["reasoning_details"],
            json!([claude("mine")])
        );
    }

    #[test]
    fn only_the_tool_loop_after_the_last_question_gets_reasoning_back() {
        let r = Recall::new(1 << 20);
        r.keep("toolu_1", &[claude("old")]);
        r.keep("toolu_2", &[claude("new")]);
        let result = json!({"role": "tool", "tool_call_id": "toolu_2", "content": "x"});
        let mut chat = json!({"messages": [turn("toolu_1"), {"role": "user", "content": "next"}, turn("toolu_2"), result]});
        r.restore(&mut chat);
        assert!(chat["messages"][0].get("reasoning_details").is_none());
        assert_eq!(
            chat["messages"][2]["reasoning_details"],
            json!([claude("new")])
        );
        // Refused as another account's, it is let go.
        r.forget(&chat);
        let mut again = json!({"messages": [turn("toolu_2")]});
        r.restore(&mut again);
        assert!(again["messages"][0].get("reasoning_details").is_none());
        assert_eq!(r.bytes(), crate::sync::lock(&r.kept).bytes);
        assert_eq!(crate::sync::lock(&r.kept).order.len(), 1);
    }

    #[test]
    fn random_ids_are_known_by_provider_or_host() {
        let at = |provider, api_base| Source {
            provider,
            api_base,
            model: "m",
        };
        assert!(mints_random_ids(&at("anthropic", "http://127.0.0.1:1")));
        assert!(mints_random_ids(&at("work", "https://api.openai.com/v1")));
        assert!(mints_random_ids(&at(
            "az",
            "https://x.openai.azure.com/openai"
        )));
        assert!(!mints_random_ids(&at(
            "kimi",
            "https://api.moonshot.ai/anthropic"
        )));
        assert!(!mints_random_ids(&at("local", "http://127.0.0.1:8000/v1")));
    }

    #[test]
    fn the_oldest_goes_first_past_the_budget() {
        let one = 7 + claude(&"x".repeat(100)).to_string().len();
        let r = Recall::new(2 * one);
        for id in ["toolu_a", "toolu_b", "toolu_c"] {
            r.keep(id, &[claude(&"x".repeat(100))]);
        }
        let mut chat = json!({"messages": [turn("toolu_a"), turn("toolu_b"), turn("toolu_c")]});
        r.restore(&mut chat);
        let has = |i: usize| chat["messages"][i].get("reasoning_details").is_some();
        assert_eq!([has(0), has(1), has(2)], [false, true, true]);
        // Kept again, an entry counts once.
        r.keep("toolu_c", &[claude(&"x".repeat(100))]);
        assert_eq!(crate::sync::lock(&r.kept).bytes, 2 * one);
        // Nothing is kept with no budget.
        let none = Recall::new(0);
        none.keep("toolu_a", &[claude("t")]);
        assert_eq!(none.bytes(), 0);
    }
}
