//! The Prometheus text exposition format (version 0.0.4), written straight into a `String`.
//!
//! Hand-written rather than pushed through the `metrics` recorder because per-miner series
//! come and go with connections: the recorder would keep a departed miner's series until an
//! idle timeout, whereas here each scrape writes exactly what the registry holds.

use std::collections::HashSet;
use std::fmt::Write;

/// Longest label value written; longer values (a user agent is whatever the miner sent) are
/// cut on a character boundary so one miner cannot bloat every scrape.
pub const MAX_LABEL_VALUE: usize = 128;

/// The kind of a metric family, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that only goes up (name ends in `_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Appends families and samples to an exposition text.
#[derive(Debug, Default)]
pub struct TextWriter {
    out: String,
    /// Families already in the text (from the recorder): a second `# TYPE` line for one
    /// name makes Prometheus refuse the whole scrape, so such a family is left out here.
    taken: HashSet<String>,
    /// Whether the current family is being left out.
    skipping: bool,
}

impl TextWriter {
    /// A writer appending to `out` (e.g. the recorder's own rendering).
    pub fn new(mut out: String) -> TextWriter {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let taken = out
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect();
        TextWriter {
            out,
            taken,
            skipping: false,
        }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Every sample of the family must
    /// follow before the next family starts. A family the text already holds is left out
    /// (with an error logged), so one stray `counter!` cannot break every scrape.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        self.skipping = self.taken.contains(name);
        if self.skipping {
            tracing::error!(
                metric = name,
                "metric recorded through the metrics macros clashes with an exporter series; exporter series left out"
            );
            return;
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// Writes one sample; label values are escaped and cut to [`MAX_LABEL_VALUE`].
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        if self.skipping {
            return;
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_into(&mut self.out, label_value(val));
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `value` cut to at most [`MAX_LABEL_VALUE`] bytes on a character boundary.
pub fn label_value(value: &str) -> &str {
    if value.len() <= MAX_LABEL_VALUE {
        return value;
    }
    let mut end = MAX_LABEL_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or("")
}

fn escape_into(out: &mut String, value: &str) {
    // Nearly every value (worker names, reasons, addresses) needs no escaping.
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_escaped_cut_and_formatted() {
        let mut w = TextWriter::new("recorder_line 1".into());
        w.family("hashgate_x", Kind::Gauge, "An example.");
        w.sample("hashgate_x", &[("worker", "a\"b\\c\nd")], 1.5);
        w.sample("hashgate_x", &[], f64::NAN);
        w.sample("hashgate_x", &[("a", "1"), ("b", "2")], 1e21);
        w.sample("hashgate_x", &[], f64::INFINITY);
        let long = "é".repeat(100);
        w.sample("hashgate_x", &[("ua", &long)], 0.0);
        let text = w.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "recorder_line 1");
        assert_eq!(lines[1], "# HELP hashgate_x An example.");
        assert_eq!(lines[2], "# TYPE hashgate_x gauge");
        assert_eq!(lines[3], r#"hashgate_x{worker="a\"b\\c\nd"} 1.5"#);
        assert_eq!(lines[4], "hashgate_x NaN");
        assert_eq!(
            lines[5],
            r#"hashgate_x{a="1",b="2"} 1000000000000000000000"#
        );
        assert_eq!(lines[6], "hashgate_x +Inf");
        assert_eq!(
            lines[7],
            format!("hashgate_x{{ua=\"{}\"}} 0", "é".repeat(64))
        );
    }

    #[test]
    fn a_family_the_recorder_already_wrote_is_left_out() {
        let head = "# TYPE hashgate_clash counter\nhashgate_clash 3\n".to_owned();
        let mut w = TextWriter::new(head);
        w.family("hashgate_clash", Kind::Counter, "Clashing.");
        w.sample("hashgate_clash", &[("worker", "a")], 1.0);
        w.family("hashgate_fine", Kind::Gauge, "Fine.");
        w.sample("hashgate_fine", &[], 2.0);
        let text = w.finish();
        assert_eq!(text.matches("# TYPE hashgate_clash").count(), 1);
        assert!(!text.contains("worker=\"a\""));
        assert!(text.ends_with("hashgate_fine 2\n"), "{text}");
    }
}
