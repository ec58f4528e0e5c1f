//! The site's economics at run time: revenue from the current pool job and the price
//! book, each miner's cost from its measured (or nameplate) J/TH, its container's tariff
//! and PUE; the per-miner cost ratio the power controller's economic rule acts on, and
//! the figures `/api/v1/economics` and `/metrics` show.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use metrics::gauge;
use serde::Serialize;

use super::config::EconomicsConfig;
use super::cost::{break_even_tariff, cost_ratio, shutdown_price};
use super::price::PriceBook;
use super::revenue::{Network, NetworkError, Revenue, SATS_PER_BTC};
use crate::hub::Hub;
use crate::ratelog::{RateLimitedLog, Verdict};

/// A measured J/TH is believed only within this factor of the model's nameplate: outside
/// it the hashrate window is too young or the power reading is off.
const MEASURED_JTH_BAND: (f64, f64) = (0.5, 2.0);
/// Share-proven hashrate below this fraction of nameplate says too little to measure.
const MIN_PROVEN_FRACTION: f64 = 0.25;
/// A metered PUE outside this range is a meter that does not see what we think it sees.
const PLAUSIBLE_PUE: std::ops::RangeInclusive<f64> = 1.0..=3.0;
/// One warning about an unusable pool job stands for the next ones for this long.
const WARN_WINDOW: Duration = Duration::from_secs(300);

/// One miner's inputs to an evaluation.
#[derive(Debug, Clone, Copy)]
pub struct MinerInput<'a> {
    /// Miner id.
    pub id: &'a str,
    /// Its container.
    pub container: &'a str,
    /// Its model.
    pub model: &'a str,
    /// Nameplate wall power, W.
    pub nominal_watts: f64,
    /// Nameplate hashrate, TH/s.
    pub nominal_ths: f64,
    /// Share-proven hashrate, TH/s, when it has shares.
    pub proven_ths: Option<f64>,
    /// Power reported by its management API while mining, W.
    pub mining_watts: Option<f64>,
}

/// One container's inputs to an evaluation.
#[derive(Debug, Clone, Copy)]
pub struct ContainerInput<'a> {
    /// Container name.
    pub name: &'a str,
    /// Feed meter reading, W.
    pub metered_watts: Option<f64>,
    /// Sum of its miners' reported power, W.
    pub it_watts: f64,
}

/// One miner's economics after an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinerEconomics {
    /// Miner id.
    pub id: String,
    /// Container.
    pub container: String,
    /// Model.
    pub model: String,
    /// J/TH used: measured, else nameplate.
    pub joules_per_th: f64,
    /// Whether `joules_per_th` is measured (now, or the last time it mined).
    pub measured: bool,
    /// Energy cost over revenue (1 = break-even); `None` without revenue.
    pub cost_ratio: Option<f64>,
}

/// Why the economic rule is holding its decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// No price yet from the source.
    NoPrice,
    /// The price is older than `price_max_age`.
    PriceStale,
    /// No pool job yet.
    NoJob,
    /// The pool's job has no usable height or difficulty.
    BadJob,
}

/// What one evaluation gives the controller.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Why the rule must hold, if it must.
    pub hold: Option<Hold>,
    /// Per miner, in input order.
    pub miners: Vec<MinerEconomics>,
}

/// Per-model figures in `/api/v1/economics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEconomics {
    /// Model name.
    pub model: String,
    /// Miners of the model.
    pub miners: usize,
    /// Of them, with a measured J/TH.
    pub measured: usize,
    /// Mean J/TH.
    pub joules_per_th: f64,
    /// Coin price at which the model's revenue equals its energy cost (mean over its
    /// miners' tariffs and PUE).
    pub shutdown_price: Option<f64>,
    /// Tariff per kWh at which it breaks even at the current price.
    pub break_even_tariff_per_kwh: Option<f64>,
}

/// Per-container figures in `/api/v1/economics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerEconomics {
    /// Container name.
    pub name: String,
    /// Tariff name, `None` when no tariff prices it (its miners are not costed).
    pub tariff: Option<String>,
    /// Time-of-use period in force (`None`: the base price).
    pub period: Option<String>,
    /// Price per kWh now.
    pub per_kwh: Option<f64>,
    /// PUE in use.
    pub pue: f64,
    /// Whether `pue` comes from the feed meter (else 1 + overhead).
    pub pue_measured: bool,
}

/// `/api/v1/economics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EconomicsJson {
    /// Currency of prices, tariffs and revenue.
    pub currency: String,
    /// Coin price per BTC.
    pub price: Option<f64>,
    /// `config` or `http`.
    pub price_source: &'static str,
    /// The polled URL.
    pub price_url: Option<String>,
    /// Seconds since the price was fetched (0 for a fixed price).
    pub price_age_seconds: Option<f64>,
    /// Older than the limit: the economic rule holds.
    pub price_stale: bool,
    /// Failed polls since start.
    pub price_failures: u64,
    /// The last poll's failure, cleared by a success.
    pub price_last_error: Option<String>,
    /// Network difficulty from the current job.
    pub difficulty: Option<f64>,
    /// Block height from the current job.
    pub height: Option<u64>,
    /// Block subsidy at that height, BTC.
    pub subsidy_btc: Option<f64>,
    /// Configured average fees per block, BTC.
    pub fees_per_block_btc: f64,
    /// Configured pool fee, percent.
    pub pool_fee_percent: f64,
    /// Expected sats per TH/s per day.
    pub hashprice_sats_per_th_day: Option<f64>,
    /// Expected revenue per TH/s per day in `currency`.
    pub hashprice_per_th_day: Option<f64>,
    /// Why the economic rule holds, if it does.
    pub hold: Option<Hold>,
    /// Whether the rule acts (`curtail`), with its margin.
    pub curtail: bool,
    /// Per model.
    pub models: Vec<ModelEconomics>,
    /// Per container.
    pub containers: Vec<ContainerEconomics>,
    /// Per miner.
    pub miners: Vec<MinerEconomics>,
}

#[derive(Debug, Default)]
struct Last {
    models: Vec<ModelEconomics>,
    containers: Vec<ContainerEconomics>,
    miners: Vec<MinerEconomics>,
}

/// The site's economics, shared by the power driver, the status API and the exporter.
#[derive(Debug)]
pub struct Economics {
    config: EconomicsConfig,
    price: Arc<PriceBook>,
    hub: Option<Arc<Hub>>,
    warn: RateLimitedLog,
    last: Mutex<Last>,
    /// A real-time price signal (period name, price per kWh) replacing every container's
    /// schedule until cleared: a utility's critical-peak call, or the demo's peak.
    signal: Mutex<Option<(String, f64)>>,
    /// Each miner's last measured J/TH: a sleeping miner proves no hashrate, and falling
    /// back to nameplate while asleep would let a miner whose measured figure is worse wake
    /// and sleep again in a loop.
    measured: Mutex<HashMap<String, f64>>,
}

impl Economics {
    /// Economics over `config`, reading the current job from `hub` (none in tests that
    /// feed the network themselves through [`Economics::evaluate_with`]).
    pub fn new(config: EconomicsConfig, hub: Option<Arc<Hub>>) -> Self {
        Economics {
            price: Arc::new(PriceBook::new(&config)),
            config,
            hub,
            warn: RateLimitedLog::new(WARN_WINDOW),
            last: Mutex::new(Last::default()),
            signal: Mutex::new(None),
            measured: Mutex::new(HashMap::new()),
        }
    }

    /// Sets (or clears, with `None`) a real-time tariff: `(period, per_kwh)` for every
    /// container until cleared; the next evaluation uses it.
    pub fn set_price_signal(&self, signal: Option<(&str, f64)>) {
        *self
            .signal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            signal.map(|(name, per_kwh)| (name.to_owned(), per_kwh));
    }

    /// The configuration.
    pub fn config(&self) -> &EconomicsConfig {
        &self.config
    }

    /// The price book (its poller is spawned by the site).
    pub fn price_book(&self) -> &Arc<PriceBook> {
        &self.price
    }

    /// The network as the current job of channel 0 shows it; `None` before the first job.
    pub fn network(&self) -> Option<Result<Network, NetworkError>> {
        let channel = self.hub.as_ref()?.channels().into_iter().next()?;
        let job = channel.current()?;
        Some(Network::from_job(&job.job))
    }

    fn revenue_of(&self, network: Network) -> Revenue {
        Revenue {
            network,
            fees_sats: self.config.fees_sats,
            pool_fee: self.config.pool_fee,
        }
    }

    /// The tariff in force for `container` at `wall`: the real-time signal, else its
    /// schedule; `None` when no tariff prices it.
    pub fn tariff_now(&self, container: &str, wall: SystemTime) -> Option<super::cost::TariffNow> {
        let signal = self
            .signal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let tariff = self.config.tariff_for(container)?;
        Some(match signal {
            Some((period, per_kwh)) => super::cost::TariffNow {
                per_kwh,
                period: Some(Arc::from(period.as_str())),
            },
            None => tariff.at(unix_secs(wall)),
        })
    }

    /// The PUE the last evaluation used for `container` (1 + overhead before any).
    pub fn pue(&self, container: &str) -> f64 {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.containers
            .iter()
            .find(|c| c.name == container)
            .map_or(1.0 + self.config.overhead, |c| c.pue)
    }

    /// Expected revenue of `hashes` share-proven hashes in the currency, at the current job
    /// and price (for the ledger); `None` without both.
    pub fn revenue_of_hashes(&self, hashes: f64, now: Instant) -> Option<f64> {
        let price = self.price.reading(now)?.price;
        let network = self.network()?.ok()?;
        Some(self.revenue_of(network).for_hashes(hashes, price))
    }

    /// The cost of `it_kwh` of miner energy in `container` at `wall` (its tariff then, the
    /// PUE in use); `None` when no tariff prices the container.
    pub fn cost_of_energy(&self, container: &str, it_kwh: f64, wall: SystemTime) -> Option<f64> {
        let per_kwh = self.tariff_now(container, wall)?.per_kwh;
        Some(super::cost::energy_cost(
            it_kwh,
            per_kwh,
            self.pue(container),
        ))
    }

    /// Evaluates with the network of the current job.
    pub fn evaluate(
        &self,
        now: Instant,
        wall: SystemTime,
        miners: &[MinerInput<'_>],
        containers: &[ContainerInput<'_>],
    ) -> Evaluation {
        let network = self.network();
        self.evaluate_with(network, now, wall, miners, containers)
    }

    /// Evaluates every miner's cost ratio for the controller, and records the figures for
    /// the API and `/metrics`.
    pub fn evaluate_with(
        &self,
        network: Option<Result<Network, NetworkError>>,
        now: Instant,
        wall: SystemTime,
        miners: &[MinerInput<'_>],
        containers: &[ContainerInput<'_>],
    ) -> Evaluation {
        let reading = self.price.reading(now);
        let network = match network {
            Some(Err(e)) => {
                metrics::counter!("hashgate_economics_bad_jobs_total").increment(1);
                if let Verdict::Log { suppressed } = self.warn.check(now) {
                    tracing::warn!(error = %e, suppressed, "pool job gives no revenue figures; the economic rule holds");
                }
                Err(Hold::BadJob)
            }
            Some(Ok(n)) => Ok(n),
            None => Err(Hold::NoJob),
        };
        let hold = match (&reading, &network) {
            (None, _) => Some(Hold::NoPrice),
            (Some(r), _) if r.stale => Some(Hold::PriceStale),
            (_, Err(h)) => Some(*h),
            _ => None,
        };
        let revenue = network.ok().map(|n| self.revenue_of(n));
        // A stale price still gives figures to show; the rule is what holds.
        let price = reading.map(|r| r.price);

        let container_rows: Vec<ContainerEconomics> = containers
            .iter()
            .map(|c| {
                let tariff = self.config.tariff_for(c.name);
                let now_price = self.tariff_now(c.name, wall);
                let metered = c
                    .metered_watts
                    .filter(|_| c.it_watts > 0.0)
                    .map(|m| m / c.it_watts)
                    .filter(|p| PLAUSIBLE_PUE.contains(p));
                ContainerEconomics {
                    name: c.name.to_owned(),
                    tariff: tariff.map(|t| t.name.to_string()),
                    period: now_price
                        .as_ref()
                        .and_then(|n| n.period.as_deref().map(str::to_owned)),
                    per_kwh: now_price.map(|n| n.per_kwh),
                    pue: metered.unwrap_or(1.0 + self.config.overhead),
                    pue_measured: metered.is_some(),
                }
            })
            .collect();

        let mut rows = Vec::with_capacity(miners.len());
        // model → (miners, measured, Σ J/TH, Σ shutdown price, Σ break-even tariff, priced)
        let mut by_model: BTreeMap<String, (usize, usize, f64, f64, f64, usize)> = BTreeMap::new();
        for m in miners {
            let nameplate = m.nominal_watts / m.nominal_ths;
            let measured = match (m.proven_ths, m.mining_watts) {
                (Some(ths), Some(w)) if ths >= m.nominal_ths * MIN_PROVEN_FRACTION && w > 0.0 => {
                    Some(w / ths).filter(|j| {
                        *j >= nameplate * MEASURED_JTH_BAND.0
                            && *j <= nameplate * MEASURED_JTH_BAND.1
                    })
                }
                _ => None,
            };
            let measured = {
                let mut book = self
                    .measured
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match measured {
                    Some(j) => {
                        book.insert(m.id.to_owned(), j);
                        Some(j)
                    }
                    None => book.get(m.id).copied(),
                }
            };
            let jth = measured.unwrap_or(nameplate);
            let container = container_rows.iter().find(|c| c.name == m.container);
            let priced = container.and_then(|c| Some((c.per_kwh?, c.pue)));
            let ratio = match (revenue, price, priced) {
                (Some(r), Some(p), Some((per_kwh, pue))) => {
                    Some(cost_ratio(&r, p, jth, per_kwh, pue))
                }
                _ => None,
            };
            let entry = by_model.entry(m.model.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(measured.is_some());
            entry.2 += jth;
            if let (Some(r), Some((per_kwh, pue))) = (revenue, priced) {
                entry.3 += shutdown_price(&r, jth, per_kwh, pue);
                entry.4 += price.map_or(0.0, |p| break_even_tariff(&r, p, jth, pue));
                entry.5 += 1;
            }
            rows.push(MinerEconomics {
                id: m.id.to_owned(),
                container: m.container.to_owned(),
                model: m.model.to_owned(),
                joules_per_th: jth,
                measured: measured.is_some(),
                cost_ratio: ratio,
            });
        }
        let models: Vec<ModelEconomics> = by_model
            .into_iter()
            .map(
                |(model, (n, measured, jth, shutdown, tariff, priced))| ModelEconomics {
                    model,
                    miners: n,
                    measured,
                    joules_per_th: jth / n.max(1) as f64,
                    shutdown_price: (priced > 0).then(|| shutdown / priced as f64),
                    break_even_tariff_per_kwh: (priced > 0 && price.is_some())
                        .then(|| tariff / priced as f64),
                },
            )
            .collect();

        self.record_metrics(&models, &container_rows);
        let evaluation = Evaluation {
            hold,
            miners: rows.clone(),
        };
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = Last {
            models,
            containers: container_rows,
            miners: rows,
        };
        evaluation
    }

    fn record_metrics(&self, models: &[ModelEconomics], containers: &[ContainerEconomics]) {
        let currency = self.config.currency.clone();
        for m in models {
            if let Some(p) = m.shutdown_price {
                gauge!("hashgate_model_shutdown_price", "model" => m.model.clone(), "currency" => currency.clone()).set(p);
            }
            if let Some(t) = m.break_even_tariff_per_kwh {
                gauge!("hashgate_model_break_even_tariff_per_kwh", "model" => m.model.clone(), "currency" => currency.clone()).set(t);
            }
        }
        for c in containers {
            if let Some(p) = c.per_kwh {
                gauge!("hashgate_container_tariff_per_kwh", "container" => c.name.clone(), "currency" => currency.clone()).set(p);
            }
            gauge!("hashgate_economics_pue", "container" => c.name.clone()).set(c.pue);
        }
    }

    /// The figures for `/api/v1/economics` (and the price and hashprice gauges): price
    /// and network as of now, models, containers and miners as of the last evaluation.
    pub fn snapshot(&self, now: Instant) -> EconomicsJson {
        let reading = self.price.reading(now);
        let (failures, last_error) = self.price.failures();
        let network = self.network();
        let revenue = network.and_then(Result::ok).map(|n| self.revenue_of(n));
        let price = reading.map(|r| r.price);
        let hashprice = revenue.zip(price).map(|(r, p)| r.hashprice(p));
        let currency = self.config.currency.clone();
        if let Some(p) = price {
            gauge!("hashgate_coin_price", "currency" => currency.clone()).set(p);
        }
        if let Some(h) = hashprice {
            gauge!("hashgate_hashprice", "currency" => currency.clone()).set(h);
        }
        let stale = reading.is_none_or(|r| r.stale);
        gauge!("hashgate_price_stale").set(f64::from(u8::from(stale)));
        if let Some(r) = reading {
            gauge!("hashgate_price_age_seconds").set(r.age.as_secs_f64());
        }
        let hold = match (reading, network) {
            (None, _) => Some(Hold::NoPrice),
            (Some(r), _) if r.stale => Some(Hold::PriceStale),
            (_, None) => Some(Hold::NoJob),
            (_, Some(Err(_))) => Some(Hold::BadJob),
            _ => None,
        };
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        EconomicsJson {
            currency,
            price,
            price_source: self.price.source_label(),
            price_url: self.price.url().map(str::to_owned),
            price_age_seconds: reading.map(|r| r.age.as_secs_f64()),
            price_stale: stale,
            price_failures: failures,
            price_last_error: last_error,
            difficulty: revenue.map(|r| r.network.difficulty),
            height: revenue.map(|r| r.network.height),
            subsidy_btc: revenue.map(|r| r.network.subsidy_sats() as f64 / SATS_PER_BTC),
            fees_per_block_btc: self.config.fees_sats / SATS_PER_BTC,
            pool_fee_percent: self.config.pool_fee * 100.0,
            hashprice_sats_per_th_day: revenue.map(|r| r.sats_per_th_day()),
            hashprice_per_th_day: hashprice,
            hold,
            curtail: self.config.rule.is_some(),
            models: last.models.clone(),
            containers: last.containers.clone(),
            miners: last.miners.clone(),
        }
    }
}

fn unix_secs(wall: SystemTime) -> i64 {
    wall.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `GET /api/v1/economics`.
pub fn router(economics: Arc<Economics>) -> axum::Router {
    axum::Router::new().route(
        "/api/v1/economics",
        axum::routing::get(move || {
            let economics = economics.clone();
            async move { axum::Json(economics.snapshot(Instant::now())) }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::economics::EconomicsConfigRaw;

    fn economics(extra: &str) -> Economics {
        let raw: EconomicsConfigRaw = toml::from_str(&format!(
            "price = 100000\nfees_per_block_btc = 0.25\npool_fee_percent = 2\noverhead = 0.1\n{extra}\n\
             [[tariffs]]\nname = \"grid\"\nper_kwh = 0.06\n"
        ))
        .unwrap();
        Economics::new(raw.validate(&[Arc::from("c1")]).unwrap(), None)
    }

    fn block_881423() -> Option<Result<Network, NetworkError>> {
        Some(Ok(Network {
            difficulty: 108_105_433_845_147.16,
            height: 881_423,
        }))
    }

    fn miner<'a>(id: &'a str, proven: Option<f64>, watts: Option<f64>) -> MinerInput<'a> {
        MinerInput {
            id,
            container: "c1",
            model: "S19XP",
            nominal_watts: 3010.0,
            nominal_ths: 140.0,
            proven_ths: proven,
            mining_watts: watts,
        }
    }

    /// Nameplate 3010 W / 140 TH/s = 21.5 J/TH; at 0.06 USD/kWh and PUE 1.1 the cost ratio
    /// is 0.553334 and the shutdown price 55,333.41 USD (cost::tests works both by hand).
    /// A miner proving 100 TH/s at 3010 W measures 30.1 J/TH: ratio × 30.1 / 21.5 = 0.774668.
    #[test]
    fn measured_efficiency_tariff_and_overhead() {
        let e = economics("");
        let now = Instant::now();
        let ev = e.evaluate_with(
            block_881423(),
            now,
            SystemTime::UNIX_EPOCH,
            &[
                miner("a", None, Some(3010.0)),
                miner("b", Some(100.0), Some(3010.0)),
                miner("c", Some(10.0), Some(3010.0)),
            ],
            &[ContainerInput {
                name: "c1",
                metered_watts: None,
                it_watts: 9030.0,
            }],
        );
        assert_eq!(ev.hold, None);
        let close = |a: f64, b: f64| (a - b).abs() < b * 1e-5;
        let [a, b, c] = &ev.miners[..] else { panic!() };
        assert!(!a.measured && close(a.cost_ratio.unwrap(), 0.553_334));
        assert!(
            b.measured && close(b.joules_per_th, 30.1) && close(b.cost_ratio.unwrap(), 0.774_668)
        );
        // 10 TH/s proven of 140: too little to measure (a young window), nameplate stands.
        assert!(!c.measured && close(c.joules_per_th, 21.5));
        let snap = e.snapshot(now);
        // No hub, so no live job: the snapshot shows no network figures.
        assert_eq!(snap.hashprice_per_th_day, None);
        let model = &snap.models[0];
        assert_eq!((model.miners, model.measured), (3, 1));
        // Mean J/TH (21.5 + 30.1 + 21.5) / 3 = 24.3667; shutdown price is linear in J/TH:
        // 55,333.41 × 24.3667 / 21.5 = 62,711.2 USD.
        assert!(close(model.joules_per_th, 24.366_667));
        assert!(close(model.shutdown_price.unwrap(), 62_711.2), "{model:?}");
        let c1 = &snap.containers[0];
        assert_eq!(
            (c1.pue, c1.pue_measured, c1.per_kwh),
            (1.1, false, Some(0.06))
        );

        // Asleep, "b" proves nothing: its last measurement stands, not the nameplate.
        let asleep = e.evaluate_with(
            block_881423(),
            now,
            SystemTime::UNIX_EPOCH,
            &[miner("b", None, None)],
            &[ContainerInput {
                name: "c1",
                metered_watts: None,
                it_watts: 0.0,
            }],
        );
        assert!(asleep.miners[0].measured && close(asleep.miners[0].joules_per_th, 30.1));
    }

    #[test]
    fn metered_pue_and_holds() {
        let e = economics("");
        let now = Instant::now();
        let container = |metered| ContainerInput {
            name: "c1",
            metered_watts: metered,
            it_watts: 10_000.0,
        };
        let run = |network, metered| {
            e.evaluate_with(
                network,
                now,
                SystemTime::UNIX_EPOCH,
                &[miner("a", None, None)],
                &[container(metered)],
            )
        };
        let ev = run(block_881423(), Some(12_000.0));
        assert_eq!(ev.hold, None);
        let c1 = e.snapshot(now).containers[0].clone();
        assert_eq!((c1.pue, c1.pue_measured), (1.2, true));
        // A meter reading below the IT load is not a PUE: the overhead stands.
        run(block_881423(), Some(9_000.0));
        assert_eq!(e.snapshot(now).containers[0].pue, 1.1);

        // The ledger's figures: 10 kWh of miner energy at 0.06 with the metered-out PUE.
        let cost = e
            .cost_of_energy("c1", 10.0, SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!((cost - 0.66).abs() < 1e-9, "{cost}");
        // The default tariff prices any container; one never evaluated gets 1 + overhead.
        let other = e
            .cost_of_energy("other", 10.0, SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!((other - 0.66).abs() < 1e-9, "{other}");
        e.set_price_signal(Some(("peak", 0.2)));
        let peak = e
            .cost_of_energy("c1", 10.0, SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!((peak - 2.2).abs() < 1e-9, "{peak}");
        e.set_price_signal(None);
        // No hub in this test: no job, so no revenue figure.
        assert_eq!(e.revenue_of_hashes(1e15, now), None);

        assert_eq!(run(None, None).hold, Some(Hold::NoJob));
        let bad = run(Some(Err(NetworkError::Difficulty(0))), None);
        assert_eq!(bad.hold, Some(Hold::BadJob));
        assert_eq!(bad.miners[0].cost_ratio, None);
    }
}
