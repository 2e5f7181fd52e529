//! `routeplane config validate`: every problem as path:line:column, exit 0 or 1.

use std::process::ExitCode;

use lexopt::prelude::*;
use routeplane::Error;
use routeplane::registry::Registry;

use super::Global;

const HELP: &str = "\
routeplane config validate: check a config file

Usage: routeplane config validate [-c PATH]

Exits 0 and prints a summary when the file is valid; exits 1 and prints the error
with its line and column when it is not: whatever `routeplane` would refuse to start
with, an unset ${VAR} (one without a `:-fallback`) included.

Options:
  -c, --config PATH  the file to check (default: the one `routeplane` would load)
  -h, --help         print help
";

/// `config <subcommand>`.
pub(crate) fn run_config(global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    match parser.next()? {
        Some(Value(v)) if v == "validate" => run(global, parser),
        Some(Short('h') | Long("help")) => {
            out!("{HELP}")?;
            Ok(ExitCode::SUCCESS)
        }
        Some(arg) => Err(arg.unexpected().into()),
        None => Err(Error::Usage(
            "`config` needs a subcommand: `config validate`".into(),
        )),
    }
}

/// Validates and prints the result.
fn run(mut global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => super::config_flag(&mut global, parser)?,
            Short('h') | Long("help") => {
                out!("{HELP}")?;
                return Ok(ExitCode::SUCCESS);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let checked = super::load(&global).and_then(|loaded| {
        let registry = Registry::build(&loaded)?;
        Ok((loaded, registry))
    });
    let (loaded, registry) = match checked {
        Ok(v) => v,
        Err(e @ (Error::Config { .. } | Error::Io { .. })) => {
            eprintln!("routeplane: invalid: {e}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e),
    };
    for w in &registry.warnings {
        eprintln!("routeplane: warning: {w}");
    }
    if let Err(e) = super::refuse_open(&registry, &global) {
        eprintln!("routeplane: invalid: {e}");
        return Ok(ExitCode::FAILURE);
    }
    let configured = registry.providers.iter().filter(|p| p.configured).count();
    let models: usize = registry.providers.iter().map(|p| p.models.len()).sum();
    outln!(
        "{}: valid ({configured} provider block(s), {models} declared model(s), {} virtual model(s), listen {})",
        loaded.name(),
        registry.virtuals.len(),
        registry.settings.listen
    )?;
    Ok(ExitCode::SUCCESS)
}
