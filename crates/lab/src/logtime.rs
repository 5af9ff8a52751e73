//! The instant a had log line was written, from its RFC 3339 UTC stamp: lab tests and the
//! bench time had's decisions from its own log against what the client saw.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall-clock time of a log line starting with `2026-12-02T11:23:25.123456Z`.
pub fn log_stamp(line: &str) -> Option<SystemTime> {
    let word = line.split_whitespace().next()?;
    let (date, time) = word.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, mi) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || !s.is_finite() || s < 0.0 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?) + Duration::from_secs_f64(s))
}

/// The stamp of the last line of `log[from..]` containing `needle`.
pub fn last_stamp(log: &str, from: usize, needle: &str) -> Option<SystemTime> {
    log.get(from..)?
        .lines()
        .rev()
        .find(|l| l.contains(needle))
        .and_then(log_stamp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        let t = log_stamp("2026-12-02T11:23:25.5Z had[1]: x").unwrap();
        let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        // date -u -d 2026-12-02T11:23:25Z +%s
        assert!((secs - 1_796_210_605.5).abs() < 1e-6, "{secs}");
        assert!(log_stamp("Dec 02 11:23:25 node1 heartbeat").is_none());
        assert!(log_stamp("2026-13-02T11:23:25Z").is_none());
        let log = "2026-12-02T00:00:01Z a\n2026-12-02T00:00:02Z a\n2026-12-02T00:00:03Z b\n";
        let a = last_stamp(log, 0, " a").unwrap();
        assert_eq!(a.duration_since(UNIX_EPOCH).unwrap().as_secs() % 86_400, 2);
        assert!(last_stamp(log, log.len(), " a").is_none());
    }
}
