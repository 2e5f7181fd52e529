//! `routeplane login PROVIDER` and `routeplane logout PROVIDER`: subscription logins.

use std::cell::Cell;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lexopt::prelude::*;
use routeplane::auth::oauth::Tokens;
use routeplane::auth::store::{self, Store};
use routeplane::auth::{Subscription, anthropic, callback, openai_codex};
use routeplane::log::Secret;
use routeplane::registry::Registry;
use routeplane::{Error, paths, upstream};

use super::Global;

const HELP: &str = "\
routeplane login: log in to a subscription (anthropic = Claude Pro/Max, openai-codex = ChatGPT)

Usage: routeplane login PROVIDER [OPTIONS]
       routeplane providers login PROVIDER [OPTIONS]

anthropic: open the printed URL, approve, and paste the CODE#STATE shown back here
(stdin may be a pipe). openai-codex: approve in the browser; the redirect comes back to
http://localhost:1455/auth/callback, or use --device on a machine without a browser.
Without a terminal, a login nothing here can finish (stdin has ended, no browser was
opened) stops at once (exit code 2) and names the flows that need neither. A login
waits at most 10 minutes (about an authorization code's life) for the paste or the
browser, then stops (exit code 1) and names them too.

Options:
  -c, --config PATH     config file (its provider block may override the OAuth URLs)
      --label NAME      store this login under NAME (a second account)
      --device          openai-codex: the device-code flow (no browser on this machine)
      --no-browser      print the URL instead of opening a browser
      --import          adopt an existing login: ~/.claude/.credentials.json (anthropic)
                        or $CODEX_HOME/auth.json (openai-codex); those files are only read
      --token-stdin     read a refresh token from stdin, store it and refresh it once (CI)
      --auth-file PATH  token file (default: $ROUTEPLANE_AUTH_FILE, else
                        $XDG_DATA_HOME/routeplane/auth.json)
  -h, --help            print help
";

const LOGOUT_HELP: &str = "\
routeplane logout: forget a subscription login

Usage: routeplane logout PROVIDER [--label NAME] [--auth-file PATH]

Options:
      --label NAME      forget the login stored under NAME
      --auth-file PATH  token file (default: $ROUTEPLANE_AUTH_FILE, else
                        $XDG_DATA_HOME/routeplane/auth.json)
  -h, --help            print help
";

/// How long a login waits for the pasted code (anthropic) or the browser's callback
/// (openai-codex): about the life of an authorization code, so a wait past it could
/// not end in a login anyway. `ROUTEPLANE_TEST_LOGIN_WAIT_SECS` shortens it for the tests.
fn login_wait() -> Duration {
    test_secs("ROUTEPLANE_TEST_LOGIN_WAIT_SECS").unwrap_or(Duration::from_secs(10 * 60))
}

/// A test hook's duration, in seconds (fractions allowed).
fn test_secs(var: &str) -> Option<Duration> {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// A wait as messages say it: `10 minutes`, or seconds when it is not whole minutes.
fn shown(wait: Duration) -> String {
    let secs = wait.as_secs_f64();
    if secs == 60.0 {
        "1 minute".into()
    } else if secs > 60.0 && secs % 60.0 == 0.0 {
        format!("{} minutes", secs / 60.0)
    } else {
        format!("{secs}s")
    }
}

/// After this long without a callback, the loopback flow says that `--device` needs no
/// browser here. `ROUTEPLANE_TEST_LOGIN_HINT_SECS` shortens it for the tests.
fn device_hint_after() -> Duration {
    test_secs("ROUTEPLANE_TEST_LOGIN_HINT_SECS").unwrap_or(Duration::from_secs(30))
}

/// How long an openai-codex login with `--no-browser` and no terminal waits to learn
/// whether stdin has ended (`</dev/null`, a CI job) before it shows the URL: a closed
/// stdin reads its end at once.
const STDIN_END_WAIT: Duration = Duration::from_millis(200);

/// Whether stdin has ended, learnt by a thread that reads it to its end (a loopback
/// login reads nothing from it; a pipe that stays open, as `ssh host routeplane login`
/// gives, never ends, and the login waits for the browser as on a terminal).
struct StdinEnd {
    ended: mpsc::Receiver<()>,
    seen: Cell<bool>,
}

impl StdinEnd {
    /// Starts the thread that reads stdin to its end.
    fn watch() -> StdinEnd {
        let (tx, ended) = mpsc::channel();
        let _ = std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                let mut stdin = std::io::stdin().lock();
                let mut sink = [0u8; 512];
                loop {
                    match stdin.read(&mut sink) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        // Unreadable (closed with `<&-`): nothing can come from it either.
                        Err(_) => break,
                    }
                }
                let _ = tx.send(());
            });
        StdinEnd {
            ended,
            seen: Cell::new(false),
        }
    }

    /// True when stdin has ended, waiting up to `within` for it.
    fn within(&self, within: Duration) -> bool {
        if !self.seen.get() {
            self.seen.set(self.ended.recv_timeout(within).is_ok());
        }
        self.seen.get()
    }
}

/// The ways to log in to `sub` that need neither a terminal nor a browser here, as
/// messages list them; `label` is ` --label NAME` or empty.
fn other_ways(sub: Subscription, label: &str) -> String {
    let (id, cli) = vendor(sub);
    let device = match sub == Subscription::OpenAiCodex {
        true => format!("approve on another device with `routeplane login {id}{label} --device`, "),
        false => String::new(),
    };
    format!(
        "{device}pipe a refresh token in with `routeplane login {id}{label} --token-stdin`, \
         or adopt {cli}'s login on this machine with `routeplane login {id}{label} --import`"
    )
}

/// The provider id of `sub` and the vendor's own client whose login `--import` adopts.
fn vendor(sub: Subscription) -> (&'static str, &'static str) {
    match sub {
        Subscription::Anthropic => ("anthropic", "Claude Code"),
        Subscription::OpenAiCodex => ("openai-codex", "the Codex CLI"),
    }
}

/// How a browser on another machine reaches the loopback login at `redirect_uri`.
fn forwarded(redirect_uri: &str) -> String {
    let port = callback::port_and_path(redirect_uri).map_or(1455, |(port, _)| port);
    format!("`ssh -L {port}:localhost:{port}`")
}

/// What an openai-codex login says when stdin is not a terminal and no browser was
/// opened here: what ends it, and the ways that need no browser.
fn codex_other_ways(redirect_uri: &str, label: &str) -> String {
    format!(
        "stdin is not a terminal and no browser was opened here: this login ends when a \
         browser reaches {redirect_uri} (on this machine, or forwarded to it with {}). \
         Without one, {}",
        forwarded(redirect_uri),
        other_ways(Subscription::OpenAiCodex, label)
    )
}

/// The refusal of a loopback login that nothing can finish: no browser was opened
/// here and stdin has ended, so no one is there to carry the URL to one.
fn no_browser_here(redirect_uri: &str, label: &str) -> Error {
    Error::Usage(format!(
        "no browser was opened here and stdin has ended (it is not a terminal), so nothing \
         can bring the login back to {redirect_uri}. Without a browser, {}. For a browser \
         on another machine, run it from a terminal with the port forwarded ({})",
        other_ways(Subscription::OpenAiCodex, label),
        forwarded(redirect_uri)
    ))
}

/// [`no_browser_here`] after [`codex_other_ways`] was printed: the other ways once.
fn no_browser_after_note(redirect_uri: &str) -> Error {
    Error::Usage(format!(
        "no browser was opened here and stdin has ended (it is not a terminal), so nothing \
         can bring the login back to {redirect_uri}; log in one of the ways above"
    ))
}

/// The refusal of an anthropic login whose code was not pasted within `wait`: on a
/// pipe that stays open, nothing else would ever end it.
fn no_paste_within(wait: Duration, label: &str) -> Error {
    Error::Auth(format!(
        "no code was pasted within {}; start the login again for a new URL. Without a \
         terminal or a browser, {}",
        shown(wait),
        other_ways(Subscription::Anthropic, label)
    ))
}

/// The refusal of an openai-codex login whose browser did not come back within `wait`.
fn no_callback_within(wait: Duration, redirect_uri: &str, label: &str) -> Error {
    Error::Auth(format!(
        "no browser came back to {redirect_uri} within {}; start the login again, or log \
         in without a browser here: {}",
        shown(wait),
        other_ways(Subscription::OpenAiCodex, label)
    ))
}

/// Options of `login`.
#[derive(Debug, Default)]
struct Options {
    provider: Option<String>,
    label: Option<String>,
    device: bool,
    no_browser: bool,
    import: bool,
    token_stdin: bool,
    auth_file: Option<PathBuf>,
}

fn parse(
    global: &mut Global,
    parser: &mut lexopt::Parser,
    help: &str,
) -> Result<Option<Options>, Error> {
    let mut o = Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => super::config_flag(global, parser)?,
            Long("label") => o.label = Some(parser.value()?.string()?),
            Long("device") => o.device = true,
            Long("no-browser") => o.no_browser = true,
            Long("import") => o.import = true,
            Long("token-stdin") => o.token_stdin = true,
            Long("auth-file") => o.auth_file = Some(parser.value()?.into()),
            Short('h') | Long("help") => {
                out!("{help}")?;
                return Ok(None);
            }
            Value(v) if o.provider.is_none() => o.provider = Some(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Some(o))
}

fn store_for(o: &Options) -> Result<Store, Error> {
    o.auth_file
        .clone()
        .or_else(paths::auth_file)
        .map(Store::new)
        .ok_or_else(|| {
            Error::Usage(
                "no place for the token file: set HOME, XDG_DATA_HOME or --auth-file".into(),
            )
        })
}

/// The error for a provider with no subscription login: the ones there are, and for
/// `openai` (an API key's provider) the login of ChatGPT plans.
fn no_login(provider: &str) -> Error {
    use routeplane::registry::{Kind, builtin_source};
    let hint = match (provider, builtin_source(provider)) {
        ("openai", _) => {
            "; ChatGPT plans log in as `openai-codex`, and an API key goes in OPENAI_API_KEY"
                .to_string()
        }
        ("claude", _) => "; Claude Pro/Max log in as `anthropic`".to_string(),
        // A local server (`ollama`) or a hosted API (`openrouter`): what it takes instead.
        (_, Some((Kind::Local, _))) => format!(
            "; `{provider}` is a local server and needs none: Routeplane asks it for its \
             models on its port (`routeplane providers` shows whether it answered)"
        ),
        (_, Some((Kind::Hosted, Some(var)))) => {
            format!("; `{provider}` takes an API key: set {var}, or `api_key:` in its block")
        }
        _ => String::new(),
    };
    Error::Usage(format!(
        "`{provider}` has no subscription login; the choices are anthropic and openai-codex{hint}"
    ))
}

/// `routeplane login PROVIDER`.
pub(crate) fn run(mut global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    let Some(o) = parse(&mut global, parser, HELP)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let provider = o
        .provider
        .clone()
        .ok_or_else(|| Error::Usage("missing PROVIDER (anthropic or openai-codex)".into()))?;
    let sub = Subscription::of(&provider).ok_or_else(|| no_login(&provider))?;
    // Taken silently, it would start the paste flow the user asked to avoid, or so it seems.
    if o.device && sub == Subscription::Anthropic {
        return Err(Error::Usage(
            "--device is openai-codex's device-code flow; `routeplane login anthropic` needs \
             no browser on this machine either: open the URL it prints on any device, approve, \
             and paste the CODE#STATE shown back here"
                .into(),
        ));
    }
    if let Some(label) = o.label.as_deref() {
        check_label(&provider, label)?;
    }
    let registry = Registry::build(&super::load_unset_as_empty(&global)?)?;
    let p = registry
        .provider(&provider)
        .ok_or_else(|| Error::Internal(format!("built-in provider `{provider}` is missing")))?;
    let urls = p.auth.clone();
    let client = upstream::Client::new(&registry.settings);
    let store = store_for(&o)?;
    store.check_writable()?;
    let key = store::key(&provider, o.label.as_deref());
    // ` --label NAME` for the commands messages suggest.
    let label = o
        .label
        .as_deref()
        .map_or(String::new(), |l| format!(" --label {l}"));

    let tokens = if o.import {
        import(sub)?
    } else if o.token_stdin {
        let wait = login_wait();
        let refresh = read_line_within("", wait)?.ok_or_else(|| {
            Error::Usage(format!(
                "--token-stdin read nothing within {}; pipe the refresh token in",
                shown(wait)
            ))
        })?;
        if refresh.is_empty() {
            return Err(Error::Usage(
                "--token-stdin read nothing; pipe the refresh token in".into(),
            ));
        }
        let stub = Tokens {
            access: Secret::new(""),
            refresh: Secret::new(refresh),
            expires_at: 0,
            id_token: None,
            account_id: None,
        };
        // Refreshing once proves the token works, and yields an access token.
        match sub {
            Subscription::Anthropic => anthropic::refresh(&client, &urls, &stub)?,
            Subscription::OpenAiCodex => openai_codex::refresh(&client, &urls, &stub)?,
        }
    } else {
        match sub {
            Subscription::Anthropic => {
                eprintln!("{}\n", anthropic::POLICY);
                let pending = anthropic::start(&urls)?;
                let _opener = show_url(&pending.url, o.no_browser).1;
                let wait = login_wait();
                let pasted = read_line_within(
                    "paste the code shown after you approve (CODE#STATE): ",
                    wait,
                )?;
                let Some(pasted) = pasted else {
                    // The prompt above has no line end of its own.
                    eprintln!();
                    return Err(no_paste_within(wait, &label));
                };
                // A script's stdin ends at once; the paste flow cannot work there, so
                // say which flows do rather than only that nothing came. A usage error,
                // as the same for openai-codex is: this flow cannot run here.
                if pasted.is_empty() && !std::io::stdin().is_terminal() {
                    eprintln!();
                    return Err(Error::Usage(format!(
                        "stdin ended before a code was pasted (it is not a terminal). Without \
                         one, {}",
                        other_ways(sub, &label)
                    )));
                }
                anthropic::finish(&client, &urls, &pending, &pasted)?
            }
            Subscription::OpenAiCodex if o.device => {
                let device = openai_codex::device_start(&client, &urls)?;
                eprintln!(
                    "open {} and enter the code {}",
                    device.verify_url, device.user_code
                );
                let secs = device.lifetime.as_secs();
                let (n, unit) = match secs {
                    ..120 => (secs, "seconds"),
                    _ => (secs / 60, "minutes"),
                };
                eprintln!("waiting for approval (the code expires in {n} {unit})...");
                // The test hook of the login's wait shortens the code's life too.
                let life = test_secs("ROUTEPLANE_TEST_LOGIN_WAIT_SECS");
                let life = life.unwrap_or(device.lifetime);
                openai_codex::device_finish(&client, &urls, &device, Duration::ZERO, life)?
            }
            Subscription::OpenAiCodex => {
                let pending = openai_codex::start(&urls)?;
                // Without a terminal, a script may be waiting here for a browser nobody
                // will open: watched, so that it learns of the other ways at once.
                let stdin_end = (!std::io::stdin().is_terminal()).then(StdinEnd::watch);
                let ended = |within| stdin_end.as_ref().is_some_and(|s| s.within(within));
                if o.no_browser && ended(STDIN_END_WAIT) {
                    return Err(no_browser_here(&pending.redirect_uri, &label));
                }
                let (opened, _opener) = show_url(&pending.url, o.no_browser);
                let headless = stdin_end.is_some() && !opened;
                eprintln!(
                    "waiting for the browser to return to {}...",
                    pending.redirect_uri
                );
                let wait = login_wait();
                let deadline = Instant::now() + wait;
                let noted = std::cell::Cell::new(false);
                let code = callback::wait_for_code(
                    &pending.redirect_uri,
                    &pending.state,
                    if headless {
                        Duration::ZERO
                    } else {
                        device_hint_after()
                    },
                    || {
                        if headless {
                            noted.set(true);
                            eprintln!("{}", codex_other_ways(&pending.redirect_uri, &label));
                        } else {
                            eprintln!(
                                "no callback yet. No browser on this machine? Press Ctrl-C and \
                                 run `routeplane login openai-codex --device{label}`: it works \
                                 without a browser here (you approve on another device)."
                            );
                        }
                    },
                    || {
                        if Instant::now() >= deadline {
                            return Some(no_callback_within(wait, &pending.redirect_uri, &label));
                        }
                        // The ways without a browser were just listed: not again.
                        (headless && ended(Duration::ZERO)).then(|| match noted.get() {
                            true => no_browser_after_note(&pending.redirect_uri),
                            false => no_browser_here(&pending.redirect_uri, &label),
                        })
                    },
                )?;
                openai_codex::finish(&client, &urls, &pending, &code)?
            }
        }
    };
    store.put(&key, Some(&tokens))?;
    outln!(
        "logged in to {key}; the token is stored in {}",
        store.path().display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses a label that would make the login unnameable: a request names it as
/// `PROVIDER#LABEL:MODEL`, split at the first `:`, and a space or control character
/// cannot be written in a log field or a config line unquoted.
fn check_label(provider: &str, label: &str) -> Result<(), Error> {
    let bad = label
        .chars()
        .any(|c| c == ':' || c == '#' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(Error::Usage(format!(
            "--label must be a word without `:`, `#`, spaces or control characters (clients \
             name the login `{provider}#LABEL:MODEL`), e.g. `--label work`"
        )));
    }
    Ok(())
}

/// `routeplane logout PROVIDER`.
pub(crate) fn run_logout(
    mut global: Global,
    parser: &mut lexopt::Parser,
) -> Result<ExitCode, Error> {
    let Some(o) = parse(&mut global, parser, LOGOUT_HELP)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let provider = o
        .provider
        .clone()
        .ok_or_else(|| Error::Usage("missing PROVIDER".into()))?;
    // A misspelt name would otherwise read as "not logged in", and the real login stay.
    if Subscription::of(&provider).is_none() {
        return Err(no_login(&provider));
    }
    let store = store_for(&o)?;
    let key = store::key(&provider, o.label.as_deref());
    let logins = store.load_or(|path, why| {
        Error::Logout(format!(
            "the token file `{}` cannot be read: it is {why}",
            path.display()
        ))
    })?;
    // Any entry under the key is forgotten, also one too damaged to log in with.
    if !logins.contains_key(&key) {
        outln!("not logged in to {key}")?;
        return Ok(ExitCode::SUCCESS);
    }
    // The store's own refusals (locked, changed since) speak of a login.
    store.put(&key, None).map_err(|e| match e {
        Error::Auth(why) => Error::Logout(why),
        e => e,
    })?;
    outln!("logged out of {key}")?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the vendor file of an existing login.
fn import(sub: Subscription) -> Result<Tokens, Error> {
    let home = paths::home().ok_or_else(|| Error::Usage("HOME is not set".into()))?;
    let path = match sub {
        Subscription::Anthropic => home.join(".claude/.credentials.json"),
        Subscription::OpenAiCodex => std::env::var_os("CODEX_HOME")
            .filter(|v| !v.is_empty())
            .map_or_else(|| home.join(".codex"), PathBuf::from)
            .join("auth.json"),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        // No vendor login here (or one kept elsewhere, as Claude Code's in a macOS
        // keychain): the OS's words alone named no way on.
        std::io::ErrorKind::NotFound => {
            let (id, cli) = vendor(sub);
            Error::Auth(format!(
                "nothing to import: no `{}` ({cli} writes it when logged in here); run \
                 `routeplane login {id}` without --import",
                path.display()
            ))
        }
        _ => Error::io(format!("cannot read `{}` to import", path.display()), e),
    })?;
    match sub {
        Subscription::Anthropic => anthropic::import(&text),
        Subscription::OpenAiCodex => openai_codex::import(&text),
    }
}

/// How long an opener is given to fail: one without a desktop (no `DISPLAY`: a server,
/// a CI runner) usually exits at once; one still running after this may be the browser
/// itself, unless there is no display for it (see [`no_display`]).
const OPENER_FAILS_WITHIN: Duration = Duration::from_secs(1);

/// True where an opener still running proves nothing: a Unix desktop other than macOS
/// with neither `DISPLAY` nor `WAYLAND_DISPLAY` to show a browser on and no `BROWSER`
/// chosen. A headless `xdg-open` there may hang, or take long trying text browsers it
/// cannot run, and open nothing.
fn no_display() -> bool {
    let unset = |var| std::env::var_os(var).is_none_or(|v| v.is_empty());
    cfg!(all(unix, not(target_os = "macos")))
        && unset("DISPLAY")
        && unset("WAYLAND_DISPLAY")
        && unset("BROWSER")
}

/// An opener (`xdg-open`, `open`) still running after its first second: ended, and
/// reaped, when the login ends (dropped), whether it stored a token, timed out or
/// failed. A hung one would otherwise outlive the command. Only the opener itself is
/// ended, not a browser it started: that is a process of its own.
struct Opener(std::process::Child);

impl Drop for Opener {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        // Reaped once it is gone, which a kill makes at once; never waited on for long.
        let until = Instant::now() + Duration::from_millis(200);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Prints the URL and, unless told not to, asks the desktop to open it: true when an
/// opener took it, and the opener if it still runs (keep it until the login ends).
fn show_url(url: &str, no_browser: bool) -> (bool, Option<Opener>) {
    eprintln!("open this URL to log in:\n\n  {url}\n");
    if no_browser {
        return (false, None);
    }
    for opener in ["xdg-open", "open"] {
        let spawned = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut child) = spawned else {
            continue;
        };
        let deadline = Instant::now() + OPENER_FAILS_WITHIN;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return (status.success(), None),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let running = Some(Opener(child));
        if no_display() {
            // Left running: should it open something after all, the callback still
            // comes; the login just no longer waits on it alone.
            eprintln!(
                "{opener} is still running after 1 s with no display here (DISPLAY, \
                 WAYLAND_DISPLAY and BROWSER are unset): no browser is taken to be open\n"
            );
            return (false, running);
        }
        return (true, running);
    }
    (false, None)
}

/// Reads one line from stdin (a pipe works), showing `prompt` first; `None` when no
/// line (nor its end) came within `within`: a pipe that stays open and says nothing
/// would otherwise hold the login for ever.
fn read_line_within(prompt: &str, within: Duration) -> Result<Option<String>, Error> {
    if !prompt.is_empty() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let (tx, rx) = mpsc::channel();
    // Left blocked in its read when the wait ends: the process exits soon after.
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut line = String::new();
            let read = std::io::stdin().lock().read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
        });
    let line = match rx.recv_timeout(within) {
        Ok(read) => read.map_err(|e| Error::io("cannot read stdin", e))?,
        Err(mpsc::RecvTimeoutError::Timeout) => return Ok(None),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(Error::Internal(
                "cannot start a thread to read stdin".into(),
            ));
        }
    };
    if line.is_empty() && std::io::stdin().is_terminal() {
        return Err(Error::Usage("nothing was entered".into()));
    }
    Ok(Some(line.trim().to_string()))
}
