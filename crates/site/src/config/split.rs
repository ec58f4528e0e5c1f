//! `[[pool_groups]]`, `[[routes]]` and `[split]`: hashrate shared between groups of pools
//! by weight, and worker-name rules that pin hosted customers' miners to a group.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, PoolConfig};

/// Most pool groups a site may have: each is one more pool connection per channel.
pub const MAX_POOL_GROUPS: usize = 16;

/// One `[[pool_groups]]` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolGroup {
    /// Name for logs, metrics and the API.
    pub name: Option<String>,
    /// Share of the site's hashrate, relative to the other groups' weights; default 1.
    pub weight: Option<f64>,
    /// Names of `[[pools]]` entries, in this group's failover order.
    pub pools: Option<Vec<String>>,
}

/// One `[[routes]]` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Worker-name pattern: `*` any run of characters, `?` one character.
    pub worker: Option<String>,
    /// The `[[pool_groups]]` name its miners are pinned to.
    pub group: Option<String>,
}

/// `[split]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplit {
    /// Shortest time between two moves of one miner, default 300 s.
    #[serde(default, deserialize_with = "super::raw::seconds")]
    pub min_move_interval_secs: Option<f64>,
    /// How often the balancer looks at the split, default 10 s.
    #[serde(default, deserialize_with = "super::raw::seconds")]
    pub rebalance_interval_secs: Option<f64>,
}

/// A group of pools with its own failover order and a weight.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolGroup {
    /// Its name.
    pub name: Arc<str>,
    /// Its share of the hashrate relative to the other groups' (finite, above 0).
    pub weight: f64,
    /// Pool names in failover order; `None` for the implicit group of a file without
    /// `[[pool_groups]]`, which is every pool in `[[pools]]` order (so a reload adding a
    /// pool adds it to that group).
    pub pools: Option<Vec<String>>,
}

impl PoolGroup {
    /// This group's pools out of `all`, in the group's failover order.
    pub fn pools_of(&self, all: &[PoolConfig]) -> Vec<PoolConfig> {
        match &self.pools {
            None => all.to_vec(),
            Some(names) => names
                .iter()
                .filter_map(|n| all.iter().find(|p| p.name == *n).cloned())
                .collect(),
        }
    }
}

/// A worker-name glob: `*` matches any run of characters (also none), `?` one character;
/// everything else matches itself, case-sensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPattern(Arc<str>);

impl WorkerPattern {
    /// The pattern as written.
    pub fn new(text: &str) -> WorkerPattern {
        WorkerPattern(text.into())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `worker` matches the whole pattern.
    pub fn matches(&self, worker: &str) -> bool {
        let (p, w): (Vec<char>, Vec<char>) = (self.0.chars().collect(), worker.chars().collect());
        // Iterative match with one backtrack point (the last `*`): linear in practice and
        // never exponential, whatever a config author writes.
        let (mut pi, mut wi) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while wi < w.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, wi));
                    pi += 1;
                }
                Some(&c) if c == '?' || Some(&c) == w.get(wi) => {
                    pi += 1;
                    wi += 1;
                }
                _ => match star {
                    Some((sp, sw)) => {
                        pi = sp + 1;
                        wi = sw + 1;
                        star = Some((sp, sw + 1));
                    }
                    None => return false,
                },
            }
        }
        p.get(pi..)
            .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
    }
}

/// A worker-name rule: matching miners are pinned to a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Which worker names.
    pub worker: WorkerPattern,
    /// Index into [`SplitConfig::groups`].
    pub group: usize,
}

/// The weighted split, its routes and the balancer's pace.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// The groups, at least one; a file without `[[pool_groups]]` has one, `default`,
    /// holding every pool with weight 1.
    pub groups: Vec<PoolGroup>,
    /// Worker-name rules, first match wins.
    pub routes: Vec<Route>,
    /// Shortest time between two moves of one miner by the balancer.
    pub min_move_interval: Duration,
    /// How often the balancer runs.
    pub rebalance_interval: Duration,
}

impl SplitConfig {
    /// One group of every pool, no routes: a site without a split.
    pub fn single() -> SplitConfig {
        SplitConfig {
            groups: vec![PoolGroup {
                name: "default".into(),
                weight: 1.0,
                pools: None,
            }],
            routes: Vec::new(),
            min_move_interval: Duration::from_secs(300),
            rebalance_interval: Duration::from_secs(10),
        }
    }

    /// The group a worker's first matching route pins it to.
    pub fn route_of(&self, worker: &str) -> Option<usize> {
        self.routes
            .iter()
            .find(|r| r.worker.matches(worker))
            .map(|r| r.group)
    }

    /// The index of the group called `name`.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| &*g.name == name)
    }
}

/// Checks that every listener's `pool_group` names a group of `split`: a port whose
/// miners would silently fall back to the balancer is a misconfiguration an operator wants
/// to hear about at load time.
pub(super) fn check_listener_groups(
    listeners: &[super::ListenerConfig],
    split: &SplitConfig,
) -> Result<(), ConfigError> {
    for (i, listener) in listeners.iter().enumerate() {
        let Some(name) = listener.pool_group.as_deref() else {
            continue;
        };
        if split.group_index(name).is_none() {
            let known: Vec<&str> = split.groups.iter().map(|g| &*g.name).collect();
            return Err(ConfigError::invalid(
                format!("listeners[{i}].pool_group"),
                format!(
                    "{name:?} is not a pool group; the groups are {} (a file without \
                     [[pool_groups]] has the one group \"default\")",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Validates the split sections against the validated pools.
pub(super) fn validate(
    groups: &[RawPoolGroup],
    routes: &[RawRoute],
    split: &RawSplit,
    pools: &[PoolConfig],
) -> Result<SplitConfig, ConfigError> {
    let mut out = SplitConfig::single();
    out.min_move_interval = super::raw::secs(
        "split.min_move_interval_secs",
        split.min_move_interval_secs,
        300.0,
    )?;
    out.rebalance_interval = super::raw::secs(
        "split.rebalance_interval_secs",
        split.rebalance_interval_secs,
        10.0,
    )?;
    if !groups.is_empty() {
        if groups.len() > MAX_POOL_GROUPS {
            return Err(ConfigError::invalid(
                "pool_groups",
                format!(
                    "{} groups; at most {MAX_POOL_GROUPS} (each is a pool connection per channel)",
                    groups.len()
                ),
            ));
        }
        out.groups.clear();
        for (i, raw) in groups.iter().enumerate() {
            let field = |name: &str| format!("pool_groups[{i}].{name}");
            let name = raw
                .name
                .as_deref()
                .ok_or_else(|| ConfigError::invalid(field("name"), "missing"))?;
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '"') {
                return Err(ConfigError::invalid(
                    field("name"),
                    format!("{name:?}: a name without spaces or quotes is needed"),
                ));
            }
            if out.groups.iter().any(|g| &*g.name == name) {
                return Err(ConfigError::invalid(
                    field("name"),
                    format!("{name:?} is used twice"),
                ));
            }
            let weight = raw.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(ConfigError::invalid(
                    field("weight"),
                    format!(
                        "{weight} must be a positive number (e.g. 70 and 30 for a 70/30 split)"
                    ),
                ));
            }
            let names = raw.pools.clone().unwrap_or_default();
            if names.is_empty() {
                return Err(ConfigError::invalid(
                    field("pools"),
                    "at least one pool name from [[pools]] is needed",
                ));
            }
            for pool in &names {
                if !pools.iter().any(|p| p.name == *pool) {
                    return Err(ConfigError::invalid(
                        field("pools"),
                        format!("{pool:?} is not the name of a [[pools]] entry"),
                    ));
                }
                if let Some(other) = out
                    .groups
                    .iter()
                    .find(|g| g.pools.iter().flatten().any(|p| p == pool))
                {
                    return Err(ConfigError::invalid(
                        field("pools"),
                        format!(
                            "pool {pool:?} is already in group {:?}: a pool belongs to one group (list it twice in [[pools]] under two names to use it in both)",
                            other.name
                        ),
                    ));
                }
            }
            if names
                .iter()
                .enumerate()
                .any(|(j, n)| names[..j].contains(n))
            {
                return Err(ConfigError::invalid(field("pools"), "names a pool twice"));
            }
            out.groups.push(PoolGroup {
                name: name.into(),
                weight,
                pools: Some(names),
            });
        }
        if let Some(lost) = pools.iter().find(|p| {
            !out.groups
                .iter()
                .any(|g| g.pools.iter().flatten().any(|n| *n == p.name))
        }) {
            return Err(ConfigError::invalid(
                "pool_groups",
                format!(
                    "pool {:?} is in no group: add it to one, or remove it from [[pools]]",
                    lost.name
                ),
            ));
        }
    }
    for (i, raw) in routes.iter().enumerate() {
        let field = |name: &str| format!("routes[{i}].{name}");
        let worker = raw
            .worker
            .as_deref()
            .filter(|w| !w.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    field("worker"),
                    "missing (a worker-name pattern like \"acme.*\")",
                )
            })?;
        let group_name = raw
            .group
            .as_deref()
            .ok_or_else(|| ConfigError::invalid(field("group"), "missing"))?;
        let group = out
            .groups
            .iter()
            .position(|g| &*g.name == group_name)
            .ok_or_else(|| {
                ConfigError::invalid(
                    field("group"),
                    format!("{group_name:?} is not the name of a [[pool_groups]] entry"),
                )
            })?;
        out.routes.push(Route {
            worker: WorkerPattern::new(worker),
            group,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let p = WorkerPattern::new("acme.*");
        assert!(p.matches("acme.rig1"));
        assert!(p.matches("acme."));
        assert!(!p.matches("acme"));
        assert!(!p.matches("xacme.rig1"));
        let q = WorkerPattern::new("*.s?9*");
        assert!(q.matches("a.s19"));
        assert!(q.matches("farm.sx9-12"));
        assert!(!q.matches("farm.s9"));
        assert!(WorkerPattern::new("*").matches(""));
        assert!(WorkerPattern::new("exact").matches("exact"));
        assert!(!WorkerPattern::new("exact").matches("Exact"));
        // A pathological pattern ends quickly (no exponential backtracking).
        let long = "a".repeat(2_000);
        assert!(!WorkerPattern::new("*a*a*a*a*a*a*b").matches(&long));
    }
}
