//! The one integration test binary: every test starts the real `routeplane` binary
//! against loopback mocks and checks what a client receives.

// Helpers are `pub` for the test modules; this binary exports nothing.
#![allow(unreachable_pub)]

mod support;

// Client keys, and what crosses to the upstream.
mod auth;
// Chat completions: non-streaming round trips, model rewrite, errors, /v1/models.
mod chat;
// Legacy text completions: copied, streamed, failed over, continued.
mod completions;
// Signals: graceful stop and reload.
mod lifecycle;
// The command line: init, config validate, route, models, help.
mod cli;
// Local sources: detection of served models, up and down.
mod detect;
// What survives a translation, and what a source would refuse.
mod fidelity;
// The README's yaml blocks and the example config are valid; init writes the example.
mod docs;
// Google Gemini: endpoints, keys, model paths, array streams, safety-block failover.
mod gemini;
// Hostile input: lying lengths, huge headers, slow clients, broken upstreams.
mod hostile;
// Concurrency limits: a bounded queue, then 503.
mod limits;
// Subscription logins: every flow, refresh, rotation, import.
mod login;
// Virtual models, the failover table, cool-down, the `models` array.
mod failover;
// Every inbound protocol against every upstream protocol.
mod protocols;
// Beyond plain text through a translation: paused turns, citations, refusal parts, stop sequences.
mod translation;
// Mid-stream rescue: broken streams continued by a prefill, in every client protocol.
mod rescue;
// The official Python SDKs (when installed by `make sdk`) as clients.
mod sdk;
// Secrets never reach output: config errors, the server log, listings.
mod secrets;
// Sources: keys from the environment, hosted lists, down and overflowing local servers, login state.
mod sources;
// Shipping: systemd units, readiness, the empty-root start, the package, the installer.
mod ship;
// Streams: events arrive as the upstream sends them, client disconnects.
mod stream;
// No thread to be had: the work done on the thread at hand, or an error at start.
mod threads;
// Seeing what it does: the usage ledger, `routeplane usage`, /metrics, /status.json.
mod usage;
// The status page, rendered in headless Chromium.
mod status_page;
// A new user's first hour: the README example with no config, start-up, HEAD, config errors.
mod first_run;
// The request log line: time, model, each attempt, how a stream ended; text or JSON.
mod request_log;
