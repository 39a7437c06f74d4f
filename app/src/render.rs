//! Deterministic frames from the world (being built, issue 6).
