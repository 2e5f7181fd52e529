//! `routeplane usage`: the usage ledger summed per provider, model or day.

use std::process::ExitCode;
use std::time::SystemTime;

use lexopt::prelude::*;
use routeplane::Error;
use routeplane::registry::Registry;
use routeplane::stats::ledger::{self, By, Group};
use routeplane::time;
use serde_json::json;

use super::Global;

const HELP: &str = "\
routeplane usage: what the proxy served, from its usage ledger

Usage: routeplane usage [-c PATH] [--since 24h|7d|DATE] [--by provider|model|day] [--json]

Per group: requests, errors (4xx/5xx answers and streams that broke), failed attempts
(at that source, moved past to a retry or another endpoint), fail-overs (requests that
moved past a failed endpoint), rescues (its streams that broke and were continued),
continued (the broken streams it continued, whoever started them), input and output
tokens as the upstreams reported them, and the median and 95th percentile time to
first token. A request, its tokens included, counts where its answer started.

Options:
  -c, --config PATH  config file (its `usage.path` names the ledger)
      --since WHEN   only requests made since then: a span (30m, 24h, 7d) or a UTC date
                     (2026-12-01) or time (2026-12-01T08:00:00Z); default: everything
      --by GROUP     provider (default), model (provider:model) or day (UTC)
      --json         print JSON instead of a table
  -h, --help         print help
";

/// Parses the options, reads the ledger and prints the summary.
pub(crate) fn run(mut global: Global, parser: &mut lexopt::Parser) -> Result<ExitCode, Error> {
    let (mut since, mut by, mut as_json) = (None, By::Provider, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => super::config_flag(&mut global, parser)?,
            Long("since") => since = Some(since_ms(&parser.value()?.string()?)?),
            Long("by") => {
                let v = parser.value()?.string()?;
                by = By::parse(&v).ok_or_else(|| {
                    Error::Usage(format!(
                        "--by `{v}` is not a grouping; use provider, model or day"
                    ))
                })?;
            }
            Long("json") => as_json = true,
            Short('h') | Long("help") => {
                out!("{HELP}")?;
                return Ok(ExitCode::SUCCESS);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let registry = Registry::build(&super::load_unset_as_empty(&global)?)?;
    let Some(path) = registry.settings.usage_path else {
        return Err(Error::Usage(
            "the usage ledger is off (`usage.enabled: false`); nothing to read".into(),
        ));
    };
    let summary = match ledger::summarize(&path, since, by) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "routeplane: no usage ledger at `{}` yet; it is written as requests finish",
                path.display()
            );
            ledger::Summary::default()
        }
        Err(e) => return Err(Error::io(format!("cannot read `{}`", path.display()), e)),
    };
    if summary.skipped > 0 {
        eprintln!(
            "routeplane: skipped {} line(s) of `{}` that are not ledger lines",
            summary.skipped,
            path.display()
        );
    }
    if as_json {
        let row = |g: &Group| {
            json!({
                "key": g.key, "requests": g.requests, "errors": g.errors,
                "failed": g.failed, "failovers": g.failovers, "rescues": g.rescues,
                "continued": g.continued,
                "input_tokens": g.input, "output_tokens": g.output,
                "ttft_p50_ms": g.ttft_p50, "ttft_p95_ms": g.ttft_p95,
            })
        };
        let groups: Vec<_> = summary.groups.iter().map(row).collect();
        let by_name = match by {
            By::Provider => "provider",
            By::Model => "model",
            By::Day => "day",
        };
        outln!(
            "{}",
            json!({"by": by_name, "groups": groups, "total": row(&summary.total)})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let title = match by {
        By::Provider => "PROVIDER",
        By::Model => "MODEL",
        By::Day => "DAY",
    };
    let width = summary
        .groups
        .iter()
        .map(|g| g.key.len())
        .max()
        .unwrap_or(0)
        .max(title.len())
        .max(5);
    outln!(
        "{title:<width$}  {:>8} {:>7} {:>7} {:>9} {:>7} {:>9} {:>12} {:>12} {:>9} {:>9}",
        "REQUESTS",
        "ERRORS",
        "FAILED",
        "FAILOVERS",
        "RESCUES",
        "CONTINUED",
        "INPUT_TOK",
        "OUTPUT_TOK",
        "TTFT_P50",
        "TTFT_P95"
    )?;
    for g in summary.groups.iter().chain([&summary.total]) {
        outln!(
            "{:<width$}  {:>8} {:>7} {:>7} {:>9} {:>7} {:>9} {:>12} {:>12} {:>9} {:>9}",
            g.key,
            g.requests,
            g.errors,
            g.failed,
            g.failovers,
            g.rescues,
            g.continued,
            g.input,
            g.output,
            ms(g.ttft_p50),
            ms(g.ttft_p95)
        )?;
    }
    // A row with no source's name: what it counts is said once, under the table.
    if summary.groups.iter().any(|g| g.key == "-") {
        outln!("-: requests no source was asked for (an unknown model, a refused request)")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A percentile as `123ms`, or `-`.
fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}ms"))
}

/// `--since`: a span back from now, or a UTC date or time.
fn since_ms(s: &str) -> Result<i64, Error> {
    if let Some(span) = time::parse_span(s) {
        return Ok(time::unix_ms(SystemTime::now()) - span.as_millis() as i64);
    }
    time::parse(s).ok_or_else(|| {
        Error::Usage(format!(
            "--since `{s}` is neither a span (30m, 24h, 7d) nor a UTC date (2026-12-01)"
        ))
    })
}
