//! Shared by the UE's namespace tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::Command;

use testkit::Netns;

/// The `ue` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ue");

/// Runs the `ue` CLI in `ns`: (success, stdout, stderr).
pub fn cli(ns: &Netns, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, BIN])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
