//! Routeplane: a small, synchronous local proxy that puts every source of LLM tokens
//! behind one endpoint and one registry.
//!
//! A request flows one way through the modules, each named for its stage:
//!
//! ```text
//! client ─HTTP─▶ server ─▶ route ─▶ relay ─▶ protocol ─▶ upstream ─▶ (provider)
//!                  │          │        │         │
//!            limits, keys  targets  failover  translation     answer relayed back
//!                                    table    through chat    event by event (sse)
//! ```
//!
//! `config` reads routeplane.yaml as written; `registry` resolves it into the immutable
//! picture the server uses; `auth` attaches upstream credentials; `detect` asks local
//! servers what they serve. A module uses only modules listed before it below.

// Layer 1-3: plumbing every other module uses.
pub mod error;
// Locks that outlive a panic elsewhere.
pub mod sync;
// UTC calendar arithmetic, without a date crate.
pub mod time;
// Base64url, without a crate.
pub mod base64;
// Threads, or their work on the caller's own when none can be had.
pub mod spawn;
// Lines many threads append and one thread writes.
pub mod batch;
// One log line per request; `Secret`.
pub mod log;
// Where files live.
pub mod paths;
// Layer 4-6: bytes on the wire.
pub mod body;
// Event streams and the hand-written client writer.
pub mod sse;
// The four wire formats and translation through chat.
pub mod protocol;
// Layer 7-8: configuration, as written and as resolved.
pub mod config;
// Providers, models, settings, targets.
pub mod registry;
// Layer 9-11: the outside world.
pub mod upstream;
// Upstream credentials: keys and subscription logins.
pub mod auth;
// Local servers and the models they serve.
pub mod detect;
// What the proxy did: counters, the usage ledger, /metrics.
pub mod stats;
// Layer 12-14: one request's life.
pub mod route;
// The main loop: failover and relaying.
pub mod relay;
// Readiness messages to systemd (sd_notify).
pub mod notify;
// The listener and its workers.
pub mod server;

pub use error::Error;

#[cfg(test)]
mod tests {
    /// The modules in flow order: each may use only those before it (and itself).
    const LAYERS: [&str; 19] = [
        "error", "time", "base64", "batch", "log", "paths", "body", "sse", "protocol", "config",
        "registry", "upstream", "auth", "detect", "stats", "route", "relay", "notify", "server",
    ];

    #[test]
    fn layers_point_down() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut checked = 0;
        for (rank, module) in LAYERS.iter().enumerate() {
            let file = src.join(format!("{module}.rs"));
            let files = if file.exists() {
                vec![file]
            } else {
                rust_files(&src.join(module))
            };
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                for (used_rank, used) in LAYERS.iter().enumerate() {
                    let uses = text.contains(&format!("crate::{used}::"))
                        || text.contains(&format!("crate::{used};"))
                        || text.contains(&format!("crate::{used}::{{"));
                    assert!(
                        !uses || used_rank <= rank,
                        "{} uses `crate::{used}`, which comes after `{module}` in the flow",
                        f.display()
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 20, "only {checked} files were checked");
    }

    #[test]
    fn every_long_option_is_one_a_typo_is_asked_about() {
        // `cmd::FLAGS` is written by hand (lexopt keeps no list): an option added to a
        // command and not there would never be suggested for its typo. `--port` is
        // refused with a pointer to `--listen`, so it is no suggestion.
        let cmd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cmd");
        let main = std::fs::read_to_string(cmd.join("mod.rs")).unwrap();
        let (_, flags) = main.split_once("const FLAGS").unwrap();
        let flags = &flags[..flags.find("];").unwrap()];
        let mut seen = 0;
        for f in rust_files(&cmd) {
            let text = std::fs::read_to_string(&f).unwrap();
            for (_, rest) in text
                .match_indices("Long(\"")
                .map(|(i, _)| text.split_at(i + 6))
            {
                let name = &rest[..rest.find('"').unwrap()];
                if name != "port" {
                    let flag = format!("\"--{name}\"");
                    assert!(
                        flags.contains(&flag),
                        "{flag} ({}) is not in cmd::FLAGS",
                        f.display()
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen >= 17, "only {seen} options were found");
    }

    /// The `.rs` files in a module's folder and its subfolders.
    fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
        out
    }
}
