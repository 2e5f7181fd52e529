//! What local servers (Ollama, vLLM, LM Studio, llama.cpp) say they serve, and whether they are up.
//!
//! A provider with detection on (the local built-ins, or any block with `detect: true`)
//! is asked for its model list: Ollama through its native `GET /api/tags`, falling back
//! to `GET {api_base}/models`; every other server through `GET {api_base}/models`. The
//! answers live here, beside the immutable registry, and change as sources come and go.
//! A source found down is skipped by bare-name cascades but stays reachable when a
//! request pins it. Every change of state is one log line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::log;
use crate::registry::{Kind, Provider};
use crate::upstream::Client;

/// The most bytes read from one model listing.
const LISTING_LIMIT: u64 = 4 * 1024 * 1024;

/// How often an unknown model may trigger a probe of every source.
const ON_DEMAND_GAP: Duration = Duration::from_secs(1);

/// What detection last learned about one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceState {
    /// The source answered its last probe.
    pub up: bool,
    /// Models it listed.
    pub models: Vec<String>,
    /// Why it is down, when it is.
    pub reason: String,
}

/// Detection results for every probed provider.
#[derive(Debug, Default)]
pub struct Detected {
    states: RwLock<HashMap<String, SourceState>>,
    /// When an unknown model last triggered a probe.
    last_on_demand: Mutex<Option<Instant>>,
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

    /// Records a probe result and logs a change of state.
    pub fn set(&self, provider: &str, state: SourceState) {
        let mut map = self.states.write().unwrap_or_else(|p| p.into_inner());
        let before = map.insert(provider.to_string(), state.clone());
        let changed = before
            .as_ref()
            .is_none_or(|b| b.up != state.up || b.models != state.models);
        // A source never seen and still down is not news worth a line at every start.
        let first_and_down = before.is_none() && !state.up;
        if changed && !first_and_down {
            if state.up {
                log::line(format!(
                    "source {provider} is up ({} model{})",
                    state.models.len(),
                    if state.models.len() == 1 { "" } else { "s" }
                ));
            } else {
                log::line(format!("source {provider} is down: {}", state.reason));
            }
        }
    }

    /// True at most once per second: whether an unknown model may trigger a probe now.
    pub fn may_probe_on_demand(&self) -> bool {
        let mut last = self
            .last_on_demand
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < ON_DEMAND_GAP) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, SourceState>> {
        self.states.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A provider's state for listings: `active`, `down`, `no key` or `not logged in`.
pub fn provider_state(p: &Provider, detected: &Detected) -> &'static str {
    match p.kind {
        Kind::Subscription if p.key.is_none() => "not logged in",
        Kind::Hosted if !p.configured && p.key.is_none() => "no key",
        _ if p.detect => match detected.state(&p.id) {
            Some(s) if !s.up => "down",
            _ => "active",
        },
        _ => "active",
    }
}

/// Asks one source for its models.
pub fn probe(client: &Client, p: &Provider, timeout: Duration) -> SourceState {
    let headers: Vec<(String, String)> = p
        .key
        .iter()
        .map(|k| {
            (
                "authorization".to_string(),
                format!("Bearer {}", k.expose()),
            )
        })
        .collect();
    let mut last_error = String::new();
    if p.id == "ollama" {
        let root = p.api_base.trim_end_matches("/v1");
        match list(client, &format!("{root}/api/tags"), &headers, timeout) {
            Ok(models) => return up(models),
            Err(e) => last_error = e,
        }
    }
    match list(client, &format!("{}/models", p.api_base), &headers, timeout) {
        Ok(models) => up(models),
        Err(e) => SourceState {
            up: false,
            models: Vec::new(),
            reason: if last_error.is_empty() || e == last_error {
                e
            } else {
                format!("{e}; {last_error}")
            },
        },
    }
}

fn up(models: Vec<String>) -> SourceState {
    SourceState {
        up: true,
        models,
        reason: String::new(),
    }
}

/// GETs a listing and reads model names from either known shape.
fn list(
    client: &Client,
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let (status, body) = client
        .get(url, headers, timeout, LISTING_LIMIT)
        .map_err(|e| e.to_string())?;
    if !(200..300).contains(&status) {
        return Err(format!("{url} answered {status}"));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|_| format!("{url} answered something other than JSON"))?;
    model_names(&v).ok_or_else(|| format!("{url} answered without a model list"))
}

/// Model names from `{"data": [{"id"}]}` (OpenAI style; `data` may be null) or
/// `{"models": [{"name"|"model"}]}` (Ollama's native listing).
fn model_names(v: &Value) -> Option<Vec<String>> {
    if let Some(data) = v.get("data") {
        let items = data.as_array().map(Vec::as_slice).unwrap_or_default();
        return Some(
            items
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect(),
        );
    }
    let models = v.get("models")?.as_array()?;
    Some(
        models
            .iter()
            .filter_map(|m| {
                m["name"]
                    .as_str()
                    .or(m["model"].as_str())
                    .map(str::to_string)
            })
            .collect(),
    )
}

/// Probes every detect-enabled provider at once and records the results; returns
/// within about `timeout` however many sources there are.
pub fn probe_all(
    client: &Client,
    providers: &[Arc<Provider>],
    detected: &Arc<Detected>,
    timeout: Duration,
) {
    let handles: Vec<_> = providers
        .iter()
        .filter(|p| p.detect)
        .map(|p| {
            let (client, p, detected) = (client.clone(), Arc::clone(p), Arc::clone(detected));
            thread::spawn(move || {
                let state = probe(&client, &p, timeout);
                detected.set(&p.id, state);
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn listing_shapes() {
        let cases = [
            (
                json!({"object": "list", "data": [{"id": "a"}, {"id": "b"}]}),
                Some(vec!["a", "b"]),
            ),
            (json!({"object": "list", "data": null}), Some(vec![])),
            (
                json!({"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b"}, {"model": "qwen:7b"}]}),
                Some(vec!["llama3.1:8b", "qwen:7b"]),
            ),
            (json!({"something": "else"}), None),
        ];
        for (v, want) in cases {
            let want = want.map(|w| w.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(model_names(&v), want, "{v}");
        }
    }

    #[test]
    fn on_demand_probes_are_rate_limited() {
        let d = Detected::default();
        assert!(d.may_probe_on_demand());
        assert!(!d.may_probe_on_demand());
    }
}
