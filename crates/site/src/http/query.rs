//! `GET /api/v1/miners` query parameters: filter, sort and limit (pure).

use std::cmp::Ordering;

use serde::Deserialize;

use crate::stats::Window;

use super::error::ApiError;
use super::json::{MinerJson, MinerState};

/// Default number of miners returned.
pub const DEFAULT_LIMIT: usize = 100;
/// Most miners one response may hold; page with filters beyond that.
pub const MAX_LIMIT: usize = 10_000;

/// The query string as sent; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerQueryRaw {
    /// Substring of the worker name (case-insensitive).
    pub worker: Option<String>,
    /// One of `unauthorized`, `starting`, `active`, `silent`.
    pub state: Option<String>,
    /// `hashrate`, `rejects`, `last_share`, `worker` or `connected_since`.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub order: Option<String>,
    /// Window for `sort=hashrate`: `1m`, `5m` (default), `15m`, `1h`.
    pub window: Option<String>,
    /// How many to return, default 100, at most 10,000.
    pub limit: Option<usize>,
}

/// What to sort miners by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Hashrate over the query's window (unreported last).
    Hashrate,
    /// Rejected shares, total.
    Rejects,
    /// Time of the last accepted share (none last).
    LastShare,
    /// Worker name.
    Worker,
    /// Connection time.
    ConnectedSince,
}

/// A validated query.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerQuery {
    /// Lower-cased worker substring.
    pub worker: Option<String>,
    /// State filter.
    pub state: Option<MinerState>,
    /// Sort key.
    pub sort: SortKey,
    /// Descending order.
    pub descending: bool,
    /// Window for hashrate sorting.
    pub window: Window,
    /// Most results.
    pub limit: usize,
}

impl MinerQueryRaw {
    /// Validates every parameter.
    ///
    /// # Errors
    /// [`ApiError::BadQuery`] naming the parameter and the values it takes.
    pub fn parse(&self) -> Result<MinerQuery, ApiError> {
        let state = match self.state.as_deref() {
            None => None,
            Some(s) => Some(
                MinerState::ALL
                    .into_iter()
                    .find(|st| st.label() == s)
                    .ok_or_else(|| {
                        bad(
                            "state",
                            s,
                            "unauthorized, starting, active, silent, sleeping",
                        )
                    })?,
            ),
        };
        let sort = match self.sort.as_deref().unwrap_or("worker") {
            "hashrate" => SortKey::Hashrate,
            "rejects" => SortKey::Rejects,
            "last_share" => SortKey::LastShare,
            "worker" => SortKey::Worker,
            "connected_since" => SortKey::ConnectedSince,
            other => {
                return Err(bad(
                    "sort",
                    other,
                    "hashrate, rejects, last_share, worker, connected_since",
                ));
            }
        };
        let descending = match self.order.as_deref() {
            // Numbers read best largest first; names alphabetically.
            None => sort != SortKey::Worker,
            Some("desc") => true,
            Some("asc") => false,
            Some(other) => return Err(bad("order", other, "asc, desc")),
        };
        let window = match self.window.as_deref() {
            None => Window::M5,
            Some(w) => Window::ALL
                .into_iter()
                .find(|x| x.label() == w)
                .ok_or_else(|| bad("window", w, "1m, 5m, 15m, 1h"))?,
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit > MAX_LIMIT {
            return Err(bad("limit", &limit.to_string(), "0 to 10000"));
        }
        Ok(MinerQuery {
            worker: self.worker.as_ref().map(|w| w.to_lowercase()),
            state,
            sort,
            descending,
            window,
            limit,
        })
    }
}

fn bad(parameter: &'static str, value: &str, accepted: &'static str) -> ApiError {
    ApiError::BadQuery {
        parameter,
        value: value.to_owned(),
        accepted,
    }
}

impl MinerQuery {
    /// Filters, sorts and cuts `miners`; returns how many matched before the cut.
    pub fn apply(&self, mut miners: Vec<MinerJson>) -> (usize, Vec<MinerJson>) {
        miners.retain(|m| self.matches(m));
        let matched = miners.len();
        miners.sort_by(|a, b| {
            let ord = self.compare(a, b);
            let ord = if self.descending { ord.reverse() } else { ord };
            // Session id breaks ties so pages are stable between calls.
            ord.then(a.id.cmp(&b.id))
        });
        miners.truncate(self.limit);
        (matched, miners)
    }

    fn matches(&self, m: &MinerJson) -> bool {
        if let Some(state) = self.state
            && m.state != state
        {
            return false;
        }
        match &self.worker {
            None => true,
            Some(needle) => m
                .worker
                .as_ref()
                .is_some_and(|w| w.to_lowercase().contains(needle.as_str())),
        }
    }

    fn compare(&self, a: &MinerJson, b: &MinerJson) -> Ordering {
        // `None` sorts below every number, so it lands last in descending order.
        let num = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (x, y) => x.is_some().cmp(&y.is_some()),
        };
        match self.sort {
            SortKey::Hashrate => num(a.rate(self.window), b.rate(self.window)),
            SortKey::Rejects => a.shares.rejected.cmp(&b.shares.rejected),
            SortKey::LastShare => num(a.last_share, b.last_share),
            SortKey::Worker => a.worker.cmp(&b.worker),
            SortKey::ConnectedSince => a.connected_since.total_cmp(&b.connected_since),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime};

    use super::*;
    use crate::stats::{MinerIdentity, MinerStats};
    use hashgate_protocol::work::ShareReject;

    fn miner(id: u64, worker: &str, shares: u64, rejects: u64, t0: Instant) -> MinerJson {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let stats = MinerStats::new(t0, wall, 1.0);
        stats.set_identity(MinerIdentity {
            worker: worker.into(),
            remote: "10.0.0.9:1".parse().unwrap(),
            user_agent: "ua".into(),
            prefix_hex: "00".into(),
        });
        for i in 0..shares {
            stats.record_accepted(
                t0 + Duration::from_secs(i),
                wall + Duration::from_secs(id),
                1.0,
                1.0,
            );
        }
        for _ in 0..rejects {
            stats.record_rejected(ShareReject::Stale);
        }
        let snap = stats.snapshot(t0 + Duration::from_secs(60));
        MinerJson::of(
            id,
            &snap,
            wall + Duration::from_secs(60),
            Duration::from_secs(300),
            0,
        )
    }

    fn ids(list: &[MinerJson]) -> Vec<u64> {
        list.iter().map(|m| m.id).collect()
    }

    #[test]
    fn filter_sort_and_limit() {
        let t0 = Instant::now();
        let all = vec![
            miner(1, "site.Rack1-a", 10, 0, t0),
            miner(2, "site.rack1-b", 30, 5, t0),
            miner(3, "site.rack2-a", 20, 1, t0),
            miner(4, "site.rack2-b", 0, 9, t0),
        ];
        let q = |s: &str| -> MinerQuery {
            let raw: MinerQueryRaw = serde_json::from_str(s).unwrap();
            raw.parse().unwrap()
        };
        let (n, got) = q(r#"{"worker":"RACK1"}"#).apply(all.clone());
        assert_eq!((n, ids(&got)), (2, vec![1, 2]));
        let (_, got) = q(r#"{"sort":"hashrate","window":"1m"}"#).apply(all.clone());
        assert_eq!(ids(&got), vec![2, 3, 1, 4]);
        let (_, got) = q(r#"{"sort":"rejects","order":"asc"}"#).apply(all.clone());
        assert_eq!(ids(&got), vec![1, 3, 2, 4]);
        let (_, got) = q(r#"{"sort":"last_share"}"#).apply(all.clone());
        assert_eq!(ids(&got), vec![3, 2, 1, 4], "no share sorts last");
        let (n, got) = q(r#"{"state":"starting","limit":1}"#).apply(all.clone());
        assert_eq!((n, ids(&got)), (1, vec![4]));
        let (n, got) = q(r#"{"sort":"worker","limit":2}"#).apply(all);
        assert_eq!((n, ids(&got)), (4, vec![1, 2]));
    }

    #[test]
    fn bad_parameters_name_what_is_accepted() {
        for (raw, parameter) in [
            (r#"{"state":"asleep"}"#, "state"),
            (r#"{"sort":"power"}"#, "sort"),
            (r#"{"order":"up"}"#, "order"),
            (r#"{"window":"2m"}"#, "window"),
            (r#"{"limit":10001}"#, "limit"),
        ] {
            let q: MinerQueryRaw = serde_json::from_str(raw).unwrap();
            let err = q.parse().unwrap_err();
            assert!(err.to_string().contains(parameter), "{err}");
            assert!(err.to_string().contains("accepted:"), "{err}");
        }
    }
}
