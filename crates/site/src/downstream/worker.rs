//! Checking the worker name a miner authorizes as and splitting it into parts; the pool
//! side builds its own name from them.

use crate::hub::MinerWorker;

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

/// Checks a name a miner authorizes as and splits it into its parts; the pool side
/// decides what name its shares go under.
///
/// A miner sends `anything.worker` or just `worker`; the part after the first dot (or the
/// whole name) is its worker part.
///
/// # Errors
/// [`WorkerNameError`] for empty, over-long or unprintable names.
pub(crate) fn miner_worker(name: &str) -> Result<MinerWorker, WorkerNameError> {
    if name.len() > MAX_WORKER_NAME {
        return Err(WorkerNameError::TooLong);
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(WorkerNameError::BadCharacter);
    }
    if name.chars().any(invisible) {
        return Err(WorkerNameError::Invisible);
    }
    let worker = MinerWorker::new(name);
    if worker.rig().is_empty() {
        return Err(WorkerNameError::Empty);
    }
    Ok(worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rig(name: &str) -> Result<String, WorkerNameError> {
        miner_worker(name).map(|w| w.rig().to_owned())
    }

    #[test]
    fn names_that_can_pass_for_others_are_refused() {
        for spoof in [
            "rack1\u{200B}",         // zero-width space
            "rack\u{202E}1kcar",     // right-to-left override
            "rack\u{2067}1\u{2069}", // right-to-left isolate
            "\u{FEFF}rack1",         // byte-order mark
            "rack\u{00AD}1",         // soft hyphen
            "rack1\u{E0041}",        // tag character
        ] {
            assert_eq!(rig(spoof), Err(WorkerNameError::Invisible), "{spoof:?}");
        }
        // Names in other scripts are fine: only the invisible ones are refused.
        assert_eq!(rig("acct.стойка-1").as_deref(), Ok("стойка-1"));
    }

    #[test]
    fn the_worker_part_is_what_follows_the_first_dot() {
        assert_eq!(rig("minerco.rack1").as_deref(), Ok("rack1"));
        assert_eq!(rig("rack1").as_deref(), Ok("rack1"));
        assert_eq!(rig("a.b.c").as_deref(), Ok("b.c"));
        let w = miner_worker("acct.rack1").unwrap();
        assert_eq!(
            (w.name(), w.to_string().as_str()),
            ("acct.rack1", "acct.rack1")
        );
    }

    #[test]
    fn unusable_names_are_refused() {
        assert_eq!(rig(""), Err(WorkerNameError::Empty));
        assert_eq!(rig("acct."), Err(WorkerNameError::Empty));
        assert_eq!(rig("a b"), Err(WorkerNameError::BadCharacter));
        assert_eq!(rig(&"w".repeat(129)), Err(WorkerNameError::TooLong));
    }
}
