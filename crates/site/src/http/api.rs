//! Handlers. Each reads the registry in one consistent view on a blocking thread (a large
//! site means thousands of snapshots), then answers.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;

use crate::stats::{MinerSnapshot, MinerTotals};

use super::HttpState;
use super::error::ApiError;
use super::json::{
    ChannelJson, DepartedJson, ListenerJson, ListenersJson, MinerCountsJson, MinerJson, MinerState,
    PoolGroupsJson, PoolJson, PoolStateJson, PoolsJson, RouteJson, SharesJson, SummaryJson,
    WorkerJson, sum_rates,
};
use super::query::MinerQueryRaw;

/// Content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

pub(super) async fn metrics(State(state): State<HttpState>) -> Result<impl IntoResponse, ApiError> {
    let exporter = state.exporter().clone();
    let text = blocking(move || exporter.render(Instant::now())).await?;
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text))
}

/// Connections ever authorized per worker name: live ones plus departed ones.
fn connections_by_worker<'a>(
    live: &'a [(u64, MinerSnapshot)],
    departed: &'a crate::stats::Departed,
) -> HashMap<&'a str, u64> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for (_, snap) in live {
        if let Some(id) = &snap.identity {
            *counts.entry(id.worker.as_str()).or_default() += 1;
        }
    }
    for (name, gone) in &departed.by_worker {
        *counts.entry(name.as_str()).or_default() += gone.connections;
    }
    counts
}

fn miner_json(
    state: &HttpState,
    id: u64,
    snap: &MinerSnapshot,
    wall: SystemTime,
    connections: &HashMap<&str, u64>,
) -> MinerJson {
    let reconnects = snap
        .identity
        .as_ref()
        .and_then(|i| connections.get(i.worker.as_str()))
        .map_or(0, |n| n.saturating_sub(1));
    let mut json = MinerJson::of(id, snap, wall, state.inner.silent_after, reconnects);
    json.state = json.state.held_asleep(state.is_asleep(snap));
    if snap.identity.is_some()
        && let Some(hub) = state.exporter().hub()
    {
        let groups = &hub.split().config().groups;
        json.pool_group = groups.get(snap.group).map(|g| g.name.to_string());
        json.home_group = snap
            .home
            .and_then(|h| groups.get(h))
            .map(|g| g.name.to_string());
    }
    json
}

pub(super) async fn summary(State(state): State<HttpState>) -> Result<Json<SummaryJson>, ApiError> {
    blocking(move || {
        let now = Instant::now();
        let wall = SystemTime::now();
        let registry = state.exporter().registry().clone();
        let (miners, rates, totals) = registry.view(now, |live, departed| {
            let mut counts = MinerCountsJson::default();
            let mut totals = MinerTotals::default();
            for (_, snap) in live {
                counts.add(
                    MinerState::of(snap, wall, state.inner.silent_after)
                        .held_asleep(state.is_asleep(snap)),
                );
                totals.add(&snap.totals);
            }
            for gone in departed.by_worker.values() {
                totals.add(&gone.totals);
            }
            totals.add(&departed.unauthorized.totals);
            totals.add(&departed.overflow.totals);
            let rates = sum_rates(live.iter().map(|(_, s)| &s.hashrate));
            (counts, rates, totals)
        });
        Json(SummaryJson {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: now.duration_since(state.inner.started).as_secs_f64(),
            miners,
            hashrate: rates,
            shares: SharesJson::of(&totals),
            pools: registry
                .upstreams()
                .iter()
                .map(|u| PoolStateJson {
                    pool: u.pool.to_string(),
                    state: u.state.label(),
                })
                .collect(),
        })
    })
    .await
}

pub(super) async fn miners(
    State(state): State<HttpState>,
    query: Result<Query<MinerQueryRaw>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(raw) = query.map_err(|e| ApiError::MalformedQuery(e.body_text()))?;
    let query = raw.parse()?;
    blocking(move || {
        let now = Instant::now();
        let wall = SystemTime::now();
        let all = state.exporter().registry().view(now, |live, departed| {
            let connections = connections_by_worker(live, departed);
            live.iter()
                .map(|(id, snap)| miner_json(&state, *id, snap, wall, &connections))
                .collect()
        });
        let (matched, miners) = query.apply(all);
        Json(serde_json::json!({ "matched": matched, "miners": miners }))
    })
    .await
}

pub(super) async fn worker(
    State(state): State<HttpState>,
    Path(worker): Path<String>,
) -> Result<Json<WorkerJson>, ApiError> {
    blocking(move || {
        let now = Instant::now();
        let wall = SystemTime::now();
        let found = state.exporter().registry().view(now, |live, departed| {
            let connections = connections_by_worker(live, departed);
            let mine: Vec<MinerJson> = live
                .iter()
                .filter(|(_, s)| s.identity.as_ref().is_some_and(|i| i.worker == worker))
                .map(|(id, snap)| miner_json(&state, *id, snap, wall, &connections))
                .collect();
            let gone = departed.by_worker.get(&worker).copied();
            if mine.is_empty() && gone.is_none() {
                return None;
            }
            let rates: Vec<[Option<f64>; 4]> = live
                .iter()
                .filter(|(_, s)| s.identity.as_ref().is_some_and(|i| i.worker == worker))
                .map(|(_, s)| s.hashrate)
                .collect();
            Some(WorkerJson {
                hashrate: sum_rates(&rates),
                reconnects: connections
                    .get(worker.as_str())
                    .map_or(0, |n| n.saturating_sub(1)),
                connections: mine,
                departed: DepartedJson::of(&gone.unwrap_or_default()),
                worker: worker.clone(),
            })
        });
        found.map(Json).ok_or(ApiError::UnknownWorker(worker))
    })
    .await?
}

pub(super) async fn pools(State(state): State<HttpState>) -> Json<PoolsJson> {
    let exporter = state.exporter();
    let pools = exporter
        .registry()
        .upstreams()
        .iter()
        .map(PoolJson::of)
        .collect();
    let channels = exporter
        .hub()
        .map(|hub| {
            hub.channels()
                .iter()
                .map(|c| {
                    let (used, capacity) = c.prefix_usage();
                    ChannelJson {
                        channel: c.index(),
                        prefixes_used: used,
                        prefixes_capacity: capacity,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let pool_groups = exporter
        .hub()
        .map(|hub| hub.split().status())
        .unwrap_or_default();
    Json(PoolsJson {
        pools,
        channels,
        pool_groups,
    })
}

pub(super) async fn pool_groups(State(state): State<HttpState>) -> Json<PoolGroupsJson> {
    let exporter = state.exporter();
    let Some(hub) = exporter.hub() else {
        return Json(PoolGroupsJson {
            groups: Vec::new(),
            routes: Vec::new(),
            min_move_interval_secs: 0.0,
        });
    };
    let book = hub.split();
    let config = book.config();
    let routes = config
        .routes
        .iter()
        .map(|r| RouteJson {
            worker: r.worker.as_str().to_owned(),
            group: config
                .groups
                .get(r.group)
                .map(|g| g.name.to_string())
                .unwrap_or_default(),
        })
        .collect();
    Json(PoolGroupsJson {
        groups: book.status(),
        routes,
        min_move_interval_secs: config.min_move_interval.as_secs_f64(),
    })
}

pub(super) async fn listeners(State(state): State<HttpState>) -> Json<ListenersJson> {
    let listeners = state
        .exporter()
        .listeners()
        .iter()
        .map(|l| ListenerJson::of(l))
        .collect();
    Json(ListenersJson { listeners })
}

/// Any path no route serves: 404 with `{"error": …}`, naming a missing `[power]` section
/// when the path is one of the power routes (served only when power gating is configured).
pub(super) async fn not_found(uri: axum::http::Uri) -> ApiError {
    let path = uri.path();
    let power_route = path == "/api/v1/power"
        || path == "/api/v1/reload"
        || (path.starts_with("/api/v1/miners/") && path.ends_with("/pin"))
        || (path.starts_with("/api/v1/containers/") && path.ends_with("/budget"));
    if power_route {
        ApiError::NoPower
    } else {
        ApiError::NoRoute(crate::exporter::text::label_value(path).to_owned())
    }
}

/// `GET /api/v1/ledger` query, as sent.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LedgerQueryRaw {
    from: Option<String>,
    to: Option<String>,
    by: Option<String>,
    format: Option<String>,
}

/// The ledger's hours in `[from, to)`, grouped `by` miner (default), container or
/// customer, as JSON rows (default) or CSV. `from` defaults to 24 h before `to`, `to` to now.
pub(super) async fn ledger(
    State(state): State<HttpState>,
    query: Result<Query<LedgerQueryRaw>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use crate::ledger::{GroupBy, Reader, parse_time};
    let Query(raw) = query.map_err(|e| ApiError::MalformedQuery(e.body_text()))?;
    let path = state.inner.ledger.clone().ok_or(ApiError::NoLedger)?;
    let by: GroupBy = match raw.by.as_deref() {
        None => GroupBy::Miner,
        Some(text) => text.parse().map_err(|_| ApiError::BadQuery {
            parameter: "by",
            value: text.to_owned(),
            accepted: "miner, container, customer",
        })?,
    };
    let csv = match raw.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadQuery {
                parameter: "format",
                value: other.to_owned(),
                accepted: "json, csv",
            });
        }
    };
    let time = |parameter: &'static str, text: &Option<String>| -> Result<Option<i64>, ApiError> {
        text.as_deref()
            .map(|t| {
                parse_time(t).map_err(|_| ApiError::BadQuery {
                    parameter,
                    value: t.to_owned(),
                    accepted: "Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
                })
            })
            .transpose()
    };
    let to = time("to", &raw.to)?.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    let from = time("from", &raw.from)?.unwrap_or(to - 86_400);
    let table = blocking(move || Reader::open(&path).and_then(|r| r.export(from, to, by)))
        .await?
        .map_err(|e| ApiError::Ledger(e.to_string()))?;
    Ok(if csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            table.to_csv(),
        )
            .into_response()
    } else {
        Json(serde_json::json!({
            "from_unix_seconds": from.div_euclid(3600) * 3600,
            "to_unix_seconds": to,
            "by": by,
            "rows": table.to_json(),
        }))
        .into_response()
    })
}
