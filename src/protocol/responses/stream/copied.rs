//! Following a Responses stream that goes to the client as it came (a Responses
//! source): its ids, open item, output indices and sequence numbers, so that the
//! encoder can continue or fail it after a break.

use serde_json::Value;

use super::Encoder;
use super::text::{OpenText, Part};
use crate::protocol::now;
use crate::sse::Event;

impl Encoder {
    /// Learns ids, the open item, output indices and the sequence number from an event
    /// that went out verbatim.
    pub fn observe(&mut self, ev: &Event) {
        self.observed = true;
        let Some(data) = ev.data.as_deref() else {
            return;
        };
        if let Some(n) = sequence_number(data) {
            self.seq = self.seq.max(n + 1);
        }
        // Deltas, the bulk of a stream, are not parsed: the open item's text is set
        // from what the relay collected when the stream is resumed. A call's arguments
        // and a refusal (rare, both) are not collected there, and a cut one's
        // `response.failed` carries them.
        let kind = ev.event.as_deref().unwrap_or("");
        if kind.ends_with(".delta") {
            if !self.opened.is_empty() && kind.ends_with("_call_arguments.delta") {
                self.add_arguments(data);
            }
            if kind == "response.refusal.delta" {
                self.add_refusal(data);
            }
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match v["type"].as_str().unwrap_or(kind) {
            "response.created" => {
                self.started = true;
                let r = &v["response"];
                self.id = r["id"].as_str().unwrap_or("resp_routeplane").to_string();
                self.created = r["created_at"].as_u64().unwrap_or_else(now);
                // A continuation's closing events name the model the client was told.
                if let Some(m) = r["model"].as_str().filter(|m| !m.is_empty()) {
                    self.model = m.to_string();
                }
            }
            "response.output_item.added" => {
                let oi = v["output_index"].as_u64().unwrap_or(0) as usize;
                self.next_oi = self.next_oi.max(oi + 1);
                let item = &v["item"];
                let id = item["id"].as_str().unwrap_or("").to_string();
                match item["type"].as_str() {
                    Some(t @ ("message" | "reasoning")) => {
                        let part = if t == "reasoning" {
                            Part::Reasoning
                        } else {
                            Part::Text
                        };
                        self.text = Some(OpenText::new(oi, id, part));
                    }
                    _ => self.opened.push((oi, item.clone())),
                }
            }
            // A message's parts, one after another: a refusal's text is its own, not
            // the answer's text the relay collected.
            "response.content_part.added" => {
                if let Some(t) = self.text.as_mut().filter(|t| t.id == v["item_id"]) {
                    t.part = match v["part"]["type"].as_str() {
                        Some("refusal") => Part::Refusal,
                        _ => Part::Text,
                    };
                }
            }
            "response.content_part.done" => {
                if let Some(t) = self.text.as_mut().filter(|t| t.id == v["item_id"]) {
                    t.parts.push(v["part"].clone());
                    t.text.clear();
                }
            }
            "response.output_item.done" => {
                let oi = v["output_index"].as_u64().unwrap_or(0) as usize;
                if self.text.as_ref().is_some_and(|t| t.oi == oi) {
                    self.text = None;
                }
                self.opened.retain(|(at, _)| *at != oi);
                self.done.push((oi, v["item"].clone()));
            }
            _ => {}
        }
    }

    /// Adds a copied `response.function_call_arguments.delta` to the open call it names.
    fn add_arguments(&mut self, data: &str) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let (Some(id), Some(more)) = (v["item_id"].as_str(), v["delta"].as_str()) else {
            return;
        };
        let call = self.opened.iter_mut().map(|(_, item)| item);
        if let Some(item) = call.filter(|i| i["id"] == id).last()
            && let Some(Value::String(args)) = item.get_mut("arguments")
        {
            args.push_str(more);
        }
    }

    /// Adds a copied `response.refusal.delta` to the open message's refusal.
    fn add_refusal(&mut self, data: &str) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(t) = self.text.as_mut().filter(|t| t.part == Part::Refusal)
            && let Some(more) = v["delta"].as_str()
        {
            t.text.push_str(more);
        }
    }

    /// Continues the open stream: an observed open item gets the text the client has.
    pub fn resume(&mut self, text: &str, reasoning: &str) {
        if self.observed {
            self.fill(text, reasoning);
        }
    }

    /// Gives the open item of a copied stream, whose deltas are not read, its share of
    /// what the client has: `text` and `reasoning` are the whole answer's, and the items
    /// of its kind done before it (Codex models' commentary message before the final
    /// one) have theirs.
    pub(super) fn fill(&mut self, text: &str, reasoning: &str) {
        let Some(part) = self.text.as_ref().map(|t| t.part) else {
            return;
        };
        let (all, kind, parts) = match part {
            Part::Reasoning => (reasoning, "reasoning", "summary"),
            Part::Text => (text, "message", "content"),
            // Read from its own deltas (`add_refusal`): the text is not the refusal's.
            Part::Refusal => return,
        };
        let mut done: Vec<&(usize, Value)> = self
            .done
            .iter()
            .filter(|(_, i)| i["type"] == kind)
            .collect();
        done.sort_by_key(|(oi, _)| *oi);
        // The open message's own parts done before the flowing one had theirs too.
        let own_parts = self.text.as_ref().map_or(&[][..], |t| t.parts.as_slice());
        let before: String = done
            .iter()
            .flat_map(|(_, i)| i[parts].as_array().into_iter().flatten())
            .chain(own_parts)
            .filter_map(|p| p["text"].as_str())
            .collect();
        // A source that joins its items' texts otherwise than end to end: all of it,
        // rather than lose any.
        let own = all.strip_prefix(before.as_str()).unwrap_or(all);
        if let Some(t) = self.text.as_mut() {
            t.text = own.to_string();
        }
    }
}

/// The `sequence_number` of an event's JSON, found without parsing it.
fn sequence_number(data: &str) -> Option<u64> {
    let key = "\"sequence_number\":";
    let at = data.find(key)? + key.len();
    let digits: String = data[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
