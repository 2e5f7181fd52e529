//! Secrets never reach what routeplane prints: config errors, the server log, listings.
//!
//! Every key here holds `SECRET`; each test asserts the word appears nowhere it reads.

use std::process::Command;

use crate::support::proxy::bin;
use crate::support::{Dir, assert_text};

/// A provider block up to where its key goes.
const BLOCK: &str = "providers:\n  x:\n    api_base: http://127.0.0.1:9/v1\n";

/// What a `${…}` holding anything but a variable name is told.
const NOT_A_NAME: &str = "`${…}` must hold an environment variable's name (letters, digits \
     and `_`; what it holds is not shown, as it may be a key): put a key in a variable, e.g. \
     `export MY_KEY=…`, and write `${MY_KEY}`";

#[test]
fn a_key_written_as_a_variable_name_is_refused_without_repeating_it() {
    let dir = Dir::new();
    let path = dir.write(
        "c.yaml",
        &format!("{BLOCK}    api_key: ${{sk-SECRET-123}}\n"),
    );
    for (args, prefix) in [
        (&["config", "validate"][..], "routeplane: invalid"),
        (&["serve", "--listen", "127.0.0.1:0"], "routeplane: error"),
    ] {
        let out = Command::new(bin())
            .args(args)
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_text(
            &String::from_utf8_lossy(&out.stderr),
            &format!(
                "{prefix}: {}:4:14: providers.x.api_key: {NOT_A_NAME}\n",
                path.display()
            ),
        );
    }
}
