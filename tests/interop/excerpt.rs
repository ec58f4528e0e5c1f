//! Quoting log lines in failure messages.

/// Up to `n` of the first lines of `text` containing `needle`, indented; says so when
/// there is none.
pub fn lines_with(text: &str, needle: &str, n: usize) -> String {
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains(needle))
        .take(n)
        .map(|l| format!("    {l}"))
        .collect();
    if lines.is_empty() {
        format!("    (no line with {needle:?})")
    } else {
        lines.join("\n")
    }
}
