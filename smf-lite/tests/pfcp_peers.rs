//! The SMF takes PFCP only from its UPFs' addresses: a Heartbeat Request
//! from another address (127.0.0.2 on loopback) is dropped and counted;
//! the same from the UPF's address (another port) is answered.

mod common;

use common::peers::{blocking, config, wait_associated, wait_in_place, UdpUpf};
use smf_lite::client::SmfClient;
use std::net::UdpSocket;
use std::time::Duration;
use wire::pfcp::{self, Message, MessageBody};

fn heartbeat(seq: u32) -> Vec<u8> {
    Message::node(
        seq,
        pfcp::HeartbeatRequest {
            recovery_time_stamp: 7,
            ..Default::default()
        },
    )
    .to_vec()
    .expect("encode")
}

fn foreign_dropped(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("smf_pfcp_foreign_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pfcp_from_no_upf_address_is_dropped_and_counted() {
    let u1 = UdpUpf::start("upf1");
    let cfg = config(&[("upf1", u1.addr, "edge1", "10.60.0.0/24")]);
    let smf = smf_lite::daemon::start(cfg).await.expect("starts");
    let c = SmfClient::new(&smf.api_addr.to_string());
    wait_associated(&c, 1).await;
    let c2 = c.clone();
    let before = blocking(move || c2.metrics()).await.expect("metrics");
    assert_eq!(foreign_dropped(&before), Some(0), "{before}");

    // Another loopback address: not a UPF's.
    let rogue = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    rogue.set_nonblocking(true).expect("nonblocking");
    rogue.send_to(&heartbeat(1), smf.n4_addr).expect("send");
    // The UPF's address from another port: answered (heartbeats are
    // answered whoever asks, among the UPFs' addresses).
    let upf_ip = UdpSocket::bind((u1.addr.ip(), 0)).expect("bind");
    upf_ip
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    upf_ip.send_to(&heartbeat(2), smf.n4_addr).expect("send");
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::task::block_in_place(|| upf_ip.recv_from(&mut buf)).expect("answer");
    let m = Message::parse(&buf[..n]).expect("PFCP");
    assert!(matches!(m.body, MessageBody::HeartbeatResponse(_)));
    assert_eq!(m.header.seq, 2);

    let mut text = String::new();
    let counted = wait_in_place(Duration::from_secs(5), || {
        text = c.metrics().expect("metrics");
        foreign_dropped(&text) == Some(1)
    });
    assert!(counted, "not counted: {text}");
    // Counted, never answered.
    let r = rogue.recv_from(&mut buf);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{r:?}"
    );
    smf.stop().await;
}
