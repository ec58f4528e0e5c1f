//! Mapping a miner's worker name onto the site's pool account.

use crate::config::UpstreamWorker;

/// Longest worker name accepted; real names are short (`account.rack12-slot34`) and the
/// name ends up in logs, metrics and upstream submits.
pub(crate) const MAX_WORKER_NAME: usize = 128;

/// Why a worker name is refused at `mining.authorize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WorkerNameError {
    /// Empty, or only an account part with nothing after the dot.
    #[error("worker name is empty")]
    Empty,
    /// Longer than [`MAX_WORKER_NAME`] bytes.
    #[error("worker name is longer than {MAX_WORKER_NAME} bytes")]
    TooLong,
    /// Holds whitespace or control characters, which would corrupt logs and pool names.
    #[error("worker name contains whitespace or control characters")]
    BadCharacter,
}

/// The name shares are submitted under upstream for a miner authorized as `name`.
///
/// A miner sends `anything.worker` or just `worker`; the part after the first dot (or the
/// whole name) is its worker part. With [`UpstreamWorker::PerMiner`] the result is
/// `<account>.<worker part>` (just the worker part when no account is configured), with
/// [`UpstreamWorker::Account`] it is `<account>`.
///
/// # Errors
/// [`WorkerNameError`] for empty, over-long or unprintable names.
pub(crate) fn upstream_worker_name(
    name: &str,
    account: &str,
    mode: UpstreamWorker,
) -> Result<String, WorkerNameError> {
    if name.len() > MAX_WORKER_NAME {
        return Err(WorkerNameError::TooLong);
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(WorkerNameError::BadCharacter);
    }
    let part = name.split_once('.').map_or(name, |(_, rest)| rest);
    if part.is_empty() {
        return Err(WorkerNameError::Empty);
    }
    Ok(match (mode, account.is_empty()) {
        (UpstreamWorker::Account, false) => account.to_owned(),
        (_, true) => part.to_owned(),
        (UpstreamWorker::PerMiner, false) => format!("{account}.{part}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_part_is_mapped_onto_the_account() {
        let per = UpstreamWorker::PerMiner;
        assert_eq!(
            upstream_worker_name("minerco.rack1", "site", per).as_deref(),
            Ok("site.rack1")
        );
        assert_eq!(
            upstream_worker_name("rack1", "site", per).as_deref(),
            Ok("site.rack1")
        );
        assert_eq!(
            upstream_worker_name("a.b.c", "site", per).as_deref(),
            Ok("site.b.c")
        );
        assert_eq!(
            upstream_worker_name("a.rack1", "site", UpstreamWorker::Account).as_deref(),
            Ok("site")
        );
        assert_eq!(
            upstream_worker_name("a.rack1", "", per).as_deref(),
            Ok("rack1")
        );
    }

    #[test]
    fn unusable_names_are_refused() {
        let per = UpstreamWorker::PerMiner;
        assert_eq!(
            upstream_worker_name("", "s", per),
            Err(WorkerNameError::Empty)
        );
        assert_eq!(
            upstream_worker_name("acct.", "s", per),
            Err(WorkerNameError::Empty)
        );
        assert_eq!(
            upstream_worker_name("a b", "s", per),
            Err(WorkerNameError::BadCharacter)
        );
        assert_eq!(
            upstream_worker_name(&"w".repeat(129), "s", per),
            Err(WorkerNameError::TooLong)
        );
    }
}
