//! `routeplane models` and `routeplane providers`: the registry as tables, without serving.
//!
//! Both probe local sources once (with the short detection timeout) so detected models
//! and up/down states are real.

use std::process::ExitCode;
use std::sync::Arc;

use lexopt::prelude::*;
use routeplane::auth::Auth;
use routeplane::auth::store::Store;
use routeplane::detect::{self, Detected};
use routeplane::registry::{Kind, Registry};
use routeplane::upstream;
use routeplane::{Error, registry};
use serde_json::json;

use super::Global;

const MODELS_HELP: &str = "\
routeplane models: list every model id clients can name

Usage: routeplane models [-c PATH] [--json]

Local sources are asked for their models first (see `detect:` in routeplane.yaml).
A model is also reachable as PROVIDER:MODEL.

Options:
  -c, --config PATH  config file
      --json         print JSON instead of a table
  -h, --help         print help
";

const PROVIDERS_HELP: &str = "\
routeplane providers: list providers

Usage: routeplane providers [list] [-c PATH] [--json]
       routeplane providers login PROVIDER   (same as `routeplane login PROVIDER`)

Options:
  -c, --config PATH  config file
      --json         print JSON instead of a table
  -h, --help         print help
";

/// What the options asked for.
enum Parsed {
    /// Print the listing, as JSON when true.
    List(bool),
    /// Help was printed.
    Help,
    /// `providers login …`: hand over to `login`.
    Login,
}

/// Parses `[-c PATH] [--json]` (and for `providers`, `list` or `login`).
fn options(
    global: &mut Global,
    parser: &mut lexopt::Parser,
    help: &str,
    providers: bool,
) -> Result<Parsed, Error> {
    let mut json = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => super::config_flag(global, parser)?,
            Long("json") => json = true,
            Short('h') | Long("help") => {
                print!("{help}");
                return Ok(Parsed::Help);
            }
            Value(v) if providers && v == "list" => {}
            Value(v) if providers && v == "login" => return Ok(Parsed::Login),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Parsed::List(json))
}

/// Loads the registry, probes local sources once, and reads the subscription logins.
fn probed(global: &Global) -> Result<(Registry, Arc<Detected>, Auth), Error> {
    // Detection reports each source that comes up as a server log line; here the
    // table says it.
    routeplane::log::silence();
    let registry = Registry::build(&super::load(global, false)?)?;
    let detected = Arc::new(Detected::default());
    let client = upstream::Client::new(&registry.settings);
    detect::probe_all(
        &client,
        &registry.providers,
        &detected,
        registry.settings.detect_timeout,
    );
    let auth = Auth::new(routeplane::paths::auth_file().map(Store::new), client);
    Ok((registry, detected, auth))
}

/// A provider's state, with a subscription's login and its expiry.
fn state(p: &registry::Provider, detected: &Detected, auth: &Auth) -> String {
    if auth.logged_in(&p.id) {
        return match auth.expires_at(&p.id).filter(|e| *e > 0) {
            Some(at) => format!(
                "logged in, expires {}",
                httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at))
            ),
            None => "logged in".to_string(),
        };
    }
    detect::provider_state(p, detected).to_string()
}

/// `routeplane models`.
pub(crate) fn run_models(
    mut global: Global,
    parser: &mut lexopt::Parser,
) -> Result<ExitCode, Error> {
    let Parsed::List(json) = options(&mut global, parser, MODELS_HELP, false)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let (registry, detected, auth) = probed(&global)?;
    // (model, provider, source, state)
    let mut rows: Vec<(String, String, &str, String)> = registry
        .virtuals
        .iter()
        .map(|v| {
            (
                v.name.clone(),
                "routeplane".to_string(),
                "virtual",
                "active".to_string(),
            )
        })
        .collect();
    for p in &registry.providers {
        let state = state(p, &detected, &auth);
        for m in &p.models {
            rows.push((m.id.clone(), p.id.clone(), "declared", state.clone()));
        }
        for m in detected.models(&p.id) {
            if !p.declares(&m) {
                rows.push((m, p.id.clone(), "detected", state.clone()));
            }
        }
    }
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, p, source, state)| json!({"id": id, "provider": p, "source": source, "state": state}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(5);
    println!(
        "{:<width$}  {:<14} {:<9} STATE",
        "MODEL", "PROVIDER", "SOURCE"
    );
    for (id, p, source, state) in rows {
        println!("{id:<width$}  {p:<14} {source:<9} {state}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The credential kind of a provider.
fn auth_kind(p: &registry::Provider) -> String {
    match (&p.key_source, p.kind) {
        (Some(src), _) => format!("key ({src})"),
        (None, Kind::Subscription) => "oauth".to_string(),
        (None, _) => "none".to_string(),
    }
}

/// `routeplane providers [list]`.
pub(crate) fn run_providers(
    mut global: Global,
    parser: &mut lexopt::Parser,
) -> Result<ExitCode, Error> {
    let json = match options(&mut global, parser, PROVIDERS_HELP, true)? {
        Parsed::List(json) => json,
        Parsed::Help => return Ok(ExitCode::SUCCESS),
        Parsed::Login => return super::login_alias(global, parser),
    };
    let (registry, detected, auth) = probed(&global)?;
    let rows: Vec<_> = registry
        .providers
        .iter()
        .map(|p| {
            let protocols: Vec<String> = p
                .protocols
                .iter()
                .map(|(g, pr)| {
                    if g == "*" {
                        pr.name().to_string()
                    } else {
                        format!("{g}={}", pr.name())
                    }
                })
                .collect();
            (
                p.id.clone(),
                p.api_base.clone(),
                protocols.join(","),
                auth_kind(p),
                state(p, &detected, &auth),
            )
        })
        .collect();
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, base, proto, auth, state)| json!({"id": id, "api_base": base, "protocol": proto, "auth": auth, "state": state}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<40} {:<18} {:<22} STATE",
        "PROVIDER", "API_BASE", "PROTOCOL", "AUTH"
    );
    for (id, base, proto, auth, state) in rows {
        println!("{id:<14} {base:<40} {proto:<18} {auth:<22} {state}");
    }
    Ok(ExitCode::SUCCESS)
}
