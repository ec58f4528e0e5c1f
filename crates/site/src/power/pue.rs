//! Power usage effectiveness: facility power over IT power, per container and per site,
//! now and over the last complete clock hour. Pure: readings and wall-clock seconds come in
//! as arguments.
//!
//! | input | taken from, in order | unknown when |
//! |---|---|---|
//! | facility power | the feed meter (it already includes fans, pump and losses); else IT + the auxiliary load the climate control reports | the feed meter is stale and no auxiliary figure is known |
//! | IT power | the IT meter (rack PDUs) when one is configured; else Σ the miners' reported power | the IT meter is stale, or a miner has no fresh power figure |
//!
//! The hourly figure is the ratio of the energies (Wh over Wh) integrated tick by tick over
//! one UTC clock hour, reported once the hour is complete and only if both inputs were known
//! for at least 90 % of it: a ratio of averages over a half-observed hour would hide the
//! missing half.

use serde::Serialize;

/// Share of an hour both inputs must be known for its hourly figure to count.
pub const HOURLY_MIN_COVERAGE: f64 = 0.9;

/// Longest gap between two samples that is integrated; a longer one (the process was
/// paused, a tick hung) counts as not observed rather than as the last figure held.
pub const MAX_SAMPLE_GAP_SECS: f64 = 120.0;

/// Where facility power came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FacilitySource {
    /// The container's feed meter.
    Meter,
    /// IT power plus the auxiliary (fans, pump) load the climate control reports.
    ItPlusAuxiliary,
}

/// Where IT power came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItSource {
    /// The IT meter on the rack PDUs.
    ItMeter,
    /// Σ the miners' reported power.
    Miners,
}

/// Why a PUE figure is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PueUnknown {
    /// No usable feed meter reading and no auxiliary load figure to add to IT power.
    NoFacilityPower,
    /// The IT meter is configured but has no fresh reading.
    ItMeterStale,
    /// A miner of the container has no fresh reported power (no answer, or its firmware
    /// reports none), so Σ miners is not IT power.
    MinerPowerUnreported,
    /// IT power is zero: every miner is off.
    NoItLoad,
    /// A container's figure is unknown, so the site's is.
    ContainerUnknown,
    /// No clock hour has completed since start.
    NoCompleteHour,
    /// The last complete hour had its inputs for less than [`HOURLY_MIN_COVERAGE`] of it.
    HourIncomplete,
}

impl PueUnknown {
    /// Stable snake_case label for logs and the API.
    pub fn label(self) -> &'static str {
        match self {
            PueUnknown::NoFacilityPower => "no_facility_power",
            PueUnknown::ItMeterStale => "it_meter_stale",
            PueUnknown::MinerPowerUnreported => "miner_power_unreported",
            PueUnknown::NoItLoad => "no_it_load",
            PueUnknown::ContainerUnknown => "container_unknown",
            PueUnknown::NoCompleteHour => "no_complete_hour",
            PueUnknown::HourIncomplete => "hour_incomplete",
        }
    }
}

/// A container's PUE inputs at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PueInputs {
    /// Facility power, W, and where it came from.
    pub facility: Result<(f64, FacilitySource), PueUnknown>,
    /// IT power, W, and where it came from.
    pub it: Result<(f64, ItSource), PueUnknown>,
}

impl PueInputs {
    /// Builds the inputs from what the controller knows; facility falls back to IT +
    /// auxiliary only when IT is known.
    pub fn from_parts(
        feed_meter_watts: Option<f64>,
        auxiliary_watts: Option<f64>,
        it: Result<(f64, ItSource), PueUnknown>,
    ) -> PueInputs {
        let facility = match (feed_meter_watts, auxiliary_watts, it) {
            (Some(w), _, _) => Ok((w, FacilitySource::Meter)),
            (None, Some(aux), Ok((it_w, _))) => Ok((it_w + aux, FacilitySource::ItPlusAuxiliary)),
            (None, _, _) => Err(PueUnknown::NoFacilityPower),
        };
        PueInputs { facility, it }
    }

    /// Facility over IT power now.
    ///
    /// # Errors
    /// Why it is unknown: an input's reason (IT first), or [`PueUnknown::NoItLoad`].
    pub fn ratio(&self) -> Result<f64, PueUnknown> {
        let (it, _) = self.it?;
        let (facility, _) = self.facility?;
        if it <= 0.0 {
            return Err(PueUnknown::NoItLoad);
        }
        Ok(facility / it)
    }

    /// Both powers, W, when both are known.
    pub fn watts(&self) -> Option<(f64, f64)> {
        Some((self.facility.ok()?.0, self.it.ok()?.0))
    }
}

/// The site's inputs: the sums over containers, known only when every container's are.
pub fn site_inputs(containers: &[PueInputs]) -> Result<(f64, f64), PueUnknown> {
    let mut facility = 0.0;
    let mut it = 0.0;
    for c in containers {
        let (f, i) = c.watts().ok_or(PueUnknown::ContainerUnknown)?;
        facility += f;
        it += i;
    }
    if containers.is_empty() {
        return Err(PueUnknown::ContainerUnknown);
    }
    Ok((facility, it))
}

/// Energy integrated over UTC clock hours, giving the PUE of the last complete hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourlyPue {
    /// The hour being integrated (Unix seconds / 3600) and its sums.
    current: Option<HourSums>,
    /// The previous sample: when, and the powers then (`None`: an input was unknown).
    last: Option<(f64, Option<(f64, f64)>)>,
    /// The figure of the last complete hour.
    done: Option<Result<f64, PueUnknown>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct HourSums {
    hour: u64,
    facility_wh: f64,
    it_wh: f64,
    covered_secs: f64,
}

impl HourlyPue {
    /// Adds a sample taken at `unix_secs`: the powers (facility, IT) in W, or `None` when
    /// an input is unknown. The interval since the previous sample is integrated at the
    /// previous sample's powers, into the hour that interval started in.
    pub fn sample(&mut self, unix_secs: f64, watts: Option<(f64, f64)>) {
        if !unix_secs.is_finite() || unix_secs < 0.0 {
            return;
        }
        if let Some((prev_at, prev_watts)) = self.last
            && unix_secs > prev_at
        {
            let dt = unix_secs - prev_at;
            let hour = hour_of(prev_at);
            self.roll_to(hour);
            if let (Some((f, i)), Some(sums)) = (prev_watts, self.current.as_mut())
                && dt <= MAX_SAMPLE_GAP_SECS
            {
                sums.facility_wh += f * dt / 3600.0;
                sums.it_wh += i * dt / 3600.0;
                sums.covered_secs += dt;
            }
        }
        self.roll_to(hour_of(unix_secs));
        self.last = Some((unix_secs, watts));
    }

    /// The PUE of the last complete clock hour.
    ///
    /// # Errors
    /// [`PueUnknown::NoCompleteHour`] before the first hour ends,
    /// [`PueUnknown::HourIncomplete`] or [`PueUnknown::NoItLoad`] for that hour.
    pub fn last_hour(&self) -> Result<f64, PueUnknown> {
        self.done.unwrap_or(Err(PueUnknown::NoCompleteHour))
    }

    /// Starts integrating `hour`, closing the one before it when it is the previous hour.
    fn roll_to(&mut self, hour: u64) {
        match self.current {
            Some(sums) if sums.hour == hour => {}
            Some(sums) if hour > sums.hour => {
                self.done = Some(if hour == sums.hour + 1 {
                    sums.figure()
                } else {
                    // Whole hours went by without a sample.
                    Err(PueUnknown::HourIncomplete)
                });
                self.current = Some(HourSums::new(hour));
            }
            // The clock stepped back: start the hour again rather than mix two.
            Some(_) | None => self.current = Some(HourSums::new(hour)),
        }
    }
}

impl HourSums {
    fn new(hour: u64) -> HourSums {
        HourSums {
            hour,
            facility_wh: 0.0,
            it_wh: 0.0,
            covered_secs: 0.0,
        }
    }

    fn figure(&self) -> Result<f64, PueUnknown> {
        if self.covered_secs < HOURLY_MIN_COVERAGE * 3600.0 {
            return Err(PueUnknown::HourIncomplete);
        }
        if self.it_wh <= 0.0 {
            return Err(PueUnknown::NoItLoad);
        }
        Ok(self.facility_wh / self.it_wh)
    }
}

fn hour_of(unix_secs: f64) -> u64 {
    (unix_secs / 3600.0).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn facility_prefers_the_meter_then_it_plus_auxiliary() {
        let it = Ok((1000.0, ItSource::Miners));
        let p = PueInputs::from_parts(Some(1100.0), Some(50.0), it);
        assert_eq!(p.facility, Ok((1100.0, FacilitySource::Meter)));
        assert!(close(p.ratio().unwrap_or(0.0), 1.1));
        let p = PueInputs::from_parts(None, Some(50.0), it);
        assert_eq!(p.facility, Ok((1050.0, FacilitySource::ItPlusAuxiliary)));
        assert!(close(p.ratio().unwrap_or(0.0), 1.05));
        // Without a meter or an auxiliary figure, a PUE of 1.0 would be a lie.
        let p = PueInputs::from_parts(None, None, it);
        assert_eq!(p.ratio(), Err(PueUnknown::NoFacilityPower));
        let p = PueInputs::from_parts(Some(1100.0), None, Err(PueUnknown::ItMeterStale));
        assert_eq!(p.ratio(), Err(PueUnknown::ItMeterStale));
        let p = PueInputs::from_parts(None, Some(50.0), Err(PueUnknown::MinerPowerUnreported));
        assert_eq!(p.facility, Err(PueUnknown::NoFacilityPower));
        assert_eq!(p.ratio(), Err(PueUnknown::MinerPowerUnreported));
        let p = PueInputs::from_parts(Some(80.0), None, Ok((0.0, ItSource::ItMeter)));
        assert_eq!(p.ratio(), Err(PueUnknown::NoItLoad));
    }

    #[test]
    fn site_sums_containers_and_is_unknown_with_any() {
        let a = PueInputs::from_parts(Some(1100.0), None, Ok((1000.0, ItSource::Miners)));
        let b = PueInputs::from_parts(Some(2400.0), None, Ok((2000.0, ItSource::ItMeter)));
        assert_eq!(site_inputs(&[a, b]), Ok((3500.0, 3000.0)));
        let c = PueInputs::from_parts(None, None, Ok((10.0, ItSource::Miners)));
        assert_eq!(site_inputs(&[a, c]), Err(PueUnknown::ContainerUnknown));
        assert_eq!(site_inputs(&[]), Err(PueUnknown::ContainerUnknown));
    }

    /// Unix time of 10:00 UTC on some day.
    const H10: f64 = 1_700_002_800.0;

    #[test]
    fn hourly_is_the_energy_ratio_of_the_last_complete_hour() {
        let mut h = HourlyPue::default();
        assert_eq!(h.last_hour(), Err(PueUnknown::NoCompleteHour));
        // 10:00-10:30 at 1200/1000 W, 10:30-11:00 at 1000/1000 W: energies 1100 Wh / 1000 Wh,
        // where the mean of the two ratios would be the same only by chance.
        let mut t = H10;
        while t < H10 + 1800.0 {
            h.sample(t, Some((1200.0, 1000.0)));
            t += 10.0;
        }
        while t < H10 + 3600.0 {
            h.sample(t, Some((1000.0, 1000.0)));
            t += 10.0;
        }
        assert_eq!(
            h.last_hour(),
            Err(PueUnknown::NoCompleteHour),
            "10:00 not over"
        );
        h.sample(H10 + 3600.0, Some((5000.0, 1000.0)));
        let pue = h.last_hour().unwrap_or(0.0);
        assert!(close(pue, 1.1), "{pue}");
        // Unequal IT loads weigh by energy: 10 min at 3000/2000 W and 50 min at 1100/1000 W
        // is (500 + 916.67) / (333.33 + 833.33) Wh.
        let mut t = H10 + 3600.0;
        while t < H10 + 3600.0 + 600.0 {
            h.sample(t, Some((3000.0, 2000.0)));
            t += 10.0;
        }
        while t < H10 + 7200.0 {
            h.sample(t, Some((1100.0, 1000.0)));
            t += 10.0;
        }
        h.sample(H10 + 7200.0, None);
        let pue = h.last_hour().unwrap_or(0.0);
        let expected =
            (3000.0 / 6.0 + 1100.0 * 50.0 / 60.0) / (2000.0 / 6.0 + 1000.0 * 50.0 / 60.0);
        assert!(close(pue, expected), "{pue} vs {expected}");
    }

    #[test]
    fn hourly_is_unknown_for_a_half_observed_or_skipped_hour() {
        let mut h = HourlyPue::default();
        let mut t = H10;
        // Known for 40 minutes, unknown for 20.
        while t < H10 + 3600.0 {
            let known = t < H10 + 2400.0;
            h.sample(t, known.then_some((1100.0, 1000.0)));
            t += 10.0;
        }
        h.sample(H10 + 3600.0, Some((1100.0, 1000.0)));
        assert_eq!(h.last_hour(), Err(PueUnknown::HourIncomplete));
        // A gap longer than MAX_SAMPLE_GAP_SECS is not integrated.
        let mut h = HourlyPue::default();
        h.sample(H10, Some((1100.0, 1000.0)));
        h.sample(H10 + 3599.0, Some((1100.0, 1000.0)));
        h.sample(H10 + 3600.0, Some((1100.0, 1000.0)));
        assert_eq!(h.last_hour(), Err(PueUnknown::HourIncomplete));
        // Hours with no sample at all: the last complete hour is unknown, not an old one.
        let mut h = HourlyPue::default();
        let mut t = H10;
        while t <= H10 + 3600.0 {
            h.sample(t, Some((1100.0, 1000.0)));
            t += 10.0;
        }
        assert!(h.last_hour().is_ok());
        h.sample(H10 + 4.0 * 3600.0, Some((1100.0, 1000.0)));
        assert_eq!(h.last_hour(), Err(PueUnknown::HourIncomplete));
    }
}
