//! The data path in real namespaces: test gNB (raw GTP-U) -- UPF (TUN) --
//! edge (UDP echo). Sessions are installed through the in-process control
//! API; the PFCP tests drive the same through N4.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use upf::datapath::DropReason;
use upf::gtp;
use upf::packet::{build_udp, FiveTuple};
use upf::rules::*;
use upf::session::{Established, ReportTrigger};

const GNB_TEID: u32 = 0x100;

fn with_qfi_qer(mut r: SessionRules) -> SessionRules {
    r.pdrs[1].qer_ids = vec![1];
    r
}

fn up(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    build_udp(UE, sport, common::EDGE, dport, payload)
}

/// The inner packet of a downlink G-PDU, with its TEID and QFI.
fn inner_of(p: &[u8]) -> (u32, Option<u8>, Vec<u8>) {
    let d = gtp::decap(p).expect("valid GTP-U from the UPF");
    assert_eq!(d.msg_type, gtp::G_PDU);
    (d.teid, d.qfi, d.payload.to_vec())
}

/// A bed (root only) with one session of `r` for the remote SEID `remote`.
fn bed_with(remote: u64, r: SessionRules) -> (Bed, Established) {
    let bed = Bed::new();
    let e = bed.upf().establish(remote, r).expect("session");
    (bed, e)
}

/// The plain session's rules with URR `id` (volume thresholds uplink
/// `ul` and downlink `dl` bytes) on the PDR at index `pdr` (0: uplink,
/// 1: downlink).
fn metered(pdr: usize, id: u32, ul: Option<u64>, dl: Option<u64>) -> SessionRules {
    let mut r = rules(to_gnb(GNB_TEID));
    r.urrs.push(Urr {
        id,
        volume_threshold: Some(VolumeThreshold {
            uplink: ul,
            downlink: dl,
            ..Default::default()
        }),
        measurement_period: None,
    });
    r.pdrs[pdr].urr_ids = vec![id];
    r
}

/// A bed with the plain session: downlink to the test gNB's [`GNB_TEID`].
fn bed_with_session() -> (Bed, Established) {
    bed_with(1, rules(to_gnb(GNB_TEID)))
}

/// Send `payload` from the UE to the edge's echo port on `teid` (with
/// `qfi`); the echo that comes back to the gNB must carry the same payload.
/// Its TEID, QFI and inner packet.
fn round_trip(bed: &Bed, teid: u32, qfi: Option<u8>, payload: &[u8]) -> (u32, Option<u8>, Vec<u8>) {
    bed.send_gpdu(teid, qfi, &up(5000, ECHO_PORT, payload));
    let back = inner_of(
        &bed.recv_gpdu()
            .expect("the echo comes back through the tunnel"),
    );
    assert_eq!(&back.2[28..], payload);
    back
}

/// Point the session's downlink FAR 2 at `action`.
fn set_dl_far(bed: &Bed, seid: u64, action: FarAction) {
    let m = Modification {
        update_fars: vec![Far { id: 2, action }],
        ..Default::default()
    };
    bed.upf().modify(seid, m).expect("modify");
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn uplink_and_downlink_through_a_session() {
    let (bed, e) = bed_with(1, with_qfi_qer(rules(to_gnb(GNB_TEID))));
    let teid = e.created[0].teid;
    assert_eq!(e.created[0].addr, UPF_N3);
    for i in 0..5u8 {
        let (t, qfi, inner) = round_trip(&bed, teid, Some(9), &[i; 100]);
        assert_eq!((t, qfi), (GNB_TEID, Some(9)));
        let ft = FiveTuple::parse(&inner).expect("ipv4");
        assert_eq!(
            (ft.src, ft.src_port, ft.dst, ft.dst_port),
            (EDGE, Some(ECHO_PORT), UE, Some(5000))
        );
    }
    // Sequence numbers present or not: both accepted.
    let inner = up(5000, ECHO_PORT, b"seq");
    let mut pkt = vec![0x32, 0xff, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0];
    pkt[2..4].copy_from_slice(&((4 + inner.len()) as u16).to_be_bytes());
    pkt[4..8].copy_from_slice(&teid.to_be_bytes());
    pkt.extend_from_slice(&inner);
    bed.gnb_sock
        .send_to(&pkt, SocketAddrV4::new(UPF_N3, 2152))
        .expect("send");
    let (_, _, back) = inner_of(&bed.recv_gpdu().expect("echo"));
    assert_eq!(&back[28..], b"seq");
    // The data-path threads count a packet right after writing it, so on a
    // busy machine the echo can arrive here before the counts: wait briefly.
    let counts = || {
        let c = bed.upf().session_counters(e.local_seid).expect("session");
        (c, bed.upf().metrics().n6_tx.get().0)
    };
    testkit::wait_until(Duration::from_secs(2), || {
        let (c, n6_tx) = counts();
        (c[0], c[2], n6_tx) == (6, 6, 6)
    });
    let (c, n6_tx) = counts();
    assert_eq!((c[0], c[2]), (6, 6), "6 packets each way: {c:?}");
    assert_eq!(n6_tx, 6);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn sdf_precedence_picks_the_rule() {
    let mut r = with_qfi_qer(rules(to_gnb(GNB_TEID)));
    // Higher precedence: UDP to the edge port 7001 is dropped; also a rule
    // for 7000 with a worse precedence than the catch-all is never used.
    r.pdrs.push(ul_pdr(
        10,
        10,
        3,
        &["permit out 17 from 10.0.2.2 7001 to assigned"],
    ));
    r.pdrs.push(ul_pdr(
        11,
        200,
        3,
        &["permit out 17 from 10.0.2.2 7000 to assigned"],
    ));
    r.fars.push(Far {
        id: 3,
        action: FarAction::Drop,
    });
    let (bed, e) = bed_with(1, r);
    let teid = e.created[0].teid;
    bed.send_gpdu(teid, None, &up(5000, 7001, b"dropped"));
    round_trip(&bed, teid, None, b"passes");
    let m = bed.upf().metrics();
    assert_eq!(m.drops_of(DropReason::FarDrop), 1);
    let t = bed.upf().inner().table();
    let s = t.session(e.local_seid).expect("session");
    let stats = s.pdr_stats();
    let get = |id| stats.iter().find(|p| p.pdr_id == id).expect("pdr").packets;
    assert_eq!((get(10), get(11), get(1)), (1, 0, 1));
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn buffering_then_flush_in_order() {
    let (bed, e) = bed_with(1, rules(FarAction::Buffer));
    // Downlink arrives before the gNB tunnel is known.
    for i in 0..5u8 {
        bed.edge_sock
            .send_to(&[i; 10], SocketAddrV4::new(UE, 6000))
            .expect("send");
    }
    assert!(
        testkit::wait_until(Duration::from_secs(3), || bed
            .upf()
            .session_counters(e.local_seid)
            .expect("s")[6]
            >= 5),
        "packets not buffered within 3 s"
    );
    assert!(
        bed.recv_gtp_within(Duration::from_millis(200)).is_none(),
        "nothing forwarded while buffering"
    );
    set_dl_far(&bed, e.local_seid, to_gnb(GNB_TEID));
    for i in 0..5u8 {
        let (t, _, inner) = inner_of(&bed.recv_gpdu().expect("flushed packet"));
        assert_eq!(t, GNB_TEID);
        assert_eq!(&inner[28..], &[i; 10][..], "in order");
    }
    assert_eq!(bed.upf().session_counters(e.local_seid).expect("s")[6], 0);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn end_marker_on_path_switch() {
    let (bed, e) = bed_with_session();
    set_dl_far(&bed, e.local_seid, to_gnb(0x200));
    let p = bed.recv_gtp().expect("end marker");
    let d = gtp::decap(&p).expect("valid");
    assert_eq!((d.msg_type, d.teid), (gtp::END_MARKER, GNB_TEID));
    // New traffic uses the new tunnel.
    let (t, _, _) = round_trip(&bed, e.created[0].teid, None, b"x");
    assert_eq!(t, 0x200);
    assert_eq!(bed.upf().metrics().end_markers.load(Relaxed), 1);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn error_indication_echo_and_malformed_input() {
    let bed = Bed::new();
    bed.send_gpdu(0xdead, None, &up(1, 2, b"?"));
    let p = bed.recv_gtp().expect("error indication");
    let d = gtp::decap(&p).expect("valid");
    assert_eq!(d.msg_type, gtp::ERROR_INDICATION);
    assert_eq!(gtp::parse_error_indication(&p), Some((0xdead, UPF_N3)));
    // Echo.
    let echo = [0x32, gtp::ECHO_REQUEST, 0, 4, 0, 0, 0, 0, 0x00, 0x07, 0, 0];
    bed.gnb_sock
        .send_to(&echo, SocketAddrV4::new(UPF_N3, 2152))
        .expect("send");
    let p = bed.recv_gtp().expect("echo response");
    let d = gtp::decap(&p).expect("valid");
    assert_eq!(
        (d.msg_type, d.seq, d.payload),
        (gtp::ECHO_RESPONSE, Some(7), &[14u8, 0][..])
    );
    // Garbage of every short length, then a session still works.
    for n in 0..40 {
        let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 0x30) as u8).collect();
        bed.gnb_sock
            .send_to(&junk, SocketAddrV4::new(UPF_N3, 2152))
            .expect("send");
    }
    let e = bed
        .upf()
        .establish(1, rules(to_gnb(GNB_TEID)))
        .expect("session");
    round_trip(&bed, e.created[0].teid, None, b"alive");
    assert!(bed.upf().metrics().drops_of(DropReason::Malformed) > 0);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn anti_spoofing_is_counted() {
    let (bed, e) = bed_with_session();
    let spoofed = build_udp(
        Ipv4Addr::new(10, 60, 0, 99),
        5000,
        EDGE,
        ECHO_PORT,
        b"spoof",
    );
    bed.send_gpdu(e.created[0].teid, None, &spoofed);
    round_trip(&bed, e.created[0].teid, None, b"real");
    assert!(
        bed.recv_gtp_within(Duration::from_millis(200)).is_none(),
        "spoofed packet not forwarded"
    );
    let c = bed.upf().session_counters(e.local_seid).expect("s");
    assert_eq!(c[5], 1, "spoofed counter");
    assert_eq!(bed.upf().metrics().drops_of(DropReason::Spoofed), 1);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn urr_threshold_report_has_exact_volume() {
    // A report after 10,000 bytes uplink.
    let (bed, e) = bed_with(3, metered(0, 7, Some(10_000), None));
    let pkt = up(5000, ECHO_PORT, &[0u8; 972]); // 1000 bytes
    for _ in 0..10 {
        bed.send_gpdu(e.created[0].teid, None, &pkt);
        bed.recv_gpdu().expect("echo");
    }
    let mut reports = Vec::new();
    assert!(
        testkit::wait_until(Duration::from_secs(2), || {
            reports = bed.upf().take_reports();
            !reports.is_empty()
        }),
        "no usage report within 2 s"
    );
    assert_eq!(reports.len(), 1);
    let u = &reports[0];
    assert_eq!(
        (u.urr_id, u.trigger, u.remote_seid),
        (7, ReportTrigger::VolumeThreshold, 3)
    );
    assert_eq!((u.ul_packets, u.ul_bytes, u.dl_bytes), (10, 10_000, 0));
    // Two more, then the deletion reports them.
    for _ in 0..2 {
        bed.send_gpdu(e.created[0].teid, None, &pkt);
        bed.recv_gpdu().expect("echo");
    }
    let fin = bed.upf().delete(e.local_seid).expect("deleted");
    assert_eq!(fin.len(), 1);
    assert_eq!(
        (fin[0].trigger, fin[0].ul_bytes),
        (ReportTrigger::Termination, 2000)
    );
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn qer_mbr_limits_downlink_rate() {
    let mut r = with_qfi_qer(rules(to_gnb(GNB_TEID)));
    r.qers[0].mbr_dl = Some(8_000_000); // 8 Mbit/s
    let (bed, _) = bed_with(1, r);
    // Offer about 40 Mbit/s of 1000-byte packets for one second from the
    // edge; count what reaches the gNB.
    let rx = bed.gnb_sock.try_clone().expect("clone");
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let counter = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut bytes = 0usize;
        while let Ok((n, _)) = rx.recv_from(&mut buf) {
            bytes += n.saturating_sub(16); // inner packet
        }
        bytes
    });
    let payload = [0u8; 972];
    let start = Instant::now();
    let mut sent = 0usize;
    while start.elapsed() < Duration::from_secs(1) {
        bed.edge_sock
            .send_to(&payload, SocketAddrV4::new(UE, 6000))
            .expect("send");
        sent += 1000;
        if sent % 5000 == 0 {
            // pacing, not synchronisation
            std::thread::sleep(Duration::from_micros(900));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let got = counter.join().expect("counter");
    let rate_bps = got as f64 * 8.0 / secs;
    let offered = sent as f64 * 8.0 / secs;
    eprintln!(
        "offered {:.1} Mbit/s, delivered {:.2} Mbit/s",
        offered / 1e6,
        rate_bps / 1e6
    );
    assert!(
        offered > 16e6,
        "the test must offer more than twice the MBR"
    );
    assert!(
        (7.0e6..9.5e6).contains(&rate_bps),
        "delivered {rate_bps} bit/s for an 8 Mbit/s MBR"
    );
    assert!(bed.upf().metrics().drops_of(DropReason::RateExceeded) > 0);
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn metrics_endpoint_serves_counters() {
    let (bed, e) = bed_with_session();
    round_trip(&bed, e.created[0].teid, None, b"m");
    let addr = bed.upf().metrics_addr();
    let (prom, stats) = must(bed.upf_ns.run(move || {
        (
            upf::metrics::fetch(addr, "/metrics").expect("metrics"),
            upf::metrics::fetch(addr, "/stats").expect("stats"),
        )
    }));
    assert!(prom.contains("upf_sessions 1"), "{prom}");
    assert!(prom.contains("upf_n3_rx_packets_total 1"), "{prom}");
    assert!(
        prom.contains(&format!(
            "upf_pdr_packets_total{{seid=\"{}\",pdr=\"1\"}} 1",
            e.local_seid
        )),
        "{prom}"
    );
    assert!(stats.contains("sessions: 1"), "{stats}");
    assert!(stats.contains("10.60.0.1"), "{stats}");
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn rules_change_while_traffic_flows() {
    let (bed, e) = bed_with(1, with_qfi_qer(rules(to_gnb(GNB_TEID))));
    let teid = e.created[0].teid;
    let inner = bed.upf().inner().clone();
    let seid = e.local_seid;
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    // Control plane: keep replacing the QER and adding/removing a PDR.
    let churn = std::thread::spawn(move || {
        let mut n = 0u32;
        while !st.load(Relaxed) {
            let extra = ul_pdr(50, 1, 1, &["permit out 6 from any to assigned"]);
            let m = if n % 2 == 0 {
                Modification {
                    create: SessionRules {
                        pdrs: vec![extra],
                        ..Default::default()
                    },
                    update_qers: vec![Qer {
                        id: 1,
                        gate_ul: Gate::Open,
                        gate_dl: Gate::Open,
                        mbr_ul: None,
                        mbr_dl: Some(1_000_000_000),
                        qfi: Some(9),
                    }],
                    ..Default::default()
                }
            } else {
                Modification {
                    remove_pdrs: vec![50],
                    ..Default::default()
                }
            };
            inner.modify(seid, m).expect("modification applies");
            n += 1;
        }
        n
    });
    for i in 0..300u32 {
        round_trip(&bed, teid, Some(9), &i.to_be_bytes());
    }
    stop.store(true, Relaxed);
    let changes = churn.join().expect("churn");
    eprintln!("{changes} rule changes during 300 round trips");
    assert!(changes > 10, "the rules did change meanwhile ({changes})");
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn metrics_clients_are_served_side_by_side_while_a_slow_one_dribbles() {
    use std::io::Write;
    let bed = Bed::new();
    let addr = bed.upf().metrics_addr();
    let (slowest, mut pages) = must(bed.upf_ns.run(move || {
        // A client that sends a byte of its request every 100 ms until the
        // others are done (a single-threaded server would serve no one).
        let mut slow = std::net::TcpStream::connect(addr).expect("connect");
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let dribble = std::thread::spawn(move || {
            for b in b"GET /metrics HTTP/1.1 and more".iter().cycle() {
                if d.load(Relaxed) || slow.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let clients: Vec<_> = (0..16)
            .map(|i| {
                std::thread::spawn(move || {
                    let t = Instant::now();
                    let path = if i % 2 == 0 { "/metrics" } else { "/stats" };
                    let page = upf::metrics::fetch(addr, path);
                    (page, t.elapsed())
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        let mut pages = Vec::new();
        for c in clients {
            let (page, took) = c.join().expect("client");
            slowest = slowest.max(took);
            pages.push(page.expect("answered"));
        }
        pages.push(match upf::metrics::fetch(addr, "/nope") {
            Ok(p) => panic!("/nope answered 200: {p}"),
            Err(e) => e.to_string(),
        });
        done.store(true, Relaxed);
        dribble.join().expect("dribble");
        (slowest, pages)
    }));
    let missing = pages.pop().expect("the 404");
    assert!(missing.contains("HTTP 404"), "{missing}");
    for (i, p) in pages.iter().enumerate() {
        let want = if i % 2 == 0 {
            "upf_sessions 0"
        } else {
            "sessions: 0"
        };
        assert!(p.contains(want), "client {i}: {p}");
    }
    // Generous for a loaded machine: what matters is that no client waits
    // for the slow one, which never finishes its request.
    assert!(
        slowest < Duration::from_secs(3),
        "slowest answer after {slowest:?}"
    );
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn two_workers_each_keep_their_flows() {
    // G-PDUs from the gNB's port 2152 go to worker 0, from 2153 to worker
    // 1 (source port mod 2); the TUN hands a flow's answers to the queue
    // its requests were written to, so each echo comes back from the
    // worker that carried its request: from the UPF's port 2152 + k.
    let bed = Bed::with_config(|c| c.n3.workers = Some(2));
    let e = bed
        .upf()
        .establish(1, rules(to_gnb(GNB_TEID)))
        .expect("session");
    let teid = e.created[0].teid;
    let second = must(bed.gnb.udp((GNB_N3, 2153)));
    let mut buf = vec![0u8; 65536];
    for (k, sock, flows) in [(0u16, &bed.gnb_sock, 3u16), (1, &second, 5)] {
        for f in 0..flows {
            let sport = 6000 + 100 * k + f;
            let gpdu = gtp::ul_gpdu(teid, None, &up(sport, ECHO_PORT, b"which worker"));
            sock.send_to(&gpdu, SocketAddrV4::new(UPF_N3, 2152))
                .expect("send");
            let (n, from) = bed
                .gnb_sock
                .recv_from(&mut buf)
                .expect("the echo comes back");
            let (t, _, inner) = inner_of(&buf[..n]);
            let ft = FiveTuple::parse(&inner).expect("ipv4");
            assert_eq!(
                (t, ft.dst_port, &inner[28..]),
                (GNB_TEID, Some(sport), &b"which worker"[..])
            );
            assert_eq!(
                from.port(),
                2152 + k,
                "the echo of flow {sport} (worker {k}) came from UPF port {}",
                from.port()
            );
        }
    }
    // A worker adds its batch's counts after sending the batch: the last
    // echo can arrive before its count does.
    let m = bed.upf().metrics();
    let n6_ok = |n6: &[u64]| n6.len() == 2 && n6[0] >= 3 && n6[1] >= 5;
    testkit::wait_until(Duration::from_secs(3), || {
        m.worker_n3_rx.counts() == [3, 5] && n6_ok(&m.worker_n6_rx.counts())
    });
    assert_eq!(m.worker_n3_rx.counts(), vec![3, 5], "G-PDUs per worker");
    // The kernel's own packets into the TUN (an IPv6 router solicitation
    // when it came up) may add to either queue.
    let n6 = m.worker_n6_rx.counts();
    assert!(n6_ok(&n6), "TUN reads per worker: {n6:?}");
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn a_downlink_super_packet_is_decided_once_and_counted_per_segment() {
    // The edge sends one UDP super-packet (UDP_SEGMENT, 1000-byte
    // datagrams, a shorter last): the UPF's TUN hands it over whole, the
    // UPF decides its first segment and applies that PDR to the others.
    // Every segment must reach the gNB in order and byte-exact, and the
    // session, its PDR and a downlink URR must count every one.
    let (bed, e) = bed_with(5, metered(1, 4, None, Some(1_000_000)));
    let (seg, total) = (1000usize, 13_500usize);
    let data: Vec<u8> = (0..total).map(|i| (i * 7 + 3) as u8).collect();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&bed.edge_sock);
    let v = seg as libc::c_int;
    // SAFETY: setsockopt(SOL_UDP, UDP_SEGMENT) with an int that outlives
    // the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
    let supers = bed.upf().metrics().n6_rx_super.load(Relaxed);
    bed.edge_sock
        .send_to(&data, SocketAddrV4::new(UE, 7100))
        .expect("send the super-packet");
    let segments = total.div_ceil(seg);
    let mut got = Vec::new();
    for i in 0..segments {
        let p = bed
            .recv_gpdu()
            .unwrap_or_else(|| panic!("segment {i} of {segments} did not come"));
        let (teid, _, inner) = inner_of(&p);
        assert_eq!(teid, GNB_TEID);
        let len = inner.len() - 28;
        assert_eq!(len, seg.min(total - i * seg), "segment {i}'s length");
        got.extend_from_slice(&inner[28..]);
    }
    assert_eq!(got, data, "the segments' bytes, in order");
    assert_eq!(
        bed.upf().metrics().n6_rx_super.load(Relaxed),
        supers + 1,
        "the TUN handed the UPF one super-packet"
    );
    let bytes = (total + 28 * segments) as u64;
    // A worker writes its batch's counts after sending the batch.
    let counted = || {
        bed.upf()
            .session_counters(e.local_seid)
            .map(|c| (c[2], c[3]))
    };
    testkit::wait_until(Duration::from_secs(3), || {
        counted() == Some((segments as u64, bytes))
    });
    assert_eq!(
        counted(),
        Some((segments as u64, bytes)),
        "session downlink (packets, bytes)"
    );
    let fin = bed.upf().delete(e.local_seid).expect("deleted");
    assert_eq!(fin.len(), 1);
    assert_eq!(
        (fin[0].dl_packets, fin[0].dl_bytes),
        (segments as u64, bytes)
    );
}
