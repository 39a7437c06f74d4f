//! Test support shared by the wire-format integration tests: wrap emitted
//! messages in Ethernet/IPv4/UDP frames, write them to a classic pcap file and
//! ask tshark (the Wireshark dissectors) what it decodes; and emit GTP-U
//! messages the way every GTP-U test does.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use wire::gtpu::{
    encap_in_place, GpduHeader, Repr, UlPduSessionInfo, UlQosMonitoring, MAX_GPDU_HEADER_LEN,
};

/// A GTP-U control message emitted into a buffer pre-filled with 0xa5 (so an
/// unwritten octet shows), which the emitter must fill exactly.
pub fn emit_control(repr: &Repr) -> Vec<u8> {
    let mut buf = vec![0xa5u8; repr.buffer_len()];
    assert_eq!(repr.emit(&mut buf), Ok(buf.len()));
    buf
}

/// `payload` encapsulated in a G-PDU with `hdr` by `encap_in_place`.
pub fn emit_gpdu(hdr: &GpduHeader, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0xa5u8; MAX_GPDU_HEADER_LEN + payload.len()];
    buf[MAX_GPDU_HEADER_LEN..].copy_from_slice(payload);
    encap_in_place(&mut buf, MAX_GPDU_HEADER_LEN, payload.len(), hdr)
        .expect("encap")
        .to_vec()
}

/// UL PDU Session Information with QFI `qfi` and every optional field, set to
/// 1 (first QoS monitoring time stamp) to 7 (N3/N9 delay result) in wire order.
pub fn ul_info_every_field(qfi: u8) -> UlPduSessionInfo {
    UlPduSessionInfo {
        qfi,
        qos_monitoring: Some(UlQosMonitoring {
            dl_sending_time_stamp_repeated: 1,
            dl_received_time_stamp: 2,
            ul_sending_time_stamp: 3,
        }),
        dl_delay_result: Some(4),
        ul_delay_result: Some(5),
        ul_qfi_seq: Some(6),
        n3n9_delay_result: Some(7),
    }
}

/// An Ethernet II + IPv4 + UDP frame around `payload`, with valid IPv4 and UDP
/// checksums, so that tshark reports nothing but what the payload deserves.
pub fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    assert!(ip_len <= 65535, "payload too large for one IPv4 packet");
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = [0u8; 8];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src);
    pseudo[4..8].copy_from_slice(&dst);
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let mut c = checksum(&[&pseudo, &udp, payload]);
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f.extend_from_slice(payload);
    f
}

/// The Internet checksum over the concatenation of `parts` (each part may
/// have odd length only if it is the last one).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in part.iter() {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes a classic (microsecond) pcap file with link type Ethernet.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, frame) in frames.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// A temporary pcap path unique to this process and `tag`.
pub fn temp_pcap(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wire-test-{}-{tag}.pcap", std::process::id()))
}

/// Runs tshark on `pcap` and returns, per packet, the values of `fields`
/// (`-T fields -E occurrence=a -E aggregator=,`). Extra args (e.g. a
/// `-d udp.port==2153,gtp` decode-as) go before the fields. Panics with
/// tshark's stderr if it fails: a missing tshark is a failed test, not a skip.
pub fn tshark_fields(pcap: &Path, extra: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(pcap).args(extra).args([
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        "-E",
        "separator=\t",
    ]);
    for f in fields {
        cmd.arg("-e").arg(f);
    }
    let out = cmd
        .output()
        .expect("tshark must be installed (apt-get install tshark)");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Expert-info entries of severity warning or error (malformed packets among
/// them) that tshark reports for `pcap`, one string per entry with its frame
/// number. An empty vector means tshark decoded everything cleanly.
pub fn tshark_problems(pcap: &Path, extra: &[&str]) -> Vec<String> {
    let rows = tshark_fields(
        pcap,
        &[
            extra,
            &["-Y", "_ws.malformed || _ws.expert.severity >= 6291456"],
        ]
        .concat(),
        &["frame.number", "_ws.expert.message", "_ws.malformed"],
    );
    rows.into_iter().map(|r| r.join(" | ")).collect()
}

/// tshark's full verbose dissection (`-V`) of `pcap`, for failure messages.
pub fn tshark_verbose(pcap: &Path, extra: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(extra)
        .arg("-V")
        .output()
        .expect("tshark");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
