//! The one duration syntax of every flag (`hashgate demo --duration 90s`,
//! `hashgate-loadgen --duration 2s`, `--timeout 500ms`).

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not a duration: {reason} (write e.g. 500ms, 30s, 2m, 1h30m, or plain seconds)"
)]
pub struct DurationError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a positive duration: one or more `<number><unit>` parts with units `ms`, `s`, `m`,
/// `h` (`1h30m`, `1.5s`, `250ms`), or a bare number of seconds (`90`, `0.5`), as the
/// config file's `*_secs` fields take them.
///
/// # Errors
/// [`DurationError`] for anything else, zero, a negative or an out-of-range value.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        given: text.to_owned(),
        reason,
    };
    let rest = text.trim();
    if rest.is_empty() {
        return Err(fail("it is empty"));
    }
    if let Ok(secs) = rest.parse::<f64>() {
        return from_secs(secs).ok_or_else(|| fail("it must be a positive number of seconds"));
    }
    let mut total = 0.0_f64;
    let mut rest = rest;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| fail("the last number has no unit"))?;
        let (number, after) = rest.split_at(number_end);
        let value: f64 = number
            .parse()
            .map_err(|_| fail("each part must start with a number"))?;
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(fail("the units are ms, s, m and h")),
        };
        total += value * scale;
        rest = after.trim_start();
    }
    from_secs(total).ok_or_else(|| fail("it must be positive"))
}

fn from_secs(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_operators_write_them() {
        let ok = [
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("45", 45_000),
            ("0.5", 500),
            ("1.5m", 90_000),
            ("250ms", 250),
            ("1h30m", 5_400_000),
            ("1m 30s", 90_000),
            (" 2s ", 2_000),
            ("5 ", 5_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in [
            "", "0s", "0", "-3s", "-3", "3d", "soon", "s", "1.2.3s", "NaN", "inf", "5s3",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let err = parse_duration("3d").unwrap_err().to_string();
        assert!(err.contains("\"3d\"") && err.contains("30s"), "{err}");
    }
}
