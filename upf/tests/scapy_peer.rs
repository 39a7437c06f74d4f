//! Independent peer: scapy's PFCP and GTP layers (not our codec) drive the
//! UPF, and tshark (Wireshark's dissectors) decodes the capture: no
//! malformed packet, the causes and F-TEID as intended. Skipped, with a
//! message, when /usr/bin/python3 has no scapy or tshark is missing.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn have(cmd: &[&str]) -> bool {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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
fn scapy_smf_and_gnb_drive_the_upf() {
    if !have(&["/usr/bin/python3", "-c", "import scapy.contrib.pfcp"]) || !have(&["tshark", "-v"]) {
        eprintln!("SKIPPED: needs /usr/bin/python3 with scapy and tshark");
        return;
    }
    let Some(bed) = Bed::new_if_root() else {
        return;
    };
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
    let t0 = std::time::Instant::now();
    while std::fs::metadata(&pcap).map_or(true, |m| m.len() == 0) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "tshark did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
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
    std::thread::sleep(Duration::from_millis(500));
    drop(cap);
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
