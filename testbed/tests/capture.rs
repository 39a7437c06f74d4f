//! Issue 5's packet check: with the testbed up, `topo capture` on N3 (the
//! gNB's side) and N4 (upf1's cp side) while ue1 sets up a session and sends
//! traffic; tshark (Wireshark's dissectors) decodes every packet without a
//! malformed-packet or warning entry, the G-PDUs carry the session's uplink
//! and downlink TEIDs with QFI 9, and the PFCP session messages carry the
//! session's SEIDs. Needs root, tshark and the binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Bed;

/// `topo capture` running in the background until [`Capture::stop`].
struct Capture(Child);

impl Capture {
    fn start(bed: &Bed, link: &str, file: &Path) -> Capture {
        let topo = common::testbed_bin().with_file_name("topo");
        assert!(
            topo.is_file(),
            "`topo` is not built next to testbed: run cargo build --workspace --bins"
        );
        let mut child = Command::new(topo)
            .arg("--state-dir")
            .arg(&bed.state)
            .args(["capture", "-t", "paper", link, "-w"])
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("topo capture");
        // It says so once its socket is open.
        let mut line = String::new();
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        err.read_line(&mut line).expect("read");
        assert!(line.contains("capturing on"), "topo capture: {line}");
        Capture(child)
    }

    fn stop(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let mut said = String::new();
        if let Some(mut out) = self.0.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut said).expect("read stdout");
        }
        let status = self.0.wait().expect("wait");
        assert!(status.success(), "topo capture exit {status}");
        said
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tshark -T fields over `pcap`, one Vec per packet.
fn tshark(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields", "-E", "occurrence=f"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c.output().expect("tshark must be installed");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Whether every packet socket in namespace `ns` (the captures') has read
/// all it was given: Rmem 0 in its /proc/net/packet.
fn packet_queues_empty(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/packet"])
        .output()
        .expect("ip netns exec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let rmem = header
        .iter()
        .position(|c| *c == "Rmem")
        .expect("Rmem column");
    lines.all(|l| l.split_whitespace().nth(rmem) == Some("0"))
}

/// A tshark number, printed in decimal or hex.
fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).expect("hex"),
        None => s.parse().expect("number"),
    }
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN (the testbed's daemons)"]
fn n3_and_n4_captures_decode_with_the_session_teids_qfi_and_seids() {
    testkit::require_tool("tshark");
    let bed = Bed::up("c");

    let n3 = bed.root.join("n3.pcap");
    let n4 = bed.root.join("n4.pcap");
    let cap_n3 = Capture::start(&bed, "n3-gnb1:a", &n3);
    let cap_n4 = Capture::start(&bed, "cp-upf1:a", &n4);

    bed.ok(&[
        "session", "add", "--ue", "ue1", "--psi", "1", "--dnn", "edge1",
    ]);
    let list: serde_json::Value =
        serde_json::from_str(&bed.ok(&["session", "list", "--ue", "ue1", "--json"])).expect("json");
    let s = &list[0];
    let ue_addr = s["ue_addr"].as_str().expect("ue_addr").to_string();
    let (ul_teid, dl_teid) = (
        s["ul_teid"].as_u64().expect("ul"),
        s["dl_teid"].as_u64().expect("dl"),
    );
    let (cp_seid, up_seid) = (
        s["cp_seid"].as_u64().expect("cp"),
        s["up_seid"].as_u64().expect("up"),
    );

    // Traffic through the session: an echo on edge1, probes from ue1.
    // Bound before the probes start: nothing to wait for.
    let s = topo::netns::run_in_netns(&bed.ns("edge1"), || UdpSocket::bind("10.61.0.2:9100"))
        .expect("edge1")
        .expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..5 {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                return;
            };
            s.send_to(&buf[..n], from).expect("echo");
        }
    });
    let answered = topo::netns::run_in_netns(&bed.ns("ue1"), move || {
        let s = UdpSocket::bind(format!("{ue_addr}:0")).expect("bind session address");
        s.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let mut ok = 0;
        for i in 0..5u8 {
            s.send_to(&[i; 64], "10.61.0.2:9100").expect("send");
            let mut buf = [0u8; 1500];
            if matches!(s.recv(&mut buf), Ok(64)) {
                ok += 1;
            }
        }
        ok
    })
    .expect("ue1");
    echo.join().expect("echo");
    assert_eq!(answered, 5, "probes through session 1");
    // Every packet is in the captures' socket queues by now; stop them
    // once they have read their queues empty.
    assert!(
        testkit::wait_until(Duration::from_secs(5), || packet_queues_empty(
            &bed.ns("gnb1")
        ) && packet_queues_empty(
            &bed.ns("upf1")
        )),
        "the captures did not catch up within 5 s"
    );
    let said = cap_n3.stop();
    assert!(said.contains("packets written"), "{said}");
    cap_n4.stop();

    // Wireshark finds nothing malformed and nothing to warn about.
    for p in [&n3, &n4] {
        let bad = tshark(
            p,
            "_ws.malformed || _ws.expert.severity >= warning",
            &["frame.number", "_ws.expert.message"],
        );
        assert!(bad.is_empty(), "{}: {bad:?}", p.display());
    }

    // N3: G-PDUs up to upf1 with its TEID, down to the gNB with the gNB's, QFI 9 both ways.
    let gpdus = tshark(
        &n3,
        "gtp.message == 255",
        &["gtp.teid", "gtp.ext_hdr.pdu_ses_con.qos_flow_id", "ip.dst"],
    );
    let up: Vec<_> = gpdus.iter().filter(|r| r[2] == "10.3.0.11").collect();
    let down: Vec<_> = gpdus.iter().filter(|r| r[2] == "10.3.0.1").collect();
    assert_eq!((up.len(), down.len()), (5, 5), "{gpdus:?}");
    assert!(
        up.iter().all(|r| num(&r[0]) == ul_teid && num(&r[1]) == 9),
        "{up:?}"
    );
    assert!(
        down.iter()
            .all(|r| num(&r[0]) == dl_teid && num(&r[1]) == 9),
        "{down:?}"
    );

    // N4: establishment answered to the SMF's SEID, modification sent to the UPF's.
    let pfcp = tshark(&n4, "pfcp.msg_type >= 50", &["pfcp.msg_type", "pfcp.seid"]);
    let seid_of = |t: &str| pfcp.iter().find(|r| r[0] == t).map(|r| num(&r[1]));
    assert_eq!(
        seid_of("51"),
        Some(cp_seid),
        "Session Establishment Response: {pfcp:?}"
    );
    assert_eq!(
        seid_of("52"),
        Some(up_seid),
        "Session Modification Request: {pfcp:?}"
    );
    assert_eq!(
        seid_of("53"),
        Some(cp_seid),
        "Session Modification Response: {pfcp:?}"
    );
    assert!(
        seid_of("50").is_some(),
        "Session Establishment Request: {pfcp:?}"
    );
}
