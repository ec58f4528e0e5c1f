//! The SQLite file: one writer (the site's ledger task) and any number of readers (the
//! status API, `hashgate ledger export`), which WAL lets read while the writer writes.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, ToSql, params};
use serde::Serialize;

use super::LedgerError;
use super::accumulate::{Batch, DeviceRun};
use super::schema::{self, ASLEEP, POOL_REJECTED, REJECTED, UNDELIVERED};

/// How long a reader or the writer waits on the other's lock before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The writing side, owned by the site's ledger task.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    boot: i64,
}

/// The share columns of `miner_hour` after `accepted_difficulty`, in order.
fn share_columns() -> Vec<&'static str> {
    let mut cols = vec!["accepted", "accepted_difficulty"];
    cols.extend(REJECTED);
    cols.push("pool_accepted");
    cols.extend(POOL_REJECTED);
    cols.extend(UNDELIVERED);
    cols.push("blocks");
    cols
}

/// The power columns of `miner_hour`, in order.
fn power_columns() -> Vec<&'static str> {
    let mut cols = vec!["energy_kwh", "energy_estimated_kwh", "awake_min"];
    cols.extend(ASLEEP);
    cols.push("unreachable_min");
    cols
}

fn upsert_sql(table: &str, keys: &[&str], cols: &[&str]) -> String {
    let all: Vec<&str> = keys.iter().chain(cols).copied().collect();
    let marks: Vec<String> = (1..=all.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = cols.iter().map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        all.join(", "),
        marks.join(", "),
        keys.iter().take(3).copied().collect::<Vec<_>>().join(", "),
        sets.join(", ")
    )
}

impl Store {
    /// Opens (creating when missing) the file at `path`, brings its schema up to date and
    /// starts a new boot.
    ///
    /// Journal: WAL, so the status API and an export read while the site writes, and a
    /// crash leaves either the whole last flush or none of it. `synchronous = FULL`: a
    /// flush is one small transaction a minute, so one fsync per flush costs nothing the
    /// site can notice, and in exchange a power cut (common where miners are switched by
    /// the megawatt) loses at most the last flush interval; NORMAL would survive a
    /// process crash just as well but could lose every flush since the last checkpoint
    /// to a power cut.
    ///
    /// # Errors
    /// [`LedgerError::Open`] naming the file, [`LedgerError::NewerSchema`], or
    /// [`LedgerError::Sqlite`].
    pub fn open(path: &Path, now_unix: i64) -> Result<Store, LedgerError> {
        let mut conn = Connection::open(path).map_err(|source| LedgerError::Open {
            path: path.to_owned(),
            source,
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError::NoWal {
                path: path.to_owned(),
                mode,
            });
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        schema::migrate(&mut conn, now_unix)?;
        conn.execute(
            "INSERT INTO boots (started_unix, version) VALUES (?1, ?2)",
            params![now_unix, env!("CARGO_PKG_VERSION")],
        )?;
        let boot = conn.last_insert_rowid();
        Ok(Store { conn, boot })
    }

    /// This process's boot number in the file.
    pub fn boot(&self) -> i64 {
        self.boot
    }

    /// Writes this boot's absolute figures for every row in `batch`, in one transaction:
    /// written twice, the rows are the same.
    ///
    /// # Errors
    /// [`LedgerError::Sqlite`]; nothing of the batch is written then.
    pub fn write(&mut self, batch: &Batch) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        {
            let mut cols = vec!["container", "customer"];
            cols.extend(share_columns());
            cols.extend(power_columns());
            let sql = upsert_sql("miner_hour", &["hour", "miner", "boot"], &cols);
            let mut stmt = tx.prepare_cached(&sql)?;
            for (hour, miner, row) in &batch.miners {
                let s = &row.shares;
                let ints = |xs: &[u64]| -> Vec<i64> {
                    xs.iter()
                        .map(|x| i64::try_from(*x).unwrap_or(i64::MAX))
                        .collect()
                };
                let mut values: Vec<Box<dyn ToSql>> = vec![
                    Box::new(*hour),
                    Box::new(miner.to_string()),
                    Box::new(self.boot),
                    Box::new(row.container.as_deref().map(str::to_owned)),
                    Box::new(row.customer.as_deref().map(str::to_owned)),
                ];
                values.extend(ints(&[s.accepted]).into_iter().map(|v| Box::new(v) as _));
                values.push(Box::new(s.accepted_difficulty));
                values.extend(ints(&s.rejected).into_iter().map(|v| Box::new(v) as _));
                values.extend(
                    ints(&[s.pool_accepted])
                        .into_iter()
                        .map(|v| Box::new(v) as _),
                );
                values.extend(ints(&s.pool_rejected).into_iter().map(|v| Box::new(v) as _));
                values.extend(ints(&s.undelivered).into_iter().map(|v| Box::new(v) as _));
                values.extend(ints(&[s.blocks]).into_iter().map(|v| Box::new(v) as _));
                values.push(Box::new(row.energy_kwh));
                values.push(Box::new(row.energy_estimated_kwh));
                values.push(Box::new(row.awake_min));
                values.extend(row.asleep_min.iter().map(|v| Box::new(*v) as _));
                values.push(Box::new(row.unreachable_min));
                stmt.execute(rusqlite::params_from_iter(values.iter()))?;
            }
        }
        {
            let sql = upsert_sql(
                "container_hour",
                &["hour", "container", "boot"],
                &[
                    "metered_kwh",
                    "metered_min",
                    "it_meter_kwh",
                    "fan_pump_kwh",
                    "inlet_c_sum",
                    "inlet_samples",
                    "revenue",
                    "cost",
                ],
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            for (hour, container, row) in &batch.containers {
                stmt.execute(params![
                    hour,
                    container.as_ref(),
                    self.boot,
                    row.metered_kwh,
                    row.metered_min,
                    row.it_meter_kwh,
                    row.fan_pump_kwh,
                    row.inlet_c_sum,
                    i64::try_from(row.inlet_samples).unwrap_or(i64::MAX),
                    row.revenue,
                    row.cost,
                ])?;
            }
        }
        {
            // MAX: a row never goes back, even if a seed failed and a device counted from
            // zero this boot.
            let mut stmt = tx.prepare_cached(
                "INSERT INTO climate_run (container, device, run_secs, updated_unix)
                 VALUES (?1, ?2, ?3, unixepoch())
                 ON CONFLICT (container, device) DO UPDATE SET
                    run_secs = MAX(run_secs, excluded.run_secs),
                    updated_unix = excluded.updated_unix",
            )?;
            for run in &batch.device_runs {
                if run.run_secs.is_finite() && run.run_secs >= 0.0 {
                    stmt.execute(params![
                        run.container.as_ref(),
                        run.device.as_ref(),
                        run.run_secs
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every climate device's recorded running time, to seed the climate controller.
    ///
    /// # Errors
    /// [`LedgerError::Sqlite`].
    pub fn device_runs(&self) -> Result<Vec<DeviceRun>, LedgerError> {
        device_runs(&self.conn)
    }

    /// Deletes hours that started before `before_unix`; returns how many rows went.
    ///
    /// # Errors
    /// [`LedgerError::Sqlite`].
    pub fn prune(&mut self, before_unix: i64) -> Result<usize, LedgerError> {
        let tx = self.conn.transaction()?;
        let miners = tx.execute("DELETE FROM miner_hour WHERE hour < ?1", [before_unix])?;
        let containers = tx.execute("DELETE FROM container_hour WHERE hour < ?1", [before_unix])?;
        tx.commit()?;
        Ok(miners + containers)
    }

    /// The hour starting at `hour` (Unix s), summed over boots, per container
    /// (`None` for miners outside the inventory): (container, IT kWh, metered kWh, hashes).
    ///
    /// # Errors
    /// [`LedgerError::Sqlite`].
    pub fn hour_by_container(&self, hour: i64) -> Result<Vec<HourFigures>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT k.container,
                    (SELECT SUM(energy_kwh) FROM miner_hour m
                      WHERE m.hour = ?1 AND m.container IS k.container),
                    (SELECT SUM(metered_kwh) FROM container_hour c
                      WHERE c.hour = ?1 AND c.container IS k.container),
                    (SELECT COALESCE(SUM(accepted_difficulty), 0) * 4294967296.0 FROM miner_hour m
                      WHERE m.hour = ?1 AND m.container IS k.container)
               FROM (SELECT container FROM miner_hour WHERE hour = ?1
                     UNION SELECT container FROM container_hour WHERE hour = ?1) k
              ORDER BY k.container",
        )?;
        let rows = stmt.query_map([hour], |r| {
            Ok(HourFigures {
                container: r.get(0)?,
                it_kwh: r.get(1)?,
                metered_kwh: r.get(2)?,
                hashes: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// One container's current hour, for the gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct HourFigures {
    /// Container; `None` for miners outside the inventory.
    pub container: Option<String>,
    /// Energy of its miners, kWh.
    pub it_kwh: Option<f64>,
    /// Energy through its feed meter, kWh.
    pub metered_kwh: Option<f64>,
    /// Share-proven work, hashes.
    pub hashes: f64,
}

/// How an export groups the hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One row per miner per hour.
    Miner,
    /// One row per container per hour: its miners summed, plus its meter and inlet.
    Container,
    /// One row per customer tag per hour (untagged miners under an empty customer).
    Customer,
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<GroupBy, String> {
        match s {
            "miner" => Ok(GroupBy::Miner),
            "container" => Ok(GroupBy::Container),
            "customer" => Ok(GroupBy::Customer),
            other => Err(format!("{other:?}: use miner, container or customer")),
        }
    }
}

/// One exported value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// SQL NULL: not measured.
    Null,
    /// A count.
    Int(i64),
    /// A measured figure.
    Real(f64),
    /// A name or a time.
    Text(String),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => Ok(()),
            Cell::Int(v) => write!(f, "{v}"),
            Cell::Real(v) => write!(f, "{v}"),
            Cell::Text(v) => f.write_str(v),
        }
    }
}

/// An export: column names and rows, hours ascending.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// Column names, the same for every row.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// The sum of a numeric column over every row (NULL counts as nothing).
    pub fn total(&self, column: &str) -> Option<f64> {
        let i = self.columns.iter().position(|c| c == column)?;
        Some(
            self.rows
                .iter()
                .map(|r| match r.get(i) {
                    Some(Cell::Int(v)) => *v as f64,
                    Some(Cell::Real(v)) => *v,
                    _ => 0.0,
                })
                .sum(),
        )
    }

    /// Rows as JSON objects keyed by column.
    pub fn to_json(&self) -> serde_json::Value {
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let object: serde_json::Map<String, serde_json::Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| (c.clone(), serde_json::to_value(v).unwrap_or_default()))
                    .collect();
                serde_json::Value::Object(object)
            })
            .collect();
        serde_json::Value::Array(rows)
    }

    /// RFC 4180 CSV with a header line.
    pub fn to_csv(&self) -> String {
        fn field(text: &str) -> String {
            if text.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", text.replace('"', "\"\""))
            } else {
                text.to_owned()
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| field(c)).collect();
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for row in &self.rows {
            let line: Vec<String> = row.iter().map(|c| field(&c.to_string())).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// A read-only view of the file.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
}

fn device_runs(conn: &Connection) -> Result<Vec<DeviceRun>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT container, device, run_secs FROM climate_run ORDER BY container, device",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DeviceRun {
            container: Arc::from(r.get::<_, String>(0)?.as_str()),
            device: Arc::from(r.get::<_, String>(1)?.as_str()),
            run_secs: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `SUM(col) AS col` for each of `cols`.
fn sums(cols: &[&str]) -> String {
    cols.iter()
        .map(|c| format!("SUM({c}) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The miner columns summed, then the work in hashes and TH derived from the difficulty.
fn miner_sums() -> String {
    let mut cols = share_columns();
    cols.extend(power_columns());
    format!(
        "{}, SUM(accepted_difficulty) * 4294967296.0 AS hashes, \
         SUM(accepted_difficulty) * 4294967296.0 / 1e12 AS work_th",
        sums(&cols)
    )
}

const TIME: &str = "strftime('%Y-%m-%dT%H:%M:%SZ', hour, 'unixepoch') AS hour";

fn export_sql(by: GroupBy) -> String {
    match by {
        GroupBy::Miner => format!(
            "SELECT {TIME}, miner, MAX(container) AS container, MAX(customer) AS customer, {}
               FROM miner_hour WHERE hour >= ?1 AND hour < ?2
              GROUP BY hour, miner ORDER BY hour, miner",
            miner_sums()
        ),
        GroupBy::Customer => format!(
            "SELECT {TIME}, COALESCE(customer, '') AS customer, COUNT(DISTINCT miner) AS miners, {}
               FROM miner_hour WHERE hour >= ?1 AND hour < ?2
              GROUP BY hour, COALESCE(customer, '') ORDER BY hour, customer",
            miner_sums()
        ),
        GroupBy::Container => format!(
            "WITH m AS (
                SELECT hour, container, COUNT(DISTINCT miner) AS miners, {sums}
                  FROM miner_hour WHERE hour >= ?1 AND hour < ?2 AND container IS NOT NULL
                 GROUP BY hour, container),
             c AS (
                SELECT hour, container, SUM(metered_kwh) AS metered_kwh,
                       SUM(metered_min) AS metered_min, SUM(it_meter_kwh) AS it_meter_kwh,
                       SUM(fan_pump_kwh) AS fan_pump_kwh,
                       SUM(inlet_c_sum) / NULLIF(SUM(inlet_samples), 0) AS inlet_c_mean,
                       SUM(revenue) AS revenue, SUM(cost) AS cost
                  FROM container_hour WHERE hour >= ?1 AND hour < ?2
                 GROUP BY hour, container),
             k AS (SELECT hour, container FROM m UNION SELECT hour, container FROM c)
             SELECT strftime('%Y-%m-%dT%H:%M:%SZ', k.hour, 'unixepoch') AS hour, k.container,
                    COALESCE(m.miners, 0) AS miners, {picked},
                    m.energy_kwh AS it_kwh, c.it_meter_kwh, c.metered_kwh, c.metered_min,
                    c.metered_kwh / NULLIF(COALESCE(c.it_meter_kwh, m.energy_kwh), 0) AS pue,
                    c.fan_pump_kwh, c.inlet_c_mean, c.revenue, c.cost
               FROM k LEFT JOIN m ON m.hour = k.hour AND m.container = k.container
                      LEFT JOIN c ON c.hour = k.hour AND c.container = k.container
              ORDER BY k.hour, k.container",
            sums = miner_sums(),
            picked = {
                let mut cols = share_columns();
                cols.extend(power_columns().into_iter().filter(|c| *c != "energy_kwh"));
                cols.extend(["hashes", "work_th"]);
                cols.iter()
                    .map(|c| format!("m.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
    }
}

impl Reader {
    /// Opens `path` read-only; the file must exist.
    ///
    /// # Errors
    /// [`LedgerError::Open`] naming the file, or [`LedgerError::NewerSchema`].
    pub fn open(path: &Path) -> Result<Reader, LedgerError> {
        let open = |path: &Path| -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            Ok(conn)
        };
        let conn = open(path).map_err(|source| LedgerError::Open {
            path: path.to_owned(),
            source,
        })?;
        let version: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(|source| LedgerError::Open {
                path: path.to_owned(),
                source,
            })?;
        if version > schema::SCHEMA_VERSION {
            return Err(LedgerError::NewerSchema {
                found: version,
                known: schema::SCHEMA_VERSION,
            });
        }
        Ok(Reader { conn })
    }

    /// Every climate device's recorded running time (lifetime seconds).
    ///
    /// # Errors
    /// [`LedgerError::Sqlite`].
    pub fn device_runs(&self) -> Result<Vec<DeviceRun>, LedgerError> {
        device_runs(&self.conn)
    }

    /// Hours starting in `[from, to)` (Unix s; `from` is taken back to its hour's start),
    /// summed over boots and grouped `by`.
    ///
    /// # Errors
    /// [`LedgerError::Sqlite`].
    pub fn export(&self, from: i64, to: i64, by: GroupBy) -> Result<Table, LedgerError> {
        let from = from.div_euclid(3600) * 3600;
        let mut stmt = self.conn.prepare(&export_sql(by))?;
        let columns: Vec<String> = stmt
            .column_names()
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let width = columns.len();
        let rows = stmt.query_map([from, to], |r| {
            (0..width)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Cell::Null,
                        rusqlite::types::ValueRef::Integer(v) => Cell::Int(v),
                        rusqlite::types::ValueRef::Real(v) => Cell::Real(v),
                        rusqlite::types::ValueRef::Text(t) => {
                            Cell::Text(String::from_utf8_lossy(t).into_owned())
                        }
                        rusqlite::types::ValueRef::Blob(_) => Cell::Null,
                    })
                })
                .collect::<rusqlite::Result<Vec<Cell>>>()
        })?;
        Ok(Table {
            columns,
            rows: rows.collect::<Result<_, _>>()?,
        })
    }
}
