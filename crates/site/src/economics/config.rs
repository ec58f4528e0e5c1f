//! `[economics]`: coin price (fixed or polled), fees, pool fee, facility overhead,
//! time-of-use tariffs per container, and the economic curtailment rule.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::cost::{LocalTime, Tariff, TariffPeriod, Weekdays};
use crate::config::ConfigError;

/// `[economics]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EconomicsConfigRaw {
    /// Currency of the price and the tariffs, default `USD` (a label only).
    pub currency: Option<String>,
    /// A fixed coin price per BTC; excludes `price_url`.
    pub price: Option<f64>,
    /// An `http://` or `https://` URL answering JSON with the price; excludes `price`.
    pub price_url: Option<String>,
    /// PEM file of extra trust anchors for an https `price_url` (besides the bundled roots).
    pub price_ca_file: Option<std::path::PathBuf>,
    /// JSON pointer to the price in the reply, e.g. `/bitcoin/usd`.
    pub price_pointer: Option<String>,
    /// Seconds between price polls, default 60.
    pub price_poll_secs: Option<f64>,
    /// Seconds after the last good price at which it is stale, default 900.
    pub price_max_age_secs: Option<f64>,
    /// Average transaction fees per block, BTC, default 0.
    pub fees_per_block_btc: Option<f64>,
    /// The pool's fee, percent, default 0.
    pub pool_fee_percent: Option<f64>,
    /// Facility overhead over the miners' own power (PUE − 1) until a meter tells, default 0.
    pub overhead: Option<f64>,
    /// Sleep a miner once its cost exceeds its revenue by this fraction, default 0.
    pub margin: Option<f64>,
    /// Wake it only once cost is under revenue × (1 + margin − hysteresis), default 0.05.
    pub hysteresis: Option<f64>,
    /// Least seconds between economic sleep and wake of one miner, default 900.
    pub min_dwell_secs: Option<f64>,
    /// Whether the rule acts (false: figures only), default true.
    pub curtail: Option<bool>,
    /// Local time offset for the tariff schedules, hours from UTC, default 0; excludes
    /// `timezone`.
    pub utc_offset_hours: Option<f64>,
    /// IANA time zone of the tariff schedules (`Europe/Berlin`), daylight saving included;
    /// excludes `utc_offset_hours`.
    pub timezone: Option<String>,
    /// `[[economics.tariffs]]`.
    #[serde(default)]
    pub tariffs: Vec<TariffRaw>,
}

/// One `[[economics.tariffs]]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffRaw {
    /// Tariff name.
    pub name: String,
    /// Containers it prices; empty: every container no other tariff names.
    #[serde(default)]
    pub containers: Vec<String>,
    /// Base price per kWh.
    pub per_kwh: f64,
    /// `[[economics.tariffs.periods]]`, first match wins.
    #[serde(default)]
    pub periods: Vec<TariffPeriodRaw>,
}

/// One `[[economics.tariffs.periods]]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffPeriodRaw {
    /// Period name (`peak`, `off_peak`).
    pub name: String,
    /// `"HH:MM"` local start.
    pub from: String,
    /// `"HH:MM"` local end (exclusive); at or before `from` it runs past midnight.
    pub to: String,
    /// Weekdays (`mon` … `sun`), default every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Price per kWh in the period.
    pub per_kwh: f64,
}

/// Where the coin price comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PriceSource {
    /// A fixed price from the config.
    Fixed(f64),
    /// Polled over HTTP.
    Http {
        /// The URL.
        url: String,
        /// JSON pointer to the number.
        pointer: String,
        /// Time between polls.
        poll: Duration,
        /// The TLS client for an `https://` URL.
        tls: Option<crate::tls::TlsClient>,
    },
}

/// The economic curtailment rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EconomicRule {
    /// Sleep when cost / revenue > 1 + margin.
    pub margin: f64,
    /// Wake when cost / revenue < 1 + margin − hysteresis.
    pub hysteresis: f64,
    /// Least time between an economic sleep and the wake after it (and the reverse).
    pub min_dwell: Duration,
}

/// `[economics]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct EconomicsConfig {
    /// Currency label of price, tariffs and revenue.
    pub currency: String,
    /// The coin price source.
    pub price: PriceSource,
    /// Age after which a polled price is stale: the rule then holds its last decisions.
    pub price_max_age: Duration,
    /// Average fees per block, satoshis.
    pub fees_sats: f64,
    /// Pool fee as a fraction.
    pub pool_fee: f64,
    /// PUE − 1 assumed until a container meter measures it.
    pub overhead: f64,
    /// The curtailment rule; `None` when `curtail = false`.
    pub rule: Option<EconomicRule>,
    /// Tariffs with the containers they price (empty: the default tariff).
    pub tariffs: Vec<(Tariff, Vec<String>)>,
}

impl EconomicsConfig {
    /// The tariff of a container: the one naming it, else the one naming none.
    pub fn tariff_for(&self, container: &str) -> Option<&Tariff> {
        self.tariffs
            .iter()
            .find(|(_, names)| names.iter().any(|n| n == container))
            .or_else(|| self.tariffs.iter().find(|(_, names)| names.is_empty()))
            .map(|(t, _)| t)
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid(format!("economics.{field}"), reason)
}

fn non_negative(field: &str, v: Option<f64>, default: f64) -> Result<f64, ConfigError> {
    let v = v.unwrap_or(default);
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(invalid(field, format!("{v} must be a number ≥ 0")))
    }
}

fn duration(field: &str, v: Option<f64>, default: f64) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    if v.is_finite() && v > 0.0 && v < 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(invalid(
            field,
            format!("{v} must be a positive number of seconds"),
        ))
    }
}

fn minute_of_day(field: &str, text: &str) -> Result<u16, ConfigError> {
    let bad = || {
        invalid(
            field,
            format!("{text:?} is not a time of day HH:MM (00:00 to 24:00)"),
        )
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl EconomicsConfigRaw {
    /// Checks every field; `containers` are the power inventory's, which tariffs may name.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field under `economics.`.
    pub fn validate(&self, containers: &[Arc<str>]) -> Result<EconomicsConfig, ConfigError> {
        let price = match (self.price, &self.price_url) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "price",
                    "and economics.price_url exclude each other",
                ));
            }
            (None, None) => {
                return Err(invalid("price", "is required (or economics.price_url)"));
            }
            (Some(p), None) => {
                if !(p.is_finite() && p > 0.0) {
                    return Err(invalid("price", format!("{p} must be a positive number")));
                }
                PriceSource::Fixed(p)
            }
            (None, Some(url)) => {
                let https = url.starts_with("https://");
                if !(https || url.starts_with("http://")) || reqwest::Url::parse(url).is_err() {
                    return Err(invalid(
                        "price_url",
                        format!("{url:?} is not an http:// or https:// URL"),
                    ));
                }
                let tls = if https {
                    let settings = crate::tls::TlsSettings {
                        ca_file: self.price_ca_file.clone(),
                        ..crate::tls::TlsSettings::default()
                    };
                    Some(
                        crate::tls::TlsClient::new(settings)
                            .map_err(|e| invalid("price_ca_file", e.to_string()))?,
                    )
                } else if self.price_ca_file.is_some() {
                    return Err(invalid("price_ca_file", "only for an https:// price_url"));
                } else {
                    None
                };
                let pointer = self.price_pointer.clone().unwrap_or_default();
                if !(pointer.is_empty() || pointer.starts_with('/')) {
                    return Err(invalid("price_pointer", "must be empty or start with /"));
                }
                PriceSource::Http {
                    url: url.clone(),
                    pointer,
                    poll: duration("price_poll_secs", self.price_poll_secs, 60.0)?,
                    tls,
                }
            }
        };
        if self.price_url.is_none() && self.price_pointer.is_some() {
            return Err(invalid("price_pointer", "needs economics.price_url"));
        }
        let pool_fee = non_negative("pool_fee_percent", self.pool_fee_percent, 0.0)?;
        if pool_fee >= 100.0 {
            return Err(invalid("pool_fee_percent", "must be below 100"));
        }
        let margin = non_negative("margin", self.margin, 0.0)?;
        let hysteresis = non_negative("hysteresis", self.hysteresis, 0.05)?;
        if hysteresis >= 1.0 + margin {
            return Err(invalid("hysteresis", "must be below 1 + economics.margin"));
        }
        let rule = EconomicRule {
            margin,
            hysteresis,
            min_dwell: duration("min_dwell_secs", self.min_dwell_secs, 900.0)?,
        };
        let local = match (&self.timezone, self.utc_offset_hours) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "timezone",
                    "give timezone or utc_offset_hours, not both",
                ));
            }
            (Some(name), None) => match jiff::tz::TimeZone::get(name) {
                Ok(tz) => LocalTime::Zone(tz),
                Err(_) => {
                    return Err(invalid(
                        "timezone",
                        format!("{name:?} is not an IANA time zone (e.g. \"Europe/Berlin\")"),
                    ));
                }
            },
            (None, offset_hours) => {
                let offset_hours = offset_hours.unwrap_or(0.0);
                if !(offset_hours.is_finite() && (-14.0..=14.0).contains(&offset_hours)) {
                    return Err(invalid("utc_offset_hours", "must be from -14 to 14"));
                }
                LocalTime::Fixed((offset_hours * 60.0).round() as i32)
            }
        };
        let mut tariffs = Vec::with_capacity(self.tariffs.len());
        let mut defaults = 0;
        for (i, t) in self.tariffs.iter().enumerate() {
            let at = |f: &str| format!("tariffs[{i}].{f}");
            if t.name.trim().is_empty() {
                return Err(invalid(&at("name"), "must not be empty"));
            }
            if !(t.per_kwh.is_finite() && t.per_kwh >= 0.0) {
                return Err(invalid(&at("per_kwh"), "must be a number ≥ 0"));
            }
            if t.containers.is_empty() {
                defaults += 1;
                if defaults > 1 {
                    return Err(invalid(
                        &at("containers"),
                        "only one tariff may leave containers empty (the default)",
                    ));
                }
            }
            for name in &t.containers {
                if !containers.iter().any(|c| **c == **name) {
                    return Err(invalid(
                        &at("containers"),
                        format!("no container {name:?} in [power]"),
                    ));
                }
                let earlier = self.tariffs[..i]
                    .iter()
                    .any(|o| o.containers.contains(name));
                if earlier {
                    return Err(invalid(
                        &at("containers"),
                        format!("container {name:?} already has a tariff"),
                    ));
                }
            }
            let mut periods = Vec::with_capacity(t.periods.len());
            for (j, p) in t.periods.iter().enumerate() {
                let at = |f: &str| format!("tariffs[{i}].periods[{j}].{f}");
                if !(p.per_kwh.is_finite() && p.per_kwh >= 0.0) {
                    return Err(invalid(&at("per_kwh"), "must be a number ≥ 0"));
                }
                let from_minute = minute_of_day(&at("from"), &p.from)?;
                let to_minute = minute_of_day(&at("to"), &p.to)?;
                let mut days = Vec::with_capacity(p.days.len());
                for d in &p.days {
                    let n = Weekdays::NAMES
                        .iter()
                        .position(|n| n.eq_ignore_ascii_case(d))
                        .ok_or_else(|| {
                            invalid(
                                &at("days"),
                                format!("{d:?} is not one of mon, tue, wed, thu, fri, sat, sun"),
                            )
                        })?;
                    days.push(n as u8);
                }
                periods.push(TariffPeriod {
                    name: Arc::from(p.name.as_str()),
                    days: if days.is_empty() {
                        Weekdays::ALL
                    } else {
                        Weekdays::of(days)
                    },
                    from_minute,
                    to_minute: to_minute % (24 * 60),
                    per_kwh: p.per_kwh,
                });
            }
            tariffs.push((
                Tariff {
                    name: Arc::from(t.name.as_str()),
                    base_per_kwh: t.per_kwh,
                    periods,
                    local: local.clone(),
                },
                t.containers.clone(),
            ));
        }
        Ok(EconomicsConfig {
            currency: self.currency.clone().unwrap_or_else(|| "USD".to_owned()),
            price,
            price_max_age: duration("price_max_age_secs", self.price_max_age_secs, 900.0)?,
            fees_sats: non_negative("fees_per_block_btc", self.fees_per_block_btc, 0.0)?
                * super::SATS_PER_BTC,
            pool_fee: pool_fee / 100.0,
            overhead: non_negative("overhead", self.overhead, 0.0)?,
            rule: self.curtail.unwrap_or(true).then_some(rule),
            tariffs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EconomicsConfig, ConfigError> {
        let raw: EconomicsConfigRaw = toml::from_str(text).unwrap();
        raw.validate(&[Arc::from("c1"), Arc::from("c2")])
    }

    #[test]
    fn full_section() {
        let c = parse(
            r#"
            price_url = "http://127.0.0.1:9/price"
            price_pointer = "/bitcoin/usd"
            fees_per_block_btc = 0.25
            pool_fee_percent = 2
            overhead = 0.1
            margin = 0.05
            utc_offset_hours = 1
            [[tariffs]]
            name = "grid"
            per_kwh = 0.05
            [[tariffs.periods]]
            name = "peak"
            from = "17:00"
            to = "21:00"
            days = ["mon", "Tue"]
            per_kwh = 0.2
            [[tariffs]]
            name = "solar"
            containers = ["c2"]
            per_kwh = 0.01
            "#,
        )
        .unwrap();
        assert!(
            matches!(c.price, PriceSource::Http { ref pointer, .. } if pointer == "/bitcoin/usd")
        );
        assert_eq!(c.fees_sats, 25_000_000.0);
        assert!((c.pool_fee - 0.02).abs() < 1e-12);
        assert_eq!(c.tariff_for("c1").map(|t| &*t.name), Some("grid"));
        assert_eq!(c.tariff_for("c2").map(|t| &*t.name), Some("solar"));
        let grid = c.tariff_for("c1").unwrap();
        assert_eq!(grid.local, LocalTime::Fixed(60));
        assert_eq!(grid.periods[0].from_minute, 17 * 60);
        assert!(grid.periods[0].days.contains(1) && !grid.periods[0].days.contains(2));
        assert_eq!(c.rule.map(|r| r.min_dwell), Some(Duration::from_secs(900)));
    }

    #[test]
    fn an_https_price_source_gets_a_tls_client() {
        let c = parse("price_url = \"https://prices.example/btc\"").unwrap();
        assert!(matches!(c.price, PriceSource::Http { tls: Some(_), .. }));
        let c = parse("price_url = \"http://prices.example/btc\"").unwrap();
        assert!(matches!(c.price, PriceSource::Http { tls: None, .. }));
    }

    #[test]
    fn bad_fields_are_named() {
        let field = |text: &str| match parse(text) {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(""), "economics.price");
        assert_eq!(
            field("price = 1\nprice_url = \"http://x\""),
            "economics.price"
        );
        assert_eq!(field("price = -1"), "economics.price");
        assert_eq!(field("price_url = \"ftp://x\""), "economics.price_url");
        assert_eq!(field("price_url = \"ftp://x/p\""), "economics.price_url");
        assert_eq!(
            field("price_url = \"http://x/p\"\nprice_ca_file = \"ca.pem\""),
            "economics.price_ca_file"
        );
        let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-ca.pem");
        assert_eq!(
            field(&format!(
                "price_url = \"https://x/p\"\nprice_ca_file = \"{missing}\""
            )),
            "economics.price_ca_file"
        );
        assert_eq!(
            field("price = 1\npool_fee_percent = 100"),
            "economics.pool_fee_percent"
        );
        assert_eq!(
            field("price = 1\n[[tariffs]]\nname = \"a\"\ncontainers = [\"nope\"]\nper_kwh = 1"),
            "economics.tariffs[0].containers"
        );
        assert_eq!(
            field(
                "price = 1\n[[tariffs]]\nname = \"a\"\nper_kwh = 1\n[[tariffs.periods]]\nname = \"p\"\nfrom = \"25:00\"\nto = \"01:00\"\nper_kwh = 1"
            ),
            "economics.tariffs[0].periods[0].from"
        );
        assert_eq!(
            field(
                "price = 1\n[[tariffs]]\nname = \"a\"\nper_kwh = 1\n[[tariffs]]\nname = \"b\"\nper_kwh = 1"
            ),
            "economics.tariffs[1].containers"
        );
        assert_eq!(
            field("price = 1\ntimezone = \"Mars/Olympus\""),
            "economics.timezone"
        );
        assert_eq!(
            field("price = 1\ntimezone = \"Europe/Berlin\"\nutc_offset_hours = 1"),
            "economics.timezone"
        );
    }

    #[test]
    fn a_timezone_is_looked_up_in_the_bundled_database() {
        let c = parse(
            "price = 1\ntimezone = \"Europe/Berlin\"\n[[tariffs]]\nname = \"g\"\nper_kwh = 1",
        )
        .unwrap();
        let grid = c.tariff_for("c1").unwrap();
        assert_eq!(grid.local.label(), "Europe/Berlin");
        // 2025-07-16 12:00 UTC: CEST, two hours ahead.
        assert_eq!(grid.local.offset_secs(1_752_667_200), 7200);
    }
}
