//! A Responses stream's tool calls: a function call's arguments streamed as they come,
//! a custom tool's input and a local shell's action held until the call ends.

use serde_json::{Value, json};

use super::Encoder;
use crate::protocol::responses::answer::local_shell_call;
use crate::protocol::responses::client::custom_input;
use crate::protocol::responses::minted;
use crate::sse::Event;

/// What a chat tool call is to a Responses client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    /// A `function_call`, its arguments streamed as they come.
    Function,
    /// A call of one of the client's custom tools: its text goes out whole at its end,
    /// once it can be taken out of the arguments.
    Custom,
    /// A call of the client's local shell: its action goes out whole at its end.
    LocalShell,
}

/// A function call item whose arguments are flowing to the client.
#[derive(Debug)]
pub(super) struct OpenTool {
    pub(super) oi: usize,
    /// The chat tool call index it came from.
    pub(super) index: u64,
    pub(super) call_id: String,
    pub(super) name: Value,
    pub(super) args: String,
    /// What the call is to the client.
    pub(super) kind: Call,
}

impl Encoder {
    /// Closes every open function call.
    pub(super) fn close_tools(&mut self, out: &mut Vec<Event>) {
        for t in std::mem::take(&mut self.tools) {
            match t.kind {
                Call::Custom => {
                    self.close_custom(t, out);
                    continue;
                }
                Call::LocalShell => {
                    let item = local_shell_call(&t.call_id, &t.args);
                    let ev = self.ev(
                        "response.output_item.done",
                        json!({"output_index": t.oi, "item": item}),
                    );
                    out.push(ev);
                    self.done.push((t.oi, item));
                    continue;
                }
                Call::Function => {}
            }
            let id = minted("fc", &t.call_id);
            let ev = self.ev(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": t.oi, "arguments": t.args}),
            );
            out.push(ev);
            let item = json!({"type": "function_call", "id": id, "call_id": t.call_id, "name": t.name, "arguments": t.args, "status": "completed"});
            let ev = self.ev(
                "response.output_item.done",
                json!({"output_index": t.oi, "item": item}),
            );
            out.push(ev);
            self.done.push((t.oi, item));
        }
    }

    /// Closes a custom tool call: its whole text in one delta, then its end.
    fn close_custom(&mut self, t: OpenTool, out: &mut Vec<Event>) {
        let id = minted("ctc", &t.call_id);
        let input = custom_input(&t.args);
        if !input.is_empty() {
            let ev = self.ev(
                "response.custom_tool_call_input.delta",
                json!({"item_id": id, "output_index": t.oi, "delta": input}),
            );
            out.push(ev);
        }
        let ev = self.ev(
            "response.custom_tool_call_input.done",
            json!({"item_id": id, "output_index": t.oi, "input": input}),
        );
        out.push(ev);
        let item = json!({"type": "custom_tool_call", "id": id, "call_id": t.call_id, "name": t.name, "input": input, "status": "completed"});
        let ev = self.ev(
            "response.output_item.done",
            json!({"output_index": t.oi, "item": item}),
        );
        out.push(ev);
        self.done.push((t.oi, item));
    }

    /// Handles one chat tool-call fragment.
    pub(super) fn tool_delta(&mut self, call: &Value, out: &mut Vec<Event>) {
        let index = call["index"].as_u64().unwrap_or(0);
        if !self.tools.iter().any(|t| t.index == index) {
            self.close_text(out);
            let oi = self.next_oi;
            self.next_oi += 1;
            // Every decoder gives a call an id (`fit_call`); should one still come
            // without, not `call_0` on every turn, which a client keys results by.
            let call_id = call["id"].as_str().map_or_else(
                || format!("{}{index}", crate::protocol::made_id_prefix()),
                str::to_string,
            );
            let name = call["function"]["name"].clone();
            let kind = if self.client_tools.is_custom(&name) {
                Call::Custom
            } else if self.client_tools.is_local_shell(&name) {
                Call::LocalShell
            } else {
                Call::Function
            };
            let item = if kind == Call::Custom {
                json!({"type": "custom_tool_call", "id": minted("ctc", &call_id), "call_id": call_id, "name": name, "input": "", "status": "in_progress"})
            } else if kind == Call::LocalShell {
                json!({"type": "local_shell_call", "id": minted("lsc", &call_id), "call_id": call_id,
                    "action": {"type": "exec", "command": [], "env": {}}, "status": "in_progress"})
            } else {
                json!({"type": "function_call", "id": minted("fc", &call_id), "call_id": call_id, "name": name, "arguments": "", "status": "in_progress"})
            };
            let ev = self.ev(
                "response.output_item.added",
                json!({"output_index": oi, "item": item}),
            );
            out.push(ev);
            self.tools.push(OpenTool {
                oi,
                index,
                call_id,
                name,
                args: String::new(),
                kind,
            });
        }
        let Some(frag) = call["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let Some(t) = self.tools.iter_mut().find(|t| t.index == index) else {
            return;
        };
        t.args.push_str(frag);
        if t.kind != Call::Function {
            // Held: the text or the action is inside JSON until the arguments are whole.
            return;
        }
        let (oi, id) = (t.oi, minted("fc", &t.call_id));
        let ev = self.ev(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": oi, "delta": frag}),
        );
        out.push(ev);
    }
}
