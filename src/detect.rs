//! What local servers (Ollama, vLLM, LM Studio, llama.cpp) say they serve, and whether they are up.
//!
//! A provider with detection on is asked for its model list; the answer is kept here,
//! beside the immutable registry, and updated as sources come and go.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::registry::Provider;

/// What detection last learned about one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceState {
    /// The source answered its last probe.
    pub up: bool,
    /// Models it listed.
    pub models: Vec<String>,
}

/// Detection results for every probed provider.
#[derive(Debug, Default)]
pub struct Detected {
    states: RwLock<HashMap<String, SourceState>>,
}

impl Detected {
    /// True unless detection found the provider down; sources never probed count as up.
    pub fn is_active(&self, p: &Provider) -> bool {
        if !p.detect {
            return true;
        }
        self.read().get(&p.id).is_none_or(|s| s.up)
    }

    /// True when the provider listed `model` in its last answer.
    pub fn serves(&self, provider: &str, model: &str) -> bool {
        self.read()
            .get(provider)
            .is_some_and(|s| s.up && s.models.iter().any(|m| m == model))
    }

    /// The models a provider listed.
    pub fn models(&self, provider: &str) -> Vec<String> {
        self.read()
            .get(provider)
            .map(|s| s.models.clone())
            .unwrap_or_default()
    }

    /// The last state of a provider, if it was probed.
    pub fn state(&self, provider: &str) -> Option<SourceState> {
        self.read().get(provider).cloned()
    }

    /// Records a probe result; returns the previous state.
    pub fn set(&self, provider: &str, state: SourceState) -> Option<SourceState> {
        let mut map = self.states.write().unwrap_or_else(|p| p.into_inner());
        map.insert(provider.to_string(), state)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, SourceState>> {
        self.states.read().unwrap_or_else(|p| p.into_inner())
    }
}
