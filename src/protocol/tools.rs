//! Tools only one protocol names, in the hub's terms: the built-in tools a client runs
//! itself, offered to other models as function tools, and a tool choice that allows
//! only some of the offered tools.
//!
//! A *client-run built-in tool* is one the model only asks for: Anthropic's bash, text
//! editor, computer use and memory tools, OpenAI Responses' `local_shell`. Its input
//! schema is documented, so any model can be offered it as a function of that schema;
//! its call comes back under the tool's name (an Anthropic client's `tool_use` needs no
//! more; a Responses client's `local_shell_call` item is made from [`local_shell_action`]).
//! A *server tool* (Anthropic's web search, code execution, web fetch) is run by the
//! provider itself and can be offered by no other source: it is refused with a 400 that
//! says so. The hub (chat) has a word for neither, so each client translator puts them
//! into function tools as the request enters the hub.

use serde_json::{Value, json};

use crate::error::Error;

/// An Anthropic client-run built-in tool (`{"type": "bash_20250124", "name": "bash"}`)
/// as a chat function tool with the input schema Anthropic documents for that version;
/// `None` for any other tool.
pub(crate) fn anthropic_builtin(t: &Value) -> Option<Value> {
    let (family, date) = t["type"].as_str()?.rsplit_once('_')?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (name, description, parameters) = match family {
        "bash" => ("bash", BASH.to_string(), fixed(BASH_SCHEMA)),
        "text_editor" => {
            // The 2025-04-29 version renamed the tool and dropped `undo_edit`.
            let renamed = date >= "20250429";
            let name = match renamed {
                true => "str_replace_based_edit_tool",
                false => "str_replace_editor",
            };
            (name, EDITOR.to_string(), editor_schema(!renamed))
        }
        "computer" => ("computer", screen(t), computer_schema(date, t)),
        "memory" => ("memory", MEMORY.to_string(), fixed(MEMORY_SCHEMA)),
        _ => return None,
    };
    let name = t["name"].as_str().unwrap_or(name);
    Some(json!({"type": "function", "function": {
        "name": name, "description": description, "parameters": parameters,
    }}))
}

/// The 400 for an Anthropic tool that has no input schema and is not one the client
/// runs: a server tool (`web_search_20250305`), which only Anthropic can run.
pub(crate) fn anthropic_server_tool(t: &Value) -> Error {
    let kind = t["type"].as_str().unwrap_or("?");
    Error::Untranslatable(format!(
        "tool `{}` (type `{kind}`) is run by Anthropic's servers, so only an Anthropic source can offer it: send this request to a model an Anthropic source serves, or leave the tool out",
        t["name"].as_str().unwrap_or(kind),
    ))
}

/// What the bash tool's function says it does.
const BASH: &str = "Runs a command in a persistent bash session on the user's machine and returns its output. State (working directory, variables, files) persists between calls.";

/// What the text editor's function says it does.
const EDITOR: &str = "Views, creates and edits text files on the user's machine. `view` shows a file with line numbers, or lists a directory. `create` writes a new file. `str_replace` replaces `old_str`, which must occur exactly once, with `new_str`. `insert` puts `new_str` after line `insert_line` (0: at the start).";

/// What the memory tool's function says it does.
const MEMORY: &str = "Reads and writes files in a persistent memory directory, /memories, kept between conversations: view, create, edit, delete and rename them.";

/// A fixed schema written as JSON text. Read when a request needs it: text takes a
/// fraction of the code `json!` makes to build the same value (bench/results.md,
/// "Binary size, session 39"), and these are off the common path.
fn fixed(text: &str) -> Value {
    // Each text is checked by `fixed_schemas_are_json`; a slip would give `null`.
    serde_json::from_str(text).unwrap_or_default()
}

/// Anthropic's bash tool input: a command, or a restart of the session.
const BASH_SCHEMA: &str = r#"{"type": "object", "properties": {
    "command": {"type": "string", "description": "The bash command to run. Required unless the tool is being restarted."},
    "restart": {"type": "boolean", "description": "Specifying true restarts the bash session."}
}}"#;

/// Anthropic's text editor input; versions before 2025-04-29 also undo an edit.
fn editor_schema(undo: bool) -> Value {
    let mut schema = fixed(EDITOR_SCHEMA);
    if !undo && let Value::Array(commands) = &mut schema["properties"]["command"]["enum"] {
        commands.retain(|c| c != "undo_edit");
    }
    schema
}

/// [`editor_schema`] with `undo_edit`.
const EDITOR_SCHEMA: &str = r#"{"type": "object", "properties": {
    "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"]},
    "path": {"type": "string", "description": "Absolute path to the file or directory."},
    "file_text": {"type": "string", "description": "For `create`: the new file's content."},
    "old_str": {"type": "string", "description": "For `str_replace`: the exact text to replace."},
    "new_str": {"type": "string", "description": "For `str_replace` and `insert`: the new text."},
    "insert_line": {"type": "integer", "description": "For `insert`: the line after which to insert (0: at the start)."},
    "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
        "description": "For `view` of a file: first and last line, 1-based; -1 as last means to the end."}
}, "required": ["command", "path"]}"#;

/// The computer tool's description: what the screen is.
fn screen(t: &Value) -> String {
    let size = match (
        t["display_width_px"].as_u64(),
        t["display_height_px"].as_u64(),
    ) {
        (Some(w), Some(h)) => format!(" The screen is {w}x{h} pixels."),
        _ => String::new(),
    };
    format!(
        "Uses the mouse and keyboard of the user's computer and takes screenshots to see its screen.{size} Coordinates are (x, y) pixels from the top left corner."
    )
}

/// Anthropic's computer use input; each version adds actions to the one before.
fn computer_schema(date: &str, t: &Value) -> Value {
    let mut actions = vec![
        "key",
        "type",
        "mouse_move",
        "left_click",
        "left_click_drag",
        "right_click",
        "middle_click",
        "double_click",
        "screenshot",
        "cursor_position",
    ];
    let mut schema = fixed(COMPUTER_SCHEMA);
    let mut more = Vec::new();
    if date >= "20250124" {
        actions.extend([
            "hold_key",
            "left_mouse_down",
            "left_mouse_up",
            "triple_click",
            "scroll",
            "wait",
        ]);
        more.push(COMPUTER_20250124);
    }
    if t["enable_zoom"] == json!(true) {
        actions.push("zoom");
        more.push(COMPUTER_ZOOM);
    }
    if let Value::Object(properties) = &mut schema["properties"] {
        for text in more {
            if let Value::Object(added) = fixed(text) {
                properties.extend(added);
            }
        }
        properties.insert("action".into(), json!({"type": "string", "enum": actions}));
    }
    schema
}

/// [`computer_schema`]'s first version; `action` is filled in with its actions.
const COMPUTER_SCHEMA: &str = r#"{"type": "object", "properties": {
    "action": {},
    "coordinate": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    "text": {"type": "string", "description": "For `type`: the text; for `key`: the key or combination (xdotool syntax, e.g. `ctrl+s`)."}
}, "required": ["action"]}"#;

/// The properties the 2025-01-24 computer tool adds.
const COMPUTER_20250124: &str = r#"{
    "start_coordinate": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    "scroll_direction": {"type": "string", "enum": ["up", "down", "left", "right"]},
    "scroll_amount": {"type": "integer", "description": "Clicks of the scroll wheel."},
    "duration": {"type": "number", "description": "For `hold_key` and `wait`: seconds."}
}"#;

/// The property a computer tool with `enable_zoom` adds.
const COMPUTER_ZOOM: &str = r#"{
    "region": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
        "description": "For `zoom`: the area to view, [x1, y1, x2, y2]."}
}"#;

/// Anthropic's memory tool input.
const MEMORY_SCHEMA: &str = r#"{"type": "object", "properties": {
    "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "delete", "rename"]},
    "path": {"type": "string", "description": "A path under /memories."},
    "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    "file_text": {"type": "string"},
    "old_str": {"type": "string"},
    "new_str": {"type": "string"},
    "insert_line": {"type": "integer"},
    "insert_text": {"type": "string"},
    "old_path": {"type": "string"},
    "new_path": {"type": "string"}
}, "required": ["command"]}"#;

/// The function name a Responses client's `local_shell` tool goes by.
pub(crate) const LOCAL_SHELL: &str = "local_shell";

/// OpenAI Responses' `local_shell` tool (older Codex CLI) as a chat function tool,
/// its input the fields of the `exec` action Codex runs.
pub(crate) fn local_shell_function() -> Value {
    fixed(LOCAL_SHELL_FUNCTION)
}

/// [`local_shell_function`]'s tool; its name is [`LOCAL_SHELL`].
const LOCAL_SHELL_FUNCTION: &str = r#"{"type": "function", "function": {
    "name": "local_shell",
    "description": "Runs a command on the user's machine and returns its output.",
    "parameters": {"type": "object", "properties": {
        "command": {"type": "array", "items": {"type": "string"},
            "description": "The program and its arguments, e.g. [\"bash\", \"-lc\", \"ls\"]."},
        "workdir": {"type": "string", "description": "The directory to run it in."},
        "timeout_ms": {"type": "integer", "description": "The longest it may run, in milliseconds."},
        "env": {"type": "object", "additionalProperties": {"type": "string"},
            "description": "Environment variables to set."}
    }, "required": ["command"]}
}}"#;

/// A `local_shell_call` item's `action` from the arguments of a chat call of
/// [`LOCAL_SHELL`].
pub(crate) fn local_shell_action(arguments: &str) -> Value {
    let args: Value = serde_json::from_str(arguments).unwrap_or_default();
    let command = match &args["command"] {
        Value::Array(a) => Value::Array(a.clone()),
        // A model that writes one string means a shell line: run as Codex runs one.
        Value::String(s) => json!(["bash", "-lc", s]),
        _ => json!([]),
    };
    let env = match &args["env"] {
        e @ Value::Object(_) => e.clone(),
        _ => json!({}),
    };
    let mut action = json!({"type": "exec", "command": command, "env": env});
    if args["timeout_ms"].is_u64() {
        action["timeout_ms"] = args["timeout_ms"].clone();
    }
    if args["workdir"].is_string() {
        action["working_directory"] = args["workdir"].clone();
    }
    action
}

/// A chat call's arguments for a `local_shell_call` item's `action` (one a client
/// gives back), the reverse of [`local_shell_action`].
pub(crate) fn local_shell_arguments(action: &Value) -> String {
    let mut args = json!({"command": action["command"]});
    for (from, to) in [
        ("working_directory", "workdir"),
        ("timeout_ms", "timeout_ms"),
        ("env", "env"),
    ] {
        if !action[from].is_null() {
            args[to] = action[from].clone();
        }
    }
    args.to_string()
}

/// Resolves a hub tool choice of type `allowed_tools` (OpenAI's way to narrow the
/// tools a model may call without changing `tools`, which its prompt cache keys on),
/// which only OpenAI takes: the tools it does not allow leave `tools`, and the choice
/// becomes the plain one of its mode (`auto`, `required`). When no offered tool is
/// allowed, `auto` is `none` (the tools stay, for the calls earlier turns made).
pub(crate) fn narrow_to_allowed(chat: &mut Value) -> Result<(), Error> {
    let choice = &chat["tool_choice"];
    if choice["type"] != "allowed_tools" {
        return Ok(());
    }
    let allowed = &choice["allowed_tools"];
    let mode = match allowed["mode"].as_str() {
        Some("auto") => "auto",
        Some("required") => "required",
        _ => {
            return Err(Error::bad_request(
                "a `tool_choice` of type `allowed_tools` needs `mode`: `auto` or `required`",
            ));
        }
    };
    let names: Vec<String> = allowed["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
        .collect();
    let allows = |t: &Value| {
        t["function"]["name"]
            .as_str()
            .is_some_and(|n| names.iter().any(|a| a == n))
    };
    let tools = chat["tools"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let kept: Vec<Value> = tools.iter().filter(|t| allows(t)).cloned().collect();
    if kept.is_empty() {
        if mode == "required" {
            return Err(Error::bad_request(
                "a `tool_choice` of type `allowed_tools` with mode `required` allows none of the request's `tools`",
            ));
        }
        chat["tool_choice"] = json!("none");
        return Ok(());
    }
    chat["tools"] = Value::Array(kept);
    chat["tool_choice"] = json!(mode);
    Ok(())
}

/// A hub tool choice that allows only the functions `names`, in mode `auto` or
/// `required` (chat's `allowed_tools`), for [`narrow_to_allowed`] to resolve.
pub(crate) fn allowed_choice<'a>(mode: &str, names: impl IntoIterator<Item = &'a str>) -> Value {
    let tools: Vec<Value> = names
        .into_iter()
        .map(|n| json!({"type": "function", "function": {"name": n}}))
        .collect();
    json!({"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_schemas_are_json() {
        for text in [
            BASH_SCHEMA,
            EDITOR_SCHEMA,
            COMPUTER_SCHEMA,
            COMPUTER_20250124,
            COMPUTER_ZOOM,
            MEMORY_SCHEMA,
            LOCAL_SHELL_FUNCTION,
        ] {
            assert!(fixed(text).is_object(), "{text}");
        }
        assert_eq!(local_shell_function()["function"]["name"], LOCAL_SHELL);
    }

    #[test]
    fn builtin_tools_become_functions_of_their_documented_schema() {
        let f = anthropic_builtin(&json!({"type": "bash_20250124", "name": "bash"})).unwrap();
        assert_eq!(f["function"]["name"], "bash");
        assert_eq!(
            f["function"]["parameters"]["properties"]["restart"]["type"],
            "boolean"
        );
        let old = json!({"type": "text_editor_20250124", "name": "str_replace_editor"});
        let old = anthropic_builtin(&old).unwrap();
        let new = json!({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"});
        let new = anthropic_builtin(&new).unwrap();
        let commands =
            |f: &Value| f["function"]["parameters"]["properties"]["command"]["enum"].clone();
        assert_eq!(
            commands(&old),
            json!(["view", "create", "str_replace", "insert", "undo_edit"])
        );
        assert_eq!(
            commands(&new),
            json!(["view", "create", "str_replace", "insert"])
        );
        let computer = json!({"type": "computer_20241022", "name": "computer", "display_width_px": 1024, "display_height_px": 768});
        let computer = anthropic_builtin(&computer).unwrap();
        let description = computer["function"]["description"].as_str().unwrap();
        assert!(description.contains("1024x768"), "{description}");
        assert!(computer["function"]["parameters"]["properties"]["scroll_amount"].is_null());
        for server in [
            "web_search_20250305",
            "code_execution_20250825",
            "bash",
            "custom",
        ] {
            assert_eq!(
                anthropic_builtin(&json!({"type": server, "name": "x"})),
                None
            );
        }
    }

    #[test]
    fn a_local_shell_action_goes_to_arguments_and_back() {
        let action = json!({"type": "exec", "command": ["ls", "-a"], "env": {"A": "1"}, "timeout_ms": 5, "working_directory": "/w"});
        let args = local_shell_arguments(&action);
        assert_eq!(local_shell_action(&args), action);
        let line = local_shell_action(r#"{"command": "ls | wc"}"#);
        assert_eq!(
            line,
            json!({"type": "exec", "command": ["bash", "-lc", "ls | wc"], "env": {}})
        );
    }

    #[test]
    fn allowed_tools_narrow_the_list_and_become_a_plain_choice() {
        let tool = |n: &str| json!({"type": "function", "function": {"name": n}});
        let mut chat = json!({"tools": [tool("a"), tool("b"), tool("c")],
            "tool_choice": allowed_choice("required", ["c", "a", "gone"])});
        narrow_to_allowed(&mut chat).unwrap();
        assert_eq!(chat["tools"], json!([tool("a"), tool("c")]));
        assert_eq!(chat["tool_choice"], "required");
        let mut none = json!({"tools": [tool("a")], "tool_choice": allowed_choice("auto", ["b"])});
        narrow_to_allowed(&mut none).unwrap();
        assert_eq!(none, json!({"tools": [tool("a")], "tool_choice": "none"}));
        let mut refused =
            json!({"tools": [tool("a")], "tool_choice": allowed_choice("required", [])});
        assert!(matches!(
            narrow_to_allowed(&mut refused),
            Err(Error::BadRequest(_))
        ));
        let mut plain = json!({"tools": [tool("a")], "tool_choice": "auto"});
        narrow_to_allowed(&mut plain).unwrap();
        assert_eq!(plain, json!({"tools": [tool("a")], "tool_choice": "auto"}));
    }
}
