//! What is kept of a miner's user agent (`mining.subscribe`'s first parameter).

/// Longest user agent kept: real ones are short (`bmminer/2.0.0`, `cgminer/4.11.1`), and a
/// 64 KiB agent kept per session (and again in its stats) made one connection cost 40
/// miners' memory. Longer ones are cut at a character boundary.
pub(crate) const MAX_USER_AGENT: usize = 128;

/// The user agent as kept: at most [`MAX_USER_AGENT`] bytes, control characters dropped
/// (it is shown in logs and as a metric label).
pub(crate) fn kept_user_agent(agent: &str) -> String {
    let mut kept = String::with_capacity(agent.len().min(MAX_USER_AGENT));
    for c in agent.chars().filter(|c| !c.is_control()) {
        if kept.len() + c.len_utf8() > MAX_USER_AGENT {
            break;
        }
        kept.push(c);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_agent_is_kept_short_and_printable() {
        assert_eq!(kept_user_agent("cgminer/4.11.1"), "cgminer/4.11.1");
        let long = "é".repeat(40_000);
        let kept = kept_user_agent(&long);
        assert!(kept.len() <= MAX_USER_AGENT && kept.len() >= MAX_USER_AGENT - 1);
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(kept_user_agent("bm\u{1b}[31mminer\n"), "bm[31mminer");
    }
}
