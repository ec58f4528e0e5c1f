//! The physical side of a simulated ASIC: power, temperature, hashrate, fans, sleep.
//!
//! Pure model: every reading takes `now`; the server tasks read the clock and pass it in,
//! so tests step time by hand. Shared (`Clone` is an `Arc`) between the management API
//! server and the Stratum-side simulated miner, which asks [`SimMinerState::is_hashing`].
//!
//! | state | power | board temperature |
//! |---|---|---|
//! | asleep | `sleep_watts` at once (hashboards off) | decays towards inlet + a little |
//! | awake | ramps linearly to the target over `ramp` | follows power with lag `thermal_tau` |

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hashgate_site::power::api::Credentials;

/// What a simulated miner is, before anything happens to it.
#[derive(Debug, Clone)]
pub struct SimMinerSpec {
    /// Wall power when mining at full profile, W.
    pub nominal_watts: f64,
    /// Wall power asleep (control board, PSU idle), W.
    pub sleep_watts: f64,
    /// Hashrate at nominal power, TH/s.
    pub nominal_ths: f64,
    /// Time from wake to full power; real miners take tens of seconds.
    pub ramp: Duration,
    /// Board temperature above inlet at nominal power, °C.
    pub thermal_rise_c: f64,
    /// Time constant of the boards' thermal lag.
    pub thermal_tau: Duration,
    /// Number of hashboards.
    pub boards: usize,
    /// Number of fans.
    pub fans: usize,
    /// Login the management API accepts.
    pub credentials: Credentials,
    /// A LuxOS session or Braiins token unused this long expires.
    pub session_idle: Duration,
}

impl Default for SimMinerSpec {
    fn default() -> Self {
        // Roughly an S19 Pro: 3.25 kW, 110 TH/s, three boards, four fans.
        SimMinerSpec {
            nominal_watts: 3250.0,
            sleep_watts: 15.0,
            nominal_ths: 110.0,
            ramp: Duration::from_secs(30),
            thermal_rise_c: 45.0,
            thermal_tau: Duration::from_secs(60),
            boards: 3,
            fans: 4,
            credentials: Credentials {
                user: "root".into(),
                password: "root".into(),
            },
            session_idle: Duration::from_secs(300),
        }
    }
}

/// Fault switches, to test what the clients do when a miner misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answers as a healthy miner.
    #[default]
    None,
    /// Accepts the connection and never answers.
    NoAnswer,
    /// Answers after this delay.
    Slow(Duration),
    /// Answers with bytes that are not the protocol.
    Garbage,
    /// Refuses every login, as if the password on the miner had been changed.
    WrongCredentials,
}

/// One reading of the model at a given instant.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReading {
    /// Wall power, W.
    pub power_watts: f64,
    /// Inlet air, °C.
    pub inlet_c: f64,
    /// Per-board temperature, °C.
    pub board_temps_c: Vec<f64>,
    /// Hashrate, TH/s.
    pub hashrate_ths: f64,
    /// Fan speeds, RPM.
    pub fan_rpm: Vec<u32>,
    /// Awake (mining or ramping) rather than asleep.
    pub awake: bool,
    /// Power limit in force, W.
    pub power_limit: Option<u32>,
}

#[derive(Debug)]
struct Inner {
    spec: SimMinerSpec,
    awake: bool,
    /// Instant of the last change (wake, sleep, limit): ramps and lags start there.
    since: Instant,
    /// Power at `since`, where the ramp starts.
    power_at_change: f64,
    /// Board temperature at `since`, where the thermal lag starts.
    temp_at_change: f64,
    power_limit: Option<u32>,
    inlet_c: f64,
    fault: Fault,
    /// LuxOS-style session: id and last use.
    session: Option<(String, Instant)>,
    /// Control commands accepted, oldest first, for tests to assert on.
    log: Vec<String>,
}

impl Inner {
    fn target_watts(&self) -> f64 {
        if !self.awake {
            return self.spec.sleep_watts;
        }
        let limit = self.power_limit.map_or(f64::INFINITY, f64::from);
        self.spec
            .nominal_watts
            .min(limit)
            .max(self.spec.sleep_watts)
    }

    fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }

    fn power(&self, now: Instant) -> f64 {
        let target = self.target_watts();
        if !self.awake {
            return target;
        }
        let ramp = self.spec.ramp.as_secs_f64();
        let frac = if ramp <= 0.0 {
            1.0
        } else {
            (self.elapsed(now).as_secs_f64() / ramp).min(1.0)
        };
        self.power_at_change + (target - self.power_at_change) * frac
    }

    fn board_temp(&self, now: Instant) -> f64 {
        let steady = self.inlet_c
            + self.spec.thermal_rise_c * self.power(now) / self.spec.nominal_watts.max(1.0);
        let tau = self.spec.thermal_tau.as_secs_f64();
        if tau <= 0.0 {
            return steady;
        }
        let decay = (-self.elapsed(now).as_secs_f64() / tau).exp();
        steady + (self.temp_at_change - steady) * decay
    }

    fn hashrate(&self, now: Instant) -> f64 {
        if !self.awake {
            return 0.0;
        }
        let frac = (self.power(now) - self.spec.sleep_watts)
            / (self.spec.nominal_watts - self.spec.sleep_watts).max(1.0);
        self.spec.nominal_ths * frac.clamp(0.0, 1.0)
    }

    fn reanchor(&mut self, now: Instant) {
        self.power_at_change = self.power(now);
        self.temp_at_change = self.board_temp(now);
        self.since = now;
    }
}

/// Shared state of one simulated miner (cheap to clone).
#[derive(Debug, Clone)]
pub struct SimMinerState(Arc<Mutex<Inner>>);

impl SimMinerState {
    /// A miner that is awake and at full power at `now`, in air at `inlet_c`.
    pub fn new(spec: SimMinerSpec, inlet_c: f64, now: Instant) -> SimMinerState {
        let power = spec.nominal_watts;
        let temp = inlet_c + spec.thermal_rise_c;
        SimMinerState(Arc::new(Mutex::new(Inner {
            spec,
            awake: true,
            since: now,
            power_at_change: power,
            temp_at_change: temp,
            power_limit: None,
            inlet_c,
            fault: Fault::None,
            session: None,
            log: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain numbers behind, still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The spec this miner was built with.
    pub fn spec(&self) -> SimMinerSpec {
        self.lock().spec.clone()
    }

    /// Whether the Stratum side should be hashing (awake, including the ramp).
    pub fn is_hashing(&self, _now: Instant) -> bool {
        self.lock().awake
    }

    /// Reads every modelled quantity at `now`.
    pub fn reading(&self, now: Instant) -> SimReading {
        let g = self.lock();
        let power = g.power(now);
        let board = g.board_temp(now);
        let load = (power / g.spec.nominal_watts.max(1.0)).clamp(0.0, 1.0);
        // Boards differ a little in a real chassis; a fixed spread keeps readings honest.
        let board_temps_c = (0..g.spec.boards).map(|i| board - 1.5 * i as f64).collect();
        let fan_rpm = (0..g.spec.fans)
            .map(|i| (1200.0 + 4800.0 * load) as u32 + 30 * i as u32)
            .collect();
        SimReading {
            power_watts: power,
            inlet_c: g.inlet_c,
            board_temps_c,
            hashrate_ths: g.hashrate(now),
            fan_rpm,
            awake: g.awake,
            power_limit: g.power_limit,
        }
    }

    /// Sleeps (`false`) or wakes (`true`) the miner at `now`; records the command.
    pub fn set_awake(&self, awake: bool, now: Instant) {
        let mut g = self.lock();
        if g.awake != awake {
            g.reanchor(now);
            g.awake = awake;
        }
        g.log.push(if awake { "wake" } else { "sleep" }.into());
    }

    /// Sets a power cap at `now`; records the command.
    pub fn set_power_limit(&self, watts: u32, now: Instant) {
        let mut g = self.lock();
        g.reanchor(now);
        g.power_limit = Some(watts);
        g.log.push(format!("power_limit {watts}"));
    }

    /// Changes the container inlet temperature at `now`.
    pub fn set_inlet(&self, inlet_c: f64, now: Instant) {
        let mut g = self.lock();
        g.reanchor(now);
        g.inlet_c = inlet_c;
    }

    /// Switches a fault on (or off with [`Fault::None`]).
    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.lock().fault
    }

    /// Control commands accepted so far, oldest first.
    pub fn command_log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// Whether `user` / `password` would be accepted now (false under
    /// [`Fault::WrongCredentials`]).
    pub fn credentials_ok(&self, user: &str, password: &str) -> bool {
        let g = self.lock();
        g.fault != Fault::WrongCredentials
            && g.spec.credentials.user == user
            && g.spec.credentials.password == password
    }

    /// The password the miner holds (Whatsminer derives its key from it); under
    /// [`Fault::WrongCredentials`] a different one.
    pub fn password(&self) -> String {
        let g = self.lock();
        if g.fault == Fault::WrongCredentials {
            format!("{}-changed", g.spec.credentials.password)
        } else {
            g.spec.credentials.password.clone()
        }
    }

    /// LuxOS `logon`: a new session id, unless a live one exists (`Err` with its id).
    pub fn open_session(&self, now: Instant) -> Result<String, String> {
        let mut g = self.lock();
        let idle = g.spec.session_idle;
        if let Some((id, used)) = &g.session
            && now.saturating_duration_since(*used) < idle
        {
            return Err(id.clone());
        }
        let id = format!("{:08x}", rand::random::<u32>());
        g.session = Some((id.clone(), now));
        Ok(id)
    }

    /// LuxOS: the live session id, if any.
    pub fn current_session(&self, now: Instant) -> Option<String> {
        let g = self.lock();
        let idle = g.spec.session_idle;
        g.session
            .as_ref()
            .filter(|(_, used)| now.saturating_duration_since(*used) < idle)
            .map(|(id, _)| id.clone())
    }

    /// LuxOS: checks and refreshes a session id presented with a write.
    pub fn use_session(&self, id: &str, now: Instant) -> bool {
        let mut g = self.lock();
        let idle = g.spec.session_idle;
        match &mut g.session {
            Some((live, used)) if live == id && now.saturating_duration_since(*used) < idle => {
                *used = now;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SimMinerSpec {
        SimMinerSpec {
            ramp: Duration::from_secs(10),
            thermal_tau: Duration::from_secs(20),
            ..SimMinerSpec::default()
        }
    }

    #[test]
    fn sleep_drops_power_at_once_and_wake_ramps() {
        let t0 = Instant::now();
        let s = SimMinerState::new(spec(), 25.0, t0);
        assert_eq!(s.reading(t0).power_watts, 3250.0);
        assert!(s.is_hashing(t0));
        s.set_awake(false, t0);
        let r = s.reading(t0 + Duration::from_millis(1));
        assert_eq!(r.power_watts, 15.0);
        assert_eq!(r.hashrate_ths, 0.0);
        assert!(!s.is_hashing(t0));
        let t1 = t0 + Duration::from_secs(100);
        s.set_awake(true, t1);
        let half = s.reading(t1 + Duration::from_secs(5)).power_watts;
        assert!((half - (15.0 + 3235.0 / 2.0)).abs() < 1e-6, "{half}");
        assert_eq!(s.reading(t1 + Duration::from_secs(10)).power_watts, 3250.0);
        assert_eq!(s.reading(t1 + Duration::from_secs(60)).power_watts, 3250.0);
        assert_eq!(s.command_log(), vec!["sleep", "wake"]);
    }

    #[test]
    fn temperature_follows_power_and_inlet_with_lag() {
        let t0 = Instant::now();
        let s = SimMinerState::new(spec(), 25.0, t0);
        assert_eq!(s.reading(t0).board_temps_c[0], 70.0);
        s.set_awake(false, t0);
        let soon = s.reading(t0 + Duration::from_secs(1)).board_temps_c[0];
        let later = s.reading(t0 + Duration::from_secs(200)).board_temps_c[0];
        assert!(soon > 60.0 && soon < 70.0, "{soon}");
        assert!(
            (later - (25.0 + 45.0 * 15.0 / 3250.0)).abs() < 0.01,
            "{later}"
        );
        s.set_inlet(35.0, t0 + Duration::from_secs(200));
        let warm = s.reading(t0 + Duration::from_secs(400)).board_temps_c[0];
        assert!(
            (warm - (35.0 + 45.0 * 15.0 / 3250.0)).abs() < 0.01,
            "{warm}"
        );
    }

    #[test]
    fn power_limit_caps_power_and_hashrate() {
        let t0 = Instant::now();
        let s = SimMinerState::new(spec(), 25.0, t0);
        s.set_power_limit(2000, t0);
        let r = s.reading(t0 + Duration::from_secs(10));
        assert_eq!(r.power_watts, 2000.0);
        assert!(r.hashrate_ths < 110.0 && r.hashrate_ths > 60.0);
        assert_eq!(r.power_limit, Some(2000));
    }

    #[test]
    fn sessions_expire_when_idle() {
        let t0 = Instant::now();
        let s = SimMinerState::new(spec(), 25.0, t0);
        let id = s.open_session(t0).unwrap();
        assert_eq!(s.open_session(t0), Err(id.clone()));
        assert!(s.use_session(&id, t0 + Duration::from_secs(200)));
        assert!(!s.use_session("nope", t0));
        let late = t0 + Duration::from_secs(200 + 301);
        assert!(!s.use_session(&id, late));
        assert_eq!(s.current_session(late), None);
        assert_ne!(s.open_session(late).unwrap(), id);
    }

    #[test]
    fn wrong_credentials_fault() {
        let s = SimMinerState::new(spec(), 25.0, Instant::now());
        assert!(s.credentials_ok("root", "root"));
        s.set_fault(Fault::WrongCredentials);
        assert!(!s.credentials_ok("root", "root"));
        assert_ne!(s.password(), "root");
    }
}
