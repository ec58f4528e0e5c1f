//! What a hash costs: a miner's J/TH × the container's tariff × PUE, and the two figures
//! operators steer by: the shutdown price and the break-even tariff.

use std::sync::Arc;

use super::revenue::{Revenue, SATS_PER_BTC};

/// kWh in one J/TH sustained at 1 TH/s for a day: 86,400 J / 3,600,000 J per kWh.
pub const KWH_PER_JTH_DAY: f64 = 86_400.0 / 3_600_000.0;

/// Energy cost per TH/s per day for a miner of `joules_per_th`, at `per_kwh` and `pue`
/// (facility energy / IT energy, ≥ 1).
pub fn cost_per_th_day(joules_per_th: f64, per_kwh: f64, pue: f64) -> f64 {
    joules_per_th * KWH_PER_JTH_DAY * per_kwh * pue
}

/// The cost of `it_kwh` of miner (IT) energy at `per_kwh`, with the facility overhead.
pub fn energy_cost(it_kwh: f64, per_kwh: f64, pue: f64) -> f64 {
    it_kwh * per_kwh * pue
}

/// The coin price at which a miner's revenue equals its energy cost: below it, it loses
/// money. Infinite when a block earns nothing.
pub fn shutdown_price(revenue: &Revenue, joules_per_th: f64, per_kwh: f64, pue: f64) -> f64 {
    cost_per_th_day(joules_per_th, per_kwh, pue) / (revenue.sats_per_th_day() / SATS_PER_BTC)
}

/// The tariff per kWh at which a miner's revenue at `price` equals its energy cost.
pub fn break_even_tariff(revenue: &Revenue, price: f64, joules_per_th: f64, pue: f64) -> f64 {
    revenue.hashprice(price) / (joules_per_th * KWH_PER_JTH_DAY * pue)
}

/// Cost over revenue for a miner (1.0 = break-even, above = losing money); the
/// controller's economic input. Infinite when revenue is zero.
pub fn cost_ratio(
    revenue: &Revenue,
    price: f64,
    joules_per_th: f64,
    per_kwh: f64,
    pue: f64,
) -> f64 {
    cost_per_th_day(joules_per_th, per_kwh, pue) / revenue.hashprice(price)
}

/// Days of the week as a bit set, Monday = bit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weekdays(u8);

impl Weekdays {
    /// Every day.
    pub const ALL: Weekdays = Weekdays(0x7f);
    /// The three-letter names, Monday first, as the config writes them.
    pub const NAMES: [&'static str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    /// The set of the given days (0 = Monday … 6 = Sunday; larger numbers are ignored).
    pub fn of(days: impl IntoIterator<Item = u8>) -> Self {
        Weekdays(
            days.into_iter()
                .filter(|d| *d < 7)
                .fold(0, |acc, d| acc | 1 << d),
        )
    }

    /// Whether `day` (0 = Monday) is in the set.
    pub fn contains(self, day: u8) -> bool {
        day < 7 && self.0 & (1 << day) != 0
    }
}

/// A time-of-use period: a price for a span of the day on some weekdays.
#[derive(Debug, Clone, PartialEq)]
pub struct TariffPeriod {
    /// Its name (`peak`, `off_peak`, …), shown in the API.
    pub name: Arc<str>,
    /// Days it applies to; a span past midnight belongs to the day it starts on.
    pub days: Weekdays,
    /// Start, minutes after local midnight.
    pub from_minute: u16,
    /// End (exclusive), minutes after local midnight; at or before `from_minute` the span
    /// runs past midnight.
    pub to_minute: u16,
    /// Price per kWh while it applies.
    pub per_kwh: f64,
}

/// An electricity tariff: a base price and time-of-use periods, the first match winning.
#[derive(Debug, Clone, PartialEq)]
pub struct Tariff {
    /// Tariff name.
    pub name: Arc<str>,
    /// Price per kWh outside every period.
    pub base_per_kwh: f64,
    /// Periods in config order.
    pub periods: Vec<TariffPeriod>,
    /// The site's local time, in which the schedule is written.
    pub local: LocalTime,
}

/// The local time a tariff schedule is written in.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalTime {
    /// A fixed offset from UTC, minutes (`utc_offset_hours`): no daylight saving.
    Fixed(i32),
    /// An IANA zone (`timezone = "Europe/Berlin"`): the offset in force at each instant,
    /// from the tz database compiled into the binary.
    Zone(jiff::tz::TimeZone),
}

impl LocalTime {
    /// UTC as a fixed offset.
    pub const UTC: LocalTime = LocalTime::Fixed(0);

    /// Seconds to add to `unix_secs` for the local wall clock at that instant. A zone's
    /// offset is the one in force then, so in a spring-forward gap the clock jumps past
    /// the skipped hour and in a fall-back fold the repeated hour is walked twice.
    pub fn offset_secs(&self, unix_secs: i64) -> i64 {
        match self {
            LocalTime::Fixed(minutes) => i64::from(*minutes) * 60,
            LocalTime::Zone(tz) => match jiff::Timestamp::from_second(unix_secs) {
                Ok(ts) => i64::from(tz.to_offset(ts).seconds()),
                // Outside jiff's range (years ±9999): no real clock reads that; take UTC
                // rather than fail a price lookup.
                Err(_) => 0,
            },
        }
    }

    /// How the config wrote it, for the API: the zone's name or `UTC+01:00`.
    pub fn label(&self) -> String {
        match self {
            LocalTime::Fixed(minutes) => {
                let sign = if *minutes < 0 { '-' } else { '+' };
                let m = minutes.unsigned_abs();
                format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
            }
            LocalTime::Zone(tz) => tz.iana_name().unwrap_or("?").to_owned(),
        }
    }
}

/// The price a tariff charges at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct TariffNow {
    /// Price per kWh.
    pub per_kwh: f64,
    /// The period in force, `None` for the base price.
    pub period: Option<Arc<str>>,
}

impl Tariff {
    /// The price at `unix_secs` (seconds since 1970-01-01 UTC).
    pub fn at(&self, unix_secs: i64) -> TariffNow {
        let local = unix_secs + self.local.offset_secs(unix_secs);
        let day_index = local.div_euclid(86_400);
        let minute = (local.rem_euclid(86_400) / 60) as u16;
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        let weekday = |days: i64| (days + 3).rem_euclid(7) as u8;
        let today = weekday(day_index);
        let yesterday = weekday(day_index - 1);
        let hit = self.periods.iter().find(|p| {
            if p.from_minute < p.to_minute {
                p.days.contains(today) && (p.from_minute..p.to_minute).contains(&minute)
            } else {
                (p.days.contains(today) && minute >= p.from_minute)
                    || (p.days.contains(yesterday) && minute < p.to_minute)
            }
        });
        match hit {
            Some(p) => TariffNow {
                per_kwh: p.per_kwh,
                period: Some(p.name.clone()),
            },
            None => TariffNow {
                per_kwh: self.base_per_kwh,
                period: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::revenue::Network;
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 1e-6
    }

    /// Block 881423 with 0.25 BTC fees and a 2 % pool fee: 61.546904 sats per TH/s per day,
    /// 0.061546904 USD/TH/day at 100,000 USD (see `revenue::tests::block_881423_hand_worked`).
    fn revenue() -> Revenue {
        Revenue {
            network: Network {
                difficulty: 108_105_433_845_147.16,
                height: 881_423,
            },
            fees_sats: 25_000_000.0,
            pool_fee: 0.02,
        }
    }

    /// A 21.5 J/TH miner at 0.06 USD/kWh with PUE 1.1:
    /// - energy per TH/s per day = 21.5 × 86,400 / 3,600,000 = 0.516 kWh; × 0.06 × 1.1 =
    ///   0.034056 USD.
    /// - shutdown price = 0.034056 / (61.546904 / 10^8 BTC) = 55,333.41 USD/BTC.
    /// - break-even tariff at 100,000 USD = 0.061546904 / (0.516 × 1.1) = 0.108434 USD/kWh.
    /// - cost ratio = 0.034056 / 0.061546904 = 0.553334 (earns almost twice its power).
    #[test]
    fn hand_worked_cost_figures() {
        let r = revenue();
        assert!(close(cost_per_th_day(21.5, 0.06, 1.1), 0.034_056));
        assert!(
            close(shutdown_price(&r, 21.5, 0.06, 1.1), 55_333.41),
            "{}",
            shutdown_price(&r, 21.5, 0.06, 1.1)
        );
        assert!(close(
            break_even_tariff(&r, 100_000.0, 21.5, 1.1),
            0.108_433_59
        ));
        assert!(close(cost_ratio(&r, 100_000.0, 21.5, 0.06, 1.1), 0.553_334));
        // At the shutdown price the ratio is exactly one.
        let p = shutdown_price(&r, 21.5, 0.06, 1.1);
        assert!(close(cost_ratio(&r, p, 21.5, 0.06, 1.1), 1.0));
        assert!(close(energy_cost(10.0, 0.06, 1.1), 0.66));
    }

    fn tariff() -> Tariff {
        Tariff {
            name: "grid".into(),
            base_per_kwh: 0.05,
            periods: vec![
                TariffPeriod {
                    name: "peak".into(),
                    days: Weekdays::of(0..5),
                    from_minute: 17 * 60,
                    to_minute: 21 * 60,
                    per_kwh: 0.20,
                },
                TariffPeriod {
                    name: "night".into(),
                    days: Weekdays::ALL,
                    from_minute: 23 * 60,
                    to_minute: 6 * 60,
                    per_kwh: 0.03,
                },
            ],
            local: LocalTime::UTC,
        }
    }

    #[test]
    fn time_of_use_by_hour_and_weekday() {
        // 2025-01-29 00:00 UTC was a Wednesday.
        let wed = 1_738_108_800;
        let h = |d: i64, hour: i64, min: i64| wed + d * 86_400 + hour * 3600 + min * 60;
        let t = tariff();
        let at = |secs| t.at(secs);
        assert_eq!(at(h(0, 12, 0)).per_kwh, 0.05);
        assert_eq!(at(h(0, 17, 0)).per_kwh, 0.20);
        assert_eq!(at(h(0, 17, 0)).period.as_deref(), Some("peak"));
        assert_eq!(at(h(0, 20, 59)).per_kwh, 0.20);
        assert_eq!(at(h(0, 21, 0)).per_kwh, 0.05);
        // Saturday: no peak.
        assert_eq!(at(h(3, 18, 0)).per_kwh, 0.05);
        // The night span runs past midnight, both sides.
        assert_eq!(at(h(0, 23, 30)).per_kwh, 0.03);
        assert_eq!(at(h(1, 5, 59)).per_kwh, 0.03);
        assert_eq!(at(h(1, 6, 0)).per_kwh, 0.05);
        // A local offset moves the schedule: 16:00 UTC is 17:00 at UTC+1.
        let plus_one = Tariff {
            local: LocalTime::Fixed(60),
            ..tariff()
        };
        assert_eq!(plus_one.at(h(0, 16, 0)).per_kwh, 0.20);
        assert_eq!(plus_one.at(h(0, 20, 0)).per_kwh, 0.05);
        // Before 1970 the arithmetic still lands on the right weekday (1969-12-31 was a
        // Wednesday).
        assert_eq!(at(-86_400 + 18 * 3600).per_kwh, 0.20);
    }

    fn berlin() -> Tariff {
        let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        Tariff {
            local: LocalTime::Zone(tz),
            ..tariff()
        }
    }

    /// Seconds since 1970 of a UTC wall time.
    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
        jiff::tz::TimeZone::UTC
            .to_timestamp(jiff::civil::date(y, mo, d).at(h, mi, 0, 0))
            .unwrap()
            .as_second()
    }

    #[test]
    fn a_zone_keeps_the_peak_at_local_time_in_winter_and_summer() {
        let t = berlin();
        // Wednesday 2025-01-15, CET = UTC+1: the 17:00 local peak starts at 16:00 UTC.
        assert_eq!(t.at(utc(2025, 1, 15, 15, 59)).per_kwh, 0.05);
        assert_eq!(t.at(utc(2025, 1, 15, 16, 0)).per_kwh, 0.20);
        assert_eq!(t.at(utc(2025, 1, 15, 19, 59)).per_kwh, 0.20);
        assert_eq!(t.at(utc(2025, 1, 15, 20, 0)).per_kwh, 0.05);
        // Wednesday 2025-07-16, CEST = UTC+2: the same peak starts at 15:00 UTC.
        assert_eq!(t.at(utc(2025, 7, 16, 14, 59)).per_kwh, 0.05);
        assert_eq!(t.at(utc(2025, 7, 16, 15, 0)).per_kwh, 0.20);
        assert_eq!(t.at(utc(2025, 7, 16, 18, 59)).per_kwh, 0.20);
        assert_eq!(t.at(utc(2025, 7, 16, 19, 0)).per_kwh, 0.05);
        // A fixed UTC+1 is an hour late all summer: that is what the zone fixes.
        let fixed = Tariff {
            local: LocalTime::Fixed(60),
            ..tariff()
        };
        assert_eq!(fixed.at(utc(2025, 7, 16, 15, 0)).per_kwh, 0.05);
        assert_eq!(t.local.label(), "Europe/Berlin");
        assert_eq!(fixed.local.label(), "UTC+01:00");
        assert_eq!(LocalTime::Fixed(-330).label(), "UTC-05:30");
    }

    #[test]
    fn skipped_and_repeated_hours() {
        // Periods on the hour the clocks change: 02:00-03:00 local, every day.
        let two_to_three = Tariff {
            periods: vec![TariffPeriod {
                name: "two".into(),
                days: Weekdays::ALL,
                from_minute: 2 * 60,
                to_minute: 3 * 60,
                per_kwh: 0.50,
            }],
            ..berlin()
        };
        // Spring forward, Sunday 2025-03-30: 01:59:59 CET (00:59:59 UTC) is followed by
        // 03:00 CEST (01:00 UTC). 02:xx never happens, so the period never applies.
        for minute in 0..120 {
            let t = utc(2025, 3, 30, 0, 0) + minute * 60;
            assert_eq!(
                two_to_three.at(t).per_kwh,
                0.05,
                "minute {minute} after 00:00 UTC"
            );
        }
        // Its neighbour hours keep their places: the night period ends at 06:00 CEST.
        let t = berlin();
        assert_eq!(t.at(utc(2025, 3, 30, 3, 59)).per_kwh, 0.03);
        assert_eq!(t.at(utc(2025, 3, 30, 4, 0)).per_kwh, 0.05);
        // Fall back, Sunday 2025-10-26: 02:00-03:00 local is walked twice, 00:00-01:00 UTC
        // in CEST and 01:00-02:00 UTC in CET; the period applies both times (two hours).
        let applies = (0..240)
            .filter(|m| two_to_three.at(utc(2025, 10, 25, 23, 0) + m * 60).per_kwh == 0.50)
            .count();
        assert_eq!(applies, 120);
        assert_eq!(two_to_three.at(utc(2025, 10, 25, 23, 59)).per_kwh, 0.05);
        assert_eq!(two_to_three.at(utc(2025, 10, 26, 0, 0)).per_kwh, 0.50);
        assert_eq!(two_to_three.at(utc(2025, 10, 26, 1, 59)).per_kwh, 0.50);
        assert_eq!(two_to_three.at(utc(2025, 10, 26, 2, 0)).per_kwh, 0.05);
    }
}
