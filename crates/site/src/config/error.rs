//! Configuration errors, each naming the file or field at fault.

use std::path::PathBuf;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error, a wrong type or an unknown field, said plainly.
    #[error("{field}: {problem}{}", at_line(*line))]
    Parse {
        /// Dotted path of the field (`proxy.max_connections`), or `file` for a syntax error
        /// outside any field.
        field: String,
        /// What was given and what is expected, without serde's type names.
        problem: String,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
    },
    /// The `[power]` section is invalid; the inner error names the miner or container.
    #[error("power: {0}")]
    Power(Box<crate::power::inventory::InventoryError>),
    /// A value is out of range or inconsistent; `field` is its dotted path.
    #[error("{field}: {reason}")]
    Invalid {
        /// Dotted path of the field, e.g. `pools[0].url`.
        field: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

impl ConfigError {
    /// Builds an [`ConfigError::Invalid`] for a field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Deserializes TOML text, turning serde's errors into [`ConfigError::Parse`]: the dotted
/// path of the field, what was given, what is expected.
///
/// # Errors
/// [`ConfigError::Parse`].
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
        field: "file".to_owned(),
        problem: format!("not valid TOML: {}", e.message().trim()),
        line: line_of(e.span()),
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::Parse {
            field: if path == "." { "file".to_owned() } else { path },
            problem: plain(inner.message()),
            line: line_of(inner.span()),
        }
    })
}

/// Rewrites serde's wording (`invalid value: integer `-5`, expected usize`) into an
/// operator's (`-5 was given; expected a whole number from 0 up`).
pub(crate) fn plain(message: &str) -> String {
    let message = message.trim();
    // The path already ends in the unknown key's name; list what would have been accepted.
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let known = rest
            .split_once(", expected ")
            .map_or("", |(_, known)| known)
            .trim_start_matches("one of ")
            .replace('`', "");
        return if known.is_empty() {
            "unknown key".to_owned()
        } else {
            format!("unknown key; the keys here are {known}")
        };
    }
    if let Some(name) = message.strip_prefix("missing field ") {
        return format!("the key {name} is required here");
    }
    for prefix in ["invalid value: ", "invalid type: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (given, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
            return format!(
                "{} was given; expected {}",
                given_plain(given),
                expected_plain(expected)
            );
        }
    }
    message.to_owned()
}

fn given_plain(given: &str) -> String {
    // serde writes `integer `-5``, `string "x"`, `floating point `1.5``, `boolean `true``.
    let value = given
        .split_once(' ')
        .map_or(given, |(_, v)| v)
        .trim_matches('`');
    match given.split_once(' ') {
        Some(("sequence" | "map", _)) | None => given.to_owned(),
        Some(_) => value.to_owned(),
    }
}

fn expected_plain(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" => {
            let max = match expected {
                "u8" => u64::from(u8::MAX),
                "u16" => u64::from(u16::MAX),
                "u32" => u64::from(u32::MAX),
                _ => u64::MAX,
            };
            if max == u64::MAX {
                "a whole number, 0 or more".to_owned()
            } else {
                format!("a whole number from 0 to {max}")
            }
        }
        "i64" | "i32" => "a whole number".to_owned(),
        "f64" | "f32" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a string" => "a quoted string".to_owned(),
        other => other.to_owned(),
    }
}
