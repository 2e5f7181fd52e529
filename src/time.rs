//! UTC calendar arithmetic for timestamps, without a date crate.
//!
//! The log line and the ledger write `2026-12-02T03:40:12.123Z`, messages say
//! `2026-12-02 03:40 UTC`, and `routeplane usage` reads timestamps back and takes
//! `--since 2026-12-01`; all of it needs only days-from-civil and its inverse (Howard
//! Hinnant's algorithms, exact for the proleptic Gregorian calendar).

use std::cell::RefCell;
use std::fmt;
use std::thread::LocalKey;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Days since the epoch of a time's UTC date (0 before it). From whole seconds: through
/// milliseconds (`u128`) it was ~60 instructions, for each request counted.
pub fn days(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

/// When a day (days since the epoch, as [`days`] counts them) begins and ends; empty
/// for a day the clock cannot hold.
pub fn day_span(day: i64) -> std::ops::Range<SystemTime> {
    let secs = u64::try_from(day).unwrap_or(0).saturating_mul(86_400);
    let start = UNIX_EPOCH.checked_add(Duration::from_secs(secs));
    let end = start.and_then(|s| s.checked_add(Duration::from_secs(86_400)));
    match (start, end) {
        (Some(start), Some(end)) => start..end,
        _ => UNIX_EPOCH..UNIX_EPOCH,
    }
}

/// A time as RFC 3339 in UTC with milliseconds: `2026-12-02T03:28:24.123Z`. A
/// `Display`, so the log line writes it without an allocation. Times before 1970 and
/// past the year 9999 are written as those bounds.
pub struct Rfc3339(pub SystemTime);

/// 10000-01-01T00:00:00Z in seconds since the epoch: from here on, times are written as the bound.
const YEAR_10000: u64 = 253_402_300_800;

impl Rfc3339 {
    /// Appends the time to `out`. The text up to the second is made once a second per
    /// thread: every request writes its time twice (log line, ledger line), and the
    /// calendar arithmetic was most of the cost. The last time's whole text is kept
    /// too: the second of those two writes is one copy.
    pub fn push_to(&self, out: &mut String) {
        thread_local! {
            /// The last time written, its second, and its text.
            static LAST: RefCell<(SystemTime, u64, String)> =
                const { RefCell::new((UNIX_EPOCH, 0, String::new())) };
        }
        LAST.with_borrow_mut(|(at, second, text)| {
            if *at != self.0 || text.is_empty() {
                self.make(second, text);
                *at = self.0;
            }
            out.push_str(text);
        });
    }

    /// Makes the text of this time in `text`, which holds the text of a time within
    /// `second` (seconds since the epoch) unless it is empty: then only the
    /// milliseconds are new.
    fn make(&self, second: &mut u64, text: &mut String) {
        let since = self.0.duration_since(UNIX_EPOCH).ok();
        let Some((secs, ms)) = since
            .map(|d| (d.as_secs(), d.subsec_millis()))
            .filter(|&(secs, _)| secs < YEAR_10000)
        else {
            text.clear();
            text.push_str(std::str::from_utf8(&self.bytes()).unwrap_or_default());
            // Not a second's text: made afresh next time.
            *second = u64::MAX;
            return;
        };
        if secs == *second && text.len() == 24 {
            text.truncate(20);
        } else {
            text.clear();
            text.push_str(std::str::from_utf8(&self.bytes()[..20]).unwrap_or_default());
            *second = secs;
        }
        // `% 10` bounds each digit: pushed as the byte it is, not encoded as UTF-8.
        for digit in [ms / 100, ms / 10, ms] {
            text.push(char::from(b'0' + (digit % 10) as u8));
        }
        text.push('Z');
    }

    /// The 24 bytes, digit by digit: through `write!` the two times of each request
    /// (log line, ledger line) were ~5.6k instructions of ~125k (callgrind).
    fn bytes(&self) -> [u8; 24] {
        let Ok(since) = self.0.duration_since(UNIX_EPOCH) else {
            return *b"1970-01-01T00:00:00.000Z";
        };
        let (secs, ms) = (since.as_secs(), u64::from(since.subsec_millis()));
        if secs >= YEAR_10000 {
            return *b"9999-12-31T23:59:59.999Z";
        }
        let (y, m, d) = civil((secs / 86_400) as i64);
        let of_day = secs % 86_400;
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y as u64);
        put(5, 2, m as u64);
        put(8, 2, d as u64);
        put(11, 2, of_day / 3600);
        put(14, 2, of_day / 60 % 60);
        put(17, 2, of_day % 60);
        put(20, 3, ms);
        b
    }
}

/// Appends a text that changes once a second (`secs`), made by `make` only when the
/// second changed since this thread last asked `cache`: the answers' `Date` and the
/// log's times are written many times a second, their calendar arithmetic once.
pub fn push_per_second(
    cache: &'static LocalKey<RefCell<(u64, String)>>,
    secs: u64,
    out: &mut String,
    make: impl FnOnce(&mut String),
) {
    cache.with_borrow_mut(|(at, text)| {
        if *at != secs || text.is_empty() {
            text.clear();
            make(text);
            *at = secs;
        }
        out.push_str(text);
    });
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.bytes()).unwrap_or_default())
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(t: SystemTime) -> String {
    let mut s = String::with_capacity(24);
    Rfc3339(t).push_to(&mut s);
    s
}

/// `HH:MM UTC`: when something happened today, for messages.
pub fn utc_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{:02}:{:02} UTC", secs / 3600 % 24, secs / 60 % 60)
}

/// `HH:MM:SS UTC`: when something a few seconds off ends (a cool-down), for messages.
pub fn utc_clock(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYY-MM-DD HH:MM UTC`, for messages.
pub fn utc_datetime(t: SystemTime) -> String {
    format!("{} {}", date(days(t)), utc_time(t))
}

/// Reads `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC) into milliseconds since the epoch.
pub fn parse(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || !s.ends_with('Z') {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    ms += ((h * 60 + mi) * 60 + sec) * 1000;
    let frac = &s[19..s.len() - 1];
    if let Some(digits) = frac.strip_prefix('.') {
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let first3: String = digits.chars().chain("000".chars()).take(3).collect();
        ms += first3.parse::<i64>().ok()?;
    } else if !frac.is_empty() {
        return None;
    }
    Some(ms)
}

/// Reads a span like `30m`, `24h`, `7d` or `90s`.
pub fn parse_span(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        "w" => n.checked_mul(7 * 86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// The `YYYY-MM-DD` of days since the epoch.
pub fn date(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since the epoch of a civil date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of days since the epoch.
pub fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_outside_1970_to_9999_are_written_as_the_bounds() {
        let before = UNIX_EPOCH - std::time::Duration::from_secs(1);
        assert_eq!(Rfc3339(before).to_string(), "1970-01-01T00:00:00.000Z");
        let after = UNIX_EPOCH + std::time::Duration::from_secs(300_000_000_000);
        assert_eq!(Rfc3339(after).to_string(), "9999-12-31T23:59:59.999Z");
        let mut s = String::from("at ");
        Rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(1_796_182_812_123)).push_to(&mut s);
        assert_eq!(s, "at 2026-12-02T03:40:12.123Z");
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        let at = |secs: u64, ms: u64| {
            Rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms)).to_string()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(1_795_835_304, 123), "2026-11-28T03:08:24.123Z");
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn appended_times_agree_with_display_within_and_across_seconds() {
        // push_to keeps the text of the last second: the same second, the next one, an
        // earlier one, and the bounds must all come out as Display writes them.
        let ms = [
            1_796_182_812_123u64,
            1_796_182_812_999,
            1_796_182_813_000,
            1_796_182_812_001,
            951_782_400_007,
            253_402_300_799_999,
            253_402_300_800_000,
            0,
            // Again (the last time's text is kept), and a time after a bound.
            0,
            1_796_182_812_001,
            1_796_182_812_001,
            253_402_300_800_000,
            253_402_300_800_000,
            1_796_182_812_002,
        ];
        for m in ms {
            let t = UNIX_EPOCH + Duration::from_millis(m);
            let mut s = String::new();
            Rfc3339(t).push_to(&mut s);
            assert_eq!(s, Rfc3339(t).to_string(), "{m} ms");
        }
        let mut s = String::new();
        Rfc3339(UNIX_EPOCH - Duration::from_secs(5)).push_to(&mut s);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn calendar_agrees_with_http_dates_for_three_centuries() {
        // httpdate formats `Sun, 06 Nov 1994 08:49:37 GMT`; the same instant must give
        // the same day, month and year, every 7 days and 1 hour from 1970 to 2270.
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let mut secs = 0u64;
        while secs < 9_467_000_000 {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let http = httpdate::fmt_http_date(t);
            let parts: Vec<&str> = http.split(' ').collect();
            let month = MONTHS.iter().position(|m| *m == parts[2]).unwrap() + 1;
            let want = format!("{}-{month:02}-{}T{}.000Z", parts[3], parts[1], parts[4]);
            assert_eq!(Rfc3339(t).to_string(), want, "{http}");
            secs += 7 * 86_400 + 3600;
        }
    }

    #[test]
    fn message_times_read_as_people_write_them() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_182_980); // 2026-12-02 03:43 UTC
        assert_eq!(utc_datetime(t), "2026-12-02 03:43 UTC");
        assert_eq!(utc_time(t), "03:43 UTC");
        assert_eq!(
            utc_datetime(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00 UTC"
        );
    }

    #[test]
    fn timestamps_round_trip() {
        for ms in [0i64, 951_782_400_000, 1_796_182_812_123, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
            let s = rfc3339(t);
            assert_eq!(parse(&s), Some(ms), "{s}");
        }
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(parse("2026-12-02"), Some(1_796_169_600_000));
        assert_eq!(
            date(days(UNIX_EPOCH + Duration::from_secs(86_400 * 59))),
            "1970-03-01"
        );
        // A day ends at its last millisecond; before the epoch is day 0.
        let ms = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(days(ms(86_399_999)), 0);
        assert_eq!(days(ms(86_400_000)), 1);
        assert_eq!(days(ms(1_796_182_812_123)), 20_789);
        assert_eq!(days(UNIX_EPOCH - Duration::from_secs(1)), 0);
        for at in [0, 86_399_999, 86_400_000, 1_796_182_812_123] {
            let span = day_span(days(ms(at)));
            assert!(span.contains(&ms(at)), "{at}");
            assert_eq!(days(span.start), days(ms(at)));
            assert_eq!(days(span.end), days(ms(at)) + 1);
        }
    }

    #[test]
    fn bad_dates_and_spans_are_refused() {
        for bad in [
            "2026-13-01",
            "2026-1-01",
            "yesterday",
            "2026-12-02T10:00:00",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse_span("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_span("7d"), Some(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "7", "-1d", "1y"] {
            assert_eq!(parse_span(bad), None, "{bad}");
        }
    }
}
