//! The `ue` binary's exit statuses (ctlhttp::daemon::exit): 0 ok, 2 for a
//! bad configuration, 1 for a failure while running; each error names
//! what it is about.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ue");

#[test]
fn exit_status_tells_usage_from_runtime_errors() {
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ue.toml");
    testkit::run_cmd(BIN, &["check-config", good]).unwrap_or_else(|e| panic!("{e}"));

    let bad = std::env::temp_dir().join(format!("ue-cli-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "ue_id = \"imsi-1\"\ngnb_n1 = \"10.10.1\"\n").expect("write");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("runs");
    std::fs::remove_file(&bad).expect("remove");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("gnb_n1"), "{err}");

    // Nothing listens on the discard port: a runtime error naming the API.
    let out = Command::new(BIN)
        .args(["session", "list", "--api", "127.0.0.1:9"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
}
