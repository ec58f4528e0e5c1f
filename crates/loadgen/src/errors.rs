//! Distinct error messages with counts, so ten thousand refused connects read as one line.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Distinct messages kept; later new ones are only counted.
const MAX_DISTINCT: usize = 32;

/// Counts errors by message.
#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    /// Count per message, plus how many new messages did not fit.
    inner: Mutex<(BTreeMap<String, u64>, u64)>,
}

impl ErrorLog {
    /// Counts one occurrence of `message`.
    pub(crate) fn note(&self, message: impl Into<String>) {
        let message = message.into();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, overflow) = &mut *inner;
        if let Some(n) = map.get_mut(&message) {
            *n += 1;
        } else if map.len() < MAX_DISTINCT {
            map.insert(message, 1);
        } else {
            *overflow += 1;
        }
    }

    /// Messages with counts, most frequent first; a last entry counts the ones left out.
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<(String, u64)> = inner.0.iter().map(|(m, n)| (m.clone(), *n)).collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if inner.1 > 0 {
            list.push(("(other errors)".into(), inner.1));
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_message_most_frequent_first_and_caps_distinct() {
        let log = ErrorLog::default();
        log.note("b");
        log.note("a");
        log.note("a");
        assert_eq!(log.snapshot(), vec![("a".into(), 2), ("b".into(), 1)]);
        for i in 0..40 {
            log.note(format!("m{i}"));
        }
        let snap = log.snapshot();
        assert_eq!(snap.len(), MAX_DISTINCT + 1);
        assert_eq!(snap.last(), Some(&("(other errors)".to_string(), 10)));
    }
}
