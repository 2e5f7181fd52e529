//! `routeplane models` and `routeplane providers`: the registry as tables, without serving.

use std::process::ExitCode;

use lexopt::prelude::*;
use routeplane::detect::Detected;
use routeplane::registry::Registry;
use routeplane::{Error, route};

use super::Global;

const MODELS_HELP: &str = "\
routeplane models: list every model id clients can name

Usage: routeplane models [-c PATH] [--json]

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

/// `routeplane models`.
pub(crate) fn run_models(
    mut global: Global,
    parser: &mut lexopt::Parser,
) -> Result<ExitCode, Error> {
    let Some(json) = options(&mut global, parser, MODELS_HELP, false)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let registry = Registry::build(&super::load(&global, false)?)?;
    let rows = route::routable(&registry, &Detected::default());
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, owner)| serde_json::json!({"id": id, "provider": owner}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        println!("{:<40} PROVIDER", "MODEL");
        for (id, owner) in rows {
            println!("{id:<40} {owner}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `routeplane providers [list]`.
pub(crate) fn run_providers(
    mut global: Global,
    parser: &mut lexopt::Parser,
) -> Result<ExitCode, Error> {
    let Some(json) = options(&mut global, parser, PROVIDERS_HELP, true)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let registry = Registry::build(&super::load(&global, false)?)?;
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
            let auth = match (&p.key_source, p.kind) {
                (Some(src), _) => format!("key ({src})"),
                (None, routeplane::registry::Kind::Subscription) => "oauth".to_string(),
                (None, _) => "none".to_string(),
            };
            (
                p.id.clone(),
                p.api_base.clone(),
                protocols.join(","),
                auth,
                p.kind.name(),
            )
        })
        .collect();
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, base, proto, auth, kind)| {
                serde_json::json!({"id": id, "api_base": base, "protocol": proto, "auth": auth, "kind": kind})
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        println!(
            "{:<14} {:<40} {:<18} {:<22} KIND",
            "PROVIDER", "API_BASE", "PROTOCOL", "AUTH"
        );
        for (id, base, proto, auth, kind) in rows {
            println!("{id:<14} {base:<40} {proto:<18} {auth:<22} {kind}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
