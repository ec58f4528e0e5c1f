//! hashgate's pure core: what a Stratum V1 proxy must get right byte for byte, with no I/O,
//! no clock and no async runtime in its dependency tree. Time comes in as an argument, so
//! every rule here is tested without sleeps or sockets.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`stratum`] | Stratum V1 wire messages, hot-path parsers, encoders and the bounded line framer |
//! | [`work`] | jobs, difficulty ↔ target, header building and SHA-256d share validation |
//! | [`extranonce`] | extranonce splitting: per-miner prefixes leased from each upstream connection |
//! | [`vardiff`] | per-miner variable difficulty aiming at a steady share interval |
//! | [`cgminer`] | the miners' cgminer-style management API replies (TCP 4028): framing, repair, STATUS, sections, tolerant figure reading |
//! | [`modbus`] | Modbus register points (table, unit id, address, type, word order, scale, unit) and decoding untrusted register words to numbers |

pub mod cgminer;
pub mod extranonce;
pub mod modbus;
pub mod stratum;
pub mod vardiff;
pub mod work;
