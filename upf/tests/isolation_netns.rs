//! Issue 13 items 1 and 4 in real namespaces: a G-PDU with a valid uplink
//! TEID from another address than the session's gNB is not forwarded, and
//! a UE's packet for a core address (the N3 subnet, the UPF's own
//! addresses) is never delivered, whatever the UPF's routes say.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use common::*;
use upf::datapath::DropReason;
use upf::gtp;
use upf::packet::build_udp;

const GNB_TEID: u32 = 0x100;
/// A second address on the gNB's N3 link: a rogue host on the n3 switch.
const ROGUE: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 66);

/// A bed (root only) with a session whose downlink goes to the gNB:
/// (bed, local SEID, uplink TEID).
fn bed_with_session() -> (Bed, u64, u32) {
    let bed = Bed::new();
    let e = bed
        .upf()
        .establish(1, rules(to_gnb(GNB_TEID)))
        .expect("session");
    (bed, e.local_seid, e.created[0].teid)
}

/// Send an uplink packet to the edge's echo server from the real gNB and
/// wait for its echo: what was sent before it has been decided.
fn echo_through(bed: &Bed, teid: u32, tag: &[u8]) {
    bed.send_gpdu(teid, None, &build_udp(UE, 5000, EDGE, ECHO_PORT, tag));
    let p = bed.recv_gpdu().expect("the gNB's own uplink is echoed");
    let d = gtp::decap(&p).expect("GTP-U");
    assert_eq!(d.teid, GNB_TEID);
    assert!(d.payload.ends_with(tag), "the echo of {tag:?} comes first");
}

/// Packets written to N6, once the uplink thread counted the write the
/// echo already answered (it counts after the write returns).
fn n6_tx_settled(bed: &Bed) -> u64 {
    let m = bed.upf().metrics();
    let mut last = m.n6_tx.get().0;
    testkit::wait_until(Duration::from_millis(500), || {
        let now = m.n6_tx.get().0;
        let settled = now == last && now > 0;
        last = now;
        settled
    });
    last
}

fn drops(bed: &Bed, r: DropReason) -> u64 {
    bed.upf().metrics().drops_of(r)
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn gpdu_with_a_valid_teid_from_another_address_is_not_forwarded() {
    let (bed, seid, teid) = bed_with_session();
    let dev = format!("{}gu", bed.tag);
    must(bed.gnb.ip(&["addr", "add", "10.0.1.66/24", "dev", &dev]));
    let rogue = must(
        bed.gnb
            .run(|| UdpSocket::bind((ROGUE, 2152)).expect("rogue socket")),
    );
    let to_upf = SocketAddrV4::new(UPF_N3, 2152);
    let n6_before = bed.upf().metrics().n6_tx.get().0;
    for i in 0..10u8 {
        let inner = build_udp(UE, 5000, EDGE, ECHO_PORT, &[b'r', i]);
        rogue
            .send_to(&gtp::ul_gpdu(teid, None, &inner), to_upf)
            .expect("send");
    }
    // The gNB's packet sent after them is echoed first: none of the
    // rogue's reached the edge (an echo of one would come back to the gNB
    // before it).
    echo_through(&bed, teid, b"gnb");
    assert_eq!(drops(&bed, DropReason::WrongSender), 10);
    assert_eq!(
        n6_tx_settled(&bed),
        n6_before + 1,
        "only the gNB's packet went to N6"
    );
    let c = bed.upf().session_counters(seid).expect("session");
    assert_eq!(c[0], 1, "one uplink packet counted");
    // The rogue gets nothing back either (no Error Indication for a TEID
    // that exists).
    rogue
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    assert!(
        rogue.recv_from(&mut buf).is_err(),
        "nothing sent to the rogue"
    );
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn a_ues_packet_to_a_core_address_is_never_delivered() {
    let (bed, _, teid) = bed_with_session();
    // A listener on the gNB's N3 address (the core's n3 subnet), reachable
    // by the UPF's routes.
    let listener = must(
        bed.gnb
            .run(|| UdpSocket::bind((GNB_N3, 9999)).expect("listener")),
    );
    listener.set_nonblocking(true).expect("nonblocking");
    let targets = [
        (GNB_N3, 9999), // the n3 subnet
        (UPF_N3, 8805), // the UPF's own N4
        (UPF_N6, 9100), // the UPF's own N6 address
        (Ipv4Addr::LOCALHOST, 9100),
    ];
    for (dst, port) in targets {
        bed.send_gpdu(teid, None, &build_udp(UE, 5000, dst, port, b"probe"));
    }
    echo_through(&bed, teid, b"after");
    assert_eq!(
        drops(&bed, DropReason::ProtectedDestination),
        targets.len() as u64
    );
    let mut buf = [0u8; 2048];
    assert!(
        listener.recv_from(&mut buf).is_err(),
        "the gNB's N3 address got nothing"
    );
    assert_eq!(n6_tx_settled(&bed), 1, "only the echo's uplink");
}

/// Send `n` datagrams made by `make` from the gNB, 100 at a time, each
/// batch counted by `counted` before the next (so that the socket buffer
/// drops none). True when all were counted.
fn flood(bed: &Bed, n: u64, make: impl Fn(u64) -> Vec<u8>, counted: impl Fn() -> u64) -> bool {
    let to = SocketAddrV4::new(UPF_N3, 2152);
    let start = counted();
    let mut all = true;
    for batch in 0..n / 100 {
        for i in batch * 100..(batch + 1) * 100 {
            bed.gnb_sock.send_to(&make(i), to).expect("send");
        }
        all &= testkit::wait_until(Duration::from_secs(5), || {
            counted() >= start + (batch + 1) * 100
        });
    }
    all
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn n3_bad_input_is_counted_logged_a_few_times_and_error_indications_are_rate_limited() {
    let (bed, _, teid) = bed_with_session();
    let m = bed.upf().metrics();
    let t0 = std::time::Instant::now();

    // 2 000 malformed datagrams (not GTP-U v1).
    let junk = |i: u64| {
        (0..(i % 60) as u8)
            .map(|b| b.wrapping_mul(37) ^ 0xa5)
            .collect()
    };
    let all = flood(&bed, 2_000, junk, || m.drops_of(DropReason::Malformed));
    assert!(all, "every malformed datagram counted");

    // 1 000 G-PDUs for a TEID no session owns: Error Indications at the
    // peer's rate (10/s, as many at once), the rest counted as suppressed.
    let inner = build_udp(UE, 5000, EDGE, ECHO_PORT, b"x");
    let unknown = |_| gtp::ul_gpdu(teid ^ 0x5555, None, &inner);
    let all = flood(&bed, 1_000, unknown, || m.drops_of(DropReason::UnknownTeid));
    assert!(all, "every unknown-TEID G-PDU counted");
    let secs = t0.elapsed().as_secs_f64();
    let sent = m
        .error_indications
        .load(std::sync::atomic::Ordering::Relaxed);
    let held = m
        .error_indications_suppressed
        .load(std::sync::atomic::Ordering::Relaxed);
    let (lines, suppressed) = bed.upf().inner().n3_log_counts();
    eprintln!(
        "N3: 2000 malformed + 1000 unknown TEID in {secs:.2} s: {sent} Error Indications \
         sent, {held} held back; {lines} log lines, {suppressed} suppressed"
    );
    assert_eq!(sent + held, 1_000);
    assert!(
        sent <= 10 + 10 * (secs.ceil() as u64),
        "{sent} in {secs:.2} s"
    );
    // 3 lines a second per cause (malformed, unknown TEID), with slack for
    // the second boundaries.
    let bound = 2 * 3 * (secs.ceil() as u64 + 1);
    assert!(lines <= bound, "{lines} lines in {secs:.2} s");
    // Lines are about the malformed datagrams and the Error Indications
    // sent (those held back are counted, not logged).
    assert!(
        suppressed >= 2_000 + sent - bound,
        "{suppressed} suppressed"
    );

    // The gNB received exactly the Error Indications counted, and its
    // session still forwards.
    let mut eis = 0;
    loop {
        let p = bed
            .recv_gtp()
            .expect("the echo comes after the Error Indications");
        if p.get(1) == Some(&gtp::G_PDU) {
            break;
        }
        if p.get(1) == Some(&gtp::ERROR_INDICATION) {
            eis += 1;
        }
        if eis == sent {
            echo_through(&bed, teid, b"still");
            break;
        }
    }
    assert_eq!(eis, sent);
}
