//! CSM session manager, Algorithm 1 (being built, issue 6).
