//! `routeplane [serve]`: load the config, build the registry, listen, serve.

use std::process::ExitCode;
use std::sync::Arc;

use lexopt::prelude::*;
use routeplane::auth::Auth;
use routeplane::auth::store::Store;
use routeplane::detect::Detected;
use routeplane::registry::Registry;
use routeplane::{Error, server};

use super::Global;

const HELP: &str = "\
routeplane serve: serve the proxy (the default command)

Usage: routeplane [serve] [-c PATH] [--listen ADDR] [--allow-open] [--auth-file PATH]

Options:
  -c, --config PATH     config file (default: ./routeplane.yaml, then the user config dir)
      --listen ADDR     address to listen on (default: `listen:` in the file, else 127.0.0.1:4356)
      --allow-open      serve a non-loopback address without client keys (not recommended)
      --auth-file PATH  subscription token file (default: $ROUTEPLANE_AUTH_FILE, else
                        $XDG_DATA_HOME/routeplane/auth.json)
  -h, --help            print help
";

/// Parses serve's options and serves until the listener stops.
pub(crate) fn run(mut global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    let mut auth_file = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => super::config_flag(&mut global, parser)?,
            Long("listen") => global.listen = Some(parser.value()?.string()?),
            Long("allow-open") => global.allow_open = true,
            Long("auth-file") => auth_file = Some(std::path::PathBuf::from(parser.value()?)),
            Short('p') | Long("port") => return Err(super::no_port_flag()),
            Short('h') | Long("help") => {
                out!("{HELP}")?;
                return Ok(ExitCode::SUCCESS);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let registry = built(&global)?;
    let addr = registry.settings.listen;
    super::refuse_open(&registry, &global)?;
    let client_timeout =
        std::time::Duration::from_secs_f64(registry.settings.limits.client_timeout_secs.max(0.1));
    let listener =
        server::bind(addr, client_timeout).map_err(|e| cannot_listen(e, &global, &registry))?;
    let store = auth_file
        .or_else(routeplane::paths::auth_file)
        .map(Store::new);
    let auth = Auth::new(store, routeplane::upstream::Client::new(&registry.settings));
    let shared = Arc::new(server::Shared::new(
        registry,
        Arc::new(auth),
        Arc::new(Detected::default()),
    ));
    // SIGHUP re-reads the same file; the listen address and worker count stay.
    let reload_from = global.clone();
    let reload: server::Reload = Box::new(move || rebuilt(&reload_from));
    server::serve(listener, shared, reload)?;
    Ok(ExitCode::SUCCESS)
}

/// A failed bind, said so that its reader knows what holds the address and where the
/// address came from: `--listen`, the file's `listen:`, or the default.
fn cannot_listen(e: Error, global: &Global, registry: &Registry) -> Error {
    let Error::Io { what, source } = e else {
        return e;
    };
    let change = match (&global.listen, registry.source.as_str()) {
        (Some(_), _) => "pass another --listen ADDR".to_string(),
        (None, routeplane::config::NO_FILE) => {
            "pass --listen ADDR, or set `listen:` in a config file".to_string()
        }
        (None, file) => format!("set `listen:` in {file}, or pass --listen ADDR"),
    };
    let why = match source.kind() {
        // tiny_http's accepting thread, refused: the system's limit, not the address.
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::OutOfMemory => {
            let why = format!(
                "no thread can be started ({source}): the system's limit on threads is \
                 reached (`ulimit -u`, or TasksMax= in a systemd unit)"
            );
            return Error::io(what, std::io::Error::new(source.kind(), why));
        }
        std::io::ErrorKind::AddrInUse if serves_routeplane(registry.settings.listen) => {
            "a routeplane already serves there".into()
        }
        std::io::ErrorKind::AddrInUse => {
            "another program listens there (another routeplane, or a server such as Ollama)"
                .to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => "that is not an address of this machine".into(),
        std::io::ErrorKind::PermissionDenied => {
            "a port below 1024 takes privileges this process does not have".into()
        }
        _ => source.to_string(),
    };
    Error::io(
        what,
        std::io::Error::new(source.kind(), format!("{why}; {change}")),
    )
}

/// Whether what holds `addr` answers `/health` as Routeplane does (its `Server` header):
/// a second `routeplane` started by mistake is told the first one runs, not of some
/// other program. Asked within half a second; no answer is "not known to be".
fn serves_routeplane(mut addr: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let wait = std::time::Duration::from_millis(500);
    let Ok(mut conn) = std::net::TcpStream::connect_timeout(&addr, wait) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(wait));
    let mut head = [0; 512];
    let mut got = 0;
    if conn
        .write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_ok()
    {
        // The head comes in one read or two; a few bound the wait on a slow sender.
        for _ in 0..4 {
            match conn.read(&mut head[got..]) {
                Ok(n @ 1..) => got += n,
                _ => break,
            }
        }
    }
    head[..got]
        .windows(20)
        .any(|w| w == b"\r\nServer: routeplane")
}

/// The registry the command line asks for: its config file, with `--listen` over the
/// file's `listen` (at start and at each reload alike, so a reload does not take the
/// file's for a change).
fn built(global: &Global) -> Result<Registry, Error> {
    built_from(global, &super::load(global)?)
}

/// The registry a reload (SIGHUP) puts in place: [`built`]'s, unless the file holds no
/// setting now. An editor saving in place empties the file before writing it, and a
/// reload caught then would drop every provider and virtual model; at start, a file
/// with nothing in it is the built-in defaults, as documented.
fn rebuilt(global: &Global) -> Result<Registry, Error> {
    let loaded = super::load(global)?;
    if let Some(path) = &loaded.path {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let blank = text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#')
        });
        if blank {
            return Err(Error::Config {
                path: loaded.name(),
                line: 0,
                col: 0,
                msg: "the file holds no setting now (saved part-way?); a restart with it \
                      serves the built-in defaults"
                    .into(),
            });
        }
    }
    built_from(global, &loaded)
}

/// [`built`] from a config already read.
fn built_from(global: &Global, loaded: &routeplane::config::Loaded) -> Result<Registry, Error> {
    let mut registry = Registry::build(loaded)?;
    super::warn_of_unread_yml(global, &mut registry);
    super::listen_at(&mut registry, global)?;
    Ok(registry)
}
