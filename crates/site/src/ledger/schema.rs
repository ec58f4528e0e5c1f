//! The ledger's tables, created and upgraded by numbered migrations recorded in
//! `schema_migrations`, so a file written by an older hashgate is brought forward in place
//! and a file from a newer one is refused rather than misread.
//!
//! Every hour row carries the `boot` that wrote it: a process counts from zero when it
//! starts, so each boot owns its own rows, replaced with absolute values at every flush,
//! and an hour's figure is the sum over boots. A restart mid-hour therefore adds to the
//! hour instead of overwriting it, and a flush written twice changes nothing.

use rusqlite::{Connection, params};

use super::LedgerError;

/// Local reject reasons, in `ShareReject::ALL` order (a test pins the order).
pub(crate) const REJECTED: [&str; 9] = [
    "rejected_stale",
    "rejected_duplicate",
    "rejected_low_difficulty",
    "rejected_unauthorized",
    "rejected_not_subscribed",
    "rejected_bad_version_bits",
    "rejected_ntime_out_of_range",
    "rejected_bad_extranonce2_len",
    "rejected_malformed",
];

/// Pool reject reasons, in `PoolReject::ALL` order.
pub(crate) const POOL_REJECTED: [&str; 5] = [
    "pool_rejected_stale",
    "pool_rejected_duplicate",
    "pool_rejected_low_difficulty",
    "pool_rejected_unauthorized",
    "pool_rejected_other",
];

/// Undelivered reasons, in `Undelivered::ALL` order.
pub(crate) const UNDELIVERED: [&str; 4] = [
    "undelivered_upstream_gone",
    "undelivered_queue_full",
    "undelivered_no_answer",
    "undelivered_shutdown",
];

/// Minutes asleep by reason, in [`super::SleepReason::ALL`] order.
pub(crate) const ASLEEP: [&str; 5] = [
    "asleep_power_min",
    "asleep_temperature_min",
    "asleep_economic_min",
    "asleep_manual_min",
    "asleep_other_min",
];

/// The newest schema this build writes.
pub const SCHEMA_VERSION: i64 = 3;

fn v1() -> String {
    let ints = |cols: &[&str]| {
        cols.iter()
            .map(|c| format!("    {c} INTEGER NOT NULL DEFAULT 0,\n"))
            .collect::<String>()
    };
    let reals = |cols: &[&str]| {
        cols.iter()
            .map(|c| format!("    {c} REAL NOT NULL DEFAULT 0,\n"))
            .collect::<String>()
    };
    format!(
        "CREATE TABLE boots (
    boot INTEGER PRIMARY KEY AUTOINCREMENT,
    started_unix INTEGER NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE miner_hour (
    hour INTEGER NOT NULL,
    miner TEXT NOT NULL,
    boot INTEGER NOT NULL REFERENCES boots(boot),
    container TEXT,
    customer TEXT,
    accepted INTEGER NOT NULL DEFAULT 0,
    accepted_difficulty REAL NOT NULL DEFAULT 0,
{rejected}    pool_accepted INTEGER NOT NULL DEFAULT 0,
{pool_rejected}{undelivered}    blocks INTEGER NOT NULL DEFAULT 0,
    energy_kwh REAL,
    energy_estimated_kwh REAL,
    awake_min REAL NOT NULL DEFAULT 0,
{asleep}    unreachable_min REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, miner, boot)
) WITHOUT ROWID;
CREATE INDEX miner_hour_customer ON miner_hour (customer, hour);
CREATE TABLE container_hour (
    hour INTEGER NOT NULL,
    container TEXT NOT NULL,
    boot INTEGER NOT NULL REFERENCES boots(boot),
    metered_kwh REAL,
    metered_min REAL NOT NULL DEFAULT 0,
    fan_pump_kwh REAL,
    inlet_c_sum REAL NOT NULL DEFAULT 0,
    inlet_samples INTEGER NOT NULL DEFAULT 0,
    revenue REAL,
    cost REAL,
    PRIMARY KEY (hour, container, boot)
) WITHOUT ROWID;
",
        rejected = ints(&REJECTED),
        pool_rejected = ints(&POOL_REJECTED),
        undelivered = ints(&UNDELIVERED),
        asleep = reals(&ASLEEP),
    )
}

/// Migrations in order; entry `i` brings the file to version `i + 1`.
fn migrations() -> Vec<(&'static str, String)> {
    vec![
        ("hour rows per miner and per container, by boot", v1()),
        (
            "container energy through an IT meter",
            "ALTER TABLE container_hour ADD COLUMN it_meter_kwh REAL;".to_owned(),
        ),
        (
            "climate device run seconds, so fan rotation survives a restart",
            // Not per boot: the controller is seeded from this row at start-up, so what it
            // reports is already the lifetime figure and each flush replaces the row.
            "CREATE TABLE climate_run (
    container TEXT NOT NULL,
    device TEXT NOT NULL,
    run_secs REAL NOT NULL,
    updated_unix INTEGER NOT NULL,
    PRIMARY KEY (container, device)
) WITHOUT ROWID;"
                .to_owned(),
        ),
    ]
}

/// Creates or upgrades the schema in one transaction.
///
/// # Errors
/// [`LedgerError::NewerSchema`] for a file written by a newer hashgate;
/// [`LedgerError::Sqlite`] otherwise.
pub(crate) fn migrate(conn: &mut Connection, now_unix: i64) -> Result<(), LedgerError> {
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_unix INTEGER NOT NULL,
            description TEXT NOT NULL
        );",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(LedgerError::NewerSchema {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (i, (description, sql)) in migrations().into_iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        tx.execute_batch(&sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_unix, description) VALUES (?1, ?2, ?3)",
            params![version, now_unix, description],
        )?;
    }
    tx.commit()?;
    Ok(())
}
