//! `routeplane config validate`: every problem as path:line:column, exit 0 or 1.

use std::process::ExitCode;

use lexopt::prelude::*;
use routeplane::Error;
use routeplane::registry::Registry;

use super::Global;

const HELP: &str = "\
routeplane config validate: check a config file

Usage: routeplane config validate [-c PATH] [--listen ADDR] [--allow-open]

Exits 0 and prints a summary when the file is valid; exits 1 and prints the error
with its line and column when it is not: whatever `routeplane` would refuse to start
with, an unset ${VAR} (one without a `:-fallback`) included. Give it the --listen and
--allow-open that `routeplane serve` will be given, to check the file as serve will.

Options:
  -c, --config PATH  the file to check (default: the one `routeplane` would load)
      --listen ADDR  the address serve will be given (it wins over `listen:`)
      --allow-open   serve will be given --allow-open: a non-loopback `listen` without
                     client keys is then no error
  -h, --help         print help
";

/// `config <subcommand>`.
pub(crate) fn run_config(
    mut global: Global,
    parser: &mut lexopt::Parser,
) -> Result<ExitCode, Error> {
    loop {
        return match parser.next()? {
            Some(Value(v)) if v == "validate" => run(global, parser),
            // `routeplane config -c FILE validate`: the file named before the subcommand.
            Some(Short('c') | Long("config")) => {
                super::config_flag(&mut global, parser)?;
                continue;
            }
            Some(Short('h') | Long("help")) => {
                out!("{HELP}")?;
                Ok(ExitCode::SUCCESS)
            }
            Some(Value(v)) => Err(Error::Usage(format!(
                "`config {}` is not a command; the one `config` command is `config validate`",
                v.to_string_lossy()
            ))),
            Some(arg) => Err(arg.unexpected().into()),
            None => Err(Error::Usage(
                "`config` needs a subcommand: `config validate`".into(),
            )),
        };
    }
}

/// Validates and prints the result.
fn run(mut global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => super::config_flag(&mut global, parser)?,
            // Serve's own: they change whether serve starts (`refuse_open`), so a check
            // without them would judge another command line than the one that will run.
            Long("listen") => global.listen = Some(parser.value()?.string()?),
            Long("allow-open") => global.allow_open = true,
            Short('h') | Long("help") => {
                out!("{HELP}")?;
                return Ok(ExitCode::SUCCESS);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    // A bad --listen is misuse of the command (exit 2), not a fault of the file.
    let listen = global
        .listen
        .as_deref()
        .map(super::listen_addr)
        .transpose()?;
    let checked = super::load(&global).and_then(|loaded| {
        let mut registry = Registry::build(&loaded)?;
        super::warn_of_unread_yml(&global, &mut registry);
        let addr = listen.unwrap_or(registry.settings.listen);
        registry.listen_at(addr)?;
        Ok((loaded, registry))
    });
    let (loaded, registry) = match checked {
        Ok(v) => v,
        Err(e @ (Error::Config { .. } | Error::Io { .. })) => {
            eprintln!("routeplane: invalid: {e}");
            return Ok(ExitCode::FAILURE);
        }
        // `-c PATH` naming no file: the file named is not valid (exit 1, as the help
        // says), rather than the command misused (2).
        Err(Error::Usage(msg)) => {
            eprintln!("routeplane: invalid: {msg}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e),
    };
    for w in registry
        .warnings
        .iter()
        .chain(&keyless_endpoints(&registry))
    {
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

/// The endpoints of virtual models at a hosted provider with no key in this environment
/// and no login stored: the file is valid, but every request passes them over, and
/// nothing else says so before a request is made. Only here, not at start-up: the
/// registry knows no logins.
fn keyless_endpoints(registry: &Registry) -> Vec<String> {
    let store = routeplane::paths::auth_file().map(routeplane::auth::store::Store::new);
    let logged_in = |id: &str| {
        routeplane::auth::Subscription::of(id).is_some()
            && store
                .as_ref()
                .is_some_and(|s| s.get(id).ok().flatten().is_some())
    };
    let mut warned = Vec::new();
    for v in &registry.virtuals {
        for (pid, model) in &v.endpoints {
            let Some(p) = registry.provider(pid) else {
                continue;
            };
            if p.key.is_some() || p.key_vars.is_empty() || logged_in(pid) {
                continue;
            }
            warned.push(format!(
                "endpoint `{pid}:{model}` of `{}` has no key here ({}); requests pass it \
                 over until the environment `routeplane` runs in has one",
                v.name,
                routeplane::auth::key_hint(p)
            ));
        }
    }
    warned
}
