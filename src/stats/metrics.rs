//! `GET /metrics`: the counters in Prometheus's text exposition format (version 0.0.4), by hand.
//!
//! Names follow Prometheus's conventions: a `routeplane_` prefix, base units
//! (`_seconds`), `_total` on counters, one `# HELP` and `# TYPE` per family, histogram
//! buckets cumulative with a `+Inf` bucket equal to `_count`. Label values are escaped
//! (backslash, quote, newline). Provider and model labels come from the config, so
//! their number is bounded by it; the model a client typed is never a label.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::{BUCKETS, Histogram, Source, SourceCounts, Stats};

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A counter family read from each source's counters: name, help, and how to read it.
type Counter = (&'static str, &'static str, fn(&SourceCounts) -> u64);

/// A histogram family read from each source's counters.
type Histograms = (&'static str, &'static str, fn(&SourceCounts) -> &Histogram);

/// Renders every metric family; `sources` is each provider's state now, and
/// `reasoning_bytes` the reasoning kept for clients that do not give it back.
pub fn render(stats: &Stats, sources: &[Source], reasoning_bytes: usize) -> String {
    let counts = stats.snapshot();
    let mut out = String::with_capacity(4096 + 2048 * counts.len());
    let o = &mut out;

    family(
        o,
        "routeplane_build_info",
        "gauge",
        "Always 1; the labels name the build.",
    );
    let _ = writeln!(
        o,
        "routeplane_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let started = stats
        .started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    single(
        o,
        "routeplane_process_start_time_seconds",
        "gauge",
        "When the process started, in seconds since the Unix epoch.",
        format_args!("{started:.3}"),
    );

    family(
        o,
        "routeplane_requests_total",
        "counter",
        "Finished requests by the provider and upstream model that answered (\"-\" for none), status and the client's protocol.",
    );
    for (provider, c) in &counts {
        for r in &c.requests {
            let _ = writeln!(
                o,
                "routeplane_requests_total{{provider=\"{}\",model=\"{}\",status=\"{}\",inbound=\"{}\"}} {}",
                esc(provider),
                esc(&r.model),
                r.status,
                r.inbound.name(),
                r.count
            );
        }
    }
    family(
        o,
        "routeplane_streams_total",
        "counter",
        "Streamed answers by the provider and upstream model that started them and how they ended: complete, broken (the client got an error event under its 200), rescued, client_closed or broke_after_call (ended as a tool call after a break right after whole calls).",
    );
    for (provider, c) in &counts {
        for s in &c.streams {
            let _ = writeln!(
                o,
                "routeplane_streams_total{{provider=\"{}\",model=\"{}\",end=\"{}\"}} {}",
                esc(provider),
                esc(&s.model),
                s.end.name(),
                s.count
            );
        }
    }
    let per_provider: [Counter; 4] = [
        (
            "routeplane_attempts_total",
            "Upstream attempts made at each provider.",
            |c| c.attempts,
        ),
        (
            "routeplane_retries_total",
            "Attempts that asked again the endpoint that had just failed (same-endpoint retries).",
            |c| c.retries,
        ),
        (
            "routeplane_failovers_total",
            "Times a request moved on from a failed endpoint of this provider to another endpoint.",
            |c| c.failovers,
        ),
        (
            "routeplane_rescues_total",
            "Broken streams this provider continued.",
            |c| c.rescues,
        ),
    ];
    for (name, help, get) in per_provider {
        family(o, name, "counter", help);
        for (provider, c) in counts.iter().filter(|(p, _)| *p != "-") {
            let _ = writeln!(o, "{name}{{provider=\"{}\"}} {}", esc(provider), get(c));
        }
    }
    family(
        o,
        "routeplane_tokens_total",
        "counter",
        "Tokens the upstream reported, by provider and direction (cached_input and reasoning are parts of input and output).",
    );
    for (provider, c) in counts.iter().filter(|(p, _)| *p != "-") {
        for (direction, n) in ["input", "output", "cached_input", "reasoning"]
            .iter()
            .zip(c.tokens)
        {
            let _ = writeln!(
                o,
                "routeplane_tokens_total{{provider=\"{}\",direction=\"{direction}\"}} {n}",
                esc(provider)
            );
        }
    }
    let histograms: [Histograms; 2] = [
        (
            "routeplane_time_to_first_token_seconds",
            "From the request's arrival until its first token (or whole answer) went to the client.",
            |c| &c.ttft,
        ),
        (
            "routeplane_request_duration_seconds",
            "From the request's arrival until its last byte went to the client.",
            |c| &c.total,
        ),
    ];
    for (name, help, get) in histograms {
        family(o, name, "histogram", help);
        for (provider, c) in &counts {
            histogram(o, name, provider, get(c));
        }
    }
    single(
        o,
        "routeplane_requests_in_flight",
        "gauge",
        "Requests being answered now.",
        stats.in_flight.load(Ordering::Relaxed),
    );
    single(
        o,
        "routeplane_open_streams",
        "gauge",
        "Streaming requests being answered now.",
        stats.open_streams.load(Ordering::Relaxed),
    );
    family(
        o,
        "routeplane_provider_up",
        "gauge",
        "1 when the provider can be sent requests (found up, has its key or login), else 0.",
    );
    // A server not asked for its models has no series: nothing is known of it.
    for s in sources {
        let Some(up) = s.up else { continue };
        let _ = writeln!(
            o,
            "routeplane_provider_up{{provider=\"{}\"}} {}",
            esc(&s.id),
            u8::from(up)
        );
    }
    family(
        o,
        "routeplane_provider_cooldown_seconds",
        "gauge",
        "Seconds until the provider's longest endpoint cool-down ends (0 when none).",
    );
    for s in sources {
        let _ = writeln!(
            o,
            "routeplane_provider_cooldown_seconds{{provider=\"{}\"}} {:.3}",
            esc(&s.id),
            s.cooldown.map_or(0.0, |d| d.as_secs_f64())
        );
    }
    single(
        o,
        "routeplane_reasoning_memory_bytes",
        "gauge",
        "Reasoning kept for clients that do not give it back, in bytes of JSON (at most `limits.reasoning_memory_bytes`).",
        reasoning_bytes,
    );
    single(
        o,
        "routeplane_usage_ledger_errors_total",
        "counter",
        "Usage ledger lines that could not be written.",
        stats.ledger_errors.load(Ordering::Relaxed),
    );
    out
}

/// `# HELP` and `# TYPE` lines of one family.
fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A family of one unlabelled sample.
fn single(o: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(o, name, kind, help);
    let _ = writeln!(o, "{name} {value}");
}

/// The bucket, sum and count lines of one provider's histogram.
fn histogram(o: &mut String, name: &str, provider: &str, h: &Histogram) {
    let p = esc(provider);
    let mut cumulative = 0;
    for (bound, n) in BUCKETS.iter().zip(h.counts) {
        cumulative += n;
        let _ = writeln!(
            o,
            "{name}_bucket{{provider=\"{p}\",le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        o,
        "{name}_bucket{{provider=\"{p}\",le=\"+Inf\"}} {}\n{name}_sum{{provider=\"{p}\"}} {:.6}\n{name}_count{{provider=\"{p}\"}} {}",
        h.count, h.sum, h.count
    );
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Parses exposition text into `(name{labels}, value)` samples, checking the rules a
/// scraper relies on; the unit tests' stand-in for `promtool check metrics`.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Result<std::collections::BTreeMap<String, f64>, String> {
    use std::collections::BTreeMap;
    let mut samples = BTreeMap::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line}", n + 1);
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| at("bad TYPE"))?;
            if typed.insert(name.into(), kind.into()).is_some() {
                return Err(at("family typed twice"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(at("counter without _total"));
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let value: f64 = value.parse().map_err(|_| at("bad value"))?;
        let name = series.split('{').next().unwrap_or(series);
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| typed.get(*b).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        if !typed.contains_key(base) {
            return Err(at("sample before its TYPE"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        {
            return Err(at("bad metric name"));
        }
        if samples.insert(series.to_string(), value).is_some() {
            return Err(at("duplicate series"));
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::tests::finished;

    #[test]
    fn exposition_parses_and_histograms_are_cumulative() {
        let stats = Stats::default();
        stats.record(finished(Some("local:m"), 200, &["cloud:x"]));
        stats.record(finished(Some("local:m"), 200, &[]));
        stats.record(finished(None, 502, &["cloud:x"]));
        stats.record(crate::stats::Finished {
            stream: true,
            stream_end: Some(crate::log::StreamEnd::Broken),
            ..finished(Some("local:m"), 200, &[])
        });
        let sources = [Source {
            id: "we\"ird".into(),
            kind: "local",
            state: "up".into(),
            up: Some(true),
            detail: String::new(),
            cooldown: None,
        }];
        let text = render(&stats, &sources, 0);
        let m = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let get = |k: &str| {
            m.get(k)
                .copied()
                .unwrap_or_else(|| panic!("no {k} in\n{text}"))
        };
        assert_eq!(
            get(
                r#"routeplane_requests_total{provider="local",model="m",status="200",inbound="chat_completions"}"#
            ),
            3.0
        );
        assert_eq!(
            get(r#"routeplane_streams_total{provider="local",model="m",end="broken"}"#),
            1.0
        );
        assert_eq!(
            get(
                r#"routeplane_requests_total{provider="cloud",model="x",status="502",inbound="chat_completions"}"#
            ),
            1.0
        );
        assert_eq!(get(r#"routeplane_attempts_total{provider="cloud"}"#), 2.0);
        assert_eq!(get(r#"routeplane_failovers_total{provider="cloud"}"#), 1.0);
        assert_eq!(
            get(r#"routeplane_tokens_total{provider="local",direction="input"}"#),
            15.0
        );
        assert_eq!(
            get(r#"routeplane_time_to_first_token_seconds_bucket{provider="local",le="0.01"}"#),
            0.0
        );
        assert_eq!(
            get(r#"routeplane_time_to_first_token_seconds_bucket{provider="local",le="0.025"}"#),
            3.0
        );
        assert_eq!(
            get(r#"routeplane_time_to_first_token_seconds_bucket{provider="local",le="+Inf"}"#),
            3.0
        );
        assert_eq!(get(r#"routeplane_provider_up{provider="we\"ird"}"#), 1.0);
    }
}
