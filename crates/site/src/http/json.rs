//! The JSON shapes of the status API, built from stats snapshots (pure: times are passed in).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::stats::{
    DepartedWorker, MinerSnapshot, MinerTotals, PoolReject, Transport, Undelivered,
    UpstreamSnapshot, Window,
};
use hashgate_protocol::work::ShareReject;

/// Where a miner connection stands, as the API reports and filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MinerState {
    /// Connected, not authorized yet.
    Unauthorized,
    /// Authorized, no share yet, connected for less than the silence limit.
    Starting,
    /// An accepted share within the silence limit.
    Active,
    /// No accepted share for longer than the silence limit.
    Silent,
    /// Not sharing because the power controller holds its miner asleep (or an operator
    /// pinned it for maintenance): quiet on purpose.
    Sleeping,
}

impl MinerState {
    /// Every state.
    pub const ALL: [MinerState; 5] = [
        MinerState::Unauthorized,
        MinerState::Starting,
        MinerState::Active,
        MinerState::Silent,
        MinerState::Sleeping,
    ];

    /// Name in JSON and in `?state=`.
    pub fn label(self) -> &'static str {
        match self {
            MinerState::Unauthorized => "unauthorized",
            MinerState::Starting => "starting",
            MinerState::Active => "active",
            MinerState::Silent => "silent",
            MinerState::Sleeping => "sleeping",
        }
    }

    /// `sleeping` instead of `starting` or `silent` when the miner is `asleep` by the power
    /// controller's choice; a miner still sharing stays `active`.
    pub fn held_asleep(self, asleep: bool) -> MinerState {
        match self {
            MinerState::Starting | MinerState::Silent if asleep => MinerState::Sleeping,
            other => other,
        }
    }

    /// The state of `snap` at wall time `now`.
    pub fn of(snap: &MinerSnapshot, now: SystemTime, silent_after: Duration) -> MinerState {
        if snap.identity.is_none() {
            return MinerState::Unauthorized;
        }
        let since = |t: SystemTime| now.duration_since(t).unwrap_or(Duration::ZERO);
        match snap.last_share {
            Some(t) if since(t) <= silent_after => MinerState::Active,
            Some(_) => MinerState::Silent,
            None if since(snap.connected_since) <= silent_after => MinerState::Starting,
            None => MinerState::Silent,
        }
    }
}

/// Unix seconds (millisecond precision).
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

/// Hashrate per window label (`1m`, `5m`, `15m`, `1h`), H/s; `null` while too young.
pub type HashrateJson = BTreeMap<&'static str, Option<f64>>;

fn hashrate_json(rates: [Option<f64>; 4]) -> HashrateJson {
    Window::ALL.iter().map(|w| w.label()).zip(rates).collect()
}

fn by_label<const N: usize>(
    labels: [&'static str; N],
    counts: [u64; N],
) -> BTreeMap<&'static str, u64> {
    labels.into_iter().zip(counts).collect()
}

/// Share counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharesJson {
    /// Shares that met the miner's target.
    pub accepted: u64,
    /// Σ assigned difficulty of accepted shares.
    pub accepted_difficulty: f64,
    /// Rejected shares, total.
    pub rejected: u64,
    /// Rejected shares by reason (every reason listed).
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Shares the pool accepted.
    pub pool_accepted: u64,
    /// Shares the pool rejected, total.
    pub pool_rejected: u64,
    /// Pool rejects by reason.
    pub pool_rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Shares that met the pool's target but got no verdict, total.
    pub undelivered: u64,
    /// Undelivered by reason.
    pub undelivered_by_reason: BTreeMap<&'static str, u64>,
    /// Blocks found.
    pub blocks: u64,
}

impl SharesJson {
    /// From counters.
    pub fn of(t: &MinerTotals) -> SharesJson {
        SharesJson {
            accepted: t.accepted,
            accepted_difficulty: t.accepted_difficulty,
            rejected: t.rejected.iter().sum(),
            rejected_by_reason: by_label(ShareReject::ALL.map(ShareReject::label), t.rejected),
            pool_accepted: t.pool_accepted,
            pool_rejected: t.pool_rejected.iter().sum(),
            pool_rejected_by_reason: by_label(
                PoolReject::ALL.map(PoolReject::label),
                t.pool_rejected,
            ),
            undelivered: t.undelivered.iter().sum(),
            undelivered_by_reason: by_label(
                Undelivered::ALL.map(Undelivered::label),
                t.undelivered,
            ),
            blocks: t.blocks,
        }
    }
}

/// One miner connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinerJson {
    /// Session id (unique for the life of the process).
    pub id: u64,
    /// Worker name; `null` until authorized.
    pub worker: Option<String>,
    /// Remote address.
    pub remote: Option<String>,
    /// User agent from `mining.subscribe`.
    pub user_agent: Option<String>,
    /// Extranonce prefix, hex.
    pub extranonce_prefix: Option<String>,
    /// State.
    pub state: MinerState,
    /// Share-proven hashrate per window.
    pub hashrate: HashrateJson,
    /// Difficulty assigned now.
    pub difficulty: f64,
    /// Highest share difficulty reached.
    pub best_share: f64,
    /// Unix time of the last accepted share.
    pub last_share: Option<f64>,
    /// Seconds since the last accepted share.
    pub last_share_age_seconds: Option<f64>,
    /// Unix time the connection was accepted.
    pub connected_since: f64,
    /// Connections authorized under this worker name after the first.
    pub reconnects: u64,
    /// Counters.
    pub shares: SharesJson,
    /// The pool group it works for now; `null` until authorized (filled by the API from
    /// the split configuration).
    pub pool_group: Option<String>,
    /// The group its listener or a worker route pins it to (`null`: the balancer places
    /// it); it works elsewhere only while that group has no ready pool.
    pub home_group: Option<String>,
}

impl MinerJson {
    /// From a snapshot at wall time `now`; `reconnects` counts the worker's reconnects.
    pub fn of(
        id: u64,
        snap: &MinerSnapshot,
        now: SystemTime,
        silent_after: Duration,
        reconnects: u64,
    ) -> MinerJson {
        let identity = snap.identity.as_ref();
        MinerJson {
            id,
            worker: identity.map(|i| i.worker.clone()),
            remote: identity.map(|i| i.remote.to_string()),
            user_agent: identity.map(|i| i.user_agent.clone()),
            extranonce_prefix: identity.map(|i| i.prefix_hex.clone()),
            state: MinerState::of(snap, now, silent_after),
            hashrate: hashrate_json(snap.hashrate),
            difficulty: snap.difficulty,
            best_share: snap.best_share,
            last_share: snap.last_share.map(unix),
            last_share_age_seconds: snap.last_share.map(|t| {
                now.duration_since(t)
                    .unwrap_or(Duration::ZERO)
                    .as_secs_f64()
            }),
            connected_since: unix(snap.connected_since),
            reconnects,
            shares: SharesJson::of(&snap.totals),
            pool_group: None,
            home_group: None,
        }
    }

    /// The hashrate over `window`, if reported.
    pub fn rate(&self, window: Window) -> Option<f64> {
        self.hashrate.get(window.label()).copied().flatten()
    }
}

/// `GET /api/v1/miners/{worker}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerJson {
    /// Worker name.
    pub worker: String,
    /// Σ hashrate of its live connections per window.
    pub hashrate: HashrateJson,
    /// Connections authorized under the name after the first.
    pub reconnects: u64,
    /// Live connections.
    pub connections: Vec<MinerJson>,
    /// Counters of its departed connections.
    pub departed: DepartedJson,
}

/// What is kept of a worker's departed connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepartedJson {
    /// Departed connections.
    pub connections: u64,
    /// Unix time of their last accepted share.
    pub last_share: Option<f64>,
    /// Their counters.
    pub shares: SharesJson,
}

impl DepartedJson {
    /// From the registry's departed book.
    pub fn of(gone: &DepartedWorker) -> DepartedJson {
        DepartedJson {
            connections: gone.connections,
            last_share: gone.last_share.map(unix),
            shares: SharesJson::of(&gone.totals),
        }
    }
}

/// Sums per-window rates, `None` where no connection reports one.
pub fn sum_rates<'a>(rates: impl IntoIterator<Item = &'a [Option<f64>; 4]>) -> HashrateJson {
    let mut sum = [None; 4];
    for r in rates {
        for (s, v) in sum.iter_mut().zip(r) {
            if let Some(v) = v {
                *s = Some(s.unwrap_or(0.0) + v);
            }
        }
    }
    hashrate_json(sum)
}

/// Submit round-trip figures, milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyJson {
    /// Last round trip.
    pub last_ms: Option<f64>,
    /// Moving average over about the last 8.
    pub avg_ms: Option<f64>,
}

/// One pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolJson {
    /// Pool name.
    pub pool: String,
    /// `connecting`, `active`, `backup` or `down`.
    pub state: &'static str,
    /// Difficulty the pool set.
    pub difficulty: f64,
    /// Shares sent.
    pub submitted: u64,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Rejects, total.
    pub rejected: u64,
    /// Rejects by reason.
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Undelivered, total.
    pub undelivered: u64,
    /// Undelivered by reason.
    pub undelivered_by_reason: BTreeMap<&'static str, u64>,
    /// Times miners were moved off this pool.
    pub failovers: u64,
    /// Reconnects after a drop.
    pub reconnects: u64,
    /// Block candidates submitted.
    pub blocks: u64,
    /// Submit round trip.
    pub submit_latency: LatencyJson,
    /// The difficulty on each channel's live connection to the pool.
    pub channels: Vec<PoolChannelJson>,
    /// Whether the pool is reached over TLS (`stratum+ssl://`).
    pub tls: bool,
    /// The pool's TLS certificate at the last good handshake; null for plain TCP or
    /// before the first.
    pub tls_peer: Option<TlsPeerJson>,
}

/// A pool's TLS leaf certificate, as the last handshake showed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsPeerJson {
    /// Subject distinguished name.
    pub subject: String,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
    /// Days from now until `notAfter` (negative once expired).
    pub expiry_days: f64,
    /// SHA-256 (hex) of the SubjectPublicKeyInfo: the value for `tls_pin_sha256`.
    pub pin_sha256: String,
}

/// The difficulty of one channel's connection to a pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolChannelJson {
    /// Channel (upstream connection slot).
    pub channel: usize,
    /// Difficulty the pool set on the connection (1 until it sets one).
    pub difficulty: f64,
    /// Difficulty last suggested to the pool on it (`mining.suggest_difficulty`), if any.
    pub suggested_difficulty: Option<f64>,
}

impl PoolJson {
    /// From a snapshot.
    pub fn of(up: &UpstreamSnapshot) -> PoolJson {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        PoolJson {
            pool: up.pool.to_string(),
            state: up.state.label(),
            difficulty: up.difficulty,
            submitted: up.submitted,
            accepted: up.accepted,
            rejected: up.rejected.iter().sum(),
            rejected_by_reason: by_label(PoolReject::ALL.map(PoolReject::label), up.rejected),
            undelivered: up.undelivered,
            undelivered_by_reason: by_label(
                Undelivered::ALL.map(Undelivered::label),
                up.undelivered_by_reason,
            ),
            failovers: up.failovers,
            reconnects: up.reconnects,
            blocks: up.blocks,
            submit_latency: LatencyJson {
                last_ms: up.submit_latency_last.map(ms),
                avg_ms: up.submit_latency_avg.map(ms),
            },
            channels: up
                .channels
                .iter()
                .map(|c| PoolChannelJson {
                    channel: c.channel,
                    difficulty: c.difficulty,
                    suggested_difficulty: c.suggested,
                })
                .collect(),
            tls: matches!(up.transport, Transport::Tls(_)),
            tls_peer: match &up.transport {
                Transport::Tls(Some(peer)) => Some(TlsPeerJson {
                    subject: peer.subject.clone(),
                    not_after: peer.not_after,
                    expiry_days: peer.expiry_days(std::time::SystemTime::now()),
                    pin_sha256: hex::encode(peer.spki_sha256),
                }),
                _ => None,
            },
        }
    }
}

/// Extranonce space of one upstream channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelJson {
    /// Channel (upstream connection slot).
    pub channel: usize,
    /// Prefixes leased.
    pub prefixes_used: u32,
    /// Prefixes available in all.
    pub prefixes_capacity: u32,
}

/// `GET /api/v1/pools`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolsJson {
    /// Every pool, in name order.
    pub pools: Vec<PoolJson>,
    /// Every upstream channel.
    pub channels: Vec<ChannelJson>,
    /// The pool groups: target and achieved share, state (as `/api/v1/pool_groups`).
    pub pool_groups: Vec<crate::hub::GroupStatus>,
}

/// `GET /api/v1/pool_groups`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolGroupsJson {
    /// Every group in configured order: weight, state (`ready`/`donating`), target and
    /// achieved share of the site's share-proven hashrate, miners, moves.
    pub groups: Vec<crate::hub::GroupStatus>,
    /// Worker-name routes, first match wins.
    pub routes: Vec<RouteJson>,
    /// Shortest time between two balancer moves of one miner, seconds.
    pub min_move_interval_secs: f64,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteJson {
    /// The worker-name pattern.
    pub worker: String,
    /// The group its miners are pinned to.
    pub group: String,
}

/// Miner counts by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MinerCountsJson {
    /// Connections.
    pub connected: usize,
    /// Not authorized yet.
    pub unauthorized: usize,
    /// No share yet.
    pub starting: usize,
    /// Sharing.
    pub active: usize,
    /// Quiet past the limit.
    pub silent: usize,
    /// Quiet because the power controller holds the miner asleep.
    pub sleeping: usize,
}

impl MinerCountsJson {
    /// Counts one connection.
    pub fn add(&mut self, state: MinerState) {
        self.connected += 1;
        match state {
            MinerState::Unauthorized => self.unauthorized += 1,
            MinerState::Starting => self.starting += 1,
            MinerState::Active => self.active += 1,
            MinerState::Silent => self.silent += 1,
            MinerState::Sleeping => self.sleeping += 1,
        }
    }
}

/// `GET /api/v1/summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryJson {
    /// hashgate version.
    pub version: &'static str,
    /// Seconds since the server started.
    pub uptime_seconds: f64,
    /// Miner connections by state.
    pub miners: MinerCountsJson,
    /// Σ hashrate of connected miners per window.
    pub hashrate: HashrateJson,
    /// Counters over every connection since start, live and departed.
    pub shares: SharesJson,
    /// Pool names and states.
    pub pools: Vec<PoolStateJson>,
}

/// A pool's name and state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStateJson {
    /// Pool name.
    pub pool: String,
    /// State.
    pub state: &'static str,
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::stats::{MinerIdentity, MinerStats};

    #[test]
    fn states_follow_authorization_and_silence() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let limit = Duration::from_secs(300);
        let stats = MinerStats::new(Instant::now(), t0, 1.0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let snap = stats.snapshot(Instant::now());
        assert_eq!(
            MinerState::of(&snap, at(10), limit),
            MinerState::Unauthorized
        );
        stats.set_identity(MinerIdentity {
            worker: "w".into(),
            remote: "10.0.0.2:1".parse().unwrap(),
            user_agent: "ua".into(),
            prefix_hex: "01".into(),
        });
        let snap = stats.snapshot(Instant::now());
        assert_eq!(MinerState::of(&snap, at(10), limit), MinerState::Starting);
        assert_eq!(MinerState::of(&snap, at(301), limit), MinerState::Silent);
        stats.record_accepted(Instant::now(), at(400), 1.0, 1.0);
        let snap = stats.snapshot(Instant::now());
        assert_eq!(MinerState::of(&snap, at(700), limit), MinerState::Active);
        assert_eq!(MinerState::of(&snap, at(701), limit), MinerState::Silent);
        assert_eq!(
            MinerState::Silent.held_asleep(true),
            MinerState::Sleeping,
            "quiet on purpose"
        );
        assert_eq!(MinerState::Starting.held_asleep(true), MinerState::Sleeping);
        assert_eq!(MinerState::Active.held_asleep(true), MinerState::Active);
        assert_eq!(MinerState::Silent.held_asleep(false), MinerState::Silent);
        let json = MinerJson::of(7, &snap, at(410), limit, 2);
        assert_eq!(json.last_share_age_seconds, Some(10.0));
        assert_eq!(json.shares.rejected_by_reason.len(), ShareReject::ALL.len());
        let value = serde_json::to_value(&json).unwrap();
        assert_eq!(value["state"], "active");
        assert_eq!(value["hashrate"]["1m"], serde_json::Value::Null);
        assert_eq!(value["extranonce_prefix"], "01");
    }

    #[test]
    fn rates_sum_only_where_reported() {
        let sum = sum_rates(&[
            [Some(1.0), None, None, None],
            [Some(2.0), Some(5.0), None, None],
        ]);
        assert_eq!(sum["1m"], Some(3.0));
        assert_eq!(sum["5m"], Some(5.0));
        assert_eq!(sum["1h"], None);
    }
}

/// `GET /api/v1/listeners`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenersJson {
    /// Every miner listener, in configuration order.
    pub listeners: Vec<ListenerJson>,
}

/// One miner listener: its settings and connection counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerJson {
    /// Its name (`listener` metric label).
    pub name: String,
    /// The bound address.
    pub listen: String,
    /// Whether miners speak Stratum over TLS here.
    pub tls: bool,
    /// Vardiff floor.
    pub min_difficulty: f64,
    /// Vardiff ceiling.
    pub max_difficulty: f64,
    /// Difficulty a new miner starts at.
    pub initial_difficulty: f64,
    /// The listener's connection cap.
    pub max_connections: usize,
    /// The pool group its miners are routed to, if any.
    pub pool_group: Option<String>,
    /// Connections open now.
    pub connections: u64,
    /// Connections given a session so far.
    pub accepted: u64,
    /// Connections closed without a session, by reason (zero counts included).
    pub refused: std::collections::BTreeMap<&'static str, u64>,
}

impl ListenerJson {
    /// The JSON of one listener's status.
    pub fn of(l: &crate::downstream::ListenerStatus) -> ListenerJson {
        ListenerJson {
            name: l.name.to_string(),
            listen: l.addr.to_string(),
            tls: l.tls,
            min_difficulty: l.min_difficulty,
            max_difficulty: l.max_difficulty,
            initial_difficulty: l.initial_difficulty,
            max_connections: l.max_connections,
            pool_group: l.pool_group.as_deref().map(str::to_owned),
            connections: l.open(),
            accepted: l.accepted(),
            refused: crate::downstream::REFUSAL_LABELS
                .iter()
                .map(|r| (*r, l.refused(r)))
                .collect(),
        }
    }
}
