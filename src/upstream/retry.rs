//! When an upstream says it may be asked again: `Retry-After`, OpenAI-style reset
//! headers, and the plan-limit resets the ChatGPT backend puts in a 429's body.

use std::time::Duration;

/// `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// A Unix time in seconds (or milliseconds, when it is that large), as a duration from
/// now; zero when it has passed.
pub(super) fn unix_time_from_now(v: &str) -> Option<Duration> {
    until_unix(v.trim().parse().ok()?)
}

/// [`unix_time_from_now`] for a number already read.
fn until_unix(n: u64) -> Option<Duration> {
    let at = match n {
        n if n > 100_000_000_000 => Duration::from_millis(n),
        n => Duration::from_secs(n),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(at.saturating_sub(now))
}

/// When a plan limit named in a 429's body ends: the ChatGPT (Codex) backend's
/// `usage_limit_reached` carries `resets_in_seconds` or `resets_at` (Unix time) and no
/// `Retry-After`.
pub fn reset_in_body(body: &[u8]) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = &v["error"];
    if let Some(secs) = e["resets_in_seconds"].as_f64() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    until_unix(e["resets_at"].as_u64()?)
}

/// OpenAI-style reset headers: `1s`, `6m0s`, `250ms`, or plain seconds.
pub(super) fn parse_reset(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += match c {
            'h' => n * 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                n / 1000.0
            }
            'm' => n * 60.0,
            's' => n,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}
