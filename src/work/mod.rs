//! Jobs, targets and share validation.
