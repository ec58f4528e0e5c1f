//! Why a share is refused, as Stratum V1 error codes and reason strings.

/// A share rejection: small, `Copy`, allocation-free, mapped to Stratum error codes.
///
/// Some variants are decided by [`validate`](super::validate) from the share itself; the
/// others (stale, duplicate, unauthorized, not subscribed) by the session that knows the
/// job list and the miner's state, but they are answered the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ShareReject {
    /// The job id is unknown or no longer current (code 21).
    #[error("Job not found")]
    Stale,
    /// The same share was already submitted (code 22).
    #[error("Duplicate share")]
    Duplicate,
    /// The hash does not meet the miner's target (code 23).
    #[error("Low difficulty share")]
    LowDifficulty,
    /// The worker was never authorized on this connection (code 24).
    #[error("Unauthorized worker")]
    Unauthorized,
    /// The connection has not subscribed yet (code 25).
    #[error("Not subscribed")]
    NotSubscribed,
    /// Version bits outside the negotiated version-rolling mask (code 20).
    #[error("Invalid version bits")]
    BadVersionBits,
    /// ntime before the job's ntime or too far ahead of it (code 20).
    #[error("Ntime out of range")]
    NtimeOutOfRange,
    /// extranonce2 is not the size the session announced (code 20).
    #[error("Invalid extranonce2 size")]
    BadExtranonce2Len,
    /// The submit could not be decoded (code 20).
    #[error("Malformed share")]
    Malformed,
}

impl ShareReject {
    /// Every variant, for exhaustive tests and metric pre-registration.
    pub const ALL: [ShareReject; 9] = [
        ShareReject::Stale,
        ShareReject::Duplicate,
        ShareReject::LowDifficulty,
        ShareReject::Unauthorized,
        ShareReject::NotSubscribed,
        ShareReject::BadVersionBits,
        ShareReject::NtimeOutOfRange,
        ShareReject::BadExtranonce2Len,
        ShareReject::Malformed,
    ];

    /// The Stratum V1 error code (20 other, 21 stale, 22 duplicate, 23 low difficulty,
    /// 24 unauthorized, 25 not subscribed).
    pub const fn code(self) -> i32 {
        match self {
            ShareReject::Stale => 21,
            ShareReject::Duplicate => 22,
            ShareReject::LowDifficulty => 23,
            ShareReject::Unauthorized => 24,
            ShareReject::NotSubscribed => 25,
            ShareReject::BadVersionBits
            | ShareReject::NtimeOutOfRange
            | ShareReject::BadExtranonce2Len
            | ShareReject::Malformed => 20,
        }
    }

    /// A stable short label for metrics (`reason="low_difficulty"`).
    pub const fn label(self) -> &'static str {
        match self {
            ShareReject::Stale => "stale",
            ShareReject::Duplicate => "duplicate",
            ShareReject::LowDifficulty => "low_difficulty",
            ShareReject::Unauthorized => "unauthorized",
            ShareReject::NotSubscribed => "not_subscribed",
            ShareReject::BadVersionBits => "bad_version_bits",
            ShareReject::NtimeOutOfRange => "ntime_out_of_range",
            ShareReject::BadExtranonce2Len => "bad_extranonce2_len",
            ShareReject::Malformed => "malformed",
        }
    }

    /// The reason string sent to the miner (same text as `Display`).
    pub const fn reason(self) -> &'static str {
        match self {
            ShareReject::Stale => "Job not found",
            ShareReject::Duplicate => "Duplicate share",
            ShareReject::LowDifficulty => "Low difficulty share",
            ShareReject::Unauthorized => "Unauthorized worker",
            ShareReject::NotSubscribed => "Not subscribed",
            ShareReject::BadVersionBits => "Invalid version bits",
            ShareReject::NtimeOutOfRange => "Ntime out of range",
            ShareReject::BadExtranonce2Len => "Invalid extranonce2 size",
            ShareReject::Malformed => "Malformed share",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn labels_are_unique_and_reasons_match_display() {
        let labels: HashSet<_> = ShareReject::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), ShareReject::ALL.len());
        for r in ShareReject::ALL {
            assert_eq!(r.to_string(), r.reason());
            assert!((20..=25).contains(&r.code()));
            assert!(
                r.label()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
    }

    #[test]
    fn codes_follow_stratum_convention() {
        assert_eq!(ShareReject::Stale.code(), 21);
        assert_eq!(ShareReject::Duplicate.code(), 22);
        assert_eq!(ShareReject::LowDifficulty.code(), 23);
        assert_eq!(ShareReject::Unauthorized.code(), 24);
        assert_eq!(ShareReject::NotSubscribed.code(), 25);
        assert_eq!(ShareReject::NtimeOutOfRange.code(), 20);
        assert_eq!(ShareReject::NtimeOutOfRange.reason(), "Ntime out of range");
    }
}
