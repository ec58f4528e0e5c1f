//! Writes the registry's figures as metric families, one family at a time (the text format
//! wants a family's samples together).

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::stats::{PoolReject, Undelivered, UpstreamSnapshot, UpstreamState, Window};
use hashgate_protocol::work::ShareReject;

use super::text::{Kind, TextWriter};
use super::workers::{SeriesSlots, SiteRow, WorkerRow};

/// What one scrape writes besides the recorder's output.
pub(super) struct Inputs<'a> {
    pub rows: &'a BTreeMap<String, WorkerRow>,
    pub site: &'a SiteRow,
    pub slots: &'a SeriesSlots,
    pub upstreams: &'a [UpstreamSnapshot],
    /// (channel index, (prefixes in use, capacity)).
    pub channels: &'a [(usize, (u32, u32))],
    /// The miner listeners.
    pub listeners: &'a [std::sync::Arc<crate::downstream::ListenerStatus>],
    /// The pool groups' balancer figures (none without a hub).
    pub groups: &'a [crate::hub::GroupStatus],
}

const STATES: [UpstreamState; 5] = [
    UpstreamState::Connecting,
    UpstreamState::Active,
    UpstreamState::Backup,
    UpstreamState::Down,
    UpstreamState::Removed,
];

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn count(n: u64) -> f64 {
    // Exact below 2⁵³ shares, which no site reaches.
    n as f64
}

pub(super) fn render(head: String, inputs: &Inputs<'_>) -> String {
    let mut w = TextWriter::new(head);
    site(&mut w, inputs);
    worker_gauges(&mut w, inputs.rows);
    worker_counters(&mut w, inputs.rows);
    upstreams(&mut w, inputs.upstreams);
    channels(&mut w, inputs.channels);
    listeners(&mut w, inputs.listeners);
    pool_groups(&mut w, inputs.groups);
    super::process::render(&mut w);
    w.finish()
}

fn site(w: &mut TextWriter, inputs: &Inputs<'_>) {
    w.family(
        "hashgate_miners_connected",
        Kind::Gauge,
        "Miner connections open now, authorized or not.",
    );
    w.sample(
        "hashgate_miners_connected",
        &[],
        count(inputs.site.connected),
    );
    w.family(
        "hashgate_site_hashrate_hashes_per_second",
        Kind::Gauge,
        "Share-proven hashrate of every connected miner, by averaging window.",
    );
    for (window, rate) in Window::ALL.iter().zip(inputs.site.hashrate) {
        w.sample(
            "hashgate_site_hashrate_hashes_per_second",
            &[("window", window.label())],
            rate,
        );
    }
    w.family(
        "hashgate_worker_series",
        Kind::Gauge,
        "Worker names that have a series of their own.",
    );
    w.sample(
        "hashgate_worker_series",
        &[],
        count(inputs.slots.used() as u64),
    );
    w.family(
        "hashgate_worker_series_limit",
        Kind::Gauge,
        "Most worker names given a series of their own (http.max_worker_series).",
    );
    w.sample(
        "hashgate_worker_series_limit",
        &[],
        count(inputs.slots.limit() as u64),
    );
    w.family(
        "hashgate_worker_series_capped",
        Kind::Gauge,
        "1 once some worker names are summed under worker=\"_other\" because of the limit.",
    );
    w.sample(
        "hashgate_worker_series_capped",
        &[],
        f64::from(u8::from(inputs.slots.capped())),
    );
}

fn worker_gauges(w: &mut TextWriter, rows: &BTreeMap<String, WorkerRow>) {
    const HASHRATE: &str = "hashgate_miner_hashrate_hashes_per_second";
    w.family(
        HASHRATE,
        Kind::Gauge,
        "Share-proven hashrate of a worker's live connections, by averaging window (absent while younger than 15 s).",
    );
    for (worker, row) in rows {
        for (window, rate) in Window::ALL.iter().zip(row.hashrate) {
            if let Some(rate) = rate {
                w.sample(
                    HASHRATE,
                    &[("worker", worker), ("window", window.label())],
                    rate,
                );
            }
        }
    }
    let gauge =
        |w: &mut TextWriter, name: &str, help: &str, value: &dyn Fn(&WorkerRow) -> Option<f64>| {
            w.family(name, Kind::Gauge, help);
            for (worker, row) in rows {
                if let Some(v) = value(row) {
                    w.sample(name, &[("worker", worker)], v);
                }
            }
        };
    gauge(
        w,
        "hashgate_miner_connections",
        "Live connections under the worker name.",
        &|r| Some(count(r.live)),
    );
    gauge(
        w,
        "hashgate_miner_difficulty",
        "Share difficulty assigned now (mean over the worker's live connections).",
        &|r| r.difficulty(),
    );
    gauge(
        w,
        "hashgate_miner_best_share_difficulty",
        "Highest difficulty a share of a live connection reached.",
        &|r| (r.live > 0).then_some(r.best_share),
    );
    gauge(
        w,
        "hashgate_miner_last_share_timestamp_seconds",
        "Unix time of the worker's last accepted share.",
        &|r| r.last_share.map(unix_seconds),
    );
    gauge(
        w,
        "hashgate_miner_connected_since_timestamp_seconds",
        "Unix time the worker's oldest live connection was accepted.",
        &|r| r.connected_since.map(unix_seconds),
    );
    const INFO: &str = "hashgate_miner_info";
    w.family(
        INFO,
        Kind::Gauge,
        "Live connections of the worker, labelled with the remote host, user agent and extranonce prefix of the most recent one.",
    );
    for (worker, row) in rows {
        if let Some(info) = &row.info {
            w.sample(
                INFO,
                &[
                    ("worker", worker),
                    ("remote", &info.remote),
                    ("user_agent", &info.user_agent),
                    ("prefix", &info.prefix),
                ],
                row.live as f64,
            );
        }
    }
}

fn worker_counters(w: &mut TextWriter, rows: &BTreeMap<String, WorkerRow>) {
    const SHARES: &str = "hashgate_shares_total";
    w.family(
        SHARES,
        Kind::Counter,
        "Shares checked by hashgate: result accepted (reason none) or rejected with its reason.",
    );
    for (worker, row) in rows {
        let t = &row.totals;
        w.sample(
            SHARES,
            &[
                ("worker", worker),
                ("result", "accepted"),
                ("reason", "none"),
            ],
            count(t.accepted),
        );
        for (reason, n) in ShareReject::ALL.iter().zip(t.rejected) {
            w.sample(
                SHARES,
                &[
                    ("worker", worker),
                    ("result", "rejected"),
                    ("reason", reason.label()),
                ],
                count(n),
            );
        }
    }
    const DIFF: &str = "hashgate_accepted_difficulty_total";
    w.family(
        DIFF,
        Kind::Counter,
        "Sum of the assigned difficulty of accepted shares; rate() × 2^32 is the hashrate over any range.",
    );
    for (worker, row) in rows {
        w.sample(DIFF, &[("worker", worker)], row.totals.accepted_difficulty);
    }
    const POOL: &str = "hashgate_pool_shares_total";
    w.family(
        POOL,
        Kind::Counter,
        "Shares forwarded to the pool: accepted, rejected by the pool's reason, or undelivered and why.",
    );
    for (worker, row) in rows {
        let t = &row.totals;
        w.sample(
            POOL,
            &[
                ("worker", worker),
                ("result", "accepted"),
                ("reason", "none"),
            ],
            count(t.pool_accepted),
        );
        for (reason, n) in PoolReject::ALL.iter().zip(t.pool_rejected) {
            w.sample(
                POOL,
                &[
                    ("worker", worker),
                    ("result", "rejected"),
                    ("reason", reason.label()),
                ],
                count(n),
            );
        }
        for (reason, n) in Undelivered::ALL.iter().zip(t.undelivered) {
            w.sample(
                POOL,
                &[
                    ("worker", worker),
                    ("result", "undelivered"),
                    ("reason", reason.label()),
                ],
                count(n),
            );
        }
    }
    let counter =
        |w: &mut TextWriter, name: &str, help: &str, value: &dyn Fn(&WorkerRow) -> u64| {
            w.family(name, Kind::Counter, help);
            for (worker, row) in rows {
                w.sample(name, &[("worker", worker)], count(value(row)));
            }
        };
    counter(
        w,
        "hashgate_blocks_found_total",
        "Shares that met the network target.",
        &|r| r.totals.blocks,
    );
    counter(
        w,
        "hashgate_miner_reconnects_total",
        "Connections authorized under the worker name after its first.",
        &|r| r.reconnects(),
    );
}

fn upstreams(w: &mut TextWriter, ups: &[UpstreamSnapshot]) {
    const STATE: &str = "hashgate_upstream_state";
    w.family(
        STATE,
        Kind::Gauge,
        "1 for the state the pool is in (connecting, active, backup, down, removed), 0 for the others.",
    );
    for up in ups {
        for state in STATES {
            let on = f64::from(u8::from(up.state == state));
            w.sample(STATE, &[("pool", &up.pool), ("state", state.label())], on);
        }
    }
    w.family(
        "hashgate_upstream_difficulty",
        Kind::Gauge,
        "Difficulty the pool set.",
    );
    for up in ups {
        w.sample(
            "hashgate_upstream_difficulty",
            &[("pool", &up.pool)],
            up.difficulty,
        );
    }
    const CHANNEL_DIFFICULTY: &str = "hashgate_upstream_channel_difficulty";
    w.family(
        CHANNEL_DIFFICULTY,
        Kind::Gauge,
        "Difficulty the pool set on each channel's live connection to it.",
    );
    for up in ups {
        for c in &up.channels {
            let channel = c.channel.to_string();
            w.sample(
                CHANNEL_DIFFICULTY,
                &[("pool", &up.pool), ("channel", &channel)],
                c.difficulty,
            );
        }
    }
    w.family(
        "hashgate_upstream_submitted_total",
        Kind::Counter,
        "Shares sent to the pool.",
    );
    for up in ups {
        w.sample(
            "hashgate_upstream_submitted_total",
            &[("pool", &up.pool)],
            count(up.submitted),
        );
    }
    const SHARES: &str = "hashgate_upstream_shares_total";
    w.family(
        SHARES,
        Kind::Counter,
        "The pool's verdicts: accepted, rejected by reason, or undelivered and why.",
    );
    for up in ups {
        let pool: &str = &up.pool;
        w.sample(
            SHARES,
            &[("pool", pool), ("result", "accepted"), ("reason", "none")],
            count(up.accepted),
        );
        for (reason, n) in PoolReject::ALL.iter().zip(up.rejected) {
            w.sample(
                SHARES,
                &[
                    ("pool", pool),
                    ("result", "rejected"),
                    ("reason", reason.label()),
                ],
                count(n),
            );
        }
        for (reason, n) in Undelivered::ALL.iter().zip(up.undelivered_by_reason) {
            w.sample(
                SHARES,
                &[
                    ("pool", pool),
                    ("result", "undelivered"),
                    ("reason", reason.label()),
                ],
                count(n),
            );
        }
    }
    let counter =
        |w: &mut TextWriter, name: &str, help: &str, value: &dyn Fn(&UpstreamSnapshot) -> u64| {
            w.family(name, Kind::Counter, help);
            for up in ups {
                w.sample(name, &[("pool", &up.pool)], count(value(up)));
            }
        };
    counter(
        w,
        "hashgate_upstream_failovers_total",
        "Times miners were moved off the pool.",
        &|u| u.failovers,
    );
    counter(
        w,
        "hashgate_upstream_reconnects_total",
        "Reconnects to the pool after a drop.",
        &|u| u.reconnects,
    );
    counter(
        w,
        "hashgate_upstream_blocks_total",
        "Block candidates submitted through the pool.",
        &|u| u.blocks,
    );
}

fn channels(w: &mut TextWriter, channels: &[(usize, (u32, u32))]) {
    const USED: &str = "hashgate_upstream_extranonce_prefixes_used";
    const CAPACITY: &str = "hashgate_upstream_extranonce_prefixes_capacity";
    w.family(
        USED,
        Kind::Gauge,
        "Extranonce prefixes leased to miners on an upstream channel (one pool connection).",
    );
    for (index, (used, _)) in channels {
        w.sample(USED, &[("channel", &index.to_string())], f64::from(*used));
    }
    w.family(
        CAPACITY,
        Kind::Gauge,
        "Extranonce prefixes an upstream channel can lease.",
    );
    for (index, (_, capacity)) in channels {
        w.sample(
            CAPACITY,
            &[("channel", &index.to_string())],
            f64::from(*capacity),
        );
    }
}

fn listeners(w: &mut TextWriter, listeners: &[std::sync::Arc<crate::downstream::ListenerStatus>]) {
    const CONNECTIONS: &str = "hashgate_listener_connections";
    const ACCEPTED: &str = "hashgate_listener_accepted_total";
    const REFUSED: &str = "hashgate_listener_refused_total";
    const MAX: &str = "hashgate_listener_max_connections";
    w.family(
        CONNECTIONS,
        Kind::Gauge,
        "Miner connections open now on a listener (TLS handshaking, subscribed or authorized).",
    );
    for l in listeners {
        w.sample(CONNECTIONS, &[("listener", &l.name)], count(l.open()));
    }
    w.family(
        MAX,
        Kind::Gauge,
        "A listener's connection cap (listeners[].max_connections; proxy.max_connections still caps the site).",
    );
    for l in listeners {
        w.sample(
            MAX,
            &[("listener", &l.name)],
            count(l.max_connections as u64),
        );
    }
    w.family(
        ACCEPTED,
        Kind::Counter,
        "Connections a listener gave a session.",
    );
    for l in listeners {
        w.sample(ACCEPTED, &[("listener", &l.name)], count(l.accepted()));
    }
    w.family(
        REFUSED,
        Kind::Counter,
        "Connections a listener closed without a session, by reason (its own cap, the site's cap, the unauthorized budget, a failed TLS handshake).",
    );
    for l in listeners {
        for reason in crate::downstream::REFUSAL_LABELS {
            w.sample(
                REFUSED,
                &[("listener", &l.name), ("reason", reason)],
                count(l.refused(reason)),
            );
        }
    }
}

fn pool_groups(w: &mut TextWriter, groups: &[crate::hub::GroupStatus]) {
    type Figure = fn(&crate::hub::GroupStatus) -> f64;
    let families: [(&str, Kind, &str, Figure); 6] = [
        (
            "hashgate_pool_group_hashrate_target_ratio",
            Kind::Gauge,
            "Share of the site's hashrate a pool group should get: its weight over the ready groups' weights (0 while it has no ready pool).",
            |g| g.target_ratio,
        ),
        (
            "hashgate_pool_group_hashrate_ratio",
            Kind::Gauge,
            "Share of the site's share-proven hashrate (5-minute rates) working for a pool group, at the balancer's last run.",
            |g| g.achieved_ratio,
        ),
        (
            "hashgate_pool_group_hashrate_hashes_per_second",
            Kind::Gauge,
            "Share-proven hashrate of the miners working for a pool group, at the balancer's last run.",
            |g| g.hashrate,
        ),
        (
            "hashgate_pool_group_miners",
            Kind::Gauge,
            "Miners working for a pool group, at the balancer's last run.",
            |g| g.miners as f64,
        ),
        (
            "hashgate_pool_group_ready",
            Kind::Gauge,
            "1 while a pool group has an active pool; 0 while it donates its share to the other groups.",
            |g| if g.state == "ready" { 1.0 } else { 0.0 },
        ),
        (
            "hashgate_pool_group_moves_total",
            Kind::Counter,
            "Miners moved into a pool group by the balancer (rebalancing, failover of a group without pools, return home).",
            |g| count(g.moves),
        ),
    ];
    for (name, kind, help, figure) in families {
        w.family(name, kind, help);
        for g in groups {
            w.sample(name, &[("group", &g.name)], figure(g));
        }
    }
}
