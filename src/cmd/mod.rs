//! The command line: global flags, the top-level help, and dispatch to one file per command.
//!
//! Each command owns its lexopt loop and its `HELP` text. This is the only code that
//! knows about argv; the library below never does. Commands print through [`out!`] and
//! [`outln!`], never `print!`: see [`out`].

/// `print!` that returns a failed write as an error (see [`out`]).
macro_rules! out {
    ($($arg:tt)*) => {
        crate::cmd::out(format_args!($($arg)*))
    };
}

/// `println!` that returns a failed write as an error (see [`out`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        crate::cmd::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod init;
mod list;
mod login;
mod route;
mod serve;
mod service;
mod usage;
mod validate;

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use lexopt::prelude::*;
use routeplane::config::{self, Loaded};
use routeplane::{Error, paths};

const HELP: &str = "\
routeplane: one local endpoint for every source of LLM tokens

Usage: routeplane [-c PATH] [COMMAND] [OPTIONS]

Commands:
  serve              serve on 127.0.0.1:4356 (the default command)
  init               write a commented starter routeplane.yaml
  config validate    check a config file; exit 0 when valid, 1 when not
  route MODEL        print the targets a request for MODEL would try
  models             list every model id clients can name
  providers [list]   list providers, their base URLs, protocols and state
  login PROVIDER     log in to a subscription (anthropic, openai-codex)
  logout PROVIDER    forget a subscription login
  usage              sum the usage ledger per provider, model or day
  service install    install the systemd unit (--user: for this user only)

Options:
  -c, --config PATH  config file (default: ./routeplane.yaml, then
                     $XDG_CONFIG_HOME/routeplane/routeplane.yaml)
  -h, --help         print help (of a command too: routeplane init --help, or
                     routeplane help init)
  -V, --version      print the version
";

/// Options every command accepts.
#[derive(Debug, Default, Clone)]
pub(crate) struct Global {
    /// `-c PATH`.
    pub(crate) config: Option<PathBuf>,
    /// `--listen ADDR` (serve's, which `config validate` takes too, to judge alike).
    pub(crate) listen: Option<String>,
    /// `--allow-open` (serve's, which `config validate` takes too).
    pub(crate) allow_open: bool,
}

/// The address `--listen` names.
pub(crate) fn listen_addr(listen: &str) -> Result<std::net::SocketAddr, Error> {
    routeplane::registry::parse_listen(listen).ok_or_else(|| {
        let meant = match routeplane::registry::port_alone(listen) {
            Some(port) => {
                format!("; for port {port} on this machine only, pass --listen 127.0.0.1:{port}")
            }
            None => String::new(),
        };
        Error::Usage(format!(
            "--listen `{listen}` is not an address like 127.0.0.1:4356{meant}"
        ))
    })
}

/// Puts `registry` at the address it serves: `--listen`, else the file's `listen`.
pub(crate) fn listen_at(
    registry: &mut routeplane::registry::Registry,
    global: &Global,
) -> Result<(), Error> {
    let addr = match &global.listen {
        Some(listen) => listen_addr(listen)?,
        None => registry.settings.listen,
    };
    registry.listen_at(addr)
}

/// The refusal of `--port`, which other servers take: Routeplane's is `--listen`.
pub(crate) fn no_port_flag() -> Error {
    Error::Usage(
        "there is no --port: pass --listen 127.0.0.1:PORT, or set `listen:` in routeplane.yaml"
            .into(),
    )
}

/// The refusal to serve a non-loopback address without client keys (unless
/// `--allow-open`): anyone who can reach it could spend the keys and subscriptions.
pub(crate) fn refuse_open(
    registry: &routeplane::registry::Registry,
    global: &Global,
) -> Result<(), Error> {
    let addr = registry.settings.listen;
    if !addr.ip().is_loopback() && registry.settings.skip_auth && !global.allow_open {
        // Keys written beside `skip_auth: true` (the `init` template's line left as it
        // was) are not asked for: say which line turns them off.
        let why = match registry.settings.keys.is_empty() {
            true => "without client keys",
            false => "with `skip_auth: true`, which lets clients in without the `keys:` listed",
        };
        return Err(Error::Usage(format!(
            "refusing to serve {addr} {why}: anyone who can reach it could spend \
             your keys and subscriptions; set `skip_auth: false` with `keys:`, or pass --allow-open"
        )));
    }
    Ok(())
}

/// Writes to stdout. `print!` panics when the reader has gone (`routeplane models |
/// head -1`: Rust ignores SIGPIPE, so the write fails with a broken pipe instead of
/// ending the process); here the failure comes back as [`Error::Io`], and `main`
/// ends a command whose reader left with exit 0 and nothing on stderr.
pub(crate) fn out(args: fmt::Arguments<'_>) -> Result<(), Error> {
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(|e| Error::io("cannot write to stdout", e))
}

/// Parses argv and runs the command it names.
pub(crate) fn run(args: Vec<OsString>) -> Result<ExitCode, Error> {
    run_args(args).map_err(option_meant)
}

/// Every command's long options, for a mistyped one (one command's may be meant in
/// another's place: its help then says which it takes).
const FLAGS: [&str; 17] = [
    "--config",
    "--help",
    "--version",
    "--listen",
    "--allow-open",
    "--auth-file",
    "--force",
    "--json",
    "--since",
    "--by",
    "--label",
    "--device",
    "--no-browser",
    "--import",
    "--token-stdin",
    "--user",
    "--root",
];

/// `--confg`: a command word's typo is asked about, and so is an option's. Read from
/// lexopt's message (`invalid option '--confg'`), made where no command's options are
/// known.
fn option_meant(e: Error) -> Error {
    let Error::Usage(msg) = e else { return e };
    let opt = (msg.strip_prefix("invalid option '")).and_then(|r| r.strip_suffix('\''));
    match opt.and_then(|o| config::nearest(o, FLAGS)) {
        Some(near) => Error::Usage(format!("{msg}; did you mean `{near}`?")),
        None => Error::Usage(msg),
    }
}

/// [`run`], before a mistyped option is asked about.
fn run_args(args: Vec<OsString>) -> Result<ExitCode, Error> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut global = Global::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => global.config = Some(parser.value()?.into()),
            Short('h') | Long("help") => {
                out!("{HELP}")?;
                return Ok(ExitCode::SUCCESS);
            }
            Short('V') | Long("version") => {
                outln!("routeplane {}", env!("CARGO_PKG_VERSION"))?;
                return Ok(ExitCode::SUCCESS);
            }
            Value(cmd) => {
                let cmd = cmd.string()?;
                return match cmd.as_str() {
                    // `help COMMAND` is `COMMAND --help`, as git and cargo have it.
                    "help" => match parser.next()? {
                        None => {
                            out!("{HELP}")?;
                            Ok(ExitCode::SUCCESS)
                        }
                        Some(Value(command)) => match parser.next()? {
                            None => run_args(vec![command, "--help".into()]),
                            Some(arg) => Err(arg.unexpected().into()),
                        },
                        Some(arg) => Err(arg.unexpected().into()),
                    },
                    "serve" => serve::run(global, &mut parser),
                    "init" => init::run(global, &mut parser),
                    "config" => validate::run_config(global, &mut parser),
                    "route" => route::run(global, &mut parser),
                    "models" => list::run_models(global, &mut parser),
                    "providers" => list::run_providers(global, &mut parser),
                    "login" => login::run(global, &mut parser),
                    "logout" => login::run_logout(global, &mut parser),
                    "usage" => usage::run(global, &mut parser),
                    "service" => service::run(global, &mut parser),
                    other => Err(Error::Usage(format!(
                        "unknown command `{other}`{}",
                        meant(other, &global)
                    ))),
                };
            }
            // Options of the default command may come without its name: `routeplane --listen X`.
            Long("listen") => global.listen = Some(parser.value()?.string()?),
            Long("allow-open") => global.allow_open = true,
            Short('p') | Long("port") => return Err(no_port_flag()),
            _ => return Err(arg.unexpected().into()),
        }
    }
    serve::run(global, &mut parser)
}

/// The command words, for a mistyped one.
const COMMANDS: [&str; 11] = [
    "serve",
    "init",
    "config",
    "route",
    "models",
    "providers",
    "login",
    "logout",
    "usage",
    "service",
    "help",
];

/// What an unknown command word was likely meant as, from other tools' words
/// (`list`, `ls`, `start`, `validate`), a config file named without `-c`, or a typo of
/// ours (`provider`), as `; …` to append, or nothing.
fn meant(word: &str, global: &Global) -> String {
    let file = routeplane::error::file_flag(word);
    if !file.is_empty() {
        return file;
    }
    let said = match word {
        "list" | "ls" => {
            "; `routeplane models` lists the model ids clients can name, `routeplane providers` \
             the providers"
        }
        "run" | "start" => "; `routeplane serve` (or plain `routeplane`) serves",
        "validate" | "check" => "; `routeplane config validate` checks a config file",
        "install" => "; `routeplane service install` installs the systemd unit",
        "status" | "stats" | "health" | "ps" => {
            return format!(
                "; a running routeplane shows its status at {} in a browser, `/status.json` \
                 for scripts; `routeplane providers` lists each provider's state, \
                 `routeplane usage` what was served",
                status_address(global)
            );
        }
        "version" => "; `routeplane --version` prints the version",
        _ => "",
    };
    match config::nearest(word, COMMANDS) {
        Some(near) if said.is_empty() => format!("; did you mean `{near}`?"),
        _ => said.to_string(),
    }
}

/// Where a routeplane started with these options serves its status page, and why
/// there, read from the config alone (nothing is asked over the network): a file that
/// moves `listen` elsewhere was told of the default address.
fn status_address(global: &Global) -> String {
    let default = routeplane::registry::DEFAULT_LISTEN;
    if let Some(addr) = global
        .listen
        .as_deref()
        .and_then(routeplane::registry::parse_listen)
    {
        return format!("http://{addr}/ (--listen)");
    }
    let loaded = match load_unset_as_empty(global) {
        Ok(loaded) if loaded.path.is_some() => loaded,
        _ => return format!("http://{default}/ (the default: no config file was found)"),
    };
    match routeplane::registry::Registry::build(&loaded) {
        Ok(_) if loaded.config.listen.is_none() => format!(
            "http://{default}/ (the default: {} sets no `listen`)",
            loaded.name()
        ),
        Ok(registry) => format!(
            "http://{}/ (the `listen` of {})",
            registry.settings.listen,
            loaded.name()
        ),
        Err(_) => format!(
            "http://{default}/ (the default: {} is not valid, `routeplane config validate` \
             says why)",
            loaded.name()
        ),
    }
}

/// Loads the config the options name: `-c PATH` must exist; otherwise the search order.
pub(crate) fn load(global: &Global) -> Result<Loaded, Error> {
    load_by(global, config::load)
}

/// [`load`] for a command that sends nothing upstream: an unset `${VAR}` reads as empty.
pub(crate) fn load_unset_as_empty(global: &Global) -> Result<Loaded, Error> {
    load_by(global, config::load_unset_as_empty)
}

/// Finds the config as [`load`] says and reads it with `read`.
fn load_by(
    global: &Global,
    read: fn(Option<&std::path::Path>) -> Result<Loaded, Error>,
) -> Result<Loaded, Error> {
    match &global.config {
        Some(path) => {
            if !path.exists() {
                return Err(Error::Usage(format!(
                    "config file `{}` does not exist (create one with `routeplane init -c {}`)",
                    path.display(),
                    shell_word(&path.display().to_string())
                )));
            }
            read(Some(path))
        }
        None => read(paths::find_config().as_deref()),
    }
}

/// Warns, first of `registry`'s warnings, of a `routeplane.yml` where the config is
/// looked for when no `-c` names one: never read, it is passed over in silence for the
/// user config as for the built-in defaults.
pub(crate) fn warn_of_unread_yml(global: &Global, registry: &mut routeplane::registry::Registry) {
    if global.config.is_some() {
        return;
    }
    if let Some(yml) = paths::unread_yml() {
        let yml = yml.display();
        let warning = format!(
            "`{yml}` is not read (routeplane reads `routeplane.yaml`): rename it, or pass \
             -c {yml}"
        );
        registry.warnings.insert(0, warning);
    }
}

/// A path as a shell reads it back: as is when it holds only letters, digits and
/// `/._-+`, else in single quotes.
pub(crate) fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `providers login PROVIDER` is `login PROVIDER`.
pub(crate) fn login_alias(global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    login::run(global, parser)
}

/// `providers logout PROVIDER` is `logout PROVIDER`.
pub(crate) fn logout_alias(global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    login::run_logout(global, parser)
}

/// Reads `-c PATH` inside a command's own loop.
pub(crate) fn config_flag(global: &mut Global, parser: &mut lexopt::Parser) -> Result<(), Error> {
    global.config = Some(parser.value()?.into());
    Ok(())
}
