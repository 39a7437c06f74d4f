//! Independent peer: scapy's PFCP and GTP layers (not our codec) drive the
//! UPF (scripts in tests/peer/), and tshark (Wireshark's dissectors)
//! decodes the capture: no malformed packet, the causes and F-TEID as
//! intended. Fails, naming the package, when /usr/bin/python3 has no scapy
//! or tshark is missing.

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

/// A bed with a second N3/N4 address (`10.0.1.3`) in the gNB namespace for
/// the peer (the bed's own gNB socket holds 10.0.1.1:2152), `extra`
/// addresses beside it, and tshark capturing on the gNB's link.
struct PeerBed {
    bed: Bed,
    pcap: std::path::PathBuf,
    cap: Option<Kill>,
}

const PEER: &str = "10.0.1.3";

impl PeerBed {
    fn new(extra: &[&str]) -> PeerBed {
        testkit::require_root();
        testkit::require_tool("tshark");
        require_scapy();
        let bed = Bed::new();
        let pcap = std::env::temp_dir().join(format!("{}-scapy.pcap", bed.tag));
        let veth = format!("{}gu", bed.tag);
        for a in std::iter::once(&PEER).chain(extra) {
            must(
                bed.gnb
                    .ip(&["addr", "add", &format!("{a}/24"), "dev", &veth]),
            );
        }
        let cap = Kill(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &bed.gnb.name,
                    "tshark",
                    "-q",
                    "-i",
                    &veth,
                    "-w",
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
        PeerBed {
            bed,
            pcap,
            cap: Some(cap),
        }
    }

    /// Runs tests/peer/`script` in the gNB namespace with `args`; its one
    /// JSON line (it fails the test if the script does).
    fn run(&self, script: &str, args: &[&dyn std::fmt::Display]) -> serde_json::Value {
        let script = format!("{}/tests/peer/{script}", env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.bed.gnb.name,
                "/usr/bin/python3",
                // No __pycache__ in the checkout: the tests run as root,
                // and a root-owned one is left in the user's tree.
                "-B",
                &script,
            ])
            .args(args.iter().map(|a| a.to_string()))
            .output()
            .expect("python3");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "peer failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("peer: {stdout}");
        serde_json::from_str(stdout.trim()).expect("one JSON line")
    }

    /// One field of every packet of the capture that `filter` selects.
    fn fields(&self, filter: &str, field: &str) -> Vec<String> {
        let o = Command::new("tshark")
            .arg("-r")
            .arg(&self.pcap)
            .args(["-Y", filter, "-T", "fields", "-e", field])
            .output()
            .expect("tshark -r");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Stops the capture once it holds a packet that `last` selects, and
    /// checks that Wireshark finds no malformed packet in it.
    fn finish_capture(&mut self, last: &str) {
        assert!(
            testkit::wait_until(Duration::from_secs(10), || !self
                .fields(last, "frame.number")
                .is_empty()),
            "the capture has no `{last}` after 10 s"
        );
        self.cap = None;
        let malformed = self.fields(
            "_ws.malformed || _ws.expert.severity == \"error\"",
            "frame.number",
        );
        assert!(malformed.is_empty(), "malformed frames: {malformed:?}");
    }
}

impl Drop for PeerBed {
    fn drop(&mut self) {
        self.cap = None;
        if std::thread::panicking() {
            eprintln!("capture kept: {}", self.pcap.display());
        } else {
            let _ = std::fs::remove_file(&self.pcap);
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn scapy_smf_and_gnb_drive_the_upf() {
    let mut pb = PeerBed::new(&[]);
    let out = pb.run(
        "scapy_smf_gnb.py",
        &[&UPF_N3, &PEER, &UE, &EDGE, &ECHO_PORT],
    );
    assert_eq!(out["establishment_cause"], 1, "{out}");
    assert_eq!(out["teid_addr"], UPF_N3.to_string(), "{out}");
    assert_eq!(
        out["upf_recovery_ts"],
        pb.bed.upf().recovery_time_stamp(),
        "{out}"
    );
    // Wireshark's view of the capture, complete once it holds the last
    // message of the exchange, the Session Deletion Response.
    pb.finish_capture("pfcp.msg_type == 55");
    let causes = pb.fields("pfcp && ip.src == 10.0.1.2", "pfcp.cause");
    assert_eq!(
        causes.iter().filter(|c| c.as_str() == "1").count(),
        4,
        "UPF causes: {causes:?}"
    );
    eprintln!("tshark: UPF causes {causes:?}");
    let teids = pb.fields("pfcp.msg_type == 51", "pfcp.f_teid.teid");
    assert_eq!(teids.len(), 1, "{teids:?}");
    let end_markers = pb.fields("gtp.message == 254", "gtp.teid");
    assert_eq!(end_markers, vec!["0x00000099".to_string()]);
}

/// The checks issue 13 asks of an independent peer, beyond the session's
/// life: a rejected mixed modification that changes nothing, usage reports
/// (volume threshold and periodic), QER gate and MBR, Error Indication,
/// retransmissions answered once, buffering with a Downlink Data Report,
/// an Association Release from a wrong address refused, and an SMF
/// restart announced by Heartbeat (tests/peer/scapy_features.py).
#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn scapy_peer_checks_reports_qer_buffering_and_peer_rules() {
    const ROGUE: &str = "10.0.1.4";
    let mut pb = PeerBed::new(&[ROGUE]);
    let out = pb.run(
        "scapy_features.py",
        &[&UPF_N3, &PEER, &ROGUE, &UE, &EDGE, &ECHO_PORT],
    );
    assert_ne!(out["mixed_modification_cause"], 1, "{out}");
    let th = &out["threshold_report"];
    assert_eq!(th["uplink"], th["sent"], "{out}");
    assert!(out["periodic_reports"].as_u64() >= Some(2), "{out}");
    assert_eq!(out["echoes_through_closed_gate"], 0, "{out}");
    assert_eq!(out["error_indication"]["teid"], 0x0bad_beef, "{out}");
    assert_eq!(out["retransmission"]["same_answer"], true, "{out}");
    assert_eq!(out["dldr_pdr"], 2, "{out}");
    assert_eq!(out["flushed"], "buffer me", "{out}");
    assert_eq!(out["rogue_release_cause"], 72, "{out}");
    assert_eq!(out["after_restart_modification_cause"], 72, "{out}");
    // Wireshark decodes every message (the last one: the UPF's answer to the
    // modification after the restart) and sees the reports as sent.
    pb.finish_capture("pfcp.msg_type == 53 && pfcp.cause == 72");
    let report_types = pb.fields("pfcp.msg_type == 56", "pfcp.report_type.dldr");
    assert!(
        report_types.iter().any(|t| t == "1" || t == "True"),
        "no Downlink Data Report in the capture: {report_types:?}"
    );
    let volth = pb.fields("pfcp.msg_type == 56", "pfcp.volume_measurement.ulvol");
    assert!(!volth.is_empty(), "no volume measurement in the capture");
    let errinds = pb.fields("gtp.message == 26", "gtp.teid_data");
    assert!(
        errinds
            .iter()
            .any(|t| t.contains("0x0badbeef") || t == "195935983"),
        "no Error Indication for 0x0badbeef in the capture: {errinds:?}"
    );
    assert_eq!(
        pb.bed.upf().inner().table().len(),
        0,
        "the restarted SMF's session is gone"
    );
}
