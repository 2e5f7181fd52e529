//! `routeplane route MODEL`: print the ordered targets a request would try, each with its
//! state; send nothing to a model.

use std::process::ExitCode;

use lexopt::prelude::*;
use routeplane::registry::{Prefill, Provider, Settings, Target};
use routeplane::{Error, detect, route};

use super::Global;

const HELP: &str = "\
routeplane route: print the targets a request for MODEL would try, in order

Usage: routeplane route MODEL [-c PATH] [--listen ADDR] [--json]

Nothing is sent to a model. Local sources are probed and hosted providers with a key
are asked for their lists, so detected models resolve as a server would resolve them;
each target shows its state, and its cool-down when a routeplane serving this config
answers at its `listen` address (or at --listen's).

Options:
  -c, --config PATH  config file
      --listen ADDR  the running routeplane to ask for cool-downs and refused keys
                     (default: `listen`)
      --json         print JSON instead of text
  -h, --help         print help
";

/// Resolves and prints.
pub(crate) fn run(mut global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    let (mut model, mut json) = (None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => super::config_flag(&mut global, parser)?,
            Long("listen") => global.listen = Some(parser.value()?.string()?),
            Long("json") => json = true,
            Short('h') | Long("help") => {
                out!("{HELP}")?;
                return Ok(ExitCode::SUCCESS);
            }
            Value(v) if model.is_none() => model = Some(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let model = model.ok_or_else(|| Error::Usage("missing MODEL argument".into()))?;
    let (registry, detected, auth) = super::list::probed(&global)?;
    let targets = route::resolve(&registry, &detected, &model)?;
    let cooling = super::list::from_server(&registry, &auth);
    let cools = |t: &Target| cooling.iter().any(|(label, _)| label == t.label());
    // In the order the server tries them, and as it decides which is the last.
    let (targets, warm) = route::cooling_last(&targets, cools);
    let logins = auth.logins_of(&targets);
    let lacks = |p: &Provider| auth.lacks_credential(p, logins.get(&p.id));
    let last_hope = route::last_hope(&targets, warm, lacks);
    let mut list = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let label = t.label();
        let named = client_name(t, &model);
        let state = detect::model_state(&t.provider, t.model(), &detected, &auth);
        let mut shown = super::list::with_cooldown(&state, &cooling, label);
        if state == detect::State::NotListed && t.provider.is_ollama() {
            // What a request would be told by Ollama's 404: a near name first.
            shown.push_str(&format!(" ({})", t.pull_hint()));
        }
        let last = i >= last_hope;
        let (protocol, mut url) = (
            t.protocol.name(),
            address(t, last, auth.stream_only(&t.provider)),
        );
        if named != label {
            // A catalog entry: named by its id, sent as its `provider_model_id`.
            url.push_str(&format!(", as `{}`", t.model()));
        }
        let policy = policy(&registry.settings, t, last);
        if json {
            // By hand: a map built of values costs the binary more than this text.
            let q = |s: &str| serde_json::Value::from(s).to_string();
            list.push(format!(
                "{{\"target\":{},\"protocol\":{},\"url\":{},\"state\":{},\"policy\":{}}}",
                q(&named),
                q(protocol),
                q(&url),
                q(&shown),
                q(&policy)
            ));
            continue;
        }
        outln!("{}. {named} ({protocol}, {url}) {shown}", i + 1)?;
        outln!("   {policy}")?;
    }
    if json {
        outln!("[{}]", list.join(","))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `t` as a client names it, and as `config validate` and the model lists do: a catalog
/// entry (`{id: gpt-4o, provider_model_id: openai/gpt-4o}`) by its id,
/// `openrouter:gpt-4o`, not by the name sent upstream that its label holds. Of two
/// entries sent as one name, the one `asked` names, else the first.
fn client_name(t: &Target, asked: &str) -> String {
    let p = &t.provider;
    let asked = asked.strip_prefix(&format!("{}:", p.id)).unwrap_or(asked);
    if asked == t.model() {
        // Named as it is sent: so shown.
        return t.label().to_string();
    }
    let mut entries = p.models.iter().filter(|m| m.upstream == t.model());
    let first = entries.clone().next();
    match entries.find(|m| m.id == asked).or(first) {
        Some(m) => format!("{}:{}", p.id, m.id),
        None => t.label().to_string(),
    }
}

/// Where requests to `t` go. A Gemini source's method says whether it streams, so
/// both are told, and when each is asked, as the server decides it: a stream when the
/// client asks for one; a whole answer as a stream too from a self-hosted server with
/// another endpoint after it (`last` false) unless one stream cannot give it, and
/// always from a source that answers only streams.
fn address(t: &Target, last: bool, stream_only: bool) -> String {
    let base = routeplane::log::shown_url(&t.provider.api_base);
    let whole = t.protocol.endpoint(t.model(), false);
    let stream = t.protocol.endpoint(t.model(), true);
    let method = |path: &str| path.rsplit_once(':').map_or("", |(_, m)| m).to_string();
    if whole == stream || stream_only {
        format!("{base}{stream}")
    } else if t.provider.self_hosted() && !last {
        format!(
            "{base}{stream}, whole answers too (:{} when one stream cannot give them)",
            method(&whole)
        )
    } else {
        format!("{base}{whole}, streams :{}", method(&stream))
    }
}

/// An endpoint's failover policy: its deadline, retries and whether it can continue.
fn policy(settings: &Settings, t: &Target, last: bool) -> String {
    let deadline = if last {
        format!(
            "first byte {:?} (no later endpoint could answer)",
            settings.first_byte_timeout
        )
    } else {
        let d = t.first_token.unwrap_or(settings.first_token_timeout);
        let d = d.min(settings.first_byte_timeout);
        // Only a self-hosted server is asked for a whole answer as a stream.
        match t.provider.self_hosted() {
            true => format!("first token {d:?}"),
            false => format!(
                "first token {d:?} (a whole answer: first byte {:?})",
                settings.first_byte_timeout
            ),
        }
    };
    let prefill = match (t.can_continue(), t.provider.prefill) {
        (false, _) => "no",
        (true, Prefill::Flags) => "yes (continue_final_message)",
        (true, _) => "yes",
    };
    format!(
        "deadline: {deadline}; retries: {}; prefill: {prefill}",
        settings.retries
    )
}
