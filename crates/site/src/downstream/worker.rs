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
    /// Holds invisible or text-direction characters, with which one name can pass for
    /// another in logs and Grafana.
    #[error("worker name contains invisible or text-direction (bidi) characters")]
    Invisible,
}

/// Characters that print as nothing or reorder the text around them: bidi embeddings,
/// overrides and isolates, zero-width spaces and joiners, the byte-order mark, soft hyphen,
/// Hangul fillers, variation selectors and tag characters. `rack1` and `rack1` + U+200B look
/// the same on a dashboard; `rack<RLO>1kcar` shows as another name.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}')
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
    if name.chars().any(invisible) {
        return Err(WorkerNameError::Invisible);
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
    fn names_that_can_pass_for_others_are_refused() {
        let per = UpstreamWorker::PerMiner;
        for spoof in [
            "rack1\u{200B}",         // zero-width space
            "rack\u{202E}1kcar",     // right-to-left override
            "rack\u{2067}1\u{2069}", // right-to-left isolate
            "\u{FEFF}rack1",         // byte-order mark
            "rack\u{00AD}1",         // soft hyphen
            "rack1\u{E0041}",        // tag character
        ] {
            assert_eq!(
                upstream_worker_name(spoof, "site", per),
                Err(WorkerNameError::Invisible),
                "{spoof:?}"
            );
        }
        // Names in other scripts are fine: only the invisible ones are refused.
        assert_eq!(
            upstream_worker_name("acct.стойка-1", "site", per).as_deref(),
            Ok("site.стойка-1")
        );
    }

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
