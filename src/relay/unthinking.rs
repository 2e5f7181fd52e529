//! Models that refused the reasoning a request asked for, asked without it from then on.
//!
//! Claude Code asks for thinking on its turns. Translated for a Chat Completions source
//! it is a `reasoning_effort`, which a model without reasoning refuses: Ollama says
//! `"llama3.1" does not support thinking`, OpenAI's gpt-4o `Unsupported parameter:
//! 'reasoning_effort'`. Such a refusal is asked again at once without the reasoning
//! (`attempt.rs`), and the model is remembered here, so that its later requests leave
//! the reasoning out from the first try instead of paying a refused request each.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Models remembered at most: each is an endpoint label a request named, so a client
/// naming many cannot grow this without bound. Past it, a refusal costs one more
/// request each time.
const MOST: usize = 1024;

/// Endpoints (`provider:model` labels) whose model refused a request's reasoning.
#[derive(Debug, Default)]
pub struct Unthinking {
    labels: Mutex<HashSet<String>>,
    /// Anything is remembered: read without the lock by every request.
    any: AtomicBool,
}

impl Unthinking {
    /// Remembers that the model at `label` takes no reasoning.
    pub fn note(&self, label: &str) {
        let mut labels = crate::sync::lock(&self.labels);
        if labels.len() < MOST {
            labels.insert(label.to_string());
            self.any.store(true, Ordering::Release);
        }
    }

    /// True when the model at `label` refused a request's reasoning before.
    pub fn knows(&self, label: &str) -> bool {
        self.any.load(Ordering::Acquire) && crate::sync::lock(&self.labels).contains(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_model_is_known_and_no_other() {
        let u = Unthinking::default();
        assert!(!u.knows("ollama:llama3.1"));
        u.note("ollama:llama3.1");
        assert!(u.knows("ollama:llama3.1"));
        assert!(!u.knows("ollama:qwen3"));
    }

    #[test]
    fn remembered_models_are_bounded() {
        let u = Unthinking::default();
        for i in 0..MOST + 10 {
            u.note(&format!("p:m{i}"));
        }
        assert_eq!(crate::sync::lock(&u.labels).len(), MOST);
        assert!(!u.knows(&format!("p:m{}", MOST + 5)));
    }
}
