//! What a reload of the configuration file applied, and which changed settings only a
//! restart can apply: the listeners are bound, the sessions and pool connections hold
//! their limits from the start, so those are reported instead of half applied.

use serde::Serialize;

use super::Config;

/// The outcome of an accepted reload, for the log line and the API answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// What took effect, one phrase each (`pool "b" added`, `power: miners added: m5`).
    pub applied: Vec<String>,
    /// Settings that differ in the file but need a restart (`proxy.listen`, ...); the
    /// running values stay until then.
    pub needs_restart: Vec<String>,
}

impl ReloadReport {
    /// One line for the log and the terminal: what was applied and what waits.
    pub fn summary(&self) -> String {
        let applied = if self.applied.is_empty() {
            "nothing changed".to_owned()
        } else {
            self.applied.join("; ")
        };
        if self.needs_restart.is_empty() {
            applied
        } else {
            format!(
                "{applied}; needs a restart: {}",
                self.needs_restart.join(", ")
            )
        }
    }
}

/// The settings that differ between `running` and `file` and cannot change while running,
/// by their name in the file.
pub fn restart_needed(running: &Config, file: &Config) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let check = |out: &mut Vec<String>, name: &str, differs: bool| {
        if differs {
            out.push(name.to_owned());
        }
    };
    // Each section below names its fields one by one; a field missing from the list (a
    // setting added later) is still caught by the section's own comparison, so a change
    // is never applied silently nor silently ignored.
    let named = out.len();
    let (a, b) = (&running.proxy, &file.proxy);
    check(&mut out, "proxy.listen", a.listen != b.listen);
    check(
        &mut out,
        "proxy.max_connections",
        a.max_connections != b.max_connections,
    );
    check(
        &mut out,
        "proxy.setup_timeout_secs",
        a.setup_timeout != b.setup_timeout,
    );
    check(
        &mut out,
        "proxy.max_unauthorized_per_source",
        a.max_unauthorized_per_source != b.max_unauthorized_per_source,
    );
    check(
        &mut out,
        "proxy.max_unauthorized",
        a.max_unauthorized != b.max_unauthorized,
    );
    check(
        &mut out,
        "proxy.setup_timeout_under_pressure_secs",
        a.setup_timeout_under_pressure != b.setup_timeout_under_pressure,
    );
    check(
        &mut out,
        "proxy.idle_timeout_secs",
        a.idle_timeout != b.idle_timeout,
    );
    check(
        &mut out,
        "proxy.max_line_bytes",
        a.max_line_bytes != b.max_line_bytes,
    );
    check(
        &mut out,
        "proxy.outbound_queue",
        a.outbound_queue != b.outbound_queue,
    );
    check(&mut out, "proxy.account", a.account != b.account);
    check(
        &mut out,
        "proxy.upstream_worker",
        a.upstream_worker != b.upstream_worker,
    );
    check(
        &mut out,
        "proxy.max_miner_extranonce2",
        a.max_miner_extranonce2 != b.max_miner_extranonce2,
    );
    check(
        &mut out,
        "proxy.miners_per_upstream",
        a.miners_per_upstream != b.miners_per_upstream,
    );
    check(
        &mut out,
        "proxy.ntime_window_secs",
        a.ntime_window != b.ntime_window,
    );
    check(
        &mut out,
        "proxy.initial_difficulty",
        a.initial_difficulty != b.initial_difficulty,
    );
    check(
        &mut out,
        "proxy.upstream_shares_per_sec",
        a.upstream_shares_per_sec != b.upstream_shares_per_sec,
    );
    let proxy_named = out.len() > named;
    check(&mut out, "proxy", a != b && !proxy_named);
    check(&mut out, "vardiff", running.vardiff != file.vardiff);
    // Each port is bound once with its settings in every session's `Arc`; a port that
    // was added, removed or changed is named as `listeners.<name>`.
    for l in &running.listeners {
        let kept = file.listeners.iter().any(|f| f == l);
        check(&mut out, &format!("listeners.{}", l.name), !kept);
    }
    for l in &file.listeners {
        let new = !running.listeners.iter().any(|r| r.name == l.name);
        check(&mut out, &format!("listeners.{}", l.name), new);
    }
    let (a, b) = (&running.failover, &file.failover);
    check(
        &mut out,
        "failover.silence_timeout_secs",
        a.silence_timeout != b.silence_timeout,
    );
    check(
        &mut out,
        "failover.submit_timeout_secs",
        a.submit_timeout != b.submit_timeout,
    );
    check(
        &mut out,
        "failover.job_timeout_floor_secs",
        a.job_timeout_floor != b.job_timeout_floor,
    );
    check(
        &mut out,
        "failover.reject_streak",
        a.reject_streak != b.reject_streak,
    );
    let named = out.len();
    let (a, b) = (&running.http, &file.http);
    check(&mut out, "http.listen", a.listen != b.listen);
    check(
        &mut out,
        "http.admin_listen",
        a.admin_listen != b.admin_listen,
    );
    check(
        &mut out,
        "http.max_worker_series",
        a.max_worker_series != b.max_worker_series,
    );
    check(
        &mut out,
        "http.silent_after_secs",
        a.silent_after != b.silent_after,
    );
    check(
        &mut out,
        "http.max_connections",
        a.max_connections != b.max_connections,
    );
    check(
        &mut out,
        "http.header_read_timeout_secs",
        a.header_read_timeout != b.header_read_timeout,
    );
    check(&mut out, "http.fd_reserve", a.fd_reserve != b.fd_reserve);
    check(
        &mut out,
        "http.shutdown_grace_secs",
        a.shutdown_grace != b.shutdown_grace,
    );
    check(
        &mut out,
        "http.allow_remote_admin",
        a.allow_remote_admin != b.allow_remote_admin,
    );
    let http_named = out.len() > named;
    check(&mut out, "http", a != b && !http_named);
    // Group membership is reloaded with the pools (`upstream::PoolSet`); the groups
    // themselves, their weights and the routes are fixed for the balancer and every
    // channel's connections at start.
    let shape = |c: &Config| {
        c.split
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.weight, g.pools.is_some()))
            .collect::<Vec<_>>()
    };
    check(&mut out, "pool_groups", shape(running) != shape(file));
    check(
        &mut out,
        "routes",
        running.split.routes != file.split.routes,
    );
    check(
        &mut out,
        "split.min_move_interval_secs",
        running.split.min_move_interval != file.split.min_move_interval,
    );
    check(
        &mut out,
        "split.rebalance_interval_secs",
        running.split.rebalance_interval != file.split.rebalance_interval,
    );
    check(&mut out, "ledger", running.ledger != file.ledger);
    check(&mut out, "economics", running.economics != file.economics);
    match (&running.power, &file.power) {
        (Some(a), Some(b)) => check(
            &mut out,
            "power.admin_token",
            a.admin_token != b.admin_token,
        ),
        (None, Some(_)) => check(&mut out, "power (the [power] section was added)", true),
        (Some(_), None) => check(&mut out, "power (the [power] section was removed)", true),
        (None, None) => {}
    }
    out
}
