//! N4 over real sockets in namespaces: a second address in the gNB's
//! namespace plays a rogue host on the N4 path. Its Association Release
//! with the SMF's Node ID is refused (72) and changes nothing; 2 000
//! malformed datagrams from it write a few log lines; a Heartbeat with a
//! new Recovery Time Stamp from the SMF deletes its session.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use wire::pfcp::{self, Message, MessageBody};

const ROGUE: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);

/// A PFCP endpoint in the gNB namespace.
struct Peer {
    sock: UdpSocket,
    seq: u32,
}

impl Peer {
    fn new(bed: &Bed, addr: Ipv4Addr) -> Peer {
        let sock = must(
            bed.gnb
                .run(move || UdpSocket::bind((addr, 0)).expect("bind")),
        );
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Peer { sock, seq: 0 }
    }

    fn upf() -> SocketAddr {
        SocketAddr::from((UPF_N3, 8805))
    }

    /// Send a request; the response with its sequence number.
    fn ask(&mut self, seid: Option<u64>, body: impl Into<MessageBody>) -> Message {
        self.seq += 1;
        let m = match seid {
            Some(s) => Message::session(s, self.seq, body),
            None => Message::node(self.seq, body),
        };
        self.sock
            .send_to(&m.to_vec().expect("encode"), Self::upf())
            .expect("send");
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let r = Message::parse(&buf[..n]).expect("the UPF sends valid PFCP");
                if r.header.seq == self.seq
                    && matches!(r.msg_type(), 2 | 4 | 6 | 8 | 10 | 51 | 53 | 55)
                {
                    return r;
                }
            }
        }
        panic!("no response to seq {}", self.seq)
    }
}

fn smf_node() -> pfcp::NodeId {
    pfcp::NodeId::fqdn("smf.test.example")
}

fn heartbeat(ts: u32) -> pfcp::HeartbeatRequest {
    pfcp::HeartbeatRequest {
        recovery_time_stamp: ts,
        ..Default::default()
    }
}

#[test]
#[ignore = "needs root: network namespaces, veth links, TUN"]
fn rogue_address_refused_flood_rate_limited_restart_by_heartbeat() {
    testkit::require_root();
    let bed = Bed::new();
    must(bed.gnb.ip(&[
        "addr",
        "add",
        "10.0.1.3/24",
        "dev",
        &format!("{}gu", bed.tag),
    ]));
    let stats = bed.upf().inner().pfcp_stats.clone();
    let mut smf = Peer::new(&bed, GNB_N3);
    let mut rogue = Peer::new(&bed, ROGUE);

    let r = smf.ask(
        None,
        pfcp::AssociationSetupRequest {
            node_id: smf_node(),
            recovery_time_stamp: 100,
            ..Default::default()
        },
    );
    assert!(
        matches!(r.body, MessageBody::AssociationSetupResponse(ref a) if a.cause.is_accepted())
    );
    let est =
        upf::n4::fixtures::paging_session(smf_node(), pfcp::FSeid::ipv4(0x77, GNB_N3), UE, None);
    let r = smf.ask(Some(0), est);
    let MessageBody::SessionEstablishmentResponse(e) = r.body else {
        panic!("{r:?}")
    };
    assert!(e.cause.is_accepted(), "{e:?}");
    let up_seid = e.up_f_seid.expect("UP F-SEID").seid;

    // The rogue speaks for the SMF: refused, nothing changes.
    let r = rogue.ask(
        None,
        pfcp::AssociationReleaseRequest {
            node_id: smf_node(),
            ..Default::default()
        },
    );
    assert!(
        matches!(r.body, MessageBody::AssociationReleaseResponse(ref a) if a.cause == pfcp::Cause::NoEstablishedPfcpAssociation),
        "{r:?}"
    );
    let r = rogue.ask(Some(up_seid), pfcp::SessionDeletionRequest::default());
    assert!(
        matches!(r.body, MessageBody::SessionDeletionResponse(ref d) if d.cause == pfcp::Cause::NoEstablishedPfcpAssociation),
        "{r:?}"
    );
    assert_eq!(bed.upf().inner().table().len(), 1, "the session stays");
    assert_eq!(stats.wrong_peer.load(Ordering::Relaxed), 2);

    // 2 000 malformed datagrams from the rogue, 100 at a time (each batch
    // counted before the next, so that the socket buffer drops none).
    let t0 = Instant::now();
    let n = 2_000u64;
    let mut all = true;
    for batch in 0..n / 100 {
        for i in batch * 100..(batch + 1) * 100 {
            let junk: Vec<u8> = (0..(i % 60) as u8)
                .map(|b| b.wrapping_mul(37) ^ 0xa5)
                .collect();
            rogue.sock.send_to(&junk, Peer::upf()).expect("send");
        }
        all &= testkit::wait_until(Duration::from_secs(5), || {
            stats.malformed.load(Ordering::Relaxed) >= (batch + 1) * 100
        });
    }
    let secs = t0.elapsed().as_secs_f64();
    let logged = stats.logged.load(Ordering::Relaxed);
    let suppressed = stats.log_suppressed.load(Ordering::Relaxed);
    eprintln!(
        "{n} malformed datagrams in {secs:.2} s: {} counted, {logged} log lines, {suppressed} suppressed",
        stats.malformed.load(Ordering::Relaxed)
    );
    assert!(all, "every datagram counted");
    // 3 lines a second per cause (malformed, wrong peer), with slack for
    // the second boundaries.
    let bound = 2 * 3 * (secs.ceil() as u64 + 1);
    assert!(logged <= bound, "{logged} lines in {secs:.2} s");
    assert!(suppressed >= n - bound);

    // Still serving; then the SMF restarts and says so in a Heartbeat.
    let r = smf.ask(None, heartbeat(100));
    assert!(matches!(r.body, MessageBody::HeartbeatResponse(_)));
    assert_eq!(bed.upf().inner().table().len(), 1);
    smf.ask(None, heartbeat(101));
    assert!(
        bed.upf().inner().table().is_empty(),
        "its session is deleted"
    );
    assert_eq!(stats.peer_restarts.load(Ordering::Relaxed), 1);
}
