//! A Responses stream's message and reasoning items: opened, their parts and text
//! streamed, their citations added, and closed.

use serde_json::{Value, json};

use super::Encoder;
use crate::protocol::responses::answer::annotation;
use crate::protocol::responses::{minted, seal};
use crate::sse::Event;

/// What an item's flowing text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// A reasoning item's summary.
    Reasoning,
    /// A message's `output_text`.
    Text,
    /// A message's `refusal`.
    Refusal,
}

/// A message or reasoning item whose text is flowing to the client.
#[derive(Debug)]
pub(super) struct OpenText {
    /// Its output index.
    pub(super) oi: usize,
    /// Its item id.
    pub(super) id: String,
    /// What its text is.
    pub(super) part: Part,
    /// Text so far.
    pub(super) text: String,
    /// A reasoning item's details so far, sealed into it at its end.
    pub(super) details: Vec<Value>,
    /// A message's parts before the flowing one: a refusal and text are parts of one
    /// message, as OpenAI writes them, not two messages. The flowing part's
    /// `content_index` is their number.
    pub(super) parts: Vec<Value>,
    /// The flowing `output_text`'s annotations so far.
    pub(super) annotations: Vec<Value>,
}

impl OpenText {
    /// A message or reasoning item that begins at output index `oi`, its text empty;
    /// boxed, as the encoder holds it (it is one variant of an enum).
    pub(super) fn new(oi: usize, id: String, part: Part) -> Box<OpenText> {
        Box::new(OpenText {
            oi,
            id,
            part,
            text: String::new(),
            details: Vec::new(),
            parts: Vec::new(),
            annotations: Vec::new(),
        })
    }
}

impl Encoder {
    /// Closes the open message or reasoning item.
    pub(super) fn close_text(&mut self, out: &mut Vec<Event>) {
        let Some(t) = self.text.take() else { return };
        let (oi, id) = (t.oi, t.id.clone());
        let item = if t.part == Part::Reasoning {
            let ev = self.ev(
                "response.reasoning_summary_text.done",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "text": t.text}),
            );
            out.push(ev);
            let part = json!({"type": "summary_text", "text": t.text});
            let ev = self.ev(
                "response.reasoning_summary_part.done",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "part": part}),
            );
            out.push(ev);
            // Sealed even with no details, as in `response_from_chat`.
            json!({"type": "reasoning", "id": id, "summary": [part], "encrypted_content": seal(&t.details)})
        } else {
            let mut t = t;
            let part = self.end_part(&mut t, out);
            t.parts.push(part);
            json!({"type": "message", "id": id, "status": "completed", "role": "assistant", "content": t.parts})
        };
        let ev = self.ev(
            "response.output_item.done",
            json!({"output_index": oi, "item": item}),
        );
        out.push(ev);
        self.done.push((oi, item));
    }

    /// Ends the flowing part of the message `t` (its text, then the part) and gives it.
    fn end_part(&mut self, t: &mut OpenText, out: &mut Vec<Event>) -> Value {
        let (oi, id, ci) = (t.oi, t.id.clone(), t.parts.len());
        let text = std::mem::take(&mut t.text);
        let (done, part) = if t.part == Part::Refusal {
            let ev = self.ev(
                "response.refusal.done",
                json!({"item_id": id, "output_index": oi, "content_index": ci, "refusal": text}),
            );
            (ev, json!({"type": "refusal", "refusal": text}))
        } else {
            let ev = self.ev(
                "response.output_text.done",
                json!({"item_id": id, "output_index": oi, "content_index": ci, "text": text}),
            );
            let annotations = std::mem::take(&mut t.annotations);
            (
                ev,
                json!({"type": "output_text", "text": text, "annotations": annotations}),
            )
        };
        out.push(done);
        let ev = self.ev(
            "response.content_part.done",
            json!({"item_id": id, "output_index": oi, "content_index": ci, "part": part}),
        );
        out.push(ev);
        part
    }

    /// Begins a part of `kind` in the message `t`, after its other parts.
    fn begin_part(&mut self, t: &mut OpenText, kind: Part, out: &mut Vec<Event>) {
        t.part = kind;
        let part = if kind == Part::Refusal {
            json!({"type": "refusal", "refusal": ""})
        } else {
            json!({"type": "output_text", "text": "", "annotations": []})
        };
        let (oi, ci) = (t.oi, t.parts.len());
        let ev = self.ev(
            "response.content_part.added",
            json!({"item_id": t.id, "output_index": oi, "content_index": ci, "part": part}),
        );
        out.push(ev);
    }

    /// Adds the citations of a delta (hub annotations) to the flowing `output_text`.
    pub(super) fn annotate(&mut self, annotations: &[Value], out: &mut Vec<Event>) {
        let Some(mut t) = self.text.take() else {
            return;
        };
        if t.part == Part::Text {
            for a in annotations.iter().filter_map(annotation) {
                let ev = self.ev(
                    "response.output_text.annotation.added",
                    json!({"item_id": t.id, "output_index": t.oi, "content_index": t.parts.len(),
                        "annotation_index": t.annotations.len(), "annotation": a}),
                );
                out.push(ev);
                t.annotations.push(a);
            }
        }
        self.text = Some(t);
    }

    /// Appends text to a message (or reasoning) item, opening one when needed.
    pub(super) fn text_delta(&mut self, kind: Part, delta: &str, out: &mut Vec<Event>) {
        let Some(t) = self.open_text(kind, out) else {
            return;
        };
        t.text.push_str(delta);
        let (oi, id, ci) = (t.oi, t.id.clone(), t.parts.len());
        let ev = match kind {
            Part::Reasoning => self.ev(
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": oi, "summary_index": 0, "delta": delta}),
            ),
            Part::Text => self.ev(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": oi, "content_index": ci, "delta": delta}),
            ),
            Part::Refusal => self.ev(
                "response.refusal.delta",
                json!({"item_id": id, "output_index": oi, "content_index": ci, "delta": delta}),
            ),
        };
        out.push(ev);
    }

    /// The open message (or reasoning) item, opened when there is none of that kind.
    pub(super) fn open_text(&mut self, kind: Part, out: &mut Vec<Event>) -> Option<&mut OpenText> {
        let message = |p: Part| p != Part::Reasoning;
        match self.text.take() {
            // Text after a refusal, or a refusal after text: the next part of the message.
            Some(mut t) if t.part != kind && message(t.part) && message(kind) => {
                let part = self.end_part(&mut t, out);
                t.parts.push(part);
                self.begin_part(&mut t, kind, out);
                self.text = Some(t);
            }
            Some(t) if t.part != kind => {
                self.text = Some(t);
                self.close_text(out);
            }
            t => self.text = t,
        }
        if self.text.is_none() {
            self.close_tools(out);
            let oi = self.next_oi;
            self.next_oi += 1;
            let prefix = if kind == Part::Reasoning { "rs" } else { "msg" };
            let id = minted(prefix, &format!("{}_{oi}", self.id));
            if kind == Part::Reasoning {
                let ev = self.ev("response.output_item.added", json!({"output_index": oi, "item": {"type": "reasoning", "id": id, "summary": []}}));
                out.push(ev);
                let ev = self.ev("response.reasoning_summary_part.added", json!({"item_id": id, "output_index": oi, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
                out.push(ev);
                self.text = Some(OpenText::new(oi, id, kind));
            } else {
                let ev = self.ev("response.output_item.added", json!({"output_index": oi, "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}));
                out.push(ev);
                let mut t = OpenText::new(oi, id, kind);
                self.begin_part(&mut t, kind, out);
                self.text = Some(t);
            }
        }
        self.text.as_deref_mut()
    }
}
