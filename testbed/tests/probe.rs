//! `testbed probe --quick --json` as CI runs it, on the paper topology
//! (the first UE is alone on a point-to-point radio link: "another UE" is
//! a session the SMF sets up for a UE without namespace, whose address the
//! gNB must keep closed on that link) and on the multi-UE topology
//! (`topo/topologies/multi-ue.toml`: the first UE shares its cell with
//! two more, so "another UE" is a real neighbour that attached through the
//! gNB's N1 relay): every property of the
//! trust boundaries holds (no core port reached from the UE, no PFCP
//! request from a wrong address honoured, nothing forwarded for another
//! UE's address or tunnel, the flood kills nothing, writes under 100 log
//! lines per daemon, grows none by 10 MB, and the session still
//! forwards), the exit status says so, and nothing is left afterwards (the
//! rogue namespace included). Needs root and the daemon binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{namespaces_with, Bed};

/// Deletes namespaces the probe would have left (its rogue host is not in
/// topo's journal); the test asserts there are none before this runs.
struct Leftovers(String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for ns in namespaces_with(&self.0) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &ns])
                .output();
        }
    }
}

const PROPERTIES: [&str; 11] = [
    "data-network-via-session",
    "ports-via-session",
    "n1-relay-on-radio",
    "ports-on-radio",
    "pfcp-wrong-address",
    "other-ue-source-on-radio",
    "other-ue-teid",
    "flood-no-crash",
    "flood-log-lines",
    "flood-memory",
    "flood-still-forwards",
];

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN, nftables (the testbed's daemons and the rogue host)"]
fn probe_quick_on_the_paper_topology() {
    probe_quick("pp", None);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN, nftables (the testbed's daemons and the rogue host)"]
fn probe_quick_on_a_shared_cell() {
    probe_quick(
        "pr",
        Some(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../topo/topologies/multi-ue.toml"
        )),
    );
}

/// Every property holds and nothing is left, on `topology` (None: the
/// paper's).
fn probe_quick(tag: &str, topology: Option<&str>) {
    let bed = Bed::with_daemons(tag);
    let _leftovers = Leftovers(bed.prefix.clone());
    let mut args = bed.job_args(&["probe", "--quick", "--json"]);
    if let Some(t) = topology {
        args.extend(["--topology".into(), t.into()]);
    }
    let o = bed.run(&args);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let r: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("JSON report ({e}):\n{out}\n{err}"));
    let checks = r["checks"].as_array().expect("checks");
    let names: Vec<&str> = checks
        .iter()
        .filter_map(|c| c["property"].as_str())
        .collect();
    assert_eq!(names, PROPERTIES, "{out}");
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c["verdict"] != "PASS" || c["pass"] != true)
        .map(|c| format!("{}: {}", c["property"], c["figure"]))
        .collect();
    assert!(failed.is_empty(), "FAIL:\n{}\n{err}", failed.join("\n"));
    assert!(
        o.status.success(),
        "exit {} with every verdict PASS\n{err}",
        o.status
    );

    // The flood was the full quick flood, and the scan covered ports.
    let flood = &checks[7]["details"];
    let sent: u64 = flood["sent"]
        .as_array()
        .expect("sent")
        .iter()
        .map(|s| s["datagrams"].as_u64().unwrap())
        .sum();
    assert_eq!(sent, 10_000, "{flood}");
    assert!(checks[1]["details"]["probed"].as_u64().unwrap() > 1000);

    bed.assert_nothing_left("probe");
    assert!(
        bed.state_json().is_none(),
        "the testbed's state file is gone"
    );
}
