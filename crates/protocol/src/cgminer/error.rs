//! Why a management API reply could not be used.

/// A reply that is unreadable, or that the miner marked as a refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Truncated, not JSON, or without the STATUS every cgminer reply carries.
    #[error("unreadable reply: {0}")]
    Unreadable(String),
    /// The miner understood the command and answered with an error status.
    #[error("miner refused the command: {0}")]
    Refused(String),
}
