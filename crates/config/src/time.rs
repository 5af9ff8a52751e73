//! Heartbeat's time syntax (`cl_get_msec`): a decimal number of seconds, or of milliseconds /
//! microseconds with `ms`/`msec`/`us`/`usec`, rounded to whole milliseconds.

use std::time::Duration;

use thiserror::Error;

/// Why a time value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeError {
    /// No digits where a number was expected.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// A unit Heartbeat does not know (`s`, `sec`, `min`, ...).
    #[error("unknown time unit `{unit}` in `{text}`")]
    BadUnit {
        /// The whole value.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// Too large to represent.
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl TimeError {
    /// A fix for the value, in the user's own numbers where possible.
    pub fn help(&self) -> String {
        match self {
            TimeError::BadUnit { text, unit } if matches!(unit.as_str(), "s" | "sec" | "secs") => {
                let num = &text[..text.len() - unit.len()];
                match parse_number(num, 1_000_000_000) {
                    Some(ns) => format!(
                        "write `{num}` (seconds) or `{}ms`: a bare number means seconds and Heartbeat rejects an `s` suffix",
                        ns / 1_000_000
                    ),
                    None => generic_help(),
                }
            }
            _ => generic_help(),
        }
    }
}

fn generic_help() -> String {
    "write `5` (seconds) or `500ms`; units are `ms`, `msec`, `us`, `usec`, none = seconds"
        .to_string()
}

/// Parses a Heartbeat time value (`5`, `0.5`, `500ms`, `250000us`).
pub fn parse_hb_time(text: &str) -> Result<Duration, TimeError> {
    parse_with_units(text, false)
}

/// Parses a had.toml time value: Heartbeat's syntax plus an `s` suffix (`2s`).
pub fn parse_toml_time(text: &str) -> Result<Duration, TimeError> {
    parse_with_units(text, true)
}

fn parse_with_units(text: &str, allow_s: bool) -> Result<Duration, TimeError> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    if !num.bytes().any(|b| b.is_ascii_digit()) {
        return Err(TimeError::NotANumber(text.to_string()));
    }
    let nanos_per_unit: u128 = match unit {
        "" => 1_000_000_000,
        "s" if allow_s => 1_000_000_000,
        "ms" | "msec" => 1_000_000,
        "us" | "usec" => 1_000,
        _ => {
            return Err(TimeError::BadUnit {
                text: text.to_string(),
                unit: unit.to_string(),
            });
        }
    };
    let nanos =
        parse_number(num, nanos_per_unit).ok_or_else(|| TimeError::NotANumber(text.to_string()))?;
    let millis = (nanos + 500_000) / 1_000_000;
    let millis = u64::try_from(millis).map_err(|_| TimeError::TooLarge(text.to_string()))?;
    Ok(Duration::from_millis(millis))
}

/// `digits[.digits]` times `scale`, exactly; `None` on a second dot or overflow.
fn parse_number(num: &str, scale: u128) -> Option<u128> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) if !f.contains('.') => (i, f),
        Some(_) => return None,
        None => (num, ""),
    };
    let mut value: u128 = 0;
    for b in int.bytes() {
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    value = value.checked_mul(scale)?;
    let mut unit = scale;
    for b in frac.bytes() {
        // Digits below a nanosecond cannot change the rounded result.
        if unit < 10 {
            break;
        }
        unit /= 10;
        value = value.checked_add(u128::from(b - b'0') * unit)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn heartbeat_units() {
        assert_eq!(parse_hb_time("5"), Ok(ms(5000)));
        assert_eq!(parse_hb_time("0.5"), Ok(ms(500)));
        assert_eq!(parse_hb_time(".25"), Ok(ms(250)));
        assert_eq!(parse_hb_time("1."), Ok(ms(1000)));
        assert_eq!(parse_hb_time("500ms"), Ok(ms(500)));
        assert_eq!(parse_hb_time("500msec"), Ok(ms(500)));
        assert_eq!(parse_hb_time("250000us"), Ok(ms(250)));
        assert_eq!(parse_hb_time("1500usec"), Ok(ms(2)));
        assert_eq!(parse_hb_time("1.0004"), Ok(ms(1000)));
        assert_eq!(parse_hb_time("0"), Ok(ms(0)));
    }

    #[test]
    fn s_suffix_is_refused_with_a_concrete_fix() {
        let e = parse_hb_time("5s").unwrap_err();
        assert!(matches!(e, TimeError::BadUnit { ref unit, .. } if unit == "s"));
        assert!(
            e.help().contains("write `5` (seconds) or `5000ms`"),
            "{}",
            e.help()
        );
        assert!(parse_hb_time("2min").is_err());
        assert!(parse_hb_time("500 ms").is_err());
        assert!(parse_hb_time("MS").is_err());
        assert!(parse_hb_time("1.2.3").is_err());
        assert!(parse_hb_time("").is_err());
        assert!(parse_hb_time("-1").is_err());
        assert!(matches!(
            parse_hb_time("99999999999999999999999999999999999999999"),
            Err(TimeError::NotANumber(_) | TimeError::TooLarge(_))
        ));
    }

    #[test]
    fn toml_also_takes_seconds_suffix() {
        assert_eq!(parse_toml_time("2s"), Ok(ms(2000)));
        assert_eq!(parse_toml_time("200ms"), Ok(ms(200)));
        assert_eq!(parse_toml_time("1"), Ok(ms(1000)));
        assert!(parse_toml_time("2h").is_err());
    }
}
