//! Stratum V1 wire messages and codec.
