//! Reads a container's feed meter over HTTP: a JSON number (at a pointer) or one sample of
//! Prometheus text, as meter gateways and site PLC bridges commonly expose.

use crate::power::inventory::{Address, MeterFormat, MeterSpec};

/// Largest meter reply read: a Prometheus page of a busy gateway fits easily.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Why a meter reading could not be taken.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MeterError {
    /// The meter did not answer, refused, or answered with an HTTP error.
    #[error("meter {address}: {problem}")]
    Transport {
        /// Where the meter was read.
        address: String,
        /// What went wrong.
        problem: String,
    },
    /// The body did not hold the configured reading.
    #[error("meter {address}: {problem}")]
    Body {
        /// Where the meter was read.
        address: String,
        /// What is missing or malformed.
        problem: String,
    },
}

/// Extracts the reading from a meter body, before scaling to watts.
///
/// # Errors
/// A text saying what is missing or malformed.
pub fn parse_reading(format: &MeterFormat, body: &str) -> Result<f64, String> {
    match format {
        MeterFormat::Json { pointer } => {
            let value: serde_json::Value =
                serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
            let at = value
                .pointer(pointer)
                .ok_or_else(|| format!("no value at JSON pointer \"{pointer}\""))?;
            match at {
                serde_json::Value::Number(n) => n
                    .as_f64()
                    .ok_or_else(|| format!("value at \"{pointer}\" is not a finite number")),
                // Some gateways quote their numbers.
                serde_json::Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("value at \"{pointer}\" is not a number: {s:?}")),
                other => Err(format!("value at \"{pointer}\" is not a number: {other}")),
            }
        }
        MeterFormat::Prometheus { metric } => prometheus_sample(body, metric)
            .ok_or_else(|| format!("no sample of metric \"{metric}\""))?,
    }
}

/// The first sample of `metric` in Prometheus text format (labels allowed, ignored).
fn prometheus_sample(body: &str, metric: &str) -> Option<Result<f64, String>> {
    body.lines().map(str::trim).find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let rest = line.strip_prefix(metric)?;
        let rest = if let Some(labelled) = rest.strip_prefix('{') {
            // Label values may hold `}` inside quotes; the last `}` closes the set.
            labelled.get(labelled.rfind('}')? + 1..)?
        } else if rest.starts_with([' ', '\t']) {
            rest
        } else {
            // A longer name sharing the prefix (`power_watts_total` for `power_watts`).
            return None;
        };
        let value = rest.split_whitespace().next()?;
        Some(
            value
                .parse::<f64>()
                .map_err(|_| format!("sample of \"{metric}\" is not a number: {value:?}")),
        )
    })
}

/// The URL of a meter.
pub fn meter_url(spec: &MeterSpec) -> String {
    match &spec.address {
        Address::Socket(addr) => format!("http://{addr}{}", spec.path),
        Address::Host { host, port } => format!("http://{host}:{port}{}", spec.path),
    }
}

/// Takes one reading from a meter, in watts.
///
/// # Errors
/// [`MeterError::Transport`] when the meter cannot be reached in time or answers with an HTTP
/// error; [`MeterError::Body`] when its reply lacks the reading.
pub async fn read_meter(http: &reqwest::Client, spec: &MeterSpec) -> Result<f64, MeterError> {
    let address = spec.address.to_string();
    let transport = |problem: String| MeterError::Transport {
        address: address.clone(),
        problem,
    };
    let resp = http
        .get(meter_url(spec))
        .send()
        .await
        .map_err(|e| transport(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(transport(format!("HTTP status {}", resp.status())));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(transport("reply too large".into()));
    }
    let bytes = resp.bytes().await.map_err(|e| transport(e.to_string()))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(transport("reply too large".into()));
    }
    let body = String::from_utf8_lossy(&bytes);
    let reading = parse_reading(&spec.format, &body).map_err(|problem| MeterError::Body {
        address: address.clone(),
        problem,
    })?;
    Ok(reading * spec.scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(pointer: &str) -> MeterFormat {
        MeterFormat::Json {
            pointer: pointer.into(),
        }
    }

    fn prom(metric: &str) -> MeterFormat {
        MeterFormat::Prometheus {
            metric: metric.into(),
        }
    }

    #[test]
    fn json_bare_number_and_pointer() {
        assert_eq!(parse_reading(&json(""), " 1234.5\n"), Ok(1234.5));
        let body = r#"{"StatusSNS":{"ENERGY":{"Power":"812"}},"ok":true}"#;
        assert_eq!(
            parse_reading(&json("/StatusSNS/ENERGY/Power"), body),
            Ok(812.0)
        );
        let err = parse_reading(&json("/ok"), body).unwrap_err();
        assert!(err.contains("not a number"), "{err}");
        let err = parse_reading(&json("/missing"), body).unwrap_err();
        assert!(err.contains("/missing"), "{err}");
        assert!(parse_reading(&json(""), "<html>").is_err());
    }

    #[test]
    fn prometheus_first_sample_skips_comments_and_longer_names() {
        let body = "# HELP feed_power_watts Feed power\n\
                    # TYPE feed_power_watts gauge\n\
                    feed_power_watts_total 99\n\
                    feed_power_watts{phase=\"all\",note=\"a}b\"} 1.48e6 1700000000000\n\
                    feed_power_watts{phase=\"l1\"} 5\n";
        assert_eq!(parse_reading(&prom("feed_power_watts"), body), Ok(1.48e6));
        assert_eq!(
            parse_reading(&prom("feed_power_watts_total"), body),
            Ok(99.0)
        );
        assert_eq!(parse_reading(&prom("x"), "x 12\n"), Ok(12.0));
        let err = parse_reading(&prom("absent"), body).unwrap_err();
        assert!(err.contains("absent"), "{err}");
        assert!(parse_reading(&prom("x"), "x twelve\n").is_err());
    }
}
