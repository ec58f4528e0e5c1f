//! A container's air, simulated: outdoor weather through a day, the miners' heat, exhaust
//! fan banks and an evaporative curtain, giving the inlet temperature the miners breathe.
//!
//! The model is small on purpose (lumped, one time constant) but keeps the shapes a climate
//! controller has to handle:
//!
//! | part | model |
//! |---|---|
//! | weather | outdoor temperature a sinusoid peaking mid-afternoon; relative humidity the opposite swing |
//! | curtain | with the pump on, supply air approaches the wet-bulb temperature by an efficiency that falls as humidity rises; off, supply is outdoor air |
//! | fans | the miners need airflow in proportion to their power (a design rise of `miner_rise_c`); what the fans do not supply is made up by exhaust air drawn back to the inlet |
//! | inertia | the inlet moves toward that balance with `time_constant` |

use std::time::Duration;

/// Volumetric heat capacity of air near sea level, J/(m³·K).
const AIR_J_PER_M3_K: f64 = 1200.0;

/// A day's weather: temperature and humidity as sinusoids of the hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weather {
    /// Daily mean temperature, °C.
    pub mean_c: f64,
    /// Half the day's swing, °C.
    pub swing_c: f64,
    /// Hour of the hottest moment (e.g. 15.0).
    pub peak_hour: f64,
    /// Daily mean relative humidity, %.
    pub humidity_mean: f64,
    /// Half the humidity swing, %; humidity is lowest when it is hottest.
    pub humidity_swing: f64,
}

impl Weather {
    /// A hot, dry summer day: 18 °C at 3 am, 36 °C at 3 pm; 75 % to 25 % humidity.
    pub fn hot_day() -> Self {
        Self {
            mean_c: 27.0,
            swing_c: 9.0,
            peak_hour: 15.0,
            humidity_mean: 50.0,
            humidity_swing: 25.0,
        }
    }

    /// Outdoor temperature (°C) and relative humidity (%) at `hour` of the day.
    pub fn at(&self, hour: f64) -> (f64, f64) {
        let phase = (hour - self.peak_hour) / 24.0 * std::f64::consts::TAU;
        let c = phase.cos();
        (
            self.mean_c + self.swing_c * c,
            (self.humidity_mean - self.humidity_swing * c).clamp(1.0, 100.0),
        )
    }
}

/// Wet-bulb temperature from dry-bulb (°C) and relative humidity (%), by Stull's 2011
/// empirical fit (good to about 1 °C for 5–99 % humidity at sea level).
pub fn wet_bulb_c(t: f64, rh: f64) -> f64 {
    t * (0.151_977 * (rh + 8.313_659).sqrt()).atan() + (t + rh).atan() - (rh - 1.676_331).atan()
        + 0.003_918_38 * rh.powf(1.5) * (0.023_101 * rh).atan()
        - 4.686_035
}

/// A container's physical make-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContainerAir {
    /// Fan banks installed.
    pub fan_banks: usize,
    /// Airflow of one bank, m³/s.
    pub bank_airflow_m3s: f64,
    /// Temperature rise of air through a miner at its design airflow, °C.
    pub miner_rise_c: f64,
    /// How much of the missing airflow's rise reaches the inlet (the rest leaks out).
    pub recirculation: f64,
    /// Inlet rise that no airflow removes (leaks, sun on the walls), as a fraction of
    /// `miner_rise_c`.
    pub leak: f64,
    /// Curtain efficiency toward wet-bulb in dry air; it falls as humidity rises.
    pub curtain_efficiency: f64,
    /// How fast the inlet follows a change.
    pub time_constant: Duration,
}

impl ContainerAir {
    /// A container shaped for `it_watts` of miners: six banks supplying 1.2× the miners'
    /// design airflow between them, so each bank is worth about 2.4 °C when air is short.
    pub fn for_load(it_watts: f64) -> Self {
        let miner_rise_c = 20.0;
        let need = it_watts / (AIR_J_PER_M3_K * miner_rise_c);
        Self {
            fan_banks: 6,
            bank_airflow_m3s: need * 1.2 / 6.0,
            miner_rise_c,
            recirculation: 0.6,
            leak: 0.05,
            curtain_efficiency: 0.85,
            time_constant: Duration::from_secs(90),
        }
    }

    /// [`Self::for_load`] with `banks` fan banks sharing the same total airflow.
    pub fn with_banks(it_watts: f64, banks: usize) -> Self {
        let mut air = Self::for_load(it_watts);
        let total = air.bank_airflow_m3s * air.fan_banks as f64;
        air.fan_banks = banks.max(1);
        air.bank_airflow_m3s = total / air.fan_banks as f64;
        air
    }

    /// Air leaving the curtain, °C.
    pub fn supply_c(&self, outdoor_c: f64, humidity: f64, pump_on: bool) -> f64 {
        if !pump_on {
            return outdoor_c;
        }
        // A wet pad in humid air evaporates less; at 100 % it does nothing.
        let efficiency = self.curtain_efficiency * (1.0 - 0.4 * humidity / 100.0);
        outdoor_c - efficiency * (outdoor_c - wet_bulb_c(outdoor_c, humidity)).max(0.0)
    }

    /// The inlet temperature these conditions settle to, °C.
    pub fn balance_c(
        &self,
        outdoor_c: f64,
        humidity: f64,
        it_watts: f64,
        fans: usize,
        pump_on: bool,
    ) -> f64 {
        let need = it_watts.max(0.0) / (AIR_J_PER_M3_K * self.miner_rise_c);
        let supplied = fans.min(self.fan_banks) as f64 * self.bank_airflow_m3s;
        let short = if need > 0.0 {
            (1.0 - supplied / need).max(0.0)
        } else {
            0.0
        };
        let warm = if need > 0.0 { self.leak } else { 0.0 };
        self.supply_c(outdoor_c, humidity, pump_on)
            + self.miner_rise_c * (warm + self.recirculation * short)
    }
}

/// A running container: its air and the inlet's current temperature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThermalSim {
    /// The container's make-up.
    pub air: ContainerAir,
    /// Inlet temperature now, °C.
    pub inlet_c: f64,
}

impl ThermalSim {
    /// Starts with the inlet at `inlet_c`.
    pub fn new(air: ContainerAir, inlet_c: f64) -> Self {
        Self { air, inlet_c }
    }

    /// Advances `dt` under these conditions and returns the new inlet, °C.
    pub fn step(
        &mut self,
        dt: Duration,
        outdoor_c: f64,
        humidity: f64,
        it_watts: f64,
        fans: usize,
        pump_on: bool,
    ) -> f64 {
        let target = self
            .air
            .balance_c(outdoor_c, humidity, it_watts, fans, pump_on);
        let k = 1.0 - (-dt.as_secs_f64() / self.air.time_constant.as_secs_f64().max(1e-3)).exp();
        self.inlet_c += (target - self.inlet_c) * k;
        self.inlet_c
    }

    /// Outlet (exhaust) temperature, °C: inlet plus the miners' rise at the airflow they
    /// get.
    pub fn outlet_c(&self, it_watts: f64) -> f64 {
        if it_watts > 0.0 {
            self.inlet_c + self.air.miner_rise_c
        } else {
            self.inlet_c
        }
    }
}

#[cfg(test)]
mod tests;
