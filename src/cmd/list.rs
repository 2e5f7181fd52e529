//! `routeplane models` and `routeplane providers`: the registry as tables, without serving.
//!
//! Both probe local sources once (with the short detection timeout) so detected models
//! and up/down states are real.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;

use lexopt::prelude::*;
use std::time::{Duration, SystemTime};

use routeplane::auth::store::Store;
use routeplane::auth::{self, Auth, Subscription};
use routeplane::detect::{self, Detected, State};
use routeplane::registry::{Kind, Registry};
use routeplane::upstream;
use routeplane::{Error, registry, route};
use serde_json::json;

use super::Global;

const MODELS_HELP: &str = "\
routeplane models: list every model id clients can name

Usage: routeplane models [-c PATH] [--listen ADDR] [--json]

Local sources are asked for their models first (see `detect:` in routeplane.yaml),
and hosted providers with a key or login for their lists. A model is also reachable
as PROVIDER:MODEL; a model listed through a subscription login only that way, and it
is shown so.

Options:
  -c, --config PATH  config file
      --listen ADDR  the running routeplane to ask for cool-downs and refused keys
                     (default: `listen`)
      --json         print JSON instead of a table
  -h, --help         print help
";

const PROVIDERS_HELP: &str = "\
routeplane providers: list providers

Usage: routeplane providers [list] [-c PATH] [--listen ADDR] [--json]
       routeplane providers login PROVIDER   (same as `routeplane login PROVIDER`)
       routeplane providers logout PROVIDER  (same as `routeplane logout PROVIDER`)

Options:
  -c, --config PATH  config file
      --listen ADDR  the running routeplane to ask for cool-downs and refused keys
                     (default: `listen`)
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
    /// `providers logout …`: hand over to `logout`.
    Logout,
}

/// Parses `[-c PATH] [--listen ADDR] [--json]` (and for `providers`, `list`, `login`
/// or `logout`).
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
            Long("listen") => global.listen = Some(parser.value()?.string()?),
            Long("json") => json = true,
            Short('h') | Long("help") => {
                out!("{help}")?;
                return Ok(Parsed::Help);
            }
            Value(v) if providers && v == "list" => {}
            Value(v) if providers && v == "login" => return Ok(Parsed::Login),
            Value(v) if providers && v == "logout" => return Ok(Parsed::Logout),
            // `models smart`: what serves one model is `route`'s to say (a file's name
            // is told the `-c` that names one, as everywhere).
            // `providers ollama`: the table has every provider's row.
            Value(ref v) if routeplane::error::file_flag(&v.to_string_lossy()).is_empty() => {
                let v = v.to_string_lossy();
                return Err(Error::Usage(match providers {
                    false => format!(
                        "`models` takes no MODEL; `routeplane route {v}` shows what serves `{v}`"
                    ),
                    true => format!(
                        "`providers` takes `list`, `login` or `logout`, not `{v}`; \
                         `routeplane providers` shows every provider's row"
                    ),
                }));
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Parsed::List(json))
}

/// Loads the registry, probes local sources once, reads the subscription logins and
/// asks hosted providers with a key for their lists.
pub(crate) fn probed(global: &Global) -> Result<(Registry, Arc<Detected>, Arc<Auth>), Error> {
    // Detection reports each source that comes up as a server log line; here the
    // table says it.
    routeplane::log::silence();
    let mut registry = Registry::build(&super::load(global)?)?;
    // A server started with `--listen` is asked where it listens.
    super::listen_at(&mut registry, global)?;
    let detected = Arc::new(Detected::default());
    let client = upstream::Client::new(&registry.settings);
    let auth = Arc::new(Auth::new(
        routeplane::paths::auth_file().map(Store::new),
        client.clone(),
    ));
    detected.watch_logins(&auth);
    let hosted = {
        let (client, auth, detected) = (client.clone(), Arc::clone(&auth), Arc::clone(&detected));
        let providers = registry.providers.clone();
        let timeout = registry.settings.connect_timeout;
        routeplane::spawn::run("hosted", move || {
            detect::list_hosted(&client, &auth, &providers, &detected, timeout)
        })
    };
    detect::probe_all(
        &client,
        &auth,
        &registry.providers,
        &detected,
        registry.settings.detect_timeout,
    );
    // The log is silent here, and a list that failed changes what the table shows
    // (and where a bare name goes): said on stderr, so stdout stays the table.
    for why in hosted.join().unwrap_or_default() {
        eprintln!("routeplane: {why}");
    }
    Ok((registry, detected, auth))
}

/// The cool-downs of a routeplane serving this config file, if one answers at its
/// `listen` address: `provider:model` → seconds left. Only the server knows them, and
/// the keys refused to its requests, which are marked refused in `auth` as the
/// server has them (a command's own probe and lists never send a request).
pub(crate) fn from_server(registry: &Registry, auth: &Auth) -> Vec<(String, f64)> {
    let client = upstream::Client::new(&registry.settings);
    let mut headers: Vec<upstream::Header> = Vec::new();
    if let Some(key) = registry.settings.keys.first() {
        headers.push((
            "authorization".into(),
            upstream::HeaderValue::Bearer(key.clone()),
        ));
    }
    let url = format!("http://{}/routeplane/cooldowns", registry.settings.listen);
    let Ok((200, body)) = client.get(&url, &headers, Duration::from_millis(500), 1 << 20) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    // Another config's server may listen at the same address (both at the default).
    let mine = std::fs::canonicalize(&registry.source).ok();
    let mine = mine.map(|p| p.display().to_string());
    if v["config"].as_str() != mine.as_deref() {
        return Vec::new();
    }
    for refused in v["keys_refused"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let status = refused["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok());
        let p = refused["provider"]
            .as_str()
            .and_then(|id| registry.provider_for(id));
        if let (Some(p), Some(status)) = (p, status) {
            auth.key_answered(&p, status, true);
        }
    }
    v["cooldowns"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| Some((c["target"].as_str()?.to_string(), c["secs_left"].as_f64()?)))
        .collect()
}

/// `cooling down until HH:MM:SS UTC (N s left)` when the endpoint `label` cools down, else
/// `state`.
pub(crate) fn with_cooldown(state: &State, cooling: &[(String, f64)], label: &str) -> String {
    match cooling.iter().find(|(l, _)| l == label) {
        Some((_, left)) if *state == State::Active => format!("cooling down {}", until(*left)),
        _ => state.to_string(),
    }
}

/// A provider's `state`, naming its models that cool down: one cool-down is one
/// model's, and the provider's other models serve on.
fn with_model_cooldowns(state: &State, cooling: &[(String, f64)], provider: &str) -> String {
    let mine: Vec<(&str, f64)> = cooling
        .iter()
        .filter_map(|(l, left)| {
            let model = l.strip_prefix(provider)?.strip_prefix(':')?;
            Some((model, *left))
        })
        .collect();
    if *state != State::Active || mine.is_empty() {
        return state.to_string();
    }
    match mine.as_slice() {
        [(model, left)] => format!("active; {model} cooling down {}", until(*left)),
        more => {
            let longest = more.iter().map(|(_, left)| *left).fold(0.0, f64::max);
            format!(
                "active; {} models cooling down, the last {}",
                more.len(),
                until(longest)
            )
        }
    }
}

/// `until HH:MM UTC (N s left)`: the minute alone reads as a long wait for a cool-down
/// of seconds.
fn until(left: f64) -> String {
    let at = SystemTime::now() + Duration::from_secs_f64(left.ceil());
    format!(
        "until {} ({} s left)",
        routeplane::time::utc_clock(at),
        left.ceil()
    )
}

/// A provider's state, with a subscription's login and its expiry.
fn state(p: &registry::Provider, detected: &Detected, auth: &Auth) -> State {
    detect::provider_state(p, detected, auth)
}

/// Warns, on stderr, when the token file can be read by other users: as `serve` does at
/// start, so whichever command is run first tells of it.
fn warn_if_readable_by_others(auth: &Auth) {
    if let Some(why) = auth.readable_by_others() {
        eprintln!("routeplane: warning: {why}");
    }
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
    warn_if_readable_by_others(&auth);
    let cooling = from_server(&registry, &auth);
    // (model, provider, source, state)
    let mut rows: Vec<(String, String, &str, String)> = registry
        .virtuals
        .iter()
        .map(|v| {
            // From its endpoints' states, as a request would find them. A server that
            // does not list a model may still serve it (llama.cpp answers any name).
            let states: Vec<State> = (v.endpoints.iter())
                .filter_map(|(pid, m)| {
                    let p = registry.provider_for(pid)?;
                    let sent = registry::Target::new(&p, m);
                    Some(detect::model_state(&p, sent.model(), &detected, &auth))
                })
                .collect();
            let state = if states.contains(&State::Active) {
                "active"
            } else if states.contains(&State::NotListed) {
                "not listed by its servers"
            } else {
                "no endpoint active"
            };
            (
                v.name.clone(),
                "routeplane".to_string(),
                "virtual",
                state.to_string(),
            )
        })
        .collect();
    for p in &registry.providers {
        let state = state(p, &detected, &auth);
        let listed = detected.models(&p.id);
        // Each id once, found in a set: a list may hold a name twice, or the thousands
        // a server lists (searched once a name, the listing took seconds).
        let mut seen: HashSet<&str> = p.models.iter().map(|m| m.id.as_str()).collect();
        for m in &p.models {
            let state = detect::model_state(p, &m.upstream, &detected, &auth);
            let state = with_cooldown(&state, &cooling, &format!("{}:{}", p.id, m.upstream));
            rows.push((m.id.clone(), p.id.clone(), "declared", state));
        }
        // A list fetched with a login serves only when named with its provider: that
        // is the id shown, as `GET /v1/models` shows it.
        let bare = detected.bare_names(&p.id);
        for m in &listed {
            if seen.insert(m) {
                // A local server's answer is "detected"; a hosted provider's list, "listed".
                let source = if p.detect { "detected" } else { "listed" };
                let label = format!("{}:{m}", p.id);
                let state = with_cooldown(&state, &cooling, &label);
                let id = if bare { m.clone() } else { label };
                rows.push((id, p.id.clone(), source, state));
            }
        }
        // Named only by a virtual model, at a block of one's own: served when named with
        // the provider, as `GET /v1/models` lists it.
        if route::own_block(&p.id) {
            for m in route::endpoint_models(&registry, &p.id) {
                if !seen.insert(m) {
                    continue;
                }
                let label = format!("{}:{m}", p.id);
                let state = detect::model_state(p, m, &detected, &auth);
                let state = with_cooldown(&state, &cooling, &label);
                rows.push((label, p.id.clone(), "endpoint", state));
            }
        }
    }
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, p, source, state)| json!({"id": id, "provider": p, "source": source, "state": state}))
            .collect();
        outln!("{}", serde_json::Value::Array(list))?;
        return Ok(ExitCode::SUCCESS);
    }
    let cells: Vec<[String; 4]> = rows
        .into_iter()
        .map(|(id, p, source, state)| [id, p, source.to_string(), state])
        .collect();
    print_table(["MODEL", "PROVIDER", "SOURCE", "STATE"], &cells)?;
    if cells.is_empty() {
        // On stderr, so that the table on stdout stays a table.
        eprintln!(
            "routeplane: {}",
            detect::nothing_to_list(&registry, &detected, &auth)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a table: every column as wide as its widest cell, header included (counted in
/// characters, as `format!` pads), two spaces apart; the last column is not padded.
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> Result<(), Error> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                // By hand: `format!`'s width stops at 65535 and panics past it, and a
                // model name comes from whatever a server listed.
                let pad = widths[i] - cell.chars().count() + 2;
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line
    };
    outln!("{}", line(header))?;
    for row in rows {
        outln!("{}", line(row.each_ref().map(String::as_str)))?;
    }
    Ok(())
}

/// How a provider is reached: `oauth` (a subscription login), `key` (with where the
/// key comes from: a variable, or `api_key` in the file), or `none` (nothing needed).
fn auth_kind(p: &registry::Provider, auth: &Auth) -> (&'static str, Option<String>) {
    let sub = Subscription::of(&p.id);
    if p.kind == Kind::Subscription
        || (sub.is_some() && (auth.logged_in(&p.id) || p.id.contains('#')))
    {
        return ("oauth", None);
    }
    match (&p.key_source, p.key_vars.get(1)) {
        (Some(src), _) => ("key", Some(src.clone())),
        // No key yet: the variable to set.
        (None, Some(vendor)) => ("key", Some(vendor.clone())),
        (None, None) => ("none", None),
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
        Parsed::Logout => return super::logout_alias(global, parser),
    };
    let (registry, detected, auth) = probed(&global)?;
    warn_if_readable_by_others(&auth);
    let cooling = from_server(&registry, &auth);
    // Every provider, then each labelled login as its own row (`anthropic#work`).
    let mut providers: Vec<Arc<registry::Provider>> = registry.providers.clone();
    for login in auth.logins() {
        if login.contains('#')
            && let Some(p) = registry.provider_for(&login)
        {
            let base = login.split('#').next().unwrap_or(&login);
            let at = providers
                .iter()
                .rposition(|q| q.id == base || q.id.starts_with(&format!("{base}#")));
            providers.insert(at.map_or(providers.len(), |i| i + 1), p);
        }
    }
    let rows: Vec<_> = providers
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
            let (kind, key_from) = auth_kind(p, &auth);
            let state = state(p, &detected, &auth);
            // JSON keeps `state` one word a script can match; its fix goes in `detail`,
            // as /status.json has it.
            let detail = (json && state == State::NoKey(true)).then_some(auth::RENAME);
            let state = match detail {
                Some(_) => "no key".to_string(),
                None => with_model_cooldowns(&state, &cooling, &p.id),
            };
            (
                p.id.clone(),
                routeplane::log::shown_url(&p.api_base).into_owned(),
                protocols.join(","),
                kind,
                key_from,
                (state, detail),
            )
        })
        .collect();
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, base, proto, auth, key_from, (state, detail))| {
                let mut p = json!({"id": id, "api_base": base, "protocol": proto, "auth": auth, "key_variable": key_from.as_deref().filter(|k| *k != "api_key"), "key_in_config": key_from.as_deref() == Some("api_key"), "state": state});
                if let Some(detail) = detail {
                    p["detail"] = json!(detail);
                }
                p
            })
            .collect();
        outln!("{}", serde_json::Value::Array(list))?;
        wants_a_key(&providers, &auth);
        return Ok(ExitCode::SUCCESS);
    }
    let cells: Vec<[String; 5]> = rows
        .into_iter()
        .map(|(id, base, proto, auth, key_from, (state, _))| {
            let auth = match key_from {
                Some(from) => format!("{auth} ({from})"),
                None => auth.to_string(),
            };
            [id, base, proto, auth, state]
        })
        .collect();
    print_table(
        ["PROVIDER", "API_BASE", "PROTOCOL", "AUTH", "STATE"],
        &cells,
    )?;
    wants_a_key(&providers, &auth);
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr (the table stays on stdout) which config key gives a key to each
/// server that refused a request sent without one: its row says only `key refused`.
fn wants_a_key(providers: &[Arc<registry::Provider>], auth: &Auth) {
    for p in providers.iter().filter(|p| p.key.is_none()) {
        if let Some(status) = auth.key_refused(p) {
            eprintln!(
                "routeplane: {} refused a request without a key ({status}); {}",
                p.id,
                auth::key_wanted(p)
            );
        }
    }
}
