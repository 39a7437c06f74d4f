//! State-synchronization protocol and client (being built, issue 6).
