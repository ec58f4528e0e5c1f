//! hashgate's one Modbus TCP layer: the register points of meters, sensors and relay
//! modules, and a client that reads and writes them with deadlines, bounded retries and
//! typed errors.
//!
//! The pure part (points, data types, word order, decoding untrusted words) lives in
//! [`hashgate_protocol::modbus`] so the fuzzers reach it without a runtime; it is re-exported
//! here so callers need one path. The wire protocol is `tokio-modbus`'s client.
//!
//! | file | owns |
//! |---|---|
//! | `meters.rs` | power meters as register maps: the shipped models (Eastron SDM630, Schneider PM5000) with their sources, withdrawn names refused with a pointer, a site's own map from the config, [`read_meter`] |
//! | `client.rs` | [`ModbusClient`]: one TCP connection to a device or gateway, reconnecting; reads of words, bits and [`Point`]s; coil writes with read-back; [`ModbusError`] |

mod client;
mod meters;

pub use client::{ClientSettings, ModbusClient, ModbusError};
pub use hashgate_protocol::modbus::{
    Addressing, DataType, DecodeError, Function, Point, Unit, WordOrder, decode, encode,
};
pub use meters::{
    MAX_PLAUSIBLE_WATTS, MeterMap, MeterMapRaw, MeterModel, MeterReading, PointRaw, RETIRED_MODELS,
    read_meter,
};
