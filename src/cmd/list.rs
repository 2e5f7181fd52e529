//! `routeplane models` and `routeplane providers`: the registry as tables, without serving.
//!
//! Both probe local sources once (with the short detection timeout) so detected models
//! and up/down states are real.

use std::process::ExitCode;
use std::sync::Arc;

use lexopt::prelude::*;
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

Options:
  -c, --config PATH  config file
      --json         print JSON instead of a table
  -h, --help         print help
";

/// Parses `[-c PATH] [--json]`; `None` when help was printed.
fn options(
    global: &mut Global,
    parser: &mut lexopt::Parser,
    help: &str,
    allow_list: bool,
) -> Result<Option<bool>, Error> {
    let mut json = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => super::config_flag(global, parser)?,
            Long("json") => json = true,
            Short('h') | Long("help") => {
                print!("{help}");
                return Ok(None);
            }
            Value(v) if allow_list && v == "list" => {}
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Some(json))
}

/// Loads the registry and probes local sources once.
fn probed(global: &Global) -> Result<(Registry, Arc<Detected>), Error> {
    let registry = Registry::build(&super::load(global, false)?)?;
    let detected = Arc::new(Detected::default());
    let client = upstream::Client::new(&registry.settings);
    detect::probe_all(
        &client,
        &registry.providers,
        &detected,
        registry.settings.detect_timeout,
    );
    Ok((registry, detected))
}

/// `routeplane models`.
pub(crate) fn run_models(
    mut global: Global,
    parser: &mut lexopt::Parser,
) -> Result<ExitCode, Error> {
    let Some(json) = options(&mut global, parser, MODELS_HELP, false)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let (registry, detected) = probed(&global)?;
    // (model, provider, source, state)
    let mut rows: Vec<(String, String, &str, &str)> = registry
        .virtuals
        .iter()
        .map(|v| {
            (
                v.name.clone(),
                "routeplane".to_string(),
                "virtual",
                "active",
            )
        })
        .collect();
    for p in &registry.providers {
        let state = detect::provider_state(p, &detected);
        for m in &p.models {
            rows.push((m.id.clone(), p.id.clone(), "declared", state));
        }
        for m in detected.models(&p.id) {
            if !p.declares(&m) {
                rows.push((m, p.id.clone(), "detected", state));
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
    let Some(json) = options(&mut global, parser, PROVIDERS_HELP, true)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let (registry, detected) = probed(&global)?;
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
                detect::provider_state(p, &detected),
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
