//! Jobs, targets and share validation.
//!
//! | module | owns |
//! |---|---|
//! | `job` | [`Job`] built once per `mining.notify`, with the coinb1 midstate |
//! | `target`, `difficulty` | 256-bit [`Target`], [`Difficulty`], compact `nbits` |
//! | `hash` | [`Hash256`], a raw SHA-256d output |
//! | `header` | the 80-byte header layout and Stratum's prevhash word order |
//! | `sha256d` | fixed-shape SHA-256d on the raw compression function |
//! | `validate` | [`validate`]: submit → header → hash → [`Share`] or [`ShareReject`] |
//! | `reject` | [`ShareReject`] with Stratum error codes, reasons and metric labels |
//!
//! Everything here is pure: no I/O, no clock, no allocation per share.

mod difficulty;
mod hash;
mod header;
mod job;
mod reject;
pub mod sha256d;
mod target;
mod validate;

pub use difficulty::{Difficulty, DifficultyError};
pub use hash::Hash256;
pub use header::{HeaderFields, prevhash_to_header_order};
pub use job::{Job, JobError, JobTemplate};
pub use reject::ShareReject;
pub use target::{CompactError, Target};
pub use validate::{Share, Submit, SubmitPolicy, merkle_root, validate};
