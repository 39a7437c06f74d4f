//! Checks the tshark test support itself: a truncated PFCP message must be
//! reported as a problem and a well-formed Heartbeat Request must not.
mod common;

#[test]
fn tshark_reports_malformed_and_accepts_wellformed() {
    // Heartbeat Request, seq 1, Recovery Time Stamp IE (type 96, len 4).
    let good = [
        0x20, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x00, 0x00, 0x60, 0x00, 0x04, 0xe8, 0x00, 0x00,
        0x00,
    ];
    // The same message, its IE cut short while the headers claim more.
    let bad = &good[..14];
    let pcap = common::temp_pcap("selftest");
    let frames = vec![
        common::udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 8805, 8805, &good),
        common::udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 8805, 8805, bad),
    ];
    common::write_pcap(&pcap, &frames);
    let seq = common::tshark_fields(&pcap, &[], &["pfcp.seqno", "pfcp.msg_type"]);
    assert_eq!(seq[0], vec!["1".to_string(), "1".to_string()]);
    let problems = common::tshark_problems(&pcap, &[]);
    std::fs::remove_file(&pcap).ok();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("2 "), "{problems:?}");
}
