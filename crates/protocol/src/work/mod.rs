//! Jobs, targets and share validation.
//!
//! | module | owns |
//! |---|---|
//! | `job` | [`Job`] built once per `mining.notify`, with the coinb1 midstate |
//! | `target`, `difficulty` | 256-bit [`Target`], [`Difficulty`], compact `nbits` |
//! | `coinbase` | [`coinbase_height`]: the BIP34 block height at the start of coinb1 |
//! | `hash` | [`Hash256`], a raw SHA-256d output |
//! | `header` | the 80-byte header layout and Stratum's prevhash word order |
//! | `sha256d` | fixed-shape SHA-256d on the raw compression function, one or two streams |
//! | `sha_ni` | two SHA-256 compressions interleaved on x86-64 SHA-NI (the only `unsafe`) |
//! | `validate` | [`validate`]: submit → header → hash → [`Share`] or [`ShareReject`]; [`validate_pair`] for two at once |
//! | `reject` | [`ShareReject`] with Stratum error codes, reasons and metric labels |
//!
//! Everything here is pure: no I/O, no clock, no allocation per share.

mod coinbase;
mod difficulty;
mod hash;
mod header;
mod job;
mod reject;
pub mod sha256d;
#[cfg(target_arch = "x86_64")]
mod sha_ni;
mod target;
mod validate;

pub use coinbase::{HeightError, coinbase_height};
pub use difficulty::{Difficulty, DifficultyError};
pub use hash::Hash256;
pub use header::{HeaderFields, prevhash_to_header_order};
pub use job::{Job, JobError, JobTemplate};
pub use reject::ShareReject;
pub use target::{CompactError, Target};
pub use validate::{Share, ShareInput, SubmitPolicy, merkle_root, validate, validate_pair};
