//! Pool difficulty: a positive finite number, fractional for small miners.

use std::fmt;

use super::target::Target;

/// A pool share difficulty (difficulty 1 = [`Target::DIFF1`]); always finite and > 0.
///
/// Pools hand out fractional difficulties (0.001 to small miners; tests go to 1e-6), so
/// this is an `f64`, not an integer.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub struct Difficulty(f64);

/// A difficulty value that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("difficulty must be a finite number above zero, got {0}")]
pub struct DifficultyError(pub f64);

impl Difficulty {
    /// Difficulty 1.
    pub const ONE: Difficulty = Difficulty(1.0);

    /// Checks and wraps a difficulty.
    ///
    /// # Errors
    /// [`DifficultyError`] for zero, negative, NaN or infinite values.
    pub fn new(value: f64) -> Result<Self, DifficultyError> {
        if value.is_finite() && value > 0.0 {
            Ok(Difficulty(value))
        } else {
            Err(DifficultyError(value))
        }
    }

    /// The difficulty as a plain number.
    pub fn get(self) -> f64 {
        self.0
    }

    /// The share target for this difficulty.
    pub fn to_target(self) -> Target {
        Target::from_difficulty(self)
    }
}

impl fmt::Debug for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Difficulty({})", self.0)
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unusable_values() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, -0.0] {
            assert!(Difficulty::new(bad).is_err(), "{bad}");
        }
        assert_eq!(Difficulty::new(1e-6).unwrap().get(), 1e-6);
    }
}
