//! Independent peer: scapy's PFCP and GTP layers (not our codec) drive the
//! UPF, and tshark (Wireshark's dissectors) decodes the capture: no
//! malformed packet, the causes and F-TEID as intended. Fails, naming the
//! package, when /usr/bin/python3 has no scapy or tshark is missing.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Fails the test unless /usr/bin/python3 (the interpreter Debian's
/// python3-scapy installs into) imports scapy's PFCP layer.
fn require_scapy() {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import scapy.contrib.pfcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs /usr/bin/python3 with scapy (Debian package python3-scapy): `./minedge test` installs it"
    );
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        // SAFETY: signal our own child (tshark) so it flushes its file.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn scapy_smf_and_gnb_drive_the_upf() {
    testkit::require_root();
    testkit::require_tool("tshark");
    require_scapy();
    let bed = Bed::new();
    let pcap = std::env::temp_dir().join(format!("{}-scapy.pcap", bed.tag));
    let veth = format!("{}gu", bed.tag);
    // The bed's own gNB socket holds 10.0.1.1:2152: the peer uses 10.0.1.3.
    bed.gnb.ip(&["addr", "add", "10.0.1.3/24", "dev", &veth]);
    let cap = Kill(
        Command::new("ip")
            .args([
                "netns", "exec", &bed.gnb.0, "tshark", "-q", "-i", &veth, "-w",
            ])
            .arg(&pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tshark"),
    );
    // tshark writes the file header once it captures: wait for it.
    assert!(
        testkit::wait_until(Duration::from_secs(20), || std::fs::metadata(&pcap)
            .is_ok_and(|m| m.len() > 0)),
        "tshark did not start capturing within 20 s"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peer/scapy_smf_gnb.py");
    let out = Command::new("ip")
        .args(["netns", "exec", &bed.gnb.0, "/usr/bin/python3", script])
        .args([
            &UPF_N3.to_string(),
            "10.0.1.3",
            &UE.to_string(),
            &EDGE.to_string(),
            &ECHO_PORT.to_string(),
        ])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "peer failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("peer: {stdout}");
    assert!(stdout.contains("\"establishment_cause\": 1"), "{stdout}");
    assert!(
        stdout.contains(&format!("\"teid_addr\": \"{UPF_N3}\"")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "\"upf_recovery_ts\": {}",
            bed.upf().recovery_time_stamp()
        )),
        "{stdout}"
    );
    // Wireshark's view of the capture.
    let fields = |filter: &str, field: &str| -> Vec<String> {
        let o = Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args(["-Y", filter, "-T", "fields", "-e", field])
            .output()
            .expect("tshark -r");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    // The capture is complete once it holds the last message of the
    // exchange, the Session Deletion Response.
    assert!(
        testkit::wait_until(Duration::from_secs(10), || !fields(
            "pfcp.msg_type == 55",
            "frame.number"
        )
        .is_empty()),
        "the capture has no Session Deletion Response after 10 s"
    );
    drop(cap);
    let malformed = fields(
        "_ws.malformed || _ws.expert.severity == \"error\"",
        "frame.number",
    );
    assert!(malformed.is_empty(), "malformed frames: {malformed:?}");
    let causes = fields("pfcp && ip.src == 10.0.1.2", "pfcp.cause");
    assert_eq!(
        causes.iter().filter(|c| c.as_str() == "1").count(),
        4,
        "UPF causes: {causes:?}"
    );
    eprintln!("tshark: UPF causes {causes:?}");
    let teids = fields("pfcp.msg_type == 51", "pfcp.f_teid.teid");
    assert_eq!(teids.len(), 1, "{teids:?}");
    let end_markers = fields("gtp.message == 254", "gtp.teid");
    assert_eq!(end_markers, vec!["0x00000099".to_string()]);
    let _ = std::fs::remove_file(&pcap);
}
