//! Points in time on the command line (`consume --from`, `group reset --to`,
//! `message query --begin/--end`): `first` and `last`, an RFC 3339 time, a local date and time
//! without a zone, milliseconds since the epoch, or a time relative to now.

use anyhow::Result;
use chrono::{Local, NaiveDateTime, TimeZone};

/// A position in a queue, or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePoint {
    /// The oldest stored message.
    First,
    /// The end of the queue.
    Last,
    /// Milliseconds since the epoch.
    At(i64),
}

/// What the time forms look like, for error messages.
pub const TIME_FORMS: &str = "an RFC 3339 time (2024-05-01T12:00:00Z), a local time (2024-05-01T12:00:00 or '2024-05-01 12:00'), milliseconds since the epoch, or a time relative to now (-30s, -15m, -1h30m, -2d)";

/// Local date-time layouts accepted without a zone.
const LOCAL_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

/// Reads a point: `first`/`earliest`, `last`/`latest`, or a time ([`parse_time`]).
/// `None` when the text is none of them.
pub fn parse_point(text: &str, now_ms: i64) -> Option<TimePoint> {
    match text.trim().to_ascii_lowercase().as_str() {
        "first" | "earliest" => Some(TimePoint::First),
        "last" | "latest" => Some(TimePoint::Last),
        _ => parse_time(text, now_ms).map(TimePoint::At),
    }
}

/// Reads a time as milliseconds since the epoch: RFC 3339, a local date-time without zone
/// (in this machine's time zone), digits (epoch milliseconds), or `-<duration>` before
/// `now_ms` (`-1h30m`).
pub fn parse_time(text: &str, now_ms: i64) -> Option<i64> {
    let text = text.trim();
    if let Some(relative) = text.strip_prefix('-') {
        return parse_duration_ms(relative).map(|ago| now_ms.saturating_sub(ago));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .and_then(|naive| Local.from_local_datetime(&naive).earliest())
        .map(|t| t.timestamp_millis())
}

/// [`parse_time`], failing with a message that names the option.
pub fn time_option(option: &str, text: &str, now_ms: i64) -> Result<i64> {
    parse_time(text, now_ms)
        .ok_or_else(|| anyhow::anyhow!("invalid {option} {text:?}: expected {TIME_FORMS}"))
}

/// `1h30m`, `45s`, `2d` → milliseconds; `None` when malformed.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    if text.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit_ms: i64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => return None,
        };
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(n.checked_mul(unit_ms)?)?;
    }
    digits.is_empty().then_some(total)
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_times() {
        let now = 1_714_564_800_000; // 2024-05-01T12:00:00Z
        let local = |s: &str| {
            let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").expect("naive");
            Local
                .from_local_datetime(&naive)
                .earliest()
                .expect("local")
                .timestamp_millis()
        };
        let cases: [(&str, TimePoint); 12] = [
            ("first", TimePoint::First),
            (" Earliest ", TimePoint::First),
            ("LAST", TimePoint::Last),
            ("-90s", TimePoint::At(now - 90_000)),
            ("-1h30m", TimePoint::At(now - 5_400_000)),
            ("2024-05-01T11:00:00Z", TimePoint::At(now - 3_600_000)),
            ("2024-05-01T14:00:00.5+02:00", TimePoint::At(now + 500)),
            ("1714564800000", TimePoint::At(now)),
            (
                "2024-05-01T10:00:00",
                TimePoint::At(local("2024-05-01 10:00:00")),
            ),
            (
                "2024-05-01 10:00:00.250",
                TimePoint::At(local("2024-05-01 10:00:00.250")),
            ),
            (
                "2024-05-01T10:00",
                TimePoint::At(local("2024-05-01 10:00:00")),
            ),
            (
                "2024-05-01 10:00",
                TimePoint::At(local("2024-05-01 10:00:00")),
            ),
        ];
        for (text, expect) in cases {
            assert_eq!(parse_point(text, now), Some(expect), "{text}");
        }
        for bad in [
            "",
            "-",
            "-1",
            "-1x",
            "-h",
            "1h",
            "yesterday",
            "2024-05-01",
            "2024-13-01T00:00",
        ] {
            assert_eq!(parse_point(bad, now), None, "{bad}");
        }
        let e = time_option("--begin", "soon", now).expect_err("bad");
        assert!(
            e.to_string()
                .starts_with("invalid --begin \"soon\": expected an RFC 3339")
        );
    }
}
