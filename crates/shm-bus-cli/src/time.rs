//! Clock readings and how they print: nanoseconds since the epoch, "N s
//! ago", RFC 3339 dates (civil-from-days date maths, no dependency).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the Unix epoch (the bus's timestamps).
pub(crate) fn now_ns() -> u64 {
    ns_since_epoch(SystemTime::now())
}

/// `t` in nanoseconds since the Unix epoch; 0 before it.
pub(crate) fn ns_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Whole seconds from `then_ns` to `now_ns`, or `None` for "never" (0).
pub(crate) fn secs_ago(now_ns: u64, then_ns: u64) -> Option<u64> {
    (then_ns != 0).then(|| now_ns.saturating_sub(then_ns) / 1_000_000_000)
}

/// "N s ago", or "never" for 0.
pub(crate) fn ago(now_ns: u64, then_ns: u64) -> String {
    match secs_ago(now_ns, then_ns) {
        None => "never".into(),
        Some(s) => format!("{s} s ago"),
    }
}

/// RFC 3339 UTC text of a time, to the second: `2026-11-21T08:20:25Z`.
/// Times before the epoch print as the epoch.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month (1..=12) and day (1..=31) of a day count since 1970-01-01
/// in the proleptic Gregorian calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let at = |secs| rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}
