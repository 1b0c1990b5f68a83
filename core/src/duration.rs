//! Human durations, as the CLI and the HTTP API read them: `500ms`, `30s`, `1m`, `2h`, and sums
//! such as `1m30s`.
//!
//! Every number needs a unit: a bare `30` is refused rather than guessed (seconds? ms?), because
//! a TTL read in the wrong unit is a lock held 1000 times too long or too short.

use std::time::Duration;

const UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// Parses a duration such as `500ms`, `30s`, `1m`, `2h` or `1m30s`. Zero (`0s`) is allowed.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("a duration is required, e.g. 30s, 500ms, 1m or 2h".into());
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{text:?} is not a duration: expected a whole number then a unit (ms, s, m, h), e.g. 30s"
            ));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| format!("{text:?} is too large a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!("{text:?} has no unit: write it as {number}s, {number}ms, {number}m or {number}h"));
        }
        let Some(&(_, ms_per_unit)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!("{text:?} has an unknown unit {unit:?}: use ms, s, m or h"));
        };
        total_ms = number
            .checked_mul(ms_per_unit)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("{text:?} is too large a duration"))?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses a duration that must be more than zero (TTLs, call deadlines).
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    let d = parse(text)?;
    if d.is_zero() {
        return Err(format!("{text:?} is zero: it must be more than zero, e.g. 30s"));
    }
    Ok(d)
}

/// Formats a duration the way [`parse`] reads it: `1m30s`, `500ms`, `0s`. Below a millisecond
/// is dropped.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (name, per) in UNITS.iter().rev() {
        let per = u128::from(*per);
        if ms >= per {
            out.push_str(&format!("{}{name}", ms / per));
            ms %= per;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_is_read() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse(" 10s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn parts_add_up() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h1m1s1ms"), Ok(Duration::from_millis(3_661_001)));
    }

    #[test]
    fn a_number_without_a_unit_is_refused_with_the_fix() {
        let e = parse("5").unwrap_err();
        assert!(e.contains("no unit") && e.contains("5s"), "{e}");
        let e = parse("1m30").unwrap_err();
        assert!(e.contains("no unit") && e.contains("30s"), "{e}");
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in ["", "s", "-1s", "1.5s", "10 s", "5d", "5sec", "99999999999999999999s", "18446744073709551615h"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse("5d").unwrap_err().contains("unknown unit \"d\""));
    }

    #[test]
    fn zero_is_refused_where_a_positive_duration_is_needed() {
        assert!(parse_positive("0s").unwrap_err().contains("more than zero"));
        assert!(parse_positive("0ms").is_err());
        assert_eq!(parse_positive("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn formatting_round_trips() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(7_200_250), "2h250ms"),
        ] {
            assert_eq!(format(d), text);
            assert_eq!(parse(text), Ok(d));
        }
        assert_eq!(format(Duration::from_micros(1_500)), "1ms");
    }
}
